"""One-line command-line errors, shared by every ``aees`` command (standard library only).

* :class:`UserError` -- a problem the user can fix, printed as one line (exit status 2);
* :class:`OneLineArgumentParser` -- an ``ArgumentParser`` whose errors are one line.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["OneLineArgumentParser", "UserError"]


class UserError(Exception):
    """A problem the user can fix (missing data, a mismatched checkpoint, ...): one line.

    The CLI prints ``aees train <task>: error: <message>`` and exits with status 2; tasks raise
    it for data or model files that are missing or malformed (naming the path and, offline, the
    command that fetches them).
    """


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit 2.

    Abbreviated long options are refused (``allow_abbrev=False``): a prefix such as ``--epoch``
    or ``--hf-tok`` would otherwise silently set a flag under a spelling nothing else knows (the
    secret scrubber included). Sub-parsers made by ``add_subparsers`` inherit the class.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text}\n")
