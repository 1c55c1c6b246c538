"""Secret redaction: which keys are secret, and scrubbing them from results, command lines and
messages (a URI's password and its secret query parameters: :func:`redact_uris`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

__all__ = [
    "REDACTED",
    "is_secret_key",
    "redact_uris",
    "redact_values",
    "scrub_secrets",
]


REDACTED = "<redacted>"
"""What a secret value is replaced with."""


_SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "private_key",
    "access_key",
    "credential",
    "authorization",
)
# Tokenizer settings that end in "_token" but hold no secret.
_NON_SECRET_TOKEN_KEYS = frozenset(
    f"{name}_token" for name in ("pad", "bos", "eos", "unk", "sep", "cls", "mask")
)
# Values that look like credentials wherever they appear (HF, GitHub, OpenAI-style keys).
_SECRET_VALUE_RE = re.compile(
    r"\b(?:hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|sk-[A-Za-z0-9_-]{20,})"
)


def is_secret_key(key: str) -> bool:
    """True for names that hold credentials: ``token``, ``hf_token``, ``--hf-token``,
    ``api_key``, ``password``, ``client_secret``, ... but not ``tokenized_dataset_dir`` or
    tokenizer settings such as ``pad_token``."""
    name = key.strip().lstrip("-").lower().replace("-", "_")
    if name in _NON_SECRET_TOKEN_KEYS:
        return False
    if name in ("token", "auth") or name.endswith("_token") or name.endswith("_auth"):
        return True
    return any(part in name for part in _SECRET_SUBSTRINGS)


# A URI's scheme and user information: ``scheme://user:password@``.
# The password runs to the last ``@`` of the authority, as URI parsers read it.
_USERINFO_RE = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"<>`/?#@:]*):([^\s'\"<>`/?#]*)@")
# ``name=value`` after ``?``, ``&``, ``;`` or ``#`` (a query or fragment, with or without the
# URI before it: error messages quote bare paths such as ``/api?token=...``). The value stops at
# white space, a quote or the next parameter, and leaves trailing punctuation (``token=x:``).
_STOP = "&;#\\s'\"<>`"
_PARAM_RE = re.compile(rf"([?&;#])([^={_STOP}?]*)=([^{_STOP}]*?)(?=[.,:)\]]*(?:[{_STOP}]|$))")
# Parameter names that carry credentials besides the secret keys (signed URLs, ``key=``).
_SECRET_PARAMS = frozenset({"key", "sig", "signature", "pwd", "pass", "code", "session"})


def _secret_param(name: str) -> bool:
    plain = unquote(name).strip().lower().replace("-", "_")
    return is_secret_key(plain) or plain in _SECRET_PARAMS or plain.endswith("signature")


def redact_uris(text: str) -> str:
    """``text`` with the credentials of every URI in it redacted: the password of its user
    information (``https://alice:<redacted>@host``) and the values of query or fragment
    parameters whose names are secret (``?token=``, ``access_token``, ``api_key``, ``sig``,
    ``X-Amz-Signature``, ...). Used for every message that may echo a URI a user gave (an
    error naming ``--mlflow``, a tracking server's own error) and by :func:`scrub_secrets`."""
    if "://" in text:
        text = _USERINFO_RE.sub(lambda m: f"{m[1]}{m[2]}:{REDACTED}@" if m[3] else m[0], text)
    if "=" in text:
        text = _PARAM_RE.sub(
            lambda m: f"{m[1]}{m[2]}={REDACTED}" if m[3] and _secret_param(m[2]) else m[0], text
        )
    return text


def _redact(value: Any) -> Any:
    return value if value is None or value == "" else REDACTED


def _scrub_argv(tokens: Sequence[Any]) -> list[Any]:
    """Redact the value of ``--secret-flag value`` and ``--secret-flag=value`` tokens."""
    out: list[Any] = []
    redact_next = False
    for token in tokens:
        if redact_next and isinstance(token, str):
            out.append(REDACTED)
            redact_next = False
            continue
        redact_next = False
        if isinstance(token, str) and token.startswith("-"):
            flag, eq, _ = token.partition("=")
            if is_secret_key(flag):
                if eq:
                    out.append(f"{flag}={REDACTED}")
                    continue
                redact_next = True
                out.append(token)
                continue
        out.append(scrub_secrets(token))
    return out


def redact_values(obj: Any, secrets: Iterable[str]) -> Any:
    """A copy of ``obj`` with every occurrence of each value in ``secrets`` redacted.

    Redaction by value, for secrets known from the parsed command line (their destination is a
    secret key, however the flag was spelled), complementing :func:`scrub_secrets`, which goes
    by names and shapes. Values shorter than 4 characters are redacted only as whole strings.
    """
    values = sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True)
    if not values:
        return obj

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            if item in values:
                return REDACTED
            for value in values:
                if len(value) >= 4:
                    item = item.replace(value, REDACTED)
            return item
        if isinstance(item, Mapping):
            return {key: walk(val) for key, val in item.items()}
        if isinstance(item, (list, tuple)):
            return type(item)(walk(val) for val in item)
        return item

    return walk(obj)


def _scrub_string(text: str) -> str:
    text = redact_uris(_SECRET_VALUE_RE.sub(REDACTED, text))
    if "-" not in text or not any(ch.isspace() for ch in text):
        return text
    # A command line held in one string: redact flag values token by token, keep spacing.
    parts = re.split(r"(\s+)", text)
    words = _scrub_argv(parts[0::2])
    parts[0::2] = words
    return "".join(parts)


def scrub_secrets(obj: Any) -> Any:
    """A copy of ``obj`` with credentials replaced by :data:`REDACTED`.

    Redacts the values of secret keys (:func:`is_secret_key`) at any depth, the value after
    a secret command-line flag in lists and command strings, strings that look like access
    tokens (``hf_…``, ``ghp_…``, ``sk-…``) and the credentials of URIs (:func:`redact_uris`).
    ``None`` and empty values stay as they are.
    """
    if isinstance(obj, Mapping):
        return {
            key: (_redact(value) if is_secret_key(str(key)) else scrub_secrets(value))
            for key, value in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return _scrub_argv(obj)
    if isinstance(obj, str):
        return _scrub_string(obj)
    return obj
