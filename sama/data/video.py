"""Lazy video access: a folder of JPEG/PNG frames, a video file (PyAV), or an in-memory (T, H, W, 3) uint8 array.

``open_video(source, frames=None)`` returns a ``Video`` with ``len()``, ``.height``, ``.width``, ``frame(i)``,
``frames(indices)`` and ``iter_frames(start, stop)``. Nothing decodes a frame until it is asked for, and nothing
keeps decoded frames: a video file is indexed once by demuxing its packets (timestamps and keyframe flags only),
then each request seeks to the nearest keyframe at or before the first wanted frame and decodes forward, reusing
the running decoder for later frames of the same group of pictures.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from sama.errors import ConfigError, DataError

FRAME_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")  # SAMA.md §3.1: frames are <video>/<stem>.jpg
MAX_SEEK_RETRIES = 4  # seeks from ever earlier keyframes before decoding from the start


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Video(ABC):
    """A lazily decoded RGB video. Subclasses implement ``__len__``, ``_read`` and ``_read_many``."""

    height: int
    width: int
    fps: float | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _read_many(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for sorted, unique, in-range ``indices``."""

    def _check_index(self, index: int) -> int:
        """Normalise a (possibly negative, as in the release's ``-1`` dense index) frame index."""
        length = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise DataError(f"frame index must be an int, got {index!r}", field="frame")
        normalised = int(index) + length if index < 0 else int(index)
        if not 0 <= normalised < length:
            raise DataError(f"frame index {index} is out of range for a {length}-frame video", field="frame")
        return normalised

    def frame(self, index: int) -> np.ndarray:
        """One (H, W, 3) uint8 RGB frame."""
        return self.frames([index])[0]

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """(N, H, W, 3) uint8 frames in the requested order (repeats allowed); each distinct frame is decoded once."""
        wanted = [self._check_index(i) for i in indices]
        out = np.empty((len(wanted), self.height, self.width, 3), dtype=np.uint8)
        slots: dict[int, list[int]] = {}
        for slot, index in enumerate(wanted):
            slots.setdefault(index, []).append(slot)
        for index, image in self._read_many(sorted(slots)):
            out[slots[index]] = self._checked(index, image)
        return out

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield frames ``start..stop-1`` one at a time (never more than one decoded frame held here)."""
        stop = len(self) if stop is None else min(stop, len(self))
        if start < 0 or start > stop:
            raise DataError(f"invalid frame range [{start}, {stop}) for a {len(self)}-frame video", field="frame")
        for index, image in self._read_many(list(range(start, stop))):
            yield self._checked(index, image)

    def _checked(self, index: int, image: np.ndarray) -> np.ndarray:
        if image.shape != (self.height, self.width, 3):
            raise DataError(
                f"inconsistent frame sizes: frame {index} is {image.shape[1]}x{image.shape[0]}, expected "
                f"{self.width}x{self.height} like frame 0 (all frames of a video must match, SAMA.md §3.1)",
                file=self.describe(),
                field=f"frame {index}",
            )
        return image

    def describe(self) -> str:
        """Where the frames come from (for error messages)."""
        return type(self).__name__

    def close(self) -> None:
        """Release open files (a no-op for folders and arrays)."""
        return None

    def __enter__(self) -> Video:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r}, frames={len(self)}, size={self.width}x{self.height})"


class ArrayVideo(Video):
    """A video already in memory as a (T, H, W, 3) uint8 array."""

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise DataError(f"an in-memory video must be (T, H, W, 3) uint8, got {array.shape} {array.dtype}")
        if array.shape[0] == 0:
            raise DataError("an in-memory video needs at least one frame")
        self._array = array
        self.height, self.width = int(array.shape[1]), int(array.shape[2])

    def __len__(self) -> int:
        return int(self._array.shape[0])

    def _read_many(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            yield index, self._array[index]

    def describe(self) -> str:
        return "in-memory array"


class FrameFolderVideo(Video):
    """Frames stored as image files in one folder: all JPEG/PNG files (natural order) or the given stems in order."""

    def __init__(self, folder: str | Path, stems: Sequence[str] | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError("frame folder not found", file=str(self.folder))
        if stems is None:
            self._paths = sorted(
                (p for p in self.folder.iterdir() if p.suffix.lower() in FRAME_EXTENSIONS),
                key=lambda p: _natural_key(p.name),
            )
            if not self._paths:
                raise DataError(f"no {'/'.join(FRAME_EXTENSIONS)} frames in the folder", file=str(self.folder))
        else:
            if len(stems) == 0:
                raise DataError("the record lists no frames", file=str(self.folder), field="frames")
            self._paths = [self._find(stem, position) for position, stem in enumerate(stems)]
        self.width, self.height = self._header_size(0)

    def _find(self, stem: str, position: int) -> Path:
        for extension in FRAME_EXTENSIONS:
            candidate = self.folder / f"{stem}{extension}"
            if candidate.is_file():
                return candidate
        raise DataError(
            f"frame {position} ({stem!r}) has no {'/'.join(FRAME_EXTENSIONS)} file in the folder",
            file=str(self.folder),
            field="frames",
        )

    def _header_size(self, index: int) -> tuple[int, int]:
        """(width, height) from the image header, without decoding pixels."""
        path = self._paths[index]
        try:
            with Image.open(path) as image:
                return image.size
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"unreadable frame {index}: {exc}", file=str(path)) from exc

    def check_sizes(self) -> None:
        """Read every frame header and raise ``DataError`` at the first frame whose size differs from frame 0."""
        for index in range(1, len(self)):
            width, height = self._header_size(index)
            if (width, height) != (self.width, self.height):
                raise DataError(
                    f"inconsistent frame sizes: frame {index} is {width}x{height}, frame 0 is {self.width}x{self.height}",
                    file=str(self._paths[index]),
                )

    @property
    def paths(self) -> list[Path]:
        return list(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def _read_many(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            path = self._paths[index]
            try:
                with Image.open(path) as image:
                    yield index, np.asarray(image.convert("RGB"))
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"unreadable frame {index}: {exc}", file=str(path)) from exc

    def describe(self) -> str:
        return str(self.folder)


def _timestamp(item: Any) -> int | None:
    """Presentation timestamp of a packet or frame, falling back to its decode timestamp (AVI has no pts)."""
    value = item.pts if item.pts is not None else item.dts
    return None if value is None else int(value)


class PyAVVideo(Video):
    """A video file decoded on demand with PyAV: keyframe seek, then forward decode; only timestamps are cached.

    ``thread_type`` (``"AUTO"``, ``"FRAME"``, ``"SLICE"``) overrides PyAV's default; frame threading speeds up long
    sequential decodes but adds latency to every seek, so the default (``None``: PyAV's own) suits sparse sampling.
    """

    def __init__(self, path: str | Path, thread_type: str | None = None) -> None:
        import av  # local: only needed for video files

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("video file not found", file=str(self.path))
        self._thread_type = thread_type
        self._container: Any = None
        try:
            container = av.open(str(self.path))
        except av.FFmpegError as exc:
            raise DataError(f"cannot open video: {exc}", file=str(self.path)) from exc
        try:
            if not container.streams.video:
                raise DataError("the file has no video stream", file=str(self.path))
            stream = container.streams.video[0]
            self.width, self.height = int(stream.codec_context.width), int(stream.codec_context.height)
            self.fps = float(stream.average_rate) if stream.average_rate else None
            presentation, keyframes = [], []
            for packet in container.demux(stream):
                timestamp = _timestamp(packet)
                if timestamp is None or packet.size == 0:
                    continue
                presentation.append(timestamp)
                if packet.is_keyframe:
                    keyframes.append(timestamp)
        except av.FFmpegError as exc:
            raise DataError(f"cannot index video: {exc}", file=str(self.path)) from exc
        finally:
            container.close()
        if not presentation:
            raise DataError("the video stream has no frames", file=str(self.path))
        self._pts = sorted(presentation)
        self._keyframes = sorted(keyframes) or [self._pts[0]]

    def __len__(self) -> int:
        return len(self._pts)

    def _open(self) -> Any:
        import av

        if self._container is None:
            self._container = av.open(str(self.path))
            if self._thread_type:
                self._container.streams.video[0].thread_type = self._thread_type
        return self._container

    def _keyframe_at_or_before(self, pts: int) -> int:
        position = bisect.bisect_right(self._keyframes, pts) - 1
        return self._keyframes[max(position, 0)]

    def _seek(self, container: Any, stream: Any, target: int) -> Iterator[Any]:
        """A decoder whose first frame is at or before ``target``; retries from earlier keyframes if a demuxer
        overshoots (some seek by decode timestamps, which run ahead of presentation timestamps with B-frames)."""
        seek_point = target
        for _ in range(MAX_SEEK_RETRIES):
            container.seek(seek_point, stream=stream, backward=True, any_frame=False)
            decoder = container.decode(stream)
            first = next((frame for frame in decoder if _timestamp(frame) is not None), None)
            if first is None or _timestamp(first) <= target:
                return itertools.chain([] if first is None else [first], decoder)
            earlier = bisect.bisect_left(self._keyframes, _timestamp(first)) - 1
            seek_point = min(self._keyframes[earlier] if earlier >= 0 else self._pts[0], seek_point - 1)
        container.seek(0, backward=True, any_frame=False)  # last resort: decode from the start
        return container.decode(stream)

    def _read_many(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        import av

        container = self._open()
        stream = container.streams.video[0]
        decoder: Iterator[Any] | None = None
        last_pts: int | None = None
        for index in indices:
            target = self._pts[index]
            must_seek = (
                decoder is None
                or last_pts is None
                or last_pts >= target
                or self._keyframe_at_or_before(target) > last_pts
            )
            try:
                if must_seek:
                    decoder = self._seek(container, stream, target)
                assert decoder is not None
                for decoded in decoder:
                    timestamp = _timestamp(decoded)
                    if timestamp is None:
                        continue
                    last_pts = timestamp
                    if timestamp == target:
                        yield index, decoded.to_ndarray(format="rgb24")
                        break
                    if timestamp > target:
                        raise DataError(
                            f"frame {index} (timestamp {target}) was not produced by the decoder (next: {timestamp})",
                            file=str(self.path),
                        )
                else:
                    raise DataError(f"frame {index} could not be decoded (stream ended)", file=str(self.path))
            except av.FFmpegError as exc:
                raise DataError(f"cannot decode frame {index}: {exc}", file=str(self.path)) from exc

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __getstate__(self) -> dict[str, Any]:  # picklable for DataLoader workers: reopen lazily
        state = dict(self.__dict__)
        state["_container"] = None
        return state

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def describe(self) -> str:
        return str(self.path)


def open_video(source: str | Path | np.ndarray, frames: Sequence[str] | None = None) -> Video:
    """Open a frame folder (optionally only the record's frame ``frames`` stems), a video file, or an array."""
    if isinstance(source, np.ndarray):
        if frames is not None:
            raise ConfigError("frame stems apply to frame folders only, not to an in-memory array")
        return ArrayVideo(source)
    path = Path(source)
    if path.is_dir():
        return FrameFolderVideo(path, stems=frames)
    if path.is_file():
        if frames is not None:
            raise ConfigError(f"frame stems apply to frame folders only, not to the video file {path}")
        return PyAVVideo(path)
    raise DataError("video not found (expected a frame folder or a video file)", file=str(path))
