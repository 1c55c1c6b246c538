"""FLOP accounting (docs/protocols.md §8)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from aees.runner import flops as fl


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_exact_counts_for_an_mlp():
    # forward: 2*3*8*16 + 2*3*16*4; backward: both weight grads + the hidden input grad (the
    # network input needs no grad, as in training).
    r = fl.measure_flops(_mlp(), torch.randn(3, 8))
    assert r.method == "torch.utils.flop_counter" == fl.FLOP_COUNTER_METHOD
    assert r.batch_size == 3 and r.input_shapes == (("0", (3, 8)),)
    assert r.forward_flops == r.eval_flops == 768 + 384
    assert r.backward_flops == 768 + 384 + 384
    assert r.train_flops == 1152 + 1536
    eval_only = fl.measure_flops(_mlp(), torch.randn(3, 8), backward=False)
    assert eval_only.forward_flops == 1152 and eval_only.backward_flops is None
    assert eval_only.train_flops is None
    json.dumps(r.to_dict())


def _cifar_resnet18_on_meta() -> nn.Module:
    from torchvision.models import resnet18

    with torch.device("meta"):  # shapes only: no weight init, no arithmetic
        model = resnet18(weights=None, num_classes=100)
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def test_cifar_resnet18_is_about_1_1_gflops_per_image_and_the_thesis_constant_is_30x_low():
    pytest.importorskip("torchvision")
    model = _cifar_resnet18_on_meta()
    one = fl.measure_flops(model, torch.empty(1, 3, 32, 32, device="meta"))
    # ~0.56 GMACs per 32x32 image; FlopCounterMode counts 2 FLOPs per MAC.
    assert 0.54e9 < one.forward_flops / 2 < 0.58e9
    assert 1.08e9 < one.forward_flops < 1.16e9
    assert 2.9 < one.train_flops / one.forward_flops < 3.0  # the stem needs no input grad
    ratio = one.forward_flops / fl.THESIS_RESNET18_CIFAR_FORWARD_FLOPS
    assert 28 < ratio < 32
    two = fl.measure_flops(model, torch.empty(2, 3, 32, 32, device="meta"), backward=False)
    assert two.forward_flops == 2 * one.forward_flops


def test_measurement_has_no_side_effects():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train()
    buffers = [b.clone() for b in model.buffers()]
    x = torch.randn(4, 8)
    rng = torch.get_rng_state()
    r = fl.measure_flops(model, x)
    assert r.train_flops > r.forward_flops > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers(), strict=True))
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_cache_by_shape():
    model = _mlp()
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    flops = fl.MeasuredFlopModel(model)
    assert flops.method == fl.FLOP_COUNTER_METHOD
    a = flops.train_flops(torch.randn(3, 8))
    assert flops.train_flops(torch.randn(3, 8)) == a and len(calls) == 1
    assert flops.eval_flops(torch.randn(3, 8)) == 1152 and len(calls) == 1  # reuses the record
    assert flops.eval_flops(torch.randn(5, 8)) == 1152 * 5 // 3 and len(calls) == 2
    assert flops.train_flops(torch.randn(5, 8)) == a * 5 // 3 and len(calls) == 3  # adds backward
    assert len(flops.records) == 2
    flops.clear()
    assert flops.records == ()


class _TinyClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(loss=None, logits=self.head(self.emb(input_ids).mean(1)))


def test_mapping_inputs_and_model_outputs_with_logits():
    flops = fl.MeasuredFlopModel(_TinyClassifier())
    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 5)}
    record = flops.record(batch)
    assert record.batch_size == 2
    assert record.input_shapes == (("input_ids", (2, 5)), ("attention_mask", (2, 5)))
    # the head needs its input grad too: the embedding is trainable
    assert record.forward_flops == 48 and record.backward_flops == 2 * 48
    longer = {"input_ids": torch.zeros(2, 7, dtype=torch.long), "attention_mask": torch.ones(2, 7)}
    flops.train_flops(longer)
    assert len(flops.records) == 2  # a new padded length is a new shape


def test_frozen_model_has_zero_backward():
    model = _mlp().requires_grad_(False)
    assert fl.measure_flops(model, torch.randn(2, 8)).backward_flops == 0


def test_measure_validation():
    with pytest.raises(ValueError, match=r"model must be a torch\.nn\.Module, got int"):
        fl.measure_flops(3, torch.randn(1))
    with pytest.raises(ValueError, match="inputs must contain at least one tensor"):
        fl.measure_flops(_mlp(), {"x": 1})


def test_accumulator_follows_the_thesis():
    acc = fl.FlopAccumulator()
    assert acc.method == fl.FLOP_COUNTER_METHOD
    acc.add_train_batch(3e12)
    acc.add_eval_batch(1e12)
    assert acc.finish_epoch() == pytest.approx(4.0)
    acc.add_train_batch(2e12)
    assert acc.current_epoch_flops == 2e12 and acc.epoch_tflops == [pytest.approx(4.0)]
    assert acc.total_flops == 6e12 and acc.total_tflops == pytest.approx(6.0)
    restored = fl.FlopAccumulator.from_state_dict(json.loads(json.dumps(acc.state_dict())))
    assert restored == acc
    for bad in (math.nan, math.inf, -1.0, True, "1"):
        with pytest.raises(ValueError, match="flops must be"):
            acc.add_train_batch(bad)


def test_legacy_thesis_constants_reproduce_archived_numbers():
    # §2.1.9: one CIFAR epoch = 390 full batches + 80, plus a 10,000-image eval = 5.92 TFLOPs.
    acc = fl.FlopAccumulator(method=fl.THESIS_ANALYTIC_METHOD)
    for b in [128] * 390 + [80]:
        acc.add_train_batch(fl.thesis_resnet18_cifar_batch_flops(b, train=True))
    for b in [128] * 78 + [16]:
        acc.add_eval_batch(fl.thesis_resnet18_cifar_batch_flops(b, train=False))
    assert acc.finish_epoch() == pytest.approx(5.92)
    diag = 4 * fl.thesis_resnet18_cifar_batch_flops(50_000, train=False)
    assert diag == pytest.approx(7.4e12)  # §2.1.7 diagnostics
    b, t, h, f, layers = 2, 4, 768, 3072, 6
    forward = b * (layers * (4 * t * h * h + 2 * t * t * h + 2 * t * h * f) + 2 * t * h + 2 * h * 2)
    assert fl.thesis_distilbert_batch_flops(b, t, train=False) == forward
    assert fl.thesis_distilbert_batch_flops(b, t, train=True) == 3 * forward
    with pytest.raises(ValueError, match="batch_size must be an int > 0, got 0"):
        fl.thesis_resnet18_cifar_batch_flops(0, train=True)
    with pytest.raises(ValueError, match="seq_len must be an int > 0, got 0"):
        fl.thesis_distilbert_batch_flops(1, 0, train=False)


@pytest.mark.parametrize("module", ["flops.py", "label_noise.py"])
def test_modules_do_not_import_heavy_dependencies_at_top_level(module):
    path = Path(fl.__file__).with_name(module)
    heavy = {"torchvision", "transformers", "datasets", "numpy"}
    for node in ast.parse(path.read_text()).body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        assert not {n.split(".")[0] for n in names} & heavy


def test_cpu_attention_is_counted_like_the_cuda_kernels():
    """torch's counter has no formula for the CPU flash-attention op; ours adds the same count."""
    from torch.utils import flop_counter

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))

        def forward(self, q: torch.Tensor) -> torch.Tensor:
            q = q * self.scale
            return torch.nn.functional.scaled_dot_product_attention(q, q, q)

    q = torch.randn(2, 4, 16, 8)
    record = fl.measure_flops(Attention(), q, loss_fn=lambda out: out.sum())
    assert record.forward_flops == flop_counter.sdpa_flop_count(q.shape, q.shape, q.shape) > 0
    assert record.backward_flops == flop_counter.sdpa_backward_flop_count(
        q.shape, q.shape, q.shape, q.shape
    )


class _PairModel(nn.Module):
    """Takes its batch as one (x, scale) pair, and records how each call passed it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)
        self.calls: list[tuple[int, tuple[str, ...]]] = []

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        self.calls.append((len(args), tuple(sorted(kwargs))))
        (pair,) = args
        x, scale = pair  # type: ignore[misc]
        return self.linear(x) * scale


def test_flops_are_counted_on_the_call_training_makes():
    # One helper calls the model for training, evaluation and the FLOP count: a tuple batch is
    # the one argument in each (the FLOP counter once unpacked it, counting another call).
    from aees.runner import passes
    from aees.runner.tasks import call_model

    assert passes.call_model is call_model and fl.call_model is call_model
    model = _PairModel()
    batch = (torch.randn(3, 8), torch.tensor(2.0))
    call_model(model, batch)  # as the training step calls it
    trained = model.calls[-1]
    r = fl.measure_flops(model, batch)
    assert model.calls[-1] == trained == (1, ())
    assert r.forward_flops == 2 * 3 * 8 * 4 and r.backward_flops == 2 * 3 * 8 * 4
    assert fl.MeasuredFlopModel(model).train_flops(batch) == r.train_flops
    # a mapping: keyword arguments, in training and in the count alike
    kw = nn.Linear(8, 4)
    assert call_model(kw, {"input": batch[0]}).shape == (3, 4)
    assert fl.measure_flops(kw, {"input": batch[0]}).forward_flops == 2 * 3 * 8 * 4
