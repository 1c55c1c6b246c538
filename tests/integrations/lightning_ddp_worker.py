"""Run by test_lightning.py: a 2-process CPU DDP fit (Lightning re-launches this script for
rank 1); each rank writes its AEES logs and parameters to OUT_DIR/rank<r>.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "helpers"), str(HERE)]

import torch  # noqa: E402
from lightning_helpers import AEES_KW, TinyModule, loader, trainer  # noqa: E402

from aees.integrations.lightning import AEESCallback  # noqa: E402


def main(out_dir: Path) -> None:
    torch.set_num_threads(1)
    module = TinyModule(aees_kw={**AEES_KW, "seed": None})  # a drawn seed, shared by the ranks
    fit = trainer(max_steps=12, strategy="ddp", devices=2, callbacks=[AEESCallback()])
    fit.fit(module, train_dataloaders=loader(24))  # each rank gets its own half of the data
    opt = fit.optimizers[0]
    rank = fit.global_rank
    payload = {
        "seed": opt.aees.seed,
        "logs": opt.get_logs(),
        "params": [p.detach().flatten().tolist() for p in module.parameters()],
        "first_loss": module.seen_losses[0],
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
