"""Randomized SVD (Halko, Martinsson & Tropp) on kernforge's sketching operators."""
import dataclasses

import numpy as np
import scipy.linalg as sla

from .._result import Result
from .._validation import check_int, check_seed
from ._lstsq import _validate_A
from ._operators import make_sketch

__all__ = ["randomized_svd", "SVDResult"]


@dataclasses.dataclass(frozen=True, repr=False)
class SVDResult(Result):
    """Truncated SVD ``A ~= U diag(s) Vt``; unpacks as ``U, s, Vt = randomized_svd(...)``.

    Attributes
    ----------
    U : ndarray (n, k)
    s : ndarray (k,)
        Singular values, descending.
    Vt : ndarray (k, d)
    n_iter : int
        Power iterations used.
    """

    U: np.ndarray
    s: np.ndarray
    Vt: np.ndarray
    n_iter: int

    def __iter__(self):
        return iter((self.U, self.s, self.Vt))


def _orth(Y):
    return sla.qr(Y, mode="economic", check_finite=False)[0]


def _lu(Y):
    return sla.lu(Y, permute_l=True, check_finite=False)[0]


def randomized_svd(A, k, oversample=10, power_iters="auto", *, sketch="gaussian", seed=0):
    """Rank-k truncated SVD by a randomized range finder built on kernforge's sketches.

    Parameters
    ----------
    A : array_like (n, d), scipy.sparse matrix or LinearOperator
    k : int
        Number of singular triplets, 1 <= k <= min(n, d).
    oversample : int, default 10
        Extra sketch columns (scikit-learn's ``n_oversamples``); the sketch has
        l = min(k + oversample, min(n, d)) columns.
    power_iters : int or "auto"
        Subspace (power) iterations, re-orthonormalised by QR each time; "auto": 7 if
        k < 0.1 min(n, d), else 4 (scikit-learn's rule).
    sketch : str or SketchOperator, default "gaussian"
        Test matrix Omega^T, an l x d operator (any of kernforge's sketches; "srht" and the
        sparse ones are cheaper per application).
    seed : int, default 0

    Returns
    -------
    SVDResult
        ``U`` (n, k), ``s`` (k,), ``Vt`` (k, d), ``n_iter``; unpacks as ``U, s, Vt``.

    Raises
    ------
    ValueError
        If k is out of range, A is empty or has NaN/inf.

    Notes
    -----
    Algorithm 4.4 of [1]_: Y = A Omega, then q times Q = qr(A^T Q), Q = qr(A Q) (LU instead of QR
    between iterations when q > 2, as scikit-learn does); B = Q^T A; the SVD of the small B lifted
    by Q. The error is close to the best rank-k error
    ``sigma_{k+1}`` when the spectrum decays; power iterations sharpen slow decays.

    References
    ----------
    .. [1] N. Halko, P. G. Martinsson, J. A. Tropp, "Finding structure with randomness:
       probabilistic algorithms for constructing approximate matrix decompositions", SIAM Review
       53(2), 2011.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 200))
    >>> U, s, Vt = kf.sketch.randomized_svd(A, 8)
    >>> bool(np.allclose(U * s @ Vt, A))
    True
    """
    kind, A, dt = _validate_A(A)
    n, d = A.shape
    kmax = min(n, d)
    k = check_int(k, "k", minimum=1, maximum=kmax)
    oversample = check_int(oversample, "oversample", minimum=0)
    if isinstance(power_iters, str):
        if power_iters != "auto":
            raise ValueError(f"power_iters must be a non-negative integer or 'auto', got {power_iters!r}")
        power_iters = 7 if k < 0.1 * kmax else 4
    power_iters = check_int(power_iters, "power_iters", minimum=0)
    seed = check_seed(seed)
    ell = min(k + oversample, kmax)
    S = make_sketch(sketch, ell, d, seed)
    if kind == "linop":
        matmat = A.matmat
        rmatmat = A.rmatmat
    else:
        def matmat(X):
            return np.asarray(A @ X)

        def rmatmat(X):
            return np.asarray(A.T @ X)

    # Y = A Omega with Omega = S^T (d x l): the sketch's adjoint, never a dense d x l draw in Python.
    if kind == "dense":
        Y = A @ S.T
    else:
        Y = matmat(S.adjoint(np.eye(ell, dtype=dt)))
    Q = np.asarray(Y, dtype=dt)
    # Normalise between power iterations with LU when there are more than two (cheaper than QR and
    # enough to keep the columns from collapsing onto the top singular vector; scikit-learn's
    # "auto" rule), with QR otherwise; the final basis is always orthonormalised by QR.
    normalise = _lu if power_iters > 2 else _orth
    for _ in range(power_iters):
        Q = normalise(matmat(normalise(rmatmat(Q))))
    Q = _orth(Q)
    B = rmatmat(Q).T  # Q^T A, l x d
    Ub, s, Vt = sla.svd(B, full_matrices=False, check_finite=False)
    U = Q @ Ub[:, :k]
    return SVDResult(U=np.ascontiguousarray(U, dtype=dt), s=s[:k].astype(dt), Vt=np.ascontiguousarray(Vt[:k], dtype=dt),
                     n_iter=power_iters)
