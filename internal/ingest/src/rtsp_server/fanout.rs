//! RTSP play fanout: one task per played stream demuxes the hub's MPEG-TS
//! once, packetizes every access unit into RTP once ([`os_rtsp::rtp`]), and
//! hands the same packets to every player.
//!
//! - Tracks: the program's first video track (H.264 / H.265) as track 0 and
//!   its first AAC track as the next one. Other audio codecs are not carried.
//! - The stream is *described* once the codec parameters of every carried
//!   track are known (SPS/PPS from the first keyframe, the AAC config from
//!   the first ADTS header): DESCRIBE waits for that.
//! - Every packet is stored already framed for TCP interleaving on the
//!   default channel (`$`, channel `2 * track`, length); UDP players send
//!   the bytes after the 4-byte frame header, TCP players on other channels
//!   get a patched copy.
//! - Players join with the units since the last video keyframe (GOP cache)
//!   and follow a broadcast ring of [`OUT_RING`] units; a player that falls
//!   more than the ring behind skips ahead to the next keyframe. The task
//!   never waits for a player. It runs while the stream has RTSP players
//!   (or pending DESCRIBEs): dropping the last handle stops it.
//! - All players of a stream share one SSRC and sequence space per track.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use os_av::time::rescale;
use os_av::{AccessUnit, AudioParams, Codec, TrackId, TrackKind, TrackParams, VideoParams};
use os_codecs::params::ParamTracker;
use os_hub::{Buffer, Item};
use os_mpegts::{Demuxer, Event};
use os_rtsp::rtp::Packetizer;
use os_rtsp::sdp::Media;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Units a player may fall behind before it is skipped ahead.
pub(crate) const OUT_RING: usize = 1024;
/// GOP cache bound, in units.
const MAX_GOP: usize = 2048;
/// Units held at most while a track's parameters are still unknown.
const MAX_PENDING: usize = 1024;
pub(crate) const PT_VIDEO: u8 = 96;
pub(crate) const PT_AUDIO: u8 = 97;

/// One access unit, packetized.
#[derive(Debug)]
pub(crate) struct Unit {
    /// Track index (position in [`Description::media`]).
    pub track: usize,
    /// A join point: video keyframe (or any unit of an audio-only stream).
    pub key: bool,
    /// RTP packets, each prefixed with the interleaved frame header for
    /// channel `2 * track`.
    pub framed: Vec<Bytes>,
    /// RTP timestamp of the unit.
    pub rtp_ts: u32,
    /// Presentation time, 90 kHz (the stream's media clock).
    pub pts: i64,
    /// Description generation the packets belong to.
    pub generation: u64,
}

/// What DESCRIBE answers and what players need per track.
#[derive(Debug, Clone)]
pub(crate) struct Description {
    pub media: Vec<Media>,
    pub ssrc: Vec<u32>,
    /// Changes when the set of tracks or a codec changes (players of an
    /// older generation are disconnected).
    pub generation: u64,
}

/// Random-enough 64 bits (session ids, SSRCs, initial sequence numbers).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// What a joining player gets.
pub(crate) struct Joined {
    /// The units since the last keyframe.
    pub backlog: Vec<Arc<Unit>>,
    pub rx: broadcast::Receiver<Arc<Unit>>,
    /// Per track, for RTP-Info: the sequence number of the first packet the
    /// player gets, and the RTP time of the common start instant (the first
    /// unit's presentation time), so clients can align the tracks before the
    /// first sender report.
    pub start: Vec<(u16, u32)>,
}

struct State {
    description: Option<Description>,
    gop: Vec<Arc<Unit>>,
    tx: Option<broadcast::Sender<Arc<Unit>>>,
    /// Per track: next sequence number, last RTP timestamp.
    next: Vec<(u16, u32)>,
    /// Media clock: which PTS (90 kHz) corresponds to which instant.
    clock: Option<MediaClock>,
    /// Per track: (RTP timestamp offset, clock rate).
    timing: Vec<(u32, u32)>,
}

struct Inner {
    code: String,
    buffer: Arc<Buffer>,
    state: Mutex<State>,
    ready: watch::Sender<u64>,
    units: AtomicU64,
    lag_events: AtomicU64,
    skipped: AtomicU64,
}

/// A running fanout; players hold an `Arc`. Dropping the last one stops it.
pub struct RtspFanout {
    inner: Arc<Inner>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for RtspFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspFanout")
            .field("stream", &self.inner.code)
            .finish()
    }
}

impl Drop for RtspFanout {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RtspFanout {
    pub(crate) fn start(code: &str, buffer: Arc<Buffer>) -> Arc<Self> {
        let (tx, _) = broadcast::channel(OUT_RING);
        let (ready, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            code: code.to_string(),
            buffer,
            state: Mutex::new(State {
                description: None,
                gop: Vec::new(),
                tx: Some(tx),
                next: Vec::new(),
                clock: None,
                timing: Vec::new(),
            }),
            ready,
            units: AtomicU64::new(0),
            lag_events: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(run(inner.clone(), cancel.clone()));
        tracing::debug!(stream = %code, "rtsp fanout started");
        Arc::new(Self { inner, cancel })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this fanout reads `buffer` and is still running.
    pub(crate) fn serves(&self, buffer: &Arc<Buffer>) -> bool {
        Arc::ptr_eq(&self.inner.buffer, buffer) && self.state().tx.is_some()
    }

    /// The description, waiting up to `limit` for the codec parameters.
    pub(crate) async fn describe(&self, limit: Duration) -> Option<Description> {
        let mut rx = self.inner.ready.subscribe();
        let wait = rx.wait_for(|g| *g > 0);
        let _ = tokio::time::timeout(limit, wait).await;
        self.state().description.clone()
    }

    /// The current description, if any.
    pub(crate) fn description(&self) -> Option<Description> {
        self.state().description.clone()
    }

    /// Join: GOP cache + live receiver, taken atomically. `None` when the
    /// stream's buffer closed.
    pub(crate) fn join(&self) -> Option<Joined> {
        let state = self.state();
        let rx = state.tx.as_ref()?.subscribe();
        let mut backlog = state.gop.clone();
        let first = backlog.first().map(|u| (u.track, u.pts));
        let start_pts = first
            .map(|(_, p)| p)
            .or(state.clock.map(|c| c.pts_at(Instant::now())))
            .unwrap_or(0);
        // Audio queued before the keyframe's presentation time would start
        // before the start instant: left out.
        if let Some((track, pts)) = first {
            backlog.retain(|u| u.track == track || u.pts >= pts);
        }
        let start = state
            .next
            .iter()
            .enumerate()
            .map(|(i, &(next_seq, _))| {
                let seq = backlog
                    .iter()
                    .find(|u| u.track == i)
                    .and_then(|u| u.framed.first())
                    .and_then(|p| os_rtsp::rtp::RtpHeader::parse(p.get(4..)?))
                    .map_or(next_seq, |h| h.sequence);
                let (offset, rate) = state.timing.get(i).copied().unwrap_or((0, os_av::CLOCK_HZ));
                let rtptime = offset.wrapping_add(rescale(start_pts, os_av::CLOCK_HZ, rate) as u32);
                (seq, rtptime)
            })
            .collect();
        Some(Joined { backlog, rx, start })
    }

    /// The RTP timestamp of `track` that corresponds to now (for sender
    /// reports: one media clock for every track keeps them in sync).
    pub(crate) fn rtp_now(&self, track: usize) -> Option<u32> {
        let state = self.state();
        let pts = state.clock?.pts_at(Instant::now());
        let (offset, rate) = *state.timing.get(track)?;
        Some(offset.wrapping_add(rescale(pts, os_av::CLOCK_HZ, rate) as u32))
    }

    pub(crate) fn record_lag(&self, skipped: u64) {
        self.inner.lag_events.fetch_add(1, Ordering::Relaxed);
        self.inner.skipped.fetch_add(skipped, Ordering::Relaxed);
    }
}

/// The wall-clock ↔ media-time mapping behind sender reports.
///
/// Receivers re-time every packet from the latest sender report (ffmpeg
/// adds the NTP distance between reports to the RTP distance since the
/// last one), so successive reports must describe one straight line: a
/// mapping re-anchored on every unit would carry the audio/video interleave
/// skew and the scheduling delay of the moment into each report, and
/// players would see timestamps step back by tens of milliseconds. The
/// anchor only moves when the media clock and the wall clock part by more
/// than [`MediaClock::MAX_DRIFT`] (a source switch, a stall, a clock that
/// runs fast) — one step, where the media itself jumped.
#[derive(Debug, Clone, Copy)]
struct MediaClock {
    pts: i64,
    at: Instant,
}

impl MediaClock {
    /// Half a second, 90 kHz.
    const MAX_DRIFT: i64 = 45_000;

    fn new(pts: i64, at: Instant) -> Self {
        Self { pts, at }
    }

    /// The media time (90 kHz) at `now` on the current line.
    fn pts_at(&self, now: Instant) -> i64 {
        let elapsed = now.saturating_duration_since(self.at).as_micros();
        let ticks = i64::try_from(elapsed * 9 / 100).unwrap_or(i64::MAX);
        self.pts.saturating_add(ticks)
    }

    /// A unit with presentation time `pts` was sent at `now`.
    fn observe(&mut self, pts: i64, now: Instant) {
        if (pts - self.pts_at(now)).abs() > Self::MAX_DRIFT {
            *self = Self::new(pts, now);
        }
    }
}

/// Frame `packet` for interleaving on `channel`.
fn framed(channel: u8, packet: &Bytes) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + packet.len());
    b.put_slice(&os_rtsp::interleaved_header(channel, packet.len()));
    b.put_slice(packet);
    b.freeze()
}

/// The bytes of a framed packet for a TCP player on `channel`.
pub(crate) fn on_channel(framed: &Bytes, channel: u8) -> Bytes {
    if framed.get(1) == Some(&channel) {
        return framed.clone();
    }
    let mut v = BytesMut::from(&framed[..]);
    if let Some(c) = v.get_mut(1) {
        *c = channel;
    }
    v.freeze()
}

/// The RTP packet inside a framed packet (for UDP).
pub(crate) fn rtp_of(framed: &Bytes) -> Bytes {
    framed.slice(4.min(framed.len())..)
}

struct Track {
    id: TrackId,
    codec: Codec,
    video: Option<VideoParams>,
    audio: Option<AudioParams>,
    packetizer: Packetizer,
    offset: u32,
    rate: u32,
}

/// Demux + packetize state of the task.
struct Packager {
    demux: Demuxer,
    tracker: ParamTracker,
    tracks: Vec<Track>,
    /// Waiting for a video keyframe before sending video.
    need_key: bool,
    /// Units held (from a keyframe on) until every track has parameters.
    pending: Vec<AccessUnit>,
    generation: u64,
    bad_units: u64,
}

impl Packager {
    fn new() -> Self {
        Self {
            demux: Demuxer::new(),
            tracker: ParamTracker::new(),
            tracks: Vec::new(),
            need_key: true,
            pending: Vec::new(),
            generation: 0,
            bad_units: 0,
        }
    }

    fn program(&mut self, p: &os_mpegts::Program, code: &str) {
        let video = p
            .tracks
            .iter()
            .find(|t| matches!(t.codec, Codec::H264 | Codec::H265));
        let audio = p.tracks.iter().find(|t| t.codec == Codec::Aac);
        if let Some(other) = p
            .tracks
            .iter()
            .find(|t| t.codec.kind() == TrackKind::Audio && t.codec != Codec::Aac)
            && audio.is_none()
        {
            tracing::warn!(stream = %code, codec = %other.codec, "rtsp: audio codec not carried over RTSP (only AAC)");
        }
        let wanted: Vec<(TrackId, Codec)> = video
            .iter()
            .chain(audio.iter())
            .map(|t| (t.id, t.codec))
            .collect();
        let current: Vec<(TrackId, Codec)> = self.tracks.iter().map(|t| (t.id, t.codec)).collect();
        if wanted == current {
            return;
        }
        // New layout: new packetizers and a new generation (players of the
        // old layout are disconnected; new DESCRIBEs get the new one).
        self.tracks = wanted
            .iter()
            .filter_map(|(id, codec)| {
                let pt = if codec.kind() == TrackKind::Video {
                    PT_VIDEO
                } else {
                    PT_AUDIO
                };
                let audio = p
                    .tracks
                    .iter()
                    .find(|t| t.id == *id)
                    .and_then(|t| match &t.params {
                        Some(TrackParams::Audio(a)) => Some(a.clone()),
                        _ => None,
                    });
                Some(Track {
                    id: *id,
                    codec: *codec,
                    video: None,
                    rate: audio
                        .as_ref()
                        .map_or(os_av::CLOCK_HZ, |a| a.sample_rate.max(1)),
                    audio,
                    packetizer: Packetizer::new(
                        *codec,
                        pt,
                        random_u64() as u32,
                        random_u64() as u16,
                    )?,
                    offset: random_u64() as u32,
                })
            })
            .collect();
        self.tracker.reset();
        self.pending.clear();
        self.need_key = true;
        self.generation += 1;
    }

    /// All carried tracks have parameters.
    fn complete(&self) -> bool {
        !self.tracks.is_empty()
            && self.tracks.iter().all(|t| match t.codec.kind() {
                TrackKind::Video => t.video.is_some(),
                TrackKind::Audio => t.audio.is_some(),
            })
    }

    fn description(&self) -> Description {
        let media = self
            .tracks
            .iter()
            .enumerate()
            .map(|(i, t)| match (&t.video, &t.audio) {
                (Some(v), _) => Media::Video {
                    codec: t.codec,
                    payload_type: PT_VIDEO,
                    control: format!("trackID={i}"),
                    params: v.clone(),
                },
                (_, a) => Media::Audio {
                    payload_type: PT_AUDIO,
                    control: format!("trackID={i}"),
                    params: a.clone().unwrap_or_default(),
                },
            })
            .collect();
        Description {
            media,
            ssrc: self.tracks.iter().map(|t| t.packetizer.ssrc()).collect(),
            generation: self.generation,
        }
    }

    /// Observe one unit and packetize it (with any units held while the
    /// parameters were incomplete) into `out`; returns whether a track's
    /// parameters changed.
    fn access_unit(&mut self, au: AccessUnit, out: &mut Vec<(Unit, i64)>) -> bool {
        let Some(index) = self.tracks.iter().position(|t| t.id == au.track) else {
            return false;
        };
        let mut changed = false;
        if let Ok(Some(c)) = self.tracker.observe(&au)
            && let TrackParams::Video(p) = c.params
            && let Some(t) = self.tracks.get_mut(index)
        {
            t.packetizer.set_parameter_sets(&p.vps, &p.sps, &p.pps);
            t.video = Some(p);
            changed = true;
        }
        if !self.complete() {
            // Hold the units from a keyframe on until every track has its
            // parameters (the AAC config arrives with the first audio
            // frame, after the first keyframe), so the first GOP is not lost.
            let has_video = self
                .tracks
                .first()
                .is_some_and(|t| t.codec.kind() == TrackKind::Video);
            let starts = !has_video || (au.codec.kind() == TrackKind::Video && au.keyframe);
            if self.pending.len() >= MAX_PENDING {
                self.pending.clear();
            }
            if starts || !self.pending.is_empty() {
                self.pending.push(au);
            }
            return changed;
        }
        for held in std::mem::take(&mut self.pending) {
            if let Some(u) = self.unit(&held) {
                out.push((u, held.pts));
            }
        }
        if let Some(u) = self.unit(&au) {
            out.push((u, au.pts));
        }
        changed
    }

    /// Packetize one unit; `None` when it is not sent (unknown track,
    /// waiting for a keyframe).
    fn unit(&mut self, au: &AccessUnit) -> Option<Unit> {
        let index = self.tracks.iter().position(|t| t.id == au.track)?;
        let has_video = self
            .tracks
            .first()
            .is_some_and(|t| t.codec.kind() == TrackKind::Video);
        let t = self.tracks.get_mut(index)?;
        let is_video = t.codec.kind() == TrackKind::Video;
        if self.need_key {
            if has_video && !(is_video && au.keyframe) {
                return None;
            }
            self.need_key = false;
        }
        let rtp_ts = t
            .offset
            .wrapping_add(rescale(au.pts, os_av::CLOCK_HZ, t.rate) as u32);
        let mut packets = Vec::new();
        t.packetizer.packetize(&au.payload, rtp_ts, &mut packets);
        if packets.is_empty() {
            self.bad_units += 1;
            return None;
        }
        let channel = (index * 2) as u8;
        let unit = Unit {
            track: index,
            key: if has_video {
                is_video && au.keyframe
            } else {
                true
            },
            framed: packets.iter().map(|p| framed(channel, p)).collect(),
            rtp_ts,
            pts: au.pts,
            generation: self.generation,
        };
        Some(unit)
    }
}

async fn run(inner: Arc<Inner>, cancel: CancellationToken) {
    let mut reader = inner.buffer.subscribe("rtsp-play");
    let mut pk = Packager::new();
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => break,
            r = reader.recv() => r,
        };
        let chunk = match item {
            Ok(Item::Chunk(c)) => c,
            Ok(Item::Lagged { lost }) => {
                tracing::warn!(stream = %inner.code, lost, "rtsp fanout fell behind the hub; resyncing");
                pk.demux = Demuxer::new();
                pk.need_key = true;
                pk.pending.clear();
                continue;
            }
            Err(_) => break,
        };
        pk.demux.push(&chunk.data);
        let mut units = Vec::new();
        let mut republish = false;
        while let Some(ev) = pk.demux.pull() {
            match ev {
                Event::ProgramChanged(p) => {
                    let before = pk.generation;
                    pk.program(&p, &inner.code);
                    republish |= pk.generation != before;
                }
                Event::Params(c) => {
                    if let (Some(t), TrackParams::Audio(a)) =
                        (pk.tracks.iter_mut().find(|t| t.id == c.track), &c.params)
                        && t.audio.as_ref() != Some(a)
                    {
                        if t.audio
                            .as_ref()
                            .is_some_and(|o| o.sample_rate != a.sample_rate)
                        {
                            // A different clock rate is a new layout.
                            pk.generation += 1;
                            pk.need_key = true;
                        }
                        t.rate = a.sample_rate.max(1);
                        t.audio = Some(a.clone());
                        republish = true;
                    }
                }
                Event::AccessUnit(au) => {
                    republish |= pk.access_unit(au, &mut units);
                }
                _ => {}
            }
        }
        if units.is_empty() && !republish {
            continue;
        }
        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if republish && pk.complete() {
            let d = pk.description();
            let first = state.description.is_none();
            if state
                .description
                .as_ref()
                .is_none_or(|o| o.generation != d.generation)
            {
                state.gop.clear();
            }
            state.timing = pk.tracks.iter().map(|t| (t.offset, t.rate)).collect();
            state.next = pk
                .tracks
                .iter()
                .map(|t| (t.packetizer.next_sequence(), t.offset))
                .collect();
            let generation = d.generation;
            state.description = Some(d);
            if first {
                tracing::debug!(stream = %inner.code, "rtsp stream described");
            }
            inner.ready.send_replace(generation.max(1));
        }
        for (u, pts) in units {
            let u = Arc::new(u);
            if u.key || state.gop.len() >= MAX_GOP {
                state.gop.clear();
            }
            if u.key || !state.gop.is_empty() {
                state.gop.push(u.clone());
            }
            if let Some(n) = state.next.get_mut(u.track) {
                *n = (
                    pk.tracks
                        .get(u.track)
                        .map_or(0, |t| t.packetizer.next_sequence()),
                    u.rtp_ts,
                );
            }
            let now = Instant::now();
            match &mut state.clock {
                Some(clock) => clock.observe(pts, now),
                None => state.clock = Some(MediaClock::new(pts, now)),
            }
            if let Some(tx) = &state.tx {
                // Err only when no player is subscribed right now.
                let _ = tx.send(u);
            }
            inner.units.fetch_add(1, Ordering::Relaxed);
        }
    }
    inner
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .tx = None;
    tracing::debug!(
        stream = %inner.code,
        units = inner.units.load(Ordering::Relaxed),
        lag_events = inner.lag_events.load(Ordering::Relaxed),
        skipped = inner.skipped.load(Ordering::Relaxed),
        bad_units = pk.bad_units,
        "rtsp fanout stopped"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn framing_helpers() {
        let p = Bytes::from_static(&[0x80, 96, 0, 1]);
        let f = framed(0, &p);
        assert_eq!(&f[..], &[b'$', 0, 0, 4, 0x80, 96, 0, 1]);
        assert_eq!(on_channel(&f, 0), f);
        assert_eq!(on_channel(&f, 4)[1], 4);
        assert_eq!(rtp_of(&f), p);
    }

    #[test]
    fn media_clock_stays_on_one_line_through_jitter_and_moves_on_a_jump() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = MediaClock::new(90_000, t0);
        // Audio 80 ms ahead of video, units handled up to 120 ms late: the
        // line (and so every sender report) stays where it was.
        for (pts, late) in [(93_600, 0), (90_000 + 7_200 + 3_600, 120), (99_000, 40)] {
            let at = t0 + ms(u64::try_from((pts - 90_000) / 90).unwrap()) + ms(late);
            c.observe(pts, at);
            assert_eq!(c.pts_at(t0 + ms(1000)), 180_000);
        }
        // A source switch: media time jumps 10 s ahead; one step, then a
        // new straight line.
        c.observe(1_000_000, t0 + ms(2000));
        assert_eq!(c.pts_at(t0 + ms(2000)), 1_000_000);
        assert_eq!(c.pts_at(t0 + ms(3000)), 1_090_000);
        // A stall longer than the allowed drift: re-anchored too.
        c.observe(1_090_000, t0 + ms(4000));
        assert_eq!(c.pts_at(t0 + ms(4000)), 1_090_000);
    }

    /// Feed a test vector into a fresh buffer and return the fanout.
    async fn fed(file: &str) -> Arc<RtspFanout> {
        let path = format!("{}/../../data/testdata/{file}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read(path).unwrap();
        let buffer = Arc::new(Buffer::new("t", 1024));
        let f = RtspFanout::start("t", buffer.clone());
        tokio::task::yield_now().await;
        for c in data.chunks(188 * 7) {
            buffer.write(Bytes::copy_from_slice(c)).unwrap();
        }
        f
    }

    #[tokio::test]
    async fn carries_only_what_rtsp_can() {
        // H.264 + MP3: video only (MP3 is not carried).
        let f = fed("h264_mp3.ts").await;
        let d = f.describe(Duration::from_secs(5)).await.unwrap();
        assert_eq!(d.media.len(), 1);
        assert!(matches!(
            &d.media[0],
            Media::Video {
                codec: Codec::H264,
                ..
            }
        ));
        // H.265 + AAC: both, with the HEVC parameter sets.
        let f = fed("h265_aac.ts").await;
        let d = f.describe(Duration::from_secs(5)).await.unwrap();
        assert_eq!(d.media.len(), 2);
        assert!(
            matches!(&d.media[0], Media::Video { codec: Codec::H265, params, .. }
            if !params.vps.is_empty() && !params.sps.is_empty() && !params.pps.is_empty())
        );
        // AC-3 only: nothing to describe.
        let f = fed("ac3.ts").await;
        assert!(f.describe(Duration::from_millis(500)).await.is_none());
    }

    #[tokio::test]
    async fn describes_and_packetizes_a_real_stream() {
        let path = format!(
            "{}/../../data/testdata/h264_aac.ts",
            env!("CARGO_MANIFEST_DIR")
        );
        let data = std::fs::read(path).unwrap();
        let buffer = Arc::new(Buffer::new("t", 1024));
        let f = RtspFanout::start("t", buffer.clone());
        tokio::task::yield_now().await;
        let joined = f.join().unwrap();
        let mut rx = joined.rx;
        for c in data.chunks(188 * 7) {
            buffer.write(Bytes::copy_from_slice(c)).unwrap();
        }
        let d = f.describe(Duration::from_secs(5)).await.unwrap();
        assert_eq!(d.media.len(), 2);
        assert!(
            matches!(&d.media[0], Media::Video { codec: Codec::H264, params, .. } if params.width == 320)
        );
        assert!(matches!(&d.media[1], Media::Audio { params, .. } if params.sample_rate == 48000));
        let mut video = 0;
        let mut audio = 0;
        let mut first = None;
        // Closing the buffer flushes the hub's last chunk; the fanout ends
        // and players see `Closed` after the last unit.
        buffer.close();
        while let Ok(u) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
        {
            first.get_or_insert(u.key);
            if u.track == 0 {
                video += 1;
            } else {
                audio += 1;
            }
            for p in &u.framed {
                assert_eq!(p[0], b'$');
                assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len() - 4);
                let h = os_rtsp::rtp::RtpHeader::parse(&p[4..]).unwrap();
                assert_eq!(h.ssrc, d.ssrc[u.track]);
                assert_eq!(h.timestamp, u.rtp_ts);
            }
        }
        assert_eq!(first, Some(true), "starts at a keyframe");
        // The demuxer holds the last frame until the next one starts.
        assert!((74..=75).contains(&video), "{video} video units");
        assert!(audio > 100);
        assert!(f.rtp_now(1).is_some());
    }
}
