"""Dialog pipeline micro-benchmarks on one machine, no servers:

- per-stage latency (normalise, language, sentiment, intent, retrieve, respond, decision)
  over 1,000 real customer-service messages (bitext set in ../shared/data, read in place)
  answered against the demo company;
- embedding throughput (int8 MiniLM on onnxruntime): batches of 32, and one text at a time;
- intent accuracy (CLINC150 train -> val, Banking77 80/20 holdout) and sentiment accuracy
  (SST-2 dev, TweetEval val) on the shared sets, via the evaluate_* commands (bench/models.py
  has every model figure, the waimai one included, against the baselines).

Uses the embedded defaults in a throw-away folder. Writes bench/results/pipeline.json.

    .venv/bin/python bench/pipeline.py [--messages 1000] [--skip-accuracy]
"""

import argparse
import csv
import io
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.update(
    CONCIERGE_VAR_DIR=tempfile.mkdtemp(prefix="concierge-pipeline-bench-"),
    DJANGO_SETTINGS_MODULE="config.settings",
    LOG_LEVEL="WARNING",
    ORT_DISABLE_TELEMETRY="1",
)
for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "LLM_BASE_URL", "LLM_MODEL"):
    os.environ.pop(name, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    source = DATA / "intents" / "bitext_customer_service_8k.csv"
    if not source.exists():
        sys.exit(f"missing {source}: the shared datasets are needed")

    import django

    django.setup()
    from django.core.management import call_command

    from agents.pipeline import ConversationContext, run_pipeline
    from bench.stack import percentile, write_result
    from knowledge import embeddings
    from tenancy.models import Organization

    call_command("migrate", verbosity=0)
    call_command("bootstrap_demo", stdout=io.StringIO())
    organization = Organization.objects.get(slug="trailhead")
    with source.open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    random.Random(7).shuffle(texts)
    messages = texts[: args.messages]

    context = ConversationContext(organization_id=organization.pk, vip_tier="none", previous_scores=[],
                                  previous_fallbacks=0)  # fmt: skip
    for text in messages[:20]:  # warm up: models load on first use
        run_pipeline(text, context)
    stages: dict[str, list[float]] = {}
    started = time.perf_counter()
    for text in messages:
        state = run_pipeline(text, context)
        for stage, ms in state["timings_ms"].items():
            stages.setdefault(stage, []).append(ms)
    elapsed = time.perf_counter() - started
    stage_rows = {
        stage: {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "p99": percentile(values, 0.99)}
        for stage, values in stages.items()
    }
    print(f"pipeline: {len(messages)} messages in {elapsed:.1f} s ({len(messages) / elapsed:.0f}/s, one thread)")
    for stage, row in stage_rows.items():
        print(f"  {stage:<12} p50 {row['p50']:>7} ms  p95 {row['p95']:>7} ms  p99 {row['p99']:>7} ms")

    batch_texts = texts[: 32 * 32]
    embeddings.embed(batch_texts[:32])
    started = time.perf_counter()
    for i in range(0, len(batch_texts), 32):
        embeddings.embed(batch_texts[i : i + 32])
    batched = len(batch_texts) / (time.perf_counter() - started)
    singles = []
    for text in texts[:300]:
        t0 = time.perf_counter()
        embeddings.embed([text])
        singles.append((time.perf_counter() - t0) * 1000)
    embedding = {
        "batch32_texts_per_second": round(batched, 1),
        "single_text_ms": {"p50": percentile(singles, 0.5), "p95": percentile(singles, 0.95)},
    }
    print(f"embeddings: {batched:.0f} texts/s in batches of 32; one text p50 {embedding['single_text_ms']['p50']} ms")

    accuracy: dict[str, str] = {}
    if not args.skip_accuracy:
        intents, sentiment = DATA / "intents", DATA / "sentiment"
        runs = {
            "intent_clinc150_val": ("evaluate_intents", ["--train", str(intents / "clinc150_train.csv"),
                                                         "--test", str(intents / "clinc150_val.csv")]),
            "intent_banking77_holdout": ("evaluate_intents", ["--train", str(intents / "banking77_train.csv")]),
            "sentiment_sst2_dev": ("evaluate_sentiment", ["--csv", str(sentiment / "sst2_dev.csv")]),
            "sentiment_tweeteval_val": ("evaluate_sentiment", ["--csv", str(sentiment / "tweeteval_val.csv")]),
        }  # fmt: skip
        for name, (command, command_args) in runs.items():
            out = io.StringIO()
            t0 = time.perf_counter()
            call_command(command, *command_args, stdout=out)
            summary = " ".join(line.strip() for line in out.getvalue().splitlines() if re.search(r"\d", line))[:400]
            accuracy[name] = summary
            print(f"{name} ({time.perf_counter() - t0:.0f} s): {summary}")

    path = write_result(
        "pipeline",
        {
            "messages": len(messages),
            "messages_per_second_one_thread": round(len(messages) / elapsed, 1),
            "stage_ms": stage_rows,
            "embeddings": embedding,
            "accuracy": accuracy,
            "mean_total_ms": round(statistics.fmean(stages.get("total", [0])), 2),
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
