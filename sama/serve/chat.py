"""The interactive terminal chat of ``sama chat``: a line loop over a ChatSession where the user types questions and
slash commands that queue region references (box / point / mask) for the next question with ``<mask>``.

Works with piped stdin (one question or command per line); every user error is printed as one ``error:`` line and
the chat goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from sama.errors import DataError, SamaError
from sama.model.prompts import Box, Mask, Point, RegionRef

HELP = """commands:
  /box FRAME x1,y1,x2,y2   refer to a box on FRAME (pixels) in the next question's <mask>
  /point FRAME x,y         refer to the object under a click on FRAME
  /mask FILE.png [FRAME]   refer to a binary mask image (non-zero pixels) on FRAME (default 0)
  /refs                    show the queued references      /clear   drop them
  /save DIR                write the masks of the last answer (PNG per frame, RLE JSON, overlay GIF/MP4)
  /help                    this text                       /quit    leave
anything else is a question; each <mask> in it takes the next queued reference, in order."""


def _numbers(text: str, count: int, what: str) -> list[float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count:
        raise DataError(f"{what} {text!r}: expected {count} comma-separated numbers", field=what)
    return values


def _frame(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise DataError(f"{what}: frame {text!r} is not an integer", field=what) from None


def parse_box(spec: str) -> Box:
    """``FRAME:x1,y1,x2,y2`` → Box."""
    frame, _, coords = spec.partition(":")
    if not coords:
        raise DataError(f"box {spec!r}: expected FRAME:x1,y1,x2,y2", field="box")
    x1, y1, x2, y2 = _numbers(coords, 4, "box")
    return Box(xyxy=(x1, y1, x2, y2), frame=_frame(frame, "box"))


def parse_point(spec: str) -> Point:
    """``FRAME:x,y`` → Point."""
    frame, _, coords = spec.partition(":")
    if not coords:
        raise DataError(f"point {spec!r}: expected FRAME:x,y", field="point")
    x, y = _numbers(coords, 2, "point")
    return Point(xy=(x, y), frame=_frame(frame, "point"))


def load_mask_image(path: str | Path, frame: int = 0) -> Mask:
    """A mask image (non-zero pixels are the object) on ``frame``."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError("mask image not found", file=str(path), field="mask")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"not a readable image ({exc})", file=str(path), field="mask") from None
    mask = array > 0
    if not mask.any():
        raise DataError("the mask image is empty (no non-zero pixel)", file=str(path), field="mask")
    return Mask(mask=mask, frame=frame)


def parse_mask(spec: str) -> Mask:
    """``FILE.png[:FRAME]`` → Mask (frame 0 by default)."""
    path, sep, frame = spec.rpartition(":")
    if sep and frame.isdigit() and path:
        return load_mask_image(path, int(frame))
    return load_mask_image(spec, 0)


def describe_ref(ref: RegionRef) -> str:
    if isinstance(ref, Box):
        return f"box {tuple(round(v, 1) for v in ref.xyxy)} on frame {ref.frame}"
    if isinstance(ref, Point):
        return f"point {ref.xy} on frame {ref.frame}"
    return f"mask of {int(np.asarray(ref.mask).sum())} px on frame {ref.frame}"


class ChatLoop:
    """Reads lines, answers questions through ``session`` and prints to ``out`` (``autosave``: write every
    answer's masks under ``DIR/turnN/``)."""

    def __init__(self, session: Any, out: TextIO, refs: Iterable[RegionRef] = (),
                 max_new_tokens: int | None = None, autosave: str | Path | None = None) -> None:
        self.session = session
        self.out = out
        self.queued: list[RegionRef] = list(refs)
        self.max_new_tokens = max_new_tokens
        self.autosave = Path(autosave) if autosave is not None else None  # every answer's masks → DIR/turnN/
        self.last_turn: Any = None
        self.errors = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def run(self, lines: Iterable[str], prompt: str = "") -> int:
        """Process every line until ``/quit`` or the end of input; returns the number of errors printed."""
        for line in lines:
            if not self.handle(line.strip()):
                break
            if prompt:
                print(prompt, end="", file=self.out, flush=True)
        return self.errors

    def handle(self, line: str) -> bool:
        """One input line; False when the chat should end."""
        if not line:
            return True
        try:
            if line.startswith("/"):
                return self.command(line)
            self.ask(line)
        except SamaError as exc:
            self.errors += 1
            self.say(f"error: {exc}")
        return True

    def command(self, line: str) -> bool:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/help":
            self.say(HELP)
        elif name == "/box":
            frame, _, coords = rest.partition(" ")
            self.queue(parse_box(f"{frame}:{coords}"))
        elif name == "/point":
            frame, _, coords = rest.partition(" ")
            self.queue(parse_point(f"{frame}:{coords}"))
        elif name == "/mask":
            path, _, frame = rest.partition(" ")
            if not path:
                raise DataError("/mask needs a file: /mask FILE.png [FRAME]", field="mask")
            self.queue(load_mask_image(path, _frame(frame, "mask") if frame.strip() else 0))
        elif name == "/refs":
            self.say("queued: " + ("; ".join(describe_ref(r) for r in self.queued) or "nothing"))
        elif name == "/clear":
            self.queued.clear()
            self.say("queued references dropped")
        elif name == "/save":
            self.save(rest)
        else:
            raise DataError(f"unknown command {name!r} (type /help)", field="command")
        return True

    def queue(self, ref: RegionRef) -> None:
        self.queued.append(ref)
        self.say(f"queued {describe_ref(ref)} (#{len(self.queued)}) for the next <mask>")

    def ask(self, question: str) -> None:
        from sama.model.processing import MASK_PLACEHOLDER

        count = question.count(MASK_PLACEHOLDER)
        refs = self.queued[:count] if count else []
        if count and len(self.queued) < count:
            raise DataError(f"the question has {count} <mask> but {len(self.queued)} reference(s) are queued "
                            "(use /box, /point or /mask first)", field="refs")
        turn = self.session.ask(question, refs, max_new_tokens=self.max_new_tokens)
        del self.queued[:count]
        self.last_turn = turn
        self.say(f"sama: {turn.raw_text or '(empty answer)'}")
        for note in turn.notes:
            self.say(f"  note: {note}")
        if turn.num_objects:
            labels = ", ".join(p or f"[SEG] {k}" for k, p in enumerate(turn.phrases))
            self.say(f"  grounded {turn.num_objects} object(s): {labels} — /save DIR writes their masks")
        if self.autosave is not None:
            self.save(str(self.autosave / f"turn{len(self.session.history)}"))

    def save(self, directory: str) -> None:
        from sama.serve.outputs import save_turn

        if not directory:
            raise DataError("/save needs a folder: /save DIR", field="save")
        if self.last_turn is None:
            raise DataError("nothing to save yet: ask a question first", field="save")
        written = save_turn(self.last_turn, self.session.video, directory)
        if not written:
            self.say("the last answer grounded no object ([SEG]); nothing written")
        else:
            self.say(f"wrote {len(written)} files to {directory}")
