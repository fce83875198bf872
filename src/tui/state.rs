//! The screen's state: what the run record and the event stream say, plus where the user is.
//! No terminal and no ratatui here: actions come in, state changes, drawing only reads it.
//! Nothing numeric is computed: values are read from the records; the per-layer series keeps,
//! for each `layers.{i}` block, the lowest PCC among its ops.

use std::time::Duration;

use crate::harness::record::{ModuleReport, OpReport, RunInfo, RunRecord, Summary, Verdict};
use crate::harness::Event;
use crate::tui::action::Action;

/// A pane of the screen; Tab cycles through them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Modules,
    Ops,
    Detail,
    Chart,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Modules, Pane::Ops, Pane::Detail, Pane::Chart];

    fn next(self) -> Pane {
        let i = Pane::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Pane::ALL[(i + 1) % Pane::ALL.len()]
    }
    fn prev(self) -> Pane {
        let i = Pane::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Pane::ALL[(i + Pane::ALL.len() - 1) % Pane::ALL.len()]
    }
}

/// Which check the metric columns, the sort and the chart put first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emphasis {
    Chained,
    Local,
}

impl Emphasis {
    pub fn as_str(self) -> &'static str {
        match self {
            Emphasis::Chained => "chained",
            Emphasis::Local => "local",
        }
    }
}

/// Row order of the op table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Execution order.
    Execution,
    /// Lowest PCC of the emphasised check first; ops without one last.
    Pcc,
}

/// Y axis of the per-layer chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartScale {
    Pcc,
    /// 1 − PCC on a log axis.
    OneMinusPccLog,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleStatus {
    Pending,
    Running,
    Done,
}

/// One `layers.{i}` block of a module in execution order.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPoint {
    /// Name prefix up to and including `layers.{i}`, e.g. `denoise.3.expert.layers.7`.
    pub block: String,
    pub layer: usize,
    /// Lowest chained / local PCC among the block's ops.
    pub chained: Option<f64>,
    pub local: Option<f64>,
    /// Some op of the block failed or raised.
    pub bad: bool,
    /// Position (in the module's ops) of the block's first op.
    pub first_op: usize,
}

/// A module as the screen knows it: pending, running (ops so far) or done (its report).
#[derive(Debug, Clone)]
pub struct ModuleState {
    pub id: String,
    pub status: ModuleStatus,
    /// Golden op count (progress of a running module).
    pub expected_ops: usize,
    pub ops: Vec<OpReport>,
    /// The module's report once it finished (its `ops` moved into [`ModuleState::ops`]).
    pub report: Option<ModuleReport>,
    /// Failing or raising ops.
    pub failing: usize,
    /// Position of the module's first diverging op.
    pub first_divergence: Option<usize>,
    pub layers: Vec<LayerPoint>,
    /// Op position the cursor was on when the user left the module.
    remembered: Option<usize>,
}

impl ModuleState {
    fn pending(id: String) -> ModuleState {
        ModuleState {
            id,
            status: ModuleStatus::Pending,
            expected_ops: 0,
            ops: Vec::new(),
            report: None,
            failing: 0,
            first_divergence: None,
            layers: Vec::new(),
            remembered: None,
        }
    }

    fn from_report(mut report: ModuleReport, has_local: bool) -> ModuleState {
        let ops = std::mem::take(&mut report.ops);
        let mut m = ModuleState::pending(report.id.clone());
        m.status = ModuleStatus::Done;
        m.expected_ops = ops.len();
        m.ops = ops;
        m.report = Some(report);
        m.reindex(has_local);
        m
    }

    /// Recomputes what is derived from the ops: failing count, first divergence, layers.
    fn reindex(&mut self, has_local: bool) {
        self.failing = self.ops.iter().filter(|o| o.verdict.is_bad()).count();
        self.first_divergence = self.ops.iter().position(|o| o.diverges(has_local));
        self.layers = layer_points(&self.ops);
    }

    /// Verdict once finished.
    pub fn verdict(&self) -> Option<Verdict> {
        self.report.as_ref().map(|r| r.verdict)
    }
}

/// Splits an op name at its `layers.{i}` component: (block prefix, i).
pub fn layer_of(name: &str) -> Option<(&str, usize)> {
    let mut start = 0;
    for part in name.split('.') {
        let end = start + part.len();
        if part == "layers" {
            let rest = &name[end..];
            let digits: &str = rest
                .strip_prefix('.')
                .map(|r| r.split('.').next().unwrap_or(""))
                .unwrap_or("");
            if let Ok(i) = digits.parse::<usize>() {
                return Some((&name[..end + 1 + digits.len()], i));
            }
        }
        start = end + 1;
    }
    None
}

/// Nesting depth of an op name for indentation: components after the first, counting
/// `layers.{i}` and `{stage}.{i}` pairs as one.
pub fn name_depth(name: &str) -> usize {
    let parts: Vec<&str> = name.split('.').collect();
    let numeric = parts
        .iter()
        .skip(1)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .count();
    parts.len().saturating_sub(2 + numeric)
}

fn min_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn layer_points(ops: &[OpReport]) -> Vec<LayerPoint> {
    let mut out: Vec<LayerPoint> = Vec::new();
    for (pos, op) in ops.iter().enumerate() {
        let Some((block, layer)) = layer_of(&op.name) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last.block == block => {
                last.chained = min_opt(last.chained, op.chained_pcc());
                last.local = min_opt(last.local, op.local_pcc());
                last.bad |= op.verdict.is_bad();
            }
            _ => out.push(LayerPoint {
                block: block.to_string(),
                layer,
                chained: op.chained_pcc(),
                local: op.local_pcc(),
                bad: op.verdict.is_bad(),
                first_op: pos,
            }),
        }
    }
    out
}

/// Where an op is: module position and op position within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpRef {
    pub module: usize,
    pub op: usize,
}

/// Progress of a live run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    /// The worker has delivered the whole record.
    pub finished: bool,
    /// The worker stopped without a record (it panicked).
    pub aborted: bool,
    /// Modules started so far / in the run.
    pub module_index: usize,
    pub module_total: usize,
    /// Notes from the worker (e.g. where the report was written).
    pub notes: Vec<String>,
}

/// Rows visible in each scrolling pane at the last draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewport {
    pub module_rows: usize,
    pub op_rows: usize,
    pub detail_rows: usize,
}

/// The whole screen state.
#[derive(Debug, Clone)]
pub struct App {
    pub info: Option<RunInfo>,
    pub summary: Option<Summary>,
    /// The run has local checks (a reference backend): the first-divergence rule uses them.
    pub has_local: bool,
    pub modules: Vec<ModuleState>,
    /// The run's first diverging op (from the summary once known, else the first seen live).
    pub first_divergence: Option<OpRef>,
    /// `Some` for a live run.
    pub live: Option<Live>,
    pub elapsed: Duration,
    pub focus: Pane,
    /// The detail pane fills the screen.
    pub zoomed: bool,
    pub help: bool,
    pub selected_module: usize,
    /// Op positions of the selected module, filtered and sorted.
    pub view: Vec<usize>,
    /// Index into `view`.
    pub cursor: usize,
    /// First visible row of the op table / module list; scroll of the detail pane.
    pub op_offset: usize,
    pub module_offset: usize,
    pub detail_scroll: usize,
    /// Index into the selected module's layers (chart cursor).
    pub layer_cursor: usize,
    pub emphasis: Emphasis,
    pub sort: SortOrder,
    pub chart_scale: ChartScale,
    pub filter: String,
    pub filter_editing: bool,
    /// One-line status message (cleared by the next action).
    pub message: Option<String>,
    pub quit: bool,
    /// A live run follows the running module and its newest op until the user moves.
    pub follow: bool,
    pub viewport: Viewport,
    /// A jump placed the cursor a third down the page; redo it once the page size is known.
    lead_pending: bool,
    /// Modules whose derived data must be rebuilt (live updates).
    dirty: Vec<bool>,
    view_dirty: bool,
}

impl App {
    fn empty(has_local: bool) -> App {
        App {
            info: None,
            summary: None,
            has_local,
            modules: Vec::new(),
            first_divergence: None,
            live: None,
            elapsed: Duration::ZERO,
            focus: Pane::Ops,
            zoomed: false,
            help: false,
            selected_module: 0,
            view: Vec::new(),
            cursor: 0,
            op_offset: 0,
            module_offset: 0,
            detail_scroll: 0,
            layer_cursor: 0,
            emphasis: if has_local {
                Emphasis::Local
            } else {
                Emphasis::Chained
            },
            sort: SortOrder::Execution,
            chart_scale: ChartScale::Pcc,
            filter: String::new(),
            filter_editing: false,
            message: None,
            quit: false,
            follow: false,
            viewport: Viewport {
                module_rows: 11,
                op_rows: 20,
                detail_rows: 10,
            },
            lead_pending: false,
            dirty: Vec::new(),
            view_dirty: true,
        }
    }

    /// A saved run. The first module with a failing op is selected, with its first divergence
    /// under the cursor.
    pub fn from_record(record: RunRecord) -> App {
        let has_local = record
            .modules
            .iter()
            .any(|m| m.ops.iter().any(|o| o.local.is_some()));
        let mut app = App::empty(has_local);
        app.elapsed = Duration::from_secs_f64(record.run.duration_s.max(0.0));
        app.info = Some(record.run);
        app.modules = record
            .modules
            .into_iter()
            .map(|m| ModuleState::from_report(m, has_local))
            .collect();
        app.dirty = vec![false; app.modules.len()];
        app.set_summary(record.summary);
        app.rebuild_view();
        if app.first_divergence.is_some() {
            app.jump_to_first_divergence();
        } else if let Some(m) = app.modules.iter().position(|m| m.failing > 0) {
            app.select_module(m);
        }
        app.message = None;
        app
    }

    /// A live run fed by [`App::on_event`]; `has_local` says whether a reference backend runs
    /// the local checks.
    pub fn live(has_local: bool) -> App {
        let mut app = App::empty(has_local);
        app.live = Some(Live::default());
        app.follow = true;
        app
    }

    fn set_summary(&mut self, summary: Summary) {
        self.first_divergence = summary.first_divergence.as_ref().and_then(|f| {
            let m = self.modules.iter().position(|m| m.id == f.module)?;
            let op = self.modules[m]
                .ops
                .iter()
                .position(|o| o.index == f.index && o.name == f.op)?;
            Some(OpRef { module: m, op })
        });
        self.summary = Some(summary);
    }

    fn module_pos(&mut self, id: &str) -> usize {
        if let Some(i) = self.modules.iter().position(|m| m.id == id) {
            return i;
        }
        self.modules.push(ModuleState::pending(id.to_string()));
        self.dirty.push(false);
        self.modules.len() - 1
    }

    /// Folds one event of a live run into the state.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::RunStarted { info, modules } => {
                self.info = Some(info);
                self.modules = modules.into_iter().map(ModuleState::pending).collect();
                self.dirty = vec![false; self.modules.len()];
                if let Some(l) = &mut self.live {
                    l.module_total = self.modules.len();
                }
                self.view_dirty = true;
            }
            Event::ModuleStarted {
                index,
                total,
                id,
                expected_ops,
            } => {
                let m = self.module_pos(&id);
                self.modules[m].status = ModuleStatus::Running;
                self.modules[m].expected_ops = expected_ops;
                if let Some(l) = &mut self.live {
                    l.module_index = index;
                    l.module_total = total;
                }
                if self.follow && m != self.selected_module {
                    self.select_module(m);
                }
            }
            Event::Op { module, op } => {
                let m = self.module_pos(&module);
                let st = &mut self.modules[m];
                let pos = st.ops.len();
                if op.verdict.is_bad() {
                    st.failing += 1;
                }
                if st.first_divergence.is_none() && op.diverges(self.has_local) {
                    st.first_divergence = Some(pos);
                    if self.first_divergence.is_none() {
                        self.first_divergence = Some(OpRef { module: m, op: pos });
                    }
                }
                st.ops.push(*op);
                self.dirty[m] = true;
                if m == self.selected_module {
                    self.view_dirty = true;
                }
            }
            Event::ModuleFinished { report, .. } => {
                let m = self.module_pos(&report.id);
                let remembered = self.modules[m].remembered;
                self.modules[m] = ModuleState::from_report(*report, self.has_local);
                self.modules[m].remembered = remembered;
                self.dirty[m] = false;
                if m == self.selected_module {
                    self.view_dirty = true;
                }
            }
            Event::RunFinished { record } => {
                let record = *record;
                self.elapsed = Duration::from_secs_f64(record.run.duration_s.max(0.0));
                self.info = Some(record.run);
                // The record's module reports are the ones already folded in; only add any
                // the stream did not deliver.
                for r in record.modules {
                    let known = self
                        .modules
                        .iter()
                        .any(|m| m.id == r.id && m.status == ModuleStatus::Done);
                    if !known {
                        let m = self.module_pos(&r.id);
                        self.modules[m] = ModuleState::from_report(r, self.has_local);
                    }
                }
                self.set_summary(record.summary);
                if let Some(l) = &mut self.live {
                    l.finished = true;
                }
                self.view_dirty = true;
                self.refresh();
                if self.follow && self.first_divergence.is_some() {
                    self.jump_to_first_divergence();
                }
            }
        }
    }

    /// The live worker stopped without delivering a record.
    pub fn on_worker_gone(&mut self) {
        if let Some(l) = &mut self.live {
            if !l.finished {
                l.aborted = true;
                self.message = Some("the run stopped without a result (worker panicked)".into());
            }
        }
    }

    /// A note from the live worker (e.g. the report path).
    pub fn on_note(&mut self, note: String) {
        if let Some(l) = &mut self.live {
            l.notes.push(note);
        }
    }

    /// Elapsed time of a live run (the event loop's clock).
    pub fn set_elapsed(&mut self, d: Duration) {
        if self
            .live
            .as_ref()
            .is_some_and(|l| !l.finished && !l.aborted)
        {
            self.elapsed = d;
        }
    }

    /// Rebuilds what live events made stale. Call after a batch of events.
    pub fn refresh(&mut self) {
        for (i, m) in self.modules.iter_mut().enumerate() {
            if self.dirty.get(i).copied().unwrap_or(false) {
                m.layers = layer_points(&m.ops);
                self.dirty[i] = false;
            }
        }
        if self.view_dirty {
            let current = self.selected_op_pos();
            self.rebuild_view();
            if self.follow && self.sort == SortOrder::Execution {
                self.cursor = self.view.len().saturating_sub(1);
            } else if let Some(p) = current {
                self.place_cursor_on(p);
            }
            self.keep_visible();
        }
    }

    /// Records the pane sizes of the last draw so paging and scrolling match the screen.
    pub fn set_viewport(&mut self, v: Viewport) {
        let changed = v != self.viewport;
        self.viewport = v;
        self.keep_visible();
        if changed && self.lead_pending {
            self.lead_cursor();
        }
    }

    // ----- queries used by drawing -----

    pub fn module(&self) -> Option<&ModuleState> {
        self.modules.get(self.selected_module)
    }

    /// Position (in the selected module's ops) of the op under the cursor.
    pub fn selected_op_pos(&self) -> Option<usize> {
        self.view.get(self.cursor).copied()
    }

    pub fn selected_op(&self) -> Option<&OpReport> {
        let m = self.module()?;
        m.ops.get(self.selected_op_pos()?)
    }

    /// Is this op (of the selected module) the run's first divergence?
    pub fn is_run_first_divergence(&self, pos: usize) -> bool {
        self.first_divergence
            == Some(OpRef {
                module: self.selected_module,
                op: pos,
            })
    }

    pub fn is_live_running(&self) -> bool {
        self.live
            .as_ref()
            .is_some_and(|l| !l.finished && !l.aborted)
    }

    /// The check PCC the sort and the chart emphasise.
    pub fn emphasised_pcc(&self, op: &OpReport) -> Option<f64> {
        match self.emphasis {
            Emphasis::Chained => op.chained_pcc(),
            Emphasis::Local => op.local_pcc(),
        }
    }

    // ----- view maintenance -----

    fn rebuild_view(&mut self) {
        self.view_dirty = false;
        let Some(m) = self.modules.get(self.selected_module) else {
            self.view.clear();
            self.cursor = 0;
            return;
        };
        let needle = self.filter.to_lowercase();
        let mut view: Vec<usize> = if needle.is_empty() {
            (0..m.ops.len()).collect()
        } else {
            m.ops
                .iter()
                .enumerate()
                .filter(|(_, o)| o.name.to_lowercase().contains(&needle))
                .map(|(i, _)| i)
                .collect()
        };
        if self.sort == SortOrder::Pcc {
            let key = |i: &usize| self.emphasised_pcc(&m.ops[*i]);
            view.sort_by(|a, b| match (key(a), key(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y).then(a.cmp(b)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.cmp(b),
            });
        }
        self.view = view;
        self.cursor = self.cursor.min(self.view.len().saturating_sub(1));
    }

    fn place_cursor_on(&mut self, pos: usize) -> bool {
        match self.view.iter().position(|&p| p == pos) {
            Some(c) => {
                self.cursor = c;
                self.detail_scroll = 0;
                true
            }
            None => false,
        }
    }

    fn keep_visible(&mut self) {
        let rows = self.viewport.op_rows.max(1);
        self.cursor = self.cursor.min(self.view.len().saturating_sub(1));
        if self.cursor < self.op_offset {
            self.op_offset = self.cursor;
        } else if self.cursor >= self.op_offset + rows {
            self.op_offset = self.cursor + 1 - rows;
        }
        let max_off = self.view.len().saturating_sub(rows);
        self.op_offset = self.op_offset.min(max_off);
        let mrows = self.viewport.module_rows.max(1);
        if self.selected_module < self.module_offset {
            self.module_offset = self.selected_module;
        } else if self.selected_module >= self.module_offset + mrows {
            self.module_offset = self.selected_module + 1 - mrows;
        }
        self.module_offset = self
            .module_offset
            .min(self.modules.len().saturating_sub(mrows));
        if let Some(m) = self.module() {
            self.layer_cursor = self.layer_cursor.min(m.layers.len().saturating_sub(1));
        }
    }

    fn select_module(&mut self, m: usize) {
        if m >= self.modules.len() {
            return;
        }
        if let Some(p) = self.selected_op_pos() {
            if let Some(cur) = self.modules.get_mut(self.selected_module) {
                cur.remembered = Some(p);
            }
        }
        self.selected_module = m;
        self.cursor = 0;
        self.op_offset = 0;
        self.detail_scroll = 0;
        self.layer_cursor = 0;
        self.rebuild_view();
        let target = self.modules[m]
            .remembered
            .or(self.modules[m].first_divergence);
        if let Some(p) = target {
            self.place_cursor_on(p);
        }
        self.keep_visible();
    }

    /// Selects `pos` of module `m`, clearing the filter if it hides the op.
    fn select_op(&mut self, m: usize, pos: usize) {
        if m != self.selected_module {
            self.select_module(m);
        }
        if !self.place_cursor_on(pos) {
            self.filter.clear();
            self.rebuild_view();
            self.place_cursor_on(pos);
        }
        self.keep_visible();
        self.lead_cursor();
        self.lead_pending = true;
    }

    /// Scrolls so the cursor sits a third down the page: the ops before it stay in view.
    fn lead_cursor(&mut self) {
        let rows = self.viewport.op_rows.max(1);
        let lead = (rows / 3).min(self.cursor);
        self.op_offset = self.cursor - lead;
        let max_off = self.view.len().saturating_sub(rows);
        self.op_offset = self.op_offset.min(max_off);
    }

    fn jump_to_first_divergence(&mut self) {
        match self.first_divergence {
            Some(r) => {
                self.select_op(r.module, r.op);
                self.focus = Pane::Ops;
                self.message = None;
            }
            None => {
                let why = if self.is_live_running() {
                    "no diverging op so far"
                } else {
                    "no diverging op: no op raised and no local check failed"
                };
                self.message = Some(why.into());
            }
        }
    }

    fn jump_failing(&mut self, forward: bool) {
        let Some(m) = self.module() else { return };
        let n = self.view.len();
        if n == 0 {
            return;
        }
        let found = (1..=n)
            .map(|k| {
                if forward {
                    (self.cursor + k) % n
                } else {
                    (self.cursor + n - k % n) % n
                }
            })
            .find(|&c| m.ops[self.view[c]].verdict.is_bad());
        match found {
            Some(c) => {
                let wrapped = if forward {
                    c <= self.cursor
                } else {
                    c >= self.cursor
                };
                self.cursor = c;
                self.detail_scroll = 0;
                self.message = wrapped.then(|| "wrapped around".to_string());
                self.keep_visible();
            }
            None => {
                self.message = Some(format!("no failing op in {}", m.id));
            }
        }
    }

    fn move_cursor(&mut self, pane: Pane, delta: isize) {
        match pane {
            Pane::Modules => {
                let n = self.modules.len();
                if n == 0 {
                    return;
                }
                let m = (self.selected_module as isize + delta).clamp(0, n as isize - 1) as usize;
                if m != self.selected_module {
                    self.select_module(m);
                }
            }
            Pane::Ops => {
                let n = self.view.len();
                if n == 0 {
                    return;
                }
                let c = (self.cursor as isize + delta).clamp(0, n as isize - 1) as usize;
                if c != self.cursor {
                    self.cursor = c;
                    self.detail_scroll = 0;
                }
                self.keep_visible();
            }
            Pane::Detail => {
                self.detail_scroll = (self.detail_scroll as isize + delta).max(0) as usize;
            }
            Pane::Chart => {
                let n = self.module().map_or(0, |m| m.layers.len());
                if n == 0 {
                    return;
                }
                self.layer_cursor =
                    (self.layer_cursor as isize + delta).clamp(0, n as isize - 1) as usize;
            }
        }
    }

    fn page(&self, pane: Pane) -> isize {
        let rows = match pane {
            Pane::Modules => self.viewport.module_rows,
            Pane::Ops => self.viewport.op_rows,
            Pane::Detail => self.viewport.detail_rows,
            Pane::Chart => 10,
        };
        rows.max(1) as isize
    }

    /// The pane the arrow keys act on.
    pub fn active_pane(&self) -> Pane {
        if self.zoomed {
            Pane::Detail
        } else {
            self.focus
        }
    }

    /// Applies one action.
    pub fn apply(&mut self, action: Action) {
        self.lead_pending = false;
        if !matches!(action, Action::FilterChar(_) | Action::FilterBackspace) {
            self.message = None;
        }
        let moves = matches!(
            action,
            Action::Up
                | Action::Down
                | Action::PageUp
                | Action::PageDown
                | Action::Home
                | Action::Enter
                | Action::FirstDivergence
                | Action::NextFailing
                | Action::PrevFailing
                | Action::StartFilter
                | Action::ToggleSort
                | Action::Scroll(..)
                | Action::Click(..)
        );
        if moves {
            self.follow = false;
        }
        let pane = self.active_pane();
        match action {
            Action::Quit => self.quit = true,
            Action::Back => {
                if self.help {
                    self.help = false;
                } else if self.filter_editing {
                    self.apply(Action::FilterCancel);
                } else if self.zoomed {
                    self.zoomed = false;
                } else {
                    self.quit = true;
                }
            }
            Action::ToggleHelp => self.help = !self.help,
            Action::Up => self.move_cursor(pane, -1),
            Action::Down => self.move_cursor(pane, 1),
            Action::PageUp => self.move_cursor(pane, -self.page(pane)),
            Action::PageDown => self.move_cursor(pane, self.page(pane)),
            Action::Home => self.move_cursor(pane, isize::MIN / 2),
            Action::End => {
                self.move_cursor(pane, isize::MAX / 2);
                if pane == Pane::Ops && self.is_live_running() {
                    self.follow = true;
                }
            }
            Action::Left => self.move_cursor(Pane::Chart, -1),
            Action::Right => self.move_cursor(Pane::Chart, 1),
            Action::NextPane => {
                self.zoomed = false;
                self.focus = self.focus.next();
            }
            Action::PrevPane => {
                self.zoomed = false;
                self.focus = self.focus.prev();
            }
            Action::Focus(p) => self.focus = p,
            Action::Enter => match pane {
                Pane::Modules => self.focus = Pane::Ops,
                Pane::Ops => {
                    if self.selected_op().is_some() {
                        self.zoomed = true;
                        self.detail_scroll = 0;
                    }
                }
                Pane::Detail => self.zoomed = !self.zoomed,
                Pane::Chart => {
                    let target = self
                        .module()
                        .and_then(|m| m.layers.get(self.layer_cursor))
                        .map(|l| l.first_op);
                    if let Some(p) = target {
                        self.select_op(self.selected_module, p);
                        self.focus = Pane::Ops;
                    }
                }
            },
            Action::FirstDivergence => {
                self.zoomed = false;
                self.jump_to_first_divergence();
            }
            Action::NextFailing => self.jump_failing(true),
            Action::PrevFailing => self.jump_failing(false),
            Action::StartFilter => {
                self.filter_editing = true;
                self.zoomed = false;
            }
            Action::FilterChar(c) => {
                self.filter.push(c);
                self.refilter();
            }
            Action::FilterBackspace => {
                self.filter.pop();
                self.refilter();
            }
            Action::FilterAccept => {
                self.filter_editing = false;
                self.focus = Pane::Ops;
                if self.view.is_empty() {
                    self.message = Some(format!("no op matches `{}`", self.filter));
                }
            }
            Action::FilterCancel => {
                self.filter_editing = false;
                self.filter.clear();
                self.refilter();
            }
            Action::ToggleSort => {
                self.sort = match self.sort {
                    SortOrder::Execution => SortOrder::Pcc,
                    SortOrder::Pcc => SortOrder::Execution,
                };
                self.resort();
            }
            Action::ToggleEmphasis => {
                self.emphasis = match self.emphasis {
                    Emphasis::Chained => Emphasis::Local,
                    Emphasis::Local => Emphasis::Chained,
                };
                if self.emphasis == Emphasis::Local && !self.has_local {
                    self.message =
                        Some("this run has no local checks (the device is the reference)".into());
                }
                if self.sort == SortOrder::Pcc {
                    self.resort();
                }
            }
            Action::ToggleChartScale => {
                self.chart_scale = match self.chart_scale {
                    ChartScale::Pcc => ChartScale::OneMinusPccLog,
                    ChartScale::OneMinusPccLog => ChartScale::Pcc,
                }
            }
            Action::Scroll(p, d) => {
                if p == Pane::Modules || p == Pane::Ops || p == Pane::Detail {
                    self.move_cursor(p, d as isize);
                }
            }
            Action::Click(p, row) => match p {
                Pane::Modules => {
                    let m = self.module_offset + row;
                    if m < self.modules.len() {
                        self.select_module(m);
                    }
                    self.focus = Pane::Modules;
                }
                Pane::Ops => {
                    let c = self.op_offset + row;
                    if c < self.view.len() {
                        self.cursor = c;
                        self.detail_scroll = 0;
                    }
                    self.focus = Pane::Ops;
                }
                other => self.focus = other,
            },
        }
    }

    fn refilter(&mut self) {
        let current = self.selected_op_pos();
        self.rebuild_view();
        self.cursor = 0;
        if let Some(p) = current {
            self.place_cursor_on(p);
        }
        self.op_offset = 0;
        self.keep_visible();
    }

    fn resort(&mut self) {
        let current = self.selected_op_pos();
        self.rebuild_view();
        if let Some(p) = current {
            self.place_cursor_on(p);
        }
        self.keep_visible();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_component() {
        assert_eq!(
            layer_of("siglip.layers.3.attn.q"),
            Some(("siglip.layers.3", 3))
        );
        assert_eq!(
            layer_of("denoise.4.expert.layers.17.mlp_residual"),
            Some(("denoise.4.expert.layers.17", 17))
        );
        assert_eq!(layer_of("vlm.layers.0"), Some(("vlm.layers.0", 0)));
        assert_eq!(layer_of("siglip.post_ln"), None);
        assert_eq!(layer_of("x.layers.q"), None);
        assert_eq!(layer_of("mylayers.2.x"), None);
    }

    #[test]
    fn depth() {
        assert_eq!(name_depth("siglip.embed"), 0);
        assert_eq!(name_depth("siglip.layers.0.ln1"), 1);
        assert_eq!(name_depth("siglip.layers.0.attn.q"), 2);
        assert_eq!(name_depth("denoise.4.expert.layers.0.attn.probs"), 3);
        assert_eq!(name_depth("x"), 0);
    }
}
