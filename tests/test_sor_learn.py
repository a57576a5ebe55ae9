"""Tests of the omega learners (Tsallis-INF, ChebCB) and solve_sequence: unit properties, synthetic
sequences where the best arm is known, and a reduced run of the paper's shifted-Laplacian experiment."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import kernforge as kf
from conftest import poisson2d

GRID = np.linspace(1.0, 1.95, 20)


# ------------------------------------------------------------------ OmegaBandit (Tsallis-INF)
@pytest.mark.parametrize("K", [
    np.zeros(20),
    np.arange(20.0),
    np.r_[1e22, np.zeros(19)],                      # one enormous loss estimate
    np.r_[np.full(19, 1e15), 0.0],                  # one arm far ahead
    np.linspace(-5e3, 5e3, 20),
    np.r_[np.full(10, 1e-300), np.full(10, 1e300)],  # extreme spread
])
@pytest.mark.parametrize("t", [0, 1, 10, 10_000])
def test_tsallis_probabilities_are_a_distribution(K, t):
    bandit = kf.sor.OmegaBandit(seed=0)
    bandit.cumulative_loss = K.copy()
    bandit.t = t
    bandit._cost_sum = 50.0 * t
    p = bandit.probabilities()
    assert p.shape == (20,)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0, abs=1e-12)
    # Every arm keeps positive probability unless its estimate is astronomically large (the
    # 1e300 case, whose p ~ 1e-600 underflows).
    assert np.all(p[K < 1e200] > 0) and np.all(p >= 0)
    # The arm with the smallest loss estimate is the most likely, and p is monotone in the loss.
    order = np.argsort(K, kind="stable")
    assert np.all(np.diff(p[order]) <= 1e-15)


def test_tsallis_normaliser_solves_the_equation():
    bandit = kf.sor.OmegaBandit(seed=0)
    rng = np.random.default_rng(0)
    bandit.cumulative_loss = rng.random(20) * 100
    bandit.t = 99
    bandit._cost_sum = 99 * 11.0  # scale s = mean cost - 1 = 10
    p = bandit.probabilities()
    eta = 2 / np.sqrt(100)
    L = bandit.cumulative_loss / 10.0
    # p_i = 4 (eta (L_i - x))^-2 for one x < min L: recover x from each arm, all must agree.
    x = L - 2 / (eta * np.sqrt(p))
    assert np.ptp(x) < 1e-8 * (1 + np.abs(x).max())
    assert x.max() < L.min()


def test_bandit_concentrates_on_dominant_arm():
    costs = np.full(20, 100.0)
    costs[7] = 40.0
    bandit = kf.sor.OmegaBandit(seed=3)
    picks = []
    for _ in range(2000):
        w = bandit.choose()
        picks.append(w)
        bandit.update(w, costs[bandit._arm(w)])
    assert bandit.probabilities()[7] > 0.9
    assert np.mean(np.isclose(picks[-500:], GRID[7])) > 0.85


def test_bandit_seeded_reproducibility():
    def run(seed):
        b = kf.sor.OmegaBandit(seed=seed)
        out = []
        for k in range(100):
            w = b.choose()
            out.append(w)
            b.update(w, 10 + (k % 7) + 50 * abs(w - 1.6))
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_bandit_caps_cost_and_validates():
    b = kf.sor.OmegaBandit(omegas=[1.0, 1.5], max_iter=100, seed=0)
    w = b.choose()
    b.update(w, 1e9)  # a failed solve: capped at max_iter
    i = b._arm(w)
    assert b.cumulative_loss[i] == pytest.approx(99.0 / 0.5)
    with pytest.raises(ValueError, match="NaN"):
        b.update(1.0, float("nan"))
    with pytest.raises(ValueError, match="non-negative"):
        b.update(1.0, -3)
    with pytest.raises(TypeError, match="cost"):
        b.update(1.0, "12")
    with pytest.raises(ValueError, match="one of the learner's omegas"):
        b.update(1.25, 10)
    for bad in ([], [0.5, 2.0], [0.0, 1.0], [1.0, 1.0], [np.nan]):
        with pytest.raises(ValueError, match="omegas"):
            kf.sor.OmegaBandit(omegas=bad)
    with pytest.raises(ValueError, match="omegas"):
        kf.sor.OmegaBandit(omegas=np.ones((2, 2)))
    with pytest.raises(ValueError, match="max_iter"):
        kf.sor.OmegaBandit(max_iter=0)
    assert "OmegaBandit(n_arms=2" in repr(b)


# ------------------------------------------------------------------ ContextualOmega (ChebCB)
def test_chebyshev_features():
    z = 0.37
    phi = kf.sor.ContextualOmega(context_range=(-1, 1)).features(z)
    np.testing.assert_allclose(phi, np.polynomial.chebyshev.chebvander(z, 5)[0], rtol=1e-14)
    # Contexts outside the range are clipped to its ends.
    learner = kf.sor.ContextualOmega(context_range=(0, 2))
    np.testing.assert_array_equal(learner.features(5.0), learner.features(2.0))


def test_chebcb_recovers_polynomial_cost_map():
    # Arm costs are known smooth functions of the context; the best arm switches twice on [0, 1].
    omegas = np.array([1.0, 1.3, 1.6])

    def cost(w, c):
        return {1.0: 30 + 60 * c**2, 1.3: 40 + 10 * c, 1.6: 75 - 40 * c}[w]

    learner = kf.sor.ContextualOmega(omegas=omegas, context_range=(0.0, 1.0), seed=1)
    rng = np.random.default_rng(7)
    for _ in range(1500):
        c = rng.random()
        w = learner.choose(c)
        learner.update(w, cost(w, c))
    grid = np.linspace(0.02, 0.98, 49)
    truth = np.array([omegas[np.argmin([cost(w, c) for w in omegas])] for c in grid])
    got = np.array([learner.predict(c) for c in grid])
    assert np.mean(got == truth) >= 0.9
    # The model of each arm matches its (polynomial) cost where it was sampled enough.
    for i, w in enumerate(omegas):
        pred = np.array([learner._theta_u[i] @ learner.features(c) + 1 for c in grid])
        true = np.array([cost(w, c) for c in grid])
        if learner._count[i] > 100:
            assert np.max(np.abs(pred - true)) < 1.0


def test_chebcb_incremental_fit_equals_batch_least_squares():
    learner = kf.sor.ContextualOmega(omegas=[1.2, 1.7], context_range=(-1.0, 1.0), degree=3, seed=0)
    rng = np.random.default_rng(0)
    hist = {0: ([], []), 1: ([], [])}
    for _ in range(200):
        c = rng.uniform(-1, 1)
        w = learner.choose(c)
        y = 20 + 5 * np.sin(3 * c) + rng.normal()
        learner.update(w, y)
        i = learner._arm(w)
        hist[i][0].append(learner.features(c))
        hist[i][1].append(y - 1)
    for i in (0, 1):
        Phi, y = np.array(hist[i][0]), np.array(hist[i][1])
        np.testing.assert_allclose(learner._unconstrained[i], np.linalg.lstsq(Phi, y, rcond=None)[0],
                                   rtol=1e-8, atol=1e-8)


def test_chebcb_probabilities_and_errors():
    learner = kf.sor.ContextualOmega(seed=0)
    p = learner.probabilities(0.1)
    np.testing.assert_allclose(p, np.full(20, 1 / 20))  # nothing learned yet: uniform
    for c in np.linspace(-0.15, 0.65, 30):
        w = learner.choose(c)
        learner.update(w, 40 + 100 * abs(w - 1.5 - c / 2))
        p = learner.probabilities(c)
        assert np.all(p >= 0) and p.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="context is required"):
        learner.choose()
    with pytest.raises(ValueError, match="context"):
        learner.choose(float("nan"))
    with pytest.raises(ValueError, match="context_range"):
        kf.sor.ContextualOmega(context_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="context_range"):
        kf.sor.ContextualOmega(context_range=3.0)
    with pytest.raises(ValueError, match="NaN"):
        learner.update(1.0, np.nan, context=0.0)
    fresh = kf.sor.ContextualOmega(seed=0)
    with pytest.raises(ValueError, match="context is required"):
        fresh.update(1.0, 10)


# ------------------------------------------------------------------ solve_sequence
def laplacian10():
    return poisson2d(10)


def shifted_sequence(T, rng, shifts):
    L = laplacian10()
    for c in shifts:
        yield L + c * sp.eye(100, format="csr"), rng.standard_normal(100)


def test_fixed_omega_sequence_matches_solve():
    rng = np.random.default_rng(0)
    shifts = rng.uniform(0, 0.3, 10)
    systems = list(shifted_sequence(10, rng, shifts))
    res = kf.sor.solve_sequence(systems, 1.5)
    assert res.n_systems == 10 and res.converged.all()
    expect = [kf.sor.solve(A, b, omega=1.5).n_iter for A, b in systems]
    np.testing.assert_array_equal(res.iterations, expect)
    np.testing.assert_array_equal(res.omegas, 1.5)
    assert res.total_iterations == sum(expect) and res.times.shape == (10,) and res.total_time > 0
    assert res.contexts is None and res.x.shape == (100,)
    assert "SequenceResult(" in repr(res)


def test_bandit_finds_known_best_arm_on_small_sequence():
    # A fixed matrix, random right-hand sides: the best arm is the grid point nearest Young's
    # omega, found here by brute force; the bandit's choices concentrate around it.
    L = laplacian10()
    rng = np.random.default_rng(11)
    bs = [rng.standard_normal(100) for _ in range(1200)]
    S = kf.sor.SOR(L)
    cost = np.array([np.mean([S.solve(b, omega=w).n_iter for b in bs[:20]]) for w in GRID])
    best = int(np.argmin(cost))
    res = kf.sor.solve_sequence(((S, b) for b in bs), kf.sor.OmegaBandit(seed=4))
    last = res.omegas[-300:]
    near = np.abs(np.searchsorted(GRID, last - 1e-9) - best) <= 1
    assert near.mean() > 0.7
    # Tsallis-INF keeps exploring at rate ~ 1/sqrt(t); on this sharp cost curve (ratio 4.5 between
    # omega = 1 and the best arm) that costs ~20 % at t ~ 1000 (the benchmark checks the paper's
    # 1.15x target on the paper's own sequence).
    assert res.iterations[-300:].mean() < 1.25 * cost[best]
    assert res.iterations[-300:].mean() < 0.3 * cost[0]  # far below omega = 1


def test_contextual_beats_best_fixed_on_shifted_laplacians():
    # Reduced paper setup (high-variance shifts): ChebCB's second half beats the best fixed omega
    # (1.8 in the paper and papers.md 1.4) and approaches Young's instance-optimal omega.
    T = 500
    rng = np.random.default_rng(2)
    shifts = -0.15 + 0.6 * rng.beta(0.5, 1.5, T)
    systems = list(shifted_sequence(T, rng, shifts))
    learned = kf.sor.solve_sequence(systems, kf.sor.ContextualOmega(seed=0), contexts=shifts)
    fixed = kf.sor.solve_sequence(systems, 1.8)
    rho = 4 * np.cos(np.pi / 11) / (4 + shifts)
    young = np.array([kf.sor.solve(A, b, omega=2 / (1 + np.sqrt(1 - r**2))).n_iter
                      for (A, b), r in zip(systems, rho)])
    h = slice(T // 2, None)
    assert learned.iterations[h].mean() < fixed.iterations[h].mean()
    assert learned.iterations[h].mean() < 1.3 * young[h].mean()
    np.testing.assert_array_equal(learned.contexts, shifts)


def test_sequence_with_changing_sizes_and_generator():
    rng = np.random.default_rng(0)

    def gen():
        for k in range(30):
            n = 4 + k % 5
            yield poisson2d(n), rng.standard_normal(n * n)

    res = kf.sor.solve_sequence(gen(), kf.sor.OmegaBandit(seed=0), solver="ssor_cg")
    assert res.n_systems == 30 and res.converged.all()


def test_sequence_ssor_cg_heat_like_warm_start():
    # A slowly varying SPD sequence (implicit heat steps): warm starts cut the iterations.
    L = poisson2d(20)
    n = L.shape[0]
    rng = np.random.default_rng(0)
    kappas = 1 + 0.5 * np.sin(np.linspace(0, 3, 40))
    u = rng.standard_normal(n)
    systems = [(sp.eye(n) + 0.05 * k * L, u) for k in kappas]
    warm = kf.sor.solve_sequence(systems, kf.sor.ContextualOmega(context_range=(0.5, 1.5), seed=0),
                                 solver="ssor_cg", contexts=kappas)
    cold = kf.sor.solve_sequence(systems, kf.sor.ContextualOmega(context_range=(0.5, 1.5), seed=0),
                                 solver="ssor_cg", contexts=kappas, warm_start=False)
    assert warm.converged.all() and cold.converged.all()
    assert warm.total_iterations < cold.total_iterations
    for (A, b), x in [(systems[-1], warm.x)]:
        assert np.linalg.norm(b - A @ x) <= 1.01e-8 * np.linalg.norm(b)


def test_sequence_max_iter_gives_capped_cost_and_warning():
    L = poisson2d(12)
    bandit = kf.sor.OmegaBandit(omegas=[1.0, 1.9], max_iter=15, seed=0)
    systems = [(L, np.ones(144))] * 5
    with pytest.warns(kf.ConvergenceWarning, match="5 of 5 solves hit max_iter=15"):
        res = kf.sor.solve_sequence(systems, bandit)
    assert not res.converged.any() and (res.iterations == 15).all()
    assert bandit.t == 5 and bandit._cost_sum == 5 * 15


def test_sequence_errors():
    L = poisson2d(4)
    with pytest.raises(ValueError, match="at least one"):
        kf.sor.solve_sequence([], kf.sor.OmegaBandit())
    with pytest.raises(ValueError, match="contexts are required"):
        kf.sor.solve_sequence([(L, np.ones(16))], kf.sor.ContextualOmega())
    with pytest.raises(ValueError, match="fewer entries"):
        kf.sor.solve_sequence([(L, np.ones(16))] * 3, kf.sor.ContextualOmega(), contexts=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"systems\[0\] must be an \(A, b\) pair"):
        kf.sor.solve_sequence([L], 1.2)
    with pytest.raises(ValueError, match="solver"):
        kf.sor.solve_sequence([(L, np.ones(16))], 1.2, solver="gmres")
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        kf.sor.solve_sequence([(L, np.ones(16))], 2.5)
    with pytest.raises(TypeError, match="learner"):
        kf.sor.solve_sequence([(L, np.ones(16))], "bandit")
    with pytest.raises(ValueError, match="b must have shape"):
        kf.sor.solve_sequence([(L, np.ones(15))], 1.2)


def test_docstring_examples_run():
    # Every Examples section of the area must run and print what it claims.
    import doctest

    import kernforge._sor_learn
    import kernforge.sor

    for mod in (kernforge.sor, kernforge._sor_learn):
        failed, attempted = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert attempted > 0 and failed == 0, mod.__name__


# ------------------------------------------------------------------ paper reproduction (reduced)
def _example():
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "sor_learning_to_relax.py")
    spec = importlib.util.spec_from_file_location("sor_learning_to_relax", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("variance, best_range, w1_mean, best_mean", [
    ("high", (1.75, 1.85), 617, 104),   # papers.md 1.4 (prototype, T = 3000)
    ("low", (1.60, 1.70), 278, 60.5),
])
def test_shifted_laplacian_fixed_omega_costs_match_reference(variance, best_range, w1_mean, best_mean):
    ex = _example()
    systems, shifts = ex.shifted_laplacian_sequence(N=10, T=1000, variance=variance, seed=3)
    omegas = np.array([1.0, 1.6, 1.65, 1.7, 1.75, 1.8, 1.85])
    it, _ = ex.grid_costs(systems, omegas)
    means = it.mean(axis=0)
    best = omegas[1:][np.argmin(means[1:])]
    assert best_range[0] - 1e-9 <= best <= best_range[1] + 1e-9
    # omega = 1 is heavy-tailed (46 to 2730 iterations per instance): a wider band for it.
    assert means[0] == pytest.approx(w1_mean, rel=0.08)
    assert means[1:].min() == pytest.approx(best_mean, rel=0.05)
    # Young's formula is (near) instance-optimal on this consistently ordered matrix.
    young = [S.solve(b, omega=w).n_iter for (S, b), w in zip(systems[:200], ex.young_omega(10, shifts[:200]))]
    assert np.mean(young) <= 1.02 * it[:200].min(axis=1).mean()


def test_example_runs_small():
    ex = _example()
    res, shifts = ex.run_shifted(N=5, T=40, variance="high", seed=0)
    assert set(res) >= {"omega = 1", "instance-optimal (grid)", "Young's formula", "OmegaBandit", "ContextualOmega"}
    rows = ex.summarize(res)
    assert all(r["total"] > 0 for r in rows)
    heat = ex.run_heat(nx=8, steps=30, fixed=(1.0,), instance_grid=np.array([1.0, 1.5]))
    # The instance-optimal policy is never worse than any fixed omega it searched over, per step.
    assert heat["SSOR-CG instance-optimal (grid)"]["iterations"].sum() <= heat["SSOR-CG omega = 1"]["iterations"].sum()
    assert heat["CG (no preconditioner)"]["iterations"].sum() > 0
