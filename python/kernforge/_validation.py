"""Input validation shared by every area.

Every check raises with a message that names the argument and says what was expected, e.g.
``ValueError: A must be square, got shape (3, 4)``. Dtype policy: float32 and float64 are computed in
their own precision; integer and boolean inputs are cast to float64 (as SciPy does); complex, object
and other dtypes raise TypeError.
"""
import numbers

import numpy as np
import scipy.sparse as sp

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _dtype_of(x):
    if isinstance(x, np.dtype):
        return x
    if sp.issparse(x):
        return x.dtype
    return np.asarray(x).dtype if not hasattr(x, "dtype") else np.dtype(x.dtype)


def float_dtype_of(name, x):
    """The compute dtype for one input: float32/float64 kept, ints and bools -> float64."""
    dt = _dtype_of(x)
    if dt in FLOAT_DTYPES:
        return dt
    if dt.kind in "iub":
        return np.dtype(np.float64)
    if dt.kind == "f":  # float16, longdouble: computed in float64
        return np.dtype(np.float64)
    raise TypeError(f"{name} must have a real floating dtype (float32 or float64), got {dt}")


def result_dtype(**named):
    """Common compute dtype of several named inputs: float32 only if all are float32."""
    dts = [float_dtype_of(k, v) for k, v in named.items() if v is not None]
    if dts and all(d == np.float32 for d in dts):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_finite(a, name):
    if not np.isfinite(a).all():
        bad = "NaN" if np.isnan(a).any() else "inf"
        raise ValueError(f"{name} must be finite, found {bad}")


def as_array(x, name, *, dtype=None, ndim=None, shape=None, finite=True, allow_empty=False,
             order="C", copy=False):
    """Convert to a NumPy array of a float dtype, checking dimension, shape, emptiness and finiteness.

    ``order="C"`` returns a C-contiguous array (copying only if needed); ``order=None`` keeps the
    caller's layout (for kernels that take strides).
    """
    if sp.issparse(x):
        raise TypeError(f"{name} must be a dense array, got a sparse matrix")
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    dt = float_dtype_of(name, arr) if dtype is None else np.dtype(dtype)
    if ndim is not None:
        ndims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in ndims:
            want = " or ".join(f"{d}-D" for d in ndims)
            raise ValueError(f"{name} must be {want}, got {arr.ndim}-D with shape {arr.shape}")
    if shape is not None:
        if len(shape) != arr.ndim or any(s is not None and s != t for s, t in zip(shape, arr.shape)):
            dims = ["*" if s is None else str(s) for s in shape]
            want = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
            raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if order is None:
        out = arr.astype(dt, copy=copy)
    elif order == "C":
        out = np.array(arr, dtype=dt, order="C", copy=True) if copy else np.ascontiguousarray(arr, dtype=dt)
    else:
        out = np.array(arr, dtype=dt, order=order, copy=copy or None)
    if finite and out.size:
        check_finite(out, name)
    return out


def as_csr(A, name="A", *, dtype=None, square=False, finite=True):
    """Canonical CSR: sorted indices, duplicates summed, float data, int32 indices where they fit.

    Accepts any scipy.sparse matrix or array, a dense 2-D array, or a ``(data, indices, indptr)``
    triple (optionally ``((data, indices, indptr), shape)``). Never modifies the caller's matrix.
    """
    if isinstance(A, tuple):
        try:
            if len(A) == 2 and isinstance(A[0], tuple):
                A = sp.csr_matrix(A[0], shape=A[1])
            elif len(A) == 3:
                A = sp.csr_matrix(A)
            else:
                raise ValueError
        except Exception as exc:
            raise ValueError(f"{name} as a tuple must be (data, indices, indptr) or "
                             f"((data, indices, indptr), shape): {exc}") from None
    if not sp.issparse(A):
        arr = np.asarray(A)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D, got {arr.ndim}-D with shape {arr.shape}")
        float_dtype_of(name, arr)
        A = sp.csr_matrix(arr)
    dt = float_dtype_of(name, A) if dtype is None else np.dtype(dtype)
    n, m = A.shape
    if n == 0 or m == 0:
        raise ValueError(f"{name} must not be empty, got shape {A.shape}")
    if square and n != m:
        raise ValueError(f"{name} must be square, got shape {A.shape}")
    C = A.tocsr()
    C = sp.csr_matrix((np.array(C.data, dtype=dt), np.array(C.indices), np.array(C.indptr)), shape=C.shape)
    C.sum_duplicates()  # also sorts the indices
    if not C.has_sorted_indices:
        C.sort_indices()
    idx = np.int32 if max(C.nnz, n, m) < 2**31 - 1 else np.int64
    C.indices = np.ascontiguousarray(C.indices, dtype=idx)
    C.indptr = np.ascontiguousarray(C.indptr, dtype=idx)
    C.data = np.ascontiguousarray(C.data)
    if finite and C.nnz:
        check_finite(C.data, name)
    return C


def check_real(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_open_interval(value, name, lo, hi):
    value = check_real(value, name)
    if not (lo < value < hi):
        raise ValueError(f"{name} must lie in ({lo:g}, {hi:g}), got {value:g}")
    return value


def check_positive(value, name, *, allow_zero=False):
    value = check_real(value, name)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {value:g}")
    return value


def check_int(value, name, *, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(value, name, choices):
    if value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {opts}, got {value!r}")
    return value


def check_seed(seed, name="seed"):
    """A non-negative integer seed (None -> 0, so that results are reproducible by default)."""
    if seed is None:
        return 0
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1, dtype=np.uint64)[0])
    return check_int(seed, name, minimum=0, maximum=2**64 - 1)
