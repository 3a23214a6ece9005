"""Benchmark runners on tiny hand-built benchmarks: oracle = 1.0, perturbed < oracle and monotone in strength,
skip-rule counts, shard + merge = unsharded, resume after SIGKILL."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sama.data.masks import MaskDict, rle_encode
from sama.evaluate.benchmarks.base import OraclePredictor, PerturbedPredictor
from sama.evaluate.benchmarks.runner import RunSettings
from sama.evaluate.benchmarks.sama_bench_g import (
    BenchGOptions,
    ExactTextSimilarity,
    load_bench_g,
    run_bench_g,
    score_bench_g,
)
from sama.evaluate.predictions import PredictionStore, merge, read_predictions

H, W, T = 24, 32, 6


def box_volume(top: int, left: int, height: int, width: int, speed: int = 1) -> np.ndarray:
    """A (T, H, W) rectangle moving right by ``speed`` px per frame."""
    volume = np.zeros((T, H, W), dtype=bool)
    for t in range(T):
        volume[t, top : top + height, left + speed * t : left + speed * t + width] = True
    return volume


OBJECTS = {"1": box_volume(2, 1, 8, 8), "2": box_volume(13, 4, 9, 10), "3": box_volume(5, 12, 12, 9, speed=0)}


def write_mask_dict(path: Path, objects: dict[str, np.ndarray]) -> None:
    path.write_text(json.dumps({k: [rle_encode(f) if f.any() else None for f in v] for k, v in objects.items()}))


def human(text: str, qid: str) -> dict:
    return {"from": "human", "value": text, "question_id": qid}


def gpt(text: str) -> dict:
    return {"from": "gpt", "value": text}


def build_bench_g(root: Path) -> Path:
    """Two videos, 4 valid questions, 2 turns the official loader drops (mask_count, seg_count)."""
    frames = [f"{i:05d}" for i in range(T)]
    records = [
        {"video": "toy/vidA", "video_id": "vidA", "height": H, "width": W, "frames": frames, "anno_map": [1, 2],
         "conversation": [
             human("What is <mask> doing?", "A-0"), gpt("<p> The red box </p> [SEG] slides to the right."),
             human("Where are <mask> and <mask>?", "A-1"),
             gpt("<p> the red box </p> [SEG] is above <p> the blue box </p> [SEG] all the time."),
             human("Describe <mask>.", "A-2"), gpt("It is <p> a red box </p> [SEG]."),  # 1 <mask>, 2 objects
         ],
         "obj_masks": [[1], [1, 2], [1, 2]], "groundtruth": [[[1]], [[1], [2]], [[1]]],
         "description": {"obj0": "A red box slides slowly to the right across the frame.",
                         "obj1": "A blue box moves to the right below the red box."},
         "description_id": {"obj0": "c-A0", "obj1": "c-A1"}},
        {"video": "toy/vidB", "video_id": "vidB", "height": H, "width": W, "frames": frames, "anno_map": [3],
         "conversation": [
             human("What does <mask> do?", "B-0"), gpt("<p> the green block </p> [SEG] stays in place."),
             human("Is <mask> moving?", "B-1"), gpt("No, <p> the green block </p> [SEG] is still."),
             human("And now <mask>?", "B-2"), gpt("Still <p> the green block </p> [SEG] there."),  # 2 GT entries
         ],
         "obj_masks": [[3], [3], [3]], "groundtruth": [[[3]], [[], [3]], [[3], [3]]],
         "description": {"obj0": "A green block stays still in the middle of the frame."},
         "description_id": {"obj0": "c-B0"}},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "bench.json").write_text(json.dumps(records))
    write_mask_dict(root / "bench_mask_dict.json", OBJECTS)
    return root


def fast_options(**overrides: object) -> BenchGOptions:
    return BenchGOptions(**{"captions": False, "text_similarity": "exact", **overrides})


@pytest.fixture()
def bench_g_dir(tmp_path: Path) -> Path:
    return build_bench_g(tmp_path / "bench")


def predictions_of(bench, predictor) -> dict:
    return {q.question_id: predictor.predict(q) for q in bench.questions}


def test_bench_g_loader_reports_skip_rules(bench_g_dir: Path) -> None:
    bench = load_bench_g(bench_g_dir, fast_options())
    assert sorted(q.question_id for q in bench.questions) == ["A-0", "A-1", "B-0", "B-1"]
    assert bench.skipped == {"mask_count": 1, "seg_count": 1}


def test_bench_g_oracle_scores_one_and_perturbed_is_monotone(bench_g_dir: Path) -> None:
    options = fast_options(recall_mode="fixed")
    bench = load_bench_g(bench_g_dir, options)
    results = []
    for strength in (0.0, 0.1, 0.25, 0.5):
        predictor = OraclePredictor(bench.references) if strength == 0 else PerturbedPredictor(bench.references, strength)
        scores, _per_video, _counts, _ = score_bench_g(bench, predictions_of(bench, predictor), options,
                                                     similarity=ExactTextSimilarity())
        results.append(scores)
    assert results[0]["miou"] == pytest.approx(1.0)
    assert results[0]["recall"] == pytest.approx(1.0)
    mious = [r["miou"] for r in results]
    recalls = [r["recall"] for r in results]
    assert all(a > b for a, b in itertools.pairwise(mious)), mious
    assert all(a >= b for a, b in itertools.pairwise(recalls)) and recalls[-1] < recalls[0], recalls


def test_bench_g_faithful_modes_differ_on_empty_groundtruth_entry(bench_g_dir: Path) -> None:
    """B-1 has groundtruth [[], [3]]: faithful GT assembly gives [None, vol3], which breaks the cropped recall."""
    bench = load_bench_g(bench_g_dir, fast_options())
    preds = predictions_of(bench, OraclePredictor(bench.references))
    fixed, per_fixed, _, _ = score_bench_g(bench, preds, fast_options(recall_mode="fixed", gt_mode="fixed"),
                                           similarity=ExactTextSimilarity())
    faithful, per_faithful, _, _ = score_bench_g(bench, preds, fast_options(recall_mode="faithful",
                                                                            gt_mode="faithful"),
                                                 similarity=ExactTextSimilarity())
    assert per_fixed["toy/vidB"]["recall"] == 1.0
    assert per_faithful["toy/vidB"]["recall"] == pytest.approx(0.5)  # B-0 matches, B-1 does not
    assert per_faithful["toy/vidA"]["recall"] == 1.0  # one phrase per mask, same order: both modes agree
    assert faithful["miou"] == fixed["miou"] == pytest.approx(1.0)


def test_bench_g_history_mode_passes_earlier_turns(bench_g_dir: Path) -> None:
    bench = load_bench_g(bench_g_dir, fast_options(dialogue="history"))
    second = next(q for q in bench.questions if q.question_id == "A-1")
    assert second.history == [("What is <mask> doing?", "<p> The red box </p> [SEG] slides to the right.")]
    assert load_bench_g(bench_g_dir, fast_options()).question("A-1").history == []


def test_bench_g_prompt_masks_are_boxes_by_default(bench_g_dir: Path) -> None:
    bench = load_bench_g(bench_g_dir, fast_options())
    (prompt,) = bench.question("B-0").ref_masks()
    assert prompt.shape == (T, H, W) and np.array_equal(prompt, OBJECTS["3"])  # a rectangle is its own box
    raw = load_bench_g(bench_g_dir, fast_options(box_prompts=False)).question("B-0").ref_masks()[0]
    assert np.array_equal(raw, OBJECTS["3"])


def test_run_bench_g_writes_report_and_counts_lenient_exclusions(bench_g_dir: Path, tmp_path: Path) -> None:
    bench = load_bench_g(bench_g_dir, fast_options())
    pred = tmp_path / "pred.jsonl"
    with PredictionStore(pred) as store:
        for qid, row in predictions_of(bench, OraclePredictor(bench.references)).items():
            if qid != "B-1":
                store.append(row)
    settings = RunSettings(data=bench_g_dir, pred=pred, out=tmp_path / "out", lenient=True, progress=False)
    summary_path, _ = run_bench_g(settings, fast_options(recall_mode="fixed"))
    summary = json.loads(summary_path.read_text())
    assert summary["scores"]["miou"] == pytest.approx(1.0)
    assert summary["counts"]["predictions_excluded"]["missing"] == 1
    assert summary["counts"]["questions_dropped_by_loader"] == {"mask_count": 1, "seg_count": 1}
    assert summary["options"]["recall_mode"] == "fixed" and summary["options"]["text_similarity"] == "exact-match"
    for name in ("summary.md", "per_video.json", "plot.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_shard_and_merge_equal_unsharded_run(bench_g_dir: Path, tmp_path: Path) -> None:
    from sama.evaluate.benchmarks.runner import predict

    bench = load_bench_g(bench_g_dir, fast_options())
    oracle = OraclePredictor(bench.references)
    full = tmp_path / "full.jsonl"
    predict(bench, RunSettings(data=bench_g_dir, pred=full, progress=False), oracle)
    shards = []
    for index in range(3):
        path, complete, _ = predict(bench, RunSettings(data=bench_g_dir, pred=tmp_path / "p.jsonl", shard=(index, 3),
                                                       progress=False), oracle)
        assert not complete
        shards.append(path)
    sizes = [len(read_predictions(p)[0]) for p in shards]
    assert sum(sizes) == len(bench.questions)
    merged = tmp_path / "merged.jsonl"
    report = merge(shards, merged)
    assert report.rows == len(bench.questions)
    assert read_predictions(merged)[0] == read_predictions(full)[0]


def test_torch_distributed_env_selects_the_shard(bench_g_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from sama.evaluate.benchmarks.runner import predict

    bench = load_bench_g(bench_g_dir, fast_options())
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    path, complete, _ = predict(bench, RunSettings(data=bench_g_dir, pred=tmp_path / "p.jsonl", progress=False),
                                OraclePredictor(bench.references))
    assert path.name == "p.shard-1-of-2.jsonl" and not complete


RESUME_SCRIPT = """
import sys
from pathlib import Path
from sama.evaluate.benchmarks.base import OraclePredictor
from sama.evaluate.benchmarks.runner import RunSettings, predict
from sama.evaluate.benchmarks.sama_bench_g import BenchGOptions, load_bench_g
data, pred, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
bench = load_bench_g(data, BenchGOptions(captions=False))
bench.questions = bench.questions * 1  # same questions
predict(bench, RunSettings(data=data, pred=pred, progress=False), OraclePredictor(bench.references, delay_s=delay))
"""


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    data = build_bench_g(tmp_path / "bench")
    # A bigger bench: 12 copies of video B's valid questions under new ids.
    records = json.loads((data / "bench.json").read_text())
    extra = []
    for k in range(12):
        record = json.loads(json.dumps(records[1]))
        record["video"], record["video_id"] = f"toy/vidB{k}", f"vidB{k}"
        for message in record["conversation"]:
            if "question_id" in message:
                message["question_id"] = f"B{k}-{message['question_id']}"
        extra.append(record)
    (data / "bench.json").write_text(json.dumps(records + extra))
    pred = tmp_path / "pred.jsonl"
    script = tmp_path / "resume.py"
    script.write_text(RESUME_SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, str(script), str(data), str(pred), "0.2"], env=env)
    try:
        for _ in range(600):  # wait (bounded) until some but not all predictions are written
            if pred.exists() and pred.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    rows_before, _ = read_predictions(pred)
    expected_total = len(load_bench_g(data, fast_options()).questions)
    assert 3 <= len(rows_before) < expected_total
    subprocess.run([sys.executable, str(script), str(data), str(pred), "0"], env=env, check=True)
    lines = [json.loads(line) for line in pred.read_text().splitlines()]
    ids = [line["question_id"] for line in lines]
    assert len(ids) == len(set(ids)) == expected_total
    bench = load_bench_g(data, fast_options())
    assert set(ids) == {q.question_id for q in bench.questions}


def test_mask_dict_fixture_round_trips(tmp_path: Path) -> None:
    write_mask_dict(tmp_path / "m.json", OBJECTS)
    md = MaskDict.load(tmp_path / "m.json")
    assert np.array_equal(md.volume(["1"], T, H, W), OBJECTS["1"])


# ------------------------------------------------------------------------------------------------------------ RVOS
def build_rvos(root: Path, *, revos: bool = False, davis: bool = False) -> Path:
    """MeViS-form folder: vidA (objects 1, 2 and a two-object expression), vidB (object 3)."""
    frames = [f"{i:05d}" for i in range(T)]
    if davis:  # Ref-DAVIS17: 4 expressions (annotation sets) per object
        exps_a = {str(k): {"exp": f"object {1 + k // 4} take {k % 4}", "anno_id": [1 + k // 4], "obj_id": k // 4}
                  for k in range(8)}
        exps_b = {str(k): {"exp": f"block take {k}", "anno_id": [3], "obj_id": 0} for k in range(4)}
        exps_a["8"] = {"exp": "both", "anno_id": [1, 2]}
    else:
        exps_a = {"0": {"exp": "the red box", "anno_id": [1]}, "1": {"exp": "the blue box", "anno_id": [2]},
                  "2": {"exp": "both boxes", "anno_id": [1, 2]}}
        exps_b = {"0": {"exp": "the green block", "anno_id": [3]}}
    if revos:
        for k, e in enumerate([*exps_a.values(), *exps_b.values()]):
            e["type_id"] = k % 2
    meta = {"videos": {"vidA": {"frames": frames, "expressions": exps_a},
                       "vidB": {"frames": frames, "expressions": exps_b}}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    write_mask_dict(root / "mask_dict.json", OBJECTS)
    return root


def rvos_scores(name: str, data: Path, tmp_path: Path, predictor_factory, **kwargs) -> dict:
    from sama.evaluate.benchmarks.rvos import load_rvos, run_rvos

    bench = load_rvos(name, data, with_masks=name != "ref-ytvos")
    pred = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}.jsonl"
    with PredictionStore(pred) as store:
        for q in bench.questions:
            store.append(predictor_factory(bench).predict(q))
    out = tmp_path / f"out-{pred.stem}"
    summary_path, _ = run_rvos(name, RunSettings(data=data, pred=pred, out=out, progress=False), **kwargs)
    return json.loads(summary_path.read_text())


@pytest.mark.parametrize("name", ["mevis", "davis17", "revos"])
def test_rvos_oracle_is_perfect_and_perturbation_monotone(name: str, tmp_path: Path) -> None:
    data = build_rvos(tmp_path / "data", revos=name == "revos")
    key = {"mevis": "J&F", "davis17": "sama_J&F", "revos": "overall_JF"}[name]
    kwargs = {"protocol": "sama"} if name == "davis17" else {}
    values = []
    for strength in (0.0, 0.1, 0.25, 0.5):
        factory = (lambda b: OraclePredictor(b.references)) if strength == 0 else (
            lambda b, s=strength: PerturbedPredictor(b.references, s))
        values.append(rvos_scores(name, data, tmp_path, factory, **kwargs)["scores"][key])
    assert values[0] == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(values)), values


def test_revos_reports_categories_and_foreground_source(tmp_path: Path) -> None:
    data = build_rvos(tmp_path / "data", revos=True)
    summary = rvos_scores("revos", data, tmp_path, lambda b: OraclePredictor(b.references))
    assert set(summary["categories"]) == {"referring", "reason", "overall"}
    assert summary["categories"]["overall"]["A"] == pytest.approx(1.0)
    assert summary["options"]["foreground"] == "derived"
    # with the official foreground file (and VISA's faithful arithmetic): the oracle has no false positive, R = 1
    foreground = np.logical_or.reduce([OBJECTS["1"], OBJECTS["2"]])
    (data / "mask_dict_foreground.json").write_text(json.dumps(
        {"vidA": [rle_encode(f) for f in foreground], "vidB": [rle_encode(f) for f in OBJECTS["3"]]}))
    summary = rvos_scores("revos", data, tmp_path, lambda b: OraclePredictor(b.references), revos_faithful=True)
    assert summary["options"]["foreground"] == "file" and summary["options"]["revos_faithful"] is True
    assert summary["categories"]["overall"]["R"] == pytest.approx(1.0)


def test_davis17_referformer_protocol(tmp_path: Path) -> None:
    data = build_rvos(tmp_path / "data", davis=True)
    summary = rvos_scores("davis17", data, tmp_path, lambda b: OraclePredictor(b.references), protocol="both")
    assert summary["scores"]["referformer_J&F"] == pytest.approx(1.0)
    assert summary["scores"]["sama_J&F"] == pytest.approx(1.0)
    assert summary["counts"]["referformer_unused_expressions"] == {"multi_object_expressions": 1,
                                                                    "expressions_beyond_4_per_object": 0}
    perturbed = rvos_scores("davis17", data, tmp_path, lambda b: PerturbedPredictor(b.references, 0.25),
                            protocol="referformer")
    assert perturbed["scores"]["referformer_J&F"] < 0.99


def test_ref_ytvos_submission_layout(tmp_path: Path) -> None:
    import zipfile

    from PIL import Image

    from sama.evaluate.benchmarks.rvos import load_rvos

    data = build_rvos(tmp_path / "data")
    for video in ("vidA", "vidB"):  # no GT masks in Ref-YTVOS: the frame size comes from the JPEG frames
        (data / "JPEGImages" / video).mkdir(parents=True)
        for t in range(T):
            Image.new("RGB", (W, H)).save(data / "JPEGImages" / video / f"{t:05d}.jpg")

    gt = load_rvos("mevis", data)  # same expressions, with masks, to build the predictions
    summary = rvos_scores("ref-ytvos", data, tmp_path, lambda b: OraclePredictor(gt.references))
    with zipfile.ZipFile(summary["scores"]["submission"]) as archive:
        names = archive.namelist()
        assert len(names) == 4 * T and "Annotations/vidA/2/00003.png" in names
        mask = np.array(Image.open(io.BytesIO(archive.read("Annotations/vidA/0/00002.png"))))
    assert set(np.unique(mask)) == {0, 255}
    assert np.array_equal(mask == 255, OBJECTS["1"][2])
    mevis = rvos_scores("ref-ytvos", data, tmp_path, lambda b: OraclePredictor(gt.references), layout="mevis")
    with zipfile.ZipFile(mevis["scores"]["submission"]) as archive:
        assert "vidB/0/00005.png" in archive.namelist() and len(archive.namelist()) == 4 * T


# --------------------------------------------------------------------------------------------------------- Bench-C
def bench_c_summary(data: Path, tmp_path: Path, predictor_factory, **kwargs) -> dict:
    from sama.evaluate.benchmarks.sama_bench_c import load_bench_c, run_bench_c

    bench = load_bench_c(data)
    pred = tmp_path / f"c-{len(list(tmp_path.iterdir()))}.jsonl"
    with PredictionStore(pred) as store:
        for q in bench.questions:
            store.append(predictor_factory(bench).predict(q))
    summary_path, _ = run_bench_c(RunSettings(data=data, pred=pred, out=tmp_path / f"out-{pred.stem}",
                                              progress=False), **kwargs)
    return json.loads(summary_path.read_text())


def test_bench_c_questions_use_raw_masks_and_description_ids(bench_g_dir: Path) -> None:
    from sama.evaluate.benchmarks.sama_bench_c import BENCH_C_QUESTION, load_bench_c

    bench = load_bench_c(bench_g_dir)
    assert sorted(q.question_id for q in bench.questions) == ["c-A0", "c-A1", "c-B0"]
    question = bench.question("c-A1")
    assert question.text == BENCH_C_QUESTION == "Please describe the region <mask> in the video in detail."
    assert question.expected_shape() is None and not question.box_prompts
    assert np.array_equal(question.ref_masks()[0], OBJECTS["2"])


@pytest.mark.skipif(__import__("shutil").which("java") is None, reason="caption metrics need Java")
def test_bench_c_caption_metrics_oracle_maximal_perturbed_lower(bench_g_dir: Path, tmp_path: Path) -> None:
    oracle = bench_c_summary(bench_g_dir, tmp_path, lambda b: OraclePredictor(b.references), meteor=False)
    perturbed = bench_c_summary(bench_g_dir, tmp_path, lambda b: PerturbedPredictor(b.references, 0.5), meteor=False)
    for metric in ("Bleu_1", "Bleu_4", "ROUGE_L"):
        assert oracle["scores"][metric] == pytest.approx(1.0, abs=1e-6)
        assert perturbed["scores"][metric] < oracle["scores"][metric] - 0.1
    assert oracle["scores"]["SPICE"] is None and "SPICE" in oracle["options"]["caption_unavailable"]
    assert oracle["options"]["meteor"] is False


# ------------------------------------------------------------------------------------------------ synthetic world
@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory) -> Path:
    from sama.data.synthetic.scene import SceneConfig
    from sama.data.synthetic.writer import generate_dataset

    out = tmp_path_factory.mktemp("synthetic")
    generate_dataset(out, 2, seed=3, config=SceneConfig(height=32, width=48, num_frames=6), split_fractions=(0, 0, 1),
                     max_turns=4, progress=False)
    return out


def test_synthetic_bench_g_oracle_and_perturbed(synthetic_dir: Path) -> None:
    options = fast_options(recall_mode="fixed")
    bench = load_bench_g(synthetic_dir, options)
    assert bench.questions and all(q.video_dir is not None for q in bench.questions)  # frames found for a model
    results = [score_bench_g(bench, predictions_of(bench, p), options, similarity=ExactTextSimilarity())
               for p in (OraclePredictor(bench.references), PerturbedPredictor(bench.references, 0.3))]
    (oracle, oracle_videos, oracle_counts, _), (perturbed, _, _, _) = results
    assert oracle_counts["diagnostic_miou_grounded_questions_only"] == pytest.approx(1.0)
    assert oracle_counts["questions_without_gt_masks (mIoU 0 by definition)"] > 0
    # METRICS.md §7.2: a question whose answer has no [SEG] scores mIoU 0 even for a perfect model; all others 1.
    per_question = [q for v in oracle_videos.values() for q in v["questions"]]
    assert {q["miou"] for q in per_question if q["num_gt_masks"]} == {1.0}
    assert {q["miou"] for q in per_question if not q["num_gt_masks"]} <= {0.0}
    assert oracle["recall"] == pytest.approx(1.0)
    assert perturbed["miou"] < oracle["miou"] and perturbed["recall"] < oracle["recall"]


def test_synthetic_mevis_oracle(synthetic_dir: Path, tmp_path: Path) -> None:
    data = synthetic_dir / "rvos" / "bench"
    summary = rvos_scores("mevis", data, tmp_path, lambda b: OraclePredictor(b.references))
    assert summary["scores"]["J&F"] == pytest.approx(1.0)
    from sama.evaluate.benchmarks.rvos import load_rvos

    assert all(q.video_dir is not None for q in load_rvos("mevis", data).questions)


@pytest.mark.slow
def test_minilm_similarity_and_judge_are_recorded(bench_g_dir: Path, tmp_path: Path) -> None:
    """The default recall encoder (packaged all-MiniLM-L6-v2) and a judge object: names land in the summary."""

    class FakeJudge:
        name = "clair:fake-model"

        def score(self, candidates, targets) -> float:
            return 0.7

        def record(self) -> dict:
            return {"metric": "clair", "model": "fake-model"}

    bench = load_bench_g(bench_g_dir, fast_options())
    pred = tmp_path / "p.jsonl"
    with PredictionStore(pred) as store:
        for r in predictions_of(bench, OraclePredictor(bench.references)).values():
            store.append(r)
    options = BenchGOptions(captions=False, text_similarity="minilm", recall_mode="fixed")
    summary_path, _ = run_bench_g(RunSettings(data=bench_g_dir, pred=pred, out=tmp_path / "out", progress=False),
                                  options, judge=FakeJudge())
    summary = json.loads(summary_path.read_text())
    assert summary["scores"]["recall"] == pytest.approx(1.0) and summary["scores"]["clair"] == pytest.approx(0.7)
    assert "MiniLM" in summary["options"]["text_similarity"]
    assert summary["options"]["judge"] == {"metric": "clair", "model": "fake-model"}
