"""torch -> ONNX -> TensorRT export and parity checks (arrives with the SAM issue)."""
