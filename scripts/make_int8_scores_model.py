"""Writes ``src/bounded/retrieval/assets/int8_scores.onnx``: one MatMulInteger node.

The embedded vector search scores int8 codes against an int8 query with onnxruntime's
MLAS kernels (already a dependency for the embedding model); numpy has no fast int8
product. The file is 164 bytes and checked in; this script documents how it was made and
needs the ``onnx`` package, which bounded itself does not depend on:

    pip install onnx && python scripts/make_int8_scores_model.py
"""

from pathlib import Path

import onnx
from onnx import TensorProto, helper

OUT = Path(__file__).parents[1] / "src/bounded/retrieval/assets/int8_scores.onnx"

codes = helper.make_tensor_value_info("codes", TensorProto.UINT8, ["rows", "dims"])
query = helper.make_tensor_value_info("query", TensorProto.INT8, ["dims", 1])
scores = helper.make_tensor_value_info("scores", TensorProto.INT32, ["rows", 1])
graph = helper.make_graph(
    [helper.make_node("MatMulInteger", ["codes", "query"], ["scores"])],
    "int8_scores",
    [codes, query],
    [scores],
)
model = helper.make_model(
    graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="bounded"
)
model.ir_version = 7
onnx.checker.check_model(model)
OUT.write_bytes(model.SerializeToString())
print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
