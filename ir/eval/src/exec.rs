//! The executor: runs nodes in topological order, looking each op up in the kernel table, and
//! frees every value after its last consumer ran (unless intermediates are kept).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use qdqc_ir::{ConstId, Dim, Graph, Node, NodeId, Operand, Outlet};

use crate::error::{EvalError, KernelError};
use crate::kernels::{Ctx, REGISTRY};
use crate::limits::{self, DEFAULT_MAX_TENSOR_BYTES};
use crate::value::Value;

/// Progress of a run, reported after each node.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// Nodes done so far (1-based) and in total.
    pub done: usize,
    pub total: usize,
    pub node: &'a Node,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(Progress<'_>) + Send + Sync>;

/// How to run a graph.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Keep every intermediate value (graph inputs and node outputs) in [`RunResult::values`],
    /// keyed by name. Otherwise each value is freed once its last consumer ran.
    pub keep_intermediates: bool,
    /// Keep these values (graph inputs and node outputs, by name) in [`RunResult::values`] even
    /// without `keep_intermediates` (e.g. the tensors a calibration observes).
    pub keep: Option<Arc<HashSet<String>>>,
    /// Called after every node (e.g. to drive a progress bar).
    pub progress: Option<ProgressFn>,
    /// Values to substitute, by name (teacher forcing): a node output whose name is here, with
    /// the same dtype and shape, is reported as computed, but its consumers read the forced value.
    /// With a reference run's values this measures each node's own error, not the error it
    /// inherits from the nodes before it.
    pub forced: Option<Arc<HashMap<String, Value>>>,
    /// The largest tensor a kernel may build, in bytes at 8 bytes per element (default
    /// [`DEFAULT_MAX_TENSOR_BYTES`]). A node whose output would be larger fails with an error
    /// naming it before anything is allocated.
    pub max_tensor_bytes: Option<usize>,
}

impl RunOptions {
    /// Options that keep every intermediate value.
    pub fn keep_all() -> RunOptions {
        RunOptions { keep_intermediates: true, ..Default::default() }
    }

    /// The per-tensor limit in bytes.
    pub fn limit(&self) -> usize {
        self.max_tensor_bytes.unwrap_or(DEFAULT_MAX_TENSOR_BYTES)
    }

    /// Whether the value named `name` is kept in [`RunResult::values`].
    fn keeps(&self, name: &str) -> bool {
        self.keep_intermediates || self.keep.as_ref().is_some_and(|k| k.contains(name))
    }

    /// Whether any value is kept.
    fn keeps_any(&self) -> bool {
        self.keep_intermediates || self.keep.as_ref().is_some_and(|k| !k.is_empty())
    }
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("keep_intermediates", &self.keep_intermediates)
            .field("keep", &self.keep.as_ref().map(|k| k.len()))
            .field("progress", &self.progress.is_some())
            .field("forced", &self.forced.as_ref().map(|f| f.len()))
            .field("max_tensor_bytes", &self.max_tensor_bytes)
            .finish()
    }
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    /// The graph outputs, in the graph's order, by name.
    pub outputs: Vec<(String, Value)>,
    /// With [`RunOptions::keep_intermediates`]: every graph input and node output by name
    /// (graph outputs included); with [`RunOptions::keep`]: those named there; otherwise empty.
    pub values: HashMap<String, Value>,
}

impl RunResult {
    /// A graph output by name.
    pub fn output(&self, name: &str) -> Option<&Value> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A graph prepared for running: topological order, liveness and decoded constants are computed
/// once, and nodes whose inputs are all constants (weight DequantizeLinear, shape arithmetic) are
/// evaluated once, so running many samples costs only the remaining kernels.
pub struct Interpreter<'g> {
    graph: &'g Graph,
    /// The nodes left to run, in topological order.
    order: Vec<NodeId>,
    consts: HashMap<ConstId, Result<Value, EvalError>>,
    /// Outputs of the nodes evaluated at preparation.
    folded: HashMap<Outlet, Value>,
    /// Defaults of graph inputs that have an initializer of the same name.
    input_defaults: HashMap<String, Value>,
    /// Index in `order` of each value's last consumer (`usize::MAX` for graph outputs).
    last_use: HashMap<Outlet, usize>,
}

impl<'g> Interpreter<'g> {
    /// Prepares `graph`. Fails on a cycle; constants that cannot be decoded fail the run that
    /// reads them.
    pub fn new(graph: &'g Graph) -> Result<Interpreter<'g>, EvalError> {
        Interpreter::with_limit(graph, DEFAULT_MAX_TENSOR_BYTES)
    }

    /// [`Interpreter::new`], folding constant nodes only while their outputs stay within
    /// `max_tensor_bytes` (larger ones run, and fail, at run time under the run's own limit).
    pub fn with_limit(graph: &'g Graph, max_tensor_bytes: usize) -> Result<Interpreter<'g>, EvalError> {
        let limit = max_tensor_bytes.min(FOLD_LIMIT * limits::BYTES_PER_ELEMENT);
        limits::with_limit(limit, || Interpreter::prepare(graph))
    }

    fn prepare(graph: &'g Graph) -> Result<Interpreter<'g>, EvalError> {
        let order = graph.topo_order()?;
        let mut consts = HashMap::new();
        let mut decode = |id: ConstId| {
            consts.entry(id).or_insert_with(|| {
                let c = graph.constant(id);
                let name = c.name.clone();
                match c.tensor() {
                    Some(t) => Value::from_tensor(t).map_err(|source| EvalError::Constant { name, source }),
                    None => Err(EvalError::Constant {
                        name,
                        source: crate::value::DataError::Npy("sparse constants are not supported".into()),
                    }),
                }
            });
        };
        for &id in &order {
            let n = graph.node(id);
            for op in n.inputs().iter().chain(n.captures()) {
                if let Operand::Const(c) = *op {
                    decode(c);
                }
            }
        }
        for out in graph.outputs() {
            if let Operand::Const(c) = out.operand {
                decode(c);
            }
        }
        // Evaluate the nodes that depend on constants only.
        let mut folded: HashMap<Outlet, Value> = HashMap::new();
        let mut remaining = Vec::with_capacity(order.len());
        for &id in &order {
            let n = graph.node(id);
            let constant = n.captures().is_empty()
                && n.inputs().iter().all(|op| match *op {
                    Operand::Value(o) => folded.contains_key(&o),
                    Operand::Const(c) => matches!(consts.get(&c), Some(Ok(_))),
                    Operand::None => true,
                });
            let outs = if constant {
                exec_node(graph, n, |op| match op {
                    Operand::Value(o) => folded.get(&o),
                    Operand::Const(c) => consts.get(&c).and_then(|r| r.as_ref().ok()),
                    Operand::None => None,
                })
                .ok()
                .filter(|outs| outs.iter().map(Value::len).sum::<usize>() <= FOLD_LIMIT)
            } else {
                None
            };
            match outs {
                Some(outs) => {
                    for (slot, v) in outs.into_iter().enumerate() {
                        if n.outputs.get(slot).is_some_and(|d| !d.name.is_empty()) {
                            folded.insert(Outlet::new(id, slot as u32), v);
                        }
                    }
                }
                // Not foldable, or failed: run it (and report any error) at run time.
                None => remaining.push(id),
            }
        }
        let order = remaining;
        let mut last_use = HashMap::new();
        for (i, &id) in order.iter().enumerate() {
            let n = graph.node(id);
            for op in n.inputs().iter().chain(n.captures()) {
                match *op {
                    Operand::Value(o) => {
                        last_use.insert(o, i);
                    }
                    Operand::Const(_) | Operand::None => {}
                }
            }
        }
        for out in graph.outputs() {
            if let Operand::Value(o) = out.operand {
                last_use.insert(o, usize::MAX);
            }
        }
        let mut input_defaults = HashMap::new();
        for (_, c) in graph.constants() {
            if c.origin == qdqc_ir::ConstOrigin::InputDefault {
                if let Some(Ok(v)) = c.tensor().map(Value::from_tensor) {
                    input_defaults.insert(c.name.clone(), v);
                }
            }
        }
        Ok(Interpreter { graph, order, consts, folded, input_defaults, last_use })
    }

    /// How many nodes were evaluated at preparation (their inputs are all constants).
    pub fn folded_nodes(&self) -> usize {
        self.graph.op_count() - self.order.len()
    }

    pub fn graph(&self) -> &'g Graph {
        self.graph
    }

    /// Runs the graph on `inputs` (by graph input name).
    pub fn run(&self, inputs: &[(String, Value)], opts: &RunOptions) -> Result<RunResult, EvalError> {
        limits::with_limit(opts.limit(), || self.run_limited(inputs, opts))
    }

    fn run_limited(&self, inputs: &[(String, Value)], opts: &RunOptions) -> Result<RunResult, EvalError> {
        let g = self.graph;
        let mut given: HashMap<&str, &Value> = HashMap::new();
        for (name, v) in inputs {
            given.insert(name.as_str(), v);
        }
        let mut env: HashMap<Outlet, Value> = HashMap::new();
        for &id in &g.inputs {
            let decl = &g.node(id).outputs[0];
            let name = decl.name.as_str();
            let v = match given.remove(name) {
                Some(v) => {
                    check_input(name, decl.ty.as_ref(), v)?;
                    v.clone()
                }
                None => self.input_defaults.get(name).cloned().ok_or_else(|| EvalError::MissingInput(name.into()))?,
            };
            env.insert(Outlet::new(id, 0), v);
        }
        if let Some(name) = given.keys().next() {
            return Err(EvalError::UnknownInput(name.to_string()));
        }
        let mut kept: HashMap<Outlet, Value> = HashMap::new();
        // What nodes whose output was forced computed themselves.
        let mut own: HashMap<Outlet, Value> = HashMap::new();
        let total = self.order.len();
        for (i, &id) in self.order.iter().enumerate() {
            let node = g.node(id);
            let outs = exec_node(g, node, |op| match op {
                Operand::Value(o) => env.get(&o).or_else(|| self.folded.get(&o)),
                Operand::Const(c) => self.consts.get(&c).and_then(|r| r.as_ref().ok()),
                Operand::None => None,
            })
            .map_err(|e| match e {
                // A constant that failed to decode: report its own error.
                EvalError::Kernel { ref msg, .. } if msg.starts_with(CONST_MISSING) => {
                    let name = &msg[CONST_MISSING.len()..];
                    g.constants().find(|(_, c)| c.name == name).and_then(|(id, _)| self.constant(id).err()).unwrap_or(e)
                }
                e => e,
            })?;
            let mut outs = outs.into_iter();
            for (slot, decl) in node.outputs.iter().enumerate() {
                let v = outs.next();
                if decl.name.is_empty() {
                    continue;
                }
                let o = Outlet::new(id, slot as u32);
                let Some(mut v) = v else {
                    return Err(EvalError::Kernel {
                        node: node.label(),
                        op: node.op.to_string(),
                        msg: format!("output {slot} ('{}') is not produced by the interpreter", decl.name),
                    });
                };
                let forced = opts.forced.as_ref().and_then(|f| f.get(&decl.name));
                if let Some(f) = forced.filter(|f| f.dtype() == v.dtype() && f.shape() == v.shape()) {
                    let computed = std::mem::replace(&mut v, f.clone());
                    if opts.keeps(&decl.name) || self.last_use.get(&o) == Some(&usize::MAX) {
                        own.insert(o, computed);
                    }
                }
                if self.last_use.contains_key(&o) {
                    env.insert(o, v);
                } else if opts.keeps(&decl.name) {
                    kept.insert(o, v);
                }
            }
            // Free the values whose last consumer this was.
            for op in node.inputs() {
                if let Operand::Value(o) = *op {
                    if self.last_use.get(&o) == Some(&i) {
                        if let Some(v) = env.remove(&o) {
                            if opts.keeps(&g.value(o).name) {
                                kept.insert(o, v);
                            }
                        }
                    }
                }
            }
            if let Some(p) = &opts.progress {
                p(Progress { done: i + 1, total, node });
            }
        }
        let mut outputs = Vec::with_capacity(g.outputs().len());
        for out in g.outputs() {
            let v = match out.operand {
                Operand::Value(o) => {
                    own.get(&o).or_else(|| env.get(&o)).or_else(|| self.folded.get(&o)).cloned().ok_or_else(|| {
                        EvalError::Kernel {
                            node: g.node(o.node).label(),
                            op: g.node(o.node).op.to_string(),
                            msg: format!("graph output '{}' was not computed", out.name()),
                        }
                    })?
                }
                Operand::Const(c) => self.constant(c)?.clone(),
                Operand::None => continue,
            };
            outputs.push((out.name().to_string(), v));
        }
        let mut values = HashMap::new();
        if opts.keeps_any() {
            for (o, v) in kept.into_iter().chain(env) {
                let name = &g.value(o).name;
                if opts.keeps(name) {
                    values.insert(name.clone(), v);
                }
            }
            for (o, v) in &self.folded {
                let name = &g.value(*o).name;
                if opts.keeps(name) {
                    values.insert(name.clone(), v.clone());
                }
            }
            for (o, v) in own {
                let name = &g.value(o).name;
                if opts.keeps(name) {
                    values.insert(name.clone(), v);
                }
            }
        }
        Ok(RunResult { outputs, values })
    }

    fn constant(&self, c: ConstId) -> Result<&Value, EvalError> {
        match self.consts.get(&c) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(e.clone()),
            None => unreachable!("constants are decoded in Interpreter::new"),
        }
    }
}

/// Outputs larger than this (elements) are not precomputed at preparation.
const FOLD_LIMIT: usize = 1 << 28;

const CONST_MISSING: &str = "constant input unavailable: ";

/// Runs one node: looks its op up in the kernel table and calls the kernel on its inputs.
fn exec_node<'a>(
    g: &Graph,
    node: &Node,
    lookup: impl Fn(Operand) -> Option<&'a Value>,
) -> Result<Vec<Value>, EvalError> {
    let unsupported = || EvalError::Unsupported { node: node.label(), op: node.op.to_string() };
    if !node.captures().is_empty() {
        return Err(unsupported());
    }
    let kernel = REGISTRY.get(&node.op).ok_or_else(unsupported)?;
    let kernel_err = |msg: String| EvalError::Kernel { node: node.label(), op: node.op.to_string(), msg };
    let mut args: Vec<Option<&Value>> = Vec::with_capacity(node.inputs().len());
    for &op in node.inputs() {
        args.push(match op {
            Operand::None => None,
            Operand::Value(o) => {
                Some(lookup(op).ok_or_else(|| kernel_err(format!("input '{}' was not computed", g.value(o).name)))?)
            }
            Operand::Const(c) => {
                Some(lookup(op).ok_or_else(|| kernel_err(format!("{CONST_MISSING}{}", g.constant(c).name)))?)
            }
        });
    }
    let domain = node.domain().unwrap_or("");
    let ctx = Ctx { node, inputs: &args, opset: g.opset_of(domain) };
    kernel(&ctx).map_err(|e| match e {
        KernelError::Invalid(msg) => kernel_err(msg),
        KernelError::Unsupported(feature) => {
            EvalError::UnsupportedFeature { node: node.label(), op: node.op.to_string(), feature }
        }
    })
}

/// Checks a given input against the declared element type and known dimensions.
fn check_input(name: &str, ty: Option<&qdqc_ir::TensorType>, v: &Value) -> Result<(), EvalError> {
    let Some(ty) = ty else { return Ok(()) };
    let mismatch = |expected: String| EvalError::InputMismatch {
        name: name.to_string(),
        expected,
        actual: format!("{}{:?}", v.dtype(), v.shape()),
    };
    if ty.dtype != v.dtype() {
        return Err(mismatch(format!("element type {}", ty.dtype)));
    }
    if let Some(shape) = &ty.shape {
        let ok = shape.len() == v.rank()
            && shape.iter().zip(v.shape()).all(|(d, &n)| !matches!(d, Dim::Known(k) if *k as usize != n));
        if !ok {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            return Err(mismatch(format!("shape [{}]", dims.join(","))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_values_feed_consumers_and_the_computed_ones_are_reported() {
        let g = qdqc_ir::text::parse(
            "graph {\n  input %x: f32[2]\n  %a: f32[2] = Relu(%x)\n  %b: f32[2] = Add(%a, %a)\n  output %b\n}\n",
        )
        .unwrap();
        let x = [("x".to_string(), Value::f32(&[2], vec![-1.0, 3.0]).unwrap())];
        let mut forced = HashMap::new();
        forced.insert("a".to_string(), Value::f32(&[2], vec![10.0, 20.0]).unwrap());
        // A forced value of another shape is ignored.
        forced.insert("x".to_string(), Value::f32(&[3], vec![0.0; 3]).unwrap());
        let opts = RunOptions { forced: Some(Arc::new(forced)), ..RunOptions::keep_all() };
        let r = Interpreter::new(&g).unwrap().run(&x, &opts).unwrap();
        assert_eq!(r.values["a"].to_f64_vec().unwrap(), [0.0, 3.0], "a as Relu computed it");
        assert_eq!(r.output("b").unwrap().to_f64_vec().unwrap(), [20.0, 40.0], "b from the forced a");
        let free = Interpreter::new(&g).unwrap().run(&x, &RunOptions::default()).unwrap();
        assert_eq!(free.output("b").unwrap().to_f64_vec().unwrap(), [0.0, 6.0]);
    }

    #[test]
    fn keep_holds_only_the_named_values() {
        let g = qdqc_ir::text::parse(
            "graph {\n  input %x: f32[2]\n  %a: f32[2] = Relu(%x)\n  %b: f32[2] = Neg(%a)\n  %c: f32[2] = Add(%b, %a)\n  output %c\n}\n",
        )
        .unwrap();
        let x = [("x".to_string(), Value::f32(&[2], vec![-1.0, 3.0]).unwrap())];
        let keep: HashSet<String> = ["x", "b", "c"].iter().map(|s| s.to_string()).collect();
        let opts = RunOptions { keep: Some(Arc::new(keep)), ..Default::default() };
        let r = Interpreter::new(&g).unwrap().run(&x, &opts).unwrap();
        let mut names: Vec<&str> = r.values.keys().map(|s| s.as_str()).collect();
        names.sort();
        assert_eq!(names, ["b", "c", "x"]);
        assert_eq!(r.values["b"].to_f64_vec().unwrap(), [0.0, -3.0]);
        assert_eq!(r.values["x"].to_f64_vec().unwrap(), [-1.0, 3.0]);
    }
}
