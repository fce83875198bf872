"""pi0 configuration: the `config` object of a capture manifest, and the named presets.

No torch here: the manifest checks and the capture writer use this module too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict

# LeRobot's OPENPI_ATTENTION_MASK_VALUE (JAX big_neg); used as an f32.
MASK_VALUE = -2.3819763e38


@dataclass(frozen=True)
class SiglipConfig:
    width: int
    layers: int
    heads: int
    head_dim: int
    mlp: int
    patch: int
    image_size: int
    pos_grid: int
    ln_eps: float = 1e-6

    @property
    def grid(self) -> int:
        """Patches per image side (valid convolution: the remainder pixels are ignored)."""
        return self.image_size // self.patch

    @property
    def patches(self) -> int:
        return self.grid * self.grid


@dataclass(frozen=True)
class GemmaConfig:
    width: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    mlp: int
    vocab: int
    rms_eps: float = 1e-6
    rope_theta: float = 10000.0


@dataclass(frozen=True)
class Pi0Config:
    siglip: SiglipConfig
    vlm: GemmaConfig
    expert: GemmaConfig
    cameras: int
    lang_tokens: int
    lang_valid: int
    state_dim: int = 32
    action_dim: int = 32
    horizon: int = 50
    steps: int = 10
    time_min_period: float = 0.004
    time_max_period: float = 4.0
    mask_value: float = MASK_VALUE

    # Derived sizes (goldens/README.md "Config").
    @property
    def prefix_len(self) -> int:
        return self.cameras * self.siglip.patches + self.lang_tokens

    @property
    def prefix_valid(self) -> int:
        """Valid prefix tokens when every camera is present (Nv)."""
        return self.cameras * self.siglip.patches + self.lang_valid

    @property
    def suffix_len(self) -> int:
        return self.horizon + 1

    def to_dict(self) -> Dict[str, Any]:
        """The manifest `config` object, keys in the documented order."""
        return {
            "siglip": dataclasses.asdict(self.siglip),
            "vlm": dataclasses.asdict(self.vlm),
            "expert": dataclasses.asdict(self.expert),
            "cameras": self.cameras,
            "lang_tokens": self.lang_tokens,
            "lang_valid": self.lang_valid,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "horizon": self.horizon,
            "steps": self.steps,
            "time_min_period": self.time_min_period,
            "time_max_period": self.time_max_period,
            "mask_value": self.mask_value,
        }

    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "Pi0Config":
        rest = {k: v for k, v in d.items() if k not in ("siglip", "vlm", "expert")}
        return Pi0Config(
            siglip=SiglipConfig(**d["siglip"]),
            vlm=GemmaConfig(**d["vlm"]),
            expert=GemmaConfig(**d["expert"]),
            **rest,
        )

    def validate(self) -> None:
        """Raise ValueError naming every inconsistency at once."""
        errs = []
        s = self.siglip
        if s.heads * s.head_dim != s.width:
            errs.append(f"siglip heads·head_dim = {s.heads}·{s.head_dim} != width {s.width}")
        if s.grid < 1:
            errs.append(f"siglip image_size {s.image_size} is smaller than the patch {s.patch}")
        for tag, g in (("vlm", self.vlm), ("expert", self.expert)):
            if g.heads % g.kv_heads != 0:
                errs.append(f"{tag} heads {g.heads} is not a multiple of kv_heads {g.kv_heads}")
            if g.head_dim % 2 != 0:
                errs.append(f"{tag} head_dim {g.head_dim} is odd (half-split RoPE needs it even)")
        if self.vlm.layers != self.expert.layers:
            errs.append(f"vlm layers {self.vlm.layers} != expert layers {self.expert.layers}")
        if (self.vlm.heads, self.vlm.kv_heads, self.vlm.head_dim) != (
            self.expert.heads, self.expert.kv_heads, self.expert.head_dim
        ):
            errs.append("vlm and expert must share heads, kv_heads and head_dim (shared attention)")
        if not 0 < self.lang_valid <= self.lang_tokens:
            errs.append(f"lang_valid {self.lang_valid} must be in 1..={self.lang_tokens}")
        if self.expert.width % 2 != 0:
            errs.append(f"expert width {self.expert.width} must be even (sin/cos time embedding)")
        if self.steps < 1:
            errs.append("steps must be >= 1")
        if errs:
            raise ValueError("invalid pi0 config: " + "; ".join(errs))


def _tiny() -> Pi0Config:
    return Pi0Config(
        siglip=SiglipConfig(width=32, layers=27, heads=2, head_dim=16, mlp=64, patch=14,
                            image_size=70, pos_grid=4),
        vlm=GemmaConfig(width=64, layers=18, heads=8, kv_heads=1, head_dim=16, mlp=128, vocab=512),
        expert=GemmaConfig(width=32, layers=18, heads=8, kv_heads=1, head_dim=16, mlp=64, vocab=512),
        cameras=2, lang_tokens=8, lang_valid=6,
    )


def _small() -> Pi0Config:
    return Pi0Config(
        siglip=SiglipConfig(width=1152, layers=2, heads=16, head_dim=72, mlp=4304, patch=14,
                            image_size=224, pos_grid=16),
        vlm=GemmaConfig(width=2048, layers=2, heads=8, kv_heads=1, head_dim=256, mlp=16384,
                        vocab=257152),
        expert=GemmaConfig(width=1024, layers=2, heads=8, kv_heads=1, head_dim=256, mlp=4096,
                           vocab=257152),
        cameras=1, lang_tokens=48, lang_valid=40,
    )


def _pi0_base() -> Pi0Config:
    return Pi0Config(
        siglip=SiglipConfig(width=1152, layers=27, heads=16, head_dim=72, mlp=4304, patch=14,
                            image_size=224, pos_grid=16),
        vlm=GemmaConfig(width=2048, layers=18, heads=8, kv_heads=1, head_dim=256, mlp=16384,
                        vocab=257152),
        expert=GemmaConfig(width=1024, layers=18, heads=8, kv_heads=1, head_dim=256, mlp=4096,
                           vocab=257152),
        cameras=3, lang_tokens=48, lang_valid=40,
    )


PRESETS = {"tiny": _tiny, "small": _small, "pi0_base": _pi0_base}


def preset(name: str) -> Pi0Config:
    try:
        cfg = PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
    cfg.validate()
    return cfg


def replace(cfg: Pi0Config, **changes: Any) -> Pi0Config:
    """dataclasses.replace that also validates."""
    out = dataclasses.replace(cfg, **changes)
    out.validate()
    return out
