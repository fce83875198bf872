//! `pccscope inspect PATH`: a checkpoint (tensors grouped by module, naming variant, inferred
//! config, problems) or a capture (modules, ops, sizes).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::golden::Capture;
use crate::modules::checkpoint::{EXPERT, LANGUAGE, PROJECTOR, VISION};
use crate::modules::{Checkpoint, Pi0Config};
use crate::tensor::shape_string;

pub fn inspect(path: &Path) -> Result<()> {
    if path.is_dir() {
        inspect_capture(path)
    } else {
        inspect_checkpoint(path)
    }
}

fn group_of(name: &str) -> &'static str {
    if name.starts_with(VISION) {
        "siglip"
    } else if name.starts_with(PROJECTOR) {
        "projector"
    } else if name.starts_with(LANGUAGE)
        || name.starts_with("paligemma_with_expert.paligemma.lm_head")
    {
        "vlm"
    } else if name.starts_with(EXPERT) || name.starts_with("paligemma_with_expert.gemma_expert") {
        "expert"
    } else if !name.contains('.') || name.split('.').count() == 2 {
        "heads"
    } else {
        "other"
    }
}

fn inspect_checkpoint(path: &Path) -> Result<()> {
    let ck = Checkpoint::open(path)?;
    println!("checkpoint {}", path.display());
    println!("naming:  {}", ck.naming().as_str());
    println!("tensors: {}", ck.len());
    let mut groups: BTreeMap<&str, (usize, usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for name in ck.canonical_names() {
        let shape = ck.shape(&name).unwrap_or_default();
        let dtype = ck.dtype(&name).unwrap_or_default();
        let g = groups.entry(group_of(&name)).or_default();
        g.0 += 1;
        g.1 += shape.iter().product::<usize>();
        *g.2.entry(dtype).or_default() += 1;
    }
    println!(
        "{:<10} {:>8} {:>14}  dtypes",
        "group", "tensors", "elements"
    );
    for (g, (n, el, dt)) in &groups {
        let dts: Vec<String> = dt.iter().map(|(d, c)| format!("{d}×{c}")).collect();
        println!("{g:<10} {n:>8} {el:>14}  {}", dts.join(" "));
    }
    match ck.infer_config(&Pi0Config::tiny()) {
        Ok(cfg) => {
            println!(
                "inferred: siglip {}×{} (mlp {}, patch {}, pos grid {}²) · vlm {}×{} (heads {}, kv {}, head_dim {}, mlp {}, vocab {}) · expert {}×{} (mlp {}) · state {} · action {}",
                cfg.siglip.layers, cfg.siglip.width, cfg.siglip.mlp, cfg.siglip.patch, cfg.siglip.pos_grid,
                cfg.vlm.layers, cfg.vlm.width, cfg.vlm.heads, cfg.vlm.kv_heads, cfg.vlm.head_dim, cfg.vlm.mlp, cfg.vlm.vocab,
                cfg.expert.layers, cfg.expert.width, cfg.expert.mlp, cfg.state_dim, cfg.action_dim
            );
            match ck.validate(&cfg) {
                Ok(()) => println!("problems: none"),
                Err(e) => println!("problems:\n{e}"),
            }
        }
        Err(e) => println!("inferred: {e}"),
    }
    Ok(())
}

fn inspect_capture(dir: &Path) -> Result<()> {
    let cap = Capture::open(dir).with_context(|| format!("open capture {}", dir.display()))?;
    let m = cap.manifest();
    println!("capture {}", dir.display());
    println!("schema:   {}", m.schema);
    println!("producer: {}", m.producer);
    println!("model:    {} (preset {})", m.model, m.preset);
    if let Some(c) = &m.checkpoint {
        println!(
            "checkpoint: {} ({} naming, {}, {} tensors)",
            c.file, c.naming, c.dtype, c.tensors
        );
    }
    println!("inputs:");
    for i in &m.inputs {
        println!("  {:<12} {:<5} {}", i.name, i.dtype, shape_string(&i.shape));
    }
    println!(
        "{:<15} {:>6} {:>6} {:>6}  outputs",
        "module", "ops", "full", "stats"
    );
    for md in &m.modules {
        let full = md.ops.iter().filter(|o| o.file.is_some()).count();
        println!(
            "{:<15} {:>6} {:>6} {:>6}  {}",
            md.id,
            md.ops.len(),
            full,
            md.ops.len() - full,
            md.outputs.first().map(String::as_str).unwrap_or("-")
        );
        if let Err(e) = cap.check_module(&md.id) {
            println!("{:<15} problem: {e}", "");
        }
    }
    let mut total = 0u64;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(md) = e.metadata() {
                total += md.len();
            }
        }
    }
    println!("size on disk: {:.2} MiB", total as f64 / (1024.0 * 1024.0));
    Ok(())
}
