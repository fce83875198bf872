//! The precision knobs the `tt` backend applies through TT-NN, per op.
//!
//! [`OpPrecision`] is exactly what reaches the device for one op: storage dtypes (weights,
//! activations/outputs) and the `ComputeKernelConfig` fields. [`TtPrecision`] maps op names to
//! it: a named default plus glob overrides, looked up with [`TtPrecision::for_op`]. The presets
//! are uniform (no overrides):
//!
//! | preset | weights | activations / outputs | fidelity | fp32 dest acc | packer L1 acc | approx |
//! |---|---|---|---|---|---|---|
//! | `exact` | f32 | f32 | HiFi4 | on | off | off |
//! | `bf16-hifi2` | bf16 | bf16 | HiFi2 | off | on | off |
//! | `bf16-hifi4-fp32acc` | bf16 | bf16 | HiFi4 | on | off | off |
//! | `bfp8-lofi` | bfloat8_b | bf16 | LoFi | off | on | on |
//! | `bfp4-lofi` | bfloat4_b | bf16 | LoFi | off | on | on |
//!
//! "Weights" are the second operand of `linear` / `conv2d_patch`; biases, norm weights and
//! embedding tables follow the activation dtype (f32 or bf16 only — TT-NN's norms take nothing
//! else; the embedding table is always BFLOAT16, see the backend docs). Packer L1 accumulation is
//! off with an fp32 dest, TT-NN's own rule (TT_NUMERICS §3.4).

use globset::{Glob, GlobMatcher};
use serde_json::{json, Value};

use crate::tensor::DType;

/// `MathFidelity` of the matrix engine (TT_NUMERICS §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MathFidelity {
    LoFi,
    HiFi2,
    HiFi3,
    HiFi4,
}

impl MathFidelity {
    /// As TT-NN's Python API prints it: `LoFi`, `HiFi2`, …
    pub fn as_str(self) -> &'static str {
        match self {
            MathFidelity::LoFi => "LoFi",
            MathFidelity::HiFi2 => "HiFi2",
            MathFidelity::HiFi3 => "HiFi3",
            MathFidelity::HiFi4 => "HiFi4",
        }
    }
}

/// The settings one op runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpPrecision {
    /// Storage dtype of matmul weights (`linear`, `conv2d_patch`).
    pub weight_dtype: DType,
    /// Storage dtype of activations: op inputs, op outputs and the other parameters.
    pub act_dtype: DType,
    pub math_fidelity: MathFidelity,
    pub fp32_dest_acc: bool,
    pub packer_l1_acc: bool,
    /// `math_approx_mode` (SFPU approximations) and the `fast_and_approximate_mode` of
    /// element-wise ops.
    pub math_approx: bool,
}

impl OpPrecision {
    /// The record written beside each op in reports.
    pub fn to_json(&self) -> Value {
        json!({
            "weight_dtype": self.weight_dtype.as_str(),
            "act_dtype": self.act_dtype.as_str(),
            "math_fidelity": self.math_fidelity.as_str(),
            "fp32_dest_acc": self.fp32_dest_acc,
            "packer_l1_acc": self.packer_l1_acc,
            "math_approx": self.math_approx,
        })
    }
}

/// A named precision configuration: a default and glob overrides by op name.
#[derive(Debug, Clone)]
pub struct TtPrecision {
    name: String,
    default: OpPrecision,
    overrides: Vec<(String, GlobMatcher, OpPrecision)>,
}

impl TtPrecision {
    /// The preset names, in order of decreasing precision.
    pub const PRESETS: [&'static str; 5] = [
        "exact",
        "bf16-hifi2",
        "bf16-hifi4-fp32acc",
        "bfp8-lofi",
        "bfp4-lofi",
    ];

    /// The preset used when none is named.
    pub const DEFAULT: &'static str = "bf16-hifi2";

    /// A preset by name.
    pub fn preset(name: &str) -> Option<TtPrecision> {
        let p = |weight_dtype, act_dtype, math_fidelity, fp32_dest_acc, math_approx| OpPrecision {
            weight_dtype,
            act_dtype,
            math_fidelity,
            fp32_dest_acc,
            packer_l1_acc: !fp32_dest_acc,
            math_approx,
        };
        use MathFidelity::*;
        let default = match name {
            "exact" => p(DType::F32, DType::F32, HiFi4, true, false),
            "bf16-hifi2" => p(DType::Bf16, DType::Bf16, HiFi2, false, false),
            "bf16-hifi4-fp32acc" => p(DType::Bf16, DType::Bf16, HiFi4, true, false),
            "bfp8-lofi" => p(DType::Bfloat8B, DType::Bf16, LoFi, false, true),
            "bfp4-lofi" => p(DType::Bfloat4B, DType::Bf16, LoFi, false, true),
            _ => return None,
        };
        Some(TtPrecision::uniform(name, default))
    }

    /// One setting for every op.
    pub fn uniform(name: impl Into<String>, default: OpPrecision) -> TtPrecision {
        TtPrecision {
            name: name.into(),
            default,
            overrides: Vec::new(),
        }
    }

    /// Ops whose full name matches `pattern` (a glob; `*` also matches dots) use `p`; later
    /// overrides win.
    ///
    /// # Errors
    /// An invalid glob, with the pattern in the message.
    pub fn with_override(mut self, pattern: &str, p: OpPrecision) -> Result<TtPrecision, String> {
        let glob = Glob::new(pattern)
            .map_err(|e| format!("precision override pattern `{pattern}`: {e}"))?
            .compile_matcher();
        self.overrides.push((pattern.to_string(), glob, p));
        Ok(self)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The settings for the op named `op_name`.
    pub fn for_op(&self, op_name: &str) -> OpPrecision {
        self.overrides
            .iter()
            .rev()
            .find(|(_, g, _)| g.is_match(op_name))
            .map_or(self.default, |(_, _, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_uniform_and_named() {
        for name in TtPrecision::PRESETS {
            let p = TtPrecision::preset(name).unwrap();
            assert_eq!(p.name(), name);
            assert_eq!(
                p.for_op("siglip.layers.0.attn.q"),
                p.for_op("denoise.9.euler")
            );
        }
        let exact = TtPrecision::preset("exact").unwrap().for_op("x");
        assert_eq!(
            (exact.weight_dtype, exact.act_dtype),
            (DType::F32, DType::F32)
        );
        assert!(exact.fp32_dest_acc && !exact.packer_l1_acc);
        let b8 = TtPrecision::preset("bfp8-lofi").unwrap().for_op("x");
        assert_eq!(b8.weight_dtype, DType::Bfloat8B);
        assert_eq!(b8.act_dtype, DType::Bf16);
        assert_eq!(b8.math_fidelity, MathFidelity::LoFi);
        assert!(TtPrecision::preset("bf17").is_none());
        assert!(TtPrecision::PRESETS.contains(&TtPrecision::DEFAULT));
    }

    #[test]
    fn overrides_match_globs_and_later_ones_win() {
        let base = TtPrecision::preset("bf16-hifi2").unwrap();
        let hi = TtPrecision::preset("bf16-hifi4-fp32acc")
            .unwrap()
            .for_op("");
        let lo = TtPrecision::preset("bfp4-lofi").unwrap().for_op("");
        let p = base
            .with_override("vlm.layers.*.mlp.*", lo)
            .unwrap()
            .with_override("vlm.layers.3.*", hi)
            .unwrap();
        assert_eq!(p.for_op("vlm.layers.2.mlp.up"), lo);
        assert_eq!(p.for_op("vlm.layers.3.mlp.up"), hi);
        assert_eq!(
            p.for_op("siglip.post_ln").math_fidelity,
            MathFidelity::HiFi2
        );
        assert!(TtPrecision::preset("exact")
            .unwrap()
            .with_override("[", hi)
            .unwrap_err()
            .contains("`[`"));
    }

    #[test]
    fn json_names_every_knob() {
        let j = TtPrecision::preset("bfp8-lofi")
            .unwrap()
            .for_op("a")
            .to_json();
        assert_eq!(j["weight_dtype"], "bfloat8_b");
        assert_eq!(j["math_fidelity"], "LoFi");
        assert_eq!(j["packer_l1_acc"], true);
    }
}
