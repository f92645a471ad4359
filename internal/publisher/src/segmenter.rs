//! The HLS publisher's segmenter: the hub's reader items fed to the
//! sans-IO segmenter of `os-hls` (rules documented there).

use std::time::Instant;

use chrono::{DateTime, Utc};
use os_hub::Item;

pub use os_hls::Finished;

/// Adapter: hub [`Item`]s in, closed segments out.
#[derive(Debug)]
pub struct Segmenter(os_hls::Segmenter);

impl Segmenter {
    /// Segments of at least `target` seconds (cut at the next access point).
    pub fn new(target: f64) -> Self {
        Self(os_hls::Segmenter::new(target))
    }

    /// Chunks lost to lag, and how many lags.
    pub fn lost(&self) -> (u64, u64) {
        self.0.lost()
    }

    /// Feed one reader item; returns the segment it closed, if any.
    pub fn push(&mut self, item: Item, now: Instant, wall: DateTime<Utc>) -> Option<Finished> {
        self.0.push(input(item), now, wall)
    }
}

/// A hub reader item as segmenter input.
pub fn input(item: Item) -> os_hls::Input {
    match item {
        Item::Lagged { lost } => os_hls::Input::Lost { lost },
        Item::Chunk(c) => os_hls::Input::Chunk {
            data: c.data,
            access_point: c.access_point,
            discontinuity: c.discontinuity,
        },
    }
}
