//! The build says what it needs: the workspace's `rust-version` is what the locked packages
//! really need, and the README, OPERATIONS.md and the container file say the same; the
//! container file copies every workspace member's manifest before `cargo fetch --locked`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn workspace() -> toml::Value {
    toml::from_str(&read("Cargo.toml")).expect("Cargo.toml parses")
}

/// "1.88" or "1.88.0" as (1, 88).
fn minor(v: &str) -> (u64, u64) {
    let mut it = v
        .split('.')
        .map(|p| p.parse::<u64>().expect("numeric version"));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

#[test]
fn rust_version_is_what_the_locked_packages_need_and_the_docs_agree() {
    let ws = workspace();
    let declared = ws["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("workspace rust-version")
        .to_string();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let (need, who) = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| {
            let v = p["rust_version"].as_str()?;
            Some((minor(v), format!("{} {}", p["name"], p["version"])))
        })
        .max()
        .expect("some package declares a rust-version");
    assert_eq!(
        minor(&declared),
        need,
        "workspace rust-version {declared} but {who} needs {}.{}",
        need.0,
        need.1
    );
    let v = format!("{}.{}", need.0, need.1);
    assert!(
        read("README.md").contains(&format!("({v} or newer)")),
        "README names Rust {v}"
    );
    assert!(
        read("docs/OPERATIONS.md").contains(&format!("toolchain {v} or newer")),
        "OPERATIONS.md names Rust {v}"
    );
    assert!(
        read("deploy/Containerfile").contains(&format!("library/rust:{v}-")),
        "the container builds with Rust {v}"
    );
}

#[test]
fn the_container_file_copies_every_member_manifest() {
    let ws = workspace();
    let file = read("deploy/Containerfile");
    for m in ws["workspace"]["members"].as_array().expect("members") {
        let m = m.as_str().unwrap();
        assert!(
            file.contains(&format!("COPY {m}/Cargo.toml {m}/Cargo.toml")),
            "deploy/Containerfile does not copy {m}/Cargo.toml before `cargo fetch --locked`"
        );
    }
}

/// `trm-admin` links the admin API's client crate, not the node: no store, no store cipher,
/// no TOML parser, no log subscriber (issue 11).
#[test]
fn the_command_line_does_not_link_the_node() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "trm-admin",
            "-e",
            "normal",
            "--locked",
            "--offline",
        ])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(root())
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"trm-admin-api"),
        "trm-admin uses trm-admin-api"
    );
    for banned in [
        "sled",
        "chacha20poly1305",
        "toml",
        "trm-node",
        "tracing-subscriber",
    ] {
        assert!(
            !names.contains(&banned),
            "trm-admin depends on {banned} (cargo tree -p trm-admin -e normal)"
        );
    }
}
