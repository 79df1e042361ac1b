//! Which IP address a request comes from.
//!
//! `trusted_hops: 0` (the default): the peer that connected to Envoy (`source.address`). When
//! Envoy's own HTTP connection manager is told how many proxies to trust (`xff_num_trusted_hops`),
//! that peer address already is the trusted client address, and this default is right.
//!
//! `trusted_hops: N`: the N-th address from the right of `X-Forwarded-For`, as Envoy passes the
//! header to the filters. N counts every trusted proxy that appended an address, **including Envoy
//! itself** when it appends the peer (`use_remote_address: true`). Example: a load balancer in
//! front of an edge Envoy with `use_remote_address: true`: the LB appends the client, Envoy
//! appends the LB, so `trusted_hops: 2`. The left-most entries, which a client can write, are
//! never used unless the header is shorter than N (then the request came through fewer proxies,
//! and the left-most entry is the earliest one a trusted proxy wrote).

use serde::Deserialize;
use std::net::IpAddr;

/// How to find the client address.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientIpConfig {
    /// How many proxies in front of Envoy append to `X-Forwarded-For` and are trusted (default 0).
    #[serde(default)]
    pub trusted_hops: u32,
}

/// Parses `1.2.3.4:5678`, `[::1]:80`, `::1` or `1.2.3.4` into an IP address.
pub fn parse_address(addr: &str) -> Option<IpAddr> {
    let addr = addr.trim();
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = addr.strip_prefix('[') {
        let end = rest.find(']')?;
        return rest[..end].parse().ok();
    }
    let (host, port) = addr.rsplit_once(':')?;
    if port.bytes().all(|b| b.is_ascii_digit()) {
        host.parse().ok()
    } else {
        None
    }
}

/// The client address for a request: `xff` is `X-Forwarded-For` as the filter sees it and
/// `downstream` the peer address (`source.address`).
pub fn client_ip(
    config: &ClientIpConfig,
    xff: Option<&str>,
    downstream: Option<&str>,
) -> Option<IpAddr> {
    let peer = downstream.and_then(parse_address);
    let n = config.trusted_hops as usize;
    if n == 0 {
        return peer;
    }
    let entries: Vec<&str> = xff
        .map(|h| {
            h.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match entries.len() {
        0 => peer,
        len if len < n => parse_address(entries[0]),
        len => parse_address(entries[len - n]),
    }
}
