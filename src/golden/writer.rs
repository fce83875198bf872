//! [`CaptureWriter`]: builds a capture in memory and writes it atomically.
//!
//! Used by `pccscope run --save-trace DIR` (a device run saved as a capture) and by tests that
//! build or perturb captures ([`CaptureWriter::from_capture`], [`rewrite_tensor`]).
//!
//! Storage rules (goldens/README.md): raw inputs go to `inputs.safetensors`, op outputs to
//! `<module>.safetensors` under their own name, except that a record whose data is
//! byte-identical (same dtype and shape) to an earlier record's or raw input's points at that
//! earlier tensor. Output is deterministic: sorted safetensors keys, a stable manifest layout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::capture::{check_relative, Capture};
use super::error::{GoldenError, GoldenErrorKind};
use super::manifest::{CheckpointRef, InputRecord, Manifest, ModuleRecord, OpRecord, SCHEMA};
use super::safetensors::{decode, encode, write_safetensors, RawTensor, SafetensorsDtype};
use super::stats::{fnv1a64, stats};
use crate::tensor::Tensor;

/// Shard of the raw inputs.
pub const INPUTS_SHARD: &str = "inputs.safetensors";

#[derive(Debug)]
struct PendingModule {
    record: ModuleRecord,
    names: HashSet<String>,
    data: Vec<Option<Arc<RawTensor>>>,
}

/// Collects inputs and op records, then writes shards and `manifest.json` in
/// [`finish`](CaptureWriter::finish).
///
/// Tensors are held in memory until `finish` (byte-identical tensors once). Calls that are
/// rejected return their error *and* make `finish` fail without writing anything, so a caller
/// that ignores one (a tracer that must not stop the run) still learns about it.
#[derive(Debug)]
pub struct CaptureWriter {
    dir: PathBuf,
    header: Manifest,
    inputs: Vec<(InputRecord, Arc<RawTensor>)>,
    modules: Vec<PendingModule>,
    module_index: HashMap<String, usize>,
    /// Content-addressed pool so identical tensors share one buffer.
    pool: HashMap<u64, Vec<Arc<RawTensor>>>,
    rejected: Vec<String>,
}

impl CaptureWriter {
    /// A writer for a capture in `dir` (created if missing).
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::Io`] if the directory cannot be created.
    pub fn new(
        dir: impl AsRef<Path>,
        producer: Value,
        model: &str,
        preset: &str,
        config: Value,
    ) -> Result<CaptureWriter, GoldenError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| GoldenError::io("create directory", &dir, e))?;
        Ok(CaptureWriter {
            dir,
            header: Manifest {
                schema: SCHEMA.to_string(),
                producer,
                model: model.to_string(),
                preset: preset.to_string(),
                config,
                checkpoint: None,
                inputs: Vec::new(),
                modules: Vec::new(),
            },
            inputs: Vec::new(),
            modules: Vec::new(),
            module_index: HashMap::new(),
            pool: HashMap::new(),
            rejected: Vec::new(),
        })
    }

    /// A writer for `dir` holding everything `capture` holds, to be modified and written
    /// again: stored bytes and dtypes unchanged, stats of full records recomputed from their
    /// data (the same numbers the Python writer stores), stats-only records as read. The
    /// checkpoint reference is kept; the checkpoint file itself is not copied.
    ///
    /// # Errors
    ///
    /// Any error reading the capture's shards, and the errors of [`CaptureWriter::new`].
    pub fn from_capture(
        capture: &Capture,
        dir: impl AsRef<Path>,
    ) -> Result<CaptureWriter, GoldenError> {
        let m = capture.manifest();
        let mut w = CaptureWriter::new(
            dir,
            m.producer.clone(),
            &m.model,
            &m.preset,
            m.config.clone(),
        )?;
        w.header.checkpoint = m.checkpoint.clone();
        for rec in &m.inputs {
            let raw = capture.raw_input(rec)?;
            let rec = InputRecord {
                file: INPUTS_SHARD.to_string(),
                tensor: None,
                ..rec.clone()
            };
            let data = w.intern(raw);
            w.inputs.push((rec, data));
        }
        for mr in &m.modules {
            w.begin_module(&mr.id, mr.inputs.clone(), mr.outputs.clone());
            let Some(&mi) = w.module_index.get(&mr.id) else {
                continue;
            };
            for op in &mr.ops {
                let data = match &op.file {
                    Some(_) => Some(capture.raw_op(&mr.id, op)?),
                    None => None,
                };
                let mut rec = OpRecord {
                    file: None,
                    tensor: None,
                    ..op.clone()
                };
                if let Some(d) = &data {
                    rec.stats = Some(raw_stats(&w.dir, &rec.name, d)?);
                }
                let data = data.map(|d| w.intern(d));
                let pm = &mut w.modules[mi];
                pm.names.insert(rec.name.clone());
                pm.record.ops.push(rec);
                pm.data.push(data);
            }
        }
        Ok(w)
    }

    /// The capture directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets (or clears) the checkpoint reference.
    pub fn set_checkpoint(&mut self, checkpoint: Option<CheckpointRef>) {
        self.header.checkpoint = checkpoint;
    }

    /// Adds a raw input, stored in `inputs.safetensors` as `dtype` (`F32`, `I64`, `BOOL`,
    /// `I32`, `U8`, `F16`, `BF16`, …).
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::WriterDtype`], [`GoldenErrorKind::InputAddedTwice`], or
    /// [`GoldenErrorKind::NotRepresentable`] (e.g. 0.5 as `I64`, 2 as `BOOL`).
    pub fn add_input(
        &mut self,
        name: &str,
        tensor: &Tensor,
        dtype: &str,
    ) -> Result<(), GoldenError> {
        let r = self.try_add_input(name, tensor, dtype);
        self.note(r)
    }

    fn try_add_input(
        &mut self,
        name: &str,
        tensor: &Tensor,
        dtype: &str,
    ) -> Result<(), GoldenError> {
        let dt = SafetensorsDtype::parse(&dtype.to_ascii_uppercase()).ok_or_else(|| {
            GoldenErrorKind::WriterDtype {
                tensor: name.to_string(),
                dtype: dtype.to_string(),
            }
        })?;
        if self.inputs.iter().any(|(r, _)| r.name == name) {
            return Err(GoldenErrorKind::InputAddedTwice {
                name: name.to_string(),
            }
            .into());
        }
        let raw = encode_tensor(name, tensor, dt)?;
        let rec = InputRecord {
            name: name.to_string(),
            shape: tensor.shape().to_vec(),
            dtype: dt.as_str().to_string(),
            file: INPUTS_SHARD.to_string(),
            tensor: None,
        };
        let data = self.intern(raw);
        self.inputs.push((rec, data));
        Ok(())
    }

    /// Starts module `id` (its shard is `<id>.safetensors`). Calling it again for the same id
    /// does nothing. An id that cannot name a file (empty, `inputs`, path separators, leading
    /// dot) is recorded as rejected and reported by [`finish`](CaptureWriter::finish).
    pub fn begin_module(
        &mut self,
        id: &str,
        inputs: impl IntoIterator<Item = impl Into<String>>,
        outputs: impl IntoIterator<Item = impl Into<String>>,
    ) {
        if self.module_index.contains_key(id) {
            return;
        }
        if let Err(reason) = check_module_id(id) {
            let _ = self.note(Err(GoldenErrorKind::InvalidModuleId {
                module: id.to_string(),
                reason,
            }
            .into()));
            return;
        }
        self.module_index.insert(id.to_string(), self.modules.len());
        self.modules.push(PendingModule {
            record: ModuleRecord {
                id: id.to_string(),
                inputs: inputs.into_iter().map(Into::into).collect(),
                outputs: outputs.into_iter().map(Into::into).collect(),
                ops: Vec::new(),
            },
            names: HashSet::new(),
            data: Vec::new(),
        });
    }

    /// Appends an op record to module `module_id`. Its `file` and `tensor` fields are ignored
    /// (set by `finish`). With a tensor, the data is stored as `F32` (the record's `dtype` is
    /// set to `F32`) and `stats` are computed from it; with `None` the record is stats-only and
    /// must carry `stats`.
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::ModuleNotBegun`], [`GoldenErrorKind::DuplicateOp`],
    /// [`GoldenErrorKind::TensorShapeMismatch`] or [`GoldenErrorKind::MissingStats`].
    pub fn add_op(
        &mut self,
        module_id: &str,
        record: OpRecord,
        tensor: Option<&Tensor>,
    ) -> Result<(), GoldenError> {
        let r = self.try_add_op(module_id, record, tensor);
        self.note(r)
    }

    fn try_add_op(
        &mut self,
        module_id: &str,
        mut record: OpRecord,
        tensor: Option<&Tensor>,
    ) -> Result<(), GoldenError> {
        let &mi =
            self.module_index
                .get(module_id)
                .ok_or_else(|| GoldenErrorKind::ModuleNotBegun {
                    module: module_id.to_string(),
                    op: record.name.clone(),
                })?;
        if self.modules[mi].names.contains(&record.name) {
            return Err(GoldenErrorKind::DuplicateOp {
                module: module_id.to_string(),
                op: record.name,
            }
            .into());
        }
        record.file = None;
        record.tensor = None;
        let data = match tensor {
            Some(t) => {
                if t.shape() != record.shape.as_slice() {
                    return Err(GoldenErrorKind::TensorShapeMismatch {
                        module: module_id.to_string(),
                        op: record.name,
                        record: record.shape,
                        tensor: t.shape().to_vec(),
                    }
                    .into());
                }
                let values = t.as_slice();
                record.stats = Some(stats(&values));
                record.dtype = SafetensorsDtype::F32.as_str().to_string();
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                Some(self.intern(RawTensor {
                    dtype: SafetensorsDtype::F32,
                    shape: record.shape.clone(),
                    bytes,
                }))
            }
            None if record.stats.is_none() => {
                return Err(GoldenErrorKind::MissingStats {
                    module: module_id.to_string(),
                    op: record.name,
                }
                .into())
            }
            None => None,
        };
        let pm = &mut self.modules[mi];
        pm.names.insert(record.name.clone());
        pm.record.ops.push(record);
        pm.data.push(data);
        Ok(())
    }

    /// Applies `f` to the data of `name` (an op output or raw input) and stores the result for
    /// every record of that name, recomputing their stats (stats-only records of that name get
    /// the new stats too). Records of other names that shared the old bytes keep them.
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::UnknownTensor`], [`GoldenErrorKind::StatsOnly`], or
    /// [`GoldenErrorKind::NotRepresentable`] if the result does not fit the stored dtype.
    pub fn map_tensor(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut [f32]),
    ) -> Result<(), GoldenError> {
        let first = self
            .inputs
            .iter()
            .find(|(r, _)| r.name == name)
            .map(|(_, d)| Arc::clone(d))
            .or_else(|| {
                self.modules.iter().find_map(|m| {
                    m.record
                        .ops
                        .iter()
                        .zip(&m.data)
                        .find(|(r, d)| r.name == name && d.is_some())
                        .and_then(|(_, d)| d.clone())
                })
            });
        let Some(first) = first else {
            let known = self.modules.iter().any(|m| m.names.contains(name));
            let name = name.to_string();
            return Err(if known {
                GoldenErrorKind::StatsOnly { name }
            } else {
                GoldenErrorKind::UnknownTensor { name }
            }
            .into());
        };
        let mut values = decode_raw(&self.dir, name, &first)?;
        f(&mut values);
        let new_stats = stats(&values);
        let mut encoded: HashMap<SafetensorsDtype, Arc<RawTensor>> = HashMap::new();
        let mut replacement = |w: &mut Self,
                               old: &RawTensor|
         -> Result<Arc<RawTensor>, GoldenError> {
            if let Some(d) = encoded.get(&old.dtype) {
                return Ok(Arc::clone(d));
            }
            let bytes =
                encode(old.dtype, &values).map_err(|index| GoldenErrorKind::NotRepresentable {
                    tensor: name.to_string(),
                    dtype: old.dtype.as_str(),
                    index,
                    value: values.get(index).copied().unwrap_or(f32::NAN),
                })?;
            let d = w.intern(RawTensor {
                dtype: old.dtype,
                shape: old.shape.clone(),
                bytes,
            });
            encoded.insert(old.dtype, Arc::clone(&d));
            Ok(d)
        };
        for i in 0..self.inputs.len() {
            if self.inputs[i].0.name == name {
                let old = Arc::clone(&self.inputs[i].1);
                self.inputs[i].1 = replacement(self, &old)?;
            }
        }
        for mi in 0..self.modules.len() {
            for oi in 0..self.modules[mi].record.ops.len() {
                if self.modules[mi].record.ops[oi].name != name {
                    continue;
                }
                if let Some(old) = self.modules[mi].data[oi].clone() {
                    self.modules[mi].data[oi] = Some(replacement(self, &old)?);
                }
                self.modules[mi].record.ops[oi].stats = Some(new_stats.clone());
            }
        }
        Ok(())
    }

    /// Writes every shard, then `manifest.json`, each to a temporary file in the directory that
    /// is synced and renamed into place, so a crash never leaves a partial file (at worst new
    /// shards beside the previous manifest). Returns the manifest path.
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::Rejected`] (nothing written) if an earlier call was rejected,
    /// [`GoldenErrorKind::NameCollision`], [`GoldenErrorKind::PathEscape`] for a bad checkpoint path,
    /// or [`GoldenErrorKind::Io`].
    pub fn finish(self) -> Result<PathBuf, GoldenError> {
        if let Some(first) = self.rejected.first() {
            return Err(GoldenErrorKind::Rejected {
                dir: self.dir.clone(),
                count: self.rejected.len(),
                first: first.clone(),
            }
            .into());
        }
        if let Some(c) = &self.header.checkpoint {
            check_relative(&c.file).map_err(|reason| GoldenErrorKind::PathEscape {
                dir: self.dir.clone(),
                owner: "the checkpoint".into(),
                file: c.file.clone(),
                reason,
            })?;
        }
        let input_names: HashSet<&str> = self.inputs.iter().map(|(r, _)| r.name.as_str()).collect();
        for m in &self.modules {
            if let Some(op) = m
                .record
                .ops
                .iter()
                .find(|o| input_names.contains(o.name.as_str()))
            {
                return Err(GoldenErrorKind::NameCollision {
                    dir: self.dir.clone(),
                    module: m.record.id.clone(),
                    op: op.name.clone(),
                }
                .into());
            }
        }

        // Assign storage: the first record holding a buffer stores it.
        let mut first: HashMap<*const RawTensor, (String, String)> = HashMap::new();
        let mut shards: BTreeMap<String, BTreeMap<String, Arc<RawTensor>>> = BTreeMap::new();
        let mut manifest = self.header.clone();
        for (rec, data) in &self.inputs {
            first
                .entry(Arc::as_ptr(data))
                .or_insert_with(|| (INPUTS_SHARD.to_string(), rec.name.clone()));
            shards
                .entry(INPUTS_SHARD.to_string())
                .or_default()
                .insert(rec.name.clone(), Arc::clone(data));
            manifest.inputs.push(rec.clone());
        }
        for m in &self.modules {
            let shard = format!("{}.safetensors", m.record.id);
            let mut rec = m.record.clone();
            for (op, data) in rec.ops.iter_mut().zip(&m.data) {
                let Some(data) = data else { continue };
                let (file, key) = first
                    .entry(Arc::as_ptr(data))
                    .or_insert_with(|| {
                        shards
                            .entry(shard.clone())
                            .or_default()
                            .insert(op.name.clone(), Arc::clone(data));
                        (shard.clone(), op.name.clone())
                    })
                    .clone();
                op.file = Some(file);
                op.tensor = Some(key);
            }
            manifest.modules.push(rec);
        }

        let mut temps = TempFiles::default();
        for (file, tensors) in &shards {
            write_atomic(&self.dir, file, &mut temps, |w| {
                write_safetensors(w, tensors.iter().map(|(k, v)| (k.as_str(), v.as_ref())))
            })?;
        }
        let text = format_manifest(&manifest);
        let path = write_atomic(&self.dir, "manifest.json", &mut temps, |w| {
            w.write_all(text.as_bytes())
        })?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// Shares one buffer between byte-identical tensors of the same dtype and shape.
    fn intern(&mut self, raw: RawTensor) -> Arc<RawTensor> {
        let bucket = self.pool.entry(fnv1a64(&raw.bytes)).or_default();
        if let Some(hit) = bucket.iter().find(|t| ***t == raw) {
            return Arc::clone(hit);
        }
        let t = Arc::new(raw);
        bucket.push(Arc::clone(&t));
        t
    }

    fn note(&mut self, r: Result<(), GoldenError>) -> Result<(), GoldenError> {
        if let Err(e) = &r {
            self.rejected.push(e.to_string());
        }
        r
    }
}

/// Opens the capture in `dir`, applies `f` to the data of `name` and writes the capture back in
/// place (see [`CaptureWriter::map_tensor`]). For tests that perturb one golden.
///
/// # Errors
///
/// The errors of [`Capture::open`], [`CaptureWriter::from_capture`],
/// [`CaptureWriter::map_tensor`] and [`CaptureWriter::finish`].
pub fn rewrite_tensor(
    dir: impl AsRef<Path>,
    name: &str,
    f: impl FnOnce(&mut [f32]),
) -> Result<(), GoldenError> {
    let dir = dir.as_ref();
    let mut w = {
        let capture = Capture::open(dir)?;
        CaptureWriter::from_capture(&capture, dir)?
    };
    w.map_tensor(name, f)?;
    w.finish().map(|_| ())
}

fn check_module_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("the id is empty");
    }
    if id.starts_with('.') {
        return Err("the id starts with a dot");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err("the id may hold only ASCII letters, digits, `_`, `-` and `.`");
    }
    if id == "inputs" {
        return Err("`inputs` is reserved for the raw-input shard");
    }
    Ok(())
}

fn encode_tensor(
    name: &str,
    t: &Tensor,
    dtype: SafetensorsDtype,
) -> Result<RawTensor, GoldenError> {
    let values = t.as_slice();
    let bytes = encode(dtype, &values).map_err(|index| GoldenErrorKind::NotRepresentable {
        tensor: name.to_string(),
        dtype: dtype.as_str(),
        index,
        value: values.get(index).copied().unwrap_or(f32::NAN),
    })?;
    Ok(RawTensor {
        dtype,
        shape: t.shape().to_vec(),
        bytes,
    })
}

fn decode_raw(dir: &Path, name: &str, raw: &RawTensor) -> Result<Vec<f32>, GoldenError> {
    decode(raw.dtype, &raw.bytes).map_err(|(index, value)| {
        GoldenErrorKind::InexactInteger {
            path: dir.to_path_buf(),
            tensor: name.to_string(),
            index,
            value,
        }
        .into()
    })
}

fn raw_stats(dir: &Path, name: &str, raw: &RawTensor) -> Result<super::stats::Stats, GoldenError> {
    decode_raw(dir, name, raw).map(|v| stats(&v))
}

/// Temporary files not yet renamed into place; removed on drop.
#[derive(Default)]
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `dir/name` through a synced temporary file and a rename.
fn write_atomic(
    dir: &Path,
    name: &str,
    temps: &mut TempFiles,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<PathBuf, GoldenError> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let path = dir.join(name);
    temps.0.push(tmp.clone());
    let file = File::create(&tmp).map_err(|e| GoldenError::io("create", &tmp, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    body(&mut w).map_err(|e| GoldenError::io("write", &tmp, e))?;
    let file = w
        .into_inner()
        .map_err(|e| GoldenError::io("write", &tmp, e.into_error()))?;
    file.sync_all()
        .map_err(|e| GoldenError::io("sync", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| GoldenError::io("rename", &tmp, e))?;
    temps.0.retain(|p| p != &tmp);
    Ok(path)
}

/// Makes the renames durable (directory entries are synced separately on Unix).
fn sync_dir(dir: &Path) -> Result<(), GoldenError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| GoldenError::io("sync", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Stable, diff-friendly manifest text (the layout of the Python writer): the structure
/// indented, one line per input and per op record.
fn format_manifest(m: &Manifest) -> String {
    fn j<T: serde::Serialize + ?Sized>(v: &T) -> String {
        // Manifest types are plain data with string keys: serialization cannot fail.
        serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
    }
    let mut top: Vec<String> = vec![
        format!("  \"schema\": {}", j(&m.schema)),
        format!("  \"producer\": {}", j(&m.producer)),
        format!("  \"model\": {}", j(&m.model)),
        format!("  \"preset\": {}", j(&m.preset)),
        format!("  \"config\": {}", j(&m.config)),
    ];
    if let Some(c) = &m.checkpoint {
        top.push(format!("  \"checkpoint\": {}", j(c)));
    }
    fn list(lines: Vec<String>, close: &str) -> String {
        if lines.is_empty() {
            "[]".to_string()
        } else {
            format!("[\n{}\n{close}]", lines.join(",\n"))
        }
    }
    let inputs: Vec<String> = m.inputs.iter().map(|i| format!("    {}", j(i))).collect();
    top.push(format!("  \"inputs\": {}", list(inputs, "  ")));
    let modules: Vec<String> = m
        .modules
        .iter()
        .map(|md| {
            let ops: Vec<String> = md.ops.iter().map(|o| format!("      {}", j(o))).collect();
            format!(
                "    {{\"id\": {}, \"inputs\": {}, \"outputs\": {},\n     \"ops\": {}}}",
                j(&md.id),
                j(&md.inputs),
                j(&md.outputs),
                list(ops, "    ")
            )
        })
        .collect();
    top.push(format!("  \"modules\": {}", list(modules, "  ")));
    format!("{{\n{}\n}}\n", top.join(",\n"))
}
