//! The terminal UI without a terminal: state driven by events and keys, whole screens drawn
//! into ratatui's TestBackend and snapshot-tested (volatile fields redacted).

mod common;

use common::fixture::{self, ERROR_OP, FIRST_DIVERGENCE, LARGE, SMALL};
use pccscope::harness::record::{RunRecord, Verdict};
use pccscope::harness::Event;
use pccscope::tui::action::from_key;
use pccscope::tui::draw::{draw, viewport};
use pccscope::tui::state::{App, ChartScale, Emphasis, ModuleStatus, Pane, SortOrder};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

fn record() -> RunRecord {
    fixture::record(&SMALL, true)
}

/// Draws one frame (and feeds the pane sizes back, as the event loop does).
fn frame(app: &mut App, w: u16, h: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut areas = Default::default();
    term.draw(|f| areas = draw(f, app)).unwrap();
    app.set_viewport(viewport(&areas));
    // Second frame with the real page sizes, like the live loop after its first draw.
    term.draw(|f| areas = draw(f, app)).unwrap();
    term.backend().buffer().clone()
}

/// The screen as text, each row prefixed by a gutter: `R` when it has a red-background run
/// (the first-divergence highlight), `>` when it has reversed cells (the cursor), so the
/// snapshots show what is highlighted.
fn screen(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut red = 0;
        let mut rev = false;
        let mut line = String::new();
        for x in 0..area.width {
            let c = &buf[(x, y)];
            red += usize::from(c.bg == Color::Red);
            rev |= c.modifier.contains(Modifier::REVERSED);
            line.push_str(c.symbol());
        }
        // A row highlight, not a chart's red block.
        let red = red >= 16;
        let gutter = match (red, rev) {
            (true, true) => "R>",
            (true, false) => "R ",
            (false, true) => " >",
            _ => "  ",
        };
        out.push_str(gutter);
        out.push('|');
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn text(buf: &Buffer) -> String {
    screen(buf)
}

macro_rules! snap {
    ($name:expr, $screen:expr) => {
        insta::with_settings!({
            filters => vec![
                (r"elapsed \S+", "elapsed [elapsed]"),
                (r"run \d{8}-\d{6}-\S+", "run [run-id]"),
                (r"\b\d+(\.\d+)?(µs|ms)", "[t]"),
                (r"\b\d+\.\d\ds\b", "[s]"),
            ],
            omit_expression => true,
        }, {
            insta::assert_snapshot!($name, $screen);
        });
    };
}

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

/// Feeds keys through the real key map.
fn press(app: &mut App, keys: &[KeyCode]) {
    for &k in keys {
        if let Some(a) = from_key(key(k), app) {
            app.apply(a);
        }
    }
}

fn selected_name(app: &App) -> String {
    app.selected_op()
        .map(|o| o.name.clone())
        .unwrap_or_default()
}

fn row_of<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(needle))
}

// ----- state -----

#[test]
fn a_saved_run_opens_on_its_first_divergence() {
    let app = App::from_record(record());
    assert!(app.has_local);
    assert_eq!(app.module().unwrap().id, "vlm");
    assert_eq!(selected_name(&app), FIRST_DIVERGENCE);
    let f = app.first_divergence.expect("first divergence");
    assert_eq!(app.modules[f.module].ops[f.op].name, FIRST_DIVERGENCE);
    assert_eq!(app.emphasis, Emphasis::Local);
    // Every module keeps its own first divergence: the expert's is the op that raised.
    let expert = app.modules.iter().find(|m| m.id == "expert").unwrap();
    assert_eq!(expert.ops[expert.first_divergence.unwrap()].name, ERROR_OP);
    assert_eq!(expert.verdict(), Some(Verdict::Error));
}

#[test]
fn live_events_fold_into_the_same_state_as_the_record() {
    let rec = record();
    let mut app = App::live(true);
    assert!(app.is_live_running());
    app.on_event(Event::RunStarted {
        info: rec.run.clone(),
        modules: rec.modules.iter().map(|m| m.id.clone()).collect(),
    });
    assert_eq!(app.modules.len(), 11);
    assert!(app
        .modules
        .iter()
        .all(|m| m.status == ModuleStatus::Pending));
    let total = rec.modules.len();
    for (i, m) in rec.modules.iter().enumerate() {
        app.on_event(Event::ModuleStarted {
            index: i,
            total,
            id: m.id.clone(),
            expected_ops: m.ops.len(),
        });
        // The screen follows the running module.
        assert_eq!(app.module().unwrap().id, m.id);
        assert_eq!(app.modules[i].status, ModuleStatus::Running);
        for (k, op) in m.ops.iter().enumerate() {
            app.on_event(Event::Op {
                module: m.id.clone(),
                op: Box::new(op.clone()),
            });
            if k % 7 == 0 {
                app.refresh();
                // ... and its newest op.
                assert_eq!(selected_name(&app), op.name);
            }
            if op.name == FIRST_DIVERGENCE {
                let f = app.first_divergence.expect("seen as soon as it arrives");
                assert_eq!(app.modules[f.module].ops[f.op].name, FIRST_DIVERGENCE);
            }
        }
        app.refresh();
        assert_eq!(app.modules[i].ops.len(), m.ops.len());
        app.on_event(Event::ModuleFinished {
            index: i,
            total,
            report: Box::new(m.clone()),
        });
        assert_eq!(app.modules[i].status, ModuleStatus::Done);
        assert_eq!(app.modules[i].verdict(), Some(m.verdict));
    }
    assert!(app.summary.is_none());
    app.on_event(Event::RunFinished {
        record: Box::new(rec.clone()),
    });
    assert!(!app.is_live_running());
    assert_eq!(app.summary.as_ref().unwrap().verdict, rec.summary.verdict);
    // Untouched, the screen lands on the first divergence when the run ends.
    assert_eq!(app.module().unwrap().id, "vlm");
    assert_eq!(selected_name(&app), FIRST_DIVERGENCE);

    let saved = App::from_record(rec);
    for (a, b) in app.modules.iter().zip(&saved.modules) {
        assert_eq!(a.ops, b.ops);
        assert_eq!(a.first_divergence, b.first_divergence);
        assert_eq!(a.layers, b.layers);
        assert_eq!(a.failing, b.failing);
    }
}

#[test]
fn moving_stops_following_a_live_run() {
    let rec = record();
    let mut app = App::live(true);
    app.on_event(Event::RunStarted {
        info: rec.run.clone(),
        modules: rec.modules.iter().map(|m| m.id.clone()).collect(),
    });
    let siglip = &rec.modules[0];
    app.on_event(Event::ModuleStarted {
        index: 0,
        total: 11,
        id: "siglip".into(),
        expected_ops: siglip.ops.len(),
    });
    for op in &siglip.ops[..10] {
        app.on_event(Event::Op {
            module: "siglip".into(),
            op: Box::new(op.clone()),
        });
    }
    app.refresh();
    press(&mut app, &[KeyCode::Up, KeyCode::Up]);
    assert_eq!(selected_name(&app), siglip.ops[7].name);
    for op in &siglip.ops[10..20] {
        app.on_event(Event::Op {
            module: "siglip".into(),
            op: Box::new(op.clone()),
        });
    }
    app.refresh();
    assert_eq!(
        selected_name(&app),
        siglip.ops[7].name,
        "the cursor stays put"
    );
    assert_eq!(app.view.len(), 20);
    press(&mut app, &[KeyCode::End]);
    assert!(app.follow, "End follows again");
}

#[test]
fn f_selects_the_first_diverging_op_from_anywhere() {
    let mut app = App::from_record(record());
    // Go somewhere else: the module list, its top (siglip), down to some op.
    press(
        &mut app,
        &[KeyCode::Char('1'), KeyCode::Home, KeyCode::Enter],
    );
    press(&mut app, &[KeyCode::PageDown, KeyCode::Char('j')]);
    assert_eq!(app.module().unwrap().id, "siglip");
    assert_ne!(selected_name(&app), FIRST_DIVERGENCE);
    // And hide it behind a filter and a sort.
    press(
        &mut app,
        &[
            KeyCode::Char('/'),
            KeyCode::Char('a'),
            KeyCode::Char('t'),
            KeyCode::Enter,
        ],
    );
    press(&mut app, &[KeyCode::Char('s')]);
    press(&mut app, &[KeyCode::Char('f')]);
    assert_eq!(app.module().unwrap().id, "vlm");
    assert_eq!(selected_name(&app), FIRST_DIVERGENCE);
    assert_eq!(app.focus, Pane::Ops);
    assert!(app.filter.is_empty(), "a filter hiding the op is cleared");

    // On screen: the cursor row is the first divergence and it is highlighted.
    let buf = frame(&mut app, 200, 60);
    let s = text(&buf);
    let row = row_of(&s, "◀ first divergence").expect("first divergence row drawn");
    assert!(row.contains(FIRST_DIVERGENCE), "{row}");
    assert!(
        row.starts_with("R>"),
        "highlighted and under the cursor: {row}"
    );
}

#[test]
fn n_and_shift_n_walk_the_failing_ops() {
    let mut app = App::from_record(record());
    let vlm = app.module().unwrap();
    let failing: Vec<String> = vlm
        .ops
        .iter()
        .filter(|o| o.verdict.is_bad())
        .map(|o| o.name.clone())
        .collect();
    assert!(
        failing.len() > 3,
        "the fixture drifts into chained failures"
    );
    assert_eq!(failing[0], FIRST_DIVERGENCE);
    press(&mut app, &[KeyCode::Char('n')]);
    assert_eq!(selected_name(&app), failing[1]);
    press(&mut app, &[KeyCode::Char('n')]);
    assert_eq!(selected_name(&app), failing[2]);
    press(&mut app, &[KeyCode::Char('N'), KeyCode::Char('N')]);
    assert_eq!(selected_name(&app), failing[0]);
    press(&mut app, &[KeyCode::Char('N')]);
    assert_eq!(
        selected_name(&app),
        *failing.last().unwrap(),
        "wraps around"
    );
    assert_eq!(app.message.as_deref(), Some("wrapped around"));
    // A passing module says so.
    press(
        &mut app,
        &[KeyCode::Char('1'), KeyCode::Home, KeyCode::Char('n')],
    );
    assert_eq!(app.message.as_deref(), Some("no failing op in siglip"));
}

#[test]
fn filter_sort_and_emphasis() {
    let mut app = App::from_record(record());
    press(&mut app, &[KeyCode::Char('/')]);
    assert!(app.filter_editing);
    for c in "mlp.up".chars() {
        press(&mut app, &[KeyCode::Char(c)]);
    }
    assert_eq!(app.filter, "mlp.up");
    assert_eq!(app.view.len(), 4, "one mlp.up per vlm layer");
    // While typing, q is text, not quit.
    press(
        &mut app,
        &[KeyCode::Char('q'), KeyCode::Backspace, KeyCode::Enter],
    );
    assert!(!app.quit && !app.filter_editing);
    assert!(app
        .view
        .iter()
        .all(|&p| app.module().unwrap().ops[p].name.contains("mlp.up")));
    press(&mut app, &[KeyCode::Char('/'), KeyCode::Esc]);
    assert!(app.filter.is_empty());
    assert_eq!(app.view.len(), app.module().unwrap().ops.len());

    // Sort by the emphasised (local) PCC: the first divergence has the lowest.
    press(&mut app, &[KeyCode::Char('s'), KeyCode::Home]);
    assert_eq!(app.sort, SortOrder::Pcc);
    assert_eq!(selected_name(&app), FIRST_DIVERGENCE);
    // By chained PCC, the most drifted op comes first instead.
    press(&mut app, &[KeyCode::Char('m'), KeyCode::Home]);
    assert_eq!(app.emphasis, Emphasis::Chained);
    let m = app.module().unwrap();
    let lowest = m
        .ops
        .iter()
        .filter_map(|o| o.chained_pcc().map(|p| (p, o.name.clone())))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert_eq!(selected_name(&app), lowest.1);
    press(&mut app, &[KeyCode::Char('s')]);
    assert_eq!(app.sort, SortOrder::Execution);
    assert_eq!(selected_name(&app), lowest.1, "the cursor keeps its op");
}

#[test]
fn panes_zoom_help_and_quit() {
    let mut app = App::from_record(record());
    assert_eq!(app.focus, Pane::Ops);
    press(&mut app, &[KeyCode::Tab]);
    assert_eq!(app.focus, Pane::Detail);
    press(&mut app, &[KeyCode::Tab, KeyCode::Tab]);
    assert_eq!(app.focus, Pane::Modules);
    press(&mut app, &[KeyCode::BackTab]);
    assert_eq!(app.focus, Pane::Chart);
    press(&mut app, &[KeyCode::Char('2'), KeyCode::Enter]);
    assert!(app.zoomed);
    press(&mut app, &[KeyCode::Esc]);
    assert!(!app.zoomed && !app.quit);
    press(&mut app, &[KeyCode::Char('?')]);
    assert!(app.help);
    press(&mut app, &[KeyCode::Char('j')]);
    assert!(app.help, "help swallows other keys");
    press(&mut app, &[KeyCode::Esc]);
    assert!(!app.help && !app.quit);
    press(&mut app, &[KeyCode::Char('c')]);
    assert_eq!(app.chart_scale, ChartScale::OneMinusPccLog);
    press(&mut app, &[KeyCode::Esc]);
    assert!(app.quit, "Esc with nothing open quits");
    let mut app = App::from_record(record());
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    app.apply(from_key(ctrl_c, &app).unwrap());
    assert!(app.quit);
    let mut app = App::from_record(record());
    press(&mut app, &[KeyCode::Char('q')]);
    assert!(app.quit);
}

#[test]
fn chart_enter_jumps_to_the_layer() {
    let mut app = App::from_record(record());
    press(
        &mut app,
        &[
            KeyCode::Char('4'),
            KeyCode::Home,
            KeyCode::Right,
            KeyCode::Right,
        ],
    );
    press(&mut app, &[KeyCode::Enter]);
    assert_eq!(app.focus, Pane::Ops);
    assert_eq!(selected_name(&app), "vlm.layers.2.input_norm");
}

#[test]
fn a_run_without_divergence_says_so() {
    let mut app = App::from_record(fixture::record(&SMALL, false));
    assert!(app.first_divergence.is_none());
    press(&mut app, &[KeyCode::Char('f')]);
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .starts_with("no diverging op"));
}

// ----- screens -----

#[test]
fn screen_overview_of_a_passing_run() {
    let mut app = App::from_record(fixture::record(&SMALL, false));
    snap!("overview_pass_200x60", screen(&frame(&mut app, 200, 60)));
}

#[test]
fn screen_module_with_the_first_divergence() {
    let mut app = App::from_record(record());
    let s = screen(&frame(&mut app, 200, 60));
    let row = row_of(&s, "◀ first divergence").expect("first divergence on screen");
    assert!(row.starts_with("R>") && row.contains(FIRST_DIVERGENCE));
    snap!("failing_module_200x60", s);
}

#[test]
fn screen_failing_module_at_80x24() {
    let mut app = App::from_record(record());
    let s = screen(&frame(&mut app, 80, 24));
    let row = row_of(&s, FIRST_DIVERGENCE).expect("first divergence on an 80×24 screen");
    assert!(row.starts_with("R>"), "{row}");
    snap!("failing_module_80x24", s);
}

#[test]
fn screen_detail_pane_zoomed() {
    let mut app = App::from_record(record());
    press(&mut app, &[KeyCode::Enter]);
    assert!(app.zoomed);
    let s = screen(&frame(&mut app, 120, 40));
    assert!(s.contains("FIRST DIVERGENCE"));
    assert!(s.contains("worst elements (local)"));
    assert!(s.contains("math_fidelity"));
    snap!("detail_first_divergence_120x40", s);
}

#[test]
fn screen_detail_of_an_op_that_raised() {
    let mut app = App::from_record(record());
    press(&mut app, &[KeyCode::Char('1')]);
    while app.module().unwrap().id != "expert" {
        press(&mut app, &[KeyCode::Down]);
    }
    press(&mut app, &[KeyCode::Enter, KeyCode::End]);
    assert_eq!(selected_name(&app), ERROR_OP);
    press(&mut app, &[KeyCode::Enter]);
    let s = screen(&frame(&mut app, 100, 30));
    assert!(s.contains("k has 60 tokens"), "{s}");
    snap!("detail_error_100x30", s);
}

#[test]
fn screen_help() {
    let mut app = App::from_record(record());
    press(&mut app, &[KeyCode::Char('?')]);
    snap!("help_100x30", screen(&frame(&mut app, 100, 30)));
}

#[test]
fn screen_chart_log_scale() {
    let mut app = App::from_record(record());
    press(&mut app, &[KeyCode::Char('c'), KeyCode::Char('4')]);
    let s = screen(&frame(&mut app, 200, 60));
    assert!(s.contains("1−PCC (log) per layer · vlm"));
    snap!("chart_log_200x60", s);
}

#[test]
fn screen_live_run_in_progress() {
    let rec = record();
    let mut app = App::live(true);
    app.on_event(Event::RunStarted {
        info: rec.run.clone(),
        modules: rec.modules.iter().map(|m| m.id.clone()).collect(),
    });
    for (i, m) in rec.modules.iter().take(5).enumerate() {
        app.on_event(Event::ModuleStarted {
            index: i,
            total: 11,
            id: m.id.clone(),
            expected_ops: m.ops.len(),
        });
        let n = if i == 4 { 50 } else { m.ops.len() };
        for op in &m.ops[..n] {
            app.on_event(Event::Op {
                module: m.id.clone(),
                op: Box::new(op.clone()),
            });
        }
        if i < 4 {
            app.on_event(Event::ModuleFinished {
                index: i,
                total: 11,
                report: Box::new(m.clone()),
            });
        }
    }
    app.refresh();
    app.set_elapsed(std::time::Duration::from_millis(1234));
    let s = screen(&frame(&mut app, 160, 40));
    assert!(s.contains("running [5/11] vlm"), "{s}");
    assert!(s.contains("50/65 ops"), "{s}");
    assert!(
        s.contains("first divergence so far: vlm.layers.2.mlp.up"),
        "{s}"
    );
    snap!("live_160x40", s);
}

#[test]
fn small_and_odd_sizes_never_panic() {
    let mut states: Vec<App> = Vec::new();
    states.push(App::from_record(record()));
    let mut a = App::from_record(record());
    press(&mut a, &[KeyCode::Enter]);
    states.push(a);
    let mut a = App::from_record(record());
    press(&mut a, &[KeyCode::Char('?')]);
    states.push(a);
    let mut a = App::from_record(record());
    press(&mut a, &[KeyCode::Char('c'), KeyCode::Char('4')]);
    states.push(a);
    let mut a = App::from_record(record());
    press(&mut a, &[KeyCode::Char('3')]);
    states.push(a);
    let mut a = App::from_record(record());
    press(
        &mut a,
        &[KeyCode::Char('/'), KeyCode::Char('z'), KeyCode::Char('z')],
    );
    states.push(a);
    states.push(App::live(false));
    for app in &mut states {
        for w in [
            0u16, 1, 2, 5, 10, 19, 20, 21, 33, 50, 79, 80, 81, 119, 120, 121, 200,
        ] {
            for h in [0u16, 1, 2, 3, 5, 6, 7, 10, 13, 14, 16, 23, 24, 25, 31, 45] {
                let _ = frame(app, w, h);
            }
        }
    }
}

#[test]
fn a_20000_op_report_draws_only_what_is_visible() {
    let rec = fixture::record(&LARGE, true);
    let total: usize = rec.modules.iter().map(|m| m.ops.len()).sum();
    assert!(total >= 20_000, "{total}");
    let mut app = App::from_record(rec);
    press(
        &mut app,
        &[
            KeyCode::Char('1'),
            KeyCode::End,
            KeyCode::Enter,
            KeyCode::End,
        ],
    );
    assert_eq!(app.module().unwrap().id, "pi0");
    let s = screen(&frame(&mut app, 200, 60));
    let last = app.selected_op().unwrap().name.clone();
    assert!(
        row_of(&s, &last).is_some_and(|r| r.starts_with(" >")),
        "{s}"
    );
}
