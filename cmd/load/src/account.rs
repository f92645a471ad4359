//! The measurement window and what one reader records in it.

use std::time::Instant;

/// Frames and bytes count only when they arrive inside the window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn contains(&self, t: Instant) -> bool {
        t >= self.start && t <= self.end
    }
}

/// What one reader received.
#[derive(Debug, Default, Clone)]
pub struct Reader {
    /// The server accepted the play request (RTMP play start, RTSP PLAY 200,
    /// SRT handshake).
    pub connected: bool,
    /// Stopped reading after its first video frame (a slow reader).
    pub stalled: bool,
    /// Bytes read inside the window.
    pub bytes: u64,
    /// Bytes read in all.
    pub bytes_total: u64,
    /// Video frames inside the window.
    pub frames: u64,
    /// Frames (RTMP), RTP packets (RTSP) or TS packets (SRT) lost inside the window.
    pub lost: u64,
    /// Video frames missing by their timestamps (steps of more than 1.5
    /// frame intervals) inside the window, whatever the transport's own loss
    /// counter says (a server may skip frames and keep its packets in
    /// sequence). For RTMP this equals `lost`.
    pub frames_missing: u64,
    /// `arrival − media time` of each video frame inside the window, ms
    /// (arrival counted from the plan's epoch).
    pub latency: Vec<f64>,
    /// Why the reader ended ("cancelled" when the window was over).
    pub end: String,
}

impl Reader {
    /// `n` bytes read at `at`.
    pub fn bytes_at(&mut self, n: usize, at: Instant, w: &Window) {
        self.bytes_total += n as u64;
        if w.contains(at) {
            self.bytes += n as u64;
        }
    }

    /// A video frame with media time `media_ms` (if known) that arrived at `at`.
    pub fn frame_at(&mut self, media_ms: Option<f64>, at: Instant, epoch: Instant, w: &Window) {
        if !w.contains(at) {
            return;
        }
        self.frames += 1;
        if let Some(m) = media_ms {
            self.latency_at(m, at, epoch, w);
        }
    }

    /// A latency sample alone: the frame with media time `media_ms` arrived at `at`.
    pub fn latency_at(&mut self, media_ms: f64, at: Instant, epoch: Instant, w: &Window) {
        if w.contains(at) {
            let arrival = at.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
            self.latency.push(arrival - media_ms);
        }
    }

    /// `n` units lost, noticed at `at`.
    pub fn lost_at(&mut self, n: u64, at: Instant, w: &Window) {
        if w.contains(at) {
            self.lost += n;
        }
    }
}

/// Frames missing between consecutive video timestamps (RTMP, ms): a step
/// larger than 1.5 frame intervals is `round(step / interval) − 1` frames
/// lost; steps of 10 s or more (a restart, a loop of the source) and
/// steps backwards are not losses.
#[derive(Debug, Clone)]
pub struct TimestampGaps {
    frame_ms: f64,
    last: Option<u32>,
}

impl TimestampGaps {
    pub fn new(frame_ms: f64) -> Self {
        Self {
            frame_ms,
            last: None,
        }
    }

    /// Frames lost before the frame with timestamp `ts`.
    pub fn push(&mut self, ts: u32) -> u64 {
        let lost = match self.last {
            Some(prev) => {
                let step = ts.wrapping_sub(prev);
                let step_ms = f64::from(step);
                if step < 10_000 && step_ms > self.frame_ms * 1.5 {
                    ((step_ms / self.frame_ms).round() as u64).saturating_sub(1)
                } else {
                    0
                }
            }
            None => 0,
        };
        // A timestamp going backwards (B-frame-free sources should not)
        // does not move the reference back.
        if self.last.is_none_or(|p| ts.wrapping_sub(p) < 0x8000_0000) {
            self.last = Some(ts);
        }
        lost
    }
}

/// RTP sequence-number gaps: packets missing before each packet.
/// Duplicates and late (reordered) packets are not losses.
#[derive(Debug, Clone, Default)]
pub struct SeqGaps {
    expected: Option<u16>,
}

impl SeqGaps {
    pub fn push(&mut self, seq: u16) -> u64 {
        let Some(exp) = self.expected else {
            self.expected = Some(seq.wrapping_add(1));
            return 0;
        };
        let d = seq.wrapping_sub(exp);
        if d < 0x8000 {
            self.expected = Some(seq.wrapping_add(1));
            u64::from(d)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamp_steps_count_missing_frames() {
        let mut g = TimestampGaps::new(40.0);
        assert_eq!(g.push(1000), 0);
        assert_eq!(g.push(1040), 0);
        // Jitter up to 1.5 intervals is not a loss.
        assert_eq!(g.push(1099), 0);
        // 1099 -> 1179 = 80 ms: one frame missing.
        assert_eq!(g.push(1179), 1);
        // 200 ms: four missing.
        assert_eq!(g.push(1379), 4);
        // A 20 s jump (source restart) is not counted, but becomes the reference.
        assert_eq!(g.push(21_379), 0);
        assert_eq!(g.push(21_419), 0);
        // Backwards: no loss, the reference stays.
        assert_eq!(g.push(21_000), 0);
        assert_eq!(g.push(21_459), 0);
        // Wrap-around of the 32-bit timestamp.
        let mut g = TimestampGaps::new(40.0);
        g.push(u32::MAX - 19);
        assert_eq!(g.push(100), 2);
    }

    #[test]
    fn rtp_sequence_gaps() {
        let mut s = SeqGaps::default();
        assert_eq!(s.push(65_533), 0);
        assert_eq!(s.push(65_534), 0);
        // 65535 and 0 missing (wraps).
        assert_eq!(s.push(1), 2);
        // A duplicate and a late packet are not losses.
        assert_eq!(s.push(1), 0);
        assert_eq!(s.push(0), 0);
        assert_eq!(s.push(2), 0);
        assert_eq!(s.push(10), 7);
    }

    #[test]
    fn only_the_window_counts() {
        let epoch = Instant::now();
        let w = Window {
            start: epoch + Duration::from_secs(1),
            end: epoch + Duration::from_secs(2),
        };
        let mut r = Reader::default();
        r.bytes_at(100, epoch, &w);
        r.frame_at(Some(0.0), epoch, epoch, &w);
        r.lost_at(3, epoch, &w);
        let inside = epoch + Duration::from_millis(1500);
        r.bytes_at(10, inside, &w);
        r.frame_at(Some(1400.0), inside, epoch, &w);
        r.frame_at(None, inside, epoch, &w);
        r.lost_at(2, inside, &w);
        r.bytes_at(7, epoch + Duration::from_secs(3), &w);
        assert_eq!((r.bytes, r.bytes_total, r.frames, r.lost), (10, 117, 2, 2));
        assert_eq!(r.latency.len(), 1);
        assert!((r.latency[0] - 100.0).abs() < 1e-6);
    }
}
