//! `[branding]`: the host product's name, accent colour, logo and support address on
//! the end-user pages. Checked once at start-up; the logo is read into memory then.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use url::Url;

/// The raw `[branding]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrandingSettings {
    pub product_name: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub accent_color: Option<String>,
    /// A PNG, JPEG, GIF, WebP or SVG file (at most 512 KiB), served from our own origin.
    pub logo_path: Option<PathBuf>,
    pub support_url: Option<Url>,
}

/// A logo held in memory.
#[derive(Clone)]
pub struct Logo {
    pub bytes: Arc<[u8]>,
    pub content_type: &'static str,
}

impl std::fmt::Debug for Logo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logo")
            .field("bytes", &self.bytes.len())
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// Checked branding.
#[derive(Debug, Clone, Default)]
pub struct Branding {
    pub product_name: Option<String>,
    /// Normalised to `#rrggbb`.
    pub accent_color: Option<String>,
    pub logo: Option<Logo>,
    pub support_url: Option<Url>,
}

const MAX_LOGO_BYTES: u64 = 512 * 1024;

impl Branding {
    /// Checks the table; an error names the setting and the problem.
    pub fn from_settings(raw: &BrandingSettings) -> Result<Self, (String, String)> {
        let bad = |setting: &str, problem: String| (format!("branding.{setting}"), problem);
        let product_name = match raw.product_name.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) if name.chars().count() > 80 || name.chars().any(char::is_control) => {
                return Err(bad(
                    "product_name",
                    "must be at most 80 characters without control characters".into(),
                ));
            }
            Some(name) => Some(name.to_string()),
        };
        let accent_color = raw
            .accent_color
            .as_deref()
            .map(|c| {
                normalise_colour(c).ok_or_else(|| {
                    bad(
                        "accent_color",
                        format!("{c:?} is not a colour like #4338ca"),
                    )
                })
            })
            .transpose()?;
        let logo = raw
            .logo_path
            .as_deref()
            .map(|path| read_logo(path).map_err(|problem| bad("logo_path", problem)))
            .transpose()?;
        if let Some(url) = &raw.support_url
            && !matches!(url.scheme(), "http" | "https" | "mailto")
        {
            return Err(bad(
                "support_url",
                "must be an http, https or mailto URL".into(),
            ));
        }
        Ok(Self {
            product_name,
            accent_color,
            logo,
            support_url: raw.support_url.clone(),
        })
    }

    /// The name pages show: the product's, else Keyhaven's.
    pub fn name(&self) -> &str {
        self.product_name.as_deref().unwrap_or("Keyhaven")
    }

    /// Whether the pages carry a product's name (Keyhaven then moves to the footer).
    pub fn is_branded(&self) -> bool {
        self.product_name.is_some() || self.logo.is_some()
    }

    pub fn support_href(&self) -> Option<&str> {
        self.support_url.as_ref().map(Url::as_str)
    }

    /// `/branding.css`: the accent colour, and a readable text colour on it.
    pub fn stylesheet(&self) -> String {
        match &self.accent_color {
            None => "/* No branding colours configured. */\n".into(),
            Some(accent) => format!(
                ":root {{ --accent: {accent}; --on-accent: {}; }}\n",
                on_colour(accent)
            ),
        }
    }
}

/// `#abc` or `#aabbcc` (any case) as `#aabbcc`.
fn normalise_colour(raw: &str) -> Option<String> {
    let hex = raw.trim().strip_prefix('#')?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let full: String = match hex.len() {
        3 => hex.chars().flat_map(|c| [c, c]).collect(),
        6 => hex.to_string(),
        _ => return None,
    };
    Some(format!("#{}", full.to_ascii_lowercase()))
}

/// White or near-black, whichever reads better on `#rrggbb` (WCAG relative luminance).
fn on_colour(accent: &str) -> &'static str {
    let channel = |i: usize| {
        let v =
            f64::from(u8::from_str_radix(accent.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0))
                / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    // Contrast with white (1.05 / (L + 0.05)) against contrast with black ((L + 0.05) / 0.05).
    if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05 {
        "#ffffff"
    } else {
        "#111827"
    }
}

fn read_logo(path: &std::path::Path) -> Result<Logo, String> {
    let content_type = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        _ => {
            return Err(format!(
                "{} must be a .png, .jpg, .gif, .webp or .svg file",
                path.display()
            ));
        }
    };
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_LOGO_BYTES {
        return Err(format!("{} is larger than 512 KiB", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Logo {
        bytes: bytes.into(),
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours() {
        assert_eq!(normalise_colour("#ABC").as_deref(), Some("#aabbcc"));
        assert_eq!(normalise_colour("#0f766e").as_deref(), Some("#0f766e"));
        for bad in ["0f766e", "#0f766", "#ggg", "red", "#0f766e; x: y", ""] {
            assert_eq!(normalise_colour(bad), None, "{bad}");
        }
        assert_eq!(on_colour("#000000"), "#ffffff");
        assert_eq!(on_colour("#ffffff"), "#111827");
        assert_eq!(on_colour("#facc15"), "#111827");
        assert_eq!(on_colour("#4338ca"), "#ffffff");
    }
}
