"""Batches for the image tasks (``image``, ``cifar100``): the fixed hold-out split, normalisation
and crop/flip augmentation on the device, the device-resident loader, and the host-side streaming
dataset for data larger than ``--memory-budget-mb`` (docs/protocols.md §4.1, §4.6).

The whole dataset (e.g. CIFAR-100's 50,000 x 3 x 32 x 32 uint8 = 154 MB) lives on the training
device and each batch is cropped, flipped and normalised there by a handful of vectorised kernels:
the thesis's transform in distribution (a crop offset uniform on {0..8}^2 of the zero-padded image,
a fair coin for the flip) with a bit-identical normalisation. The random stream comes from an
explicit :class:`torch.Generator` owned by the loader, so shuffling and augmentation are
reproducible and resumable from :meth:`InMemoryLoader.state_dict` (defect 14: no unseeded worker
RNGs). CPU and CUDA generators produce different streams for the same seed.

Only torch and the standard library are imported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from aees.runner.tasks.cifar.data import CIFAR100_MEAN, CIFAR100_STD

__all__ = [
    "ChannelNormalize",
    "DeviceAugment",
    "FlipOnly",
    "InMemoryLoader",
    "Normalize",
    "StreamingImages",
    "channel_stats",
    "fits_in_memory",
    "holdout_split",
    "normalize",
]


def holdout_split(n: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Sorted (train, validation) index tensors: ``val_size`` of ``range(n)`` drawn with ``seed``.

    The thesis selects its peak epoch on the official test set (defect 2); a runner that wants a
    proper validation split (e.g. 45k/5k) takes it from here, independently of the training RNG.
    """
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


# --------------------------------------------------------------------------------------------
# Normalisation and augmentation, on the device
# --------------------------------------------------------------------------------------------


class Normalize:
    """``ToTensor()`` then ``Normalize(mean, std)`` for a batch: ``(x / 255 - mean) / std``.

    A uint8 batch is converted to float32 and divided by 255 exactly as ``ToTensor`` does; the
    subtraction and division then match ``torchvision.transforms.Normalize`` bit for bit. The
    mean/std tensors are cached per (device, dtype), so no host-to-device copy happens per batch.
    """

    def __init__(
        self, mean: Sequence[float] = CIFAR100_MEAN, std: Sequence[float] = CIFAR100_STD
    ) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean and std must have the same non-zero length, got {mean}, {std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0, got {std}")
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def _constants(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        key = (device, dtype)
        if key not in self._cache:
            shape = (len(self.mean), 1, 1)
            mean = torch.tensor(self.mean, dtype=dtype).view(shape).to(device)
            std = torch.tensor(self.std, dtype=dtype).view(shape).to(device)
            self._cache[key] = (mean, std)
        return self._cache[key]

    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype == torch.uint8:
            images = images.to(torch.float32).div(255)
        elif not images.is_floating_point():
            raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
        mean, std = self._constants(images.device, images.dtype)
        return images.sub(mean).div(std)


_DEFAULT_NORMALIZE = Normalize()


def normalize(images: Tensor) -> Tensor:
    """Normalise a uint8 (0..255) or float (0..1) batch with the thesis CIFAR-100 mean/std."""
    return _DEFAULT_NORMALIZE(images)


class DeviceAugment:
    """``RandomCrop(size, padding)`` (zero fill) + ``RandomHorizontalFlip(flip_p)`` for a batch.

    Each sample gets its own crop offset ``(dy, dx)``, uniform on ``{0..2*padding}^2`` of the
    zero-padded image, and its own flip coin -- the distribution of torchvision's per-image
    transforms. The batch is padded once and the crops are gathered with one advanced-indexing
    kernel (flipping is folded into the column index), so there is no per-sample Python loop.

    Apply it to the raw uint8 pixels, before :class:`Normalize`: zero padding then means black
    pixels, as in the thesis pipeline (padding happens on the PIL image before ``ToTensor``).

    Random numbers come from ``generator`` only, drawn on the generator's device and in the
    fixed order (dy, dx, flip), so the same generator state gives the same batch.
    """

    def __init__(self, size: int = 32, padding: int = 4, flip_p: float = 0.5) -> None:
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p}")
        self.size = size
        self.padding = padding
        self.flip_p = flip_p

    def sample(
        self, batch_size: int, height: int, width: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample ``(dy, dx, flip)`` on the generator's device."""
        span_y = height + 2 * self.padding - self.size + 1
        span_x = width + 2 * self.padding - self.size + 1
        if span_y <= 0 or span_x <= 0:
            raise ValueError(
                f"crop size {self.size} exceeds the padded image "
                f"({height + 2 * self.padding} x {width + 2 * self.padding})"
            )
        device = generator.device
        dy = torch.randint(span_y, (batch_size,), generator=generator, device=device)
        dx = torch.randint(span_x, (batch_size,), generator=generator, device=device)
        flip = torch.rand(batch_size, generator=generator, device=device) < self.flip_p
        return dy, dx, flip

    def apply(self, images: Tensor, dy: Tensor, dx: Tensor, flip: Tensor) -> Tensor:
        """Crop each zero-padded image at ``(dy[i], dx[i])``, mirrored where ``flip[i]``."""
        if images.ndim != 4:
            raise ValueError(f"images must be B x C x H x W, got shape {tuple(images.shape)}")
        b, c, h, w = images.shape
        device = images.device
        p, s = self.padding, self.size
        padded = images.new_zeros((b, c, h + 2 * p, w + 2 * p))
        padded[:, :, p : p + h, p : p + w] = images
        dy, dx, flip = dy.to(device), dx.to(device), flip.to(device)
        ar = torch.arange(s, device=device)
        rows = dy[:, None] + ar  # B x s
        # A horizontal flip of the crop reads the crop's columns in reverse order.
        cols = dx[:, None] + torch.where(flip[:, None], (s - 1) - ar, ar)  # B x s
        batch = torch.arange(b, device=device)[:, None, None, None]
        chan = torch.arange(c, device=device)[None, :, None, None]
        return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        dy, dx, flip = self.sample(images.shape[0], images.shape[-2], images.shape[-1], generator)
        return self.apply(images, dy, dx, flip)


# --------------------------------------------------------------------------------------------
# Device-resident loader
# --------------------------------------------------------------------------------------------


class InMemoryLoader:
    """Batches of a dataset held as one tensor on ``device``.

    Each iteration is one epoch: a permutation from ``generator`` when ``shuffle`` (else the
    stored order), then per batch an ``index_select``, the optional :class:`DeviceAugment` and
    :class:`Normalize`. Yields ``(images, labels)`` -- or ``(images, labels, indices)`` with
    ``return_indices``, where ``indices`` are positions in the tensors given here (the thesis's
    ``(image, target, index)`` items used by the label-noise diagnostics).

    ``drop_last`` defaults to False as in the thesis (391 steps per epoch at batch 128).
    :meth:`state_dict` captures the generator, so a run resumed at an epoch boundary sees the
    same batches as one never interrupted.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        device: str | torch.device | None = None,
        shuffle: bool = False,
        augment: DeviceAugment | None = None,
        normalize: Normalize | None = _DEFAULT_NORMALIZE,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        return_indices: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if images.ndim != 4:
            raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must be 1-D with {images.shape[0]} entries, "
                f"got shape {tuple(labels.shape)}"
            )
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed, not both")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device).contiguous()
        self.labels = labels.to(self.device, dtype=torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.normalize = normalize
        self.drop_last = drop_last
        self.return_indices = return_indices
        if generator is None and (shuffle or augment is not None):
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0 if seed is None else seed)
        self.generator = generator
        self.epochs_started = 0
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Yield only this rank's share of every epoch (``torchrun``/DDP).

        Every rank draws the same permutation (same generator seed); it is padded by wrapping
        to a multiple of ``world_size`` (as ``DistributedSampler`` does) and rank ``r`` takes
        positions ``r, r + world_size, ...``, so shards are disjoint and of equal size.
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank} of {world_size}")
        self.rank, self.world_size = rank, world_size

    @property
    def num_examples(self) -> int:
        """Examples this loader yields per epoch (this rank's shard when sharded)."""
        return math.ceil(int(self.images.shape[0]) / self.world_size)

    def __len__(self) -> int:
        n = self.num_examples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _draw_device(self) -> torch.device:
        assert self.generator is not None
        return self.generator.device

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        self.epochs_started += 1
        total = int(self.images.shape[0])
        if self.shuffle:
            assert self.generator is not None
            order = torch.randperm(total, generator=self.generator, device=self._draw_device())
            order = order.to(self.device)
        else:
            order = torch.arange(total, device=self.device)
        if self.world_size > 1:
            padded = self.num_examples * self.world_size
            order = torch.cat([order, order[: padded - total]])[self.rank :: self.world_size]
        for step in range(len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            images = self.images.index_select(0, idx)
            if self.augment is not None:
                assert self.generator is not None
                images = self.augment(images, self.generator)
            if self.normalize is not None:
                images = self.normalize(images)
            labels = self.labels.index_select(0, idx)
            yield (images, labels, idx) if self.return_indices else (images, labels)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epochs_started": self.epochs_started}
        if self.generator is not None:
            state["generator_state"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epochs_started = int(state["epochs_started"])
        if self.generator is not None:
            if "generator_state" not in state:
                raise ValueError("state has no 'generator_state' for this loader's generator")
            self.generator.set_state(state["generator_state"])


def channel_stats(images: Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of uint8 images scaled to [0, 1], in float64."""
    c = int(images.shape[1])
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for part in images.split(chunk):
        x = part.to(torch.float64).div_(255)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return [float(m) for m in mean], [max(float(s), 1e-6) for s in std]


class ChannelNormalize:
    """:class:`Normalize` by the training set's statistics, grayscale repeated to ``channels``
    when the model wants more input channels than the data has."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels: int) -> None:
        self.repeat = channels // len(mean) if channels != len(mean) else 1
        self.inner = Normalize(list(mean) * self.repeat, list(std) * self.repeat)

    def __call__(self, images: Tensor) -> Tensor:
        if self.repeat != 1:
            images = images.expand(-1, images.shape[1] * self.repeat, -1, -1)
        return self.inner(images)


class StreamingImages(Dataset[tuple[Tensor, Tensor]]):
    """The host-side path for data too large for the device: items from the (CPU, possibly
    memory-mapped) uint8 tensors, augmented per item with the global RNG (DataLoader workers
    are seeded from the loader's generator) and normalised; the engine's ``DataLoader`` adds
    workers and pinned memory."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        normalize: ChannelNormalize,
        augment: DeviceAugment | None = None,
    ) -> None:
        self.images, self.labels = images, labels
        self.normalize, self.augment = normalize, augment

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = self.images[index : index + 1]
        if self.augment is not None:
            x = self.augment(x, torch.default_generator)
        return self.normalize(x)[0], self.labels[index]


def fits_in_memory(nbytes: int, budget_mb: float) -> bool:
    """Whether ``nbytes`` of uint8 images stay within ``budget_mb`` (the device-resident path)."""
    return nbytes <= budget_mb * 2**20 and math.isfinite(budget_mb)


class FlipOnly(DeviceAugment):
    """``--augment flip``: a per-sample horizontal flip (p = 0.5) with the loader's generator."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
        flip = flip.to(images.device)[:, None, None, None]
        return torch.where(flip, images.flip(-1), images)
