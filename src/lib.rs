//! Tollgate: an LLM API gateway on Pingora. The binary (`src/main.rs`) is a thin CLI over
//! this library, which integration tests and benchmarks reuse.

pub mod admin;
pub mod changes;
pub mod cli;
pub mod commands;
pub mod config;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod store;
pub mod usage;
