"""Tests of the synthetic referential-video world: exact masks, true facts, valid official-format files, CLI."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sama.data.masks import MaskDict
from sama.data.schema import MASK_TOKEN, SEG_TOKEN, extract_phrases, load_records
from sama.data.synthetic.cli import register_synth
from sama.data.synthetic.facts import check_answer, load_facts, score_answers
from sama.data.synthetic.language import (
    ATTRIBUTE_KINDS,
    DESCRIBE_QUESTION,
    MOTION_PHRASES,
    MOTION_PHRASES_PLURAL,
    build_conversation,
    describe,
    expression_kind,
    referring_expressions,
)
from sama.data.synthetic.preview import write_preview
from sama.data.synthetic.scene import (
    BACKGROUND_GREY,
    COLOURS,
    HIDDEN_FRACTION,
    TEXTURE_AMPLITUDE,
    SceneConfig,
    simulate_scene,
)
from sama.data.synthetic.writer import SPLITS, generate_dataset, split_sizes
from sama.errors import ConfigError, DataError

SMALL = SceneConfig(height=64, width=64, num_frames=12)
NUM_VIDEOS = 10
SEED = 7


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    generate_dataset(out, NUM_VIDEOS, SEED, config=SMALL, progress=False)
    return out


def _json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _scenes(count: int = 12, config: SceneConfig = SMALL):
    return [simulate_scene(np.random.default_rng([3, i]), config) for i in range(count)]


# --- constants ----------------------------------------------------------------------------------------------------


def test_paper_constants_are_pinned() -> None:
    assert DESCRIBE_QUESTION == "Please describe the region <mask> in the video in detail."  # SAMA.md §5 Bench-C
    assert split_sizes(10) == {"train": 8, "val": 1, "bench": 1}
    assert split_sizes(3) == {"train": 1, "val": 1, "bench": 1}
    assert split_sizes(1) == {"train": 1, "val": 0, "bench": 0}


# --- scene simulation ---------------------------------------------------------------------------------------------


def test_scene_is_deterministic_from_the_generator() -> None:
    a = simulate_scene(np.random.default_rng(11), SMALL)
    b = simulate_scene(np.random.default_rng(11), SMALL)
    c = simulate_scene(np.random.default_rng(12), SMALL)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    assert json.dumps(a.facts()) == json.dumps(b.facts())
    assert not np.array_equal(a.frames, c.frames)


def test_masks_are_exactly_the_visible_object_pixels() -> None:
    for scene in _scenes():
        frames, masks, full = scene.frames, scene.masks, scene.full_masks
        assert masks.sum(axis=0).max() <= 1, "visible masks overlap"
        assert not (masks & ~full).any(), "visible pixels outside the object's shape"
        for obj in scene.objects:
            assert (frames[masks[obj.index]] == COLOURS[obj.colour]).all()
        # every pixel not covered by an object shows the background (grey +- texture), never an object colour
        background = frames[~masks.any(axis=0)].astype(int)
        assert np.abs(background - BACKGROUND_GREY).max() <= TEXTURE_AMPLITUDE
        # occlusion: where two shapes overlap, only the one with the larger z is visible
        for top in scene.objects:
            for below in scene.objects:
                if top.z > below.z:
                    overlap = full[top.index] & full[below.index]
                    assert masks[top.index][overlap].all() and not masks[below.index][overlap].any()


def test_occlusion_happens_in_some_scenes() -> None:
    hidden = [e for scene in _scenes(30) for obj in scene.objects for e in obj.events if e["event"] == "hidden"]
    assert hidden, "no scene with occlusion in 30 draws"


def _full_centroids(mask_volume: np.ndarray, keep_border: bool = False) -> list[tuple[int, float, float]]:
    """(frame, x, y) centroids of non-empty frames; unless ``keep_border``, only where the shape is off the border."""
    out = []
    for t, mask in enumerate(mask_volume):
        touches = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        if not mask.any() or (touches and not keep_border):
            continue
        ys, xs = np.nonzero(mask)
        out.append((t, xs.mean(), ys.mean()))
    return out


def test_motion_facts_match_mask_centroids() -> None:
    checked = set()
    for scene in _scenes(40):
        for obj in scene.objects:
            bounces = obj.motion.startswith("bounce")  # bouncing shapes stay whole, touching the wall included
            points = _full_centroids(scene.full_masks[obj.index], keep_border=bounces)
            if len(points) < 2:
                continue
            xs, ys = np.array([p[1] for p in points]), np.array([p[2] for p in points])
            dx, dy = np.diff(xs), np.diff(ys)
            if obj.motion == "still":
                assert np.allclose(dx, 0) and np.allclose(dy, 0)
            elif obj.motion in ("left", "right", "up", "down"):
                moves = {"left": dx, "right": -dx, "up": dy, "down": -dy}[obj.motion]
                assert (moves <= 1e-9).all() and moves.min() < 0  # monotonic along the motion (stops allowed)
                sideways = dy if obj.motion in ("left", "right") else dx
                assert np.abs(sideways).max() < 0.5  # only sub-pixel rasterisation jitter across the motion
            else:
                track = xs if obj.motion == "bounce_h" else ys
                turns = [
                    min(abs(track[j] - track[: j + 1].min()), abs(track[j] - track[j:].min()))
                    for j in range(len(track))
                ] + [
                    min(abs(track[: j + 1].max() - track[j]), abs(track[j:].max() - track[j]))
                    for j in range(len(track))
                ]
                assert max(turns) >= 1.0, f"{obj.motion} without a visible direction change"
            checked.add(obj.motion)
    assert {"still", "bounce_h", "bounce_v"} <= checked and len(checked & {"left", "right", "up", "down"}) >= 2


def test_event_facts_match_masks() -> None:
    kinds = set()
    for scene in _scenes(40):
        for obj in scene.objects:
            in_frame = scene.full_masks[obj.index].any(axis=(1, 2))
            shown = scene.masks[obj.index].sum(axis=(1, 2))
            area = scene.full_masks[obj.index].sum(axis=(1, 2))
            for event in obj.events:
                t, kind = event["frame"], event["event"]
                kinds.add(kind)
                if kind == "enters":
                    assert not in_frame[:t].any() and in_frame[t]
                elif kind == "leaves":
                    assert in_frame[t - 1] and not in_frame[t]
                elif kind == "hidden":
                    assert shown[t] < HIDDEN_FRACTION * area[t]
                    occluder = scene.objects[event["by"]]
                    assert (
                        occluder.z > obj.z
                        and (scene.full_masks[occluder.index, t] & scene.full_masks[obj.index, t]).any()
                    )
                elif kind == "stops":
                    centres = obj.centers
                    assert np.allclose(centres[t:], centres[t]) and not np.allclose(centres[t - 1], centres[t])
    assert {"enters", "leaves", "hidden", "stops"} <= kinds


def test_relations_hold_on_every_shared_frame() -> None:
    seen = 0
    for scene in _scenes(20):
        for rel in scene.relations:
            a, b = scene.masks[rel["subject"]], scene.masks[rel["object"]]
            for t in range(scene.config.num_frames):
                if not (a[t].any() and b[t].any()):
                    continue
                ay, ax = np.nonzero(a[t])
                by, bx = np.nonzero(b[t])
                check = {
                    "left of": ax.mean() < bx.mean(),
                    "right of": ax.mean() > bx.mean(),
                    "above": ay.mean() < by.mean(),
                    "below": ay.mean() > by.mean(),
                }[rel["relation"]]
                assert check, (rel, t)
                seen += 1
    assert seen > 0


def test_invalid_scene_config_is_reported() -> None:
    with pytest.raises(ConfigError, match="num_frames must be at least 4"):
        simulate_scene(np.random.default_rng(0), SceneConfig(num_frames=2))
    with pytest.raises(ConfigError, match="max_objects"):
        SceneConfig(min_objects=3, max_objects=9).validate()
    with pytest.raises(ConfigError, match="enter_prob must be in"):
        SceneConfig(enter_prob=1.5).validate()
    with pytest.raises(ConfigError, match="motions must be a non-empty subset"):
        SceneConfig(motions=("left", "spin")).validate()


def test_motion_subset_restricts_the_world() -> None:
    config = SceneConfig(height=64, width=64, num_frames=12, motions=("still", "left"), enter_prob=0.0)
    labels = {obj.motion for i in range(10) for obj in simulate_scene(np.random.default_rng(i), config).objects}
    assert labels == {"still", "left"}


# --- language -----------------------------------------------------------------------------------------------------


def test_conversation_counts_and_grounded_phrases() -> None:
    for i, scene in enumerate(_scenes(20)):
        turns = build_conversation(scene, np.random.default_rng(i))
        assert turns
        names = {obj.index: obj.name for obj in scene.objects}
        for turn in turns:
            assert turn.question.count(MASK_TOKEN) == len(turn.ref_objects)
            assert turn.answer.count(SEG_TOKEN) == len(turn.seg_objects)
            phrases = extract_phrases(turn.answer)
            assert phrases == [names[ids[0]] for ids in turn.seg_objects]
            assert not re.search(r"\ba [aeiou]", turn.answer), turn.answer  # "an orange square"
        # every aligned chunk of 4 turns (qa_per_item=4, SAMA.md §3.2) keeps a [SEG] turn
        for start in range(0, len(turns), 4):
            assert any(t.seg_objects for t in turns[start : start + 4])


def test_description_mentions_the_object_facts() -> None:
    scene = _scenes(1)[0]
    for obj in scene.objects:
        text = describe(obj, scene)
        assert f"{obj.size} {obj.colour} {obj.shape}" in text and MOTION_PHRASES[obj.motion] in text


# --- dataset files ------------------------------------------------------------------------------------------------


def test_every_split_passes_the_strict_validator(dataset: Path) -> None:
    kept = 0
    for split in SPLITS:
        records = load_records(dataset / f"{split}.json", strict=True, mask_dict=dataset / f"{split}_mask_dict.json")
        assert records.report.ok and not records.report.warnings
        kept += sum(len(r.turns) for r in records)
        for record in records:
            assert all(turn.question_id for turn in record.turns)
            assert len(record.description) == len(record.anno_map)
            assert bool(record.description_id) == (split == "bench")
            frames = sorted(p.stem for p in (dataset / record.video).glob("*.jpg"))
            assert frames == record.frames
    assert kept > 0


def test_splits_are_disjoint_and_object_ids_unique(dataset: Path) -> None:
    video_sets = [{r["video_id"] for r in _json(dataset / f"{s}.json")} for s in SPLITS]
    assert sum(map(len, video_sets)) == NUM_VIDEOS == len(set().union(*video_sets))
    ids = [key for s in SPLITS for key in _json(dataset / f"{s}_mask_dict.json")]
    assert len(ids) == len(set(ids))


def test_mask_dict_decodes_to_the_rendered_masks(dataset: Path) -> None:
    scenes = _json(dataset / "scenes.json")["videos"]
    for index, (video_id, info) in enumerate(scenes.items()):
        scene = simulate_scene(np.random.default_rng([SEED, index]), SMALL)
        masks = MaskDict.load(dataset / f"{info['split']}_mask_dict.json")
        for obj_id, obj in zip(info["obj_ids"], scene.objects):
            volume = masks.volume([obj_id], SMALL.num_frames, SMALL.height, SMALL.width)
            assert np.array_equal(volume, scene.masks[obj.index]), (video_id, obj_id)
        jpeg = np.asarray(Image.open(dataset / info["video"] / "00000.jpg").convert("RGB")).astype(int)
        assert np.abs(jpeg - scene.frames[0]).mean() < 3  # quality 95, 4:4:4


def test_answers_and_facts_agree_with_the_scenes(dataset: Path) -> None:
    scenes = _json(dataset / "scenes.json")["videos"]
    facts = _json(dataset / "facts.json")
    by_id = {obj_id: obj for info in scenes.values() for obj_id, obj in zip(info["obj_ids"], info["objects"])}
    kinds = set()
    for split in SPLITS:
        for record in _json(dataset / f"{split}.json"):
            pairs = zip(record["conversation"][::2], record["conversation"][1::2])
            for (human, gpt), groundtruth in zip(pairs, record["groundtruth"]):
                fact = facts[human["question_id"]]
                kinds.add(fact["kind"])
                assert fact["answer"] == gpt["value"]
                phrases = extract_phrases(gpt["value"])
                assert phrases == [by_id[ids[0]]["name"] for ids in groundtruth]
                subject = by_id[fact["obj_ids"][0]] if fact["obj_ids"] else None
                if fact["kind"] in ("colour", "shape", "size", "motion"):
                    assert fact["expected"] == subject[fact["kind"]]
                    assert gpt["value"].startswith("It ")
                elif fact["kind"] == "objects":
                    assert sorted(fact["expected"]) == sorted(o["name"] for o in scenes[record["video_id"]]["objects"])
                elif fact["kind"] == "event":
                    events = [e["event"] for e in subject["events"] if e["event"] != "bounces"]
                    position = 1 if fact.get("followup") else 0
                    assert fact["expected"] == (events[position] if position < len(events) else "none")
            for key, obj_id in zip(record.get("description_id", {}).values(), record["anno_map"]):
                assert facts[key]["kind"] == "description" and facts[key]["obj_ids"] == [obj_id]
    assert {"objects", "event"} <= kinds and kinds & {"colour", "shape", "size", "motion", "identity"}


_EXPRESSION_RULES = [
    (
        re.compile(r"^the (small|large) (circle|square|triangle)$"),
        lambda m, o: o["size"] == m[1] and o["shape"] == m[2],
    ),
    (re.compile(r"^the (\w+) (circle|square|triangle)$"), lambda m, o: o["colour"] == m[1] and o["shape"] == m[2]),
    (re.compile(r"^the (\w+) object$"), lambda m, o: o["colour"] == m[1]),
    (re.compile(r"^the (circle|square|triangle)$"), lambda m, o: o["shape"] == m[1]),
    (
        re.compile(r"^the (small|large) (circle|square|triangle)$"),
        lambda m, o: o["size"] == m[1] and o["shape"] == m[2],
    ),
    (
        re.compile(r"^the objects? that (.+)$"),
        lambda m, o: (
            m[1]
            in (
                MOTION_PHRASES[o["motion"]],
                MOTION_PHRASES[o["motion"]].replace("moves", "move").replace("stays", "stay"),
            )
            or any(
                m[1] == {"enters": "enters the frame", "leaves": "leaves the frame"}.get(e["event"], e["event"])
                for e in o["events"]
            )
        ),
    ),
]


def test_rvos_expressions_refer_to_exactly_their_objects(dataset: Path) -> None:
    scenes = _json(dataset / "scenes.json")["videos"]
    checked = 0
    for split in SPLITS:
        meta = _json(dataset / "rvos" / split / "meta_expressions.json")["videos"]
        masks = _json(dataset / "rvos" / split / "mask_dict.json")
        for video_id, entry in meta.items():
            info = scenes[video_id]
            assert entry["frames"] == [f"{t:05d}" for t in range(SMALL.num_frames)]
            for expression in entry["expressions"].values():
                assert all(str(a) in masks for a in expression["anno_id"])
                assert expression["anno_id"] == [info["obj_ids"][i] for i in expression["obj_id"]]
                parts = (
                    expression["exp"].split(" and ")
                    if " and " in expression["exp"] and "object" not in expression["exp"]
                    else [expression["exp"]]
                )
                matched: set[int] = set()
                for part in parts:
                    for pattern, rule in _EXPRESSION_RULES:
                        m = pattern.match(part)
                        if m:
                            matched |= {o["index"] for o in info["objects"] if rule(m, o)}
                            break
                    else:
                        pytest.fail(f"unparsed expression {part!r}")
                assert matched == set(expression["obj_id"]), expression
                checked += 1
    assert checked > 0


def test_rvos_reader_accepts_the_files(dataset: Path) -> None:
    from sama.data.rvos import expression_masks, load_meta_expressions

    scenes = _json(dataset / "scenes.json")["videos"]
    for split in SPLITS:
        folder = dataset / "rvos" / split
        masks = MaskDict.load(folder / "mask_dict.json")
        loaded = load_meta_expressions(folder / "meta_expressions.json", "mevis", strict=True, mask_dict=masks)
        assert loaded.report.ok and {v.video_id for v in loaded} == {
            vid for vid, info in scenes.items() if info["split"] == split
        }
        for expression in loaded.expressions():
            volume = expression_masks(masks, expression, SMALL.num_frames, SMALL.height, SMALL.width)
            assert volume.any(), expression.question_id  # every referred object shows somewhere


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    config = SceneConfig(height=48, width=48, num_frames=8)
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_dataset(tmp_path / name, 4, seed, config=config, progress=False)
    names = [
        "train.json",
        "val.json",
        "bench.json",
        "train_attributes.json",
        "train_mask_dict.json",
        "scenes.json",
        "facts.json",
        "rvos/val/meta_expressions.json",
        "README.txt",
        "videos/syn00000/00003.jpg",
    ]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "train.json").read_bytes() != (tmp_path / "c" / "train.json").read_bytes()


def test_attribute_questions_ask_every_object_every_kind_once(dataset: Path) -> None:
    scenes = _json(dataset / "scenes.json")["videos"]
    facts = _json(dataset / "facts.json")
    for split in SPLITS:
        path = dataset / f"{split}_attributes.json"
        records = load_records(path, strict=True, mask_dict=dataset / f"{split}_mask_dict.json")
        assert records.report.ok and len(records) == len(_json(dataset / f"{split}.json"))
        for record in _json(path):
            assert "description" not in record and not any(record["groundtruth"])
            asked = []
            for number, (human, gpt) in enumerate(zip(record["conversation"][::2], record["conversation"][1::2])):
                assert human["question_id"] == f"{record['video_id']}_a{number:02d}"
                assert human["value"].count(MASK_TOKEN) == 1 and SEG_TOKEN not in gpt["value"]
                fact = facts[human["question_id"]]
                assert fact["answer"] == gpt["value"] and check_answer(fact, gpt["value"])
                asked.append((fact["obj_ids"][0], fact["kind"]))
            obj_ids = scenes[record["video_id"]]["obj_ids"]
            assert sorted(asked) == sorted((o, k) for o in obj_ids for k in ATTRIBUTE_KINDS)


def test_attribute_questions_leave_the_other_files_as_they_were(tmp_path: Path, monkeypatch) -> None:
    from sama.data.synthetic import writer

    config = SceneConfig(height=48, width=48, num_frames=8)
    generate_dataset(tmp_path / "with", 5, 3, config=config, progress=False)
    monkeypatch.setattr(writer, "attribute_questions", lambda scene, rng: [])  # draws nothing from its generator
    generate_dataset(tmp_path / "without", 5, 3, config=config, progress=False)
    for name in ("train.json", "bench.json", "scenes.json", "rvos/train/meta_expressions.json"):
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes(), name
    with_facts = _json(tmp_path / "with" / "facts.json")
    assert {k: v for k, v in with_facts.items() if "_a" not in k} == _json(tmp_path / "without" / "facts.json")


def test_generate_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="num_videos must be at least 1"):
        generate_dataset(tmp_path / "x", 0, progress=False)
    with pytest.raises(ConfigError, match="seed must be a non-negative"):
        generate_dataset(tmp_path / "x", 1, -1, progress=False)
    with pytest.raises(ConfigError, match="split fractions"):
        split_sizes(5, (1.0, -1.0, 0.0))
    generate_dataset(tmp_path / "y", 1, config=SceneConfig(height=32, width=32, num_frames=4), progress=False)
    with pytest.raises(ConfigError, match="already holds a synthetic dataset"):
        generate_dataset(tmp_path / "y", 1, progress=False)


# --- CLI and preview ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register_synth(parser.add_subparsers(required=True))
    return parser


def test_cli_synth_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = _parser().parse_args(
        ["synth", "--out", str(out), "--videos", "3", "--seed", "1", "--size", "48", "40", "--frames", "6", "--quiet"]
    )
    assert args.func(args) == 0
    assert "videos train 1, val 1, bench 1" in capsys.readouterr().out
    record = _json(out / "val.json")[0]
    assert (record["height"], record["width"], len(record["frames"])) == (48, 40, 6)

    args = _parser().parse_args(["preview", str(out), "--video", record["video_id"]])
    assert args.func(args) == 0
    gif = out / "preview" / f"{record['video_id']}.gif"
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 6
    with Image.open(out / "preview" / f"{record['video_id']}.png") as image:
        assert image.format == "PNG"


def test_cli_synth_through_sama_main_when_registered(tmp_path: Path) -> None:
    cli = pytest.importorskip("sama.data.cli")
    del cli
    from sama.cli import main

    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path / "m"),
                "--videos",
                "1",
                "--size",
                "32",
                "32",
                "--frames",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    assert (tmp_path / "m" / "train.json").is_file()


def test_preview_errors_name_the_problem(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a dataset written by `sama data synth`"):
        write_preview(tmp_path)
    with pytest.raises(DataError, match="unknown video 'nope'"):
        write_preview(dataset, "nope", tmp_path)
    gif, png = write_preview(dataset, None, tmp_path / "p")
    assert gif.is_file() and png.is_file()


# --- exact answer checking ----------------------------------------------------------------------------------------


def test_every_canonical_answer_checks_and_shuffled_answers_mostly_fail(dataset: Path) -> None:
    facts = load_facts(dataset)
    answers = {key: fact["answer"] for key, fact in facts.items()}
    assert score_answers(facts, answers)["all"]["acc"] == 1.0
    by_kind: dict[str, list[str]] = {}
    for key, fact in facts.items():
        by_kind.setdefault(fact["kind"], []).append(key)
    shuffled = {a: facts[b]["answer"] for keys in by_kind.values() for a, b in zip(keys, keys[1:] + keys[:1])}
    assert score_answers(facts, shuffled)["all"]["acc"] < 0.5


@pytest.mark.parametrize(
    ("fact", "answer", "expected"),
    [
        ({"kind": "colour", "expected": "red"}, "It is red.", True),
        ({"kind": "colour", "expected": "red"}, "It is red or blue.", False),
        ({"kind": "shape", "expected": "circle"}, "It is a square.", False),
        ({"kind": "identity", "expected": "red circle"}, "It is a red circle.", True),
        ({"kind": "identity", "expected": "red circle"}, "It is a red square.", False),
        ({"kind": "motion", "expected": "left"}, "It moves left.", True),
        ({"kind": "motion", "expected": "left"}, "It moves right.", False),
        ({"kind": "motion", "expected": "bounce_h"}, "It bounces left and right.", True),
        ({"kind": "motion", "expected": "bounce_h"}, "It moves left and right.", False),
        (
            {"kind": "event", "expected": "hidden", "phrases": ["the blue square"]},
            "It goes behind <p> the blue square </p> [SEG].",
            True,
        ),
        (
            {"kind": "event", "expected": "hidden", "phrases": ["the blue square"]},
            "It goes behind <p> the red circle </p> [SEG].",
            False,
        ),
        ({"kind": "event", "expected": "none"}, "It leaves the frame.", False),
        (
            {"kind": "relation", "expected": "left of", "phrases": ["the red circle", "the blue square"]},
            "<p> the red circle </p> [SEG] is to the left of <p> the blue square </p> [SEG].",
            True,
        ),
        (
            {"kind": "relation", "expected": "left of", "phrases": ["the red circle", "the blue square"]},
            "<p> the blue square </p> [SEG] is to the left of <p> the red circle </p> [SEG].",
            False,
        ),
        (
            {"kind": "objects", "expected": ["the blue square", "the red circle"]},
            "There are <p> the red circle </p> [SEG] and <p> the blue square </p> [SEG].",
            True,
        ),
        (
            {"kind": "objects", "expected": ["the blue square", "the red circle"]},
            "There is <p> the red circle </p> [SEG].",
            False,
        ),
        (
            {
                "kind": "description",
                "attributes": {
                    "colour": "red",
                    "shape": "circle",
                    "size": "small",
                    "motion": "left",
                    "events": ["enters"],
                },
            },
            "A small red circle moves left. It enters the frame.",
            True,
        ),
        (
            {
                "kind": "description",
                "attributes": {
                    "colour": "red",
                    "shape": "circle",
                    "size": "small",
                    "motion": "left",
                    "events": ["enters"],
                },
            },
            "A small red circle moves left.",
            False,
        ),
    ],
)
def test_check_answer_cases(fact: dict, answer: str, expected: bool) -> None:
    assert check_answer(fact, answer) is expected


def test_answer_scoring_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown fact kind 'weather'"):
        check_answer({"kind": "weather", "expected": "sunny"}, "It is sunny.")
    with pytest.raises(DataError, match="question id 'q-missing' has no fact"):
        score_answers({}, {"q-missing": "It is red."})
    with pytest.raises(DataError, match=r"no facts\.json here"):
        load_facts(tmp_path)


def test_mp4_copies_decode(tmp_path: Path) -> None:
    import av

    config = SceneConfig(height=40, width=40, num_frames=5)
    generate_dataset(tmp_path / "m", 1, 2, config=config, mp4=True, progress=False)
    with av.open(str(tmp_path / "m" / "videos" / "syn00000.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (40, 40, 3)


def test_cli_reports_bad_options_as_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sama.cli import main

    code = main(["data", "synth", "--out", str(tmp_path / "bad"), "--videos", "1", "--size", "10", "10", "--quiet"])
    assert code == 2
    assert "error: scene size must be at least 32x32, got 10x10" in capsys.readouterr().err
    assert main(["data", "preview", str(tmp_path)]) == 2
    assert "not a dataset written by `sama data synth`" in capsys.readouterr().err


def test_expression_kinds_follow_how_each_expression_was_built() -> None:
    seen = set()
    for scene in _scenes(12):
        names = {obj.name for obj in scene.objects}
        for expression, indices in referring_expressions(scene, np.random.default_rng(0), max_expressions=50):
            kind = expression_kind(expression)
            seen.add(kind)
            if expression.startswith(("the object that ", "the objects that ")):
                assert kind == "motion", expression
                if expression.startswith("the objects that "):  # plural verb ("the objects that bounce ...")
                    assert expression.removeprefix("the objects that ") in MOTION_PHRASES_PLURAL.values()
                    seen.add("plural")
            elif len(indices) == 2 and " and " in expression:
                assert kind == "pair", expression
            elif expression == f"the {scene.objects[indices[0]].colour} object":
                assert kind == "colour", expression
            else:
                assert kind == "name" and (expression in names or expression.split()[-1] in {"circle", "square",
                                                                                           "triangle"}), expression
    assert seen == {"motion", "plural", "pair", "colour", "name"}
    assert expression_kind("the object that bounces left and right") == "motion"  # not a pair
