//! What a connect link was made for: where in the host product the browser goes back to
//! (`return_url`, checked against `server.allowed_return_origins`), which providers it
//! offers, whether it goes straight to one, and whether it runs in a popup.

use serde::{Deserialize, Serialize};
use url::{Origin, Url};

use crate::config::Settings;

/// How the flow hands its result back to the product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The browser is sent to `return_url` with the result in its query.
    #[default]
    Page,
    /// The last page posts the result to `window.opener` and closes.
    Popup,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Page => "page",
            Mode::Popup => "popup",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "page" => Some(Mode::Page),
            "popup" => Some(Mode::Popup),
            _ => None,
        }
    }
}

/// How a flow ended, as the product is told (`keyhaven_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Connected,
    Cancelled,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Connected => "connected",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "connected" => Some(Outcome::Connected),
            "cancelled" => Some(Outcome::Cancelled),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// A connect link's options as the API or CLI gives them (not yet checked).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestedOptions {
    pub return_url: Option<String>,
    pub providers: Option<Vec<String>>,
    pub provider: Option<String>,
    pub mode: Option<String>,
}

/// Checked options, stored with the link and carried in the browser's session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkOptions {
    pub return_url: Option<Url>,
    /// The providers offered (all when absent).
    pub providers: Option<Vec<String>>,
    /// Go straight to this provider.
    pub provider: Option<String>,
    #[serde(default)]
    pub mode: Mode,
}

/// Why options were refused; `code` is the API's stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OptionsError {
    pub code: &'static str,
    pub message: String,
}

fn refused(code: &'static str, message: impl Into<String>) -> OptionsError {
    OptionsError {
        code,
        message: message.into(),
    }
}

/// A `return_url` is accepted only when its parsed origin equals an allowed origin
/// exactly: `https://app.example.com.evil.test` and `https://app.example.com@evil.test`
/// are other origins.
pub fn check_return_url(raw: &str, allowed: &[Origin]) -> Result<Url, OptionsError> {
    let not_allowed = || {
        refused(
            "return_url_not_allowed",
            "return_url must be an absolute URL on one of the server's allowed return origins",
        )
    };
    if raw.len() > 2048 || raw.chars().any(char::is_control) {
        return Err(not_allowed());
    }
    let url = Url::parse(raw).map_err(|_| not_allowed())?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(not_allowed());
    }
    let origin = url.origin();
    if allowed.contains(&origin) {
        Ok(url)
    } else {
        Err(not_allowed())
    }
}

impl LinkOptions {
    /// Checks requested options against the settings.
    pub fn check(requested: RequestedOptions, settings: &Settings) -> Result<Self, OptionsError> {
        let return_url = requested
            .return_url
            .as_deref()
            .map(|raw| check_return_url(raw, &settings.return_origins))
            .transpose()?;
        let known = |id: &str| -> Result<String, OptionsError> {
            settings.provider(id).map(|p| p.id.clone()).ok_or_else(|| {
                refused(
                    "unknown_provider",
                    format!(
                        "unknown provider {:?}; offered: {}",
                        id.chars().take(64).collect::<String>(),
                        settings
                            .providers
                            .iter()
                            .map(|p| p.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
        };
        let providers = match requested.providers {
            None => None,
            Some(list) if list.is_empty() || list.len() > 64 => {
                return Err(refused(
                    "unknown_provider",
                    "providers must list between 1 and 64 provider ids",
                ));
            }
            Some(list) => {
                let mut ids = Vec::with_capacity(list.len());
                for id in &list {
                    let id = known(id)?;
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                Some(ids)
            }
        };
        let provider = requested.provider.as_deref().map(known).transpose()?;
        if let (Some(p), Some(list)) = (&provider, &providers)
            && !list.contains(p)
        {
            return Err(refused(
                "unknown_provider",
                "provider must be one of providers",
            ));
        }
        let mode = match requested.mode.as_deref() {
            None => Mode::Page,
            Some(raw) => Mode::parse(raw)
                .ok_or_else(|| refused("invalid_mode", "mode must be \"page\" or \"popup\""))?,
        };
        if mode == Mode::Popup && return_url.is_none() {
            return Err(refused(
                "invalid_mode",
                "popup mode needs a return_url: its origin is where the result is posted",
            ));
        }
        Ok(Self {
            return_url,
            providers,
            provider,
            mode,
        })
    }

    /// Options read back from a stored link. A return URL whose origin is no longer
    /// allowed (the operator removed it since) is dropped, as are providers no longer
    /// offered.
    pub fn from_stored(
        return_url: Option<&str>,
        providers: Option<Vec<String>>,
        provider: Option<String>,
        mode: &str,
        settings: &Settings,
    ) -> Self {
        let return_url =
            return_url.and_then(|raw| check_return_url(raw, &settings.return_origins).ok());
        let mode = Mode::parse(mode)
            .filter(|m| *m == Mode::Page || return_url.is_some())
            .unwrap_or_default();
        Self {
            providers: providers.map(|list| {
                list.into_iter()
                    .filter(|id| settings.provider(id).is_some())
                    .collect()
            }),
            provider: provider.filter(|id| settings.provider(id).is_some()),
            return_url,
            mode,
        }
    }

    /// Whether the connect page shows this provider's card.
    pub fn offers(&self, provider_id: &str) -> bool {
        match (&self.provider, &self.providers) {
            (Some(only), _) => only == provider_id,
            (None, Some(list)) => list.iter().any(|p| p == provider_id),
            (None, None) => true,
        }
    }

    /// The product's page with the result added to its query (nothing secret).
    pub fn return_with(
        &self,
        outcome: Outcome,
        provider: Option<&str>,
        connection_id: Option<uuid::Uuid>,
    ) -> Option<Url> {
        let mut url = self.return_url.clone()?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("keyhaven_status", outcome.as_str());
            if let Some(p) = provider {
                query.append_pair("provider", p);
            }
            if let Some(id) = connection_id {
                query.append_pair("connection_id", &id.to_string());
            }
        }
        Some(url)
    }

    /// Where the popup's last page posts its message: the return URL's origin.
    pub fn popup_target(&self) -> Option<String> {
        (self.mode == Mode::Popup)
            .then_some(self.return_url.as_ref())
            .flatten()
            .map(|u| u.origin().ascii_serialization())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_allowed_origin;

    fn allowed() -> Vec<Origin> {
        vec![
            parse_allowed_origin("https://app.example.com").unwrap(),
            parse_allowed_origin("http://localhost:3000").unwrap(),
        ]
    }

    #[test]
    fn return_urls_on_an_allowed_origin_only() {
        for good in [
            "https://app.example.com/settings/integrations?tab=1",
            "https://app.example.com",
            "https://APP.example.com:443/x",
            "http://localhost:3000/back",
        ] {
            assert!(check_return_url(good, &allowed()).is_ok(), "{good}");
        }
        for bad in [
            "https://app.example.com.evil.test/x",
            "https://app.example.com@evil.test/x",
            "https://user@app.example.com/x",
            "http://app.example.com/x",
            "https://app.example.com:8443/x",
            "https://evil.test/https://app.example.com",
            "//app.example.com/x",
            "/relative",
            "javascript:alert(1)",
            "http://localhost:3001/",
        ] {
            let e = check_return_url(bad, &allowed()).unwrap_err();
            assert_eq!(e.code, "return_url_not_allowed", "{bad}");
        }
    }

    #[test]
    fn allowed_origins_are_bare() {
        assert!(parse_allowed_origin("https://app.example.com/").is_ok());
        for bad in [
            "https://app.example.com/path",
            "https://u@app.example.com",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com?x",
        ] {
            assert!(parse_allowed_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_result_is_added_to_the_query() {
        let options = LinkOptions {
            return_url: Some(Url::parse("https://app.example.com/i?tab=crm#top").unwrap()),
            ..Default::default()
        };
        let id = uuid::Uuid::nil();
        let url = options
            .return_with(Outcome::Connected, Some("acme"), Some(id))
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://app.example.com/i?tab=crm&keyhaven_status=connected&provider=acme&connection_id=00000000-0000-0000-0000-000000000000#top"
        );
    }
}
