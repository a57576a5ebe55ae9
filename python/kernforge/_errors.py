"""Warnings shared by every area."""


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped before reaching its tolerance.

    Non-convergence is not an exception in kernforge: the result object says ``converged=False``
    and carries the iteration count and residual history, and this warning is emitted.
    """
