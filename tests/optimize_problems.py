"""Equality-constrained test problems for kernforge.optimize (tests and benchmarks/bench_optimize.py).

* Hock-Schittkowski problems with equality constraints only (Hock & Schittkowski 1981), written
  symbolically; gradients and Hessians come from SymPy, so they are exact and independent of the
  solver. Each carries its published starting point, solution and optimal value.
* Equality-constrained logistic regression on scikit-learn's breast_cancer data (the paper's
  scenario: mean logistic loss, 10 Gaussian linear equalities plus ||w||^2 = 1).
* Discretised Poisson control (the paper's): min 1/2 ||w - w_target||^2 + 0.05 ||z||^2 s.t. -Lap_h w = z on an
  N x N interior grid, zero Dirichlet boundary (sparse; 2 N^2 unknowns, N^2 constraints).
"""
import functools
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class Problem:
    name: str
    n: int
    m: int
    x0: np.ndarray
    fun: object
    jac: object
    hess: object
    cons: object
    cons_jac: object
    cons_hess: object  # None for linear constraints
    x_star: np.ndarray = None
    f_star: float = None
    notes: str = ""
    extra: dict = field(default_factory=dict)


# name: (objective, [constraints], x0, x*, f*) in variables x1..xn
_HS = {
    "HS6": ("(1 - x1)**2", ["10*(x2 - x1**2)"], [-1.2, 1], [1, 1], 0.0),
    "HS7": ("log(1 + x1**2) - x2", ["(1 + x1**2)**2 + x2**2 - 4"], [2, 2], [0, "sqrt(3)"], "-sqrt(3)"),
    "HS26": ("(x1 - x2)**2 + (x2 - x3)**4", ["(1 + x2**2)*x1 + x3**4 - 3"], [-2.6, 2, 2], [1, 1, 1], 0.0),
    "HS27": ("0.01*(x1 - 1)**2 + (x2 - x1**2)**2", ["x1 + x3**2 + 1"], [2, 2, 2], [-1, 1, 0], 0.04),
    "HS28": ("(x1 + x2)**2 + (x2 + x3)**2", ["x1 + 2*x2 + 3*x3 - 1"], [-4, 1, 1], [0.5, -0.5, 0.5], 0.0),
    "HS39": ("-x1", ["x2 - x1**3 - x3**2", "x1**2 - x2 - x4**2"], [2, 2, 2, 2], [1, 1, 0, 0], -1.0),
    "HS40": ("-x1*x2*x3*x4", ["x1**3 + x2**2 - 1", "x1**2*x4 - x3", "x4**2 - x2"], [0.8] * 4,
             ["2**(-1/3)", "2**(-1/2)", "2**(-11/12)", "2**(-1/4)"], -0.25),
    "HS42": ("(x1 - 1)**2 + (x2 - 2)**2 + (x3 - 3)**2 + (x4 - 4)**2", ["x1 - 2", "x3**2 + x4**2 - 2"], [1] * 4,
             [2, 2, "0.6*sqrt(2)", "0.8*sqrt(2)"], "28 - 10*sqrt(2)"),
    "HS46": ("(x1 - x2)**2 + (x3 - 1)**2 + (x4 - 1)**4 + (x5 - 1)**6",
             ["x1**2*x4 + sin(x4 - x5) - 1", "x2 + x3**4*x4**2 - 2"], ["sqrt(2)/2", 1.75, 0.5, 2, 2], [1] * 5, 0.0),
    "HS47": ("(x1 - x2)**2 + (x2 - x3)**3 + (x3 - x4)**4 + (x4 - x5)**4",
             ["x1 + x2**2 + x3**3 - 3", "x2 - x3**2 + x4 - 1", "x1*x5 - 1"], [2, "sqrt(2)", -1, "2 - sqrt(2)", 0.5],
             [1] * 5, 0.0),
    "HS48": ("(x1 - 1)**2 + (x2 - x3)**2 + (x4 - x5)**2", ["x1 + x2 + x3 + x4 + x5 - 5", "x3 - 2*(x4 + x5) + 3"],
             [3, 5, -3, 2, -2], [1] * 5, 0.0),
    "HS49": ("(x1 - x2)**2 + (x3 - 1)**2 + (x4 - 1)**4 + (x5 - 1)**6", ["x1 + x2 + x3 + 4*x4 - 7", "x3 + 5*x5 - 6"],
             [10, 7, 2, -3, 0.8], [1] * 5, 0.0),
    "HS50": ("(x1 - x2)**2 + (x2 - x3)**2 + (x3 - x4)**4 + (x4 - x5)**2",
             ["x1 + 2*x2 + 3*x3 - 6", "x2 + 2*x3 + 3*x4 - 6", "x3 + 2*x4 + 3*x5 - 6"], [35, -31, 11, 5, -5],
             [1] * 5, 0.0),
    "HS51": ("(x1 - x2)**2 + (x2 + x3 - 2)**2 + (x4 - 1)**2 + (x5 - 1)**2",
             ["x1 + 3*x2 - 4", "x3 + x4 - 2*x5", "x2 - x5"], [2.5, 0.5, 2, -1, 0.5], [1] * 5, 0.0),
    "HS52": ("(4*x1 - x2)**2 + (x2 + x3 - 2)**2 + (x4 - 1)**2 + (x5 - 1)**2",
             ["x1 + 3*x2", "x3 + x4 - 2*x5", "x2 - x5"], [2] * 5,
             ["-33/349", "11/349", "180/349", "-158/349", "11/349"], "1859/349"),
    "HS61": ("4*x1**2 + 2*x2**2 + 2*x3**2 - 33*x1 + 16*x2 - 24*x3", ["3*x1 - 2*x2**2 - 7", "4*x1 - x3**2 - 11"],
             [0, 0, 0], [5.326770157, -2.118998639, 3.210464239], -143.6461422),
    "HS77": ("(x1 - 1)**2 + (x1 - x2)**2 + (x3 - 1)**2 + (x4 - 1)**4 + (x5 - 1)**6",
             ["x1**2*x4 + sin(x4 - x5) - 2*sqrt(2)", "x2 + x3**4*x4**2 - 8 - sqrt(2)"], [2] * 5,
             [1.166172, 1.182111, 1.380257, 1.506036, 0.6109203], 0.24150513),
    "HS78": ("x1*x2*x3*x4*x5", ["x1**2 + x2**2 + x3**2 + x4**2 + x5**2 - 10", "x2*x3 - 5*x4*x5", "x1**3 + x2**3 + 1"],
             [-2, 1.5, 2, -1, -1], [-1.717143, 1.595709, 1.827247, -0.7636413, -0.7636450], -2.91970041),
    "HS79": ("(x1 - 1)**2 + (x1 - x2)**2 + (x2 - x3)**2 + (x3 - x4)**4 + (x4 - x5)**4",
             ["x1 + x2**2 + x3**3 - 2 - 3*sqrt(2)", "x2 - x3**2 + x4 + 2 - 2*sqrt(2)", "x1*x5 - 2"], [2] * 5,
             [1.191127, 1.362603, 1.472818, 1.635017, 1.679081], 0.0787768209),
}

HS_NAMES = list(_HS)


def _num(v):
    import sympy

    return float(sympy.sympify(v)) if isinstance(v, str) else float(v)


@functools.lru_cache(maxsize=None)
def hs(name):
    """The Hock-Schittkowski problem ``name`` with SymPy-exact derivatives."""
    import sympy

    fexpr, cexprs, x0, xs, fs = _HS[name]
    n = len(x0)
    X = sympy.symbols(" ".join(f"x{i + 1}" for i in range(n)))
    F = sympy.sympify(fexpr, locals={f"x{i + 1}": X[i] for i in range(n)})
    C = [sympy.sympify(e, locals={f"x{i + 1}": X[i] for i in range(n)}) for e in cexprs]
    m = len(C)
    V = sympy.symbols(" ".join(f"v{i}" for i in range(m))) if m > 1 else (sympy.Symbol("v0"),)
    grad = [sympy.diff(F, xi) for xi in X]
    hessF = sympy.hessian(F, X)
    jacC = sympy.Matrix([[sympy.diff(ci, xj) for xj in X] for ci in C])
    linear = all(sympy.diff(ci, xa, xb) == 0 for ci in C for xa in X for xb in X)
    hessC = sum((V[i] * sympy.hessian(C[i], X) for i in range(m)), sympy.zeros(n, n))
    lf = sympy.lambdify([X], F, "numpy")
    lg = sympy.lambdify([X], grad, "numpy")
    lh = sympy.lambdify([X], hessF, "numpy")
    lc = sympy.lambdify([X], C, "numpy")
    lj = sympy.lambdify([X], jacC, "numpy")
    lch = sympy.lambdify([X, V], hessC, "numpy")
    return Problem(
        name=name, n=n, m=m, x0=np.array([_num(v) for v in x0]),
        fun=lambda x: float(lf(x)),
        jac=lambda x: np.array(lg(x), dtype=float).reshape(n),
        hess=lambda x: np.array(lh(x), dtype=float).reshape(n, n),
        cons=lambda x: np.array(lc(x), dtype=float).reshape(m),
        cons_jac=lambda x: np.array(lj(x), dtype=float).reshape(m, n),
        cons_hess=None if linear else (lambda x, v: np.array(lch(x, v), dtype=float).reshape(n, n)),
        x_star=np.array([_num(v) for v in xs]), f_star=_num(fs),
        notes="linear constraints" if linear else "")


def logistic(n_linear=10, seed=0):
    """Constrained logistic regression on breast_cancer (standardised, 569 x 30): mean
    log(1 + exp(-y X w)) s.t. A w = b (n_linear Gaussian rows) and ||w||^2 = 1."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = data.data
    X = (X - X.mean(0)) / X.std(0)
    y = np.where(data.target == 1, 1.0, -1.0)
    N, d = X.shape
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n_linear, d))
    w_feas = rng.standard_normal(d)
    w_feas /= np.linalg.norm(w_feas)
    bvec = A @ w_feas  # consistent with the sphere: w_feas is feasible
    Z = y[:, None] * X

    def fun(w):
        return float(np.mean(np.logaddexp(0.0, -Z @ w)))

    def jac(w):
        s = -_sigmoid(-Z @ w)
        return Z.T @ s / N

    def hess(w):
        p = _sigmoid(Z @ w)
        wts = p * (1 - p)
        return (Z * wts[:, None]).T @ Z / N

    def cons(w):
        return np.concatenate([A @ w - bvec, [w @ w - 1.0]])

    def cons_jac(w):
        return np.vstack([A, 2 * w[None, :]])

    def cons_hess(w, v):
        return 2.0 * v[-1] * np.eye(d)

    return Problem(name="logistic-breast_cancer", n=d, m=n_linear + 1, x0=np.full(d, 1.0 / np.sqrt(d)), fun=fun,
                   jac=jac, hess=hess, cons=cons, cons_jac=cons_jac, cons_hess=cons_hess,
                   extra={"A": A, "b": bvec, "Z": Z})


def _sigmoid(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def poisson_control(N=16, alpha=0.05):
    """min 1/2 ||w - w_t||^2 + alpha ||z||^2 s.t. -Lap_h w - z = 0 (5-point stencil, zero Dirichlet,
    N x N interior points, h = 1/(N+1)); x = (w, z), 2 N^2 unknowns, N^2 linear constraints."""
    h = 1.0 / (N + 1)
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(N, N))
    I = sp.identity(N)
    L = ((sp.kron(T, I) + sp.kron(I, T)) / h ** 2).tocsr()  # -Lap_h
    t = np.arange(1, N + 1) * h
    XX, YY = np.meshgrid(t, t, indexing="ij")
    w_t = (np.sin(np.pi * XX) * np.sin(2 * np.pi * YY)).ravel()
    nn = N * N
    G = sp.hstack([L, -sp.identity(nn)]).tocsr()
    Hd = np.concatenate([np.ones(nn), np.full(nn, 2 * alpha)])
    H = sp.diags(Hd).tocsr()

    def fun(x):
        w, z = x[:nn], x[nn:]
        return float(0.5 * np.sum((w - w_t) ** 2) + alpha * np.sum(z ** 2))

    def jac(x):
        gx = Hd * x
        gx[:nn] -= w_t
        return gx

    return Problem(name=f"poisson-control-{N}x{N}", n=2 * nn, m=nn, x0=np.zeros(2 * nn), fun=fun, jac=jac,
                   hess=lambda x: H, cons=lambda x: G @ x, cons_jac=lambda x: G, cons_hess=None,
                   extra={"G": G, "H": H, "w_t": w_t, "L": L, "h": h})


def dense_wellcond(n=2400, m=600, seed=0):
    """A large dense, well-conditioned problem (where sketching can beat a factorization):
    min 1/2 ||x - a||^2 + 0.1 sum log cosh(x) s.t. A x = b, A (m x n) Gaussian / sqrt(n), so that
    hess f lies in [1, 1.1] I and kappa(K) is small. Dense Hessian and Jacobian, as a user with
    dense data would pass them."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    A = rng.standard_normal((m, n)) / np.sqrt(n)
    bvec = A @ rng.standard_normal(n)

    def fun(x):
        return float(0.5 * np.sum((x - a) ** 2) + 0.1 * np.sum(np.logaddexp(x, -x) - np.log(2.0)))

    def jac(x):
        return x - a + 0.1 * np.tanh(x)

    def hess(x):
        return np.diag(1.0 + 0.1 / np.cosh(x) ** 2)

    return Problem(name=f"dense-wellcond-{n}x{m}", n=n, m=m, x0=np.zeros(n), fun=fun, jac=jac, hess=hess,
                   cons=lambda x: A @ x - bvec, cons_jac=lambda x: A, cons_hess=None, extra={"A": A, "b": bvec})
