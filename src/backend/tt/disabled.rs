//! The `tt` backend in a build without `tt` / `host-shim`: the type exists, nothing can create
//! it, and every constructor says how to get a build that can.

use std::convert::Infallible;

use super::{TtBackendError, TtPrecision};
use crate::backend::{Backend, Op, OpError};
use crate::tensor::Tensor;

/// Uninhabited in this build; see [`TtBackend::open`].
pub struct TtBackend {
    never: Infallible,
}

impl TtBackend {
    /// Always [`TtBackendError::NotCompiled`] in this build.
    pub fn open(_profile: Option<&str>) -> Result<TtBackend, TtBackendError> {
        Err(TtBackendError::NotCompiled)
    }

    /// Always [`TtBackendError::NotCompiled`] in this build.
    pub fn with_precision(
        _device_id: i32,
        _precision: TtPrecision,
    ) -> Result<TtBackend, TtBackendError> {
        Err(TtBackendError::NotCompiled)
    }

    /// Which ABI implementation is linked: none in this build.
    pub fn implementation() -> Option<&'static str> {
        None
    }

    pub fn precision_config(&self) -> &TtPrecision {
        match self.never {}
    }
}

impl Backend for TtBackend {
    fn name(&self) -> &str {
        match self.never {}
    }

    fn exec(&self, _op: &Op, _inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        match self.never {}
    }
}
