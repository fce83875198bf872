//! pi0 checkpoints: both naming variants, dims inferred from shapes, every problem in one error.
//!
//! Canonical names are the current LeRobot layout (PI0_SPEC §2.2, no leading `model.`). The
//! legacy layout (`model.`-prefixed, `paligemma.language_model.model.*`, §2.4) is mapped onto it.
//! The tied embedding is read from `paligemma_with_expert.paligemma.lm_head.weight`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::golden::{GoldenError, SafetensorsFile};
use crate::modules::config::Pi0Config;
use crate::tensor::Tensor;

pub const VISION: &str = "paligemma_with_expert.paligemma.model.vision_tower.vision_model";
pub const PROJECTOR: &str = "paligemma_with_expert.paligemma.model.multi_modal_projector.linear";
pub const LANGUAGE: &str = "paligemma_with_expert.paligemma.model.language_model";
pub const EXPERT: &str = "paligemma_with_expert.gemma_expert.model";
pub const TIED_EMBEDDING: &str = "paligemma_with_expert.paligemma.lm_head.weight";
pub const EXPERT_LM_HEAD: &str = "paligemma_with_expert.gemma_expert.lm_head.weight";
const EMBED_TOKENS: &str =
    "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight";

/// Which key layout a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Current LeRobot / openpi conversion layout.
    Current,
    /// `lerobot/pi0` legacy layout (`model.`-prefixed, transformers ≤ 4.51 tree).
    Legacy,
}

impl Naming {
    pub fn as_str(self) -> &'static str {
        match self {
            Naming::Current => "current",
            Naming::Legacy => "legacy",
        }
    }
}

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("refusing to load pickle checkpoint {path}: pickle files can run arbitrary code when loaded; convert it to .safetensors first")]
    Pickle { path: PathBuf },
    #[error("open checkpoint {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: GoldenError,
    },
    #[error("checkpoint {path} does not match the pi0 config:\n{report}")]
    Problems {
        path: PathBuf,
        missing: Vec<String>,
        unexpected: Vec<String>,
        misshapen: Vec<String>,
        report: String,
    },
    #[error("checkpoint {path} has no tensor `{name}`")]
    Missing { path: PathBuf, name: String },
    #[error("read tensor `{name}` from checkpoint {path}")]
    Read {
        path: PathBuf,
        name: String,
        #[source]
        source: GoldenError,
    },
    #[error("infer the pi0 config from checkpoint {path}: {message}")]
    Infer { path: PathBuf, message: String },
}

/// Every tensor a pi0 checkpoint holds for `cfg`, canonical names, in file order of §2.2.
pub fn expected_tensors(cfg: &Pi0Config) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::with_capacity(777);
    let mut add = |name: String, shape: Vec<usize>| out.push((name, shape));
    let s = &cfg.siglip;
    let (d, m) = (s.width, s.mlp);
    add(
        format!("{VISION}.embeddings.patch_embedding.weight"),
        vec![d, 3, s.patch, s.patch],
    );
    add(format!("{VISION}.embeddings.patch_embedding.bias"), vec![d]);
    add(
        format!("{VISION}.embeddings.position_embedding.weight"),
        vec![s.pos_grid * s.pos_grid, d],
    );
    for i in 0..s.layers {
        let p = format!("{VISION}.encoder.layers.{i}");
        for ln in ["layer_norm1", "layer_norm2"] {
            add(format!("{p}.{ln}.weight"), vec![d]);
            add(format!("{p}.{ln}.bias"), vec![d]);
        }
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            add(format!("{p}.self_attn.{proj}.weight"), vec![d, d]);
            add(format!("{p}.self_attn.{proj}.bias"), vec![d]);
        }
        add(format!("{p}.mlp.fc1.weight"), vec![m, d]);
        add(format!("{p}.mlp.fc1.bias"), vec![m]);
        add(format!("{p}.mlp.fc2.weight"), vec![d, m]);
        add(format!("{p}.mlp.fc2.bias"), vec![d]);
    }
    add(format!("{VISION}.post_layernorm.weight"), vec![d]);
    add(format!("{VISION}.post_layernorm.bias"), vec![d]);
    let w = cfg.vlm.width;
    add(format!("{PROJECTOR}.weight"), vec![w, d]);
    add(format!("{PROJECTOR}.bias"), vec![w]);
    add(TIED_EMBEDDING.to_string(), vec![cfg.vlm.vocab, w]);
    let gemma = |add: &mut dyn FnMut(String, Vec<usize>), root: &str, g: &super::GemmaConfig| {
        let (w, q, kv) = (g.width, g.heads * g.head_dim, g.kv_heads * g.head_dim);
        for i in 0..g.layers {
            let p = format!("{root}.layers.{i}");
            add(format!("{p}.self_attn.q_proj.weight"), vec![q, w]);
            add(format!("{p}.self_attn.k_proj.weight"), vec![kv, w]);
            add(format!("{p}.self_attn.v_proj.weight"), vec![kv, w]);
            add(format!("{p}.self_attn.o_proj.weight"), vec![w, q]);
            add(format!("{p}.mlp.gate_proj.weight"), vec![g.mlp, w]);
            add(format!("{p}.mlp.up_proj.weight"), vec![g.mlp, w]);
            add(format!("{p}.mlp.down_proj.weight"), vec![w, g.mlp]);
            add(format!("{p}.input_layernorm.weight"), vec![w]);
            add(format!("{p}.post_attention_layernorm.weight"), vec![w]);
        }
        add(format!("{root}.norm.weight"), vec![w]);
    };
    gemma(&mut add, LANGUAGE, &cfg.vlm);
    gemma(&mut add, EXPERT, &cfg.expert);
    add(
        EXPERT_LM_HEAD.to_string(),
        vec![cfg.expert.vocab, cfg.expert.width],
    );
    let e = cfg.expert.width;
    add("state_proj.weight".into(), vec![e, cfg.state_dim]);
    add("state_proj.bias".into(), vec![e]);
    add("action_in_proj.weight".into(), vec![e, cfg.action_dim]);
    add("action_in_proj.bias".into(), vec![e]);
    add("action_out_proj.weight".into(), vec![cfg.action_dim, e]);
    add("action_out_proj.bias".into(), vec![cfg.action_dim]);
    add("action_time_mlp_in.weight".into(), vec![e, 2 * e]);
    add("action_time_mlp_in.bias".into(), vec![e]);
    add("action_time_mlp_out.weight".into(), vec![e, e]);
    add("action_time_mlp_out.bias".into(), vec![e]);
    out
}

/// Maps a legacy key onto the canonical layout (LeRobot commit 71eff183f's renames).
fn canonical_from_legacy(key: &str) -> String {
    let k = key.strip_prefix("model.").unwrap_or(key);
    const RENAMES: [(&str, &str); 4] = [
        (
            "paligemma_with_expert.paligemma.language_model.lm_head",
            "paligemma_with_expert.paligemma.lm_head",
        ),
        (
            "paligemma_with_expert.paligemma.language_model.model",
            "paligemma_with_expert.paligemma.model.language_model",
        ),
        (
            "paligemma_with_expert.paligemma.vision_tower",
            "paligemma_with_expert.paligemma.model.vision_tower",
        ),
        (
            "paligemma_with_expert.paligemma.multi_modal_projector",
            "paligemma_with_expert.paligemma.model.multi_modal_projector",
        ),
    ];
    for (from, to) in RENAMES {
        if let Some(rest) = k.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    k.to_string()
}

/// An opened (memory-mapped) pi0 checkpoint.
pub struct Checkpoint {
    path: PathBuf,
    file: SafetensorsFile,
    naming: Naming,
    /// canonical name → stored name
    names: HashMap<String, String>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("naming", &self.naming)
            .field("tensors", &self.names.len())
            .finish()
    }
}

impl Checkpoint {
    /// Opens a `.safetensors` checkpoint (header only; data stays mapped).
    ///
    /// # Errors
    /// Pickle files are refused; unreadable files name the path.
    pub fn open(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if matches!(ext.as_str(), "pt" | "pth" | "bin" | "pkl" | "ckpt") {
            return Err(CheckpointError::Pickle {
                path: path.to_path_buf(),
            });
        }
        let file = SafetensorsFile::open(path).map_err(|source| CheckpointError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let stored: Vec<String> = file.names().iter().map(|s| s.to_string()).collect();
        let naming = if stored.iter().any(|k| k.starts_with("model.")) {
            Naming::Legacy
        } else {
            Naming::Current
        };
        let mut names = HashMap::with_capacity(stored.len());
        for k in stored {
            let canon = match naming {
                Naming::Current => k.clone(),
                Naming::Legacy => canonical_from_legacy(&k),
            };
            names.insert(canon, k);
        }
        // The tied embedding may survive under its other name.
        if !names.contains_key(TIED_EMBEDDING) {
            if let Some(stored) = names.get(EMBED_TOKENS).cloned() {
                names.insert(TIED_EMBEDDING.to_string(), stored);
            }
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            file,
            naming,
            names,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn naming(&self) -> Naming {
        self.naming
    }

    /// Number of tensors stored in the file.
    pub fn len(&self) -> usize {
        self.file.names().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Canonical names present, sorted.
    pub fn canonical_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.names.keys().cloned().collect();
        v.sort();
        v
    }

    /// Shape of a tensor by canonical name.
    pub fn shape(&self, canonical: &str) -> Option<Vec<usize>> {
        let stored = self.names.get(canonical)?;
        self.file.info(stored).map(|(_, shape)| shape)
    }

    /// Stored dtype of a tensor by canonical name (safetensors spelling, e.g. `BF16`).
    pub fn dtype(&self, canonical: &str) -> Option<String> {
        let stored = self.names.get(canonical)?;
        self.file.info(stored).map(|(dtype, _)| dtype)
    }

    /// Reads a tensor (widened to f32) by canonical name.
    pub fn get(&self, canonical: &str) -> Result<Tensor, CheckpointError> {
        let stored = self
            .names
            .get(canonical)
            .ok_or_else(|| CheckpointError::Missing {
                path: self.path.clone(),
                name: canonical.to_string(),
            })?;
        self.file
            .tensor(stored)
            .map(|t| t.with_origin(canonical))
            .map_err(|source| CheckpointError::Read {
                path: self.path.clone(),
                name: canonical.to_string(),
                source,
            })
    }

    /// Checks every expected key and shape for `cfg`; all problems in one error.
    pub fn validate(&self, cfg: &Pi0Config) -> Result<(), CheckpointError> {
        let expected = expected_tensors(cfg);
        let mut missing = Vec::new();
        let mut misshapen = Vec::new();
        let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
        for (name, shape) in &expected {
            seen.insert(name, ());
            match self.shape(name) {
                None => missing.push(name.clone()),
                Some(got) if &got != shape => {
                    misshapen.push(format!("{name}: expected {shape:?}, found {got:?}"))
                }
                Some(_) => {}
            }
        }
        let mut unexpected: Vec<String> = self
            .names
            .keys()
            .filter(|k| !seen.contains_key(k.as_str()) && k.as_str() != EMBED_TOKENS)
            .cloned()
            .collect();
        unexpected.sort();
        if missing.is_empty() && unexpected.is_empty() && misshapen.is_empty() {
            return Ok(());
        }
        let mut report = String::new();
        for (label, list) in [
            ("missing", &missing),
            ("unexpected", &unexpected),
            ("misshapen", &misshapen),
        ] {
            if !list.is_empty() {
                let _ = writeln!(report, "  {} {label}:", list.len());
                for item in list.iter() {
                    let _ = writeln!(report, "    {item}");
                }
            }
        }
        Err(CheckpointError::Problems {
            path: self.path.clone(),
            missing,
            unexpected,
            misshapen,
            report,
        })
    }

    /// Infers the model dims from tensor shapes, keeping `base`'s input geometry (image size,
    /// cameras, tokens) and the head split, which shapes cannot tell apart: pi0 is
    /// multi-query (one KV head), so head_dim = rows of k_proj.
    pub fn infer_config(&self, base: &Pi0Config) -> Result<Pi0Config, CheckpointError> {
        let err = |message: String| CheckpointError::Infer {
            path: self.path.clone(),
            message,
        };
        let shape = |name: &str| -> Result<Vec<usize>, CheckpointError> {
            self.shape(name)
                .ok_or_else(|| err(format!("tensor `{name}` is missing")))
        };
        let count_layers = |prefix: &str, leaf: &str| -> usize {
            (0..)
                .take_while(|i| {
                    self.names
                        .contains_key(&format!("{prefix}.layers.{i}.{leaf}"))
                })
                .count()
        };
        let mut c = base.clone();
        let patch = shape(&format!("{VISION}.embeddings.patch_embedding.weight"))?;
        if patch.len() != 4 {
            return Err(err(format!(
                "patch_embedding.weight has shape {patch:?}, expected 4-D"
            )));
        }
        c.siglip.width = patch[0];
        c.siglip.patch = patch[2];
        let pos = shape(&format!("{VISION}.embeddings.position_embedding.weight"))?;
        let grid = (pos[0] as f64).sqrt().round() as usize;
        if grid * grid != pos[0] {
            return Err(err(format!(
                "position table has {} rows, not a square grid",
                pos[0]
            )));
        }
        c.siglip.pos_grid = grid;
        c.siglip.layers = count_layers(&format!("{VISION}.encoder"), "layer_norm1.weight");
        c.siglip.mlp = shape(&format!("{VISION}.encoder.layers.0.mlp.fc1.weight"))?[0];
        // Head counts are not visible in shapes: So400m (width 1152) uses 16 heads of 72;
        // otherwise keep the base config's head_dim.
        c.siglip.head_dim = if c.siglip.width == 1152 {
            72
        } else {
            base.siglip.head_dim
        };
        c.siglip.heads = c.siglip.width / c.siglip.head_dim.max(1);
        let emb = shape(TIED_EMBEDDING)?;
        c.vlm.vocab = emb[0];
        c.vlm.width = emb[1];
        for (root, g) in [(LANGUAGE, &mut c.vlm), (EXPERT, &mut c.expert)] {
            g.layers = count_layers(root, "input_layernorm.weight");
            let q = shape(&format!("{root}.layers.0.self_attn.q_proj.weight"))?;
            let k = shape(&format!("{root}.layers.0.self_attn.k_proj.weight"))?;
            g.width = q[1];
            g.kv_heads = 1;
            g.head_dim = k[0];
            g.heads = q[0] / k[0].max(1);
            g.mlp = shape(&format!("{root}.layers.0.mlp.gate_proj.weight"))?[0];
        }
        if let Some(h) = self.shape(EXPERT_LM_HEAD) {
            c.expert.vocab = h[0];
        }
        c.state_dim = shape("state_proj.weight")?[1];
        c.action_dim = shape("action_out_proj.weight")?[0];
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_and_base_have_777_tensors() {
        assert_eq!(expected_tensors(&Pi0Config::tiny()).len(), 777);
        assert_eq!(expected_tensors(&Pi0Config::pi0_base()).len(), 777);
    }

    #[test]
    fn base_element_count_matches_spec() {
        let n: usize = expected_tensors(&Pi0Config::pi0_base())
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(n, 3_501_372_176);
    }

    #[test]
    fn legacy_names_map_to_current() {
        assert_eq!(
            canonical_from_legacy("model.paligemma_with_expert.paligemma.language_model.model.layers.3.mlp.up_proj.weight"),
            "paligemma_with_expert.paligemma.model.language_model.layers.3.mlp.up_proj.weight"
        );
        assert_eq!(
            canonical_from_legacy(
                "model.paligemma_with_expert.paligemma.language_model.lm_head.weight"
            ),
            TIED_EMBEDDING
        );
        assert_eq!(
            canonical_from_legacy("model.paligemma_with_expert.paligemma.vision_tower.vision_model.post_layernorm.bias"),
            format!("{VISION}.post_layernorm.bias")
        );
        assert_eq!(
            canonical_from_legacy("model.state_proj.weight"),
            "state_proj.weight"
        );
        assert_eq!(
            canonical_from_legacy("model.paligemma_with_expert.gemma_expert.model.norm.weight"),
            format!("{EXPERT}.norm.weight")
        );
    }
}
