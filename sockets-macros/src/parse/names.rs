//! The names derived from the user's identifiers: generated item names and wire names.

use quote::format_ident;
use syn::Ident;
use syn::ext::IdentExt;

use crate::model::Names;

/// `CalculatorRequest`, `CalculatorResponse`, `CalculatorServer`, `CalculatorClient`.
pub(crate) fn names(ident: &Ident) -> Names {
    let base = upper_camel_case(&ident.unraw().to_string());
    let span = ident.span();
    Names {
        request: format_ident!("{base}Request", span = span),
        response: format_ident!("{base}Response", span = span),
        server: format_ident!("{base}Server", span = span),
        client: format_ident!("{base}Client", span = span),
    }
}

/// `ChatRoom` → `chat_room`, `HTTPApi` → `http_api`, `echo` → `echo`: an
/// underscore goes before an uppercase letter that follows a lowercase letter
/// or digit, or that starts a word after an acronym; then all is lowercased.
pub(crate) fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev: Option<char> = None;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_uppercase()
            && let Some(prev) = prev
        {
            let starts_word = prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && chars.peek().is_some_and(|n| n.is_lowercase()));
            if starts_word {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
        prev = Some(c);
    }
    out
}

/// `get_user` → `GetUser`, `add` → `Add`, `Calculator` → `Calculator`.
pub(crate) fn upper_camel_case(name: &str) -> String {
    name.split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_become_snake_case() {
        for (name, wire) in [
            ("Calculator", "calculator"),
            ("ChatRoom", "chat_room"),
            ("HTTPApi", "http_api"),
            ("Api2Go", "api2_go"),
            ("echo", "echo"),
            ("echo_tools", "echo_tools"),
        ] {
            assert_eq!(snake_case(name), wire, "{name}");
        }
    }

    #[test]
    fn method_names_become_upper_camel_case() {
        for (name, variant) in [
            ("add", "Add"),
            ("get_user", "GetUser"),
            ("_x", "X"),
            ("v2_list", "V2List"),
        ] {
            assert_eq!(upper_camel_case(name), variant, "{name}");
        }
    }
}
