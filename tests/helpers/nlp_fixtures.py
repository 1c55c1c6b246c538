"""Offline fixtures for the NLP tasks, in the real on-disk formats.

* :func:`write_tiny_distilbert`: a WordPiece tokenizer (built with the ``tokenizers`` library,
  BERT normaliser / pre-tokenizer / ``[CLS] … [SEP]`` template, as ``distilbert-base-uncased``)
  and a randomly initialised 2-layer DistilBERT (dim 32), both saved with ``save_pretrained``.
* :func:`write_tiny_bert`: the same tokenizer and a 2-layer ``BertForSequenceClassification``
  (hidden 32) with a head of its own class count, saved with ``save_pretrained`` (the Auto path,
  and a head the ``text`` task must re-initialise when the data has another class count).
* :func:`write_sst2` / :func:`write_agnews`: raw ``DatasetDict`` s saved with ``save_to_disk``,
  with the Hub datasets' columns (``sentence``/``idx``/``label``; ``text``/``label``).
* :func:`write_text_files`: a folder of ``train`` / ``validation`` / ``test`` files (CSV, JSON
  Lines or Parquet) as a user would bring them to ``aees train text``.
"""

from __future__ import annotations

import random
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = ["good", "great", "fun", "lovely", "brilliant", "moving", "superb", "charming"]
NEGATIVE = ["bad", "awful", "boring", "dull", "weak", "clumsy", "tedious", "messy"]
NEUTRAL = [
    "the",
    "a",
    "movie",
    "film",
    "plot",
    "acting",
    "story",
    "it",
    "is",
    "was",
    "and",
    "but",
    "very",
    "quite",
    "this",
]
TOPICS = [
    ["world", "war", "election", "minister", "nation", "peace", "treaty"],
    ["sports", "team", "game", "match", "season", "coach", "league"],
    ["business", "stock", "market", "company", "profit", "shares", "bank"],
    ["tech", "software", "computer", "internet", "chip", "phone", "science"],
]
SUBWORDS = ["##s", "##ly", "##ing", "##ed", ".", ",", "!", "'"]


def vocabulary() -> list[str]:
    words = {w for group in (POSITIVE, NEGATIVE, NEUTRAL, *TOPICS) for w in group}
    return SPECIALS + sorted(words) + SUBWORDS


def tiny_tokenizer(token_type_ids: bool = False):
    """The WordPiece tokenizer of the tiny models (BERT-style, over :func:`vocabulary`);
    ``token_type_ids``: it also returns segment ids, as BERT's does."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(vocabulary())}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "attention_mask"]
        + (["token_type_ids"] if token_type_ids else []),
    )
    return tokenizer


def write_tiny_distilbert(path: Path) -> Path:
    """Save a tiny DistilBERT (a base model, as on the Hub) and its tokenizer to ``path``."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel

    tokenizer = tiny_tokenizer()
    config = DistilBertConfig(
        vocab_size=len(tokenizer),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    DistilBertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_tiny_bert(path: Path, num_labels: int = 2) -> Path:
    """Save a tiny ``BertForSequenceClassification`` (``num_labels`` head) and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = tiny_tokenizer(token_type_ids=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
        num_labels=num_labels,
    )
    torch.manual_seed(0)
    path.mkdir(parents=True, exist_ok=True)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _sentence(rng: random.Random, label_words: list[str]) -> str:
    words = [rng.choice(NEUTRAL) for _ in range(rng.randint(2, 9))]
    for _ in range(rng.randint(1, 3)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(label_words))
    if rng.random() < 0.3:
        words.append(rng.choice(["zebra", "quux"]))  # out-of-vocabulary -> [UNK]
    return " ".join(words) + rng.choice([".", "!", ""])


def sst2_rows(n: int, seed: int) -> dict[str, list]:
    rng = random.Random(seed)
    labels = [rng.randrange(2) for _ in range(n)]
    sentences = [_sentence(rng, POSITIVE if y else NEGATIVE) for y in labels]
    return {"sentence": sentences, "label": labels, "idx": list(range(n))}


def agnews_rows(n: int, seed: int) -> dict[str, list]:
    rng = random.Random(seed)
    labels = [rng.randrange(4) for _ in range(n)]
    return {"text": [_sentence(rng, TOPICS[y]) for y in labels], "label": labels}


def write_sst2(path: Path, n_train: int = 64, n_val: int = 32) -> Path:
    """GLUE SST-2 layout: train / validation / test (test labels are -1, as on the Hub)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "sentence": Value("string"),
            "label": ClassLabel(names=["negative", "positive"]),
            "idx": Value("int32"),
        }
    )
    test = sst2_rows(8, 3)
    test["label"] = [-1] * 8
    test_features = Features({**features, "label": Value("int64")})
    DatasetDict(
        {
            "train": Dataset.from_dict(sst2_rows(n_train, 1), features=features),
            "validation": Dataset.from_dict(sst2_rows(n_val, 2), features=features),
            "test": Dataset.from_dict(test, features=test_features),
        }
    ).save_to_disk(str(path))
    return path


def write_agnews(path: Path, n_train: int = 80, n_test: int = 40) -> Path:
    """AG News layout: train / test with ``text`` and a 4-class ``label``."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features(
        {
            "text": Value("string"),
            "label": ClassLabel(names=["World", "Sports", "Business", "Sci/Tech"]),
        }
    )
    DatasetDict(
        {
            "train": Dataset.from_dict(agnews_rows(n_train, 4), features=features),
            "test": Dataset.from_dict(agnews_rows(n_test, 5), features=features),
        }
    ).save_to_disk(str(path))
    return path


def text_rows(n: int, seed: int, names: tuple[str, ...] = ("world", "sports", "business")) -> dict:
    """``text`` / string ``label`` rows: topic words of class ``i`` for label ``names[i]``."""
    rng = random.Random(seed)
    labels = [rng.randrange(len(names)) for _ in range(n)]
    return {
        "text": [_sentence(rng, TOPICS[y]) for y in labels],
        "label": [names[y] for y in labels],
    }


def pair_rows(n: int, seed: int) -> dict:
    """Sentence pairs (``premise`` / ``hypothesis``) labelled ``same`` / ``differ`` (sentiment)."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"premise": [], "hypothesis": [], "y": []}
    for _ in range(n):
        a, b = rng.randrange(2), rng.randrange(2)
        rows["premise"].append(_sentence(rng, POSITIVE if a else NEGATIVE))
        rows["hypothesis"].append(_sentence(rng, POSITIVE if b else NEGATIVE))
        rows["y"].append("same" if a == b else "differ")
    return rows


def write_text_files(path: Path, splits: dict[str, dict], fmt: str = "csv") -> Path:
    """Write ``split -> columns`` as ``<split>.csv`` / ``.jsonl`` / ``.parquet`` under ``path``."""
    import csv
    import json

    path.mkdir(parents=True, exist_ok=True)
    for split, columns in splits.items():
        names = list(columns)
        rows = [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
        if fmt == "csv":
            with open(path / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=names)
                writer.writeheader()
                writer.writerows(rows)
        elif fmt == "jsonl":
            lines = [json.dumps(row) for row in rows]
            (path / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table(columns), path / f"{split}.parquet")
        else:
            raise ValueError(fmt)
    return path
