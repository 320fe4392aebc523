//! The shape of the code, checked from its sources (docs/ARCHITECTURE.md explains each rule):
//!
//! - the node's subsystems (the folders of `node/src`) import only subsystems below them in
//!   [`LAYERS`], so there is no import cycle between them, and a new folder must be placed;
//! - `trm-proto` is pure: no I/O, no runtime, no storage;
//! - sled (the crate: `sled::` paths) is named only inside the node's store;
//! - no production function (node, admin client and CLI, proto) is longer than
//!   [`MAX_FN_LINES`] lines unless a `// Long:` comment right above it says why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest production function, in lines, without a written reason.
const MAX_FN_LINES: usize = 80;

/// The node's subsystems, bottom first. A subsystem may import only those before it.
const LAYERS: &[&str] = &[
    "base",
    "store",
    "identity",
    "net",
    "state",
    "federation",
    "audit",
    "referral",
    "exchange",
    "ops",
    "admin",
    "node",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("directory entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The source without comments (line comments and doc comments), so that prose naming a
/// module or a crate does not count as an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The subsystem a file of `node/src` belongs to: its folder, or the file's own name for
/// the files at the top (`node.rs`); `None` for `lib.rs` and `main.rs`, which only declare
/// and dispatch.
fn subsystem(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_string_lossy().to_string();
    if parts.next().is_some() {
        return Some(first);
    }
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Every `crate::<name>` a file's code names (imports and full paths alike).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `trm_crate::`
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// (from, to) -> files where `from` names `to`.
fn subsystem_edges() -> BTreeMap<(String, String), BTreeSet<String>> {
    let src = repo().join("node/src");
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let Some(from) = subsystem(&src, &file) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).expect("read source"));
        for to in crate_refs(&code) {
            if to != from {
                let rel = file.strip_prefix(&src).expect("under src");
                edges
                    .entry((from.clone(), to))
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    edges
}

#[test]
fn every_node_folder_is_a_placed_subsystem() {
    let src = repo().join("node/src");
    let mut found = BTreeSet::new();
    for file in rust_files(&src) {
        if let Some(s) = subsystem(&src, &file) {
            found.insert(s);
        }
    }
    let unplaced: Vec<_> = found
        .iter()
        .filter(|s| !LAYERS.contains(&s.as_str()))
        .collect();
    assert!(
        unplaced.is_empty(),
        "node/src has subsystems not placed in LAYERS (tests/tests/architecture.rs and \
         docs/ARCHITECTURE.md): {unplaced:?}"
    );
    let missing: Vec<_> = LAYERS.iter().filter(|l| !found.contains(**l)).collect();
    assert!(
        missing.is_empty(),
        "LAYERS names subsystems that no longer exist: {missing:?}"
    );
}

/// The edges of `edges` that do not point down [`LAYERS`].
fn upward(edges: &BTreeMap<(String, String), BTreeSet<String>>) -> Vec<String> {
    let rank = |s: &str| LAYERS.iter().position(|l| *l == s);
    let mut out = vec![];
    for ((from, to), files) in edges {
        match (rank(from), rank(to)) {
            (Some(a), Some(b)) if b < a => {}
            _ => out.push(format!("{from} -> {to} (in {files:?})")),
        }
    }
    out
}

#[test]
fn subsystems_import_only_those_below_them() {
    let up = upward(&subsystem_edges());
    assert!(
        up.is_empty(),
        "imports that point up or sideways (a subsystem may use only those below it, in \
         the order of LAYERS):\n  {}",
        up.join("\n  ")
    );
}

/// The checks catch what they are for: prose is not an import, and a planted cycle (store
/// naming the node's context) is reported while the downward edge is not.
#[test]
fn the_layer_check_sees_a_planted_cycle() {
    let code = "use crate::state::ctx::Ctx;\nfn f() { crate::node::start(); } // crate::ops\n";
    assert_eq!(
        crate_refs(&code_of(code)),
        ["node", "state"].iter().map(|s| s.to_string()).collect()
    );
    assert!(crate_refs("trm_crate::x").is_empty());
    let src = Path::new("/r/node/src");
    assert_eq!(
        subsystem(src, &src.join("store/vault.rs")).as_deref(),
        Some("store")
    );
    assert_eq!(
        subsystem(src, &src.join("node.rs")).as_deref(),
        Some("node")
    );
    assert_eq!(subsystem(src, &src.join("main.rs")), None);
    let mut planted = BTreeMap::new();
    let file = |f: &str| [f.to_string()].into_iter().collect::<BTreeSet<_>>();
    planted.insert(("state".into(), "store".into()), file("state/ctx.rs"));
    planted.insert(("store".into(), "state".into()), file("store/mod.rs"));
    let up = upward(&planted);
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(up[0].starts_with("store -> state"), "{up:?}");
}

#[test]
fn proto_is_pure() {
    let proto = repo().join("proto");
    let manifest = std::fs::read_to_string(proto.join("Cargo.toml")).expect("proto manifest");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|d| d.split("\n[").next())
        .unwrap_or("");
    for banned in ["tokio", "quinn", "sled", "rustls", "tracing"] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(banned)),
            "trm-proto depends on {banned}: it must stay pure (no I/O, no runtime)"
        );
    }
    for file in rust_files(&proto.join("src")) {
        let code = code_of(&std::fs::read_to_string(&file).expect("read"));
        for banned in ["std::fs", "std::net", "tokio::", "std::process", "std::env"] {
            assert!(
                !code.contains(banned),
                "{} uses {banned}: trm-proto does no I/O",
                file.display()
            );
        }
    }
}

#[test]
fn sled_is_named_only_in_the_store() {
    let src = repo().join("node/src");
    let store = src.join("store");
    let mut outside = vec![];
    for file in rust_files(&src) {
        let code = code_of(&std::fs::read_to_string(&file).expect("read"));
        if !file.starts_with(&store) && code.contains("sled::") {
            outside.push(file.display().to_string());
        }
    }
    assert!(
        outside.is_empty(),
        "sled named outside node/src/store: {outside:?}"
    );
}

/// (file, function, lines) of production functions longer than [`MAX_FN_LINES`] without a
/// `// Long:` reason in the lines right above them. A function ends at the first line that is
/// its indentation followed by `}` (rustfmt's layout); `#[cfg(test)]` modules are skipped.
fn long_functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.starts_with("#[cfg(test)]"))
        .unwrap_or(lines.len());
    let mut out = vec![];
    for i in 0..end {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let head = trimmed
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub ")
            .trim_start_matches("async ")
            .trim_start_matches("const ");
        let Some(sig) = head.strip_prefix("fn ") else {
            continue;
        };
        if trimmed.ends_with(';') {
            continue; // a declaration without a body (in a trait)
        }
        let close = format!("{indent}}}");
        let Some(len) = lines[i + 1..end].iter().position(|l| *l == close) else {
            continue;
        };
        let len = len + 2;
        let reasoned = lines[i.saturating_sub(6)..i]
            .iter()
            .any(|l| l.trim_start().starts_with("// Long:"));
        if len > MAX_FN_LINES && !reasoned {
            let name: String = sig
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.push((name, len));
        }
    }
    out
}

#[test]
fn long_functions_say_why() {
    let mut long = vec![];
    for dir in ["node/src", "admin-cli/src", "proto/src", "admin-api/src"] {
        let dir = repo().join(dir);
        if !dir.exists() {
            continue;
        }
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).expect("read");
            for (name, len) in long_functions(&text) {
                let rel = file.strip_prefix(repo()).expect("in repo");
                long.push(format!("{} {name}: {len} lines", rel.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: split them, or write `// Long: <why>` above \
         them:\n  {}",
        long.join("\n  ")
    );
}

#[test]
fn the_length_check_counts_lines() {
    let body = "    x();\n".repeat(MAX_FN_LINES);
    let long = format!("pub fn big() {{\n{body}}}\n");
    assert_eq!(
        long_functions(&long),
        vec![("big".to_string(), MAX_FN_LINES + 2)]
    );
    let reasoned = format!("// Long: a table.\n{long}");
    assert!(long_functions(&reasoned).is_empty());
    let short = "fn small() {\n    x();\n}\n";
    assert!(long_functions(short).is_empty());
    let declared = format!("trait T {{\n    fn f(self) -> u8;\n{body}}}\n");
    assert!(
        long_functions(&declared).is_empty(),
        "a declaration has no body"
    );
}
