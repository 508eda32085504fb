"""The vectorised deformable convolution against a literal transcription of mmcv's im2col rule.

Why: E2FGVI's checkpoints were trained with mmcv's compiled op; ours replaces it with
grid_sample + matmul, so it must read the same input points with the same boundary rule. The
reference below walks every output pixel and tap in plain Python, as mmcv's CPU kernel does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cleanfeed.engines.e2fgvi.deform_conv import ModulatedDeformConv2d, modulated_deform_conv2d


def _bilinear_mmcv(image: np.ndarray, h: float, w: float) -> np.ndarray:
    """mmcv's dmcn_im2col_bilinear: four neighbours, each outside the image reads 0."""
    height, width = image.shape[-2:]
    h_low, w_low = math.floor(h), math.floor(w)
    h_high, w_high = h_low + 1, w_low + 1
    lh, lw = h - h_low, w - w_low
    hh, hw = 1 - lh, 1 - lw
    zero = np.zeros(image.shape[:-2])
    v1 = image[..., h_low, w_low] if h_low >= 0 and w_low >= 0 else zero
    v2 = image[..., h_low, w_high] if h_low >= 0 and w_high <= width - 1 else zero
    v3 = image[..., h_high, w_low] if h_high <= height - 1 and w_low >= 0 else zero
    v4 = image[..., h_high, w_high] if h_high <= height - 1 and w_high <= width - 1 else zero
    return hh * hw * v1 + hh * lw * v2 + lh * hw * v3 + lh * lw * v4


def naive_modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
    """mmcv's modulated_deformable_im2col + grouped GEMM, one output pixel and tap at a time (float64)."""
    x, offset, mask, weight = (t.detach().double().numpy() for t in (x, offset, mask, weight))
    n, c_in, height, width = x.shape
    c_out, c_in_g, kernel_h, kernel_w = weight.shape
    taps = kernel_h * kernel_w
    out_h = (height + 2 * padding - dilation * (kernel_h - 1) - 1) // stride + 1
    out_w = (width + 2 * padding - dilation * (kernel_w - 1) - 1) // stride + 1
    per_dg = c_in // deform_groups
    columns = np.zeros((n, c_in, taps, out_h, out_w))
    for b in range(n):
        for g in range(deform_groups):
            image = x[b, g * per_dg : (g + 1) * per_dg]
            for y in range(out_h):
                for xo in range(out_w):
                    for i in range(kernel_h):
                        for j in range(kernel_w):
                            tap = i * kernel_w + j
                            dy = offset[b, g * 2 * taps + 2 * tap, y, xo]
                            dx = offset[b, g * 2 * taps + 2 * tap + 1, y, xo]
                            m = mask[b, g * taps + tap, y, xo]
                            h_im = y * stride - padding + i * dilation + dy
                            w_im = xo * stride - padding + j * dilation + dx
                            val = np.zeros(per_dg)
                            if h_im > -1 and w_im > -1 and h_im < height and w_im < width:
                                val = _bilinear_mmcv(image, h_im, w_im)
                            columns[b, g * per_dg : (g + 1) * per_dg, tap, y, xo] = val * m
    out = np.zeros((n, c_out, out_h, out_w))
    per_group_out = c_out // groups
    for o in range(c_out):
        g = o // per_group_out
        cols = columns[:, g * c_in_g : (g + 1) * c_in_g].reshape(n, c_in_g * taps, out_h, out_w)
        out[:, o] = np.einsum("k,nkyx->nyx", weight[o].reshape(-1), cols)
        if bias is not None:
            out[:, o] += float(bias[o])
    return torch.from_numpy(out)


def _random_case(seed, n, c_in, c_out, size, kernel, stride, padding, dilation, groups, deform_groups, reach):
    gen = torch.Generator().manual_seed(seed)
    height, width = size
    kernel_h, kernel_w = kernel
    taps = kernel_h * kernel_w
    out_h = (height + 2 * padding - dilation * (kernel_h - 1) - 1) // stride + 1
    out_w = (width + 2 * padding - dilation * (kernel_w - 1) - 1) // stride + 1
    x = torch.randn(n, c_in, height, width, generator=gen)
    offset = (torch.rand(n, deform_groups * taps * 2, out_h, out_w, generator=gen) * 2 - 1) * reach
    # Some taps land exactly on pixels, half pixels and the -1 / H boundaries.
    offset[:, 0::5] = torch.round(offset[:, 0::5])
    offset[:, 1::7] = torch.round(offset[:, 1::7] * 2) / 2
    mask = torch.rand(n, deform_groups * taps, out_h, out_w, generator=gen)
    weight = torch.randn(c_out, c_in // groups, kernel_h, kernel_w, generator=gen) / math.sqrt(c_in * taps)
    bias = torch.randn(c_out, generator=gen)
    return x, offset, mask, weight, bias


CASES = {
    "plain": dict(
        n=1,
        c_in=4,
        c_out=3,
        size=(6, 7),
        kernel=(3, 3),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        deform_groups=1,
        reach=4.0,
    ),
    "deform_groups": dict(
        n=2,
        c_in=8,
        c_out=5,
        size=(5, 6),
        kernel=(3, 3),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        deform_groups=4,
        reach=7.0,
    ),
    "groups_and_deform_groups": dict(
        n=1,
        c_in=8,
        c_out=6,
        size=(6, 5),
        kernel=(3, 3),
        stride=1,
        padding=1,
        dilation=1,
        groups=2,
        deform_groups=2,
        reach=3.0,
    ),
    "stride_dilation_padding": dict(
        n=1,
        c_in=4,
        c_out=4,
        size=(9, 8),
        kernel=(3, 3),
        stride=2,
        padding=2,
        dilation=2,
        groups=2,
        deform_groups=2,
        reach=2.5,
    ),
    "rectangular_kernel": dict(
        n=1,
        c_in=6,
        c_out=2,
        size=(5, 7),
        kernel=(2, 3),
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        deform_groups=3,
        reach=5.0,
    ),
    "one_pixel_wide": dict(
        n=1,
        c_in=2,
        c_out=2,
        size=(5, 1),
        kernel=(3, 1),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        deform_groups=1,
        reach=1.5,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_naive_mmcv_rule(name):
    case = CASES[name]
    x, offset, mask, weight, bias = _random_case(seed=len(name), **case)
    conv = {k: case[k] for k in ("stride", "padding", "dilation", "groups", "deform_groups")}
    expected = naive_modulated_deform_conv2d(x, offset, mask, weight, bias, **conv)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, **conv)
    assert got.shape == expected.shape
    err = (got.double() - expected).abs()
    assert err.max().item() <= 1e-5, (
        f"max abs diff {err.max().item():.3g} at {np.unravel_index(err.argmax(), err.shape)}"
    )
    got64 = modulated_deform_conv2d(x.double(), offset.double(), mask.double(), weight.double(), bias.double(), **conv)
    assert (got64 - expected).abs().max().item() <= 1e-12


def test_samples_outside_image_read_zero():
    # Every tap pushed further than the image is wide: the output is the bias alone.
    x, offset, mask, weight, bias = _random_case(3, **{**CASES["plain"], "reach": 1.0})
    far = torch.full_like(offset, 50.0)
    got = modulated_deform_conv2d(x, far, mask, weight, bias, padding=1)
    torch.testing.assert_close(got, bias.reshape(1, -1, 1, 1).expand_as(got), rtol=0, atol=0)


def test_boundary_points_follow_mmcv():
    # A single tap at h = -1 (reads 0), h = -0.5 (half of row 0), h = H - 1 (row H - 1) and h = H - 0.5.
    x = torch.arange(1.0, 13.0).reshape(1, 1, 4, 3)
    weight = torch.ones(1, 1, 1, 1)
    mask = torch.ones(1, 1, 4, 3)
    offset = torch.zeros(1, 2, 4, 3)
    offset[0, 0, 0, 1] = -1.0  # row 0 -> -1
    offset[0, 0, 1, 1] = -1.5  # row 1 -> -0.5
    offset[0, 0, 2, 1] = 1.0  # row 2 -> 3 = H - 1
    offset[0, 0, 3, 1] = 0.5  # row 3 -> 3.5
    got = modulated_deform_conv2d(x, offset, mask, weight)[0, 0, :, 1]
    torch.testing.assert_close(got, torch.tensor([0.0, 0.5 * 2.0, 11.0, 0.5 * 11.0]))


def test_zero_offset_full_mask_is_a_plain_convolution():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 6, 9, 10, generator=gen)
    weight = torch.randn(4, 3, 3, 3, generator=gen)
    bias = torch.randn(4, generator=gen)
    offset = torch.zeros(2, 3 * 9 * 2, 5, 5)
    mask = torch.ones(2, 3 * 9, 5, 5)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, stride=2, padding=1, groups=2, deform_groups=3)
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, stride=2, padding=1, groups=2), rtol=1e-5, atol=1e-5)


def test_rejects_mismatched_layouts():
    x = torch.zeros(1, 4, 5, 5)
    weight = torch.zeros(2, 4, 3, 3)
    with pytest.raises(ValueError, match="offset and mask must have 36 and 18 channels, got 18 and 18"):
        modulated_deform_conv2d(
            x, torch.zeros(1, 18, 5, 5), torch.zeros(1, 18, 5, 5), weight, padding=1, deform_groups=2
        )
    with pytest.raises(ValueError, match="offset and mask must cover the 5x5 output, got"):
        modulated_deform_conv2d(x, torch.zeros(1, 18, 3, 3), torch.zeros(1, 9, 3, 3), weight, padding=1)
    with pytest.raises(ValueError, match="channels must split evenly"):
        modulated_deform_conv2d(
            x, torch.zeros(1, 54, 5, 5), torch.zeros(1, 27, 5, 5), weight, padding=1, deform_groups=3
        )


def test_module_keeps_mmcv_parameter_names():
    conv = ModulatedDeformConv2d(8, 4, 3, padding=1, groups=2, deform_groups=2)
    assert {k: tuple(v.shape) for k, v in conv.state_dict().items()} == {"weight": (4, 4, 3, 3), "bias": (4,)}
    assert ModulatedDeformConv2d(8, 4, 3, bias=False).bias is None
    x = torch.randn(1, 8, 5, 5)
    offset, mask = torch.zeros(1, 36, 5, 5), torch.ones(1, 18, 5, 5)
    torch.testing.assert_close(conv(x, offset, mask), F.conv2d(x, conv.weight, conv.bias, padding=1, groups=2))


class _TinyDeform(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.deform = ModulatedDeformConv2d(8, 6, 3, padding=1, deform_groups=2)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.deform(x, offset, mask)


def test_exports_to_onnx_and_runs_in_onnxruntime(tmp_path):
    import onnxruntime as ort

    module = _TinyDeform().eval()
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(1, 8, 7, 9, generator=gen)
    offset = (torch.rand(1, 36, 7, 9, generator=gen) * 2 - 1) * 5
    mask = torch.rand(1, 18, 7, 9, generator=gen)
    path = tmp_path / "deform.onnx"
    torch.onnx.export(module, (x, offset, mask), str(path), dynamo=True, input_names=["x", "offset", "mask"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": x.numpy(), "offset": offset.numpy(), "mask": mask.numpy()})
    with torch.no_grad():
        expected = module(x, offset, mask)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-5)
