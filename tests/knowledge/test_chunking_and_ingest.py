import json

import pytest
from django.core.management import CommandError, call_command

from knowledge.chunking import CHUNK_CHARS, chunk_article
from knowledge.models import Article, Chunk


def test_chunks_keep_title_and_heading_path():
    body = "# Returns\n\nIntro text.\n\n## Refund timing\n\n" + ("We refund within two days. " * 80)
    passages = chunk_article(title="Returns and refunds", body=body)
    assert passages[0].text == "Returns and refunds"
    timing = [p for p in passages if p.heading.endswith("Refund timing")]
    assert len(timing) >= 2  # the long section was split by size
    assert all(p.text.startswith("Returns and refunds — ") for p in timing)
    assert all(len(p.text) <= CHUNK_CHARS + 120 for p in passages)


@pytest.mark.django_db
def test_kb_ingest_reads_every_format_and_reports_broken_files(tmp_path, org, capsys):
    (tmp_path / "tents.md").write_text("---\ntitle: Tent care\nurl: https://x.example/tents\n---\nDry the tent.")
    (tmp_path / "stoves.html").write_text("<html><title>Stove safety</title><body><p>Never indoors.</p></body></html>")
    (tmp_path / "maps.txt").write_text("Paper maps never run out of battery.")
    (tmp_path / "faq.jsonl").write_text(json.dumps({"id": "faq-1", "title": "Boots", "body": "Break them in."}) + "\n")
    (tmp_path / "broken.jsonl").write_text('{"id": "x", "title": "no body"}\n')
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(CommandError, match="2 file"):
        call_command("kb_ingest", str(tmp_path / "tents.md"), str(tmp_path / "stoves.html"), str(tmp_path / "maps.txt"),
                     str(tmp_path / "faq.jsonl"), str(tmp_path / "broken.jsonl"), str(tmp_path / "image.png"),
                     "--org", org.slug)  # fmt: skip
    err = capsys.readouterr().err
    assert "broken.jsonl" in err and "image.png" in err
    titles = set(Article.objects.filter(organization=org).values_list("title", flat=True))
    assert titles == {"Tent care", "Stove safety", "maps", "Boots"}
    assert Article.objects.get(title="Tent care").url == "https://x.example/tents"
    assert Article.objects.filter(status="published", needs_indexing=False).count() == 4
    assert Chunk.objects.filter(organization=org).count() >= 8
