"""Which controller runs each axis of an :class:`aees.AEES`: built, or injected by the user.

:func:`setup_controllers` checks the injected ``lr_controller`` / ``noise_controller`` (the
interface, the number of arms, one noise controller per LR arm in ``"conditional"`` mode, distinct
objects), builds pulseopt's controller for every other axis with several candidates (seeded
``seed`` for the LR axis, ``seed + 101 (+ i)`` for the noise axis, per LR arm ``i`` when
conditional) and names where each came from and the control mode in force.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aees.controllers import Controller, PrecomputedController, build_controller

NoiseControllers = Controller | list[Controller] | None


@dataclass(frozen=True)
class AxisControllers:
    """The controllers in use, where each axis's came from and the control mode in force.

    ``lr`` is ``None`` for a single LR candidate, ``noise`` for a single noise candidate; in
    ``"conditional"`` mode with several of both, ``noise`` is a list (one per LR arm).
    ``sources`` maps ``"lr"`` / ``"noise"`` to ``"built"`` or ``"injected:<class>"`` (what the
    state dict records); ``control_mode`` is :attr:`aees.AEES.control_mode`.
    """

    lr: Controller | None
    noise: NoiseControllers
    sources: dict[str, str]
    control_mode: str


def setup_controllers(
    n_lr: int,
    n_noise: int,
    *,
    control_mode: str,
    structured_control_mode: str,
    context_mode: str,
    seed: int,
    lr_controller: Any,
    noise_controller: Any,
) -> AxisControllers:
    """Check the injected controllers and build the others (see the module docstring)."""
    conditional = structured_control_mode == "conditional" and n_lr > 1 and n_noise > 1
    injected_lr = _check_injected("lr_controller", lr_controller, n_lr, "LR")
    injected_noise = _check_injected_noise(noise_controller, n_noise, n_lr, conditional)
    _check_distinct(injected_lr, injected_noise)

    lr_ctrl: Controller | None
    if injected_lr is not None:
        lr_ctrl, lr_source = injected_lr, _source(injected_lr)
    else:
        lr_ctrl = build_controller(n_lr, control_mode, context_mode, seed)
        lr_source = "built"
    noise_ctrl: NoiseControllers
    if injected_noise is not None:
        noise_ctrl, noise_source = injected_noise, _source(injected_noise)
    elif conditional:
        noise_ctrl = [
            build_controller(n_noise, control_mode, context_mode, seed + 101 + i)
            for i in range(n_lr)
        ]  # type: ignore[misc]
        noise_source = "built"
    else:
        noise_ctrl = build_controller(n_noise, control_mode, context_mode, seed + 101)
        noise_source = "built"
    in_use = _flatten(lr_ctrl, noise_ctrl)
    return AxisControllers(
        lr=lr_ctrl,
        noise=noise_ctrl,
        sources={"lr": lr_source, "noise": noise_source},
        control_mode=_effective_control_mode(
            control_mode, _flatten(injected_lr, injected_noise), in_use
        ),
    )


def _source(ctrl: Controller | list[Controller]) -> str:
    """How the state dict names an injected controller (or one per LR arm)."""
    if isinstance(ctrl, list):
        return "injected:[" + ",".join(type(c).__name__ for c in ctrl) + "]"
    return f"injected:{type(ctrl).__name__}"


def _check_injected(name: str, ctrl: Any, n: int, axis: str) -> Controller | None:
    if ctrl is None:
        return None
    if not isinstance(ctrl, Controller):
        raise TypeError(
            f"{name} must be a Controller (n_arms, select_mode, update, state_dict, "
            f"load_state_dict), got {ctrl!r}."
        )
    if n == 1:
        raise ValueError(
            f"{name} was given, but the {axis} axis has a single candidate and uses no "
            "controller; pass more candidates or drop it."
        )
    if isinstance(ctrl.n_arms, bool) or ctrl.n_arms != n:
        raise ValueError(f"{name} has n_arms={ctrl.n_arms!r}, but there are {n} {axis} candidates.")
    return ctrl


def _check_injected_noise(
    ctrl: Any, n_noise: int, n_lr: int, conditional: bool
) -> Controller | list[Controller] | None:
    if ctrl is None:
        return None
    is_seq = isinstance(ctrl, Sequence) and not isinstance(ctrl, (str, bytes))
    if not conditional:
        if is_seq:
            raise TypeError(
                "noise_controller must be one Controller here (a sequence, one per LR arm, is "
                "only for structured_control_mode='conditional' with several LR and noise "
                f"candidates), got {ctrl!r}."
            )
        return _check_injected("noise_controller", ctrl, n_noise, "noise")
    if not is_seq:
        raise TypeError(
            "structured_control_mode='conditional' needs one noise controller per LR arm: pass "
            f"noise_controller as a sequence of them, got {ctrl!r}."
        )
    ctrls = list(ctrl)
    if len(ctrls) != n_lr:
        raise ValueError(
            f"structured_control_mode='conditional' needs {n_lr} noise controllers (one per LR "
            f"arm), got {len(ctrls)}."
        )
    for i, c in enumerate(ctrls):
        _check_injected(f"noise_controller[{i}]", c, n_noise, "noise")
    return ctrls


def _flatten(lr: Controller | None, noise: NoiseControllers) -> list[Any]:
    out: list[Any] = [lr] if lr is not None else []
    out += noise if isinstance(noise, list) else [noise] if noise is not None else []
    return out


def _check_distinct(lr: Controller | None, noise: NoiseControllers) -> None:
    ctrls = _flatten(lr, noise)
    if len({id(c) for c in ctrls}) != len(ctrls):
        raise ValueError("each injected controller must be a distinct object (one per axis/arm).")


def _effective_control_mode(control_mode: str, injected: list[Any], in_use: list[Any]) -> str:
    """See :attr:`aees.AEES.control_mode`."""
    if not injected:
        return control_mode
    built = [c for c in in_use if not any(c is i for i in injected)]
    if built or not all(isinstance(c, PrecomputedController) for c in in_use):
        return "custom"  # an axis still runs a bandit built from control_mode, or a custom one
    return "replay"
