//! Two run records compared op by op (`pccscope diff RUN_A RUN_B`): for CI comparing a branch
//! (B) with main (A).
//!
//! Ops are matched by module and op name (the n-th occurrence of a name with the n-th). A
//! **regression** is any of: a chained or local PCC that dropped by more than the tolerance; a
//! verdict that became `fail`/`error`, or `unchecked`/`unsupported` (B no longer checks the op
//! on the device); an op of A that B no longer runs; a new op of B that fails or raises; a
//! module whose verdict went from pass to anything else, or that B no longer runs, when no op
//! regression of that module explains it (then the module row is listed, not counted). PCC gains
//! beyond the tolerance and verdicts that turned `pass` are listed as improvements.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::harness::record::{OpReport, RunRecord, Verdict};
use crate::report::view::{fmt_pcc, fmt_sci};

/// How [`diff`] judges a change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffOptions {
    /// A PCC drop larger than this is a regression.
    pub pcc_tol: f64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions { pcc_tol: 1e-4 }
    }
}

/// What changed at one op (or module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Impact {
    Regression,
    Improvement,
    /// A change that is neither (e.g. unchecked → unsupported, a new passing op).
    Neutral,
}

/// One row of the diff.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub module: String,
    /// Op name, or `None` for a module-level change.
    pub op: Option<String>,
    /// Execution index in B (in A for removed ops).
    pub index: usize,
    pub verdict_a: Option<Verdict>,
    pub verdict_b: Option<Verdict>,
    pub chained_a: Option<f64>,
    pub chained_b: Option<f64>,
    pub local_a: Option<f64>,
    pub local_b: Option<f64>,
    pub impact: Impact,
    /// Why, in words: `chained PCC −3.1e-3`, `verdict pass → fail`, `removed`.
    pub why: Vec<String>,
}

/// The comparison of run A (base) with run B (candidate).
#[derive(Debug, Clone, PartialEq)]
pub struct RunDiff {
    pub a: String,
    pub b: String,
    pub opts: DiffOptions,
    /// Ops present in both runs.
    pub matched: usize,
    pub added: usize,
    pub removed: usize,
    /// Every change, regressions first, then improvements, then the rest; each group in
    /// execution order.
    pub changes: Vec<Change>,
}

impl RunDiff {
    pub fn regressions(&self) -> usize {
        self.count(Impact::Regression)
    }
    pub fn improvements(&self) -> usize {
        self.count(Impact::Improvement)
    }
    fn count(&self, i: Impact) -> usize {
        self.changes.iter().filter(|c| c.impact == i).count()
    }
}

fn key_map(r: &RunRecord) -> HashMap<(&str, &str, usize), &OpReport> {
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut out = HashMap::new();
    for m in &r.modules {
        for o in &m.ops {
            let n = seen.entry((m.id.as_str(), o.name.as_str())).or_insert(0);
            out.insert((m.id.as_str(), o.name.as_str(), *n), o);
            *n += 1;
        }
    }
    out
}

/// Compares A (base) with B (candidate).
pub fn diff(a: &RunRecord, b: &RunRecord, opts: DiffOptions) -> RunDiff {
    let in_a = key_map(a);
    let mut matched = 0;
    let mut added = 0;
    let mut changes = Vec::new();
    let mut seen_b: HashMap<(&str, &str), usize> = HashMap::new();
    for m in &b.modules {
        for ob in &m.ops {
            let n = seen_b.entry((m.id.as_str(), ob.name.as_str())).or_insert(0);
            let key = (m.id.as_str(), ob.name.as_str(), *n);
            *n += 1;
            match in_a.get(&key) {
                Some(oa) => {
                    matched += 1;
                    if let Some(c) = compare_op(&m.id, oa, ob, opts) {
                        changes.push(c);
                    }
                }
                None => {
                    added += 1;
                    let bad = ob.verdict.is_bad();
                    changes.push(Change {
                        module: m.id.clone(),
                        op: Some(ob.name.clone()),
                        index: ob.index,
                        verdict_a: None,
                        verdict_b: Some(ob.verdict),
                        chained_a: None,
                        chained_b: ob.chained_pcc(),
                        local_a: None,
                        local_b: ob.local_pcc(),
                        impact: if bad {
                            Impact::Regression
                        } else {
                            Impact::Neutral
                        },
                        why: vec![format!("new op ({})", ob.verdict.as_str())],
                    });
                }
            }
        }
    }
    let in_b = key_map(b);
    let mut removed = 0;
    for m in &a.modules {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for oa in &m.ops {
            let n = seen.entry(oa.name.as_str()).or_insert(0);
            let key = (m.id.as_str(), oa.name.as_str(), *n);
            *n += 1;
            if !in_b.contains_key(&key) {
                removed += 1;
                changes.push(Change {
                    module: m.id.clone(),
                    op: Some(oa.name.clone()),
                    index: oa.index,
                    verdict_a: Some(oa.verdict),
                    verdict_b: None,
                    chained_a: oa.chained_pcc(),
                    chained_b: None,
                    local_a: oa.local_pcc(),
                    local_b: None,
                    impact: Impact::Regression,
                    why: vec!["removed: B does not run this op".into()],
                });
            }
        }
    }
    // A module-level change counts as a regression only when no op of the module explains it
    // (an output gate, a module error, a module B does not run); otherwise it is listed.
    let explained: std::collections::HashSet<String> = changes
        .iter()
        .filter(|c| c.impact == Impact::Regression)
        .map(|c| c.module.clone())
        .collect();
    for ma in &a.modules {
        let mb = b.modules.iter().find(|m| m.id == ma.id);
        let (vb, regress, why) = match mb {
            None => (None, true, "module not run in B".to_string()),
            Some(mb) if mb.verdict == ma.verdict => continue,
            Some(mb) => (
                Some(mb.verdict),
                ma.verdict == Verdict::Pass || mb.verdict.is_bad() && !ma.verdict.is_bad(),
                format!(
                    "module verdict {} → {}{}",
                    ma.verdict.as_str(),
                    mb.verdict.as_str(),
                    mb.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            ),
        };
        let improved = vb.is_some_and(|v| v == Verdict::Pass);
        changes.push(Change {
            module: ma.id.clone(),
            op: None,
            index: ma.ops.first().map_or(0, |o| o.index),
            verdict_a: Some(ma.verdict),
            verdict_b: vb,
            chained_a: ma.output_pcc,
            chained_b: mb.and_then(|m| m.output_pcc),
            local_a: None,
            local_b: None,
            impact: if regress && !explained.contains(&ma.id) {
                Impact::Regression
            } else if regress {
                Impact::Neutral
            } else if improved {
                Impact::Improvement
            } else {
                Impact::Neutral
            },
            why: vec![why],
        });
    }
    changes.sort_by(|x, y| x.impact.cmp(&y.impact).then(x.index.cmp(&y.index)));
    RunDiff {
        a: a.run.id.clone(),
        b: b.run.id.clone(),
        opts,
        matched,
        added,
        removed,
        changes,
    }
}

fn compare_op(module: &str, a: &OpReport, b: &OpReport, opts: DiffOptions) -> Option<Change> {
    let mut why = Vec::new();
    let mut regress = false;
    let mut improve = false;
    if a.verdict != b.verdict {
        why.push(format!(
            "verdict {} → {}",
            a.verdict.as_str(),
            b.verdict.as_str()
        ));
        let lost = matches!(b.verdict, Verdict::Unchecked | Verdict::Unsupported);
        if b.verdict.is_bad() && !a.verdict.is_bad() || lost {
            regress = true;
        } else if b.verdict == Verdict::Pass {
            improve = true;
        }
    }
    for (what, pa, pb) in [
        ("chained", a.chained_pcc(), b.chained_pcc()),
        ("local", a.local_pcc(), b.local_pcc()),
    ] {
        match (pa, pb) {
            (Some(x), Some(y)) if x - y > opts.pcc_tol => {
                why.push(format!("{what} PCC −{}", fmt_sci(x - y)));
                regress = true;
            }
            (Some(x), Some(y)) if y - x > opts.pcc_tol => {
                why.push(format!("{what} PCC +{}", fmt_sci(y - x)));
                improve = true;
            }
            (Some(_), None) => why.push(format!("{what} PCC no longer computed")),
            _ => {}
        }
    }
    if why.is_empty() {
        return None;
    }
    Some(Change {
        module: module.to_string(),
        op: Some(b.name.clone()),
        index: b.index,
        verdict_a: Some(a.verdict),
        verdict_b: Some(b.verdict),
        chained_a: a.chained_pcc(),
        chained_b: b.chained_pcc(),
        local_a: a.local_pcc(),
        local_b: b.local_pcc(),
        impact: if regress {
            Impact::Regression
        } else if improve {
            Impact::Improvement
        } else {
            Impact::Neutral
        },
        why,
    })
}

fn verdict(v: Option<Verdict>) -> &'static str {
    v.map_or("—", Verdict::as_str)
}

fn pair(a: Option<f64>, b: Option<f64>) -> String {
    if a.is_none() && b.is_none() {
        return "-".into();
    }
    format!("{} → {}", fmt_pcc(a), fmt_pcc(b))
}

/// The diff as Markdown: a headline and one table row per change (at most `limit` rows; the
/// regressions come first).
pub fn render_markdown(d: &RunDiff, limit: usize) -> String {
    let mut out = String::new();
    let verdict_line = if d.regressions() > 0 {
        format!("❌ {} regressions", d.regressions())
    } else {
        "✅ no regression".to_string()
    };
    let _ = writeln!(out, "# pccscope diff: {verdict_line}\n");
    let _ = writeln!(
        out,
        "A (base) `{}` → B `{}` · {} ops matched, {} added, {} removed · {} improvements · PCC tolerance {}\n",
        d.a,
        d.b,
        d.matched,
        d.added,
        d.removed,
        d.improvements(),
        fmt_sci(d.opts.pcc_tol)
    );
    if d.changes.is_empty() {
        out.push_str("No op changed beyond the tolerance.\n");
        return out;
    }
    out.push_str(
        "| | module | op | verdict A → B | chained PCC A → B | local PCC A → B | change |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for c in d.changes.iter().take(limit) {
        let mark = match c.impact {
            Impact::Regression => "❌",
            Impact::Improvement => "✅",
            Impact::Neutral => "·",
        };
        let _ = writeln!(
            out,
            "| {mark} | {} | {} | {} → {} | {} | {} | {} |",
            c.module,
            c.op.as_deref()
                .map(|o| format!("`{o}`"))
                .unwrap_or_else(|| "(module)".into()),
            verdict(c.verdict_a),
            verdict(c.verdict_b),
            pair(c.chained_a, c.chained_b),
            pair(c.local_a, c.local_b),
            c.why.join("; ").replace('|', "\\|")
        );
    }
    if d.changes.len() > limit {
        let _ = writeln!(
            out,
            "\n… and {} more changes (raise `--limit` to list them).",
            d.changes.len() - limit
        );
    }
    out
}
