//! Actions: what keys and the mouse mean. Terminal events become [`Action`]s here; the state
//! applies them ([`App::apply`](crate::tui::state::App::apply)); drawing never sees a key.

use ratatui::crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent,
    MouseEventKind,
};
use ratatui::layout::{Position, Rect};

use crate::tui::state::{App, Pane};

/// A user intent (from a key, the mouse or a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    /// Chart layer cursor.
    Left,
    Right,
    NextPane,
    PrevPane,
    Focus(Pane),
    Enter,
    /// Esc: close the innermost thing open (help, filter, zoom), else quit.
    Back,
    Quit,
    FirstDivergence,
    NextFailing,
    PrevFailing,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    FilterAccept,
    FilterCancel,
    ToggleSort,
    ToggleEmphasis,
    ToggleChartScale,
    ToggleHelp,
    /// Mouse wheel over a pane (positive: down).
    Scroll(Pane, i32),
    /// Click on a visible row of a pane (row 0 = first visible row).
    Click(Pane, usize),
}

/// Where each pane was drawn (for the mouse); `None` when hidden.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Areas {
    /// Rows of the module list (inside the border).
    pub modules: Option<Rect>,
    /// Data rows of the op table (below its header).
    pub ops: Option<Rect>,
    pub detail: Option<Rect>,
    pub chart: Option<Rect>,
}

/// The action a key means in the current state, if any.
pub fn from_key(key: KeyEvent, app: &App) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('q')) {
        return Some(Action::Quit);
    }
    if app.filter_editing {
        return match key.code {
            KeyCode::Esc => Some(Action::FilterCancel),
            KeyCode::Enter | KeyCode::Down | KeyCode::Tab => Some(Action::FilterAccept),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(c) if !ctrl => Some(Action::FilterChar(c)),
            _ => None,
        };
    }
    if app.help {
        return match key.code {
            KeyCode::Char('q') => Some(Action::Quit),
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => Some(Action::ToggleHelp),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc => Action::Back,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown | KeyCode::Char(' ') => Action::PageDown,
        KeyCode::Char('u') if ctrl => Action::PageUp,
        KeyCode::Char('d') if ctrl => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Left | KeyCode::Char('h') => Action::Left,
        KeyCode::Right | KeyCode::Char('l') => Action::Right,
        KeyCode::Tab => Action::NextPane,
        KeyCode::BackTab => Action::PrevPane,
        KeyCode::Enter => Action::Enter,
        KeyCode::Char('f') => Action::FirstDivergence,
        KeyCode::Char('n') => Action::NextFailing,
        KeyCode::Char('N') => Action::PrevFailing,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('s') => Action::ToggleSort,
        KeyCode::Char('m') => Action::ToggleEmphasis,
        KeyCode::Char('c') => Action::ToggleChartScale,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('1') => Action::Focus(Pane::Modules),
        KeyCode::Char('2') => Action::Focus(Pane::Ops),
        KeyCode::Char('3') => Action::Focus(Pane::Detail),
        KeyCode::Char('4') => Action::Focus(Pane::Chart),
        _ => return None,
    })
}

/// The action a mouse event means, given where the panes were drawn.
pub fn from_mouse(m: MouseEvent, areas: &Areas) -> Option<Action> {
    let at = Position::new(m.column, m.row);
    let hit = [
        (Pane::Modules, areas.modules),
        (Pane::Ops, areas.ops),
        (Pane::Detail, areas.detail),
        (Pane::Chart, areas.chart),
    ]
    .into_iter()
    .find_map(|(p, r)| r.filter(|r| r.contains(at)).map(|r| (p, r)))?;
    let (pane, rect) = hit;
    match m.kind {
        MouseEventKind::ScrollDown => Some(Action::Scroll(pane, 3)),
        MouseEventKind::ScrollUp => Some(Action::Scroll(pane, -3)),
        MouseEventKind::Down(MouseButton::Left) => {
            Some(Action::Click(pane, usize::from(m.row - rect.y)))
        }
        _ => None,
    }
}

/// The action a terminal event means (keys and mouse; resizes are handled by the loop).
pub fn from_event(ev: &TermEvent, app: &App, areas: &Areas) -> Option<Action> {
    match ev {
        TermEvent::Key(k) => from_key(*k, app),
        TermEvent::Mouse(m) if !app.help && !app.filter_editing => from_mouse(*m, areas),
        _ => None,
    }
}
