"""The OpenCV engines that work with no checkpoint: GrabCut segmentation, flow tracking, flow inpainting."""
