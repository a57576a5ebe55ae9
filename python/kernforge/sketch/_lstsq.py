"""Sketch-based least squares: randomized Cholesky-QR, sketch-and-precondition, sketch-and-solve."""
import dataclasses
import warnings

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .._errors import ConvergenceWarning
from .._result import Result
from .. import _core
from .._validation import check_choice, check_finite, check_int, check_positive, check_seed, float_dtype_of
from ._operators import SketchOperator, make_sketch

__all__ = ["LstsqResult", "lstsq"]

_METHODS = ("auto", "gram", "cholqr", "precondition", "solve")

# "auto" takes the Gram route when cond(R0)^2 eps <= this (cond(R0): LAPACK's 1-norm estimate for
# the sketch's R factor, about cond(A)). The refinement then contracts by about
# eps cond(A)^2 per pass (measured: 1e-5 at cond 1e6, 0.1 near cond 1e8), so it needs a handful
# of cheap passes; beyond this the one-pass Cholesky-QR route is cheaper.
_GRAM_COND2_EPS = 50.0
_GRAM_MAX_STEPS = 10


@dataclasses.dataclass(frozen=True, repr=False)
class LstsqResult(Result):
    """Result of :func:`lstsq`.

    Attributes
    ----------
    x : ndarray, shape (d,) or (d, k)
        The least-squares solution (the minimum-norm one when ``A`` is rank-deficient).
    residual_norm : float or ndarray of shape (k,)
        ``||b - A x||_2`` (per right-hand side).
    n_iter : int
        Iterations of the Krylov solver ("precondition": the most over the right-hand sides),
        refinement steps ("gram", "cholqr"), 0 ("solve").
    converged : bool
        False only if LSQR/LSMR stopped at ``max_iter`` before ``rtol``.
    method : str
        The method that ran ("gram", "cholqr", "precondition" or "solve").
    rank : int
        Numerical rank of the sketch ``S A`` (equal to rank(A) with high probability); ``rank < d``
        means A is rank-deficient and x is the minimum-norm solution.
    sketch : SketchOperator
        The operator that was used (``sketch.m`` rows).
    sketch_size : int
        Rows of the sketch, m.
    """

    x: np.ndarray
    residual_norm: object
    n_iter: int
    converged: bool
    method: str
    rank: int
    sketch: SketchOperator
    sketch_size: int


def _validate_A(A, check=True):
    if isinstance(A, spla.LinearOperator):
        if len(A.shape) != 2:
            raise ValueError(f"A must be 2-D, got shape {A.shape}")
        return "linop", A, np.dtype(A.dtype) if A.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    if sp.issparse(A):
        dt = float_dtype_of("A", A)
        if A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"A must not be empty, got shape {A.shape}")
        C = A.tocsc() if A.format == "csc" else A.tocsr()
        if C.dtype != dt:
            C = C.astype(dt)
        if C.nnz:
            check_finite(C.data, "A")
        return "sparse", C, dt
    arr = np.asarray(A)
    if arr.dtype == object:
        raise TypeError("A must be a numeric array, got dtype object")
    if arr.ndim != 2:
        raise ValueError(f"A must be 2-D, got {arr.ndim}-D with shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"A must not be empty, got shape {arr.shape}")
    dt = float_dtype_of("A", arr)
    if arr.dtype != dt:
        arr = arr.astype(dt)
    if check:
        check_finite(arr, "A")
    return "dense", arr, dt


def _dense_product(A, X, trans):
    """A X or A^T X for a dense A through SciPy's BLAS, without copying A.

    Every BLAS call of the dense drivers goes to SciPy's OpenBLAS: mixing it with NumPy's (a second
    OpenBLAS with its own spinning thread team) oversubscribes the cores.
    """
    if A.dtype not in (np.float32, np.float64) or not (A.flags.c_contiguous or A.flags.f_contiguous):
        return (A.T if trans else A) @ X
    X2 = X if X.ndim == 2 else X[:, None]
    gemm = sla.get_blas_funcs("gemm", (A,))
    X2 = np.asarray(X2, dtype=A.dtype)
    if A.flags.f_contiguous:
        out = gemm(1.0, A, X2, trans_a=1 if trans else 0)
    else:  # C-ordered A is the F-ordered A^T
        out = gemm(1.0, A.T, X2, trans_a=0 if trans else 1)
    return out if X.ndim == 2 else out[:, 0]


def _matvec(kind, A, X):
    if kind == "dense":
        return _dense_product(A, X, False)
    if kind != "linop":
        return A @ X
    return A.matvec(X) if X.ndim == 1 else A.matmat(X)


def _rmatvec(kind, A, X):
    if kind == "dense":
        return _dense_product(A, X, True)
    if kind != "linop":
        return A.T @ X
    return A.rmatvec(X) if X.ndim == 1 else A.rmatmat(X)


class _Preconditioner:
    """x = N y with N = R^{-1} (full rank, R upper triangular) or V_r diag(1/s_r) (rank-deficient)."""

    def __init__(self, R=None, V=None, s=None, rcond=0.0):
        self.R, self.V, self.s = R, V, s
        self.rcond = rcond  # LAPACK trcon's reciprocal 1-norm condition estimate of R (0 if rank-deficient)
        self.rank = R.shape[0] if R is not None else V.shape[1]

    def apply(self, Y):  # N Y
        if self.R is not None:
            return sla.solve_triangular(self.R, Y, lower=False, check_finite=False)
        return self.V @ (Y / self.s[:, None] if Y.ndim == 2 else Y / self.s)

    def explicit(self):
        """N as a dense d x r matrix (R^{-1} by a triangular inversion, or V_r diag(1/s_r))."""
        if self.R is not None:
            trtri = sla.get_lapack_funcs("trtri", (self.R,))
            W, info = trtri(self.R, lower=0)
            if info != 0:
                raise np.linalg.LinAlgError("singular triangular factor")
            return np.triu(W)
        return self.V / self.s

    def apply_t(self, Y):  # N^T Y
        if self.R is not None:
            return sla.solve_triangular(self.R, Y, lower=False, trans="T", check_finite=False)
        Z = self.V.T @ Y
        return Z / self.s[:, None] if Z.ndim == 2 else Z / self.s


def _sketch_factor(SA, rank_rtol):
    """Factor the sketch S A (m x d): R from QR, or a truncated SVD when S A is (nearly) rank-deficient."""
    d = SA.shape[1]
    R = sla.qr(SA, mode="r", overwrite_a=True, check_finite=False)[0][:d]
    dt = R.dtype
    trcon = sla.get_lapack_funcs("trcon", (R,))
    rcond, info = trcon(R, norm="1", uplo="U", diag="N")
    if info == 0 and np.isfinite(rcond) and rcond > 10 * rank_rtol and np.all(np.diag(R) != 0):
        return _Preconditioner(R=np.asarray(R, dtype=dt), rcond=float(rcond))
    # R's singular values are those of S A.
    _, s, Vt = sla.svd(R, full_matrices=False, check_finite=False, lapack_driver="gesdd")
    if s[0] == 0:
        raise ValueError("A is zero (its sketch has no nonzero singular value); the solution is x = 0")
    r = int(np.sum(s > rank_rtol * s[0]))
    return _Preconditioner(V=np.ascontiguousarray(Vt[:r].T), s=s[:r].copy())


def _dense_A(kind, A, dt):
    if kind == "dense":
        return A
    if kind == "sparse":
        return A.toarray()
    return np.asarray(A.matmat(np.eye(A.shape[1], dtype=dt)), dtype=dt)


def _cholqr(kind, A, B, P, dt, refine):
    """Randomized Cholesky-QR: M = A N, M^T M = R1^T R1, x = N R1^{-1} R1^{-T} M^T b, plus refinement.

    M is formed a block of rows at a time and folded into the Gram matrix and M^T b while the block
    is still in cache, so A is streamed once for the factorization and M (as large as A) never exists.
    """
    if kind == "linop":
        A, kind = _dense_A(kind, A, dt), "dense"
    Ad = A
    n = Ad.shape[0]
    r = P.rank
    # A few large blocks: every BLAS call wakes a thread team, which costs dearly on a busy machine.
    bs = max(256, min(-(-n // 8), (1 << 23) // max(r, 1)))
    G = np.zeros((r, r), dtype=dt, order="F")
    C = np.zeros((r, B.shape[1]), dtype=dt, order="F")
    gemm = sla.get_blas_funcs("gemm", (G,))
    syrk = sla.get_blas_funcs("syrk", (G,))
    # M_b = A_b R0^{-1} as a triangular multiply by the explicit inverse (trmm runs faster than
    # trsm in OpenBLAS; the inverse is just another preconditioner, applied consistently, and the
    # refinement step sees the true A).
    W = np.asfortranarray(P.explicit().astype(dt)) if P.R is not None else None
    trmm = sla.get_blas_funcs("trmm", (W,)) if W is not None else None
    NV = None if P.R is not None else np.asfortranarray((P.V / P.s).astype(dt))

    def m_block(i0, i1):
        Ab = Ad[i0:i1]
        if kind == "sparse":
            Ab = Ab.toarray()
        if trmm is not None:
            # (A_b W)^T = W^T A_b^T: one BLAS-3 trmm on the F-ordered A_b^T; returns M_b^T.
            return trmm(1.0, W, np.ascontiguousarray(Ab).T, side=0, lower=0, trans_a=1, diag=0)
        return gemm(1.0, NV, np.ascontiguousarray(Ab).T, trans_a=1)

    for i0 in range(0, n, bs):
        i1 = min(n, i0 + bs)
        Mt = m_block(i0, i1)
        G = syrk(1.0, Mt, beta=1.0, c=G, trans=0, lower=0, overwrite_c=1)  # upper triangle: all potrf reads
        C = gemm(1.0, Mt, B[i0:i1], beta=1.0, c=C, overwrite_c=1)
    try:
        R1 = sla.cholesky(G, lower=False, check_finite=False)
        if not np.all(np.isfinite(R1)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        # The sketch failed to precondition (kappa(A N) too large for a Gram matrix): take the
        # Householder QR of M instead, slower but always stable.
        M = np.vstack([m_block(i0, min(n, i0 + bs)).T for i0 in range(0, n, bs)])
        Q, R1 = sla.qr(M, mode="economic", check_finite=False)
        C = R1.T @ (Q.T @ B)

    def solve(c):
        y = sla.solve_triangular(R1, c, lower=False, trans="T", check_finite=False)
        y = sla.solve_triangular(R1, y, lower=False, check_finite=False)
        return gemm(1.0, W, y) if W is not None else P.apply(y)

    X = solve(C)
    for _ in range(refine):
        g, _ = _normal_residual(kind, Ad, B, X)
        X = X + solve(gemm(1.0, W, g, trans_a=1) if W is not None else P.apply_t(g))
    return X, refine


def _normal_residual(kind, A, B, X):
    """(A^T (B - A X), ||B - A X||^2 per column); X = None means 0. One fused pass over a dense A."""
    if kind == "dense":
        Xf = None if X is None else np.asfortranarray(X, dtype=A.dtype)
        return _core.sketch.normal_residual(A, B, Xf)
    Rsd = B if X is None else B - _matvec(kind, A, X)
    return np.asfortranarray(_rmatvec(kind, A, Rsd), dtype=B.dtype), np.einsum("ij,ij->j", Rsd, Rsd)


def _gram_matrix(kind, A, dt):
    """Upper triangle of A^T A: one BLAS syrk on the contiguous layout of a dense A (no copy)."""
    if kind == "dense":
        syrk = sla.get_blas_funcs("syrk", (A,))
        return syrk(1.0, A, trans=1) if A.flags.f_contiguous else syrk(1.0, A.T, trans=0)
    if kind == "sparse":
        return np.asarray((A.T @ A).toarray(), dtype=dt)
    Ad = _dense_A(kind, A, dt)
    return Ad.T @ Ad


def _gram(kind, A, B, dt, max_steps):
    """Normal equations by Cholesky of A^T A (syrk: half the flops of a QR), refined to full accuracy.

    x0 = R^-1 R^-T A^T b with R^T R = A^T A; then x += R^-1 R^-T A^T (b - A x), each step one fused
    pass over A. A computed Gram matrix is off by O(eps ||A||^2), so the steps contract by about
    eps cond(A)^2 (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., sec. 20.5;
    refinement of the seminormal equations, Bjorck 1987): for cond(A) well below eps^-1/2 a few
    passes reach the accuracy of Householder QR. Returns (X, steps, residual norms), or None when
    the Cholesky factorization breaks down or the refinement does not converge (the caller then
    falls back to Cholesky-QR).
    """
    eps = np.finfo(dt).eps
    G = _gram_matrix(kind, A, dt)
    try:
        R = sla.cholesky(G, lower=False, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    if not (np.all(np.isfinite(R)) and np.all(np.diag(R) > 0)):
        return None

    def solve(g):
        y = sla.solve_triangular(R, g, lower=False, trans="T", check_finite=False)
        return sla.solve_triangular(R, y, lower=False, check_finite=False)

    g, rr = _normal_residual(kind, A, B, None)
    bnorm = np.sqrt(rr)
    X = solve(g)
    prev, steps, ok = 1.0, 0, max_steps == 0
    dX = np.zeros_like(X)
    for steps in range(1, max_steps + 1):
        g, rr = _normal_residual(kind, A, B, X)
        dX = solve(g)
        xn = np.maximum(np.linalg.norm(X, axis=0), np.finfo(dt).tiny)
        step = float(np.max(np.linalg.norm(dX, axis=0) / xn))
        X = X + dX
        rho = step / prev if prev > 0 else 0.0
        if step <= eps or rho * step <= 64 * eps:
            ok = True  # the next step would not change x at working precision
            break
        if rho > 0.5:
            # No longer contracting: at the rounding floor (fine) or too ill-conditioned (not).
            # ||A dx|| ~ ||R dx|| relative to ||r|| tells which: the residual is settled when
            # the last step moved it by less than sqrt(eps) (changing ||r|| by < eps relative).
            rn = np.maximum(np.sqrt(rr), np.maximum(eps * bnorm, np.finfo(dt).tiny))
            ok = bool(np.all(np.linalg.norm(R @ dX, axis=0) <= np.sqrt(eps) * rn))
            break
        prev = step
    if not ok:
        return None
    # ||b - A (x + dx)||^2 = ||r||^2 - 2 dx.g + ||A dx||^2 with ||A dx|| = ||R dx||: the residual of
    # the returned x without another pass over A (g and r are those of the last pass).
    if not steps:
        return X, 0, None
    RdX = R @ dX
    rr = rr - 2.0 * np.einsum("ij,ij->j", dX, g) + np.einsum("ij,ij->j", RdX, RdX)
    return X, steps, np.sqrt(np.maximum(rr, 0.0))


def _precondition(kind, A, B, SA, SB, P, dt, rtol, max_iter, solver, refine):
    n, d = A.shape
    r = P.rank
    # Sketch-and-solve start: x0 = (S A)^+ S b = N N^T (S A)^T S b.
    # N explicitly: inside the Krylov loop every product is then a NumPy GEMV (one BLAS library,
    # no per-iteration triangular solves); any nonsingular N is a valid preconditioner, and
    # the refinement restart below absorbs the rounding of the inversion.
    W = np.ascontiguousarray(P.explicit(), dtype=dt)
    WT = np.ascontiguousarray(W.T)
    X0 = W @ (WT @ (SA.T @ SB))
    R0 = B - (A @ X0 if kind != "linop" else _matvec(kind, A, X0))

    def mv(y):
        y = W @ np.asarray(y, dtype=dt).reshape(r)
        return A @ y if kind != "linop" else A.matvec(y)

    def rmv(z):
        z = np.asarray(z, dtype=dt).reshape(n)
        return WT @ (A.T @ z if kind != "linop" else A.rmatvec(z))

    op = spla.LinearOperator((n, r), matvec=mv, rmatvec=rmv, dtype=dt)

    def krylov(rhs):
        if solver == "lsqr":
            out = spla.lsqr(op, rhs, atol=rtol, btol=rtol, conlim=1e12, iter_lim=max_iter)
        else:
            out = spla.lsmr(op, rhs, atol=rtol, btol=rtol, conlim=1e12, maxiter=max_iter)
        # istop 3: the (preconditioned) condition estimate passed conlim; 7: iteration cap.
        return W @ out[0].astype(dt, copy=False), int(out[2]), out[1] not in (3, 7)

    X = np.empty_like(X0)
    n_iter, converged = 0, True
    for j in range(B.shape[1]):
        dx, it, ok = krylov(R0[:, j])
        x = X0[:, j] + dx
        for _ in range(refine):
            # Sketch-and-precondition alone is forward but not backward stable when kappa(A) is
            # large (Meier, Nakatsukasa, Townsend & Webb, 2024); restarting the Krylov solve on
            # the recomputed residual (SPIR, Epperly, Meier & Nakatsukasa, 2024) restores it.
            dx, it2, ok2 = krylov(B[:, j] - (A @ x if kind != "linop" else A.matvec(x)))
            x = x + dx
            it += it2
            ok = ok and ok2
        X[:, j] = x
        n_iter = max(n_iter, it)
        converged &= bool(ok)
    return X, n_iter, converged


def lstsq(A, b, method="auto", *, sketch=None, sketch_size=None, rtol=None, max_iter=None, rank_rtol=None,
          solver="lsqr", refine=1, seed=0, warn=True):
    """Least squares ``min_x ||A x - b||_2`` for tall A by randomized sketching.

    Parameters
    ----------
    A : array_like (n, d), scipy.sparse matrix or scipy.sparse.linalg.LinearOperator
        Tall (n >= d). Dense arrays may be C or Fortran ordered; integer input is cast to float64,
        float32 is computed in float32.
    b : array_like, shape (n,) or (n, k)
        Right-hand side(s).
    method : {"auto", "gram", "cholqr", "precondition", "solve"}
        * "auto": "gram" for dense A when the sketch shows cond(A)^2 eps is small (about
          cond(A) < 5e7 in float64, 5e3 in float32), otherwise "cholqr"; "precondition" for
          sparse A and operators.
        * "gram": Cholesky of the Gram matrix A^T A (one BLAS syrk, half the flops of a
          Householder QR), x from the normal equations, then iterative refinement
          x += R^-1 R^-T A^T (b - A x) until x stops changing (each step one fused pass over A;
          at most max(refine, 10) steps). The steps contract by about eps cond(A)^2, so the result
          has Householder-QR accuracy whenever that is small; if the Cholesky factorization breaks
          down or the refinement stalls, it falls back to "cholqr" (``result.method`` says which
          ran). A sketch still runs first: it checks A for NaN/inf and, for "auto", estimates cond(A).
        * "cholqr": randomized Cholesky-QR. Sketch S A, R0 from its QR,
          M = A R0^{-1} (one trmm by the inverse), R1 = chol(M^T M) (one syrk), x = R0^{-1} R1^{-1} R1^{-T} M^T b,
          then one step of iterative refinement on the residual. BLAS-3, a fixed few passes over A,
          Householder-QR accuracy.
        * "precondition": Blendenpik/LSRN sketch-and-precondition (default for sparse A and
          operators). LSQR (or LSMR) on A N, N = R0^{-1} (or V_r diag(1/s_r) when S A is
          rank-deficient), started from the sketch-and-solve solution, to ``rtol``.
        * "solve": sketch-and-solve, x = argmin ||S A x - S b|| with a dense sketch (SRHT by
          default). Only eps-accurate: see Notes.
    sketch : str or SketchOperator, optional
        One of "countsketch", "sparse_sign", "very_sparse", "gaussian", "srht", "srft", or an operator with
        ``n`` columns. Default: "countsketch" for "gram" and "cholqr", "sparse_sign" for "precondition",
        "srht" for "solve".
    sketch_size : int, optional
        Rows m of the sketch. Default: min(n, 4 d) for "gram", "cholqr" and "precondition",
        min(n, max(10 d, d + 100)) for "solve". Must be >= d except for "solve".
    rtol : float, optional
        Tolerance of LSQR/LSMR for "precondition" (``atol = btol = rtol``); default 1e-14 in
        float64, 1e-6 in float32.
    max_iter : int, optional
        Iteration cap for each LSQR/LSMR run (default max(200, 4 d); the preconditioned system
        has condition number about 3, so a few dozen iterations are typical).
    rank_rtol : float, optional
        Singular values of S A below ``rank_rtol * s_max`` count as zero (default ``m * eps``,
        as in numpy.linalg.lstsq).
    solver : {"lsqr", "lsmr"}
        Krylov solver for "precondition".
    refine : int, default 1
        Steps of iterative refinement ("gram": the cap is max(refine, 10) and the steps stop when
        converged; 0 turns refinement off, and then "auto" picks "cholqr"): "cholqr" re-solves with the residual (cheap: the
        factorization is reused); "precondition" restarts LSQR/LSMR on the recomputed residual,
        which makes sketch-and-precondition backward stable at large condition numbers (SPIR).
        0 turns refinement off.
    seed : int, default 0
        Seed of the sketch (ignored when ``sketch`` is an operator).
    warn : bool, default True
        Emit a ConvergenceWarning when LSQR/LSMR stops at ``max_iter``.

    Returns
    -------
    LstsqResult
        ``x``, ``residual_norm``, ``n_iter``, ``converged``, ``method``, ``rank``, ``sketch``,
        ``sketch_size``.

    Raises
    ------
    ValueError
        If A or b is empty, contains NaN or inf, shapes disagree, A is wide (n < d), the sketch is
        larger than n or (for "cholqr"/"precondition") smaller than d, or an option is unknown.
    TypeError
        If A or b has a complex or non-numeric dtype.

    Notes
    -----
    "gram" solves the normal equations R^T R x = A^T b (R^T R = fl(A^T A)) and refines; each
    step multiplies the error by about ||I - R^-T A^T A R^-1|| = O(eps cond(A)^2) [5]_, so at
    cond(A) = 1e6 in float64 two passes reach the rounding floor of Householder QR. In float32
    the residual and A^T r are accumulated in float64 (mixed-precision refinement), but the
    Gram route is taken only up to cond(A) of a few thousand.

    Rank deficiency: when ``S A`` has numerical rank r < d (with high probability the rank of A),
    "gram" falls back to "cholqr"; "cholqr" and "precondition" use N = V_r diag(1/s_r) from the SVD of the sketch, so x lies in
    the row space of A: the minimum-norm solution, as LSRN [3]_. ``rank`` reports r.

    "solve" guarantees, for a Gaussian or SRHT sketch of m rows, ``||A x - b|| <= (1 + eps)
    ||A x* - b||`` with eps of order d / m (for a Gaussian sketch E||A x - b||^2 =
    (1 + d / (m - d - 1)) ||A x* - b||^2), and, for m of order eps^-2 d log^3(n / delta), the
    entrywise bound ``||x - x*||_inf <= eps / sqrt(d) ||A x* - b|| ||A^+||`` of [4]_. Sparse
    sketches carry no l_inf guarantee.

    References
    ----------
    .. [1] H. Avron, P. Maymounkov, S. Toledo, "Blendenpik: Supercharging LAPACK's least-squares
       solver", SIAM J. Sci. Comput. 32(3), 2010.
    .. [2] Y. Fan, Y. Guo, T. Lin, "A novel randomized XR-based preconditioned CholeskyQR
       algorithm", 2021; O. Balabanov, "Randomized Cholesky QR factorizations", 2022.
    .. [3] X. Meng, M. A. Saunders, M. W. Mahoney, "LSRN: A parallel iterative solver for strongly
       over- or underdetermined systems", SIAM J. Sci. Comput. 36(2), 2014.
    .. [4] Z. Song, M. Ye, J. Yin, L. Zhang, "A Nearly-Optimal Bound for Fast Regression with
       l_inf Guarantee", ICML 2023.
    .. [5] N. J. Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002,
       sec. 20.5 (iterative refinement for least squares); A. Bjorck, "Stability analysis of the
       method of seminormal equations for linear least squares problems", Linear Algebra Appl.
       88/89, 1987.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((2000, 20)); b = rng.standard_normal(2000)
    >>> res = kf.sketch.lstsq(A, b)
    >>> res.method, res.rank
    ('gram', 20)
    >>> x_ref = np.linalg.lstsq(A, b, rcond=None)[0]
    >>> bool(np.allclose(res.x, x_ref, rtol=1e-10, atol=1e-12))
    True
    >>> res2 = kf.sketch.lstsq(A, b, method="precondition")
    >>> bool(res2.converged and np.allclose(res2.x, x_ref, rtol=1e-8, atol=1e-10))
    True
    """
    check_choice(method, "method", _METHODS)
    check_choice(solver, "solver", ("lsqr", "lsmr"))
    kind, A, dt_a = _validate_A(A, check=False)
    n, d = A.shape
    if n < d:
        raise ValueError(f"A must be tall (n >= d) for sketched least squares, got shape {A.shape}; "
                         "use scipy.linalg.lstsq for underdetermined systems")
    barr = np.asarray(b)
    if barr.dtype == object:
        raise TypeError("b must be a numeric array, got dtype object")
    if barr.ndim not in (1, 2) or barr.shape[0] != n:
        raise ValueError(f"b must have shape ({n},) or ({n}, k), got {barr.shape}")
    if barr.size == 0:
        raise ValueError(f"b must not be empty, got shape {barr.shape}")
    dt_b = float_dtype_of("b", barr)
    dt = np.dtype(np.float32) if (dt_a == np.float32 and dt_b == np.float32) else np.dtype(np.float64)
    if kind == "dense" and A.dtype != dt:
        A = A.astype(dt)
    elif kind == "sparse" and A.dtype != dt:
        A = A.astype(dt)
    vec = barr.ndim == 1
    B = np.array(barr.reshape(n, -1), dtype=dt, order="F")
    check_finite(B, "b")
    seed = check_seed(seed)
    eps = np.finfo(dt).eps

    auto = method == "auto"
    if auto:
        method = ("gram" if refine else "cholqr") if kind == "dense" else "precondition"
    if kind == "dense" and not (A.flags.c_contiguous or A.flags.f_contiguous):
        A = np.ascontiguousarray(A)  # the BLAS and fused kernels stream A along a contiguous axis
    default_sketch = {"gram": "countsketch", "cholqr": "countsketch", "precondition": "sparse_sign", "solve": "srht"}[method]
    if sketch is None:
        sketch = default_sketch
    if isinstance(sketch, SketchOperator):
        m = sketch.m
        if sketch_size is not None and check_int(sketch_size, "sketch_size", minimum=1) != m:
            raise ValueError(f"sketch_size = {sketch_size} disagrees with the operator's m = {m}")
    elif sketch_size is None:
        m = min(n, 4 * d) if method != "solve" else min(n, max(10 * d, d + 100))
    else:
        m = check_int(sketch_size, "sketch_size", minimum=1)
        if m > n:
            raise ValueError(f"sketch_size must be <= n = {n} (a sketch compresses the rows), got {m}")
    if method != "solve" and m < d:
        raise ValueError(f"sketch_size m = {m} is smaller than d = {d}: too small to precondition "
                         f"(S A must have at least d rows; use m >= 2 d, ideally 4 d)")
    S = make_sketch(sketch, m, n, seed)
    rnorm = None
    # A dense A is checked for NaN/inf through its sketch when every row of A reaches the sketch
    # with a nonzero weight (then a non-finite entry always leaves a non-finite S A): one pass saved.
    check_later = kind == "dense" and getattr(S, "covers_all_rows", False)
    if kind == "dense" and not check_later:
        check_finite(A, "A")

    if rank_rtol is None:
        rank_rtol = max(m, d) * eps
    rank_rtol = check_positive(rank_rtol, "rank_rtol")
    if rtol is None:
        rtol = 1e-14 if dt == np.float64 else 1e-6
    rtol = check_positive(rtol, "rtol", allow_zero=True)
    if max_iter is None:
        max_iter = max(200, 4 * d)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    refine = check_int(refine, "refine", minimum=0)

    SA = np.asarray(S._apply_prepared(*_operand(kind, A)), dtype=dt)
    if check_later and not np.isfinite(SA).all():
        check_finite(A, "A")
        raise ValueError("A is too large in magnitude: its sketch overflows; rescale A")
    if method == "solve":
        SB = S._apply_prepared("dense", B)
        X, _, rank, _ = sla.lstsq(SA, SB, cond=rank_rtol, check_finite=False)
        X = X.astype(dt, copy=False)
        n_iter, converged = 0, True
    else:
        keep = SA.copy() if method == "precondition" else None
        P = _sketch_factor(SA, rank_rtol)
        rank = P.rank
        if method == "gram":
            out = None
            # The sketch's R estimates cond(A): the Gram route only when its refinement converges fast
            # ("auto"), or whenever A has full rank (explicit "gram"); it falls back to Cholesky-QR.
            if P.R is not None and (not auto or P.rcond ** -2 * eps <= _GRAM_COND2_EPS):
                out = _gram(kind, A, B, dt, max(refine, _GRAM_MAX_STEPS) if refine else 0)
            if out is not None:
                X, n_iter, rnorm = out
                converged = True
            else:
                method = "cholqr"
        if method == "cholqr":
            X, n_iter = _cholqr(kind, A, B, P, dt, refine)
            converged = True
        elif method == "precondition":
            SB = S._apply_prepared("dense", B)
            X, n_iter, converged = _precondition(kind, A, B, keep, SB, P, dt, rtol, max_iter, solver, refine)
            if not converged and warn:
                warnings.warn(f"{solver.upper()} on the preconditioned system did not reach rtol={rtol:g} in "
                              f"{max_iter} iterations", ConvergenceWarning, stacklevel=2)
    if rnorm is None:
        rnorm = np.linalg.norm(B - _matvec(kind, A, X), axis=0)
    if vec:
        X, rnorm = X[:, 0], float(rnorm[0])
    return LstsqResult(x=np.ascontiguousarray(X), residual_norm=rnorm, n_iter=int(n_iter), converged=bool(converged),
                       method=method, rank=int(rank), sketch=S, sketch_size=int(m))


def _operand(kind, A):
    if kind == "dense":
        return "dense", A
    if kind == "sparse":
        return ("csc" if A.format == "csc" else "csr"), A
    return "linop", A
