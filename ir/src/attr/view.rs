//! Typed views of ops' attributes, with the defaults the ONNX spec gives: the one place a
//! default such as Gemm's `transB = 0` or Resize's `mode = "nearest"` is written.

use super::{float, int, ints, str};
use crate::proto::AttributeProto;

/// `Y = alpha·op(A)·op(B) + beta·C`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl Gemm {
    pub fn of(attrs: &[AttributeProto]) -> Gemm {
        Gemm {
            alpha: float(attrs, "alpha").unwrap_or(1.0),
            beta: float(attrs, "beta").unwrap_or(1.0),
            trans_a: int(attrs, "transA").unwrap_or(0) != 0,
            trans_b: int(attrs, "transB").unwrap_or(0) != 0,
        }
    }
}

/// Resize's modes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    pub mode: String,
    pub coordinate_transformation_mode: String,
    pub nearest_mode: String,
}

impl Resize {
    pub fn of(attrs: &[AttributeProto]) -> Resize {
        let s = |name: &str, default: &str| str(attrs, name).map_or_else(|| default.to_string(), |v| v.into_owned());
        Resize {
            mode: s("mode", "nearest"),
            coordinate_transformation_mode: s("coordinate_transformation_mode", "half_pixel"),
            nearest_mode: s("nearest_mode", "round_prefer_floor"),
        }
    }
}

/// BatchNormalization's attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormalization {
    pub epsilon: f32,
    pub momentum: f32,
    /// Training mode (opset 14 on): the batch's statistics are used instead of the running ones.
    pub training_mode: bool,
}

impl BatchNormalization {
    pub fn of(attrs: &[AttributeProto]) -> BatchNormalization {
        BatchNormalization {
            epsilon: float(attrs, "epsilon").unwrap_or(1e-5),
            momentum: float(attrs, "momentum").unwrap_or(0.9),
            training_mode: int(attrs, "training_mode").unwrap_or(0) != 0,
        }
    }
}

/// Conv's (and ConvTranspose's) grouping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv {
    pub group: i64,
}

impl Conv {
    pub fn of(attrs: &[AttributeProto]) -> Conv {
        Conv { group: int(attrs, "group").unwrap_or(1) }
    }
}

/// Transpose's permutation: `perm`, or the reversed axes of a tensor of rank `rank`.
pub fn transpose_perm(attrs: &[AttributeProto], rank: usize) -> Vec<i64> {
    match ints(attrs, "perm") {
        Some(p) => p.to_vec(),
        None => (0..rank as i64).rev().collect(),
    }
}

/// Softmax's axis: `axis`, by default 1 before opset 13 and -1 from it.
pub fn softmax_axis(attrs: &[AttributeProto], opset: i64) -> i64 {
    int(attrs, "axis").unwrap_or(if opset < 13 { 1 } else { -1 })
}

/// LeakyRelu's slope.
pub fn leaky_relu_alpha(attrs: &[AttributeProto]) -> f32 {
    float(attrs, "alpha").unwrap_or(0.01)
}

/// Pad's mode.
pub fn pad_mode(attrs: &[AttributeProto]) -> String {
    str(attrs, "mode").map_or_else(|| "constant".to_string(), |v| v.into_owned())
}

/// QuantizeLinear's and DequantizeLinear's quantization axis (for per-axis parameters).
pub fn quant_axis(attrs: &[AttributeProto]) -> i64 {
    int(attrs, "axis").unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{make_float, make_int, make_string};

    #[test]
    fn views_give_the_spec_defaults() {
        assert_eq!(Gemm::of(&[]), Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: false });
        assert!(Gemm::of(&[make_int("transB", 1)]).trans_b);
        assert_eq!(Resize::of(&[]).mode, "nearest");
        assert_eq!(Resize::of(&[make_string("mode", "linear")]).mode, "linear");
        assert_eq!(BatchNormalization::of(&[make_float("epsilon", 1e-3)]).epsilon, 1e-3);
        assert!(!BatchNormalization::of(&[]).training_mode);
        assert_eq!((softmax_axis(&[], 12), softmax_axis(&[], 13)), (1, -1));
        assert_eq!(transpose_perm(&[], 3), [2, 1, 0]);
        assert_eq!(pad_mode(&[]), "constant");
    }
}
