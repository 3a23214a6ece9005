"""SAM2 warm start: teach a random SAM2 its own task (segment the object a box or a click points at) on a dataset's
object masks, before SAMA training teaches the ``[SEG]`` prompt.

SAMA starts from a pretrained SAM2 (SAMA.md §1.1: Hiera-L weights). No SAM2 weights exist offline, so a small preset
whose SAM2 is random (``sama-smol``) would have to learn segmentation from ``[SEG]`` supervision alone. This stage
trains only SAM2 (image encoder, prompt encoder, mask decoder) with SAM-style box / positive-point prompts and the same
BCE + Dice point losses (SAMA.md §1.7), then writes a full ``save_pretrained`` folder that a training config loads with
``model.init_from``. The LLM side is untouched (still its preset initialisation).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from sama.data.masks import MaskDict, mask_xyxy
from sama.data.schema import VideoRecord, load_records
from sama.data.video import open_video
from sama.errors import ConfigError, DataError
from sama.model.grounding import Sam2Features
from sama.model.losses import mask_losses
from sama.model.modeling import SamaModel
from sama.train.schedule import build_scheduler
from sama.train.warm_start import StageResult, adamw, optimise, trainable


class _ObjectFrames:
    """Random (frame, object mask) pairs of a SAMA-format split: the frames where an ``anno_map`` object is visible."""

    def __init__(self, data_dir: Path, split: str, rng: np.random.Generator) -> None:
        json_path, mask_path = data_dir / f"{split}.json", data_dir / f"{split}_mask_dict.json"
        for path in (json_path, mask_path):
            if not path.is_file():
                raise DataError(f"missing {path.name}; expected a SAMA-format split (e.g. `sama data synth`)",
                                file=str(path))
        self.data_dir, self.rng = data_dir, rng
        self.masks = MaskDict.load(mask_path)
        self.records: list[VideoRecord] = [r for r in load_records(json_path, mask_dict=self.masks) if r.anno_map]
        if not self.records:
            raise DataError("no record lists objects in anno_map", file=str(json_path))

    def sample(self, count: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """``count`` frames (uint8) of one random video, each with one visible object's mask."""
        for _ in range(100):
            record = self.records[int(self.rng.integers(len(self.records)))]
            video = open_video(self.data_dir / record.video, frames=record.frames)
            frames = sorted(self.rng.choice(len(video), size=min(count, len(video)), replace=False).tolist())
            pairs = []
            for f in frames:
                visible = [m for obj in record.anno_map
                           if (m := self.masks.frame_mask(obj, f, record.height, record.width)).sum() >= 4]
                if visible:
                    pairs.append((f, visible[int(self.rng.integers(len(visible)))]))
            if pairs:
                return video.frames([f for f, _ in pairs]), [m for _, m in pairs]
        raise DataError("found no frame with a visible object in 100 tries", file=str(self.data_dir))


def _box_prompt(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The mask's box (x1, y1, x2, y2) with SAM-style jitter of up to 10 % of its side."""
    x1, y1, x2, y2 = mask_xyxy(mask)
    w, h = x2 - x1, y2 - y1
    jitter = rng.uniform(-0.1, 0.1, size=4) * np.array([w, h, w, h])
    box = np.array([x1, y1, x2, y2], dtype=np.float32) + jitter
    return np.clip(box, 0, [mask.shape[1], mask.shape[0], mask.shape[1], mask.shape[0]]).astype(np.float32)


def _point_prompt(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    i = int(rng.integers(len(rows)))
    return np.array([cols[i] + 0.5, rows[i] + 0.5], dtype=np.float32)


def warmup_sam2(model: SamaModel, data_dir: str | Path, out_dir: str | Path, *, steps: int, split: str = "train",
                frames_per_step: int = 8, lr: float = 1e-3, seed: int = 0, progress: bool = True) -> StageResult:
    """Train ``model.grounding.sam2`` on box / point prompts for ``steps`` steps, then ``save_pretrained(out_dir)``."""
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = _ObjectFrames(Path(data_dir), split, rng)
    grounding = model.grounding
    sam2 = grounding.sam2
    sam2_params = [*sam2.vision_encoder.parameters(), *sam2.prompt_encoder.parameters(),
                   *sam2.mask_decoder.parameters()]
    with trainable(sam2_params) as params:
        optimizer = adamw(params, lr=lr, weight_decay=0.05)
        schedule = build_scheduler(optimizer, steps, warmup_ratio=0.05, start_factor=1e-3)
        model.train()
        start = time.time()

        def step_loss(step: int) -> torch.Tensor:
            frames, masks = data.sample(frames_per_step)
            height, width = masks[0].shape
            features: Sam2Features = grounding.image_features(frames)
            if step % 2 == 0:  # boxes, as SAMA's referred objects are boxes (SAMA.md §1.4)
                corners = np.stack([_box_prompt(m, rng) for m in masks]).reshape(-1, 2)
                boxes = grounding._to_model_coords(corners, height, width, field="box").view(len(masks), 1, 4)
                logits, _ = grounding._decode_masks(features, None, None, boxes, multimask=False)
            else:
                points = np.stack([_point_prompt(m, rng) for m in masks])
                coords = grounding._to_model_coords(points, height, width, field="point").view(len(masks), 1, 1, 2)
                labels = torch.ones(len(masks), 1, 1, dtype=torch.int32)
                logits, _ = grounding._decode_masks(features, coords, labels, None, multimask=False)
            target = torch.from_numpy(np.stack(masks))
            bce, dice = mask_losses(logits[:, 0, 0], target, model.config.loss)
            return model.config.loss.bce_weight * bce + model.config.loss.dice_weight * dice

        losses = optimise(optimizer, step_loss, steps, "sam2 warm-up", progress=progress, clip=params,
                          schedule=schedule)
    model.eval()
    model.save_pretrained(out_dir)
    return StageResult(seconds=time.time() - start, losses=losses)
