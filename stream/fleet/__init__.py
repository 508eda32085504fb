"""Many feeds at once: a fleet file (spec), its feeds placed and supervised by Ray (ray_side), and
one table, stats file and Prometheus endpoint for all of them (report).

Ray only places and supervises: each feed is a `cleanfeed run` process on the node Ray chose,
reading and writing its own input and output, so no frame goes through Ray's object store. A
feed split across nodes (split) is two pipelines joined by a zmqsink/zmqsrc link whose endpoint
and CurveZMQ keys the fleet assigns.
"""
