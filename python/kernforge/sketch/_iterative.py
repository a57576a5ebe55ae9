"""Randomized iterative sketching for linear systems: the sketch-and-project family.

Notes
-----
Sketch-and-project (Gower and Richtarik [1]_, eq. (1.2) with B = I) draws a random sketch S (m x q)
at every step and projects the iterate onto the sketched system ``S^T A x = S^T b``::

    x_{k+1} = x_k - A^T S (S^T A A^T S)^+ S^T (A x_k - b).

Randomized (block) Kaczmarz (S = columns of the identity) and the Gaussian-vector method used by
Hong, Na, Mahoney and Kolar [2]_ for Newton-KKT systems are special cases; ``block_coords`` is the
B = A^T A member of the family, randomized block coordinate descent on ``||A x - b||^2``. None needs
symmetry or definiteness, so square non-symmetric and indefinite (KKT) systems are solved; each step
contracts the error like the normal equations, ``1 - lambda_min(A^T A E[Z])`` ([1]_, Theorem 4.6),
so the iteration count grows like ``kappa(A)^2``: these methods suit well-conditioned systems, or an
inexact solve (a Newton step) that only needs a modest residual reduction.
"""
import dataclasses
import warnings

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._errors import ConvergenceWarning
from .._result import Result
from .._validation import (as_array, check_choice, check_int, check_positive, check_real, check_seed,
                           float_dtype_of)

__all__ = ["sketch_and_project", "SketchProjectResult"]

SKETCHES = ("gaussian", "count", "block_rows", "block_coords")
_STATUS = {0: "converged", 1: "max_iter", 2: "non_finite"}


@dataclasses.dataclass(frozen=True, repr=False)
class SketchProjectResult(Result):
    """Result of :func:`sketch_and_project`.

    Attributes
    ----------
    x : ndarray
        The last iterate.
    converged : bool
        Whether ``||A x - b|| <= max(rtol * ||b||, atol)``.
    status : str
        ``"converged"``, ``"max_iter"`` or ``"non_finite"`` (NaN/inf appeared; A is not finite or the
        iteration overflowed).
    n_iter : int
        Sketch-and-project steps taken.
    residual : float
        ``||A x - b|| / ||b||`` of the returned ``x`` (absolute if ``b = 0``).
    residuals : ndarray
        Relative residuals at the checks (``history``), taken at the steps in ``checked_at``.
    checked_at : ndarray
        Step index of each entry of ``residuals``.
    sketch : str
        The sketch used.
    block : int
        The sketch size used.
    """

    x: np.ndarray
    converged: bool
    status: str
    n_iter: int
    residual: float
    residuals: np.ndarray
    checked_at: np.ndarray
    sketch: str
    block: int

    @property
    def history(self):
        return self.residuals


def _dense_matrix(A):
    if sp.issparse(A):
        float_dtype_of("A", A)
        A = A.toarray()
    if isinstance(A, np.ndarray) and A.ndim == 2 and A.dtype in (np.float32, np.float64) and A.strides[1] == A.itemsize:
        arr = A  # C-ordered rows with any row stride: no copy
        if arr.size == 0:
            raise ValueError(f"A must not be empty, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("A must be finite, found " + ("NaN" if np.isnan(arr).any() else "inf"))
        return arr
    return as_array(A, "A", ndim=2)


def sketch_and_project(A, b, *, sketch="block_rows", block=8, rtol=1e-8, atol=0.0, max_iter=100000, seed=None,
                       x0=None, momentum=0.0, check_every=None, warn=True):
    """Solve ``A x = b`` by randomized sketch-and-project.

    Parameters
    ----------
    A : (m, n) array_like or sparse matrix
        The system matrix; square non-symmetric and indefinite matrices are fine. Dense float32 and
        float64 are computed in their own precision (integers become float64); a sparse matrix is
        converted to dense (these are dense kernels). A consistent rectangular system also works:
        the row sketches converge to the solution nearest ``x0``, ``block_coords`` to the
        least-squares solution.
    b : (m,) array_like
        Right-hand side.
    sketch : {"block_rows", "gaussian", "count", "block_coords"}, default "block_rows"
        ``"block_rows"``: randomized block Kaczmarz, blocks of ``block`` rows of a random permutation
        redrawn each epoch (``block=1``: randomized Kaczmarz). ``"gaussian"``: S with i.i.d. normal
        entries (``block=1``: the Gaussian-vector method of [2]_). ``"count"``: a CountSketch with
        ``block`` buckets. ``"block_coords"``: randomized block coordinate descent on
        ``||A x - b||^2``. Per step, block_rows costs about ``2 q n``, block_coords ``2 q m``, count
        ``2 m n`` and gaussian ``(q + 1) m n`` flops (``q = block``).
    block : int, default 8
        Sketch size q (clipped to the dimension).
    rtol, atol : float, default 1e-8 and 0
        Stop when ``||A x - b|| <= max(rtol * ||b||, atol)``.
    max_iter : int, default 100000
        Maximum number of steps.
    seed : int or None, default None (= 0)
        Seed of the sketches. Same seed, same result, whatever the thread count.
    x0 : (n,) array_like, optional
        Starting point (default zero). Warm starts continue an earlier run.
    momentum : float in [0, 1), default 0
        Heavy-ball parameter beta: ``x_{k+1} += beta (x_k - x_{k-1})`` (Loizou and Richtarik [3]_).
    check_every : int, optional
        Steps between residual checks. Default: every step for the sketches that keep the residual
        up to date at no extra cost (gaussian, count, block_coords), once per epoch
        (``ceil(m / block)`` steps) for block_rows, whose check costs one product ``A x``.
    warn : bool, default True
        Emit a :class:`kernforge.ConvergenceWarning` when the tolerance is not met.

    Returns
    -------
    SketchProjectResult
        ``x``, ``converged``, ``status``, ``n_iter``, ``residual``, ``residuals`` (``history``),
        ``checked_at``.

    Raises
    ------
    ValueError
        If A is empty or not 2-D, b does not have m entries, x0 does not have n entries, A, b or x0
        contain NaN or inf, or an option is out of range (block < 1, momentum outside [0, 1),
        negative tolerances or max_iter, unknown sketch).
    TypeError
        For complex or non-numeric input, or non-integer block/max_iter/seed.

    Notes
    -----
    One step is ``x <- x - A^T S (S^T A A^T S)^+ S^T (A x - b)`` ([1]_, eq. (1.2)); the small Gram
    system is solved by Cholesky, or by a pseudo-inverse when the sketch repeats a direction. Expect
    a number of steps proportional to ``kappa(A)^2 * m / q``.

    References
    ----------
    .. [1] R. M. Gower, P. Richtarik, "Randomized iterative methods for linear systems", SIAM J.
       Matrix Anal. Appl. 36(4), 2015.
    .. [2] I. Hong, S. Na, M. W. Mahoney, M. Kolar, "Constrained Optimization via Exact Augmented
       Lagrangian and Randomized Iterative Sketching", ICML 2023.
    .. [3] N. Loizou, P. Richtarik, "Momentum and stochastic momentum for stochastic gradient,
       Newton, proximal point and subspace descent methods", Comput. Optim. Appl. 77, 2020.

    Examples
    --------
    >>> import numpy as np
    >>> import kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> Q, _ = np.linalg.qr(rng.standard_normal((50, 50)))
    >>> A = Q * np.linspace(1.0, 3.0, 50)          # non-symmetric, kappa = 3
    >>> b = A @ np.ones(50)
    >>> res = kf.sketch.sketch_and_project(A, b, sketch="block_rows", block=10, rtol=1e-10, seed=1)
    >>> bool(res.converged), bool(np.allclose(res.x, np.linalg.solve(A, b), atol=1e-8))
    (True, True)
    """
    check_choice(sketch, "sketch", SKETCHES)
    block = check_int(block, "block", minimum=1)
    rtol = check_positive(rtol, "rtol", allow_zero=True)
    atol = check_positive(atol, "atol", allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    seed = check_seed(seed)
    momentum = check_real(momentum, "momentum")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum:g}")
    if check_every is None:
        check_every = 0
    else:
        check_every = check_int(check_every, "check_every", minimum=1)
    A = _dense_matrix(A)
    m, n = A.shape
    dt = A.dtype
    b = as_array(b, "b", dtype=dt, ndim=1)
    if b.shape[0] != m:
        raise ValueError(f"b must have shape ({m},) to match A with shape {A.shape}, got {b.shape}")
    if x0 is None:
        x0 = np.zeros(n, dtype=dt)
    else:
        x0 = as_array(x0, "x0", dtype=dt, ndim=1)
        if x0.shape[0] != n:
            raise ValueError(f"x0 must have shape ({n},) to match A with shape {A.shape}, got {x0.shape}")
    fn = _core.sketch_iterative.solve_f32 if dt == np.float32 else _core.sketch_iterative.solve_f64
    x, n_iter, converged, status, residual, bnorm, hist, at = fn(A, b, x0, sketch, block, rtol, atol, max_iter,
                                                                  seed, momentum, check_every)
    status = _STATUS[status]
    rel = residual / bnorm if bnorm > 0 else residual
    if not converged and warn:
        warnings.warn(f"sketch_and_project stopped ({status}) after {n_iter} steps with relative residual "
                      f"{rel:.3g} > rtol={rtol:g}", ConvergenceWarning, stacklevel=2)
    q = min(block, m if sketch != "block_coords" else n)
    return SketchProjectResult(x=x, converged=bool(converged), status=status, n_iter=int(n_iter), residual=float(rel),
                               residuals=np.asarray(hist, dtype=float), checked_at=np.asarray(at, dtype=np.int64),
                               sketch=sketch, block=int(q))
