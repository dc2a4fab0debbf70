"""The serving copy of the English embedding model (knowledge.model_prep): the same vectors as
the packaged model, its token table kept in int8, made once, and the packaged model serving
when the copy cannot be made."""

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

from knowledge import embeddings, model_prep

TEXTS = ["How do I return a tent?", "退货需要多久", "my order never arrived and nobody answers " * 20]


@pytest.fixture
def packaged() -> Path:
    return embeddings._packaged_model()


def _vectors(embedder: embeddings.Embedder) -> np.ndarray:
    return embedder.embed(TEXTS)


def test_the_serving_copy_embeds_exactly_as_the_packaged_model_with_its_tables_in_int8(tmp_path, settings, packaged):
    settings.MODEL_DIR = tmp_path / "models"
    served = embeddings.Embedder()
    assert Path(served.model).parent == tmp_path / "models" and Path(served.model) != packaged
    made = Path(served.model).stat().st_mtime_ns

    # The packaged model, opened as before.
    reference = embeddings.Embedder()
    reference.session = embeddings._session(str(packaged), 1)
    assert np.abs(_vectors(served) - _vectors(reference)).max() <= model_prep.MAX_DIFFERENCE

    # The copy gathers token rows from the int8 table; no float32 copy of the table is stored.
    graph = onnx.load(served.model).graph
    tables = {init.name: init for init in graph.initializer if "word_embeddings" in init.name}
    assert tables and {init.data_type for init in tables.values()} <= {onnx.TensorProto.INT8, onnx.TensorProto.FLOAT}
    largest = max(tables.values(), key=lambda init: np.prod(init.dims))
    assert largest.data_type == onnx.TensorProto.INT8 and list(largest.dims) == [30522, 384]

    # Made once: the next process finds it.
    assert embeddings.Embedder().model == served.model
    assert Path(served.model).stat().st_mtime_ns == made


def test_a_copy_that_cannot_be_made_leaves_the_packaged_model_serving(tmp_path, settings, packaged, caplog):
    blocked = tmp_path / "models"
    blocked.write_text("a file where the directory should be")
    settings.MODEL_DIR = blocked
    with caplog.at_level(logging.WARNING, logger="knowledge.model_prep"):
        embedder = embeddings.Embedder()
    assert embedder.model == str(packaged)
    assert "the packaged model serves" in caplog.text
    assert embedder.embed(["still embeds"]).shape == (1, embeddings.DIMENSIONS)
    # The token states still come back (added to the packaged graph in the process).
    (encoding,) = embedder.encode(["still embeds"])
    assert encoding.states.shape == (len(embedder.tokenizer.encode("still embeds").ids), model_prep.WIDTH)


def test_the_serving_copy_returns_the_token_states_the_last_layers_run_on(tmp_path, settings, packaged):
    """The encoder's last layers, built as their own graph (model_prep.layers_model) from the
    packaged weights, give the encoder's own vectors on the states the copy returns; stored in
    half precision (as the shipped sentiment model's tuned copies are), nearly so."""
    settings.MODEL_DIR = tmp_path / "models"
    embedder = embeddings.Embedder()
    encodings = embedder.encode(TEXTS)
    # Each text's own tokens, not the batch's padding.
    assert [len(e.states) for e in encodings] == [sum(e.attention_mask) for e in embedder.tokenizer.encode_batch(TEXTS)]
    assert len({len(e.states) for e in encodings}) == len(TEXTS)
    layers = model_prep.packaged_layers(packaged, model_prep.STATES_AFTER)
    assert len(layers) == model_prep.TUNABLE
    states = [e.states for e in encodings]
    vectors = np.stack([e.vector for e in encodings])
    assert np.abs(embeddings.TunedLayers(model_prep.layers_model(layers)).vectors(states) - vectors).max() < 1e-5
    half = embeddings.TunedLayers(model_prep.layers_model(layers, dtype="float16")).vectors(states)
    assert 0 < np.abs(half - vectors).max() < 1e-2


def test_a_model_that_would_change_the_vectors_is_refused(tmp_path, packaged, monkeypatch):
    # A rewrite that got the numbers wrong must never replace anything.
    def wrong(model):
        for init in model.graph.initializer:
            if init.name.endswith("word_embeddings.weight_scale"):
                array = onnx.numpy_helper.to_array(init) * 1.5
                init.CopyFrom(onnx.numpy_helper.from_array(array.astype(np.float32), init.name))
        return 0

    monkeypatch.setattr(model_prep, "_gather_int8_rows", wrong)
    target = tmp_path / "copy.onnx"
    with pytest.raises(RuntimeError, match="differs from the packaged one"):
        model_prep.prepare(packaged, target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


PREPARE = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from knowledge import embeddings
from knowledge.model_prep import serving_model
print(serving_model(embeddings._packaged_model(), Path(sys.argv[1])))
"""


def test_processes_starting_together_on_an_empty_directory_prepare_the_copy_once(tmp_path):
    """The web master and the Celery worker at first boot: one prepares, the other waits for
    its copy instead of making a second one beside it."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
    argv = [sys.executable, "-c", PREPARE, str(tmp_path / "models")]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    starts = [subprocess.Popen(argv, cwd=root, env=env, **pipes) for _ in range(2)]
    outputs = [process.communicate(timeout=model_prep.PREPARE_TIMEOUT) for process in starts]
    assert [process.returncode for process in starts] == [0, 0], outputs
    served = {out.strip() for out, _ in outputs}
    assert len(served) == 1 and Path(served.pop()).parent == tmp_path / "models", outputs
    prepared = [err for _, err in outputs if "embedding tables looked up in int8" in err]
    assert len(prepared) == 1, outputs
    assert len(list((tmp_path / "models").glob("*.onnx"))) == 1
