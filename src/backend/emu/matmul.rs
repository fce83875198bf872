//! The matrix engine (FPU): operand registers, math-fidelity bit planes, Dst accumulation and
//! the K-block spill of a matmul, after TT_NUMERICS §3.
//!
//! # Model
//!
//! * **Operands** (§3.1, §1.2): `in0` (activations, the first argument of `ttnn.linear`) goes to
//!   SrcB, `in1` (weights) to SrcA. An fp32 operand is truncated to TF32 (low 13 mantissa bits
//!   dropped); bf16 / bfloat8_b / bfloat4_b values are already bf16 numbers (the unpacker's
//!   BFP → BF16 is lossless, §1.4). Denormals read as 0.
//! * **Fidelity phases** (§3.2): SrcA splits into `A_hi` (hidden + top 4 mantissa bits) and
//!   `A_lo` (the next 5), SrcB into `B_hi` (hidden + top 6) and `B_lo` (the next 4), all by
//!   truncation. Phase 0 multiplies `B_hi·A_hi`, 1 `B_hi·A_lo`, 2 `B_lo·A_hi`, 3 `B_lo·A_lo`;
//!   LoFi runs phase 0, HiFi2 phases 0–1, HiFi3 0–2, HiFi4 all four.
//! * **Accumulation** (§3.3): one MVMUL adds a 16-long dot product (one face of K) to Dst. Per
//!   output element the order is: for each 32-wide K tile, for each phase, for each of its two
//!   16-wide faces, `Dst ← round(Dst + Σ₁₆)`. With a BF16 Dst (`fp32_dest_acc_en = false`) the
//!   rounding is to bf16, ties away from zero (the device rounding of §1.3); with an FP32 Dst
//!   it is the f32 addition. The 16-term sum itself is formed in f32 (its precision is
//!   unspecified by the ISA, §3.2): every phase product is a product of two numbers of ≤ 8
//!   significant bits, hence exact, and the terms are added pairwise in the order of the
//!   `vdpbf16ps` instruction (odd then even element of each pair), so the AVX-512 BF16 kernel
//!   and the portable kernel agree bit for bit.
//! * **K blocks** (§3.4): K is split into `Kt / in0_block_w` blocks. Between blocks the partial
//!   result either goes through the packer's L1 accumulation (`L1 ← round_interm(L1 + Dst)`,
//!   Dst restarting from 0; interm = Float16_b, or Float32 with an FP32 Dst), or is spilled in
//!   the spill format (the output dtype, or Float32 with an FP32 Dst) and reloaded into Dst
//!   (lossless for bf16 / block floats, TF32-truncated for Float32, §3.4). The final value is
//!   what the caller then biases and packs into the output dtype.

use rayon::prelude::*;

use super::format::{self, ftz, Side, FACE, TILE};
use super::profile::MathFidelity;
use crate::tensor::DType;

/// Rows of activations per micro-kernel call.
pub(crate) const MR: usize = 6;
/// Output columns per weight panel (two 16-lane vectors, one bfp exponent group each).
pub(crate) const NR: usize = 32;
/// Rows of one parallel task.
const MC: usize = MR * 16;
/// Panels of one parallel task.
const NC_PANELS: usize = 8;
/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// fp32 → TF32: drop the low 13 mantissa bits (truncation, §1.2).
#[inline]
pub fn tf32(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xFFFF_E000)
}

/// The value an operand of storage dtype `dtype` holds in a source register (§1.2, §1.4).
#[inline]
pub fn src_reg(x: f32, dtype: DType) -> f32 {
    ftz(if dtype == DType::F32 { tf32(x) } else { x })
}

/// SrcA (5-bit multiplier side) planes of a register value: (hidden + 4 bits, next 5 bits).
#[inline]
pub fn srca_planes(a: f32) -> (f32, f32) {
    let b = a.to_bits();
    let hi = f32::from_bits(b & 0xFFF8_0000);
    let nine = f32::from_bits(b & 0xFFFF_C000);
    (hi, ftz(nine - hi))
}

/// SrcB (7-bit multiplier side) planes of a register value: (hidden + 6 bits, next 4 bits).
#[inline]
pub fn srcb_planes(b: f32) -> (f32, f32) {
    let bits = b.to_bits();
    let hi = f32::from_bits(bits & 0xFFFE_0000);
    let ten = f32::from_bits(bits & 0xFFFF_E000);
    (hi, ftz(ten - hi))
}

/// (SrcB plane, SrcA plane) of each fidelity phase, 0 = hi, 1 = lo (§3.2).
pub fn phases(f: MathFidelity) -> &'static [(usize, usize)] {
    const ALL: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];
    &ALL[..f.phases()]
}

/// Dst register format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dst {
    Bf16,
    Fp32,
}

impl Dst {
    pub fn from_fp32_acc(fp32: bool) -> Dst {
        if fp32 {
            Dst::Fp32
        } else {
            Dst::Bf16
        }
    }

    /// Dst ← round(a + b) (§3.3).
    #[inline]
    pub fn add(self, a: f32, b: f32) -> f32 {
        match self {
            Dst::Bf16 => round_dst_bf16(a + b),
            Dst::Fp32 => a + b,
        }
    }

    /// The format of a value written to Dst.
    #[inline]
    pub fn store(self, x: f32) -> f32 {
        match self {
            Dst::Bf16 => round_dst_bf16(x),
            Dst::Fp32 => x,
        }
    }
}

/// BF16 Dst rounding as the kernels do it: round to nearest, ties away (on the bit pattern;
/// NaN and overflow behave as in the SIMD kernel).
#[inline]
pub fn round_dst_bf16(x: f32) -> f32 {
    f32::from_bits(x.to_bits().wrapping_add(0x8000) & 0xFFFF_0000)
}

/// What happens to the partial result at the end of each K block but the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockEnd {
    /// One block, or a spill whose pack and reload are lossless (bf16 out, BF16 Dst).
    Keep,
    /// Packer L1 accumulation into Float16_b: L1 ← bf16(L1 + Dst), Dst ← 0.
    L1Bf16,
    /// Packer L1 accumulation into Float32: L1 ← L1 + Dst, Dst ← 0.
    L1Fp32,
    /// Spill in Float32, reload through SrcA: Dst ← TF32(Dst).
    ReloadTf32,
    /// Spill in a block-float output dtype (magnitude bits), reload exactly.
    SpillBfp(u32),
}

/// A matmul's engine settings, resolved for its shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    pub fidelity: MathFidelity,
    pub dst: Dst,
    /// K elements per block (`in0_block_w · 32`).
    pub block_k: usize,
    pub block_end: BlockEnd,
}

impl Engine {
    /// Settings for a matmul with `k` (logical) inner dim, following §3.4: `in0_block_w` is 2
    /// tiles when the tile count is even, else 1 (the default program configs' choice is not
    /// in TT_NUMERICS; this is an assumption); L1 accumulation runs when requested and it
    /// pays (more than 2 blocks, or more than 1 with a fused bias).
    pub fn new(
        fidelity: MathFidelity,
        fp32_dest: bool,
        packer_l1_acc: bool,
        k: usize,
        out: DType,
        bias: bool,
    ) -> Engine {
        let kt = k.div_ceil(TILE).max(1);
        let w = if kt % 2 == 0 { 2 } else { 1 };
        let blocks = kt / w;
        let dst = Dst::from_fp32_acc(fp32_dest);
        let l1 = packer_l1_acc && (blocks > 2 || (blocks > 1 && bias));
        let block_end = if blocks == 1 {
            BlockEnd::Keep
        } else if l1 {
            match dst {
                Dst::Bf16 => BlockEnd::L1Bf16,
                Dst::Fp32 => BlockEnd::L1Fp32,
            }
        } else {
            match (dst, format::bfp_width(out)) {
                (Dst::Fp32, _) => BlockEnd::ReloadTf32,
                (Dst::Bf16, Some(w)) => BlockEnd::SpillBfp(w),
                (Dst::Bf16, None) => BlockEnd::Keep,
            }
        };
        Engine {
            fidelity,
            dst,
            block_k: w * TILE,
            block_end,
        }
    }

    pub fn l1_acc(&self) -> bool {
        matches!(self.block_end, BlockEnd::L1Bf16 | BlockEnd::L1Fp32)
    }
}

/// Applies a block end to one 16-column exponent group of partial results (`d`, Dst) and its
/// L1 accumulator (`l1`). `first` is true at the end of block 0.
#[inline]
pub(crate) fn block_end_group(mode: BlockEnd, d: &mut [f32], l1: &mut [f32], first: bool) {
    match mode {
        BlockEnd::Keep => {}
        BlockEnd::L1Bf16 | BlockEnd::L1Fp32 => {
            for (d, l) in d.iter_mut().zip(l1.iter_mut()) {
                let s = if first { *d } else { *l + *d };
                *l = if mode == BlockEnd::L1Bf16 {
                    round_dst_bf16(s)
                } else {
                    s
                };
                *d = 0.0;
            }
        }
        BlockEnd::ReloadTf32 => d.iter_mut().for_each(|v| *v = ftz(tf32(*v))),
        BlockEnd::SpillBfp(w) => {
            let dtype = if w == 7 {
                DType::Bfloat8B
            } else {
                DType::Bfloat4B
            };
            let n = d.len();
            format::store(d, n, dtype, Side::Device);
        }
    }
}

/// The final value of an element after the last block (L1 modes fold the last partial in).
#[inline]
pub(crate) fn finish(mode: BlockEnd, d: f32, l1: f32) -> f32 {
    match mode {
        BlockEnd::L1Bf16 => round_dst_bf16(l1 + d),
        BlockEnd::L1Fp32 => l1 + d,
        _ => d,
    }
}

/// Operands packed for the kernels: bf16 bit pairs along K.
pub(crate) struct Packed {
    /// Activation planes, row-major [rows_padded][kp/2], one per SrcB plane in use.
    pub x: Vec<Vec<u32>>,
    /// Weight planes, [panels][kp/2][NR], one per SrcA plane in use.
    pub w: Vec<Vec<u32>>,
    /// K padded to whole tiles.
    pub kp: usize,
    pub rows: usize,
    pub panels: usize,
}

#[inline]
fn bf16_bits(x: f32) -> u32 {
    x.to_bits() >> 16
}

/// How many planes of each side a fidelity reads: (SrcB planes, SrcA planes).
fn planes_used(f: MathFidelity) -> (usize, usize) {
    let ph = phases(f);
    let b = ph.iter().map(|p| p.0).max().unwrap_or(0) + 1;
    let a = ph.iter().map(|p| p.1).max().unwrap_or(0) + 1;
    (b, a)
}

/// Packs `x` [m, k] (SrcB) and `w` [n, k] (SrcA; row j feeds output column j).
pub(crate) fn pack(
    x: &[f32],
    xdt: DType,
    w: &[f32],
    wdt: DType,
    m: usize,
    k: usize,
    n: usize,
    fidelity: MathFidelity,
) -> Packed {
    let kp = k.div_ceil(TILE).max(1) * TILE;
    let kh = kp / 2;
    let rows = m.div_ceil(MR) * MR;
    let panels = n.div_ceil(NR);
    let (nb, na) = planes_used(fidelity);
    let mut xp: Vec<Vec<u32>> = (0..nb).map(|_| vec![0u32; rows * kh]).collect();
    for i in 0..m {
        let src = &x[i * k..(i + 1) * k];
        for (p, plane) in xp.iter_mut().enumerate() {
            let dst = &mut plane[i * kh..(i + 1) * kh];
            for (kk, &v) in src.iter().enumerate() {
                let (hi, lo) = srcb_planes(src_reg(v, xdt));
                let bits = bf16_bits(if p == 0 { hi } else { lo });
                dst[kk / 2] |= bits << (16 * (kk % 2));
            }
        }
    }
    let mut wp: Vec<Vec<u32>> = (0..na).map(|_| vec![0u32; panels * kh * NR]).collect();
    for (p, plane) in wp.iter_mut().enumerate() {
        plane
            .par_chunks_mut(kh * NR)
            .enumerate()
            .for_each(|(pi, panel)| {
                for c in 0..NR {
                    let j = pi * NR + c;
                    if j >= n {
                        break;
                    }
                    let src = &w[j * k..(j + 1) * k];
                    for (kk, &v) in src.iter().enumerate() {
                        let (hi, lo) = srca_planes(src_reg(v, wdt));
                        let bits = bf16_bits(if p == 0 { hi } else { lo });
                        panel[(kk / 2) * NR + c] |= bits << (16 * (kk % 2));
                    }
                }
            });
    }
    Packed {
        x: xp,
        w: wp,
        kp,
        rows,
        panels,
    }
}

/// One micro-kernel call: rows `r0..r0+MR` × panel `pi`, written to `out` ([MR][NR]).
pub(crate) struct Tile<'a> {
    pub packed: &'a Packed,
    pub r0: usize,
    pub pi: usize,
}

#[inline]
fn lo16(v: u32) -> f32 {
    f32::from_bits(v << 16)
}

#[inline]
fn hi16(v: u32) -> f32 {
    f32::from_bits(v & 0xFFFF_0000)
}

/// The portable kernel; bit-identical to the SIMD one.
pub(crate) fn kernel_portable(t: &Tile<'_>, e: &Engine, out: &mut [[f32; NR]; MR]) {
    let p = t.packed;
    let kh = p.kp / 2;
    let ph = phases(e.fidelity);
    let mut d = [[0.0f32; NR]; MR];
    let mut l1 = [[0.0f32; NR]; MR];
    let tiles = p.kp / TILE;
    let tiles_per_block = e.block_k / TILE;
    for kt in 0..tiles {
        for &(bp, ap) in ph {
            let xs = &p.x[bp];
            let ws = &p.w[ap][t.pi * kh * NR..(t.pi + 1) * kh * NR];
            for face in 0..2 {
                let base = kt * FACE + face * (FACE / 2);
                let mut part = [[0.0f32; NR]; MR];
                for q in 0..FACE / 2 {
                    let kpair = base + q;
                    let wrow = &ws[kpair * NR..(kpair + 1) * NR];
                    for (r, prow) in part.iter_mut().enumerate() {
                        let a = xs[(t.r0 + r) * kh + kpair];
                        let (a0, a1) = (lo16(a), hi16(a));
                        for (acc, &b) in prow.iter_mut().zip(wrow) {
                            let s = ftz(*acc + a1 * hi16(b));
                            *acc = ftz(s + a0 * lo16(b));
                        }
                    }
                }
                for (drow, prow) in d.iter_mut().zip(&part) {
                    for (dv, &pv) in drow.iter_mut().zip(prow) {
                        *dv = e.dst.add(*dv, pv);
                    }
                }
            }
        }
        let end_of_block = (kt + 1) % tiles_per_block == 0;
        if end_of_block && kt + 1 < tiles {
            let first = kt + 1 == tiles_per_block;
            for (drow, lrow) in d.iter_mut().zip(l1.iter_mut()) {
                for (dg, lg) in drow.chunks_mut(FACE).zip(lrow.chunks_mut(FACE)) {
                    block_end_group(e.block_end, dg, lg, first);
                }
            }
        }
    }
    for ((orow, drow), lrow) in out.iter_mut().zip(&d).zip(&l1) {
        for ((o, &dv), &lv) in orow.iter_mut().zip(drow).zip(lrow) {
            *o = finish(e.block_end, dv, lv);
        }
    }
}

/// The kernel this machine runs.
fn kernel(t: &Tile<'_>, e: &Engine, out: &mut [[f32; NR]; MR]) {
    if !super::simd::kernel(t, e, out) {
        kernel_portable(t, e, out);
    }
}

/// The engine's value of x · wᵀ before bias and output packing.
///
/// # Shapes
/// x [m, k] (SrcB, stored as `xdt`), w [n, k] (SrcA, stored as `wdt`) → [m, n] row-major.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    x: &[f32],
    xdt: DType,
    w: &[f32],
    wdt: DType,
    m: usize,
    k: usize,
    n: usize,
    e: &Engine,
    threads: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; m * n];
    if m == 0 || n == 0 {
        return out;
    }
    let packed = pack(x, xdt, w, wdt, m, k, n, e.fidelity);
    let mblocks = packed.rows.div_ceil(MC);
    let nblocks = packed.panels.div_ceil(NC_PANELS);
    let task = |(mb, nbk): (usize, usize)| -> (usize, usize, usize, Vec<f32>) {
        let r_start = mb * MC;
        let r_end = (r_start + MC).min(packed.rows);
        let p_start = nbk * NC_PANELS;
        let p_end = (p_start + NC_PANELS).min(packed.panels);
        let cols = (p_end - p_start) * NR;
        let mut buf = vec![0.0f32; (r_end - r_start) * cols];
        let mut tile = [[0.0f32; NR]; MR];
        for pi in p_start..p_end {
            for r0 in (r_start..r_end).step_by(MR) {
                kernel(
                    &Tile {
                        packed: &packed,
                        r0,
                        pi,
                    },
                    e,
                    &mut tile,
                );
                for (r, row) in tile.iter().enumerate() {
                    let at = (r0 - r_start + r) * cols + (pi - p_start) * NR;
                    buf[at..at + NR].copy_from_slice(row);
                }
            }
        }
        (r_start, p_start * NR, cols, buf)
    };
    let grid: Vec<(usize, usize)> = (0..mblocks)
        .flat_map(|mb| (0..nblocks).map(move |nb| (mb, nb)))
        .collect();
    let macs = m.saturating_mul(n).saturating_mul(k) * e.fidelity.phases();
    let blocks: Vec<(usize, usize, usize, Vec<f32>)> = if threads > 1 && macs >= PARALLEL_MIN_MACS {
        grid.into_par_iter().map(task).collect()
    } else {
        grid.into_iter().map(task).collect()
    };
    for (r_start, c_start, cols, buf) in blocks {
        for (r, row) in buf.chunks(cols).enumerate() {
            let i = r_start + r;
            if i >= m {
                break;
            }
            let ncopy = cols.min(n - c_start);
            out[i * n + c_start..i * n + c_start + ncopy].copy_from_slice(&row[..ncopy]);
        }
    }
    out
}

/// Element-wise FPU multiply (ELWMUL) with fidelity phases: `a` in SrcA, `b` in SrcB, each
/// phase product added into Dst with its rounding (§3.3, §3.6).
#[inline]
pub fn fpu_mul(a: f32, adt: DType, b: f32, bdt: DType, fidelity: MathFidelity, dst: Dst) -> f32 {
    let (ahi, alo) = srca_planes(src_reg(a, adt));
    let (bhi, blo) = srcb_planes(src_reg(b, bdt));
    let pa = [ahi, alo];
    let pb = [bhi, blo];
    let mut d = 0.0f32;
    for (i, &(bp, ap)) in phases(fidelity).iter().enumerate() {
        let p = ftz(pb[bp] * pa[ap]);
        d = if i == 0 { dst.store(p) } else { dst.add(d, p) };
    }
    d
}

/// Element-wise FPU add (ELWADD): no fidelity; the sum rounded to Dst (§3.6).
#[inline]
pub fn fpu_add(a: f32, adt: DType, b: f32, bdt: DType, dst: Dst) -> f32 {
    dst.store(ftz(src_reg(a, adt) + src_reg(b, bdt)))
}

/// Row reduction on the FPU (`reduce_tile` REDUCE_ROW): Σ x·s with the scaler `s` in SrcA and
/// the data in SrcB, as a matmul against a constant column (§3.1, §3.6, §4.8).
///
/// # Shapes
/// x [rows, width] → [rows].
pub fn reduce_rows(
    x: &[f32],
    xdt: DType,
    width: usize,
    scaler: f32,
    fidelity: MathFidelity,
    dst: Dst,
) -> Vec<f32> {
    if width == 0 {
        return vec![0.0; x.len()];
    }
    let rows = x.len() / width;
    let s = vec![scaler; width];
    let e = Engine {
        fidelity,
        dst,
        block_k: width.div_ceil(TILE).max(1) * TILE,
        block_end: BlockEnd::Keep,
    };
    matmul(x, xdt, &s, DType::Bf16, rows, width, 1, &e, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mm1(x: f32, w: f32, f: MathFidelity, fp32: bool) -> f32 {
        let e = Engine::new(f, fp32, false, 1, DType::Bf16, false);
        matmul(&[x], DType::Bf16, &[w], DType::Bf16, 1, 1, 1, &e, 1)[0]
    }

    /// TT_NUMERICS §3.3 (tt-metal #12453): bf16 1.3125 × 7.96875 = 10.4375 at HiFi2 but 10.5 at
    /// HiFi4 with a BF16 Dst (the weight 1.3125 sits in SrcA, the activation in SrcB).
    #[test]
    fn bf16_dest_example_of_section_3_3() {
        let (x, w) = (7.96875f32, 1.3125f32);
        assert_eq!(mm1(x, w, MathFidelity::LoFi, false), 10.4375);
        assert_eq!(mm1(x, w, MathFidelity::HiFi2, false), 10.4375);
        assert_eq!(mm1(x, w, MathFidelity::HiFi3, false), 10.5);
        assert_eq!(mm1(x, w, MathFidelity::HiFi4, false), 10.5);
        // FP32 Dst: the exact product 10.458984375 (HiFi3/HiFi4), the truncated 10.41796875.
        assert_eq!(mm1(x, w, MathFidelity::HiFi4, true), 10.458984375);
        assert_eq!(mm1(x, w, MathFidelity::HiFi2, true), 10.41796875);
        // Swapping the roles changes the result: SrcA = 7.96875 keeps 4 mantissa bits (7.75)
        // at LoFi, and HiFi2 already rounds up to 10.5 — the published numbers need the
        // weight in SrcA.
        assert_eq!(mm1(w, x, MathFidelity::LoFi, true), 10.171875);
        assert_eq!(mm1(w, x, MathFidelity::HiFi2, false), 10.5);
    }

    #[test]
    fn fidelity_levels_on_crafted_products() {
        // a (SrcA) = 1 + 2^-1 + 2^-5 + 2^-7: A_hi = 1.5, A_lo = 2^-5 + 2^-7.
        // b (SrcB) = 1 + 2^-7: B_hi = 1, B_lo = 2^-7.
        let a = 1.0 + 0.5 + 1.0 / 32.0 + 1.0 / 128.0;
        let b = 1.0 + 1.0 / 128.0;
        let exact = a as f64 * b as f64;
        let want = [
            (MathFidelity::LoFi, 1.5),
            (MathFidelity::HiFi2, a as f64),
            (MathFidelity::HiFi3, a as f64 + 1.5 / 128.0),
            (MathFidelity::HiFi4, exact),
        ];
        for (f, v) in want {
            assert_eq!(mm1(b, a, f, true) as f64, v, "{f:?}");
            assert_eq!(
                fpu_mul(a, DType::Bf16, b, DType::Bf16, f, Dst::Fp32) as f64,
                v,
                "{f:?} eltwise"
            );
        }
        // TF32: an fp32 operand loses its low 13 bits; SrcA never uses the 10th TF32 bit.
        let x = 1.0 + f32::EPSILON * 8193.0; // 1 + 2^-10 + 2^-23·…: TF32 keeps 1 + 2^-10
        assert_eq!(tf32(x), 1.0 + 1.0 / 1024.0);
        let (hi, lo) = srca_planes(src_reg(x, DType::F32));
        assert_eq!((hi, lo), (1.0, 0.0), "the 10th bit is not in A_lo");
        let (hi, lo) = srcb_planes(src_reg(x, DType::F32));
        assert_eq!((hi, lo), (1.0, 1.0 / 1024.0));
    }

    #[test]
    fn bf16_dst_rounds_after_every_chunk() {
        // 1.0 then 32 terms of 2^-9: each 16-term chunk (2^-5) survives the bf16 Dst, although a
        // single 2^-9 added to 1.0 would round away.
        let k = 48;
        let mut x = vec![1.0f32 / 512.0; k];
        x[..16].fill(0.0);
        x[0] = 1.0;
        let w = vec![1.0f32; k];
        let e = Engine::new(MathFidelity::HiFi4, false, false, k, DType::Bf16, false);
        let got = matmul(&x, DType::Bf16, &w, DType::Bf16, 1, k, 1, &e, 1)[0];
        assert_eq!(got, 1.0625);
        assert_eq!(round_dst_bf16(1.0 + 1.0 / 512.0), 1.0);
        // 1.0 and 47 terms of 2^-12: chunk 0 (1 + 15·2^-12) rounds to 1.0; chunks 1 and 2 add
        // 2^-8 each, an exact tie every time → away from zero.
        let mut x2 = vec![1.0f32 / 4096.0; 48];
        x2[0] = 1.0;
        let got = matmul(&x2, DType::Bf16, &w, DType::Bf16, 1, 48, 1, &e, 1)[0];
        assert_eq!(got, 1.0 + 2.0 / 128.0);
        let e32 = Engine::new(MathFidelity::HiFi4, true, false, 48, DType::Bf16, false);
        let got = matmul(&x2, DType::Bf16, &w, DType::Bf16, 1, 48, 1, &e32, 1)[0];
        assert_eq!(got, 1.0 + 47.0 / 4096.0);
    }

    #[test]
    fn k_block_spill_and_l1_acc() {
        // K = 128 → 4 tiles, in0_block_w 2 → 2 blocks.
        let e = Engine::new(MathFidelity::HiFi2, false, true, 128, DType::Bfloat8B, false);
        assert_eq!(e.block_end, BlockEnd::SpillBfp(7), "2 blocks: L1 acc does not pay");
        let e = Engine::new(MathFidelity::HiFi2, false, true, 128, DType::Bfloat8B, true);
        assert_eq!(e.block_end, BlockEnd::L1Bf16, "with a fused bias it does");
        let e = Engine::new(MathFidelity::HiFi2, true, false, 128, DType::F32, false);
        assert_eq!(e.block_end, BlockEnd::ReloadTf32);
        let e = Engine::new(MathFidelity::HiFi2, false, false, 64, DType::Bf16, false);
        assert_eq!(e.block_end, BlockEnd::Keep);
        // Spill in bfp8 between blocks: column 0 holds 64 after block 0, column 1 holds 0.375,
        // which the bfp8 spill quantises against column 0's exponent (a step of 1.0) → 0.
        let (m, k, n) = (1, 128, 2);
        let mut x = vec![0.0f32; k];
        x[0] = 1.0;
        x[70] = 1.0;
        let mut w = vec![0.0f32; n * k];
        w[0] = 64.0; // column 0, block 0
        w[k] = 0.375; // column 1, block 0
        w[k + 70] = 0.25; // column 1, block 1
        let spill = Engine::new(MathFidelity::HiFi4, false, false, k, DType::Bfloat8B, false);
        let got = matmul(&x, DType::Bf16, &w, DType::Bf16, m, k, n, &spill, 1);
        assert_eq!(got, vec![64.0, 0.25]);
        let keep = Engine::new(MathFidelity::HiFi4, false, false, k, DType::Bf16, false);
        let got = matmul(&x, DType::Bf16, &w, DType::Bf16, m, k, n, &keep, 1);
        assert_eq!(got, vec![64.0, 0.625]);
        // L1 accumulation in Float16_b restarts Dst per block: 4 blocks of 256 + 1 each.
        let k = 256;
        let x = vec![1.0f32; k];
        let mut w = vec![0.0f32; k];
        for blk in 0..4 {
            w[blk * 64] = 256.0;
            w[blk * 64 + 1] = 1.0;
        }
        let l1 = Engine::new(MathFidelity::HiFi4, false, true, k, DType::Bf16, false);
        assert_eq!(l1.block_end, BlockEnd::L1Bf16);
        let got = matmul(&x, DType::Bf16, &w, DType::Bf16, 1, k, 1, &l1, 1)[0];
        // Each block: 256 + 1 = 257 → bf16 258 (ties away); L1: 258, 516, 774 → 776, 1034→1032.
        let mut l = 0.0f32;
        for _ in 0..4 {
            l = round_dst_bf16(l + 258.0);
        }
        assert_eq!(got, l);
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Naive element loop of the model, independent of packing and kernels.
    fn naive(x: &[f32], w: &[f32], m: usize, k: usize, n: usize, e: &Engine) -> Vec<f32> {
        let kp = k.div_ceil(TILE) * TILE;
        let mut out = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let xv = |kk: usize| if kk < k { x[i * k + kk] } else { 0.0 };
                let wv = |kk: usize| if kk < k { w[j * k + kk] } else { 0.0 };
                let mut d = [0.0f32];
                let mut l1 = [0.0f32];
                for kt in 0..kp / TILE {
                    for &(bp, ap) in phases(e.fidelity) {
                        for face in 0..2 {
                            let mut acc = 0.0f32;
                            for q in 0..8 {
                                let k0 = kt * 32 + face * 16 + 2 * q;
                                let term = |kk: usize| {
                                    let b = srcb_planes(src_reg(xv(kk), DType::Bf16));
                                    let a = srca_planes(src_reg(wv(kk), DType::Bf16));
                                    [b.0, b.1][bp] * [a.0, a.1][ap]
                                };
                                acc = ftz(acc + term(k0 + 1));
                                acc = ftz(acc + term(k0));
                            }
                            d[0] = e.dst.add(d[0], acc);
                        }
                    }
                    let tpb = e.block_k / TILE;
                    if (kt + 1) % tpb == 0 && kt + 1 < kp / TILE {
                        // single column: groups of 1 are fine only for non-bfp modes
                        block_end_group(e.block_end, &mut d, &mut l1, kt + 1 == tpb);
                    }
                }
                out[i * n + j] = finish(e.block_end, d[0], l1[0]);
            }
        }
        out
    }

    #[test]
    fn kernels_match_the_naive_model_and_each_other() {
        let mut seed = 7u64;
        for &(m, k, n) in &[(7, 200, 45), (13, 64, 33), (1, 17, 70), (6, 96, 32)] {
            let x: Vec<f32> = (0..m * k).map(|_| format::bf16_rne(lcg(&mut seed))).collect();
            let w: Vec<f32> = (0..n * k)
                .map(|_| format::bf16_rne(lcg(&mut seed) * 0.1))
                .collect();
            for f in [
                MathFidelity::LoFi,
                MathFidelity::HiFi2,
                MathFidelity::HiFi3,
                MathFidelity::HiFi4,
            ] {
                for (fp32, l1) in [(false, false), (false, true), (true, false), (true, true)] {
                    let e = Engine::new(f, fp32, l1, k, DType::Bf16, false);
                    let got = matmul(&x, DType::Bf16, &w, DType::Bf16, m, k, n, &e, 2);
                    let want = naive(&x, &w, m, k, n, &e);
                    assert_eq!(got, want, "{m}x{k}x{n} {f:?} fp32={fp32} l1={l1}");
                    // Portable kernel directly.
                    let packed = pack(&x, DType::Bf16, &w, DType::Bf16, m, k, n, f);
                    let mut t = [[0.0f32; NR]; MR];
                    kernel_portable(
                        &Tile {
                            packed: &packed,
                            r0: 0,
                            pi: 0,
                        },
                        &e,
                        &mut t,
                    );
                    for r in 0..m.min(MR) {
                        for c in 0..n.min(NR) {
                            assert_eq!(t[r][c], want[r * n + c]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn reduce_rows_sums_with_the_scaler() {
        let x: Vec<f32> = (0..64).map(|i| (i % 8) as f32).collect();
        let r = reduce_rows(&x, DType::Bf16, 32, 1.0 / 32.0, MathFidelity::HiFi4, Dst::Bf16);
        assert_eq!(r, vec![3.5, 3.5]);
    }
}
