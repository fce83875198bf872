//! Interactive terminal UI for live and saved runs: the module list, the op table with the
//! first diverging op highlighted, the op detail and the per-layer PCC chart.
//!
//! Kept apart as state ([`state`]: no terminal, no ratatui), actions ([`action`]: keys and
//! mouse become [`Action`]s) and drawing ([`draw`]: reads the state). It reads run records and
//! events and computes no metric.

pub mod action;
pub mod draw;
pub mod state;
mod term;
mod theme;

use std::io;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use ratatui::crossterm::event;

pub use action::{Action, Areas};
pub use state::{App, Pane};

use crate::harness::{Event, EventSink, RunRecord};

/// What the live worker sends to the screen.
enum Feed {
    Event(Event),
    Note(String),
}

/// Forwards harness events to the UI thread.
struct ChannelSink {
    tx: Sender<Feed>,
}

impl EventSink for ChannelSink {
    fn event(&self, event: &Event) {
        // A closed screen just stops listening; the run goes on.
        let _ = self.tx.send(Feed::Event(event.clone()));
    }
}

/// Shows a saved run until the user quits.
pub fn run_saved(record: RunRecord) -> io::Result<()> {
    let mut app = App::from_record(record);
    let mut term = term::Term::enter()?;
    event_loop(&mut term, &mut app, None)
}

/// Runs `work` on a worker thread and shows its events live until the user quits. `work` gets
/// the event sink and a function that puts a note in the header (e.g. where the report went).
/// When the user quits before the run ends, the terminal is restored and the run is waited for.
pub fn run_live<T, W>(has_local: bool, work: W) -> io::Result<T>
where
    T: Send,
    W: FnOnce(&dyn EventSink, &dyn Fn(String)) -> T + Send,
{
    let (tx, rx) = mpsc::channel::<Feed>();
    std::thread::scope(|s| {
        let worker = s.spawn(move || {
            let note_tx = tx.clone();
            let note = move |n: String| {
                let _ = note_tx.send(Feed::Note(n));
            };
            let sink = ChannelSink { tx };
            work(&sink, &note)
        });
        let mut app = App::live(has_local);
        let ui =
            term::Term::enter().and_then(|mut term| event_loop(&mut term, &mut app, Some(&rx)));
        if !worker.is_finished() {
            eprintln!("pccscope: the run goes on; waiting for it to finish (Ctrl-C aborts)…");
        }
        drop(rx);
        let out = match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        ui.map(|()| out)
    })
}

fn event_loop(
    term: &mut term::Term,
    app: &mut App,
    feed: Option<&Receiver<Feed>>,
) -> io::Result<()> {
    let start = Instant::now();
    let mut areas = Areas::default();
    let mut redraw = true;
    let mut gone = false;
    let mut last_draw = Instant::now();
    loop {
        if let Some(rx) = feed {
            let mut got = false;
            loop {
                match rx.try_recv() {
                    Ok(Feed::Event(e)) => {
                        app.on_event(e);
                        got = true;
                    }
                    Ok(Feed::Note(n)) => {
                        app.on_note(n);
                        got = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        if !gone {
                            gone = true;
                            app.on_worker_gone();
                            // A panicking worker may have printed over the screen.
                            term.terminal.clear()?;
                            got = true;
                        }
                        break;
                    }
                }
            }
            if got {
                app.refresh();
                redraw = true;
            }
            app.set_elapsed(start.elapsed());
        }
        let live = app.is_live_running();
        if redraw || (live && last_draw.elapsed() >= Duration::from_millis(200)) {
            term.terminal.draw(|f| areas = draw::draw(f, app))?;
            app.set_viewport(draw::viewport(&areas));
            redraw = false;
            last_draw = Instant::now();
        }
        if app.quit {
            return Ok(());
        }
        let wait = if live { 30 } else { 500 };
        if event::poll(Duration::from_millis(wait))? {
            loop {
                let ev = event::read()?;
                if let Some(a) = action::from_event(&ev, app, &areas) {
                    app.apply(a);
                }
                redraw = true;
                if app.quit || !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
    }
}
