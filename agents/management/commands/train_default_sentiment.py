"""Make the sentiment models that ship with Concierge (agents/shipped/) from the public sets."""

import csv
from pathlib import Path
from typing import Any

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from agents.sentiment import sentiment_evaluate
from agents.sentiment_linear import SHIPPED_DIR, LinearSentiment, Spec, normalise
from config.progress import progress_bar
from knowledge import embeddings

# What each shipped model learns from, under the data folder, and how it reads text. English:
# SemEval 2013-2016 tweets and SST-2 sentences with their MiniLM embeddings; Chinese: the waimai
# reviews as character unigrams and bigrams (the MiniLM model is English-only).
RECIPES: dict[str, dict[str, Any]] = {
    "en": {
        "train": [
            "sentiment/semeval_2013_2016_train.csv",
            "sentiment/sst2_train.csv",
            "intents/bitext_customer_service_8k.csv",
        ],
        "dev": ["sentiment/tweeteval_val.csv", "sentiment/sst2_dev.csv"],
        # Customers' plain requests ("how can I find information about canceling orders?") as
        # neutral rows: without them, 6.7% of StackFAQ's dev questions read as very negative (and
        # were handed to a person); with them 3.7%, TweetEval val macro recall 0.714 -> 0.723,
        # SST-2 dev 0.837 either way.
        "as_label": {"intents/bitext_customer_service_8k.csv": "neutral"},
        "spec": Spec(word_ngrams=(1, 2), char_analyzer="char_wb", char_ngrams=(2, 5), embedding_weight=4.0,
                     c=1.0, balanced=True),
        # SST-2's 6,920 sentences beside 48,000 tweets: each counts four times, or the model reads
        # everything as a tweet. Chosen on the dev sets (embedding weight 2: SST-2 dev 0.812 at
        # weight 1, 0.831 at 4, 0.837 at 8, while TweetEval val fell 0.731, 0.718, 0.689; an
        # embedding weight of 4 then gave 0.834 and 0.721).
        "weights": {"sentiment/sst2_train.csv": 4.0},
        "licence": "SemEval 2013-2016 task 4A (Twitter terms of use, research), SST-2 (research use), "
        "Bitext customer-service sample (CDLA-Sharing 1.0)",
    },
    "zh": {
        "train": ["sentiment/waimai_10k_zh.csv"],
        "dev": [],  # no separate dev file: every fifth review is held back for the figures
        "spec": Spec(word_ngrams=None, char_analyzer="char", char_ngrams=(1, 2), embedding_weight=0.0, c=4.0),
        "licence": "waimai_10k (SophonPlus/ChineseNlpCorpus, no licence stated)",
    },
}  # fmt: skip


def _key(text: str) -> str:
    return " ".join(normalise(text).lower().split())


def _rows(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise CommandError(f"{path}: no such file (is --data the public data folder?).")
    with path.open(encoding="utf-8") as handle:
        return [(row["text"], row["label"].strip().lower()) for row in csv.DictReader(handle)]


class Command(BaseCommand):
    help = (
        "Train the sentiment models that ship with Concierge from the public sets in --data and write them to "
        "--out (agents/shipped/ by default). Reproducible: the same data gives the same files. Prints the "
        "development figures (TweetEval validation, SST-2 dev; waimai: a fifth held back)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--data", default="../shared/data")
        parser.add_argument("--out", default=str(SHIPPED_DIR))
        parser.add_argument("--language", choices=sorted(RECIPES), action="append", help="Only these (repeatable).")

    def _vectors(self, spec: Spec, texts: list[str], what: str) -> Any:
        if not spec.embedding_weight:
            return None
        with progress_bar(total=len(texts), description=f"embedding {what}", unit="rows", stream=self.stderr) as bar:
            return embeddings.embed([normalise(t) for t in texts], progress=bar, bulk=True)

    def _train(self, language: str, spec: Spec, rows: list[tuple[str, str, float]]) -> LinearSentiment:
        texts = [t for t, _, _ in rows]
        vectors = self._vectors(spec, texts, f"{language} training rows")
        self.stderr.write(f"{language}: fitting on {len(rows)} rows")
        weights = np.array([w for _, _, w in rows], dtype=np.float64)
        return LinearSentiment.train(language, texts, [label for _, label, _ in rows], spec, vectors, weights)

    def handle(self, *args: Any, **options: Any) -> None:
        data, out = Path(options["data"]), Path(options["out"])
        for language in options["language"] or sorted(RECIPES):
            recipe = RECIPES[language]
            spec: Spec = recipe["spec"]
            held_sets = {Path(name).name: _rows(data / name) for name in recipe["dev"]}
            # TweetEval's validation tweets come from the SemEval years this model learns from
            # (1,304 of its 2,000 are in the SemEval file): no development sentence is trained on.
            unseen = {_key(text) for rows in held_sets.values() for text, _ in rows}
            weights = recipe.get("weights", {})
            as_label = recipe.get("as_label", {})
            rows = [
                (text, as_label.get(name, label), float(weights.get(name, 1.0)))
                for name in recipe["train"]
                for text, label in _rows(data / name)
                if _key(text) not in unseen
            ]
            dev: dict[str, Any] = {}
            if held_sets:
                model = self._train(language, spec, rows)
                for name, held in held_sets.items():
                    dev[name] = self._measure(model, held)
            else:
                kept = [row for n, row in enumerate(rows) if n % 5 != 4]
                trial = self._train(language, spec, kept)
                fifth = [(text, label) for text, label, _ in rows[4::5]]
                dev[f"{Path(recipe['train'][0]).name}:fifth"] = self._measure(trial, fifth)
                model = self._train(language, spec, rows)
            model.notes = {
                "trained_on": recipe["train"],
                "weights": weights,
                "rows": len(rows),
                "licence": recipe["licence"],
                "dev": dev,
                "command": f"manage.py train_default_sentiment --language {language}",
            }
            path = out / f"sentiment-{language}.npz"
            model.save(path)
            self.stdout.write(f"{language}: wrote {path} ({path.stat().st_size // 1024} KiB)")
            for name, figures in dev.items():
                self.stdout.write(
                    f"  dev {name}: accuracy {figures['accuracy']:.4f}  macro recall {figures['macro_recall']:.4f}  "
                    f"macro-F1 {figures['macro_f1']:.4f}"
                )

    def _measure(self, model: LinearSentiment, rows: list[tuple[str, str]]) -> dict[str, Any]:
        figures = sentiment_evaluate(rows, model=model)
        return {k: figures[k] for k in ("rows", "accuracy", "macro_recall", "macro_f1", "recall")}
