"""Fuzzing prompt files (hypothesis): any file content loads as prompts or raises PromptError
with a one-line message naming what is wrong."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanfeed.errors import PromptError
from cleanfeed.prompts.promptfile import load_prompts, prompts_from_json
from cleanfeed.prompts.shapes import ObjectPrompt

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6)
           | st.sampled_from([1e400, -1e400, 0.5, "1", "x", "masks/a.png", "/abs/m.png"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                      max_leaves=10)
entries = st.fixed_dictionaries({}, optional={
    "id": values, "frame": values, "box": st.one_of(values, st.lists(values, min_size=4, max_size=4)),
    "points": st.one_of(values, st.lists(st.lists(values, min_size=1, max_size=4), max_size=3)), "mask": values,
    "note": values,
})
documents = st.one_of(
    values,
    st.fixed_dictionaries({"version": st.one_of(st.just(1), values)},
                          optional={"objects": st.one_of(values, st.lists(st.one_of(entries, values), max_size=4))}),
)


def _one_line(err: Exception) -> None:
    assert str(err) and "\n" not in str(err), repr(str(err))


@SETTINGS
@given(documents)
def test_any_parsed_document_gives_prompts_or_a_prompt_error(data) -> None:
    try:
        prompts = prompts_from_json(data, "fuzz.json", Path("/base"))
    except PromptError as err:
        _one_line(err)
        return
    assert prompts and all(isinstance(p, ObjectPrompt) for p in prompts)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), documents.map(lambda d: json.dumps(d, allow_nan=True).encode())))
def test_any_file_content_loads_or_is_a_prompt_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prompts.json"
        path.write_bytes(content)
        try:
            prompts = load_prompts(path)
        except PromptError as err:
            _one_line(err)
            return
    for p in prompts:
        assert isinstance(p.obj_id, int) and isinstance(p.frame, int)
        assert p.mask is None or isinstance(p.mask, str)
        try:
            p.check(64, 48)  # what a pipeline does next: also one clear line, whatever the values
        except PromptError as err:
            _one_line(err)
