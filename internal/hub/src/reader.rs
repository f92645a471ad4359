//! Readers: independent cursors over a buffer's ring.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::buffer::{Buffer, NONE};
use crate::stats::ReaderStats;
use crate::{Chunk, Closed, Item, TryRecvError};

/// Counters of one reader, shared with the buffer's stats snapshot. Only the
/// reader writes them (plain stores of its own totals).
#[derive(Debug)]
pub(crate) struct ReaderCounters {
    name: String,
    delivered: AtomicU64,
    lost: AtomicU64,
    lag_events: AtomicU64,
    cursor: AtomicU64,
}

impl ReaderCounters {
    pub(crate) fn new(name: String) -> Self {
        Self {
            name,
            delivered: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            lag_events: AtomicU64::new(0),
            cursor: AtomicU64::new(0),
        }
    }

    pub(crate) fn snapshot(&self, head: u64) -> ReaderStats {
        let cursor = self.cursor.load(Ordering::Relaxed);
        ReaderStats {
            name: self.name.clone(),
            delivered: self.delivered.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            lag_events: self.lag_events.load(Ordering::Relaxed),
            behind: head.saturating_sub(cursor),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In step: the next chunk is `cursor`.
    Live,
    /// Looking for an access point from `cursor` on; `lost_from` is the
    /// sequence number of the first chunk this reader missed (a lag), or
    /// `NONE` for a fresh join.
    Seeking { lost_from: u64 },
}

/// One subscriber of a [`Buffer`]. Reads chunks in sequence order; never
/// slows the writer down. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Reader {
    /// The buffer read from; keeps it alive while this reader exists.
    buf: Arc<Buffer>,
    id: u64,
    /// Shared with the buffer's registry for stats; dropped (and removed
    /// from the registry) with the reader.
    counters: Arc<ReaderCounters>,
    cursor: u64,
    mode: Mode,
    raw: bool,
    /// The chunk to deliver right after a `Lagged` notice.
    pending: Option<Chunk>,
    delivered: u64,
    lost: u64,
    lag_events: u64,
}

impl Reader {
    pub(crate) fn new(
        buf: Arc<Buffer>,
        id: u64,
        counters: Arc<ReaderCounters>,
        start: u64,
        raw: bool,
    ) -> Self {
        counters.cursor.store(start, Ordering::Relaxed);
        Self {
            buf,
            id,
            counters,
            cursor: start,
            mode: if raw {
                Mode::Live
            } else {
                Mode::Seeking { lost_from: NONE }
            },
            raw,
            pending: None,
            delivered: 0,
            lost: 0,
            lag_events: 0,
        }
    }

    /// The buffer this reader reads.
    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buf
    }

    /// Sequence number of the next chunk this reader will look at.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Chunks lost to lag so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The next item, waiting for the writer when there is none.
    /// `Err(Closed)` once the buffer is closed and everything readable has
    /// been read. Cancel safe.
    pub async fn recv(&mut self) -> Result<Item, Closed> {
        loop {
            match self.try_recv() {
                Ok(item) => return Ok(item),
                Err(TryRecvError::Closed) => return Err(Closed),
                Err(TryRecvError::Empty) => {}
            }
            // Slow path only: register for the wakeup, then check again so a
            // write between the first check and the registration is not missed.
            let buf = Arc::clone(&self.buf);
            let notified = buf.notify().notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match self.try_recv() {
                Ok(item) => return Ok(item),
                Err(TryRecvError::Closed) => return Err(Closed),
                Err(TryRecvError::Empty) => notified.await,
            }
        }
    }

    /// The next item if one is ready.
    pub fn try_recv(&mut self) -> Result<Item, TryRecvError> {
        if let Some(chunk) = self.pending.take() {
            return Ok(self.deliver(chunk));
        }
        loop {
            let closed = self.buf.is_closed();
            let head = self.buf.head();
            if self.cursor >= head {
                self.counters.cursor.store(self.cursor, Ordering::Relaxed);
                return Err(if closed {
                    TryRecvError::Closed
                } else {
                    TryRecvError::Empty
                });
            }
            let oldest = self.buf.oldest(head);
            if self.cursor < oldest {
                if let Some(lost) = self.overrun(oldest) {
                    return Ok(Item::Lagged { lost });
                }
                continue;
            }
            let Some(slot) = self.buf.slot(self.cursor) else {
                return Err(TryRecvError::Closed);
            };
            let got = {
                let s = slot
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if s.seq == self.cursor && !s.evicted {
                    match self.mode {
                        Mode::Live => Slot::Chunk(s.to_chunk(false)),
                        Mode::Seeking { .. } if s.access_point => Slot::Chunk(s.to_chunk(true)),
                        Mode::Seeking { .. } => Slot::Skip,
                    }
                } else if s.seq == NONE || s.seq < self.cursor {
                    // Not written yet (cannot happen with cursor < head).
                    Slot::NotYet
                } else {
                    // Overwritten, or released for the byte budget, between
                    // the check above and the lock.
                    Slot::Gone
                }
            };
            match got {
                Slot::Chunk(chunk) => {
                    self.cursor += 1;
                    if let Mode::Seeking { lost_from } = self.mode {
                        self.mode = Mode::Live;
                        if lost_from != NONE {
                            let lost = chunk.seq - lost_from;
                            self.lost += lost;
                            self.counters.lost.store(self.lost, Ordering::Relaxed);
                            self.buf.counters.dropped.fetch_add(lost, Ordering::Relaxed);
                            self.pending = Some(chunk);
                            return Ok(Item::Lagged { lost });
                        }
                    }
                    return Ok(self.deliver(chunk));
                }
                Slot::Skip => self.cursor += 1,
                Slot::NotYet => return Err(TryRecvError::Empty),
                Slot::Gone => {
                    let oldest = self.buf.oldest(self.buf.head());
                    if let Some(lost) = self.overrun(oldest.max(self.cursor + 1)) {
                        return Ok(Item::Lagged { lost });
                    }
                }
            }
        }
    }

    /// The cursor fell out of the ring; continue from `oldest`. A raw
    /// reader gets the loss reported at once (`Some(lost)`); an
    /// access-point reader reports it when it resumes.
    fn overrun(&mut self, oldest: u64) -> Option<u64> {
        let mut report = None;
        match self.mode {
            // Live, or a fresh reader overrun before its first chunk.
            Mode::Live | Mode::Seeking { lost_from: NONE } => {
                self.lag_events += 1;
                self.counters
                    .lag_events
                    .store(self.lag_events, Ordering::Relaxed);
                self.buf.counters.lag_events.fetch_add(1, Ordering::Relaxed);
                if self.raw {
                    let lost = oldest - self.cursor;
                    self.lost += lost;
                    self.counters.lost.store(self.lost, Ordering::Relaxed);
                    self.buf.counters.dropped.fetch_add(lost, Ordering::Relaxed);
                    report = Some(lost);
                } else {
                    self.mode = Mode::Seeking {
                        lost_from: self.cursor,
                    };
                }
                tracing::debug!(buffer = %self.buf.id(), reader = %self.counters.name, "reader fell behind");
            }
            // Already counted from where the loss began.
            Mode::Seeking { .. } => {}
        }
        self.cursor = oldest;
        report
    }

    fn deliver(&mut self, chunk: Chunk) -> Item {
        self.delivered += 1;
        self.counters
            .delivered
            .store(self.delivered, Ordering::Relaxed);
        self.counters.cursor.store(self.cursor, Ordering::Relaxed);
        Item::Chunk(chunk)
    }
}

/// What a reader found in its cursor's slot.
enum Slot {
    Chunk(Chunk),
    /// Not an access point while seeking one.
    Skip,
    NotYet,
    /// Overwritten or released: the reader fell behind.
    Gone,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.buf.unregister(self.id);
    }
}
