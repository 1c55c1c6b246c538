"""Lightning: AEESOptimizer + AEESCallback equal a plain loop; records, resume, AMP, DDP."""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lib_helpers import assert_logs_equal, assert_params_equal
from lightning_helpers import AEES_KW, TinyModule, loader, plain_loop, trainer

from aees.integrations.lightning import AEESCallback

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _fit(module, steps=None, epochs=None, accumulate=1, tmp_path=None, ckpt=None, **kw):
    fit = trainer(tmp_path, max_steps=steps or -1, max_epochs=epochs,
                  accumulate_grad_batches=accumulate, callbacks=[AEESCallback()], **kw)  # fmt: skip
    n = (steps or 12) * accumulate
    fit.fit(module, train_dataloaders=loader(n), ckpt_path=ckpt)
    return fit, fit.optimizers[0]


# Not slow although a subprocess: a bare import in a fresh interpreter (1-3 s, no training)
# is the only way to see what `import aees` loads, and the fast loop should check it.
@pytest.mark.slow
def test_import_aees_and_its_integrations_package_stays_torch_only():
    code = (
        "import sys, aees, aees.integrations;"
        "heavy = {'lightning', 'pytorch_lightning', 'lightning_fabric', 'transformers',"
        " 'accelerate', 'tensorboard', 'mlflow'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("accumulate", "scheduler"), [(1, False), (2, True)])
def test_fit_equals_the_plain_loop(accumulate, scheduler):
    """Closure + accumulate_grad_batches + a step-interval LR scheduler: the same AEES run."""
    module = TinyModule(scheduler=scheduler)
    fit, opt = _fit(module, steps=12, accumulate=accumulate)
    ref_module, ref = plain_loop(12, accumulate, scheduler)
    assert opt.num_steps == fit.global_step == 12
    assert_logs_equal(opt.get_logs(), ref.get_logs())
    assert_params_equal(module, ref_module)
    assert len(set(opt.get_logs()["selected_combined_names"])) >= 2


def test_bf16_mixed_on_cpu_equals_the_plain_loop_under_autocast():
    module = TinyModule()
    _, opt = _fit(module, steps=10, precision="bf16-mixed")
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)
    ref_module, ref = plain_loop(10, autocast=autocast)
    assert_logs_equal(opt.get_logs(), ref.get_logs())
    assert_params_equal(module, ref_module)


def test_16_mixed_losses_reach_aees_unscaled_and_skipped_steps_are_dropped():
    """fp16 with a GradScaler (the plugin Lightning builds for precision='16-mixed' on a GPU):
    a large initial scale overflows some steps, which the scaler skips."""
    from lightning.pytorch.plugins import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**20)
    module = TinyModule()
    fit, opt = _fit(module, steps=14, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    done = [*module.steps_before, opt.num_steps]
    ran = [after > before for before, after in itertools.pairwise(done)]
    assert opt.skipped_steps == ran.count(False) > 0 and fit.global_step == 14
    counted = [loss for loss, r in zip(module.seen_losses, ran, strict=True) if r]
    logs = opt.get_logs()
    n = AEES_KW["episode_length"]
    assert logs["episode_start_losses"] == [counted[0], counted[n]]  # unscaled, exactly
    assert logs["episode_end_losses"] == [counted[n - 1], counted[2 * n - 1]]


def test_episode_records_are_written_through_the_trainers_loggers(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    module = TinyModule()
    logger = CSVLogger(tmp_path, name="run", version=0)
    fit, opt = _fit(module, steps=12, tmp_path=tmp_path, logger=logger)
    rows = list(csv.DictReader((tmp_path / "run" / "version_0" / "metrics.csv").open()))
    rows = [r for r in rows if r.get("aees/reward")]
    logs = opt.get_logs()
    assert [float(r["aees/reward"]) for r in rows] == logs["episode_rewards"]  # 2 closed
    assert [float(r["aees/lr_multiplier"]) for r in rows] == logs["selected_lr_values"]
    assert [int(r["step"]) for r in rows] == [5, 10]  # trainer.global_step after the close
    assert fit.global_step == 12


def test_resume_from_a_checkpoint_equals_an_uninterrupted_fit(tmp_path):
    """Cut at an epoch end in the middle of an episode (12 steps/epoch, episodes of 5 steps),
    with gradient accumulation and a step-interval scheduler."""
    full_module = TinyModule(scheduler=True)
    _, full = _fit(full_module, epochs=2, accumulate=2, tmp_path=tmp_path / "full")

    first = TinyModule(scheduler=True)
    fit, _ = _fit(first, epochs=1, accumulate=2, tmp_path=tmp_path / "a")
    ckpt = tmp_path / "epoch1.ckpt"
    fit.save_checkpoint(ckpt)

    resumed_module = TinyModule(scheduler=True)
    with torch.no_grad():
        for p in resumed_module.parameters():
            p.add_(1.0)  # everything must come from the checkpoint
    fit_b, resumed = _fit(resumed_module, epochs=2, accumulate=2, tmp_path=tmp_path / "b",
                          ckpt=str(ckpt))  # fmt: skip
    assert resumed.num_steps == full.num_steps == fit_b.global_step == 24
    assert_logs_equal(full.get_logs(), resumed.get_logs())
    assert_params_equal(full_module, resumed_module)


def test_misconfigurations_fail_with_one_clear_error():
    class PlainModule(TinyModule):
        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2)

    with pytest.raises(TypeError, match="exactly one AEESOptimizer"):
        _fit(PlainModule(), steps=2)
    from lightning.pytorch.plugins import MixedPrecision

    scaler = torch.amp.GradScaler("cpu")
    module = TinyModule(aees_kw={**AEES_KW, "grad_scaler": scaler})
    with pytest.raises(ValueError, match="drop grad_scaler"):
        _fit(module, steps=2, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])


@pytest.mark.slow
def test_ddp_two_cpu_processes_take_identical_decisions(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(HERE / "lightning_ddp_worker.py"), str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["first_loss"] != r1["first_loss"]  # the ranks saw different data
    assert r0["seed"] == r1["seed"]
    assert_logs_equal(r0["logs"], r1["logs"])
    assert r0["params"] == r1["params"]
    assert len(set(r0["logs"]["selected_combined_names"])) >= 2


@pytest.mark.slow  # a subprocess (issue 20: subprocess tests are not in the fast loop)
def test_the_lightning_example_runs_in_smoke_mode(tmp_path):
    out = tmp_path / "records.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lightning_digits.py"), "--smoke",
         "--records", str(out), "--root", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(out.read_text())
    assert len(records) == 4  # 2 epochs x 8 steps, episodes of 4 steps
    metrics = csv.DictReader((tmp_path / "digits" / "version_0" / "metrics.csv").open())
    logged = [float(r["aees/reward"]) for r in metrics if r.get("aees/reward")]
    assert logged == [r["reward"] for r in records]  # the records reached the Trainer's logger


_KEY = "cannot load AEES state: state_dict['aees']['scheduler']['manager']['controllers']['lr']"


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda counts: [math.nan, *counts[1:]], "['counts'][0] is nan; expected a finite number."),
        (lambda counts: counts[:2], "['counts'] has 2 entries; expected 3."),  # an arm short
    ],
    ids=["nan-count", "arm-count"],
)
def test_resume_from_a_checkpoint_with_a_corrupted_aees_state_fails_before_training(
    tmp_path, corrupt, message
):
    """A .ckpt whose AEES part was edited on disk: ``fit(ckpt_path=...)`` raises one ValueError
    naming the key while Lightning restores the optimizer (not an IndexError steps later), no
    step runs, and the AEESOptimizer keeps its fresh state (no half-loaded bandit)."""
    fit, _ = _fit(TinyModule(), steps=7, tmp_path=tmp_path / "a")
    ckpt = tmp_path / "bad.ckpt"
    fit.save_checkpoint(ckpt)
    checkpoint = torch.load(ckpt, weights_only=True)
    lr = checkpoint["optimizer_states"][0]["aees"]["scheduler"]["manager"]["controllers"]["lr"]
    lr["counts"] = corrupt(lr["counts"])
    torch.save(checkpoint, ckpt)

    module = TinyModule()
    resumed = trainer(tmp_path / "b", max_steps=14, callbacks=[AEESCallback()])
    with pytest.raises(ValueError) as err:
        resumed.fit(module, train_dataloaders=loader(14), ckpt_path=str(ckpt))
    assert str(err.value) == _KEY + message
    assert module.seen_losses == []  # not one training step ran
    opt = resumed.optimizers[0]
    assert opt.num_steps == 0 and opt.optimizer.state_dict()["state"] == {}
    assert opt.state_dict()["aees"] == TinyModule().configure_optimizers().state_dict()["aees"]
