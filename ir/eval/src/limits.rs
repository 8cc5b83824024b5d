//! The per-tensor size limit: every kernel whose output shape comes from data or attributes
//! (ConstantOfShape, Range, Expand, Tile, Pad, Resize, broadcasting, windows with pads, Gather,
//! Concat, MatMul batches) checks the shape here before it allocates, so a model that claims a
//! huge tensor fails with an error instead of aborting out of memory.
//!
//! Tensors are counted at 8 bytes per element, the width of the f64 the interpreter computes
//! float math in, so the limit bounds the largest buffer a kernel builds for the tensor. The
//! limit is per thread: [`crate::Interpreter::run`] sets it from
//! [`crate::RunOptions::max_tensor_bytes`] for the run, and kernels check shapes before any
//! parallel section.

use std::cell::Cell;

use crate::error::{KResult, KernelError};

/// The default limit (4 GiB, i.e. 512 M elements).
pub const DEFAULT_MAX_TENSOR_BYTES: usize = 4 << 30;

/// Bytes per element as the limit counts them.
pub const BYTES_PER_ELEMENT: usize = 8;

thread_local! {
    static MAX_TENSOR_BYTES: Cell<usize> = const { Cell::new(DEFAULT_MAX_TENSOR_BYTES) };
}

/// Runs `f` with the limit set to `bytes` on this thread, then restores the previous limit.
pub(crate) fn with_limit<R>(bytes: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            MAX_TENSOR_BYTES.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MAX_TENSOR_BYTES.with(|m| m.replace(bytes)));
    f()
}

/// The limit in force on this thread.
pub(crate) fn max_tensor_bytes() -> usize {
    MAX_TENSOR_BYTES.with(Cell::get)
}

/// The number of elements of `shape`, or an error when the product overflows or the tensor
/// exceeds the limit.
pub(crate) fn check_shape(shape: &[usize]) -> KResult<usize> {
    let limit = max_tensor_bytes();
    let too_big = || {
        KernelError::Invalid(format!(
            "output shape {shape:?} exceeds the interpreter's limit of {limit} bytes per tensor \
             (counted at {BYTES_PER_ELEMENT} bytes per element)"
        ))
    };
    let n = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(too_big)?;
    match n.checked_mul(BYTES_PER_ELEMENT) {
        Some(bytes) if bytes <= limit => Ok(n),
        _ => Err(too_big()),
    }
}

/// [`check_shape`] for a length computed in a wider or signed type (a Range's count, a
/// dimension from attributes): fails when it does not fit.
pub(crate) fn check_dims(dims: &[i128]) -> KResult<Vec<usize>> {
    let mut shape = Vec::with_capacity(dims.len());
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| KernelError::Invalid(format!("dimension {d} is out of range")))?;
        shape.push(d);
    }
    check_shape(&shape)?;
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_that_overflow_or_exceed_the_limit_fail() {
        assert_eq!(check_shape(&[2, 3]).unwrap(), 6);
        assert_eq!(check_shape(&[]).unwrap(), 1);
        assert_eq!(check_shape(&[0, usize::MAX]).unwrap(), 0);
        assert!(check_shape(&[1 << 32, 1 << 32]).is_err());
        assert!(check_shape(&[usize::MAX, 2]).is_err());
        with_limit(64, || {
            assert!(check_shape(&[8]).is_ok());
            assert!(check_shape(&[9]).is_err());
        });
        assert!(check_shape(&[9]).is_ok(), "the limit is restored");
        assert!(check_dims(&[-1]).is_err());
        assert_eq!(check_dims(&[2, 2]).unwrap(), vec![2, 2]);
    }
}
