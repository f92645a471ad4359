//! RTSP play reader over TCP interleaved: DESCRIBE, SETUP of every track
//! (`interleaved=2i-2i+1`), PLAY; RTP sequence gaps of every track are
//! losses, video packets with the marker bit end a frame.
//!
//! Latency needs the decode time, but RTP carries the presentation time,
//! which B-frames reorder. Frames arrive in decode order, so the n-th
//! frame's decode time is (up to a constant) the n-th smallest presentation
//! time: [`Reorder`] holds [`REORDER_DEPTH`] frames back and pairs each
//! frame's arrival with that value.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use bytes::BytesMut;
use os_rtsp::message::{Response, parse_interleaved, parse_response};
use os_rtsp::rtp::RtpHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Plan;
use crate::account::{Reader, SeqGaps};

/// One media section of an SDP: kind ("video", "audio"), control, clock rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub media: String,
    pub control: Option<String>,
    pub clock_rate: u32,
}

/// Media sections of `sdp` (lines before the first `m=` are ignored).
pub fn parse_sdp(sdp: &str) -> Vec<Track> {
    let mut tracks: Vec<Track> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            tracks.push(Track {
                media: m.split(' ').next().unwrap_or_default().to_string(),
                control: None,
                clock_rate: 90_000,
            });
        } else if let Some(t) = tracks.last_mut() {
            if let Some(c) = line.strip_prefix("a=control:") {
                t.control = Some(c.to_string());
            } else if let Some(r) = line.strip_prefix("a=rtpmap:") {
                // a=rtpmap:96 H264/90000
                if let Some(rate) = r
                    .split_once(' ')
                    .and_then(|(_, enc)| enc.split('/').nth(1))
                    .and_then(|s| s.trim().parse().ok())
                {
                    t.clock_rate = rate;
                }
            }
        }
    }
    tracks
}

/// The URL to SETUP a track with `control` under `base`.
pub fn control_url(base: &str, control: Option<&str>) -> String {
    match control {
        None | Some("*") => base.to_string(),
        Some(c) if c.starts_with("rtsp://") || c.starts_with("rtsps://") => c.to_string(),
        Some(c) if base.ends_with('/') => format!("{base}{c}"),
        Some(c) => format!("{base}/{c}"),
    }
}

/// 32-bit RTP timestamps extended to 64 bits across wraps.
#[derive(Debug, Clone, Default)]
pub struct Unwrap {
    last: Option<(u32, i64)>,
}

impl Unwrap {
    pub fn push(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((last, ext)) => ext + i64::from(ts.wrapping_sub(last) as i32),
        };
        self.last = Some((ts, ext));
        ext
    }
}

/// Frames of look-ahead for recovering decode order (x264's B-frame
/// pyramids reorder by at most 3 or 4 frames).
pub const REORDER_DEPTH: usize = 4;

/// Pairs the n-th arrival with the n-th smallest presentation time, once
/// `depth` later frames have arrived.
#[derive(Debug, Clone)]
pub struct Reorder {
    depth: usize,
    pts: BinaryHeap<Reverse<i64>>,
    arrivals: VecDeque<Instant>,
}

impl Reorder {
    pub fn new(depth: usize) -> Self {
        Self {
            depth,
            pts: BinaryHeap::new(),
            arrivals: VecDeque::new(),
        }
    }

    /// A frame with presentation time `pts` arrived at `at`: the (decode
    /// time, arrival) of the frame `depth` frames earlier, when there is one.
    pub fn push(&mut self, pts: i64, at: Instant) -> Option<(i64, Instant)> {
        self.pts.push(Reverse(pts));
        self.arrivals.push_back(at);
        if self.arrivals.len() <= self.depth {
            return None;
        }
        let Reverse(dts) = self.pts.pop()?;
        Some((dts, self.arrivals.pop_front()?))
    }
}

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    cseq: u32,
    /// The server's `Session` id, once SETUP answered it.
    sid: Option<String>,
}

impl Conn {
    async fn request(&mut self, method: &str, url: &str, extra: &str) -> Result<Response, String> {
        self.cseq += 1;
        let sid = self
            .sid
            .as_deref()
            .map(|s| format!("Session: {s}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "{method} {url} RTSP/1.0\r\nCSeq: {}\r\nUser-Agent: os-load\r\n{sid}{extra}\r\n",
            self.cseq
        );
        self.sock
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        loop {
            // Interleaved data before the response (after PLAY) is skipped.
            while self.buf.first() == Some(&b'$') {
                match parse_interleaved(&self.buf) {
                    Some((_, n)) => {
                        let _ = self.buf.split_to(n);
                    }
                    None => break,
                }
            }
            if self.buf.first().is_some_and(|b| *b != b'$')
                && let Some((resp, n)) =
                    parse_response(&self.buf).map_err(|e| format!("{method}: {e:?}"))?
            {
                let _ = self.buf.split_to(n);
                if resp.status != 200 {
                    return Err(format!("{method}: {} {}", resp.status, resp.reason));
                }
                return Ok(resp);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                self.sock.read(&mut chunk),
            )
            .await
            .map_err(|_| format!("{method}: no answer"))?
            .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("{method}: connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Play `url` until `plan.stop`; `stall`: stop reading after the first video frame.
pub async fn play(url: &str, plan: &Plan, stall: bool) -> Reader {
    let mut out = Reader {
        stalled: stall,
        ..Reader::default()
    };
    out.end = match run(url, plan, stall, &mut out).await {
        Ok(why) => why.to_string(),
        Err(e) => format!("error: {e}"),
    };
    out
}

async fn run(
    url: &str,
    plan: &Plan,
    stall: bool,
    out: &mut Reader,
) -> Result<&'static str, String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let addr = format!(
        "{}:{}",
        u.host_str().ok_or("no host")?,
        u.port().unwrap_or(554)
    );
    let sock = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    let mut c = Conn {
        sock,
        buf: BytesMut::with_capacity(64 << 10),
        cseq: 0,
        sid: None,
    };
    let desc = c
        .request("DESCRIBE", url, "Accept: application/sdp\r\n")
        .await?;
    let base = desc
        .get("Content-Base")
        .map(str::to_string)
        .unwrap_or_else(|| url.to_string());
    let tracks = parse_sdp(&String::from_utf8_lossy(&desc.body));
    if tracks.is_empty() {
        return Err("DESCRIBE: no media in the SDP".into());
    }
    for (i, t) in tracks.iter().enumerate() {
        let transport = format!(
            "Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n",
            2 * i,
            2 * i + 1
        );
        let r = c
            .request(
                "SETUP",
                &control_url(&base, t.control.as_deref()),
                &transport,
            )
            .await?;
        if c.sid.is_none() {
            c.sid = r
                .get("Session")
                .map(|s| s.split(';').next().unwrap_or_default().trim().to_string());
        }
    }
    c.request("PLAY", &base, "Range: npt=0.000-\r\n").await?;
    out.connected = true;
    let video = tracks.iter().position(|t| t.media == "video");
    let clock = |i: usize| f64::from(tracks.get(i).map_or(90_000, |t| t.clock_rate).max(1));
    let mut gaps: Vec<SeqGaps> = vec![SeqGaps::default(); tracks.len()];
    let mut unwrap = Unwrap::default();
    let mut reorder = Reorder::new(REORDER_DEPTH);
    let mut chunk = vec![0u8; 32 << 10];
    let mut arrived = Instant::now();
    loop {
        let mut got_frame = false;
        loop {
            if c.buf.first().is_some_and(|b| *b != b'$') {
                // A response or request from the server: skip it.
                match parse_response(&c.buf) {
                    Ok(Some((_, n))) => {
                        let _ = c.buf.split_to(n);
                        continue;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("bad data from server: {e:?}")),
                }
            }
            let Some((frame, n)) = parse_interleaved(&c.buf) else {
                break;
            };
            let _ = c.buf.split_to(n);
            let ch = usize::from(frame.channel);
            if ch % 2 != 0 {
                continue; // RTCP
            }
            let track = ch / 2;
            let Some(h) = RtpHeader::parse(&frame.data) else {
                continue;
            };
            if let Some(g) = gaps.get_mut(track) {
                let lost = g.push(h.sequence);
                out.lost_at(lost, arrived, &plan.window);
            }
            if Some(track) == video && h.marker {
                got_frame = true;
                out.frame_at(None, arrived, plan.epoch, &plan.window);
                if let Some((dts, at)) = reorder.push(unwrap.push(h.timestamp), arrived) {
                    let ms = dts as f64 * 1000.0 / clock(track);
                    out.latency_at(ms, at, plan.epoch, &plan.window);
                }
            }
        }
        if stall && got_frame {
            plan.stop.cancelled().await;
            return Ok("stalled");
        }
        let n = tokio::select! {
            () = plan.stop.cancelled() => return Ok("cancelled"),
            r = tokio::time::timeout(plan.idle, c.sock.read(&mut chunk)) => match r {
                Err(_) => return Err("no data (idle)".into()),
                Ok(Err(e)) => return Err(e.to_string()),
                Ok(Ok(0)) => return Ok("eof"),
                Ok(Ok(n)) => n,
            },
        };
        arrived = Instant::now();
        out.bytes_at(n, arrived, &plan.window);
        c.buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_tracks_and_control_urls() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\na=control:*\r\n\
                   m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n\
                   m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/48000/2\r\na=control:trackID=1\r\n";
        let t = parse_sdp(sdp);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].media.as_str(), t[0].clock_rate), ("video", 90_000));
        assert_eq!((t[1].media.as_str(), t[1].clock_rate), ("audio", 48_000));
        assert_eq!(
            control_url("rtsp://h/live/x", t[1].control.as_deref()),
            "rtsp://h/live/x/trackID=1"
        );
        assert_eq!(
            control_url("rtsp://h/live/x/", Some("a")),
            "rtsp://h/live/x/a"
        );
        assert_eq!(control_url("rtsp://h/x", Some("rtsp://o/y")), "rtsp://o/y");
        assert_eq!(control_url("rtsp://h/x", Some("*")), "rtsp://h/x");
    }

    #[test]
    fn decode_order_from_presentation_times() {
        let t0 = Instant::now();
        let at = |i: u64| t0 + std::time::Duration::from_millis(40 * i);
        let mut r = Reorder::new(2);
        // I0 P3 B1 B2 P6 B4 B5 (frame units), in decode (arrival) order.
        let pts = [0, 3, 1, 2, 6, 4, 5];
        let got: Vec<(i64, Instant)> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| r.push(*p, at(i as u64)))
            .collect();
        let want: Vec<(i64, Instant)> = (0..5).map(|i| (i as i64, at(i))).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rtp_timestamps_unwrap() {
        let mut u = Unwrap::default();
        assert_eq!(u.push(u32::MAX - 9), i64::from(u32::MAX - 9));
        assert_eq!(u.push(10), i64::from(u32::MAX) + 11);
        // A slightly older timestamp (B-frame order) goes back a little.
        assert_eq!(u.push(5), i64::from(u32::MAX) + 6);
    }
}
