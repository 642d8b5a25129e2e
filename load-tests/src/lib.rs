//! Shared code of the load-test binaries.

pub mod passthrough;
