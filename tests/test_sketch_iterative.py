"""kf.sketch.sketch_and_project against numpy.linalg.solve / lstsq on SPD, non-symmetric and
indefinite (KKT) systems; determinism across thread counts; bad input."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import kernforge as kf
from kernforge import ConvergenceWarning

SKETCHES = ["gaussian", "count", "block_rows", "block_coords"]


def _orth(rng, n):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return Q


def nonsymmetric(rng, n, kappa=5.0):
    return _orth(rng, n) @ np.diag(np.linspace(1.0, kappa, n)) @ _orth(rng, n).T


def spd(rng, n, kappa=5.0):
    U = _orth(rng, n)
    return U @ np.diag(np.linspace(1.0, kappa, n)) @ U.T


def kkt(rng, n, m):
    H = spd(rng, n, 4.0)
    G = 0.5 * rng.standard_normal((m, n))
    return np.block([[H, G.T], [G, np.zeros((m, m))]])


@pytest.mark.parametrize("sketch", SKETCHES)
@pytest.mark.parametrize("kind", ["spd", "nonsymmetric", "kkt"])
def test_matches_numpy_solve(rng, sketch, kind):
    A = {"spd": lambda: spd(rng, 30), "nonsymmetric": lambda: nonsymmetric(rng, 30),
         "kkt": lambda: kkt(rng, 20, 8)}[kind]()
    if kind == "kkt":
        assert np.linalg.eigvalsh(A).min() < 0  # really indefinite
    b = rng.standard_normal(A.shape[0])
    res = kf.sketch.sketch_and_project(A, b, sketch=sketch, block=6, rtol=1e-11, max_iter=400000, seed=3)
    ref = np.linalg.solve(A, b)
    assert res.converged and res.status == "converged"
    assert np.linalg.norm(A @ res.x - b) <= 1.0001e-11 * np.linalg.norm(b)
    np.testing.assert_allclose(res.x, ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    assert res.residual == pytest.approx(np.linalg.norm(A @ res.x - b) / np.linalg.norm(b), rel=1e-6)
    assert res.checked_at[-1] == res.n_iter and len(res.residuals) == len(res.checked_at)


@pytest.mark.parametrize("sketch", SKETCHES)
def test_single_vector_sketches_and_momentum(rng, sketch):
    A = nonsymmetric(rng, 20, 3.0)
    b = rng.standard_normal(20)
    plain = kf.sketch.sketch_and_project(A, b, sketch=sketch, block=1, rtol=1e-9, seed=1)
    heavy = kf.sketch.sketch_and_project(A, b, sketch=sketch, block=1, rtol=1e-9, seed=1, momentum=0.3)
    for r in (plain, heavy):
        assert r.converged
        np.testing.assert_allclose(A @ r.x, b, atol=1e-8)
    assert heavy.n_iter < plain.n_iter  # heavy ball accelerates on this well-conditioned system


def test_float32_and_layouts(rng):
    A = nonsymmetric(rng, 25, 3.0)
    b = rng.standard_normal(25)
    ref = np.linalg.solve(A, b)
    r32 = kf.sketch.sketch_and_project(A.astype(np.float32), b.astype(np.float32), rtol=1e-5)
    assert r32.x.dtype == np.float32 and r32.converged
    np.testing.assert_allclose(r32.x, ref, atol=1e-3)
    rc = kf.sketch.sketch_and_project(A, b, rtol=1e-10, seed=5)
    rf = kf.sketch.sketch_and_project(np.asfortranarray(A), b, rtol=1e-10, seed=5)
    big = np.zeros((25, 50))
    big[:, ::2] = A
    rs = kf.sketch.sketch_and_project(big[:, ::2], b, rtol=1e-10, seed=5)
    rsp = kf.sketch.sketch_and_project(sp.csr_matrix(A), b, rtol=1e-10, seed=5)
    ri = kf.sketch.sketch_and_project(np.eye(4, dtype=np.int64) * 2, np.ones(4), rtol=1e-12)
    np.testing.assert_array_equal(rc.x, rf.x)
    np.testing.assert_array_equal(rc.x, rs.x)
    np.testing.assert_array_equal(rc.x, rsp.x)
    np.testing.assert_allclose(ri.x, 0.5)
    # a row stride (a slice of rows) is read without a copy and gives the same answer
    tall = np.vstack([A, A])
    np.testing.assert_array_equal(kf.sketch.sketch_and_project(tall[:25], b, rtol=1e-10, seed=5).x, rc.x)


def test_rectangular_least_squares_and_consistent(rng):
    A = rng.standard_normal((40, 10))
    b = rng.standard_normal(40)
    res = kf.sketch.sketch_and_project(A, b, sketch="block_coords", block=3, rtol=0.0, max_iter=3000, warn=False)
    np.testing.assert_allclose(res.x, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-8)
    # consistent underdetermined system: row sketches from 0 reach the minimum-norm solution
    W = rng.standard_normal((8, 30))
    c = rng.standard_normal(8)
    res = kf.sketch.sketch_and_project(W, c, sketch="block_rows", block=4, rtol=1e-12)
    np.testing.assert_allclose(res.x, np.linalg.pinv(W) @ c, atol=1e-9)


@pytest.mark.parametrize("sketch", SKETCHES)
def test_same_result_any_thread_count(rng, sketch):
    A = nonsymmetric(rng, 400, 4.0)  # large enough that 2 threads are really used
    b = rng.standard_normal(400)
    kw = dict(sketch=sketch, block=8, max_iter=25, seed=11, momentum=0.2, warn=False)
    with kf.threads(1):
        r1 = kf.sketch.sketch_and_project(A, b, **kw)
    with kf.threads(2):
        r2 = kf.sketch.sketch_and_project(A, b, **kw)
    np.testing.assert_array_equal(r1.x, r2.x)
    np.testing.assert_array_equal(r1.residuals, r2.residuals)
    r3 = kf.sketch.sketch_and_project(A, b, **{**kw, "seed": 12})
    assert not np.array_equal(r1.x, r3.x)


def test_warm_start_and_zero_rhs(rng):
    A = spd(rng, 15)
    b = rng.standard_normal(15)
    exact = np.linalg.solve(A, b)
    res = kf.sketch.sketch_and_project(A, b, x0=exact, rtol=1e-8)
    assert res.n_iter == 0 and res.converged
    res0 = kf.sketch.sketch_and_project(A, np.zeros(15))
    assert res0.converged and not res0.x.any()


def test_nonconvergence_warns_and_reports(rng):
    A = nonsymmetric(rng, 30, 1e3)
    b = rng.standard_normal(30)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        res = kf.sketch.sketch_and_project(A, b, rtol=1e-12, max_iter=50)
    assert not res.converged and res.status == "max_iter" and res.n_iter == 50
    # inconsistent singular system: finite iterates, no hang
    S = np.diag([1.0, 1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = kf.sketch.sketch_and_project(S, np.ones(3), max_iter=100)
    assert not r.converged and np.isfinite(r.x).all() and r.residual >= 1 / np.sqrt(3) - 1e-12


def test_repr_and_history():
    res = kf.sketch.sketch_and_project(np.eye(3) * 2.0, np.ones(3), rtol=1e-12)
    text = repr(res)
    assert "SketchProjectResult(" in text and "converged" in text
    assert res.history is res.residuals and res["x"] is res.x


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 12), q=st.integers(1, 15), sketch=st.sampled_from(SKETCHES),
       f32=st.booleans(), seed=st.integers(0, 2**32))
def test_property_random_shapes(n, q, sketch, f32, seed):
    rng = np.random.default_rng(seed)
    A = nonsymmetric(rng, n, 2.0) if n > 1 else np.array([[1.7]])
    b = rng.standard_normal(n)
    dt = np.float32 if f32 else np.float64
    res = kf.sketch.sketch_and_project(A.astype(dt), b.astype(dt), sketch=sketch, block=q,
                                       rtol=1e-4 if f32 else 1e-10, seed=seed)
    assert res.converged and res.x.dtype == dt and res.block == min(q, n)
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), atol=(1e-2 if f32 else 1e-7) * max(1, np.abs(b).max()))


def test_bad_input(rng):
    A = np.eye(3)
    b = np.ones(3)
    with pytest.raises(ValueError, match="sketch"):
        kf.sketch.sketch_and_project(A, b, sketch="srht")
    with pytest.raises(ValueError, match="block"):
        kf.sketch.sketch_and_project(A, b, block=0)
    with pytest.raises(TypeError, match="block"):
        kf.sketch.sketch_and_project(A, b, block=2.5)
    with pytest.raises(ValueError, match="momentum"):
        kf.sketch.sketch_and_project(A, b, momentum=1.0)
    with pytest.raises(ValueError, match="rtol"):
        kf.sketch.sketch_and_project(A, b, rtol=-1.0)
    with pytest.raises(ValueError, match="max_iter"):
        kf.sketch.sketch_and_project(A, b, max_iter=-1)
    with pytest.raises(ValueError, match="check_every"):
        kf.sketch.sketch_and_project(A, b, check_every=0)
    with pytest.raises(ValueError, match="b must have shape"):
        kf.sketch.sketch_and_project(A, np.ones(4))
    with pytest.raises(ValueError, match="x0 must have shape"):
        kf.sketch.sketch_and_project(A, b, x0=np.ones(2))
    with pytest.raises(ValueError, match="A must be 2-D"):
        kf.sketch.sketch_and_project(np.ones(3), b)
    with pytest.raises(ValueError, match="empty"):
        kf.sketch.sketch_and_project(np.ones((0, 3)), np.ones(0))
    bad = A.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="A must be finite"):
        kf.sketch.sketch_and_project(bad, b)
    with pytest.raises(ValueError, match="b must be finite"):
        kf.sketch.sketch_and_project(A, np.array([1.0, np.inf, 0.0]))
    with pytest.raises(TypeError, match="A must have a real floating dtype"):
        kf.sketch.sketch_and_project(A.astype(complex), b)
    with pytest.raises(ValueError, match="seed"):
        kf.sketch.sketch_and_project(A, b, seed=-1)
