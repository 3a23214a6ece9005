"""The training engine: builds data, model, optimiser and schedule from a ``TrainConfig`` and runs the loop on one CPU,
one GPU or many (DDP / FSDP2 / DeepSpeed), with gradient accumulation, clipping, autocast, atomic checkpoints, exact
resumption, JSONL/TensorBoard logging, validation callbacks and a non-finite-loss stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sama.data.datasets import MixedDataset, ReferringTurnBatches, ResumableSampler, TurnBatch
from sama.errors import ConfigError, DataError, SamaError
from sama.train import checkpointing as ckpt
from sama.train import distributed as dist_utils
from sama.train.config import DatasetConfig, TrainConfig, config_to_dict
from sama.train.schedule import build_scheduler
from sama.train.tracking import LOG_FILE, PLOT_FILE, JsonlLogger, plot_losses
from sama.train.warm_start import adamw, lr_factors

CONFIG_SNAPSHOT = "train_config.json"
SUMMARY_FILE = "train_summary.json"
FINAL_DIR = "final"


class NonFiniteLossError(SamaError):
    """The loss became NaN/inf; training stopped and the last good checkpoint was kept."""


class Callback(Protocol):
    """Hook into the loop; every method is optional (missing ones are skipped)."""

    def on_evaluate(self, trainer: Trainer, step: int) -> dict[str, float] | None: ...


@dataclass
class TrainResult:
    steps: int
    final_loss: float | None
    output_dir: Path
    last_checkpoint: Path | None
    log_path: Path
    plot_path: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------- builders


def model_sampling(cfg: TrainConfig) -> dict[str, int]:
    """The preset's sparse frame sampling (``SamaConfig.sampling``), so datasets feed the model what it expects."""
    from sama.train.standin import STANDIN_NAME

    if cfg.model.name == STANDIN_NAME:
        return {}
    from sama.config import SamaConfig

    if cfg.model.init_from is not None:
        sampling = SamaConfig.from_json(Path(cfg.model.init_from) / "config.json").sampling
    else:
        sampling = SamaConfig.from_name(cfg.model.name, **cfg.model.overrides).sampling
    return {"interval": sampling.sparse_interval, "max_frames": sampling.max_frames, "min_frames": sampling.min_frames}


def build_dataset(
    spec: DatasetConfig, seed: int, split: str = "train", sampling: dict[str, int] | None = None
) -> Dataset:
    """One configured dataset (not yet repeated); see ``sama.data.datasets.build_from_config``."""
    from sama.data.datasets import build_from_config

    return build_from_config(spec, seed=seed, split=split, sampling_defaults=sampling)


def build_mix(
    specs: list[DatasetConfig], seed: int, split: str, sampling: dict[str, int] | None = None
) -> MixedDataset:
    """The configured datasets with their repeat factors; an entry with ``referring_turns`` yields batches of
    referring turns, and its first item is drawn here so a dataset without such turns fails before training."""
    datasets = [build_dataset(spec, seed, split, sampling) for spec in specs]
    names = [spec.name or spec.kind for spec in specs]
    for i, (spec, dataset, name) in enumerate(zip(specs, datasets, names)):
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError(f"data.{split} dataset {name!r} has no samples")
        if spec.referring_turns:
            datasets[i] = ReferringTurnBatches(dataset, spec.referring_turns, seed, name)
            try:
                datasets[i][0]
            except DataError as exc:
                raise ConfigError(f"data.{split}[{i}]: {exc}") from None
    return MixedDataset(datasets, [s.repeat for s in specs], names)


def build_model(cfg: TrainConfig) -> nn.Module:
    """The configured model (a ``sama.create_model`` preset or the engine stand-in), initial weights, LoRA."""
    from sama.train.standin import STANDIN_NAME, build_standin

    lora = cfg.model.lora
    if cfg.model.name == STANDIN_NAME:
        if lora.enabled:
            raise ConfigError(f"model.lora.enabled: the {STANDIN_NAME} model has no LLM to adapt")
        if any(spec.referring_turns for spec in [*cfg.data.train, *cfg.data.val]):
            raise ConfigError(f"data.*.referring_turns: the {STANDIN_NAME} model has no dense-frame tokens to leave out")
        return build_standin(**cfg.model.overrides)
    if cfg.model.init_from is not None:
        from sama.model.modeling import SamaModel

        return SamaModel.from_pretrained(cfg.model.init_from)
    import sama

    overrides = dict(cfg.model.overrides)
    if lora.enabled:  # SamaModel injects peft LoRA into its LLM from its own config (sama.config.LoraConfig)
        overrides["lora"] = {**overrides.get("lora", {}), **dataclasses.asdict(lora),
                             "target_modules": list(lora.target_modules)}
    return sama.create_model(cfg.model.name, **overrides)


def check_init_preset(cfg: TrainConfig) -> None:
    """``model.init_from`` must hold the preset the config names (compares its config.json ``name``)."""
    if cfg.model.init_from is None:
        return
    config_file = Path(cfg.model.init_from) / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"model.init_from {cfg.model.init_from!r}: no config.json inside (not a saved SamaModel)")
    saved = json.loads(config_file.read_text()).get("name")
    if saved is not None and saved != cfg.model.name:
        raise ConfigError(
            f"model.init_from {cfg.model.init_from!r} holds preset {saved!r}, but model.name is {cfg.model.name!r}"
        )


class _Collate:
    """Picklable ``processor(sample)`` + ``processor.collate`` for DataLoader workers."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, samples: list[Any]) -> dict[str, Any]:
        processed = []
        for item in samples:  # a TurnBatch item adds its one-turn samples to the batch
            if isinstance(item, TurnBatch):
                processed += [self.processor(s, item.dense_frames) for s in item.samples]
            else:
                processed.append(self.processor(item))
        return self.processor.collate(processed)


def loss_parts(output: Any) -> dict[str, float]:
    """Scalar loss parts of a model output: a ``loss_parts`` dict, or ``loss_*`` / ``*_loss`` attributes or keys
    (``SamaOutput.ce_loss`` is logged as ``loss_ce``)."""
    parts: dict[str, Any] = dict(getattr(output, "loss_parts", None) or {})
    items = output.items() if isinstance(output, dict) else vars(output).items() if hasattr(output, "__dict__") else []
    for key, value in items:
        if key.startswith("loss_"):
            parts.setdefault(key, value)
        elif key.endswith("_loss") and key != "loss":
            parts.setdefault("loss_" + key[: -len("_loss")], value)
    return {
        k: float(v.detach().float().mean()) if torch.is_tensor(v) else float(v)
        for k, v in parts.items()
        if (torch.is_tensor(v) and v.numel() == 1) or isinstance(v, int | float)
    }


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- trainer


class Trainer:
    """Runs one training job. ``Trainer(cfg, resume=True).fit()``; see ``sama train --help`` for the CLI."""

    def __init__(
        self,
        cfg: TrainConfig,
        resume: str | bool | None = None,
        callbacks: list[Any] | None = None,
        model_factory: Callable[[TrainConfig], nn.Module] | None = None,
    ) -> None:
        self.cfg = cfg
        self.callbacks = list(callbacks or [])
        self.model_factory = model_factory or build_model
        self.output_dir = Path(cfg.output_dir)
        # ---- everything that can be wrong with the inputs is checked before compute starts
        cfg.validate()
        cfg.check_paths()
        check_init_preset(cfg)
        self.sampling = model_sampling(cfg)  # also rejects an unknown preset or bad model overrides
        self.resume_from = ckpt.resolve_resume(self.output_dir, resume)
        self.resume_state: ckpt.TrainerState | None = None
        if self.resume_from is not None and cfg.strategy.startswith("deepspeed"):
            raise ConfigError(
                f"--resume {self.resume_from}: resuming a DeepSpeed run is not supported (its checkpoints hold "
                "weights only, no ZeRO optimiser state); train with strategy ddp / fsdp2 to resume"
            )
        if self.resume_from is not None:
            self.resume_state = ckpt.read_state(self.resume_from)
            ckpt.check_compatible(self.resume_state, self.resume_from, cfg.model.name, cfg.model.overrides)
        self.info = dist_utils.DistInfo()
        self.model: nn.Module | None = None
        self.raw_model: nn.Module | None = None
        self.step = 0

    # -- setup

    def _setup(self) -> None:
        cfg = self.cfg
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.strategy = dist_utils.resolve_strategy(cfg.strategy, world)
        self.info = dist_utils.setup(self.strategy)
        if self.resume_state is not None and self.resume_state.world_size != self.info.world_size:
            raise ConfigError(
                f"{self.resume_from}: checkpoint was written by {self.resume_state.world_size} process(es), "
                f"this run has {self.info.world_size}; the data position would not line up"
            )
        seed_everything(cfg.seed + self.info.rank)
        self.train_data = build_mix(cfg.data.train, cfg.seed, "train", self.sampling)
        self.val_data = build_mix(cfg.data.val, cfg.seed, "val", self.sampling) if cfg.data.val else None
        self.sampler = ResumableSampler(
            len(self.train_data), cfg.data.batch_size, cfg.seed, cfg.data.shuffle, self.info.rank, self.info.world_size
        )
        per_epoch = self.sampler.batches_per_epoch() // cfg.data.grad_accum
        if cfg.max_steps is None and per_epoch == 0:
            raise ConfigError(
                f"{cfg.source_file}: {len(self.train_data)} samples give no full optimiser step per epoch with "
                f"batch_size={cfg.data.batch_size} x grad_accum={cfg.data.grad_accum} x {self.info.world_size} process(es)"
            )
        if self.sampler.batches_per_epoch() == 0:
            raise ConfigError(f"{cfg.source_file}: {len(self.train_data)} samples are fewer than one batch per process")
        self.total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * per_epoch

        self.precision = cfg.precision
        if self.precision == "auto":
            self.precision = "bf16" if self.info.device.type == "cuda" else "fp32"
        raw = self.model_factory(cfg)
        raw.to(self.info.device)
        self.raw_model = raw
        self.processor = getattr(raw, "processor", None)
        if self.processor is None:
            raise ConfigError(f"model {cfg.model.name!r} has no `processor` (needed to turn samples into tensors)")
        self.warm_start_records = self._warm_starts(raw)
        self.trainable = [(n, p) for n, p in raw.named_parameters() if p.requires_grad]
        if not self.trainable:
            raise ConfigError(f"model {cfg.model.name!r} has no trainable parameter (check its freeze policy)")
        self._build_optimisation(raw)

    def _warm_starts(self, raw: nn.Module) -> list[dict[str, Any]]:
        """Run the configured warm starts (vision, grounding, then region reading) on a fresh run; a resumed run has
        their result in its checkpoint. Every rank runs them with the same seed and data, so replicas start
        identical."""
        cfg, records = self.cfg, []
        stages = (cfg.vision_warmup, cfg.grounding_warmup, cfg.region_warmup)
        if self.resume_state is not None or not any(stage.steps for stage in stages):
            return records
        if not hasattr(raw, "backbone") or not hasattr(raw, "grounding"):
            raise ConfigError(f"{cfg.source_file}: vision_warmup / grounding_warmup / region_warmup need a SamaModel "
                              f"(model {cfg.model.name!r} is not one)")
        progress = self.info.is_main and cfg.progress
        samples = self.train_data.whole_samples()  # the warm-ups draw whole samples
        if len(samples) == 0:
            raise ConfigError(f"{cfg.source_file}: the warm-ups need a data.train dataset of whole samples (every "
                              f"entry sets referring_turns)")
        if cfg.region_warmup.steps:  # its parameter groups are checked before any stage computes
            from sama.train.region_warmup import language_param_groups

            language_param_groups(raw, cfg.region_warmup)
        if cfg.vision_warmup.steps:
            from sama.train.vision_warmup import frame_pool, warmup_vision

            frames = frame_pool(samples, cfg.vision_warmup.pool_samples, np.random.default_rng(cfg.seed))
            result = warmup_vision(raw.backbone, frames, cfg.vision_warmup, seed=cfg.seed, progress=progress)
            records.append({"step": 0, "split": "vision_warmup", **dataclasses.asdict(result)})
        if cfg.grounding_warmup.steps:
            from sama.train.grounding_warmup import warmup_grounding

            result = warmup_grounding(raw, samples, cfg.grounding_warmup, seed=cfg.seed, progress=progress)
            records.append({"step": 0, "split": "grounding_warmup", **dataclasses.asdict(result)})
        if cfg.region_warmup.steps:
            from sama.train.region_warmup import warmup_regions

            result = warmup_regions(raw, samples, cfg.region_warmup, seed=cfg.seed, progress=progress)
            records.append({"step": 0, "split": "region_warmup", **dataclasses.asdict(result)})
        return records

    def _build_optimisation(self, raw: nn.Module) -> None:
        cfg, opt = self.cfg, self.cfg.optim
        self.deepspeed_engine = None
        if self.strategy.startswith("deepspeed"):
            deepspeed = dist_utils.require_deepspeed(self.strategy)
            optimizer = torch.optim.AdamW(self._param_groups(raw), lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps)
            ds_config = {
                "train_micro_batch_size_per_gpu": cfg.data.batch_size,
                # DeepSpeed accumulates itself: engine.backward scales by 1/GAS, engine.step acts at the boundary
                "gradient_accumulation_steps": cfg.data.grad_accum,
                "zero_optimization": {"stage": 3 if self.strategy.endswith("3") else 2},
                "gradient_clipping": opt.grad_clip,
                "bf16": {"enabled": self.precision == "bf16"},
                "fp16": {"enabled": self.precision == "fp16"},
            }
            engine, optimizer, _, _ = deepspeed.initialize(model=raw, optimizer=optimizer, config=ds_config)
            self.model, self.optimizer, self.deepspeed_engine = engine, optimizer, engine
        else:
            self.model = dist_utils.wrap_model(raw, self.strategy, self.info, self.cfg.find_unused_parameters)
            # after FSDP2 sharding the parameters are DTensors registered in place, so groups are built now
            self.optimizer = adamw(self._param_groups(raw), lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, opt.warmup_ratio, opt.warmup_start_factor)
        self.scaler = (
            torch.amp.GradScaler("cuda") if self.precision == "fp16" and self.info.device.type == "cuda" else None
        )

    def _param_groups(self, raw: nn.Module) -> list[dict[str, Any]]:
        """Trainable parameters only (the model's freeze policy), weight decay except where the model forbids it
        (``no_decay_parameter_names``, e.g. embedding matrices of which only new-token rows train), and the lr scaled
        by ``optim.lr_multipliers`` (first matching name prefix)."""
        no_decay_fn = getattr(raw, "no_decay_parameter_names", None)
        no_decay = set(no_decay_fn() if callable(no_decay_fn) else [])
        named = [(n, p) for n, p in raw.named_parameters() if p.requires_grad]
        opt = self.cfg.optim
        factor_of = lr_factors(opt.lr_multipliers, [n for n, _ in named], "optim.lr_multipliers")

        groups: dict[tuple[bool, float], dict[str, Any]] = {}
        for name, param in named:
            decay, factor = name not in no_decay, factor_of(name)
            group = groups.setdefault((decay, factor), {"params": [], "weight_decay": opt.weight_decay if decay else 0.0,
                                                        "lr": opt.lr * factor})
            group["params"].append(param)
        return list(groups.values())

    # -- state (model + optimiser) as full, name-keyed dicts; works for plain, DDP and FSDP2 models

    def _state_options(self) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(
            full_state_dict=self.strategy == "fsdp2", cpu_offload=self.strategy == "fsdp2", ignore_frozen_params=True
        )

    def _model_state(self) -> dict[str, torch.Tensor]:
        """Trainable weights (+ persistent buffers and tied aliases) as full CPU tensors keyed by name."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        assert self.model is not None and self.raw_model is not None
        if self.deepspeed_engine is not None:
            return self._deepspeed_trainable_state()
        model_sd = get_model_state_dict(self.model, options=self._state_options())
        return {k: v.detach().to("cpu").contiguous().clone() for k, v in model_sd.items()}

    def _deepspeed_trainable_state(self) -> dict[str, torch.Tensor]:
        """Full trainable weights under ZeRO-2 (replicated) or ZeRO-3 (gathered from the partitions)."""
        import deepspeed

        assert self.raw_model is not None
        params = [p for _, p in self.trainable]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            return ckpt.trainable_state_dict(self.raw_model)

    def _gather_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        if self.deepspeed_engine is not None:  # ZeRO optimiser state is partitioned; weights only (no resume)
            return self._model_state(), {}
        optim_sd = get_optimizer_state_dict(self.model, self.optimizer, options=self._state_options())
        return self._model_state(), optim_sd

    def _restore(self, path: Path) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        assert self.resume_state is not None and self.model is not None and self.raw_model is not None
        tensors = ckpt.load_model_tensors(path)
        expected = set(self._model_state())
        if set(tensors) != expected:
            missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
            raise ConfigError(
                f"{path}: trainable weights do not match the model (missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}); was it written with another freeze policy or LoRA setting?"
            )
        optim_state = ckpt.load_optimizer_state(path)
        options = StateDictOptions(full_state_dict=True, strict=False, ignore_frozen_params=True)
        set_model_state_dict(self.model, tensors, options=options)
        set_optimizer_state_dict(self.model, self.optimizer, optim_state, options=options)
        self.scheduler.load_state_dict(self.resume_state.scheduler)
        ckpt.restore_python_numpy_rng(self.resume_state.python_rng, self.resume_state.numpy_rng)
        rng = ckpt.load_rank_rng(path, self.info.rank)
        if rng is not None:
            ckpt.restore_torch_rng(rng)
        self.step = self.resume_state.step

    def save_checkpoint(self, position: ckpt.DataPosition) -> Path | None:
        """Collective: every rank stages its RNG; rank 0 writes the checkpoint atomically."""
        ckpt.write_rank_rng(self.output_dir, self.step, self.info.rank)
        dist_utils.barrier(self.info)
        model_sd, optim_sd = self._gather_state()
        path = None
        if self.info.is_main:
            py_rng, np_rng = ckpt.capture_python_numpy_rng()
            state = ckpt.TrainerState(
                step=self.step,
                position=ckpt.DataPosition(position.epoch, position.index),
                scheduler=self.scheduler.state_dict(),
                model_name=self.cfg.model.name,
                model_overrides=self.cfg.model.overrides,
                world_size=self.info.world_size,
                python_rng=py_rng,
                numpy_rng=np_rng,
            )
            path = ckpt.write_checkpoint(self.output_dir, state, model_sd, optim_sd, self.cfg.keep_last)
        dist_utils.barrier(self.info)
        self.last_checkpoint = ckpt.checkpoint_root(self.output_dir) / ckpt.step_dir_name(self.step)
        return path

    # -- loop pieces

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision in ("bf16", "fp16") and self.deepspeed_engine is None:
            dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
            return torch.autocast(device_type=self.info.device.type, dtype=dtype)
        return contextlib.nullcontext()

    def _loader(self, dataset: Dataset, batches: list[list[int]], epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)  # keeps the global RNG untouched
        return DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=_Collate(self.processor),
            num_workers=self.cfg.data.num_workers,
            generator=generator,
        )

    def _micro_batches(self, start: ckpt.DataPosition) -> Iterator[tuple[ckpt.DataPosition, Any]]:
        """Endless stream of (position after this batch, batch), epoch after epoch, from ``start``."""
        epoch, index = start.epoch, start.index
        while True:
            batches = self.sampler.epoch_batches(epoch)
            for offset, batch in enumerate(self._loader(self.train_data, batches[index:], epoch)):
                yield ckpt.DataPosition(epoch, index + offset + 1), batch
            epoch, index = epoch + 1, 0

    def _forward(self, batch: Any) -> Any:
        assert self.model is not None
        with self._autocast():
            return self.model(**_to_device(batch, self.info.device))

    def evaluate(self) -> dict[str, float]:
        """Mean validation loss over the val mix (sharded across ranks), plus what callbacks return."""
        metrics: dict[str, float] = {}
        # evaluation must not shift the training random streams (exact resumption compares curves)
        torch_rng, py_np_rng = ckpt.torch_rng_tensors(), ckpt.capture_python_numpy_rng()
        if self.val_data is not None and self.model is not None:
            sampler = ResumableSampler(
                len(self.val_data), self.cfg.data.batch_size, 0, False, self.info.rank, self.info.world_size
            )
            batches = sampler.epoch_batches(0) or [list(range(min(len(self.val_data), self.cfg.data.batch_size)))]
            self.model.eval()
            total = torch.zeros(2)
            with torch.no_grad():
                for batch in self._loader(self.val_data, batches, 0):
                    total += torch.tensor([float(self._forward(batch).loss), 1.0])
            self.model.train()
            total = dist_utils.mean_across_ranks(total, self.info).cpu()
            metrics["loss"] = float(total[0] / max(total[1], 1e-9))
        for callback in self.callbacks:
            hook = getattr(callback, "on_evaluate", None)
            if hook is not None:
                metrics.update(hook(self, self.step) or {})
        ckpt.restore_torch_rng(torch_rng)
        ckpt.restore_python_numpy_rng(*py_np_rng)
        return metrics

    # -- main loop

    def fit(self) -> TrainResult:
        """Train to ``total_steps``; returns where everything was written."""
        try:
            self._setup()
            return self._run()
        finally:
            self.model = None
            self.deepspeed_engine = None
            dist_utils.teardown(self.info)

    def _run(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        assert self.model is not None
        position = ckpt.DataPosition()
        self.last_checkpoint: Path | None = None
        if self.resume_from is not None and self.resume_state is not None:
            self._restore(self.resume_from)
            position = self.resume_state.position
            self.last_checkpoint = self.resume_from
        logger = None
        if info.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / CONFIG_SNAPSHOT).write_text(json.dumps(config_to_dict(cfg), indent=1))
            tb_dir = self.output_dir / "tensorboard" if cfg.tensorboard else None
            logger = JsonlLogger(self.output_dir / LOG_FILE, self.step if self.resume_from else None, tb_dir)
            for record in self.warm_start_records:
                logger.log(record)
        progress = None
        if info.is_main and cfg.progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=self.total_steps, initial=self.step, desc="train", dynamic_ncols=True)
        self.model.train()
        start_time = time.time()
        history: list[dict[str, Any]] = []
        stream = self._micro_batches(position)
        accum = cfg.data.grad_accum
        try:
            while self.step < self.total_steps:
                sums: dict[str, float] = {}
                for micro in range(accum):
                    position, batch = next(stream)
                    sync = micro == accum - 1
                    no_sync = getattr(self.model, "no_sync", None) if self.deepspeed_engine is None else None
                    ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
                    with ctx:
                        output = self._forward(batch)
                        loss = output.loss
                        bad = not bool(torch.isfinite(loss.detach()).all())
                        if dist_utils.all_reduce_flag(bad, info):
                            raise NonFiniteLossError(
                                f"non-finite loss ({float(loss.detach())}) at optimiser step {self.step + 1} "
                                f"(micro-batch {micro + 1}/{accum}); stopped. Last good checkpoint: "
                                f"{self.last_checkpoint or 'none (no checkpoint written yet)'}"
                            )
                        self._backward(loss / accum)
                    sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) / accum
                    for key, value in loss_parts(output).items():
                        sums[key] = sums.get(key, 0.0) + value / accum
                lr = self.scheduler.get_last_lr()[0]  # the lr this step used
                grad_norm = self._optimizer_step()
                self.step += 1
                reduced = dist_utils.mean_across_ranks(torch.tensor(list(sums.values()), dtype=torch.float64), info)
                record = {
                    "step": self.step,
                    "split": "train",
                    "epoch": position.epoch,
                    **{k: float(v) for k, v in zip(sums, reduced.tolist())},
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "time": round(time.time() - start_time, 3),
                }
                history.append(record)
                if logger is not None and (self.step % max(1, cfg.log_every) == 0 or self.step == self.total_steps):
                    logger.log(record)
                if progress is not None:
                    progress.update(1)
                    progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}")
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < self.total_steps:
                    self._log_eval(logger)
                if (cfg.save_every and self.step % cfg.save_every == 0) or self.step == self.total_steps:
                    self.save_checkpoint(position)
            if self.val_data is not None or self.callbacks:
                self._log_eval(logger)
        finally:
            if progress is not None:
                progress.close()
            if logger is not None:
                logger.close()
        final_dir = self._export_final()
        plot_path = None
        if info.is_main:
            if cfg.plot:
                plot_path = plot_losses(self.output_dir / LOG_FILE, self.output_dir / PLOT_FILE)
            summary = {
                "steps": self.step,
                "total_steps": self.total_steps,
                "final_loss": history[-1]["loss"] if history else None,
                "world_size": info.world_size,
                "strategy": self.strategy,
                "precision": self.precision,
                "data": self.train_data.summary(),
                "trainable_parameters": sum(p.numel() for _, p in self.trainable),
                "last_checkpoint": str(self.last_checkpoint) if self.last_checkpoint else None,
                "final_model": str(final_dir) if final_dir else None,
            }
            (self.output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
        return TrainResult(
            self.step,
            history[-1]["loss"] if history else None,
            self.output_dir,
            self.last_checkpoint,
            self.output_dir / LOG_FILE,
            plot_path,
            history,
        )

    def _export_final(self) -> Path | None:
        """``save_pretrained`` the trained model to ``<output_dir>/final`` (rank 0; not for sharded strategies)."""
        save = getattr(self.raw_model, "save_pretrained", None)
        if not self.cfg.export_final or save is None or self.strategy in ("fsdp2", "deepspeed_zero3"):
            return None
        final_dir = self.output_dir / FINAL_DIR
        if self.info.is_main:
            save(final_dir)
        dist_utils.barrier(self.info)
        return final_dir

    def _backward(self, loss: torch.Tensor) -> None:
        if self.deepspeed_engine is not None:
            accum = self.cfg.data.grad_accum
            self.deepspeed_engine.backward(loss * accum)  # DeepSpeed divides by its gradient_accumulation_steps
            self.deepspeed_engine.step()  # applies the optimiser only at the accumulation boundary
        elif self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _optimizer_step(self) -> float:
        params = [p for _, p in self.trainable]
        clip = self.cfg.optim.grad_clip
        if self.deepspeed_engine is not None:  # clipping and the step already ran inside engine.step()
            norm = self.deepspeed_engine.get_global_grad_norm()
            grad_norm = float(norm) if norm is not None else float("nan")
        else:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(params, clip if clip else math.inf)
            grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return grad_norm

    def _log_eval(self, logger: JsonlLogger | None) -> None:
        metrics = self.evaluate()
        if metrics and logger is not None:
            logger.log({"step": self.step, "split": "val", **metrics})


def train(cfg: TrainConfig, resume: str | bool | None = None, callbacks: list[Any] | None = None) -> TrainResult:
    """Convenience wrapper: ``Trainer(cfg, resume, callbacks).fit()``."""
    return Trainer(cfg, resume, callbacks).fit()
