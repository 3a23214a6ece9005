"""``sama predict``: batch predictions for a benchmark file with a model, written through the evaluation layer's
resumable, shardable prediction loop (``sama.evaluate.benchmarks.runner.predict`` + ``PredictionStore``).

The evaluation loaders read a benchmark *folder* with fixed file names; ``--data FILE.json --mask-dict F`` are
linked into a staging folder under those names, and ``--video-root`` says where the frame folders are
(``<root>/<video>/`` or ``<root>/JPEGImages/<video>/``; default: the folder of the JSON file).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sama.errors import ConfigError, DataError

TASKS = ("sama-bench-g", "sama-bench-c", "rvos")
DIALOGUE_MODES = ("independent", "history")  # METRICS.md §7.1: the release evaluates without history


@dataclass
class PredictJob:
    """Everything ``sama predict`` needs."""

    model: str
    data: Path
    out: Path
    task: str = "sama-bench-g"
    mask_dict: Path | None = None
    video_root: Path | None = None
    dialogue: str = "independent"
    shard: tuple[int, int] | None = None
    limit: int | None = None
    progress: bool = True
    model_options: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.dialogue not in DIALOGUE_MODES:
            raise ConfigError(f"--dialogue {self.dialogue!r}: expected one of {', '.join(DIALOGUE_MODES)}")
        if self.dialogue == "history" and self.task != "sama-bench-g":
            raise ConfigError("--dialogue history applies to --task sama-bench-g only (the other tasks are "
                              "single questions)")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        if not self.data.exists():
            raise DataError("benchmark data not found (expected a benchmark folder or its JSON file)",
                            file=str(self.data), field="--data")
        if self.data.is_file() and self.mask_dict is None and self.task != "rvos":
            raise ConfigError(f"--data {self.data} is a file: pass its mask dictionary with --mask-dict")
        if self.mask_dict is not None and not self.mask_dict.is_file():
            raise DataError("mask dictionary not found", file=str(self.mask_dict), field="--mask-dict")
        if self.video_root is not None and not self.video_root.is_dir():
            raise DataError("video root folder not found", file=str(self.video_root), field="--video-root")


def _stage(job: PredictJob, staging: Path) -> Path:
    """The folder the evaluation loader reads: ``--data`` itself, or links to the given files under fixed names."""
    if job.data.is_dir():
        if job.mask_dict is None:
            return job.data
        names = {}  # a folder plus an explicit mask dictionary: link the folder's files next to the given one
        for item in job.data.iterdir():
            names[item.name] = item
    else:
        names = {}
    if job.task == "rvos":
        from sama.evaluate.benchmarks.rvos import MASK_DICT_NAME, META_NAMES

        if job.data.is_file():
            names[META_NAMES[0]] = job.data
        if job.mask_dict is not None:
            names[MASK_DICT_NAME] = job.mask_dict
    else:
        from sama.evaluate.benchmarks.sama_bench_g import BENCH_JSON, BENCH_MASK_DICT

        if job.data.is_file():
            names[BENCH_JSON] = job.data
        if job.mask_dict is not None:
            names[BENCH_MASK_DICT] = job.mask_dict
    for name, target in names.items():
        os.symlink(target.resolve(), staging / name)
    return staging


def load_bench(job: PredictJob, folder: Path) -> Any:
    """The benchmark's questions for the task (frames under ``--video-root`` when given)."""
    if job.task == "sama-bench-g":
        from sama.evaluate.benchmarks.sama_bench_g import BenchGOptions, load_bench_g

        bench = load_bench_g(folder, BenchGOptions(dialogue=job.dialogue))
    elif job.task == "sama-bench-c":
        from sama.evaluate.benchmarks.sama_bench_c import load_bench_c

        bench = load_bench_c(folder)
    else:
        from sama.evaluate.benchmarks.rvos import load_rvos

        bench = load_rvos("rvos", folder, with_masks=(folder / "mask_dict.json").exists())
    if job.limit is not None:
        bench.questions = bench.questions[: job.limit]
    root = job.video_root or (job.data.parent if job.data.is_file() else None)
    if root is not None:
        for question in bench.questions:
            candidates = (root / question.video_id, root / "JPEGImages" / question.video_id)
            question.video_dir = next((c for c in candidates if c.is_dir()), None)
    missing = sorted({q.video_id for q in bench.questions if q.video_dir is None})
    if missing:
        where = job.video_root or folder
        raise DataError(f"no frame folder for {len(missing)} video(s) (first: {missing[0]!r}); expected "
                        f"<video root>/<video>/ with the frames", file=str(where), field="--video-root")
    return bench


def run_predict(job: PredictJob) -> tuple[Path, int, int]:
    """Produce the missing predictions; returns (file written, new predictions, questions in this run)."""
    from sama.evaluate.benchmarks.runner import RunSettings, predict

    job.check()
    with tempfile.TemporaryDirectory(prefix="sama-predict-") as staging:
        bench = load_bench(job, _stage(job, Path(staging)))
    settings = RunSettings(data=job.data, pred=job.out, model=job.model, shard=job.shard, progress=job.progress,
                           model_options=dict(job.model_options))
    stamp = {"dialogue": job.dialogue} if job.task == "sama-bench-g" else None
    path, _, produced = predict(bench, settings, stamp=stamp)
    return path, produced, len(bench.questions)
