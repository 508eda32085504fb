"""Every command-line option and every element property explains itself, and agrees with its default."""

from __future__ import annotations

import argparse
import re

import pytest

from cleanfeed.stream.cli.main import _build_parser
from cleanfeed.stream.registry import factories


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                missing += _undocumented(child, f"{path} {name}")
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_command_has_help() -> None:
    commands = _commands()
    assert {"run", "launch", "demo", "inspect", "gui"} <= set(commands)
    missing = [m for name, parser in commands.items() for m in _undocumented(parser, f"cleanfeed {name}")]
    assert missing == [], missing


@pytest.mark.parametrize("factory", sorted(factories()))
def test_a_default_a_property_text_names_is_its_default(factory: str) -> None:
    """`cleanfeed inspect` shows both: "default 16" in the text beside "default: 0" contradicts itself."""
    for prop in factories()[factory].properties:
        said = re.search(r"\bdefault:? (-?\d+(?:\.\d+)?)\b", prop.blurb)
        if said and prop.default is not None:
            assert float(said.group(1)) == float(prop.default), (factory, prop.name, prop.blurb, prop.default)
