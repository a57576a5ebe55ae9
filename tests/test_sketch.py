"""Tests of kernforge.sketch against independent references (NumPy/SciPy dense algebra, SciPy's
lstsq/lsqr/linprog, scikit-learn's randomized_svd, closed forms) and statistical properties."""
import warnings

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import kernforge as kf
from kernforge import sketch as ks

@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # Correctness only: small LAPACK calls with a 2-thread OpenBLAS team can take 100x longer on an
    # oversubscribed machine (spinning threads), which would only slow this file down.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


OPS = {
    "countsketch": lambda m, n, seed=0: ks.CountSketch(m, n, seed=seed),
    "sparse_sign": lambda m, n, seed=0: ks.SparseSign(m, n, nnz_per_col=min(4, m), seed=seed),
    "very_sparse": lambda m, n, seed=0: ks.VerySparseRandomProjection(m, n, seed=seed),
    "gaussian": lambda m, n, seed=0: ks.Gaussian(m, n, seed=seed),
    "srht": lambda m, n, seed=0: ks.SRHT(m, n, seed=seed),
    "srft": lambda m, n, seed=0: ks.SRFT(m, n, seed=seed),
}


def tall_problem(n, d, kappa, seed=0, dtype=np.float64, noise=1e-4):
    """A = U diag(sigma) V^T with log-spaced sigma (condition number kappa); b = A x + noise."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.logspace(0, -np.log10(kappa), d)
    A = (U * s) @ V.T
    x = rng.standard_normal(d)
    b = A @ x
    r = rng.standard_normal(n)
    r -= U @ (U.T @ r)
    b = b + noise * np.linalg.norm(b) * r / np.linalg.norm(r)
    return A.astype(dtype), b.astype(dtype)


# ------------------------------------------------------------------------------------ operators
def _layouts(A):
    yield "C", A
    yield "F", np.asfortranarray(A)
    yield "strided", np.repeat(A, 2, axis=1)[:, ::2]
    yield "csr", sp.csr_matrix(A)
    yield "csc", sp.csc_matrix(A)
    C64 = sp.csr_matrix(A)
    C64.indices = C64.indices.astype(np.int64)
    C64.indptr = C64.indptr.astype(np.int64)
    yield "csr64", C64
    yield "coo", sp.coo_matrix(A)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_operator_matches_its_dense_matrix(name, dtype, rng):
    n, d, m = 130, 7, 24
    S = OPS[name](m, n, seed=3)
    D = S.to_dense()
    assert D.shape == (m, n)
    assert np.array_equal(S.to_sparse().toarray(), D)
    A = rng.standard_normal((n, d)).astype(dtype)
    A[rng.random((n, d)) < 0.5] = 0  # sparse inputs have real structure
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for label, X in _layouts(A):
        Y = S @ X
        assert Y.dtype == dtype, label
        Xd = X.toarray() if sp.issparse(X) else X
        np.testing.assert_allclose(Y, D @ Xd.astype(np.float64), **tol, err_msg=label)
    np.testing.assert_allclose(S @ A[:, 0], D @ A[:, 0], **tol)
    # Right sketches and adjoints.
    B = rng.standard_normal((5, n)).astype(dtype)
    np.testing.assert_allclose(B @ S.T, B @ D.T, **tol)
    np.testing.assert_allclose(sp.csr_matrix(B) @ S.T, B @ D.T, **tol)
    Y = rng.standard_normal((m, 3)).astype(dtype)
    np.testing.assert_allclose(S.T @ Y, D.T @ Y, **tol)
    # A LinearOperator operand.
    L = spla.aslinearoperator(A.astype(np.float64))
    np.testing.assert_allclose(S @ L, D @ A, rtol=1e-5, atol=1e-5)


def test_operator_property_random_shapes_and_strides():
    hyp = pytest.importorskip("hypothesis", reason="hypothesis drives the shape/stride property test")
    st = pytest.importorskip("hypothesis.strategies")

    @hyp.settings(max_examples=40, deadline=None)
    @hyp.given(name=st.sampled_from(sorted(OPS)), n=st.integers(1, 70), d=st.integers(1, 9),
               frac=st.floats(0.05, 1.0), step=st.integers(1, 3), order=st.sampled_from("CF"),
               f32=st.booleans(), seed=st.integers(0, 2**32))
    def check(name, n, d, frac, step, order, f32, seed):
        m = max(1, int(frac * n))
        S = OPS[name](m, n, seed=seed)
        dt = np.float32 if f32 else np.float64
        A = np.random.default_rng(seed).standard_normal((n, d * step)).astype(dt)
        A = np.asarray(A, order=order)[:, ::step]
        tol = 1e-12 if dt == np.float64 else 1e-4
        np.testing.assert_allclose(S @ A, S.to_dense() @ A.astype(np.float64), rtol=tol, atol=tol)

    check()


@pytest.mark.parametrize("name", list(OPS))
def test_same_seed_same_sketch_for_any_thread_count(name, rng):
    n, d, m = 6000, 40, 200
    A = rng.standard_normal((n, d))
    As = sp.random(n, d, density=0.05, format="csr", random_state=1)
    outs = []
    for t in (1, 2):
        with kf.threads(t):
            S = OPS[name](m, n, seed=11)
            outs.append((S @ A, S @ np.asfortranarray(A), S @ As, S @ As.tocsc(), S.T @ A[:m]))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)
    other = OPS[name](m, n, seed=12) @ A
    assert not np.array_equal(outs[0][0], other)


@pytest.mark.parametrize("name", ["countsketch", "sparse_sign"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_apply_row_chunks_match_reference_and_threads(name, dtype, rng):
    # n >> m: the C-order kernel splits A into 16 row chunks with partial products added in a
    # fixed order; the F-order kernel takes the one-nonzero (CountSketch) fast path.
    n, d, m = 40000, 24, 50
    A = rng.standard_normal((n, d)).astype(dtype)
    S = OPS[name](m, n, seed=5)
    ref = S.to_sparse() @ A.astype(np.float64)
    outs = []
    for t in (1, 2):
        with kf.threads(t):
            outs.append((S @ A, S @ np.asfortranarray(A)))
    tol = 1e-3 if dtype == np.float32 else 1e-10
    for out in outs[0]:
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max())
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", list(OPS))
def test_expectation_of_StS_is_identity(name):
    n, m, trials = 16, 8, 600
    acc = np.zeros((trials, n, n))
    for s in range(trials):
        D = OPS[name](m, n, seed=s).to_dense()
        acc[s] = D.T @ D
    mean, std = acc.mean(axis=0), acc.std(axis=0)
    bound = 5 * std / np.sqrt(trials) + 1e-12
    assert np.all(np.abs(mean - np.eye(n)) <= bound)


@pytest.mark.parametrize("name", list(OPS))
def test_subspace_embedding_distortion(name, rng):
    n, d, m = 4000, 10, 400
    A = rng.standard_normal((n, d)) * np.logspace(0, 3, d)
    if name != "very_sparse":  # Li et al.'s projection has empty columns: it needs incoherent A
        A[:5] *= 50  # a few coherent rows
    U, _ = np.linalg.qr(A)
    S = OPS[name](m, n, seed=5)
    sv = np.linalg.svd(S @ U, compute_uv=False)
    # Distortion of every vector of range(A) at once; ~sqrt(d/m) for dense sketches.
    assert sv.min() > 0.6 and sv.max() < 1.4, sv
    X = rng.standard_normal((d, 50))
    ratio = np.linalg.norm(S @ (A @ X), axis=0) / np.linalg.norm(A @ X, axis=0)
    assert np.all((ratio > 0.6) & (ratio < 1.4))


def test_sparse_structures():
    S = ks.CountSketch(10, 300, seed=1).to_sparse()
    assert np.all(np.diff(S.tocsc().indptr) == 1) and set(np.abs(S.data)) == {1.0}
    S = ks.SparseSign(20, 300, nnz_per_col=5, seed=1).to_sparse().tocsc()
    assert np.all(np.diff(S.indptr) == 5)
    assert np.allclose(np.abs(S.data), 1 / np.sqrt(5))
    for j in range(300):  # distinct rows in every column
        assert len(set(S.indices[S.indptr[j]:S.indptr[j + 1]])) == 5
    V = ks.VerySparseRandomProjection(100, 2500, seed=2)  # density 1/50
    D = V.to_dense()
    frac = (D != 0).mean()
    assert abs(frac - 0.02) < 5 * np.sqrt(0.02 * 0.98 / D.size)
    assert np.allclose(np.abs(D[D != 0]), np.sqrt(50 / 100))
    G = ks.Gaussian(300, 500, seed=0).to_dense()
    assert abs(G.mean()) < 5 / np.sqrt(G.size) / np.sqrt(300)
    assert abs(G.var() * 300 - 1) < 0.02


def test_srht_is_sampled_hadamard_with_signs():
    n, m = 12, 6
    S = ks.SRHT(m, n, seed=4)
    D = S.to_dense()
    H = sla.hadamard(16)[S.rows][:, :n]
    signs = np.sign(D[0] / H[0])
    np.testing.assert_allclose(D, H * signs / np.sqrt(m), rtol=1e-14)
    assert len(set(S.rows.tolist())) == m


def test_operator_errors():
    with pytest.raises(ValueError, match="m must be <= n"):
        ks.CountSketch(10, 5)
    with pytest.raises(ValueError, match="m must be >= 1"):
        ks.Gaussian(0, 5)
    with pytest.raises(ValueError, match="nnz_per_col"):
        ks.SparseSign(4, 10, nnz_per_col=5)
    with pytest.raises(ValueError, match="density"):
        ks.VerySparseRandomProjection(4, 10, density=1.5)
    with pytest.raises(ValueError, match="seed"):
        ks.SRHT(4, 10, seed=-1)
    S = ks.SparseSign(4, 10, nnz_per_col=2)
    with pytest.raises(ValueError, match="10 rows"):
        S @ np.ones((9, 2))
    with pytest.raises(ValueError, match="finite"):
        S @ np.full((10, 2), np.nan)
    with pytest.raises(ValueError, match="finite"):
        S @ sp.csr_matrix(np.full((10, 2), np.inf))
    with pytest.raises(TypeError, match="floating"):
        S @ np.ones((10, 2), dtype=complex)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        S @ np.ones((10, 2, 2))
    with pytest.raises(ValueError, match="10 columns"):
        np.ones((3, 9)) @ S.T
    # integer input is computed in float64, as SciPy does
    assert (S @ np.ones((10, 2), dtype=np.int64)).dtype == np.float64


# ------------------------------------------------------------------------------------ lstsq
def _check_lstsq(res, A, b, kappa, dtype):
    A64, b64 = A.astype(np.float64), b.astype(np.float64)
    xr, *_ = sla.lstsq(A64, b64)
    rr = np.linalg.norm(b64 - A64 @ xr)
    r = b64 - A64 @ res.x.astype(np.float64)
    excess = (np.linalg.norm(r) - rr) / rr
    u = np.finfo(dtype).eps
    nA = np.linalg.norm(A64, 2)

    def normal_eq(x):
        rx = b64 - A64 @ x
        return np.linalg.norm(A64.T @ rx) / (nA * np.linalg.norm(rx))

    # A backward-stable solver reaches the reference's residual up to rounding, and a normal-equation
    # residual ||A^T r|| / (||A|| ||r||) of the reference's order (scipy's gelsd is backward stable).
    assert excess < (1e-10 if dtype == np.float64 else 1e-3), excess
    ne, ne_ref = normal_eq(res.x.astype(np.float64)), normal_eq(xr)
    assert ne < 10 * max(ne_ref, 100 * u), (ne, ne_ref)
    xnorm = np.linalg.norm(xr)
    attainable = kappa * u * (1 + kappa * rr / (nA * xnorm))
    assert np.linalg.norm(res.x - xr) / xnorm < max(1e3 * attainable, 1e3 * u), (np.linalg.norm(res.x - xr) / xnorm)


def _expected_method(method, kappa, dtype=np.float64):
    """"gram" runs (and, for "auto", is chosen) while eps cond(A)^2 is small; else it is Cholesky-QR."""
    if method not in ("gram", "auto"):
        return method
    small = kappa <= (1e4 if dtype == np.float64 else 10.0)
    large = kappa >= (1e10 if dtype == np.float64 else 1e5)
    return "gram" if small else ("cholqr" if large else None)


@pytest.mark.parametrize("kappa", [1.0, 1e4, 1e6, 1e8, 1e10])
@pytest.mark.parametrize("method", ["auto", "gram", "cholqr", "precondition"])
def test_lstsq_matches_scipy_float64(kappa, method):
    A, b = tall_problem(3000, 40, kappa, seed=int(np.log10(kappa)))
    res = ks.lstsq(A, b, method=method)
    expected = _expected_method(method, kappa)
    assert res.method == (expected or res.method) and res.rank == 40 and res.converged
    if method == "auto" and kappa == 1e6:
        assert res.method == "gram" and res.n_iter <= 4  # two refinement passes reach the floor
    _check_lstsq(res, A, b, kappa, np.float64)
    np.testing.assert_allclose(res.residual_norm, np.linalg.norm(b - A @ res.x), rtol=1e-10)


@pytest.mark.parametrize("kappa", [1.0, 1e3])
@pytest.mark.parametrize("method", ["auto", "gram", "cholqr", "precondition"])
def test_lstsq_float32(kappa, method):
    A, b = tall_problem(3000, 30, kappa, seed=7, dtype=np.float32, noise=1e-2)
    res = ks.lstsq(A, b, method=method)
    assert res.x.dtype == np.float32
    assert res.method == (_expected_method(method, kappa, np.float32) or res.method)
    _check_lstsq(res, A, b, kappa, np.float32)


@pytest.mark.parametrize("layout", ["F", "strided", "csr", "csc", "linop"])
@pytest.mark.parametrize("method", ["gram", "cholqr", "precondition"])
def test_lstsq_input_layouts(layout, method):
    A, b = tall_problem(2000, 25, 1e5, seed=3)
    X = {"F": np.asfortranarray(A), "strided": np.repeat(A, 2, axis=1)[:, ::2], "csr": sp.csr_matrix(A), "csc": sp.csc_matrix(A),
         "linop": spla.aslinearoperator(A)}[layout]
    res = ks.lstsq(X, b, method=method)
    assert res.method == method
    _check_lstsq(res, A, b, 1e5, np.float64)
    np.testing.assert_allclose(res.residual_norm, np.linalg.norm(b - A @ res.x), rtol=1e-10)


def test_lstsq_sparse_against_scipy_lsqr():
    rng = np.random.default_rng(2)
    n, d = 20000, 60
    A = sp.random(n, d, density=0.05, format="csr", random_state=rng) @ sp.diags(np.logspace(0, -3, d))
    A = A.tocsr()
    b = rng.standard_normal(n)
    res = ks.lstsq(A, b)
    assert res.method == "precondition" and res.converged
    ref = spla.lsqr(A, b, atol=1e-15, btol=1e-15, iter_lim=20000)[0]
    xr = sla.lstsq(A.toarray(), b)[0]
    np.testing.assert_allclose(res.x, xr, rtol=1e-9, atol=1e-9 * np.linalg.norm(xr))
    np.testing.assert_allclose(ref, xr, rtol=1e-6, atol=1e-6 * np.linalg.norm(xr))
    rl = spla.lsmr(A, b, atol=1e-14, btol=1e-14, maxiter=20000)[0]
    res2 = ks.lstsq(A, b, solver="lsmr")
    assert np.linalg.norm(b - A @ res2.x) <= np.linalg.norm(b - A @ rl) * (1 + 1e-12)


@pytest.mark.parametrize("method", ["gram", "cholqr", "precondition", "solve"])
def test_lstsq_multiple_rhs(method):
    A, b = tall_problem(2000, 20, 1e3, seed=1)
    B = np.column_stack([b, 2 * b + 1, A[:, 0]])
    res = ks.lstsq(A, B, method=method, seed=3)
    assert res.x.shape == (20, 3) and res.residual_norm.shape == (3,)
    for j in range(3):
        one = ks.lstsq(A, B[:, j], method=method, seed=3)
        np.testing.assert_allclose(res.x[:, j], one.x, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("method", ["auto", "gram", "cholqr", "precondition"])
def test_lstsq_rank_deficient_gives_minimum_norm(method):
    rng = np.random.default_rng(4)
    A = rng.standard_normal((1500, 12))
    A = np.column_stack([A, A[:, 0] + A[:, 1], 2 * A[:, 3]])  # rank 12 of 14
    b = rng.standard_normal(1500)
    res = ks.lstsq(A, b, method=method)
    assert res.rank == 12
    assert res.method == ("cholqr" if method in ("auto", "gram") else method)  # no Gram route without full rank
    x_mn = np.linalg.pinv(A) @ b
    np.testing.assert_allclose(res.x, x_mn, rtol=1e-8, atol=1e-10)


def test_lstsq_solve_guarantee_and_sketch_size():
    A, b = tall_problem(8000, 20, 1e2, seed=9, noise=1.0)
    rr = np.linalg.norm(b - A @ sla.lstsq(A, b)[0])
    for sk in ("srht", "srft", "gaussian"):
        res = ks.lstsq(A, b, method="solve", sketch=sk, sketch_size=400)
        assert res.sketch_size == 400 and res.sketch.m == 400 and res.n_iter == 0
        # E ||A x - b||^2 = (1 + d / (m - d - 1)) ||r*||^2 for a Gaussian sketch: about 1.05 here.
        assert res.residual_norm <= 1.2 * rr


def test_lstsq_accepts_operator_sketch_and_auto():
    A, b = tall_problem(1000, 10, 10.0)
    S = ks.SRHT(60, 1000, seed=2)
    res = ks.lstsq(A, b, method="precondition", sketch=S)
    assert res.sketch is S and res.sketch_size == 60
    assert ks.lstsq(sp.csr_matrix(A), b).method == "precondition"
    assert ks.lstsq(A, b).method == "gram"
    assert ks.lstsq(A, b, refine=0).method == "cholqr"
    assert "LstsqResult" in repr(res)


def test_lstsq_gram_falls_back_when_too_ill_conditioned():
    A, b = tall_problem(2000, 30, 1e12, seed=5)
    # "auto" reads cond(A) ~ 1e12 off the sketch and goes straight to Cholesky-QR; an explicit
    # "gram" tries the normal equations, sees the refinement stall (or Cholesky break down) and
    # falls back, and says so.
    assert ks.lstsq(A, b).method == "cholqr"
    res = ks.lstsq(A, b, method="gram")
    assert res.method == "cholqr"
    xr = sla.lstsq(A, b)[0]
    rr = np.linalg.norm(b - A @ xr)
    assert (np.linalg.norm(b - A @ res.x) - rr) / rr < 1e-10


def test_lstsq_gram_without_refinement_is_the_normal_equations():
    A, b = tall_problem(2000, 20, 1e3, seed=6)
    res = ks.lstsq(A, b, method="gram", refine=0)
    x_ne = np.linalg.solve(A.T @ A, A.T @ b)
    assert res.method == "gram" and res.n_iter == 0
    np.testing.assert_allclose(res.x, x_ne, rtol=1e-8)
    np.testing.assert_allclose(res.residual_norm, np.linalg.norm(b - A @ res.x), rtol=1e-12)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_residual_pass_against_numpy_and_threads(order, dtype):
    # The fused refinement pass: (A^T (B - A X), ||B - A X||^2) in one sweep, bitwise equal for
    # 1 and 2 threads (fixed row chunks), accumulated in float64 also for float32 input.
    rng = np.random.default_rng(11)
    n, d, k = 9000, 37, 3
    A = np.asarray(rng.standard_normal((n, d)), dtype=dtype, order=order)
    B = np.asfortranarray(rng.standard_normal((n, k)), dtype=dtype)
    X = np.asfortranarray(rng.standard_normal((d, k)), dtype=dtype)
    A64, B64, X64 = (M.astype(np.float64) for M in (A, B, X))
    R = B64 - A64 @ X64
    outs = []
    for t in (1, 2):
        with kf.threads(t):
            outs.append(kf._core.sketch.normal_residual(A, B, X))
    g, rr = outs[0]
    assert g.dtype == dtype and rr.dtype == np.float64
    np.testing.assert_allclose(g, A64.T @ R, rtol=1e-5 if dtype == np.float32 else 1e-11,
                               atol=1e-5 * np.abs(A64.T @ R).max() if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(rr, (R ** 2).sum(axis=0), rtol=1e-12)
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    g0, rr0 = kf._core.sketch.normal_residual(A, B, None)
    np.testing.assert_allclose(g0, A64.T @ B64, rtol=1e-5 if dtype == np.float32 else 1e-11,
                               atol=1e-4 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(rr0, (B64 ** 2).sum(axis=0), rtol=1e-12)


def test_lstsq_nonconvergence_warns():
    A, b = tall_problem(2000, 20, 1e6)
    with pytest.warns(kf.ConvergenceWarning):
        res = ks.lstsq(A, b, method="precondition", max_iter=2, rtol=1e-15, refine=0)
    assert not res.converged and res.n_iter == 2


def test_lstsq_errors():
    A, b = tall_problem(200, 10, 10.0)
    with pytest.raises(ValueError, match="too small to precondition"):
        ks.lstsq(A, b, method="precondition", sketch_size=5)
    with pytest.raises(ValueError, match="too small to precondition"):
        ks.lstsq(A, b, sketch=ks.CountSketch(5, 200))
    with pytest.raises(ValueError, match="sketch_size must be <= n"):
        ks.lstsq(A, b, sketch_size=300)
    A2 = A.copy(); A2[3, 2] = np.nan
    with pytest.raises(ValueError, match="A must be finite"):
        ks.lstsq(A2, b)
    b2 = b.copy(); b2[0] = np.inf
    with pytest.raises(ValueError, match="b must be finite"):
        ks.lstsq(A, b2)
    with pytest.raises(ValueError, match="empty"):
        ks.lstsq(np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(ValueError, match="tall"):
        ks.lstsq(A.T, b[:10])
    with pytest.raises(ValueError, match="b must have shape"):
        ks.lstsq(A, b[:-1])
    with pytest.raises(ValueError, match="method"):
        ks.lstsq(A, b, method="qr")
    with pytest.raises(ValueError, match="n = 200 columns"):
        ks.lstsq(A, b, sketch=ks.CountSketch(40, 100))
    with pytest.raises(ValueError, match="sketch must be one of"):
        ks.lstsq(A, b, sketch="fourier")
    with pytest.raises(ValueError, match="A is zero"):
        ks.lstsq(np.zeros((50, 3)), np.ones(50))


# ------------------------------------------------------------------------------------ sampling
def test_leverage_scores_exact_and_approx():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3000, 12)) * np.logspace(0, 4, 12)
    A[:10] *= 30  # coherent rows
    Q, _ = np.linalg.qr(A)
    ref = (Q ** 2).sum(axis=1)
    np.testing.assert_allclose(ks.leverage_scores(A, approx=False), ref, rtol=1e-8, atol=1e-12)
    t = ks.leverage_scores(A)
    assert np.all(np.abs(t / ref - 1) < 0.5)
    assert abs(t.sum() - 12) < 2
    ts = ks.leverage_scores(sp.csr_matrix(A), seed=3)
    assert np.all(np.abs(ts / ref - 1) < 0.5)
    # With a Johnson-Lindenstrauss projection (d > 64): a constant-factor estimate.
    B = rng.standard_normal((4000, 80))
    Qb, _ = np.linalg.qr(B)
    rb = (Qb ** 2).sum(axis=1)
    tb = ks.leverage_scores(B)
    assert np.median(np.abs(tb / rb - 1)) < 0.25 and np.all((tb / rb > 0.2) & (tb / rb < 3))


def test_leverage_scores_rank_deficient():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((500, 6))
    A = np.column_stack([A, A[:, :2]])
    assert abs(ks.leverage_scores(A, approx=False).sum() - 6) < 1e-8
    assert abs(ks.leverage_scores(A, approx=True).sum() - 6) < 1.5


def _l1_sensitivities(A):
    from scipy.optimize import linprog

    n, d = A.shape
    out = np.empty(n)
    # max a_i^T x  s.t.  -t <= A x <= t, sum t <= 1   (variables x, t)
    A_ub = np.block([[A, -np.eye(n)], [-A, -np.eye(n)], [np.zeros((1, d)), np.ones((1, n))]])
    b_ub = np.concatenate([np.zeros(2 * n), [1.0]])
    bounds = [(None, None)] * d + [(0, None)] * n
    for i in range(n):
        c = np.concatenate([-A[i], np.zeros(n)])
        out[i] = -linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs").fun
    return out


def test_lewis_weights_fixed_point_and_sensitivity_bound():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((40, 3))
    A[0] *= 20
    w = ks.lewis_weights(A, p=1)
    assert abs(w.sum() - 3) < 1e-8
    X = A / np.sqrt(w)[:, None]
    Q, _ = np.linalg.qr(X)
    np.testing.assert_allclose(w, (Q ** 2).sum(axis=1), rtol=1e-7)
    sens = _l1_sensitivities(A)
    assert np.all(sens <= w * (1 + 1e-6))
    # p = 2: Lewis weights are the leverage scores
    np.testing.assert_allclose(ks.lewis_weights(A, p=2), ks.leverage_scores(A, approx=False), rtol=1e-10)


@pytest.mark.parametrize("by,p", [("leverage", 2.0), ("root_leverage", 1.0), ("sensitivity_l1", 1.0),
                                  ("uniform", 2.0)])
def test_sample_rows_unbiased(by, p):
    rng = np.random.default_rng(5)
    A = rng.standard_normal((300, 3))
    A[:3] *= 10
    b = A @ np.ones(3) + rng.standard_normal(300)
    x = rng.standard_normal(3)
    target = np.sum(np.abs(A @ x - b) ** p)
    est = []
    for s in range(200):
        smp = ks.sample_rows(A, b, k=30, by=by, seed=s, approx=False)
        assert smp.p == p
        np.testing.assert_allclose(smp.A, smp.weights[:, None] * A[smp.rows])
        est.append(np.sum(np.abs(smp.A @ x - smp.b) ** p))
    est = np.array(est)
    assert abs(est.mean() - target) <= 5 * est.std() / np.sqrt(len(est))
    assert abs(smp.probabilities.sum() - 1) < 1e-12


def test_sample_rows_regression_and_errors():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5000, 4))
    b = A @ np.arange(1.0, 5.0) + 0.1 * rng.standard_normal(5000)
    smp = ks.sample_rows(sp.csr_matrix(A), b, k=500, by="leverage", seed=2)
    x = np.linalg.lstsq(smp.A.toarray(), smp.b, rcond=None)[0]
    np.testing.assert_allclose(x, np.arange(1.0, 5.0), atol=0.05)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ks.sample_rows(A, b, k=0)
    with pytest.raises(ValueError, match="by must be one of"):
        ks.sample_rows(A, b, k=5, by="norms")
    with pytest.raises(ValueError, match="b must have shape"):
        ks.sample_rows(A, b[:-1], k=5)
    with pytest.raises(ValueError, match="p must lie"):
        ks.lewis_weights(A, p=5)


# ------------------------------------------------------------------------------------ randomized SVD
def _decaying(n, d, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = 1.0 / (1 + np.arange(d)) ** 2
    return (U * s) @ V.T, s


@pytest.mark.parametrize("sketch", ["gaussian", "srht", "srft", "sparse_sign"])
def test_randomized_svd_against_exact(sketch):
    A, s = _decaying(600, 120)
    k = 10
    U, sv, Vt = ks.randomized_svd(A, k, sketch=sketch, seed=1)
    assert U.shape == (600, k) and Vt.shape == (k, 120)
    np.testing.assert_allclose(sv, s[:k], rtol=1e-6)
    np.testing.assert_allclose(U.T @ U, np.eye(k), atol=1e-10)
    err = np.linalg.norm(A - (U * sv) @ Vt, 2)
    assert err <= 1.01 * s[k]


def test_randomized_svd_vs_sklearn_and_sparse():
    extmath = pytest.importorskip("sklearn.utils.extmath", reason="scikit-learn is the reference randomized SVD")
    A, s = _decaying(800, 150, seed=2)
    k = 15
    U, sv, Vt = ks.randomized_svd(A, k, power_iters=2, seed=0)
    Ur, sr, Vr = extmath.randomized_svd(A, k, n_iter=2, random_state=0)
    e_ours = np.linalg.norm(A - (U * sv) @ Vt)
    e_ref = np.linalg.norm(A - (Ur * sr) @ Vr)
    assert e_ours <= 1.1 * e_ref
    As = (sp.random(500, 80, density=0.1, format="csr", random_state=0) @ sp.diags(0.7 ** np.arange(80))).tocsr()
    res = ks.randomized_svd(As, 5)
    np.testing.assert_allclose(res.s, np.linalg.svd(As.toarray(), compute_uv=False)[:5], rtol=1e-8)
    with pytest.raises(ValueError, match="k must be <="):
        ks.randomized_svd(A, 200)
    with pytest.raises(ValueError, match="power_iters"):
        ks.randomized_svd(A, 3, power_iters="many")
