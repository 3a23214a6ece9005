"""Readers for referring video object segmentation splits: MeViS, Ref-YouTube-VOS, Ref-DAVIS17 and ReVOS.

All four use a ``meta_expressions*.json`` of the form (METRICS.md §3-§5)::

    {"videos": {video_id: {"frames": [stem, ...],
                           "expressions": {exp_id: {"exp": text, "anno_id": [id, ...], "obj_id": id | [id, ...]}}}}}

ReVOS (``meta_expressions_valid_.json``) adds ``type_id`` per expression (0 referring, 1 reason, 2 unused) and
``height``/``width``. Ground truth lives in a mask dictionary ``{str(anno_id): [RLE | None per frame]}``; the GT of an
expression is the union of its ``anno_id`` masks (METRICS.md §3). ReVOS's ``mask_dict_foreground.json``
(``{video_id: {"masks_rle": [...]}}``) loads with ``MaskDict.load`` as is.

Validation follows ``sama.data.schema``: strict mode raises ``DataError`` naming the file, video, expression and
field; lenient mode drops the bad video/expression and reports it (``.report``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sama.data.masks import MaskDict
from sama.data.schema import Issue, ObjectId, ValidationReport
from sama.errors import DataError

RVOS_DATASETS: tuple[str, ...] = ("mevis", "ref_ytvos", "ref_davis", "revos")
REVOS_TYPE_IDS: dict[int, str] = {0: "referring", 1: "reason", 2: "unused"}  # METRICS.md §5


@dataclass
class RvosExpression:
    """One referring expression of a video."""

    video_id: str
    exp_id: str
    expression: str
    anno_ids: list[ObjectId] = field(default_factory=list)
    obj_ids: list[ObjectId] = field(default_factory=list)
    type_id: int | None = None

    @property
    def question_id(self) -> str:
        """``"<video_id>/<exp_id>"``, the prediction-store key of RVOS benchmarks (DESIGN.md, Predictions JSONL)."""
        return f"{self.video_id}/{self.exp_id}"


@dataclass
class RvosVideo:
    """A video of an RVOS split: its frame stems and expressions (ReVOS also gives the frame size)."""

    video_id: str
    frames: list[str]
    expressions: list[RvosExpression] = field(default_factory=list)
    height: int | None = None
    width: int | None = None


class RvosSplit(list[RvosVideo]):
    """The videos of a split, with the ``ValidationReport`` of the load as ``.report``."""

    def __init__(self, videos: list[RvosVideo], report: ValidationReport, dataset: str) -> None:
        super().__init__(videos)
        self.report = report
        self.dataset = dataset

    def expressions(self) -> Iterator[RvosExpression]:
        for video in self:
            yield from video.expressions


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _id_list(value: Any) -> list[ObjectId] | None:
    """A scalar id or a list of ids as a list; ``None`` when the value is not ids."""
    values = value if isinstance(value, list) else [value]
    if all(_is_int(v) or (isinstance(v, str) and v != "") for v in values):
        return list(values)
    return None


class _RvosValidator:
    """Applies the reader rules, raising (strict) or recording issues (lenient)."""

    def __init__(self, source: str, dataset: str, strict: bool, mask_dict: MaskDict | None) -> None:
        self.source, self.dataset, self.strict, self.mask_dict = source, dataset, strict, mask_dict
        self.report = ValidationReport(file=source, units=("videos", "expressions"))

    def issue(self, rule: str, message: str, video: str, field_name: str, action: str) -> None:
        found = Issue(rule, message, self.source, video, None, field_name, action)
        if self.strict:
            raise found.to_error()
        self.report.issues.append(found)

    def video(self, video_id: str, raw: Any) -> RvosVideo | None:
        self.report.records_total += 1
        if not isinstance(raw, Mapping):
            self.issue(
                "field_type", f"expected an object, got {type(raw).__name__}", video_id, "videos", "video dropped"
            )
            return None
        frames = raw.get("frames")
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) and f for f in frames):
            self.issue("field_type", "expected a non-empty list of frame stems", video_id, "frames", "video dropped")
            return None
        expressions = raw.get("expressions")
        if not isinstance(expressions, Mapping):
            self.issue("missing_field", "expected an 'expressions' object", video_id, "expressions", "video dropped")
            return None
        height, width = raw.get("height"), raw.get("width")
        if self.dataset == "revos" or height is not None or width is not None:
            for name, value in (("height", height), ("width", width)):
                if not _is_int(value) or value <= 0:
                    self.issue("field_type", f"expected a positive int, got {value!r}", video_id, name, "video dropped")
                    return None
        video = RvosVideo(video_id=video_id, frames=list(frames), height=height, width=width)
        for exp_id in sorted(expressions, key=str):  # sorted expression ids, as the release (METRICS.md §2b)
            self.report.turns_total += 1
            parsed = self.expression(video, str(exp_id), expressions[exp_id])
            if parsed is not None:
                video.expressions.append(parsed)
                self.report.turns_kept += 1
        self.report.records_kept += 1
        return video

    def expression(self, video: RvosVideo, exp_id: str, raw: Any) -> RvosExpression | None:
        where = f"expressions.{exp_id}"

        def drop(rule: str, message: str, name: str) -> None:
            self.issue(rule, message, video.video_id, f"{where}.{name}" if name else where, "expression dropped")

        if not isinstance(raw, Mapping):
            drop("field_type", f"expected an object, got {type(raw).__name__}", "")
            return None
        text = raw.get("exp")
        if not isinstance(text, str) or not text.strip():
            drop("missing_field", f"expected a non-empty 'exp' string, got {text!r}", "exp")
            return None
        anno_ids = _id_list(raw.get("anno_id", []))
        obj_ids = _id_list(raw.get("obj_id", []))
        if anno_ids is None:
            drop("field_type", f"expected an id or a list of ids, got {raw.get('anno_id')!r}", "anno_id")
            return None
        if obj_ids is None:
            drop("field_type", f"expected an id or a list of ids, got {raw.get('obj_id')!r}", "obj_id")
            return None
        type_id = raw.get("type_id")
        if self.dataset == "revos" and (not _is_int(type_id) or type_id not in REVOS_TYPE_IDS):
            drop("field_type", f"expected type_id in {sorted(REVOS_TYPE_IDS)}, got {type_id!r}", "type_id")
            return None
        if self.mask_dict is not None:
            for anno_id in anno_ids:
                if anno_id not in self.mask_dict:
                    drop("unknown_object", f"anno_id {anno_id!r} is not in the mask dictionary", "anno_id")
                    return None
                if self.mask_dict.num_frames(anno_id) > len(video.frames):
                    drop(
                        "mask_list_length",
                        f"anno_id {anno_id!r} has {self.mask_dict.num_frames(anno_id)} mask frames for "
                        f"{len(video.frames)} frames",
                        "anno_id",
                    )
                    return None
        return RvosExpression(video.video_id, exp_id, text.strip(), anno_ids, obj_ids, type_id)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError("meta expressions file not found", file=str(path))
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"not a UTF-8 JSON file ({exc.reason})", file=str(path)) from exc


def load_meta_expressions(
    path: str | Path,
    dataset: str = "mevis",
    *,
    strict: bool = True,
    mask_dict: MaskDict | str | Path | None = None,
    allow_pickle: bool = False,
    sequential_anno_ids: bool = False,
) -> RvosSplit:
    """Read a ``meta_expressions*.json`` of ``dataset`` (one of ``RVOS_DATASETS``).

    Args:
        mask_dict: GT masks (or their path); when given, every ``anno_id`` must be in it.
        sequential_anno_ids: number the expressions 0, 1, … in sorted video id and sorted expression id order and
            use that as the single ``anno_id`` (the SAMA Ref-DAVIS17 script, METRICS.md §2b).
    """
    if dataset not in RVOS_DATASETS:
        raise DataError(f"unknown RVOS dataset {dataset!r}; expected one of {list(RVOS_DATASETS)}", field="dataset")
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("videos"), Mapping):
        raise DataError("expected an object with a 'videos' mapping {video_id: {frames, expressions}}", file=str(path))
    if mask_dict is not None and not isinstance(mask_dict, MaskDict):
        mask_dict = MaskDict.load(mask_dict, allow_pickle=allow_pickle)
    validator = _RvosValidator(str(path), dataset, strict, None if sequential_anno_ids else mask_dict)
    videos = [
        video
        for video_id in sorted(data["videos"], key=str)
        if (video := validator.video(str(video_id), data["videos"][video_id])) is not None
    ]
    split = RvosSplit(videos, validator.report, dataset)
    if sequential_anno_ids:
        for counter, expression in enumerate(split.expressions()):
            expression.anno_ids = [counter]
        if mask_dict is not None:
            missing = [e for e in split.expressions() if e.anno_ids[0] not in mask_dict]
            if missing:
                raise DataError(
                    f"{len(missing)} sequential anno_ids are not in the mask dictionary, first {missing[0].question_id}"
                    f" → {missing[0].anno_ids[0]}",
                    file=str(path),
                )
    return split


def load_revos(
    meta_path: str | Path, *, strict: bool = True, mask_dict: MaskDict | str | Path | None = None
) -> RvosSplit:
    """Read ReVOS ``meta_expressions_{train,valid}_.json`` (``type_id``, ``height``, ``width`` required)."""
    return load_meta_expressions(meta_path, "revos", strict=strict, mask_dict=mask_dict)


def expression_masks(
    mask_dict: MaskDict, expression: RvosExpression, num_frames: int, height: int, width: int
) -> np.ndarray:
    """(T, H, W) bool ground truth of an expression: the union of its ``anno_id`` masks (METRICS.md §3)."""
    return mask_dict.volume(expression.anno_ids, num_frames, height, width)
