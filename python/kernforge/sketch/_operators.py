"""Sketching operators: objects S (m x n) that compress the n rows of a matrix to m.

Every operator supports ``S @ A`` (A dense of any memory order, scipy.sparse, a 1-D vector or a
``scipy.sparse.linalg.LinearOperator``), right sketches ``A @ S.T``, the adjoint ``S.T @ Y``, and
``to_dense()`` / ``to_sparse()`` for inspection. Entries are generated from the seed by a
counter-based generator keyed by (seed, column), so the same seed gives bitwise the same result for
any thread count. Every operator satisfies E[S^T S] = I.
"""
import math
import numbers

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .. import _core
from .._validation import check_finite, check_int, check_seed, float_dtype_of

__all__ = ["SketchOperator", "CountSketch", "SparseSign", "VerySparseRandomProjection", "Gaussian", "SRHT",
           "SRFT", "make_sketch", "SKETCHES"]

_core_sketch = _core.sketch


def _prepare_operand(A, n, name, what, check=True):
    """A as (kind, array) with kind in {"dense", "csr", "csc", "linop"}, checked against n rows.

    ``check=False`` skips the NaN/inf scan of a dense A (the caller checks the product instead).
    """
    if isinstance(A, spla.LinearOperator):
        if A.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows {what}, got shape {A.shape}")
        return "linop", A
    if sp.issparse(A):
        if A.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {A.ndim}-D")
        if A.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows {what}, got shape {A.shape}")
        dt = float_dtype_of(name, A)
        fmt = "csc" if A.format == "csc" else "csr"
        C = A.tocsc() if fmt == "csc" else A.tocsr()
        if C.dtype != dt:
            C = C.astype(dt)
        if C.nnz:
            check_finite(C.data, name)
        if C.indices.dtype != C.indptr.dtype:
            idx = np.int64
            C = type(C)((C.data, C.indices.astype(idx), C.indptr.astype(idx)), shape=C.shape)
        return fmt, C
    arr = np.asarray(A)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got {arr.ndim}-D with shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows {what}, got shape {arr.shape}")
    dt = float_dtype_of(name, arr)
    if arr.dtype != dt:
        arr = arr.astype(dt)
    if check and arr.size:
        check_finite(arr, name)
    return "dense", arr


def _as_strided_ok(arr):
    """A 2-D float array whose strides are whole elements (anything NumPy makes, except odd views)."""
    item = arr.itemsize
    if arr.strides[0] % item or arr.strides[1] % item or min(arr.strides) < 0:
        return np.ascontiguousarray(arr)
    return arr


class SketchOperator:
    """Base class: a random m x n matrix applied without (for the sparse ones) ever forming it.

    Subclasses implement ``_apply_dense``, ``_apply_sparse`` and ``_adjoint_dense``.
    """

    # NumPy must hand ``A @ S.T`` to our __rmatmul__ rather than try to broadcast an object array.
    __array_ufunc__ = None
    __array_priority__ = 1000
    dense_kind = False  # True for operators whose entries are all nonzero (Gaussian, SRHT)
    covers_all_rows = False  # True when every column of S has a nonzero (a NaN in A always shows in S A)

    def __init__(self, m, n, seed=0):
        self.m = check_int(m, "m", minimum=1)
        self.n = check_int(n, "n", minimum=1)
        if self.m > self.n:
            raise ValueError(f"m must be <= n (a sketch reduces n = {self.n} rows to m), got m = {self.m}")
        self.seed = check_seed(seed)

    @property
    def shape(self):
        return (self.m, self.n)

    def _params(self):
        return ""

    def __repr__(self):
        extra = self._params()
        return f"{type(self).__name__}(m={self.m}, n={self.n}{', ' + extra if extra else ''}, seed={self.seed})"

    # ----------------------------------------------------------------- application
    def __matmul__(self, A):
        return self.apply(A)

    def apply(self, A):
        """Return ``S @ A`` for a dense array (1-D or 2-D, any order), a scipy.sparse matrix or a
        LinearOperator with n rows. The result is a dense array of A's float dtype."""
        # When every row of A reaches S A with a nonzero weight, a NaN or inf in A always shows in
        # the (small) product, so a dense A is scanned only if the product is not finite.
        late = self.covers_all_rows
        kind, X = _prepare_operand(A, self.n, "A", f"to be sketched by a {self.m} x {self.n} sketch", check=not late)
        out = self._apply_prepared(kind, X)
        if late and kind == "dense" and not np.isfinite(out).all():
            check_finite(X, "A")  # raises for NaN/inf in A; otherwise the product overflowed
        return out

    def _apply_prepared(self, kind, X):
        if kind == "dense":
            if X.ndim == 1:
                return self._apply_dense(X[:, None])[:, 0]
            if X.shape[1] == 0:
                return np.zeros((self.m, 0), dtype=X.dtype)
            return self._apply_dense(_as_strided_ok(X))
        if kind in ("csr", "csc"):
            if X.shape[1] == 0:
                return np.zeros((self.m, 0), dtype=X.dtype)
            return self._apply_sparse(kind, X)
        # LinearOperator: S A = (A^T S^T)^T, with S^T formed a block of columns at a time.
        dt = np.dtype(np.float64) if X.dtype is None or X.dtype not in (np.float32, np.float64) else np.dtype(X.dtype)
        out = np.empty((self.m, X.shape[1]), dtype=dt)
        block = 64
        for i0 in range(0, self.m, block):
            i1 = min(self.m, i0 + block)
            E = np.zeros((self.m, i1 - i0), dtype=dt)
            E[np.arange(i0, i1), np.arange(i1 - i0)] = 1
            St = self._adjoint_dense(E)
            out[i0:i1] = np.asarray(X.rmatmat(St)).T
        return out

    @property
    def T(self):
        """The transpose, for right sketches ``A @ S.T`` and adjoints ``S.T @ Y``."""
        return _Transposed(self)

    def adjoint(self, Y):
        """Return ``S.T @ Y`` for dense Y with m rows (1-D or 2-D)."""
        kind, X = _prepare_operand(Y, self.m, "Y", f"to be multiplied by S.T ({self.n} x {self.m})")
        if kind != "dense":
            X = X.toarray() if kind in ("csr", "csc") else None
            if X is None:
                raise TypeError("Y must be a dense array or a scipy.sparse matrix")
        if X.ndim == 1:
            return self._adjoint_dense(X[:, None])[:, 0]
        return self._adjoint_dense(_as_strided_ok(X))

    # ----------------------------------------------------------------- inspection
    def to_dense(self, dtype=np.float64):
        """The operator as a dense m x n array (for inspection and small problems only)."""
        dtype = np.dtype(dtype)
        return self._adjoint_dense(np.eye(self.m, dtype=dtype)).T.copy()

    def to_sparse(self):
        """The operator as a scipy.sparse CSR matrix (float64)."""
        return sp.csr_matrix(self.to_dense())


class _Transposed:
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, op):
        self._op = op
        self.shape = (op.n, op.m)

    def __repr__(self):
        return f"{self._op!r}.T"

    @property
    def T(self):
        return self._op

    def __rmatmul__(self, A):
        """``A @ S.T = (S @ A.T).T`` for A with n columns (dense or sparse)."""
        if isinstance(A, spla.LinearOperator):
            return (self._op.apply(A.H)).T
        if sp.issparse(A):
            if A.ndim != 2 or A.shape[1] != self._op.n:
                raise ValueError(f"A must have {self._op.n} columns for A @ S.T, got shape {A.shape}")
            return self._op.apply(A.T).T
        arr = np.asarray(A)
        if arr.ndim == 1:
            return self._op.apply(arr)
        if arr.ndim != 2 or arr.shape[1] != self._op.n:
            raise ValueError(f"A must have {self._op.n} columns for A @ S.T, got shape {arr.shape}")
        return self._op.apply(arr.T).T

    def __matmul__(self, Y):
        return self._op.adjoint(Y)

    def to_dense(self, dtype=np.float64):
        return self._op.to_dense(dtype).T


# --------------------------------------------------------------------------- sparse operators
class _SparseSketch(SketchOperator):
    _kind = None

    def _param(self):
        raise NotImplementedError

    def _build(self):
        # CSC only: the dense kernels (C and F order) read S by columns; the CSR form (for a gather
        # over non-contiguous rows, CSR inputs and to_sparse) is made on first use.
        self._csc_ptr, self._csc_idx, csc_val = _core_sketch.sparse_build(self._kind, self.m, self.n,
                                                                          float(self._param()), self.seed,
                                                                          with_csr=False)[:3]
        self._vals = {np.dtype(np.float64): csc_val}
        self._csr_vals = {}
        self._csr_form = None

    def _values(self, dtype):
        dtype = np.dtype(dtype)
        if dtype not in self._vals:
            self._vals[dtype] = self._vals[np.dtype(np.float64)].astype(dtype)
        return self._vals[dtype]

    def _csr(self, dtype):
        """(ptr, idx, val) of S in CSR form, 64-bit indices, values of ``dtype``."""
        if self._csr_form is None:
            T = sp.csc_matrix((self._vals[np.dtype(np.float64)], self._csc_idx, self._csc_ptr), shape=self.shape)
            T = T.tocsr()  # a stable counting transpose: column indices sorted within each row
            self._csr_form = (T.indptr.astype(np.int64), T.indices.astype(np.int64))
            self._csr_vals[np.dtype(np.float64)] = np.asarray(T.data, dtype=np.float64)
        dtype = np.dtype(dtype)
        if dtype not in self._csr_vals:
            self._csr_vals[dtype] = self._csr_vals[np.dtype(np.float64)].astype(dtype)
        return self._csr_form[0], self._csr_form[1], self._csr_vals[dtype]

    @property
    def nnz(self):
        """Number of nonzero entries of S."""
        return int(self._csc_ptr[-1])

    def _apply_dense(self, A):
        csc_val = self._values(A.dtype)
        item = A.itemsize
        # Read A along its contiguous direction: by rows for C order, by columns for F order.
        if A.shape[1] == 1 or A.strides[1] == item:
            by_rows = True
        elif A.strides[0] == item:
            by_rows = False
        else:
            by_rows = A.strides[1] <= A.strides[0]
        if by_rows:
            if A.strides[1] == item or A.shape[1] == 1:  # contiguous rows: stream A once, scatter
                return _core_sketch.sparse_apply_dense(self._csc_ptr, self._csc_idx, csc_val, self.n, self.m, A,
                                                       False, True)
            return _core_sketch.sparse_apply_dense(*self._csr(A.dtype), self.m, self.m, A, True)
        return _core_sketch.sparse_apply_dense(self._csc_ptr, self._csc_idx, csc_val, self.n, self.m, A, False)

    def _apply_sparse(self, fmt, A):
        n, d = A.shape
        if fmt == "csr":
            return _core_sketch.sparse_apply_sparse(*self._csr(A.dtype), self.m, self.m,
                                                    A.indptr, A.indices, A.data, n, d, True)
        return _core_sketch.sparse_apply_sparse(self._csc_ptr, self._csc_idx, self._values(A.dtype), self.n, self.m,
                                                A.indptr, A.indices, A.data, n, d, False)

    def _adjoint_dense(self, Y):
        # S^T in CSR form is S in CSC form.
        csc_val = self._values(Y.dtype)
        Y = Y if Y.strides[1] == Y.itemsize or Y.shape[1] == 1 else np.ascontiguousarray(Y)
        return _core_sketch.sparse_apply_dense(self._csc_ptr, self._csc_idx, csc_val, self.n, self.n, Y, True)

    def to_sparse(self):
        """S as a scipy.sparse CSR matrix (float64), built from the operator's own structure."""
        ptr, idx, val = self._csr(np.float64)
        return sp.csr_matrix((val, idx, ptr), shape=self.shape)

    def to_dense(self, dtype=np.float64):
        return self.to_sparse().toarray().astype(dtype, copy=False)


class CountSketch(_SparseSketch):
    """CountSketch: every column of S holds a single +-1 at a uniformly random row.

    ``S @ A`` adds each row of A, with a random sign, into one of m buckets: O(nnz(A)) work.

    Parameters
    ----------
    m, n : int
        Sketch size and number of rows of the matrices it is applied to (1 <= m <= n).
    seed : int, default 0
        Seed; the same seed gives the same operator for any thread count.

    Raises
    ------
    ValueError
        If m < 1, n < 1 or m > n.

    Notes
    -----
    Clarkson & Woodruff (2013): S is an oblivious subspace embedding for m = O(d^2 / eps^2); as a
    preconditioner a few times d rows already suffice in practice (papers.md section 2.2).

    References
    ----------
    .. [1] K. L. Clarkson, D. P. Woodruff, "Low rank approximation and regression in input sparsity
       time", STOC 2013.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> S = kf.sketch.CountSketch(3, 6, seed=1)
    >>> (S.to_dense() != 0).sum(axis=0).tolist()
    [1, 1, 1, 1, 1, 1]
    >>> A = np.arange(12.0).reshape(6, 2)
    >>> np.allclose(S @ A, S.to_dense() @ A)
    True
    """

    covers_all_rows = True

    _kind = "countsketch"

    def __init__(self, m, n, seed=0):
        super().__init__(m, n, seed)
        self._build()

    def _param(self):
        return 1


class SparseSign(_SparseSketch):
    """Sparse sign embedding (SASO/OSNAP): ``nnz_per_col`` distinct rows per column, values +-1/sqrt(k).

    Parameters
    ----------
    m, n : int
        Sketch size and number of rows of the matrices it is applied to (1 <= m <= n).
    nnz_per_col : int, default 8
        Nonzeros per column, k, in [1, m] (RandBLAS defaults to 4; 8 gives a steadier embedding).
    seed : int, default 0
        Seed; the same seed gives the same operator for any thread count.

    Raises
    ------
    ValueError
        If m > n, or nnz_per_col is outside [1, m].

    Notes
    -----
    Nelson & Nguyen (2013): with k = O(log d / eps) nonzeros per column, m = O(d log d / eps^2) rows
    give an eps-subspace embedding; S @ A costs O(k nnz(A)).

    References
    ----------
    .. [1] J. Nelson, H. L. Nguyen, "OSNAP: Faster numerical linear algebra algorithms via sparser
       subspace embeddings", FOCS 2013.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> S = kf.sketch.SparseSign(16, 100, nnz_per_col=4, seed=0)
    >>> S.nnz
    400
    >>> bool(np.allclose((S.to_dense() ** 2).sum(axis=0), 1.0))
    True
    """

    covers_all_rows = True

    _kind = "sparse_sign"

    def __init__(self, m, n, nnz_per_col=8, seed=0):
        super().__init__(m, n, seed)
        self.nnz_per_col = check_int(nnz_per_col, "nnz_per_col", minimum=1)
        if self.nnz_per_col > self.m:
            raise ValueError(f"nnz_per_col must be <= m = {self.m}, got {self.nnz_per_col}")
        self._build()

    def _param(self):
        return self.nnz_per_col

    def _params(self):
        return f"nnz_per_col={self.nnz_per_col}"


class VerySparseRandomProjection(_SparseSketch):
    """Very sparse random projection (Li, Hastie & Church): entries +-sqrt(1/(density m)) w.p. density/2.

    The projection scikit-learn's ``SparseRandomProjection`` and FastRP use; here applied as
    ``S @ A`` (compressing rows). Column nonzero counts are binomial.

    Parameters
    ----------
    m, n : int
        Sketch size and number of rows of the matrices it is applied to (1 <= m <= n).
    density : float, optional
        Probability that an entry is nonzero, in (0, 1]; default 1/sqrt(n) (Li et al.).
    seed : int, default 0
        Seed; the same seed gives the same operator for any thread count.

    Raises
    ------
    ValueError
        If m > n or density is outside (0, 1].

    References
    ----------
    .. [1] P. Li, T. J. Hastie, K. W. Church, "Very sparse random projections", KDD 2006.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> S = kf.sketch.VerySparseRandomProjection(50, 400, density=0.1, seed=0)
    >>> 0.07 < S.nnz / (50 * 400) < 0.13
    True
    """

    _kind = "very_sparse"

    def __init__(self, m, n, density=None, seed=0):
        super().__init__(m, n, seed)
        if density is None:
            density = 1.0 / math.sqrt(self.n)
        if isinstance(density, bool) or not isinstance(density, numbers.Real) or not (0 < density <= 1):
            raise ValueError(f"density must lie in (0, 1], got {density!r}")
        self.density = float(density)
        self._build()

    def _param(self):
        return 1.0 / self.density

    def _params(self):
        return f"density={self.density:.4g}"


# --------------------------------------------------------------------------- dense operators
class Gaussian(SketchOperator):
    """Dense Gaussian sketch, entries N(0, 1/m), applied block by block with BLAS.

    The full S is never held: columns are generated in blocks (from (seed, column) streams) and
    multiplied as they come, so memory stays O(m * block).

    Parameters
    ----------
    m, n : int
        Sketch size and number of rows of the matrices it is applied to (1 <= m <= n).
    seed : int, default 0
        Seed; the same seed gives the same operator for any thread count.

    Raises
    ------
    ValueError
        If m > n.

    Notes
    -----
    The most accurate and most expensive embedding (2 m n d flops for S @ A): m = O(d / eps^2)
    rows give an eps-subspace embedding; the sketch of LSRN (Meng, Saunders & Mahoney, 2014) and of
    the l_inf regression guarantee (Song, Ye, Yin & Zhang, 2023).

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> S = kf.sketch.Gaussian(200, 1000, seed=0)
    >>> x = np.ones(1000)
    >>> bool(0.8 < np.linalg.norm(S @ x) / np.linalg.norm(x) < 1.2)
    True
    """

    covers_all_rows = True

    dense_kind = True

    def _block(self):
        return max(1, min(self.n, (1 << 21) // self.m))

    def _columns(self, j0, j1, dtype):
        return _core_sketch.gaussian_columns(self.m, j0, j1, self.seed, np.dtype(dtype).name)

    def _apply_dense(self, A):
        out = np.zeros((self.m, A.shape[1]), dtype=A.dtype)
        bs = self._block()
        for j0 in range(0, self.n, bs):
            j1 = min(self.n, j0 + bs)
            out += self._columns(j0, j1, A.dtype).T @ A[j0:j1]
        return out

    def _apply_sparse(self, fmt, A):
        A = A.tocsr()
        out = np.zeros((A.shape[1], self.m), dtype=A.dtype)
        bs = self._block()
        for j0 in range(0, self.n, bs):
            j1 = min(self.n, j0 + bs)
            out += A[j0:j1].T @ self._columns(j0, j1, A.dtype)
        return np.ascontiguousarray(out.T)

    def _adjoint_dense(self, Y):
        out = np.empty((self.n, Y.shape[1]), dtype=Y.dtype)
        bs = self._block()
        for j0 in range(0, self.n, bs):
            j1 = min(self.n, j0 + bs)
            out[j0:j1] = self._columns(j0, j1, Y.dtype) @ Y
        return out

    def to_dense(self, dtype=np.float64):
        return np.ascontiguousarray(self._columns(0, self.n, dtype).T)


class SRHT(SketchOperator):
    """Subsampled randomized Hadamard transform ``S = R H D / sqrt(m)``.

    Random signs D, the fast Walsh-Hadamard transform H (A is zero-padded to n_pad = 2^ceil(log2 n)
    rows), and a uniform sample R of m distinct rows; O(n_pad log(n_pad) d) work for S @ A.

    Parameters
    ----------
    m, n : int
        Sketch size and number of rows of the matrices it is applied to (1 <= m <= n).
    seed : int, default 0
        Seed; the same seed gives the same operator for any thread count.

    Raises
    ------
    ValueError
        If m > n.

    Notes
    -----
    A dense, structured embedding: m = O((d + log n) log d / eps^2) rows give an eps-subspace
    embedding (Tropp, 2011), with the entrywise (l_inf) guarantee of sketch-and-solve that sparse
    sketches lack (Song, Ye, Yin & Zhang, ICML 2023). Blendenpik's mixing step.

    References
    ----------
    .. [1] J. A. Tropp, "Improved analysis of the subsampled randomized Hadamard transform", 2011.
    .. [2] H. Avron, P. Maymounkov, S. Toledo, "Blendenpik: Supercharging LAPACK's least-squares
       solver", SIAM J. Sci. Comput. 32(3), 2010.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> S = kf.sketch.SRHT(8, 12, seed=0)
    >>> D = S.to_dense()
    >>> bool(np.allclose(np.abs(D), 1 / np.sqrt(8)))
    True
    >>> A = np.random.default_rng(0).standard_normal((12, 3))
    >>> bool(np.allclose(S @ A, D @ A))
    True
    """

    covers_all_rows = True

    dense_kind = True

    def __init__(self, m, n, seed=0):
        super().__init__(m, n, seed)
        self.n_pad = 1 << max(0, (self.n - 1).bit_length())
        self.rows = _core_sketch.srht_rows(self.m, self.n_pad, self.seed)

    def _apply_dense(self, A):
        return _core_sketch.srht_apply_dense(A, self.n_pad, self.rows, self.seed)

    def _apply_sparse(self, fmt, A):
        C = A.tocsc() if fmt != "csc" else A
        if C.indices.dtype != C.indptr.dtype:
            C = sp.csc_matrix((C.data, C.indices.astype(np.int64), C.indptr.astype(np.int64)), shape=C.shape)
        return _core_sketch.srht_apply_csc(C.indptr, C.indices, np.ascontiguousarray(C.data), C.shape[0],
                                           C.shape[1], self.n_pad, self.rows, self.seed)

    def _adjoint_dense(self, Y):
        return _core_sketch.srht_adjoint(Y, self.n, self.n_pad, self.rows, self.seed)


class SRFT(SketchOperator):
    """Subsampled randomized real Fourier-type transform ``S = sqrt(n/m) R F D``.

    Random signs D, the orthonormal DCT-II F (a real trigonometric transform computed by FFT in
    O(n log n) per column, with no padding of n), and a uniform sample R of m distinct rows.

    Parameters
    ----------
    m, n : int
        Sketch size and number of rows of the matrices it is applied to (1 <= m <= n).
    seed : int, default 0
        Seed; the same seed gives the same operator for any thread count.

    Raises
    ------
    ValueError
        If m > n.

    Notes
    -----
    The real counterpart of the SRFT (Woolfe, Liberty, Rokhlin & Tygert, 2008): Blendenpik [1]_
    mixes with the DCT as well as with the Walsh-Hadamard transform. It has the SRHT's
    subspace-embedding bound (m = O((d + log n) log d / eps^2), Tropp 2011: any orthogonal F with
    entries O(1/sqrt(n)) serves) but transforms n rows instead of the next power of two, so it is
    cheaper than :class:`SRHT` when n is just above a power of two. E[S^T S] = I exactly, since
    F is orthogonal and R samples m of n rows. The transform runs on ``kf.get_num_threads()``
    SciPy FFT workers, one column at a time each, so the result does not depend on the thread count.

    References
    ----------
    .. [1] H. Avron, P. Maymounkov, S. Toledo, "Blendenpik: Supercharging LAPACK's least-squares
       solver", SIAM J. Sci. Comput. 32(3), 2010.
    .. [2] F. Woolfe, E. Liberty, V. Rokhlin, M. Tygert, "A fast randomized algorithm for the
       approximation of matrices", Appl. Comput. Harmon. Anal. 25(3), 2008.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> S = kf.sketch.SRFT(5, 12, seed=0)
    >>> A = np.random.default_rng(0).standard_normal((12, 3))
    >>> bool(np.allclose(S @ A, S.to_dense() @ A))
    True
    >>> D = S.to_dense()
    >>> bool(np.allclose(D @ D.T, 12 / 5 * np.eye(5)))  # orthogonal rows: S S^T = (n / m) I
    True
    """

    covers_all_rows = True

    dense_kind = True

    def __init__(self, m, n, seed=0):
        super().__init__(m, n, seed)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0x5F7])))
        self._signs = rng.integers(0, 2, self.n).astype(np.float64) * 2.0 - 1.0
        self.rows = np.sort(rng.choice(self.n, size=self.m, replace=False))
        self._scale = math.sqrt(self.n / self.m)

    def _workers(self):
        from .._threads import get_num_threads
        return max(1, int(get_num_threads()))

    def _apply_dense(self, A):
        import scipy.fft

        X = A * self._signs.astype(A.dtype)[:, None]
        Y = scipy.fft.dct(X, type=2, norm="ortho", axis=0, overwrite_x=True, workers=self._workers())
        return np.ascontiguousarray(Y[self.rows], dtype=A.dtype) * A.dtype.type(self._scale)

    def _apply_sparse(self, fmt, A):
        C = A.tocsc()
        out = np.empty((self.m, C.shape[1]), dtype=C.dtype)
        w = max(1, (1 << 22) // self.n)  # densify a few columns at a time
        for k0 in range(0, C.shape[1], w):
            k1 = min(C.shape[1], k0 + w)
            out[:, k0:k1] = self._apply_dense(C[:, k0:k1].toarray())
        return out

    def _adjoint_dense(self, Y):
        import scipy.fft

        Z = np.zeros((self.n, Y.shape[1]), dtype=Y.dtype)
        Z[self.rows] = Y
        Z = scipy.fft.idct(Z, type=2, norm="ortho", axis=0, overwrite_x=True, workers=self._workers())
        return Z * (self._signs.astype(Y.dtype)[:, None] * Y.dtype.type(self._scale))


SKETCHES = {
    "countsketch": CountSketch,
    "sparse_sign": SparseSign,
    "very_sparse": VerySparseRandomProjection,
    "gaussian": Gaussian,
    "srht": SRHT,
    "srft": SRFT,
}


def make_sketch(sketch, m, n, seed, name="sketch"):
    """An operator from a name in SKETCHES or an existing operator (checked against n)."""
    if isinstance(sketch, SketchOperator):
        if sketch.n != n:
            raise ValueError(f"{name} must have n = {n} columns to sketch A's rows, got shape {sketch.shape}")
        return sketch
    if isinstance(sketch, str):
        if sketch not in SKETCHES:
            opts = ", ".join(repr(k) for k in SKETCHES)
            raise ValueError(f"{name} must be one of {opts} or a SketchOperator, got {sketch!r}")
        return SKETCHES[sketch](m, n, seed=seed)
    raise TypeError(f"{name} must be a sketch name or a SketchOperator, got {type(sketch).__name__}")
