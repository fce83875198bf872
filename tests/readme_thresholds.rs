//! The thresholds example in README.md is the real format: it parses and means what its
//! comments say.

use pccscope::backend::OpClass;
use pccscope::harness::thresholds::Thresholds;
use pccscope::tensor::DType;

/// The first ```toml block after the "Metrics and thresholds" heading of README.md.
fn readme_example() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split("### Metrics and thresholds")
        .nth(1)
        .expect("README has a `### Metrics and thresholds` section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .expect("the section has a ```toml block");
    block
        .split("\n```")
        .next()
        .expect("the block is closed")
        .to_string()
}

#[test]
fn readme_thresholds_example_parses_with_the_documented_meaning() {
    let text = readme_example();
    let t = Thresholds::from_toml_str(&text)
        .unwrap_or_else(|e| panic!("README thresholds example does not parse: {e}\n{text}"));
    // [modules]
    assert_eq!(t.module_gate("siglip"), 0.99);
    assert_eq!(t.module_gate("pi0"), 0.97);
    // [classes.matmul]: every dtype, local and chained.
    let m = t.chained(
        "siglip.layers.0.attn.q",
        "siglip",
        OpClass::Matmul,
        DType::Bf16,
    );
    assert_eq!(m.pcc_min, Some(0.9999));
    assert_eq!(m.rel_l2_max, Some(1e-3));
    // [[override]] on vlm MLP ops, local checks only.
    let l = t.local("vlm.layers.3.mlp.down", OpClass::Matmul, DType::Bf16);
    assert_eq!(l.pcc_min, Some(0.995));
    let c = t.chained("vlm.layers.3.mlp.down", "vlm", OpClass::Matmul, DType::Bf16);
    assert_eq!(
        c.pcc_min,
        Some(0.9999),
        "check = \"local\" leaves chained alone"
    );
    assert!(t
        .describe()
        .contains("2 module gates, 1 class preset, 1 op override"));
}
