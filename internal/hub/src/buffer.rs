//! One buffer: a fixed ring of chunks indexed by sequence number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::access::{Piece, Splitter};
use crate::reader::{Reader, ReaderCounters};
use crate::stats::{BufferStats, ReaderStats};
use crate::{Chunk, Closed};

/// Sequence value meaning "none" (no access point written yet).
pub(crate) const NONE: u64 = u64::MAX;

/// One ring slot. `seq == NONE` means never written.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub seq: u64,
    pub data: Bytes,
    /// What a reader that starts here gets (`PAT + PMT + data`), when `data`
    /// does not begin with them itself.
    pub entry: Option<Bytes>,
    pub access_point: bool,
    pub discontinuity: bool,
}

impl Slot {
    const EMPTY: Slot = Slot {
        seq: NONE,
        data: Bytes::new(),
        entry: None,
        access_point: false,
        discontinuity: false,
    };

    pub(crate) fn to_chunk(&self, resume: bool) -> Chunk {
        let data = match (&self.entry, resume) {
            (Some(e), true) => e.clone(),
            _ => self.data.clone(),
        };
        Chunk {
            seq: self.seq,
            data,
            access_point: self.access_point,
            discontinuity: self.discontinuity,
            resume,
        }
    }
}

/// State only the (serialised) write path touches.
#[derive(Debug)]
struct WriteState {
    splitter: Splitter,
    /// Scratch for the pieces of one write.
    pieces: Vec<Piece>,
    /// The next written piece carries the discontinuity flag.
    discontinuity: bool,
}

/// Buffer-wide counters, updated by the writer and by lagging readers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub bytes: AtomicU64,
    pub access_points: AtomicU64,
    /// Chunks lost by readers that fell behind (sum over readers).
    pub dropped: AtomicU64,
    /// How many times a reader fell behind.
    pub lag_events: AtomicU64,
    /// Video frames (PES starts) written through `write`.
    pub video_frames: AtomicU64,
}

/// A ring of MPEG-TS chunks for one buffer id, with any number of readers.
///
/// The writer side ([`Buffer::write`]) is synchronous and O(1) per chunk: it
/// stores the chunk in the slot `seq % capacity` (overwriting the oldest) and
/// wakes the readers that are waiting. It never waits for a reader: readers
/// hold a slot's read lock only for the time of a `Bytes` clone, and never
/// across an `.await`.
#[derive(Debug)]
pub struct Buffer {
    id: String,
    /// The ring. Written by the writer (write lock, one slot at a time), read
    /// by every reader (read lock, one clone).
    slots: Box<[RwLock<Slot>]>,
    /// Sequence number of the next chunk; chunks `head - capacity .. head`
    /// are readable. Stored (Release) by the writer after the slot is
    /// filled; loaded (Acquire) by readers.
    head: AtomicU64,
    /// Sequence number of the latest access point (`NONE` before the first):
    /// the start of the GOP cache. Stored by the writer, read at subscribe.
    latest_ap: AtomicU64,
    /// Set once by [`Buffer::close`]; readers end with `Closed` after draining.
    closed: AtomicBool,
    /// Wakeup for readers waiting on an empty ring. The writer calls
    /// `notify_waiters` after each write and at close; each waiting reader
    /// owns one `Notified` future, created before it re-checks `head` so no
    /// write can be missed. Dropping a `Notified` just deregisters it.
    notify: Notify,
    write: Mutex<WriteState>,
    pub(crate) counters: Counters,
    /// Per-reader counters, registered at subscribe and removed when the
    /// [`Reader`] is dropped. Only the stats snapshot reads them.
    readers: Mutex<HashMap<u64, Arc<ReaderCounters>>>,
    next_reader: AtomicU64,
}

impl Buffer {
    /// A buffer holding `capacity` chunks (at least 1).
    pub fn new(id: impl Into<String>, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            id: id.into(),
            slots: (0..capacity).map(|_| RwLock::new(Slot::EMPTY)).collect(),
            head: AtomicU64::new(0),
            latest_ap: AtomicU64::new(NONE),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
            write: Mutex::new(WriteState {
                splitter: Splitter::new(),
                pieces: Vec::new(),
                discontinuity: false,
            }),
            counters: Counters::default(),
            readers: Mutex::new(HashMap::new()),
            next_reader: AtomicU64::new(0),
        }
    }

    /// The buffer id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Ring capacity in chunks.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn cap(&self) -> u64 {
        self.slots.len() as u64
    }

    /// Sequence number the next chunk will get (= chunks written so far).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Whether [`Buffer::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Write one chunk of MPEG-TS (any size; packet aligned is best). The
    /// chunk is scanned for keyframes and cut (zero-copy) so that every
    /// keyframe starts a ring entry of its own, flagged as an access point.
    /// Never waits for readers.
    pub fn write(&self, data: Bytes) -> Result<(), Closed> {
        if data.is_empty() {
            return Ok(());
        }
        let mut st = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            return Err(Closed);
        }
        let st = &mut *st;
        st.pieces.clear();
        st.splitter.split(data, &mut st.pieces);
        let frames = st.splitter.take_pictures();
        self.counters
            .video_frames
            .fetch_add(frames, Ordering::Relaxed);
        for piece in st.pieces.drain(..) {
            let disc = std::mem::take(&mut st.discontinuity);
            self.publish(piece.data, piece.entry, piece.access_point, disc);
        }
        self.notify.notify_waiters();
        Ok(())
    }

    /// Write one chunk as is: no scanning, no cutting; the caller says
    /// whether it is an access point (it must then start with PAT + PMT + a
    /// keyframe). For producers that already know their framing.
    pub fn write_raw(&self, data: Bytes, access_point: bool) -> Result<(), Closed> {
        let mut st = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            return Err(Closed);
        }
        let disc = std::mem::take(&mut st.discontinuity);
        self.publish(data, None, access_point, disc);
        drop(st);
        self.notify.notify_waiters();
        Ok(())
    }

    /// Mark a source switch: the next chunk carries the discontinuity flag,
    /// and the keyframe scanner and PAT/PMT cache start afresh.
    pub fn discontinuity(&self) {
        let mut st = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        st.discontinuity = true;
        st.splitter = Splitter::new();
    }

    /// Store one ring entry. Caller holds the write state lock.
    fn publish(&self, data: Bytes, entry: Option<Bytes>, access_point: bool, disc: bool) {
        let seq = self.head.load(Ordering::Relaxed);
        let len = data.len() as u64;
        let idx = (seq % self.cap()) as usize;
        if let Some(slot) = self.slots.get(idx) {
            let old = {
                let mut s = slot.write().unwrap_or_else(PoisonError::into_inner);
                std::mem::replace(
                    &mut *s,
                    Slot {
                        seq,
                        data,
                        entry,
                        access_point,
                        discontinuity: disc,
                    },
                )
            };
            // The evicted chunk is freed outside the lock.
            drop(old);
        }
        if access_point {
            self.latest_ap.store(seq, Ordering::Release);
            self.counters.access_points.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.bytes.fetch_add(len, Ordering::Relaxed);
        self.head.store(seq + 1, Ordering::Release);
    }

    /// Close the buffer: further writes fail; readers get every chunk still
    /// in the ring, then `Closed`.
    pub fn close(&self) {
        let st = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        self.closed.store(true, Ordering::Release);
        drop(st);
        self.notify.notify_waiters();
    }

    /// A reader that starts at the latest access point still in the ring
    /// (the GOP cache), or at the next one, and resynchronises at the next
    /// access point after falling behind. `name` appears in the stats.
    pub fn subscribe(self: &Arc<Self>, name: impl Into<String>) -> Reader {
        let head = self.head();
        let oldest = head.saturating_sub(self.cap());
        let ap = self.latest_ap.load(Ordering::Acquire);
        let start = if ap != NONE && ap >= oldest { ap } else { head };
        self.reader(name.into(), start, false)
    }

    /// A reader that starts at the next access point written (no GOP
    /// backlog), then behaves like [`Buffer::subscribe`]. For consumers that
    /// must not receive a burst when they join, such as SRT players (their
    /// receiver plays each packet at its send time + latency, and a GOP sent
    /// at once arrives later than that).
    pub fn subscribe_next(self: &Arc<Self>, name: impl Into<String>) -> Reader {
        let head = self.head();
        self.reader(name.into(), head, false)
    }

    /// A reader of raw chunks: starts at the live edge, and after falling
    /// behind resumes at the oldest chunk still in the ring instead of the
    /// next access point (for byte-level consumers such as input health).
    pub fn subscribe_raw(self: &Arc<Self>, name: impl Into<String>) -> Reader {
        let head = self.head();
        self.reader(name.into(), head, true)
    }

    fn reader(self: &Arc<Self>, name: String, start: u64, raw: bool) -> Reader {
        let id = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let counters = Arc::new(ReaderCounters::new(name));
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&counters));
        Reader::new(Arc::clone(self), id, counters, start, raw)
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    pub(crate) fn slot(&self, seq: u64) -> Option<&RwLock<Slot>> {
        self.slots.get((seq % self.cap()) as usize)
    }

    pub(crate) fn notify(&self) -> &Notify {
        &self.notify
    }

    /// Counters of the buffer and of each reader.
    pub fn stats(&self) -> BufferStats {
        let head = self.head();
        let mut readers: Vec<ReaderStats> = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|r| r.snapshot(head))
            .collect();
        readers.sort_by(|a, b| a.name.cmp(&b.name));
        let video = self
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .splitter
            .video();
        BufferStats {
            id: self.id.clone(),
            capacity: self.capacity(),
            chunks: head,
            bytes: self.counters.bytes.load(Ordering::Relaxed),
            access_points: self.counters.access_points.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            lag_events: self.counters.lag_events.load(Ordering::Relaxed),
            video_frames: self.counters.video_frames.load(Ordering::Relaxed),
            video: video.map(|(_, c)| c),
            closed: self.is_closed(),
            readers,
        }
    }
}
