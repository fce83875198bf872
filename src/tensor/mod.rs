//! Host tensors with the device metadata pccscope reports beside every number.
//!
//! Data is always held on the host as `f32` (a device tensor is read back and widened);
//! [`TensorMeta`] says what the device actually stored: dtype, layout, memory config, logical and
//! padded shape. The TT names print the way TT-NN prints them (`DataType.BFLOAT8_B`,
//! `Layout.TILE`, …).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// Storage dtype of a tensor on its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    F32,
    Bf16,
    Bfloat8B,
    Bfloat4B,
    U32,
}

impl DType {
    /// Short lowercase name used in reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::Bf16 => "bf16",
            DType::Bfloat8B => "bfloat8_b",
            DType::Bfloat4B => "bfloat4_b",
            DType::U32 => "u32",
        }
    }

    /// The name as TT-NN's Python API prints it.
    pub fn tt_name(self) -> &'static str {
        match self {
            DType::F32 => "DataType.FLOAT32",
            DType::Bf16 => "DataType.BFLOAT16",
            DType::Bfloat8B => "DataType.BFLOAT8_B",
            DType::Bfloat4B => "DataType.BFLOAT4_B",
            DType::U32 => "DataType.UINT32",
        }
    }

    /// Explicit mantissa bits of one element (used for ULP distances).
    pub fn mantissa_bits(self) -> u32 {
        match self {
            DType::F32 | DType::U32 => 23,
            DType::Bf16 => 7,
            // Block floats: 7 (bfp8) / 3 (bfp4) explicit magnitude bits below the shared exponent;
            // ULP is measured in bf16 for bfp8 as TT's comp_ulp does, and at 3 bits for bfp4.
            DType::Bfloat8B => 7,
            DType::Bfloat4B => 3,
        }
    }

    pub fn parse(s: &str) -> Option<DType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "datatype.float32" => DType::F32,
            "bf16" | "bfloat16" | "datatype.bfloat16" => DType::Bf16,
            "bfloat8_b" | "bfp8" | "datatype.bfloat8_b" => DType::Bfloat8B,
            "bfloat4_b" | "bfp4" | "datatype.bfloat4_b" => DType::Bfloat4B,
            "u32" | "uint32" | "datatype.uint32" => DType::U32,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Device layout of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    RowMajor,
    /// 32×32 tiles of four 16×16 faces.
    Tile,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::RowMajor => "row_major",
            Layout::Tile => "tile",
        }
    }
    pub fn tt_name(self) -> &'static str {
        match self {
            Layout::RowMajor => "Layout.ROW_MAJOR",
            Layout::Tile => "Layout.TILE",
        }
    }
}

/// Where a buffer lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    Dram,
    L1,
}

/// How a buffer is spread over cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryLayout {
    Interleaved,
    HeightSharded,
    WidthSharded,
    BlockSharded,
}

/// A TT-NN memory config (buffer type × memory layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemoryConfig {
    pub buffer: BufferType,
    pub layout: MemoryLayout,
}

impl MemoryConfig {
    pub const DRAM: MemoryConfig = MemoryConfig {
        buffer: BufferType::Dram,
        layout: MemoryLayout::Interleaved,
    };
    pub const L1: MemoryConfig = MemoryConfig {
        buffer: BufferType::L1,
        layout: MemoryLayout::Interleaved,
    };

    /// Short name used in reports, e.g. `dram_interleaved`.
    pub fn as_string(&self) -> String {
        let b = match self.buffer {
            BufferType::Dram => "dram",
            BufferType::L1 => "l1",
        };
        let l = match self.layout {
            MemoryLayout::Interleaved => "interleaved",
            MemoryLayout::HeightSharded => "height_sharded",
            MemoryLayout::WidthSharded => "width_sharded",
            MemoryLayout::BlockSharded => "block_sharded",
        };
        format!("{b}_{l}")
    }
}

/// What the device stored for a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMeta {
    pub dtype: DType,
    pub layout: Layout,
    pub memory: MemoryConfig,
    /// Logical shape (what the model sees).
    pub shape: Vec<usize>,
    /// Shape including tile padding (equal to `shape` in row-major layout).
    pub padded_shape: Vec<usize>,
}

impl TensorMeta {
    /// Host f32, row-major, DRAM interleaved: the reference backend's metadata.
    pub fn host_f32(shape: &[usize]) -> TensorMeta {
        TensorMeta {
            dtype: DType::F32,
            layout: Layout::RowMajor,
            memory: MemoryConfig::DRAM,
            shape: shape.to_vec(),
            padded_shape: shape.to_vec(),
        }
    }
}

/// Backend-private state attached to a tensor — the `tt` backend keeps the tensor's device
/// buffers here so the next op reads them on the device instead of re-uploading the host copy.
/// Clones of a tensor share it; backends that do not know the type ignore it.
#[derive(Clone)]
pub struct DeviceHandle(Arc<dyn Any + Send + Sync>);

impl DeviceHandle {
    pub fn new<T: Any + Send + Sync>(state: T) -> DeviceHandle {
        DeviceHandle(Arc::new(state))
    }

    /// The state, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref::<T>()
    }
}

impl fmt::Debug for DeviceHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceHandle(..)")
    }
}

/// A tensor: host f32 data (shared, cheap to clone) plus device metadata and the name of the
/// op, input or parameter it came from.
#[derive(Debug, Clone)]
pub struct Tensor {
    data: Arc<ArrayD<f32>>,
    pub meta: TensorMeta,
    /// Op, raw-input or checkpoint name this tensor was produced as (for traces).
    pub origin: Option<Arc<str>>,
    /// Device-side state of the backend that produced or uploaded it.
    device: Option<DeviceHandle>,
}

impl Tensor {
    /// A host f32 tensor (reference metadata).
    pub fn from_array(data: ArrayD<f32>) -> Tensor {
        let meta = TensorMeta::host_f32(data.shape());
        Tensor {
            data: Arc::new(data),
            meta,
            origin: None,
            device: None,
        }
    }

    /// Builds a tensor from a flat row-major buffer; `None` if the sizes disagree.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Option<Tensor> {
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .ok()
            .map(Tensor::from_array)
    }

    pub fn with_meta(mut self, meta: TensorMeta) -> Tensor {
        self.meta = meta;
        self
    }

    pub fn with_origin(mut self, origin: impl Into<Arc<str>>) -> Tensor {
        self.origin = Some(origin.into());
        self
    }

    /// Attaches backend device state (replacing any).
    pub fn with_device(mut self, handle: DeviceHandle) -> Tensor {
        self.device = Some(handle);
        self
    }

    /// The backend device state, if any.
    pub fn device(&self) -> Option<&DeviceHandle> {
        self.device.as_ref()
    }

    pub fn array(&self) -> &ArrayD<f32> {
        &self.data
    }

    pub fn shape(&self) -> &[usize] {
        self.data.shape()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Row-major contiguous view of the data (copies only when the array is not contiguous).
    pub fn as_slice(&self) -> std::borrow::Cow<'_, [f32]> {
        match self.data.as_slice() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(self.data.iter().copied().collect()),
        }
    }
}

/// Formats a shape as `[1, 58, 64]`.
pub fn shape_string(shape: &[usize]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}
