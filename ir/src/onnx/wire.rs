//! Splits an encoded `ModelProto` into the model without its main graph's nodes, decoded by
//! prost, and each node's encoded bytes (zero-copy slices of the input).
//!
//! Decoding a million nodes into one `Vec<NodeProto>` first held every node twice during import
//! (as a proto and as IR), regrew that vector by doubling, and left the decode on the critical
//! path. With the nodes split out, import decodes them in chunks on a second thread while it
//! builds the graph from the chunks before ([`decode_nodes`]), and drops each proto once it is
//! imported.
//!
//! Every other field goes through prost's own `merge_field` (public, though hidden from its
//! docs, as the entry point its derived decoders use), so this module only knows two field
//! numbers: `ModelProto.graph` (7) and `GraphProto.node` (1). A field repeated in the input is
//! merged as protobuf says (a second `graph` merges into the first; its nodes are appended).

use crate::proto::{GraphProto, ModelProto, NodeProto};
use bytes::{Buf, Bytes};
use prost::encoding::{decode_key, DecodeContext, WireType};
use prost::{DecodeError, Message};

const MODEL_GRAPH: u32 = 7;
const GRAPH_NODE: u32 = 1;

/// The model with `graph.node` empty, and the encoded nodes of its graph in file order.
pub(crate) fn split_model(mut buf: Bytes) -> Result<(ModelProto, Vec<Bytes>), DecodeError> {
    let mut model = ModelProto::default();
    let mut nodes = Vec::new();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if tag == MODEL_GRAPH && wire_type == WireType::LengthDelimited {
            let graph = length_delimited(&mut buf)?;
            // Room for nodes of 64 bytes on average (typical ones take 60 to 200): a reservation
            // costs nothing where it is not used, and regrowing moved the list through fresh pages.
            nodes.reserve(graph.len() / 64);
            split_graph(graph, model.graph.get_or_insert_with(GraphProto::default), &mut nodes)?;
        } else {
            model.merge_field(tag, wire_type, &mut buf, DecodeContext::default())?;
        }
    }
    Ok((model, nodes))
}

fn split_graph(mut buf: Bytes, graph: &mut GraphProto, nodes: &mut Vec<Bytes>) -> Result<(), DecodeError> {
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if tag == GRAPH_NODE && wire_type == WireType::LengthDelimited {
            nodes.push(length_delimited(&mut buf)?);
        } else {
            graph.merge_field(tag, wire_type, &mut buf, DecodeContext::default())?;
        }
    }
    Ok(())
}

/// The next length-delimited field's payload, read by prost's `bytes` decoder (which checks the
/// length and, for `Bytes`, slices without copying).
fn length_delimited(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let mut payload = Bytes::new();
    prost::encoding::bytes::merge(WireType::LengthDelimited, &mut payload, buf, DecodeContext::default())?;
    Ok(payload)
}

/// Nodes decoded per chunk handed from the decoding thread to import.
const CHUNK: usize = 2048;

/// Decodes `nodes` in order on a second thread, readies each with `prepare` there too, and hands
/// them to `import` a chunk at a time, so that decoding overlaps importing (and import, the
/// slower side, does only what needs the graph). Stops at the first error of either; a decode
/// error is reported when import reaches the node.
pub(crate) fn decode_nodes<T: Send, E: From<DecodeError>>(
    nodes: Vec<Bytes>,
    mut prepare: impl FnMut(NodeProto) -> T + Send,
    mut import: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let mut decode =
        move |chunk: &[Bytes]| chunk.iter().map(|b| NodeProto::decode(b.clone()).map(&mut prepare)).collect::<Vec<_>>();
    if nodes.len() <= CHUNK {
        return decode(&nodes).into_iter().try_for_each(|n| import(n?));
    }
    std::thread::scope(|s| {
        // A few chunks ahead at most: the protos wait in memory until imported.
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        s.spawn(move || {
            for chunk in nodes.chunks(CHUNK) {
                if tx.send(decode(chunk)).is_err() {
                    break; // import stopped at an error
                }
            }
        });
        // (Returning drops `rx`, which stops the decoding thread at its next chunk.)
        rx.into_iter().flatten().try_for_each(|n| import(n?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AttributeProto, TensorProto};

    fn node(name: &str) -> NodeProto {
        NodeProto {
            name: Some(name.into()),
            op_type: Some("Relu".into()),
            input: vec!["x".into()],
            output: vec![format!("{name}_y")],
            attribute: vec![AttributeProto {
                name: Some("t".into()),
                t: Some(Box::new(TensorProto { raw_data: Some(Bytes::from_static(&[1, 2, 3])), ..Default::default() })),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn decode_all(nodes: Vec<Bytes>) -> Vec<NodeProto> {
        let mut out = Vec::new();
        decode_nodes::<_, DecodeError>(
            nodes,
            |n| n,
            |n| {
                out.push(n);
                Ok(())
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn split_then_decode_equals_prost_decode() {
        for count in [0, 3, CHUNK + 5] {
            let model = ModelProto {
                ir_version: Some(9),
                producer_name: Some("t".into()),
                graph: Some(GraphProto {
                    name: Some("g".into()),
                    node: (0..count).map(|i| node(&format!("n{i}"))).collect(),
                    doc_string: Some("after the nodes".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let bytes = Bytes::from(model.encode_to_vec());
            let (mut rest, nodes) = split_model(bytes.clone()).unwrap();
            assert!(rest.graph.as_ref().unwrap().node.is_empty());
            rest.graph.as_mut().unwrap().node = decode_all(nodes);
            assert_eq!(rest, ModelProto::decode(bytes).unwrap());
        }
    }

    #[test]
    fn a_repeated_graph_field_merges_as_protobuf_does() {
        let part = |name: &str, n: &str| {
            ModelProto {
                graph: Some(GraphProto { name: Some(name.into()), node: vec![node(n)], ..Default::default() }),
                ..Default::default()
            }
            .encode_to_vec()
        };
        let bytes = Bytes::from([part("a", "n0"), part("b", "n1")].concat());
        let (mut rest, nodes) = split_model(bytes.clone()).unwrap();
        rest.graph.as_mut().unwrap().node = decode_all(nodes);
        assert_eq!(rest, ModelProto::decode(bytes).unwrap());
        assert_eq!(rest.graph.unwrap().node.len(), 2);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let model = ModelProto {
            graph: Some(GraphProto { node: vec![node("n")], ..Default::default() }),
            ..Default::default()
        };
        let bytes = model.encode_to_vec();
        for cut in 1..bytes.len() {
            let prefix = Bytes::copy_from_slice(&bytes[..cut]);
            let r = split_model(prefix.clone())
                .and_then(|(_, nodes)| decode_nodes::<_, DecodeError>(nodes, |n| n, |_| Ok(())));
            assert!(r.is_err(), "cut at {cut} of {}", bytes.len());
            assert!(ModelProto::decode(prefix).is_err());
        }
    }

    #[test]
    fn a_bad_node_stops_the_import() {
        let mut nodes: Vec<Bytes> =
            (0..3 * CHUNK).map(|i| Bytes::from(node(&format!("n{i}")).encode_to_vec())).collect();
        nodes[CHUNK + 1] = Bytes::from_static(&[0xff]);
        let mut seen = 0;
        let r = decode_nodes::<_, DecodeError>(
            nodes,
            |n| n,
            |_| {
                seen += 1;
                Ok(())
            },
        );
        assert!(r.is_err());
        assert_eq!(seen, CHUNK + 1);
    }
}
