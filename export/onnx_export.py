"""torch -> ONNX for one graph: the exporter, the opset, dynamic axes, external data, fp16.

Exporter: torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, torch.export +
onnxscript), not the TorchScript one. Measured on SAM's prompt decoder with a dynamic number of
points: the TorchScript exporter writes 1,115 nodes, most of them Shape -> Gather -> Unsqueeze ->
Concat chains that recompute shapes at run time (plus OneHot/Tile/ConstantOfShape), which
TensorRT has to evaluate as shape tensors and which block layer fusion; the dynamo exporter
writes 325 nodes with symbolic shapes resolved at export, constants folded and LayerNorm kept as
one ``LayerNormalization`` node, which TensorRT 10 imports natively. The TorchScript exporter is
deprecated (torch 2.13 warns it "will be removed"; dynamo is the default since 2.9). Both agree
with torch to ~4e-7 on that graph.

Opset: 18 by default, 18..20 allowed. TensorRT 10.1's parser accepts opsets 9 to 20 (export/data);
the dynamo exporter's op library is written for opset 18 and converts up from there (at 20 GELU
becomes one ``Gelu`` node, also in TensorRT's matrix). It does not convert down: asked for 17, it
silently wrote opset 18 (torch 2.13, onnxscript 0.7.2), so 17 is refused, and every written file's
opset is checked against the one asked for.

fp16: the graph is exported in fp32 and converted afterwards (export/half.py), because exporting
a ``.half()`` module fails inside SAM (fp32 buffers meet fp16 activations during tracing) and
would need every model to be written half-safe; converting the ONNX graph keeps the float32
boundary, and lets a spec keep numerically fragile ops in fp32.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanfeed.errors import ExportError
from cleanfeed.export.spec import GraphSpec

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import torch

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
OPSETS = (18, 19, 20)
PRECISIONS = ("fp32", "fp16")
QUIET_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")
EXTERNAL_DATA_THRESHOLD = 2**31 - 1
"""Protobuf cannot serialise a message of 2 GiB or more: bigger models keep their weights in
``<name>.onnx.data`` beside the graph (ONNX external data)."""


def check_opset(opset: int) -> int:
    if opset not in OPSETS:
        raise ExportError(f"opset must be one of {', '.join(map(str, OPSETS))} "
                          f"(TensorRT 10.1 parses 9..20; the dynamo exporter writes 18+), got {opset}")
    return opset


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def export_graph(graph: GraphSpec, path: Path, example: Mapping[str, torch.Tensor], *,
                 opset: int = DEFAULT_OPSET, precision: str = "fp32") -> Path:
    """Writes ``graph`` as ONNX at ``path`` (plus ``path.data`` when over 2 GiB) and checks it.

    ``example`` holds one set of inputs used to trace the graph; the named axes of the graph's
    TensorSpecs stay dynamic, bounded by its profiles. Returns ``path``.
    """
    check_opset(opset)
    check_precision(precision)
    path = Path(path)
    remove_onnx(path)
    program = _trace(graph, example, opset)
    if precision == "fp32":
        program.save(str(path), external_data=_initializer_bytes(program) > EXTERNAL_DATA_THRESHOLD)
    else:
        from cleanfeed.export.half import to_fp16

        model = to_fp16(program.model_proto, keep_fp32=graph.keep_fp32, inplace=True)
        save_onnx(model, path)
    check_onnx(path, opset)
    return path


def _trace(graph: GraphSpec, example: Mapping[str, torch.Tensor], opset: int) -> Any:
    import torch

    missing = [spec.name for spec in graph.inputs if spec.name not in example]
    if missing:
        raise ExportError(f"{graph.name}: sample inputs must include every graph input, missing {', '.join(missing)}")
    args = tuple(example[spec.name] for spec in graph.inputs)
    dims = _dims(graph)
    dynamic_shapes = _by_parameter(graph.module, tuple(
        {i: dims[d] for i, d in enumerate(spec.shape) if isinstance(d, str)} or None for spec in graph.inputs))
    module = graph.module.eval()
    chatter = io.StringIO()
    try:
        with _quiet_exporter(), torch.no_grad(), contextlib.redirect_stdout(chatter):
            program = torch.onnx.export(
                module, args, input_names=[s.name for s in graph.inputs], output_names=[s.name for s in graph.outputs],
                opset_version=opset, dynamo=True, dynamic_shapes=dynamic_shapes if dims else None,
                optimize=True, verbose=False)
    except Exception as err:  # the exporter raises many types; the user gets one line
        log.debug("exporter output for %s:\n%s", graph.name, chatter.getvalue())
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ExportError(f"exporting {graph.name} to ONNX failed: {type(err).__name__}: {first}") from err
    if program is None:
        raise ExportError(f"exporting {graph.name} to ONNX returned no program")
    return program


def _by_parameter(module: Any, shapes: tuple[Any, ...]) -> tuple[Any, ...]:
    """torch.export matches dynamic shapes to ``forward``'s parameters: the inputs a ``*args``
    parameter takes (DeAOT's graphs take their memories so) are grouped into one tuple for it."""
    import inspect

    params = list(inspect.signature(module.forward).parameters.values())
    star = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    if star is None:
        return shapes
    rest = tuple(shapes[star:])
    return (*shapes[:star], rest) if rest else shapes[:star]  # torch.export drops an empty *args


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter narrates every pass (stdout, INFO logs of torch.onnx, onnxscript, onnx_ir) and
    warns about optional ops (torchvision missing): noise on a normal run, kept at --log-level debug."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _dims(graph: GraphSpec) -> dict[str, Any]:
    from torch.export import Dim

    bounds = graph.axis_bounds()
    names = {d for spec in graph.inputs for d in spec.shape if isinstance(d, str)}
    dims = {}
    for name in sorted(names):
        lo, hi = bounds.get(name, (1, None))
        step = graph.axis_multiples.get(name, 1)
        if step > 1:  # step x a dynamic count (a derived Dim): the trace may divide the axis by step
            lo, hi = -(-lo // step), (hi // step if hi is not None else None)
            name_steps = f"{name}_steps"
            base = Dim(name_steps, min=lo, max=hi) if hi is not None else Dim(name_steps, min=lo)
            dims[name] = base * step
        else:
            dims[name] = Dim(name, min=lo, max=hi) if hi is not None else Dim(name, min=lo)
    return dims


def _initializer_bytes(program: Any) -> int:
    total = 0
    for value in program.model.graph.initializers.values():
        const = value.const_value
        if const is not None:
            total += const.nbytes
    return total


def save_onnx(model: onnx.ModelProto, path: Path) -> None:
    """Saves ``model``; weights go to ``<path>.data`` when the model is over 2 GiB."""
    import onnx

    size = sum(len(t.raw_data) for t in model.graph.initializer)
    if size > EXTERNAL_DATA_THRESHOLD:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


def check_onnx(path: Path, opset: int | None = None) -> None:
    """onnx.checker on the file (by path, so external data and > 2 GiB models work), and its opset."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as err:
        first = str(err).strip().splitlines()[0]
        raise ExportError(f"{path.name} fails the ONNX checker: {first}") from err
    if opset is not None:
        model = onnx.load(str(path), load_external_data=False)
        written = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        if written != opset:
            raise ExportError(f"{path.name} must have opset {opset} as asked, got opset {written} from the exporter")


def external_data_files(path: Path) -> list[Path]:
    """The external-data files ``path`` refers to (none for a self-contained model)."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    files: list[Path] = []
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            file = path.parent / ExternalDataInfo(tensor).location
            if file not in files:
                files.append(file)
    return files


def remove_onnx(path: Path) -> None:
    """Removes a previous export at ``path`` and its external data, so no stale file is mixed in."""
    if path.exists():
        with contextlib.suppress(Exception):
            for file in external_data_files(path):
                file.unlink(missing_ok=True)
        path.unlink()
    Path(str(path) + ".data").unlink(missing_ok=True)


def sample_inputs(graph: GraphSpec, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """``graph.sample(rng)`` checked against the graph's TensorSpecs (names, ranks, fixed axes)."""
    sample = graph.sample(rng)
    for spec in graph.inputs:
        if spec.name not in sample:
            raise ExportError(f"{graph.name}: sample must give input {spec.name!r}, got {sorted(sample)}")
        shape = tuple(sample[spec.name].shape)
        ok = len(shape) == len(spec.shape) and all(isinstance(d, str) or d == s for d, s in zip(spec.shape, shape, strict=True))
        if not ok:
            raise ExportError(f"{graph.name}: sample input {spec.name} must have shape {spec.shape}, got {shape}")
    return sample
