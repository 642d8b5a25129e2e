//! Usage recording: the sink the metering filter writes to, the background writer that
//! batches events into the store (on PostgreSQL through a local spool and its shipper),
//! and token estimates.

pub mod estimate;
pub mod recorder;
pub mod shipper;
pub mod spend;
pub mod spool;

pub use estimate::Estimator;
pub use recorder::{UsageRecorder, UsageWriter};

/// How much Tollgate's background work (the usage writer's batches, a tokenizer build)
/// yields to the proxy: a nice value, so that it never holds up a request on a shared
/// core; it still gets its share under full load (nice 10 is ~10% of a contended core,
/// the writer needs ~4%).
const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_NICE`], once per
/// thread. Linux applies `setpriority` to a single thread when given its thread id.
pub(crate) fn lower_this_threads_priority() {
    thread_local!(static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if DONE.with(|d| d.replace(true)) {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE)
    {
        log::debug!("could not lower a background thread's priority: {e}");
    }
}
