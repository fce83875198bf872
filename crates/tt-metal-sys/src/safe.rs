//! A thin safe layer over [`crate::ffi`]: RAII handles, typed options, `Result<_, TtError>`.
//!
//! * [`Device`] owns one opened device. Opening an id that is already open in this process
//!   returns the same device (TT-NN cannot open a chip twice). The device closes when the last
//!   `Device` clone *and* the last [`Tensor`] on it are dropped — tensors keep their device
//!   alive, so the "close with live tensors" case of the ABI cannot arise.
//! * Every call that touches a device or one of its tensors holds that device's mutex, which
//!   serialises the calls as the ABI requires (rule 5) and keeps the thread-local error record
//!   read on the thread that produced it. That is what makes `Device` and `Tensor`
//!   `Send + Sync`.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::c_char;
use std::ptr::{self, NonNull};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::ffi;

/// Storage dtype of a device tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Bf16,
    Bfp8,
    Bfp4,
    F32,
    U32,
    I32,
    U16,
    U8,
}

impl DType {
    fn raw(self) -> ffi::ttm_dtype {
        match self {
            DType::Bf16 => ffi::TTM_BF16,
            DType::Bfp8 => ffi::TTM_BFP8_B,
            DType::Bfp4 => ffi::TTM_BFP4_B,
            DType::F32 => ffi::TTM_F32,
            DType::U32 => ffi::TTM_U32,
            DType::I32 => ffi::TTM_I32,
            DType::U16 => ffi::TTM_U16,
            DType::U8 => ffi::TTM_U8,
        }
    }
    fn from_raw(v: ffi::ttm_dtype) -> Option<DType> {
        Some(match v {
            ffi::TTM_BF16 => DType::Bf16,
            ffi::TTM_BFP8_B => DType::Bfp8,
            ffi::TTM_BFP4_B => DType::Bfp4,
            ffi::TTM_F32 => DType::F32,
            ffi::TTM_U32 => DType::U32,
            ffi::TTM_I32 => DType::I32,
            ffi::TTM_U16 => DType::U16,
            ffi::TTM_U8 => DType::U8,
            _ => return None,
        })
    }
}

/// Page layout of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    RowMajor,
    Tile,
}

impl Layout {
    fn raw(self) -> ffi::ttm_layout {
        match self {
            Layout::RowMajor => ffi::TTM_ROW_MAJOR,
            Layout::Tile => ffi::TTM_TILE,
        }
    }
}

/// Buffer type of an interleaved device buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Buffer {
    Dram,
    L1,
}

impl Buffer {
    fn raw(self) -> ffi::ttm_buffer {
        match self {
            Buffer::Dram => ffi::TTM_DRAM,
            Buffer::L1 => ffi::TTM_L1,
        }
    }
}

/// How a device buffer is spread over cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemLayout {
    Interleaved,
    HeightSharded,
    WidthSharded,
    BlockSharded,
    NdSharded,
}

/// `MathFidelity` of the matrix engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MathFidelity {
    LoFi,
    HiFi2,
    HiFi3,
    HiFi4,
}

impl MathFidelity {
    fn raw(self) -> ffi::ttm_fidelity {
        match self {
            MathFidelity::LoFi => ffi::TTM_LOFI,
            MathFidelity::HiFi2 => ffi::TTM_HIFI2,
            MathFidelity::HiFi3 => ffi::TTM_HIFI3,
            MathFidelity::HiFi4 => ffi::TTM_HIFI4,
        }
    }
}

/// `ttnn::ComputeKernelConfig`; `None` fields keep the struct default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComputeConfig {
    pub math_fidelity: Option<MathFidelity>,
    pub math_approx_mode: Option<bool>,
    pub fp32_dest_acc_en: Option<bool>,
    pub packer_l1_acc: Option<bool>,
    pub dst_full_sync_en: Option<bool>,
}

/// Options of one op call; `None` = the op's own default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpOptions {
    pub out_dtype: Option<DType>,
    pub out_buffer: Option<Buffer>,
    /// `None` lets the op choose its compute kernel config (TT-NN's per-op defaults).
    pub compute: Option<ComputeConfig>,
}

/// What TT-NN reports about a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub logical: Vec<usize>,
    pub padded: Vec<usize>,
    pub dtype: DType,
    pub layout: Layout,
    pub on_device: bool,
    pub allocated: bool,
    pub sharded: bool,
    /// `None` for host tensors.
    pub buffer: Option<Buffer>,
    /// `None` for host tensors.
    pub mem_layout: Option<MemLayout>,
    pub physical_volume: u64,
}

/// Element-wise binary op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
}

impl BinaryOp {
    fn raw(self) -> ffi::ttm_binary_op {
        match self {
            BinaryOp::Add => ffi::TTM_ADD,
            BinaryOp::Sub => ffi::TTM_SUB,
            BinaryOp::Mul => ffi::TTM_MUL,
        }
    }
}

/// Element-wise unary op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Gelu,
    GeluTanh,
    Silu,
    Exp,
    Rsqrt,
    Sqrt,
    Tanh,
    Sigmoid,
    Neg,
    Recip,
}

impl UnaryOp {
    fn raw(self) -> ffi::ttm_unary_op {
        match self {
            UnaryOp::Gelu => ffi::TTM_GELU,
            UnaryOp::GeluTanh => ffi::TTM_GELU_TANH,
            UnaryOp::Silu => ffi::TTM_SILU,
            UnaryOp::Exp => ffi::TTM_EXP,
            UnaryOp::Rsqrt => ffi::TTM_RSQRT,
            UnaryOp::Sqrt => ffi::TTM_SQRT,
            UnaryOp::Tanh => ffi::TTM_TANH,
            UnaryOp::Sigmoid => ffi::TTM_SIGMOID,
            UnaryOp::Neg => ffi::TTM_NEG,
            UnaryOp::Recip => ffi::TTM_RECIP,
        }
    }
}

/// Status class of a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unavailable,
    InvalidArg,
    TtFatal,
    TtThrow,
    Cxx,
    Unknown,
    Busy,
    BufferTooSmall,
    /// A status this crate does not know (a newer shim).
    Other(i32),
}

impl Status {
    fn from_raw(s: ffi::ttm_status) -> Status {
        match s {
            ffi::TTM_E_UNAVAILABLE => Status::Unavailable,
            ffi::TTM_E_INVALID_ARG => Status::InvalidArg,
            ffi::TTM_E_TT_FATAL => Status::TtFatal,
            ffi::TTM_E_TT_THROW => Status::TtThrow,
            ffi::TTM_E_CXX => Status::Cxx,
            ffi::TTM_E_UNKNOWN => Status::Unknown,
            ffi::TTM_E_BUSY => Status::Busy,
            ffi::TTM_E_BUFFER_TOO_SMALL => Status::BufferTooSmall,
            other => Status::Other(other),
        }
    }
}

/// A failed call: the shim's parsed error record (TT-NN's TT_FATAL / TT_THROW text split into
/// kind, file:line, condition and message). Boxed, so `Result<_, TtError>` stays small; the
/// fields read through `Deref` (`e.message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtError(Box<ErrorRecord>);

/// The fields of a [`TtError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    pub status: Status,
    /// Shim entry point, e.g. `ttm_linear`.
    pub function: String,
    /// `TT_FATAL`, `TT_THROW`, `shim`, `std::bad_alloc`, …
    pub kind: String,
    pub file: String,
    pub line: u32,
    pub condition: String,
    /// The `info:` block of a TT-NN error (what a user reads).
    pub message: String,
    pub backtrace: String,
    /// The text as raised.
    pub raw: String,
}

impl std::ops::Deref for TtError {
    type Target = ErrorRecord;
    fn deref(&self) -> &ErrorRecord {
        &self.0
    }
}

impl TtError {
    /// An error detected on the Rust side of the boundary (kind `shim`).
    fn local(function: &str, status: Status, message: impl Into<String>) -> TtError {
        let message = message.into();
        TtError(Box::new(ErrorRecord {
            status,
            function: function.to_string(),
            kind: "shim".into(),
            file: String::new(),
            line: 0,
            condition: String::new(),
            raw: message.clone(),
            message,
            backtrace: String::new(),
        }))
    }
}

impl fmt::Display for TtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.kind, self.function)?;
        if !self.file.is_empty() {
            write!(f, " @ {}:{}", self.file, self.line)?;
        }
        write!(f, ": {}", self.message)?;
        let cond = self.condition.as_str();
        if !cond.is_empty() && cond != "tt::exception" && cond != self.message {
            write!(f, " (condition: {cond})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TtError {}

/// Copies a library-owned C string (NULL reads as empty).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid during the call.
unsafe fn owned(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: non-null and NUL-terminated by the caller's contract.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Reads this thread's error record after a call returned `status`.
fn last_error(status: ffi::ttm_status, function: &str) -> TtError {
    // SAFETY: ttm_last_error never returns NULL and its strings stay valid until the next ttm_*
    // call on this thread; they are copied before any other call.
    let e = unsafe { &*ffi::ttm_last_error() };
    // SAFETY: the record's strings are NUL-terminated, owned by the library (see above).
    let (func, kind, file, condition, message, backtrace, raw) = unsafe {
        (
            owned(e.function),
            owned(e.kind),
            owned(e.file),
            owned(e.condition),
            owned(e.message),
            owned(e.backtrace),
            owned(e.raw),
        )
    };
    TtError(Box::new(ErrorRecord {
        status: Status::from_raw(status),
        function: if func.is_empty() {
            function.to_string()
        } else {
            func
        },
        kind,
        file,
        line: e.line,
        condition,
        message,
        backtrace,
        raw,
    }))
}

fn check(status: ffi::ttm_status, function: &str) -> Result<(), TtError> {
    if status == ffi::TTM_OK {
        Ok(())
    } else {
        Err(last_error(status, function))
    }
}

fn library_string(p: *const c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    // SAFETY: ttm_implementation / ttm_build_info return NUL-terminated strings with process
    // lifetime (header rule 6).
    unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("")
}

/// `"tt-metal"` or `"host"`: which implementation of the ABI is linked.
pub fn implementation() -> &'static str {
    // SAFETY: no arguments; returns a static string.
    library_string(unsafe { ffi::ttm_implementation() })
}

/// The tree, compiler and feature mapping the shim was built with.
pub fn build_info() -> &'static str {
    // SAFETY: no arguments; returns a static string.
    library_string(unsafe { ffi::ttm_build_info() })
}

/// The linked shim's ABI version (must equal [`ffi::TTM_ABI_VERSION`]).
pub fn abi_version() -> u32 {
    // SAFETY: no arguments.
    unsafe { ffi::ttm_abi_version() }
}

/// Live (devices, tensors) handles in the whole process.
pub fn live_handles() -> (u64, u64) {
    let (mut d, mut t) = (0u64, 0u64);
    // SAFETY: both out-pointers point to live u64s.
    unsafe { ffi::ttm_live_handles(&mut d, &mut t) };
    (d, t)
}

/// Number of devices the implementation can open.
pub fn device_count() -> Result<u32, TtError> {
    let mut n = 0u32;
    // SAFETY: `n` is a live out-pointer.
    check(unsafe { ffi::ttm_device_count(&mut n) }, "ttm_device_count")?;
    Ok(n)
}

/// Test hook: the next call of `function` (any entry point when `None`) on this thread fails
/// as if TT-NN had thrown `what` (see `ttm_debug_inject_error`).
pub fn inject_error(function: Option<&str>, what: &str) -> Result<(), TtError> {
    let nul = |s: &str| {
        CString::new(s).map_err(|_| {
            TtError::local(
                "ttm_debug_inject_error",
                Status::InvalidArg,
                "text contains NUL",
            )
        })
    };
    let f = function.map(nul).transpose()?;
    let w = nul(what)?;
    let fp = f.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: both strings are NUL-terminated and outlive the call (the shim copies them).
    check(
        unsafe { ffi::ttm_debug_inject_error(fp, w.as_ptr()) },
        "ttm_debug_inject_error",
    )
}

/// Disarms a fault armed by [`inject_error`] on this thread.
pub fn clear_injection() {
    // SAFETY: NULL `what` disarms; no other pointer is read.
    unsafe { ffi::ttm_debug_inject_error(ptr::null(), ptr::null()) };
}

struct DeviceInner {
    raw: NonNull<ffi::ttm_device>,
    id: i32,
    lock: Mutex<()>,
}

// SAFETY: the device pointer is only dereferenced by the shim, and every call passing it (or a
// tensor on it) holds `lock`, which serialises access as the ABI requires; handles may move
// between threads (header rule 5).
unsafe impl Send for DeviceInner {}
// SAFETY: as above — shared references only reach the handle through `lock`.
unsafe impl Sync for DeviceInner {}

impl DeviceInner {
    fn guard(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for DeviceInner {
    fn drop(&mut self) {
        let _g = self.guard();
        // SAFETY: the last owner is going away; every Tensor holds an Arc to this inner, so no
        // tensor on the device is alive and a plain close cannot be BUSY. A failure to close is
        // not recoverable here; the process-wide live-handle counter still shows it.
        unsafe {
            if ffi::ttm_device_close(self.raw.as_ptr(), 0) != ffi::TTM_OK {
                ffi::ttm_device_close(self.raw.as_ptr(), 1);
            }
        }
    }
}

/// Devices open in this process, by id (weak: the registry never keeps a device open).
static REGISTRY: Mutex<Vec<(i32, Weak<DeviceInner>)>> = Mutex::new(Vec::new());

/// One opened device (a 1×1 mesh). Cheap to clone; clones share the device.
#[derive(Clone)]
pub struct Device {
    inner: Arc<DeviceInner>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.inner.id)
            .finish()
    }
}

/// One device tensor. Dropping it frees the handle (and the device buffer).
pub struct Tensor {
    raw: NonNull<ffi::ttm_tensor>,
    dev: Arc<DeviceInner>,
}

// SAFETY: every call on the tensor (including the free in Drop) holds its device's lock.
unsafe impl Send for Tensor {}
// SAFETY: as above.
unsafe impl Sync for Tensor {}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tensor")
            .field("device", &self.dev.id)
            .finish_non_exhaustive()
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        let _g = self.dev.guard();
        // SAFETY: `raw` is a live handle owned by this value and freed exactly once, here.
        unsafe { ffi::ttm_tensor_free(self.raw.as_ptr()) };
    }
}

/// Runs `f` with a `ttm_op_opts` built from `o`; the pointer is valid only inside `f`.
fn with_opts<R>(o: &OpOptions, f: impl FnOnce(*const ffi::ttm_op_opts) -> R) -> R {
    let tri = |b: Option<bool>| b.map_or(-1i8, i8::from);
    let cc = o.compute.map(|c| ffi::ttm_compute_config {
        struct_size: std::mem::size_of::<ffi::ttm_compute_config>() as u32,
        math_fidelity: c
            .math_fidelity
            .map_or(ffi::TTM_FID_DEFAULT, MathFidelity::raw),
        math_approx_mode: tri(c.math_approx_mode),
        fp32_dest_acc_en: tri(c.fp32_dest_acc_en),
        packer_l1_acc: tri(c.packer_l1_acc),
        dst_full_sync_en: tri(c.dst_full_sync_en),
    });
    let opts = ffi::ttm_op_opts {
        struct_size: std::mem::size_of::<ffi::ttm_op_opts>() as u32,
        out_dtype: o.out_dtype.map_or(ffi::TTM_DTYPE_DEFAULT, DType::raw),
        out_buffer: o.out_buffer.map_or(ffi::TTM_BUF_DEFAULT, Buffer::raw),
        compute: cc.as_ref().map_or(ptr::null(), |c| c as *const _),
    };
    f(&opts)
}

fn dims_u32(function: &str, dims: &[usize]) -> Result<Vec<u32>, TtError> {
    if dims.len() > ffi::TTM_MAX_RANK {
        return Err(TtError::local(
            function,
            Status::InvalidArg,
            format!("rank {} exceeds {}", dims.len(), ffi::TTM_MAX_RANK),
        ));
    }
    dims.iter()
        .map(|&d| {
            u32::try_from(d).map_err(|_| {
                TtError::local(function, Status::InvalidArg, format!("dim {d} exceeds u32"))
            })
        })
        .collect()
}

fn dims_i32(function: &str, dims: &[usize]) -> Result<Vec<i32>, TtError> {
    dims.iter()
        .map(|&d| {
            i32::try_from(d).map_err(|_| {
                TtError::local(function, Status::InvalidArg, format!("dim {d} exceeds i32"))
            })
        })
        .collect()
}

impl Device {
    /// Opens device `id`, or returns the device already open under that id in this process.
    pub fn open(id: i32) -> Result<Device, TtError> {
        // SAFETY: no arguments.
        let abi = unsafe { ffi::ttm_abi_version() };
        if abi != ffi::TTM_ABI_VERSION {
            return Err(TtError::local(
                "ttm_device_open",
                Status::Unavailable,
                format!(
                    "the linked shim has ABI version {abi}, these bindings need {}",
                    ffi::TTM_ABI_VERSION
                ),
            ));
        }
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|(_, w)| w.strong_count() > 0);
        if let Some(inner) = reg
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(Device { inner });
        }
        let mut raw = ptr::null_mut();
        // SAFETY: NULL options = defaults; `raw` is a live out-pointer.
        check(
            unsafe { ffi::ttm_device_open(id, ptr::null(), &mut raw) },
            "ttm_device_open",
        )?;
        let raw = NonNull::new(raw).ok_or_else(|| {
            TtError::local(
                "ttm_device_open",
                Status::Unknown,
                "ttm_device_open returned OK and a NULL device",
            )
        })?;
        let inner = Arc::new(DeviceInner {
            raw,
            id,
            lock: Mutex::new(()),
        });
        reg.push((id, Arc::downgrade(&inner)));
        Ok(Device { inner })
    }

    /// The id the device was opened with.
    pub fn id(&self) -> i32 {
        self.inner.id
    }

    /// Whether `other` is the same opened device.
    pub fn same(&self, other: &Device) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Architecture, grid and memory as the implementation describes them.
    pub fn describe(&self) -> Result<String, TtError> {
        let _g = self.inner.guard();
        let dev = self.inner.raw.as_ptr();
        read_text("ttm_device_describe", |buf, cap, needed| {
            // SAFETY: `dev` is live (we hold an Arc and the lock); buf/cap/needed follow the
            // (buf, cap, needed) protocol.
            unsafe { ffi::ttm_device_describe(dev, buf, cap, needed) }
        })
    }

    fn own(&self, function: &str, t: &Tensor) -> Result<*const ffi::ttm_tensor, TtError> {
        if Arc::ptr_eq(&self.inner, &t.dev) {
            Ok(t.raw.as_ptr())
        } else {
            Err(TtError::local(
                function,
                Status::InvalidArg,
                format!(
                    "tensor lives on device {}, not on device {}",
                    t.dev.id, self.inner.id
                ),
            ))
        }
    }

    /// Runs one call producing a tensor, under the device lock.
    fn make(
        &self,
        function: &str,
        f: impl FnOnce(*mut *mut ffi::ttm_tensor) -> ffi::ttm_status,
    ) -> Result<Tensor, TtError> {
        let _g = self.inner.guard();
        let mut out = ptr::null_mut();
        check(f(&mut out), function)?;
        let raw = NonNull::new(out).ok_or_else(|| {
            TtError::local(
                function,
                Status::Unknown,
                "call returned OK and a NULL tensor",
            )
        })?;
        Ok(Tensor {
            raw,
            dev: Arc::clone(&self.inner),
        })
    }

    /// A device tensor from row-major f32 values.
    pub fn from_f32(
        &self,
        data: &[f32],
        dims: &[usize],
        dtype: DType,
        layout: Layout,
        buffer: Buffer,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_tensor_from_f32";
        let d = dims_u32(f, dims)?;
        let dev = self.inner.raw.as_ptr();
        self.make(f, |out| {
            // SAFETY: `dev` is live; data/dims point to `data.len()` / `d.len()` elements that
            // outlive the call (the shim copies them); `out` is a live out-pointer.
            unsafe {
                ffi::ttm_tensor_from_f32(
                    dev,
                    data.as_ptr(),
                    data.len(),
                    d.as_ptr(),
                    d.len(),
                    dtype.raw(),
                    layout.raw(),
                    buffer.raw(),
                    out,
                )
            }
        })
    }

    /// A UINT32 device tensor.
    pub fn from_u32(
        &self,
        data: &[u32],
        dims: &[usize],
        layout: Layout,
        buffer: Buffer,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_tensor_from_u32";
        let d = dims_u32(f, dims)?;
        let dev = self.inner.raw.as_ptr();
        self.make(f, |out| {
            // SAFETY: as in `from_f32`.
            unsafe {
                ffi::ttm_tensor_from_u32(
                    dev,
                    data.as_ptr(),
                    data.len(),
                    d.as_ptr(),
                    d.len(),
                    layout.raw(),
                    buffer.raw(),
                    out,
                )
            }
        })
    }

    /// `ttnn::to_layout`.
    pub fn to_layout(&self, t: &Tensor, layout: Layout, o: &OpOptions) -> Result<Tensor, TtError> {
        let f = "ttm_to_layout";
        let a = self.own(f, t)?;
        with_opts(o, |op| {
            self.make(f, |out| {
                // SAFETY: `a` is a live tensor on this device, `op` is valid during the call.
                unsafe { ffi::ttm_to_layout(a, layout.raw(), op, out) }
            })
        })
    }

    /// `ttnn::typecast`.
    pub fn typecast(&self, t: &Tensor, dtype: DType, o: &OpOptions) -> Result<Tensor, TtError> {
        let f = "ttm_typecast";
        let a = self.own(f, t)?;
        with_opts(o, |op| {
            self.make(f, |out| {
                // SAFETY: as in `to_layout`.
                unsafe { ffi::ttm_typecast(a, dtype.raw(), op, out) }
            })
        })
    }

    /// `ttnn::to_memory_config` (interleaved DRAM / L1).
    pub fn to_buffer(&self, t: &Tensor, buffer: Buffer) -> Result<Tensor, TtError> {
        let f = "ttm_to_buffer";
        let a = self.own(f, t)?;
        self.make(f, |out| {
            // SAFETY: `a` is a live tensor on this device.
            unsafe { ffi::ttm_to_buffer(a, buffer.raw(), out) }
        })
    }

    /// `ttnn::linear`: `a · w (+ bias)`; PyTorch weights `[N, K]` need `transpose_b`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        a: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        transpose_a: bool,
        transpose_b: bool,
        activation: Option<&str>,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_linear";
        let (ap, wp) = (self.own(f, a)?, self.own(f, w)?);
        let bp = bias.map(|b| self.own(f, b)).transpose()?;
        let act = activation
            .map(|s| {
                CString::new(s)
                    .map_err(|_| TtError::local(f, Status::InvalidArg, "activation contains NUL"))
            })
            .transpose()?;
        with_opts(o, |op| {
            self.make(f, |out| {
                // SAFETY: tensors are live on this device; `act` (if any) is NUL-terminated and
                // outlives the call; `op` is valid during the call.
                unsafe {
                    ffi::ttm_linear(
                        ap,
                        wp,
                        bp.unwrap_or(ptr::null()),
                        i32::from(transpose_a),
                        i32::from(transpose_b),
                        act.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
                        op,
                        out,
                    )
                }
            })
        })
    }

    /// `ttnn::matmul`.
    pub fn matmul(
        &self,
        a: &Tensor,
        b: &Tensor,
        transpose_a: bool,
        transpose_b: bool,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_matmul";
        let (ap, bp) = (self.own(f, a)?, self.own(f, b)?);
        with_opts(o, |op| {
            self.make(f, |out| {
                // SAFETY: tensors are live on this device; `op` is valid during the call.
                unsafe {
                    ffi::ttm_matmul(
                        ap,
                        bp,
                        i32::from(transpose_a),
                        i32::from(transpose_b),
                        op,
                        out,
                    )
                }
            })
        })
    }

    /// `ttnn::add` / `subtract` / `multiply` with TT-NN's broadcasting rules.
    pub fn binary(
        &self,
        op: BinaryOp,
        a: &Tensor,
        b: &Tensor,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_binary";
        let (ap, bp) = (self.own(f, a)?, self.own(f, b)?);
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: tensors are live on this device; `opt` is valid during the call.
                unsafe { ffi::ttm_binary(op.raw(), ap, bp, opt, out) }
            })
        })
    }

    /// The scalar overloads of `ttnn::add` / `subtract` / `multiply`.
    pub fn binary_scalar(
        &self,
        op: BinaryOp,
        a: &Tensor,
        scalar: f32,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_binary_scalar";
        let ap = self.own(f, a)?;
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: `ap` is live on this device; `opt` is valid during the call.
                unsafe { ffi::ttm_binary_scalar(op.raw(), ap, scalar, opt, out) }
            })
        })
    }

    /// `ttnn::gelu` / `silu` / `exp` / …
    pub fn unary(
        &self,
        op: UnaryOp,
        a: &Tensor,
        fast_approx: bool,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_unary";
        let ap = self.own(f, a)?;
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: `ap` is live on this device; `opt` is valid during the call.
                unsafe { ffi::ttm_unary(op.raw(), ap, i32::from(fast_approx), opt, out) }
            })
        })
    }

    /// `ttnn::softmax` over `dim`.
    pub fn softmax(
        &self,
        a: &Tensor,
        dim: i32,
        numeric_stable: bool,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_softmax";
        let ap = self.own(f, a)?;
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: `ap` is live on this device; `opt` is valid during the call.
                unsafe { ffi::ttm_softmax(ap, dim, i32::from(numeric_stable), opt, out) }
            })
        })
    }

    fn norm(
        &self,
        f: &str,
        a: &Tensor,
        eps: f32,
        params: [Option<&Tensor>; 3],
        o: &OpOptions,
        call: unsafe extern "C" fn(
            *const ffi::ttm_tensor,
            f32,
            *const ffi::ttm_tensor,
            *const ffi::ttm_tensor,
            *const ffi::ttm_tensor,
            *const ffi::ttm_op_opts,
            *mut *mut ffi::ttm_tensor,
        ) -> ffi::ttm_status,
    ) -> Result<Tensor, TtError> {
        let ap = self.own(f, a)?;
        let mut p = [ptr::null::<ffi::ttm_tensor>(); 3];
        for (slot, t) in p.iter_mut().zip(params) {
            if let Some(t) = t {
                *slot = self.own(f, t)?;
            }
        }
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: all non-null tensors are live on this device; `opt` is valid during
                // the call; `call` is one of the two norm entry points with this signature.
                unsafe { call(ap, eps, p[0], p[1], p[2], opt, out) }
            })
        })
    }

    /// `ttnn::layer_norm`.
    pub fn layer_norm(
        &self,
        a: &Tensor,
        eps: f32,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        self.norm(
            "ttm_layer_norm",
            a,
            eps,
            [weight, bias, residual],
            o,
            ffi::ttm_layer_norm,
        )
    }

    /// `ttnn::rms_norm`.
    pub fn rms_norm(
        &self,
        a: &Tensor,
        eps: f32,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        self.norm(
            "ttm_rms_norm",
            a,
            eps,
            [weight, bias, residual],
            o,
            ffi::ttm_rms_norm,
        )
    }

    /// `ttnn::embedding`: indices `[B, S]` → `[B, S, D]`.
    pub fn embedding(
        &self,
        indices: &Tensor,
        weight: &Tensor,
        out_layout: Layout,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_embedding";
        let (ip, wp) = (self.own(f, indices)?, self.own(f, weight)?);
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: tensors are live on this device; `opt` is valid during the call.
                unsafe { ffi::ttm_embedding(ip, wp, out_layout.raw(), opt, out) }
            })
        })
    }

    /// `ttnn::concat` along `dim`.
    pub fn concat(&self, inputs: &[&Tensor], dim: i32, o: &OpOptions) -> Result<Tensor, TtError> {
        let f = "ttm_concat";
        let ptrs: Vec<*const ffi::ttm_tensor> = inputs
            .iter()
            .map(|t| self.own(f, t))
            .collect::<Result<_, _>>()?;
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: `ptrs` holds `ptrs.len()` live tensors on this device and outlives the
                // call; `opt` is valid during the call.
                unsafe { ffi::ttm_concat(ptrs.as_ptr(), ptrs.len(), dim, opt, out) }
            })
        })
    }

    /// `ttnn::slice` with unit steps: `[begins, ends)` per dim.
    pub fn slice(
        &self,
        a: &Tensor,
        begins: &[usize],
        ends: &[usize],
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_slice";
        let ap = self.own(f, a)?;
        let (b, e) = (dims_i32(f, begins)?, dims_i32(f, ends)?);
        if b.len() != e.len() {
            return Err(TtError::local(
                f,
                Status::InvalidArg,
                format!("{} begins but {} ends", b.len(), e.len()),
            ));
        }
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: `ap` is live on this device; begins/ends hold `b.len()` elements and
                // outlive the call; NULL steps = 1; `opt` is valid during the call.
                unsafe {
                    ffi::ttm_slice(ap, b.as_ptr(), e.as_ptr(), ptr::null(), b.len(), opt, out)
                }
            })
        })
    }

    /// `ttnn::reshape`.
    pub fn reshape(&self, a: &Tensor, dims: &[usize], o: &OpOptions) -> Result<Tensor, TtError> {
        let f = "ttm_reshape";
        let ap = self.own(f, a)?;
        let d = dims_i32(f, dims)?;
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: `ap` is live on this device; `d` outlives the call.
                unsafe { ffi::ttm_reshape(ap, d.as_ptr(), d.len(), opt, out) }
            })
        })
    }

    /// `ttnn::permute`.
    pub fn permute(&self, a: &Tensor, perm: &[usize], o: &OpOptions) -> Result<Tensor, TtError> {
        let f = "ttm_permute";
        let ap = self.own(f, a)?;
        let p: Vec<i64> = perm.iter().map(|&d| d as i64).collect();
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: `ap` is live on this device; `p` outlives the call.
                unsafe { ffi::ttm_permute(ap, p.as_ptr(), p.len(), opt, out) }
            })
        })
    }

    /// `ttnn::experimental::rotary_embedding`.
    pub fn rotary_embedding(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        token_index: Option<u32>,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_rotary_embedding";
        let (xp, cp, sp) = (self.own(f, x)?, self.own(f, cos)?, self.own(f, sin)?);
        let tok = token_index.map_or(-1, i64::from);
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: tensors are live on this device; `opt` is valid during the call.
                unsafe { ffi::ttm_rotary_embedding(xp, cp, sp, tok, opt, out) }
            })
        })
    }

    /// `ttnn::transformer::scaled_dot_product_attention`; `scale: None` = 1/√D.
    #[allow(clippy::too_many_arguments)]
    pub fn sdpa(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        is_causal: bool,
        scale: Option<f32>,
        o: &OpOptions,
    ) -> Result<Tensor, TtError> {
        let f = "ttm_sdpa";
        let (qp, kp, vp) = (self.own(f, q)?, self.own(f, k)?, self.own(f, v)?);
        let mp = mask.map(|m| self.own(f, m)).transpose()?;
        with_opts(o, |opt| {
            self.make(f, |out| {
                // SAFETY: tensors are live on this device; `opt` is valid during the call.
                unsafe {
                    ffi::ttm_sdpa(
                        qp,
                        kp,
                        vp,
                        mp.unwrap_or(ptr::null()),
                        i32::from(is_causal),
                        scale.unwrap_or(f32::NAN),
                        opt,
                        out,
                    )
                }
            })
        })
    }
}

/// Calls a (buf, cap, needed) describe function twice: to size, then to fill.
fn read_text(
    function: &str,
    mut f: impl FnMut(*mut c_char, usize, *mut usize) -> ffi::ttm_status,
) -> Result<String, TtError> {
    let mut needed = 0usize;
    let st = f(ptr::null_mut(), 0, &mut needed);
    if st != ffi::TTM_OK && st != ffi::TTM_E_BUFFER_TOO_SMALL {
        return Err(last_error(st, function));
    }
    let mut buf = vec![0u8; needed.max(1)];
    check(f(buf.as_mut_ptr().cast(), buf.len(), &mut needed), function)?;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

impl Tensor {
    /// The device the tensor lives on.
    pub fn device(&self) -> Device {
        Device {
            inner: Arc::clone(&self.dev),
        }
    }

    /// Logical values, row-major, widened to f32.
    pub fn read_f32(&self) -> Result<Vec<f32>, TtError> {
        let info = self.info()?;
        let n: usize = info.logical.iter().product();
        let mut out = vec![0.0f32; n];
        let mut written = 0usize;
        let _g = self.dev.guard();
        // SAFETY: `raw` is live; `out` has room for `n` elements; `written` is a live pointer.
        check(
            unsafe {
                ffi::ttm_tensor_read_f32(self.raw.as_ptr(), out.as_mut_ptr(), n, &mut written)
            },
            "ttm_tensor_read_f32",
        )?;
        out.truncate(written);
        Ok(out)
    }

    /// Logical / padded shape, dtype, layout and memory config.
    pub fn info(&self) -> Result<TensorInfo, TtError> {
        let f = "ttm_tensor_get_info";
        let mut raw = ffi::ttm_tensor_info {
            struct_size: std::mem::size_of::<ffi::ttm_tensor_info>() as u32,
            rank: 0,
            logical: [0; ffi::TTM_MAX_RANK],
            padded: [0; ffi::TTM_MAX_RANK],
            dtype: 0,
            layout: 0,
            on_device: 0,
            allocated: 0,
            sharded: 0,
            buffer: 0,
            mem_layout: 0,
            physical_volume: 0,
        };
        {
            let _g = self.dev.guard();
            // SAFETY: `raw` (the tensor) is live; the info struct is live and sized.
            check(
                unsafe { ffi::ttm_tensor_get_info(self.raw.as_ptr(), &mut raw) },
                f,
            )?;
        }
        let rank = (raw.rank as usize).min(ffi::TTM_MAX_RANK);
        let bad = |what: &str, v: u32| {
            TtError::local(
                f,
                Status::Other(0),
                format!("the shim reported unknown {what} {v}"),
            )
        };
        Ok(TensorInfo {
            logical: raw.logical[..rank].iter().map(|&d| d as usize).collect(),
            padded: raw.padded[..rank].iter().map(|&d| d as usize).collect(),
            dtype: DType::from_raw(raw.dtype).ok_or_else(|| bad("dtype", raw.dtype))?,
            layout: match raw.layout {
                ffi::TTM_ROW_MAJOR => Layout::RowMajor,
                ffi::TTM_TILE => Layout::Tile,
                v => return Err(bad("layout", v)),
            },
            on_device: raw.on_device != 0,
            allocated: raw.allocated != 0,
            sharded: raw.sharded != 0,
            buffer: match raw.buffer {
                ffi::TTM_DRAM => Some(Buffer::Dram),
                ffi::TTM_L1 => Some(Buffer::L1),
                _ => None,
            },
            mem_layout: match raw.mem_layout {
                ffi::TTM_INTERLEAVED => Some(MemLayout::Interleaved),
                ffi::TTM_HEIGHT_SHARDED => Some(MemLayout::HeightSharded),
                ffi::TTM_WIDTH_SHARDED => Some(MemLayout::WidthSharded),
                ffi::TTM_BLOCK_SHARDED => Some(MemLayout::BlockSharded),
                ffi::TTM_ND_SHARDED => Some(MemLayout::NdSharded),
                _ => None,
            },
            physical_volume: raw.physical_volume,
        })
    }

    /// TT-NN's text for the tensor (spec and memory config).
    pub fn describe(&self) -> Result<String, TtError> {
        let _g = self.dev.guard();
        let t = self.raw.as_ptr();
        read_text("ttm_tensor_describe", |buf, cap, needed| {
            // SAFETY: `t` is live; buf/cap/needed follow the describe protocol.
            unsafe { ffi::ttm_tensor_describe(t, buf, cap, needed) }
        })
    }

    /// Frees the device buffer now; the handle stays valid (reads then fail).
    pub fn deallocate(&self) -> Result<(), TtError> {
        let _g = self.dev.guard();
        // SAFETY: `raw` is live; deallocation leaves the handle valid (header rule 4).
        check(
            unsafe { ffi::ttm_tensor_deallocate(self.raw.as_ptr(), 1) },
            "ttm_tensor_deallocate",
        )
    }
}
