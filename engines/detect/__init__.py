"""Finding a known logo wherever it appears: the reference image, the finder and a shot-cut detector.

Classical (OpenCV, no model): keypoint homographies for textured logos, template matching for
flat ones. The runtime's ``logofind`` and ``logocheck`` elements and `cleanfeed check` wrap it."""
