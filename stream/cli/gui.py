"""`cleanfeed gui`: the Gradio app to click what to remove, preview, run and download.

Gradio is imported here, when the command runs, so no other command pays for it (or needs it).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from typing import Any

from cleanfeed.errors import CleanfeedError

log = logging.getLogger(__name__)


class MissingExtraError(CleanfeedError, ImportError):
    exit_code = 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser("gui", help="the web app: click the object, preview, run, download",
                       description="Start the web app (Gradio) on HOST:PORT; it binds to loopback unless told otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--models", metavar="DIR",
                   help="folder searched for official checkpoint names (default $CLEANFEED_MODELS or ~/.cache/cleanfeed/models)")
    p.add_argument("--max-upload-mb", type=float, default=2048.0, metavar="N", help="largest upload accepted (default 2048)")
    p.add_argument("--workdir", metavar="DIR", help="where previews and run outputs go (default: a new temp folder)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N for SAM in the app (default auto)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    if args.max_upload_mb <= 0:
        raise CleanfeedError(f"--max-upload-mb must be > 0, got {args.max_upload_mb:g}")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise MissingExtraError("cleanfeed gui needs Gradio: pip install 'cleanfeed[gui]'") from None
    from cleanfeed.stream.gui.app import CSS, AppConfig, build_app

    # the page's frames, previews and results are files in the work folder: Gradio serves files only
    # from its temp folder, the working directory and allowed_paths, so the folder is allowed
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="cleanfeed-gui-"))
    config = AppConfig(models=args.models, max_upload_mb=args.max_upload_mb, workdir=workdir, device=args.device)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests are not news
    demo = build_app(config)
    demo.queue(default_concurrency_limit=4)
    # quiet: Gradio's own lines advertise share=True, a public tunnel this local tool never opens;
    # the address is the one line worth printing
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=f"{args.max_upload_mb:g}mb",
                css=CSS, footer_links=[], quiet=True, show_error=True, allowed_paths=[str(workdir)],
                prevent_thread_lock=True)
    print(f"cleanfeed gui on {demo.local_url} (Ctrl+C stops it)", flush=True)
    demo.block_thread()
    return 0
