//! Offline comparison of a capture against goldens (`pccscope compare`): a TT-NN port's trace
//! written by the Python capture writer, a device run saved with `--save-trace`, or any other
//! producer of the capture format.
//!
//! Ops are aligned by name, after an optional [`RenameMap`]. Every capture op gets the checks
//! the tracer gives a live op:
//!
//! * **chained**: against the golden of its aligned name (full data, or statistics when either
//!   side stored only statistics);
//! * **local**: when the capture records a catalog kind (`OpKind::from_record`) and the op's
//!   inputs, the reference backend re-runs the op on the capture's *own* input tensors plus the
//!   goldens' checkpoint parameters, and the capture's output is checked against that.
//!
//! The result is the [`RunRecord`] a live run produces — the same verdict rules
//! ([`settle`], [`fold_module`]) and the same first divergence ([`summarize`]): the first op
//! whose local check failed or that raised when the capture allows local checks, else the first
//! whose chained check failed. A capture record with an `error` (the op raised on the device)
//! is an op error. Capture ops without a golden and golden ops of a compared module without a
//! capture op are listed per module (`missing_golden`, `missing_device`); golden modules the
//! capture does not contain at all are returned in [`Comparison::absent_modules`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use thiserror::Error;

use crate::backend::{Backend, Op, OpClass, OpKind};
use crate::golden::{stats, Capture, Golden, OpRecord, Stats};
use crate::harness::events::{Event, EventSink};
use crate::harness::record::{
    Check, ModuleReport, OpReport, RunInfo, RunRecord, Verdict, REPORT_SCHEMA,
};
use crate::harness::runner::{fold_module, summarize};
use crate::harness::thresholds::Thresholds;
use crate::harness::tracer::{settle, Tracer};
use crate::modules::Weights;
use crate::tensor::{DType, Tensor};

/// A rename map could not be used.
#[derive(Debug, Error)]
pub enum MapError {
    #[error("cannot read rename map `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid rename map `{}`", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("rename map `{}`: rule {index} (from = {from:?}): {reason}", path.display())]
    Rule {
        path: PathBuf,
        /// 1-based position of the `[[rename]]` table.
        index: usize,
        from: String,
        reason: String,
    },
    #[error("rename map `{}`: [modules] {capture:?} = {golden:?}: {reason}", path.display())]
    Module {
        path: PathBuf,
        capture: String,
        golden: String,
        reason: &'static str,
    },
}

/// One piece of a name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `*`: any run of characters without a dot (captured).
    Star,
    /// `**`: any run of characters, dots included (captured).
    Stars,
    /// `?`: one character other than a dot (captured).
    One,
}

/// A glob over op names whose wildcards are captured, for `{N}` in a rename target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<Token>,
    wildcards: usize,
}

impl Pattern {
    fn parse(s: &str) -> Result<Pattern, String> {
        if s.is_empty() {
            return Err("the pattern is empty".into());
        }
        let mut tokens = Vec::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    if chars.peek() == Some(&'*') {
                        return Err("`***` is not a wildcard (use `*` or `**`)".into());
                    }
                    Token::Stars
                }
                '*' => Token::Star,
                '?' => Token::One,
                '[' | ']' | '{' | '}' => {
                    return Err(format!("`{c}` is not supported in a pattern (only * ** ?)"))
                }
                c => Token::Lit(c),
            });
        }
        let wildcards = tokens
            .iter()
            .filter(|t| !matches!(t, Token::Lit(_)))
            .count();
        Ok(Pattern { tokens, wildcards })
    }

    /// The captured text of every wildcard, in order, if `name` matches. Wildcards match as
    /// little as possible from the left.
    fn captures(&self, name: &str) -> Option<Vec<String>> {
        let chars: Vec<char> = name.chars().collect();
        let mut spans = Vec::with_capacity(self.wildcards);
        if self.walk(0, &chars, 0, &mut spans) {
            Some(
                spans
                    .iter()
                    .map(|&(a, b)| chars[a..b].iter().collect())
                    .collect(),
            )
        } else {
            None
        }
    }

    fn walk(&self, t: usize, s: &[char], i: usize, spans: &mut Vec<(usize, usize)>) -> bool {
        let Some(tok) = self.tokens.get(t) else {
            return i == s.len();
        };
        match tok {
            Token::Lit(c) => s.get(i) == Some(c) && self.walk(t + 1, s, i + 1, spans),
            Token::One => {
                if s.get(i).is_some_and(|&c| c != '.') {
                    spans.push((i, i + 1));
                    if self.walk(t + 1, s, i + 1, spans) {
                        return true;
                    }
                    spans.pop();
                }
                false
            }
            Token::Star | Token::Stars => {
                let dots = *tok == Token::Stars;
                let mut end = i;
                loop {
                    spans.push((i, end));
                    if self.walk(t + 1, s, end, spans) {
                        return true;
                    }
                    spans.pop();
                    if end == s.len() || (!dots && s[end] == '.') {
                        return false;
                    }
                    end += 1;
                }
            }
        }
    }
}

/// A rename target: literal text with `{N}` (1-based wildcard) insertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

fn parse_target(s: &str, wildcards: usize) -> Result<Vec<Piece>, String> {
    if s.is_empty() {
        return Err("`to` is empty".into());
    }
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '{' {
            if c == '}' {
                return Err("unmatched `}` in `to`".into());
            }
            text.push(c);
            continue;
        }
        let digits: String = chars.by_ref().take_while(|&d| d != '}').collect();
        let n: usize = digits
            .parse()
            .map_err(|_| format!("`{{{digits}}}` in `to` is not a wildcard number like {{1}}"))?;
        if n == 0 || n > wildcards {
            return Err(format!(
                "`{{{n}}}` in `to` refers to wildcard {n} but `from` has {wildcards}"
            ));
        }
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        out.push(Piece::Group(n));
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
struct Rule {
    from: Pattern,
    to: Vec<Piece>,
}

/// How capture names map onto golden names: `[[rename]]` rules (first match wins; names no
/// rule matches are kept) and `[modules]` (capture module id → golden module id).
///
/// ```toml
/// [modules]
/// tt_pi0 = "pi0"
///
/// [[rename]]
/// from = "tt.vision.blocks.*.q_proj"   # `*`: no dots, `**`: anything, `?`: one character
/// to = "siglip.layers.{1}.attn.q"      # `{N}`: the text of the N-th wildcard
///
/// [[rename]]
/// from = "tt.**"
/// to = "{1}"
/// ```
#[derive(Debug, Clone, Default)]
pub struct RenameMap {
    rules: Vec<Rule>,
    modules: BTreeMap<String, String>,
    source: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    #[serde(default)]
    modules: BTreeMap<String, String>,
    #[serde(default)]
    rename: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    from: String,
    to: String,
}

impl RenameMap {
    /// No renames: every name is its own golden name.
    pub fn identity() -> RenameMap {
        RenameMap::default()
    }

    /// Reads a TOML rename map (format on [`RenameMap`]).
    ///
    /// # Errors
    ///
    /// The file cannot be read, is not valid TOML of that shape (unknown keys included), or a
    /// rule's pattern or target is malformed; each error names the file (and the rule).
    pub fn load(path: &Path) -> Result<RenameMap, MapError> {
        let text = std::fs::read_to_string(path).map_err(|source| MapError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        RenameMap::parse(&text, path)
    }

    /// Parses a rename map; `path` only labels errors.
    ///
    /// # Errors
    ///
    /// As [`RenameMap::load`], without the read error.
    pub fn parse(text: &str, path: &Path) -> Result<RenameMap, MapError> {
        let file: MapFile = toml::from_str(text).map_err(|source| MapError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let mut rules = Vec::with_capacity(file.rename.len());
        for (i, r) in file.rename.iter().enumerate() {
            let bad = |reason: String| MapError::Rule {
                path: path.to_path_buf(),
                index: i + 1,
                from: r.from.clone(),
                reason,
            };
            let from = Pattern::parse(&r.from).map_err(bad)?;
            let to = parse_target(&r.to, from.wildcards).map_err(bad)?;
            rules.push(Rule { from, to });
        }
        for (capture, golden) in &file.modules {
            if capture.is_empty() || golden.is_empty() {
                return Err(MapError::Module {
                    path: path.to_path_buf(),
                    capture: capture.clone(),
                    golden: golden.clone(),
                    reason: "module ids must not be empty",
                });
            }
        }
        Ok(RenameMap {
            rules,
            modules: file.modules,
            source: Some(path.to_path_buf()),
        })
    }

    /// The golden name of capture op `name`.
    pub fn op<'n>(&self, name: &'n str) -> std::borrow::Cow<'n, str> {
        for r in &self.rules {
            if let Some(caps) = r.from.captures(name) {
                let mut out = String::new();
                for p in &r.to {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Group(n) => out.push_str(&caps[n - 1]),
                    }
                }
                return out.into();
            }
        }
        name.into()
    }

    /// The golden module id of capture module `id`.
    pub fn module<'n>(&'n self, id: &'n str) -> &'n str {
        self.modules.get(id).map_or(id, String::as_str)
    }

    /// `identity` or the file it came from.
    pub fn describe(&self) -> String {
        match &self.source {
            None => "identity".into(),
            Some(p) => format!(
                "{} ({} rename rules, {} module renames)",
                p.display(),
                self.rules.len(),
                self.modules.len()
            ),
        }
    }
}

/// Everything a comparison reads.
pub struct CompareInputs<'a> {
    pub goldens: &'a Capture,
    pub capture: &'a Capture,
    pub map: &'a RenameMap,
    pub thresholds: &'a Thresholds,
    /// The backend of the local checks (the cpu reference).
    pub reference: &'a dyn Backend,
    /// Checkpoint parameters of local checks (`None`: ops that need parameters get no local
    /// check, with a note).
    pub weights: Option<&'a Weights>,
}

/// Labels of the run record.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub run_id: String,
    pub goldens_label: String,
}

/// Why a capture op got no local check although the comparison could run one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoLocal {
    /// The kind is not in the op catalog (e.g. a raw `ttnn.linear` of a hooked trace).
    UnknownKind,
    /// The kind needs inputs but the record lists none.
    NoInputs,
    /// The capture stored only statistics of the output.
    StatsOnly,
    /// The capture stored only statistics of one of the inputs.
    InputStatsOnly,
    /// The op raised on the device.
    Raised,
    /// An input or parameter could not be had, or the reference rejected the op (see the
    /// op's `error`).
    Problem,
}

impl NoLocal {
    pub fn as_str(self) -> &'static str {
        match self {
            NoLocal::UnknownKind => "kind not in the op catalog",
            NoLocal::NoInputs => "no inputs recorded",
            NoLocal::StatsOnly => "output stored as statistics only",
            NoLocal::InputStatsOnly => "an input stored as statistics only",
            NoLocal::Raised => "the op raised",
            NoLocal::Problem => "inputs or parameters unavailable (see the op's error)",
        }
    }
}

impl fmt::Display for NoLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finished comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What every report, plot and screen consumes.
    pub record: RunRecord,
    /// Golden modules with no capture module mapped onto them (not compared).
    pub absent_modules: Vec<String>,
    /// Capture ops that were looked up under another name: (capture name, golden name).
    pub renamed: Vec<(String, String)>,
    /// Ops with a local check.
    pub local_checks: usize,
    /// Ops without one, by reason.
    pub no_local: BTreeMap<NoLocal, usize>,
}

/// The device side of one op.
enum Device {
    Full(Tensor),
    Stats(Stats),
}

/// Compares `inp.capture` against `inp.goldens`, streaming the same events a run streams.
pub fn compare(inp: &CompareInputs<'_>, opts: &CompareOptions, sink: &dyn EventSink) -> Comparison {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t0 = Instant::now();
    let cm = inp.capture.manifest();
    let (backend, profile) = producer_labels(&cm.producer);
    let mut info = RunInfo {
        id: opts.run_id.clone(),
        backend,
        profile,
        mode: "compare".into(),
        goldens: opts.goldens_label.clone(),
        thresholds: inp.thresholds.describe(),
        started: started.to_string(),
        duration_s: 0.0,
    };
    let golden_ids: Vec<String> = cm
        .modules
        .iter()
        .map(|m| inp.map.module(&m.id).to_string())
        .collect();
    sink.event(&Event::RunStarted {
        info: info.clone(),
        modules: golden_ids.clone(),
    });

    let mut renamed = Vec::new();
    let mut local_checks = 0usize;
    let mut no_local_counts: BTreeMap<NoLocal, usize> = BTreeMap::new();
    let mut renamed_seen = HashSet::new();
    let mut index = 0usize;
    let total = cm.modules.len();
    let mut modules = Vec::with_capacity(total);
    for (mi, (m, gid)) in cm.modules.iter().zip(&golden_ids).enumerate() {
        let tm = Instant::now();
        sink.event(&Event::ModuleStarted {
            index: mi,
            total,
            id: gid.clone(),
            expected_ops: m.ops.len(),
        });
        let gmod = inp.goldens.module(gid);
        let mut report = ModuleReport {
            id: gid.clone(),
            verdict: Verdict::Error,
            min_pcc: None,
            output_pcc: None,
            gate: inp.thresholds.module_gate(gid),
            inputs_from: "capture".into(),
            ops: Vec::new(),
            ops_failed: 0,
            missing_device: Vec::new(),
            missing_golden: Vec::new(),
            error: None,
            duration_s: 0.0,
            on_device_pct: None,
        };
        let mut ops = Vec::with_capacity(m.ops.len());
        let mut expected: Vec<String> = gmod
            .map(|g| g.ops.iter().map(|o| o.name.clone()).collect())
            .unwrap_or_default();
        let mut known: HashSet<String> = expected.iter().cloned().collect();
        for rec in &m.ops {
            let mapped = inp.map.op(&rec.name).into_owned();
            if mapped != rec.name && renamed_seen.insert(rec.name.clone()) {
                renamed.push((rec.name.clone(), mapped.clone()));
            }
            if !known.contains(&mapped)
                && (inp.goldens.record(&mapped).is_some() || inp.goldens.input(&mapped).is_some())
            {
                known.insert(mapped.clone());
                expected.push(mapped.clone());
            }
            let (op, no_local) = check_op(inp, gid, rec, mapped, index);
            index += 1;
            match no_local {
                None => local_checks += 1,
                Some(why) => *no_local_counts.entry(why).or_default() += 1,
            }
            if report.error.is_none() {
                if let Some(e) = &rec.error {
                    report.error = Some(format!("op `{}` raised: {e}", op.name));
                }
            }
            sink.event(&Event::Op {
                module: gid.clone(),
                op: Box::new(op.clone()),
            });
            ops.push(op);
        }
        let outputs: HashSet<String> = gmod
            .map(|g| g.outputs.iter().cloned().collect())
            .unwrap_or_default();
        let raised = m.ops.iter().any(|r| r.error.is_some());
        fold_module(&mut report, ops, &expected, &outputs, raised);
        report.duration_s = tm.elapsed().as_secs_f64();
        sink.event(&Event::ModuleFinished {
            index: mi,
            total,
            report: Box::new(report.clone()),
        });
        modules.push(report);
    }
    let compared: HashSet<&str> = golden_ids.iter().map(String::as_str).collect();
    let absent_modules = inp
        .goldens
        .manifest()
        .modules
        .iter()
        .filter(|g| !compared.contains(g.id.as_str()))
        .map(|g| g.id.clone())
        .collect();
    info.duration_s = t0.elapsed().as_secs_f64();
    let has_local = modules
        .iter()
        .any(|m| m.ops.iter().any(|o| o.local.is_some()));
    let record = RunRecord {
        schema: REPORT_SCHEMA.to_string(),
        run: info,
        summary: summarize(&modules, has_local),
        modules,
    };
    sink.event(&Event::RunFinished {
        record: Box::new(record.clone()),
    });
    Comparison {
        record,
        absent_modules,
        renamed,
        local_checks,
        no_local: no_local_counts,
    }
}

/// `backend` and `profile` labels of the run record, from the capture's producer (`backend`,
/// else `kind`, else `name`; `profile`), `capture` where it says nothing.
pub fn producer_labels(p: &serde_json::Value) -> (String, String) {
    let s = |k: &str| p.get(k).and_then(serde_json::Value::as_str);
    let backend = s("backend")
        .or_else(|| s("kind"))
        .or_else(|| s("name"))
        .unwrap_or("capture");
    let profile = s("profile").unwrap_or("capture");
    (backend.to_string(), profile.to_string())
}

/// Checks one capture op; returns its report and why it got no local check, if it got none.
fn check_op(
    inp: &CompareInputs<'_>,
    module: &str,
    rec: &OpRecord,
    name: String,
    index: usize,
) -> (OpReport, Option<NoLocal>) {
    let golden_rec = inp.goldens.record(&name);
    let own_kind = OpKind::from_record(&rec.kind, &rec.attrs).ok();
    let class = own_kind
        .as_ref()
        .map(OpKind::class)
        .or_else(|| {
            golden_rec
                .and_then(|g| OpKind::from_record(&g.kind, &g.attrs).ok())
                .map(|k| k.class())
        })
        .unwrap_or_else(|| class_from_kind_name(&rec.kind));
    let stored = rec.device_dtype.as_deref().unwrap_or(&rec.dtype);
    let dtype = DType::parse(stored).unwrap_or(DType::F32);
    let mut report = OpReport {
        index,
        name,
        kind: rec.kind.clone(),
        class: class.as_str().to_string(),
        verdict: Verdict::Pass,
        shape: rec.shape.clone(),
        padded_shape: rec
            .padded_shape
            .clone()
            .unwrap_or_else(|| rec.shape.clone()),
        dtype: DType::parse(stored).map_or_else(|| stored.to_ascii_lowercase(), |d| d.to_string()),
        layout: rec
            .layout
            .as_deref()
            .map_or_else(|| "-".into(), layout_label),
        memory: rec
            .memory
            .as_deref()
            .map_or_else(|| "-".into(), memory_label),
        chained: None,
        chained_stats: None,
        local: None,
        error: None,
        device_stats: None,
        golden_stats: None,
        precision: rec.precision.clone(),
        duration_us: 0.0,
    };
    if let Some(e) = &rec.error {
        report.verdict = Verdict::Error;
        report.error = Some(e.clone());
        return (report, Some(NoLocal::Raised));
    }
    let device = match inp.capture.golden(&rec.name) {
        Ok(Some(Golden::Full(t))) => Device::Full(t),
        Ok(Some(Golden::Stats(s))) => Device::Stats(s),
        Ok(None) => {
            report.verdict = Verdict::Error;
            report.error = Some(format!(
                "capture record `{}` has neither data nor stats",
                rec.name
            ));
            return (report, Some(NoLocal::Problem));
        }
        Err(e) => {
            report.verdict = Verdict::Error;
            report.error = Some(format!("capture tensor `{}` unreadable: {e}", rec.name));
            return (report, Some(NoLocal::Problem));
        }
    };
    let (dev_values, dev_stats) = match &device {
        Device::Full(t) => {
            let v = t.as_slice();
            let s = stats(&v);
            (Some(v), s)
        }
        Device::Stats(s) => (None, s.clone()),
    };
    report.device_stats = Some(dev_stats.clone());

    let mut notes: Vec<String> = Vec::new();
    let tol = inp.thresholds.chained(&report.name, module, class, dtype);
    match inp.goldens.golden(&report.name) {
        Ok(Some(Golden::Full(g))) => {
            let gs = g.as_slice();
            let gstats = stats(&gs);
            if gstats.nan > 0 || gstats.inf > 0 {
                notes.push(format!(
                    "golden `{}` holds {} NaN and {} Inf values",
                    report.name, gstats.nan, gstats.inf
                ));
            }
            report.golden_stats = Some(gstats.clone());
            match &dev_values {
                Some(dv) if same_layout(g.shape(), &rec.shape) => {
                    match Tracer::check(&gs, dv, dtype, &tol) {
                        Ok(c) => report.chained = Some(c),
                        Err(e) => notes.push(format!("chained check: {e}")),
                    }
                }
                Some(_) => notes.push(format!(
                    "capture output shape {:?} does not match golden shape {:?}",
                    rec.shape,
                    g.shape()
                )),
                None => {
                    report.chained_stats = Some(Tracer::stats_check(&gstats, dev_stats, &tol));
                }
            }
        }
        Ok(Some(Golden::Stats(gs))) => {
            report.golden_stats = Some(gs.clone());
            report.chained_stats = Some(Tracer::stats_check(&gs, dev_stats, &tol));
        }
        Ok(None) => {}
        Err(e) => notes.push(format!("golden `{}` unreadable: {e}", report.name)),
    }

    let no_local = match (&own_kind, &dev_values) {
        (None, _) => Some(NoLocal::UnknownKind),
        (Some(_), None) => Some(NoLocal::StatsOnly),
        (Some(kind), _) if rec.inputs.is_empty() && takes_activations(kind) => {
            Some(NoLocal::NoInputs)
        }
        (Some(kind), Some(dv)) => {
            let op = Op::new(report.name.clone(), kind.clone());
            match local_check(inp, rec, golden_rec, &op, dv, dtype) {
                Ok(c) => {
                    report.local = Some(c);
                    None
                }
                Err(Unavailable::StatsOnly) => Some(NoLocal::InputStatsOnly),
                Err(Unavailable::Problem(e)) => {
                    notes.push(e);
                    Some(NoLocal::Problem)
                }
            }
        }
    };
    settle(&mut report, false, &notes);
    (report, no_local)
}

/// The local check of a capture op: the reference runs `op` on the capture's own inputs (and
/// the checkpoint's parameters) and `device` is checked against its output.
fn local_check(
    inp: &CompareInputs<'_>,
    rec: &OpRecord,
    golden_rec: Option<&OpRecord>,
    op: &Op,
    device: &[f32],
    dtype: DType,
) -> Result<Check, Unavailable> {
    let tensors = local_inputs(inp, rec, golden_rec)?;
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let want = inp
        .reference
        .exec(op, &refs)
        .map_err(|e| Unavailable::Problem(format!("reference rejected the op: {e}")))?;
    if want.len() != device.len() {
        return Err(Unavailable::Problem(format!(
            "local check: the reference output has shape {:?}, the capture's {:?}",
            want.shape(),
            rec.shape
        )));
    }
    let tol = inp.thresholds.local(&op.name, op.kind.class(), dtype);
    Tracer::check(&want.as_slice(), device, dtype, &tol)
        .map_err(|e| Unavailable::Problem(format!("local check: {e}")))
}

/// The activation inputs of a capture op (from the capture; raw model inputs the capture does
/// not hold come from the goldens) followed by its parameters (from the checkpoint). A record
/// without `params` borrows the golden record's when it has the same kind and the same number
/// of inputs.
fn local_inputs(
    inp: &CompareInputs<'_>,
    rec: &OpRecord,
    golden_rec: Option<&OpRecord>,
) -> Result<Vec<Tensor>, Unavailable> {
    use Unavailable::Problem;
    let mut out = Vec::with_capacity(rec.inputs.len() + rec.params.len());
    for name in &rec.inputs {
        let own = inp.capture.record(name).is_some() || inp.capture.input(name).is_some();
        let t = if own {
            match inp.capture.golden(name) {
                Ok(Some(Golden::Full(t))) => t,
                Ok(_) => return Err(Unavailable::StatsOnly),
                Err(e) => {
                    return Err(Problem(format!(
                        "no local check: input `{name}` unreadable: {e}"
                    )))
                }
            }
        } else if inp.goldens.input(name).is_some() {
            inp.goldens.tensor(name).map_err(|e| {
                Problem(format!(
                    "no local check: raw input `{name}` unreadable: {e}"
                ))
            })?
        } else {
            return Err(Problem(format!(
                "no local check: input `{name}` is neither in the capture nor a raw input of the goldens"
            )));
        };
        out.push(t);
    }
    let params: &[String] = match golden_rec {
        Some(g)
            if rec.params.is_empty()
                && g.kind == rec.kind
                && g.inputs.len() == rec.inputs.len() =>
        {
            &g.params
        }
        _ => &rec.params,
    };
    if !params.is_empty() {
        let w = inp.weights.ok_or_else(|| {
            Problem(
                "no local check: the op reads checkpoint parameters and the goldens name no checkpoint"
                    .to_string(),
            )
        })?;
        for p in params {
            let t = w.get(inp.reference, p).map_err(|e| {
                let mut msg = format!("no local check: parameter `{p}`: {e}");
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    src = s.source();
                }
                Problem(msg)
            })?;
            out.push(t);
        }
    }
    Ok(out)
}

/// Why the inputs of a local check could not be had.
enum Unavailable {
    /// An input was stored as statistics only (a normal trait of big captures).
    StatsOnly,
    /// Something is missing or unreadable: the message becomes a note of the op.
    Problem(String),
}

/// True when the op kind reads activations (not only attributes or parameters).
fn takes_activations(kind: &OpKind) -> bool {
    !matches!(
        kind,
        OpKind::Full { .. } | OpKind::InterpolateBicubic { .. }
    )
}

/// Equal shapes, or equal once every size-1 axis is dropped (a TT-NN `[1, 1, T, D]` view of a
/// `[1, T, D]` golden): the row-major data then lines up element for element.
fn same_layout(golden: &[usize], device: &[usize]) -> bool {
    golden == device
        || (golden
            .iter()
            .filter(|&&d| d != 1)
            .eq(device.iter().filter(|&&d| d != 1))
            && golden.iter().product::<usize>() == device.iter().product::<usize>())
}

/// The op class of a kind outside the catalog, from its name (TT-NN op names such as
/// `ttnn.linear` or `ttnn.experimental.nlp_create_qkv_heads`). Only labels the op: tolerances
/// of chained checks do not depend on the class.
fn class_from_kind_name(kind: &str) -> OpClass {
    let k = kind.rsplit('.').next().unwrap_or(kind).to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| k.contains(w));
    if any(&["attention", "sdpa"]) {
        OpClass::Attention
    } else if k.contains("norm") {
        OpClass::Norm
    } else if any(&["matmul", "linear", "conv"]) {
        OpClass::Matmul
    } else if any(&[
        "reshape",
        "view",
        "permute",
        "transpose",
        "concat",
        "slice",
        "split",
        "pad",
        "layout",
        "tilize",
        "typecast",
        "embedding",
        "repeat",
        "expand",
        "squeeze",
        "memory_config",
        "sharded",
        "interleaved",
        "copy",
        "clone",
        "full",
        "zeros",
        "ones",
        "arange",
        "gather",
        "heads",
    ]) {
        OpClass::DataMovement
    } else {
        OpClass::Eltwise
    }
}

/// `tile` / `row_major` from `Layout.TILE`, `TILE`, `tile`, …; anything else as written.
fn layout_label(s: &str) -> String {
    let l = s.to_ascii_lowercase();
    let l = l.rsplit(['.', ':']).next().unwrap_or(&l).to_string();
    match l.as_str() {
        "tile" => "tile".into(),
        "row_major" => "row_major".into(),
        _ => s.to_string(),
    }
}

/// `dram_interleaved`, `l1_width_sharded`, … from a TT-NN `MemoryConfig(...)` text or a short
/// name; anything else as written.
fn memory_label(s: &str) -> String {
    let l = s.to_ascii_lowercase();
    let buffer =
        if l.starts_with("l1") || l.contains("buffertype::l1") || l.contains("buffertype.l1") {
            Some("l1")
        } else if l.starts_with("dram")
            || l.contains("buffertype::dram")
            || l.contains("buffertype.dram")
        {
            Some("dram")
        } else {
            None
        };
    let layout = [
        "interleaved",
        "height_sharded",
        "width_sharded",
        "block_sharded",
    ]
    .into_iter()
    .find(|k| l.contains(k));
    match (buffer, layout) {
        (Some(b), Some(k)) => format!("{b}_{k}"),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Result<RenameMap, MapError> {
        RenameMap::parse(text, Path::new("map.toml"))
    }

    #[test]
    fn wildcards_capture_segments_and_paths() {
        let p = Pattern::parse("tt.blocks.*.attn.?_proj").unwrap();
        assert_eq!(
            p.captures("tt.blocks.12.attn.q_proj"),
            Some(vec!["12".to_string(), "q".to_string()])
        );
        assert_eq!(
            p.captures("tt.blocks.1.2.attn.q_proj"),
            None,
            "`*` stops at dots"
        );
        assert_eq!(p.captures("tt.blocks.3.attn.qk_proj"), None);
        let p = Pattern::parse("tt.**").unwrap();
        assert_eq!(p.captures("tt.a.b.c"), Some(vec!["a.b.c".to_string()]));
        assert_eq!(p.captures("tt"), None);
        let p = Pattern::parse("**.k_rope").unwrap();
        assert_eq!(
            p.captures("denoise.3.expert.layers.0.attn.k_rope"),
            Some(vec!["denoise.3.expert.layers.0.attn".to_string()])
        );
        let p = Pattern::parse("a*b").unwrap();
        assert_eq!(p.captures("ab"), Some(vec![String::new()]));
        assert_eq!(p.captures("axxbyb"), Some(vec!["xxby".to_string()]));
    }

    #[test]
    fn rules_apply_first_match_and_keep_unmatched_names() {
        let m = map(r#"
            [modules]
            tt_pi0 = "pi0"

            [[rename]]
            from = "tt.vision.blocks.*.q"
            to = "siglip.layers.{1}.attn.q"

            [[rename]]
            from = "tt.**"
            to = "{1}"
        "#)
        .unwrap();
        assert_eq!(m.op("tt.vision.blocks.7.q"), "siglip.layers.7.attn.q");
        assert_eq!(m.op("tt.vlm.norm"), "vlm.norm");
        assert_eq!(m.op("siglip.post_ln"), "siglip.post_ln");
        assert_eq!(m.module("tt_pi0"), "pi0");
        assert_eq!(m.module("siglip"), "siglip");
        assert!(m.describe().contains("2 rename rules"), "{}", m.describe());
    }

    #[test]
    fn bad_maps_name_the_file_and_rule() {
        let e = map("[[rename]]\nfrom = \"a.*\"\nto = \"b.{2}\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("map.toml") && msg.contains("rule 1"), "{msg}");
        assert!(msg.contains("wildcard 2") && msg.contains("has 1"), "{msg}");
        let e = map("[[rename]]\nfrom = \"a.[x]\"\nto = \"b\"\n").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        let e = map("[[rename]]\nfrom = \"a\"\ntoo = \"b\"\n").unwrap_err();
        assert!(matches!(e, MapError::Parse { .. }), "{e}");
        let e = map("[[rename]]\nfrom = \"\"\nto = \"b\"\n").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = map("[modules]\nx = \"\"\n").unwrap_err();
        assert!(e.to_string().contains("must not be empty"), "{e}");
    }

    #[test]
    fn squeezed_shapes_line_up() {
        assert!(same_layout(&[1, 58, 64], &[1, 58, 64]));
        assert!(same_layout(&[1, 58, 64], &[1, 1, 58, 64]));
        assert!(same_layout(&[2, 25, 32], &[2, 25, 32, 1]));
        assert!(!same_layout(&[1, 58, 64], &[1, 64, 58]));
        assert!(!same_layout(&[1, 58, 64], &[58, 32]));
    }

    #[test]
    fn device_labels_are_normalised() {
        assert_eq!(layout_label("Layout.TILE"), "tile");
        assert_eq!(layout_label("ROW_MAJOR"), "row_major");
        assert_eq!(layout_label("weird"), "weird");
        assert_eq!(
            memory_label(
                "MemoryConfig(memory_layout=TensorMemoryLayout::WIDTH_SHARDED,buffer_type=BufferType::L1,shard_spec=...)"
            ),
            "l1_width_sharded"
        );
        assert_eq!(memory_label("dram_interleaved"), "dram_interleaved");
        assert_eq!(memory_label("host"), "host");
        assert_eq!(class_from_kind_name("ttnn.linear"), OpClass::Matmul);
        assert_eq!(
            class_from_kind_name("ttnn.transformer.scaled_dot_product_attention"),
            OpClass::Attention
        );
        assert_eq!(class_from_kind_name("ttnn.rms_norm"), OpClass::Norm);
        assert_eq!(
            class_from_kind_name("ttnn.to_layout"),
            OpClass::DataMovement
        );
        assert_eq!(class_from_kind_name("ttnn.add"), OpClass::Eltwise);
        let (b, p) = producer_labels(&serde_json::json!({"name": "x", "backend": "ttnn"}));
        assert_eq!((b.as_str(), p.as_str()), ("ttnn", "capture"));
    }
}
