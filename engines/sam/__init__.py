"""SAM (Segment Anything, Meta, Apache-2.0 code and weights) through the segment-anything package's own models.

Official checkpoints (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth, sam_vit_h_4b8939.pth) load
strictly and unchanged. Modules, each with one job:

- ``package``: import segment-anything's model code without its torchvision-importing ``__init__``;
- ``variants``: the official sizes (``VARIANTS``, ``OFFICIAL_FILES``) and ``build``;
- ``checkpoint``: ``load_sam`` (size read from the file, strict load, clear errors), ``checkpoint_sha256``;
- ``graphs``: ``ImageEncoderGraph`` and ``PromptDecoderGraph``, what every backend runs;
- ``transforms``: the package's pre/post-processing (Pillow-exact resize) as torch ops;
- ``predictor``: ``SamSegmenter`` (set_image once, predict per object), ``open_segmenter``.

Nothing is imported here, so naming a submodule does not pull in torch until it is needed.
"""
