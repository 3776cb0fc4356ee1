#![expect(
    clippy::result_large_err,
    reason = "figment's Jail runs closures that return its own (large) error"
)]

use std::path::Path;

use figment::Jail;
use keyhaven::config::{ProviderSettings, RawSettings};
use secrecy::ExposeSecret;

use crate::chains::raw_settings_with_key;

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
    let mut raw = raw_settings_with_key();
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

    let mut raw = raw_settings_with_key();
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
    let mut raw = raw_settings_with_key();
    raw.providers
        .insert("smartrecruiters".into(), ProviderSettings::default());
    let settings = raw.validate().unwrap();
    assert!(settings.providers.is_empty());
    assert_eq!(settings.unavailable_providers[0].0, "smartrecruiters");
}

/// Runs `test` in figment's jail: a fresh working directory, every environment change
/// undone afterwards, and none of the variables the loader reads (`KEYHAVEN_*`,
/// `DATABASE_URL`) left from the real environment, so only what the test sets counts.
fn jailed(test: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
    Jail::expect_with(|jail| {
        let inherited: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| name.starts_with("KEYHAVEN_") || name == "DATABASE_URL")
            .collect();
        for name in inherited {
            // The jail records the real value, restores it when it ends…
            jail.set_env(&name, "");
            // …and meanwhile the variable is gone. SAFETY: as in the jail's own `set_env`:
            // only jailed tests change the environment, one at a time under figment's lock.
            unsafe { std::env::remove_var(&name) };
        }
        test(jail)
    });
}

#[test]
fn environment_and_file_are_read() {
    jailed(|jail| {
        jail.create_file(
            "keyhaven.toml",
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
        )?;
        // The environment wins over the file; `DATABASE_URL` is read without the prefix.
        jail.set_env(
            "KEYHAVEN_PROVIDERS__ACME__CLIENT_SECRET",
            "acme-secret-from-env",
        );
        jail.set_env("DATABASE_URL", "postgres://db.example/keyhaven");
        let settings = keyhaven::config::load_raw(Some(Path::new("keyhaven.toml")))
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(
            settings.redirect_uri("smartrecruiters"),
            "https://connect.example.com/oauth/smartrecruiters/callback"
        );
        assert!(settings.secure_cookies());
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://db.example/keyhaven"
        );
        let sr = settings.provider("smartrecruiters").unwrap();
        assert_eq!(sr.scopes, vec!["users_read"]);
        assert_eq!(sr.client_secret.expose_secret(), "sr-secret");
        let acme = settings.provider("acme").unwrap();
        assert!(acme.pkce);
        assert_eq!(
            acme.authorize_params,
            vec![("prompt".to_string(), "consent".to_string())]
        );
        assert_eq!(acme.client_secret.expose_secret(), "acme-secret-from-env");
        // Debug output never shows the secret.
        assert!(!format!("{sr:?}").contains("sr-secret"));
        assert!(!format!("{settings:?}").contains("sr-secret"));
        assert!(!format!("{settings:?}").contains("acme-secret-from-env"));
        let missing = keyhaven::config::load_raw(Some(Path::new("absent.toml")))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("not found"), "{missing}");
        Ok(())
    });
}

/// A misspelt key does nothing silently: start-up stops with one line naming it, at
/// every level, from the file or the environment.
#[test]
fn unknown_keys_and_values_are_refused_naming_them() {
    jailed(|jail| {
        let load = |toml: &str| {
            std::fs::write("bad.toml", toml).unwrap();
            keyhaven::config::load_raw(Some(Path::new("bad.toml")))
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        for (toml, named) in [
            ("[refersher]\nenabled = false\n", "refersher"),
            (
                "[server]\npublik_url = \"https://x.example\"\n",
                "server.publik_url",
            ),
            (
                "[providers.acme]\nkind = \"oauth3\"\n",
                "providers.acme.kind",
            ),
            (
                "[providers.acme]\nkind = \"oauth2\"\nclient_auth = \"digest\"\n",
                "providers.acme.client_auth",
            ),
            (
                "[providers.acme]\nkind = \"oauth2\"\ntoken_body = \"xml\"\n",
                "providers.acme.token_body",
            ),
            (
                "[providers.zoho.data_centers.eu]\naccounts_url = \"https://a\"\napi_url = \"https://b\"\nextra = 1\n",
                "providers.zoho.data_centers.eu.extra",
            ),
        ] {
            let err = load(toml);
            assert!(
                err.starts_with(&format!("configuration error: {named}")),
                "{toml:?} gave {err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        assert!(load("[providers.acme]\nkind = \"oauth3\"\n").contains("oauth2"));

        // A value is never echoed: a secret in the wrong place stays out of the line.
        for (toml, named) in [
            (
                "[server]\nhttp_timeout_secs = \"sentinel-secret-7c6b5a\"\n",
                "server.http_timeout_secs",
            ),
            (
                "encryption_keys = [\"sentinel-secret-7c6b5a\"\n",
                "configuration",
            ),
        ] {
            let err = load(toml);
            assert!(
                err.starts_with(&format!("configuration error: {named}")),
                "{err}"
            );
            assert!(!err.contains("sentinel-secret-7c6b5a"), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        jail.set_env("KEYHAVEN_PROVIDERS__ACME__CLIENT_SECRET", "98765432109876");
        std::fs::write("good.toml", "").unwrap();
        let err = keyhaven::config::load_raw(Some(Path::new("good.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("configuration error: providers.acme.client_secret"),
            "{err}"
        );
        assert!(!err.contains("98765432109876"), "{err}");
        jail.set_env(
            "KEYHAVEN_PROVIDERS__ACME__CLIENT_SECRET",
            "\"98765432109876\"",
        );
        keyhaven::config::load_raw(Some(Path::new("good.toml")))
            .expect("a quoted all-digit value is a string");
        jail.set_env("KEYHAVEN_PROVIDERS__ACME__CLIENT_SECRET", "");

        // From the environment too; the file's path itself is not a setting.
        std::fs::write("good.toml", "").unwrap();
        jail.set_env("KEYHAVEN_CONFIG", "good.toml");
        keyhaven::config::load_raw(None).expect("KEYHAVEN_CONFIG names the file, not a key");
        jail.set_env("KEYHAVEN_REFERSHER__ENABLED", "false");
        let err = keyhaven::config::load_raw(None).unwrap_err().to_string();
        assert!(err.starts_with("configuration error: refersher"), "{err}");
        Ok(())
    });
}

#[test]
fn session_and_link_lifetimes_have_safe_defaults_and_bounds() {
    let settings = raw_settings_with_key().validate().unwrap();
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
        let mut raw = raw_settings_with_key();
        raw.server.admin_session_idle_hours = idle;
        raw.server.admin_session_max_hours = max;
        let err = raw.validate().unwrap_err().to_string();
        assert!(err.contains(setting), "{idle}/{max}: {err}");
    }
}
