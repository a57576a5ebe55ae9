"""Tiled matrix products: GEMM, stacks of small products, Monarch products, sampled products, and a
tile-size model.

``matmul`` computes ``alpha * op(A) @ op(B) + beta * out`` with the Goto/BLIS algorithm (five loops
around a register-blocked micro-kernel; packing absorbs strides, transposes and alpha), on any
strides and memory order without copying. ``batched_matmul`` multiplies stacks of small matrices in
parallel over the stack (NumPy loops over them serially). ``monarch_matmul`` applies a Monarch
matrix with its permutations fused into the two block GEMMs. ``approx_matmul`` is the unbiased
column-row sampling estimate (CRS and Winner-Take-All CRS). ``tile_sweep``, ``TileModel`` and
``autotune`` measure, model and choose block sizes.

Notes
-----
Dtypes: float32 and float64 are computed in their own precision; mixed float32/float64 inputs are
promoted to float64 (as ``np.matmul`` does), integers and booleans are computed in float64, complex
raises TypeError. ``out`` must already have the result dtype.

Determinism: the depth (k) is never split across threads, so results are bitwise identical for any
thread count at a fixed SIMD level (``KERNFORGE_ISA``) and tiling. Different SIMD levels (FMA or not)
and NumPy's BLAS may differ in the last bits.

Special values follow BLAS: ``beta == 0`` never reads ``out`` (NaN there is overwritten); NaN and
Inf in A or B propagate (0 * NaN = NaN, no zero block is skipped); ``alpha == 0`` or ``k == 0``
gives ``beta * out`` without reading A or B, as the reference BLAS and OpenBLAS do.

References
----------
.. [1] K. Goto, R. van de Geijn, "Anatomy of High-Performance Matrix Multiplication", ACM TOMS
   34(3), 2008.
.. [2] F. Van Zee, R. van de Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS
   Functionality", ACM TOMS 41(3), 2015.
.. [3] T. Dao et al., "Monarch: Expressive Structured Matrices for Efficient and Accurate Training",
   ICML 2022.
.. [4] P. Drineas, R. Kannan, M. Mahoney, "Fast Monte Carlo Algorithms for Matrices I: Approximating
   Matrix Multiplication", SIAM J. Comput. 36(1), 2006.
.. [5] Z. Liu et al., "Winner-Take-All Column Row Sampling for Memory Efficient Adaptation of
   Language Model", NeurIPS 2023.
.. [6] "Understanding GEMM Performance and Energy on NVIDIA Ada Lovelace: A Machine Learning-Based
   Analytical Approach" (random-forest runtime model over problem and tile features).
"""
import dataclasses
import json
import math
import os
import time

import numpy as np

from . import _core
from ._result import Result
from ._validation import check_choice, check_int, check_real, check_seed, result_dtype

__all__ = [
    "matmul",
    "batched_matmul",
    "monarch_matmul",
    "monarch_dense",
    "approx_matmul",
    "ApproxInfo",
    "kernels",
    "cuda_available",
    "tile_sweep",
    "TileSweep",
    "TileModel",
    "TileValidation",
    "autotune",
    "tile_cache_path",
]

_g = _core.gemm
_INTP_MAX = np.iinfo(np.intp).max
_TILE_KEYS = ("mr", "nr", "mc", "kc", "nc", "pack_a")


# ----------------------------------------------------------------------------- helpers
def _as_operand(x, name, dtype, ndim=None, min_ndim=None):
    """An ndarray of ``dtype`` viewing ``x`` where possible (strides kept, no copy)."""
    if hasattr(x, "tocsr") and hasattr(x, "nnz"):
        raise TypeError(f"{name} must be a dense array, got a sparse matrix")
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must have a real numeric dtype (float32 or float64), got {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {arr.ndim}-D with shape {arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name} must be at least {min_ndim}-D, got {arr.ndim}-D with shape {arr.shape}")
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    if any(s % arr.itemsize for s in arr.strides):
        arr = np.ascontiguousarray(arr)  # byte strides that are not whole elements
    return arr


def _compute_dtype(**named):
    for k, v in named.items():
        dt = np.asarray(v).dtype if not hasattr(v, "dtype") else np.dtype(v.dtype)
        if dt == object or dt.kind not in "fiub":
            raise TypeError(f"{k} must have a real numeric dtype (float32 or float64), got {dt}")
    return result_dtype(**named)


def _check_out(out, shape, dtype, inputs):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out must have dtype {dtype} (the result dtype), got {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.writeable:
        raise ValueError("out must be writable")
    for name, x in inputs.items():
        if isinstance(x, np.ndarray) and out.size and x.size:
            try:
                overlap = np.shares_memory(out, x, max_work=100000)
            except np.exceptions.TooHardError if hasattr(np, "exceptions") else Exception:
                overlap = True
            if overlap:
                raise ValueError(f"out must not overlap {name} (in-place products are not supported)")


def _check_tiles(tiles):
    if tiles is None:
        return {}
    if not isinstance(tiles, dict):
        raise TypeError(f"tiles must be a dict with keys among {_TILE_KEYS}, got {type(tiles).__name__}")
    out = {}
    for k, v in tiles.items():
        if k not in _TILE_KEYS:
            raise ValueError(f"tiles has an unknown key {k!r}; expected some of {_TILE_KEYS}")
        if k == "pack_a":
            if v is None:
                continue
            out[k] = int(bool(v))
            continue
        out[k] = check_int(v, f"tiles[{k!r}]", minimum=1, maximum=1 << 20)
    if ("mr" in out) != ("nr" in out):
        raise ValueError("tiles must give both 'mr' and 'nr' or neither")
    return out


def _check_size(shape, what):
    total = 1
    for s in shape:
        total *= int(s)
    if total > _INTP_MAX:
        raise ValueError(f"{what} of shape {tuple(shape)} would have {total} elements, more than the index "
                         f"type allows ({_INTP_MAX})")


# ----------------------------------------------------------------------------- matmul
def matmul(A, B, out=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, tiles=None, device="cpu"):
    """General matrix product ``out = alpha * op(A) @ op(B) + beta * out``.

    Parameters
    ----------
    A : array_like, shape (m, k) (or (k, m) with ``trans_a``)
        Left operand. Any strides and memory order (C, Fortran, slices, negative strides) are read in
        place; the packing step absorbs them.
    B : array_like, shape (k, n) (or (n, k) with ``trans_b``)
        Right operand.
    out : ndarray, shape (m, n), optional
        Written in place (any strides). Required when ``beta != 0``. Must have the result dtype and
        must not overlap ``A`` or ``B``.
    alpha, beta : float
        BLAS scalars. ``beta == 0`` never reads ``out``.
    trans_a, trans_b : bool
        Use ``A.T`` / ``B.T`` (no copy).
    tiles : dict or "auto", optional
        Block sizes ``{"mr", "nr", "mc", "kc", "nc", "pack_a"}`` (any subset; ``mr``/``nr`` must name
        a compiled micro-kernel, see :func:`kernels`). ``None``: the defaults. ``"auto"``: the tiles
        :func:`autotune` cached for this shape, dtype, thread count and CPU (the defaults if none;
        no timing happens here).
    device : {"cpu", "cuda"}
        ``"cuda"`` runs the shared-memory tiled kernel of [3]_ on the GPU, from and to host arrays:
        ``tiles={"tile": t, "micro": u}``, thread blocks of t x t (8, 16, 32), each thread
        computing u x u outputs (1, 2, 4, 8; ``micro=1`` is the paper's one output per thread).
        Default 16 and 4 (a tile alone takes micro 4, or the largest that fits it: 2 for float64
        tile 32). Every pair gives the same bits (k is summed in order). Needs a build with
        ``KF_CUDA=ON`` and a visible GPU (:func:`cuda_available`), otherwise ValueError.

    Returns
    -------
    out : ndarray, shape (m, n)
        float32 if both inputs are float32, else float64.

    Raises
    ------
    ValueError
        Incompatible shapes, ``out`` of the wrong shape, read-only or overlapping an input,
        ``beta != 0`` without ``out``, a result too large for the index type, bad ``tiles``.
    TypeError
        Complex or object inputs, ``out`` of the wrong dtype.

    Notes
    -----
    Five loops (jc, pc, ic, jr, ir) around an MR x NR micro-kernel [1]_ [2]_; OpenMP over the ic
    (row-block) loop, never over k, so results are identical for any thread count. For skinny
    products A is read in place instead of packed (BLIS's "sup" idea); tiny products (m, k <= 64,
    n <= 128, at most 32^3 multiply-adds, no explicit ``tiles``) skip packing and threading.
    Micro-kernels: AVX2+FMA (float 6x16, double 6x8), AVX-512 (float 6x64, double 8x24) and
    portable C++, chosen at run time (``KERNFORGE_ISA=generic|avx2|avx512`` caps the level).

    References
    ----------
    .. [1] K. Goto, R. van de Geijn, ACM TOMS 34(3), 2008.
    .. [2] F. Van Zee, R. van de Geijn, ACM TOMS 41(3), 2015.
    .. [3] "Understanding GEMM Performance and Energy on NVIDIA Ada Lovelace: A Machine
       Learning-Based Analytical Approach".

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> A = np.arange(6.0).reshape(2, 3); B = np.ones((3, 2))
    >>> kf.gemm.matmul(A, B)
    array([[ 3.,  3.],
           [12., 12.]])
    >>> C = np.ones((2, 2))
    >>> kf.gemm.matmul(A, B, out=C, alpha=2.0, beta=-1.0) is C
    True
    >>> C
    array([[ 5.,  5.],
           [23., 23.]])
    """
    check_choice(device, "device", ("cpu", "cuda"))
    if device == "cuda":
        return _cuda_matmul(A, B, out, alpha, beta, trans_a, trans_b, tiles)
    alpha = check_real(alpha, "alpha")
    beta = check_real(beta, "beta")
    dt = _compute_dtype(A=A, B=B)
    A = _as_operand(A, "A", dt, ndim=2)
    B = _as_operand(B, "B", dt, ndim=2)
    if trans_a:
        A = A.T
    if trans_b:
        B = B.T
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A and B have incompatible shapes {A.shape} and {B.shape} "
                         f"(after trans_a={bool(trans_a)}, trans_b={bool(trans_b)})")
    m, n = A.shape[0], B.shape[1]
    _check_size((m, n), "the result")
    if isinstance(tiles, str):
        check_choice(tiles, "tiles", ("auto",))
        tiles = _cached_tiles(m, n, A.shape[1], dt)
    t = _check_tiles(tiles)
    if out is None:
        if beta != 0.0:
            raise ValueError("beta != 0 needs out (the matrix to scale and accumulate into)")
        out = np.empty((m, n), dtype=dt)
    else:
        _check_out(out, (m, n), dt, {"A": A, "B": B})
    if m == 0 or n == 0:
        return out
    target = out
    if any(s % out.itemsize for s in out.strides):
        target = np.array(out, copy=True)
    _g.matmul(A, B, target, alpha, beta, t)
    if target is not out:
        out[...] = target
    return out


def cuda_available():
    """Whether ``matmul(..., device="cuda")`` can run: a ``KF_CUDA=ON`` build and a visible GPU.

    Examples
    --------
    >>> import kernforge as kf
    >>> kf.gemm.cuda_available() in (True, False)
    True
    """
    return bool(hasattr(_g, "cuda_matmul_f32") and _core.build_config.get("cuda_devices", 0) > 0)


def _cuda_matmul(A, B, out, alpha, beta, trans_a, trans_b, tiles):
    _require_cuda()
    alpha = check_real(alpha, "alpha")
    beta = check_real(beta, "beta")
    dt = _compute_dtype(A=A, B=B)
    tile, micro = _cuda_tile(tiles, dt)
    A = _as_operand(A, "A", dt, ndim=2)
    B = _as_operand(B, "B", dt, ndim=2)
    if trans_a:
        A = A.T
    if trans_b:
        B = B.T
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A and B have incompatible shapes {A.shape} and {B.shape} "
                         f"(after trans_a={bool(trans_a)}, trans_b={bool(trans_b)})")
    m, n = A.shape[0], B.shape[1]
    _check_gpu_dims(m, n, A.shape[1])
    if out is None:
        if beta != 0.0:
            raise ValueError("beta != 0 needs out (the matrix to scale and accumulate into)")
        out = np.empty((m, n), dt)
    else:
        # Checked against the caller's arrays: the contiguous copies below never overlap anything.
        _check_out(out, (m, n), dt, {"A": A, "B": B})
    A = np.ascontiguousarray(A)
    B = np.ascontiguousarray(B)
    C = out if out.flags.c_contiguous else np.ascontiguousarray(out)
    (_g.cuda_matmul_f32 if dt == np.float32 else _g.cuda_matmul_f64)(A, B, C, alpha, beta, tile, micro)
    if C is not out:
        out[...] = C
    return out


def kernels(dtype=np.float64, isa=None):
    """The compiled micro-kernels and their default blocking for a SIMD level.

    Parameters
    ----------
    dtype : {numpy.float32, numpy.float64}
    isa : {None, "generic", "avx2", "avx512"}
        ``None``: the active level (``kf.show_config()``).

    Returns
    -------
    list of dict
        Keys ``name, isa, mr, nr, mc, kc, nc``; the first is the default.

    Examples
    --------
    >>> import kernforge as kf
    >>> ks = kf.gemm.kernels(isa="generic"); ks[0]["isa"]
    'generic'
    """
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    if isa is not None:
        check_choice(isa, "isa", ("generic", "avx2", "avx512"))
    f = _g.kernels_f32 if dt == np.float32 else _g.kernels_f64
    return list(f(isa or ""))


# ----------------------------------------------------------------------------- batched
def _batch_offsets(arr, batch_shape):
    """int64 element offsets of every matrix of ``arr`` (..., r, c) broadcast to ``batch_shape``."""
    nb = arr.ndim - 2
    off = np.zeros((1,) * nb, dtype=np.int64)
    for d in range(nb):
        shape = [1] * nb
        shape[d] = arr.shape[d]
        step = arr.strides[d] // arr.itemsize if arr.shape[d] > 1 else 0
        off = off + (np.arange(arr.shape[d], dtype=np.int64) * step).reshape(shape)
    off = off.reshape((1,) * (len(batch_shape) - nb) + off.shape)
    return np.ascontiguousarray(np.broadcast_to(off, batch_shape)).reshape(-1)


def batched_matmul(A, B, out=None, alpha=1.0, beta=0.0):
    """Stacked matrix product ``out[i] = alpha * A[i] @ B[i] + beta * out[i]`` with broadcasting.

    Parameters
    ----------
    A : array_like, shape (..., m, k)
    B : array_like, shape (..., k, n)
        The leading (batch) dimensions broadcast as in ``np.matmul`` (a stride-0 batch dimension, e.g.
        one matrix shared by the whole stack, is read in place, never copied).
    out : ndarray, shape (..., m, n), optional
        Written in place; required when ``beta != 0``; must not overlap ``A`` or ``B``.
    alpha, beta : float
        BLAS scalars per matrix; ``beta == 0`` never reads ``out``.

    Returns
    -------
    out : ndarray, shape (broadcast batch shape) + (m, n)

    Raises
    ------
    ValueError
        Fewer than 2 dimensions, incompatible matrix or batch shapes, bad ``out``.
    TypeError
        Non-real dtypes, ``out`` of the wrong dtype.

    Notes
    -----
    Parallel over the stack (each matrix on one thread, so results do not depend on the thread
    count). M, N, K in {4, 8, 16, 32} (N a multiple of the SIMD width, rows of B and out contiguous)
    run compile-time-sized register-blocked kernels without packing (libxsmm's approach); other
    sizes use the general GEMM per matrix. ``np.matmul`` calls BLAS once per matrix, serially.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> A = np.ones((3, 2, 2)); B = np.eye(2)        # B broadcast to every matrix
    >>> kf.gemm.batched_matmul(A, 2 * B).shape
    (3, 2, 2)
    >>> float(kf.gemm.batched_matmul(A, 2 * B)[2, 1, 0])
    2.0
    """
    alpha = check_real(alpha, "alpha")
    beta = check_real(beta, "beta")
    dt = _compute_dtype(A=A, B=B)
    A = _as_operand(A, "A", dt, min_ndim=2)
    B = _as_operand(B, "B", dt, min_ndim=2)
    m, k = A.shape[-2:]
    k2, n = B.shape[-2:]
    if k != k2:
        raise ValueError(f"A and B have incompatible matrix shapes {A.shape[-2:]} and {B.shape[-2:]} "
                         f"(full shapes {A.shape} and {B.shape})")
    try:
        batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    except ValueError:
        raise ValueError(f"A and B have batch shapes {A.shape[:-2]} and {B.shape[:-2]} that do not broadcast") from None
    shape = tuple(batch) + (m, n)
    _check_size(shape, "the result")
    if out is None:
        if beta != 0.0:
            raise ValueError("beta != 0 needs out (the stack to scale and accumulate into)")
        out = np.empty(shape, dtype=dt)
    else:
        _check_out(out, shape, dt, {"A": A, "B": B})
        if any(s % out.itemsize for s in out.strides) or any(
                st == 0 and sz > 1 for st, sz in zip(out.strides, out.shape)):
            raise ValueError("out must have distinct, element-aligned memory for every entry")
    if out.size == 0:
        return out
    oa, ob, oc = _batch_offsets(A, batch), _batch_offsets(B, batch), _batch_offsets(out, batch)
    s = A.itemsize
    f = _g.batched_f32 if dt == np.float32 else _g.batched_f64
    f(A, oa, A.strides[-2] // s, A.strides[-1] // s, B, ob, B.strides[-2] // s, B.strides[-1] // s,
      out, oc, out.strides[-2] // s, out.strides[-1] // s, m, n, k, alpha, beta, True)
    return out


# ----------------------------------------------------------------------------- Monarch
def _monarch_args(x, blocks1, blocks2):
    dt = _compute_dtype(x=x, blocks1=blocks1, blocks2=blocks2)
    w1 = _as_operand(blocks1, "blocks1", dt, ndim=3)
    w2 = _as_operand(blocks2, "blocks2", dt, ndim=3)
    k, q, p = w1.shape
    l, s, r = w2.shape
    if min(w1.shape) == 0 or min(w2.shape) == 0:
        raise ValueError(f"blocks1 and blocks2 must not be empty, got shapes {w1.shape} and {w2.shape}")
    if l * r != k * q:
        raise ValueError(f"blocks2 of shape (l, s, r) = {w2.shape} must satisfy l*r == k*q = {k * q} "
                         f"for blocks1 of shape (k, q, p) = {w1.shape}")
    return dt, w1, w2


def monarch_matmul(x, blocks1, blocks2, out=None):
    """Apply a Monarch matrix ``M = P2 R2 P1 R1`` to the rows of ``x``: ``out = x @ M.T``.

    Parameters
    ----------
    x : array_like, shape (..., n)
        Row vectors, ``n = k * p``.
    blocks1 : array_like, shape (k, q, p)
        The k diagonal blocks of R1 (each q x p).
    blocks2 : array_like, shape (l, s, r)
        The l diagonal blocks of R2 (each s x r), with ``l * r == k * q``.
    out : ndarray, shape (..., l * s), optional
        Written in place; must not overlap the inputs.

    Returns
    -------
    out : ndarray, shape (..., l * s)

    Raises
    ------
    ValueError
        Incompatible shapes (``x.shape[-1] != k * p`` or ``l * r != k * q``), empty blocks, bad ``out``.
    TypeError
        Non-real dtypes, ``out`` of the wrong dtype.

    Notes
    -----
    Follows ``blockdiag_butterfly_multiply`` of the Monarch code (fly/m2) [1]_:
    ``u[b, i*q + j] = sum_t blocks1[i, j, t] x[b, i*p + t]``, then with ``u`` re-viewed as
    (r, l), ``out[b, j*l + i] = sum_t blocks2[i, j, t] u[b, t*l + i]``. Square case
    (k = q = p = l = s = r = sqrt(n)): 4 n^1.5 flops per vector instead of 2 n^2. Both
    permutations are fused into the two block GEMMs (strided read of ``u``, strided store of
    ``out``), and rows are processed in chunks so that ``u`` stays in cache. See
    :func:`monarch_dense` for the equivalent dense matrix.

    References
    ----------
    .. [1] T. Dao et al., "Monarch: Expressive Structured Matrices for Efficient and Accurate
       Training", ICML 2022, eq. (1).

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> w1 = rng.standard_normal((4, 4, 4)); w2 = rng.standard_normal((4, 4, 4))
    >>> x = rng.standard_normal((3, 16))
    >>> y = kf.gemm.monarch_matmul(x, w1, w2)
    >>> bool(np.allclose(y, x @ kf.gemm.monarch_dense(w1, w2).T))
    True
    """
    dt, w1, w2 = _monarch_args(x, blocks1, blocks2)
    x = _as_operand(x, "x", dt, min_ndim=1)
    k, q, p = w1.shape
    l, s, r = w2.shape
    if x.shape[-1] != k * p:
        raise ValueError(f"x must have k*p = {k * p} columns for blocks1 of shape {w1.shape}, got shape {x.shape}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k * p)
    shape = tuple(lead) + (l * s,)
    if out is None:
        out = np.empty(shape, dtype=dt)
    else:
        _check_out(out, shape, dt, {"x": x, "blocks1": w1, "blocks2": w2})
    if x2.shape[0] == 0:
        return out
    target = out.reshape(-1, l * s)
    if not np.shares_memory(target, out) or any(st % out.itemsize for st in target.strides):
        target = np.empty((x2.shape[0], l * s), dtype=dt)
    f = _g.monarch_f32 if dt == np.float32 else _g.monarch_f64
    f(x2, w1, w2, target)
    if not np.shares_memory(target, out):
        out[...] = target.reshape(shape)
    return out


def monarch_dense(blocks1, blocks2):
    """The dense (l*s) x (k*p) matrix of the Monarch product, so ``monarch_matmul(x) == x @ M.T``.

    Parameters
    ----------
    blocks1 : array_like, shape (k, q, p)
    blocks2 : array_like, shape (l, s, r), ``l * r == k * q``

    Returns
    -------
    M : ndarray, shape (l * s, k * p)

    Raises
    ------
    ValueError
        Incompatible block shapes.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> kf.gemm.monarch_dense(np.ones((2, 2, 2)), np.ones((2, 2, 2))).shape
    (4, 4)
    """
    dt, w1, w2 = _monarch_args(np.zeros(0), blocks1, blocks2)
    k, q, p = w1.shape
    return monarch_matmul(np.eye(k * p, dtype=dt), w1, w2).T.copy()


# ----------------------------------------------------------------------------- sampled products
@dataclasses.dataclass(frozen=True, repr=False)
class ApproxInfo(Result):
    """How an :func:`approx_matmul` estimate was formed.

    Attributes
    ----------
    indices : ndarray of int
        Inner indices used: the deterministic set first, then the sampled ones (with repetition).
    scales : ndarray
        The weight of each used column-row pair in the estimate.
    n_deterministic : int
        Size of the deterministic (winner-take-all) set ``|C|`` (0 for CRS).
    mass_deterministic : float
        ``P_C``, the sampling probability mass of that set.
    variance : float
        Closed-form expected squared Frobenius error ``E ||est - A @ B||_F^2`` of the estimator.
    probabilities : ndarray
        The column-row probabilities ``p_i = ||A[:, i]|| ||B[i, :]|| / sum_j (...)``.
    """

    indices: np.ndarray
    scales: np.ndarray
    n_deterministic: int
    mass_deterministic: float
    variance: float
    probabilities: np.ndarray


def approx_matmul(A, B, k, method="wta_crs", seed=None, return_info=False):
    """Unbiased sampled estimate of ``A @ B`` from ``k`` column-row pairs.

    Parameters
    ----------
    A : array_like, shape (m, d)
    B : array_like, shape (d, n)
    k : int
        Column-row pairs used (k >= 1; may exceed d, sampling is with replacement).
    method : {"wta_crs", "crs"}
        ``"crs"``: i.i.d. sampling with ``p_i`` proportional to ``||A[:, i]|| ||B[i, :]||``.
        ``"wta_crs"``: keep the top-|C| pairs exactly (the size chosen by the paper's rule) and
        sample the rest from the remaining mass.
    seed : int or numpy.random.SeedSequence, optional
        Same seed, same estimate (None means 0).
    return_info : bool
        Also return an :class:`ApproxInfo`.

    Returns
    -------
    est : ndarray, shape (m, n)
    info : ApproxInfo
        Only with ``return_info=True``.

    Raises
    ------
    ValueError
        Incompatible shapes, ``k < 1``, empty or non-finite inputs, unknown ``method``.
    TypeError
        Non-real dtypes, non-integer ``k``.

    Notes
    -----
    CRS [1]_: ``est = (1/k) sum_t A[:, j_t] B[j_t, :] / p_{j_t}``, unbiased, with
    ``E||est - AB||_F^2 = ((sum_i a_i)^2 - ||AB||_F^2) / k`` where ``a_i = ||A[:, i]|| ||B[i, :]||``.
    WTA-CRS [2]_: with C the |C| most probable indices and ``P_C`` their mass,
    ``est = sum_{c in C} A[:, c] B[c, :] + ((1 - P_C)/s) sum_t A[:, j_t] B[j_t, :] / p_{j_t}``, the
    ``s = k - |C|`` samples drawn from p restricted to the complement of C; its error is
    ``((1 - P_C)^2 (sum a)^2 - ||sum_{j not in C} A[:, j] B[j, :]||_F^2) / s``. |C| minimises
    ``(1 - P_C) / (k - |C|)`` over 1..k-1, and CRS is used when that minimum exceeds ``1/k``.
    Both become one GEMM of depth k on the gathered, pre-scaled columns.

    References
    ----------
    .. [1] P. Drineas, R. Kannan, M. Mahoney, SIAM J. Comput. 36(1), 2006.
    .. [2] Z. Liu et al., "Winner-Take-All Column Row Sampling for Memory Efficient Adaptation of
       Language Model", NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np, kernforge as kf
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((20, 50)); B = rng.standard_normal((50, 10))
    >>> est = kf.gemm.approx_matmul(A, B, k=50, seed=1)
    >>> est.shape
    (20, 10)
    >>> bool(np.array_equal(est, kf.gemm.approx_matmul(A, B, k=50, seed=1)))
    True
    """
    check_choice(method, "method", ("wta_crs", "crs"))
    k = check_int(k, "k", minimum=1)
    seed = check_seed(seed)
    dt = _compute_dtype(A=A, B=B)
    A = _as_operand(A, "A", dt, ndim=2)
    B = _as_operand(B, "B", dt, ndim=2)
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A and B have incompatible shapes {A.shape} and {B.shape}")
    if A.size == 0 or B.size == 0:
        raise ValueError(f"A and B must not be empty, got shapes {A.shape} and {B.shape}")
    for name, X in (("A", A), ("B", B)):
        if not np.isfinite(X).all():
            raise ValueError(f"{name} must be finite for sampling probabilities")
    a = np.linalg.norm(A, axis=0).astype(np.float64) * np.linalg.norm(B, axis=1).astype(np.float64)
    total = float(a.sum())
    m, n = A.shape[0], B.shape[1]
    rng = np.random.default_rng(seed)
    if total == 0.0:
        est = np.zeros((m, n), dtype=dt)
        info = ApproxInfo(np.zeros(0, np.int64), np.zeros(0), 0, 0.0, 0.0, np.zeros_like(a))
        return (est, info) if return_info else est
    p = a / total
    n_det, p_c, det = 0, 0.0, np.zeros(0, dtype=np.int64)
    if method == "wta_crs" and k > 1:
        order = np.argsort(-p, kind="stable")
        csum = np.cumsum(p[order])[: k - 1]
        c_sizes = np.arange(1, len(csum) + 1)
        crit = (1.0 - csum) / (k - c_sizes)
        best = int(np.argmin(crit))
        if crit[best] <= 1.0 / k:
            n_det = int(c_sizes[best])
            det = order[:n_det]
            p_c = float(p[det].sum())
    s = k - n_det
    rest_mass = 1.0 - p_c
    q = p.copy()
    q[det] = 0.0
    q_sum = q.sum()
    if q_sum > 0 and s > 0:
        q /= q_sum
        samp = rng.choice(len(p), size=s, replace=True, p=q)
        samp_scale = (rest_mass / s) / p[samp]
        rest_frob = np.linalg.norm(A.astype(np.float64) @ B.astype(np.float64)
                                   - A[:, det].astype(np.float64) @ B[det].astype(np.float64)) ** 2 if return_info else None
    else:
        samp = np.zeros(0, dtype=np.int64)
        samp_scale = np.zeros(0)
        rest_frob = 0.0
    idx = np.concatenate([det, samp]).astype(np.int64)
    scales = np.concatenate([np.ones(n_det), samp_scale])
    As = A[:, idx] * scales.astype(dt)
    est = matmul(As, np.ascontiguousarray(B[idx]))
    if not return_info:
        return est
    if s > 0 and q_sum > 0:
        var = (rest_mass ** 2 * total ** 2 - rest_frob) / s
    else:
        var = 0.0
    info = ApproxInfo(idx, scales, n_det, p_c, max(float(var), 0.0), p)
    return est, info


# ----------------------------------------------------------------------------- tile study
@dataclasses.dataclass(frozen=True, repr=False)
class TileSweep(Result):
    """Measured GEMM speed over shapes and tile configurations (from :func:`tile_sweep`).

    Attributes
    ----------
    records : list of dict
        One per (shape, configuration): ``m, n, k, dtype, threads, isa, mr, nr, mc, kc, nc,
        seconds, gflops, default``; for a ``device="cuda"`` sweep ``m, n, k, dtype, device, tile,
        micro, seconds, gflops, default``.
    cpu : str
        The CPU model the sweep ran on (the GPU's name for a ``device="cuda"`` sweep).
    """

    records: list
    cpu: str

    def best(self, m, n, k):
        """The fastest record for one shape."""
        rows = [r for r in self.records if (r["m"], r["n"], r["k"]) == (m, n, k)]
        if not rows:
            raise KeyError(f"shape {(m, n, k)} was not swept")
        return max(rows, key=lambda r: r["gflops"])

    def table(self):
        """The records as aligned text, one line per (shape, configuration), fastest first per shape."""
        if self.records and all("tile" in r for r in self.records):
            cols = ("m", "n", "k", "dtype", "device", "tile", "micro", "gflops")
        else:
            cols = ("m", "n", "k", "dtype", "threads", "mr", "nr", "mc", "kc", "nc", "pack_a", "gflops")
        rows = sorted(self.records, key=lambda r: (r["m"], r["n"], r["k"], -r["gflops"]))
        cells = [[f"{r[c]:.2f}" if c == "gflops" else str(r[c]) for c in cols] for r in rows]
        width = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(cols)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(cols, width))]
        lines += ["  ".join(x.rjust(w) for x, w in zip(cell, width)) for cell in cells]
        return "\n".join(lines)

    def speedup_range(self, m, n, k):
        """Fastest / slowest configuration for one shape (the paper's "tile choice moves speed by")."""
        g = [r["gflops"] for r in self.records if (r["m"], r["n"], r["k"]) == (m, n, k)]
        return max(g) / min(g)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _default_grid(dtype):
    ks = kernels(dtype)
    grid = []
    for kern in ks:
        for mc in (48, 96, 144, 240):
            for kc in (128, 256, 384, 512):
                grid.append({"mr": kern["mr"], "nr": kern["nr"], "mc": mc, "kc": kc, "nc": kern["nc"]})
    for pa in (0, 1):
        d = ks[0]
        grid.append({"mr": d["mr"], "nr": d["nr"], "mc": d["mc"], "kc": d["kc"], "nc": d["nc"], "pack_a": pa})
    return grid


def _timed(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def _interleaved(calls, repeats, min_time=2e-3):
    """Best time of each callable, timed round-robin so that machine noise hits all alike.

    Each sample repeats a call enough times to last about ``min_time`` (the timer and the call
    overhead otherwise dominate microsecond products).
    """
    inner = []
    for c in calls:
        t0 = time.perf_counter()
        c()
        dt = time.perf_counter() - t0
        inner.append(max(1, min(1000, int(math.ceil(min_time / max(dt, 1e-7))))))
    times = [[] for _ in calls]
    for _ in range(repeats):
        for i, c in enumerate(calls):
            t0 = time.perf_counter()
            for _ in range(inner[i]):
                c()
            times[i].append((time.perf_counter() - t0) / inner[i])
    # The minimum: on a shared machine noise only ever adds time, and it comes in bursts that
    # medians of a few samples do not remove (measured: 5x spreads under a load of 3 per core).
    return [min(t) for t in times]


def tile_sweep(shapes, tiles=None, dtype=np.float64, threads=None, repeats=3, seed=0, device="cpu"):
    """Measure GEMM speed over a grid of tile sizes (the paper's sweep, on the CPU or the GPU).

    Parameters
    ----------
    shapes : sequence of (m, n, k)
    tiles : sequence of dict, optional
        Configurations (keys as in :func:`matmul`'s ``tiles``). Default: every compiled kernel of
        the active SIMD level x MC in {48, 96, 144, 240} x KC in {128, 256, 384, 512}, plus
        packed/unpacked A at the default blocking. With ``device="cuda"``: ``{"tile": t, "micro": u}``
        (see :func:`matmul`); the default sweeps every pair that fits, ``micro=1`` being the
        paper's kernel.
    dtype : {numpy.float32, numpy.float64}
    threads : int, optional
        Thread count for the sweep (default: the current setting).
    repeats : int
        Timed runs per configuration; configurations are interleaved and the fastest run kept
        (noise on a shared machine only adds time).
    seed : int
        Seed of the random operands.
    device : {"cpu", "cuda"}
        ``"cuda"`` times the tiled CUDA kernel alone on operands already on the GPU (CUDA events,
        no host transfers; the measurement of [1]_), ``repeats`` timed launches after two warm-up
        launches, median kept. Needs :func:`cuda_available`.

    Returns
    -------
    TileSweep
        ``records`` (one dict per shape and configuration, with ``seconds`` and ``gflops``).

    Raises
    ------
    ValueError
        Empty or non-positive shapes, bad tiles, ``device="cuda"`` without a CUDA build or GPU.

    References
    ----------
    .. [1] "Understanding GEMM Performance and Energy on NVIDIA Ada Lovelace: A Machine
       Learning-Based Analytical Approach".

    Examples
    --------
    >>> import kernforge as kf
    >>> sw = kf.gemm.tile_sweep([(64, 64, 64)], tiles=[{"kc": 64}, {"kc": 32}], repeats=1)
    >>> len(sw.records)
    2
    >>> sw.table().split()[:4]
    ['m', 'n', 'k', 'dtype']
    """
    from ._threads import threads as _threads_ctx

    check_choice(device, "device", ("cpu", "cuda"))
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    shapes = [tuple(int(check_int(v, "shape entry", minimum=1)) for v in s) for s in shapes]
    if not shapes or any(len(s) != 3 for s in shapes):
        raise ValueError("shapes must be a non-empty sequence of (m, n, k) triples")
    if device == "cuda":
        return _cuda_tile_sweep(shapes, tiles, dt, repeats, seed)
    grid = list(tiles) if tiles is not None else _default_grid(dt)
    if not grid:
        raise ValueError("tiles must not be empty")
    grid = [_check_tiles(t) for t in grid]
    repeats = check_int(repeats, "repeats", minimum=1)
    nthreads = _core.get_num_threads() if threads is None else check_int(threads, "threads", minimum=1)
    rng = np.random.default_rng(seed)
    defaults = kernels(dt)[0]
    records = []
    isa = _core.active_isa()
    with _threads_ctx(nthreads):
        for (m, n, k) in shapes:
            A = rng.standard_normal((m, k)).astype(dt)
            B = rng.standard_normal((k, n)).astype(dt)
            C = np.empty((m, n), dt)
            calls = [(lambda t=t: _g.matmul(A, B, C, 1.0, 0.0, t)) for t in grid]
            meds = _interleaved(calls, repeats)
            for t, sec in zip(grid, meds):
                full = {key: t.get(key, defaults.get(key)) for key in ("mr", "nr", "mc", "kc", "nc")}
                full["pack_a"] = t.get("pack_a", -1)
                rec = {"m": m, "n": n, "k": k, "dtype": dt.name, "threads": nthreads, "isa": isa, **full,
                       "seconds": sec, "gflops": 2.0 * m * n * k / sec / 1e9,
                       "default": all(full[key] == defaults[key] for key in ("mr", "nr", "mc", "kc", "nc"))
                       and full["pack_a"] == -1}
                records.append(rec)
    return TileSweep(records, _cpu_model())


_CUDA_DEFAULT = {"tile": 16, "micro": 4}


def _cuda_tile(tiles, dt):
    """(tile, micro) of a ``device="cuda"`` tiles dict; missing keys take the defaults."""
    if not tiles:
        return _CUDA_DEFAULT["tile"], _CUDA_DEFAULT["micro"]
    if not isinstance(tiles, dict):
        raise ValueError(f"tiles must be a dict like {{'tile': 16, 'micro': 4}}, got {type(tiles).__name__}")
    extra = set(tiles) - {"tile", "micro"}
    if extra:
        raise ValueError(f"on device='cuda', tiles takes only 'tile' (8, 16 or 32) and 'micro' (1, 2, 4 or 8), "
                         f"got keys {sorted(extra)}")
    tile = check_int(tiles.get("tile", _CUDA_DEFAULT["tile"]), "tiles['tile']")
    if tile not in (8, 16, 32):
        raise ValueError(f"tiles['tile'] must be 8, 16 or 32, got {tile}")
    if "micro" in tiles:
        micro = check_int(tiles["micro"], "tiles['micro']")
    else:
        # The default, or the largest below it that fits this tile (float64 32 x 4 does not).
        micro = next(u for u in (4, 2, 1) if (tile, u) in _cuda_pairs(dt))
    if micro not in (1, 2, 4, 8):
        raise ValueError(f"tiles['micro'] must be 1, 2, 4 or 8, got {micro}")
    if (tile, micro) not in _cuda_pairs(dt):
        ok = [f"{t}x{u}" for t, u in _cuda_pairs(dt)]
        raise ValueError(f"tiles tile={tile}, micro={micro} does not fit one block's 48 KiB of shared memory "
                         f"(or a block tile of 128) for {dt.name}; pairs that fit: {', '.join(ok)}")
    return tile, micro


def _cuda_pairs(dt):
    """Every (tile, micro) whose shared-memory tiles fit one block for dtype ``dt``."""
    return [(t, u) for t in (8, 16, 32) for u in (1, 2, 4, 8) if _g.cuda_fits(dt == np.float32, t, u)]


def _check_gpu_dims(m, n, k):
    if max(m, n, k) >= 2**31:
        raise ValueError(f"dimensions must be below 2^31 on the GPU, got {(m, n, k)}")


def _require_cuda():
    if not hasattr(_g, "cuda_matmul_f32"):
        raise ValueError("device='cuda' needs kernforge built with KF_CUDA=ON; this build has no CUDA")
    if _core.build_config.get("cuda_devices", 0) <= 0:
        raise ValueError("device='cuda': kernforge was built with CUDA but sees no GPU")


def _cuda_tile_sweep(shapes, tiles, dt, repeats, seed):
    _require_cuda()
    if tiles is None:
        grid = _cuda_pairs(dt)
    else:
        grid = [_cuda_tile(t, dt) for t in tiles]
    if not grid:
        raise ValueError("tiles must not be empty")
    repeats = check_int(repeats, "repeats", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    for shape in shapes:
        _check_gpu_dims(*shape)
    records = []
    for (m, n, k) in shapes:
        for tile, micro in grid:
            ms = _g.cuda_time(m, n, k, dt.name, tile, micro, 2, repeats, seed)
            sec = float(np.median(ms)) / 1e3
            records.append({"m": m, "n": n, "k": k, "dtype": dt.name, "device": "cuda", "tile": tile, "micro": micro,
                            "seconds": sec, "gflops": 2.0 * m * n * k / sec / 1e9,
                            "default": (tile, micro) == (_CUDA_DEFAULT["tile"], _CUDA_DEFAULT["micro"])})
    return TileSweep(records, _g.cuda_device_name())


_L1, _L2, _L3 = 32 * 1024, 512 * 1024, 32 * 1024 * 1024


def _cache_sizes():
    sizes = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for idx in os.listdir(base):
            d = os.path.join(base, idx)
            with open(os.path.join(d, "level")) as f:
                lvl = int(f.read())
            with open(os.path.join(d, "type")) as f:
                typ = f.read().strip()
            with open(os.path.join(d, "size")) as f:
                s = f.read().strip()
            mult = 1024 if s.endswith("K") else 1024 * 1024 if s.endswith("M") else 1
            val = int(s.rstrip("KM")) * mult
            if typ in ("Data", "Unified"):
                sizes[lvl] = val
    except (OSError, ValueError):
        pass
    return sizes.get(1, _L1), sizes.get(2, _L2), sizes.get(3, _L3)


def _blocking(m, n, k, mr, nr, mc, kc, nc):
    """Effective block sizes and block counts of the Goto loop nest for one problem."""
    kc_e, mc_e, nc_e = min(kc, k), min(mc, m), min(nc, n)
    # padded extents: the micro-kernel always computes full MR x NR tiles
    mp, np_ = math.ceil(m / mr) * mr, math.ceil(n / nr) * nr
    return kc_e, mc_e, nc_e, mp, np_


def _analytic_seconds(m, n, k, s, threads, mr, nr, mc, kc, nc):
    """Cheap roofline-plus-overhead estimate of one GEMM's runtime (seconds).

    Compute on the padded micro-tiles at a nominal per-core peak, memory traffic of the Goto loop
    nest (B packed once, A packed once per NC panel, C read and written once per KC panel) at a
    nominal bandwidth, and a fixed cost per micro-kernel call and per packing call. The constants
    are deliberately round: the forest learns the correction, the estimate supplies the scaling.
    """
    kc_e, mc_e, nc_e, mp, np_ = _blocking(m, n, k, mr, nr, mc, kc, nc)
    peak = (100e9 if s == 4 else 50e9) * threads
    t_flop = 2.0 * mp * np_ * k / peak
    nk, nn, nm = math.ceil(k / kc_e), math.ceil(n / nc_e), math.ceil(m / mc_e)
    mem = s * (k * n + m * k * nn + 2.0 * m * n * nk)
    # A blocks stream from L2 once per NR column strip, B strips from L1/L2 once per MR row strip
    l2 = s * mp * k * (np_ / nr)
    t_mem = mem / 10e9 + l2 / (100e9 * threads)
    t_over = (math.ceil(m / mr) * math.ceil(n / nr) * nk * 15e-9 + nk * nn * (1 + nm) * 200e-9) / threads + 2e-6
    return t_flop + t_mem + t_over


def tile_features(m, n, k, dtype, threads, mr, nr, mc, kc, nc, pack_a=-1):
    """Problem and tile features for :class:`TileModel` (one row).

    Problem: log2 m, n, k, bytes per element, threads, log2 flops, log2 bytes moved (one pass
    over A, B and C), log2 arithmetic intensity. Tile: MR, NR, log2 MC, KC, NC; cache footprints
    relative to this CPU's caches (``/sys``; default 32 KiB L1d, 512 KiB L2, 32 MiB L3) of the
    B micro-panel (KC*NR) and A micro-panel (MR*KC) in L1, the A block (MC*KC) in L2 and the B
    panel (KC*NC) in L3; edge waste (padded / true work) of the MR, NR, MC, KC tilings; row blocks
    per thread and whether that leaves a thread idle; log2 of packing and micro-kernel calls;
    the A-packing flag; and log2 of the analytic runtime estimate (roofline plus call overheads,
    see ``_analytic_seconds``).

    Examples
    --------
    >>> import kernforge as kf
    >>> len(kf.gemm.tile_features(100, 100, 100, "float64", 1, 6, 8, 96, 256, 4080))
    27
    """
    s = np.dtype(dtype).itemsize
    l1, l2, l3 = _cache_sizes()
    flops = 2.0 * m * n * k
    byts = s * (m * k + k * n + 2.0 * m * n)
    kc_e, mc_e, nc_e, mp, np_ = _blocking(m, n, k, mr, nr, mc, kc, nc)

    def waste(x, b):  # padded work / true work along one dimension (>= 1)
        return math.ceil(x / b) * b / x

    row_blocks = math.ceil(m / mc_e)
    kern_calls = math.ceil(m / mr) * math.ceil(n / nr) * math.ceil(k / kc_e)
    pack_calls = math.ceil(k / kc_e) * math.ceil(n / nc_e) * (1 + row_blocks)
    est = _analytic_seconds(m, n, k, s, threads, mr, nr, mc, kc, nc)
    return [math.log2(m), math.log2(n), math.log2(k), s, threads, math.log2(flops), math.log2(byts),
            math.log2(flops / byts), mr, nr, math.log2(mc), math.log2(kc), math.log2(nc),
            kc_e * nr * s / l1, mr * kc_e * s / l1, mc_e * kc_e * s / l2, kc_e * nc_e * s / l3,
            waste(m, mr), waste(n, nr), waste(m, mc_e), waste(k, kc_e),
            row_blocks / threads, float(row_blocks % threads != 0 and row_blocks < 4 * threads),
            math.log2(pack_calls), math.log2(kern_calls), float(pack_a), math.log2(est)]


def _ranks(x):
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(len(x))
    # average ranks over ties, so that a constant prediction gets no credit
    for v in np.unique(x):
        idx = np.flatnonzero(x == v)
        if len(idx) > 1:
            r[idx] = r[idx].mean()
    return r


def _spearman(a, b):
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den > 0 else 0.0


@dataclasses.dataclass(frozen=True, repr=False)
class TileValidation(Result):
    """Held-out-shape validation of a :class:`TileModel` (every test shape is absent from training).

    Attributes
    ----------
    r2_log_time : float
        R^2 of predicted vs measured log runtime over all held-out rows (the paper's metric; it is
        dominated by the spread of problem sizes, so it says little about tile choice).
    r2_log_gflops : float
        R^2 of log GFLOP/s over the same rows.
    mean_rel_error : float
        Mean |predicted - measured| / measured runtime.
    rank_corr : float
        Mean over held-out shapes of the Spearman correlation of predicted vs measured speed over
        the tile grid (the metric that matters for choosing tiles; 0 is chance).
    top1_regret : float
        Geometric mean over held-out shapes of measured time of the model's pick / best measured time
        (1 is perfect).
    max_regret : float
        The worst shape's regret.
    default_regret : float
        The same ratio for the default tiles (the baseline the model has to beat).
    top3_regret : float
        Geometric mean of best measured time among the model's top 3 and the default tiles / best
        measured time: what :func:`autotune` (``top=3``) would get if its own timing were exact.
    train_shapes, test_shapes : list of tuple
        (m, n, k) of the two disjoint sets.
    """

    r2_log_time: float
    r2_log_gflops: float
    mean_rel_error: float
    rank_corr: float
    top1_regret: float
    max_regret: float
    default_regret: float
    top3_regret: float
    train_shapes: list
    test_shapes: list


class TileModel:
    """Random-forest model of GEMM runtime over problem and tile features (after [1]_).

    Parameters
    ----------
    n_estimators : int
        Trees (the paper: 100).
    max_depth : int or None
        Tree depth (the paper: 6; deeper fits the CPU data better).
    random_state : int

    Attributes
    ----------
    validation_ : TileValidation or None
        Held-out-shape scores (set by :meth:`fit` when ``holdout > 0``): R^2 of log runtime (the
        paper's metric), and per held-out shape the rank correlation over the tile grid and the
        top-1 regret of the model's pick.
    r2_ : float
        R^2 of log GFLOP/s on the held-out shapes (kept for compatibility; see ``validation_``).
    mean_rel_error_ : float
        Mean |predicted - measured| / measured runtime on the held-out shapes.
    test_shapes_ : list of tuple
        The held-out shapes.

    Notes
    -----
    The paper [1]_ fits ``RandomForestRegressor(100 trees, max_depth 6)`` on (m, n, k, tile
    dims, arithmetic intensity, bytes, flops) with a random 80/20 row split, and reports R^2 of
    log runtime. Two changes make the CPU model useful for choosing tiles. (1) The forest learns
    the residual ``log t - log t_est`` of an analytic estimate (padded flops at a nominal peak,
    Goto-loop memory traffic, per-call overheads): trees cannot extrapolate, the estimate carries
    the scaling with problem size, the forest the corrections. (2) Validation holds out whole
    shapes, and besides the paper's R^2 (which the spread of problem sizes alone makes high)
    reports what tile choice needs: within each unseen shape, the rank correlation of predicted
    vs measured speed over the grid and the regret of the top pick. Needs scikit-learn (the
    ``tune`` extra).

    References
    ----------
    .. [1] "Understanding GEMM Performance and Energy on NVIDIA Ada Lovelace: A Machine
       Learning-Based Analytical Approach" (runtime R^2 0.98).

    Examples
    --------
    >>> import kernforge as kf
    >>> sw = kf.gemm.tile_sweep([(32, 32, 32), (64, 48, 40), (40, 64, 64), (48, 48, 48)],
    ...                         tiles=[{"kc": 32}, {"kc": 64}, {}], repeats=1)
    >>> model = kf.gemm.TileModel(n_estimators=10).fit(sw, holdout=0.25)
    >>> model.predict_gflops(64, 64, 64, "float64", 1, [{"kc": 32}]).shape
    (1,)
    >>> 0 <= model.validation_.top1_regret - 1 < 10
    True
    """

    def __init__(self, n_estimators=100, max_depth=None, random_state=0):
        self.n_estimators = check_int(n_estimators, "n_estimators", minimum=1)
        self.max_depth = None if max_depth is None else check_int(max_depth, "max_depth", minimum=1)
        self.random_state = random_state
        self.validation_ = None
        self.r2_ = None
        self.mean_rel_error_ = None
        self.test_shapes_ = []
        self._est = None

    @staticmethod
    def _x(m, n, k, dtype, threads, tiles):
        d = kernels(dtype)[0]
        X, base = [], []
        for t in tiles:
            full = {key: t.get(key, d[key]) for key in ("mr", "nr", "mc", "kc", "nc")}
            X.append(tile_features(m, n, k, dtype, threads, full["mr"], full["nr"], full["mc"], full["kc"],
                                   full["nc"], t.get("pack_a", -1)))
            base.append(X[-1][-1] * math.log(2.0))  # natural log of the analytic estimate
        return np.array(X, dtype=np.float64), np.array(base)

    @classmethod
    def _xy(cls, records):
        X = [tile_features(r["m"], r["n"], r["k"], r["dtype"], r["threads"], r["mr"], r["nr"], r["mc"], r["kc"],
                           r["nc"], r.get("pack_a", -1)) for r in records]
        X = np.array(X, dtype=np.float64)
        base = X[:, -1] * math.log(2.0)
        y = np.log([r["seconds"] for r in records])
        return X, y, base

    def _new(self):
        try:
            from sklearn.ensemble import RandomForestRegressor
        except ImportError:  # pragma: no cover - sklearn is a test dependency
            raise ImportError("TileModel needs scikit-learn: pip install 'kernforge[tune]'") from None
        return RandomForestRegressor(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                     random_state=self.random_state)

    @staticmethod
    def _shape_key(r):
        return (r["m"], r["n"], r["k"], r["dtype"], r["threads"])

    def fit(self, sweep, holdout=0.25):
        """Fit on a :class:`TileSweep` (or its records), holding out a fraction of whole shapes.

        The held-out scores go to ``validation_`` (a :class:`TileValidation`); the final model is
        then refit on every record.
        """
        records = sweep.records if isinstance(sweep, TileSweep) else list(sweep)
        if not records:
            raise ValueError("sweep has no records")
        holdout = check_real(holdout, "holdout")
        if not 0 <= holdout < 1:
            raise ValueError(f"holdout must lie in [0, 1), got {holdout}")
        shapes = sorted({self._shape_key(r) for r in records})
        n_test = int(round(holdout * len(shapes)))
        if holdout > 0 and len(shapes) >= 2:
            n_test = min(max(n_test, 1), len(shapes) - 1)
            rng = np.random.default_rng(self.random_state)
            test = {shapes[i] for i in rng.choice(len(shapes), size=n_test, replace=False)}
            tr = [r for r in records if self._shape_key(r) not in test]
            te = [r for r in records if self._shape_key(r) in test]
            Xtr, ytr, btr = self._xy(tr)
            est = self._new().fit(Xtr, ytr - btr)
            self.validation_ = self._validate(est, te, sorted({s[:3] for s in shapes if s not in test}))
            self.r2_ = self.validation_.r2_log_gflops
            self.mean_rel_error_ = self.validation_.mean_rel_error
            self.test_shapes_ = self.validation_.test_shapes
        X, y, base = self._xy(records)
        self._est = self._new().fit(X, y - base)
        return self

    def _validate(self, est, te, train_shapes):
        Xte, yte, bte = self._xy(te)
        pred = est.predict(Xte) + bte
        logflops = np.log([2.0 * r["m"] * r["n"] * r["k"] for r in te])

        def r2(p, y):
            ss_tot = float(((y - y.mean()) ** 2).sum())
            return 1.0 - float(((p - y) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")

        keys = [self._shape_key(r) for r in te]
        rhos, regrets, dregrets, t3regrets = [], [], [], []
        for key in sorted(set(keys)):
            idx = np.array([i for i, kk in enumerate(keys) if kk == key])
            meas = yte[idx]
            rhos.append(_spearman(-pred[idx], -meas))
            regrets.append(math.exp(meas[np.argmin(pred[idx])] - meas.min()))
            dflt = [i for i in idx if te[i].get("default")]
            if dflt:
                dregrets.append(math.exp(yte[dflt[0]] - meas.min()))
            pool = list(idx[np.argsort(pred[idx], kind="stable")[:3]]) + dflt[:1]
            t3regrets.append(math.exp(min(yte[i] for i in pool) - meas.min()))
        gmean = (lambda v: float(math.exp(np.mean(np.log(v)))) if v else float("nan"))
        return TileValidation(
            r2_log_time=r2(pred, yte), r2_log_gflops=r2(logflops - pred, logflops - yte),
            mean_rel_error=float(np.mean(np.abs(np.exp(pred - yte) - 1.0))),
            rank_corr=float(np.mean(rhos)), top1_regret=gmean(regrets), max_regret=float(max(regrets)),
            default_regret=gmean(dregrets), top3_regret=gmean(t3regrets), train_shapes=train_shapes,
            test_shapes=sorted({kk[:3] for kk in keys}))

    def predict_seconds(self, m, n, k, dtype, threads, tiles):
        """Predicted runtime (seconds) of each configuration in ``tiles`` (list of dicts) for one problem."""
        if self._est is None:
            raise ValueError("TileModel is not fitted; call fit(sweep) first")
        X, base = self._x(m, n, k, dtype, threads, tiles)
        return np.exp(self._est.predict(X) + base)

    def predict_gflops(self, m, n, k, dtype, threads, tiles):
        """Predicted GFLOP/s of each configuration in ``tiles`` (list of dicts) for one problem."""
        return 2.0 * m * n * k / self.predict_seconds(m, n, k, dtype, threads, tiles) / 1e9


def tile_cache_path():
    """Where :func:`autotune` keeps its winners: ``$KERNFORGE_CACHE_DIR/gemm_tiles.json``, else
    ``$XDG_CACHE_HOME/kernforge/gemm_tiles.json``, else ``~/.cache/kernforge/gemm_tiles.json``.
    The file is a small JSON dict, safe to delete.

    Examples
    --------
    >>> import kernforge as kf
    >>> kf.gemm.tile_cache_path().endswith("gemm_tiles.json")
    True
    """
    base = os.environ.get("KERNFORGE_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "kernforge")
    return os.path.join(base, "gemm_tiles.json")


def _cache_key(m, n, k, dt, nthreads):
    return f"{_cpu_model()}|{_core.active_isa()}|{np.dtype(dt).name}|t{nthreads}|{m}x{n}x{k}"


def _cached_tiles(m, n, k, dt):
    hit = _load_cache(tile_cache_path()).get(_cache_key(m, n, k, dt, _core.get_num_threads()))
    return dict(hit["tiles"]) if hit and isinstance(hit.get("tiles"), dict) else None


def _load_cache(path):
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def autotune(shape, dtype=np.float64, threads=None, model=None, candidates=None, top=3, repeats=5, cache=True,
             seed=0, margin=0.03):
    """Choose tiles for one GEMM shape: rank candidates with a model, time the best few, cache the winner.

    Parameters
    ----------
    shape : (m, n, k)
    dtype : {numpy.float32, numpy.float64}
    threads : int, optional
        Thread count to tune for (default: the current setting).
    model : TileModel, optional
        Ranks ``candidates``; without one the first ``top`` candidates are timed.
    candidates : list of dict, optional
        Configurations to consider (default: the :func:`tile_sweep` grid).
    top : int
        How many ranked candidates to time; the default tiles are always timed too, so the
        result is never slower than the default beyond timing noise.
    repeats : int
        Interleaved timed runs per candidate (the fastest run of each is compared).
    cache : bool
        Read and write the JSON cache at :func:`tile_cache_path`, keyed by CPU model, SIMD level,
        dtype, threads and shape.
    seed : int
        Seed of the random operands.
    margin : float
        A candidate replaces the default tiles only if its best time is shorter by more than this
        fraction: on a shared machine smaller wins are mostly timing noise (measured: repeat
        sweeps of one shape disagree on the fastest tiles by about 2%).

    Returns
    -------
    dict
        ``{"tiles": dict for matmul(..., tiles=...), "gflops": float, "default_gflops": float,
        "cached": bool}``.

    Raises
    ------
    ValueError
        Bad shape, ``top < 1``.

    Examples
    --------
    >>> import kernforge as kf
    >>> r = kf.gemm.autotune((64, 64, 64), candidates=[{"kc": 32}], repeats=1, cache=False)
    >>> sorted(r)
    ['cached', 'default_gflops', 'gflops', 'tiles']
    """
    from ._threads import threads as _threads_ctx

    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    if len(shape) != 3:
        raise ValueError(f"shape must be (m, n, k), got {shape!r}")
    m, n, k = (check_int(v, "shape entry", minimum=1) for v in shape)
    top = check_int(top, "top", minimum=1)
    margin = check_real(margin, "margin")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must lie in [0, 1), got {margin}")
    nthreads = _core.get_num_threads() if threads is None else check_int(threads, "threads", minimum=1)
    key = _cache_key(m, n, k, dt, nthreads)
    path = tile_cache_path()
    if cache:
        hit = _load_cache(path).get(key)
        if hit is not None:
            return {**hit, "cached": True}
    cands = [_check_tiles(t) for t in (candidates if candidates is not None else _default_grid(dt))]
    if model is not None and cands:
        pred = model.predict_gflops(m, n, k, dt.name, nthreads, cands)
        order = np.argsort(-pred, kind="stable")
        cands = [cands[i] for i in order[:top]]
    else:
        cands = cands[:top]
    cands = [{}] + [c for c in cands if c]
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, k)).astype(dt)
    B = rng.standard_normal((k, n)).astype(dt)
    C = np.empty((m, n), dt)
    with _threads_ctx(nthreads):
        meds = _interleaved([(lambda t=t: _g.matmul(A, B, C, 1.0, 0.0, t)) for t in cands], repeats)
    best = int(np.argmin(meds))
    if meds[best] > (1.0 - margin) * meds[0]:
        best = 0
    flops = 2.0 * m * n * k
    res = {"tiles": cands[best], "gflops": flops / meds[best] / 1e9, "default_gflops": flops / meds[0] / 1e9}
    if cache:
        data = _load_cache(path)
        data[key] = res
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + f".{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home must not break tuning
    return {**res, "cached": False}
