//! Which IP address a request comes from.
//!
//! The client is found by walking the forwarding chain from the right: the chain is the addresses
//! in `X-Forwarded-For` followed by the downstream peer that connected to Envoy. With
//! `trusted_hops: 0` the client is the downstream peer (nothing in the header is trusted). With
//! `trusted_hops: N`, the last N hops are proxies we trust to append honestly, so the client is the
//! address just before them. The left-most entry is never trusted blindly: a client can write
//! anything there.

use serde::Deserialize;
use std::net::IpAddr;

/// How to find the client address.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
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

/// The client address for a request.
///
/// `xff` is the `X-Forwarded-For` header as Envoy passes it on, and `downstream` the peer address
/// (`source.address`). When Envoy itself appended the peer to `X-Forwarded-For` (HCM
/// `use_remote_address: true`), that entry is the peer, not one more hop, and is counted once.
/// When the header has fewer entries than trusted hops, the request did not come through all the
/// trusted proxies, and the nearest untrusted address is used.
pub fn client_ip(
    config: &ClientIpConfig,
    xff: Option<&str>,
    downstream: Option<&str>,
) -> Option<IpAddr> {
    let peer = downstream.and_then(parse_address);
    if config.trusted_hops == 0 {
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
    let mut chain: &[&str] = &entries;
    if let (Some(last), Some(peer)) = (chain.last(), peer) {
        if parse_address(last) == Some(peer) {
            chain = &chain[..chain.len() - 1];
        }
    }
    // The peer is hop 1; each further trusted hop moves one entry to the left.
    let skip = config.trusted_hops as usize - 1;
    if chain.len() <= skip {
        return match chain.first() {
            Some(first) => parse_address(first).or(peer),
            None => peer,
        };
    }
    parse_address(chain[chain.len() - 1 - skip])
}
