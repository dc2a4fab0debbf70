"""Tuning the English encoder's last layers for sentiment, at training time only
(``manage.py train_default_sentiment``; servers never import this module).

The shipped English sentiment model reads its own copies of MiniLM's last two layers
(knowledge.model_prep.TUNABLE), tuned here on the public sentiment sets from the token states the
first four leave (knowledge.embeddings.Encoding): the layers, a three-way softmax over their
pooled output (mean over tokens, unit length, times ``POOL_SCALE``), weighted cross-entropy,
Adam. The softmax is dropped afterwards; the linear model (agents.sentiment_linear) is then
trained on the tuned layers' output beside the n-grams.

The forward pass is written again here in jax (gradients) and must be the function the served
graph computes (model_prep.layers_model): tests/agents/test_sentiment_tuning.py checks the two
on the packaged weights. jax is a development dependency (requirements-dev.txt)."""

from collections.abc import Sequence
from typing import Any

import numpy as np

from config.progress import advance
from knowledge.embeddings import padded
from knowledge.model_prep import HEADS, LAYER_KEYS, LAYER_NORM_EPSILON, WIDTH

POOL_SCALE = 10.0  # the unit-length pooled vector is scaled before the softmax (a temperature)
HEAD_RATE = 20.0  # the softmax learns this many times faster than the layers
BATCH = 32
BUCKET = 1600  # rows drawn together and sorted by length into batches (little padding)


def _jax() -> Any:
    try:
        import jax
    except ImportError as exc:  # pragma: no cover - a dev dependency
        raise RuntimeError("Tuning the encoder's layers needs jax: pip install -r requirements-dev.txt") from exc
    jax.config.update("jax_platforms", "cpu")
    return jax


def forward(layers: Sequence[dict[str, Any]], hidden: Any, mask: Any) -> Any:
    """The layers (jax arrays) on a padded batch of token states: the last layer's states."""
    jax = _jax()
    jnp = jax.numpy
    batch, tokens, width = hidden.shape
    size = width // HEADS

    def norm(x: Any, scale: Any, shift: Any) -> Any:
        mean = x.mean(-1, keepdims=True)
        variance = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(variance + LAYER_NORM_EPSILON) * scale + shift

    def heads(x: Any) -> Any:
        return x.reshape(batch, tokens, HEADS, size).transpose(0, 2, 1, 3)

    bias = ((1.0 - mask) * -1e9)[:, None, None, :]
    for w in layers:
        query, key, value = (heads(hidden @ w[k] + w[k + "b"]) for k in ("q", "k", "v"))
        scores = query @ key.transpose(0, 1, 3, 2) / np.sqrt(size) + bias
        context = (jax.nn.softmax(scores, -1) @ value).transpose(0, 2, 1, 3).reshape(batch, tokens, width)
        attended = norm(context @ w["o"] + w["ob"] + hidden, w["ln1g"], w["ln1b"])
        inner = jax.nn.gelu(attended @ w["i"] + w["ib"], approximate=False) @ w["f"] + w["fb"]
        hidden = norm(inner + attended, w["ln2g"], w["ln2b"])
    return hidden


def tune_layers(
    layers: Sequence[dict[str, np.ndarray]],
    states: Sequence[np.ndarray],
    labels: Sequence[int],
    weights: Sequence[float],
    *,
    classes: int,
    epochs: int,
    rate: float,
    seed: int = 0,
    progress: Any = None,
) -> tuple[list[dict[str, np.ndarray]], list[float]]:
    """The layers tuned on (token states, label index, row weight) rows; and each epoch's mean
    loss. ``progress`` advances by each batch's rows."""
    jax = _jax()
    jnp = jax.numpy
    params: dict[str, Any] = {
        "layers": [{k: jnp.asarray(layer[k], dtype=jnp.float32) for k in LAYER_KEYS} for layer in layers],
        "head": {"w": jnp.zeros((WIDTH, classes)), "b": jnp.zeros(classes)},
    }

    def loss(params: Any, hidden: Any, mask: Any, y: Any, w: Any) -> Any:
        output = forward(params["layers"], hidden, mask)
        pooled = (output * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        pooled = pooled / jnp.linalg.norm(pooled, axis=-1, keepdims=True) * POOL_SCALE
        logits = pooled @ params["head"]["w"] + params["head"]["b"]
        picked = jax.nn.log_softmax(logits)[jnp.arange(len(y)), y]
        return -jnp.sum(picked * w) / jnp.sum(w)

    rates = {"layers": rate, "head": rate * HEAD_RATE}

    @jax.jit
    def step(params: Any, first: Any, second: Any, t: Any, hidden: Any, mask: Any, y: Any, w: Any) -> Any:
        value, grads = jax.value_and_grad(loss)(params, hidden, mask, y, w)
        first = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, first, grads)
        second = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, second, grads)
        params = {
            group: jax.tree.map(
                lambda p, m, v, r=rates[group]: p - r * (m / (1 - 0.9**t)) / (jnp.sqrt(v / (1 - 0.999**t)) + 1e-8),
                params[group],
                first[group],
                second[group],
            )
            for group in params
        }
        return params, first, second, value

    first = jax.tree.map(jnp.zeros_like, params)
    second = jax.tree.map(jnp.zeros_like, params)
    y_all, w_all = np.asarray(labels, dtype=np.int32), np.asarray(weights, dtype=np.float32)
    lengths = np.array([len(s) for s in states])
    rng = np.random.default_rng(seed)
    t, losses = 0, []
    for _ in range(epochs):
        order = rng.permutation(len(states))
        batches: list[Any] = []
        for start in range(0, len(order), BUCKET):
            bucket = order[start : start + BUCKET]
            bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
            batches += [bucket[i : i + BATCH] for i in range(0, len(bucket), BATCH)]
        rng.shuffle(batches)
        total = 0.0
        for rows in batches:
            t += 1
            hidden, mask = padded(states, rows, multiple=16)  # few batch shapes to compile
            params, first, second, value = step(params, first, second, t, hidden, mask, y_all[rows], w_all[rows])
            total += float(value)
            advance(progress, len(rows))
        losses.append(total / max(1, len(batches)))
    tuned = [{k: np.asarray(v, dtype=np.float32) for k, v in layer.items()} for layer in params["layers"]]
    return tuned, losses
