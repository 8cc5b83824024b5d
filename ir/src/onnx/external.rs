//! External data: tensors whose bytes live in side files (`location`/`offset`/`length`).
//! Side files are memory-mapped once each and tensors are zero-copy slices of the mapping.

use super::Error;
use crate::proto::tensor_proto::DataLocation;
use crate::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

/// Where [`super::save`] puts tensor data. Side files are always written next to the output,
/// under the output's file name: `OUT.onnx` gets `OUT.onnx.data`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ExternalData {
    /// As read: tensors that were external stay external, at their offsets, in the output's side
    /// file (several input side files follow one another at 4096-aligned starts); the others
    /// stay inline.
    #[default]
    Keep,
    /// Every tensor inline (`raw_data`); fails past protobuf's 2 GiB limit.
    Inline,
    /// Every tensor of at least `threshold` bytes into the output's side file, at 4096-aligned
    /// offsets.
    File { threshold: usize },
}

/// How [`super::load_with`] reads a model's files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Read external data through symlinks that lead outside the model's folder (model caches
    /// that link each file into a blob store). Off by default: a model's folder is the boundary
    /// of what it may read.
    pub follow_symlinks: bool,
}

/// The identity of a file on disk (device and inode on Unix, the canonical path elsewhere): two
/// paths name the same file when their keys are equal, through hard links and symlinks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileKey(#[cfg(unix)] (u64, u64), #[cfg(not(unix))] PathBuf);

impl FileKey {
    /// The key of the file at `path`, if it exists.
    pub fn of(path: &Path) -> Option<FileKey> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileKey((meta.dev(), meta.ino())))
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            std::fs::canonicalize(path).ok().map(FileKey)
        }
    }
}

/// The side files of a loaded model, by location, and the files the model was read from.
#[derive(Clone, Debug, Default)]
pub struct ExternalStore {
    base: PathBuf,
    files: BTreeMap<String, Bytes>,
    follow_symlinks: bool,
    /// Every file the model was read from: the model file itself and each side file.
    sources: Vec<(PathBuf, FileKey)>,
}

/// Opens `path` for reading if it is a regular file; directories, FIFOs, sockets and devices are
/// refused before they are opened (opening a FIFO waits for a writer).
fn open_regular(path: &Path) -> Result<File, Error> {
    let not_regular = |what: &str| Error::Io(std::io::Error::other(format!("is {what}, not a regular file")));
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(not_regular("a directory"));
    }
    if !meta.is_file() {
        return Err(not_regular("a FIFO, socket or device"));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // A file swapped for a FIFO after the check above must not block the open either.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular("no longer a regular file"));
    }
    Ok(file)
}

/// Maps a whole regular file read-only. An empty file maps to an empty buffer.
pub(crate) fn map_file(path: &Path) -> Result<Bytes, Error> {
    let file = open_regular(path)?;
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
        ExternalStore::with_options(base, &LoadOptions::default())
    }

    pub fn with_options(base: &Path, opts: &LoadOptions) -> ExternalStore {
        ExternalStore {
            base: base.to_path_buf(),
            files: BTreeMap::new(),
            follow_symlinks: opts.follow_symlinks,
            sources: Vec::new(),
        }
    }

    /// Records the model file itself as one of the model's sources.
    pub(crate) fn add_source(&mut self, path: &Path) {
        if let Some(key) = FileKey::of(path) {
            self.sources.push((path.to_path_buf(), key));
        }
    }

    /// The files the model was read from (the model file, when loaded from one, and every side
    /// file), with their identities: what a save must never write over.
    pub fn sources(&self) -> &[(PathBuf, FileKey)] {
        &self.sources
    }

    /// The bytes of an external tensor, mapping its side file on first use.
    pub(crate) fn resolve(&mut self, t: &TensorProto) -> Result<Bytes, Error> {
        let r = parse_ref(t)?;
        if !self.files.contains_key(&r.location) {
            let path = self.base.join(&r.location);
            let file_err = |e: Error| ext_err(t, format!("file '{}': {}", path.display(), e));
            if !self.follow_symlinks {
                self.check_inside(&path).map_err(|msg| ext_err(t, msg))?;
            }
            let bytes = map_file(&path).map_err(file_err)?;
            if let Some(key) = FileKey::of(&path) {
                self.sources.push((path.clone(), key));
            }
            self.files.insert(r.location.clone(), bytes);
        }
        self.get(t, &r)
    }

    /// A side file must resolve, through any symlinks, to a file inside the model's folder.
    fn check_inside(&self, path: &Path) -> Result<(), String> {
        let base = if self.base.as_os_str().is_empty() { Path::new(".") } else { &self.base };
        let (Ok(base), Ok(real)) = (std::fs::canonicalize(base), std::fs::canonicalize(path)) else {
            return Ok(()); // a missing file is reported by the read that follows
        };
        if real.starts_with(&base) {
            return Ok(());
        }
        Err(format!(
            "file '{}' leads outside the model's folder (to '{}') through a symlink; \
             use --follow-symlinks to read it (model caches that link into a blob store)",
            path.display(),
            real.display()
        ))
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
                match r.length {
                    Some(len) => format!(
                        "offset {} + length {len} is past the end of '{}' ({} bytes)",
                        r.offset,
                        r.location,
                        file.len()
                    ),
                    None => format!("offset {} is past the end of '{}' ({} bytes)", r.offset, r.location, file.len()),
                },
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

/// Byte regions to write into the side file: offset → bytes. Regions may overlap only where
/// they hold the same bytes (two tensors of one input side file sharing bytes).
#[derive(Default)]
pub(crate) struct Regions(pub BTreeMap<usize, Bytes>);

impl Regions {
    fn add(&mut self, offset: usize, bytes: Bytes) {
        let slot = self.0.entry(offset).or_default();
        if bytes.len() > slot.len() {
            *slot = bytes;
        }
    }

    fn end(&self) -> usize {
        self.0.iter().map(|(o, b)| o + b.len()).max().unwrap_or(0)
    }
}

fn set_external(t: &mut TensorProto, location: &str, offset: usize, len: usize) {
    let kv = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    t.raw_data = None;
    t.external_data =
        vec![kv("location", location.into()), kv("offset", offset.to_string()), kv("length", len.to_string())];
    t.data_location = Some(DataLocation::External as i32);
}

/// Points an external tensor at `location`/`offset`/`length`, keeping its other entries
/// (`checksum`, …) and their order.
fn update_ref(t: &mut TensorProto, location: &str, offset: usize, len: usize) {
    for (key, value) in
        [("location", location.to_string()), ("offset", offset.to_string()), ("length", len.to_string())]
    {
        match t.external_data.iter_mut().find(|e| e.key.as_deref() == Some(key)) {
            Some(e) => e.value = Some(value),
            None => t.external_data.push(StringStringEntryProto { key: Some(key.into()), value: Some(value) }),
        }
    }
}

fn set_inline(t: &mut TensorProto, bytes: Bytes) {
    t.raw_data = Some(bytes);
    t.external_data.clear();
    t.data_location = None;
}

/// Applies the external-data mode to every tensor of `m`, placing external bytes in one side file
/// named `location`, and returns the regions to write into it.
pub(crate) fn place_tensors(
    m: &mut ModelProto,
    store: &ExternalStore,
    mode: &ExternalData,
    location: &str,
) -> Result<Regions, Error> {
    if !is_inside(location) {
        return Err(Error::OutputLocation { location: location.to_string() });
    }
    // Keep: each input side file the model still reads starts where the previous one ended.
    let mut starts: BTreeMap<String, usize> = BTreeMap::new();
    if *mode == ExternalData::Keep {
        for_each_tensor(m, &mut |t| {
            if is_external(t) {
                starts.insert(parse_ref(t)?.location, 0);
            }
            Ok(())
        })?;
        let mut end = 0usize;
        for (loc, start) in &mut starts {
            *start = end.next_multiple_of(4096);
            end = *start + store.files.get(loc).map_or(0, Bytes::len);
        }
    }
    let mut regions = Regions::default();
    for_each_tensor(m, &mut |t| {
        match mode {
            ExternalData::Keep => {
                if is_external(t) {
                    let r = parse_ref(t)?;
                    let bytes = store.lookup(t)?;
                    let offset = starts[&r.location] + r.offset;
                    if offset != r.offset || r.location != location || r.length.is_none() {
                        update_ref(t, location, offset, bytes.len());
                    }
                    regions.add(offset, bytes);
                }
            }
            ExternalData::Inline => {
                if is_external(t) {
                    set_inline(t, store.lookup(t)?);
                }
            }
            ExternalData::File { threshold } => {
                let bytes = match (is_external(t), &t.raw_data) {
                    (true, _) => Some(store.lookup(t)?),
                    (false, Some(raw)) => Some(raw.clone()),
                    (false, None) => take_typed(t, *threshold),
                };
                match bytes {
                    Some(b) if b.len() >= *threshold => {
                        let offset = regions.end().next_multiple_of(4096);
                        set_external(t, location, offset, b.len());
                        regions.add(offset, b);
                    }
                    Some(b) if is_external(t) => set_inline(t, b),
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    Ok(regions)
}
