"""Crews: the runners of one run and what they run in, side by side.

- cleanfeed.stream.crews.protocol: :class:`Crew`, what the supervisor may ask of any crew,
  restarts included.
- cleanfeed.stream.crews.threads: every runner in a thread of the caller's process, linked by
  bounded queues (for a debugger; nothing can be restarted).
- cleanfeed.stream.crews.processes: one process per element, ZeroMQ links, shared-memory
  slots, and restarts of a filter whose process died.
- cleanfeed.stream.crews.child: what runs inside each of those processes, and the spec it is
  started from.
"""
