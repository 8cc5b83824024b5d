//! Input samples read from files, shared by `qdqc verify --inputs` and `qdqc accuracy --inputs`,
//! and the checks that a sample fits a model.
//!
//! A folder holds samples in one of two layouts:
//! - `.npz` files (numpy's `np.savez` / `np.savez_compressed`: a zip of `NAME.npy` members,
//!   stored or deflated), one sample each, keyed by input name, in file name order;
//! - `NAME.npy` files, one sample, or subfolders of such files, one sample each (in folder name
//!   order).

use crate::verify::Inputs;
use crate::Error;
use qdqc_eval::Value;
use qdqc_ir::{ConstOrigin, Dim, Graph};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One input sample and where each of its values came from (a `.npy` file, or the `.npz` file
/// holding it).
#[derive(Clone, Debug)]
pub struct Sample {
    /// The sample's file (`.npz`) or folder.
    pub path: PathBuf,
    /// Values by input name, in the order read.
    pub inputs: Inputs,
    /// The file each value was read from (same order as `inputs`).
    pub files: Vec<PathBuf>,
}

/// The largest `.npy` member read from an `.npz` file, in bytes (the interpreter's default
/// per-tensor limit plus room for a header).
const MAX_MEMBER_BYTES: u64 = qdqc_eval::DEFAULT_MAX_TENSOR_BYTES as u64 + (1 << 16);

fn file_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::File { path: path.to_path_buf(), msg: msg.into() }
}

fn io_msg(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => e.to_string(),
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let err = |e: std::io::Error| file_err(dir, io_msg(&e));
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(err)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>().map_err(err)?;
    entries.sort();
    Ok(entries)
}

fn has_ext(p: &Path, ext: &str) -> bool {
    p.extension().is_some_and(|e| e == ext) && p.is_file()
}

/// Reads the samples in `dir` (see the module documentation). A folder with no sample, a
/// sample with no value, or a folder that mixes `.npz` files with `.npy` files or subfolders is
/// an error naming the folder.
pub fn read_dir(dir: &Path) -> Result<Vec<Sample>, Error> {
    if !dir.is_dir() {
        return Err(file_err(dir, if dir.exists() { "is not a folder" } else { "no such folder" }));
    }
    let entries = sorted_entries(dir)?;
    let npz: Vec<&PathBuf> = entries.iter().filter(|p| has_ext(p, "npz")).collect();
    let npy = entries.iter().any(|p| has_ext(p, "npy"));
    let subdirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    let samples = if !npz.is_empty() {
        if npy || !subdirs.is_empty() {
            return Err(file_err(dir, "holds .npz files and also .npy files or subfolders; use one layout"));
        }
        npz.into_iter().map(|p| read_npz(p)).collect::<Result<Vec<_>, _>>()?
    } else if !subdirs.is_empty() {
        if npy {
            return Err(file_err(dir, "holds .npy files and also subfolders; use one layout"));
        }
        subdirs.into_iter().map(|d| read_npy_folder(d)).collect::<Result<Vec<_>, _>>()?
    } else {
        vec![read_npy_folder(dir)?]
    };
    if samples.len() == 1 && samples[0].inputs.is_empty() && samples[0].path == dir {
        return Err(file_err(dir, "holds no input samples (.npz files, NAME.npy files or subfolders of them)"));
    }
    if let Some(s) = samples.iter().find(|s| s.inputs.is_empty()) {
        return Err(file_err(&s.path, "holds no input arrays"));
    }
    Ok(samples)
}

/// A folder of `NAME.npy` files as one sample.
fn read_npy_folder(dir: &Path) -> Result<Sample, Error> {
    let files: Vec<PathBuf> = sorted_entries(dir)?.into_iter().filter(|p| has_ext(p, "npy")).collect();
    let mut inputs = Vec::with_capacity(files.len());
    for p in &files {
        let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        inputs.push((name, crate::read_npy(p)?));
    }
    Ok(Sample { path: dir.to_path_buf(), inputs, files })
}

/// Reads one `.npz` file (a zip of `NAME.npy` members, stored or deflated) as one sample.
pub fn read_npz(path: &Path) -> Result<Sample, Error> {
    let file = std::fs::File::open(path).map_err(|e| file_err(path, io_msg(&e)))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| file_err(path, format!("not an .npz file: {e}")))?;
    let mut inputs: Inputs = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).map_err(|e| file_err(path, format!("member {i}: {e}")))?;
        if member.is_dir() {
            continue;
        }
        let member_name = member.name().to_string();
        let Some(name) = member_name.strip_suffix(".npy") else {
            return Err(file_err(path, format!("member '{member_name}' is not a .npy array")));
        };
        if inputs.iter().any(|(n, _)| n == name) {
            return Err(file_err(path, format!("holds '{name}' twice")));
        }
        let member_err = |msg: String| file_err(path, format!("member '{member_name}': {msg}"));
        if member.size() > MAX_MEMBER_BYTES {
            return Err(member_err(format!("{} bytes is more than the limit of {MAX_MEMBER_BYTES}", member.size())));
        }
        let mut bytes = Vec::with_capacity(member.size() as usize);
        (&mut member).take(MAX_MEMBER_BYTES + 1).read_to_end(&mut bytes).map_err(|e| member_err(e.to_string()))?;
        if bytes.len() as u64 > MAX_MEMBER_BYTES {
            return Err(member_err(format!("more than the limit of {MAX_MEMBER_BYTES} bytes")));
        }
        let value = Value::from_npy(&bytes).map_err(|e| member_err(e.to_string()))?;
        inputs.push((name.to_string(), value));
    }
    let files = vec![path.to_path_buf(); inputs.len()];
    Ok(Sample { path: path.to_path_buf(), inputs, files })
}

/// Checks that `sample` fits `graph`'s inputs: every name is a graph input, every input without a
/// default (an initializer of the same name) is given, dtypes equal the declared ones, shapes
/// have the declared rank and known dims, and float values are finite. The error names the file
/// the offending value came from.
pub fn check_sample(graph: &Graph, sample: &Sample) -> Result<(), Error> {
    let declared: Vec<(&str, Option<&qdqc_ir::TensorType>)> = graph
        .inputs
        .iter()
        .map(|&id| {
            let v = &graph.node(id).outputs[0];
            (v.name.as_str(), v.ty.as_ref())
        })
        .collect();
    let defaults: Vec<&str> = graph
        .constants()
        .filter(|(_, c)| c.origin == ConstOrigin::InputDefault)
        .map(|(_, c)| c.name.as_str())
        .collect();
    let names = || declared.iter().map(|(n, _)| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    for ((name, value), file) in sample.inputs.iter().zip(&sample.files) {
        let err = |msg: String| Error::Mismatch { path: file.clone(), msg: format!("input '{name}': {msg}") };
        let Some((_, ty)) = declared.iter().find(|(n, _)| n == name) else {
            return Err(err(format!("the model has no such input (its inputs: {})", names())));
        };
        let Some(ty) = ty else { continue };
        if value.dtype() != ty.dtype {
            return Err(err(format!("is {}, the model takes {}", value.dtype(), ty.dtype)));
        }
        if let Some(dims) = &ty.shape {
            let fits = dims.len() == value.rank()
                && dims.iter().zip(value.shape()).all(|(d, &s)| !matches!(d, Dim::Known(k) if *k != s as i64));
            if !fits {
                return Err(err(format!("has shape {:?}, the model takes {}", value.shape(), shape_text(dims))));
            }
        }
        if value.dtype().is_float() {
            let data = value.to_f64_vec().map_err(|e| err(e.to_string()))?;
            if let Some(i) = data.iter().position(|x| !x.is_finite()) {
                return Err(err(format!("element {i} is {} (inputs must be finite)", data[i])));
            }
        }
    }
    for (name, _) in &declared {
        if !sample.inputs.iter().any(|(n, _)| n == name) && !defaults.contains(name) {
            return Err(Error::Mismatch {
                path: sample.path.clone(),
                msg: format!("input '{name}' of the model is missing"),
            });
        }
    }
    Ok(())
}

/// A shape as `[N, 3, 32, 32]`.
pub fn shape_text(dims: &[Dim]) -> String {
    let d: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Known(k) => k.to_string(),
            Dim::Sym(s) => s.clone(),
            Dim::Unknown => "?".into(),
        })
        .collect();
    format!("[{}]", d.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn npy(shape: &[usize], data: Vec<f32>) -> Vec<u8> {
        Value::f32(shape, data).unwrap().to_npy().unwrap()
    }

    fn write_npz(path: &Path, members: &[(&str, Vec<u8>)], method: zip::CompressionMethod) {
        let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in members {
            w.start_file(format!("{name}.npy"), opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap();
    }

    const GRAPH: &str = "graph {\n  input %x: f32[N, 4]\n  %y = Relu(%x)\n  output %y\n}\n";

    #[test]
    fn npz_files_stored_and_deflated_are_one_sample_each() {
        let dir = tempfile::tempdir().unwrap();
        let x = npy(&[1, 4], vec![1.0, -2.0, 3.0, 4.5]);
        write_npz(&dir.path().join("a.npz"), &[("x", x.clone())], zip::CompressionMethod::Stored);
        write_npz(&dir.path().join("b.npz"), &[("x", x)], zip::CompressionMethod::Deflated);
        let samples = read_dir(dir.path()).unwrap();
        assert_eq!(samples.len(), 2);
        for s in &samples {
            assert_eq!(s.inputs[0].0, "x");
            assert_eq!(s.inputs[0].1.to_f64_vec().unwrap(), vec![1.0, -2.0, 3.0, 4.5]);
            check_sample(&qdqc_ir::text::parse(GRAPH).unwrap(), s).unwrap();
        }
        assert!(samples[0].path.ends_with("a.npz"));
    }

    #[test]
    fn npy_folders_are_one_sample_or_one_per_subfolder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.npy"), npy(&[2, 4], vec![0.5; 8])).unwrap();
        assert_eq!(read_dir(dir.path()).unwrap().len(), 1);
        let dir = tempfile::tempdir().unwrap();
        for s in ["s0", "s1", "s2"] {
            std::fs::create_dir(dir.path().join(s)).unwrap();
            std::fs::write(dir.path().join(s).join("x.npy"), npy(&[1, 4], vec![0.5; 4])).unwrap();
        }
        let samples = read_dir(dir.path()).unwrap();
        assert_eq!(samples.len(), 3);
        assert!(samples[2].files[0].ends_with("s2/x.npy"));
    }

    #[test]
    fn empty_mixed_and_bad_folders_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("holds no input samples"), "{e}");
        std::fs::write(dir.path().join("x.npy"), npy(&[1, 4], vec![0.0; 4])).unwrap();
        write_npz(&dir.path().join("a.npz"), &[("x", npy(&[1, 4], vec![0.0; 4]))], zip::CompressionMethod::Stored);
        let e = read_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("one layout"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.npz"), b"not a zip").unwrap();
        let e = read_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("bad.npz") && e.contains("not an .npz file"), "{e}");
    }

    #[test]
    fn samples_that_do_not_fit_the_model_are_refused_naming_the_input() {
        let g = qdqc_ir::text::parse(GRAPH).unwrap();
        let sample = |name: &str, v: Value| Sample {
            path: "s.npz".into(),
            inputs: vec![(name.to_string(), v)],
            files: vec!["s.npz".into()],
        };
        let check = |s: Sample| check_sample(&g, &s).unwrap_err().to_string();
        let e = check(sample("z", Value::f32(&[1, 4], vec![0.0; 4]).unwrap()));
        assert!(e.contains("input 'z'") && e.contains("no such input") && e.contains("'x'"), "{e}");
        let e = check(sample("x", Value::f32(&[1, 5], vec![0.0; 5]).unwrap()));
        assert!(e.contains("shape [1, 5]") && e.contains("[N, 4]"), "{e}");
        let e = check(sample("x", Value::from_i64(qdqc_ir::DType::I64, &[1, 4], &[0; 4]).unwrap()));
        assert!(e.contains("is int64") || e.contains("is i64"), "{e}");
        let e = check(sample("x", Value::f32(&[1, 4], vec![0.0, f32::NAN, 0.0, 0.0]).unwrap()));
        assert!(e.contains("element 1 is NaN"), "{e}");
        let e = check(Sample { path: "s.npz".into(), inputs: vec![], files: vec![] });
        assert!(e.contains("input 'x' of the model is missing"), "{e}");
    }
}
