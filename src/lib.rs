//! Keyhaven: a self-hosted OAuth 2.0 account-connection portal.
//!
//! Layers, each importing only from those below: `clock`, `crypto`, `config_error`,
//! `model` → `providers` → `config` → `db` → `oauth` → domain services → `web` →
//! `app`, `cli`.

pub mod alarms;
pub mod app;
pub mod branding;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_error;
pub mod connecting;
pub mod crypto;
pub mod custody;
pub mod db;
pub mod error;
pub mod grants;
pub mod housekeeping;
pub mod lifecycle;
pub mod link_options;
pub mod model;
pub mod oauth;
pub mod outbound;
pub mod providers;
pub mod reseal;
pub mod state;
pub mod telemetry;
pub mod web;
pub mod webhooks;
