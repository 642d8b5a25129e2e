//! A value that can be replaced while requests read it: the one swap point for config
//! that reloads (routes, aliases, upstreams, prices).

use std::sync::{Arc, PoisonError, RwLock};

/// Readers get the current `Arc<T>` (an O(1) clone under a read lock, never held across
/// an .await); a reload replaces it whole, so a request sees one consistent version.
#[derive(Debug)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    pub fn new(value: T) -> Self {
        Live(RwLock::new(Arc::new(value)))
    }

    pub fn load(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_keeps_its_version_and_the_next_load_sees_the_new_one() {
        let live = Live::new(1);
        let old = live.load();
        live.store(Arc::new(2));
        assert_eq!((*old, *live.load()), (1, 2));
    }
}
