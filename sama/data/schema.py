"""SAMA-239K / SAMA-Bench record format: typed records, their validation, and the shared text conventions.

A JSON file is a list of per-video records with the official field names (SAMA.md §3.2). ``load_records`` turns it
into ``VideoRecord`` objects whose ``turns`` hold the human/gpt pairs that pass the loader rules:

========================  ==================================================================================
rule                      meaning (strict mode raises ``DataError``; lenient mode applies the action)
========================  ==================================================================================
``record_type``           a record that is not a JSON object → record dropped
``missing_field``         a required field is absent → record dropped
``field_type``            a field of the wrong type/value (height/width not positive ints, …) → record dropped
``turn_role``             a pair that is not (human, gpt) or has a non-string value → turn dropped
``odd_conversation``      an odd-length conversation: the last message is dropped (official behaviour)
``mask_count``            ``question.count("<mask>") != len(obj_masks[t])`` → turn dropped (official)
``seg_count``             non-empty ``groundtruth[t]`` entries ``!= answer.count("[SEG]")`` → turn dropped (official)
``unknown_object``        an object id missing from the mask dictionary → turn dropped (``anno_map``: set to -1)
``mask_list_length``      an object's mask list is longer than ``frames`` → turn dropped
``description_key``       a ``description`` key that is not ``objN`` with a valid ``anno_map[N]`` → entry dropped
``duplicate_question_id`` a ``question_id`` already used in the file → turn dropped
========================  ==================================================================================

Lenient mode is the official behaviour (drop and continue); every drop is counted and listed in the
``ValidationReport`` attached to the result (``records.report``). A mask list *shorter* than ``frames`` is legal
(missing frames are empty, SAMA.md §3.3) and is reported as a warning (rule ``short_mask_list``) only; so is an
``obj_masks``/``groundtruth`` list whose length differs from the number of turns (rule ``per_turn_length``).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sama.data.masks import MaskDict
from sama.errors import DataError

# --- text conventions (SAMA.md §1.1 special tokens; DESIGN.md "Text conventions") ---------------------------------
SEG_TOKEN = "[SEG]"
P_START = "<p>"
P_END = "</p>"
VP_START = "<vp>"
VP_END = "</vp>"
MASK_TOKEN = "<mask>"
# Legacy forms in the training data, rewritten before use (SAMA.md §1.1, §3.2).
LEGACY_ALIASES: dict[str, str] = {"<seg>": SEG_TOKEN, "<g_s>": P_START, "<g_e>": P_END}
# METRICS.md §7.1: substrings removed by the cleaning step, then whitespace collapsed.
CLEAN_REMOVE: tuple[str, ...] = (P_START, P_END, SEG_TOKEN, "<|im_end|>", "<s>", "<|end|>")
_PHRASE_PATTERN = re.compile(r"<p>(.*?)</p>", flags=re.DOTALL)  # METRICS.md §7.1
_DESCRIPTION_KEY = re.compile(r"^obj(\d+)$")  # SAMA.md §3.2: caption keys objN index anno_map

HUMAN, GPT = "human", "gpt"
# ``video_id`` is optional (defaults to the last path part of ``video``); the per-turn lists default to empty.
REQUIRED_FIELDS: tuple[str, ...] = ("video", "height", "width", "frames", "conversation")
SKIPPED_ANNO_ID = -1  # SAMA.md §3.2: anno_map entries -1 are skipped
# Source datasets inferred from the ``video`` path by substring (SAMA.md §3.2).
SOURCE_DATASETS: tuple[str, ...] = ("mevis", "lvvis", "ref_youtube_vos", "VidSTG", "sav")
LVVIS_FOLDER_WIDTH = 5  # SAMA.md §3.1: all-digit LV-VIS folder names are zero-padded to 5 characters

ObjectId = int | str


def normalize_aliases(text: str) -> str:
    """Rewrite the legacy ``<seg>``, ``<g_s>``, ``<g_e>`` to ``[SEG]``, ``<p>``, ``</p>``."""
    for legacy, canonical in LEGACY_ALIASES.items():
        text = text.replace(legacy, canonical)
    return text


def extract_phrases(text: str) -> list[str]:
    """Grounded phrases of a text: ``<p>(.*?)</p>`` matches, stripped and lower-cased (METRICS.md §7.1)."""
    return [match.strip().lower() for match in _PHRASE_PATTERN.findall(text)]


def clean_text(text: str) -> str:
    """Remove ``<p>``, ``</p>``, ``[SEG]``, ``<|im_end|>``, ``<s>``, ``<|end|>``; collapse whitespace (METRICS.md §7.1).

    Aliases are not rewritten here: call ``normalize_aliases`` first for ground-truth text.
    """
    for token in CLEAN_REMOVE:
        text = text.replace(token, "")
    return re.sub(r"\s+", " ", text).strip()


def frame_stem(entry: str | Mapping[str, Any]) -> str:
    """Stem of a ``frames`` entry: a stem string, or a VidSTG ``{"raw_filename": "frame_0.jpg"}`` dict."""
    if isinstance(entry, Mapping):
        return os.path.splitext(str(entry["raw_filename"]))[0]
    return entry


# --- records -----------------------------------------------------------------------------------------------------


@dataclass
class Turn:
    """One kept human/gpt pair of a record (aliases normalised).

    Attributes:
        question: the human text, one ``<mask>`` per referred object.
        answer: the gpt text with ``<p> phrase </p> [SEG]``.
        obj_masks: one object id per ``<mask>``, in order.
        groundtruth: one id list per ``groundtruth`` entry (OR-ed); empty lists are kept as in the file.
        turn_index: position of the pair in the original conversation (``conversation[2*i], [2*i+1]``).
        question_id: SAMA-Bench question id from the human message, if any.
    """

    question: str
    answer: str
    obj_masks: list[ObjectId] = field(default_factory=list)
    groundtruth: list[list[ObjectId]] = field(default_factory=list)
    turn_index: int = 0
    question_id: str | None = None

    @property
    def seg_groundtruth(self) -> list[list[ObjectId]]:
        """The non-empty ``groundtruth`` entries: one per ``[SEG]`` in ``answer``, in order."""
        return [ids for ids in self.groundtruth if ids]

    @property
    def phrases(self) -> list[str]:
        """Grounded phrases of the answer (METRICS.md §7.1)."""
        return extract_phrases(self.answer)


@dataclass
class VideoRecord:
    """One per-video record with the official field names (SAMA.md §3.2) plus the parsed, kept ``turns``."""

    video: str
    video_id: str
    height: int
    width: int
    frames: list[str]
    conversation: list[dict[str, Any]]
    anno_map: list[ObjectId] = field(default_factory=list)
    obj_masks: list[list[ObjectId]] = field(default_factory=list)
    groundtruth: list[list[list[ObjectId]]] = field(default_factory=list)
    description: dict[str, str] = field(default_factory=dict)
    description_id: dict[str, Any] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    record_index: int = 0

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def source_dataset(self) -> str:
        """Source dataset inferred from ``video`` by substring (``mevis``, ``lvvis``, …), else ``"unknown"``."""
        return next((name for name in SOURCE_DATASETS if name in self.video), "unknown")

    def frame_folder(self, root: str | Path) -> Path:
        """Folder holding this video's frames under ``root`` (LV-VIS digit folders zero-padded, SAMA.md §3.1)."""
        path = Path(self.video)
        if self.source_dataset == "lvvis" and path.name.isdigit():
            path = path.with_name(path.name.zfill(LVVIS_FOLDER_WIDTH))
        return Path(root) / path

    def description_objects(self) -> dict[str, ObjectId]:
        """``{objN: anno_map[N]}`` for every description key (already validated)."""
        out: dict[str, ObjectId] = {}
        for key in self.description:
            match = _DESCRIPTION_KEY.match(key)
            if match:
                out[key] = self.anno_map[int(match.group(1))]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The record in the official JSON form (without the parsed ``turns``)."""
        out: dict[str, Any] = {
            "video": self.video,
            "video_id": self.video_id,
            "height": self.height,
            "width": self.width,
            "frames": list(self.frames),
            "anno_map": list(self.anno_map),
            "conversation": [dict(message) for message in self.conversation],
            "obj_masks": [list(ids) for ids in self.obj_masks],
            "groundtruth": [[list(ids) for ids in entries] for entries in self.groundtruth],
        }
        if self.description:
            out["description"] = dict(self.description)
        if self.description_id:
            out["description_id"] = dict(self.description_id)
        return out


# --- validation report -------------------------------------------------------------------------------------------


@dataclass
class Issue:
    """One rule violation: where it is, what was expected, and what lenient mode did about it."""

    rule: str
    message: str
    file: str | None = None
    record: int | str | None = None
    turn: int | None = None
    field: str | None = None
    action: str = ""
    severity: str = "error"

    def to_error(self) -> DataError:
        return DataError(self.message, file=self.file, record=self.record, turn=self.turn, field=self.field)

    def __str__(self) -> str:
        suffix = f" [{self.action}]" if self.action else ""
        return f"{self.rule}: {self.to_error()}{suffix}"


@dataclass
class ValidationReport:
    """Counts and lists every issue found while loading a file (lenient mode) — nothing is skipped silently."""

    file: str | None = None
    records_total: int = 0
    records_kept: int = 0
    turns_total: int = 0
    turns_kept: int = 0
    issues: list[Issue] = field(default_factory=list)
    units: tuple[str, str] = ("records", "turns")  # what records/turns are called in the summary (RVOS: videos)

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no error-level issue was found (warnings allowed)."""
        return not self.errors

    def counts_by_rule(self) -> dict[str, int]:
        return dict(sorted(Counter(issue.rule for issue in self.issues).items()))

    def summary(self, max_issues: int = 20) -> str:
        """Human-readable report: totals, counts per rule, then the first ``max_issues`` issues."""
        lines = [
            f"file: {self.file}",
            f"{self.units[0]}: {self.records_kept}/{self.records_total} kept",
            f"{self.units[1]}: {self.turns_kept}/{self.turns_total} kept",
            f"issues: {len(self.errors)} errors, {len(self.warnings)} warnings",
        ]
        for rule, count in self.counts_by_rule().items():
            lines.append(f"  {rule}: {count}")
        for issue in self.issues[:max_issues]:
            lines.append(f"- {issue}")
        if len(self.issues) > max_issues:
            lines.append(f"... and {len(self.issues) - max_issues} more")
        return "\n".join(lines)


class LoadedRecords(list[VideoRecord]):
    """A list of ``VideoRecord`` with the ``ValidationReport`` of the load attached as ``.report``."""

    def __init__(self, records: Iterable[VideoRecord], report: ValidationReport) -> None:
        super().__init__(records)
        self.report = report


# --- loading -----------------------------------------------------------------------------------------------------


class _RecordDropped(Exception):
    """Internal: stop parsing the current record (lenient mode)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_object_id(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, str) and value != "")


class _Validator:
    """Applies the loader rules to raw records, raising (strict) or recording issues (lenient)."""

    def __init__(self, source: str | None, strict: bool, mask_dict: MaskDict | None) -> None:
        self.source, self.strict, self.mask_dict = source, strict, mask_dict
        self.report = ValidationReport(file=source)
        self.question_ids: dict[str, tuple[int, int]] = {}

    def issue(
        self,
        rule: str,
        message: str,
        *,
        record: int,
        turn: int | None = None,
        field: str | None = None,
        action: str = "",
        severity: str = "error",
    ) -> None:
        found = Issue(rule, message, self.source, record, turn, field, action, severity)
        if self.strict and severity == "error":
            raise found.to_error()
        self.report.issues.append(found)

    def drop_record(self, rule: str, message: str, *, record: int, field: str | None = None) -> _RecordDropped:
        self.issue(rule, message, record=record, field=field, action="record dropped")
        return _RecordDropped()

    # -- record level --
    def parse(self, raw: Any, index: int) -> VideoRecord | None:
        self.report.records_total += 1
        try:
            record = self._parse_record(raw, index)
        except _RecordDropped:
            return None
        self.report.records_kept += 1
        return record

    def _parse_record(self, raw: Any, index: int) -> VideoRecord:
        if not isinstance(raw, Mapping):
            raise self.drop_record("record_type", f"expected a JSON object, got {type(raw).__name__}", record=index)
        for name in REQUIRED_FIELDS:
            if name not in raw:
                raise self.drop_record("missing_field", f"required field {name!r} is missing", record=index, field=name)
        video = raw["video"]
        if not isinstance(video, str) or not video:
            raise self.drop_record(
                "field_type", f"expected a non-empty string, got {video!r}", record=index, field="video"
            )
        for name in ("height", "width"):
            if not _is_int(raw[name]) or raw[name] <= 0:
                raise self.drop_record(
                    "field_type", f"expected a positive int, got {raw[name]!r}", record=index, field=name
                )
        frames = self._frames(raw["frames"], index)
        video_id = raw.get("video_id", Path(video).name)
        if not isinstance(video_id, (str, int)) or isinstance(video_id, bool):
            raise self.drop_record("field_type", f"expected a string, got {video_id!r}", record=index, field="video_id")
        conversation = raw["conversation"]
        if not isinstance(conversation, list):
            raise self.drop_record(
                "field_type",
                f"expected a list of messages, got {type(conversation).__name__}",
                record=index,
                field="conversation",
            )
        obj_masks = self._per_turn_list(raw.get("obj_masks", []), index, "obj_masks", depth=1)
        groundtruth = self._per_turn_list(raw.get("groundtruth", []), index, "groundtruth", depth=2)
        anno_map = self._anno_map(raw.get("anno_map", []), index, len(frames))
        description = raw.get("description") if raw.get("description") is not None else {}
        description_id = raw.get("description_id") if raw.get("description_id") is not None else {}
        for name, value in (("description", description), ("description_id", description_id)):
            if not isinstance(value, Mapping):
                raise self.drop_record(
                    "field_type",
                    f"expected an object {{objN: ...}}, got {type(value).__name__}",
                    record=index,
                    field=name,
                )
        record = VideoRecord(
            video=video,
            video_id=str(video_id),
            height=raw["height"],
            width=raw["width"],
            frames=frames,
            conversation=[dict(m) if isinstance(m, Mapping) else m for m in conversation],
            anno_map=anno_map,
            obj_masks=obj_masks,
            groundtruth=groundtruth,
            description=self._descriptions(description, anno_map, index),
            description_id=dict(description_id),
            record_index=index,
        )
        record.turns = self._turns(record, index)
        return record

    def _frames(self, frames: Any, index: int) -> list[str]:
        if not isinstance(frames, list):
            raise self.drop_record(
                "field_type",
                f"expected a list of frame stems, got {type(frames).__name__}",
                record=index,
                field="frames",
            )
        stems: list[str] = []
        for position, entry in enumerate(frames):
            valid = (isinstance(entry, str) and entry) or (
                isinstance(entry, Mapping) and isinstance(entry.get("raw_filename"), str) and entry["raw_filename"]
            )
            if not valid:
                raise self.drop_record(
                    "field_type",
                    f"frame {position}: expected a stem string or {{'raw_filename': str}}, got {entry!r}",
                    record=index,
                    field="frames",
                )
            stems.append(frame_stem(entry))
        return stems

    def _per_turn_list(self, value: Any, index: int, name: str, depth: int) -> list[Any]:
        """``obj_masks`` (list of id lists) or ``groundtruth`` (list of lists of id lists)."""

        def valid(item: Any, level: int) -> bool:
            if level == 0:
                return _is_object_id(item)
            return isinstance(item, list) and all(valid(sub, level - 1) for sub in item)

        if not isinstance(value, list):
            raise self.drop_record(
                "field_type",
                f"expected a list with one entry per turn, got {type(value).__name__}",
                record=index,
                field=name,
            )
        for turn, item in enumerate(value):
            if not valid(item, depth):
                shape = "a list of object ids" if depth == 1 else "a list of object-id lists (one per [SEG])"
                raise self.drop_record(
                    "field_type", f"turn {turn}: expected {shape}, got {item!r}", record=index, field=name
                )
        return value

    def _anno_map(self, value: Any, index: int, num_frames: int) -> list[ObjectId]:
        if not isinstance(value, list) or not all(_is_object_id(v) for v in value):
            raise self.drop_record(
                "field_type",
                f"expected a list of object ids (-1 = none), got {value!r}",
                record=index,
                field="anno_map",
            )
        anno_map = list(value)
        for position, obj_id in enumerate(anno_map):
            if obj_id == SKIPPED_ANNO_ID:
                continue
            problem = self._object_problem(obj_id, num_frames)
            if problem:
                rule, message = problem
                self.issue(rule, message, record=index, field=f"anno_map[{position}]", action="set to -1")
                anno_map[position] = SKIPPED_ANNO_ID
        return anno_map

    def _descriptions(self, description: Mapping[str, Any], anno_map: list[ObjectId], index: int) -> dict[str, str]:
        kept: dict[str, str] = {}
        for key, text in description.items():
            match = _DESCRIPTION_KEY.match(str(key))
            if not isinstance(text, str):
                message = f"expected a caption string, got {type(text).__name__}"
            elif not match:
                message = "expected a key of the form objN"
            elif int(match.group(1)) >= len(anno_map):
                message = f"anno_map has {len(anno_map)} entries, no index {match.group(1)}"
            elif anno_map[int(match.group(1))] == SKIPPED_ANNO_ID:
                message = f"anno_map[{match.group(1)}] is -1 (no object)"
            else:
                kept[str(key)] = text
                continue
            self.issue("description_key", message, record=index, field=f"description.{key}", action="entry dropped")
        return kept

    def _object_problem(self, obj_id: ObjectId, num_frames: int) -> tuple[str, str] | None:
        """(rule, message) when ``obj_id`` cannot be used with the mask dictionary; warnings are recorded here."""
        if self.mask_dict is None:
            return None
        if obj_id not in self.mask_dict:
            return "unknown_object", f"object id {obj_id!r} is not in the mask dictionary {self.mask_dict.source}"
        length = self.mask_dict.num_frames(obj_id)
        if length > num_frames:
            return "mask_list_length", f"object {obj_id!r} has {length} mask frames but the record has {num_frames}"
        return None

    # -- turn level --
    def _turns(self, record: VideoRecord, index: int) -> list[Turn]:
        messages = record.conversation
        if len(messages) % 2:
            self.issue(
                "odd_conversation",
                f"{len(messages)} messages: expected human/gpt pairs; last one dropped",
                record=index,
                field="conversation",
                action="last message dropped",
            )
        for name, entries in (("obj_masks", record.obj_masks), ("groundtruth", record.groundtruth)):
            if entries and len(entries) != len(messages) // 2:
                self.issue(
                    "per_turn_length",
                    f"{len(entries)} entries for {len(messages) // 2} turns (missing entries count as empty)",
                    record=index,
                    field=name,
                    severity="warning",
                )
        turns: list[Turn] = []
        for turn_index in range(len(messages) // 2):
            self.report.turns_total += 1
            turn = self._turn(record, index, turn_index)
            if turn is not None:
                turns.append(turn)
                self.report.turns_kept += 1
        return turns

    def _turn(self, record: VideoRecord, index: int, t: int) -> Turn | None:
        human, gpt = record.conversation[2 * t], record.conversation[2 * t + 1]

        def drop(rule: str, message: str, field_name: str) -> None:
            self.issue(rule, message, record=index, turn=t, field=field_name, action="turn dropped")

        for expected, message, position in ((HUMAN, human, 2 * t), (GPT, gpt, 2 * t + 1)):
            if (
                not isinstance(message, Mapping)
                or message.get("from") != expected
                or not isinstance(message.get("value"), str)
            ):
                got = message.get("from") if isinstance(message, Mapping) else type(message).__name__
                drop(
                    "turn_role",
                    f"expected a {expected!r} message with a string 'value', got {got!r}",
                    f"conversation[{position}]",
                )
                return None
        question, answer = normalize_aliases(human["value"]), normalize_aliases(gpt["value"])
        obj_ids = record.obj_masks[t] if t < len(record.obj_masks) else []
        groundtruth = record.groundtruth[t] if t < len(record.groundtruth) else []
        if question.count(MASK_TOKEN) != len(obj_ids):
            drop(
                "mask_count",
                f"question has {question.count(MASK_TOKEN)} {MASK_TOKEN} but obj_masks[{t}] lists "
                f"{len(obj_ids)} objects",
                f"obj_masks[{t}]",
            )
            return None
        seg_entries = sum(1 for ids in groundtruth if ids)
        if answer.count(SEG_TOKEN) != seg_entries:
            drop(
                "seg_count",
                f"answer has {answer.count(SEG_TOKEN)} {SEG_TOKEN} but groundtruth[{t}] has "
                f"{seg_entries} non-empty entries",
                f"groundtruth[{t}]",
            )
            return None
        for field_name, ids in [(f"obj_masks[{t}]", obj_ids)] + [
            (f"groundtruth[{t}][{k}]", entry) for k, entry in enumerate(groundtruth)
        ]:
            for obj_id in ids:
                problem = self._object_problem(obj_id, record.num_frames)
                if problem:
                    drop(problem[0], problem[1], field_name)
                    return None
        if self.mask_dict is not None:
            for obj_id in {*obj_ids, *(i for entry in groundtruth for i in entry)}:
                length = self.mask_dict.num_frames(obj_id)
                if length < record.num_frames:
                    self.issue(
                        "short_mask_list",
                        f"object {obj_id!r} has {length} mask frames for "
                        f"{record.num_frames} frames; the rest are empty",
                        record=index,
                        turn=t,
                        severity="warning",
                    )
        question_id = human.get("question_id")
        if question_id is not None:
            if not isinstance(question_id, (str, int)) or isinstance(question_id, bool):
                drop(
                    "field_type",
                    f"expected a string question_id, got {question_id!r}",
                    f"conversation[{2 * t}].question_id",
                )
                return None
            question_id = str(question_id)
            if question_id in self.question_ids:
                first_record, first_turn = self.question_ids[question_id]
                drop(
                    "duplicate_question_id",
                    f"question_id {question_id!r} already used by record {first_record} turn {first_turn}",
                    f"conversation[{2 * t}].question_id",
                )
                return None
            self.question_ids[question_id] = (index, t)
        return Turn(
            question=question,
            answer=answer,
            obj_masks=list(obj_ids),
            groundtruth=[list(ids) for ids in groundtruth],
            turn_index=t,
            question_id=question_id,
        )


def parse_records(
    data: Any, *, source: str | None = None, strict: bool = True, mask_dict: MaskDict | None = None
) -> LoadedRecords:
    """Validate an in-memory list of raw records (see the module docstring for the rules)."""
    if not isinstance(data, list):
        raise DataError(f"expected a JSON list of video records, got {type(data).__name__}", file=source)
    validator = _Validator(source, strict, mask_dict)
    records = [record for index, raw in enumerate(data) if (record := validator.parse(raw, index)) is not None]
    return LoadedRecords(records, validator.report)


def load_records(
    path: str | Path,
    strict: bool = True,
    mask_dict: MaskDict | str | Path | None = None,
    *,
    allow_pickle: bool = False,
) -> LoadedRecords:
    """Load and validate a SAMA-239K / SAMA-Bench JSON file.

    Args:
        path: the JSON list of records.
        strict: raise ``DataError`` on the first violation (file, record index, turn, field, expectation);
            otherwise drop what the official loader drops and report it in ``result.report``.
        mask_dict: a ``MaskDict`` or its path; when given, every object id must be in it and its mask list must not
            be longer than ``frames``.
        allow_pickle: passed to ``MaskDict.load`` when ``mask_dict`` is a pickle path.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("records file not found", file=str(path))
    try:
        with path.open("r", encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not a UTF-8 JSON file ({exc.reason})", file=str(path)) from exc
    if mask_dict is not None and not isinstance(mask_dict, MaskDict):
        mask_dict = MaskDict.load(mask_dict, allow_pickle=allow_pickle)
    return parse_records(data, source=str(path), strict=strict, mask_dict=mask_dict)


def iter_object_ids(turns: Sequence[Turn]) -> list[ObjectId]:
    """Every object id referenced by ``turns`` (prompts and ground truth), first-seen order, no repeats."""
    seen: dict[ObjectId, None] = {}
    for turn in turns:
        for obj_id in (*turn.obj_masks, *(i for ids in turn.groundtruth for i in ids)):
            seen.setdefault(obj_id, None)
    return list(seen)
