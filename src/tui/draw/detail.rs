//! The detail pane of the selected op: both checks' metrics, golden vs device statistics, the
//! worst elements, the error it raised and its effective precision config.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::golden::Stats;
use crate::harness::metrics::Metrics;
use crate::harness::record::{Check, OpReport, Verdict};
use crate::tui::draw::{fmt, pane_block};
use crate::tui::state::{App, Emphasis, Pane};
use crate::tui::theme;

const LABEL_W: usize = 13;
const VALUE_W: usize = 17;
/// Worst elements listed per check.
const TOP_K: usize = 8;

/// Draws the pane into `area`; returns it.
pub fn draw(frame: &mut Frame, app: &App, area: Rect, zoomed: bool) -> Rect {
    let op = app.selected_op();
    let mut title = vec![Span::styled(" detail ", theme::title())];
    if let Some(op) = op {
        title.push(Span::raw(format!("· {} ", op.name)));
    }
    if zoomed {
        title.push(Span::styled("· Esc/Enter back ", theme::dim()));
    }
    let block = pane_block(app, Pane::Detail, Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(op) = op else {
        frame.render_widget(Paragraph::new("no op selected").style(theme::dim()), inner);
        return area;
    };
    if inner.height == 0 || inner.width == 0 {
        return area;
    }
    let first_div = app.is_run_first_divergence(app.selected_op_pos().unwrap_or(usize::MAX));
    let module_first = app
        .module()
        .and_then(|m| m.first_divergence)
        .is_some_and(|p| Some(p) == app.selected_op_pos());
    let head = identity(op, first_div, module_first);
    let scroll = u16::try_from(app.detail_scroll).unwrap_or(u16::MAX);

    let checks = checks_lines(op);
    let stats = stats_lines(op);
    let extra = extra_lines(app, op);
    let col_w = (LABEL_W + 2 * VALUE_W + 2) as u16;
    if inner.width >= 2 * col_w + 30 {
        let [h, body] = Layout::vertical([Constraint::Length(2), Constraint::Fill(1)]).areas(inner);
        frame.render_widget(Paragraph::new(head), h);
        let [a, b, c] = Layout::horizontal([
            Constraint::Length(col_w),
            Constraint::Length(col_w),
            Constraint::Fill(1),
        ])
        .areas(body);
        frame.render_widget(Paragraph::new(checks).scroll((scroll, 0)), a);
        frame.render_widget(Paragraph::new(stats).scroll((scroll, 0)), b);
        let mut right = error_lines(op);
        right.extend(extra);
        frame.render_widget(
            Paragraph::new(right)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0)),
            c,
        );
    } else {
        let mut lines = head;
        lines.push(Line::default());
        lines.extend(error_lines(op));
        if inner.width >= 2 * col_w {
            lines.extend(side_by_side(checks, stats, usize::from(col_w)));
        } else {
            lines.extend(checks);
            lines.push(Line::default());
            lines.extend(stats);
        }
        lines.push(Line::default());
        lines.extend(extra);
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0)),
            inner,
        );
    }
    area
}

/// Two columns of lines as one, the left padded to `left_w` characters.
fn side_by_side(
    left: Vec<Line<'static>>,
    right: Vec<Line<'static>>,
    left_w: usize,
) -> Vec<Line<'static>> {
    let n = left.len().max(right.len());
    let mut l = left.into_iter();
    let mut r = right.into_iter();
    (0..n)
        .map(|_| {
            let mut spans = l.next().map(|x| x.spans).unwrap_or_default();
            let w: usize = spans.iter().map(|s| s.content.chars().count()).sum();
            spans.push(Span::raw(" ".repeat(left_w.saturating_sub(w))));
            spans.extend(r.next().map(|x| x.spans).unwrap_or_default());
            Line::from(spans)
        })
        .collect()
}

fn identity(op: &OpReport, run_first: bool, module_first: bool) -> Vec<Line<'static>> {
    let mut l1 = Vec::new();
    if run_first {
        l1.push(Span::styled(
            " ◆ FIRST DIVERGENCE ",
            theme::first_divergence(),
        ));
        l1.push(Span::raw(" "));
    } else if module_first {
        l1.push(Span::styled(
            " ◆ first divergence of this module ",
            theme::first_divergence(),
        ));
        l1.push(Span::raw(" "));
    }
    l1.push(Span::styled(
        format!(" {} ", theme::badge(op.verdict)),
        theme::verdict_style(op.verdict),
    ));
    l1.push(Span::styled(format!(" {}", op.name), theme::title()));
    l1.push(Span::styled(
        format!("  #{} · {} · class {}", op.index, op.kind, op.class),
        theme::dim(),
    ));
    let l2 = Line::from(vec![
        Span::styled("shape ", theme::dim()),
        Span::raw(format!("[{}]", join(&op.shape))),
        Span::styled("  padded ", theme::dim()),
        Span::raw(format!("[{}]", join(&op.padded_shape))),
        Span::styled("  dtype ", theme::dim()),
        Span::raw(op.dtype.clone()),
        Span::styled("  layout ", theme::dim()),
        Span::raw(op.layout.clone()),
        Span::styled("  memory ", theme::dim()),
        Span::raw(op.memory.clone()),
        Span::styled("  time ", theme::dim()),
        Span::raw(fmt::micros(op.duration_us)),
    ]);
    vec![Line::from(l1), l2]
}

fn join(s: &[usize]) -> String {
    s.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn cells(label: &str, a: String, b: String, style_a: Style, style_b: Style) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{label:<LABEL_W$}"), theme::dim()),
        Span::styled(format!("{a:>VALUE_W$}"), style_a),
        Span::styled(format!("{b:>VALUE_W$}"), style_b),
    ])
}

fn checks_lines(op: &OpReport) -> Vec<Line<'static>> {
    let c = op.chained.as_ref();
    let l = op.local.as_ref();
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{:<LABEL_W$}", "check"), theme::header_row()),
        Span::styled(
            format!("{:>VALUE_W$}", "chained"),
            theme::header_row().fg(theme::CHAINED),
        ),
        Span::styled(
            format!("{:>VALUE_W$}", "local"),
            theme::header_row().fg(theme::LOCAL),
        ),
    ])];
    if c.is_none() && l.is_none() && op.chained_stats.is_none() {
        if op.error.is_some() {
            out.push(Line::styled(
                "no output to check: the op raised",
                theme::verdict_style(Verdict::Error),
            ));
        } else {
            out.push(Line::styled(
                "no golden and no reference: unchecked (never a pass)",
                theme::verdict_style(Verdict::Unchecked),
            ));
        }
        return out;
    }
    let verdict = |k: Option<&Check>| -> (String, Style) {
        match k {
            Some(k) if k.pass => ("pass".into(), theme::verdict_style(Verdict::Pass)),
            Some(_) => ("FAIL".into(), theme::verdict_style(Verdict::Fail)),
            None => ("-".into(), Style::new()),
        }
    };
    let (va, sa) = verdict(c);
    let (vb, sb) = verdict(l);
    out.push(cells("verdict", va, vb, sa, sb));
    let row = |label: &str, f: &dyn Fn(&Metrics) -> String| {
        let a = c.map_or_else(|| "-".to_string(), |k| f(&k.metrics));
        let b = l.map_or_else(|| "-".to_string(), |k| f(&k.metrics));
        cells(label, a, b, Style::new(), Style::new())
    };
    out.push(row("PCC", &|m| match (m.pcc, m.degenerate) {
        (Some(p), _) => format!("{p:.10}"),
        (None, Some(d)) => fmt::fit(d.as_str(), VALUE_W - 1),
        (None, None) => "-".into(),
    }));
    out.push(row("1 − PCC", &|m| {
        m.pcc.map_or("-".into(), |p| fmt::num(1.0 - p))
    }));
    out.push(row("cosine", &|m| {
        m.cosine.map_or("-".into(), |p| format!("{p:.10}"))
    }));
    out.push(row("max abs", &|m| fmt::num(m.max_abs)));
    out.push(row("mean abs", &|m| fmt::num(m.mean_abs)));
    out.push(row("rel-L2", &|m| fmt::num(m.rel_l2)));
    out.push(row("ULP max", &|m| fmt::ulp(m.ulp_max)));
    out.push(row("allclose", &|m| format!("{:.4}%", 100.0 * m.allclose)));
    out.push(row("NaN / Inf", &|m| format!("{} / {}", m.nan, m.inf)));
    out.push(row("gold NaN/Inf", &|m| {
        format!("{} / {}", m.golden_nan, m.golden_inf)
    }));
    out.push(row("elements", &|m| m.n.to_string()));
    for (name, k) in [("chained", c), ("local", l)] {
        if let Some(r) = k.and_then(|k| k.reason.as_deref()) {
            out.push(Line::from(vec![
                Span::styled(format!("{name}: "), theme::dim()),
                Span::styled(r.to_string(), theme::verdict_style(Verdict::Fail)),
            ]));
        }
    }
    if let Some(s) = &op.chained_stats {
        out.push(Line::default());
        out.push(Line::styled(
            "chained vs a stats-only golden",
            theme::header_row(),
        ));
        out.push(cells(
            "‖d‖ rel diff",
            fmt::num(s.l2_rel_diff),
            String::new(),
            Style::new(),
            Style::new(),
        ));
        out.push(cells(
            "σ rel diff",
            fmt::num(s.std_rel_diff),
            String::new(),
            Style::new(),
            Style::new(),
        ));
        let (v, st) = if s.pass {
            ("pass", theme::verdict_style(Verdict::Pass))
        } else {
            ("FAIL", theme::verdict_style(Verdict::Fail))
        };
        out.push(cells("verdict", v.into(), String::new(), st, Style::new()));
        if let Some(r) = &s.reason {
            out.push(Line::styled(r.clone(), theme::verdict_style(Verdict::Fail)));
        }
    }
    out
}

fn stats_lines(op: &OpReport) -> Vec<Line<'static>> {
    let g = op
        .golden_stats
        .as_ref()
        .or(op.chained_stats.as_ref().map(|s| &s.golden));
    let d = op
        .device_stats
        .as_ref()
        .or(op.chained_stats.as_ref().map(|s| &s.device));
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{:<LABEL_W$}", "stats"), theme::header_row()),
        Span::styled(format!("{:>VALUE_W$}", "golden"), theme::header_row()),
        Span::styled(format!("{:>VALUE_W$}", "device"), theme::header_row()),
    ])];
    if g.is_none() && d.is_none() {
        out.push(Line::styled("no statistics recorded", theme::dim()));
        return out;
    }
    let row = |label: &str, f: &dyn Fn(&Stats) -> String| {
        let a = g.map_or_else(|| "-".to_string(), f);
        let b = d.map_or_else(|| "-".to_string(), f);
        let differs = g.is_some() && d.is_some() && a != b;
        let sb = if differs {
            theme::message()
        } else {
            Style::new()
        };
        cells(label, a, b, Style::new(), sb)
    };
    out.push(row("min", &|s| fmt::num(s.min)));
    out.push(row("max", &|s| fmt::num(s.max)));
    out.push(row("mean", &|s| fmt::num(s.mean)));
    out.push(row("std", &|s| fmt::num(s.std)));
    out.push(row("l2", &|s| fmt::num(s.l2)));
    out.push(row("NaN", &|s| s.nan.to_string()));
    out.push(row("Inf", &|s| s.inf.to_string()));
    out.push(row("hash", &|s| {
        s.hash
            .rsplit(':')
            .next()
            .map_or(String::new(), |h| h.chars().take(VALUE_W - 1).collect())
    }));
    if let (Some(g), Some(d)) = (g, d) {
        let same = g.hash == d.hash;
        out.push(Line::styled(
            if same {
                "bit-identical to the golden"
            } else {
                "bits differ from the golden"
            },
            theme::dim(),
        ));
    }
    out
}

fn error_lines(op: &OpReport) -> Vec<Line<'static>> {
    match &op.error {
        Some(e) => vec![
            Line::styled("error", theme::header_row().fg(theme::ERROR)),
            Line::styled(e.clone(), theme::verdict_style(Verdict::Error)),
            Line::default(),
        ],
        None => Vec::new(),
    }
}

fn extra_lines(app: &App, op: &OpReport) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    out.push(Line::styled("precision", theme::header_row()));
    match &op.precision {
        None => out.push(Line::styled(
            format!(
                "not reported by the {} backend",
                app.info.as_ref().map_or("device", |i| i.backend.as_str())
            ),
            theme::dim(),
        )),
        Some(serde_json::Value::Object(map)) => {
            let mut spans = Vec::new();
            for (i, (k, v)) in map.iter().enumerate() {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if i > 0 {
                    spans.push(Span::styled(" · ", theme::dim()));
                }
                spans.push(Span::styled(format!("{k} "), theme::dim()));
                spans.push(Span::raw(v));
            }
            out.push(Line::from(spans));
        }
        Some(other) => out.push(Line::raw(other.to_string())),
    }
    out.push(Line::default());
    let order = match app.emphasis {
        Emphasis::Local => [
            ("local", op.local.as_ref()),
            ("chained", op.chained.as_ref()),
        ],
        Emphasis::Chained => [
            ("chained", op.chained.as_ref()),
            ("local", op.local.as_ref()),
        ],
    };
    for (name, check) in order {
        let Some(check) = check else { continue };
        if check.metrics.worst.is_empty() {
            continue;
        }
        out.push(Line::styled(
            format!("worst elements ({name})"),
            theme::header_row(),
        ));
        out.push(Line::styled(
            format!(
                "{:>9} {:<14} {:>11} {:>11} {:>10}",
                "flat", "at", "golden", "device", "|Δ|"
            ),
            theme::dim(),
        ));
        for w in check.metrics.worst.iter().take(TOP_K) {
            out.push(Line::raw(format!(
                "{:>9} {:<14} {:>11} {:>11} {:>10}",
                w.index,
                fmt::fit(&fmt::coords(w.index, &op.shape), 14),
                fmt::num(f64::from(w.golden)),
                fmt::num(f64::from(w.device)),
                fmt::num(w.abs_diff)
            )));
        }
        if check.metrics.worst.len() > TOP_K {
            out.push(Line::styled(
                format!(
                    "… {} more in report.json",
                    check.metrics.worst.len() - TOP_K
                ),
                theme::dim(),
            ));
        }
        out.push(Line::default());
    }
    out
}
