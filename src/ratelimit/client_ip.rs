//! Who the client is: `REMOTE_ADDR` unless a configured trusted proxy says otherwise.
//!
//! `X-Forwarded-For` and RFC 7239 `Forwarded` are written by whoever sends the request, so they
//! are read only when the peer (`REMOTE_ADDR`) is a trusted proxy, and then from the right: each
//! proxy appends the address it saw, so the right-most entry that is not a trusted proxy is the
//! first address no trusted party vouches beyond. Entries left of it are the client's own words.
//!
//! - **Trusted CIDRs:** the peer must be in the set; walk the header right to left skipping
//!   trusted addresses; the first untrusted one is the client. A malformed entry stops the walk:
//!   the client is the last trusted hop seen (the peer when the right-most entry is malformed).
//! - **Hop count `n`:** exactly `n` proxies stand in front of the app and the peer is the last of
//!   them; the client is the `n`-th entry from the right. With fewer entries than `n`, the request
//!   did not come through the proxies and the peer is the client.
//!
//! Addresses are keyed by prefix: IPv4 by /32 and IPv6 by /64 by default (one end site usually
//! gets a whole /64, so keying by /128 would let one host rotate through 2^64 keys).
//! IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are IPv4.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::error::RateLimitError;

/// An address block, e.g. `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32 or /128.
/// ipnet parses it; an IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`) is the IPv4 block it
/// maps, since addresses are compared in their canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, RateLimitError> {
        let err = |reason: &str| RateLimitError::InvalidCidr {
            cidr: text.to_owned(),
            reason: reason.to_owned(),
        };
        let t = text.trim();
        let net = match t.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => match (t.parse::<IpAddr>(), t.split_once('/')) {
                (Ok(ip), _) => IpNet::from(ip),
                (Err(_), Some((addr, _))) if addr.parse::<IpAddr>().is_ok() => {
                    let max = if addr.contains(':') { 128 } else { 32 };
                    return Err(err(&format!("the prefix length must be 0 to {max}")));
                }
                _ => return Err(err("not an IPv4 or IPv6 address")),
            },
        };
        let net = match net {
            IpNet::V6(v6) => match (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96)) {
                (Some(v4), Some(len)) => {
                    IpNet::new(IpAddr::V4(v4), len).map_err(|_| err("bad prefix"))?
                }
                _ => net,
            },
            IpNet::V4(_) => net,
        };
        Ok(Self(net.trunc()))
    }

    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

/// Keeps the first `prefix` bits of `ip`.
#[must_use]
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    IpNet::new(ip, prefix.min(max)).map_or(ip, |n| n.network())
}

/// Which proxies may speak for the client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trust {
    /// Headers are never read: the client is `REMOTE_ADDR`.
    #[default]
    Nobody,
    Proxies(Vec<Cidr>),
    Hops(u32),
}

/// The header a trusted proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=...`.
    Forwarded,
}

impl ForwardedHeader {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The `client_ip` config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp {
    pub trust: Trust,
    pub header: ForwardedHeader,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// `trust_unix_socket`: a peer with no address (a proxy on a unix socket, where WSGI servers
    /// leave `REMOTE_ADDR` empty) is a trusted proxy in `trusted_proxies` mode. With
    /// `trusted_hops`, an empty peer is always the last hop: the count says who the proxies are.
    pub unix_socket: bool,
}

impl Default for ClientIp {
    fn default() -> Self {
        Self {
            trust: Trust::Nobody,
            header: ForwardedHeader::XForwardedFor,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
            unix_socket: false,
        }
    }
}

impl ClientIp {
    /// Whether a forwarding header is read at all (the gate then asks for it).
    #[must_use]
    pub fn reads_header(&self) -> bool {
        self.trust != Trust::Nobody
    }

    /// The client's address; `None` when `REMOTE_ADDR` is missing or not an address.
    #[must_use]
    pub fn resolve(&self, remote_addr: Option<&str>, header: Option<&str>) -> Option<IpAddr> {
        // No address at all is a unix-socket peer: a proxy when the config says so, and then the
        // client is whatever the header says, or unknown.
        let peer = match remote_addr {
            None | Some("") => None,
            Some(addr) => Some(parse_addr(addr)?),
        };
        let peer_is_proxy = match (&self.trust, peer) {
            (Trust::Nobody, _) => false,
            (Trust::Hops(_), _) => true,
            (Trust::Proxies(cidrs), Some(ip)) => cidrs.iter().any(|c| c.contains(ip)),
            (Trust::Proxies(_), None) => self.unix_socket,
        };
        let Some(header) = header.filter(|_| peer_is_proxy) else {
            return peer;
        };
        let parse = |entry: &str| match self.header {
            ForwardedHeader::XForwardedFor => parse_addr(entry),
            ForwardedHeader::Forwarded => forwarded_for(entry).and_then(parse_addr),
        };
        match &self.trust {
            Trust::Nobody => peer,
            Trust::Hops(n) => {
                let n = usize::try_from(*n).unwrap_or(usize::MAX);
                match header.rsplit(',').nth(n.saturating_sub(1)) {
                    Some(entry) => parse(entry).or(peer),
                    None => peer,
                }
            }
            Trust::Proxies(cidrs) => {
                let mut last = peer;
                for entry in header.rsplit(',') {
                    match parse(entry) {
                        Some(ip) if cidrs.iter().any(|c| c.contains(ip)) => last = Some(ip),
                        Some(ip) => return Some(ip),
                        None => return last,
                    }
                }
                last
            }
        }
    }

    /// The address as a rate-limit key: masked to the configured prefix.
    #[must_use]
    pub fn key_of(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => mask(ip, self.ipv4_prefix),
            IpAddr::V6(_) => mask(ip, self.ipv6_prefix),
        }
    }
}

/// An address as `REMOTE_ADDR` or a forwarding header writes it: bare, with a port, bracketed,
/// with an IPv6 zone. Returns the canonical form (IPv4-mapped IPv6 becomes IPv4).
#[must_use]
pub fn parse_addr(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    let inner = t
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map_or(t, |(a, _)| a);
    let no_zone = inner.split_once('%').map_or(inner, |(a, _)| a);
    no_zone.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The `for=` value of one `Forwarded` element, unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    for pair in element.split(';') {
        let (k, v) = pair.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("for") {
            let v = v.trim();
            return Some(
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> ClientIp {
        ClientIp {
            trust: Trust::Proxies(list.iter().map(|c| Cidr::parse(c).unwrap()).collect()),
            ..ClientIp::default()
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8:1::5"))
        );
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(
            Cidr::parse("::ffff:10.0.0.1")
                .unwrap()
                .contains(ip("10.0.0.1"))
        );
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains(ip("10.1.2.3")) && !mapped.contains(ip("11.0.0.1")));
        assert_eq!(mapped, Cidr::parse("10.0.0.0/8").unwrap());
        assert!(
            Cidr::parse(" 10.1.2.3/8 ")
                .unwrap()
                .contains(ip("10.200.0.1"))
        );
        for bad in ["10.0.0.0/33", "10.0.0/8", "x", "::/129", "1.2.3.4/-1", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn default_ignores_headers() {
        let c = ClientIp::default();
        assert_eq!(
            c.resolve(Some("203.0.113.9"), Some("1.1.1.1")),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(c.resolve(None, Some("1.1.1.1")), None);
        assert_eq!(c.resolve(Some("junk"), None), None);
    }

    #[test]
    fn untrusted_peer_cannot_spoof() {
        let c = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            c.resolve(Some("203.0.113.9"), Some("1.1.1.1, 10.0.0.1")),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn trusted_chain_right_most_untrusted() {
        let c = proxies(&["10.0.0.0/8", "192.168.0.0/16"]);
        // client forged "6.6.6.6"; proxy A (192.168.1.1) saw 198.51.100.7; proxy B saw A.
        assert_eq!(
            c.resolve(Some("10.0.0.2"), Some("6.6.6.6, 198.51.100.7, 192.168.1.1")),
            Some(ip("198.51.100.7"))
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            c.resolve(Some("10.0.0.2"), Some("10.9.9.9, 192.168.1.1")),
            Some(ip("10.9.9.9"))
        );
        // Garbage right of the client: stop at the last trusted hop.
        assert_eq!(
            c.resolve(Some("10.0.0.2"), Some("1.2.3.4, nonsense, 192.168.1.1")),
            Some(ip("192.168.1.1"))
        );
        assert_eq!(c.resolve(Some("10.0.0.2"), Some("")), Some(ip("10.0.0.2")));
    }

    #[test]
    fn hop_count() {
        let c = ClientIp {
            trust: Trust::Hops(2),
            ..ClientIp::default()
        };
        assert_eq!(
            c.resolve(Some("10.0.0.2"), Some("6.6.6.6, 198.51.100.7, 10.0.0.3")),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            c.resolve(Some("10.0.0.2"), Some("198.51.100.7")),
            Some(ip("10.0.0.2")),
            "fewer entries than hops: the proxies were bypassed"
        );
    }

    #[test]
    fn unix_socket_peers() {
        let hops = ClientIp {
            trust: Trust::Hops(1),
            ..ClientIp::default()
        };
        let xff = Some("6.6.6.6, 198.51.100.7");
        for peer in [None, Some("")] {
            assert_eq!(hops.resolve(peer, xff), Some(ip("198.51.100.7")));
            assert_eq!(hops.resolve(peer, None), None);
            assert_eq!(ClientIp::default().resolve(peer, xff), None);
            // CIDR mode reads the header from a unix-socket peer only when told to.
            let cidrs = proxies(&["10.0.0.0/8"]);
            assert_eq!(cidrs.resolve(peer, xff), None);
            let unix = ClientIp {
                unix_socket: true,
                ..proxies(&["10.0.0.0/8"])
            };
            assert_eq!(unix.resolve(peer, xff), Some(ip("198.51.100.7")));
            assert_eq!(
                unix.resolve(peer, Some("6.6.6.6, 10.0.0.9")),
                Some(ip("6.6.6.6"))
            );
        }
    }

    #[test]
    fn rfc7239_forwarded() {
        let c = ClientIp {
            header: ForwardedHeader::Forwarded,
            ..proxies(&["10.0.0.0/8"])
        };
        assert_eq!(
            c.resolve(
                Some("10.0.0.2"),
                Some(
                    "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.1.1.1;by=10.0.0.2"
                )
            ),
            Some(ip("2001:db8:cafe::17"))
        );
        assert_eq!(
            c.resolve(Some("10.0.0.2"), Some("for=unknown, for=10.1.1.1")),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(
            c.resolve(Some("10.0.0.2"), Some("for=\"_hidden\"")),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn addresses_in_every_form() {
        assert_eq!(parse_addr(" 1.2.3.4 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_addr("1.2.3.4:80"), Some(ip("1.2.3.4")));
        assert_eq!(parse_addr("[::1]:80"), Some(ip("::1")));
        assert_eq!(parse_addr("[::1]"), Some(ip("::1")));
        assert_eq!(parse_addr("fe80::1%eth0"), Some(ip("fe80::1")));
        assert_eq!(parse_addr("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_addr("unknown"), None);
    }

    #[test]
    fn ipv6_keyed_by_64() {
        let c = ClientIp::default();
        assert_eq!(
            c.key_of(ip("2001:db8:1:2:aaaa::1")),
            c.key_of(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            c.key_of(ip("2001:db8:1:2::1")),
            c.key_of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(c.key_of(ip("1.2.3.4")), ip("1.2.3.4"));
    }
}
