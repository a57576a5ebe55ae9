"""Leverage scores, l1 Lewis weights and importance sampling of rows."""
import dataclasses
import math

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .._result import Result
from .._validation import check_choice, check_int, check_positive, check_seed
from ._lstsq import _sketch_factor, _validate_A
from ._operators import make_sketch

__all__ = ["leverage_scores", "lewis_weights", "sample_rows", "SampleResult"]


def _dense(kind, A):
    return A if kind == "dense" else (A.toarray() if kind == "sparse" else None)


def _exact_scores(X, rank_rtol):
    U, s, _ = sla.svd(X, full_matrices=False, check_finite=False)
    if s[0] == 0:
        return np.zeros(X.shape[0], dtype=X.dtype)
    r = int(np.sum(s > rank_rtol * s[0]))
    return np.einsum("ij,ij->i", U[:, :r], U[:, :r])


def _approx_scores(kind, A, m, n_proj, sketch, rank_rtol, seed):
    n, d = A.shape
    S = make_sketch(sketch, m, n, seed)
    SA = np.asarray(S._apply_prepared("dense" if kind == "dense" else A.format, A))
    P = _sketch_factor(SA, rank_rtol)
    r = P.rank
    if n_proj is None or n_proj >= r:
        Om = P.apply(np.eye(r, dtype=A.dtype))  # N itself: exact row norms of A N
    else:
        # Johnson-Lindenstrauss: ||(A N)_i||^2 ~= ||(A N Pi)_i||^2 with Pi Gaussian r x k, scaled 1/sqrt(k).
        rng = np.random.default_rng([seed, 0x4C45])
        Pi = rng.standard_normal((r, n_proj)).astype(A.dtype) / math.sqrt(n_proj)
        Om = P.apply(Pi)
    AO = A @ Om
    AO = np.asarray(AO)
    return np.einsum("ij,ij->i", AO, AO)


def leverage_scores(A, approx=True, *, sketch="sparse_sign", sketch_size=None, n_proj="auto", rank_rtol=None,
                    seed=0):
    """Statistical leverage scores ``tau_i = ||U_i||^2`` of the rows of A (U: orthonormal basis of range(A)).

    Parameters
    ----------
    A : array_like (n, d) or scipy.sparse matrix
        n >= d. Scores sum to rank(A).
    approx : bool, default True
        If False, the exact scores from a thin SVD of A (dense; a sparse A is densified). If True,
        the fast estimate of Drineas et al. [1]_: R from a QR of the sketch S A, then row norms of
        ``A R^{-1} Pi`` with a Gaussian ``Pi`` of ``n_proj`` columns.
    sketch : str or SketchOperator, default "sparse_sign"
        Sketch for the approximate scores.
    sketch_size : int, optional
        Rows of the sketch (default min(n, 20 d)); more rows, better estimates (relative error
        about sqrt(d / m)).
    n_proj : int, "auto" or None
        Columns of the Johnson-Lindenstrauss projection; None: no projection (row norms of
        ``A R^{-1}`` exactly, O(n d^2) work in BLAS-3); "auto": None when d <= 64, else
        max(64, ceil(8 log n)).
    rank_rtol : float, optional
        Relative singular-value threshold for the rank (default max(n, d) eps).
    seed : int, default 0
        Seed of the sketch and projection.

    Returns
    -------
    ndarray, shape (n,)
        The scores, in [0, 1] (exact) and summing to rank(A).

    Raises
    ------
    ValueError
        If A is empty, wide (n < d), has NaN/inf, or an option is out of range.

    Notes
    -----
    With an eps-subspace-embedding S, ``A R^{-1}`` has singular values in [1/(1+eps), 1/(1-eps)],
    so its row norms are within those factors of the true scores [1]_; the projection adds a
    chi-square factor with n_proj degrees of freedom. Woodruff & Yasuda [2]_ use these scores for
    l_p sensitivity sampling.

    References
    ----------
    .. [1] P. Drineas, M. Magdon-Ismail, M. W. Mahoney, D. P. Woodruff, "Fast approximation of
       matrix coherence and statistical leverage", JMLR 13, 2012.
    .. [2] D. P. Woodruff, T. Yasuda, "Sharper Bounds for l_p Sensitivity Sampling", ICML 2023.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> A = np.random.default_rng(0).standard_normal((1000, 5))
    >>> tau = kf.sketch.leverage_scores(A, approx=False)
    >>> round(float(tau.sum()), 6)
    5.0
    >>> t2 = kf.sketch.leverage_scores(A)
    >>> bool(np.all(np.abs(t2 / tau - 1) < 0.5))
    True
    """
    kind, A, dt = _validate_A(A)
    if kind == "linop":
        raise TypeError("A must be a dense array or a scipy.sparse matrix for leverage_scores")
    n, d = A.shape
    if n < d:
        raise ValueError(f"A must be tall (n >= d), got shape {A.shape}")
    seed = check_seed(seed)
    if rank_rtol is None:
        rank_rtol = max(n, d) * np.finfo(dt).eps
    rank_rtol = check_positive(rank_rtol, "rank_rtol")
    if not approx:
        return _exact_scores(_dense(kind, A), rank_rtol)
    m = min(n, 20 * d) if sketch_size is None else check_int(sketch_size, "sketch_size", minimum=d, maximum=n)
    if isinstance(n_proj, str):
        check_choice(n_proj, "n_proj", ("auto",))
        n_proj = None if d <= 64 else max(64, int(math.ceil(8 * math.log(n))))
    elif n_proj is not None:
        n_proj = check_int(n_proj, "n_proj", minimum=1)
    return _approx_scores(kind, A, m, n_proj, sketch, rank_rtol, seed)


def lewis_weights(A, p=1.0, *, rtol=1e-10, max_iter=100, approx=False, seed=0):
    """l_p Lewis weights of the rows of A, by the fixed-point iteration of Cohen & Peng (p < 4).

    The weights satisfy ``w_i = tau_i(W^{1/2 - 1/p} A)`` (leverage scores of the reweighted
    matrix), sum to rank(A), and for p = 1 bound the l_1 sensitivities
    ``s_i = sup_x |a_i^T x| / ||A x||_1 <= w_i``.

    Parameters
    ----------
    A : array_like (n, d) or scipy.sparse matrix
    p : float, default 1.0
        In (0, 4).
    rtol : float, default 1e-10
        Stop when ``max |w_new - w| <= rtol * max w``.
    max_iter : int, default 100
    approx : bool, default False
        Use sketched leverage scores inside the iteration (faster, approximate weights).
    seed : int, default 0

    Returns
    -------
    ndarray, shape (n,)

    Raises
    ------
    ValueError
        If p is outside (0, 4) or A is invalid.

    Notes
    -----
    Update ``w_i <- (w_i^{2/p - 1} tau_i(W^{1/2 - 1/p} A))^{p/2}``, a contraction for p < 4
    (factor |1 - p/2|) [1]_.

    References
    ----------
    .. [1] M. B. Cohen, R. Peng, "l_p row sampling by Lewis weights", STOC 2015.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> A = np.random.default_rng(1).standard_normal((300, 4))
    >>> w = kf.sketch.lewis_weights(A, p=1)
    >>> round(float(w.sum()), 6)
    4.0
    """
    kind, A, dt = _validate_A(A)
    if kind == "linop":
        raise TypeError("A must be a dense array or a scipy.sparse matrix for lewis_weights")
    n, d = A.shape
    p = float(p)
    if not (0 < p < 4):
        raise ValueError(f"p must lie in (0, 4) for the Lewis-weight iteration, got {p:g}")
    rtol = check_positive(rtol, "rtol")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    Ad = A if kind == "dense" else A.toarray()
    w = np.full(n, d / n, dtype=np.float64)
    for _ in range(max_iter):
        scale = w ** (0.5 - 1.0 / p)
        X = Ad * scale[:, None].astype(dt)
        tau = leverage_scores(X, approx=approx, seed=seed).astype(np.float64)
        w_new = (w ** (2.0 / p - 1.0) * tau) ** (p / 2.0)
        w_new = np.maximum(w_new, np.finfo(np.float64).tiny)
        done = np.max(np.abs(w_new - w)) <= rtol * np.max(w_new)
        w = w_new
        if done:
            break
    return w


@dataclasses.dataclass(frozen=True, repr=False)
class SampleResult(Result):
    """Rows drawn by :func:`sample_rows`.

    Attributes
    ----------
    rows : ndarray of int, shape (k,)
        Indices of the sampled rows (with repetition when ``replace=True``).
    weights : ndarray, shape (k,)
        Rescaling ``(k p_i)^(-1/p)``: ``sum_j |weights_j (a_{rows_j}^T x - b_{rows_j})|^p`` is an
        unbiased estimate of ``||A x - b||_p^p`` for every x.
    probabilities : ndarray, shape (n,)
        Sampling distribution over all rows.
    A : ndarray or sparse matrix, shape (k, d)
        ``weights[:, None] * A[rows]``.
    b : ndarray or None
        ``weights * b[rows]`` (if b was given).
    p : float
        The norm the weights are for.
    """

    rows: np.ndarray
    weights: np.ndarray
    probabilities: np.ndarray
    A: object
    b: object
    p: float


_BY = ("leverage", "root_leverage", "sensitivity_l1", "lewis_l1", "uniform")


def sample_rows(A, b=None, k=None, by="leverage", *, p=None, approx=True, seed=0):
    """Importance-sample k rows of (A, b) and rescale them, for sketched l_p regression.

    Parameters
    ----------
    A : array_like (n, d) or scipy.sparse matrix
    b : array_like, shape (n,), optional
        When given, scores are computed on the augmented matrix ``[A, b]``, so the sample
        preserves ``||A x - b||_p`` for every x (the regression setting of [2]_).
    k : int
        Number of draws (with replacement), 1 <= k.
    by : {"leverage", "root_leverage", "sensitivity_l1", "lewis_l1", "uniform"}
        * "leverage": p_i proportional to the leverage score tau_i (l_2 subspace embedding).
        * "root_leverage": proportional to sqrt(tau_i): Woodruff & Yasuda's sampler for
          1 <= p < 2, about d samples suffice up to log factors [2]_.
        * "sensitivity_l1" (alias "lewis_l1"): proportional to the l_1 Lewis weights, which
          upper-bound the l_1 sensitivities and sum to d [1]_.
        * "uniform": 1/n (works on incoherent A only).
    p : float, optional
        The norm the weights rescale for: weights = (k p_i)^(-1/p). Default 2 for "leverage" and
        "uniform", 1 for "root_leverage" and "sensitivity_l1".
    approx : bool, default True
        Sketched (fast) scores instead of exact ones.
    seed : int, default 0

    Returns
    -------
    SampleResult

    Raises
    ------
    ValueError
        If k < 1, ``by`` is unknown, p <= 0, shapes disagree or A/b contain NaN/inf.

    References
    ----------
    .. [1] M. B. Cohen, R. Peng, "l_p row sampling by Lewis weights", STOC 2015.
    .. [2] D. P. Woodruff, T. Yasuda, "Sharper Bounds for l_p Sensitivity Sampling", ICML 2023.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((5000, 3)); b = A @ np.ones(3) + 0.1 * rng.standard_normal(5000)
    >>> smp = kf.sketch.sample_rows(A, b, k=400, by="leverage", seed=1)
    >>> smp.A.shape
    (400, 3)
    >>> x = np.linalg.lstsq(smp.A, smp.b, rcond=None)[0]
    >>> bool(np.allclose(x, 1.0, atol=0.05))
    True
    """
    kind, A, dt = _validate_A(A)
    if kind == "linop":
        raise TypeError("A must be a dense array or a scipy.sparse matrix for sample_rows")
    n, d = A.shape
    if k is None:
        raise ValueError("k (the number of rows to sample) is required")
    k = check_int(k, "k", minimum=1)
    check_choice(by, "by", _BY)
    seed = check_seed(seed)
    bv = None
    if b is not None:
        bv = np.asarray(b)
        if bv.ndim != 1 or bv.shape[0] != n:
            raise ValueError(f"b must have shape ({n},), got {bv.shape}")
        bv = bv.astype(dt if bv.dtype != np.float64 else np.float64)
        if not np.isfinite(bv).all():
            raise ValueError("b must be finite, found NaN or inf")
    if p is None:
        p = 2.0 if by in ("leverage", "uniform") else 1.0
    p = check_positive(p, "p")
    if by == "uniform":
        probs = np.full(n, 1.0 / n)
    else:
        M = A
        if bv is not None:
            M = sp.hstack([A, sp.csr_matrix(bv[:, None])], format="csr") if kind == "sparse" else np.column_stack([A, bv])
        if by == "leverage":
            sc = leverage_scores(M, approx=approx, seed=seed)
        elif by == "root_leverage":
            sc = np.sqrt(np.maximum(leverage_scores(M, approx=approx, seed=seed), 0))
        else:
            sc = lewis_weights(M, p=1.0, approx=approx, seed=seed)
        sc = np.maximum(np.asarray(sc, dtype=np.float64), 0)
        total = sc.sum()
        if not total > 0:
            raise ValueError("A has no nonzero row to sample")
        probs = sc / total
    rng = np.random.default_rng([seed, 0x5352])
    rows = rng.choice(n, size=k, replace=True, p=probs)
    weights = (k * probs[rows]) ** (-1.0 / p)
    As = A[rows]
    As = (sp.diags(weights.astype(dt)) @ As).tocsr() if sp.issparse(As) else As * weights[:, None].astype(dt)
    bs = None if bv is None else bv[rows] * weights
    return SampleResult(rows=rows, weights=weights, probabilities=probs, A=As, b=bs, p=p)
