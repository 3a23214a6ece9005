"""Procedural referential-video world: scenes with exact masks and facts, written in the official data formats.

Public API: ``SceneConfig`` / ``simulate_scene`` (one scene), ``generate_dataset`` (a dataset folder),
``check_answer`` / ``score_answers`` / ``load_facts`` (exact answer scoring), ``write_preview`` (GIF + PNG).
"""

from sama.data.synthetic.facts import check_answer, load_facts, score_answers
from sama.data.synthetic.preview import write_preview
from sama.data.synthetic.scene import Scene, SceneConfig, simulate_scene
from sama.data.synthetic.writer import DatasetSummary, generate_dataset

__all__ = [
    "DatasetSummary",
    "Scene",
    "SceneConfig",
    "check_answer",
    "generate_dataset",
    "load_facts",
    "score_answers",
    "simulate_scene",
    "write_preview",
]
