import math

import pytest
import torch
from lib_helpers import tiny_model, train_steps

from aees import AEES


def _aees(**kw):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    return AEES(opt, lr_candidates=[0.5, 1.0], episode_length=3, seed=0, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("as_tensor", [False, True])
def test_default_raises_naming_the_step_and_stays_usable(as_tensor):
    aees = _aees()
    values = [1.0, 0.9, 0.8, 0.7, float("nan"), 0.5, 0.4, 0.3, 0.2]
    raised = []
    for step, v in enumerate(values):
        aees.step_start(step)
        try:
            aees.step_end(torch.tensor(v, dtype=torch.float64) if as_tensor else v)
        except ValueError as err:
            raised.append((step, str(err)))
    assert len(raised) == 1
    at, message = raised[0]
    assert at == 5 and "step 4" in message  # detected when the episode's losses are read
    logs = aees.get_logs()
    assert len(logs["episode_rewards"]) == 3
    assert logs["episode_start_losses"][1] == 0.7 and logs["episode_end_losses"][1] == 0.5
    state = aees.episode_manager.state_dict()
    assert state["active"] is None and aees.current_candidate is None


@pytest.mark.slow
def test_skip_policy_excludes_and_counts():
    aees = _aees(nonfinite="skip")
    values = [1.0, math.inf, 0.8, float("nan"), float("nan"), float("nan"), 0.4]
    for step, v in enumerate(values):
        aees.step_start(step)
        aees.step_end(v)
    aees.finalize()
    logs = aees.get_logs()
    assert logs["episode_nonfinite_steps"] == [1, 3, 0]
    assert logs["episode_start_losses"] == [1.0, None, 0.4]
    assert logs["episode_rewards"][1] is None  # no step counted: controllers not credited
    lr_ctrl = aees.episode_manager.lr_controller
    assert lr_ctrl.total_updates == 2


def test_optimizer_exception_restores_lr_and_closes_the_step():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    aees = AEES(opt, lr_candidates=[3.0], seed=0)

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    original = opt.step
    opt.step = boom
    aees.step_start(0)
    with pytest.raises(RuntimeError, match="boom"):
        aees.step_end(1.0)
    assert opt.param_groups[0]["lr"] == 0.1
    opt.step = original
    assert aees.num_steps == 0  # the step that raised did not happen
    train_steps(aees, model, 3, start=0)  # usable again, from num_steps
    assert aees.num_steps == 3
