use keyhaven::config::{ProviderSettings, RawSettings};
use secrecy::SecretString;

fn with_key() -> RawSettings {
    RawSettings {
        encryption_keys: Some(SecretString::from(
            keyhaven::crypto::KeyRing::generate_entry("k1").unwrap(),
        )),
        ..Default::default()
    }
}

#[test]
fn missing_encryption_key_names_the_setting() {
    let err = RawSettings::default().validate().unwrap_err().to_string();
    assert!(
        err.starts_with("configuration error: KEYHAVEN_ENCRYPTION_KEYS"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn invalid_provider_settings_name_the_setting() {
    let mut raw = with_key();
    raw.providers.insert(
        "acme".into(),
        ProviderSettings {
            client_id: Some("id".into()),
            client_secret: Some("s".into()),
            ..Default::default()
        },
    );
    let err = raw.validate().unwrap_err().to_string();
    assert!(err.contains("providers.acme.kind"), "{err}");

    let mut raw = with_key();
    raw.providers.insert(
        "acme".into(),
        ProviderSettings {
            kind: Some(keyhaven::providers::settings::KindSetting::OAuth2),
            client_id: Some("id".into()),
            client_secret: Some("s".into()),
            authorize_url: Some("https://auth.example/authorize".into()),
            ..Default::default()
        },
    );
    let err = raw.validate().unwrap_err().to_string();
    assert!(err.contains("providers.acme.token_url"), "{err}");
}

#[test]
fn a_provider_without_credentials_is_not_offered() {
    let mut raw = with_key();
    raw.providers
        .insert("smartrecruiters".into(), ProviderSettings::default());
    let settings = raw.validate().unwrap();
    assert!(settings.providers.is_empty());
    assert_eq!(settings.unavailable_providers[0].0, "smartrecruiters");
}

#[test]
fn environment_and_file_are_read() {
    let dir = std::env::temp_dir().join(format!("keyhaven-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keyhaven.toml");
    std::fs::write(
        &file,
        r#"
encryption_keys = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
[server]
public_url = "https://connect.example.com"
[providers.smartrecruiters]
client_id = "sr-id"
client_secret = "sr-secret"
scopes = ["users_read"]
[providers.acme]
kind = "oauth2"
display_name = "Acme HR"
authorize_url = "https://auth.acme.example/authorize"
token_url = "https://auth.acme.example/token"
client_id = "a"
client_secret = "b"
authorize_params = { prompt = "consent" }
"#,
    )
    .unwrap();
    let settings = keyhaven::config::load_raw(Some(&file))
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        settings.redirect_uri("smartrecruiters"),
        "https://connect.example.com/oauth/smartrecruiters/callback"
    );
    assert!(settings.secure_cookies());
    let sr = settings.provider("smartrecruiters").unwrap();
    assert_eq!(sr.scopes, vec!["users_read"]);
    let acme = settings.provider("acme").unwrap();
    assert!(acme.pkce);
    assert_eq!(
        acme.authorize_params,
        vec![("prompt".to_string(), "consent".to_string())]
    );
    // Debug output never shows the secret.
    assert!(!format!("{sr:?}").contains("sr-secret"));
    assert!(!format!("{settings:?}").contains("sr-secret"));
    let missing = keyhaven::config::load_raw(Some(&dir.join("absent.toml")))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("not found"), "{missing}");
}

#[test]
fn session_and_link_lifetimes_have_safe_defaults_and_bounds() {
    let settings = with_key().validate().unwrap();
    assert_eq!(settings.links.connect_link_hours, 1);
    assert_eq!(settings.server.session_hours, 24);
    assert_eq!(settings.server.admin_session_idle_hours, 2);
    assert_eq!(settings.server.admin_session_max_hours, 12);
    for (idle, max, setting) in [
        (0, 12, "server.admin_session_idle_hours"),
        (-1, 12, "server.admin_session_idle_hours"),
        (25, 48, "server.admin_session_idle_hours"),
        (4, 3, "server.admin_session_max_hours"),
        (2, 1000, "server.admin_session_max_hours"),
    ] {
        let mut raw = with_key();
        raw.server.admin_session_idle_hours = idle;
        raw.server.admin_session_max_hours = max;
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains(setting), "{idle}/{max}: {err}");
    }
}
