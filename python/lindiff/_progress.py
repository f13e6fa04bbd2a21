"""One progress bar for lindiff's long calls (sampling, training, sweeps).

A tqdm bar on stderr with an ETA. ``enabled=None`` (every public ``progress=`` default) shows it only
when stderr is a terminal, and only once the call has run for a second, so short calls and logs
stay clean; ``True`` forces it, ``False`` silences it. Without tqdm installed there is no bar: a
progress bar is never a reason for a computation to fail.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["Progress", "check_progress"]


def check_progress(enabled: Any) -> bool | None:
    """Validate a ``progress=`` argument: True, False or None."""
    if enabled is not None and not isinstance(enabled, (bool, np.bool_)):
        raise TypeError("progress must be True, False or None")
    return None if enabled is None else bool(enabled)


class Progress:
    """A tqdm bar of ``total`` units, or nothing (see the module docstring).

    Use as a context manager (the bar closes on exit, also on error); :attr:`callback` is the
    ``update(n)`` function to hand to compiled code, or None when no bar is shown.
    """

    def __init__(self, total: int, enabled: bool | None, desc: str, unit: str) -> None:
        enabled = check_progress(enabled)
        self.bar: Any = None
        show = sys.stderr.isatty() if enabled is None else enabled
        if show and total > 0:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.1, delay=1.0 if enabled is None else 0.0)

    @property
    def active(self) -> bool:
        return self.bar is not None

    @property
    def callback(self) -> Any:
        return None if self.bar is None else self.bar.update

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
