"""Base for result objects: frozen dataclasses with a short, readable repr.

Arrays print as ``array(shape, dtype)`` with a few leading values, so a result of a large solve
still fits on a screen.
"""
import dataclasses

import numpy as np


def _short(value):
    if isinstance(value, np.ndarray):
        if value.ndim == 1 and value.size <= 6:
            return np.array2string(value, precision=4, separator=", ")
        return f"<array shape={value.shape} dtype={value.dtype}>"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"<{type(value).__name__} of {len(value)}>"
    return repr(value)


@dataclasses.dataclass(frozen=True, repr=False)
class Result:
    """Common behaviour of every kernforge result object."""

    def __repr__(self):
        fields = [f for f in dataclasses.fields(self) if f.repr]
        width = max((len(f.name) for f in fields), default=0)
        lines = [f"{type(self).__name__}("]
        for f in fields:
            lines.append(f"  {f.name:>{width}} = {_short(getattr(self, f.name))},")
        lines.append(")")
        return "\n".join(lines)

    def __getitem__(self, key):
        # scipy's OptimizeResult habit: res["x"] works as well as res.x.
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def keys(self):
        return [f.name for f in dataclasses.fields(self)]
