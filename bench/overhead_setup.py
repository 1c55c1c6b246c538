"""What bench/overhead.py times: the models with their synthetic batches, and the AEES arms.

Every model is built from a fixed seed and fed a few synthetic batches (no data download);
``resnet18`` needs torchvision and ``distilbert`` transformers (skipped when not installed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# arms -> (lr_candidates, noise_candidates); "plain" (no wrapper) has none.
ARMS = {
    "lr": ([0.5, 1.0, 2.0], [0.0]),
    "noise": ([1.0], [0.0, 0.005, 0.01]),
    "both": ([0.5, 1.0, 2.0], [0.0, 0.005, 0.01]),
}
DEFAULT_MODELS = {"cuda": ["resnet18", "distilbert"], "cpu": ["cnn", "mlp"]}


@dataclass
class ModelSpec:
    name: str
    build: Callable[[], nn.Module]
    make_batch: Callable[[torch.Generator, torch.device], tuple[Any, torch.Tensor]]
    forward: Callable[[nn.Module, Any], torch.Tensor]  # returns logits
    lr: float
    batch_desc: str


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
    )


def _cifar_resnet18() -> nn.Module:
    from torchvision.models import resnet18

    m = resnet18(num_classes=100)
    m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


def _distilbert() -> nn.Module:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(DistilBertConfig(num_labels=2))


def _image_batch(n: int, shape: tuple[int, ...], classes: int):
    def make(g: torch.Generator, dev: torch.device):
        x = torch.randn((n, *shape), generator=g).to(dev)
        y = torch.randint(0, classes, (n,), generator=g).to(dev)
        return x, y

    return make


def _text_batch(n: int, seq: int, vocab: int, classes: int):
    def make(g: torch.Generator, dev: torch.device):
        ids = torch.randint(0, vocab, (n, seq), generator=g).to(dev)
        mask = torch.ones((n, seq), dtype=torch.long).to(dev)
        y = torch.randint(0, classes, (n,), generator=g).to(dev)
        return (ids, mask), y

    return make


def model_specs() -> dict[str, ModelSpec]:
    def call(m: nn.Module, x: Any) -> torch.Tensor:
        return m(x)

    def call_bert(m: nn.Module, x: Any) -> torch.Tensor:
        return m(input_ids=x[0], attention_mask=x[1]).logits

    return {
        "resnet18": ModelSpec(
            "resnet18",
            _cifar_resnet18,
            _image_batch(128, (3, 32, 32), 100),
            call,
            1e-3,
            "128x3x32x32, 100 classes",
        ),
        "distilbert": ModelSpec(
            "distilbert",
            _distilbert,
            _text_batch(16, 128, 30522, 2),
            call_bert,
            5e-5,
            "16x128 tokens, 2 labels",
        ),
        "cnn": ModelSpec(
            "cnn",
            _small_cnn,
            _image_batch(64, (3, 32, 32), 10),
            call,
            1e-3,
            "64x3x32x32, 10 classes",
        ),
        "mlp": ModelSpec(
            "mlp", _mlp, _image_batch(128, (784,), 10), call, 1e-3, "128x784, 10 classes"
        ),
    }
