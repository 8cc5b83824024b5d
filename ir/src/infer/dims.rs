//! Dimension arithmetic shared by the op families: checked, and symbol-aware where it is cheap.

use crate::graph::Dim;

/// Results of op inference: the error is the message of a `GraphError::Node`.
pub(crate) type R<T> = Result<T, String>;

/// `axis` normalized into `0..rank` (ONNX's `[-rank, rank-1]`).
pub(crate) fn axis(axis: i64, rank: usize, what: &str) -> R<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(format!("{what} {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// `axis` normalized into `0..=rank` (Flatten's `[-rank, rank]`).
pub(crate) fn axis_incl(axis: i64, rank: usize, what: &str) -> R<usize> {
    let r = rank as i64;
    if axis < -r || axis > r {
        return Err(format!("{what} {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Normalizes a list of axes, rejecting duplicates.
pub(crate) fn axes(list: &[i64], rank: usize, what: &str) -> R<Vec<usize>> {
    let mut seen = vec![false; rank];
    let mut out = Vec::with_capacity(list.len());
    for &a in list {
        let a = axis(a, rank, what)?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("{what} {a} is repeated in {list:?}"));
        }
        out.push(a);
    }
    Ok(out)
}

pub(crate) fn overflow(what: &str) -> String {
    format!("{what} overflows 64 bits")
}

/// `a * b`; known sizes multiply (checked), `1` is neutral, anything else is unknown.
pub(crate) fn mul(a: &Dim, b: &Dim) -> R<Dim> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => Dim::Known(x.checked_mul(*y).ok_or_else(|| overflow("dimension"))?),
        (Dim::Known(0), _) | (_, Dim::Known(0)) => Dim::Known(0),
        (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
        _ => Dim::Unknown,
    })
}

/// One dimension of a multidirectional (numpy) broadcast.
pub(crate) fn broadcast_dim(a: &Dim, b: &Dim) -> R<Dim> {
    Ok(match (a, b) {
        (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
        (Dim::Known(x), Dim::Known(y)) if x == y => Dim::Known(*x),
        (Dim::Known(x), Dim::Known(y)) => return Err(format!("cannot broadcast dimension {x} with {y}")),
        (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(*x),
        (Dim::Sym(x), Dim::Sym(y)) if x == y => Dim::Sym(x.clone()),
        _ => Dim::Unknown,
    })
}

/// Multidirectional broadcast of several shapes (right-aligned).
pub(crate) fn broadcast(shapes: &[&[Dim]]) -> R<Vec<Dim>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![Dim::Known(1); rank];
    for s in shapes {
        for (o, d) in out[rank - s.len()..].iter_mut().zip(s.iter()) {
            // A dim broadcast with itself is itself: only a different one is worked out (and copied).
            if o != d {
                *o = broadcast_dim(o, d).map_err(|e| format!("{e} (shapes {})", show_shapes(shapes)))?;
            }
        }
    }
    Ok(out)
}

fn show_shapes(shapes: &[&[Dim]]) -> String {
    let s: Vec<String> =
        shapes.iter().map(|s| format!("[{}]", s.iter().map(Dim::to_string).collect::<Vec<_>>().join(","))).collect();
    s.join(" and ")
}

/// Two descriptions of a dimension that must be equal (e.g. Concat's non-axis dims);
/// `None` when both are known and differ.
pub(crate) fn unify(a: &Dim, b: &Dim) -> Option<Dim> {
    crate::infer::merge_dim(a, b)
}

/// A product of dims: the known factor, the symbols (sorted), and whether an unknown dim is in it.
#[derive(Debug, PartialEq)]
pub(crate) struct Product<'a> {
    pub known: i64,
    pub syms: Vec<&'a str>,
    pub unknown: bool,
}

pub(crate) fn product<'a>(dims: impl IntoIterator<Item = &'a Dim>) -> R<Product<'a>> {
    let mut p = Product { known: 1, syms: vec![], unknown: false };
    for d in dims {
        match d {
            Dim::Known(v) => p.known = p.known.checked_mul(*v).ok_or_else(|| overflow("element count"))?,
            Dim::Sym(s) => p.syms.push(s),
            Dim::Unknown => p.unknown = true,
        }
    }
    p.syms.sort_unstable();
    Ok(p)
}

impl Product<'_> {
    /// The product as one dim: known, a lone symbol, or unknown. A zero factor makes it zero.
    pub fn dim(&self) -> Dim {
        match (self.known, self.unknown, self.syms.as_slice()) {
            (0, _, _) => Dim::Known(0),
            (k, false, []) => Dim::Known(k),
            (1, false, [s]) => Dim::Sym(s.to_string()),
            _ => Dim::Unknown,
        }
    }
}

/// The dimension `d` such that `whole = part * d`, when the products determine it:
/// `Ok(None)` when they do not, an error when they cannot be equal.
pub(crate) fn quotient(whole: &Product, part: &Product) -> R<Option<Dim>> {
    if whole.unknown || part.unknown {
        return Ok(None);
    }
    let mut rest: Vec<&str> = whole.syms.clone();
    for s in &part.syms {
        match rest.iter().position(|r| r == s) {
            Some(i) => {
                rest.remove(i);
            }
            None => return Ok(None),
        }
    }
    if part.known == 0 {
        return Ok(None);
    }
    match rest.as_slice() {
        [] => {
            if whole.known % part.known != 0 {
                return Err(format!("{} elements cannot be split into parts of {}", whole.known, part.known));
            }
            Ok(Some(Dim::Known(whole.known / part.known)))
        }
        [s] if whole.known == part.known => Ok(Some(Dim::Sym(s.to_string()))),
        _ => Ok(None),
    }
}

/// Whether two products are surely different (same symbols, different known factors).
pub(crate) fn surely_differ(a: &Product, b: &Product) -> bool {
    !a.unknown && !b.unknown && a.syms == b.syms && a.known != b.known
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }

    #[test]
    fn broadcasting_dims() {
        let k = Dim::Known;
        assert_eq!(broadcast_dim(&k(1), &sym("N")).unwrap(), sym("N"));
        assert_eq!(broadcast_dim(&k(5), &sym("N")).unwrap(), k(5));
        assert_eq!(broadcast_dim(&sym("N"), &sym("N")).unwrap(), sym("N"));
        assert_eq!(broadcast_dim(&sym("N"), &sym("M")).unwrap(), Dim::Unknown);
        assert!(broadcast_dim(&k(2), &k(3)).is_err());
        let a = [sym("N"), k(3), k(1)];
        let b = [k(4)];
        assert_eq!(broadcast(&[&a, &b]).unwrap(), vec![sym("N"), k(3), k(4)]);
        assert_eq!(broadcast(&[]).unwrap(), vec![]);
    }

    #[test]
    fn products_and_quotients() {
        let k = Dim::Known;
        let whole = [sym("N"), k(16), k(1), k(1)];
        let part = [k(16)];
        let (w, p) = (product(&whole).unwrap(), product(&part).unwrap());
        assert_eq!(quotient(&w, &p).unwrap(), Some(sym("N")));
        let w2 = [k(6), k(4)];
        assert_eq!(quotient(&product(&w2).unwrap(), &product(&[k(8)]).unwrap()).unwrap(), Some(k(3)));
        assert!(quotient(&product(&w2).unwrap(), &product(&[k(5)]).unwrap()).is_err());
        assert_eq!(quotient(&product(&[sym("N")]).unwrap(), &product(&[sym("M")]).unwrap()).unwrap(), None);
        assert!(product(&[k(1 << 62), k(4)]).is_err());
        assert!(mul(&k(1 << 62), &k(4)).is_err());
        assert_eq!(product(&[sym("N"), k(1)]).unwrap().dim(), sym("N"));
    }

    #[test]
    fn axes_are_checked() {
        assert_eq!(axis(-1, 4, "axis").unwrap(), 3);
        assert!(axis(4, 4, "axis").is_err());
        assert!(axis(i64::MIN, 4, "axis").is_err());
        assert_eq!(axis_incl(4, 4, "axis").unwrap(), 4);
        assert!(axes(&[1, -3], 4, "axis").is_err());
    }
}
