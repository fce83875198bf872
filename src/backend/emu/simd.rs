//! The matmul micro-kernel on AVX-512 BF16 (`vdpbf16ps`), chosen at run time.
//!
//! Every fidelity-phase operand is a number of at most 8 significant bits (see
//! [`super::matmul`]), so it is exactly a bf16 and `vdpbf16ps` multiplies it exactly and adds
//! the two products of each pair in a fixed order (odd element first, then even; RNE, DAZ,
//! FTZ — the order was checked on this hardware and is what the portable kernel does). This is
//! the only file of the emulator with `unsafe`: the feature-gated call and the unaligned
//! vector loads and stores, whose bounds are checked up front.

use super::matmul::{Engine, Tile, MR, NR};

/// Runs the SIMD kernel if the CPU has AVX-512F + AVX-512 BF16; `false` otherwise.
pub(crate) fn kernel(t: &Tile<'_>, e: &Engine, out: &mut [[f32; NR]; MR]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::available() {
            x86::run(t, e, out);
            return true;
        }
    }
    let _ = (t, e, out);
    false
}

/// Whether the SIMD kernel is in use on this machine (reported by the benchmark).
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    use super::super::format::FACE;
    use super::super::matmul::{block_end_group, phases, BlockEnd, Dst, Engine, Tile, MR, NR};

    pub(super) fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
        })
    }

    pub(super) fn run(t: &Tile<'_>, e: &Engine, out: &mut [[f32; NR]; MR]) {
        let p = t.packed;
        let kh = p.kp / 2;
        // Bounds of every load the kernel makes.
        assert!(t.r0 + MR <= p.rows, "kernel rows outside the packed activations");
        assert!(t.pi < p.panels, "kernel panel outside the packed weights");
        for plane in &p.x {
            assert!(plane.len() >= p.rows * kh);
        }
        for plane in &p.w {
            assert!(plane.len() >= p.panels * kh * NR);
        }
        for &(bp, ap) in phases(e.fidelity) {
            assert!(bp < p.x.len() && ap < p.w.len(), "fidelity plane not packed");
        }
        // SAFETY: `available()` confirmed AVX-512F and AVX-512 BF16 on this CPU; the asserts
        // above bound every offset `body` reads (rows r0..r0+MR of each activation plane,
        // pairs 0..kh of panel pi of each weight plane).
        unsafe {
            match e.dst {
                Dst::Bf16 => body::<true>(t, e, out),
                Dst::Fp32 => body::<false>(t, e, out),
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

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn dst_add<const BF16: bool>(d: __m512, p: __m512) -> __m512 {
        let s = _mm512_add_ps(d, p);
        if BF16 {
            round_bf16(s)
        } else {
            s
        }
    }

    #[inline]
    fn bh(v: __m512i) -> __m512bh {
        // SAFETY: both are 512-bit plain-data vectors; every bit pattern is a valid __m512bh.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }

    /// Applies a block end (not the last block) to the accumulators.
    #[target_feature(enable = "avx512f,avx512bf16")]
    fn block_end(
        mode: BlockEnd,
        d: &mut [[__m512; 2]; MR],
        l1: &mut [[__m512; 2]; MR],
        first: bool,
    ) {
        match mode {
            BlockEnd::Keep => {}
            BlockEnd::L1Bf16 | BlockEnd::L1Fp32 => {
                for r in 0..MR {
                    for h in 0..2 {
                        let s = if first {
                            d[r][h]
                        } else {
                            _mm512_add_ps(l1[r][h], d[r][h])
                        };
                        l1[r][h] = if mode == BlockEnd::L1Bf16 {
                            round_bf16(s)
                        } else {
                            s
                        };
                        d[r][h] = _mm512_setzero_ps();
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
                        // SAFETY: `buf` holds exactly 16 f32.
                        unsafe { _mm512_storeu_ps(buf.as_mut_ptr(), *v) };
                        block_end_group(mode, &mut buf, &mut none, first);
                        // SAFETY: as above.
                        *v = unsafe { _mm512_loadu_ps(buf.as_ptr()) };
                    }
                }
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 BF16, and `t` must satisfy the bounds
    /// asserted in [`run`].
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn body<const BF16: bool>(t: &Tile<'_>, e: &Engine, out: &mut [[f32; NR]; MR]) {
        let p = t.packed;
        let kh = p.kp / 2;
        let tiles = p.kp / 32;
        let tiles_per_block = e.block_k / 32;
        let zero = _mm512_setzero_ps();
        let mut d = [[zero; 2]; MR];
        let mut l1 = [[zero; 2]; MR];
        let ph = phases(e.fidelity);
        for kt in 0..tiles {
            for &(bp, ap) in ph {
                let xs = p.x[bp].as_ptr().add(t.r0 * kh);
                let ws = p.w[ap].as_ptr().add(t.pi * kh * NR);
                for face in 0..2 {
                    let base = kt * FACE + face * (FACE / 2);
                    let mut acc = [[zero; 2]; MR];
                    for q in 0..FACE / 2 {
                        let kpair = base + q;
                        let wrow = ws.add(kpair * NR);
                        let b0 = bh(_mm512_loadu_si512(wrow as *const __m512i));
                        let b1 = bh(_mm512_loadu_si512(wrow.add(16) as *const __m512i));
                        for (r, a_r) in acc.iter_mut().enumerate() {
                            let a = bh(_mm512_set1_epi32(*xs.add(r * kh + kpair) as i32));
                            a_r[0] = _mm512_dpbf16_ps(a_r[0], a, b0);
                            a_r[1] = _mm512_dpbf16_ps(a_r[1], a, b1);
                        }
                    }
                    for r in 0..MR {
                        d[r][0] = dst_add::<BF16>(d[r][0], acc[r][0]);
                        d[r][1] = dst_add::<BF16>(d[r][1], acc[r][1]);
                    }
                }
            }
            if (kt + 1) % tiles_per_block == 0 && kt + 1 < tiles {
                block_end(e.block_end, &mut d, &mut l1, kt + 1 == tiles_per_block);
            }
        }
        for r in 0..MR {
            for h in 0..2 {
                let v = match e.block_end {
                    BlockEnd::L1Bf16 => round_bf16(_mm512_add_ps(l1[r][h], d[r][h])),
                    BlockEnd::L1Fp32 => _mm512_add_ps(l1[r][h], d[r][h]),
                    _ => d[r][h],
                };
                _mm512_storeu_ps(out[r].as_mut_ptr().add(16 * h), v);
            }
        }
    }
}
