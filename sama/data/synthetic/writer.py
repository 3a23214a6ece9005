"""Dataset writer: simulate N scenes and write them in the official SAMA-239K / SAMA-Bench / MeViS layouts.

Output folder (``generate_dataset``)::

    videos/<video_id>/00000.jpg ...        JPEG frames (+ videos/<video_id>.mp4 with mp4=True)
    train.json, val.json, bench.json       SAMA-239K records (bench: SAMA-Bench form with question_id/description_id)
    {train,val,bench}_attributes.json      SAMA-239K records: every object asked its colour, shape, size, motion and
                                           identity once (no [SEG]; question ids <video_id>_aNN)
    {train,val,bench}_mask_dict.json       {str(obj_id): [RLE | null per frame]}
    rvos/{train,val,bench}/meta_expressions.json + mask_dict.json   MeViS format (frames root: videos/)
    scenes.json                            ground-truth facts per video (objects, motions, events, relations)
    facts.json                             {question_id | description_id: checkable fact}
    README.txt                             this layout, the vocabulary and the generation settings

Video ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` (its attribute questions from ``[seed, i, 1]``, so
the other files do not depend on them), so the output is a pure function of the arguments; splits are by video
(train / val / bench disjoint) and object ids are unique over the whole dataset.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sama.data.masks import rle_encode
from sama.data.synthetic.language import (
    MOTION_PHRASES,
    Turn,
    attribute_questions,
    build_conversation,
    describe,
    description_fact,
    referring_expressions,
)
from sama.data.synthetic.scene import COLOURS, SHAPES, SIZE_FRACTIONS, Scene, SceneConfig, simulate_scene
from sama.errors import ConfigError

SPLITS: tuple[str, ...] = ("train", "val", "bench")
DEFAULT_SPLIT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
JPEG_QUALITY = 95  # with 4:4:4 chroma, so object colours survive compression at the edges
MP4_FPS = 8.0
VIDEOS_DIR = "videos"
MANIFEST = "scenes.json"


@dataclass
class DatasetSummary:
    """What ``generate_dataset`` wrote."""

    out_dir: str
    seed: int
    videos: dict[str, int] = field(default_factory=dict)  # per split
    questions: dict[str, int] = field(default_factory=dict)
    attribute_questions: dict[str, int] = field(default_factory=dict)
    expressions: dict[str, int] = field(default_factory=dict)
    objects: int = 0


def split_sizes(num_videos: int, fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS) -> dict[str, int]:
    """Videos per split; val and bench get at least one video each once there are 3 or more videos."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ConfigError(f"split fractions must be 3 non-negative numbers (train, val, bench), got {fractions}")
    total = sum(fractions)
    val = round(num_videos * fractions[1] / total)
    bench = round(num_videos * fractions[2] / total)
    if num_videos >= 3:
        val, bench = max(val, 1 if fractions[1] else 0), max(bench, 1 if fractions[2] else 0)
    val, bench = min(val, num_videos), min(bench, max(num_videos - val, 0))
    return {"train": num_videos - val - bench, "val": val, "bench": bench}


def _save_frames(frames: np.ndarray, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    stems = [f"{t:05d}" for t in range(len(frames))]
    for stem, frame in zip(stems, frames):
        Image.fromarray(frame).save(folder / f"{stem}.jpg", format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return stems


def _record(
    scene: Scene, video_id: str, obj_ids: list[int], turns: list[Turn], split: str, *, question_prefix: str = "q",
    descriptions: bool = True,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """One SAMA-239K record (question ids ``<video_id>_<question_prefix>NN``; the objects' descriptions unless
    ``descriptions`` is False) and the checkable facts of its questions and descriptions."""
    stems = [f"{t:05d}" for t in range(scene.config.num_frames)]
    conversation: list[dict[str, Any]] = []
    facts: dict[str, dict[str, Any]] = {}
    for number, turn in enumerate(turns):
        question_id = f"{video_id}_{question_prefix}{number:02d}"
        conversation.append({"from": "human", "value": turn.question, "question_id": question_id})
        conversation.append({"from": "gpt", "value": turn.answer})
        facts[question_id] = {
            **(turn.fact or {}),
            "video_id": video_id,
            "split": split,
            "obj_ids": [obj_ids[i] for i in turn.subject_objects()],
            "seg_obj_ids": [[obj_ids[i] for i in ids] for ids in turn.seg_objects],
            "answer": turn.answer,
        }
    record: dict[str, Any] = {
        "video": f"{VIDEOS_DIR}/{video_id}",
        "video_id": video_id,
        "height": scene.config.height,
        "width": scene.config.width,
        "frames": stems,
        "anno_map": list(obj_ids),
        "conversation": conversation,
        "obj_masks": [[obj_ids[i] for i in turn.ref_objects] for turn in turns],
        "groundtruth": [[[obj_ids[i] for i in ids] for ids in turn.seg_objects] for turn in turns],
    }
    if not descriptions:
        return record, facts
    record["description"] = {f"obj{obj.index}": describe(obj, scene) for obj in scene.objects}
    if split == "bench":
        record["description_id"] = {f"obj{obj.index}": f"{video_id}_d{obj.index}" for obj in scene.objects}
        for obj in scene.objects:
            facts[f"{video_id}_d{obj.index}"] = {
                **description_fact(obj, scene),
                "video_id": video_id,
                "split": split,
                "obj_ids": [obj_ids[obj.index]],
                "answer": record["description"][f"obj{obj.index}"],
            }
    return record, facts


def _dump(data: Any, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, separators=(",", ":"))


def _readme(summary: DatasetSummary, config: SceneConfig, mp4: bool) -> str:
    counts = ", ".join(f"{split} {summary.videos[split]}" for split in SPLITS)
    return f"""Synthetic referential-video dataset written by `sama data synth` (sama.data.synthetic).

Seed {summary.seed}; videos: {counts}; objects: {summary.objects}; frames {config.height}x{config.width}, \
{config.num_frames} per video{"; mp4 copies in videos/" if mp4 else ""}.

Layout
  videos/<video_id>/<00000>.jpg       JPEG frames (quality {JPEG_QUALITY}, 4:4:4)
  train.json / val.json / bench.json  SAMA-239K records: video, video_id, height, width, frames, anno_map,
                                      conversation (human turns carry question_id), obj_masks, groundtruth,
                                      description {{objN: text}} (bench also description_id)
  <split>_attributes.json             the same record form without descriptions: every object asked its colour,
                                      shape, size, motion and identity once (question ids <video_id>_aNN)
  <split>_mask_dict.json              {{str(obj_id): [COCO RLE or null per frame]}}: exact visible masks
  rvos/<split>/meta_expressions.json  MeViS format {{"videos": {{vid: {{frames, expressions: {{exp_id: {{exp,
                                      obj_id, anno_id}}}}}}}}}}; frames are under videos/<vid>/
  rvos/<split>/mask_dict.json         {{str(anno_id): [RLE or null per frame]}}
  scenes.json                         per video: split, object ids and facts (colour, shape, size, motion,
                                      events with frame numbers, visible frames, centres, relations, closest)
  facts.json                          {{question_id or description_id: {{kind, expected, obj_ids, answer, ...}}}}

Vocabulary
  colours: {", ".join(COLOURS)}
  shapes: {", ".join(SHAPES)}; sizes: {", ".join(SIZE_FRACTIONS)}
  motions: {", ".join(MOTION_PHRASES.values())}
  events: enters the frame, leaves the frame, goes behind <object>, stops
Splits are by video; object ids are unique over the whole dataset.
"""


def generate_dataset(
    out_dir: str | Path,
    num_videos: int,
    seed: int = 0,
    *,
    config: SceneConfig | None = None,
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
    max_turns: int = 8,
    mp4: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> DatasetSummary:
    """Simulate ``num_videos`` scenes and write the dataset folder described in the module docstring."""
    from tqdm import tqdm

    config = config or SceneConfig()
    config.validate()
    if num_videos < 1:
        raise ConfigError(f"num_videos must be at least 1, got {num_videos}")
    if max_turns < 1:
        raise ConfigError(f"max_turns must be at least 1, got {max_turns}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    out = Path(out_dir)
    if (out / MANIFEST).exists():
        if not overwrite:
            raise ConfigError(
                f"{out} already holds a synthetic dataset ({MANIFEST}); pass overwrite=True / --overwrite"
            )
        for name in (VIDEOS_DIR, "rvos"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    sizes = split_sizes(num_videos, split_fractions)
    split_of = [split for split in SPLITS for _ in range(sizes[split])]
    records: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    attribute_records: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    mask_dicts: dict[str, dict[str, list[Any]]] = {split: {} for split in SPLITS}
    rvos: dict[str, dict[str, Any]] = {split: {} for split in SPLITS}
    scenes: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    next_obj_id = 1
    for index in tqdm(range(num_videos), desc="synth", unit="video", disable=not progress):
        rng = np.random.default_rng([seed, index])
        scene = simulate_scene(rng, config)
        video_id = f"syn{index:05d}"
        split = split_of[index]
        obj_ids = list(range(next_obj_id, next_obj_id + len(scene.objects)))
        next_obj_id += len(scene.objects)
        stems = _save_frames(scene.frames, out / VIDEOS_DIR / video_id)
        if mp4:
            from sama.viz import write_mp4

            write_mp4(list(scene.frames), out / VIDEOS_DIR / f"{video_id}.mp4", fps=MP4_FPS)
        for obj in scene.objects:
            mask_dicts[split][str(obj_ids[obj.index])] = [
                rle_encode(mask) if mask.any() else None for mask in scene.masks[obj.index]
            ]
        turns = build_conversation(scene, rng, max_turns=max_turns)
        record, record_facts = _record(scene, video_id, obj_ids, turns, split)
        records[split].append(record)
        facts.update(record_facts)
        asked = attribute_questions(scene, np.random.default_rng([seed, index, 1]))
        record, record_facts = _record(scene, video_id, obj_ids, asked, split, question_prefix="a", descriptions=False)
        attribute_records[split].append(record)
        facts.update(record_facts)
        expressions = referring_expressions(scene, rng)
        rvos[split][video_id] = {
            "frames": stems,
            "expressions": {
                str(k): {"exp": text, "obj_id": list(indices), "anno_id": [obj_ids[i] for i in indices]}
                for k, (text, indices) in enumerate(expressions)
            },
        }
        scene_facts = scene.facts()
        scenes[video_id] = {"split": split, "video": record["video"], "obj_ids": obj_ids, **scene_facts}
    summary = DatasetSummary(out_dir=str(out), seed=seed, objects=next_obj_id - 1)
    for split in SPLITS:
        _dump(records[split], out / f"{split}.json")
        _dump(attribute_records[split], out / f"{split}_attributes.json")
        _dump(mask_dicts[split], out / f"{split}_mask_dict.json")
        (out / "rvos" / split).mkdir(parents=True, exist_ok=True)
        _dump({"videos": rvos[split]}, out / "rvos" / split / "meta_expressions.json")
        _dump(mask_dicts[split], out / "rvos" / split / "mask_dict.json")
        summary.videos[split] = len(records[split])
        summary.questions[split] = sum(len(r["conversation"]) // 2 for r in records[split])
        summary.attribute_questions[split] = sum(len(r["conversation"]) // 2 for r in attribute_records[split])
        summary.expressions[split] = sum(len(v["expressions"]) for v in rvos[split].values())
    _dump(facts, out / "facts.json")
    _dump({"seed": seed, "config": asdict(config), "videos": scenes}, out / MANIFEST)
    (out / "README.txt").write_text(_readme(summary, config, mp4), encoding="utf-8")
    return summary
