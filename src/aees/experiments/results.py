"""The one result schema of the project: :class:`RunResult`, its JSON form, and its I/O.

One training run writes one JSON object. Its fields are the thesis ``RunResult`` fields (so the
archived thesis files load unchanged) plus:

* ``schema_version`` -- :data:`SCHEMA_VERSION` for files written by this package,
  :data:`LEGACY_SCHEMA_VERSION` for thesis-era files read by :func:`load_run_result`;
* ``variant`` -- a stable, readable id of the method configuration (:func:`variant_id`), so
  reporting groups runs by what was run, never by file name;
* ``provenance`` -- command line, git revision and dirty flag, package versions, start time and
  hardware (:func:`collect_provenance`);
* ``diagnostics`` -- results that are not configuration (e.g. the label-noise diagnostics, which
  the thesis stored inside ``config``);
* ``runtime_metrics`` -- derived at save time from the other fields (:func:`build_runtime_metrics`).

Writes are atomic (temporary file in the same directory, ``fsync``, ``os.replace``) and secrets
(``hf_token``, ``api_key``, ``password``, ...) are redacted before anything is written.

This module uses the standard library only; the hardware probe imports ``torch`` lazily.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from importlib import metadata
from pathlib import Path, PurePath
from typing import Any

from aees.experiments.atomic import atomic_write_text
from aees.experiments.hardware import hardware_from_config, probe_host

__all__ = [
    "LEGACY_SCHEMA_VERSION",
    "REDACTED",
    "SCHEMA_VERSION",
    "STEADY_STATE_RULE",
    "RunResult",
    "RunResultError",
    "atomic_write_text",
    "build_runtime_metrics",
    "collect_provenance",
    "is_secret_key",
    "load_run_result",
    "method_spec",
    "redact_values",
    "result_to_dict",
    "save_run_result",
    "scrub_secrets",
    "variant_id",
]

SCHEMA_VERSION = "1"
"""``schema_version`` written by this package."""

LEGACY_SCHEMA_VERSION = "legacy"
"""``schema_version`` given to files without one (thesis-era results)."""

REDACTED = "<redacted>"
"""What a secret value is replaced with."""

STEADY_STATE_RULE = "mean of epoch_wall_clock_seconds[1:] (first epoch excluded as warm-up)"
"""How the ``steady_state_*`` runtime metrics are computed (written next to them)."""

DEFAULT_PROVENANCE_PACKAGES = (
    "aees",
    "torch",
    "pulseopt",
    "torchvision",
    "transformers",
    "datasets",
    "numpy",
    "ray",
)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class RunResultError(ValueError):
    """A result file or dict that cannot be read as a :class:`RunResult`.

    ``str(error)`` is one line, ``"<path>: <problem>"``; ``path`` and ``problem`` are attributes.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem))


# --------------------------------------------------------------------------------------------
# The dataclass
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    """One run. The first 23 fields are the thesis ``RunResult`` fields, in the thesis order.

    Accuracies are fractions in [0, 1]; ``train_losses`` are per-epoch means per example;
    ``epoch_wall_clock_seconds`` covers train + eval of each epoch; ``estimated_flops`` is the
    total train + eval FLOPs. See ``thesis-experiments.md`` §3.1 for every field.
    """

    method_name: str
    task_name: str
    seed: int
    model_name: str
    dataset_name: str
    config: dict[str, Any]
    best_val_accuracy: float
    final_val_accuracy: float
    final_train_loss: float
    total_steps: int
    total_epochs: int
    wall_clock_seconds: float
    estimated_flops: float | None
    accuracy_per_tflop: float | None
    train_losses: list[float]
    train_accuracies: list[float] | None
    val_accuracies: list[float]
    epoch_wall_clock_seconds: list[float]
    epoch_tflops: list[float] | None
    episode_logs: dict[str, Any] | None
    controller_logs: dict[str, Any] | None
    run_tag: str | None = None
    runtime_metrics: dict[str, Any] | None = None
    schema_version: str = SCHEMA_VERSION
    variant: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    #: The run stopped at a non-finite training loss (``--nonfinite raise``): the per-epoch
    #: lists hold the epochs completed before it; the step (0-based global optimizer step) and
    #: the 1-based epoch it happened in are recorded.
    diverged: bool = False
    diverged_at_step: int | None = None
    diverged_at_epoch: int | None = None

    @property
    def is_legacy(self) -> bool:
        """True for a result read from a thesis-era file (no ``schema_version``)."""
        return self.schema_version == LEGACY_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Every field, converted to JSON-able values; no derivation, no redaction.

        ``RunResult.from_dict(r.to_dict()) == r`` for any result holding JSON-able values.
        Use :func:`result_to_dict` for the form that is written to disk.
        """
        return {f.name: _to_jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> RunResult:
        """Validate ``data`` and build a result; ``source`` names it in error messages.

        A dict without ``schema_version`` is a thesis-era result: the old field names
        (``val_accuracy``, ``best_accuracy``, ...) are accepted, missing fields are derived
        where the thesis readers derived them, ``config["diagnostics"]`` moves to
        ``diagnostics``, ``variant`` is computed from the config, and ``schema_version``
        becomes :data:`LEGACY_SCHEMA_VERSION`. Unknown keys are ignored.

        Raises:
            RunResultError: a missing required field, a wrong type, or an unknown schema.
        """
        if not isinstance(data, Mapping):
            raise RunResultError(
                source, f"top-level JSON value must be an object, got {_type_name(data)}"
            )
        raw = dict(data)
        version = raw.get("schema_version")
        if version is None or version == LEGACY_SCHEMA_VERSION:
            raw = _upgrade_legacy(raw, source)
        elif version != SCHEMA_VERSION:
            raise RunResultError(
                source,
                f"unsupported schema_version {version!r} (this aees reads "
                f"{SCHEMA_VERSION!r} and legacy files without schema_version)",
            )
        values: dict[str, Any] = {}
        for name, (check, default) in _FIELD_SPECS.items():
            if name not in raw:
                if default is _REQUIRED:
                    raise RunResultError(source, f"missing required field '{name}'")
                values[name] = default()
                continue
            values[name] = check(raw[name], name, source)
        return cls(**values)


# --------------------------------------------------------------------------------------------
# Field validation
# --------------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        str: "string",
        int: "integer",
        float: "number",
        list: "list",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fail(source: str, name: str, expected: str, value: Any) -> RunResultError:
    return RunResultError(source, f"field '{name}' must be {expected}, got {_type_name(value)}")


def _check_str(value: Any, name: str, source: str) -> str:
    if not isinstance(value, str):
        raise _fail(source, name, "a string", value)
    return value


def _check_opt_str(value: Any, name: str, source: str) -> str | None:
    return None if value is None else _check_str(value, name, source)


def _check_int(value: Any, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _fail(source, name, "an integer", value)
    return value


def _check_opt_int(value: Any, name: str, source: str) -> int | None:
    return None if value is None else _check_int(value, name, source)


def _check_bool(value: Any, name: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, name, "true or false", value)
    return value


def _check_float(value: Any, name: str, source: str) -> float:
    if not _is_number(value):
        raise _fail(source, name, "a number", value)
    return float(value)


def _check_opt_float(value: Any, name: str, source: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise _fail(source, name, "a number or null", value)
    return float(value)


def _check_float_list(value: Any, name: str, source: str) -> list[float]:
    if not isinstance(value, list):
        raise _fail(source, name, "a list of numbers", value)
    for index, item in enumerate(value):
        if not _is_number(item):
            raise RunResultError(
                source,
                f"field '{name}' must be a list of numbers, item {index} is {_type_name(item)}",
            )
    return [float(item) for item in value]


def _check_opt_float_list(value: Any, name: str, source: str) -> list[float] | None:
    return None if value is None else _check_float_list(value, name, source)


def _check_dict(value: Any, name: str, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, name, "an object", value)
    return dict(value)


def _check_opt_dict(value: Any, name: str, source: str) -> dict[str, Any] | None:
    return None if value is None else _check_dict(value, name, source)


_REQUIRED: Any = object()
_Check = Callable[[Any, str, str], Any]

# field -> (validator, default factory or _REQUIRED), in dataclass order.
_FIELD_SPECS: dict[str, tuple[_Check, Any]] = {
    "method_name": (_check_str, _REQUIRED),
    "task_name": (_check_str, _REQUIRED),
    "seed": (_check_int, _REQUIRED),
    "model_name": (_check_str, _REQUIRED),
    "dataset_name": (_check_str, _REQUIRED),
    "config": (_check_dict, _REQUIRED),
    "best_val_accuracy": (_check_float, _REQUIRED),
    "final_val_accuracy": (_check_float, _REQUIRED),
    "final_train_loss": (_check_float, _REQUIRED),
    "total_steps": (_check_int, _REQUIRED),
    "total_epochs": (_check_int, _REQUIRED),
    "wall_clock_seconds": (_check_float, _REQUIRED),
    "estimated_flops": (_check_opt_float, lambda: None),
    "accuracy_per_tflop": (_check_opt_float, lambda: None),
    "train_losses": (_check_float_list, _REQUIRED),
    "train_accuracies": (_check_opt_float_list, lambda: None),
    "val_accuracies": (_check_float_list, _REQUIRED),
    "epoch_wall_clock_seconds": (_check_float_list, _REQUIRED),
    "epoch_tflops": (_check_opt_float_list, lambda: None),
    "episode_logs": (_check_opt_dict, lambda: None),
    "controller_logs": (_check_opt_dict, lambda: None),
    "run_tag": (_check_opt_str, lambda: None),
    "runtime_metrics": (_check_opt_dict, lambda: None),
    "schema_version": (_check_str, lambda: SCHEMA_VERSION),
    "variant": (_check_opt_str, lambda: None),
    "provenance": (_check_dict, dict),
    "diagnostics": (_check_dict, dict),
    "diverged": (_check_bool, lambda: False),
    "diverged_at_step": (_check_opt_int, lambda: None),
    "diverged_at_epoch": (_check_opt_int, lambda: None),
}

# Old field names the thesis readers fell back to (§3.5).
_LEGACY_ALIASES = {
    "val_accuracies": ("val_accuracy", "validation_accuracies"),
    "best_val_accuracy": ("best_validation_accuracy", "best_accuracy"),
    "final_val_accuracy": ("final_validation_accuracy", "final_accuracy"),
}


def _upgrade_legacy(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Bring a thesis-era dict to the current field set (see :meth:`RunResult.from_dict`)."""
    out = dict(raw)
    for name, aliases in _LEGACY_ALIASES.items():
        if name not in out:
            for alias in aliases:
                if alias in out:
                    out[name] = out[alias]
                    break
    config = _check_dict(out.get("config", {}), "config", source)
    diagnostics = config.pop("diagnostics", None)
    if diagnostics is not None and "diagnostics" not in out:
        out["diagnostics"] = _check_dict(diagnostics, "config.diagnostics", source)
    out["config"] = config

    fallbacks = {
        "method_name": ("control_regime", "method"),
        "task_name": ("task_name",),
        "model_name": ("model_name",),
        "dataset_name": ("dataset_name",),
        "seed": ("seed",),
        "run_tag": ("run_tag",),
    }
    for name, keys in fallbacks.items():
        if out.get(name) is None:
            value = next((config[k] for k in keys if config.get(k) is not None), None)
            if value is not None:
                out[name] = value

    if "val_accuracies" in out:
        vals = _check_float_list(out["val_accuracies"], "val_accuracies", source)
        if vals:
            out.setdefault("best_val_accuracy", max(vals))
            out.setdefault("final_val_accuracy", vals[-1])
        epochs = config.get("epochs")
        out.setdefault("total_epochs", epochs if _as_int(epochs) is not None else len(vals))
    train_losses = out.get("train_losses")
    if isinstance(train_losses, list) and train_losses:
        out.setdefault(
            "final_train_loss", _check_float_list(train_losses, "train_losses", source)[-1]
        )
    out.setdefault("epoch_wall_clock_seconds", [])
    out["schema_version"] = LEGACY_SCHEMA_VERSION
    if out.get("variant") is None and isinstance(out.get("method_name"), str):
        out["variant"] = variant_id(config, out["method_name"])
    return out


# --------------------------------------------------------------------------------------------
# JSON conversion and secrets
# --------------------------------------------------------------------------------------------


def _to_jsonable(obj: Any) -> Any:
    """Dataclasses -> dicts, keys -> ``str(key)``, tuples/sets -> lists, paths -> str,
    enums -> their value, tensors/arrays -> ``tolist()``; anything else -> ``str(obj)``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_jsonable(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Mapping):
        return {str(key): _to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(item) for item in obj]
    if isinstance(obj, (set, frozenset)):
        return [_to_jsonable(item) for item in sorted(obj, key=str)]
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Enum):
        return _to_jsonable(obj.value)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        with contextlib.suppress(Exception):
            return _to_jsonable(tolist())
    return str(obj)


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
    text = _SECRET_VALUE_RE.sub(REDACTED, text)
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
    a secret command-line flag in lists and command strings, and strings that look like access
    tokens (``hf_…``, ``ghp_…``, ``sk-…``). ``None`` and empty values stay as they are.
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


# --------------------------------------------------------------------------------------------
# Variant id
# --------------------------------------------------------------------------------------------

_KIND_ALIASES = {
    "baseline": "baseline",
    "base": "baseline",
    "adamw": "baseline",
    "sgd": "baseline",
    "sgdm": "baseline",
    "adaptive": "aees",
    "adaptivescheduler": "aees",
    "aees": "aees",
    "random": "random",
    "randomscheduler": "random",
    "uniform-random": "uniform-open-loop",
    "uniformrandomopenloop": "uniform-open-loop",
    "frequency-matched": "frequency-open-loop",
    "frequencymatchedopenloop": "frequency-open-loop",
    "fixed": "fixed",
}
_BANDIT_KINDS = ("aees", "random")
_OPEN_LOOP_KINDS = ("uniform-open-loop", "frequency-open-loop")
_NAME_TOKEN_RE = re.compile(r"^lr([0-9a-z.+-]+)_n([0-9a-z.+-]+)$")


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _num_text(value: float) -> str:
    return format(float(value), ".12g")


def _canonical(value: Any) -> Any:
    """JSON value with numbers as ``.12g`` text, so 1, 1.0 and 1e0 hash the same."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if _is_number(value):
        return _num_text(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


def _candidate_values(value: Any) -> list[float] | None:
    """Candidate list from a config value: a list of numbers or a comma-separated string."""
    if isinstance(value, str):
        tokens = [token.strip() for token in value.split(",") if token.strip()]
        try:
            return [float(token) for token in tokens] or None
        except ValueError:
            return None
    if isinstance(value, (list, tuple)) and value and all(_is_number(v) for v in value):
        return [float(v) for v in value]
    return None


def _parse_candidate_name(name: str) -> tuple[float, float] | None:
    """``lr0p5_n0p005`` -> ``(0.5, 0.005)`` (the thesis candidate-name tokens)."""
    match = _NAME_TOKEN_RE.match(name.strip().lower())
    if not match:
        return None
    try:
        lr, noise = (float(tok.replace("m", "-").replace("p", ".")) for tok in match.groups())
    except ValueError:
        return None
    return lr, noise


def _method_kind(config: Mapping[str, Any], method_name: str | None) -> str:
    for raw in (
        config.get("control_mode"),
        config.get("method"),
        config.get("control_regime"),
        method_name,
    ):
        if isinstance(raw, str) and raw.strip():
            key = raw.strip().lower().replace("_", "-")
            return _KIND_ALIASES.get(key, _slugify(raw))
    return "unknown"


def method_spec(config: Mapping[str, Any], method_name: str | None = None) -> dict[str, Any]:
    """The normalised method configuration that :func:`variant_id` hashes.

    Only keys that define *the method* are kept: the method kind (baseline, aees, random,
    fixed, open-loop), optimizer, base lr, weight decay, momentum (SGD), batch size, gradient
    accumulation, LR schedule and warmup, and for AEES-style methods the candidates, episode
    length, control/context modes and reward settings. Seeds, paths, epochs, task and label
    noise are not method settings and never change the variant. Numbers are canonicalised
    (``1`` == ``1.0``); candidate lists may be lists or comma-separated strings; a missing list
    means the runner default (``[1.0]`` for lr, ``[0.0]`` for noise).
    """
    kind = _method_kind(config, method_name)
    optimizer = config.get("optimizer") or config.get("optimizer_family") or "AdamW"
    optimizer = _slugify(str(optimizer))
    scheduler = config.get("lr_scheduler") or "none"
    spec: dict[str, Any] = {
        "kind": kind,
        "optimizer": optimizer,
        "lr": config.get("lr", config.get("base_lr")),
        "weight_decay": config.get("weight_decay", config.get("base_weight_decay")),
        "batch_size": config.get("batch_size"),
        "gradient_accumulation_steps": config.get("gradient_accumulation_steps") or 1,
        "lr_scheduler": str(scheduler),
    }
    if optimizer.startswith("sgd"):
        spec["momentum"] = config.get("momentum", config.get("optimizer_momentum"))
    if scheduler != "none":
        spec["warmup_epochs"] = config.get("warmup_epochs") or 0

    lr_cands = _candidate_values(config.get("lr_candidates")) or [1.0]
    noise_cands = _candidate_values(config.get("noise_candidates")) or [0.0]
    fixed_name = config.get("fixed_mode_name")
    if isinstance(fixed_name, str) and fixed_name:
        # Thesis-era fixed-multiplier runs (FixedModeController).
        kind = spec["kind"] = "fixed"
        parsed = _parse_candidate_name(fixed_name)
        if parsed is None:
            spec["fixed_mode_name"] = fixed_name
        else:
            lr_cands, noise_cands = [parsed[0]], [parsed[1]]
    if kind in _BANDIT_KINDS and len(lr_cands) == 1 and len(noise_cands) == 1:
        kind = spec["kind"] = "fixed"  # single-candidate axes: no controller, constant mode

    if kind == "fixed":
        spec["lr_candidates"] = lr_cands
        spec["noise_candidates"] = noise_cands
    elif kind in _BANDIT_KINDS or kind in _OPEN_LOOP_KINDS:
        spec["lr_candidates"] = lr_cands
        spec["noise_candidates"] = noise_cands
        spec["episode_length"] = config.get("episode_length")
    if kind in _BANDIT_KINDS:
        context_mode = config.get("context_mode") or "none"
        spec["structured_control_mode"] = config.get("structured_control_mode") or "independent"
        spec["context_mode"] = context_mode
        if context_mode != "none":
            spec["context_trend_window"] = config.get("context_trend_window")
            spec["context_trend_epsilon"] = config.get("context_trend_epsilon")
    if kind == "aees":
        for key in (
            "reward_epsilon",
            "reward_instability_lambda",
            "reward_clip_min",
            "reward_clip_max",
            "ema_alpha",
        ):
            spec[key] = config.get(key)
    return _canonical(spec)


def variant_id(config: Mapping[str, Any], method_name: str | None = None) -> str:
    """A stable id of the method configuration: a readable slug plus an 8-hex digest.

    Examples: ``aees-adamw-cosine-lr[0.5,1,2]-n[0]-independent-none-ep200-1a2b3c4d``,
    ``baseline-sgd-none-5e6f7a8b``, ``fixed-adamw-none-lr[0.5]-n[0]-9c0d1e2f``. The digest is
    the SHA-256 of :func:`method_spec` as canonical JSON, so every setting that defines the
    method (base lr, weight decay, reward settings, ...) separates variants, while seeds,
    paths and the task do not. Deterministic across processes and machines.
    """
    spec = method_spec(config, method_name)
    digest = hashlib.sha256(
        json.dumps(spec, sort_keys=True, separators=(",", ":")).encode("utf-8")
    ).hexdigest()[:8]
    parts = [spec["kind"], spec["optimizer"], _slugify(spec["lr_scheduler"])]
    if "lr_candidates" in spec:
        parts.append("lr[" + ",".join(spec["lr_candidates"]) + "]")
        parts.append("n[" + ",".join(spec["noise_candidates"]) + "]")
    if "structured_control_mode" in spec:
        parts.append(_slugify(str(spec["structured_control_mode"])))
        parts.append(_slugify(str(spec["context_mode"])))
    if spec.get("episode_length") is not None:
        parts.append(f"ep{spec['episode_length']}")
    parts.append(digest)
    return "-".join(parts)


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------


def _git_state(directory: Path) -> dict[str, Any]:
    """``{"revision": sha or None, "dirty": bool or None}`` of the repository holding
    ``directory``; both None outside a git checkout or without git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    inside = git("rev-parse", "--is-inside-work-tree")
    if inside != "true":
        return {"revision": None, "dirty": None}
    revision = git("rev-parse", "HEAD") or None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision, "dirty": None if status is None else bool(status)}


def _package_versions(names: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


_PROVENANCE_ENV_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "OMP_NUM_THREADS",
    "SLURM_JOB_ID",
)


def collect_provenance(
    argv: Sequence[str] | None = None,
    *,
    started_at: datetime | None = None,
    packages: Iterable[str] = DEFAULT_PROVENANCE_PACKAGES,
    repo_dir: str | os.PathLike[str] | None = None,
    include_hardware: bool = True,
) -> dict[str, Any]:
    """Where a run came from; call it when the run starts and store it in ``provenance``.

    Args:
        argv: the command line (default ``sys.argv``); secret flag values are redacted.
        started_at: the start time (default now); written as ISO 8601 in UTC.
        packages: distributions whose installed versions are recorded (None if absent).
        repo_dir: where to look for the git checkout (default: this package's directory, so
            the revision is that of the code that ran, not of the working directory).
        include_hardware: add the host block of :mod:`aees.experiments.hardware`.

    Returns:
        ``{"command", "command_str", "cwd", "python_executable", "python_version",
        "started_at", "git": {"revision", "dirty"}, "packages", "environment"[, "hardware"]}``.
    """
    command = [str(token) for token in (sys.argv if argv is None else argv)]
    start = started_at or datetime.now(UTC)
    if start.tzinfo is None:
        start = start.astimezone()
    provenance: dict[str, Any] = {
        "command": command,
        "command_str": shlex.join(command),
        "cwd": os.getcwd(),
        "python_executable": sys.executable,
        "python_version": sys.version.split()[0],
        "started_at": start.astimezone(UTC).isoformat(timespec="seconds"),
        "git": _git_state(Path(repo_dir) if repo_dir is not None else Path(__file__).parent),
        "packages": _package_versions(packages),
        "environment": {
            name: os.environ[name] for name in _PROVENANCE_ENV_VARS if name in os.environ
        },
    }
    if include_hardware:
        provenance["hardware"] = probe_host()
    return scrub_secrets(provenance)


# --------------------------------------------------------------------------------------------
# Runtime metrics (§4.1)
# --------------------------------------------------------------------------------------------


def _as_float(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _ratio_or_none(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _number_list(value: Any) -> list[float] | None:
    """The list as floats, or None if absent or holding anything but numbers."""
    if not isinstance(value, (list, tuple)) or not all(_is_number(v) for v in value):
        return None
    return [float(v) for v in value]


def _mean(values: list[float] | None) -> float | None:
    return statistics.fmean(values) if values else None


def _pstd(values: list[float] | None) -> float | None:
    if not values:
        return None
    return 0.0 if len(values) == 1 else statistics.pstdev(values)


def _positive(count: int | None) -> bool:
    return count is not None and count > 0


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _axis_entries(logs: Mapping[str, Any], axis: str) -> tuple[list[Mapping[str, Any]], bool]:
    """The axis logs of one axis and whether they are per-LR noise controllers."""
    if axis == "lr":
        entry = _mapping(logs.get("lr_controller_logs"))
        return ([entry] if entry is not None else []), False
    entry = _mapping(logs.get("noise_controller_logs"))
    if entry is not None:
        return [entry], False
    by_lr = _mapping(logs.get("noise_controller_logs_by_lr"))
    if by_lr is not None:
        return [v for v in by_lr.values() if isinstance(v, Mapping)], True
    return [], False


def _entry_created(entry: Mapping[str, Any]) -> bool | None:
    created = entry.get("controller_created")
    if isinstance(created, bool):
        return created
    controller_type = entry.get("controller_type")
    if isinstance(controller_type, str):
        return controller_type != "FixedAxis"
    return None


def _last_int(value: Any) -> int | None:
    if isinstance(value, list) and value:
        return _as_int(value[-1])
    return None


def _entry_updates(entry: Mapping[str, Any]) -> int | None:
    if _entry_created(entry) is False:
        return 0
    updates = _last_int(entry.get("controller_updates_history"))
    if updates is None:
        prior = _mapping(entry.get("global_prior_logs")) or {}
        updates = _last_int(prior.get("controller_updates_history"))
    return updates


def _entry_history_length(entry: Mapping[str, Any]) -> int | None:
    if _entry_created(entry) is False:
        return 0
    prior = _mapping(entry.get("global_prior_logs")) or {}
    for history in (
        entry.get("value_estimates_history"),
        prior.get("value_estimates_history"),
        prior.get("controller_updates_history"),
        entry.get("controller_updates_history"),
    ):
        if isinstance(history, list):
            return len(history)
    return None


def _combine(values: Iterable[Any], how: Callable[[list[Any]], Any]) -> Any:
    known = [v for v in values if v is not None]
    return how(known) if known else None


def _axis_value(
    logs: Mapping[str, Any],
    axis: str,
    per_entry: Callable[[Mapping[str, Any]], Any],
    across_lr: Callable[[list[Any]], Any],
) -> Any:
    entries, by_lr = _axis_entries(logs, axis)
    if not entries:
        return None
    if by_lr:
        return _combine((per_entry(e) for e in entries), across_lr)
    return per_entry(entries[0])


def _fmt_g(value: float) -> str:
    return format(value, "g")


def _overhead_metadata(result: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    logs = _mapping(result.get("controller_logs"))
    lr_cands = _candidate_values(config.get("lr_candidates"))
    noise_cands = _candidate_values(config.get("noise_candidates"))
    config_cands = {"lr": lr_cands, "noise": noise_cands}

    created: dict[str, bool | None] | None = None
    if logs is not None:
        created = {axis: _axis_value(logs, axis, _entry_created, any) for axis in ("lr", "noise")}

    if created is not None and any(v is False for v in created.values()):
        fixed_axis_optimization: bool | None = True
    elif created is not None and all(v is not None for v in created.values()):
        fixed_axis_optimization = False
    elif any(c is not None and len(c) == 1 for c in config_cands.values()):
        fixed_axis_optimization = True
    else:
        fixed_axis_optimization = None

    adaptive: list[str] = []
    fixed: list[str] = []
    for axis in ("lr", "noise"):
        axis_created = created.get(axis) if created is not None else None
        if axis_created is not None and logs is not None:
            entries, _ = _axis_entries(logs, axis)
            values = next(
                (vals for vals in (_number_list(e.get("arm_values")) for e in entries) if vals),
                None,
            ) or (config_cands[axis] or [])
            if axis_created:
                adaptive.append(f"{axis}=[{', '.join(_fmt_g(v) for v in values)}]")
            else:
                fixed_value = next(
                    (
                        float(e["fixed_arm_value"])
                        for e in entries
                        if _is_number(e.get("fixed_arm_value"))
                    ),
                    values[0] if values else None,
                )
                if fixed_value is not None:
                    fixed.append(f"{axis}={_fmt_g(fixed_value)}")
            continue
        cands = config_cands[axis]
        if cands is None:
            continue
        if len(cands) > 1:
            adaptive.append(f"{axis}=[{', '.join(_fmt_g(v) for v in cands)}]")
        else:
            fixed.append(f"{axis}={_fmt_g(cands[0])}")

    if logs is not None:
        lr_entries, _ = _axis_entries(logs, "lr")
        noise_entries, _ = _axis_entries(logs, "noise")
        num_controllers: int | None = sum(
            1 for e in (*lr_entries, *noise_entries) if _entry_created(e) is True
        )
    elif lr_cands is not None and noise_cands is not None:
        conditional = config.get("structured_control_mode") == "conditional"
        lr_count = 1 if len(lr_cands) > 1 else 0
        if len(noise_cands) > 1:
            noise_count = len(lr_cands) if conditional and len(lr_cands) > 1 else 1
        else:
            noise_count = 0
        num_controllers = lr_count + noise_count
    else:
        num_controllers = None

    return {
        "method_name": result.get("method_name"),
        "control_regime": config.get("control_regime", config.get("control_mode")),
        "structured_control_mode": config.get("structured_control_mode"),
        "context_mode": config.get("context_mode"),
        "lr_scheduler": config.get("lr_scheduler"),
        "episode_length": config.get("episode_length"),
        "lr_candidates": config.get("lr_candidates"),
        "noise_candidates": config.get("noise_candidates"),
        "controller_created_by_axis": created,
        "fixed_axis_optimization_enabled": fixed_axis_optimization,
        "adaptive_axes": adaptive or None,
        "fixed_axes": fixed or None,
        "num_adaptive_axes": len(adaptive),
        "num_fixed_axes": len(fixed),
        "num_controllers_created": num_controllers,
    }


def _hardware_block(
    result: Mapping[str, Any], config: Mapping[str, Any], hardware: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Host fields from (in order) the argument, ``provenance.hardware`` (captured when the
    run started), an existing ``runtime_metrics.hardware`` (a re-saved file keeps the machine
    it ran on), else a probe of this machine; then the ``*_from_config`` fields."""
    host = hardware
    if host is None:
        host = _mapping((_mapping(result.get("provenance")) or {}).get("hardware"))
    if host is None:
        host = _mapping((_mapping(result.get("runtime_metrics")) or {}).get("hardware"))
    if host is None:
        host = probe_host()
    return {**host, **hardware_from_config(config)}


def build_runtime_metrics(
    result: Mapping[str, Any], *, hardware: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Derive the ``runtime_metrics`` block from a result dict (thesis §4.1, key for key).

    Whole-run rates (``seconds_per_epoch``, ``seconds_per_step``, TFLOP/s, ...) include the
    first epoch, as in the thesis. The ``steady_state_*`` keys added here exclude it
    (:data:`STEADY_STATE_RULE`); ``steady_state_seconds_per_step`` assumes an equal number of
    steps per epoch. Counts must be ints (bools and floats count as missing); a rate whose
    count is 0 or missing, or whose wall time is 0 or missing, is None. Std is the population
    std (0.0 for one value). ``hardware`` overrides the host part of the hardware block.
    """
    config = _mapping(result.get("config")) or {}
    logs = _mapping(result.get("controller_logs"))

    wall = _as_float(result.get("wall_clock_seconds"))
    epoch_times = _number_list(result.get("epoch_wall_clock_seconds"))
    total_steps = _as_int(result.get("total_steps"))
    total_epochs = _as_int(result.get("total_epochs"))

    batch_size = _as_int(config.get("batch_size"))
    grad_accum = _as_int(config.get("gradient_accumulation_steps"))
    if grad_accum is None:
        grad_accum = 1
    effective_batch = batch_size * grad_accum if batch_size is not None else None
    examples = (
        total_steps * effective_batch
        if total_steps is not None and effective_batch is not None
        else None
    )

    flops = _as_float(result.get("estimated_flops"))
    tflops_total = flops / 1e12 if flops is not None else None
    epoch_tflops = _number_list(result.get("epoch_tflops"))

    steady = epoch_times[1:] if epoch_times is not None and len(epoch_times) >= 2 else None
    steady_mean = _mean(steady)
    steps_per_epoch = (
        total_steps / total_epochs if _positive(total_steps) and _positive(total_epochs) else None
    )
    steady_sec_per_step = _ratio_or_none(steady_mean, steps_per_epoch)

    metrics: dict[str, Any] = {
        "wall_clock_seconds": wall,
        "wall_clock_minutes": wall / 60 if wall is not None else None,
        "wall_clock_hours": wall / 3600 if wall is not None else None,
        "epoch_wall_clock_seconds": epoch_times,
        "mean_epoch_wall_clock_seconds": _mean(epoch_times),
        "std_epoch_wall_clock_seconds": _pstd(epoch_times),
        "min_epoch_wall_clock_seconds": min(epoch_times) if epoch_times else None,
        "max_epoch_wall_clock_seconds": max(epoch_times) if epoch_times else None,
        "first_epoch_wall_clock_seconds": epoch_times[0] if epoch_times else None,
        "last_epoch_wall_clock_seconds": epoch_times[-1] if epoch_times else None,
        "total_steps": total_steps,
        "total_epochs": total_epochs,
        "seconds_per_step": _ratio_or_none(wall, total_steps) if _positive(total_steps) else None,
        "steps_per_second": _ratio_or_none(total_steps, wall) if _positive(total_steps) else None,
        "seconds_per_epoch": (
            _ratio_or_none(wall, total_epochs) if _positive(total_epochs) else None
        ),
        "epochs_per_hour": (
            _ratio_or_none(total_epochs * 3600, wall)
            if total_epochs is not None and _positive(total_epochs)
            else None
        ),
        "batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "effective_batch_size": effective_batch,
        "estimated_train_examples_processed": examples,
        "estimated_examples_per_second": _ratio_or_none(examples, wall),
        "estimated_flops": flops,
        "estimated_tflops_total": tflops_total,
        "estimated_tflops_per_second": _ratio_or_none(tflops_total, wall),
        "estimated_tflops_per_hour": (
            _ratio_or_none(tflops_total * 3600, wall) if tflops_total is not None else None
        ),
        "epoch_tflops": epoch_tflops,
        "mean_epoch_tflops": _mean(epoch_tflops),
        "steady_state_rule": STEADY_STATE_RULE,
        "steady_state_epochs_counted": len(steady) if steady is not None else 0,
        "steady_state_mean_epoch_wall_clock_seconds": steady_mean,
        "steady_state_std_epoch_wall_clock_seconds": _pstd(steady),
        "steady_state_seconds_per_step": steady_sec_per_step,
        "steady_state_steps_per_second": _ratio_or_none(1.0, steady_sec_per_step)
        if steady_sec_per_step is not None
        else None,
        "hardware": _hardware_block(result, config, hardware),
        "aees_overhead_metadata": _overhead_metadata(result, config),
        "logged_episode_count": (
            _as_int(logs.get("_logged_episode_count")) if logs is not None else None
        ),
        "controller_update_count_by_axis": (
            {axis: _axis_value(logs, axis, _entry_updates, sum) for axis in ("lr", "noise")}
            if logs is not None
            else None
        ),
        "controller_history_length_by_axis": (
            {axis: _axis_value(logs, axis, _entry_history_length, max) for axis in ("lr", "noise")}
            if logs is not None
            else None
        ),
        "controller_select_count_by_axis": None,
    }
    return metrics


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------


def result_to_dict(
    result: RunResult, *, hardware: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The dict that :func:`save_run_result` writes.

    :meth:`RunResult.to_dict`, then: ``run_tag`` falls back to ``config.run_tag``;
    ``config["diagnostics"]`` (the thesis location) moves to ``diagnostics``; a missing
    ``variant`` is computed with :func:`variant_id`; ``runtime_metrics`` is always recomputed
    (:func:`build_runtime_metrics`); finally secrets are redacted (:func:`scrub_secrets`).
    """
    data = result.to_dict()
    config = data["config"]
    if data.get("run_tag") is None:
        tag = config.get("run_tag")
        data["run_tag"] = tag if isinstance(tag, str) else None
    if isinstance(config.get("diagnostics"), Mapping):
        moved = config.pop("diagnostics")
        data["diagnostics"] = {**moved, **data["diagnostics"]}
    if data.get("variant") is None:
        data["variant"] = variant_id(config, data["method_name"])
    data["runtime_metrics"] = build_runtime_metrics(data, hardware=hardware)
    return scrub_secrets(data)


def save_run_result(
    result: RunResult,
    path: str | os.PathLike[str],
    *,
    hardware: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``result`` as JSON (indent 2, sorted keys, trailing newline) atomically.

    The written dict is :func:`result_to_dict` (derived ``runtime_metrics``, no secrets).
    Non-finite floats are written as ``NaN`` / ``Infinity``, as the thesis did. Returns the
    path written.
    """
    payload = result_to_dict(result, hardware=hardware)
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write_text(path, text)


def load_run_result(path: str | os.PathLike[str]) -> RunResult:
    """Read and validate one result file: ours or a thesis-era one (any file name, with or
    without ``.json``). Secrets still present in old files are redacted on load.

    Raises:
        RunResultError: (a ``ValueError``) with a one-line ``"<path>: <problem>"`` message for a
            missing, unreadable, empty, truncated or corrupt file, a non-object top level, a
            missing required field, a field of the wrong type, or an unknown schema version.
    """
    source = Path(path)
    try:
        raw = source.read_bytes()
    except FileNotFoundError as exc:
        raise RunResultError(source, "no such file") from exc
    except IsADirectoryError as exc:
        raise RunResultError(source, "is a directory, not a result file") from exc
    except OSError as exc:
        raise RunResultError(source, f"cannot read file ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise RunResultError(source, "empty file (expected a JSON object)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunResultError(source, f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip())
        kind = "truncated JSON" if truncated else "corrupt JSON"
        raise RunResultError(
            source, f"{kind}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise RunResultError(source, "corrupt JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise RunResultError(
            source, f"top-level JSON value must be an object, got {_type_name(data)}"
        )
    return RunResult.from_dict(scrub_secrets(data), source=str(source))
