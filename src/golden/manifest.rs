//! `manifest.json` of a capture (`schema: "pccscope.capture/1"`, goldens/README.md "Format").
//!
//! Unknown fields are ignored on read; optional fields are skipped when `None` on write.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stats::Stats;

/// The capture format this crate reads and writes.
pub const SCHEMA: &str = "pccscope.capture/1";

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Who wrote the capture: free-form (`name`, `kind`, `version`, …).
    #[serde(default)]
    pub producer: Value,
    pub model: String,
    pub preset: String,
    /// The full model config.
    #[serde(default)]
    pub config: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRef>,
    /// Raw model inputs (tensors that are not op outputs).
    #[serde(default)]
    pub inputs: Vec<InputRecord>,
    /// Modules in data-flow order.
    #[serde(default)]
    pub modules: Vec<ModuleRecord>,
}

/// The checkpoint the capture was produced with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    /// Path relative to the capture directory.
    pub file: String,
    /// `current` or `legacy` tensor naming.
    pub naming: String,
    /// Stored dtype of the weights, e.g. `BF16`.
    pub dtype: String,
    /// Number of tensors in the file.
    pub tensors: usize,
}

/// A raw model input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    pub name: String,
    pub shape: Vec<usize>,
    /// Stored dtype: `F32`, `I64` (tokens) or `BOOL` (masks).
    pub dtype: String,
    /// Shard path relative to the capture directory.
    pub file: String,
    /// Key inside the shard; `None` means `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
}

impl InputRecord {
    /// Key of this input inside its shard.
    pub fn tensor_key(&self) -> &str {
        self.tensor.as_deref().unwrap_or(&self.name)
    }
}

/// One module: its id, input and output tensor names and its ops in execution order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleRecord {
    pub id: String,
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
    #[serde(default)]
    pub ops: Vec<OpRecord>,
}

/// One op output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpRecord {
    /// Hierarchical op name, e.g. `vlm.layers.3.attn.q`.
    pub name: String,
    /// Op kind as written in captures (`linear`, `rms_norm`, …).
    pub kind: String,
    #[serde(default = "empty_object")]
    pub attrs: Value,
    /// Activation names this op reads.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Checkpoint tensor names this op reads.
    #[serde(default)]
    pub params: Vec<String>,
    pub shape: Vec<usize>,
    /// Stored dtype of the output (`F32` unless the producer says otherwise).
    #[serde(default = "f32_dtype")]
    pub dtype: String,
    /// Shard path relative to the capture directory; `None` for a stats-only record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Key inside the shard; `None` means `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
    /// Device captures: TT-NN layout of the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Device captures: memory config of the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Device captures: shape including tile padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padded_shape: Option<Vec<usize>>,
    /// Device captures: storage dtype on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_dtype: Option<String>,
    /// Device captures: effective precision config of the op, free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Value>,
    /// External captures: the op raised instead of producing an output (the message). Such a
    /// record carries no data and no stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl OpRecord {
    /// A record with no attrs, inputs, params, file, stats or device fields, dtype `F32`.
    pub fn new(name: impl Into<String>, kind: impl Into<String>, shape: Vec<usize>) -> OpRecord {
        OpRecord {
            name: name.into(),
            kind: kind.into(),
            attrs: empty_object(),
            inputs: Vec::new(),
            params: Vec::new(),
            shape,
            dtype: f32_dtype(),
            file: None,
            tensor: None,
            stats: None,
            layout: None,
            memory: None,
            padded_shape: None,
            device_dtype: None,
            precision: None,
            error: None,
        }
    }

    /// Key of this record inside its shard (`tensor`, defaulting to `name`).
    pub fn tensor_key(&self) -> &str {
        self.tensor.as_deref().unwrap_or(&self.name)
    }

    /// True when the record carries only statistics.
    pub fn is_stats_only(&self) -> bool {
        self.file.is_none()
    }
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn f32_dtype() -> String {
    "F32".to_string()
}
