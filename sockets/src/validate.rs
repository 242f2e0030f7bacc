//! Argument validation: `#[sockets(validate)]` on a method runs
//! [`garde::Validate`](https://docs.rs/garde) on each decoded argument
//! before its handler (cargo feature `validate`).
//!
//! Every field error of every argument is collected, and the caller gets one
//! `BAD_REQUEST` whose message is a JSON object listing them (the form is in
//! docs/PROTOCOL.md §10.2):
//!
//! ```json
//! {"invalid":[{"path":"user.email","message":"not a valid email address"}]}
//! ```
//!
//! `path` starts with the parameter's name, then garde's path inside it
//! (`user.tags[2]`). [`Error::invalid_arguments`](crate::Error::invalid_arguments)
//! reads it back on the calling side, whatever the caller's features.
//!
//! garde rather than `validator`: its report is a flat list of paths and
//! messages, which is exactly what travels; rules that need outside data
//! take a typed context instead of thread-locals; and it adds no regex
//! unless a rule asks for one.

use serde::{Deserialize, Serialize};

/// One field of an argument that did not pass its method's validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidArgument {
    /// Where: the parameter's name, then the path inside it
    /// (`user.email`, `items[0].name`).
    pub path: String,
    /// What is wrong, as the rule says it.
    pub message: String,
}

/// The `BAD_REQUEST` message that carries the field errors.
#[derive(Serialize, Deserialize)]
struct Invalid<'a> {
    #[serde(borrow)]
    invalid: std::borrow::Cow<'a, [InvalidArgument]>,
}

/// The message of a `BAD_REQUEST` listing `invalid`.
pub(crate) fn message(invalid: &[InvalidArgument]) -> String {
    let invalid = Invalid {
        invalid: std::borrow::Cow::Borrowed(invalid),
    };
    // Strings and a list of structs of strings: serializing cannot fail.
    serde_json::to_string(&invalid).unwrap_or_else(|_| String::from(r#"{"invalid":[]}"#))
}

/// The field errors in a `BAD_REQUEST` message, if it lists them.
pub(crate) fn parse(message: &str) -> Option<Vec<InvalidArgument>> {
    let invalid: Invalid<'_> = serde_json::from_str(message).ok()?;
    Some(invalid.invalid.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_survive_the_message() {
        let invalid = vec![
            InvalidArgument {
                path: "user.email".into(),
                message: "not a valid email address".into(),
            },
            InvalidArgument {
                path: "tags[2]".into(),
                message: "length is lower than 1".into(),
            },
        ];
        let message = message(&invalid);
        assert_eq!(
            message,
            r#"{"invalid":[{"path":"user.email","message":"not a valid email address"},{"path":"tags[2]","message":"length is lower than 1"}]}"#
        );
        assert_eq!(parse(&message), Some(invalid));
        assert_eq!(parse("arguments did not decode"), None);
        assert_eq!(parse(r#"{"other":1}"#), None);
    }
}
