//! (being written)

use crate::rule::Rule;

/// The rule table.
pub fn rules() -> Vec<Rule> {
    vec![]
}
