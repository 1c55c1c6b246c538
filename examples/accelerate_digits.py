"""Train an MLP on scikit-learn's 8x8 digits with Accelerate and AEES (offline, CPU or GPU).

A stock Accelerate loop with two changes (marked ``# AEES``): the optimizer is wrapped in
``AEESOptimizer``, and each micro-batch's loss is handed to it with ``observe_loss`` (keep the
handle: ``accelerator.prepare`` returns Accelerate's wrapper around it). ``accumulate``,
``backward``, mixed precision, the LR scheduler and ``save_state`` / ``load_state`` are
Accelerate's own; the AEES state travels inside the optimizer's state dict.

    python examples/accelerate_digits.py [--epochs 5] [--mixed-precision bf16] [--smoke]

After training, the script resumes a second run from the checkpoint saved after the first epoch
and checks that it ends with the same parameters (exact resume).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from sklearn.datasets import load_digits
from torch import nn

from aees import AEESOptimizer  # AEES


def make_loader(batch_size: int) -> torch.utils.data.DataLoader:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False
    )


def train(args: argparse.Namespace, resume: bool = False) -> tuple[list[torch.Tensor], list[str]]:
    AcceleratorState._reset_state(reset_partial_state=True)  # a second run in this process
    GradientState._reset_state()
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision, gradient_accumulation_steps=2, cpu=args.cpu
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    loader = make_loader(args.batch_size)
    base = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    optimizer = AEESOptimizer(base, lr_candidates=[0.5, 1, 2], episode_length=5, seed=0)  # AEES
    aees = optimizer
    total = args.epochs * len(loader) // 2
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / (total + 1))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    checkpoint = Path(args.output_dir) / "checkpoint"

    start_epoch = 0
    if resume:
        accelerator.load_state(str(checkpoint))
        start_epoch = 1
    for epoch in range(start_epoch, args.epochs):
        model.train()
        total_loss, seen = torch.zeros(()), 0  # summed on the device: no per-step sync
        for x, y in loader:
            with accelerator.accumulate(model):
                loss = nn.functional.cross_entropy(model(x), y)
                accelerator.backward(loss)
                aees.observe_loss(loss)  # AEES
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            total_loss = total_loss.to(loss.device) + loss.detach().float() * len(y)
            seen += len(y)
        if epoch == 0 and not resume:
            accelerator.save_state(str(checkpoint))
        names = aees.get_logs()["selected_combined_names"]
        accelerator.print(
            f"epoch {epoch + 1}: loss {total_loss.item() / seen:.4f}, {len(names)} episodes, "
            f"last arm {names[-1] if names else '-'}"
        )
    arms = aees.get_logs()["selected_combined_names"]
    return [p.detach().cpu().clone() for p in model.parameters()], arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even with a GPU")
    parser.add_argument("--output-dir", default="runs/accelerate_digits")
    parser.add_argument("--smoke", action="store_true", help="2 short epochs on the CPU (tests)")
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.batch_size, args.cpu = 2, 64, True

    params, arms = train(args)
    print(f"arms per episode: {arms}")
    resumed, resumed_arms = train(args, resume=True)
    same = arms == resumed_arms and all(
        torch.equal(a, b) for a, b in zip(params, resumed, strict=True)
    )
    print(f"resumed run matches: {same}")


if __name__ == "__main__":
    main()
