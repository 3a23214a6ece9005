"""Visual-prompt tests: Mask/Box/Point → volumes, box-ification, region frame choice, the two object tokens."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sama.config import SamaConfig
from sama.data.masks import box_mask
from sama.errors import ConfigError, DataError
from sama.model.prompts import (
    Box,
    Mask,
    Point,
    PromptEncoder,
    object_crops,
    object_trajectory,
    prompt_masks,
    ref_to_volume,
    token_grid,
)


def test_box_mask() -> None:
    m = np.zeros((6, 6), dtype=bool)
    m[1, 2] = m[3, 4] = True
    out = box_mask(m)
    assert out[1:4, 2:5].all() and out.sum() == 9
    assert not box_mask(np.zeros((3, 3), dtype=bool)).any()


def test_refs_to_volumes() -> None:
    vol = ref_to_volume(Box(xyxy=(1, 2, 4, 5), frame=1), 3, 8, 8)
    assert vol[1, 2:5, 1:4].all() and vol.sum() == 9 and not vol[0].any()
    mask = np.zeros((8, 8), dtype=bool)
    mask[0, 0] = True
    assert ref_to_volume(Mask(mask, frame=2), 3, 8, 8)[2, 0, 0]
    point_vol = ref_to_volume(Point(xy=(3, 3), frame=0), 3, 8, 8, point_to_mask=lambda p: mask)
    assert point_vol[0, 0, 0]


def test_ref_errors() -> None:
    with pytest.raises(DataError, match="field refs: a Point reference needs a point-to-mask function"):
        ref_to_volume(Point(xy=(1, 1)), 2, 4, 4)
    with pytest.raises(DataError, match=r"box \(3, 3, 1, 5\) must have x2 > x1"):
        ref_to_volume(Box(xyxy=(3, 3, 1, 5)), 2, 4, 4)
    with pytest.raises(DataError, match="reference frame 5 outside the clip of 2 frames"):
        ref_to_volume(Box(xyxy=(0, 0, 1, 1), frame=5), 2, 4, 4)
    with pytest.raises(DataError, match="does not match the frame size"):
        ref_to_volume(Mask(np.zeros((3, 3), dtype=bool)), 2, 4, 4)


def test_prompt_masks_first_nonempty_dense_frame_and_box_mode() -> None:
    vol = np.zeros((5, 32, 32), dtype=bool)
    vol[3, 4, 4] = vol[3, 20, 20] = True  # only sparse frame 3 is non-empty
    grid, _, box, frame = prompt_masks(vol, [0, 2, 3], grid_size=16, shape_size=8, mode="box")
    assert frame == 2  # position of sparse frame 3 in the dense list (SAMA.md §7.4)
    assert grid[2:11, 2:11].all()  # box-ified before the nearest resize
    assert box.tolist() == [4 / 32, 4 / 32, 21 / 32, 21 / 32]  # pixel edges of pixels 4..20
    raw_grid, _, raw_box, _ = prompt_masks(vol, [0, 2, 3], grid_size=16, shape_size=8, mode="raw")
    assert raw_grid.sum() < grid.sum()
    assert torch.equal(raw_box, box)  # the crop box is the bounding box in both modes
    _, _, empty_box, empty_frame = prompt_masks(np.zeros((2, 8, 8), dtype=bool), [0, 1], 4, 4)
    assert empty_frame == 0
    assert empty_box.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_prompt_encoder_two_tokens_per_object() -> None:
    config = SamaConfig.from_name("sama-tiny")
    encoder = PromptEncoder(config)
    dense = torch.randn(2, 4, 64)
    grid = torch.zeros(3, 2, 2)
    grid[:, 0, 0] = 1
    pooled = encoder.pool(dense, grid, torch.tensor([0, 1, 1]))
    assert torch.allclose(pooled[1], dense[1, 0])
    tokens = encoder(pooled, torch.rand(3, 16, 16))
    assert tokens.shape == (6, 64)
    assert torch.allclose(tokens[0], encoder.pool_proj(pooled[0]), atol=1e-6)


def test_object_crops_sample_inside_the_box() -> None:
    # A (2, 3, 16, 16) image whose pixel value is its column (channel 0) and row (channel 1) index.
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    pixels = torch.stack([cols, rows, torch.zeros(16, 16)])[None].repeat(2, 1, 1, 1)
    pixels[1, 2] = 5.0
    boxes = torch.tensor([[4 / 16, 8 / 16, 8 / 16, 12 / 16], [0.0, 0.0, 1.0, 1.0]])
    crops = object_crops(pixels, boxes, size=4).view(2, 3, 4, 4)
    # A 4 x 4 box cropped to 4 x 4 samples each pixel centre: columns 4..7, rows 8..11.
    assert torch.allclose(crops[0, 0], torch.tensor([4.0, 5, 6, 7]).expand(4, 4), atol=1e-5)
    assert torch.allclose(crops[0, 1], torch.tensor([8.0, 9, 10, 11])[:, None].expand(4, 4), atol=1e-5)
    # The whole frame at 4 x 4: bilinear samples at the centres of 4-pixel cells (1.5, 5.5, 9.5, 13.5).
    assert torch.allclose(crops[1, 0, 0], torch.tensor([1.5, 5.5, 9.5, 13.5]), atol=1e-5)
    assert torch.allclose(crops[1, 2], torch.full((4, 4), 5.0))
    assert object_crops(pixels[:0], boxes[:0], size=4).shape == (0, 48)  # a turn that refers to nothing


def test_crop_option_adds_to_the_shape_token_and_keeps_the_other_inits() -> None:
    base = SamaConfig.from_name("sama-tiny")
    torch.manual_seed(3)
    plain = PromptEncoder(base)
    after_plain = torch.rand(1)
    torch.manual_seed(3)
    with_crop = PromptEncoder(replace(base, prompts=replace(base.prompts, crop_size=4)))
    after_crop = torch.rand(1)
    assert torch.equal(after_plain, after_crop)  # the crop MLP is drawn on a side stream
    assert torch.equal(plain.shape_mlp.layers[0].weight, with_crop.shape_mlp.layers[0].weight)
    assert with_crop.crop_mlp is not None and with_crop.crop_mlp.layers[0].in_features == 3 * 4 * 4
    pooled, shapes = torch.randn(2, 64), torch.rand(2, 16, 16)
    pixels, boxes = torch.randn(2, 3, 8, 8), torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 1.0, 1.0]])
    tokens = with_crop(pooled, shapes, region_pixels=pixels, boxes=boxes)
    crops = object_crops(pixels, boxes, 4)
    assert torch.allclose(tokens[1], plain(pooled, shapes)[1] + with_crop.crop_mlp(crops)[0], atol=1e-5)
    with pytest.raises(ValueError, match="crop_size is set"):
        with_crop(pooled, shapes)
    with pytest.raises(ConfigError, match="crop_size must be >= 0"):
        PromptEncoder(replace(base, prompts=replace(base.prompts, crop_size=-1)))


def test_area_grid_keeps_small_objects_that_nearest_drops() -> None:
    volume = np.zeros((1, 96, 96), dtype=bool)
    volume[0, 28:38, 28:38] = True  # a 10-px object between the 4×4 grid's nearest sample points (0, 24, 48, 72)
    nearest, *_ = prompt_masks(volume, [0], grid_size=4, shape_size=28, mode="box", grid_resize="nearest")
    area, *_ = prompt_masks(volume, [0], grid_size=4, shape_size=28, mode="box", grid_resize="area")
    assert nearest.sum() == 0
    assert area.sum() * (96 // 4) ** 2 == pytest.approx(100)  # covered fractions add up to the object's area
    assert area[1, 1] > 0


def test_grid_resize_is_checked() -> None:
    volume = np.ones((1, 8, 8), dtype=bool)
    with pytest.raises(ConfigError, match="grid_resize"):
        prompt_masks(volume, [0], grid_size=4, shape_size=8, grid_resize="bilinear")


def _moving_object_frames(cells: list[int], tokens: int = 16, width: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    obj = torch.randn(width)
    frames = (0.1 * torch.randn(tokens, width)).repeat(len(cells), 1, 1)
    for t, cell in enumerate(cells):
        frames[t, cell] = obj
    return frames, obj[None]


def test_object_trajectory_follows_the_object() -> None:
    frames, obj = _moving_object_frames([4, 5, 6, 7])  # row 1 of a 4×4 grid, left to right
    features = object_trajectory(frames, obj, points=3, temperature=10.0)
    assert features.shape == (1, 12)
    x, y, dx, dy = features[0].view(4, 3)
    assert (x.diff() > 0.5).all() and torch.allclose(y, torch.full((3,), -0.5), atol=0.2)  # cells from the centre
    assert dx[0] == 0 and dy.abs().max() < 0.2 and dx[-1] > 1.6  # 3 cells, less the background's pull
    back = object_trajectory(frames.flip(0), obj, points=3, temperature=10.0)
    assert torch.allclose(back.view(4, 3)[2], -dx, atol=1e-5)  # the reversed clip moves the other way


def test_centred_trajectory_sees_past_a_shared_token_component() -> None:
    frames, obj = _moving_object_frames([4, 5, 6, 7])
    common = 4.0 * torch.randn(frames.shape[-1])  # every token and the object share it: raw cosines are all ~1
    raw = object_trajectory(frames + common, obj + common, points=4, temperature=30.0).view(4, 4)
    centred = object_trajectory(frames + common, obj + common, points=4, temperature=30.0, centre=True).view(4, 4)
    assert raw[2, -1] < 1.0  # pulled to the grid centre: most of the 3-cell move is lost
    assert centred[2, -1] > 2.5 and centred[3].abs().max() < 0.3  # 3 cells right, no vertical move


def test_prompt_encoder_trajectory_token() -> None:
    c = SamaConfig.from_name("sama-tiny")
    c.prompts.trajectory_points = 4
    torch.manual_seed(0)
    encoder = PromptEncoder(c)
    width = c.llm.hidden_size
    right, obj = _moving_object_frames([4, 5, 6, 7], width=width)
    left, _ = _moving_object_frames([7, 6, 5, 4], width=width)
    shape = torch.rand(1, c.prompts.shape_mask_size, c.prompts.shape_mask_size)
    a, b = encoder(obj, shape, right), encoder(obj, shape, left)
    assert a.shape == (2, width)  # still 2 tokens per object (SAMA.md §1.4)
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])  # the path is in the shape token
    assert encoder(obj[:0], shape[:0], right).shape == (0, width)  # a turn that refers to nothing
    with pytest.raises(ValueError, match="needs the sparse frame tokens"):
        encoder(obj, shape)
    c.prompts.trajectory_points = -1
    with pytest.raises(ConfigError, match="trajectory_points must be >= 0"):
        PromptEncoder(c)


def test_token_grid_is_row_major_xy() -> None:
    grid = token_grid(4)
    assert grid.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    with pytest.raises(ValueError, match="square token grid, got 6 tokens"):
        token_grid(6)
