"""fp32 -> fp16 graph conversion: float32 boundary, kept ops, fixed-type inputs, numbers close to fp32."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from cleanfeed.errors import ExportError
from cleanfeed.export.half import to_fp16

F, H = TensorProto.FLOAT, TensorProto.FLOAT16


def build(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    return onnx.shape_inference.infer_shapes(m)


def run(m, feeds):
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def types(m):
    found = {t.name: t.data_type for t in m.graph.initializer}
    for v in (*m.graph.input, *m.graph.output, *m.graph.value_info):
        found[v.name] = v.type.tensor_type.elem_type
    return found


@pytest.fixture
def mlp():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32) * 0.3, "w")
    freq = numpy_helper.from_array(rng.standard_normal((16,)).astype(np.float32) * 20, "freq")
    scales = numpy_helper.from_array(np.array([1, 1, 2], np.float32), "scales")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("Mul", ["h", "freq"], ["phase"], name="scale"),
             helper.make_node("Sin", ["phase"], ["s"], name="sin"),
             helper.make_node("Add", ["s", "h"], ["a"], name="add"),
             helper.make_node("Resize", ["a", "", "scales"], ["y"], name="up", mode="linear"),
             helper.make_node("Shape", ["y"], ["shape"], name="shape")]
    return build(nodes, [helper.make_tensor_value_info("x", F, [1, 4, 8])],
                 [helper.make_tensor_value_info("y", F, [1, 4, 32]), helper.make_tensor_value_info("shape", TensorProto.INT64, [3])],
                 [w, freq, scales])


def test_boundary_stays_float32_and_weights_become_fp16(mlp):
    half = to_fp16(mlp)
    onnx.checker.check_model(half, full_check=True)
    t = types(half)
    assert [v.type.tensor_type.elem_type for v in half.graph.input] == [F]
    assert [v.type.tensor_type.elem_type for v in half.graph.output] == [F, TensorProto.INT64]
    assert t["w"] == H
    assert t["scales"] == F  # Resize's scales input is tensor(float) in the ONNX signature
    ops = [n.op_type for n in half.graph.node]
    assert ops[0] == "Cast" and ops[-1] == "Cast"
    assert mlp.graph.node[0].op_type == "MatMul"  # the input model is not modified


def test_kept_ops_compute_in_float32(mlp):
    half = to_fp16(mlp)
    sin = next(n for n in half.graph.node if n.op_type == "Sin")
    producer = next(n for n in half.graph.node if sin.input[0] in n.output)
    assert producer.op_type == "Cast" and producer.attribute[0].i == F
    # a spec can keep more ops: the MatMul too
    half2 = to_fp16(mlp, keep_fp32=("MatMul",))
    assert types(half2)["w"] == F


def test_numbers_stay_close_to_fp32(mlp):
    x = np.random.default_rng(1).standard_normal((1, 4, 8)).astype(np.float32)
    want = run(mlp, {"x": x})
    got = run(to_fp16(mlp), {"x": x})
    assert got[0].dtype == np.float32 and got[0].shape == want[0].shape
    np.testing.assert_array_equal(got[1], want[1])
    err = np.abs(got[0] - want[0]).max() / np.abs(want[0]).max()
    assert err < 5e-3, err


def test_weights_beyond_fp16_range_are_clamped():
    big = numpy_helper.from_array(np.array([1e6, -1e6, 1.0], np.float32), "big")
    m = build([helper.make_node("Mul", ["x", "big"], ["y"], name="mul")],
              [helper.make_tensor_value_info("x", F, [3])], [helper.make_tensor_value_info("y", F, [3])], [big])
    half = to_fp16(m)
    values = numpy_helper.to_array(next(t for t in half.graph.initializer if t.name == "big"))
    assert values.tolist() == [65504.0, -65504.0, 1.0]


def test_constants_and_casts_follow(mlp):
    nodes = [helper.make_node("Constant", [], ["c"], name="c", value=numpy_helper.from_array(np.array([0.5], np.float32))),
             helper.make_node("Cast", ["i"], ["f"], name="tofloat", to=F),
             helper.make_node("Mul", ["f", "c"], ["y"], name="mul")]
    m = build(nodes, [helper.make_tensor_value_info("i", TensorProto.INT64, [3])],
              [helper.make_tensor_value_info("y", F, [3])])
    half = to_fp16(m)
    onnx.checker.check_model(half, full_check=True)
    cast = next(n for n in half.graph.node if n.name == "tofloat")
    assert cast.attribute[0].i == H
    out = run(half, {"i": np.array([1, 2, 3], np.int64)})[0]
    assert out.dtype == np.float32 and out.tolist() == [0.5, 1.0, 1.5]


def test_control_flow_is_refused():
    then = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", F, [1])])
    node = helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then, else_branch=then)
    m = helper.make_model(helper.make_graph([node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                                                          helper.make_tensor_value_info("x", F, [1])],
                                            [helper.make_tensor_value_info("y", F, [1])]),
                          opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ExportError, match="fp16 conversion does not handle control flow: If node 'branch' has a subgraph"):
        to_fp16(m)
