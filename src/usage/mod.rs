//! Usage recording: the sink the metering filter writes to, the background writer that
//! batches events into SQLite, and token estimates.

pub mod estimate;
pub mod recorder;
pub mod spend;

pub use estimate::Estimator;
pub use recorder::{UsageRecorder, UsageWriter};
