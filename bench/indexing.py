"""Embedding throughput when indexing: the serving session (one thread, as chat turns use it)
against the bulk session that indexing and training use (a thread per core), in one run.

Chunks are StackFAQ's articles cut as the indexer cuts them (../shared/data/retrieval). Rounds
alternate between the two sessions so that a noisy neighbour hurts both alike. Prints chunks/s
for each and their ratio, and writes bench/results/indexing.json.

    .venv/bin/python bench/indexing.py [--rounds 3]
"""

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT.parent / "shared" / "data" / "retrieval" / "stackfaq_articles.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not ARTICLES.is_file():
        sys.exit(f"{ARTICLES} is not present: this benchmark reads its articles from ../shared/data.")
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    sys.path.insert(0, str(ROOT))

    from knowledge.chunking import chunk_article
    from knowledge.embeddings import get_embedder
    from knowledge.ingest import documents_read

    texts = [p.text for d in documents_read(ARTICLES) for p in chunk_article(title=d.title, body=d.body)]
    embedder = get_embedder()
    embedder.embed(texts[:8])
    embedder.embed(texts[:8], bulk=True)
    seconds: dict[str, list[float]] = {"serving": [], "bulk": []}
    for _ in range(args.rounds):
        for name, bulk in (("serving", False), ("bulk", True)):
            started = time.perf_counter()
            embedder.embed(texts, bulk=bulk)
            seconds[name].append(time.perf_counter() - started)
    rate = {name: len(texts) / min(values) for name, values in seconds.items()}
    figures = {
        "chunks": len(texts),
        "rounds": args.rounds,
        "bulk_threads": embedder.bulk_threads,
        "serving_chunks_per_second": round(rate["serving"], 1),
        "bulk_chunks_per_second": round(rate["bulk"], 1),
        "bulk_over_serving": round(rate["bulk"] / rate["serving"], 2),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(
        f"StackFAQ chunks {len(texts)}, best of {args.rounds} rounds\n"
        f"serving session (1 thread): {figures['serving_chunks_per_second']} chunks/s\n"
        f"bulk session ({embedder.bulk_threads} threads): {figures['bulk_chunks_per_second']} chunks/s\n"
        f"bulk / serving: {figures['bulk_over_serving']}"
    )
    out = ROOT / "bench" / "results" / "indexing.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
