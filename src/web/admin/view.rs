//! Small formatting functions shared by the admin pages. Everything they return is plain
//! text; the templates escape it.

use time::OffsetDateTime;
use time::macros::format_description;

use crate::model::ConnectionStatus;
use crate::state::AppState;

/// Each status as a filter choice: its spelling and its label.
pub fn status_choices() -> [(&'static str, &'static str); 4] {
    ConnectionStatus::ALL.map(|s| (s.as_str(), status_label(s)))
}

/// `2026-12-02 14:05 UTC`, or a dash.
pub fn when(at: Option<OffsetDateTime>) -> String {
    at.and_then(|t| {
        t.to_offset(time::UtcOffset::UTC)
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
    })
    .unwrap_or_else(|| "—".into())
}

pub fn status_label(status: ConnectionStatus) -> &'static str {
    match status {
        ConnectionStatus::Active => "active",
        ConnectionStatus::Degraded => "degraded",
        ConnectionStatus::NeedsReconnect => "needs reconnect",
        ConnectionStatus::Revoked => "revoked",
    }
}

/// The badge's CSS class; only ever one of these constants.
pub fn status_class(status: ConnectionStatus) -> &'static str {
    match status {
        ConnectionStatus::Active => "badge-ok",
        ConnectionStatus::Degraded => "badge-warn",
        ConnectionStatus::NeedsReconnect => "badge-bad",
        ConnectionStatus::Revoked => "badge-off",
    }
}

/// A provider's display name, or its id when it is no longer configured.
pub fn provider_name(app: &AppState, id: &str) -> String {
    app.settings
        .provider(id)
        .map(|p| p.display_name.clone())
        .unwrap_or_else(|| id.to_string())
}

/// Stored error text (which may quote a provider) made short and printable for a table
/// cell; the template escapes it.
pub fn short_error(error: Option<&str>, max_chars: usize) -> String {
    let Some(error) = error else {
        return String::new();
    };
    let clean: String = error
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.chars().count() > max_chars {
        let cut: String = clean.chars().take(max_chars).collect();
        format!("{}…", cut.trim_end())
    } else {
        clean.to_string()
    }
}

/// How an end user is named in the console: display name, else email, else external id.
pub fn person(display_name: Option<&str>, email: Option<&str>, external_id: &str) -> String {
    display_name
        .filter(|s| !s.is_empty())
        .or(email.filter(|s| !s.is_empty()))
        .unwrap_or(external_id)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_shortened_and_flattened() {
        assert_eq!(short_error(None, 10), "");
        assert_eq!(short_error(Some("a\nb\u{7}c"), 10), "a b c");
        assert_eq!(short_error(Some("abcdefghijkl"), 5), "abcde…");
    }

    #[test]
    fn times_are_utc_minutes() {
        let t = time::macros::datetime!(2026-12-02 14:05:59 +02:00);
        assert_eq!(when(Some(t)), "2026-12-02 12:05 UTC");
        assert_eq!(when(None), "—");
    }
}
