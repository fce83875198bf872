//! [`GoldenError`]: everything that can go wrong reading or writing a capture.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// An error of the capture layer (safetensors shards, manifest, capture reader and writer).
///
/// A boxed [`GoldenErrorKind`] (one pointer wide, so errors that embed it stay small); match on
/// [`GoldenError::kind`]. Messages are lowercase and read after "failed to"; causes are
/// attached as sources.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct GoldenError(Box<GoldenErrorKind>);

impl GoldenError {
    /// What went wrong, with its structured fields.
    pub fn kind(&self) -> &GoldenErrorKind {
        &self.0
    }

    /// Unwraps the kind.
    pub fn into_kind(self) -> GoldenErrorKind {
        *self.0
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        GoldenErrorKind::Io {
            action,
            path: path.into(),
            source,
        }
        .into()
    }
}

impl From<GoldenErrorKind> for GoldenError {
    fn from(kind: GoldenErrorKind) -> GoldenError {
        GoldenError(Box::new(kind))
    }
}

/// The kinds of [`GoldenError`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GoldenErrorKind {
    /// A filesystem operation failed.
    #[error("{action} `{path}`")]
    Io {
        /// What was being done: `open`, `read`, `map`, `write`, `rename`, …
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    // ---- safetensors files -------------------------------------------------------------
    /// The file cannot even hold the 8-byte header length.
    #[error(
        "read safetensors file `{path}`: it is {len} bytes long, shorter than the 8-byte header length"
    )]
    Truncated { path: PathBuf, len: u64 },
    /// The header length points past the end of the file.
    #[error(
        "read safetensors file `{path}`: the header length {header_len} runs past the end of the file ({file_len} bytes)"
    )]
    HeaderPastEnd {
        path: PathBuf,
        header_len: u64,
        file_len: u64,
    },
    /// The header is not a JSON object.
    #[error("parse the JSON header of safetensors file `{path}`")]
    InvalidHeader {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// One header entry is not `{dtype, shape, data_offsets}`.
    #[error("parse the header entry of tensor `{tensor}` in safetensors file `{path}`")]
    InvalidEntry {
        path: PathBuf,
        tensor: String,
        #[source]
        source: serde_json::Error,
    },
    /// `__metadata__` is not a map of strings to strings.
    #[error(
        "parse the `__metadata__` of safetensors file `{path}` (it must map strings to strings)"
    )]
    InvalidMetadata {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The dtype is not one pccscope can widen to f32.
    #[error("read tensor `{tensor}` of `{path}`: dtype `{dtype}` is not supported")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    /// The element count or byte size of a shape does not fit in memory sizes.
    #[error("read tensor `{tensor}` of `{path}`: shape {shape:?} is too large")]
    ShapeOverflow {
        path: PathBuf,
        tensor: String,
        shape: Vec<usize>,
    },
    /// The data offsets are reversed or lie past the end of the data section.
    #[error(
        "read tensor `{tensor}` of `{path}`: data offsets [{begin}, {end}) lie outside the {data_len}-byte data section"
    )]
    OffsetsOutOfRange {
        path: PathBuf,
        tensor: String,
        begin: u64,
        end: u64,
        data_len: u64,
    },
    /// The data offsets span a different number of bytes than shape × dtype needs.
    #[error(
        "read tensor `{tensor}` of `{path}`: {dtype} {shape:?} needs {expected} bytes but its data offsets span {found}"
    )]
    DataSizeMismatch {
        path: PathBuf,
        tensor: String,
        dtype: String,
        shape: Vec<usize>,
        expected: u64,
        found: u64,
    },
    /// Two tensors claim overlapping bytes.
    #[error(
        "read tensor `{tensor}` of `{path}`: its data [{begin}, {end}) overlaps tensor `{other}`"
    )]
    OverlappingData {
        path: PathBuf,
        tensor: String,
        other: String,
        begin: u64,
        end: u64,
    },
    /// The file holds no tensor of that name.
    #[error("find tensor `{tensor}` in safetensors file `{path}`")]
    TensorNotFound { path: PathBuf, tensor: String },
    /// An integer element does not survive widening to f32 (|v| > 2²⁴ and not representable).
    #[error(
        "convert tensor `{tensor}` of `{path}` to f32: element {index} ({value}) is not exactly representable"
    )]
    InexactInteger {
        path: PathBuf,
        tensor: String,
        index: usize,
        value: i128,
    },

    // ---- manifest and capture -----------------------------------------------------------
    /// `manifest.json` is not valid JSON or does not match the format.
    #[error("parse capture manifest `{path}`")]
    InvalidManifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The manifest's `schema` is not [`SCHEMA`](super::SCHEMA).
    #[error("open capture `{path}`: the manifest schema is `{found}`, expected `{expected}`")]
    SchemaMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// A `file` in the manifest is absolute or leaves the capture directory.
    #[error("open capture `{dir}`: {owner} names file `{file}`, which {reason}")]
    PathEscape {
        dir: PathBuf,
        /// Which record names the file, e.g. "op `siglip.embed` of module `siglip`".
        owner: String,
        file: String,
        reason: &'static str,
    },
    /// Two modules of a manifest share an id.
    #[error("open capture `{dir}`: module `{module}` appears twice")]
    DuplicateModule { dir: PathBuf, module: String },
    /// Two raw inputs of a manifest share a name.
    #[error("open capture `{dir}`: input `{input}` appears twice")]
    DuplicateInput { dir: PathBuf, input: String },
    /// A shard named by the manifest does not exist.
    #[error("open shard `{file}` of module `{module}`: `{path}` does not exist")]
    MissingShard {
        module: String,
        file: String,
        path: PathBuf,
    },
    /// A record's tensor is not in its shard.
    #[error("find tensor `{tensor}` of op `{op}` (module `{module}`) in shard `{file}`")]
    RecordTensorMissing {
        module: String,
        op: String,
        file: String,
        tensor: String,
    },
    /// A record's declared shape differs from its shard's header.
    #[error(
        "check op `{op}` (module `{module}`) against shard `{file}`: the manifest says shape {expected:?}, the shard holds {found:?}"
    )]
    RecordShapeMismatch {
        module: String,
        op: String,
        file: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A record's declared dtype differs from its shard's header.
    #[error(
        "check op `{op}` (module `{module}`) against shard `{file}`: the manifest says dtype `{expected}`, the shard holds `{found}`"
    )]
    RecordDtypeMismatch {
        module: String,
        op: String,
        file: String,
        expected: String,
        found: String,
    },
    /// No module of that id.
    #[error("find module `{module}` in the capture")]
    UnknownModule { module: String },
    /// No op record or raw input of that name.
    #[error("find tensor `{name}` in the capture: no op record or raw input has that name")]
    UnknownTensor { name: String },
    /// Full data was needed but the record is stats-only (or carries nothing at all).
    #[error("load tensor `{name}`: the capture holds no data for it, at most statistics")]
    StatsOnly { name: String },
    /// A module input that no record or raw input provides.
    #[error(
        "resolve input `{input}` of module `{module}`: no op record or raw input has that name"
    )]
    UnknownModuleInput { module: String, input: String },
    /// A module input whose golden is stats-only (the module cannot be fed).
    #[error(
        "resolve input `{input}` of module `{module}`: the capture holds only statistics for it"
    )]
    ModuleInputStatsOnly { module: String, input: String },

    // ---- writer ---------------------------------------------------------------------------
    /// A module id that cannot name a shard file.
    #[error("add module `{module}` to a capture: {reason}")]
    InvalidModuleId {
        module: String,
        reason: &'static str,
    },
    /// `add_op` for a module that `begin_module` did not start.
    #[error("add op `{op}` to module `{module}`: the module was not begun")]
    ModuleNotBegun { module: String, op: String },
    /// The module already has an op of that name.
    #[error("add op `{op}` to module `{module}`: the module already has an op of that name")]
    DuplicateOp { module: String, op: String },
    /// A raw input of that name was already added.
    #[error("add input `{name}` to a capture: an input of that name was already added")]
    InputAddedTwice { name: String },
    /// The record's shape and its tensor's shape differ.
    #[error(
        "add op `{op}` to module `{module}`: the record says shape {record:?}, the tensor has {tensor:?}"
    )]
    TensorShapeMismatch {
        module: String,
        op: String,
        record: Vec<usize>,
        tensor: Vec<usize>,
    },
    /// A stats-only record without stats.
    #[error("add op `{op}` to module `{module}`: a record without data needs stats")]
    MissingStats { module: String, op: String },
    /// A value cannot be stored in the requested dtype (e.g. 0.5 as I64).
    #[error("store tensor `{tensor}` as {dtype}: element {index} ({value}) is not representable")]
    NotRepresentable {
        tensor: String,
        dtype: &'static str,
        index: usize,
        value: f32,
    },
    /// The writer cannot store this dtype.
    #[error("store tensor `{tensor}`: dtype `{dtype}` is not supported by the writer")]
    WriterDtype { tensor: String, dtype: String },
    /// An op record with the name of a raw input (they share one namespace).
    #[error("write capture `{dir}`: op `{op}` of module `{module}` has the name of a raw input")]
    NameCollision {
        dir: PathBuf,
        module: String,
        op: String,
    },
    /// Earlier `begin_module`/`add_op`/`add_input` calls were rejected, so nothing was written.
    #[error("write capture `{dir}`: {count} earlier call(s) were rejected, the first: {first}")]
    Rejected {
        dir: PathBuf,
        count: usize,
        first: String,
    },
}
