//! RTMP play fanout: one task per played stream turns the hub's MPEG-TS into
//! FLV messages once ([`os_flv::remux::TsToFlv`]), serialises each message
//! into RTMP chunks once, and hands the same [`Bytes`] to every player.
//!
//! - Players join with the current `onMetaData` + sequence headers and the
//!   frames since the last keyframe (GOP cache), then follow a broadcast ring
//!   of [`OUT_RING`] batches. The task never waits for a player.
//! - Merged writes: messages are published in batches that end at a video
//!   frame, so a player wakes and writes (one vectored write) once per video
//!   frame instead of once per message. Audio waits at most for the next
//!   video frame, bounded by [`MAX_HOLD`]; video is never held; a stream
//!   without video publishes every message at once. Measured in
//!   `docs/BENCHMARKS.md` (RTMP fan-out).
//! - A player that falls more than the ring behind gets `Lagged`: it skips
//!   ahead to the next keyframe (headers re-sent first) and the skip is counted.
//! - The task runs while the stream has RTMP players: the first player starts
//!   it, dropping the last player's handle stops it. Streams that are never
//!   played over RTMP cost nothing.
//! - Chunks use chunk stream ids the session library does not use (7, 8, 9)
//!   and type-0 headers, so they interleave safely with the session's own
//!   control messages. They are built for message stream id 1 (what
//!   `createStream` returns first); a player on another id gets a patched copy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use os_flv::remux::{FlvKind, FlvMessage, TsToFlv};
use os_hub::{Buffer, Item};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Outbound RTMP chunk size of play sessions (announced with SetChunkSize).
pub(crate) const OUT_CHUNK_SIZE: usize = 4096;
/// Batches (about one per video frame) a player may fall behind before it
/// is skipped ahead: ~20 s at 25 fps.
pub(crate) const OUT_RING: usize = 512;
/// Longest time a message waits in a batch for the next video frame.
pub(crate) const MAX_HOLD: Duration = Duration::from_millis(40);
/// A batch is published once it holds this many bytes.
const MAX_BATCH_BYTES: usize = 64 << 10;
/// Without a video frame for this long the stream counts as audio-only and
/// every message is published at once.
const AUDIO_ONLY_AFTER: Duration = Duration::from_secs(1);
/// GOP cache bound, in messages.
const MAX_GOP: usize = 4096;
/// Message stream id the shared chunks are built for.
pub(crate) const DEFAULT_STREAM_ID: u32 = 1;

const CSID_VIDEO: u8 = 7;
const CSID_AUDIO: u8 = 8;
const CSID_DATA: u8 = 9;

/// One message, already chunked.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub data: Bytes,
    /// A join point (video keyframe, or audio of an audio-only stream).
    pub key: bool,
    /// Metadata or a sequence header.
    pub header: bool,
    /// A video frame (not a header): ends a batch.
    pub video: bool,
}

/// Messages published together; a player writes them in one go.
pub(crate) type Batch = Arc<[Frame]>;

/// Serialise one RTMP message into chunks (type-0 first header, type-3
/// continuations; extended timestamps when needed).
pub(crate) fn chunk_message(
    csid: u8,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    body: &[u8],
) -> Bytes {
    let extended = timestamp >= 0xFF_FFFF;
    let pieces = body.len().div_ceil(OUT_CHUNK_SIZE).max(1);
    let mut out = BytesMut::with_capacity(body.len() + 16 + pieces * 5);
    out.put_u8(csid & 0x3F);
    let ts24 = if extended { 0xFF_FFFF } else { timestamp };
    out.put_slice(&ts24.to_be_bytes()[1..]);
    let len = (body.len() as u32).min(0xFF_FFFF);
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    for (i, piece) in body.chunks(OUT_CHUNK_SIZE).enumerate() {
        if i > 0 {
            out.put_u8(0xC0 | (csid & 0x3F));
            if extended {
                out.put_u32(timestamp);
            }
        }
        out.put_slice(piece);
    }
    out.freeze()
}

/// The chunks of `frame` for a player whose message stream id is `stream_id`.
pub(crate) fn for_stream(data: &Bytes, stream_id: u32) -> Bytes {
    if stream_id == DEFAULT_STREAM_ID || data.len() < 12 {
        return data.clone();
    }
    let mut v = BytesMut::from(&data[..]);
    if let Some(id) = v.get_mut(8..12) {
        id.copy_from_slice(&stream_id.to_le_bytes());
    }
    v.freeze()
}

fn frame_of(m: &FlvMessage) -> Frame {
    let (csid, type_id) = match m.kind {
        FlvKind::Metadata => (CSID_DATA, 18),
        FlvKind::VideoHeader | FlvKind::Video => (CSID_VIDEO, 9),
        FlvKind::AudioHeader | FlvKind::Audio => (CSID_AUDIO, 8),
    };
    Frame {
        data: chunk_message(csid, type_id, DEFAULT_STREAM_ID, m.timestamp, &m.body),
        key: m.keyframe,
        header: m.kind.is_header(),
        video: m.kind == FlvKind::Video,
    }
}

/// What a joining player gets.
pub(crate) struct Joined {
    /// Headers then the frames since the last keyframe.
    pub backlog: Vec<Bytes>,
    pub rx: broadcast::Receiver<Batch>,
}

#[derive(Default)]
struct State {
    /// Current metadata + sequence headers, chunked.
    headers: Vec<Bytes>,
    /// Frames since the last keyframe (starting with it).
    gop: Vec<Bytes>,
    /// `None` once the stream's buffer closed.
    tx: Option<broadcast::Sender<Batch>>,
}

#[derive(Debug, Default)]
pub(crate) struct FanoutStats {
    pub messages: AtomicU64,
    pub lag_events: AtomicU64,
    pub skipped: AtomicU64,
}

struct Inner {
    code: String,
    buffer: Arc<Buffer>,
    state: Mutex<State>,
    stats: FanoutStats,
}

/// A running fanout; players hold an `Arc`. Dropping the last one stops it.
pub struct Fanout {
    inner: Arc<Inner>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("stream", &self.inner.code)
            .finish()
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Fanout {
    pub(crate) fn start(code: &str, buffer: Arc<Buffer>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(OUT_RING);
        let inner = Arc::new(Inner {
            code: code.to_string(),
            buffer,
            state: Mutex::new(State {
                tx: Some(tx),
                ..State::default()
            }),
            stats: FanoutStats::default(),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(run(inner.clone(), cancel.clone()));
        tracing::debug!(stream = %code, "rtmp fanout started");
        Arc::new(Self { inner, cancel })
    }

    /// Whether this fanout reads `buffer` and is still running.
    pub(crate) fn serves(&self, buffer: &Arc<Buffer>) -> bool {
        Arc::ptr_eq(&self.inner.buffer, buffer)
            && self
                .inner
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .tx
                .is_some()
    }

    /// Join: headers + GOP cache + live receiver, taken atomically.
    /// `None` when the stream's buffer closed.
    pub(crate) fn join(&self) -> Option<Joined> {
        let state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let rx = state.tx.as_ref()?.subscribe();
        let mut backlog = state.headers.clone();
        backlog.extend(state.gop.iter().cloned());
        Some(Joined { backlog, rx })
    }

    /// The current headers (after a skip).
    pub(crate) fn headers(&self) -> Vec<Bytes> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .headers
            .clone()
    }

    pub(crate) fn record_lag(&self, skipped: u64) {
        self.inner.stats.lag_events.fetch_add(1, Ordering::Relaxed);
        self.inner
            .stats
            .skipped
            .fetch_add(skipped, Ordering::Relaxed);
    }
}

/// The batch being gathered.
#[derive(Default)]
struct Pending {
    frames: Vec<Frame>,
    bytes: usize,
    /// When the oldest frame arrived.
    since: Option<Instant>,
    /// The last frame is a video frame: publish now.
    ends_at_video: bool,
}

impl Pending {
    fn add(&mut self, f: Frame, now: Instant) {
        self.since.get_or_insert(now);
        self.bytes += f.data.len();
        self.ends_at_video = f.video;
        self.frames.push(f);
    }

    fn deadline(&self) -> Instant {
        self.since.unwrap_or_else(Instant::now) + MAX_HOLD
    }

    fn publish(&mut self, inner: &Inner) {
        if self.frames.is_empty() {
            return;
        }
        let batch: Batch = std::mem::take(&mut self.frames).into();
        *self = Pending::default();
        let state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = &state.tx {
            // Err only when no player is subscribed right now.
            let _ = tx.send(batch);
        }
    }
}

async fn run(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut reader = inner.buffer.subscribe("rtmp-play");
    let mut remux = TsToFlv::new();
    let mut msgs = Vec::new();
    let mut generation = remux.generation();
    let mut pending = Pending::default();
    let mut last_video: Option<Instant> = None;
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep_until(pending.deadline()), if !pending.frames.is_empty() => {
                pending.publish(&inner);
                continue;
            }
            r = reader.recv() => r,
        };
        let chunk = match item {
            Ok(Item::Chunk(c)) => c,
            Ok(Item::Lagged { lost }) => {
                tracing::warn!(stream = %inner.code, lost, "rtmp fanout fell behind the hub; resyncing");
                remux.discontinuity();
                continue;
            }
            Err(_) => break,
        };
        // A source switch needs no splice here: the stream buffer is written
        // by the input manager, which keeps one continuous timeline across
        // switches (forcing one would add the audio lead as a gap). A real
        // clock jump is still caught by `MAX_GAP_MS`.
        msgs.clear();
        remux.push(&chunk.data, &mut msgs);
        if msgs.is_empty() {
            continue;
        }
        let now = Instant::now();
        let headers = (remux.generation() != generation).then(|| {
            generation = remux.generation();
            remux.headers().iter().map(|m| frame_of(m).data).collect()
        });
        {
            let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(h) = headers {
                state.headers = h;
            }
            for m in &msgs {
                let f = frame_of(m);
                if !f.header {
                    if f.key || state.gop.len() >= MAX_GOP {
                        state.gop.clear();
                    }
                    if f.key || !state.gop.is_empty() {
                        state.gop.push(f.data.clone());
                    }
                }
                if f.video {
                    last_video = Some(now);
                }
                pending.add(f, now);
            }
        }
        let audio_only = last_video.is_none_or(|t| now - t > AUDIO_ONLY_AFTER);
        if audio_only || pending.ends_at_video || pending.bytes >= MAX_BATCH_BYTES {
            pending.publish(&inner);
        }
        inner
            .stats
            .messages
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
    }
    pending.publish(&inner);
    // Players see `Closed` once the sender is gone.
    inner
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .tx = None;
    tracing::debug!(
        stream = %inner.code,
        messages = inner.stats.messages.load(Ordering::Relaxed),
        lag_events = inner.stats.lag_events.load(Ordering::Relaxed),
        skipped = inner.stats.skipped.load(Ordering::Relaxed),
        bad_units = remux.bad_units,
        "rtmp fanout stopped"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking() {
        let body = vec![7u8; OUT_CHUNK_SIZE * 2 + 10];
        let c = chunk_message(7, 9, 1, 1000, &body);
        assert_eq!(c.len(), 12 + body.len() + 2);
        assert_eq!(c[0], 7);
        assert_eq!(&c[1..4], &[0, 3, 0xE8]);
        assert_eq!(c[7], 9);
        assert_eq!(&c[8..12], &1u32.to_le_bytes());
        assert_eq!(c[12 + OUT_CHUNK_SIZE], 0xC7);
        // Extended timestamp: in the first header and every continuation.
        let c = chunk_message(8, 8, 1, 0x0100_0000, &body);
        assert_eq!(&c[1..4], &[0xFF, 0xFF, 0xFF]);
        assert_eq!(c.len(), 16 + body.len() + 2 * 5);
        assert_eq!(
            &c[16 + OUT_CHUNK_SIZE + 1..16 + OUT_CHUNK_SIZE + 5],
            &0x0100_0000u32.to_be_bytes()
        );
        let p = for_stream(&c, 3);
        assert_eq!(&p[8..12], &3u32.to_le_bytes());
        assert_eq!(p.len(), c.len());
    }
}
