//! Plots (PNG and SVG, plotters): where drift starts.
//!
//! * `pcc_<module>`: per module with `layers.{i}` blocks, PCC vs layer — the chained and local
//!   curves op by op (each layer spans one unit of the x axis, ops in execution order inside
//!   it), the tolerance lines, the module gate, failing ops crossed, the first divergence marked.
//!   The y axis is PCC on a "nines" scale (0.9, 0.99, 0.999, …), so 0.99999 and 0.99 are both
//!   readable.
//! * `pipeline`: 1 − PCC on a log axis across the whole run, modules in order, shaded bands.
//! * `heatmap_<module>`: the worst error (rel-L2) per layer × op kind, log colour scale; local
//!   error, or chained error when the run has no local checks (the title says which).
//! * [`overlay`]: several runs (emu profiles, branches) in one chart with a legend.
//!
//! Text is drawn with DejaVu Sans embedded in the binary, so PNGs need no system fonts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use rayon::prelude::*;

use crate::harness::record::{Check, ModuleReport, OpReport, RunRecord};
use crate::report::view::{error_of, fmt_limit, has_layers, segments, ErrorBasis};
use crate::report::{write_file, ReportError};

const FONT: &str = "sans-serif";
const CHAINED: RGBColor = RGBColor(31, 119, 180);
const LOCAL: RGBColor = RGBColor(230, 110, 0);
const FAIL: RGBColor = RGBColor(214, 39, 40);
const GATE: RGBColor = RGBColor(110, 110, 110);
const BAND: RGBColor = RGBColor(120, 120, 140);
/// Heatmap cell of an op with zero error.
const EXACT_CELL: RGBColor = RGBColor(205, 205, 205);
/// Colours of overlaid runs (tab10 without red, which marks failures).
const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Largest number of nines shown (1 − PCC below 1e-15 is drawn at 1e-15).
const MAX_NINES: f64 = 15.0;

fn font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font did not load".to_string())
    })
    .clone()
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// −log₁₀(1 − pcc), clamped to [0, 15]: 2 means 0.99, 5 means 0.99999.
fn nines(pcc: f64) -> f64 {
    let gap = 1.0 - pcc;
    if gap.is_nan() {
        0.0
    } else if gap <= 10f64.powf(-MAX_NINES) {
        MAX_NINES
    } else {
        (-gap.log10()).clamp(0.0, MAX_NINES)
    }
}

/// Tick label of a nines value as the PCC it stands for.
fn nines_label(v: f64) -> String {
    if v <= 0.0 {
        "≤0".to_string()
    } else if v > 6.5 {
        format!("1-1e-{}", v.round())
    } else {
        let p = 1.0 - 10f64.powf(-v);
        let decimals = (v.ceil() as usize).max(1);
        format!("{p:.decimals$}")
    }
}

fn short_stack(stack: &str) -> String {
    // `denoise.4.expert` → `d4.expert`
    match stack.strip_prefix("denoise.") {
        Some(rest) => format!("d{rest}"),
        None => stack.to_string(),
    }
}

// ---- layout of one module on a layer axis --------------------------------------------------

/// A module's ops placed on a layer axis: layer `i` of the first stack spans [i, i+1); the ops
/// before the first layer span [−1, 0); every later segment (layer or between stacks) one unit.
struct Layout {
    /// x of each op of the module (by position in `ops`).
    x: Vec<f64>,
    x0: f64,
    x1: f64,
    /// (start, label) of each segment.
    ticks: Vec<(f64, String)>,
    /// Stacks: (start, end, name), only when the module has more than one.
    stacks: Vec<(f64, f64, String)>,
    /// Layer segments: (start, end), for the alternating shading.
    layers: Vec<(f64, f64)>,
}

impl Layout {
    fn new(m: &ModuleReport) -> Layout {
        let segs = segments(m);
        let first_layer = segs.iter().position(|s| s.layer.is_some());
        let last_layer = segs.iter().rposition(|s| s.layer.is_some());
        let offset = first_layer.unwrap_or(0) as f64;
        let mut x = vec![0.0; m.ops.len()];
        let mut ticks = Vec::new();
        let mut stacks: Vec<(f64, f64, String)> = Vec::new();
        let mut layers = Vec::new();
        for (k, s) in segs.iter().enumerate() {
            let start = k as f64 - offset;
            let n = s.ops.len() as f64;
            for (j, &i) in s.ops.iter().enumerate() {
                x[i] = start + (j as f64 + 0.5) / n;
            }
            let label = match s.layer {
                Some(l) => l.to_string(),
                None if first_layer.is_none_or(|f| k < f) => "in".to_string(),
                None if last_layer.is_none_or(|l| k > l) => "out".to_string(),
                None => "·".to_string(),
            };
            ticks.push((start, label));
            if let (Some(stack), Some(_)) = (s.stack, s.layer) {
                layers.push((start, start + 1.0));
                match stacks.last_mut() {
                    Some(last) if last.2 == stack && (last.1 - start).abs() < 1e-9 => {
                        last.1 = start + 1.0
                    }
                    _ => stacks.push((start, start + 1.0, stack.to_string())),
                }
            }
        }
        if stacks.len() < 2 {
            stacks.clear();
        }
        Layout {
            x,
            x0: -offset,
            x1: segs.len() as f64 - offset,
            ticks,
            stacks,
            layers,
        }
    }

    fn tick(&self, v: f64) -> String {
        match self.ticks.iter().rev().find(|(s, _)| *s <= v + 1e-9) {
            Some((s, l)) if (v - s).abs() < 1e-6 => l.clone(),
            _ => String::new(),
        }
    }
}

// ---- curves --------------------------------------------------------------------------------

/// One line of a chart in raw PCC values: polylines (broken where an op has no PCC, e.g. a
/// stats-only golden, or where PCC is exactly 1), exact ops, and the ops that failed.
struct Curve {
    label: String,
    color: RGBColor,
    lines: Vec<Vec<(f64, f64)>>,
    /// x of ops whose PCC is 1 within 1e-15 (drawn as marks at the top / floor).
    exact: Vec<f64>,
    /// Failing ops: (x, pcc), pcc = −∞ when it is undefined.
    fails: Vec<(f64, f64)>,
}

impl Curve {
    fn points(&self) -> impl Iterator<Item = &(f64, f64)> {
        self.lines.iter().flatten()
    }
    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.exact.is_empty() && self.fails.is_empty()
    }
}

fn pcc_of(c: &Check) -> Option<f64> {
    c.metrics.pcc.filter(|p| !p.is_nan())
}

/// The PCC curve of one check over ops in execution order placed at `x`.
fn curve<'a>(
    ops: impl Iterator<Item = (&'a OpReport, f64)>,
    check: ErrorBasis,
    label: String,
    color: RGBColor,
) -> Curve {
    let mut c = Curve {
        label,
        color,
        lines: Vec::new(),
        exact: Vec::new(),
        fails: Vec::new(),
    };
    let mut line: Vec<(f64, f64)> = Vec::new();
    let exact_gap = 10f64.powf(-MAX_NINES);
    for (o, x) in ops {
        let ck = check.check(o);
        let p = ck.and_then(pcc_of);
        if ck.is_some_and(|k| !k.pass) {
            c.fails.push((x, p.unwrap_or(f64::NEG_INFINITY)));
        }
        match p {
            Some(p) if 1.0 - p > exact_gap => line.push((x, p)),
            Some(_) => {
                c.exact.push(x);
                if !line.is_empty() {
                    c.lines.push(std::mem::take(&mut line));
                }
            }
            None => {
                if !line.is_empty() {
                    c.lines.push(std::mem::take(&mut line));
                }
            }
        }
    }
    if !line.is_empty() {
        c.lines.push(line);
    }
    c
}

/// Cross size and stroke for `n` failing ops: smaller when they are many.
fn cross_style(n: usize) -> (i32, u32) {
    if n > 150 {
        (3, 1)
    } else {
        (5, 2)
    }
}

// ---- header and legend ----------------------------------------------------------------------

enum Key {
    Line { color: RGBColor, dashed: bool },
    Dotted(RGBColor),
    Cross,
}

struct LegendItem {
    label: String,
    key: Key,
}

/// Draws the title, the subtitle and the legend (in rows, above the chart, so it never hides
/// data); returns the area left for the chart.
fn header<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
    legend: &[LegendItem],
) -> Result<DrawingArea<DB, Shift>, String> {
    let (w, _) = root.dim_in_pixel();
    let label_font = (FONT, 14).into_font();
    // Lay the legend out first to know the header height.
    let mut placed = Vec::new();
    let (mut x, mut row) = (14i32, 0i32);
    for item in legend {
        let (tw, _) = root
            .estimate_text_size(&item.label, &label_font.clone().into_text_style(root))
            .map_err(err)?;
        let width = 30 + tw as i32 + 22;
        if x + width > w as i32 - 10 && x > 14 {
            x = 14;
            row += 1;
        }
        placed.push((x, row, item));
        x += width;
    }
    let rows = if legend.is_empty() { 0 } else { row + 1 };
    let height = 60 + rows * 22 + if rows > 0 { 6 } else { 0 };
    let (top, body) = root.split_vertically(height as u32);
    top.draw(&Text::new(
        title.to_string(),
        (14, 8),
        (FONT, 24).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    top.draw(&Text::new(
        subtitle.to_string(),
        (14, 36),
        (FONT, 15).into_font().color(&GATE),
    ))
    .map_err(err)?;
    for (x, row, item) in placed {
        let y = 70 + row * 22;
        match item.key {
            Key::Line { color, dashed } => {
                if dashed {
                    for k in 0..3 {
                        top.draw(&PathElement::new(
                            vec![(x + k * 9, y), (x + k * 9 + 5, y)],
                            color.stroke_width(2),
                        ))
                        .map_err(err)?;
                    }
                } else {
                    top.draw(&PathElement::new(
                        vec![(x, y), (x + 24, y)],
                        color.stroke_width(3),
                    ))
                    .map_err(err)?;
                }
            }
            Key::Dotted(color) => {
                for k in 0..5 {
                    top.draw(&PathElement::new(
                        vec![(x + k * 5, y), (x + k * 5 + 2, y)],
                        color.stroke_width(2),
                    ))
                    .map_err(err)?;
                }
            }
            Key::Cross => top
                .draw(&Cross::new((x + 12, y), 5, FAIL.stroke_width(2)))
                .map_err(err)?,
        }
        top.draw(&Text::new(
            item.label.clone(),
            (x + 30, y),
            label_font
                .clone()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
    }
    Ok(body)
}

fn tolerance_steps<'a>(
    ops: impl Iterator<Item = (&'a OpReport, f64)>,
    check: ErrorBasis,
) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = ops
        .filter_map(|(o, x)| {
            check
                .check(o)
                .and_then(|c| c.tolerance.as_ref())
                .and_then(|t| t.pcc_min)
                .map(|t| (x, t))
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut runs: Vec<(f64, f64, f64)> = Vec::new();
    for (x, t) in pts {
        match runs.last_mut() {
            Some(last) if last.2 == t => last.1 = x,
            _ => runs.push((x, x, t)),
        }
    }
    runs.into_iter()
        .flat_map(|(a, b, t)| [(a, t), (b, t)])
        .collect()
}

fn tolerance_label(what: &str, steps: &[(f64, f64)]) -> String {
    let first = steps.first().map_or(f64::NAN, |p| p.1);
    if steps.iter().all(|p| p.1 == first) {
        format!("{what} tolerance: pcc ≥ {}", fmt_limit(first))
    } else {
        format!("{what} tolerance (per op)")
    }
}

// ---- figures -------------------------------------------------------------------------------

/// What a figure shows; each is drawn to PNG and SVG by the same code.
enum Figure<'a> {
    Module {
        record: &'a RunRecord,
        module: &'a ModuleReport,
    },
    Pipeline {
        runs: Vec<(String, &'a RunRecord)>,
        check: Option<ErrorBasis>,
    },
    Heatmap {
        record: &'a RunRecord,
        module: &'a ModuleReport,
        basis: ErrorBasis,
    },
    Overlay {
        runs: Vec<(String, &'a RunRecord)>,
        module: String,
        check: ErrorBasis,
    },
}

impl Figure<'_> {
    fn size(&self) -> (u32, u32) {
        match self {
            Figure::Heatmap { module, .. } => {
                let cols = segments(module).len() as u32;
                let rows = kinds(module).len() as u32;
                ((cols * 22).clamp(640, 2600) + 330, rows * 30 + 190)
            }
            _ => (1400, 720),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        match self {
            Figure::Module { record, module } => draw_module(root, record, module),
            Figure::Pipeline { runs, check } => draw_pipeline(root, runs, *check),
            Figure::Heatmap {
                record,
                module,
                basis,
            } => draw_heatmap(root, record, module, *basis),
            Figure::Overlay {
                runs,
                module,
                check,
            } => draw_overlay(root, runs, module, *check),
        }?;
        root.present().map_err(err)
    }

    fn png(&self) -> Result<Vec<u8>, String> {
        font()?;
        let (w, h) = self.size();
        let mut buf = vec![0u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            self.draw(&root)?;
        }
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_compression(png::Compression::Fast);
            let mut wr = enc.write_header().map_err(err)?;
            wr.write_image_data(&buf).map_err(err)?;
        }
        Ok(out)
    }

    fn svg(&self) -> Result<String, String> {
        font()?;
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, self.size()).into_drawing_area();
            self.draw(&root)?;
        }
        Ok(s)
    }

    /// Writes `stem.png` and `stem.svg`.
    fn write_both(&self, stem: &Path) -> Result<Vec<PathBuf>, ReportError> {
        let png_path = stem.with_extension("png");
        let svg_path = stem.with_extension("svg");
        let (png, svg) = rayon::join(|| self.png(), || self.svg());
        let png = png.map_err(|message| ReportError::Plot {
            path: png_path.clone(),
            message,
        })?;
        let svg = svg.map_err(|message| ReportError::Plot {
            path: svg_path.clone(),
            message,
        })?;
        write_file(&png_path, &png)?;
        write_file(&svg_path, svg.as_bytes())?;
        Ok(vec![png_path, svg_path])
    }
}

fn title(r: &RunRecord) -> String {
    format!(
        "backend {} · profile {} · mode {} · run {}",
        r.run.backend, r.run.profile, r.run.mode, r.run.id
    )
}

/// Every plot of a run into `dir`; returns the files written (PNG and SVG of each figure).
///
/// # Errors
/// A figure that could not be drawn or written.
pub fn write_all(r: &RunRecord, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let basis = ErrorBasis::of(r);
    let mut figs: Vec<(String, Figure<'_>)> = Vec::new();
    for m in r.modules.iter().filter(|m| has_layers(m)) {
        figs.push((
            format!("pcc_{}", m.id),
            Figure::Module {
                record: r,
                module: m,
            },
        ));
        if m.ops.iter().any(|o| basis.check(o).is_some()) {
            figs.push((
                format!("heatmap_{}", m.id),
                Figure::Heatmap {
                    record: r,
                    module: m,
                    basis,
                },
            ));
        }
    }
    let any_pcc = r
        .modules
        .iter()
        .flat_map(|m| &m.ops)
        .any(|o| o.chained_pcc().is_some() || o.local_pcc().is_some());
    if any_pcc {
        figs.push((
            "pipeline".to_string(),
            Figure::Pipeline {
                runs: vec![(String::new(), r)],
                check: None,
            },
        ));
    }
    let files: Vec<Vec<PathBuf>> = figs
        .par_iter()
        .map(|(name, f)| f.write_both(&dir.join(name)))
        .collect::<Result<_, _>>()?;
    Ok(files.into_iter().flatten().collect())
}

/// One chart overlaying several runs, written to `out` (`.png` or `.svg`): PCC vs layer of
/// `module` when given, else 1 − PCC across the pipeline. `check` picks the chained or the
/// local curve. Runs are matched to the first run's ops by module and op name.
///
/// # Errors
/// An unknown extension, nothing to plot, or a drawing or write failure.
pub fn overlay(
    runs: &[(String, &RunRecord)],
    module: Option<&str>,
    check: ErrorBasis,
    out: &Path,
) -> Result<(), ReportError> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let runs = runs.to_vec();
    let fig = match module {
        Some(m) => {
            let Some(first) = runs.first() else {
                return Err(ReportError::NothingToPlot("no runs given".into()));
            };
            let Some(md) = first.1.modules.iter().find(|x| x.id == m) else {
                let known: Vec<&str> = first.1.modules.iter().map(|x| x.id.as_str()).collect();
                return Err(ReportError::NothingToPlot(format!(
                    "run `{}` has no module `{m}` (it has: {})",
                    first.1.run.id,
                    known.join(", ")
                )));
            };
            if md.ops.is_empty() {
                return Err(ReportError::NothingToPlot(format!(
                    "module `{m}` of run `{}` has no ops",
                    first.1.run.id
                )));
            }
            Figure::Overlay {
                runs,
                module: m.to_string(),
                check,
            }
        }
        None => Figure::Pipeline {
            runs,
            check: Some(check),
        },
    };
    let bytes = match ext.as_deref() {
        Some("png") => fig.png(),
        Some("svg") => fig.svg().map(String::into_bytes),
        _ => {
            return Err(ReportError::PlotExtension {
                path: out.to_path_buf(),
            })
        }
    }
    .map_err(|message| ReportError::Plot {
        path: out.to_path_buf(),
        message,
    })?;
    write_file(out, &bytes)
}

// ---- PCC vs layer ---------------------------------------------------------------------------

fn y_range_nines(curves: &[Curve], extra: &[f64]) -> (f64, f64) {
    let vals = curves
        .iter()
        .flat_map(|c| c.points().map(|p| nines(p.1)))
        .chain(extra.iter().map(|&p| nines(p)));
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        // Only exact ops (or none): show the top of the scale.
        return if curves.iter().any(|c| !c.exact.is_empty()) {
            (MAX_NINES - 6.0, MAX_NINES + 0.5)
        } else {
            (0.0, 6.0)
        };
    }
    let lo = (lo - 0.5).floor().max(0.0);
    let hi = (hi + 0.5).ceil().min(MAX_NINES + 0.5).max(lo + 1.0);
    (lo, hi)
}

/// A tolerance line: label, colour, step points (x, raw PCC).
type ToleranceLine = (String, RGBColor, Vec<(f64, f64)>);

/// A PCC-vs-layer chart: what to draw besides the layout.
struct LayerChart<'a> {
    title: String,
    subtitle: String,
    lay: &'a Layout,
    curves: Vec<Curve>,
    tolerances: Vec<ToleranceLine>,
    gate: Option<f64>,
    first: Option<(f64, String)>,
}

fn layer_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    c: &LayerChart<'_>,
) -> Result<(), String> {
    let lay = c.lay;
    let mut legend: Vec<LegendItem> = c
        .curves
        .iter()
        .map(|k| LegendItem {
            label: k.label.clone(),
            key: Key::Line {
                color: k.color,
                dashed: false,
            },
        })
        .collect();
    for (label, color, _) in &c.tolerances {
        legend.push(LegendItem {
            label: label.clone(),
            key: Key::Line {
                color: *color,
                dashed: true,
            },
        });
    }
    if let Some(g) = c.gate {
        legend.push(LegendItem {
            label: format!("module gate {g} (outputs)"),
            key: Key::Dotted(GATE),
        });
    }
    let n_fails: usize = c.curves.iter().map(|k| k.fails.len()).sum();
    if n_fails > 0 {
        legend.push(LegendItem {
            label: format!("failing check ({n_fails})"),
            key: Key::Cross,
        });
    }
    let body = header(root, &c.title, &c.subtitle, &legend)?;
    let mut extra: Vec<f64> = c
        .tolerances
        .iter()
        .flat_map(|t| t.2.iter().map(|p| p.1))
        .collect();
    extra.extend(c.gate);
    let (ylo, yhi) = y_range_nines(&c.curves, &extra);
    let multi = !lay.stacks.is_empty();
    let mut chart = ChartBuilder::on(&body)
        .margin_left(14)
        .margin_right(24)
        .margin_bottom(10)
        .margin_top(if multi { 22 } else { 8 })
        .x_label_area_size(48)
        .y_label_area_size(92)
        .build_cartesian_2d(lay.x0..lay.x1, ylo..yhi)
        .map_err(err)?;
    chart
        .draw_series(
            lay.layers
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, &(a, b))| Rectangle::new([(a, ylo), (b, yhi)], BAND.mix(0.07).filled())),
        )
        .map_err(err)?;
    let n_ticks = (lay.x1 - lay.x0).round() as usize + 1;
    let tick = |v: &f64| if multi { String::new() } else { lay.tick(*v) };
    let ylab = |v: &f64| nines_label(*v);
    chart
        .configure_mesh()
        .x_labels(if multi { 0 } else { n_ticks.min(40) })
        .x_label_formatter(&tick)
        .y_labels(((yhi - ylo).round() as usize + 1).min(16))
        .y_label_formatter(&ylab)
        .x_desc(if multi {
            "layer of each stack (bands); in/out = ops before/after the layers"
        } else {
            "layer (in = ops before the first layer, out = after the last)"
        })
        .y_desc("PCC (nines scale)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(err)?;
    if multi {
        // Stack names above the plot, boundaries, and layer numbers below the axis.
        let label_font = (FONT, 13).into_font().color(&BAND);
        for (a, b, name) in &lay.stacks {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*a, ylo), (*a, yhi)],
                    BAND.mix(0.6).stroke_width(1),
                )))
                .map_err(err)?;
            let (pa, py) = chart.backend_coord(&(*a, yhi));
            let (pb, pbot) = chart.backend_coord(&(*b, ylo));
            let label = short_stack(name);
            if (pb - pa) as f64 >= 7.5 * label.chars().count() as f64 {
                root.draw(&Text::new(
                    label,
                    ((pa + pb) / 2, py - 4),
                    label_font.clone().pos(Pos::new(HPos::Center, VPos::Bottom)),
                ))
                .map_err(err)?;
            }
            let n = (b - a).round() as i64;
            let step = match pb - pa {
                w if w > 180 => 5,
                w if w > 60 => 10,
                _ => n.max(1),
            };
            let mut l = 0;
            while l < n {
                let (px, _) = chart.backend_coord(&(a + l as f64, ylo));
                root.draw(&Text::new(
                    l.to_string(),
                    (px, pbot + 6),
                    (FONT, 13)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(err)?;
                l += step;
            }
        }
    }
    for (_, color, steps) in &c.tolerances {
        if steps.is_empty() {
            continue;
        }
        let mut pts: Vec<(f64, f64)> = steps.iter().map(|&(x, t)| (x, nines(t))).collect();
        if pts.iter().all(|p| p.1 == pts[0].1) {
            pts = vec![(lay.x0, pts[0].1), (lay.x1, pts[0].1)];
        }
        chart
            .draw_series(DashedLineSeries::new(pts, 8, 5, color.stroke_width(2)))
            .map_err(err)?;
    }
    if let Some(g) = c.gate {
        let y = nines(g);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(lay.x0, y), (lay.x1, y)],
                2,
                4,
                GATE.stroke_width(2),
            ))
            .map_err(err)?;
    }
    for k in &c.curves {
        for line in &k.lines {
            let pts: Vec<(f64, f64)> = line.iter().map(|&(x, p)| (x, nines(p))).collect();
            if pts.len() == 1 {
                chart
                    .draw_series(std::iter::once(Circle::new(pts[0], 2, k.color.filled())))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts, k.color.stroke_width(2)))
                    .map_err(err)?;
            }
        }
        // Exact ops (PCC 1 within 1e-15) sit on the top edge.
        let top = yhi - 0.02 * (yhi - ylo);
        chart
            .draw_series(
                k.exact
                    .iter()
                    .map(|&x| Circle::new((x, top), 2, k.color.mix(0.5).filled())),
            )
            .map_err(err)?;
    }
    let (size, width) = cross_style(n_fails);
    for k in &c.curves {
        chart
            .draw_series(k.fails.iter().map(|&(x, p)| {
                let y = if p.is_finite() { nines(p) } else { ylo };
                Cross::new((x, y.clamp(ylo, yhi)), size, FAIL.stroke_width(width))
            }))
            .map_err(err)?;
    }
    if let Some((x, name)) = &c.first {
        first_marker(root, &chart, *x, (lay.x0, lay.x1), (ylo, yhi), name)?;
    }
    Ok(())
}

/// The first-divergence line and its label (left or right of the line, whichever fits).
fn first_marker<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    x: f64,
    (x0, x1): (f64, f64),
    (ylo, yhi): (f64, f64),
    name: &str,
) -> Result<(), String> {
    let (px, top) = chart.backend_coord(&(x, yhi));
    let (_, bottom) = chart.backend_coord(&(x, ylo));
    root.draw(&PathElement::new(
        vec![(px, top), (px, bottom)],
        FAIL.stroke_width(2),
    ))
    .map_err(err)?;
    let right = x > x0 + 0.6 * (x1 - x0);
    let (tx, h) = if right {
        (px - 6, HPos::Right)
    } else {
        (px + 6, HPos::Left)
    };
    root.draw(&Text::new(
        format!("first divergence: {name}"),
        (tx, top + 6),
        (FONT, 15)
            .into_font()
            .color(&FAIL)
            .pos(Pos::new(h, VPos::Top)),
    ))
    .map_err(err)
}

fn draw_module<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &RunRecord,
    m: &ModuleReport,
) -> Result<(), String> {
    let lay = Layout::new(m);
    let placed = || m.ops.iter().zip(lay.x.iter().copied());
    let mut curves = vec![curve(
        placed(),
        ErrorBasis::Chained,
        "chained PCC (vs golden)".into(),
        CHAINED,
    )];
    let has_local = m.ops.iter().any(|o| o.local.is_some());
    if has_local {
        curves.push(curve(
            placed(),
            ErrorBasis::Local,
            "local PCC (vs reference on the device's inputs)".into(),
            LOCAL,
        ));
    }
    let mut tolerances = Vec::new();
    let steps = tolerance_steps(placed(), ErrorBasis::Chained);
    if !steps.is_empty() {
        tolerances.push((tolerance_label("chained", &steps), CHAINED, steps));
    }
    if has_local {
        let steps = tolerance_steps(placed(), ErrorBasis::Local);
        if !steps.is_empty() {
            tolerances.push((tolerance_label("local", &steps), LOCAL, steps));
        }
    }
    let first = r
        .summary
        .first_divergence
        .as_ref()
        .filter(|f| f.module == m.id)
        .and_then(|f| {
            m.ops
                .iter()
                .position(|o| o.index == f.index)
                .map(|i| (lay.x[i], f.op.clone()))
        });
    let stats_only = m.ops.iter().filter(|o| o.chained_stats.is_some()).count();
    let mut subtitle = format!(
        "{} · verdict {} · {} ops, {} failed",
        title(r),
        m.verdict.as_str(),
        m.ops.len(),
        m.ops_failed
    );
    if stats_only > 0 {
        subtitle.push_str(&format!(
            " · {stats_only} ops with stats-only goldens have no PCC"
        ));
    }
    if curves.iter().any(|c| !c.exact.is_empty()) {
        subtitle.push_str(" · dots on the top edge: PCC = 1");
    }
    layer_chart(
        root,
        &LayerChart {
            title: format!("{} — PCC vs layer", m.id),
            subtitle,
            lay: &lay,
            curves,
            tolerances,
            gate: Some(m.gate),
            first,
        },
    )
}

fn draw_overlay<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[(String, &RunRecord)],
    module: &str,
    check: ErrorBasis,
) -> Result<(), String> {
    let Some(base) = runs
        .first()
        .and_then(|(_, r)| r.modules.iter().find(|m| m.id == module))
    else {
        return Err(format!("no module `{module}` in the first run"));
    };
    let lay = Layout::new(base);
    let mut x_of: HashMap<&str, f64> = HashMap::new();
    for (o, &x) in base.ops.iter().zip(lay.x.iter()) {
        x_of.entry(o.name.as_str()).or_insert(x);
    }
    let mut curves = Vec::new();
    for (i, (label, r)) in runs.iter().enumerate() {
        let Some(m) = r.modules.iter().find(|m| m.id == module) else {
            continue;
        };
        let placed = m
            .ops
            .iter()
            .filter_map(|o| x_of.get(o.name.as_str()).map(|&x| (o, x)));
        curves.push(curve(
            placed,
            check,
            label.clone(),
            PALETTE[i % PALETTE.len()],
        ));
    }
    if curves.iter().all(Curve::is_empty) {
        return Err(format!(
            "no {} PCC in module `{module}` of any run",
            check.as_str()
        ));
    }
    let placed = || base.ops.iter().zip(lay.x.iter().copied());
    let steps = tolerance_steps(placed(), check);
    let tolerances = if steps.is_empty() {
        Vec::new()
    } else {
        vec![(
            format!("{} (first run)", tolerance_label(check.as_str(), &steps)),
            FAIL,
            steps,
        )]
    };
    layer_chart(
        root,
        &LayerChart {
            title: format!("{module} — {} PCC vs layer, {} runs", check.as_str(), runs.len()),
            subtitle: format!(
                "one {} curve per run, matched by op name to the first run's layers; failing checks crossed",
                check.as_str()
            ),
            lay: &lay,
            curves,
            tolerances,
            gate: (check == ErrorBasis::Chained).then_some(base.gate),
            first: None,
        },
    )
}

// ---- 1 − PCC across the pipeline ------------------------------------------------------------

/// The ops of `r` found in `x_of`, with their x, in execution order.
fn placed_ops<'r>(x_of: &HashMap<(&str, &str), f64>, r: &'r RunRecord) -> Vec<(&'r OpReport, f64)> {
    r.modules
        .iter()
        .flat_map(|m| {
            m.ops
                .iter()
                .filter_map(move |o| x_of.get(&(m.id.as_str(), o.name.as_str())).map(|&x| (o, x)))
        })
        .collect()
}

fn draw_pipeline<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    runs: &[(String, &RunRecord)],
    check: Option<ErrorBasis>,
) -> Result<(), String> {
    let Some((_, base)) = runs.first() else {
        return Err("no runs".into());
    };
    // x: position in the first run's execution order, keyed by (module, op name).
    let mut x_of: HashMap<(&str, &str), f64> = HashMap::new();
    let mut bands: Vec<(f64, f64, &str)> = Vec::new();
    let mut n = 0usize;
    for m in &base.modules {
        let start = n as f64;
        for o in &m.ops {
            x_of.entry((m.id.as_str(), o.name.as_str()))
                .or_insert(n as f64 + 0.5);
            n += 1;
        }
        bands.push((start, n as f64, m.id.as_str()));
    }
    if n == 0 {
        return Err("the run has no ops".into());
    }
    let mut curves: Vec<Curve> = Vec::new();
    let base_ops = placed_ops(&x_of, base);
    match check {
        None => {
            curves.push(curve(
                base_ops.iter().copied(),
                ErrorBasis::Chained,
                "chained 1 − PCC (vs golden)".into(),
                CHAINED,
            ));
            if base_ops.iter().any(|(o, _)| o.local.is_some()) {
                curves.push(curve(
                    base_ops.iter().copied(),
                    ErrorBasis::Local,
                    "local 1 − PCC (vs reference on the device's inputs)".into(),
                    LOCAL,
                ));
            }
        }
        Some(c) => {
            for (i, (label, r)) in runs.iter().enumerate() {
                curves.push(curve(
                    placed_ops(&x_of, r).into_iter(),
                    c,
                    label.clone(),
                    PALETTE[i % PALETTE.len()],
                ));
            }
            if curves.iter().all(Curve::is_empty) {
                return Err(format!("no {} PCC in any run", c.as_str()));
            }
        }
    }
    let tol_check = check.unwrap_or(ErrorBasis::Chained);
    let steps = tolerance_steps(base_ops.iter().copied(), tol_check);

    let floor = 10f64.powf(-MAX_NINES);
    let gap = |p: f64| (1.0 - p).max(floor);
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in curves
        .iter()
        .flat_map(|c| c.points().map(|p| gap(p.1)))
        .chain(steps.iter().map(|s| gap(s.1)))
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        lo = if curves.iter().any(|c| !c.exact.is_empty()) {
            floor
        } else {
            1e-9
        };
        hi = 1.0;
    }
    let ylo = 10f64.powf(lo.log10().floor());
    let yhi = 10f64.powf(hi.log10().ceil()).max(ylo * 100.0);

    let mut legend: Vec<LegendItem> = curves
        .iter()
        .map(|k| LegendItem {
            label: k.label.clone(),
            key: Key::Line {
                color: k.color,
                dashed: false,
            },
        })
        .collect();
    if !steps.is_empty() {
        legend.push(LegendItem {
            label: tolerance_label(tol_check.as_str(), &steps),
            key: Key::Line {
                color: FAIL,
                dashed: true,
            },
        });
    }
    let n_fails: usize = curves.iter().map(|k| k.fails.len()).sum();
    if n_fails > 0 {
        legend.push(LegendItem {
            label: format!("failing check ({n_fails})"),
            key: Key::Cross,
        });
    }
    let caption = match check {
        None => "1 − PCC across the pipeline".to_string(),
        Some(c) => format!(
            "{} 1 − PCC across the pipeline, {} runs",
            c.as_str(),
            runs.len()
        ),
    };
    let sub = match check {
        None => format!(
            "{} · verdict {} · modules in execution order · dots on the bottom edge: PCC = 1",
            title(base),
            base.summary.verdict.as_str()
        ),
        Some(_) => "x: the first run's op order; runs matched by module and op name".to_string(),
    };
    let body = header(root, &caption, &sub, &legend)?;
    let mut chart = ChartBuilder::on(&body)
        .margin_left(14)
        .margin_right(24)
        .margin_bottom(10)
        .margin_top(22)
        .x_label_area_size(46)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, (ylo..yhi).log_scale())
        .map_err(err)?;
    chart
        .draw_series(
            bands
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, &(a, b, _))| {
                    Rectangle::new([(a, ylo), (b, yhi)], BAND.mix(0.08).filled())
                }),
        )
        .map_err(err)?;
    let ylab = |v: &f64| format!("{:.0e}", v);
    chart
        .configure_mesh()
        .x_labels(12)
        .x_label_formatter(&|v: &f64| format!("{}", v.round() as i64))
        .y_label_formatter(&ylab)
        .x_desc("op (execution order)")
        .y_desc("1 − PCC (log)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(err)?;
    let mut last_end = i32::MIN;
    for &(a, b, name) in &bands {
        let (pa, py) = chart.backend_coord(&(a, yhi));
        let (pb, _) = chart.backend_coord(&(b, yhi));
        let half = (4.0 * name.chars().count() as f64) as i32;
        let mid = (pa + pb) / 2;
        if mid - half > last_end + 6 {
            root.draw(&Text::new(
                name.to_string(),
                (mid, py - 4),
                (FONT, 13)
                    .into_font()
                    .color(&BAND)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))
            .map_err(err)?;
            last_end = mid + half;
        }
    }
    if !steps.is_empty() {
        let mut pts: Vec<(f64, f64)> = steps.iter().map(|&(x, t)| (x, gap(t))).collect();
        if pts.iter().all(|p| p.1 == pts[0].1) {
            pts = vec![(0.0, pts[0].1), (n as f64, pts[0].1)];
        }
        chart
            .draw_series(DashedLineSeries::new(pts, 8, 5, FAIL.stroke_width(2)))
            .map_err(err)?;
    }
    for k in &curves {
        for line in &k.lines {
            let pts: Vec<(f64, f64)> = line.iter().map(|&(x, p)| (x, gap(p))).collect();
            if pts.len() == 1 {
                chart
                    .draw_series(std::iter::once(Circle::new(pts[0], 2, k.color.filled())))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(pts, k.color.stroke_width(1)))
                    .map_err(err)?;
            }
        }
        chart
            .draw_series(
                k.exact
                    .iter()
                    .map(|&x| Circle::new((x, ylo * 1.15), 1, k.color.mix(0.5).filled())),
            )
            .map_err(err)?;
    }
    let (size, width) = cross_style(n_fails);
    for k in &curves {
        chart
            .draw_series(k.fails.iter().map(|&(x, p)| {
                let y = if p.is_finite() { gap(p) } else { yhi };
                Cross::new((x, y.clamp(ylo, yhi)), size, FAIL.stroke_width(width))
            }))
            .map_err(err)?;
    }
    if check.is_none() {
        if let Some(f) = &base.summary.first_divergence {
            if let Some(&x) = x_of.get(&(f.module.as_str(), f.op.as_str())) {
                let (px, top) = chart.backend_coord(&(x, yhi));
                let (_, bottom) = chart.backend_coord(&(x, ylo));
                root.draw(&PathElement::new(
                    vec![(px, top), (px, bottom)],
                    FAIL.stroke_width(2),
                ))
                .map_err(err)?;
                let right = x > 0.6 * n as f64;
                let (tx, h) = if right {
                    (px - 6, HPos::Right)
                } else {
                    (px + 6, HPos::Left)
                };
                root.draw(&Text::new(
                    format!("first divergence: {} ({})", f.op, f.module),
                    (tx, top + 6),
                    (FONT, 15)
                        .into_font()
                        .color(&FAIL)
                        .pos(Pos::new(h, VPos::Top)),
                ))
                .map_err(err)?;
            }
        }
    }
    Ok(())
}

// ---- heatmap: layer × op kind ----------------------------------------------------------------

/// Op kinds of a module in order of first appearance.
fn kinds(m: &ModuleReport) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for o in &m.ops {
        if !out.contains(&o.kind.as_str()) {
            out.push(&o.kind);
        }
    }
    out
}

/// Worst error and whether any op failed, per (kind row, segment column).
type Cells = Vec<Vec<Option<(f64, bool)>>>;

fn heat_cells(m: &ModuleReport, basis: ErrorBasis, rows: &[&str]) -> (Cells, Vec<String>) {
    let segs = segments(m);
    let first_layer = segs.iter().position(|s| s.layer.is_some());
    let last_layer = segs.iter().rposition(|s| s.layer.is_some());
    let multi = {
        let mut stacks: Vec<&str> = segs.iter().filter_map(|s| s.stack).collect();
        stacks.dedup();
        stacks.len() > 1
    };
    let mut cells: Cells = vec![vec![None; segs.len()]; rows.len()];
    let mut labels = Vec::with_capacity(segs.len());
    let mut prev_stack: Option<&str> = None;
    for (c, s) in segs.iter().enumerate() {
        labels.push(match (s.stack, s.layer) {
            (Some(st), Some(l)) => {
                let new_stack = prev_stack != Some(st);
                prev_stack = Some(st);
                if multi && new_stack {
                    format!("{}:{l}", short_stack(st))
                } else {
                    l.to_string()
                }
            }
            _ if first_layer.is_none_or(|f| c < f) => "in".into(),
            _ if last_layer.is_none_or(|l| c > l) => "out".into(),
            _ => "·".into(),
        });
        for &i in &s.ops {
            let o = &m.ops[i];
            let Some(check) = basis.check(o) else {
                continue;
            };
            let e = error_of(check);
            if e.is_nan() {
                continue;
            }
            let Some(row) = rows.iter().position(|k| *k == o.kind) else {
                continue;
            };
            let cell = &mut cells[row][c];
            *cell = Some(match *cell {
                None => (e, !check.pass),
                Some((w, f)) => (w.max(e), f || !check.pass),
            });
        }
    }
    (cells, labels)
}

fn draw_heatmap<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &RunRecord,
    m: &ModuleReport,
    basis: ErrorBasis,
) -> Result<(), String> {
    let rows = kinds(m);
    let (cells, labels) = heat_cells(m, basis, &rows);
    let ncols = labels.len() as i32;
    let nrows = rows.len() as i32;
    let floor = 1e-12;
    let vals = cells
        .iter()
        .flatten()
        .flatten()
        .map(|&(e, _)| e)
        .filter(|&e| e > 0.0 && e.is_finite());
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.map(|e| e.max(floor)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        lo = floor;
        hi = 1.0;
    }
    let (llo, mut lhi) = (lo.log10().floor(), hi.log10().ceil());
    if lhi <= llo {
        lhi = llo + 1.0;
    }
    let color_of = |e: f64| -> RGBColor {
        let v = if e.is_finite() {
            e.max(floor).log10()
        } else {
            lhi
        };
        ViridisRGB::get_color_normalized(v.clamp(llo, lhi), llo, lhi)
    };

    let (w, _) = root.dim_in_pixel();
    let what = match basis {
        ErrorBasis::Local => {
            "local rel-L2 (device op vs the reference on the device's own inputs)".to_string()
        }
        ErrorBasis::Chained => format!(
            "chained rel-L2 vs the goldens (backend {} has no local checks: upstream drift included)",
            r.run.backend
        ),
    };
    let body = header(
        root,
        &format!(
            "{} — worst {} error per layer × op kind",
            m.id,
            basis.as_str()
        ),
        &format!(
            "{what} · red frame: a failing check · gray: exact (0) · blank: no op of that kind"
        ),
        &[],
    )?;
    let (left, bar) = body.split_horizontally(w - 130);
    let mut chart = ChartBuilder::on(&left)
        .margin_left(14)
        .margin_right(10)
        .margin_top(10)
        .margin_bottom(10)
        .x_label_area_size(50)
        .y_label_area_size(150)
        // An i32 range is inclusive when segmented: 0..n−1 gives n cells.
        .build_cartesian_2d(
            (0..ncols - 1).into_segmented(),
            (0..nrows - 1).into_segmented(),
        )
        .map_err(err)?;
    let xlab = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(c) => labels.get(*c as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let ylab = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(r) => rows
            .get((nrows - 1 - *r) as usize)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(labels.len().min(60))
        .y_labels(rows.len())
        .x_label_formatter(&xlab)
        .y_label_formatter(&ylab)
        .x_desc("layer")
        .y_desc("op kind")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    let rect = |c: i32, r: i32| {
        [
            (SegmentValue::Exact(c), SegmentValue::Exact(nrows - 1 - r)),
            (SegmentValue::Exact(c + 1), SegmentValue::Exact(nrows - r)),
        ]
    };
    let mut filled = Vec::new();
    let mut frames = Vec::new();
    for (ri, row) in cells.iter().enumerate() {
        for (ci, cell) in row.iter().enumerate() {
            if let Some((e, failed)) = *cell {
                let fill = if e == 0.0 { EXACT_CELL } else { color_of(e) };
                filled.push(Rectangle::new(rect(ci as i32, ri as i32), fill.filled()));
                if failed {
                    frames.push(Rectangle::new(
                        rect(ci as i32, ri as i32),
                        FAIL.stroke_width(2),
                    ));
                }
            }
        }
    }
    chart.draw_series(filled).map_err(err)?;
    chart.draw_series(frames).map_err(err)?;

    // Colour bar.
    let mut cb = ChartBuilder::on(&bar)
        .margin_top(10)
        .margin_bottom(60)
        .margin_right(10)
        .y_label_area_size(66)
        .build_cartesian_2d(0f64..1.0, llo..lhi)
        .map_err(err)?;
    let steps = 100;
    cb.draw_series((0..steps).map(|i| {
        let a = llo + (lhi - llo) * i as f64 / steps as f64;
        let b = llo + (lhi - llo) * (i + 1) as f64 / steps as f64;
        Rectangle::new(
            [(0.0, a), (1.0, b)],
            ViridisRGB::get_color_normalized(a, llo, lhi).filled(),
        )
    }))
    .map_err(err)?;
    let cblab = |v: &f64| format!("1e{}", v.round() as i64);
    cb.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(((lhi - llo) as usize + 1).min(14))
        .y_label_formatter(&cblab)
        .y_desc("rel-L2")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// Plot-layer helper exposed for tests: the `layers.{i}` x position of each op of a module.
#[doc(hidden)]
pub fn layer_positions(m: &ModuleReport) -> Vec<f64> {
    Layout::new(m).x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_scale() {
        assert_eq!(nines(0.99), 2.0000000000000004_f64.min(nines(0.99)));
        assert!((nines(0.999) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0), MAX_NINES);
        assert_eq!(nines(-0.3), 0.0);
        assert_eq!(nines(f64::NAN), 0.0);
        assert_eq!(nines_label(2.0), "0.99");
        assert_eq!(nines_label(5.0), "0.99999");
        assert_eq!(nines_label(8.0), "1-1e-8");
        assert_eq!(short_stack("denoise.4.expert"), "d4.expert");
    }
}
