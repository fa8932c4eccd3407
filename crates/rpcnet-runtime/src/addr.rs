//! Addresses as embedders supply them, checked once here so every entry point (server, worker,
//! director, client) reports the same `INVALID_ARGUMENT` errors:
//!
//! - bind addresses: an optional host (an IP address or a DNS name, resolved with tokio's
//!   `lookup_host`) and an optional port number ([`bind_addr`], [`bind_address`]);
//! - peer addresses, `host:port` with a DNS name or an IP address ([`host_port`],
//!   [`resolve_all`], [`resolve`]): a DNS name may name several peers (several directors);
//! - advertised addresses: what a process bound to a wildcard address (`0.0.0.0`, `[::]`) tells
//!   its peers to connect to ([`advertised`], [`default_advertised`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::RpcError;

/// Default IP to bind: loopback.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// A bind address from an IP address text (default [`DEFAULT_HOST`]) and a port (default 0 =
/// any free port). See [`bind_address`] for a host that may be a DNS name.
///
/// Errors: `INVALID_ARGUMENT` when `host` is not an IP address or `port` is above 65535.
pub fn bind_addr(host: Option<&str>, port: Option<u32>) -> Result<SocketAddr, RpcError> {
    let host = host.unwrap_or(DEFAULT_HOST);
    let ip: IpAddr = host.parse().map_err(|_| {
        RpcError::invalid_argument(format!("host must be an IP address, got {host:?}"))
    })?;
    Ok(SocketAddr::new(ip, bind_port(port)?))
}

fn bind_port(port: Option<u32>) -> Result<u16, RpcError> {
    let port = port.unwrap_or(0);
    u16::try_from(port)
        .map_err(|_| RpcError::invalid_argument(format!("port must be in 0..=65535, got {port}")))
}

/// A bind address from a host (default [`DEFAULT_HOST`]): an IP address, or a DNS name resolved
/// with tokio's `lookup_host` (its first address, e.g. `localhost` -> `127.0.0.1`); and a port
/// (default 0 = any free port).
///
/// Errors: `INVALID_ARGUMENT` when `port` is above 65535 or `host` is neither an IP address nor a
/// name that resolves (the message names `host` and the resolver's error).
pub async fn bind_address(host: Option<&str>, port: Option<u32>) -> Result<SocketAddr, RpcError> {
    let host = host.unwrap_or(DEFAULT_HOST);
    let port = bind_port(port)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let unusable = |why: String| {
        RpcError::invalid_argument(format!(
            "host must be an IP address or a DNS name that resolves, got {host:?}: {why}"
        ))
    };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| unusable(e.to_string()))?
        .next()
        .ok_or_else(|| unusable("it resolves to no address".into()))
}

/// Checks a peer address, `host:port`: `host` is a DNS name or an IP address (IPv6 in brackets,
/// `[::1]:7001`), `port` is in 1..=65535. Returns `(host, port)`, the host without brackets.
/// Nothing is resolved.
///
/// Errors: `INVALID_ARGUMENT` naming `what` (e.g. `director`) and the text.
pub fn host_port(text: &str, what: &str) -> Result<(String, u16), RpcError> {
    let bad = || {
        RpcError::invalid_argument(format!(
            "{what} must be host:port (a DNS name or an IP address, IPv6 in brackets, and a \
             port in 1..=65535), got {text:?}"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .filter(|h| h.parse::<Ipv6Addr>().is_ok())
            .ok_or_else(bad)?,
        None => host,
    };
    let malformed = |c: char| c.is_whitespace() || c == '[' || c == ']' || c == '/';
    let unbracketed_v6 = !text.starts_with('[') && host.contains(':');
    if host.is_empty() || host.contains(malformed) || unbracketed_v6 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Resolves a peer address `host:port` (checked as [`host_port`] does) with tokio's
/// `lookup_host` to every address it names, in the resolver's order, without repeats.
///
/// Errors: `INVALID_ARGUMENT` for a malformed text (naming `what`); `UNAVAILABLE` when the name
/// does not resolve (now: a name may resolve later) or resolves to no address.
pub async fn resolve_all(text: &str, what: &str) -> Result<Vec<SocketAddr>, RpcError> {
    let (host, port) = host_port(text, what)?;
    let found = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| RpcError::unavailable(format!("cannot resolve {what} {text:?}: {e}")))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(RpcError::unavailable(format!(
            "{what} {text:?} resolves to no address"
        )));
    }
    Ok(addrs)
}

/// Resolves `host:port` (names allowed) to its first address.
///
/// Errors: `INVALID_ARGUMENT` when it does not resolve.
pub async fn resolve(address: &str) -> Result<SocketAddr, RpcError> {
    tokio::net::lookup_host(address)
        .await
        .map_err(|e| RpcError::invalid_argument(format!("cannot resolve {address:?}: {e}")))?
        .next()
        .ok_or_else(|| RpcError::invalid_argument(format!("{address:?} resolves to no address")))
}

/// The address a process whose socket is bound to `bound` tells its peers to connect to
/// (`host:port` text, an IPv6 literal in brackets).
///
/// - `advertise` given: `host:port` as [`host_port`] checks it, or a host alone (a DNS name or
///   an IP address) meaning the bound port. A name must resolve now (tokio's `lookup_host`),
///   and it is returned as given, not resolved: the peer resolves it when it connects.
/// - `advertise` absent: [`default_advertised`]`(bound)`.
///
/// Errors: `INVALID_ARGUMENT` naming `what` (e.g. `advertiseAddress`) for a malformed text or a
/// name that does not resolve.
pub async fn advertised(
    advertise: Option<&str>,
    bound: SocketAddr,
    what: &str,
) -> Result<String, RpcError> {
    let Some(text) = advertise else {
        return Ok(default_advertised(bound).to_string());
    };
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, bound.port()).to_string());
    }
    let with_port = if text.contains(':') {
        text.to_string()
    } else {
        format!("{text}:{}", bound.port())
    };
    resolve_all(&with_port, what)
        .await
        .map_err(|e| RpcError::invalid_argument(e.message))?;
    Ok(with_port)
}

/// The address to advertise for a socket bound to `bound` when none is configured: `bound`
/// itself when its IP is specific; for a wildcard IP (`0.0.0.0` or `::`), the first address of
/// the host's network interfaces (in the order the OS lists them) that is not loopback, of the
/// bound family (for IPv6 also not link-local, which needs a scope; a `::` socket accepts IPv4
/// too, so an IPv4 address is taken when there is no IPv6 one), with the bound port; loopback
/// when the host has no such address.
pub fn default_advertised(bound: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let interfaces: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|list| list.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified() && !v4.is_link_local(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    };
    let of_family = |v6: bool| {
        interfaces
            .iter()
            .copied()
            .find(|ip| usable(ip) && ip.is_ipv6() == v6)
    };
    let ip = match bound.ip() {
        IpAddr::V4(_) => of_family(false).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(_) => of_family(true)
            .or_else(|| of_family(false))
            .unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    };
    SocketAddr::new(ip, bound.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addr_checks_host_and_port() {
        assert_eq!(
            bind_addr(None, None).unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 0))
        );
        assert_eq!(bind_addr(Some("::1"), Some(7000)).unwrap().port(), 7000);
        let e = bind_addr(None, Some(70_000)).unwrap_err();
        assert!(e.message.contains("70000"), "{}", e.message);
        assert!(bind_addr(Some("localhost"), None)
            .unwrap_err()
            .message
            .contains("IP address"));
    }

    #[tokio::test]
    async fn bind_address_resolves_names() {
        let a = bind_address(Some("localhost"), Some(7000)).await.unwrap();
        assert!(a.ip().is_loopback(), "{a}");
        assert_eq!(a.port(), 7000);
        assert_eq!(
            bind_address(Some("0.0.0.0"), None).await.unwrap(),
            SocketAddr::from(([0, 0, 0, 0], 0))
        );
        let e = bind_address(Some("no-such-host.invalid"), None)
            .await
            .unwrap_err();
        assert!(e
            .message
            .starts_with("host must be an IP address or a DNS name"));
    }

    #[test]
    fn host_port_accepts_names_and_ip_literals() {
        assert_eq!(
            host_port("localhost:7001", "director").unwrap(),
            ("localhost".to_string(), 7001)
        );
        assert_eq!(
            host_port("[::1]:7001", "director").unwrap(),
            ("::1".to_string(), 7001)
        );
        assert_eq!(host_port("10.0.0.1:1", "d").unwrap().1, 1);
        for bad in [
            "nope",
            "host:",
            ":7001",
            "host:0",
            "host:70000",
            "::1:7001",
            "[nope]:7001",
            "a b:1",
        ] {
            let e = host_port(bad, "director").unwrap_err();
            assert!(
                e.message.starts_with("director must be host:port"),
                "{bad}: {}",
                e.message
            );
            assert!(e.message.contains(&format!("{bad:?}")), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn names_resolve_to_every_address_once() {
        let all = resolve_all("localhost:7001", "director").await.unwrap();
        assert!(!all.is_empty() && all.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(
            resolve_all("127.0.0.1:7001", "director").await.unwrap(),
            vec![SocketAddr::from(([127, 0, 0, 1], 7001))]
        );
        let e = resolve_all("no-such-host.invalid:7001", "director")
            .await
            .unwrap_err();
        assert_eq!(e.code, rpcnet_protocol::ErrorCode::Unavailable);
    }

    #[tokio::test]
    async fn advertised_addresses() {
        let bound = SocketAddr::from(([0, 0, 0, 0], 4000));
        // A wildcard bind advertises an interface address with the bound port.
        let d = default_advertised(bound);
        assert!(d.is_ipv4() && !d.ip().is_unspecified(), "{d}");
        assert_eq!(d.port(), 4000);
        let v6 = default_advertised("[::]:4000".parse().unwrap());
        assert!(!v6.ip().is_unspecified(), "{v6}");
        // A specific bind advertises itself.
        let lo = SocketAddr::from(([127, 0, 0, 1], 4000));
        assert_eq!(default_advertised(lo), lo);
        assert_eq!(advertised(None, lo, "a").await.unwrap(), "127.0.0.1:4000");
        // Given: an IP (the bound port), a name (kept as a name), host:port.
        assert_eq!(
            advertised(Some("127.0.0.1"), bound, "a").await.unwrap(),
            "127.0.0.1:4000"
        );
        assert_eq!(
            advertised(Some("::1"), bound, "a").await.unwrap(),
            "[::1]:4000"
        );
        assert_eq!(
            advertised(Some("localhost"), bound, "a").await.unwrap(),
            "localhost:4000"
        );
        assert_eq!(
            advertised(Some("localhost:5000"), bound, "a")
                .await
                .unwrap(),
            "localhost:5000"
        );
        let e = advertised(Some("no-such-host.invalid"), bound, "advertiseAddress")
            .await
            .unwrap_err();
        assert_eq!(e.code, rpcnet_protocol::ErrorCode::InvalidArgument);
        assert!(e.message.contains("advertiseAddress"), "{}", e.message);
        let e = advertised(Some("a b:1"), bound, "advertiseAddress")
            .await
            .unwrap_err();
        assert!(e.message.starts_with("advertiseAddress must be host:port"));
    }
}
