//! What the saved tokenizers share: JSON whose `kind` tag names the format
//! and its version, followed by the format's own fields.

use serde::de::DeserializeOwned;

use crate::DataError;

/// Parses `json` as the JSON `T` of `what` (e.g. "a BPE tokenizer") and
/// checks that its tag, read by `kind`, is `expected`.
/// [`DataError::Tokenizer`] when it is not that JSON or has another tag.
pub(crate) fn parse_tagged<T: DeserializeOwned>(
    json: &str,
    what: &str,
    expected: &str,
    kind: impl Fn(&T) -> &str,
) -> Result<T, DataError> {
    let bad = |message: String| DataError::Tokenizer { message };
    let parsed: T =
        serde_json::from_str(json).map_err(|e| bad(format!("not the JSON of {what} ({e})")))?;
    let found = kind(&parsed);
    if found != expected {
        return Err(bad(format!("kind is `{found}`, expected `{expected}`")));
    }
    Ok(parsed)
}
