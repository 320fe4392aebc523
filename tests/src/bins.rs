//! The one way to find the project's binaries (`trm-node`, `trm-admin`): built once per run,
//! so a test or the benchmark never runs a stale binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>/`, with the binaries built and up to date.
///
/// - `TRM_BIN_DIR` set: that folder, used as it is (nothing is built), to test or measure a
///   given build.
/// - In a test (the executable is `target/<profile>/deps/<test>-<hash>`): builds the whole
///   workspace with all targets, so that features resolve exactly as in
///   `cargo test --workspace`: after that command only the binaries are compiled (seconds),
///   where `-p trm-node -p trm-admin` would resolve features differently and recompile some
///   twenty dependencies. `cargo test` builds a package's binaries only for that package's
///   own integration tests, hence this build.
/// - In a tool run by cargo (`cargo run -p trm-bench`; the executable is
///   `target/<profile>/<tool>`): builds `trm-node` together with the tool's package, so that
///   shared dependencies keep the tool's features and nothing is rebuilt back and forth; then
///   `trm-admin` on its own (as `cargo build -p trm-admin` would: built with the tool, its
///   features would change the tool's dependencies), for the benchmark's audit run.
/// - Run outside cargo: nothing is built; the binaries must already sit beside the executable.
///
/// The variables cargo sets for the running process are removed from the build command first:
/// build scripts watch some of them (ring watches CARGO_MANIFEST_DIR), and leaving them would
/// rebuild the dependencies too.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("TRM_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let exe = std::env::current_exe().expect("path of the running executable");
        let parent = exe.parent().expect("executable in a folder");
        let in_test = parent.ends_with("deps");
        let dir = if in_test {
            parent
                .parent()
                .expect("test executable under target/<profile>/deps")
        } else {
            parent
        }
        .to_path_buf();
        let Some(cargo) = std::env::var_os("CARGO") else {
            return dir;
        };
        let profile = match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(other) => other.to_string(),
        };
        let build = |packages: &[&str]| {
            let mut cmd = Command::new(&cargo);
            cmd.args(["build", "--quiet", "--locked"]);
            if in_test {
                cmd.args(["--workspace", "--all-targets"]);
            } else {
                packages.iter().for_each(|p| {
                    cmd.args(["-p", p]);
                });
            }
            cmd.args(["--profile", &profile])
                .arg("--target-dir")
                .arg(dir.parent().expect("target folder"))
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            for (k, _) in std::env::vars_os() {
                let k = k.to_string_lossy();
                if set_by_cargo(&k) {
                    cmd.env_remove(k.as_ref());
                }
            }
            let status = cmd.status().expect("run cargo build");
            assert!(
                status.success(),
                "cargo build of the binaries (trm-node, trm-admin) failed"
            );
        };
        let tool = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "trm-node".into());
        build(&["trm-node", &tool]);
        if !in_test {
            build(&["trm-admin"]);
        }
        dir
    })
}

/// Variables cargo sets for the process it runs (see [`bin_dir`]).
fn set_by_cargo(k: &str) -> bool {
    k.starts_with("CARGO_PKG_")
        || k.starts_with("CARGO_BIN_")
        || k.starts_with("CARGO_MANIFEST_")
        || matches!(
            k,
            "CARGO_CRATE_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// The path of the built binary `name` (`trm-node` or `trm-admin`); panics if it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// What one run of a binary printed.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built binary `name` with `args` (no TRM_CRED or RUST_BACKTRACE inherited, stdin
/// empty), killed after 30 s; its output goes through files, so a long one never blocks it.
pub fn run(name: &str, args: &[impl AsRef<std::ffi::OsStr> + std::fmt::Debug]) -> Ran {
    use std::io::{Read, Seek};
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let mut child = Command::new(bin(name))
        .args(args)
        .env_remove("TRM_CRED")
        .env_remove("RUST_BACKTRACE")
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} {args:?} did not finish within 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let read = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    Ran {
        code: status.code(),
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

/// `trm-admin --cred CRED ARGS` on a blocking thread (the nodes under test answer on the
/// runtime's workers): what it printed and its exit code.
pub async fn admin_as(cred: &Path, args: &[&str]) -> Ran {
    let mut all: Vec<String> = vec!["--cred".into(), cred.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || run("trm-admin", &all))
        .await
        .expect("trm-admin thread")
}

/// [`admin_as`], which must exit 0: its stdout.
pub async fn admin_ok(cred: &Path, args: &[&str]) -> String {
    let ran = admin_as(cred, args).await;
    assert_eq!(
        ran.code,
        Some(0),
        "trm-admin {args:?} failed: {}",
        ran.stderr
    );
    ran.stdout
}

/// Registers officer `name` with `role` through `trm-admin officer add --out FILE`, as the
/// operator whose credential file is `op`; the officer's credential is written to `file`.
pub async fn enrol(op: &Path, name: &str, role: &str, file: &Path) {
    let out = file.display().to_string();
    admin_ok(op, &["officer", "add", name, "--role", role, "--out", &out]).await;
}
