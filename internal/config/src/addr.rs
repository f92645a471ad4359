use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Parse a listen address: `:8080` (all interfaces), `127.0.0.1:8080`,
/// `[::1]:8080` or `0.0.0.0:0` (any free port).
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("\"{s}\" is not host:port (bad port)"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| format!("\"{s}\" is not host:port (e.g. :8080 or 127.0.0.1:8080)"))
}
