"""The run configuration shared by every task: argparse flags, their validation, :class:`RunConfig`.

Flag names, defaults and validation rules are the thesis runners' (``thesis-experiments.md``
§2.1.1, §2.2.2), plus the flags this project adds (``--device``, ``--precision``,
``--num-workers``, ``--data-dir``, ``--checkpoint-dir``, ``--resume``, ``--val-split``,
``--quiet``, ``--ema-alpha``). Every invalid value or combination ends in
:meth:`argparse.ArgumentParser.error`: exit status 2 and one line, ``aees train <task>: error:
--flag ...``, before any data is loaded. An ``--output`` (or ``--checkpoint-dir``) that cannot be
written is caught here too, so a run never trains for hours and then fails to save.

Candidate lists follow pulseopt's parsing (§2.0): comma-separated, whitespace stripped, empty
tokens dropped, non-empty, floats, LR > 0, noise >= 0, no duplicates, order kept; a missing flag
means ``[1.0]`` (LR) and ``[0.0]`` (noise).
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aees.console import OneLineArgumentParser, UserError

__all__ = [
    "CONTROL_MODES",
    "DEFAULT_AEES_TRACE_ROOT",
    "EXIT_DIVERGED",
    "FLAG_STYLES",
    "LR_SCHEDULERS",
    "MAX_INT_FLAG",
    "MAX_SEED",
    "METHOD_NAMES",
    "NLP_METHODS",
    "NONFINITE_POLICIES",
    "OPEN_LOOP_MODES",
    "OPTIMIZERS",
    "PRECISIONS",
    "OneLineArgumentParser",
    "RunConfig",
    "UserError",
    "add_common_arguments",
    "default_output_path",
    "parse_candidates",
    "validate_common_args",
    "writable_location_problem",
]

CONTROL_MODES = ("baseline", "adaptive", "random", "uniform-random", "frequency-matched")
#: The reward-free open-loop attribution controls (thesis §2.1.8; see ``open_loop``).
OPEN_LOOP_MODES = ("uniform-random", "frequency-matched")
DEFAULT_AEES_TRACE_ROOT = "results/cifar_noisy"
OPTIMIZERS = ("AdamW", "SGD")
LR_SCHEDULERS = ("none", "cosine", "linear", "warmup_linear")
STRUCTURED_CONTROL_MODES = ("independent", "conditional")
CONTEXT_MODES = ("none", "trend")
LABEL_NOISE_TYPES = ("none", "symmetric", "asymmetric")
PRECISIONS = ("fp32", "bf16", "fp16")
#: ``--mlflow`` without a value: a file store in the current directory.
MLFLOW_DEFAULT_STORE = "mlruns"
#: ``--mlflow URI`` schemes MLflow's tracking client serves (``+driver`` suffixes allowed).
MLFLOW_URI_SCHEMES = ("http", "https", "databricks", "sqlite", "postgresql", "mysql", "mssql")
#: ``--nonfinite``: stop the run at the first non-finite training loss (``raise``; the result is
#: written and marked as diverged) or leave such steps out of AEES rewards and go on (``skip``).
NONFINITE_POLICIES = ("raise", "skip")
#: ``aees train`` exit status of a run stopped by a non-finite loss (its result is written,
#: marked diverged); sweeps record such a run as completed with a "diverged" detail.
EXIT_DIVERGED = 3
#: Largest value of an integer flag (a C ``int``): larger ones overflow torch, NumPy or the OS.
MAX_INT_FLAG = 2**31 - 1
#: Seeds are unsigned 32-bit: NumPy's and every generator the tasks seed accept that range.
MAX_SEED = 2**32 - 1

#: ``--control-mode`` -> the method name written to the result (thesis §2.1.1).
METHOD_NAMES = {
    "baseline": "Baseline",
    "adaptive": "AdaptiveScheduler",
    "random": "RandomScheduler",
    "uniform-random": "UniformRandomOpenLoop",
    "frequency-matched": "FrequencyMatchedOpenLoop",
}
#: The NLP runners' ``--method`` (thesis §2.2.2) -> the control mode it means.
NLP_METHODS = {
    "AdamW": "baseline",
    "AdaptiveScheduler": "adaptive",
    "RandomScheduler": "random",
}
#: Flag styles: ``cifar`` (``--control-mode``/``--optimizer``/``--label-noise-type``; CIFAR and
#: digits) and ``nlp`` (``--method``; AdamW only; label-noise flags are the task's own).
FLAG_STYLES = ("cifar", "nlp")


def parse_candidates(text: str | None, *, flag: str, allow_zero: bool) -> tuple[float, ...]:
    """Parse a comma-separated candidate list (pulseopt rules, §2.0); ``ValueError`` names ``flag``.

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


def add_common_arguments(parser: argparse.ArgumentParser, *, style: str = "cifar") -> None:
    """Add the flags shared by every task.

    ``style="cifar"``: the thesis CIFAR runner's names and defaults (``--control-mode``,
    ``--optimizer``, ``--momentum``, ``--label-noise-type``, ``--label-noise-rate``).
    ``style="nlp"``: the SST-2 / AG News runners' ``--method {AdamW,AdaptiveScheduler,
    RandomScheduler}`` instead (AdamW only, no label-noise flags: a task adds its own), and
    ``--scheduler-t-max`` counts optimizer steps.
    """
    if style not in FLAG_STYLES:
        raise ValueError(f"style must be one of {FLAG_STYLES}, got {style!r}")
    nlp = style == "nlp"
    g = parser.add_argument_group("method")
    if nlp:
        g.add_argument("--method", choices=tuple(NLP_METHODS), default="AdamW")
    else:
        g.add_argument("--control-mode", choices=CONTROL_MODES, default="baseline")
    g.add_argument("--epochs", type=int, default=10, help="> 0 (default 10)")
    g.add_argument("--batch-size", type=int, default=128, help="> 0 (default 128)")
    g.add_argument("--lr", type=float, default=1e-3, help="base learning rate, > 0")
    g.add_argument("--weight-decay", type=float, default=1e-4, help=">= 0")
    if not nlp:
        g.add_argument("--optimizer", choices=OPTIMIZERS, default="AdamW")
        g.add_argument("--momentum", type=float, default=0.9, help=">= 0 (SGD only)")
    g.add_argument("--lr-scheduler", choices=LR_SCHEDULERS, default="none")
    unit = "optimizer steps" if nlp else "epochs"
    g.add_argument(
        "--scheduler-t-max", type=int, default=None, help=f"> 0, in {unit}; default: the run"
    )
    g.add_argument("--warmup-epochs", type=int, default=0, help=">= 0")

    a = parser.add_argument_group("AEES")
    a.add_argument("--lr-candidates", default=None, help="comma list of LR multipliers (> 0)")
    a.add_argument("--noise-candidates", default=None, help="comma list of noise stds (>= 0)")
    a.add_argument("--episode-length", type=int, default=200, help="optimizer steps, > 0")
    a.add_argument(
        "--structured-control-mode", choices=STRUCTURED_CONTROL_MODES, default="independent"
    )
    a.add_argument("--context-mode", choices=CONTEXT_MODES, default="none")
    a.add_argument("--context-trend-window", type=int, default=3, help="> 0")
    a.add_argument("--context-trend-epsilon", type=float, default=1e-3, help=">= 0")
    a.add_argument("--reward-epsilon", type=float, default=1e-8, help="> 0")
    a.add_argument("--reward-instability-lambda", type=float, default=0.0, help=">= 0")
    a.add_argument("--reward-clip-min", type=float, default=-1.0)
    a.add_argument("--reward-clip-max", type=float, default=1.0)
    a.add_argument("--ema-alpha", type=float, default=0.1, help="in (0, 1]")
    if not nlp:
        a.add_argument(
            "--schedule-seed",
            type=int,
            default=None,
            help="open-loop modes only: seed of the private schedule RNG (default 10000 + seed)",
        )
        a.add_argument(
            "--aees-trace-root",
            default=None,
            help="open-loop modes: where the AEES source traces are found by content "
            f"(default {DEFAULT_AEES_TRACE_ROOT})",
        )
    a.add_argument(
        "--nonfinite",
        choices=NONFINITE_POLICIES,
        default="raise",
        help="raise (default): stop at the first non-finite loss and write a result marked "
        "diverged; skip: leave such steps out of AEES rewards and continue",
    )
    a.add_argument(
        "--track-update-norm",
        action="store_true",
        help="record ||delta theta||_2 per step (one extra buffer per parameter)",
    )

    if not nlp:
        n = parser.add_argument_group("label noise")
        n.add_argument("--label-noise-type", choices=LABEL_NOISE_TYPES, default="none")
        n.add_argument("--label-noise-rate", type=float, default=0.0, help="in [0, 1]")

    r = parser.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--run-tag", default=None)
    r.add_argument("--output", default="", help="result JSON (default results/<name>.json)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<i>")
    r.add_argument("--precision", choices=PRECISIONS, default="fp32")
    r.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers, 0..the CPU count"
    )
    r.add_argument("--data-dir", default=None, help="dataset directory (task default if unset)")
    r.add_argument(
        "--model-name", default=None, help="model id or local directory (task default if unset)"
    )
    r.add_argument("--checkpoint-dir", default=None, help="save a checkpoint every epoch here")
    r.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir")
    r.add_argument(
        "--val-split", type=int, default=None, help="held-out validation examples (task default)"
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar or status lines")
    r.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="also write TensorBoard scalars to DIR/<result name> (pip install 'aees[tracking]')",
    )
    r.add_argument(
        "--mlflow",
        nargs="?",
        const=MLFLOW_DEFAULT_STORE,
        default=None,
        metavar="URI",
        help="also track the run in MLflow; URI default: a file store ./mlruns "
        "(pip install 'aees[tracking]')",
    )


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
    ``method`` lower-cased)."""
    if method is not None:
        return os.path.join("results", f"{task}_{method.lower()}_seed{seed}.json")
    return os.path.join("results", f"{task}_{control_mode}_{optimizer.lower()}_seed{seed}.json")


def _normalise_style(args: argparse.Namespace) -> None:
    """Give an NLP-style namespace the CIFAR-style fields the rest of the code reads."""
    method = getattr(args, "method", None)
    if method is not None:
        args.control_mode = NLP_METHODS[method]
        args.optimizer = "AdamW"
        args.momentum = 0.9  # unused by AdamW; kept so every config has the same fields
    else:
        args.method = None
    if not hasattr(args, "label_noise_rate"):
        args.label_noise_rate = 0.0
    if not hasattr(args, "label_noise_type"):
        args.label_noise_type = "symmetric" if args.label_noise_rate > 0 else "none"


def _device_problem(device: str, precision: str) -> tuple[str, str] | None:
    """(flag, message) for an unusable ``--device`` / ``--precision``, else None."""
    if device not in ("auto", "cpu", "cuda") and not (
        device.startswith("cuda:") and device[5:].isdigit()
    ):
        return "--device", f"must be auto, cpu, cuda or cuda:<index>, got {device!r}"
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


def _validate_open_loop(fail: Any, args: argparse.Namespace) -> None:
    """The thesis v-B rules for ``--control-mode uniform-random|frequency-matched`` (§2.1.1):
    no LR schedule, no context, independent axes, LR candidates exactly 0.5,1.0,2.0 and noise
    exactly 0.0. Fills ``schedule_seed`` (10000 + seed) and ``aees_trace_root``. The CIFAR-100
    regime restriction is the task's (:mod:`aees.runner.tasks.cifar100`)."""
    if not hasattr(args, "schedule_seed"):
        args.schedule_seed = None
        args.aees_trace_root = None
    if args.control_mode not in OPEN_LOOP_MODES:
        if args.schedule_seed is not None:
            fail(
                "--schedule-seed",
                f"is only for --control-mode uniform-random or frequency-matched, "
                f"not {args.control_mode}",
            )
        return
    mode = f"with --control-mode {args.control_mode}"
    if args.lr_scheduler != "none":
        fail("--lr-scheduler", f"must be none {mode}, got {args.lr_scheduler}")
    if args.context_mode != "none":
        fail("--context-mode", f"must be none {mode}, got {args.context_mode}")
    if args.structured_control_mode != "independent":
        fail("--structured-control-mode", f"must be independent {mode}")
    if tuple(args.lr_candidates) != (0.5, 1.0, 2.0):
        got = ",".join(format(v, "g") for v in args.lr_candidates)
        fail("--lr-candidates", f"must be exactly 0.5,1.0,2.0 {mode}, got {got}")
    if tuple(args.noise_candidates) != (0.0,):
        got = ",".join(format(v, "g") for v in args.noise_candidates)
        fail("--noise-candidates", f"must be exactly 0.0 {mode}, got {got}")
    if args.schedule_seed is None:
        args.schedule_seed = 10_000 + args.seed
    if not args.aees_trace_root:
        args.aees_trace_root = DEFAULT_AEES_TRACE_ROOT


def _local_store_path(uri: str) -> str | None:
    """The directory of a local MLflow file store URI (a path or ``file:``), else None."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return url2pathname(parts.path)
    if not parts.scheme or (len(parts.scheme) == 1 and os.name == "nt"):  # a drive letter
        return uri
    return None


def _validate_tracking(fail: Any, args: argparse.Namespace) -> None:
    """``--tensorboard DIR`` / ``--mlflow [URI]``: the package is installed, a local target is
    writable, and a URI holds no credentials (they would be written to the result and the
    MLflow params). A local MLflow store becomes an absolute ``file:`` URI."""
    from importlib.util import find_spec

    board = getattr(args, "tensorboard", None)
    if board is not None:
        if not str(board).strip():
            fail("--tensorboard", "must name a directory")
        if find_spec("tensorboard") is None:
            fail("--tensorboard", "needs the tensorboard package: pip install 'aees[tracking]'")
        why = writable_location_problem(board, is_dir=True)
        if why is not None:
            fail("--tensorboard", f"{board!r} cannot be written: {why}")
    uri = getattr(args, "mlflow", None)
    if uri is None:
        return
    uri = str(uri).strip()
    if not uri:
        fail("--mlflow", "must be a tracking URI or a directory (or give no value: ./mlruns)")
    if find_spec("mlflow") is None:
        fail("--mlflow", "needs the mlflow package: pip install 'aees[tracking]'")
    local = _local_store_path(uri)
    if local is not None:
        why = writable_location_problem(local, is_dir=True)
        if why is not None:
            fail("--mlflow", f"{local!r} cannot be written: {why}")
        args.mlflow = Path(local).expanduser().absolute().as_uri()
        return
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in MLFLOW_URI_SCHEMES and scheme.split("+")[0] not in MLFLOW_URI_SCHEMES:
        fail("--mlflow", f"{uri!r}: unsupported scheme {parts.scheme!r}")
    if parts.password is not None or (parts.username and scheme in ("http", "https")):
        fail(
            "--mlflow",
            "must not carry credentials (they would be written to the result); set "
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN",
        )
    args.mlflow = uri


def validate_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check every shared flag; the first problem ends the process via ``parser.error``.

    Also normalises ``args.lr_candidates`` / ``args.noise_candidates`` to tuples of floats and
    fills an empty ``args.output`` with :func:`default_output_path`. An NLP-style namespace
    (``--method``) gets ``control_mode``, ``optimizer`` and the label-noise fields filled in.
    """
    _normalise_style(args)

    def fail(flag: str, message: str) -> NoReturn:
        parser.error(f"{flag} {message}")

    def finite(flag: str, value: float) -> None:
        if not math.isfinite(value):
            fail(flag, f"must be finite, got {value}")

    _check_int_ranges(fail, args)
    positive_ints = {
        "--epochs": args.epochs,
        "--batch-size": args.batch_size,
        "--episode-length": args.episode_length,
        "--context-trend-window": args.context_trend_window,
    }
    for flag, value in positive_ints.items():
        if value <= 0:
            fail(flag, f"must be > 0, got {value}")
    if args.scheduler_t_max is not None and args.scheduler_t_max <= 0:
        fail("--scheduler-t-max", f"must be > 0, got {args.scheduler_t_max}")
    if args.warmup_epochs < 0:
        fail("--warmup-epochs", f"must be >= 0, got {args.warmup_epochs}")
    if args.num_workers < 0:
        fail("--num-workers", f"must be >= 0, got {args.num_workers}")
    if args.num_workers > usable_cpu_count():
        fail(
            "--num-workers",
            f"must be <= {usable_cpu_count()} (the CPUs this process may use), "
            f"got {args.num_workers}",
        )
    if args.val_split is not None and args.val_split <= 0:
        fail("--val-split", f"must be > 0, got {args.val_split}")

    floats = {
        "--lr": args.lr,
        "--weight-decay": args.weight_decay,
        "--momentum": args.momentum,
        "--context-trend-epsilon": args.context_trend_epsilon,
        "--reward-epsilon": args.reward_epsilon,
        "--reward-instability-lambda": args.reward_instability_lambda,
        "--reward-clip-min": args.reward_clip_min,
        "--reward-clip-max": args.reward_clip_max,
        "--ema-alpha": args.ema_alpha,
        "--label-noise-rate": args.label_noise_rate,
    }
    for flag, value in floats.items():
        finite(flag, value)
    for flag in ("--lr", "--reward-epsilon"):
        if floats[flag] <= 0:
            fail(flag, f"must be > 0, got {floats[flag]}")
    for flag in (
        "--weight-decay",
        "--momentum",
        "--context-trend-epsilon",
        "--reward-instability-lambda",
    ):
        if floats[flag] < 0:
            fail(flag, f"must be >= 0, got {floats[flag]}")
    if args.reward_clip_min > args.reward_clip_max:
        fail(
            "--reward-clip-min",
            f"({args.reward_clip_min}) must be <= --reward-clip-max ({args.reward_clip_max})",
        )
    if not 0.0 < args.ema_alpha <= 1.0:
        fail("--ema-alpha", f"must be in (0, 1], got {args.ema_alpha}")
    if not 0.0 <= args.label_noise_rate <= 1.0:
        fail("--label-noise-rate", f"must be in [0, 1], got {args.label_noise_rate}")
    if args.label_noise_type == "none" and args.label_noise_rate != 0.0:
        fail(
            "--label-noise-rate",
            f"must be 0.0 when --label-noise-type is none, got {args.label_noise_rate}",
        )

    try:
        args.lr_candidates = parse_candidates(
            args.lr_candidates, flag="--lr-candidates", allow_zero=False
        )
        args.noise_candidates = parse_candidates(
            args.noise_candidates, flag="--noise-candidates", allow_zero=True
        )
    except ValueError as err:
        parser.error(str(err))

    _validate_open_loop(fail, args)

    if args.resume and not args.checkpoint_dir:
        fail("--resume", "needs --checkpoint-dir (where the checkpoint to resume from is)")
    problem = _device_problem(args.device, args.precision)
    if problem is not None:
        fail(*problem)

    if not args.output:
        args.output = default_output_path(
            args.task, args.control_mode, args.optimizer, args.seed, args.method
        )
    why = writable_location_problem(args.output, is_dir=False)
    if why is not None:
        fail("--output", f"{args.output!r} cannot be written: {why}")
    if args.checkpoint_dir:
        why = writable_location_problem(args.checkpoint_dir, is_dir=True)
        if why is not None:
            fail("--checkpoint-dir", f"{args.checkpoint_dir!r} cannot be written: {why}")
    _validate_tracking(fail, args)


@dataclass(frozen=True)
class RunConfig:
    """One run, fully specified. Field names are the thesis ``ExperimentConfig`` ones (§3.2).

    ``task_options`` holds the task-specific flags (e.g. ``{"max_length": 128}``).
    """

    task_name: str
    control_mode: str = "baseline"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "AdamW"
    momentum: float = 0.9
    lr_scheduler: str = "none"
    scheduler_t_max: int | None = None
    warmup_epochs: int = 0
    reward_epsilon: float = 1e-8
    reward_instability_lambda: float = 0.0
    reward_clip_min: float = -1.0
    reward_clip_max: float = 1.0
    episode_length: int = 200
    lr_candidates: tuple[float, ...] = (1.0,)
    noise_candidates: tuple[float, ...] = (0.0,)
    structured_control_mode: str = "independent"
    context_mode: str = "none"
    context_trend_window: int = 3
    context_trend_epsilon: float = 1e-3
    label_noise_type: str = "none"
    label_noise_rate: float = 0.0
    seed: int = 0
    output: str = ""
    ema_alpha: float = 0.1
    num_workers: int = 0
    data_dir: str | None = None
    model_name: str | None = None
    run_tag: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    checkpoint_dir: str | None = None
    resume: bool = False
    val_split: int | None = None
    quiet: bool = False
    tensorboard: str | None = None  # --tensorboard DIR
    mlflow: str | None = None  # --mlflow: the tracking URI (a local store as a file: URI)
    track_update_norm: bool = False
    nonfinite: str = "raise"
    method: str | None = None  # the NLP runners' --method; None for CIFAR-style tasks
    schedule_seed: int | None = None  # open-loop modes only
    aees_trace_root: str | None = None  # open-loop modes: where the AEES traces are found
    task_options: Mapping[str, Any] = field(default_factory=dict)

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
        return self.output or default_output_path(
            self.task_name, self.control_mode, self.optimizer, self.seed, self.method
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists, ``task_options`` a plain dict)."""
        data = asdict(self)
        data["lr_candidates"] = list(self.lr_candidates)
        data["noise_candidates"] = list(self.noise_candidates)
        data["task_options"] = dict(self.task_options)
        return data

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, *, task_name: str, task_option_names: Sequence[str] = ()
    ) -> RunConfig:
        """Build from a validated namespace (see :func:`validate_common_args`)."""
        names = {f for f in cls.__dataclass_fields__ if f not in ("task_name", "task_options")}
        values = {name: getattr(args, name) for name in names if hasattr(args, name)}
        values["lr_candidates"] = tuple(float(v) for v in values["lr_candidates"])
        values["noise_candidates"] = tuple(float(v) for v in values["noise_candidates"])
        options = {name: getattr(args, name) for name in task_option_names}
        return cls(task_name=task_name, task_options=options, **values)
