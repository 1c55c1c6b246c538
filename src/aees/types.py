"""Small immutable records shared by the controllers, the episode manager and the facade."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: The library's choices for :class:`aees.AEES`'s string arguments; the one definition (the
#: runner's configuration imports them).
CONTROL_MODES: tuple[str, ...] = ("adaptive", "random")
STRUCTURED_CONTROL_MODES: tuple[str, ...] = ("independent", "conditional")
CONTEXT_MODES: tuple[str, ...] = ("none", "trend")
NONFINITE_POLICIES: tuple[str, ...] = ("raise", "skip")
NOISE_SOURCES: tuple[str, ...] = ("counter", "pulseopt")


class NonFiniteLossError(ValueError):
    """A non-finite training loss under ``nonfinite="raise"``; ``step`` is the first bad step.

    A ``ValueError`` (pulseopt raises ``ValueError`` there), so existing handlers keep working;
    the attributes let a training loop report the divergence without parsing the message.
    """

    def __init__(self, message: str, *, step: int, value: float) -> None:
        super().__init__(message)
        self.step = step
        self.value = value


@dataclass(frozen=True)
class CandidateConfig:
    """One arm held for an episode: an LR multiplier and an absolute gradient-noise std."""

    name: str
    lr_multiplier: float = 1.0
    noise_std: float = 0.0


@dataclass(frozen=True)
class StructuredSelection:
    """The per-axis choice made when an episode opens."""

    lr_index: int
    noise_index: int
    lr_value: float
    noise_value: float
    combined_name: str
    context_bucket: str | None = None


@dataclass(frozen=True)
class RewardDetails:
    """The decomposition of one episode's reward (see :mod:`aees.reward`)."""

    reward_base: float
    reward_instability: float
    reward_penalty: float
    reward_final_unclipped: float
    reward_final_clipped: float
    ema_loss_start: float
    ema_loss_end: float


@dataclass(frozen=True)
class EpisodeSummary:
    """Everything known about an episode when it closes."""

    episode_index: int
    selection: StructuredSelection
    start_step: int
    end_step: int
    steps: int
    step_losses: tuple[float, ...]
    loss_start: float | None
    loss_end: float | None
    ema_loss_start: float | None
    ema_loss_end: float | None
    mean_update_norm: float | None
    reward: RewardDetails | None
    scaler_skipped_steps: int = 0
    nonfinite_steps: int = 0


@dataclass(frozen=True)
class EpisodeRecord:
    """One closed episode, as handed to episode-end hooks: host numbers only, safe to log.

    ``steps`` counts every optimizer step of the episode; ``mean_loss`` and ``reward`` use only the
    steps that counted (not skipped by a ``GradScaler``, finite) and are ``None`` when none did.
    Under ``torch.distributed`` the losses are already averaged across ranks, so every rank
    receives the same record.
    """

    episode_index: int
    start_step: int
    steps: int
    lr_multiplier: float
    noise_std: float
    lr_index: int
    noise_index: int
    arm: str
    reward: float | None
    mean_loss: float | None
    loss_start: float | None
    loss_end: float | None
    ema_loss_end: float | None
    scaler_skipped_steps: int
    nonfinite_steps: int
    mean_update_norm: float | None = None
    context_bucket: str | None = None

    @property
    def end_step(self) -> int:
        """The index of the episode's last step."""
        return self.start_step + self.steps - 1

    @classmethod
    def from_summary(cls, s: EpisodeSummary) -> EpisodeRecord:
        sel = s.selection
        losses = s.step_losses
        return cls(
            episode_index=s.episode_index,
            start_step=s.start_step,
            steps=s.steps,
            lr_multiplier=sel.lr_value,
            noise_std=sel.noise_value,
            lr_index=sel.lr_index,
            noise_index=sel.noise_index,
            arm=sel.combined_name,
            reward=s.reward.reward_final_clipped if s.reward is not None else None,
            mean_loss=math.fsum(losses) / len(losses) if losses else None,
            loss_start=s.loss_start,
            loss_end=s.loss_end,
            ema_loss_end=s.ema_loss_end,
            scaler_skipped_steps=s.scaler_skipped_steps,
            nonfinite_steps=s.nonfinite_steps,
            mean_update_norm=s.mean_update_norm,
            context_bucket=sel.context_bucket,
        )

    def metrics(self, prefix: str = "aees/") -> dict[str, float]:
        """The numeric fields as ``{prefix + name: float}`` for a metrics logger; ``None`` dropped.

        Loggers (TensorBoard, MLflow, CSV, W&B) take flat float dicts; the arm's name is a string
        and is therefore not included (``lr_index`` / ``noise_index`` identify it).
        """
        values: dict[str, float | int | None] = {
            "episode": self.episode_index,
            "episode_start_step": self.start_step,
            "episode_steps": self.steps,
            "lr_multiplier": self.lr_multiplier,
            "noise_std": self.noise_std,
            "lr_index": self.lr_index,
            "noise_index": self.noise_index,
            "reward": self.reward,
            "mean_loss": self.mean_loss,
            "ema_loss": self.ema_loss_end,
            "scaler_skipped_steps": self.scaler_skipped_steps,
            "nonfinite_steps": self.nonfinite_steps,
            "mean_update_norm": self.mean_update_norm,
        }
        return {prefix + k: float(v) for k, v in values.items() if v is not None}


#: An episode-end hook: called with each closed episode's record (see
#: :meth:`aees.AEES.register_episode_end_hook`).
EpisodeHook = Callable[[EpisodeRecord], None]


# --------------------------------------------------------------------------------------------
# Validation helpers: every message names the argument and echoes the bad value.


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


def check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    strict_minimum: bool = False,
    maximum: float | None = None,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN, got {value!r}.")
    if minimum is not None:
        if strict_minimum and not value > minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value!r}.")
        if not strict_minimum and not value >= minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    if maximum is not None and not value <= maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value!r}.")
    return value


def check_candidates(name: str, values: Any, *, allow_zero: bool) -> list[float]:
    """A non-empty list of finite numbers, all > 0 (or >= 0 with ``allow_zero``)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}.")
    out = list(values)
    if not out:
        raise ValueError(f"{name} must contain at least one value, got {out!r}.")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must contain only numbers, got {v!r} in {out!r}.")
        if not math.isfinite(v):
            raise ValueError(f"{name} values must be finite, got {v!r} in {out!r}.")
        if (v < 0) if allow_zero else (v <= 0):
            what = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name} values must all be {what}, got {v!r} in {out!r}.")
    return [float(v) for v in out]


def candidate_token(value: float) -> str:
    """pulseopt's name token: ``f"{v:.12g}"`` with ``-``→``m`` and ``.``→``p`` (0.5 → ``0p5``)."""
    return f"{float(value):.12g}".replace("-", "m").replace(".", "p")


def candidate_name(lr_multiplier: float, noise_std: float) -> str:
    """The combined arm name, e.g. ``lr0p5_n0p005``."""
    return f"lr{candidate_token(lr_multiplier)}_n{candidate_token(noise_std)}"


# --------------------------------------------------------------------------------------------
# State-dict validation (docs/algorithm.md §12): a state dict is a file from disk, so every
# component checks the whole of its part before anything is assigned. ``where`` is the path of
# the value being checked, in subscript form (``state['manager']['logs']``); every message
# names it and the bad value.

_STATE_PREFIX = "cannot load AEES state: "


def state_path(where: str, key: str | int) -> str:
    """``where`` subscripted by ``key``: ``state['manager']``, ``state['pending']['losses'][3]``."""
    return f"{where}[{key!r}]"


def _brief(value: Any) -> str:
    import torch  # only to name a tensor briefly; this module stays free of torch otherwise

    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def state_error(where: str, value: Any, expected: str) -> ValueError:
    """The one-line ``ValueError`` for a bad value at ``where``."""
    return ValueError(f"{_STATE_PREFIX}{where} is {_brief(value)}; expected {expected}.")


def state_mismatch(where: str, message: str) -> ValueError:
    """A ``ValueError`` for a value at ``where`` that contradicts another part of the state."""
    return ValueError(f"{_STATE_PREFIX}{where} {message}.")


def state_mapping(where: str, value: Any, what: str = "a dict") -> dict[Any, Any]:
    """``value`` is a dict (``what`` names the expected value in the error)."""
    if not isinstance(value, dict):
        raise state_error(where, value, what)
    return value


def state_keys(
    where: str, value: Any, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, Any]:
    """``value`` is a dict with every ``required`` key and none outside ``required + optional``."""
    state_mapping(where, value, f"a dict with keys {list(required)}")
    for key in required:
        if key not in value:
            raise ValueError(f"{_STATE_PREFIX}{where} has no key {key!r}.")
    for key in value:
        if key not in required and key not in optional:
            raise ValueError(f"{_STATE_PREFIX}{where} has an unexpected key {key!r}.")
    return value


def same_plain(value: Any, expected: Any) -> bool:
    """``value`` equals the plain ``expected`` (numbers, strings, None, lists and dicts of them),
    type for type (``True`` is not ``1``); safe for any ``value`` (a tensor compares unequal)."""
    if type(value) is not type(expected):
        return False
    if isinstance(expected, dict):
        return value.keys() == expected.keys() and all(
            same_plain(value[k], expected[k]) for k in expected
        )
    if isinstance(expected, (list, tuple)):
        return len(value) == len(expected) and all(
            same_plain(v, e) for v, e in zip(value, expected, strict=True)
        )
    return bool(value == expected)


def state_equal(where: str, value: Any, expected: Any) -> Any:
    """``value`` is :func:`same_plain` as ``expected``."""
    if not same_plain(value, expected):
        raise state_error(where, value, repr(expected))
    return value


def state_int(
    where: str, value: Any, *, minimum: int | None = 0, maximum: int | None = None
) -> int:
    """An ``int`` (not a bool) in ``[minimum, maximum]`` (``None``: unbounded)."""
    if type(value) is not int:
        raise state_error(where, value, "an int")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        raise state_error(where, value, f"an int in [{low}, {high}]")
    return value


def state_float(
    where: str, value: Any, *, finite: bool = True, minimum: float | None = None
) -> float:
    """A real number (``int`` or ``float``, not a bool), finite unless ``finite=False``, and
    ``>= minimum`` when given (a NaN passes ``minimum`` only when ``finite=False``)."""
    if type(value) is not float and type(value) is not int:
        raise state_error(where, value, "a number")
    if finite and not math.isfinite(value):
        raise state_error(where, value, "a finite number")
    if minimum is not None and value < minimum:
        raise state_error(where, value, f"a number >= {minimum}")
    return float(value)


def state_list(where: str, value: Any, *, length: int | None = None) -> list[Any]:
    """A list (or tuple), of ``length`` entries when given."""
    if not isinstance(value, (list, tuple)):
        raise state_error(where, value, "a list")
    if length is not None and len(value) != length:
        raise state_mismatch(where, f"has {len(value)} entries; expected {length}")
    return list(value)


def finite_number(value: Any) -> bool:
    """``value`` is an ``int`` or ``float`` (not a bool) and finite: :func:`state_float`'s check,
    cheap enough to run per entry before paying for the path of an error message."""
    return (type(value) is float or type(value) is int) and math.isfinite(value)


def state_floats(
    where: str,
    value: Any,
    *,
    length: int | None = None,
    finite: bool = True,
    minimum: float | None = None,
) -> list[float]:
    """A list of numbers, each checked by :func:`state_float`; returned as floats."""
    items = state_list(where, value, length=length)
    # the common case in bulk (C-level); the per-entry loop names the first bad entry
    if (
        set(map(type, items)) <= {float, int}
        and (not finite or all(map(math.isfinite, items)))
        and (minimum is None or not any(map(float(minimum).__gt__, items)))
    ):
        return list(map(float, items))
    return [
        state_float(f"{where}[{i}]", v, finite=finite, minimum=minimum) for i, v in enumerate(items)
    ]


def state_ints(
    where: str,
    value: Any,
    *,
    length: int | None = None,
    minimum: int | None = 0,
    maximum: int | None = None,
) -> list[int]:
    """A list of ints, each checked by :func:`state_int`."""
    items = state_list(where, value, length=length)
    if set(map(type, items)) <= {int} and (
        not items
        or (
            (minimum is None or min(items) >= minimum)
            and (maximum is None or max(items) <= maximum)
        )
    ):
        return items
    for i, v in enumerate(items):
        state_int(f"{where}[{i}]", v, minimum=minimum, maximum=maximum)
    return items  # pragma: no cover - the loop raised
