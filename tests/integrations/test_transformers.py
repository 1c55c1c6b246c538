"""AEES in the Hugging Face ``Trainer`` (``aees.integrations.transformers``), on the CPU, offline:
the tiny DistilBERT + WordPiece checkpoint and the SST-2 layout of ``nlp_fixtures``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")
pytest.importorskip("accelerate")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from nlp_fixtures import write_sst2, write_tiny_distilbert  # noqa: E402

from aees import AEESOptimizer  # noqa: E402
from aees.integrations.transformers import AEESTrainer, AEESTrainerMixin  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
AEES_KW = {"lr_candidates": [0.5, 1.0, 2.0], "noise_candidates": [0.0, 1e-3], "episode_length": 2}
N_TRAIN = 32  # batch 4 x accumulation 2: 4 optimizer steps per epoch


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    return {
        "model": write_tiny_distilbert(root / "tiny-distilbert"),
        "data": write_sst2(root / "sst2", N_TRAIN, 8),
    }


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build(fx, out: Path, trainer_cls=AEESTrainer, **overrides):
    tokenizer = transformers.AutoTokenizer.from_pretrained(fx["model"], local_files_only=True)
    raw = datasets.load_from_disk(str(fx["data"]))["train"]
    train = raw.map(lambda b: tokenizer(b["sentence"], truncation=True), batched=True)
    train = train.remove_columns(["sentence", "idx"])
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        fx["model"], num_labels=2, local_files_only=True
    )
    options = {
        "output_dir": str(out),
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "learning_rate": 5e-3,
        "lr_scheduler_type": "linear",
        "warmup_steps": 1,
        "weight_decay": 0.01,
        "max_steps": 6,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 3,
        "report_to": [],
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    options.update(overrides.pop("args", {}))
    return trainer_cls(
        model=model,
        args=transformers.TrainingArguments(**options),
        train_dataset=train,
        data_collator=transformers.DataCollatorWithPadding(tokenizer),
        aees=overrides.pop("aees", AEES_KW),
        **overrides,
    )


def episodes(trainer) -> list[dict]:
    return [e for e in trainer.state.log_history if "aees/episode" in e]


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_trainer_wraps_its_optimizer_and_logs_window_losses(fx, tmp_path):
    """The Trainer's optimizer (weight-decay groups) and linear scheduler are kept; with
    accumulation 2, each step's loss reaching AEES is the window's (what the Trainer logs as
    ``loss``), not half of it; the records are in ``log_history`` at the closing step."""
    trainer = build(fx, tmp_path / "out")
    trainer.train()
    opt = trainer.aees_optimizer
    assert isinstance(opt, AEESOptimizer) and isinstance(opt, torch.optim.Optimizer)
    assert trainer.optimizer.optimizer is opt  # Accelerate's wrapper around ours
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert opt.param_groups is opt.optimizer.param_groups
    assert trainer.lr_scheduler.get_last_lr()[0] == 0.0  # linear decay to 0 at max_steps
    assert opt.num_steps == 6

    records = episodes(trainer)
    assert [r["aees/start_step"] for r in records] == [0, 2, 4]
    assert [r["step"] for r in records] == [2, 4, 6]  # logged after the closing step
    assert all(r["aees/steps"] == 2 for r in records)
    assert all(r["aees/lr_multiplier"] in AEES_KW["lr_candidates"] for r in records)
    logged = {e["step"]: e["loss"] for e in trainer.state.log_history if "loss" in e}
    for r in records:
        window = [logged[s] for s in range(r["aees/start_step"] + 1, r["step"] + 1)]
        assert r["aees/mean_loss"] == pytest.approx(sum(window) / len(window), abs=1e-3)
    logs = opt.get_logs()
    assert [r["aees/reward"] for r in records] == pytest.approx(logs["episode_rewards"])


def test_resume_from_checkpoint_is_exact(fx, tmp_path):
    """``save_steps=3`` (mid-episode, mid-epoch) + ``resume_from_checkpoint``: the same
    parameters, AEES logs and episode records as the uninterrupted run, bit for bit."""
    full = build(fx, tmp_path / "a")
    full.train()
    checkpoint = tmp_path / "a" / "checkpoint-3"
    saved = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True)
    assert saved["aees"]["scheduler"]["num_steps"] == 3  # the AEES state is in the checkpoint

    resumed = build(fx, tmp_path / "b")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    a, b = params(full.model), params(resumed.model)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.aees_optimizer.get_logs() == full.aees_optimizer.get_logs()
    assert episodes(resumed) == episodes(full)


def test_bf16_on_cpu(fx, tmp_path):
    """``bf16=True`` on the CPU (autocast through Accelerate): losses reach AEES, episodes are
    scored, parameters stay finite."""
    try:
        transformers.TrainingArguments(output_dir=str(tmp_path / "probe"), use_cpu=True, bf16=True)
    except (ValueError, RuntimeError) as err:  # depends on the installed versions
        pytest.skip(f"bf16 on the CPU is not supported by this transformers/accelerate: {err}")
    trainer = build(fx, tmp_path / "out", args={"bf16": True, "save_strategy": "no"})
    trainer.train()
    assert trainer.accelerator.mixed_precision == "bf16"
    records = episodes(trainer)
    assert len(records) == 3 and all(r["aees/reward"] is not None for r in records)
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_mixin_with_users_own_trainer_subclass_and_bad_keywords(fx, tmp_path):
    """The mixin composes with a user's Trainer subclass (its overrides still run); keywords the
    Trainer owns, or invalid ones, fail at construction naming the keyword."""
    calls = []

    class MyTrainer(transformers.Trainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            calls.append(1)
            return super().compute_loss(model, inputs, *args, **kwargs)

    class MyAEESTrainer(AEESTrainerMixin, MyTrainer):
        pass

    trainer = build(
        fx,
        tmp_path / "out",
        trainer_cls=MyAEESTrainer,
        args={"max_steps": 2, "save_strategy": "no"},
    )
    trainer.train()
    assert len(calls) == 4 and trainer.aees_optimizer.num_steps == 2
    assert len(episodes(trainer)) == 1
    with pytest.raises(ValueError, match="lr_scheduler"):
        build(fx, tmp_path / "x", aees={"lr_scheduler": object()})
    with pytest.raises(ValueError, match="episode_length"):
        build(fx, tmp_path / "y", aees={"episode_length": 0})


@pytest.mark.slow  # a subprocess (issue 20: subprocess tests are not in the fast loop)
def test_example_script_smoke(fx, tmp_path):
    """``examples/hf_trainer_text.py --smoke`` on the offline fixtures."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "hf_trainer_text.py"), "--smoke",
         "--model-name", str(fx["model"]), "--data-dir", str(fx["data"]), "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    records = [e for e in state["log_history"] if "aees/episode" in e]
    assert records and all(r["aees/mean_loss"] > 0 for r in records)
    assert "episodes" in done.stdout


def test_resume_from_a_checkpoint_with_a_corrupted_aees_state_fails_before_training(fx, tmp_path):
    """``checkpoint-3/optimizer.pt`` edited on disk (the LR bandit one arm short):
    ``train(resume_from_checkpoint=...)`` raises one ValueError naming the key while the Trainer
    loads the optimizer (not an IndexError steps later); no step runs, nothing is saved, and the
    AEESOptimizer keeps its fresh state (no half-loaded bandit)."""
    build(fx, tmp_path / "a", args={"max_steps": 3}).train()
    path = tmp_path / "a" / "checkpoint-3" / "optimizer.pt"
    saved = torch.load(path, map_location="cpu", weights_only=True)
    lr = saved["aees"]["scheduler"]["manager"]["controllers"]["lr"]
    lr["counts"] = lr["counts"][:2]
    torch.save(saved, path)

    resumed = build(fx, tmp_path / "b")
    with pytest.raises(ValueError) as err:
        resumed.train(resume_from_checkpoint=str(path.parent))
    assert str(err.value) == (
        "cannot load AEES state: state_dict['aees']['scheduler']['manager']['controllers']['lr']"
        "['counts'] has 2 entries; expected 3."
    )
    opt = resumed.aees_optimizer
    assert opt.num_steps == 0 and opt.optimizer.state_dict()["state"] == {}
    fresh = build(fx, tmp_path / "c")
    fresh.create_optimizer()
    assert opt.state_dict()["aees"] == fresh.aees_optimizer.state_dict()["aees"]
    saved_state = json.loads((path.parent / "trainer_state.json").read_text())
    assert resumed.state.log_history == saved_state["log_history"]  # no step ran after it
    assert not list((tmp_path / "b").glob("checkpoint-*"))
