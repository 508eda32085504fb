"""Running a model bench and keeping what it measured: JSON for machines, Markdown for people.

Benches hand ``save`` to their run so the files are rewritten after every case: a run cut short
by a device's time limit still leaves everything it measured.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

Report = dict[str, Any]


def run_and_report(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, Callable[[Report], None] | None], Report],
    markdown: Callable[[Report], str],
) -> int:
    """Runs ``run(args, save)``, saving to ``args.out_dir/args.save.{json,md}`` when ``args.save`` is set;
    prints the Markdown; exit status 1 when a case failed."""

    def save(report: Report) -> None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / f"{args.save}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (args.out_dir / f"{args.save}.md").write_text(markdown(report), encoding="utf-8")

    report = run(args, save if args.save else None)
    print(markdown(report))
    if args.save:
        print(f"wrote {args.out_dir / args.save}.json and .md")
    return 1 if report["errors"] else 0
