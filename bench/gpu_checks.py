"""CUDA checks of the fast-mode engine paths that the CPU test suite cannot run (about 1 minute).

On a small synthetic cifar100 (ResNet-18, bench/epoch.py's in-memory task):

* ``--precision fp16`` through AEES: autocast + GradScaler, the scaler's skipped steps counted per
  episode (``episode_logs.episode_scaler_skipped_steps``);
* fast mode (``--compile`` with inductor, bf16, channels-last, cuDNN autotuning, TF32): dynamo's
  graph counters are the same after 2 and after 4 epochs although the AEES arm changed many
  times (no recompiles), and the variant id is marked ``-fast-``.

Exit status 1 if a check fails. ``--device cpu`` is a smoke test of the script itself (tiny
shapes, compile backend eager, fp32, no cuDNN/TF32 flags); its numbers mean nothing.

    python bench/gpu_checks.py
    python bench/gpu_checks.py --device cpu
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch._dynamo.utils import counters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from epoch import SyntheticCifar100

from aees.results import variant_id
from aees.runner import engine
from aees.runner.config import RunConfig

AEES = {
    "control_mode": "adaptive",
    "lr_candidates": "0.5,1,2",
    "noise_candidates": "0,0.01",
    "episode_length": 4,
    "quiet": True,
}
FAST = {
    "compile": True,
    "precision": "bf16",
    "channels_last": True,
    "cudnn_benchmark": True,
    "tf32": True,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    args = p.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("gpu_checks: no CUDA device")
        return 1
    name = torch.cuda.get_device_name(0) if cuda else "cpu (smoke test)"
    print(f"device: {name}, torch {torch.__version__}")
    AEES["device"] = args.device
    # on the CPU: no bf16 (its convolutions crawl without bf16 units), no cuDNN/TF32 flags
    fast = FAST if cuda else {**FAST, "precision": "fp32", "cudnn_benchmark": False, "tf32": False}
    if not cuda:
        fast["compile_backend"] = "eager"
        AEES["batch_size"] = 16
        AEES["episode_length"] = 1  # 2 steps per epoch: several arms all the same
    task = SyntheticCifar100(2048, 512) if cuda else SyntheticCifar100(32, 16)
    tmp = Path(tempfile.mkdtemp())
    ok = True
    result, _ = engine.run(
        RunConfig(
            task_name="cifar100", epochs=2, precision="fp16", output=str(tmp / "a.json"), **AEES
        ),
        task,
    )
    logs = result.episode_logs
    skipped = logs["episode_scaler_skipped_steps"]
    good = len(skipped) == len(logs["episode_rewards"]) > 0
    ok &= good
    print(
        f"fp16 + GradScaler through AEES: {len(skipped)} episodes, {sum(skipped)} scaler-skipped "
        f"steps, val acc {result.val_accuracies} -> {'ok' if good else 'FAILED'}"
    )
    graphs = []
    for epochs in (2, 4):
        torch._dynamo.reset()
        counters.clear()
        result, _ = engine.run(
            RunConfig(
                task_name="cifar100",
                epochs=epochs,
                output=str(tmp / f"f{epochs}.json"),
                **AEES,
                **fast,
            ),
            task,
        )
        graphs.append(dict(counters["stats"]))
    arms = result.episode_logs["selected_combined_names"]
    variant = variant_id(result.config, result.method_name)
    good = graphs[0] == graphs[1] and len(set(arms)) > 1 and "-fast-" in variant
    ok &= good
    print(
        f"fast mode ({fast['compile_backend']}): dynamo stats after 2 / 4 epochs "
        f"{graphs[0]} / {graphs[1]}, "
        f"{len(arms)} episodes over {len(set(arms))} arms, variant {variant} -> "
        f"{'no recompiles, ok' if good else 'FAILED'}"
    )
    print(f"fast-mode epoch seconds: {[round(t, 3) for t in result.epoch_wall_clock_seconds]}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
