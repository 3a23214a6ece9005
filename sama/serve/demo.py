"""``sama demo``: a self-contained three-turn grounded video chat on a freshly generated synthetic video.

It makes an example video from the synthetic world (a random stream no training set uses), asks (1) an attribute
question about an object given by a box on a dense frame, (2) a follow-up that needs the dialogue history, (3) a
grounded question, prints the dialogue next to the ground-truth answers, and writes the masks (PNG + RLE JSON per grounded
object), overlays (GIF + MP4) and a ``dialogue.json``. Without trained weights it runs the untrained preset and says so.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from sama.data.masks import mask_xyxy
from sama.errors import ConfigError

# The demo scene comes from numpy.random.default_rng([seed, *DEMO_STREAM]). generate_dataset draws video i of a
# seed-s dataset from default_rng([s, i]) (2 words, zero-padded by SeedSequence); a third non-zero word makes the demo
# stream differ from every training/validation/bench video whatever the seeds.
DEMO_STREAM = (0x5EED, 0xDE30)
DEMO_FPS = 8.0  # overlay playback rate (display only)
REF_LABEL = "box prompt"


@dataclass
class DemoTurn:
    """One question of the scripted conversation with its ground truth."""

    question: str
    expected: str
    kind: str
    box_object: int | None = None  # object index referred by a box (on the box frame)
    result: dict[str, Any] = field(default_factory=dict)


def demo_scene(seed: int) -> Any:
    """The demo's synthetic scene (default size: 96×96, 24 frames)."""
    from sama.data.synthetic import SceneConfig, simulate_scene

    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    return simulate_scene(np.random.default_rng([seed, *DEMO_STREAM]), SceneConfig())


def box_frame(scene: Any, dense_frames: list[int]) -> int:
    """The frame the box is drawn on: the first dense frame showing an object (SAMA reads a reference on the dense
    frames, SAMA.md §1.4, so a box there is read where it was drawn), else frame 0."""
    return next((f for f in dense_frames if scene.masks[:, f].any()), 0)


def script(scene: Any, frame: int = 0) -> list[DemoTurn]:
    """The three turns, built from the synthetic world's own question templates and facts (language.py); the box
    refers to the largest object on ``frame``."""
    from sama.data.synthetic.language import MOTION_PHRASES, QUESTION_TEMPLATES, grounded, join_phrases

    areas = scene.masks[:, frame].sum(axis=(1, 2))
    target = scene.objects[int(np.argmax(areas))]  # the largest object on the box frame
    everything = "There are " + join_phrases([grounded(o) for o in scene.objects]) + "."
    return [
        DemoTurn(QUESTION_TEMPLATES["motion"][1], f"It {MOTION_PHRASES[target.motion]}.", "motion",
                 box_object=target.index),
        DemoTurn(QUESTION_TEMPLATES["followup_colour"][0], f"It is {target.colour}.", "followup_colour"),
        DemoTurn(QUESTION_TEMPLATES["list_objects"][1], everything, "objects"),
    ]


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def run_demo(out_dir: str | Path, model_spec: str = "sama-smol", seed: int = 0, *, max_new_tokens: int = 64,
             out: TextIO = sys.stdout) -> dict[str, Any]:
    """Generate, chat, write; returns the ``dialogue.json`` content."""
    import torch

    from sama.data.video import open_video
    from sama.model.adapter import DEFAULT_MODEL, load_model, resolve_model
    from sama.model.prompts import Box
    from sama.model.session import ChatSession
    from sama.serve.outputs import GroundedObject, save_turn, turn_objects, write_object_masks, write_overlays
    from sama.viz import write_gif, write_mp4

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = resolve_model(model_spec)  # fail fast on a bad spec, before any work
    clear_previous_run(out_dir)
    _say(out, f"[1/5] generating the example video (synthetic world, seed {seed}, stream {list(DEMO_STREAM)} — "
              "not used by any training set)")
    scene = demo_scene(seed)
    video = open_video(scene.frames)
    files = [write_gif(list(scene.frames), out_dir / "example.gif", fps=DEMO_FPS),
             write_mp4(list(scene.frames), out_dir / "example.mp4", fps=DEMO_FPS)]
    truth = [GroundedObject(o.name, [_rle(m) for m in scene.masks[o.index]], {"facts": scene.facts()["objects"][k]})
             for k, o in enumerate(scene.objects)]
    gt_dir = out_dir / "ground_truth"
    for k, obj in enumerate(truth):
        files += write_object_masks(obj, gt_dir, k, video.height, video.width)
    files += write_overlays(video, truth, gt_dir, fps=DEMO_FPS)
    _say(out, f"      {len(video)} frames {video.width}x{video.height}, {len(scene.objects)} objects: "
              + "; ".join(f"{o.name} ({o.size}, {o.motion}, events: "
                          f"{', '.join(e['event'] for e in o.events) or 'none'})" for o in scene.objects))

    _say(out, f"[2/5] loading the model: {source.describe()}")
    if not source.trained:
        why = ("the shipped sama-smol checkpoint is not installed" if model_spec == DEFAULT_MODEL
               else f"{model_spec} is a preset")
        _say(out, f"      NOTE: no trained weights ({why}); the answers and masks below come from an UNTRAINED "
                  "model and are meaningless — this run only shows the pipeline end to end. The ground truth is "
                  "printed beside each answer.")
    model = load_model(source)
    torch.manual_seed(seed)

    _say(out, "[3/5] encoding the video (vision tower + spatial aggregator, cached for every turn)")
    session = ChatSession(model, video, max_new_tokens=max_new_tokens)
    frame = box_frame(scene, session.dense_frame_indices)
    turns = script(scene, frame)
    model_objects: list[GroundedObject] = []
    _say(out, "[4/5] the conversation")
    for number, item in enumerate(turns, 1):
        refs = []
        if item.box_object is not None:
            box = mask_xyxy(scene.masks[item.box_object, frame])
            refs = [Box(xyxy=box, frame=frame)]
            item.result["box"] = {"frame": frame, "xyxy": list(box), "object": scene.objects[item.box_object].name}
        turn = session.ask(item.question, refs)
        shown = item.question.replace("<mask>", f"<box {list(box)} on frame {frame}>") if refs else item.question
        _say(out, f"  user  [{number}]: {shown}")
        _say(out, f"  sama  [{number}]: {turn.raw_text or '(empty answer)'}")
        _say(out, f"  truth [{number}]: {item.expected}")
        for note in turn.notes:
            _say(out, f"    note: {note}")
        turn_dir = out_dir / f"turn{number}"
        written = save_turn(turn, video, turn_dir) if turn.num_objects else []
        files += written
        objects = turn_objects(turn) if turn.num_objects else []
        model_objects += objects
        _say(out, f"    grounded objects ([SEG]): {len(objects)}"
                  + (f" → {turn_dir}" if written else ""))
        item.result.update({"question": item.question, "answer": turn.raw_text, "text": turn.text,
                            "phrases": turn.phrases, "num_grounded": turn.num_objects, "notes": turn.notes,
                            "expected": item.expected, "kind": item.kind, "llm_tokens_fed": turn.new_tokens})

    _say(out, "[5/5] writing the overlays")
    box_turn = next(t for t in turns if t.box_object is not None)
    x1, y1, x2, y2 = box_turn.result["box"]["xyxy"]
    box_mask = np.zeros((video.height, video.width), dtype=bool)
    box_mask[y1:y2, x1:x2] = True
    prompt = GroundedObject(REF_LABEL, [None] * frame + [_rle(box_mask)] + [None] * (len(video) - frame - 1))
    files += write_overlays(video, [prompt, *model_objects], out_dir, fps=DEMO_FPS)
    dialogue = {
        "model": source.describe(), "trained": source.trained, "seed": seed, "stream": list(DEMO_STREAM),
        "scene": scene.facts(), "turns": [t.result for t in turns],
        "files": sorted(str(p.relative_to(out_dir)) for p in files),
    }
    dialogue_path = out_dir / "dialogue.json"
    dialogue_path.write_text(json.dumps(dialogue, indent=1), encoding="utf-8")
    _say(out, f"done. Files in {out_dir}:")
    _say(out, f"  {out_dir / 'overlay.gif'} / overlay.mp4   the model's grounded objects (+ the box prompt on frame "
              f"{frame})")
    _say(out, f"  {gt_dir}/                 ground-truth masks (PNG per frame, RLE JSON) and overlay GIF/MP4")
    if model_objects:
        _say(out, f"  {out_dir}/turnN/              per-turn masks of the model's [SEG] objects")
    else:
        _say(out, "  (the model emitted no [SEG], so it grounded no object: no per-turn mask files)")
    _say(out, f"  {out_dir / 'example.gif'} / example.mp4   the input video;  {dialogue_path}   the full record")
    return dialogue


def clear_previous_run(out_dir: Path) -> None:
    """Remove the per-object folders a previous demo run wrote (``turnN/``, ``ground_truth/``), so a rerun never
    mixes the earlier run's objects into its own; other files in ``out_dir`` are overwritten or left alone."""
    for child in out_dir.iterdir():
        if child.is_dir() and (child.name == "ground_truth" or re.fullmatch(r"turn\d+", child.name)):
            shutil.rmtree(child)


def _rle(mask: np.ndarray) -> dict[str, Any] | None:
    from sama.data.masks import rle_encode

    return rle_encode(mask) if mask.any() else None
