"""The run configuration shared by every task: argparse flags, their validation, :class:`RunConfig`.

Flag names, defaults and validation rules are the thesis runners' (docs/protocols.md §2),
plus the flags this project adds (``--device``, ``--precision``,
``--num-workers``, ``--data-dir``, ``--checkpoint-dir``, ``--resume``, ``--val-split``,
``--quiet``, ``--ema-alpha``). Every invalid value or combination ends in
:meth:`argparse.ArgumentParser.error`: exit status 2 and one line, ``aees train <task>: error:
--flag ...``, before any data is loaded. An ``--output`` (or ``--checkpoint-dir``) that cannot be
written is caught here too, so a run never trains for hours and then fails to save.

Candidate lists follow pulseopt's parsing (docs/protocols.md §3): comma-separated, whitespace
stripped, empty tokens dropped, non-empty, floats, LR > 0, noise >= 0, no duplicates, order
kept; a missing flag means ``[1.0]`` (LR) and ``[0.0]`` (noise).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aees.console import OneLineArgumentParser, UserError
from aees.runner.fast import FAST_FIELDS
from aees.types import CONTEXT_MODES, NONFINITE_POLICIES, STRUCTURED_CONTROL_MODES

__all__ = [
    "DEFAULT_AEES_TRACE_ROOT",
    "EXIT_DIVERGED",
    "FLAG_GROUPS",
    "FLAG_STYLES",
    "LR_SCHEDULERS",
    "MAX_INT_FLAG",
    "MAX_SEED",
    "METHOD_NAMES",
    "NLP_METHODS",
    "OPEN_LOOP_MODES",
    "OPTIMIZERS",
    "OPTIMIZER_INFO",
    "PEER_FLAG_OPTIMIZERS",
    "PEER_PACKAGES",
    "PRECISIONS",
    "RUN_CONTROL_MODES",
    "SCHEDULE_FREE_OPTIMIZERS",
    "TASK_DEFAULT",
    "ConfigError",
    "OneLineArgumentParser",
    "OptimizerInfo",
    "OptionSpec",
    "RunConfig",
    "RunWarning",
    "UserError",
    "add_options",
    "aees_short_run",
    "check_machine",
    "config_values",
    "default_output_path",
    "field_specs",
    "flag_of",
    "nlp_style_fields",
    "option_problem",
    "option_specs",
    "parse_candidates",
    "short_run_message",
    "validate_common_args",
    "warmup_episodes",
    "writable_location_problem",
]

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


def writable_location_problem(path: str | os.PathLike[str], *, is_dir: bool) -> str | None:
    """Why ``path`` could not be created/written (a short phrase), or None if it can.

    A file target must be nothing yet or a regular file (a symbolic link counts as what it
    points to; a directory, device, FIFO or socket is refused, since the atomic write would
    replace it), and a trailing separator names a directory. Writability is asked of the kernel,
    not only of ``os.access`` (which as root accepts e.g. ``/proc``): a temporary file is
    created and removed in the directory that will hold the file, or in its nearest existing
    ancestor when that does not exist yet. Nothing else is created.
    """
    from aees.results.io import target_problem, write_probe

    text = os.path.expanduser(os.fspath(path))
    target = Path(text)
    if not is_dir:
        why = target_problem(text)
        if why is not None:
            return why
        if target.is_symlink():  # written through: what counts is where the link leads
            target = Path(os.path.realpath(target))
            if not target.parent.is_dir():
                return f"is a link into {str(target.parent)!r}, which is not a directory"
    if target.exists():
        if is_dir and not target.is_dir():
            return "exists and is not a directory"
        check = target if is_dir else target.parent
        if not os.access(check, os.W_OK | os.X_OK):
            return f"directory {str(check)!r} is not writable"
        if not is_dir and not os.access(target, os.W_OK):
            return "exists and is not writable"
        refused = write_probe(check, target.name if not is_dir else "aees-probe")
        if refused is not None:
            return f"directory {str(check)!r} refuses new files ({refused})"
        return None
    parent = target if is_dir else target.parent
    probe = parent.absolute()
    child = target.name
    while not probe.exists():
        if probe.parent == probe:
            return "has no existing parent directory"
        probe, child = probe.parent, probe.name
    if not probe.is_dir():
        return f"{str(probe)!r} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"directory {str(probe)!r} is not writable"
    refused = write_probe(probe, child)
    if refused is not None:
        return f"directory {str(probe)!r} refuses new files ({refused})"
    return None


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


def _device_format_problem(device: Any) -> str | None:
    """Why ``device`` is not ``auto``, ``cpu``, ``cuda`` or ``cuda:<index>``, else None."""
    if not isinstance(device, str) or (
        device not in ("auto", "cpu", "cuda")
        and not (device.startswith("cuda:") and device[5:].isdigit())
    ):
        return f"must be auto, cpu, cuda or cuda:<index>, got {device!r}"
    return None


def _device_problem(device: str, precision: str) -> tuple[str, str] | None:
    """(flag, message) for an unusable ``--device`` / ``--precision``, else None."""
    why = _device_format_problem(device)
    if why is not None:
        return "--device", why
    if device in ("cpu", "auto") and precision != "fp16":
        return None  # nothing to check (auto falls back to the CPU)
    import torch

    cuda = torch.cuda.is_available()
    if device.startswith("cuda"):
        if not cuda:
            return "--device", f"{device} requested but CUDA is not available"
        if ":" in device and int(device[5:]) >= torch.cuda.device_count():
            return "--device", f"{device} requested but only {torch.cuda.device_count()} GPU(s)"
    if precision == "fp16" and (device == "cpu" or not cuda):
        return "--precision", "fp16 needs a CUDA device (use bf16 or fp32 on the CPU)"
    return None


def usable_cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_int_ranges(fail: Any, args: argparse.Namespace) -> None:
    """Every integer flag of the namespace fits the C types it ends up in.

    Seeds (``--seed``, ``--*-seed``) are in [0, :data:`MAX_SEED`]; every other integer is at
    most :data:`MAX_INT_FLAG` in magnitude (the per-flag rules then check the sign). Generic
    over the namespace, so a task's own integer flags are covered too.
    """
    for dest, value in sorted(vars(args).items()):
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        flag = "--" + dest.replace("_", "-")
        if dest == "seed" or dest.endswith("_seed"):
            if not 0 <= value <= MAX_SEED:
                fail(flag, f"must be in [0, {MAX_SEED}], got {value}")
        elif abs(value) > MAX_INT_FLAG:
            fail(flag, f"must be at most {MAX_INT_FLAG} in magnitude, got {value}")


def _local_store_path(uri: str) -> str | None:
    """The directory of a local MLflow file store URI (a path or ``file:``), else None."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return url2pathname(parts.path)
    if not parts.scheme or (len(parts.scheme) == 1 and os.name == "nt"):  # a drive letter
        return uri
    return None


def _validate_tracking(fail: Any, board: str | None, uri: str | None, output: str) -> str | None:
    """``--tensorboard DIR`` / ``--mlflow [URI]``: the package is installed, a local target
    (the run's TensorBoard directory, an sqlite database) is writable, and a URI parses and
    holds no credentials (:func:`aees.runner.tracking_targets.check_mlflow_uri`). A local
    MLflow store becomes an absolute ``file:`` URI, an sqlite database an absolute path: the
    returned ``--mlflow`` value."""
    from importlib.util import find_spec

    from aees.runner.tracking_targets import (
        check_mlflow_uri,
        sqlite_database,
        tensorboard_run_dir,
    )

    if board is not None:
        if not str(board).strip():
            fail("--tensorboard", "must name a directory")
        if find_spec("tensorboard") is None:
            fail("--tensorboard", "needs the tensorboard package: pip install 'aees[tracking]'")
        why = writable_location_problem(board, is_dir=True)
        if why is not None:
            fail("--tensorboard", f"{board!r} cannot be written: {why}")
        run_dir = tensorboard_run_dir(board, output)
        why = writable_location_problem(run_dir, is_dir=True)
        if why is not None:
            fail("--tensorboard", f"run directory {str(run_dir)!r} cannot be written: {why}")
    if uri is None:
        return None
    uri = str(uri).strip()
    if not uri:
        fail("--mlflow", "must be a tracking URI or a directory (or give no value: ./mlruns)")
    if find_spec("mlflow") is None:
        fail("--mlflow", "needs the mlflow package: pip install 'aees[tracking]'")
    try:
        uri = check_mlflow_uri(uri)
    except ValueError as err:
        fail("--mlflow", str(err))
    local = _local_store_path(uri)
    if local is not None:
        why = writable_location_problem(local, is_dir=True)
        if why is not None:
            fail("--mlflow", f"{local!r} cannot be written: {why}")
        return Path(local).expanduser().absolute().as_uri()
    database = sqlite_database(uri)
    if database is not None:
        why = writable_location_problem(database, is_dir=False)
        if why is not None:
            fail("--mlflow", f"database {str(database)!r} cannot be written: {why}")
    return uri


# --------------------------------------------------------------------------------------------
# The field specs: every shared flag is a RunConfig field's metadata
# --------------------------------------------------------------------------------------------

_SAME = object()


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
    cli_default: Any = _SAME
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
        return self.default if self.cli_default is _SAME else self.cli_default


def _flag(default: Any = None, **spec: Any) -> Any:
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

_BOUNDS = {
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


def _kind(annotation: Any) -> str:
    text = str(annotation)
    if text.startswith("tuple"):
        return "candidates"
    for kind in ("bool", "int", "float"):
        if text.split(" ")[0] == kind:
            return kind
    return "str"


def field_specs(style: str | None = None) -> dict[str, tuple[OptionSpec, str]]:
    """``{field name: (spec, kind)}`` of the flagged :class:`RunConfig` fields, in declaration
    order; ``style`` keeps only the fields that style has as flags. ``kind`` is ``int``,
    ``float``, ``str``, ``bool`` (a bare ``--flag``) or ``candidates`` (a comma list)."""
    return {
        name: (spec, spec.kind)
        for name, spec in _shared_specs().items()
        if style is None or style in spec.styles
    }


_SHARED: dict[str, OptionSpec] = {}


def _shared_specs() -> dict[str, OptionSpec]:
    """The flagged :class:`RunConfig` fields' specs, name / kind / group filled, in declaration
    order (computed once)."""
    if not _SHARED:
        groups = {name: title for title, names in FLAG_GROUPS.items() for name in names}
        for f in fields(RunConfig):
            spec = f.metadata.get("flag")
            if spec is not None:
                _SHARED[f.name] = replace(
                    spec, name=f.name, kind=_kind(f.type), group=groups[f.name]
                )
    return _SHARED


def option_specs(task_name: str) -> dict[str, OptionSpec]:
    """Every option of ``aees train <task_name>``, name -> spec, in the order ``-h`` lists them:
    the shared ones of the task's flag style (defaults as the task's record sets them), then the
    task's own. The one flag model: argparse is generated from it (:func:`add_options`), the
    sweep reads it. ``KeyError`` for an unknown task."""
    from aees.runner.tasks import task_info

    info = task_info(task_name)
    shared = _shared_specs()
    out: dict[str, OptionSpec] = {}
    for names in FLAG_GROUPS.values():
        for name in names:
            spec = shared[name]
            if info.flag_style not in spec.styles:
                continue
            if name in info.defaults:
                spec = replace(spec, default=info.defaults[name], cli_default=_SAME)
            elif info.flag_style == "nlp" and spec.cli_default is not _SAME:
                spec = replace(spec, default=spec.cli_default)  # --method AdamW
            out[name] = spec
    for spec in info.options:
        out[spec.name] = spec
    return out


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
        if spec.name == "seed" or spec.name.endswith("_seed"):
            if not 0 <= value <= MAX_SEED:
                return f"must be in [0, {MAX_SEED}], got {value}"
        elif abs(value) > MAX_INT_FLAG:
            return f"must be at most {MAX_INT_FLAG} in magnitude, got {value}"
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value}"
    if spec.check in _BOUNDS:
        ok, message = _BOUNDS[spec.check]
        if not ok(value):
            return f"{message}, got {value}"
    return None


def add_options(
    parser: argparse.ArgumentParser, specs: Mapping[str, OptionSpec], style: str = "cifar"
) -> list[argparse.Action]:
    """Add one flag per spec to ``parser``, in argument groups by :attr:`OptionSpec.group`
    (first appearance order); returns the actions in order.

    ``style="nlp"`` (the SST-2 / AG News runners): ``--scheduler-t-max`` counts optimizer steps.
    """
    if style not in FLAG_STYLES:
        raise ValueError(f"style must be one of {FLAG_STYLES}, got {style!r}")
    unit = "optimizer steps" if style == "nlp" else "epochs"
    groups: dict[str, Any] = {}
    actions: list[argparse.Action] = []
    for spec in specs.values():
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(spec.group or None)
        group = groups[spec.group]
        kwargs: dict[str, Any] = {}
        if spec.help is not None:
            kwargs["help"] = spec.help.format(unit=unit)
        if spec.metavar is not None:
            kwargs["metavar"] = spec.metavar
        if spec.kind == "bool":
            actions.append(group.add_argument(spec.flag, action="store_true", **kwargs))
            continue
        if spec.nargs is not None:
            kwargs["nargs"] = spec.nargs
            kwargs["const"] = spec.const
        if spec.choices is not None:
            kwargs["choices"] = spec.choices
        if spec.kind in ("int", "float"):
            kwargs["type"] = int if spec.kind == "int" else float
        default = spec.default if spec.cli_default is _SAME else spec.cli_default
        actions.append(group.add_argument(spec.flag, default=default, **kwargs))
    return actions


def nlp_style_fields(method: str | None) -> dict[str, Any]:
    """The CIFAR-style field an NLP runner's ``--method`` means (``control_mode``; the base
    optimizer is ``--optimizer``, default AdamW as the thesis runners); ``{}`` for None."""
    if method is None:
        return {}
    return {"control_mode": NLP_METHODS[method]}


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`RunConfig` field values a parsed namespace gives (the namespace is not
    changed): its fields of that name, ``--method`` translated by :func:`nlp_style_fields`,
    and an NLP task's own ``--label-noise-rate`` given a type (``symmetric`` when > 0)."""
    names = [f.name for f in fields(RunConfig) if f.name not in ("task_name", "task_options")]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values.update(nlp_style_fields(values.get("method")))
    if "label_noise_type" not in values and "label_noise_rate" in values:
        values["label_noise_type"] = "symmetric" if values["label_noise_rate"] > 0 else "none"
    return values


def _candidates(value: Any, flag: str, allow_zero: bool) -> tuple[float, ...]:
    if value is None or isinstance(value, str):
        return parse_candidates(value, flag=flag, allow_zero=allow_zero)
    try:
        text = ",".join(repr(float(v)) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} must be a list of numbers, got {value!r}") from None
    return parse_candidates(text, flag=flag, allow_zero=allow_zero)


def _fail_with(parser: argparse.ArgumentParser) -> Any:
    def fail(flag: str, message: str) -> NoReturn:
        from aees.results.secrets import redact_uris  # a message never shows a URI's secrets

        parser.error(redact_uris(f"{flag} {message}"))

    return fail


def check_machine(parser: argparse.ArgumentParser, config: RunConfig) -> RunConfig:
    """The checks that ask the machine, after the values were checked (by :class:`RunConfig`):
    the device exists, fast mode works here, a peer optimizer's package is installed,
    ``--output`` / ``--checkpoint-dir`` / the trackers can be written. The first problem ends
    the process via ``parser.error``. Returns ``config`` with a local MLflow store resolved to an
    absolute ``file:`` URI (an sqlite database to an absolute path)."""
    from aees.runner.fast import fast_mode_problem  # imports torch: only when validating

    fail = _fail_with(parser)
    problem = _device_problem(config.device, config.precision) or fast_mode_problem(config)
    if problem is not None:
        fail(*problem)
    package = PEER_PACKAGES.get(config.optimizer)
    if package is not None:
        from importlib.util import find_spec

        if find_spec(package) is None:
            fail(
                "--optimizer",
                f"{config.optimizer} needs the {package} package: pip install 'aees[peers]' "
                f"(or pip install {package})",
            )
    output = config.output_path
    why = writable_location_problem(output, is_dir=False)
    if why is not None:
        fail("--output", f"{output!r} cannot be written: {why}")
    if config.checkpoint_dir:
        why = writable_location_problem(config.checkpoint_dir, is_dir=True)
        if why is not None:
            fail("--checkpoint-dir", f"{config.checkpoint_dir!r} cannot be written: {why}")
    mlflow = _validate_tracking(fail, config.tensorboard, config.mlflow, output)
    if mlflow != config.mlflow:
        object.__setattr__(config, "mlflow", mlflow)  # the same store, checked: no new check
    return config


def validate_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """Legacy tasks only (those still on ``validate(parser, args)``; goes with them): check the
    shared flags of a parsed namespace and write back to ``args`` what the config resolved
    (``output``, the candidate tuples, the open-loop ``schedule_seed`` / ``aees_trace_root``,
    ``mlflow``). Every integer flag (the task's too) fits a C type."""
    _check_int_ranges(_fail_with(parser), args)
    try:
        config = RunConfig(task_name=args.task, **config_values(args))
    except ConfigError as err:
        parser.error(err.text)
    config = check_machine(parser, config)
    args.output = config.output
    for name in ("lr_candidates", "noise_candidates", "schedule_seed", "aees_trace_root", "mlflow"):
        if hasattr(args, name):
            setattr(args, name, getattr(config, name))
    return config


@dataclass(frozen=True)
class RunConfig:
    """One run, fully specified. Field names are the thesis ``ExperimentConfig`` ones
    (docs/results-schema.md §3).

    The one definition of the shared run configuration: each field's ``metadata["flag"]``
    (:class:`OptionSpec`) generates its ``aees train`` flag (:func:`add_options`), the
    planner's type checks (:func:`field_specs`) and, through :meth:`to_dict`, the result's
    ``config``. A field not given takes the task's default (its registry record's
    ``defaults``, else the option's own), so ``RunConfig(task_name="digits")`` is what
    ``aees train digits`` runs. Construction checks each value once, as the CLI does
    (:class:`ConfigError`, a ``ValueError`` naming the field), and fills the open-loop
    ``schedule_seed`` (10000 + seed), ``aees_trace_root`` (:data:`DEFAULT_AEES_TRACE_ROOT`) and
    an empty ``output`` (:func:`default_output_path`). :meth:`for_task` takes the task's own
    options as keywords too.

    ``task_options`` holds the task-specific options (e.g. ``{"max_length": 128}``).
    """

    task_name: str
    control_mode: str = _flag("baseline", choices=RUN_CONTROL_MODES, styles=("cifar",))
    epochs: int = _flag(10, help="> 0", check=">0")
    batch_size: int = _flag(128, help="> 0", check=">0")
    lr: float = _flag(1e-3, help="base learning rate, > 0", check=">0")
    weight_decay: float = _flag(1e-4, help=">= 0", check=">=0")
    optimizer: str = _flag(
        "AdamW",
        choices=OPTIMIZERS,
        help="the base optimizer; the LR-free / schedule-free peers need pip install "
        "'aees[peers]' (docs/protocols.md §5.1)",
    )
    momentum: float = _flag(0.9, help=">= 0 (SGD only)", check=">=0")
    # the peers' own settings (docs/protocols.md §5.1); each only with its --optimizer
    sf_warmup_steps: int = _flag(
        0, help="schedule-free only: linear LR warm-up, optimizer steps, >= 0", check=">=0"
    )
    sf_beta1: float = _flag(0.9, help="AdamWScheduleFree only: beta1 (interpolation), [0, 1)")
    sf_beta2: float = _flag(0.999, help="AdamWScheduleFree only: beta2, [0, 1)")
    prodigy_d_coef: float = _flag(
        1.0, help="Prodigy only: factor on the d estimate, > 0", check=">0"
    )
    prodigy_safeguard_warmup: bool = _flag(
        False, help="Prodigy only: leave lr out of the d estimate's denominator"
    )
    dadapt_d0: float = _flag(1e-6, help="DAdaptAdam only: initial d estimate, > 0", check=">0")
    dadapt_growth_rate: float | None = _flag(
        None, help="DAdaptAdam only: largest growth factor of d per step, >= 1 (default: none)"
    )
    lr_scheduler: str = _flag("none", choices=LR_SCHEDULERS)
    scheduler_t_max: int | None = _flag(None, help="> 0, in {unit}; default: the run", check=">0")
    warmup_epochs: int = _flag(0, help=">= 0", check=">=0")
    reward_epsilon: float = _flag(1e-8, help="> 0", check=">0")
    reward_instability_lambda: float = _flag(0.0, help=">= 0", check=">=0")
    reward_clip_min: float = _flag(-1.0)
    reward_clip_max: float = _flag(1.0)
    episode_length: int = _flag(200, help="optimizer steps, > 0", check=">0")
    lr_candidates: tuple[float, ...] = _flag(
        (1.0,),
        help="comma list of LR multipliers (> 0); default 1.0: no LR choice",
        check=">0",
        cli_default=None,
    )
    noise_candidates: tuple[float, ...] = _flag(
        (0.0,),
        help="comma list of noise stds (>= 0); default 0.0: no noise",
        check=">=0",
        cli_default=None,
    )
    structured_control_mode: str = _flag("independent", choices=STRUCTURED_CONTROL_MODES)
    context_mode: str = _flag("none", choices=CONTEXT_MODES)
    context_trend_window: int = _flag(3, help="> 0", check=">0")
    context_trend_epsilon: float = _flag(1e-3, help=">= 0", check=">=0")
    label_noise_type: str = _flag("none", choices=LABEL_NOISE_TYPES, styles=("cifar",))
    label_noise_rate: float = _flag(0.0, help="in [0, 1]", check="[0,1]", styles=("cifar",))
    seed: int = _flag(0)
    output: str = _flag(
        "",
        help="result JSON (default results/<name>.json)",
        writes=True,
        identity=False,
        resumable=True,
    )
    ema_alpha: float = _flag(0.1, help="in (0, 1]", check="(0,1]")
    num_workers: int = _flag(
        0, help="DataLoader workers, 0..the CPU count", check=">=0", identity=False, resumable=True
    )
    data_dir: str | None = _flag(
        None, help="dataset directory (task default if unset)", identity=False
    )
    model_name: str | None = _flag(None, help="model id or local directory (task default if unset)")
    run_tag: str | None = _flag(None, identity=False, resumable=True)
    device: str = _flag("auto", help="auto, cpu, cuda or cuda:<i>", identity=False)
    precision: str = _flag("fp32", choices=PRECISIONS)
    # fast mode (docs/protocols.md §17; aees.runner.fast): all off is the thesis protocol
    compile: bool = _flag(False, help="torch.compile the model's training step")
    compile_backend: str = _flag("inductor", help="torch.compile backend (with --compile)")
    compile_mode: str | None = _flag(
        None, choices=COMPILE_MODES, help="torch.compile mode (with --compile)"
    )
    channels_last: bool = _flag(False, help="model and 4-D inputs in channels-last layout")
    cudnn_benchmark: bool = _flag(False, help="cuDNN autotuning, not deterministic (CUDA)")
    tf32: bool = _flag(False, help="TF32 matmuls (CUDA)")
    checkpoint_dir: str | None = _flag(
        None, help="save a checkpoint every epoch here", writes=True, identity=False, resumable=True
    )
    resume: bool = _flag(
        False, help="continue from --checkpoint-dir", identity=False, resumable=True
    )
    val_split: int | None = _flag(
        None, help="held-out validation examples (task default)", check=">0"
    )
    quiet: bool = _flag(
        False, help="no progress bar or status lines", identity=False, resumable=True
    )
    tensorboard: str | None = _flag(  # --tensorboard DIR
        None,
        metavar="DIR",
        help="also write TensorBoard scalars to DIR/<result name> (pip install 'aees[tracking]')",
        writes=True,
        identity=False,
        resumable=True,
    )
    mlflow: str | None = _flag(  # the tracking URI (a local store as a file: URI)
        None,
        nargs="?",
        const=MLFLOW_DEFAULT_STORE,
        metavar="URI",
        help="also track the run in MLflow; URI default: a file store ./mlruns "
        "(pip install 'aees[tracking]')",
        writes=True,  # a local store or database; a server URI is checked by the sweep
        identity=False,
        resumable=True,
    )
    track_update_norm: bool = _flag(
        False, help="record ||delta theta||_2 per step (one extra buffer per parameter)"
    )
    nonfinite: str = _flag(
        "raise",
        choices=NONFINITE_POLICIES,
        help="raise (default): stop at the first non-finite loss and write a result marked "
        "diverged; skip: leave such steps out of AEES rewards and continue",
    )
    # The NLP runners' --method; None for CIFAR-style tasks.
    method: str | None = _flag(
        None, choices=tuple(NLP_METHODS), styles=("nlp",), cli_default="AdamW"
    )
    schedule_seed: int | None = _flag(  # open-loop modes only
        None,
        styles=("cifar",),
        help="open-loop modes only: seed of the private schedule RNG (default 10000 + seed)",
    )
    aees_trace_root: str | None = _flag(  # open-loop modes: where the AEES traces are found
        None,
        styles=("cifar",),
        help="open-loop modes: where the AEES source traces are found by content "
        f"(default {DEFAULT_AEES_TRACE_ROOT})",
    )
    task_options: Mapping[str, Any] = field(default_factory=dict)
    # The run's Hugging Face token (the text tasks' --hf-token; else they read $HF_TOKEN): a
    # secret, never written (not in to_dict, not compared, not shown), not part of the identity.
    hf_token: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        info = self._resolve_defaults()
        bad_candidates: dict[str, str] = {}
        for name, allow_zero in (("lr_candidates", False), ("noise_candidates", True)):
            try:
                value = _candidates(getattr(self, name), flag_of(name), allow_zero)
            except ValueError as err:
                bad_candidates[name] = str(err)
            else:
                object.__setattr__(self, name, value)
        problem = self._problem(bad_candidates)
        if problem is not None:
            raise ConfigError(*problem)
        if self.open_loop:
            if self.schedule_seed is None:
                object.__setattr__(self, "schedule_seed", 10_000 + self.seed)
            if not self.aees_trace_root:
                object.__setattr__(self, "aees_trace_root", DEFAULT_AEES_TRACE_ROOT)
        if not self.output:
            object.__setattr__(self, "output", self.output_path)
        if info is not None and not info.legacy:
            self._check_task_options(info)

    def _resolve_defaults(self) -> Any:
        """Fill every option not given (:data:`TASK_DEFAULT`): the task's record's default,
        else the option's own; an NLP-style task's ``control_mode`` follows ``--method`` and
        its ``label_noise_type`` its ``--label-noise-rate``. Returns the task's record (None for
        a task name not registered: the shared defaults)."""
        from aees.runner.tasks import task_info

        try:
            info = task_info(self.task_name)
        except KeyError:
            info = None
        defaults = info.defaults if info is not None else {}
        nlp = info is not None and info.flag_style == "nlp"
        unset = []
        for name, spec in _shared_specs().items():
            if getattr(self, name) is not TASK_DEFAULT:
                continue
            unset.append(name)
            if name in defaults:
                value = defaults[name]
            elif nlp and spec.cli_default is not _SAME and spec.cli_default is not None:
                value = spec.cli_default
            else:
                value = spec.default
            object.__setattr__(self, name, value)
        if nlp and "control_mode" in unset and self.method in NLP_METHODS:
            object.__setattr__(self, "control_mode", NLP_METHODS[self.method])
        rate = self.label_noise_rate
        if nlp and "label_noise_type" in unset and isinstance(rate, (int, float)) and rate > 0:
            object.__setattr__(self, "label_noise_type", "symmetric")
        return info

    def _check_task_options(self, info: Any) -> None:
        """A converted task's own options: unknown names refused, defaults filled, each value
        checked by its spec (:func:`option_problem`), then the task's ``validate(config)``."""
        from aees.runner.tasks import get_task

        fields_ = {f.name for f in fields(self)}
        own = {spec.name: spec for spec in info.options if spec.name not in fields_}
        options = dict(self.task_options)
        for name in options:
            if name not in own:
                raise ConfigError(name, f"{flag_of(name)} is not an option of {info.name}")
        for name, spec in own.items():
            value = options.setdefault(name, spec.default)
            why = option_problem(spec, value)
            if why is not None:
                raise ConfigError(name, f"{spec.flag} {why}")
        object.__setattr__(self, "task_options", options)
        get_task(info.name).validate(self)

    @classmethod
    def for_task(cls, task_name: str, **values: Any) -> RunConfig:
        """The configuration of one run of ``task_name``: the shared fields among ``values``,
        the task's own options (also accepted inside ``task_options=``) into ``task_options``;
        everything not given takes the task's default, and each value is checked once
        (:class:`ConfigError` naming the field and the flag)."""
        names = {f.name for f in fields(cls)} - {"task_name", "task_options"}
        options = dict(values.pop("task_options", None) or {})
        given = {}
        for name, value in values.items():
            if name in names:
                given[name] = value
            else:
                options[name] = value
        return cls(task_name=task_name, task_options=options, **given)

    def _problem(self, bad_candidates: Mapping[str, str]) -> tuple[str, str] | None:
        """(field, ``--flag message``) of the first value the CLI would refuse, or None."""
        specs = field_specs()
        by_kind: dict[str, list[str]] = {}
        for name, (_, kind) in specs.items():
            by_kind.setdefault(kind, []).append(name)

        for name, (spec, kind) in specs.items():
            value = getattr(self, name)
            if kind == "str" and spec.choices and value is not None and value not in spec.choices:
                choices = ", ".join(spec.choices)
                return name, f"{flag_of(name)} must be one of {choices}, got {value!r}"
        for name in sorted(by_kind["int"]):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                return name, f"{flag_of(name)} must be an integer, got {value!r}"
            if name == "seed" or name.endswith("_seed"):
                if not 0 <= value <= MAX_SEED:
                    return name, f"{flag_of(name)} must be in [0, {MAX_SEED}], got {value}"
            elif abs(value) > MAX_INT_FLAG:
                return name, (
                    f"{flag_of(name)} must be at most {MAX_INT_FLAG} in magnitude, got {value}"
                )
        for name in by_kind["int"]:
            found = self._bound_problem(name, specs[name][0])
            if found is not None:
                return found
            if name == "num_workers" and self.num_workers > usable_cpu_count():
                return name, (
                    f"--num-workers must be <= {usable_cpu_count()} (the CPUs this process may "
                    f"use), got {self.num_workers}"
                )
        for name in by_kind["float"]:
            value = getattr(self, name)
            if value is None and name == "dadapt_growth_rate":  # None: unrestricted
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return name, f"{flag_of(name)} must be a number, got {value!r}"
            if not math.isfinite(value):
                return name, f"{flag_of(name)} must be finite, got {value}"
        for name in by_kind["float"]:
            found = self._bound_problem(name, specs[name][0])
            if found is not None:
                return found
        if self.reward_clip_min > self.reward_clip_max:
            return "reward_clip_min", (
                f"--reward-clip-min ({self.reward_clip_min}) must be <= --reward-clip-max "
                f"({self.reward_clip_max})"
            )
        if self.label_noise_type == "none" and self.label_noise_rate != 0.0:
            return "label_noise_rate", (
                "--label-noise-rate must be 0.0 when --label-noise-type is none, "
                f"got {self.label_noise_rate}"
            )
        for name, text in bad_candidates.items():
            return name, text
        found = self._optimizer_problem()
        if found is not None:
            return found
        found = self._open_loop_problem()
        if found is not None:
            return found
        if self.resume and not self.checkpoint_dir:
            return "resume", (
                "--resume needs --checkpoint-dir (where the checkpoint to resume from is)"
            )
        device = _device_format_problem(self.device)
        if device is not None:
            return "device", f"--device {device}"
        return None

    def _bound_problem(self, name: str, spec: OptionSpec) -> tuple[str, str] | None:
        value = getattr(self, name)
        if spec.check is None or value is None or spec.check not in _BOUNDS:
            return None
        ok, message = _BOUNDS[spec.check]
        if ok(value):
            return None
        return name, f"{flag_of(name)} {message}, got {value}"

    def _optimizer_problem(self) -> tuple[str, str] | None:
        """The peers' settings (docs/protocols.md §5.1): each only with its ``--optimizer`` (a
        changed value elsewhere would be silently unused), betas in [0, 1), SGDScheduleFree's
        ``--momentum`` in (0, 1), ``--dadapt-growth-rate`` >= 1."""
        shared = _shared_specs()
        for name, owners in PEER_FLAG_OPTIMIZERS.items():
            if self.optimizer not in owners and getattr(self, name) != shared[name].default:
                return name, (
                    f"{flag_of(name)} is only for --optimizer {' or '.join(owners)}, "
                    f"not {self.optimizer}"
                )
        for name in ("sf_beta1", "sf_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                return name, f"{flag_of(name)} must be in [0, 1), got {getattr(self, name)}"
        if self.optimizer == "SGDScheduleFree" and not 0.0 < self.momentum < 1.0:
            return "momentum", (
                "--momentum must be in (0, 1) with --optimizer SGDScheduleFree, "
                f"got {self.momentum}"
            )
        growth = self.dadapt_growth_rate
        if growth is not None and growth < 1.0:
            return "dadapt_growth_rate", f"--dadapt-growth-rate must be >= 1, got {growth}"
        return None

    def _open_loop_problem(self) -> tuple[str, str] | None:
        """The thesis v-B rules for ``--control-mode uniform-random|frequency-matched``
        (docs/protocols.md §11): no LR schedule, no context, independent axes, LR candidates exactly
        0.5,1.0,2.0 and noise exactly 0.0. The CIFAR-100 regime restriction is the task's
        (:mod:`aees.runner.tasks.cifar.task`)."""
        if not self.open_loop:
            if self.schedule_seed is not None:
                return "schedule_seed", (
                    "--schedule-seed is only for --control-mode uniform-random or "
                    f"frequency-matched, not {self.control_mode}"
                )
            return None
        mode = f"with --control-mode {self.control_mode}"
        if self.lr_scheduler != "none":
            return "lr_scheduler", f"--lr-scheduler must be none {mode}, got {self.lr_scheduler}"
        if self.context_mode != "none":
            return "context_mode", f"--context-mode must be none {mode}, got {self.context_mode}"
        if self.structured_control_mode != "independent":
            return (
                "structured_control_mode",
                f"--structured-control-mode must be independent {mode}",
            )
        if tuple(self.lr_candidates) != (0.5, 1.0, 2.0):
            got = ",".join(format(v, "g") for v in self.lr_candidates)
            return "lr_candidates", f"--lr-candidates must be exactly 0.5,1.0,2.0 {mode}, got {got}"
        if tuple(self.noise_candidates) != (0.0,):
            got = ",".join(format(v, "g") for v in self.noise_candidates)
            return "noise_candidates", f"--noise-candidates must be exactly 0.0 {mode}, got {got}"
        return None

    @property
    def method_name(self) -> str:
        """``Baseline`` / ``AdaptiveScheduler`` / ``RandomScheduler`` / ``UniformRandomOpenLoop``
        / ``FrequencyMatchedOpenLoop`` (NLP: ``--method``)."""
        return self.method or METHOD_NAMES[self.control_mode]

    @property
    def uses_aees(self) -> bool:
        """True for the episode-managed modes (everything but the plain baseline)."""
        return self.control_mode != "baseline"

    @property
    def open_loop(self) -> bool:
        """True for the reward-free open-loop controls (precomputed LR schedule)."""
        return self.control_mode in OPEN_LOOP_MODES

    @property
    def output_path(self) -> str:
        """``output``, or the default path (:func:`default_output_path`) when empty."""
        return self.output or default_output_path(
            self.task_name, self.control_mode, self.optimizer, self.seed, self.method
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (tuples become lists, ``task_options`` a plain dict)."""
        data = asdict(self)
        del data["hf_token"]
        data["lr_candidates"] = list(self.lr_candidates)
        data["noise_candidates"] = list(self.noise_candidates)
        data["task_options"] = dict(self.task_options)
        return data

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, *, task_name: str, task_option_names: Sequence[str] = ()
    ) -> RunConfig:
        """Build from a validated namespace (see :func:`validate_common_args`); the namespace's
        values are read by :func:`config_values`."""
        options = {name: getattr(args, name) for name in task_option_names}
        return cls(task_name=task_name, task_options=options, **config_values(args))


# --------------------------------------------------------------------------------------------
# A run too short for AEES to act (docs/protocols.md §3)
# --------------------------------------------------------------------------------------------


class RunWarning(UserWarning):
    """A warning about the run a user asked for (``aees train`` prints it as one line)."""


def warmup_episodes(config: RunConfig) -> int:
    """Episodes before AEES chooses by reward: the adaptive bandit first tries each arm once
    (per axis with ``independent`` control: the larger candidate list; every LR x noise pair
    with ``conditional``); the random and open-loop controls draw from the first episode, so
    they need one."""
    if config.control_mode != "adaptive":
        return 1
    n_lr, n_noise = len(config.lr_candidates), len(config.noise_candidates)
    if config.structured_control_mode == "conditional":
        return n_lr * n_noise
    return max(n_lr, n_noise)


def aees_short_run(config: RunConfig, steps_per_epoch: int) -> dict[str, int] | None:
    """``diagnostics.aees_short_run`` (docs/results-schema.md §6) when AEES cannot act in the
    run: its optimizer steps (``steps_per_epoch`` x epochs) are fewer than its warm-up
    episodes x ``--episode-length``; None when they suffice or the run has no AEES."""
    if not config.uses_aees:
        return None
    total = steps_per_epoch * config.epochs
    episodes = warmup_episodes(config)
    needed = episodes * config.episode_length
    if total >= needed:
        return None
    return {
        "total_steps": total,
        "episode_length": config.episode_length,
        "warmup_episodes": episodes,
        "steps_needed": needed,
    }


def short_run_message(short: dict[str, int], steps_per_epoch: int, epochs: int) -> str:
    """One line for :func:`aees_short_run`: the numbers, and the flags that would fix it."""
    total, length = short["total_steps"], short["episode_length"]
    episodes, needed = short["warmup_episodes"], short["steps_needed"]
    if episodes == 1:
        why = f"fewer than one episode of --episode-length {length}, so it never changes arm"
    else:
        why = (
            f"but it first tries each of its {episodes} arms for one episode of "
            f"--episode-length {length} ({needed} steps) before it chooses by reward"
        )
    fixes = []
    if total // episodes >= 1:
        fixes.append(f"--episode-length {total // episodes} or less")
    if steps_per_epoch > 0:
        fixes.append(f"--epochs {-(-needed // steps_per_epoch)} or more")
    plural = "s" if epochs != 1 else ""
    return (
        f"AEES cannot act in this run: {total} optimizer steps in all ({epochs} epoch{plural} "
        f"x {steps_per_epoch}), {why}; use {' or '.join(fixes)}"
    )
