//! Drawing: reads [`App`] and renders one frame. Never changes state; returns where each pane
//! went so the event loop can map the mouse and size the pages.
//!
//! Layout, top to bottom: a 2-line header, the module list beside the per-layer chart, the op
//! table, the detail pane, a 1-line footer. On small terminals the chart and the detail pane
//! give way to the op table and appear in its place when focused; Enter on an op zooms the
//! detail pane over the whole body.

mod chart;
mod detail;
pub mod fmt;
mod modules;
mod ops;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::harness::record::Verdict;
use crate::tui::action::Areas;
use crate::tui::state::{App, Pane, Viewport};
use crate::tui::theme;

/// Smallest screen drawn in full; below it a one-line notice.
pub const MIN_WIDTH: u16 = 20;
pub const MIN_HEIGHT: u16 = 6;

/// Width of the module list when the chart sits beside it.
const MODULES_WIDTH: u16 = 62;

/// Renders the whole screen.
pub fn draw(frame: &mut Frame, app: &App) -> Areas {
    let area = frame.area();
    let mut areas = Areas::default();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!("pccscope: enlarge the terminal (≥ {MIN_WIDTH}×{MIN_HEIGHT}) · q quits");
        frame.render_widget(Paragraph::new(msg).wrap(Wrap { trim: true }), area);
        return areas;
    }
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    header(frame, app, head);
    footer(frame, app, foot);

    if app.zoomed {
        areas.detail = Some(detail::draw(frame, app, body, true));
    } else {
        layout_body(frame, app, body, &mut areas);
    }
    if app.help {
        help(frame, area);
    }
    areas
}

/// Pane sizes of a drawn frame, for [`App::set_viewport`].
pub fn viewport(areas: &Areas) -> Viewport {
    Viewport {
        module_rows: areas.modules.map_or(1, |r| usize::from(r.height.max(1))),
        op_rows: areas.ops.map_or(1, |r| usize::from(r.height.max(1))),
        detail_rows: areas
            .detail
            .map_or(1, |r| usize::from(r.height.saturating_sub(2).max(1))),
    }
}

fn layout_body(frame: &mut Frame, app: &App, body: Rect, areas: &mut Areas) {
    let modules_h = usize::max(app.modules.len(), 1) as u16 + 2;
    let large = body.width >= 120 && body.height >= 30;
    let (top_h, detail_h) = if large {
        let rest = body.height.saturating_sub(modules_h);
        (modules_h, (rest * 2 / 5).clamp(8, 22))
    } else if body.height >= 14 {
        (modules_h.min((body.height / 3).max(5)), 0)
    } else {
        (0, 0)
    };
    let [top, table, bottom] = Layout::vertical([
        Constraint::Length(top_h),
        Constraint::Fill(1),
        Constraint::Length(detail_h),
    ])
    .areas(body);

    let chart_beside = top.height > 0 && top.width >= 120;
    if top.height > 0 {
        let (list, chart_area) = if chart_beside {
            let [l, c] =
                Layout::horizontal([Constraint::Length(MODULES_WIDTH), Constraint::Fill(1)])
                    .areas(top);
            (l, Some(c))
        } else {
            (top, None)
        };
        areas.modules = Some(modules::draw(frame, app, list));
        if let Some(c) = chart_area {
            areas.chart = Some(chart::draw(frame, app, c));
        }
    }
    // A focused pane with no place of its own takes the op table's.
    let hidden_focus = match app.focus {
        Pane::Detail if detail_h == 0 => Some(Pane::Detail),
        Pane::Chart if !chart_beside => Some(Pane::Chart),
        Pane::Modules if top.height == 0 => Some(Pane::Modules),
        _ => None,
    };
    match hidden_focus {
        Some(Pane::Detail) => areas.detail = Some(detail::draw(frame, app, table, false)),
        Some(Pane::Chart) => areas.chart = Some(chart::draw(frame, app, table)),
        Some(Pane::Modules) => areas.modules = Some(modules::draw(frame, app, table)),
        _ => areas.ops = Some(ops::draw(frame, app, table)),
    }
    if detail_h > 0 {
        areas.detail = Some(detail::draw(frame, app, bottom, false));
    }
}

/// A bordered block titled `title`, highlighted when `pane` has the focus.
pub(crate) fn pane_block<'a>(app: &App, pane: Pane, title: Line<'a>) -> Block<'a> {
    let focused = app.active_pane() == pane && !app.help;
    Block::bordered()
        .border_style(theme::border(focused))
        .title(title)
}

fn verdict_span(v: Verdict) -> Span<'static> {
    Span::styled(format!(" {} ", theme::badge(v)), theme::verdict_style(v))
}

fn header(frame: &mut Frame, app: &App, area: Rect) {
    let sep = || Span::styled(" · ", theme::dim());
    let mut l1 = vec![Span::styled("pccscope", theme::title())];
    let verdict = match (&app.summary, app.live.as_ref()) {
        (Some(s), _) => verdict_span(s.verdict),
        (None, Some(l)) if l.aborted => {
            Span::styled(" ABORTED ", theme::verdict_style(Verdict::Error))
        }
        (None, Some(_)) => Span::styled(" running ", theme::message()),
        (None, None) => Span::raw(" - "),
    };
    l1.push(Span::raw(" "));
    l1.push(verdict);
    if let Some(i) = &app.info {
        let fields = [
            ("goldens", i.goldens.as_str()),
            ("backend", i.backend.as_str()),
            ("profile", i.profile.as_str()),
            ("mode", i.mode.as_str()),
            ("thresholds", i.thresholds.as_str()),
        ];
        for (k, v) in fields {
            l1.push(sep());
            l1.push(Span::styled(format!("{k} "), theme::dim()));
            l1.push(Span::raw(v.to_string()));
        }
        l1.push(sep());
        l1.push(Span::styled("elapsed ", theme::dim()));
        l1.push(Span::raw(fmt::secs(app.elapsed.as_secs_f64())));
        l1.push(sep());
        l1.push(Span::styled("run ", theme::dim()));
        l1.push(Span::raw(i.id.clone()));
    }
    let l2 = if app.is_live_running() {
        progress_line(app, area.width)
    } else {
        summary_line(app)
    };
    let [a, b] = Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(l1)), a);
    frame.render_widget(Paragraph::new(l2), b);
}

fn progress_line(app: &App, width: u16) -> Line<'static> {
    let Some(live) = &app.live else {
        return Line::default();
    };
    let running = app
        .modules
        .iter()
        .rev()
        .find(|m| m.status != crate::tui::state::ModuleStatus::Pending);
    let (id, done, expected) = running.map_or(("-", 0, 0), |m| {
        (m.id.as_str(), m.ops.len(), m.expected_ops.max(m.ops.len()))
    });
    let failing: usize = app.modules.iter().map(|m| m.failing).sum();
    let modules_done = app
        .modules
        .iter()
        .filter(|m| m.status == crate::tui::state::ModuleStatus::Done)
        .count();
    let bar_w = usize::from(width / 4).clamp(4, 40);
    let frac = if expected == 0 {
        0.0
    } else {
        done as f64 / expected as f64
    };
    let filled = ((frac * bar_w as f64).round() as usize).min(bar_w);
    let mut spans = vec![
        Span::styled("running ", theme::message()),
        Span::raw(format!(
            "[{}/{}] {id} ",
            (live.module_index + 1).min(live.module_total.max(1)),
            live.module_total
        )),
        Span::styled("█".repeat(filled), Style::new().fg(theme::PASS)),
        Span::styled("░".repeat(bar_w - filled), theme::dim()),
        Span::raw(format!(
            " {done}/{expected} ops · {modules_done} modules done · "
        )),
    ];
    spans.push(if failing > 0 {
        Span::styled(
            format!("{failing} failing"),
            theme::verdict_style(Verdict::Fail),
        )
    } else {
        Span::raw("0 failing")
    });
    if let Some(f) = app.first_divergence {
        if let Some(op) = app.modules.get(f.module).and_then(|m| m.ops.get(f.op)) {
            spans.push(Span::raw(" · first divergence so far: "));
            spans.push(Span::styled(
                op.name.clone(),
                theme::verdict_style(Verdict::Fail),
            ));
        }
    }
    Line::from(spans)
}

fn summary_line(app: &App) -> Line<'static> {
    let mut spans = Vec::new();
    if let Some(l) = &app.live {
        if l.aborted {
            spans.push(Span::styled(
                "the run stopped without a result · ",
                theme::verdict_style(Verdict::Error),
            ));
        }
    }
    if let Some(s) = &app.summary {
        spans.push(Span::raw(format!(
            "{} ops · {} checked · ",
            s.ops, s.ops_checked
        )));
        let bad = |n: usize, what: &str| {
            if n > 0 {
                Span::styled(format!("{n} {what}"), theme::verdict_style(Verdict::Fail))
            } else {
                Span::raw(format!("0 {what}"))
            }
        };
        spans.push(bad(s.ops_failed, "failed"));
        spans.push(Span::raw(" · "));
        spans.push(bad(s.ops_error, "errors"));
        spans.push(Span::raw(format!(
            " · coverage {:.1}% · ",
            s.coverage * 100.0
        )));
        match &s.first_divergence {
            Some(f) => {
                spans.push(Span::styled("first divergence ", theme::title()));
                spans.push(Span::styled(
                    format!("◆ {}", f.op),
                    theme::verdict_style(Verdict::Fail),
                ));
                spans.push(Span::raw(format!(" ({} #{})", f.module, f.index)));
                if let Some(r) = &f.reason {
                    spans.push(Span::styled(format!(" {r}"), theme::dim()));
                }
            }
            None => spans.push(Span::styled("no divergence", Style::new().fg(theme::PASS))),
        }
    }
    if let Some(note) = app.live.as_ref().and_then(|l| l.notes.last()) {
        spans.push(Span::styled(format!(" · {note}"), theme::dim()));
    }
    Line::from(spans)
}

const HINTS: &[(&str, &str)] = &[
    ("↑↓", "move"),
    ("Tab", "pane"),
    ("Enter", "detail"),
    ("f", "first divergence"),
    ("n/N", "failing"),
    ("/", "filter"),
    ("s", "sort"),
    ("m", "chained/local"),
    ("c", "chart scale"),
    ("?", "help"),
    ("q", "quit"),
];

fn footer(frame: &mut Frame, app: &App, area: Rect) {
    let mut spans: Vec<Span> = Vec::new();
    if app.filter_editing {
        spans.push(Span::styled("/", theme::key()));
        spans.push(Span::raw(app.filter.clone()));
        spans.push(Span::styled("█", theme::dim()));
        spans.push(Span::styled(
            format!("  {} match · Enter keep · Esc clear", app.view.len()),
            theme::dim(),
        ));
    } else {
        if let Some(m) = &app.message {
            spans.push(Span::styled(format!("{m}  "), theme::message()));
        }
        if !app.filter.is_empty() {
            spans.push(Span::styled(
                format!("filter “{}” ({} ops)  ", app.filter, app.view.len()),
                theme::message(),
            ));
        }
        for (k, what) in HINTS {
            spans.push(Span::styled(*k, theme::key()));
            spans.push(Span::raw(format!(" {what}  ")));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move in the focused pane"),
    ("PgUp PgDn  Space", "a page up / down"),
    ("Home End  g G", "first / last (End follows a live run)"),
    (
        "Tab  Shift-Tab  1-4",
        "focus modules · ops · detail · chart",
    ),
    (
        "Enter",
        "modules: open the ops · ops: zoom the detail · chart: go to the layer",
    ),
    ("← →  h l", "move the chart's layer cursor"),
    ("f", "jump to the first diverging op of the run"),
    ("n  N", "next / previous failing op"),
    ("/", "filter ops by name (Enter keeps, Esc clears)"),
    ("s", "sort: execution order ↔ lowest PCC first"),
    (
        "m",
        "emphasis: chained ↔ local (metric columns, sort, chart)",
    ),
    ("c", "chart: PCC ↔ 1−PCC on a log axis"),
    ("mouse", "wheel scrolls, click selects"),
    ("?", "this help"),
    (
        "q  Esc  Ctrl-C",
        "quit (Esc first closes help, filter, zoom)",
    ),
];

const LEGEND: &[(&str, &str)] = &[
    (
        "◆",
        "first diverging op: it raised or its local check failed",
    ),
    (
        "",
        "(no reference backend, e.g. a cpu device: its chained check failed)",
    ),
    ("chained", "device output vs the golden: accumulated drift"),
    (
        "local",
        "device output vs the reference on the device's own inputs",
    ),
    ("Δmax rel-L2 ULP", "metrics of the emphasised check (m)"),
    ("pass FAIL ERR!", "verdicts; ERR! = the op raised"),
    (
        "unck host",
        "no golden (never a pass) · unsupported, ran on the host",
    ),
];

fn help(frame: &mut Frame, area: Rect) {
    let w = area.width.saturating_sub(4).min(96);
    let h = area
        .height
        .saturating_sub(2)
        .min((HELP.len() + LEGEND.len() + 5) as u16);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines = Vec::new();
    for (k, what) in HELP {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:>20}  "), theme::key()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::default());
    for (k, what) in LEGEND {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:>20}  "), theme::title()),
            Span::raw(*what),
        ]));
    }
    frame.render_widget(Clear, r);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .border_style(theme::border(true))
                .title(Line::styled(" keys · ? or Esc closes ", theme::title())),
        ),
        r,
    );
}
