//! The one door every op passes through: [`Backend::exec`] over the closed [`OpKind`] catalog.
//!
//! Op identity lives in the type system; strings appear only where a capture is read or written
//! ([`OpKind::from_record`] / [`OpKind::to_record`]).

pub mod cpu;
pub mod emu;
pub mod tt;

use std::fmt;

use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::tensor::Tensor;

/// GELU flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluApprox {
    /// 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
    Tanh,
    /// 0.5·x·(1 + erf(x/√2))
    None,
}

/// Every op pi0 needs, with its typed attributes. Semantics: goldens/README.md "Op kinds".
#[derive(Debug, Clone, PartialEq)]
pub enum OpKind {
    /// y = x Wᵀ (+ b). Inputs: x, weight [out, in], optional bias [out].
    Linear,
    /// Valid conv with stride = kernel = `patch`, flattened row-major to [N, Hp·Wp, D].
    /// Inputs: images [N, C, H, W], weight [D, C, p, p], bias [D].
    Conv2dPatch {
        patch: usize,
    },
    /// Bicubic (A = −0.75, align_corners = false) resize of a [in_h·in_w, D] table.
    InterpolateBicubic {
        in_h: usize,
        in_w: usize,
        out_h: usize,
        out_w: usize,
    },
    /// Inputs: x, weight, bias.
    LayerNorm {
        eps: f32,
    },
    /// x · rsqrt(mean(x²) + eps) · (offset + w). Inputs: x, weight.
    RmsNorm {
        eps: f32,
        offset: f32,
    },
    Add,
    Mul,
    MulScalar {
        value: f32,
    },
    Gelu {
        approx: GeluApprox,
    },
    Silu,
    /// Inputs: ids (as f32), table [vocab, D].
    Embedding,
    Concat {
        dim: usize,
    },
    Slice {
        dim: usize,
        start: usize,
        end: usize,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Expand {
        shape: Vec<usize>,
    },
    RepeatInterleave {
        dim: usize,
        repeats: usize,
    },
    /// No inputs.
    Full {
        shape: Vec<usize>,
        value: f32,
    },
    /// Half-split rotary embedding of each head. Inputs: x [B, T, H·hd], positions [B, T].
    Rope {
        theta: f32,
        head_dim: usize,
    },
    /// Scaled dot-product attention with heads packed on the last axis.
    /// Inputs: q [B, T, Hq·hd], k [B, S, Hkv·hd], v [B, S, Hkv·hd], optional additive mask
    /// broadcastable to [B, 1, T, S].
    Sdpa {
        q_heads: usize,
        kv_heads: usize,
        head_dim: usize,
        scale: f32,
    },
    /// Inputs: pad [B, L], ar [B, L] → additive [B, 1, L, L].
    AttnMask2d {
        mask_value: f32,
    },
    /// cumsum(pad) − 1. Inputs: pad [B, L].
    Positions,
    /// Sinusoidal time embedding (f64 math). Inputs: t [B] → [B, dim].
    TimeEmbed {
        dim: usize,
        min_period: f64,
        max_period: f64,
    },
}

/// Coarse op classes; tolerances are chosen per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpClass {
    /// Reshape, concat, slice, embedding…: exact in the storage dtype.
    DataMovement,
    /// Elementwise math: ULP / allclose.
    Eltwise,
    /// Matmul, conv, norms, attention: PCC + rel-L2.
    Matmul,
    Norm,
    Attention,
}

impl OpClass {
    pub fn as_str(self) -> &'static str {
        match self {
            OpClass::DataMovement => "data_movement",
            OpClass::Eltwise => "eltwise",
            OpClass::Matmul => "matmul",
            OpClass::Norm => "norm",
            OpClass::Attention => "attention",
        }
    }
}

impl OpKind {
    /// Snake-case name as written in captures.
    pub fn as_str(&self) -> &'static str {
        match self {
            OpKind::Linear => "linear",
            OpKind::Conv2dPatch { .. } => "conv2d_patch",
            OpKind::InterpolateBicubic { .. } => "interpolate_bicubic",
            OpKind::LayerNorm { .. } => "layer_norm",
            OpKind::RmsNorm { .. } => "rms_norm",
            OpKind::Add => "add",
            OpKind::Mul => "mul",
            OpKind::MulScalar { .. } => "mul_scalar",
            OpKind::Gelu { .. } => "gelu",
            OpKind::Silu => "silu",
            OpKind::Embedding => "embedding",
            OpKind::Concat { .. } => "concat",
            OpKind::Slice { .. } => "slice",
            OpKind::Reshape { .. } => "reshape",
            OpKind::Expand { .. } => "expand",
            OpKind::RepeatInterleave { .. } => "repeat_interleave",
            OpKind::Full { .. } => "full",
            OpKind::Rope { .. } => "rope",
            OpKind::Sdpa { .. } => "sdpa",
            OpKind::AttnMask2d { .. } => "attn_mask_2d",
            OpKind::Positions => "positions",
            OpKind::TimeEmbed { .. } => "time_embed",
        }
    }

    pub fn class(&self) -> OpClass {
        match self {
            OpKind::Linear | OpKind::Conv2dPatch { .. } | OpKind::InterpolateBicubic { .. } => {
                OpClass::Matmul
            }
            OpKind::LayerNorm { .. } | OpKind::RmsNorm { .. } => OpClass::Norm,
            OpKind::Sdpa { .. } => OpClass::Attention,
            OpKind::Add
            | OpKind::Mul
            | OpKind::MulScalar { .. }
            | OpKind::Gelu { .. }
            | OpKind::Silu
            | OpKind::Rope { .. }
            | OpKind::TimeEmbed { .. } => OpClass::Eltwise,
            OpKind::Embedding
            | OpKind::Concat { .. }
            | OpKind::Slice { .. }
            | OpKind::Reshape { .. }
            | OpKind::Expand { .. }
            | OpKind::RepeatInterleave { .. }
            | OpKind::Full { .. }
            | OpKind::AttnMask2d { .. }
            | OpKind::Positions => OpClass::DataMovement,
        }
    }

    /// The `attrs` object written to a capture.
    pub fn attrs(&self) -> Value {
        match self {
            OpKind::Linear
            | OpKind::Add
            | OpKind::Mul
            | OpKind::Silu
            | OpKind::Embedding
            | OpKind::Positions => json!({}),
            OpKind::Conv2dPatch { patch } => json!({ "patch": patch }),
            OpKind::InterpolateBicubic {
                in_h,
                in_w,
                out_h,
                out_w,
            } => json!({"in_h": in_h, "in_w": in_w, "out_h": out_h, "out_w": out_w}),
            OpKind::LayerNorm { eps } => json!({ "eps": eps }),
            OpKind::RmsNorm { eps, offset } => json!({"eps": eps, "offset": offset}),
            OpKind::MulScalar { value } => json!({ "value": value }),
            OpKind::Gelu { approx } => json!({"approx": match approx {
                GeluApprox::Tanh => "tanh",
                GeluApprox::None => "none",
            }}),
            OpKind::Concat { dim } => json!({ "dim": dim }),
            OpKind::Slice { dim, start, end } => json!({"dim": dim, "start": start, "end": end}),
            OpKind::Reshape { shape } | OpKind::Expand { shape } => json!({ "shape": shape }),
            OpKind::RepeatInterleave { dim, repeats } => json!({"dim": dim, "repeats": repeats}),
            OpKind::Full { shape, value } => json!({"shape": shape, "value": value}),
            OpKind::Rope { theta, head_dim } => json!({"theta": theta, "head_dim": head_dim}),
            OpKind::Sdpa {
                q_heads,
                kv_heads,
                head_dim,
                scale,
            } => {
                json!({"q_heads": q_heads, "kv_heads": kv_heads, "head_dim": head_dim, "scale": scale})
            }
            OpKind::AttnMask2d { mask_value } => json!({ "mask_value": mask_value }),
            OpKind::TimeEmbed {
                dim,
                min_period,
                max_period,
            } => json!({"dim": dim, "min_period": min_period, "max_period": max_period}),
        }
    }

    /// `(kind, attrs)` as written to a capture.
    pub fn to_record(&self) -> (&'static str, Value) {
        (self.as_str(), self.attrs())
    }

    /// Parses a capture's `kind` + `attrs`; the error says which attribute is missing or bad.
    pub fn from_record(kind: &str, attrs: &Value) -> Result<OpKind, String> {
        let empty = Map::new();
        let a = attrs.as_object().unwrap_or(&empty);
        let uint = |k: &str| -> Result<usize, String> {
            a.get(k)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| format!("op kind `{kind}` needs integer attribute `{k}`"))
        };
        let float = |k: &str| -> Result<f64, String> {
            a.get(k)
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("op kind `{kind}` needs number attribute `{k}`"))
        };
        let shape = |k: &str| -> Result<Vec<usize>, String> {
            a.get(k)
                .and_then(Value::as_array)
                .and_then(|v| v.iter().map(|d| d.as_u64().map(|d| d as usize)).collect())
                .ok_or_else(|| format!("op kind `{kind}` needs integer list attribute `{k}`"))
        };
        Ok(match kind {
            "linear" => OpKind::Linear,
            "conv2d_patch" => OpKind::Conv2dPatch {
                patch: uint("patch")?,
            },
            "interpolate_bicubic" => OpKind::InterpolateBicubic {
                in_h: uint("in_h")?,
                in_w: uint("in_w")?,
                out_h: uint("out_h")?,
                out_w: uint("out_w")?,
            },
            "layer_norm" => OpKind::LayerNorm {
                eps: float("eps")? as f32,
            },
            "rms_norm" => OpKind::RmsNorm {
                eps: float("eps")? as f32,
                offset: a.get("offset").and_then(Value::as_f64).unwrap_or(0.0) as f32,
            },
            "add" => OpKind::Add,
            "mul" => OpKind::Mul,
            "mul_scalar" => OpKind::MulScalar {
                value: float("value")? as f32,
            },
            "gelu" => OpKind::Gelu {
                approx: match a.get("approx").and_then(Value::as_str).unwrap_or("none") {
                    "tanh" => GeluApprox::Tanh,
                    "none" => GeluApprox::None,
                    other => return Err(format!("gelu approx `{other}` is not tanh or none")),
                },
            },
            "silu" => OpKind::Silu,
            "embedding" => OpKind::Embedding,
            "concat" => OpKind::Concat { dim: uint("dim")? },
            "slice" => OpKind::Slice {
                dim: uint("dim")?,
                start: uint("start")?,
                end: uint("end")?,
            },
            "reshape" => OpKind::Reshape {
                shape: shape("shape")?,
            },
            "expand" => OpKind::Expand {
                shape: shape("shape")?,
            },
            "repeat_interleave" => OpKind::RepeatInterleave {
                dim: uint("dim")?,
                repeats: uint("repeats")?,
            },
            "full" => OpKind::Full {
                shape: shape("shape")?,
                value: float("value")? as f32,
            },
            "rope" => OpKind::Rope {
                theta: float("theta")? as f32,
                head_dim: uint("head_dim")?,
            },
            "sdpa" => OpKind::Sdpa {
                q_heads: uint("q_heads")?,
                kv_heads: uint("kv_heads")?,
                head_dim: uint("head_dim")?,
                scale: float("scale")? as f32,
            },
            "attn_mask_2d" => OpKind::AttnMask2d {
                mask_value: float("mask_value")? as f32,
            },
            "positions" => OpKind::Positions,
            "time_embed" => OpKind::TimeEmbed {
                dim: uint("dim")?,
                min_period: float("min_period")?,
                max_period: float("max_period")?,
            },
            other => return Err(format!("unknown op kind `{other}`")),
        })
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One op invocation: its hierarchical name and its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub name: String,
    pub kind: OpKind,
}

impl Op {
    pub fn new(name: impl Into<String>, kind: OpKind) -> Op {
        Op {
            name: name.into(),
            kind,
        }
    }
}

/// Why an op did not produce an output.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum OpError {
    /// The backend has no implementation of this op kind (the tracer falls back to the host).
    #[error("backend `{backend}` does not support op kind `{kind}`")]
    Unsupported { backend: String, kind: &'static str },
    /// The op's inputs violate its contract (shapes, arity, layouts).
    #[error("invalid input to {kind}: {message}")]
    Invalid { kind: &'static str, message: String },
    /// The device raised (a TT-NN error text, for instance).
    #[error("{message}")]
    Device { message: String },
}

impl OpError {
    pub fn invalid(kind: &OpKind, message: impl Into<String>) -> OpError {
        OpError::Invalid {
            kind: kind.as_str(),
            message: message.into(),
        }
    }
}

/// A device (or the reference). Every op of every module is executed through `exec`.
pub trait Backend: Send + Sync {
    /// Short name: `cpu`, `emu`, `tt`.
    fn name(&self) -> &str;
    /// Precision profile in effect (`exact` for the reference).
    fn profile(&self) -> &str {
        "exact"
    }
    /// Runs one op. `inputs` are activations followed by parameters, in the order the op
    /// kind documents.
    fn exec(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, OpError>;
    /// Brings a host tensor (golden input or checkpoint parameter) onto the device, applying
    /// the device's storage format for it. The reference returns it unchanged.
    fn upload(&self, _name: &str, tensor: Tensor) -> Result<Tensor, OpError> {
        Ok(tensor)
    }
    /// The effective precision config this backend applies to `op` (dtypes, fidelity,
    /// accumulation…), recorded with the op for the TUI and reports. `None` for the reference.
    fn precision(&self, _op: &Op) -> Option<serde_json::Value> {
        None
    }
    /// What the reference should receive in place of `input` in the local check: the host
    /// value of a parameter this device stored lossily (a bfloat4_b weight, say), so that a
    /// weight's storage quantisation counts as the consuming op's own error. `None` (the
    /// default): `input` itself — activations are compared on the device's own values.
    fn reference_input(&self, _input: &Tensor) -> Option<Tensor> {
        None
    }
}

/// Builds a device backend by its command-line name.
///
/// `profile` selects the precision of `emu`: `None` → `bf16-hifi2`, a path ending in `.toml`
/// → that file, else a preset name (see [`emu::profile`]).
///
/// # Errors
/// An unknown or not-yet-available backend, with the list of known ones; an unknown or
/// invalid emu profile, with the list of presets.
pub fn by_name(name: &str, profile: Option<&str>) -> Result<Box<dyn Backend>, String> {
    match name {
        "cpu" => match profile {
            None | Some("exact") => Ok(Box::new(cpu::CpuBackend::default())),
            Some(p) => Err(format!(
                "the cpu backend is the f32 reference and has no precision profile `{p}` (use --backend emu)"
            )),
        },
        "tt" => tt::TtBackend::open(profile)
            .map(|b| Box::new(b) as Box<dyn Backend>)
            .map_err(|e| e.to_string()),
        "emu" => emu::EmuBackend::by_profile(profile)
            .map(|b| Box::new(b) as Box<dyn Backend>)
            .map_err(|e| {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                msg
            }),
        other => Err(format!("unknown backend `{other}` (available: cpu, emu, tt)")),
    }
}
