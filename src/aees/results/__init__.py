"""The result contract between the runner, the sweep and reporting.

* :mod:`~aees.results.schema` -- :class:`RunResult`, field validation, the legacy upgrade;
* :mod:`~aees.results.checks` -- the value checks (:func:`~aees.results.checks.value_problems`),
  shared by reporting and the sweep;
* :mod:`~aees.results.legacy` -- the report family and labels of results written before they
  carried them (the thesis's tasks and optimizers);
* :mod:`~aees.results.identity` -- :func:`method_spec` and :func:`variant_id`;
* :mod:`~aees.results.provenance` -- :func:`collect_provenance` (and :mod:`.hardware`, the probe);
* :mod:`~aees.results.metrics` -- :func:`build_runtime_metrics`;
* :mod:`~aees.results.secrets` -- secret keys and their redaction;
* :mod:`~aees.results.io` -- atomic writes and safe reads (regular files, size-capped);
* :mod:`~aees.results.store` -- saving and loading one result file (the one JSON reader);
* :mod:`~aees.results.traces` -- AEES arm traces read from result files.

The modules of this package import the standard library only (``torch`` only inside the
hardware probe, when it is called; a test imports them with a bare ``aees`` package and finds no
torch). Importing ``aees.results`` still runs ``aees/__init__.py`` first, which loads the library
and with it torch.
"""

from aees.results.identity import method_spec, variant_id
from aees.results.io import MAX_RESULT_BYTES, atomic_write, atomic_write_text, read_result_bytes
from aees.results.metrics import STEADY_STATE_RULE, build_runtime_metrics
from aees.results.provenance import DEFAULT_PROVENANCE_PACKAGES, collect_provenance
from aees.results.schema import LEGACY_SCHEMA_VERSION, SCHEMA_VERSION, RunResult, RunResultError
from aees.results.secrets import REDACTED, is_secret_key, redact_values, scrub_secrets
from aees.results.store import decode_result_json, load_run_result, result_to_dict, save_run_result
from aees.results.values import config_value

__all__ = [
    "DEFAULT_PROVENANCE_PACKAGES",
    "LEGACY_SCHEMA_VERSION",
    "MAX_RESULT_BYTES",
    "REDACTED",
    "SCHEMA_VERSION",
    "STEADY_STATE_RULE",
    "RunResult",
    "RunResultError",
    "atomic_write",
    "atomic_write_text",
    "build_runtime_metrics",
    "collect_provenance",
    "config_value",
    "decode_result_json",
    "is_secret_key",
    "load_run_result",
    "method_spec",
    "read_result_bytes",
    "redact_values",
    "result_to_dict",
    "save_run_result",
    "scrub_secrets",
    "variant_id",
]
