import math

import pytest

from aees import NormalizedLossImprovementReward, episode_reward
from aees.reward import episode_ema


def test_reward_matches_formula_written_independently():
    losses = [2.0, 1.5, 1.7, 1.2, 1.1]
    alpha, eps, lam = 0.1, 1e-8, 0.3
    ema = losses[0]
    for v in losses[1:]:
        ema = alpha * v + (1 - alpha) * ema
    base = math.log(losses[0] + eps) - math.log(ema + eps)
    mu = sum(losses) / 5
    var = sum((v - mu) ** 2 for v in losses) / 5
    expected = base - lam * var / (mu * mu + eps)
    d = episode_reward(losses, instability_lambda=lam, clip_min=-10, clip_max=10)
    assert d.reward_base == pytest.approx(base, abs=1e-15)
    assert d.reward_final_unclipped == pytest.approx(expected, abs=1e-15)
    assert d.reward_final_clipped == d.reward_final_unclipped
    assert (d.ema_loss_start, d.ema_loss_end) == episode_ema(losses, alpha)


def test_one_step_episode_earns_exactly_zero():
    assert episode_reward([0.7]).reward_final_clipped == 0.0


def test_clipping_bounds_the_reward():
    big_drop = episode_reward([100.0] + [1e-6] * 60)
    assert big_drop.reward_final_unclipped > 1.0 and big_drop.reward_final_clipped == 1.0
    rise = episode_reward([1e-6] + [100.0] * 60)
    assert rise.reward_final_clipped == -1.0


def test_negative_loss_and_nonfinite_are_rejected():
    with pytest.raises(ValueError, match="reward_epsilon"):
        episode_reward([-1.0, -2.0])
    with pytest.raises(ValueError, match="finite"):
        episode_reward([1.0, float("nan")])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"reward_epsilon": 0.0}, "reward_epsilon"),
        ({"reward_instability_lambda": -1.0}, "reward_instability_lambda"),
        ({"reward_clip_min": 2.0}, "reward_clip_min"),
        ({"ema_alpha": 0.0}, "ema_alpha"),
        ({"ema_alpha": 1.5}, "ema_alpha"),
    ],
)
def test_invalid_reward_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NormalizedLossImprovementReward(**kwargs)
