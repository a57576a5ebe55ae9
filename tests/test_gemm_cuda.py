"""kf.gemm on the GPU (device="cuda", KF_CUDA=ON builds) against NumPy in extended precision.

Every test but the first needs a CUDA build and a visible GPU and says so when skipped; CI machines
have neither, so there they check only that the CUDA entry points refuse with a clear error.
"""
import numpy as np
import pytest

import kernforge as kf

needs_gpu = pytest.mark.skipif(not kf.gemm.cuda_available(), reason="needs a KF_CUDA=ON build and a visible GPU")
DTYPES = [np.float32, np.float64]
# (tile, micro) pairs whose shared-memory tiles fit both dtypes (float64 drops 32x4); micro=1 is the paper's kernel.
PAIRS = [(8, 1), (8, 2), (8, 4), (8, 8), (16, 1), (16, 2), (16, 4), (16, 8), (32, 1), (32, 2)]


def ref(A, B, alpha=1.0, beta=0.0, C=None):
    R = alpha * (np.asarray(A, np.longdouble) @ np.asarray(B, np.longdouble))
    if beta != 0.0:
        R = R + beta * np.asarray(C, np.longdouble)
    return R


def assert_close(out, R, dtype, A, B, alpha=1.0, beta=0.0, C=None):
    """|out - R| within k eps (|alpha| |A||B| + |beta C|) elementwise: the forward error bound of a dot product."""
    eps = np.finfo(dtype).eps
    k = A.shape[1]
    bound = abs(alpha) * (np.abs(np.asarray(A, np.float64)) @ np.abs(np.asarray(B, np.float64)))
    if beta != 0.0:
        bound = bound + abs(beta) * np.abs(np.asarray(C, np.float64))
    err = np.abs(np.asarray(out, np.longdouble) - R)
    assert np.all(err <= 2 * (k + 2) * eps * bound + 4 * np.finfo(dtype).tiny), float(np.max(err))


@pytest.mark.skipif(kf.gemm.cuda_available(), reason="a GPU is visible: the refusal path cannot be reached here")
def test_cuda_refused_clearly_without_gpu():
    with pytest.raises(ValueError, match="CUDA|GPU"):
        kf.gemm.tile_sweep([(8, 8, 8)], device="cuda")
    with pytest.raises(ValueError, match="device"):
        kf.gemm.tile_sweep([(8, 8, 8)], device="tpu")


@needs_gpu
@pytest.mark.parametrize("tile,micro", PAIRS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_odd_shapes_alpha_beta(tile, micro, dtype, rng):
    for m, n, k in [(1, 1, 1), (7, 7, 7), (63, 65, 17), (65, 63, 257), (257, 3, 65), (2, 257, 63),
                    (33, 1, 300), (1, 300, 2)]:
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n)).astype(dtype)
        C0 = rng.standard_normal((m, n)).astype(dtype)
        out = kf.gemm.matmul(A, B, device="cuda", tiles={"tile": tile, "micro": micro})
        assert out.dtype == dtype and out.shape == (m, n)
        assert_close(out, ref(A, B), dtype, A, B)
        C = C0.copy()
        assert kf.gemm.matmul(A, B, out=C, alpha=-1.5, beta=0.25, device="cuda",
                              tiles={"tile": tile, "micro": micro}) is C
        assert_close(C, ref(A, B, -1.5, 0.25, C0), dtype, A, B, -1.5, 0.25, C0)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_tiles_give_identical_bits(dtype, rng):
    # Every configuration sums k in order with one FMA per term, so the bits agree.
    A = rng.standard_normal((200, 77)).astype(dtype)
    B = rng.standard_normal((77, 190)).astype(dtype)
    outs = [kf.gemm.matmul(A, B, device="cuda", tiles={"tile": t, "micro": u}) for t, u in PAIRS]
    for o in outs[1:]:
        assert np.array_equal(outs[0], o)


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_transposes_and_strided_out(dtype, rng):
    A = np.asfortranarray(rng.standard_normal((45, 31)).astype(dtype))
    Bt = rng.standard_normal((50, 62)).astype(dtype)[::2, ::2]          # (25, 31), strided
    out_big = rng.standard_normal((90, 50)).astype(dtype)
    parent0 = out_big.copy()
    out = out_big[::2, ::2]                                              # (45, 25), strided view
    C0 = out.copy()
    r = kf.gemm.matmul(A, Bt, out=out, alpha=2.0, beta=-1.0, trans_b=True, device="cuda")
    assert r is out
    assert_close(out, ref(A, Bt.T, 2.0, -1.0, C0), dtype, A, Bt.T, 2.0, -1.0, C0)
    At = np.ascontiguousarray(A.T)                                       # (31, 45)
    outF = np.asfortranarray(np.empty((45, 25), dtype))
    kf.gemm.matmul(At, Bt, out=outF, trans_a=True, trans_b=True, device="cuda", tiles={"tile": 8})
    assert_close(outF, ref(A, Bt.T), dtype, A, Bt.T)
    # The parent's entries outside the view stay as they were.
    outside = np.ones(out_big.shape, bool)
    outside[::2, ::2] = False
    assert np.array_equal(out_big[outside], parent0[outside])


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_blas_semantics_nan_zero_sizes(dtype, rng):
    A = rng.standard_normal((20, 9)).astype(dtype)
    B = rng.standard_normal((9, 11)).astype(dtype)
    C = np.full((20, 11), np.nan, dtype)
    kf.gemm.matmul(A, B, out=C, beta=0.0, device="cuda")           # beta == 0 never reads C
    assert np.all(np.isfinite(C))
    An = A.copy()
    An[3, 4] = np.nan
    R = kf.gemm.matmul(An, B, device="cuda")                        # NaN in A propagates to its row
    assert np.all(np.isnan(R[3])) and np.all(np.isfinite(np.delete(R, 3, axis=0)))
    C0 = rng.standard_normal((20, 11)).astype(dtype)
    C = C0.copy()
    kf.gemm.matmul(An, B, out=C, alpha=0.0, beta=2.0, device="cuda")  # alpha == 0 reads neither A nor B
    np.testing.assert_array_equal(C, 2 * C0)
    C = C0.copy()
    kf.gemm.matmul(np.empty((20, 0), dtype), np.empty((0, 11), dtype), out=C, beta=0.5, device="cuda")
    np.testing.assert_array_equal(C, 0.5 * C0)                      # k == 0: beta * C
    assert kf.gemm.matmul(np.empty((0, 9), dtype), B, device="cuda").shape == (0, 11)


@needs_gpu
def test_more_rows_than_one_launch_covers(rng):
    # gridDim.y caps one launch at 65535 row tiles (524280 rows at tile 8): taller products run in bands.
    m = 65535 * 8 + 1000
    A = rng.standard_normal((m, 3)).astype(np.float32)
    B = rng.standard_normal((3, 2)).astype(np.float32)
    out = kf.gemm.matmul(A, B, device="cuda", tiles={"tile": 8, "micro": 1})
    assert_close(out, ref(A, B), np.float32, A, B)
    # At micro 2 one launch covers every row: the same bits as the two bands at micro 1.
    out2 = kf.gemm.matmul(A, B, device="cuda", tiles={"tile": 8, "micro": 2})
    assert np.array_equal(out, out2)


@needs_gpu
def test_bad_input_on_device(rng):
    A = rng.standard_normal((8, 8))
    with pytest.raises(ValueError, match="tile"):
        kf.gemm.matmul(A, A, device="cuda", tiles={"tile": 12})
    with pytest.raises(ValueError, match="only 'tile'"):
        kf.gemm.matmul(A, A, device="cuda", tiles={"mc": 64})
    with pytest.raises(ValueError, match="micro"):
        kf.gemm.matmul(A, A, device="cuda", tiles={"tile": 16, "micro": 3})
    with pytest.raises(ValueError, match="does not fit.*16x8"):
        kf.gemm.matmul(A, A, device="cuda", tiles={"tile": 32, "micro": 4})   # float64: 66 KiB of tiles
    kf.gemm.matmul(A.astype(np.float32), A.astype(np.float32), device="cuda", tiles={"tile": 32, "micro": 4})
    # A tile alone takes the largest micro <= 4 that fits: 2 for float64 at tile 32.
    sw = kf.gemm.tile_sweep([(40, 40, 40)], tiles=[{"tile": 32}], dtype=np.float64, repeats=1, device="cuda")
    assert (sw.records[0]["tile"], sw.records[0]["micro"]) == (32, 2)
    with pytest.raises(ValueError, match="incompatible"):
        kf.gemm.matmul(A, np.ones((7, 3)), device="cuda")
    with pytest.raises(ValueError, match="overlap"):
        kf.gemm.matmul(A, A, out=A, device="cuda")
    with pytest.raises(ValueError, match="beta"):
        kf.gemm.matmul(A, A, beta=1.0, device="cuda")


@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_tile_sweep(dtype):
    sw = kf.gemm.tile_sweep([(96, 80, 64), (64, 64, 200)], dtype=dtype, repeats=3, device="cuda")
    pairs = PAIRS + ([(32, 4)] if dtype == np.float32 else [])
    assert sorted((r["tile"], r["micro"]) for r in sw.records if r["m"] == 96) == sorted(pairs) and sw.cpu
    assert sum(r["default"] for r in sw.records) == 2                       # 16x4, once per shape
    for r in sw.records:
        assert r["device"] == "cuda" and r["dtype"] == np.dtype(dtype).name
        assert r["seconds"] > 0 and np.isclose(r["gflops"], 2 * r["m"] * r["n"] * r["k"] / r["seconds"] / 1e9)
    assert sw.best(96, 80, 64)["tile"] in (8, 16, 32)
    assert sw.speedup_range(96, 80, 64) >= 1.0
    assert sw.table().split()[:8] == ["m", "n", "k", "dtype", "device", "tile", "micro", "gflops"]
    sw1 = kf.gemm.tile_sweep([(64, 64, 64)], tiles=[{"tile": 8, "micro": 1}, {"tile": 16}], dtype=dtype, device="cuda")
    assert [(r["tile"], r["micro"], r["default"]) for r in sw1.records] == [(8, 1, False), (16, 4, True)]
    with pytest.raises(ValueError, match="tile"):
        kf.gemm.tile_sweep([(8, 8, 8)], tiles=[{"tile": 4}], device="cuda")
