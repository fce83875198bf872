//! The op table of the selected module. Only the visible rows are built, so a module of tens of
//! thousands of ops draws as fast as one of ten.

use ratatui::layout::{Constraint, Flex, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use crate::harness::record::{Check, OpReport, Verdict};
use crate::tui::draw::{fmt, pane_block};
use crate::tui::state::{name_depth, App, Emphasis, Pane, SortOrder};
use crate::tui::theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Mark,
    Index,
    Name,
    Verdict,
    Kind,
    Shape,
    Dtype,
    Layout,
    Memory,
    Chained,
    Local,
    MaxAbs,
    RelL2,
    Ulp,
    Time,
}

/// (column, title, width, drop rank: lower goes first when the screen is narrow; 0 never).
const COLS: [(Col, &str, u16, u8); 15] = [
    (Col::Mark, "", 1, 0),
    (Col::Index, "#", 6, 0),
    (Col::Name, "op", 0, 0),
    (Col::Verdict, "", 4, 0),
    (Col::Kind, "kind", 13, 7),
    (Col::Shape, "shape", 0, 9),
    (Col::Dtype, "dtype", 9, 5),
    (Col::Layout, "layout", 9, 2),
    (Col::Memory, "memory", 16, 1),
    (Col::Chained, "chained", 9, 0),
    (Col::Local, "local", 9, 10),
    (Col::MaxAbs, "Δmax", 8, 8),
    (Col::RelL2, "rel-L2", 8, 6),
    (Col::Ulp, "ULP", 7, 4),
    (Col::Time, "time", 7, 3),
];

const NAME_MIN: u16 = 24;
const NAME_MAX: u16 = 48;
/// Columns of this drop rank or above never give way to a long name.
const KEEP_FOR_NAME: u8 = 9;
const FIRST_MARK: &str = " ◀ first divergence";

/// Draws the table into `area`; returns the data rows' area.
pub fn draw(frame: &mut Frame, app: &App, area: Rect) -> Rect {
    let block = pane_block(app, Pane::Ops, title(app));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 || inner.width < 4 {
        return inner;
    }
    let rows_area = Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    };
    let Some(module) = app.module() else {
        frame.render_widget(Paragraph::new("no module"), inner);
        return rows_area;
    };
    if app.view.is_empty() {
        let msg = if module.ops.is_empty() {
            match module.report.as_ref().and_then(|r| r.error.as_deref()) {
                Some(e) => format!("no ops ran: {e}"),
                None => "no ops yet".to_string(),
            }
        } else {
            format!("no op matches “{}”", app.filter)
        };
        frame.render_widget(Paragraph::new(msg).style(theme::message()), rows_area);
        return rows_area;
    }

    let visible = usize::from(rows_area.height);
    let first = visible_offset(app.op_offset, app.cursor, visible, app.view.len());
    let shown: Vec<usize> = app.view[first..].iter().take(visible).copied().collect();
    let shape_w = shown
        .iter()
        .map(|&p| {
            let o = &module.ops[p];
            fmt::shape_padded(&o.shape, &o.padded_shape).chars().count()
        })
        .max()
        .unwrap_or(5)
        .clamp(5, 26) as u16;

    // The name column: as wide as the longest visible name with its indentation and the
    // first-divergence mark (the rest stays blank at the right); optional columns give way
    // until it fits or reaches NAME_MAX. Indentation only when every visible name fits with it.
    let want = |indent: bool| -> u16 {
        shown
            .iter()
            .map(|&p| {
                let o = &module.ops[p];
                let ind = if indent { indent_of(&o.name) } else { 0 };
                let mark = if module.first_divergence == Some(p) {
                    FIRST_MARK.chars().count()
                } else {
                    0
                };
                ind + o.name.chars().count() + mark
            })
            .max()
            .unwrap_or(0)
            .min(usize::from(u16::MAX)) as u16
    };
    let cols = columns(inner.width, shape_w, want(true).clamp(NAME_MIN, NAME_MAX));
    let fixed: u16 = cols
        .iter()
        .filter(|(c, _)| *c != Col::Name)
        .map(|(_, w)| *w)
        .sum::<u16>()
        + cols.len().saturating_sub(1) as u16;
    let room = inner.width.saturating_sub(fixed).max(1);
    let indent = want(true) <= room;
    let name_w = want(indent).clamp(NAME_MIN.min(room), room);
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|(c, w)| Constraint::Length(if *c == Col::Name { name_w } else { *w }))
        .collect();

    let header = Row::new(cols.iter().map(|(c, _)| {
        let t = COLS.iter().find(|x| x.0 == *c).map_or("", |x| x.1);
        let style = match (c, app.emphasis) {
            (Col::Chained, Emphasis::Chained) | (Col::Local, Emphasis::Local) => {
                theme::header_row().fg(emph_color(app.emphasis))
            }
            _ => theme::header_row(),
        };
        Cell::from(Span::styled(t, style))
    }));
    let rows: Vec<Row> = shown
        .iter()
        .enumerate()
        .map(|(k, &p)| {
            let op = &module.ops[p];
            let first_div = module.first_divergence == Some(p);
            let selected = first + k == app.cursor;
            row(app, op, first_div, selected, &cols, name_w, indent)
        })
        .collect();
    frame.render_widget(
        Table::new(rows, widths).header(header).flex(Flex::Start),
        inner,
    );
    rows_area
}

/// The first visible row: the stored offset, moved just enough to show the cursor.
fn visible_offset(offset: usize, cursor: usize, rows: usize, len: usize) -> usize {
    let rows = rows.max(1);
    let mut first = offset;
    if cursor < first {
        first = cursor;
    } else if cursor >= first + rows {
        first = cursor + 1 - rows;
    }
    first.min(len.saturating_sub(rows))
}

fn emph_color(e: Emphasis) -> ratatui::style::Color {
    match e {
        Emphasis::Chained => theme::CHAINED,
        Emphasis::Local => theme::LOCAL,
    }
}

fn title(app: &App) -> Line<'static> {
    let Some(m) = app.module() else {
        return Line::from(" ops ");
    };
    let mut spans = vec![
        Span::styled(format!(" ops · {} ", m.id), theme::title()),
        Span::raw(format!("{} ops", m.ops.len())),
    ];
    if m.failing > 0 {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(
            format!("{} failing", m.failing),
            theme::verdict_style(Verdict::Fail),
        ));
    }
    if let Some(p) = m.first_divergence {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(
            format!("◆ first divergence #{}", m.ops[p].index),
            theme::verdict_style(Verdict::Fail),
        ));
    }
    spans.push(Span::styled(
        format!(
            " · metrics: {} (m) · sort: {} (s)",
            app.emphasis.as_str(),
            match app.sort {
                SortOrder::Execution => "execution",
                SortOrder::Pcc => "lowest PCC",
            }
        ),
        theme::dim(),
    ));
    if !app.filter.is_empty() {
        spans.push(Span::styled(
            format!(
                " · filter “{}” {}/{}",
                app.filter,
                app.view.len(),
                m.ops.len()
            ),
            theme::message(),
        ));
    }
    spans.push(Span::raw(" "));
    Line::from(spans)
}

/// The columns that fit in `width`, with their widths (the name's is computed by the caller).
fn columns(width: u16, shape_w: u16, name_need: u16) -> Vec<(Col, u16)> {
    let mut cols: Vec<(Col, u16, u8)> = COLS
        .iter()
        .map(|&(c, _, w, rank)| (c, if c == Col::Shape { shape_w } else { w }, rank))
        .collect();
    let need = |cols: &[(Col, u16, u8)], name: u16| -> u16 {
        cols.iter()
            .filter(|c| c.0 != Col::Name)
            .map(|c| c.1)
            .sum::<u16>()
            + cols.len().saturating_sub(1) as u16
            + name
    };
    // Columns give way for the name's minimum; for its full width only the less important
    // ones do (shape and the local PCC stay).
    loop {
        let short_of_min = need(&cols, NAME_MIN) > width;
        if !short_of_min && need(&cols, name_need) <= width {
            break;
        }
        let drop = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| c.2 > 0 && (short_of_min || c.2 < KEEP_FOR_NAME))
            .min_by_key(|(_, c)| c.2)
            .map(|(i, _)| i);
        match drop {
            Some(i) => {
                cols.remove(i);
            }
            None => break,
        }
    }
    cols.into_iter().map(|(c, w, _)| (c, w)).collect()
}

fn check_of(op: &OpReport, e: Emphasis) -> Option<&Check> {
    match e {
        Emphasis::Chained => op.chained.as_ref(),
        Emphasis::Local => op.local.as_ref(),
    }
}

/// Indentation of a name: two spaces per nesting level, at most four levels.
fn indent_of(name: &str) -> usize {
    (2 * name_depth(name)).min(8)
}

fn name_cell(op: &OpReport, width: u16, indent: bool, first_div: bool) -> Line<'static> {
    let width = usize::from(width);
    let indent = if indent { indent_of(&op.name) } else { 0 };
    let name_len = op.name.chars().count();
    let suffix = if !first_div {
        ""
    } else if indent + name_len + FIRST_MARK.chars().count() <= width {
        FIRST_MARK
    } else {
        " ◀"
    };
    let indent = indent.min(width.saturating_sub(name_len + suffix.chars().count()));
    let room = width.saturating_sub(indent + suffix.chars().count());
    // Cut from the left: the leaf matters more than the root.
    let shown: String = if name_len <= room {
        op.name.clone()
    } else if room == 0 {
        String::new()
    } else {
        let tail: String = op.name.chars().skip(name_len - (room - 1)).collect();
        format!("…{tail}")
    };
    let (prefix, leaf) = match shown.rfind('.') {
        Some(i) => (shown[..=i].to_string(), shown[i + 1..].to_string()),
        None => (String::new(), shown),
    };
    let mut spans = vec![Span::raw(" ".repeat(indent))];
    // On the red first-divergence row the dim prefix would vanish: keep it plain.
    if first_div {
        spans.push(Span::raw(prefix));
    } else {
        spans.push(Span::styled(prefix, theme::dim()));
    }
    spans.push(Span::styled(
        leaf,
        Style::new().add_modifier(Modifier::BOLD),
    ));
    if !suffix.is_empty() {
        spans.push(Span::styled(
            suffix,
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans)
}

fn pcc_cell(app: &App, op: &OpReport, which: Emphasis, plain: bool) -> Cell<'static> {
    let (text, failed) = match which {
        Emphasis::Chained => match (&op.chained, &op.chained_stats) {
            (Some(c), _) => (fmt::pcc(c.metrics.pcc), !c.pass),
            (None, Some(s)) => (if s.pass { "stats ok" } else { "stats ✗" }.into(), !s.pass),
            (None, None) => ("-".into(), false),
        },
        Emphasis::Local => match &op.local {
            Some(c) => (fmt::pcc(c.metrics.pcc), !c.pass),
            None => ("-".into(), false),
        },
    };
    let mut style = Style::new();
    if !plain && failed {
        style = theme::verdict_style(Verdict::Fail);
    }
    if which == app.emphasis {
        style = style.add_modifier(Modifier::BOLD);
    }
    Cell::from(Span::styled(text, style))
}

fn row(
    app: &App,
    op: &OpReport,
    first_div: bool,
    selected: bool,
    cols: &[(Col, u16)],
    name_w: u16,
    indent: bool,
) -> Row<'static> {
    let check = check_of(op, app.emphasis);
    let metric = |f: &dyn Fn(&Check) -> String| check.map_or_else(|| "-".to_string(), f);
    let cells: Vec<Cell> = cols
        .iter()
        .map(|(c, w)| match c {
            Col::Mark => Cell::from(if first_div { "◆" } else { " " }),
            Col::Index => Cell::from(Line::from(op.index.to_string()).right_aligned()),
            Col::Name => Cell::from(name_cell(op, name_w, indent, first_div)),
            Col::Verdict => {
                let s = if first_div {
                    Style::new().add_modifier(Modifier::BOLD)
                } else {
                    theme::verdict_style(op.verdict)
                };
                Cell::from(Span::styled(theme::badge(op.verdict), s))
            }
            Col::Kind => Cell::from(fmt::fit(&op.kind, usize::from(*w))),
            Col::Shape => Cell::from(fmt::fit(
                &fmt::shape_padded(&op.shape, &op.padded_shape),
                usize::from(*w),
            )),
            Col::Dtype => Cell::from(op.dtype.clone()),
            Col::Layout => Cell::from(op.layout.clone()),
            Col::Memory => Cell::from(fmt::fit(&op.memory, usize::from(*w))),
            Col::Chained => pcc_cell(app, op, Emphasis::Chained, first_div),
            Col::Local => pcc_cell(app, op, Emphasis::Local, first_div),
            Col::MaxAbs => {
                Cell::from(Line::from(metric(&|c| fmt::num(c.metrics.max_abs))).right_aligned())
            }
            Col::RelL2 => {
                Cell::from(Line::from(metric(&|c| fmt::num(c.metrics.rel_l2))).right_aligned())
            }
            Col::Ulp => {
                Cell::from(Line::from(metric(&|c| fmt::ulp(c.metrics.ulp_max))).right_aligned())
            }
            Col::Time => Cell::from(Line::from(fmt::micros(op.duration_us)).right_aligned()),
        })
        .collect();
    let mut style = if first_div {
        theme::first_divergence()
    } else {
        theme::row(op.verdict)
    };
    if selected {
        style = style.patch(theme::selected());
    }
    Row::new(cells).style(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_tables_keep_the_essentials() {
        let cols: Vec<Col> = columns(80, 12, NAME_MIN).into_iter().map(|c| c.0).collect();
        for c in [Col::Mark, Col::Index, Col::Name, Col::Verdict, Col::Chained] {
            assert!(cols.contains(&c), "{c:?} dropped at 80 columns");
        }
        assert!(!cols.contains(&Col::Memory));
        let wide: Vec<Col> = columns(220, 12, NAME_MIN)
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(wide.len(), COLS.len());
    }

    #[test]
    fn offset_follows_the_cursor() {
        assert_eq!(visible_offset(0, 5, 10, 100), 0);
        assert_eq!(visible_offset(0, 15, 10, 100), 6);
        assert_eq!(visible_offset(20, 5, 10, 100), 5);
        assert_eq!(visible_offset(95, 99, 10, 100), 90);
        assert_eq!(visible_offset(0, 0, 10, 3), 0);
    }
}
