//! The pipeline: parse → check → generate. When the item cannot be a service
//! at all, the user's item is re-emitted as written (minus our attributes)
//! beside every error, so one mistake does not cascade into others and IDEs
//! keep working. When only some methods have mistakes, the service is still
//! generated from the others.

mod client;
mod descriptor;
mod handler;
mod server;
mod service;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Item, Path, TraitItem};

use crate::errors::{self, Errors};
use crate::{check, parse};

/// `#[sockets::service]`.
pub(crate) fn service(args: TokenStream, item: TokenStream) -> TokenStream {
    errors::collect(|errors| {
        let krate = parse::service_args(args, errors);
        let item = match syn::parse2::<Item>(item.clone()) {
            Ok(item) => item,
            Err(error) => {
                errors.push(error);
                return item;
            }
        };
        match parse::service(&item, krate.clone(), errors) {
            Some(mut model) => {
                if check::service(&mut model, errors) {
                    service::generate(&model)
                } else {
                    fallback(item, &krate)
                }
            }
            None => fallback(item, &krate),
        }
    })
}

/// `#[sockets::handler]` outside a `#[sockets::service] mod` (inside one, the
/// service macro consumes the marker).
pub(crate) fn handler(args: TokenStream, item: TokenStream) -> TokenStream {
    errors::collect(|errors: &mut Errors| handler::standalone(&args, item, errors))
}

/// The item as written, minus the attributes only our macros understand
/// (the handler markers of the runtime `krate` among them).
fn fallback(mut item: Item, krate: &Path) -> TokenStream {
    match &mut item {
        Item::Trait(t) => {
            t.attrs = parse::strip(&t.attrs, None);
            for inner in &mut t.items {
                if let TraitItem::Fn(f) = inner {
                    f.attrs = parse::strip(&f.attrs, None);
                }
            }
        }
        Item::Mod(m) => {
            m.attrs = parse::strip(&m.attrs, None);
            for inner in m.content.iter_mut().flat_map(|(_, items)| items) {
                if let Item::Fn(f) = inner {
                    f.attrs = parse::strip(&f.attrs, Some(krate));
                }
            }
        }
        _ => {}
    }
    item.into_token_stream()
}

#[cfg(test)]
mod tests {
    //! The expansion of one small service, checked in as
    //! `expansion/greeter.expanded.rs` so a reader can see what the macro
    //! writes. Regenerate it with `UPDATE_EXPANSION=1 cargo test -p sockets-macros`.

    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use quote::ToTokens;

    /// Expands the first item of `input`, which carries `#[sockets::service]`.
    fn expand_file(input: &str) -> String {
        let mut file: syn::File = syn::parse_str(input).expect("the input parses");
        let mut item = file.items.remove(0);
        if let syn::Item::Trait(t) = &mut item {
            t.attrs
                .retain(|a| !a.path().segments.iter().any(|s| s.ident == "service"));
        }
        super::service(proc_macro2::TokenStream::new(), item.into_token_stream()).to_string()
    }

    fn rustfmt(code: &str) -> String {
        let mut child = Command::new("rustfmt")
            .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("rustfmt runs (it comes with the toolchain)");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(code.as_bytes())
            .expect("rustfmt reads its input");
        let output = child.wait_with_output().expect("rustfmt finishes");
        assert!(output.status.success(), "rustfmt failed on:\n{code}");
        String::from_utf8(output.stdout).expect("rustfmt writes UTF-8")
    }

    #[test]
    fn greeter_expansion_matches_the_checked_in_snapshot() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("expansion");
        let input = std::fs::read_to_string(dir.join("greeter.rs")).expect("input exists");
        let header = "// The expansion of `greeter.rs` by `#[sockets::service]`, formatted by rustfmt.\n\
                      // Checked by a unit test in `src/expand.rs`; regenerate with\n\
                      // `UPDATE_EXPANSION=1 cargo test -p sockets-macros`.\n\n";
        let expanded = format!("{header}{}", rustfmt(&expand_file(&input)));
        let snapshot = dir.join("greeter.expanded.rs");
        if std::env::var_os("UPDATE_EXPANSION").is_some() {
            std::fs::write(&snapshot, &expanded).expect("snapshot written");
        }
        let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
        assert!(
            expected == expanded,
            "the expansion changed; review it and regenerate with UPDATE_EXPANSION=1:\n{expanded}"
        );
    }

    /// Every path that starts with `::` continues with `sockets`.
    fn check_absolute_paths(tokens: proc_macro2::TokenStream, found: &mut Vec<String>) {
        use proc_macro2::TokenTree;
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, token) in tokens.iter().enumerate() {
            match token {
                TokenTree::Group(group) => check_absolute_paths(group.stream(), found),
                TokenTree::Punct(p)
                    if p.as_char() == ':' && p.spacing() == proc_macro2::Spacing::Joint =>
                {
                    let second = matches!(tokens.get(i + 1), Some(TokenTree::Punct(q)) if q.as_char() == ':');
                    let continues_path = i > 0
                        && match &tokens[i - 1] {
                            TokenTree::Ident(_) => true,
                            TokenTree::Punct(q) => q.as_char() == '>',
                            _ => false,
                        };
                    if second && !continues_path {
                        found.push(
                            tokens
                                .get(i + 2)
                                .map(ToString::to_string)
                                .unwrap_or_default(),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    /// The crates the absolute paths of `service`'s expansion under `args` name.
    fn crates_named(args: &str, service: &str) -> Vec<String> {
        let expanded = super::service(
            args.parse().expect("arguments"),
            service.parse().expect("service"),
        );
        let mut found = Vec::new();
        check_absolute_paths(expanded, &mut found);
        found
    }

    #[test]
    fn a_crate_path_replaces_sockets_in_every_generated_path() {
        let module = "mod echo {
            #[rpc::handler]
            async fn echo(cx: &Context, text: String) -> Vec<u8> { text.into() }
            #[handler]
            #[sockets(notify)]
            async fn poke() {}
        }";
        let input = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("expansion/greeter.rs"),
        )
        .expect("input exists");
        let mut file: syn::File = syn::parse_str(&input).expect("the input parses");
        let mut greeter = file.items.remove(0);
        if let syn::Item::Trait(t) = &mut greeter {
            t.attrs
                .retain(|a| !a.path().segments.iter().any(|s| s.ident == "service"));
        }
        let greeter = greeter.into_token_stream().to_string();
        for service in [module, greeter.as_str()] {
            let found = crates_named(r#"crate = "::rpc""#, service);
            assert!(found.len() > 20, "the check sees the paths: {found:?}");
            assert!(found.iter().all(|krate| krate == "rpc"), "{found:?}");
        }
        let expanded = super::service(
            r#"crate = "crate::reexports::rpc""#.parse().expect("arguments"),
            module.parse().expect("service"),
        )
        .to_string();
        assert!(!expanded.contains("sockets ::"), "{expanded}");
        assert!(
            !expanded.contains("handler ]"),
            "the markers are consumed: {expanded}"
        );
        assert!(expanded.contains("crate :: reexports :: rpc :: __private ::"));
    }

    #[test]
    fn generated_code_names_no_absolute_path_outside_sockets() {
        let input = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("expansion/greeter.rs"),
        )
        .expect("input exists");
        let expanded: proc_macro2::TokenStream = expand_file(&input).parse().expect("tokens");
        let mut found = Vec::new();
        check_absolute_paths(expanded, &mut found);
        assert!(found.len() > 20, "the check sees the paths: {found:?}");
        assert!(found.iter().all(|krate| krate == "sockets"), "{found:?}");
    }
}
