//! The providers the sandbox imitates and where each one's behaviour differs.

use axum::Router;
use axum::routing::{get, post};

use super::world::random_hex;
use super::{Sandbox, bullhorn, consent, hurdlr, token, zoho};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    SmartRecruiters,
    /// A standards-compliant authorization server: PKCE required, `iss` in the
    /// callback (RFC 9207), rotating refresh tokens, RFC 7009 revocation.
    OAuth2,
    /// Data centers found through `loginInfo`, a login page instead of consent,
    /// query-string token calls, single-use tokens spent on a REST session.
    Bullhorn,
    /// Data centers named in the callback, errors as `200 {"error"}`, refresh tokens
    /// that never rotate but are capped per user.
    Zoho,
    /// Form-only token calls and a token answer without `token_type`.
    Hurdlr,
}

impl Flavor {
    pub fn all() -> [Flavor; 5] {
        [
            Flavor::SmartRecruiters,
            Flavor::OAuth2,
            Flavor::Bullhorn,
            Flavor::Zoho,
            Flavor::Hurdlr,
        ]
    }

    /// The provider key used for clients, faults, counters and profiles.
    pub fn key(self) -> &'static str {
        match self {
            Flavor::SmartRecruiters => "smartrecruiters",
            Flavor::OAuth2 => "oauth2",
            Flavor::Bullhorn => bullhorn::KEY,
            Flavor::Zoho => zoho::KEY,
            Flavor::Hurdlr => hurdlr::KEY,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavor::SmartRecruiters => "SmartRecruiters",
            Flavor::OAuth2 => "OAuth 2.0 server",
            Flavor::Bullhorn => "Bullhorn",
            Flavor::Zoho => "Zoho Recruit",
            Flavor::Hurdlr => "Hurdlr",
        }
    }

    /// SmartRecruiters' code lives 30 seconds, Zoho's 2 minutes (its docs say 1 to 2).
    pub fn code_ttl(self) -> time::Duration {
        match self {
            Flavor::SmartRecruiters => time::Duration::seconds(30),
            Flavor::OAuth2 => time::Duration::seconds(60),
            Flavor::Bullhorn => time::Duration::minutes(5),
            Flavor::Zoho => time::Duration::minutes(2),
            Flavor::Hurdlr => time::Duration::minutes(10),
        }
    }

    pub fn access_ttl(self) -> i64 {
        match self {
            Flavor::SmartRecruiters => 1799,
            Flavor::OAuth2 | Flavor::Zoho => 3600,
            Flavor::Bullhorn => 600,
            // Hurdlr's access tokens live 90 days.
            Flavor::Hurdlr => 7_776_000,
        }
    }

    /// SmartRecruiters' refresh tokens lapse after 28 days; Bullhorn's, Zoho's and
    /// Hurdlr's have no documented lifetime (they live until used, revoked or evicted).
    pub fn refresh_ttl(self) -> time::Duration {
        match self {
            Flavor::SmartRecruiters => time::Duration::days(28),
            Flavor::OAuth2 => time::Duration::days(90),
            Flavor::Bullhorn | Flavor::Zoho | Flavor::Hurdlr => time::Duration::days(3650),
        }
    }

    /// A new code in the provider's own format.
    pub fn new_code(self, dc: Option<&'static str>) -> String {
        match self {
            Flavor::Bullhorn => bullhorn::new_token(dc),
            Flavor::Zoho => zoho::new_token(),
            _ => random_hex(20),
        }
    }

    pub fn new_access_token(self, dc: Option<&'static str>) -> String {
        match self {
            Flavor::Bullhorn => bullhorn::new_token(dc),
            Flavor::Zoho => zoho::new_token(),
            Flavor::Hurdlr => hurdlr::new_token(),
            Flavor::SmartRecruiters | Flavor::OAuth2 => random_hex(16),
        }
    }

    pub fn new_refresh_token(self, dc: Option<&'static str>) -> String {
        match self {
            Flavor::SmartRecruiters | Flavor::OAuth2 => random_hex(20),
            _ => self.new_access_token(dc),
        }
    }

    pub fn requires_pkce(self) -> bool {
        matches!(self, Flavor::OAuth2)
    }

    pub fn issuer(self, base_url: &str) -> Option<String> {
        matches!(self, Flavor::OAuth2).then(|| format!("{base_url}/oauth2"))
    }

    /// The authorize route (Bullhorn's has one per data center, `{dc}` in the path).
    pub fn authorize_path(self) -> &'static str {
        match self {
            Flavor::SmartRecruiters => "/smartrecruiters/identity/oauth/allow",
            Flavor::OAuth2 => "/oauth2/authorize",
            Flavor::Bullhorn => "/bullhorn/{dc}/oauth/authorize",
            // Zoho's users all start at the US accounts server.
            Flavor::Zoho => "/zoho/accounts/us/oauth/v2/auth",
            Flavor::Hurdlr => "/hurdlr/oauth/authorize",
        }
    }

    pub fn router(self) -> Router<Sandbox> {
        let authorize = self.authorize_path();
        let with = |f: Flavor| axum::Extension(f);
        match self {
            Flavor::SmartRecruiters => Router::new()
                .route(authorize, get(consent::show).post(consent::decide))
                .route("/smartrecruiters/identity/oauth/token", post(token::token))
                .route("/smartrecruiters/users/me", get(token::userinfo))
                .layer(with(self)),
            Flavor::OAuth2 => Router::new()
                .route(authorize, get(consent::show).post(consent::decide))
                .route("/oauth2/token", post(token::token))
                .route("/oauth2/userinfo", get(token::userinfo))
                .route("/oauth2/revoke", post(token::revoke))
                .layer(with(self)),
            Flavor::Bullhorn => bullhorn::router(authorize).layer(with(self)),
            Flavor::Zoho => zoho::router(authorize).layer(with(self)),
            Flavor::Hurdlr => hurdlr::router(authorize).layer(with(self)),
        }
    }
}
