"""The AEES wrapper: any ``torch.optim.Optimizer`` with a per-axis episodic bandit.

Call order per optimizer step (the contract)::

    aees.step_start()                     # opens an episode (and picks its arms) when none is open
    optimizer.zero_grad(); loss = ...; loss.backward()     # or scaler.scale(loss).backward()
    # optional: scaler.unscale_(optimizer); clip_grad_norm_(...)
    aees.step_end(loss)                   # unscale → noise → LR×m → step → restore LR → scheduler

``step_end`` keeps the loss on its device; losses (and, when enabled, update norms and the
scaler's skip flags) are read back once, when the episode closes. Nothing per step waits for the
device, and no copy of the parameters is held unless ``track_update_norm=True``.

AEES owns the step count: ``num_steps`` is the number of completed ``step_end`` calls. The
episodes' start/end steps and the counter noise's step index are both ``num_steps``; a step given
to ``step_start(step)`` (pulseopt's signature) must equal it.

Around the class: :mod:`aees.arguments` checks the constructor's arguments,
:mod:`aees.controller_setup` builds or checks each axis's controller, :mod:`aees.device_steps`
holds the per-step device work (the LR multiplier, the step records read back per episode) and
:mod:`aees.wrapper_state` validates a saved state; the episodes themselves are
:mod:`aees.episode`'s.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from aees.amp import ScalerStep
from aees.arguments import check_arguments, check_hooks
from aees.checks import check_candidates
from aees.controller_setup import setup_controllers
from aees.controllers import Controller, PrecomputedController
from aees.device_steps import Loss, StepRecords, multiply_lrs, restore_lrs
from aees.distributed import resolve_group, shared_random_seed
from aees.episode import StructuredEpisodeManager
from aees.noise import GradEntry, make_noise_source
from aees.reward import NormalizedLossImprovementReward
from aees.types import CandidateConfig, EpisodeHook, EpisodeRecord, EpisodeSummary
from aees.wrapper_state import WRAPPER_STATE_VERSION, check_wrapper_state

NoiseControllerArg = Controller | Sequence[Controller] | None


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
        control_mode: ``"adaptive"`` (UCB) or ``"random"`` (uniform; ignores rewards): how the
            controllers of the axes not given by ``lr_controller``/``noise_controller`` are
            built. The mode in force is :attr:`control_mode` (``"replay"``/``"custom"`` when
            controllers were injected).
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
        lr_controller: a :class:`~aees.controllers.Controller` (``n_arms ==
            len(lr_candidates)``) used for the LR axis instead of the one ``control_mode`` would
            build. Only for an axis with several candidates.
        noise_controller: the same for the noise axis; in ``"conditional"`` mode with several
            LR and noise candidates, a sequence of ``len(lr_candidates)`` controllers (one per
            LR arm). Injected controllers are used as given (not copied); their
            ``state_dict`` is saved in :meth:`state_dict`, so a run resumes exactly when the
            fresh object is built with controllers of the same kind (a
            :class:`~aees.controllers.PrecomputedController` with the same schedule).

    Steps: AEES owns the step count (:attr:`num_steps`, the completed ``step_end`` calls).
    Episodes start and end at ``num_steps`` and the counter noise of a step is drawn for
    ``num_steps``; ``step_start()`` needs no argument, and a ``global_step`` given to it (the
    pulseopt signature, where it only labelled the episode's start step) must equal
    ``num_steps``, or ``ValueError`` says so. After ``load_state_dict`` the count continues
    from the saved one.
    """

    # Over 80 lines with its signature: pulseopt's 25 keywords take 29 lines, and the body only
    # hands them to named helpers (check_arguments, setup_controllers, the episode manager).
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
        lr_controller: Controller | None = None,
        noise_controller: NoiseControllerArg = None,
    ) -> None:
        lr_values, noise_values = check_arguments(
            optimizer,
            lr_candidates=lr_candidates,
            noise_candidates=noise_candidates,
            episode_length=episode_length,
            lr_scheduler=lr_scheduler,
            control_mode=control_mode,
            structured_control_mode=structured_control_mode,
            context_mode=context_mode,
            seed=seed,
            track_update_norm=track_update_norm,
            noise_source=noise_source,
            grad_scaler=grad_scaler,
            nonfinite=nonfinite,
        )
        hooks = check_hooks(on_episode_end)
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
        axes = setup_controllers(
            len(lr_values),
            len(noise_values),
            control_mode=control_mode,
            structured_control_mode=structured_control_mode,
            context_mode=context_mode,
            seed=self.seed,
            lr_controller=lr_controller,
            noise_controller=noise_controller,
        )
        self._config = {
            "control_mode": axes.control_mode,
            "controllers": axes.sources,
            "structured_control_mode": structured_control_mode,
            "context_mode": context_mode,
            "noise_source": noise_source,
            "nonfinite": nonfinite,
            "track_update_norm": track_update_norm,
        }
        self._manager = StructuredEpisodeManager(
            lr_values,
            noise_values,
            axes.lr,
            axes.noise,
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
        self._records = StepRecords()  # the open episode's per-step records, on the device

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
        """Optimizer steps completed (``step_end`` calls); the one step count AEES uses."""
        return self._num_steps

    @property
    def control_mode(self) -> str:
        """The control mode in force: the ``control_mode`` argument when no controller was
        injected; ``"replay"`` when every controller in use was injected and is a
        :class:`~aees.controllers.PrecomputedController` (what :meth:`replay` builds);
        ``"custom"`` for any other injection. Saved in the state dict and checked on load."""
        return str(self._config["control_mode"])

    def get_logs(self) -> dict[str, list[Any]]:
        """Per closed episode: arms, rewards and their parts, steps, losses (pulseopt keys)."""
        return self._manager.get_logs()

    def register_episode_end_hook(self, hook: EpisodeHook) -> RemovableHandle:
        """Call ``hook(record)`` (an :class:`~aees.types.EpisodeRecord`) whenever an episode closes.

        Episodes close inside ``step_end`` (the step that fills one) and in ``finalize``; hooks
        run after the episode is logged and the bandits are updated, in registration order, on
        every rank. The record is built from host numbers the close already read, so a hook adds
        no device sync. Hooks
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
    def step_start(self, global_step: int | None = None) -> CandidateConfig:
        """Open step :attr:`num_steps`; if no episode is open, open one there and pick its arms.

        ``global_step`` is optional (pulseopt's signature); when given it must equal
        :attr:`num_steps`, the step count AEES owns (see the class docstring).
        """
        if self._step_open:
            raise RuntimeError("step_start() called twice without an intervening step_end().")
        if global_step is not None:
            if isinstance(global_step, bool) or not isinstance(global_step, numbers.Integral):
                raise TypeError(f"global_step must be an int or None, got {global_step!r}.")
            if global_step < 0:
                raise ValueError(f"global_step must be non-negative, got {global_step!r}.")
            if global_step != self._num_steps:
                raise ValueError(
                    f"step_start(global_step={global_step}) but this AEES has completed "
                    f"{self._num_steps} steps: AEES owns the step count, so the step given must "
                    f"equal aees.num_steps ({self._num_steps}); call step_start() without an "
                    "argument, or count steps from 0 in the same loop (and restore both from "
                    "one checkpoint)."
                )
        candidate = self._manager.open_episode(self._num_steps)
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
        self._records.losses.append(loss.detach() if isinstance(loss, Tensor) else float(loss))
        if len(self._records) >= self.episode_length:
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
        amp_step = ScalerStep(scaler, opt) if scaler is not None else None
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

        records = self._records
        params = self._params() if self.track_update_norm else None
        if params is not None:
            records.take_snapshot(params)

        groups = opt.param_groups
        mult = candidate.lr_multiplier
        saved = [g["lr"] for g in groups] if mult != 1.0 else None
        scaled: list[tuple[Tensor, Tensor]] = []
        try:
            if saved is not None:
                multiply_lrs(groups, saved, mult, scaled, self._lr_buffers)
            if scaler is not None:
                result = scaler.step(opt)
                scaler.update()
            else:
                result = opt.step(closure) if closure is not None else opt.step()
        finally:
            restore_lrs(groups, saved, scaled)
        if amp_step is not None:
            records.skipped.append(amp_step.skipped())
        if params is not None:
            records.record_update_norm(params)
        return result

    # ------------------------------------------------------------------ episodes
    def _close_episode(self) -> None:
        losses, skipped, norms = self._records.read(self._process_group)
        self._records.clear()
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
        if self._records.losses:
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
        losses, skipped, norms = self._records.read(self._process_group)
        return {
            "version": WRAPPER_STATE_VERSION,
            "compat": self._compat(),
            "seed": self.seed,
            "num_steps": self._num_steps,
            "manager": self._manager.state_dict(),
            "pending": {"losses": losses, "scaler_skipped": skipped, "update_norms": norms},
            "noise": self._noise.state_dict(),
        }

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """Validate the whole of ``state`` against this instance; change nothing.

        Returns the checked copy :meth:`load_checked_state_dict` assigns. Raises ``ValueError``
        naming the key (``where`` is the state's own name in messages) and the value: another
        version or setup (the compatibility block, candidates, controllers, log keys), a
        missing or unexpected key, a wrong type, a non-finite or negative statistic, an index
        out of range, or parts that contradict each other (docs/algorithm.md §12).
        """
        if self._step_open:
            raise RuntimeError("load_state_dict() called with an open step.")
        return check_wrapper_state(
            state,
            where,
            compat=self._compat(),
            manager=self._manager,
            noise=self._noise,
            sources=self._config["controllers"],
            episode_length=self.episode_length,
            has_scaler=self._scaler is not None,
            track_update_norm=self.track_update_norm,
        )

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        """Assign a state from :meth:`check_state_dict`; only a user's controller can still
        raise here, and then nothing has changed (see
        :meth:`~aees.episode.StructuredEpisodeManager.load_checked_state_dict`)."""
        self._manager.load_checked_state_dict(checked["manager"])
        self._noise.load_checked_state_dict(checked["noise"])
        self.seed = checked["seed"]
        self._num_steps = checked["num_steps"]
        self._records.load(checked["pending"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`: all of it, or nothing.

        The whole state is validated first (:meth:`check_state_dict`), then assigned; a
        ``ValueError`` names the key and the value and leaves this object as it was.
        """
        self.load_checked_state_dict(self.check_state_dict(state))

    # ------------------------------------------------------------------ replay
    @classmethod
    def replay(
        cls, optimizer: torch.optim.Optimizer, logs: dict[str, Sequence[Any]], **kwargs: Any
    ) -> AEES:
        """An open-loop AEES that replays the arms recorded in ``logs`` (from ``get_logs()``).

        Builds a :class:`~aees.controllers.PrecomputedController` per axis with several
        candidates (from ``logs["selected_lr_indices"]`` / ``logs["selected_noise_indices"]``)
        and passes them as ``lr_controller`` / ``noise_controller``; :attr:`control_mode` is
        then ``"replay"``. ``kwargs`` are :class:`AEES`'s and must give the recorded run's
        ``lr_candidates``, ``noise_candidates`` and ``episode_length``; ``control_mode`` is
        accepted and ignored (no bandit runs) and ``structured_control_mode`` is
        ``"independent"`` (one fixed sequence per axis). Rewards are still computed and logged.
        Equivalent to ``AEES(optimizer, lr_controller=PrecomputedController(n_lr, lr_arms),
        noise_controller=PrecomputedController(n_noise, noise_arms), **kwargs)``.
        """
        for key in ("lr_controller", "noise_controller"):
            if key in kwargs:
                raise TypeError(f"replay() builds the controllers from logs; got {key}=.")
        kwargs.pop("control_mode", None)
        kwargs["structured_control_mode"] = "independent"
        for axis, allow_zero in (("lr", False), ("noise", True)):
            if f"{axis}_candidates" not in kwargs:
                continue  # the default: one candidate, so no controller to replay
            candidates = kwargs[f"{axis}_candidates"]
            n = len(check_candidates(f"{axis}_candidates", candidates, allow_zero=allow_zero))
            if n == 1:
                continue
            key = f"selected_{axis}_indices"
            if key not in logs:
                raise ValueError(
                    f"replay() needs logs[{key!r}] for the {n} {axis} candidates; got keys "
                    f"{sorted(logs)}."
                )
            kwargs[f"{axis}_controller"] = PrecomputedController(n, [int(i) for i in logs[key]])
        return cls(optimizer, **kwargs)
