"""CIFAR-100's label structure: 100 fine classes in 20 superclasses of five, and the
within-superclass cycle that the thesis's asymmetric label noise follows (docs/protocols.md §7.3).

Standard library only; read by :mod:`aees.runner.label_noise` and the CIFAR-100 data reader
(:mod:`aees.runner.tasks.cifar.data`).
"""

from __future__ import annotations

__all__ = [
    "CIFAR100_ASYMMETRIC_MAP",
    "CIFAR100_FINE_TO_COARSE",
    "CIFAR100_NUM_CLASSES",
    "CIFAR100_NUM_COARSE_CLASSES",
    "CIFAR100_SUPERCLASSES",
]

CIFAR100_NUM_CLASSES = 100
CIFAR100_NUM_COARSE_CLASSES = 20

#: The 20 CIFAR-100 superclasses in coarse-label order, each with its five fine labels in the order
#: that defines the asymmetric cycle (docs/protocols.md §7.3).
CIFAR100_SUPERCLASSES: tuple[tuple[str, tuple[int, int, int, int, int]], ...] = (
    ("aquatic_mammals", (4, 30, 55, 72, 95)),
    ("fish", (1, 32, 67, 73, 91)),
    ("flowers", (54, 62, 70, 82, 92)),
    ("food_containers", (9, 10, 16, 28, 61)),
    ("fruit_and_vegetables", (0, 51, 53, 57, 83)),
    ("household_electrical_devices", (22, 39, 40, 86, 87)),
    ("household_furniture", (5, 20, 25, 84, 94)),
    ("insects", (6, 7, 14, 18, 24)),
    ("large_carnivores", (3, 42, 43, 88, 97)),
    ("large_man-made_outdoor_things", (12, 17, 37, 68, 76)),
    ("large_natural_outdoor_scenes", (23, 33, 49, 60, 71)),
    ("large_omnivores_and_herbivores", (15, 19, 21, 31, 38)),
    ("medium_mammals", (34, 63, 64, 66, 75)),
    ("non-insect_invertebrates", (26, 45, 77, 79, 99)),
    ("people", (2, 11, 35, 46, 98)),
    ("reptiles", (27, 29, 44, 78, 93)),
    ("small_mammals", (36, 50, 65, 74, 80)),
    ("trees", (47, 52, 56, 59, 96)),
    ("vehicles_1", (8, 13, 48, 58, 90)),
    ("vehicles_2", (41, 69, 81, 85, 89)),
)


def _build_superclass_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Fine->coarse and fine->next-fine tables; checks that the lists partition 0..99."""
    coarse: dict[int, int] = {}
    cycle: dict[int, int] = {}
    for coarse_label, (_name, fines) in enumerate(CIFAR100_SUPERCLASSES):
        for position, fine in enumerate(fines):
            if fine in coarse:
                raise RuntimeError(f"CIFAR-100 fine label {fine} is listed in two superclasses")
            coarse[fine] = coarse_label
            cycle[fine] = fines[(position + 1) % len(fines)]
    if sorted(coarse) != list(range(CIFAR100_NUM_CLASSES)):
        raise RuntimeError("CIFAR-100 superclass lists must cover fine labels 0..99 exactly")
    return (
        tuple(coarse[f] for f in range(CIFAR100_NUM_CLASSES)),
        tuple(cycle[f] for f in range(CIFAR100_NUM_CLASSES)),
    )


#: ``CIFAR100_FINE_TO_COARSE[fine]`` is the superclass (coarse label) of ``fine``.
#: ``CIFAR100_ASYMMETRIC_MAP[fine]`` is the label the asymmetric protocol assigns to ``fine``.
CIFAR100_FINE_TO_COARSE, CIFAR100_ASYMMETRIC_MAP = _build_superclass_tables()
