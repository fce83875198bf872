//! `junit.xml`: one test suite per module, one test case per op (or per layer), plus a
//! `module gate` case per suite for the module's own verdict (output PCC gate, module errors,
//! coverage). Failures carry the metrics and the tolerances they were judged by.
//!
//! Verdict mapping: pass → success; fail → `<failure>`; error → `<error>`; unchecked (no golden)
//! and unsupported (host fallback) → `<skipped>` with the reason, so neither counts as a pass.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::harness::record::{Check, ModuleReport, OpReport, RunRecord, Verdict};
use crate::report::view::{fmt_metrics, fmt_pcc, fmt_sci, fmt_tolerance, segments};

/// One test case per op or per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    #[default]
    Op,
    /// One case per `layers.{i}` block; ops outside layers stay one case each.
    Layer,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Granularity> {
        match s {
            "op" => Some(Granularity::Op),
            "layer" => Some(Granularity::Layer),
            _ => None,
        }
    }
}

/// Renders the JUnit XML.
///
/// # Errors
/// Serialisation failures of the XML writer.
pub fn render(
    r: &RunRecord,
    granularity: Granularity,
) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("pccscope");
    report.set_time(secs(r.run.duration_s));
    for m in &r.modules {
        report.add_test_suite(suite(r, m, granularity));
    }
    report.to_string()
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}

fn suite(r: &RunRecord, m: &ModuleReport, granularity: Granularity) -> TestSuite {
    let mut suite = TestSuite::new(m.id.as_str());
    suite.set_time(secs(m.duration_s));
    let props = [
        ("backend", r.run.backend.clone()),
        ("profile", r.run.profile.clone()),
        ("mode", r.run.mode.clone()),
        ("verdict", m.verdict.as_str().to_string()),
        ("gate", m.gate.to_string()),
        ("output_pcc", fmt_pcc(m.output_pcc)),
        ("min_pcc", fmt_pcc(m.min_pcc)),
        ("inputs_from", m.inputs_from.clone()),
    ];
    for (k, v) in props {
        suite.add_property(Property::new(k, v));
    }
    let classname = format!("pccscope.{}", m.id);
    match granularity {
        Granularity::Op => {
            for o in &m.ops {
                let mut case = TestCase::new(o.name.as_str(), op_status(o));
                case.set_classname(classname.as_str());
                case.set_time(secs(o.duration_us * 1e-6));
                suite.add_test_case(case);
            }
        }
        Granularity::Layer => {
            for seg in segments(m) {
                let ops: Vec<&OpReport> = seg.ops.iter().map(|&i| &m.ops[i]).collect();
                let mut case = TestCase::new(seg.name(m), group_status(&ops));
                case.set_classname(classname.as_str());
                case.set_time(secs(ops.iter().map(|o| o.duration_us).sum::<f64>() * 1e-6));
                suite.add_test_case(case);
            }
        }
    }
    let mut gate = TestCase::new("module gate", module_status(m));
    gate.set_classname(classname.as_str());
    suite.add_test_case(gate);
    suite
}

/// The failing check first (local before chained), then every check with its tolerance.
fn describe(o: &OpReport) -> String {
    let mut lines = vec![format!(
        "op {} (#{}) kind {} class {} · shape {:?} dtype {} layout {} memory {}",
        o.name, o.index, o.kind, o.class, o.shape, o.dtype, o.layout, o.memory
    )];
    let mut check = |what: &str, c: &Check| {
        lines.push(format!(
            "{what}: {} · {}",
            if c.pass { "pass" } else { "FAIL" },
            fmt_metrics(c)
        ));
        if let Some(t) = &c.tolerance {
            lines.push(format!("{what} tolerance: {}", fmt_tolerance(t)));
        }
        if let Some(reason) = &c.reason {
            lines.push(format!("{what} reason: {reason}"));
        }
        for w in &c.metrics.worst {
            lines.push(format!(
                "{what} worst: index {} reference {} device {} |diff| {}",
                w.index,
                w.golden,
                w.device,
                fmt_sci(w.abs_diff)
            ));
        }
    };
    if let Some(c) = &o.local {
        check("local", c);
    }
    if let Some(c) = &o.chained {
        check("chained", c);
    }
    if let Some(s) = &o.chained_stats {
        lines.push(format!(
            "chained (stats-only golden): {} · l2 rel diff {} · std rel diff {}{}",
            if s.pass { "pass" } else { "FAIL" },
            fmt_sci(s.l2_rel_diff),
            fmt_sci(s.std_rel_diff),
            s.reason
                .as_deref()
                .map(|r| format!(" · {r}"))
                .unwrap_or_default()
        ));
    }
    if let Some(e) = &o.error {
        lines.push(format!("error: {e}"));
    }
    lines.join("\n")
}

/// `local: pcc 0.98 < 0.99999` — the first failing check and its reason.
fn failure_message(o: &OpReport) -> String {
    let failed = [("local", &o.local), ("chained", &o.chained)]
        .into_iter()
        .find_map(|(w, c)| c.as_ref().filter(|c| !c.pass).map(|c| (w, c)));
    match failed {
        Some((w, c)) => format!(
            "{w} check failed: {}",
            c.reason.as_deref().unwrap_or("outside tolerance")
        ),
        None => match &o.chained_stats {
            Some(s) if !s.pass => format!(
                "chained check (stats-only golden) failed: {}",
                s.reason.as_deref().unwrap_or("outside tolerance")
            ),
            _ => o.error.clone().unwrap_or_else(|| "failed".into()),
        },
    }
}

fn which_check(o: &OpReport) -> &'static str {
    if o.local_failed() {
        "local"
    } else {
        "chained"
    }
}

fn op_status(o: &OpReport) -> TestCaseStatus {
    match o.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(failure_message(o));
            s.set_type(which_check(o));
            s.set_description(describe(o));
            s
        }
        Verdict::Error => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(o.error.clone().unwrap_or_else(|| "op raised".into()));
            s.set_type("op error");
            s.set_description(describe(o));
            s
        }
        Verdict::Unchecked => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("unchecked: no golden for this op");
            s
        }
        Verdict::Unsupported => {
            let mut s = TestCaseStatus::skipped();
            s.set_message("unsupported on the device: the host fallback ran");
            s.set_description(describe(o));
            s
        }
    }
}

fn group_status(ops: &[&OpReport]) -> TestCaseStatus {
    if ops.len() == 1 {
        return op_status(ops[0]);
    }
    let errors: Vec<&&OpReport> = ops.iter().filter(|o| o.verdict == Verdict::Error).collect();
    let fails: Vec<&&OpReport> = ops.iter().filter(|o| o.verdict == Verdict::Fail).collect();
    let bad: Vec<&&OpReport> = errors.iter().chain(fails.iter()).copied().collect();
    if !bad.is_empty() {
        let kind = if errors.is_empty() {
            NonSuccessKind::Failure
        } else {
            NonSuccessKind::Error
        };
        let mut s = TestCaseStatus::non_success(kind);
        let first = bad.iter().min_by_key(|o| o.index).map_or(bad[0], |o| *o);
        s.set_message(format!(
            "{} of {} ops failed or raised; first {}: {}",
            bad.len(),
            ops.len(),
            first.name,
            if first.verdict == Verdict::Error {
                first.error.clone().unwrap_or_default()
            } else {
                failure_message(first)
            }
        ));
        s.set_type(if errors.is_empty() {
            which_check(first)
        } else {
            "op error"
        });
        let mut sorted = bad.clone();
        sorted.sort_by_key(|o| o.index);
        s.set_description(
            sorted
                .iter()
                .map(|o| describe(o))
                .collect::<Vec<_>>()
                .join("\n\n"),
        );
        return s;
    }
    let checked = ops
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Pass))
        .count();
    if checked == 0 {
        let mut s = TestCaseStatus::skipped();
        s.set_message(format!(
            "none of {} ops was checked on the device (unchecked or unsupported)",
            ops.len()
        ));
        return s;
    }
    TestCaseStatus::success()
}

/// The module's own verdict beyond its ops: a module error, the output PCC gate, golden ops
/// that never ran. Op failures alone are reported by the op cases, not again here.
fn module_status(m: &ModuleReport) -> TestCaseStatus {
    let below_gate = m.output_pcc.is_some_and(|p| p < m.gate);
    let (kind, ty, message) = if m.verdict == Verdict::Error {
        (
            NonSuccessKind::Error,
            "module error",
            m.error
                .clone()
                .unwrap_or_else(|| "the module raised".into()),
        )
    } else if below_gate {
        (
            NonSuccessKind::Failure,
            "gate",
            format!(
                "output PCC {} below the module gate {}",
                fmt_pcc(m.output_pcc),
                m.gate
            ),
        )
    } else if !m.missing_device.is_empty() {
        (
            NonSuccessKind::Failure,
            "coverage",
            format!(
                "{} golden ops have no device counterpart",
                m.missing_device.len()
            ),
        )
    } else if m.verdict == Verdict::Unchecked {
        let mut s = TestCaseStatus::skipped();
        s.set_message("no op of this module was checked");
        return s;
    } else {
        return TestCaseStatus::success();
    };
    let mut desc = format!(
        "module {} verdict {} · output PCC {} (gate {}) · min PCC {} · {} ops, {} failed · inputs from {}",
        m.id,
        m.verdict.as_str(),
        fmt_pcc(m.output_pcc),
        m.gate,
        fmt_pcc(m.min_pcc),
        m.ops.len(),
        m.ops_failed,
        m.inputs_from
    );
    if !m.missing_device.is_empty() {
        desc.push_str(&format!(
            "\ngolden ops with no device counterpart: {}",
            m.missing_device.join(", ")
        ));
    }
    if !m.missing_golden.is_empty() {
        desc.push_str(&format!(
            "\ndevice ops with no golden: {}",
            m.missing_golden.join(", ")
        ));
    }
    let mut s = TestCaseStatus::non_success(kind);
    s.set_message(message);
    s.set_type(ty);
    s.set_description(desc);
    s
}
