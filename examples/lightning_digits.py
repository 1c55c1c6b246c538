"""Train an MLP on scikit-learn's 8x8 digits with PyTorch Lightning and AEES (offline, CPU/GPU).

A stock Lightning script with three changes, marked ``# AEES``: the imports, the optimizer
wrapped in ``AEESOptimizer`` inside ``configure_optimizers`` (the LR scheduler is built on it as
usual), and ``AEESCallback()`` in the Trainer's callbacks. The callback feeds every micro-batch's
loss to AEES (``accumulate_grad_batches``, ``precision="16-mixed"`` / ``"bf16-mixed"``) and
logs each episode's record through the Trainer's loggers (``aees/...`` metrics). Checkpoints
carry the AEES state, so ``trainer.fit(..., ckpt_path=...)`` resumes exactly.

    python examples/lightning_digits.py [--epochs 5] [--precision bf16-mixed] [--smoke]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger
from sklearn.datasets import load_digits
from torch import nn

from aees import AEESOptimizer  # AEES
from aees.integrations.lightning import AEESCallback  # AEES


class DigitsMLP(pl.LightningModule):
    def __init__(self, lr: float = 3e-3, episode_length: int = 20) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        self.log("val_accuracy", (self.net(x).argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        base = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        kw = {"lr_candidates": [0.5, 1, 2], "episode_length": self.hparams.episode_length}
        optimizer = AEESOptimizer(base, **kw, seed=0)  # AEES
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def loaders(smoke: bool) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    n_train = 256 if smoke else 1500
    data = torch.utils.data.TensorDataset
    train = data(x[:n_train], y[:n_train])
    val = data(x[1500:], y[1500:])
    g = torch.Generator().manual_seed(0)
    return (
        torch.utils.data.DataLoader(train, batch_size=32, shuffle=True, generator=g),
        torch.utils.data.DataLoader(val, batch_size=256),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--accumulate", type=int, default=1, help="accumulate_grad_batches")
    parser.add_argument("--root", type=Path, default=Path("lightning_logs"), help="logs/ckpts")
    parser.add_argument("--smoke", action="store_true", help="2 short epochs (for the tests)")
    parser.add_argument("--records", type=Path, help="write the episode log here (JSON)")
    args = parser.parse_args()

    pl.seed_everything(0, verbose=False)
    train, val = loaders(args.smoke)
    model = DigitsMLP(episode_length=4 if args.smoke else 20)
    trainer = pl.Trainer(
        max_epochs=2 if args.smoke else args.epochs,
        precision=args.precision,
        accumulate_grad_batches=args.accumulate,
        logger=CSVLogger(args.root, name="digits"),
        default_root_dir=args.root,
        enable_progress_bar=not args.smoke,
        callbacks=[AEESCallback()],  # AEES
    )
    trainer.fit(model, train, val)

    optimizer = trainer.optimizers[0]
    logs = optimizer.get_logs()
    print(f"{len(logs['episode_rewards'])} episodes; arms: {logs['selected_combined_names']}")
    if args.records is not None:
        keys = ("episode_start_steps", "selected_combined_names", "episode_rewards")
        rows = [dict(zip(("start_step", "arm", "reward"), v, strict=True))
                for v in zip(*(logs[k] for k in keys), strict=True)]  # fmt: skip
        for i, row in enumerate(rows):
            row["episode_index"] = i
        args.records.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
