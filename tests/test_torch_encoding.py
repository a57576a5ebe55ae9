"""Tests of kernforge.torch's encoding modules: autograd against the NumPy backward, gradcheck, training."""
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional extra (pip install kernforge[torch])")

import kernforge as kf  # noqa: E402

MODULES = {"simplex": "SimplexEncoding", "grid": "HashGridEncoding"}


def test_import_kernforge_does_not_import_torch():
    code = "import sys, kernforge; assert 'torch' not in sys.modules; kernforge.torch; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("kind", MODULES)
@pytest.mark.parametrize("d", [2, 3, 5])
def test_autograd_matches_numpy_backward(kind, d):
    torch.manual_seed(0)
    mod = getattr(kf.torch, MODULES[kind])(d, levels=4, log2_table_size=10, base_resolution=4, per_level_scale=2.0)
    with torch.no_grad():
        mod.params.uniform_(-1, 1)
    x = torch.rand(300, d, requires_grad=True)
    y = mod(x)
    assert y.shape == (300, mod.output_dim)
    np.testing.assert_array_equal(y.detach().numpy(), mod.encoding.forward(x.detach().numpy()))
    G = torch.randn_like(y)
    (y * G).sum().backward()
    gp, gx = mod.encoding.backward(x.detach().numpy(), G.numpy(), input_grad=True)
    np.testing.assert_array_equal(mod.params.grad.numpy(), gp)
    np.testing.assert_array_equal(x.grad.numpy(), gx)


@pytest.mark.parametrize("kind", MODULES)
def test_gradcheck_float64(kind):
    mod = getattr(kf.torch, MODULES[kind])(3, levels=2, features_per_level=2, log2_table_size=5, base_resolution=2,
                                          per_level_scale=1.5, dtype=torch.float64)
    with torch.no_grad():
        mod.params.uniform_(-1, 1)
    x = (torch.rand(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1)
    x.requires_grad_(True)
    fn = kf.torch._EncodeFunction.apply
    assert torch.autograd.gradcheck(lambda a, p: fn(a, p, mod.encoding), (x, mod.params), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("kind", MODULES)
def test_training_with_adam_decreases_the_loss(kind):
    torch.manual_seed(0)
    enc = getattr(kf.torch, MODULES[kind])(2, levels=8, log2_table_size=12, base_resolution=4, per_level_scale=1.5)
    model = torch.nn.Sequential(enc, torch.nn.Linear(enc.output_dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99), eps=1e-15)
    x = torch.rand(2048, 2)
    target = torch.sin(8 * x[:, :1]) * torch.cos(6 * x[:, 1:])
    losses = []
    before = enc.params.detach().clone()
    for _ in range(60):
        opt.zero_grad()
        loss = torch.mean((model(x) - target) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert not torch.equal(before, enc.params.detach())
    # the NumPy encoding shares the parameter's memory
    np.testing.assert_array_equal(enc.encoding.params, enc.params.detach().numpy())


def test_batch_shapes_dtypes_and_state_dict():
    mod = kf.torch.SimplexEncoding(3, levels=2, log2_table_size=8)
    x = torch.rand(4, 5, 3, dtype=torch.float64)
    y = mod(x)
    assert y.shape == (4, 5, mod.output_dim) and y.dtype == torch.float32
    assert [n for n, _ in mod.named_parameters()] == ["params"]
    other = kf.torch.SimplexEncoding(3, levels=2, log2_table_size=8, seed=5)
    other.load_state_dict(mod.state_dict())
    torch.testing.assert_close(other(x), y, rtol=0, atol=0)
    assert "levels=2" in repr(mod)


def test_only_input_gradient_when_tables_are_frozen():
    mod = kf.torch.HashGridEncoding(2, levels=2, log2_table_size=8)
    mod.params.requires_grad_(False)
    x = torch.rand(10, 2, requires_grad=True)
    mod(x).sum().backward()
    assert x.grad is not None and mod.params.grad is None


def test_bad_input():
    mod = kf.torch.SimplexEncoding(2, levels=2, log2_table_size=8)
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        mod(torch.rand(4, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mod(torch.rand(4, 2) + 1.0)
    with pytest.raises(ValueError, match="NaN"):
        mod(torch.full((1, 2), float("nan")))
    with pytest.raises(TypeError, match="torch.Tensor"):
        mod(np.zeros((1, 2)))
    with pytest.raises(TypeError, match="dtype"):
        kf.torch.SimplexEncoding(2, dtype=torch.float16)
    with pytest.raises(ValueError, match="dim"):
        kf.torch.SimplexEncoding(0)


def test_docstring_example_runs():
    import doctest

    res = doctest.testmod(kf.torch)
    assert res.attempted >= 5 and res.failed == 0
