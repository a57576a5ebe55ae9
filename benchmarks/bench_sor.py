"""SOR benchmarks: single sweeps against PyAMG (with achieved GB/s next to the machine's copy
bandwidth), solves against SciPy's CG and spsolve to the same residual.

Run: ``python benchmarks/run.py [--quick] --only sor``.
"""
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import kernforge as kf
from harness import time_pair, timeit

OMEGA = 1.5


def poisson2d(n, dtype=np.float64):
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    I = sp.eye(n)
    return (sp.kron(T, I) + sp.kron(I, T)).tocsr().astype(dtype)


def sweep_bytes(A):
    """Bytes one sweep must move at least: values + column indices, and x read/written + b read."""
    return A.nnz * (A.data.itemsize + A.indices.itemsize) + A.shape[0] * A.data.itemsize * 3


def copy_bandwidth(quick):
    """GB/s of a large NumPy copy (bytes read + bytes written), the practical memory limit."""
    n = (64 if quick else 256) * 2**20 // 8
    src = np.random.default_rng(0).random(n)
    dst = np.empty_like(src)
    t, _, _ = timeit(lambda: np.copyto(dst, src), repeats=5 if quick else 9, warmup=2)
    return 2 * src.nbytes / t / 1e9


def sweep_rows(report, quick, bw):
    try:
        from pyamg.relaxation.relaxation import sor as pyamg_sor
    except ImportError:
        report.note("PyAMG not installed: sweep rows skipped (pip install .[bench])")
        return
    sizes = [256, 512] if quick else [256, 512, 1024]
    rng = np.random.default_rng(1)
    for m in sizes:
        A = poisson2d(m)
        n = A.shape[0]
        b = rng.standard_normal(n)
        x0 = rng.standard_normal(n)
        S = kf.sor.SOR(A)
        xo, xp = x0.copy(), x0.copy()
        gb = sweep_bytes(A) / 1e9
        reps = 7 if quick else 15
        with kf.threads(1):
            mo, mp, _, _, _, _ = time_pair(lambda: S.sweep(xo, b, omega=OMEGA),
                                           lambda: pyamg_sor(A, xp, b, OMEGA, iterations=1), repeats=reps)
        # Same iterates after the same number of sweeps (both did warmup + reps sweeps from x0).
        err = float(np.max(np.abs(xo - xp)) / np.max(np.abs(xp)))
        report.add(f"sweep lex fwd 2-D Poisson {m}^2 (1 thr)", ours_s=mo, peer="pyamg.sor", peer_s=mp,
                   accuracy=err, accuracy_label="max rel diff", ours_GBs=gb / mo, peer_GBs=gb / mp,
                   copy_GBs=bw, frac_copy_bw=gb / mo / bw)


def solve_rows(report, quick):
    sizes = [64] if quick else [64, 128]
    for m in sizes:
        A = poisson2d(m)
        n = A.shape[0]
        b = np.ones(n)
        bn = np.linalg.norm(b)
        rtol = 1e-8
        beta = np.cos(np.pi / (m + 1))  # Jacobi spectral radius on the grid: Young's optimum
        w = 2 / (1 + np.sqrt(1 - beta**2))
        S = kf.sor.SOR(A)

        def ours():
            return S.solve(b, omega=w, rtol=rtol)

        def cg():
            it = [0]

            def cb(_):
                it[0] += 1

            x, info = spla.cg(A, b, rtol=rtol, maxiter=100_000, callback=cb)
            return x, it[0]

        reps = 3 if quick else 5
        mo, mp, ro, (xc, itc), _, _ = time_pair(ours, cg, repeats=reps)
        report.add(f"solve SOR(omega*={w:.3f}) {m}^2 to rtol 1e-8", ours_s=mo, peer="scipy cg", peer_s=mp,
                   accuracy=float(np.linalg.norm(b - A @ ro.x) / bn), accuracy_label="ours rel res",
                   peer_res=float(np.linalg.norm(b - A @ xc) / bn), ours_iter=ro.n_iter, peer_iter=itc)
        Ac = A.tocsc()
        mo, mp, ro, xs, _, _ = time_pair(ours, lambda: spla.spsolve(Ac, b), repeats=reps)
        report.add(f"solve SOR(omega*) {m}^2 vs direct", ours_s=mo, peer="scipy spsolve", peer_s=mp,
                   accuracy=float(np.linalg.norm(ro.x - xs) / np.linalg.norm(xs)), accuracy_label="rel err vs spsolve")


def run(report, quick=False):
    t0 = time.perf_counter()
    bw = copy_bandwidth(quick)
    report.note(f"copy bandwidth (np.copyto, read+write): {bw:.1f} GB/s; sweep bytes = nnz*12 + n*24")
    sweep_rows(report, quick, bw)
    solve_rows(report, quick)
    report.note(f"sor benchmarks took {time.perf_counter() - t0:.1f}s; machine shared, ratios are what matter")
