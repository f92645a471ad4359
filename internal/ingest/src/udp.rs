//! The UDP reader: MPEG-TS (optionally wrapped in RTP) in datagrams.
//!
//! URL forms:
//! - `udp://host:port`: unicast; bind `host:port` (`0.0.0.0` / `[::]` = all
//!   interfaces).
//! - `udp://239.1.1.1:5000?iface=10.0.0.5`: multicast; bind the group and
//!   port with `SO_REUSEADDR` (several receivers may share the port) and join
//!   the group on the interface with that IPv4 address (default: any,
//!   chosen by the routing table). For IPv6 groups `iface` is an interface
//!   index. `localaddr=` is accepted as an alias of `iface=`.
//! - `rtp://...`: same as `udp://`.
//!
//! RTP is detected per datagram and stripped: version 2 and a payload (after
//! the fixed header, CSRCs and any header extension) that starts with the TS
//! sync byte. A raw TS datagram starts with 0x47, whose top bits read as RTP
//! version 1, so the two never collide. `?rtp=0` turns detection off.
//!
//! No datagram for `net.timeout_sec` ends the session with a timeout error
//! (the worker reconnects, i.e. binds again).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

use crate::emit::TsEmitter;
use crate::error::IngestError;
use crate::{Session, redact};

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;
/// Kernel receive buffer asked for (best effort; capped by `rmem_max`).
const RECV_BUFFER: usize = 4 << 20;

/// What the URL asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// Address to bind (the group address for multicast).
    pub bind: SocketAddr,
    /// Multicast: join `bind.ip()` on this interface.
    pub multicast_iface: Option<Iface>,
    /// Detect and strip RTP headers.
    pub rtp_detect: bool,
}

/// Interface to join a multicast group on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iface {
    V4(Ipv4Addr),
    V6Index(u32),
}

impl UdpConfig {
    /// Parse a `udp://` / `rtp://` URL. Host names are resolved.
    pub async fn from_url(raw: &str) -> Result<Self, IngestError> {
        let url = url::Url::parse(raw)
            .map_err(|e| IngestError::config(format!("invalid udp url: {e}")))?;
        let port = url
            .port()
            .ok_or_else(|| IngestError::config("udp url needs a port"))?;
        let mut iface_opt = None;
        let mut rtp_detect = true;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "iface" | "localaddr" => iface_opt = Some(v.into_owned()),
                "rtp" => rtp_detect = !matches!(v.as_ref(), "0" | "false" | "off" | "no"),
                _ => {}
            }
        }
        let ip: IpAddr = match url.host() {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
            Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
            // Non-special schemes keep IPv4 literals as opaque host names.
            Some(url::Host::Domain(d)) => match d.parse::<IpAddr>() {
                Ok(a) => a,
                Err(_) => {
                    let mut addrs = tokio::net::lookup_host((d, port))
                        .await
                        .map_err(|e| IngestError::connect(format!("cannot resolve {d}: {e}")))?;
                    addrs
                        .next()
                        .ok_or_else(|| IngestError::connect(format!("cannot resolve {d}")))?
                        .ip()
                }
            },
        };
        let multicast_iface = if ip.is_multicast() {
            Some(match (ip, iface_opt.as_deref()) {
                (IpAddr::V4(_), None) => Iface::V4(Ipv4Addr::UNSPECIFIED),
                (IpAddr::V4(_), Some(s)) => Iface::V4(s.parse().map_err(|_| {
                    IngestError::config(format!(
                        "iface must be an IPv4 interface address, got {s:?}"
                    ))
                })?),
                (IpAddr::V6(_), None) => Iface::V6Index(0),
                (IpAddr::V6(_), Some(s)) => Iface::V6Index(s.parse().map_err(|_| {
                    IngestError::config(format!(
                        "iface must be an interface index for an IPv6 group, got {s:?}"
                    ))
                })?),
            })
        } else {
            None
        };
        Ok(Self {
            bind: SocketAddr::new(ip, port),
            multicast_iface,
            rtp_detect,
        })
    }

    /// Create the bound (and joined) socket.
    pub fn open(&self) -> Result<UdpSocket, IngestError> {
        let io = |what: &str, e: std::io::Error| IngestError::io(format!("{what}: {e}"));
        let socket = Socket::new(
            Domain::for_address(self.bind),
            Type::DGRAM,
            Some(Protocol::UDP),
        )
        .map_err(|e| io("udp socket", e))?;
        if self.multicast_iface.is_some() {
            socket
                .set_reuse_address(true)
                .map_err(|e| io("SO_REUSEADDR", e))?;
        }
        // Best effort: a bigger kernel buffer rides out scheduling hiccups.
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        socket
            .bind(&SockAddr::from(self.bind))
            .map_err(|e| io(&format!("bind {}", self.bind), e))?;
        match (self.bind.ip(), self.multicast_iface) {
            (IpAddr::V4(group), Some(Iface::V4(iface))) => socket
                .join_multicast_v4(&group, &iface)
                .map_err(|e| io(&format!("join {group} on {iface}"), e))?,
            (IpAddr::V6(group), Some(Iface::V6Index(index))) => socket
                .join_multicast_v6(&group, index)
                .map_err(|e| io(&format!("join {group} on interface #{index}"), e))?,
            _ => {}
        }
        socket
            .set_nonblocking(true)
            .map_err(|e| io("non-blocking", e))?;
        UdpSocket::from_std(socket.into()).map_err(|e| io("udp socket", e))
    }
}

/// The MPEG-TS payload of an RTP datagram, or `None` when `d` is not RTP
/// carrying TS.
pub fn rtp_ts_payload(d: &[u8]) -> Option<&[u8]> {
    if d.len() < 12 || d[0] >> 6 != 2 {
        return None;
    }
    let csrc = usize::from(d[0] & 0x0F);
    let mut start = 12 + 4 * csrc;
    if d[0] & 0x10 != 0 {
        // Header extension: 16-bit profile, 16-bit length in 32-bit words.
        let ext = d.get(start..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let mut end = d.len();
    if d[0] & 0x20 != 0 {
        // Padding: the last byte counts the padding bytes (itself included).
        end = end.checked_sub(usize::from(*d.last()?))?;
    }
    let payload = d.get(start..end)?;
    (payload.first() == Some(&os_mpegts::SYNC_BYTE)).then_some(payload)
}

/// Counts RTP sequence gaps; reports them at most every few seconds.
#[derive(Default)]
struct RtpGaps {
    last: Option<u16>,
    lost: u64,
    reported: Option<std::time::Instant>,
}

impl RtpGaps {
    const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// Feed a sequence number; returns the loss to report, if it is time.
    fn observe(&mut self, seq: u16) -> Option<u64> {
        if let Some(last) = self.last {
            let step = seq.wrapping_sub(last);
            // Small forward jumps are losses; anything else (reordering,
            // duplicates, a restarted sender) is not counted.
            if (2..1000).contains(&step) {
                self.lost += u64::from(step - 1);
            }
        }
        self.last = Some(seq);
        if self.lost == 0
            || self
                .reported
                .is_some_and(|t| t.elapsed() < Self::REPORT_EVERY)
        {
            return None;
        }
        self.reported = Some(std::time::Instant::now());
        Some(std::mem::take(&mut self.lost))
    }
}

/// One session of a udp input.
pub async fn run(s: &Session<'_>, out: &mut TsEmitter) -> Result<(), IngestError> {
    let shown = redact(s.url);
    let cfg = UdpConfig::from_url(s.url).await?;
    let socket = cfg.open()?;
    let timeout = s.timeout();
    tracing::info!(
        stream = %s.stream, input = s.input.priority, url = %shown,
        bind = %cfg.bind, multicast = cfg.multicast_iface.is_some(), rtp_detect = cfg.rtp_detect,
        "udp: listening"
    );
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut rtp_seen = false;
    let mut gaps = RtpGaps::default();
    loop {
        let n = match tokio::time::timeout(timeout, socket.recv(&mut buf)).await {
            Err(_) => {
                return Err(IngestError::timeout(format!(
                    "no datagram on {} for {} s",
                    cfg.bind,
                    timeout.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(IngestError::io(format!("udp receive: {e}"))),
            Ok(Ok(n)) => n,
        };
        let Some(datagram) = buf.get(..n) else {
            continue;
        };
        let payload = match cfg.rtp_detect.then(|| rtp_ts_payload(datagram)).flatten() {
            Some(p) => {
                if let Some(lost) = gaps.observe(u16::from_be_bytes([datagram[2], datagram[3]])) {
                    tracing::warn!(
                        stream = %s.stream, input = s.input.priority, url = %shown,
                        lost_datagrams = lost, "udp: RTP sequence gaps (datagrams lost before us)"
                    );
                }
                if !rtp_seen {
                    rtp_seen = true;
                    tracing::info!(
                        stream = %s.stream, input = s.input.priority, url = %shown,
                        "udp: RTP-wrapped MPEG-TS detected; stripping RTP headers"
                    );
                }
                p
            }
            None => datagram,
        };
        out.push(payload)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(flags: u8, extra: &[u8], payload: &[u8], padding: usize) -> Vec<u8> {
        let mut d = vec![0x80 | flags, 33, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        d.extend_from_slice(extra);
        d.extend_from_slice(payload);
        if padding > 0 {
            d.extend(std::iter::repeat_n(0, padding - 1));
            d.push(padding as u8);
        }
        d
    }

    #[test]
    fn rtp_detection() {
        let ts = [0x47u8, 1, 2, 3];
        assert_eq!(rtp_ts_payload(&rtp(0, &[], &ts, 0)), Some(&ts[..]));
        // Two CSRCs.
        let csrc = [0u8; 8];
        assert_eq!(rtp_ts_payload(&rtp(2, &csrc, &ts, 0)), Some(&ts[..]));
        // Header extension of one word.
        let ext = [0xBE, 0xDE, 0, 1, 9, 9, 9, 9];
        assert_eq!(rtp_ts_payload(&rtp(0x10, &ext, &ts, 0)), Some(&ts[..]));
        // Padding.
        assert_eq!(rtp_ts_payload(&rtp(0x20, &[], &ts, 4)), Some(&ts[..]));
        // Raw TS is not RTP; RTP with another payload is not ours.
        assert_eq!(rtp_ts_payload(&[0x47, 0x40, 0, 0x10]), None);
        assert_eq!(rtp_ts_payload(&rtp(0, &[], &[0, 0, 1], 0)), None);
        // Truncated / lying headers never panic.
        assert_eq!(rtp_ts_payload(&[0x80; 5]), None);
        assert_eq!(rtp_ts_payload(&rtp(0x0F, &[], &[], 0)), None);
        assert_eq!(
            rtp_ts_payload(&rtp(0x10, &[0, 0, 0xFF, 0xFF], &ts, 0)),
            None
        );
        assert_eq!(
            rtp_ts_payload(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]),
            None
        );
    }

    #[test]
    fn rtp_gaps() {
        let mut g = RtpGaps::default();
        assert_eq!(g.observe(65_534), None);
        assert_eq!(g.observe(65_535), None);
        assert_eq!(g.observe(2), Some(2), "wraps around");
        assert_eq!(g.observe(5), None, "rate limited");
        assert_eq!(g.observe(4), None, "reordering is not loss");
        assert_eq!(g.lost, 2);
    }

    #[tokio::test]
    async fn url_forms() {
        let c = UdpConfig::from_url("udp://127.0.0.1:5000").await;
        assert_eq!(
            c,
            Ok(UdpConfig {
                bind: "127.0.0.1:5000".parse().unwrap_or_else(|e| panic!("{e}")),
                multicast_iface: None,
                rtp_detect: true
            })
        );
        let c = UdpConfig::from_url("udp://239.1.1.1:5000?iface=127.0.0.1&rtp=0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.multicast_iface,
            Some(Iface::V4(Ipv4Addr::new(127, 0, 0, 1)))
        );
        assert!(!c.rtp_detect);
        let c = UdpConfig::from_url("udp://239.1.1.1:5000")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.multicast_iface, Some(Iface::V4(Ipv4Addr::UNSPECIFIED)));
        assert!(
            UdpConfig::from_url("udp://239.1.1.1:5000?iface=eth0")
                .await
                .is_err()
        );
        assert!(UdpConfig::from_url("udp://127.0.0.1").await.is_err());
    }
}
