"""fp32 ONNX graph -> fp16 graph with a float32 boundary.

Why convert the graph instead of exporting a ``.half()`` module: see export/onnx_export.py. The
conversion is careful in three ways:

- inputs and outputs stay float32 (the runner contract): a Cast follows each float input and
  precedes each float output, so callers never see fp16;
- some ops stay float32, with Casts around them: those whose ONNX signature fixes a float32
  input (Resize's ``scales``), those a spec lists (``GraphSpec.keep_fp32``), and ``KEEP_FP32``
  below — trigonometry on large phases loses whole radians in fp16;
- weights that do not fit fp16 (|w| > 65504) are clamped and logged, tiny ones flush to zero
  as fp16 does anyway.

Control flow (If/Loop/Scan subgraphs) is refused rather than half-converted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from cleanfeed.errors import ExportError

log = logging.getLogger(__name__)

KEEP_FP32 = ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Exp", "Pow", "ReduceSumSquare", "ReduceL2",
             "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Range")
FP16_MAX = 65504.0


def to_fp16(model, keep_fp32: Iterable[str] = (), *, inplace: bool = False):  # onnx.ModelProto -> onnx.ModelProto
    """``model`` with its float32 tensors made float16 inside the graph: a converted copy, or
    ``model`` itself with ``inplace`` (for multi-GB models, where a copy doubles the memory)."""
    import onnx
    from onnx import TensorProto, helper

    if not inplace:
        model = _copy(model)
    graph = model.graph
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ExportError(f"fp16 conversion does not handle control flow: {node.op_type} node {node.name!r} "
                              "has a subgraph; export this model in fp32")
    keep = set(KEEP_FP32) | set(keep_fp32)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
    types = _tensor_types(model)
    FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16

    inits = {t.name: t for t in graph.initializer}
    graph_inputs = {v.name for v in graph.input}
    blocked = [node.op_type in keep for node in graph.node]

    # What type each float tensor has after conversion: produced by a kept node -> float32,
    # a graph input -> float32 (the boundary), otherwise float16.
    new_type: dict[str, int] = {}
    for node, is_kept in zip(graph.node, blocked, strict=True):
        fixed_out = _fixed_float_formals(node, opset, outputs=True)
        for i, out in enumerate(node.output):
            if out and types.get(out) == FLOAT:
                new_type[out] = FLOAT if is_kept or i in fixed_out else HALF
    for name in graph_inputs:
        if types.get(name) == FLOAT:
            new_type[name] = FLOAT

    # What each consumer wants. An initializer becomes fp16 when any consumer wants fp16 (half the
    # file size); a float32 consumer of it then reads it through a Cast, which backends fold.
    wants: list[list[int | None]] = []
    for node, is_kept in zip(graph.node, blocked, strict=True):
        fixed = _fixed_float_formals(node, opset)
        row: list[int | None] = []
        for i, name in enumerate(node.input):
            if not name or types.get(name) != FLOAT:
                row.append(None)
            elif is_kept or i in fixed:
                row.append(FLOAT)
            else:
                row.append(HALF)
        wants.append(row)
    init_votes: dict[str, set[int]] = {}
    for node, row in zip(graph.node, wants, strict=True):
        for name, want in zip(node.input, row, strict=True):
            if name in inits and want is not None:
                init_votes.setdefault(name, set()).add(want)
    clamped = 0
    for name, votes in init_votes.items():
        if HALF in votes and inits[name].data_type == FLOAT:
            clamped += _initializer_to_half(inits[name])
            new_type[name] = HALF
        else:
            new_type[name] = FLOAT
    if clamped:
        log.warning("fp16 conversion clamped %d weights beyond +-%g", clamped, FP16_MAX)

    # Rewrite: casts where a consumer wants another type than its input has; attribute fixes.
    new_nodes = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            out = f"{name}__to_{'fp16' if to == HALF else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [name], [out], name=f"{out}_cast", to=to))
            casts[key] = out
        return casts[key]

    for node, row, is_kept in zip(graph.node, wants, blocked, strict=True):
        for i, (name, want) in enumerate(zip(node.input, row, strict=True)):
            if want is not None and new_type.get(name, FLOAT) != want:
                node.input[i] = cast(name, want)
        if not is_kept:
            _retype_attributes(node)
        new_nodes.append(node)

    # The boundary: float outputs go back to float32 under their public names.
    for out in graph.output:
        name = out.name
        if new_type.get(name) == HALF:
            inner = f"{name}__fp16"
            for node in new_nodes:
                node.output[:] = [inner if o == name else o for o in node.output]
                node.input[:] = [inner if i == name else i for i in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [name], name=f"{name}_to_fp32", to=FLOAT))
            new_type[inner] = HALF
            new_type[name] = FLOAT
    del graph.node[:]
    graph.node.extend(new_nodes)

    for info in graph.value_info:
        if info.name in new_type and info.type.tensor_type.elem_type in (FLOAT, HALF):
            info.type.tensor_type.elem_type = new_type[info.name]
    return model


def _copy(model):
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _tensor_types(model) -> dict[str, int]:
    """Element type of every tensor, from the exporter's value_info, else from shape inference."""
    import onnx

    def collect(m) -> dict[str, int]:
        g = m.graph
        found = {t.name: t.data_type for t in g.initializer}
        for v in (*g.input, *g.output, *g.value_info):
            if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
                found[v.name] = v.type.tensor_type.elem_type
        return found

    types = collect(model)
    produced = {o for n in model.graph.node for o in n.output if o}
    if produced - set(types):
        types = collect(onnx.shape_inference.infer_shapes(model)) | types
    missing = produced - set(types)
    if missing:
        raise ExportError(f"fp16 conversion needs the type of every tensor; unknown: {', '.join(sorted(missing)[:5])}")
    return types


def _fixed_float_formals(node, opset: int, outputs: bool = False) -> set[int]:
    """Input (or output) positions whose ONNX signature is literally tensor(float), not a type variable."""
    import onnx.defs

    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain or "")
    except onnx.defs.SchemaError:
        return set()
    fixed = set()
    for i, formal in enumerate(schema.outputs if outputs else schema.inputs):
        if formal.type_str == "tensor(float)":
            fixed.add(i)
    return fixed


def _initializer_to_half(tensor) -> int:
    from onnx import numpy_helper

    values = numpy_helper.to_array(tensor).astype(np.float32)
    over = int(np.count_nonzero(np.abs(values) > FP16_MAX))
    half = np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)
    new = numpy_helper.from_array(half, tensor.name)
    tensor.CopyFrom(new)
    return over


def _retype_attributes(node) -> None:
    """Attributes that name or hold a float32 type: Cast(to=FLOAT), Constant, ConstantOfShape, EyeLike."""
    from onnx import TensorProto, helper, numpy_helper

    if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
        # no value: ONNX's default, a float32 zero, which must become a float16 one like the rest
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float16))))
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
            attr.i = TensorProto.FLOAT16
        elif node.op_type == "EyeLike" and attr.name == "dtype" and attr.i == TensorProto.FLOAT:
            attr.i = TensorProto.FLOAT16
        elif node.op_type in ("Constant", "ConstantOfShape") and attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
            values = np.clip(numpy_helper.to_array(attr.t), -FP16_MAX, FP16_MAX).astype(np.float16)
            attr.t.CopyFrom(numpy_helper.from_array(values, attr.t.name))
        elif node.op_type == "Constant" and attr.name in ("value_float", "value_floats"):
            raise ExportError(f"fp16 conversion does not handle Constant {attr.name} (node {node.name!r})")
