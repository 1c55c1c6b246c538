"""A one-minute demonstration of the library on real data: scikit-learn's bundled 8×8 digits.

Trains a small CNN with plain AdamW and with AEES around the same AdamW (LR axis only, and LR +
gradient noise), three seeds each, and prints test accuracy, the final training loss, the time
per step and which arms the bandit settled on. Everything is on the CPU and offline.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass

import torch
from torch import nn

from aees import AEES
from aees.runner.tasks.digits import load_digits_split  # 70 / 15 / 15, the fixed split

METHODS: dict[str, dict | None] = {
    "AdamW": None,
    "AEES (LR ×0.5/1/2)": {"lr_candidates": [0.5, 1.0, 2.0]},
    "AEES (LR + noise 0/0.01)": {"lr_candidates": [0.5, 1.0, 2.0], "noise_candidates": [0.0, 0.01]},
}


@dataclass
class Outcome:
    test_accuracy: float
    final_train_loss: float
    ms_per_step: float
    arms: Counter


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )  # fmt: skip


def run(method: str, seed: int, data, epochs: int, batch_size: int = 64) -> Outcome:
    torch.manual_seed(seed)
    model = small_cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    aees_kwargs = METHODS[method]
    aees = AEES(opt, episode_length=20, seed=seed, **aees_kwargs) if aees_kwargs else None
    x_train, y_train = data["train"]
    gen = torch.Generator().manual_seed(seed)
    step, loss, elapsed = 0, torch.tensor(0.0), 0.0
    for _ in range(epochs):
        order = torch.randperm(len(y_train), generator=gen)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            t0 = time.perf_counter()
            if aees:
                aees.step_start(step)
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            if aees:
                aees.step_end(loss)
            else:
                opt.step()
            elapsed += time.perf_counter() - t0
            step += 1
    arms: Counter = Counter()
    if aees:
        aees.finalize()
        arms.update(aees.get_logs()["selected_combined_names"])
    with torch.no_grad():
        x_test, y_test = data["test"]
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    return Outcome(accuracy, loss.item(), 1000 * elapsed / step, arms)


def main(epochs: int = 15, seeds: tuple[int, ...] = (0, 1, 2)) -> None:
    torch.set_num_threads(1)
    data = load_digits_split()
    print(f"digits: {len(data['train'][1])} train / {len(data['test'][1])} test images, "
          f"{epochs} epochs, seeds {list(seeds)}, CPU, 1 thread\n")  # fmt: skip
    print("| method | test accuracy (mean ± sd, n=3) | final train loss | ms/step | top arms |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        outcomes = [run(method, s, data, epochs) for s in seeds]
        acc = [100 * o.test_accuracy for o in outcomes]
        loss = statistics.mean(o.final_train_loss for o in outcomes)
        ms = statistics.median(o.ms_per_step for o in outcomes)
        arms = sum((o.arms for o in outcomes), Counter()).most_common(2)
        top = ", ".join(f"{name}×{n}" for name, n in arms) or "—"
        print(f"| {method} | {statistics.mean(acc):.2f} ± {statistics.stdev(acc):.2f} | "
              f"{loss:.4f} | {ms:.2f} | {top} |")  # fmt: skip


if __name__ == "__main__":
    main()
