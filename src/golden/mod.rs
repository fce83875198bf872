//! The capture format (goldens/README.md, `schema: "pccscope.capture/1"`): a directory of
//! `manifest.json` plus safetensors shards, read by [`Capture`] and written by
//! [`CaptureWriter`].
//!
//! * [`SafetensorsFile`]: memory-mapped reader that validates only the header on open.
//! * [`Manifest`] and its records: the serde types of `manifest.json`.
//! * [`stats`]: per-record statistics, bit-identical to the Python writer's (no I/O).
//! * [`Capture`]: the reader; shards are mapped lazily, [`Capture::check_module`] validates one
//!   module so a broken shard fails only the modules that need it.
//! * [`CaptureWriter`]: atomic, deterministic writer (device traces, test fixtures);
//!   [`rewrite_tensor`] perturbs one golden in place.

mod capture;
mod error;
mod manifest;
mod safetensors;
mod stats;
mod writer;

pub use capture::{Capture, Golden};
pub use error::{GoldenError, GoldenErrorKind};
pub use manifest::{CheckpointRef, InputRecord, Manifest, ModuleRecord, OpRecord, SCHEMA};
pub use safetensors::{SafetensorsDtype, SafetensorsFile, TensorInfo};
pub use stats::{fnv1a64, fnv1a64_f32, stats, tensor_hash, Stats};
pub use writer::{rewrite_tensor, CaptureWriter, INPUTS_SHARD};
