//! `qdqc accuracy --html FILE`: the accuracy report as one self-contained HTML page (inline CSS
//! and SVG, no script, nothing fetched): per-output metrics, with `--layers` a chart of each
//! quantized tensor's accumulated and own SQNR in graph order and the table ranked by what
//! keeping each in float buys, and with a compiled model the op counts before and after.

use crate::accuracy::{fmt_db as db, AccuracyReport, LayerReport, Metrics};
use crate::stats::Stats;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.2}%", 100.0 * v))
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}.muted{color:#666}\
svg text{font:11px system-ui,sans-serif}";

/// [`accuracy_page`] for a report on files: with a compiled model, the op counts of the QDQ
/// model and the compiled one are read from `qdq` and `compiled`.
pub fn accuracy_page_files(
    r: &AccuracyReport,
    qdq: &std::path::Path,
    compiled: Option<&std::path::Path>,
    load: &qdqc_ir::onnx::LoadOptions,
) -> Result<String, crate::Error> {
    let ops = match compiled {
        Some(c) => Some((
            crate::stats::stats(&crate::load_with(qdq, load)?.graph),
            crate::stats::stats(&crate::load_with(c, load)?.graph),
        )),
        None => None,
    };
    Ok(accuracy_page(r, ops.as_ref().map(|(b, a)| (b, a))))
}

/// The page. `ops` is the op table of the QDQ model and of the compiled one, when given.
pub fn accuracy_page(r: &AccuracyReport, ops: Option<(&Stats, &Stats)>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>qdqc accuracy: {}</title>\
         <style>{STYLE}</style></head><body>\n<h1>Accuracy against the float model</h1>\n",
        esc(&r.qdq_model)
    );
    let _ = writeln!(
        h,
        "<p>QDQ model <code>{}</code>{}; reference <code>{}</code>; {} samples.</p>",
        esc(&r.qdq_model),
        r.compiled_model.as_deref().map_or(String::new(), |c| format!(", compiled model <code>{}</code>", esc(c))),
        esc(&r.float_model),
        r.samples
    );
    h += "<h2>Outputs</h2>\n<table><tr><th>output</th><th>model</th><th>SQNR dB</th><th>cosine</th>\
          <th>max |err|</th><th>mean |err|</th>";
    if r.topk {
        h += "<th>top-1</th><th>top-5</th>";
    }
    h += "</tr>\n";
    for o in &r.outputs {
        let rows: [(&str, Option<&Metrics>); 2] = [("QDQ", Some(&o.qdq)), ("compiled", o.compiled.as_ref())];
        for (what, m) in rows {
            let Some(m) = m else { continue };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{what}</td><td>{}</td><td>{:.6}</td><td>{:.4e}</td><td>{:.4e}</td>",
                esc(&o.name),
                db(m.sqnr_db),
                m.cosine,
                m.max_abs_error,
                m.mean_abs_error
            );
            if r.topk {
                let _ = write!(h, "<td>{}</td><td>{}</td>", pct(m.top1), pct(m.top5));
            }
            h += "</tr>\n";
        }
    }
    h += "</table>\n";
    if let Some(t) = &r.task {
        let _ = writeln!(
            h,
            "<h2>Task accuracy</h2>\n<p>{} labelled rows (<code>{}</code>): float {:.2}%, QDQ {:.2}%{}.</p>",
            t.rows,
            esc(&t.labels),
            100.0 * t.float,
            100.0 * t.qdq,
            t.compiled.map_or(String::new(), |c| format!(", compiled {:.2}%", 100.0 * c))
        );
    }
    if let Some(layers) = &r.layers {
        let compiled = r.compiled_model.is_some();
        h += "<h2>Quantized tensors in graph order</h2>\n<p class=\"muted\">Accumulated: the tensor in the \
              quantized run. Own: its op fed the float run's values, quantized as the model quantizes them \
              (the error it adds). Bars: what keeping it alone in float adds to the outputs' SQNR \
              (<code>compile --keep-float</code>).";
        if compiled {
            h += " Compiled: the integer tensor that stands for it in the compiled model's run, dequantized.";
        }
        h += "</p>\n";
        h += &chart(layers);
        h += "<h2>Ranked: the first tensors to keep in float</h2>\n<table><tr><th>rank</th><th>tensor</th>\
              <th>op</th><th>keep-float gain dB</th><th>own dB</th><th>accumulated dB</th>";
        h += if compiled { "<th>compiled dB</th></tr>\n" } else { "</tr>\n" };
        let mut ranked: Vec<&LayerReport> = layers.iter().collect();
        ranked.sort_by_key(|l| l.rank);
        for l in ranked {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                l.rank,
                esc(&l.tensor),
                esc(&l.op),
                l.keep_float_gain_db.map_or("–".into(), |g| format!("{g:+.2}")),
                db(l.own_db),
                db(l.accumulated_db)
            );
            if compiled {
                let _ = write!(h, "<td>{}</td>", l.compiled_db.map_or("–".into(), db));
            }
            h += "</tr>\n";
        }
        h += "</table>\n";
    }
    if let Some(c) = &r.keep_float_check {
        h += "<h2>Keeping three tensors in float</h2>\n<p class=\"muted\">Output SQNR against the float model \
              (all outputs pooled) with three tensors kept in float together: the first-ranked, then each next \
              one among the 8 best-ranked that gives the highest SQNR with those before it; and with three \
              triples drawn at random (fixed seed).</p>\n<table><tr><th>kept in float</th><th>SQNR dB</th></tr>\n";
        let _ = writeln!(h, "<tr><td>none</td><td>{}</td></tr>", db(c.base_db));
        let _ =
            writeln!(h, "<tr><th>chosen: {}</th><th>{}</th></tr>", esc(&c.top3.tensors.join(", ")), db(c.top3.sqnr_db));
        for k in &c.random3 {
            let _ = writeln!(h, "<tr><td>random: {}</td><td>{}</td></tr>", esc(&k.tensors.join(", ")), db(k.sqnr_db));
        }
        h += "</table>\n";
    }
    if let Some((before, after)) = ops {
        h += "<h2>Ops: QDQ model and compiled model</h2>\n<table><tr><th>op</th><th>QDQ</th><th>compiled</th></tr>\n";
        let names: std::collections::BTreeSet<&String> = before.ops.keys().chain(after.ops.keys()).collect();
        for n in names {
            let (b, a) = (before.ops.get(n).copied().unwrap_or(0), after.ops.get(n).copied().unwrap_or(0));
            let _ = writeln!(h, "<tr><td>{}</td><td>{b}</td><td>{a}</td></tr>", esc(n));
        }
        let rows = [
            ("nodes", before.nodes, after.nodes),
            ("float compute ops", before.float_compute, after.float_compute),
            ("integer compute ops", before.integer_compute, after.integer_compute),
        ];
        for (n, b, a) in rows {
            let _ = writeln!(h, "<tr><th>{n}</th><th>{b}</th><th>{a}</th></tr>");
        }
        h += "</table>\n";
    }
    h += "<p class=\"muted\">Written by qdqc accuracy --html.</p>\n</body></html>\n";
    h
}

/// An SVG chart: accumulated and own SQNR (lines, left axis) and the keep-float gain (bars,
/// right axis) per quantized tensor, in graph order. Infinite values are drawn at the top.
fn chart(layers: &[LayerReport]) -> String {
    let (w, h, left, right, top, bottom) = (1100.0, 420.0, 60.0, 60.0, 20.0, 150.0);
    let n = layers.len().max(1) as f64;
    let finite = |v: f64| v.is_finite().then_some(v);
    let vals: Vec<f64> = layers
        .iter()
        .flat_map(|l| [Some(l.accumulated_db), Some(l.own_db), l.compiled_db])
        .flatten()
        .filter_map(finite)
        .collect();
    let (mut lo, mut hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    lo = (lo / 5.0).floor() * 5.0;
    hi = ((hi / 5.0).ceil() * 5.0).max(lo + 5.0);
    let gmax = layers.iter().filter_map(|l| l.keep_float_gain_db.and_then(finite)).fold(0.0f64, |a, g| a.max(g.abs()));
    let gmax = if gmax > 0.0 { gmax } else { 1.0 };
    let plot_h = h - top - bottom;
    let x = |i: usize| left + (i as f64 + 0.5) * (w - left - right) / n;
    let y = |v: f64| {
        let v = if v.is_infinite() && v > 0.0 { hi } else { v.clamp(lo, hi) };
        top + plot_h * (1.0 - (v - lo) / (hi - lo))
    };
    let zero = top + plot_h / 2.0;
    let yg = |g: f64| zero - (g / gmax) * (plot_h / 2.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" \
         aria-label=\"SQNR per quantized tensor\">\n<rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
    );
    // Grid and left axis (dB).
    let mut t = lo;
    while t <= hi + 1e-9 {
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/><text x=\"{}\" y=\"{:.1}\" \
             text-anchor=\"end\">{t:.0}</text>",
            w - right,
            left - 6.0,
            y(t) + 4.0,
            y = y(t)
        );
        t += 5.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">SQNR against float (dB)</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    // Right axis (gain).
    for g in [-gmax, 0.0, gmax] {
        let _ = writeln!(s, "<text x=\"{}\" y=\"{:.1}\">{g:+.2}</text>", w - right + 6.0, yg(g) + 4.0);
    }
    let _ = writeln!(
        s,
        "<text x=\"{x}\" y=\"{:.1}\" transform=\"rotate(90 {x} {:.1})\" text-anchor=\"middle\">keep-float gain (dB)</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        x = w - 12.0
    );
    // Gain bars.
    let bw = ((w - left - right) / n * 0.6).max(1.0);
    for (i, l) in layers.iter().enumerate() {
        if let Some(g) = l.keep_float_gain_db.and_then(finite) {
            let (y0, y1) = (yg(g.max(0.0)), yg(g.min(0.0)));
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{y0:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{}\" opacity=\"0.45\"><title>{}: {g:+.2} dB</title></rect>",
                x(i) - bw / 2.0,
                (y1 - y0).max(0.5),
                if g >= 0.0 { "#2a9d4b" } else { "#c0392b" },
                esc(&l.tensor)
            );
        }
    }
    // Lines: accumulated, own, and the compiled model's (dashed; broken where it has no tensor).
    type Series = (fn(&LayerReport) -> Option<f64>, &'static str, &'static str, &'static str);
    let series: [Series; 3] = [
        (|l| Some(l.accumulated_db), "#1f5fbf", "accumulated", ""),
        (|l| Some(l.own_db), "#e07b00", "own", ""),
        (|l| l.compiled_db, "#6a3d9a", "compiled", " stroke-dasharray=\"5 3\""),
    ];
    for (value, color, label, dash) in series {
        // One line per run of consecutive layers that have a value (a lone point is its circle).
        let pts: Vec<Option<String>> =
            layers.iter().enumerate().map(|(i, l)| Some(format!("{:.1},{:.1}", x(i), y(value(l)?)))).collect();
        for run in pts.split(Option::is_none).filter(|r| r.len() >= 2) {
            let run: Vec<&str> = run.iter().flatten().map(String::as_str).collect();
            let _ = writeln!(
                s,
                "<polyline class=\"{label}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                run.join(" ")
            );
        }
        for (i, l) in layers.iter().enumerate() {
            let Some(v) = value(l) else { continue };
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"><title>{} ({label}): {} dB</title></circle>",
                x(i),
                y(v),
                esc(&l.tensor),
                db(v)
            );
        }
    }
    // Tensor names under the axis.
    for (i, l) in layers.iter().enumerate() {
        let (tx, ty) = (x(i), h - bottom + 10.0);
        let _ = writeln!(
            s,
            "<text x=\"{tx:.1}\" y=\"{ty:.1}\" transform=\"rotate(60 {tx:.1} {ty:.1})\">{}</text>",
            esc(&l.tensor)
        );
    }
    // Legend.
    let ly = top + 4.0;
    let _ = writeln!(
        s,
        "<rect x=\"{}\" y=\"{ly}\" width=\"12\" height=\"3\" fill=\"#1f5fbf\"/><text x=\"{}\" y=\"{}\">accumulated</text>\
         <rect x=\"{}\" y=\"{ly}\" width=\"12\" height=\"3\" fill=\"#e07b00\"/><text x=\"{}\" y=\"{}\">own</text>\
         <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"9\" fill=\"#2a9d4b\" opacity=\"0.45\"/><text x=\"{}\" y=\"{}\">keep-float gain</text>",
        left + 10.0,
        left + 26.0,
        ly + 5.0,
        left + 110.0,
        left + 126.0,
        ly + 5.0,
        left + 170.0,
        ly - 3.0,
        left + 186.0,
        ly + 5.0
    );
    if layers.iter().any(|l| l.compiled_db.is_some()) {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{ly}\" width=\"12\" height=\"3\" fill=\"#6a3d9a\"/><text x=\"{}\" y=\"{}\">compiled</text>",
            left + 300.0,
            left + 316.0,
            ly + 5.0
        );
    }
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn a_series_breaks_where_a_layer_has_no_value() {
        let layer = |i: usize, compiled: Option<f64>| LayerReport {
            tensor: format!("t{i}"),
            op: "Conv".into(),
            elements: 1,
            accumulated_db: 30.0,
            own_db: 40.0,
            compiled_db: compiled,
            keep_float_gain_db: None,
            rank: i + 1,
        };
        let c = [Some(30.0), Some(31.0), None, Some(29.0), None, Some(28.0), Some(27.0), Some(26.0)];
        let layers: Vec<LayerReport> = c.iter().enumerate().map(|(i, &v)| layer(i, v)).collect();
        let svg = chart(&layers);
        let lines = |class: &str| -> Vec<usize> {
            svg.split(&format!("<polyline class=\"{class}\""))
                .skip(1)
                .map(|l| l.split("points=\"").nth(1).unwrap().split('"').next().unwrap().split(' ').count())
                .collect()
        };
        // Runs of 2 and 3 layers; the lone layer 3 is a point only.
        assert_eq!(lines("compiled"), [2, 3]);
        assert_eq!(svg.matches("(compiled): ").count(), 6);
        assert_eq!(lines("accumulated"), [8]);
    }
}
