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
//!   it is the f32 addition. The sum `Dst + Σ₁₆` is formed in f32 before that rounding (the
//!   ISA leaves the precision of the 16-term sum unspecified, §3.2): every phase product is a
//!   product of two numbers of ≤ 8 significant bits, hence exact in f32, and the terms are
//!   added to Dst in K order, each addition rounded to nearest even — what a fused
//!   multiply-add does with an exact product, so the AVX-512 kernel and the portable kernel
//!   agree bit for bit.
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
/// Output columns per weight panel (four 16-lane vectors, one bfp exponent group each).
pub(crate) const NR: usize = 64;
/// 16-lane vectors per panel row.
pub(crate) const NV: usize = NR / 16;
/// Rows swept together over one K block (their states and the block's weight slice stay in L1).
const MC: usize = MR * 8;
/// Panels of one parallel task (2 × 64 columns × 1152 K × 2 planes ≈ 1.2 MB: fits L2).
const NC_PANELS: usize = 2;
/// Below this many multiply-adds a product runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// fp32 → TF32: drop the low 13 mantissa bits (truncation, §1.2).
#[inline]
pub fn tf32(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0xFFFF_E000)
}

/// The value an operand of storage dtype `dtype` holds in a source register (§1.2, §1.4).
/// The FPU reads exponent-255 patterns (±∞, NaN) as huge ordinary numbers and never makes a
/// NaN (§1.6): they enter as ±f32::MAX, so 0·∞ is 0 and overflow still saturates to ±∞.
#[inline]
pub fn src_reg(x: f32, dtype: DType) -> f32 {
    if !x.is_finite() {
        return f32::MAX.copysign(x);
    }
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
        let w = if kt.is_multiple_of(2) { 2 } else { 1 };
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

/// A zeroed f32 buffer whose data starts on a 64-byte boundary, so the kernel's vector loads
/// never straddle cache lines.
pub(crate) struct Aligned {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl Aligned {
    fn zeros(len: usize) -> Aligned {
        let buf = vec![0.0f32; len + 15];
        let off = ((64 - buf.as_ptr() as usize % 64) % 64) / 4;
        Aligned { buf, off, len }
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Activations packed for the kernels: the SrcB planes as f32, [rows_padded / MR][kp][MR].
pub(crate) struct PackedX {
    pub planes: Vec<Aligned>,
    /// K padded to whole tiles.
    pub kp: usize,
    pub rows: usize,
}

/// Weights packed for the kernels: the SrcA planes as f32, [panels][kp][NR].
pub struct PackedW {
    pub(crate) planes: Vec<Aligned>,
    pub(crate) kp: usize,
    pub(crate) panels: usize,
}

impl PackedW {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.planes.iter().map(|p| p.len * 4).sum()
    }
}

/// The view the kernels read.
pub(crate) struct Packed<'a> {
    pub x: &'a [Aligned],
    pub w: &'a [Aligned],
    pub kp: usize,
    pub rows: usize,
    pub panels: usize,
}

impl<'a> Packed<'a> {
    pub(crate) fn new(x: &'a PackedX, w: &'a PackedW) -> Packed<'a> {
        Packed {
            x: &x.planes,
            w: &w.planes,
            kp: x.kp,
            rows: x.rows,
            panels: w.panels,
        }
    }
}

/// How many planes of each side a fidelity reads: (SrcB planes, SrcA planes).
fn planes_used(f: MathFidelity) -> (usize, usize) {
    let ph = phases(f);
    let b = ph.iter().map(|p| p.0).max().unwrap_or(0) + 1;
    let a = ph.iter().map(|p| p.1).max().unwrap_or(0) + 1;
    (b, a)
}

/// Runs `f(index, chunk)` over `chunk`-sized pieces of every plane at once, in parallel when
/// the work is large.
fn fill_planes<F>(planes: &mut [Aligned], chunk: usize, parallel: bool, f: F)
where
    F: Fn(usize, &mut [&mut [f32]]) + Sync,
{
    let mut slices: Vec<&mut [f32]> = planes.iter_mut().map(|p| p.as_mut_slice()).collect();
    let count = slices.first().map_or(0, |s| s.len() / chunk.max(1));
    // Regroup the planes' chunks by index: chunk i of every plane together.
    let mut groups: Vec<Vec<&mut [f32]>> = (0..count).map(|_| Vec::new()).collect();
    for s in slices.iter_mut() {
        for (i, c) in std::mem::take(s).chunks_mut(chunk.max(1)).enumerate() {
            groups[i].push(c);
        }
    }
    if parallel {
        groups
            .into_par_iter()
            .enumerate()
            .for_each(|(i, mut g)| f(i, &mut g));
    } else {
        for (i, mut g) in groups.into_iter().enumerate() {
            f(i, &mut g);
        }
    }
}

/// Packs `x` [m, k] (SrcB), zero-padded to whole tiles of K and whole kernel rows.
pub(crate) fn pack_x(x: &[f32], xdt: DType, m: usize, k: usize, fidelity: MathFidelity) -> PackedX {
    let kp = k.div_ceil(TILE).max(1) * TILE;
    let rows = m.div_ceil(MR) * MR;
    let (nb, _) = planes_used(fidelity);
    let mut xp: Vec<Aligned> = (0..nb).map(|_| Aligned::zeros(rows * kp)).collect();
    // Row tile `ti` holds [kp][MR]: the MR values broadcast at one k are adjacent.
    fill_planes(&mut xp, kp * MR, m * k >= 1 << 16, |ti, tiles| {
        for r in 0..MR {
            let i = ti * MR + r;
            if i >= m {
                break;
            }
            for (kk, &v) in x[i * k..(i + 1) * k].iter().enumerate() {
                let (hi, lo) = srcb_planes(src_reg(v, xdt));
                tiles[0][kk * MR + r] = hi;
                if let Some(t) = tiles.get_mut(1) {
                    t[kk * MR + r] = lo;
                }
            }
        }
    });
    PackedX {
        planes: xp,
        kp,
        rows,
    }
}

/// Packs `w` [n, k] (SrcA; row j feeds output column j), zero-padded to whole tiles of K and
/// whole panels.
pub fn pack_w(w: &[f32], wdt: DType, n: usize, k: usize, fidelity: MathFidelity) -> PackedW {
    let kp = k.div_ceil(TILE).max(1) * TILE;
    let panels = n.div_ceil(NR);
    let (_, na) = planes_used(fidelity);
    let mut wp: Vec<Aligned> = (0..na).map(|_| Aligned::zeros(panels * kp * NR)).collect();
    const KC: usize = 64;
    fill_planes(&mut wp, kp * NR, n * k >= 1 << 16, |pi, pan| {
        for k0 in (0..k).step_by(KC) {
            let k1 = (k0 + KC).min(k);
            for c in 0..NR {
                let j = pi * NR + c;
                if j >= n {
                    break;
                }
                for (kk, &v) in (k0..k1).zip(&w[j * k + k0..j * k + k1]) {
                    let (hi, lo) = srca_planes(src_reg(v, wdt));
                    pan[0][kk * NR + c] = hi;
                    if let Some(t) = pan.get_mut(1) {
                        t[kk * NR + c] = lo;
                    }
                }
            }
        }
    });
    PackedW {
        planes: wp,
        kp,
        panels,
    }
}

/// Whether packed weights serve a fidelity (a two-plane packing serves LoFi too).
pub fn serves(w: &PackedW, fidelity: MathFidelity) -> bool {
    w.planes.len() >= planes_used(fidelity).1
}

/// One micro-kernel call: rows `r0..r0+MR` × panel `pi`, written to `out` ([MR][NR]).
pub(crate) struct Tile<'a> {
    pub packed: &'a Packed<'a>,
    pub r0: usize,
    pub pi: usize,
}

/// Dst and L1-accumulator values of one MR × NR output tile between K blocks.
#[derive(Clone, Copy)]
pub(crate) struct TileState {
    pub d: [[f32; NR]; MR],
    pub l1: [[f32; NR]; MR],
}

impl TileState {
    pub(crate) const ZERO: TileState = TileState {
        d: [[0.0; NR]; MR],
        l1: [[0.0; NR]; MR],
    };
}

/// The portable kernel for K tiles `kt0..kt1` (one block) of a tile, then the block end
/// unless `last`; bit-identical to the SIMD one.
pub(crate) fn block_portable(
    t: &Tile<'_>,
    e: &Engine,
    kt0: usize,
    kt1: usize,
    st: &mut TileState,
    last: bool,
) {
    let p = t.packed;
    let kp = p.kp;
    for kt in kt0..kt1 {
        for &(bp, ap) in phases(e.fidelity) {
            let xs = &p.x[bp].as_slice()[t.r0 * kp..(t.r0 + MR) * kp];
            debug_assert!(t.r0.is_multiple_of(MR));
            let ws = &p.w[ap].as_slice()[t.pi * kp * NR..(t.pi + 1) * kp * NR];
            for face in 0..2 {
                let k0 = kt * TILE + face * FACE;
                for kk in k0..k0 + FACE {
                    let wrow = &ws[kk * NR..(kk + 1) * NR];
                    for (r, drow) in st.d.iter_mut().enumerate() {
                        let a = xs[kk * MR + r];
                        for (acc, &b) in drow.iter_mut().zip(wrow) {
                            // Exact product (≤ 12 significant bits), one rounding: = FMA.
                            *acc += a * b;
                        }
                    }
                }
                for drow in st.d.iter_mut() {
                    for dv in drow.iter_mut() {
                        *dv = e.dst.store(*dv);
                    }
                }
            }
        }
    }
    if !last {
        for (drow, lrow) in st.d.iter_mut().zip(st.l1.iter_mut()) {
            for (dg, lg) in drow.chunks_mut(FACE).zip(lrow.chunks_mut(FACE)) {
                block_end_group(e.block_end, dg, lg, kt0 == 0);
            }
        }
    }
}

/// One K block of a tile on the fastest kernel of this machine.
fn block(t: &Tile<'_>, e: &Engine, kt0: usize, kt1: usize, st: &mut TileState, last: bool) {
    if !super::simd::block(t, e, kt0, kt1, st, last) {
        block_portable(t, e, kt0, kt1, st, last);
    }
}

/// A whole tile (every K block) into `out`.
#[cfg(test)]
pub(crate) fn tile_portable(t: &Tile<'_>, e: &Engine, out: &mut [[f32; NR]; MR]) {
    let tiles = t.packed.kp / TILE;
    let per = e.block_k / TILE;
    let mut st = TileState::ZERO;
    for kt0 in (0..tiles).step_by(per) {
        let kt1 = (kt0 + per).min(tiles);
        block_portable(t, e, kt0, kt1, &mut st, kt1 == tiles);
    }
    for ((o, d), l) in out.iter_mut().zip(&st.d).zip(&st.l1) {
        for ((o, &d), &l) in o.iter_mut().zip(d).zip(l) {
            *o = finish(e.block_end, d, l);
        }
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
    let pw = pack_w(w, wdt, n, k, e.fidelity);
    matmul_packed(x, xdt, &pw, m, k, n, e, threads)
}

/// [`matmul`] with the weights already packed (by [`pack_w`] with the same `k`, `n` and a
/// fidelity that [`serves`] `e.fidelity`).
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed(
    x: &[f32],
    xdt: DType,
    pw: &PackedW,
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
    let px = pack_x(x, xdt, m, k, e.fidelity);
    assert_eq!(px.kp, pw.kp, "weights packed for another inner dimension");
    assert!(
        serves(pw, e.fidelity),
        "weights packed for a lower fidelity"
    );
    let packed = Packed::new(&px, pw);
    let tiles = packed.kp / TILE;
    let per = e.block_k / TILE;
    // A task owns a range of panels (its weight slice stays in L2 while every row block of
    // the task streams past it) and a range of rows; each row block of MC rows sweeps one K
    // block at a time over its row tiles, so the block's weight slice stays in L1.
    let task = |(r_start, r_end, p_start, p_end): (usize, usize, usize, usize)| {
        let cols = (p_end - p_start) * NR;
        let mut buf = vec![0.0f32; (r_end - r_start) * cols];
        let mut states = vec![TileState::ZERO; MC / MR];
        for mb in (r_start..r_end).step_by(MC) {
            let mb_end = (mb + MC).min(r_end);
            let st = &mut states[..(mb_end - mb) / MR];
            for pi in p_start..p_end {
                st.fill(TileState::ZERO);
                for kt0 in (0..tiles).step_by(per) {
                    let kt1 = (kt0 + per).min(tiles);
                    for (ti, s) in st.iter_mut().enumerate() {
                        let t = Tile {
                            packed: &packed,
                            r0: mb + ti * MR,
                            pi,
                        };
                        block(&t, e, kt0, kt1, s, kt1 == tiles);
                    }
                }
                for (ti, s) in st.iter().enumerate() {
                    for r in 0..MR {
                        let at = (mb - r_start + ti * MR + r) * cols + (pi - p_start) * NR;
                        for c in 0..NR {
                            buf[at + c] = finish(e.block_end, s.d[r][c], s.l1[r][c]);
                        }
                    }
                }
            }
        }
        (r_start, p_start * NR, cols, buf)
    };
    let macs = m.saturating_mul(n).saturating_mul(k) * e.fidelity.phases();
    let parallel = threads > 1 && macs >= PARALLEL_MIN_MACS;
    let pchunks = packed.panels.div_ceil(NC_PANELS);
    let rsplit = if parallel && pchunks < 2 * threads {
        (2 * threads).div_ceil(pchunks).min(packed.rows / MR).max(1)
    } else {
        1
    };
    let rstep = (packed.rows / MR).div_ceil(rsplit) * MR;
    let grid: Vec<(usize, usize, usize, usize)> = (0..pchunks)
        .flat_map(|pc| {
            let p0 = pc * NC_PANELS;
            let p1 = (p0 + NC_PANELS).min(packed.panels);
            (0..packed.rows)
                .step_by(rstep)
                .map(move |r0| (r0, (r0 + rstep).min(packed.rows), p0, p1))
        })
        .collect();
    let blocks: Vec<(usize, usize, usize, Vec<f32>)> = if parallel {
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
    let (a, b) = (src_reg(a, adt), src_reg(b, bdt));
    let (ahi, alo) = srca_planes(a);
    let (bhi, blo) = srcb_planes(b);
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
        // FP32 Dst: the exact product 10.458984375 (HiFi4), the truncated 10.41796875 (HiFi2).
        assert_eq!(mm1(x, w, MathFidelity::HiFi4, true), 10710.0 / 1024.0);
        assert_eq!(mm1(x, w, MathFidelity::HiFi2, true), 2667.0 / 256.0);
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
        let e = Engine::new(
            MathFidelity::HiFi2,
            false,
            true,
            128,
            DType::Bfloat8B,
            false,
        );
        assert_eq!(
            e.block_end,
            BlockEnd::SpillBfp(7),
            "2 blocks: L1 acc does not pay"
        );
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
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
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
                            let mut acc = d[0];
                            for kk in kt * 32 + face * 16..kt * 32 + face * 16 + 16 {
                                let b = srcb_planes(src_reg(xv(kk), DType::Bf16));
                                let a = srca_planes(src_reg(wv(kk), DType::Bf16));
                                acc = [b.0, b.1][bp].mul_add([a.0, a.1][ap], acc);
                            }
                            d[0] = e.dst.store(acc);
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
            let x: Vec<f32> = (0..m * k)
                .map(|_| format::bf16_rne(lcg(&mut seed)))
                .collect();
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
                    let (px, pw) = (
                        pack_x(&x, DType::Bf16, m, k, f),
                        pack_w(&w, DType::Bf16, n, k, f),
                    );
                    let packed = Packed::new(&px, &pw);
                    let mut t = [[0.0f32; NR]; MR];
                    tile_portable(
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
    fn the_fpu_reads_infinity_as_a_huge_number() {
        let inf = f32::INFINITY;
        assert_eq!(
            fpu_mul(
                0.0,
                DType::Bf16,
                inf,
                DType::Bf16,
                MathFidelity::HiFi4,
                Dst::Bf16
            ),
            0.0
        );
        assert_eq!(
            fpu_mul(
                -2.0,
                DType::Bf16,
                inf,
                DType::Bf16,
                MathFidelity::HiFi2,
                Dst::Fp32
            ),
            -inf
        );
        // An infinite weight next to zero padding does not poison the sum with NaN.
        let e = Engine::new(MathFidelity::HiFi4, true, false, 2, DType::Bf16, false);
        let got = matmul(
            &[1.0, 0.0],
            DType::Bf16,
            &[2.0, inf],
            DType::Bf16,
            1,
            2,
            1,
            &e,
            1,
        )[0];
        assert_eq!(got, 2.0);
    }

    #[test]
    fn reduce_rows_sums_with_the_scaler() {
        let x: Vec<f32> = (0..64).map(|i| (i % 8) as f32).collect();
        let r = reduce_rows(
            &x,
            DType::Bf16,
            32,
            1.0 / 32.0,
            MathFidelity::HiFi4,
            Dst::Bf16,
        );
        assert_eq!(r, vec![3.5, 3.5]);
    }
}
