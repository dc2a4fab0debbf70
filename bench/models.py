"""The models' figures on the public development sets, against the published baselines:

- intent: CLINC150 train -> validation (in-scope accuracy, out-of-scope recall), Banking77
  80/20 holdout of its train file (evaluate_intents);
- sentiment: what a new install runs (the shipped models) and the lexicons they replaced, on
  TweetEval validation and SST-2 dev (evaluate_sentiment); Chinese: the waimai figure comes from
  the shipped model's own notes (a model trained on four fifths, measured on the fifth held back,
  since the shipped model learnt from every review);
- language detection (evaluate_language).

Every figure is on a development split: the test splits are held back elsewhere. Writes
bench/results/models.json.

    .venv/bin/python bench/models.py [--skip-intents]     (~10 min; intents are most of it)
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.update(
    CONCIERGE_VAR_DIR=tempfile.mkdtemp(prefix="concierge-models-bench-"),
    DJANGO_SETTINGS_MODULE="config.settings",
    LOG_LEVEL="WARNING",
    ORT_DISABLE_TELEMETRY="1",
    CONCIERGE_PROGRESS="0",
)
for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "LLM_BASE_URL", "LLM_MODEL"):
    os.environ.pop(name, None)

BASELINES = {
    "intent_clinc150": "TF-IDF + linear 92.8 / 18.7; BERT 96.9 / 40.3 and 96.2 / 52.3 (Larson et al. 2019)",
    "intent_banking77": "TF-IDF + linear 91.7; fine-tuned BERT 93.7 (Casanueva et al. 2020), on test",
    "sentiment_tweeteval": "TF-IDF SVM 61.4; TimeLMs 73.7 macro recall (TweetEval leaderboard), on test",
    "sentiment_sst2": "TF-IDF + linear 83.1; ~91 for DistilBERT-size models",
}


def run(command: str, *args: str) -> dict:
    from django.core.management import call_command

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        started = time.perf_counter()
        call_command(command, *args, "--json", out.name, stdout=open(os.devnull, "w"))  # noqa: SIM115
        figures = json.loads(Path(out.name).read_text())
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(
        f"{figures['task']:<9} {figures['data']:<34} {figures['engine']:<18} accuracy {figures['accuracy']:.4f}  "
        f"macro recall {figures['macro_recall']:.4f}  oos recall {figures.get('oos_recall') or '-'}  "
        f"p95 {figures['latency_p95_ms']} ms, given the embedding {figures.get('model_p95_ms') or '-'} ms "
        f"({figures['seconds']} s)",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-intents", action="store_true")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA}: the public data folder is missing")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from agents.sentiment_linear import shipped_sentiment

    intents, sentiment = DATA / "intents", DATA / "sentiment"
    figures: dict = {"baselines": BASELINES}
    if not args.skip_intents:
        figures["intent_clinc150_val"] = run(
            "evaluate_intents",
            "--train",
            str(intents / "clinc150_train.csv"),
            "--test",
            str(intents / "clinc150_val.csv"),
        )
        figures["intent_banking77_holdout"] = run("evaluate_intents", "--train", str(intents / "banking77_train.csv"))
    for name in ("tweeteval_val", "sst2_dev"):
        for engine in ("shipped", "lexicon"):
            figures[f"sentiment_{name}_{engine}"] = run(
                "evaluate_sentiment", "--csv", str(sentiment / f"{name}.csv"), "--engine", engine
            )
    chinese = shipped_sentiment("zh")
    figures["sentiment_waimai_fifth_shipped"] = chinese.notes["dev"] if chinese else None
    print(f"sentiment waimai (shipped model's notes, a fifth held back): {figures['sentiment_waimai_fifth_shipped']}")
    figures["language"] = run("evaluate_language", "--data", str(DATA))
    from bench.stack import write_result

    print(f"wrote {write_result('models', figures)}")


if __name__ == "__main__":
    main()
