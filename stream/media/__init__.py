"""Media in and out through PyAV: opening inputs, decoding into Pictures, encoding, muxing.

The elements ``filesrc``/``urisrc`` (stream/elements/filesrc.py), ``filesink`` and
``stdoutsink`` are thin wrappers around :class:`~cleanfeed.stream.media.reader.MediaReader` and
:class:`~cleanfeed.stream.media.writer.MediaWriter`.
"""
