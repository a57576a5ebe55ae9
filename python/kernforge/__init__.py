"""kernforge: fast numerical kernels with a NumPy API.

Areas (each a submodule):

- ``kf.sor``: SOR/SSOR/Jacobi sweeps and solves, SSOR-preconditioned CG, learning omega across a
  sequence of linear systems.
- ``kf.sketch``: sketching operators, sketch-based least squares, leverage-score sampling,
  randomized SVD, sketch-and-project iterative solvers.
- ``kf.optimize``: equality-constrained inexact Newton driven by randomized sketching.
- ``kf.gemm``: tiled GEMM, batched and Monarch products, sampled products, tile-size model.
- ``kf.encoding``: simplex-based and hypercube multiresolution hash encodings.
- ``kf.ot``: Sinkhorn optimal transport (log domain, SNS, unbalanced, partial, batched).

Optional: ``kernforge.torch`` (PyTorch modules over the encodings), imported lazily.

>>> import kernforge as kf
>>> kf.get_num_threads() >= 1
True
"""
import os as _os

# A spinning OpenMP team on a shared machine can make a parallel kernel 10x slower than one thread
# (papers.md section 1.2). Passive waiting must be chosen before the OpenMP runtime initialises;
# a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import _core  # noqa: E402
from ._config import show_config  # noqa: E402
from ._errors import ConvergenceWarning  # noqa: E402
from ._threads import get_num_threads, set_num_threads, threads  # noqa: E402

__version__ = _core.__version__

from . import encoding, gemm, optimize, ot, sketch, sor  # noqa: E402

__all__ = [
    "__version__",
    "ConvergenceWarning",
    "get_num_threads",
    "set_num_threads",
    "threads",
    "show_config",
    "encoding",
    "gemm",
    "optimize",
    "ot",
    "sketch",
    "sor",
]


def __getattr__(name):
    # Optional integrations import their heavy dependency lazily, on first use only.
    if name == "torch":
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kernforge' has no attribute {name!r}")
