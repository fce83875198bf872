//! The matmul micro-kernel on AVX-512F, chosen at run time.
//!
//! Every fidelity-phase product is exact in f32 (see [`super::matmul`]), so a fused
//! multiply-add rounds exactly like the portable kernel's `acc + a·b`, and the two kernels
//! agree bit for bit. (`vdpbf16ps` would take the bf16 planes directly but measured 4× slower
//! per instruction than `vfmadd231ps` on this Sapphire Rapids VM.) Register use: 6 rows × 64
//! columns of Dst (24 zmm), rounded after every 16-wide face; one K block per call, with Dst
//! and the L1-accumulation buffer in memory between blocks, so the driver can sweep a K block
//! over many row tiles while its weight slice stays in L1.
//!
//! This is the only file of the emulator with `unsafe`: the feature-gated calls and the
//! unaligned vector loads and stores, whose bounds are checked up front in [`run`].

use super::matmul::{Engine, Tile, TileState};

/// Runs one K block of a tile on AVX-512F if the CPU has it; `false` otherwise.
#[rustversion::since(1.89)]
pub(crate) fn block(
    t: &Tile<'_>,
    e: &Engine,
    kt0: usize,
    kt1: usize,
    st: &mut TileState,
    last: bool,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::available() {
            x86::run(t, e, kt0, kt1, st, last);
            return true;
        }
    }
    let _ = (t, e, kt0, kt1, st, last);
    false
}

/// Compilers before 1.89 lack stable AVX-512 intrinsics: the portable kernel runs.
#[rustversion::before(1.89)]
pub(crate) fn block(
    _t: &Tile<'_>,
    _e: &Engine,
    _kt0: usize,
    _kt1: usize,
    _st: &mut TileState,
    _last: bool,
) -> bool {
    false
}

/// Whether the SIMD kernel is in use on this machine (reported by the benchmarks).
#[rustversion::since(1.89)]
pub fn simd_kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the SIMD kernel is in use on this machine (reported by the benchmarks).
#[rustversion::before(1.89)]
pub fn simd_kernel_available() -> bool {
    false
}

// AVX-512 intrinsics are stable since Rust 1.89, above the crate's MSRV: the module only
// exists on such compilers (`rustversion`), so the MSRV lint does not apply to it.
#[rustversion::since(1.89)]
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use super::super::format::FACE;
    use super::super::matmul::{
        block_end_group, phases, BlockEnd, Dst, Engine, Tile, TileState, MR, NR, NV,
    };

    pub(super) fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f"))
    }

    pub(super) fn run(
        t: &Tile<'_>,
        e: &Engine,
        kt0: usize,
        kt1: usize,
        st: &mut TileState,
        last: bool,
    ) {
        let p = t.packed;
        // Bounds of every load the kernel makes.
        assert!(
            t.r0 + MR <= p.rows && t.r0.is_multiple_of(MR),
            "kernel rows outside the packed activations"
        );
        assert!(t.pi < p.panels, "kernel panel outside the packed weights");
        assert!(
            kt0 <= kt1 && kt1 * 32 <= p.kp,
            "K tiles outside the packed operands"
        );
        for plane in p.x {
            assert!(plane.as_slice().len() >= p.rows * p.kp);
        }
        for plane in p.w {
            assert!(plane.as_slice().len() >= p.panels * p.kp * NR);
        }
        for &(bp, ap) in phases(e.fidelity) {
            assert!(
                bp < p.x.len() && ap < p.w.len(),
                "fidelity plane not packed"
            );
        }
        // SAFETY: `available()` confirmed AVX-512F on this CPU; the asserts above bound every
        // offset the kernel reads (rows r0..r0+MR × K tiles kt0..kt1 of each activation
        // plane (tile r0/MR holds kp × MR values), the same K range of panel pi of each
        // weight plane); the state arrays are
        // exactly MR × NR.
        unsafe {
            match e.dst {
                Dst::Bf16 => body::<true>(t, e, kt0, kt1, st, last),
                Dst::Fp32 => body::<false>(t, e, kt0, kt1, st, last),
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn round_bf16(v: __m512) -> __m512 {
        let bits = _mm512_castps_si512(v);
        let r = _mm512_and_si512(
            _mm512_add_epi32(bits, _mm512_set1_epi32(0x8000)),
            _mm512_set1_epi32(0xFFFF_0000u32 as i32),
        );
        _mm512_castsi512_ps(r)
    }

    /// Tiles `kt0..kt1` (one K block) of a tile, then the block end unless `last`.
    ///
    /// # Safety
    /// AVX-512F, and the bounds asserted in [`run`].
    #[target_feature(enable = "avx512f")]
    unsafe fn body<const BF16: bool>(
        t: &Tile<'_>,
        e: &Engine,
        kt0: usize,
        kt1: usize,
        st: &mut TileState,
        last: bool,
    ) {
        let p = t.packed;
        let kp = p.kp;
        let zero = _mm512_setzero_ps();
        // Dst lives in the accumulators: each face adds its 16 products to it in f32, then
        // one rounding to the Dst format.
        // `acc` is never borrowed by a call, so it stays in registers.
        let mut acc = [[zero; NV]; MR];
        for (dv, row) in acc.iter_mut().zip(st.d.iter()) {
            for (h, v) in dv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(row.as_ptr().add(16 * h));
            }
        }
        for kt in kt0..kt1 {
            for &(bp, ap) in phases(e.fidelity) {
                let xs = p.x[bp].as_slice().as_ptr().add(t.r0 * kp);
                let ws = p.w[ap].as_slice().as_ptr().add(t.pi * kp * NR);
                for face in 0..2 {
                    let k0 = kt * 32 + face * FACE;
                    for kk in k0..k0 + FACE {
                        let wrow = ws.add(kk * NR);
                        let b = [
                            _mm512_loadu_ps(wrow),
                            _mm512_loadu_ps(wrow.add(16)),
                            _mm512_loadu_ps(wrow.add(32)),
                            _mm512_loadu_ps(wrow.add(48)),
                        ];
                        for (r, d_r) in acc.iter_mut().enumerate() {
                            let a = _mm512_set1_ps(*xs.add(kk * MR + r));
                            for (v, &bv) in d_r.iter_mut().zip(&b) {
                                *v = _mm512_fmadd_ps(a, bv, *v);
                            }
                        }
                    }
                    if BF16 {
                        for d_r in acc.iter_mut() {
                            for v in d_r.iter_mut() {
                                *v = round_bf16(*v);
                            }
                        }
                    }
                }
            }
        }
        let mut d = acc;
        if !last {
            block_end(e.block_end, &mut d, &mut st.l1, kt0 == 0);
        }
        for (dv, row) in d.iter().zip(st.d.iter_mut()) {
            for (h, &v) in dv.iter().enumerate() {
                _mm512_storeu_ps(row.as_mut_ptr().add(16 * h), v);
            }
        }
    }

    /// Applies a block end (not the last block) to Dst and the in-memory L1 buffer.
    ///
    /// # Safety
    /// AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn block_end(
        mode: BlockEnd,
        d: &mut [[__m512; NV]; MR],
        l1: &mut [[f32; NR]; MR],
        first: bool,
    ) {
        match mode {
            BlockEnd::Keep => {}
            BlockEnd::L1Bf16 | BlockEnd::L1Fp32 => {
                for (drow, lrow) in d.iter_mut().zip(l1.iter_mut()) {
                    for (h, v) in drow.iter_mut().enumerate() {
                        let lp = lrow.as_mut_ptr().add(16 * h);
                        let s = if first {
                            *v
                        } else {
                            _mm512_add_ps(_mm512_loadu_ps(lp), *v)
                        };
                        let s = if mode == BlockEnd::L1Bf16 {
                            round_bf16(s)
                        } else {
                            s
                        };
                        _mm512_storeu_ps(lp, s);
                        *v = _mm512_setzero_ps();
                    }
                }
            }
            BlockEnd::ReloadTf32 => {
                for row in d.iter_mut() {
                    for v in row.iter_mut() {
                        let bits = _mm512_castps_si512(*v);
                        let t = _mm512_and_si512(bits, _mm512_set1_epi32(0xFFFF_E000u32 as i32));
                        let normal = _mm512_test_epi32_mask(t, _mm512_set1_epi32(0x7F80_0000));
                        *v = _mm512_maskz_mov_ps(normal, _mm512_castsi512_ps(t));
                    }
                }
            }
            BlockEnd::SpillBfp(_) => {
                let mut buf = [0.0f32; FACE];
                let mut none = [0.0f32; FACE];
                for row in d.iter_mut() {
                    for v in row.iter_mut() {
                        _mm512_storeu_ps(buf.as_mut_ptr(), *v);
                        block_end_group(mode, &mut buf, &mut none, first);
                        *v = _mm512_loadu_ps(buf.as_ptr());
                    }
                }
            }
        }
    }
}
