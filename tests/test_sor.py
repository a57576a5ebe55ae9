"""Tests of kf.sor against independent references: dense NumPy solves of the SOR splitting,
scipy.sparse.linalg.spsolve, PyAMG's Gauss-Seidel/SOR, and the Wikipedia SOR example."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import kernforge as kf
from conftest import poisson2d

DTYPES = [np.float32, np.float64]
DIRECTIONS = ["forward", "backward", "symmetric"]


def tol(dtype):
    return 2e-5 if dtype == np.float32 else 1e-12


# ------------------------------------------------------------------ references
def dense_sor(A, b, x, omega, direction):
    """x_{k+1} = (D/omega + L)^{-1} (b - (U - (1/omega - 1) D) x_k) (forward), in float64."""
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    D = np.diag(np.diag(A))
    L = np.tril(A, -1)
    U = np.triu(A, 1)
    if direction in ("forward", "symmetric"):
        x = np.linalg.solve(D / omega + L, b - (U - (1 / omega - 1) * D) @ x)
    if direction in ("backward", "symmetric"):
        x = np.linalg.solve(D / omega + U, b - (L - (1 / omega - 1) * D) @ x)
    return x


def random_dd(n, rng, density=0.2, symmetric=False, dtype=np.float64):
    """A random sparse, strictly diagonally dominant matrix with a positive diagonal."""
    M = sp.random(n, n, density=density, random_state=rng, format="csr")
    M.data = rng.standard_normal(M.nnz)
    if symmetric:
        M = M + M.T
    M = M.tolil()
    M.setdiag(0)
    M = M.tocsr()
    d = np.asarray(abs(M).sum(axis=1)).ravel() + 1.0 + rng.random(n)
    return (M + sp.diags(d)).tocsr().astype(dtype)


def random_spd(n, rng, dtype=np.float64):
    """A random sparse SPD matrix that is not diagonally dominant (so SOR's SPD theory is what holds)."""
    B = sp.random(n, n, density=0.15, random_state=rng, format="csr")
    B.data = rng.standard_normal(B.nnz)
    return (B @ B.T + 0.05 * sp.eye(n)).tocsr().astype(dtype)


# ------------------------------------------------------------------ sweeps
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("kind", ["nonsymmetric", "spd"])
@pytest.mark.parametrize("omega", [0.4, 1.0, 1.7])
def test_sweep_matches_dense_splitting(dtype, direction, kind, omega, rng):
    n = 37
    A = random_dd(n, rng, dtype=dtype) if kind == "nonsymmetric" else random_spd(n, rng, dtype=dtype)
    b = rng.standard_normal(n).astype(dtype)
    x0 = rng.standard_normal(n).astype(dtype)
    x = x0.copy()
    out = kf.sor.sweep(A, x, b, omega=omega, direction=direction, sweeps=2)
    assert out is x and x.dtype == dtype
    ref = dense_sor(A.toarray(), b, dense_sor(A.toarray(), b, x0, omega, direction), omega, direction)
    np.testing.assert_allclose(x, ref, rtol=tol(dtype) * 10, atol=tol(dtype) * 10 * np.abs(ref).max())


def test_wikipedia_example():
    # https://en.wikipedia.org/wiki/Successive_over-relaxation (omega = 0.5), the table's values.
    # Row 1 has a negative diagonal, which SOR.__init__ rejects; multiplying that row and b_1 by -1
    # leaves every sweep unchanged (x_i += omega * s_i / a_ii is invariant under row scaling).
    A = np.array([[4.0, -1, -6, 0], [5, 4, -10, -8], [0, 9, 4, -2], [1, 0, -7, 5]])
    b = np.array([2.0, -21, -12, -6])
    expected = {1: [0.25, -2.78125, 1.6289062, 0.5152344],
                2: [1.2490234, -2.2448974, 1.9687712, 0.9108547],
                3: [2.070478, -1.6696789, 1.5904881, 0.76172125],
                38: [3.0, -2.0, 2.0, 1.0]}
    S = kf.sor.SOR(sp.csr_matrix(A))
    x = np.zeros(4)
    done = 0
    for k, want in expected.items():
        S.sweep(x, b, omega=0.5, sweeps=k - done)
        done = k
        np.testing.assert_allclose(x, want, atol=1e-6)


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_omega_one_is_pyamg_gauss_seidel(direction, dtype, rng):
    relax = pytest.importorskip("pyamg.relaxation.relaxation", reason="PyAMG is the Gauss-Seidel reference")
    A = random_dd(50, rng, dtype=dtype)
    b = rng.standard_normal(50).astype(dtype)
    x = rng.standard_normal(50).astype(dtype)
    y = x.copy()
    kf.sor.sweep(A, x, b, omega=1.0, direction=direction, sweeps=3)
    relax.gauss_seidel(A, y, b, iterations=3, sweep=direction)
    np.testing.assert_allclose(x, y, rtol=tol(dtype) * 10, atol=tol(dtype) * 10)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_matches_pyamg_sor(direction, rng):
    # PyAMG >= 5.3 has exact SOR for forward/backward (its symmetric sweep ignores omega).
    relax = pytest.importorskip("pyamg.relaxation.relaxation", reason="PyAMG is an SOR reference")
    A = poisson2d(9)
    b = rng.standard_normal(81)
    x = rng.standard_normal(81)
    y = x.copy()
    kf.sor.sweep(A, x, b, omega=1.6, direction=direction, sweeps=4)
    relax.sor(A, y, b, 1.6, iterations=4, sweep=direction)
    np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_int64_indices(index_dtype, rng):
    A = random_dd(20, rng)
    C = sp.csr_matrix((A.data, A.indices.astype(index_dtype), A.indptr.astype(index_dtype)), shape=A.shape)
    b = rng.standard_normal(20)
    x = np.zeros(20)
    kf.sor.sweep(C, x, b, omega=1.3, direction="symmetric")
    np.testing.assert_allclose(x, dense_sor(A.toarray(), b, np.zeros(20), 1.3, "symmetric"), rtol=1e-12)


def test_n_equals_one():
    x = np.array([5.0])
    kf.sor.sweep(np.array([[2.0]]), x, np.array([3.0]), omega=1.0)
    assert x[0] == 1.5
    res = kf.sor.solve(np.array([[2.0]]), np.array([3.0]), omega=1.5)  # error factor 0.5 per sweep
    assert res.converged and abs(res.x[0] - 1.5) <= 1.5e-8 and res.n_iter == 27


def test_zero_sweeps_is_identity(rng):
    A = random_dd(10, rng)
    x = rng.standard_normal(10)
    y = x.copy()
    kf.sor.sweep(A, x, np.ones(10), omega=1.2, sweeps=0)
    np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------ input forms
def test_non_contiguous_x(rng):
    A = random_dd(15, rng)
    b = rng.standard_normal(15)
    big = rng.standard_normal(30)
    x0 = big[::2].copy()
    out = kf.sor.sweep(A, big[::2], b, omega=1.1)
    np.testing.assert_allclose(big[::2], dense_sor(A.toarray(), b, x0, 1.1, "forward"), rtol=1e-12)
    assert out.base is big


def test_fortran_int_and_list_inputs(rng):
    Ad = np.asfortranarray(np.array([[4, -1, 0], [-1, 4, -1], [0, -1, 4]]))  # int, Fortran order
    b = [1, 2, 3]
    x = np.zeros(3)
    kf.sor.sweep(Ad, x, b, omega=1.0)
    np.testing.assert_allclose(x, dense_sor(Ad, b, np.zeros(3), 1.0, "forward"), rtol=1e-14)
    res = kf.sor.solve(Ad, np.array(b), omega=1.1, rtol=1e-12)
    np.testing.assert_allclose(res.x, np.linalg.solve(Ad, b), rtol=1e-10)
    assert res.x.dtype == np.float64


def test_csr_triple_and_sparse_formats(rng):
    A = random_dd(25, rng)
    b = rng.standard_normal(25)
    ref = dense_sor(A.toarray(), b, np.zeros(25), 1.4, "symmetric")
    for form in [(A.data, A.indices, A.indptr), ((A.data, A.indices, A.indptr), A.shape), A.tocoo(),
                 A.tocsc(), sp.csr_array(A), A.toarray()]:
        x = np.zeros(25)
        kf.sor.sweep(form, x, b, omega=1.4, direction="symmetric")
        np.testing.assert_allclose(x, ref, rtol=1e-12)


def test_unsorted_indices_duplicates_explicit_zeros(rng):
    n = 6
    dense = np.diag(np.full(n, 5.0)) + np.diag(np.full(n - 1, -1.0), 1) + np.diag(np.full(n - 1, -2.0), -1)
    rows, cols, vals = [], [], []
    for i in range(n):
        for j in range(n):
            if dense[i, j] != 0:  # every entry as two duplicates that sum to it
                rows += [i, i]
                cols += [j, j]
                vals += [0.25 * dense[i, j], 0.75 * dense[i, j]]
        if dense[i, (i + 3) % n] == 0:  # plus an explicit zero
            rows.append(i)
            cols.append((i + 3) % n)
            vals.append(0.0)
    rows, cols, vals = map(np.array, (rows, cols, vals))
    perm = np.lexsort((rng.random(rows.size), rows))  # row-major, columns shuffled within a row
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))]
    M = sp.csr_matrix((vals[perm], cols[perm], indptr), shape=(n, n))
    assert not M.has_sorted_indices and not M.has_canonical_format
    snapshot = (M.data.copy(), M.indices.copy(), M.indptr.copy())
    b = rng.standard_normal(n)
    x = np.zeros(n)
    kf.sor.sweep(M, x, b, omega=1.2, direction="symmetric")
    np.testing.assert_allclose(x, dense_sor(dense, b, np.zeros(n), 1.2, "symmetric"), rtol=1e-12)
    for a, s in zip((M.data, M.indices, M.indptr), snapshot):  # the caller's matrix is untouched
        np.testing.assert_array_equal(a, s)


# ------------------------------------------------------------------ solve
@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_poisson_matches_spsolve(dtype):
    A = poisson2d(16, dtype=dtype)
    b = np.ones(A.shape[0], dtype=dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    res = kf.sor.solve(A, b, omega=1.7, rtol=rtol)
    assert res.converged and res.x.dtype == dtype
    ref = spla.spsolve(A.astype(np.float64).tocsc(), b.astype(np.float64))
    assert np.linalg.norm(res.x - ref) <= 200 * rtol * np.linalg.norm(ref)  # cond(A) ~ 100
    r = np.linalg.norm(b - A @ res.x) / np.linalg.norm(b)
    assert r <= rtol * (1.01 if dtype == np.float64 else 1.5)


@pytest.mark.parametrize("omega", [0.3, 0.8, 1.0, 1.5, 1.9])
@pytest.mark.parametrize("symmetric", [False, True])
def test_converges_for_spd(omega, symmetric, rng):
    A = random_spd(30, rng)
    b = rng.standard_normal(30)
    res = kf.sor.solve(A, b, omega=omega, rtol=1e-9, max_iter=200_000, symmetric=symmetric)
    assert res.converged
    assert np.linalg.norm(b - A @ res.x) <= 1e-9 * np.linalg.norm(b) * (1 + 1e-6)
    assert res.residuals.shape == (res.n_iter + 1,)
    assert res.residuals[0] == pytest.approx(1.0)  # x0 = 0


@pytest.mark.parametrize("symmetric", [False, True])
def test_fused_residual_and_iteration_count(symmetric, rng):
    A = poisson2d(10)
    b = rng.standard_normal(100)
    x0 = rng.standard_normal(100)
    res = kf.sor.solve(A, b, omega=1.5, x0=x0, rtol=1e-8, symmetric=symmetric)
    # Separate-SpMV reference: sweep one at a time, compute ||b - A x_k|| explicitly.
    x = x0.copy()
    hist = [np.linalg.norm(b - A @ x)]
    while hist[-1] > 1e-8 * np.linalg.norm(b):
        kf.sor.sweep(A, x, b, omega=1.5, direction="symmetric" if symmetric else "forward")
        hist.append(np.linalg.norm(b - A @ x))
    assert res.n_iter == len(hist) - 1
    np.testing.assert_allclose(res.residuals, np.array(hist) / np.linalg.norm(b), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(res.x, x, rtol=1e-12, atol=1e-12)
    assert np.linalg.norm(b - A @ res.x) / np.linalg.norm(b) == pytest.approx(res.residual, rel=1e-9)


def test_solve_does_not_modify_x0_and_zero_rhs(rng):
    A = poisson2d(5)
    x0 = rng.standard_normal(25)
    keep = x0.copy()
    kf.sor.solve(A, np.ones(25), x0=x0)
    np.testing.assert_array_equal(x0, keep)
    res = kf.sor.solve(A, np.zeros(25), x0=x0)
    assert res.converged and not res.x.any()


def test_young_omega_beats_gauss_seidel():
    # SOR at Young's optimum needs O(N) sweeps, Gauss-Seidel O(N^2) (papers.md 1.5: 220 vs 6217 at 64^2);
    # a 32^2 grid keeps the test fast.
    N = 32
    A = poisson2d(N)
    b = np.ones(N * N)
    beta = np.cos(np.pi / (N + 1))  # spectral radius of the Jacobi iteration matrix
    w_star = 2 / (1 + np.sqrt(1 - beta**2))
    gs = kf.sor.solve(A, b, omega=1.0, rtol=1e-8)
    opt = kf.sor.solve(A, b, omega=w_star, rtol=1e-8)
    assert gs.converged and opt.converged
    assert gs.n_iter > 8 * opt.n_iter
    # Neighbouring omegas do no better than Young's (to a small margin).
    for w in (w_star - 0.1, min(w_star + 0.05, 1.99)):
        assert kf.sor.solve(A, b, omega=w, rtol=1e-8).n_iter >= 0.9 * opt.n_iter


def test_max_iter_gives_warning_and_not_converged():
    A = poisson2d(20)
    b = np.ones(400)
    with pytest.warns(kf.ConvergenceWarning, match="did not reach"):
        res = kf.sor.solve(A, b, omega=1.0, max_iter=5)
    assert not res.converged and res.n_iter == 5 and res.residuals.shape == (6,)
    assert res.residual == pytest.approx(np.linalg.norm(b - A @ res.x) / np.linalg.norm(b), rel=1e-10)
    assert "converged" in repr(res) and res["n_iter"] == 5


def test_prepared_object_reuse(rng):
    A = random_dd(12, rng)
    S = kf.sor.SOR(A)
    assert "SOR(shape=(12, 12)" in repr(S)
    b = rng.standard_normal(12)
    x1 = kf.sor.sweep(S, np.zeros(12), b, omega=1.2)
    x2 = kf.sor.sweep(A, np.zeros(12), b, omega=1.2)
    np.testing.assert_array_equal(x1, x2)


def _lex_cases(rng):
    """Matrices that take each compact lexicographic layout (and one that stays CSR)."""
    P = poisson2d(12)
    uneven = P.copy()
    uneven.data = uneven.data * (1.0 + 0.1 * rng.random(uneven.nnz))  # float32 cannot hold these
    n = 70_000  # pentadiagonal plus a coupling 35000 rows away: offsets do not fit 16 bits
    far = (sp.diags([-0.5, -1.0, 5.0, -1.0, -0.5], [-2, -1, 0, 1, 2], shape=(n, n))
           + sp.diags([-0.5, -0.5], [-35_000, 35_000], shape=(n, n)))
    lone = P.tolil()
    lone.rows[0], lone.data[0] = [0], [4.0]  # row 0 without lower or upper entries
    return [("poisson", P.tocsr(), "ELL 2+2, 16-bit columns, float32 values"),
            ("uneven", uneven.tocsr(), "ELL 2+2, 16-bit columns"),
            ("far", far.tocsr(), "ELL 3+3, 32/64-bit columns, float32 values"),
            ("lone", lone.tocsr(), "ELL 2+2, 16-bit columns, float32 values"),
            ("irregular", random_dd(60, rng, density=0.1), "CSR")]


@pytest.mark.parametrize("dtype", DTYPES)
def test_lexicographic_compact_layout_same_bits(dtype, rng):
    # From the second sweep a prepared SOR reads a compact copy of A; every layout must give the
    # very iterates of the CSR kernel (a fresh object, whose first one-sweep call reads the CSR).
    for name, A, storage in _lex_cases(rng):
        A = A.astype(dtype)
        n = A.shape[0]
        b = rng.standard_normal(n).astype(dtype)
        x0 = rng.standard_normal(n).astype(dtype)
        S = kf.sor.SOR(A)
        assert S.lexicographic_storage == "CSR"
        S.sweep(x0.copy(), b, omega=1.3, sweeps=2)
        expected = storage if dtype == np.float64 else storage.replace(", float32 values", "")
        assert S.lexicographic_storage == expected, name
        for direction in DIRECTIONS:
            x = x0.copy()
            S.sweep(x, b, omega=1.3, direction=direction)
            y = x0.copy()
            kf.sor.SOR(A).sweep(y, b, omega=1.3, direction=direction)
            np.testing.assert_array_equal(x, y, err_msg=f"{name} {direction}")
        if n <= 200:  # and the dense splitting, as an independent reference
            x = x0.copy()
            S.sweep(x, b, omega=1.3, direction="symmetric")
            ref = dense_sor(A.toarray(), b, x0, 1.3, "symmetric")
            np.testing.assert_allclose(x, ref, rtol=tol(dtype) * 10, atol=tol(dtype) * 10 * np.abs(ref).max())
        # The solve's fused residual reads the same layout: its x is the sweeps' iterate.
        res = S.solve(b, omega=1.3, x0=x0, rtol=1e-30, max_iter=3, warn=False)
        x = x0.copy()
        kf.sor.SOR(A).sweep(x, b, omega=1.3)  # one sweep at a time on fresh objects: CSR kernel
        for _ in range(2):
            kf.sor.SOR(A).sweep(x, b, omega=1.3)
        np.testing.assert_array_equal(res.x, x, err_msg=name)
        r = np.linalg.norm(b.astype(np.float64) - A.astype(np.float64) @ x.astype(np.float64))
        assert res.residual == pytest.approx(r / np.linalg.norm(b.astype(np.float64)), rel=1e-3 if dtype == np.float32 else 1e-9)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("omega", [0.0, 2.0, -0.5, 2.5, np.nan, np.inf])
def test_omega_out_of_range(omega):
    A = poisson2d(3)
    with pytest.raises(ValueError, match="omega"):
        kf.sor.sweep(A, np.zeros(9), np.ones(9), omega=omega)
    with pytest.raises(ValueError, match="omega"):
        kf.sor.solve(A, np.ones(9), omega=omega)


def test_omega_wrong_type():
    with pytest.raises(TypeError, match="omega"):
        kf.sor.solve(poisson2d(3), np.ones(9), omega="1.5")


@pytest.mark.parametrize("value, word", [(0.0, "zero"), (-1.0, "negative")])
def test_bad_diagonal(value, word):
    A = poisson2d(3)
    A.data[A.indptr[4]:A.indptr[5]][A.indices[A.indptr[4]:A.indptr[5]] == 4] = value  # stored entry
    with pytest.raises(ValueError, match=word):
        kf.sor.SOR(A.tocsr())


def test_missing_diagonal_and_empty_row():
    A = sp.csr_matrix(np.array([[2.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 2.0]]))
    A.eliminate_zeros()
    with pytest.raises(ValueError, match="no diagonal entry in row 1"):
        kf.sor.sweep(A, np.zeros(3), np.ones(3))
    E = sp.csr_matrix(np.array([[2.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="row 1"):
        kf.sor.SOR(E)


def test_shape_mismatch():
    A = poisson2d(3)
    with pytest.raises(ValueError, match="b must have shape"):
        kf.sor.solve(A, np.ones(8))
    with pytest.raises(ValueError, match="x must have shape"):
        kf.sor.sweep(A, np.zeros(8), np.ones(9))
    with pytest.raises(ValueError, match="x0 must have shape"):
        kf.sor.solve(A, np.ones(9), x0=np.zeros(10))
    with pytest.raises(ValueError, match="b must be 1-D"):
        kf.sor.solve(A, np.ones((9, 1)))


def test_nan_inf_inputs():
    A = poisson2d(3).astype(np.float64)
    for bad in (np.nan, np.inf):
        B = A.copy()
        B.data[3] = bad
        with pytest.raises(ValueError, match="A must be finite"):
            kf.sor.SOR(B)
        b = np.ones(9)
        b[2] = bad
        with pytest.raises(ValueError, match="b must be finite"):
            kf.sor.solve(A, b)
        x = np.zeros(9)
        x[0] = bad
        with pytest.raises(ValueError, match="x must be finite"):
            kf.sor.sweep(A, x, np.ones(9))


@pytest.mark.parametrize("ordering", ["lexicographic", "multicolor"])
@pytest.mark.parametrize("direction", ["forward", "backward", "symmetric"])
def test_sweep_nonfinite_detected_by_fused_check(ordering, direction):
    # sweep() does not scan x and b beforehand: the kernel flags a non-finite result, and the
    # error names the input that held NaN or inf.
    A = poisson2d(6)
    S = kf.sor.SOR(A)
    for bad in (np.nan, np.inf, -np.inf):
        for pos in (0, 17, 35):
            x = np.zeros(36)
            x[pos] = bad
            with pytest.raises(ValueError, match="x must be finite"):
                S.sweep(x, np.ones(36), omega=1.3, direction=direction, ordering=ordering)
            b = np.ones(36)
            b[pos] = bad
            with pytest.raises(ValueError, match="b must be finite"):
                S.sweep(np.zeros(36), b, omega=1.3, direction=direction, sweeps=2, ordering=ordering)
            xs = np.zeros(72)[::2]  # strided x is swept through a copy and left as it was
            xs[pos] = bad
            with pytest.raises(ValueError, match="x must be finite"):
                S.sweep(xs, np.ones(36), omega=1.3, direction=direction, ordering=ordering)
            assert np.count_nonzero(~np.isfinite(xs)) == 1
    if ordering == "lexicographic":
        # The lexicographic kernel reads the prepared CSR arrays in place (the multicolour one
        # sweeps its own permuted copy, made at preparation): a NaN written into them later is
        # caught too.
        S2 = kf.sor.SOR(A)
        S2.A.data[5] = np.nan
        with pytest.raises(ValueError, match="A must be finite"):
            S2.sweep(np.zeros(36), np.ones(36), omega=1.3, direction=direction)
    # No sweep, no flag: the inputs are checked up front instead.
    x = np.zeros(36)
    x[3] = np.nan
    with pytest.raises(ValueError, match="x must be finite"):
        S.sweep(x, np.ones(36), sweeps=0, ordering=ordering)


def test_sweep_overflow_is_reported():
    # A finite start that overflows (omega near 2 on a matrix where SOR diverges) is reported,
    # not returned as inf silently.
    A = sp.csr_matrix(np.array([[1.0, 3.0], [3.0, 1.0]]))
    x = np.array([1e300, -1e300])
    with pytest.raises(ValueError, match="overflowed"):
        kf.sor.sweep(A, x, np.ones(2), omega=1.9, sweeps=50)


def test_non_square_and_empty():
    with pytest.raises(ValueError, match="square"):
        kf.sor.SOR(sp.random(3, 4, density=0.5, format="csr"))
    with pytest.raises(ValueError, match="empty"):
        kf.sor.SOR(sp.csr_matrix((0, 0)))
    with pytest.raises(ValueError, match="2-D"):
        kf.sor.SOR(np.ones(3))


def test_bad_types_and_options():
    A = poisson2d(3)
    with pytest.raises(TypeError, match="x must have dtype float64"):
        kf.sor.sweep(A, np.zeros(9, dtype=np.float32), np.ones(9))
    with pytest.raises(TypeError, match="x must be a NumPy array"):
        kf.sor.sweep(A, [0.0] * 9, np.ones(9))
    with pytest.raises(TypeError, match="A must have a real floating dtype"):
        kf.sor.SOR(A.astype(np.complex128))
    with pytest.raises(ValueError, match="direction"):
        kf.sor.sweep(A, np.zeros(9), np.ones(9), direction="sideways")
    with pytest.raises(ValueError, match="sweeps"):
        kf.sor.sweep(A, np.zeros(9), np.ones(9), sweeps=-1)
    with pytest.raises(ValueError, match="max_iter"):
        kf.sor.solve(A, np.ones(9), max_iter=-1)
    with pytest.raises(ValueError, match="rtol"):
        kf.sor.solve(A, np.ones(9), rtol=-1e-3)
    x = np.zeros(9)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        kf.sor.sweep(A, x, np.ones(9))


# ------------------------------------------------------------------ multicolour ordering
def poisson3d(n):
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    I = sp.eye(n)
    return (sp.kron(sp.kron(T, I), I) + sp.kron(sp.kron(I, T), I) + sp.kron(sp.kron(I, I), T)).tocsr()


def check_coloring(A, colors):
    C = sp.coo_matrix(A)
    off = C.row != C.col
    assert not np.any(colors[C.row[off]] == colors[C.col[off]]), "two coupled rows share a colour"


@pytest.mark.parametrize("symmetric", [False, True])
def test_coloring_valid_on_random_graphs(symmetric, rng):
    for trial in range(5):
        A = random_dd(60, rng, density=0.08, symmetric=symmetric)
        S = kf.sor.SOR(A, ordering="multicolor")
        check_coloring(A, S.colors)
        check_coloring(A.T, S.colors)  # A + A^T: nonsymmetric couplings in both directions
        deg = np.diff(((A + A.T) != 0).tocsr().indptr) - 1
        assert S.n_colors <= deg.max() + 1
        assert set(np.unique(S.colors)) == set(range(S.n_colors))


def test_red_black_on_stencils():
    for A in (poisson2d(7), poisson2d(8), poisson3d(5)):
        S = kf.sor.SOR(A, ordering="multicolor")
        assert S.n_colors == 2
        check_coloring(A, S.colors)


def permuted(A, colors):
    perm = np.argsort(colors, kind="stable")
    return perm, A[perm][:, perm]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_multicolor_sweep_is_sor_of_permuted_matrix(dtype, direction, rng):
    A = random_dd(40, rng, density=0.1, dtype=dtype)
    S = kf.sor.SOR(A, ordering="multicolor")
    assert S.n_colors > 2
    perm, P = permuted(A, S.colors)
    b = rng.standard_normal(40).astype(dtype)
    x0 = rng.standard_normal(40).astype(dtype)
    x = x0.copy()
    S.sweep(x, b, omega=1.3, direction=direction, sweeps=2)
    ref = dense_sor(P.toarray(), b[perm], dense_sor(P.toarray(), b[perm], x0[perm], 1.3, direction), 1.3, direction)
    out = np.empty_like(ref)
    out[perm] = ref
    np.testing.assert_allclose(x, out, rtol=tol(dtype) * 10, atol=tol(dtype) * 10 * np.abs(out).max())
    # The per-call ordering override on a lexicographic object gives the same iterate.
    y = x0.copy()
    kf.sor.sweep(A, y, b, omega=1.3, direction=direction, sweeps=2, ordering="multicolor")
    np.testing.assert_array_equal(x, y)


def _variable_poisson(m, rng):
    """5-point stencil with random positive edge weights: values a_ij / a_ii are not float32-exact."""
    A = poisson2d(m).tocoo()
    off = A.row < A.col
    w = 0.5 + rng.random(off.sum())
    W = sp.coo_matrix((np.r_[w, w], (np.r_[A.row[off], A.col[off]], np.r_[A.col[off], A.row[off]])), shape=A.shape)
    return (sp.diags(np.asarray(W.sum(axis=1)).ravel() + 0.1) - W).tocsr()


def _with_isolated_rows(m):
    """2-D Poisson with a few decoupled rows: rows without off-diagonals inside an ELL layout."""
    A = poisson2d(m).tolil()
    for i in (0, 7, m * m - 1):
        A.rows[i], A.data[i] = [i], [3.0]
    A = A.tocsr()
    A = A.multiply(A.T != 0).tocsr()  # drop the couplings into those rows too
    return A.tocsr()


def _long_range(n):
    """Tridiagonal plus the coupling i <-> n-1-i: a block of rows reaches columns more than 65535
    apart in the permuted order, so the columns cannot be stored as 16-bit offsets."""
    i = np.arange(n // 2)
    L = sp.coo_matrix((np.full(i.size, -0.5), (i, n - 1 - i)), shape=(n, n))
    T = sp.diags([-1.0, 3.0, -1.0], [-1, 0, 1], shape=(n, n))
    return (T + L + L.T).tocsr()


@pytest.mark.parametrize("case, dtype, storage", [
    ("poisson2d", np.float64, "ELL width 4, 16-bit columns, float32 values (exact)"),
    ("poisson2d", np.float32, "ELL width 4, 16-bit columns, float32 values"),
    ("poisson3d", np.float64, "ELL width 6, 16-bit columns, float64 values"),
    ("variable", np.float64, "ELL width 4, 16-bit columns, float64 values"),
    ("isolated", np.float64, "ELL width 4, 16-bit columns, float32 values (exact)"),
    ("irregular", np.float64, "CSR, 16-bit columns, float64 values"),
    ("irregular", np.float32, "CSR, 16-bit columns, float32 values"),
])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_multicolor_storage_layouts_match_dense(case, dtype, storage, direction, rng):
    # Each compressed layout of the permuted matrix (ELL, 16-bit columns, exact float32 values)
    # must give the SOR iterate of the permuted matrix, computed densely.
    A = {"poisson2d": lambda: poisson2d(13), "poisson3d": lambda: poisson3d(6),
         "variable": lambda: _variable_poisson(13, rng), "isolated": lambda: _with_isolated_rows(12),
         "irregular": lambda: random_dd(150, rng, density=0.03) + sp.diags(np.r_[0.0, np.full(149, 0.0)]) +
         sp.csr_matrix((np.full(149, -0.01), (np.zeros(149, int), np.arange(1, 150))), shape=(150, 150))}[case]()
    A = sp.csr_matrix(A).astype(dtype)
    S = kf.sor.SOR(A, ordering="multicolor")
    assert S.multicolor_storage == storage
    check_coloring(A, S.colors)
    perm, P = permuted(A, S.colors)
    n = A.shape[0]
    b = rng.standard_normal(n).astype(dtype)
    x0 = rng.standard_normal(n).astype(dtype)
    x = x0.copy()
    S.sweep(x, b, omega=1.4, direction=direction, sweeps=2)
    Pd = P.toarray()
    ref = dense_sor(Pd, b[perm], dense_sor(Pd, b[perm], x0[perm], 1.4, direction), 1.4, direction)
    out = np.empty_like(ref)
    out[perm] = ref
    np.testing.assert_allclose(x, out, rtol=tol(dtype) * 10, atol=tol(dtype) * 10 * np.abs(out).max())
    # The residual fused into the solve's sweeps reads the same layout.
    res = S.solve(b, omega=1.2, rtol=1e-3 if dtype == np.float32 else 1e-9, symmetric=direction == "symmetric")
    assert res.converged
    bn = np.linalg.norm(b.astype(np.float64))
    r = np.linalg.norm(b.astype(np.float64) - A.astype(np.float64) @ res.x.astype(np.float64)) / bn
    assert r == pytest.approx(res.residual, rel=1e-3 if dtype == np.float32 else 1e-8)


@pytest.mark.parametrize("hub, storage", [(False, "ELL width 3, 32/64-bit columns"), (True, "CSR, 32/64-bit columns")])
def test_multicolor_wide_column_span(hub, storage):
    # 140000 rows with couplings across the whole range: 32-bit columns (a hub row with 40 couplings
    # makes the rows too uneven for ELL); the multicolour sweep equals the lexicographic sweep of the
    # permuted matrix (itself tested against dense SOR).
    A = _long_range(140_000)
    if hub:
        j = np.arange(1, 41) * 3000
        H = sp.coo_matrix((np.full(40, -0.01), (np.zeros(40, int), j)), shape=A.shape)
        A = (A + H + H.T).tocsr()
    S = kf.sor.SOR(A, ordering="multicolor")
    assert S.multicolor_storage.startswith(storage)
    perm, P = permuted(A, S.colors)
    rng = np.random.default_rng(5)
    b = rng.standard_normal(A.shape[0])
    x0 = rng.standard_normal(A.shape[0])
    for direction in DIRECTIONS:
        x = x0.copy()
        S.sweep(x, b, omega=1.3, direction=direction, sweeps=2)
        y = x0[perm].copy()
        kf.sor.sweep(P, y, b[perm], omega=1.3, direction=direction, sweeps=2)
        np.testing.assert_allclose(x[perm], y, rtol=1e-13, atol=1e-13 * np.abs(y).max())


@pytest.mark.parametrize("symmetric", [False, True])
def test_multicolor_bitwise_identical_across_threads(symmetric, rng):
    A = poisson2d(130)  # above the size threshold, so 2 threads really run
    b = rng.standard_normal(A.shape[0])
    S = kf.sor.SOR(A, ordering="multicolor")
    out = {}
    for nt in (1, 2):
        with kf.threads(nt):
            x = np.zeros(A.shape[0])
            S.sweep(x, b, omega=1.7, direction="symmetric" if symmetric else "forward", sweeps=3)
            res = S.solve(b, omega=1.9, rtol=1e-6, symmetric=symmetric, max_iter=300, warn=False)
            xj = np.zeros(A.shape[0])
            S.jacobi(xj, b, omega=0.8, sweeps=3)
            rj = S.solve(b, omega=0.8, rtol=1e-2, max_iter=50, method="jacobi", warn=False)
        out[nt] = (x, res, xj, rj)
    np.testing.assert_array_equal(out[1][0], out[2][0])
    np.testing.assert_array_equal(out[1][1].x, out[2][1].x)
    np.testing.assert_array_equal(out[1][1].residuals, out[2][1].residuals)
    np.testing.assert_array_equal(out[1][2], out[2][2])
    np.testing.assert_array_equal(out[1][3].x, out[2][3].x)
    np.testing.assert_array_equal(out[1][3].residuals, out[2][3].residuals)


@pytest.mark.parametrize("symmetric", [False, True])
def test_multicolor_solve_fused_residual(symmetric, rng):
    A = random_dd(50, rng, density=0.1)
    b = rng.standard_normal(50)
    S = kf.sor.SOR(A, ordering="multicolor")
    res = S.solve(b, omega=1.1, rtol=1e-10, symmetric=symmetric)
    assert res.converged
    x = np.zeros(50)
    hist = [np.linalg.norm(b)]
    while hist[-1] > 1e-10 * np.linalg.norm(b):
        S.sweep(x, b, omega=1.1, direction="symmetric" if symmetric else "forward")
        hist.append(np.linalg.norm(b - A @ x))
    assert res.n_iter == len(hist) - 1
    np.testing.assert_allclose(res.residuals, np.array(hist) / hist[0], rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(res.x, x, rtol=1e-12, atol=1e-14)
    with pytest.warns(kf.ConvergenceWarning, match="multicolour SOR"):
        capped = S.solve(b, omega=1.1, max_iter=3)
    assert not capped.converged and capped.n_iter == 3
    assert capped.residual == pytest.approx(np.linalg.norm(b - A @ capped.x) / np.linalg.norm(b), rel=1e-10)


def test_multicolor_iteration_counts_close_to_lexicographic():
    # papers.md 1.2: the orderings are different iterations with similar convergence; nearly
    # equal counts at Young's omega on a 5-point grid.
    N = 32
    A = poisson2d(N)
    b = np.ones(N * N)
    w_star = 2 / (1 + np.sin(np.pi / (N + 1)))
    lex = kf.sor.solve(A, b, omega=w_star)
    mc = kf.sor.solve(A, b, omega=w_star, ordering="multicolor")
    assert lex.converged and mc.converged
    assert abs(lex.n_iter - mc.n_iter) <= 0.1 * lex.n_iter
    gs_lex = kf.sor.solve(A, b, omega=1.0)
    gs_mc = kf.sor.solve(A, b, omega=1.0, ordering="multicolor")
    assert abs(gs_lex.n_iter - gs_mc.n_iter) <= 0.1 * gs_lex.n_iter
    ref = spla.spsolve(A.tocsc(), b)
    assert np.linalg.norm(mc.x - ref) <= 1e-5 * np.linalg.norm(ref)


def test_ordering_errors():
    with pytest.raises(ValueError, match="ordering"):
        kf.sor.SOR(poisson2d(3), ordering="random")
    with pytest.raises(ValueError, match="ordering"):
        kf.sor.solve(poisson2d(3), np.ones(9), ordering="red-black")
    with pytest.raises(ValueError, match="method"):
        kf.sor.solve(poisson2d(3), np.ones(9), method="gmres")


# ------------------------------------------------------------------ weighted Jacobi
@pytest.mark.parametrize("dtype", DTYPES)
def test_jacobi_matches_dense_and_pyamg(dtype, rng):
    A = random_dd(30, rng, dtype=dtype)
    b = rng.standard_normal(30).astype(dtype)
    x0 = rng.standard_normal(30).astype(dtype)
    x = x0.copy()
    kf.sor.jacobi(A, x, b, omega=0.7, sweeps=3)
    Ad = A.toarray().astype(np.float64)
    ref = x0.astype(np.float64)
    for _ in range(3):
        ref = ref + 0.7 * (b - Ad @ ref) / np.diag(Ad)
    np.testing.assert_allclose(x, ref, rtol=tol(dtype) * 10, atol=tol(dtype) * 10)
    relax = pytest.importorskip("pyamg.relaxation.relaxation", reason="PyAMG is a Jacobi reference")
    y = x0.copy()
    relax.jacobi(A, y, b, iterations=3, omega=0.7)
    np.testing.assert_allclose(x, y, rtol=tol(dtype) * 10, atol=tol(dtype) * 10)


def test_jacobi_solve(rng):
    A = random_dd(40, rng)
    b = rng.standard_normal(40)
    res = kf.sor.solve(A, b, omega=1.0, rtol=1e-10, method="jacobi")
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A.toarray(), b), rtol=1e-8)
    assert res.residual == pytest.approx(np.linalg.norm(b - A @ res.x) / np.linalg.norm(b), rel=1e-8)
    # Gauss-Seidel beats Jacobi on the same matrix (Stein-Rosenberg for this M-matrix-like case).
    P = poisson2d(12)
    gs = kf.sor.solve(P, np.ones(144), omega=1.0)
    jac = kf.sor.solve(P, np.ones(144), omega=1.0, method="jacobi")
    assert gs.converged and jac.converged and gs.n_iter < jac.n_iter
    with pytest.warns(kf.ConvergenceWarning, match="Jacobi"):
        capped = kf.sor.solve(P, np.ones(144), method="jacobi", max_iter=4)
    assert capped.n_iter == 4 and not capped.converged
    assert capped.residual == pytest.approx(np.linalg.norm(1 - P @ capped.x) / 12, rel=1e-10)
    with pytest.raises(ValueError, match="omega"):
        kf.sor.jacobi(P, np.zeros(144), np.ones(144), omega=2.0)


# ------------------------------------------------------------------ SSOR preconditioner and SSOR-CG
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("omega", [0.5, 1.0, 1.6])
def test_ssor_preconditioner_matches_textbook(dtype, omega, rng):
    A = random_spd(25, rng, dtype=dtype)
    Ad = A.toarray().astype(np.float64)
    D = np.diag(np.diag(Ad))
    L = np.tril(Ad, -1)
    U = np.triu(Ad, 1)
    M = (D + omega * L) @ np.linalg.inv(D) @ (D + omega * U) / (omega * (2 - omega))
    r = rng.standard_normal(25).astype(dtype)
    z = kf.sor.ssor_preconditioner(A, omega).matvec(r)
    ref = np.linalg.solve(M, r.astype(np.float64))
    np.testing.assert_allclose(z, ref, rtol=tol(dtype) * 100, atol=tol(dtype) * 100 * np.abs(ref).max())
    # M^{-1} is symmetric for symmetric A.
    op = kf.sor.ssor_preconditioner(A, omega)
    u, v = rng.standard_normal(25), rng.standard_normal(25)
    assert u @ op.matvec(v) == pytest.approx(v @ op.matvec(u), rel=tol(dtype) * 100)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ssor_cg_poisson(dtype):
    A = poisson2d(24, dtype=dtype)
    b = np.ones(A.shape[0], dtype=dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    res = kf.sor.ssor_cg(A, b, omega=1.6, rtol=rtol)
    assert res.converged and res.x.dtype == dtype
    ref = spla.spsolve(A.astype(np.float64).tocsc(), b.astype(np.float64))
    assert np.linalg.norm(res.x - ref) <= 500 * rtol * np.linalg.norm(ref)
    assert res.residuals.shape == (res.n_iter + 1,)
    if dtype == np.float64:
        # Same iteration as SciPy's CG with our preconditioner; fewer iterations than plain CG.
        count = [0]
        x, info = spla.cg(A, b, rtol=rtol, M=kf.sor.ssor_preconditioner(A, 1.6),
                          callback=lambda _: count.__setitem__(0, count[0] + 1))
        assert info == 0 and abs(count[0] - res.n_iter) <= 1
        plain = [0]
        spla.cg(A, b, rtol=rtol, callback=lambda _: plain.__setitem__(0, plain[0] + 1))
        assert res.n_iter < 0.6 * plain[0]
        np.testing.assert_allclose(res.x, x, rtol=1e-7, atol=1e-9)


def test_ssor_cg_warm_start_and_cap(rng):
    A = poisson2d(10)
    b = rng.standard_normal(100)
    x_exact = spla.spsolve(A.tocsc(), b)
    res = kf.sor.ssor_cg(A, b, omega=1.3, x0=x_exact)
    assert res.converged and res.n_iter == 0
    with pytest.warns(kf.ConvergenceWarning, match="SSOR-CG"):
        capped = kf.sor.ssor_cg(A, b, omega=1.3, max_iter=2, rtol=1e-14)
    assert not capped.converged and capped.n_iter == 2


def test_ssor_cg_rejects_non_spd(rng):
    with pytest.raises(ValueError, match="not symmetric"):
        kf.sor.ssor_cg(random_dd(10, rng), np.ones(10))
    # Symmetric with a positive diagonal but indefinite: CG meets negative curvature.
    Ind = sp.csr_matrix(np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive definite"):
        kf.sor.ssor_cg(Ind, np.array([1.0, -1.0, 0.5]))
    with pytest.raises(ValueError, match="omega"):
        kf.sor.ssor_cg(poisson2d(3), np.ones(9), omega=2.0)


def test_symmetry_check(rng):
    A = random_spd(30, rng)
    assert kf.sor.SOR(A).is_symmetric()
    B = A.tolil()
    B[3, 7] += 1e-3  # breaks symmetry by a value
    assert not kf.sor.SOR(B.tocsr()).is_symmetric()
    C = A.tolil()
    C[0, 29] = 0.5  # an entry whose transpose is not stored
    C[29, 0] = 0.0
    assert not kf.sor.SOR(C.tocsr()).is_symmetric()
    assert kf.sor.SOR(poisson2d(6, dtype=np.float32)).is_symmetric()


# ------------------------------------------------------------------ property test
def test_sweep_property_random_shapes():
    hyp = pytest.importorskip("hypothesis", reason="property tests use hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hyp.settings(max_examples=25, deadline=None)
    @hyp.given(n=st.integers(1, 25), seed=st.integers(0, 2**31 - 1), omega=st.floats(0.05, 1.95),
               direction=st.sampled_from(DIRECTIONS), ordering=st.sampled_from(["lexicographic", "multicolor"]),
               dtype=st.sampled_from(DTYPES), stride=st.integers(1, 3))
    def check(n, seed, omega, direction, ordering, dtype, stride):
        rng = np.random.default_rng(seed)
        A = random_dd(n, rng, density=0.3, dtype=dtype)
        S = kf.sor.SOR(A, ordering=ordering)
        perm = np.argsort(S.colors, kind="stable") if ordering == "multicolor" else np.arange(n)
        b_big = rng.standard_normal(n * stride).astype(dtype)
        b = b_big[::stride]  # strided right-hand side
        x0 = rng.standard_normal(n).astype(dtype)
        x = x0.copy()
        S.sweep(x, b, omega=omega, direction=direction)
        P = A.toarray()[np.ix_(perm, perm)]
        ref = np.empty(n)
        ref[perm] = dense_sor(P, b[perm], x0[perm], omega, direction)
        np.testing.assert_allclose(x, ref, rtol=tol(dtype) * 50, atol=tol(dtype) * 50 * (1 + np.abs(ref).max()))

    check()
