//! Runs the selected modules in `isolated` or `pipeline` mode and folds the op records into a
//! [`RunRecord`]. A module that fails or raises is recorded and the run goes on with the next.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::backend::Backend;
use crate::golden::{Capture, CaptureWriter};
use crate::harness::events::{Event, EventSink};
use crate::harness::record::{
    ModuleReport, OpLocation, OpReport, PccDrop, RunInfo, RunRecord, Summary, Verdict,
    REPORT_SCHEMA,
};
use crate::harness::thresholds::Thresholds;
use crate::harness::tracer::Tracer;
use crate::modules::{run_module, Ctx, Env, ModuleId, Pi0Config, Weights};

/// How module inputs are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every module is fed its golden inputs.
    Isolated,
    /// Each module receives the device outputs of the modules before it.
    Pipeline,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Isolated => "isolated",
            Mode::Pipeline => "pipeline",
        }
    }
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "isolated" => Some(Mode::Isolated),
            "pipeline" => Some(Mode::Pipeline),
            _ => None,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: Mode,
    pub modules: Vec<ModuleId>,
    /// Stop after the first module that fails or raises.
    pub fail_fast: bool,
    pub run_id: String,
    pub goldens_label: String,
}

/// Everything a run reads.
pub struct RunInputs<'a> {
    pub capture: &'a Capture,
    pub cfg: &'a Pi0Config,
    pub weights: &'a Weights,
    pub thresholds: &'a Thresholds,
    pub device: &'a dyn Backend,
    /// Reference backend for local checks and host fallback (`None` when the device is it).
    pub reference: Option<&'a dyn Backend>,
    pub trace: Option<&'a Mutex<CaptureWriter>>,
}

/// Executes the run, streaming events to `sink`.
pub fn run(inp: &RunInputs<'_>, opts: &RunOptions, sink: &dyn EventSink) -> RunRecord {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t0 = Instant::now();
    let mut info = RunInfo {
        id: opts.run_id.clone(),
        backend: inp.device.name().to_string(),
        profile: inp.device.profile().to_string(),
        mode: opts.mode.as_str().to_string(),
        goldens: opts.goldens_label.clone(),
        thresholds: inp.thresholds.describe(),
        started: started.to_string(),
        duration_s: 0.0,
    };
    sink.event(&Event::RunStarted {
        info: info.clone(),
        modules: opts
            .modules
            .iter()
            .map(|m| m.as_str().to_string())
            .collect(),
    });
    let tracer = Tracer::new(
        inp.device,
        inp.reference,
        inp.capture,
        inp.thresholds,
        sink,
        inp.trace,
    );
    let ctx = Ctx {
        backend: &tracer,
        weights: inp.weights,
        cfg: inp.cfg,
    };
    let mut carried = Env::new();
    let mut modules = Vec::new();
    let total = opts.modules.len();
    for (index, &id) in opts.modules.iter().enumerate() {
        let expected_ops = inp.capture.module(id.as_str()).map_or(0, |m| m.ops.len());
        sink.event(&Event::ModuleStarted {
            index,
            total,
            id: id.as_str().to_string(),
            expected_ops,
        });
        let report = run_one(inp, opts.mode, id, &tracer, &ctx, &mut carried);
        let bad = report.verdict.is_bad();
        sink.event(&Event::ModuleFinished {
            index,
            total,
            report: Box::new(report.clone()),
        });
        modules.push(report);
        if bad && opts.fail_fast {
            break;
        }
    }
    info.duration_s = t0.elapsed().as_secs_f64();
    let summary = summarize(&modules, inp.reference.is_some());
    let record = RunRecord {
        schema: REPORT_SCHEMA.to_string(),
        run: info,
        summary,
        modules,
    };
    sink.event(&Event::RunFinished {
        record: Box::new(record.clone()),
    });
    record
}

fn run_one(
    inp: &RunInputs<'_>,
    mode: Mode,
    id: ModuleId,
    tracer: &Tracer<'_>,
    ctx: &Ctx<'_>,
    carried: &mut Env,
) -> ModuleReport {
    let t0 = Instant::now();
    let gate = inp.thresholds.module_gate(id.as_str());
    let mut report = ModuleReport {
        id: id.as_str().to_string(),
        verdict: Verdict::Error,
        min_pcc: None,
        output_pcc: None,
        gate,
        inputs_from: "golden".into(),
        ops: Vec::new(),
        ops_failed: 0,
        on_device_pct: None,
        missing_device: Vec::new(),
        missing_golden: Vec::new(),
        error: None,
        duration_s: 0.0,
    };
    let golden_ops: Vec<String> = inp
        .capture
        .module(id.as_str())
        .map(|m| m.ops.iter().map(|o| o.name.clone()).collect())
        .unwrap_or_default();
    if let Err(e) = inp.capture.check_module(id.as_str()) {
        report.error = Some(error_chain(&e));
        report.missing_device = golden_ops;
        report.duration_s = t0.elapsed().as_secs_f64();
        return report;
    }

    // Inputs: golden (isolated, or pipeline where upstream produced nothing) or carried.
    let mut env = Env::new();
    let mut from_device = 0usize;
    let mut input_error = None;
    for name in id.inputs(inp.cfg) {
        if mode == Mode::Pipeline {
            if let Some(t) = carried.get(&name) {
                env.insert(name, t.clone());
                from_device += 1;
                continue;
            }
        }
        match inp.capture.tensor(&name) {
            Ok(t) => match inp.device.upload(&name, t.with_origin(name.as_str())) {
                Ok(t) => {
                    env.insert(name, t);
                }
                Err(e) => {
                    input_error = Some(format!("upload input `{name}`: {e}"));
                    break;
                }
            },
            Err(e) => {
                input_error = Some(format!("read golden input `{name}`: {}", error_chain(&e)));
                break;
            }
        }
    }
    if mode == Mode::Pipeline && from_device > 0 {
        report.inputs_from = if from_device == env.len() {
            "device".into()
        } else {
            "device+golden".into()
        };
    }
    if let Some(e) = input_error {
        report.error = Some(e);
        report.missing_device = golden_ops;
        report.duration_s = t0.elapsed().as_secs_f64();
        return report;
    }

    tracer.begin_module(id.as_str());
    let result = run_module(id, ctx, &mut env);
    let ops = tracer.end_module();
    if let Err(e) = &result {
        report.error = Some(error_chain(e));
    }
    if mode == Mode::Pipeline {
        for name in id.outputs(inp.cfg) {
            if let Some(t) = env.remove(&name) {
                carried.insert(name, t);
            }
        }
    }

    let outputs: HashSet<String> = id.outputs(inp.cfg).into_iter().collect();
    fold_module(&mut report, ops, &golden_ops, &outputs, result.is_err());
    report.duration_s = t0.elapsed().as_secs_f64();
    report
}

/// Folds the op reports of one module into its report: the names without a counterpart on
/// either side, the failure count, the minimum and output PCC (against `report.gate`), and the
/// module verdict. `raised` says the module stopped with an error (already in `report.error`).
/// Shared with the offline comparison of captures.
pub(crate) fn fold_module(
    report: &mut ModuleReport,
    ops: Vec<OpReport>,
    golden_ops: &[String],
    outputs: &HashSet<String>,
    raised: bool,
) {
    let gate = report.gate;
    let device_names: HashSet<&str> = ops.iter().map(|o| o.name.as_str()).collect();
    let golden_names: HashSet<&str> = golden_ops.iter().map(String::as_str).collect();
    report.missing_device = golden_ops
        .iter()
        .filter(|n| !device_names.contains(n.as_str()))
        .cloned()
        .collect();
    report.missing_golden = ops
        .iter()
        .filter(|o| !golden_names.contains(o.name.as_str()))
        .map(|o| o.name.clone())
        .collect();
    report.ops_failed = ops.iter().filter(|o| o.verdict.is_bad()).count();
    report.on_device_pct = on_device_pct(&ops);
    report.min_pcc = ops
        .iter()
        .filter_map(OpReport::chained_pcc)
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.min(p))));
    report.output_pcc = ops
        .iter()
        .filter(|o| outputs.contains(&o.name))
        .filter_map(OpReport::chained_pcc)
        .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.min(p))));
    let checked = ops
        .iter()
        .any(|o| o.chained.is_some() || o.chained_stats.is_some() || o.local.is_some());
    let below_gate = report.output_pcc.is_some_and(|p| p < gate);
    if below_gate && report.error.is_none() {
        report.error = Some(format!(
            "module output PCC {:.6} below the gate {gate}",
            report.output_pcc.unwrap_or(f64::NAN)
        ));
    }
    report.verdict = if raised {
        Verdict::Error
    } else if report.ops_failed > 0 || below_gate {
        Verdict::Fail
    } else if !checked {
        Verdict::Unchecked
    } else if !report.missing_device.is_empty() {
        // Golden ops that never ran: coverage gap, not a pass.
        Verdict::Fail
    } else {
        Verdict::Pass
    };
    if report.verdict == Verdict::Fail
        && report.ops_failed == 0
        && !below_gate
        && report.error.is_none()
    {
        report.error = Some(format!(
            "{} golden ops have no device counterpart",
            report.missing_device.len()
        ));
    }
    report.ops = ops;
}

/// An error and its causes, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        src = s.source();
    }
    msg
}

/// Percentage of `ops` that did not fall back to the host (`None` for no ops).
pub fn on_device_pct(ops: &[OpReport]) -> Option<f64> {
    if ops.is_empty() {
        return None;
    }
    let fallback = ops
        .iter()
        .filter(|o| o.verdict == Verdict::Unsupported)
        .count();
    Some(100.0 * (ops.len() - fallback) as f64 / ops.len() as f64)
}

/// Folds module reports into the run summary.
pub fn summarize(modules: &[ModuleReport], has_local: bool) -> Summary {
    let all = || {
        modules
            .iter()
            .flat_map(|m| m.ops.iter().map(move |o| (m, o)))
    };
    let ops = all().count();
    let ops_checked = all()
        .filter(|(_, o)| o.chained.is_some() || o.chained_stats.is_some() || o.local.is_some())
        .count();
    let ops_failed = all().filter(|(_, o)| o.verdict == Verdict::Fail).count();
    let ops_error = all().filter(|(_, o)| o.verdict == Verdict::Error).count();
    let ops_unsupported = all()
        .filter(|(_, o)| o.verdict == Verdict::Unsupported)
        .count();
    let golden_total: usize = modules
        .iter()
        .map(|m| {
            m.ops
                .iter()
                .filter(|o| !m.missing_golden.contains(&o.name))
                .count()
                + m.missing_device.len()
        })
        .sum();
    let golden_checked: usize = modules
        .iter()
        .map(|m| {
            m.ops
                .iter()
                .filter(|o| o.chained.is_some() || o.chained_stats.is_some())
                .count()
        })
        .sum();
    let coverage = if golden_total == 0 {
        0.0
    } else {
        golden_checked as f64 / golden_total as f64
    };
    let first_divergence = all()
        .find(|(_, o)| o.diverges(has_local))
        .map(|(m, o)| OpLocation {
            module: m.id.clone(),
            op: o.name.clone(),
            index: o.index,
            reason: o.error.clone().or_else(|| {
                let c = if has_local { &o.local } else { &o.chained };
                c.as_ref()
                    .and_then(|c| c.reason.clone())
                    .or_else(|| o.chained_stats.as_ref().and_then(|c| c.reason.clone()))
            }),
        });
    let mut sharpest: Option<PccDrop> = None;
    for m in modules {
        let mut prev: Option<f64> = None;
        for o in &m.ops {
            if let Some(p) = o.chained_pcc() {
                if let Some(q) = prev {
                    let drop = q - p;
                    if drop > 0.0 && sharpest.as_ref().is_none_or(|s| drop > s.from - s.to) {
                        sharpest = Some(PccDrop {
                            module: m.id.clone(),
                            op: o.name.clone(),
                            index: o.index,
                            from: q,
                            to: p,
                        });
                    }
                }
                prev = Some(p);
            }
        }
    }
    let modules_failed = modules.iter().filter(|m| m.verdict.is_bad()).count();
    let verdict = if modules.iter().any(|m| m.verdict == Verdict::Error) || ops_error > 0 {
        Verdict::Error
    } else if modules_failed > 0 || ops_failed > 0 {
        Verdict::Fail
    } else if ops_checked == 0 {
        Verdict::Unchecked
    } else {
        Verdict::Pass
    };
    Summary {
        verdict,
        modules: modules.len(),
        modules_failed,
        ops,
        ops_checked,
        ops_failed,
        ops_error,
        ops_unsupported,
        coverage,
        first_divergence,
        sharpest_drop: sharpest,
    }
}
