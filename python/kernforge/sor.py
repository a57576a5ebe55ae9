"""Successive over-relaxation (SOR) on sparse matrices.

``sweep`` applies SOR sweeps in place with exact lexicographic semantics; ``solve`` iterates them
to a residual tolerance. ``SOR(A)`` prepares a matrix once (canonical CSR, diagonal positions,
inverse diagonal) for repeated use.

Notes
-----
One forward sweep with relaxation omega computes, for i = 0, ..., n-1,
``x_i += omega * (b_i - sum_j a_ij x_j) / a_ii`` using the values already updated in this sweep for
j < i; this equals ``x <- (D/omega + L)^{-1} (b - (U - (1/omega - 1) D) x)`` with A = D + L + U
[1]_. omega = 1 is Gauss-Seidel. A backward sweep visits rows in reverse order; a symmetric sweep
(SSOR) is a forward sweep followed by a backward one.

PyAMG's ``sor(..., sweep="symmetric")`` ignores omega (it equals symmetric Gauss-Seidel, checked
on PyAMG 5.4.1); kernforge's symmetric sweep honours it.

References
----------
.. [1] Y. Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., SIAM, 2003, section 4.1.
.. [2] M. Khodak, E. Chow, M.-F. Balcan, A. Talwalkar, "Learning to Relax: Setting Solver
   Parameters Across a Sequence of Linear System Instances", ICLR 2024.
"""
import dataclasses
import warnings

import numpy as np
import scipy.sparse as sp

from . import _core
from ._errors import ConvergenceWarning
from ._result import Result
from ._validation import as_array, as_csr, check_choice, check_int, check_open_interval, check_positive

__all__ = ["SOR", "SolveResult", "sweep", "solve"]

_DIRECTIONS = ("forward", "backward", "symmetric")


@dataclasses.dataclass(frozen=True, repr=False)
class SolveResult(Result):
    """Result of an iterative solve.

    Attributes
    ----------
    x : ndarray
        The approximate solution.
    n_iter : int
        Iterations (sweeps; a symmetric sweep counts once) until the tolerance was met, or
        ``max_iter``.
    converged : bool
        Whether ``||b - A x|| <= rtol * ||b||``.
    residuals : ndarray
        Relative residual ``||b - A x_k|| / ||b||`` for k = 0, ..., n_iter (so ``residuals[-1]`` is
        that of the returned ``x``).
    omega : float
        The relaxation parameter used.
    """

    x: np.ndarray
    n_iter: int
    converged: bool
    residuals: np.ndarray
    omega: float

    @property
    def residual(self):
        """Final relative residual."""
        return float(self.residuals[-1])

    # The scipy-style alias users reach for.
    @property
    def history(self):
        return self.residuals


class SOR:
    """A sparse matrix prepared for SOR sweeps and solves.

    Preparation converts ``A`` once to canonical CSR (sorted indices, duplicates summed, int32
    indices where they fit), locates every diagonal entry and stores the inverse diagonal, so
    repeated sweeps or solves on the same matrix pay it only once.

    Parameters
    ----------
    A : sparse matrix, dense 2-D array or (data, indices, indptr) triple
        Square with a positive diagonal. Integer data is cast to float64; float32 stays float32.
    dtype : {None, float32, float64}, optional
        Compute dtype; default: that of ``A``.

    Raises
    ------
    ValueError
        If ``A`` is empty, not square, has a missing, zero or negative diagonal entry, or contains
        NaN or inf.
    TypeError
        If ``A`` has a complex or non-numeric dtype.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> import kernforge as kf
    >>> A = sp.diags([-1.0, 4.0, -1.0], [-1, 0, 1], shape=(50, 50), format="csr")
    >>> b = np.ones(50)
    >>> S = kf.sor.SOR(A)
    >>> res = S.solve(b, omega=1.2, rtol=1e-10)
    >>> bool(res.converged), bool(np.linalg.norm(A @ res.x - b) <= 1e-10 * np.linalg.norm(b))
    (True, True)
    """

    def __init__(self, A, dtype=None):
        C = as_csr(A, "A", dtype=dtype, square=True)
        self.A = C
        self.shape = C.shape
        self.dtype = C.data.dtype
        cls = getattr(_core.sor, f"SorMatrix_{'f32' if self.dtype == np.float32 else 'f64'}_"
                                 f"{'i32' if C.indices.dtype == np.int32 else 'i64'}")
        try:
            self._m = cls(C.indptr, C.indices, C.data, C.shape[0], C.shape[1])
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    def __repr__(self):
        return f"SOR(shape={self.shape}, nnz={self.A.nnz}, dtype={self.dtype})"

    @property
    def n(self):
        return self.shape[0]

    def _vector(self, v, name, *, copy=False):
        return as_array(v, name, dtype=self.dtype, ndim=1, shape=(self.n,), copy=copy)

    def sweep(self, x, b, omega=1.0, direction="forward", sweeps=1):
        """Apply ``sweeps`` SOR sweeps to ``x`` in place and return it.

        See :func:`sweep` for the parameters.
        """
        omega = check_open_interval(omega, "omega", 0.0, 2.0)
        check_choice(direction, "direction", _DIRECTIONS)
        sweeps = check_int(sweeps, "sweeps", minimum=0)
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a NumPy array (it is updated in place), got {type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(f"x must have dtype {self.dtype} to be updated in place, got {x.dtype}")
        if x.shape != (self.n,):
            raise ValueError(f"x must have shape ({self.n},), got {x.shape}")
        if not x.flags.writeable:
            raise ValueError("x must be writable (it is updated in place)")
        if not np.isfinite(x).all():
            raise ValueError("x must be finite, found NaN or inf")
        bb = self._vector(b, "b")
        if x.flags.c_contiguous:
            self._m.sweep(x, bb, omega, direction, sweeps)
        else:  # strided x: sweep a contiguous copy, then write it back
            work = np.ascontiguousarray(x)
            self._m.sweep(work, bb, omega, direction, sweeps)
            x[...] = work
        return x

    def solve(self, b, omega=1.0, x0=None, rtol=1e-8, max_iter=10_000, symmetric=False, warn=True):
        """Solve ``A x = b`` by SOR (or SSOR) iteration. See :func:`solve`."""
        omega = check_open_interval(omega, "omega", 0.0, 2.0)
        rtol = check_positive(rtol, "rtol", allow_zero=True)
        max_iter = check_int(max_iter, "max_iter", minimum=0)
        bb = self._vector(b, "b")
        x = np.zeros(self.n, dtype=self.dtype) if x0 is None else self._vector(x0, "x0", copy=True)
        n_iter, converged, residuals = self._m.solve(x, bb, omega, rtol, max_iter, bool(symmetric))
        if not converged and warn:
            warnings.warn(f"SOR did not reach rtol={rtol:g} in {n_iter} iterations "
                          f"(relative residual {residuals[-1]:.3g}, omega={omega:g})",
                          ConvergenceWarning, stacklevel=3)
        return SolveResult(x=x, n_iter=int(n_iter), converged=bool(converged),
                           residuals=np.asarray(residuals), omega=omega)


def _prepared(A):
    return A if isinstance(A, SOR) else SOR(A)


def sweep(A, x, b, omega=1.0, direction="forward", sweeps=1):
    """Apply SOR sweeps to ``x`` in place (exact lexicographic order) and return ``x``.

    Parameters
    ----------
    A : sparse matrix, dense array, (data, indices, indptr) triple, or SOR
        Square with a positive diagonal. Pass a prepared :class:`SOR` to skip the CSR conversion
        and diagonal search on repeated calls.
    x : ndarray, shape (n,)
        Initial guess, overwritten. Its dtype must equal the compute dtype (that of ``A``). A
        strided ``x`` works (it is swept through a contiguous copy and written back).
    b : array_like, shape (n,)
        Right-hand side.
    omega : float, default 1.0
        Relaxation parameter in (0, 2); 1.0 is Gauss-Seidel.
    direction : {"forward", "backward", "symmetric"}
        Row order; "symmetric" is a forward then a backward sweep (SSOR).
    sweeps : int, default 1
        Number of sweeps.

    Returns
    -------
    x : ndarray
        The same array, updated.

    Raises
    ------
    ValueError
        omega outside (0, 2), a missing/zero/negative diagonal, shape mismatch, NaN or inf, an empty
        or non-square ``A``.
    TypeError
        ``x`` of another dtype than ``A`` (it could not be updated in place).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> import kernforge as kf
    >>> A = sp.csr_matrix(np.array([[4.0, -1.0], [-1.0, 4.0]]))
    >>> x = np.zeros(2)
    >>> kf.sor.sweep(A, x, np.array([3.0, 3.0]), omega=1.0)  # one Gauss-Seidel sweep
    array([0.75  , 0.9375])
    """
    return _prepared(A).sweep(x, b, omega=omega, direction=direction, sweeps=sweeps)


def solve(A, b, omega=1.0, x0=None, rtol=1e-8, max_iter=10_000, symmetric=False):
    """Solve ``A x = b`` by SOR iteration.

    Iterates until ``||b - A x_k||_2 <= rtol * ||b||_2``. The residual of each iterate is fused
    into the following sweep (no second pass over A): when sweep k+1 reveals that x_k met the
    tolerance, that sweep is undone, so the returned ``x`` is exactly the first iterate meeting it
    and ``n_iter = k``.

    Parameters
    ----------
    A : sparse matrix, dense array, (data, indices, indptr) triple, or SOR
        Square with a positive diagonal. SOR converges for every omega in (0, 2) when A is
        symmetric positive definite (Ostrowski-Reich).
    b : array_like, shape (n,)
    omega : float, default 1.0
        Relaxation parameter in (0, 2).
    x0 : array_like, optional
        Initial guess (default zeros); not modified.
    rtol : float, default 1e-8
        Relative residual tolerance (relative to ``||b||``, as in SciPy; with ``x0 = 0`` this is the
        paper's ``||r_k|| / ||r_0||``).
    max_iter : int, default 10000
        Iteration cap (the paper's).
    symmetric : bool, default False
        Iterate symmetric (SSOR) sweeps instead of forward ones.

    Returns
    -------
    SolveResult
        ``x``, ``n_iter``, ``converged``, ``residuals``, ``omega``. If the cap is hit,
        ``converged`` is False and a :class:`kernforge.ConvergenceWarning` is emitted.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> import kernforge as kf
    >>> n = 16
    >>> T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    >>> A = (sp.kron(T, sp.eye(n)) + sp.kron(sp.eye(n), T)).tocsr()   # 2-D Poisson
    >>> res = kf.sor.solve(A, np.ones(n * n), omega=1.7)
    >>> res.converged, res.n_iter < 200
    (True, True)
    """
    return _prepared(A).solve(b, omega=omega, x0=x0, rtol=rtol, max_iter=max_iter, symmetric=symmetric)
