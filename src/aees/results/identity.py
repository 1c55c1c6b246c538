"""Method identity: :func:`method_spec` (what was run) and :func:`variant_id` (a stable,
readable id of it)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from aees.results.values import candidate_values, config_value, is_number

__all__ = [
    "PEER_SETTINGS",
    "method_spec",
    "protocol_spec",
    "variant_id",
]

#: The training-protocol settings that are not the thesis protocol when set (docs/protocols.md
#: §17), each with its thesis value: a missing key (results older than fast mode) is that value.
PROTOCOL_DEFAULTS: dict[str, Any] = {
    "precision": "fp32",
    "compile": False,
    "channels_last": False,
    "cudnn_benchmark": False,
    "tf32": False,
}


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
#: The LR-free / schedule-free peers' own settings (slugified optimizer -> result config keys
#: with the runner's defaults; docs/protocols.md §5.1): part of their method, never mixed.
PEER_SETTINGS: dict[str, dict[str, Any]] = {
    "adamwschedulefree": {"sf_warmup_steps": 0, "sf_beta1": 0.9, "sf_beta2": 0.999},
    "sgdschedulefree": {"sf_warmup_steps": 0},
    "prodigy": {"prodigy_d_coef": 1.0, "prodigy_safeguard_warmup": False},
    "dadaptadam": {"dadapt_d0": 1e-6, "dadapt_growth_rate": None},
}
_NAME_TOKEN_RE = re.compile(r"^lr([0-9a-z.+-]+)_n([0-9a-z.+-]+)$")


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def _num_text(value: float) -> str:
    return format(float(value), ".12g")


def _canonical(value: Any) -> Any:
    """JSON value with numbers as ``.12g`` text, so 1, 1.0 and 1e0 hash the same."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if is_number(value):
        return _num_text(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return str(value)


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


def protocol_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of ``config`` that depart from the thesis training protocol (precision,
    fast mode; with ``compile`` also its backend and mode); ``{}`` for a thesis-protocol run."""
    out = {
        key: config[key]
        for key, default in PROTOCOL_DEFAULTS.items()
        if config.get(key) is not None and config.get(key) != default
    }
    if out.get("compile"):
        out["compile_backend"] = config.get("compile_backend") or "inductor"
        out["compile_mode"] = config.get("compile_mode") or "default"
    return out


def method_spec(config: Mapping[str, Any], method_name: str | None = None) -> dict[str, Any]:
    """The normalised method configuration that :func:`variant_id` hashes.

    Only keys that define *the method* are kept: the method kind (baseline, aees, random,
    fixed, open-loop), optimizer, base lr, weight decay, momentum (SGD), a peer optimizer's own
    settings (schedule-free warm-up / betas, Prodigy, D-Adapt), batch size, gradient
    accumulation, LR schedule and warmup, and for AEES-style methods the candidates, episode
    length, control/context modes and reward settings; and ``protocol`` (:func:`protocol_spec`)
    when the run left the thesis training protocol (bf16/fp16, fast mode), so such runs never
    share a cell with thesis-protocol ones. Seeds, paths, epochs, task and label
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
        "lr": config_value(config, "lr"),
        "weight_decay": config_value(config, "weight_decay"),
        "batch_size": config.get("batch_size"),
        "gradient_accumulation_steps": config.get("gradient_accumulation_steps") or 1,
        "lr_scheduler": str(scheduler),
    }
    if optimizer.startswith("sgd"):
        spec["momentum"] = config.get("momentum", config.get("optimizer_momentum"))
    for key, default in PEER_SETTINGS.get(optimizer, {}).items():
        spec[key] = config.get(key, default)
    if scheduler != "none":
        spec["warmup_epochs"] = config.get("warmup_epochs") or 0

    lr_cands = candidate_values(config.get("lr_candidates")) or [1.0]
    noise_cands = candidate_values(config.get("noise_candidates")) or [0.0]
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
    protocol = protocol_spec(config)
    if protocol:  # absent for the thesis protocol, so older variant ids stay as they were
        spec["protocol"] = protocol
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
    if "protocol" in spec:
        parts.append("fast")
    parts.append(digest)
    return "-".join(parts)
