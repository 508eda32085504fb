"""cleanfeed: remove an object from video as it streams.

Dependencies are pinned to what the project is tested with; torch is pinned exactly
(2.13.0) because an unpinned torch pulls several GB of CUDA packages on CPU machines.
"""

from setuptools import find_packages, setup

TORCH = ["torch==2.13.0", "segment-anything==1.0", "pillow>=10"]
ONNX = ["onnx>=1.16", "onnxscript>=0.5"]

setup(
    name="cleanfeed",
    version="0.1.0",
    description="Streaming object removal from video: segment, track and inpaint, with bounded latency.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["stream", "stream.*", "engines", "engines.*", "export", "export.*",
                                    "prompts", "prompts.*", "bench", "bench.*"]),
    package_data={"stream": ["py.typed"], "export": ["data/*.json", "data/README.md"]},
    install_requires=[
        "numpy>=1.26",
        "av>=14,<20",
        "pyzmq>=26",
        "opencv-python-headless>=4.9",
        "msgpack>=1.0",
        "tqdm>=4.66",
    ],
    extras_require={
        # segment-anything's model code; its predictor's resizing is Pillow's, so Pillow too
        "torch": TORCH,
        # ONNX export and onnxruntime on the CPU; on a CUDA machine use onnx-gpu instead
        "onnx": ONNX + ["onnxruntime>=1.18"],
        "onnx-gpu": ONNX + ["onnxruntime-gpu>=1.18"],
        "trt": ONNX + ["tensorrt>=10"],
        # the web app (`cleanfeed gui`)
        "gui": ["gradio>=6,<7"],
        # --metrics-port: a Prometheus endpoint with the run's live figures (stream.metrics)
        "metrics": ["prometheus-client>=0.20"],
        # the tests run every model path that can run on a CPU machine
        # (and the web app's end-to-end test: playwright brings its driver; Chromium comes from apt, see .ci/run)
        "dev": ["pytest>=8", "ruff==0.17.6", "hypothesis>=6", "prometheus-client>=0.20", *TORCH, *ONNX, "onnxruntime>=1.18",
                "gradio>=6,<7", "playwright>=1.40"],
    },
    entry_points={"console_scripts": ["cleanfeed=stream.cli.main:main"]},
)
