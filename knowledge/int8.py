"""Weight products in int8 for ONNX graphs: the rewrite (``matmuls``) that knowledge.model_prep
applies to the English encoder's serving copy and to the encoder layers a tuned model carries,
and the range of the weights this CPU runs without overflow (``weight_levels``)."""

from pathlib import Path
from typing import Any

# The weights' int8 range. CPUs without VNNI (x86 before Cascade Lake and Zen 4) multiply uint8
# by int8 in pairs summed into 16 bits, which hold 32,767: two products of 255 and a weight of 65
# or more overflow, so full-range weights could saturate there (onnxruntime's advice: seven-bit
# weights, its ``reduce_range``). Seven
# bits are safe on every CPU: what a file that travels (a sentiment model's tuned layers) holds.
# The encoder's copy is made on the machine that serves it, or made again there (its name
# carries the range), and takes eight bits where VNNI sums into 32: closer to float32 (cosine
# 0.9976 on average against 0.9956 over 400 tweets; SST-2 dev 0.867 against 0.859).
SAFE_LEVELS = 63
VNNI_LEVELS = 127


def weight_levels(cpuinfo: Path = Path("/proc/cpuinfo")) -> int:
    """The int8 range for the encoder's weights on this CPU: full where x86 VNNI sums the
    products into 32 bits, seven bits anywhere else (see SAFE_LEVELS)."""
    try:
        flags = cpuinfo.read_text(errors="replace").split()
    except OSError:
        return SAFE_LEVELS
    return VNNI_LEVELS if {"avx512_vnni", "avx_vnni"} & set(flags) else SAFE_LEVELS


def matmuls(model: Any, levels: int = SAFE_LEVELS) -> int:
    """Rewrite each MatMul(x, W), W a float32 matrix among the initializers, as integer
    products: each row of x (a token's state) scaled to -127..127 by its own largest magnitude
    and held as uint8 around 128, each column of W by its own to -levels..levels as int8 (see
    SAFE_LEVELS), and the int32 sums scaled back by the column's scale, then the row's. Returns
    how many were rewritten; the float32 matrices stay among the initializers for the caller to
    drop.

    The column's scale comes first on purpose: onnxruntime fuses MatMulInteger, its Cast and
    the Mul after them into MatMulIntegerToFloat, which takes that Mul's scale as one per column
    at most; with the row's scale in that place the fused graph gave wrong vectors (cosine 0.38
    to the right ones, measured)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    matrices = {
        init.name: init for init in graph.initializer if init.data_type == TensorProto.FLOAT and len(init.dims) == 2
    }
    constants = {"int8_limit": np.float32(127.0), "int8_floor": np.float32(1e-12), "int8_centre": np.float32(128.0)}
    added = [numpy_helper.from_array(np.asarray(value), name) for name, value in constants.items()]
    added.append(numpy_helper.from_array(np.asarray(128, dtype=np.uint8), "int8_zero_point"))
    rebuilt, count = [], 0
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in matrices or node.input[0] in matrices:
            rebuilt.append(node)
            continue
        weights = numpy_helper.to_array(matrices[node.input[1]]).astype(np.float32)
        column_scale = np.abs(weights).max(axis=0) / levels
        column_scale[column_scale == 0] = 1.0
        quantized = np.clip(np.round(weights / column_scale), -levels, levels).astype(np.int8)
        p, x = f"int8_{count}", node.input[0]
        added += [numpy_helper.from_array(quantized, f"{p}_w"), numpy_helper.from_array(column_scale, f"{p}_ws")]
        if opset >= 18:  # ReduceMax's axes became an input
            added.append(numpy_helper.from_array(np.asarray([-1], dtype=np.int64), f"{p}_axes"))
            largest = helper.make_node("ReduceMax", [f"{p}_abs", f"{p}_axes"], [f"{p}_max"], keepdims=1)
        else:
            largest = helper.make_node("ReduceMax", [f"{p}_abs"], [f"{p}_max"], axes=[-1], keepdims=1)
        rebuilt += [
            helper.make_node("Abs", [x], [f"{p}_abs"]),
            largest,
            helper.make_node("Max", [f"{p}_max", "int8_floor"], [f"{p}_max1"]),
            helper.make_node("Div", [f"{p}_max1", "int8_limit"], [f"{p}_xs"]),  # the row's scale
            helper.make_node("Div", [x, f"{p}_xs"], [f"{p}_x"]),
            helper.make_node("Round", [f"{p}_x"], [f"{p}_xr"]),
            helper.make_node("Add", [f"{p}_xr", "int8_centre"], [f"{p}_xc"]),
            helper.make_node("Cast", [f"{p}_xc"], [f"{p}_xq"], to=TensorProto.UINT8),
            helper.make_node("MatMulInteger", [f"{p}_xq", f"{p}_w", "int8_zero_point"], [f"{p}_sum"]),
            helper.make_node("Cast", [f"{p}_sum"], [f"{p}_sumf"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{p}_sumf", f"{p}_ws"], [f"{p}_col"]),
            helper.make_node("Mul", [f"{p}_col", f"{p}_xs"], [node.output[0]]),
        ]
        count += 1
    del graph.node[:]
    graph.node.extend(rebuilt)
    graph.initializer.extend(added)
    return count
