"""The run configuration shared by every task (docs/protocols.md §2, §3).

One configuration, parsed once: ``aees train <task>``'s flags are generated from the option specs
(:func:`option_specs`: the shared :class:`RunConfig` fields of the task's flag style, with the
task's defaults, then the task's own options), the parsed values become one :class:`RunConfig`
(:meth:`RunConfig.for_task`) that checks each value once, and :func:`check_machine` asks the
machine (device, packages, writable places). Every invalid value or combination ends in one
line, ``aees train <task>: error: --flag ...``, exit status 2, before any data is loaded.

The package, one concern per module: :mod:`~aees.runner.config.options` (the vocabulary, the
optimizer registry, :class:`OptionSpec`, per-value rules; standard library only),
:mod:`~aees.runner.config.run` (:class:`RunConfig`, :func:`option_specs`),
:mod:`~aees.runner.config.machine` (the machine's checks), :mod:`~aees.runner.config.flags`
(argparse), :mod:`~aees.runner.config.short_run` (a run too short for AEES to act). The public
names are importable from ``aees.runner.config``.
"""

from __future__ import annotations

from aees.console import UserError  # the tasks' one-line errors (aees.console's)
from aees.runner.config.flags import add_options
from aees.runner.config.machine import check_machine, writable_location_problem
from aees.runner.config.options import (
    DEFAULT_AEES_TRACE_ROOT,
    EXIT_DIVERGED,
    FLAG_GROUPS,
    FLAG_STYLES,
    LR_SCHEDULERS,
    MAX_INT_FLAG,
    MAX_SEED,
    METHOD_NAMES,
    NLP_METHODS,
    OPEN_LOOP_MODES,
    OPTIMIZER_INFO,
    OPTIMIZERS,
    PEER_FLAG_OPTIMIZERS,
    PEER_PACKAGES,
    PRECISIONS,
    RUN_CONTROL_MODES,
    SCHEDULE_FREE_OPTIMIZERS,
    TASK_DEFAULT,
    ConfigError,
    OptimizerInfo,
    OptionSpec,
    default_output_path,
    flag_of,
    option_problem,
    parse_candidates,
    usable_cpu_count,
)
from aees.runner.config.run import RunConfig, option_specs, shared_specs
from aees.runner.config.short_run import (
    RunWarning,
    aees_short_run,
    short_run_message,
    warmup_episodes,
)

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
    "OptimizerInfo",
    "OptionSpec",
    "RunConfig",
    "RunWarning",
    "UserError",
    "add_options",
    "aees_short_run",
    "check_machine",
    "default_output_path",
    "flag_of",
    "option_problem",
    "option_specs",
    "parse_candidates",
    "shared_specs",
    "short_run_message",
    "usable_cpu_count",
    "warmup_episodes",
    "writable_location_problem",
]
