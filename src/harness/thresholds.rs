//! Tolerances: named presets per op class × device dtype × check (local / chained), per-module
//! chained gates, and a TOML file that overlays them, per class and per op-name glob.
//!
//! # Default presets
//!
//! `F32` is reference-grade: the defaults must be met by two *different correct* f32
//! implementations (another GEMM summation order, f64 instead of f32 transcendentals) and still
//! catch real bugs. Device dtypes follow TT's own practice (TT_NUMERICS §5: `assert_with_pcc`
//! 0.9999 for op unit tests, `comp_pcc` 0.99, bfp8-weight MLP tests 0.99, pi0 end to end 0.93).
//! A PCC gate always comes with a rel-L2 gate, because PCC alone misses scale and bias errors
//! (PCC(x, 2x) = 1); the rel-L2 bounds of the block-float presets sit just above
//! √(2(1 − pcc_min)), the rel-L2 of pure noise at that PCC, so PCC binds for noise and rel-L2
//! for scale errors.
//!
//! Local (isolation) checks — the device op against the reference on the device's own inputs:
//!
//! | class \ dtype | f32 | bf16 | bfloat8_b | bfloat4_b | u32 |
//! |---|---|---|---|---|---|
//! | data movement | exact | ≤ 1 ULP (storage rounding, RNE or truncation) | pcc 0.99, rel-L2 0.15 (re-blocking re-quantises) | pcc 0.97, rel-L2 0.25 | exact |
//! | eltwise | allclose all (atol 1e-6, rtol 1e-5) | pcc 0.999, rel-L2 1e-2 | pcc 0.99, rel-L2 0.15 | pcc 0.97, rel-L2 0.25 | exact |
//! | matmul, norm | pcc 0.99999, rel-L2 1e-4 | pcc 0.999, rel-L2 1e-2 | pcc 0.99, rel-L2 0.15 | pcc 0.97, rel-L2 0.25 | exact |
//! | attention | pcc 0.99999, rel-L2 1e-4 | pcc 0.999, rel-L2 5e-2 | pcc 0.99, rel-L2 0.15 | pcc 0.97, rel-L2 0.25 | exact |
//!
//! Chained (global) checks — the device op against the golden, accumulated drift included; the
//! same for every class:
//!
//! | f32 | bf16 | bfloat8_b | bfloat4_b | u32 |
//! |---|---|---|---|---|
//! | pcc 0.99999, rel-L2 1e-4 | pcc 0.99, rel-L2 0.15 | pcc 0.97, rel-L2 0.25 | pcc 0.93, rel-L2 0.4 | exact |
//!
//! Notes: the bf16 attention preset allows rel-L2 5e-2 because a correct bf16 SDPA on a
//! Wormhole is that far from the f32 reference by design — approximate exp (±3%), P and the
//! running sum/output in bf16 — and TT measures its legacy kernel at ≈ 2.5% rel-L2 against
//! FP64 (TT_NUMERICS §4.7, §5); the emulator's bf16 SDPA on pi0-tiny lands at 1.5–2.7%. Its
//! PCC stays at 0.999 (2.7% noise is PCC ≈ 0.9996), so a real attention bug still fails.
//! Every other bf16 class keeps 1e-2: storage rounding alone is ≈ 2.3e-3 (2^-8/√3), bf16-Dst
//! matmuls, norms with approximate rsqrt and RoPE with bf16 tables stay below 8e-3, while a
//! weight quantised to bfloat4_b (≈ 10% relative error) fails it by an order of magnitude.
//!
//! A TT "fp32" matmul is TF32 × TF32 on the FPU (TT_NUMERICS §1.2), so device runs in
//! fp32 need an override of the f32 matmul preset. Eltwise ops in device dtypes are gated by
//! PCC/rel-L2 rather than ULP because SFPU approximations (exp, GELU, reciprocal) have absolute
//! errors near zero where ULP distances explode. Every preset carries atol/rtol: they define the
//! reported allclose fraction and the degenerate fallback of [`judge`](crate::harness::metrics::judge)
//! (constant or one-element tensors, where PCC is undefined).
//!
//! Module gates (minimum chained PCC of a module's outputs, in the style of TT's model tests:
//! block 0.99, end to end 0.97): every module 0.99, `pi0` (the full 10-step sampler) 0.97 —
//! stricter than TT's own pi0 gate of 0.93 so regressions show early; set `pi0 = 0.93` to match
//! TT. Unknown module names get 0.99.
//!
//! # TOML overrides
//!
//! A file overlays the defaults; later entries win. Keys: `pcc_min`, `rel_l2_max`, `ulp_max`,
//! `allclose_min` (a number, or `"off"` to drop the criterion), `atol`, `rtol` (numbers),
//! `exact` (bool). Unknown keys, classes, dtypes and modules are errors naming the key and line.
//!
//! ```toml
//! [modules]            # chained gate per module (min PCC of module outputs)
//! siglip = 0.99
//! pi0 = 0.97
//!
//! [classes.matmul]     # per op-class preset overrides: every dtype, local and chained
//! pcc_min = 0.9999
//! rel_l2_max = 1e-3
//!
//! [classes.matmul.bf16]  # one dtype of a class (f32, bf16, bfloat8_b, bfloat4_b, u32)
//! pcc_min = 0.998
//!
//! [[override]]         # glob over op names; later entries win
//! pattern = "vlm.layers.*.mlp.*"
//! pcc_min = 0.995
//! check = "local"      # "local", "chained" or "both" (default both)
//!
//! [[override]]         # optional filters: class, dtype; `module` (chained checks only)
//! module = "expert"
//! class = "attention"
//! dtype = "bfloat8_b"
//! rel_l2_max = "off"
//! ```
//!
//! Order of application for one op: preset → `[classes.<class>]` → `[classes.<class>.<dtype>]`
//! → every matching `[[override]]` in file order. `pattern` is a glob over the full op name
//! (`*` also matches dots; default `*`); an override with `module` applies only to chained checks
//! (local checks are keyed by op alone), so its `check` must be `"chained"` or absent.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use toml::Spanned;

use crate::backend::OpClass;
use crate::modules::ModuleId;
use crate::tensor::DType;

/// What one check requires. Unset (`None`) criteria are not checked; see
/// [`judge`](crate::harness::metrics::judge) for the exact rules and the degenerate fallback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Minimum PCC.
    pub pcc_min: Option<f64>,
    /// Maximum ‖d − g‖ / ‖g‖.
    pub rel_l2_max: Option<f64>,
    /// Maximum ULP distance in the device dtype.
    pub ulp_max: Option<f64>,
    /// Minimum fraction of elements with |d − g| ≤ atol + rtol·|g|.
    pub allclose_min: Option<f64>,
    /// Absolute tolerance of the allclose fraction (and of the degenerate fallback).
    pub atol: f64,
    /// Relative tolerance of the allclose fraction (and of the degenerate fallback).
    pub rtol: f64,
    /// Require equal values (max |d − g| = 0; −0 equals +0, matched NaN/Inf are equal).
    pub exact: bool,
}

impl Tolerance {
    /// Exact equality, nothing else.
    pub fn exact() -> Tolerance {
        Tolerance {
            pcc_min: None,
            rel_l2_max: None,
            ulp_max: None,
            allclose_min: None,
            atol: 0.0,
            rtol: 0.0,
            exact: true,
        }
    }

    /// A PCC + rel-L2 gate with the allclose parameters of its degenerate fallback.
    pub fn pcc_rel_l2(pcc_min: f64, rel_l2_max: f64, atol: f64, rtol: f64) -> Tolerance {
        Tolerance {
            pcc_min: Some(pcc_min),
            rel_l2_max: Some(rel_l2_max),
            ulp_max: None,
            allclose_min: None,
            atol,
            rtol,
            exact: false,
        }
    }

    /// Every element within atol + rtol·|g|.
    pub fn allclose(atol: f64, rtol: f64) -> Tolerance {
        Tolerance {
            allclose_min: Some(1.0),
            atol,
            rtol,
            exact: false,
            ..Tolerance::exact()
        }
    }
}

/// Which check a tolerance is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Local,
    Chained,
}

/// The built-in preset (see the module docs for the tables).
fn preset(check: Check, class: OpClass, dtype: DType) -> Tolerance {
    use DType::*;
    let movement = class == OpClass::DataMovement;
    match (check, dtype) {
        (_, U32) => Tolerance::exact(),
        (Check::Local, F32) => match class {
            OpClass::DataMovement => Tolerance::exact(),
            OpClass::Eltwise => Tolerance::allclose(1e-6, 1e-5),
            OpClass::Matmul | OpClass::Norm | OpClass::Attention => {
                Tolerance::pcc_rel_l2(0.99999, 1e-4, 1e-5, 1e-4)
            }
        },
        (Check::Local, Bf16) if movement => Tolerance {
            ulp_max: Some(1.0),
            atol: 0.0,
            rtol: 2f64.powi(-7),
            exact: false,
            ..Tolerance::exact()
        },
        (Check::Local, Bf16) if class == OpClass::Attention => {
            Tolerance::pcc_rel_l2(0.999, 5e-2, 1e-3, 1.6e-2)
        }
        (Check::Local, Bf16) => Tolerance::pcc_rel_l2(0.999, 1e-2, 1e-3, 1.6e-2),
        (Check::Local, Bfloat8B) => Tolerance::pcc_rel_l2(0.99, 0.15, 4e-3, 3.2e-2),
        (Check::Local, Bfloat4B) => Tolerance::pcc_rel_l2(0.97, 0.25, 3e-2, 0.25),
        // The issue's requirement for the reference backend against torch: every op chained
        // PCC ≥ 0.99999 and rel-L2 ≤ 1e-4.
        (Check::Chained, F32) => Tolerance::pcc_rel_l2(0.99999, 1e-4, 1e-5, 1e-4),
        (Check::Chained, Bf16) => Tolerance::pcc_rel_l2(0.99, 0.15, 1e-2, 3.2e-2),
        (Check::Chained, Bfloat8B) => Tolerance::pcc_rel_l2(0.97, 0.25, 2e-2, 6.4e-2),
        (Check::Chained, Bfloat4B) => Tolerance::pcc_rel_l2(0.93, 0.4, 5e-2, 0.25),
    }
}

/// Gate of a module without an explicit one.
pub const DEFAULT_MODULE_GATE: f64 = 0.99;

fn default_gate(m: ModuleId) -> f64 {
    match m {
        ModuleId::Pi0 => 0.97,
        _ => DEFAULT_MODULE_GATE,
    }
}

/// Tolerance presets, module gates and the overrides of a TOML file.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// Where the overrides came from: `None` for built-in defaults.
    source: Option<Source>,
    gates: Vec<(ModuleId, f64)>,
    n_gates: usize,
    classes: Vec<ClassOverlay>,
    overrides: Vec<Override>,
}

#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Text,
}

#[derive(Debug, Clone)]
struct ClassOverlay {
    class: OpClass,
    dtype: Option<DType>,
    overlay: Overlay,
}

#[derive(Debug, Clone)]
struct Override {
    matcher: GlobMatcher,
    module: Option<GlobMatcher>,
    class: Option<OpClass>,
    dtype: Option<DType>,
    scope: Scope,
    overlay: Overlay,
}

/// Field changes of one table: `Some(None)` drops a criterion.
#[derive(Debug, Clone, Default)]
struct Overlay {
    pcc_min: Option<Option<f64>>,
    rel_l2_max: Option<Option<f64>>,
    ulp_max: Option<Option<f64>>,
    allclose_min: Option<Option<f64>>,
    atol: Option<f64>,
    rtol: Option<f64>,
    exact: Option<bool>,
}

impl Overlay {
    fn apply(&self, t: &mut Tolerance) {
        let set = |dst: &mut Option<f64>, v: Option<Option<f64>>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut t.pcc_min, self.pcc_min);
        set(&mut t.rel_l2_max, self.rel_l2_max);
        set(&mut t.ulp_max, self.ulp_max);
        set(&mut t.allclose_min, self.allclose_min);
        if let Some(v) = self.atol {
            t.atol = v;
        }
        if let Some(v) = self.rtol {
            t.rtol = v;
        }
        if let Some(v) = self.exact {
            t.exact = v;
        }
    }

    fn is_empty(&self) -> bool {
        self.pcc_min.is_none()
            && self.rel_l2_max.is_none()
            && self.ulp_max.is_none()
            && self.allclose_min.is_none()
            && self.atol.is_none()
            && self.rtol.is_none()
            && self.exact.is_none()
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::defaults()
    }
}

impl Thresholds {
    /// The built-in presets and module gates (see the module docs).
    pub fn defaults() -> Thresholds {
        Thresholds {
            source: None,
            gates: ModuleId::ALL
                .iter()
                .map(|&m| (m, default_gate(m)))
                .collect(),
            n_gates: 0,
            classes: Vec::new(),
            overrides: Vec::new(),
        }
    }

    /// Parses a TOML overrides text (format in the module docs) and overlays it onto the
    /// defaults.
    pub fn from_toml_str(s: &str) -> Result<Thresholds, ThresholdsError> {
        parse(s, None)
    }

    /// Reads and parses a TOML overrides file; errors name the file and the line and key.
    pub fn load(path: &Path) -> Result<Thresholds, ThresholdsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ThresholdsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        parse(&text, Some(path))
    }

    /// Tolerance of the local (isolation) check of an op.
    pub fn local(&self, op_name: &str, class: OpClass, dtype: DType) -> Tolerance {
        self.resolve(Check::Local, op_name, None, class, dtype)
    }

    /// Tolerance of the chained (against the golden) check of an op of `module`.
    pub fn chained(&self, op_name: &str, module: &str, class: OpClass, dtype: DType) -> Tolerance {
        self.resolve(Check::Chained, op_name, Some(module), class, dtype)
    }

    /// Minimum chained PCC of the outputs of `module`.
    pub fn module_gate(&self, module: &str) -> f64 {
        self.gates
            .iter()
            .find(|(m, _)| m.as_str() == module)
            .map_or(DEFAULT_MODULE_GATE, |&(_, g)| g)
    }

    /// One line for report headers: `defaults`, or where the overrides came from and how many.
    pub fn describe(&self) -> String {
        let origin = match &self.source {
            None => return "defaults".to_string(),
            Some(Source::File(p)) => p.display().to_string(),
            Some(Source::Text) => "inline TOML".to_string(),
        };
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        format!(
            "{origin}: {}, {}, {} over the defaults",
            count(self.n_gates, "module gate"),
            count(self.classes.len(), "class preset"),
            count(self.overrides.len(), "op override"),
        )
    }

    fn resolve(
        &self,
        check: Check,
        op_name: &str,
        module: Option<&str>,
        class: OpClass,
        dtype: DType,
    ) -> Tolerance {
        let mut t = preset(check, class, dtype);
        for c in self
            .classes
            .iter()
            .filter(|c| c.class == class && c.dtype.is_none())
        {
            c.overlay.apply(&mut t);
        }
        for c in self
            .classes
            .iter()
            .filter(|c| c.class == class && c.dtype == Some(dtype))
        {
            c.overlay.apply(&mut t);
        }
        for o in &self.overrides {
            let scope_ok = match (o.scope, check) {
                (Scope::Both, _) => true,
                (Scope::Local, c) => c == Check::Local,
                (Scope::Chained, c) => c == Check::Chained,
            };
            let module_ok = match (&o.module, module) {
                (None, _) => true,
                (Some(m), Some(name)) => m.is_match(name),
                (Some(_), None) => false,
            };
            if scope_ok
                && module_ok
                && o.class.is_none_or(|c| c == class)
                && o.dtype.is_none_or(|d| d == dtype)
                && o.matcher.is_match(op_name)
            {
                o.overlay.apply(&mut t);
            }
        }
        t
    }
}

/// A thresholds file could not be used.
#[derive(Debug, Error)]
pub enum ThresholdsError {
    #[error("cannot read thresholds file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad TOML, an unknown key or an out-of-range value.
    #[error("{}{}: {message}", origin(path.as_deref()), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// 1-based line of the offending key or value, when known.
        line: Option<usize>,
        message: String,
    },
}

fn origin(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("invalid thresholds file `{}`", p.display()),
        None => "invalid thresholds TOML".to_string(),
    }
}

// ---- TOML schema -------------------------------------------------------------------------

/// A criterion value: a number, or `"off"` to drop the criterion.
#[derive(Debug, Clone, Copy)]
enum Setting {
    Off,
    Value(f64),
}

impl<'de> Deserialize<'de> for Setting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Setting, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Setting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a number or "off""#)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Setting, E> {
                Ok(Setting::Value(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Setting, E> {
                Ok(Setting::Value(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Setting, E> {
                Ok(Setting::Value(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Setting, E> {
                if v == "off" {
                    Ok(Setting::Off)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A plain number (integers accepted).
#[derive(Debug, Clone, Copy)]
struct Num(f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        match Setting::deserialize(d)? {
            Setting::Value(v) => Ok(Num(v)),
            Setting::Off => Err(de::Error::custom("expected a number, found \"off\"")),
        }
    }
}

/// Op class as written in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClassKey {
    DataMovement,
    Eltwise,
    Matmul,
    Norm,
    Attention,
}

impl ClassKey {
    fn class(self) -> OpClass {
        match self {
            ClassKey::DataMovement => OpClass::DataMovement,
            ClassKey::Eltwise => OpClass::Eltwise,
            ClassKey::Matmul => OpClass::Matmul,
            ClassKey::Norm => OpClass::Norm,
            ClassKey::Attention => OpClass::Attention,
        }
    }
}

/// `check = …` of an override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Scope {
    Local,
    Chained,
    Both,
}

/// Declares a TOML table holding the tolerance fields plus `extra` fields.
macro_rules! tolerance_table {
    ($name:ident { $($extra:tt)* }) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            #[serde(default)]
            pcc_min: Option<Spanned<Setting>>,
            #[serde(default)]
            rel_l2_max: Option<Spanned<Setting>>,
            #[serde(default)]
            ulp_max: Option<Spanned<Setting>>,
            #[serde(default)]
            allclose_min: Option<Spanned<Setting>>,
            #[serde(default)]
            atol: Option<Spanned<Num>>,
            #[serde(default)]
            rtol: Option<Spanned<Num>>,
            #[serde(default)]
            exact: Option<bool>,
            $($extra)*
        }

        impl $name {
            fn overlay(&self, cx: &Cx<'_>, table: &str) -> Result<Overlay, ThresholdsError> {
                Ok(Overlay {
                    pcc_min: cx.setting(&self.pcc_min, table, "pcc_min", -1.0..=1.0)?,
                    rel_l2_max: cx.setting(&self.rel_l2_max, table, "rel_l2_max", 0.0..=f64::MAX)?,
                    ulp_max: cx.setting(&self.ulp_max, table, "ulp_max", 0.0..=f64::MAX)?,
                    allclose_min: cx.setting(&self.allclose_min, table, "allclose_min", 0.0..=1.0)?,
                    atol: cx.number(&self.atol, table, "atol")?,
                    rtol: cx.number(&self.rtol, table, "rtol")?,
                    exact: self.exact,
                })
            }
        }
    };
}

tolerance_table!(FieldsToml {});

tolerance_table!(ClassToml {
    #[serde(default)]
    f32: Option<FieldsToml>,
    #[serde(default)]
    bf16: Option<FieldsToml>,
    #[serde(default)]
    bfloat8_b: Option<FieldsToml>,
    #[serde(default)]
    bfloat4_b: Option<FieldsToml>,
    #[serde(default)]
    u32: Option<FieldsToml>,
});

tolerance_table!(OverrideToml {
    #[serde(default)]
    pattern: Option<Spanned<String>>,
    #[serde(default)]
    module: Option<Spanned<String>>,
    #[serde(default)]
    class: Option<ClassKey>,
    #[serde(default)]
    dtype: Option<DType>,
    #[serde(default)]
    check: Option<Spanned<Scope>>,
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    modules: BTreeMap<Spanned<String>, Spanned<Num>>,
    #[serde(default)]
    classes: BTreeMap<ClassKey, ClassToml>,
    #[serde(default, rename = "override")]
    overrides: Vec<Spanned<OverrideToml>>,
}

/// Parsing context: the text and its file, for error locations.
struct Cx<'a> {
    text: &'a str,
    path: Option<&'a Path>,
}

impl Cx<'_> {
    fn error(&self, span: Option<Range<usize>>, message: String) -> ThresholdsError {
        let line = span.map(|s| {
            let end = s.start.min(self.text.len());
            self.text.as_bytes()[..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        ThresholdsError::Invalid {
            path: self.path.map(Path::to_path_buf),
            line,
            message,
        }
    }

    fn setting(
        &self,
        v: &Option<Spanned<Setting>>,
        table: &str,
        key: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Option<Option<f64>>, ThresholdsError> {
        let Some(v) = v else { return Ok(None) };
        match *v.get_ref() {
            Setting::Off => Ok(Some(None)),
            Setting::Value(x) if range.contains(&x) => Ok(Some(Some(x))),
            Setting::Value(x) => Err(self.error(
                Some(v.span()),
                format!(
                    "{table}{key} = {x} is outside [{}, {}]",
                    range.start(),
                    if *range.end() == f64::MAX {
                        "∞".to_string()
                    } else {
                        range.end().to_string()
                    }
                ),
            )),
        }
    }

    fn number(
        &self,
        v: &Option<Spanned<Num>>,
        table: &str,
        key: &str,
    ) -> Result<Option<f64>, ThresholdsError> {
        let Some(v) = v else { return Ok(None) };
        let x = v.get_ref().0;
        if x >= 0.0 && x.is_finite() {
            Ok(Some(x))
        } else {
            Err(self.error(
                Some(v.span()),
                format!("{table}{key} = {x} must be a finite number ≥ 0"),
            ))
        }
    }

    fn glob(&self, s: &Spanned<String>, what: &str) -> Result<GlobMatcher, ThresholdsError> {
        Glob::new(s.get_ref())
            .map(|g| g.compile_matcher())
            .map_err(|e| self.error(Some(s.span()), format!("bad {what} glob: {e}")))
    }
}

fn parse(text: &str, path: Option<&Path>) -> Result<Thresholds, ThresholdsError> {
    let cx = Cx { text, path };
    let file: FileToml =
        toml::from_str(text).map_err(|e| cx.error(e.span(), e.message().to_string()))?;

    let mut th = Thresholds::defaults();
    th.source = Some(match path {
        Some(p) => Source::File(p.to_path_buf()),
        None => Source::Text,
    });

    for (name, gate) in &file.modules {
        let Some(id) = ModuleId::ALL.iter().find(|m| m.as_str() == name.get_ref()) else {
            let known: Vec<&str> = ModuleId::ALL.iter().map(|m| m.as_str()).collect();
            return Err(cx.error(
                Some(name.span()),
                format!(
                    "unknown module `{}` in [modules] (known: {})",
                    name.get_ref(),
                    known.join(", ")
                ),
            ));
        };
        let g = gate.get_ref().0;
        if !(-1.0..=1.0).contains(&g) {
            return Err(cx.error(
                Some(gate.span()),
                format!("modules.{} = {g} is outside [-1, 1]", name.get_ref()),
            ));
        }
        if let Some(slot) = th.gates.iter_mut().find(|(m, _)| m == id) {
            slot.1 = g;
        }
        th.n_gates += 1;
    }

    for (key, table) in &file.classes {
        let class = key.class();
        let prefix = format!("classes.{}.", class.as_str());
        let overlay = table.overlay(&cx, &prefix)?;
        if !overlay.is_empty() {
            th.classes.push(ClassOverlay {
                class,
                dtype: None,
                overlay,
            });
        }
        let per_dtype = [
            (DType::F32, &table.f32),
            (DType::Bf16, &table.bf16),
            (DType::Bfloat8B, &table.bfloat8_b),
            (DType::Bfloat4B, &table.bfloat4_b),
            (DType::U32, &table.u32),
        ];
        for (dtype, sub) in per_dtype {
            if let Some(sub) = sub {
                let prefix = format!("classes.{}.{}.", class.as_str(), dtype.as_str());
                th.classes.push(ClassOverlay {
                    class,
                    dtype: Some(dtype),
                    overlay: sub.overlay(&cx, &prefix)?,
                });
            }
        }
    }

    for (i, entry) in file.overrides.iter().enumerate() {
        let span = entry.span();
        let o = entry.get_ref();
        let table = format!("override #{}: ", i + 1);
        let overlay = o.overlay(&cx, &table)?;
        if overlay.is_empty() {
            return Err(cx.error(
                Some(span),
                format!("{table}sets no tolerance field (pcc_min, rel_l2_max, ulp_max, allclose_min, atol, rtol, exact)"),
            ));
        }
        let matcher = match &o.pattern {
            Some(p) => cx.glob(p, "pattern")?,
            None => Glob::new("*").expect("`*` is a glob").compile_matcher(),
        };
        let module = o
            .module
            .as_ref()
            .map(|m| cx.glob(m, "module"))
            .transpose()?;
        let scope = match (&o.check, module.is_some()) {
            (None, false) => Scope::Both,
            (None, true) => Scope::Chained,
            (Some(c), true) if *c.get_ref() != Scope::Chained => {
                return Err(cx.error(
                    Some(c.span()),
                    format!("{table}`module` restricts an override to chained checks, so `check` must be \"chained\""),
                ))
            }
            (Some(c), _) => *c.get_ref(),
        };
        th.overrides.push(Override {
            matcher,
            module,
            class: o.class.map(ClassKey::class),
            dtype: o.dtype,
            scope,
            overlay,
        });
    }
    Ok(th)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the module docs, verbatim.
    const EXAMPLE: &str = r#"[modules]            # chained gate per module (min PCC of module outputs)
siglip = 0.99
pi0 = 0.97

[classes.matmul]     # per op-class preset overrides: every dtype, local and chained
pcc_min = 0.9999
rel_l2_max = 1e-3

[classes.matmul.bf16]  # one dtype of a class (f32, bf16, bfloat8_b, bfloat4_b, u32)
pcc_min = 0.998

[[override]]         # glob over op names; later entries win
pattern = "vlm.layers.*.mlp.*"
pcc_min = 0.995
check = "local"      # "local", "chained" or "both" (default both)

[[override]]         # optional filters: class, dtype; `module` (chained checks only)
module = "expert"
class = "attention"
dtype = "bfloat8_b"
rel_l2_max = "off"
"#;

    #[test]
    fn doc_example_is_in_sync_and_parses() {
        let src = include_str!("thresholds.rs");
        for line in EXAMPLE.lines() {
            let doc = if line.is_empty() {
                "//!".to_string()
            } else {
                format!("//! {line}")
            };
            assert!(src.contains(&doc), "module docs lack `{doc}`");
        }
        let t = Thresholds::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(t.module_gate("pi0"), 0.97);
        let m = t.local("vlm.layers.3.mlp.down", OpClass::Matmul, DType::Bf16);
        assert_eq!(m.pcc_min, Some(0.995));
        assert_eq!(m.rel_l2_max, Some(1e-3));
        let m = t.chained("vlm.layers.3.mlp.down", "vlm", OpClass::Matmul, DType::Bf16);
        assert_eq!(m.pcc_min, Some(0.998));
        let a = t.chained(
            "denoise.0.expert.layers.0.attn.sdpa",
            "expert",
            OpClass::Attention,
            DType::Bfloat8B,
        );
        assert_eq!(a.rel_l2_max, None);
        let a = t.local(
            "denoise.0.expert.layers.0.attn.sdpa",
            OpClass::Attention,
            DType::Bfloat8B,
        );
        assert_eq!(a.rel_l2_max, Some(0.15));
        assert!(t
            .describe()
            .starts_with("inline TOML: 2 module gates, 2 class presets, 2 op overrides"));
    }

    #[test]
    fn chained_is_looser_than_local_for_device_dtypes() {
        let t = Thresholds::defaults();
        for class in [
            OpClass::Eltwise,
            OpClass::Matmul,
            OpClass::Norm,
            OpClass::Attention,
        ] {
            for dtype in [DType::Bf16, DType::Bfloat8B, DType::Bfloat4B] {
                let l = t.local("x", class, dtype);
                let c = t.chained("x", "vlm", class, dtype);
                assert!(
                    c.pcc_min.unwrap() < l.pcc_min.unwrap(),
                    "{class:?} {dtype:?}"
                );
                assert!(
                    c.rel_l2_max.unwrap() > l.rel_l2_max.unwrap(),
                    "{class:?} {dtype:?}"
                );
            }
        }
    }

    #[test]
    fn bf16_attention_allows_the_flash_kernels_error_and_nothing_else_does() {
        let t = Thresholds::defaults();
        // A correct bf16 SDPA is ~2.5% rel-L2 from f32 (TT_NUMERICS §4.7): it passes locally,
        // while a bf16 matmul or norm at that error would fail.
        let a = t.local("vlm.layers.0.attn.sdpa", OpClass::Attention, DType::Bf16);
        assert_eq!((a.pcc_min, a.rel_l2_max), (Some(0.999), Some(5e-2)));
        for class in [OpClass::Matmul, OpClass::Norm, OpClass::Eltwise] {
            assert_eq!(t.local("x", class, DType::Bf16).rel_l2_max, Some(1e-2));
        }
    }

    #[test]
    fn f32_chained_meets_the_issue_requirement_for_every_class() {
        let t = Thresholds::defaults();
        for class in [
            OpClass::DataMovement,
            OpClass::Eltwise,
            OpClass::Matmul,
            OpClass::Norm,
            OpClass::Attention,
        ] {
            let c = t.chained("any.op", "siglip", class, DType::F32);
            assert_eq!(c.pcc_min, Some(0.99999));
            assert_eq!(c.rel_l2_max, Some(1e-4));
        }
        assert!(t.local("x", OpClass::DataMovement, DType::F32).exact);
        assert_eq!(t.describe(), "defaults");
    }
}
