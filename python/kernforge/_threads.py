"""Thread-count control for every kernforge kernel (OpenMP underneath)."""
from contextlib import contextmanager

from . import _core


def get_num_threads():
    """Number of threads kernforge kernels may use.

    Examples
    --------
    >>> import kernforge as kf
    >>> kf.get_num_threads() >= 1
    True
    """
    return int(_core.get_num_threads())


def set_num_threads(n):
    """Set the number of threads kernforge kernels may use.

    Parameters
    ----------
    n : int or None
        A positive count, or ``None`` (or 0) to go back to the default (``OMP_NUM_THREADS`` if set,
        otherwise the number of cores).

    Raises
    ------
    ValueError
        If ``n`` is negative or not an integer.

    Examples
    --------
    >>> import kernforge as kf
    >>> kf.set_num_threads(1); kf.get_num_threads()
    1
    >>> kf.set_num_threads(None)
    """
    if n is None:
        n = 0
    if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
        raise ValueError(f"n must be a non-negative integer or None, got {n!r}")
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be a non-negative integer or None, got {n}")
    _core.set_num_threads(n)


@contextmanager
def threads(n):
    """Context manager: run the enclosed kernels with ``n`` threads, then restore the setting.

    Examples
    --------
    >>> import kernforge as kf
    >>> with kf.threads(1):
    ...     kf.get_num_threads()
    1
    """
    previous = _core.get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        _core.set_num_threads(previous)
