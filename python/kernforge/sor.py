"""Successive over-relaxation (SOR) on sparse matrices.

``sweep`` applies SOR sweeps in place with exact lexicographic semantics (or, on request, in a
parallel multicolour order); ``solve`` iterates them to a residual tolerance; ``jacobi`` is weighted
Jacobi; ``ssor_cg`` is conjugate gradients preconditioned by SSOR. ``SOR(A)`` prepares a matrix
once (canonical CSR, diagonal positions, inverse diagonal, colouring) for repeated use.
``OmegaBandit`` and ``ContextualOmega`` learn omega across a sequence of systems, driven by
``solve_sequence`` or by your own solver (Khodak et al. 2024).

Notes
-----
One forward sweep with relaxation omega computes, for i = 0, ..., n-1,
``x_i += omega * (b_i - sum_j a_ij x_j) / a_ii`` using the values already updated in this sweep for
j < i; this equals ``x <- (D/omega + L)^{-1} (b - (U - (1/omega - 1) D) x)`` with A = D + L + U
[1]_. omega = 1 is Gauss-Seidel. A backward sweep visits rows in reverse order; a symmetric sweep
(SSOR) is a forward sweep followed by a backward one.

Orderings. ``ordering="lexicographic"`` (the default) visits rows 0..n-1 and is exact sequential
SOR. ``ordering="multicolor"`` colours the graph of A + A^T greedily (red-black on 5- and 7-point
stencils), so that rows of one colour do not couple, and sweeps colour by colour with OpenMP. It is
the lexicographic SOR of the colour-permuted matrix P A P^T: a *different* iteration with similar
convergence (the best omega can differ slightly, so a learned omega belongs to one ordering). Its
results do not depend on the number of threads (bitwise).

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
from ._validation import (as_array, as_csr, check_choice, check_finite, check_int, check_open_interval,
                          check_positive)

__all__ = ["SOR", "SolveResult", "sweep", "solve", "jacobi", "ssor_cg", "ssor_preconditioner",
           "OmegaBandit", "ContextualOmega", "SequenceResult", "solve_sequence"]

_DIRECTIONS = ("forward", "backward", "symmetric")
_ORDERINGS = ("lexicographic", "multicolor")
_METHODS = ("sor", "jacobi")


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
    ordering : {"lexicographic", "multicolor"}, default "lexicographic"
        Default row ordering of sweeps and solves (each call may override it). With
        "multicolor" the colouring and the permuted matrix are built here, once.

    Attributes
    ----------
    n_colors : int
        Number of colours of the greedy colouring (computed on first multicolour use).
    colors : ndarray of int64
        Colour of each row (same).
    lexicographic_storage : str
        How lexicographic sweeps read A: "CSR" (the arrays given) until a second sweep is asked of
        this object, then a compact owned copy when A suits it: rows of fixed width ("ELL 2+2":
        two lower and two upper entries a row), 16-bit column offsets when the bandwidth allows,
        float32 values when every value of a float64 matrix converts exactly. The copy moves fewer
        bytes per sweep and gives the same iterates.
    multicolor_storage : str
        How the colour-permuted matrix stores its off-diagonal entries (built on first use): ELL
        of a fixed width or CSR, 16- or 32-bit column offsets, and float32 values when every
        value a_ij / a_ii of a float64 matrix converts to float32 exactly (the arithmetic stays
        float64). The narrower layouts move fewer bytes per sweep and change no result.

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

    def __init__(self, A, dtype=None, ordering="lexicographic"):
        self.ordering = check_choice(ordering, "ordering", _ORDERINGS)
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
        self._coloring = None
        self._symmetric = None
        if self.ordering == "multicolor":
            self._colors()

    def __repr__(self):
        extra = f", ordering={self.ordering!r}" if self.ordering != "lexicographic" else ""
        return f"SOR(shape={self.shape}, nnz={self.A.nnz}, dtype={self.dtype}{extra})"

    def _colors(self):
        if self._coloring is None:
            self._coloring = self._m.coloring()
        return self._coloring

    @property
    def n_colors(self):
        return int(self._colors()[0])

    @property
    def colors(self):
        return self._colors()[1]

    @property
    def lexicographic_storage(self):
        return self._m.lex_storage()

    @property
    def multicolor_storage(self):
        width, narrow, f32 = self._m.mc_storage()
        layout = f"ELL width {width}" if width else "CSR"
        values = "float32 values (exact)" if f32 else f"{self.dtype} values"
        return f"{layout}, {'16' if narrow else '32/64'}-bit columns, {values}"

    def _ordering(self, ordering):
        return self.ordering if ordering is None else check_choice(ordering, "ordering", _ORDERINGS)

    def is_symmetric(self):
        """Whether A equals its transpose (to 16 ulps of max |a_ij|); computed once, in C++."""
        if self._symmetric is None:
            self._symmetric = bool(self._m.is_symmetric(16 * float(np.finfo(self.dtype).eps)))
        return self._symmetric

    @property
    def n(self):
        return self.shape[0]

    def _vector(self, v, name, *, copy=False):
        return as_array(v, name, dtype=self.dtype, ndim=1, shape=(self.n,), copy=copy)

    def sweep(self, x, b, omega=1.0, direction="forward", sweeps=1, ordering=None):
        """Apply ``sweeps`` SOR sweeps to ``x`` in place and return it.

        See :func:`sweep` for the parameters.
        """
        omega = check_open_interval(omega, "omega", 0.0, 2.0)
        check_choice(direction, "direction", _DIRECTIONS)
        sweeps = check_int(sweeps, "sweeps", minimum=0)
        ordering = self._ordering(ordering)
        kernel = self._m.mc_sweep if ordering == "multicolor" else self._m.sweep
        # The kernels report whether the swept x is finite (a flag fused into the sweep), which
        # replaces two finiteness scans of x and b per call: with one sweep per call on a
        # memory-bound kernel those scans cost 15-25% (benchmarks/bench_sor.py).
        return self._inplace(x, b, lambda xx, bb: kernel(xx, bb, omega, direction, sweeps), fused=sweeps > 0)

    def jacobi(self, x, b, omega=1.0, sweeps=1):
        """Apply ``sweeps`` weighted Jacobi steps to ``x`` in place and return it. See :func:`jacobi`."""
        omega = check_open_interval(omega, "omega", 0.0, 2.0)
        sweeps = check_int(sweeps, "sweeps", minimum=0)
        return self._inplace(x, b, lambda xx, bb: self._m.jacobi_sweep(xx, bb, omega, sweeps), fused=False)

    def _rhs(self, b, finite):
        # The common call (a C-contiguous array of the compute dtype) allocates nothing and scans
        # nothing; anything else goes through the full conversion and checks.
        if type(b) is np.ndarray and b.dtype == self.dtype and b.shape == (self.n,) and b.flags.c_contiguous:
            return b
        return as_array(b, "b", dtype=self.dtype, ndim=1, shape=(self.n,), finite=finite)

    def _inplace(self, x, b, kernel, fused):
        """Run ``kernel(x, b)`` on x in place. With ``fused`` the kernel returns whether the updated x
        is finite and the inputs are not scanned beforehand; otherwise x and b are checked first."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a NumPy array (it is updated in place), got {type(x).__name__}")
        if x.dtype != self.dtype:
            raise TypeError(f"x must have dtype {self.dtype} to be updated in place, got {x.dtype}")
        if x.shape != (self.n,):
            raise ValueError(f"x must have shape ({self.n},), got {x.shape}")
        if not x.flags.writeable:
            raise ValueError("x must be writable (it is updated in place)")
        if not fused and not np.isfinite(x).all():
            raise ValueError("x must be finite, found NaN or inf")
        bb = self._rhs(b, finite=not fused)
        if x.flags.c_contiguous:
            finite = kernel(x, bb)
        else:  # strided x: sweep a contiguous copy, then write it back
            work = np.ascontiguousarray(x)
            finite = kernel(work, bb)
            if finite or not fused:
                x[...] = work
        if fused and not finite:
            self._nonfinite(bb)
        return x

    def _nonfinite(self, bb):
        """Name the culprit once a fused check found a non-finite x after the sweep (error path only)."""
        check_finite(bb, "b")
        check_finite(self.A.data, "A")
        raise ValueError("x must be finite, found NaN or inf after the sweep: x held NaN or inf on entry, "
                         "or the iteration overflowed (x has been overwritten)")

    def _start(self, b, x0, omega, rtol, max_iter):
        omega = check_open_interval(omega, "omega", 0.0, 2.0)
        rtol = check_positive(rtol, "rtol", allow_zero=True)
        max_iter = check_int(max_iter, "max_iter", minimum=0)
        bb = self._vector(b, "b")
        x = np.zeros(self.n, dtype=self.dtype) if x0 is None else self._vector(x0, "x0", copy=True)
        return omega, rtol, max_iter, bb, x

    @staticmethod
    def _finish(name, x, n_iter, converged, residuals, omega, rtol, warn, stacklevel=4):
        if not converged and warn:
            warnings.warn(f"{name} did not reach rtol={rtol:g} in {n_iter} iterations "
                          f"(relative residual {residuals[-1]:.3g}, omega={omega:g})",
                          ConvergenceWarning, stacklevel=stacklevel)
        return SolveResult(x=x, n_iter=int(n_iter), converged=bool(converged),
                           residuals=np.asarray(residuals), omega=omega)

    def solve(self, b, omega=1.0, x0=None, rtol=1e-8, max_iter=10_000, symmetric=False, ordering=None,
              method="sor", warn=True):
        """Solve ``A x = b`` by SOR (or SSOR, or weighted Jacobi) iteration. See :func:`solve`."""
        omega, rtol, max_iter, bb, x = self._start(b, x0, omega, rtol, max_iter)
        ordering = self._ordering(ordering)
        check_choice(method, "method", _METHODS)
        if method == "jacobi":
            out = self._m.jacobi_solve(x, bb, omega, rtol, max_iter)
            name = "Jacobi"
        elif ordering == "multicolor":
            out = self._m.mc_solve(x, bb, omega, rtol, max_iter, bool(symmetric))
            name = "multicolour SSOR" if symmetric else "multicolour SOR"
        else:
            out = self._m.solve(x, bb, omega, rtol, max_iter, bool(symmetric))
            name = "SSOR" if symmetric else "SOR"
        return self._finish(name, x, *out, omega, rtol, warn)

    def _require_spd(self):
        if not self.is_symmetric():
            raise ValueError("A must be symmetric positive definite for ssor_cg; it is not symmetric "
                             "(use solve(), or a nonsymmetric Krylov method such as GMRES)")

    def ssor_cg(self, b, omega=1.0, x0=None, rtol=1e-8, max_iter=10_000, warn=True):
        """Solve ``A x = b`` by SSOR-preconditioned CG. See :func:`ssor_cg`."""
        omega, rtol, max_iter, bb, x = self._start(b, x0, omega, rtol, max_iter)
        self._require_spd()
        n_iter, converged, residuals, breakdown, value = self._m.ssor_cg(x, bb, omega, rtol, max_iter)
        if breakdown:
            raise ValueError(f"A must be symmetric positive definite for ssor_cg: CG met a curvature "
                             f"of {value:.3g} <= 0 at iteration {n_iter + 1}")
        return self._finish("SSOR-CG", x, n_iter, converged, residuals, omega, rtol, warn)

    def ssor_preconditioner(self, omega=1.0):
        """The SSOR preconditioner as a ``scipy.sparse.linalg.LinearOperator`` applying M^{-1}.

        See :func:`ssor_preconditioner`.
        """
        omega = check_open_interval(omega, "omega", 0.0, 2.0)
        from scipy.sparse.linalg import LinearOperator

        def apply(r):
            r = np.ascontiguousarray(np.asarray(r, dtype=self.dtype).reshape(-1))
            z = np.empty_like(r)
            self._m.ssor_apply(r, z, omega)
            return z

        return LinearOperator(self.shape, matvec=apply, rmatvec=apply, dtype=self.dtype)


def _prepared(A):
    return A if isinstance(A, SOR) else SOR(A)


def sweep(A, x, b, omega=1.0, direction="forward", sweeps=1, ordering=None):
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
    ordering : {None, "lexicographic", "multicolor"}
        Row order (None: that of a prepared :class:`SOR`, else lexicographic). "multicolor" sweeps
        colour by colour in parallel: a different iteration from the lexicographic one (see the
        module notes); all ``sweeps`` run in one OpenMP parallel region, on a colour-permuted copy
        of x and b.

    Returns
    -------
    x : ndarray
        The same array, updated.

    Raises
    ------
    ValueError
        omega outside (0, 2), a missing/zero/negative diagonal, shape mismatch, NaN or inf, an empty
        or non-square ``A``. NaN or inf in ``x``, ``b`` or the values of a prepared ``A`` is
        detected by a check fused into the sweep (it costs no extra pass over memory), so it is
        raised *after* the sweep, naming the input that held it; ``x`` has then been overwritten.
        A diverging iteration that overflows raises the same error.
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
    return _prepared(A).sweep(x, b, omega=omega, direction=direction, sweeps=sweeps, ordering=ordering)


def jacobi(A, x, b, omega=1.0, sweeps=1):
    """Apply weighted Jacobi steps ``x <- x + omega D^{-1} (b - A x)`` to ``x`` in place.

    Parameters
    ----------
    A : sparse matrix, dense array, (data, indices, indptr) triple, or SOR
        Square with a positive diagonal.
    x : ndarray, shape (n,)
        Initial guess, overwritten (dtype equal to the compute dtype).
    b : array_like, shape (n,)
    omega : float, default 1.0
        Damping in (0, 2); PyAMG's default 1.0 (2/3 is the classical smoother choice for Poisson).
    sweeps : int, default 1

    Returns
    -------
    x : ndarray
        The same array, updated.

    Raises
    ------
    ValueError, TypeError
        As for :func:`sweep`.

    Notes
    -----
    Rows update independently (OpenMP over rows, one parallel region across steps); results do
    not depend on the thread count. Saad (2003), section 4.1.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> import kernforge as kf
    >>> A = sp.csr_matrix(np.array([[4.0, -1.0], [-1.0, 4.0]]))
    >>> kf.sor.jacobi(A, np.zeros(2), np.array([3.0, 3.0]), omega=0.5)
    array([0.375, 0.375])
    """
    return _prepared(A).jacobi(x, b, omega=omega, sweeps=sweeps)


def ssor_cg(A, b, omega=1.0, x0=None, rtol=1e-8, max_iter=10_000):
    """Solve a symmetric positive definite system by CG preconditioned with SSOR(omega).

    Parameters
    ----------
    A : sparse matrix, dense array, (data, indices, indptr) triple, or SOR
        Symmetric positive definite.
    b : array_like, shape (n,)
    omega : float, default 1.0
        SSOR parameter in (0, 2).
    x0 : array_like, optional
        Initial guess (warm start; default zeros); not modified.
    rtol : float, default 1e-8
        Stop when the CG residual ``||r_k|| <= rtol ||b||`` (the paper's tolerance).
    max_iter : int, default 10000

    Returns
    -------
    SolveResult
        ``x``, ``n_iter`` (CG iterations), ``converged``, ``residuals`` (``||r_k|| / ||b||`` of the
        CG recurrence, k = 0..n_iter), ``omega``. A :class:`kernforge.ConvergenceWarning` is emitted
        when ``max_iter`` is hit.

    Raises
    ------
    ValueError
        ``A`` not symmetric, or CG finds it (or M) not positive definite; the errors of
        :func:`solve`.

    Notes
    -----
    The preconditioner is M = (D + omega L) D^{-1} (D + omega U) / (omega (2 - omega)) (Saad 2003,
    eq. 10.8); applying M^{-1} is one forward SOR sweep from zero and one backward sweep. This is
    the second solver of Khodak et al. (2024), whose code applies the transposed order (backward
    first), an equally good SPD preconditioner for symmetric A.

    References
    ----------
    .. [1] M. Khodak, E. Chow, M.-F. Balcan, A. Talwalkar, "Learning to Relax", ICLR 2024.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> import kernforge as kf
    >>> n = 32
    >>> T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    >>> A = (sp.kron(T, sp.eye(n)) + sp.kron(sp.eye(n), T)).tocsr()
    >>> res = kf.sor.ssor_cg(A, np.ones(n * n), omega=1.7)
    >>> res.converged, res.n_iter < 40
    (True, True)
    """
    return _prepared(A).ssor_cg(b, omega=omega, x0=x0, rtol=rtol, max_iter=max_iter)


def ssor_preconditioner(A, omega=1.0):
    """SSOR(omega) as a SciPy ``LinearOperator`` that applies M^{-1}, e.g. for ``scipy.sparse.linalg.cg``.

    Parameters
    ----------
    A : sparse matrix, dense array, (data, indices, indptr) triple, or SOR
    omega : float, default 1.0

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        ``M.matvec(r)`` = M^{-1} r with M as in :func:`ssor_cg`.

    Raises
    ------
    ValueError
        omega outside (0, 2) or an invalid ``A`` (see :class:`SOR`).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, scipy.sparse.linalg as spla
    >>> import kernforge as kf
    >>> A = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(100, 100), format="csr")
    >>> x, info = spla.cg(A, np.ones(100), M=kf.sor.ssor_preconditioner(A, 1.5), rtol=1e-10)
    >>> info, bool(np.linalg.norm(A @ x - 1) < 1e-8)
    (0, True)
    """
    return _prepared(A).ssor_preconditioner(omega)


def solve(A, b, omega=1.0, x0=None, rtol=1e-8, max_iter=10_000, symmetric=False, ordering=None,
          method="sor"):
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
    ordering : {None, "lexicographic", "multicolor"}
        See :func:`sweep`. The multicolour solve permutes once and runs every sweep in one
        parallel region; its residual is fused the same way.
    method : {"sor", "jacobi"}, default "sor"
        "jacobi" iterates weighted Jacobi instead (omega is its damping; its residual is free).

    Returns
    -------
    SolveResult
        ``x``, ``n_iter``, ``converged``, ``residuals``, ``omega``. If the cap is hit,
        ``converged`` is False and a :class:`kernforge.ConvergenceWarning` is emitted.

    Raises
    ------
    ValueError
        omega outside (0, 2); rtol < 0; max_iter < 0; an unknown ordering or method; a
        missing/zero/negative diagonal, shape mismatch, NaN or inf, an empty or non-square ``A``.
    TypeError
        Non-numeric or complex inputs, a non-real omega.

    Notes
    -----
    Lexicographic SOR is sequential (row i needs row i-1's new value); ``ordering="multicolor"``
    is the parallel choice. Khodak et al. (2024) feed the iteration count of this solve (their
    ``solvers/sor.m``, x0 = 0, rtol 1e-8, cap 10000) to the omega learners.

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
    return _prepared(A).solve(b, omega=omega, x0=x0, rtol=rtol, max_iter=max_iter, symmetric=symmetric,
                              ordering=ordering, method=method)


from ._sor_learn import ContextualOmega, OmegaBandit, SequenceResult, solve_sequence  # noqa: E402
