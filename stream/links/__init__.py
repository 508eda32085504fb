"""The ends of a link, one module per kind of link.

Every end has the same two verbs so the runner does not care which it has:
``Inlet.get(timeout) -> item | None`` (None when nothing came in time: the runner checks
the abort flag between waits) and ``Outlet.put(item)``, which gives up with
``Aborted`` when the run is aborted, so a runner blocked on a full link still ends
(cleanfeed.stream.ports describes both).

- cleanfeed.stream.links.queues: bounded queues between the threads of one process.
- cleanfeed.stream.links.sockets: ZeroMQ sockets between the processes of one run, with the
  credits that return shared-memory slots and the replay a restarted stage needs.
- cleanfeed.stream.links.net: links across hosts (zmqsink/zmqsrc): endpoint checks,
  CurveZMQ, heartbeats and the watch that fails an element whose peer is gone.
"""
