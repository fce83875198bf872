//! Plots of real runs on goldens/pi0-tiny: a lossy device (bf16 outputs, one coarse kernel)
//! with local checks and accumulated drift, decoded (PNG) and parsed (SVG) back.
//! Set `PCCSCOPE_PLOT_DIR` to keep the files for a look.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use pccscope::modules::ModuleId;
use pccscope::report::{self, view::ErrorBasis, Format, Options};

const CHAINED: [u8; 3] = [31, 119, 180];
const LOCAL: [u8; 3] = [230, 110, 0];
const FAIL: [u8; 3] = [214, 39, 40];

fn out_dir(name: &str, tmp: &Path) -> PathBuf {
    match std::env::var_os("PCCSCOPE_PLOT_DIR") {
        Some(d) => PathBuf::from(d).join(name),
        None => tmp.join(name),
    }
}

/// A decoded RGB image.
pub struct Png {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Png {
    pub fn decode(path: &Path) -> Png {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut dec = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
        let mut buf = vec![0; dec.output_buffer_size()];
        let info = dec.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
        buf.truncate(info.buffer_size());
        Png {
            width: info.width,
            height: info.height,
            rgb: buf,
        }
    }

    pub fn count(&self, c: [u8; 3]) -> usize {
        self.rgb.chunks_exact(3).filter(|p| *p == c).count()
    }

    /// Fraction of pixels that are not white.
    pub fn ink(&self) -> f64 {
        let n = self.rgb.len() / 3;
        let white = self.count([255, 255, 255]);
        (n - white) as f64 / n as f64
    }

    pub fn colours(&self) -> usize {
        self.rgb
            .chunks_exact(3)
            .map(|p| (p[0], p[1], p[2]))
            .collect::<HashSet<_>>()
            .len()
    }
}

fn svg_texts(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg", "{}", path.display());
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    (text, texts)
}

#[test]
fn lossy_device_plots_show_drift_local_error_and_the_first_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    let r = common::lossy_run(
        &common::goldens(),
        &ModuleId::ALL,
        Some("vlm.layers.9.mlp.down"),
    );
    let first = r.summary.first_divergence.as_ref().expect("a divergence");
    assert_eq!(first.op, "vlm.layers.9.mlp.down");
    let dir = out_dir("lossy", tmp.path());
    let files = report::write(
        &r,
        &dir,
        &Options {
            formats: vec![Format::Plots, Format::Md],
            ..Options::default()
        },
    )
    .unwrap();
    let names: HashSet<String> = files
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for m in ["siglip", "vlm", "expert", "pi0"] {
        for ext in ["png", "svg"] {
            assert!(names.contains(&format!("pcc_{m}.{ext}")), "{names:?}");
            assert!(names.contains(&format!("heatmap_{m}.{ext}")), "{names:?}");
        }
    }
    assert!(names.contains("pipeline.png") && names.contains("pipeline.svg"));
    // Modules without layers get no per-module plot.
    assert!(!names.contains("pcc_projector.png"));

    let plots = dir.join("plots");
    let vlm = Png::decode(&plots.join("pcc_vlm.png"));
    assert_eq!((vlm.width, vlm.height), (1400, 720));
    assert!(vlm.ink() > 0.03, "ink {}", vlm.ink());
    assert!(vlm.colours() > 50, "anti-aliased text and curves");
    assert!(vlm.count(CHAINED) > 500, "chained curve drawn");
    assert!(vlm.count(LOCAL) > 500, "local curve drawn");
    assert!(
        vlm.count(FAIL) > 300,
        "first-divergence line and failing cross"
    );
    let siglip = Png::decode(&plots.join("pcc_siglip.png"));
    assert_eq!(siglip.count(FAIL), 0, "nothing fails in siglip");

    let pipe = Png::decode(&plots.join("pipeline.png"));
    assert!(pipe.count(CHAINED) > 1000 && pipe.count(LOCAL) > 1000);
    let heat = Png::decode(&plots.join("heatmap_vlm.png"));
    assert!(heat.count(FAIL) > 40, "the failing cell is framed");
    assert!(heat.colours() > 20);

    let (svg, texts) = svg_texts(&plots.join("pcc_vlm.svg"));
    assert!(
        texts
            .iter()
            .any(|t| t == "first divergence: vlm.layers.9.mlp.down"),
        "{texts:?}"
    );
    assert!(texts.iter().any(|t| t == "vlm — PCC vs layer"));
    assert!(texts
        .iter()
        .any(|t| t.starts_with("local tolerance: pcc ≥ 0.999")));
    assert!(
        texts.iter().any(|t| t == "0.999"),
        "nines-scale tick labels"
    );
    assert!(
        svg.to_ascii_uppercase().contains("#1F77B4"),
        "chained colour in the SVG"
    );
    let (_, texts) = svg_texts(&plots.join("pcc_pi0.svg"));
    for stack in ["siglip", "vlm", "d0.expert", "d9.expert"] {
        assert!(
            texts.iter().any(|t| t == stack),
            "stack band {stack}: {texts:?}"
        );
    }
    let (_, texts) = svg_texts(&plots.join("heatmap_vlm.svg"));
    for kind in ["linear", "sdpa", "rms_norm"] {
        assert!(texts.iter().any(|t| t == kind), "{texts:?}");
    }
    let (_, texts) = svg_texts(&plots.join("pipeline.svg"));
    assert!(texts
        .iter()
        .any(|t| t == "first divergence: vlm.layers.9.mlp.down (vlm)"));

    // Two runs overlaid: the broken kernel against a clean lossy run.
    let clean = common::lossy_run(&common::goldens(), &[ModuleId::Vlm], None);
    let runs = vec![
        ("clean".to_string(), &clean),
        ("coarse down".to_string(), &r),
    ];
    let out = dir.join("overlay_vlm.png");
    report::plots::overlay(&runs, Some("vlm"), ErrorBasis::Local, &out).unwrap();
    let o = Png::decode(&out);
    assert!(
        o.count([31, 119, 180]) > 300 && o.count([255, 127, 14]) > 300,
        "two runs"
    );
    let out = dir.join("overlay_pipeline.svg");
    report::plots::overlay(&runs, None, ErrorBasis::Chained, &out).unwrap();
    let (_, texts) = svg_texts(&out);
    assert!(texts.iter().any(|t| t == "clean") && texts.iter().any(|t| t == "coarse down"));
    let bad = report::plots::overlay(&runs, Some("vlm"), ErrorBasis::Local, &dir.join("x.gif"));
    assert!(bad.unwrap_err().to_string().contains("use .png or .svg"));
}
