"""Running a model bench and keeping what it measured: JSON for machines, Markdown for people.

Benches hand ``save`` to their run so the files are rewritten after every case: a run cut short
by a device's time limit still leaves everything it measured.
"""

from __future__ import annotations

import argparse
import json
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cleanfeed.errors import CleanfeedError

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


def save_json(out_dir: Path, name: str, report: Report) -> None:
    """Writes ``report`` to ``out_dir/name.json`` and says so."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out_dir / name}.json")


def record_case(report: Report, case: Any, measure: Callable[[], Report], line: Callable[[Report], str]) -> str:
    """Measures one case into ``report``: its numbers under results, or its reason under skipped
    (a CleanfeedError or a missing import: this machine cannot run it), or its error under errors
    (anything else: one broken case must not lose the others' numbers). Returns which of the three."""
    print(f"{case.label()} ...", flush=True)
    entry: Report = asdict(case)
    try:
        entry.update(measure())
    except (CleanfeedError, ImportError) as err:
        report["skipped"].append({**asdict(case), "reason": str(err)})
        print(f"  skipped: {err}", flush=True)
        return "skipped"
    except Exception as err:  # noqa: BLE001
        message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        report["errors"].append({**asdict(case), "error": message,
                                 "where": traceback.format_exc().strip().splitlines()[-3:]})
        print(f"  error: {message}", flush=True)
        return "error"
    report["results"].append(entry)
    print(f"  {line(entry)}", flush=True)
    return "measured"


def torch_header(report: Report, title: str) -> list[str]:
    """The Markdown lines every torch model bench opens with: the title and where, when, how and on what it ran.

    The machine is ``cleanfeed.bench.host.machine(("numpy", "cv2"))``'s map; the load average is there because
    other work on a shared machine inflates CPU numbers.
    """
    m = report["machine"]
    where = m.get("gpu") or f"{m['cpu']} ({m['cores']} cores)"
    return [
        f"# {title} — {where}",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['system']}; python {m['python']}, torch {m['torch']} "
        f"({m['torch_threads']} threads), numpy {m['numpy']}, opencv {m['cv2']}"
        + (f"; GPU {m['gpu']} (sm {m['compute_capability']}, CUDA {m['cuda']}, cuDNN {m['cudnn']})" if m.get("gpu") else ""),
        f"- load average at start {m['load_average']}, at end {m.get('load_average_end')} "
        "(other work on a shared machine inflates CPU numbers)",
        f"- settings: {report['settings']}",
    ]
