//! How a queued fault plays out at an endpoint. The timing (latency, a response lost
//! after the work was done) is the same everywhere; each provider only words the
//! failures its own way, or takes the plain wording here.

use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::world::FaultEffect;

/// What the endpoint does about the fault it took.
#[derive(Debug)]
pub enum Plan {
    /// Do the work; with `hang`, wait that long before answering (the answer is lost).
    Proceed { hang: Option<Duration> },
    /// Do nothing and answer with this failure.
    Fail(Failure),
}

#[derive(Debug, Clone, Copy)]
pub enum Failure {
    Status(StatusCode),
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// The grant presented is dead from now on; the endpoint kills it.
    InvalidGrant,
    EmptyOk,
    /// The provider's own throttle answer, with an explicit status if the fault gave one.
    Throttled(Option<StatusCode>),
}

/// Sleeps for an injected latency (never with the world locked: the caller took the
/// fault in its own scope) and says what to do next.
pub async fn plan(effect: Option<FaultEffect>) -> Plan {
    let status = |s: u16| StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match effect {
        None | Some(FaultEffect::HugeExpiry) => Plan::Proceed { hang: None },
        Some(FaultEffect::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Plan::Proceed { hang: None }
        }
        Some(FaultEffect::DropResponse { hang_ms }) => Plan::Proceed {
            hang: Some(Duration::from_millis(hang_ms)),
        },
        Some(FaultEffect::Status { status: s }) => Plan::Fail(Failure::Status(status(s))),
        Some(FaultEffect::TooManyRequests { retry_after_secs }) => {
            Plan::Fail(Failure::TooManyRequests { retry_after_secs })
        }
        Some(FaultEffect::InvalidGrant) => Plan::Fail(Failure::InvalidGrant),
        Some(FaultEffect::EmptyOk) => Plan::Fail(Failure::EmptyOk),
        Some(FaultEffect::Throttled { status: s }) => Plan::Fail(Failure::Throttled(s.map(status))),
    }
}

/// Waits out a lost answer, then hands it over (too late for a client with a timeout).
pub async fn deliver(hang: Option<Duration>, response: Response) -> Response {
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    response
}

/// The OAuth wording: `{"error","error_description"}` bodies, 429 with `Retry-After`.
pub fn oauth_answer(failure: Failure) -> Response {
    match failure {
        Failure::Status(status) => oauth_error(status, "server_error", "injected failure"),
        Failure::TooManyRequests { retry_after_secs } => {
            let mut response =
                oauth_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down");
            if let Ok(v) = retry_after_secs.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Failure::Throttled(_) => {
            oauth_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down")
        }
        Failure::InvalidGrant => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the grant is no longer valid",
        ),
        Failure::EmptyOk => (StatusCode::OK, axum::Json(json!({}))).into_response(),
    }
}

pub fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}
