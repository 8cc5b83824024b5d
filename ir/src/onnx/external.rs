//! External data: tensors whose bytes live in side files (`location`/`offset`/`length`).
//! Side files are memory-mapped once each and tensors are zero-copy slices of the mapping.

use super::Error;
use crate::proto::tensor_proto::DataLocation;
use crate::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

/// Where [`super::save`] puts tensor data.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ExternalData {
    /// As read: external tensors stay external (same location and offsets), others inline.
    #[default]
    Keep,
    /// Every tensor inline (`raw_data`); fails past protobuf's 2 GiB limit.
    Inline,
    /// Every tensor of at least `threshold` bytes into one side file `location` (relative to
    /// the output's folder), at 4096-aligned offsets.
    File { location: String, threshold: usize },
}

/// The side files of a loaded model, by location.
#[derive(Clone, Debug, Default)]
pub struct ExternalStore {
    base: PathBuf,
    files: BTreeMap<String, Bytes>,
}

/// Maps a whole file read-only. An empty file maps to an empty buffer.
pub(crate) fn map_file(path: &Path) -> Result<Bytes, Error> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only; like every mmap-based loader we rely on the file not being
    // truncated while the model is in use (qdqc itself only ever replaces files by rename).
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

/// The external_data entries of a tensor, parsed.
pub(crate) struct ExtRef {
    pub location: String,
    pub offset: usize,
    pub length: Option<usize>,
}

pub(crate) fn tensor_name(t: &TensorProto) -> String {
    t.name.clone().unwrap_or_default()
}

fn ext_err(t: &TensorProto, msg: impl Into<String>) -> Error {
    Error::External { name: tensor_name(t), msg: msg.into() }
}

pub(crate) fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(DataLocation::External as i32)
}

pub(crate) fn parse_ref(t: &TensorProto) -> Result<ExtRef, Error> {
    let get = |k: &str| t.external_data.iter().find(|e| e.key.as_deref() == Some(k)).and_then(|e| e.value.as_deref());
    let location = get("location").ok_or_else(|| ext_err(t, "has no 'location'"))?.to_string();
    let num = |k: &str| -> Result<Option<usize>, Error> {
        get(k).map(|v| v.parse::<usize>().map_err(|_| ext_err(t, format!("'{k}' is not a number: '{v}'")))).transpose()
    };
    if !is_inside(&location) {
        return Err(ext_err(t, format!("location '{location}' must be a relative path inside the model's folder")));
    }
    Ok(ExtRef { location, offset: num("offset")?.unwrap_or(0), length: num("length")? })
}

/// A side-file location must be a non-empty relative path that stays inside the model's folder.
pub(crate) fn is_inside(location: &str) -> bool {
    let p = Path::new(location);
    !location.is_empty()
        && !p.is_absolute()
        && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The packed bytes of a tensor held in typed fields (float_data, int32_data, ...), if it has at
/// least `threshold` of them; the typed fields are then cleared. Strings have no packed form.
fn take_typed(t: &mut TensorProto, threshold: usize) -> Option<Bytes> {
    let typed = crate::tensor::Tensor { proto: std::mem::take(t), external: None };
    let raw = typed.raw().ok().filter(|r| !r.is_empty() && r.len() >= threshold).map(|r| Bytes::from(r.into_owned()));
    *t = typed.proto;
    if raw.is_some() {
        t.float_data.clear();
        t.int32_data.clear();
        t.int64_data.clear();
        t.double_data.clear();
        t.uint64_data.clear();
    }
    raw
}

impl ExternalStore {
    pub fn new(base: &Path) -> ExternalStore {
        ExternalStore { base: base.to_path_buf(), files: BTreeMap::new() }
    }

    /// The bytes of an external tensor, mapping its side file on first use.
    pub(crate) fn resolve(&mut self, t: &TensorProto) -> Result<Bytes, Error> {
        let r = parse_ref(t)?;
        if !self.files.contains_key(&r.location) {
            let path = self.base.join(&r.location);
            let bytes = map_file(&path).map_err(|e| ext_err(t, format!("file '{}': {e}", path.display())))?;
            self.files.insert(r.location.clone(), bytes);
        }
        self.get(t, &r)
    }

    fn get(&self, t: &TensorProto, r: &ExtRef) -> Result<Bytes, Error> {
        let file = &self.files[&r.location];
        let end = match r.length {
            Some(len) => r.offset.checked_add(len),
            None => Some(file.len()),
        };
        match end {
            Some(end) if r.offset <= end && end <= file.len() => Ok(file.slice(r.offset..end)),
            _ => Err(ext_err(
                t,
                format!(
                    "offset {} + length {:?} is past the end of '{}' ({} bytes)",
                    r.offset,
                    r.length,
                    r.location,
                    file.len()
                ),
            )),
        }
    }

    /// Bytes of a tensor already resolved at load.
    pub(crate) fn lookup(&self, t: &TensorProto) -> Result<Bytes, Error> {
        let r = parse_ref(t)?;
        if !self.files.contains_key(&r.location) {
            return Err(ext_err(t, format!("file '{}' was not loaded", r.location)));
        }
        self.get(t, &r)
    }
}

/// Calls `f` on every TensorProto of a model: graph initializers and sparse initializers, tensor
/// attributes of every node (subgraphs included), function bodies and training info.
pub(crate) fn for_each_tensor(
    m: &mut ModelProto,
    f: &mut dyn FnMut(&mut TensorProto) -> Result<(), Error>,
) -> Result<(), Error> {
    if let Some(g) = m.graph.as_mut() {
        graph_tensors(g, f)?;
    }
    for func in &mut m.functions {
        nodes_tensors(&mut func.node, f)?;
    }
    for ti in &mut m.training_info {
        for g in [&mut ti.initialization, &mut ti.algorithm].into_iter().flatten() {
            graph_tensors(g, f)?;
        }
    }
    Ok(())
}

pub(crate) fn graph_tensors(
    g: &mut GraphProto,
    f: &mut dyn FnMut(&mut TensorProto) -> Result<(), Error>,
) -> Result<(), Error> {
    for t in &mut g.initializer {
        f(t)?;
    }
    for s in &mut g.sparse_initializer {
        for t in [&mut s.values, &mut s.indices].into_iter().flatten() {
            f(t)?;
        }
    }
    nodes_tensors(&mut g.node, f)
}

/// Whether attributes hold tensors or subgraphs: what external data could be read from or
/// placed into.
pub(crate) fn holds_tensors(attrs: &[AttributeProto]) -> bool {
    attrs.iter().any(|a| {
        a.t.is_some()
            || !a.tensors.is_empty()
            || a.sparse_tensor.is_some()
            || !a.sparse_tensors.is_empty()
            || a.g.is_some()
            || !a.graphs.is_empty()
    })
}

pub(crate) fn nodes_tensors(
    nodes: &mut [NodeProto],
    f: &mut dyn FnMut(&mut TensorProto) -> Result<(), Error>,
) -> Result<(), Error> {
    for n in nodes {
        for a in &mut n.attribute {
            for t in a.t.iter_mut().map(|t| &mut **t).chain(a.tensors.iter_mut()) {
                f(t)?;
            }
            for s in a.sparse_tensor.iter_mut().map(|s| &mut **s).chain(a.sparse_tensors.iter_mut()) {
                for t in [&mut s.values, &mut s.indices].into_iter().flatten() {
                    f(t)?;
                }
            }
            for g in a.g.iter_mut().map(|g| &mut **g).chain(a.graphs.iter_mut()) {
                graph_tensors(g, f)?;
            }
        }
    }
    Ok(())
}

/// Byte regions to write into side files: location → (offset → bytes).
#[derive(Default)]
pub(crate) struct Regions(pub BTreeMap<String, BTreeMap<usize, Bytes>>);

impl Regions {
    fn add(&mut self, t: &TensorProto, location: &str, offset: usize, bytes: Bytes) -> Result<(), Error> {
        let file = self.0.entry(location.to_string()).or_default();
        if let Some(prev) = file.get(&offset) {
            if *prev != bytes {
                return Err(ext_err(t, format!("overlaps another tensor at offset {offset} of '{location}'")));
            }
        }
        file.insert(offset, bytes);
        Ok(())
    }

    fn end_of(&self, location: &str) -> usize {
        self.0.get(location).and_then(|m| m.iter().next_back()).map(|(o, b)| o + b.len()).unwrap_or(0)
    }
}

fn set_external(t: &mut TensorProto, location: &str, offset: usize, len: usize) {
    let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    t.raw_data = None;
    t.external_data =
        vec![kv("location", location.into()), kv("offset", offset.to_string()), kv("length", len.to_string())];
    t.data_location = Some(DataLocation::External as i32);
}

/// Applies the external-data mode to every tensor of `m`, collecting the side-file regions to write.
pub(crate) fn place_tensors(m: &mut ModelProto, store: &ExternalStore, mode: &ExternalData) -> Result<Regions, Error> {
    if let ExternalData::File { location, .. } = mode {
        if !is_inside(location) {
            return Err(Error::OutputLocation { location: location.clone() });
        }
    }
    let mut regions = Regions::default();
    for_each_tensor(m, &mut |t| {
        match mode {
            ExternalData::Keep => {
                if is_external(t) {
                    let r = parse_ref(t)?;
                    regions.add(t, &r.location, r.offset, store.lookup(t)?)?;
                }
            }
            ExternalData::Inline => {
                if is_external(t) {
                    t.raw_data = Some(store.lookup(t)?);
                    t.external_data.clear();
                    t.data_location = None;
                }
            }
            ExternalData::File { location, threshold } => {
                let bytes = match (is_external(t), &t.raw_data) {
                    (true, _) => Some(store.lookup(t)?),
                    (false, Some(raw)) => Some(raw.clone()),
                    (false, None) => take_typed(t, *threshold),
                };
                match bytes {
                    Some(b) if b.len() >= *threshold => {
                        let offset = regions.end_of(location).next_multiple_of(4096);
                        set_external(t, location, offset, b.len());
                        regions.add(t, location, offset, b)?;
                    }
                    Some(b) if is_external(t) => {
                        t.raw_data = Some(b);
                        t.external_data.clear();
                        t.data_location = None;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    Ok(regions)
}
