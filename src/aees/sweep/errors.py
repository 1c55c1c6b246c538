"""The sweep's two errors: :class:`PlanError` (a preset, override, seed list or manifest that cannot
be used) and :class:`SweepError` (a sweep that cannot start). Both are ``ValueError`` with a
one-line message naming the input; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

__all__ = ["PlanError", "SweepError"]


class PlanError(ValueError):
    """A preset, override, seed list or manifest that cannot be used; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class SweepError(ValueError):
    """A sweep that cannot start (bad manifest, options, missing Ray); one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
