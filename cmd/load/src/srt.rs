//! SRT play reader (srt-tokio caller): MPEG-TS, continuity-counter gaps
//! as losses, video PES decode times for latency.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use srt_tokio::SrtSocket;

use crate::Plan;
use crate::account::{Reader, TimestampGaps};
use crate::ts::TsScan;

/// `srt://host:port?streamid=..&latency=<ms>` → (host:port, stream id, latency).
pub fn parse_url(url: &str) -> Result<(String, Option<String>, Option<Duration>), String> {
    let u = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    if u.scheme() != "srt" {
        return Err(format!("{url}: not an srt:// URL"));
    }
    let host = u.host_str().ok_or_else(|| format!("{url}: no host"))?;
    let port = u.port().ok_or_else(|| format!("{url}: no port"))?;
    let mut stream_id = None;
    let mut latency = None;
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "streamid" => stream_id = Some(v.into_owned()),
            "latency" => {
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("{url}: latency is not a number of ms"))?;
                latency = Some(Duration::from_millis(ms));
            }
            _ => {}
        }
    }
    Ok((format!("{host}:{port}"), stream_id, latency))
}

/// Play until `plan.stop`; `stall`: stop reading after the first video frame.
pub async fn play(
    addr: &str,
    stream_id: Option<&str>,
    latency: Option<Duration>,
    plan: &Plan,
    stall: bool,
) -> Reader {
    let mut out = Reader {
        stalled: stall,
        ..Reader::default()
    };
    out.end = match run(addr, stream_id, latency, plan, stall, &mut out).await {
        Ok(why) => why.to_string(),
        Err(e) => format!("error: {e}"),
    };
    out
}

async fn run(
    addr: &str,
    stream_id: Option<&str>,
    latency: Option<Duration>,
    plan: &Plan,
    stall: bool,
    out: &mut Reader,
) -> Result<&'static str, String> {
    let mut builder = SrtSocket::builder();
    if let Some(l) = latency {
        builder = builder.latency(l);
    }
    let mut sock = tokio::time::timeout(plan.idle, builder.call(addr, stream_id))
        .await
        .map_err(|_| "connect: no answer".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    out.connected = true;
    let mut scan = TsScan::default();
    let mut frames = Vec::new();
    let mut gaps = TimestampGaps::new(plan.frame_ms);
    loop {
        let next = tokio::select! {
            () = plan.stop.cancelled() => return Ok("cancelled"),
            r = tokio::time::timeout(plan.idle, sock.next()) => r,
        };
        let data = match next {
            Err(_) => return Err("no data (idle)".into()),
            Ok(None) => return Ok("eof"),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok((_, data)))) => data,
        };
        let at = Instant::now();
        out.bytes_at(data.len(), at, &plan.window);
        frames.clear();
        let lost = scan.push(&data, &mut frames);
        out.lost_at(lost, at, &plan.window);
        for f in &frames {
            out.frame_at(*f, at, plan.epoch, &plan.window);
            if let Some(ms) = f {
                // Decode times in ms, wrapped like RTMP timestamps.
                let missing = gaps.push((*ms as u64 & 0xFFFF_FFFF) as u32);
                if plan.window.contains(at) {
                    out.frames_missing += missing;
                }
            }
        }
        if stall && !frames.is_empty() {
            // Keep the connection without reading (srt-tokio still buffers
            // and acknowledges in its own task).
            plan.stop.cancelled().await;
            return Ok("stalled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("srt://127.0.0.1:9000?streamid=live/x&latency=50"),
            Ok((
                "127.0.0.1:9000".into(),
                Some("live/x".into()),
                Some(Duration::from_millis(50))
            ))
        );
        assert!(parse_url("srt://h?streamid=a").is_err());
        assert!(parse_url("srt://h:1?latency=x").is_err());
    }
}
