//! Rule families, one file each: a `rules()` table and a `pass()` that runs it with the greedy
//! driver.

pub mod bn_fold;
pub mod cleanup;
mod qparams;
