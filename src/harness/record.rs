//! The run record: what every report, plot and screen is built from. Serialises as
//! `report.json` (schema `pccscope.report/1`).

use serde::{Deserialize, Serialize};

use crate::golden::Stats;
use crate::harness::metrics::Metrics;
use crate::harness::thresholds::Tolerance;

pub const REPORT_SCHEMA: &str = "pccscope.report/1";

/// Outcome of one op or module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// No golden to compare with: never counted as a pass.
    Unchecked,
    /// The op raised; its message is kept.
    Error,
    /// The backend cannot run it; the host fallback ran instead.
    Unsupported,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unchecked => "unchecked",
            Verdict::Error => "error",
            Verdict::Unsupported => "unsupported",
        }
    }

    /// Fail or error.
    pub fn is_bad(self) -> bool {
        matches!(self, Verdict::Fail | Verdict::Error)
    }
}

/// One check (chained or local): the metrics, the tolerance verdict and why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    #[serde(flatten)]
    pub metrics: Metrics,
    pub pass: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The tolerance the check was judged by (reports show it beside the metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Tolerance>,
}

/// A chained check against a stats-only golden record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsCheck {
    pub golden: Stats,
    pub device: Stats,
    /// |‖d‖ − ‖g‖| / ‖g‖
    pub l2_rel_diff: f64,
    /// |σd − σg| / σg
    pub std_rel_diff: f64,
    pub pass: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One executed op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpReport {
    /// Execution index across the whole run.
    pub index: usize,
    pub name: String,
    pub kind: String,
    pub class: String,
    pub verdict: Verdict,
    pub shape: Vec<usize>,
    pub padded_shape: Vec<usize>,
    pub dtype: String,
    pub layout: String,
    pub memory: String,
    pub chained: Option<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chained_stats: Option<StatsCheck>,
    pub local: Option<Check>,
    pub error: Option<String>,
    /// Statistics of the device output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_stats: Option<Stats>,
    /// Statistics of the golden (from the capture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden_stats: Option<Stats>,
    /// Effective precision config of the op on its backend (emu/tt), free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<serde_json::Value>,
    pub duration_us: f64,
}

impl OpReport {
    /// Chained PCC, if the chained check computed one.
    pub fn chained_pcc(&self) -> Option<f64> {
        self.chained.as_ref().and_then(|c| c.metrics.pcc)
    }
    pub fn local_pcc(&self) -> Option<f64> {
        self.local.as_ref().and_then(|c| c.metrics.pcc)
    }
    pub fn local_failed(&self) -> bool {
        self.local.as_ref().is_some_and(|c| !c.pass)
    }
    pub fn chained_failed(&self) -> bool {
        self.chained.as_ref().is_some_and(|c| !c.pass)
            || self.chained_stats.as_ref().is_some_and(|c| !c.pass)
    }
    /// The first-divergence rule: the op raised, or its local check failed (with no reference
    /// backend, `has_local == false`, its chained check failed).
    pub fn diverges(&self, has_local: bool) -> bool {
        self.verdict == Verdict::Error
            || (has_local && self.local_failed())
            || (!has_local && self.chained_failed())
    }
}

/// One module of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleReport {
    pub id: String,
    pub verdict: Verdict,
    /// Minimum chained PCC over the module's ops.
    pub min_pcc: Option<f64>,
    /// Chained PCC of the module's outputs (min over outputs) and the gate it must meet.
    pub output_pcc: Option<f64>,
    pub gate: f64,
    /// `golden` (isolated, or pipeline fallback) or `device` (pipeline).
    pub inputs_from: String,
    pub ops: Vec<OpReport>,
    pub ops_failed: usize,
    /// Share of the module's ops the device backend ran itself, in percent: every op but the
    /// host fallbacks (verdict `unsupported`). `None` when the module ran no op.
    #[serde(default)]
    pub on_device_pct: Option<f64>,
    /// Golden ops with no device counterpart.
    pub missing_device: Vec<String>,
    /// Device ops with no golden.
    pub missing_golden: Vec<String>,
    /// Why the module stopped early, if it did.
    pub error: Option<String>,
    pub duration_s: f64,
}

/// Where the run happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub backend: String,
    pub profile: String,
    pub mode: String,
    pub goldens: String,
    pub thresholds: String,
    /// Seconds since the Unix epoch at the start.
    pub started: String,
    pub duration_s: f64,
}

/// An op located in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpLocation {
    pub module: String,
    pub op: String,
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The op with the sharpest drop in chained PCC from its predecessor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PccDrop {
    pub module: String,
    pub op: String,
    pub index: usize,
    pub from: f64,
    pub to: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub verdict: Verdict,
    pub modules: usize,
    pub modules_failed: usize,
    pub ops: usize,
    pub ops_checked: usize,
    pub ops_failed: usize,
    pub ops_error: usize,
    pub ops_unsupported: usize,
    /// Fraction of golden ops that a device op was checked against.
    pub coverage: f64,
    /// First op whose local check failed or that raised (with a `cpu` device, which has no
    /// local check, the first whose chained check failed).
    pub first_divergence: Option<OpLocation>,
    pub sharpest_drop: Option<PccDrop>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: String,
    pub run: RunInfo,
    pub summary: Summary,
    pub modules: Vec<ModuleReport>,
}
