"""Training datasets yielding ``TrainingSample`` (grounded chat, region description, referring VOS, synthetic world,
random clips) plus the repeat-factor mix, batches of referring turns, and the deterministic, resumable sampler the
trainer uses.

Sources: SAMA.md §2 (data mix, repeats), §3.2 (SAMA-239K loader rules), §1.2 (frame sampling), §5 (RVOS prompt).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sama.data.masks import MaskDict
from sama.data.rvos import load_meta_expressions
from sama.data.sample import SampleTurn, TrainingSample
from sama.data.sampling import MAX_FRAMES, MIN_FRAMES, SPARSE_INTERVAL, sparse_indices
from sama.data.schema import SEG_TOKEN, LoadedRecords, ObjectId, load_records
from sama.data.synthetic.language import ATTRIBUTE_KINDS, TEMPLATE_KINDS
from sama.data.video import open_video
from sama.errors import DataError

QA_PER_ITEM = 4  # SAMA.md §3.2: turns are chunked into groups of qa_per_item=4 in training
DESCRIPTIONS_PER_ITEM = 3  # SAMA.md §2: VideoRegionDescriptionDataset description_per_item=3
REGION_DESCRIPTION_QUESTION = "Please describe the region <mask> in the video in detail."  # SAMA.md §5 (Bench-C)
RVOS_QUESTION = "Please segment {expression}."  # SAMA.md §5: RVOS prompt "<image>\nPlease segment {exp}."
# RVOS answers. "grounded" (default) names the phrase, as SAMA's grounded-chat answers do; "sa2va" is the
# "Sure, [SEG]." form of Sa2VA's referring-segmentation data (LISA-style answer list; our reading, not in SAMA.md).
RVOS_ANSWER_STYLES = {"grounded": "Sure, <p> {expression} </p> [SEG].", "sa2va": "Sure, [SEG]."}


# ---------------------------------------------------------------- mixing and sampling


class MixedDataset(Dataset):
    """Concatenation where dataset ``i`` appears ``repeats[i]`` times (SAMA.md §2: "A repeat count multiplies a
    dataset's length", as ``ConcatDataset`` of repeated datasets in the official configs)."""

    def __init__(
        self, datasets: Sequence[Dataset], repeats: Sequence[int] | None = None, names: Sequence[str] | None = None
    ) -> None:
        repeats = list(repeats) if repeats is not None else [1] * len(datasets)
        if len(repeats) != len(datasets):
            raise ValueError(f"{len(datasets)} datasets but {len(repeats)} repeat factors")
        if any(r < 1 for r in repeats):
            raise ValueError(f"repeat factors must be >= 1, got {repeats}")
        self.datasets = list(datasets)
        self.repeats = repeats
        self.names = list(names) if names is not None else [type(d).__name__ for d in datasets]
        self.sizes = [len(d) * r for d, r in zip(self.datasets, self.repeats)]  # type: ignore[arg-type]
        self.offsets = np.cumsum([0, *self.sizes]).tolist()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Global index → (dataset number, index inside that dataset)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a mix of {len(self)} samples")
        which = bisect.bisect_right(self.offsets, index) - 1
        return which, (index - self.offsets[which]) % len(self.datasets[which])  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> TrainingSample | TurnBatch:
        which, local = self.locate(index)
        return self.datasets[which][local]

    def source_of(self, index: int) -> str | None:
        """The ``source`` of item ``index`` without loading it: its part's ``source`` (asked of a nested mix; None when
        the part does not tell)."""
        which, local = self.locate(index)
        part = self.datasets[which]
        return part.source_of(local) if isinstance(part, MixedDataset) else getattr(part, "source", None)

    def whole_samples(self) -> MixedDataset:
        """The mix without its :class:`ReferringTurnBatches` parts: the datasets whose items are whole samples, their
        repeats divided by their greatest common divisor (the same draw weights, without copies of one sample)."""
        keep = [i for i, d in enumerate(self.datasets) if not isinstance(d, ReferringTurnBatches)]
        divisor = math.gcd(*(self.repeats[i] for i in keep)) if keep else 1
        return MixedDataset([self.datasets[i] for i in keep], [self.repeats[i] // divisor for i in keep],
                            [self.names[i] for i in keep])

    def summary(self) -> list[dict[str, Any]]:
        return [
            {"name": n, "samples": len(d), "repeat": r, "effective": s}  # type: ignore[arg-type]
            for n, d, r, s in zip(self.names, self.datasets, self.repeats, self.sizes)
        ]


def is_referring_turn(turn: SampleTurn) -> bool:
    """A turn that refers to objects (``<mask>``) and grounds none (no ``[SEG]``): an attribute question, a region
    description."""
    return bool(turn.ref_masks) and not turn.seg_masks


def draw_from_sources(dataset: Dataset, rng: np.random.Generator, sources: Sequence[str]) -> TrainingSample | None:
    """One uniformly drawn item of ``dataset`` (one ``rng`` integer), or None when ``sources`` is given and the item's
    source is not among them; a :class:`MixedDataset` tells an item's source without loading it."""
    index = int(rng.integers(len(dataset)))  # type: ignore[arg-type]
    known = dataset.source_of(index) if sources and isinstance(dataset, MixedDataset) else None
    if known is not None and known not in sources:
        return None
    sample = dataset[index]
    return None if sources and sample.source not in sources else sample


def referring_turn_samples(sample: TrainingSample, keep: Callable[[SampleTurn], bool] | None = None
                           ) -> list[TrainingSample]:
    """The sample's referring turns that ``keep`` accepts, in order, each as a sample of that one turn (id
    ``<sample id>#<turn index>``)."""
    return [replace(sample, turns=[turn], sample_id=f"{sample.sample_id}#{k}") for k, turn in enumerate(sample.turns)
            if is_referring_turn(turn) and (keep is None or keep(turn))]


def referring_turn_stream(dataset: Dataset, rng: np.random.Generator, *, max_draws: int,
                          keep: Callable[[SampleTurn], bool] | None = None,
                          sources: Sequence[str] = ()) -> Iterator[TrainingSample]:
    """Endless one-turn samples: random samples of ``dataset`` (drawn with ``rng``, from ``sources`` only when given),
    each giving its referring turns that ``keep`` accepts, in order, as samples of that one turn. Raises
    ``DataError`` after ``max_draws`` draws in a row that gave none."""
    misses = 0
    while True:
        sample = draw_from_sources(dataset, rng, sources)
        turns = [] if sample is None else referring_turn_samples(sample, keep)
        misses = 0 if turns else misses + 1
        if misses >= max_draws:
            where = f" from sources {list(sources)}" if sources else ""
            raise DataError(f"no turn that refers to an object (<mask>) without grounding one in {max_draws} "
                            f"random samples{where}", field="turns")
        yield from turns


@dataclass
class TurnBatch:
    """One training item made of several one-turn samples, trained as one padded batch; without the dense-frame
    tokens unless ``dense_frames`` (see :class:`ReferringTurnBatches`)."""

    samples: list[TrainingSample]
    dense_frames: bool = False


class ReferringTurnBatches(Dataset):
    """Items of ``turns_per_item`` referring turns (:func:`is_referring_turn`) of random samples of ``base``, each a
    one-turn dialogue without the dense-frame tokens: SAMA training's attribute and description turns at ~35 LLM
    tokens instead of a whole ~340-token sample (the ``region_warmup`` layout, mixed into training). Item ``i`` is
    fixed by ``(seed, i)``, so a resumed run sees the same items; the length is that of ``base``."""

    MAX_DRAWS = 64  # random samples without a referring turn, in a row, before an item gives up

    def __init__(self, base: Dataset, turns_per_item: int, seed: int = 0, name: str = "") -> None:
        if turns_per_item < 1:
            raise DataError(f"turns per item must be >= 1, got {turns_per_item}", field="referring_turns")
        self.base, self.turns_per_item, self.seed, self.name = base, turns_per_item, seed, name

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> TurnBatch:
        if not 0 <= index < len(self):
            raise IndexError(index)
        stream = referring_turn_stream(self.base, np.random.default_rng([self.seed, index]), max_draws=self.MAX_DRAWS)
        try:
            return TurnBatch(list(itertools.islice(stream, self.turns_per_item)))
        except DataError as exc:
            raise DataError(f"dataset {self.name!r} (referring_turns: {self.turns_per_item}): {exc.reason}",
                            field="referring_turns") from None


@dataclass
class ResumableSampler:
    """Deterministic per-epoch order (seeded by ``seed`` and the epoch), split across ranks, batched.

    ``epoch_batches(epoch)[index:]`` is what a resumed run still has to consume, so a data position is just
    ``(epoch, index)``. Every rank gets the same number of batches (the tail that does not divide is dropped).
    """

    length: int
    batch_size: int
    seed: int = 0
    shuffle: bool = True
    rank: int = 0
    world_size: int = 1

    def epoch_order(self, epoch: int) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            return torch.randperm(self.length, generator=generator).tolist()
        return list(range(self.length))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        order = self.epoch_order(epoch)
        per_rank = len(order) // self.world_size
        mine = order[self.rank : per_rank * self.world_size : self.world_size]
        count = len(mine) // self.batch_size
        return [mine[i * self.batch_size : (i + 1) * self.batch_size] for i in range(count)]

    def batches_per_epoch(self) -> int:
        return (self.length // self.world_size) // self.batch_size


# ---------------------------------------------------------------- random clips (engine smoke tests)


@dataclass
class RandomClipDataset(Dataset):
    """Procedural clips of a moving coloured square with one grounded turn; no files, fully determined by seed."""

    num_samples: int = 16
    num_frames: int = 8
    height: int = 32
    width: int = 32
    seed: int = 0
    source: str = "random"
    _colours: list[str] = field(default_factory=lambda: ["red", "green", "blue"], repr=False)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> TrainingSample:
        if not 0 <= index < self.num_samples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        colour = int(rng.integers(0, 3))
        size = int(rng.integers(4, min(self.height, self.width) // 2))
        frames = np.zeros((self.num_frames, self.height, self.width, 3), np.uint8)
        frames[...] = rng.integers(0, 60, size=3, dtype=np.uint8)
        masks = np.zeros((self.num_frames, self.height, self.width), bool)
        y, x = int(rng.integers(0, self.height - size)), int(rng.integers(0, self.width - size))
        dx = int(rng.integers(-2, 3))
        for t in range(self.num_frames):
            xt = int(np.clip(x + dx * t, 0, self.width - size))
            masks[t, y : y + size, xt : xt + size] = True
            frames[t][masks[t], colour] = 255
        name = self._colours[colour]
        turn = SampleTurn(
            question="What is <mask> doing?",
            answer=f"The <p> {name} square </p> [SEG] moves {'left' if dx < 0 else 'right' if dx > 0 else 'nowhere'}.",
            ref_masks=[masks.copy()],
            seg_masks=[masks.copy()],
        )
        return TrainingSample(frames, list(range(self.num_frames)), [turn], self.source, f"random-{index}")


# ---------------------------------------------------------------- SAMA-239K / RVOS readers


def _require_path(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise DataError(f"no {what} given", field=what)
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found", file=str(path), field=what)
    return path


@dataclass
class FrameSampling:
    """Sparse frame selection of a training sample (SAMA.md §1.2); defaults are the official values."""

    interval: int = SPARSE_INTERVAL
    max_frames: int = MAX_FRAMES
    min_frames: int = MIN_FRAMES

    def indices(self, num_frames: int) -> list[int]:
        return sparse_indices(num_frames, self.interval, self.max_frames, self.min_frames)


class _VideoSamples(Dataset):
    """Shared plumbing: open a record's frames, read the sparse frames, decode object masks on them."""

    source: str
    mask_dict: MaskDict
    video_root: Path
    sampling: FrameSampling
    records: LoadedRecords

    def _open(
        self,
        annotations: str | Path,
        mask_dict: str | Path | MaskDict,
        video_root: str | Path,
        allow_pickle: bool,
        sampling: FrameSampling | None,
        source: str,
    ) -> Path:
        """Check the paths, load the mask dict (unless given), keep the sampling policy; the annotations' path."""
        annotations = _require_path(annotations, "annotations")
        self.mask_dict = (
            mask_dict
            if isinstance(mask_dict, MaskDict)
            else MaskDict.load(_require_path(mask_dict, "mask_dict"), allow_pickle=allow_pickle)
        )
        self.video_root = _require_path(video_root, "video_root")
        self.sampling = sampling or FrameSampling()
        self.source = source
        return annotations

    def _load_records(self, annotations: Path, strict: bool) -> None:
        """The SAMA-239K records of ``annotations`` (the path ``_open`` checked), validated against the mask dict."""
        self.records = load_records(annotations, strict=strict, mask_dict=self.mask_dict)
        self.report = self.records.report

    def _clip(self, folder: Path, stems: Sequence[str]) -> tuple[np.ndarray, list[int]]:
        video = open_video(folder, frames=list(stems))
        indices = self.sampling.indices(len(video))
        return video.frames(indices), indices

    def _masks(self, obj_ids: Sequence[ObjectId], indices: list[int], height: int, width: int) -> np.ndarray:
        """(T_s, H, W) OR of ``obj_ids`` on the sparse frames (SAMA.md §3.2: groundtruth ids are OR-ed)."""
        return self.mask_dict.volume(obj_ids, len(indices), height, width, frame_indices=indices)


class GroundedChatDataset(_VideoSamples):
    """SAMA-239K grounded multi-turn chat (``VideoRegionConvDataset``): each record's kept turns are cut into chunks
    of ``qa_per_item`` turns; in training, chunks without any ``[SEG]`` are dropped (SAMA.md §3.2) unless
    ``keep_ungrounded`` (conversations that ground nothing, e.g. the synthetic world's attribute questions).
    ``keep_question`` leaves out, before the chunking, every turn whose question it rejects (counted in ``skipped``)."""

    def __init__(
        self,
        annotations: str | Path,
        mask_dict: str | Path | MaskDict,
        video_root: str | Path,
        *,
        qa_per_item: int = QA_PER_ITEM,
        training: bool = True,
        strict: bool = False,
        allow_pickle: bool = False,
        sampling: FrameSampling | None = None,
        source: str = "sama239k_chat",
        keep_ungrounded: bool = False,
        keep_question: Callable[[str], bool] | None = None,
    ) -> None:
        if qa_per_item < 1:
            raise DataError(f"qa_per_item must be >= 1, got {qa_per_item}", field="qa_per_item")
        self._load_records(self._open(annotations, mask_dict, video_root, allow_pickle, sampling, source), strict)
        self.items: list[tuple[int, int]] = []  # (record position, first turn of the chunk)
        self.skipped: dict[str, int] = {"chunks_without_seg": 0, "records_without_turns": 0, "turns_left_out": 0}
        for position, record in enumerate(self.records):
            if keep_question is not None:
                kept = [turn for turn in record.turns if keep_question(turn.question)]
                self.skipped["turns_left_out"] += len(record.turns) - len(kept)
                record.turns = kept
            if not record.turns:
                self.skipped["records_without_turns"] += 1
            for start in range(0, len(record.turns), qa_per_item):
                chunk = record.turns[start : start + qa_per_item]
                if training and not keep_ungrounded and not any(SEG_TOKEN in turn.answer for turn in chunk):
                    self.skipped["chunks_without_seg"] += 1
                    continue
                self.items.append((position, start))
        self.qa_per_item = qa_per_item

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TrainingSample:
        position, start = self.items[index]
        record = self.records[position]
        frames, indices = self._clip(record.frame_folder(self.video_root), record.frames)
        height, width = frames.shape[1:3]
        turns = []
        for turn in record.turns[start : start + self.qa_per_item]:
            turns.append(
                SampleTurn(
                    question=turn.question,
                    answer=turn.answer,
                    ref_masks=[self._masks([obj], indices, height, width) for obj in turn.obj_masks],
                    seg_masks=[self._masks(ids, indices, height, width) for ids in turn.seg_groundtruth],
                )
            )
        return TrainingSample(frames, indices, turns, self.source, f"{record.video_id}/turns{start}")


class RegionDescriptionDataset(_VideoSamples):
    """SAMA-239K region captions (``VideoRegionDescriptionDataset``): ``descriptions_per_item`` objects per sample,
    each as one "Please describe the region <mask> in the video in detail." turn (SAMA.md §2, §5)."""

    def __init__(
        self,
        annotations: str | Path,
        mask_dict: str | Path | MaskDict,
        video_root: str | Path,
        *,
        descriptions_per_item: int = DESCRIPTIONS_PER_ITEM,
        strict: bool = False,
        allow_pickle: bool = False,
        sampling: FrameSampling | None = None,
        source: str = "sama239k_description",
    ) -> None:
        if descriptions_per_item < 1:
            raise DataError(
                f"descriptions_per_item must be >= 1, got {descriptions_per_item}", field="descriptions_per_item"
            )
        self._load_records(self._open(annotations, mask_dict, video_root, allow_pickle, sampling, source), strict)
        self.items: list[tuple[int, list[tuple[str, ObjectId]]]] = []
        self.skipped: dict[str, int] = {"records_without_description": 0}
        for position, record in enumerate(self.records):
            objects = [
                (key, obj)
                for key, obj in record.description_objects().items()
                if str(record.description.get(key, "")).strip()
            ]
            if not objects:
                self.skipped["records_without_description"] += 1
            for start in range(0, len(objects), descriptions_per_item):
                self.items.append((position, objects[start : start + descriptions_per_item]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TrainingSample:
        position, objects = self.items[index]
        record = self.records[position]
        frames, indices = self._clip(record.frame_folder(self.video_root), record.frames)
        height, width = frames.shape[1:3]
        turns = [
            SampleTurn(
                question=REGION_DESCRIPTION_QUESTION,
                answer=record.description[key].strip(),
                ref_masks=[self._masks([obj], indices, height, width)],
            )
            for key, obj in objects
        ]
        keys = "+".join(key for key, _ in objects)
        return TrainingSample(frames, indices, turns, self.source, f"{record.video_id}/{keys}")


class RvosDataset(_VideoSamples):
    """Referring VOS (MeViS / Ref-YouTube-VOS / ReVOS ``meta_expressions`` + mask dict): one "Please segment X."
    turn per expression, answered with the phrase grounded to one ``[SEG]`` whose GT is the union of ``anno_id``."""

    def __init__(
        self,
        annotations: str | Path,
        mask_dict: str | Path | MaskDict,
        video_root: str | Path,
        *,
        dataset: str = "mevis",
        answer_style: str = "grounded",
        strict: bool = False,
        allow_pickle: bool = False,
        sampling: FrameSampling | None = None,
        source: str | None = None,
    ) -> None:
        if answer_style not in RVOS_ANSWER_STYLES:
            raise DataError(
                f"answer_style must be one of {list(RVOS_ANSWER_STYLES)}, got {answer_style!r}", field="answer_style"
            )
        path = self._open(annotations, mask_dict, video_root, allow_pickle, sampling, source or dataset)
        self.split = load_meta_expressions(path, dataset, strict=strict, mask_dict=self.mask_dict)
        self.report = self.split.report
        self.answer_style = answer_style
        self.items = [
            (video, expression) for video in self.split for expression in video.expressions if expression.anno_ids
        ]
        self.skipped = {"expressions_without_anno_id": sum(len(v.expressions) for v in self.split) - len(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TrainingSample:
        video, expression = self.items[index]
        frames, indices = self._clip(self.video_root / video.video_id, video.frames)
        height, width = frames.shape[1:3]
        phrase = " ".join(expression.expression.split()).rstrip(".")
        answer = RVOS_ANSWER_STYLES[self.answer_style].format(expression=phrase)
        turn = SampleTurn(
            question=RVOS_QUESTION.format(expression=phrase),
            answer=answer,
            seg_masks=[self._masks(expression.anno_ids, indices, height, width)],
        )
        return TrainingSample(frames, indices, [turn], self.source, expression.question_id)


# ---------------------------------------------------------------- synthetic world

SYNTHETIC_TASKS = ("chat", "description", "rvos", "attributes")
DEFAULT_SYNTHETIC_TASKS = ("chat", "description", "rvos")


def synthetic_dataset(
    root: str | Path,
    split: str = "train",
    *,
    tasks: Sequence[str] = DEFAULT_SYNTHETIC_TASKS,
    task_repeats: Sequence[int] | None = None,
    training: bool = True,
    sampling: FrameSampling | None = None,
    generate: dict[str, Any] | None = None,
    attribute_kinds: Sequence[str] = ATTRIBUTE_KINDS,
) -> MixedDataset:
    """The synthetic world as training data: its SAMA-239K chat, region descriptions and MeViS-format RVOS files
    (written by ``sama.data.synthetic``), and with the task ``attributes`` its attribute questions
    (``<split>_attributes.json``: every object asked its colour, shape, size, motion and identity; those of
    ``attribute_kinds`` are kept), mixed with ``task_repeats``. ``generate`` (``num_videos``, ``seed``, scene
    settings) writes the dataset first when ``root`` holds none."""
    root = Path(root)
    unknown = sorted(set(tasks) - set(SYNTHETIC_TASKS))
    if unknown or not tasks:
        raise DataError(
            f"synthetic tasks must be a non-empty subset of {list(SYNTHETIC_TASKS)}, got {list(tasks)}", field="tasks"
        )
    if task_repeats is not None:
        repeats = list(task_repeats)
        if len(repeats) != len(tasks) or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in repeats):
            raise DataError(
                f"task_repeats must give one integer >= 1 per task of {list(tasks)} (in that order), got {repeats}; "
                "leave a task out with `tasks` instead of a 0",
                field="task_repeats",
            )
    if not (root / f"{split}.json").is_file():
        if generate is None:
            raise DataError(
                f"no synthetic dataset here (missing {split}.json); run `sama data synth` or give options.generate",
                file=str(root),
            )
        _generate_synthetic(root, generate)
    unknown = sorted(set(attribute_kinds) - set(ATTRIBUTE_KINDS))
    if unknown or not attribute_kinds:
        raise DataError(f"attribute_kinds must be a non-empty subset of {list(ATTRIBUTE_KINDS)}, got "
                        f"{list(attribute_kinds)}", field="attribute_kinds")
    attributes = root / f"{split}_attributes.json"
    if "attributes" in tasks and not attributes.is_file():
        raise DataError(
            "no attribute questions here (written by `sama data synth` since the `attributes` task exists); write the "
            "dataset again with `sama data synth --overwrite`",
            file=str(attributes),
        )
    records, masks = root / f"{split}.json", root / f"{split}_mask_dict.json"
    rvos = root / "rvos" / split
    builders: dict[str, Callable[[], Dataset]] = {
        "chat": lambda: GroundedChatDataset(
            records, masks, root, training=training, sampling=sampling, source="synthetic_chat"
        ),
        "description": lambda: RegionDescriptionDataset(
            records, masks, root, sampling=sampling, source="synthetic_description"
        ),
        "rvos": lambda: RvosDataset(
            rvos / "meta_expressions.json", rvos / "mask_dict.json", root / "videos", dataset="mevis",
            sampling=sampling, source="synthetic_rvos",
        ),
        "attributes": lambda: GroundedChatDataset(
            attributes, masks, root, training=training, sampling=sampling, source="synthetic_attributes",
            keep_ungrounded=True, keep_question=lambda question: TEMPLATE_KINDS.get(question) in attribute_kinds,
        ),
    }
    parts = [builders[task]() for task in tasks]  # in the order of ``tasks``, as ``task_repeats`` is given
    names = [f"synthetic_{task}" for task in tasks]
    return MixedDataset(parts, task_repeats, names)


def _generate_synthetic(root: Path, generate: dict[str, Any]) -> None:
    """Write the synthetic dataset once (rank 0 when distributed; the others wait)."""
    import torch.distributed as dist

    from sama.data.synthetic.scene import SceneConfig
    from sama.data.synthetic.writer import generate_dataset

    options = dict(generate)
    num_videos = int(options.pop("num_videos", 40))
    seed = int(options.pop("seed", 0))
    max_turns = int(options.pop("max_turns", 8))
    try:
        scene = SceneConfig(**options)
    except TypeError as exc:
        raise DataError(f"unknown synthetic scene option ({exc})", field="generate") from exc
    distributed = dist.is_available() and dist.is_initialized()
    if not distributed or dist.get_rank() == 0:
        generate_dataset(root, num_videos, seed, config=scene, max_turns=max_turns, progress=False)
    if distributed:
        dist.barrier()


# ---------------------------------------------------------------- config → dataset


def build_from_config(
    spec: Any, seed: int = 0, split: str = "train", sampling_defaults: dict[str, int] | None = None
) -> Dataset:
    """Build one dataset from a ``sama.train.config.DatasetConfig`` (kind, paths, format, options).

    ``sampling_defaults`` (the model preset's sparse sampling) apply unless ``options.sampling`` overrides them.
    """
    options = dict(spec.options)
    training = split == "train"
    try:
        sampling = FrameSampling(**{**(sampling_defaults or {}), **options.pop("sampling", {})})
    except TypeError as exc:
        raise DataError(
            f"dataset {spec.name or spec.kind!r}: bad sampling option ({exc})", field="options.sampling"
        ) from exc
    name = spec.name or spec.kind
    try:
        if spec.kind == "random":
            return RandomClipDataset(seed=options.pop("seed", seed), source=name, **options)
        if spec.kind == "grounded_chat":
            return GroundedChatDataset(
                spec.annotations,
                spec.mask_dict,
                spec.video_root,
                training=training,
                sampling=sampling,
                source=name,
                **options,
            )
        if spec.kind == "region_description":
            return RegionDescriptionDataset(
                spec.annotations, spec.mask_dict, spec.video_root, sampling=sampling, source=name, **options
            )
        if spec.kind == "rvos":
            return RvosDataset(
                spec.annotations,
                spec.mask_dict,
                spec.video_root,
                dataset=spec.format or "mevis",
                sampling=sampling,
                source=name,
                **options,
            )
        if spec.kind == "synthetic":
            root = options.pop("root", None) or spec.video_root
            if root is None:
                raise DataError(
                    "synthetic dataset needs options.root (the `sama data synth` output folder)", field="options.root"
                )
            return synthetic_dataset(root, options.pop("split", split), training=training, sampling=sampling, **options)
    except TypeError as exc:  # an unknown option name
        raise DataError(f"dataset {name!r}: bad option ({exc})", field="options") from exc
    raise DataError(f"unknown dataset kind {spec.kind!r}", field="kind")
