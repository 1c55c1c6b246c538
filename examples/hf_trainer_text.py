"""Fine-tune a sequence classifier with the Hugging Face ``Trainer`` and AEES, offline.

A stock ``Trainer`` script with two changes (marked ``# AEES``): the import, and the ``aees=``
keyword. Everything else (optimizer, weight-decay groups, linear warmup/decay, gradient
accumulation, checkpoints, ``report_to``) is the Trainer's own.

    python examples/hf_trainer_text.py --model-name DIR --data-dir DIR [--smoke]

``--model-name``: a checkpoint directory (``save_pretrained``: tokenizer + model) or a Hub id;
``--data-dir``: a ``DatasetDict`` saved with ``save_to_disk`` with ``train`` (and optionally
``validation``) splits of ``sentence`` / ``label`` columns (the GLUE SST-2 layout). With
``HF_HUB_OFFLINE=1`` nothing is fetched. ``--smoke`` trains a few steps (the test suite's mode).
The episode records land in ``trainer.state.log_history`` (saved to ``trainer_state.json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
)

from aees.integrations.transformers import AEESTrainer as Trainer  # AEES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--output-dir", default="runs/hf_trainer_text")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--smoke", action="store_true", help="a few steps only (tests)")
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model_name, trust_remote_code=False)
    raw = datasets.load_from_disk(args.data_dir)
    columns = [c for c in raw["train"].column_names if c != "label"]
    encoded = raw.map(
        lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=128),
        batched=True,
        remove_columns=columns,
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model_name, num_labels=2, trust_remote_code=False
    )
    training_args = TrainingArguments(
        output_dir=args.output_dir,
        num_train_epochs=args.epochs,
        max_steps=6 if args.smoke else -1,
        per_device_train_batch_size=8 if args.smoke else 32,
        gradient_accumulation_steps=2,
        learning_rate=5e-5 if not args.smoke else 5e-3,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        warmup_steps=0.1,  # a fraction of the run
        logging_steps=1 if args.smoke else 50,
        save_strategy="no" if args.smoke else "epoch",
        eval_strategy="epoch" if "validation" in encoded and not args.smoke else "no",
        report_to=[],
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=encoded["train"],
        eval_dataset=encoded.get("validation"),
        data_collator=DataCollatorWithPadding(tokenizer),
        aees={"lr_candidates": [0.5, 1.0, 2.0], "episode_length": 2 if args.smoke else 100},  # AEES
    )
    trainer.train()
    trainer.save_state()  # trainer_state.json, with the episode records in log_history

    records = [e for e in trainer.state.log_history if "aees/episode" in e]
    arms = [r["aees/lr_multiplier"] for r in records]
    print(f"{len(records)} episodes; LR multipliers chosen: {arms}")
    print(f"trainer state: {Path(args.output_dir) / 'trainer_state.json'}")


if __name__ == "__main__":
    main()
