"""Finds the processes a test session started that outlived it (tests/conftest.py fails the run on them).

Every process the tests start inherits :data:`MARKER` (set in the session's environment before
the first test), so one re-parented to init when its starter died is still found by its
``/proc/PID/environ``; other users' test runs on the same machine carry another token or none.
Processes forked without an exec carry their starter's original environment instead, so the
living descendants of the session's own process count too. Only the session's own helpers
(multiprocessing's fork server and resource tracker, children of the session process that leave
with it) are spared.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

MARKER = "CLEANFEED_TEST_SESSION"
HELPERS = ("from multiprocessing.forkserver import main", "from multiprocessing.resource_tracker import main")


@dataclass(frozen=True)
class Proc:
    pid: int
    parent: int
    name: str
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} {self.name} ({' '.join(self.command.split())[:120]})"


def mark_session() -> str:
    """The session's token, set in the environment every child inherits (kept if already set)."""
    return os.environ.setdefault(MARKER, uuid.uuid4().hex)


def _read(pid: int) -> tuple[Proc, bool] | None:
    """The process and whether it is alive (not a zombie); None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    head, _, rest = stat.rpartition(")")
    fields = rest.split()
    return Proc(pid, int(fields[1]), head.partition("(")[2], command), fields[0] not in ("Z", "X")


def _carries(pid: int, token: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # another user's process, or gone
        return False
    return f"{MARKER}={token}".encode() in environ.split(b"\0")


def leftovers(token: str, root: int) -> list[Proc]:
    """Living processes carrying ``token`` or descending from ``root``, but not ``root`` and its helpers."""
    procs: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            read = _read(int(entry))
            if read is not None and read[1]:
                procs[read[0].pid] = read[0]

    def descends(pid: int) -> bool:
        seen = set()
        while pid in procs and pid not in seen:
            seen.add(pid)
            pid = procs[pid].parent
            if pid == root:
                return True
        return False

    out = []
    for proc in procs.values():
        if proc.pid == root or proc.pid == os.getpid():
            continue
        if proc.parent == root and any(h in proc.command for h in HELPERS):
            continue
        if descends(proc.pid) or _carries(proc.pid, token):
            out.append(proc)
    return sorted(out, key=lambda p: p.pid)


def end_leftovers(token: str, root: int, grace_s: float = 3.0) -> list[Proc]:
    """Gives leftovers ``grace_s`` to finish ending (a test's kill may still be landing), then
    kills the rest (SIGCONT too, for a frozen one); returns those that had to be killed."""
    deadline = time.monotonic() + grace_s
    found = leftovers(token, root)
    while found and time.monotonic() < deadline:
        time.sleep(0.1)
        found = leftovers(token, root)
    for proc in found:
        for sig in (signal.SIGKILL, signal.SIGCONT):
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
    return found
