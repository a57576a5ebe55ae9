"""Entropic optimal transport: Sinkhorn in the log and kernel domains, Sinkhorn-Newton-Sparse,
unbalanced, partial and progressive-partial transport, batched solves and point clouds.

All solvers return an :class:`OTResult` with the transport ``plan``, the dual potentials ``f`` and
``g`` (in cost units: ``plan = exp((f[:, None] + g[None, :] - M) / reg)`` for the balanced problem),
the transport cost ``<plan, M>``, the entropic ``objective``, ``n_iter``, ``converged`` and the
marginal-error history ``errors``.

Notes
-----
Entropic OT [1]_ solves ``min_P <P, M> + reg * sum_ij P_ij (log P_ij - 1)`` subject to ``P 1 = a``,
``P^T 1 = b``. Its dual is maximised by alternating exact updates of the potentials (Sinkhorn),
written here in the log domain::

    g_j <- reg * log b_j - reg * LSE_i((f_i - M_ij) / reg),
    f_i <- reg * log a_i - reg * LSE_j((g_j - M_ij) / reg),

with a fused, vectorised log-sum-exp (AVX2 where the CPU has it), so that small ``reg`` neither
overflows nor underflows. Over-relaxation ``f <- (1 - w) f + w f_sinkhorn`` with ``w`` set from the
observed contraction rate (Lehmann et al. [3]_) cuts the iteration count several-fold at small reg.
``method="sns"`` adds Newton steps with a sparsified Hessian [2]_. The generalised step with an
exponent ``tau`` per marginal solves the KL-relaxed (unbalanced) problem of Chizat et al. [4]_.

References
----------
.. [1] M. Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013.
.. [2] X. Tang, M. Shavlovsky, H. Rahmanian, E. Tardini, K. K. Thekumparampil, T. Xiao, L. Ying,
   "Accelerating Sinkhorn Algorithm with Sparse Newton Iterations", ICLR 2024.
.. [3] T. Lehmann, M.-K. von Renesse, A. Sambale, A. Uschmajew, "A note on overrelaxation in the
   Sinkhorn algorithm", Optimization Letters, 2022.
.. [4] L. Chizat, G. Peyre, B. Schmitzer, F.-X. Vialard, "Scaling algorithms for unbalanced optimal
   transport problems", Mathematics of Computation, 2018.
.. [5] J.-D. Benamou, G. Carlier, M. Cuturi, L. Nenna, G. Peyre, "Iterative Bregman projections for
   regularized transportation problems", SIAM J. Sci. Comput., 2015.
.. [6] C. Zhang, H. Ren, X. He, "P^2OT: Progressive Partial Optimal Transport for Deep Imbalanced
   Clustering", ICLR 2024.
.. [7] T. Sejourne, F.-X. Vialard, G. Peyre, "Faster Unbalanced Optimal Transport: Translation
   invariant Sinkhorn and 1-D Frank-Wolfe", AISTATS 2022.
"""
import dataclasses
import math
import numbers
import warnings

import numpy as np

from . import _core
from ._errors import ConvergenceWarning
from ._result import Result
from ._validation import as_array, check_choice, check_int, check_positive, check_real, result_dtype

__all__ = ["OTResult", "LazyPlan", "sinkhorn", "sinkhorn_points", "sinkhorn_unbalanced", "partial",
           "progressive_partial", "sinkhorn_batch", "cost_matrix"]

_METHODS = ("log", "sinkhorn", "sns")


@dataclasses.dataclass(frozen=True, repr=False)
class OTResult(Result):
    """Result of an entropic optimal-transport solve.

    Attributes
    ----------
    plan : ndarray of shape (n, m), or LazyPlan, or None
        The transport plan (``(B, n, m)`` for batched solves). Solves from point clouds return a
        :class:`LazyPlan` that applies the plan without storing it.
    f, g : ndarray
        Dual potentials in cost units (``-inf`` on zero-mass atoms).
    cost : float or ndarray
        Transport cost ``<plan, M>``.
    objective : float or ndarray
        The entropic objective of the problem solved (see each function's Notes).
    n_iter : int or ndarray
        Iterations (a Sinkhorn iteration updates g then f; an SNS Newton step counts as one).
    converged : bool or ndarray
        Whether the stopping error fell below ``tol`` within ``max_iter``.
    errors : ndarray
        Error history (the final error per problem for batched solves).
    method : str
        The method that produced the result (``"log"`` when ``"sinkhorn"`` fell back to it).
    reg : float
        The regularisation.
    omega : float
        The final over-relaxation weight.
    n_newton : int
        Newton steps (``method="sns"``), else 0.
    extra : dict
        Method-specific details (e.g. SNS stage counts, partial's mass multiplier).
    """

    plan: object
    f: np.ndarray
    g: np.ndarray
    cost: object
    objective: object
    n_iter: object
    converged: object
    errors: np.ndarray
    method: str = "log"
    reg: float = 0.0
    omega: float = 1.0
    n_newton: int = 0
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def error(self):
        """Final stopping error."""
        return float(self.errors[-1]) if np.size(self.errors) else 0.0


class LazyPlan:
    """The plan ``P_ij = exp((f_i + g_j - scale * |x_i - y_j|^2) / reg)`` of a point-cloud solve,
    never stored: ``P @ v``, ``P.T @ u`` (via :meth:`rmatvec`), rows, and :meth:`to_dense`."""

    def __init__(self, x, y, scale, f, g, reg):
        self._x, self._y, self._scale, self._f, self._g, self.reg = x, y, scale, f, g, reg
        self.shape = (x.shape[0], y.shape[0])
        self.dtype = x.dtype

    def __repr__(self):
        return f"LazyPlan(shape={self.shape}, dtype={self.dtype})"

    def matvec(self, v):
        v = as_array(v, "v", dtype=np.float64, ndim=1, shape=(self.shape[1],))
        return _core.ot.plan_matvec_points(self._x, self._y, self._scale, self._f, self._g, self.reg, v, False)

    def rmatvec(self, u):
        u = as_array(u, "u", dtype=np.float64, ndim=1, shape=(self.shape[0],))
        return _core.ot.plan_matvec_points(self._x, self._y, self._scale, self._f, self._g, self.reg, u, True)

    def __matmul__(self, v):
        return self.matvec(v)

    def rows(self, start, stop):
        """Dense rows ``start:stop`` of the plan."""
        C = cost_matrix(self._x[start:stop], self._y, p=2).astype(self.dtype) * self._scale
        return np.exp((self._f[start:stop, None] + self._g[None, :] - C) / self.reg)

    def to_dense(self):
        return self.rows(0, self.shape[0])


# ----------------------------------------------------------------------------- validation helpers
def _check_reg(reg, name="reg"):
    reg = check_real(reg, name)
    if not reg > 0:
        raise ValueError(f"{name} must be positive, got {reg:g}")
    return reg


def _weights(w, name, size, dtype):
    if w is None or (hasattr(w, "__len__") and len(w) == 0):
        return np.full(size, 1.0 / size, dtype=dtype)
    w = as_array(w, name, dtype=dtype, ndim=1)
    if w.shape[0] != size:
        raise ValueError(f"{name} must have length {size} to match M, got {w.shape[0]}")
    if (w < 0).any():
        raise ValueError(f"{name} must be non-negative, found a negative entry")
    if not w.sum() > 0:
        raise ValueError(f"{name} must have positive total mass")
    return w


def _cost(M, dtype):
    M = as_array(M, "M", dtype=dtype, ndim=2)
    return M


def _max_iter(max_iter, default):
    return default if max_iter is None else check_int(max_iter, "max_iter", minimum=1)


def _tol(tol, dtype):
    if tol is None:
        return 1e-9 if dtype == np.float64 else 1e-6
    return check_positive(tol, "tol")


def _omega(omega):
    if isinstance(omega, str):
        check_choice(omega, "omega", ("auto",))
        return 0.0
    omega = check_real(omega, "omega")
    if not 0 < omega < 2:
        raise ValueError(f"omega must lie in (0, 2) or be 'auto', got {omega:g}")
    return omega


def _warn(res, what):
    if not res.converged:
        warnings.warn(f"{what} did not converge in {res.n_iter} iterations (error {res.error:.3g}); "
                      "raise max_iter or reg", ConvergenceWarning, stacklevel=3)
    return res


def _embed(v, keep, size, fill):
    if keep is None:
        return v
    out = np.full(size, fill, dtype=v.dtype)
    out[keep] = v
    return out


def _embed_plan(P, ka, kb, shape):
    if P is None or (ka is None and kb is None):
        return P
    out = np.zeros(shape, dtype=P.dtype)
    ia = ka if ka is not None else slice(None)
    ib = kb if kb is not None else slice(None)
    out[np.ix_(np.arange(shape[0])[ia], np.arange(shape[1])[ib])] = P
    return out


def _strip(a, b, M):
    """Drop zero-mass atoms (their log-mass is -inf); returns the kept index arrays or None."""
    ka = np.flatnonzero(a > 0) if (a == 0).any() else None
    kb = np.flatnonzero(b > 0) if (b == 0).any() else None
    if ka is not None:
        a, M = a[ka], M[ka]
    if kb is not None:
        b, M = b[kb], M[:, kb]
    return a, b, np.ascontiguousarray(M), ka, kb


# ----------------------------------------------------------------------------- balanced
def sinkhorn(a, b, M, reg, method="log", tol=None, max_iter=None, *, omega="auto", epsilon_scaling=False,
             warm_start=None, return_plan=True, sns_sinkhorn_iter=20, sns_delta=1e-3, sns_max_newton=100):
    """Entropic optimal transport between histograms ``a`` and ``b`` with cost ``M``.

    Solves ``min_P <P, M> + reg * sum_ij P_ij (log P_ij - 1)`` s.t. ``P 1 = a``, ``P^T 1 = b``.

    Parameters
    ----------
    a : array_like, shape (n,), or None
        Source weights, non-negative (``None`` or empty: uniform).
    b : array_like, shape (m,), or None
        Target weights, non-negative, with the same total mass as ``a``.
    M : array_like, shape (n, m)
        Cost matrix, finite.
    reg : float
        Entropic regularisation, > 0.
    method : {"log", "sinkhorn", "sns"}, default "log"
        ``"log"``: log-domain Sinkhorn (stable at any reg). ``"sinkhorn"``: kernel domain
        (``K = exp(-M/reg)``, two matrix-vector products per iteration); if ``K`` underflows or a
        scaling overflows (small reg), it switches automatically to the log domain from the
        current potentials and the result says ``method="log"``. ``"sns"``: Sinkhorn-Newton-Sparse.
    tol : float, optional
        Stop when the L2 norm of the column-marginal error ``||P^T 1 - b||`` falls below it (rows
        are exact on return). Default 1e-9 (float64) or 1e-6 (float32).
    max_iter : int, optional
        Iteration cap (default 10000).
    omega : "auto" or float in (0, 2), default "auto"
        Over-relaxation. ``"auto"``: 20 plain iterations, then ``w = 2 / (1 + sqrt(1 - r))`` from
        the observed contraction rate ``r`` (capped at 1.95). ``1.0`` is plain Sinkhorn.
        Ignored by ``"sns"`` (whose Sinkhorn stage is plain).
    epsilon_scaling : bool or float, default False
        Solve a geometric sequence ``reg_k = max(reg, max(M) * ratio^k)`` with warm starts
        (``True``: ratio 0.5); log domain only.
    warm_start : tuple (f, g), optional
        Initial potentials in cost units.
    return_plan : bool, default True
        Form the dense plan (otherwise ``plan`` is None; costs and marginals are still computed).
    sns_sinkhorn_iter, sns_delta, sns_max_newton
        SNS: Sinkhorn iterations before Newton, the mass fraction dropped per row when the
        Hessian is sparsified (the adaptive budget), and the Newton-step cap.

    Returns
    -------
    OTResult
        ``objective = <P, M> + reg * sum P (log P - 1)``. With ``method="sns"``, ``n_newton`` and
        ``extra`` (``n_sinkhorn``, ``cg_iters``, ``mean_kept`` entries per row) describe the stages.
        Non-convergence gives ``converged=False`` and a :class:`kernforge.ConvergenceWarning`.

    Raises
    ------
    ValueError
        Negative weights, unequal total masses, shape mismatch, NaN or inf in ``M``, empty input,
        ``reg <= 0``, an unknown method, ``omega`` outside (0, 2).
    TypeError
        Complex or non-numeric input.

    Notes
    -----
    The entropic problem of Cuturi (2013) [1]_, solved by the log-domain updates of the module
    docstring. SNS: Tang et al. (ICLR 2024) [2]_, Sinkhorn then Newton on the dual potential, with the
    Hessian sparsified per row to the smallest set of entries holding ``1 - sns_delta`` of the
    row's mass (the paper's fixed budget of about 2 entries per row stalls on dense point clouds).
    Zero-mass atoms are removed before solving: their plan rows/columns are 0 and potentials -inf.

    References
    ----------
    See the module docstring.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((50, 2)), rng.random((60, 2))
    >>> M = kf.ot.cost_matrix(x, y); M /= M.max()
    >>> res = kf.ot.sinkhorn(None, None, M, reg=1e-2)
    >>> res.converged, bool(np.allclose(res.plan.sum(0), 1 / 60, atol=1e-8))
    (True, True)
    """
    check_choice(method, "method", _METHODS)
    dtype = result_dtype(a=a, b=b, M=M)
    M = _cost(M, dtype)
    n, m = M.shape
    a = _weights(a, "a", n, dtype)
    b = _weights(b, "b", m, dtype)
    reg = _check_reg(reg)
    tol = _tol(tol, dtype)
    max_iter = _max_iter(max_iter, 10000)
    om = _omega(omega)
    sa, sb = float(a.sum(dtype=np.float64)), float(b.sum(dtype=np.float64))
    if abs(sa - sb) > 1e-6 * max(sa, sb) + (1e-5 * max(sa, sb) if dtype == np.float32 else 0):
        raise ValueError(f"a and b must have the same total mass for balanced OT, got {sa:.9g} and {sb:.9g} "
                         "(use sinkhorn_unbalanced or partial otherwise)")
    ratio = _eps_ratio(epsilon_scaling)
    if ratio and method == "sinkhorn":
        method = "log"
    sns_it = check_int(sns_sinkhorn_iter, "sns_sinkhorn_iter", minimum=0)
    sns_d = check_real(sns_delta, "sns_delta")
    if not 0 <= sns_d < 1:
        raise ValueError(f"sns_delta must lie in [0, 1), got {sns_d:g}")
    sns_mn = check_int(sns_max_newton, "sns_max_newton", minimum=0)
    a_s, b_s, M_s, ka, kb = _strip(a, b, M)
    f0, g0 = _warm(warm_start, n, m, dtype, ka, kb)
    d = _core.ot.sinkhorn_dense(M_s, a_s, b_s, reg, method, tol, max_iter, om, ratio, float(M_s.max()), f0, g0,
                                bool(return_plan), sns_it, sns_d, sns_mn)
    extra = {}
    if method == "sns":
        extra = {k: d[k] for k in ("n_sinkhorn", "cg_iters", "mean_kept")}
    if d["note"]:
        extra["note"] = d["note"]
    res = _balanced_result(d, reg, a_s, b_s, ka, kb, (n, m), extra, d.get("n_newton", 0))
    return _warn(res, f"sinkhorn(method={method!r})")


def _eps_ratio(epsilon_scaling):
    if epsilon_scaling is False or epsilon_scaling is None:
        return 0.0
    if epsilon_scaling is True:
        return 0.5
    r = check_real(epsilon_scaling, "epsilon_scaling")
    if not 0 < r < 1:
        raise ValueError(f"epsilon_scaling must be a bool or a ratio in (0, 1), got {r:g}")
    return r


def _warm(warm_start, n, m, dtype, ka=None, kb=None):
    if warm_start is None:
        return None, None
    try:
        f0, g0 = warm_start
    except (TypeError, ValueError):
        raise ValueError("warm_start must be a pair (f, g) of potentials") from None
    f0 = as_array(f0, "warm_start[0]", dtype=dtype, ndim=1, shape=(n,), finite=False)
    g0 = as_array(g0, "warm_start[1]", dtype=dtype, ndim=1, shape=(m,), finite=False)
    if ka is not None:
        f0 = f0[ka]
    if kb is not None:
        g0 = g0[kb]
    for v, nm in ((f0, "warm_start[0]"), (g0, "warm_start[1]")):
        if not np.isfinite(v).all():
            raise ValueError(f"{nm} must be finite on atoms of positive mass")
    return np.ascontiguousarray(f0), np.ascontiguousarray(g0)


def _balanced_result(d, reg, a, b, ka, kb, shape, extra, n_newton):
    f, g, r, c = d["f"], d["g"], d["r"], d["c"]
    objective = float(r @ f.astype(np.float64) + c @ g.astype(np.float64) - reg * r.sum())
    plan = _embed_plan(d["plan"], ka, kb, shape)
    return OTResult(plan=plan, f=_embed(f, ka, shape[0], -np.inf), g=_embed(g, kb, shape[1], -np.inf),
                    cost=float(d["cost"]), objective=objective, n_iter=int(d["n_iter"]),
                    converged=bool(d["converged"]), errors=d["errors"], method=d["method"], reg=reg,
                    omega=float(d["omega"]), n_newton=int(n_newton), extra=extra)


def sinkhorn_points(x, y, reg, a=None, b=None, *, scale=1.0, tol=None, max_iter=None, omega="auto",
                    epsilon_scaling=False, warm_start=None):
    """Balanced entropic OT between point clouds with cost ``scale * |x_i - y_j|^2``, never stored.

    The cost is recomputed inside each log-sum-exp, so memory is O((n + m) d): n = m = 20000 needs
    a few MB where a dense cost would take 3.2 GB.

    Parameters
    ----------
    x : array_like, shape (n, d)
    y : array_like, shape (m, d)
    reg : float
        Regularisation, > 0 (in the units of the scaled cost).
    a, b : array_like, optional
        Weights (uniform by default), equal total mass.
    scale : float, default 1.0
        Multiplier of the squared distances (e.g. ``1 / max cost`` to normalise).
    tol, max_iter, omega, epsilon_scaling, warm_start
        As in :func:`sinkhorn` (log domain).

    Returns
    -------
    OTResult
        ``plan`` is a :class:`LazyPlan`; ``cost`` and the objective are computed exactly.

    Raises
    ------
    ValueError
        As :func:`sinkhorn`; ``x`` and ``y`` must have the same number of columns.

    Notes
    -----
    The same log-domain iteration as :func:`sinkhorn` (method "log") with an on-the-fly cost, the
    KeOps/GeomLoss "online" idea (Feydy et al., AISTATS 2019).

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((300, 2)), rng.random((200, 2))
    >>> res = kf.ot.sinkhorn_points(x, y, reg=0.01)
    >>> P = res.plan                       # LazyPlan: P @ v without storing P
    >>> bool(np.allclose(P.rmatvec(np.ones(300)), 1 / 200, atol=1e-8))
    True
    """
    dtype = result_dtype(x=x, y=y)
    x = as_array(x, "x", dtype=dtype, ndim=2)
    y = as_array(y, "y", dtype=dtype, ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got {x.shape[1]} and {y.shape[1]}")
    n, m = x.shape[0], y.shape[0]
    a = _weights(a, "a", n, dtype)
    b = _weights(b, "b", m, dtype)
    if (a == 0).any() or (b == 0).any():
        raise ValueError("a and b must be positive for sinkhorn_points (drop zero-mass points)")
    sa, sb = float(a.sum(dtype=np.float64)), float(b.sum(dtype=np.float64))
    if abs(sa - sb) > 1e-6 * max(sa, sb) + (1e-5 * max(sa, sb) if dtype == np.float32 else 0):
        raise ValueError(f"a and b must have the same total mass, got {sa:.9g} and {sb:.9g}")
    reg = _check_reg(reg)
    scale = check_positive(scale, "scale")
    tol = _tol(tol, dtype)
    max_iter = _max_iter(max_iter, 10000)
    om = _omega(omega)
    ratio = _eps_ratio(epsilon_scaling)
    f0, g0 = _warm(warm_start, n, m, dtype)
    # The diameter bounds max C: the start of an epsilon schedule.
    lo, hi = np.minimum(x.min(0), y.min(0)), np.maximum(x.max(0), y.max(0))
    diam = float(scale * ((hi - lo) ** 2).sum())
    d = _core.ot.sinkhorn_points(x, y, scale, a, b, reg, tol, max_iter, om, ratio, diam, f0, g0)
    d["plan"] = None
    res = _balanced_result(d, reg, a, b, None, None, (n, m), {}, 0)
    res = dataclasses.replace(res, plan=LazyPlan(x, y, scale, d["f"], d["g"], reg))
    return _warn(res, "sinkhorn_points")


# ----------------------------------------------------------------------------- unbalanced family
def _kl(x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(x > 0, x * np.log(x / y), 0.0)
    return float(t.sum() - x.sum() + y.sum())


def _reg_m_pair(reg_m):
    if isinstance(reg_m, numbers.Real) and not isinstance(reg_m, bool):
        vals = (float(reg_m), float(reg_m))
    else:
        try:
            vals = tuple(float(v) for v in reg_m)
        except TypeError:
            raise TypeError(f"reg_m must be a number or a pair of numbers, got {type(reg_m).__name__}") from None
        if len(vals) == 1:
            vals = vals * 2
        if len(vals) != 2:
            raise ValueError(f"reg_m must be a number or a pair, got {len(vals)} values")
    for v in vals:
        if math.isnan(v) or v <= 0:
            raise ValueError(f"reg_m must be positive (inf for a hard marginal), got {v:g}")
    return vals


def sinkhorn_unbalanced(a, b, M, reg, reg_m, reg_type="kl", method="sinkhorn", tol=None, max_iter=None, *,
                        omega="auto", warm_start=None, return_plan=True):
    """Unbalanced entropic OT with KL-relaxed marginals (POT's ``sinkhorn_unbalanced``).

    Solves ``min_P <P, M> + reg * KL(P | R) + reg_m1 * KL(P 1 | a) + reg_m2 * KL(P^T 1 | b)`` with
    ``R = a b^T`` (``reg_type="kl"``) or ``R = 1`` (``"entropy"``) and the generalised KL
    ``KL(x | y) = sum x log(x / y) - x + y``.

    Parameters
    ----------
    a, b : array_like or None
        Non-negative weights (any total masses; uniform ``1/n`` if None).
    M : array_like, shape (n, m)
    reg : float
        Entropic regularisation, > 0.
    reg_m : float or pair
        Marginal relaxation; ``inf`` makes that marginal hard (``reg_m = inf`` is balanced OT).
    reg_type : {"kl", "entropy"}, default "kl"
    method : {"sinkhorn", "log"}, default "sinkhorn"
        ``"sinkhorn"``: kernel domain (matrix-vector products), switching automatically to the log
        domain if the kernel underflows or a scaling leaves the safe range (small reg; the result
        then says ``method="log"``). ``"log"``: log domain throughout.
    tol : float, optional
        Stop when the largest change of a potential over an iteration, divided by reg, is below
        tol (for a hard marginal this is ``max |log(marginal / target)|``). Default 1e-9 (1e-6 f32).
    max_iter : int, optional
        Default 10000.
    omega : float or "auto", default "auto"
        Over-relaxation of the potential updates (as in :func:`sinkhorn`; 1.0 is plain).
    warm_start : tuple (f, g), optional
    return_plan : bool, default True

    Returns
    -------
    OTResult
        ``objective`` is the value of the problem above.

    Raises
    ------
    ValueError
        Bad shapes, negative weights, NaN/inf in ``M``, ``reg <= 0``, ``reg_m <= 0``.

    Notes
    -----
    Generalised Sinkhorn (Chizat et al. 2018 [4]_), in the log domain:
    ``f_i <- tau_a * reg * (log a_i - log R_i - LSE_j((g_j - M_ij)/reg + log R_j))``,
    ``tau = reg_m / (reg_m + reg)``. With both marginals relaxed, each iteration ends with the
    optimal translation ``f + t, g - t`` of the dual (Sejourne, Vialard, Peyre 2022 [7]_),
    which removes the slow drift of plain iterations when ``reg_m >> reg``.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> res = kf.ot.sinkhorn_unbalanced([0.5, 0.5], [0.5, 0.5], M, reg=1.0, reg_m=1.0)
    >>> np.round(res.plan, 7)
    array([[0.3220536, 0.1184769],
           [0.1184769, 0.3220536]])
    """
    check_choice(reg_type, "reg_type", ("kl", "entropy"))
    check_choice(method, "method", ("sinkhorn", "log"))
    dtype = result_dtype(a=a, b=b, M=M)
    M = _cost(M, dtype)
    n, m = M.shape
    a = _weights(a, "a", n, dtype)
    b = _weights(b, "b", m, dtype)
    reg = _check_reg(reg)
    r1, r2 = _reg_m_pair(reg_m)
    tol = _tol(tol, dtype)
    max_iter = _max_iter(max_iter, 10000)
    om = _omega(omega)
    a_s, b_s, M_s, ka, kb = _strip(a, b, M)
    f0, g0 = _warm(warm_start, n, m, dtype, ka, kb)
    la, lb = np.log(a_s), np.log(b_s)
    ta = np.full(a_s.size, 1.0 if math.isinf(r1) else r1 / (r1 + reg), dtype=dtype)
    tb = np.full(b_s.size, 1.0 if math.isinf(r2) else r2 / (r2 + reg), dtype=dtype)
    lra, lrb = (la, lb) if reg_type == "kl" else (None, None)
    # Both sides relaxed: translation-invariant iterations (Sejourne et al. 2022).
    tr = (r1, r2) if not (math.isinf(r1) or math.isinf(r2)) else (0.0, 0.0)
    d = _core.ot.scaling_dense(M_s, la, lb, ta, tb, lra, lrb, None, None, reg, tol, max_iter, om, f0, g0, 0.0, 0.0,
                               bool(return_plan), tr[0], tr[1], method == "sinkhorn")
    f, g, r, c = d["f"], d["g"], d["r"], d["c"]
    mass = float(r.sum())
    # KL(P | R) = sum P log(P / R) - |P| + |R|, with log(P / R) = (f + g - M) / reg.
    kl_pr = (r @ f.astype(np.float64) + c @ g.astype(np.float64) - d["cost"]) / reg - mass
    kl_pr += float(a_s.sum(dtype=np.float64) * b_s.sum(dtype=np.float64)) if reg_type == "kl" else float(n * m)
    obj = d["cost"] + reg * kl_pr
    if not math.isinf(r1):
        obj += r1 * _kl(r, a_s)
    if not math.isinf(r2):
        obj += r2 * _kl(c, b_s)
    res = OTResult(plan=_embed_plan(d["plan"], ka, kb, (n, m)), f=_embed(f, ka, n, -np.inf),
                   g=_embed(g, kb, m, -np.inf), cost=float(d["cost"]), objective=float(obj),
                   n_iter=int(d["n_iter"]), converged=bool(d["converged"]), errors=d["errors"], method=d["method"],
                   reg=reg, omega=float(d["omega"]), extra={"mass": mass, **({"note": d["note"]} if d["note"] else {})})
    return _warn(res, "sinkhorn_unbalanced")


def partial(a, b, M, reg, mass, tol=None, max_iter=None, *, return_plan=True):
    """Entropic partial OT: transport exactly ``mass`` with ``P 1 <= a``, ``P^T 1 <= b``.

    Solves ``min_P <P, M> + reg * sum P (log P - 1)`` s.t. ``P 1 <= a``, ``P^T 1 <= b``,
    ``sum P = mass`` (POT's ``entropic_partial_wasserstein``), in O(nm) per iteration.

    Parameters
    ----------
    a, b : array_like or None
        Non-negative weights (uniform ``1/n`` if None).
    M : array_like, shape (n, m)
    reg : float
        > 0.
    mass : float
        Total mass to transport, ``0 < mass <= min(sum a, sum b)``.
    tol : float, optional
        Stop when the largest change of a dual variable over an iteration, divided by reg, is
        below tol. Default 1e-9 (1e-6 for float32).
    max_iter : int, optional
        Default 10000.
    return_plan : bool, default True

    Returns
    -------
    OTResult
        ``objective = <P, M> + reg * sum P (log P - 1)``; ``extra["mu"]`` is the multiplier of
        the mass constraint.

    Raises
    ------
    ValueError
        As :func:`sinkhorn`; ``mass`` outside ``(0, min(sum a, sum b)]``.

    Notes
    -----
    Dual block-coordinate ascent with ``P_ij = exp((f_i + g_j + mu - M_ij)/reg)``, ``f, g <= 0``:
    ``g_j <- min(0, reg log b_j - reg LSE_i((f_i + mu - M_ij)/reg))``, likewise f, then ``mu``
    rescales the total mass to ``mass``. This is the Dykstra / iterative Bregman projection
    scheme of Benamou et al. (2015) [5]_, whose iterates POT forms with dense diagonal
    matrix products (O(n^3) per iteration). Ours costs O(nm): in the kernel domain
    (``u = exp(f/reg) <= 1``, one matvec per half-step) when every ``exp(-M_ij/reg)`` is a normal
    number (``max |M| / reg < 650`` in float64, ``75`` in float32), otherwise in the log domain;
    both run the same iteration and stopping rule.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> M = rng.random((40, 30))
    >>> res = kf.ot.partial(None, None, M, reg=0.05, mass=0.5)
    >>> round(float(res.plan.sum()), 9), bool((res.plan.sum(1) <= 1 / 40 + 1e-9).all())
    (0.5, True)
    """
    dtype = result_dtype(a=a, b=b, M=M)
    M = _cost(M, dtype)
    n, m = M.shape
    a = _weights(a, "a", n, dtype)
    b = _weights(b, "b", m, dtype)
    reg = _check_reg(reg)
    mass = check_real(mass, "mass")
    cap = min(float(a.sum()), float(b.sum()))
    if not 0 < mass <= cap * (1 + 1e-12):
        raise ValueError(f"mass must lie in (0, min(sum a, sum b)] = (0, {cap:.6g}], got {mass:g}")
    tol = _tol(tol, dtype)
    max_iter = _max_iter(max_iter, 10000)
    a_s, b_s, M_s, ka, kb = _strip(a, b, M)
    d = _core.ot.partial_dense(M_s, np.log(a_s), np.log(b_s), mass, reg, tol, max_iter, bool(return_plan))
    f, g, r, c = d["f"], d["g"], d["r"], d["c"]
    fm = f.astype(np.float64) + d["mu"]
    obj = float(r @ fm + c @ g.astype(np.float64) - reg * r.sum())
    res = OTResult(plan=_embed_plan(d["plan"], ka, kb, (n, m)), f=_embed(f, ka, n, -np.inf),
                   g=_embed(g, kb, m, -np.inf), cost=float(d["cost"]), objective=obj, n_iter=int(d["n_iter"]),
                   converged=bool(d["converged"]), errors=d["errors"], method="log", reg=reg, omega=1.0,
                   extra={"mu": float(d["mu"]), "mass": float(r.sum())})
    return _warn(res, "partial")


def progressive_partial(M, prior=None, rho=1.0, reg=0.1, reg_m=1.0, *, a=None, input="cost", tol=None,
                        max_iter=1000, warm_start=None, return_plan=True):
    """Progressive partial OT of P^2OT / SP^2OT / OTSurv (samples x clusters pseudo-labelling).

    Solves ``min_Q <Q, M> + reg * sum Q (log Q - 1) + reg_m * KL(Q^T 1 | rho * prior)`` s.t.
    ``Q 1 <= a`` and ``sum Q = rho``, through a zero-cost dummy column that takes mass ``1 - rho``.

    Parameters
    ----------
    M : array_like, shape (n, k)
        Cost (``input="cost"``) or predicted probabilities (``input="scores"``: the cost is
        ``-log(scores)``, the P^2OT convention).
    prior : array_like, shape (k,), optional
        Cluster prior ``pi`` summing to 1 (uniform by default).
    rho : float in (0, 1]
        Mass to transport (the fraction of confident samples; ramped over training in P^2OT).
    reg : float, default 0.1
    reg_m : float, default 1.0
        KL weight on the cluster marginal (``inf``: hard ``rho * prior``).
    a : array_like, shape (n,), optional
        Sample weights summing to 1 (default ``1/n``).
    input : {"cost", "scores"}
    tol, max_iter, warm_start, return_plan
        As in :func:`sinkhorn_unbalanced` (default 1000 iterations, the papers' cap).
        ``warm_start`` is ``(f, g)`` or ``(f, g, g_dummy)`` from a previous result
        (``res.extra["g_dummy"]``), e.g. the previous epoch.

    Returns
    -------
    OTResult
        ``plan`` is Q (n x k, total mass rho). Pseudo-labels: ``Q * n`` (P^2OT) or ``Q / rho``
        (OTSurv). ``extra["g_dummy"]`` is the dummy column's potential.

    Raises
    ------
    ValueError
        Bad shapes or values, ``rho`` outside (0, 1], non-positive scores.

    Notes
    -----
    Rows are hard (``a``), the dummy column is hard with target ``1 - rho`` (which fixes the
    transported mass to rho), real columns are KL-relaxed with exponent
    ``tau = reg_m / (reg_m + reg)`` (the scaling iteration of Zhang et al., ICLR 2024 [6]_); one generalised
    log-domain scaling step, the dummy handled analytically.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.dirichlet(np.ones(5), size=100)
    >>> res = kf.ot.progressive_partial(scores, rho=0.3, input="scores")
    >>> round(float(res.plan.sum()), 6)
    0.3
    """
    check_choice(input, "input", ("cost", "scores"))
    dtype = result_dtype(M=M)
    M = as_array(M, "M", dtype=dtype, ndim=2)
    if input == "scores":
        if (M <= 0).any():
            raise ValueError("scores must be positive for input='scores'")
        M = np.ascontiguousarray(-np.log(M))
    n, k = M.shape
    a = _weights(a, "a", n, dtype)
    prior = _weights(prior, "prior", k, dtype)
    if abs(float(a.sum()) - 1) > 1e-6 or abs(float(prior.sum()) - 1) > 1e-6:
        raise ValueError("a and prior must each sum to 1")
    rho = check_real(rho, "rho")
    if not 0 < rho <= 1:
        raise ValueError(f"rho must lie in (0, 1], got {rho:g}")
    reg = _check_reg(reg)
    reg_m = check_positive(reg_m, "reg_m")
    tol = _tol(tol, dtype)
    max_iter = _max_iter(max_iter, 1000)
    if (a == 0).any() or (prior == 0).any():
        raise ValueError("a and prior must be positive for progressive_partial")
    f0 = g0 = None
    gd0 = 0.0
    if warm_start is not None:
        ws = tuple(warm_start)
        f0, g0 = _warm(ws[:2], n, k, dtype)
        gd0 = float(ws[2]) if len(ws) > 2 else 0.0
    tb = np.full(k, 1.0 if math.isinf(reg_m) else reg_m / (reg_m + reg), dtype=dtype)
    lb = np.log(rho * prior).astype(dtype)
    dummy = (0.0, math.log(1 - rho), 1.0) if rho < 1 else None
    d = _core.ot.scaling_dense(M, np.log(a), lb, None, tb, None, None, None, dummy, reg, tol, max_iter, 1.0, f0, g0,
                               0.0, gd0, bool(return_plan), 0.0, 0.0, False)
    f, g, r, c = d["f"], d["g"], d["r"], d["c"]
    mass = float(c.sum())
    # Entropy over the real block only (the dummy column is bookkeeping).
    obj = float(d["cost"] + (r @ f.astype(np.float64) + c @ g.astype(np.float64) - d["cost"]) - reg * mass)
    if not math.isinf(reg_m):
        obj += reg_m * _kl(c, rho * prior)
    res = OTResult(plan=d["plan"], f=f, g=g, cost=float(d["cost"]), objective=obj, n_iter=int(d["n_iter"]),
                   converged=bool(d["converged"]), errors=d["errors"], method="log", reg=reg, omega=1.0,
                   extra={"g_dummy": float(d["gd"]), "mass": mass})
    return _warn(res, "progressive_partial")


# ----------------------------------------------------------------------------- batched
def sinkhorn_batch(a, b, M, reg, method="sinkhorn", tol=None, max_iter=None, *, omega="auto", return_plan=True):
    """Solve B balanced problems of equal size in one call, in parallel over the problems.

    Parameters
    ----------
    a : array_like, shape (B, n)
    b : array_like, shape (B, m)
        Positive weights; ``a[k]`` and ``b[k]`` have equal total mass.
    M : array_like, shape (B, n, m) or (n, m)
        One cost per problem, or one shared by all.
    reg, tol, max_iter, omega, return_plan
        As in :func:`sinkhorn`.
    method : {"sinkhorn", "log"}, default "sinkhorn"
        ``"sinkhorn"``: kernel domain (fastest for small problems), switching to the log domain
        per problem if the kernel underflows; ``"log"``: log domain throughout.

    Returns
    -------
    OTResult
        Fields stacked over the batch: ``plan`` (B, n, m), ``f`` (B, n), ``g`` (B, m), ``cost``,
        ``objective``, ``n_iter``, ``converged`` and ``errors`` (the final error) of shape (B,).

    Raises
    ------
    ValueError
        Shape mismatches, non-positive weights, unequal masses, NaN/inf, ``reg <= 0``.

    Notes
    -----
    Each problem runs the iteration of :func:`sinkhorn` with the same method on one thread; the
    result equals a loop of single solves. Problems with ``n * m < 65536`` take a small-problem
    kernel path: ``exp(-M/reg)`` once, register-blocked matvecs, and the first-order form
    ``u <- u_new + (1 - omega) (u - u_new)`` of over-relaxation (no transcendental per entry).

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> M = rng.random((8, 16, 16)); a = np.full((8, 16), 1 / 16)
    >>> res = kf.ot.sinkhorn_batch(a, a, M, reg=0.1)
    >>> res.plan.shape, bool(res.converged.all())
    ((8, 16, 16), True)
    """
    dtype = result_dtype(a=a, b=b, M=M)
    a = as_array(a, "a", dtype=dtype, ndim=2)
    b = as_array(b, "b", dtype=dtype, ndim=2)
    M = as_array(M, "M", dtype=dtype, ndim=(2, 3))
    B, n = a.shape
    m = b.shape[1]
    if b.shape[0] != B:
        raise ValueError(f"a and b must have the same batch size, got {B} and {b.shape[0]}")
    want = (n, m) if M.ndim == 2 else (B, n, m)
    if M.shape != want:
        raise ValueError(f"M must have shape {(B, n, m)} or {(n, m)}, got {M.shape}")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("a and b must be positive for sinkhorn_batch")
    sa, sb = a.sum(1, dtype=np.float64), b.sum(1, dtype=np.float64)
    if (np.abs(sa - sb) > 1e-6 * np.maximum(sa, sb) + (1e-5 if dtype == np.float32 else 0)).any():
        raise ValueError("a[k] and b[k] must have the same total mass for every k")
    reg = _check_reg(reg)
    tol = _tol(tol, dtype)
    max_iter = _max_iter(max_iter, 10000)
    om = _omega(omega)
    check_choice(method, "method", ("sinkhorn", "log"))
    d = _core.ot.sinkhorn_batch(M, a, b, reg, tol, max_iter, om, bool(return_plan), method == "sinkhorn")
    f, g = d["f"], d["g"]
    # Objective = <a, f> + <b, g> - reg * mass (rows exact, columns to tol).
    obj = (a * f).sum(1, dtype=np.float64) + (b * g).sum(1, dtype=np.float64) - reg * sa
    res = OTResult(plan=d["plan"], f=f, g=g, cost=d["cost"], objective=obj, n_iter=d["n_iter"],
                   converged=d["converged"], errors=d["err"], method=method, reg=reg)
    if not res.converged.all():
        warnings.warn(f"sinkhorn_batch: {int((~res.converged).sum())} of {B} problems did not converge",
                      ConvergenceWarning, stacklevel=2)
    return res


# ----------------------------------------------------------------------------- costs
def cost_matrix(x, y=None, p=2):
    """Cost matrix between point clouds: ``|x_i - y_j|^p`` (p = 2: squared Euclidean, as POT's
    ``ot.dist``).

    Parameters
    ----------
    x : array_like, shape (n, d)
    y : array_like, shape (m, d), optional (default x)
    p : float, default 2
        Exponent, > 0.

    Returns
    -------
    ndarray, shape (n, m), in the dtype of the inputs (float32 kept).

    Raises
    ------
    ValueError
        Non-2-D input, mismatched dimensions, NaN/inf, ``p <= 0``.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> kf.ot.cost_matrix(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]))
    array([[25.]])
    >>> kf.ot.cost_matrix(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), p=1)
    array([[5.]])
    """
    dtype = result_dtype(x=x, y=y)
    x = as_array(x, "x", dtype=dtype, ndim=2)
    y = x if y is None else as_array(y, "y", dtype=dtype, ndim=2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same number of columns, got {x.shape[1]} and {y.shape[1]}")
    p = check_positive(p, "p")
    xx = np.einsum("ij,ij->i", x, x)
    yy = np.einsum("ij,ij->i", y, y)
    D = xx[:, None] + yy[None, :] - 2.0 * (x @ y.T)
    np.maximum(D, 0, out=D)
    if p == 2:
        return D
    return np.sqrt(D, out=D) ** p if p != 1 else np.sqrt(D, out=D)
