//! The OAuth 2.0 client side: authorize URLs, strict callback parsing, token requests
//! with each provider's quirks, and who-am-I.

pub mod authorize;
pub mod bullhorn;
pub mod callback_params;
pub mod client;
pub mod establish;
pub mod identity;
pub mod revoke;
pub mod token;
pub mod zoho;

use crate::providers::hosts::HostError;

impl From<HostError> for token::TokenError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Refused(host) => token::TokenError::HostRefused(host),
            HostError::Malformed(what) => token::TokenError::Malformed(what),
        }
    }
}
