"""Our reference against code nobody here wrote: transformers' SiglipVisionModel, GemmaModel
and PI0ForConditionalGeneration, built at the tiny dims with our (bf16-valued) weights, fp32.

Run with `-s` to see the measured numbers. Gate: PCC >= 0.99999 and max abs <= 1e-4.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import _hf  # noqa: E402
from _helpers import max_abs, pcc, report  # noqa: E402
from pccscope_capture import naming  # noqa: E402
from pccscope_capture.checkpoint import load_checkpoint, make_checkpoint  # noqa: E402
from pccscope_capture.config import preset  # noqa: E402
from pccscope_capture.inputs import make_inputs  # noqa: E402
from pccscope_capture.model import configure_torch, sample_actions  # noqa: E402
from pccscope_capture.scope import Params, Recorder  # noqa: E402

TINY = preset("tiny")
PCC_MIN, ABS_MAX = 0.99999, 1e-4
ATTN = ["eager", "sdpa"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    configure_torch(1)
    path = make_checkpoint(TINY, 0, tmp_path_factory.mktemp("hf") / "tiny.safetensors")
    return load_checkpoint(path, TINY).tensors


@pytest.fixture(scope="module")
def inputs():
    return {k: torch.from_numpy(v.copy()) for k, v in make_inputs(TINY, 0).items()}


@pytest.fixture(scope="module")
def ours(weights, inputs):
    rec = Recorder()
    actions = sample_actions(Params(weights), TINY, inputs, rec)
    return actions.numpy(), {r.name: r.data for r in rec.ops}


def check(label, got, want, **extra):
    p, m = pcc(got, want), max_abs(got, want)
    report(label, pcc=p, max_abs=m, **extra)
    assert p >= PCC_MIN and m <= ABS_MAX, f"{label}: pcc {p}, max abs {m}"
    return p, m


@pytest.mark.parametrize("attn", ATTN)
def test_siglip_vs_transformers(weights, inputs, ours, attn):
    from transformers import SiglipVisionModel

    _, ops = ours
    m = SiglipVisionModel(_hf.siglip_config(TINY.siglip, attn)).eval()
    m.load_state_dict(_hf.strip(weights, naming.VISION), strict=True)
    with torch.no_grad():
        out = m(pixel_values=inputs["images"], interpolate_pos_encoding=True,
                output_hidden_states=True)
    worst = max(max_abs(out.hidden_states[i + 1].numpy(),
                        ops[f"siglip.layers.{i}.mlp_residual"]) for i in range(TINY.siglip.layers))
    check(f"(a) SigLIP [{attn}] siglip.post_ln", out.last_hidden_state.numpy(),
          ops["siglip.post_ln"], worst_layer_max_abs=worst)
    assert worst <= ABS_MAX * 10


@pytest.mark.parametrize("attn", ATTN)
def test_gemma_vlm_vs_transformers(weights, inputs, ours, attn):
    from transformers import GemmaModel

    _, ops = ours
    m = GemmaModel(_hf.gemma_config(TINY.vlm, attn)).eval()
    sd = _hf.strip(weights, naming.LANGUAGE)
    sd["embed_tokens.weight"] = weights[naming.TIED_EMBEDDING]
    m.load_state_dict(sd, strict=True)

    # HF scales token embeddings inside embed_tokens (f32 √64 = 8): equal to lang_embed.scale.
    with torch.no_grad():
        emb = m.embed_tokens(inputs["tokens"]).numpy()
    assert max_abs(emb, ops["lang_embed.scale"]) == 0.0

    # inputs_embeds bypasses that scale: the prefix goes in as is, like pi0's VLM stream.
    pad = torch.from_numpy(ops["prefix.pad_masks"]).long()
    with torch.no_grad():
        out = m(inputs_embeds=torch.from_numpy(ops["prefix.embs"]), attention_mask=pad,
                position_ids=torch.cumsum(pad, 1) - 1, use_cache=True,
                output_hidden_states=True)
    valid = pad[0].bool().numpy()     # padded query rows are garbage on both sides
    worst_layer = max(max_abs(out.hidden_states[i + 1][0].numpy()[valid],
                              ops[f"vlm.layers.{i}.mlp_residual"][0][valid])
                      for i in range(TINY.vlm.layers - 1))
    cache = out["cache"] if "cache" in out else out.past_key_values
    worst_kv = 0.0
    for i in range(TINY.vlm.layers):
        k = cache.layers[i].keys[0, 0].numpy()[valid]
        v = cache.layers[i].values[0, 0].numpy()[valid]
        worst_kv = max(worst_kv, max_abs(k, ops[f"vlm.layers.{i}.attn.k_rope"][0][valid]),
                       max_abs(v, ops[f"vlm.layers.{i}.attn.v"][0][valid]))
    check(f"(b) Gemma VLM stack [{attn}] vlm.norm (valid rows)",
          out.last_hidden_state[0].numpy()[valid], ops["vlm.norm"][0][valid],
          worst_layer_max_abs=worst_layer, worst_kv_max_abs=worst_kv)
    assert worst_layer <= ABS_MAX and worst_kv <= ABS_MAX


def _hf_pi0(weights, attn, f64_time=False):
    pytest.importorskip("transformers.models.pi0")
    from transformers import PI0ForConditionalGeneration

    m = PI0ForConditionalGeneration(_hf.pi0_config(TINY, attn)).eval()
    missing, unexpected = m.load_state_dict(_hf.pi0_state_dict(weights), strict=False)
    # Only the expert's embed_tokens (the unused expert lm_head) stays at HF's init.
    assert missing == ["model.dit.embed_tokens.weight"] and unexpected == []
    _hf.force_pos_interpolation(m)
    if f64_time:
        _hf.f64_time_embedding(m, TINY)
    velocities = []
    orig = m.forward

    def forward(*a, **kw):
        out = orig(*a, **kw)
        velocities.append(out.logits.detach().numpy().copy())
        return out

    m.forward = forward
    return m, velocities


@pytest.mark.parametrize("attn", ATTN)
def test_whole_sampler_vs_transformers_pi0(weights, inputs, ours, attn):
    actions, ops = ours
    m, vel = _hf_pi0(weights, attn)
    with torch.no_grad():
        hf = m.sample_actions(**_hf.pi0_inputs(TINY, inputs)).numpy()
    assert hf.shape == (1, 50, 32) and len(vel) == TINY.steps
    worst_v = max(max_abs(vel[k], ops[f"denoise.{k}.action_proj.linear"])
                  for k in range(TINY.steps))
    check(f"(c) pi0 sampler [{attn}] actions (transformers as shipped: f32 time embedding)",
          hf, actions, worst_velocity_max_abs=worst_v)


def test_transformers_pi0_time_embedding_is_the_only_difference(weights, inputs, ours):
    """transformers computes the sin/cos time embedding in f32 (LeRobot, and this reference,
    in f64). With LeRobot's f64 embedding patched in the gap drops to rounding level."""
    actions, ops = ours
    m, _ = _hf_pi0(weights, "eager")
    te = m.embed_action_time.sinusoid_embeds
    worst_te = max(max_abs(te(torch.from_numpy(ops[f"denoise.{k}.time"])).numpy(),
                           ops[f"denoise.{k}.suffix.time_embed"]) for k in range(TINY.steps))
    m, _ = _hf_pi0(weights, "eager", f64_time=True)
    with torch.no_grad():
        hf = m.sample_actions(**_hf.pi0_inputs(TINY, inputs)).numpy()
    p, mx = check("(c') pi0 sampler [eager] actions, f64 time embedding patched into "
                  "transformers", hf, actions, f32_time_embed_max_abs=worst_te)
    assert mx <= 1e-5 and worst_te > mx
