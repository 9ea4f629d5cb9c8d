//! What the bench targets share: each includes this directory as `mod common` with
//! `#[path = "../common/mod.rs"]`, and uses the parts it needs.

pub mod ab;
pub mod cli;
pub mod floor;
pub mod forms;
pub mod instructions;
pub mod latency;
pub mod load;
pub mod procs;
pub mod report;
pub mod setup;
