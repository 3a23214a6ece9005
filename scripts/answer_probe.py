"""Teacher-forced answers of a checkpoint on the synthetic val split's referring turns, by question kind.

    python scripts/answer_probe.py CHECKPOINT [--data outputs/data/synthetic-smol] [--threads 2]

Every val turn that refers to an object and grounds none is asked alone, in the full layout (dense frames first); the
val attribute questions (``val_attributes.json``, every object asked each kind once) are reported apart, as
``attributes/<kind>``, when the data has them. A question counts when the argmax at every answer token is the answer's
token ("exact"); for region descriptions
("A large red circle moves left.") the size, colour and shape words are scored one by one, and the motion as its
verb and direction word together ("moves left": the direction alone, after the given verb, is a 1- to 4-way choice).
Minutes on 2 cores, instead of the bench's generation: a quick read of what the language side has learned.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import torch
from probe_cli import probe_inputs

from sama.data.datasets import is_referring_turn, synthetic_dataset
from sama.model.losses import labelled_positions
from sama.model.modeling import SamaModel
from sama.train.region_warmup import referring_turns

QUESTION_KINDS = {  # first match wins; templates of sama.data.synthetic.language.QUESTION_TEMPLATES
    "colour": r"colou?r", "shape": r"shape", "size": r"big|small or large|size", "motion": r"move|doing",
    "identity": r"What is <mask>\?|What object|tell me what", "description": r"describe", "event": r"happen",
}
DESCRIPTION_WORDS = {"size": (1,), "colour": (2,), "shape": (3,), "motion": (4, 5)}  # answer tokens of "A large red …"


def question_kind(question: str) -> str:
    """The first ``QUESTION_KINDS`` kind whose pattern the question matches, else "other"."""
    return next((kind for kind, pattern in QUESTION_KINDS.items() if re.search(pattern, question)), "other")


def probe(model: SamaModel, data: str | Path) -> dict[str, tuple[int, int]]:
    """(correct, asked) per question kind, per description word as ``description/<word>``, and per kind of the
    attribute questions as ``attributes/<kind>``."""
    scores: dict[str, list[bool]] = defaultdict(list)
    tasks = ["chat", "description"] + (["attributes"] if (Path(data) / "val_attributes.json").is_file() else [])
    dataset = synthetic_dataset(data, "val", tasks=tasks, training=False)
    with torch.no_grad():
        for index in range(len(dataset)):
            sample = dataset[index]
            questions = [t.question for t in sample.turns if is_referring_turn(t)]
            for question, item in zip(questions, referring_turns(model.processor, sample, dense_frames=True)):
                kind = ("attributes/" if sample.source == "synthetic_attributes" else "") + question_kind(question)
                batch = model.processor.collate([item])
                labels = batch["labels"]
                target = labels[0, labelled_positions(labels) + 1]
                right = model(**batch).logits[0].argmax(-1) == target
                if kind == "description":
                    for word, positions in DESCRIPTION_WORDS.items():
                        if max(positions) < len(right):
                            scores[f"description/{word}"].append(bool(right[list(positions)].all()))
                else:
                    scores[kind].append(bool(right.all()))
    return {kind: (sum(hits), len(hits)) for kind, hits in sorted(scores.items())}


def main() -> None:
    model, data = probe_inputs(__doc__.split("\n\n")[0], ["val"])
    result = probe(model, data)
    for kind, (right, asked) in result.items():
        print(f"{kind:22s} {right:4d} / {asked:<4d} {right / asked:.2f}")
    print(json.dumps({k: right / asked for k, (right, asked) in result.items()}))


if __name__ == "__main__":
    main()
