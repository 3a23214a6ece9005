"""Tests for sama.data.video: frame folders, PyAV files (keyframe seek + forward decode), arrays, and their errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sama.data.video import ArrayVideo, FrameFolderVideo, PyAVVideo, open_video
from sama.errors import ConfigError, DataError

LEVEL_STEP = 4  # frame i is filled with grey level 4*i, so the decoded mean identifies the frame


def _write_mp4(path: Path, num_frames: int, size: tuple[int, int] = (32, 48), gop: int = 8) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(gop), "bf": "2", "crf": "10", "preset": "ultrafast"}
        for index in range(num_frames):
            image = np.full((*size, 3), LEVEL_STEP * index % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _frame_id(image: np.ndarray) -> int:
    return round(float(image.mean()) / LEVEL_STEP)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_mp4(tmp_path_factory.mktemp("video") / "clip.mp4", 50)


def test_pyav_length_size_and_exact_frames(mp4: Path) -> None:
    video = open_video(mp4)
    assert isinstance(video, PyAVVideo)
    assert (len(video), video.height, video.width) == (50, 32, 48)
    assert video.fps == pytest.approx(25)
    indices = [49, 3, 17, 3, 0, 40, 41, 8]
    batch = video.frames(indices)
    assert batch.shape == (8, 32, 48, 3) and batch.dtype == np.uint8
    assert [_frame_id(f) for f in batch] == indices
    assert _frame_id(video.frame(-1)) == 49  # the release's -1 dense index wraps to the last frame


@pytest.mark.parametrize(
    ("name", "codec", "options"),
    [
        ("h264.mkv", "libx264", {"g": "8", "bf": "3", "crf": "30", "preset": "ultrafast"}),
        ("mpeg4.avi", "mpeg4", {"g": "8", "bf": "2"}),
        ("mpeg4.mp4", "mpeg4", {"g": "8", "bf": "2"}),
    ],
)
def test_random_access_is_bit_exact_with_sequential_decode(tmp_path: Path, name: str, codec: str, options) -> None:
    path = tmp_path / name
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width, stream.pix_fmt, stream.bit_rate = 32, 48, "yuv420p", 2_000_000
        stream.options = options
        for index in range(40):
            image = np.full((32, 48, 3), LEVEL_STEP * index, np.uint8)
            image[(index % 4) * 8 : (index % 4) * 8 + 8, index : index + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with av.open(str(path)) as container:
        sequential = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    video = open_video(path)
    order = list(np.random.default_rng(0).permutation(len(sequential)))
    assert len(video) == len(sequential) == 40
    np.testing.assert_array_equal(video.frames(order), sequential[order])
    np.testing.assert_array_equal(np.stack(list(video.iter_frames())), sequential)


def test_pyav_iter_frames_sequential(mp4: Path) -> None:
    with open_video(mp4) as video:
        ids = [_frame_id(f) for f in video.iter_frames(start=10, stop=23)]
    assert ids == list(range(10, 23))


def test_pyav_pickles_without_open_container(mp4: Path) -> None:
    video = open_video(mp4)
    video.frame(5)
    clone = pickle.loads(pickle.dumps(video))
    assert _frame_id(clone.frame(30)) == 30


def test_pyav_errors(tmp_path: Path, mp4: Path) -> None:
    with pytest.raises(DataError, match="video not found"):
        open_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video" * 10)
    with pytest.raises(DataError, match=r"junk\.mp4: cannot open video"):
        open_video(junk)
    with pytest.raises(DataError, match="frame index 50 is out of range for a 50-frame video"):
        open_video(mp4).frame(50)
    with pytest.raises(ConfigError, match="frame folders only"):
        open_video(mp4, frames=["a"])


def _write_frames(folder: Path, names: list[str], size: tuple[int, int] = (10, 12)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        Image.fromarray(np.full((*size, 3), LEVEL_STEP * index, np.uint8)).save(folder / name)


def test_folder_natural_order_and_stems(tmp_path: Path) -> None:
    names = ["frame_0.png", "frame_4.png", "frame_8.png", "frame_12.png"]
    _write_frames(tmp_path / "v", names)
    (tmp_path / "v" / "notes.txt").write_text("ignored")
    video = open_video(tmp_path / "v")
    assert isinstance(video, FrameFolderVideo) and len(video) == 4 and (video.height, video.width) == (10, 12)
    assert [p.name for p in video.paths] == names  # frame_12 after frame_8
    assert [_frame_id(f) for f in video.iter_frames()] == [0, 1, 2, 3]
    subset = open_video(tmp_path / "v", frames=["frame_12", "frame_0"])
    assert len(subset) == 2 and [_frame_id(f) for f in subset.frames([0, 1])] == [3, 0]


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="video not found"):
        open_video(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.jpg/\.jpeg/\.png frames"):
        open_video(tmp_path / "empty")
    _write_frames(tmp_path / "v", ["00000.jpg", "00001.jpg"])
    with pytest.raises(DataError, match=r"frame 1 \('00007'\) has no"):
        open_video(tmp_path / "v", frames=["00000", "00007"])
    (tmp_path / "v" / "00002.jpg").write_bytes(b"broken jpeg")
    video = open_video(tmp_path / "v")
    with pytest.raises(DataError, match=r"00002\.jpg: unreadable frame 2"):
        video.frame(2)


def test_folder_inconsistent_sizes(tmp_path: Path) -> None:
    _write_frames(tmp_path / "v", ["a.png"], size=(10, 12))
    Image.fromarray(np.zeros((10, 14, 3), np.uint8)).save(tmp_path / "v" / "b.png")
    video = open_video(tmp_path / "v")
    with pytest.raises(DataError, match="inconsistent frame sizes: frame 1 is 14x10"):
        video.frames([0, 1])
    with pytest.raises(DataError, match="inconsistent frame sizes"):
        video.check_sizes()


def test_array_video() -> None:
    array = np.stack([np.full((4, 6, 3), i, np.uint8) for i in range(7)])
    video = open_video(array)
    assert isinstance(video, ArrayVideo) and len(video) == 7
    np.testing.assert_array_equal(video.frames([6, 1]), array[[6, 1]])
    assert len(list(video.iter_frames(5))) == 2
    with pytest.raises(DataError, match=r"\(T, H, W, 3\) uint8"):
        ArrayVideo(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="invalid frame range"):
        list(video.iter_frames(5, 2))


class _OvershootingContainer:
    """Delegates to a real container, but its first seek lands one keyframe too late (as a DTS-seeking demuxer can)."""

    def __init__(self, real, keyframes: list[int]) -> None:
        self.real, self.keyframes, self.seeks = real, keyframes, []

    @property
    def streams(self):
        return self.real.streams

    def decode(self, stream):
        return self.real.decode(stream)

    def seek(self, offset: int, **kwargs) -> None:
        if not self.seeks:
            offset = next(k for k in self.keyframes if k > offset)
        self.seeks.append(offset)
        self.real.seek(offset, **kwargs)

    def close(self) -> None:
        self.real.close()


def test_overshooting_seek_retries_from_earlier_keyframe(mp4: Path) -> None:
    video = open_video(mp4)
    expected = open_video(mp4).frame(13)
    proxy = _OvershootingContainer(video._open(), video._keyframes)
    video._container = proxy
    np.testing.assert_array_equal(video.frame(13), expected)
    assert len(proxy.seeks) == 2 and proxy.seeks[1] < proxy.seeks[0]
