//! Per-layer chart of the selected module: the lowest chained and local PCC of each
//! `layers.{i}` block in execution order, with the module's gate as a line; `c` switches to
//! 1 − PCC on a log axis.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph};
use ratatui::Frame;

use crate::harness::record::Verdict;
use crate::tui::draw::{fmt, pane_block};
use crate::tui::state::{App, ChartScale, Emphasis, LayerPoint, Pane};
use crate::tui::theme;

/// 1 − PCC below this is drawn at this value on the log axis.
const LOG_FLOOR: f64 = 1e-16;

fn y_of(scale: ChartScale, pcc: f64) -> f64 {
    match scale {
        ChartScale::Pcc => pcc,
        ChartScale::OneMinusPccLog => (1.0 - pcc).max(LOG_FLOOR).log10(),
    }
}

/// Draws the chart into `area`; returns it.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) -> Rect {
    let Some(m) = app.module() else {
        frame.render_widget(pane_block(app, Pane::Chart, Line::from(" layers ")), area);
        return area;
    };
    let scale_name = match app.chart_scale {
        ChartScale::Pcc => "PCC",
        ChartScale::OneMinusPccLog => "1−PCC (log)",
    };
    let mut title = vec![
        Span::styled(
            format!(" {scale_name} per layer · {} ", m.id),
            theme::title(),
        ),
        Span::styled("chained", Style::new().fg(theme::CHAINED)),
        Span::raw(" "),
        Span::styled("local", Style::new().fg(theme::LOCAL)),
        Span::raw(" "),
        Span::styled("gate", Style::new().fg(theme::GATE)),
    ];
    let cursor = m.layers.get(app.layer_cursor);
    if let (Some(l), true) = (cursor, app.active_pane() == Pane::Chart) {
        title.push(Span::raw(format!(
            " · ▸ {} chained {} local {}",
            l.block,
            fmt::pcc(l.chained),
            fmt::pcc(l.local)
        )));
    }
    title.push(Span::styled(" · c scale ", theme::dim()));
    let block = pane_block(app, Pane::Chart, Line::from(title));
    if m.layers.is_empty() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(
            Paragraph::new(format!("{} has no layers.{{i}} ops", m.id)).style(theme::dim()),
            inner,
        );
        return area;
    }
    if area.width < 16 || area.height < 6 {
        frame.render_widget(block, area);
        return area;
    }
    let scale = app.chart_scale;
    let series = |f: &dyn Fn(&LayerPoint) -> Option<f64>| -> Vec<(f64, f64)> {
        m.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                f(l).filter(|p| p.is_finite())
                    .map(|p| (i as f64, y_of(scale, p)))
            })
            .collect()
    };
    let chained = series(&|l| l.chained);
    let local = series(&|l| l.local);
    let bad: Vec<(f64, f64)> = m
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.bad)
        .filter_map(|(i, l)| {
            let p = match app.emphasis {
                Emphasis::Local => l.local.or(l.chained),
                Emphasis::Chained => l.chained.or(l.local),
            }?;
            Some((i as f64, y_of(scale, p)))
        })
        .collect();
    let gate = m.report.as_ref().map(|r| r.gate).filter(|g| g.is_finite());
    let x_max = (m.layers.len().max(2) - 1) as f64;
    let gate_line: Vec<(f64, f64)> = gate
        .map(|g| vec![(0.0, y_of(scale, g)), (x_max, y_of(scale, g))])
        .unwrap_or_default();

    let ys: Vec<f64> = chained
        .iter()
        .chain(local.iter())
        .chain(gate_line.iter())
        .map(|p| p.1)
        .collect();
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (y_bounds, y_labels) = match scale {
        ChartScale::Pcc => {
            let top = hi.max(1.0);
            let span = (top - lo).max(1e-6);
            let lo = lo - 0.05 * span;
            let digits = ((-span.log10()).ceil().max(0.0) as usize + 2).min(10);
            let mid = (lo + top) / 2.0;
            (
                [lo, top],
                vec![
                    format!("{lo:.digits$}"),
                    format!("{mid:.digits$}"),
                    format!("{top:.digits$}"),
                ],
            )
        }
        ChartScale::OneMinusPccLog => {
            let lo = lo.floor().min(-1.0);
            let hi = hi.ceil().max(lo + 1.0).min(1.0);
            let mid = ((lo + hi) / 2.0).round();
            (
                [lo, hi],
                vec![
                    format!("1e{lo:.0}"),
                    format!("1e{mid:.0}"),
                    format!("1e{hi:.0}"),
                ],
            )
        }
    };
    let cursor_line: Vec<(f64, f64)> = if app.active_pane() == Pane::Chart {
        let x = app.layer_cursor as f64;
        vec![(x, y_bounds[0]), (x, y_bounds[1])]
    } else {
        Vec::new()
    };
    let short = |l: &LayerPoint| format!("{}", l.layer);
    let x_labels = {
        let first = m.layers.first().map(short).unwrap_or_default();
        let last = m.layers.last().map(short).unwrap_or_default();
        let mid = m
            .layers
            .get(m.layers.len() / 2)
            .map(short)
            .unwrap_or_default();
        vec![first, mid, last]
    };
    let emph = |e: Emphasis| {
        if app.emphasis == e {
            Marker::Braille
        } else {
            Marker::Dot
        }
    };
    let mut datasets = Vec::new();
    if !gate_line.is_empty() {
        datasets.push(
            Dataset::default()
                .graph_type(GraphType::Line)
                .marker(Marker::Braille)
                .style(Style::new().fg(theme::GATE))
                .data(&gate_line),
        );
    }
    if !cursor_line.is_empty() {
        datasets.push(
            Dataset::default()
                .graph_type(GraphType::Line)
                .marker(Marker::Braille)
                .style(theme::dim())
                .data(&cursor_line),
        );
    }
    let ordered = match app.emphasis {
        Emphasis::Chained => [(Emphasis::Local, &local), (Emphasis::Chained, &chained)],
        Emphasis::Local => [(Emphasis::Chained, &chained), (Emphasis::Local, &local)],
    };
    for (e, data) in ordered {
        let color = match e {
            Emphasis::Chained => theme::CHAINED,
            Emphasis::Local => theme::LOCAL,
        };
        datasets.push(
            Dataset::default()
                .graph_type(GraphType::Line)
                .marker(emph(e))
                .style(Style::new().fg(color))
                .data(data),
        );
    }
    datasets.push(
        Dataset::default()
            .graph_type(GraphType::Scatter)
            .marker(Marker::Block)
            .style(theme::verdict_style(Verdict::Fail))
            .data(&bad),
    );
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([0.0, x_max])
                .labels(x_labels)
                .style(theme::dim()),
        )
        .y_axis(
            Axis::default()
                .bounds(y_bounds)
                .labels(y_labels)
                .style(theme::dim()),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
    area
}
