"""The options' vocabulary: the choice tuples, the optimizer registry, :class:`OptionSpec` (the
one flag model, docs/protocols.md §2), :class:`ConfigError` and the per-value rules
(:func:`option_problem`, :func:`parse_candidates`). Standard library only (no torch).

Candidate lists follow pulseopt's parsing (docs/protocols.md §3): comma-separated, whitespace
stripped, empty tokens dropped, non-empty, floats, LR > 0, noise >= 0, no duplicates, order
kept; a missing flag means ``[1.0]`` (LR) and ``[0.0]`` (noise).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from aees.runner.fast import FAST_FIELDS

#: The runner's ``--control-mode`` values: the plain baseline, the two AEES controllers (the
#: library's :data:`aees.types.CONTROL_MODES`) and the two open-loop controls.
RUN_CONTROL_MODES = ("baseline", "adaptive", "random", "uniform-random", "frequency-matched")
#: The reward-free open-loop attribution controls (docs/protocols.md §11; see ``open_loop``).
OPEN_LOOP_MODES = ("uniform-random", "frequency-matched")
DEFAULT_AEES_TRACE_ROOT = "results/cifar_noisy"


@dataclass(frozen=True)
class OptimizerInfo:
    """One ``--optimizer`` (docs/protocols.md §5, §5.1): ``label`` as reports show it,
    ``package`` the one that provides a peer (None: torch), ``schedule_free`` whether it keeps
    an averaged iterate (needs ``optimizer.train()`` / ``.eval()``), ``peer_flags`` the
    :class:`RunConfig` fields that apply to it only. Built by :mod:`aees.runner.optimizers`."""

    name: str
    label: str
    package: str | None = None
    schedule_free: bool = False
    peer_flags: tuple[str, ...] = ()


#: The optimizer registry: one record per ``--optimizer`` value, in ``-h`` order.
OPTIMIZER_INFO = {
    info.name: info
    for info in (
        OptimizerInfo("AdamW", "AdamW"),
        OptimizerInfo("SGD", "SGD+M"),  # SGD runs use momentum
        OptimizerInfo(
            "AdamWScheduleFree",
            "AdamW schedule-free",
            "schedulefree",
            schedule_free=True,
            peer_flags=("sf_warmup_steps", "sf_beta1", "sf_beta2"),
        ),
        OptimizerInfo(
            "SGDScheduleFree",
            "SGD schedule-free",
            "schedulefree",
            schedule_free=True,
            peer_flags=("sf_warmup_steps",),
        ),
        OptimizerInfo(
            "Prodigy",
            "Prodigy",
            "prodigyopt",
            peer_flags=("prodigy_d_coef", "prodigy_safeguard_warmup"),
        ),
        OptimizerInfo(
            "DAdaptAdam",
            "D-Adapt Adam",
            "dadaptation",
            peer_flags=("dadapt_d0", "dadapt_growth_rate"),
        ),
    )
}
# Views of the registry (not separate lists):
OPTIMIZERS = tuple(OPTIMIZER_INFO)
PEER_PACKAGES = {o.name: o.package for o in OPTIMIZER_INFO.values() if o.package is not None}
SCHEDULE_FREE_OPTIMIZERS = tuple(o.name for o in OPTIMIZER_INFO.values() if o.schedule_free)
#: Each peer flag (a RunConfig field) -> the optimizers it applies to.
PEER_FLAG_OPTIMIZERS = {
    flag: tuple(o.name for o in OPTIMIZER_INFO.values() if flag in o.peer_flags)
    for o in OPTIMIZER_INFO.values()
    for flag in o.peer_flags
}
LR_SCHEDULERS = ("none", "cosine", "linear", "warmup_linear")
LABEL_NOISE_TYPES = ("none", "symmetric", "asymmetric")
PRECISIONS = ("fp32", "bf16", "fp16")
#: ``--compile-mode``: the ``torch.compile(mode=...)`` values (docs/protocols.md §17).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: ``--mlflow`` without a value: a file store in the current directory.
MLFLOW_DEFAULT_STORE = "mlruns"
#: ``aees train`` exit status of a run stopped by a non-finite loss (its result is written,
#: marked diverged); sweeps record such a run as completed with a "diverged" detail.
EXIT_DIVERGED = 3
#: Largest value of an integer flag (a C ``int``): larger ones overflow torch, NumPy or the OS.
MAX_INT_FLAG = 2**31 - 1
#: Seeds are unsigned 32-bit: NumPy's and every generator the tasks seed accept that range.
MAX_SEED = 2**32 - 1

#: ``--control-mode`` -> the method name written to the result (docs/protocols.md §1).
METHOD_NAMES = {
    "baseline": "Baseline",
    "adaptive": "AdaptiveScheduler",
    "random": "RandomScheduler",
    "uniform-random": "UniformRandomOpenLoop",
    "frequency-matched": "FrequencyMatchedOpenLoop",
}
#: The NLP runners' ``--method`` (docs/protocols.md §2) -> the control mode it means.
NLP_METHODS = {
    "AdamW": "baseline",
    "AdaptiveScheduler": "adaptive",
    "RandomScheduler": "random",
}
#: Flag styles: ``cifar`` (``--control-mode``/``--optimizer``/``--label-noise-type``; CIFAR and
#: digits) and ``nlp`` (``--method``, plus ``--optimizer`` default AdamW; label-noise flags are
#: the task's own).
FLAG_STYLES = ("cifar", "nlp")


def parse_candidates(text: str | None, *, flag: str, allow_zero: bool) -> tuple[float, ...]:
    """Parse a comma-separated candidate list (pulseopt rules, docs/protocols.md §3);
    ``ValueError`` names ``flag``.

    ``None`` gives ``(0.0,)`` when ``allow_zero`` (noise) and ``(1.0,)`` otherwise (LR).
    """
    if text is None:
        return (0.0,) if allow_zero else (1.0,)
    tokens = [tok.strip() for tok in str(text).split(",")]
    tokens = [tok for tok in tokens if tok]
    if not tokens:
        raise ValueError(f"{flag} must list at least one value, got {text!r}")
    values: list[float] = []
    for tok in tokens:
        try:
            value = float(tok)
        except ValueError:
            raise ValueError(f"{flag}: {tok!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{flag}: {tok!r} is not finite")
        if allow_zero and value < 0:
            raise ValueError(f"{flag} values must be >= 0, got {tok}")
        if not allow_zero and value <= 0:
            raise ValueError(f"{flag} values must be > 0, got {tok}")
        if value in values:
            raise ValueError(f"{flag} must not repeat a value, got {tok} twice")
        values.append(value)
    return tuple(values)


def default_output_path(
    task: str, control_mode: str, optimizer: str, seed: int, method: str | None = None
) -> str:
    """The thesis default, relative to the cwd: ``results/<task>_<control_mode>_<optimizer>_
    seed<seed>.json`` (CIFAR style) or ``results/<task>_<method>_seed<seed>.json`` (NLP style,
    ``method`` lower-cased; another optimizer than AdamW adds ``_<optimizer>`` after it)."""
    if method is not None:
        name = method.lower() if optimizer == "AdamW" else f"{method}_{optimizer}".lower()
        return os.path.join("results", f"{task}_{name}_seed{seed}.json")
    return os.path.join("results", f"{task}_{control_mode}_{optimizer.lower()}_seed{seed}.json")


def device_format_problem(device: Any) -> str | None:
    """Why ``device`` is not ``auto``, ``cpu``, ``cuda`` or ``cuda:<index>``, else None."""
    if not isinstance(device, str) or (
        device not in ("auto", "cpu", "cuda")
        and not (device.startswith("cuda:") and device[5:].isdigit())
    ):
        return f"must be auto, cpu, cuda or cuda:<index>, got {device!r}"
    return None


def usable_cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


SAME = object()


class _TaskDefault:
    """The dataclass default of every flagged :class:`RunConfig` field: "not given", resolved in
    ``__post_init__`` to the task's default (its :class:`~aees.runner.tasks.registry.TaskInfo`
    ``defaults``) or else the option's own (:attr:`OptionSpec.default`)."""

    def __repr__(self) -> str:
        return "<task default>"


TASK_DEFAULT: Any = _TaskDefault()


@dataclass(frozen=True)
class OptionSpec:
    """One option of ``aees train <task>``: a shared :class:`RunConfig` field or a task's own.

    The one flag model (docs/protocols.md §2): argparse is generated from it
    (:func:`add_options`), the sweep coerces, orders and compares by it, and
    :class:`RunConfig` checks values by it.

    ``kind``: ``int``, ``float``, ``str``, ``bool`` (a bare ``--flag``) or ``candidates`` (a
    comma list). ``default``: the option's own default (a task's record may override it).
    ``check``: the bound (``">0"``, ``">=0"``, ``"(0,1]"``, ``"[0,1]"``; a float is also finite).
    ``styles``: the flag styles (:data:`FLAG_STYLES`) that have the flag. ``cli_default``: the
    argparse default where it differs (``--method``, candidate lists). ``help`` may hold
    ``{unit}`` (epochs, or optimizer steps for the NLP style). ``writes``: the value names a
    place the run writes (a sweep keeps it inside its output root, docs/protocols.md §15).
    ``identity``: part of what a run is (the sweep compares it with a result's config); False
    for where-things-are keys. ``resumable``: may differ between the run that wrote a checkpoint
    and the one resuming it. ``group``: the ``-h`` group; ``name`` the field or option name.
    """

    help: str | None = None
    choices: tuple[str, ...] | None = None
    check: str | None = None
    styles: tuple[str, ...] = FLAG_STYLES
    cli_default: Any = SAME
    metavar: str | None = None
    nargs: str | None = None
    const: Any = None
    writes: bool = False
    identity: bool = True
    resumable: bool = False
    name: str = ""
    kind: str = "str"
    default: Any = None
    group: str = ""

    @property
    def flag(self) -> str:
        """``--lr-scheduler`` for ``lr_scheduler``."""
        return flag_of(self.name)

    def argparse_default(self, style: str) -> Any:
        """The default argparse is given: ``cli_default`` where set, else ``default``."""
        del style
        return self.default if self.cli_default is SAME else self.cli_default


def option_field(default: Any = None, **spec: Any) -> Any:
    return field(default=TASK_DEFAULT, metadata={"flag": OptionSpec(default=default, **spec)})


#: The argparse groups of the shared flags and the fields in each, in help order.
FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "method": (
        "method",
        "control_mode",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "optimizer",
        "momentum",
        *PEER_FLAG_OPTIMIZERS,
        "lr_scheduler",
        "scheduler_t_max",
        "warmup_epochs",
    ),
    "AEES": (
        "lr_candidates",
        "noise_candidates",
        "episode_length",
        "structured_control_mode",
        "context_mode",
        "context_trend_window",
        "context_trend_epsilon",
        "reward_epsilon",
        "reward_instability_lambda",
        "reward_clip_min",
        "reward_clip_max",
        "ema_alpha",
        "schedule_seed",
        "aees_trace_root",
        "nonfinite",
        "track_update_norm",
    ),
    "label noise": ("label_noise_type", "label_noise_rate"),
    "run": (
        "seed",
        "run_tag",
        "output",
        "device",
        "precision",
        *FAST_FIELDS,
        "num_workers",
        "data_dir",
        "model_name",
        "checkpoint_dir",
        "resume",
        "val_split",
        "quiet",
        "tensorboard",
        "mlflow",
    ),
}

BOUNDS = {
    ">0": (lambda v: v > 0, "must be > 0"),
    ">=0": (lambda v: v >= 0, "must be >= 0"),
    "(0,1]": (lambda v: 0.0 < v <= 1.0, "must be in (0, 1]"),
    "[0,1]": (lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
}


class ConfigError(ValueError):
    """A :class:`RunConfig` value that the CLI would refuse. ``field`` is the field's name and
    ``text`` the CLI's message (``--flag ...``, the text of ``parser.error``)."""

    def __init__(self, field_name: str, text: str) -> None:
        super().__init__(f"RunConfig.{field_name}: {text}")
        self.field = field_name
        self.text = text


def flag_of(name: str) -> str:
    """``lr_scheduler`` -> ``--lr-scheduler``."""
    return "--" + name.replace("_", "-")


def kind_of(annotation: Any) -> str:
    text = str(annotation)
    if text.startswith("tuple"):
        return "candidates"
    for kind in ("bool", "int", "float"):
        if text.split(" ")[0] == kind:
            return kind
    return "str"


def int_range_problem(name: str, value: int) -> str | None:
    """Why integer option ``name`` does not fit the C type it ends up in, or None: seeds
    (``seed``, ``*_seed``) are in [0, :data:`MAX_SEED`], every other integer at most
    :data:`MAX_INT_FLAG` in magnitude (the per-option bounds then check the sign)."""
    if name == "seed" or name.endswith("_seed"):
        if not 0 <= value <= MAX_SEED:
            return f"must be in [0, {MAX_SEED}], got {value}"
    elif abs(value) > MAX_INT_FLAG:
        return f"must be at most {MAX_INT_FLAG} in magnitude, got {value}"
    return None


def option_problem(spec: OptionSpec, value: Any) -> str | None:
    """Why ``value`` is not a valid value of a task's own option ``spec`` (kind, choices, C
    integer range, finiteness, bound), or None."""
    if value is None:
        return None
    kind = spec.kind
    if kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if kind == "str":
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        if spec.choices and value not in spec.choices:
            return f"must be one of {', '.join(spec.choices)}, got {value!r}"
        return None
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, got {value!r}"
        why = int_range_problem(spec.name, value)
        if why is not None:
            return why
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value}"
    if spec.check in BOUNDS:
        ok, message = BOUNDS[spec.check]
        if not ok(value):
            return f"{message}, got {value}"
    return None
