"""Label-noise protocols (docs/protocols.md §7) and diagnostics (docs/protocols.md §10)."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random

import pytest
import torch

from aees.runner import cifar100_classes as cc
from aees.runner import label_noise as ln
from aees.runner.label_noise import LabelCorruption

N_CIFAR = 50_000


def _targets(n: int, num_classes: int, seed: int = 123) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(num_classes) for _ in range(n)]


@pytest.fixture(scope="module")
def cifar_targets() -> list[int]:
    return _targets(N_CIFAR, 100)


# --------------------------------------------------------------------- independent references
# Written from the protocol text, not from the module.

SUPERCLASS_TEXT = """
aquatic_mammals [4,30,55,72,95]; fish [1,32,67,73,91]; flowers [54,62,70,82,92];
food_containers [9,10,16,28,61]; fruit_and_vegetables [0,51,53,57,83];
household_electrical_devices [22,39,40,86,87]; household_furniture [5,20,25,84,94];
insects [6,7,14,18,24]; large_carnivores [3,42,43,88,97];
large_man-made_outdoor_things [12,17,37,68,76];
large_natural_outdoor_scenes [23,33,49,60,71]; large_omnivores_and_herbivores [15,19,21,31,38];
medium_mammals [34,63,64,66,75]; non-insect_invertebrates [26,45,77,79,99]; people [2,11,35,46,98];
reptiles [27,29,44,78,93]; small_mammals [36,50,65,74,80]; trees [47,52,56,59,96];
vehicles_1 [8,13,48,58,90]; vehicles_2 [41,69,81,85,89]
"""


def _spec_superclasses() -> list[tuple[str, list[int]]]:
    out = []
    for item in SUPERCLASS_TEXT.replace("\n", " ").split(";"):
        name, _, rest = item.strip().partition(" ")
        out.append((name, json.loads(rest)))
    return out


def _ref_cifar(targets, rate, seed, kind):
    rng = random.Random(seed)
    num_corrupt = round(len(targets) * rate)
    order = list(range(len(targets)))
    rng.shuffle(order)
    chosen = order[:num_corrupt]
    cycle = {}
    for _name, fines in _spec_superclasses():
        for a, b in zip(fines, fines[1:] + fines[:1], strict=True):
            cycle[a] = b
    labels = []
    for idx in chosen:
        orig = targets[idx]
        if kind == "symmetric":
            k = rng.randrange(99)
            labels.append(k if k < orig else k + 1)
        else:
            labels.append(cycle[orig])
    return chosen, labels


def _ref_agnews(labels, rate, seed):
    rng = random.Random(seed)
    num_corrupt = round(rate * len(labels))
    corrupted = set(rng.sample(range(len(labels)), num_corrupt))
    out = []
    for idx in sorted(corrupted):
        out.append(rng.choice([c for c in range(4) if c != labels[idx]]))
    return sorted(corrupted), out


# --------------------------------------------------------------------- superclass data


def test_superclass_tables_match_the_spec_and_partition_the_labels():
    spec = _spec_superclasses()
    assert [(n, list(f)) for n, f in cc.CIFAR100_SUPERCLASSES] == spec
    assert sorted(f for _, fines in spec for f in fines) == list(range(100))
    for coarse, (_name, fines) in enumerate(spec):
        for f in fines:
            assert cc.CIFAR100_FINE_TO_COARSE[f] == coarse
    amap = cc.CIFAR100_ASYMMETRIC_MAP
    assert sorted(amap) == list(range(100))  # a permutation
    assert all(amap[f] != f for f in range(100))
    assert all(
        cc.CIFAR100_FINE_TO_COARSE[amap[f]] == cc.CIFAR100_FINE_TO_COARSE[f] for f in range(100)
    )
    # aquatic_mammals: 4 -> 30 -> 55 -> 72 -> 95 -> 4
    assert [amap[x] for x in (4, 30, 55, 72, 95)] == [30, 55, 72, 95, 4]


# --------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("n", "rate", "expected"),
    [
        (50_000, 0.2, 10_000),
        (50_000, 0.4, 20_000),
        (108_000, 0.2, 21_600),
        (5, 0.5, 2),
        (7, 0.5, 4),
    ],
)
def test_count_is_int_round_half_even(n, rate, expected):
    assert ln.num_corrupted(n, rate) == expected


# --------------------------------------------------------------------- CIFAR symmetric


@pytest.mark.parametrize(("rate", "seed"), [(0.2, 0), (0.4, 3)])
def test_cifar_symmetric_matches_reference(cifar_targets, rate, seed):
    c = ln.cifar100_label_noise(cifar_targets, "symmetric", rate, seed)
    idx, labels = _ref_cifar(cifar_targets, rate, seed, "symmetric")
    assert c.protocol == "cifar_symmetric" and c.noise_type == "symmetric"
    assert c.count == round(N_CIFAR * rate)
    assert list(c.corrupted_indices) == idx  # shuffled selection order is kept
    assert list(c.noisy_labels) == labels
    assert len(set(c.corrupted_indices)) == c.count
    assert all(
        new != cifar_targets[i] for i, new in zip(c.corrupted_indices, c.noisy_labels, strict=True)
    )
    offsets = {
        (new - cifar_targets[i]) % 100
        for i, new in zip(c.corrupted_indices, c.noisy_labels, strict=True)
    }
    assert offsets == set(range(1, 100))  # every other class is reachable


def test_pinned_small_case():
    targets = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    c = ln.cifar_symmetric_noise(targets, 0.3, 7)
    assert (list(c.corrupted_indices), list(c.noisy_labels)) == _ref_cifar(
        targets, 0.3, 7, "symmetric"
    )
    rng = random.Random(7)
    order = list(range(10))
    rng.shuffle(order)
    assert list(c.corrupted_indices) == order[:3]


# --------------------------------------------------------------------- CIFAR asymmetric


@pytest.mark.parametrize("seed", [0, 1])
def test_cifar_asymmetric_matches_reference(cifar_targets, seed):
    c = ln.cifar100_label_noise(cifar_targets, "asymmetric", 0.2, seed)
    idx, labels = _ref_cifar(cifar_targets, 0.2, seed, "asymmetric")
    assert c.protocol == "cifar_asymmetric" and c.noise_type == "asymmetric"
    assert c.count == 10_000
    assert list(c.corrupted_indices) == idx and list(c.noisy_labels) == labels
    for i, new in zip(c.corrupted_indices, c.noisy_labels, strict=True):
        assert new != cifar_targets[i]
        assert cc.CIFAR100_FINE_TO_COARSE[new] == cc.CIFAR100_FINE_TO_COARSE[cifar_targets[i]]
    # Same seed and rate -> the same subset as symmetric (the same shuffle).
    sym = ln.cifar100_label_noise(cifar_targets, "symmetric", 0.2, seed)
    assert sym.corrupted_indices == c.corrupted_indices


def test_determinism_and_seed_dependence(cifar_targets):
    a = ln.cifar100_label_noise(cifar_targets, "symmetric", 0.2, 0)
    b = ln.cifar100_label_noise(cifar_targets, "symmetric", 0.2, 0)
    c = ln.cifar100_label_noise(cifar_targets, "symmetric", 0.2, 1)
    assert a == b and a.indices_sha256 == b.indices_sha256
    assert a.corrupted_indices != c.corrupted_indices
    assert a.indices_sha256 != c.indices_sha256


# --------------------------------------------------------------------- AG News


def test_agnews_matches_reference_and_is_sorted():
    labels = _targets(108_000, 4, seed=9)
    c = ln.agnews_label_noise(labels, 0.2)
    assert c.seed == 42 and c.protocol == "agnews_symmetric" and c.noise_type == "symmetric"
    assert c.count == 21_600
    idx, new = _ref_agnews(labels, 0.2, 42)
    assert list(c.corrupted_indices) == idx and list(c.noisy_labels) == new
    assert list(c.corrupted_indices) == sorted(c.corrupted_indices)
    assert all(n != labels[i] for i, n in zip(c.corrupted_indices, c.noisy_labels, strict=True))
    assert ln.agnews_label_noise(labels, 0.2, 43).corrupted_indices != c.corrupted_indices


def test_agnews_rate_must_be_below_one_but_cifar_accepts_one():
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.0"):
        ln.agnews_label_noise([0, 1, 2, 3], 1.0)
    full = ln.cifar100_label_noise(list(range(100)), "symmetric", 1.0, 0)
    assert full.count == 100


# --------------------------------------------------------------------- disabled / validation


def test_disabled_noise():
    targets = list(range(100)) * 3
    c = ln.cifar100_label_noise(targets, "none", 0.0, 5)
    assert c.protocol == "none" and not c.enabled and c.count == 0 and c.num_examples == 300
    assert c.apply(targets) == targets
    tiny = ln.cifar100_label_noise(targets, "symmetric", 0.001, 5)  # round(0.3) == 0
    assert tiny.protocol == "none" and tiny.count == 0 and tiny.rate == 0.001
    assert ln.agnews_label_noise([0, 1], 0.0).count == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: ln.cifar100_label_noise([0], "none", 0.2, 0),
            "rate must be 0.0 when noise_type is 'none', got 0.2",
        ),
        (
            lambda: ln.cifar100_label_noise([0], "pairflip", 0.2, 0),
            "noise_type must be one of .* got 'pairflip'",
        ),
        (
            lambda: ln.cifar100_label_noise([0], "symmetric", -0.1, 0),
            r"rate must be in \[0, 1\], got -0.1",
        ),
        (
            lambda: ln.cifar100_label_noise([0], "symmetric", math.nan, 0),
            r"rate must be in \[0, 1\], got nan",
        ),
        (
            lambda: ln.cifar100_label_noise([0, 1, 2, 100], "symmetric", 0.5, 0),
            r"targets\[3\] must be in \[0, 100\), got 100",
        ),
        (
            lambda: ln.cifar100_label_noise([0, True], "symmetric", 0.5, 0),
            r"targets\[1\] must be an int, got True",
        ),
        (
            lambda: ln.cifar100_label_noise([0], "symmetric", 0.5, 1.5),
            "seed must be an int, got 1.5",
        ),
        (lambda: ln.agnews_label_noise([0, 4], 0.5), r"labels\[1\] must be in \[0, 4\), got 4"),
        (lambda: ln.num_corrupted(-1, 0.1), "num_examples must be an int >= 0, got -1"),
    ],
)
def test_validation_errors_name_argument_and_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tensor_targets_give_the_same_corruption(cifar_targets):
    small = cifar_targets[:1000]
    as_list = ln.cifar100_label_noise(small, "symmetric", 0.2, 4)
    as_tensor = ln.cifar100_label_noise(torch.tensor(small), "symmetric", 0.2, 4)
    assert as_list == as_tensor


# --------------------------------------------------------------------- record helpers


def test_apply_and_masks(cifar_targets):
    before = list(cifar_targets)
    c = ln.cifar100_label_noise(cifar_targets, "asymmetric", 0.2, 2)
    noisy = c.apply(cifar_targets)
    assert cifar_targets == before  # not mutated
    changed = [i for i, (a, b) in enumerate(zip(before, noisy, strict=True)) if a != b]
    assert sorted(changed) == sorted(c.corrupted_indices)
    mask, clean = c.corrupted_mask(), c.clean_mask()
    assert sum(mask) == c.count and all(m != k for m, k in zip(mask, clean, strict=True))
    with pytest.raises(ValueError, match="targets must have num_examples=50000 entries, got 3"):
        c.apply([1, 2, 3])


def test_digest_is_stable_and_order_sensitive():
    assert ln.digest_ints([3, 1, 2]) == hashlib.sha256(b"3,1,2").hexdigest()
    assert ln.digest_ints([3, 1, 2]) != ln.digest_ints([1, 2, 3])
    c = ln.cifar_symmetric_noise([3, 1, 4, 1, 5, 9, 2, 6, 5, 3], 0.3, 7)
    expected = ",".join(map(str, c.corrupted_indices)).encode()
    assert c.indices_sha256 == hashlib.sha256(expected).hexdigest()


def test_manifest_is_compact_json(cifar_targets):
    c = ln.cifar100_label_noise(cifar_targets, "symmetric", 0.4, 0)
    m = c.manifest(side_file="run.noise.json.gz")
    assert m["enabled"] is True and m["type"] == "symmetric" and m["protocol"] == "cifar_symmetric"
    assert (m["seed"], m["rate"], m["count"]) == (0, 0.4, 20_000)
    assert m["num_train_examples"] == 50_000 and m["num_clean_examples"] == 30_000
    assert m["num_corrupted_examples"] == 20_000 and m["corrupted_fraction"] == 0.4
    assert (
        m["indices_sha256"] == c.indices_sha256
        and m["corrupted_indices_file"] == "run.noise.json.gz"
    )
    assert len(json.dumps(m)) < 1000


def test_side_file_round_trip(tmp_path, cifar_targets):
    c = ln.cifar100_label_noise(cifar_targets, "asymmetric", 0.2, 1)
    path = c.write_side_file(tmp_path / "sub" / "noise.json.gz")
    first = path.read_bytes()
    assert first[:2] == b"\x1f\x8b"  # gzip
    assert LabelCorruption.read_side_file(path) == c
    c.write_side_file(path)
    assert path.read_bytes() == first  # byte-reproducible
    payload = json.loads(gzip.decompress(first))
    payload["indices_sha256"] = "0" * 64
    with pytest.raises(ValueError, match="indices_sha256 is '0000"):
        LabelCorruption.from_payload(payload)
    payload = json.loads(gzip.decompress(first))
    payload["format"] = "other"
    with pytest.raises(ValueError, match="format must be"):
        LabelCorruption.from_payload(payload)
    payload = json.loads(gzip.decompress(first))
    del payload["seed"]
    with pytest.raises(ValueError, match=r"missing keys \['seed'\]"):
        LabelCorruption.from_payload(payload)
    assert sorted(p.name for p in path.parent.iterdir()) == ["noise.json.gz"]  # no temp left


def test_record_validation():
    with pytest.raises(ValueError, match="protocol must be one of"):
        LabelCorruption("pairflip", 0.1, 0, 10, 10, (), ())
    with pytest.raises(ValueError, match=r"corrupted_indices\[0\] must be in \[0, 10\), got 10"):
        LabelCorruption("cifar_symmetric", 0.1, 0, 10, 10, (10,), (1,))
    with pytest.raises(ValueError, match="one entry per corrupted index"):
        LabelCorruption("cifar_symmetric", 0.1, 0, 10, 10, (1, 2), (1,))


# --------------------------------------------------------------------- diagnostics


def test_label_noise_accuracies_by_hand():
    clean = [0, 1, 2, 3, 0, 1]
    noisy = [0, 2, 2, 0, 0, 3]
    mask = [False, True, False, True, False, True]
    preds = [0, 2, 1, 3, 0, 1]
    acc = ln.label_noise_accuracies(preds, clean, noisy, mask)
    assert tuple(acc) == ln.DIAGNOSTIC_KEYS
    assert acc["train_all_accuracy"] == pytest.approx(3 / 6)  # idx 0, 1, 4 match noisy
    assert acc["train_clean_accuracy"] == pytest.approx(2 / 3)  # idx 0, 4 of {0, 2, 4}
    assert acc["train_corrupted_accuracy_vs_noisy_labels"] == pytest.approx(1 / 3)  # idx 1
    assert acc["train_corrupted_accuracy_vs_clean_labels"] == pytest.approx(2 / 3)  # idx 3, 5


def test_label_noise_accuracies_edge_cases():
    acc = ln.label_noise_accuracies([1, 2], [1, 0], [1, 0], [False, False])
    assert (
        acc["train_all_accuracy"] == 0.5 and acc["train_corrupted_accuracy_vs_clean_labels"] is None
    )
    with pytest.raises(ValueError, match="noisy_labels must have len"):
        ln.label_noise_accuracies([1, 2], [1, 0], [1], [False, False])
    with pytest.raises(ValueError, match=r"corrupted_mask\[1\] is False but clean_labels\[1\]=0"):
        ln.label_noise_accuracies([1, 2], [1, 0], [1, 3], [False, False])


def test_diagnostics_from_a_real_corruption(cifar_targets):
    c = ln.cifar100_label_noise(cifar_targets, "symmetric", 0.2, 0)
    noisy = c.apply(cifar_targets)
    acc = ln.label_noise_accuracies(torch.tensor(noisy), cifar_targets, noisy, c.corrupted_mask())
    assert (
        acc["train_all_accuracy"] == 1.0 and acc["train_corrupted_accuracy_vs_noisy_labels"] == 1.0
    )
    assert (
        acc["train_corrupted_accuracy_vs_clean_labels"] == 0.0
        and acc["train_clean_accuracy"] == 1.0
    )
