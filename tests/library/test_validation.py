import subprocess
import sys

import pytest
import torch

from aees import AEES


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"lr_candidates": []}, ValueError, r"lr_candidates .* got \[\]"),
        ({"lr_candidates": [1.0, -2.0]}, ValueError, r"lr_candidates .*positive.*-2\.0"),
        ({"lr_candidates": [0.0]}, ValueError, "lr_candidates"),
        ({"lr_candidates": [float("inf")]}, ValueError, r"lr_candidates .*finite"),
        ({"lr_candidates": "0.5"}, TypeError, "lr_candidates"),
        ({"lr_candidates": [True]}, TypeError, "lr_candidates"),
        ({"noise_candidates": [-0.1]}, ValueError, r"noise_candidates .*non-negative.*-0\.1"),
        ({"noise_candidates": []}, ValueError, "noise_candidates"),
        ({"episode_length": 0}, ValueError, "episode_length must be >= 1, got 0"),
        ({"episode_length": 2.5}, TypeError, "episode_length must be an int, got float 2.5"),
        ({"control_mode": "greedy"}, ValueError, r"control_mode must be one of .*'greedy'"),
        ({"structured_control_mode": "joint"}, ValueError, "structured_control_mode.*'joint'"),
        ({"context_mode": "trend_phase"}, ValueError, "context_mode.*'trend_phase'"),
        ({"context_trend_window": 0}, ValueError, "context_trend_window.*0"),
        ({"context_trend_epsilon": -1.0}, ValueError, r"context_trend_epsilon.*-1\.0"),
        ({"reward_instability_lambda": -0.5}, ValueError, "reward_instability_lambda"),
        ({"reward_epsilon": 0.0}, ValueError, "reward_epsilon"),
        ({"reward_clip_min": 1.0, "reward_clip_max": 0.0}, ValueError, "reward_clip_min"),
        ({"ema_alpha": 0.0}, ValueError, r"ema_alpha.*0\.0"),
        ({"ema_alpha": 2.0}, ValueError, r"ema_alpha.*2\.0"),
        ({"seed": "x"}, TypeError, "seed must be an int or None, got 'x'"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"noise_source": "philox"}, ValueError, "noise_source.*'philox'"),
        ({"nonfinite": "ignore"}, ValueError, "nonfinite.*'ignore'"),
        ({"track_update_norm": 1}, TypeError, "track_update_norm"),
        ({"lr_scheduler": 3}, TypeError, "lr_scheduler"),
        ({"grad_scaler": object()}, TypeError, "grad_scaler"),
    ],
)
def test_invalid_arguments_name_argument_and_value(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        AEES(_opt(), **kwargs)


def test_optimizer_type_and_call_order_errors():
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer, got list"):
        AEES([])
    a = AEES(_opt(), seed=0)
    with pytest.raises(RuntimeError, match="without a preceding step_start"):
        a.step_end(1.0)
    a.step_start(0)
    with pytest.raises(RuntimeError, match="twice"):
        a.step_start(1)
    with pytest.raises(RuntimeError, match="open step"):
        a.finalize()
    with pytest.raises(ValueError, match=r"scalar tensor, got shape \(2,\)"):
        a.step_end(torch.ones(2))
    with pytest.raises(TypeError, match="loss must be a tensor or a real number, got str"):
        a.step_end("1.0")
    a.step_end(1.0)
    with pytest.raises(ValueError, match="global_step must be non-negative, got -1"):
        a.step_start(-1)
    a.finalize()
    a.finalize()  # idempotent
    assert len(a.get_logs()["episode_rewards"]) == 1


# Not slow although a subprocess: a bare import in a fresh interpreter (1-3 s, no training)
# is the only way to see what `import aees` loads, and the fast loop should check it.
@pytest.mark.slow
def test_import_aees_pulls_in_no_experiment_dependencies():
    """Nor torch's compiler stack (torch._dynamo, ~3 s to import): ``AEESOptimizer`` loads on
    first use, so every ``aees`` command that trains nothing starts in about half the time."""
    code = (
        "import sys, aees, aees.wrapper;"
        "heavy = {'torchvision','transformers','datasets','matplotlib','scipy','ray','pandas'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}),"
        " 'torch._dynamo' in sys.modules);"
        "from aees import AEESOptimizer;"
        "print(AEESOptimizer.__module__, 'AEESOptimizer' in dir(aees))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[] False", "aees.optimizer True"]
