//! Tests of patterns, matching, patches and rule sets.

use super::*;
use qdqc_ir::text::parse;
use qdqc_ir::{Op, Operand};

#[test]
fn patterns_parse_and_print_back() {
    let text = "(QuantizeLinear (DequantizeLinear ?q ?s1 ?z1) ?s2 ?z2)";
    let p = Pattern::parse(text).unwrap();
    assert_eq!(p.to_string(), text);
    assert_eq!(p.root_op(), Some(&Op::QuantizeLinear));
    assert_eq!(Pattern::parse("  (Identity\n ?x ) ").unwrap().to_string(), "(Identity ?x)");
    let err = |t: &str| Pattern::parse(t).unwrap_err().msg;
    assert_eq!(err("?x"), "the root must be an op application, not a variable");
    assert_eq!(err("(Frobnicate ?x)"), "unknown op `Frobnicate`");
    assert_eq!(err("(Relu ?x"), "missing `)`");
    assert_eq!(err("(Relu ?x))"), "unexpected `)` after the pattern");
    assert_eq!(err("(Relu x)"), "expected `(` or a `?variable`, found `x`");
    assert_eq!(err("(?x)"), "expected an op name after `(`, found `?x`");
    assert_eq!(err(""), "unexpected end of the pattern");
}

const G: &str = r#"graph "g" opset(ai.onnx=17) {
  input %x: f32[4]
  const %s: f32[] 0.5
  const %z: u8[] 128
  %q = QuantizeLinear(%x, %s, %z)
  %d = DequantizeLinear(%q, %s, %z)
  %r = QuantizeLinear(%d, %s)
  %y = Add(%x, %x)
  output %r
  output %y
}
"#;

#[test]
fn matcher_follows_producers_and_binds_operands() {
    let g = parse(G).unwrap();
    let node = |name: &str| match g.lookup(name) {
        Some(Operand::Value(o)) => o.node,
        _ => panic!(),
    };
    let p = Pattern::parse("(QuantizeLinear (DequantizeLinear ?q ?s1 ?z1) ?s2 ?z2)").unwrap();
    let m = match_at(&g, &p, node("r")).unwrap();
    assert_eq!(m.nodes(), [node("r"), node("d")]);
    assert_eq!(m.get("q"), g.lookup("q").unwrap());
    assert_eq!(m.get("s1"), g.lookup("s").unwrap());
    assert_eq!(m.get("z2"), Operand::None, "an omitted input binds None");
    assert!(!m.interior_used_elsewhere(&g));
    assert!(match_at(&g, &p, node("q")).is_none(), "input of q is not produced by a DQ");
    // A repeated variable must bind the same operand.
    let same = Pattern::parse("(Add ?a ?a)").unwrap();
    assert!(match_at(&g, &same, node("y")).is_some());
    let two = Pattern::parse("(QuantizeLinear (DequantizeLinear ?q ?s ?z) ?s ?z)").unwrap();
    assert!(match_at(&g, &two, node("r")).is_none(), "z is bound to %z, then to nothing");
    // Extra non-omitted inputs do not match a shorter pattern.
    assert!(match_at(&g, &Pattern::parse("(Add ?a)").unwrap(), node("y")).is_none());
}

#[test]
fn ops_the_ir_does_not_model_match_by_name() {
    let p = Pattern::parse("(ArgMax (DequantizeLinear ?x ?s ?z))").unwrap();
    assert_eq!(p.root_op(), Some(&Op::other("", "ArgMax")));
    let text = |domain: &str| {
        format!(
            "graph \"g\" opset(ai.onnx=17) {{\n  input %x: u8[4]\n  const %s: f32[] 0.5\n  const %z: u8[] 128\n  \
             %d = DequantizeLinear(%x, %s, %z)\n  %i = {domain}ArgMax(%d)\n  %j = ArgMin(%d)\n  output %i\n  output %j\n}}\n"
        )
    };
    for domain in ["", "ai.onnx."] {
        let g = parse(&text(domain)).unwrap();
        let node = |name: &str| match g.lookup(name) {
            Some(Operand::Value(o)) => o.node,
            _ => panic!(),
        };
        assert!(match_at(&g, &p, node("i")).is_some(), "{domain}ArgMax");
        assert!(match_at(&g, &p, node("j")).is_none(), "ArgMin is another op");
    }
}

#[test]
fn a_patch_that_fails_its_check_changes_nothing() {
    let mut g = parse(G).unwrap();
    let before = qdqc_ir::text::print(&g);
    let Some(Operand::Value(r)) = g.lookup("r") else { panic!() };
    let Some(Operand::Value(x)) = g.lookup("x") else { panic!() };
    let mut p = Patch::new();
    p.replace(r, Operand::Value(x));
    p.remove(r.node);
    let err = p.apply(&mut g).unwrap_err();
    assert_eq!(err, Refusal::new("'r' is a graph output and 'x' cannot take its name"));
    assert_eq!(qdqc_ir::text::print(&g), before);
}

#[test]
fn named_nodes_and_lists_bind() {
    let g = parse(G).unwrap();
    let node = |name: &str| match g.lookup(name) {
        Some(Operand::Value(o)) => o.node,
        _ => panic!(),
    };
    let p = Pattern::parse("(QuantizeLinear@q (DequantizeLinear@dq ?x ?s...) ?rest...)").unwrap();
    assert_eq!(p.to_string(), "(QuantizeLinear@q (DequantizeLinear@dq ?x ?s...) ?rest...)");
    let m = match_at(&g, &p, node("r")).unwrap();
    assert_eq!((m.node("q"), m.node("dq")), (node("r"), node("d")));
    assert_eq!(m.list("rest"), [g.lookup("s").unwrap()], "the Q's scale; its zero point is omitted");
    // A list binds every remaining input, however many.
    let concat = parse("graph {\n  input %a: f32[1]\n  %c = Concat[axis=0](%a, %a, %a, %a)\n  output %c\n}\n").unwrap();
    let Some(Operand::Value(c)) = concat.lookup("c") else { panic!() };
    let pattern = Pattern::parse("(Concat ?first ?more...)").unwrap();
    let m = match_at(&concat, &pattern, c.node).unwrap();
    assert_eq!(m.list("more").len(), 3);
    let err = |t: &str| Pattern::parse(t).unwrap_err().msg;
    assert_eq!(err("(Concat ?xs... ?y)"), "a `?rest...` argument must be the last");
    assert_eq!(err("(Relu@ ?x)"), "`Relu@`: a node name after `@` is missing");
    assert_eq!(Pattern::parse("(Relu (Conv ?x ?w) )").unwrap().depth(), 2);
}

fn refuse_all(_: &Graph, _: &Match) -> Result<(), Refusal> {
    Err(Refusal::new("refused"))
}

fn pass_all(_: &Graph, _: &Match) -> Result<(), Refusal> {
    Ok(())
}

fn remove_root(_: &Graph, m: &Match, (): ()) -> Result<Patch, Refusal> {
    let mut p = Patch::new();
    p.remove(m.root());
    Ok(p)
}

/// A rule gives way where a rule it defers to matches around it (here: the Q above its root)
/// and passes its check; not where that rule's check refuses.
#[test]
fn a_rule_gives_way_where_the_rule_it_defers_to_would_fire() {
    let g = parse(G).unwrap();
    let Some(Operand::Value(d)) = g.lookup("d") else { panic!() };
    for (check, gives_way) in [(pass_all as fn(&Graph, &Match) -> Result<(), Refusal>, true), (refuse_all, false)] {
        let set = RuleSet::new(vec![
            Rule::new("inner", "(DequantizeLinear ?q ?s ?z)", pass_all, remove_root).defers_to(&["outer"]),
            Rule::new("outer", "(QuantizeLinear (DequantizeLinear ?q ?s1 ?z1) ?s2 ?z2)", check, remove_root),
        ]);
        let r = set.try_at(0, &g, d.node).expect("inner matches");
        assert_eq!(matches!(r, Err(Refusal::NotApplicable)), gives_way, "{r:?}");
    }
}

#[test]
#[should_panic(expected = "defers to an unknown rule")]
fn deferring_to_an_unknown_rule_is_a_table_bug() {
    RuleSet::new(vec![Rule::new("a", "(Relu ?x)", pass_all, remove_root).defers_to(&["b"])]);
}
