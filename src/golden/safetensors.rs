//! A memory-mapped safetensors reader that validates only the header on open, and the
//! matching serializer used by the capture writer.
//!
//! Layout: 8-byte little-endian header length `n`, `n` bytes of JSON header
//! (`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`), then the
//! data section; offsets are relative to the start of the data section.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::Deserialize;
use serde_json::Value;

use super::error::{GoldenError, GoldenErrorKind};
use crate::tensor::Tensor;

/// Element type of a stored tensor (safetensors spelling). Ordered as the `safetensors`
/// library orders dtypes (the writer stores larger-alignment dtypes first, as it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SafetensorsDtype {
    Bool,
    U8,
    I8,
    I16,
    U16,
    F16,
    Bf16,
    I32,
    U32,
    F32,
    F64,
    I64,
    U64,
}

impl SafetensorsDtype {
    /// Parses the header spelling (`F32`, `BF16`, `I64`, `BOOL`, …); `None` for dtypes that
    /// cannot be widened to f32 (F8 variants, complex, unknown).
    pub fn parse(s: &str) -> Option<SafetensorsDtype> {
        use SafetensorsDtype::*;
        Some(match s {
            "BOOL" => Bool,
            "U8" => U8,
            "I8" => I8,
            "I16" => I16,
            "U16" => U16,
            "F16" => F16,
            "BF16" => Bf16,
            "I32" => I32,
            "U32" => U32,
            "F32" => F32,
            "I64" => I64,
            "U64" => U64,
            "F64" => F64,
            _ => return None,
        })
    }

    /// The header spelling.
    pub fn as_str(self) -> &'static str {
        use SafetensorsDtype::*;
        match self {
            Bool => "BOOL",
            U8 => "U8",
            I8 => "I8",
            I16 => "I16",
            U16 => "U16",
            F16 => "F16",
            Bf16 => "BF16",
            I32 => "I32",
            U32 => "U32",
            F32 => "F32",
            I64 => "I64",
            U64 => "U64",
            F64 => "F64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        use SafetensorsDtype::*;
        match self {
            Bool | U8 | I8 => 1,
            I16 | U16 | F16 | Bf16 => 2,
            I32 | U32 | F32 => 4,
            I64 | U64 | F64 => 8,
        }
    }
}

impl std::fmt::Display for SafetensorsDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header entry of one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: SafetensorsDtype,
    pub shape: Vec<usize>,
    /// `[begin, end)` relative to the start of the data section.
    pub data_offsets: (usize, usize),
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Deserialize)]
struct RawEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// A memory-mapped safetensors file whose header has been validated.
///
/// Opening reads only the header; tensor data is read (and widened to f32) on demand.
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    names: Vec<String>,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

impl SafetensorsFile {
    /// Maps `path` and validates its header: the header length, the JSON, every entry's dtype
    /// and shape, and that every tensor's data offsets lie inside the data section, span exactly
    /// shape × dtype bytes and do not overlap another tensor. Tensor data is not read.
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::Io`] if the file cannot be opened or mapped; [`GoldenErrorKind::Truncated`],
    /// [`GoldenErrorKind::HeaderPastEnd`], [`GoldenErrorKind::InvalidHeader`],
    /// [`GoldenErrorKind::InvalidEntry`], [`GoldenErrorKind::InvalidMetadata`],
    /// [`GoldenErrorKind::UnsupportedDtype`], [`GoldenErrorKind::ShapeOverflow`],
    /// [`GoldenErrorKind::OffsetsOutOfRange`], [`GoldenErrorKind::DataSizeMismatch`] or
    /// [`GoldenErrorKind::OverlappingData`] for a malformed header.
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsFile, GoldenError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| GoldenError::io("open", &path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| GoldenError::io("stat", &path, e))?
            .len();
        if file_len < 8 {
            return Err(GoldenErrorKind::Truncated {
                path,
                len: file_len,
            }
            .into());
        }
        // SAFETY: the map is read-only and private to this process. Safetensors files are
        // written once and replaced by rename (never rewritten in place) by pccscope and the
        // Python writer, so the mapped bytes do not change while the map lives; all accesses
        // below are bounds-checked against the map's length.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| GoldenError::io("map", &path, e))?;
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&mmap[..8]);
        let header_len = u64::from_le_bytes(len_bytes);
        let mapped = mmap.len() as u64;
        if header_len > mapped - 8 {
            return Err(GoldenErrorKind::HeaderPastEnd {
                path,
                header_len,
                file_len: mapped,
            }
            .into());
        }
        // header_len <= mapped - 8 fits in usize because the whole file is mapped.
        let data_start = 8 + header_len as usize;
        let data_len = mmap.len() - data_start;
        let header: serde_json::Map<String, Value> = serde_json::from_slice(&mmap[8..data_start])
            .map_err(|source| {
            GoldenErrorKind::InvalidHeader {
                path: path.clone(),
                source,
            }
        })?;

        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, value) in header {
            if name == "__metadata__" {
                metadata = serde_json::from_value(value).map_err(|source| {
                    GoldenErrorKind::InvalidMetadata {
                        path: path.clone(),
                        source,
                    }
                })?;
                continue;
            }
            let raw: RawEntry =
                serde_json::from_value(value).map_err(|source| GoldenErrorKind::InvalidEntry {
                    path: path.clone(),
                    tensor: name.clone(),
                    source,
                })?;
            let info = validate_entry(&path, &name, raw, data_len)?;
            tensors.insert(name, info);
        }
        check_overlaps(&path, &tensors)?;
        let names = tensors.keys().cloned().collect();
        Ok(SafetensorsFile {
            path,
            mmap,
            data_start,
            names,
            tensors,
            metadata,
        })
    }

    /// The path this file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// True when the file holds a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Stored dtype (safetensors spelling, e.g. `BF16`) and shape of a tensor.
    pub fn info(&self, name: &str) -> Option<(String, Vec<usize>)> {
        self.tensors
            .get(name)
            .map(|i| (i.dtype.as_str().to_string(), i.shape.clone()))
    }

    /// The full header entry of a tensor.
    pub fn entry(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The `__metadata__` map (empty when the header has none).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The stored bytes of a tensor (little-endian, in its stored dtype).
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::TensorNotFound`] if there is no tensor of that name.
    pub fn bytes(&self, name: &str) -> Result<&[u8], GoldenError> {
        let info = self.entry_or_err(name)?;
        self.slice(name, info)
    }

    /// Reads a tensor and widens it to host f32 (BOOL → 0/1; integers exactly).
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::TensorNotFound`] if there is no tensor of that name;
    /// [`GoldenErrorKind::InexactInteger`] if an integer element is not representable in f32.
    pub fn tensor(&self, name: &str) -> Result<Tensor, GoldenError> {
        let info = self.entry_or_err(name)?;
        let bytes = self.slice(name, info)?;
        let data = decode(info.dtype, bytes).map_err(|(index, value)| {
            GoldenErrorKind::InexactInteger {
                path: self.path.clone(),
                tensor: name.to_string(),
                index,
                value,
            }
        })?;
        let tensor =
            Tensor::from_vec(&info.shape, data).ok_or_else(|| GoldenErrorKind::ShapeOverflow {
                path: self.path.clone(),
                tensor: name.to_string(),
                shape: info.shape.clone(),
            })?;
        Ok(tensor.with_origin(name))
    }

    fn entry_or_err(&self, name: &str) -> Result<&TensorInfo, GoldenError> {
        self.tensors.get(name).ok_or_else(|| {
            GoldenErrorKind::TensorNotFound {
                path: self.path.clone(),
                tensor: name.to_string(),
            }
            .into()
        })
    }

    fn slice(&self, name: &str, info: &TensorInfo) -> Result<&[u8], GoldenError> {
        let (begin, end) = info.data_offsets;
        self.mmap
            .get(self.data_start + begin..self.data_start + end)
            .ok_or_else(|| {
                GoldenErrorKind::OffsetsOutOfRange {
                    path: self.path.clone(),
                    tensor: name.to_string(),
                    begin: begin as u64,
                    end: end as u64,
                    data_len: (self.mmap.len() - self.data_start) as u64,
                }
                .into()
            })
    }
}

fn validate_entry(
    path: &Path,
    name: &str,
    raw: RawEntry,
    data_len: usize,
) -> Result<TensorInfo, GoldenError> {
    let dtype =
        SafetensorsDtype::parse(&raw.dtype).ok_or_else(|| GoldenErrorKind::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            dtype: raw.dtype.clone(),
        })?;
    let expected = raw
        .shape
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| GoldenErrorKind::ShapeOverflow {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            shape: raw.shape.clone(),
        })?;
    let [begin, end] = raw.data_offsets;
    if begin > end || end > data_len as u64 {
        return Err(GoldenErrorKind::OffsetsOutOfRange {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            begin,
            end,
            data_len: data_len as u64,
        }
        .into());
    }
    if end - begin != expected as u64 {
        return Err(GoldenErrorKind::DataSizeMismatch {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            dtype: dtype.as_str().to_string(),
            shape: raw.shape,
            expected: expected as u64,
            found: end - begin,
        }
        .into());
    }
    Ok(TensorInfo {
        dtype,
        shape: raw.shape,
        // Both are <= data_len, a usize.
        data_offsets: (begin as usize, end as usize),
    })
}

fn check_overlaps(path: &Path, tensors: &BTreeMap<String, TensorInfo>) -> Result<(), GoldenError> {
    let mut ranges: Vec<(usize, usize, &str)> = tensors
        .iter()
        .filter(|(_, i)| i.data_offsets.0 < i.data_offsets.1)
        .map(|(n, i)| (i.data_offsets.0, i.data_offsets.1, n.as_str()))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let (_, prev_end, prev) = pair[0];
        let (begin, end, name) = pair[1];
        if begin < prev_end {
            return Err(GoldenErrorKind::OverlappingData {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                other: prev.to_string(),
                begin: begin as u64,
                end: end as u64,
            }
            .into());
        }
    }
    Ok(())
}

/// Widens stored little-endian bytes to f32. `Err((index, value))` names the first integer
/// that f32 cannot hold exactly. `bytes.len()` must be a multiple of the dtype size.
pub(crate) fn decode(dtype: SafetensorsDtype, bytes: &[u8]) -> Result<Vec<f32>, (usize, i128)> {
    use SafetensorsDtype::*;
    fn exact(v: i128, index: usize) -> Result<f32, (usize, i128)> {
        let f = v as f32;
        if f as i128 == v {
            Ok(f)
        } else {
            Err((index, v))
        }
    }
    fn ints<const N: usize>(
        bytes: &[u8],
        conv: impl Fn([u8; N]) -> i128,
    ) -> Result<Vec<f32>, (usize, i128)> {
        bytes
            .chunks_exact(N)
            .enumerate()
            .map(|(i, c)| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                exact(conv(a), i)
            })
            .collect()
    }
    fn floats<const N: usize>(bytes: &[u8], conv: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                conv(a)
            })
            .collect()
    }
    Ok(match dtype {
        Bool => bytes
            .iter()
            .map(|&b| if b != 0 { 1.0 } else { 0.0 })
            .collect(),
        U8 => bytes.iter().map(|&b| f32::from(b)).collect(),
        I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        I16 => floats::<2>(bytes, |a| f32::from(i16::from_le_bytes(a))),
        U16 => floats::<2>(bytes, |a| f32::from(u16::from_le_bytes(a))),
        F16 => floats::<2>(bytes, |a| half::f16::from_le_bytes(a).to_f32()),
        Bf16 => floats::<2>(bytes, |a| half::bf16::from_le_bytes(a).to_f32()),
        I32 => ints::<4>(bytes, |a| i128::from(i32::from_le_bytes(a)))?,
        U32 => ints::<4>(bytes, |a| i128::from(u32::from_le_bytes(a)))?,
        F32 => floats::<4>(bytes, f32::from_le_bytes),
        I64 => ints::<8>(bytes, |a| i128::from(i64::from_le_bytes(a)))?,
        U64 => ints::<8>(bytes, |a| i128::from(u64::from_le_bytes(a)))?,
        F64 => floats::<8>(bytes, |a| f64::from_le_bytes(a) as f32),
    })
}

/// Narrows f32 values to the bytes of `dtype`. `Err(index)` names the first value the dtype
/// cannot hold (a non-integer or out-of-range value for an integer dtype, anything but 0/1 for
/// BOOL). Floats round to nearest even.
pub(crate) fn encode(dtype: SafetensorsDtype, data: &[f32]) -> Result<Vec<u8>, usize> {
    use SafetensorsDtype::*;
    let mut out = Vec::with_capacity(data.len() * dtype.size());
    for (i, &v) in data.iter().enumerate() {
        // Exact integer value, or the index of the offending element.
        let int = || -> Result<i128, usize> {
            if v.is_finite() && v.fract() == 0.0 {
                Ok(v as i128)
            } else {
                Err(i)
            }
        };
        match dtype {
            Bool if v == 0.0 => out.push(0),
            Bool if v == 1.0 => out.push(1),
            Bool => return Err(i),
            U8 => out.push(u8::try_from(int()?).map_err(|_| i)?),
            I8 => out.extend_from_slice(&i8::try_from(int()?).map_err(|_| i)?.to_le_bytes()),
            I16 => out.extend_from_slice(&i16::try_from(int()?).map_err(|_| i)?.to_le_bytes()),
            U16 => out.extend_from_slice(&u16::try_from(int()?).map_err(|_| i)?.to_le_bytes()),
            I32 => out.extend_from_slice(&i32::try_from(int()?).map_err(|_| i)?.to_le_bytes()),
            U32 => out.extend_from_slice(&u32::try_from(int()?).map_err(|_| i)?.to_le_bytes()),
            I64 => out.extend_from_slice(&i64::try_from(int()?).map_err(|_| i)?.to_le_bytes()),
            U64 => out.extend_from_slice(&u64::try_from(int()?).map_err(|_| i)?.to_le_bytes()),
            F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            Bf16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            F32 => out.extend_from_slice(&v.to_le_bytes()),
            F64 => out.extend_from_slice(&f64::from(v).to_le_bytes()),
        }
    }
    Ok(out)
}

/// One tensor to serialize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawTensor {
    pub dtype: SafetensorsDtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// Writes a safetensors file in the `safetensors` library's canonical layout (what its Python
/// `save_file` writes for the same tensors, byte for byte): tensors ordered by descending dtype
/// then name, in the header and in the data; header padded with spaces to a multiple of 8; no
/// `__metadata__`. Deterministic for the same input, and every tensor's data is aligned to its
/// element size.
pub(crate) fn write_safetensors<'a, W: Write>(
    out: &mut W,
    tensors: impl IntoIterator<Item = (&'a str, &'a RawTensor)>,
) -> std::io::Result<()> {
    let mut sorted: Vec<(&str, &RawTensor)> = tensors.into_iter().collect();
    sorted.sort_by(|(ln, lt), (rn, rt)| rt.dtype.cmp(&lt.dtype).then(ln.cmp(rn)));
    let mut header = String::from("{");
    let mut offset = 0usize;
    for (i, (name, t)) in sorted.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        header.push_str(&Value::from(*name).to_string());
        header.push_str(&format!(
            r#":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}}"#,
            t.dtype.as_str(),
            shape.join(","),
            offset,
            offset + t.bytes.len()
        ));
        offset += t.bytes.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    for (_, t) in &sorted {
        out.write_all(&t.bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_widen_exactly_or_fail() {
        let ok: Vec<u8> = [0i64, -5, 1 << 24, 257_151]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode(SafetensorsDtype::I64, &ok),
            Ok(vec![0.0, -5.0, 16_777_216.0, 257_151.0])
        );
        let bad: Vec<u8> = [3i64, (1 << 24) + 1]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(decode(SafetensorsDtype::I64, &bad), Err((1, (1 << 24) + 1)));
        let max = i64::MAX.to_le_bytes();
        assert_eq!(
            decode(SafetensorsDtype::I64, &max),
            Err((0, i128::from(i64::MAX)))
        );
    }

    #[test]
    fn encode_decode_round_trip_every_dtype() {
        use SafetensorsDtype::*;
        let values = [0.0f32, 1.0, 0.0, 1.0, 7.0];
        for dt in [
            Bool, U8, I8, I16, U16, F16, Bf16, I32, U32, F32, I64, U64, F64,
        ] {
            let data: Vec<f32> = if dt == Bool {
                values[..4].to_vec()
            } else {
                values.to_vec()
            };
            let bytes = encode(dt, &data).unwrap_or_else(|i| panic!("{dt}: element {i}"));
            assert_eq!(bytes.len(), data.len() * dt.size(), "{dt}");
            assert_eq!(decode(dt, &bytes), Ok(data.clone()), "{dt}");
            assert_eq!(SafetensorsDtype::parse(dt.as_str()), Some(dt));
        }
        let bf = encode(Bf16, &[1.0 + 1.0 / 256.0]).expect("bf16");
        assert_eq!(decode(Bf16, &bf), Ok(vec![1.0]), "round to nearest even");
    }

    #[test]
    fn encode_rejects_unrepresentable_values() {
        use SafetensorsDtype::*;
        assert_eq!(encode(I64, &[1.0, 0.5]), Err(1));
        assert_eq!(encode(I64, &[f32::NAN]), Err(0));
        assert_eq!(encode(U8, &[256.0]), Err(0));
        assert_eq!(encode(I32, &[3e9]), Err(0));
        assert_eq!(encode(Bool, &[1.0, 2.0]), Err(1));
        assert_eq!(encode(I64, &[9.3e18]), Err(0));
    }

    #[test]
    fn writer_output_is_canonical_and_padded() {
        let a = RawTensor {
            dtype: SafetensorsDtype::F32,
            shape: vec![2],
            bytes: [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        let b = RawTensor {
            dtype: SafetensorsDtype::U8,
            shape: vec![],
            bytes: vec![9],
        };
        let mut out = Vec::new();
        let c = RawTensor {
            dtype: SafetensorsDtype::I64,
            shape: vec![1],
            bytes: 5i64.to_le_bytes().to_vec(),
        };
        write_safetensors(
            &mut out,
            [("zeta", &b), ("beta", &a), ("alpha", &b), ("tok", &c)],
        )
        .expect("write to a Vec");
        let n = u64::from_le_bytes(out[..8].try_into().expect("8 bytes")) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&out[8..8 + n])
            .expect("utf-8")
            .trim_end();
        assert_eq!(
            header,
            concat!(
                r#"{"tok":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"#,
                r#""beta":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"#,
                r#""alpha":{"dtype":"U8","shape":[],"data_offsets":[16,17]},"#,
                r#""zeta":{"dtype":"U8","shape":[],"data_offsets":[17,18]}}"#
            )
        );
        assert_eq!(out.len(), 8 + n + 18);
    }
}
