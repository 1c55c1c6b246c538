"""Two gloo processes on the CPU, each fed different data: same arms, same parameters."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str, seed) -> None:
    from lib_helpers import tiny_model

    from aees import AEES

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model = torch.nn.parallel.DistributedDataParallel(tiny_model(0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    aees = AEES(opt, lr_candidates=[0.25, 1.0, 4.0], noise_candidates=[0.0, 0.02],
                episode_length=3, seed=seed)  # fmt: skip
    g = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
    for step in range(40):
        x = torch.randn(8, 6, generator=g) * (1 + 3 * rank)
        y = torch.randint(0, 3, (8,), generator=g)
        aees.step_start(step)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        aees.step_end(loss)
        if step == 20:
            aees.state_dict()  # a collective: every rank must call it
    aees.finalize()
    logs = aees.get_logs()
    params = [p.detach().flatten().tolist() for p in model.parameters()]
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"logs": logs, "params": params,
                                                             "seed": aees.seed}))  # fmt: skip
    dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, None])
def test_ranks_make_identical_decisions(tmp_path, seed):
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), seed), nprocs=2, join=True)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["seed"] == r1["seed"]
    assert r0["logs"] == r1["logs"]
    assert r0["params"] == r1["params"]
    arms = set(zip(r0["logs"]["selected_lr_indices"], r0["logs"]["selected_noise_indices"],
                   strict=True))  # fmt: skip
    assert len(arms) >= 3  # the bandit really switched arms
