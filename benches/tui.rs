//! One frame of the TUI for a 20 000-op report, drawn into a 200×60 TestBackend (target: ≤ 10 ms
//! median), plus the state update of a filter keystroke on the same report.

#[path = "../tests/common/fixture.rs"]
mod fixture;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pccscope::tui::action::Action;
use pccscope::tui::draw::{draw, viewport};
use pccscope::tui::state::{App, Pane};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// The report with its biggest module (pi0) selected and the cursor in the middle of it.
fn app() -> App {
    let rec = fixture::record(&fixture::LARGE, true);
    let total: usize = rec.modules.iter().map(|m| m.ops.len()).sum();
    assert!(total >= 20_000, "{total} ops");
    let mut app = App::from_record(rec);
    app.apply(Action::Focus(Pane::Modules));
    app.apply(Action::End);
    app.apply(Action::Focus(Pane::Ops));
    app.apply(Action::End);
    let half = app.view.len() / 2;
    app.set_viewport(pccscope::tui::state::Viewport {
        module_rows: 11,
        op_rows: 1,
        detail_rows: 1,
    });
    for _ in 0..half {
        app.apply(Action::Up);
    }
    app
}

fn frames(c: &mut Criterion) {
    let mut app = app();
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let mut areas = Default::default();
    term.draw(|f| areas = draw(f, &app)).unwrap();
    app.set_viewport(viewport(&areas));
    assert!(app.module().unwrap().ops.len() > 18_000);

    c.bench_function("tui frame 20000 ops 200x60", |b| {
        b.iter(|| {
            term.draw(|f| {
                black_box(draw(f, &app));
            })
            .unwrap();
        })
    });

    let mut chart = app.clone();
    chart.apply(Action::ToggleChartScale);
    chart.apply(Action::Focus(Pane::Chart));
    c.bench_function("tui frame 20000 ops 200x60 chart focus log", |b| {
        b.iter(|| {
            term.draw(|f| {
                black_box(draw(f, &chart));
            })
            .unwrap();
        })
    });

    let mut sorted = app.clone();
    sorted.apply(Action::ToggleSort);
    c.bench_function("tui frame 20000 ops 200x60 sorted by PCC", |b| {
        b.iter(|| {
            term.draw(|f| {
                black_box(draw(f, &sorted));
            })
            .unwrap();
        })
    });

    // A filter keystroke: refilter ~19 000 ops, then draw.
    c.bench_function("tui filter keystroke + frame 20000 ops", |b| {
        let mut a = app.clone();
        a.apply(Action::StartFilter);
        b.iter(|| {
            a.apply(Action::FilterChar('m'));
            a.apply(Action::FilterBackspace);
            term.draw(|f| {
                black_box(draw(f, &a));
            })
            .unwrap();
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = frames
}
criterion_main!(benches);
