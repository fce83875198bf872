//! pccscope: run the 11 pi0 modules on a device backend and check every op against golden
//! PyTorch activations, twice — *chained* (vs the golden) and *local* (vs the reference backend
//! on the device's own inputs).
//!
//! Crate map and dependency rule (arrows point at what a layer may use):
//!
//! ```text
//! tensor ← backend ← modules ← harness → golden
//!                                 ↑
//!                        report, (tui) read harness records/events and metric types
//! cli wires everything; printing happens only in cli/ (and tui/).
//! ```

pub mod backend;
pub mod cli;
pub mod golden;
pub mod harness;
pub mod modules;
pub mod report;
pub mod tensor;
pub mod tui;
