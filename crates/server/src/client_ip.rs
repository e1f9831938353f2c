//! The client's IP address: the socket peer, unless the peer is one of
//! `server.trusted_proxies`; then the right-most address of the forwarded chain
//! (`server.forwarded_header`: `X-Forwarded-For` or RFC 7239 `Forwarded`) that is not
//! itself a trusted proxy. Addresses left of that one were written by the client or by
//! proxies nobody vouches for, so they are never believed.
//!
//! Only the header the proxies set is read: a proxy that sets `X-Forwarded-For` passes
//! a client's own `Forwarded` through untouched (and the other way round), so reading
//! both would let the client choose.

use std::net::IpAddr;

use actix_web::{HttpMessage, HttpRequest, web};
use ipnet::IpNet;

use crate::config::server::{ForwardedHeader, ServerSettings};

/// How the client IP is found: the trusted proxies and the header they set.
#[derive(Debug, Clone)]
pub struct ClientIpRules {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
}

/// The client IP of a request, worked out once and kept in its extensions.
#[derive(Debug, Clone, Copy)]
struct ClientIp(Option<IpAddr>);

impl ClientIpRules {
    /// The rules of `[server]`; errors name the setting.
    pub fn from_settings(server: &ServerSettings) -> Result<Self, String> {
        let trusted = server
            .trusted_proxies
            .iter()
            .map(|entry| parse_net(entry))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            trusted,
            header: server.forwarded_header,
        })
    }

    /// Rules trusting these ranges.
    pub fn new(trusted: Vec<IpNet>, header: ForwardedHeader) -> Self {
        Self { trusted, header }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client IP, from the peer and the values of the forwarded header (each header
    /// line in order).
    pub fn resolve<'a>(
        &self,
        peer: IpAddr,
        header_lines: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        let chain: Vec<Option<IpAddr>> = header_lines
            .into_iter()
            .flat_map(|line| match self.header {
                ForwardedHeader::XForwardedFor => x_forwarded_for(line),
                ForwardedHeader::Forwarded => forwarded_for(line),
            })
            .collect();
        let mut nearest = peer;
        for hop in chain.into_iter().rev() {
            match hop {
                // A hop that is no address (`unknown`, an obfuscated name, garbage): the
                // trusted proxy right of it is as far as anyone vouches.
                None => return nearest,
                Some(ip) if self.is_trusted(ip) => nearest = ip,
                Some(ip) => return ip,
            }
        }
        nearest
    }

    /// The header the rules read.
    pub fn header_name(&self) -> &'static str {
        match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The client IP of a request (`None` without a peer address, as in some tests of
/// actix itself). Worked out once per request.
pub fn of(req: &HttpRequest) -> Option<IpAddr> {
    if let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>() {
        return *ip;
    }
    let ip = req
        .peer_addr()
        .map(|peer| match req.app_data::<web::Data<ClientIpRules>>() {
            Some(rules) => rules.resolve(
                peer.ip(),
                req.headers()
                    .get_all(rules.header_name())
                    .filter_map(|value| value.to_str().ok()),
            ),
            None => canonical(peer.ip()),
        });
    req.extensions_mut().insert(ClientIp(ip));
    ip
}

/// The configuration problems of `server.trusted_proxies`.
pub fn problems(server: &ServerSettings, production: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if server.trust_forwarded_headers.is_some() {
        problems.push(
            "server.trust_forwarded_headers: removed, as it believed forwarded headers from any \
             peer; list the addresses or CIDR ranges of your reverse proxies in \
             server.trusted_proxies instead (e.g. trusted_proxies = [\"10.0.0.5\"])"
                .to_owned(),
        );
    }
    for entry in &server.trusted_proxies {
        match parse_net(entry) {
            Err(problem) => problems.push(problem),
            Ok(net) if production && net.prefix_len() == 0 => problems.push(format!(
                "server.trusted_proxies: `{entry}` trusts every address, so any client could \
                 choose its own IP (and dodge every per-IP limit); list your proxies' addresses"
            )),
            Ok(_) => {}
        }
    }
    problems
}

fn parse_net(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "server.trusted_proxies: `{entry}` is neither an IP address nor a CIDR range \
                 (e.g. 10.0.0.0/8, 2001:db8::/32)"
            )
        })
}

/// An IPv4 address mapped into IPv6 (`::ffff:192.0.2.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The hops of one `X-Forwarded-For` line, left to right (`None`: not an address).
pub fn x_forwarded_for(line: &str) -> Vec<Option<IpAddr>> {
    line.split(',').map(|hop| node(hop.trim())).collect()
}

/// The `for=` hops of one `Forwarded` line (RFC 7239 section 4), left to right; an
/// element without `for=`, or a `for=` that is no address (`unknown`, `_hidden`), is
/// `None`.
pub fn forwarded_for(line: &str) -> Vec<Option<IpAddr>> {
    split_unquoted(line, ',')
        .into_iter()
        .map(|element| {
            split_unquoted(element, ';')
                .into_iter()
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, value)| node(&unquote(value.trim())))
        })
        .collect()
}

/// Splits at `separator` outside quoted strings (a quoted `\"` does not end the string).
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..index]);
                start = index + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// One node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`.
fn node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| canonical(IpAddr::V6(ip)));
    }
    let (host, port) = text.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn rules(trusted: &[&str], header: ForwardedHeader) -> ClientIpRules {
        ClientIpRules::new(
            trusted.iter().map(|t| parse_net(t).unwrap()).collect(),
            header,
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let rules = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(
            rules.resolve(ip("203.0.113.9"), ["198.51.100.1"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let rules = rules(&["10.0.0.0/8", "192.0.2.7"], ForwardedHeader::XForwardedFor);
        // The client wrote "6.6.6.6" itself; the outer proxy appended the real address.
        let line = "6.6.6.6, 198.51.100.1, 192.0.2.7";
        assert_eq!(rules.resolve(ip("10.1.2.3"), [line]), ip("198.51.100.1"));
        // Several header lines are one list.
        assert_eq!(
            rules.resolve(ip("10.1.2.3"), ["6.6.6.6", "198.51.100.1:555, 10.9.9.9"]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn forwarded_is_parsed_as_rfc_7239_says() {
        let hops = forwarded_for(
            r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for=unknown, proto=https"#,
        );
        assert_eq!(
            hops,
            vec![
                Some(ip("192.0.2.60")),
                Some(ip("2001:db8:cafe::17")),
                None,
                None
            ]
        );
        // A comma inside a quoted string does not split elements.
        assert_eq!(forwarded_for(r#"for="1.2.3.4, 5.6.7.8""#), vec![None]);
        let rules = rules(&["10.0.0.1"], ForwardedHeader::Forwarded);
        assert_eq!(
            rules.resolve(ip("10.0.0.1"), [r#"for=6.6.6.6, for="198.51.100.1:80""#]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_hop_that_is_no_address_stops_the_walk_at_the_trusted_proxy_right_of_it() {
        let rules = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(
            rules.resolve(ip("10.0.0.1"), ["1.2.3.4, garbage, 10.0.0.2"]),
            ip("10.0.0.2")
        );
        assert_eq!(
            rules.resolve(ip("10.0.0.1"), Vec::<&str>::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let rules = rules(&["10.0.0.1"], ForwardedHeader::XForwardedFor);
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(rules.resolve(mapped, ["198.51.100.1"]), ip("198.51.100.1"));
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        ]
    }

    proptest! {
        #[test]
        fn parsers_never_panic(line in any::<String>()) {
            let _ = forwarded_for(&line);
            let _ = x_forwarded_for(&line);
            let rules = rules(&["0.0.0.0/0", "::/0"], ForwardedHeader::Forwarded);
            let _ = rules.resolve(ip("10.0.0.1"), [line.as_str()]);
        }

        #[test]
        fn header_like_input_never_panics(line in r#"[ ,;=\"\[\]:a-fA-F0-9.forFOR_unknown\\]{0,80}"#) {
            let _ = forwarded_for(&line);
            let _ = x_forwarded_for(&line);
        }

        #[test]
        fn an_untrusted_peers_header_never_changes_the_ip(
            peer in any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            line in any::<String>(),
        ) {
            let rules = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
            prop_assume!(!rules.is_trusted(peer));
            prop_assert_eq!(rules.resolve(peer, [line.as_str()]), canonical(peer));
            let rules = ClientIpRules::new(rules.trusted.clone(), ForwardedHeader::Forwarded);
            prop_assert_eq!(rules.resolve(peer, [line.as_str()]), canonical(peer));
        }

        #[test]
        fn the_answer_is_the_peer_or_an_address_of_the_chain(
            chain in proptest::collection::vec(any_ip(), 0..6),
            spoofed in any_ip(),
        ) {
            let rules = rules(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
            let peer = ip("10.0.0.1");
            let line = std::iter::once(spoofed)
                .chain(chain.iter().copied())
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let client = rules.resolve(peer, [line.as_str()]);
            // Whatever the client put first is only believed when everything right of
            // it is a trusted proxy.
            let right_most_untrusted = chain.iter().rev().map(|ip| canonical(*ip)).find(|ip| !rules.is_trusted(*ip));
            match right_most_untrusted {
                Some(expected) => prop_assert_eq!(client, expected),
                None => prop_assert!(client == canonical(spoofed) || rules.is_trusted(client)),
            }
        }

        #[test]
        fn written_nodes_read_back(addr in any_ip(), port in 1u16..) {
            let written = match addr {
                IpAddr::V4(v4) => format!("{v4}:{port}"),
                IpAddr::V6(v6) => format!("\"[{v6}]:{port}\""),
            };
            prop_assert_eq!(forwarded_for(&format!("for={written}")), vec![Some(canonical(addr))]);
        }
    }
}
