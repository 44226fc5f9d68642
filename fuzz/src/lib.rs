//! The fuzz target bodies live in `targets.rs` so that the bounded CI run
//! (`crates/osprofiler/tests/hostile_input.rs`) includes the very same file.

pub mod targets;
