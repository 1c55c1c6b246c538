"""``accelerator.prepare(AEESOptimizer(...))`` with ``accelerator.backward``,
``accelerator.accumulate``, bf16 mixed precision on the CPU and ``save_state`` / ``load_state``."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lib_helpers import batch, tiny_model

accelerate = pytest.importorskip("accelerate")
from accelerate.state import AcceleratorState, GradientState  # noqa: E402

from aees import AEESOptimizer, EpisodeRecord  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MICRO_BATCHES = 12  # accumulation 2: 6 optimizer steps
AEES_KW = {"lr_candidates": [0.5, 1.0, 2.0], "noise_candidates": [0.0, 0.01], "episode_length": 2}


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    """Accelerate keeps process-wide singletons; each test (and each run) starts clean."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    torch.set_num_threads(before)


class Run:
    """A stock Accelerate loop; the two AEES lines are marked."""

    def __init__(self, mixed_precision: str = "no") -> None:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        self.accelerator = accelerate.Accelerator(
            cpu=True, mixed_precision=mixed_precision, gradient_accumulation_steps=2
        )
        data = [batch(i) for i in range(MICRO_BATCHES)]
        dataset = torch.utils.data.TensorDataset(
            torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])
        )
        loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False)
        model = tiny_model()
        self.records: list[EpisodeRecord] = []
        self.aees = AEESOptimizer(  # AEES
            torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01),
            seed=0,
            on_episode_end=self.records.append,
            **AEES_KW,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(self.aees, lambda s: 1.0 / (1 + 0.1 * s))
        self.model, self.optimizer, self.loader, self.scheduler = self.accelerator.prepare(
            model, self.aees, loader, scheduler
        )
        self.losses: list[float] = []

    def train(self, skip: int = 0, stop: int | None = None, save_to: Path | None = None) -> None:
        acc, loader = self.accelerator, self.loader
        if skip:
            loader = acc.skip_first_batches(loader, skip)
        for i, (x, y) in enumerate(loader, start=skip):
            with acc.accumulate(self.model):
                loss = torch.nn.functional.cross_entropy(self.model(x), y)
                acc.backward(loss)
                self.aees.observe_loss(loss)  # AEES
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
            self.losses.append(float(loss.detach()))
            if save_to is not None and i + 1 == stop:
                acc.save_state(str(save_to))


def test_prepare_keeps_the_aees_optimizer_and_accumulates(tmp_path):
    """The prepared optimizer wraps ours (shared groups); under ``accumulate`` AEES steps once
    per window and each step's loss is the mean of the window's micro-batch losses."""
    run = Run()
    assert run.optimizer.optimizer is run.aees
    assert run.optimizer.param_groups is run.aees.param_groups
    run.train()
    assert run.aees.num_steps == MICRO_BATCHES // 2 and run.aees.skipped_steps == 0
    step_losses = [sum(run.losses[i : i + 2]) / 2 for i in range(0, MICRO_BATCHES, 2)]
    assert [r.start_step for r in run.records] == [0, 2, 4]
    for r in run.records:
        window = step_losses[r.start_step : r.start_step + r.steps]
        assert r.mean_loss == pytest.approx(sum(window) / len(window), rel=1e-6)
    # the scheduler, stepped per window, saw the shared groups (base lr x 1/(1 + 0.1 s))
    assert run.aees.param_groups[0]["lr"] == pytest.approx(1e-2 / 1.6)


def test_bf16_mixed_precision_on_cpu():
    try:
        run = Run("bf16")
    except (ValueError, RuntimeError) as err:  # depends on the installed versions
        pytest.skip(f"bf16 on the CPU is not supported by this accelerate/torch: {err}")
    run.train()
    assert run.accelerator.mixed_precision == "bf16"
    assert run.aees.num_steps == MICRO_BATCHES // 2
    assert all(r.reward is not None for r in run.records)
    assert all(torch.isfinite(p).all() for p in run.model.parameters())


def test_save_state_load_state_resumes_exactly(tmp_path):
    """``save_state`` after window 3 (mid-episode); a fresh process-equivalent run that
    ``load_state``s it and skips the consumed batches ends bit-identical to the uninterrupted
    one: parameters, AEES logs and optimizer state."""
    full = Run()
    full.train(stop=6, save_to=tmp_path / "ckpt")
    resumed = Run()
    resumed.accelerator.load_state(str(tmp_path / "ckpt"))
    assert resumed.aees.num_steps == 3
    resumed.train(skip=6)
    for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.aees.get_logs() == full.aees.get_logs()
    assert [r.episode_index for r in resumed.records] == [1, 2]  # episode 0 closed before it
    assert resumed.records == full.records[1:]
    a, b = full.aees.state_dict(), resumed.aees.state_dict()
    assert a["aees"] == b["aees"]
    for key, state in a["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][key][name]))


@pytest.mark.slow  # a subprocess (issue 20: subprocess tests are not in the fast loop)
def test_example_script_smoke(tmp_path):
    """``examples/accelerate_digits.py --smoke``: trains, saves, resumes and says so."""
    pytest.importorskip("sklearn")
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "accelerate_digits.py"), "--smoke",
         "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed run matches: True" in done.stdout
    arms = next(line for line in done.stdout.splitlines() if line.startswith("arms per episode"))
    assert arms.count("lr") >= 5  # 2 epochs of 15 steps, episodes of 5
    assert (tmp_path / "run" / "checkpoint").is_dir()


def test_load_state_with_a_corrupted_aees_state_fails_before_training(tmp_path):
    """``save_state``'s ``optimizer.bin`` edited on disk (a NaN bandit count): ``load_state``
    raises one ValueError naming the key (not an IndexError steps later), and the AEESOptimizer
    keeps its fresh state, both parts (no half-loaded bandit or moments)."""
    Run().train(stop=6, save_to=tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "optimizer.bin"
    saved = torch.load(path, weights_only=True)
    saved["aees"]["scheduler"]["manager"]["controllers"]["lr"]["counts"][1] = math.nan
    torch.save(saved, path)

    resumed = Run()
    before = resumed.aees.state_dict()
    with pytest.raises(ValueError) as err:
        resumed.accelerator.load_state(str(tmp_path / "ckpt"))
    assert str(err.value) == (
        "cannot load AEES state: state_dict['aees']['scheduler']['manager']['controllers']['lr']"
        "['counts'][1] is nan; expected a finite number."
    )
    after = resumed.aees.state_dict()
    assert resumed.aees.num_steps == 0 and after["state"] == before["state"] == {}
    assert after["aees"] == before["aees"]
