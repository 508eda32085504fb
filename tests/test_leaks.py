"""The session's check for processes that outlive the tests (tests/leaks.py): it finds them and fails."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from conftest import fail_on_leftovers
from leaks import MARKER, leftovers

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _start(env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(SLEEPER, env=env)
    return proc


def test_a_marked_process_is_found_killed_and_fails_the_check() -> None:
    token = uuid.uuid4().hex
    proc = _start({**os.environ, MARKER: token})
    try:
        assert [p.pid for p in leftovers(token, root=-1)] == [proc.pid]
        with pytest.raises(pytest.fail.Exception, match=rf"1 process\(es\) the tests started outlived them .*pid {proc.pid}"):
            fail_on_leftovers(token, root=-1, grace_s=0.2)
        assert proc.wait(timeout=10) == -9
        assert leftovers(token, root=-1) == []
        fail_on_leftovers(token, root=-1, grace_s=0.2)  # nothing left: passes
    finally:
        proc.kill()
        proc.wait()


def test_an_unmarked_process_of_another_session_is_left_alone() -> None:
    """Other engineers' test runs carry another token (or none) and are not this session's descendants."""
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    other = _start({**env, MARKER: uuid.uuid4().hex})
    bare = _start(env)
    try:
        token = uuid.uuid4().hex
        assert leftovers(token, root=-1) == []
        found = [p.pid for p in leftovers(token, root=os.getpid())]  # as descendants of this process they count
        assert other.pid in found and bare.pid in found
    finally:
        for proc in (other, bare):
            proc.kill()
            proc.wait()
