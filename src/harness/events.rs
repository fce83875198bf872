//! The event stream every output consumes (progress bar, TUI, reports).

use crate::harness::record::{ModuleReport, OpReport, RunInfo, RunRecord};

#[derive(Debug, Clone)]
pub enum Event {
    RunStarted {
        info: RunInfo,
        modules: Vec<String>,
    },
    ModuleStarted {
        index: usize,
        total: usize,
        id: String,
        /// Golden op count of the module (for progress).
        expected_ops: usize,
    },
    Op {
        module: String,
        op: Box<OpReport>,
    },
    ModuleFinished {
        index: usize,
        total: usize,
        report: Box<ModuleReport>,
    },
    RunFinished {
        record: Box<RunRecord>,
    },
}

/// Receives events; must be cheap (it runs inside the op door).
pub trait EventSink: Send + Sync {
    fn event(&self, event: &Event);
}

/// Discards everything.
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&self, _event: &Event) {}
}

impl<F: Fn(&Event) + Send + Sync> EventSink for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}
