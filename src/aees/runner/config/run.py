""":class:`RunConfig`, the one configuration of a run, and the option specs of a task
(:func:`option_specs`): a field not given takes the task's default, each value is checked once
(docs/protocols.md §2)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from aees.runner.config.options import (
    BOUNDS,
    COMPILE_MODES,
    DEFAULT_AEES_TRACE_ROOT,
    FLAG_GROUPS,
    LABEL_NOISE_TYPES,
    LR_SCHEDULERS,
    METHOD_NAMES,
    MLFLOW_DEFAULT_STORE,
    NLP_METHODS,
    OPEN_LOOP_MODES,
    OPTIMIZERS,
    PEER_FLAG_OPTIMIZERS,
    PRECISIONS,
    RUN_CONTROL_MODES,
    SAME,
    TASK_DEFAULT,
    ConfigError,
    OptionSpec,
    default_output_path,
    device_format_problem,
    flag_of,
    int_range_problem,
    kind_of,
    option_field,
    option_problem,
    parse_candidates,
    usable_cpu_count,
)
from aees.types import CONTEXT_MODES, NONFINITE_POLICIES, STRUCTURED_CONTROL_MODES

_SHARED: dict[str, OptionSpec] = {}


def shared_specs() -> dict[str, OptionSpec]:
    """The shared options: the flagged :class:`RunConfig` fields' specs, name / kind / group
    filled, in declaration order (computed once)."""
    if not _SHARED:
        groups = {name: title for title, names in FLAG_GROUPS.items() for name in names}
        for f in fields(RunConfig):
            spec = f.metadata.get("flag")
            if spec is not None:
                _SHARED[f.name] = replace(
                    spec, name=f.name, kind=kind_of(f.type), group=groups[f.name]
                )
    return _SHARED


def option_specs(task_name: str) -> dict[str, OptionSpec]:
    """Every option of ``aees train <task_name>``, name -> spec, in the order ``-h`` lists them:
    the shared ones of the task's flag style (defaults as the task's record sets them), then the
    task's own. The one flag model: argparse is generated from it (:func:`add_options`), the
    sweep reads it. ``KeyError`` for an unknown task."""
    from aees.runner.tasks.registry import task_info

    info = task_info(task_name)
    shared = shared_specs()
    out: dict[str, OptionSpec] = {}
    for names in FLAG_GROUPS.values():
        for name in names:
            spec = shared[name]
            if info.flag_style not in spec.styles:
                continue
            if name in info.defaults:
                spec = replace(spec, default=info.defaults[name], cli_default=SAME)
            elif info.flag_style == "nlp" and spec.cli_default is not SAME:
                spec = replace(spec, default=spec.cli_default)  # --method AdamW
            out[name] = spec
    for spec in info.options:
        out[spec.name] = spec
    return out


def _candidates(value: Any, flag: str, allow_zero: bool) -> tuple[float, ...]:
    if value is None or isinstance(value, str):
        return parse_candidates(value, flag=flag, allow_zero=allow_zero)
    try:
        text = ",".join(repr(float(v)) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{flag} must be a list of numbers, got {value!r}") from None
    return parse_candidates(text, flag=flag, allow_zero=allow_zero)


@dataclass(frozen=True)
class RunConfig:
    """One run, fully specified. Field names are the thesis ``ExperimentConfig`` ones
    (docs/results-schema.md §3).

    The one definition of the shared run configuration: each field's ``metadata["flag"]``
    (:class:`OptionSpec`) generates its ``aees train`` flag (:func:`add_options`), the
    sweep's flag model (:func:`option_specs`) and, through :meth:`to_dict`, the result's
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
    control_mode: str = option_field("baseline", choices=RUN_CONTROL_MODES, styles=("cifar",))
    epochs: int = option_field(10, help="> 0", check=">0")
    batch_size: int = option_field(128, help="> 0", check=">0")
    lr: float = option_field(1e-3, help="base learning rate, > 0", check=">0")
    weight_decay: float = option_field(1e-4, help=">= 0", check=">=0")
    optimizer: str = option_field(
        "AdamW",
        choices=OPTIMIZERS,
        help="the base optimizer; the LR-free / schedule-free peers need pip install "
        "'aees[peers]' (docs/protocols.md §5.1)",
    )
    momentum: float = option_field(0.9, help=">= 0 (SGD only)", check=">=0")
    # the peers' own settings (docs/protocols.md §5.1); each only with its --optimizer
    sf_warmup_steps: int = option_field(
        0, help="schedule-free only: linear LR warm-up, optimizer steps, >= 0", check=">=0"
    )
    sf_beta1: float = option_field(
        0.9, help="AdamWScheduleFree only: beta1 (interpolation), [0, 1)"
    )
    sf_beta2: float = option_field(0.999, help="AdamWScheduleFree only: beta2, [0, 1)")
    prodigy_d_coef: float = option_field(
        1.0, help="Prodigy only: factor on the d estimate, > 0", check=">0"
    )
    prodigy_safeguard_warmup: bool = option_field(
        False, help="Prodigy only: leave lr out of the d estimate's denominator"
    )
    dadapt_d0: float = option_field(
        1e-6, help="DAdaptAdam only: initial d estimate, > 0", check=">0"
    )
    dadapt_growth_rate: float | None = option_field(
        None, help="DAdaptAdam only: largest growth factor of d per step, >= 1 (default: none)"
    )
    lr_scheduler: str = option_field("none", choices=LR_SCHEDULERS)
    scheduler_t_max: int | None = option_field(
        None, help="> 0, in {unit}; default: the run", check=">0"
    )
    warmup_epochs: int = option_field(0, help=">= 0", check=">=0")
    reward_epsilon: float = option_field(1e-8, help="> 0", check=">0")
    reward_instability_lambda: float = option_field(0.0, help=">= 0", check=">=0")
    reward_clip_min: float = option_field(-1.0)
    reward_clip_max: float = option_field(1.0)
    episode_length: int = option_field(200, help="optimizer steps, > 0", check=">0")
    lr_candidates: tuple[float, ...] = option_field(
        (1.0,),
        help="comma list of LR multipliers (> 0); default 1.0: no LR choice",
        check=">0",
        cli_default=None,
    )
    noise_candidates: tuple[float, ...] = option_field(
        (0.0,),
        help="comma list of noise stds (>= 0); default 0.0: no noise",
        check=">=0",
        cli_default=None,
    )
    structured_control_mode: str = option_field("independent", choices=STRUCTURED_CONTROL_MODES)
    context_mode: str = option_field("none", choices=CONTEXT_MODES)
    context_trend_window: int = option_field(3, help="> 0", check=">0")
    context_trend_epsilon: float = option_field(1e-3, help=">= 0", check=">=0")
    label_noise_type: str = option_field("none", choices=LABEL_NOISE_TYPES, styles=("cifar",))
    label_noise_rate: float = option_field(0.0, help="in [0, 1]", check="[0,1]", styles=("cifar",))
    seed: int = option_field(0)
    output: str = option_field(
        "",
        help="result JSON (default results/<name>.json)",
        writes=True,
        identity=False,
        resumable=True,
    )
    ema_alpha: float = option_field(0.1, help="in (0, 1]", check="(0,1]")
    num_workers: int = option_field(
        0, help="DataLoader workers, 0..the CPU count", check=">=0", identity=False, resumable=True
    )
    data_dir: str | None = option_field(
        None, help="dataset directory (task default if unset)", identity=False
    )
    model_name: str | None = option_field(
        None, help="model id or local directory (task default if unset)"
    )
    run_tag: str | None = option_field(None, identity=False, resumable=True)
    device: str = option_field("auto", help="auto, cpu, cuda or cuda:<i>", identity=False)
    precision: str = option_field("fp32", choices=PRECISIONS)
    # fast mode (docs/protocols.md §17; aees.runner.fast): all off is the thesis protocol
    compile: bool = option_field(False, help="torch.compile the model's training step")
    compile_backend: str = option_field("inductor", help="torch.compile backend (with --compile)")
    compile_mode: str | None = option_field(
        None, choices=COMPILE_MODES, help="torch.compile mode (with --compile)"
    )
    channels_last: bool = option_field(False, help="model and 4-D inputs in channels-last layout")
    cudnn_benchmark: bool = option_field(False, help="cuDNN autotuning, not deterministic (CUDA)")
    tf32: bool = option_field(False, help="TF32 matmuls (CUDA)")
    checkpoint_dir: str | None = option_field(
        None, help="save a checkpoint every epoch here", writes=True, identity=False, resumable=True
    )
    resume: bool = option_field(
        False, help="continue from --checkpoint-dir", identity=False, resumable=True
    )
    val_split: int | None = option_field(
        None, help="held-out validation examples (task default)", check=">0"
    )
    quiet: bool = option_field(
        False, help="no progress bar or status lines", identity=False, resumable=True
    )
    tensorboard: str | None = option_field(  # --tensorboard DIR
        None,
        metavar="DIR",
        help="also write TensorBoard scalars to DIR/<result name> (pip install 'aees[tracking]')",
        writes=True,
        identity=False,
        resumable=True,
    )
    mlflow: str | None = option_field(  # the tracking URI (a local store as a file: URI)
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
    track_update_norm: bool = option_field(
        False, help="record ||delta theta||_2 per step (one extra buffer per parameter)"
    )
    nonfinite: str = option_field(
        "raise",
        choices=NONFINITE_POLICIES,
        help="raise (default): stop at the first non-finite loss and write a result marked "
        "diverged; skip: leave such steps out of AEES rewards and continue",
    )
    # The NLP runners' --method; None for CIFAR-style tasks.
    method: str | None = option_field(
        None, choices=tuple(NLP_METHODS), styles=("nlp",), cli_default="AdamW"
    )
    schedule_seed: int | None = option_field(  # open-loop modes only
        None,
        styles=("cifar",),
        help="open-loop modes only: seed of the private schedule RNG (default 10000 + seed)",
    )
    aees_trace_root: str | None = option_field(  # open-loop modes: where the AEES traces are found
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
        if info is not None:
            self._check_task_options(info)

    def _resolve_defaults(self) -> Any:
        """Fill every option not given (:data:`TASK_DEFAULT`): the task's record's default,
        else the option's own; an NLP-style task's ``control_mode`` follows ``--method`` and
        its ``label_noise_type`` its ``--label-noise-rate``. Returns the task's record (None for
        a task name not registered: the shared defaults)."""
        from aees.runner.tasks.registry import task_info

        try:
            info = task_info(self.task_name)
        except KeyError:
            info = None
        defaults = info.defaults if info is not None else {}
        nlp = info is not None and info.flag_style == "nlp"
        unset = []
        for name, spec in shared_specs().items():
            if getattr(self, name) is not TASK_DEFAULT:
                continue
            unset.append(name)
            if name in defaults:
                value = defaults[name]
            elif nlp and spec.cli_default is not SAME and spec.cli_default is not None:
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
        from aees.runner.tasks.registry import get_task

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
        specs = shared_specs()
        by_kind: dict[str, list[str]] = {}
        for name, spec in specs.items():
            by_kind.setdefault(spec.kind, []).append(name)

        for name, spec in specs.items():
            value = getattr(self, name)
            if (
                spec.kind == "str"
                and spec.choices
                and value is not None
                and value not in spec.choices
            ):
                choices = ", ".join(spec.choices)
                return name, f"{flag_of(name)} must be one of {choices}, got {value!r}"
        for name in sorted(by_kind["int"]):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                return name, f"{flag_of(name)} must be an integer, got {value!r}"
            why = int_range_problem(name, value)
            if why is not None:
                return name, f"{flag_of(name)} {why}"
        for name in by_kind["int"]:
            found = self._bound_problem(name, specs[name])
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
            found = self._bound_problem(name, specs[name])
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
        device = device_format_problem(self.device)
        if device is not None:
            return "device", f"--device {device}"
        return None

    def _bound_problem(self, name: str, spec: OptionSpec) -> tuple[str, str] | None:
        value = getattr(self, name)
        if spec.check is None or value is None or spec.check not in BOUNDS:
            return None
        ok, message = BOUNDS[spec.check]
        if ok(value):
            return None
        return name, f"{flag_of(name)} {message}, got {value}"

    def _optimizer_problem(self) -> tuple[str, str] | None:
        """The peers' settings (docs/protocols.md §5.1): each only with its ``--optimizer`` (a
        changed value elsewhere would be silently unused), betas in [0, 1), SGDScheduleFree's
        ``--momentum`` in (0, 1), ``--dadapt-growth-rate`` >= 1."""
        shared = shared_specs()
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


# --------------------------------------------------------------------------------------------
# A run too short for AEES to act (docs/protocols.md §3)
