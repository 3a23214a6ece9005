"""Language from scene facts: region descriptions, multi-turn grounded conversations and referring expressions.

Every answer is derived from the measured facts of a ``Scene``, so it is correct by construction. Questions are
drawn from several templates per kind; answers are short canonical sentences from a small, fixed vocabulary (so
a 135M LLM can learn them and an evaluator can check them). Each question carries a machine-checkable fact
``{"kind", "expected", "obj_indices", "answer"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sama.data.schema import SEG_TOKEN, extract_phrases
from sama.data.synthetic.scene import Scene, SceneObject

DESCRIBE_QUESTION = "Please describe the region <mask> in the video in detail."  # SAMA.md §5, Bench-C question

MOTION_PHRASES: dict[str, str] = {
    "still": "stays still",
    "left": "moves left",
    "right": "moves right",
    "up": "moves up",
    "down": "moves down",
    "bounce_h": "bounces left and right",
    "bounce_v": "bounces up and down",
}
MOTION_PHRASES_PLURAL: dict[str, str] = {
    "still": "stay still",
    "left": "move left",
    "right": "move right",
    "up": "move up",
    "down": "move down",
    "bounce_h": "bounce left and right",
    "bounce_v": "bounce up and down",
}
RELATION_PHRASES: dict[str, str] = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
}
QUESTION_TEMPLATES: dict[str, tuple[str, ...]] = {
    "colour": ("What colour is <mask>?", "What is the colour of <mask>?", "Which colour does <mask> have?"),
    "shape": ("What shape is <mask>?", "What is the shape of <mask>?", "Which shape does <mask> have?"),
    "size": ("How big is <mask>?", "Is <mask> small or large?", "What size is <mask>?"),
    "motion": ("Which direction does <mask> move?", "How does <mask> move?", "What is <mask> doing?"),
    "identity": ("What is <mask>?", "What object is <mask>?", "Can you tell me what <mask> is?"),
    "first_event": ("What happens to <mask> first?", "What is the first thing that happens to <mask>?"),
    "next_event": ("What happens to it after that?", "And what happens next?", "What happens to it then?"),
    "followup_colour": ("What colour is it?", "And what colour is it?", "Which colour does it have?"),
    "followup_shape": ("What shape is it?", "And what is its shape?"),
    "list_objects": ("What objects are in the video?", "Which objects can you see?", "List the objects in the video."),
    "closest": ("Which object is closest to <mask>?", "What is the nearest object to <mask>?"),
    "relation": ("Where is <mask> relative to <mask>?", "What is the position of <mask> compared to <mask>?"),
    "which_moves": ("Which object {motion}?", "Find the object that {motion}.", "What {motion}?"),
    "which_colour": ("Where is the {colour} object?", "Find the {colour} object.", "Which object is {colour}?"),
}
ATTRIBUTE_KINDS: tuple[str, ...] = ("colour", "shape", "size", "motion", "identity")  # one-object questions
TEMPLATE_KINDS: dict[str, str] = {  # template → kind, for the templates without a placeholder
    template: kind for kind, templates in QUESTION_TEMPLATES.items() for template in templates if "{" not in template
}
EVENT_PHRASES: dict[str, str] = {
    "enters": "it enters the frame",
    "leaves": "it leaves the frame",
    "stops": "it stops",
    "bounces": "it bounces off the wall",
}


@dataclass
class Turn:
    """One generated question/answer with its referred objects, grounded objects and checkable fact."""

    question: str
    answer: str
    ref_objects: list[int] = field(default_factory=list)  # one object index per <mask>
    seg_objects: list[list[int]] = field(default_factory=list)  # object indices per [SEG]
    fact: dict[str, Any] | None = None
    about: list[int] | None = None  # objects the turn is about; defaults to ref_objects (set for follow-ups)

    def subject_objects(self) -> list[int]:
        """Objects the question is about, including those referred to only through the dialogue history."""
        return list(self.ref_objects) if self.about is None else list(self.about)


def grounded(obj: SceneObject) -> str:
    """``<p> the red circle </p> [SEG]``."""
    return f"<p> {obj.name} </p> {SEG_TOKEN}"


def indefinite(word: str) -> str:
    """'an' before a vowel ("an orange square"), else 'a'."""
    return "an" if word[:1] in "aeiou" else "a"


def join_phrases(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def event_sentence(event: dict[str, Any], objects: list[SceneObject], ground: bool = True) -> tuple[str, list[int]]:
    """Clause for one event ("it enters the frame") and the objects it grounds (the occluder of "hidden")."""
    if event["event"] == "hidden":
        occluder = objects[event["by"]]
        return f"it goes behind {grounded(occluder) if ground else occluder.name}", [occluder.index]
    return EVENT_PHRASES[event["event"]], []


def describe(obj: SceneObject, scene: Scene) -> str:
    """Canonical region description: appearance, motion and events in order (no grounding tokens)."""
    text = f"A {obj.size} {obj.colour} {obj.shape} {MOTION_PHRASES[obj.motion]}."  # sizes start with a consonant
    clauses = [
        event_sentence(event, scene.objects, ground=False)[0] for event in obj.events if event["event"] != "bounces"
    ]
    if clauses:
        text += " " + " and then ".join(clauses).capitalize() + "."
    return text


def description_fact(obj: SceneObject, scene: Scene) -> dict[str, Any]:
    """Checkable fact of a region description: the canonical text and the attributes it must mention."""
    events = [event["event"] for event in obj.events if event["event"] != "bounces"]
    attributes = {"colour": obj.colour, "shape": obj.shape, "size": obj.size, "motion": obj.motion, "events": events}
    return {"kind": "description", "expected": describe(obj, scene), "attributes": attributes}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _describe_turn(obj: SceneObject, scene: Scene, rng: np.random.Generator) -> list[Turn]:
    text = describe(obj, scene)
    return [Turn(DESCRIBE_QUESTION, text, [obj.index], [], description_fact(obj, scene))]


def attribute_turn(obj: SceneObject, kind: str, rng: np.random.Generator) -> Turn:
    """One ``ATTRIBUTE_KINDS`` question about ``obj`` (a random template of the kind) with its canonical answer."""
    answers = {
        "colour": (f"It is {obj.colour}.", obj.colour),
        "shape": (f"It is a {obj.shape}.", obj.shape),
        "size": (f"It is {obj.size}.", obj.size),
        "motion": (f"It {MOTION_PHRASES[obj.motion]}.", obj.motion),
        "identity": (f"It is {indefinite(obj.colour)} {obj.colour} {obj.shape}.", f"{obj.colour} {obj.shape}"),
    }
    answer, expected = answers[kind]
    return Turn(_pick(rng, QUESTION_TEMPLATES[kind]), answer, [obj.index], [], {"kind": kind, "expected": expected})


def attribute_questions(scene: Scene, rng: np.random.Generator) -> list[Turn]:
    """Every object asked every ``ATTRIBUTE_KINDS`` question once (random templates), in random order.

    The chat (:func:`build_conversation`) holds about one attribute question per object, drawn by kind at random, so a
    few hundred videos give each kind's templates a few dozen answers whose mix of values is left to chance (measured
    on the 320 train videos of seed 0: 89 motion questions, and "How does <mask> move?" answered with a bounce 11 of
    24 times against 9 of 34 for "What is <mask> doing?"). This balanced set is written beside the chat
    (``<split>_attributes.json``) as more training data for answers about a referred object.
    """
    turns = [attribute_turn(obj, kind, rng) for obj in scene.objects for kind in ATTRIBUTE_KINDS]
    return [turns[i] for i in rng.permutation(len(turns))]


def _attribute_turns(obj: SceneObject, scene: Scene, rng: np.random.Generator) -> list[Turn]:
    """An attribute question, optionally followed by a history-dependent follow-up on the same object."""
    kind = _pick(rng, ATTRIBUTE_KINDS)
    turns = [attribute_turn(obj, kind, rng)]
    if kind in ("motion", "size") and rng.random() < 0.5:
        follow = _pick(rng, ("followup_colour", "followup_shape"))
        value = obj.colour if follow == "followup_colour" else obj.shape
        answer = f"It is {value}." if follow == "followup_colour" else f"It is a {value}."
        fact = {"kind": follow.removeprefix("followup_"), "expected": value, "followup": True}
        turns.append(Turn(_pick(rng, QUESTION_TEMPLATES[follow]), answer, [], [], fact, about=[obj.index]))
    return turns


def _event_turns(obj: SceneObject, scene: Scene, rng: np.random.Generator) -> list[Turn]:
    """'What happens to <mask> first?' and the history-dependent 'What happens to it after that?'."""
    events = [event for event in obj.events if event["event"] != "bounces"]  # bouncing is told by the motion
    turns: list[Turn] = []
    for position, template in ((0, "first_event"), (1, "next_event")):
        if position < len(events):
            clause, seg = event_sentence(events[position], scene.objects)
            answer, expected = clause[0].upper() + clause[1:] + ".", events[position]["event"]
            seg_objects = [[index] for index in seg]
        else:
            answer, expected, seg_objects = ("Nothing else happens." if position else "Nothing happens."), "none", []
        fact = {"kind": "event", "expected": expected, "followup": position > 0, "phrases": extract_phrases(answer)}
        refs = [obj.index] if position == 0 else []
        turns.append(Turn(_pick(rng, QUESTION_TEMPLATES[template]), answer, refs, seg_objects, fact, about=[obj.index]))
        if expected == "none":
            break
    return turns


def _list_objects_turn(scene: Scene, rng: np.random.Generator) -> Turn:
    objects = scene.objects
    answer = f"There are {join_phrases([grounded(obj) for obj in objects])}."
    fact = {"kind": "objects", "expected": sorted(obj.name for obj in objects)}
    return Turn(_pick(rng, QUESTION_TEMPLATES["list_objects"]), answer, [], [[obj.index] for obj in objects], fact)


def _closest_turn(obj: SceneObject, scene: Scene, rng: np.random.Generator) -> Turn | None:
    if obj.index not in scene.closest:
        return None
    other = scene.objects[scene.closest[obj.index]]
    fact = {"kind": "closest", "expected": other.name}
    return Turn(
        _pick(rng, QUESTION_TEMPLATES["closest"]), f"It is {grounded(other)}.", [obj.index], [[other.index]], fact
    )


def _relation_turn(scene: Scene, rng: np.random.Generator) -> Turn | None:
    if not scene.relations:
        return None
    relation = scene.relations[int(rng.integers(len(scene.relations)))]
    subject, other = scene.objects[relation["subject"]], scene.objects[relation["object"]]
    answer = f"{grounded(subject)} is {RELATION_PHRASES[relation['relation']]} {grounded(other)}."
    fact = {"kind": "relation", "expected": relation["relation"], "phrases": [subject.name, other.name]}
    turns_refs = [subject.index, other.index]
    return Turn(_pick(rng, QUESTION_TEMPLATES["relation"]), answer, turns_refs, [[subject.index], [other.index]], fact)


def _which_motion_turn(scene: Scene, rng: np.random.Generator) -> Turn:
    """Grounded lookup by motion: every object with that motion gets its own [SEG]."""
    motion = scene.objects[int(rng.integers(len(scene.objects)))].motion
    matches = [obj for obj in scene.objects if obj.motion == motion]
    question = _pick(rng, QUESTION_TEMPLATES["which_moves"]).format(motion=MOTION_PHRASES[motion])
    verb = MOTION_PHRASES[motion] if len(matches) == 1 else MOTION_PHRASES_PLURAL[motion]
    answer = f"{join_phrases([grounded(obj) for obj in matches])} {verb}."
    fact = {"kind": "which_motion", "expected": sorted(obj.name for obj in matches)}
    return Turn(question, answer, [], [[obj.index] for obj in matches], fact)


def _which_colour_turn(scene: Scene, rng: np.random.Generator) -> Turn:
    """Grounded lookup by colour (unique within a scene)."""
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    question = _pick(rng, QUESTION_TEMPLATES["which_colour"]).format(colour=obj.colour)
    fact = {"kind": "which_colour", "expected": [obj.name]}
    return Turn(question, f"It is {grounded(obj)}.", [], [[obj.index]], fact)


def build_conversation(scene: Scene, rng: np.random.Generator, max_turns: int = 8) -> list[Turn]:
    """Alternate grounded blocks (with [SEG]) and plain blocks so every aligned group of 4 turns has a [SEG].

    Plain blocks have at most 2 turns, so the gap between grounded turns is at most 2 and chunks of 4 turns
    (``qa_per_item=4``, SAMA.md §3.2) always keep one; the conversation ends on a grounded block.
    """
    objects = scene.objects
    order = list(rng.permutation(len(objects)))
    grounded_blocks: list[list[Turn]] = [[_list_objects_turn(scene, rng)]]
    for index in order:
        closest = _closest_turn(objects[index], scene, rng)
        if closest is not None:
            grounded_blocks.append([closest])
            break
    relation = _relation_turn(scene, rng)
    if relation is not None:
        grounded_blocks.append([relation])
    grounded_blocks.append([_which_motion_turn(scene, rng)])
    grounded_blocks.append([_which_colour_turn(scene, rng)])
    with_events = [index for index in order if any(e["event"] != "bounces" for e in objects[index].events)]
    without_events = [index for index in order if index not in with_events][:1]  # one "Nothing happens." at most
    event_blocks = [_event_turns(objects[index], scene, rng) for index in with_events + without_events]
    plain_blocks: list[list[Turn]] = []
    for block in event_blocks:  # event answers naming an occluder ("goes behind <p> … </p> [SEG]") are grounded
        (grounded_blocks if any(turn.seg_objects for turn in block) else plain_blocks).append(block)
    plain_blocks += [_attribute_turns(objects[index], scene, rng) for index in order]
    plain_blocks.append(_describe_turn(objects[order[0]], scene, rng))
    grounded_order = [grounded_blocks[i] for i in rng.permutation(len(grounded_blocks))]
    plain_order = [plain_blocks[i] for i in rng.permutation(len(plain_blocks))]
    turns: list[Turn] = []
    while grounded_order:
        block = grounded_order.pop()
        if len(turns) + len(block) > max_turns and turns:
            break
        turns.extend(block)
        if plain_order and grounded_order:
            plain = plain_order.pop()
            if len(turns) + len(plain) + len(grounded_order[-1]) <= max_turns:  # never end on a plain block
                turns.extend(plain)
    return turns


EXPRESSION_KINDS: dict[str, re.Pattern[str]] = {  # kinds of ``referring_expressions``; the first match wins
    "motion": re.compile(r"^the objects? that "),  # "the object that moves left", "the object that enters the frame"
    "pair": re.compile(r" and the "),  # "the red circle and the blue square"
    "colour": re.compile(r"^the \w+ object$"),  # "the red object"
}


def expression_kind(expression: str) -> str:
    """Kind of a ``referring_expressions`` expression: "motion" (motion or event), "pair", "colour", else "name"
    ("the red circle", "the circle", "the small circle")."""
    return next((kind for kind, pattern in EXPRESSION_KINDS.items() if pattern.search(expression)), "name")


def referring_expressions(
    scene: Scene, rng: np.random.Generator, max_expressions: int = 6
) -> list[tuple[str, list[int]]]:
    """(expression, object indices) pairs for RVOS; each expression matches exactly the listed objects."""
    objects = scene.objects
    candidates: list[tuple[str, list[int]]] = []
    for obj in objects:
        candidates.append((obj.name, [obj.index]))
        candidates.append((f"the {obj.colour} object", [obj.index]))
        same_shape = [o.index for o in objects if o.shape == obj.shape]
        if len(same_shape) == 1:
            candidates.append((f"the {obj.shape}", [obj.index]))
        same_size_shape = [o.index for o in objects if o.shape == obj.shape and o.size == obj.size]
        if len(same_shape) > 1 and len(same_size_shape) == 1:
            candidates.append((f"the {obj.size} {obj.shape}", [obj.index]))
    for motion in sorted({obj.motion for obj in objects}):
        matches = [obj.index for obj in objects if obj.motion == motion]
        phrase = MOTION_PHRASES[motion]
        if len(matches) == 1:
            candidates.append((f"the object that {phrase}", matches))
        else:
            candidates.append((f"the objects that {MOTION_PHRASES_PLURAL[motion]}", matches))
    for event_name, text in (("enters", "enters the frame"), ("leaves", "leaves the frame"), ("stops", "stops")):
        matches = [obj.index for obj in objects if any(e["event"] == event_name for e in obj.events)]
        if len(matches) == 1:
            candidates.append((f"the object that {text}", matches))
    if len(objects) >= 2:
        first, second = (objects[i] for i in rng.choice(len(objects), size=2, replace=False))
        candidates.append((f"{first.name} and {second.name}", sorted([first.index, second.index])))
    chosen = rng.choice(len(candidates), size=min(max_expressions, len(candidates)), replace=False)
    return [candidates[i] for i in sorted(chosen)]
