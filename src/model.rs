//! The closed sets of states Keyhaven stores: connection status, event kind, link kind,
//! actor and the failure code behind a broken connection. Each is stored as text, its
//! column guarded by a `CHECK` constraint listing exactly these spellings, and read and
//! written through sqlx as text (no lookup of a custom Postgres type). In JSON they are
//! the same strings. This module depends on nothing else in the crate, so every layer
//! can use it.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// A stored text that is not one of a set's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {set} {value:?}")]
pub struct Unknown {
    pub set: &'static str,
    pub value: String,
}

/// Text in the database: the same wire type as `&str`, so no type lookup is needed.
macro_rules! stored_as_text {
    ($name:ident) => {
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode_by_ref(&&*self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<&str as Decode<Postgres>>::decode(value)?.parse()?)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.as_str())
            }
        }
    };
}

/// A set of unit variants, each with its one spelling (in the database and in JSON).
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $set:literal, $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            /// The stored (and JSON) spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = Unknown;

            fn from_str(s: &str) -> Result<Self, Unknown> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(Unknown { set: $set, value: s.to_string() }),
                }
            }
        }

        stored_as_text!($name);
    };
}

text_enum! {
    /// Where a connection stands (`connections.status`).
    "connection status", ConnectionStatus {
        Active = "active",
        /// Refreshes fail for a reason that may pass; the grant is kept and retried.
        Degraded = "degraded",
        /// The grant is dead: only its user can bring it back.
        NeedsReconnect = "needs_reconnect",
        /// Disconnected: tokens wiped, row and history kept.
        Revoked = "revoked",
    }
}

text_enum! {
    /// What happened to a connection (`connection_events.kind`).
    "event kind", EventKind {
        Connected = "connected",
        Reconnected = "reconnected",
        /// A reconnect brought a different upstream account.
        AccountChanged = "account_changed",
        Refreshed = "refreshed",
        RefreshFailed = "refresh_failed",
        NeedsReconnect = "needs_reconnect",
        /// A dead Bullhorn grant re-established with the stored API user.
        Recovered = "recovered",
        Revoked = "revoked",
        RevokeFailed = "revoke_failed",
        /// An admin asked for a refresh (the detail says how it went).
        RefreshRequested = "refresh_requested",
        ReconnectLinkCreated = "reconnect_link_created",
    }
}

text_enum! {
    /// What a link is for (`links.kind`).
    "link kind", LinkKind {
        Connect = "connect",
        /// Bound to one connection; single use.
        Reconnect = "reconnect",
    }
}

text_enum! {
    /// Why a connection failed (`connections.failure_code`): the end user's explanation
    /// and the webhooks' `reason` follow it, never the error text.
    "failure code", FailureCode {
        /// The provider refused the refresh token: revoked, expired or replaced.
        InvalidGrant = "invalid_grant",
        InvalidClient = "invalid_client",
        Throttled = "throttled",
        ProviderUnavailable = "provider_unavailable",
        Timeout = "timeout",
        Unreachable = "unreachable",
        MalformedResponse = "malformed_response",
        Rejected = "rejected",
        BackingOff = "backing_off",
        /// A sealed token no longer opens (its key removed, or the value tampered with).
        CredentialsUnreadable = "credentials_unreadable",
        /// Nothing to refresh with: the provider never gave a refresh token.
        NoRefreshToken = "no_refresh_token",
        /// The grant is dead for another reason.
        GrantDead = "grant_dead",
        /// Any other provider failure.
        ProviderError = "provider_error",
    }
}

impl FailureCode {
    /// Why the connection needs reconnecting, in words an end user understands.
    pub fn explanation(self) -> &'static str {
        match self {
            FailureCode::InvalidGrant => {
                "The provider no longer accepts this connection (it was revoked, expired, or the account changed). Reconnect to continue."
            }
            FailureCode::CredentialsUnreadable => {
                "The stored connection could not be read. Reconnect to continue."
            }
            _ => "The provider no longer accepts this connection. Reconnect to continue.",
        }
    }
}

/// Who caused an event (`connection_events.actor`): Keyhaven itself, the end user, the
/// product through the API, or a named admin (stored as `admin:<email>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    Keyhaven,
    EndUser,
    Api,
    Admin(String),
}

const ADMIN_PREFIX: &str = "admin:";

impl Actor {
    /// The stored spelling.
    pub fn as_str(&self) -> Cow<'_, str> {
        match self {
            Actor::Keyhaven => Cow::Borrowed("keyhaven"),
            Actor::EndUser => Cow::Borrowed("end_user"),
            Actor::Api => Cow::Borrowed("api"),
            Actor::Admin(email) => Cow::Owned(format!("{ADMIN_PREFIX}{email}")),
        }
    }
}

impl FromStr for Actor {
    type Err = Unknown;

    fn from_str(s: &str) -> Result<Self, Unknown> {
        match s {
            "keyhaven" => Ok(Actor::Keyhaven),
            "end_user" => Ok(Actor::EndUser),
            "api" => Ok(Actor::Api),
            _ => match s.strip_prefix(ADMIN_PREFIX) {
                Some(email) if !email.is_empty() => Ok(Actor::Admin(email.to_string())),
                _ => Err(Unknown {
                    set: "actor",
                    value: s.to_string(),
                }),
            },
        }
    }
}

stored_as_text!(Actor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_reads_back_from_its_spelling() {
        for s in ConnectionStatus::ALL {
            assert_eq!(s.as_str().parse::<ConnectionStatus>(), Ok(s));
        }
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>(), Ok(k));
        }
        for k in LinkKind::ALL {
            assert_eq!(k.as_str().parse::<LinkKind>(), Ok(k));
        }
        for c in FailureCode::ALL {
            assert_eq!(c.as_str().parse::<FailureCode>(), Ok(c));
        }
        for a in [
            Actor::Keyhaven,
            Actor::EndUser,
            Actor::Api,
            Actor::Admin("ops@example.com".into()),
        ] {
            assert_eq!(a.as_str().parse::<Actor>(), Ok(a));
        }
    }

    #[test]
    fn json_spellings_are_the_stored_ones() {
        assert_eq!(
            serde_json::to_string(&ConnectionStatus::ALL).unwrap(),
            r#"["active","degraded","needs_reconnect","revoked"]"#
        );
        assert_eq!(
            serde_json::to_string(&FailureCode::NoRefreshToken).unwrap(),
            r#""no_refresh_token""#
        );
    }

    #[test]
    fn unknown_spellings_are_refused() {
        assert_eq!(
            "Active".parse::<ConnectionStatus>(),
            Err(Unknown {
                set: "connection status",
                value: "Active".into()
            })
        );
        assert!("".parse::<EventKind>().is_err());
        assert!("admin:".parse::<Actor>().is_err());
        assert!("refresher".parse::<Actor>().is_err());
    }

    #[test]
    fn explanations_follow_the_code() {
        assert!(
            FailureCode::InvalidGrant
                .explanation()
                .contains("revoked, expired, or the account changed")
        );
        assert!(
            FailureCode::CredentialsUnreadable
                .explanation()
                .contains("could not be read")
        );
        assert_eq!(
            FailureCode::NoRefreshToken.explanation(),
            "The provider no longer accepts this connection. Reconnect to continue."
        );
    }
}
