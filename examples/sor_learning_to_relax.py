"""Learning omega across a sequence of linear systems: the two experiments of Khodak, Chow, Balcan
and Talwalkar, "Learning to Relax" (ICLR 2024), at a size two cores can run.

1. Shifted Laplacians: A_t = Laplacian(N x N) + c_t I with random shifts c_t (the paper: N = 10,
   c_t = -0.15 + 0.6 Beta(0.5, 1.5) "high variance" or Beta(2, 6) "low variance"), b_t a radially
   truncated Gaussian, SOR from x0 = 0 to rtol 1e-8. Policies: omega = 1, the best fixed omega of the
   grid in hindsight, the per-instance best of the grid (instance-optimal), Young's formula,
   OmegaBandit (no context) and ContextualOmega (context c_t).
2. Heat: Crank-Nicolson steps of u_t = kappa(t) Laplace(u) + f on the unit square with
   kappa(t) = max(0.1 sin 2 pi t, -10 sin 2 pi t), solved by SSOR-preconditioned CG warm-started from
   the previous step; the context is kappa.

Run:  python examples/sor_learning_to_relax.py [--quick] [--out DIR]
Prints the tables and saves regret curves as PNGs in DIR (default: sor_learning_to_relax_plots).
The benchmark suite (benchmarks/bench_sor.py) calls the same functions.
"""
import argparse
import os
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import kernforge as kf

GRID = np.linspace(1.0, 1.95, 20)


# ---------------------------------------------------------------------------------- problems
def laplacian_2d(N):
    """5-point Laplacian (diagonal 4) on an N x N interior grid: MATLAB's delsq(numgrid('S', N+2))."""
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(N, N))
    I = sp.eye(N)
    return (sp.kron(T, I) + sp.kron(I, T)).tocsr()


def truncated_normal(n, rng):
    """A standard normal vector conditioned on ||b|| <= sqrt(n) (rejection sampling)."""
    while True:
        b = rng.standard_normal(n)
        if b @ b <= n:
            return b


def shifted_laplacian_sequence(N=10, T=2000, variance="high", seed=0, offset=-0.15):
    """Systems (prepared SOR objects, right-hand sides) and shifts c_t = offset + 0.6 Beta(.)."""
    rng = np.random.default_rng(seed)
    a, b = (0.5, 1.5) if variance == "high" else (2.0, 6.0)
    shifts = offset + 0.6 * rng.beta(a, b, T)
    L = laplacian_2d(N)
    n = N * N
    systems = [(kf.sor.SOR(L + c * sp.eye(n, format="csr")), truncated_normal(n, rng)) for c in shifts]
    return systems, shifts


def young_omega(N, shifts):
    """Young's optimal SOR omega for Laplacian(N x N) + c I: rho(J) = 4 cos(pi / (N + 1)) / (4 + c)."""
    rho = 4 * np.cos(np.pi / (N + 1)) / (4 + np.asarray(shifts))
    return 2 / (1 + np.sqrt(1 - rho**2))


def grid_costs(systems, omegas=GRID, max_iter=10_000):
    """Iterations and seconds of every system at every omega of the grid (T x G)."""
    it = np.zeros((len(systems), len(omegas)), dtype=np.int64)
    tm = np.zeros_like(it, dtype=np.float64)
    for t, (S, b) in enumerate(systems):
        for g, w in enumerate(omegas):
            t0 = time.perf_counter()
            it[t, g] = S.solve(b, omega=w, max_iter=max_iter, warn=False).n_iter
            tm[t, g] = time.perf_counter() - t0
    return it, tm


def run_shifted(N=10, T=2000, variance="high", seed=0, learner_seed=0, offset=-0.15, context_range=(-0.15, 0.65)):
    """All policies on one shifted-Laplacian sequence. Returns {policy: dict(iterations, times, omegas)}."""
    systems, shifts = shifted_laplacian_sequence(N, T, variance, seed, offset)
    it, tm = grid_costs(systems)
    out = {}
    out["omega = 1"] = dict(iterations=it[:, 0], times=tm[:, 0], omegas=np.full(T, 1.0))
    best = int(np.argmin(it.sum(axis=0)))
    out[f"best fixed (omega = {GRID[best]:.2f})"] = dict(iterations=it[:, best], times=tm[:, best],
                                                         omegas=np.full(T, GRID[best]))
    arg = np.argmin(it, axis=1)
    rows = np.arange(T)
    out["instance-optimal (grid)"] = dict(iterations=it[rows, arg], times=tm[rows, arg], omegas=GRID[arg])
    wy = young_omega(N, shifts)
    res = kf.sor.solve_sequence(systems, _Schedule(wy))
    out["Young's formula"] = dict(iterations=res.iterations, times=res.times, omegas=res.omegas)
    res = kf.sor.solve_sequence(systems, kf.sor.OmegaBandit(seed=learner_seed))
    out["OmegaBandit"] = dict(iterations=res.iterations, times=res.times, omegas=res.omegas)
    res = kf.sor.solve_sequence(systems, kf.sor.ContextualOmega(context_range=context_range, seed=learner_seed),
                                contexts=shifts)
    out["ContextualOmega"] = dict(iterations=res.iterations, times=res.times, omegas=res.omegas)
    return out, shifts


class _Schedule:
    """A 'learner' that plays a precomputed omega per instance (for Young's formula)."""

    def __init__(self, omegas):
        self.omegas = list(omegas)
        self.t = 0
        self.max_iter = 10_000

    def choose(self, context=None):
        return float(self.omegas[self.t])

    def update(self, omega, cost, context=None):
        self.t += 1


# ---------------------------------------------------------------------------------- heat
def bump(x, center, radius):
    r2 = np.minimum(1.0, ((x - center) ** 2).sum(axis=1) / radius**2)
    with np.errstate(divide="ignore"):
        return np.exp(1.0 - 1.0 / (1.0 - r2))


class Heat2D:
    """Crank-Nicolson for u_t = kappa(t) Laplace(u) + f(t, x) on the unit square, zero Dirichlet
    boundary, nx intervals per side (n = (nx - 1)^2 unknowns), step dt (the paper's Heat2D.m)."""

    def __init__(self, nx, dt=1e-3):
        self.nx, self.dt, self.t = nx, dt, 0.0
        h = 1.0 / nx
        self.L = -laplacian_2d(nx - 1) / h**2  # the Laplace operator (negative definite)
        self.n = (nx - 1) ** 2
        g = np.arange(1, nx) * h
        self.xy = np.array([(i, j) for i in g for j in g])
        self.u = bump(self.xy, np.array([0.5, 0.5]), 0.25)
        self.I = sp.eye(self.n, format="csr")

    @staticmethod
    def kappa(t):
        return max(0.1 * np.sin(2 * np.pi * t), -10.0 * np.sin(2 * np.pi * t))

    def forcing(self, t):
        c = np.array([0.5 + np.cos(16 * np.pi * t) / 4, 0.5 + np.sin(16 * np.pi * t) / 4])
        return 32.0 * bump(self.xy, c, 0.125)

    def system(self):
        half = self.t + 0.5 * self.dt
        CL = (0.5 * self.kappa(half) * self.dt) * self.L
        A = (self.I - CL).tocsr()
        b = (self.I + CL) @ self.u + self.dt * self.forcing(half)
        return A, b

    def advance(self, u):
        self.u = u
        self.t += self.dt


def run_heat_policy(nx, steps, learner, dt=1e-3):
    """One pass of the heat simulation with SSOR-PCG; learner: float or learner object."""
    pde = Heat2D(nx, dt)

    def systems():
        for _ in range(steps):
            yield pde.system()

    def ctx():
        for _ in range(steps):
            yield pde.kappa(pde.t)

    res = kf.sor.solve_sequence(systems(), learner, solver="ssor_cg",
                                contexts=ctx() if isinstance(learner, kf.sor.ContextualOmega) else None,
                                callback=lambda t, r: pde.advance(r.x))
    return dict(iterations=res.iterations, times=res.times, omegas=res.omegas)


def run_heat_cg(nx, steps, dt=1e-3):
    """Unpreconditioned SciPy CG with the same warm start and tolerance."""
    pde = Heat2D(nx, dt)
    its, tms = [], []
    for _ in range(steps):
        A, b = pde.system()
        count = [0]
        t0 = time.perf_counter()
        u, info = spla.cg(A, b, x0=pde.u, rtol=1e-8, maxiter=10_000,
                          callback=lambda _: count.__setitem__(0, count[0] + 1))
        tms.append(time.perf_counter() - t0)
        its.append(count[0])
        pde.advance(u)
    return dict(iterations=np.array(its), times=np.array(tms), omegas=None)


def run_heat_instance_optimal(nx, steps, omegas=GRID, dt=1e-3):
    """Per step, the best omega of the grid from the same warm start; advances with its solution."""
    pde = Heat2D(nx, dt)
    its, tms, ws = [], [], []
    for _ in range(steps):
        A, b = pde.system()
        S = kf.sor.SOR(A)
        best = None
        for w in omegas:
            t0 = time.perf_counter()
            r = S.ssor_cg(b, omega=w, x0=pde.u, warn=False)
            dt_ = time.perf_counter() - t0
            if best is None or r.n_iter < best[0].n_iter:
                best = (r, dt_, w)
        its.append(best[0].n_iter)
        tms.append(best[1])
        ws.append(best[2])
        pde.advance(best[0].x)
    return dict(iterations=np.array(its), times=np.array(tms), omegas=np.array(ws))


def run_heat(nx=50, steps=1000, learner_seed=0, fixed=(1.0, 1.3, 1.5, 1.75, 1.95), instance_grid=GRID):
    """Every policy on the heat sequence (instance_grid=None skips the instance-optimal search)."""
    out = {"CG (no preconditioner)": run_heat_cg(nx, steps)}
    for w in fixed:
        out[f"SSOR-CG omega = {w:g}"] = run_heat_policy(nx, steps, w)
    if instance_grid is not None:
        out["SSOR-CG instance-optimal (grid)"] = run_heat_instance_optimal(nx, steps, instance_grid)
    out["SSOR-CG OmegaBandit"] = run_heat_policy(nx, steps, kf.sor.OmegaBandit(seed=learner_seed))
    # The paper's context range: min and max of kappa over the run.
    ks = [Heat2D.kappa(t) for t in np.arange(steps + 1) * 1e-3]
    out["SSOR-CG ContextualOmega"] = run_heat_policy(
        nx, steps, kf.sor.ContextualOmega(context_range=(min(ks), max(ks) + 1e-12), seed=learner_seed))
    return out


# ---------------------------------------------------------------------------------- reporting
def summarize(results, reference="instance-optimal (grid)"):
    """Rows: policy, total iterations, mean, last-quarter mean, second-half mean, seconds."""
    rows = []
    for name, r in results.items():
        it = np.asarray(r["iterations"], dtype=float)
        T = it.size
        rows.append(dict(policy=name, total=int(it.sum()), mean=it.mean(), last_quarter=it[3 * T // 4:].mean(),
                         second_half=it[T // 2:].mean(), seconds=float(np.sum(r["times"]))))
    return rows


def print_table(title, rows):
    print(f"\n{title}")
    print(f"  {'policy':<34} {'total it':>10} {'mean':>8} {'2nd half':>9} {'last 1/4':>9} {'solve s':>8}")
    for r in rows:
        print(f"  {r['policy']:<34} {r['total']:>10d} {r['mean']:>8.1f} {r['second_half']:>9.1f} "
              f"{r['last_quarter']:>9.1f} {r['seconds']:>8.2f}")


def plot_regret(results, reference, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = np.cumsum(results[reference]["iterations"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k, (name, r) in enumerate(results.items()):
        color = f"C{k % 10}"  # the same colour for a policy in both panels
        c = np.cumsum(r["iterations"])
        t = np.arange(1, c.size + 1)
        ax1.plot(t, c, label=name, color=color)
        if name != reference:
            ax2.plot(t, c - ref, label=name, color=color)
    ax1.set_xlabel("instance t")
    ax1.set_ylabel("cumulative iterations")
    ax1.set_yscale("log")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("instance t")
    ax2.set_ylabel(f"regret vs {reference} (iterations)")
    ax2.set_yscale("symlog")
    ax2.axhline(0, color="k", lw=0.5)
    ax2.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short sequences (about 20 s)")
    p.add_argument("--out", default="sor_learning_to_relax_plots")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    T = 300 if args.quick else 2000
    for variance in ("high", "low"):
        res, _ = run_shifted(N=10, T=T, variance=variance, seed=1)
        print_table(f"shifted 10x10 Laplacian, {variance}-variance shifts, T = {T} (SOR, rtol 1e-8)", summarize(res))
        path = os.path.join(args.out, f"shifted_laplacian_{variance}.png")
        plot_regret(res, "instance-optimal (grid)", f"Shifted 10x10 Laplacian, {variance} variance", path)
        print(f"  saved {path}")
    nx, steps = (25, 1000) if args.quick else (50, 1000)
    res = run_heat(nx=nx, steps=steps, fixed=(1.0, 1.5) if args.quick else (1.0, 1.3, 1.5, 1.75, 1.95),
                   instance_grid=np.linspace(1.0, 1.9, 10) if args.quick else GRID)
    print_table(f"heat equation, nx = {nx} (n = {(nx - 1) ** 2}), {steps} Crank-Nicolson steps (SSOR-CG, rtol 1e-8)",
                summarize(res))
    path = os.path.join(args.out, "heat_ssor_cg.png")
    plot_regret(res, "SSOR-CG instance-optimal (grid)", "Heat equation, SSOR-preconditioned CG", path)
    print(f"  saved {path}")


if __name__ == "__main__":
    main()
