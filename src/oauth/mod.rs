//! The OAuth 2.0 client side: authorize URLs, strict callback parsing, token requests
//! with each provider's quirks, and who-am-I.

pub mod authorize;
pub mod callback_params;
pub mod client;
pub mod establish;
pub mod identity;
pub mod revoke;
pub mod token;
