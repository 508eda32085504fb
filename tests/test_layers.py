"""The layers import only downward, lazy imports inside functions included.

    apps (the CLI, the web app) and bench  ->  anything
    stream (the runtime)                   ->  engines, prompts, export, errors
    export                                 ->  engines, errors
    prompts (what to remove)               ->  engines, errors
    engines                                ->  errors
    errors                                 ->  nothing of cleanfeed

Read from the source with ``ast``, so a module is judged by what it could import, not by what one
run happened to import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APPS = ("cleanfeed.stream.cli", "cleanfeed.stream.gui", "cleanfeed.bench")
ALLOWED = {
    "app": {"app", "stream", "export", "prompts", "engines", "errors"},
    "stream": {"stream", "export", "prompts", "engines", "errors"},
    "export": {"export", "engines", "errors"},
    "prompts": {"prompts", "engines", "errors"},
    "engines": {"engines", "errors"},
    "errors": {"errors"},
}


def layer(module: str) -> str:
    if module.startswith(APPS):
        return "app"
    parts = module.split(".")
    if parts[0] != "cleanfeed" or len(parts) == 1:
        return "errors"  # the package root
    return parts[1] if parts[1] in ALLOWED else "errors"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts if parts[0] == "cleanfeed" else ["cleanfeed", *parts])


def imports(path: Path, module: str) -> set[str]:
    """Every cleanfeed module ``path`` imports, wherever in the file the import statement is."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {name for name in found if name.split(".")[0] in ("cleanfeed", "stream", "engines", "export", "prompts", "bench")}


def sources() -> list[Path]:
    folders = ("cleanfeed", "stream", "engines", "export", "prompts", "bench")
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_every_import_points_down_a_layer() -> None:
    wrong = []
    for path in sources():
        module = module_name(path)
        said: set[str] = set()
        for target in sorted(imports(path, module)):
            if target.rpartition(".")[0] in said:
                continue  # ``from a.b import C``: a.b is reported already, a.b.C would say it again
            if not target.startswith("cleanfeed"):
                wrong.append(f"{path.relative_to(ROOT)}: {module} imports {target}: use cleanfeed.{target}")
            elif layer(target) not in ALLOWED[layer(module)]:
                wrong.append(f"{path.relative_to(ROOT)}: {module} ({layer(module)}) imports {target} ({layer(target)})")
            else:
                continue
            said.add(target)
    assert not wrong, f"{len(wrong)} import(s) point up a layer:\n" + "\n".join(wrong)


@pytest.mark.parametrize(("module", "target", "allowed"), [
    ("cleanfeed.engines.sam.predictor", "cleanfeed.stream.buffers", False),
    ("cleanfeed.export.sam", "cleanfeed.engines.sam.variants", True),
    ("cleanfeed.stream.pipeline", "cleanfeed.stream.cli.execute", False),
    ("cleanfeed.stream.cli.run", "cleanfeed.stream.pipeline", True),
    ("cleanfeed.prompts.shapes", "cleanfeed.stream.buffers", False),
    ("cleanfeed.errors", "cleanfeed.engines.models", False),
])
def test_the_rule_itself(module: str, target: str, allowed: bool) -> None:
    assert (layer(target) in ALLOWED[layer(module)]) is allowed


def test_lazy_imports_count(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from cleanfeed.stream import runner\n    import cleanfeed.bench.spine\n")
    assert {"cleanfeed.stream.runner", "cleanfeed.bench.spine"} <= imports(path, "cleanfeed.engines.m")
