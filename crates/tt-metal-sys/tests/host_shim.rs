//! The ABI through its host implementation: handles and ownership, TT-NN's layout and
//! broadcast rules, storage rounding, and the error record (TT_FATAL / TT_THROW text parsed into
//! kind, file:line, condition, message).
//!
//! Every test takes `serial()`: the host shim, like TT-NN, opens a device once per process, and
//! the live-handle counters are process-wide.

#![cfg(all(feature = "host-shim", not(feature = "tt")))]

use std::ffi::CStr;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use tt_metal_sys::{
    ffi, BinaryOp, Buffer, ComputeConfig, DType, Device, Layout, MathFidelity, MemLayout,
    OpOptions, Status, TtError, UnaryOp,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn dev() -> Device {
    Device::open(0).expect("open host device")
}

fn up(d: &Device, v: &[f32], dims: &[usize], dt: DType, l: Layout) -> tt_metal_sys::Tensor {
    d.from_f32(v, dims, dt, l, Buffer::Dram).expect("upload")
}

fn tile(d: &Device, v: &[f32], dims: &[usize]) -> tt_metal_sys::Tensor {
    up(d, v, dims, DType::F32, Layout::Tile)
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i as f32) * 0.25 - 3.0).collect()
}

fn no() -> OpOptions {
    OpOptions::default()
}

/// Asserts an error is a modelled TT-NN error of `kind` whose message contains `msg`.
#[track_caller]
fn assert_tt(e: &TtError, kind: &str, function: &str, msg: &str) {
    assert_eq!(e.kind, kind, "{e:?}");
    assert_eq!(e.function, function, "{e:?}");
    assert!(
        e.message.contains(msg),
        "message {:?} lacks {msg:?}",
        e.message
    );
    assert!(e.file.ends_with("host.c"), "file {:?}", e.file);
    assert!(e.line > 0);
    assert!(e.raw.starts_with(kind), "raw {:?}", e.raw);
    let want = if kind == "TT_THROW" {
        Status::TtThrow
    } else {
        Status::TtFatal
    };
    assert_eq!(e.status, want);
}

#[test]
fn abi_and_implementation_are_reported() {
    let _g = serial();
    assert_eq!(tt_metal_sys::abi_version(), ffi::TTM_ABI_VERSION);
    assert_eq!(tt_metal_sys::implementation(), "host");
    assert!(tt_metal_sys::build_info().contains("implementation=host"));
    assert_eq!(tt_metal_sys::device_count().unwrap(), 1);
    assert!(dev().describe().unwrap().contains("host shim device 0"));
}

#[test]
fn tile_layout_pads_the_last_two_dims_and_reads_back_logical_values() {
    let _g = serial();
    let d = dev();
    let v = ramp(2 * 5 * 33);
    let t = tile(&d, &v, &[2, 5, 33]);
    let info = t.info().unwrap();
    assert_eq!(info.logical, vec![2, 5, 33]);
    assert_eq!(info.padded, vec![2, 32, 64]);
    assert_eq!(info.physical_volume, 2 * 32 * 64);
    assert_eq!((info.layout, info.dtype), (Layout::Tile, DType::F32));
    assert!(info.on_device && info.allocated && !info.sharded);
    assert_eq!(info.buffer, Some(Buffer::Dram));
    assert_eq!(info.mem_layout, Some(MemLayout::Interleaved));
    assert_eq!(t.read_f32().unwrap(), v);
    let rm = up(&d, &v, &[2, 5, 33], DType::F32, Layout::RowMajor);
    assert_eq!(rm.info().unwrap().padded, vec![2, 5, 33]);
    let l1 = d
        .from_f32(&v, &[2, 5, 33], DType::Bf16, Layout::Tile, Buffer::L1)
        .unwrap();
    assert_eq!(l1.info().unwrap().buffer, Some(Buffer::L1));
    let text = l1.describe().unwrap();
    assert!(text.contains("padded_shape=Shape([2, 32, 64])"), "{text}");
    assert!(
        text.contains("BufferType::L1") && text.contains("DataType::BFLOAT16"),
        "{text}"
    );
}

#[test]
fn bf16_upload_rounds_to_nearest_even() {
    let _g = serial();
    let d = dev();
    let e = 2f32.powi(-8);
    let v = [1.0 + e, 1.0 + 3.0 * e, -(1.0 + 3.0 * e), 1.0 + 1.5 * e, 0.1];
    let t = up(&d, &v, &[5], DType::Bf16, Layout::Tile);
    let got = t.read_f32().unwrap();
    assert_eq!(got[0], 1.0);
    assert_eq!(got[1], 1.0 + 4.0 * e);
    assert_eq!(got[2], -(1.0 + 4.0 * e));
    assert_eq!(got[3], 1.0 + 2.0 * e);
    // 0.1 = 0x3DCCCCCD: the dropped half 0xCCCD is above the tie, so it rounds up.
    assert_eq!(got[4], f32::from_bits(0x3DCD_0000));
}

#[test]
fn block_floats_share_one_exponent_per_16_values_and_saturate() {
    let _g = serial();
    let d = dev();
    // Row of 32: the first 16 share exponent 2^0 (max 1.99609375 saturates to 127/64); the
    // second 16 are tiny and keep their own exponent.
    let mut v = vec![0.0f32; 32];
    v[0] = 1.0 + 127.0 / 128.0; // 1.99609375
    v[1] = 1.5 / 64.0; // 1.5 steps of the shared grid (1/64): a tie, to even → 2/64
    v[2] = 0.003; // below half a grid step: flushes to 0
    v[16] = 0.003;
    let t8 = up(&d, &v, &[1, 32], DType::Bfp8, Layout::Tile);
    let g = t8.read_f32().unwrap();
    assert_eq!(g[0], 127.0 / 64.0);
    assert_eq!(g[1], 1.0 / 64.0 + 1.0 / 64.0);
    assert_eq!(g[2], 0.0);
    // 0.003 alone in its group keeps 7 significant bits: 0.003 = 1.536 · 2^-9.
    assert!((g[16] - 0.003).abs() < 0.003 / 64.0, "{}", g[16]);
    let t4 = up(&d, &v, &[1, 32], DType::Bfp4, Layout::Tile);
    let g4 = t4.read_f32().unwrap();
    assert_eq!(g4[0], 7.0 / 4.0); // 3 magnitude bits: saturates at 7/4
    assert_eq!(g4[1], 0.0);
    let e = d
        .from_f32(&v, &[1, 32], DType::Bfp8, Layout::RowMajor, Buffer::Dram)
        .unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_tensor_from_f32",
        "Block float types are only supported in TILE layout",
    );
    assert_eq!(e.condition, "layout == Layout::TILE");
}

#[test]
fn binary_follows_binary_ng_broadcast_rules() {
    let _g = serial();
    let d = dev();
    let a = tile(&d, &ramp(2 * 3 * 4), &[2, 3, 4]);
    let row = tile(&d, &[1.0, 2.0, 3.0, 4.0], &[1, 4]);
    let col = tile(&d, &ramp(2 * 3), &[2, 3, 1]);
    let sum = d.binary(BinaryOp::Add, &a, &row, &no()).unwrap();
    let av = ramp(24);
    let got = sum.read_f32().unwrap();
    for (i, g) in got.iter().enumerate() {
        assert_eq!(*g, av[i] + [1.0, 2.0, 3.0, 4.0][i % 4]);
    }
    let prod = d.binary(BinaryOp::Mul, &col, &a, &no()).unwrap();
    assert_eq!(prod.info().unwrap().logical, vec![2, 3, 4]);
    assert_eq!(prod.read_f32().unwrap()[5], ramp(6)[1] * av[5]);

    let bad_w = tile(&d, &ramp(4 * 8), &[1, 4, 8]);
    let a46 = tile(&d, &ramp(4 * 6), &[1, 4, 6]);
    let e = d.binary(BinaryOp::Add, &a46, &bad_w, &no()).unwrap_err();
    assert_tt(
        &e,
        "TT_THROW",
        "ttm_binary",
        "Invalid subtile broadcast type",
    );
    assert_eq!(e.condition, "tt::exception");

    let b3 = tile(&d, &ramp(3 * 3 * 4), &[3, 3, 4]);
    let e = d.binary(BinaryOp::Add, &a, &b3, &no()).unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_binary",
        "Broadcasting rule violation for rank -3, dim a: 2, dim b: 3",
    );

    let rm = up(&d, &ramp(24), &[2, 3, 4], DType::F32, Layout::RowMajor);
    let e = d.binary(BinaryOp::Add, &rm, &a, &no()).unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_binary",
        "First operand to eltwise binary must be tilized",
    );

    // rank ≥ 6 broadcasting is refused even where NumPy would accept it
    let big = tile(&d, &ramp(2 * 4), &[2, 1, 1, 1, 1, 1, 4]);
    let other = tile(&d, &ramp(3 * 4), &[1, 3, 1, 1, 1, 1, 4]);
    let e = d.binary(BinaryOp::Mul, &big, &other, &no()).unwrap_err();
    assert!(
        e.message.contains("Broadcast is supported up to rank 5"),
        "{e}"
    );
}

#[test]
fn output_dtype_and_device_side_rounding() {
    let _g = serial();
    let d = dev();
    // bf16 op output: ties away from zero (packer), unlike the host's ties-to-even.
    let e = 2f32.powi(-8);
    let a = tile(&d, &[1.0 + e, -(1.0 + e)], &[1, 2]);
    let o = OpOptions {
        out_dtype: Some(DType::Bf16),
        ..no()
    };
    let r = d.binary_scalar(BinaryOp::Mul, &a, 1.0, &o).unwrap();
    assert_eq!(r.info().unwrap().dtype, DType::Bf16);
    assert_eq!(r.read_f32().unwrap(), vec![1.0 + 2.0 * e, -(1.0 + 2.0 * e)]);
    let c = d.typecast(&a, DType::Bf16, &no()).unwrap();
    assert_eq!(c.read_f32().unwrap(), vec![1.0 + 2.0 * e, -(1.0 + 2.0 * e)]);
}

#[test]
fn matmul_and_linear_match_a_naive_product() {
    let _g = serial();
    let d = dev();
    let (m, k, n) = (3usize, 5usize, 2usize);
    let x = ramp(m * k);
    let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
    let bias = [0.5f32, -1.0];
    let xd = tile(&d, &x, &[1, m, k]);
    let wd = up(&d, &w, &[n, k], DType::F32, Layout::Tile);
    let bd = tile(&d, &bias, &[1, n]);
    let cc = OpOptions {
        out_dtype: Some(DType::F32),
        out_buffer: None,
        compute: Some(ComputeConfig {
            math_fidelity: Some(MathFidelity::HiFi4),
            fp32_dest_acc_en: Some(true),
            ..ComputeConfig::default()
        }),
    };
    let y = d
        .linear(&xd, &wd, Some(&bd), false, true, None, &cc)
        .unwrap();
    assert_eq!(y.info().unwrap().logical, vec![1, m, n]);
    let got = y.read_f32().unwrap();
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k)
                .map(|t| x[i * k + t] as f64 * w[j * k + t] as f64)
                .sum();
            let want = want as f32 + bias[j];
            assert_eq!(got[i * n + j], want, "({i}, {j})");
        }
    }
    let relu = d
        .linear(&xd, &wd, None, false, true, Some("relu"), &cc)
        .unwrap();
    assert!(relu.read_f32().unwrap().iter().all(|&v| v >= 0.0));
    let rm = up(&d, &x, &[1, m, k], DType::F32, Layout::RowMajor);
    let e = d.matmul(&rm, &wd, false, true, &cc).unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_matmul",
        "Inputs to matmul must be tilized",
    );
    let e = d.matmul(&xd, &wd, false, false, &cc).unwrap_err();
    assert_tt(&e, "TT_FATAL", "ttm_matmul", "Mismatch: width=5 height=2");
    let e = d
        .linear(&xd, &wd, None, false, true, Some("softsign"), &cc)
        .unwrap_err();
    assert_tt(&e, "TT_FATAL", "ttm_linear", "Unsupported fused activation");
}

#[test]
fn embedding_needs_a_row_major_bf16_table() {
    let _g = serial();
    let d = dev();
    let table: Vec<f32> = (0..4 * 32).map(|i| i as f32).collect();
    let ids = d
        .from_u32(&[3, 0, 2], &[1, 3], Layout::RowMajor, Buffer::Dram)
        .unwrap();
    let tab = up(&d, &table, &[4, 32], DType::Bf16, Layout::RowMajor);
    let rows = d.embedding(&ids, &tab, Layout::RowMajor, &no()).unwrap();
    let info = rows.info().unwrap();
    assert_eq!(info.logical, vec![1, 3, 32]);
    assert_eq!(info.dtype, DType::Bf16);
    let v = rows.read_f32().unwrap();
    assert_eq!(&v[..2], &[96.0, 97.0]);
    assert_eq!(v[32], 0.0);
    let f32_tab = up(&d, &table, &[4, 32], DType::F32, Layout::RowMajor);
    let e = d
        .embedding(&ids, &f32_tab, Layout::RowMajor, &no())
        .unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_embedding",
        "Weights tensor must have BFLOAT16 dtype",
    );
    let e = d.embedding(&ids, &tab, Layout::Tile, &no()).unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_embedding",
        "must be a multiple of tile height 32",
    );
    let far = d
        .from_u32(&[7], &[1, 1], Layout::RowMajor, Buffer::Dram)
        .unwrap();
    let e = d
        .embedding(&far, &tab, Layout::RowMajor, &no())
        .unwrap_err();
    assert_eq!((e.kind.as_str(), e.status), ("shim", Status::InvalidArg));
    assert!(e.message.contains("not a row of the 4-row table"), "{e}");
}

#[test]
fn norms_take_row_parameters() {
    let _g = serial();
    let d = dev();
    let x = ramp(2 * 40);
    let xd = tile(&d, &x, &[2, 40]);
    let w: Vec<f32> = (0..40).map(|i| 1.0 + i as f32 / 40.0).collect();
    let wd = tile(&d, &w, &[1, 40]);
    let bd = tile(&d, &[0.25; 40], &[1, 40]);
    let y = d
        .layer_norm(&xd, 1e-6, Some(&wd), Some(&bd), None, &no())
        .unwrap();
    let got = y.read_f32().unwrap();
    let row = &x[..40];
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / 40.0;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 40.0;
    let want0 = ((row[0] as f64 - mean) / (var + 1e-6).sqrt()) * w[0] as f64 + 0.25;
    assert!(
        (got[0] as f64 - want0).abs() < 1e-5,
        "{} vs {want0}",
        got[0]
    );
    let rms = d.rms_norm(&xd, 1e-6, Some(&wd), None, None, &no()).unwrap();
    let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 40.0;
    let want = row[3] as f64 / (ms + 1e-6).sqrt() * w[3] as f64;
    assert!((rms.read_f32().unwrap()[3] as f64 - want).abs() < 1e-5);
    let flat = tile(&d, &w, &[40]);
    assert!(d
        .layer_norm(&xd, 1e-6, Some(&flat), None, None, &no())
        .is_ok());
    let wrong = tile(&d, &w[..32], &[1, 32]);
    let e = d
        .layer_norm(&xd, 1e-6, Some(&wrong), None, None, &no())
        .unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_layer_norm",
        "gamma in TILE layout must be a [1, 40] row",
    );
}

#[test]
fn rotary_embedding_rounds_the_sequence_up_to_tiles() {
    let _g = serial();
    let d = dev();
    let (h, s, dd) = (2usize, 5usize, 64usize);
    let x = ramp(h * s * dd);
    let cos: Vec<f32> = (0..s * dd).map(|i| (i as f32 * 0.01).cos()).collect();
    let sin: Vec<f32> = (0..s * dd).map(|i| (i as f32 * 0.01).sin()).collect();
    let xd = tile(&d, &x, &[1, h, s, dd]);
    let cd = tile(&d, &cos, &[1, 1, s, dd]);
    let sd = tile(&d, &sin, &[1, 1, s, dd]);
    let y = d.rotary_embedding(&xd, &cd, &sd, None, &no()).unwrap();
    assert_eq!(y.info().unwrap().logical, vec![1, h, 32, dd]);
    let v = y.read_f32().unwrap();
    // head 1, token 2, column 3 (< half): x·cos − x[+32]·sin
    let (hi, ti, j) = (1usize, 2usize, 3usize);
    let xr = &x[(hi * s + ti) * dd..][..dd];
    let want = xr[j] * cos[ti * dd + j] + (-xr[j + 32]) * sin[ti * dd + j];
    assert_eq!(v[(hi * 32 + ti) * dd + j], want);
    assert_eq!(v[(hi * 32 + s) * dd], 0.0); // padded rows come back as rows of zeros
    let x32 = tile(&d, &ramp(s * 32), &[1, 1, s, 32]);
    let c32 = tile(&d, &ramp(s * 32), &[1, 1, s, 32]);
    let e = d
        .rotary_embedding(&x32, &c32, &c32, None, &no())
        .unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_rotary_embedding",
        "Input X dim must be divisible into tiles",
    );
}

#[test]
fn sdpa_validates_like_tt_nn_and_matches_a_naive_attention() {
    let _g = serial();
    let d = dev();
    let (hq, hkv, sq, sk, dd) = (2usize, 1usize, 3usize, 4usize, 32usize);
    let q: Vec<f32> = (0..hq * sq * dd)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 8.0)
        .collect();
    let k: Vec<f32> = (0..hkv * sk * dd)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) / 8.0)
        .collect();
    let v: Vec<f32> = (0..hkv * sk * dd).map(|i| (i % 9) as f32).collect();
    let bf = |x: &[f32], dims: &[usize]| up(&d, x, dims, DType::Bf16, Layout::Tile);
    let (qd, kd, vd) = (
        bf(&q, &[1, hq, sq, dd]),
        bf(&k, &[1, hkv, sk, dd]),
        bf(&v, &[1, hkv, sk, dd]),
    );
    let mut mask = vec![0.0f32; sq * sk];
    mask[3] = -1e30; // query 0 does not see key 3
    let md = bf(&mask, &[1, 1, sq, sk]);
    let out = d
        .sdpa(&qd, &kd, &vd, Some(&md), false, Some(0.25), &no())
        .unwrap();
    assert_eq!(out.info().unwrap().logical, vec![1, hq, sq, dd]);
    let got = out.read_f32().unwrap();
    // head 1, query 0 by hand (inputs are bf16 already: the values are exact)
    let (qb, kb, vb) = (
        qd.read_f32().unwrap(),
        kd.read_f32().unwrap(),
        vd.read_f32().unwrap(),
    );
    let qr = &qb[(sq) * dd..][..dd];
    let mut p: Vec<f64> = (0..sk)
        .map(|j| {
            let s: f64 = (0..dd).map(|t| qr[t] as f64 * kb[j * dd + t] as f64).sum();
            (s as f32 * 0.25 + mask[j]) as f64
        })
        .collect();
    let mx = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = p
        .iter_mut()
        .map(|x| {
            *x = (*x - mx).exp();
            *x
        })
        .sum();
    let want: f64 = (0..sk).map(|j| p[j] / z * vb[j * dd] as f64).sum();
    let g = got[sq * dd];
    assert!(
        (g as f64 - want).abs() < 0.02 * want.abs().max(1.0),
        "{g} vs {want}"
    );

    let f = |x: &[f32], dims: &[usize]| tile(&d, x, dims);
    let qf = f(&q, &[1, hq, sq, dd]);
    let e = d.sdpa(&qf, &kd, &vd, None, false, None, &no()).unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_sdpa",
        "must be BFLOAT16, BFLOAT8_B or BFLOAT4_B",
    );
    let e = d
        .sdpa(&qd, &kd, &vd, Some(&md), true, None, &no())
        .unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_sdpa",
        "attn_mask must be None when is_causal is True",
    );
    let q16 = bf(&q[..hq * sq * 16], &[1, hq, sq, 16]);
    let k16 = bf(&k[..sk * 16], &[1, 1, sk, 16]);
    let e = d
        .sdpa(&q16, &k16, &k16, None, false, None, &no())
        .unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_sdpa",
        "Padding is not supported on the head_dim dimension",
    );
}

#[test]
fn data_movement_ops_keep_values_and_check_their_arguments() {
    let _g = serial();
    let d = dev();
    let a = tile(&d, &ramp(2 * 3 * 4), &[2, 3, 4]);
    let b = tile(&d, &ramp(2 * 4), &[2, 1, 4]);
    let c = d.concat(&[&a, &b], 1, &no()).unwrap();
    assert_eq!(c.info().unwrap().logical, vec![2, 4, 4]);
    assert_eq!(c.read_f32().unwrap()[12..16], ramp(8)[..4]);
    let s = d.slice(&c, &[0, 3, 1], &[2, 4, 3], &no()).unwrap();
    assert_eq!(
        s.read_f32().unwrap(),
        vec![ramp(8)[1], ramp(8)[2], ramp(8)[5], ramp(8)[6]]
    );
    let p = d.permute(&a, &[2, 0, 1], &no()).unwrap();
    assert_eq!(p.info().unwrap().logical, vec![4, 2, 3]);
    assert_eq!(p.read_f32().unwrap()[1], ramp(24)[4]);
    let r = d.reshape(&a, &[6, 4], &no()).unwrap();
    assert_eq!(
        (r.read_f32().unwrap(), r.info().unwrap().padded),
        (ramp(24), vec![32, 32])
    );
    let e = d.reshape(&a, &[5, 5], &no()).unwrap_err();
    assert_tt(
        &e,
        "TT_FATAL",
        "ttm_reshape",
        "cannot reshape [2, 3, 4] to [5, 5]",
    );
    let e = d.concat(
        &[&a, &up(&d, &ramp(8), &[2, 1, 4], DType::Bf16, Layout::Tile)],
        1,
        &no(),
    );
    assert_tt(
        &e.unwrap_err(),
        "TT_FATAL",
        "ttm_concat",
        "All Tensors should have same dtypes",
    );
    let rm = d.to_layout(&a, Layout::RowMajor, &no()).unwrap();
    assert_eq!(rm.info().unwrap().padded, vec![2, 3, 4]);
    let sm = d.softmax(&a, -1, true, &no()).unwrap();
    let row: f32 = sm.read_f32().unwrap()[..4].iter().sum();
    assert!((row - 1.0).abs() < 1e-6);
    let g = d.unary(UnaryOp::GeluTanh, &a, false, &no()).unwrap();
    let x = ramp(1)[0] as f64;
    let want =
        0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh());
    assert_eq!(g.read_f32().unwrap()[0], want as f32);
}

#[test]
fn opening_an_open_device_shares_it() {
    let _g = serial();
    let d = dev();
    let other = Device::open(0).unwrap();
    assert!(
        other.same(&d),
        "one open per id: the registry shares the device"
    );
    let t = tile(&other, &[1.0], &[1, 1]);
    assert_eq!(
        d.unary(UnaryOp::Neg, &t, false, &no())
            .unwrap()
            .read_f32()
            .unwrap(),
        vec![-1.0]
    );
    assert_eq!(tt_metal_sys::live_handles().0, 1);
}

/// Reads the raw error record of the last call.
fn raw_error() -> (i32, String, String) {
    // SAFETY: ttm_last_error never returns NULL; its strings are valid until the next call.
    unsafe {
        let e = &*ffi::ttm_last_error();
        let s = |p: *const std::os::raw::c_char| CStr::from_ptr(p).to_string_lossy().into_owned();
        (e.status, s(e.kind), s(e.message))
    }
}

#[test]
fn raw_abi_null_arguments_ownership_and_forced_close() {
    let _g = serial();
    let before = tt_metal_sys::live_handles();
    let mut dev = ptr::null_mut();
    // SAFETY: NULL options; `dev` is a live out-pointer.
    let st = unsafe { ffi::ttm_device_open(0, ptr::null(), &mut dev) };
    assert_eq!(st, ffi::TTM_OK);
    let mut dev2 = ptr::null_mut();
    // SAFETY: as above; a second open of the same id must fail and leave `dev2` NULL.
    let st = unsafe { ffi::ttm_device_open(0, ptr::null(), &mut dev2) };
    assert_eq!(st, ffi::TTM_E_TT_THROW);
    assert!(dev2.is_null());
    assert!(raw_error().2.contains("already open"));

    let mut t = ptr::null_mut();
    let dims = [2u32, 2];
    let data = [1.0f32, 2.0, 3.0, 4.0];
    // SAFETY: 3 values for 4 dims' volume: the shim must refuse, not read past `data`.
    let st = unsafe {
        ffi::ttm_tensor_from_f32(
            dev,
            data.as_ptr(),
            3,
            dims.as_ptr(),
            2,
            ffi::TTM_F32,
            ffi::TTM_TILE,
            ffi::TTM_DRAM,
            &mut t,
        )
    };
    assert_eq!(st, ffi::TTM_E_INVALID_ARG);
    assert!(t.is_null());
    let (_, kind, msg) = raw_error();
    assert_eq!(kind, "shim");
    assert!(msg.contains("count 3"), "{msg}");
    // SAFETY: valid pointers and counts.
    let st = unsafe {
        ffi::ttm_tensor_from_f32(
            dev,
            data.as_ptr(),
            4,
            dims.as_ptr(),
            2,
            ffi::TTM_F32,
            ffi::TTM_TILE,
            ffi::TTM_DRAM,
            &mut t,
        )
    };
    assert_eq!(st, ffi::TTM_OK);
    let mut out = ptr::null_mut();
    // SAFETY: a NULL input handle must be refused with INVALID_ARG and a NULL out-param.
    let st = unsafe { ffi::ttm_unary(ffi::TTM_NEG, ptr::null(), 0, ptr::null(), &mut out) };
    assert_eq!(st, ffi::TTM_E_INVALID_ARG);
    assert!(out.is_null());
    // SAFETY: `t` is live.
    assert_eq!(unsafe { ffi::ttm_tensor_deallocate(t, 1) }, ffi::TTM_OK);
    let mut buf = [0.0f32; 4];
    let mut n = 0usize;
    // SAFETY: `t` is live (deallocated, still a handle); buf holds 4 floats.
    let st = unsafe { ffi::ttm_tensor_read_f32(t, buf.as_mut_ptr(), 4, &mut n) };
    assert_eq!(st, ffi::TTM_E_TT_FATAL);
    // SAFETY: `dev` is live; the tensor on it is still alive, so a plain close is BUSY.
    assert_eq!(unsafe { ffi::ttm_device_close(dev, 0) }, ffi::TTM_E_BUSY);
    assert_eq!(tt_metal_sys::live_handles(), (before.0 + 1, before.1 + 1));
    // SAFETY: forced close releases the buffers; the orphaned handle must still be freed.
    assert_eq!(unsafe { ffi::ttm_device_close(dev, 1) }, ffi::TTM_OK);
    let mut info = std::mem::MaybeUninit::<ffi::ttm_tensor_info>::zeroed();
    // SAFETY: zeroed info with struct_size set; `t` is still a live (orphaned) handle.
    let info = unsafe {
        (*info.as_mut_ptr()).struct_size = std::mem::size_of::<ffi::ttm_tensor_info>() as u32;
        assert_eq!(ffi::ttm_tensor_get_info(t, info.as_mut_ptr()), ffi::TTM_OK);
        info.assume_init()
    };
    assert_eq!(info.allocated, 0);
    // SAFETY: frees the orphan once; freeing NULL is allowed.
    unsafe {
        ffi::ttm_tensor_free(t);
        ffi::ttm_tensor_free(ptr::null_mut());
    }
    assert_eq!(tt_metal_sys::live_handles(), before);
}

#[test]
fn describe_uses_the_buffer_protocol() {
    let _g = serial();
    let full = {
        let d = dev();
        tile(&d, &[1.0], &[1, 1]).describe().unwrap()
    };
    assert!(full.contains("DeviceStorage"), "{full}");
    let mut h = ptr::null_mut();
    let dims = [1u32];
    let one = [1.0f32];
    let mut needed = 0usize;
    let mut small = [0 as std::os::raw::c_char; 8];
    // SAFETY: a host tensor (NULL device) from one value; every pointer is live for its call,
    // and `small` / `big` hold the capacities passed.
    unsafe {
        assert_eq!(
            ffi::ttm_tensor_from_f32(
                ptr::null_mut(),
                one.as_ptr(),
                1,
                dims.as_ptr(),
                1,
                ffi::TTM_F32,
                ffi::TTM_ROW_MAJOR,
                ffi::TTM_BUF_DEFAULT,
                &mut h
            ),
            ffi::TTM_OK
        );
        let st = ffi::ttm_tensor_describe(h, small.as_mut_ptr(), small.len(), &mut needed);
        assert_eq!(st, ffi::TTM_E_BUFFER_TOO_SMALL);
        assert!(needed > small.len());
        assert_eq!(
            CStr::from_ptr(small.as_ptr()).to_bytes().len(),
            small.len() - 1
        );
        let mut big = vec![0 as std::os::raw::c_char; needed];
        let st = ffi::ttm_tensor_describe(h, big.as_mut_ptr(), big.len(), &mut needed);
        assert_eq!(st, ffi::TTM_OK);
        let text = CStr::from_ptr(big.as_ptr()).to_string_lossy().into_owned();
        assert!(text.contains("HostStorage"), "{text}");
        // ops refuse host tensors, as TT-NN does
        let mut out = ptr::null_mut();
        let st = ffi::ttm_unary(ffi::TTM_NEG, h, 0, ptr::null(), &mut out);
        assert_eq!(st, ffi::TTM_E_TT_FATAL);
        assert!(raw_error().2.contains("need to be on device"));
        ffi::ttm_tensor_free(h);
    }
}

#[test]
fn injected_tt_fatal_is_parsed_into_the_error_record() {
    let _g = serial();
    let d = dev();
    let a = tile(&d, &ramp(8), &[2, 4]);
    let what = "TT_FATAL @ /tt-metal/ttnn/cpp/ttnn/operations/normalization/softmax/device/\
                softmax_device_operation.cpp:88: input_tensor.dtype() == DataType::FLOAT32 || x: y\n\
                info:\nSoftmax needs FLOAT32 or BFLOAT16 input\nsecond line\n\
                backtrace:\n --- ttnn::prim::softmax(...)\n --- main\n";
    tt_metal_sys::inject_error(Some("ttm_softmax"), what).unwrap();
    // another entry point is not affected
    assert!(d.unary(UnaryOp::Exp, &a, false, &no()).is_ok());
    let e = d.softmax(&a, -1, true, &no()).unwrap_err();
    assert_eq!(e.status, Status::TtFatal);
    assert_eq!(e.kind, "TT_FATAL");
    assert_eq!(e.function, "ttm_softmax");
    assert!(
        e.file.ends_with("softmax_device_operation.cpp"),
        "{}",
        e.file
    );
    assert_eq!(e.line, 88);
    assert_eq!(
        e.condition,
        "input_tensor.dtype() == DataType::FLOAT32 || x: y"
    );
    assert_eq!(
        e.message,
        "Softmax needs FLOAT32 or BFLOAT16 input\nsecond line"
    );
    assert_eq!(e.backtrace, " --- ttnn::prim::softmax(...)\n --- main");
    assert_eq!(e.raw, what);
    let shown = e.to_string();
    assert!(
        shown.starts_with("TT_FATAL in ttm_softmax @ /tt-metal/"),
        "{shown}"
    );
    // one-shot
    assert!(d.softmax(&a, -1, true, &no()).is_ok());

    tt_metal_sys::inject_error(None, "std::out_of_range: vector::_M_range_check").unwrap();
    let e = d.softmax(&a, -1, true, &no()).unwrap_err();
    assert_eq!(
        (e.status, e.kind.as_str()),
        (Status::Cxx, "std::runtime_error")
    );
    assert_eq!(e.message, "std::out_of_range: vector::_M_range_check");
    assert!(e.file.is_empty() && e.line == 0);
    tt_metal_sys::inject_error(Some("ttm_matmul"), "x").unwrap();
    tt_metal_sys::clear_injection();
    assert!(d.matmul(&a, &a, false, true, &no()).is_ok());
}

#[test]
fn handles_are_balanced_after_every_wrapper_call() {
    let _g = serial();
    let before = tt_metal_sys::live_handles();
    {
        let d = dev();
        let a = tile(&d, &ramp(64), &[8, 8]);
        let b = d.binary(BinaryOp::Add, &a, &a, &no()).unwrap();
        let _fail = d.binary(BinaryOp::Add, &a, &tile(&d, &ramp(6), &[2, 3]), &no());
        assert!(tt_metal_sys::live_handles().1 >= before.1 + 2);
        drop(b);
    }
    assert_eq!(tt_metal_sys::live_handles(), before);
}
