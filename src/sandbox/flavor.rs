//! The providers the sandbox imitates and where each one's behaviour differs.

use axum::Router;
use axum::routing::{get, post};

use super::{Sandbox, consent, token};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    SmartRecruiters,
    /// A standards-compliant authorization server: PKCE required, `iss` in the
    /// callback (RFC 9207), rotating refresh tokens, RFC 7009 revocation.
    OAuth2,
}

impl Flavor {
    pub fn all() -> [Flavor; 2] {
        [Flavor::SmartRecruiters, Flavor::OAuth2]
    }

    /// The provider key used for clients, faults, counters and profiles.
    pub fn key(self) -> &'static str {
        match self {
            Flavor::SmartRecruiters => "smartrecruiters",
            Flavor::OAuth2 => "oauth2",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavor::SmartRecruiters => "SmartRecruiters",
            Flavor::OAuth2 => "OAuth 2.0 server",
        }
    }

    /// SmartRecruiters' code lives 30 seconds.
    pub fn code_ttl(self) -> time::Duration {
        match self {
            Flavor::SmartRecruiters => time::Duration::seconds(30),
            Flavor::OAuth2 => time::Duration::seconds(60),
        }
    }

    pub fn access_ttl(self) -> i64 {
        match self {
            Flavor::SmartRecruiters => 1799,
            Flavor::OAuth2 => 3600,
        }
    }

    /// SmartRecruiters' refresh tokens lapse after 28 days.
    pub fn refresh_ttl(self) -> time::Duration {
        match self {
            Flavor::SmartRecruiters => time::Duration::days(28),
            Flavor::OAuth2 => time::Duration::days(90),
        }
    }

    pub fn requires_pkce(self) -> bool {
        matches!(self, Flavor::OAuth2)
    }

    pub fn issuer(self, base_url: &str) -> Option<String> {
        matches!(self, Flavor::OAuth2).then(|| format!("{base_url}/oauth2"))
    }

    pub fn authorize_path(self) -> &'static str {
        match self {
            Flavor::SmartRecruiters => "/smartrecruiters/identity/oauth/allow",
            Flavor::OAuth2 => "/oauth2/authorize",
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
        }
    }
}
