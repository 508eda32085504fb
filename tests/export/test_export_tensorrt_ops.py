"""The TensorRT operator check on hand-built ONNX graphs, one rejection reason at a time."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cleanfeed.export import tensorrt_ops
from cleanfeed.export.tensorrt_ops import RULES, check, check_file, load_matrix

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, initializers=(), opset=18, value_info=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers), value_info=list(value_info))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def tensor(name, elem=F, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def reasons(findings):
    return [(f.op_type, f.node, f.reason, f.severity) for f in findings]


def test_matrix_is_the_published_10_1_table_as_data():
    matrix = load_matrix()
    assert matrix.tensorrt_version == "10.1"
    assert matrix.source["commit"] == "96e781103cfc4adf4a6bb557e94bac8e693f6f4c"
    assert matrix.source["url"].startswith("https://github.com/onnx/onnx-tensorrt/blob/")
    assert matrix.opset_range == (9, 20)
    ops = matrix.operators
    assert len(ops) == 196 and sum(e["supported"] for e in ops.values()) == 150
    assert ops["Unique"]["supported"] is False and ops["Conv"]["supported"] is True
    assert ops["ConstantOfShape"]["types"] == ["float32", "float16", "bfloat16", "int32", "int64", "bool"]
    known = set(matrix.types["supported"])
    for name, entry in ops.items():
        assert set(entry["types"]) <= known, name
        assert entry["note"], name
        for rule in entry.get("restrictions", ()):
            assert rule["kind"] in RULES, (name, rule)


def test_clean_graph_has_no_findings():
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    m = model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["y"], name="relu")],
              [tensor("x")], [tensor("y", shape=(1, 4, 6, 6))], [w])
    assert check(m) == []


def test_unsupported_op():
    m = model([helper.make_node("Unique", ["x"], ["y"], name="uniq", sorted=1)],
              [tensor("x", shape=(5,))], [tensor("y", shape=("n",))])
    assert reasons(check(m)) == [("Unique", "uniq", "not supported by TensorRT 10.1's ONNX parser", "error")]


def test_op_missing_from_matrix_and_custom_domain():
    nodes = [helper.make_node("Swish", ["x"], ["y"], name="s1"),
             helper.make_node("FancyOp", ["y"], ["z"], name="f1", domain="com.example")]
    m = model(nodes, [tensor("x")], [tensor("z")])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    got = reasons(check(m))
    assert ("Swish", "s1", "not in TensorRT 10.1's operator matrix", "error") in got
    assert ("FancyOp", "f1", "custom-domain op (com.example): TensorRT needs a plugin for it", "error") in got


def test_resize_with_unsupported_mode_and_coordinates():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic"),
             helper.make_node("Resize", ["x", "", "scales"], ["z"], name="crop", mode="linear",
                              coordinate_transformation_mode="tf_crop_and_resize"),
             helper.make_node("Resize", ["x", "", "scales"], ["w"], name="fine", mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor")]
    m = model(nodes, [tensor("x")], [tensor(n, shape=(1, 3, 16, 16)) for n in "yzw"], [scales])
    got = reasons(check(m))
    assert got == [
        ("Resize", "up", "mode='cubic' is not supported; TensorRT takes nearest, linear", "error"),
        ("Resize", "crop", "coordinate_transformation_mode='tf_crop_and_resize' is not supported; TensorRT takes "
                           "half_pixel, pytorch_half_pixel, tf_half_pixel_for_nn, asymmetric, align_corners", "error"),
    ]


def test_resize_antialias_and_axes():
    scales = numpy_helper.from_array(np.array([2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="r", mode="linear", antialias=1, axes=[2, 3])
    got = reasons(check(model([node], [tensor("x")], [tensor("y", shape=(1, 3, 16, 16))], [scales])))
    assert ("Resize", "r", "antialias must be 0, got 1", "error") in got
    assert ("Resize", "r", "with a scales input, axes must list every axis in order (0..3), got [2, 3]", "error") in got


def test_computed_input_where_an_initializer_is_required():
    # ReduceSum's axes come from Shape -> Gather: a computed tensor, which TensorRT needs at build time
    idx = numpy_helper.from_array(np.array([1], np.int64), "idx")
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "idx"], ["axes"], name="pick"),
             helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="sum")]
    m = model(nodes, [tensor("x")], [tensor("y", shape=(1, 1, 8, 8))], [idx])
    assert reasons(check(m)) == [
        ("ReduceSum", "sum", "input 1 (axes: axes) must be an initializer or Constant, but is computed in the graph",
         "error")]
    # the same axes as a Constant node pass
    nodes[0:2] = [helper.make_node("Constant", [], ["axes"], name="k",
                                   value=numpy_helper.from_array(np.array([1], np.int64)))]
    assert check(model(nodes, [tensor("x")], [tensor("y", shape=(1, 1, 8, 8))])) == []


def test_dtype_tensorrt_lacks():
    # MatMul on int32 is valid ONNX, but TensorRT's MatMul is float-only
    m = model([helper.make_node("MatMul", ["a", "b"], ["c"], name="mm")],
              [tensor("a", TensorProto.INT32, (2, 3)), tensor("b", TensorProto.INT32, (3, 4))],
              [tensor("c", TensorProto.INT32, (2, 4))])
    got = reasons(check(m))
    assert ("MatMul", "mm", "input 0 (a) is int32; TensorRT's MatMul takes float32, float16, bfloat16", "error") in got
    assert ("MatMul", "mm", "output 0 (c) is int32; TensorRT's MatMul takes float32, float16, bfloat16", "error") in got
    assert len(got) == 3


def test_dtype_found_by_shape_inference_and_uint8_inside_the_network():
    # the intermediate's type is not declared: shape inference finds uint8 between two nodes
    nodes = [helper.make_node("Cast", ["x"], ["u"], name="to_u8", to=TensorProto.UINT8),
             helper.make_node("Cast", ["u"], ["y"], name="back", to=F)]
    got = reasons(check(model(nodes, [tensor("x")], [tensor("y")])))
    assert ("Cast", "to_u8", "tensor u is uint8, which TensorRT only allows as a network input or output", "error") in got


def test_float64_is_a_warning_not_a_rejection():
    m = model([helper.make_node("Add", ["a", "a"], ["b"], name="add")],
              [tensor("a", TensorProto.DOUBLE, (4,))], [tensor("b", TensorProto.DOUBLE, (4,))])
    got = check(m)
    assert {f.severity for f in got} == {"warning"}
    assert got[0].reason == "tensor a is float64: TensorRT casts it to float32, clamping to +-FLT_MAX"


def test_attribute_and_output_restrictions():
    k = numpy_helper.from_array(np.array([4000], np.int64), "k")
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top", sorted=0),
             helper.make_node("MaxPool", ["img"], ["p", "pi"], name="pool", kernel_shape=[2, 2], dilations=[2, 2]),
             helper.make_node("Identity", ["pi"], ["pi_out"], name="use_indices"),
             helper.make_node("RandomNormal", [], ["r"], name="noise", shape=[2], seed=3.0)]
    m = model(nodes, [tensor("x", shape=(8000,)), tensor("img")],
              [tensor("v", shape=(4000,)), tensor("pi_out", TensorProto.INT64), tensor("r", shape=(2,))], [k])
    got = reasons(check(m))
    assert ("TopK", "top", "sorted must be 1, got 0", "error") in got
    assert ("TopK", "top", "K must be below 3840, got 4000", "error") in got
    assert ("MaxPool", "pool", "dilations must be empty or all ones, got [2, 2]", "error") in got
    assert ("MaxPool", "pool", "output 1 (Indices: pi) is used, but TensorRT does not produce it", "error") in got
    assert ("RandomNormal", "noise", "attribute seed is ignored by TensorRT", "warning") in got


def test_opset_outside_the_range():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [tensor("x")], [tensor("y")], opset=21)
    assert reasons(check(m))[0] == ("model", "", "opset 21 is outside TensorRT 10.1's range 9..20", "error")


def test_check_file_reads_graph_without_external_weights(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    m = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
               helper.make_node("Unique", ["y"], ["z"], name="u")], [tensor("x")], [tensor("z", shape=("n",))], [w])
    path = tmp_path / "m.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    assert [f.node for f in check_file(path)] == ["u"]


def test_matrix_can_be_loaded_from_a_file(tmp_path):
    data = json.loads((tensorrt_ops.resources.files("export") / "data" / tensorrt_ops.MATRIX_FILE).read_text())
    data["operators"]["Relu"]["supported"] = False
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(data))
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [tensor("x")], [tensor("y")])
    assert [f.node for f in check(m, load_matrix(str(path)))] == ["r"]


@pytest.mark.parametrize("kind", sorted(RULES))
def test_every_rule_kind_is_used_by_the_data(kind):
    used = {r["kind"] for e in load_matrix().operators.values() for r in e.get("restrictions", ())}
    assert kind in used
