"""ChatSession: multi-turn referential grounded chat over one video.

A session samples the video once (sparse/dense frames, SAMA.md §1.2), caches the per-video work (vision-tower tokens
and spatial Q-Former tokens of the sparse frames) and keeps the LLM KV cache of every earlier turn, so turn k only
feeds its own new tokens: S context tokens, the question, 2 tokens per referred object (SAMA.md §1.5). Each answer's
``[SEG]`` tokens become masks on every frame of the video, decoded lazily by SAM2 (``SamaGrounding.propagate``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sama.data.sampling import sparse_indices
from sama.data.schema import clean_text
from sama.data.video import Video, open_video
from sama.errors import DataError
from sama.model.backbone import SEG_TOKEN
from sama.model.processing import MASK_PLACEHOLDER
from sama.model.prompts import Box, Mask, Point, RegionRef

if TYPE_CHECKING:  # pragma: no cover
    from sama.model.modeling import SamaModel

# A phrase and the [SEG] that grounds it: ``<p> the red circle </p> [SEG]`` (the answer format of SAMA.md §3.2).
_PHRASE_OR_SEG = re.compile(r"<p>(.*?)</p>|\[SEG\]", flags=re.DOTALL)


def seg_phrases(text: str) -> list[str | None]:
    """The phrase each ``[SEG]`` of ``text`` grounds (the nearest preceding ``<p>…</p>`` not yet used), in order."""
    phrases: list[str | None] = []
    pending: str | None = None
    for match in _PHRASE_OR_SEG.finditer(text):
        if match.group(0) == SEG_TOKEN:
            phrases.append(pending)
            pending = None
        else:
            pending = match.group(1).strip()
    return phrases


@dataclass
class ChatTurn:
    """One answered question.

    Attributes:
        question: the question as asked (with ``<mask>`` placeholders).
        raw_text: the decoded answer, tags included (``<p> … </p> [SEG]``).
        text: the answer without tags (METRICS.md §7.1 cleaning).
        phrases: the phrase grounded by each ``[SEG]`` (None where the model emitted a bare ``[SEG]``).
        new_tokens: LLM tokens fed for this turn (prompt part), a measure of per-turn cost.
        notes: adjustments the session made (e.g. a reference moved to the nearest dense frame).
    """

    question: str
    raw_text: str
    text: str
    phrases: list[str | None]
    new_tokens: int
    seg_hidden: torch.Tensor = field(repr=False)
    notes: list[str] = field(default_factory=list)
    _session: ChatSession | None = field(default=None, repr=False)
    _rles: list[list[dict[str, Any] | None]] | None = field(default=None, repr=False)

    @property
    def num_objects(self) -> int:
        return int(self.seg_hidden.shape[0])

    def iter_masks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(frame_idx, (K, H, W) bool)`` for every frame, decoded lazily (streaming, bounded memory)."""
        if self.num_objects == 0 or self._session is None:
            return iter(())
        return iter(self._session.propagate(self.seg_hidden))

    def rles(self) -> list[list[dict[str, Any] | None]]:
        """Per ``[SEG]``, one COCO RLE per frame (None where empty); computed once and kept (compact)."""
        if self._rles is None:
            from sama.data.masks import rle_encode

            per_object: list[list[dict[str, Any] | None]] = [[] for _ in range(self.num_objects)]
            for _, masks in self.iter_masks():
                for k, mask in enumerate(masks):
                    per_object[k].append(rle_encode(mask) if mask.any() else None)
            self._rles = per_object
        return self._rles

    @property
    def masks(self) -> list[np.ndarray]:
        """Per ``[SEG]``, a (T, H, W) bool volume (the DESIGN.md name; same as :meth:`volumes`)."""
        return self.volumes()

    def volumes(self) -> list[np.ndarray]:
        """Per ``[SEG]``, a (T, H, W) bool volume (holds the whole video: prefer :meth:`rles` for long videos)."""
        from sama.data.masks import rle_decode

        if self._session is None:
            return []
        h, w = self._session.video.height, self._session.video.width
        return [np.stack([rle_decode(r, h, w) for r in frames]) for frames in self.rles()]


class ChatSession:
    """A conversation about one video. Create with ``model.start_session(video)``, then call :meth:`ask`."""

    def __init__(self, model: SamaModel, video: Video | np.ndarray | str, *, max_new_tokens: int = 256,
                 seg_hint: bool = False) -> None:
        self.model = model
        self.video = video if isinstance(video, Video) else open_video(video)
        if len(self.video) == 0:
            raise DataError("the video has no frames", field="video")
        self.max_new_tokens = max_new_tokens
        self.seg_hint = seg_hint  # append SAMA's " Response with interleaved segmentation masks." to questions
        cfg = model.config
        s = cfg.sampling
        self.sparse = sparse_indices(len(self.video), s.sparse_interval, s.max_frames, s.min_frames)
        self.frames = self.video.frames(self.sparse)  # (T_s, H, W, 3): all the LLM side ever sees
        self.dense = model.processor.dense_positions(len(self.sparse))
        self.cond_frames = [self.sparse[p] for p in self.dense]  # SAM2 conditioning = the dense frames' raw indices
        with torch.no_grad():
            pixel_values = model.processor.pixel_values(self.frames).to(self._device)
            self.frame_tokens = model.backbone.encode_frames(pixel_values)  # (T_s, N, C), cached for every turn
            self.dense_pixels = pixel_values[self.dense]  # region frames of the referred objects
            self.spatial_tokens = model.aggregator.spatial(self.frame_tokens)
        self.history: list[ChatTurn] = []
        self._cache: Any = None
        self._cached_len = 0
        self._pending_suffix = False  # the last answer's stop word is not in the KV cache yet

    @property
    def cached_tokens(self) -> int:
        """LLM tokens in the KV cache (every earlier turn, prompts and answers)."""
        return self._cached_len

    @property
    def dense_frame_indices(self) -> list[int]:
        """Raw video indices of the dense frames (SAM2's conditioning frames)."""
        return list(self.cond_frames)

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- references ----------------------------------------------------------------------------------------------
    def _reference_volume(self, ref: RegionRef, notes: list[str]) -> np.ndarray:
        """A Mask / Box / Point on any raw frame → a (T_s, H, W) volume on the sparse frames.

        The region token is read on a dense frame (SAMA.md §1.4), so a reference given on another frame is placed on
        the temporally nearest dense frame (noted in the turn).
        """
        h, w, n = self.video.height, self.video.width, len(self.video)
        volume = np.zeros((len(self.sparse), h, w), dtype=bool)
        if isinstance(ref, Mask) and ref.frame is None:
            full = np.asarray(ref.mask).astype(bool)
            if full.shape != (n, h, w):
                raise DataError(f"mask volume of shape {full.shape}, expected (T, H, W) = {(n, h, w)}", field="refs")
            return full[self.sparse]
        frame = ref.frame
        if not isinstance(frame, int | np.integer) or not 0 <= frame < n:
            raise DataError(f"reference frame {frame} outside the video (0..{n - 1})", field="refs")
        if isinstance(ref, Mask):
            mask = np.asarray(ref.mask).astype(bool)
            if mask.shape != (h, w):
                raise DataError(f"reference mask of shape {mask.shape}, expected the frame size {(h, w)}",
                                field="refs")
        elif isinstance(ref, Box):
            x1, y1, x2, y2 = (float(v) for v in ref.xyxy)
            if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                raise DataError(f"box {tuple(ref.xyxy)} must satisfy 0 ≤ x1 < x2 ≤ {w} and 0 ≤ y1 < y2 ≤ {h}",
                                field="refs")
            mask = np.zeros((h, w), dtype=bool)
            mask[int(np.floor(y1)) : int(np.ceil(y2)), int(np.floor(x1)) : int(np.ceil(x2))] = True
        elif isinstance(ref, Point):
            mask = self.model.grounding.point_to_mask(self.video.frame(frame), ref.xy)
            if not mask.any():
                raise DataError(f"the click at {ref.xy} on frame {frame} selected no object", field="refs")
        else:
            raise DataError(f"unsupported reference {type(ref).__name__}; expected Mask, Box or Point", field="refs")
        nearest = min(self.dense, key=lambda p: abs(self.sparse[p] - frame))
        if self.sparse[nearest] != frame:
            notes.append(f"reference on frame {frame} read on the nearest dense frame {self.sparse[nearest]}")
        volume[nearest] = mask
        return volume

    # -- the conversation ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the dialogue (history and KV cache) but keep the per-video caches: the next question is turn 1."""
        self.history = []
        self._cache = None
        self._cached_len = 0
        self._pending_suffix = False

    def _prepare_turn(self, question: str, refs: Sequence[RegionRef], with_seg: bool,
                      notes: list[str]) -> tuple[list[int], torch.Tensor]:
        """Token ids of the human message (the owed stop word first) and its ``<IMG_CONTEXT>`` fill."""
        count = question.count(MASK_PLACEHOLDER)
        if count != len(refs):
            raise DataError(f"the question has {count} <mask> placeholder(s) but {len(refs)} reference(s) were given",
                            field="refs")
        model, processor = self.model, self.model.processor
        volumes = [self._reference_volume(ref, notes) for ref in refs]
        first = not self.history
        turn_inputs = processor.turn_inputs(question, volumes, self.dense, "session", len(self.history))
        template = processor.template
        human = processor.human_text(question, len(self.sparse), first, len(self.dense), with_seg)
        prompt = ("" if first else template["SEP"]) + template["INSTRUCTION"].format(input=human)
        ids = model.tokenizer.encode(prompt, add_special_tokens=False)
        if self._pending_suffix:
            ids = model.tokenizer.encode(template["SUFFIX"], add_special_tokens=False) + ids
        with torch.no_grad():
            visual = self._turn_embeddings(turn_inputs, first)
        return ids, visual

    def _check_budget(self, new_tokens: int, what: str) -> None:
        total = self._cached_len + new_tokens
        if total > self.model.config.llm.max_length:
            raise DataError(f"the dialogue would reach {total} tokens (cached {self._cached_len} + {what}), over "
                            f"llm.max_length={self.model.config.llm.max_length}", field="question")

    def ask(self, question: str, refs: Sequence[RegionRef] = (), *, max_new_tokens: int | None = None) -> ChatTurn:
        """Answer ``question`` (one ``<mask>`` per entry of ``refs``) given the dialogue so far."""
        model = self.model
        notes: list[str] = []
        ids, visual = self._prepare_turn(question, refs, self.seg_hint, notes)
        budget = max_new_tokens or self.max_new_tokens
        self._check_budget(len(ids) + budget, f"prompt {len(ids)} + up to {budget} new")
        with torch.no_grad():
            input_ids = torch.tensor([ids], dtype=torch.long, device=self._device)
            embeds = model.fill_slots(input_ids, [visual])
            generated, seg_hidden = self._greedy(embeds, budget)
        raw = model.tokenizer.decode(generated, skip_special_tokens=False)
        turn = ChatTurn(question=question, raw_text=raw.strip(), text=clean_text(raw), phrases=seg_phrases(raw),
                        new_tokens=len(ids), seg_hidden=seg_hidden, notes=notes, _session=self)
        self.history.append(turn)
        return turn

    def add_turn(self, question: str, answer: str, refs: Sequence[RegionRef] = ()) -> ChatTurn:
        """Feed a given (teacher-forced) answer into the dialogue without generating: the next question sees it as
        history. Same token layout as training (SAMA.md §1.5: the segmentation hint when the answer has ``[SEG]``,
        the answer followed by the stop word). The answer's ``[SEG]`` states are kept, so its masks decode too."""
        model = self.model
        notes: list[str] = []
        ids, visual = self._prepare_turn(question, refs, SEG_TOKEN in answer, notes)
        answer_ids = model.tokenizer.encode(answer + model.processor.template["SUFFIX"], add_special_tokens=False)
        self._check_budget(len(ids) + len(answer_ids), f"prompt {len(ids)} + given answer {len(answer_ids)}")
        with torch.no_grad():
            input_ids = torch.tensor([ids + answer_ids], dtype=torch.long, device=self._device)
            embeds = model.fill_slots(input_ids, [visual])
            if self._cache is None:
                from transformers import DynamicCache

                self._cache = DynamicCache()
            self._cached_len += embeds.shape[1]
            mask = torch.ones(1, self._cached_len, dtype=torch.long, device=embeds.device)
            out = model.backbone.run_llm(embeds, mask, cache=self._cache, use_cache=True, logits_to_keep=1)
            seg_states = out.hidden_states[-1][0][input_ids[0] == model.seg_token_id]  # [SEG] as the input
            seg_hidden = model.grounding_inputs(input_ids[0], seg_states)
        self._pending_suffix = False  # the stop word was fed with the answer
        turn = ChatTurn(question=question, raw_text=answer.strip(), text=clean_text(answer),
                        phrases=seg_phrases(answer), new_tokens=len(ids) + len(answer_ids), seg_hidden=seg_hidden,
                        notes=notes, _session=self)
        self.history.append(turn)
        return turn

    def _turn_embeddings(self, inputs: Any, first: bool) -> torch.Tensor:
        """The turn's ``<IMG_CONTEXT>`` fill (SAMA.md §1.5): [dense frames,] S context tokens, 2 per object."""
        dense_tokens = self.frame_tokens[self.dense]
        turn = self.model.turn_embeddings(self.frame_tokens, dense_tokens, self.spatial_tokens, inputs,
                                          self.dense_pixels)
        return torch.cat([dense_tokens.flatten(0, 1), turn], dim=0) if first else turn

    def _greedy(self, embeds: torch.Tensor, max_new_tokens: int) -> tuple[list[int], torch.Tensor]:
        """Greedy decoding on top of the KV cache; returns the generated ids and their [SEG] grounding inputs."""
        from transformers import DynamicCache

        model = self.model
        if self._cache is None:
            self._cache = DynamicCache()
        suffix_ids = model.tokenizer.encode(model.processor.template["SUFFIX"], add_special_tokens=False)
        stop = {suffix_ids[0], model.tokenizer.eos_token_id} - {None}
        seg_id = model.seg_token_id
        out = self._step(embeds)
        generated: list[int] = []
        seg_states: list[torch.Tensor] = []
        self._pending_suffix = True  # the stop word (generated, or owed after max_new_tokens) is fed next turn
        for _ in range(max_new_tokens):
            next_id = int(out.logits[0, -1].argmax())
            if next_id in stop:
                break
            generated.append(next_id)
            out = self._step(model.backbone.embed(torch.tensor([[next_id]], device=self._device)))
            if next_id == seg_id:  # official get_seg_hidden_states: the state where [SEG] is the input
                seg_states.append(out.hidden_states[-1][0, -1])
        hidden = torch.stack(seg_states) if seg_states else embeds.new_zeros(0, embeds.shape[-1])
        return generated, model.grounding_inputs(generated, hidden)

    def _step(self, embeds: torch.Tensor) -> Any:
        self._cached_len += embeds.shape[1]
        mask = torch.ones(1, self._cached_len, dtype=torch.long, device=embeds.device)
        return self.model.backbone.run_llm(embeds, mask, cache=self._cache, use_cache=True,
                                            logits_to_keep=1)

    def propagate(self, seg_hidden: torch.Tensor) -> Any:
        """SAM2 masks of the given [SEG] states over the whole video (lazy iterator of (frame, (K, H, W)))."""
        return self.model.grounding.propagate(self.video, seg_hidden, self.cond_frames)


def predict(model: SamaModel, video: Video | np.ndarray | str, question: str, refs: Sequence[RegionRef] = (),
            *, max_new_tokens: int = 256, prediction_only: bool = False) -> dict[str, Any]:
    """One question without history, like the official ``predict_forward``: ``{'prediction': text,
    'prediction_masks': [(T, H, W) bool per [SEG]] or None}``."""
    turn = ChatSession(model, video, max_new_tokens=max_new_tokens).ask(question, refs)
    return {"prediction": turn.raw_text, "prediction_masks": None if prediction_only else turn.volumes()}
