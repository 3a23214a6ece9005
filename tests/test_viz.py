"""Tests of sama.viz: overlay colours, outlines and tags; PNG / GIF / MP4 writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sama.errors import DataError
from sama.viz import PALETTE, overlay, palette_colour, save_png, tile, write_gif, write_mp4


def _frame(height: int = 40, width: int = 50, value: int = 100) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def _square(height: int = 40, width: int = 50) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[20:30, 10:25] = True
    return mask


def test_overlay_blends_inside_outlines_edge_and_leaves_outside() -> None:
    frame, mask = _frame(), _square()
    out = overlay(frame, [mask], alpha=0.5)
    colour = np.array(palette_colour(0))
    assert np.array_equal(out[25, 17], np.round(0.5 * 100 + 0.5 * colour))  # interior blended
    assert np.array_equal(out[20, 17], colour)  # boundary drawn in full colour
    assert np.array_equal(out[~mask], frame[~mask])  # outside untouched
    assert out is not frame and np.array_equal(frame, _frame())  # input not modified


def test_overlay_uses_given_colours_and_palette_order() -> None:
    masks = [_square(), np.roll(_square(), 12, axis=1)]
    out = overlay(_frame(), masks, colours=[(0, 0, 0), (255, 255, 255)], alpha=1.0)
    assert np.array_equal(out[25, 15], [0, 0, 0]) and np.array_equal(out[25, 35], [255, 255, 255])
    assert palette_colour(len(PALETTE)) == PALETTE[0]


def test_overlay_draws_a_tag_above_the_mask() -> None:
    frame, mask = _frame(), _square()
    plain = overlay(frame, [mask])
    tagged = overlay(frame, [mask], ["7 red circle"])
    changed = np.any(plain != tagged, axis=2)
    assert changed.any()
    rows = np.flatnonzero(changed.any(axis=1))
    assert rows.max() < 20  # the tag sits above the mask's top row (20)
    assert np.array_equal(overlay(frame, [np.zeros_like(mask)], ["hidden"]), frame)  # empty mask: nothing drawn


def test_overlay_errors_name_the_problem() -> None:
    with pytest.raises(DataError, match="mask 0 has shape"):
        overlay(_frame(), [np.zeros((3, 3), bool)])
    with pytest.raises(DataError, match="2 labels for 1 masks"):
        overlay(_frame(), [_square()], ["a", "b"])
    with pytest.raises(DataError, match=r"expected an \(H, W, 3\) uint8 frame"):
        overlay(np.zeros((4, 4), np.float32), [])


def test_save_png_round_trips_exactly(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    path = save_png(image, tmp_path / "sub" / "x.png")
    assert np.array_equal(np.asarray(Image.open(path)), image)


def test_tile_lays_frames_out_in_a_grid() -> None:
    frames = [_frame(4, 5, v) for v in (10, 20, 30)]
    sheet = tile(frames, columns=2, gap=1)
    assert sheet.shape == (9, 11, 3)
    assert sheet[0, 0, 0] == 10 and sheet[0, 6, 0] == 20 and sheet[5, 0, 0] == 30 and sheet[5, 6, 0] == 0
    with pytest.raises(DataError, match="frame 1 is"):
        tile([_frame(4, 5), _frame(5, 5)])


def test_write_gif_keeps_every_frame(tmp_path: Path) -> None:
    frames = [_frame(8, 8, v) for v in (0, 80, 160, 240)]
    path = write_gif(frames, tmp_path / "a.gif", fps=5)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 4 and gif.info["duration"] == 200
        gif.seek(2)
        assert abs(int(np.asarray(gif.convert("RGB"))[0, 0, 0]) - 160) <= 2
    with pytest.raises(DataError, match="fps must be positive"):
        write_gif(frames, tmp_path / "b.gif", fps=0)


def test_write_mp4_decodes_with_pyav_and_pads_odd_sizes(tmp_path: Path) -> None:
    import av

    frames = [_frame(15, 21, v) for v in range(0, 250, 50)]
    path = write_mp4(frames, tmp_path / "v.mp4", fps=10)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 5 and decoded[0].shape == (16, 22, 3)
    assert abs(float(decoded[3].mean()) - 150) < 6
    with pytest.raises(DataError, match="needs at least one frame"):
        write_mp4([], tmp_path / "e.mp4")
