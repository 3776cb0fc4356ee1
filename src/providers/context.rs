//! Per-connection provider facts learned during a flow (data center, hosts), kept with
//! the pending authorization and then with the connection, and used for every later call.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Bullhorn: the data center's OAuth base (ends in `/oauth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth_url: Option<String>,
    /// Bullhorn: the data center's REST base, where `login` is called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest_url: Option<String>,
    /// Bullhorn: the corporation's REST URL returned by `login` (ends in `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_rest_url: Option<String>,
    /// Zoho: the data-center location (`us`, `eu`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Zoho: the accounts server that issued the grant; every token call goes there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_server: Option<String>,
    /// Where the provider's API lives for this connection (Zoho Recruit host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_host: Option<String>,
}

impl Context {
    pub fn from_json(value: &serde_json::Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|_| serde_json::json!({}))
    }
}
