"""The ``image`` task's own options as :class:`~aees.runner.config.OptionSpec` (the one flag
model: ``aees train image -h`` is generated from them, the sweep reads them; docs/protocols.md
§4.6). ``--cache-dir`` names a place the run writes; it is not part of a run's identity and
may change on ``--resume``.

Imports only :mod:`aees.runner.config.options` (the task registry reads this module).
"""

from __future__ import annotations

from aees.runner.config.options import OptionSpec

__all__ = ["AUGMENTS", "DATASET_FORMATS", "IMAGE_OPTIONS"]

#: ``--dataset-format``: ``auto`` takes the first layout found (:mod:`.formats`).
DATASET_FORMATS = ("auto", "imagefolder", "cifar10", "cifar100", "mnist", "fashion-mnist", "svhn")
#: ``--augment``: the training augmentation.
AUGMENTS = ("crop-flip", "flip", "none")

_GROUP = "image data and model"

IMAGE_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(name="dataset_format", default="auto", choices=DATASET_FORMATS, group=_GROUP),
    OptionSpec(name="image_size", kind="int", help="resize to N x N when caching", group=_GROUP),
    OptionSpec(
        name="cache_dir",
        help="default <data-dir>/.aees-cache",
        writes=True,
        identity=False,
        resumable=True,
        group=_GROUP,
    ),
    OptionSpec(
        name="max_bad_images",
        kind="float",
        default=0.01,
        help="refuse the data above this fraction of undecodable files (default 0.01)",
        group=_GROUP,
    ),
    OptionSpec(
        name="memory_budget_mb",
        kind="float",
        default=4096.0,
        help="device-resident batches up to this size of uint8 images, else streaming",
        group=_GROUP,
    ),
    OptionSpec(
        name="cifar_stem",
        kind="bool",
        default=False,
        help="3x3 stride-1 stem, no max-pool",
        group=_GROUP,
    ),
    OptionSpec(name="pretrained", metavar="PATH", help="local state_dict", group=_GROUP),
    OptionSpec(
        name="label_noise_map",
        metavar="FILE",
        help="asymmetric noise by a JSON {{src: dst}} class map",  # help is str.format-ted
        group=_GROUP,
    ),
    OptionSpec(name="augment", default="crop-flip", choices=AUGMENTS, group=_GROUP),
)
