//! Which hosts may receive a secret (client secret, code, refresh token, BhRestToken,
//! an API user's password): https, and for hosts a provider names at run time (Bullhorn's
//! data centers) only under the configured domain suffixes. Plain http is accepted only
//! when the operator allows it, and then only on loopback (the sandbox, tests).

use std::net::IpAddr;

use url::{Host, Url};

/// A provider URL that may not receive a secret, or cannot be built; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// A host outside the allow-list (or not https).
    #[error("the provider named a host that is not allowed ({0}); nothing was sent to it")]
    Refused(String),
    #[error("the provider's answer was not usable ({0})")]
    Malformed(&'static str),
}

/// Where a provider's per-connection hosts may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// Lower-case domain suffixes (`bullhornstaffing.com` allows it and its subdomains).
    suffixes: Vec<String>,
    insecure_loopback: bool,
}

impl HostPolicy {
    pub fn new(suffixes: Vec<String>, insecure_loopback: bool) -> Self {
        Self {
            suffixes: suffixes
                .into_iter()
                .map(|s| s.trim_matches('.').to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect(),
            insecure_loopback,
        }
    }

    pub fn suffixes(&self) -> &[String] {
        &self.suffixes
    }

    pub fn insecure_loopback(&self) -> bool {
        self.insecure_loopback
    }

    /// Parses `raw` and checks it; the error names the refused host.
    pub fn parse(&self, raw: &str) -> Result<Url, HostError> {
        let url = Url::parse(raw).map_err(|_| HostError::Refused(shown(raw)))?;
        self.check(&url)?;
        Ok(url)
    }

    /// The URL may receive a secret: a safe scheme, no credentials in it, and its host
    /// under one of the suffixes.
    pub fn check(&self, url: &Url) -> Result<(), HostError> {
        transport_allowed(url, self.insecure_loopback)?;
        let host = host_name(url);
        let allowed = self.suffixes.iter().any(|suffix| {
            host == *suffix
                || (matches!(url.host(), Some(Host::Domain(_)))
                    && host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|rest| rest.ends_with('.')))
        });
        if allowed {
            Ok(())
        } else {
            Err(HostError::Refused(shown(&host)))
        }
    }
}

/// https, or http on loopback when allowed; never user information in the URL.
pub fn transport_allowed(url: &Url, insecure_loopback: bool) -> Result<(), HostError> {
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => insecure_loopback && is_loopback(url),
        _ => false,
    };
    if scheme_ok && url.username().is_empty() && url.password().is_none() && url.host().is_some() {
        Ok(())
    } else {
        Err(HostError::Refused(shown(&format!(
            "{}://{}",
            url.scheme(),
            host_name(url)
        ))))
    }
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn host_name(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_ascii_lowercase()
}

/// A host as it may appear in an error message: short and printable.
fn shown(host: &str) -> String {
    host.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// `base` + a relative path with URL semantics: the path is appended under the base's
/// path (a missing trailing slash cannot change the host or drop a segment), and the
/// result must stay on the base's origin.
pub fn join(base: &Url, path: &str) -> Result<Url, HostError> {
    let mut dir = base.clone();
    if !dir.path().ends_with('/') {
        let with_slash = format!("{}/", dir.path());
        dir.set_path(&with_slash);
    }
    dir.set_query(None);
    dir.set_fragment(None);
    let joined = dir
        .join(path.trim_start_matches('/'))
        .map_err(|_| HostError::Malformed("provider URL"))?;
    if joined.origin() != base.origin() {
        return Err(HostError::Refused(shown(&host_name(&joined))));
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(insecure: bool) -> HostPolicy {
        HostPolicy::new(vec!["bullhornstaffing.com".into()], insecure)
    }

    #[test]
    fn only_https_hosts_under_the_suffixes() {
        let p = policy(false);
        for ok in [
            "https://bullhornstaffing.com/x",
            "https://rest99.bullhornstaffing.com/rest-services/",
            "https://auth-east.BullhornStaffing.com:443/oauth",
        ] {
            assert!(p.parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://rest99.bullhornstaffing.com/",
            "https://bullhornstaffing.com.evil.test/",
            "https://evilbullhornstaffing.com/",
            "https://user:pw@rest.bullhornstaffing.com/",
            "https://evil.test/?x=.bullhornstaffing.com",
            "ftp://rest.bullhornstaffing.com/",
            "not a url",
        ] {
            assert!(matches!(p.parse(bad), Err(HostError::Refused(_))), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_on_loopback_and_only_when_allowed() {
        let p = HostPolicy::new(vec!["127.0.0.1".into(), "localhost".into()], true);
        assert!(p.parse("http://127.0.0.1:8081/bullhorn").is_ok());
        assert!(p.parse("http://localhost:1/").is_ok());
        assert!(p.parse("http://127.0.0.2:8081/").is_err());
        assert!(p.parse("http://10.0.0.1/").is_err());
        let strict = HostPolicy::new(vec!["127.0.0.1".into()], false);
        assert!(strict.parse("http://127.0.0.1:8081/").is_err());
    }

    #[test]
    fn joins_never_change_the_host() {
        let base = Url::parse("https://rest9.bullhornstaffing.com/rest-services/abc").unwrap();
        assert_eq!(
            join(&base, "login").unwrap().as_str(),
            "https://rest9.bullhornstaffing.com/rest-services/abc/login"
        );
        let base = Url::parse("https://rest9.bullhornstaffing.com/rest-services/abc/").unwrap();
        assert_eq!(
            join(&base, "/ping").unwrap().as_str(),
            "https://rest9.bullhornstaffing.com/rest-services/abc/ping"
        );
        // A base without a path separator before the host's end cannot be extended into
        // another host ("https://a.bullhornstaffing.com" + ".evil.test").
        let base = Url::parse("https://a.bullhornstaffing.com").unwrap();
        assert_eq!(
            join(&base, ".evil.test/x").unwrap().host_str(),
            Some("a.bullhornstaffing.com")
        );
        assert_eq!(
            join(&base, "//evil.test/x").unwrap().host_str(),
            Some("a.bullhornstaffing.com")
        );
        assert!(join(&base, "https://evil.test/x").is_err());
    }
}
