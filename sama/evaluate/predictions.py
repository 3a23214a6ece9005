"""The prediction JSONL every benchmark reads: append-only, crash-safe, resumable store, shard split/merge, validation.

One JSON object per line (docs/DESIGN.md, "Predictions JSONL")::

    {"question_id": "q-000123", "text": "The <p> red circle </p> [SEG] moves left.",
     "masks": [[{"size": [H, W], "counts": "..."} | null, ...per frame], ...per [SEG]]}

Every record is flushed and fsync-ed as it is written, so a run killed at any moment loses at most the line being
written; that torn last line is ignored (and reported) on reading and cut off when the store is reopened.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sama.data.masks import check_rle
from sama.errors import ConfigError, DataError

RLE = dict[str, Any]


@dataclass
class PredictionRow:
    """One model answer: the decoded text and, per ``[SEG]``, one RLE (or None = empty) per video frame."""

    question_id: str
    text: str = ""
    masks: list[list[RLE | None]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"question_id": self.question_id, "text": self.text, "masks": self.masks}
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Any, *, file: str | None = None, record: int | str | None = None) -> PredictionRow:
        """Parse one JSONL object; raises DataError naming the file/line when the shape is wrong."""
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", file=file, record=record)
        qid = obj.get("question_id")
        if not isinstance(qid, str) or not qid:
            raise DataError("expected a non-empty string 'question_id'", file=file, record=record, field="question_id")
        text = obj.get("text", "")
        if not isinstance(text, str):
            raise DataError("expected 'text' to be a string", file=file, record=qid, field="text")
        masks = obj.get("masks", [])
        if not isinstance(masks, list) or not all(isinstance(m, list) for m in masks):
            raise DataError("expected 'masks' to be a list (per [SEG]) of lists (per frame) of RLE or null",
                            file=file, record=qid, field="masks")
        extra = {k: v for k, v in obj.items() if k not in ("question_id", "text", "masks")}
        return cls(question_id=qid, text=text, masks=masks, extra=extra)


@dataclass
class ReadReport:
    """What reading a prediction file tolerated (lenient mode) or noticed (torn last line)."""

    torn_last_line: bool = False
    duplicates: list[str] = field(default_factory=list)
    malformed_lines: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"torn_last_line": self.torn_last_line, "duplicates": len(self.duplicates),
                "malformed_lines": len(self.malformed_lines)}


def _canonical(row: PredictionRow) -> str:
    return json.dumps(row.to_json(), sort_keys=True)


def read_predictions(path: str | Path, *, lenient: bool = False) -> tuple[dict[str, PredictionRow], ReadReport]:
    """Read a prediction JSONL into ``{question_id: row}``.

    A last line without its newline that does not parse is a torn write (crash) and is ignored and reported. Any
    other malformed line or a repeated question id raises DataError, or in lenient mode is counted and skipped
    (the first occurrence of an id wins).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("prediction file not found", file=str(path))
    rows: dict[str, PredictionRow] = {}
    report = ReadReport()
    data = path.read_bytes()
    lines = data.split(b"\n")
    ends_with_newline = data.endswith(b"\n")
    for index, raw in enumerate(lines):
        line_no = index + 1
        is_last = index == len(lines) - 1
        if not raw.strip():
            continue
        try:
            row = PredictionRow.from_json(json.loads(raw), file=str(path), record=f"line {line_no}")
        except (json.JSONDecodeError, UnicodeDecodeError, DataError) as exc:
            if is_last and not ends_with_newline:
                report.torn_last_line = True
                continue
            if lenient:
                report.malformed_lines.append(line_no)
                continue
            if isinstance(exc, DataError):
                raise
            raise DataError(f"line is not valid JSON ({exc})", file=str(path), record=f"line {line_no}") from exc
        if row.question_id in rows:
            if not lenient:
                raise DataError(f"duplicate prediction for question id {row.question_id!r} (line {line_no})",
                                file=str(path), record=row.question_id, field="question_id")
            report.duplicates.append(row.question_id)
            continue
        rows[row.question_id] = row
    return rows, report


class PredictionStore:
    """Append-only prediction JSONL with crash-safe writes and resume support.

    Opening an existing file reads what is there (see ``read_predictions``) and truncates a torn last line so the
    next append starts on a clean line. ``append`` writes one line, flushes and fsyncs it.
    """

    def __init__(self, path: str | Path, *, lenient: bool = False) -> None:
        self.path = Path(path)
        self.lenient = lenient
        self.rows: dict[str, PredictionRow] = {}
        self.report = ReadReport()
        if self.path.exists():
            self.rows, self.report = read_predictions(self.path, lenient=lenient)
            if self.report.torn_last_line:
                self._truncate_torn_line()
            self._end_with_newline()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open for the store's lifetime

    def _truncate_torn_line(self) -> None:
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1  # 0 when the torn line is the only content
        with open(self.path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())

    def _end_with_newline(self) -> None:
        """A complete last record whose newline was lost (crash between the two) gets it back before appending."""
        with open(self.path, "r+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
                handle.flush()
                os.fsync(handle.fileno())

    def done_ids(self) -> set[str]:
        """Question ids already predicted (to skip on resume)."""
        return set(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, question_id: object) -> bool:
        return question_id in self.rows

    def append(self, row: PredictionRow) -> None:
        """Write one prediction durably; a second prediction for the same id is a DataError."""
        if row.question_id in self.rows:
            raise DataError("a prediction for this question id is already stored", file=str(self.path),
                            record=row.question_id, field="question_id")
        line = json.dumps(row.to_json(), separators=(",", ":")).encode() + b"\n"
        self._handle.write(line)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.rows[row.question_id] = row

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> PredictionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class MergeReport:
    """Result of merging shard files: rows written, identical duplicates dropped, torn lines ignored."""

    rows: int = 0
    identical_duplicates: int = 0
    torn_lines: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "identical_duplicates": self.identical_duplicates, "torn_lines": self.torn_lines}


def merge(inputs: Iterable[str | Path], output: str | Path) -> MergeReport:
    """Merge shard prediction files into one file (rows sorted by question id).

    The same id in two shards with identical content is kept once and counted; with different content it is a
    DataError naming both files. Writing goes through a temporary file so a crash never leaves a half-merged file.
    """
    merged: dict[str, tuple[PredictionRow, str]] = {}
    report = MergeReport()
    input_paths = [Path(p) for p in inputs]
    if not input_paths:
        raise ConfigError("merge needs at least one input prediction file")
    output = Path(output)
    if any(p.resolve() == output.resolve() for p in input_paths):
        raise ConfigError(f"merge output {output} is also one of the inputs")
    for path in input_paths:
        rows, read_report = read_predictions(path)
        report.torn_lines += int(read_report.torn_last_line)
        for qid, row in rows.items():
            if qid in merged:
                previous, previous_file = merged[qid]
                if _canonical(previous) != _canonical(row):
                    raise DataError(f"conflicting predictions for the same question id (also in {previous_file})",
                                    file=str(path), record=qid, field="question_id")
                report.identical_duplicates += 1
                continue
            merged[qid] = (row, str(path))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "wb") as handle:
        for qid in sorted(merged):
            handle.write(json.dumps(merged[qid][0].to_json(), separators=(",", ":")).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, output)
    report.rows = len(merged)
    return report


# ---------------------------------------------------------------------------------------------------------------
# Sharding
# ---------------------------------------------------------------------------------------------------------------


def parse_shard(spec: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0-based shard i of n)."""
    try:
        index_text, count_text = spec.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError as exc:
        raise ConfigError(f"--shard expects 'i/n' with integers (e.g. 0/4), got {spec!r}") from exc
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {spec!r}: need 0 <= i < n and n >= 1")
    return index, count


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) from a torch.distributed launch (torchrun), or None when not launched that way."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        rank, world = int(env.get("RANK", "0")), int(env["WORLD_SIZE"])
    except ValueError as exc:
        raise ConfigError(f"RANK/WORLD_SIZE must be integers, got {env.get('RANK')!r}/{env.get('WORLD_SIZE')!r}") from exc
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return rank, world


def shard_of(question_id: str, num_shards: int) -> int:
    """Deterministic shard of a question id (stable across processes and Python versions)."""
    digest = hashlib.sha1(question_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def shard_path(path: str | Path, index: int, count: int) -> Path:
    """File a shard writes to: ``preds.jsonl`` → ``preds.shard-0-of-4.jsonl`` (unchanged when count == 1)."""
    path = Path(path)
    if count == 1:
        return path
    return path.with_name(f"{path.stem}.shard-{index}-of-{count}{path.suffix or '.jsonl'}")


# ---------------------------------------------------------------------------------------------------------------
# Validation against the questions
# ---------------------------------------------------------------------------------------------------------------


def rle_problem(rle: Any, height: int, width: int) -> str | None:
    """Why ``rle`` is not a valid (height, width) COCO RLE, or None if it is (structure via ``check_rle``)."""
    try:
        size = check_rle(rle)
    except ValueError as exc:
        return f"invalid RLE ({exc})"
    if size != (height, width):
        return f"mask size {list(size)} does not match the video frame size [{height}, {width}]"
    return None


@dataclass(frozen=True)
class ExpectedShape:
    """What a question's prediction masks must look like: frame count and frame size."""

    num_frames: int
    height: int
    width: int


def prediction_problems(row: PredictionRow, expected: ExpectedShape) -> list[str]:
    """All problems of one prediction's masks (wrong frame count, wrong size, invalid RLE); empty when valid."""
    problems: list[str] = []
    for seg_index, per_frame in enumerate(row.masks):
        if len(per_frame) != expected.num_frames:
            problems.append(f"[SEG] {seg_index}: {len(per_frame)} frame masks, expected {expected.num_frames} "
                            "(one per video frame, null for empty)")
            continue
        for frame_index, rle in enumerate(per_frame):
            if rle is None:
                continue
            problem = rle_problem(rle, expected.height, expected.width)
            if problem:
                problems.append(f"[SEG] {seg_index} frame {frame_index}: {problem}")
                break  # one message per [SEG] is enough
    return problems


@dataclass
class ValidationReport:
    """Outcome of checking predictions against the questions (lenient mode counts instead of raising)."""

    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"missing": len(self.missing), "unknown": len(self.unknown), "invalid": len(self.invalid),
                "examples": {"missing": self.missing[:5], "unknown": self.unknown[:5],
                             "invalid": {k: v[:2] for k, v in list(self.invalid.items())[:5]}}}


def validate_predictions(
    rows: Mapping[str, PredictionRow],
    expected: Mapping[str, ExpectedShape | None],
    *,
    lenient: bool = False,
    file: str | None = None,
) -> ValidationReport:
    """Check predictions against the questions they answer.

    ``expected`` maps every question id to the mask shape its prediction must have (None: text only, masks not
    checked). Unknown ids, missing predictions and malformed masks raise DataError naming the question id; in
    lenient mode they are collected in the report (the caller excludes them and reports the counts — they are never
    silently scored 0).
    """
    report = ValidationReport()
    for qid in sorted(rows):
        if qid not in expected:
            if not lenient:
                raise DataError("prediction for a question id that is not in the benchmark", file=file, record=qid,
                                field="question_id")
            report.unknown.append(qid)
            continue
        shape = expected[qid]
        if shape is None:
            continue
        problems = prediction_problems(rows[qid], shape)
        if problems:
            if not lenient:
                raise DataError("; ".join(problems), file=file, record=qid, field="masks")
            report.invalid[qid] = problems
    missing = sorted(set(expected) - set(rows))
    if missing and not lenient:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"no prediction for question id {missing[0]!r}{more}; run the model on them or pass "
                        "--lenient to score only the predicted ones", file=file, record=missing[0], field="question_id")
    report.missing = missing
    return report
