"""What the supervisor (cleanfeed.stream.supervisor) asks of a crew, whatever its runners run in.

Restarts are part of the protocol rather than something the supervisor probes for: every
crew says how many deaths it may undo (``max_restarts``) and why a given one cannot be
undone, so the supervisor has one path for a runner that died, and a crew that cannot
restart (threads) simply answers no.
"""

from __future__ import annotations

from typing import Any, Protocol


class Crew(Protocol):
    """The runners of one run. ``names``: the elements, in chain order."""

    names: list[str]

    # -- a run's life -----------------------------------------------------------------------
    def start(self) -> None:
        """Starts every runner; sources wait for :meth:`release`."""

    def release(self) -> None:
        """Lets the source go once every runner said it is ready."""

    def poll(self, timeout: float) -> list[dict[str, Any]]:
        """The runners' reports that arrived, waiting at most ``timeout`` seconds for the first."""

    def exit_codes(self) -> dict[str, int]:
        """Runner name -> exit code, for the runners that ended (0 for a thread)."""

    def finished(self) -> bool:
        """True when no runner is left (nor on its way back)."""

    def signalled(self) -> str | None:
        """The signal a runner was sent directly, which counts as one sent to the run."""

    # -- ending it, gently then not -------------------------------------------------------
    def request_stop(self) -> None: ...

    def request_abort(self) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None:
        """Waits for the runners and frees everything the run held."""

    # -- restarts -----------------------------------------------------------------------------
    @property
    def max_restarts(self) -> int:
        """How many deaths a run may undo (0: the first death stops the run)."""

    def restartable(self, name: str) -> str | None:
        """Why the runner ``name``, which died, cannot come back (None: it can)."""

    def restart(self, name: str) -> None:
        """Starts bringing ``name`` back; :meth:`advance_restarts` finishes it."""

    def advance_restarts(self) -> list[tuple[str, str]]:
        """Moves restarts on; (runner, message) for each that failed."""
