"""Checkpoint naming of pi0 (PI0_SPEC §2): the current LeRobot layout, the legacy variants.

The weight-path segments defined here are the ones the model's `Scope`s are built from, so the
checkpoint schema and the names the reference reads come from one place. No torch here.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

from .config import Pi0Config

PALIGEMMA = "paligemma_with_expert.paligemma"
VISION = PALIGEMMA + ".model.vision_tower.vision_model"
PROJECTOR = PALIGEMMA + ".model.multi_modal_projector"
LANGUAGE = PALIGEMMA + ".model.language_model"
TIED_EMBEDDING = PALIGEMMA + ".lm_head.weight"
EXPERT = "paligemma_with_expert.gemma_expert.model"
EXPERT_LM_HEAD = "paligemma_with_expert.gemma_expert.lm_head.weight"
# A live state_dict also holds the tied table under this name; accepted as an alias.
TIED_EMBEDDING_ALIAS = LANGUAGE + ".embed_tokens.weight"

HEADS = ("state_proj", "action_in_proj", "action_out_proj", "action_time_mlp_in",
         "action_time_mlp_out")

# Legacy (transformers <= 4.51 tree) -> current prefixes, applied after dropping a leading
# "model." (PI0_SPEC §2.4, LeRobot commit 71eff183f).
_LEGACY_PREFIXES: Tuple[Tuple[str, str], ...] = (
    (PALIGEMMA + ".language_model.lm_head.", PALIGEMMA + ".lm_head."),
    (PALIGEMMA + ".language_model.model.", PALIGEMMA + ".model.language_model."),
    (PALIGEMMA + ".vision_tower.", PALIGEMMA + ".model.vision_tower."),
    (PALIGEMMA + ".multi_modal_projector.", PALIGEMMA + ".model.multi_modal_projector."),
)

Shape = Tuple[int, ...]


def gemma_layer_tensors(width: int, heads: int, kv_heads: int, head_dim: int,
                        mlp: int) -> List[Tuple[str, Shape]]:
    """The 9 tensors of one Gemma decoder layer, relative to `...layers.{i}.`."""
    d, q, kv = width, heads * head_dim, kv_heads * head_dim
    return [
        ("input_layernorm.weight", (d,)),
        ("self_attn.q_proj.weight", (q, d)),
        ("self_attn.k_proj.weight", (kv, d)),
        ("self_attn.v_proj.weight", (kv, d)),
        ("self_attn.o_proj.weight", (d, q)),
        ("post_attention_layernorm.weight", (d,)),
        ("mlp.gate_proj.weight", (mlp, d)),
        ("mlp.up_proj.weight", (mlp, d)),
        ("mlp.down_proj.weight", (d, mlp)),
    ]


def siglip_layer_tensors(width: int, mlp: int) -> List[Tuple[str, Shape]]:
    """The 16 tensors of one SigLIP encoder layer, relative to `...encoder.layers.{i}.`."""
    d = width
    out: List[Tuple[str, Shape]] = [("layer_norm1.weight", (d,)), ("layer_norm1.bias", (d,))]
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        out += [(f"self_attn.{p}.weight", (d, d)), (f"self_attn.{p}.bias", (d,))]
    out += [("layer_norm2.weight", (d,)), ("layer_norm2.bias", (d,)),
            ("mlp.fc1.weight", (mlp, d)), ("mlp.fc1.bias", (mlp,)),
            ("mlp.fc2.weight", (d, mlp)), ("mlp.fc2.bias", (d,))]
    return out


def expected_tensors(cfg: Pi0Config) -> Dict[str, Shape]:
    """Every tensor of a pi0 checkpoint in the current layout (777 for 27/18/18 layers)."""
    s, v, e = cfg.siglip, cfg.vlm, cfg.expert
    out: Dict[str, Shape] = {}
    out[f"{VISION}.embeddings.patch_embedding.weight"] = (s.width, 3, s.patch, s.patch)
    out[f"{VISION}.embeddings.patch_embedding.bias"] = (s.width,)
    out[f"{VISION}.embeddings.position_embedding.weight"] = (s.pos_grid * s.pos_grid, s.width)
    for i in range(s.layers):
        for rel, shape in siglip_layer_tensors(s.width, s.mlp):
            out[f"{VISION}.encoder.layers.{i}.{rel}"] = shape
    out[f"{VISION}.post_layernorm.weight"] = (s.width,)
    out[f"{VISION}.post_layernorm.bias"] = (s.width,)
    out[f"{PROJECTOR}.linear.weight"] = (v.width, s.width)
    out[f"{PROJECTOR}.linear.bias"] = (v.width,)
    out[TIED_EMBEDDING] = (v.vocab, v.width)
    for i in range(v.layers):
        for rel, shape in gemma_layer_tensors(v.width, v.heads, v.kv_heads, v.head_dim, v.mlp):
            out[f"{LANGUAGE}.layers.{i}.{rel}"] = shape
    out[f"{LANGUAGE}.norm.weight"] = (v.width,)
    for i in range(e.layers):
        for rel, shape in gemma_layer_tensors(e.width, e.heads, e.kv_heads, e.head_dim, e.mlp):
            out[f"{EXPERT}.layers.{i}.{rel}"] = shape
    out[f"{EXPERT}.norm.weight"] = (e.width,)
    out[EXPERT_LM_HEAD] = (e.vocab, e.width)
    de = e.width
    out["state_proj.weight"] = (de, cfg.state_dim)
    out["state_proj.bias"] = (de,)
    out["action_in_proj.weight"] = (de, cfg.action_dim)
    out["action_in_proj.bias"] = (de,)
    out["action_out_proj.weight"] = (cfg.action_dim, de)
    out["action_out_proj.bias"] = (cfg.action_dim,)
    out["action_time_mlp_in.weight"] = (de, 2 * de)
    out["action_time_mlp_in.bias"] = (de,)
    out["action_time_mlp_out.weight"] = (de, de)
    out["action_time_mlp_out.bias"] = (de,)
    return out


# Tensors a loader may do without: pi0 never reads the expert's lm_head.
OPTIONAL_TENSORS = frozenset({EXPERT_LM_HEAD})


def to_current(name: str) -> Tuple[str, str]:
    """Map one stored key to the current layout. Returns (current name, naming tag).

    Tags: "current"; "current-prefixed" (LeRobot in-memory names, leading `model.`);
    "legacy" (transformers <= 4.51 tree, PI0_SPEC §2.4).
    """
    tag = "current"
    n = name
    if n.startswith("model."):
        n = n[len("model."):]
        tag = "current-prefixed"
    for old, new in _LEGACY_PREFIXES:
        if n.startswith(old):
            return new + n[len(old):], "legacy"
    return n, tag


def naming_of(tags: List[str]) -> str:
    """One naming label for a whole file (the most specific tag seen)."""
    if "legacy" in tags:
        return "legacy"
    if "current-prefixed" in tags:
        return "current-prefixed"
    return "current"


_LAYER_RE = re.compile(r"\.layers\.(\d+)\.")


def count_layers(names, prefix: str) -> int:
    """Number of layers `prefix.layers.{i}.` present (max index + 1), 0 if none."""
    best = -1
    for n in names:
        if n.startswith(prefix + ".layers."):
            m = _LAYER_RE.match(n[len(prefix):])
            if m:
                best = max(best, int(m.group(1)))
    return best + 1
