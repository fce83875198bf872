//! `summary.md`: the verdict, a per-module table, the first divergence with its metrics and
//! metadata, the worst ops and the coverage gaps — for a person reading a CI job (it is also
//! appended to `$GITHUB_STEP_SUMMARY`).

use std::fmt::Write as _;

use crate::harness::record::{Check, ModuleReport, OpReport, RunRecord, Verdict};
use crate::report::view::{
    error_of, first_divergence, fmt_pcc, fmt_sci, fmt_tolerance, top_ops, ErrorBasis,
};

/// How many ops the "worst ops" table lists.
pub const TOP_N: usize = 10;
/// How many names a coverage-gap line lists before "… and N more".
const LIST_MAX: usize = 12;

/// Renders the summary.
pub fn render(r: &RunRecord) -> String {
    let mut out = String::new();
    header(&mut out, r);
    modules(&mut out, r);
    divergence(&mut out, r);
    worst(&mut out, r);
    op_errors(&mut out, r);
    gaps(&mut out, r);
    out
}

fn verdict_badge(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "✅ PASS",
        Verdict::Fail => "❌ FAIL",
        Verdict::Error => "💥 ERROR",
        Verdict::Unchecked => "⚠️ UNCHECKED",
        Verdict::Unsupported => "⚠️ UNSUPPORTED",
    }
}

/// A table cell: pipes and newlines would break the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

fn header(out: &mut String, r: &RunRecord) {
    let s = &r.summary;
    let _ = writeln!(
        out,
        "# pccscope {} — backend `{}` · profile `{}` · mode `{}`\n",
        verdict_badge(s.verdict),
        r.run.backend,
        r.run.profile,
        r.run.mode
    );
    let _ = writeln!(
        out,
        "Run `{}` · goldens `{}` · thresholds: {} · {:.2} s\n",
        r.run.id, r.run.goldens, r.run.thresholds, r.run.duration_s
    );
    let _ = writeln!(
        out,
        "**{}** · {} modules ({} failed) · {} ops: {} checked, {} failed, {} errors, {} unsupported · coverage {:.1}%\n",
        s.verdict.as_str(),
        s.modules,
        s.modules_failed,
        s.ops,
        s.ops_checked,
        s.ops_failed,
        s.ops_error,
        s.ops_unsupported,
        s.coverage * 100.0
    );
    match &s.first_divergence {
        Some(f) => {
            let _ = writeln!(
                out,
                "First divergence: {} in module `{}` (op #{})\n",
                code(&f.op),
                f.module,
                f.index
            );
        }
        None => out.push_str("First divergence: none\n\n"),
    }
    if let Some(d) = s.sharpest_drop.as_ref().filter(|d| d.from - d.to >= 1e-6) {
        let _ = writeln!(
            out,
            "Sharpest chained PCC drop: {} in `{}` ({} → {})\n",
            code(&d.op),
            d.module,
            fmt_pcc(Some(d.from)),
            fmt_pcc(Some(d.to))
        );
    }
}

/// First failing or raising op of a module, or its error.
fn first_bad(m: &ModuleReport) -> String {
    match m.ops.iter().find(|o| o.verdict.is_bad()) {
        Some(o) => code(&o.name),
        None => m.error.as_deref().map(cell).unwrap_or_else(|| "-".into()),
    }
}

fn modules(out: &mut String, r: &RunRecord) {
    out.push_str("## Modules\n\n");
    out.push_str(
        "| module | verdict | output PCC | gate | min PCC | ops | failed | unchecked | inputs | first bad op |\n",
    );
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---|---|\n");
    for m in &r.modules {
        let unchecked = m
            .ops
            .iter()
            .filter(|o| o.verdict == Verdict::Unchecked)
            .count();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.id,
            verdict_badge(m.verdict),
            fmt_pcc(m.output_pcc),
            m.gate,
            fmt_pcc(m.min_pcc),
            m.ops.len(),
            m.ops_failed,
            unchecked,
            m.inputs_from,
            first_bad(m)
        );
    }
    out.push('\n');
}

fn check_row(out: &mut String, what: &str, c: &Check) {
    let m = &c.metrics;
    let _ = writeln!(
        out,
        "| {what} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} |",
        if c.pass { "pass" } else { "**fail**" },
        fmt_pcc(m.pcc),
        fmt_pcc(m.cosine),
        fmt_sci(m.rel_l2),
        fmt_sci(m.max_abs),
        fmt_sci(m.mean_abs),
        fmt_sci(m.ulp_max),
        m.nan,
        m.inf,
        c.tolerance
            .as_ref()
            .map(|t| cell(&fmt_tolerance(t)))
            .unwrap_or_else(|| "-".into()),
        c.reason.as_deref().map(cell).unwrap_or_default()
    );
}

fn op_meta(out: &mut String, o: &OpReport) {
    let _ = write!(
        out,
        "- kind `{}` (class {}) · shape {:?}",
        o.kind, o.class, o.shape
    );
    if o.padded_shape != o.shape && !o.padded_shape.is_empty() {
        let _ = write!(out, " (padded {:?})", o.padded_shape);
    }
    let _ = writeln!(
        out,
        " · dtype `{}` · layout `{}` · memory `{}`",
        o.dtype, o.layout, o.memory
    );
    if let Some(p) = &o.precision {
        let _ = writeln!(out, "- precision: `{p}`");
    }
    if let (Some(d), Some(g)) = (&o.device_stats, &o.golden_stats) {
        let _ = writeln!(
            out,
            "- device mean {} std {} range [{}, {}] · golden mean {} std {} range [{}, {}]",
            fmt_sci(d.mean),
            fmt_sci(d.std),
            fmt_sci(d.min),
            fmt_sci(d.max),
            fmt_sci(g.mean),
            fmt_sci(g.std),
            fmt_sci(g.min),
            fmt_sci(g.max)
        );
    }
}

fn divergence(out: &mut String, r: &RunRecord) {
    let Some(f) = &r.summary.first_divergence else {
        return;
    };
    out.push_str("## First divergence\n\n");
    let _ = writeln!(
        out,
        "{} — module `{}`, op #{}\n",
        code(&f.op),
        f.module,
        f.index
    );
    if let Some(reason) = &f.reason {
        let _ = writeln!(out, "> {}\n", reason.replace('\n', " "));
    }
    let Some(loc) = first_divergence(r) else {
        return;
    };
    let o = loc.op;
    op_meta(out, o);
    out.push('\n');
    if o.local.is_some() || o.chained.is_some() {
        out.push_str(
            "| check | verdict | PCC | cosine | rel-L2 | max abs | mean abs | ULP | NaN/Inf | tolerance | reason |\n",
        );
        out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
        if let Some(c) = &o.local {
            check_row(out, "local", c);
        }
        if let Some(c) = &o.chained {
            check_row(out, "chained", c);
        }
        out.push('\n');
    }
    if let Some(s) = &o.chained_stats {
        let _ = writeln!(
            out,
            "Stats-only golden: l2 differs by {}, std by {}{}\n",
            fmt_sci(s.l2_rel_diff),
            fmt_sci(s.std_rel_diff),
            s.reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        );
    }
    let worst = o
        .local
        .as_ref()
        .filter(|c| !c.metrics.worst.is_empty())
        .map(|c| ("local", c))
        .or_else(|| {
            o.chained
                .as_ref()
                .filter(|c| !c.metrics.worst.is_empty())
                .map(|c| ("chained", c))
        });
    if let Some((what, c)) = worst {
        let _ = writeln!(out, "Worst elements ({what} check):\n");
        out.push_str("| flat index | reference | device | abs diff |\n|---:|---:|---:|---:|\n");
        for w in &c.metrics.worst {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                w.index,
                fmt_sci(w.golden as f64),
                fmt_sci(w.device as f64),
                fmt_sci(w.abs_diff)
            );
        }
        out.push('\n');
    }
    if let Some(e) = &o.error {
        let _ = writeln!(out, "Error: {}\n", code(e));
    }
}

fn worst(out: &mut String, r: &RunRecord) {
    let basis = ErrorBasis::of(r);
    let top = top_ops(r, basis, TOP_N);
    let _ = writeln!(
        out,
        "## Top {TOP_N} ops by {} error\n\nRanked by rel-L2 ‖d − g‖/‖g‖ of the {} check — {}.\n",
        basis.as_str(),
        basis.as_str(),
        basis.explain(&r.run.backend)
    );
    if top.is_empty() {
        let _ = writeln!(out, "No op has a {} check.\n", basis.as_str());
        return;
    }
    out.push_str("| # | op | module | kind | dtype | rel-L2 | PCC | max abs | ULP | verdict |\n");
    out.push_str("|---:|---|---|---|---|---:|---:|---:|---:|---|\n");
    for (i, (loc, c)) in top.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            code(&loc.op.name),
            loc.module.id,
            loc.op.kind,
            loc.op.dtype,
            fmt_sci(error_of(c)),
            fmt_pcc(c.metrics.pcc),
            fmt_sci(c.metrics.max_abs),
            fmt_sci(c.metrics.ulp_max),
            if c.pass { "pass" } else { "**fail**" }
        );
    }
    out.push('\n');
}

fn op_errors(out: &mut String, r: &RunRecord) {
    let errors: Vec<(&ModuleReport, &OpReport)> = r
        .modules
        .iter()
        .flat_map(|m| m.ops.iter().map(move |o| (m, o)))
        .filter(|(_, o)| o.verdict == Verdict::Error)
        .collect();
    if errors.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Op errors ({})
",
        errors.len()
    );
    out.push_str(
        "| op | module | kind | message |
|---|---|---|---|
",
    );
    for (m, o) in errors.iter().take(LIST_MAX * 2) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            code(&o.name),
            m.id,
            o.kind,
            cell(o.error.as_deref().unwrap_or("-"))
        );
    }
    if errors.len() > LIST_MAX * 2 {
        let _ = writeln!(out, "\n… and {} more.", errors.len() - LIST_MAX * 2);
    }
    out.push('\n');
}

fn list(names: &[&str]) -> String {
    let mut s: Vec<String> = names.iter().take(LIST_MAX).map(|n| code(n)).collect();
    if names.len() > LIST_MAX {
        s.push(format!("… and {} more", names.len() - LIST_MAX));
    }
    s.join(", ")
}

fn gaps(out: &mut String, r: &RunRecord) {
    out.push_str("## Coverage gaps\n\n");
    let mut any = false;
    for m in &r.modules {
        let mut line = |what: &str, names: Vec<&str>| {
            if !names.is_empty() {
                any = true;
                let _ = writeln!(
                    out,
                    "- `{}`: {} {what}: {}",
                    m.id,
                    names.len(),
                    list(&names)
                );
            }
        };
        line(
            "golden ops with no device counterpart",
            m.missing_device.iter().map(String::as_str).collect(),
        );
        line(
            "device ops with no golden",
            m.missing_golden.iter().map(String::as_str).collect(),
        );
        let unchecked: Vec<&str> = m
            .ops
            .iter()
            .filter(|o| o.verdict == Verdict::Unchecked && !m.missing_golden.contains(&o.name))
            .map(|o| o.name.as_str())
            .collect();
        line("unchecked ops", unchecked);
        line(
            "unsupported ops (host fallback ran)",
            m.ops
                .iter()
                .filter(|o| o.verdict == Verdict::Unsupported)
                .map(|o| o.name.as_str())
                .collect(),
        );
        let stats_only = m.ops.iter().filter(|o| o.chained_stats.is_some()).count();
        if stats_only > 0 {
            any = true;
            let _ = writeln!(
                out,
                "- `{}`: {stats_only} ops checked against stats-only goldens (norms and moments, no PCC)",
                m.id
            );
        }
        if let (Some(e), true) = (&m.error, m.verdict == Verdict::Error) {
            any = true;
            let _ = writeln!(out, "- `{}`: module error: {}", m.id, code(e));
        }
    }
    if !any {
        let _ = writeln!(
            out,
            "None: every golden op was checked (coverage {:.1}%).",
            r.summary.coverage * 100.0
        );
    }
    out.push('\n');
}
