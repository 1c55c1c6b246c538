"""One-line command-line errors, shared by every ``aees`` command (standard library only).

* :class:`UserError` -- a problem the user can fix, printed as one line (exit status 2);
* :class:`OneLineArgumentParser` -- an ``ArgumentParser`` whose errors are one line, named by
  the (sub)command that met them, and whose help shows every default.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["DefaultsHelpFormatter", "OneLineArgumentParser", "UserError", "unrecognized_message"]


class UserError(Exception):
    """A problem the user can fix (missing data, a mismatched checkpoint, ...): one line.

    The CLI prints ``aees train <task>: error: <message>`` and exits with status 2; tasks raise
    it for data or model files that are missing or malformed (naming the path and, offline, the
    command that fetches them).
    """


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that shows every default: ``(default: X)`` is appended to an option's help unless
    the help already speaks of its default, or there is none to show (``None``: unset/off, a
    switch that is off)."""

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        return not (
            not action.option_strings
            or "default" in (action.help or "").lower()
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or (isinstance(default, (list, tuple)) and not default)  # e.g. an append action
        )

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):
            action = copy.copy(action)  # argparse prints no help line for an option without help
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if not self._shows_default(action):
            return action.help
        return f"{action.help or ''} (default: %(default)s)".strip()


def unrecognized_message(tokens: Sequence[str]) -> str:
    """argparse's "unrecognized arguments" message without echoing values.

    What a parser did not recognise may hold a secret (an abbreviated ``--hf-tok hf_...``, which
    abbreviations being refused, is not a known flag): options are shown by name only (the part
    before ``=``), and the word after an unrecognised option is left out as its likely value.
    Other stray words are shown.
    """
    shown: list[str] = []
    hidden = 0
    after_option = False
    for token in tokens:
        if token.startswith("-") and len(token) > 1:
            name, eq, _ = token.partition("=")
            shown.append(name)
            hidden += bool(eq)
            after_option = not eq
        elif after_option:
            hidden += 1
            after_option = False
        else:
            shown.append(token)
    text = "unrecognized arguments: " + " ".join(shown)
    if hidden:
        text += f" ({hidden} value{'s' if hidden > 1 else ''} not shown)"
    return text


class _OneLineSubParsers(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Sub-commands report what they did not recognise themselves, so the error is named
    ``aees train digits: error: ...`` rather than ``aees: error: ...``."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name, arg_strings = values[0], values[1:]
        sub = self._name_parser_map.get(name)
        if sub is None:  # argparse's own "invalid choice" error
            super().__call__(parser, namespace, values, option_string)
            return
        if self.dest is not argparse.SUPPRESS:
            setattr(namespace, self.dest, name)
        parsed, extras = sub.parse_known_args(arg_strings, None)
        if extras:
            sub.error(unrecognized_message(extras))
        for key, value in vars(parsed).items():
            setattr(namespace, key, value)


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (no usage block), exit 2.

    Abbreviated long options are refused (``allow_abbrev=False``): a prefix such as ``--epoch``
    or ``--hf-tok`` would otherwise silently set a flag under a spelling nothing else knows (the
    secret scrubber included). Sub-parsers made by ``add_subparsers`` inherit the class; an
    unrecognised argument is reported by the (sub)command it was given to, by option name only
    (:func:`unrecognized_message`), and help shows every default (:class:`DefaultsHelpFormatter`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _OneLineSubParsers)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(unrecognized_message(extras))
        return parsed

    def error(self, message: str) -> NoReturn:
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text}\n")
