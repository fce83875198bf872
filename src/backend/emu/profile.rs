//! Precision profiles: named presets and TOML files of op-name glob rules that set each op's
//! storage dtypes and compute-kernel config.
//!
//! # Presets
//!
//! | name | what it models |
//! |---|---|
//! | `exact` | f32 storage everywhere and the reference's f32 arithmetic (`math = "reference"`): must equal the `cpu` backend |
//! | `bf16-hifi2` | TT-NN's defaults for a bf16 model with no compute configs passed (the default profile): bf16 weights and activations; every op takes its own default config (TT_NUMERICS §3.5: matmul HiFi2, bf16 Dst, packer L1 acc; softmax/SDPA approximate exp; norms HiFi4 + approximate rsqrt; unfused GELU accurate) |
//! | `bf16-hifi4-fp32acc` | bf16 storage, every op HiFi4 with fp32 Dst accumulation, accurate SFPU functions, no packer L1 acc |
//! | `bfp8-lofi` | `bf16-hifi2` with bfloat8_b matmul weights (linear, patch conv) at LoFi |
//! | `bfp4-lofi` | `bf16-hifi2` with bfloat4_b matmul weights at LoFi |
//! | `pi0-tt` | the per-module choices of TT's pi0 port (TT_NUMERICS §8), on top of `bf16-hifi2` |
//!
//! Every bf16 preset keeps the timestep (`time`, `denoise.*.time`) and the position ids in
//! float32 and casts the time embedding to bf16: a bf16 timestep (0.9 → 0.8984375) would move
//! the highest-frequency sinusoid by radians, and positions above 256 are not bf16 integers.
//!
//! # TOML files
//!
//! ```toml
//! base = "bf16-hifi2"          # preset the rules are added to (default bf16-hifi2)
//! name = "bfp4-vlm5"           # shown as run.profile (default: the file name)
//!
//! [[op]]                       # later rules win; every key but `pattern` is optional
//! pattern = "vlm.layers.5.mlp.*"   # glob over op names (`*` also matches dots)
//! kind = "linear"              # only ops of these kinds (a name or a list)
//! weight_dtype = "bfloat4_b"   # f32, bf16, bfloat8_b, bfloat4_b
//! bias_dtype = "bf16"
//! dtype = "bf16"               # output (activation) dtype; default: the first input's
//! math_fidelity = "LoFi"       # LoFi, HiFi2, HiFi3, HiFi4; default: the op's TT-NN default
//! fp32_dest_acc_en = false
//! math_approx_mode = true
//! packer_l1_acc = false
//! core_grid = true             # matmul called with core_grid= (drops the default to LoFi)
//! sdpa_kernel = "flash"        # sdpa as the flash kernel, or "matmul_softmax"
//! memory = "l1"                # dram or l1 (interleaved)
//! math = "tensix"              # or "reference": the op's arithmetic is the cpu reference's
//! ```
//!
//! Unknown keys, dtypes, fidelities and kinds are errors naming the file and the line.
//!
//! # Weights
//!
//! A parameter gets its dtype when it is uploaded, by its checkpoint name: the name is mapped to
//! the op(s) that consume it ([`super::weights`]) and a rule applies when its pattern and kind
//! match any of them. Parameters ending in `.bias` take `bias_dtype`, all others
//! `weight_dtype`. Expert and suffix weights are shared by every denoise step, so they are
//! matched as `expert.…` / `suffix.…` and as `denoise.0.…` (a pattern naming another step
//! cannot give one step its own weights).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;
use toml::Spanned;

use crate::tensor::{DType, MemoryConfig};

/// TT-NN `MathFidelity` (TT_NUMERICS §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum MathFidelity {
    LoFi,
    HiFi2,
    HiFi3,
    HiFi4,
}

impl MathFidelity {
    /// Phases the FPU runs (LoFi 1, HiFi2 2, HiFi3 3, HiFi4 4).
    pub fn phases(self) -> usize {
        match self {
            MathFidelity::LoFi => 1,
            MathFidelity::HiFi2 => 2,
            MathFidelity::HiFi3 => 3,
            MathFidelity::HiFi4 => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MathFidelity::LoFi => "LoFi",
            MathFidelity::HiFi2 => "HiFi2",
            MathFidelity::HiFi3 => "HiFi3",
            MathFidelity::HiFi4 => "HiFi4",
        }
    }
}

impl fmt::Display for MathFidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an `sdpa` op is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpaKernel {
    /// `ttnn.transformer.scaled_dot_product_attention`: the streaming flash kernel (§4.7).
    Flash,
    /// `ttnn.matmul` (Q·Kᵀ), `ttnn.transformer.attention_softmax` (scale, mask, softmax with
    /// `numeric_stable = false`), `ttnn.matmul` (P·V) — the pre-SDPA composition.
    MatmulSoftmax,
}

impl SdpaKernel {
    pub fn as_str(self) -> &'static str {
        match self {
            SdpaKernel::Flash => "flash",
            SdpaKernel::MatmulSoftmax => "matmul_softmax",
        }
    }
}

/// Whose arithmetic an op runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Math {
    /// The Tensix model of this module (fidelity, Dst, SFPU approximations).
    Tensix,
    /// The cpu reference's f32 arithmetic; only the storage dtype is emulated.
    Reference,
}

/// What one rule sets (`None`: left as before).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub math: Option<Math>,
    pub weight_dtype: Option<DType>,
    pub bias_dtype: Option<DType>,
    pub dtype: Option<DType>,
    pub math_fidelity: Option<MathFidelity>,
    pub fp32_dest_acc_en: Option<bool>,
    pub math_approx_mode: Option<bool>,
    pub packer_l1_acc: Option<bool>,
    pub core_grid: Option<bool>,
    pub sdpa_kernel: Option<SdpaKernel>,
    pub memory: Option<MemoryConfig>,
}

impl Settings {
    fn overlay(&mut self, o: &Settings) {
        macro_rules! take {
            ($($f:ident),*) => { $( if o.$f.is_some() { self.$f = o.$f; } )* };
        }
        take!(
            math,
            weight_dtype,
            bias_dtype,
            dtype,
            math_fidelity,
            fp32_dest_acc_en,
            math_approx_mode,
            packer_l1_acc,
            core_grid,
            sdpa_kernel,
            memory
        );
    }

    /// The settings that are set, as JSON (for the precision record).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(v) = self.math {
            m.insert(
                "math".into(),
                json!(match v {
                    Math::Tensix => "tensix",
                    Math::Reference => "reference",
                }),
            );
        }
        let dt = |d: Option<DType>| d.map(|d| json!(d.as_str()));
        for (k, v) in [
            ("weight_dtype", dt(self.weight_dtype)),
            ("bias_dtype", dt(self.bias_dtype)),
            ("dtype", dt(self.dtype)),
            (
                "math_fidelity",
                self.math_fidelity.map(|f| json!(f.as_str())),
            ),
            ("fp32_dest_acc_en", self.fp32_dest_acc_en.map(|b| json!(b))),
            ("math_approx_mode", self.math_approx_mode.map(|b| json!(b))),
            ("packer_l1_acc", self.packer_l1_acc.map(|b| json!(b))),
            ("core_grid", self.core_grid.map(|b| json!(b))),
            ("sdpa_kernel", self.sdpa_kernel.map(|k| json!(k.as_str()))),
            ("memory", self.memory.map(|m| json!(m.as_string()))),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        }
        Value::Object(m)
    }
}

/// One glob rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub pattern: String,
    matcher: GlobMatcher,
    /// Op kinds it applies to (empty: all).
    pub kinds: Vec<String>,
    pub set: Settings,
}

impl Rule {
    fn new(pattern: &str, kinds: &[&str], set: Settings) -> Rule {
        Rule {
            pattern: pattern.to_string(),
            matcher: Glob::new(pattern)
                .expect("preset globs are valid")
                .compile_matcher(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            set,
        }
    }

    /// Whether the rule applies to an op named `name` of `kind` (`None`: an upload of an
    /// activation, which rules with a kind filter never match).
    fn applies(&self, name: &str, kind: Option<&str>) -> bool {
        let kind_ok =
            self.kinds.is_empty() || kind.is_some_and(|k| self.kinds.iter().any(|x| x == k));
        kind_ok && self.matcher.is_match(name)
    }
}

/// A precision profile: a name, the dtype of uploaded activations, and rules in order.
#[derive(Debug, Clone)]
pub struct Profile {
    name: String,
    /// The preset a file was layered on.
    base: Option<String>,
    pub activation_dtype: DType,
    rules: Vec<Rule>,
}

/// Names of the built-in presets, the default first.
pub const PRESETS: [&str; 6] = [
    "bf16-hifi2",
    "exact",
    "bf16-hifi4-fp32acc",
    "bfp8-lofi",
    "bfp4-lofi",
    "pi0-tt",
];

/// Settings builder for the presets.
fn s() -> Settings {
    Settings::default()
}

impl Settings {
    fn weight(mut self, d: DType) -> Self {
        self.weight_dtype = Some(d);
        self
    }
    fn out(mut self, d: DType) -> Self {
        self.dtype = Some(d);
        self
    }
    fn fidelity(mut self, f: MathFidelity) -> Self {
        self.math_fidelity = Some(f);
        self
    }
    fn fp32(mut self, b: bool) -> Self {
        self.fp32_dest_acc_en = Some(b);
        self
    }
    fn approx(mut self, b: bool) -> Self {
        self.math_approx_mode = Some(b);
        self
    }
    fn l1acc(mut self, b: bool) -> Self {
        self.packer_l1_acc = Some(b);
        self
    }
    fn grid(mut self, b: bool) -> Self {
        self.core_grid = Some(b);
        self
    }
    fn mem(mut self, m: MemoryConfig) -> Self {
        self.memory = Some(m);
        self
    }
}

/// The rules every bf16 preset starts with.
fn bf16_base() -> Vec<Rule> {
    let mut all = s().weight(DType::Bf16);
    all.math = Some(Math::Tensix);
    all.bias_dtype = Some(DType::Bf16);
    vec![
        Rule::new("*", &[], all),
        Rule::new("{time,*.time}", &[], s().out(DType::F32)),
        Rule::new("*time_embed", &[], s().out(DType::Bf16)),
        Rule::new("*positions", &[], s().out(DType::F32)),
        // Embedding ids are uint32 ROW_MAJOR (TT_NUMERICS §2.3).
        Rule::new("tokens", &[], s().out(DType::U32)),
    ]
}

const MATMUL_KINDS: [&str; 2] = ["linear", "conv2d_patch"];

/// The per-module choices of TT's pi0 port (TT_NUMERICS §8).
fn pi0_tt_rules() -> Vec<Rule> {
    use DType::{Bf16, Bfloat8B};
    use MathFidelity::{HiFi2, HiFi4};
    let gemma = "{vlm,expert,denoise.*.expert}.layers.*";
    let g = |leaf: &str| format!("{gemma}.{leaf}");
    vec![
        // SigLIP (`ttnn_siglip.py`).
        Rule::new(
            "siglip.patch_embed",
            &[],
            s().weight(Bf16)
                .fidelity(HiFi2)
                .approx(true)
                .fp32(true)
                .l1acc(true)
                .out(Bf16),
        ),
        Rule::new(
            "siglip.layers.*.attn.{q,k,v,out}",
            &[],
            s().weight(Bf16)
                .fidelity(HiFi2)
                .fp32(true)
                .l1acc(true)
                .out(Bfloat8B),
        ),
        Rule::new(
            "siglip.layers.*.attn.sdpa",
            &[],
            s().fidelity(HiFi2).fp32(true).approx(true),
        ),
        Rule::new(
            "siglip.layers.*.mlp.fc{1,2}",
            &[],
            s().weight(Bfloat8B)
                .fidelity(HiFi2)
                .fp32(true)
                .out(Bfloat8B),
        ),
        // Fused GELU `(UnaryOpType.GELU, True)`: approximate.
        Rule::new("siglip.layers.*.mlp.act", &[], s().approx(true)),
        Rule::new("siglip.layers.*.*_residual", &[], s().mem(MemoryConfig::L1)),
        // Gemma (`ttnn_gemma.py`), VLM and expert alike.
        Rule::new(
            &g("attn.{q,k,v}"),
            &[],
            s().fidelity(HiFi2).fp32(false).out(Bfloat8B),
        ),
        Rule::new(
            &g("attn.sdpa"),
            &[],
            s().fidelity(HiFi2).fp32(true).approx(false),
        ),
        Rule::new(
            &g("attn.o"),
            &[],
            s().fidelity(HiFi4).fp32(true).out(Bfloat8B),
        ),
        Rule::new(
            &g("mlp.{gate,up,down}"),
            &[],
            s().weight(Bfloat8B).grid(true).fp32(false).out(Bfloat8B),
        ),
        // `activation="gelu"`: accurate since tt-metal PR #29322.
        Rule::new(&g("mlp.act"), &[], s().approx(false)),
    ]
}

impl Profile {
    /// A built-in preset by name.
    pub fn preset(name: &str) -> Option<Profile> {
        let mut rules = match name {
            "exact" => {
                let mut all = s().weight(DType::F32).out(DType::F32);
                all.math = Some(Math::Reference);
                all.bias_dtype = Some(DType::F32);
                return Some(Profile {
                    name: name.into(),
                    base: None,
                    activation_dtype: DType::F32,
                    rules: vec![
                        Rule::new("*", &[], all),
                        Rule::new("tokens", &[], s().out(DType::U32)),
                    ],
                });
            }
            "bf16-hifi2" | "bf16-hifi4-fp32acc" | "bfp8-lofi" | "bfp4-lofi" | "pi0-tt" => {
                bf16_base()
            }
            _ => return None,
        };
        match name {
            "bf16-hifi4-fp32acc" => rules.push(Rule::new(
                "*",
                &[],
                s().fidelity(MathFidelity::HiFi4)
                    .fp32(true)
                    .approx(false)
                    .l1acc(false),
            )),
            "bfp8-lofi" => rules.push(Rule::new(
                "*",
                &MATMUL_KINDS,
                s().weight(DType::Bfloat8B).fidelity(MathFidelity::LoFi),
            )),
            "bfp4-lofi" => rules.push(Rule::new(
                "*",
                &MATMUL_KINDS,
                s().weight(DType::Bfloat4B).fidelity(MathFidelity::LoFi),
            )),
            "pi0-tt" => rules.extend(pi0_tt_rules()),
            _ => {}
        }
        Some(Profile {
            name: name.into(),
            base: None,
            activation_dtype: DType::Bf16,
            rules,
        })
    }

    /// `None` → the default preset, a path ending in `.toml` → that file, else a preset.
    pub fn by_name(spec: Option<&str>) -> Result<Profile, ProfileError> {
        match spec {
            None => Ok(Profile::preset(PRESETS[0]).expect("default preset exists")),
            Some(p) if p.ends_with(".toml") => Profile::load(Path::new(p)),
            Some(p) => Profile::preset(p).ok_or_else(|| ProfileError::Unknown {
                name: p.to_string(),
            }),
        }
    }

    /// Reads a TOML profile file (format in the module docs).
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let default_name = path.display().to_string();
        parse(&text, Some(path), &default_name)
    }

    /// Parses a TOML profile text.
    pub fn from_toml_str(text: &str, name: &str) -> Result<Profile, ProfileError> {
        parse(text, None, name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// The settings of an op (or, with `kind = None`, of an uploaded activation) and the
    /// patterns of the rules that set them.
    pub fn resolve(&self, names: &[&str], kind: Option<&str>) -> (Settings, Vec<String>) {
        let mut out = Settings::default();
        let mut matched = Vec::new();
        for r in &self.rules {
            if names.iter().any(|n| r.applies(n, kind)) {
                out.overlay(&r.set);
                matched.push(r.pattern.clone());
            }
        }
        (out, matched)
    }

    /// The settings of a parameter read by the ops `consumers` (name, kind): a rule applies
    /// when it matches any of them.
    pub fn resolve_consumers(&self, consumers: &[(&str, &str)]) -> (Settings, Vec<String>) {
        let mut out = Settings::default();
        let mut matched = Vec::new();
        for r in &self.rules {
            if consumers.iter().any(|(n, k)| r.applies(n, Some(k))) {
                out.overlay(&r.set);
                matched.push(r.pattern.clone());
            }
        }
        (out, matched)
    }

    /// The rules in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// Why a profile could not be built.
#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("unknown precision profile `{name}` (presets: {}; or a .toml file)", PRESETS.join(", "))]
    Unknown { name: String },
    #[error("read profile file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: {message}", origin(path.as_deref()), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        path: Option<PathBuf>,
        line: Option<usize>,
        message: String,
    },
}

fn origin(path: Option<&Path>) -> String {
    match path {
        Some(p) => format!("invalid profile file `{}`", p.display()),
        None => "invalid profile TOML".to_string(),
    }
}

// ---- TOML schema -------------------------------------------------------------------------

/// `kind = "linear"` or `kind = ["linear", "sdpa"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Kinds {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    pattern: Spanned<String>,
    #[serde(default)]
    kind: Option<Spanned<Kinds>>,
    #[serde(default)]
    weight_dtype: Option<Spanned<String>>,
    #[serde(default)]
    bias_dtype: Option<Spanned<String>>,
    #[serde(default)]
    dtype: Option<Spanned<String>>,
    #[serde(default)]
    math_fidelity: Option<Spanned<String>>,
    #[serde(default)]
    fp32_dest_acc_en: Option<bool>,
    #[serde(default)]
    math_approx_mode: Option<bool>,
    #[serde(default)]
    packer_l1_acc: Option<bool>,
    #[serde(default)]
    core_grid: Option<bool>,
    #[serde(default)]
    sdpa_kernel: Option<Spanned<String>>,
    #[serde(default)]
    memory: Option<Spanned<String>>,
    #[serde(default)]
    math: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    base: Option<Spanned<String>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "op")]
    ops: Vec<Spanned<RuleToml>>,
}

/// Op kinds a rule may name (the catalog's capture names).
const KINDS: [&str; 22] = [
    "linear",
    "conv2d_patch",
    "interpolate_bicubic",
    "layer_norm",
    "rms_norm",
    "add",
    "mul",
    "mul_scalar",
    "gelu",
    "silu",
    "embedding",
    "concat",
    "slice",
    "reshape",
    "expand",
    "repeat_interleave",
    "full",
    "rope",
    "sdpa",
    "attn_mask_2d",
    "positions",
    "time_embed",
];

struct Cx<'a> {
    text: &'a str,
    path: Option<&'a Path>,
}

impl Cx<'_> {
    fn error(&self, span: Option<Range<usize>>, message: String) -> ProfileError {
        let line = span.map(|s| {
            let end = s.start.min(self.text.len());
            self.text.as_bytes()[..end]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        ProfileError::Invalid {
            path: self.path.map(Path::to_path_buf),
            line,
            message,
        }
    }

    fn dtype(&self, v: &Option<Spanned<String>>, key: &str) -> Result<Option<DType>, ProfileError> {
        let Some(v) = v else { return Ok(None) };
        match DType::parse(v.get_ref()) {
            Some(DType::U32) | None => Err(self.error(
                Some(v.span()),
                format!(
                    "{key} = \"{}\" is not a float dtype (f32, bf16, bfloat8_b, bfloat4_b)",
                    v.get_ref()
                ),
            )),
            Some(d) => Ok(Some(d)),
        }
    }
}

fn parse(text: &str, path: Option<&Path>, default_name: &str) -> Result<Profile, ProfileError> {
    let cx = Cx { text, path };
    let file: FileToml =
        toml::from_str(text).map_err(|e| cx.error(e.span(), e.message().to_string()))?;
    let base_name = match &file.base {
        Some(b) => b.clone(),
        None => Spanned::new(0..0, PRESETS[0].to_string()),
    };
    let base = Profile::preset(base_name.get_ref()).ok_or_else(|| {
        cx.error(
            file.base.as_ref().map(|b| b.span()),
            format!(
                "base = \"{}\" is not a preset (presets: {})",
                base_name.get_ref(),
                PRESETS.join(", ")
            ),
        )
    })?;
    let mut profile = Profile {
        name: file
            .name
            .clone()
            .unwrap_or_else(|| default_name.to_string()),
        base: Some(base_name.get_ref().clone()),
        activation_dtype: base.activation_dtype,
        rules: base.rules,
    };
    for entry in &file.ops {
        let r = entry.get_ref();
        let glob = Glob::new(r.pattern.get_ref())
            .map_err(|e| cx.error(Some(r.pattern.span()), format!("bad pattern glob: {e}")))?;
        let kinds = match &r.kind {
            None => Vec::new(),
            Some(k) => {
                let list = match k.get_ref() {
                    Kinds::One(s) => vec![s.clone()],
                    Kinds::Many(v) => v.clone(),
                };
                if let Some(bad) = list.iter().find(|k| !KINDS.contains(&k.as_str())) {
                    return Err(cx.error(
                        Some(k.span()),
                        format!("unknown op kind `{bad}` (kinds: {})", KINDS.join(", ")),
                    ));
                }
                list
            }
        };
        let fidelity = match &r.math_fidelity {
            None => None,
            Some(f) => Some(match f.get_ref().to_ascii_lowercase().as_str() {
                "lofi" => MathFidelity::LoFi,
                "hifi2" => MathFidelity::HiFi2,
                "hifi3" => MathFidelity::HiFi3,
                "hifi4" => MathFidelity::HiFi4,
                _ => {
                    return Err(cx.error(
                        Some(f.span()),
                        format!(
                            "math_fidelity = \"{}\" is not LoFi, HiFi2, HiFi3 or HiFi4",
                            f.get_ref()
                        ),
                    ))
                }
            }),
        };
        let memory = match &r.memory {
            None => None,
            Some(m) => Some(match m.get_ref().to_ascii_lowercase().as_str() {
                "dram" => MemoryConfig::DRAM,
                "l1" => MemoryConfig::L1,
                _ => {
                    return Err(cx.error(
                        Some(m.span()),
                        format!("memory = \"{}\" is not dram or l1", m.get_ref()),
                    ))
                }
            }),
        };
        let math = match &r.math {
            None => None,
            Some(m) => Some(match m.get_ref().as_str() {
                "tensix" => Math::Tensix,
                "reference" => Math::Reference,
                other => {
                    return Err(cx.error(
                        Some(m.span()),
                        format!("math = \"{other}\" is not tensix or reference"),
                    ))
                }
            }),
        };
        let sdpa_kernel = match &r.sdpa_kernel {
            None => None,
            Some(k) => Some(match k.get_ref().as_str() {
                "flash" => SdpaKernel::Flash,
                "matmul_softmax" => SdpaKernel::MatmulSoftmax,
                other => {
                    return Err(cx.error(
                        Some(k.span()),
                        format!("sdpa_kernel = \"{other}\" is not flash or matmul_softmax"),
                    ))
                }
            }),
        };
        let set = Settings {
            math,
            weight_dtype: cx.dtype(&r.weight_dtype, "weight_dtype")?,
            bias_dtype: cx.dtype(&r.bias_dtype, "bias_dtype")?,
            dtype: cx.dtype(&r.dtype, "dtype")?,
            math_fidelity: fidelity,
            fp32_dest_acc_en: r.fp32_dest_acc_en,
            math_approx_mode: r.math_approx_mode,
            packer_l1_acc: r.packer_l1_acc,
            core_grid: r.core_grid,
            sdpa_kernel,
            memory,
        };
        if set == Settings::default() {
            return Err(cx.error(
                Some(entry.span()),
                format!(
                    "rule for `{}` sets nothing (weight_dtype, bias_dtype, dtype, math_fidelity, fp32_dest_acc_en, math_approx_mode, packer_l1_acc, core_grid, sdpa_kernel, memory, math)",
                    r.pattern.get_ref()
                ),
            ));
        }
        profile.rules.push(Rule {
            pattern: r.pattern.get_ref().clone(),
            matcher: glob.compile_matcher(),
            kinds,
            set,
        });
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the module docs, verbatim.
    const EXAMPLE: &str = r#"base = "bf16-hifi2"          # preset the rules are added to (default bf16-hifi2)
name = "bfp4-vlm5"           # shown as run.profile (default: the file name)

[[op]]                       # later rules win; every key but `pattern` is optional
pattern = "vlm.layers.5.mlp.*"   # glob over op names (`*` also matches dots)
kind = "linear"              # only ops of these kinds (a name or a list)
weight_dtype = "bfloat4_b"   # f32, bf16, bfloat8_b, bfloat4_b
bias_dtype = "bf16"
dtype = "bf16"               # output (activation) dtype; default: the first input's
math_fidelity = "LoFi"       # LoFi, HiFi2, HiFi3, HiFi4; default: the op's TT-NN default
fp32_dest_acc_en = false
math_approx_mode = true
packer_l1_acc = false
core_grid = true             # matmul called with core_grid= (drops the default to LoFi)
sdpa_kernel = "flash"        # sdpa as the flash kernel, or "matmul_softmax"
memory = "l1"                # dram or l1 (interleaved)
math = "tensix"              # or "reference": the op's arithmetic is the cpu reference's
"#;

    #[test]
    fn doc_example_is_in_sync_and_parses() {
        let src = include_str!("profile.rs");
        for line in EXAMPLE.lines() {
            let doc = if line.is_empty() {
                "//!".to_string()
            } else {
                format!("//! {line}")
            };
            assert!(src.contains(&doc), "module docs lack `{doc}`");
        }
        let p = Profile::from_toml_str(EXAMPLE, "x").unwrap();
        assert_eq!(p.name(), "bfp4-vlm5");
        assert_eq!(p.base(), Some("bf16-hifi2"));
        let (s, rules) = p.resolve(&["vlm.layers.5.mlp.up"], Some("linear"));
        assert_eq!(s.weight_dtype, Some(DType::Bfloat4B));
        assert_eq!(s.math_fidelity, Some(MathFidelity::LoFi));
        assert_eq!(s.memory, Some(MemoryConfig::L1));
        assert_eq!(rules.last().map(String::as_str), Some("vlm.layers.5.mlp.*"));
        let (s, _) = p.resolve(&["vlm.layers.5.mlp.act"], Some("gelu"));
        assert_eq!(s.weight_dtype, Some(DType::Bf16), "kind filter");
        let (s, _) = p.resolve(&["vlm.layers.4.mlp.up"], Some("linear"));
        assert_eq!(s.weight_dtype, Some(DType::Bf16));
        assert_eq!(s.math_fidelity, None, "op default");
    }

    #[test]
    fn presets_and_names() {
        for name in PRESETS {
            let p = Profile::by_name(Some(name)).unwrap();
            assert_eq!(p.name(), name);
        }
        assert_eq!(Profile::by_name(None).unwrap().name(), "bf16-hifi2");
        let e = Profile::by_name(Some("bf17")).unwrap_err().to_string();
        assert!(
            e.contains("bf17") && e.contains("pi0-tt") && e.contains("exact"),
            "{e}"
        );
        let exact = Profile::preset("exact").unwrap();
        let (s, _) = exact.resolve(&["vlm.layers.0.mlp.up"], Some("linear"));
        assert_eq!(s.math, Some(Math::Reference));
        assert_eq!(s.dtype, Some(DType::F32));
        let b4 = Profile::preset("bfp4-lofi").unwrap();
        let (s, _) = b4.resolve(&["siglip.patch_embed"], Some("conv2d_patch"));
        assert_eq!(s.weight_dtype, Some(DType::Bfloat4B));
        let (s, _) = b4.resolve(&["siglip.layers.0.ln1"], Some("layer_norm"));
        assert_eq!(s.weight_dtype, Some(DType::Bf16));
        let (s, _) = b4.resolve(&["denoise.3.time"], Some("full"));
        assert_eq!(s.dtype, Some(DType::F32));
        let tt = Profile::preset("pi0-tt").unwrap();
        let (s, _) = tt.resolve(&["denoise.4.expert.layers.2.mlp.down"], Some("linear"));
        assert_eq!(
            (s.weight_dtype, s.core_grid, s.dtype),
            (Some(DType::Bfloat8B), Some(true), Some(DType::Bfloat8B))
        );
        let (s, _) = tt.resolve(&["siglip.layers.3.attn.out"], Some("linear"));
        assert_eq!(s.dtype, Some(DType::Bfloat8B));
        assert_eq!(s.fp32_dest_acc_en, Some(true));
        let (s, _) = tt.resolve(&["vlm.layers.3.attn.o"], Some("linear"));
        assert_eq!(s.math_fidelity, Some(MathFidelity::HiFi4));
    }

    #[test]
    fn file_errors_name_the_line_and_key() {
        let e = Profile::from_toml_str("[[op]]\npattern = \"x\"\nweight_dtype = \"bf17\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("bf17"), "{e}");
        let e = Profile::from_toml_str("[[op]]\npattern = \"x\"\nfidelity = \"LoFi\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fidelity") && e.contains("line 3"), "{e}");
        let e = Profile::from_toml_str("base = \"nope\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("line 1"), "{e}");
        let e = Profile::from_toml_str("[[op]]\npattern = \"x\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sets nothing"), "{e}");
        let e = Profile::from_toml_str(
            "[[op]]\npattern = \"x\"\nkind = [\"lin\"]\ndtype=\"bf16\"\n",
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown op kind `lin`") && e.contains("line 3"),
            "{e}"
        );
        let e = Profile::from_toml_str("[[op]]\npattern = \"x\"\ndtype = \"u32\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a float dtype"), "{e}");
        let p = Profile::from_toml_str("", "plain.toml").unwrap();
        assert_eq!(p.name(), "plain.toml");
    }
}
