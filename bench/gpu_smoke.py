"""Run every CUDA path a user runs, each checked, one line per path (bench/README.md).

Each path runs in a child process of its own with a time limit, so one crash or hang costs only
that path; the line says PASS, FAIL (with the error's last line) or SKIP (a package the path
needs is not installed), and the seconds it took. Exit status 1 when a path failed.

Paths (``--list`` prints them): ``aees train cifar100`` on a CIFAR-100-format fixture (AdamW +
AEES-LR + noise; ``--precision fp16`` with the scaler's skipped steps recorded; fast mode with no
recompile after the first epoch; SIGKILL + ``--resume`` equal to an uninterrupted run),
``aees train image`` (a torchvision and a ``timm:`` model), ``aees train text`` (a tiny local
BERT), every peer optimizer under AEES, ``AEESOptimizer`` under Lightning (``16-mixed``,
``bf16-mixed``), the HF Trainer (``fp16=True``) and Accelerate (``fp16``), each resumed from a
checkpoint and compared with the uninterrupted run, ``torchrun --nproc_per_node=1`` (NCCL),
``aees sweep --gpus 0 --runs-per-gpu 2`` on a 4-run plan, and the benchmarks
(``bench/gpu_checks.py``, ``bench/epoch.py``, ``bench/overhead.py`` with ``bench/run_gpu.sh``'s
shapes).

``--device cpu`` is the dry run that ``make test`` runs (tests/bench/test_gpu_smoke.py): the same
paths and checks on tiny shapes, compile backend ``eager``, gloo instead of NCCL, and, where the
CPU has no such mode, bf16 for fp16 (Lightning ``16-mixed``, the HF Trainer, Accelerate) and
fp32 for the fast path; its timings mean nothing.

    python bench/gpu_smoke.py                     # on the GPU machine: under 6 minutes on an H100
    python bench/gpu_smoke.py --device cpu --skip bench
    python bench/gpu_smoke.py --only cifar100-resume text-bert
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
FIXTURES = REPO / "tests" / "helpers"
#: Where the children find the package, the fixture writers and the examples without an install.
PATHS = [
    str(p) for p in (REPO / "src", BENCH, FIXTURES, REPO / "tests", REPO / "tests" / "integrations")
] + [str(REPO / "examples")]
SKIP_STATUS = 3


class Failed(Exception):
    """A check of a path did not hold; the message is the line printed."""


@dataclasses.dataclass(frozen=True)
class Ctx:
    """What a path knows: the device, whether this is the CPU dry run, and a scratch folder."""

    device: str
    work: Path

    @property
    def cpu(self) -> bool:
        return self.device == "cpu"

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
        env |= {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        # deterministic cuBLAS, so that a resumed run can equal an uninterrupted one bit for bit
        env["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        env["PYTHONPATH"] = os.pathsep.join([*PATHS, env.get("PYTHONPATH", "")])
        if self.cpu:
            env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        return env

    def fixture(self, name: str) -> Path:
        """A fixture in its real on-disk format, written once per work folder."""
        path = self.work / "fixtures" / name
        if path.exists():
            return path
        if name == "cifar100":
            from cifar_fixture import write_cifar100

            write_cifar100(path, 64 if self.cpu else 2048, 32 if self.cpu else 512, seed=1)
        elif name == "images":
            from image_fixtures import write_image_folder

            size = 16 if self.cpu else 32
            write_image_folder(path, per_class=8 if self.cpu else 64, size=size)
            write_image_folder(
                path, per_class=3 if self.cpu else 16, size=size, split="val", seed=1
            )
        elif name == "bert":
            from nlp_fixtures import write_tiny_bert

            write_tiny_bert(path, num_labels=3)
        elif name == "text":
            from nlp_fixtures import text_rows, write_text_files

            n = 48 if self.cpu else 512
            write_text_files(path, {"train": text_rows(n, 4), "test": text_rows(16, 5)})
        elif name == "distilbert":
            from nlp_fixtures import write_tiny_distilbert

            write_tiny_distilbert(path)
        elif name == "sst2":
            from nlp_fixtures import write_sst2

            write_sst2(path, 32, 8)
        else:
            raise KeyError(name)
        return path

    def run(self, *argv: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
        """Run a command; its output (stdout and stderr, in order) or :class:`Failed`."""
        proc = subprocess.run(
            list(argv),
            cwd=self.work,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            lines = [line for line in proc.stdout.splitlines() if line.strip()]
            raise Failed(f"exit {proc.returncode}: {lines[-1] if lines else '(no output)'}")
        return proc.stdout

    def aees(self, *argv: str, **kw: Any) -> str:
        return self.run(sys.executable, "-m", "aees.cli", *argv, **kw)


@dataclasses.dataclass(frozen=True)
class SmokePath:
    name: str
    needs: tuple[str, ...]
    check: Callable[[Ctx], str]
    group: str = "paths"
    #: seconds on a GPU where the path needs more than ``--timeout`` (compiling, 3 runs, ...)
    minimum_s: float = 0.0


REGISTRY: list[SmokePath] = []


def path(name: str, *needs: str, group: str = "paths", minimum_s: float = 0.0) -> Callable:
    def register(fn: Callable[[Ctx], str]) -> Callable[[Ctx], str]:
        REGISTRY.append(SmokePath(name, needs, fn, group, minimum_s))
        return fn

    return register


def load(path_: Path) -> dict[str, Any]:
    from aees.results import load_run_result

    return load_run_result(path_).to_dict()


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


# ------------------------------------------------------------------------- aees train cifar100

AEES_DUAL = ["--control-mode", "adaptive", "--lr-candidates", "0.5,1,2"]
AEES_DUAL += ["--noise-candidates", "0,0.01", "--episode-length", "3"]


def cifar_args(ctx: Ctx, out: str, epochs: int = 2) -> list[str]:
    return [
        "train", "cifar100", "--data-dir", str(ctx.fixture("cifar100")), "--epochs", str(epochs),
        "--batch-size", "16" if ctx.cpu else "128", "--device", ctx.device, "--output", out,
        "--val-split", "8" if ctx.cpu else "256", *AEES_DUAL,
    ]  # fmt: skip


@path("cifar100-aees")
def cifar100_aees(ctx: Ctx) -> str:
    ctx.aees(*cifar_args(ctx, "aees.json"), "--quiet")
    result = load(ctx.work / "aees.json")
    arms = result["episode_logs"]["selected_combined_names"]
    expect(len(arms) > 0, "no AEES episode ran")
    expect(
        result["config"]["device"].startswith(ctx.device), f"ran on {result['config']['device']}"
    )
    return f"{len(arms)} episodes, val acc {result['final_val_accuracy']:.3f}"


@path("cifar100-fp16")
def cifar100_fp16(ctx: Ctx) -> str:
    # the CPU has no fp16 autocast + GradScaler path: the dry run checks the same fields in bf16
    precision = "bf16" if ctx.cpu else "fp16"
    ctx.aees(*cifar_args(ctx, "fp16.json"), "--precision", precision, "--quiet")
    result = load(ctx.work / "fp16.json")
    if ctx.cpu:
        expect(result["config"]["precision"] == "bf16", "the precision is not recorded")
        return "bf16 on the CPU (fp16 needs CUDA): the scaler check runs on the GPU only"
    skipped = result["diagnostics"].get("scaler_skipped_steps")
    expect(isinstance(skipped, int), "diagnostics.scaler_skipped_steps is not recorded")
    per_episode = result["episode_logs"].get("episode_scaler_skipped_steps")
    expect(per_episode is not None, "episode_logs.episode_scaler_skipped_steps is missing")
    return f"scaler skipped {skipped} steps"


@path("cifar100-fast", minimum_s=300)
def cifar100_fast(ctx: Ctx) -> str:
    fast = ["--compile", "--channels-last"]
    if ctx.cpu:  # no bf16 convolutions, cuDNN or TF32 on the CPU: the same flags otherwise
        fast += ["--compile-backend", "eager"]
    else:
        fast += ["--precision", "bf16", "--cudnn-benchmark", "--tf32"]
    env = {**ctx.env, "TORCH_LOGS": "recompiles"}
    output = ctx.aees(*cifar_args(ctx, "fast.json", epochs=3), *fast, env=env, timeout=400)
    lines = output.splitlines()
    first_epoch = next((i for i, line in enumerate(lines) if "| epoch 1/3 |" in line), None)
    expect(first_epoch is not None, "no status line for epoch 1")
    late = [line for line in lines[first_epoch:] if "Recompiling function" in line]
    expect(not late, f"{len(late)} recompiles after the first epoch: {late[:1]}")
    result = load(ctx.work / "fast.json")
    expect("-fast-" in result["variant"], f"variant {result['variant']} is not marked fast")
    arms = set(result["episode_logs"]["selected_combined_names"])
    return f"0 recompiles after epoch 1 over {len(arms)} arms, {result['variant']}"


def wait_and_kill(proc: subprocess.Popen, marker: Path, timeout: float) -> bool:
    """SIGKILL ``proc`` once ``marker`` exists; False if it finished first."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            proc.kill()
            raise Failed(f"no checkpoint at {marker} after {timeout:.0f} s")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return True


def same_results(a: Path, b: Path) -> list[str]:
    """The fields of two results that differ, beyond time and process (bench/result_parity.py)."""
    from result_parity import differences

    ignore = {"output", "checkpoint_dir", "resume", "quiet"}
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    for result in (first, second):
        result["config"] = {k: v for k, v in result["config"].items() if k not in ignore}
    return differences(first, second, str(a.parent), str(b.parent))


@path("cifar100-resume", minimum_s=300)
def cifar100_resume(ctx: Ctx) -> str:
    from aees.runner.engine import CHECKPOINT_NAME

    ctx.aees(*cifar_args(ctx, "reference.json", epochs=3), "--quiet")
    ckpt = ctx.work / "ckpt"
    argv = [sys.executable, "-m", "aees.cli", *cifar_args(ctx, "resumed.json", epochs=3)]
    proc = subprocess.Popen(
        [*argv, "--checkpoint-dir", str(ckpt), "--quiet"],
        cwd=ctx.work,
        env=ctx.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = wait_and_kill(proc, ckpt / CHECKPOINT_NAME, timeout=300)
    out = ctx.aees(*argv[3:], "--checkpoint-dir", str(ckpt), "--resume")
    expect(not killed or "resumed from" in out, "the run did not resume from its checkpoint")
    diffs = same_results(ctx.work / "reference.json", ctx.work / "resumed.json")
    expect(not diffs, f"{len(diffs)} differences from the uninterrupted run: {diffs[:2]}")
    return "SIGKILL at the first checkpoint + --resume: identical" if killed else "not killed"


# ---------------------------------------------------------------- your own data: image and text


def image_args(ctx: Ctx, model: str, out: str) -> list[str]:
    return [
        "train", "image", "--data-dir", str(ctx.fixture("images")), "--model-name", model,
        "--epochs", "2", "--batch-size", "8" if ctx.cpu else "64", "--device", ctx.device,
        "--output", out, "--quiet", "--cache-dir", str(ctx.work / "image-cache"), *AEES_DUAL,
    ]  # fmt: skip


@path("image-torchvision", "torchvision", "PIL")
def image_torchvision(ctx: Ctx) -> str:
    model = "shufflenet_v2_x0_5" if ctx.cpu else "resnet18"
    ctx.aees(*image_args(ctx, model, "image-tv.json"))
    result = load(ctx.work / "image-tv.json")
    expect(len(result["episode_logs"]["selected_combined_names"]) > 0, "no AEES episode")
    return f"{model}: val acc {result['final_val_accuracy']:.3f}"


@path("image-timm", "torchvision", "timm", "PIL")
def image_timm(ctx: Ctx) -> str:
    model = "timm:mobilenetv3_small_050" if ctx.cpu else "timm:resnet18"
    ctx.aees(*image_args(ctx, model, "image-timm.json"))
    result = load(ctx.work / "image-timm.json")
    expect(len(result["episode_logs"]["selected_combined_names"]) > 0, "no AEES episode")
    return f"{model}: val acc {result['final_val_accuracy']:.3f}"


@path("text-bert", "transformers", "datasets", "tokenizers")
def text_bert(ctx: Ctx) -> str:
    ctx.aees(
        "train", "text", "--data-dir", str(ctx.fixture("text")),
        "--model-name", str(ctx.fixture("bert")), "--local-files-only", "--max-length", "32",
        "--cache-dir", str(ctx.work / "hf_cache"), "--tokenized-dataset-dir",
        str(ctx.work / "tok"), "--epochs", "2", "--batch-size", "8", "--device", ctx.device,
        "--method", "AdaptiveScheduler", "--lr-candidates", "0.5,1,2", "--episode-length", "2",
        "--output", "text.json", "--quiet",
    )  # fmt: skip
    result = load(ctx.work / "text.json")
    expect(len(result["episode_logs"]["selected_combined_names"]) > 0, "no AEES episode")
    return f"val acc {result['final_val_accuracy']:.3f}"


# ------------------------------------------------------------------------- the peers under AEES


def _peer(name: str, package: str) -> None:
    @path(f"peer-{name}", package)
    def peer(ctx: Ctx) -> str:
        ctx.aees(
            "train", "digits", "--epochs", "2", "--optimizer", name, "--device", ctx.device,
            *AEES_DUAL, "--output", f"{name}.json", "--quiet",
        )  # fmt: skip
        result = load(ctx.work / f"{name}.json")
        expect(result["config"]["optimizer"] == name, f"ran {result['config']['optimizer']}")
        return f"val acc {result['final_val_accuracy']:.3f}"


def _register_peers() -> None:
    sys.path.insert(0, str(REPO / "src"))
    from aees.runner.config import PEER_PACKAGES

    for name, package in sorted(PEER_PACKAGES.items()):
        _peer(name, package)


_register_peers()


# ------------------------------------------------------- AEESOptimizer in the frameworks, resumed


def _equal_states(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    import torch

    expect(a.keys() == b.keys(), f"{what}: different parameters")
    for key in a:
        expect(torch.equal(a[key], b[key]), f"{what}: parameter {key} differs after the resume")


def _lightning(ctx: Ctx, precision: str) -> str:
    """Cut at an epoch end mid-episode, resumed with ``ckpt_path``: the parameters and AEES logs
    of the uninterrupted fit (tests/integrations' module and data, on this device)."""
    from lightning_helpers import TinyModule, loader, trainer

    from aees.integrations.lightning import AEESCallback

    if ctx.cpu and precision == "16-mixed":
        precision = "bf16-mixed"  # Lightning has no fp16 autocast on the CPU
    accelerator = "cpu" if ctx.cpu else "gpu"

    def fit(module: Any, epochs: int, root: str, ckpt: str | None = None) -> Any:
        run = trainer(root, max_epochs=epochs, accelerator=accelerator, precision=precision,
                      callbacks=[AEESCallback()])  # fmt: skip
        run.fit(module, train_dataloaders=loader(12), ckpt_path=ckpt)
        return run

    full = TinyModule(scheduler=True)
    fit(full, 2, str(ctx.work / "full"))
    first = fit(TinyModule(scheduler=True), 1, str(ctx.work / "a"))
    first.save_checkpoint(ctx.work / "epoch1.ckpt")
    resumed = TinyModule(scheduler=True)
    fit_b = fit(resumed, 2, str(ctx.work / "b"), ckpt=str(ctx.work / "epoch1.ckpt"))
    state = {k: v.detach().cpu() for k, v in full.state_dict().items()}
    _equal_states(
        state, {k: v.detach().cpu() for k, v in resumed.state_dict().items()}, "Lightning"
    )
    logs = fit_b.optimizers[0].get_logs()
    expect(logs == full.trainer.optimizers[0].get_logs(), "Lightning: AEES logs differ on resume")
    return f"{precision}: {len(logs['episode_rewards'])} episodes, resume exact"


@path("lightning-16-mixed", "lightning")
def lightning_16(ctx: Ctx) -> str:
    return _lightning(ctx, "16-mixed")


@path("lightning-bf16-mixed", "lightning")
def lightning_bf16(ctx: Ctx) -> str:
    return _lightning(ctx, "bf16-mixed")


@path("hf-trainer-fp16", "transformers", "datasets", "accelerate", "tokenizers")
def hf_trainer(ctx: Ctx) -> str:
    import datasets
    import torch
    import transformers

    from aees.integrations.transformers import AEESTrainer

    model_dir, data_dir = ctx.fixture("distilbert"), ctx.fixture("sst2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False
    )
    raw = datasets.load_from_disk(str(data_dir))["train"]
    train = raw.map(lambda b: tokenizer(b["sentence"], truncation=True), batched=True)
    train = train.remove_columns(["sentence", "idx"])
    precision = {"bf16": True, "use_cpu": True} if ctx.cpu else {"fp16": True}

    def build(out: Path) -> Any:
        torch.manual_seed(0)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=2, local_files_only=True, trust_remote_code=False
        )
        args = transformers.TrainingArguments(
            output_dir=str(out), per_device_train_batch_size=4, gradient_accumulation_steps=2,
            learning_rate=5e-3, max_steps=6, logging_steps=1, save_strategy="steps",
            save_steps=3, report_to=[], seed=0, disable_tqdm=True, dataloader_num_workers=0,
            **precision,
        )  # fmt: skip
        return AEESTrainer(
            model=model, args=args, train_dataset=train,
            data_collator=transformers.DataCollatorWithPadding(tokenizer),
            aees={"lr_candidates": [0.5, 1.0, 2.0], "noise_candidates": [0.0, 1e-3],
                  "episode_length": 2},
        )  # fmt: skip

    full = build(ctx.work / "hf-a")
    full.train()
    resumed = build(ctx.work / "hf-b")
    resumed.train(resume_from_checkpoint=str(ctx.work / "hf-a" / "checkpoint-3"))
    state = {k: v.detach().cpu() for k, v in full.model.state_dict().items()}
    _equal_states(state, {k: v.detach().cpu() for k, v in resumed.model.state_dict().items()}, "HF")
    logs = full.aees_optimizer.get_logs()
    expect(resumed.aees_optimizer.get_logs() == logs, "HF Trainer: AEES logs differ after resume")
    return f"{'bf16 (CPU)' if ctx.cpu else 'fp16'}: {len(logs['episode_rewards'])} episodes, exact"


@path("accelerate-fp16", "accelerate", "sklearn")
def accelerate_fp16(ctx: Ctx) -> str:
    precision = "bf16" if ctx.cpu else "fp16"
    argv = [sys.executable, str(REPO / "examples" / "accelerate_digits.py"), "--epochs", "2"]
    argv += ["--mixed-precision", precision, "--output-dir", str(ctx.work / "accelerate")]
    out = ctx.run(*argv, *(["--cpu"] if ctx.cpu else []))
    expect("resumed run matches: True" in out, f"the resumed run differs: {out.strip()[-200:]}")
    return f"{precision}: {out.strip().splitlines()[-1]}"


# ----------------------------------------------------------------------- torchrun and the sweep


@path("torchrun-1", group="paths")
def torchrun_one(ctx: Ctx) -> str:
    ctx.run(
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
        "-m", "aees.cli", "train", "digits", "--epochs", "2", "--device", ctx.device,
        *AEES_DUAL, "--output", "ddp.json", "--quiet",
    )  # fmt: skip
    dist = load(ctx.work / "ddp.json")["diagnostics"].get("distributed")
    expect(dist is not None, "the run did not join the torchrun job (no distributed diagnostics)")
    backend = "gloo" if ctx.cpu else "nccl"
    expect(dist["backend"] == backend, f"backend {dist['backend']}, not {backend}")
    expect(dist["decisions_identical"] is True, "decisions differ across ranks")
    return f"{dist['backend']}, world size {dist['world_size']}"


SWEEP_PRESET = """
description = "gpu_smoke: 2 methods x 2 seeds on digits"
seeds = [0, 1]

[base]
task = "digits"
epochs = 1

[axes.method]
adamw = { control_mode = "baseline" }
aees_lr = { control_mode = "adaptive", lr_candidates = [0.5, 1.0, 2.0], episode_length = 4 }
"""


@path("sweep-runs-per-gpu", minimum_s=200)
def sweep(ctx: Ctx) -> str:
    preset, root = ctx.work / "smoke.toml", ctx.work / "sweep"
    preset.write_text(SWEEP_PRESET)
    ctx.aees("plan", str(preset), "--set", f"device={ctx.device}", "--output-root", str(root))
    plan = root / "manifest.json"
    runs = json.loads(plan.read_text())["runs"]
    expect(len(runs) == 4, f"the plan has {len(runs)} runs, not 4")
    gpus = ["--workers", "2"] if ctx.cpu else ["--gpus", "0", "--runs-per-gpu", "2"]
    ctx.aees("sweep", str(plan), *gpus, timeout=400)
    results = [p for p in root.rglob("*.json") if p != plan and '"method_name"' in p.read_text()]
    expect(len(results) == 4, f"{len(results)} valid results of 4")
    return f"4 runs, {' '.join(gpus)}"


# ------------------------------------------------------------------------------- the benchmarks


@path("gpu-checks", group="bench", minimum_s=90)
def gpu_checks(ctx: Ctx) -> str:
    out = ctx.run(sys.executable, str(BENCH / "gpu_checks.py"), "--device", ctx.device)
    return out.strip().splitlines()[-1]


@path("bench-epoch", group="bench", minimum_s=200)
def bench_epoch(ctx: Ctx) -> str:
    shape = ["--repeats", "1", "--epochs", "2", "--n-train", "64", "--n-test", "32"]
    if not ctx.cpu:  # bench/run_gpu.sh's shapes
        shape = ["--repeats", "3", "--epochs", "3", "--n-train", "20000", "--n-test", "4000"]
    out = ctx.run(sys.executable, str(BENCH / "epoch.py"), *shape, "--out", "epoch.json")
    print(out)
    return out.strip().splitlines()[-1]


@path("bench-overhead", group="bench", minimum_s=100)
def bench_overhead(ctx: Ctx) -> str:
    shape = ["--rounds", "1", "--steps", "4"] if ctx.cpu else ["--rounds", "4", "--steps", "40"]
    out = ctx.run(sys.executable, str(BENCH / "overhead.py"), *shape, "--out", "overhead.json")
    print(out)
    return out.strip().splitlines()[-1]


# ------------------------------------------------------------------------------------- driver


def missing(needs: Sequence[str]) -> list[str]:
    return [name for name in needs if importlib.util.find_spec(name) is None]


def child(name: str, device: str, work: Path) -> int:
    """Run one path in this process: exit 0 (passed), 1 (failed), 3 (skipped)."""
    entry = next(p for p in REGISTRY if p.name == name)
    lacking = missing(entry.needs)
    if lacking:
        print(f"not installed: {', '.join(lacking)}")
        return SKIP_STATUS
    for p in reversed(PATHS):
        sys.path.insert(0, p)
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(entry.check(Ctx(device, work)))
    except Failed as err:
        print(err)
        return 1
    except subprocess.TimeoutExpired as err:
        print(f"timed out after {err.timeout:.0f} s: {' '.join(map(str, err.cmd))[:120]}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument(
        "--only", nargs="+", metavar="PATH", help="run these paths (or groups: paths, bench) only"
    )
    p.add_argument("--skip", nargs="+", default=[], metavar="PATH|GROUP", help="leave these out")
    p.add_argument("--timeout", type=float, default=150, help="seconds per path (default 150)")
    p.add_argument("--out", type=Path, help="write the summary (JSON) and each path's log here")
    p.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one)")
    p.add_argument("--list", action="store_true", help="print the paths and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.device, args.work)
    known = {e.name for e in REGISTRY} | {e.group for e in REGISTRY}
    unknown = [n for n in (args.only or []) + args.skip if n not in known]
    if unknown:
        p.error(f"unknown path {unknown[0]!r}; --list prints them")
    if args.list:
        for e in REGISTRY:
            print(f"{e.name:24s} {e.group:6s} needs: {', '.join(e.needs) or '-'}")
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("gpu_smoke: no CUDA device (use --device cpu for the dry run)")
            return 2
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    selected = [
        e
        for e in REGISTRY
        if (not args.only or {e.name, e.group} & set(args.only))
        and not {e.name, e.group} & set(args.skip)
    ]
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_smoke-"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    for entry in selected:
        start = time.monotonic()
        cmd = [sys.executable, __file__, "--child", entry.name, "--device", args.device]
        cmd += ["--work", str(work / entry.name)]
        limit = max(args.timeout, entry.minimum_s)
        # the paths that run in the child itself (Lightning, HF) need the same environment
        # (offline Hub, deterministic cuBLAS) as the commands they start
        env = Ctx(args.device, work / entry.name).env
        try:
            proc = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                timeout=limit, cwd=REPO, env=env,
            )  # fmt: skip
            status, text = proc.returncode, proc.stdout
        except subprocess.TimeoutExpired as err:
            status = 1
            partial = err.stdout or b""  # bytes on a timeout, even with text=True
            partial = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
            text = f"{partial}\ntimed out after {limit:.0f} s"
        seconds = time.monotonic() - start
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        verdict = {0: "PASS", SKIP_STATUS: "SKIP"}.get(status, "FAIL")
        failed += verdict == "FAIL"
        print(f"{verdict}  {entry.name:24s} {seconds:6.1f} s  {last[:160]}", flush=True)
        if entry.group == "bench" and verdict == "PASS":
            print("\n".join(f"    {line}" for line in lines[:-1][-12:]))
        rows.append({"path": entry.name, "verdict": verdict, "seconds": round(seconds, 1),
                     "last_line": last})  # fmt: skip
        if args.out:
            (args.out / f"{entry.name}.log").write_text(text)
    summary = {"device": args.device, "paths": rows, "failed": failed}
    if args.out:
        (args.out / "gpu_smoke.json").write_text(json.dumps(summary, indent=1))
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("PASS", "FAIL", "SKIP")}
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
