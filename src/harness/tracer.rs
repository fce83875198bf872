//! The tracer: a backend that wraps the device backend. Every op of every module passes through
//! [`Tracer::exec`], which times it, records its metadata, runs the chained check (against the
//! golden of the same name) and the local check (against the reference backend on the device's
//! own inputs), emits an event, and optionally saves the output to a trace capture.

use std::sync::Mutex;
use std::time::Instant;

use crate::backend::{Backend, Op, OpError};
use crate::golden::{stats, Capture, CaptureWriter, Golden, OpRecord as CaptureOp, Stats};
use crate::harness::events::{Event, EventSink};
use crate::harness::metrics::{compare, judge, CompareOpts, Metrics};
use crate::harness::record::{Check, OpReport, StatsCheck, Verdict};
use crate::harness::thresholds::{Thresholds, Tolerance};
use crate::tensor::{DType, Tensor};

/// Worst elements kept for a failing check.
const TOP_K: usize = 8;

#[derive(Default)]
struct State {
    module: String,
    ops: Vec<OpReport>,
    next_index: usize,
}

/// The one door. Modules see it only as a [`Backend`].
pub struct Tracer<'a> {
    device: &'a dyn Backend,
    reference: Option<&'a dyn Backend>,
    goldens: &'a Capture,
    thresholds: &'a Thresholds,
    sink: &'a dyn EventSink,
    trace: Option<&'a Mutex<CaptureWriter>>,
    state: Mutex<State>,
}

impl<'a> Tracer<'a> {
    /// `reference` is the backend of the local check and of host fallbacks; `None` when the
    /// device is the reference itself (then there is no local check).
    pub fn new(
        device: &'a dyn Backend,
        reference: Option<&'a dyn Backend>,
        goldens: &'a Capture,
        thresholds: &'a Thresholds,
        sink: &'a dyn EventSink,
        trace: Option<&'a Mutex<CaptureWriter>>,
    ) -> Tracer<'a> {
        Tracer {
            device,
            reference,
            goldens,
            thresholds,
            sink,
            trace,
            state: Mutex::new(State::default()),
        }
    }

    /// Starts collecting the ops of `module`.
    pub fn begin_module(&self, module: &str) {
        let mut st = self.lock();
        st.module = module.to_string();
        st.ops.clear();
    }

    /// Hands back the ops recorded since [`Tracer::begin_module`].
    pub fn end_module(&self) -> Vec<OpReport> {
        std::mem::take(&mut self.lock().ops)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A full check of `device` against `golden` under `tol` (top-k worst elements when it
    /// fails). Shared with the offline comparison of captures.
    pub(crate) fn check(
        golden: &[f32],
        device: &[f32],
        dtype: DType,
        tol: &Tolerance,
    ) -> Result<Check, String> {
        let mut opts = CompareOpts {
            atol: tol.atol,
            rtol: tol.rtol,
            dtype,
            top_k: 0,
        };
        let mut metrics: Metrics = compare(golden, device, &opts).map_err(|e| e.to_string())?;
        let j = judge(&metrics, tol);
        if !j.pass {
            opts.top_k = TOP_K;
            metrics = compare(golden, device, &opts).map_err(|e| e.to_string())?;
        }
        Ok(Check {
            metrics,
            pass: j.pass,
            reason: j.reason,
            tolerance: Some(tol.clone()),
        })
    }

    /// A check against a stats-only record (norm and spread within `rel_l2_max`, same NaN/Inf
    /// counts). Shared with the offline comparison of captures.
    pub(crate) fn stats_check(golden: &Stats, device: Stats, tol: &Tolerance) -> StatsCheck {
        let rel = |d: f64, g: f64| {
            if g == 0.0 {
                if d == 0.0 {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (d - g).abs() / g.abs()
            }
        };
        let l2 = rel(device.l2, golden.l2);
        let sd = rel(device.std, golden.std);
        let limit = tol.rel_l2_max.unwrap_or(1e-3);
        let mut reason = None;
        if device.nan != golden.nan || device.inf != golden.inf {
            reason = Some(format!(
                "nan/inf counts differ: device {}/{}, golden {}/{}",
                device.nan, device.inf, golden.nan, golden.inf
            ));
        } else if l2 > limit || l2.is_nan() {
            reason = Some(format!(
                "l2 norm differs by {l2:.3e} > {limit:.1e} (stats-only golden)"
            ));
        } else if sd > limit || sd.is_nan() {
            reason = Some(format!(
                "std differs by {sd:.3e} > {limit:.1e} (stats-only golden)"
            ));
        }
        StatsCheck {
            golden: golden.clone(),
            device,
            l2_rel_diff: l2,
            std_rel_diff: sd,
            pass: reason.is_none(),
            reason,
        }
    }

    fn record(&self, report: OpReport, out: Option<&Tensor>) {
        self.record_with(report, out, None)
    }

    /// Records an op; with a trace writer, `op`/`inputs` describe it in the saved capture.
    fn record_with(
        &self,
        mut report: OpReport,
        out: Option<&Tensor>,
        op: Option<(&Op, &[&Tensor])>,
    ) {
        let module = {
            let mut st = self.lock();
            report.index = st.next_index;
            st.next_index += 1;
            st.ops.push(report.clone());
            st.module.clone()
        };
        if let (Some(w), Some(t)) = (self.trace, out) {
            if let Ok(mut w) = w.lock() {
                let rec = self.trace_record(&report, t, op);
                // A failure to buffer the trace must not stop the run; the writer reports it
                // again at finish().
                let _ = w.add_op(&module, rec, Some(t));
            }
        }
        self.sink.event(&Event::Op {
            module,
            op: Box::new(report),
        });
    }
}

impl Tracer<'_> {
    /// The capture record of a traced op: kind and attrs, its activation inputs (names the
    /// goldens know as ops or raw inputs) and its parameters (every other named input).
    fn trace_record(&self, r: &OpReport, t: &Tensor, op: Option<(&Op, &[&Tensor])>) -> CaptureOp {
        let mut inputs = Vec::new();
        let mut params = Vec::new();
        let mut attrs = serde_json::json!({});
        if let Some((op, tensors)) = op {
            attrs = op.kind.attrs();
            for x in tensors {
                let Some(name) = x.origin.as_deref() else {
                    continue;
                };
                if self.goldens.record(name).is_some() || self.goldens.input(name).is_some() {
                    inputs.push(name.to_string());
                } else {
                    params.push(name.to_string());
                }
            }
        }
        CaptureOp {
            name: r.name.clone(),
            kind: r.kind.clone(),
            attrs,
            inputs,
            params,
            shape: t.shape().to_vec(),
            dtype: "F32".into(),
            file: None,
            tensor: None,
            stats: None,
            layout: Some(r.layout.clone()),
            memory: Some(r.memory.clone()),
            padded_shape: Some(r.padded_shape.clone()),
            device_dtype: Some(r.dtype.clone()),
            precision: r.precision.clone(),
            error: None,
        }
    }
}

impl Backend for Tracer<'_> {
    fn name(&self) -> &str {
        self.device.name()
    }

    fn profile(&self) -> &str {
        self.device.profile()
    }

    fn upload(&self, name: &str, tensor: Tensor) -> Result<Tensor, OpError> {
        self.device.upload(name, tensor)
    }

    fn reference_input(&self, input: &Tensor) -> Option<Tensor> {
        self.device.reference_input(input)
    }

    fn exec(&self, op: &Op, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let class = op.kind.class();
        let module = self.lock().module.clone();
        let mut report = OpReport {
            index: 0,
            name: op.name.clone(),
            kind: op.kind.as_str().to_string(),
            class: class.as_str().to_string(),
            verdict: Verdict::Pass,
            shape: Vec::new(),
            padded_shape: Vec::new(),
            dtype: String::new(),
            layout: String::new(),
            memory: String::new(),
            chained: None,
            chained_stats: None,
            local: None,
            error: None,
            device_stats: None,
            golden_stats: None,
            precision: None,
            duration_us: 0.0,
        };

        let t0 = Instant::now();
        let result = self.device.exec(op, inputs);
        report.duration_us = t0.elapsed().as_secs_f64() * 1e6;

        let mut fallback = false;
        let out = match result {
            Ok(t) => t,
            Err(unsupported @ OpError::Unsupported { .. }) => {
                match self.reference.map(|r| r.exec(op, inputs)) {
                    Some(Ok(t)) => {
                        fallback = true;
                        t
                    }
                    Some(Err(e)) => {
                        report.verdict = Verdict::Error;
                        report.error = Some(format!("{unsupported}; host fallback failed: {e}"));
                        self.record(report, None);
                        return Err(e);
                    }
                    None => {
                        report.verdict = Verdict::Error;
                        report.error = Some(unsupported.to_string());
                        self.record(report, None);
                        return Err(unsupported);
                    }
                }
            }
            Err(e) => {
                report.verdict = Verdict::Error;
                report.error = Some(e.to_string());
                self.record(report, None);
                return Err(e);
            }
        };

        report.shape = out.meta.shape.clone();
        report.padded_shape = out.meta.padded_shape.clone();
        report.dtype = out.meta.dtype.as_str().to_string();
        report.layout = out.meta.layout.as_str().to_string();
        report.memory = out.meta.memory.as_string();
        report.precision = self.device.precision(op);
        let dev = out.as_slice();
        report.device_stats = Some(stats(&dev));
        let dtype = out.meta.dtype;

        // Chained: against the golden of the same name.
        let mut notes: Vec<String> = Vec::new();
        match self.goldens.golden(&op.name) {
            Ok(Some(Golden::Full(g))) => {
                if g.shape() != out.shape() {
                    let msg = format!(
                        "device output shape {:?} does not match golden shape {:?}",
                        out.shape(),
                        g.shape()
                    );
                    report.verdict = Verdict::Error;
                    report.error = Some(msg.clone());
                    self.record_with(report, Some(&out), Some((op, inputs)));
                    return Err(OpError::invalid(&op.kind, msg));
                }
                let gs = g.as_slice();
                let gstats = stats(&gs);
                if gstats.nan > 0 || gstats.inf > 0 {
                    notes.push(format!(
                        "golden `{}` holds {} NaN and {} Inf values",
                        op.name, gstats.nan, gstats.inf
                    ));
                }
                report.golden_stats = Some(gstats);
                let tol = self.thresholds.chained(&op.name, &module, class, dtype);
                match Self::check(&gs, &dev, dtype, &tol) {
                    Ok(c) => report.chained = Some(c),
                    Err(e) => notes.push(format!("chained check: {e}")),
                }
            }
            Ok(Some(Golden::Stats(s))) => {
                let tol = self.thresholds.chained(&op.name, &module, class, dtype);
                report.golden_stats = Some(s.clone());
                let dstats = report.device_stats.clone().unwrap_or_else(|| stats(&dev));
                report.chained_stats = Some(Self::stats_check(&s, dstats, &tol));
            }
            Ok(None) => {}
            Err(e) => notes.push(format!("golden `{}` unreadable: {e}", op.name)),
        }

        // Local: the reference on the device's own inputs (parameters the device stored
        // lossily as their host values, so their quantisation is this op's error).
        if let Some(r) = self.reference.filter(|_| !fallback) {
            let substituted: Vec<Option<Tensor>> = inputs
                .iter()
                .map(|t| self.device.reference_input(t))
                .collect();
            let ref_inputs: Vec<&Tensor> = inputs
                .iter()
                .zip(&substituted)
                .map(|(t, s)| s.as_ref().unwrap_or(t))
                .collect();
            match r.exec(op, &ref_inputs) {
                Ok(want) => {
                    let tol = self.thresholds.local(&op.name, class, dtype);
                    match Self::check(&want.as_slice(), &dev, dtype, &tol) {
                        Ok(c) => report.local = Some(c),
                        Err(e) => notes.push(format!("local check: {e}")),
                    }
                }
                Err(e) => notes.push(format!("reference rejected the op: {e}")),
            }
        }

        settle(&mut report, fallback, &notes);
        drop(dev);
        self.record_with(report, Some(&out), Some((op, inputs)));
        Ok(out)
    }
}

/// Sets the verdict of an op whose checks ran (and its `error` from the `notes` of checks that
/// could not run): fail if a check failed, error if nothing could be checked because of a
/// problem, unchecked if there was no golden, else pass; `unsupported` after a host fallback.
/// Shared with the offline comparison of captures.
pub(crate) fn settle(report: &mut OpReport, fallback: bool, notes: &[String]) {
    let chained = report.chained.is_some() || report.chained_stats.is_some();
    report.verdict = if fallback {
        Verdict::Unsupported
    } else if report.local_failed() || report.chained_failed() {
        Verdict::Fail
    } else if !notes.is_empty() && !chained {
        Verdict::Error
    } else if !chained {
        Verdict::Unchecked
    } else {
        Verdict::Pass
    };
    if !notes.is_empty() {
        report.error = Some(notes.join("; "));
    }
}
