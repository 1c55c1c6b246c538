"""The text tasks' own options as :class:`~aees.runner.config.OptionSpec` (the one flag model:
``aees train sst2|agnews|text -h`` is generated from them, the sweep reads them) and their
defaults (docs/protocols.md §2, §4.5, §4.7).

Where-things-are options (the caches, ``--local-files-only``, ``--pretokenize-only``, the token)
are not part of a run's identity and may change on ``--resume``; the caches name places the run
writes. ``--hf-token`` goes to ``RunConfig.hf_token`` (never written); ``--label-noise-rate`` to
``RunConfig.label_noise_rate``.
"""

from __future__ import annotations

from typing import Any

from aees.runner.config.options import OptionSpec

__all__ = ["NLP_DEFAULTS", "text_options"]

#: Thesis NLP defaults (docs/protocols.md §2).
NLP_DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 16,
    "lr": 5e-5,
    "weight_decay": 0.01,
    "episode_length": 100,
}

_WHERE = {"identity": False, "resumable": True}


def _data_options() -> tuple[OptionSpec, ...]:
    """``text``'s data flags: the source and the columns."""
    return (
        OptionSpec(
            name="dataset",
            help="HUB_ID[:CONFIG] of a Hub dataset (instead of --data-dir)",
            group="data",
        ),
        OptionSpec(
            name="text_column", default="text", help="the text column (default text)", group="data"
        ),
        OptionSpec(
            name="text_pair_column",
            help="a second text column, encoded as the pair (default: none)",
            group="data",
        ),
        OptionSpec(
            name="label_column",
            default="label",
            help="the label column (default label)",
            group="data",
        ),
    )


def _noise_options() -> tuple[OptionSpec, ...]:
    """AG News's and ``text``'s label-noise flags (docs/protocols.md §4.4)."""
    return (
        OptionSpec(
            name="label_noise_rate",
            kind="float",
            default=0.0,
            help="symmetric, in [0, 1)",
            group="label noise",
        ),
        OptionSpec(
            name="label_noise_seed",
            kind="int",
            default=42,
            help="noise seed, independent of --seed (default 42)",
            group="label noise",
        ),
    )


def text_options(
    group: str, tokenized_dir: str, *, data: bool = False, label_noise: bool = False
) -> tuple[OptionSpec, ...]:
    """The own options of a text task, in ``-h`` order: (``data``) the data flags, then the
    cache and Hub flags in the ``group`` section, then (``label_noise``) the noise flags."""
    common = (
        OptionSpec(
            name="max_length",
            kind="int",
            default=128,
            check=">0",
            help="tokenizer truncation, > 0",
            group=group,
        ),
        OptionSpec(
            name="cache_dir",
            group=group,
            help="HF cache for dataset, tokenizer and model (default: <cwd>/.hf_cache)",
            writes=True,
            **_WHERE,
        ),
        OptionSpec(
            name="tokenized_dataset_dir",
            group=group,
            default=tokenized_dir,
            help=f"tokenized-cache root (default {tokenized_dir})",
            writes=True,
            **_WHERE,
        ),
        OptionSpec(
            name="pretokenize_only",
            group=group,
            kind="bool",
            default=False,
            help="build (or check) the tokenized cache, print its path and exit",
            **_WHERE,
        ),
        OptionSpec(
            name="local_files_only",
            group=group,
            kind="bool",
            default=False,
            help="never contact the Hub: tokenizer, model and dataset from the caches only",
            **_WHERE,
        ),
        OptionSpec(
            name="hf_token",
            group=group,
            help="Hub token (default: $HF_TOKEN); used, never stored",
            identity=False,
            resumable=True,
        ),
    )
    return (_data_options() if data else ()) + common + (_noise_options() if label_noise else ())
