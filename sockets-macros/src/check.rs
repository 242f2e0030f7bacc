//! Whole-service checks: what no single method can know alone. A method that
//! fails one is reported and left out of generation.

use std::collections::{HashMap, HashSet};

use syn::ext::IdentExt;

use crate::errors::Errors;
use crate::model::{Kind, Method, Service};

/// Method names the generated client defines itself (`clone` too: an
/// inherent `clone` would silently shadow `Clone::clone` on the client).
pub(crate) const RESERVED: &[&str] = &[
    "new",
    "peer",
    "with_options",
    "with_timeout",
    "clone",
    "descriptor",
];

/// Reports duplicate methods, variant clashes, reserved names and generated
/// names the module already uses; drops the offending methods from `service`.
/// Returns whether the generated items can be emitted at all (not when the
/// module already declares one of their names).
pub(crate) fn service(service: &mut Service, errors: &mut Errors) -> bool {
    let client = service.names.client.to_string();
    let request = service.names.request.to_string();
    let mut names = HashSet::new();
    let mut variants: HashMap<String, String> = HashMap::new();
    let mut kept = Vec::with_capacity(service.methods.len());
    let mut dropped: Vec<Method> = Vec::new();
    for method in std::mem::take(&mut service.methods) {
        let name = method.ident.unraw().to_string();
        let variant = method.variant.to_string();
        if !names.insert(name.clone()) {
            errors.at(
                &method.ident,
                format!(
                    "method `{name}` is defined more than once; each method needs its own name"
                ),
            );
            continue;
        }
        if RESERVED.contains(&name.as_str()) {
            errors.at(
                &method.ident,
                format!("`{name}` is reserved: the generated `{client}` has its own `{name}`; rename this method"),
            );
            dropped.push(method);
            continue;
        }
        if let Some(other) = variants.get(&variant) {
            errors.at(
                &method.ident,
                format!("`{name}` and `{other}` both become the variant `{request}::{variant}`; rename one of them"),
            );
            dropped.push(method);
            continue;
        }
        variants.insert(variant, name);
        kept.push(method);
    }
    service.methods = kept;
    match &mut service.kind {
        Kind::Trait { verbatim, .. } => {
            verbatim.extend(dropped.into_iter().map(|m| m.original));
            true
        }
        Kind::Module { declared, .. } => {
            let names = &service.names;
            let generated = [
                &names.request,
                &names.response,
                &names.server,
                &names.client,
            ];
            let mut clash = false;
            for ident in declared.iter().filter(|ident| generated.contains(ident)) {
                errors.at(
                    ident,
                    format!(
                        "`#[sockets::service]` generates `{ident}` in this module; rename this item"
                    ),
                );
                clash = true;
            }
            !clash
        }
    }
}
