"""The steps every benchmark run shares: (optionally) produce predictions with a model — resumable and sharded —
then read and validate the prediction file against the benchmark, with every exclusion counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sama.errors import ConfigError
from sama.evaluate.benchmarks.base import Bench, Predictor, make_predictor, produce_predictions, select_shard
from sama.evaluate.predictions import (
    PredictionRow,
    PredictionStore,
    read_predictions,
    shard_from_env,
    shard_path,
    validate_predictions,
)


@dataclass
class RunSettings:
    """Options shared by every runner (the CLI's common flags)."""

    data: Path
    pred: Path
    out: Path | None = None
    model: str | None = None
    shard: tuple[int, int] | None = None
    lenient: bool = False
    missing_as_zero: bool = False  # RVOS: score an expression without prediction J = F = 0 (MeViS/VISA scripts)
    progress: bool = True
    model_options: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"data": str(self.data), "pred": str(self.pred), "model": self.model, "lenient": self.lenient,
                "missing_as_zero": self.missing_as_zero,
                "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None}


@dataclass
class Prepared:
    """Validated predictions ready to score (only the usable ones) and the counts of everything left out."""

    rows: dict[str, PredictionRow]
    counts: dict[str, Any]
    path: Path
    complete: bool = True  # False: this process wrote one shard; merge the shards before scoring


def predict(bench: Bench, settings: RunSettings, predictor: Predictor | None = None,
            stamp: dict[str, Any] | None = None) -> tuple[Path, bool, int]:
    """Run ``predictor`` (or ``--model``) on the questions of this shard not yet in the prediction file.

    Returns (file written, whether it covers the whole benchmark, number of new predictions). The shard comes from
    ``--shard i/n`` or else from RANK/WORLD_SIZE; a shard writes ``<pred stem>.shard-i-of-n.jsonl``.
    """
    if predictor is None:
        if settings.model is None:
            raise ConfigError("no predictor: pass --model")
        predictor = make_predictor(settings.model, bench, **settings.model_options)
    shard = settings.shard or shard_from_env()
    index, count = shard or (0, 1)
    path = shard_path(settings.pred, index, count)
    with PredictionStore(path, lenient=settings.lenient) as store:
        produced = produce_predictions(select_shard(bench.questions, shard), predictor, store,
                                       progress=settings.progress, stamp=stamp)
    return path, count == 1, produced


def prepare(bench: Bench, settings: RunSettings, predictor: Predictor | None = None,
            stamp: dict[str, Any] | None = None) -> Prepared:
    """Produce predictions if a model is given, then read + validate the file (lenient: count and exclude).

    Rows carrying a ``stamp`` key with a different value (e.g. produced with another dialogue mode) are an error.
    """
    produced = None
    path = settings.pred
    if predictor is not None or settings.model is not None:
        path, complete, produced = predict(bench, settings, predictor, stamp)
        if not complete:
            return Prepared({}, {"predictions_produced": produced}, path, complete=False)
    rows, read_report = read_predictions(path, lenient=settings.lenient)
    validation = validate_predictions(rows, bench.expected_shapes(),
                                      lenient=settings.lenient or settings.missing_as_zero, file=str(path))
    if settings.missing_as_zero and not settings.lenient and (validation.unknown or validation.invalid):
        # only missing predictions are tolerated by --missing-as-zero; anything else is still an error
        validate_predictions({q: rows[q] for q in [*validation.unknown, *validation.invalid]},
                             {q: s for q, s in bench.expected_shapes().items() if q in validation.invalid},
                             file=str(path))
    for key, value in (stamp or {}).items():
        other = next((row for row in rows.values() if key in row.extra and row.extra[key] != value), None)
        if other is not None:
            raise ConfigError(f"{path}: prediction {other.question_id} was produced with {key}={other.extra[key]!r} "
                              f"but this run uses {key}={value!r}; use a separate prediction file per setting")
    excluded = set(validation.unknown) | set(validation.invalid)
    usable = {qid: row for qid, row in rows.items() if qid not in excluded}
    counts: dict[str, Any] = {
        "questions_in_benchmark": len(bench.questions),
        "questions_dropped_by_loader": dict(bench.skipped),
        "prediction_file": read_report.as_dict(),
        "predictions_excluded": validation.as_dict(),
    }
    if produced is not None:
        counts["predictions_produced"] = produced
    return Prepared(usable, counts, path)
