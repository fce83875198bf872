"""Run the reference once with recording and write a capture (goldens/README.md)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from . import __version__, naming
from .checkpoint import Loaded, load_checkpoint, make_checkpoint
from .config import Pi0Config
from .inputs import make_inputs
from .model import as_acts, configure_torch, denoise_step, run_prefix, sample
from .scope import Params, Recorder, Scope
from .writer import CaptureWriter, ModuleRecord, OpRecord

CHECKPOINT_FILE = "checkpoint.safetensors"

# Names, relative to `denoise.{k}.`, stored in full for every step (module boundaries).
STEP_BOUNDARIES = frozenset({
    "time", "suffix.embs", "attn_masks.suffix_rows", "attn_masks.suffix_positions",
    "expert.norm", "action_extract.slice", "action_proj.linear", "euler.step", "euler",
})

PREFIX_MODULES = ("siglip", "projector", "lang_embed", "prefix", "vlm")
STEP_MODULES = ("suffix", "attn_masks", "expert", "action_extract", "action_proj")


def keep_policy(cfg: Pi0Config, stats_only_above: Optional[int]) -> Callable[[str, int], bool]:
    """Full tensors for modules 1–10 and denoise steps 0 and last; for the other steps only
    at module boundaries. `stats_only_above` caps the element count of any stored tensor."""
    full_steps = {0, cfg.steps - 1}

    def keep(name: str, numel: int) -> bool:
        if stats_only_above is not None and numel > stats_only_above:
            return False
        if name.startswith("denoise."):
            _, k, rest = name.split(".", 2)
            if int(k) not in full_steps:
                return rest in STEP_BOUNDARIES
        return True

    return keep


def module_io(cfg: Pi0Config) -> Dict[str, tuple]:
    """(inputs, outputs) of each of the 11 modules."""
    cache = [f"vlm.layers.{i}.attn.{n}" for i in range(cfg.vlm.layers) for n in ("k_rope", "v")]
    return {
        "siglip": (["images"], ["siglip.post_ln"]),
        "projector": (["siglip.post_ln"], ["projector.linear"]),
        "lang_embed": (["tokens"], ["lang_embed.scale"]),
        "prefix": (["projector.linear", "lang_embed.scale", "img_masks", "lang_masks"],
                   ["prefix.embs", "prefix.pad_masks", "prefix.att_masks"]),
        "vlm": (["prefix.embs", "prefix.pad_masks", "prefix.att_masks"], ["vlm.norm"] + cache),
        "suffix": (["state", "noise", "time"],
                   ["suffix.embs", "suffix.pad_masks", "suffix.att_masks"]),
        "attn_masks": (["prefix.pad_masks", "prefix.att_masks", "suffix.pad_masks",
                        "suffix.att_masks"],
                       ["attn_masks.suffix_rows", "attn_masks.suffix_positions"]),
        "expert": (["suffix.embs", "attn_masks.suffix_rows", "attn_masks.suffix_positions"]
                   + cache, ["expert.norm"]),
        "action_extract": (["expert.norm"], ["action_extract.slice"]),
        "action_proj": (["action_extract.slice"], ["action_proj.linear"]),
        "pi0": (["images", "img_masks", "tokens", "lang_masks", "state", "noise"],
                [f"denoise.{cfg.steps - 1}.euler"]),
    }


@dataclass
class CaptureResult:
    manifest: Path
    actions: np.ndarray
    config: Pi0Config


def _select(ops: List[OpRecord], module: str) -> List[OpRecord]:
    return [r for r in ops if r.name.startswith(module + ".")]


def run_capture(base: Pi0Config, out: os.PathLike, *, preset: str, seed: int = 0,
                checkpoint: Optional[os.PathLike] = None,
                stats_only_above: Optional[int] = None, threads: int = 1) -> CaptureResult:
    """Write a capture of `base` (config inferred from the checkpoint's shapes) into `out`.

    Without `checkpoint`, a seeded random-init checkpoint is written to
    `out/checkpoint.safetensors` first and loaded back through the normal loader.
    """
    configure_torch(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint is None:
        ckpt_path = make_checkpoint(base, seed, out / CHECKPOINT_FILE, preset=preset)
    else:
        ckpt_path = Path(checkpoint)
    loaded = load_checkpoint(ckpt_path, base)
    cfg = loaded.config

    inputs = make_inputs(cfg, seed)
    acts = as_acts({k: torch.from_numpy(v.copy()) for k, v in inputs.items()})
    params = Params(loaded.tensors)
    keep = keep_policy(cfg, stats_only_above)

    rec_run = Recorder(keep)      # modules 1–5 and the sampler (module 11)
    rec_step = Recorder(keep)     # modules 6–10: the standalone denoise step 0
    with torch.no_grad():
        root = Scope(rec_run, params)
        run = run_prefix(root, cfg, acts)
        denoise_step(Scope(rec_step, params), cfg, run.pre, run.kv, acts["state"],
                     acts["noise"], acts["time"])
        actions = sample(root, cfg, run, acts)
    _check_params_used(params, loaded)

    io = module_io(cfg)
    producer = {"name": "pccscope-capture", "kind": "torch-reference", "version": __version__,
                "torch": torch.__version__, "seed": seed}
    w = CaptureWriter(out, producer=producer, model="pi0", preset=preset,
                      config=cfg.to_dict(), checkpoint=_checkpoint_ref(loaded, ckpt_path, out))
    for name, a in inputs.items():
        w.add_input(name, a)
    for mid in PREFIX_MODULES:
        w.add_module(ModuleRecord(mid, *io[mid], ops=_select(rec_run.ops, mid)))
    for mid in STEP_MODULES:
        w.add_module(ModuleRecord(mid, *io[mid], ops=_select(rec_step.ops, mid)))
    w.add_module(ModuleRecord("pi0", *io["pi0"], ops=list(rec_run.ops)))
    _check_step0(rec_run, rec_step)
    manifest = w.write()
    return CaptureResult(manifest, actions.t.numpy().copy(), cfg)


def _check_params_used(params: Params, loaded: Loaded) -> None:
    unused = set(params.names()) - params.used - naming.OPTIONAL_TENSORS
    if unused:
        raise RuntimeError("reference bug: checkpoint tensors never read: "
                           + ", ".join(sorted(unused)))


def _check_step0(rec_run: Recorder, rec_step: Recorder) -> None:
    """The standalone modules 6–10 must equal `denoise.0.*` bit for bit."""
    run = rec_run.by_name()
    for r in rec_step.ops:
        twin = run.get("denoise.0." + r.name)
        if twin is None or twin.ensure_stats()["hash"] != r.ensure_stats()["hash"]:
            raise RuntimeError(f"reference bug: {r.name} differs from denoise.0.{r.name}")


def _checkpoint_ref(loaded: Loaded, path: Path, out: Path) -> dict:
    ref = {"file": None, "naming": loaded.naming, "dtype": loaded.dtype,
           "tensors": loaded.count}
    try:
        rel = Path(os.path.relpath(path.resolve(), out.resolve()))
    except ValueError:
        rel = None
    if rel is not None and ".." not in rel.parts and len(loaded.files) == 1:
        ref["file"] = rel.as_posix()
    else:
        ref["source"] = path.name
    return ref


def with_inputs(cfg: Pi0Config, **changes) -> Pi0Config:
    """Override input-side sizes (cameras, lang_tokens, lang_valid, image size)."""
    image_size = changes.pop("image_size", None)
    if image_size is not None:
        cfg = dataclasses.replace(cfg, siglip=dataclasses.replace(cfg.siglip,
                                                                  image_size=image_size))
    changes = {k: v for k, v in changes.items() if v is not None}
    out = dataclasses.replace(cfg, **changes)
    out.validate()
    return out
