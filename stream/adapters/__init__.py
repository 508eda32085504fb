"""The model adapters: SAM, DeAOT and E2FGVI as the `segment`, `track` and `inpaint` elements run them.

They are not elements (cleanfeed.stream.registry imports every module of stream/elements to find
elements, and none of these register one); they keep torch, onnxruntime and the exporter out of
an element's process until its model is actually chosen, and they share one shape
(stream/adapters/base.py) so the three families are chosen, configured, exported and closed alike.
"""
