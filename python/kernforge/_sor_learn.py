"""Learning omega across a sequence of linear systems (Khodak, Chow, Balcan, Talwalkar, ICLR 2024).

``OmegaBandit`` (Tsallis-INF) and ``ContextualOmega`` (ChebCB) choose a relaxation parameter for
each system from the iteration counts of the previous ones; ``solve_sequence`` drives them with
kernforge's SOR or SSOR-CG. Public names are re-exported by :mod:`kernforge.sor`.
"""
import dataclasses
import math
import numbers
import time
import warnings

import numpy as np

from ._errors import ConvergenceWarning
from ._result import Result
from ._validation import check_choice, check_int, check_real, check_seed

DEFAULT_OMEGAS = np.linspace(1.0, 1.95, 20)


def _check_omegas(omegas):
    arr = np.asarray(omegas, dtype=np.float64) if not isinstance(omegas, np.ndarray) else omegas
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"omegas must be a 1-D array of real numbers, got dtype {arr.dtype}")
    arr = np.array(arr, dtype=np.float64).reshape(-1) if arr.ndim <= 1 else None
    if arr is None:
        raise ValueError("omegas must be 1-D")
    if arr.size == 0:
        raise ValueError("omegas must not be empty")
    if not np.isfinite(arr).all() or (arr <= 0).any() or (arr >= 2).any():
        raise ValueError(f"omegas must lie in (0, 2), got values from {arr.min():g} to {arr.max():g}")
    if np.unique(arr).size != arr.size:
        raise ValueError("omegas must not contain duplicates")
    return arr


def _check_cost(cost):
    if isinstance(cost, bool) or not isinstance(cost, numbers.Real):
        raise TypeError(f"cost must be a real number, got {type(cost).__name__}")
    cost = float(cost)
    if math.isnan(cost):
        raise ValueError("cost must not be NaN (pass the capped iteration count of a failed solve)")
    if cost < 0:
        raise ValueError(f"cost must be non-negative, got {cost:g}")
    return cost


class _Learner:
    """Shared plumbing: the arm grid, the seed, the pending choice, cost capping."""

    def __init__(self, omegas, max_iter, seed):
        self.omegas = _check_omegas(omegas)
        self.max_iter = check_int(max_iter, "max_iter", minimum=1)
        self.seed = check_seed(seed)
        self._rng = np.random.default_rng(self.seed)
        self._pending = None
        self.t = 0  # rounds completed

    @property
    def n_arms(self):
        return self.omegas.size

    def _arm(self, omega):
        omega = check_real(omega, "omega")
        i = int(np.argmin(np.abs(self.omegas - omega)))
        if not math.isclose(self.omegas[i], omega, rel_tol=1e-12, abs_tol=1e-12):
            raise ValueError(f"omega must be one of the learner's omegas, got {omega:g}")
        return i

    def _capped(self, cost):
        # A solve that hits max_iter reports the cap (papers.md 1.2): the learner never sees inf.
        return min(_check_cost(cost), float(self.max_iter))


class OmegaBandit(_Learner):
    """Learn a fixed omega online from iteration counts: Tsallis-INF over a grid of omegas.

    Parameters
    ----------
    omegas : array_like, default ``np.linspace(1, 1.95, 20)``
        The arms, each in (0, 2) (the paper's grid; ends at 1.95 because every instance needs many
        iterations as omega approaches 2).
    max_iter : int, default 10000
        Cap on the cost of one round (the solver's iteration cap).
    seed : int, optional
        Seed of the arm sampling (default 0: reproducible).

    Attributes
    ----------
    t : int
        Rounds completed.
    cumulative_loss : ndarray
        Importance-weighted cumulative loss estimate per arm (before normalisation).

    Raises
    ------
    ValueError
        omegas empty, duplicated or outside (0, 2); max_iter < 1; in ``update``, a NaN or negative
        cost or an omega that is not an arm.

    Notes
    -----
    Round t (1-based): with step size eta_t = 2 / sqrt(t) and normalised losses
    L_i = Khat_i / s, where s is the running mean of (cost - 1), play arm i with probability
    ``p_i = 4 / (eta_t (L_i - x))^2``, where the normaliser x < min L solves sum p_i = 1
    (1/2-Tsallis-INF, Zimmert and Seldin 2021). After cost c, ``Khat_I += (c - 1) / p_I``.
    The normaliser is found by bisection on the bracket
    ``[min L - 2 sqrt(d) / eta, min L - 2 / eta]``, on which the sum of p decreases from >= 1 to
    <= 1; the authors' unguarded Newton iteration can overshoot the pole at min L and make the
    weights diverge (papers.md 1.2).

    References
    ----------
    .. [1] M. Khodak, E. Chow, M.-F. Balcan, A. Talwalkar, "Learning to Relax: Setting Solver
       Parameters Across a Sequence of Linear System Instances", ICLR 2024.
    .. [2] J. Zimmert, Y. Seldin, "Tsallis-INF: An Optimal Algorithm for Stochastic and Adversarial
       Bandits", JMLR 22, 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import kernforge as kf
    >>> bandit = kf.sor.OmegaBandit(omegas=[1.0, 1.5, 1.9], seed=0)
    >>> for _ in range(300):           # a synthetic cost: omega = 1.5 is best
    ...     w = bandit.choose()
    ...     bandit.update(w, {1.0: 90, 1.5: 30, 1.9: 60}[w])
    >>> int(np.argmax(bandit.probabilities()))
    1
    """

    def __init__(self, omegas=DEFAULT_OMEGAS, max_iter=10_000, seed=None):
        super().__init__(omegas, max_iter, seed)
        self.cumulative_loss = np.zeros(self.n_arms)
        self._cost_sum = 0.0

    def __repr__(self):
        return f"OmegaBandit(n_arms={self.n_arms}, t={self.t}, seed={self.seed})"

    def _scale(self):
        if self.t == 0:
            return 1.0
        s = self._cost_sum / self.t - 1.0
        return s if s > 0 else 1.0

    def probabilities(self, context=None):
        """The sampling distribution of the next round (a 1-D array summing to 1)."""
        eta = 2.0 / math.sqrt(self.t + 1)
        L = self.cumulative_loss / self._scale()
        d = self.n_arms
        m = L.min()
        lo, hi = m - 2.0 * math.sqrt(d) / eta, m - 2.0 / eta
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            total = np.sum((2.0 / (eta * (L - mid))) ** 2)  # no overflow: L - mid >= 2 / eta
            if total > 1.0:
                hi = mid
            else:
                lo = mid
        # Arms with astronomically large estimates may underflow to p = 0 (never sampled).
        p = (2.0 / (eta * (L - 0.5 * (lo + hi)))) ** 2
        return p / p.sum()

    def choose(self, context=None):
        """Sample the omega for the next system (``context`` is ignored)."""
        p = self.probabilities()
        i = int(self._rng.choice(self.n_arms, p=p))
        self._pending = (i, p[i])
        return float(self.omegas[i])

    def update(self, omega, cost, context=None):
        """Feed back the cost (iterations) of the system solved with ``omega``."""
        i = self._arm(omega)
        c = self._capped(cost)
        p = self._pending[1] if self._pending and self._pending[0] == i else self.probabilities()[i]
        p = max(p, np.finfo(float).tiny)  # an arm played off-policy with p underflowed to 0
        self._pending = None
        self.cumulative_loss[i] += (c - 1.0) / p
        self._cost_sum += c
        self.t += 1


def chebyshev_features(z, m):
    """T_0(z), ..., T_{m-1}(z) by the three-term recurrence."""
    out = np.empty(m)
    out[0] = 1.0
    if m > 1:
        out[1] = z
    for j in range(2, m):
        out[j] = 2.0 * z * out[j - 1] - out[j - 2]
    return out


class ContextualOmega(_Learner):
    """Learn omega as a function of a scalar context (e.g. a diagonal shift): the ChebCB bandit.

    Parameters
    ----------
    omegas : array_like, default ``np.linspace(1, 1.95, 20)``
        The arms, each in (0, 2).
    context_range : (float, float)
        Interval [a, b] containing every context (contexts outside are clipped to it).
    degree : int, default 5
        Degree of the Chebyshev model of each arm's cost (the paper's m = 6 features).
    max_iter : int, default 10000
        Cap on the cost of one round.
    seed : int, optional
        Seed of the arm sampling (default 0).

    Raises
    ------
    ValueError
        As for :class:`OmegaBandit`; ``context_range`` not a finite interval with a < b; a
        missing or non-finite context.

    Notes
    -----
    Each arm i models (cost - 1) / S as theta_i . phi(c), phi = Chebyshev features of
    z = 2 (c - a) / (b - a) - 1. Choice: yhat = Theta phi, i* = argmin yhat, ``p_i = 1 / (d +
    eta (yhat_i - yhat_i*))`` for i != i*, the rest to i* (inverse-gap weighting, Foster and Rakhlin
    2020). After each cost: K = max cost, Lip = (max - min cost) / (b - a),
    N = 2 + 4 (b - a) Lip / K (1 + ln m), S = K N; the played arm is refit by minimum-norm least
    squares, with the box |theta_0| <= 1/N, |theta_j| <= 2 (b - a) Lip / (S j) enforced by
    bounded least squares when violated. eta = 2 t sqrt(d t / (R - E + 2 alpha^2 t)) with R the
    online prediction error, E the in-sample error of the current fits and
    alpha = (pi + (2/pi) ln(2m + 1)) (b - a) Lip / (2 S (m + 1)) (the authors' ChebCB).

    Incremental: each arm keeps its normal equations (Phi^T Phi, Phi^T y), so a round costs
    O(m^3) for the played arm, independent of t; a change of S only rescales the fits.
    The in-sample error E sums every arm's fit (the authors use that of the last bounded fit).

    References
    ----------
    .. [1] M. Khodak, E. Chow, M.-F. Balcan, A. Talwalkar, "Learning to Relax", ICLR 2024.
    .. [2] D. Foster, A. Rakhlin, "Beyond UCB: Optimal and Efficient Contextual Bandits with
       Regression Oracles", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> import kernforge as kf
    >>> learner = kf.sor.ContextualOmega(omegas=[1.0, 1.5], context_range=(0.0, 1.0), seed=0)
    >>> rng = np.random.default_rng(42)
    >>> for _ in range(400):          # omega = 1.0 is best for c < 0.5, omega = 1.5 above
    ...     c = rng.random()
    ...     w = learner.choose(c)
    ...     learner.update(w, 20 + 40 * int((w == 1.5) != (c > 0.5)))
    >>> learner.predict(0.1), learner.predict(0.9)
    (1.0, 1.5)
    """

    def __init__(self, omegas=DEFAULT_OMEGAS, context_range=(-0.15, 0.65), degree=5, max_iter=10_000, seed=None):
        super().__init__(omegas, max_iter, seed)
        try:
            a, b = context_range
        except (TypeError, ValueError):
            raise ValueError(f"context_range must be a pair (a, b), got {context_range!r}") from None
        a, b = check_real(a, "context_range[0]"), check_real(b, "context_range[1]")
        if not a < b:
            raise ValueError(f"context_range must satisfy a < b, got ({a:g}, {b:g})")
        self.context_range = (a, b)
        self.degree = check_int(degree, "degree", minimum=0, maximum=30)
        m = self.m = self.degree + 1
        d = self.n_arms
        self._G = np.zeros((d, m, m))     # per-arm Phi^T Phi
        self._h = np.zeros((d, m))        # per-arm Phi^T (c - 1)
        self._yy = np.zeros(d)            # per-arm sum (c - 1)^2
        self._count = np.zeros(d, dtype=np.int64)
        self._theta_u = np.zeros((d, m))  # per-arm fit of (c - 1), i.e. S * theta
        self._unconstrained = np.zeros((d, m))
        self._bounds = None
        self._kmax = -np.inf
        self._kmin = np.inf
        self._scale = 0.0
        self.eta = 0.0
        # Online prediction error R = sum (pred_t - (c_t - 1)/S)^2, kept as three sums so a change
        # of S needs no pass over the history (pred_t is stored as S_t * pred, i.e. in cost units).
        self._r_pp = self._r_pc = self._r_cc = 0.0

    def __repr__(self):
        return (f"ContextualOmega(n_arms={self.n_arms}, context_range={self.context_range}, "
                f"degree={self.degree}, t={self.t}, seed={self.seed})")

    def features(self, context):
        """Chebyshev features of a context (clipped to ``context_range``)."""
        if context is None:
            raise ValueError("context is required for ContextualOmega")
        c = check_real(context, "context")
        a, b = self.context_range
        z = min(1.0, max(-1.0, 2.0 * (c - a) / (b - a) - 1.0))
        return chebyshev_features(z, self.m)

    def _predictions(self, phi):
        return self._theta_u @ phi / self._scale if self._scale > 0 else np.zeros(self.n_arms)

    def probabilities(self, context):
        """The sampling distribution for ``context``."""
        yhat = self._predictions(self.features(context))
        return self._probs(yhat)

    def _probs(self, yhat):
        d = self.n_arms
        istar = int(np.argmin(yhat))
        p = 1.0 / (d + self.eta * (yhat - yhat[istar]))
        p[istar] = 0.0
        p[istar] = max(0.0, 1.0 - p.sum())
        return p / p.sum()

    def predict(self, context):
        """The omega with the lowest modelled cost at ``context`` (no exploration)."""
        return float(self.omegas[int(np.argmin(self._predictions(self.features(context))))])

    def choose(self, context=None):
        """Sample the omega for a system with this context."""
        phi = self.features(context)
        yhat = self._predictions(phi)
        p = self._probs(yhat)
        i = int(self._rng.choice(self.n_arms, p=p))
        self._pending = (i, float(context), yhat[i] * self._scale)
        return float(self.omegas[i])

    def _fit(self, i):
        """Minimum-norm least squares for arm i, then the box if violated (in cost units)."""
        G, h = self._G[i], self._h[i]
        theta = np.linalg.lstsq(G, h, rcond=None)[0]  # min-norm solution of the normal equations
        self._unconstrained[i] = theta
        self._theta_u[i] = self._boxed(i, theta)

    def _boxed(self, i, theta):
        ub = self._bounds
        if ub is None or np.all(np.abs(theta) <= ub * (1 + 1e-12)):
            return theta
        from scipy.optimize import lsq_linear

        # ||Phi t - y||^2 = t^T G t - 2 h^T t + const = ||R t - y'||^2 + const, G = R^T R.
        lam, V = np.linalg.eigh(self._G[i])
        keep = lam > lam.max() * 1e-12
        R = np.sqrt(lam[keep])[:, None] * V[:, keep].T
        y = (V[:, keep].T @ self._h[i]) / np.sqrt(lam[keep])
        free = ub > 0  # a zero bound (all costs equal so far) pins its coefficient at 0
        out = np.zeros_like(theta)
        if free.any():
            out[free] = lsq_linear(R[:, free], y, bounds=(-ub[free], ub[free]), method="bvls").x
        return out

    def _in_sample_error(self):
        th = self._theta_u
        quad = np.einsum("im,imn,in->i", th, self._G, th)
        e = quad - 2.0 * np.einsum("im,im->i", th, self._h) + self._yy
        return float(np.maximum(e, 0.0).sum())

    def update(self, omega, cost, context=None):
        """Feed back the cost of the system solved with ``omega`` (context: that of ``choose``)."""
        i = self._arm(omega)
        c = self._capped(cost)
        if context is None:
            if self._pending is None:
                raise ValueError("context is required when update() does not follow choose()")
            context = self._pending[1]
        phi = self.features(context)
        if self._pending is not None and self._pending[0] == i and self._pending[1] == float(context):
            pred_u = self._pending[2]
        else:
            pred_u = float(self._theta_u[i] @ phi)
        self._pending = None
        self.t += 1
        y = c - 1.0
        self._G[i] += np.outer(phi, phi)
        self._h[i] += y * phi
        self._yy[i] += y * y
        self._count[i] += 1
        self._kmax = max(self._kmax, c)
        self._kmin = min(self._kmin, c)
        a, b = self.context_range
        K = max(self._kmax, 1.0)
        lip = (self._kmax - self._kmin) / (b - a)
        N = 2.0 + 4.0 * (b - a) * lip / K * (1.0 + math.log(self.m))
        S = K * N
        # Bounds in cost units (S * the authors' box): |S theta_0| <= K, |S theta_j| <= 2 (b-a) Lip / j.
        bounds = np.concatenate([[K], 2.0 * (b - a) * lip / np.arange(1, self.m)])
        changed = self._bounds is None or not np.array_equal(bounds, self._bounds)
        self._bounds = bounds
        self._scale = S
        self._fit(i)
        if changed:  # re-impose the new box on the other arms' stored unconstrained fits
            for j in np.flatnonzero(self._count):
                if j != i:
                    self._theta_u[j] = self._boxed(j, self._unconstrained[j])
        # Prediction error of this round, in cost units; R = sum (pred - y)^2 / S^2.
        self._r_pp += pred_u * pred_u
        self._r_pc += pred_u * y
        self._r_cc += y * y
        R = (self._r_pp - 2.0 * self._r_pc + self._r_cc) / S**2
        E = self._in_sample_error() / S**2
        alpha = (math.pi + 2.0 / math.pi * math.log(2 * self.m + 1)) / (2.0 * S * (self.m + 1)) * (b - a) * lip
        denom = max(R - E, 0.0) + 2.0 * alpha**2 * self.t
        t = self.t
        self.eta = 2.0 * t * math.sqrt(self.n_arms * t / denom) if denom > 0 else 2.0 * t * math.sqrt(self.n_arms * t) * 1e6


@dataclasses.dataclass(frozen=True, repr=False)
class SequenceResult(Result):
    """Result of :func:`solve_sequence`.

    Attributes
    ----------
    omegas, iterations, times, converged : ndarray, one entry per system
        The omega used, the solver's iterations (the learner's cost), the wall time of the solve
        (seconds) and whether it met the tolerance.
    contexts : ndarray or None
        The contexts given, if any.
    total_iterations : int
    total_time : float
        Seconds spent in the solves (learner time excluded).
    n_systems : int
    x : ndarray
        The solution of the last system.
    """

    omegas: np.ndarray
    iterations: np.ndarray
    times: np.ndarray
    converged: np.ndarray
    contexts: object
    total_iterations: int
    total_time: float
    n_systems: int
    x: np.ndarray


def solve_sequence(systems, learner, solver="sor", rtol=1e-8, max_iter=None, contexts=None,
                   warm_start=None, ordering=None, callback=None):
    """Solve a sequence of systems A_t x = b_t, choosing omega for each with a learner.

    Parameters
    ----------
    systems : iterable of (A, b)
        A list or a generator; each A is anything :class:`kernforge.sor.SOR` accepts (or a
        prepared ``SOR``). Sizes may change along the sequence.
    learner : OmegaBandit, ContextualOmega, float, or object with ``choose``/``update``
        A float is a fixed omega (a baseline).
    solver : {"sor", "ssor_cg"}, default "sor"
        SOR iteration (:func:`kernforge.sor.solve`) or SSOR-preconditioned CG
        (:func:`kernforge.sor.ssor_cg`, A must be SPD).
    rtol : float, default 1e-8
    max_iter : int, optional
        Iteration cap per system; default: the learner's ``max_iter``, else 10000. A capped solve
        costs ``max_iter``, is marked not converged, and one ConvergenceWarning sums them up.
    contexts : iterable of float, optional
        One context per system (required by ContextualOmega), e.g. a diagonal shift or diffusivity.
    warm_start : bool, optional
        Start each solve from the previous solution when the size matches. Default: True for
        "ssor_cg" (as in the paper's heat experiment), False for "sor" (the paper starts SOR from 0).
    ordering : {None, "lexicographic", "multicolor"}
        SOR ordering (solver="sor" only).
    callback : callable, optional
        ``callback(t, result)`` after each solve, with the :class:`SolveResult`. A generator of
        systems that depends on earlier solutions (a time-stepping simulation) reads them here:
        generators are lazy, so system t + 1 is built after the callback of system t.

    Returns
    -------
    SequenceResult

    Raises
    ------
    ValueError
        An empty sequence, a contextual learner without contexts, fewer contexts than systems, a
        malformed (A, b) pair, or any error of the solver.

    Notes
    -----
    The cost fed back is the iteration count, at least 1 (Khodak et al. 2024 use the count of the
    solver; a zero count, e.g. b = 0, would make the normalised loss negative).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> import kernforge as kf
    >>> T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(10, 10))
    >>> L = (sp.kron(T, sp.eye(10)) + sp.kron(sp.eye(10), T)).tocsr()
    >>> rng = np.random.default_rng(0)
    >>> shifts = rng.uniform(0.0, 0.3, 50)
    >>> systems = ((L + c * sp.eye(100), rng.standard_normal(100)) for c in shifts)
    >>> res = kf.sor.solve_sequence(systems, kf.sor.OmegaBandit(seed=0))
    >>> res.n_systems, bool(res.converged.all())
    (50, True)
    """
    from . import sor as _sor

    check_choice(solver, "solver", ("sor", "ssor_cg"))
    fixed = None
    if isinstance(learner, numbers.Real) and not isinstance(learner, bool):
        fixed = check_real(learner, "learner")
        if not 0 < fixed < 2:
            raise ValueError(f"a fixed omega (learner) must lie in (0, 2), got {fixed:g}")
    elif not (hasattr(learner, "choose") and hasattr(learner, "update")):
        raise TypeError("learner must be an OmegaBandit, a ContextualOmega, a float, or have choose/update")
    if max_iter is None:
        max_iter = getattr(learner, "max_iter", 10_000)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    if warm_start is None:
        warm_start = solver == "ssor_cg"
    if isinstance(learner, ContextualOmega) and contexts is None:
        raise ValueError("contexts are required with a ContextualOmega learner")
    ctx_iter = iter(contexts) if contexts is not None else None

    omegas, iters, times, conv, ctxs = [], [], [], [], []
    x = None
    for t, item in enumerate(systems):
        try:
            A, b = item
        except (TypeError, ValueError):
            raise ValueError(f"systems[{t}] must be an (A, b) pair") from None
        ctx = None
        if ctx_iter is not None:
            try:
                ctx = check_real(next(ctx_iter), f"contexts[{t}]")
            except StopIteration:
                raise ValueError(f"contexts has fewer entries than systems (ran out at {t})") from None
        S = A if isinstance(A, _sor.SOR) else _sor.SOR(A)
        omega = fixed if fixed is not None else learner.choose(ctx)
        x0 = x if (warm_start and x is not None and x.shape == (S.n,)) else None
        t0 = time.perf_counter()
        if solver == "sor":
            res = S.solve(b, omega=omega, x0=x0, rtol=rtol, max_iter=max_iter, ordering=ordering, warn=False)
        else:
            res = S.ssor_cg(b, omega=omega, x0=x0, rtol=rtol, max_iter=max_iter, warn=False)
        times.append(time.perf_counter() - t0)
        cost = max(res.n_iter, 1) if res.converged else max_iter
        if fixed is None:
            if isinstance(learner, ContextualOmega):
                learner.update(omega, cost, context=ctx)
            else:
                learner.update(omega, cost)
        x = res.x
        if callback is not None:
            callback(t, res)
        omegas.append(omega)
        iters.append(res.n_iter)
        conv.append(res.converged)
        ctxs.append(ctx)
    if not omegas:
        raise ValueError("systems must contain at least one (A, b) pair")
    conv = np.array(conv, dtype=bool)
    if not conv.all():
        warnings.warn(f"{int((~conv).sum())} of {conv.size} solves hit max_iter={max_iter} before rtol={rtol:g}",
                      ConvergenceWarning, stacklevel=2)
    iters = np.array(iters, dtype=np.int64)
    times = np.array(times)
    return SequenceResult(omegas=np.array(omegas), iterations=iters, times=times, converged=conv,
                          contexts=np.array(ctxs, dtype=np.float64) if contexts is not None else None,
                          total_iterations=int(iters.sum()), total_time=float(times.sum()),
                          n_systems=int(iters.size), x=x)
