"""Prompt shapes: parsing and checks against the frame, with messages a user can act on."""

import cv2
import numpy as np
import pytest

from cleanfeed.errors import PromptError
from cleanfeed.prompts.shapes import Box, ObjectPrompt, Point, load_mask, parse_box, parse_point


def test_parse_box_and_point():
    assert parse_box("10,20,30,40") == Box(10, 20, 30, 40)
    assert parse_point("5,6") == Point(5, 6, True)
    assert parse_point("5.5,6,0") == Point(5.5, 6, False)


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "10,10,5,20", "10,10,20,10"])
def test_bad_boxes(text):
    with pytest.raises(PromptError, match="box must"):
        parse_box(text)


@pytest.mark.parametrize("text", ["1", "1,2,3,4", "1,2,7", "x,2"])
def test_bad_points(text):
    with pytest.raises(PromptError, match="point must be X,Y or X,Y,LABEL"):
        parse_point(text)


def test_box_outside_frame():
    with pytest.raises(PromptError, match="box 10,10,2000,50 must lie inside the 1280x720 frame"):
        Box(10, 10, 2000, 50).check(1280, 720)
    with pytest.raises(PromptError, match="point 1300,5 must lie inside the 1280x720 frame"):
        ObjectPrompt(points=(Point(1300, 5),)).check(1280, 720)


def test_object_prompt_round_trip():
    prompt = ObjectPrompt(2, 7, Box(1, 2, 3, 4), (Point(1, 1, False),))
    assert ObjectPrompt.from_dict(prompt.to_dict()) == prompt
    with pytest.raises(PromptError, match="prompt must be"):
        ObjectPrompt.from_dict({"box": [1, 2]})
    with pytest.raises(PromptError, match="object 1 needs a box, a point or a mask"):
        ObjectPrompt().check(10, 10)


def test_load_mask(tmp_path):
    good = tmp_path / "m.png"
    img = np.zeros((20, 30), np.uint8)
    img[5:10, 5:10] = 255
    cv2.imwrite(str(good), img)
    assert load_mask(good, 30, 20).sum() == 25
    with pytest.raises(PromptError, match="must be 40x20 like the video, got 30x20"):
        load_mask(good, 40, 20)
    with pytest.raises(PromptError, match="does not exist"):
        load_mask(tmp_path / "none.png", 30, 20)
    junk = tmp_path / "j.png"
    junk.write_text("not an image")
    with pytest.raises(PromptError, match="not a readable image"):
        load_mask(junk, 30, 20)
