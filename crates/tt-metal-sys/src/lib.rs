//! `tt-metal-sys`: a small, versioned C ABI over TT-NN (`include/ttm.h`) and its Rust side.
//!
//! * [`ffi`] — hand-written `extern "C"` declarations mirroring the header.
//! * [`Device`], [`Tensor`], [`TtError`] — a thin safe layer (RAII handles, typed options,
//!   TT-NN errors parsed into kind / file:line / condition / message).
//!
//! Which implementation of the ABI gets linked is chosen by cargo features (see `build.rs` and
//! the crate README):
//!
//! * `tt` — `shim/ttm.cpp` against a built tt-metal tree (`TT_METAL_HOME`);
//! * `host-shim` — `shim/host.c`, every entry point on the CPU with TT-NN's layout rules;
//! * neither — nothing is linked and only [`COMPILED`] exists.
//!
//! `unsafe` is confined to this crate; every block states why it is sound.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(any(feature = "tt", feature = "host-shim"))]
pub mod ffi;
#[cfg(any(feature = "tt", feature = "host-shim"))]
mod safe;
#[cfg(any(feature = "tt", feature = "host-shim"))]
pub use safe::*;

/// Whether an implementation of the ABI is linked into this build.
pub const COMPILED: bool = cfg!(any(feature = "tt", feature = "host-shim"));
