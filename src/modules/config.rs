//! pi0 configuration: presets, serde (the capture's `config` object), and validation.

use serde::{Deserialize, Serialize};

/// SigLIP vision tower dims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiglipConfig {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub head_dim: usize,
    pub mlp: usize,
    pub patch: usize,
    pub image_size: usize,
    /// Side of the checkpoint's square position table (16 for pi0_base).
    pub pos_grid: usize,
    pub ln_eps: f32,
}

impl SiglipConfig {
    /// Patches per side of the input image ("valid" conv).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch
    }
    pub fn patches(&self) -> usize {
        self.grid() * self.grid()
    }
}

/// One Gemma stack (the VLM and the action expert are the same block with two configs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmaConfig {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub mlp: usize,
    pub vocab: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
}

/// The whole pi0 model plus the input geometry of a capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pi0Config {
    pub siglip: SiglipConfig,
    pub vlm: GemmaConfig,
    pub expert: GemmaConfig,
    pub cameras: usize,
    pub lang_tokens: usize,
    pub lang_valid: usize,
    pub state_dim: usize,
    pub action_dim: usize,
    pub horizon: usize,
    pub steps: usize,
    pub time_min_period: f64,
    pub time_max_period: f64,
    pub mask_value: f32,
}

/// Named presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Tiny,
    Small,
    Pi0Base,
}

impl Preset {
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "tiny" => Some(Preset::Tiny),
            "small" => Some(Preset::Small),
            "pi0_base" | "pi0-base" => Some(Preset::Pi0Base),
            _ => None,
        }
    }
}

impl Pi0Config {
    pub fn preset(p: Preset) -> Pi0Config {
        match p {
            Preset::Tiny => Pi0Config::tiny(),
            Preset::Small => Pi0Config::small(),
            Preset::Pi0Base => Pi0Config::pi0_base(),
        }
    }

    /// The real topology (27/18/18 layers, 777 checkpoint tensors) at tiny widths.
    pub fn tiny() -> Pi0Config {
        Pi0Config {
            siglip: SiglipConfig {
                width: 32,
                layers: 27,
                heads: 2,
                head_dim: 16,
                mlp: 64,
                patch: 14,
                image_size: 70,
                pos_grid: 4,
                ln_eps: 1e-6,
            },
            vlm: GemmaConfig {
                width: 64,
                layers: 18,
                heads: 8,
                kv_heads: 1,
                head_dim: 16,
                mlp: 128,
                vocab: 512,
                rms_eps: 1e-6,
                rope_theta: 10000.0,
            },
            expert: GemmaConfig {
                width: 32,
                layers: 18,
                heads: 8,
                kv_heads: 1,
                head_dim: 16,
                mlp: 64,
                vocab: 512,
                rms_eps: 1e-6,
                rope_theta: 10000.0,
            },
            cameras: 2,
            lang_tokens: 8,
            lang_valid: 6,
            state_dim: 32,
            action_dim: 32,
            horizon: 50,
            steps: 10,
            time_min_period: 0.004,
            time_max_period: 4.0,
            mask_value: -2.381_976_3e38,
        }
    }

    /// Real widths, 2 layers per stack, one 224 camera (for benchmarks).
    pub fn small() -> Pi0Config {
        let mut c = Pi0Config::pi0_base();
        c.siglip.layers = 2;
        c.vlm.layers = 2;
        c.expert.layers = 2;
        c.cameras = 1;
        c
    }

    /// pi0_base as released (PI0_SPEC §1).
    pub fn pi0_base() -> Pi0Config {
        Pi0Config {
            siglip: SiglipConfig {
                width: 1152,
                layers: 27,
                heads: 16,
                head_dim: 72,
                mlp: 4304,
                patch: 14,
                image_size: 224,
                pos_grid: 16,
                ln_eps: 1e-6,
            },
            vlm: GemmaConfig {
                width: 2048,
                layers: 18,
                heads: 8,
                kv_heads: 1,
                head_dim: 256,
                mlp: 16384,
                vocab: 257_152,
                rms_eps: 1e-6,
                rope_theta: 10000.0,
            },
            expert: GemmaConfig {
                width: 1024,
                layers: 18,
                heads: 8,
                kv_heads: 1,
                head_dim: 256,
                mlp: 4096,
                vocab: 257_152,
                rms_eps: 1e-6,
                rope_theta: 10000.0,
            },
            cameras: 3,
            lang_tokens: 48,
            lang_valid: 48,
            state_dim: 32,
            action_dim: 32,
            horizon: 50,
            steps: 10,
            time_min_period: 0.004,
            time_max_period: 4.0,
            mask_value: -2.381_976_3e38,
        }
    }

    /// Prefix length Lp = cameras · patches + language tokens.
    pub fn prefix_len(&self) -> usize {
        self.cameras * self.siglip.patches() + self.lang_tokens
    }

    /// Suffix length Ls = horizon + 1 (the state token).
    pub fn suffix_len(&self) -> usize {
        self.horizon + 1
    }

    /// Checks the invariants the modules rely on; every violation in one message.
    pub fn validate(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        if self.siglip.heads * self.siglip.head_dim != self.siglip.width {
            errs.push(format!(
                "siglip heads·head_dim = {}·{} ≠ width {}",
                self.siglip.heads, self.siglip.head_dim, self.siglip.width
            ));
        }
        if self.siglip.patch == 0 || self.siglip.image_size < self.siglip.patch {
            errs.push(format!(
                "siglip image_size {} smaller than patch {}",
                self.siglip.image_size, self.siglip.patch
            ));
        }
        if self.vlm.layers != self.expert.layers {
            errs.push(format!(
                "the expert must have as many layers as the VLM ({} vs {})",
                self.expert.layers, self.vlm.layers
            ));
        }
        if self.vlm.head_dim != self.expert.head_dim || self.vlm.kv_heads != self.expert.kv_heads {
            errs.push("the expert must share the VLM's head_dim and kv_heads".into());
        }
        for (n, g) in [("vlm", &self.vlm), ("expert", &self.expert)] {
            if g.kv_heads == 0 || g.heads % g.kv_heads != 0 {
                errs.push(format!(
                    "{n} heads {} not a multiple of kv_heads {}",
                    g.heads, g.kv_heads
                ));
            }
            if g.head_dim % 2 != 0 {
                errs.push(format!("{n} head_dim {} must be even for RoPE", g.head_dim));
            }
        }
        if self.lang_valid > self.lang_tokens {
            errs.push("lang_valid exceeds lang_tokens".into());
        }
        if !self.expert.width.is_multiple_of(2) {
            errs.push("expert width must be even (sin/cos time embedding)".into());
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("; "))
        }
    }
}
