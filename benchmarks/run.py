#!/usr/bin/env python
"""Run kernforge's benchmark suite against SciPy and peers.

    python benchmarks/run.py [--quick] [--only AREA[,AREA...]] [--threads N] [--out results]

Every ``benchmarks/bench_<area>.py`` is an area. Prints progress and a table per area and writes
``<out>/<area>.json`` and ``<out>/<area>.png`` (plus ``<out>/summary.json``).
"""
import os
import sys

# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on some of these machines for old OpenBLAS builds) slow
# a current NumPy, and act at import: drop them before NumPy loads so the peer runs at its best.
_DROPPED = {k: os.environ.pop(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
# OpenBLAS workers spin for about 2^28 cycles after each call; on 2 cores that spinning steals the core
# a kernforge thread needs right after a peer call. A pause between calls does not cure it here:
# after any idle gap this VM runs the next call 20-60% slower (every contestant, ours more), so the
# suite times back to back and asks OpenBLAS (NumPy's and SciPy's copies alike) to sleep at once
# instead, the way kernforge's own team waits (OMP_WAIT_POLICY=PASSIVE). Must precede NumPy's import.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import glob  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import Report  # noqa: E402


def discover():
    areas = {}
    for path in sorted(glob.glob(os.path.join(HERE, "bench_*.py"))):
        areas[os.path.basename(path)[len("bench_"):-3]] = path
    return areas


def load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def blas_info():
    try:
        from threadpoolctl import threadpool_info

        return [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "filepath")}
                for d in threadpool_info()]
    except Exception as exc:  # threadpoolctl is a bench extra
        return [{"error": repr(exc)}]


def set_threads(n):
    import kernforge as kf

    kf.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def main(argv=None):
    areas = discover()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes and few repeats (about 2 minutes in all)")
    p.add_argument("--only", default="", help=f"comma-separated areas: {', '.join(areas)}")
    p.add_argument("--threads", type=int, default=None, help="threads for kernforge and the peers (default: all cores)")
    p.add_argument("--out", default="results", help="output folder for JSON and PNG files")
    args = p.parse_args(argv)

    chosen = [a.strip() for a in args.only.split(",") if a.strip()] or list(areas)
    unknown = [a for a in chosen if a not in areas]
    if unknown:
        p.error(f"unknown area(s) {unknown}; available: {', '.join(areas)}")

    import numpy as np
    import kernforge as kf

    threads = args.threads or os.cpu_count() or 1
    set_threads(threads)
    import harness

    harness.PAUSE_AFTER_PEER = 0.0
    meta = {"kernforge": kf.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
            "threads": threads, "quick": args.quick,
            "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT"), "blas": blas_info(), "dropped_env": _DROPPED,
            "kernforge_config": {k: v for k, v in kf._config.config().items() if k != "cpu_features"}}
    print(f"kernforge {kf.__version__} benchmarks ({'quick' if args.quick else 'full'}), threads={threads}, "
          f"areas: {', '.join(chosen)}")
    for b in meta["blas"]:
        print(f"  peer BLAS: {b}")
    if _DROPPED:
        print(f"  dropped from the environment before NumPy loaded: {_DROPPED}")

    summary, tables, failed = {}, [], []
    t_all = time.perf_counter()
    for area in chosen:
        print(f"\n--- {area} ---", flush=True)
        report = Report(area, quick=args.quick)
        t0 = time.perf_counter()
        try:
            load(areas[area]).run(report, quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(area)
        set_threads(threads)  # an area may have changed it
        jpath, png = report.write(args.out, meta)
        tables.append(report.table())
        summary[area] = {"rows": len(report.rows), "seconds": time.perf_counter() - t0, "json": jpath, "png": png}
        print(f"  wrote {jpath} and {png}")

    print()
    for t in tables:
        print(t + "\n")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"meta": meta, "areas": summary, "failed": failed}, f, indent=2, default=str)
    print(f"total {time.perf_counter() - t_all:.1f}s; results in {args.out}/")
    if failed:
        print(f"FAILED areas: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
