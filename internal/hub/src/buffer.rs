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

/// Default byte budget of a buffer beyond its GOP cache: 4 MiB, about 16 s
/// of a 2 Mb/s stream.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 20;

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
    /// Released early to keep the ring within its byte budget: the data is
    /// gone, a reader that reaches it has fallen behind.
    pub evicted: bool,
}

impl Slot {
    const EMPTY: Slot = Slot {
        seq: NONE,
        data: Bytes::new(),
        entry: None,
        access_point: false,
        discontinuity: false,
        evicted: false,
    };

    /// Bytes this slot keeps alive.
    fn held(&self) -> u64 {
        if self.seq == NONE || self.evicted {
            return 0;
        }
        (self.data.len() + self.entry.as_ref().map_or(0, Bytes::len)) as u64
    }

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
    /// Bytes held by the readable slots (`tail .. head`).
    held: u64,
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
/// The writer side ([`Buffer::write`]) is synchronous and O(1) per chunk
/// (amortised): it stores the chunk in the slot `seq % capacity`
/// (overwriting the oldest) and wakes the readers that are waiting.
///
/// Two bounds hold what the ring keeps: `capacity` chunks, and a byte
/// budget (`max_bytes`). Past the budget the writer releases the oldest
/// chunks early — never the GOP cache (from the latest access point on), so
/// a joiner still starts at a keyframe; a long GOP makes the ring hold more.
/// Chunk counts alone would keep tens of seconds of a high-bitrate stream
/// (a chunk is a frame's worth) for no reader's benefit.
///
/// The writer never waits for a reader: readers hold a slot's read lock only
/// for the time of a `Bytes` clone, and never across an `.await`.
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
    /// Oldest sequence number whose data is still held (at least
    /// `head - capacity`); raised by the writer when the byte budget is
    /// exceeded.
    tail: AtomicU64,
    /// Byte budget of the held chunks (see the type's documentation).
    max_bytes: u64,
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
    /// A buffer holding `capacity` chunks (at least 1) within the default
    /// byte budget ([`DEFAULT_MAX_BYTES`]).
    pub fn new(id: impl Into<String>, capacity: usize) -> Self {
        Self::with_max_bytes(id, capacity, DEFAULT_MAX_BYTES)
    }

    /// A buffer holding `capacity` chunks (at least 1) and, beyond the GOP
    /// cache, at most `max_bytes` of them.
    pub fn with_max_bytes(id: impl Into<String>, capacity: usize, max_bytes: u64) -> Self {
        let capacity = capacity.max(1);
        Self {
            id: id.into(),
            slots: (0..capacity).map(|_| RwLock::new(Slot::EMPTY)).collect(),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            max_bytes,
            latest_ap: AtomicU64::new(NONE),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
            write: Mutex::new(WriteState {
                splitter: Splitter::new(),
                pieces: Vec::new(),
                discontinuity: false,
                held: 0,
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

    /// Bytes the readable chunks keep alive now.
    pub fn held_bytes(&self) -> u64 {
        self.write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .held
    }

    /// The byte budget (see the type's documentation).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The oldest sequence number still readable, given `head` (loaded
    /// before): within the capacity and not released for the byte budget.
    pub(crate) fn oldest(&self, head: u64) -> u64 {
        head.saturating_sub(self.cap())
            .max(self.tail.load(Ordering::Acquire))
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
        let mut pieces = std::mem::take(&mut st.pieces);
        for piece in pieces.drain(..) {
            let disc = std::mem::take(&mut st.discontinuity);
            self.publish(st, piece.data, piece.entry, piece.access_point, disc);
        }
        st.pieces = pieces;
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
        self.publish(&mut st, data, None, access_point, disc);
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

    /// Store one ring entry, then keep the ring within its byte budget.
    /// Caller holds the write state lock (`st`).
    fn publish(
        &self,
        st: &mut WriteState,
        data: Bytes,
        entry: Option<Bytes>,
        access_point: bool,
        disc: bool,
    ) {
        let seq = self.head.load(Ordering::Relaxed);
        let len = data.len() as u64;
        let slot = Slot {
            seq,
            data,
            entry,
            access_point,
            discontinuity: disc,
            evicted: false,
        };
        let held = slot.held();
        if let Some(s) = self.slot(seq) {
            let old = std::mem::replace(
                &mut *s.write().unwrap_or_else(PoisonError::into_inner),
                slot,
            );
            st.held = st.held.saturating_sub(old.held()) + held;
            // The overwritten chunk is freed outside the lock.
            drop(old);
        }
        if access_point {
            self.latest_ap.store(seq, Ordering::Release);
            self.counters.access_points.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.bytes.fetch_add(len, Ordering::Relaxed);
        self.head.store(seq + 1, Ordering::Release);
        self.release_over_budget(st, seq);
    }

    /// Release the oldest chunks while the ring holds more than its byte
    /// budget, keeping the GOP cache (from the latest access point on) and
    /// the newest chunk (`newest`).
    fn release_over_budget(&self, st: &mut WriteState, newest: u64) {
        let floor = (newest + 1).saturating_sub(self.cap());
        let mut tail = self.tail.load(Ordering::Relaxed).max(floor);
        let ap = self.latest_ap.load(Ordering::Relaxed);
        let keep_from = if ap != NONE && ap >= floor && ap <= newest {
            ap
        } else {
            newest
        };
        while st.held > self.max_bytes && tail < keep_from {
            if let Some(s) = self.slot(tail) {
                let released = {
                    let mut s = s.write().unwrap_or_else(PoisonError::into_inner);
                    if s.seq == tail && !s.evicted {
                        st.held = st.held.saturating_sub(s.held());
                        s.evicted = true;
                        Some((std::mem::take(&mut s.data), s.entry.take()))
                    } else {
                        None
                    }
                };
                drop(released);
            }
            tail += 1;
        }
        self.tail.store(tail, Ordering::Release);
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
        let oldest = self.oldest(head);
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
