"""Train an MLP on scikit-learn's 8x8 digits in a plain PyTorch loop with AEES (offline, CPU).

A stock loop with three changes, marked ``# AEES``: the import, the optimizer wrapped in
``AEESOptimizer``, and the loss handed over with ``observe_loss`` before ``step``. The LR
scheduler, gradient clipping and ``zero_grad`` are untouched; the AEES state travels inside
``optimizer.state_dict()``.

    python examples/plain_loop.py [--epochs 5] [--smoke] [--records episodes.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

from aees import AEESOptimizer  # AEES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--smoke", action="store_true", help="2 short epochs (for the tests)")
    parser.add_argument("--records", type=Path, help="write the episode records here (JSON)")
    args = parser.parse_args()

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    if args.smoke:
        x, y, args.epochs = x[:320], y[:320], 2
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=args.batch_size, shuffle=True, generator=g
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    base = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    length = 4 if args.smoke else 20  # optimizer steps per episode
    optimizer = AEESOptimizer(
        base, lr_candidates=[0.5, 1, 2], episode_length=length, seed=0
    )  # AEES
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    records = []
    optimizer.register_episode_end_hook(records.append)  # optional: watch the decisions
    for epoch in range(args.epochs):
        total, seen = torch.zeros(()), 0  # summed on the device: no per-step host sync
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.observe_loss(loss)  # AEES
            optimizer.step()
            total += loss.detach() * len(yb)
            seen += len(yb)
        scheduler.step()
        with torch.no_grad():
            accuracy = (model(x).argmax(1) == y).float().mean().item()
        last = records[-1].arm if records else "-"
        print(f"epoch {epoch + 1}: loss {total.item() / seen:.4f}, accuracy {accuracy:.3f}, "
              f"{len(records)} episodes, last arm {last}")  # fmt: skip
    optimizer.finalize()  # close the trailing partial episode (training is over)
    if args.records is not None:
        args.records.write_text(json.dumps([dataclasses.asdict(r) for r in records], indent=1))


if __name__ == "__main__":
    main()
