//! Per-input health sampler: reads an input's staging buffer (raw reader)
//! and keeps figures the manager judges health by. Cheap: packet headers
//! and PES start codes only, no demuxing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use os_hub::{Buffer, Chunk, Item};
use os_mpegts::{PACKET_SIZE, PidMap, SYNC_BYTE};
use tokio_util::sync::CancellationToken;

/// Figures of one input since its start. Times are milliseconds since the
/// manager's epoch, 0 = never.
#[derive(Debug, Default)]
pub(crate) struct Monitor {
    pub last_data: AtomicU64,
    pub last_video: AtomicU64,
    pub last_audio: AtomicU64,
    pub access_points: AtomicU64,
    pub bytes: AtomicU64,
    pub cc_errors: AtomicU64,
    /// Sequence number after the last chunk recorded.
    pub next_seq: AtomicU64,
}

/// Milliseconds since `epoch`, at least 1 (0 means "never").
pub(crate) fn ms_since(epoch: Instant) -> u64 {
    (epoch.elapsed().as_millis() as u64).max(1)
}

impl Monitor {
    pub(crate) fn has_video(&self) -> bool {
        self.last_video.load(Ordering::Relaxed) != 0
    }

    pub(crate) fn has_audio(&self) -> bool {
        self.last_audio.load(Ordering::Relaxed) != 0
    }
}

/// Read `buffer` until `cancel`, updating `m`: the sampler of an input the
/// manager is not forwarding (the manager records the one it forwards
/// itself, one task wakeup per chunk fewer).
pub(crate) async fn run(
    buffer: Arc<Buffer>,
    m: Arc<Monitor>,
    epoch: Instant,
    cancel: CancellationToken,
) {
    let mut reader = buffer.subscribe_raw("health");
    let mut scan = Scan::default();
    loop {
        let item = tokio::select! {
            () = cancel.cancelled() => return,
            item = reader.recv() => match item {
                Ok(item) => item,
                Err(_closed) => return,
            },
        };
        match item {
            Item::Chunk(chunk) => record(&m, &mut scan, &chunk, ms_since(epoch)),
            Item::Lagged { .. } => scan.cc.clear(),
        }
    }
}

/// Account one chunk of an input in `m` (at `now`, ms since the epoch).
/// A chunk already recorded (by the other of sampler and manager, around a
/// hand-over) is skipped.
pub(crate) fn record(m: &Monitor, scan: &mut Scan, chunk: &Chunk, now: u64) {
    if m.next_seq.fetch_max(chunk.seq + 1, Ordering::Relaxed) > chunk.seq {
        return;
    }
    if chunk.discontinuity || chunk.resume {
        scan.cc.clear();
    }
    let seen = scan.feed(&chunk.data);
    m.bytes
        .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
    m.last_data.store(now, Ordering::Relaxed);
    if seen.video {
        m.last_video.store(now, Ordering::Relaxed);
    }
    if seen.audio {
        m.last_audio.store(now, Ordering::Relaxed);
    }
    if seen.cc_errors > 0 {
        m.cc_errors.fetch_add(seen.cc_errors, Ordering::Relaxed);
    }
    if chunk.access_point {
        m.access_points.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub video: bool,
    pub audio: bool,
    pub cc_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
    Other,
}

/// What the sampler knows of the PIDs of one input.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    kinds: PidMap<Kind>,
    cc: PidMap<u8>,
}

impl Scan {
    /// Look at the packets of one chunk: which kinds of elementary stream
    /// carried payload, and continuity errors.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Seen {
        let mut seen = Seen::default();
        for pkt in data.chunks_exact(PACKET_SIZE) {
            if pkt[0] != SYNC_BYTE {
                continue;
            }
            let pid = (u16::from(pkt[1] & 0x1F) << 8) | u16::from(pkt[2]);
            let has_payload = pkt[3] & 0x10 != 0;
            if !has_payload || pid == 0x1FFF {
                continue;
            }
            let cc = pkt[3] & 0x0F;
            if let Some(prev) = self.cc.insert(pid, cc)
                && cc != (prev + 1) & 0x0F
                && cc != prev
            {
                seen.cc_errors += 1;
            }
            let payload = if pkt[3] & 0x20 != 0 {
                5 + usize::from(pkt[4])
            } else {
                4
            };
            if pkt[1] & 0x40 != 0
                && let Some(p) = pkt.get(payload..payload + 4)
                && p[..3] == [0, 0, 1]
            {
                let kind = match p[3] {
                    0xE0..=0xEF => Kind::Video,
                    0xC0..=0xDF | 0xBD => Kind::Audio,
                    _ => Kind::Other,
                };
                self.kinds.insert(pid, kind);
            }
            match self.kinds.get(pid) {
                Some(Kind::Video) => seen.video = true,
                Some(Kind::Audio) => seen.audio = true,
                _ => {}
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(pid: u16, pusi: bool, cc: u8, stream_id: Option<u8>) -> Vec<u8> {
        let mut p = vec![
            SYNC_BYTE,
            (if pusi { 0x40 } else { 0 }) | (pid >> 8) as u8,
            pid as u8,
            0x10 | cc,
        ];
        if let Some(id) = stream_id {
            p.extend_from_slice(&[0, 0, 1, id]);
        }
        p.resize(PACKET_SIZE, 0xFF);
        p
    }

    #[test]
    fn classifies_pids_and_counts_cc_errors() {
        let mut s = Scan::default();
        let mut data = pkt(0x100, true, 0, Some(0xE0));
        data.extend(pkt(0x101, true, 0, Some(0xC0)));
        assert_eq!(
            s.feed(&data),
            Seen {
                video: true,
                audio: true,
                cc_errors: 0
            }
        );
        // Only audio now, with a skipped counter.
        let seen = s.feed(&pkt(0x101, false, 2, None));
        assert_eq!(
            seen,
            Seen {
                video: false,
                audio: true,
                cc_errors: 1
            }
        );
        // Continuation of video is video.
        assert!(s.feed(&pkt(0x100, false, 1, None)).video);
    }

    fn chunk(seq: u64, data: Vec<u8>, access_point: bool) -> Chunk {
        Chunk {
            seq,
            data: data.into(),
            access_point,
            discontinuity: false,
            resume: false,
        }
    }

    /// Sampler and manager hand an input over around a switch: a chunk both
    /// see is counted once, and continuity runs on across the two.
    #[test]
    fn a_chunk_is_recorded_once() {
        let m = Monitor::default();
        let (mut sampler, mut manager) = (Scan::default(), Scan::default());
        let c0 = chunk(0, pkt(0x100, true, 0, Some(0xE0)), true);
        let c1 = chunk(1, pkt(0x100, false, 1, None), false);
        record(&m, &mut sampler, &c0, 10);
        record(&m, &mut sampler, &c1, 20);
        // The manager joins at the access point it already saw through the
        // sampler, then goes on.
        record(&m, &mut manager, &c0, 30);
        record(&m, &mut manager, &c1, 30);
        record(
            &m,
            &mut manager,
            &chunk(2, pkt(0x100, false, 2, None), false),
            40,
        );
        assert_eq!(m.access_points.load(Ordering::Relaxed), 1);
        assert_eq!(m.bytes.load(Ordering::Relaxed), 3 * PACKET_SIZE as u64);
        assert_eq!(m.last_data.load(Ordering::Relaxed), 40);
        assert_eq!(m.cc_errors.load(Ordering::Relaxed), 0);
        // The late sampler (cancelled, one chunk behind) adds nothing.
        record(
            &m,
            &mut sampler,
            &chunk(2, pkt(0x100, false, 2, None), false),
            50,
        );
        assert_eq!(m.last_data.load(Ordering::Relaxed), 40);
    }
}
