//! The module list: verdict badge, min chained PCC, ops, failing ops, time.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table};
use ratatui::Frame;

use crate::tui::draw::{fmt, pane_block};
use crate::tui::state::{App, ModuleState, ModuleStatus, Pane};
use crate::tui::theme;

/// Draws the list into `area`; returns the rows' area.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) -> Rect {
    let done = app
        .modules
        .iter()
        .filter(|m| m.status == ModuleStatus::Done)
        .count();
    let title = Line::from(vec![
        Span::styled(" modules ", theme::title()),
        Span::styled(format!("{done}/{} ", app.modules.len()), theme::dim()),
    ]);
    let block = pane_block(app, Pane::Modules, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return inner;
    }
    let rows_area = Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    };
    let visible = usize::from(rows_area.height);
    let first = app.module_offset.min(app.modules.len());
    let rows: Vec<Row> = app.modules[first..]
        .iter()
        .take(visible)
        .enumerate()
        .map(|(k, m)| row(app, m, first + k))
        .collect();
    let header =
        Row::new(["", "module", "min PCC", "ops", "fail", "time"]).style(theme::header_row());
    let widths = [
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Length(10),
        Constraint::Length(11),
        Constraint::Length(5),
        Constraint::Length(7),
    ];
    frame.render_widget(Table::new(rows, widths).header(header), inner);
    rows_area
}

fn row<'a>(app: &App, m: &'a ModuleState, pos: usize) -> Row<'a> {
    let (badge, badge_style) = match (m.status, m.verdict()) {
        (ModuleStatus::Done, Some(v)) => {
            (format!(" {} ", theme::badge(v)), theme::verdict_style(v))
        }
        (ModuleStatus::Running, _) => (" run… ".to_string(), theme::message()),
        _ => ("  ··  ".to_string(), Style::new().fg(theme::PENDING)),
    };
    let ops = match m.status {
        ModuleStatus::Done => m.ops.len().to_string(),
        ModuleStatus::Running => format!("{}/{}", m.ops.len(), m.expected_ops),
        ModuleStatus::Pending => "-".into(),
    };
    let min_pcc = m.report.as_ref().and_then(|r| r.min_pcc);
    let pcc_style = match m.report.as_ref() {
        Some(r) if min_pcc.is_some_and(|p| p < r.gate) => {
            theme::verdict_style(crate::harness::Verdict::Fail)
        }
        _ => Style::new(),
    };
    let time = m
        .report
        .as_ref()
        .map_or_else(|| "-".to_string(), |r| fmt::secs(r.duration_s));
    let mut name = vec![Span::raw(m.id.clone())];
    if app.first_divergence.is_some_and(|f| f.module == pos) {
        name.push(Span::styled(
            " ◆",
            theme::verdict_style(crate::harness::Verdict::Fail),
        ));
    }
    if m.report.as_ref().is_some_and(|r| r.inputs_from != "golden") {
        name.push(Span::styled(" ⇠dev", theme::dim()));
    }
    let fail = if m.failing > 0 {
        Cell::from(Span::styled(
            m.failing.to_string(),
            theme::verdict_style(crate::harness::Verdict::Fail),
        ))
    } else {
        Cell::from("0")
    };
    let r = Row::new(vec![
        Cell::from(Span::styled(badge, badge_style)),
        Cell::from(Line::from(name)),
        Cell::from(Span::styled(fmt::pcc(min_pcc), pcc_style)),
        Cell::from(Line::from(ops).right_aligned()),
        fail,
        Cell::from(Line::from(time).right_aligned()),
    ]);
    if pos == app.selected_module {
        r.style(theme::selected())
    } else {
        r
    }
}
