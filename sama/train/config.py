"""Training configuration: YAML file (+ ``--set key=value`` overrides) → validated ``TrainConfig`` dataclass.

Every value taken from the SAMA recipe cites SAMA.md §2. Unknown keys, wrong types and missing data paths raise
``ConfigError`` naming the key and the file before any compute starts.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sama.config import LoraConfig
from sama.errors import ConfigError

# ---- SAMA recipe constants (SAMA.md §2, "Optimisation") ----
SAMA_LR = 4e-5  # SAMA.md §2: AdamW lr 4e-5
SAMA_WEIGHT_DECAY = 0.05  # SAMA.md §2: weight decay 0.05
SAMA_BETAS = (0.9, 0.999)  # SAMA.md §2: betas (0.9, 0.999)
SAMA_GRAD_CLIP = 1.0  # SAMA.md §2: gradient clip max-norm 1.0
SAMA_WARMUP_RATIO = 0.05  # SAMA.md §2: LinearLR warm-up over the first 5% of iterations
SAMA_WARMUP_START_FACTOR = 1e-5  # SAMA.md §2: LinearLR start factor 1e-5
SAMA_BATCH_PER_DEVICE = 2  # SAMA.md §2: batch 2 per device
SAMA_GRAD_ACCUM = 4  # SAMA.md §2: gradient accumulation 4
SAMA_MAX_EPOCHS = 1  # SAMA.md §2: max_epochs=1
SAMA_SAVE_EVERY = 1000  # SAMA.md §2: checkpoint every 1000 iterations

STRATEGIES = ("auto", "single", "ddp", "fsdp2", "deepspeed_zero2", "deepspeed_zero3")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DATASET_KINDS = ("grounded_chat", "region_description", "rvos", "synthetic", "random")


@dataclass
class OptimConfig:
    """AdamW + linear warm-up + cosine decay (SAMA.md §2)."""

    lr: float = SAMA_LR
    weight_decay: float = SAMA_WEIGHT_DECAY
    betas: list[float] = field(default_factory=lambda: list(SAMA_BETAS))
    eps: float = 1e-8
    grad_clip: float = SAMA_GRAD_CLIP  # 0 disables clipping
    warmup_ratio: float = SAMA_WARMUP_RATIO
    warmup_start_factor: float = SAMA_WARMUP_START_FACTOR
    # Parameter-name prefix → factor on ``lr`` (first matching prefix wins; others get 1.0). SAMA.md §2 uses one lr;
    # a model trained from scratch may want its random parts (e.g. ``grounding.``) to move faster.
    lr_multipliers: dict[str, float] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Which model to build: a preset of ``sama.create_model`` (or the engine's test stand-in) plus overrides."""

    name: str = "sama-tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None  # a SamaModel.save_pretrained directory to start from
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass
class DatasetConfig:
    """One training/validation dataset and its repeat factor in the mix (SAMA.md §2, "Data mix")."""

    kind: str = "synthetic"
    name: str = ""
    repeat: int = 1
    annotations: str | None = None  # SAMA-239K JSON, or meta_expressions JSON for RVOS
    mask_dict: str | None = None
    video_root: str | None = None
    format: str | None = None  # rvos: mevis | ref_ytvos | revos
    options: dict[str, Any] = field(default_factory=dict)
    # 0: items are whole samples. k >= 1: items are batches of k referring turns (a <mask>, no [SEG]) of random
    # samples of this dataset, each a one-turn dialogue without the dense-frame tokens (sama.data.datasets.
    # ReferringTurnBatches; the region_warmup layout, mixed into training by this entry's repeat).
    referring_turns: int = 0


@dataclass
class DataConfig:
    """Datasets and batching."""

    train: list[DatasetConfig] = field(default_factory=list)
    val: list[DatasetConfig] = field(default_factory=list)
    batch_size: int = SAMA_BATCH_PER_DEVICE
    grad_accum: int = SAMA_GRAD_ACCUM
    num_workers: int = 0
    shuffle: bool = True


def check_bounds(section: Any, where: str, name: str, *, at_least_zero: tuple[str, ...] = (),
                 at_least_one: tuple[str, ...] = (), positive: tuple[str, ...] = ()) -> None:
    """Raise ``ConfigError`` naming ``name.field`` for the first listed field of ``section`` out of its bound."""
    for fields, ok, bound in ((at_least_zero, lambda v: v >= 0, ">= 0"), (at_least_one, lambda v: v >= 1, ">= 1"),
                              (positive, lambda v: v > 0, "> 0")):
        for field_name in fields:
            value = getattr(section, field_name)
            if not ok(value):
                raise ConfigError(f"{where}: {name}.{field_name} must be {bound}, got {value}")


def check_regex(pattern: str, where: str) -> None:
    """Raise a ConfigError naming ``where`` when ``pattern`` is not a regular expression."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: {pattern!r} is not a regular expression ({exc})") from None


@dataclass
class VisionWarmupConfig:
    """Self-supervised warm start of a random vision tower before step 1 (``sama.train.vision_warmup``; ours: SAMA
    starts from a pretrained tower, SAMA.md §1.1)."""

    steps: int = 0  # 0: off
    lr: float = 1e-3
    batch_frames: int = 16  # frames per step
    cell_pixels: int = 7  # each token reconstructs its cell pooled to cell_pixels × cell_pixels RGB
    pool_samples: int = 256  # training samples whose sparse frames form the frame pool

    def validate(self, where: str) -> None:
        check_bounds(self, where, "vision_warmup", at_least_zero=("steps",),
                     at_least_one=("batch_frames", "cell_pixels", "pool_samples"), positive=("lr",))


@dataclass
class GroundingWarmupConfig:
    """Phrase-prompted SAM2 warm start before step 1 (``sama.train.grounding_warmup``; ours: SAMA starts from a
    pretrained SAM2, SAMA.md §1.1). Needs ``sam2.seg_phrase_input``."""

    steps: int = 0  # 0: off
    # 3e-4, measured on sama-smol (150 steps, last-20 loss over 5 SAM2 init draws): mean 0.270 against 0.451 at 1e-3,
    # where one draw never learned to follow the phrase (0.74); the whole recipe: RVOS J&F 0.665 against 0.587.
    lr: float = 3e-4
    phrase_lr_multiplier: float = 10.0  # phrase_proj learns at lr × this (a fresh prompt code, like a class embedding)
    samples_per_step: int = 4  # training samples per step (all their grounded phrases)
    frames_per_sample: int = 4  # random sparse frames of each sample that show a grounded object
    # Sample sources (``TrainingSample.source``) to draw from; empty: all. Phrases a single frame cannot resolve
    # ("the object that moves left") stall a per-frame segmenter: measured on the synthetic world, val J on object
    # names after 100 steps 0.05-0.27 drawing from chat + RVOS, 0.62 from chat only.
    sources: list[str] = field(default_factory=list)
    # A regex searched in each phrase (lower-cased): a [SEG] whose phrase matches is not trained on; empty: none
    # skipped. E.g. "\\bthat\\b" keeps RVOS names and pairs but drops "the object that moves left". Measured on
    # sama-smol (the shipped recipe otherwise): 150 steps on chat + synthetic RVOS with that filter left SAMA
    # training's Dice at 0.59-0.64 per 100 steps and the final val loss at 0.95, and the grounding collapsed (RVOS
    # J&F 0.064; chat names only, the shipped recipe: Dice 0.44 -> 0.27, val loss 0.43, J&F 0.579), so the recipe keeps
    # chat names only. At lr 3e-4 the same: last-20 loss 0.713 after 150 steps from a fresh SAM2 (chat only: 0.198).
    skip_phrases: str = ""

    def validate(self, where: str) -> None:
        check_bounds(self, where, "grounding_warmup", at_least_zero=("steps",),
                     at_least_one=("samples_per_step", "frames_per_sample"), positive=("lr", "phrase_lr_multiplier"))
        if self.skip_phrases:
            check_regex(self.skip_phrases, f"{where}: grounding_warmup.skip_phrases")


@dataclass
class RegionWarmupConfig:
    """Region-reading warm start of the language side before step 1 (``sama.train.region_warmup``; ours: SAMA starts
    from an LLM that already reads images, SAMA.md §1.1): referring turns without dense frames, batched."""

    steps: int = 0  # 0: off
    lr: float = 5e-4
    turns_per_step: int = 8  # one-turn dialogues per step (one padded batch)
    dense_frames: bool = False  # also put the dense-frame tokens before each turn (the full layout; ~4x the tokens)
    sources: list[str] = field(default_factory=list)  # sample sources to draw from; empty: all
    # Relative draw weight of a turn by its question: {regex searched in the question: weight}; the first matching
    # pattern wins, a turn matching none weighs 1. E.g. {"move|doing": 4} draws motion questions 4x as often.
    question_weights: dict[str, float] = field(default_factory=dict)
    # lr factor by parameter-name prefix, first match wins (as optim.lr_multipliers), e.g. {"prompt_encoder.": 10}.
    lr_multipliers: dict[str, float] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        check_bounds(self, where, "region_warmup", at_least_zero=("steps",), at_least_one=("turns_per_step",),
                     positive=("lr",))
        for pattern in self.question_weights:
            check_regex(pattern, f"{where}: region_warmup.question_weights")
        for table in ("question_weights", "lr_multipliers"):
            for key, value in getattr(self, table).items():
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                    raise ConfigError(f"{where}: region_warmup.{table}[{key!r}] must be a number > 0, got {value!r}")


@dataclass
class TrainConfig:
    """Everything ``sama train`` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    vision_warmup: VisionWarmupConfig = field(default_factory=VisionWarmupConfig)
    grounding_warmup: GroundingWarmupConfig = field(default_factory=GroundingWarmupConfig)
    region_warmup: RegionWarmupConfig = field(default_factory=RegionWarmupConfig)
    output_dir: str = "outputs/train"
    seed: int = 0
    epochs: int = SAMA_MAX_EPOCHS
    max_steps: int | None = None  # optimiser steps; when set it overrides ``epochs``
    save_every: int = SAMA_SAVE_EVERY  # optimiser steps between checkpoints (0: only at the end)
    keep_last: int = 2  # checkpoints kept on disk
    log_every: int = 1
    eval_every: int = 0  # optimiser steps between validations (0: only at the end when val data exists)
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    strategy: str = "auto"  # auto: ddp when WORLD_SIZE > 1, else single
    find_unused_parameters: bool = True
    tensorboard: bool = True  # used only when tensorboard is importable
    plot: bool = True
    export_final: bool = True  # write the trained model with save_pretrained to <output_dir>/final at the end
    progress: bool = True
    torch_threads: int | None = None
    source_file: str = field(default="", metadata={"internal": True})

    def validate(self) -> None:
        """Value checks that need no I/O; raises ConfigError."""
        where = self.source_file or "<config>"
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"{where}: strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"{where}: precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        for name in ("batch_size", "grad_accum"):
            if getattr(self.data, name) < 1:
                raise ConfigError(f"{where}: data.{name} must be >= 1, got {getattr(self.data, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"{where}: max_steps must be >= 1 or null, got {self.max_steps}")
        if self.epochs < 1:
            raise ConfigError(f"{where}: epochs must be >= 1, got {self.epochs}")
        if len(self.optim.betas) != 2:
            raise ConfigError(f"{where}: optim.betas must have two values, got {self.optim.betas}")
        if not 0 <= self.optim.warmup_ratio < 1:
            raise ConfigError(f"{where}: optim.warmup_ratio must be in [0, 1), got {self.optim.warmup_ratio}")
        if not self.data.train:
            raise ConfigError(f"{where}: data.train lists no dataset")
        self.vision_warmup.validate(where)
        self.grounding_warmup.validate(where)
        self.region_warmup.validate(where)
        for split in ("train", "val"):
            for i, ds in enumerate(getattr(self.data, split)):
                if ds.kind not in DATASET_KINDS:
                    raise ConfigError(
                        f"{where}: data.{split}[{i}].kind {ds.kind!r} is not one of {', '.join(DATASET_KINDS)}"
                    )
                if ds.repeat < 1:
                    raise ConfigError(f"{where}: data.{split}[{i}].repeat must be >= 1, got {ds.repeat}")
                if isinstance(ds.referring_turns, bool) or not isinstance(ds.referring_turns, int) \
                        or ds.referring_turns < 0:
                    raise ConfigError(f"{where}: data.{split}[{i}].referring_turns must be an integer >= 0 (0: whole "
                                      f"samples), got {ds.referring_turns!r}")

    def check_paths(self) -> None:
        """Every data path named by the config exists (ConfigError naming dataset and field otherwise)."""
        where = self.source_file or "<config>"
        for split in ("train", "val"):
            for i, ds in enumerate(getattr(self.data, split)):
                for key in ("annotations", "mask_dict", "video_root"):
                    value = getattr(ds, key)
                    if value is not None and not Path(value).exists():
                        raise ConfigError(
                            f"{where}: data.{split}[{i}].{key} ({ds.name or ds.kind}): path {value!r} does not exist"
                        )
                if ds.kind == "synthetic" and "generate" not in ds.options:
                    root = ds.options.get("root") or ds.video_root
                    if root is None or not Path(root).is_dir():
                        raise ConfigError(
                            f"{where}: data.{split}[{i}].options.root ({ds.name or ds.kind}): synthetic dataset folder "
                            f"{root!r} does not exist; run `sama data synth` or add options.generate"
                        )
        if self.model.init_from is not None and not Path(self.model.init_from).exists():
            raise ConfigError(f"{where}: model.init_from: path {self.model.init_from!r} does not exist")


# ---------------------------------------------------------------- YAML → dataclass


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted for floats); build nested dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: {key}: unexpected value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
        return _build(tp, value, where, prefix=f"{key}.")
    if origin in (list, tuple):  # list[T] and tuple[T, ...]: YAML gives a list either way
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: {key} must be a list, got {type(value).__name__}")
        item_tp = (typing.get_args(tp) or (Any,))[0]
        return origin(_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: {key} must be a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "4e-5" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true/false, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: {key} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _build(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{prefix}{unknown[0]}' (known keys under {prefix.rstrip('.') or 'the top level'}: "
            f"{', '.join(sorted(known))})"
        )
    kwargs = {name: _coerce(value, hints[name], f"{prefix}{name}", where) for name, value in data.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=1e-4"`` → (["optim", "lr"], 1e-4); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE (e.g. optim.lr=1e-4)")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {text!r}: empty key")
    return key.strip().split("."), yaml.safe_load(raw)


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``data[path[0]][path[1]]… = value``; list items are addressed by integer index (``data.train.0.repeat``)."""
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {'.'.join(path)}: no list item {part!r}")
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise ConfigError(f"--set {'.'.join(path)}: {'.'.join(path[: depth + 1])} is not a mapping")
    last = path[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {'.'.join(path)}: no list item {last!r}")
        node[int(last)] = value
    else:
        node[last] = value


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
    """Build and validate a TrainConfig from plain data; ``source`` names the origin in error messages."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    cfg = _build(TrainConfig, data, source)
    cfg.source_file = source
    cfg.validate()
    return cfg


def config_search_dirs() -> list[Path]:
    """Where bare config names are looked up: the repository's ``configs/`` and the package's ``sama/configs/``."""
    package = Path(__file__).resolve().parents[1]
    return [package.parent / "configs", package / "configs"]


def resolve_config_path(name: str | Path) -> Path:
    """A YAML path, or a bare name such as ``sama-tiny-synthetic`` found in :func:`config_search_dirs`."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:
        for folder in config_search_dirs():
            candidate = folder / f"{path.name}.yaml"
            if candidate.is_file():
                return candidate
    known = sorted({p.stem for d in config_search_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"{name}: config file not found (bundled configs: {', '.join(known) or 'none'})")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML training config (a path or a bundled name), apply ``--set`` overrides, validate values (not
    paths: see ``check_paths``)."""
    path = resolve_config_path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    for item in overrides or []:
        keys, value = parse_override(item)
        apply_override(data, keys, value)
    return config_from_dict(data, str(path))


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain-data view of a config (for checkpoints and logs)."""
    data = dataclasses.asdict(cfg)
    data.pop("source_file", None)
    return data
