//! Strict parsing of the callback's query string: every value percent-decoded to valid
//! UTF-8, no duplicates, no control characters, bounded sizes. Anything else is a 400.

use std::collections::HashMap;

const MAX_QUERY: usize = 8 * 1024;
const MAX_VALUE: usize = 4 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("the request is too large")]
    TooLarge,
    #[error("a parameter appears more than once")]
    Duplicate,
    #[error("a parameter is not valid text")]
    Encoding,
    #[error("a parameter contains control characters")]
    Control,
}

#[derive(Default)]
pub struct CallbackParams {
    values: HashMap<String, String>,
}

/// Values carry codes and states: only the parameter names are printed.
impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.values.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("CallbackParams")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl CallbackParams {
    pub fn parse(raw: Option<&str>) -> Result<Self, ParamError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY {
            return Err(ParamError::TooLarge);
        }
        let mut values = HashMap::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k)?;
            let value = decode(v)?;
            if value.len() > MAX_VALUE {
                return Err(ParamError::TooLarge);
            }
            if values.insert(key, value).is_some() {
                return Err(ParamError::Duplicate);
            }
        }
        Ok(Self { values })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

fn decode(s: &str) -> Result<String, ParamError> {
    let plus_as_space = s.replace('+', " ");
    let text = percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map_err(|_| ParamError::Encoding)?;
    if text.chars().any(char::is_control) {
        return Err(ParamError::Control);
    }
    Ok(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let p = CallbackParams::parse(Some("code=9%3Aabc&state=s+t")).expect("valid");
        assert_eq!(p.get("code"), Some("9:abc"));
        assert_eq!(p.get("state"), Some("s t"));
        assert_eq!(
            CallbackParams::parse(Some("a=1&a=2")).err(),
            Some(ParamError::Duplicate)
        );
        assert_eq!(
            CallbackParams::parse(Some("a=%FF")).err(),
            Some(ParamError::Encoding)
        );
        assert_eq!(
            CallbackParams::parse(Some("a=%00")).err(),
            Some(ParamError::Control)
        );
        assert_eq!(
            CallbackParams::parse(Some("a=%0D%0A")).err(),
            Some(ParamError::Control)
        );
        let big = format!("a={}", "x".repeat(5000));
        assert_eq!(
            CallbackParams::parse(Some(&big)).err(),
            Some(ParamError::TooLarge)
        );
    }
}
