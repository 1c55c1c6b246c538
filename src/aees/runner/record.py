"""``controller_logs`` (docs/results-schema.md §5): per-axis controller snapshots, one per closed
episode.

:class:`ControllerLogRecorder` reads the controllers of an :class:`aees.AEES` after each closed
episode (host-side statistics only; nothing touches the device) and appends the thesis
histories: for discounted UCB ``value_estimates_history``, ``effective_counts_history``,
``warmup_counts_history`` and ``controller_updates_history``; for the bucketed (trend-context)
controller the per-bucket visit counts, reward sums and distinct-arm counts, the global prior's
four histories and each bucket controller's histories (``None`` until the bucket exists). The
recorder's whole state is its JSON-able dict, so checkpoints store it as is.
"""

from __future__ import annotations

import copy
from typing import Any

from aees import AEES, BucketedContextualController, DiscountedUCBController, RandomController

__all__ = ["ControllerLogRecorder"]

_DUCB_KEYS = (
    "value_estimates_history",
    "effective_counts_history",
    "warmup_counts_history",
    "controller_updates_history",
)


def _arm_dict(values: list[Any]) -> dict[str, Any]:
    return {str(arm): value for arm, value in enumerate(values)}


def _ducb_snapshot(ctrl: DiscountedUCBController) -> dict[str, Any]:
    return {
        "value_estimates_history": _arm_dict(ctrl.mean_rewards()),
        "effective_counts_history": _arm_dict(list(ctrl.counts)),
        "warmup_counts_history": _arm_dict(list(ctrl.warmup_counts)),
        "controller_updates_history": ctrl.total_updates,
    }


def _axis_log(axis: str, arms: list[float], ctrl: Any) -> dict[str, Any]:
    log: dict[str, Any] = {
        "controller_type": "FixedAxis" if ctrl is None else type(ctrl).__name__,
        "axis_name": axis,
        "arm_values": list(arms),
        "controller_created": ctrl is not None,
    }
    if ctrl is None:
        log["fixed_arm_value"] = arms[0]
    elif isinstance(ctrl, DiscountedUCBController):
        log.update({key: [] for key in _DUCB_KEYS})
    elif isinstance(ctrl, BucketedContextualController):
        buckets = list(ctrl.bucket_names)
        log.update(
            {
                "context_bucket_names": buckets,
                "prior_from_global": ctrl.prior_from_global,
                "bucket_visit_counts_history": [],
                "bucket_reward_sums_history": [],
                "bucket_distinct_arm_counts_history": [],
                "global_prior_logs": {key: [] for key in _DUCB_KEYS},
                "bucket_controller_logs": {
                    b: {
                        "bucket_id": i,
                        **{key: [] for key in _DUCB_KEYS},
                        "bucket_visit_count_history": [],
                    }
                    for i, b in enumerate(buckets)
                },
                # running totals behind the histories (kept so a resumed run continues them)
                "_visits": {b: 0 for b in buckets},
                "_reward_sums": {b: 0.0 for b in buckets},
                "_arms_seen": {b: [] for b in buckets},
            }
        )
    return log


class ControllerLogRecorder:
    """Builds the ``controller_logs`` block of one AEES run."""

    def __init__(self, aees: AEES) -> None:
        manager = aees.episode_manager
        self._manager = manager
        lr_arms = list(manager.lr_candidates)
        noise_arms = list(manager.noise_candidates)
        logs: dict[str, Any] = {
            "structured_control_mode": manager.structured_control_mode,
            "context_mode": manager.context_mode,
            "_logged_episode_count": 0,
            "lr_controller_logs": _axis_log("lr", lr_arms, manager.lr_controller),
        }
        noise = manager.noise_controller
        if isinstance(noise, list):
            logs["noise_controller_logs_by_lr"] = {
                str(lr): {**_axis_log("noise", noise_arms, c), "conditioned_on_lr_value": lr}
                for lr, c in zip(lr_arms, noise, strict=True)
            }
        else:
            logs["noise_controller_logs"] = _axis_log("noise", noise_arms, noise)
        if any(
            isinstance(c, RandomController)
            for c in (manager.lr_controller, *(noise if isinstance(noise, list) else [noise]))
        ):
            logs["non_contextual_random_note"] = (
                "random control mode: arms are drawn uniformly; rewards and context are ignored"
            )
        self._logs = logs

    @property
    def count(self) -> int:
        """Episodes snapshotted so far."""
        return int(self._logs["_logged_episode_count"])

    def _pairs(self) -> list[tuple[dict[str, Any], Any, str]]:
        m, logs = self._manager, self._logs
        out = [(logs["lr_controller_logs"], m.lr_controller, "selected_lr_indices")]
        if "noise_controller_logs_by_lr" in logs:
            for log, ctrl in zip(
                logs["noise_controller_logs_by_lr"].values(), m.noise_controller, strict=True
            ):
                out.append((log, ctrl, "selected_noise_indices"))
        else:
            out.append(
                (logs["noise_controller_logs"], m.noise_controller, "selected_noise_indices")
            )
        return out

    def sync(self) -> int:
        """Append one snapshot per episode closed since the last call; returns how many."""
        closed = len(self._manager.get_logs()["episode_rewards"])
        new = closed - self.count
        if new <= 0:
            return 0
        episode_logs = self._manager.get_logs()
        for offset in range(new):
            index = self.count + offset
            for log, ctrl, index_key in self._pairs():
                self._append(log, ctrl, episode_logs, index, index_key)
        self._logs["_logged_episode_count"] = closed
        return new

    @staticmethod
    def _append(
        log: dict[str, Any], ctrl: Any, episodes: dict[str, list[Any]], index: int, key: str
    ) -> None:
        if isinstance(ctrl, DiscountedUCBController):
            for name, value in _ducb_snapshot(ctrl).items():
                log[name].append(value)
        elif isinstance(ctrl, BucketedContextualController):
            bucket = (episodes.get("context_buckets") or [None] * (index + 1))[index]
            reward = episodes["episode_rewards"][index]
            if bucket in log["_visits"]:
                log["_visits"][bucket] += 1
                log["_reward_sums"][bucket] += float(reward) if reward is not None else 0.0
                arm = int(episodes[key][index])
                if arm not in log["_arms_seen"][bucket]:
                    log["_arms_seen"][bucket].append(arm)
            log["bucket_visit_counts_history"].append(dict(log["_visits"]))
            log["bucket_reward_sums_history"].append(dict(log["_reward_sums"]))
            log["bucket_distinct_arm_counts_history"].append(
                {b: len(arms) for b, arms in log["_arms_seen"].items()}
            )
            for name, value in _ducb_snapshot(ctrl.global_prior).items():
                log["global_prior_logs"][name].append(value)
            for b, sub in log["bucket_controller_logs"].items():
                bucket_ctrl = ctrl.buckets.get(b)
                snap = _ducb_snapshot(bucket_ctrl) if bucket_ctrl is not None else None
                for name in _DUCB_KEYS:
                    sub[name].append(snap[name] if snap is not None else None)
                sub["bucket_visit_count_history"].append(log["_visits"][b])

    def to_dict(self) -> dict[str, Any]:
        """The ``controller_logs`` block (a deep copy, without the private running totals)."""
        out = copy.deepcopy(self._logs)
        for log, _ctrl, _key in self._pairs_of(out):
            for private in ("_visits", "_reward_sums", "_arms_seen"):
                log.pop(private, None)
        return out

    @staticmethod
    def _pairs_of(logs: dict[str, Any]) -> list[tuple[dict[str, Any], None, None]]:
        axis_logs = [logs["lr_controller_logs"]]
        if "noise_controller_logs_by_lr" in logs:
            axis_logs.extend(logs["noise_controller_logs_by_lr"].values())
        else:
            axis_logs.append(logs["noise_controller_logs"])
        return [(log, None, None) for log in axis_logs]

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._logs)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._logs = copy.deepcopy(state)
