"""Adapters from our config / checkpoint to transformers' own SigLIP, Gemma and pi0 models.
Only imported by test_vs_transformers.py, after torch and transformers were found."""

from __future__ import annotations

from typing import Dict

import torch

from pccscope_capture import naming
from pccscope_capture.config import GemmaConfig, Pi0Config, SiglipConfig


def siglip_config(s: SiglipConfig, attn: str):
    from transformers import SiglipVisionConfig

    # image_size fixes HF's position table: pos_grid·patch gives our table's row count.
    return SiglipVisionConfig(
        hidden_size=s.width, intermediate_size=s.mlp, num_hidden_layers=s.layers,
        num_attention_heads=s.heads, num_channels=3, image_size=s.pos_grid * s.patch,
        patch_size=s.patch, hidden_act="gelu_pytorch_tanh", layer_norm_eps=s.ln_eps,
        vision_use_head=False, attn_implementation=attn)


def gemma_kwargs(g: GemmaConfig) -> dict:
    return dict(vocab_size=g.vocab, hidden_size=g.width, intermediate_size=g.mlp,
                num_hidden_layers=g.layers, num_attention_heads=g.heads,
                num_key_value_heads=g.kv_heads, head_dim=g.head_dim,
                hidden_activation="gelu_pytorch_tanh", rms_norm_eps=g.rms_eps,
                rope_parameters={"rope_type": "default", "rope_theta": g.rope_theta})


def gemma_config(g: GemmaConfig, attn: str):
    from transformers import GemmaConfig as HFGemmaConfig

    c = HFGemmaConfig(**gemma_kwargs(g), use_bidirectional_attention=True,
                      attn_implementation=attn)
    # pi0's prefix is one bidirectional block; without this HF builds a causal mask.
    c.is_causal = False
    return c


def strip(tensors: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    p = prefix + "."
    return {k[len(p):]: v for k, v in tensors.items() if k.startswith(p)}


# ---- the whole pi0 ----------------------------------------------------------------------------

def image_token_id(cfg: Pi0Config) -> int:
    return cfg.vlm.vocab  # one past the table, like PaliGemma's 257152


def pi0_config(cfg: Pi0Config, attn: str):
    from transformers import PI0Config

    s, v = cfg.siglip, cfg.vlm
    vision = {"model_type": "siglip_vision_model", "hidden_size": s.width,
              "intermediate_size": s.mlp, "num_hidden_layers": s.layers,
              "num_attention_heads": s.heads, "patch_size": s.patch,
              "image_size": s.pos_grid * s.patch, "vision_use_head": False,
              "layer_norm_eps": s.ln_eps, "hidden_act": "gelu_pytorch_tanh"}
    pc = PI0Config(
        vlm_config={"model_type": "paligemma",
                    "text_config": {"model_type": "gemma", **gemma_kwargs(v)},
                    "vision_config": vision, "projection_dim": v.width,
                    "image_token_id": image_token_id(cfg)},
        dit_config={"model_type": "gemma", **gemma_kwargs(cfg.expert)},
        chunk_size=cfg.horizon, max_state_dim=cfg.state_dim, max_action_dim=cfg.action_dim,
        num_inference_steps=cfg.steps, min_period=cfg.time_min_period,
        max_period=cfg.time_max_period)
    pc._attn_implementation = attn
    return pc


_PI0_PREFIXES = (
    (naming.VISION + ".", "model.vlm.vision_tower."),
    (naming.PROJECTOR + ".", "model.vlm.multi_modal_projector."),
    (naming.LANGUAGE + ".", "model.vlm.language_model."),
    (naming.EXPERT + ".", "model.dit."),
)


def pi0_key(name: str) -> str:
    """Our (current LeRobot) checkpoint name -> transformers' PI0ForConditionalGeneration key."""
    if name == naming.TIED_EMBEDDING:
        return "model.vlm.language_model.embed_tokens.weight"
    if name == naming.EXPERT_LM_HEAD:
        return "model.dit.embed_tokens.weight"   # unused by pi0 on both sides
    for ours, theirs in _PI0_PREFIXES:
        if name.startswith(ours):
            return theirs + name[len(ours):]
    if name.startswith("action_out_proj."):
        return name
    return "embed_action_time." + name          # state_proj, action_in_proj, action_time_mlp_*


def pi0_state_dict(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {pi0_key(k): v for k, v in tensors.items()}


def pi0_inputs(cfg: Pi0Config, inp: Dict[str, torch.Tensor]) -> dict:
    """Our raw inputs in transformers' pi0 form: image placeholder ids before the text, a 2D
    pad mask over the whole prefix, pixel_values [B, cameras, 3, H, W]."""
    p = cfg.siglip.patches
    ids = torch.cat([torch.full((1, cfg.cameras * p), image_token_id(cfg), dtype=torch.long),
                     inp["tokens"]], dim=1)
    mask = torch.cat([inp["img_masks"].repeat_interleave(p, dim=1), inp["lang_masks"]], dim=1)
    return dict(state=inp["state"], input_ids=ids, pixel_values=inp["images"][None],
                noise=inp["noise"], attention_mask=mask.long(),
                pixel_attention_mask=inp["img_masks"])


def force_pos_interpolation(model) -> None:
    """transformers' PI0Model.embed_prefix calls get_image_features(pixel_values) without
    `interpolate_pos_encoding`; with a position table on another grid than the image (the
    tiny capture: 4×4 table, 5×5 patches) SigLIP would fail. Pass it on."""
    vt = model.model.vlm.vision_tower
    orig = vt.forward

    def forward(*args, **kwargs):
        kwargs["interpolate_pos_encoding"] = True
        return orig(*args, **kwargs)

    vt.forward = forward


def f64_time_embedding(model, cfg: Pi0Config) -> None:
    """Replace transformers' f32 sinusoidal time embedding by LeRobot's f64 one."""
    import math

    half = cfg.expert.width // 2

    def forward(time):
        fr = torch.linspace(0.0, 1.0, half, dtype=torch.float64)
        period = cfg.time_min_period * (cfg.time_max_period / cfg.time_min_period) ** fr
        arg = (1.0 / period * 2 * math.pi)[None, :] * time.to(torch.float64)[:, None]
        return torch.cat([arg.sin(), arg.cos()], dim=1).to(torch.float32)

    model.embed_action_time.sinusoid_embeds.forward = forward
