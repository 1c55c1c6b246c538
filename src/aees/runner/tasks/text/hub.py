"""How a text run reaches the Hugging Face Hub: the offline rules, the bounded reachability probe,
the token, and the ``datasets`` / ``transformers`` switches a load runs under.

:class:`HubAccess` is made per run by ``TextClassificationTask.hub_access``
(:mod:`aees.runner.tasks.text.task`) and passed down the loading calls: the token and the
probe's answer live on it, never on the registered task (docs/protocols.md §4.5).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.results.io import read_regular_file
from aees.results.schema import RunResultError

__all__ = [
    "HUB_PROBE_SECONDS",
    "MAX_JSON_BYTES",
    "HubAccess",
    "datasets_offline",
    "first_line",
    "hf_quiet",
    "hub_unreachable",
    "read_json",
    "slug",
]

#: Largest JSON side file read (cache metadata, a checkpoint's ``config.json``).
MAX_JSON_BYTES = 16 << 20
#: How long the Hub reachability probe waits (seconds).
HUB_PROBE_SECONDS = 3.0


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def slug(name: str) -> str:
    """A directory-safe, readable name for a model id or local path."""
    base = name.rstrip("/\\")
    if os.path.isdir(base):
        base = Path(base).name or "model"
    base = base.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:60] or "model"


def read_json(path: Path) -> Any:
    """The JSON value of a side file (regular files only, at most :data:`MAX_JSON_BYTES`).

    Raises:
        ValueError: one line naming ``path``: missing, special, too large or not JSON.
    """
    raw = read_regular_file(path, max_bytes=MAX_JSON_BYTES)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise RunResultError(path, f"not JSON ({first_line(err)})") from None


def hub_unreachable(timeout: float = HUB_PROBE_SECONDS) -> str | None:
    """Why the Hugging Face Hub cannot be reached (a phrase), or None when it can.

    One TCP connection to the endpoint (``HF_ENDPOINT``, else huggingface.co; the proxy of
    ``HTTPS_PROXY`` / ``ALL_PROXY`` when one is set), name lookup included, bounded by
    ``timeout`` seconds: without it an offline run spent ~53 s in the libraries' retries.
    """
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    proxy = next(
        (
            os.environ[k]
            for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
            if os.environ.get(k)
        ),
        None,
    )
    try:
        target = urlsplit(proxy or constants.ENDPOINT)
        host = target.hostname
        port = target.port or (443 if target.scheme == "https" else 80)
    except ValueError:
        return None  # an endpoint we cannot parse: let the library say what is wrong
    if not host:
        return None
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err.strerror or str(err) or type(err).__name__)

    thread = threading.Thread(target=probe, name="aees-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    where = f"{host}:{port}" + (" (the proxy)" if proxy else "")
    if not outcome:
        return f"no answer from {where} within {timeout:g} s"
    return None if outcome[0] is None else f"{where}: {outcome[0]}"


@contextlib.contextmanager
def datasets_offline(enabled: bool) -> Iterator[None]:
    """``HF_HUB_OFFLINE`` semantics for the datasets library, for one call (restored after)."""
    if not enabled:
        yield
        return
    import datasets.config as dconfig

    saved = {name: getattr(dconfig, name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    try:
        for name in saved:
            setattr(dconfig, name, True)
        yield
    finally:
        for name, value in saved.items():
            setattr(dconfig, name, value)


@contextlib.contextmanager
def hf_quiet(enabled: bool) -> Iterator[None]:
    """With ``--quiet``: no datasets/transformers progress bars or load reports (restored after)."""
    if not enabled:
        yield
        return
    import datasets
    from transformers.utils import logging as tlog

    bars = datasets.is_progress_bar_enabled()
    tbars = tlog.is_progress_bar_enabled()
    verbosity = tlog.get_verbosity()
    datasets.disable_progress_bars()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(verbosity)
        if tbars:
            tlog.enable_progress_bar()
        if bars:
            datasets.enable_progress_bars()


@dataclass
class HubAccess:
    """How one run reaches the Hub: made per run, passed down the loading calls, never kept on
    the registered task (docs/protocols.md §4.5).

    ``token`` is ``--hf-token`` or ``$HF_TOKEN`` (used as ``token=``, never written);
    :meth:`offline_reason` probes the Hub at most once per run (:func:`hub_unreachable`, logged).
    """

    cache_dir: str
    local_files_only: bool
    token: str | None = field(default=None, repr=False)
    quiet: bool = False
    #: The probe's answer: False (not probed yet), None (reachable) or why it is not.
    down: str | bool | None = field(default=False, repr=False)

    def log(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)

    def offline_reason(self, hub: bool = True) -> str | None:
        """Why nothing is fetched from the Hub in this run, or None (it may be): the flag,
        ``HF_HUB_OFFLINE``, or (``hub``: this load would go there) a Hub that does not answer
        a bounded probe (:func:`hub_unreachable`, once per run; logged)."""
        if self.local_files_only:
            return "--local-files-only"
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return "HF_HUB_OFFLINE is set"
        if not hub:
            return None
        if self.down is False:
            self.down = hub_unreachable()
            if self.down is not None:
                self.log(
                    f"The Hugging Face Hub is unreachable ({self.down}): using the local "
                    "caches only, as with --local-files-only"
                )
        return None if self.down is None else f"the Hub is unreachable: {self.down}"

    def local_only(self, hub: bool = True) -> bool:
        return self.offline_reason(hub) is not None

    def fetch_hint(self, command: str) -> str:
        """How to get what is missing: online, or (offline) a local directory or a fetch
        elsewhere followed by --local-files-only."""
        reason = self.offline_reason(hub=False) or (
            None if self.down in (False, None) else f"the Hub is unreachable: {self.down}"
        )
        if reason is None:
            return f"fetch it online with: {command}"
        return (
            f"offline ({reason}): pass a local checkpoint directory as --model-name DIR, or fetch "
            f"it where the Hub is reachable with: {command} and run again with --local-files-only"
        )
