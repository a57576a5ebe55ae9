"""kf.gemm against NumPy (float64/longdouble references), closed forms and statistics."""
import json
import math

import numpy as np
import pytest

import kernforge as kf
from kernforge import _core

ISAS = ["generic", "avx2"] if _core.detected_isa() in ("avx2", "avx512") else ["generic"]
if _core.detected_isa() == "avx512":
    ISAS.append("avx512")


@pytest.fixture(params=ISAS)
def isa(request):
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa("")


def ref(A, B, alpha=1.0, beta=0.0, C=None):
    R = alpha * (np.asarray(A, np.longdouble) @ np.asarray(B, np.longdouble))
    if beta != 0.0:
        R = R + beta * np.asarray(C, np.longdouble)
    return R


def tol(dtype, k, A, B):
    eps = np.finfo(dtype).eps
    scale = (np.abs(np.asarray(A, np.float64)) @ np.abs(np.asarray(B, np.float64))) if A.size and B.size else 0
    return 2 * max(k, 1) * eps * (np.max(scale) if np.size(scale) else 0) + 4 * eps


def check(out, R, dtype, k, A, B, extra=0.0):
    err = np.max(np.abs(np.asarray(out, np.longdouble) - R)) if out.size else 0.0
    assert err <= tol(dtype, k, A, B) + extra, (err, tol(dtype, k, A, B))


SIZES = [1, 2, 3, 7, 17, 63, 65, 257]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_odd_shapes_all_isas(isa, dtype, rng):
    for m, n, k in [(1, 1, 1), (7, 7, 7), (63, 65, 17), (65, 63, 257), (257, 3, 65), (2, 257, 63),
                    (17, 1, 300), (1, 300, 2), (300, 257, 7)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        out = kf.gemm.matmul(A, B)
        assert out.dtype == dtype and out.shape == (m, n)
        check(out, ref(A, B), dtype, k, A, B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_size_grid_vs_numpy(dtype, rng):
    for m in SIZES[::2]:
        for n in SIZES[1::2]:
            for k in (1, 63, 65):
                A = rng.standard_normal((m, k)).astype(dtype)
                B = rng.standard_normal((k, n)).astype(dtype)
                check(kf.gemm.matmul(A, B), ref(A, B), dtype, k, A, B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocking_edges_explicit_tiles(isa, dtype, rng):
    # Dimensions around MR, NR, MC, KC of the default kernel and of small explicit blocks.
    ks = kf.gemm.kernels(dtype)
    d = ks[0]
    tiles = {"mc": 2 * d["mr"], "kc": 16, "nc": 2 * d["nr"]}
    for m, n, k in [(d["mr"] + 1, d["nr"] - 1, 15), (2 * d["mr"] + 1, 2 * d["nr"] + 1, 33),
                    (d["mr"] - 1, 3 * d["nr"] + 1, 17), (5 * d["mr"], 5 * d["nr"], 64)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        for extra in ({}, {"pack_a": 0}, {"pack_a": 1}):
            check(kf.gemm.matmul(A, B, tiles={**tiles, **extra}), ref(A, B), dtype, k, A, B)
    for kern in ks:  # every compiled micro-kernel of this ISA
        A = rng.standard_normal((50, 40)).astype(dtype)
        B = rng.standard_normal((40, 45)).astype(dtype)
        check(kf.gemm.matmul(A, B, tiles={"mr": kern["mr"], "nr": kern["nr"]}), ref(A, B), dtype, 40, A, B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order_a, order_b, order_c", [("C", "C", "C"), ("F", "C", "F"), ("C", "F", "C"),
                                                       ("F", "F", "F")])
def test_orders_strides_transposes(isa, dtype, order_a, order_b, order_c, rng):
    m, n, k = 37, 29, 41
    A = np.array(rng.standard_normal((m, k)), dtype=dtype, order=order_a)
    B = np.array(rng.standard_normal((k, n)), dtype=dtype, order=order_b)
    C0 = np.array(rng.standard_normal((m, n)), dtype=dtype, order=order_c)
    C = C0.copy(order=order_c)
    out = kf.gemm.matmul(A, B, out=C, alpha=-2.5, beta=0.5)
    assert out is C
    check(C, ref(A, B, -2.5, 0.5, C0), dtype, k, A, B)
    # transposes are views, no copy
    At = np.array(A.T, order=order_b)
    Bt = np.array(B.T, order=order_a)
    check(kf.gemm.matmul(At, Bt, trans_a=True, trans_b=True), ref(A, B), dtype, k, A, B)
    # strided and negative-stride slices, and a strided out
    big_a = np.array(rng.standard_normal((2 * m, 3 * k)), dtype=dtype)
    big_b = np.array(rng.standard_normal((3 * k, 2 * n)), dtype=dtype)
    As, Bs = big_a[::2, ::3], big_b[::-3, 1::2]
    outbig = np.zeros((3 * m, 2 * n), dtype=dtype)
    o = outbig[::3, ::-2]
    kf.gemm.matmul(As, Bs, out=o)
    check(o, ref(As, Bs), dtype, k, As, Bs)
    assert np.all(outbig[1::3] == 0)  # nothing outside the view written


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_beta_semantics(dtype, rng):
    A = rng.standard_normal((20, 30)).astype(dtype)
    B = rng.standard_normal((30, 25)).astype(dtype)
    for alpha in (0.0, 1.0, -2.5):
        for beta in (0.0, 1.0, 0.5):
            C0 = rng.standard_normal((20, 25)).astype(dtype)
            C = C0.copy()
            kf.gemm.matmul(A, B, out=C, alpha=alpha, beta=beta)
            check(C, ref(A, B, alpha, beta, C0), dtype, 30, A, B, extra=4 * np.finfo(dtype).eps * np.abs(C0).max())


def test_special_values():
    A = np.ones((4, 3))
    B = np.ones((3, 5))
    C = np.full((4, 5), np.nan)
    kf.gemm.matmul(A, B, out=C, beta=0.0)  # beta = 0 never reads C
    assert np.all(C == 3.0)
    An = A.copy()
    An[1, 2] = np.nan
    out = kf.gemm.matmul(An, np.zeros((3, 5)))  # NaN * 0 = NaN (zero blocks are not skipped)
    assert np.all(np.isnan(out[1])) and np.all(out[[0, 2, 3]] == 0)
    Ai = A.copy()
    Ai[0, 0] = np.inf
    out = kf.gemm.matmul(Ai, np.zeros((3, 5)))  # Inf * 0 = NaN, like OpenBLAS
    assert np.all(np.isnan(out[0]))
    # alpha = 0: C = beta * C and A, B are not read (reference BLAS / OpenBLAS behaviour)
    C = np.full((4, 5), 2.0)
    kf.gemm.matmul(An, B, out=C, alpha=0.0, beta=3.0)
    assert np.all(C == 6.0)
    C = np.full((4, 5), np.nan)
    kf.gemm.matmul(An, B, out=C, alpha=0.0, beta=0.0)
    assert np.all(C == 0.0)
    # NaN in C with beta != 0 propagates
    C = np.ones((4, 5))
    C[2, 3] = np.nan
    kf.gemm.matmul(A, B, out=C, beta=1.0)
    assert np.isnan(C[2, 3]) and np.isfinite(C).sum() == 19


def test_zero_size_dims():
    out = kf.gemm.matmul(np.ones((0, 3)), np.ones((3, 4)))
    assert out.shape == (0, 4)
    out = kf.gemm.matmul(np.ones((3, 0)), np.ones((0, 4)))
    assert out.shape == (3, 4) and np.all(out == 0)
    C = np.full((3, 4), 2.0)
    kf.gemm.matmul(np.ones((3, 0)), np.ones((0, 4)), out=C, beta=0.5)
    assert np.all(C == 1.0)
    assert kf.gemm.matmul(np.ones((2, 3)), np.ones((3, 0))).shape == (2, 0)


def test_dtype_policy(rng):
    A32 = rng.standard_normal((5, 6)).astype(np.float32)
    B64 = rng.standard_normal((6, 7))
    out = kf.gemm.matmul(A32, B64)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, A32.astype(np.float64) @ B64, rtol=1e-12, atol=1e-12)
    Ai = np.arange(30).reshape(5, 6)
    out = kf.gemm.matmul(Ai, B64)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, Ai @ B64, rtol=1e-12)
    out = kf.gemm.matmul(A32, B64.astype(np.float32))
    assert out.dtype == np.float32
    with pytest.raises(TypeError, match="A must have a real numeric dtype"):
        kf.gemm.matmul(A32.astype(np.complex64), B64)
    with pytest.raises(TypeError, match="dtype"):
        kf.gemm.matmul(A32, B64, out=np.empty((5, 7), np.float32))


def test_bad_input():
    A, B = np.ones((3, 4)), np.ones((5, 6))
    with pytest.raises(ValueError, match="incompatible shapes"):
        kf.gemm.matmul(A, B)
    with pytest.raises(ValueError, match="2-D"):
        kf.gemm.matmul(np.ones(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match="out must have shape"):
        kf.gemm.matmul(A, np.ones((4, 2)), out=np.empty((3, 3)))
    X = np.ones((4, 4))
    with pytest.raises(ValueError, match="overlap A"):
        kf.gemm.matmul(X, np.ones((4, 4)), out=X)
    with pytest.raises(ValueError, match="overlap B"):
        kf.gemm.matmul(np.ones((4, 4)), X[:, :], out=X)
    ro = np.empty((3, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        kf.gemm.matmul(A, np.ones((4, 2)), out=ro)
    with pytest.raises(ValueError, match="beta != 0 needs out"):
        kf.gemm.matmul(A, np.ones((4, 2)), beta=1.0)
    with pytest.raises(ValueError, match="alpha must be finite"):
        kf.gemm.matmul(A, np.ones((4, 2)), alpha=np.nan)
    with pytest.raises(ValueError, match="unknown key"):
        kf.gemm.matmul(A, np.ones((4, 2)), tiles={"foo": 1})
    with pytest.raises(ValueError, match="micro-kernel"):
        kf.gemm.matmul(A, np.ones((4, 2)), tiles={"mr": 5, "nr": 5})
    with pytest.raises(ValueError, match="tiles\\['kc'\\] must be >= 1"):
        kf.gemm.matmul(A, np.ones((4, 2)), tiles={"kc": 0})
    if not kf.gemm.cuda_available():
        with pytest.raises(ValueError, match="CUDA"):
            kf.gemm.matmul(A, np.ones((4, 2)), device="cuda")
    with pytest.raises(ValueError, match="device"):
        kf.gemm.matmul(A, np.ones((4, 2)), device="tpu")
    with pytest.raises(TypeError, match="sparse"):
        import scipy.sparse as sp

        kf.gemm.matmul(sp.eye(3), np.ones((3, 3)))
    # a result too large for the index type: clear error, no allocation attempted
    big_a = np.broadcast_to(np.float64(1.0), (2**40, 2))
    big_b = np.broadcast_to(np.float64(1.0), (2, 2**40))
    with pytest.raises(ValueError, match="index type"):
        kf.gemm.matmul(big_a, big_b)


def test_overlap_of_disjoint_halves_is_fine(rng):
    buf = rng.standard_normal((8, 8))
    A = buf[:4]
    out = buf[4:]
    expect = A @ np.eye(8)
    kf.gemm.matmul(A, np.eye(8), out=out)
    np.testing.assert_array_equal(buf[4:], expect)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_bitwise_identical(isa, dtype, rng):
    # (130, 70, 1100): several default depth blocks (evened out over k), C accumulated across them.
    for (m, n, k) in [(300, 200, 300), (7, 500, 33), (1000, 16, 64), (130, 70, 1100)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        with kf.threads(1):
            r1 = kf.gemm.matmul(A, B)
        with kf.threads(2):
            r2 = kf.gemm.matmul(A, B)
            r3 = kf.gemm.matmul(A, B)
        assert np.array_equal(r1, r2) and np.array_equal(r2, r3)
        check(r1, ref(A, B), dtype, k, A, B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threads_many_depth_and_column_blocks(isa, dtype, rng):
    # Small kc/nc give many depth and column blocks, so the threaded driver's ring of three B~
    # buffers wraps several times; (9, 2000, 130) has too few rows per thread and splits columns.
    tiles = {"kc": 24, "nc": 48}
    for (m, n, k) in [(203, 150, 300), (9, 2000, 130)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        with kf.threads(1):
            r1 = kf.gemm.matmul(A, B, tiles=tiles)
        with kf.threads(2):
            r2 = kf.gemm.matmul(A, B, tiles=tiles)
        assert np.array_equal(r1, r2)
        check(r2, ref(A, B), dtype, k, A, B)


def test_hypothesis_shapes_strides():
    hyp = pytest.importorskip("hypothesis", reason="property tests need hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hyp.settings(max_examples=40, deadline=None)
    @hyp.given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(0, 40), ta=st.booleans(),
               tb=st.booleans(), step=st.integers(1, 3), f32=st.booleans(), seed=st.integers(0, 2**31))
    def run(m, n, k, ta, tb, step, f32, seed):
        r = np.random.default_rng(seed)
        dt = np.float32 if f32 else np.float64
        A = r.standard_normal((k, m * step) if ta else (m * step, k)).astype(dt)
        A = A[:, ::step] if ta else A[::step]
        B = r.standard_normal((n, k) if tb else (k, n)).astype(dt)
        out = kf.gemm.matmul(A, B, trans_a=ta, trans_b=tb)
        Ae, Be = (A.T if ta else A), (B.T if tb else B)
        check(out, ref(Ae, Be), dt, k, Ae, Be)

    run()


# ----------------------------------------------------------------------------- batched
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_fixed_and_generic_sizes(isa, dtype, rng):
    for (m, n, k) in [(16, 16, 16), (32, 32, 32), (4, 8, 16), (8, 32, 4), (9, 9, 9), (3, 5, 7), (16, 12, 16),
                      (1, 1, 1)]:
        A = rng.standard_normal((13, m, k)).astype(dtype)
        B = rng.standard_normal((13, k, n)).astype(dtype)
        out = kf.gemm.batched_matmul(A, B)
        ref_ = np.matmul(A.astype(np.longdouble), B.astype(np.longdouble))
        assert out.shape == (13, m, n) and out.dtype == dtype
        eps = np.finfo(dtype).eps
        assert np.max(np.abs(out - ref_)) <= 4 * k * eps * np.max(np.abs(A).max() * np.abs(B).max() * k) + 1e-30


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_broadcast_strides_alpha_beta(dtype, rng):
    A = rng.standard_normal((4, 1, 16, 16)).astype(dtype)
    B = rng.standard_normal((3, 16, 16)).astype(dtype)  # broadcasts against A's batch dims
    out = kf.gemm.batched_matmul(A, B)
    np.testing.assert_allclose(out, np.matmul(A, B), rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-4 if dtype == np.float32 else 1e-12)
    assert out.shape == (4, 3, 16, 16)
    # shared 2-D operand (stride-0 batch), non-contiguous stack, F-ordered matrices
    W = rng.standard_normal((8, 8)).astype(dtype)
    X = np.asfortranarray(rng.standard_normal((10, 8, 8)).astype(dtype)[::2])
    C0 = rng.standard_normal((5, 8, 8)).astype(dtype)
    C = C0.copy()
    kf.gemm.batched_matmul(X, W, out=C, alpha=2.0, beta=-1.0)
    np.testing.assert_allclose(C, 2 * np.matmul(X, W) - C0, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
    # beta = 0 never reads out
    C = np.full((5, 8, 8), np.nan, dtype=dtype)
    kf.gemm.batched_matmul(X, W, out=C)
    assert np.isfinite(C).all()


def test_batched_threads_identical_and_edges(rng):
    A = rng.standard_normal((200, 16, 16))
    B = rng.standard_normal((200, 16, 16))
    with kf.threads(1):
        r1 = kf.gemm.batched_matmul(A, B)
    with kf.threads(2):
        r2 = kf.gemm.batched_matmul(A, B)
    assert np.array_equal(r1, r2)
    assert kf.gemm.batched_matmul(np.ones((0, 2, 3)), np.ones((3, 4))).shape == (0, 2, 4)
    assert kf.gemm.batched_matmul(np.ones((1, 2, 3)), np.ones((1, 3, 4))).shape == (1, 2, 4)
    z = kf.gemm.batched_matmul(np.ones((2, 2, 0)), np.ones((2, 0, 4)))
    assert np.all(z == 0)
    with pytest.raises(ValueError, match="incompatible matrix shapes"):
        kf.gemm.batched_matmul(np.ones((2, 3, 4)), np.ones((2, 5, 4)))
    with pytest.raises(ValueError, match="do not broadcast"):
        kf.gemm.batched_matmul(np.ones((2, 3, 4)), np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="at least 2-D"):
        kf.gemm.batched_matmul(np.ones(3), np.ones((3, 3)))
    X = np.ones((2, 4, 4))
    with pytest.raises(ValueError, match="overlap"):
        kf.gemm.batched_matmul(X, np.ones((4, 4)), out=X)


# ----------------------------------------------------------------------------- Monarch
def monarch_reference(x, w1, w2):
    """fly/m2 blockdiag_butterfly_multiply_reference (version 2), in NumPy."""
    k, q, p = w1.shape
    l, s, r = w2.shape
    B = x.shape[0]
    xr = x.reshape(B, k, p)
    out1 = np.einsum("kqp,bkp->bkq", w1, xr).reshape(B, k * q)
    out1 = out1.reshape(B, r, l).transpose(0, 2, 1)  # 'b (r l) -> b l r'
    out2 = np.einsum("lsr,blr->bsl", w2, out1)
    return out2.reshape(B, s * l)


def monarch_dense_explicit(w1, w2):
    """P2 R2 P1 R1 built from explicit block-diagonal and permutation matrices."""
    import scipy.linalg as sl

    k, q, p = w1.shape
    l, s, r = w2.shape
    R1 = sl.block_diag(*w1)
    R2 = sl.block_diag(*w2)
    P1 = np.zeros((k * q, k * q))
    for f in range(k * q):  # u index f = rr*l + ll goes to position ll*r + rr
        rr, ll = divmod(f, l)
        P1[ll * r + rr, f] = 1
    P2 = np.zeros((l * s, l * s))
    for ll in range(l):
        for ss in range(s):
            P2[ss * l + ll, ll * s + ss] = 1
    return P2 @ R2 @ P1 @ R1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape1, shape2", [((4, 4, 4), (4, 4, 4)), ((8, 8, 8), (8, 8, 8)),
                                            ((4, 6, 3), (8, 5, 3)), ((2, 3, 5), (3, 7, 2)),
                                            ((16, 16, 16), (16, 16, 16))])
def test_monarch_matches_reference(isa, dtype, shape1, shape2, rng):
    w1 = rng.standard_normal(shape1).astype(dtype)
    w2 = rng.standard_normal(shape2).astype(dtype)
    n = shape1[0] * shape1[2]
    x = rng.standard_normal((37, n)).astype(dtype)
    y = kf.gemm.monarch_matmul(x, w1, w2)
    r = monarch_reference(x.astype(np.float64), w1.astype(np.float64), w2.astype(np.float64))
    tol_ = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(y, r, rtol=tol_, atol=tol_ * np.abs(r).max())
    M = monarch_dense_explicit(w1.astype(np.float64), w2.astype(np.float64))
    np.testing.assert_allclose(y, x.astype(np.float64) @ M.T, rtol=tol_, atol=tol_ * np.abs(r).max())
    np.testing.assert_allclose(kf.gemm.monarch_dense(w1, w2), M, rtol=tol_, atol=tol_ * np.abs(M).max())


def test_monarch_layouts_threads_errors(rng):
    w1 = rng.standard_normal((8, 8, 8))
    w2 = rng.standard_normal((8, 8, 8))
    x = np.asfortranarray(rng.standard_normal((300, 64)))
    with kf.threads(1):
        y1 = kf.gemm.monarch_matmul(x, w1, w2)
    with kf.threads(2):
        y2 = kf.gemm.monarch_matmul(x[:, :], np.asfortranarray(w1), w2[:, :, :])
    assert np.array_equal(y1, y2)
    np.testing.assert_allclose(y1, monarch_reference(np.ascontiguousarray(x), w1, w2), rtol=1e-11, atol=1e-11)
    # leading dims and a 1-D vector
    x3 = rng.standard_normal((2, 3, 64))
    assert kf.gemm.monarch_matmul(x3, w1, w2).shape == (2, 3, 64)
    np.testing.assert_allclose(kf.gemm.monarch_matmul(x3[0, 0], w1, w2), monarch_reference(x3[0, :1], w1, w2)[0])
    out = np.empty((300, 64))
    assert kf.gemm.monarch_matmul(x, w1, w2, out=out) is out
    with pytest.raises(ValueError, match="k\\*p"):
        kf.gemm.monarch_matmul(np.ones((3, 63)), w1, w2)
    with pytest.raises(ValueError, match="l\\*r == k\\*q"):
        kf.gemm.monarch_matmul(np.ones((3, 64)), w1, np.ones((4, 8, 8)))
    with pytest.raises(ValueError, match="3-D"):
        kf.gemm.monarch_matmul(np.ones((3, 64)), np.ones((8, 8)), w2)


# ----------------------------------------------------------------------------- CRS / WTA-CRS
def heavy_problem(rng, m=32, d=128, n=24):
    scales = rng.pareto(1.5, size=d) + 0.1
    A = rng.standard_normal((m, d)) * scales
    B = rng.standard_normal((d, n))
    return A, B


def closed_form(A, B, k, method):
    a = np.linalg.norm(A, axis=0) * np.linalg.norm(B, axis=1)
    tot = a.sum()
    p = a / tot
    AB = A @ B
    if method == "crs":
        return ((tot ** 2) - np.linalg.norm(AB) ** 2) / k, 0
    order = np.argsort(-p, kind="stable")
    best, bc = None, 0
    for c in range(1, k):
        v = (1 - p[order[:c]].sum()) / (k - c)
        if best is None or v < best:
            best, bc = v, c
    if best > 1 / k:
        return ((tot ** 2) - np.linalg.norm(AB) ** 2) / k, 0
    C = order[:bc]
    pc = p[C].sum()
    rest = AB - A[:, C] @ B[C]
    return ((1 - pc) ** 2 * tot ** 2 - np.linalg.norm(rest) ** 2) / (k - bc), bc


@pytest.mark.parametrize("method", ["crs", "wta_crs"])
def test_approx_unbiased_and_variance(method, rng):
    A, B = heavy_problem(rng)
    k = 24
    AB = A @ B
    T = 1500
    ests = np.stack([kf.gemm.approx_matmul(A, B, k, method=method, seed=s) for s in range(T)])
    var_cf, c = closed_form(A, B, k, method)
    _, info = kf.gemm.approx_matmul(A, B, k, method=method, seed=0, return_info=True)
    assert info.n_deterministic == c
    np.testing.assert_allclose(info.variance, var_cf, rtol=1e-9)
    mse = np.mean(np.sum((ests - AB) ** 2, axis=(1, 2)))
    assert abs(mse / var_cf - 1) < 0.12, (mse, var_cf)
    # unbiased: the mean error shrinks like sqrt(var / T)
    bias = np.linalg.norm(ests.mean(0) - AB)
    assert bias < 4 * np.sqrt(var_cf / T)


def test_wta_beats_crs_and_rules(rng):
    A, B = heavy_problem(rng)
    k = 24
    v_crs, _ = closed_form(A, B, k, "crs")
    _, info = kf.gemm.approx_matmul(A, B, k, method="wta_crs", return_info=True)
    assert info.n_deterministic > 0
    assert info.variance <= v_crs
    # uniform probabilities: no winner set (plain CRS)
    U = np.ones((5, 40))
    V = np.ones((40, 6))
    _, info_u = kf.gemm.approx_matmul(U, V, 10, method="wta_crs", return_info=True)
    assert info_u.n_deterministic == 0
    # reproducible by seed
    e1 = kf.gemm.approx_matmul(A, B, k, seed=7)
    e2 = kf.gemm.approx_matmul(A, B, k, seed=7)
    assert np.array_equal(e1, e2)
    # all mass in a few columns: exact
    Z = np.zeros((6, 30))
    Z[:, :3] = rng.standard_normal((6, 3))
    W = rng.standard_normal((30, 4))
    est = kf.gemm.approx_matmul(Z, W, 5, method="wta_crs")
    np.testing.assert_allclose(est, Z @ W, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="k must be >= 1"):
        kf.gemm.approx_matmul(A, B, 0)
    with pytest.raises(ValueError, match="method"):
        kf.gemm.approx_matmul(A, B, 3, method="topk")
    with pytest.raises(ValueError, match="finite"):
        kf.gemm.approx_matmul(np.full((2, 2), np.nan), np.ones((2, 2)), 1)
    with pytest.raises(ValueError, match="incompatible"):
        kf.gemm.approx_matmul(np.ones((2, 3)), np.ones((2, 2)), 1)


# ----------------------------------------------------------------------------- tile study
def test_tile_sweep_model_autotune(tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="TileModel needs scikit-learn")
    shapes = [(m, n, k) for m in (16, 96) for n in (24, 160) for k in (8, 128)]
    tiles = [{"kc": 32, "mc": 24}, {"kc": 128, "mc": 96}, {"pack_a": 0}, {"pack_a": 1}]
    sw = kf.gemm.tile_sweep(shapes, tiles=tiles, repeats=1)
    assert len(sw.records) == len(shapes) * len(tiles)
    assert all(r["gflops"] > 0 for r in sw.records)
    assert sw.best(16, 24, 8)["gflops"] >= min(r["gflops"] for r in sw.records if r["m"] == 16)
    assert sw.speedup_range(96, 160, 128) >= 1.0
    model = kf.gemm.TileModel(n_estimators=20).fit(sw, holdout=0.25)
    assert len(model.test_shapes_) == 2
    assert np.isfinite(model.mean_rel_error_)
    pred = model.predict_gflops(64, 64, 64, "float64", 1, tiles)
    assert pred.shape == (4,) and np.all(pred > 0)
    monkeypatch.setenv("KERNFORGE_CACHE_DIR", str(tmp_path))
    assert kf.gemm.tile_cache_path() == str(tmp_path / "gemm_tiles.json")
    r = kf.gemm.autotune((40, 50, 60), model=model, candidates=tiles, top=2, repeats=2)
    assert r["cached"] is False and set(r["tiles"]) <= {"mr", "nr", "mc", "kc", "nc", "pack_a"}
    r2 = kf.gemm.autotune((40, 50, 60), model=model, candidates=tiles, top=2, repeats=2)
    assert r2["cached"] is True and r2["tiles"] == r["tiles"]
    data = json.loads((tmp_path / "gemm_tiles.json").read_text())
    assert len(data) == 1
    A = np.ones((40, 60))
    np.testing.assert_allclose(kf.gemm.matmul(A, np.ones((60, 50)), tiles=r["tiles"]), 60.0)
    # tiles="auto" reads the cache (same thread count as the tuning run), defaults otherwise
    np.testing.assert_allclose(kf.gemm.matmul(A, np.ones((60, 50)), tiles="auto"), 60.0)
    assert kf.gemm._cached_tiles(40, 50, 60, np.float64) == r["tiles"]
    assert kf.gemm._cached_tiles(41, 50, 60, np.float64) is None
    with pytest.raises(ValueError, match="tiles must be one of"):
        kf.gemm.matmul(A, np.ones((60, 50)), tiles="fast")
    with pytest.raises(ValueError, match="not fitted"):
        kf.gemm.TileModel().predict_gflops(4, 4, 4, "float64", 1, [{}])
    with pytest.raises(ValueError, match="shape"):
        kf.gemm.autotune((1, 2))
    with pytest.raises(ValueError, match="margin"):
        kf.gemm.autotune((4, 4, 4), margin=1.5, cache=False)
    # a margin no candidate can clear keeps the default tiles
    r3 = kf.gemm.autotune((40, 50, 60), model=model, candidates=tiles, top=2, repeats=1, cache=False, margin=0.99)
    assert r3["tiles"] == {} and r3["gflops"] == r3["default_gflops"]


def _synthetic_sweep(shapes, tiles, seed=0):
    """Records whose runtime follows the analytic estimate times a tile-dependent factor plus noise."""
    rng = np.random.default_rng(seed)
    d = kf.gemm.kernels(np.float64)[0]
    recs = []
    for (m, n, k) in shapes:
        for t in tiles:
            full = {key: t.get(key, d[key]) for key in ("mr", "nr", "mc", "kc", "nc")}
            est = kf.gemm._analytic_seconds(m, n, k, 8, 1, *(full[c] for c in ("mr", "nr", "mc", "kc", "nc")))
            # a smooth "true" preference for kc close to k, which the features (kc/k via waste, footprints) expose
            sec = est * (1.0 + 0.5 * abs(math.log2(full["kc"] / max(k, 1)))) * math.exp(0.02 * rng.standard_normal())
            recs.append({"m": m, "n": n, "k": k, "dtype": "float64", "threads": 1, **full, "pack_a": -1,
                         "seconds": sec, "gflops": 2.0 * m * n * k / sec / 1e9, "default": not t})
    return recs


def test_tile_model_holds_out_whole_shapes_and_scores_ranking():
    pytest.importorskip("sklearn", reason="TileModel needs scikit-learn")
    rng = np.random.default_rng(3)
    shapes = sorted({tuple(int(v) for v in np.exp(rng.uniform(np.log(8), np.log(600), 3))) for _ in range(24)})
    tiles = [{"kc": kc, "mc": mc} for kc in (16, 64, 256) for mc in (48, 96)] + [{}]
    recs = _synthetic_sweep(shapes, tiles)
    model = kf.gemm.TileModel(n_estimators=30).fit(recs, holdout=0.25)
    v = model.validation_
    assert isinstance(v, kf.gemm.TileValidation) and "rank_corr" in repr(v)
    assert not set(v.test_shapes) & set(v.train_shapes)
    assert sorted(v.test_shapes + v.train_shapes) == sorted(shapes) and len(v.test_shapes) == 6
    assert -1 <= v.rank_corr <= 1 and 1 <= v.top1_regret <= v.max_regret and v.default_regret >= 1
    assert 1 <= v.top3_regret <= min(v.top1_regret, v.default_regret) + 1e-12
    assert -np.inf < v.r2_log_gflops <= 1 and v.r2_log_time <= 1 and v.mean_rel_error >= 0
    # the synthetic preference is learnable: the held-out ranking beats chance and the pick beats
    # the median configuration; log time spans orders of magnitude, so its R^2 is high
    assert v.rank_corr > 0.5 and v.r2_log_time > 0.9
    # predictions: seconds and GFLOP/s agree, and are positive
    sec = model.predict_seconds(100, 50, 70, "float64", 1, tiles)
    gf = model.predict_gflops(100, 50, 70, "float64", 1, tiles)
    np.testing.assert_allclose(gf, 2 * 100 * 50 * 70 / sec / 1e9)
    assert np.all(sec > 0)


def test_tile_features_in_range():
    f = kf.gemm.tile_features(100, 7, 300, "float32", 2, 6, 16, 96, 256, 4080)
    assert len(f) == 27 and all(np.isfinite(f))
    assert f[17] >= 1 and f[18] >= 1  # edge waste: padded / true work
    np.testing.assert_allclose(f[18], 16 / 7)
    assert kf.gemm._spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kf.gemm._spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kf.gemm._spearman([1, 1, 1], [3, 2, 1]) == 0.0


def test_kernels_listing():
    for dt in (np.float32, np.float64):
        ks = kf.gemm.kernels(dt, isa="generic")
        assert ks and all(k["isa"] == "generic" for k in ks)
    assert kf.gemm.kernels(np.float64)[0]["isa"] == _core.active_isa()
    with pytest.raises(TypeError, match="float32 or float64"):
        kf.gemm.kernels(np.int32)


@pytest.mark.skipif(not kf.gemm.cuda_available(), reason="needs a KF_CUDA=ON build and a visible GPU")
@pytest.mark.parametrize("tile", [8, 16, 32])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_tiled_matches_numpy(tile, dtype, rng):
    A = rng.standard_normal((67, 45)).astype(dtype)
    B = rng.standard_normal((33, 45)).astype(dtype)
    C0 = rng.standard_normal((67, 33)).astype(dtype)
    C = C0.copy()
    kf.gemm.matmul(A, B, out=C, alpha=2.0, beta=0.5, trans_b=True, device="cuda", tiles={"tile": tile})
    check(C, ref(A, B.T, 2.0, 0.5, C0), dtype, 45, A, B.T, extra=4 * np.finfo(dtype).eps * np.abs(C0).max())


def test_env_isa_override_generic_path():
    # KERNFORGE_ISA caps the dispatch level at import: the generic kernels then compute the product.
    import os
    import subprocess
    import sys

    code = ("import numpy as np, kernforge as kf; r = np.random.default_rng(0); "
            "A = r.standard_normal((70, 50)); B = r.standard_normal((50, 90)); "
            "assert kf._core.active_isa() == 'generic'; "
            "assert kf.gemm.kernels()[0]['isa'] == 'generic'; "
            "print(float(np.abs(kf.gemm.matmul(A, B) - A @ B).max()))")
    env = dict(os.environ, KERNFORGE_ISA="generic")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) < 1e-12


def test_tile_sweep_table_and_errors():
    sw = kf.gemm.tile_sweep([(16, 24, 8)], tiles=[{"kc": 8}, {"mc": 12}], repeats=1)
    lines = sw.table().splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "m"
    with pytest.raises(ValueError, match="shapes"):
        kf.gemm.tile_sweep([(4, 4)])
    with pytest.raises(ValueError, match="must be >= 1"):
        kf.gemm.tile_sweep([(0, 4, 4)])
    with pytest.raises(KeyError):
        sw.best(1, 2, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_path_strided_out_and_beta(isa, dtype, rng):
    # m, k <= 64 and n <= 128 with at most 32^3 multiply-adds take the unpacked tiny path.
    for (m, n, k) in [(9, 9, 9), (5, 100, 3), (64, 8, 64), (1, 128, 1)]:
        A = rng.standard_normal((k, m)).astype(dtype).T  # transposed view
        B = rng.standard_normal((k, 2 * n)).astype(dtype)[:, ::2]
        C0 = np.asfortranarray(rng.standard_normal((m, n)).astype(dtype))
        C = C0.copy(order="F")
        kf.gemm.matmul(A, B, out=C, alpha=1.5, beta=-0.5)
        check(C, ref(A, B, 1.5, -0.5, C0), dtype, k, A, B, extra=4 * np.finfo(dtype).eps * np.abs(C0).max())
        Cn = np.full((m, n), np.nan, dtype=dtype)
        kf.gemm.matmul(A, B, out=Cn)
        check(Cn, ref(A, B), dtype, k, A, B)
