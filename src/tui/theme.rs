//! Every colour and style of the screen, in one place.

use ratatui::style::{Color, Modifier, Style};

use crate::harness::record::Verdict;

pub const PASS: Color = Color::Green;
pub const FAIL: Color = Color::Red;
pub const ERROR: Color = Color::Magenta;
pub const UNCHECKED: Color = Color::Yellow;
pub const UNSUPPORTED: Color = Color::Cyan;
pub const PENDING: Color = Color::DarkGray;
pub const CHAINED: Color = Color::Cyan;
pub const LOCAL: Color = Color::LightMagenta;
pub const GATE: Color = Color::Yellow;

pub fn verdict_color(v: Verdict) -> Color {
    match v {
        Verdict::Pass => PASS,
        Verdict::Fail => FAIL,
        Verdict::Error => ERROR,
        Verdict::Unchecked => UNCHECKED,
        Verdict::Unsupported => UNSUPPORTED,
    }
}

/// A verdict badge: fixed width, upper case for the bad ones.
pub fn badge(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "FAIL",
        Verdict::Error => "ERR!",
        Verdict::Unchecked => "unck",
        Verdict::Unsupported => "host",
    }
}

pub fn verdict_style(v: Verdict) -> Style {
    let s = Style::new().fg(verdict_color(v));
    if v.is_bad() {
        s.add_modifier(Modifier::BOLD)
    } else {
        s
    }
}

/// An op row (not selected).
pub fn row(v: Verdict) -> Style {
    match v {
        Verdict::Pass => Style::new(),
        other => Style::new().fg(verdict_color(other)),
    }
}

/// The first diverging op's row.
pub fn first_divergence() -> Style {
    Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD)
}

/// The cursor row.
pub fn selected() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

pub fn title() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

pub fn header_row() -> Style {
    Style::new()
        .add_modifier(Modifier::BOLD)
        .add_modifier(Modifier::UNDERLINED)
}

pub fn key() -> Style {
    Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
}

pub fn border(focused: bool) -> Style {
    if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    }
}

pub fn message() -> Style {
    Style::new().fg(Color::Yellow)
}
