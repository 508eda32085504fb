"""What a model benchmark records about the machine it ran on, and the comma lists its command lines take.

Numbers are only comparable between runs on the same kind of machine, so every result file
carries the CPU, the GPU with its compute capability, the libraries and the load at the start.
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any


def cpu_machine(load_before: list[float]) -> dict[str, Any]:
    """What a CPU-only media bench records (no torch to import): cores, python, PyAV, and the load
    average before the run and now, which say how busy the machine was."""
    import av

    return {"cores": len(os.sched_getaffinity(0)), "python": platform.python_version(), "av": av.__version__,
            "load_average_before": load_before, "load_average_after": list(os.getloadavg())}


def machine(libraries: tuple[str, ...] = ()) -> dict[str, Any]:
    """CPU, cores, system, python, torch (threads, CUDA GPU, TF32 flags) and the versions of ``libraries`` (None when absent)."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "system": f"{platform.system()} {platform.machine()}", "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    tf32={"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32})
    for name in libraries:
        try:
            module = __import__(name)
        except ImportError:
            info[name] = None
            continue
        info[name] = module.__version__
        if name == "onnxruntime":
            info["onnxruntime_providers"] = module.get_available_providers()
    return info


def csv(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    """A comma list of tokens from ``allowed`` (argparse type); anything else is a usage error naming them."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{what} must be a comma list of {', '.join(allowed)}, got {text!r}")
    return items
