"""Benchmark harness shared by every area.

Each ``bench_<area>.py`` defines ``run(report, quick)``; inside, it builds problems and calls
``report.compare(...)`` (ours vs a peer, alternating, several repeats, medians, ratio = peer / ours,
an accuracy figure) or ``report.add(...)`` for a row it measured itself. ``run.py`` drives the
areas, prints the table and writes ``results/<area>.json`` and ``results/<area>.png``.

Rules (from the design's conventions): ours and the peer run in the same process, alternately;
medians, not means; threads are matched and stated; ratios, because the machine is noisy.
"""
import json
import math
import os
import statistics
import sys
import time

# Seconds slept, untimed, before each contestant's call (0 in the suite). run.py instead makes OpenBLAS
# workers sleep right after a call (OPENBLAS_THREAD_TIMEOUT): their spinning would steal the core our
# second thread needs, and an idle gap slows whatever call comes next on these VMs. A bench that wants
# a pause passes ``pause=`` to time_pair; it then precedes both contestants, never only one.
PAUSE_AFTER_PEER = 0.0


def timeit(fn, repeats=5, warmup=1, setup=None):
    """Median wall time of ``fn()`` over ``repeats`` runs (after ``warmup``); returns (median, times, last result)."""
    out = None
    for _ in range(warmup):
        if setup:
            setup()
        out = fn()
    times = []
    for _ in range(repeats):
        if setup:
            setup()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def time_pair(ours, peer, repeats=5, warmup=1, setup=None, pause=None):
    """Time two callables alternately (ours, peer, ours, peer, ...) so that machine noise hits both.

    ``setup`` (if given) runs untimed before every call of either contestant, e.g. to reset an
    in-place output; ``pause`` (default ``PAUSE_AFTER_PEER``) is slept, untimed, before each call of
    either contestant.
    Returns ``(median_ours, median_peer, out_ours, out_peer, times_ours, times_peer)``.
    """
    pause = PAUSE_AFTER_PEER if pause is None else pause
    out_o = out_p = None
    for _ in range(warmup):
        if pause:
            time.sleep(pause)
        if setup:
            setup()
        out_o = ours()
        if pause:
            time.sleep(pause)
        if setup:
            setup()
        out_p = peer()
    t_o, t_p = [], []
    for _ in range(repeats):
        if pause:
            time.sleep(pause)
        if setup:
            setup()
        t0 = time.perf_counter()
        out_o = ours()
        t_o.append(time.perf_counter() - t0)
        if pause:
            time.sleep(pause)
        if setup:
            setup()
        t0 = time.perf_counter()
        out_p = peer()
        t_p.append(time.perf_counter() - t0)
    return statistics.median(t_o), statistics.median(t_p), out_o, out_p, t_o, t_p


def _fmt_time(s):
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def _fmt_num(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.3g}"
    return str(v)


class Report:
    """Collects rows for one area and shows progress as they come."""

    def __init__(self, area, quick=False, stream=sys.stdout):
        self.area = area
        self.quick = quick
        self.rows = []
        self.notes = []
        self.stream = stream
        self._t0 = time.perf_counter()

    def _progress(self, row):
        elapsed = time.perf_counter() - self._t0
        ratio = row.get("ratio")
        r = f"{ratio:.2f}x" if isinstance(ratio, (int, float)) and not math.isnan(ratio) else "-"
        print(f"  [{self.area} {len(self.rows):>3} | {elapsed:6.1f}s] {row['name']}: ours {_fmt_time(row.get('ours_s'))}, "
              f"{row.get('peer') or 'peer'} {_fmt_time(row.get('peer_s'))}, ratio {r}"
              + (f", {row['accuracy_label']} {_fmt_num(row.get('accuracy'))}" if row.get("accuracy_label") else ""),
              file=self.stream, flush=True)

    def add(self, name, *, ours_s, peer=None, peer_s=None, accuracy=None, accuracy_label=None, **extra):
        """Record a row measured by the caller. ``ratio`` = peer_s / ours_s (>1: ours faster)."""
        ratio = (peer_s / ours_s) if (peer_s is not None and ours_s) else None
        row = {"area": self.area, "name": name, "ours_s": ours_s, "peer": peer, "peer_s": peer_s,
               "ratio": ratio, "accuracy": accuracy, "accuracy_label": accuracy_label}
        row.update(extra)
        self.rows.append(row)
        self._progress(row)
        return row

    def compare(self, name, ours, peer, *, peer_name, repeats=5, warmup=1, setup=None, accuracy=None,
                accuracy_label=None, **extra):
        """Time ``ours()`` against ``peer()`` alternately and record the row.

        ``accuracy``, if given, is called as ``accuracy(out_ours, out_peer)`` and should return a
        float (e.g. a relative difference, or ours' residual).
        """
        mo, mp, oo, op, to, tp = time_pair(ours, peer, repeats=repeats, warmup=warmup, setup=setup)
        acc = accuracy(oo, op) if accuracy else None
        return self.add(name, ours_s=mo, peer=peer_name, peer_s=mp, accuracy=acc, accuracy_label=accuracy_label,
                        ours_times=to, peer_times=tp, **extra)

    def note(self, text):
        self.notes.append(text)
        print(f"  [{self.area}] {text}", file=self.stream, flush=True)

    # ------------------------------------------------------------------ output
    def table(self):
        cols = ["benchmark", "ours", "peer", "peer time", "peer/ours", "accuracy", "extra"]
        lines = []
        for r in self.rows:
            skip = {"area", "name", "ours_s", "peer", "peer_s", "ratio", "accuracy", "accuracy_label",
                    "ours_times", "peer_times"}
            extra = ", ".join(f"{k}={_fmt_num(v)}" for k, v in r.items() if k not in skip and not isinstance(v, (list, dict)))
            acc = f"{r['accuracy_label']}={_fmt_num(r['accuracy'])}" if r.get("accuracy_label") else _fmt_num(r.get("accuracy"))
            ratio = f"{r['ratio']:.2f}x" if isinstance(r.get("ratio"), (int, float)) else "-"
            lines.append([r["name"], _fmt_time(r["ours_s"]), r.get("peer") or "-", _fmt_time(r.get("peer_s")), ratio, acc, extra])
        widths = [max(len(str(x)) for x in [c] + [l[i] for l in lines]) for i, c in enumerate(cols)]
        out = [f"== {self.area} =="]
        out.append("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
        out.append("  ".join("-" * w for w in widths))
        for l in lines:
            out.append("  ".join(str(x).ljust(w) for x, w in zip(l, widths)))
        for n in self.notes:
            out.append(f"note: {n}")
        return "\n".join(out)

    def write(self, outdir, meta):
        os.makedirs(outdir, exist_ok=True)
        path = os.path.join(outdir, f"{self.area}.json")
        with open(path, "w") as f:
            json.dump({"area": self.area, "quick": self.quick, "meta": meta, "rows": self.rows, "notes": self.notes},
                      f, indent=2, default=float)
        png = os.path.join(outdir, f"{self.area}.png")
        self.plot(png)
        return path, png

    def plot(self, path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in self.rows if isinstance(r.get("ratio"), (int, float)) and r["ratio"] > 0]
        fig, ax = plt.subplots(figsize=(9, 0.45 * max(len(rows), 1) + 1.5))
        if rows:
            names = [f"{r['name']} (vs {r['peer']})" for r in rows]
            ratios = [r["ratio"] for r in rows]
            colors = ["tab:green" if x >= 1 else "tab:red" for x in ratios]
            ax.barh(range(len(rows)), ratios, color=colors)
            ax.set_yticks(range(len(rows)))
            ax.set_yticklabels(names, fontsize=8)
            ax.axvline(1.0, color="k", lw=1)
            ax.set_xscale("log")
            ax.invert_yaxis()
            for i, x in enumerate(ratios):
                ax.text(x, i, f" {x:.2f}x", va="center", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no ratio rows", ha="center", va="center")
        ax.set_xlabel("peer time / kernforge time (log scale; > 1: kernforge faster)")
        ax.set_title(f"kernforge {self.area}: median of repeats, same process")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
