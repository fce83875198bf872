"""The tiny reference: activations stay alive through every layer, and the sampler reacts to
what it should and to nothing else (needs torch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _helpers import report  # noqa: E402
from pccscope_capture.checkpoint import load_checkpoint, make_checkpoint  # noqa: E402
from pccscope_capture.config import preset  # noqa: E402
from pccscope_capture.inputs import make_inputs  # noqa: E402
from pccscope_capture.model import configure_torch, sample_actions  # noqa: E402
from pccscope_capture.scope import Params, Recorder  # noqa: E402

TINY = preset("tiny")


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    configure_torch(1)
    path = make_checkpoint(TINY, 0, tmp_path_factory.mktemp("ref") / "tiny.safetensors")
    return Params(load_checkpoint(path, TINY).tensors)


def _inputs(seed=0):
    return {k: torch.from_numpy(v.copy()) for k, v in make_inputs(TINY, seed).items()}


@pytest.fixture(scope="module")
def recorded(params):
    rec = Recorder()
    actions = sample_actions(params, TINY, _inputs(), rec)
    return actions, {r.name: r for r in rec.ops}


def _std(rec, valid_rows=None) -> float:
    a = rec.data
    if valid_rows is not None:
        a = a[:, :valid_rows]
    return float(a.std())


@pytest.mark.parametrize("stack,layers,rows", [
    ("siglip", 27, None), ("vlm", 18, TINY.prefix_valid),
    ("denoise.0.expert", 18, None), ("denoise.9.expert", 18, None)])
def test_no_layer_output_collapses_or_explodes(recorded, stack, layers, rows):
    _, ops = recorded
    stds = [_std(ops[f"{stack}.layers.{i}.mlp_residual"], rows) for i in range(layers)]
    attn = [_std(ops[f"{stack}.layers.{i}.attn.sdpa"], rows) for i in range(layers)]
    report(f"{stack} residual std per layer", first=stds[0], last=stds[-1],
           min_attn=min(attn), max_attn=max(attn))
    assert all(0.3 < s < 20.0 for s in stds), stds
    assert all(0.1 < s < 10.0 for s in attn), attn
    ratios = np.array(stds[1:]) / np.array(stds[:-1])
    assert ratios.min() > 0.7 and ratios.max() < 1.6, ratios
    final = "siglip.post_ln" if stack == "siglip" else f"{stack}.norm"
    assert 0.5 < _std(ops[final], rows) < 2.0, final


def test_actions_are_alive(recorded):
    actions, ops = recorded
    assert tuple(actions.shape) == (1, 50, 32)
    v = [float(ops[f"denoise.{k}.action_proj.linear"].data.std()) for k in range(10)]
    assert all(0.2 < s < 5 for s in v), v
    assert np.isfinite(actions.numpy()).all()


def test_actions_depend_on_images_tokens_state_and_noise(params, recorded):
    base = recorded[0]
    for name, change in (("images", lambda x: x.flip(-1)),
                         ("tokens", lambda x: torch.where(torch.arange(8) == 3, x + 1, x)),
                         ("state", lambda x: x + 0.5), ("noise", lambda x: -x)):
        inp = _inputs()
        inp[name] = change(inp[name])
        diff = float((sample_actions(params, TINY, inp) - base).abs().max())
        assert diff > 1e-3, f"actions ignore {name} (max change {diff})"


def test_padding_and_masked_cameras_do_not_leak(params, recorded):
    """Padded language tokens are masked out exactly: changing them leaves the actions
    bit-identical. A camera whose mask is false contributes nothing either."""
    inp = _inputs()
    inp["tokens"][0, 6:] = torch.tensor([17, 99])
    assert torch.equal(sample_actions(params, TINY, inp), recorded[0])

    masked = _inputs()
    masked["img_masks"][0, 1] = False
    a = sample_actions(params, TINY, masked)
    masked["images"][1] = -masked["images"][1]
    assert torch.equal(sample_actions(params, TINY, masked), a)


def test_denoise_times_are_f32_of_the_f64_grid(recorded):
    _, ops = recorded
    assert [ops[f"denoise.{k}.time"].data[0] for k in range(10)] == [
        np.float32(1.0 + k * -0.1) for k in range(10)]
