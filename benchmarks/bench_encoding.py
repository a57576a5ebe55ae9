"""Hash encodings: simplex vs hypercube grid (both kernforge), kernforge grid vs a PyTorch-CPU grid,
and the image-fitting row (time to a fixed PSNR, simplex vs grid).

Configuration of the throughput rows (papers.md 4.5, the paper's CPU analysis): L = 16 levels, F = 2,
T = 2^19, N_min = 16, b = 1.5, float32, uniform points; one "fwd+bwd" = forward + table backward.
"""
import importlib.util
import os
import time

import numpy as np

import kernforge as kf

CFG = dict(levels=16, features_per_level=2, log2_table_size=19, base_resolution=16, per_level_scale=1.5)
HERE = os.path.dirname(os.path.abspath(__file__))


def _fwd_bwd(enc, x, buf):
    # A training step's encoding work: forward, zero the gradient in place (as an optimiser's
    # zero_grad), table backward (grad_out = y: any array of the right shape).
    y = enc.forward(x)
    buf.fill(0)
    return y, enc.backward(x, y, out=buf)


def torch_grid_encoding(enc):
    """A straightforward vectorised PyTorch-CPU implementation of the same hash grid (same levels,
    hash and table layout as ``enc``, a kf.encoding.HashGridEncoding): indices and weights of every
    level and corner, one gather, a weighted sum; autograd does the backward (one index_add_).
    (Gathering per level and corner instead makes autograd zero a table-sized gradient per lookup,
    which is 20x slower again.)"""
    import torch

    d, F, L = enc.dim, enc.features_per_level, enc.levels
    primes = [1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737, 2971215073]
    mask_T = (1 << enc.log2_table_size) - 1
    bits = torch.tensor([[(m >> i) & 1 for i in range(d)] for m in range(2 ** d)])  # (V, d)

    def encode(x, params):
        n = x.shape[0]
        idx_all, w_all = [], []
        for l in range(L):
            s, res = float(enc.level_scales[l]), int(enc.level_resolutions[l])
            off, dense = int(enc.level_offsets[l]), bool(enc.level_dense[l])
            p = x * s + 0.5
            c = torch.floor(p).clamp(0, res - 2)
            f = (p - c).clamp(0, 1)
            v = c.long()[None, :, :] + bits[:, None, :]  # (V, n, d)
            w = torch.prod(torch.where(bits[:, None, :].bool(), f[None], 1 - f[None]), dim=2)  # (V, n)
            if dense:
                idx = (v * torch.tensor([res ** i for i in range(d)])).sum(dim=2)
            else:
                h = torch.zeros_like(v[..., 0])
                for i in range(d):
                    h = h ^ ((v[..., i] * primes[i]) & 0xFFFFFFFF)
                idx = h & mask_T
            idx_all.append(idx + off)
            w_all.append(w)
        idx = torch.stack(idx_all)  # (L, V, n)
        w = torch.stack(w_all)
        feats = params.index_select(0, idx.reshape(-1)).reshape(L, 2 ** d, n, F)
        y = (w[..., None] * feats).sum(dim=1)  # (L, n, F)
        return y.permute(1, 0, 2).reshape(n, L * F)

    return encode


def torch_grid_encoding_per_corner(enc):
    """The most literal PyTorch port: a gather per level and corner (autograd then zeroes a
    table-sized gradient for each of the L * 2^d lookups in the backward)."""
    import torch

    d = enc.dim
    primes = [1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737, 2971215073]
    mask_T = (1 << enc.log2_table_size) - 1
    corners = [torch.tensor([(m >> i) & 1 for i in range(d)]) for m in range(2 ** d)]

    def encode(x, params):
        outs = []
        for l in range(enc.levels):
            s, res = float(enc.level_scales[l]), int(enc.level_resolutions[l])
            off, dense = int(enc.level_offsets[l]), bool(enc.level_dense[l])
            p = x * s + 0.5
            c = torch.floor(p).clamp(0, res - 2)
            f = (p - c).clamp(0, 1)
            c = c.long()
            acc = 0
            for b in corners:
                v = c + b
                w = torch.prod(torch.where(b.bool(), f, 1 - f), dim=1, keepdim=True)
                if dense:
                    idx = (v * torch.tensor([res ** i for i in range(d)])).sum(dim=1)
                else:
                    h = torch.zeros_like(v[:, 0])
                    for i in range(d):
                        h = h ^ ((v[:, i] * primes[i]) & 0xFFFFFFFF)
                    idx = h & mask_T
                acc = acc + w * params.index_select(0, idx + off)
            outs.append(acc)
        return torch.cat(outs, dim=1)

    return encode


def throughput_rows(report, quick):
    sizes = {2: 1 << 15, 3: 1 << 15, 4: 1 << 14, 6: 1 << 13} if quick else \
        {2: 1 << 18, 3: 1 << 18, 4: 1 << 16, 6: 1 << 15}
    repeats = 3 if quick else 5
    rng = np.random.default_rng(0)
    for d, n in sizes.items():
        x = rng.random((n, d), dtype=np.float32)
        s = kf.encoding.SimplexHashEncoding(d, **CFG)
        g = kf.encoding.HashGridEncoding(d, **CFG)
        # accuracy: both encodings are exact on constant tables (partition of unity)
        bs, bg = np.zeros_like(s.params), np.zeros_like(g.params)
        row = report.compare(f"fwd+bwd d={d} simplex vs grid (n={n})", lambda: _fwd_bwd(s, x, bs),
                             lambda: _fwd_bwd(g, x, bg),
                             peer_name="kf HashGrid", repeats=repeats)
        row["simplex_points_per_s"] = n / row["ours_s"]
        row["grid_points_per_s"] = n / row["peer_s"]
        report.note(f"d={d}: simplex {n / row['ours_s'] / 1e6:.2f} M points/s, grid {n / row['peer_s'] / 1e6:.2f} "
                    f"M points/s ({d + 1} vs {2 ** d} lookups per level)")


def torch_rows(report, quick):
    try:
        import torch
    except ImportError:
        report.note("PyTorch not installed: skipped the PyTorch-CPU grid rows (pip install kernforge[torch])")
        return
    sizes = {2: 1 << 14, 3: 1 << 14, 4: 1 << 13} if quick else {2: 1 << 16, 3: 1 << 16, 4: 1 << 15}
    rng = np.random.default_rng(1)
    for d, n in sizes.items():
        g = kf.encoding.HashGridEncoding(d, **CFG)
        g.params[:] = rng.uniform(-1, 1, g.params.shape)
        x = rng.random((n, d), dtype=np.float32)
        xt = torch.from_numpy(x)
        pt = torch.nn.Parameter(torch.from_numpy(g.params.copy()))
        G = rng.standard_normal((n, g.output_dim)).astype(np.float32)
        Gt = torch.from_numpy(G)

        buf = np.zeros_like(g.params)

        def ours():
            buf.fill(0)
            return g.forward(x), g.backward(x, G, out=buf)

        def peer(enc_t):
            pt.grad = None
            y = enc_t(xt, pt)
            (y * Gt).sum().backward()
            return y.detach().numpy(), pt.grad.numpy()

        def accuracy(o, p):
            return float(max(np.abs(o[0] - p[0]).max(), np.abs(o[1] - p[1]).max() / max(1.0, np.abs(p[1]).max())))

        vec = torch_grid_encoding(g)
        report.compare(f"fwd+bwd d={d} grid vs PyTorch-CPU grid, vectorised (n={n})", ours, lambda: peer(vec),
                       peer_name="PyTorch-CPU grid", repeats=3, accuracy=accuracy, accuracy_label="max diff")
        if d == 2:
            lit = torch_grid_encoding_per_corner(g)
            report.compare(f"fwd+bwd d={d} grid vs PyTorch-CPU grid, gather per corner (n={n})", ours,
                           lambda: peer(lit), peer_name="PyTorch-CPU grid", repeats=3, accuracy=accuracy,
                           accuracy_label="max diff")


def image_row(report, quick):
    try:
        import torch
    except ImportError:
        report.note("PyTorch not installed: skipped the image-fitting row")
        return
    spec = importlib.util.spec_from_file_location("encoding_fit_image",
                                                  os.path.join(HERE, "..", "examples", "encoding_fit_image.py"))
    fi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fi)
    before = torch.get_num_threads()
    # The MLP's small GEMMs run several times slower on 2 threads than on 1 on this shared machine.
    torch.set_num_threads(1)
    try:
        mp, batch, target, steps = (0.5, 1 << 13, 20.0, 150) if quick else (2.0, 1 << 15, 24.0, 400)
        image, name = fi.load_image(mp)
        res = {}
        for kind in ("simplex", "grid", "simplex", "grid"):  # alternate, keep the best of two
            r = fi.fit(kind, image, steps=steps, batch=batch, log2_table_size=16, eval_every=5,
                       eval_pixels=1 << 15, target_psnr=target)
            t = r["time_to_target"] if r["time_to_target"] is not None else float("nan")
            steps_done = r["history"][-1][0]
            prev = res.get(kind)
            if prev is None or (t == t and not (prev[0] <= t)):
                res[kind] = (t, steps_done, r["history"][-1][2])
        (ts, ns, ps), (tg, ng, pg) = res["simplex"], res["grid"]
        H, W = image.shape[:2]
        report.add(f"image fit to {target:g} dB ({name}, {W}x{H}, batch {batch})", ours_s=ts, peer="kf HashGrid",
                   peer_s=tg, accuracy=ps, accuracy_label="simplex PSNR", simplex_steps=ns, grid_steps=ng, grid_psnr=pg)
        report.note(f"image fit: simplex {ns} steps / {ts:.2f} s, grid {ng} steps / {tg:.2f} s to {target:g} dB "
                    f"(MLP 32-64-64-3 on torch with 1 thread; encoding on {kf.get_num_threads()} threads)")
    finally:
        torch.set_num_threads(before)


def run(report, quick=False):
    t0 = time.perf_counter()
    throughput_rows(report, quick)
    torch_rows(report, quick)
    image_row(report, quick)
    report.note(f"encoding benchmarks took {time.perf_counter() - t0:.0f} s; the machine is shared: read the ratios")
