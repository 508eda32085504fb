"""Would TensorRT's ONNX parser take this graph? A static check against its published matrix.

TensorRT cannot be installed on the CI machines, so instead of parsing with TensorRT we check
each node against export/data/tensorrt_<version>_operators.json, made from onnx-tensorrt's
docs/operators.md (see export/data/README.md): the operator must be supported, its data types
listed, its attributes within the documented choices, and the inputs TensorRT needs at build
time must be initializers or Constant outputs rather than computed tensors. Each problem is a
:class:`Finding`; they are reported (manifest, CLI warning), not raised: the matrix is a
summary of the parser, and the engine build on a GPU machine has the last word.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

MATRIX_FILE = "tensorrt_10.1_operators.json"

ONNX_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
              9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
              15: "complex128", 16: "bfloat16", 17: "float8", 18: "float8", 19: "float8", 20: "float8",
              21: "uint4", 22: "int4", 23: "float4"}
"""ONNX TensorProto element types -> the names the matrix uses (every FP8 flavour is "float8")."""


@dataclass(frozen=True)
class Finding:
    """One reason TensorRT would reject (``error``) or alter (``warning``) a node."""

    op_type: str
    node: str
    reason: str
    severity: str = "error"

    def to_json(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.op_type} {self.node!r}: {self.reason}"


@dataclass(frozen=True)
class OperatorMatrix:
    """The TensorRT ONNX operator support matrix, as data."""

    tensorrt_version: str
    source: Mapping[str, str]
    opset_range: tuple[int, int]
    types: Mapping[str, Sequence[str]]
    operators: Mapping[str, Mapping[str, Any]]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OperatorMatrix:
        lo, hi = data["opset_range"]
        return cls(tensorrt_version=data["tensorrt_version"], source=dict(data["source"]), opset_range=(lo, hi),
                   types=dict(data["types"]), operators=dict(data["operators"]))

    def describe(self) -> dict[str, Any]:
        """Version and provenance, for the manifest."""
        return {"tensorrt_version": self.tensorrt_version, **self.source}


@cache
def load_matrix(path: str | None = None) -> OperatorMatrix:
    """The matrix shipped in export/data (or the JSON file at ``path``)."""
    if path is None:
        text = resources.files("export").joinpath("data", MATRIX_FILE).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return OperatorMatrix.from_json(json.loads(text))


def check_file(path: Path, matrix: OperatorMatrix | None = None) -> list[Finding]:
    """:func:`check` on an ONNX file; external weights are not loaded (only types and shapes are needed)."""
    import onnx

    return check(onnx.load(str(path), load_external_data=False), matrix)


def check(model: Any, matrix: OperatorMatrix | None = None) -> list[Finding]:
    """Every reason TensorRT's parser would reject a node of ``model`` (an onnx.ModelProto)."""
    import onnx

    matrix = matrix or load_matrix()
    findings: list[Finding] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    lo, hi = matrix.opset_range
    if opset is not None and not lo <= opset <= hi:
        findings.append(Finding("model", "", f"opset {opset} is outside TensorRT {matrix.tensorrt_version}'s "
                                             f"range {lo}..{hi}"))
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a help, not a requirement: check with what the model says
        inferred = model
    graph = _Graph(inferred.graph, opset or hi)
    graph.cast_down = tuple(matrix.types.get("cast_down", ()))
    for node, scope in graph.nodes():
        findings += _check_node(node, scope, graph, matrix)
    findings += _check_io_types(graph, matrix)
    return findings


class _Graph:
    """Types, shapes, constants and consumers of every tensor, across subgraphs."""

    def __init__(self, graph: Any, opset: int) -> None:
        self.opset = opset
        self.types: dict[str, int] = {}
        self.shapes: dict[str, tuple[int | str | None, ...]] = {}
        self.constants: dict[str, Any] = {}
        self.consumed: set[str] = set()
        self.io: set[str] = {v.name for v in (*graph.input, *graph.output)}
        self.outputs: set[str] = {v.name for v in graph.output}
        self.root = graph
        self.cast_down: tuple[str, ...] = ()
        self._index(graph)

    def _index(self, graph: Any) -> None:
        for tensor in graph.initializer:
            self.types[tensor.name] = tensor.data_type
            self.shapes[tensor.name] = tuple(tensor.dims)
            self.constants[tensor.name] = tensor
        for value in (*graph.input, *graph.output, *graph.value_info):
            ttype = value.type.tensor_type
            if value.type.HasField("tensor_type"):
                if ttype.elem_type:
                    self.types[value.name] = ttype.elem_type
                if ttype.HasField("shape"):
                    self.shapes[value.name] = tuple(
                        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in ttype.shape.dim)
        for node in graph.node:
            self.consumed.update(i for i in node.input if i)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for attr in node.attribute:
                    if attr.name == "value":
                        self.constants[node.output[0]] = attr.t
                    else:
                        self.constants[node.output[0]] = None
            for attr in node.attribute:
                for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    self._index(sub)

    def nodes(self, graph: Any = None, scope: str = "") -> Iterator[tuple[Any, str]]:
        for node in (graph or self.root).node:
            yield node, scope
            for attr in node.attribute:
                for sub in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                    yield from self.nodes(sub, f"{scope}{node.name or node.op_type}/{attr.name}/")

    def value(self, name: str) -> Any:
        """The numpy value of a constant, or None when unknown (computed, or weights not loaded)."""
        from onnx import numpy_helper
        from onnx.external_data_helper import uses_external_data

        tensor = self.constants.get(name)
        if tensor is None or (uses_external_data(tensor) and not tensor.raw_data):
            return None
        return numpy_helper.to_array(tensor)


def _check_node(node: Any, scope: str, graph: _Graph, matrix: OperatorMatrix) -> list[Finding]:
    name = scope + (node.name or f"<unnamed {node.op_type}>")
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return [Finding(op, name, f"custom-domain op ({node.domain}): TensorRT needs a plugin for it")]
    entry = matrix.operators.get(op)
    if entry is None:
        return [Finding(op, name, f"not in TensorRT {matrix.tensorrt_version}'s operator matrix")]
    if not entry["supported"]:
        return [Finding(op, name, f"not supported by TensorRT {matrix.tensorrt_version}'s ONNX parser")]
    findings = [Finding(op, name, reason) for reason in _type_problems(node, entry, graph)]
    for rule in entry.get("restrictions", ()):
        for reason in RULES[rule["kind"]](node, rule, graph):
            severity = "warning" if rule["kind"] == "attribute_ignored" else "error"
            findings.append(Finding(op, name, reason, severity))
    return findings


def _type_problems(node: Any, entry: Mapping[str, Any], graph: _Graph) -> list[str]:
    """Types of the tensors that carry the op's main type parameter, against the matrix's list."""
    allowed = set(entry.get("types", ()))
    # float64 is cast down network-wide (a warning from _check_io_types), not refused per op
    allowed |= set(graph.cast_down)
    problems = []
    for role, index, tensor in _typed_tensors(node, entry.get("types_apply_to"), graph.opset):
        type_code = graph.types.get(tensor)
        if type_code is None:
            continue
        dtype = ONNX_TYPES.get(type_code, f"type {type_code}")
        if dtype not in allowed:
            problems.append(f"{role} {index} ({tensor}) is {dtype}; TensorRT's {node.op_type} takes "
                            f"{', '.join(entry.get('types', ())) or 'no tensor types'}")
    return problems


def _typed_tensors(node: Any, applies_to: str | None, opset: int) -> Iterator[tuple[str, int, str]]:
    import onnx.defs

    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return
    formals_in, formals_out = list(schema.inputs), list(schema.outputs)
    if applies_to == "all":
        param = None
    elif applies_to:
        param = applies_to
    else:
        params = [f.type_str for f in (*formals_in, *formals_out)]
        param = "T" if "T" in params else (params[0] if params else None)
    for role, actuals, formals in (("input", node.input, formals_in), ("output", node.output, formals_out)):
        for i, tensor in enumerate(actuals):
            if not tensor or not formals:
                continue
            formal = formals[min(i, len(formals) - 1)]
            if param is None or formal.type_str == param:
                yield role, i, tensor


def _check_io_types(graph: _Graph, matrix: OperatorMatrix) -> list[Finding]:
    """Network-wide type rules: uint8 only at the network boundary, float64 cast down."""
    findings = []
    io_only = set(matrix.types.get("io_only", ()))
    cast_down = set(matrix.types.get("cast_down", ()))
    for node, scope in graph.nodes():
        name = scope + (node.name or f"<unnamed {node.op_type}>")
        for tensor in (*node.input, *node.output):
            dtype = ONNX_TYPES.get(graph.types.get(tensor, 0))
            if dtype in io_only and tensor not in graph.io:
                findings.append(Finding(node.op_type, name, f"tensor {tensor} is {dtype}, which TensorRT only "
                                                            "allows as a network input or output"))
            elif dtype in cast_down:
                findings.append(Finding(node.op_type, name, f"tensor {tensor} is {dtype}: TensorRT casts it to "
                                                            "float32, clamping to +-FLT_MAX", "warning"))
    return list(dict.fromkeys(findings))


# -- restriction kinds (the "kind" values in the JSON) ---------------------------------------------

def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            if isinstance(value, bytes):
                return value.decode()
            if isinstance(value, list):
                return [v.decode() if isinstance(v, bytes) else v for v in value]
            return value
    return default


def _has_attr(node: Any, name: str) -> bool:
    return any(a.name == name for a in node.attribute)


def _input(node: Any, index: int) -> str | None:
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _not_constant(node: Any, rule: Mapping[str, Any], graph: _Graph) -> str | None:
    tensor = _input(node, rule["input"])
    if tensor is not None and tensor not in graph.constants:
        return (f"input {rule['input']} ({rule['name']}: {tensor}) must be an initializer or Constant, "
                f"but is computed in the graph")
    return None


def _constant_value(node: Any, rule: Mapping[str, Any], graph: _Graph) -> Any:
    """The value of the input ``rule`` names when the graph holds it as a constant, else None."""
    tensor = _input(node, rule["input"])
    return graph.value(tensor) if tensor else None


def _constant_input(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    problem = _not_constant(node, rule, graph)
    return [problem] if problem else []


def _constant_input_zero(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    problem = _not_constant(node, rule, graph)
    if problem:
        return [problem]
    value = _constant_value(node, rule, graph)
    if value is not None and value.any():
        return [f"{rule['name']} must be all zeros (symmetric quantization), got non-zero values"]
    return []


def _constant_input_equals(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    problem = _not_constant(node, rule, graph)
    if problem:
        return [problem]
    value = _constant_value(node, rule, graph)
    if value is not None and bool(value.reshape(-1)[0]) != rule["value"]:
        return [f"{rule['name']} must be {rule['value']}, got {value.reshape(-1)[0]}"]
    return []


def _constant_input_below(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    value = _constant_value(node, rule, graph)
    if value is not None and value.size and int(value.reshape(-1)[0]) >= rule["below"]:
        return [f"{rule['name']} must be below {rule['below']}, got {int(value.reshape(-1)[0])}"]
    return []


def _attribute_in(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    when = rule.get("when")
    if when and _attr(node, when["attribute"], when.get("default")) != when["equals"]:
        return []
    value = _attr(node, rule["attribute"], rule.get("default"))
    if value not in rule["allowed"]:
        return [f"{rule['attribute']}={value!r} is not supported; TensorRT takes {', '.join(rule['allowed'])}"]
    return []


def _attribute_equals(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    value = _attr(node, rule["attribute"], rule.get("default"))
    if value != rule["value"]:
        return [f"{rule['attribute']} must be {rule['value']!r}, got {value!r}"]
    return []


def _attribute_all_ones(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    value = _attr(node, rule["attribute"])
    if value and any(v != 1 for v in value):
        return [f"{rule['attribute']} must be empty or all ones, got {list(value)}"]
    return []


def _attribute_absent(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    present = [a for a in rule["attributes"] if _has_attr(node, a)]
    return [f"attribute {a} is not supported" for a in present]


def _attribute_ignored(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    if _has_attr(node, rule["attribute"]):
        return [f"attribute {rule['attribute']} is ignored by TensorRT"]
    return []


def _input_rank_in(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    tensor = _input(node, rule["input"])
    shape = graph.shapes.get(tensor) if tensor else None
    if shape is not None and len(shape) not in rule["ranks"]:
        return [f"input {rule['input']} ({tensor}) must have rank {' or '.join(map(str, rule['ranks']))}, "
                f"got {len(shape)}"]
    return []


def _output_unused(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    index = rule["output"]
    tensor = node.output[index] if len(node.output) > index else ""
    if tensor and (tensor in graph.consumed or tensor in graph.outputs):
        return [f"output {index} ({rule['name']}: {tensor}) is used, but TensorRT does not produce it"]
    return []


def _static_input_shape(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    tensor = _input(node, rule["input"])
    shape = graph.shapes.get(tensor) if tensor else None
    if shape is None or any(not isinstance(d, int) or d <= 0 for d in shape):
        return [f"input {rule['input']} ({tensor}) must have a static shape, got {shape}"]
    return []


def _static_axis_dim(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    tensor = _input(node, rule["input"])
    shape = graph.shapes.get(tensor) if tensor else None
    if shape is None:
        return []
    axis = _attr(node, rule["attribute"], rule.get("default"))
    dim = shape[axis]
    if not isinstance(dim, int) or dim <= 0:
        return [f"axis {axis} of {tensor} must have a static size, got {dim!r}"]
    return []


def _symmetric_pads(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    pads = _attr(node, rule["attribute"])
    if pads and list(pads[: len(pads) // 2]) != list(pads[len(pads) // 2:]):
        return [f"{rule['attribute']} must pad each axis equally at both ends, got {list(pads)}"]
    return []


def _bidirectional_same_activations(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    acts = _attr(node, "activations")
    if _attr(node, "direction", "forward") == "bidirectional" and acts:
        half = len(acts) // 2
        if acts[:half] != acts[half:]:
            return [f"a bidirectional layer must use the same activations both ways, got {acts}"]
    return []


def _resize_axes_iota(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    axes = _attr(node, "axes")
    tensor = _input(node, 0)
    shape = graph.shapes.get(tensor) if tensor else None
    if _input(node, 2) and axes is not None and shape is not None and list(axes) != list(range(len(shape))):
        return [f"with a scales input, axes must list every axis in order (0..{len(shape) - 1}), got {list(axes)}"]
    return []


def _unchecked(node: Any, rule: Mapping[str, Any], graph: _Graph) -> list[str]:
    return []


RULES = {
    "constant_input": _constant_input,
    "constant_input_zero": _constant_input_zero,
    "constant_input_equals": _constant_input_equals,
    "constant_input_below": _constant_input_below,
    "attribute_in": _attribute_in,
    "attribute_equals": _attribute_equals,
    "attribute_all_ones": _attribute_all_ones,
    "attribute_absent": _attribute_absent,
    "attribute_ignored": _attribute_ignored,
    "input_rank_in": _input_rank_in,
    "output_unused": _output_unused,
    "static_input_shape": _static_input_shape,
    "static_axis_dim": _static_axis_dim,
    "symmetric_pads": _symmetric_pads,
    "bidirectional_same_activations": _bidirectional_same_activations,
    "resize_axes_iota": _resize_axes_iota,
    "unchecked": _unchecked,
}
"""How each restriction kind of the JSON is checked; every kind used in the data must be here."""
