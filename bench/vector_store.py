"""The vector store as the web processes use it: embedded Chroma (each process opens the
folder itself) against the Chroma server that runstack and the deploy kit now run, in one run
on this machine.

For each: the vector leg's query latency and whole hybrid-search latency at N chunks (default
5,000 real passages from ../shared/data, StackFAQ dev questions as queries), and freshness: a
second process, already serving, polls the collection while this one indexes one more passage;
the time until the reader sees it (or "never" within the wait). Writes
bench/results/vector_store.json.

    .venv/bin/python bench/vector_store.py [--chunks 5000] [--queries 300] [--wait 10]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.knowledge_search import SHARED, passages  # noqa: E402
from bench.stack import percentile, write_result  # noqa: E402


def reader(address: str, path: str, collection: str, probe_file: str, wait: float) -> None:
    """Runs in its own process: open the store and query it once (as a serving process has),
    then query with the new passage's vector until it comes back first; print the wall-clock
    time it did, or 0. (A count would not do: embedded, it reads the shared SQLite log and sees
    the write, while queries go to the process's own in-memory index, which does not.)"""
    import chromadb
    from chromadb.config import Settings

    chroma_settings = Settings(anonymized_telemetry=False)
    if address:
        host, _, port = address.rpartition(":")
        client = chromadb.HttpClient(host=host, port=int(port), settings=chroma_settings)
    else:
        client = chromadb.PersistentClient(path=path, settings=chroma_settings)
    probe = json.loads(Path(probe_file).read_text())
    handle = client.get_collection(collection)
    handle.query(query_embeddings=[probe["vector"]], n_results=1)
    print("ready", flush=True)
    deadline = time.time() + wait
    while time.time() < deadline:
        if handle.query(query_embeddings=[probe["vector"]], n_results=1)["ids"][0][:1] == [probe["id"]]:
            print(time.time(), flush=True)
            return
        time.sleep(0.02)
    print(0, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--wait", type=float, default=10)
    parser.add_argument("--reader", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        address, path, collection, probe_file, wait = args.reader
        reader(address if address != "-" else "", path, collection, probe_file, float(wait))
        return

    workdir = tempfile.mkdtemp(prefix="concierge-bench-")
    os.environ.update(CONCIERGE_VAR_DIR=workdir, DJANGO_SETTINGS_MODULE="config.settings", ORT_DISABLE_TELEMETRY="1")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("CHROMA_HOST", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from knowledge import embeddings, vectors
    from knowledge.models import Article, Chunk
    from knowledge.search import kb_search
    from knowledge.vector_server import LocalChromaServer
    from tenancy.models import Organization

    call_command("migrate", verbosity=0)
    organization = Organization.objects.create(name="Bench", slug="bench")
    article = Article.objects.create(
        organization=organization, title="Bench", slug="bench", body="-", status="published"
    )
    texts = passages(args.chunks)
    chunks = Chunk.objects.bulk_create(
        Chunk(article=article, organization=organization, ordinal=n, text=text) for n, text in enumerate(texts)
    )
    ids = [str(c.pk) for c in chunks]
    vectors_all = [v.tolist() for v in embeddings.embed(texts)]
    with (SHARED / "retrieval" / "stackfaq_dev_queries.csv").open(encoding="utf-8") as handle:
        questions = [row["query"] for row in csv.DictReader(handle)][: args.queries]
    query_vectors = [v.tolist() for v in embeddings.embed(questions)]
    probe_text = "Alpacas are welcome at the climbing wall on Tuesday mornings."
    extra = Chunk.objects.create(article=article, organization=organization, ordinal=len(texts), text=probe_text)
    probe_file = Path(workdir) / "probe.json"
    probe_file.write_text(json.dumps({"id": str(extra.pk), "vector": embeddings.embed([probe_text])[0].tolist()}))

    server = LocalChromaServer(str(Path(workdir) / "chroma-server")).start()
    figures = {}
    try:
        for mode, address in (("embedded", ""), ("server", server.address)):
            settings.CHROMA_HOST = address
            collection = vectors.get_collection(organization.pk)
            started = time.perf_counter()
            for start in range(0, len(ids), 500):
                collection.upsert(
                    ids=ids[start : start + 500],
                    embeddings=vectors_all[start : start + 500],
                    documents=texts[start : start + 500],
                    metadatas=[{"article_id": article.pk, "title": "Bench"}] * len(ids[start : start + 500]),
                )
            write_seconds = time.perf_counter() - started
            vector_ms, total_ms = [], []
            for vector in query_vectors:
                began = time.perf_counter()
                vectors.query(organization.pk, vector, 30)
                vector_ms.append((time.perf_counter() - began) * 1000)
            for question in questions:
                total_ms.append(kb_search(organization_id=organization.pk, query=question, k=5).timings_ms["total"])

            # Freshness: a reader process that is already serving, then one more passage indexed here.
            argv = [sys.executable, __file__, "--reader", address or "-", settings.CHROMA_PATH,
                    vectors.collection_name(organization.pk), str(probe_file), str(args.wait)]  # fmt: skip
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            written = time.time()
            vectors.upsert(organization.pk, ids=[str(extra.pk)], texts=[extra.text], metadatas=[{"article_id": 0}])
            seen = float(process.stdout.readline().strip() or 0)
            process.wait()
            figures[mode] = {
                "write_5000_seconds": round(write_seconds, 2),
                "vector_query_p50_ms": percentile(vector_ms, 0.5),
                "vector_query_p95_ms": percentile(vector_ms, 0.95),
                "search_total_p50_ms": percentile(total_ms, 0.5),
                "search_total_p95_ms": percentile(total_ms, 0.95),
                "other_process_sees_a_write_after_ms": round((seen - written) * 1000, 1) if seen else None,
            }
            print(mode, json.dumps(figures[mode]), flush=True)
    finally:
        server.stop()
    ratio = figures["server"]["search_total_p95_ms"] / figures["embedded"]["search_total_p95_ms"]
    result = {
        "benchmark": "vector_store",
        "chunks": len(ids),
        "queries": len(questions),
        "freshness_wait_seconds": args.wait,
        **figures,
        "server_vs_embedded_search_p95": round(ratio, 2),
    }
    path = write_result("vector_store", result)
    print(f"server / embedded hybrid search p95: {ratio:.2f}x; wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
