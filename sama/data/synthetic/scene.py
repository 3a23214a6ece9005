"""Scene simulation: moving coloured shapes rendered with exact per-frame visible masks and ground-truth facts.

Everything is numpy and deterministic from a ``numpy.random.Generator``: the same generator state gives the same
scene. Objects have a distinct colour per scene, a shape, a size, a motion (still, left/right/up/down, bouncing,
optionally stopping) and a z-order; masks are the pixels each object really shows after occlusion. Events (enters,
leaves, hidden, stops, bounces) and pairwise relations are measured from the rendered masks, so the facts are
true of the video by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sama.errors import ConfigError

# Named palette of object colours (RGB). Kept far apart from each other and from the dark background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 90, 230),
    "yellow": (240, 220, 40),
    "purple": (160, 60, 200),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# Object radius (half extent) as a fraction of min(H, W).
SIZE_FRACTIONS: dict[str, float] = {"small": 0.08, "large": 0.14}
MOTIONS: tuple[str, ...] = ("still", "left", "right", "up", "down", "bounce_h", "bounce_v")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
EVENTS: tuple[str, ...] = ("enters", "leaves", "hidden", "stops", "bounces")
BACKGROUND_GREY = 45  # plain background level; far from every palette colour
TEXTURE_AMPLITUDE = 6  # +- grey levels of the light static texture
HIDDEN_FRACTION = 0.5  # an object counts as hidden when less than this share of its in-frame pixels shows
MAX_ATTEMPTS = 50  # scene re-draws before giving up on the visibility constraints


@dataclass(frozen=True)
class SceneConfig:
    """Size of the videos and the probabilities of the scene generator."""

    height: int = 96
    width: int = 96
    num_frames: int = 24
    min_objects: int = 2
    max_objects: int = 4
    textured_background_prob: float = 0.5
    enter_prob: float = 0.2  # chance that a moving object starts outside the frame and enters
    stop_prob: float = 0.2  # chance that a moving object stops half-way
    speed_range: tuple[float, float] = (0.015, 0.03)  # pixels per frame as a fraction of the frame side
    min_visible_fraction: float = 0.3  # every object must show on at least this share of the frames
    motions: tuple[str, ...] = MOTIONS  # motions to draw from (a subset makes an easier world)

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first invalid field."""
        if self.height < 32 or self.width < 32:
            raise ConfigError(f"scene size must be at least 32x32, got {self.height}x{self.width}")
        if self.num_frames < 4:
            raise ConfigError(f"num_frames must be at least 4, got {self.num_frames}")
        if not 1 <= self.min_objects <= self.max_objects <= len(COLOURS):
            raise ConfigError(
                f"need 1 <= min_objects <= max_objects <= {len(COLOURS)} (one colour each), "
                f"got {self.min_objects}..{self.max_objects}"
            )
        for name in ("textured_background_prob", "enter_prob", "stop_prob", "min_visible_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        unknown = sorted(set(self.motions) - set(MOTIONS))
        if not self.motions or unknown:
            raise ConfigError(f"motions must be a non-empty subset of {list(MOTIONS)}, got {list(self.motions)}")
        low, high = self.speed_range
        if not 0 < low <= high:
            raise ConfigError(f"speed_range must be 0 < low <= high, got {self.speed_range}")


@dataclass
class SceneObject:
    """One object: appearance, motion and the facts measured from its rendered masks."""

    index: int
    colour: str
    shape: str
    size: str
    radius: float
    z: int  # larger is drawn on top
    motion: str  # one of MOTIONS, measured from the trajectory
    centers: np.ndarray  # (T, 2) float (x, y) of the shape centre per frame
    stop_frame: int | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Canonical referring phrase, unique in the scene because colours are distinct."""
        return f"the {self.colour} {self.shape}"


@dataclass
class Scene:
    """A rendered video with its exact visible masks and facts."""

    config: SceneConfig
    frames: np.ndarray  # (T, H, W, 3) uint8
    masks: np.ndarray  # (N, T, H, W) bool, visible pixels after occlusion
    full_masks: np.ndarray  # (N, T, H, W) bool, each shape as if alone (clipped to the frame)
    objects: list[SceneObject]
    background: str  # "plain" | "textured"
    relations: list[dict[str, Any]] = field(default_factory=list)
    closest: dict[int, int] = field(default_factory=dict)  # object index -> clearly closest other object index

    def facts(self) -> dict[str, Any]:
        """JSON-ready ground truth of the scene (object indices are positions in ``objects``)."""
        return {
            "height": self.config.height,
            "width": self.config.width,
            "num_frames": self.config.num_frames,
            "background": self.background,
            "objects": [
                {
                    "index": obj.index,
                    "colour": obj.colour,
                    "shape": obj.shape,
                    "size": obj.size,
                    "name": obj.name,
                    "z": obj.z,
                    "motion": obj.motion,
                    "stop_frame": obj.stop_frame,
                    "events": obj.events,
                    "visible_frames": [int(t) for t in np.flatnonzero(self.masks[obj.index].any(axis=(1, 2)))],
                    "centers": [[round(float(x), 2), round(float(y), 2)] for x, y in obj.centers],
                }
                for obj in self.objects
            ],
            "relations": self.relations,
            "closest": {str(k): v for k, v in self.closest.items()},
        }


def shape_mask(shape: str, cx: float, cy: float, radius: float, height: int, width: int) -> np.ndarray:
    """(H, W) bool raster of one shape centred at (cx, cy), pixel centres at integer coordinates."""
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    if shape == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2
    if shape == "square":
        half = 0.85 * radius
        return (np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half)
    if shape == "triangle":  # apex up, base 2r wide at cy + r
        top = cy - radius
        return (ys >= top) & (ys <= cy + radius) & (np.abs(xs - cx) <= (ys - top) / 2)
    raise ConfigError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _trajectory(
    motion: str, radius: float, config: SceneConfig, rng: np.random.Generator
) -> tuple[np.ndarray, int | None]:
    """Centres (T, 2) for the drawn motion, and the frame the object stops at (or ``None``)."""
    height, width, frames = config.height, config.width, config.num_frames
    side = min(height, width)
    cx = rng.uniform(radius, width - 1 - radius)  # the whole shape inside the frame
    cy = rng.uniform(radius, height - 1 - radius)
    centers = np.zeros((frames, 2), dtype=np.float64)
    if motion == "still":
        centers[:] = (cx, cy)
        return centers, None
    speed = rng.uniform(*config.speed_range) * side
    if motion in ("bounce_h", "bounce_v"):
        axis = 0 if motion == "bounce_h" else 1
        low, high = radius, (width if axis == 0 else height) - 1 - radius
        pos, vel = np.array([cx, cy]), np.zeros(2)
        vel[axis] = speed * 2 * (1 if rng.random() < 0.5 else -1)  # fast enough to hit a wall
        for t in range(frames):
            centers[t] = pos
            if not low <= pos[axis] + vel[axis] <= high:  # turn before crossing the wall: every step is full speed
                vel[axis] = -vel[axis]
            pos = pos + vel
        return centers, None
    dx, dy = DIRECTIONS[motion]
    if rng.random() < config.enter_prob:  # start just outside the side it comes from
        delay = rng.uniform(1, frames / 3) * speed
        if dx:
            cx = (-radius - delay) if dx > 0 else (width + radius + delay)
        else:
            cy = (-radius - delay) if dy > 0 else (height + radius + delay)
    steps = np.arange(frames, dtype=np.float64)
    stop_frame: int | None = None
    if rng.random() < config.stop_prob:
        stop_frame = int(rng.integers(frames // 3, 2 * frames // 3 + 1))
        steps = np.minimum(steps, stop_frame)
    centers[:, 0] = cx + dx * speed * steps
    centers[:, 1] = cy + dy * speed * steps
    if stop_frame is not None:  # only a stop the viewer can see counts: the object must be fully in frame
        x, y = centers[stop_frame]
        if not (radius <= x <= width - radius and radius <= y <= height - radius):
            centers[:, 0] = cx + dx * speed * np.arange(frames)
            centers[:, 1] = cy + dy * speed * np.arange(frames)
            stop_frame = None
    return centers, stop_frame


def _measure_motion(obj: SceneObject) -> str:
    """Motion label from the trajectory: bounce if the direction flips, else the net direction, else still."""
    steps = np.diff(obj.centers, axis=0)
    moving = np.abs(steps).sum(axis=1) > 1e-9
    if not moving.any():
        return "still"
    for axis, label in ((0, "bounce_h"), (1, "bounce_v")):
        signs = np.sign(steps[moving, axis])
        signs = signs[signs != 0]
        if len(signs) > 1 and (signs != signs[0]).any():
            return label
    dx, dy = obj.centers[-1] - obj.centers[0]
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _measure_events(obj: SceneObject, scene_masks: np.ndarray, full: np.ndarray, order: list[int]) -> list[dict]:
    """Events of one object, in frame order, measured from the masks and the trajectory."""
    index = obj.index
    in_frame = full[index].sum(axis=(1, 2))
    visible = scene_masks[index].sum(axis=(1, 2))
    events: list[dict[str, Any]] = []
    seen = np.flatnonzero(in_frame > 0)
    if in_frame[0] == 0 and seen.size:
        events.append({"frame": int(seen[0]), "event": "enters"})
    if seen.size:
        after = np.flatnonzero(in_frame[seen[0] :] == 0)
        if after.size:
            events.append({"frame": int(seen[0] + after[0]), "event": "leaves"})
    hidden = (in_frame > 0) & (visible < HIDDEN_FRACTION * in_frame)
    above = [other for other in order[order.index(index) + 1 :]]
    for t in np.flatnonzero(hidden & ~np.concatenate([[False], hidden[:-1]])):
        overlaps = [int((full[index, t] & full[other, t]).sum()) for other in above]
        occluder = above[int(np.argmax(overlaps))]
        events.append({"frame": int(t), "event": "hidden", "by": int(occluder)})
    if obj.stop_frame is not None:
        events.append({"frame": int(obj.stop_frame), "event": "stops"})
    if obj.motion in ("bounce_h", "bounce_v"):
        axis = 0 if obj.motion == "bounce_h" else 1
        signs = np.sign(np.diff(obj.centers[:, axis]))
        for t in np.flatnonzero(signs[1:] != signs[:-1]):
            events.append({"frame": int(t + 1), "event": "bounces"})
    order_of = {name: rank for rank, name in enumerate(EVENTS)}
    events.sort(key=lambda e: (e["frame"], order_of[e["event"]]))
    return events


def _visible_centroids(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (x, y) centroid of each (T, H, W) mask and whether the mask is non-empty there."""
    counts = masks.sum(axis=(2, 3)).astype(np.float64)  # (N, T)
    ys = np.arange(masks.shape[2], dtype=np.float64)
    xs = np.arange(masks.shape[3], dtype=np.float64)
    safe = np.maximum(counts, 1)
    cx = (masks.sum(axis=2) * xs).sum(axis=2) / safe
    cy = (masks.sum(axis=3) * ys).sum(axis=2) / safe
    return np.stack([cx, cy], axis=-1), counts > 0


def _measure_relations(scene: Scene) -> None:
    """Pairwise relations that hold on every frame both objects show, and clearly closest neighbours."""
    centroids, present = _visible_centroids(scene.masks)
    side = min(scene.config.height, scene.config.width)
    margin = 0.1 * side  # relation must hold by at least this many pixels on every shared frame
    min_shared = max(2, scene.config.num_frames // 4)
    count = len(scene.objects)
    for a in range(count):
        for b in range(count):
            if a == b:
                continue
            shared = present[a] & present[b]
            if shared.sum() < min_shared:
                continue
            dx = centroids[a, shared, 0] - centroids[b, shared, 0]
            dy = centroids[a, shared, 1] - centroids[b, shared, 1]
            for relation, holds in (
                ("left of", dx < -margin),
                ("right of", dx > margin),
                ("above", dy < -margin),
                ("below", dy > margin),
            ):
                if holds.all():
                    scene.relations.append({"subject": a, "object": b, "relation": relation})
                    break
    if count < 3:
        return
    for a in range(count):
        distances = []
        for b in range(count):
            shared = present[a] & present[b]
            if a == b or shared.sum() < min_shared:
                distances.append(np.inf)
                continue
            delta = centroids[a, shared] - centroids[b, shared]
            distances.append(float(np.hypot(delta[:, 0], delta[:, 1]).mean()))
        ranked = np.argsort(distances, kind="stable")
        first, second = distances[ranked[0]], distances[ranked[1]]
        if np.isfinite(first) and first < 0.75 * second:  # only when clearly closer than the runner-up
            scene.closest[a] = int(ranked[0])


def render(objects: list[SceneObject], config: SceneConfig, background: np.ndarray) -> tuple[np.ndarray, ...]:
    """Paint the objects in z-order; return frames (T,H,W,3), visible masks and full masks (N,T,H,W)."""
    frames_count, height, width = config.num_frames, config.height, config.width
    full = np.zeros((len(objects), frames_count, height, width), dtype=bool)
    for obj in objects:
        for t, (cx, cy) in enumerate(obj.centers):
            full[obj.index, t] = shape_mask(obj.shape, cx, cy, obj.radius, height, width)
    visible = np.zeros_like(full)
    covered = np.zeros((frames_count, height, width), dtype=bool)
    for obj in sorted(objects, key=lambda o: -o.z):  # top first
        visible[obj.index] = full[obj.index] & ~covered
        covered |= full[obj.index]
    frames = np.broadcast_to(background, (frames_count, height, width, 3)).copy()
    for obj in objects:
        frames[visible[obj.index]] = COLOURS[obj.colour]
    return frames, visible, full


def simulate_scene(rng: np.random.Generator, config: SceneConfig | None = None) -> Scene:
    """Draw and render one scene; re-draw until every object shows on enough frames."""
    config = config or SceneConfig()
    config.validate()
    height, width, frames_count = config.height, config.width, config.num_frames
    side = min(height, width)
    for _ in range(MAX_ATTEMPTS):
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
        colours = rng.choice(list(COLOURS), size=count, replace=False)
        z_order = rng.permutation(count)
        objects = []
        for index in range(count):
            size = str(rng.choice(list(SIZE_FRACTIONS)))
            radius = SIZE_FRACTIONS[size] * side
            motion = str(rng.choice(list(config.motions)))
            centers, stop_frame = _trajectory(motion, radius, config, rng)
            obj = SceneObject(
                index=index,
                colour=str(colours[index]),
                shape=str(rng.choice(SHAPES)),
                size=size,
                radius=radius,
                z=int(z_order[index]),
                motion=motion,
                centers=centers,
                stop_frame=stop_frame,
            )
            obj.motion = _measure_motion(obj)
            objects.append(obj)
        textured = rng.random() < config.textured_background_prob
        background = np.full((height, width, 3), BACKGROUND_GREY, dtype=np.int16)
        if textured:
            background += rng.integers(
                -TEXTURE_AMPLITUDE, TEXTURE_AMPLITUDE + 1, size=(height, width, 1), dtype=np.int16
            )
        frames, visible, full = render(objects, config, background.astype(np.uint8))
        shown = visible.any(axis=(2, 3)).sum(axis=1)
        if (shown >= max(2, config.min_visible_fraction * frames_count)).all():
            break
    else:
        raise ConfigError(
            f"could not place {config.min_objects}..{config.max_objects} objects visibly in {MAX_ATTEMPTS} tries; "
            "use a larger frame or fewer objects"
        )
    order = [obj.index for obj in sorted(objects, key=lambda o: o.z)]  # bottom to top
    scene = Scene(config, frames, visible, full, objects, "textured" if textured else "plain")
    for obj in objects:
        obj.events = _measure_events(obj, visible, full, order)
    _measure_relations(scene)
    return scene
