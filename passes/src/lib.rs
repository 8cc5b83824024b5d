//! qdqc passes: the [`Pass`] trait, the [`PassManager`] that runs named pipelines and checks the
//! graph after every pass, and the passes themselves (one module each).

mod dce;

pub use dce::DeadCodeElimination;

use qdqc_ir::{Graph, GraphError};

/// A transformation of the graph. Returns how many changes it made (0 = nothing to do), which is
/// how the manager detects convergence (node counts would miss rewrites that keep the count).
pub trait Pass {
    /// The name used in `--passes`, remarks and diffs.
    fn name(&self) -> &'static str;
    fn run(&self, graph: &mut Graph) -> Result<usize, PassError>;
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("unknown pass '{name}' (known: {known})")]
    Unknown { name: String, known: String },
    #[error("after pass '{pass}': the graph is invalid: {error}")]
    Invalid { pass: &'static str, error: GraphError },
    #[error("pass '{pass}': {error}")]
    Failed { pass: &'static str, error: GraphError },
}

/// Every pass by name, in a stable order.
pub fn registry() -> Vec<Box<dyn Pass>> {
    vec![Box::new(DeadCodeElimination)]
}

/// The default pipeline (`-O2`). The fusion passes join it as they land.
pub const DEFAULT_PIPELINE: &[&str] = &["dce"];

/// What one pass did in a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassRun {
    pub pass: &'static str,
    pub changes: usize,
}

/// Runs a list of passes, verifying the graph after each one.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
}

impl PassManager {
    /// A pipeline from a comma-separated list of pass names; `none` (or an empty list) runs nothing.
    pub fn parse(spec: &str) -> Result<PassManager, PassError> {
        let names: Vec<&str> = spec.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "none").collect();
        PassManager::from_names(&names)
    }

    pub fn from_names(names: &[&str]) -> Result<PassManager, PassError> {
        let mut passes = Vec::new();
        for &name in names {
            let pass = registry().into_iter().find(|p| p.name() == name).ok_or_else(|| PassError::Unknown {
                name: name.to_string(),
                known: registry().iter().map(|p| p.name()).chain(["none"]).collect::<Vec<_>>().join(", "),
            })?;
            passes.push(pass);
        }
        Ok(PassManager { passes })
    }

    pub fn default_pipeline() -> PassManager {
        PassManager::from_names(DEFAULT_PIPELINE).expect("default pipeline names are registered")
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass once, in order, verifying after each.
    pub fn run(&self, graph: &mut Graph) -> Result<Vec<PassRun>, PassError> {
        let mut log = Vec::new();
        for pass in &self.passes {
            let changes = pass.run(graph)?;
            graph.verify().map_err(|error| PassError::Invalid { pass: pass.name(), error })?;
            log.push(PassRun { pass: pass.name(), changes });
        }
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_parse_and_reject_unknown_names() {
        assert!(PassManager::parse("none").unwrap().names().is_empty());
        assert!(PassManager::parse("").unwrap().names().is_empty());
        assert_eq!(PassManager::parse("dce").unwrap().names(), vec!["dce"]);
        let err = PassManager::parse("dce,fuse-everything").err().unwrap();
        assert_eq!(err.to_string(), "unknown pass 'fuse-everything' (known: dce, none)");
    }
}
