//! [`Model`] → `ModelProto` and files. Nodes are written in topological order preferring each
//! node's original position, so an untouched graph is written back exactly as it was read.

use super::external::{holds_tensors, place_tensors, ExternalData, FileKey, Regions};
use super::sink::FileSink;
use super::{Error, Model, SaveOptions};
use crate::graph::{ConstId, ConstOrigin, ConstValue, Dim, Graph, NodeId, Operand, TensorType};
use crate::op::Op;
use crate::proto::{
    tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeDeviceConfigurationProto, NodeProto,
    StringStringEntryProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use bytes::BufMut;
use prost::encoding::{encoded_len_varint, key_len};
use prost::Message;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A `TypeProto` for a tensor type.
pub fn type_proto(ty: &TensorType) -> TypeProto {
    use tensor_shape_proto::dimension::Value as D;
    let shape = ty.shape.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                value: match d {
                    Dim::Known(v) => Some(D::DimValue(*v)),
                    Dim::Sym(s) => Some(D::DimParam(s.clone())),
                    Dim::Unknown => None,
                },
                denotation: None,
            })
            .collect(),
    });
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor { elem_type: Some(ty.dtype.to_onnx()), shape })),
        denotation: None,
    }
}

/// The declared info, unless it contradicts the value's current type (a pass changed its element
/// type or rank); then a fresh one from the type, keeping name and doc string.
fn value_info(name: &str, declared: Option<&ValueInfoProto>, ty: Option<&TensorType>) -> ValueInfoProto {
    if let Some(d) = declared {
        let old = super::import::tensor_type(name, d.r#type.as_ref()).ok().flatten();
        let agrees = match (&old, ty) {
            (Some(o), Some(t)) => {
                o.dtype == t.dtype && (o.rank().is_none() || t.rank().is_none() || o.rank() == t.rank())
            }
            _ => true,
        };
        if agrees {
            let mut d = d.clone();
            d.name = Some(name.to_string());
            return d;
        }
    }
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: ty.map(type_proto),
        doc_string: declared.and_then(|d| d.doc_string.clone()),
        metadata_props: declared.map(|d| d.metadata_props.clone()).unwrap_or_default(),
    }
}

/// One `NodeProto`'s fields, borrowed: encodable without copying names or attributes, or built
/// into a `NodeProto` ([`NodeFields::to_proto`]). The `Vec`s are reused from node to node.
#[derive(Default)]
struct NodeFields<'a> {
    input: Vec<&'a str>,
    output: Vec<&'a str>,
    name: Option<&'a str>,
    op_type: Option<&'a str>,
    attribute: &'a [AttributeProto],
    doc_string: Option<&'a str>,
    domain: Option<&'a str>,
    overload: Option<&'a str>,
    metadata_props: &'a [StringStringEntryProto],
    device_configurations: &'a [NodeDeviceConfigurationProto],
}

impl<'a> NodeFields<'a> {
    /// The fields of graph node `id`: the one place that reads a node's `NodeProto` data.
    fn of_node(&mut self, graph: &'a Graph, id: NodeId) {
        let n = graph.node(id);
        let rest = n.meta.rest.as_deref();
        self.name = n.meta.name.as_deref();
        self.domain = n.meta.domain.as_deref();
        if Op::from_onnx(self.domain.unwrap_or(""), n.op.name()) != n.op {
            let d = n.op.default_domain();
            self.domain = (!d.is_empty()).then_some(d);
        }
        self.op_type = Some(n.op.name());
        self.input.clear();
        self.input.extend(n.inputs().iter().map(|&o| graph.operand_name(o)));
        // Trailing omitted inputs are dropped, as ONNX writers do.
        while self.input.last().is_some_and(|s| s.is_empty()) {
            self.input.pop();
        }
        self.output.clear();
        self.output.extend(n.outputs.iter().map(|v| v.name.as_str()));
        self.attribute = &n.attrs;
        self.doc_string = rest.and_then(|r| r.doc_string.as_deref());
        self.overload = rest.and_then(|r| r.overload.as_deref());
        self.metadata_props = rest.map_or(&[], |r| &r.metadata_props);
        self.device_configurations = rest.map_or(&[], |r| &r.device_configurations);
    }

    /// The fields of `p` as they are, but for its outputs: `output` alone (a constant node).
    fn of_const(&mut self, p: &'a NodeProto, output: &'a str) {
        self.input.clear();
        self.input.extend(p.input.iter().map(String::as_str));
        self.output.clear();
        self.output.push(output);
        self.name = p.name.as_deref();
        self.op_type = p.op_type.as_deref();
        self.attribute = &p.attribute;
        self.doc_string = p.doc_string.as_deref();
        self.domain = p.domain.as_deref();
        self.overload = p.overload.as_deref();
        self.metadata_props = &p.metadata_props;
        self.device_configurations = &p.device_configurations;
    }

    /// The fields of a node-list entry; `false` for a constant that came from no `Constant` node
    /// (it is written as an initializer instead).
    fn of_item(&mut self, graph: &'a Graph, item: Item) -> bool {
        match item {
            Item::Node(id) => self.of_node(graph, id),
            Item::Const(id) => match const_node(graph, id) {
                Some((p, output)) => self.of_const(p, output),
                None => return false,
            },
        }
        true
    }

    fn to_proto(&self) -> NodeProto {
        let s = |s: Option<&str>| s.map(str::to_string);
        NodeProto {
            input: self.input.iter().map(|s| s.to_string()).collect(),
            output: self.output.iter().map(|s| s.to_string()).collect(),
            name: s(self.name),
            op_type: s(self.op_type),
            attribute: self.attribute.to_vec(),
            doc_string: s(self.doc_string),
            domain: s(self.domain),
            overload: s(self.overload),
            metadata_props: self.metadata_props.to_vec(),
            device_configurations: self.device_configurations.to_vec(),
        }
    }

    /// `to_proto().encoded_len()`.
    fn encoded_len(&self) -> usize {
        use prost::encoding::message::encoded_len_repeated;
        let strs = |tag: u32, v: &[&str]| v.iter().map(|s| str_len(tag, s)).sum::<usize>();
        let opt = |tag: u32, s: Option<&str>| s.map_or(0, |s| str_len(tag, s));
        strs(1, &self.input)
            + strs(2, &self.output)
            + opt(3, self.name)
            + opt(4, self.op_type)
            + encoded_len_repeated(5, self.attribute)
            + opt(6, self.doc_string)
            + opt(7, self.domain)
            + opt(8, self.overload)
            + encoded_len_repeated(9, self.metadata_props)
            + encoded_len_repeated(10, self.device_configurations)
    }

    /// `to_proto().encode_raw(buf)`: prost writes a message's fields in field-number order.
    fn encode_raw(&self, buf: &mut impl BufMut) {
        use prost::encoding::message::encode_repeated;
        for s in &self.input {
            put_str(1, s, buf);
        }
        for s in &self.output {
            put_str(2, s, buf);
        }
        let opt = |tag: u32, s: Option<&str>, buf: &mut _| {
            if let Some(s) = s {
                put_str(tag, s, buf)
            }
        };
        opt(3, self.name, buf);
        opt(4, self.op_type, buf);
        encode_repeated(5, self.attribute, buf);
        opt(6, self.doc_string, buf);
        opt(7, self.domain, buf);
        opt(8, self.overload, buf);
        encode_repeated(9, self.metadata_props, buf);
        encode_repeated(10, self.device_configurations, buf);
    }
}

/// The encoded length of string field `tag` holding `s`.
fn str_len(tag: u32, s: &str) -> usize {
    key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
}

fn put_str(tag: u32, s: &str, buf: &mut impl BufMut) {
    put_len(tag, s.len(), buf);
    buf.put_slice(s.as_bytes());
}

/// The key and length of length-delimited field `tag`.
fn put_len(tag: u32, len: usize, buf: &mut impl BufMut) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(len as u64, buf);
}

/// One entry of a graph's node list, in file order.
#[derive(Clone, Copy, Debug)]
enum Item {
    Node(NodeId),
    /// A constant from a `Constant` node.
    Const(ConstId),
}

/// The graph's nodes in file order: topological, each constant node written before its first
/// consumer or at its order key.
fn node_order(graph: &Graph) -> Result<Vec<Item>, Error> {
    // Constant nodes, by order key; each is written before its first consumer or at its key.
    let mut const_nodes: Vec<(u64, ConstId)> = graph
        .constants()
        .filter_map(|(id, c)| match &c.origin {
            ConstOrigin::ConstantNode { order, .. } => Some((*order, id)),
            _ => None,
        })
        .collect();
    let order = graph.topo_order()?;
    // Without constant nodes (the usual case once initializers are used), the nodes are not read.
    if const_nodes.is_empty() {
        return Ok(order.into_iter().map(Item::Node).collect());
    }
    const_nodes.sort();
    // Whether a constant is a constant node not yet written, by `ConstId`.
    let mut pending = vec![false; graph.const_bound()];
    for &(_, id) in &const_nodes {
        pending[id.0 as usize] = true;
    }
    let mut items = Vec::with_capacity(order.len() + const_nodes.len());
    let mut emit_const = |id: ConstId, items: &mut Vec<Item>| {
        if std::mem::take(&mut pending[id.0 as usize]) {
            items.push(Item::Const(id));
        }
    };
    let mut next_const = 0;
    for id in order {
        let n = graph.node(id);
        while next_const < const_nodes.len() && const_nodes[next_const].0 < n.order() {
            emit_const(const_nodes[next_const].1, &mut items);
            next_const += 1;
        }
        for &op in n.inputs().iter().chain(n.captures()) {
            if let Operand::Const(c) = op {
                emit_const(c, &mut items);
            }
        }
        items.push(Item::Node(id));
    }
    for &(_, id) in &const_nodes[next_const..] {
        emit_const(id, &mut items);
    }
    Ok(items)
}

/// The `Constant` node of constant `id`, if it came from one, with its output named as the constant.
fn const_node(graph: &Graph, id: ConstId) -> Option<(&NodeProto, &str)> {
    let c = graph.constant(id);
    match &c.origin {
        ConstOrigin::ConstantNode { node, .. } => Some((node, &c.name)),
        _ => None,
    }
}

/// The graph without its nodes (but for any in `meta`): initializers, inputs, outputs, value info.
fn graph_without_nodes(graph: &Graph) -> Result<GraphProto, Error> {
    let mut gp = graph.meta.clone();
    for (_, c) in graph.constants() {
        match (&c.origin, &c.value) {
            (ConstOrigin::Initializer | ConstOrigin::InputDefault, ConstValue::Dense(t)) => {
                let mut p = t.proto.clone();
                if p.name.is_some() || !c.name.is_empty() {
                    p.name = Some(c.name.clone());
                }
                gp.initializer.push(p);
            }
            (ConstOrigin::SparseInitializer, ConstValue::Sparse(s)) => gp.sparse_initializer.push((**s).clone()),
            (_, ConstValue::Elided(_)) => {
                return Err(Error::ValueInfo {
                    name: c.name.clone(),
                    msg: "its data was elided in the text form, so there is no data to write".into(),
                })
            }
            (ConstOrigin::ConstantNode { .. }, _) => {}
            (origin, _) => {
                return Err(Error::Tensor {
                    name: c.name.clone(),
                    source: crate::tensor::TensorError::Unsupported(
                        crate::dtype::DType::Bool,
                        match origin {
                            ConstOrigin::SparseInitializer => "a dense sparse initializer",
                            _ => "a sparse initializer",
                        },
                    ),
                })
            }
        }
    }
    for &id in &graph.inputs {
        let v = &graph.node(id).outputs[0];
        gp.input.push(value_info(&v.name, v.declared.as_deref(), v.ty.as_ref()));
    }
    for out in graph.outputs() {
        let name = graph.operand_name(out.operand);
        gp.output.push(value_info(name, Some(&out.declared), graph.operand_type(out.operand).as_ref()));
    }
    for vi in &graph.value_info {
        let name = vi.name.as_deref().unwrap_or("");
        match graph.lookup(name) {
            Some(Operand::Value(o)) => gp.value_info.push(value_info(name, Some(vi), graph.value(o).ty.as_ref())),
            Some(_) => gp.value_info.push(vi.clone()),
            None if graph.value_info_orphans.contains(name) => gp.value_info.push(vi.clone()),
            None => {}
        }
    }
    Ok(gp)
}

pub(crate) fn export_graph(graph: &Graph) -> Result<GraphProto, Error> {
    let items = node_order(graph)?;
    let mut gp = graph_without_nodes(graph)?;
    let mut f = NodeFields::default();
    // After any nodes of `meta`, in order.
    let mut nodes = std::mem::take(&mut gp.node);
    nodes.reserve(items.len());
    for item in items {
        if f.of_item(graph, item) {
            nodes.push(f.to_proto());
        }
    }
    gp.node = nodes;
    Ok(gp)
}

/// The `ModelProto` without its graph: the model's fields, plus an opset import for every domain
/// the graph came to use.
fn model_without_graph(model: &Model) -> ModelProto {
    let mut m = model.meta.clone();
    m.graph = None;
    // Domains the graph came to use (a pass wrote com.microsoft ops) are imported too; the
    // model's own opset_import list is kept as it was, in its order.
    let norm = |d: &str| if d == "ai.onnx" { String::new() } else { d.to_string() };
    let declared: std::collections::HashSet<String> =
        m.opset_import.iter().map(|o| norm(o.domain.as_deref().unwrap_or(""))).collect();
    for (domain, &version) in &model.graph.opsets {
        if !declared.contains(&norm(domain)) {
            m.opset_import
                .push(crate::proto::OperatorSetIdProto { domain: Some(domain.clone()), version: Some(version) });
        }
    }
    m
}

pub(crate) fn export_model(model: &Model) -> Result<ModelProto, Error> {
    let graph = export_graph(&model.graph)?;
    let mut m = model_without_graph(model);
    m.graph = Some(graph);
    Ok(m)
}

/// protobuf's hard limit for one message.
const PROTOBUF_LIMIT: usize = i32::MAX as usize;

/// Nodes per piece of the node list: pieces are encoded on all cores, each into its own buffer,
/// and written one by one. A node list of one piece is encoded on the calling thread. (A write of
/// a piece, some hundred KB, also copies into the page cache far faster than one write of all the
/// nodes did: 95 MB took 0.03 s against 0.2 s on the test machine.)
const PIECE: usize = 4096;

/// Part of the node list, encoded: its nodes (each with its field key and length) but for the
/// built ones, which go at the offsets in `cuts`, in order.
struct Piece {
    bytes: Vec<u8>,
    cuts: Vec<usize>,
}

impl Piece {
    /// The nodes of `items`, and those of them built rather than encoded (see [`Streamed`]).
    /// They are encoded into `scratch`, then copied out, so that a piece's buffer is no larger
    /// than its bytes: a buffer's unused reserve lies among other pieces' bytes and is paged in
    /// with them (huge pages are zeroed whole), which doubled the page zeroing of a 1M-op save.
    fn encode(graph: &Graph, items: &[Item], scratch: &mut Vec<u8>) -> (Piece, Vec<NodeProto>) {
        scratch.clear();
        // A typical node takes 100 to 200 bytes.
        scratch.reserve(items.len() * 192);
        let mut cuts = Vec::new();
        let mut built = Vec::new();
        let mut f = NodeFields::default();
        for &item in items {
            if !f.of_item(graph, item) {
                continue;
            }
            if holds_tensors(f.attribute) {
                cuts.push(scratch.len());
                built.push(f.to_proto());
            } else {
                put_len(1, f.encoded_len(), scratch);
                f.encode_raw(scratch);
            }
        }
        (Piece { bytes: scratch.to_vec(), cuts }, built)
    }
}

/// A model ready to be written: the bytes of `export_model` (with external data placed), but with
/// most nodes encoded straight from the graph rather than built as `NodeProto`s first. Nodes
/// whose attributes hold tensors or graphs are built, so that placement rewrites them as it would
/// in the full proto, in the same order; they are encoded only when written, so their tensor
/// payloads go to the file without a copy.
struct Streamed {
    /// The model's fields before its graph (fields 1 to 6) and after it (8 on).
    head: ModelProto,
    tail: ModelProto,
    /// The graph without its nodes; `node` is its first field, so its bytes follow the nodes'.
    rest: GraphProto,
    /// The built nodes, in node-list order: the cuts of `nodes`, one each.
    built: Vec<NodeProto>,
    /// The node list, in pieces.
    nodes: Vec<Piece>,
    graph_len: usize,
    size: usize,
}

impl Streamed {
    fn new(model: &Model, mode: &ExternalData, location: &str) -> Result<(Streamed, Regions), Error> {
        use rayon::prelude::*;
        let graph = &model.graph;
        let order = node_order(graph)?;
        let mut gp = graph_without_nodes(graph)?;
        // Nodes of `meta`, if any, come first: a piece of built nodes alone.
        let mut nodes = vec![Piece { bytes: Vec::new(), cuts: vec![0; gp.node.len()] }];
        let pieces: Vec<_> = if order.len() > PIECE {
            order.par_chunks(PIECE).map_init(Vec::new, |scratch, items| Piece::encode(graph, items, scratch)).collect()
        } else {
            vec![Piece::encode(graph, &order, &mut Vec::new())]
        };
        for (piece, built) in pieces {
            nodes.push(piece);
            gp.node.extend(built);
        }
        let mut m = model_without_graph(model);
        m.graph = Some(gp);
        let regions = place_tensors(&mut m, &model.external, mode, location)?;
        let ModelProto {
            ir_version,
            opset_import,
            producer_name,
            producer_version,
            domain,
            model_version,
            doc_string,
            graph: gp,
            metadata_props,
            training_info,
            functions,
            configuration,
        } = m;
        let mut rest = gp.unwrap_or_default();
        let built = std::mem::take(&mut rest.node);
        let head = ModelProto {
            ir_version,
            producer_name,
            producer_version,
            domain,
            model_version,
            doc_string,
            ..Default::default()
        };
        let tail =
            ModelProto { opset_import, metadata_props, training_info, functions, configuration, ..Default::default() };
        let built_len: usize = built.iter().map(|p| prost::encoding::message::encoded_len(1, p)).sum();
        let nodes_len: usize = nodes.iter().map(|p| p.bytes.len()).sum();
        let graph_len = nodes_len + built_len + rest.encoded_len();
        let size =
            head.encoded_len() + key_len(7) + encoded_len_varint(graph_len as u64) + graph_len + tail.encoded_len();
        Ok((Streamed { head, tail, rest, built, nodes, graph_len, size }, regions))
    }

    /// Writes exactly `self.size` bytes.
    fn encode(&self, buf: &mut impl BufMut) {
        self.head.encode_raw(buf);
        put_len(7, self.graph_len, buf);
        let mut built = self.built.iter();
        for piece in &self.nodes {
            let mut start = 0;
            for &cut in &piece.cuts {
                buf.put_slice(&piece.bytes[start..cut]);
                start = cut;
                if let Some(p) = built.next() {
                    prost::encoding::message::encode(1, p, buf);
                }
            }
            buf.put_slice(&piece.bytes[start..]);
        }
        self.rest.encode_raw(buf);
        self.tail.encode_raw(buf);
    }
}

/// Where a save writes: the output, its side file, and the side files of the input it replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavePlan {
    /// The folder of the output.
    pub dir: PathBuf,
    /// The side file's name in `dir` (written only if some tensor is external).
    pub location: String,
    /// With [`SaveOptions::replace_input`]: side files of the input, named as qdqc names side
    /// files of this output, that the new model no longer reads; removed once it is in place.
    pub stale: Vec<PathBuf>,
}

/// Checks that saving `model` to `path` writes over no file the model was read from (unless
/// `opts.replace_input`) and decides the side file's name: `NAME.data` for an output `NAME`, or,
/// when replacing the input, the first of `NAME.data`, `NAME.1.data`, `NAME.2.data`, … that the
/// input does not read, so the input stays loadable until the new model is renamed over it.
pub(crate) fn plan(model: &Model, path: &Path, opts: &SaveOptions) -> Result<SavePlan, Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = match path.file_name() {
        Some(n) => n.to_string_lossy().into_owned(),
        None => return Err(Error::Output { msg: "is not a file name".into() }),
    };
    if path.is_dir() {
        return Err(Error::Output { msg: "is a directory".into() });
    }
    let sources = model.external.sources();
    let read_by_input =
        |p: &Path| FileKey::of(p).and_then(|k| sources.iter().find(|(_, s)| *s == k).map(|s| s.0.clone()));
    if !opts.replace_input {
        if read_by_input(path).is_some() {
            return Err(Error::WouldReplaceInput { file: path.to_path_buf() });
        }
        let location = format!("{name}.data");
        if let Some(file) = read_by_input(&dir.join(&location)) {
            return Err(Error::WouldReplaceInput { file });
        }
        return Ok(SavePlan { dir, location, stale: Vec::new() });
    }
    let candidate = |k: usize| if k == 0 { format!("{name}.data") } else { format!("{name}.{k}.data") };
    let location = (0..)
        .map(candidate)
        .find(|l| read_by_input(&dir.join(l)).is_none())
        .expect("the input reads finitely many files");
    let ours = |p: &Path| {
        let same_dir = FileKey::of(p.parent().unwrap_or(Path::new("."))) == FileKey::of(&dir);
        let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let numbered = n
            .strip_prefix(&format!("{name}."))
            .and_then(|rest| rest.strip_suffix(".data"))
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
        same_dir && (n == format!("{name}.data") || numbered)
    };
    let stale = sources.iter().map(|(p, _)| p.clone()).filter(|p| ours(p) && *p != dir.join(&location)).collect();
    Ok(SavePlan { dir, location, stale })
}

pub(crate) fn save(model: &Model, path: &Path, opts: &SaveOptions) -> Result<SavePlan, Error> {
    let plan = plan(model, path, opts)?;
    let (proto, regions) = Streamed::new(model, &opts.external, &plan.location)?;
    let size = proto.size;
    if size > PROTOBUF_LIMIT {
        return Err(Error::TooLarge { size });
    }
    let durable = opts.replace_input;
    // Write everything to temporaries first; rename only once all writes succeeded, the side file
    // before the model that reads it.
    let mut staged = Vec::new();
    if !regions.0.is_empty() {
        let mut tmp = tempfile::NamedTempFile::new_in(&plan.dir).map_err(plain)?;
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let mut pos = 0usize;
            for (&offset, bytes) in &regions.0 {
                if offset != pos {
                    w.seek(SeekFrom::Start(offset as u64))?;
                }
                w.write_all(bytes)?;
                pos = offset + bytes.len();
            }
            w.flush()?;
        }
        staged.push((tmp, plan.dir.join(&plan.location)));
    }
    let mut tmp = tempfile::NamedTempFile::new_in(&plan.dir).map_err(plain)?;
    let mut sink = FileSink::new(std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut()));
    proto.encode(&mut sink);
    sink.finish()?;
    staged.push((tmp, path.to_path_buf()));
    for (tmp, target) in staged {
        set_file_mode(tmp.as_file());
        if durable {
            tmp.as_file().sync_all()?;
        }
        tmp.persist(&target).map_err(|e| Error::Io(e.error))?;
    }
    if durable {
        std::fs::File::open(&plan.dir).and_then(|d| d.sync_all())?;
        for old in &plan.stale {
            std::fs::remove_file(old)?;
        }
    }
    Ok(plan)
}

/// An I/O error without the temporary file's name that tempfile adds to its errors: messages name
/// the output, never a temporary.
fn plain(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error().is_some() {
        return e;
    }
    let code = e
        .get_ref()
        .and_then(|r| r.source())
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error);
    match code {
        Some(c) => std::io::Error::from_raw_os_error(c),
        None => std::io::Error::from(e.kind()),
    }
}

/// tempfile creates files readable only by their owner; outputs get the usual 0644.
fn set_file_mode(f: &std::fs::File) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    #[cfg(not(unix))]
    let _ = f;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn value_info_is_regenerated_only_when_the_type_changed() {
        let ty = TensorType::new(DType::F32, vec![Dim::Sym("N".into()), Dim::Known(3)]);
        let declared = ValueInfoProto {
            name: Some("x".into()),
            r#type: Some(type_proto(&ty)),
            doc_string: Some("doc".into()),
            metadata_props: vec![],
        };
        assert_eq!(value_info("x", Some(&declared), Some(&ty)), declared);
        let u8ty = TensorType::new(DType::U8, vec![Dim::Sym("N".into()), Dim::Known(3)]);
        let v = value_info("x", Some(&declared), Some(&u8ty));
        assert_eq!(v.r#type, Some(type_proto(&u8ty)));
        assert_eq!(v.doc_string.as_deref(), Some("doc"));
    }

    /// `Streamed` writes the bytes of the full proto, with external data placed the same way.
    fn assert_streams_as_export_model(model: &Model) {
        let modes = [
            ExternalData::Keep,
            ExternalData::Inline,
            ExternalData::File { threshold: 0 },
            ExternalData::File { threshold: 64 },
        ];
        for mode in modes {
            let mut full = export_model(model).unwrap();
            let want = place_tensors(&mut full, &model.external, &mode, "w.bin").unwrap();
            let (s, regions) = Streamed::new(model, &mode, "w.bin").unwrap();
            let mut out = Vec::new();
            s.encode(&mut out);
            assert!(out == full.encode_to_vec(), "{mode:?}");
            assert_eq!(out.len(), s.size);
            assert_eq!(regions.0, want.0, "{mode:?}");
        }
    }

    fn model(text: &str) -> Model {
        let graph = crate::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let meta = ModelProto {
            ir_version: Some(10),
            producer_name: Some("p".into()),
            doc_string: Some("d".into()),
            metadata_props: vec![StringStringEntryProto { key: Some("k".into()), value: Some("v".into()) }],
            ..Default::default()
        };
        Model { graph, meta, external: Default::default() }
    }

    #[test]
    fn streamed_bytes_equal_the_full_proto() {
        let texts = [
            // Constant nodes between nodes and at the end, custom domains, unnamed nodes,
            // omitted inputs (trailing ones are dropped) and outputs.
            "graph \"g\" opset(ai.onnx=21) {
  input %x: f32[2]
  const(node) %c: i64[2] [1, 2]
  const %s: f32[] 0.5
  %a: u8[2] q(0.5, 0) = com.microsoft.QuantizeLinear(%x, %s)  \"q\"
  %b, _, %d = com.x.Split(%a, _, %c, _, _)
  %e = \"a.b\".\"My Op\"(%b, %d)
  const(node) %k: f32[2] [3.0, 4.0]
  %f: f32[2] = Add(%x, %k)  \"\"
  %g = com.x.Zero()
  output %e
  output %f
  output %g
}
",
            // Subgraphs, with constant nodes and captures inside.
            "graph \"g\" opset(ai.onnx=21) {
  input %c: bool[]
  input %x: f32[2]
  const %k: f32[2] [1.0, 2.0]
  %y: f32[2] = If[then_branch=graph \"then\" {
    const %t: f32[2] [3.0, 4.0]
    %r: f32[2] = Add(%x, %t)  \"inner\"
    output %r
  }, else_branch=graph \"else\" {
    %n = Constant[value=f32[2] [5.0, 6.0]]()
    output %n
  }](%c)
  %z: f32[2] = Mul(%y, %k)
  output %z
}
",
        ];
        for text in texts {
            let mut m = model(text);
            assert_streams_as_export_model(&m);
            // A node list in the graph's meta, and a constant node without tensors.
            m.graph.meta.node.push(NodeProto { op_type: Some("Meta".into()), ..Default::default() });
            let consts: Vec<ConstId> = m.graph.constants().map(|(id, _)| id).collect();
            for id in consts {
                if let ConstOrigin::ConstantNode { node, .. } = &mut m.graph.constant_mut(id).origin {
                    node.doc_string = Some("doc".into());
                    node.attribute.push(crate::attr::make_int("extra", 7));
                }
            }
            assert_streams_as_export_model(&m);
            for id in m.graph.constants().map(|(id, _)| id).collect::<Vec<_>>() {
                if let ConstOrigin::ConstantNode { node, .. } = &mut m.graph.constant_mut(id).origin {
                    node.attribute.retain(|a| a.t.is_none());
                }
            }
            assert_streams_as_export_model(&m);
        }
    }

    #[test]
    fn streamed_pieces_equal_the_full_proto() {
        // Nodes for several pieces, with constant nodes and built nodes (holding tensors) among
        // them, and a run of built nodes across the end of the first piece.
        let mut text = String::from("graph \"g\" opset(ai.onnx=21) {\n  input %x0: f32[2]\n");
        let n = 2 * PIECE + 100;
        for i in 1..=n {
            let p = i - 1;
            text += &match i % 1000 {
                0 => format!("  const(node) %c{i}: f32[2] [1.0, 2.0]\n  %x{i}: f32[2] = Add(%x{p}, %c{i})\n"),
                500 => format!("  %x{i} = com.x.T[t=f32[2] [1.0, 2.0]](%x{p})  \"t{i}\"\n"),
                _ if i.abs_diff(PIECE) < 8 => format!("  %x{i} = com.x.T[t=f32[] 1.0](%x{p})\n"),
                _ => format!("  %x{i}: f32[2] = Relu(%x{p})  \"r{i}\"\n"),
            };
        }
        text += &format!("  output %x{n}\n}}\n");
        let m = model(&text);
        assert!(node_order(&m.graph).unwrap().len() > 2 * PIECE);
        assert_streams_as_export_model(&m);
    }

    #[test]
    fn streamed_fixtures_equal_the_full_proto() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "onnx") {
                assert_streams_as_export_model(&crate::onnx::load(&path).unwrap());
                n += 1;
            }
        }
        assert!(n >= 20, "{n} fixtures");
    }

    #[test]
    fn save_writes_the_streamed_bytes() {
        let m = model(
            "graph \"g\" opset(ai.onnx=21) {\n  input %x: f32[2]\n  const(node) %c: f32[2] [1.0, 2.0]\n  \
             %y: f32[2] = Add(%x, %c)\n  output %y\n}\n",
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        save(&m, &path, &SaveOptions::default()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), export_model(&m).unwrap().encode_to_vec());
    }
}
