"""The wheel installs one top-level name, ``cleanfeed``, and lives beside any other distribution:
one that brings its own ``stream`` (or ``bench``) module keeps it, and cleanfeed keeps working."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source")  # setuptools builds in the source folder: not in the checkout
    for name in ("setup.py", "pyproject.toml", "README.md", "cleanfeed", "stream", "engines", "export", "prompts", "bench"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("cleanfeed-*.whl")
    return path


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"cleanfeed"}
    for folder in ("stream", "engines", "export", "prompts", "bench"):
        assert f"cleanfeed/{folder}/__init__.py" in names
    assert {"cleanfeed/errors.py", "cleanfeed/py.typed", "cleanfeed/stream/cli/main.py",
            "cleanfeed/export/data/tensorrt_10.1_operators.json"} <= set(names)
    with zipfile.ZipFile(wheel) as archive:
        entry = next(n for n in names if n.endswith("entry_points.txt"))
        assert "cleanfeed = cleanfeed.stream.cli.main:main" in archive.read(entry).decode()


@pytest.mark.slow
def test_installed_beside_a_package_with_its_own_stream_module(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, system_site_packages=True, with_pip=False)  # the dependencies come from this machine
    python = env / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "stream").mkdir()
    (site / "stream" / "__init__.py").write_text("OWNER = 'another distribution'\n")
    # --ignore-installed: this machine's own (editable) cleanfeed, seen through the system site, would
    # otherwise satisfy the requirement and nothing would be installed
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed",
                                "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # away from this checkout
    away = {"cwd": tmp_path, "env": clean, "capture_output": True, "text": True, "timeout": 120}
    theirs = subprocess.run([python, "-c", "import stream; print(stream.OWNER)"], **away)
    assert theirs.stdout.strip() == "another distribution", theirs.stderr
    ours = subprocess.run([python, "-c", "import cleanfeed.stream.cli.main as m; print(m.__file__)"], **away)
    assert ours.returncode == 0 and str(site / "cleanfeed") in ours.stdout, ours.stderr
    inspect = subprocess.run([env / "bin" / "cleanfeed", "inspect", "filesrc"], **away)
    assert inspect.returncode == 0 and "location" in inspect.stdout, inspect.stderr
