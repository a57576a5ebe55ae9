"""Tests of kf.ot against POT (optional peer), closed forms and properties."""
import warnings

import numpy as np
import pytest

import kernforge as kf

pot = pytest.importorskip("ot", reason="POT (pip install pot) is the reference for the OT tests")


def clouds(n, m=None, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    m = n if m is None else m
    x, y = rng.random((n, 2)), rng.random((m, 2))
    M = pot.dist(x, y)
    M /= M.max()
    return x, y, M.astype(dtype)


def uniform(n, dtype=np.float64):
    return np.full(n, 1.0 / n, dtype=dtype)


# ----------------------------------------------------------------------------- balanced vs POT
@pytest.mark.parametrize("method", ["log", "sinkhorn", "sns"])
@pytest.mark.parametrize("reg", [0.1, 0.01])
def test_sinkhorn_matches_pot(method, reg):
    _, _, M = clouds(120, 90, seed=1)
    rng = np.random.default_rng(2)
    a = rng.random(120) + 0.1
    a /= a.sum()
    b = rng.random(90) + 0.1
    b /= b.sum()
    ref = pot.sinkhorn(a, b, M, reg, method="sinkhorn_log", stopThr=1e-12, numItermax=100000)
    res = kf.ot.sinkhorn(a, b, M, reg, method=method, tol=1e-11)
    assert res.converged
    np.testing.assert_allclose(res.plan, ref, atol=1e-9 * ref.max() + 1e-12, rtol=1e-6)
    assert res.cost == pytest.approx(float((ref * M).sum()), rel=1e-8)
    np.testing.assert_allclose(res.plan.sum(1), a, atol=1e-13)
    assert np.linalg.norm(res.plan.sum(0) - b) < 1e-11
    # The plan is the exponential of the potentials.
    np.testing.assert_allclose(np.exp((res.f[:, None] + res.g[None, :] - M) / reg), res.plan, rtol=1e-10, atol=1e-300)
    # objective = <P, M> + reg * sum P (log P - 1)
    P = ref
    obj = (P * M).sum() + reg * (P * (np.log(P) - 1)).sum()
    assert res.objective == pytest.approx(obj, rel=1e-8, abs=1e-12)


@pytest.mark.parametrize("method", ["log", "sinkhorn", "sns"])
def test_float32_agrees_with_float64(method):
    _, _, M = clouds(80, seed=3)
    a = uniform(80)
    r64 = kf.ot.sinkhorn(a, a, M, 0.05, method=method)
    r32 = kf.ot.sinkhorn(a.astype(np.float32), a.astype(np.float32), M.astype(np.float32), 0.05, method=method)
    assert r32.plan.dtype == np.float32 and r32.f.dtype == np.float32
    assert r32.converged
    np.testing.assert_allclose(r32.plan, r64.plan, atol=2e-5 * r64.plan.max())
    assert r32.cost == pytest.approx(r64.cost, rel=1e-4)


def test_marginals_hold_to_tol():
    _, _, M = clouds(200, 150, seed=4)
    a, b = uniform(200), uniform(150)
    for tol in (1e-6, 1e-9):
        res = kf.ot.sinkhorn(a, b, M, 0.01, tol=tol)
        assert res.converged and res.errors[-1] < tol
        assert np.linalg.norm(res.plan.sum(0) - b) < tol
        np.testing.assert_allclose(res.plan.sum(1), a, atol=1e-15)


def test_entropic_cost_tends_to_emd():
    _, _, M = clouds(60, seed=5)
    a = uniform(60)
    exact = float((pot.emd(a, a, M) * M).sum())
    gaps = []
    for reg in (1e-1, 1e-2, 1e-3):
        res = kf.ot.sinkhorn(a, a, M, reg, max_iter=200000)
        assert res.converged and np.isfinite(res.plan).all()
        gaps.append(res.cost - exact)
    assert all(g > -1e-9 for g in gaps)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[-1] < 0.05 * exact
    # At reg = 1e-4 Sinkhorn crawls (as POT's does: the plan is nearly a permutation); within a
    # modest budget the answer is finite, the flag is honest and the cost is within 1e-4 of exact.
    with pytest.warns(kf.ConvergenceWarning):
        res = kf.ot.sinkhorn(a, a, M, 1e-4, max_iter=3000)
    assert not res.converged and res.errors[-1] > 1e-9 and np.isfinite(res.plan).all()
    np.testing.assert_allclose(res.plan.sum(1), a, atol=1e-12)


def test_small_reg_log_is_stable_and_kernel_switches():
    _, _, M = clouds(100, seed=6)
    a = uniform(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kf.ConvergenceWarning)
        res = kf.ot.sinkhorn(a, a, M, 1e-4, max_iter=2000)
        k = kf.ot.sinkhorn(a, a, M, 1e-4, method="sinkhorn", max_iter=2000)
    assert np.isfinite(res.plan).all() and np.isfinite(res.f).all() and np.isfinite(res.errors).all()
    assert k.method == "log" and "log domain" in k.extra["note"]
    assert np.isfinite(k.plan).all()
    np.testing.assert_allclose(k.plan.sum(1), a, atol=1e-12)


def test_pot_dist0_small_reg():
    # POT's test_sinkhorn_stabilization scenario: 1-D Gaussians on dist0, reg = 1e-5.
    n = 100
    a = pot.datasets.make_1D_gauss(n, m=20, s=5)
    b = pot.datasets.make_1D_gauss(n, m=60, s=8)
    M = pot.utils.dist0(n)
    M /= M.max()
    ref = pot.sinkhorn2(a, b, M, 1e-5, method="sinkhorn_log", stopThr=1e-9, numItermax=20000)
    res = kf.ot.sinkhorn(a, b, M, 1e-5, max_iter=20000)
    assert np.isfinite(res.plan).all()
    assert res.cost == pytest.approx(float(ref), rel=1e-6)


def test_gaussian_self_transport_flags_one_iteration():
    n = 100
    a = pot.datasets.make_1D_gauss(n, m=30, s=10)
    M = pot.utils.dist0(n)
    res = kf.ot.sinkhorn(a, a, M / M.max(), 1.0, tol=1e-10)
    np.testing.assert_allclose(res.plan.sum(0), a, atol=1e-5)
    with pytest.warns(kf.ConvergenceWarning):
        r1 = kf.ot.sinkhorn(a, a, M / M.max(), 1e-2, max_iter=1)
    assert not r1.converged and r1.n_iter == 1


def test_epsilon_scaling_and_warm_start_and_fixed_omega():
    _, _, M = clouds(150, seed=7)
    a = uniform(150)
    base = kf.ot.sinkhorn(a, a, M, 1e-3)
    assert base.omega > 1.2  # adaptive relaxation kicked in
    plain = kf.ot.sinkhorn(a, a, M, 1e-3, omega=1.0)
    assert plain.n_iter > 2 * base.n_iter
    es = kf.ot.sinkhorn(a, a, M, 1e-3, epsilon_scaling=True)
    for r in (plain, es):
        assert r.converged
        np.testing.assert_allclose(r.plan, base.plan, atol=1e-8)
    warm = kf.ot.sinkhorn(a, a, M, 1e-3, warm_start=(base.f, base.g))
    assert warm.n_iter <= 2
    np.testing.assert_allclose(warm.plan, base.plan, atol=1e-10)


# ----------------------------------------------------------------------------- SNS
@pytest.mark.parametrize("n", [500, 1000])
def test_sns_matches_pot_small_reg(n):
    _, _, M = clouds(n, seed=8)
    a = uniform(n)
    res = kf.ot.sinkhorn(a, a, M, 1e-3, method="sns")
    ref = kf.ot.sinkhorn(a, a, M, 1e-3, method="log")
    assert res.converged and res.n_newton > 0
    assert res.n_iter * 3 < 1300  # plain Sinkhorn needs ~1300-1700 iterations here
    assert res.cost == pytest.approx(ref.cost, rel=1e-6)
    np.testing.assert_allclose(res.plan, ref.plan, atol=1e-8 * n)
    if n == 500:
        P = pot.sinkhorn(a, a, M, 1e-3, stopThr=1e-9, numItermax=10000)
        assert res.cost == pytest.approx(float((P * M).sum()), rel=1e-6)


@pytest.mark.parametrize("n", [2000, 4000])
def test_sns_adaptive_budget_large(n):
    _, _, M = clouds(n, seed=9)
    a = uniform(n)
    res = kf.ot.sinkhorn(a, a, M, 1e-3, method="sns", tol=1e-9, return_plan=False)
    assert res.converged
    # Far fewer iterations than plain Sinkhorn (1300-1500 at this reg), and the budget grew with n.
    assert res.n_iter < 140
    assert res.extra["mean_kept"] > 5


def test_sns_random_assignment():
    # Tang et al.'s random assignment problem: iid uniform costs, eps = 1/1200 (n = 200 here).
    # Plain Sinkhorn crawls; SNS reaches the tolerance in about 20 + 15 iterations (paper: 20 + 9).
    rng = np.random.default_rng(10)
    M = rng.random((200, 200))
    a = uniform(200)
    res = kf.ot.sinkhorn(a, a, M, 1 / 1200, method="sns", max_iter=3000)
    with pytest.warns(kf.ConvergenceWarning):
        ref = kf.ot.sinkhorn(a, a, M, 1 / 1200, method="log", max_iter=3000)
    assert res.converged and not ref.converged
    assert res.n_iter < 100 and res.n_newton < 40
    np.testing.assert_allclose(res.plan.sum(1), a, atol=1e-14)
    assert np.linalg.norm(res.plan.sum(0) - a) < 1e-9
    # the entropic optimum is at least as good as the crawling iterate's objective on feasible plans
    assert res.cost == pytest.approx(ref.cost, rel=1e-3)


# ----------------------------------------------------------------------------- unbalanced, partial
@pytest.mark.parametrize("method", ["sinkhorn", "log"])
@pytest.mark.parametrize("reg_type", ["kl", "entropy"])
def test_unbalanced_matches_pot(reg_type, method):
    _, _, M = clouds(100, 80, seed=11)
    rng = np.random.default_rng(12)
    a = rng.random(100)
    a /= a.sum()
    b = 1.5 * rng.dirichlet(np.ones(80))
    reg, reg_m = 0.1, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pot.unbalanced.sinkhorn_unbalanced(a, b, M, reg, reg_m, reg_type=reg_type, stopThr=1e-14,
                                                 numItermax=100000)
    res = kf.ot.sinkhorn_unbalanced(a, b, M, reg, reg_m, reg_type=reg_type, method=method, tol=1e-12)
    assert res.converged and res.method == method
    np.testing.assert_allclose(res.plan, ref, rtol=1e-7, atol=1e-14)
    # The fixed point: f = tau * (reg log a - reg log R_i - reg LSE), tau = reg_m / (reg_m + reg).
    tau = reg_m / (reg_m + reg)
    lr = np.log(a) if reg_type == "kl" else 0.0
    lrb = np.log(b) if reg_type == "kl" else 0.0
    L = np.log(np.exp((res.g[None, :] - M) / reg + lrb).sum(1))
    np.testing.assert_allclose(res.f, tau * (reg * np.log(a) - reg * lr - reg * L), atol=1e-9)
    # objective, from POT's definition
    Rm = np.outer(a, b) if reg_type == "kl" else np.ones_like(M)

    def kl(x, y):
        return float((x * np.log(x / y) - x + y).sum())

    obj = (ref * M).sum() + reg * kl(ref, Rm) + reg_m * kl(ref.sum(1), a) + reg_m * kl(ref.sum(0), b)
    assert res.objective == pytest.approx(obj, rel=1e-8)


def test_unbalanced_small_reg_switches_to_log():
    _, _, M = clouds(60, seed=27)
    M[0] = 1.0  # a source far from every target: its kernel row underflows at this reg
    a = uniform(60)
    res = kf.ot.sinkhorn_unbalanced(a, 1.2 * a, M, 1e-3, 0.5, max_iter=100000)
    ref = kf.ot.sinkhorn_unbalanced(a, 1.2 * a, M, 1e-3, 0.5, method="log", max_iter=100000)
    assert res.method == "log" and "log domain" in res.extra["note"] and res.converged
    np.testing.assert_allclose(res.plan, ref.plan, atol=1e-10)


def test_unbalanced_reg_m_inf_is_balanced_and_large_reg_m_tends_to_it():
    _, _, M = clouds(70, seed=13)
    a = uniform(70)
    bal = kf.ot.sinkhorn(a, a, M, 0.05, tol=1e-12)
    inf = kf.ot.sinkhorn_unbalanced(a, a, M, 0.05, float("inf"), reg_type="entropy", tol=1e-12)
    np.testing.assert_allclose(inf.plan, bal.plan, atol=1e-12)
    big = kf.ot.sinkhorn_unbalanced(a, a, M, 0.05, 1e6, reg_type="entropy", tol=1e-9, max_iter=100000)
    np.testing.assert_allclose(big.plan, bal.plan, atol=1e-6 * bal.plan.max())
    # semi-relaxed: hard rows
    semi = kf.ot.sinkhorn_unbalanced(a, 1.3 * a, M, 0.05, (float("inf"), 1.0), tol=1e-12)
    np.testing.assert_allclose(semi.plan.sum(1), a, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pot.unbalanced.sinkhorn_unbalanced(a, 1.3 * a, M, 0.05, (float("inf"), 1.0), stopThr=1e-14,
                                                 numItermax=100000)
    np.testing.assert_allclose(semi.plan, ref, rtol=1e-6, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_partial_matches_pot(dtype):
    _, _, M = clouds(60, 50, seed=14)
    rng = np.random.default_rng(15)
    a = rng.random(60)
    a /= a.sum()
    b = rng.random(50)
    b /= b.sum()
    reg, mass = 0.05, 0.6
    ref = pot.partial.entropic_partial_wasserstein(a, b, M, reg, m=mass, stopThr=1e-14, numItermax=100000)
    res = kf.ot.partial(a.astype(dtype), b.astype(dtype), M.astype(dtype), reg, mass)
    assert res.converged
    tol = 1e-9 if dtype == np.float64 else 2e-5
    assert float(res.plan.sum()) == pytest.approx(mass, rel=tol)
    assert (res.plan.sum(1) <= a + tol).all() and (res.plan.sum(0) <= b + tol).all()
    np.testing.assert_allclose(res.plan, ref, atol=tol * 10 * ref.max() + 1e-12)


def test_partial_scaled_cost_small_reg_near_exact():
    # POT scenario: cost x50, reg 0.1 -> 5e-4 relative, m = 0.6: no NaN, mass exact, cost near exact.
    _, _, M = clouds(40, seed=16)
    a = uniform(40)
    exact = pot.partial.partial_wasserstein(a, a, M, m=0.6)
    exact_cost = float((exact * M).sum())
    res = kf.ot.partial(a, a, 50 * M, 0.1, 0.6, max_iter=200000)
    assert np.isfinite(res.plan).all() and res.converged
    assert float(res.plan.sum()) == pytest.approx(0.6, abs=1e-9)
    assert res.cost / 50 == pytest.approx(exact_cost, abs=0.01)


def _p2ot_reference(C, a, b_real, rho, reg, reg_m, iters=20000):
    """The kernel-domain loop of P^2OT (Zhang et al. 2024, Alg. 1), with a zero-cost dummy column."""
    n, k = C.shape
    Ce = np.hstack([C, np.zeros((n, 1))])
    K = np.exp(-Ce / reg)
    bt = np.append(rho * b_real, 1 - rho)
    tau = reg_m / (reg_m + reg)
    v = np.ones(k + 1)
    for _ in range(iters):
        u = a / (K @ v)
        vn = bt / (K.T @ u)
        vn[:k] = vn[:k] ** tau
        if np.abs(vn - v).max() < 1e-15 * np.abs(v).max():
            v = vn
            break
        v = vn
    u = a / (K @ v)
    return (u[:, None] * K * v[None, :])[:, :k]


def test_progressive_partial_matches_reference_loop():
    rng = np.random.default_rng(17)
    scores = rng.dirichlet(np.ones(6), size=150)
    C = -np.log(scores)
    a = uniform(150)
    prior = uniform(6)
    for rho in (0.2, 0.7, 1.0):
        res = kf.ot.progressive_partial(scores, prior, rho, reg=0.1, reg_m=1.0, input="scores", tol=1e-12,
                                        max_iter=20000)
        assert res.converged
        ref = _p2ot_reference(C, a, prior, rho, 0.1, 1.0)
        np.testing.assert_allclose(res.plan, ref, rtol=1e-7, atol=1e-14)
        assert float(res.plan.sum()) == pytest.approx(rho, rel=1e-9)
        assert (res.plan.sum(1) <= a + 1e-12).all()
        # warm start from the previous solution converges at once
        w = kf.ot.progressive_partial(C, prior, rho, warm_start=(res.f, res.g, res.extra["g_dummy"]), tol=1e-12,
                                      max_iter=20000)
        assert w.n_iter <= 2


# ----------------------------------------------------------------------------- batched, points, costs
def test_batch_equals_loop():
    rng = np.random.default_rng(18)
    B, n, m = 12, 20, 15
    M = rng.random((B, n, m))
    a = rng.random((B, n)) + 0.1
    a /= a.sum(1, keepdims=True)
    b = rng.random((B, m)) + 0.1
    b /= b.sum(1, keepdims=True)
    for method in ("sinkhorn", "log"):
        res = kf.ot.sinkhorn_batch(a, b, M, 0.05, method=method)
        assert res.plan.shape == (B, n, m) and res.converged.all()
        for k in range(B):
            s = kf.ot.sinkhorn(a[k], b[k], M[k], 0.05, method=method)
            np.testing.assert_array_equal(res.plan[k], s.plan)
            assert res.cost[k] == s.cost and res.n_iter[k] == s.n_iter
            assert res.objective[k] == pytest.approx(s.objective, rel=1e-7)
        shared = kf.ot.sinkhorn_batch(a, b, M[0], 0.05, method=method)
        s0 = kf.ot.sinkhorn(a[3], b[3], M[0], 0.05, method=method)
        np.testing.assert_array_equal(shared.plan[3], s0.plan)
    # tiny reg: the kernel underflows and each problem switches to the log domain, like single solves
    res = kf.ot.sinkhorn_batch(a[:3], b[:3], M[:3], 1e-3, max_iter=200000)
    for k in range(3):
        s = kf.ot.sinkhorn(a[k], b[k], M[k], 1e-3, method="sinkhorn", max_iter=200000)
        np.testing.assert_allclose(res.plan[k], s.plan, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_small_path_matches_pot_and_thread_count(dtype):
    # n = 64: the small-problem kernel path (register-blocked matvecs, first-order over-relaxation).
    rng = np.random.default_rng(30)
    B, n = 6, 64
    X, Y = rng.random((B, n, 2)), rng.random((B, n, 2))
    M = ((X[:, :, None, :] - Y[:, None, :, :]) ** 2).sum(-1)
    M /= M.max(axis=(1, 2), keepdims=True)
    a = np.full((B, n), 1.0 / n)
    tol = 1e-9 if dtype == np.float64 else 1e-5
    with kf.threads(1):
        r1 = kf.ot.sinkhorn_batch(a.astype(dtype), a.astype(dtype), M.astype(dtype), 0.05, tol=tol)
    with kf.threads(2):
        r2 = kf.ot.sinkhorn_batch(a.astype(dtype), a.astype(dtype), M.astype(dtype), 0.05, tol=tol)
    np.testing.assert_array_equal(r1.plan, r2.plan)
    assert r1.converged.all() and r1.plan.dtype == dtype
    for k in range(B):
        ref = pot.sinkhorn(a[k], a[k], M[k], 0.05, stopThr=1e-12, numItermax=100000)
        np.testing.assert_allclose(r1.plan[k].sum(1), a[k], rtol=1e-10 if dtype == np.float64 else 1e-4)
        # float32: the column residual 1e-5 is 6e-4 of a column mass 1/64.
        np.testing.assert_allclose(r1.plan[k], ref, atol=(1e-9 if dtype == np.float64 else 1e-3) * ref.max())


def test_partial_kernel_and_log_domain_agree():
    # Adding a constant to M leaves the partial plan unchanged (total mass is fixed) but pushes
    # exp(-M/reg) out of range, so the second solve runs in the log domain.
    _, _, M = clouds(70, 60, seed=31)
    a, b = uniform(70), uniform(60)
    k = kf.ot.partial(a, b, M, 0.02, 0.7, tol=1e-12)
    lg = kf.ot.partial(a, b, M + 20.0, 0.02, 0.7, tol=1e-12)
    assert k.converged and lg.converged
    np.testing.assert_allclose(k.plan, lg.plan, atol=1e-10 * k.plan.max())
    assert lg.cost == pytest.approx(k.cost + 20.0 * 0.7, rel=1e-10)


def test_one_a_three_b_equals_separate_pot_calls():
    _, _, M = clouds(50, seed=19)
    rng = np.random.default_rng(20)
    a = uniform(50)
    bs = rng.dirichlet(np.ones(50), size=3)
    res = kf.ot.sinkhorn_batch(np.tile(a, (3, 1)), bs, M, 0.1)
    for k in range(3):
        ref = pot.sinkhorn2(a, bs[k], M, 0.1, stopThr=1e-12)
        assert res.cost[k] == pytest.approx(float(ref), rel=1e-4)


def test_points_equal_dense_and_lazy_plan():
    x, y, _ = clouds(300, 250, seed=21)
    M = kf.ot.cost_matrix(x, y)
    res_d = kf.ot.sinkhorn(None, None, M, 0.01)
    res_p = kf.ot.sinkhorn_points(x, y, 0.01)
    assert res_p.converged
    np.testing.assert_allclose(res_p.f, res_d.f, atol=1e-10)
    assert res_p.cost == pytest.approx(res_d.cost, rel=1e-10)
    assert res_p.objective == pytest.approx(res_d.objective, rel=1e-10)
    P = res_p.plan
    v = np.random.default_rng(0).random(250)
    np.testing.assert_allclose(P @ v, res_d.plan @ v, rtol=1e-9)
    np.testing.assert_allclose(P.rmatvec(np.ones(300)), res_d.plan.sum(0), rtol=1e-9)
    np.testing.assert_allclose(P.to_dense(), res_d.plan, rtol=1e-8, atol=1e-300)
    sc = kf.ot.sinkhorn_points(x, y, 0.01, scale=2.0)
    ref = kf.ot.sinkhorn(None, None, 2 * M, 0.01)
    assert sc.cost == pytest.approx(ref.cost, rel=1e-9)


def test_cost_matrix_matches_pot_and_scipy():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(22)
    x, y = rng.random((30, 3)), rng.random((20, 3))
    np.testing.assert_allclose(kf.ot.cost_matrix(x, y), pot.dist(x, y), atol=1e-12)
    np.testing.assert_allclose(kf.ot.cost_matrix(x, y, p=1), cdist(x, y), atol=1e-7)
    np.testing.assert_allclose(kf.ot.cost_matrix(x, y, p=3), cdist(x, y) ** 3, atol=1e-7)
    assert kf.ot.cost_matrix(x.astype(np.float32)).dtype == np.float32


# ----------------------------------------------------------------------------- layout, threads, atoms
def test_layouts_threads_and_zero_atoms():
    _, _, M = clouds(64, 48, seed=23)
    a, b = uniform(64), uniform(48)
    base = kf.ot.sinkhorn(a, b, M, 0.02)
    F = np.asfortranarray(M)
    np.testing.assert_array_equal(kf.ot.sinkhorn(a, b, F, 0.02).plan, base.plan)
    big = np.zeros((128, 96))
    big[::2, ::2] = M
    np.testing.assert_array_equal(kf.ot.sinkhorn(a, b, big[::2, ::2], 0.02).plan, base.plan)
    _, _, M2 = clouds(300, seed=24)
    a2 = uniform(300)
    outs = []
    for t in (1, 2):
        with kf.threads(t):
            for method in ("log", "sinkhorn", "sns"):
                outs.append(kf.ot.sinkhorn(a2, a2, M2, 0.01, method=method).plan)
    for k in range(3):
        np.testing.assert_array_equal(outs[k], outs[k + 3])
    # zero-mass atoms: zero rows, -inf potentials, the rest equals the reduced problem
    az = a.copy()
    az[:4] = 0
    az /= az.sum()
    rz = kf.ot.sinkhorn(az, b, M, 0.02)
    red = kf.ot.sinkhorn(az[4:], b, M[4:], 0.02)
    assert (rz.plan[:4] == 0).all() and np.isneginf(rz.f[:4]).all()
    np.testing.assert_array_equal(rz.plan[4:], red.plan)
    assert rz.cost == red.cost


def test_non_square_and_repr():
    _, _, M = clouds(10, 37, seed=25)
    res = kf.ot.sinkhorn(None, None, M, 0.1)
    assert res.plan.shape == (10, 37) and res.converged
    text = repr(res)
    assert "OTResult(" in text and "converged" in text


# ----------------------------------------------------------------------------- bad input
def test_bad_input():
    _, _, M = clouds(5, 4)
    a, b = uniform(5), uniform(4)
    with pytest.raises(ValueError, match="non-negative"):
        kf.ot.sinkhorn(-a, b, M, 0.1)
    with pytest.raises(ValueError, match="same total mass"):
        kf.ot.sinkhorn(a, 2 * b, M, 0.1)
    Mn = M.copy()
    Mn[0, 0] = np.nan
    with pytest.raises(ValueError, match="M must be finite"):
        kf.ot.sinkhorn(a, b, Mn, 0.1)
    Mn[0, 0] = np.inf
    with pytest.raises(ValueError, match="M must be finite"):
        kf.ot.sinkhorn(a, b, Mn, 0.1)
    for reg in (0.0, -1.0):
        with pytest.raises(ValueError, match="reg must be positive"):
            kf.ot.sinkhorn(a, b, M, reg)
    with pytest.raises(ValueError, match="length 5"):
        kf.ot.sinkhorn(uniform(6), b, M, 0.1)
    with pytest.raises(ValueError, match="M must be 2-D"):
        kf.ot.sinkhorn(a, b, M[0], 0.1)
    with pytest.raises(ValueError, match="method"):
        kf.ot.sinkhorn(a, b, M, 0.1, method="greenkhorn")
    with pytest.raises(ValueError, match="omega"):
        kf.ot.sinkhorn(a, b, M, 0.1, omega=2.5)
    with pytest.raises(ValueError, match="epsilon_scaling"):
        kf.ot.sinkhorn(a, b, M, 0.1, epsilon_scaling=2.0)
    with pytest.raises(ValueError, match="must not be empty"):
        kf.ot.sinkhorn(None, None, np.zeros((0, 3)), 0.1)
    with pytest.raises(TypeError, match="floating"):
        kf.ot.sinkhorn(a, b, M.astype(complex), 0.1)
    with pytest.raises(ValueError, match="warm_start"):
        kf.ot.sinkhorn(a, b, M, 0.1, warm_start=(np.zeros(5),))
    with pytest.raises(ValueError, match="reg_m must be positive"):
        kf.ot.sinkhorn_unbalanced(a, b, M, 0.1, 0.0)
    with pytest.raises(ValueError, match="mass must lie"):
        kf.ot.partial(a, b, M, 0.1, 1.5)
    with pytest.raises(ValueError, match="rho must lie"):
        kf.ot.progressive_partial(M, None, 0.0)
    with pytest.raises(ValueError, match="scores must be positive"):
        kf.ot.progressive_partial(-M, None, 0.5, input="scores")
    with pytest.raises(ValueError, match="same batch size"):
        kf.ot.sinkhorn_batch(np.tile(a, (3, 1)), np.tile(b, (2, 1)), M, 0.1)
    with pytest.raises(ValueError, match="M must have shape"):
        kf.ot.sinkhorn_batch(np.tile(a, (3, 1)), np.tile(b, (3, 1)), np.zeros((2, 5, 4)), 0.1)
    with pytest.raises(ValueError, match="same number of columns"):
        kf.ot.sinkhorn_points(np.zeros((3, 2)), np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="p must be positive"):
        kf.ot.cost_matrix(np.zeros((3, 2)), p=0)


def test_non_convergence_is_reported_not_raised():
    _, _, M = clouds(50, seed=26)
    a = uniform(50)
    for fn in (lambda: kf.ot.sinkhorn(a, a, M, 1e-3, max_iter=3),
               lambda: kf.ot.sinkhorn(a, a, M, 1e-3, method="sns", max_iter=3),
               lambda: kf.ot.sinkhorn_unbalanced(a, a, M, 1e-3, 1.0, max_iter=3),
               lambda: kf.ot.partial(a, a, M, 1e-3, 0.5, max_iter=3)):
        with pytest.warns(kf.ConvergenceWarning, match="did not converge"):
            res = fn()
        assert not res.converged and np.isfinite(res.plan).all()


def test_docstring_examples_run():
    import doctest

    failures, attempted = doctest.testmod(kf.ot, verbose=False, raise_on_error=False)
    assert attempted >= 7 and failures == 0
