"""Model and tokenizer loading of the text tasks, and the refusals of a checkpoint's own code.

``trust_remote_code=False`` everywhere (docs/protocols.md §4.7): a checkpoint that names its own
Python code (``auto_map``) or a ``model_type`` transformers does not know is refused with one line
before anything loads (:func:`model_dir_problem`).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from aees.runner.config import RunConfig, UserError
from aees.runner.tasks.text.hub import HubAccess, first_line, read_json

__all__ = ["DEFAULT_MODEL_NAME", "ModelLoading", "model_dir_problem"]

DEFAULT_MODEL_NAME = "distilbert-base-uncased"


def model_dir_problem(name: str) -> str | None:
    """Why the local checkpoint directory ``name`` is refused, or None (also for a Hub id).

    A checkpoint whose ``config.json`` or ``tokenizer_config.json`` names ``auto_map`` (its own
    Python code), or whose ``model_type`` this transformers does not know, would need that code
    to run. aees never runs it (``trust_remote_code=False`` everywhere, docs/protocols.md §4.7);
    saying so here, before anything loads, also means no library prompt can ever ask.
    """
    path = Path(name).expanduser()
    if not path.is_dir():
        return None
    config: Any = None
    for file_name in ("config.json", "tokenizer_config.json"):
        target = path / file_name
        if not os.path.lexists(target):
            continue
        try:
            data = read_json(target)
        except ValueError as err:
            return f"{file_name}: {getattr(err, 'problem', err)}"
        if not isinstance(data, dict):
            return f"{file_name} is not a JSON object"
        if "auto_map" in data:
            return (
                f"{file_name} names custom model code (auto_map); aees never runs a "
                "checkpoint's own code: use a checkpoint of a model type transformers knows"
            )
        if file_name == "config.json":
            config = data
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type is not None:
        from transformers import CONFIG_MAPPING, __version__

        if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
            return (
                f"config.json: model_type {model_type!r} is not one transformers {__version__} "
                "knows (it would need the checkpoint's own code, which aees never runs)"
            )
    return None


def custom_code_refused(err: BaseException) -> bool:
    """True when a library refused to load because the checkpoint needs its own code."""
    return "trust_remote_code" in str(err)


class ModelLoading:
    """The model-loading part of :class:`~aees.runner.tasks.text.task.TextClassificationTask`
    (a mixin: it reads the task's ``_model`` / ``_cache_dir`` / ``_opt`` and configuration).
    Every load takes the run's :class:`~aees.runner.tasks.text.hub.HubAccess`."""

    def model_fetch_command(self, config: RunConfig) -> str:
        code = (
            "from transformers import AutoModelForSequenceClassification as M; "
            f"M.from_pretrained({self._model(config)!r}, cache_dir={self._cache_dir(config)!r}, "
            "trust_remote_code=False)"
        )
        return shlex.join(["python", "-c", code])

    def check_model_source(self, config: RunConfig) -> None:
        """A ``--model-name`` written as a path (``/``, ``./``, ``../``, ``~``) must be a
        directory: one line naming it instead of a Hub lookup of a path-shaped id. A Hub id is
        looked up as given (no network here to check it)."""
        name = self._model(config)
        if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
            raise UserError(f"--model-name {name}: no such model directory")
        why = model_dir_problem(name)
        if why is not None:
            raise UserError(f"--model-name {name}: {why}")

    def _model_is_local(self, config: RunConfig) -> bool:
        return Path(self._model(config)).expanduser().is_dir()

    def _cached_ids_like(self, config: RunConfig) -> str:
        """``; cached models closest to it: a, b`` from the HF cache's ``models--org--name``
        folders, or ``""``: the hint for a Hub id that failed to load."""
        import difflib

        root = Path(self._cache_dir(config))
        try:
            cached = [
                d.name[len("models--") :].replace("--", "/")
                for d in root.iterdir()
                if d.is_dir() and d.name.startswith("models--")
            ]
        except OSError:
            return ""
        close = difflib.get_close_matches(self._model(config), cached, n=3, cutoff=0.6)
        return f"; cached models closest to it: {', '.join(close)}" if close else ""

    def load_tokenizer(self, config: RunConfig, hub: HubAccess) -> Any:
        from transformers import AutoTokenizer

        self.check_model_source(config)
        name = self._model(config)
        local = hub.local_only(not self._model_is_local(config))
        try:
            return AutoTokenizer.from_pretrained(
                name,
                cache_dir=self._cache_dir(config),
                local_files_only=local,
                token=hub.token,
                trust_remote_code=False,  # never a checkpoint's own code (docs §4.7)
            )
        except Exception as err:
            if custom_code_refused(err):
                raise self._custom_code_error(config) from None
            raise UserError(
                f"cannot load the tokenizer {name!r} from {self._cache_dir(config)!r} "
                f"({first_line(err)}){self._cached_ids_like(config)}; "
                f"{hub.fetch_hint(self.pretokenize_command(config))}"
            ) from None

    def _custom_code_error(self, config: RunConfig) -> UserError:
        return UserError(
            f"--model-name {self._model(config)}: the checkpoint needs its own model code "
            "(trust_remote_code); aees never runs a checkpoint's own code: use a checkpoint of a "
            "model type transformers knows"
        )

    def _model_error(self, config: RunConfig, hub: HubAccess, err: BaseException) -> UserError:
        if custom_code_refused(err):
            return self._custom_code_error(config)
        return UserError(
            f"cannot load the model {self._model(config)!r} from {self._cache_dir(config)!r} "
            f"({first_line(err)}){self._cached_ids_like(config)}; "
            f"{hub.fetch_hint(self.model_fetch_command(config))}"
        )

    def check_positions(self, config: RunConfig, model_config: Any) -> None:
        """``--max-length`` must fit the model's position embeddings."""
        max_length = int(self._opt(config, "max_length", 128))
        positions = getattr(model_config, "max_position_embeddings", None)
        if isinstance(positions, int) and max_length > positions:
            raise UserError(
                f"--max-length {max_length} exceeds the {positions} positions of "
                f"{self._model(config)!r}; use --max-length {positions} or less"
            )

    def check_model_config(self, config: RunConfig, hub: HubAccess) -> None:
        """Read the checkpoint's config only (the class count is not known yet): the model
        exists and ``--max-length`` fits, before anything is tokenized."""
        from transformers import AutoConfig

        try:
            model_config = AutoConfig.from_pretrained(
                self._model(config),
                cache_dir=self._cache_dir(config),
                local_files_only=hub.local_only(not self._model_is_local(config)),
                token=hub.token,
                trust_remote_code=False,
            )
        except Exception as err:
            raise self._model_error(config, hub, err) from None
        self.check_positions(config, model_config)

    def load_model(
        self,
        config: RunConfig,
        hub: HubAccess,
        num_labels: int,
        label_names: Sequence[str] | None = None,
    ) -> torch.nn.Module:
        """The checkpoint with a ``num_labels`` head (re-initialised, and logged, when the
        checkpoint's head is missing or has another shape)."""
        from transformers import AutoModelForSequenceClassification

        self.check_model_source(config)
        name = self._model(config)
        kwargs: dict[str, Any] = {
            "num_labels": num_labels,
            "cache_dir": self._cache_dir(config),
            "local_files_only": hub.local_only(not self._model_is_local(config)),
            "token": hub.token,
            "output_loading_info": True,
            "trust_remote_code": False,
        }
        if label_names is not None:
            kwargs["id2label"] = dict(enumerate(label_names))
            kwargs["label2id"] = {label: i for i, label in enumerate(label_names)}
        if self.ignore_mismatched_sizes:
            kwargs["ignore_mismatched_sizes"] = True
        try:
            model, loading = AutoModelForSequenceClassification.from_pretrained(name, **kwargs)
        except Exception as err:
            raise self._model_error(config, hub, err) from None
        self.check_positions(config, model.config)
        mismatched = [str(key[0]) for key in loading.get("mismatched_keys") or ()]
        missing = [str(key) for key in loading.get("missing_keys") or ()]
        if mismatched:
            hub.log(
                f"Re-initialised the classification head of {name!r} for {num_labels} labels "
                f"(the checkpoint's shape differs: {', '.join(sorted(mismatched))})",
            )
        elif missing:
            hub.log(
                f"Initialised a new {num_labels}-label classification head on {name!r} "
                f"(not in the checkpoint: {', '.join(sorted(missing))})",
            )
        return model
