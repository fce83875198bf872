//! The 11 pi0 modules, written once against [`Backend`], plus config presets and checkpoint
//! loading.
//!
//! Op names and weight names come from one path-prefix mechanism, [`Scope`]: each scope carries
//! an op-name prefix and a checkpoint prefix, the way candle's `VarBuilder::pp` carries weight
//! paths. Module inputs and outputs travel by name in an [`Env`], so the same code serves the
//! isolated mode (env filled from goldens) and the pipeline mode (env carried from the previous
//! module's device outputs).

pub mod action;
pub mod attn_masks;
pub mod checkpoint;
pub mod config;
pub mod expert;
pub mod gemma;
pub mod lang_embed;
pub mod pi0;
pub mod prefix;
pub mod projector;
pub mod siglip;
pub mod suffix;
pub mod vlm;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::backend::{Backend, Op, OpError, OpKind};
use crate::tensor::Tensor;

pub use checkpoint::{Checkpoint, CheckpointError, Naming};
pub use config::{GemmaConfig, Pi0Config, Preset, SiglipConfig};

/// Named tensors flowing between modules.
pub type Env = HashMap<String, Tensor>;

/// A path prefix for op names and, alongside, for checkpoint names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    op: String,
    weight: String,
}

fn join(prefix: &str, seg: &str) -> String {
    match (prefix.is_empty(), seg.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => seg.to_string(),
        (false, false) => format!("{prefix}.{seg}"),
    }
}

impl Scope {
    pub fn root() -> Scope {
        Scope::default()
    }

    /// Descends both paths.
    pub fn pp(&self, op_seg: impl AsRef<str>, weight_seg: impl AsRef<str>) -> Scope {
        Scope {
            op: join(&self.op, op_seg.as_ref()),
            weight: join(&self.weight, weight_seg.as_ref()),
        }
    }

    /// Descends the op path only (e.g. `denoise.3`).
    pub fn pp_op(&self, op_seg: impl AsRef<str>) -> Scope {
        self.pp(op_seg, "")
    }

    /// Descends the weight path only.
    pub fn pp_weight(&self, weight_seg: impl AsRef<str>) -> Scope {
        self.pp("", weight_seg)
    }

    /// Full op name of a leaf.
    pub fn op(&self, leaf: &str) -> String {
        join(&self.op, leaf)
    }

    /// Full checkpoint name of a leaf.
    pub fn weight(&self, leaf: &str) -> String {
        join(&self.weight, leaf)
    }

    pub fn op_prefix(&self) -> &str {
        &self.op
    }
}

/// The 11 modules, in natural data-flow order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModuleId {
    Siglip,
    Projector,
    LangEmbed,
    Prefix,
    Vlm,
    Suffix,
    AttnMasks,
    Expert,
    ActionExtract,
    ActionProj,
    Pi0,
}

impl ModuleId {
    pub const ALL: [ModuleId; 11] = [
        ModuleId::Siglip,
        ModuleId::Projector,
        ModuleId::LangEmbed,
        ModuleId::Prefix,
        ModuleId::Vlm,
        ModuleId::Suffix,
        ModuleId::AttnMasks,
        ModuleId::Expert,
        ModuleId::ActionExtract,
        ModuleId::ActionProj,
        ModuleId::Pi0,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModuleId::Siglip => "siglip",
            ModuleId::Projector => "projector",
            ModuleId::LangEmbed => "lang_embed",
            ModuleId::Prefix => "prefix",
            ModuleId::Vlm => "vlm",
            ModuleId::Suffix => "suffix",
            ModuleId::AttnMasks => "attn_masks",
            ModuleId::Expert => "expert",
            ModuleId::ActionExtract => "action_extract",
            ModuleId::ActionProj => "action_proj",
            ModuleId::Pi0 => "pi0",
        }
    }

    pub fn parse(s: &str) -> Option<ModuleId> {
        ModuleId::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Names this module reads from the env.
    pub fn inputs(self, cfg: &Pi0Config) -> Vec<String> {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            ModuleId::Siglip => v(&["images"]),
            ModuleId::Projector => v(&[siglip::OUTPUT]),
            ModuleId::LangEmbed => v(&["tokens"]),
            ModuleId::Prefix => v(&[
                projector::OUTPUT,
                lang_embed::OUTPUT,
                "img_masks",
                "lang_masks",
            ]),
            ModuleId::Vlm => v(&[prefix::EMBS, prefix::PAD, prefix::ATT]),
            ModuleId::Suffix => v(&["state", "noise", "time"]),
            ModuleId::AttnMasks => v(&[prefix::PAD, prefix::ATT, suffix::PAD, suffix::ATT]),
            ModuleId::Expert => {
                let mut x = v(&[
                    suffix::EMBS,
                    attn_masks::SUFFIX_ROWS,
                    attn_masks::SUFFIX_POSITIONS,
                ]);
                x.extend(vlm::cache_names(cfg));
                x
            }
            ModuleId::ActionExtract => v(&[expert::OUTPUT]),
            ModuleId::ActionProj => v(&[action::EXTRACT_OUTPUT]),
            ModuleId::Pi0 => v(&[
                "images",
                "img_masks",
                "tokens",
                "lang_masks",
                "state",
                "noise",
            ]),
        }
    }

    /// Names this module writes to the env.
    pub fn outputs(self, cfg: &Pi0Config) -> Vec<String> {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            ModuleId::Siglip => v(&[siglip::OUTPUT]),
            ModuleId::Projector => v(&[projector::OUTPUT]),
            ModuleId::LangEmbed => v(&[lang_embed::OUTPUT]),
            ModuleId::Prefix => v(&[prefix::EMBS, prefix::PAD, prefix::ATT]),
            ModuleId::Vlm => {
                let mut x = v(&[vlm::OUTPUT]);
                x.extend(vlm::cache_names(cfg));
                x
            }
            ModuleId::Suffix => v(&[suffix::EMBS, suffix::PAD, suffix::ATT]),
            ModuleId::AttnMasks => v(&[attn_masks::SUFFIX_ROWS, attn_masks::SUFFIX_POSITIONS]),
            ModuleId::Expert => v(&[expert::OUTPUT]),
            ModuleId::ActionExtract => v(&[action::EXTRACT_OUTPUT]),
            ModuleId::ActionProj => v(&[action::PROJ_OUTPUT]),
            ModuleId::Pi0 => vec![pi0::output_name(cfg)],
        }
    }
}

impl fmt::Display for ModuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a module stopped.
#[derive(Debug, Error)]
pub enum ModuleError {
    #[error("op `{op}` failed: {source}")]
    Op {
        op: String,
        #[source]
        source: OpError,
    },
    #[error("module input `{name}` is not available")]
    MissingInput { name: String },
    #[error("load parameter")]
    Param(#[from] CheckpointError),
    #[error("upload parameter `{name}`: {source}")]
    Upload {
        name: String,
        #[source]
        source: OpError,
    },
}

/// Checkpoint parameters, uploaded to the device once and cached.
pub struct Weights {
    checkpoint: Arc<Checkpoint>,
    cache: Mutex<HashMap<String, Tensor>>,
}

impl Weights {
    pub fn new(checkpoint: Arc<Checkpoint>) -> Weights {
        Weights {
            checkpoint,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The parameter `name` as the device holds it.
    pub fn get(&self, backend: &dyn Backend, name: &str) -> Result<Tensor, ModuleError> {
        if let Some(t) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(t);
        }
        let host = self.checkpoint.get(name)?;
        let dev = backend
            .upload(name, host)
            .map_err(|source| ModuleError::Upload {
                name: name.to_string(),
                source,
            })?
            .with_origin(name);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(name.to_string(), dev.clone());
        }
        Ok(dev)
    }
}

/// What a module body needs: the backend (usually the tracer), the weights and the config.
pub struct Ctx<'a> {
    pub backend: &'a dyn Backend,
    pub weights: &'a Weights,
    pub cfg: &'a Pi0Config,
}

impl<'a> Ctx<'a> {
    /// Runs one op through the backend door.
    pub fn op(
        &self,
        scope: &Scope,
        leaf: &str,
        kind: OpKind,
        inputs: &[&Tensor],
    ) -> Result<Tensor, ModuleError> {
        let name = scope.op(leaf);
        let op = Op::new(name.clone(), kind);
        self.backend
            .exec(&op, inputs)
            .map(|t| t.with_origin(name.as_str()))
            .map_err(|source| ModuleError::Op { op: name, source })
    }

    /// A checkpoint parameter under `scope`'s weight path.
    pub fn param(&self, scope: &Scope, leaf: &str) -> Result<Tensor, ModuleError> {
        self.weights.get(self.backend, &scope.weight(leaf))
    }

    /// `y = x Wᵀ (+ b)` with `{weight_leaf}.weight` (and `.bias`).
    pub fn linear(
        &self,
        scope: &Scope,
        op_leaf: &str,
        weight_leaf: &str,
        x: &Tensor,
        bias: bool,
    ) -> Result<Tensor, ModuleError> {
        let w = self.param(scope, &format!("{weight_leaf}.weight"))?;
        if bias {
            let b = self.param(scope, &format!("{weight_leaf}.bias"))?;
            self.op(scope, op_leaf, OpKind::Linear, &[x, &w, &b])
        } else {
            self.op(scope, op_leaf, OpKind::Linear, &[x, &w])
        }
    }
}

/// Reads a module input from the env.
pub fn take<'e>(env: &'e Env, name: &str) -> Result<&'e Tensor, ModuleError> {
    env.get(name).ok_or_else(|| ModuleError::MissingInput {
        name: name.to_string(),
    })
}

/// Runs one module: reads its inputs from `env`, writes its outputs into it.
pub fn run_module(id: ModuleId, ctx: &Ctx<'_>, env: &mut Env) -> Result<(), ModuleError> {
    let root = Scope::root();
    match id {
        ModuleId::Siglip => {
            let out = siglip::forward(ctx, &root, take(env, "images")?)?;
            env.insert(siglip::OUTPUT.into(), out);
        }
        ModuleId::Projector => {
            let out = projector::forward(ctx, &root, take(env, siglip::OUTPUT)?)?;
            env.insert(projector::OUTPUT.into(), out);
        }
        ModuleId::LangEmbed => {
            let out = lang_embed::forward(ctx, &root, take(env, "tokens")?)?;
            env.insert(lang_embed::OUTPUT.into(), out);
        }
        ModuleId::Prefix => prefix::run(ctx, &root, env)?,
        ModuleId::Vlm => vlm::run(ctx, &root, env)?,
        ModuleId::Suffix => suffix::run(ctx, &root, env, "time", "noise")?,
        ModuleId::AttnMasks => attn_masks::run(ctx, &root, env)?,
        ModuleId::Expert => expert::run(ctx, &root, env)?,
        ModuleId::ActionExtract => action::run_extract(ctx, &root, env)?,
        ModuleId::ActionProj => action::run_proj(ctx, &root, env)?,
        ModuleId::Pi0 => pi0::run(ctx, &root, env)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_carries_op_and_weight_paths() {
        let s = Scope::root().pp("vlm", checkpoint::LANGUAGE);
        let l = s.pp("layers.3", "layers.3").pp("mlp", "mlp");
        assert_eq!(l.op("up"), "vlm.layers.3.mlp.up");
        assert_eq!(
            l.weight("up_proj.weight"),
            "paligemma_with_expert.paligemma.model.language_model.layers.3.mlp.up_proj.weight"
        );
        let d = Scope::root()
            .pp_op("denoise.4")
            .pp("expert", checkpoint::EXPERT);
        assert_eq!(
            d.pp("layers.0", "layers.0")
                .pp("attn", "self_attn")
                .op("k_cat"),
            "denoise.4.expert.layers.0.attn.k_cat"
        );
        assert_eq!(
            d.weight("norm.weight"),
            "paligemma_with_expert.gemma_expert.model.norm.weight"
        );
    }

    #[test]
    fn module_ids_round_trip_and_cache_names() {
        for m in ModuleId::ALL {
            assert_eq!(ModuleId::parse(m.as_str()), Some(m));
        }
        let cfg = Pi0Config::tiny();
        let names = vlm::cache_names(&cfg);
        assert_eq!(names.len(), 36);
        assert_eq!(names[0], "vlm.layers.0.attn.k_rope");
        assert_eq!(names[35], "vlm.layers.17.attn.v");
        assert_eq!(pi0::output_name(&cfg), "denoise.9.euler");
        assert!(ModuleId::Expert.inputs(&cfg).contains(&names[7]));
    }

    #[test]
    fn presets_validate() {
        for p in [Preset::Tiny, Preset::Small, Preset::Pi0Base] {
            Pi0Config::preset(p).validate().unwrap();
        }
        let mut bad = Pi0Config::tiny();
        bad.expert.layers = 3;
        bad.siglip.heads = 3;
        let e = bad.validate().unwrap_err();
        assert!(e.contains("expert") && e.contains("siglip"), "{e}");
        assert_eq!(Pi0Config::tiny().prefix_len(), 58);
    }
}
