//! A one-line progress display on stderr (only when stderr is a terminal).

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use crate::harness::{Event, EventSink};

struct State {
    module: String,
    index: usize,
    total: usize,
    expected: usize,
    done: usize,
    failed: usize,
    last_draw: Instant,
}

pub struct Progress {
    state: Mutex<State>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            state: Mutex::new(State {
                module: String::new(),
                index: 0,
                total: 0,
                expected: 0,
                done: 0,
                failed: 0,
                last_draw: Instant::now(),
            }),
        }
    }

    fn draw(st: &State) {
        let width = 24usize;
        let frac = if st.expected == 0 {
            0.0
        } else {
            (st.done as f64 / st.expected as f64).min(1.0)
        };
        let filled = (frac * width as f64).round() as usize;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{}/{}] {:<15} [{bar}] {:>5}/{:<5} ops  {} failing",
            st.index + 1,
            st.total,
            st.module,
            st.done,
            st.expected,
            st.failed
        );
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn finish(&self) {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

impl EventSink for Progress {
    fn event(&self, event: &Event) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match event {
            Event::ModuleStarted {
                index,
                total,
                id,
                expected_ops,
            } => {
                st.module = id.clone();
                st.index = *index;
                st.total = *total;
                st.expected = *expected_ops;
                st.done = 0;
                Self::draw(&st);
            }
            Event::Op { op, .. } => {
                st.done += 1;
                if op.verdict.is_bad() {
                    st.failed += 1;
                }
                if st.last_draw.elapsed().as_millis() >= 50 {
                    st.last_draw = Instant::now();
                    Self::draw(&st);
                }
            }
            _ => {}
        }
    }
}
