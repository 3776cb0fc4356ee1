//! Integration tests: real HTTP between portal and sandbox, a fresh Postgres database
//! per test, trace-level logs captured for leak checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod api;
mod browser;
mod callback_input;
mod chains;
mod config;
mod connect_flow;
mod custody;
mod demo;
mod exchange_faults;
mod hardening;
mod helpers;
mod host_browser;
mod host_product;
mod lifecycle;
mod links;
mod operations;
mod pool;
mod providers;
mod sandbox_providers;
mod secrets;
mod sessions;
mod state_csrf;
mod states;
mod webhooks;
