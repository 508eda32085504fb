"""Shared fixtures; media helpers live in tests/media.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_user_models(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test sees an empty models folder and engine cache: checkpoints the developer keeps in
    ~/.cache/cleanfeed must not change which engine a test runs."""
    root = tmp_path_factory.mktemp("cleanfeed-home")
    (root / "models").mkdir()
    monkeypatch.setenv("CLEANFEED_MODELS", str(root / "models"))
    monkeypatch.setenv("CLEANFEED_CACHE", str(root / "cache"))
    return root / "models"
