//! `emu`: a Tensix numerics emulator. It reproduces, op by op, the numeric error a TT-NN model
//! sees on a Wormhole, so a run predicts which layer fails — and which op diverges first —
//! before hardware is available. Facts and their sources: docs/TT_NUMERICS.md (cited by
//! section beside each rule).
//!
//! * Storage ([`format`]): every tensor is held as the f32 values its device dtype decodes to;
//!   [`TensorMeta`] carries dtype, layout (TILE for everything but integer ids and embedding
//!   tables), the tile-padded shape and the memory config. Uploads round on the host (RNE,
//!   host block-float packing), op outputs on the device (packer: ties away).
//! * Matrix engine ([`matmul`], [`simd`]): operand roles, fidelity bit planes, per-face Dst
//!   accumulation with bf16 or fp32 Dst, K-block spill or packer L1 accumulation, output
//!   packing; defaults per op as TT-NN chooses them (§3.5).
//! * SFPU ([`sfpu`]): approximate and accurate exp, reciprocal, (r)sqrt, GELU, tanh, sigmoid.
//! * Composite ops (norms, softmax, SDPA, RoPE, time embedding) are composed from these
//!   primitives the way TT-NN's kernels and TT's pi0 port do them (§4.7, §4.8, §8).
//! * TT-NN's validation ([`validate`]) raises `OpError::Device` with TT_FATAL-style text.
//! * Precision comes from a [`Profile`] (presets or a TOML file of op-name glob rules);
//!   [`Backend::precision`] reports the effective config of each op.
//!
//! Parameters stored lossily (e.g. bfloat4_b weights) keep their host values aside:
//! [`Backend::reference_input`] hands them to the local check, so a weight's storage
//! quantisation is charged to the op that consumes it.

mod attention;
mod cache;
mod eltwise;
pub mod format;
mod host;
mod linear;
pub mod matmul;
mod norm;
pub mod profile;
pub mod sfpu;
pub mod simd;
mod validate;
pub mod weights;

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Map, Value};

use crate::backend::cpu::CpuBackend;
use crate::backend::{Backend, Op, OpError, OpKind};
use crate::tensor::{shape_string, DType, Layout, MemoryConfig, Tensor, TensorMeta};

pub use profile::{Math, MathFidelity, Profile, ProfileError, Settings, PRESETS};

use format::Side;

/// The emulator backend (`emu`).
pub struct EmuBackend {
    profile: Profile,
    threads: usize,
    cpu: CpuBackend,
    /// Host values of parameters whose upload changed them (by checkpoint name).
    host_params: Mutex<HashMap<String, Tensor>>,
    /// Output dtype of every op run so far, for uploads of golden activations of the same name.
    produced: Mutex<HashMap<String, DType>>,
    /// Effective config of the last run of each op, until [`Backend::precision`] reads it.
    precision: Mutex<HashMap<String, Value>>,
    /// Packed weight planes of checkpoint parameters.
    packed: cache::WeightCache,
}

impl EmuBackend {
    /// An emulator using every available core.
    pub fn new(profile: Profile) -> EmuBackend {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        EmuBackend::with_threads(profile, threads)
    }

    /// An emulator using at most `threads` cores for large matmuls and attention.
    pub fn with_threads(profile: Profile, threads: usize) -> EmuBackend {
        EmuBackend {
            profile,
            threads: threads.max(1),
            cpu: CpuBackend::with_threads(threads.max(1)),
            host_params: Mutex::new(HashMap::new()),
            produced: Mutex::new(HashMap::new()),
            precision: Mutex::new(HashMap::new()),
            packed: cache::WeightCache::default(),
        }
    }

    /// Builds the profile named on the command line (see [`Profile::by_name`]).
    pub fn by_profile(spec: Option<&str>) -> Result<EmuBackend, ProfileError> {
        Profile::by_name(spec).map(EmuBackend::new)
    }

    pub fn profile_ref(&self) -> &Profile {
        &self.profile
    }

    fn settings(&self, op: &Op) -> (Settings, Vec<String>) {
        self.profile
            .resolve(&[op.name.as_str()], Some(op.kind.as_str()))
    }

    fn run(&self, op: &Op, inputs: &[&Tensor], cx: &Ctx<'_>) -> Result<(Tensor, Value), OpError> {
        let k = &op.kind;
        let arity = |lo: usize, hi: usize| -> Result<(), OpError> {
            if (lo..=hi).contains(&inputs.len()) {
                Ok(())
            } else {
                let got: Vec<String> = inputs.iter().map(|t| shape_string(t.shape())).collect();
                Err(OpError::invalid(
                    k,
                    format!(
                        "expected {} inputs, got {} ({})",
                        if lo == hi {
                            lo.to_string()
                        } else if hi == usize::MAX {
                            format!("at least {lo}")
                        } else {
                            format!("{lo} to {hi}")
                        },
                        inputs.len(),
                        got.join(", ")
                    ),
                ))
            }
        };
        match k {
            OpKind::Linear => {
                arity(2, 3)?;
                linear::linear(cx, inputs[0], inputs[1], inputs.get(2).copied())
            }
            OpKind::Conv2dPatch { patch } => {
                arity(2, 3)?;
                linear::conv2d_patch(cx, *patch, inputs[0], inputs[1], inputs.get(2).copied())
            }
            OpKind::LayerNorm { eps } => {
                arity(3, 3)?;
                norm::layer_norm(cx, inputs[0], inputs[1], inputs[2], *eps)
            }
            OpKind::RmsNorm { eps, offset } => {
                arity(2, 2)?;
                norm::rms_norm(cx, inputs[0], inputs[1], *eps, *offset)
            }
            OpKind::Add | OpKind::Mul => {
                arity(2, 2)?;
                eltwise::binary(cx, inputs[0], inputs[1])
            }
            OpKind::MulScalar { value } => {
                arity(1, 1)?;
                eltwise::mul_scalar(cx, inputs[0], *value)
            }
            OpKind::Gelu { .. } | OpKind::Silu => {
                arity(1, 1)?;
                eltwise::unary(cx, inputs[0])
            }
            OpKind::Rope { theta, head_dim } => {
                arity(2, 2)?;
                attention::rope(cx, inputs[0], inputs[1], *theta, *head_dim)
            }
            OpKind::Sdpa {
                q_heads,
                kv_heads,
                head_dim,
                scale,
            } => {
                arity(3, 4)?;
                let heads = attention::Heads {
                    q: *q_heads,
                    kv: *kv_heads,
                    dim: *head_dim,
                };
                attention::sdpa(
                    cx,
                    [inputs[0], inputs[1], inputs[2]],
                    inputs.get(3).copied(),
                    heads,
                    *scale,
                )
            }
            OpKind::TimeEmbed {
                dim,
                min_period,
                max_period,
            } => {
                arity(1, 1)?;
                host::time_embed(cx, inputs[0], *dim, *min_period, *max_period)
            }
            OpKind::Embedding => {
                arity(2, 2)?;
                host::embedding(cx, inputs)
            }
            OpKind::Full { .. } => {
                arity(0, 0)?;
                host::computed(cx, inputs, self.profile.activation_dtype, Side::Host)
            }
            OpKind::AttnMask2d { .. } | OpKind::Positions | OpKind::InterpolateBicubic { .. } => {
                host::computed(cx, inputs, self.profile.activation_dtype, Side::Host)
            }
            OpKind::Concat { .. }
            | OpKind::Slice { .. }
            | OpKind::Reshape { .. }
            | OpKind::Expand { .. }
            | OpKind::RepeatInterleave { .. } => {
                arity(1, usize::MAX)?;
                host::movement(cx, inputs)
            }
        }
    }
}

/// What an op implementation sees.
pub(crate) struct Ctx<'a> {
    pub op: &'a Op,
    pub set: Settings,
    pub threads: usize,
    pub cpu: &'a CpuBackend,
    pub packed: &'a cache::WeightCache,
}

impl Ctx<'_> {
    pub fn kind(&self) -> &OpKind {
        &self.op.kind
    }

    /// Whether the op runs the Tensix model (else the reference arithmetic).
    pub fn tensix(&self) -> bool {
        self.set.math != Some(Math::Reference)
    }

    pub fn memory(&self) -> MemoryConfig {
        self.set.memory.unwrap_or(MemoryConfig::DRAM)
    }

    /// The output dtype: the profile's, else TT-NN's default (the first input's).
    pub fn out_dtype(&self, input: DType) -> DType {
        self.set.dtype.unwrap_or(input)
    }

    /// A stored output tensor: `data` rounded to `dtype` by `side`, with its metadata.
    pub fn output(
        &self,
        shape: &[usize],
        mut data: Vec<f32>,
        dtype: DType,
        layout: Layout,
        side: Side,
    ) -> Result<Tensor, OpError> {
        validate::storage(dtype, layout)?;
        let width = shape.last().copied().unwrap_or(1);
        format::store(&mut data, width, dtype, side);
        let len = data.len();
        let t = Tensor::from_vec(shape, data).ok_or_else(|| {
            OpError::invalid(
                self.kind(),
                format!(
                    "internal: {len} elements do not fill output shape {}",
                    shape_string(shape)
                ),
            )
        })?;
        Ok(t.with_meta(meta(shape, dtype, layout, self.memory())))
    }

    /// The op on the reference arithmetic, stored in `dtype` (`math = "reference"`).
    pub fn reference(&self, inputs: &[&Tensor], dtype: DType) -> Result<(Tensor, Value), OpError> {
        let out = Backend::exec(self.cpu, self.op, inputs)?;
        let layout = if dtype == DType::U32 {
            Layout::RowMajor
        } else {
            Layout::Tile
        };
        let t = self.output(
            out.shape(),
            out.as_slice().into_owned(),
            dtype,
            layout,
            Side::Device,
        )?;
        Ok((t, json!({ "dtype": dtype.as_str() })))
    }
}

/// Device metadata of a tensor.
pub(crate) fn meta(
    shape: &[usize],
    dtype: DType,
    layout: Layout,
    memory: MemoryConfig,
) -> TensorMeta {
    TensorMeta {
        dtype,
        layout,
        memory,
        shape: shape.to_vec(),
        padded_shape: format::padded_shape(shape, layout),
    }
}

fn merge(into: &mut Map<String, Value>, v: Value) {
    if let Value::Object(m) = v {
        into.extend(m);
    }
}

impl Backend for EmuBackend {
    fn name(&self) -> &str {
        "emu"
    }

    fn profile(&self) -> &str {
        self.profile.name()
    }

    fn exec(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let (set, rules) = self.settings(op);
        let cx = Ctx {
            op,
            set,
            threads: self.threads,
            cpu: &self.cpu,
            packed: &self.packed,
        };
        let (out, detail) = self.run(op, inputs, &cx)?;
        let mut p = Map::new();
        p.insert("profile".into(), json!(self.profile.name()));
        p.insert(
            "math".into(),
            json!(if cx.tensix() { "tensix" } else { "reference" }),
        );
        merge(&mut p, detail);
        p.insert("rules".into(), json!(rules));
        if let Ok(mut m) = self.precision.lock() {
            m.insert(op.name.clone(), Value::Object(p));
        }
        if let Ok(mut m) = self.produced.lock() {
            m.insert(op.name.clone(), out.meta.dtype);
        }
        Ok(out)
    }

    fn upload(&self, name: &str, tensor: Tensor) -> Result<Tensor, OpError> {
        let shape = tensor.shape().to_vec();
        let (dtype, layout, param) = match weights::consumers(name) {
            Some(cons) => {
                let pairs: Vec<(&str, &str)> =
                    cons.iter().map(|c| (c.op.as_str(), c.kind)).collect();
                let (set, _) = self.profile.resolve_consumers(&pairs);
                let dtype = if name.ends_with(".bias") {
                    set.bias_dtype
                } else {
                    set.weight_dtype
                }
                .unwrap_or(self.profile.activation_dtype);
                let layout = if cons.iter().any(|c| c.row_major) {
                    Layout::RowMajor
                } else {
                    Layout::Tile
                };
                (dtype, layout, true)
            }
            None => {
                let known = self.produced.lock().ok().and_then(|m| m.get(name).copied());
                let dtype = known.unwrap_or_else(|| {
                    self.profile
                        .resolve(&[name], None)
                        .0
                        .dtype
                        .unwrap_or(self.profile.activation_dtype)
                });
                let layout = if dtype == DType::U32 {
                    Layout::RowMajor
                } else {
                    Layout::Tile
                };
                (dtype, layout, false)
            }
        };
        validate::storage(dtype, layout).map_err(|e| OpError::Device {
            message: format!("upload `{name}`: {e}"),
        })?;
        let mut data = tensor.as_slice().into_owned();
        let width = shape.last().copied().unwrap_or(1);
        format::store(&mut data, width, dtype, Side::Host);
        let changed = param
            && data
                .iter()
                .zip(tensor.as_slice().iter())
                .any(|(a, b)| a.to_bits() != b.to_bits());
        let mut out = Tensor::from_vec(&shape, data)
            .ok_or_else(|| OpError::Device {
                message: format!("upload `{name}`: data does not fill its shape"),
            })?
            .with_meta(meta(&shape, dtype, layout, MemoryConfig::DRAM));
        out.origin = tensor.origin.clone();
        if changed {
            if let Ok(mut m) = self.host_params.lock() {
                m.insert(name.to_string(), tensor);
            }
        }
        Ok(out)
    }

    fn precision(&self, op: &Op) -> Option<Value> {
        if let Some(v) = self
            .precision
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&op.name))
        {
            return Some(v);
        }
        let (set, rules) = self.settings(op);
        let mut p = Map::new();
        p.insert("profile".into(), json!(self.profile.name()));
        merge(&mut p, set.to_json());
        p.insert("rules".into(), json!(rules));
        Some(Value::Object(p))
    }

    fn reference_input(&self, input: &Tensor) -> Option<Tensor> {
        let name = input.origin.as_deref()?;
        let host = self.host_params.lock().ok()?.get(name).cloned()?;
        (host.shape() == input.shape()).then_some(host)
    }
}
