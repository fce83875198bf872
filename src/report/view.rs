//! Derived views of a run record shared by the formats: where an op sits (stack and layer),
//! which check measures an op's own error, and the worst ops. No I/O.

use crate::harness::record::{Check, ModuleReport, OpReport, RunRecord};
use crate::harness::thresholds::Tolerance;

/// Which check measures an op's own error in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorBasis {
    /// The local (isolation) check: the device op against the reference on its own inputs.
    Local,
    /// The chained check against the golden: the only one when the device is the reference
    /// (cpu), which has no local check.
    Chained,
}

impl ErrorBasis {
    /// Local when any op of the run has a local check, else chained.
    pub fn of(record: &RunRecord) -> ErrorBasis {
        let any_local = record
            .modules
            .iter()
            .flat_map(|m| &m.ops)
            .any(|o| o.local.is_some());
        if any_local {
            ErrorBasis::Local
        } else {
            ErrorBasis::Chained
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorBasis::Local => "local",
            ErrorBasis::Chained => "chained",
        }
    }

    /// The check of `op` this basis reads.
    pub fn check(self, op: &OpReport) -> Option<&Check> {
        match self {
            ErrorBasis::Local => op.local.as_ref(),
            ErrorBasis::Chained => op.chained.as_ref(),
        }
    }

    /// One sentence for report text saying what the ranking reads.
    pub fn explain(self, backend: &str) -> String {
        match self {
            ErrorBasis::Local => {
                "local error: the device op against the reference backend on the device's own inputs"
                    .to_string()
            }
            ErrorBasis::Chained => format!(
                "chained error (against the goldens): backend `{backend}` has no local checks, so this includes drift accumulated upstream"
            ),
        }
    }
}

/// The error measure ranked and plotted: rel-L2 ‖d − g‖ / ‖g‖ of a check (+∞ for a non-finite
/// mismatch). Unlike PCC it is defined for constant tensors and sees scale errors.
pub fn error_of(check: &Check) -> f64 {
    check.metrics.rel_l2
}

/// `(stack, layer)` of an op inside a `layers.{i}` block: `siglip.layers.3.attn.q` →
/// `("siglip", 3)`, `denoise.4.expert.layers.0.mlp.up` → `("denoise.4.expert", 0)`.
pub fn layer_of(name: &str) -> Option<(&str, usize)> {
    let mut start = 0;
    while let Some(pos) = name[start..].find("layers.") {
        let at = start + pos;
        let boundary = at == 0 || name.as_bytes()[at - 1] == b'.';
        let rest = &name[at + "layers.".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ends = rest.len() == digits || rest.as_bytes().get(digits) == Some(&b'.');
        if boundary && digits > 0 && ends {
            if let Ok(i) = rest[..digits].parse() {
                let stack = name[..at].trim_end_matches('.');
                return Some((stack, i));
            }
        }
        start = at + 1;
    }
    None
}

/// A run of consecutive ops of a module: one layer of one stack, or the ops between stacks
/// (embeddings, norms, heads).
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// Stack of a layer segment (`siglip`, `denoise.3.expert`), `None` between stacks.
    pub stack: Option<&'a str>,
    pub layer: Option<usize>,
    /// Indices into the module's `ops`.
    pub ops: Vec<usize>,
}

impl Segment<'_> {
    /// `siglip.layers.3`, or for a run between stacks its first op's name.
    pub fn name(&self, module: &ModuleReport) -> String {
        match (self.stack, self.layer) {
            (Some(""), Some(l)) => format!("layers.{l}"),
            (Some(s), Some(l)) => format!("{s}.layers.{l}"),
            _ => self
                .ops
                .first()
                .map(|&i| module.ops[i].name.clone())
                .unwrap_or_default(),
        }
    }
}

/// Splits a module's ops, in execution order, into layer segments and the runs between them.
pub fn segments(module: &ModuleReport) -> Vec<Segment<'_>> {
    let mut out: Vec<Segment<'_>> = Vec::new();
    for (i, op) in module.ops.iter().enumerate() {
        let (stack, layer) = match layer_of(&op.name) {
            Some((s, l)) => (Some(s), Some(l)),
            None => (None, None),
        };
        match out.last_mut() {
            Some(last) if last.stack == stack && last.layer == layer => last.ops.push(i),
            _ => out.push(Segment {
                stack,
                layer,
                ops: vec![i],
            }),
        }
    }
    out
}

/// True when the module has at least one `layers.{i}` op.
pub fn has_layers(module: &ModuleReport) -> bool {
    module.ops.iter().any(|o| layer_of(&o.name).is_some())
}

/// An op with the module it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub module: &'a ModuleReport,
    pub op: &'a OpReport,
}

/// The `n` ops with the largest error on `basis`, worst first (ties: execution order).
pub fn top_ops(record: &RunRecord, basis: ErrorBasis, n: usize) -> Vec<(Located<'_>, &Check)> {
    let mut all: Vec<(Located<'_>, &Check)> = record
        .modules
        .iter()
        .flat_map(|m| {
            m.ops
                .iter()
                .filter_map(move |o| basis.check(o).map(|c| (Located { module: m, op: o }, c)))
        })
        .filter(|(_, c)| !error_of(c).is_nan())
        .collect();
    all.sort_by(|a, b| {
        error_of(b.1)
            .total_cmp(&error_of(a.1))
            .then(a.0.op.index.cmp(&b.0.op.index))
    });
    all.truncate(n);
    all
}

/// Finds the op the summary names as the first divergence.
pub fn first_divergence(record: &RunRecord) -> Option<Located<'_>> {
    let f = record.summary.first_divergence.as_ref()?;
    record
        .modules
        .iter()
        .filter(|m| m.id == f.module)
        .flat_map(|m| m.ops.iter().map(move |o| Located { module: m, op: o }))
        .find(|l| l.op.index == f.index && l.op.name == f.op)
}

/// `0.99812`, `0.99999873`: enough decimals to show how far below 1 a PCC is; `-` when none.
pub fn fmt_pcc(p: Option<f64>) -> String {
    match p {
        None => "-".to_string(),
        Some(p) if !p.is_finite() => format!("{p}"),
        Some(p) => {
            let gap = 1.0 - p;
            let decimals = if gap > 0.0 {
                ((-gap.log10()).ceil() as i64 + 2).clamp(4, 15) as usize
            } else {
                4
            };
            format!("{p:.decimals$}")
        }
    }
}

/// `3.215e-3`, `0`, `inf`.
pub fn fmt_sci(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v.is_finite() {
        format!("{v:.3e}")
    } else {
        format!("{v}")
    }
}

/// A threshold as written: `0.99999`, `1e-4`.
pub fn fmt_limit(v: f64) -> String {
    if v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// The criteria of a tolerance: `pcc ≥ 0.99999, rel_l2 ≤ 1e-4 (atol 1e-5, rtol 1e-4)`.
pub fn fmt_tolerance(t: &Tolerance) -> String {
    let mut parts = Vec::new();
    if t.exact {
        parts.push("exact".to_string());
    }
    if let Some(v) = t.pcc_min {
        parts.push(format!("pcc ≥ {}", fmt_limit(v)));
    }
    if let Some(v) = t.rel_l2_max {
        parts.push(format!("rel_l2 ≤ {}", fmt_limit(v)));
    }
    if let Some(v) = t.ulp_max {
        parts.push(format!("ulp ≤ {}", fmt_limit(v)));
    }
    if let Some(v) = t.allclose_min {
        parts.push(format!("allclose ≥ {}", fmt_limit(v)));
    }
    if parts.is_empty() {
        parts.push("no criterion".to_string());
    }
    format!(
        "{} (atol {}, rtol {})",
        parts.join(", "),
        fmt_limit(t.atol),
        fmt_limit(t.rtol)
    )
}

/// The metrics of a check on one line: `pcc 0.99812 · cos … · rel_l2 … · max_abs … · …`.
pub fn fmt_metrics(c: &Check) -> String {
    let m = &c.metrics;
    let mut s = format!(
        "pcc {} · cosine {} · rel_l2 {} · max_abs {} · mean_abs {} · ulp {} · allclose {} · n {}",
        fmt_pcc(m.pcc),
        fmt_pcc(m.cosine),
        fmt_sci(m.rel_l2),
        fmt_sci(m.max_abs),
        fmt_sci(m.mean_abs),
        fmt_sci(m.ulp_max),
        fmt_pcc(Some(m.allclose)),
        m.n
    );
    if m.nan > 0 || m.inf > 0 {
        s.push_str(&format!(" · device NaN {} Inf {}", m.nan, m.inf));
    }
    if let Some(d) = m.degenerate {
        s.push_str(&format!(" · pcc undefined: {d}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_component_of_op_names() {
        assert_eq!(layer_of("siglip.layers.3.attn.q"), Some(("siglip", 3)));
        assert_eq!(layer_of("vlm.layers.17.mlp_residual"), Some(("vlm", 17)));
        assert_eq!(
            layer_of("denoise.4.expert.layers.0.attn.sdpa"),
            Some(("denoise.4.expert", 0))
        );
        assert_eq!(layer_of("layers.2.x"), Some(("", 2)));
        assert_eq!(layer_of("vlm.layers.12"), Some(("vlm", 12)));
        assert_eq!(layer_of("siglip.patch_embed"), None);
        assert_eq!(layer_of("vlm.norm"), None);
        assert_eq!(layer_of("x.sublayers.3.y"), None);
        assert_eq!(layer_of("x.layers.a.y"), None);
        assert_eq!(layer_of("x.layers.3b.y"), None);
    }

    #[test]
    fn number_formats() {
        assert_eq!(fmt_pcc(Some(0.99999873)), "0.99999873");
        assert_eq!(fmt_pcc(Some(0.5)), "0.5000");
        assert_eq!(fmt_pcc(Some(1.0)), "1.0000");
        assert_eq!(fmt_pcc(None), "-");
        assert_eq!(fmt_sci(0.0), "0");
        assert_eq!(fmt_sci(f64::INFINITY), "inf");
        assert_eq!(fmt_sci(0.003215), "3.215e-3");
        assert_eq!(fmt_limit(1e-4), "1e-4");
        assert_eq!(fmt_limit(0.99999), "0.99999");
        let t = Tolerance::pcc_rel_l2(0.99999, 1e-4, 1e-5, 1e-4);
        assert_eq!(
            fmt_tolerance(&t),
            "pcc ≥ 0.99999, rel_l2 ≤ 1e-4 (atol 1e-5, rtol 1e-4)"
        );
    }
}
