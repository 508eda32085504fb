"""Shared fixtures; media helpers live in tests/media.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from leaks import end_leftovers, mark_session

SESSION_TOKEN = mark_session()  # before any test or fixture starts a process: every child inherits it


def fail_on_leftovers(token: str, root: int, grace_s: float = 3.0) -> None:
    """Kills the processes the session started that are still alive, and fails naming them."""
    left = end_leftovers(token, root, grace_s)
    if left:
        pytest.fail(f"{len(left)} process(es) the tests started outlived them (killed now): "
                    + "; ".join(map(str, left)), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_tests() -> Iterator[None]:
    """A test that starts a process ends it: one left running (a sender re-parented to init)
    holds ports, CPU and files after the run, so the run fails here instead."""
    yield
    fail_on_leftovers(SESSION_TOKEN, os.getpid())


@pytest.fixture(autouse=True)
def no_user_models(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test sees an empty models folder and engine cache: checkpoints the developer keeps in
    ~/.cache/cleanfeed must not change which engine a test runs."""
    root = tmp_path_factory.mktemp("cleanfeed-home")
    (root / "models").mkdir()
    monkeypatch.setenv("CLEANFEED_MODELS", str(root / "models"))
    monkeypatch.setenv("CLEANFEED_CACHE", str(root / "cache"))
    return root / "models"
