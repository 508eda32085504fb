"""The gst-launch syntax: ``factory key=value key="quoted value" ! factory ! ...``.

Parsing is pure (no element is built): it returns where each element and property stands in
the text, so a later error (unknown element, bad value) can point at its token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cleanfeed.errors import PipelineSyntaxError


@dataclass(frozen=True)
class ElementSpec:
    """One element as written: its factory, its raw ``key=value`` text, and their columns."""

    factory: str
    props: dict[str, str] = field(default_factory=dict)
    column: int = 0
    prop_columns: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Token:
    text: str
    column: int
    quoted: bool


def _tokens(text: str) -> list[_Token]:
    """Splits on white space and '!', honouring single and double quotes and backslashes."""
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "!":
            out.append(_Token("!", i, False))
            i += 1
            continue
        start, buf, quoted = i, [], False
        while i < n and not text[i].isspace() and text[i] != "!":
            ch = text[i]
            if ch in "\"'":
                quoted = True
                end = i + 1
                while end < n and text[end] != ch:
                    if text[end] == "\\" and ch == '"' and end + 1 < n:
                        end += 1
                    end += 1
                if end >= n:
                    raise PipelineSyntaxError(f"unterminated quote at column {i + 1}: {text[i:i + 20]!r}")
                buf.append(text[i + 1 : end].replace('\\"', '"'))
                i = end + 1
            elif ch == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 2
            else:
                buf.append(ch)
                i += 1
        out.append(_Token("".join(buf), start, quoted))
    return out


def join_argv(argv: list[str]) -> str:
    """gst-launch takes the pipeline as separate arguments too; re-quote values with spaces."""
    parts = []
    for arg in argv:
        if "=" in arg and any(c.isspace() for c in arg.split("=", 1)[1]):
            key, value = arg.split("=", 1)
            parts.append(f'{key}="{value}"')
        else:
            parts.append(arg)
    return " ".join(parts)


def parse(text: str) -> list[ElementSpec]:
    """Parses a launch string into element specs; raises PipelineSyntaxError with a column."""
    tokens = _tokens(text)
    if not tokens:
        raise PipelineSyntaxError("pipeline must name at least one element, got an empty string")
    specs: list[ElementSpec] = []
    current: tuple[str, int] | None = None
    props: dict[str, str] = {}
    columns: dict[str, int] = {}

    def close(at: _Token | None) -> None:
        nonlocal current, props, columns
        if current is None:
            where = f"column {at.column + 1}" if at else "the end"
            raise PipelineSyntaxError(f"expected an element before '!' at {where}")
        specs.append(ElementSpec(current[0], props, current[1], columns))
        current, props, columns = None, {}, {}

    for tok in tokens:
        if tok.text == "!" and not tok.quoted:
            close(tok)
            continue
        if current is None:
            if "=" in tok.text and not tok.quoted:
                raise PipelineSyntaxError(
                    f"expected an element name at column {tok.column + 1}, got property {tok.text!r}"
                )
            if not tok.text or not all(c.isalnum() or c in "_-" for c in tok.text):
                raise PipelineSyntaxError(f"element name must be letters, digits, '-' or '_' at column {tok.column + 1}, got {tok.text!r}")
            current = (tok.text, tok.column)
            continue
        key, eq, value = tok.text.partition("=")
        if not eq or not key:
            raise PipelineSyntaxError(
                f"expected key=value or '!' at column {tok.column + 1}, got {tok.text!r} (missing '!' between elements?)"
            )
        if key in props:
            raise PipelineSyntaxError(f"property {key!r} given twice for {current[0]} at column {tok.column + 1}")
        props[key] = value
        columns[key] = tok.column
    if current is None:
        raise PipelineSyntaxError("pipeline must not end with '!'")
    close(None)
    return specs
