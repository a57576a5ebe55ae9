"""Tests of kf.encoding against an independent NumPy reference, closed forms and finite differences."""
import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernforge as kf
from kernforge import encoding as E

PRIMES = np.array([1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737, 2971215073],
                  dtype=np.uint64)
CLASSES = {"simplex": E.SimplexHashEncoding, "grid": E.HashGridEncoding}


# ---------------------------------------------------------------------------- NumPy reference
def skew_consts(d):
    F = (np.sqrt(d + 1.0) - 1.0) / d
    inv_nu = (d + 1.0) ** (-1.0 / (2 * d))
    return F, inv_nu, (1.0 + d * F) * inv_nu


def ref_layout(kind, d, levels, F, log2T, base, b):
    T = 2 ** log2T
    R = skew_consts(d)[2] if kind == "simplex" else 1.0
    out, off = [], 0
    for l in range(levels):
        s = base * b ** l - 1.0
        res = int(np.floor(R * s + 0.5)) + 2
        dense = res ** d <= T
        rows = min(-(-res ** d // 8) * 8, T) if dense else T
        out.append(dict(scale=s, res=res, dense=dense, rows=rows, offset=off))
        off += rows
    return out, off


def ref_skew(kind, x):
    if kind == "grid":
        return x
    F, inv_nu, _ = skew_consts(x.shape[1])
    return (x + F * x.sum(axis=1, keepdims=True)) * inv_nu


def ref_vertices(kind, lv, xs):
    """Per level: list of (lattice vertex (n, d) int64, weight (n,)) pairs."""
    d = xs.shape[1]
    p = lv["scale"] * xs + 0.5
    c = np.clip(np.floor(p), 0, lv["res"] - 2).astype(np.int64)
    f = np.clip(p - c, 0.0, 1.0)
    if kind == "grid":
        verts = []
        for m in range(2 ** d):
            bits = np.array([(m >> i) & 1 for i in range(d)], dtype=np.int64)
            w = np.prod(np.where(bits == 1, f, 1.0 - f), axis=1)
            verts.append((c + bits, w))
        return verts
    order = np.argsort(-f, axis=1, kind="stable")
    fs = np.take_along_axis(f, order, axis=1)
    verts = [(c.copy(), 1.0 - fs[:, 0])]
    v = c.copy()
    rows = np.arange(len(xs))
    for k in range(1, d + 1):
        v = v.copy()
        v[rows, order[:, k - 1]] += 1
        w = fs[:, k - 1] - fs[:, k] if k < d else fs[:, d - 1]
        verts.append((v, w))
    return verts


def ref_row(lv, v, log2T):
    d = v.shape[1]
    if lv["dense"]:
        stride = lv["res"] ** np.arange(d, dtype=np.int64)
        return (v * stride).sum(axis=1)
    h = np.zeros(len(v), dtype=np.uint64)
    for i in range(d):
        h ^= (v[:, i].astype(np.uint64) * PRIMES[i]) & np.uint64(0xFFFFFFFF)
    return (h & np.uint64(2 ** log2T - 1)).astype(np.int64)


def ref_forward(kind, cfg, params, x):
    layout, _ = ref_layout(kind, **cfg)
    F = params.shape[1]
    xs = ref_skew(kind, x)
    out = np.zeros((len(x), len(layout) * F))
    for l, lv in enumerate(layout):
        for v, w in ref_vertices(kind, lv, xs):
            out[:, l * F:(l + 1) * F] += w[:, None] * params[lv["offset"] + ref_row(lv, v, cfg["log2T"])]
    return out


def ref_backward_params(kind, cfg, shape, x, g):
    layout, _ = ref_layout(kind, **cfg)
    F = shape[1]
    xs = ref_skew(kind, x)
    grad = np.zeros(shape)
    for l, lv in enumerate(layout):
        for v, w in ref_vertices(kind, lv, xs):
            np.add.at(grad, lv["offset"] + ref_row(lv, v, cfg["log2T"]), w[:, None] * g[:, l * F:(l + 1) * F])
    return grad


def make(kind, d, levels=4, F=2, log2T=10, base=4, b=2.0, dtype=np.float64, seed=0):
    enc = CLASSES[kind](d, levels=levels, features_per_level=F, log2_table_size=log2T, base_resolution=base,
                        per_level_scale=b, dtype=dtype, seed=seed)
    cfg = dict(d=d, levels=levels, F=F, log2T=log2T, base=base, b=b)
    return enc, cfg


KINDS = ["simplex", "grid"]
DIMS = [1, 2, 3, 4, 5, 6, 8]


# ---------------------------------------------------------------------------- layout and reference
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", DIMS)
def test_layout_matches_reference(kind, d):
    enc, cfg = make(kind, d, levels=6, log2T=12, base=3, b=1.7)
    layout, total = ref_layout(kind, **cfg)
    assert enc.params.shape == (total, 2)
    np.testing.assert_allclose(enc.level_scales, [lv["scale"] for lv in layout])
    np.testing.assert_array_equal(enc.level_resolutions, [lv["res"] for lv in layout])
    np.testing.assert_array_equal(enc.level_rows, [lv["rows"] for lv in layout])
    np.testing.assert_array_equal(enc.level_offsets, [lv["offset"] for lv in layout])
    np.testing.assert_array_equal(enc.level_dense, [lv["dense"] for lv in layout])
    assert enc.vertices_per_level == (d + 1 if kind == "simplex" else 2 ** d)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", DIMS)
def test_forward_and_table_gradient_match_numpy_reference(kind, d, rng):
    # levels of both kinds: dense coarse levels, hashed fine ones (checked below).
    enc, cfg = make(kind, d, levels=4, log2T={1: 3, 2: 6, 3: 9}.get(d, 11), base=3, b=2.0)
    assert enc.level_dense.any() or d > 4
    assert not enc.level_dense.all()
    enc.params[:] = rng.uniform(-1, 1, enc.params.shape)
    x = rng.random((200, d))
    x[:3] = [[0.0] * d, [1.0] * d, [0.5] * d]  # the boundary and a point on many simplex faces
    y = enc.forward(x)
    np.testing.assert_allclose(y, ref_forward(kind, cfg, enc.params, x), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(enc.backward(x, g), ref_backward_params(kind, cfg, enc.params.shape, x, g),
                               rtol=1e-11, atol=1e-11)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), d=st.integers(1, 8), n=st.integers(0, 40), F=st.integers(1, 5),
       order=st.sampled_from(["C", "F", "strided"]), seed=st.integers(0, 2**32 - 1))
def test_property_any_shape_and_layout_matches_reference(kind, d, n, F, order, seed):
    rng = np.random.default_rng(seed)
    enc, cfg = make(kind, d, levels=2, F=F, log2T=8, base=3, b=2.5)
    enc.params[:] = rng.uniform(-1, 1, enc.params.shape)
    x = rng.random((n, 2 * d))[:, ::2] if order == "strided" else np.array(rng.random((n, d)), order=order)
    y = enc.forward(x)
    assert y.shape == (n, 2 * F)
    np.testing.assert_allclose(y, ref_forward(kind, cfg, enc.params, np.ascontiguousarray(x)), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [2, 3, 5])
def test_float32_close_to_float64(kind, d, rng):
    e64, _ = make(kind, d, dtype=np.float64)
    e32, _ = make(kind, d, dtype=np.float32)
    e64.params[:] = rng.uniform(-1, 1, e64.params.shape)
    e32.params[:] = e64.params
    x = rng.random((300, d)).astype(np.float32)
    y32 = e32.forward(x)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, e64.forward(x.astype(np.float64)), atol=2e-5)


# ---------------------------------------------------------------------------- exactness
def lattice_positions(enc, kind, d):
    """x-space position of every dense row's lattice vertex, for a single dense level."""
    lv_res, s = int(enc.level_resolutions[0]), float(enc.level_scales[0])
    v = np.stack(np.unravel_index(np.arange(lv_res ** d), (lv_res,) * d, order="F"), axis=1).astype(float)
    xs = (v - 0.5) / s
    if kind == "grid":
        return xs
    F, inv_nu, _ = skew_consts(d)
    # inverse of x' = (x + F sum(x) 1) * inv_nu: x = x'/inv_nu - G sum(x'/inv_nu) with G = F / (1 + d F)
    u = xs / inv_nu
    return u - F / (1.0 + d * F) * u.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6])
def test_single_dense_level_reproduces_affine_functions(kind, d, rng):
    base = {1: 9, 2: 7, 3: 5, 4: 4, 5: 3, 6: 3}[d]
    enc, _ = make(kind, d, levels=1, F=3, log2T=20, base=base)
    assert enc.level_dense[0]
    pos = lattice_positions(enc, kind, d)
    A = rng.standard_normal((d, 3))
    c0 = rng.standard_normal(3)
    n_vert = pos.shape[0]
    enc.params[:] = 0.0
    enc.params[:n_vert] = pos @ A + c0
    x = rng.random((500, d))
    np.testing.assert_allclose(enc.forward(x), x @ A + c0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [1, 2, 3, 4, 6, 8])
def test_weights_are_a_partition_of_unity(kind, d, rng):
    enc, _ = make(kind, d, levels=3, F=1, log2T=12)
    x = rng.random((64, d))
    enc.params[:] = 1.0
    np.testing.assert_allclose(enc.forward(x), 1.0, atol=1e-13)
    # The weights of one point at one level are its table gradient for a one-hot grad_out.
    for i in range(8):
        for l in range(enc.levels):
            g = np.zeros((1, enc.output_dim))
            g[0, l] = 1.0
            w = enc.backward(x[i:i + 1], g)[:, 0]
            lo, n = enc.level_offsets[l], enc.level_rows[l]
            assert np.all(w >= 0)
            assert np.count_nonzero(w) <= enc.vertices_per_level
            assert np.count_nonzero(w[:lo]) + np.count_nonzero(w[lo + n:]) == 0
            assert w.sum() == pytest.approx(1.0, abs=1e-13)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [2, 3, 4])
def test_continuous_across_cell_and_simplex_faces(kind, d, rng):
    enc, _ = make(kind, d, levels=3, base=5)
    enc.params[:] = rng.uniform(-1, 1, enc.params.shape)
    x = rng.random((2000, d)) * 0.98 + 0.01
    dx = rng.standard_normal(x.shape)
    dx *= 1e-9 / np.linalg.norm(dx, axis=1, keepdims=True)
    diff = np.abs(enc.forward(x + dx) - enc.forward(x)).max()
    # Lipschitz bound: |table| <= 1, scale <= 19 (and the skew has norm <= sqrt(d + 1))
    assert diff < 1e-9 * 2 * enc.level_scales.max() * np.sqrt(d + 1) * d


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7])
def test_table_gradient_is_the_exact_directional_derivative(kind, d, rng):
    enc, _ = make(kind, d, levels=3, log2T=10)
    enc.params[:] = rng.uniform(-1, 1, enc.params.shape)
    x = rng.random((100, d))
    G = rng.standard_normal((100, enc.output_dim))
    grad = enc.backward(x, G)
    delta = rng.standard_normal(enc.params.shape)
    # the encoding is linear in the tables, so the finite difference is exact up to rounding
    lhs = (np.sum(G * enc.forward(x, params=enc.params + delta)) - np.sum(G * enc.forward(x)))
    assert lhs == pytest.approx(np.sum(grad * delta), rel=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", [1, 2, 3, 4, 6, 8])
def test_input_gradient_matches_finite_differences(kind, d, rng):
    enc, _ = make(kind, d, levels=3, log2T=10, base=3)
    enc.params[:] = rng.uniform(-1, 1, enc.params.shape)
    x = rng.random((60, d)) * 0.9 + 0.05
    G = rng.standard_normal((60, enc.output_dim))
    gp, gx = enc.backward(x, G, input_grad=True)
    assert gx.shape == x.shape
    h = 1e-7
    fd = np.empty_like(x)
    for a in range(d):
        e = np.zeros(d)
        e[a] = h
        fd[:, a] = (np.sum(G * enc.forward(x + e), axis=1) - np.sum(G * enc.forward(x - e), axis=1)) / (2 * h)
    # piecewise linear: central differences are exact unless a kink lies within h (rare)
    close = np.isclose(gx, fd, rtol=1e-5, atol=1e-5)
    assert close.mean() > 0.97
    assert np.allclose(np.median(np.abs(gx - fd)), 0, atol=1e-6)
    np.testing.assert_array_equal(gp, enc.backward(x, G))
    gp2, gx2 = enc.backward(x, G, input_grad=True, params_grad=False)
    assert gp2 is None
    np.testing.assert_array_equal(gx2, gx)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_identical_for_one_and_two_threads(kind, rng):
    enc = CLASSES[kind](3, levels=8, log2_table_size=12, seed=3)
    x = rng.random((20000, 3)).astype(np.float32)
    G = rng.standard_normal((20000, enc.output_dim)).astype(np.float32)
    with kf.threads(1):
        y1 = enc.forward(x)
        g1, gx1 = enc.backward(x, G, input_grad=True)
    with kf.threads(2):
        y2 = enc.forward(x)
        g2, gx2 = enc.backward(x, G, input_grad=True)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(gx1, gx2)
    # no lost updates: each level's gradient sums to the sum of its grad_out columns
    for l in range(enc.levels):
        lo, n = enc.level_offsets[l], enc.level_rows[l]
        np.testing.assert_allclose(g2[lo:lo + n].sum(axis=0, dtype=np.float64),
                                   G[:, 2 * l:2 * l + 2].sum(axis=0, dtype=np.float64), rtol=1e-3, atol=1e-2)


# ---------------------------------------------------------------------------- the API
def test_backward_out_accumulates_in_place(rng):
    enc = E.SimplexHashEncoding(3, levels=3, log2_table_size=10)
    x = rng.random((100, 3))
    G = rng.standard_normal((100, enc.output_dim)).astype(np.float32)
    ref = enc.backward(x, G)
    buf = np.ones_like(enc.params)
    res = enc.backward(x, G, out=buf)
    assert res is buf
    np.testing.assert_allclose(buf, ref + 1, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="out must be"):
        enc.backward(x, G, out=np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="out must be"):
        enc.backward(x, G, out=np.zeros(enc.params.shape))
    with pytest.raises(ValueError, match="params_grad"):
        enc.backward(x, G, out=buf, params_grad=False)


def test_params_are_read_by_forward_and_writable_in_place(rng):
    enc = E.SimplexHashEncoding(2, levels=2, log2_table_size=8)
    x = rng.random((10, 2))
    y0 = enc.forward(x)
    enc.params *= 0
    assert np.all(enc.forward(x) == 0)
    enc.params += 2.0
    np.testing.assert_allclose(enc.forward(x), 2.0, rtol=1e-6)
    enc.params = np.zeros_like(enc.params)
    assert np.all(enc.forward(x) == 0)
    assert not np.all(y0 == 0)
    with pytest.raises(ValueError, match="params must have shape"):
        enc.params = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="params must have dtype"):
        enc.params = np.zeros(enc.params.shape)


def test_layouts_and_dtypes_of_x(rng):
    enc = E.HashGridEncoding(3, levels=3, log2_table_size=10)
    x = rng.random((50, 3))
    y = enc.forward(x)
    np.testing.assert_array_equal(enc.forward(np.asfortranarray(x)), y)
    big = rng.random((50, 6))
    big[:, ::2] = x
    np.testing.assert_array_equal(enc.forward(big[:, ::2]), y)
    np.testing.assert_array_equal(enc.forward(x.tolist()), y)
    assert enc.forward(np.empty((0, 3))).shape == (0, enc.output_dim)
    assert enc.backward(np.empty((0, 3)), np.empty((0, enc.output_dim))).shape == enc.params.shape


def test_same_seed_same_tables():
    a = E.SimplexHashEncoding(3, seed=7, log2_table_size=10)
    b = E.SimplexHashEncoding(3, seed=7, log2_table_size=10)
    c = E.SimplexHashEncoding(3, seed=8, log2_table_size=10)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    assert np.abs(a.params).max() <= 1e-4
    assert "SimplexHashEncoding(dim=3" in repr(a)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_bad_points(cls):
    enc = cls(2, levels=2, log2_table_size=8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        enc.forward([[0.5, 1.0001]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        enc.forward([[-1e-9, 0.5]])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        enc.forward([[np.inf, 0.5]])
    with pytest.raises(ValueError, match="NaN"):
        enc.forward([[0.5, 0.5], [0.5, np.nan]])
    with pytest.raises(ValueError, match=r"x\[1, 1\]"):
        enc.backward([[0.5, 0.5], [0.5, np.nan]], np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        enc.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="2-D"):
        enc.forward(np.zeros(2))
    with pytest.raises(TypeError, match="x"):
        enc.forward(np.array([["a", "b"]], dtype=object))


@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_bad_grad_out(cls):
    enc = cls(2, levels=2, log2_table_size=8)
    x = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        enc.backward(x, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="grad_out must have shape"):
        enc.backward(x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="grad_out"):
        enc.backward(x, np.full((3, 4), np.nan))


@pytest.mark.parametrize("cls", list(CLASSES.values()))
def test_bad_configuration(cls):
    with pytest.raises(ValueError, match="dim"):
        cls(0)
    with pytest.raises(ValueError, match="dim"):
        cls(9)
    with pytest.raises(TypeError, match="dim"):
        cls(2.5)
    with pytest.raises(ValueError, match="log2_table_size"):
        cls(2, log2_table_size=31)
    with pytest.raises(ValueError, match="log2_table_size"):
        cls(2, log2_table_size=64)
    with pytest.raises(ValueError, match="2\\^31"):
        cls(3, levels=32, features_per_level=8, log2_table_size=30)
    with pytest.raises(ValueError, match="overflows"):
        cls(2, levels=64, per_level_scale=2.0)
    with pytest.raises(ValueError, match="base_resolution"):
        cls(2, base_resolution=0.5)
    with pytest.raises(ValueError, match="per_level_scale"):
        cls(2, per_level_scale=0.9)
    with pytest.raises(ValueError, match="levels"):
        cls(2, levels=0)
    with pytest.raises(TypeError, match="dtype"):
        cls(2, dtype=np.int32)


def test_core_layout_rejects_bad_arguments():
    # the C++ layer checks on its own (it is also the layer the torch module uses)
    with pytest.raises(ValueError, match="dim"):
        kf._core.encoding.Layout("simplex", 0, 4, 2, 10, 16.0, 1.5)
    with pytest.raises(ValueError, match="log2_table_size"):
        kf._core.encoding.Layout("grid", 2, 4, 2, 40, 16.0, 1.5)
    with pytest.raises(ValueError, match="kind"):
        kf._core.encoding.Layout("cube", 2, 4, 2, 10, 16.0, 1.5)


def test_docstring_examples_run():
    res = doctest.testmod(E, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 8
    assert res.failed == 0
