"""Multiresolution hash encodings: the simplex encoding and the hypercube hash grid.

``SimplexHashEncoding`` implements Wen & Yang (2023) [1]_: each input is skewed into a simplicial
lattice, the containing simplex is found by sorting the fractional coordinates (Kuhn subdivision)
and its ``dim + 1`` vertices are interpolated barycentrically. ``HashGridEncoding`` is instant-ngp's
multiresolution hash grid [2]_, interpolating the ``2**dim`` corners of a hypercube. Both keep one
trainable feature table per resolution level (dense while the level's lattice fits in the table,
spatially hashed beyond), concatenate the levels' features, and share one API: ``forward``,
``backward`` and a writable ``params`` array. ``kernforge.torch`` wraps them as ``torch.nn.Module``s.

Notes
-----
Levels (instant-ngp's conventions [2]_, section 3): level ``l`` has scale
``s_l = base_resolution * per_level_scale**l - 1`` and maps an input to the lattice position
``p = s_l * x' + 0.5``, where ``x' = x`` for the grid and, for the simplex encoding,

    x' = (x + F_n * sum(x) * 1) / nu,   F_n = (sqrt(n + 1) - 1) / n,   nu = (n + 1)**(1 / (2 n)),

the skew of simplex noise ([1]_, the coordinate transformation) normalised to determinant 1, so that both encodings have
the same number of lattice vertices per unit volume at equal scales. (The authors' code divides by
sqrt(3) for every dimension instead; with ``nu`` the comparison at equal table budget is fair in
every dimension.) A vertex ``v`` of a level whose lattice does not fit the table of ``2**log2_table_size``
rows is stored in row ``(XOR_i v_i * pi_i) mod T`` with instant-ngp's primes (plus one for dim 8).

Two deliberate departures from instant-ngp: each level's lattice has ``floor(R s_l + 0.5) + 2``
vertices per axis (R = 1 for the grid), so the far corner of the last cell never aliases into the
next row of a dense level; and inputs outside ``[0, 1]`` raise instead of being extrapolated.

The table gradient is accumulated level by level, each level by one thread in point order, so it is
bitwise identical for any thread count (GPU implementations use atomics and are not reproducible).

References
----------
.. [1] Y. Wen, Y. Yang, "Efficient Encoding of Graphics Primitives with Simplex-based Structures",
   arXiv:2311.15439, 2023.
.. [2] T. Müller, A. Evans, C. Schied, A. Keller, "Instant Neural Graphics Primitives with a
   Multiresolution Hash Encoding", ACM Trans. Graph. 41(4), 2022.
"""
import numpy as np

from . import _core
from ._validation import as_array, check_int, check_real, check_seed

__all__ = ["SimplexHashEncoding", "HashGridEncoding", "MAX_DIM"]

MAX_DIM = int(_core.encoding.MAX_DIM)


class _HashEncoding:
    _kind = None

    def __init__(self, dim, levels=16, features_per_level=2, log2_table_size=19, base_resolution=16,
                 per_level_scale=1.5, seed=0, dtype=np.float32, init_scale=1e-4):
        dim = check_int(dim, "dim", minimum=1, maximum=MAX_DIM)
        levels = check_int(levels, "levels", minimum=1, maximum=64)
        features_per_level = check_int(features_per_level, "features_per_level", minimum=1, maximum=64)
        log2_table_size = check_int(log2_table_size, "log2_table_size", minimum=3,
                                    maximum=int(_core.encoding.MAX_LOG2_TABLE_SIZE))
        base_resolution = check_real(base_resolution, "base_resolution")
        per_level_scale = check_real(per_level_scale, "per_level_scale")
        init_scale = check_real(init_scale, "init_scale")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        self._layout = _core.encoding.Layout(self._kind, dim, levels, features_per_level, log2_table_size,
                                             base_resolution, per_level_scale)
        self.dim = dim
        self.levels = levels
        self.features_per_level = features_per_level
        self.log2_table_size = log2_table_size
        self.base_resolution = base_resolution
        self.per_level_scale = per_level_scale
        self.seed = check_seed(seed)
        self.dtype = dt
        info = self._layout.levels()
        self.level_scales = info["scale"]
        self.level_resolutions = info["resolution"]
        self.level_rows = info["rows"]
        self.level_offsets = info["offset"]
        self.level_dense = info["dense"]
        rng = np.random.default_rng(self.seed)
        shape = (int(self._layout.total_rows), features_per_level)
        # instant-ngp's initialisation: uniform in [-1e-4, 1e-4].
        self._params = rng.uniform(-init_scale, init_scale, size=shape).astype(dt)

    # ------------------------------------------------------------------ attributes
    @property
    def params(self):
        """The trainable tables, shape ``(n_rows, features_per_level)``; level ``l`` occupies rows
        ``level_offsets[l] : level_offsets[l] + level_rows[l]``. ``forward`` reads this array, so
        in-place edits take effect; assigning a new array checks its shape and dtype."""
        return self._params

    @params.setter
    def params(self, value):
        arr = np.asarray(value)
        want = (int(self._layout.total_rows), self.features_per_level)
        if arr.shape != want:
            raise ValueError(f"params must have shape {want}, got {arr.shape}")
        if arr.dtype != self.dtype:
            raise ValueError(f"params must have dtype {self.dtype}, got {arr.dtype}")
        if not arr.flags.c_contiguous:
            raise ValueError("params must be C-contiguous")
        self._params = arr

    @property
    def output_dim(self):
        """Features per input: ``levels * features_per_level``."""
        return int(self._layout.output_dim)

    @property
    def n_params(self):
        return int(self._layout.n_params)

    @property
    def vertices_per_level(self):
        """Table lookups per input and level: ``dim + 1`` (simplex) or ``2**dim`` (grid)."""
        return int(self._layout.vertices)

    def __repr__(self):
        return (f"{type(self).__name__}(dim={self.dim}, levels={self.levels}, "
                f"features_per_level={self.features_per_level}, log2_table_size={self.log2_table_size}, "
                f"base_resolution={self.base_resolution:g}, per_level_scale={self.per_level_scale:g}, "
                f"dtype={self.dtype.name}, n_params={self.n_params})")

    # ------------------------------------------------------------------ compute
    def _points(self, x):
        x = as_array(x, "x", dtype=self.dtype, ndim=2, finite=False, allow_empty=True)
        if x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}) for dim={self.dim}, got {x.shape}")
        return x

    def _check_params(self, params):
        p = self._params if params is None else params
        want = (int(self._layout.total_rows), self.features_per_level)
        if not isinstance(p, np.ndarray) or p.shape != want or p.dtype != self.dtype or not p.flags.c_contiguous:
            raise ValueError(f"params must be a C-contiguous {self.dtype} array of shape {want}")
        return p

    def forward(self, x, *, params=None):
        """Encode points.

        Parameters
        ----------
        x : array_like, shape (n, dim)
            Points in ``[0, 1]**dim``; converted to the tables' dtype.
        params : ndarray, optional
            Tables to use instead of ``self.params`` (same shape and dtype).

        Returns
        -------
        ndarray, shape (n, levels * features_per_level)
            Level ``l``'s interpolated features in columns ``l * F : (l + 1) * F``.

        Raises
        ------
        ValueError
            If ``x`` is not 2-D with ``dim`` columns, contains NaN, or lies outside ``[0, 1]``.
        """
        x = self._points(x)
        p = self._check_params(params)
        out = np.empty((x.shape[0], self.output_dim), dtype=self.dtype)
        if x.shape[0]:
            self._layout.forward(p, x, out)
        return out

    __call__ = forward

    def backward(self, x, grad_out, *, input_grad=False, params_grad=True, params=None, out=None):
        """Gradients of a loss through the encoding.

        Parameters
        ----------
        x : array_like, shape (n, dim)
            The points given to ``forward``.
        grad_out : array_like, shape (n, levels * features_per_level)
            Gradient of the loss with respect to ``forward(x)``.
        input_grad : bool, default False
            Also return the gradient with respect to ``x``.
        params_grad : bool, default True
            Compute the gradient with respect to the tables (``None`` in its place if False).
        params : ndarray, optional
            Tables to use instead of ``self.params`` (only the input gradient reads them).
        out : ndarray, optional
            A C-contiguous array shaped like ``params`` to which the table gradient is *added* in
            place (as PyTorch accumulates ``.grad``) and which is returned; reusing one saves
            allocating and zeroing a table-sized array per call. By default a zeroed array is
            allocated.

        Returns
        -------
        grad_params : ndarray shaped like ``params``
            Returned alone when ``input_grad`` is False.
        (grad_params, grad_x) : tuple
            When ``input_grad`` is True; ``grad_x`` has the shape of ``x``.

        Raises
        ------
        ValueError
            For a bad ``x`` (as in ``forward``), a ``grad_out`` of the wrong shape or with NaN/inf,
            or an ``out`` of the wrong shape, dtype or layout.
        """
        x = self._points(x)
        p = self._check_params(params)
        g = as_array(grad_out, "grad_out", dtype=self.dtype, ndim=2, allow_empty=True)
        if g.shape != (x.shape[0], self.output_dim):
            raise ValueError(f"grad_out must have shape ({x.shape[0]}, {self.output_dim}) "
                             f"(n, levels * features_per_level), got {g.shape}")
        if out is not None:
            if not params_grad:
                raise ValueError("out is given but params_grad is False")
            if (not isinstance(out, np.ndarray) or out.shape != p.shape or out.dtype != self.dtype
                    or not out.flags.c_contiguous or not out.flags.writeable):
                raise ValueError(f"out must be a writable C-contiguous {self.dtype} array of shape {p.shape}")
            gp = out
        else:
            gp = np.zeros_like(p) if params_grad else None
        gx = np.zeros_like(x) if input_grad else None
        if x.shape[0]:
            self._layout.backward(p, x, g, gp, gx)
        return (gp, gx) if input_grad else gp


class SimplexHashEncoding(_HashEncoding):
    """Simplex-based multiresolution hash encoding (Wen & Yang, 2023).

    Parameters
    ----------
    dim : int
        Input dimension, 1 to 8 (compiled fast paths for 2, 3 and 4).
    levels : int, default 16
        Resolution levels L.
    features_per_level : int, default 2
        Features F per table row.
    log2_table_size : int, default 19
        log2 of the rows T of each hashed level's table, 3 to 30.
    base_resolution : float, default 16
        Coarsest resolution N_min.
    per_level_scale : float, default 1.5
        Growth factor b between levels (finest resolution ``N_min * b**(L - 1)``).
    seed : int, default 0
        Seed of the table initialisation, uniform in ``[-init_scale, init_scale]``.
    dtype : {numpy.float32, numpy.float64}
        Dtype of the tables and of the computation.
    init_scale : float, default 1e-4

    Attributes
    ----------
    params : ndarray, shape (n_rows, features_per_level)
        The trainable tables (writable; ``forward`` reads it).
    output_dim : int
    level_scales, level_resolutions, level_rows, level_offsets, level_dense : ndarray
        Per-level structure (see the module Notes).

    Raises
    ------
    ValueError
        For a dim outside [1, 8], ``log2_table_size`` outside [3, 30], tables of more than 2**31
        parameters, or a finest resolution that overflows 32-bit lattice coordinates.

    Notes
    -----
    Each level costs ``dim + 1`` table lookups per input instead of the grid's ``2**dim``; the
    barycentric weights of [1]_ ``w_0 = 1 - f_(1)``, ``w_k = f_(k) - f_(k+1)``,
    ``w_n = f_(n)`` for the fractions sorted in descending order, are non-negative and sum to 1, so
    a single dense level reproduces any affine function of the vertex positions exactly. The input
    gradient (absent from the authors' code) is ``V_k - V_{k-1}`` along the k-th sorted axis,
    mapped back through the skew. See the module docstring for conventions.

    References
    ----------
    .. [1] Y. Wen, Y. Yang, "Efficient Encoding of Graphics Primitives with Simplex-based
       Structures", arXiv:2311.15439, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> import kernforge as kf
    >>> enc = kf.encoding.SimplexHashEncoding(3, levels=8, log2_table_size=14)
    >>> x = np.random.default_rng(0).random((1000, 3))
    >>> y = enc.forward(x)
    >>> y.shape, y.dtype
    ((1000, 16), dtype('float32'))
    >>> grad = enc.backward(x, np.ones_like(y))   # d(sum of outputs)/d(params)
    >>> grad.shape == enc.params.shape
    True
    >>> print(f"{grad.sum():.1f}")   # weights sum to 1 per level and feature: n * L * F
    16000.0
    """

    _kind = "simplex"


class HashGridEncoding(_HashEncoding):
    """Instant-ngp's multiresolution hash grid (Müller et al., 2022), the hypercube baseline.

    Same parameters, attributes and methods as :class:`SimplexHashEncoding`; each level interpolates
    the ``2**dim`` corners of the lattice cell multilinearly ([1]_, section 3).

    Raises
    ------
    ValueError
        As for :class:`SimplexHashEncoding`.

    Notes
    -----
    Levels, hashing and table sizes follow instant-ngp (see the module docstring for two
    deliberate departures at the boundary). The cost per input and level is ``2**dim`` lookups,
    which is why the simplex encoding wins from dim 3 up.

    References
    ----------
    .. [1] T. Müller, A. Evans, C. Schied, A. Keller, "Instant Neural Graphics Primitives with a
       Multiresolution Hash Encoding", ACM Trans. Graph. 41(4), 2022.

    Examples
    --------
    >>> import numpy as np
    >>> import kernforge as kf
    >>> enc = kf.encoding.HashGridEncoding(2, levels=4, features_per_level=1, log2_table_size=12)
    >>> enc.params[:] = 1.0                 # constant tables: every level outputs exactly 1
    >>> enc.forward([[0.25, 0.5], [1.0, 0.0]])
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.]], dtype=float32)
    """

    _kind = "grid"
