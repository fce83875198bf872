//! The `tt` backend: Tenstorrent hardware through TT-NN, via the `tt-metal-sys` C ABI.
//!
//! Built with `--features tt` (real TT-NN; needs `TT_METAL_HOME`) or `--features host-shim`
//! (the host implementation of the same ABI: the whole FFI path on the CPU), the backend is
//! `enabled.rs`'s. Without either it is `disabled.rs`'s: the same type, whose constructors return
//! [`TtBackendError::NotCompiled`] — no caller needs a `cfg`.
//!
//! How each op kind reaches TT-NN (fused op, composite of TT-NN ops, or host fallback) is
//! documented on the enabled backend and recorded per op as `precision.impl`.

mod host;
mod precision;

#[cfg(any(feature = "tt", feature = "host-shim"))]
mod enabled;
#[cfg(any(feature = "tt", feature = "host-shim"))]
pub use enabled::TtBackend;

#[cfg(not(any(feature = "tt", feature = "host-shim")))]
mod disabled;
#[cfg(not(any(feature = "tt", feature = "host-shim")))]
pub use disabled::TtBackend;

pub use precision::{MathFidelity, OpPrecision, TtPrecision};

use thiserror::Error;

/// Whether this build has an implementation of the tt backend.
pub const COMPILED: bool = cfg!(any(feature = "tt", feature = "host-shim"));

/// Why the tt backend could not be created.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum TtBackendError {
    #[error(
        "backend `tt` is not compiled into this build: rebuild with `--features tt` (Tenstorrent \
         hardware; needs TT_METAL_HOME pointing at a built tt-metal tree) or `--features \
         host-shim` (the CPU implementation of the same TT-NN ABI)"
    )]
    NotCompiled,
    #[error("unknown tt precision profile `{name}` (presets: {})", TtPrecision::PRESETS.join(", "))]
    UnknownProfile { name: String },
    #[error("open tt device {id}: {message}")]
    Device { id: i32, message: String },
}

/// Resolves a `--profile` value (`None` = [`TtPrecision::DEFAULT`]).
pub fn profile(name: Option<&str>) -> Result<TtPrecision, TtBackendError> {
    let name = name.unwrap_or(TtPrecision::DEFAULT);
    TtPrecision::preset(name).ok_or_else(|| TtBackendError::UnknownProfile {
        name: name.to_string(),
    })
}
