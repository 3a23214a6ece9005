"""Per-submodule random streams (sama.model.init.module_rng): one submodule's shape leaves the others' init alone."""

from __future__ import annotations

import torch

from sama.model.factory import create_model
from sama.model.init import module_rng, module_seed


def test_module_rng_is_a_function_of_the_seed_and_name_and_restores_the_stream() -> None:
    torch.manual_seed(3)
    with module_rng("grounding"):
        first = torch.rand(4)
    after = torch.rand(4)
    torch.manual_seed(3)
    expected_after = torch.rand(4)  # the caller's stream continues as if the block had drawn nothing
    torch.manual_seed(3)
    torch.rand(100)  # another submodule drew before: no effect on this one
    with module_rng("grounding"):
        again = torch.rand(4)
    with module_rng("aggregator"):
        other = torch.rand(4)
    assert torch.equal(first, again)
    assert torch.equal(after, expected_after)
    assert not torch.equal(first, other)
    assert module_seed(3, "grounding") != module_seed(4, "grounding")


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_a_wider_vision_tower_leaves_the_other_submodules_init_unchanged() -> None:
    """vision.motion_input widens the patch embedding; SAM2, the aggregator, the prompt encoder and LoRA keep their
    init (before per-module seeding the shifted random stream gave SAM2 another init and confounded the A/B test)."""
    torch.manual_seed(0)
    rgb = create_model("sama-tiny", lora={"enabled": True})
    torch.manual_seed(0)
    motion = create_model("sama-tiny", lora={"enabled": True}, vision={"motion_input": True})
    for name in ("grounding", "aggregator", "prompt_encoder"):
        a, b = _state(getattr(rgb, name)), _state(getattr(motion, name))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    lora_a = {k: v for k, v in rgb.named_parameters() if "lora_" in k}
    lora_b = {k: v for k, v in motion.named_parameters() if "lora_" in k}
    assert lora_a and lora_a.keys() == lora_b.keys()
    assert all(torch.equal(lora_a[k], lora_b[k]) for k in lora_a)
    patch_a = [p for n, p in rgb.backbone.named_parameters() if "patch_embeddings" in n and p.ndim == 4]
    patch_b = [p for n, p in motion.backbone.named_parameters() if "patch_embeddings" in n and p.ndim == 4]
    assert patch_a[0].shape[1] == 3 and patch_b[0].shape[1] == 6
    torch.manual_seed(1)
    reseeded = create_model("sama-tiny")
    assert not torch.equal(reseeded.grounding.seg_proj[0].weight, rgb.grounding.seg_proj[0].weight)
