//! Tollgate: an LLM API gateway on Pingora. The binary (`src/main.rs`) is a thin CLI over
//! this library, which integration tests and benchmarks reuse.

pub mod admin;
pub mod background;
pub mod cli;
pub mod commands;
pub mod config;
pub mod health;
pub mod keycache;
pub mod keyring;
pub mod metrics;
pub mod notify;
pub mod provider_key_cache;
pub mod proxy;
pub mod reload;
pub mod secrets;
pub mod server;
pub mod store;
pub mod usage;
