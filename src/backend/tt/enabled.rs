//! The `tt` backend over `tt-metal-sys`: every op kind mapped to TT-NN calls through the C ABI.
//!
//! # Device residency
//! An op's output stays on the device: the returned [`Tensor`] carries its host copy (read back
//! for the checks, with the device's own dtype, layout, padded shape and memory config in
//! [`TensorMeta`]) and, in its [`DeviceHandle`], the device tensor itself. The next op uses the
//! device tensor; when it needs another form (dtype, layout, shape) the backend converts *on the
//! device* (`reshape`, `to_layout`, `typecast`) and caches that form beside the first. Uploaded
//! host tensors (golden inputs, checkpoint parameters) get their device form lazily, from the
//! host data, in the form their first consumer needs (a linear weight in the weight dtype, a
//! norm weight as a `[1, D]` row, an embedding table as ROW_MAJOR BFLOAT16, token ids as
//! UINT32), and keep it for later consumers.
//!
//! # How each op kind runs
//! | kind | on the device |
//! |---|---|
//! | linear | `ttnn::linear(x, w, bias, transpose_b)` |
//! | conv2d_patch | `reshape` → `permute` → `reshape` (patch unfold) → `ttnn::linear` |
//! | layer_norm / rms_norm | `ttnn::layer_norm` / `ttnn::rms_norm`; rms weights as `offset + w`, precomputed on the host (as TT's Gemma ports do) |
//! | add, mul, mul_scalar | `ttnn::add` / `ttnn::multiply` (TT-NN's broadcasting rules apply) |
//! | gelu, silu | `ttnn::gelu` (tanh variant for `approx = tanh`), `ttnn::silu` |
//! | embedding | `ttnn::embedding` over a BFLOAT16 table; with f32 activations, three gathers over an exact bf16 split of the table summed in f32 (lossless) |
//! | concat, slice, reshape | `ttnn::concat`, `ttnn::slice`, `ttnn::reshape` |
//! | expand, repeat_interleave | `ttnn::concat` of copies (with reshapes) |
//! | full | a host buffer written to the device |
//! | rope | `ttnn::experimental::rotary_embedding` when `head_dim % 64 == 0`, else slice / multiply / concat / add; cos/sin tables computed on the host for the op's positions |
//! | sdpa | `ttnn::transformer::scaled_dot_product_attention` for BF16/BFP8/BFP4 activations with `head_dim % 32 == 0`, else matmul → scale → mask add → softmax → matmul |
//! | interpolate_bicubic, attn_mask_2d, positions, time_embed | host fallback (no TT-NN op): [`OpError::Unsupported`] |
//!
//! TT-NN errors (TT_FATAL / TT_THROW text, parsed by the shim) become [`OpError::Device`]
//! naming the shim entry point, the TT-NN source location and the message; a composite names
//! the step that failed.

use std::sync::{Arc, Mutex};

use tt_metal_sys as sys;

use super::host::{bf16_split, rope_tables};
use super::{profile, MathFidelity, OpPrecision, TtBackendError, TtPrecision};
use crate::backend::{Backend, GeluApprox, Op, OpError, OpKind};
use crate::tensor::{
    shape_string, BufferType, DType, DeviceHandle, Layout, MemoryConfig, MemoryLayout, Tensor,
    TensorMeta,
};

const BACKEND: &str = "tt";

/// Derived host data a device form is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// The tensor's own values.
    Plain,
    /// `offset + w` (f32 bits of the offset).
    Offset(u32),
    /// Part `i` of [`bf16_split`].
    SplitPart(u8),
}

/// One device form of a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Want {
    dtype: sys::DType,
    layout: sys::Layout,
    dims: Vec<usize>,
    tag: Tag,
}

impl Want {
    fn new(dtype: sys::DType, layout: sys::Layout, dims: &[usize]) -> Want {
        Want {
            dtype,
            layout,
            dims: dims.to_vec(),
            tag: Tag::Plain,
        }
    }
    fn tagged(mut self, tag: Tag) -> Want {
        self.tag = tag;
        self
    }
}

/// The device forms of one host tensor.
struct Slot {
    dev: sys::Device,
    /// Whether the tensor was produced on the device (its first form is the op's output, and
    /// other forms are converted from it on the device); uploaded tensors make every form from
    /// their exact host data instead.
    produced: bool,
    forms: Mutex<Vec<(Want, Arc<sys::Tensor>)>>,
}

impl Slot {
    fn new(dev: sys::Device, produced: bool) -> Slot {
        Slot {
            dev,
            produced,
            forms: Mutex::new(Vec::new()),
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Want, Arc<sys::Tensor>)>> {
        self.forms.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn find(&self, want: &Want) -> Option<Arc<sys::Tensor>> {
        self.lock()
            .iter()
            .find(|(w, _)| w == want)
            .map(|(_, t)| Arc::clone(t))
    }
    fn primary(&self) -> Option<(Want, Arc<sys::Tensor>)> {
        if !self.produced {
            return None;
        }
        self.lock()
            .iter()
            .find(|(w, _)| w.tag == Tag::Plain)
            .map(|(w, t)| (w.clone(), Arc::clone(t)))
    }
    fn insert(&self, want: Want, t: Arc<sys::Tensor>) {
        self.lock().push((want, t));
    }
}

fn sys_dtype(d: DType) -> sys::DType {
    match d {
        DType::F32 => sys::DType::F32,
        DType::Bf16 => sys::DType::Bf16,
        DType::Bfloat8B => sys::DType::Bfp8,
        DType::Bfloat4B => sys::DType::Bfp4,
        DType::U32 => sys::DType::U32,
    }
}

fn host_dtype(d: sys::DType) -> Option<DType> {
    Some(match d {
        sys::DType::F32 => DType::F32,
        sys::DType::Bf16 => DType::Bf16,
        sys::DType::Bfp8 => DType::Bfloat8B,
        sys::DType::Bfp4 => DType::Bfloat4B,
        sys::DType::U32 => DType::U32,
        sys::DType::I32 | sys::DType::U16 | sys::DType::U8 => return None,
    })
}

fn fidelity(f: MathFidelity) -> sys::MathFidelity {
    match f {
        MathFidelity::LoFi => sys::MathFidelity::LoFi,
        MathFidelity::HiFi2 => sys::MathFidelity::HiFi2,
        MathFidelity::HiFi3 => sys::MathFidelity::HiFi3,
        MathFidelity::HiFi4 => sys::MathFidelity::HiFi4,
    }
}

/// A failed TT-NN call as an op error; `step` names the call inside a composite.
fn dev_err(step: &str) -> impl FnOnce(sys::TtError) -> OpError + '_ {
    move |e| OpError::Device {
        message: if step.is_empty() {
            e.to_string()
        } else {
            format!("{step}: {e}")
        },
    }
}

/// The `tt` backend: one device, one precision configuration.
pub struct TtBackend {
    dev: sys::Device,
    precision: TtPrecision,
}

impl TtBackend {
    /// Opens device 0 with the named precision preset (`None` = [`TtPrecision::DEFAULT`]).
    pub fn open(profile_name: Option<&str>) -> Result<TtBackend, TtBackendError> {
        TtBackend::with_precision(0, profile(profile_name)?)
    }

    /// Opens `device_id` with an explicit precision configuration.
    pub fn with_precision(
        device_id: i32,
        precision: TtPrecision,
    ) -> Result<TtBackend, TtBackendError> {
        let dev = sys::Device::open(device_id).map_err(|e| TtBackendError::Device {
            id: device_id,
            message: e.to_string(),
        })?;
        Ok(TtBackend { dev, precision })
    }

    /// Which implementation of the ABI is linked: `tt-metal` or `host`.
    pub fn implementation() -> Option<&'static str> {
        Some(sys::implementation())
    }

    /// The shim's build description (tree, commit, compiler, GELU mapping).
    pub fn build_info() -> &'static str {
        sys::build_info()
    }

    pub fn precision_config(&self) -> &TtPrecision {
        &self.precision
    }

    fn slot<'t>(&self, t: &'t Tensor) -> Option<&'t Slot> {
        t.device()
            .and_then(|h| h.downcast_ref::<Slot>())
            .filter(|s| s.dev.same(&self.dev))
    }

    /// The device form `want` of `t`: cached, converted on the device from the tensor's own
    /// device form, or made from its host data.
    fn prepare(&self, t: &Tensor, want: Want) -> Result<Arc<sys::Tensor>, OpError> {
        let slot = self.slot(t);
        if let Some(f) = slot.and_then(|s| s.find(&want)) {
            return Ok(f);
        }
        if want.tag == Tag::Plain && want.dtype != sys::DType::U32 {
            if let Some((have, dt)) = slot.and_then(Slot::primary) {
                let conv = Arc::new(self.convert(&have, &dt, &want)?);
                if let Some(s) = slot {
                    s.insert(want, Arc::clone(&conv));
                }
                return Ok(conv);
            }
        }
        let t2 = Arc::new(self.upload_form(t, &want)?);
        if let Some(s) = slot {
            s.insert(want, Arc::clone(&t2));
        }
        Ok(t2)
    }

    /// Converts a device tensor to another form with TT-NN's own data-movement ops.
    fn convert(&self, have: &Want, t: &sys::Tensor, want: &Want) -> Result<sys::Tensor, OpError> {
        let none = sys::OpOptions::default();
        let mut cur: Option<sys::Tensor> = None;
        let mut layout = have.layout;
        if have.dims != want.dims {
            let r = self
                .dev
                .reshape(cur.as_ref().unwrap_or(t), &want.dims, &none)
                .map_err(dev_err("reshape input"))?;
            cur = Some(r);
        }
        if have.dtype != want.dtype {
            if layout != sys::Layout::Tile {
                let r = self
                    .dev
                    .to_layout(cur.as_ref().unwrap_or(t), sys::Layout::Tile, &none)
                    .map_err(dev_err("tilize input"))?;
                cur = Some(r);
                layout = sys::Layout::Tile;
            }
            let r = self
                .dev
                .typecast(cur.as_ref().unwrap_or(t), want.dtype, &none)
                .map_err(dev_err("typecast input"))?;
            cur = Some(r);
        }
        if layout != want.layout {
            let r = self
                .dev
                .to_layout(cur.as_ref().unwrap_or(t), want.layout, &none)
                .map_err(dev_err("change input layout"))?;
            cur = Some(r);
        }
        match cur {
            Some(c) => Ok(c),
            // Same dtype, layout and dims but another tag cannot reach here (tags are host-made).
            None => self
                .dev
                .reshape(t, &want.dims, &none)
                .map_err(dev_err("copy input")),
        }
    }

    /// Uploads the host data a form is made of.
    fn upload_form(&self, t: &Tensor, want: &Want) -> Result<sys::Tensor, OpError> {
        let src = t.as_slice();
        let n: usize = want.dims.iter().product();
        if src.len() != n {
            return Err(OpError::Invalid {
                kind: "upload",
                message: format!(
                    "{} values cannot fill device shape {}",
                    src.len(),
                    shape_string(&want.dims)
                ),
            });
        }
        let data: Vec<f32> = match want.tag {
            Tag::Plain => src.into_owned(),
            Tag::Offset(bits) => {
                let o = f32::from_bits(bits);
                src.iter().map(|&w| o + w).collect()
            }
            Tag::SplitPart(i) => {
                let [h, m, l] = bf16_split(&src);
                match i {
                    0 => h,
                    1 => m,
                    _ => l,
                }
            }
        };
        if want.dtype == sys::DType::U32 {
            let ids = data
                .iter()
                .map(|&v| {
                    if v >= 0.0 && v.fract() == 0.0 && v < 4_294_967_296.0 {
                        Ok(v as u32)
                    } else {
                        Err(OpError::Invalid {
                            kind: "upload",
                            message: format!("{v} is not a UINT32 index"),
                        })
                    }
                })
                .collect::<Result<Vec<u32>, _>>()?;
            return self
                .dev
                .from_u32(&ids, &want.dims, want.layout, sys::Buffer::Dram)
                .map_err(dev_err("upload"));
        }
        self.dev
            .from_f32(
                &data,
                &want.dims,
                want.dtype,
                want.layout,
                sys::Buffer::Dram,
            )
            .map_err(dev_err("upload"))
    }

    /// Reads an op's device output back into a host tensor that keeps the device tensor.
    fn finish(&self, t: Arc<sys::Tensor>) -> Result<Tensor, OpError> {
        let info = t.info().map_err(dev_err("read output info"))?;
        let data = t.read_f32().map_err(dev_err("read output"))?;
        let dtype = host_dtype(info.dtype).ok_or_else(|| OpError::Device {
            message: format!("output dtype {:?} has no pccscope counterpart", info.dtype),
        })?;
        let meta = TensorMeta {
            dtype,
            layout: match info.layout {
                sys::Layout::Tile => Layout::Tile,
                sys::Layout::RowMajor => Layout::RowMajor,
            },
            memory: MemoryConfig {
                buffer: match info.buffer {
                    Some(sys::Buffer::L1) => BufferType::L1,
                    _ => BufferType::Dram,
                },
                layout: match info.mem_layout {
                    Some(sys::MemLayout::HeightSharded) => MemoryLayout::HeightSharded,
                    Some(sys::MemLayout::WidthSharded) => MemoryLayout::WidthSharded,
                    Some(sys::MemLayout::BlockSharded | sys::MemLayout::NdSharded) => {
                        MemoryLayout::BlockSharded
                    }
                    _ => MemoryLayout::Interleaved,
                },
            },
            shape: info.logical.clone(),
            padded_shape: info.padded.clone(),
        };
        let host = Tensor::from_vec(&info.logical, data)
            .ok_or_else(|| OpError::Device {
                message: format!(
                    "read back fewer values than the output shape {} holds",
                    shape_string(&info.logical)
                ),
            })?
            .with_meta(meta);
        let slot = Slot::new(self.dev.clone(), true);
        slot.insert(Want::new(info.dtype, info.layout, &info.logical), t);
        Ok(host.with_device(DeviceHandle::new(slot)))
    }
}

/// One op being lowered: the backend, the op kind and its precision.
struct Lower<'a> {
    b: &'a TtBackend,
    kind: &'a OpKind,
    p: OpPrecision,
}

impl Lower<'_> {
    fn dev(&self) -> &sys::Device {
        &self.b.dev
    }

    fn act_dtype(&self) -> sys::DType {
        sys_dtype(self.p.act_dtype)
    }

    /// Parameters other than matmul weights: TT-NN's norms take f32 or bf16 only.
    fn param_dtype(&self) -> sys::DType {
        match self.p.act_dtype {
            DType::F32 => sys::DType::F32,
            _ => sys::DType::Bf16,
        }
    }

    fn compute(&self) -> sys::ComputeConfig {
        sys::ComputeConfig {
            math_fidelity: Some(fidelity(self.p.math_fidelity)),
            math_approx_mode: Some(self.p.math_approx),
            fp32_dest_acc_en: Some(self.p.fp32_dest_acc),
            packer_l1_acc: Some(self.p.packer_l1_acc),
            dst_full_sync_en: None,
        }
    }

    /// Options of a compute op: output in the activation dtype, the profile's kernel config.
    fn opts(&self) -> sys::OpOptions {
        sys::OpOptions {
            out_dtype: Some(self.act_dtype()),
            out_buffer: None,
            compute: Some(self.compute()),
        }
    }

    fn invalid(&self, message: impl Into<String>) -> OpError {
        OpError::invalid(self.kind, message)
    }

    /// An activation input: TILE in the activation dtype, its own shape.
    fn act(&self, t: &Tensor) -> Result<Arc<sys::Tensor>, OpError> {
        self.b
            .prepare(t, Want::new(self.act_dtype(), sys::Layout::Tile, t.shape()))
    }

    /// An activation input reshaped on the device to `dims`.
    fn act_as(&self, t: &Tensor, dims: &[usize]) -> Result<Arc<sys::Tensor>, OpError> {
        self.b
            .prepare(t, Want::new(self.act_dtype(), sys::Layout::Tile, dims))
    }

    /// A `[1, N]` row parameter (bias, norm weight) from a `[N]` tensor.
    fn row(&self, t: &Tensor, what: &str, n: usize) -> Result<Arc<sys::Tensor>, OpError> {
        self.row_tagged(t, what, n, Tag::Plain)
    }

    fn row_tagged(
        &self,
        t: &Tensor,
        what: &str,
        n: usize,
        tag: Tag,
    ) -> Result<Arc<sys::Tensor>, OpError> {
        if t.len() != n {
            return Err(self.invalid(format!(
                "{what} {} must hold {n} values",
                shape_string(t.shape())
            )));
        }
        self.b.prepare(
            t,
            Want::new(self.param_dtype(), sys::Layout::Tile, &[1, n]).tagged(tag),
        )
    }

    fn reshape(&self, t: &sys::Tensor, dims: &[usize], step: &str) -> Result<sys::Tensor, OpError> {
        self.dev()
            .reshape(t, dims, &sys::OpOptions::default())
            .map_err(dev_err(step))
    }

    fn permute(&self, t: &sys::Tensor, perm: &[usize], step: &str) -> Result<sys::Tensor, OpError> {
        self.dev()
            .permute(t, perm, &sys::OpOptions::default())
            .map_err(dev_err(step))
    }

    fn concat(&self, ts: &[&sys::Tensor], dim: usize, step: &str) -> Result<sys::Tensor, OpError> {
        self.dev()
            .concat(ts, dim as i32, &sys::OpOptions::default())
            .map_err(dev_err(step))
    }

    /// `t` repeated `n` times along `dim` (a concat of copies).
    fn repeat(
        &self,
        t: &sys::Tensor,
        dim: usize,
        n: usize,
        step: &str,
    ) -> Result<sys::Tensor, OpError> {
        let copies: Vec<&sys::Tensor> = std::iter::repeat_n(t, n).collect();
        self.concat(&copies, dim, step)
    }

    fn linear(&self, inputs: &[&Tensor]) -> Result<sys::Tensor, OpError> {
        let (x, w) = (inputs[0], inputs[1]);
        let &[n, k] = w.shape() else {
            return Err(self.invalid(format!(
                "weight must be [out, in], got {}",
                shape_string(w.shape())
            )));
        };
        if x.shape().last() != Some(&k) {
            return Err(self.invalid(format!(
                "x {} and weight {} disagree on the input width",
                shape_string(x.shape()),
                shape_string(w.shape())
            )));
        }
        let xd = self.act(x)?;
        let wd = self.b.prepare(
            w,
            Want::new(sys_dtype(self.p.weight_dtype), sys::Layout::Tile, &[n, k]),
        )?;
        let bd = inputs.get(2).map(|b| self.row(b, "bias", n)).transpose()?;
        self.dev()
            .linear(&xd, &wd, bd.as_deref(), false, true, None, &self.opts())
            .map_err(dev_err(""))
    }

    fn conv2d_patch(&self, patch: usize, inputs: &[&Tensor]) -> Result<sys::Tensor, OpError> {
        let (img, w) = (inputs[0], inputs[1]);
        let &[nb, c, h, wd] = img.shape() else {
            return Err(self.invalid(format!(
                "images must be [N, C, H, W], got {}",
                shape_string(img.shape())
            )));
        };
        let &[d, wc, p1, p2] = w.shape() else {
            return Err(self.invalid(format!(
                "weight must be [D, C, p, p], got {}",
                shape_string(w.shape())
            )));
        };
        if patch == 0 || wc != c || p1 != patch || p2 != patch || h < patch || wd < patch {
            return Err(self.invalid(format!(
                "weight {} does not fit images {} with patch {patch}",
                shape_string(w.shape()),
                shape_string(img.shape())
            )));
        }
        let (hp, wp) = (h / patch, wd / patch);
        // Patch unfold on the device in ROW_MAJOR (block floats must stay tiled).
        let rm = !matches!(self.p.act_dtype, DType::Bfloat8B | DType::Bfloat4B);
        let layout = if rm {
            sys::Layout::RowMajor
        } else {
            sys::Layout::Tile
        };
        let x = self
            .b
            .prepare(img, Want::new(self.act_dtype(), layout, img.shape()))?;
        let cropped;
        let x: &sys::Tensor = if hp * patch != h || wp * patch != wd {
            cropped = self
                .dev()
                .slice(
                    &x,
                    &[0, 0, 0, 0],
                    &[nb, c, hp * patch, wp * patch],
                    &sys::OpOptions::default(),
                )
                .map_err(dev_err("crop to whole patches"))?;
            &cropped
        } else {
            &x
        };
        let x6 = self.reshape(x, &[nb, c, hp, patch, wp, patch], "split patches")?;
        let xp = self.permute(&x6, &[0, 2, 4, 1, 3, 5], "gather patches")?;
        let x3 = self.reshape(&xp, &[nb, hp * wp, c * patch * patch], "flatten patches")?;
        let x3 = if rm {
            self.dev()
                .to_layout(&x3, sys::Layout::Tile, &sys::OpOptions::default())
                .map_err(dev_err("tilize patches"))?
        } else {
            x3
        };
        let wm = self.b.prepare(
            w,
            Want::new(
                sys_dtype(self.p.weight_dtype),
                sys::Layout::Tile,
                &[d, c * patch * patch],
            ),
        )?;
        let bm = inputs.get(2).map(|b| self.row(b, "bias", d)).transpose()?;
        self.dev()
            .linear(&x3, &wm, bm.as_deref(), false, true, None, &self.opts())
            .map_err(dev_err("patch projection"))
    }

    fn norm(
        &self,
        rms: bool,
        eps: f32,
        offset: f32,
        inputs: &[&Tensor],
    ) -> Result<sys::Tensor, OpError> {
        let x = inputs[0];
        let Some(&d) = x.shape().last() else {
            return Err(self.invalid("x must have rank ≥ 1"));
        };
        let xd = self.act(x)?;
        if rms {
            let tag = if offset == 0.0 {
                Tag::Plain
            } else {
                Tag::Offset(offset.to_bits())
            };
            let w = self.row_tagged(inputs[1], "weight", d, tag)?;
            self.dev()
                .rms_norm(&xd, eps, Some(&w), None, None, &self.opts())
                .map_err(dev_err(""))
        } else {
            let w = self.row(inputs[1], "weight", d)?;
            let b = self.row(inputs[2], "bias", d)?;
            self.dev()
                .layer_norm(&xd, eps, Some(&w), Some(&b), None, &self.opts())
                .map_err(dev_err(""))
        }
    }

    fn embedding(&self, ids: &Tensor, table: &Tensor) -> Result<sys::Tensor, OpError> {
        let &[vocab, d] = table.shape() else {
            return Err(self.invalid(format!(
                "table must be [vocab, D], got {}",
                shape_string(table.shape())
            )));
        };
        let id_dims: Vec<usize> = match ids.shape() {
            [s] => vec![1, *s],
            [b, s] => vec![*b, *s],
            other => {
                return Err(self.invalid(format!(
                    "ids must be [S] or [B, S], got {}",
                    shape_string(other)
                )))
            }
        };
        let idx = self.b.prepare(
            ids,
            Want::new(sys::DType::U32, sys::Layout::RowMajor, &id_dims),
        )?;
        let none = sys::OpOptions::default();
        let gather = |tag: Tag, step: &str| -> Result<sys::Tensor, OpError> {
            let tab = self.b.prepare(
                table,
                Want::new(sys::DType::Bf16, sys::Layout::RowMajor, &[vocab, d]).tagged(tag),
            )?;
            let rows = self
                .dev()
                .embedding(&idx, &tab, sys::Layout::RowMajor, &none)
                .map_err(dev_err(step))?;
            self.dev()
                .to_layout(&rows, sys::Layout::Tile, &none)
                .map_err(dev_err(step))
        };
        let out = if self.p.act_dtype == DType::F32 {
            // Three lossless bf16 gathers summed in f32: hi + (mid + lo) == the f32 row.
            let f32_opts = sys::OpOptions {
                out_dtype: Some(sys::DType::F32),
                ..none
            };
            let mut parts = Vec::with_capacity(3);
            for (i, step) in ["gather hi part", "gather mid part", "gather lo part"]
                .into_iter()
                .enumerate()
            {
                let g = gather(Tag::SplitPart(i as u8), step)?;
                parts.push(
                    self.dev()
                        .typecast(&g, sys::DType::F32, &none)
                        .map_err(dev_err(step))?,
                );
            }
            let ml = self
                .dev()
                .binary(sys::BinaryOp::Add, &parts[1], &parts[2], &f32_opts)
                .map_err(dev_err("sum mid + lo"))?;
            self.dev()
                .binary(sys::BinaryOp::Add, &parts[0], &ml, &f32_opts)
                .map_err(dev_err("sum hi + (mid + lo)"))?
        } else {
            let g = gather(Tag::Plain, "")?;
            if self.act_dtype() == sys::DType::Bf16 {
                g
            } else {
                self.dev()
                    .typecast(&g, self.act_dtype(), &none)
                    .map_err(dev_err("typecast rows"))?
            }
        };
        if ids.shape().len() == 1 {
            self.reshape(&out, &[ids.shape()[0], d], "drop batch axis")
        } else {
            Ok(out)
        }
    }

    fn expand(&self, x: &Tensor, shape: &[usize]) -> Result<Arc<sys::Tensor>, OpError> {
        let s = x.shape();
        if s.len() > shape.len() {
            return Err(self.invalid(format!(
                "cannot expand {} to the lower-rank {}",
                shape_string(s),
                shape_string(shape)
            )));
        }
        let mut dims = vec![1usize; shape.len() - s.len()];
        dims.extend_from_slice(s);
        let mut cur = self.act_as(x, &dims)?;
        for (i, (&have, &want)) in dims.iter().zip(shape).enumerate() {
            if have == want {
                continue;
            }
            if have != 1 {
                return Err(self.invalid(format!(
                    "cannot expand {} to {}: axis {i} is {have}, not 1",
                    shape_string(s),
                    shape_string(shape)
                )));
            }
            cur = Arc::new(self.repeat(&cur, i, want, "repeat along the expanded axis")?);
        }
        Ok(cur)
    }

    fn repeat_interleave(
        &self,
        x: &Tensor,
        dim: usize,
        repeats: usize,
    ) -> Result<sys::Tensor, OpError> {
        let s = x.shape();
        if dim >= s.len() || repeats == 0 {
            return Err(self.invalid(format!(
                "dim {dim} / repeats {repeats} do not fit {}",
                shape_string(s)
            )));
        }
        let mut split = s[..=dim].to_vec();
        split.push(1);
        split.extend_from_slice(&s[dim + 1..]);
        let xs = self.act_as(x, &split)?;
        let rep = self.repeat(&xs, dim + 1, repeats, "repeat each element")?;
        let mut out = s.to_vec();
        out[dim] *= repeats;
        self.reshape(&rep, &out, "merge repeats")
    }

    fn rope(
        &self,
        x: &Tensor,
        pos: &Tensor,
        theta: f32,
        hd: usize,
    ) -> Result<sys::Tensor, OpError> {
        let &[b, t, w] = x.shape() else {
            return Err(self.invalid(format!(
                "x must be [B, T, H·hd], got {}",
                shape_string(x.shape())
            )));
        };
        if hd == 0 || !hd.is_multiple_of(2) || w % hd != 0 {
            return Err(self.invalid(format!(
                "head_dim {hd} must be even, non-zero and divide the width of x {}",
                shape_string(x.shape())
            )));
        }
        let pb = match pos.shape() {
            &[pb, pt] if pt == t && (pb == b || pb == 1) => pb,
            _ => {
                return Err(self.invalid(format!(
                    "positions {} must be [{b}, {t}] or [1, {t}]",
                    shape_string(pos.shape())
                )))
            }
        };
        let heads = w / hd;
        let (cos, sin) = rope_tables(&pos.as_slice(), pb, t, theta, hd);
        let none = sys::OpOptions::default();
        let act = self.act_dtype();
        let upload = |v: &[f32], dims: &[usize], step: &str| {
            self.dev()
                .from_f32(v, dims, act, sys::Layout::Tile, sys::Buffer::Dram)
                .map_err(dev_err(step))
        };
        let x4 = self.act_as(x, &[b, t, heads, hd])?;
        if hd.is_multiple_of(64) && pb == 1 {
            let xh = self.permute(&x4, &[0, 2, 1, 3], "heads first")?;
            let c = upload(&cos, &[1, 1, t, hd], "upload cos")?;
            let s = upload(&sin, &[1, 1, t, hd], "upload sin")?;
            let r = self
                .dev()
                .rotary_embedding(&xh, &c, &s, None, &self.opts())
                .map_err(dev_err("rotary_embedding"))?;
            let info = r.info().map_err(dev_err("rotary_embedding"))?;
            let r = if info.logical[2] != t || info.logical[3] != hd {
                // Without a token index TT-NN rounds the sequence up to whole tiles.
                self.dev()
                    .slice(&r, &[0, 0, 0, 0], &[b, heads, t, hd], &none)
                    .map_err(dev_err("drop tile-padded rows"))?
            } else {
                r
            };
            let back = self.permute(&r, &[0, 2, 1, 3], "tokens first")?;
            return self.reshape(&back, &[b, t, w], "pack heads");
        }
        let half = hd / 2;
        let x1 = self
            .dev()
            .slice(&x4, &[0, 0, 0, 0], &[b, t, heads, half], &none)
            .map_err(dev_err("first half"))?;
        let x2 = self
            .dev()
            .slice(&x4, &[0, 0, 0, half], &[b, t, heads, hd], &none)
            .map_err(dev_err("second half"))?;
        let nx2 = self
            .dev()
            .binary_scalar(sys::BinaryOp::Mul, &x2, -1.0, &self.opts())
            .map_err(dev_err("negate second half"))?;
        let rot = self.concat(&[&nx2, &x1], 3, "rotate halves")?;
        let c = upload(&cos, &[pb, t, 1, hd], "upload cos")?;
        let s = upload(&sin, &[pb, t, 1, hd], "upload sin")?;
        let xc = self
            .dev()
            .binary(sys::BinaryOp::Mul, &x4, &c, &self.opts())
            .map_err(dev_err("x · cos"))?;
        let rs = self
            .dev()
            .binary(sys::BinaryOp::Mul, &rot, &s, &self.opts())
            .map_err(dev_err("rotate_half(x) · sin"))?;
        let y = self
            .dev()
            .binary(sys::BinaryOp::Add, &xc, &rs, &self.opts())
            .map_err(dev_err("sum"))?;
        self.reshape(&y, &[b, t, w], "pack heads")
    }

    /// Whether `sdpa` runs as TT-NN's fused op for this precision and head size.
    fn fused_sdpa(&self, head_dim: usize) -> bool {
        matches!(
            self.p.act_dtype,
            DType::Bf16 | DType::Bfloat8B | DType::Bfloat4B
        ) && head_dim.is_multiple_of(32)
    }

    fn sdpa(
        &self,
        inputs: &[&Tensor],
        hq: usize,
        hkv: usize,
        hd: usize,
        scale: f32,
    ) -> Result<sys::Tensor, OpError> {
        let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
        let &[b, t, wq] = q.shape() else {
            return Err(self.invalid(format!(
                "q must be [B, T, Hq·hd], got {}",
                shape_string(q.shape())
            )));
        };
        let s = k.shape().get(1).copied().unwrap_or(0);
        if hq == 0
            || hkv == 0
            || hd == 0
            || !hq.is_multiple_of(hkv)
            || wq != hq * hd
            || k.shape() != [b, s, hkv * hd]
            || v.shape() != k.shape()
        {
            return Err(self.invalid(format!(
                "q {}, k {}, v {} do not fit q [B, T, {hq}·{hd}], k/v [B, S, {hkv}·{hd}]",
                shape_string(q.shape()),
                shape_string(k.shape()),
                shape_string(v.shape())
            )));
        }
        let mask4 = match inputs.get(3) {
            None => None,
            Some(m) => {
                let ms = m.shape();
                if ms.len() > 4 {
                    return Err(self.invalid(format!("mask {} has rank > 4", shape_string(ms))));
                }
                let mut dims = vec![1usize; 4 - ms.len()];
                dims.extend_from_slice(ms);
                if dims[2] != t
                    || dims[3] != s
                    || (dims[0] != 1 && dims[0] != b)
                    || (dims[1] != 1 && dims[1] != hq)
                {
                    return Err(self.invalid(format!(
                        "mask {} does not broadcast to [{b}, {hq}, {t}, {s}]",
                        shape_string(ms)
                    )));
                }
                Some((*m, dims))
            }
        };
        let heads_first =
            |x: &Tensor, n: usize, len: usize, what: &str| -> Result<sys::Tensor, OpError> {
                let x4 = self.act_as(x, &[b, len, n, hd])?;
                self.permute(&x4, &[0, 2, 1, 3], what)
            };
        let qh = heads_first(q, hq, t, "split q heads")?;
        let kh = heads_first(k, hkv, s, "split k heads")?;
        let vh = heads_first(v, hkv, s, "split v heads")?;
        let out = if self.fused_sdpa(hd) {
            let md = mask4
                .map(|(m, dims)| {
                    let dt = match self.act_dtype() {
                        sys::DType::Bfp8 | sys::DType::Bfp4 => self.act_dtype(),
                        _ => sys::DType::Bf16,
                    };
                    self.b.prepare(m, Want::new(dt, sys::Layout::Tile, &dims))
                })
                .transpose()?;
            self.dev()
                .sdpa(
                    &qh,
                    &kh,
                    &vh,
                    md.as_deref(),
                    false,
                    Some(scale),
                    &self.opts(),
                )
                .map_err(dev_err("scaled_dot_product_attention"))?
        } else {
            let g = hq / hkv;
            let qg = self.reshape(&qh, &[b, hkv, g * t, hd], "group q heads")?;
            let scores = self
                .dev()
                .matmul(&qg, &kh, false, true, &self.opts())
                .map_err(dev_err("q · kᵀ"))?;
            let scores = self
                .dev()
                .binary_scalar(sys::BinaryOp::Mul, &scores, scale, &self.opts())
                .map_err(dev_err("scale"))?;
            let scores = self.reshape(&scores, &[b, hq, t, s], "ungroup scores")?;
            let scores = match mask4 {
                Some((m, dims)) => {
                    let md = self.act_as(m, &dims)?;
                    self.dev()
                        .binary(sys::BinaryOp::Add, &scores, &md, &self.opts())
                        .map_err(dev_err("add mask"))?
                }
                None => scores,
            };
            let probs = self
                .dev()
                .softmax(&scores, -1, true, &self.opts())
                .map_err(dev_err("softmax"))?;
            let probs = self.reshape(&probs, &[b, hkv, g * t, s], "group probabilities")?;
            let o = self
                .dev()
                .matmul(&probs, &vh, false, false, &self.opts())
                .map_err(dev_err("p · v"))?;
            self.reshape(&o, &[b, hq, t, hd], "ungroup heads")?
        };
        let back = self.permute(&out, &[0, 2, 1, 3], "tokens first")?;
        self.reshape(&back, &[b, t, wq], "pack heads")
    }

    /// How this op kind runs, for the report.
    fn implementation(&self) -> String {
        match self.kind {
            OpKind::Linear => "ttnn::linear".into(),
            OpKind::Conv2dPatch { .. } => {
                "reshape/permute/reshape patch unfold + ttnn::linear".into()
            }
            OpKind::LayerNorm { .. } => "ttnn::layer_norm".into(),
            OpKind::RmsNorm { .. } => "ttnn::rms_norm (offset + weight precomputed on the host)".into(),
            OpKind::Add => "ttnn::add".into(),
            OpKind::Mul => "ttnn::multiply".into(),
            OpKind::MulScalar { .. } => "ttnn::multiply (scalar)".into(),
            OpKind::Gelu { approx } => match approx {
                GeluApprox::Tanh => "ttnn::gelu (tanh)".into(),
                GeluApprox::None => "ttnn::gelu".into(),
            },
            OpKind::Silu => "ttnn::silu".into(),
            OpKind::Embedding if self.p.act_dtype == DType::F32 => {
                "3 × ttnn::embedding over an exact bf16 split of the table, summed in f32".into()
            }
            OpKind::Embedding => "ttnn::embedding (BFLOAT16 table)".into(),
            OpKind::Concat { .. } => "ttnn::concat".into(),
            OpKind::Slice { .. } => "ttnn::slice".into(),
            OpKind::Reshape { .. } => "ttnn::reshape".into(),
            OpKind::Expand { .. } => "ttnn::concat of copies".into(),
            OpKind::RepeatInterleave { .. } => "reshape + ttnn::concat of copies + reshape".into(),
            OpKind::Full { .. } => "host buffer written to the device".into(),
            OpKind::Rope { head_dim, .. } if head_dim % 64 == 0 => {
                "ttnn::experimental::rotary_embedding (host cos/sin tables)".into()
            }
            OpKind::Rope { .. } => {
                "slice/multiply/concat/add with host cos/sin tables (rotary_embedding needs head_dim % 64 == 0)"
                    .into()
            }
            OpKind::Sdpa { head_dim, .. } if self.fused_sdpa(*head_dim) => {
                "ttnn::transformer::scaled_dot_product_attention".into()
            }
            OpKind::Sdpa { .. } => {
                "matmul/scale/mask/softmax/matmul (fused SDPA needs BF16/BFP8/BFP4 and head_dim % 32 == 0)"
                    .into()
            }
            OpKind::InterpolateBicubic { .. }
            | OpKind::AttnMask2d { .. }
            | OpKind::Positions
            | OpKind::TimeEmbed { .. } => "host fallback (no TT-NN op)".into(),
        }
    }

    fn run(&self, inputs: &[&Tensor]) -> Result<Arc<sys::Tensor>, OpError> {
        let arity = |lo: usize, hi: usize| -> Result<(), OpError> {
            if (lo..=hi).contains(&inputs.len()) {
                Ok(())
            } else {
                Err(self.invalid(format!(
                    "expected {lo}{} inputs, got {}",
                    if hi == lo {
                        String::new()
                    } else if hi == usize::MAX {
                        " or more".into()
                    } else {
                        format!(" to {hi}")
                    },
                    inputs.len()
                )))
            }
        };
        let none = sys::OpOptions::default();
        let owned = match self.kind {
            OpKind::Linear => {
                arity(2, 3)?;
                self.linear(inputs)
            }
            OpKind::Conv2dPatch { patch } => {
                arity(2, 3)?;
                self.conv2d_patch(*patch, inputs)
            }
            OpKind::LayerNorm { eps } => {
                arity(3, 3)?;
                self.norm(false, *eps, 0.0, inputs)
            }
            OpKind::RmsNorm { eps, offset } => {
                arity(2, 2)?;
                self.norm(true, *eps, *offset, inputs)
            }
            OpKind::Add | OpKind::Mul => {
                arity(2, 2)?;
                let op = if matches!(self.kind, OpKind::Add) {
                    sys::BinaryOp::Add
                } else {
                    sys::BinaryOp::Mul
                };
                let (a, b) = (self.act(inputs[0])?, self.act(inputs[1])?);
                self.dev()
                    .binary(op, &a, &b, &self.opts())
                    .map_err(dev_err(""))
            }
            OpKind::MulScalar { value } => {
                arity(1, 1)?;
                let a = self.act(inputs[0])?;
                self.dev()
                    .binary_scalar(sys::BinaryOp::Mul, &a, *value, &self.opts())
                    .map_err(dev_err(""))
            }
            OpKind::Gelu { approx } => {
                arity(1, 1)?;
                let a = self.act(inputs[0])?;
                let op = match approx {
                    GeluApprox::Tanh => sys::UnaryOp::GeluTanh,
                    GeluApprox::None => sys::UnaryOp::Gelu,
                };
                self.dev()
                    .unary(op, &a, self.p.math_approx, &self.opts())
                    .map_err(dev_err(""))
            }
            OpKind::Silu => {
                arity(1, 1)?;
                let a = self.act(inputs[0])?;
                self.dev()
                    .unary(sys::UnaryOp::Silu, &a, self.p.math_approx, &self.opts())
                    .map_err(dev_err(""))
            }
            OpKind::Embedding => {
                arity(2, 2)?;
                self.embedding(inputs[0], inputs[1])
            }
            OpKind::Concat { dim } => {
                arity(1, usize::MAX)?;
                let parts = inputs
                    .iter()
                    .map(|t| self.act(t))
                    .collect::<Result<Vec<_>, _>>()?;
                let refs: Vec<&sys::Tensor> = parts.iter().map(|p| p.as_ref()).collect();
                self.concat(&refs, *dim, "")
            }
            OpKind::Slice { dim, start, end } => {
                arity(1, 1)?;
                let s = inputs[0].shape();
                if *dim >= s.len() || start > end || *end > s[*dim] {
                    return Err(self.invalid(format!(
                        "slice {start}..{end} of axis {dim} is out of range for {}",
                        shape_string(s)
                    )));
                }
                let mut begins = vec![0usize; s.len()];
                let mut ends = s.to_vec();
                begins[*dim] = *start;
                ends[*dim] = *end;
                let a = self.act(inputs[0])?;
                self.dev()
                    .slice(&a, &begins, &ends, &none)
                    .map_err(dev_err(""))
            }
            OpKind::Reshape { shape } => {
                arity(1, 1)?;
                let a = self.act(inputs[0])?;
                self.reshape(&a, shape, "")
            }
            OpKind::Expand { shape } => {
                arity(1, 1)?;
                // May hand back the input's own device tensor (nothing to expand).
                return self.expand(inputs[0], shape);
            }
            OpKind::RepeatInterleave { dim, repeats } => {
                arity(1, 1)?;
                self.repeat_interleave(inputs[0], *dim, *repeats)
            }
            OpKind::Full { shape, value } => {
                arity(0, 0)?;
                let n: usize = shape.iter().product();
                self.dev()
                    .from_f32(
                        &vec![*value; n],
                        shape,
                        self.act_dtype(),
                        sys::Layout::Tile,
                        sys::Buffer::Dram,
                    )
                    .map_err(dev_err(""))
            }
            OpKind::Rope { theta, head_dim } => {
                arity(2, 2)?;
                self.rope(inputs[0], inputs[1], *theta, *head_dim)
            }
            OpKind::Sdpa {
                q_heads,
                kv_heads,
                head_dim,
                scale,
            } => {
                arity(3, 4)?;
                self.sdpa(inputs, *q_heads, *kv_heads, *head_dim, *scale)
            }
            OpKind::InterpolateBicubic { .. }
            | OpKind::AttnMask2d { .. }
            | OpKind::Positions
            | OpKind::TimeEmbed { .. } => Err(OpError::Unsupported {
                backend: BACKEND.to_string(),
                kind: self.kind.as_str(),
            }),
        };
        owned.map(Arc::new)
    }
}

impl Backend for TtBackend {
    fn name(&self) -> &str {
        BACKEND
    }

    fn profile(&self) -> &str {
        self.precision.name()
    }

    fn exec(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let l = Lower {
            b: self,
            kind: &op.kind,
            p: self.precision.for_op(&op.name),
        };
        let out = l.run(inputs)?;
        self.finish(out)
    }

    fn upload(&self, _name: &str, tensor: Tensor) -> Result<Tensor, OpError> {
        // The device form is made when the first consumer says which form it needs.
        Ok(tensor.with_device(DeviceHandle::new(Slot::new(self.dev.clone(), false))))
    }

    fn precision(&self, op: &Op) -> Option<serde_json::Value> {
        let l = Lower {
            b: self,
            kind: &op.kind,
            p: self.precision.for_op(&op.name),
        };
        let mut v = l.p.to_json();
        v["profile"] = self.precision.name().into();
        v["impl"] = l.implementation().into();
        v["abi"] = sys::implementation().into();
        Some(v)
    }
}
