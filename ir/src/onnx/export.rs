//! [`Model`] → `ModelProto` and files. Nodes are written in topological order preferring each
//! node's original position, so an untouched graph is written back exactly as it was read.

use super::external::place_tensors;
use super::sink::FileSink;
use super::{Error, Model, SaveOptions};
use crate::graph::{ConstOrigin, ConstValue, Dim, Graph, Operand, TensorType};
use crate::op::Op;
use crate::proto::{
    tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;
use std::collections::HashSet;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

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

fn node_proto(graph: &Graph, id: crate::graph::NodeId) -> NodeProto {
    let n = graph.node(id);
    let mut p = n.meta.to_proto();
    let domain = p.domain.as_deref().unwrap_or("");
    if Op::from_onnx(domain, n.op.name()) != n.op {
        let d = n.op.default_domain();
        p.domain = (!d.is_empty()).then(|| d.to_string());
    }
    p.op_type = Some(n.op.name().to_string());
    p.input = n.inputs().iter().map(|&o| graph.operand_name(o).to_string()).collect();
    // Trailing omitted inputs are dropped, as ONNX writers do.
    while p.input.last().is_some_and(String::is_empty) {
        p.input.pop();
    }
    p.output = n.outputs.iter().map(|v| v.name.clone()).collect();
    p.attribute = n.attrs.clone();
    p
}

pub(crate) fn export_graph(graph: &Graph) -> Result<GraphProto, Error> {
    let mut gp = graph.meta.clone();
    // Constant nodes, by order key; each is written before its first consumer or at its key.
    let mut const_nodes: Vec<(u64, crate::graph::ConstId)> = graph
        .constants()
        .filter_map(|(id, c)| match &c.origin {
            ConstOrigin::ConstantNode { order, .. } => Some((*order, id)),
            _ => None,
        })
        .collect();
    const_nodes.sort();
    let mut emitted: HashSet<crate::graph::ConstId> = HashSet::new();
    let emit_const = |id: crate::graph::ConstId, gp: &mut GraphProto, emitted: &mut HashSet<_>| {
        if emitted.insert(id) {
            let c = graph.constant(id);
            if let ConstOrigin::ConstantNode { node, .. } = &c.origin {
                let mut node = node.clone();
                node.output = vec![c.name.clone()];
                gp.node.push(*node);
            }
        }
    };
    let mut next_const = 0;
    for id in graph.topo_order()? {
        let n = graph.node(id);
        while next_const < const_nodes.len() && const_nodes[next_const].0 < n.order {
            emit_const(const_nodes[next_const].1, &mut gp, &mut emitted);
            next_const += 1;
        }
        for &op in n.inputs().iter().chain(n.captures()) {
            if let Operand::Const(c) = op {
                if matches!(graph.constant(c).origin, ConstOrigin::ConstantNode { .. }) {
                    emit_const(c, &mut gp, &mut emitted);
                }
            }
        }
        gp.node.push(node_proto(graph, id));
    }
    for &(_, id) in &const_nodes[next_const..] {
        emit_const(id, &mut gp, &mut emitted);
    }
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

pub(crate) fn export_model(model: &Model) -> Result<ModelProto, Error> {
    let mut m = model.meta.clone();
    m.graph = Some(export_graph(&model.graph)?);
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
    Ok(m)
}

/// protobuf's hard limit for one message.
const PROTOBUF_LIMIT: usize = i32::MAX as usize;

pub(crate) fn save(model: &Model, path: &Path, opts: &SaveOptions) -> Result<(), Error> {
    let mut proto = export_model(model)?;
    let regions = place_tensors(&mut proto, &model.external, &opts.external)?;
    let size = proto.encoded_len();
    if size > PROTOBUF_LIMIT {
        return Err(Error::TooLarge { size });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // Write everything to temporaries first; rename only once all writes succeeded.
    let mut staged = Vec::new();
    for (location, parts) in &regions.0 {
        let target = dir.join(location);
        let parent = target.parent().unwrap_or(&dir);
        std::fs::create_dir_all(parent)?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent)?;
        {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
            let mut pos = 0usize;
            for (&offset, bytes) in parts {
                if offset != pos {
                    w.seek(SeekFrom::Start(offset as u64))?;
                }
                w.write_all(bytes)?;
                pos = offset + bytes.len();
            }
            w.flush()?;
        }
        staged.push((tmp, target));
    }
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
    let mut sink = FileSink::new(std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut()));
    proto.encode(&mut sink).map_err(|e| Error::Io(std::io::Error::other(e)))?;
    sink.finish()?;
    staged.push((tmp, path.to_path_buf()));
    for (tmp, target) in staged {
        set_file_mode(tmp.as_file());
        tmp.persist(&target).map_err(|e| Error::Io(e.error))?;
    }
    Ok(())
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
}
