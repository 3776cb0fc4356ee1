//! Where a webhook may go: https only, and never to a loopback, private, link-local or
//! otherwise internal address, checked on the addresses a name resolves to at connect
//! time (a name that resolved well when it was added may not any more), unless
//! `webhooks.allow_insecure_urls` is set for development.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Why an endpoint URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a valid absolute URL")]
    Malformed,
    #[error("must be https (http only with webhooks.allow_insecure_urls)")]
    NotHttps,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("resolves to a loopback, private or link-local address")]
    Address,
    #[error("the host name does not resolve")]
    Unresolved,
}

/// Whether deliveries may connect to `ip` (public unicast only).
pub fn address_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4),
        IpAddr::V6(v6) => v6_allowed(v6),
    }
}

fn v4_allowed(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        // 100.64.0.0/10, carrier-grade NAT
        || (a == 100 && (64..128).contains(&b))
        // 192.0.0.0/24 protocol assignments, 198.18.0.0/15 benchmarking, 240/4 reserved
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn v6_allowed(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    // IPv4-mapped (::ffff:0:0/96) and IPv4-compatible addresses are refused outright:
    // they reach IPv4 hosts by a back door.
    if ip.to_ipv4_mapped().is_some() || ip.segments()[..6].iter().all(|s| *s == 0) {
        return false;
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local
        || (first & 0xfe00) == 0xfc00
        // fe80::/10 link-local
        || (first & 0xffc0) == 0xfe80
        // 64:ff9b::/96 NAT64, 2001:db8::/32 documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Parses and checks an endpoint URL's form; a literal IP address is checked here, a
/// name when it is resolved.
pub fn check_url(raw: &str, allow_insecure: bool) -> Result<Url, Refused> {
    let url = Url::parse(raw.trim()).map_err(|_| Refused::Malformed)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ => return Err(Refused::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    match url.host() {
        None => return Err(Refused::Malformed),
        Some(Host::Ipv4(ip)) if !allow_insecure && !address_allowed(ip.into()) => {
            return Err(Refused::Address);
        }
        Some(Host::Ipv6(ip)) if !allow_insecure && !address_allowed(ip.into()) => {
            return Err(Refused::Address);
        }
        Some(_) => {}
    }
    Ok(url)
}

/// Resolves a name and refuses it if any address it gives is not allowed (a name that
/// mixes public and internal addresses is a rebinding attempt).
pub async fn resolve_checked(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Refused::Unresolved)?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::Unresolved);
    }
    if addrs.iter().any(|a| !address_allowed(a.ip())) {
        return Err(Refused::Address);
    }
    Ok(addrs)
}

/// The delivery client's resolver: every connection a delivery makes goes only to
/// addresses checked here, at connect time.
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve_checked(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an error from the delivery client came from this guard.
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<Refused>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "64:ff9b::a00:1",
        ] {
            assert!(!address_allowed(ip(refused)), "{refused} must be refused");
        }
        for allowed in ["8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::1111"] {
            assert!(address_allowed(ip(allowed)), "{allowed} must be allowed");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_literal_addresses() {
        assert_eq!(
            check_url("http://hooks.example.com/x", false),
            Err(Refused::NotHttps)
        );
        assert_eq!(
            check_url("https://10.0.0.1/x", false),
            Err(Refused::Address)
        );
        assert_eq!(
            check_url("https://[::ffff:7f00:1]/x", false),
            Err(Refused::Address)
        );
        assert_eq!(
            check_url("https://u:p@hooks.example.com/", false),
            Err(Refused::Credentials)
        );
        assert_eq!(check_url("ftp://x/", true), Err(Refused::NotHttps));
        assert!(check_url("https://hooks.example.com/x", false).is_ok());
        assert!(check_url("http://127.0.0.1:9/x", true).is_ok());
    }
}
