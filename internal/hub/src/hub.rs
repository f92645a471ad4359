//! The registry of buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::buffer::{Buffer, DEFAULT_MAX_BYTES};
use crate::stats::BufferStats;

/// All buffers of the process, by id (`<code>`, `$raw$<code>`,
/// `$r$<code>$track_N`, or any other string).
#[derive(Debug)]
pub struct Hub {
    /// Buffers by id. The hub holds one `Arc` per buffer; writers and
    /// readers hold their own, so a removed buffer lives until they let go.
    buffers: Mutex<HashMap<String, Arc<Buffer>>>,
    /// Byte budget of every buffer it creates (`buffer.max_bytes`).
    max_bytes: u64,
}

impl Default for Hub {
    fn default() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub whose buffers keep at most `max_bytes` beyond their GOP cache.
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self {
            buffers: Mutex::new(HashMap::new()),
            max_bytes,
        }
    }

    /// The buffer `id`, created with `capacity` chunks (`buffer.capacity`)
    /// if it does not exist. An existing buffer keeps its capacity.
    pub fn get_or_create(&self, id: &str, capacity: usize) -> Arc<Buffer> {
        let mut map = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(b) = map.get(id) {
            return Arc::clone(b);
        }
        let b = Arc::new(Buffer::with_max_bytes(id, capacity, self.max_bytes));
        map.insert(id.to_owned(), Arc::clone(&b));
        tracing::debug!(buffer = id, capacity, "buffer created");
        b
    }

    /// The buffer `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<Arc<Buffer>> {
        self.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Remove and close the buffer `id`: its readers drain what is left and
    /// then get `Closed`; its writers get `Closed`.
    pub fn remove(&self, id: &str) -> Option<Arc<Buffer>> {
        let b = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)?;
        b.close();
        tracing::debug!(buffer = id, "buffer removed");
        Some(b)
    }

    /// Ids of all buffers, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Stats of every buffer, sorted by id.
    pub fn stats(&self) -> Vec<BufferStats> {
        let buffers: Vec<Arc<Buffer>> = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut out: Vec<BufferStats> = buffers.iter().map(|b| b.stats()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
