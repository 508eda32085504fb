"""What the user says to remove: points, boxes, masks, prompt files."""

from cleanfeed.prompts.shapes import Box, ObjectPrompt, Point, load_mask, parse_box, parse_point

__all__ = ["Box", "ObjectPrompt", "Point", "load_mask", "parse_box", "parse_point"]
