import math
import random

import pytest

from aees import (
    BucketedContextualController,
    DiscountedUCBController,
    PrecomputedController,
    RandomController,
    ucb_scores,
)


def test_warmup_is_a_seeded_permutation_then_ucb():
    c = DiscountedUCBController(3, random_seed=7)
    rng = random.Random(7)
    expected = []
    pending = [0, 1, 2]
    for _ in range(3):
        a = rng.choice(pending)
        expected.append(a)
        pending.remove(a)
    got = []
    for r in (0.1, 0.5, -0.2):
        a = c.select_mode()
        got.append(a)
        c.update(a, r)
    assert got == expected
    # after warm-up the best UCB score wins (the one with the 0.5 reward here)
    scores = ucb_scores(c.counts, c.reward_sums, 1.0, 1e-12)
    assert c.select_mode() == max(range(3), key=scores.__getitem__)


def test_discount_applies_once_per_update():
    c = DiscountedUCBController(2, random_seed=0)
    c.update(0, 1.0)
    c.update(1, 0.5)
    c.update(0, 0.25)
    assert c.counts == pytest.approx([0.95**2 + 1, 0.95])
    assert c.reward_sums == pytest.approx([0.95**2 * 1.0 + 0.25, 0.95 * 0.5])
    assert c.warmup_counts == [2, 1] and c.total_updates == 3


def test_ucb_scores_formula():
    n, s = [2.0, 0.5], [1.0, -0.1]
    lt = math.log(2.5 + 1.0)
    assert ucb_scores(n, s, 1.0, 1e-12) == pytest.approx(
        [1.0 / 2.0 + math.sqrt(lt / 2.0), -0.1 / 0.5 + math.sqrt(lt / 0.5)]
    )


@pytest.mark.parametrize(
    "factory",
    [
        lambda: DiscountedUCBController(4, random_seed=3),
        lambda: RandomController(4, random_seed=3),
        lambda: _bucketed(),
    ],
)
def test_state_dict_resumes_the_same_decisions(factory):
    a = factory()
    rewards = [0.3, -0.1, 0.2, 0.05, 0.4, -0.3, 0.1, 0.0, 0.2, 0.15]
    for r in rewards[:5]:
        _set(a)
        a.update(a.select_mode(), r)
    b = factory()
    b.load_state_dict(a.state_dict())
    for r in rewards[5:]:
        _set(a)
        _set(b)
        arm_a, arm_b = a.select_mode(), b.select_mode()
        assert arm_a == arm_b
        a.update(arm_a, r)
        b.update(arm_b, r)
    assert a.state_dict() == b.state_dict()


def _bucketed():
    return BucketedContextualController(3, random_seed=5)


def _set(c):
    if isinstance(c, BucketedContextualController):
        c.set_context(["stable", "improving", "worsening"][c.global_prior.total_updates % 3])


def test_new_bucket_inherits_global_prior_and_its_own_seed():
    c = BucketedContextualController(3, random_seed=10)
    c.set_context("stable")
    for r in (0.1, 0.2, 0.3):
        c.update(c.select_mode(), r)
    c.set_context("worsening")
    w = c.buckets["worsening"]
    assert w.counts == c.global_prior.counts and w.warmup_counts == [1, 1, 1]
    assert w.random_seed == 10 + 1000 + 2
    with pytest.raises(ValueError, match="Unknown context bucket 'sideways'"):
        c.set_context("sideways")
    with pytest.raises(RuntimeError, match="set_context"):
        BucketedContextualController(2).select_mode()


def test_precomputed_controller_replays_then_holds_last_arm():
    c = PrecomputedController(3, [2, 0, 1])
    assert [c.select_mode() for _ in range(5)] == [2, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="schedule"):
        PrecomputedController(2, [0, 2])


def test_update_validation():
    c = DiscountedUCBController(2)
    with pytest.raises(ValueError, match=r"mode_id must be in \[0, 2\), got 5"):
        c.update(5, 0.0)
    with pytest.raises(ValueError, match="reward must be a finite float"):
        c.update(0, float("inf"))
    with pytest.raises(ValueError, match="kind"):
        c.load_state_dict(RandomController(2).state_dict())
    with pytest.raises(ValueError, match="n_arms"):
        c.load_state_dict(DiscountedUCBController(3).state_dict())
