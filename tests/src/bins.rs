//! The project's binaries, built once per test run, for tests that run them as a person would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>/`, with `trm-node` and `trm-admin` built and up to date.
///
/// The test executable is `target/<profile>/deps/cli-<hash>`; the binaries sit two levels up.
/// `cargo test` builds a package's binaries only for that package's own integration tests,
/// so they are built here once per test run. The build selects the whole workspace with all
/// targets so that features resolve exactly as in `cargo test --workspace`: after that command
/// only the two binaries are compiled (seconds), where `-p trm-node -p trm-admin` would resolve
/// features differently and recompile some twenty dependencies. The variables cargo sets for
/// this test process are removed first: build scripts watch some of them (ring watches
/// CARGO_MANIFEST_DIR), and leaving them would rebuild the dependencies too.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable under target/<profile>/deps")
            .to_path_buf();
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(other) => other.to_string(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--all-targets"])
            .args(["--profile", &profile])
            .arg("--target-dir")
            .arg(dir.parent().expect("target folder"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let set_by_cargo = k.starts_with("CARGO_PKG_")
                || k.starts_with("CARGO_BIN_")
                || k.starts_with("CARGO_MANIFEST_")
                || matches!(
                    k.as_ref(),
                    "CARGO_CRATE_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                );
            if set_by_cargo {
                cmd.env_remove(k.as_ref());
            }
        }
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the workspace (for trm-node and trm-admin) failed"
        );
        dir
    })
}
