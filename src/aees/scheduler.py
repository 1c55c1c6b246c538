"""The AEES facade: wraps any ``torch.optim.Optimizer`` with a per-axis episodic bandit.

Call order per optimizer step (the contract)::

    aees.step_start(step)                 # opens an episode (and picks its arms) when none is open
    optimizer.zero_grad(); loss = ...; loss.backward()     # or scaler.scale(loss).backward()
    # optional: scaler.unscale_(optimizer); clip_grad_norm_(...)
    aees.step_end(loss)                   # unscale → noise → LR×m → step → restore LR → scheduler

``step_end`` keeps the loss on its device; losses (and, when enabled, update norms and the
scaler's skip flags) are read back once, when the episode closes. Nothing per step waits for the
device, and no copy of the parameters is held unless ``track_update_norm=True``.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from aees.controllers import Controller, PrecomputedController, build_controller
from aees.distributed import average_across_ranks, resolve_group, shared_random_seed
from aees.episode import StructuredEpisodeManager
from aees.noise import GradEntry, make_noise_source
from aees.reward import NormalizedLossImprovementReward
from aees.types import (
    CONTEXT_MODES,
    CONTROL_MODES,
    NOISE_SOURCES,
    NONFINITE_POLICIES,
    STRUCTURED_CONTROL_MODES,
    CandidateConfig,
    EpisodeRecord,
    EpisodeSummary,
    check_candidates,
    check_choice,
    check_int,
)

_STATE_VERSION = 1
Loss = Tensor | float
EpisodeHook = Callable[[EpisodeRecord], None]


class AEES:
    """Adaptive Episodic Exploration Scheduling around ``optimizer``.

    Training is cut into episodes of ``episode_length`` optimizer steps. When an episode opens,
    one bandit per axis picks an LR multiplier from ``lr_candidates`` and a gradient-noise std
    from ``noise_candidates``; both are held for the episode. When it closes, the episode reward
    ``clip(ln(L_1 + ε) − ln(E_n + ε) − λ·instability, r_min, r_max)`` (see :mod:`aees.reward`)
    is credited to both bandits (discounted UCB by default, see :mod:`aees.controllers`).

    The keyword names, defaults and decisions are those of pulseopt 0.3.0's ``AEES``.

    Args:
        optimizer: any ``torch.optim.Optimizer``; each param group needs an ``"lr"`` (float or
            tensor). Multipliers scale every group's LR, so their ratios are preserved.
        lr_candidates: LR multipliers (> 0). Default ``(1.0,)``.
        noise_candidates: absolute gradient-noise stds (≥ 0), not scaled by LR. Default ``(0.0,)``.
        episode_length: optimizer steps per episode. Default 100.
        lr_scheduler: if given, ``lr_scheduler.step()`` is called after every ``step_end`` (it only
            ever sees the base LR). If not, step your scheduler yourself.
        control_mode: ``"adaptive"`` (UCB) or ``"random"`` (uniform; ignores rewards).
        structured_control_mode: ``"independent"`` (one bandit per axis) or ``"conditional"``
            (one noise bandit per LR arm).
        context_mode: ``"none"`` or ``"trend"`` (bandits per loss-trend bucket).
        context_trend_window, context_trend_epsilon: the trend context's window (episodes) and
            absolute slope threshold (loss units).
        reward_instability_lambda, reward_epsilon, reward_clip_min, reward_clip_max, ema_alpha:
            the reward's λ, ε, clip range and EMA weight α.
        seed: seeds the controllers (``seed``; noise bandit ``seed + 101``) and the noise. With
            ``None`` a seed is drawn from OS entropy (shared across DDP ranks) and kept in
            ``self.seed`` and the state dict, so even such runs resume exactly.
        track_update_norm: log the mean ‖Δθ‖ per episode (``mean_update_norms``). Costs one
            persistent copy of the parameters and a few foreach kernels per step; off by default
            (the entries are then ``None``).
        noise_source: ``"counter"`` (fast, one kernel per step, DDP/resume-safe) or
            ``"pulseopt"`` (per-parameter generators; pulseopt's parameters bit for bit).
        grad_scaler: a ``torch.amp.GradScaler``. AEES then unscales (unless you already called
            ``scaler.unscale_``), adds noise to the unscaled gradients, steps through
            ``scaler.step`` and calls ``scaler.update()``. Steps the scaler skipped are left out
            of the episode reward and counted in ``episode_scaler_skipped_steps``.
        nonfinite: what a non-finite loss does when the episode's losses are read back:
            ``"raise"`` (``ValueError`` naming the step, after the episode was closed without it)
            or ``"skip"`` (left out of the reward, counted in ``episode_nonfinite_steps``).
        process_group: under ``torch.distributed``, the group whose ranks' episode statistics
            are averaged (once per episode); ``None`` uses the default group when initialised.
        on_episode_end: a hook, or a list of hooks, called with an
            :class:`~aees.types.EpisodeRecord` whenever an episode closes (see
            :meth:`register_episode_end_hook`).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        lr_candidates: Sequence[float] = (1.0,),
        noise_candidates: Sequence[float] = (0.0,),
        episode_length: int = 100,
        lr_scheduler: Any = None,
        control_mode: str = "adaptive",
        structured_control_mode: str = "independent",
        context_mode: str = "none",
        context_trend_window: int = 3,
        context_trend_epsilon: float = 1e-3,
        reward_instability_lambda: float = 0.0,
        reward_epsilon: float = 1e-8,
        reward_clip_min: float = -1.0,
        reward_clip_max: float = 1.0,
        ema_alpha: float = 0.1,
        seed: int | None = None,
        track_update_norm: bool = False,
        noise_source: str = "counter",
        grad_scaler: Any = None,
        nonfinite: str = "raise",
        process_group: Any = None,
        on_episode_end: EpisodeHook | Sequence[EpisodeHook] | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}."
            )
        for i, group in enumerate(optimizer.param_groups):
            if "lr" not in group:
                raise TypeError(f"optimizer param group {i} has no 'lr' entry to scale.")
        check_choice("control_mode", control_mode, CONTROL_MODES)
        check_choice("context_mode", context_mode, CONTEXT_MODES)
        check_choice("structured_control_mode", structured_control_mode, STRUCTURED_CONTROL_MODES)
        lr_values = check_candidates("lr_candidates", lr_candidates, allow_zero=False)
        noise_values = check_candidates("noise_candidates", noise_candidates, allow_zero=True)
        check_int("episode_length", episode_length, minimum=1)
        if lr_scheduler is not None and not callable(getattr(lr_scheduler, "step", None)):
            raise TypeError(f"lr_scheduler must have a step() method, got {lr_scheduler!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise TypeError(f"seed must be an int or None, got {seed!r}.")
        if not isinstance(track_update_norm, bool):
            raise TypeError(f"track_update_norm must be a bool, got {track_update_norm!r}.")
        check_choice("noise_source", noise_source, NOISE_SOURCES)
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        if grad_scaler is not None and not all(
            callable(getattr(grad_scaler, m, None)) for m in ("unscale_", "step", "update")
        ):
            raise TypeError(f"grad_scaler must be a torch.amp.GradScaler, got {grad_scaler!r}.")
        hooks = [] if on_episode_end is None else on_episode_end
        hooks = [hooks] if callable(hooks) else list(hooks)
        for hook in hooks:
            if not callable(hook):
                raise TypeError(
                    f"on_episode_end must be callable (or a list of callables), got {hook!r}."
                )
        reward_fn = NormalizedLossImprovementReward(
            reward_instability_lambda=reward_instability_lambda,
            reward_epsilon=reward_epsilon,
            reward_clip_min=reward_clip_min,
            reward_clip_max=reward_clip_max,
            ema_alpha=ema_alpha,
        )

        self._optimizer = optimizer
        self._lr_scheduler = lr_scheduler
        self._process_group = process_group
        self.seed = (
            int(seed) if seed is not None else shared_random_seed(resolve_group(process_group))
        )
        self.episode_length = episode_length
        self.track_update_norm = track_update_norm
        self.nonfinite = nonfinite
        self._scaler = grad_scaler
        self._noise = make_noise_source(noise_source, self.seed)
        self._config = {
            "control_mode": control_mode,
            "structured_control_mode": structured_control_mode,
            "context_mode": context_mode,
            "noise_source": noise_source,
            "nonfinite": nonfinite,
            "track_update_norm": track_update_norm,
        }

        lr_ctrl = build_controller(len(lr_values), control_mode, context_mode, self.seed)
        noise_ctrl: Controller | list[Controller] | None
        if (
            structured_control_mode == "conditional"
            and len(lr_values) > 1
            and len(noise_values) > 1
        ):
            noise_ctrl = [
                build_controller(len(noise_values), control_mode, context_mode, self.seed + 101 + i)
                for i in range(len(lr_values))
            ]  # type: ignore[misc]
        else:
            noise_ctrl = build_controller(
                len(noise_values), control_mode, context_mode, self.seed + 101
            )
        self._manager = StructuredEpisodeManager(
            lr_values,
            noise_values,
            lr_ctrl,
            noise_ctrl,
            reward_fn,
            episode_length,
            structured_control_mode,
            context_mode,
            context_trend_window,
            context_trend_epsilon,
            extended_logs=grad_scaler is not None or nonfinite == "skip",
            on_close=self._episode_closed,
        )
        self._episode_end_hooks: OrderedDict[int, EpisodeHook] = OrderedDict()
        for hook in hooks:
            self.register_episode_end_hook(hook)
        # per tensor LR: a buffer that holds its base value while the multiplied one is in force
        self._lr_buffers: dict[int, Tensor] = {}

        self._step_open = False
        self._current: CandidateConfig | None = None
        self._num_steps = 0  # optimizer steps completed through step_end
        # the open episode's per-step records, still on the device where they were produced
        self._losses: list[Loss] = []
        self._skipped: list[Tensor] = []
        self._norms: list[Tensor] = []
        self._snapshot: list[Tensor] | None = None

    # ------------------------------------------------------------------ introspection
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    @property
    def episode_manager(self) -> StructuredEpisodeManager:
        return self._manager

    @property
    def current_candidate(self) -> CandidateConfig | None:
        """The arm in force between ``step_start`` and ``step_end`` (``None`` otherwise)."""
        return self._current

    @property
    def num_steps(self) -> int:
        return self._num_steps

    def get_logs(self) -> dict[str, list[Any]]:
        """Per closed episode: arms, rewards and their parts, steps, losses (pulseopt keys)."""
        return self._manager.get_logs()

    def register_episode_end_hook(self, hook: EpisodeHook) -> RemovableHandle:
        """Call ``hook(record)`` (an :class:`~aees.types.EpisodeRecord`) whenever an episode closes.

        Episodes close inside ``step_end`` (the step that fills one), in ``finalize``, and in the
        pulseopt-compatible ``episode_manager.on_step_end``; hooks run after the episode is
        logged and the bandits are updated, in registration order, on every rank. The record is
        built from host numbers the close already read, so a hook adds no device sync. Hooks
        are not part of ``state_dict``: register them again after building a fresh object.
        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {hook!r}.")
        handle = RemovableHandle(self._episode_end_hooks)
        self._episode_end_hooks[handle.id] = hook
        return handle

    def _episode_closed(self, summary: EpisodeSummary) -> None:
        if self._episode_end_hooks:
            record = EpisodeRecord.from_summary(summary)
            for hook in list(self._episode_end_hooks.values()):
                hook(record)

    def __repr__(self) -> str:
        m = self._manager
        return (
            f"AEES(lr_candidates={m.lr_candidates}, noise_candidates={m.noise_candidates}, "
            f"episode_length={self.episode_length}, seed={self.seed}, {self._config})"
        )

    # ------------------------------------------------------------------ the step
    def step_start(self, global_step: int) -> CandidateConfig:
        """Open a step; if no episode is open, open one at ``global_step`` and pick its arms."""
        if self._step_open:
            raise RuntimeError("step_start() called twice without an intervening step_end().")
        candidate = self._manager.open_episode(global_step)
        self._current = candidate
        self._step_open = True
        return candidate

    def step_end(
        self,
        loss: Loss | Callable[[], Loss | None] | None = None,
        *,
        closure: Callable[[], Any] | None = None,
    ) -> Any:
        """Apply the arm and step the optimizer; record ``loss`` for the episode reward.

        ``loss`` is the step's (unscaled) training loss: a scalar tensor (kept on its device) or a
        float. With ``closure``, the closure computes the gradients (noise is added after it) and
        its returned loss is used when ``loss`` is ``None``. ``loss`` may also be a function
        called once the optimizer has stepped, for callers that only learn the loss while the
        closure runs (:class:`aees.AEESOptimizer` fed by framework hooks); when it returns
        ``None`` the closure's loss is used. Returns what ``optimizer.step`` returned.
        """
        if not self._step_open:
            raise RuntimeError("step_end() called without a preceding step_start().")
        if loss is None and closure is None:
            raise TypeError("step_end() needs a loss (or a closure that returns one).")
        deferred = loss if callable(loss) and not isinstance(loss, Tensor) else None
        if deferred is not None:
            loss = None
        elif loss is not None:
            self._check_loss(loss)
        if closure is not None and self._scaler_enabled():
            raise ValueError(
                "closure cannot be combined with a GradScaler (torch does not allow it)."
            )
        candidate = self._current
        assert candidate is not None
        try:
            result = self._optimizer_step(candidate, closure)
        finally:
            # the step is closed even if the optimizer raised: the object stays usable
            self._step_open = False
            self._current = None
        if deferred is not None:
            loss = deferred()
            if loss is not None:
                self._check_loss(loss)
        if loss is None:
            if result is None:
                raise TypeError("the closure returned None; step_end() needs a loss.")
            loss = result
            self._check_loss(loss)
        if self._lr_scheduler is not None:
            self._lr_scheduler.step()
        self._num_steps += 1
        self._losses.append(loss.detach() if isinstance(loss, Tensor) else float(loss))
        if len(self._losses) >= self.episode_length:
            self._close_episode()
        return result

    @staticmethod
    def _check_loss(loss: Any) -> None:
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(f"loss must be a scalar tensor, got shape {tuple(loss.shape)}.")
        elif isinstance(loss, bool) or not isinstance(loss, numbers.Real):
            raise TypeError(f"loss must be a tensor or a real number, got {type(loss).__name__}.")

    def _scaler_enabled(self) -> bool:
        return self._scaler is not None and self._scaler.is_enabled()

    def _grads(self) -> list[GradEntry]:
        return [
            (gi, pi, p.grad)
            for gi, group in enumerate(self._optimizer.param_groups)
            for pi, p in enumerate(group["params"])
            if p.grad is not None
        ]

    def _params(self) -> list[Tensor]:
        return [p.detach() for g in self._optimizer.param_groups for p in g["params"]]

    def _optimizer_step(self, candidate: CandidateConfig, closure: Callable[[], Any] | None) -> Any:
        opt, std, step = self._optimizer, candidate.noise_std, self._num_steps
        scaler = self._scaler if self._scaler_enabled() else None
        skipped = self._unscale(scaler) if scaler is not None else None
        if closure is not None and std > 0.0:
            user_closure = closure

            def closure() -> Any:
                with torch.enable_grad():
                    value = user_closure()
                self._noise.add_(self._grads(), std, step)
                return value

        elif std > 0.0:
            grads = self._grads()
            if grads:
                self._noise.add_(grads, std, step)

        params = self._params() if self.track_update_norm else None
        if params is not None:
            self._take_snapshot(params)

        groups = opt.param_groups
        mult = candidate.lr_multiplier
        saved = [g["lr"] for g in groups] if mult != 1.0 else None
        scaled: list[tuple[Tensor, Tensor]] = []
        try:
            if saved is not None:
                self._scale_tensor_lrs(saved, mult, scaled)
                for g, lr in zip(groups, saved, strict=True):
                    if not isinstance(lr, Tensor):
                        g["lr"] = lr * mult
            if scaler is not None:
                result = scaler.step(opt)
                scaler.update()
            else:
                result = opt.step(closure) if closure is not None else opt.step()
        finally:
            if saved is not None:
                for g, lr in zip(groups, saved, strict=True):
                    g["lr"] = lr
            with torch.no_grad():
                for lr, base in scaled:
                    lr.copy_(base)
        if skipped is not None:
            self._skipped.append(skipped)
        if params is not None:
            self._record_update_norm(params)
        return result

    def _scale_tensor_lrs(
        self, lrs: list[Any], mult: float, scaled: list[tuple[Tensor, Tensor]]
    ) -> None:
        """Multiply each distinct tensor LR in place; append (lr, buffer holding its base value).

        In place, so the optimizer sees the same tensor object (same storage) at every step:
        a compiled or CUDA-graph-captured step keeps its inputs and does not recompile when the
        arm changes. The base value is copied into a buffer allocated once per tensor and copied
        back afterwards, so it is restored bit for bit (no division). A tensor shared by several
        groups (torch's defaults are shared) is scaled once.
        """
        seen: set[int] = set()
        with torch.no_grad():
            for lr in lrs:
                if not isinstance(lr, Tensor) or id(lr) in seen:
                    continue
                seen.add(id(lr))
                buf = self._lr_buffers.get(id(lr))
                fits = buf is not None and (buf.shape, buf.dtype, buf.device) == (
                    lr.shape,
                    lr.dtype,
                    lr.device,
                )
                if not fits:
                    buf = self._lr_buffers[id(lr)] = torch.empty_like(lr, requires_grad=False)
                buf.copy_(lr)
                scaled.append((lr, buf))  # before mul_: restored even if mul_ raised
                lr.mul_(mult)
        if len(self._lr_buffers) > len(seen):  # LR tensors the groups no longer hold
            for key in self._lr_buffers.keys() - seen:
                del self._lr_buffers[key]

    def _unscale(self, scaler: Any) -> Tensor:
        from torch.amp.grad_scaler import OptState

        state = scaler._per_optimizer_states[id(self._optimizer)]
        if state["stage"] is not OptState.UNSCALED:
            scaler.unscale_(self._optimizer)
        # 1.0 on every device whose gradients held an inf/NaN: scaler.step will skip the step
        found = list(state["found_inf_per_device"].values())
        if len(found) == 1:
            return found[0].to(torch.float64)  # a copy: the scaler's own flag is reset later
        return sum(f.to(torch.float64).cpu() for f in found)

    def _take_snapshot(self, params: list[Tensor]) -> None:
        snap = self._snapshot
        if snap is None or len(snap) != len(params):  # allocated once (again if groups change)
            snap = self._snapshot = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(snap, params)

    def _record_update_norm(self, params: list[Tensor]) -> None:
        snap = self._snapshot
        assert snap is not None
        torch._foreach_sub_(snap, params)  # θ_old − θ_new, in the preallocated buffers
        norms = torch._foreach_norm(snap, 2, dtype=torch.float32)
        device = norms[0].device
        if any(n.device != device for n in norms):
            norms = [n.to(device) for n in norms]
        self._norms.append(torch.linalg.vector_norm(torch.stack(norms)).to(torch.float64))

    # ------------------------------------------------------------------ episodes
    def _read_pending(self) -> tuple[list[float], list[float], list[float]]:
        """The open episode's losses, skip flags and update norms as host floats.

        One stack and transfer per (device, dtype) involved; under ``torch.distributed`` the
        values are then averaged across ranks with one ``all_reduce``.
        """
        tensors = [x for x in self._losses if isinstance(x, Tensor)] + self._skipped + self._norms
        by_kind: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, t in enumerate(tensors):
            by_kind.setdefault((t.device, t.dtype), []).append(i)
        values = [0.0] * len(tensors)
        for idx in by_kind.values():  # one stack + one transfer per (device, dtype); no casts
            host = torch.stack([tensors[i].reshape(()) for i in idx]).tolist()
            for i, v in zip(idx, host, strict=True):
                values[i] = float(v)
        it = iter(values)
        losses = [next(it) if isinstance(x, Tensor) else x for x in self._losses]
        skipped = [next(it) for _ in self._skipped]
        norms = [next(it) for _ in self._norms]
        group = resolve_group(self._process_group)
        if group is not None:
            n_l, n_s = len(losses), len(skipped)
            flat = average_across_ranks(losses + skipped + norms, group)
            losses, skipped, norms = flat[:n_l], flat[n_l : n_l + n_s], flat[n_l + n_s :]
        return losses, skipped, norms

    def _close_episode(self) -> None:
        losses, skipped, norms = self._read_pending()
        self._losses, self._skipped, self._norms = [], [], []
        self._manager.close_episode(
            losses,
            scaler_skipped=[s > 0.0 for s in skipped] if skipped else None,
            update_norms=norms or None,
            nonfinite=self.nonfinite,
        )

    def finalize(self) -> None:
        """Close a trailing partial episode (rewarded on its steps); idempotent."""
        if self._step_open:
            raise RuntimeError("finalize() called with an open step — call step_end() first.")
        if self._losses:
            self._close_episode()

    # ------------------------------------------------------------------ state
    def _compat(self) -> dict[str, Any]:
        return {
            **self._config,
            "param_counts": [len(g["params"]) for g in self._optimizer.param_groups],
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: controllers (with RNG states), the open
        episode and its losses, the trend history, noise RNG, step counter and logs.

        Save the optimizer, model and scheduler yourself, as usual. Reading the open episode's
        losses waits for the device once. Under ``torch.distributed`` call it on every rank: the
        open episode's losses are averaged across ranks (one collective), so the saved state is
        the same everywhere and loading it on every rank resumes exactly.
        """
        if self._step_open:
            raise RuntimeError("state_dict() called with an open step — call step_end() first.")
        losses, skipped, norms = self._read_pending()
        return {
            "version": _STATE_VERSION,
            "compat": self._compat(),
            "seed": self.seed,
            "num_steps": self._num_steps,
            "manager": self._manager.state_dict(),
            "pending": {"losses": losses, "scaler_skipped": skipped, "update_norms": norms},
            "noise": self._noise.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; raises ``ValueError`` for an incompatible setup."""
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"not an AEES state dict of version {_STATE_VERSION} "
                f"(got version {state.get('version') if isinstance(state, dict) else state!r})."
            )
        if self._step_open:
            raise RuntimeError("load_state_dict() called with an open step.")
        mine = self._compat()
        for key, value in state["compat"].items():
            if mine.get(key) != value:
                raise ValueError(
                    f"cannot load AEES state: it was saved with {key}={value!r}, "
                    f"this instance has {key}={mine.get(key)!r}."
                )
        self._manager.load_state_dict(state["manager"])
        self._noise.load_state_dict(state["noise"])
        self.seed = int(state["seed"])
        self._num_steps = int(state["num_steps"])
        pending = state["pending"]
        self._losses = [float(v) for v in pending["losses"]]
        self._skipped = [
            torch.tensor(float(v), dtype=torch.float64) for v in pending["scaler_skipped"]
        ]
        self._norms = [torch.tensor(float(v), dtype=torch.float64) for v in pending["update_norms"]]

    # ------------------------------------------------------------------ replay
    @classmethod
    def replay(
        cls, optimizer: torch.optim.Optimizer, logs: dict[str, Sequence[Any]], **kwargs: Any
    ) -> AEES:
        """An open-loop AEES that replays the arms recorded in ``logs`` (from ``get_logs()``).

        ``kwargs`` must give the same ``lr_candidates``, ``noise_candidates`` and
        ``episode_length`` as the recorded run; rewards are still computed and logged.
        """
        kwargs["structured_control_mode"] = "independent"  # one fixed sequence per axis
        aees = cls(optimizer, **kwargs)
        m = aees._manager
        if len(m.lr_candidates) > 1:
            lr_arms = [int(i) for i in logs["selected_lr_indices"]]
            m.lr_controller = PrecomputedController(len(m.lr_candidates), lr_arms)
        if len(m.noise_candidates) > 1:
            noise_arms = [int(i) for i in logs["selected_noise_indices"]]
            m.noise_controller = PrecomputedController(len(m.noise_candidates), noise_arms)
        aees._config["control_mode"] = "replay"
        return aees
