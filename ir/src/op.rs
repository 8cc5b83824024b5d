//! The closed set of operators qdqc reasons about, plus [`Op::Other`] for anything else.
//!
//! An `Op` names the operator only; its attributes stay on the [`crate::Node`] as the original
//! `AttributeProto`s, so every node (known or not) is written back exactly as it was read.
//! Adding a variant makes the compiler list every `match` that must learn about it.

use std::fmt;

/// An operator of no known kind: its domain (as written) and type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OtherOp {
    pub domain: String,
    pub op_type: String,
}

/// ONNX's default domain as written by most exporters.
pub const ONNX_DOMAIN: &str = "";
/// onnxruntime's contrib-op domain.
pub const MS_DOMAIN: &str = "com.microsoft";

macro_rules! ops {
    (onnx: [$($s:ident),* $(,)?], microsoft: [$($m:ident),* $(,)?]) => {
        /// An operator. Variants are the ops with inference (and later rules and kernels);
        /// `Other` keeps any other operator of any domain.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op {
            /// A graph input (not an ONNX node).
            Input,
            $($s,)*
            $($m,)*
            /// (Boxed: the op is in every node, and most nodes are of known ops.)
            Other(Box<OtherOp>),
        }

        impl Op {
            /// The op for a node's `domain` and `op_type`.
            pub fn from_onnx(domain: &str, op_type: &str) -> Op {
                match domain {
                    "" | "ai.onnx" => match op_type {
                        $(stringify!($s) => return Op::$s,)*
                        _ => {}
                    },
                    // onnxruntime also registers QuantizeLinear/DequantizeLinear in its domain.
                    MS_DOMAIN => match op_type {
                        $(stringify!($m) => return Op::$m,)*
                        "QuantizeLinear" => return Op::QuantizeLinear,
                        "DequantizeLinear" => return Op::DequantizeLinear,
                        _ => {}
                    },
                    _ => {}
                }
                Op::other(domain, op_type)
            }

            /// An `Other` op (whether or not the name is a known op's).
            pub fn other(domain: &str, op_type: &str) -> Op {
                Op::Other(Box::new(OtherOp { domain: domain.to_string(), op_type: op_type.to_string() }))
            }

            /// Whether `self` and `other` are one operator: equal, or `Other` ops of one type in the
            /// ai.onnx domain however the model writes it (`""` or `"ai.onnx"`).
            pub fn same(&self, other: &Op) -> bool {
                let onnx = |d: &str| d.is_empty() || d == "ai.onnx";
                match (self, other) {
                    (Op::Other(a), Op::Other(b)) => {
                        a.op_type == b.op_type && (a.domain == b.domain || onnx(&a.domain) && onnx(&b.domain))
                    }
                    _ => self == other,
                }
            }

            /// The ONNX `op_type`.
            pub fn name(&self) -> &str {
                match self {
                    Op::Input => "Input",
                    $(Op::$s => stringify!($s),)*
                    $(Op::$m => stringify!($m),)*
                    Op::Other(o) => &o.op_type,
                }
            }

            /// The domain a new node of this op is written in.
            pub fn default_domain(&self) -> &str {
                match self {
                    $(Op::$m => MS_DOMAIN,)*
                    Op::Other(o) => &o.domain,
                    _ => ONNX_DOMAIN,
                }
            }

            /// Every known op (not `Input`, not `Other`).
            pub const KNOWN: &'static [Op] = &[$(Op::$s,)* $(Op::$m,)*];

            /// The op without `Other`'s domain and name.
            pub fn kind(&self) -> OpKind {
                match self {
                    Op::Input => OpKind::Input,
                    $(Op::$s => OpKind::$s,)*
                    $(Op::$m => OpKind::$m,)*
                    Op::Other(_) => OpKind::Other,
                }
            }
        }

        /// An [`Op`] without data: one byte, for tables by op (a sweep looks up every node's op in
        /// the graph's dense table of kinds instead of reading the node).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum OpKind {
            Input,
            $($s,)*
            $($m,)*
            Other,
        }

        impl OpKind {
            /// How many kinds there are (`kind as usize` is below it).
            pub const COUNT: usize = OpKind::Other as usize + 1;
        }
    };
}

ops! {
    onnx: [
        QuantizeLinear, DequantizeLinear,
        Conv, ConvTranspose, BatchNormalization, MatMul, Gemm,
        Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Tanh, Softmax, LayerNormalization,
        Gelu, Erf,
        Add, Sub, Mul, Div, Pow, Sqrt, Max, Min,
        MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean, ReduceMax, ReduceMin,
        Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Slice, Gather, Split, Pad, Resize,
        DepthToSpace, SpaceToDepth, Expand, Tile, Identity, Cast, Shape, Constant,
        QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger,
    ],
    microsoft: [
        QLinearAdd, QLinearMul, QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat,
        QGemm, QLinearSigmoid, QLinearLeakyRelu, QLinearSoftmax,
    ]
}

impl Op {
    /// Multiply-accumulate-heavy ops: the float compute that quantization aims to replace.
    pub fn is_mac_heavy(&self) -> bool {
        matches!(self, Op::Conv | Op::ConvTranspose | Op::MatMul | Op::Gemm)
    }

    /// Ops that only move, select or copy elements: an output element is one of the input
    /// elements (Resize in its `nearest` mode only; read its attributes to know). They compute
    /// nothing, so quantization parameters pass through them.
    pub fn is_data_movement(&self) -> bool {
        matches!(
            self,
            Op::MaxPool
                | Op::GlobalMaxPool
                | Op::ReduceMax
                | Op::ReduceMin
                | Op::Reshape
                | Op::Flatten
                | Op::Transpose
                | Op::Squeeze
                | Op::Unsqueeze
                | Op::Concat
                | Op::Slice
                | Op::Gather
                | Op::Split
                | Op::Pad
                | Op::Resize
                | Op::DepthToSpace
                | Op::SpaceToDepth
                | Op::Expand
                | Op::Tile
                | Op::Identity
        )
    }

    /// Ops that compute on integers (the targets of fusion).
    pub fn is_integer_compute(&self) -> bool {
        matches!(
            self,
            Op::QLinearConv
                | Op::QLinearMatMul
                | Op::ConvInteger
                | Op::MatMulInteger
                | Op::QLinearAdd
                | Op::QLinearMul
                | Op::QLinearGlobalAveragePool
                | Op::QLinearAveragePool
                | Op::QLinearConcat
                | Op::QGemm
                | Op::QLinearSigmoid
                | Op::QLinearLeakyRelu
                | Op::QLinearSoftmax
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Other(o) if !o.domain.is_empty() && o.domain != "ai.onnx" => write!(f, "{}.{}", o.domain, o.op_type),
            _ => f.write_str(self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in Op::KNOWN {
            assert_eq!(&Op::from_onnx(op.default_domain(), op.name()), op);
        }
        assert_eq!(Op::from_onnx("ai.onnx", "Conv"), Op::Conv);
        assert_eq!(Op::from_onnx(MS_DOMAIN, "DequantizeLinear"), Op::DequantizeLinear);
        let other = Op::from_onnx("com.example", "MyOp");
        assert_eq!(other.to_string(), "com.example.MyOp");
        assert_eq!(Op::from_onnx("", "QLinearAdd").name(), "QLinearAdd");
        assert!(matches!(Op::from_onnx("", "QLinearAdd"), Op::Other(_)));
    }
}
