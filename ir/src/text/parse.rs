//! The recursive-descent parser: text → items, handed one by one to a builder (`build`), which
//! makes an IR [`Graph`] of the top-level graph and a `GraphProto` of each nested one.

use super::build::{Build, IrBuilder, ProtoBuilder};
use super::lex::{Lexer, Tok};
use super::values::{is_float_text, tensor_from_lits, Lit};
use super::{unhex, Elided};
use crate::dtype::DType;
use crate::graph::{ConstValue, Dim, Graph, GraphError, TensorType};
use crate::proto::attribute_proto::AttributeType as A;
use crate::proto::{AttributeProto, SparseTensorProto, TensorProto};
use crate::tensor::Tensor;
use prost::Message;
use std::fmt;

/// A position in the text: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Why a text does not parse, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Not in the grammar (including bad tokens).
    #[error("{pos}: {msg}")]
    Syntax { pos: Pos, msg: String },
    /// In the grammar, but meaningless: wrong number of values, value out of range, ...
    #[error("{pos}: {msg}")]
    Invalid { pos: Pos, msg: String },
    #[error("{pos}: %{name} is not defined", name = super::print::name_text(name))]
    Undefined { pos: Pos, name: String },
    #[error("{pos}: %{name} is defined twice", name = super::print::name_text(name))]
    Duplicate { pos: Pos, name: String },
    /// A written quantization annotation that inference contradicts.
    #[error("{pos}: {written} disagrees with the inferred {inferred}")]
    QuantMismatch { pos: Pos, written: String, inferred: String },
    /// Type inference rejected the graph; `pos` is the node's, when it names one.
    #[error("{}type inference: {source}", pos.map(|p| format!("{p}: ")).unwrap_or_default())]
    Infer { pos: Option<Pos>, source: GraphError },
}

impl ParseError {
    pub fn pos(&self) -> Option<Pos> {
        match self {
            ParseError::Syntax { pos, .. }
            | ParseError::Invalid { pos, .. }
            | ParseError::Undefined { pos, .. }
            | ParseError::Duplicate { pos, .. }
            | ParseError::QuantMismatch { pos, .. } => Some(*pos),
            ParseError::Infer { pos, .. } => *pos,
        }
    }
}

/// Parses the text form of a graph. Output types and `q(…)` annotations may be left out: type
/// inference fills them in; a written `q(…)` that inference contradicts is an error.
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    let mut p = Parser::new(text)?;
    let b = p.graph(IrBuilder::default())?;
    if p.tok != Tok::Eof {
        return Err(p.unexpected("the end of the text"));
    }
    b.finish()
}

/// Nested graphs deeper than this are refused: the parser recurses once per level, and must not
/// overflow the stack (2 MiB for a test thread, debug build) on any input.
const MAX_DEPTH: usize = 16;

/// A value's declaration: `%x: f32[N,3] q(0.5, 0)`. An unproduced output `_` has an empty name.
pub(super) struct Decl<'a> {
    pub name: String,
    pub pos: Pos,
    pub ty: Option<TensorType>,
    pub quant: Option<QuantDecl<'a>>,
}

/// A written `q(…)`.
pub(super) struct QuantDecl<'a> {
    pub form: QuantForm<'a>,
    pub axis: Option<i64>,
    pub block: Option<i64>,
    pub pos: Pos,
    /// As written, for messages.
    pub text: &'a str,
}

pub(super) enum QuantForm<'a> {
    /// `q(0.0213, 128)`: the values of the scale and zero-point constants.
    Values { scale: (Lit<'a>, Pos), zero_point: Option<(Lit<'a>, Pos)> },
    /// `q(%scale, %zp)`.
    Names { scale: (String, Pos), zero_point: Option<(String, Pos)> },
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Origin {
    Initializer,
    /// `const(node)`: a `Constant` node.
    Node,
    /// `const(default)`: the default of the graph input of the same name.
    Default,
}

pub(super) struct NodeDecl<'a> {
    pub pos: Pos,
    pub outputs: Vec<Decl<'a>>,
    /// The domain when written (`com.example.MyOp`).
    pub domain: Option<String>,
    pub op_type: String,
    pub attrs: Vec<AttributeProto>,
    /// Input names with their positions; `_` is the empty name.
    pub inputs: Vec<(String, Pos)>,
    pub name: Option<String>,
}

pub(super) struct Header {
    pub name: Option<String>,
    pub opsets: Vec<(String, i64, Pos)>,
}

pub(super) enum Item<'a> {
    Input(Decl<'a>),
    Const { name: String, pos: Pos, origin: Origin, value: Box<ConstValue> },
    Node(NodeDecl<'a>),
    Output { name: String, pos: Pos },
}

/// A tensor as written: with data, or elided.
enum TensorText {
    Full(Tensor),
    Elided(Elided),
}

impl TensorText {
    fn into_proto(self) -> TensorProto {
        match self {
            TensorText::Full(t) => t.proto,
            TensorText::Elided(e) => e.to_proto(""),
        }
    }
}

fn named(name: &str) -> Option<String> {
    (!name.is_empty()).then(|| name.to_string())
}

/// An element of an attribute list, before the list's type is known.
enum Elem {
    Int(i64),
    Float(f32),
    Str(bytes::Bytes),
    Tensor(Box<TensorProto>),
    Sparse(Box<SparseTensorProto>),
    Graph(Box<crate::proto::GraphProto>),
}

pub(super) struct Parser<'a> {
    lex: Lexer<'a>,
    /// The current token, its position and byte offset.
    tok: Tok<'a>,
    pos: Pos,
    start: usize,
    /// Where the previous token ended.
    prev_end: usize,
    depth: usize,
}

fn syntax(pos: Pos, msg: impl Into<String>) -> ParseError {
    ParseError::Syntax { pos, msg: msg.into() }
}

fn invalid(pos: Pos, msg: impl Into<String>) -> ParseError {
    ParseError::Invalid { pos, msg: msg.into() }
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Parser<'a>, ParseError> {
        let mut p = Parser {
            lex: Lexer::new(text),
            tok: Tok::Eof,
            pos: Pos { line: 1, col: 1 },
            start: 0,
            prev_end: 0,
            depth: 0,
        };
        p.bump()?;
        Ok(p)
    }

    // ---- tokens ----------------------------------------------------------------------------

    /// Moves to the next token, returning the current one.
    fn bump(&mut self) -> Result<Tok<'a>, ParseError> {
        self.prev_end = self.lex.offset();
        let (tok, pos, start) = self.lex.next_token()?;
        (self.pos, self.start) = (pos, start);
        Ok(std::mem::replace(&mut self.tok, tok))
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        syntax(self.pos, format!("expected {expected}, found {}", self.tok))
    }

    fn is(&self, c: char) -> bool {
        self.tok == Tok::Punct(c)
    }

    fn is_kw(&self, kw: &str) -> bool {
        self.tok == Tok::Ident(kw)
    }

    fn eat(&mut self, c: char) -> Result<bool, ParseError> {
        let found = self.is(c);
        if found {
            self.bump()?;
        }
        Ok(found)
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if !self.eat(c)? {
            return Err(self.unexpected(&format!("'{c}'")));
        }
        Ok(())
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ParseError> {
        if !self.is_kw(kw) {
            return Err(self.unexpected(&format!("'{kw}'")));
        }
        self.bump()?;
        Ok(())
    }

    /// `item (',' item)* close`, or just `close`; the opening bracket already consumed.
    fn list<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError> {
        let mut items = Vec::new();
        if self.eat(close)? {
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            if self.eat(close)? {
                return Ok(items);
            }
            if !self.eat(',')? {
                return Err(self.unexpected(&format!("',' or '{close}'")));
            }
        }
    }

    /// A string literal that must be UTF-8.
    fn utf8(&mut self, what: &str) -> Result<String, ParseError> {
        let pos = self.pos;
        match self.bump()? {
            Tok::Str(b) => {
                String::from_utf8(b.into_owned()).map_err(|_| invalid(pos, format!("{what} must be valid UTF-8")))
            }
            _ => unreachable!("called on a string token"),
        }
    }

    fn int(&mut self) -> Result<i64, ParseError> {
        match self.tok {
            Tok::Num(s) if !is_float_text(s) => {
                let v = s.parse().map_err(|_| invalid(self.pos, format!("{s} does not fit in 64 bits")))?;
                self.bump()?;
                Ok(v)
            }
            _ => Err(self.unexpected("an integer")),
        }
    }

    fn non_negative(&mut self) -> Result<i64, ParseError> {
        let pos = self.pos;
        let v = self.int()?;
        if v < 0 {
            return Err(invalid(pos, "a dimension cannot be negative"));
        }
        Ok(v)
    }

    fn lit(&mut self) -> Result<(Lit<'a>, Pos), ParseError> {
        let lit = Lit::from_token(&self.tok).ok_or_else(|| self.unexpected("a value"))?;
        let pos = self.pos;
        self.bump()?;
        Ok((lit, pos))
    }

    /// `%name`.
    fn name(&mut self) -> Result<(String, Pos), ParseError> {
        let pos = self.pos;
        match self.tok {
            // The printer writes the empty name as `_`, which only operands and node outputs take.
            Tok::Name(ref n) if n.is_empty() => Err(self.unexpected("a name like %x (a name may not be empty)")),
            Tok::Name(_) => match self.bump()? {
                Tok::Name(n) => Ok((n.into_owned(), pos)),
                _ => unreachable!(),
            },
            _ => Err(self.unexpected("a name like %x")),
        }
    }

    /// `%name` or `_` (the empty name).
    fn operand(&mut self) -> Result<(String, Pos), ParseError> {
        if self.is_kw("_") {
            let pos = self.pos;
            self.bump()?;
            return Ok((String::new(), pos));
        }
        self.name().map_err(|_| self.unexpected("a name like %x or '_'"))
    }

    // ---- graphs and items ------------------------------------------------------------------

    pub(super) fn graph<B: Build<'a>>(&mut self, mut b: B) -> Result<B, ParseError> {
        let pos = self.pos;
        self.expect_kw("graph")?;
        if self.depth >= MAX_DEPTH {
            return Err(syntax(pos, format!("graphs nest more than {MAX_DEPTH} deep")));
        }
        self.depth += 1;
        let name = match self.tok {
            Tok::Str(_) => Some(self.utf8("a graph name")?),
            _ => None,
        };
        let mut opsets = Vec::new();
        if self.is_kw("opset") {
            self.bump()?;
            self.expect('(')?;
            opsets = self.list(')', |p| {
                let pos = p.pos;
                let domain = match p.tok {
                    Tok::Ident(d) => {
                        p.bump()?;
                        if d == "ai.onnx" {
                            String::new()
                        } else {
                            d.to_string()
                        }
                    }
                    Tok::Str(_) => p.utf8("a domain")?,
                    _ => return Err(p.unexpected("a domain")),
                };
                p.expect('=')?;
                Ok((domain, p.int()?, pos))
            })?;
        }
        b.header(Header { name, opsets })?;
        self.expect('{')?;
        while !self.is('}') {
            let item = self.item()?;
            b.item(item)?;
        }
        self.bump()?;
        self.depth -= 1;
        Ok(b)
    }

    fn item(&mut self) -> Result<Item<'a>, ParseError> {
        match self.tok {
            Tok::Ident("input") => {
                self.bump()?;
                Ok(Item::Input(self.decl()?))
            }
            Tok::Ident("const") => self.constant(),
            Tok::Ident("output") => {
                self.bump()?;
                let (name, pos) = self.operand()?;
                Ok(Item::Output { name, pos })
            }
            Tok::Name(_) | Tok::Ident("_") | Tok::Punct('=') => Ok(Item::Node(self.node()?)),
            _ => Err(self.unexpected("'input', 'const', a node, 'output' or '}'")),
        }
    }

    /// `%x: type q(…)`; the type and the annotation are optional.
    fn decl(&mut self) -> Result<Decl<'a>, ParseError> {
        let (name, pos) = self.name()?;
        let ty = if self.eat(':')? { self.ty()? } else { None };
        let quant = if self.is_kw("q") { Some(self.quant()?) } else { None };
        Ok(Decl { name, pos, ty, quant })
    }

    /// `?`, `f32[*]`, `f32[N,3,?]`.
    fn ty(&mut self) -> Result<Option<TensorType>, ParseError> {
        if self.eat('?')? {
            return Ok(None);
        }
        let dtype = self.dtype()?;
        self.expect('[')?;
        if self.eat('*')? {
            self.expect(']')?;
            return Ok(Some(TensorType { dtype, shape: None }));
        }
        let dims = self.list(']', |p| {
            Ok(match p.tok {
                Tok::Num(_) => Dim::Known(p.int()?),
                Tok::Punct('?') => {
                    p.bump()?;
                    Dim::Unknown
                }
                Tok::Ident(s) => {
                    p.bump()?;
                    Dim::Sym(s.to_string())
                }
                Tok::Str(_) => Dim::Sym(p.utf8("a dimension name")?),
                _ => return Err(p.unexpected("a dimension")),
            })
        })?;
        Ok(Some(TensorType::new(dtype, dims)))
    }

    fn dtype(&mut self) -> Result<DType, ParseError> {
        match self.tok {
            Tok::Ident(s) => {
                let d = DType::from_name(s).ok_or_else(|| invalid(self.pos, format!("unknown element type '{s}'")))?;
                self.bump()?;
                Ok(d)
            }
            _ => Err(self.unexpected("a type like f32[N,3]")),
        }
    }

    /// `q(0.5, 128)`, `q(%s, %zp, axis=1, block=32)`.
    fn quant(&mut self) -> Result<QuantDecl<'a>, ParseError> {
        let (pos, start) = (self.pos, self.start);
        self.bump()?;
        self.expect('(')?;
        let mut form = match self.tok {
            Tok::Name(_) => QuantForm::Names { scale: self.name()?, zero_point: None },
            _ => QuantForm::Values { scale: self.lit()?, zero_point: None },
        };
        let (mut axis, mut block) = (None, None);
        while self.eat(',')? {
            let key_pos = self.pos;
            match self.tok {
                Tok::Ident(k @ ("axis" | "block")) => {
                    self.bump()?;
                    self.expect('=')?;
                    let slot = if k == "axis" { &mut axis } else { &mut block };
                    if slot.replace(self.int()?).is_some() {
                        return Err(invalid(key_pos, format!("{k} is given twice")));
                    }
                }
                _ if axis.is_some() || block.is_some() => return Err(self.unexpected("'axis=' or 'block='")),
                _ => match &mut form {
                    QuantForm::Names { zero_point: zp @ None, .. } => *zp = Some(self.name()?),
                    QuantForm::Values { zero_point: zp @ None, .. } => *zp = Some(self.lit()?),
                    _ => return Err(self.unexpected("'axis=' or 'block='")),
                },
            }
        }
        self.expect(')')?;
        let text = &self.lex.src()[start..self.prev_end];
        Ok(QuantDecl { form, axis, block, pos, text })
    }

    /// `const(node) %c: i64[2] [1, 2]`.
    fn constant(&mut self) -> Result<Item<'a>, ParseError> {
        self.bump()?;
        let mut origin = Origin::Initializer;
        if self.eat('(')? {
            origin = match self.tok {
                Tok::Ident("node") => Origin::Node,
                Tok::Ident("default") => Origin::Default,
                _ => return Err(self.unexpected("'node' or 'default'")),
            };
            self.bump()?;
            self.expect(')')?;
        }
        let (name, pos) = self.name()?;
        self.expect(':')?;
        let value = if self.is_kw("sparse") {
            ConstValue::Sparse(Box::new(self.sparse(&name)?))
        } else {
            match self.tensor(&name)? {
                TensorText::Full(t) => ConstValue::Dense(t),
                TensorText::Elided(e) => ConstValue::Elided(e),
            }
        };
        Ok(Item::Const { name, pos, origin, value: Box::new(value) })
    }

    /// `f32[2] [1.0, 2.0]`, `f32[] 0.5`, `i8[16,3] #fingerprint [1, 2, 3, 4, …]`, `tensor(0x…)`.
    /// A tensor written with its values is given `name`; one written as protobuf bytes is kept.
    fn tensor(&mut self, name: &str) -> Result<TensorText, ParseError> {
        if self.is_kw("tensor") {
            self.bump()?;
            let t = self.protobuf(|b| TensorProto::decode(b))?;
            return Ok(TensorText::Full(Tensor { proto: t, external: None }));
        }
        let dtype = self.dtype()?;
        self.expect('[')?;
        let dims = self.list(']', Self::non_negative)?;
        let pos = self.pos;
        let n = crate::tensor::numel(&dims).map_err(|e| invalid(pos, e.to_string()))?;
        if let Tok::Fingerprint(fingerprint) = self.tok {
            self.bump()?;
            self.expect('[')?;
            let mut lits = Vec::new();
            while self.tok != Tok::Ellipsis {
                lits.push(self.lit()?);
                if !self.eat(',')? {
                    return Err(self.unexpected("',' and '…'"));
                }
            }
            self.bump()?;
            self.expect(']')?;
            if lits.len() > n {
                return Err(invalid(pos, format!("{} values shown for a tensor of {n}", lits.len())));
            }
            let head = tensor_from_lits(dtype, &[lits.len() as i64], &lits)?;
            return Ok(TensorText::Elided(Elided { dtype, dims, fingerprint, head }));
        }
        let lits = if self.eat('[')? { self.list(']', Self::lit)? } else { vec![self.lit()?] };
        if lits.len() != n {
            return Err(invalid(pos, format!("{dtype}{dims:?} has {n} values, {} are written", lits.len())));
        }
        let mut t = tensor_from_lits(dtype, &dims, &lits)?;
        t.proto.name = named(name);
        Ok(TensorText::Full(t))
    }

    /// `sparse[dims](values, indices)`; the values are given `name`.
    fn sparse(&mut self, name: &str) -> Result<SparseTensorProto, ParseError> {
        self.expect_kw("sparse")?;
        self.expect('[')?;
        let dims = self.list(']', Self::non_negative)?;
        self.expect('(')?;
        let values = match self.tensor(name)? {
            TensorText::Elided(e) => e.to_proto(name),
            t => t.into_proto(),
        };
        self.expect(',')?;
        let indices = self.tensor("")?.into_proto();
        self.expect(')')?;
        Ok(SparseTensorProto { values: Some(values), indices: Some(indices), dims })
    }

    /// `(0x…)`: protobuf bytes, decoded by `decode`.
    fn protobuf<T>(&mut self, decode: impl FnOnce(&[u8]) -> Result<T, prost::DecodeError>) -> Result<T, ParseError> {
        self.expect('(')?;
        let pos = self.pos;
        let Tok::Hex(h) = self.tok else { return Err(self.unexpected("protobuf bytes like 0x0a01")) };
        let bytes = unhex(h).ok_or_else(|| invalid(pos, "odd number of hex digits"))?;
        let v = decode(&bytes).map_err(|e| invalid(pos, format!("invalid protobuf: {e}")))?;
        self.bump()?;
        self.expect(')')?;
        Ok(v)
    }

    /// `%a: f32[2], _ = com.example.MyOp[alpha=1.0](%x, _)  "name"`.
    fn node(&mut self) -> Result<NodeDecl<'a>, ParseError> {
        let pos = self.pos;
        let mut outputs = Vec::new();
        if !self.is('=') {
            loop {
                if self.is_kw("_") {
                    outputs.push(Decl { name: String::new(), pos: self.pos, ty: None, quant: None });
                    self.bump()?;
                } else {
                    outputs.push(self.decl()?);
                }
                if !self.eat(',')? {
                    break;
                }
            }
        }
        self.expect('=')?;
        let (domain, op_type) = self.op()?;
        let attrs = if self.eat('[')? { self.list(']', Self::attr)? } else { Vec::new() };
        self.expect('(')?;
        let inputs = self.list(')', Self::operand)?;
        let name = match self.tok {
            Tok::Str(_) => Some(self.utf8("a node name")?),
            _ => None,
        };
        Ok(NodeDecl { pos, outputs, domain, op_type, attrs, inputs, name })
    }

    /// `Conv`, `com.example.MyOp`, `"domain"."op type"`.
    fn op(&mut self) -> Result<(Option<String>, String), ParseError> {
        let pos = self.pos;
        match self.tok {
            Tok::Ident(s) => {
                self.bump()?;
                let (domain, op) = match s.rsplit_once('.') {
                    Some((d, op)) => (Some(d.to_string()), op),
                    None => (None, s),
                };
                if op.is_empty() {
                    return Err(syntax(pos, format!("'{s}' is not an op name")));
                }
                Ok((domain, op.to_string()))
            }
            Tok::Str(_) => {
                let first = self.utf8("an op name")?;
                if !self.eat('.')? {
                    return Ok((None, first));
                }
                match self.tok {
                    Tok::Str(_) => Ok((Some(first), self.utf8("an op name")?)),
                    _ => Err(self.unexpected("an op name")),
                }
            }
            _ => Err(self.unexpected("an op name")),
        }
    }

    // ---- attributes --------------------------------------------------------------------------

    /// `name=value`.
    fn attr(&mut self) -> Result<AttributeProto, ParseError> {
        let name = match self.tok {
            Tok::Ident(s) => {
                self.bump()?;
                s.to_string()
            }
            Tok::Str(_) => self.utf8("an attribute name")?,
            _ => return Err(self.unexpected("an attribute name")),
        };
        self.expect('=')?;
        let typed = |ty: A| AttributeProto { name: Some(name.clone()), r#type: Some(ty as i32), ..Default::default() };
        let list_kind = match self.tok {
            Tok::Ident("ints") => Some(A::Ints),
            Tok::Ident("floats") => Some(A::Floats),
            Tok::Ident("strings") => Some(A::Strings),
            Tok::Ident("tensors") => Some(A::Tensors),
            Tok::Ident("graphs") => Some(A::Graphs),
            Tok::Ident("sparse_tensors") => Some(A::SparseTensors),
            _ => None,
        };
        if list_kind.is_some() || self.is('[') {
            if list_kind.is_some() {
                self.bump()?;
            }
            let pos = self.pos;
            self.expect('[')?;
            let elems = self.list(']', |p| {
                let pos = p.pos;
                Ok((p.elem()?, pos))
            })?;
            return list_attr(typed, list_kind, elems, pos);
        }
        if self.is_kw("proto") {
            self.bump()?;
            let mut a = self.protobuf(|b| AttributeProto::decode(b))?;
            if a.name.as_deref().unwrap_or("") != name {
                a.name = Some(name);
            }
            return Ok(a);
        }
        Ok(match self.elem()? {
            Elem::Int(i) => AttributeProto { i: Some(i), ..typed(A::Int) },
            Elem::Float(f) => AttributeProto { f: Some(f), ..typed(A::Float) },
            Elem::Str(s) => AttributeProto { s: Some(s), ..typed(A::String) },
            Elem::Tensor(t) => AttributeProto { t: Some(t), ..typed(A::Tensor) },
            Elem::Sparse(s) => AttributeProto { sparse_tensor: Some(s), ..typed(A::SparseTensor) },
            Elem::Graph(g) => AttributeProto { g: Some(g), ..typed(A::Graph) },
        })
    }

    /// One attribute value (or list element).
    fn elem(&mut self) -> Result<Elem, ParseError> {
        let pos = self.pos;
        Ok(match self.tok {
            Tok::Num(s) if is_float_text(s) => {
                self.bump()?;
                Elem::Float(s.parse().map_err(|_| invalid(pos, format!("invalid number {s}")))?)
            }
            Tok::Num(_) => Elem::Int(self.int()?),
            Tok::Ident(s @ ("inf" | "NaN")) => {
                self.bump()?;
                Elem::Float(s.parse().unwrap())
            }
            Tok::Str(_) => match self.bump()? {
                Tok::Str(b) => Elem::Str(bytes::Bytes::from(b.into_owned())),
                _ => unreachable!(),
            },
            Tok::Ident("graph") => Elem::Graph(Box::new(self.graph(ProtoBuilder::default())?.finish())),
            Tok::Ident("sparse") => Elem::Sparse(Box::new(self.sparse("")?)),
            Tok::Ident(s) if s == "tensor" || DType::from_name(s).is_some() => {
                Elem::Tensor(Box::new(self.tensor("")?.into_proto()))
            }
            _ => return Err(self.unexpected("an attribute value")),
        })
    }
}

/// A list attribute from its elements: of the written kind, else of the elements' kind (ints
/// with any float make floats).
fn list_attr(
    typed: impl Fn(A) -> AttributeProto,
    kind_written: Option<A>,
    elems: Vec<(Elem, Pos)>,
    pos: Pos,
) -> Result<AttributeProto, ParseError> {
    let kind =
        match (kind_written, elems.first()) {
            (Some(k), _) => k,
            (None, None) => return Err(invalid(
                pos,
                "an empty list needs its type: ints[], floats[], strings[], tensors[], graphs[] or sparse_tensors[]",
            )),
            (None, Some(_)) if elems.iter().all(|(e, _)| matches!(e, Elem::Int(_) | Elem::Float(_))) => {
                if elems.iter().any(|(e, _)| matches!(e, Elem::Float(_))) {
                    A::Floats
                } else {
                    A::Ints
                }
            }
            (None, Some((e, _))) => match e {
                Elem::Str(_) => A::Strings,
                Elem::Tensor(_) => A::Tensors,
                Elem::Sparse(_) => A::SparseTensors,
                Elem::Graph(_) => A::Graphs,
                Elem::Int(_) | Elem::Float(_) => A::Ints,
            },
        };
    let mut a = typed(kind);
    for (e, p) in elems {
        match (kind, e) {
            (A::Ints, Elem::Int(i)) => a.ints.push(i),
            (A::Floats, Elem::Int(i)) => a.floats.push(i as f32),
            (A::Floats, Elem::Float(f)) => a.floats.push(f),
            (A::Strings, Elem::Str(s)) => a.strings.push(s),
            (A::Tensors, Elem::Tensor(t)) => a.tensors.push(*t),
            (A::SparseTensors, Elem::Sparse(s)) => a.sparse_tensors.push(*s),
            (A::Graphs, Elem::Graph(g)) => a.graphs.push(*g),
            _ => return Err(invalid(p, format!("this list holds {}", kind.as_str_name().to_lowercase()))),
        }
    }
    Ok(a)
}
