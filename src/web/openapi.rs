//! The JSON API's OpenAPI 3.1 description, generated from the handlers' annotations and
//! served without authentication at `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::lifecycle::disconnect::Revocation;
use crate::state::AppState;
use crate::web::api::{ConnectLinkRequest, ConnectLinkResponse, ConnectionView, EndUserInput};

/// Every error: a stable `code` and a message a person may read.
///
/// Codes: `bad_request` (400), `unauthorized` (401), `not_found` (404),
/// `needs_reconnect` (409), `internal` (500), `provider_misconfigured` (502),
/// `provider_unavailable` and `unavailable` (503).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// A dead grant: the user must reconnect, through the link given here.
#[derive(Serialize, ToSchema)]
pub struct NeedsReconnectBody {
    /// Always `needs_reconnect`.
    pub code: String,
    pub message: String,
    pub reconnect_url: String,
    #[schema(format = DateTime)]
    pub reconnect_url_expires_at: Option<String>,
}

/// A disconnected connection.
#[derive(Serialize, ToSchema)]
pub struct DisconnectBody {
    /// Always `revoked`.
    pub status: String,
    pub revocation: Revocation,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyhaven API",
        description = "Connect links, connections and fresh access credentials for the host product's backend. Every call but this description needs `Authorization: Bearer <API key>` (`keyhaven api-key create`)."
    ),
    paths(
        crate::web::api::create_connect_link,
        crate::web::api::list_connections,
        crate::web::api::get_connection,
        crate::web::api::delete_connection,
        crate::web::api::credentials,
        crate::web::api::reconnect_link,
        crate::web::api::get_user_connection,
        crate::web::api::delete_user_connection,
        crate::web::api::user_credentials,
        crate::web::api::user_reconnect_link,
        openapi_json,
    ),
    components(schemas(
        EndUserInput,
        ConnectLinkRequest,
        ConnectLinkResponse,
        ConnectionView,
        crate::lifecycle::Credential,
        Revocation,
        ErrorBody,
        NeedsReconnectBody,
        DisconnectBody,
    )),
    modifiers(&BearerAndCommonErrors),
    security(("api_key" = [])),
    tags((name = "connections", description = "Connect links, connections and credentials"))
)]
pub struct ApiDoc;

/// The Bearer scheme, and the answers any authenticated call can give.
struct BearerAndCommonErrors;

impl Modify for BearerAndCommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from `keyhaven api-key create`"))
                    .build(),
            ),
        );
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                                "ErrorBody",
                            ))))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                // An operation that declares `security: [{}]` needs no key.
                let public = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                if !public {
                    responses.entry("401".into()).or_insert_with(|| {
                        error("`unauthorized`: missing, unknown or revoked API key")
                    });
                    responses.entry("503".into()).or_insert_with(|| {
                        error("`unavailable`: the database is unreachable or saturated; retry")
                    });
                    responses
                        .entry("500".into())
                        .or_insert_with(|| error("`internal`: an unexpected failure (logged)"));
                }
            }
        }
    }
}

/// The document as served.
pub fn document() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    })
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This API's OpenAPI 3.1 description.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "connections",
    summary = "This description (OpenAPI 3.1, no authentication)",
    security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_under_api_v1() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).unwrap_or_default();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.len() >= 7);
        assert!(paths.keys().all(|p| p.starts_with("/api/v1/")));
        if std::env::var_os("KEYHAVEN_PRINT_OPENAPI").is_some() {
            println!("{}", super::document());
        }
    }
}
