"""The base optimizer of a run: AdamW, SGD and the LR-free / schedule-free peers.

The one place that builds them (docs/protocols.md §5, §5.1): :func:`build_optimizer` maps
``--optimizer`` and the peer flags of a :class:`~aees.runner.config.RunConfig` to
``torch.optim.AdamW`` / ``SGD``, ``schedulefree.AdamWScheduleFree`` / ``SGDScheduleFree``,
``prodigyopt.Prodigy`` and ``dadaptation.DAdaptAdam`` (package defaults for everything the flags
do not set). The peers come with the ``peers`` extra; the CLI refuses a missing package before
training (:func:`aees.runner.config.check_machine`), and a config built in code gets the
same one line here as an :class:`~aees.runner.summary.EngineError`.

Schedule-free optimizers keep two iterates: the point gradients are taken at (``y``, what the
parameters hold in train mode) and the average ``x`` that is evaluated (eval mode).
:func:`to_train` and :func:`to_eval` switch between them; :func:`to_eval` also recomputes
BatchNorm running statistics at ``x`` with :data:`BN_RECOMPUTE_BATCHES` training batches (the
package's documented recipe), since those collected during training belong to ``y``. Both are
no-ops for every other optimizer and when already in that mode, so callers switch freely.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from aees.runner.config import PEER_PACKAGES, SCHEDULE_FREE_OPTIMIZERS, RunConfig
from aees.runner.summary import EngineError

__all__ = [
    "BN_RECOMPUTE_BATCHES",
    "build_optimizer",
    "has_batch_norm",
    "is_schedule_free",
    "to_eval",
    "to_train",
]

#: Training batches run through the model (train mode, no gradients) after switching a
#: schedule-free optimizer to eval, so BatchNorm's running statistics describe ``x``.
BN_RECOMPUTE_BATCHES = 50

#: optimizer name -> the class's attribute name in its package
_PEER_CLASSES = {
    "AdamWScheduleFree": "AdamWScheduleFree",
    "SGDScheduleFree": "SGDScheduleFree",
    "Prodigy": "Prodigy",
    "DAdaptAdam": "DAdaptAdam",
}


def _peer_class(name: str) -> type[torch.optim.Optimizer]:
    package = PEER_PACKAGES[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise EngineError(
            f"--optimizer {name} needs the {package} package: pip install 'aees[peers]' "
            f"(or pip install {package})"
        ) from None
    return getattr(module, _PEER_CLASSES[name])


def build_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """One param group, weight decay on every parameter (docs/protocols.md §5); the peers with
    the flags of docs/protocols.md §5.1 and their packages' defaults otherwise."""
    params = model.parameters()
    name = config.optimizer
    if name == "AdamW":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "SGD":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = _peer_class(name)
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if name == "AdamWScheduleFree":
        kwargs.update(betas=(config.sf_beta1, config.sf_beta2), warmup_steps=config.sf_warmup_steps)
    elif name == "SGDScheduleFree":
        kwargs.update(momentum=config.momentum, warmup_steps=config.sf_warmup_steps)
    elif name == "Prodigy":
        kwargs.update(
            d_coef=config.prodigy_d_coef, safeguard_warmup=config.prodigy_safeguard_warmup
        )
    elif name == "DAdaptAdam":
        growth = config.dadapt_growth_rate
        kwargs.update(d0=config.dadapt_d0, growth_rate=float("inf") if growth is None else growth)
    # Prodigy prints "Using decoupled weight decay" when built: keep --quiet quiet
    with contextlib.redirect_stdout(io.StringIO()):
        return cls(params, **kwargs)


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    """True for an optimizer with schedule-free train/eval modes (``train_mode`` in its
    groups, as the schedulefree package keeps it)."""
    return (
        type(optimizer).__name__ in SCHEDULE_FREE_OPTIMIZERS
        or "train_mode" in optimizer.param_groups[0]
    ) and callable(getattr(optimizer, "eval", None))


def has_batch_norm(model: nn.Module) -> bool:
    """True when ``model`` has BatchNorm layers that keep running statistics."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        for m in model.modules()
    )


def to_train(optimizer: torch.optim.Optimizer) -> None:
    """Schedule-free: the parameters hold ``y`` again (before training steps); else nothing."""
    if is_schedule_free(optimizer):
        optimizer.train()  # type: ignore[attr-defined]


def to_eval(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    batches: Callable[[], Iterable[Any]],
    forward: Callable[[Any], Any],
) -> bool:
    """Schedule-free in train mode: the parameters now hold the average ``x`` and BatchNorm
    statistics are recomputed at ``x`` (``forward`` over the first :data:`BN_RECOMPUTE_BATCHES`
    of ``batches()``, model in train mode, no gradients). True if it switched.

    Called before every evaluation, the best-epoch copy, a checkpoint and the diagnostics, so
    each sees ``x``; an uninterrupted and a resumed run pass through the same switches (an
    eval/train round trip is not bit-exact in floating point).
    """
    if not is_schedule_free(optimizer) or not optimizer.param_groups[0].get("train_mode"):
        return False
    optimizer.eval()  # type: ignore[attr-defined]
    if has_batch_norm(model):
        was_training = model.training
        model.train()
        with torch.no_grad():
            for inputs in itertools.islice(batches(), BN_RECOMPUTE_BATCHES):
                forward(inputs)
        model.train(was_training)
    return True
