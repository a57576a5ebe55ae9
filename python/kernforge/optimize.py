"""Equality-constrained optimization by an inexact Newton method with randomized sketching.

``minimize_eq`` solves ``min f(x) subject to c(x) = 0`` with the method of Hong, Na, Mahoney and
Kolar (ICML 2023) [1]_ ("AdaSketch-Newton"): each Newton step solves the Lagrangian Newton (KKT)
system only inexactly, by a randomized iterative sketching solver
(:func:`kernforge.sketch.sketch_and_project`) or another inner solver, to an adaptive accuracy; the
step size comes from an Armijo line search on the exact augmented Lagrangian merit function, whose
penalty parameters adapt until the inexact direction is a descent direction.

Which inner solver runs by default (``inner="auto"``) is a measured choice: sketch-and-project
contracts like ``1 - q / (kappa(K)^2 (n + m))`` per step, so on ill-conditioned sparse KKT systems
(the paper's Poisson-control problem: ``kappa(K)`` 6e3 at 8 x 8, growing like N^2) it needs
thousands of block steps where a sparse factorization takes milliseconds (about 1000x slower,
``benchmarks/bench_optimize.py``), and even on a dense K with ``kappa(K)`` = 11 and 1500-6000 rows
it was 4-6x slower than LAPACK. "auto" therefore factorizes explicit matrices up to
``auto_dense_max`` rows (and any sparse K), uses MINRES for Hessian products, and tries sketching
only for larger dense K, with a budget of one factorization per step. ``inner="sketch"`` runs the
paper's method unconditionally.

Notes
-----
Notation: ``L(x, lam) = f(x) + lam^T c(x)``, ``G = dc/dx`` (m x n), ``H = hess_x L``, and the KKT
residual ``||grad L|| = ||(grad_x L, c)||``. One outer iteration:

1. Safeguard on ``xi_G = lambda_min(G G^T)``. The paper stops when ``xi_G < jac_rank_tol``
   (``rank_deficient="stop"``). By default (``"regularize"``) such an iterate instead gets a
   regularized (stabilized, quasi-definite) KKT matrix ``[[B, G^T], [G, -mu I]]``, ``mu =
   jac_rank_tol``, whose step is a penalty-like step (``G dx - mu dlam = -c``: it reduces ``||c||``
   in the least-squares sense where the linearization is inconsistent), and the iteration goes on; it
   stops with ``status="jacobian_rank"`` only when the rank deficiency persists for more than
   ``rank_patience`` consecutive iterations, or a regularized step finds no merit decrease.
2. Hessian modification: if ``lambda_min(Z^T H Z) < curvature_tol`` (Z a null-space basis of G),
   ``B = H + (xi_B + ||H||) I``, otherwise ``B = H``.
3. Solve ``K z = r0``, ``K = [[B, G^T], [G, 0]]``, ``r0 = -(grad_x L, c)``, from ``z = 0`` until the
   accuracy condition holds: ``||K z - r0|| <= min(0.1, ||r0||) ||r0||`` (``accuracy="practical"``,
   the default) or ``||K|| Psi ||K z - r0|| <= theta delta ||r0||`` (``accuracy="paper"``, [1]_ eq. (9))
   with ``Psi = 20 max(||B||^2, 1) / (min(xi_G, 1) min(xi_B, 1))``, ``Upsilon = max(||G||, ||H||, 1)``
   and ``delta <- max(min(delta, delta_trial), delta_min)``,
   ``delta_trial = (1/2 - beta) eta2 / ((1 + eta1 + eta2) Upsilon^2 Psi^2)``.
4. Merit (exact augmented Lagrangian, [1]_ eq. (4)):
   ``M = L + (eta1/2) ||c||^2 + (eta2/2) ||grad_x L||^2``, with ``grad_x M = grad_x L + eta1 G^T c +
   eta2 H grad_x L`` and ``grad_lam M = c + eta2 G grad_x L``. The direction must satisfy
   ``grad M^T z <= -(eta2/2) ||grad L||^2``; if not, ``eta1 <- nu^2 eta1``, ``eta2 <- eta2 / nu``,
   ``delta <- min(delta / nu^4, delta_trial)`` (the practical rule's forcing factor is divided by
   ``nu^4`` too) and the same inner run continues, warm-started, until it holds (penalties stop
   changing at ``eta1 > 1e8`` or ``eta2 < 1e-8``).
5. Armijo backtracking ``alpha in {1, 1/2, ...}``:
   ``M(x + alpha dx, lam + alpha dlam) <= M(x, lam) + alpha beta grad M^T z`` (plus ``10 eps |M|`` of
   slack for rounding, so that tolerances near machine precision stay reachable); x and lam move
   together. Near a solution the unit step is accepted and the iteration converges locally
   linearly, superlinearly with the practical rule (its forcing term goes to zero).
6. Stop when ``||grad L|| <= tol``.

Paper defaults: eta1 = 1, eta2 = 0.1, delta = 0.1, xi_B = 0.1, beta = 0.1, nu = 1.5, theta = 1,
tol = 1e-4, 1e4 outer iterations, 1e5 inner steps. Two deliberate departures, both from papers.md
section 2.2: the default accuracy rule is the practical forcing rule (with the paper's constants
``delta_trial`` falls below 1e-10 and single-vector sketching runs to its cap at every step; keep
``accuracy="paper"`` to reproduce [1]_), and ``grad_x M`` uses ``hess_x L``, not ``hess f`` (the
released code's shortcut is exact only for linear constraints).

References
----------
.. [1] I. Hong, S. Na, M. W. Mahoney, M. Kolar, "Constrained Optimization via Exact Augmented
   Lagrangian and Randomized Iterative Sketching", ICML 2023 (PMLR 202).
.. [2] W. Hock, K. Schittkowski, "Test Examples for Nonlinear Programming Codes", Lecture Notes in
   Economics and Mathematical Systems 187, Springer, 1981.
"""
import dataclasses
import time
import warnings

import numpy as np
import scipy.sparse as sp

from ._errors import ConvergenceWarning
from ._result import Result
from ._validation import as_array, check_choice, check_int, check_positive, check_real, check_seed
from .sketch._iterative import SKETCHES, sketch_and_project

__all__ = ["minimize_eq", "MinimizeEqResult"]

_INNER = ("auto", "sketch", "direct", "minres")
_ACCURACY = ("practical", "paper")
_RANK = ("regularize", "stop")


@dataclasses.dataclass(frozen=True, repr=False)
class MinimizeEqResult(Result):
    """Result of :func:`minimize_eq` (scipy's ``OptimizeResult`` fields where they exist).

    Attributes
    ----------
    x : ndarray
        The final iterate.
    multipliers : ndarray
        Lagrange multiplier estimates ``lam`` (``grad f + G^T lam = 0`` at a solution).
    fun : float
        ``f(x)``.
    constr_violation : float
        ``||c(x)||_inf``.
    kkt_residual : float
        ``||(grad_x L, c)||_2`` at ``x``.
    success : bool
        Whether ``kkt_residual <= tol`` (``converged`` is the same flag).
    status : str
        ``"converged"``, ``"max_iter"``, ``"jacobian_rank"`` (lambda_min(G G^T) stayed below
        ``jac_rank_tol`` for more than ``rank_patience`` consecutive iterations, or a regularized
        step at such a point made no progress: inconsistent or degenerate constraints; with
        ``rank_deficient="stop"`` the first such point), ``"line_search"`` (no Armijo step
        found), ``"no_descent"`` (penalties saturated without a descent direction) or
        ``"nonfinite"`` (a callback returned NaN or inf; the message names it).
    message : str
        A sentence describing ``status``.
    nit : int
        Newton (outer) iterations.
    n_inner : int
        Inner solver steps, all iterations together (sketch-and-project steps, MINRES iterations, or
        one per direct solve).
    nfev, njev, nhev : int
        Calls of ``fun``/``cons`` (together counted once per point), of ``jac``/``cons_jac``, and of
        ``hess``/``cons_hess``.
    history : ndarray
        KKT residual at every iterate, ``history[0]`` at ``x0``.
    inner_iters : ndarray
        Inner steps per Newton iteration.
    step_sizes : ndarray
        Accepted Armijo step per Newton iteration (1.0 = unit step).
    eta1, eta2 : float
        Final merit penalty parameters.
    hessian_modified : int
        Iterations in which the Hessian was shifted (step 2).
    rank_regularized : int
        Iterations taken with the regularized KKT matrix because ``G`` was (nearly) rank deficient.
    inner : str
        The inner solver used (``inner="auto"`` resolved).
    time : float
        Wall-clock seconds.
    """

    x: np.ndarray
    multipliers: np.ndarray
    fun: float
    constr_violation: float
    kkt_residual: float
    success: bool
    status: str
    message: str
    nit: int
    n_inner: int
    nfev: int
    njev: int
    nhev: int
    history: np.ndarray
    inner_iters: np.ndarray
    step_sizes: np.ndarray
    eta1: float
    eta2: float
    hessian_modified: int
    rank_regularized: int
    inner: str
    time: float

    @property
    def converged(self):
        return self.success


class _CallbackError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


class _Problem:
    """Wraps the user callbacks: shape checks, finiteness checks naming the callback, counters."""

    def __init__(self, fun, jac, hess, cons, cons_jac, cons_hess, n):
        for name, f in (("fun", fun), ("jac", jac), ("hess", hess), ("cons", cons), ("cons_jac", cons_jac)):
            if not callable(f):
                raise TypeError(f"{name} must be callable, got {type(f).__name__}")
        if cons_hess is not None and not callable(cons_hess):
            raise TypeError(f"cons_hess must be callable or None, got {type(cons_hess).__name__}")
        self.fun, self.jac, self.hess = fun, jac, hess
        self.cons, self.cons_jac, self.cons_hess = cons, cons_jac, cons_hess
        self.n = n
        self.m = None
        self.nfev = self.njev = self.nhev = 0
        self.where = "x0"

    def _bad(self, name, what):
        raise _CallbackError(f"{name} returned {what} at {self.where}")

    def _vector(self, name, v, size):
        v = np.asarray(v, dtype=float)
        if v.ndim == 0 and size is None:
            v = v.reshape(1)
        if v.ndim != 1 or (size is not None and v.shape[0] != size):
            want = f"({size},)" if size is not None else "a 1-D array"
            raise ValueError(f"{name} must return an array of shape {want} to match x0, got shape {v.shape}")
        if not np.isfinite(v).all():
            self._bad(name, "NaN" if np.isnan(v).any() else "inf")
        return v

    def _matrix(self, name, M, shape):
        import scipy.sparse.linalg as spla
        if isinstance(M, spla.LinearOperator):
            if M.shape != shape:
                raise ValueError(f"{name} must return a matrix of shape {shape}, got a LinearOperator of shape {M.shape}")
            return M
        if sp.issparse(M):
            if M.shape != shape:
                raise ValueError(f"{name} must return a matrix of shape {shape}, got shape {M.shape}")
            M = sp.csr_matrix(M, dtype=float)
            if not np.isfinite(M.data).all():
                self._bad(name, "NaN" if np.isnan(M.data).any() else "inf")
            return M
        M = np.asarray(M, dtype=float)
        if M.ndim == 1 and shape[0] == 1 and M.shape[0] == shape[1]:
            M = M.reshape(shape)  # a single constraint's gradient
        if M.shape != shape:
            raise ValueError(f"{name} must return a matrix of shape {shape}, got shape {M.shape}")
        if not np.isfinite(M).all():
            self._bad(name, "NaN" if np.isnan(M).any() else "inf")
        return M

    def first_order(self, x):
        f = self.fun(x)
        try:
            f = float(np.asarray(f, dtype=float).reshape(()))
        except (TypeError, ValueError):
            raise ValueError(f"fun must return a scalar, got {type(f).__name__} "
                             f"{getattr(np.asarray(f), 'shape', '')}") from None
        if not np.isfinite(f):
            self._bad("fun", "NaN" if np.isnan(f) else "inf")
        c = self._vector("cons", self.cons(x), self.m)
        if self.m is None:
            self.m = c.shape[0]
        self.nfev += 1
        g = self._vector("jac", self.jac(x), self.n)
        G = self._matrix("cons_jac", self.cons_jac(x), (self.m, self.n))
        self.njev += 1
        return f, g, c, G

    def hessian(self, x, lam):
        H = self._matrix("hess", self.hess(x), (self.n, self.n))
        if self.cons_hess is not None:
            Hc = self._matrix("cons_hess", self.cons_hess(x, lam), (self.n, self.n))
            H = _add(H, Hc)
        self.nhev += 1
        return H


def _add(A, B):
    import scipy.sparse.linalg as spla
    if isinstance(A, spla.LinearOperator) or isinstance(B, spla.LinearOperator):
        return spla.aslinearoperator(A) + spla.aslinearoperator(B)
    if sp.issparse(A) and sp.issparse(B):
        return (A + B).tocsr()
    if sp.issparse(A):
        A = A.toarray()
    if sp.issparse(B):
        B = B.toarray()
    return A + B


def _dense(M, n=None):
    import scipy.sparse.linalg as spla
    if isinstance(M, spla.LinearOperator):
        return M.matmat(np.eye(M.shape[1]))
    if sp.issparse(M):
        return M.toarray()
    return np.asarray(M)


def _norm2(M):
    """||M||_2: exact for dense matrices, the upper bound sqrt(||M||_1 ||M||_inf) for sparse ones."""
    import scipy.sparse.linalg as spla
    if isinstance(M, spla.LinearOperator):
        M = _dense(M)
    if sp.issparse(M):
        a = abs(M)
        return float(np.sqrt(a.sum(axis=0).max() * a.sum(axis=1).max()))
    return float(np.linalg.norm(M, 2)) if M.size else 0.0


def minimize_eq(fun, x0, jac, hess, cons, cons_jac, cons_hess=None, *, lambda0=None, tol=1e-4, max_iter=10000,
                inner="auto", sketch="block_rows", block=8, inner_max_iter=100000, momentum=0.0,
                accuracy="practical", theta=1.0, eta1=1.0, eta2=0.1, delta=0.1, delta_min=1e-6, xi_B=0.1,
                beta=0.1, nu=1.5, jac_rank_tol=1e-2, rank_deficient="regularize", rank_patience=10,
                curvature_tol=1e-6, check_curvature=True, max_backtrack=40, auto_dense_max=3000, seed=None,
                warn=True):
    """Minimize ``f(x)`` subject to ``c(x) = 0`` by the sketched inexact Newton method of [1]_.

    Parameters
    ----------
    fun : callable ``fun(x) -> float``
        Objective.
    x0 : (n,) array_like
        Starting point.
    jac : callable ``jac(x) -> (n,) array``
        Gradient of the objective.
    hess : callable ``hess(x)``
        Hessian of the objective: an (n, n) array, a sparse matrix, or a
        ``scipy.sparse.linalg.LinearOperator`` (Hessian-vector products; materialized with n products
        for the ``"sketch"`` and ``"direct"`` inner solvers and for the curvature test).
    cons : callable ``cons(x) -> (m,) array``
        Equality constraints, ``c(x) = 0``.
    cons_jac : callable ``cons_jac(x)``
        Constraint Jacobian G: an (m, n) array or sparse matrix.
    cons_hess : callable ``cons_hess(x, v)``, optional
        ``sum_i v_i * hess c_i(x)`` as in ``scipy.optimize.NonlinearConstraint`` (any of the Hessian
        types above). None means the constraints are linear (then G is constant and the safeguard and
        null-space basis are computed once).
    lambda0 : (m,) array_like, optional
        Initial multipliers (default zero, as in [1]_).
    tol : float, default 1e-4 (paper)
        Stop when the KKT residual ``||(grad_x L, c)||_2 <= tol``.
    max_iter : int, default 10000 (paper)
        Maximum Newton iterations.
    inner : {"auto", "sketch", "direct", "minres"}, default "auto"
        Inner KKT solver: randomized sketch-and-project (:func:`kernforge.sketch.sketch_and_project`,
        dense K), an exact solve (LAPACK, or SuperLU for sparse K; the accuracy rule is then met
        trivially), or SciPy's MINRES on the symmetric indefinite K (works with sparse matrices and
        LinearOperators, so it is Hessian-free). ``"auto"`` picks, per problem: ``"direct"`` when the
        Hessian and Jacobian are explicit and K is sparse or has at most ``auto_dense_max`` rows (a
        factorization is then cheaper than any iterative solve: measured on the Poisson-control
        problem, see Notes), ``"minres"`` when the Hessian is a LinearOperator (products only), and
        ``"sketch"`` for larger dense K: sketching gets a budget of steps worth one dense
        factorization (``(n + m)^2 / (3 (2 q + q^2))`` block_rows steps, at most ``inner_max_iter``)
        and the Newton step falls back to the direct solve if it misses the accuracy rule within it,
        so a step never costs much more than an exact one.
    sketch : str, default "block_rows"
        Sketch of the ``"sketch"`` inner solver; see :func:`kernforge.sketch.sketch_and_project`.
        ``sketch="gaussian", block=1`` is the Gaussian-vector method of [1]_.
    block : int, default 8
        Sketch size.
    inner_max_iter : int, default 100000 (paper)
        Cap on inner steps per Newton iteration.
    momentum : float, default 0
        Heavy-ball parameter of the sketch solver.
    accuracy : {"practical", "paper"}, default "practical"
        Inner accuracy condition, see Notes.
    theta : float, default 1 (paper)
        Accuracy factor of the paper rule (``theta -> 0`` sharpens it).
    eta1, eta2 : float, default 1 and 0.1 (paper)
        Initial merit penalty parameters.
    delta : float, default 0.1 (paper)
        Initial accuracy parameter of the paper rule.
    delta_min : float, default 1e-6
        Floor on delta (the released code's).
    xi_B : float, default 0.1 (paper)
        Hessian modification shift.
    beta : float in (0, 1/2), default 0.1 (paper)
        Armijo parameter.
    nu : float > 1, default 1.5 (paper)
        Penalty update factor.
    jac_rank_tol : float, default 1e-2 (paper)
        Rank safeguard threshold on ``lambda_min(G G^T)``; also the regularization ``mu`` of the
        KKT matrix at a rank-deficient iterate. 0 disables the safeguard: a singular KKT matrix is
        then handled by the inner solver (least-squares solution for "direct").
    rank_deficient : {"regularize", "stop"}, default "regularize"
        What to do at an iterate with ``lambda_min(G G^T) < jac_rank_tol``: take the regularized
        step of Notes step 1 and continue (carries e.g. HS61 past its rank-deficient published
        start x0 = 0), or stop with ``status="jacobian_rank"`` as the paper does.
    rank_patience : int, default 10
        With ``"regularize"``, stop with ``status="jacobian_rank"`` once more than this many
        consecutive iterates are rank deficient (inconsistent or degenerate constraints).
    curvature_tol : float, default 1e-6 (paper)
        Hessian modification threshold on ``lambda_min(Z^T H Z)``.
    check_curvature : bool, default True
        Run the null-space curvature test of step 2 (dense, O(n^3) per iteration). Set False when
        the Hessian is known to be positive definite on the null space (e.g. a strictly convex
        objective with linear constraints) to skip its cost on large problems.
    max_backtrack : int, default 40
        Maximum halvings in the line search.
    auto_dense_max : int, default 3000
        Largest dense KKT dimension ``n + m`` that ``inner="auto"`` solves directly.
    seed : int, optional
        Seed of the sketches (default 0); iteration k uses seed + k.
    warn : bool, default True
        Emit a :class:`kernforge.ConvergenceWarning` on failure.

    Returns
    -------
    MinimizeEqResult
        ``x``, ``multipliers``, ``fun``, ``constr_violation``, ``kkt_residual``, ``success``,
        ``status``, ``message``, ``nit``, ``n_inner``, ``nfev``, ``njev``, ``nhev``, ``history`` (KKT
        residuals), ``inner_iters``, ``step_sizes``, ``eta1``, ``eta2``.

    Raises
    ------
    ValueError
        If x0 or lambda0 is empty, not 1-D or not finite; a callback returns an array whose shape does
        not match x0 (the message names the callback and the expected shape); a callback returns NaN or
        inf at x0 (the message names it); or a parameter is out of range. A NaN or inf from a
        callback later on stops the iteration with ``status="nonfinite"`` and a message naming it.
    TypeError
        If a callback is not callable, or a numeric parameter has the wrong type.

    Notes
    -----
    The algorithm, step by step, with the equations of [1]_ is in the module docstring
    (``help(kernforge.optimize)``). The sketch solver makes each Newton step cost about
    ``kappa(K)^2 (n + m) / block`` sketch steps; it pays off when K is large, dense and well
    conditioned and only a rough solve is needed, so that a few passes over K are cheaper than a
    factorization. On the paper's Poisson-control problem (sparse K, ``kappa(K)`` in the thousands)
    a sparse factorization wins by orders of magnitude, which is why ``inner="auto"`` factorizes
    whenever it can; ``inner="sketch"`` reproduces the paper's method.

    References
    ----------
    .. [1] I. Hong, S. Na, M. W. Mahoney, M. Kolar, "Constrained Optimization via Exact Augmented
       Lagrangian and Randomized Iterative Sketching", ICML 2023.

    Examples
    --------
    Hock-Schittkowski problem 6: ``min (1 - x1)^2  s.t.  10 (x2 - x1^2) = 0``, solution (1, 1).

    >>> import numpy as np
    >>> import kernforge as kf
    >>> res = kf.optimize.minimize_eq(
    ...     fun=lambda x: (1 - x[0]) ** 2,
    ...     x0=[-1.2, 1.0],
    ...     jac=lambda x: np.array([-2 * (1 - x[0]), 0.0]),
    ...     hess=lambda x: np.array([[2.0, 0.0], [0.0, 0.0]]),
    ...     cons=lambda x: np.array([10 * (x[1] - x[0] ** 2)]),
    ...     cons_jac=lambda x: np.array([[-20 * x[0], 10.0]]),
    ...     cons_hess=lambda x, v: np.array([[-20 * v[0], 0.0], [0.0, 0.0]]),
    ...     tol=1e-8)
    >>> res.success, np.round(res.x, 6).tolist()
    (True, [1.0, 1.0])
    """
    import scipy.sparse.linalg as spla
    import scipy.linalg as sla
    t_start = time.perf_counter()
    x = as_array(x0, "x0", dtype=np.float64, ndim=1, copy=True)
    n = x.shape[0]
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    check_choice(inner, "inner", _INNER)
    check_choice(sketch, "sketch", SKETCHES)
    block = check_int(block, "block", minimum=1)
    inner_max_iter = check_int(inner_max_iter, "inner_max_iter", minimum=1)
    momentum = check_real(momentum, "momentum")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum:g}")
    check_choice(accuracy, "accuracy", _ACCURACY)
    theta = check_positive(theta, "theta")
    eta1 = check_positive(eta1, "eta1")
    eta2 = check_positive(eta2, "eta2")
    delta = check_positive(delta, "delta")
    delta_min = check_positive(delta_min, "delta_min", allow_zero=True)
    xi_B = check_positive(xi_B, "xi_B")
    beta = check_real(beta, "beta")
    if not 0.0 < beta < 0.5:
        raise ValueError(f"beta must lie in (0, 0.5), got {beta:g}")
    nu = check_real(nu, "nu")
    if not nu > 1.0:
        raise ValueError(f"nu must be > 1, got {nu:g}")
    jac_rank_tol = check_positive(jac_rank_tol, "jac_rank_tol", allow_zero=True)
    check_choice(rank_deficient, "rank_deficient", _RANK)
    rank_patience = check_int(rank_patience, "rank_patience", minimum=0)
    auto_dense_max = check_int(auto_dense_max, "auto_dense_max", minimum=0)
    curvature_tol = check_real(curvature_tol, "curvature_tol")
    max_backtrack = check_int(max_backtrack, "max_backtrack", minimum=0)
    seed = check_seed(seed)

    prob = _Problem(fun, jac, hess, cons, cons_jac, cons_hess, n)
    try:
        f, g, c, G = prob.first_order(x)
    except _CallbackError as exc:
        raise ValueError(exc.message) from None
    m = prob.m
    if m == 0:
        raise ValueError("cons must return at least one constraint (use scipy.optimize.minimize without constraints)")
    if m > n:
        raise ValueError(f"there are more equality constraints ({m}) than variables ({n}); "
                         "the constraint Jacobian cannot have full row rank")
    if lambda0 is None:
        lam = np.zeros(m)
    else:
        lam = as_array(lambda0, "lambda0", dtype=np.float64, ndim=1, copy=True)
        if lam.shape[0] != m:
            raise ValueError(f"lambda0 must have shape ({m},) to match cons, got {lam.shape}")
    try:
        H = prob.hessian(x, lam)
    except _CallbackError as exc:
        raise ValueError(exc.message) from None

    linear = cons_hess is None
    auto = inner == "auto"
    if auto:
        if isinstance(H, spla.LinearOperator):
            inner = "minres"
        elif sp.issparse(H) or sp.issparse(G) or n + m <= auto_dense_max:
            inner = "direct"
        else:
            inner = "sketch"
    step_cap = inner_max_iter
    if auto and inner == "sketch":
        # Budget the sketch attempt at the flops of one dense LDL^T, (n+m)^3 / 3, so a Newton step costs at most
        # about twice the exact-Newton step whatever kappa(K) is (a block_rows step costs ~(2q + q^2)(n+m)).
        q = min(block, n + m)
        step_cap = max(1, min(inner_max_iter, (n + m) ** 2 // (3 * (2 * q + q * q))))
    cache = {}
    rank_streak = 0
    n_regularized = 0
    history, inner_iters, step_sizes = [], [], []
    n_inner = 0
    n_modified = 0
    forcing = 0.1  # practical rule: ||K z - r0|| <= min(forcing, ||r0||) ||r0||
    status, message = "max_iter", f"reached max_iter={max_iter} Newton iterations"

    def constraint_info(G):
        """xi_G = lambda_min(G G^T) and a null-space basis Z of G (cached for linear constraints)."""
        import scipy.linalg as sla
        if linear and "xi" in cache:
            return cache["xi"], cache.get("Z")
        xi = _lambda_min_ggt(G, m)
        Z = sla.null_space(_dense(G)) if check_curvature else None
        if linear:
            cache["xi"], cache["Z"] = xi, Z
        return xi, Z

    k = 0
    while True:
        gradL = g + G.T @ lam
        kkt = float(np.sqrt(gradL @ gradL + c @ c))
        history.append(kkt)
        if kkt <= tol:
            status, message = "converged", f"KKT residual {kkt:.3g} <= tol={tol:g}"
            break
        if k >= max_iter:
            break
        if k > 0:
            try:
                prob.where = f"iteration {k}"
                H = prob.hessian(x, lam)
            except _CallbackError as exc:
                status, message = "nonfinite", exc.message
                break
        # 1. safeguard
        xi_G, Z = constraint_info(G)
        mu = 0.0  # regularization of the (2, 2) block of K
        if xi_G < jac_rank_tol:
            rank_streak += 1
            if rank_deficient == "stop":
                status = "jacobian_rank"
                message = (f"lambda_min(G G^T) = {xi_G:.3g} < jac_rank_tol={jac_rank_tol:g} at iteration {k}: the "
                           "constraints are inconsistent, redundant or degenerate here (the KKT matrix is singular); "
                           "rank_deficient='regularize' steps past such points")
                break
            if rank_streak > rank_patience:
                status = "jacobian_rank"
                message = (f"lambda_min(G G^T) stayed below jac_rank_tol={jac_rank_tol:g} for {rank_streak} "
                           f"consecutive iterations (now {xi_G:.3g}, iteration {k}): the constraints are "
                           "inconsistent, redundant or degenerate here")
                break
            mu = jac_rank_tol
            n_regularized += 1
        else:
            rank_streak = 0
        # 2. Hessian modification
        B = H
        normH = None
        if check_curvature and Z is not None and Z.shape[1] > 0:
            HZ = H @ Z if not isinstance(H, spla.LinearOperator) else H.matmat(Z)
            lam_min = float(np.linalg.eigvalsh(Z.T @ np.asarray(HZ))[0])
            if lam_min < curvature_tol:
                normH = _norm2(H)
                shift = xi_B + normH
                if isinstance(H, spla.LinearOperator):
                    B = H + spla.aslinearoperator(sp.identity(n) * shift)
                elif sp.issparse(H):
                    B = (H + shift * sp.identity(n, format="csr")).tocsr()
                else:
                    B = H + shift * np.eye(n)
                n_modified += 1
        # 3. constants of the paper's rule
        normK = Psi = Ups = None
        if accuracy == "paper":
            normH = _norm2(H) if normH is None else normH
            normB = _norm2(B)
            normG = _norm2(G)
            Psi = 20.0 * max(normB ** 2, 1.0) / (max(min(max(xi_G, mu), 1.0), 1e-300) * min(xi_B, 1.0))
            Ups = max(normG, normH, 1.0)
            normK = normB + normG  # ||K|| <= ||B|| + ||G||, a safe (conservative) bound

            def delta_trial():
                return (0.5 - beta) * eta2 / ((1.0 + eta1 + eta2) * Ups ** 2 * Psi ** 2)

            delta = max(min(delta, delta_trial()), delta_min)

        def inner_rtol():
            if accuracy == "paper":
                return theta * delta / (normK * Psi)
            return min(forcing, kkt)

        # 4. inner solve with the merit descent test
        sparse_mode = sp.issparse(B) or sp.issparse(G) or isinstance(B, spla.LinearOperator)
        r0 = -np.concatenate([gradL, c])
        K = _kkt_matrix(B, G, inner, sparse_mode, mu)
        z = np.zeros(n + m)
        spent = 0
        HgL = H @ gradL
        GtC = G.T @ c
        GgL = G @ gradL
        sq_kkt = kkt * kkt
        k_seed = seed + k
        saturated = False
        first = True
        while True:
            if first or inner != "direct":  # a direct solve is exact already: only the penalties change
                rt = inner_rtol()
                z, steps = _inner_solve(K, r0, z, rt, inner, sketch, block,
                                        max(step_cap - spent, 0), momentum, k_seed + spent)
                spent += steps
                if auto and inner == "sketch" and np.linalg.norm(K @ z - r0) > rt * np.linalg.norm(r0):
                    # "auto" never returns a direction worse than asked for: factorize instead
                    z, steps = _inner_solve(K, r0, z, rt, "direct", sketch, block, 1, momentum, 0)
                    spent += steps
                first = False
            dx, dlam = z[:n], z[n:]
            slope = (gradL + eta1 * GtC + eta2 * HgL) @ dx + (c + eta2 * GgL) @ dlam
            if slope <= -0.5 * eta2 * sq_kkt:
                break
            if eta1 > 1e8 or eta2 < 1e-8:
                saturated = True
                break
            eta1 *= nu * nu
            eta2 /= nu
            forcing /= nu ** 4
            if accuracy == "paper":
                delta = max(min(delta / nu ** 4, delta_trial()), delta_min)
        n_inner += spent
        inner_iters.append(spent)
        if saturated and not slope < 0:
            status = "no_descent"
            message = (f"the penalty parameters saturated (eta1={eta1:.3g}, eta2={eta2:.3g}) without a descent "
                       f"direction for the merit function at iteration {k}")
            if mu > 0.0:
                status, message = "jacobian_rank", _rank_stall(xi_G, jac_rank_tol, k, "no merit descent direction")
            break
        # 5. Armijo line search on the exact augmented Lagrangian
        merit0 = f + lam @ c + 0.5 * eta1 * (c @ c) + 0.5 * eta2 * (gradL @ gradL)
        alpha = 1.0
        accepted = False
        try:
            for _ in range(max_backtrack + 1):
                xt = x + alpha * dx
                lt = lam + alpha * dlam
                prob.where = f"a trial point of iteration {k}"
                ft, gt, ct, Gt = prob.first_order(xt)
                gLt = gt + Gt.T @ lt
                merit = ft + lt @ ct + 0.5 * eta1 * (ct @ ct) + 0.5 * eta2 * (gLt @ gLt)
                # 10 eps |M| of slack: near the solution the merit changes by about ||grad L||^2, below its
                # rounding error, and an exact Armijo test would then reject every step (IPOPT's habit).
                if merit <= merit0 + alpha * beta * slope + 10.0 * np.finfo(float).eps * abs(merit0):
                    accepted = True
                    break
                alpha *= 0.5
        except _CallbackError as exc:
            status, message = "nonfinite", exc.message
            break
        if not accepted:
            status = "line_search"
            message = f"the Armijo line search found no step after {max_backtrack} halvings at iteration {k}"
            if mu > 0.0:
                status, message = "jacobian_rank", _rank_stall(xi_G, jac_rank_tol, k, "no Armijo step")
            break
        x, lam = xt, lt
        f, g, c, G = ft, gt, ct, Gt
        step_sizes.append(alpha)
        k += 1

    success = status == "converged"
    if not success and warn:
        warnings.warn(f"minimize_eq did not converge: {message}", ConvergenceWarning, stacklevel=2)
    return MinimizeEqResult(
        x=x, multipliers=lam, fun=float(f), constr_violation=float(np.abs(c).max()), kkt_residual=history[-1],
        success=success, status=status, message=message, nit=k, n_inner=int(n_inner), nfev=prob.nfev,
        njev=prob.njev, nhev=prob.nhev, history=np.array(history), inner_iters=np.array(inner_iters, dtype=np.int64),
        step_sizes=np.array(step_sizes), eta1=float(eta1), eta2=float(eta2), hessian_modified=n_modified,
        rank_regularized=n_regularized, inner=inner, time=time.perf_counter() - t_start)


def _rank_stall(xi_G, jac_rank_tol, k, what):
    return (f"lambda_min(G G^T) = {xi_G:.3g} < jac_rank_tol={jac_rank_tol:g} at iteration {k} and the regularized "
            f"step found {what}: the constraints are inconsistent, redundant or degenerate here")


def _lambda_min_ggt(G, m):
    """lambda_min(G G^T): dense SVD for small or dense G; for a large sparse G, shift-invert Lanczos
    on the sparse G G^T (a sparse LU instead of an O(m^2 n) SVD)."""
    import scipy.sparse.linalg as spla
    if sp.issparse(G) and m > 200:
        GGt = (G @ G.T).tocsc()
        try:
            val = spla.eigsh(GGt, k=1, sigma=0.0, which="LM", return_eigenvectors=False, tol=1e-6)
            return float(max(val[0], 0.0))
        except (RuntimeError, ValueError, spla.ArpackNoConvergence):
            return 0.0  # a singular G G^T makes the shift-invert factorization fail
    s = np.linalg.svd(_dense(G), compute_uv=False)
    return float(s[-1] ** 2) if s.size == m else 0.0


def _kkt_matrix(B, G, inner, sparse_mode, mu=0.0):
    """K = [[B, G^T], [G, -mu I]] (mu > 0 only at rank-deficient iterates)."""
    import scipy.sparse.linalg as spla
    n = B.shape[0]
    m = G.shape[0]
    if inner == "minres" and (isinstance(B, spla.LinearOperator)):
        Gop = spla.aslinearoperator(G)

        def mv(v):
            v = np.ravel(v)
            return np.concatenate([B @ v[:n] + Gop.rmatvec(v[n:]), Gop.matvec(v[:n]) - mu * v[n:]])

        return spla.LinearOperator((n + m, n + m), matvec=mv, rmatvec=mv, dtype=float)
    if inner == "sketch" or not sparse_mode:
        K = np.zeros((n + m, n + m))
        K[:n, :n] = _dense(B)
        Gd = _dense(G)
        K[:n, n:] = Gd.T
        K[n:, :n] = Gd
        if mu > 0.0:
            K[n:, n:] = -mu * np.eye(m)
        return K
    Bs = sp.csr_matrix(_dense(B)) if isinstance(B, spla.LinearOperator) else sp.csr_matrix(B)
    Gs = sp.csr_matrix(G)
    return sp.bmat([[Bs, Gs.T], [Gs, -mu * sp.identity(m) if mu > 0.0 else None]], format="csc")


def _inner_solve(K, r0, z, rtol, inner, sketch, block, cap, momentum, seed):
    """Solve K z = r0 to ||K z - r0|| <= rtol ||r0||, warm-started at z. Returns (z, steps)."""
    import scipy.sparse.linalg as spla
    import scipy.linalg as sla
    if inner == "direct":
        if sp.issparse(K):
            return spla.spsolve(K, r0), 1
        try:
            return sla.solve(K, r0, assume_a="sym"), 1
        except (sla.LinAlgError, ValueError):
            return sla.lstsq(K, r0)[0], 1
    if inner == "minres":
        bn = np.linalg.norm(r0)
        steps = 0
        rt = rtol
        for _ in range(6):
            counter = [0]

            def cb(_xk):
                counter[0] += 1

            z, _info = spla.minres(K, r0, x0=z, rtol=rt, maxiter=max(cap - steps, 1), callback=cb)
            steps += counter[0]
            if np.linalg.norm(r0 - K @ z) <= rtol * bn or steps >= cap:
                break
            rt *= 0.1  # MINRES's own test mixes ||K|| ||z|| in: tighten until the true residual meets it
        return z, steps
    if cap <= 0:
        return z, 0
    res = sketch_and_project(K, r0, sketch=sketch, block=block, rtol=rtol, max_iter=cap, seed=seed % (2 ** 63),
                             x0=z, momentum=momentum, warn=False)
    return res.x, res.n_iter
