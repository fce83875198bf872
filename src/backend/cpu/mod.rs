//! The reference backend: plain f32, f64 accumulation in reductions, every op kind.
