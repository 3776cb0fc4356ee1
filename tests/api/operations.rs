//! Running it: Prometheus metrics, JSON logs, the OpenAPI description, `keyhaven check`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn with_metrics() -> Options {
    Options {
        tweak: |s| s.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap()),
        ..Options::default()
    }
}

/// One sample line of the exposition: name, labels, value.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").expect("label value");
            let end = after.find('"').expect("closing quote");
            map.insert(key.to_string(), after[..end].to_string());
            rest = after[end + 1..].trim_start_matches(',');
        }
        samples.push(Sample {
            name: name.to_string(),
            labels: map,
            value: value.parse().expect("a number"),
        });
    }
    samples
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let url = format!("{}/metrics", app.metrics_url.as_ref().expect("metrics on"));
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    parse_exposition(&r.text().await.unwrap())
}

/// The sum of every sample of `name` whose labels include all of `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn metrics_count_a_flow_and_no_label_carries_user_input() {
    let app = spawn_app_with(with_metrics()).await;
    // Only the metrics listener serves /metrics; the portal does not.
    let r = reqwest::get(format!("{}/metrics", app.url)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let before = scrape(&app).await;

    let external_id = "metrics-user-5b1e";
    let (_, id) = app.connected(external_id, "smartrecruiters").await;
    let key = app.api_key().await;
    let r = app.credentials(&app.url, &key, id, true).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A link token in a path must never become a label.
    let r = reqwest::get(format!("{}/c/not-a-real-link-token-0c9d", app.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A declined authorization counts as failed, with its reason.
    let browser = app.user_browser("metrics-user-2").await;
    let authorize = app.start(&browser, "acme").await;
    let callback = app.decide(&authorize, "deny", "sam").await;
    let r = browser.get(callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let after = scrape(&app).await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        total(&after, name, labels) - total(&before, name, labels)
    };
    let sr = ("provider", "smartrecruiters");
    assert!(moved("keyhaven_connect_flows_started_total", &[sr]) >= 1.0);
    assert!(moved("keyhaven_connect_flows_completed_total", &[sr]) >= 1.0);
    assert!(
        moved(
            "keyhaven_connect_flows_failed_total",
            &[("provider", "acme"), ("reason", "declined")]
        ) >= 1.0
    );
    assert!(
        moved(
            "keyhaven_token_requests_total",
            &[sr, ("grant_type", "authorization_code"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        moved(
            "keyhaven_token_requests_total",
            &[sr, ("grant_type", "refresh_token"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(moved("keyhaven_token_request_duration_seconds_count", &[sr]) >= 2.0);
    assert!(moved("keyhaven_code_age_at_exchange_seconds_count", &[sr]) >= 1.0);
    assert!(
        moved(
            "keyhaven_refreshes_total",
            &[("trigger", "on_demand"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(
        moved(
            "keyhaven_http_requests_total",
            &[
                ("route", "/oauth/{provider}/callback"),
                ("method", "GET"),
                ("status", "303")
            ]
        ) >= 1.0
    );
    assert!(
        moved(
            "keyhaven_http_requests_total",
            &[
                ("route", "/api/v1/connections/{id}/credentials"),
                ("status", "200")
            ]
        ) >= 1.0
    );
    assert!(
        moved(
            "keyhaven_http_request_duration_seconds_bucket",
            &[("route", "/c/{token}"), ("le", "+Inf")]
        ) >= 1.0
    );
    // Gauges read at scrape time.
    assert!(total(&after, "keyhaven_connections", &[sr, ("status", "active")]) >= 1.0);
    assert!(
        after
            .iter()
            .any(|s| s.name == "keyhaven_db_pool_connections" && s.labels["state"] == "idle")
    );
    assert!(after.iter().any(|s| s.name == "keyhaven_refresh_backlog"));

    // No label value is an id, an email, a host or a raw path.
    let host = app.url.trim_start_matches("http://").to_string();
    let sandbox_host = app.sandbox_url.trim_start_matches("http://").to_string();
    for sample in &after {
        assert!(sample.name.starts_with("keyhaven_"), "{}", sample.name);
        for (label, value) in &sample.labels {
            for forbidden in [
                id.to_string().as_str(),
                external_id,
                "@",
                "127.0.0.1",
                host.as_str(),
                sandbox_host.as_str(),
                "not-a-real-link-token",
            ] {
                assert!(
                    !value.contains(forbidden),
                    "{} has {label}={value:?}",
                    sample.name
                );
            }
            if label == "route" {
                assert!(value.starts_with('/') || value == "unmatched", "{value}");
            }
        }
    }
}

/// A log writer for one test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// Runs on this test's thread only (`#[tokio::test]` is single-threaded), so the
/// subscriber set here sees the portal's and the sandbox's tasks and nothing else.
#[tokio::test]
async fn json_logs_carry_the_request_span_and_the_request_id() {
    let app = spawn_app().await;
    // Set after `spawn_app` (which starts the test's usual capture), it takes over from here.
    let lines = Lines::default();
    let _logs = tracing::subscriber::set_default(keyhaven::telemetry::json_subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        lines.clone(),
    ));
    let (_, id) = app.connected("json-logs-1", "smartrecruiters").await;
    let key = app.api_key().await;
    let url = format!("{}/api/v1/connections/{id}/credentials", app.url);
    let api = reqwest::Client::new();
    let r = api
        .get(&url)
        .bearer_auth(&key)
        .header("x-request-id", "trace-Abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "trace-Abc-123");
    // Unacceptable ids are replaced by a generated one.
    for bad in ["has space", "semi;colon", &"a".repeat(65)] {
        let r = api
            .get(&url)
            .bearer_auth(&key)
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let given = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(given, bad);
        assert_eq!(given.len(), 32);
        assert!(given.chars().all(|c| c.is_ascii_hexdigit()));
    }
    let r = api
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_string();

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(records.len() > 5);
    for record in &records {
        assert!(record["timestamp"].is_string() && record["level"].is_string());
        assert!(record["message"].is_string(), "{record}");
    }
    let finished = |request_id: &str| {
        records
            .iter()
            .find(|r| r["message"] == "request finished" && r["span"]["request_id"] == request_id)
            .unwrap_or_else(|| panic!("no closing line for {request_id}"))
    };
    let line = finished("trace-Abc-123");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["name"], "request");
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(
        line["span"]["route"],
        "/api/v1/connections/{id}/credentials"
    );
    assert_eq!(line["span"]["status"], 200);
    assert!(line["span"]["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(finished(&generated)["span"]["route"], "/healthz");
    // Lines inside a request carry its span too (outermost in `spans`).
    let established = records
        .iter()
        .find(|r| r["message"] == "connection established")
        .expect("the callback logged");
    let request = &established["spans"][0];
    assert_eq!(request["name"], "request");
    assert_eq!(request["route"], "/oauth/{provider}/callback");
    assert_eq!(request["request_id"].as_str().unwrap().len(), 32);
    // Nothing raw from the URL: the connection id only appears in no route.
    assert!(!records.iter().any(|r| {
        r["span"]["route"]
            .as_str()
            .unwrap_or("")
            .contains(&id.to_string())
    }));
}

/// `(METHOD, path)` for every `.route(...)` in the JSON API's router source, so a route
/// added without a description fails here.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/api.rs")).unwrap();
    let mut routes = BTreeSet::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        // The call's extent: up to its matching parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap();
        let call = &call[..end];
        let path = call.split('"').nth(1).unwrap();
        for method in ["get", "post", "put", "patch", "delete"] {
            let called = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                i == 0
                    || !call.as_bytes()[i - 1].is_ascii_alphanumeric()
                        && call.as_bytes()[i - 1] != b'_'
            });
            if called {
                routes.insert((method.to_uppercase(), format!("/api/v1{path}")));
            }
        }
        rest = &rest[at + 1..];
    }
    routes
}

async fn openapi(app: &TestApp) -> Value {
    // No API key needed.
    let r = reqwest::get(format!("{}/api/v1/openapi.json", app.url))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    r.json().await.unwrap()
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// A validator for one schema of the document, its `$ref`s resolved inside it.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    let map = root.as_object_mut().unwrap();
    map.insert("components".into(), doc["components"].clone());
    map.insert(
        "$schema".into(),
        Value::from("https://json-schema.org/draft/2020-12/schema"),
    );
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("schema {schema}: {e}"))
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_describes_every_api_route() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut expected = routes_in_source();
    assert!(expected.len() >= 10, "{expected:?}");
    expected.insert(("GET".into(), "/api/v1/openapi.json".into()));
    assert_eq!(operations(&doc), expected);

    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(doc["security"][0]["api_key"], Value::Array(vec![]));

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for r in &all_refs {
        let pointer = r.strip_prefix('#').expect("a local reference");
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    for schema in doc["components"]["schemas"].as_object().unwrap().values() {
        validator(&doc, schema);
    }

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public = path == "/api/v1/openapi.json";
            if public {
                assert_eq!(op["security"], serde_json::json!([{}]));
            } else {
                assert!(op.get("security").is_none(), "{method} {path}");
            }
            assert!(op["summary"].is_string(), "{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}"
            );
            for status in ["401", "500", "503"] {
                assert_eq!(
                    responses.contains_key(status),
                    !public,
                    "{method} {path} {status}"
                );
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path}");
                for param in path.split('{').skip(1) {
                    let name = param.split('}').next().unwrap();
                    assert!(
                        op["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == name
                                && p["in"] == "path"
                                && p["required"] == true),
                        "{method} {path} {name}"
                    );
                }
            }
            for (status, response) in responses {
                let schema = &response["content"]["application/json"]["schema"];
                assert!(schema.is_object(), "{method} {path} {status}: a JSON body");
                assert!(response["description"].is_string());
            }
            if method == "post" && path.ends_with("connect-links") {
                assert!(op["requestBody"]["content"]["application/json"]["schema"].is_object());
            }
        }
    }
}

/// What one API call answered, for checking against the document.
struct Answer {
    method: &'static str,
    template: &'static str,
    status: StatusCode,
    body: Value,
}

async fn call(
    answers: &mut Vec<Answer>,
    request: reqwest::RequestBuilder,
    method: &'static str,
    template: &'static str,
) -> Value {
    let r = request.send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    answers.push(Answer {
        method,
        template,
        status,
        body: body.clone(),
    });
    body
}

#[tokio::test]
async fn every_api_answer_validates_against_the_openapi_document() {
    let app = spawn_app().await;
    let doc = openapi(&app).await;
    let key = app.api_key().await;
    let api = reqwest::Client::new();
    let base = format!("{}/api/v1", app.url);
    let mut answers = Vec::new();
    let a = &mut answers;

    let links = "/api/v1/connect-links";
    let body = serde_json::json!({ "end_user": { "external_id": "oas-1", "email": "oas1@example.com", "name": "O A S" } });
    call(
        a,
        api.post(format!("{base}/connect-links")).json(&body),
        "POST",
        links,
    )
    .await;
    call(
        a,
        api.post(format!("{base}/connect-links"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body("{"),
        "POST",
        links,
    )
    .await;
    call(
        a,
        api.post(format!("{base}/connect-links"))
            .bearer_auth(&key)
            .json(&body),
        "POST",
        links,
    )
    .await;

    let (_, id) = app.connected("oas-2", "smartrecruiters").await;
    let (_, other) = app.connected("oas-3", "smartrecruiters").await;
    app.connected("oas-4", "smartrecruiters").await;
    let missing = uuid::Uuid::new_v4();
    let by_id = "/api/v1/connections/{id}";
    let by_user = "/api/v1/end-users/{external_id}/connections/{provider}";
    let list = "/api/v1/end-users/{external_id}/connections";
    call(
        a,
        api.get(format!("{base}/end-users/oas-2/connections"))
            .bearer_auth(&key),
        "GET",
        list,
    )
    .await;
    call(
        a,
        api.get(format!("{base}/end-users/nobody/connections"))
            .bearer_auth(&key),
        "GET",
        list,
    )
    .await;
    call(
        a,
        api.get(format!("{base}/connections/{id}"))
            .bearer_auth(&key),
        "GET",
        by_id,
    )
    .await;
    call(
        a,
        api.get(format!("{base}/connections/{missing}"))
            .bearer_auth(&key),
        "GET",
        by_id,
    )
    .await;
    call(
        a,
        api.get(format!("{base}/connections/not-a-uuid"))
            .bearer_auth(&key),
        "GET",
        by_id,
    )
    .await;
    call(
        a,
        api.get(format!(
            "{base}/end-users/oas-2/connections/smartrecruiters"
        ))
        .bearer_auth(&key),
        "GET",
        by_user,
    )
    .await;
    call(
        a,
        api.get(format!("{base}/end-users/oas-2/connections/zoho"))
            .bearer_auth(&key),
        "GET",
        by_user,
    )
    .await;

    let creds = "/api/v1/connections/{id}/credentials";
    let user_creds = "/api/v1/end-users/{external_id}/connections/{provider}/credentials";
    call(
        a,
        api.get(format!("{base}/connections/{id}/credentials"))
            .bearer_auth(&key),
        "GET",
        creds,
    )
    .await;
    call(
        a,
        api.get(format!(
            "{base}/connections/{id}/credentials?force_refresh=true"
        ))
        .bearer_auth(&key),
        "GET",
        creds,
    )
    .await;
    call(
        a,
        api.get(format!(
            "{base}/connections/{id}/credentials?force_refresh=maybe"
        ))
        .bearer_auth(&key),
        "GET",
        creds,
    )
    .await;
    call(
        a,
        api.get(format!("{base}/connections/{missing}/credentials"))
            .bearer_auth(&key),
        "GET",
        creds,
    )
    .await;
    call(
        a,
        api.get(format!(
            "{base}/end-users/oas-2/connections/smartrecruiters/credentials"
        ))
        .bearer_auth(&key),
        "GET",
        user_creds,
    )
    .await;
    call(
        a,
        api.get(format!(
            "{base}/end-users/oas-2/connections/hurdlr/credentials"
        ))
        .bearer_auth(&key),
        "GET",
        user_creds,
    )
    .await;
    // Past expiry: a provider outage (503), then a dead grant (409 with a reconnect link).
    let fault = |effect| Fault {
        provider: "smartrecruiters".into(),
        target: FaultTarget::Refresh,
        effect,
        times: 1,
    };
    app.clock.advance(time::Duration::seconds(1799 + 60));
    app.sandbox.add_fault(fault(FaultEffect::TooManyRequests {
        retry_after_secs: 60,
    }));
    call(
        a,
        api.get(format!("{base}/connections/{other}/credentials"))
            .bearer_auth(&key),
        "GET",
        creds,
    )
    .await;
    app.sandbox.add_fault(fault(FaultEffect::InvalidGrant));
    call(
        a,
        api.get(format!(
            "{base}/end-users/oas-4/connections/smartrecruiters/credentials"
        ))
        .bearer_auth(&key),
        "GET",
        user_creds,
    )
    .await;

    call(
        a,
        api.post(format!("{base}/connections/{id}/reconnect-link"))
            .bearer_auth(&key),
        "POST",
        "/api/v1/connections/{id}/reconnect-link",
    )
    .await;
    call(
        a,
        api.post(format!("{base}/connections/{missing}/reconnect-link"))
            .bearer_auth(&key),
        "POST",
        "/api/v1/connections/{id}/reconnect-link",
    )
    .await;
    let user_reconnect = "/api/v1/end-users/{external_id}/connections/{provider}/reconnect-link";
    call(
        a,
        api.post(format!(
            "{base}/end-users/oas-2/connections/smartrecruiters/reconnect-link"
        ))
        .bearer_auth(&key),
        "POST",
        user_reconnect,
    )
    .await;
    call(
        a,
        api.post(format!(
            "{base}/end-users/oas-9/connections/smartrecruiters/reconnect-link"
        ))
        .bearer_auth(&key),
        "POST",
        user_reconnect,
    )
    .await;

    call(
        a,
        api.delete(format!(
            "{base}/end-users/oas-2/connections/smartrecruiters"
        ))
        .bearer_auth(&key),
        "DELETE",
        by_user,
    )
    .await;
    call(
        a,
        api.delete(format!("{base}/end-users/oas-2/connections/zoho"))
            .bearer_auth(&key),
        "DELETE",
        by_user,
    )
    .await;
    call(
        a,
        api.delete(format!("{base}/connections/{other}"))
            .bearer_auth(&key),
        "DELETE",
        by_id,
    )
    .await;
    call(
        a,
        api.delete(format!("{base}/connections/{missing}"))
            .bearer_auth(&key),
        "DELETE",
        by_id,
    )
    .await;
    call(
        a,
        api.get(format!("{base}/openapi.json")),
        "GET",
        "/api/v1/openapi.json",
    )
    .await;

    let statuses: BTreeSet<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    for expected in [200, 201, 400, 401, 404, 409, 503] {
        assert!(
            statuses.contains(&expected),
            "no {expected} answer in {statuses:?}"
        );
    }
    let mut exercised = BTreeSet::new();
    for answer in &answers {
        let key = answer.template.replace('~', "~0").replace('/', "~1");
        let op = doc
            .pointer(&format!("/paths/{key}/{}", answer.method.to_lowercase()))
            .unwrap_or_else(|| panic!("{} {} is not described", answer.method, answer.template));
        let response = &op["responses"][answer.status.as_str()];
        assert!(
            response.is_object(),
            "{} {} answered {}, which is not described",
            answer.method,
            answer.template,
            answer.status
        );
        let schema = &response["content"]["application/json"]["schema"];
        let validator = validator(&doc, schema);
        let errors: Vec<String> = validator
            .iter_errors(&answer.body)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{} {} {}: {} does not match: {errors:?}",
            answer.method,
            answer.template,
            answer.status,
            answer.body
        );
        exercised.insert((answer.method.to_string(), answer.template.to_string()));
    }
    assert_eq!(
        exercised,
        operations(&doc),
        "every described operation was called"
    );
}

/// A configuration file for `keyhaven check` against the test's database and sandbox.
fn check_config(app: &TestApp, keys: &str, token_url: &str, extra: &str) -> tempfile_path::Path {
    let sandbox = &app.sandbox_url;
    let text = format!(
        r#"encryption_keys = "{keys}"
{extra}
[server]
public_url = "{url}"
allow_insecure_provider_hosts = true

[database]
url = "{database}"

[providers.smartrecruiters]
client_id = "keyhaven-demo"
client_secret = "{secret}"
authorize_url = "{sandbox}/smartrecruiters/identity/oauth/allow"
token_url = "{token_url}"
api_url = "{sandbox}/smartrecruiters"

[providers.acme]
kind = "oauth2"
display_name = "Acme HR"
authorize_url = "{sandbox}/oauth2/authorize"
token_url = "{sandbox}/oauth2/token"
userinfo_url = "{sandbox}/oauth2/userinfo"
revocation_url = "{sandbox}/oauth2/revoke"
client_id = "keyhaven-demo"
client_secret = "{secret}"
"#,
        url = app.url,
        database = app.database_url,
        secret = CLIENT_SECRET,
    );
    tempfile_path::Path::with_contents(&text)
}

/// A file removed when dropped.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);

    impl Path {
        pub fn with_contents(text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "keyhaven-check-{}.toml",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, text).unwrap();
            Path(path)
        }
    }

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Runs the built binary; returns (success, stdout, stderr).
async fn keyhaven_check(config: &tempfile_path::Path) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhaven"));
    command.arg("--config").arg(&config.0).arg("check");
    for (name, _) in std::env::vars() {
        if name.starts_with("KEYHAVEN_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    let out = command.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn keyhaven_check_passes_on_a_good_configuration_and_names_each_failure() {
    let app = spawn_app().await;
    // A stored sealed value for the key check to open.
    app.connected("check-1", "smartrecruiters").await;
    let token_url = format!("{}/smartrecruiters/identity/oauth/token", app.sandbox_url);

    let good = check_config(&app, &app.keys, &token_url, "");
    let (ok, stdout, stderr) = keyhaven_check(&good).await;
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("ok    ")), "{stdout}");
    for check in [
        "configuration: 2 provider(s) offered: acme, smartrecruiters",
        "database: reachable",
        "migrations: all",
        "encryption keys: a stored sealed value opens",
        "provider acme: 4 URL(s) resolved and reached",
        "provider smartrecruiters: ",
    ] {
        assert!(stdout.contains(check), "{check} in\n{stdout}");
    }
    // Logs go to stderr, without colour when it is not a terminal.
    assert!(!stderr.contains('\u{1b}'));

    // Another key under the same id, and a token endpoint nobody listens on.
    let other_key = keyhaven::crypto::KeyRing::generate_entry("test").unwrap();
    let broken = check_config(&app, &other_key, "http://127.0.0.1:9/token", "");
    let (ok, stdout, _) = keyhaven_check(&broken).await;
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("ok    database: reachable"), "{stdout}");
    assert!(
        stdout.contains("FAIL  encryption keys: connection "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "FAIL  provider smartrecruiters: token URL http://127.0.0.1:9/token: connection refused"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("ok    provider acme"), "{stdout}");
    assert!(!stdout.contains(CLIENT_SECRET) && !stdout.contains(&app.keys));

    // An unknown setting stops at the configuration, naming it.
    let unknown = check_config(
        &app,
        &app.keys,
        &token_url,
        "\n[logging]\nformat = \"json\"\ncolour = true\n",
    );
    let (ok, stdout, _) = keyhaven_check(&unknown).await;
    assert!(!ok);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("FAIL  configuration: "), "{stdout}");
    assert!(stdout.contains("logging"), "{stdout}");

    // A database that does not exist.
    let no_db = format!("{}_missing", app.database_url);
    let text = std::fs::read_to_string(&good.0)
        .unwrap()
        .replace(&app.database_url, &no_db);
    let missing = tempfile_path::Path::with_contents(&text);
    let (ok, stdout, _) = keyhaven_check(&missing).await;
    assert!(!ok);
    assert!(
        stdout.contains("FAIL  database: cannot connect"),
        "{stdout}"
    );
}

#[test]
fn the_dashboard_and_alert_rules_use_only_metrics_that_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dashboard =
        std::fs::read_to_string(format!("{root}/deploy/grafana/keyhaven.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 10);
    let rules =
        std::fs::read_to_string(format!("{root}/deploy/prometheus/keyhaven-alerts.yml")).unwrap();
    let mut used = BTreeSet::new();
    for text in [&dashboard, &rules] {
        for (at, _) in text.match_indices("keyhaven_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_string();
            used.insert(base);
        }
    }
    let known: BTreeSet<String> = keyhaven::telemetry::metrics::ALL
        .iter()
        .map(|s| s.to_string())
        .collect();
    let unknown: Vec<&String> = used.difference(&known).collect();
    assert!(unknown.is_empty(), "unknown metrics: {unknown:?}");
    // Every metric is on the dashboard.
    let missing: Vec<&String> = known.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "not on the dashboard or in the rules: {missing:?}"
    );
}
