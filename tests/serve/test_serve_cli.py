"""``sama chat`` with piped stdin, ``sama predict`` (resume, limit, errors) and ``sama demo`` on sama-tiny."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sama.cli import main
from sama.errors import DataError
from sama.serve.chat import parse_box, parse_mask, parse_point


def write_frames(folder: Path, count: int = 6, height: int = 24, width: int = 32) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for t in range(count):
        frame = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        frame[4:14, 6:20] = 240
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg")
    return folder


def run_chat(monkeypatch, capsys, args: list[str], stdin: str) -> tuple[int, list[str], str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["chat", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_reference_parsers_and_their_errors(tmp_path: Path) -> None:
    assert parse_box("3:1,2,10,12").xyxy == (1.0, 2.0, 10.0, 12.0) and parse_box("3:1,2,10,12").frame == 3
    assert parse_point("0:5,6").xy == (5.0, 6.0)
    with pytest.raises(DataError, match=r"box '1,2,3': expected FRAME:x1,y1,x2,y2"):
        parse_box("1,2,3")
    with pytest.raises(DataError, match=r"box '1,2,x,4': expected 4 comma-separated numbers"):
        parse_box("0:1,2,x,4")
    with pytest.raises(DataError, match="point: frame 'a' is not an integer"):
        parse_point("a:1,2")
    with pytest.raises(DataError, match="mask image not found"):
        parse_mask(str(tmp_path / "none.png"))
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(DataError, match="the mask image is empty"):
        parse_mask(str(tmp_path / "empty.png"))
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[1:3, 1:3] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    ref = parse_mask(f"{tmp_path / 'm.png'}:2")
    assert ref.frame == 2 and ref.mask.sum() == 4


def test_chat_with_piped_stdin_answers_queues_refs_and_survives_errors(tmp_path, use_tiny, forced_seg,
                                                                      monkeypatch, capsys) -> None:
    video = write_frames(tmp_path / "video")
    mask = np.zeros((24, 32), dtype=np.uint8)
    mask[4:14, 6:20] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    stdin = "\n".join([
        "What is <mask> doing?",  # takes the --box reference
        "What is <mask>?",  # nothing queued: one-line error
        "/box 99 1,1,5,5",
        "What is <mask>?",  # frame 99 is outside the 6-frame video: one-line error
        "/clear",
        f"/mask {tmp_path / 'mask.png'} 1",
        "/point 2 10,8",
        "Where are <mask> and <mask>?",
        "/bogus",
        f"/save {tmp_path / 'saved'}",
        "/quit",
        "never read",
    ]) + "\n"
    code, out, err = run_chat(monkeypatch, capsys, [str(video), "--model", "sama-tiny", "--box", "0:6,4,20,14",
                                                    "--max-new-tokens", "2"], stdin)
    assert code == 0 and "untrained" in err
    answers = [line for line in out if line.startswith("sama:")]
    errors = [line for line in out if line.startswith("error:")]
    assert len(answers) == 2
    assert "the question has 1 <mask> but 0 reference(s) are queued" in errors[0]
    assert "reference frame 99 outside the video (0..5)" in errors[1]
    assert "unknown command '/bogus'" in errors[-1]
    assert any("grounded 2 object(s): thing 0, thing 1" in line for line in out)
    saved = tmp_path / "saved"
    assert (saved / "overlay.gif").is_file() and (saved / "overlay.mp4").is_file()
    record = json.loads((saved / "object_0_thing-0.json").read_text())
    assert record["label"] == "thing 0" and len(record["masks"]) == 6
    assert len(list((saved / "object_1_thing-1").glob("*.png"))) == 6


def test_chat_autosaves_with_save_flag(tmp_path, use_tiny, forced_seg, monkeypatch, capsys) -> None:
    video = write_frames(tmp_path / "video")
    code, _, _ = run_chat(monkeypatch, capsys, [str(video), "--model", "sama-tiny", "--max-new-tokens", "1",
                                                "--save", str(tmp_path / "all")], "Hi?\nAnd?\n")
    assert code == 0
    assert (tmp_path / "all" / "turn1" / "overlay.gif").is_file()
    assert (tmp_path / "all" / "turn2" / "object_0_thing-0.json").is_file()


def test_chat_rejects_a_bad_flag_before_loading(tmp_path, capsys) -> None:
    code = main(["chat", str(write_frames(tmp_path / "v")), "--box", "0:1,2"])
    assert code == 2 and "expected 4 comma-separated numbers" in capsys.readouterr().err


def predict_args(bench: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", "--model", "sama-tiny", "--data", str(bench / "bench.json"), "--mask-dict",
            str(bench / "bench_mask_dict.json"), "--out", str(out), "--max-new-tokens", "1", "--no-progress", *extra]


def test_predict_resumes_without_duplicates(synthetic_bench, tmp_path, use_tiny, capsys) -> None:
    out = tmp_path / "pred.jsonl"
    assert main(predict_args(synthetic_bench, out, "--limit", "2")) == 0
    assert "2 new prediction(s) for 2 question(s)" in capsys.readouterr().err
    assert main(predict_args(synthetic_bench, out, "--limit", "3")) == 0
    assert "1 new prediction(s) for 3 question(s)" in capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and len({r["question_id"] for r in rows}) == 3
    assert all(r["dialogue"] == "independent" for r in rows)  # the evaluation loop's stamp


def test_predict_tasks_shards_and_errors(synthetic_bench, tmp_path, use_tiny, capsys) -> None:
    out = tmp_path / "c.jsonl"
    assert main(predict_args(synthetic_bench, out, "--task", "sama-bench-c", "--limit", "1",
                             "--video-root", str(synthetic_bench))) == 0
    assert json.loads(out.read_text())["masks"] == []
    rvos = synthetic_bench / "rvos" / "bench"
    assert main(["predict", "--model", "sama-tiny", "--data", str(rvos), "--task", "rvos", "--out",
                 str(tmp_path / "r.jsonl"), "--shard", "0/2", "--limit", "2", "--max-new-tokens", "1",
                 "--no-progress"]) == 0
    assert (tmp_path / "r.shard-0-of-2.jsonl").is_file()
    capsys.readouterr()
    assert main(predict_args(synthetic_bench, out, "--video-root", str(tmp_path))) == 2
    assert "no frame folder for" in capsys.readouterr().err
    assert main(["predict", "--model", "sama-tiny", "--data", str(synthetic_bench / "bench.json"), "--out",
                 str(out)]) == 2
    assert "pass its mask dictionary with --mask-dict" in capsys.readouterr().err
    assert main(predict_args(synthetic_bench, out, "--task", "rvos", "--dialogue", "history")) == 2
    assert "--dialogue history applies to --task sama-bench-g only" in capsys.readouterr().err


def test_demo_writes_masks_overlays_and_the_dialogue(tmp_path, use_tiny, forced_seg, capsys) -> None:
    stale = tmp_path / "demo" / "turn3" / "object_0_from-a-previous-run.json"  # a rerun must not keep it
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    keep = tmp_path / "demo" / "notes.txt"
    keep.write_text("mine")
    assert main(["demo", "--out", str(tmp_path / "demo"), "--model", "sama-tiny", "--seed", "3",
                 "--max-new-tokens", "2"]) == 0
    printed = capsys.readouterr().out
    assert "UNTRAINED" in printed and "truth [1]:" in printed and "[5/5]" in printed
    demo = tmp_path / "demo"
    dialogue = json.loads((demo / "dialogue.json").read_text())
    assert dialogue["trained"] is False and len(dialogue["turns"]) == 3
    first = dialogue["turns"][0]
    from sama.config import SamaConfig
    from sama.data.sampling import dense_frame_indices

    sampling = SamaConfig.from_name("sama-tiny").sampling
    dense = dense_frame_indices(24, sampling.num_dense, sampling.dense_policy, interval=sampling.sparse_interval,
                                max_frames=sampling.max_frames, min_frames=sampling.min_frames)
    assert first["box"]["frame"] == dense[0] != 0  # drawn where SAMA reads it (SAMA.md §1.4), not shifted
    assert "<mask>" in first["question"] and first["expected"].startswith("It ")
    assert dialogue["turns"][1]["kind"] == "followup_colour" and dialogue["turns"][2]["kind"] == "objects"
    for name in ("overlay.gif", "overlay.mp4", "example.gif", "example.mp4", "ground_truth/overlay.gif"):
        assert (demo / name).stat().st_size > 0, name
    with Image.open(demo / "overlay.gif") as gif:
        assert gif.size == (288, 288) and gif.n_frames == 24  # 96x96 upscaled 3x so the labels stay readable
    assert len(list((demo / "turn1").glob("object_*.json"))) == 2  # one RLE JSON per grounded object
    assert len(list((demo / "turn3" / "object_0_thing-0").glob("*.png"))) == 24  # a PNG per frame
    assert not stale.exists() and keep.read_text() == "mine"
    gt = sorted((demo / "ground_truth").glob("object_*.json"))
    assert len(gt) == len(dialogue["scene"]["objects"])


def test_demo_box_comes_from_the_ground_truth() -> None:
    from sama.data.masks import mask_xyxy
    from sama.serve.demo import box_frame, demo_scene, script

    scene = demo_scene(3)
    frame = box_frame(scene, [6, 15])
    assert frame == 6 and box_frame(scene, []) == 0
    turns = script(scene, frame)
    target = turns[0].box_object
    x1, y1, x2, y2 = mask_xyxy(scene.masks[target, frame])
    visible = scene.masks[target, frame]
    assert visible[y1:y2, x1:x2].sum() == visible.sum() and visible[y1, :].any() and visible[:, x2 - 1].any()
    assert turns[1].expected == f"It is {scene.objects[target].colour}."
    with pytest.raises(Exception, match="--seed must be a non-negative integer"):
        demo_scene(-1)


def test_display_scale_only_enlarges_small_videos() -> None:
    from sama.serve.outputs import MIN_DISPLAY_SIDE, display_scale, slug

    assert MIN_DISPLAY_SIDE == 288
    assert (display_scale(96, 96), display_scale(24, 32), display_scale(720, 1280)) == (3, 9, 1)
    assert slug("The <red> circle!") == "the-red-circle" and slug("???") == "object"
