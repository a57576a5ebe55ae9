#!/usr/bin/env python
"""Fit a photograph with a hash encoding + tiny MLP: the simplex encoding against the hypercube grid.

The 2-D image-fitting experiment of Wen & Yang (2023, arXiv:2311.15439), scaled down to a CPU: a
bundled photograph (scikit-image's ``astronaut``, or scikit-learn's ``china.jpg`` when scikit-image
is absent; no download) is upscaled to a few megapixels, and each encoding (L = 16 levels, F = 2, N_min = 16,
b = 1.5) feeds an MLP 32 -> 64 -> 64 -> 3 trained with Adam (lr 1e-2, betas (0.9, 0.99), eps 1e-15)
on random pixel batches. PSNR is tracked on a fixed pixel subset; at the end the full image is
rendered. Writes ``<out>/fit_<kind>.png`` (reconstructions) and ``<out>/psnr_curve.png``.

    python examples/encoding_fit_image.py [--steps 300] [--megapixels 4] [--out encoding_fit_out]

Needs the extras ``torch`` and ``bench`` (scikit-image or scikit-learn, matplotlib).
"""
import argparse
import os
import time

import numpy as np


def load_image(megapixels=4.0):
    """A bundled photograph as float32 (H, W, 3) in [0, 1], bicubically upscaled to ~megapixels."""
    try:
        from skimage import data

        img, name = data.astronaut(), "scikit-image astronaut"
    except ImportError:
        from sklearn.datasets import load_sample_image

        img, name = load_sample_image("china.jpg"), "scikit-learn china.jpg"
    from PIL import Image

    h, w = img.shape[:2]
    k = max(1.0, np.sqrt(megapixels * 1e6 / (h * w)))
    H, W = int(round(h * k)), int(round(w * k))
    big = np.asarray(Image.fromarray(img).resize((W, H), Image.BICUBIC), dtype=np.float32) / 255.0
    return big, name


def make_model(kind, log2_table_size=16, seed=0):
    import torch

    import kernforge as kf

    cls = kf.torch.SimplexEncoding if kind == "simplex" else kf.torch.HashGridEncoding
    torch.manual_seed(seed)
    enc = cls(2, levels=16, features_per_level=2, log2_table_size=log2_table_size, base_resolution=16,
              per_level_scale=1.5, seed=seed)
    mlp = torch.nn.Sequential(torch.nn.Linear(enc.output_dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                              torch.nn.ReLU(), torch.nn.Linear(64, 3))
    model = torch.nn.Sequential(enc, mlp)
    opt = torch.optim.Adam([{"params": enc.parameters()},
                            {"params": mlp.parameters(), "weight_decay": 1e-6}],
                           lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    return model, opt


def pixel_coords(idx, H, W):
    """Pixel centres of flat indices, in [0, 1]^2 (x across, y down)."""
    r, c = np.divmod(idx, W)
    return np.stack([(c + 0.5) / W, (r + 0.5) / H], axis=1).astype(np.float32)


def psnr(mse):
    return float(-10.0 * np.log10(max(mse, 1e-12)))


def fit(kind, image, steps=300, batch=1 << 16, log2_table_size=16, eval_every=10, eval_pixels=1 << 17,
        target_psnr=None, seed=0):
    """Train; returns a dict with the model, the history [(step, train_seconds, psnr)] and the
    training time at which the subset PSNR first reached ``target_psnr`` (None if never)."""
    import torch

    H, W, _ = image.shape
    flat = torch.from_numpy(image.reshape(-1, 3))
    rng = np.random.default_rng(seed)
    ev_idx = rng.choice(H * W, size=min(eval_pixels, H * W), replace=False)
    ev_x, ev_y = torch.from_numpy(pixel_coords(ev_idx, H, W)), flat[ev_idx]
    model, opt = make_model(kind, log2_table_size, seed)
    history, t_train, reached = [], 0.0, None
    for step in range(1, steps + 1):
        idx = rng.integers(0, H * W, size=batch)
        xb, yb = torch.from_numpy(pixel_coords(idx, H, W)), flat[idx]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.mean((model(xb) - yb) ** 2)
        loss.backward()
        opt.step()
        t_train += time.perf_counter() - t0
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                p = psnr(torch.mean((model(ev_x).clamp(0, 1) - ev_y) ** 2).item())
            history.append((step, t_train, p))
            if target_psnr is not None and reached is None and p >= target_psnr:
                reached = t_train
                break
    return {"kind": kind, "model": model, "history": history, "seconds": t_train, "time_to_target": reached}


def render(model, H, W, chunk=1 << 18):
    import torch

    out = np.empty((H * W, 3), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, H * W, chunk):
            idx = np.arange(s, min(H * W, s + chunk))
            out[idx] = model(torch.from_numpy(pixel_coords(idx, H, W))).clamp(0, 1).numpy()
    return out.reshape(H, W, 3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--megapixels", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=1 << 16)
    ap.add_argument("--log2-table-size", type=int, default=16)
    ap.add_argument("--out", default="encoding_fit_out")
    # The MLP's small GEMMs ran ~5x slower on 2 threads than on 1 on a shared 2-core machine.
    ap.add_argument("--torch-threads", type=int, default=1, help="threads for the MLP (torch)")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import kernforge as kf

    # Pin kernforge's count first: its default follows the OpenMP runtime's, which
    # torch.set_num_threads changes too when both load the same libgomp.
    kf.set_num_threads(kf.get_num_threads())
    torch.set_num_threads(args.torch_threads)
    image, name = load_image(args.megapixels)
    H, W, _ = image.shape
    print(f"image: {name}, upscaled to {W} x {H} ({H * W / 1e6:.1f} MP); {args.steps} steps of {args.batch} pixels; "
          f"threads: encoding {kf.get_num_threads()}, MLP {args.torch_threads}")
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for kind in ("simplex", "grid"):
        r = fit(kind, image, steps=args.steps, batch=args.batch, log2_table_size=args.log2_table_size)
        t0 = time.perf_counter()
        rec = render(r["model"], H, W)
        full = psnr(float(np.mean((rec - image) ** 2)))
        r["full_psnr"] = full
        results[kind] = r
        plt.imsave(os.path.join(args.out, f"fit_{kind}.png"), rec)
        print(f"{kind:>8}: train {r['seconds']:.1f} s ({args.steps / r['seconds']:.2f} steps/s), "
              f"PSNR {full:.2f} dB on the full image (render {time.perf_counter() - t0:.1f} s)")
        for step, t, p in r["history"][:: max(1, len(r["history"]) // 6)]:
            print(f"          step {step:>5}  {t:7.1f} s  {p:6.2f} dB")
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for kind, r in results.items():
        h = np.array(r["history"])
        ax[0].plot(h[:, 0], h[:, 2], label=kind)
        ax[1].plot(h[:, 1], h[:, 2], label=kind)
    ax[0].set_xlabel("step")
    ax[1].set_xlabel("training time (s)")
    for a in ax:
        a.set_ylabel("PSNR (dB, fixed pixel subset)")
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(f"Hash encoding + MLP fit of {name} ({W}x{H})")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "psnr_curve.png"), dpi=110)
    plt.imsave(os.path.join(args.out, "target.png"), image)
    print(f"wrote {args.out}/fit_simplex.png, fit_grid.png, target.png, psnr_curve.png")


if __name__ == "__main__":
    main()
