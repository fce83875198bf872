//! Times the emulator's `linear` against the reference backend's at one shape, interleaving
//! the two so both see the same machine load, and prints the same-run ratio.
//!
//! ```text
//! cargo run --release --example emu_timing -- [--m 729] [--k 1152] [--n 4304]
//!     [--profile bf16-hifi2] [--runs 11] [--warmup 2] [--no-bias] [--threads N]
//! ```
//!
//! The operands are uploaded through each backend (emu stores them in the profile's dtypes:
//! bf16 activations and weights for `bf16-hifi2`) under the names of SigLIP layer 0's MLP, so
//! the op is `siglip.layers.0.mlp.fc1` with its profile config. Output: `first_call_seconds`
//! (the emulator packs the weight's fidelity planes on its first use and keeps them),
//! `cpu_median_seconds`, `emu_median_seconds` (later calls), `ratio` (emu / cpu),
//! `simd_kernel`.

use std::time::Instant;

use pccscope::backend::cpu::CpuBackend;
use pccscope::backend::emu::{simd, EmuBackend, Profile};
use pccscope::backend::{Backend, Op, OpKind};
use pccscope::tensor::Tensor;

const W: &str =
    "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.0.mlp.fc1";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), String> {
    let (mut m, mut k, mut n) = (729usize, 1152usize, 4304usize);
    let (mut runs, mut warmup, mut bias) = (11usize, 2usize, true);
    let mut profile = "bf16-hifi2".to_string();
    let mut threads = CpuBackend::new().threads();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a non-negative integer"))
        };
        match a.as_str() {
            "--m" => m = num("--m")?,
            "--k" => k = num("--k")?,
            "--n" => n = num("--n")?,
            "--runs" => runs = num("--runs")?.max(1),
            "--warmup" => warmup = num("--warmup")?,
            "--no-bias" => bias = false,
            "--threads" => threads = num("--threads")?.max(1),
            "--profile" => profile = args.next().ok_or("--profile needs a name")?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let profile_spec = Profile::by_name(Some(&profile)).map_err(|e| e.to_string())?;
    let emu = EmuBackend::with_threads(profile_spec, threads);
    let cpu = CpuBackend::with_threads(threads);
    let fill = |len: usize, f: f32| -> Vec<f32> {
        (0..len).map(|i| ((i % 97) as f32 * f).sin()).collect()
    };
    let x = Tensor::from_vec(&[m, k], fill(m * k, 0.37)).ok_or("x shape")?;
    let w = Tensor::from_vec(&[n, k], fill(n * k, 0.11)).ok_or("w shape")?;
    let b = Tensor::from_vec(&[n], fill(n, 0.5)).ok_or("b shape")?;
    let up = |name: &str, t: &Tensor| emu.upload(name, t.clone()).map_err(|e| e.to_string());
    let ex = up("siglip.layers.0.ln2", &x)?;
    // As `Weights::get` does: the uploaded parameter carries its checkpoint name.
    let ew = up(&format!("{W}.weight"), &w)?.with_origin(format!("{W}.weight"));
    let eb = up(&format!("{W}.bias"), &b)?.with_origin(format!("{W}.bias"));
    // The reference gets the same stored values.
    let (cx, cw, cb) = (
        Tensor::from_array(ex.array().clone()),
        Tensor::from_array(ew.array().clone()),
        Tensor::from_array(eb.array().clone()),
    );
    let op = Op::new("siglip.layers.0.mlp.fc1", OpKind::Linear);
    let (emu_in, cpu_in): (Vec<&Tensor>, Vec<&Tensor>) = if bias {
        (vec![&ex, &ew, &eb], vec![&cx, &cw, &cb])
    } else {
        (vec![&ex, &ew], vec![&cx, &cw])
    };
    // First call: the emulator splits the weight into its fidelity planes (kept afterwards).
    let t0 = Instant::now();
    cpu.exec(&op, &cpu_in).map_err(|e| e.to_string())?;
    let cpu_first = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    emu.exec(&op, &emu_in).map_err(|e| e.to_string())?;
    let emu_first = t0.elapsed().as_secs_f64();
    for _ in 0..warmup {
        cpu.exec(&op, &cpu_in).map_err(|e| e.to_string())?;
        emu.exec(&op, &emu_in).map_err(|e| e.to_string())?;
    }
    let (mut tc, mut te) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        std::hint::black_box(cpu.exec(&op, &cpu_in).map_err(|e| e.to_string())?);
        tc.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        std::hint::black_box(emu.exec(&op, &emu_in).map_err(|e| e.to_string())?);
        te.push(t0.elapsed().as_secs_f64());
        println!(
            "run_seconds: cpu {:.6} emu {:.6}",
            tc[tc.len() - 1],
            te[te.len() - 1]
        );
    }
    let (c, e) = (median(tc), median(te));
    println!("shape: [{m}x{k}]·[{k}x{n}] bias={bias} profile={profile} threads={threads}");
    if let Some(p) = emu.precision(&op) {
        println!("precision: {p}");
    }
    println!("simd_kernel: {}", simd::simd_kernel_available());
    println!("first_call_seconds: cpu {cpu_first:.6} emu {emu_first:.6} (weight planes packed)");
    println!("cpu_median_seconds: {c:.6}");
    println!("emu_median_seconds: {e:.6}");
    println!("ratio: {:.2}", e / c);
    Ok(())
}
