//! The client's address behind reverse proxies the operator trusts (`--trusted-proxy`): the
//! rightmost `X-Forwarded-For` hop that is not itself a trusted proxy, as nginx's
//! `real_ip_recursive` and Rails' trusted proxies take it. From any other peer the header is
//! ignored, so a client cannot choose its address. What the address is used for (the login
//! throttle) lives in `throttle.rs`.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The header a proxy appends the address it received the request from to.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Parse one `--trusted-proxy` value: a CIDR range (`10.0.0.0/8`, `fd00::/8`) or a single
/// address (`127.0.0.1`, `::1`).
pub fn parse_trusted_proxy(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(|addr| IpNet::from(addr.to_canonical())))
        .map_err(|_| format!("{value:?} is neither an IP address nor a CIDR range"))
}

/// The client's address for a request from `peer`. Only when `peer` is in a `trusted` range
/// is `X-Forwarded-For` read: walking from the right (the hop nearest to us), trusted
/// proxies are skipped and the first other address is the client. If every hop is trusted,
/// the leftmost is the client. A missing header, or a hop on that walk that is not an IP
/// address, leaves the peer. Hops left of the client are the client's own claims and are not
/// read. IPv4-mapped IPv6 addresses count as their IPv4 address.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |addr: &IpAddr| trusted.iter().any(|net| net.contains(addr));
    if !is_trusted(&peer) {
        return peer;
    }
    // The lines of a repeated header are one list, in order (RFC 9110, section 5.3).
    let nearest_first =
        headers.get_all(X_FORWARDED_FOR).iter().rev().flat_map(|line| line.as_bytes().rsplit(|&b| b == b','));
    let mut client = peer;
    for hop in nearest_first {
        let Some(addr) = std::str::from_utf8(hop).ok().and_then(|hop| hop.trim().parse::<IpAddr>().ok()) else {
            return peer;
        };
        client = addr.to_canonical();
        if !is_trusted(&client) {
            return client;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(addr: &str) -> IpAddr {
        addr.parse().unwrap()
    }

    fn trusted(ranges: &[&str]) -> Vec<IpNet> {
        ranges.iter().map(|r| parse_trusted_proxy(r).unwrap()).collect()
    }

    fn forwarded_for(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, line.parse().unwrap());
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_header_says() {
        let headers = forwarded_for(&["203.0.113.7"]);
        assert_eq!(client_addr(ip("198.51.100.1"), &headers, &[]), ip("198.51.100.1"));
        assert_eq!(client_addr(ip("198.51.100.1"), &headers, &trusted(&["10.0.0.0/8"])), ip("198.51.100.1"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
        let proxy = trusted(&["127.0.0.1"]);
        assert_eq!(client_addr(ip("127.0.0.1"), &forwarded_for(&["203.0.113.7"]), &proxy), ip("203.0.113.7"));
        // What the client claimed before the proxy appended its address is not believed.
        let spoofed = forwarded_for(&["192.0.2.99, 203.0.113.7"]);
        assert_eq!(client_addr(ip("127.0.0.1"), &spoofed, &proxy), ip("203.0.113.7"));
        assert_eq!(client_addr(ip("127.0.0.1"), &HeaderMap::new(), &proxy), ip("127.0.0.1"), "no header: the peer");
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_from_the_right() {
        let proxies = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        let chain = forwarded_for(&["192.0.2.99, 203.0.113.7, 10.1.2.3, 10.4.5.6"]);
        assert_eq!(client_addr(ip("127.0.0.1"), &chain, &proxies), ip("203.0.113.7"));
        // Several header lines are one list.
        let lines = forwarded_for(&["192.0.2.99, 203.0.113.7", "10.1.2.3", " 10.4.5.6 "]);
        assert_eq!(client_addr(ip("127.0.0.1"), &lines, &proxies), ip("203.0.113.7"));
        // Every hop trusted: the furthest one.
        assert_eq!(client_addr(ip("127.0.0.1"), &forwarded_for(&["10.9.9.9, 10.1.2.3"]), &proxies), ip("10.9.9.9"));
    }

    #[test]
    fn a_malformed_header_leaves_the_peer() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for bad in ["", "unknown", "203.0.113.7:4711", "203.0.113.7,", "203.0.113.7, 10.1.2.3 junk", "300.1.2.3"] {
            assert_eq!(client_addr(peer, &forwarded_for(&[bad]), &proxies), peer, "{bad:?}");
        }
        // Past the client, the header is the client's to fill: junk there changes nothing.
        assert_eq!(client_addr(peer, &forwarded_for(&["junk, 203.0.113.7"]), &proxies), ip("203.0.113.7"));
        let mut non_ascii = HeaderMap::new();
        non_ascii.insert(X_FORWARDED_FOR, axum::http::HeaderValue::from_bytes(b"\xff, 203.0.113.7").unwrap());
        assert_eq!(client_addr(peer, &non_ascii, &proxies), ip("203.0.113.7"));
    }

    #[test]
    fn ipv6_peers_clients_and_ranges() {
        let proxies = trusted(&["fd00::/8", "::1"]);
        let headers = forwarded_for(&["2001:db8::7, fd00::2"]);
        assert_eq!(client_addr(ip("::1"), &headers, &proxies), ip("2001:db8::7"));
        assert_eq!(client_addr(ip("2001:db8::1"), &headers, &proxies), ip("2001:db8::1"), "an untrusted v6 peer");
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6 addresses.
        let v4 = trusted(&["127.0.0.1"]);
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), &forwarded_for(&["::ffff:203.0.113.7"]), &v4),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        assert_eq!(parse_trusted_proxy(" 10.0.0.0/8").unwrap(), "10.0.0.0/8".parse::<IpNet>().unwrap());
        assert_eq!(parse_trusted_proxy("127.0.0.1").unwrap(), "127.0.0.1/32".parse::<IpNet>().unwrap());
        assert_eq!(parse_trusted_proxy("::1").unwrap(), "::1/128".parse::<IpNet>().unwrap());
        for bad in ["", "proxy.internal", "10.0.0.0/33", "10.0.0.0/"] {
            assert!(parse_trusted_proxy(bad).is_err(), "{bad:?}");
        }
    }
}
