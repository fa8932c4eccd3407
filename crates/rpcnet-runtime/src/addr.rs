//! Bind and peer addresses as embedders supply them (an optional IP text and an optional port
//! number, or `host:port`), checked once here so every entry point (server, worker, director,
//! client) reports the same `INVALID_ARGUMENT` errors.

use std::net::{IpAddr, SocketAddr};

use crate::error::RpcError;

/// Default IP to bind: loopback.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// A bind address from an IP address text (default [`DEFAULT_HOST`]) and a port (default 0 =
/// any free port).
///
/// Errors: `INVALID_ARGUMENT` when `host` is not an IP address or `port` is above 65535.
pub fn bind_addr(host: Option<&str>, port: Option<u32>) -> Result<SocketAddr, RpcError> {
    let host = host.unwrap_or(DEFAULT_HOST);
    let ip: IpAddr = host.parse().map_err(|_| {
        RpcError::invalid_argument(format!("host must be an IP address, got {host:?}"))
    })?;
    let port = port.unwrap_or(0);
    let port = u16::try_from(port).map_err(|_| {
        RpcError::invalid_argument(format!("port must be in 0..=65535, got {port}"))
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// Parses `ip:port` (a peer address such as a director's management address).
///
/// Errors: `INVALID_ARGUMENT` naming `what` and the text.
pub fn peer_addr(text: &str, what: &str) -> Result<SocketAddr, RpcError> {
    text.parse()
        .map_err(|_| RpcError::invalid_argument(format!("{what} must be ip:port, got {text:?}")))
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
        assert!(peer_addr("nope", "director")
            .unwrap_err()
            .message
            .contains("director"));
    }
}
