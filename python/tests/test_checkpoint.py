"""Checkpoint creation and loading (needs torch)."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file, save_file  # noqa: E402

from pccscope_capture import naming  # noqa: E402
from pccscope_capture.checkpoint import (  # noqa: E402
    CheckpointError, PickleRefused, load_checkpoint, make_checkpoint)
from pccscope_capture.config import preset  # noqa: E402

TINY = preset("tiny")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return make_checkpoint(TINY, 0, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", "tiny")


@pytest.fixture(scope="module")
def tiny_tensors(tiny_ckpt):
    return load_file(str(tiny_ckpt))


def test_made_checkpoint_is_777_bf16_tensors_with_the_real_names(tiny_tensors):
    assert len(tiny_tensors) == 777
    assert list(sorted(tiny_tensors)) == sorted(naming.expected_tensors(TINY))
    assert {t.dtype for t in tiny_tensors.values()} == {torch.bfloat16}
    assert naming.TIED_EMBEDDING in tiny_tensors
    assert naming.TIED_EMBEDDING_ALIAS not in tiny_tensors
    assert naming.EXPERT_LM_HEAD in tiny_tensors
    for name, shape in naming.expected_tensors(TINY).items():
        assert tuple(tiny_tensors[name].shape) == shape, name


def test_pi0_base_layout_counts_777_and_the_spec_total():
    base = naming.expected_tensors(preset("pi0_base"))
    assert len(base) == 777
    total = sum(int(torch.tensor(s).prod()) for s in base.values())
    assert total == 3_501_372_176       # PI0_SPEC §2.3
    assert base[naming.TIED_EMBEDDING] == (257152, 2048)
    assert base[naming.EXPERT_LM_HEAD] == (257152, 1024)


def test_random_init_is_seeded(tmp_path, tiny_tensors):
    again = load_file(str(make_checkpoint(TINY, 0, tmp_path / "a.safetensors")))
    other = load_file(str(make_checkpoint(TINY, 1, tmp_path / "b.safetensors")))
    name = f"{naming.LANGUAGE}.layers.3.mlp.up_proj.weight"
    assert torch.equal(again[name], tiny_tensors[name])
    assert not torch.equal(other[name], tiny_tensors[name])


def test_loads_exact_upcast_and_reports_naming(tiny_ckpt, tiny_tensors):
    ld = load_checkpoint(tiny_ckpt, TINY)
    assert (ld.naming, ld.dtype, ld.count) == ("current", "BF16", 777)
    assert ld.config == TINY
    assert naming.EXPERT_LM_HEAD not in ld.tensors      # validated, never read, not loaded
    for name, t in tiny_tensors.items():
        if name == naming.EXPERT_LM_HEAD:
            continue
        assert ld.tensors[name].dtype == torch.float32
        assert torch.equal(ld.tensors[name].to(torch.bfloat16), t)


def _legacy_name(name: str) -> str:
    for old, new in (
        (naming.PALIGEMMA + ".lm_head.", naming.PALIGEMMA + ".language_model.lm_head."),
        (naming.PALIGEMMA + ".model.language_model.", naming.PALIGEMMA + ".language_model.model."),
        (naming.PALIGEMMA + ".model.vision_tower.", naming.PALIGEMMA + ".vision_tower."),
        (naming.PALIGEMMA + ".model.multi_modal_projector.",
         naming.PALIGEMMA + ".multi_modal_projector."),
    ):
        if name.startswith(old):
            return "model." + new + name[len(old):]
    return "model." + name


def test_legacy_and_prefixed_naming_load_identically(tmp_path, tiny_ckpt, tiny_tensors):
    ref = load_checkpoint(tiny_ckpt, TINY)
    legacy = {_legacy_name(k): v for k, v in tiny_tensors.items()}
    assert f"model.{naming.PALIGEMMA}.language_model.model.layers.0.mlp.up_proj.weight" in legacy
    save_file(legacy, str(tmp_path / "legacy.safetensors"))
    prefixed = {"model." + k: v for k, v in tiny_tensors.items()}
    save_file(prefixed, str(tmp_path / "prefixed.safetensors"))
    for f, tag in (("legacy.safetensors", "legacy"), ("prefixed.safetensors", "current-prefixed")):
        ld = load_checkpoint(tmp_path / f, TINY)
        assert ld.naming == tag and ld.config == TINY and ld.count == 777
        assert ld.tensors.keys() == ref.tensors.keys()
        assert all(torch.equal(ld.tensors[k], ref.tensors[k]) for k in ref.tensors)


def test_state_dict_style_tied_pair_and_missing_expert_head(tmp_path, tiny_tensors):
    t = dict(tiny_tensors)
    t[naming.TIED_EMBEDDING_ALIAS] = t.pop(naming.TIED_EMBEDDING)
    del t[naming.EXPERT_LM_HEAD]
    save_file(t, str(tmp_path / "sd.safetensors"))
    ld = load_checkpoint(tmp_path / "sd.safetensors", TINY)
    assert torch.equal(ld.tensors[naming.TIED_EMBEDDING],
                       tiny_tensors[naming.TIED_EMBEDDING].float())
    assert ld.count == 776


def test_dims_are_inferred_from_shapes(tmp_path):
    other = dataclasses.replace(
        TINY,
        siglip=dataclasses.replace(TINY.siglip, width=48, head_dim=24, layers=3, mlp=96,
                                   pos_grid=5),
        vlm=dataclasses.replace(TINY.vlm, width=40, layers=2, mlp=80, head_dim=8, vocab=300),
        expert=dataclasses.replace(TINY.expert, width=24, layers=2, mlp=56, head_dim=8,
                                   vocab=300))
    path = make_checkpoint(other, 0, tmp_path / "other.safetensors")
    ld = load_checkpoint(path, TINY)
    assert ld.config == other
    assert ld.count == 3 + 3 * 16 + 2 + 2 + (1 + 2 * 9 + 1) + (2 * 9 + 1 + 1) + 10


def test_one_error_lists_every_bad_key(tmp_path, tiny_tensors):
    t = dict(tiny_tensors)
    gone = [f"{naming.VISION}.encoder.layers.5.mlp.fc2.bias",
            f"{naming.EXPERT}.layers.17.self_attn.o_proj.weight", "action_out_proj.bias"]
    for g in gone:
        del t[g]
    t["paligemma_with_expert.extra.weight"] = torch.zeros(3)
    t["not_a_pi0_tensor"] = torch.zeros(1)
    bad = f"{naming.LANGUAGE}.layers.2.mlp.down_proj.weight"
    t[bad] = torch.zeros(64, 100, dtype=torch.bfloat16)
    save_file(t, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(tmp_path / "bad.safetensors", TINY)
    msg = str(ei.value)
    print("\n" + msg)
    assert "bad.safetensors" in msg and "6 problem(s)" in msg
    for g in gone:
        assert f"missing: {g}" in msg
    assert "unexpected: paligemma_with_expert.extra.weight" in msg
    assert "unexpected: not_a_pi0_tensor" in msg
    assert f"misshapen: {bad}: expected [64, 128], got [64, 100]" in msg


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".pth", ".ckpt"])
def test_pickle_checkpoints_are_refused(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.save({"state_proj.weight": torch.zeros(2)}, str(path))
    with pytest.raises(PickleRefused, match="can run arbitrary code"):
        load_checkpoint(path, TINY)


def test_pickle_content_is_refused_whatever_the_name(tmp_path):
    zipped = tmp_path / "zip.safetensors"
    torch.save({"a": torch.zeros(1)}, str(zipped))
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    for p in (zipped, raw):
        with pytest.raises(PickleRefused, match=str(p.name)):
            load_checkpoint(p, TINY)
