//! `qdqc compile --keep-float`: the tensors `accuracy --layers` chooses, kept in float, buy
//! more accuracy than tensors picked at random; the edit is verified and refused when it names
//! nothing quantized.

mod common;

use common::{fixture, json, qdqc, stderr};
use std::path::Path;

/// Compiles `qdq` keeping `keep` in float (weights from `float`), verifying it on 4 samples, and
/// returns the compiled model's output SQNR against the float model on 16 samples.
fn sqnr_keeping(dir: &Path, qdq: &Path, float: &Path, keep: &[&str]) -> f64 {
    let out = dir.join("kept.onnx");
    let (q, f) = (qdq.to_str().unwrap(), float.to_str().unwrap());
    let mut args = vec!["compile", q, "-o", out.to_str().unwrap(), "--verify", "4"];
    let list = keep.join(",");
    if !keep.is_empty() {
        args.extend(["--keep-float", &list, "--float", f]);
    }
    let o = qdqc(&args);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{keep:?}: {}", stderr(&o));
    for k in keep {
        assert!(stdout.contains(&format!("keep-float: '{k}': ")), "{k} is reported:\n{stdout}");
    }
    if !keep.is_empty() {
        // Before the passes (which may quantize the tensor again where a later Q fixes the same
        // parameters), no QuantizeLinear reads the kept tensors.
        let edited = dir.join("edited.onnx");
        args[3] = edited.to_str().unwrap();
        args.extend(["--passes", "none"]);
        args.retain(|a| *a != "--verify" && *a != "4");
        assert_eq!(qdqc(&args).status.code(), Some(0));
        let shown = String::from_utf8_lossy(&qdqc(&["show", edited.to_str().unwrap()]).stdout).into_owned();
        for k in keep {
            assert!(!shown.contains(&format!("QuantizeLinear(%{k},")), "{k} is still quantized:\n{shown}");
        }
    }
    let report = dir.join("acc.json");
    let o = qdqc(&[
        "accuracy",
        q,
        out.to_str().unwrap(),
        "--float",
        f,
        "--samples",
        "16",
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    json(&report)["outputs"][0]["compiled"]["sqnr_db"].as_f64().unwrap()
}

#[test]
fn keeping_the_top_ranked_tensors_in_float_beats_random_choices() {
    let dir = tempfile::tempdir().unwrap();
    for model in ["mobilenet_block", "resnet_block"] {
        let (qdq, float) = (fixture(&format!("{model}.u8.pt.onnx")), fixture(&format!("{model}.float.onnx")));
        let report = dir.path().join("layers.json");
        let o = qdqc(&[
            "accuracy",
            qdq.to_str().unwrap(),
            "--float",
            float.to_str().unwrap(),
            "--samples",
            "16",
            "--layers",
            "--json",
            report.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let r = json(&report);
        let mut layers: Vec<(u64, String, bool)> = r["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["rank"].as_u64().unwrap(),
                    l["tensor"].as_str().unwrap().to_string(),
                    l["keep_float_gain_db"].is_number(),
                )
            })
            .collect();
        layers.sort();
        let candidates: Vec<&str> = layers.iter().filter(|l| l.2).map(|l| l.1.as_str()).collect();
        assert!(candidates.len() >= 6, "{r}");
        // The three the report chooses (greedily among the best-ranked), compiled and measured.
        let chosen: Vec<&str> =
            r["keep_float_check"]["top3"]["tensors"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        assert_eq!(chosen.len(), 3, "{r}");
        assert_eq!(chosen[0], candidates[0], "the first-ranked comes first");
        let base = sqnr_keeping(dir.path(), &qdq, &float, &[]);
        let top = sqnr_keeping(dir.path(), &qdq, &float, &chosen);
        // Five fixed "random" triples (a linear congruential sequence over the candidates).
        let mut x: usize = 12345;
        let mut others = Vec::new();
        for _ in 0..5 {
            let mut pick: Vec<&str> = Vec::new();
            while pick.len() < 3 {
                x = x.wrapping_mul(1103515245).wrapping_add(12345) % (1 << 31);
                let c = candidates[x % candidates.len()];
                if !pick.contains(&c) {
                    pick.push(c);
                }
            }
            others.push(sqnr_keeping(dir.path(), &qdq, &float, &pick));
        }
        let mean = others.iter().sum::<f64>() / others.len() as f64;
        assert!(top > base + 0.5, "{model}: keeping {chosen:?} in float: {top:.2} dB vs {base:.2}");
        assert!(top > mean, "{model}: top 3 {top:.2} dB, random triples {others:?}");
    }
}

#[test]
fn keep_float_keeps_the_saturation_the_quantizer_folded_in() {
    // onnxruntime's quantizer drops the Clip(0, 6) after bn_3 into its QuantizeLinear (uint8,
    // zero point 0, scale 6/255): keeping the tensor in float must keep the clamp.
    let dir = tempfile::tempdir().unwrap();
    let (qdq, float) = (fixture("mobilenet_block.u8.pt.onnx"), fixture("mobilenet_block.float.onnx"));
    let base = sqnr_keeping(dir.path(), &qdq, &float, &[]);
    let kept = sqnr_keeping(dir.path(), &qdq, &float, &["clip_3_out"]);
    assert!(kept > base, "{kept:.2} dB vs {base:.2}");
}

#[test]
fn keep_float_refuses_names_it_cannot_keep() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let qdq = fixture("resnet_block.u8.pt.onnx");
    for (name, needle) in [
        ("no_such_tensor", "no tensor or node has this name"),
        ("logits", "no QuantizeLinear reads it, so it is float already"),
    ] {
        let o = qdqc(&["compile", qdq.to_str().unwrap(), "-o", out.to_str().unwrap(), "--keep-float", name]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("--keep-float '{name}'")) && err.contains(needle), "{err}");
        assert!(!out.exists());
    }
}
