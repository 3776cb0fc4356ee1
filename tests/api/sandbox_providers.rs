//! The imitated Bullhorn, Zoho Recruit and Hurdlr, driven over real HTTP: their quirks
//! are what the portal's clients are tested against, so they are pinned here.

use std::collections::HashMap;

use keyhaven::clock::Clock;
use keyhaven_sandbox::{Fault, FaultEffect, FaultTarget, Sandbox};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{location, query_param};

const CLIENT_ID: &str = "portal-client";
const SECRET: &str = "sandbox-client-secret-5e4d3c2b";
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct Sb {
    sandbox: Sandbox,
    clock: Clock,
    base: String,
    http: reqwest::Client,
}

async fn spawn() -> Sb {
    let clock = Clock::default();
    let sandbox = Sandbox::new(clock.clone());
    let base = sandbox.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for provider in ["bullhorn", "zoho", "hurdlr"] {
        sandbox.register_client(provider, CLIENT_ID, SECRET, vec![REDIRECT.into()]);
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Sb {
        sandbox,
        clock,
        base,
        http,
    }
}

async fn json(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------- Bullhorn

impl Sb {
    fn bh(&self, dc: &str) -> String {
        format!("{}/bullhorn/{dc}", self.base)
    }

    /// The headless authorize; returns the raw response.
    async fn bh_headless(&self, dc: &str, username: &str, password: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/oauth/authorize", self.bh(dc)))
            .query(&[
                ("client_id", CLIENT_ID),
                ("response_type", "code"),
                ("state", "st-1"),
                ("action", "Login"),
                ("username", username),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn bh_code(&self, dc: &str, username: &str) -> String {
        let r = self.bh_headless(dc, username, "bullhorn-pass").await;
        assert_eq!(r.status(), StatusCode::FOUND);
        query_param(&location(&r), "code").unwrap()
    }

    async fn bh_token(&self, dc: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/oauth/token", self.bh(dc)))
            .query(params)
            .send()
            .await
            .unwrap();
        json(r).await
    }

    async fn bh_exchange(&self, dc: &str, code: &str) -> (StatusCode, Value) {
        self.bh_token(
            dc,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ],
        )
        .await
    }

    async fn bh_refresh(&self, dc: &str, refresh_token: &str) -> (StatusCode, Value) {
        self.bh_token(
            dc,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ],
        )
        .await
    }

    /// Code, exchange: the token answer.
    async fn bh_tokens(&self, dc: &str, username: &str) -> Value {
        let code = self.bh_code(dc, username).await;
        let (status, body) = self.bh_exchange(dc, &code).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn bh_rest_login(&self, dc: &str, access_token: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/rest-services/login", self.bh(dc)))
            .query(&[("version", "*"), ("access_token", access_token)])
            .send()
            .await
            .unwrap();
        json(r).await
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .to_string()
}

#[tokio::test]
async fn bullhorn_login_info_sends_other_data_centers_users_there_with_a_307() {
    let sb = spawn().await;
    let east = format!("{}/rest-services/loginInfo", sb.bh("east"));

    let r = sb
        .http
        .get(&east)
        .query(&[("username", "west.user")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let next = location(&r);
    assert_eq!(
        next,
        format!(
            "{}/rest-services/loginInfo?username=west.user",
            sb.bh("west")
        )
    );
    let (status, body) = json(sb.http.get(&next).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s(&body, "oauthUrl"), format!("{}/oauth", sb.bh("west")));
    assert_eq!(
        s(&body, "restUrl"),
        format!("{}/rest-services", sb.bh("west"))
    );

    let (status, body) = json(
        sb.http
            .get(&east)
            .query(&[("username", "east.user")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s(&body, "oauthUrl"), format!("{}/oauth", sb.bh("east")));

    let r = sb
        .http
        .get(&east)
        .query(&[("username", "nobody.here")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A registered user lives where they were put.
    sb.sandbox
        .add_bullhorn_user("agency.admin", "a-long-enough-password", "emea")
        .unwrap();
    let r = sb
        .http
        .get(&east)
        .query(&[("username", "agency.admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&r),
        format!(
            "{}/rest-services/loginInfo?username=agency.admin",
            sb.bh("emea")
        )
    );
    assert!(sb.sandbox.add_bullhorn_user("x", "y", "mars").is_err());
    assert_eq!(sb.sandbox.counter("bullhorn.login_info"), 5);
}

#[tokio::test]
async fn bullhorn_headless_login_puts_an_encoded_code_and_the_client_id_in_the_location() {
    let sb = spawn().await;
    let r = sb.bh_headless("west", "west.user", "bullhorn-pass").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = location(&r);
    assert!(loc.starts_with(&format!("{REDIRECT}?code=5%3A")), "{loc}");
    assert_eq!(query_param(&loc, "client_id").unwrap(), CLIENT_ID);
    assert_eq!(query_param(&loc, "state").unwrap(), "st-1");
    let code = query_param(&loc, "code").unwrap();
    let (cluster, uuid) = code.split_once(':').unwrap();
    assert_eq!(cluster, "5");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{code}");

    // Wrong password, or a user of another data center: a page, never a redirect.
    for (dc, user, password) in [
        ("west", "west.user", "wrong-password"),
        ("east", "west.user", "bullhorn-pass"),
        ("east", "nobody", "bullhorn-pass"),
    ] {
        let r = sb.bh_headless(dc, user, password).await;
        assert_eq!(r.status(), StatusCode::OK, "{dc} {user}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("id=\"error\""));
    }
    assert_eq!(sb.sandbox.counter("bullhorn.authorize_login"), 4);
    assert!(
        sb.sandbox
            .secrets_seen()
            .contains(&"wrong-password".to_string())
    );
}

#[tokio::test]
async fn bullhorn_login_page_posts_back_and_auto_approve_signs_in_the_first_user() {
    let sb = spawn().await;
    let authorize = format!("{}/oauth/authorize", sb.bh("emea"));
    let query = [
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("state", "st-2"),
        ("redirect_uri", REDIRECT),
    ];
    let r = sb.http.get(&authorize).query(&query).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "{page}");
    assert!(page.contains("action=\"/bullhorn/emea/oauth/authorize\""));

    let mut form: HashMap<&str, &str> = query.into_iter().collect();
    form.insert("username", "emea.user");
    form.insert("password", "not-it");
    let r = sb.http.post(&authorize).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "wrong password: the page again");
    form.insert("password", "bullhorn-pass");
    let r = sb.http.post(&authorize).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let code = query_param(&location(&r), "code").unwrap();
    assert!(code.starts_with("40:"));
    assert_eq!(sb.bh_exchange("emea", &code).await.0, StatusCode::OK);

    form.insert("decision", "cancel");
    let r = sb.http.post(&authorize).form(&form).send().await.unwrap();
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("access_denied")
    );

    // Unknown client or unregistered redirect URI: no redirect at all.
    let r = sb
        .http
        .get(&authorize)
        .query(&[("client_id", CLIENT_ID), ("response_type", "code")])
        .query(&[("redirect_uri", "http://evil.example/cb")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    sb.sandbox.set_auto_approve(true);
    let r = sb
        .http
        .get(&authorize)
        .query(&[("client_id", CLIENT_ID), ("response_type", "code")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = location(&r);
    assert!(loc.starts_with(REDIRECT), "the registered redirect URI");
    let code = query_param(&loc, "code").unwrap();
    let (status, tokens) = sb.bh_exchange("emea", &code).await;
    assert_eq!(status, StatusCode::OK);
    let (_, session) = sb.bh_rest_login("emea", &s(&tokens, "access_token")).await;
    let rest_url = s(&session, "restUrl");
    let r = sb
        .http
        .get(format!("{rest_url}settings/userId"))
        .header("BhRestToken", s(&session, "BhRestToken"))
        .send()
        .await
        .unwrap();
    let user_id = json(r).await.1["userId"].as_u64().unwrap();
    assert!(user_id > 0);
}

#[tokio::test]
async fn bullhorn_token_reads_only_the_query_and_a_code_works_once_at_its_own_data_center() {
    let sb = spawn().await;
    let code = sb.bh_code("west", "west.user").await;
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
    ];

    // Parameters in a form body: refused, and the code is still good.
    let r = sb
        .http
        .post(format!("{}/oauth/token", sb.bh("west")))
        .form(&params)
        .send()
        .await
        .unwrap();
    let (status, body) = json(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");

    let (status, body) = sb
        .bh_token(
            "west",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", CLIENT_ID),
                ("client_secret", "not-the-secret"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    // Another data center never saw the code.
    let (status, body) = sb.bh_exchange("east", &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    let (status, body) = sb.bh_exchange("west", &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert!(s(&body, "access_token").starts_with("5:"));
    assert!(s(&body, "refresh_token").starts_with("5:"));

    let (status, body) = sb.bh_exchange("west", &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "single use");
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].is_string());

    // Five minutes by the sandbox clock.
    let late = sb.bh_code("west", "west.user").await;
    sb.clock.advance(time::Duration::seconds(301));
    assert_eq!(
        sb.bh_exchange("west", &late).await.0,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(sb.sandbox.counter("bullhorn.token.authorization_code"), 5);
    assert_eq!(sb.sandbox.take_code_ages().len(), 2);
    assert!(sb.sandbox.secrets_seen().contains(&code));
}

#[tokio::test]
async fn bullhorn_refresh_tokens_rotate_and_the_old_one_dies_at_once() {
    let sb = spawn().await;
    let first = sb.bh_tokens("east", "east.user").await;
    let old = s(&first, "refresh_token");
    let (status, second) = sb.bh_refresh("east", &old).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let new = s(&second, "refresh_token");
    assert_ne!(new, old);
    let (status, body) = sb.bh_refresh("east", &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(sb.sandbox.dead_refresh_token_uses(), 1);
    assert_eq!(sb.sandbox.counter("bullhorn.token.refresh_token"), 2);

    // Injected: the provider rotates, the answer is lost (it would come a minute later).
    sb.sandbox.add_fault(Fault {
        provider: "bullhorn".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::DropResponse { hang_ms: 60_000 },
        times: 1,
    });
    let rotations = sb.sandbox.counter("bullhorn.refreshed");
    let lost = tokio::spawn(
        sb.http
            .post(format!("{}/oauth/token", sb.bh("east")))
            .query(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", new.as_str()),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ])
            .send(),
    );
    sb.sandbox
        .wait_for("bullhorn.refreshed", rotations + 1)
        .await;
    assert!(
        !lost.is_finished(),
        "rotated, and the answer has not arrived"
    );
    lost.abort();
    assert_eq!(sb.bh_refresh("east", &new).await.0, StatusCode::BAD_REQUEST);

    // A password change upstream ends the user's grants.
    let tokens = sb.bh_tokens("east", "east.user").await;
    assert!(
        sb.sandbox
            .change_bullhorn_password("east.user", "changed-password-123")
            .unwrap()
            >= 1
    );
    let (status, _) = sb.bh_refresh("east", &s(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let r = sb.bh_headless("east", "east.user", "bullhorn-pass").await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the old password no longer signs in"
    );

    // So does revoke_user, and a refresh sent to the wrong data center.
    let tokens = sb.bh_tokens("west", "west.user").await;
    assert_eq!(sb.sandbox.revoke_user("bullhorn", "west.user"), 2);
    assert_eq!(
        sb.bh_refresh("west", &s(&tokens, "refresh_token")).await.0,
        StatusCode::BAD_REQUEST
    );
    let tokens = sb.bh_tokens("west", "west.user").await;
    let rt = s(&tokens, "refresh_token");
    assert_eq!(sb.bh_refresh("east", &rt).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(sb.bh_refresh("west", &rt).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bullhorn_rest_login_spends_the_access_token_once_and_sessions_answer_412_and_401() {
    let sb = spawn().await;
    let tokens = sb.bh_tokens("west", "west.user").await;
    let at = s(&tokens, "access_token");

    assert_eq!(
        sb.bh_rest_login("east", &at).await.0,
        StatusCode::UNAUTHORIZED,
        "other DC"
    );
    let (status, session) = sb.bh_rest_login("west", &at).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let rest_token = s(&session, "BhRestToken");
    let rest_url = s(&session, "restUrl");
    assert!(rest_url.starts_with(&format!("{}/rest-services/", sb.bh("west"))));
    assert!(rest_url.ends_with('/'));
    assert_eq!(
        sb.bh_rest_login("west", &at).await.0,
        StatusCode::UNAUTHORIZED,
        "usable once"
    );
    assert_eq!(sb.sandbox.counter("bullhorn.rest_login"), 3);

    let r = sb.http.get(format!("{rest_url}ping")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = sb
        .http
        .get(format!("{rest_url}ping"))
        .header("BhRestToken", "not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (status, ping) = json(
        sb.http
            .get(format!("{rest_url}ping"))
            .header("BhRestToken", &rest_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let expires = ping["sessionExpires"].as_i64().unwrap();
    let ten_minutes = (sb.clock.now() + time::Duration::minutes(10)).unix_timestamp() * 1000;
    assert!(
        (expires - ten_minutes).abs() < 5_000,
        "{expires} vs {ten_minutes}"
    );

    let (status, body) = json(
        sb.http
            .get(format!("{rest_url}settings/userId"))
            .query(&[("BhRestToken", &rest_token)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["userId"].as_u64().is_some(), "{body}");

    // Expiry by the sandbox clock, and the test knob.
    sb.clock.advance(time::Duration::minutes(11));
    let r = sb
        .http
        .get(format!("{rest_url}ping"))
        .header("BhRestToken", &rest_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let (_, refreshed) = sb.bh_refresh("west", &s(&tokens, "refresh_token")).await;
    let r = sb
        .http
        .get(format!("{}/rest-services/login", sb.bh("west")))
        .query(&[
            ("version", "*"),
            ("access_token", &s(&refreshed, "access_token")),
            ("ttl", "60"),
        ])
        .send()
        .await
        .unwrap();
    let session = json(r).await.1;
    let rest_token = s(&session, "BhRestToken");
    sb.clock.advance(time::Duration::minutes(30));
    let ping = |token: String| {
        sb.http
            .get(format!("{rest_url}ping"))
            .header("BhRestToken", token)
            .send()
    };
    assert_eq!(
        ping(rest_token.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(sb.sandbox.expire_bullhorn_sessions(), 1);
    assert_eq!(
        ping(rest_token).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // REST login can be made to fail.
    sb.sandbox.add_fault(Fault {
        provider: "bullhorn".into(),
        target: FaultTarget::RestLogin,
        effect: FaultEffect::Status { status: 503 },
        times: 1,
    });
    let (_, refreshed) = sb.bh_refresh("west", &s(&refreshed, "refresh_token")).await;
    let at = s(&refreshed, "access_token");
    assert_eq!(
        sb.bh_rest_login("west", &at).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(sb.bh_rest_login("west", &at).await.0, StatusCode::OK);
}

// ---------------------------------------------------------------- Zoho

impl Sb {
    /// Approves Zoho's consent page; returns the callback URL.
    async fn zoho_consent(&self, login: &str, extra: &[(&str, &str)]) -> String {
        let mut form: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", "ZohoRecruit.modules.ALL,ZohoRecruit.users.READ"),
            ("state", "zs-1"),
            ("decision", "approve"),
            ("login", login),
        ];
        form.extend_from_slice(extra);
        let r = self
            .http
            .post(format!("{}/zoho/accounts/us/oauth/v2/auth", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        location(&r)
    }

    async fn zoho_code(&self, login: &str) -> String {
        let callback = self
            .zoho_consent(login, &[("access_type", "offline"), ("prompt", "consent")])
            .await;
        query_param(&callback, "code").unwrap()
    }

    async fn zoho_token(&self, dc: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}/zoho/accounts/{dc}/oauth/v2/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn zoho_exchange(&self, dc: &str, code: &str) -> Value {
        let r = self
            .zoho_token(
                dc,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", CLIENT_ID),
                    ("client_secret", SECRET),
                    ("redirect_uri", REDIRECT),
                    ("code", code),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "Zoho answers 200 either way");
        r.json().await.unwrap()
    }

    async fn zoho_refresh(&self, dc: &str, refresh_token: &str) -> Value {
        let r = self
            .zoho_token(
                dc,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", CLIENT_ID),
                    ("client_secret", SECRET),
                    ("refresh_token", refresh_token),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn zoho_me(&self, dc: &str, authorization: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/zoho/recruit/{dc}/recruit/v2/users", self.base))
            .query(&[("type", "CurrentUser")])
            .header("Authorization", authorization)
            .send()
            .await
            .unwrap()
    }
}

fn is_zoho_token(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 3 && parts[0] == "1000" && is_hex(parts[1], 32) && is_hex(parts[2], 32)
}

#[tokio::test]
async fn zoho_callback_names_the_users_data_center_and_only_that_one_takes_the_code() {
    let sb = spawn().await;
    sb.sandbox.add_zoho_user("karl", "eu").unwrap();
    let callback = sb
        .zoho_consent("karl", &[("access_type", "offline"), ("prompt", "consent")])
        .await;
    assert!(callback.starts_with(REDIRECT));
    let code = query_param(&callback, "code").unwrap();
    assert!(is_zoho_token(&code), "{code}");
    assert_eq!(query_param(&callback, "state").as_deref(), Some("zs-1"));
    assert_eq!(query_param(&callback, "location").as_deref(), Some("eu"));
    assert_eq!(
        query_param(&callback, "accounts-server").unwrap(),
        format!("{}/zoho/accounts/eu", sb.base)
    );
    assert!(
        callback.contains("accounts-server=http%3A%2F%2F"),
        "URL-encoded"
    );

    let wrong = sb.zoho_exchange("us", &code).await;
    assert_eq!(wrong, serde_json::json!({ "error": "invalid_code" }));
    let body = sb.zoho_exchange("eu", &code).await;
    assert!(is_zoho_token(&s(&body, "access_token")), "{body}");
    assert!(is_zoho_token(&s(&body, "refresh_token")));
    assert_eq!(body["api_domain"], "https://www.zohoapis.eu");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let again = sb.zoho_exchange("eu", &code).await;
    assert_eq!(again["error"], "invalid_code", "single use");

    assert_eq!(sb.sandbox.counter("zoho.us.token"), 1);
    assert_eq!(sb.sandbox.counter("zoho.eu.token"), 2);
    assert_eq!(sb.sandbox.counter("zoho.token.authorization_code"), 3);
    assert_eq!(sb.sandbox.counter("zoho.au.token"), 0);

    // The login's prefix places users too; everyone else is in the US.
    let jp = sb.zoho_consent("jp.hana", &[]).await;
    assert_eq!(query_param(&jp, "location").as_deref(), Some("jp"));
    let us = sb.zoho_consent("plain.user", &[]).await;
    assert_eq!(query_param(&us, "location").as_deref(), Some("us"));
}

#[tokio::test]
async fn zoho_errors_are_200s_with_an_error_key() {
    let sb = spawn().await;
    let code = sb.zoho_code("ann").await;
    let r = sb
        .zoho_token(
            "us",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");

    // Two minutes by the sandbox clock.
    sb.clock.advance(time::Duration::seconds(121));
    assert_eq!(sb.zoho_exchange("us", &code).await["error"], "invalid_code");
    let unknown = sb.zoho_refresh("us", "1000.dead.beef").await;
    assert_eq!(unknown["error"], "invalid_code");

    // Query-string parameters are read as well.
    let code = sb.zoho_code("ann").await;
    let r = sb
        .http
        .post(format!("{}/zoho/accounts/us/oauth/v2/token", sb.base))
        .query(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("code", &code),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.json::<Value>().await.unwrap()["access_token"].is_string());

    // Deny and an empty scope come back as error redirects.
    let denied = sb.zoho_consent("ann", &[("decision", "deny")]).await;
    assert_eq!(
        query_param(&denied, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&denied, "state").as_deref(), Some("zs-1"));
    let r = sb
        .http
        .get(format!("{}/zoho/accounts/us/oauth/v2/auth", sb.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", ""),
            ("state", "zs-2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert!(query_param(&location(&r), "error").is_some());
}

#[tokio::test]
async fn zoho_refresh_tokens_need_offline_and_consent_and_never_rotate() {
    let sb = spawn().await;
    let online = sb.zoho_consent("bea", &[]).await;
    let body = sb
        .zoho_exchange("us", &query_param(&online, "code").unwrap())
        .await;
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "no offline access");

    let first = sb.zoho_exchange("us", &sb.zoho_code("bea").await).await;
    let rt = s(&first, "refresh_token");

    // A second grant without prompt=consent brings no refresh token.
    let quiet = sb.zoho_consent("bea", &[("access_type", "offline")]).await;
    let body = sb
        .zoho_exchange("us", &query_param(&quiet, "code").unwrap())
        .await;
    assert!(body["access_token"].is_string());
    assert!(body.get("refresh_token").is_none(), "{body}");

    for _ in 0..3 {
        let refreshed = sb.zoho_refresh("us", &rt).await;
        assert!(refreshed["access_token"].is_string(), "{refreshed}");
        assert!(refreshed.get("refresh_token").is_none());
        assert_eq!(refreshed["api_domain"], "https://www.zohoapis.com");
    }
    assert_eq!(sb.sandbox.max_refresh_token_uses(), 3);

    // Revocation ends the refresh token and its access tokens.
    let at = s(&sb.zoho_refresh("us", &rt).await, "access_token");
    let r = sb
        .http
        .post(format!(
            "{}/zoho/accounts/us/oauth/v2/token/revoke",
            sb.base
        ))
        .query(&[("token", &rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(r).await,
        (StatusCode::OK, serde_json::json!({ "status": "success" }))
    );
    assert_eq!(sb.zoho_refresh("us", &rt).await["error"], "invalid_code");
    assert_eq!(
        sb.zoho_me("us", &format!("Zoho-oauthtoken {at}"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sb.sandbox.counter("zoho.revoke"), 1);
    assert_eq!(sb.sandbox.dead_refresh_token_uses(), 1);
}

#[tokio::test]
async fn zoho_the_21st_refresh_token_evicts_the_users_oldest() {
    let sb = spawn().await;
    let mut tokens = Vec::new();
    for i in 0..21 {
        if i > 0 && i % 5 == 0 {
            // Five refresh tokens a minute at most.
            sb.clock.advance(time::Duration::seconds(61));
        }
        let body = sb.zoho_exchange("us", &sb.zoho_code("cai").await).await;
        tokens.push(s(&body, "refresh_token"));
    }
    assert_eq!(
        sb.zoho_refresh("us", &tokens[0]).await["error"],
        "invalid_code"
    );
    for rt in &tokens[1..] {
        assert!(sb.zoho_refresh("us", rt).await["access_token"].is_string());
    }
    assert_eq!(sb.sandbox.counter("zoho.evicted.refresh_token"), 1);
}

#[tokio::test]
async fn zoho_throttles_the_sixth_refresh_token_in_a_minute() {
    let sb = spawn().await;
    for _ in 0..5 {
        let body = sb.zoho_exchange("us", &sb.zoho_code("dee").await).await;
        assert!(body["refresh_token"].is_string());
    }
    let code = sb.zoho_code("dee").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("code", code.as_str()),
    ];
    let (status, body) = json(sb.zoho_token("us", &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "Access Denied");
    assert_eq!(body["status"], "failure");
    assert!(s(&body, "error_description").starts_with("You have made too many requests"));

    sb.sandbox.set_zoho_throttle_status(200).unwrap();
    let (status, body) = json(sb.zoho_token("us", &form).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"], "Access Denied");

    // The throttled code was not spent: a minute later it works.
    sb.clock.advance(time::Duration::seconds(61));
    let (_, body) = json(sb.zoho_token("us", &form).await).await;
    assert!(body["refresh_token"].is_string(), "{body}");

    // Injected throttling, with its own status.
    sb.sandbox.add_fault(Fault {
        provider: "zoho".into(),
        target: FaultTarget::Refresh,
        effect: FaultEffect::Throttled { status: Some(400) },
        times: 1,
    });
    let rt = s(&body, "refresh_token");
    let r = sb
        .zoho_token(
            "us",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("refresh_token", &rt),
            ],
        )
        .await;
    let (status, body) = json(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "Access Denied");
    assert!(sb.zoho_refresh("us", &rt).await["access_token"].is_string());
}

#[tokio::test]
async fn zoho_the_31st_access_token_of_a_refresh_token_evicts_the_oldest() {
    let sb = spawn().await;
    let first = sb.zoho_exchange("us", &sb.zoho_code("eli").await).await;
    let rt = s(&first, "refresh_token");
    let oldest = s(&first, "access_token");
    let second = s(&sb.zoho_refresh("us", &rt).await, "access_token");
    let mut last = String::new();
    for _ in 0..29 {
        last = s(&sb.zoho_refresh("us", &rt).await, "access_token");
    }
    for (at, expected) in [
        (oldest, StatusCode::UNAUTHORIZED),
        (second, StatusCode::OK),
        (last, StatusCode::OK),
    ] {
        let r = sb.zoho_me("us", &format!("Zoho-oauthtoken {at}")).await;
        assert_eq!(r.status(), expected);
    }
    assert_eq!(sb.sandbox.counter("zoho.evicted.access_token"), 1);
}

#[tokio::test]
async fn zoho_who_am_i_wants_its_own_scheme_on_the_users_recruit_host() {
    let sb = spawn().await;
    let code = sb.zoho_code("in.ravi").await;
    let body = sb.zoho_exchange("in", &code).await;
    let at = s(&body, "access_token");

    let r = sb.zoho_me("in", &format!("Bearer {at}")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "Bearer is refused");
    let r = sb.zoho_me("us", &format!("Zoho-oauthtoken {at}")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "another data center");
    let (status, me) = json(sb.zoho_me("in", &format!("Zoho-oauthtoken {at}")).await).await;
    assert_eq!(status, StatusCode::OK);
    let user = &me["users"][0];
    for key in ["id", "full_name", "email", "zuid"] {
        assert!(user[key].is_string(), "{key} in {me}");
    }
    assert_eq!(user["email"], "in.ravi@example.com");
    assert_eq!(sb.sandbox.counter("zoho.userinfo"), 3);
    assert_eq!(sb.sandbox.counter("zoho.in.userinfo"), 2);

    sb.clock.advance(time::Duration::seconds(3601));
    let r = sb.zoho_me("in", &format!("Zoho-oauthtoken {at}")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "expired");
}

// ---------------------------------------------------------------- Hurdlr

impl Sb {
    async fn hurdlr_code(&self) -> String {
        let r = self
            .http
            .post(format!("{}/hurdlr/oauth/authorize", self.base))
            .form(&[
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT),
                ("state", "hs-1"),
                ("decision", "approve"),
                ("login", "hal@example.com"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND);
        let callback = location(&r);
        assert_eq!(query_param(&callback, "state").as_deref(), Some("hs-1"));
        query_param(&callback, "code").unwrap()
    }
}

fn is_hurdlr_token(t: &str) -> bool {
    t.split_once('.')
        .is_some_and(|(a, b)| is_hex(a, 64) && is_hex(b, 32))
}

#[tokio::test]
async fn hurdlr_reads_a_form_body_and_answers_without_token_type() {
    let sb = spawn().await;
    let r = sb
        .http
        .get(format!("{}/hurdlr/oauth/authorize", sb.base))
        .query(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("state", "hs-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a consent page");
    assert!(r.text().await.unwrap().contains("Hurdlr"));

    let code = sb.hurdlr_code().await;
    let token_url = format!("{}/hurdlr/rest/v4/auth/token", sb.base);
    let params = [
        ("client_id", CLIENT_ID),
        ("client_secret", SECRET),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
    ];
    let as_json: HashMap<&str, &str> = params.into_iter().collect();
    let r = sb
        .http
        .post(&token_url)
        .json(&as_json)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a JSON body is refused"
    );

    let r = sb.http.post(&token_url).form(&params).send().await.unwrap();
    let (status, body) = json(r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("token_type").is_none(), "{body}");
    assert_eq!(body["expires_in"], 7_776_000);
    assert_eq!(body["scope"], "token");
    let created_at = body["created_at"].as_i64().unwrap();
    assert!((created_at - sb.clock.now().unix_timestamp()).abs() <= 2);
    assert!(is_hurdlr_token(&s(&body, "access_token")), "{body}");
    let old = s(&body, "refresh_token");
    assert!(is_hurdlr_token(&old));

    // v5 is the same endpoint; the clock is the sandbox's.
    sb.clock.advance(time::Duration::days(30));
    let refresh = |rt: String| {
        sb.http
            .post(format!("{}/hurdlr/rest/v5/auth/token", sb.base))
            .form(&[
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ])
            .send()
    };
    let (status, body) = json(refresh(old.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created_at = body["created_at"].as_i64().unwrap();
    assert!((created_at - sb.clock.now().unix_timestamp()).abs() <= 2);
    assert_ne!(s(&body, "refresh_token"), old);
    let (status, dead) = json(refresh(old).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(dead["error"].is_string());

    let (status, me) = json(
        sb.http
            .get(format!("{}/hurdlr/rest/v5/auth/userInfo", sb.base))
            .bearer_auth(s(&body, "access_token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["userId"].as_u64().is_some(), "{me}");
    assert_eq!(me["email"], "hal@example.com");
    for key in ["firstName", "lastName", "bizName"] {
        assert!(me[key].is_string(), "{key} in {me}");
    }
    assert_eq!(sb.sandbox.counter("hurdlr.token.authorization_code"), 1);
    assert_eq!(sb.sandbox.counter("hurdlr.token.refresh_token"), 2);
}
