//! [`Capture`]: a capture directory opened for reading.
//!
//! Opening reads and validates `manifest.json` (schema, every `file` relative and inside the
//! directory) but no shard: shards are mapped (header only) the first time a record of theirs is
//! used, so a missing or broken shard is an error for the modules that need it, not for the
//! whole capture. [`Capture::check_module`] validates one module up front.

use std::collections::HashMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::error::{GoldenError, GoldenErrorKind};
use super::manifest::{InputRecord, Manifest, ModuleRecord, OpRecord, SCHEMA};
use super::safetensors::{RawTensor, SafetensorsFile};
use super::stats::{stats, Stats};
use crate::tensor::Tensor;

/// Module label used in errors about raw inputs (they live in `inputs.safetensors`).
const INPUTS_OWNER: &str = "inputs";

/// The golden of one name.
#[derive(Debug, Clone)]
pub enum Golden {
    /// Full data (returned as stored: NaN and Inf included).
    Full(Tensor),
    /// Only statistics were captured.
    Stats(Stats),
}

impl Golden {
    /// Statistics of the golden (computed for full data), e.g. to flag NaN in a golden.
    pub fn stats(&self) -> Stats {
        match self {
            Golden::Full(t) => stats(&t.as_slice()),
            Golden::Stats(s) => s.clone(),
        }
    }
}

/// Where a name is defined.
#[derive(Debug, Clone, Copy)]
enum Location {
    Op { module: usize, op: usize },
    Input(usize),
}

/// A capture directory: its manifest and lazily mapped shards. `Send + Sync`.
#[derive(Debug)]
pub struct Capture {
    dir: PathBuf,
    root: PathBuf,
    manifest: Manifest,
    modules: HashMap<String, usize>,
    ops: HashMap<String, (usize, usize)>,
    inputs: HashMap<String, usize>,
    shards: Mutex<HashMap<String, Arc<SafetensorsFile>>>,
}

#[derive(Deserialize)]
struct SchemaProbe {
    schema: Option<serde_json::Value>,
}

impl Capture {
    /// Opens the capture in `dir`: reads `manifest.json`, checks its schema and that every
    /// `file` it names is a relative path inside `dir` (symlinks are resolved for the
    /// checkpoint here and for shards when they are first used).
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::Io`] if the directory or manifest cannot be read;
    /// [`GoldenErrorKind::InvalidManifest`], [`GoldenErrorKind::SchemaMismatch`],
    /// [`GoldenErrorKind::PathEscape`], [`GoldenErrorKind::DuplicateModule`] or
    /// [`GoldenErrorKind::DuplicateInput`] for a bad manifest.
    pub fn open(dir: impl AsRef<Path>) -> Result<Capture, GoldenError> {
        let dir = dir.as_ref().to_path_buf();
        let root = dir
            .canonicalize()
            .map_err(|e| GoldenError::io("resolve capture directory", &dir, e))?;
        let path = dir.join("manifest.json");
        let text = std::fs::read(&path).map_err(|e| GoldenError::io("read", &path, e))?;
        let invalid = |source| GoldenErrorKind::InvalidManifest {
            path: path.clone(),
            source,
        };
        let probe: SchemaProbe = serde_json::from_slice(&text).map_err(invalid)?;
        let found = match probe.schema {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => "(none)".to_string(),
        };
        if found != SCHEMA {
            return Err(GoldenErrorKind::SchemaMismatch {
                path,
                expected: SCHEMA.to_string(),
                found,
            }
            .into());
        }
        let manifest: Manifest = serde_json::from_slice(&text).map_err(invalid)?;
        drop(text);

        let escape = |owner: String, file: &str, reason| -> GoldenError {
            GoldenErrorKind::PathEscape {
                dir: dir.clone(),
                owner,
                file: file.to_string(),
                reason,
            }
            .into()
        };
        let mut inputs = HashMap::new();
        for (i, r) in manifest.inputs.iter().enumerate() {
            check_relative(&r.file)
                .map_err(|why| escape(format!("input `{}`", r.name), &r.file, why))?;
            if inputs.insert(r.name.clone(), i).is_some() {
                return Err(GoldenErrorKind::DuplicateInput {
                    dir,
                    input: r.name.clone(),
                }
                .into());
            }
        }
        let mut modules = HashMap::new();
        let mut ops = HashMap::new();
        for (mi, m) in manifest.modules.iter().enumerate() {
            if modules.insert(m.id.clone(), mi).is_some() {
                return Err(GoldenErrorKind::DuplicateModule {
                    dir,
                    module: m.id.clone(),
                }
                .into());
            }
            for (oi, op) in m.ops.iter().enumerate() {
                if let Some(file) = &op.file {
                    check_relative(file).map_err(|why| {
                        escape(format!("op `{}` of module `{}`", op.name, m.id), file, why)
                    })?;
                }
                ops.entry(op.name.clone()).or_insert((mi, oi));
            }
        }
        if let Some(c) = &manifest.checkpoint {
            check_relative(&c.file).map_err(|why| escape("the checkpoint".into(), &c.file, why))?;
            // A checkpoint that does not exist is reported by whoever opens it.
            if let Ok(real) = root.join(&c.file).canonicalize() {
                if !real.starts_with(&root) {
                    return Err(escape("the checkpoint".into(), &c.file, SYMLINK_ESCAPE));
                }
            }
        }
        Ok(Capture {
            dir,
            root,
            manifest,
            modules,
            ops,
            inputs,
            shards: Mutex::new(HashMap::new()),
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The capture directory, as given to [`Capture::open`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The module of that id.
    pub fn module(&self, id: &str) -> Option<&ModuleRecord> {
        self.modules.get(id).map(|&i| &self.manifest.modules[i])
    }

    /// The first op record of that name in any module.
    pub fn record(&self, name: &str) -> Option<&OpRecord> {
        self.ops
            .get(name)
            .map(|&(m, o)| &self.manifest.modules[m].ops[o])
    }

    /// The raw input of that name.
    pub fn input(&self, name: &str) -> Option<&InputRecord> {
        self.inputs.get(name).map(|&i| &self.manifest.inputs[i])
    }

    /// Path of the checkpoint the manifest names, if any.
    pub fn checkpoint_path(&self) -> Option<PathBuf> {
        self.manifest
            .checkpoint
            .as_ref()
            .map(|c| self.dir.join(&c.file))
    }

    /// The golden of `name`: op records are looked up first, then raw inputs. `Ok(None)` when
    /// no record has that name or the record carries neither data nor stats. Data is returned
    /// as stored; check [`Golden::stats`] (or the record's `stats.nan`) to flag NaN goldens.
    ///
    /// # Errors
    ///
    /// The shard cannot be opened ([`GoldenErrorKind::MissingShard`], safetensors errors), the
    /// tensor is not in it, or its header disagrees with the record's shape or dtype.
    pub fn golden(&self, name: &str) -> Result<Option<Golden>, GoldenError> {
        match self.locate(name) {
            Some(Location::Op { module, op }) => {
                let m = &self.manifest.modules[module];
                let rec = &m.ops[op];
                if rec.file.is_some() {
                    self.load_op(&m.id, rec).map(|t| Some(Golden::Full(t)))
                } else {
                    Ok(rec.stats.clone().map(Golden::Stats))
                }
            }
            Some(Location::Input(i)) => self
                .load_input(INPUTS_OWNER, &self.manifest.inputs[i])
                .map(|t| Some(Golden::Full(t))),
            None => Ok(None),
        }
    }

    /// The full data of `name` (an op output or raw input), e.g. a module input.
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::UnknownTensor`] if nothing has that name, [`GoldenErrorKind::StatsOnly`] if
    /// only statistics were captured, and the errors of [`Capture::golden`].
    pub fn tensor(&self, name: &str) -> Result<Tensor, GoldenError> {
        match self.golden(name)? {
            Some(Golden::Full(t)) => Ok(t),
            Some(Golden::Stats(_)) => Err(GoldenErrorKind::StatsOnly {
                name: name.to_string(),
            }
            .into()),
            None if self.locate(name).is_some() => Err(GoldenErrorKind::StatsOnly {
                name: name.to_string(),
            }
            .into()),
            None => Err(GoldenErrorKind::UnknownTensor {
                name: name.to_string(),
            }
            .into()),
        }
    }

    /// Validates one module without reading tensor data: every input resolves to full data and
    /// every record with a file has its shard, its tensor, and the declared shape and dtype.
    /// Returns the first problem. Ops or outputs without a record are not an error here (the
    /// harness reports them as unchecked).
    ///
    /// # Errors
    ///
    /// [`GoldenErrorKind::UnknownModule`], [`GoldenErrorKind::UnknownModuleInput`],
    /// [`GoldenErrorKind::ModuleInputStatsOnly`],
    /// [`GoldenErrorKind::MissingShard`], [`GoldenErrorKind::RecordTensorMissing`],
    /// [`GoldenErrorKind::RecordShapeMismatch`], [`GoldenErrorKind::RecordDtypeMismatch`],
    /// [`GoldenErrorKind::PathEscape`] or a safetensors error of a shard.
    pub fn check_module(&self, id: &str) -> Result<(), GoldenError> {
        let m = self
            .module(id)
            .ok_or_else(|| GoldenErrorKind::UnknownModule {
                module: id.to_string(),
            })?;
        for input in &m.inputs {
            match self.locate(input) {
                None => {
                    return Err(GoldenErrorKind::UnknownModuleInput {
                        module: id.to_string(),
                        input: input.clone(),
                    }
                    .into())
                }
                Some(Location::Input(i)) => {
                    self.check_input(id, &self.manifest.inputs[i])?;
                }
                Some(Location::Op { module, op }) => {
                    let rec = &self.manifest.modules[module].ops[op];
                    if rec.file.is_none() {
                        return Err(GoldenErrorKind::ModuleInputStatsOnly {
                            module: id.to_string(),
                            input: input.clone(),
                        }
                        .into());
                    }
                    self.check_op(id, rec)?;
                }
            }
        }
        for rec in m.ops.iter().filter(|r| r.file.is_some()) {
            self.check_op(id, rec)?;
        }
        Ok(())
    }

    fn locate(&self, name: &str) -> Option<Location> {
        if let Some(&(module, op)) = self.ops.get(name) {
            return Some(Location::Op { module, op });
        }
        self.inputs.get(name).map(|&i| Location::Input(i))
    }

    /// Opens (once) the shard `file`, resolving symlinks and keeping it inside the capture.
    fn shard(&self, module: &str, file: &str) -> Result<Arc<SafetensorsFile>, GoldenError> {
        let mut cache = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cache.get(file) {
            return Ok(Arc::clone(s));
        }
        let joined = self.root.join(file);
        let real = joined.canonicalize().map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                GoldenErrorKind::MissingShard {
                    module: module.to_string(),
                    file: file.to_string(),
                    path: self.dir.join(file),
                }
                .into()
            } else {
                GoldenError::io("resolve", &joined, e)
            }
        })?;
        if !real.starts_with(&self.root) {
            return Err(GoldenErrorKind::PathEscape {
                dir: self.dir.clone(),
                owner: format!("module `{module}`"),
                file: file.to_string(),
                reason: SYMLINK_ESCAPE,
            }
            .into());
        }
        let shard = Arc::new(SafetensorsFile::open(self.dir.join(file))?);
        cache.insert(file.to_string(), Arc::clone(&shard));
        Ok(shard)
    }

    /// Header checks of an op record against its shard; returns the shard.
    fn check_op(&self, module: &str, rec: &OpRecord) -> Result<Arc<SafetensorsFile>, GoldenError> {
        let file = rec.file.as_deref().unwrap_or_default();
        self.check_entry(
            module,
            &rec.name,
            file,
            rec.tensor_key(),
            &rec.shape,
            &rec.dtype,
        )
    }

    fn check_input(
        &self,
        module: &str,
        rec: &InputRecord,
    ) -> Result<Arc<SafetensorsFile>, GoldenError> {
        self.check_entry(
            module,
            &rec.name,
            &rec.file,
            rec.tensor_key(),
            &rec.shape,
            &rec.dtype,
        )
    }

    fn check_entry(
        &self,
        module: &str,
        op: &str,
        file: &str,
        key: &str,
        shape: &[usize],
        dtype: &str,
    ) -> Result<Arc<SafetensorsFile>, GoldenError> {
        let shard = self.shard(module, file)?;
        let info = shard
            .entry(key)
            .ok_or_else(|| GoldenErrorKind::RecordTensorMissing {
                module: module.to_string(),
                op: op.to_string(),
                file: file.to_string(),
                tensor: key.to_string(),
            })?;
        if info.shape != shape {
            return Err(GoldenErrorKind::RecordShapeMismatch {
                module: module.to_string(),
                op: op.to_string(),
                file: file.to_string(),
                expected: shape.to_vec(),
                found: info.shape.clone(),
            }
            .into());
        }
        if !info.dtype.as_str().eq_ignore_ascii_case(dtype) {
            return Err(GoldenErrorKind::RecordDtypeMismatch {
                module: module.to_string(),
                op: op.to_string(),
                file: file.to_string(),
                expected: dtype.to_string(),
                found: info.dtype.as_str().to_string(),
            }
            .into());
        }
        Ok(shard)
    }

    fn load_op(&self, module: &str, rec: &OpRecord) -> Result<Tensor, GoldenError> {
        let shard = self.check_op(module, rec)?;
        Ok(shard
            .tensor(rec.tensor_key())?
            .with_origin(rec.name.as_str()))
    }

    fn load_input(&self, module: &str, rec: &InputRecord) -> Result<Tensor, GoldenError> {
        let shard = self.check_input(module, rec)?;
        Ok(shard
            .tensor(rec.tensor_key())?
            .with_origin(rec.name.as_str()))
    }

    /// Stored dtype, shape and bytes of an op record's tensor (for the writer's round trip).
    pub(crate) fn raw_op(&self, module: &str, rec: &OpRecord) -> Result<RawTensor, GoldenError> {
        let shard = self.check_op(module, rec)?;
        raw_of(&shard, rec.tensor_key())
    }

    /// Stored dtype, shape and bytes of a raw input.
    pub(crate) fn raw_input(&self, rec: &InputRecord) -> Result<RawTensor, GoldenError> {
        let shard = self.check_input(INPUTS_OWNER, rec)?;
        raw_of(&shard, rec.tensor_key())
    }
}

fn raw_of(shard: &SafetensorsFile, key: &str) -> Result<RawTensor, GoldenError> {
    let bytes = shard.bytes(key)?.to_vec();
    let info = shard
        .entry(key)
        .ok_or_else(|| GoldenErrorKind::TensorNotFound {
            path: shard.path().to_path_buf(),
            tensor: key.to_string(),
        })?;
    Ok(RawTensor {
        dtype: info.dtype,
        shape: info.shape.clone(),
        bytes,
    })
}

const SYMLINK_ESCAPE: &str = "resolves (through a symlink) outside the capture directory";

/// `Err(reason)` unless `file` is a non-empty relative path without `..` components.
pub(crate) fn check_relative(file: &str) -> Result<(), &'static str> {
    if file.is_empty() {
        return Err("is empty");
    }
    if file.starts_with(['/', '\\']) || Path::new(file).is_absolute() {
        return Err("is absolute");
    }
    // Backslash-separated `..` too, so a manifest written on Windows cannot escape either.
    if file.split(['/', '\\']).any(|part| part == "..") {
        return Err("leaves the capture directory through `..`");
    }
    for c in Path::new(file).components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("leaves the capture directory through `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("is absolute"),
        }
    }
    Ok(())
}
