"""PyTorch modules over kernforge's C++ kernels (optional; needs ``pip install kernforge[torch]``).

``SimplexEncoding`` and ``HashGridEncoding`` are ``torch.nn.Module``s wrapping
:class:`kernforge.encoding.SimplexHashEncoding` and :class:`kernforge.encoding.HashGridEncoding`:
the tables are one ``nn.Parameter`` (sharing memory with the NumPy encoding's ``params``), and an
autograd Function calls the C++ forward and backward on CPU tensors without copies. Gradients flow to
the tables and, when the input requires them, to the input points.

This module is the only place kernforge imports torch; ``import kernforge`` stays light and
``kernforge.torch`` is resolved on first use.

Examples
--------
>>> import torch
>>> import kernforge as kf
>>> enc = kf.torch.SimplexEncoding(2, levels=8, log2_table_size=14)
>>> model = torch.nn.Sequential(enc, torch.nn.Linear(enc.output_dim, 1))
>>> opt = torch.optim.Adam(model.parameters(), lr=1e-2)
>>> x = torch.rand(4096, 2, generator=torch.Generator().manual_seed(0))
>>> target = torch.sin(6 * x[:, :1]) * torch.cos(4 * x[:, 1:])
>>> losses = []
>>> for _ in range(30):
...     opt.zero_grad()
...     loss = torch.mean((model(x) - target) ** 2)
...     loss.backward()
...     opt.step()
...     losses.append(loss.item())
>>> losses[-1] < 0.2 * losses[0]
True
"""
import numpy as np
import torch

from . import encoding as _encoding

__all__ = ["SimplexEncoding", "HashGridEncoding"]

_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


class _EncodeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, enc):
        xn = x.detach().contiguous().numpy()
        pn = params.detach().numpy()
        y = torch.from_numpy(enc.forward(xn, params=pn))
        ctx.save_for_backward(x, params)
        ctx.enc = enc
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        x, params = ctx.saved_tensors
        need_x, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_p):
            return None, None, None
        g = grad_y.detach().contiguous().numpy()
        xn, pn = x.detach().contiguous().numpy(), params.detach().numpy()
        if need_x:
            gp, gx = ctx.enc.backward(xn, g, input_grad=True, params_grad=need_p, params=pn)
        else:
            gp, gx = ctx.enc.backward(xn, g, params=pn), None
        return (torch.from_numpy(gx) if need_x else None, torch.from_numpy(gp) if need_p else None, None)


class _EncodingModule(torch.nn.Module):
    _numpy_class = None

    def __init__(self, dim, levels=16, features_per_level=2, log2_table_size=19, base_resolution=16,
                 per_level_scale=1.5, seed=0, dtype=torch.float32, init_scale=1e-4):
        super().__init__()
        if dtype not in _NP_DTYPE:
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.encoding = self._numpy_class(dim, levels=levels, features_per_level=features_per_level,
                                          log2_table_size=log2_table_size, base_resolution=base_resolution,
                                          per_level_scale=per_level_scale, seed=seed, dtype=_NP_DTYPE[dtype],
                                          init_scale=init_scale)
        # Shares memory with self.encoding.params: optimiser steps are visible from NumPy too.
        self.params = torch.nn.Parameter(torch.from_numpy(self.encoding.params))

    @property
    def dim(self):
        return self.encoding.dim

    @property
    def output_dim(self):
        """Features per input: ``levels * features_per_level``."""
        return self.encoding.output_dim

    def extra_repr(self):
        e = self.encoding
        return (f"dim={e.dim}, levels={e.levels}, features_per_level={e.features_per_level}, "
                f"log2_table_size={e.log2_table_size}, base_resolution={e.base_resolution:g}, "
                f"per_level_scale={e.per_level_scale:g}, n_params={e.n_params}")

    def forward(self, x):
        """Encode points ``x`` of shape ``(..., dim)`` in ``[0, 1]`` -> ``(..., output_dim)``.

        Raises
        ------
        TypeError
            If ``x`` is not a tensor.
        ValueError
            If ``x`` is not on the CPU, its last axis is not ``dim``, or it has NaN or values outside
            ``[0, 1]``.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.device.type != "cpu":
            raise ValueError(f"x must be a CPU tensor (kernforge runs on the CPU), got device {x.device}")
        if self.params.device.type != "cpu":
            raise ValueError(f"params must live on the CPU, got device {self.params.device}")
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape (..., {self.dim}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.dim).to(self.params.dtype)
        y = _EncodeFunction.apply(x2, self.params, self.encoding)
        return y.reshape(*lead, self.output_dim)


class SimplexEncoding(_EncodingModule):
    """Simplex-based multiresolution hash encoding (Wen & Yang, 2023) as a ``torch.nn.Module``.

    Parameters are those of :class:`kernforge.encoding.SimplexHashEncoding`, with ``dtype`` a torch
    dtype (``torch.float32`` or ``torch.float64``). The tables are the parameter ``params`` of
    shape ``(n_rows, features_per_level)``.
    """

    _numpy_class = _encoding.SimplexHashEncoding


class HashGridEncoding(_EncodingModule):
    """Instant-ngp's multiresolution hash grid (Müller et al., 2022) as a ``torch.nn.Module``.

    Parameters are those of :class:`kernforge.encoding.HashGridEncoding`, with a torch ``dtype``.
    """

    _numpy_class = _encoding.HashGridEncoding
