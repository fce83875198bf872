//! The harness: the tracer (the one door every op passes), metrics and tolerances, the run
//! modes, verdicts, events and the run record, and the offline comparison of captures.

pub mod compare;
pub mod events;
pub mod metrics;
pub mod record;
pub mod runner;
pub mod thresholds;
pub mod tracer;

pub use events::{Event, EventSink, NullSink};
pub use record::{ModuleReport, OpReport, RunRecord, Verdict};
pub use runner::{run, Mode, RunInputs, RunOptions};
pub use tracer::Tracer;
