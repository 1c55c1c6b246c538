"""Gradient-noise sources: ``g ← g + σ·ξ``, ξ ~ N(0, I), with an absolute std σ.

Two sources, chosen by ``AEES(noise_source=...)``:

* ``"counter"`` (default) — counter-based: for optimizer step t, one generator per device is
  seeded from ``(seed, t, group)`` and draws the whole step's noise for each (device, dtype)
  group in a single ``randn`` call, which is then added with one ``torch._foreach_add_``. The
  noise depends only on (seed, t), so it is identical on every DDP rank and resumes exactly
  with nothing but the step counter saved.
* ``"pulseopt"`` — pulseopt 0.3.0's scheme: a lazily created generator per parameter, seeded
  ``seed + group_index·1009 + param_index``, one ``randn`` per parameter. It reproduces
  pulseopt's parameters bit for bit; its generator states are saved in ``state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from aees.state_checks import (
    same_plain,
    state_error,
    state_int,
    state_keys,
    state_mapping,
    state_path,
)

_MASK64 = (1 << 64) - 1

# (group index, param index, grad) for every parameter that has a gradient, in param_groups order
GradEntry = tuple[int, int, Tensor]


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def stream_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit generator seed derived from (seed, step, stream) by SplitMix64 mixing."""
    x = _splitmix64(seed & _MASK64)
    x = _splitmix64(x ^ (step & _MASK64))
    return _splitmix64(x ^ (stream & _MASK64)) >> 1


class CounterNoise:
    """Counter-based noise: the draw for step t is a pure function of (seed, t)."""

    name = "counter"

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def _generator(self, device: torch.device) -> torch.Generator:
        gen = self._generators.get(device)
        if gen is None:
            gen = self._generators[device] = torch.Generator(device=device)
        return gen

    def add_(self, grads: list[GradEntry], std: float, step: int) -> None:
        buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
        for _, _, g in grads:
            buckets.setdefault((g.device, g.dtype), []).append(g)
        for stream, ((device, dtype), tensors) in enumerate(buckets.items()):
            gen = self._generator(device)
            gen.manual_seed(stream_seed(self.seed, step, stream))
            sizes = [t.numel() for t in tensors]
            flat = torch.randn(sum(sizes), generator=gen, device=device, dtype=dtype)
            noise = [n.view_as(t) for n, t in zip(flat.split(sizes), tensors, strict=True)]
            torch._foreach_add_(tensors, noise, alpha=std)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.name, "seed": self.seed}

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """The checked copy of ``state``; changes nothing (docs/algorithm.md §12)."""
        _check_kind(where, state, self.name, ())
        return {"seed": state_int(state_path(where, "seed"), state["seed"], minimum=None)}

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        self.seed = checked["seed"]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_checked_state_dict(self.check_state_dict(state))


class PulseoptNoise:
    """pulseopt 0.3.0's per-parameter generators (bit-exact with it)."""

    name = "pulseopt"

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._generators: dict[str, torch.Generator] = {}

    def _generator(self, device: torch.device, gi: int, pi: int) -> torch.Generator:
        key = f"{device}:{gi}:{pi}"
        gen = self._generators.get(key)
        if gen is None:
            gen = self._generators[key] = torch.Generator(device=device)
            gen.manual_seed(self.seed + gi * 1009 + pi)
        return gen

    def add_(self, grads: list[GradEntry], std: float, step: int) -> None:
        del step  # the per-parameter generators carry their own position
        tensors = [g for _, _, g in grads]
        noise = [
            torch.randn(
                g.shape, generator=self._generator(g.device, gi, pi), device=g.device, dtype=g.dtype
            )
            for gi, pi, g in grads
        ]
        # multiply, then add — the same two roundings as pulseopt's ``g.add_(noise * std)``
        torch._foreach_mul_(noise, std)
        torch._foreach_add_(tensors, noise)

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "seed": self.seed,
            "generators": {k: g.get_state() for k, g in self._generators.items()},
        }

    def check_state_dict(self, state: Any, where: str = "state") -> dict[str, Any]:
        """The checked copy of ``state``, its generators already built from their saved states
        (each key ``"device:group:index"``, each state a ``uint8`` tensor the generator takes);
        changes nothing (docs/algorithm.md §12)."""
        _check_kind(where, state, self.name, ("generators",))
        seed = state_int(state_path(where, "seed"), state["seed"], minimum=None)
        at = state_path(where, "generators")
        saved = state_mapping(at, state["generators"], "a dict of generator states")
        generators = {}
        for key, gen_state in saved.items():
            generators[key] = _generator_from_state(state_path(at, key), key, gen_state)
        return {"seed": seed, "generators": generators}

    def load_checked_state_dict(self, checked: dict[str, Any]) -> None:
        self.seed = checked["seed"]
        self._generators = dict(checked["generators"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_checked_state_dict(self.check_state_dict(state))


def _generator_from_state(where: str, key: Any, gen_state: Any) -> torch.Generator:
    parts = key.rsplit(":", 2) if isinstance(key, str) else []
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts[1:]):
        raise state_error(where, key, "a generator key 'device:group:index'")
    if not isinstance(gen_state, Tensor) or gen_state.dtype != torch.uint8 or gen_state.dim() != 1:
        raise state_error(where, gen_state, "a generator state (a 1-d uint8 tensor)")
    try:
        gen = torch.Generator(device=torch.device(parts[0]))
        gen.set_state(gen_state)
    except (RuntimeError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise state_error(where, gen_state, f"a generator state for {parts[0]} ({first})") from None
    return gen


NoiseSource = CounterNoise | PulseoptNoise


def make_noise_source(name: str, seed: int) -> NoiseSource:
    if name == "counter":
        return CounterNoise(seed)
    if name == "pulseopt":
        return PulseoptNoise(seed)
    raise ValueError(f"noise_source must be one of ['counter', 'pulseopt'], got {name!r}.")


def _check_kind(where: str, state: Any, kind: str, keys: tuple[str, ...]) -> None:
    if isinstance(state, dict) and not same_plain(state.get("kind"), kind):
        raise ValueError(
            f"cannot load AEES state: noise source {state.get('kind')!r} was saved, "
            f"this instance uses {kind!r}."
        )
    state_keys(where, state, ("kind", "seed", *keys))
