//! The runtime crate's modules depend one way: each may use its own layer
//! and the layers below it, never one above, and there is no cycle. The
//! order is the one the README's "Layout" section states; this test reads it
//! from there, so the documentation and the check cannot drift apart.
//!
//! A module is a top-level name under `sockets/src` (`connection.rs` and
//! `connection/*.rs` are `connection`; `lib.rs` is the crate root and is left
//! out). A use is a `crate::NAME` path (or a `crate::{…}` group, or
//! `super::super::NAME` from a file two levels down) naming another top-level
//! module, outside comments and `#[cfg(test)]` items.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module → the modules it uses → the files that use them.
type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The layers, bottom-up, as the README states them.
fn order() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let marker = "Layers, bottom-up:";
    let at = readme
        .find(marker)
        .expect("the README's layout states the layers");
    let line = readme[at + marker.len()..]
        .lines()
        .find(|line| line.contains('`'))
        .expect("the layers follow, in backticks");
    let order = line.split('`').nth(1).expect("a backticked order");
    order
        .split(';')
        .map(|layer| layer.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Drops `#[cfg(test)]` items and comments.
fn strip(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let brace = after.find('{');
        let semi = after.find(';');
        match (brace, semi) {
            (Some(brace), semi) if semi.is_none_or(|semi| brace < semi) => {
                let mut depth = 0usize;
                let mut end = after.len();
                for (i, c) in after[brace..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = brace + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (_, Some(semi)) => rest = &after[semi + 1..],
            _ => rest = "",
        }
    }
    out.push_str(rest);
    // Comments: line comments (doc comments included) and block comments.
    let mut clean = String::new();
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    clean.push('\n');
                    break;
                }
            }
        } else if c == '/' && chars.peek() == Some(&'*') {
            chars.next();
            let mut last = ' ';
            for c in chars.by_ref() {
                if last == '*' && c == '/' {
                    break;
                }
                last = c;
            }
        } else {
            clean.push(c);
        }
    }
    clean
}

fn words_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.match_indices(prefix)
        .filter(|(at, _)| {
            // `crate::` itself, not `foo_crate::`.
            text[..*at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .filter_map(|(at, _)| {
            let rest = &text[at + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (end > 0).then(|| &rest[..end])
        })
        .collect()
}

/// Module → the modules it uses, with the files that use them.
fn graph(src: &Path) -> (BTreeSet<String>, Edges) {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read sockets/src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let top = |file: &Path| -> String {
        let relative = file.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a component");
        Path::new(first.as_os_str())
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| top(f))
        .filter(|m| m != "lib")
        .collect();
    let mut edges: Edges = BTreeMap::new();
    for file in &files {
        let module = top(file);
        if module == "lib" {
            continue;
        }
        let text = strip(&std::fs::read_to_string(file).expect("a source file"));
        let mut used: BTreeSet<&str> = words_after(&text, "crate::").into_iter().collect();
        for (at, _) in text.match_indices("crate::{") {
            let group = &text[at + "crate::{".len()..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        }
        if file
            .strip_prefix(src)
            .expect("under src")
            .components()
            .count()
            >= 2
        {
            used.extend(words_after(&text, "super::super::"));
        }
        let relative = file
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .into_owned();
        for name in used {
            if modules.contains(name) && name != module {
                edges
                    .entry(module.clone())
                    .or_default()
                    .entry(name.to_owned())
                    .or_default()
                    .insert(relative.clone());
            }
        }
    }
    (modules, edges)
}

#[test]
fn the_runtime_modules_depend_one_way_in_the_readme_order() {
    let src = workspace().join("sockets").join("src");
    let (modules, edges) = graph(&src);
    let layers = order();
    let layer_of: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.iter().map(move |m| (m.as_str(), i)))
        .collect();
    let mut problems = Vec::new();
    for module in &modules {
        if !layer_of.contains_key(module.as_str()) {
            problems.push(format!("`{module}` is in no layer of the README's order"));
        }
    }
    for named in layer_of.keys() {
        if !modules.contains(*named) {
            problems.push(format!(
                "the README's order names `{named}`, which does not exist"
            ));
        }
    }
    for (from, uses) in &edges {
        for (to, files) in uses {
            if let (Some(a), Some(b)) = (layer_of.get(from.as_str()), layer_of.get(to.as_str()))
                && b > a
            {
                problems.push(format!("upward: {from} -> {to} ({files:?})"));
            }
        }
    }
    problems.extend(
        cycles(&modules, &edges)
            .into_iter()
            .map(|cycle| format!("cycle: {}", cycle.join(" <-> "))),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The groups of modules that reach each other (Tarjan's strongly connected
/// components of more than one module).
fn cycles(modules: &BTreeSet<String>, edges: &Edges) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a Edges,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, v: &'a str) {
        let n = walk.index.len();
        walk.index.insert(v, n);
        walk.low.insert(v, n);
        walk.stack.push(v);
        walk.on_stack.insert(v);
        if let Some(uses) = walk.edges.get(v) {
            for w in uses.keys() {
                let w = w.as_str();
                if !walk.index.contains_key(w) {
                    visit(walk, w);
                    let low = walk.low[v].min(walk.low[w]);
                    walk.low.insert(v, low);
                } else if walk.on_stack.contains(w) {
                    let low = walk.low[v].min(walk.index[w]);
                    walk.low.insert(v, low);
                }
            }
        }
        if walk.low[v] == walk.index[v] {
            let mut component = Vec::new();
            while let Some(w) = walk.stack.pop() {
                walk.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                walk.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for module in modules {
        if !walk.index.contains_key(module.as_str()) {
            visit(&mut walk, module);
        }
    }
    walk.found
}

#[test]
fn a_cycle_is_found() {
    let modules: BTreeSet<String> = ["a", "b", "c"].map(str::to_owned).into();
    let mut edges: Edges = BTreeMap::new();
    for (from, to) in [("a", "b"), ("b", "a"), ("b", "c")] {
        edges
            .entry(from.into())
            .or_default()
            .insert(to.into(), BTreeSet::new());
    }
    assert_eq!(
        cycles(&modules, &edges),
        vec![vec!["a".to_owned(), "b".to_owned()]]
    );
}

#[test]
fn the_check_sees_uses_and_ignores_tests_and_comments() {
    let text = strip(
        "use crate::a::X;\n// use crate::b;\n/* crate::c */\n#[cfg(test)]\nmod tests { use crate::d; }\n\
         fn f() { crate::e::g(); my_crate::h(); }\nuse crate::{f::Y, g};\n",
    );
    let mut found: BTreeSet<&str> = words_after(&text, "crate::").into_iter().collect();
    assert!(found.remove("a") && found.remove("e"));
    assert!(!found.contains("b") && !found.contains("c") && !found.contains("d"));
    assert!(!found.contains("h"), "{found:?}");
    assert!(text.contains("crate::{f::Y, g}"));
}
