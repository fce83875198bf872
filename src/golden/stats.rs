//! Per-record statistics (goldens/README.md, "stats"). Pure numerics: no I/O.
//!
//! The definition is the Python writer's (`python/pccscope_capture/stats.py`, numpy): min, max,
//! mean, population std and l2 over the finite values in f64, NaN/Inf counts, and the FNV-1a 64
//! hash of the little-endian f32 bytes. Sums use numpy's pairwise summation so the numbers are
//! bit-identical to the ones numpy writes, not merely close.

use serde::{Deserialize, Deserializer, Serialize};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Summary of one tensor.
///
/// `min`, `max`, `mean` and `std` are NaN when the tensor holds no finite value (JSON `null`);
/// `l2` is then 0. Equality treats two NaNs as equal, so stats of such tensors compare equal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    #[serde(deserialize_with = "nullable_f64")]
    pub min: f64,
    #[serde(deserialize_with = "nullable_f64")]
    pub max: f64,
    #[serde(deserialize_with = "nullable_f64")]
    pub mean: f64,
    #[serde(deserialize_with = "nullable_f64")]
    pub std: f64,
    #[serde(deserialize_with = "nullable_f64")]
    pub l2: f64,
    /// Number of NaN elements.
    pub nan: u64,
    /// Number of ±Inf elements.
    pub inf: u64,
    /// `fnv1a64:` + 16 lowercase hex digits of [`fnv1a64`] over the little-endian f32 bytes.
    pub hash: String,
}

impl PartialEq for Stats {
    fn eq(&self, other: &Stats) -> bool {
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        same(self.min, other.min)
            && same(self.max, other.max)
            && same(self.mean, other.mean)
            && same(self.std, other.std)
            && same(self.l2, other.l2)
            && self.nan == other.nan
            && self.inf == other.inf
            && self.hash == other.hash
    }
}

/// `null` (what JSON writers emit for a missing or non-finite number) reads as NaN.
fn nullable_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// FNV-1a, 64 bit, over `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// FNV-1a 64 over the little-endian bytes of `data`, without materializing them.
pub fn fnv1a64_f32(data: &[f32]) -> u64 {
    data.iter().fold(FNV_OFFSET, |h, v| {
        v.to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
    })
}

/// The `hash` field of [`Stats`]: `fnv1a64:` + 16 lowercase hex digits.
pub fn tensor_hash(data: &[f32]) -> String {
    format!("fnv1a64:{:016x}", fnv1a64_f32(data))
}

/// Statistics of `data` (see [`Stats`]); bit-identical to the Python writer's.
pub fn stats(data: &[f32]) -> Stats {
    let mut nan = 0u64;
    let mut inf = 0u64;
    let mut min = f64::INFINITY;
    let mut max = f64::NEG_INFINITY;
    for &v in data {
        if v.is_nan() {
            nan += 1;
        } else if v.is_infinite() {
            inf += 1;
        } else {
            min = min.min(f64::from(v));
            max = max.max(f64::from(v));
        }
    }
    let hash = tensor_hash(data);
    let filtered: Vec<f32>;
    let finite = if nan + inf == 0 {
        data
    } else {
        filtered = data.iter().copied().filter(|v| v.is_finite()).collect();
        &filtered
    };
    if finite.is_empty() {
        return Stats {
            min: f64::NAN,
            max: f64::NAN,
            mean: f64::NAN,
            std: f64::NAN,
            l2: 0.0,
            nan,
            inf,
            hash,
        };
    }
    let n = finite.len() as f64;
    let mean = numpy_sum(finite, f64::from) / n;
    let var = numpy_sum(finite, |x| (f64::from(x) - mean) * (f64::from(x) - mean)) / n;
    let l2 = numpy_sum(finite, |x| f64::from(x) * f64::from(x)).sqrt();
    let finite_or_nan = |x: f64| if x.is_finite() { x } else { f64::NAN };
    Stats {
        min,
        max,
        mean: finite_or_nan(mean),
        std: finite_or_nan(var.sqrt()),
        l2: finite_or_nan(l2),
        nan,
        inf,
        hash,
    }
}

/// `np.sum` of `f(a[i])` over a contiguous array: the identity 0.0 plus numpy's pairwise sum
/// (8 accumulators in blocks of at most 128, halves split on multiples of 8). `f` widens to f64
/// exactly as numpy's temporary f64 array would hold the values.
fn numpy_sum(a: &[f32], f: impl Fn(f32) -> f64 + Copy) -> f64 {
    0.0 + pairwise(a, f)
}

fn pairwise(a: &[f32], f: impl Fn(f32) -> f64 + Copy) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, &x| acc + f(x))
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        for (rj, &x) in r.iter_mut().zip(&a[..8]) {
            *rj = f(x);
        }
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (rj, &x) in r.iter_mut().zip(chunk) {
                *rj += f(x);
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res += f(x);
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise(&a[..half], f) + pairwise(&a[half..], f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator of the numpy fixtures below (xorshift64, finite floats of magnitudes
    /// 2⁻²⁷…2²⁷ so summation order shows, NaN / +Inf / −Inf sprinkled in).
    fn gen(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut out: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let bits = (s >> 32) as u32;
                let exp = 100 + bits % 55;
                let mant = (s & 0x7f_ffff) as u32;
                let sign = ((s >> 31) & 1) as u32;
                f32::from_bits(sign << 31 | exp << 23 | mant)
            })
            .collect();
        for (i, v) in out.iter_mut().enumerate() {
            if i % 997 == 996 {
                *v = f32::NAN;
            }
            if i % 1009 == 1008 {
                *v = f32::INFINITY;
            }
            if i % 2017 == 2016 {
                *v = f32::NEG_INFINITY;
            }
        }
        out
    }

    type Row = (usize, u64, [f64; 5], u64, u64, &'static str);

    /// `compute_stats(gen(n, seed))` of python/pccscope_capture/stats.py (numpy 2.4), as
    /// f64 bit patterns: min, max, mean, std, l2, nan, inf, hash.
    const NUMPY: &[Row] = &[
        (
            0,
            1,
            [
                f64::NAN,
                f64::NAN,
                f64::NAN,
                f64::NAN,
                f64::from_bits(0x0000000000000000),
            ],
            0,
            0,
            "fnv1a64:cbf29ce484222325",
        ),
        (
            1,
            2,
            [
                f64::from_bits(0xbe40881040000000),
                f64::from_bits(0xbe40881040000000),
                f64::from_bits(0xbe40881040000000),
                f64::from_bits(0x0000000000000000),
                f64::from_bits(0x3e40881040000000),
            ],
            0,
            0,
            "fnv1a64:60042cba2b0c19a9",
        ),
        (
            5,
            3,
            [
                f64::from_bits(0xc0a109c760000000),
                f64::from_bits(0x40f0279840000000),
                f64::from_bits(0x40c8fedcd4c8bcd0),
                f64::from_bits(0x40da12d0975f8be2),
                f64::from_bits(0x40f029d722b5d40d),
            ],
            0,
            0,
            "fnv1a64:427107f1c4aaf699",
        ),
        (
            8,
            4,
            [
                f64::from_bits(0xc1139a0480000000),
                f64::from_bits(0x415e0c1080000000),
                f64::from_bits(0x412dae203c777743),
                f64::from_bits(0x4143efdba1bca4a5),
                f64::from_bits(0x415e15a26382e7d6),
            ],
            0,
            0,
            "fnv1a64:6f9346265ca5e2df",
        ),
        (
            13,
            5,
            [
                f64::from_bits(0xc11a52aec0000000),
                f64::from_bits(0x4062366400000000),
                f64::from_bits(0xc0ed4da08155e94f),
                f64::from_bits(0x40fedb39510187a5),
                f64::from_bits(0x411eca3058f0d16d),
            ],
            0,
            0,
            "fnv1a64:e189e5626ce7efa5",
        ),
        (
            100,
            6,
            [
                f64::from_bits(0xc1580413a0000000),
                f64::from_bits(0x41a3765800000000),
                f64::from_bits(0x4138c593f98084b2),
                f64::from_bits(0x416f214bdf23bd5a),
                f64::from_bits(0x41a38d63cae5f4b7),
            ],
            0,
            0,
            "fnv1a64:4684ac4a5ed6b2c6",
        ),
        (
            128,
            7,
            [
                f64::from_bits(0xc1ac778220000000),
                f64::from_bits(0x41a7180120000000),
                f64::from_bits(0xc153c3680cd7fb1e),
                f64::from_bits(0x41810686065494c6),
                f64::from_bits(0x41b8546ee3645fcf),
            ],
            0,
            0,
            "fnv1a64:f0399e15f84bdf6f",
        ),
        (
            129,
            8,
            [
                f64::from_bits(0xc193045320000000),
                f64::from_bits(0x41acc5fd00000000),
                f64::from_bits(0x414e20c0c3991111),
                f64::from_bits(0x417fe28033bd21c9),
                f64::from_bits(0x41b6ca89d5a3b38d),
            ],
            0,
            0,
            "fnv1a64:0688f9c8302a12d2",
        ),
        (
            1000,
            9,
            [
                f64::from_bits(0xc1afd63600000000),
                f64::from_bits(0x41ade79a20000000),
                f64::from_bits(0x4123bfd3c38fbb27),
                f64::from_bits(0x4182a7ceca034400),
                f64::from_bits(0x41d26dcb5ca8ae50),
            ],
            1,
            0,
            "fnv1a64:97d0b33f12010d9a",
        ),
        (
            4099,
            10,
            [
                f64::from_bits(0xc1afa34280000000),
                f64::from_bits(0x41aff75a60000000),
                f64::from_bits(0x411c42d1fea61579),
                f64::from_bits(0x417f91286796e49c),
                f64::from_bits(0x41df8b0a1f5d562d),
            ],
            4,
            6,
            "fnv1a64:6d4b7a0fa1fa8fbb",
        ),
        (
            65543,
            11,
            [
                f64::from_bits(0xc1affbf460000000),
                f64::from_bits(0x41aff68800000000),
                f64::from_bits(0x40e7b7a3a1f32c9d),
                f64::from_bits(0x417e30945f756ef4),
                f64::from_bits(0x41fe2780b85c29a4),
            ],
            65,
            96,
            "fnv1a64:157af0357bfd6070",
        ),
        (
            300001,
            12,
            [
                f64::from_bits(0xc1affe5f00000000),
                f64::from_bits(0x41affdb140000000),
                f64::from_bits(0x40f845150c8b2f04),
                f64::from_bits(0x417eb44eb74243c3),
                f64::from_bits(0x4210672a97970c03),
            ],
            300,
            445,
            "fnv1a64:c76bad06b38c2613",
        ),
    ];

    #[test]
    fn stats_are_bit_identical_to_numpy() {
        for &(n, seed, [min, max, mean, std, l2], nan, inf, hash) in NUMPY {
            let got = stats(&gen(n, seed));
            let want = Stats {
                min,
                max,
                mean,
                std,
                l2,
                nan,
                inf,
                hash: hash.to_string(),
            };
            let bits = |s: &Stats| {
                [s.min, s.max, s.mean, s.std, s.l2]
                    .map(|x| if x.is_nan() { 0 } else { x.to_bits() })
            };
            assert_eq!(
                bits(&got),
                bits(&want),
                "n = {n}: {got:?} vs numpy {want:?}"
            );
            assert_eq!(got, want, "n = {n}");
        }
    }

    #[test]
    fn fnv1a64_known_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        let data = [1.0f32, -2.5, f32::NAN];
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(fnv1a64_f32(&data), fnv1a64(&bytes));
        assert_eq!(tensor_hash(&[]), "fnv1a64:cbf29ce484222325");
    }

    #[test]
    fn no_finite_values() {
        let s = stats(&[f32::NAN, f32::INFINITY, f32::NAN]);
        assert!(s.min.is_nan() && s.max.is_nan() && s.mean.is_nan() && s.std.is_nan());
        assert_eq!((s.l2, s.nan, s.inf), (0.0, 2, 1));
    }

    #[test]
    fn simple_values() {
        let s = stats(&[1.0, 2.0, 3.0, 4.0, f32::NAN]);
        assert_eq!((s.min, s.max, s.mean), (1.0, 4.0, 2.5));
        assert_eq!(s.std, 1.25f64.sqrt());
        assert_eq!(s.l2, 30f64.sqrt());
        assert_eq!((s.nan, s.inf), (1, 0));
    }

    #[test]
    fn null_reads_as_nan_and_nan_writes_as_null() {
        let json = r#"{"min": null, "max": null, "mean": null, "std": null, "l2": 0.0,
                       "nan": 3, "inf": 0, "hash": "fnv1a64:0000000000000000"}"#;
        let s: Stats = serde_json::from_str(json).expect("stats parse");
        assert!(s.min.is_nan());
        let back = serde_json::to_string(&s).expect("stats serialize");
        assert!(back.starts_with(r#"{"min":null,"max":null,"mean":null,"std":null,"l2":0.0"#));
        let again: Stats = serde_json::from_str(&back).expect("stats reparse");
        assert_eq!(again, s);
    }
}
