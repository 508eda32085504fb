"""torch -> ONNX (-> TensorRT) for every model, verified against torch and recorded in a manifest.

A model family contributes one spec module (``sam``: its graphs, random inputs, parity figures
and limits, see ``spec``); the rest is shared: ``onnx_export`` (+ ``half`` for fp16) writes the
graphs, ``parity`` compares them with the torch module through cleanfeed.engines.runners,
``tensorrt_ops`` checks them against TensorRT's published operator matrix (``data/``),
``manifest`` records it all, and ``model_export`` drives it (``export_model``, ``find_export``,
``ensure_export``). Nothing is imported here, so ``import export`` does not pull in torch.
"""
