"""cleanfeed: remove an object from video as it streams.

One installed package; the project's folders are its subpackages: ``cleanfeed.stream`` (the
runtime, its elements and the command line), ``cleanfeed.engines`` (the vision engines and the
runners that execute a model), ``cleanfeed.export`` (torch -> ONNX -> TensorRT),
``cleanfeed.prompts`` (what the user says to remove) and ``cleanfeed.bench``. The error family,
``cleanfeed.errors``, sits here at the root, below every layer.

An installed wheel holds the subpackages inside this folder. In a source checkout they are
folders beside it (the repository keeps the brief's layout), so the package also looks there;
an editable install maps them the same way.
"""

from __future__ import annotations

from pathlib import Path

_SOURCE_TREE = Path(__file__).resolve().parent.parent
if not (Path(__file__).parent / "stream").is_dir() and (_SOURCE_TREE / "stream" / "__init__.py").is_file():
    __path__.append(str(_SOURCE_TREE))  # noqa: F821 (a package's __path__ is set by the import system)
