//! The `[providers.<id>]` tables as written in the configuration.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use super::{ClientAuth, TokenBody};

/// `providers.<id>.kind`: a built-in provider (the default for its own id) or a generic
/// OAuth 2.0 provider described entirely by its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindSetting {
    SmartRecruiters,
    Bullhorn,
    Zoho,
    Hurdlr,
    #[serde(rename = "oauth2")]
    OAuth2,
}

/// One `[providers.<id>]` table. Built-in providers need only credentials; any other id
/// is a generic OAuth 2.0 provider (`kind = "oauth2"`) described entirely here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    pub kind: Option<KindSetting>,
    pub display_name: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    #[serde(default, deserialize_with = "string_or_list")]
    pub scopes: Option<Vec<String>>,
    pub scope_separator: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
    pub client_auth: Option<ClientAuth>,
    pub token_body: Option<TokenBody>,
    pub pkce: Option<bool>,
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    pub issuer: Option<String>,
    pub userinfo_url: Option<String>,
    pub account_id_pointer: Option<String>,
    pub account_label_pointer: Option<String>,
    pub revocation_url: Option<String>,
    /// Bullhorn: where the data-center lookup starts.
    pub login_info_url: Option<String>,
    /// Bullhorn: connect with an API user's username and password instead of the browser.
    pub api_user_mode: Option<bool>,
    /// Zoho: accounts and Recruit URLs per data-center location (replacing the built-in table).
    #[serde(default)]
    pub data_centers: BTreeMap<String, DataCenterSettings>,
    /// Most refreshes of this provider's connections in flight at once (background refresher).
    pub refresh_concurrency: Option<usize>,
    /// Bullhorn: the domains its data-center hosts must be under (default `bullhornstaffing.com`).
    #[serde(default, deserialize_with = "string_or_list")]
    pub allowed_host_suffixes: Option<Vec<String>>,
    /// A line shown on the provider's card on the connect page (e.g. which account to use).
    pub connect_hint: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataCenterSettings {
    pub accounts_url: String,
    pub api_url: String,
}

/// Accepts `["a", "b"]` or a single string split on commas and whitespace, so that
/// `KEYHAVEN_PROVIDERS__X__SCOPES="a b"` works as well as a TOML list.
pub(crate) fn string_or_list<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::Many(list)) => Some(list),
        Some(OneOrMany::One(s)) => Some(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        ),
    })
}
