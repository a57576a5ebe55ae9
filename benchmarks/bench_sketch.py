"""Sketching benchmarks: tall least squares against LAPACK (scipy/numpy lstsq) and LSQR/LSMR,
sketch application against scipy's clarkson_woodruff_transform and scikit-learn's random
projections, randomized SVD against scikit-learn's.

Run: ``python benchmarks/run.py [--quick] --only sketch``.

Every row times ours and the peer alternately in this process (medians). Accuracy columns:
``excess`` = (||r_ours|| - ||r_peer||) / ||r_peer|| for least squares (the issue's "equal relative
residual within 1e-10"), ``ne`` = ||A^T r|| / (||A|| ||r||) for sparse solves, error ratios for SVD.
"""
import statistics
import time

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import kernforge as kf

ks = kf.sketch


def time_interleaved(fns, repeats, warmup=0):
    """Median times of several callables run round-robin (so machine noise hits all alike)."""
    outs = {}
    for _ in range(warmup):
        for k, f in fns.items():
            outs[k] = f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            # NumPy and SciPy each bundle an OpenBLAS whose idle threads spin for a while after a
            # call; a pause lets them sleep so no contestant pays for the previous one's team.
            time.sleep(0.3)
            t0 = time.perf_counter()
            outs[k] = f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, outs


def dense_problem(n, d, kappa, seed=0):
    """A = G diag(sigma) V^T (G Gaussian, nearly orthogonal columns for n >> d), sigma log-spaced."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    A *= np.logspace(0, -np.log10(kappa), d)
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    A = A @ V.T
    x = rng.standard_normal(d)
    b = A @ x
    noise = rng.standard_normal(n)
    b += 1e-4 * np.linalg.norm(b) / np.linalg.norm(noise) * noise
    return A, b


def dense_lstsq(report, quick):
    sizes = [(20000, 100)] if quick else [(100000, 200), (200000, 500)]
    for n, d in sizes:
        A, b = dense_problem(n, d, 1e6)
        big = n * d >= 10**8
        fns = {
            "scipy": lambda: sla.lstsq(A, b, check_finite=False)[0],
            "numpy": lambda: np.linalg.lstsq(A, b, rcond=None)[0],
            "auto": lambda: ks.lstsq(A, b),
            "cholqr": lambda: ks.lstsq(A, b, method="cholqr").x,
            "precondition": lambda: ks.lstsq(A, b, method="precondition").x,
            "solve": lambda: ks.lstsq(A, b, method="solve").x,
        }
        reps = 3 if (quick or big) else 5
        med, outs = time_interleaved(fns, repeats=reps, warmup=0 if big else 1)
        r_ref = np.linalg.norm(b - A @ outs["scipy"])

        def excess(x):
            return float((np.linalg.norm(b - A @ x) - r_ref) / r_ref)

        tag = f"dense lstsq {n}x{d} kappa=1e6"
        auto = outs["auto"]
        label = f"{tag} default(auto: {auto.method}, {auto.n_iter} refinement passes)"
        report.add(label, ours_s=med["auto"], peer="scipy.linalg.lstsq", peer_s=med["scipy"],
                   accuracy=excess(auto.x), accuracy_label="excess")
        report.add(label, ours_s=med["auto"], peer="numpy.linalg.lstsq", peer_s=med["numpy"],
                   accuracy=excess(auto.x), accuracy_label="excess")
        report.add(f"{tag} cholqr", ours_s=med["cholqr"], peer="scipy.linalg.lstsq", peer_s=med["scipy"],
                   accuracy=excess(outs["cholqr"]), accuracy_label="excess")
        report.add(f"{tag} precondition", ours_s=med["precondition"], peer="scipy.linalg.lstsq",
                   peer_s=med["scipy"], accuracy=excess(outs["precondition"]), accuracy_label="excess")
        report.add(f"{tag} solve (srht, m=10d)", ours_s=med["solve"], peer="scipy.linalg.lstsq",
                   peer_s=med["scipy"], accuracy=excess(outs["solve"]), accuracy_label="excess")
        del A, b, outs


def sparse_lstsq(report, quick):
    n, d = (100000, 300) if quick else (200000, 500)
    rng = np.random.default_rng(1)
    B = sp.random(n, d, density=1e-3, format="csr", random_state=rng, data_rvs=rng.standard_normal)
    A = (B @ sp.diags(np.logspace(0, -4, d))).tocsr()  # condition number ~1e4
    b = rng.standard_normal(n)
    nA = float(spla.svds(A, k=1, return_singular_vectors=False)[0])
    tol = 1e-10
    it_cap = 200000

    def ne(x):
        r = b - A @ x
        return float(np.linalg.norm(A.T @ r) / (nA * np.linalg.norm(r)))

    fns = {
        "ours_lsqr": lambda: ks.lstsq(A, b, rtol=tol).x,
        "ours_lsmr": lambda: ks.lstsq(A, b, rtol=tol, solver="lsmr").x,
        "lsqr": lambda: spla.lsqr(A, b, atol=tol, btol=tol, iter_lim=it_cap),
        "lsmr": lambda: spla.lsmr(A, b, atol=tol, btol=tol, maxiter=it_cap),
    }
    med, outs = time_interleaved(fns, repeats=1, warmup=0)  # the peers take minutes: one round
    tag = f"sparse lstsq {n}x{d} density=1e-3 kappa=1e4 tol={tol:g}"
    report.add(f"{tag} ours(lsqr)", ours_s=med["ours_lsqr"], peer="scipy lsqr", peer_s=med["lsqr"],
               accuracy=ne(outs["ours_lsqr"]), accuracy_label="ne", peer_ne=ne(outs["lsqr"][0]),
               peer_iters=int(outs["lsqr"][2]))
    report.add(f"{tag} ours(lsmr)", ours_s=med["ours_lsmr"], peer="scipy lsmr", peer_s=med["lsmr"],
               accuracy=ne(outs["ours_lsmr"]), accuracy_label="ne", peer_ne=ne(outs["lsmr"][0]),
               peer_iters=int(outs["lsmr"][2]))


def sketch_apply(report, quick):
    n, d = (20000, 100) if quick else (100000, 200)
    m = 4 * d
    rng = np.random.default_rng(2)
    A = rng.standard_normal((n, d))
    As = sp.random(n, d, density=1e-2, format="csr", random_state=rng)
    reps = 5 if quick else 7
    try:
        from scipy.linalg import clarkson_woodruff_transform as cwt
    except ImportError:
        cwt = None
    if cwt is not None:
        for label, X in (("dense C", A), ("dense F", np.asfortranarray(A)), ("csr 1e-2", As)):
            mo, mp, _, _, _, _ = _pair(lambda: ks.CountSketch(m, n, seed=0) @ X, lambda: cwt(X, m, seed=0), reps)
            report.add(f"CountSketch S@A {label} {n}x{d} m={m} (incl. build)", ours_s=mo,
                       peer="scipy clarkson_woodruff", peer_s=mp)
    try:
        from sklearn.random_projection import GaussianRandomProjection, SparseRandomProjection
    except ImportError:
        report.note("scikit-learn not installed: random-projection rows skipped")
        return
    # scikit-learn projects features (columns): sketching the n rows of A is projecting A^T.
    At = np.ascontiguousarray(A.T)
    for label, ours in (("VerySparseRP", lambda: ks.VerySparseRandomProjection(m, n, seed=0) @ A),
                        ("SparseSign k=8", lambda: ks.SparseSign(m, n, nnz_per_col=8, seed=0) @ A)):
        mo, mp, _, _, _, _ = _pair(ours, lambda: SparseRandomProjection(m, density="auto", random_state=0)
                                   .fit_transform(At), reps)
        report.add(f"{label} S@A dense {n}x{d} m={m} (incl. build)", ours_s=mo, peer="sklearn SparseRandomProjection",
                   peer_s=mp)
    for label, ours in (("Gaussian", lambda: ks.Gaussian(m, n, seed=0) @ A),
                        ("SRHT", lambda: ks.SRHT(m, n, seed=0) @ A),
                        ("SRFT", lambda: ks.SRFT(m, n, seed=0) @ A)):
        mo, mp, _, _, _, _ = _pair(ours, lambda: GaussianRandomProjection(m, random_state=0).fit_transform(At),
                                   3 if not quick else reps)
        report.add(f"{label} S@A dense {n}x{d} m={m} (incl. build)", ours_s=mo,
                   peer="sklearn GaussianRandomProjection", peer_s=mp)


def _pair(ours, peer, reps):
    # Both contestants get the same pause before every call. harness.time_pair pauses only after
    # the peer, so the first call after the pause (ours) pays the wake-up from idle: measured
    # 13 ms -> 20 ms for a 100000 x 200 CountSketch on 2 threads, which alone turned 1.4x into 0.75x.
    med, outs = time_interleaved({"ours": ours, "peer": peer}, repeats=reps, warmup=1)
    return med["ours"], med["peer"], outs["ours"], outs["peer"], None, None


def rsvd(report, quick):
    try:
        from sklearn.utils.extmath import randomized_svd as sk_rsvd
    except ImportError:
        report.note("scikit-learn not installed: randomized SVD row skipped")
        return
    n, d, k = (2000, 1000, 20) if quick else (10000, 2000, 50)
    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((n, 200)))
    V, _ = np.linalg.qr(rng.standard_normal((d, 200)))
    A = (U * (1.0 / (1 + np.arange(200)) ** 1.5)) @ V.T + 1e-4 * rng.standard_normal((n, d)) / np.sqrt(n)
    for sketch in ("gaussian", "srht"):
        from harness import time_pair

        mo, mp, oo, op, _, _ = time_pair(lambda: ks.randomized_svd(A, k, sketch=sketch, seed=0),
                                         lambda: sk_rsvd(A, k, random_state=0), repeats=3 if not quick else 5)
        eo = np.linalg.norm(A - (oo.U * oo.s) @ oo.Vt)
        ep = np.linalg.norm(A - (op[0] * op[1]) @ op[2])
        report.add(f"randomized_svd {n}x{d} k={k} sketch={sketch}", ours_s=mo,
                   peer="sklearn randomized_svd", peer_s=mp, accuracy=float(eo / ep),
                   accuracy_label="err/peer_err")


def run(report, quick):
    import threadpoolctl  # noqa: F401  (a bench extra; the runner already matched BLAS threads)

    report.note("threads: kernforge and OpenBLAS both at the runner's --threads; the machine is shared "
                "and oversubscribed, so absolute times are noisy: read the ratios")
    sketch_apply(report, quick)
    dense_lstsq(report, quick)
    sparse_lstsq(report, quick)
    rsvd(report, quick)
