"""GEMM on the GPU: the tiled CUDA kernel of the Ada Lovelace study (tiles 8, 16, 32; with register
blocking, micro x micro outputs per thread) beside cuBLAS.

Runs only on a KF_CUDA=ON build with a visible GPU; otherwise it notes why and records nothing.
Kernel rows time the kernel alone on device-resident operands with CUDA events (the paper's
measurement); cuBLAS is reached through PyTorch (``torch.matmul`` on CUDA tensors, TF32 off so that
float32 is float32). The end-to-end row times ``kf.gemm.matmul(..., device="cuda")`` from host NumPy
arrays, transfers included, against the same round trip through PyTorch.
"""
import numpy as np

import kernforge as kf


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, "PyTorch has no CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch, ""


def _cublas_ms(torch, n, dtype, warmup, reps, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    a = torch.rand((n, n), generator=g, device="cuda", dtype=tdt) * 2 - 1
    b = torch.rand((n, n), generator=g, device="cuda", dtype=tdt) * 2 - 1
    c = torch.empty((n, n), device="cuda", dtype=tdt)
    for _ in range(warmup):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    ms = []
    for _ in range(reps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        torch.matmul(a, b, out=c)
        e1.record()
        e1.synchronize()
        ms.append(e0.elapsed_time(e1))
    return ms


def run(report, quick=False):
    if not kf.gemm.cuda_available():
        report.note("skipped: needs kernforge built with KF_CUDA=ON and a visible GPU "
                    f"(this build: cuda={kf._core.build_config.get('cuda')}, "
                    f"devices={kf._core.build_config.get('cuda_devices')})")
        return
    from kernforge import _core

    gpu = _core.gemm.cuda_device_name()
    torch, why = _torch_cuda()
    report.note(f"GPU: {gpu}; peer: " + ("cuBLAS through PyTorch " + torch.__version__ + " (TF32 off)"
                                          if torch else f"none ({why})"))
    sizes = (1024, 2048) if quick else (1024, 2048, 4096)
    reps = 5 if quick else 10
    for dt in (np.float32, np.float64):
        name = np.dtype(dt).name
        shapes = [(n, n, n) for n in sizes]
        sw = kf.gemm.tile_sweep(shapes, dtype=dt, repeats=reps, device="cuda")
        for n in sizes:
            peer_s = float(np.median(_cublas_ms(torch, n, dt, 3, reps))) / 1e3 if torch else None
            flops = 2.0 * n ** 3
            recs = [r for r in sw.records if r["m"] == n]
            paper = sorted((r for r in recs if r["micro"] == 1), key=lambda r: r["tile"])
            default = [r for r in recs if r["default"]]
            best = max(recs, key=lambda r: r["gflops"])
            for r in paper + default + ([best] if not best["default"] else []):
                label = ("paper's kernel" if r["micro"] == 1 else "default" if r["default"] else "best")
                report.add(f"cuda tiled tile={r['tile']} micro={r['micro']} ({label}) {n}^3 {name}",
                           ours_s=r["seconds"], peer="cuBLAS" if torch else None, peer_s=peer_s,
                           gflops=round(r["gflops"], 1), peer_gflops=round(flops / peer_s / 1e9, 1) if peer_s else None)
            g1 = [r["gflops"] for r in paper]
            report.note(f"{name} {n}^3: the paper's tile choice (micro=1) moves the kernel by {max(g1) / min(g1):.2f}x; "
                        f"over all {len(recs)} tile x micro pairs by {sw.speedup_range(n, n, n):.2f}x "
                        f"(best tile={best['tile']} micro={best['micro']})")

    # The call a user makes: host arrays in, host array out, transfers included.
    n = 2048
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        A = rng.standard_normal((n, n)).astype(dt)
        B = rng.standard_normal((n, n)).astype(dt)
        C = np.empty((n, n), dt)
        R = A.astype(np.float64) @ B.astype(np.float64)

        def rel(out, _peer, R=R):
            return float(np.linalg.norm(out - R) / np.linalg.norm(R))

        if torch:
            def peer(A=A, B=B):
                return (torch.from_numpy(A).cuda() @ torch.from_numpy(B).cuda()).cpu().numpy()
        else:
            def peer(A=A, B=B):
                return np.matmul(A, B)
        report.compare(f"kf.gemm.matmul device=cuda {n}^3 {np.dtype(dt).name}, host arrays (transfers included)",
                       lambda A=A, B=B, C=C: kf.gemm.matmul(A, B, out=C, device="cuda"), peer,
                       peer_name="torch cuda round trip" if torch else "numpy (CPU)",
                       repeats=3 if quick else 7, accuracy=rel, accuracy_label="relerr vs f64")
