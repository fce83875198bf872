//! Packed weight planes kept per weight tensor, so a weight matrix is split into its fidelity
//! planes once, not at every op that reads it (the expert's weights serve ten denoise steps).
//!
//! Only checkpoint parameters are kept (tensors whose `origin` names one): activations are
//! new tensors at every op. An entry pins its tensor (a clone of the shared data), so the data
//! address that keys it cannot be reused while the entry lives. The cache is emptied when it
//! would exceed [`BUDGET`] bytes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::matmul::{pack_w, serves, PackedW};
use super::profile::MathFidelity;
use super::weights;
use crate::tensor::{DType, Tensor};

/// Bytes of packed planes kept at most.
pub const BUDGET: usize = 2 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    data: usize,
    len: usize,
    dtype: DType,
    k: usize,
    n: usize,
}

struct Entry {
    _pin: Tensor,
    packed: Arc<PackedW>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    bytes: usize,
}

/// Packed weights by tensor.
#[derive(Default)]
pub(crate) struct WeightCache {
    inner: Mutex<Inner>,
}

impl WeightCache {
    /// The planes of `w` ([n, k] values, SrcA) for `fidelity`, packed now or earlier.
    pub fn get(
        &self,
        w: &Tensor,
        wd: &[f32],
        n: usize,
        k: usize,
        fidelity: MathFidelity,
    ) -> Arc<PackedW> {
        let is_param = w
            .origin
            .as_deref()
            .is_some_and(|o| weights::consumers(o).is_some());
        if !is_param {
            return Arc::new(pack_w(wd, w.meta.dtype, n, k, fidelity));
        }
        let key = Key {
            data: w.array().as_ptr() as usize,
            len: w.len(),
            dtype: w.meta.dtype,
            k,
            n,
        };
        if let Ok(inner) = self.inner.lock() {
            if let Some(e) = inner.map.get(&key).filter(|e| serves(&e.packed, fidelity)) {
                return e.packed.clone();
            }
        }
        // Pack with both SrcA planes so later ops of any fidelity can share the entry.
        let packed = Arc::new(pack_w(wd, w.meta.dtype, n, k, MathFidelity::HiFi4));
        if let Ok(mut inner) = self.inner.lock() {
            let add = packed.bytes();
            if inner.bytes + add > BUDGET {
                inner.map.clear();
                inner.bytes = 0;
            }
            if add <= BUDGET {
                inner.bytes += add;
                let old = inner.map.insert(
                    key,
                    Entry {
                        _pin: w.clone(),
                        packed: packed.clone(),
                    },
                );
                if let Some(o) = old {
                    inner.bytes -= o.packed.bytes();
                }
            }
        }
        packed
    }
}
