"""The vision engines: classical (OpenCV), SAM, DeAOT and E2FGVI-HQ in PyTorch with the official
checkpoint layouts, and the runners that execute a model on torch, onnxruntime or TensorRT.

The bottom layer above ``cleanfeed.errors``: nothing here imports the runtime (``cleanfeed.stream``),
the exporter or the prompts; the elements in the runtime wrap these engines (tests/test_layers.py)."""
