//! The binaries as an operator meets them: `trm-node` and `trm-admin` run as child processes
//! on loopback, in temporary folders, with ports chosen by the OS.
//!
//! Every failure case checks the contract of issue 2 item 10: a non-zero exit with the
//! documented code, a one-line error naming the problem (a refused case file: one line per
//! field error, each naming the file), no panic or backtrace text, and nothing changed.

use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest any one command may run before the test calls it hung.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Finding and running the binaries
// ---------------------------------------------------------------------------------------------

use trm_tests::bins::bin;

/// What a finished command printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn json(&self) -> Value {
        assert!(self.status.success(), "command failed: {self:?}");
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Success; returns stdout.
    fn ok(&self) -> &str {
        assert!(self.status.success(), "command failed: {self:?}");
        &self.stdout
    }
}

/// Runs `cmd` to completion (killed and failed after [`COMMAND_LIMIT`]).
fn run(mut cmd: Command) -> Output {
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG");
    let mut child = cmd.spawn().expect("spawn");
    let status = wait_or_kill(&mut child, COMMAND_LIMIT)
        .unwrap_or_else(|| panic!("{cmd:?} did not finish within {COMMAND_LIMIT:?}"));
    let read = |f: &mut std::fs::File| {
        let mut s = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

/// Waits for `child` up to `limit`; kills it and returns None when it is still running.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn trm_node(args: &[&str]) -> Output {
    let mut c = Command::new(bin("trm-node"));
    c.args(args);
    run(c)
}

/// `trm-admin ARGS` with `--cred cred` (or none), never inheriting TRM_CRED.
fn admin(cred: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(bin("trm-admin"));
    c.env_remove("TRM_CRED");
    if let Some(cred) = cred {
        c.arg("--cred").arg(cred);
    }
    c.args(args);
    run(c)
}

/// Asserts the bad-input contract: exit `code`, exactly `lines` lines on stderr, each
/// starting with the program's name, nothing that looks like a panic or a backtrace, and
/// every `needles` somewhere in the message.
fn assert_refused(out: &Output, code: i32, lines: usize, needles: &[&str]) {
    assert_eq!(out.code(), Some(code), "exit code; {out:?}");
    let got: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(got.len(), lines, "stderr lines: {:?}", out.stderr);
    for l in &got {
        assert!(
            l.starts_with("trm-admin: ") || l.starts_with("trm-node: "),
            "line without the program's name: {l:?}"
        );
    }
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "stack backtrace",
        "Error {",
        "Os {",
    ] {
        assert!(!out.stderr.contains(bad), "{bad:?} in {:?}", out.stderr);
    }
    for n in needles {
        assert!(out.stderr.contains(n), "{n:?} not in {:?}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes as child processes
// ---------------------------------------------------------------------------------------------

// Ports for child processes: see trm_tests::proc::free_addr (below the ephemeral range).
use trm_tests::proc::free_addr;

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A node folder made by `trm-node init`, and its process while it runs.
struct Node {
    country: String,
    dir: PathBuf,
    log: PathBuf,
    cred: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn init(root: &Path, country: &str) -> Self {
        let dir = root.join(country);
        let out = trm_node(&[
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--country",
            country,
            "--name",
            &format!("{country} synthetic test unit"),
            "--listen",
            &free_addr().to_string(),
            "--admin-listen",
            &free_addr().to_string(),
        ]);
        out.ok();
        Node {
            country: country.into(),
            log: root.join(format!("{country}.log")),
            cred: dir.join("operator.cred"),
            dir,
            child: None,
        }
    }

    fn card(&self) -> PathBuf {
        self.dir.join("card.trm")
    }

    /// `trm-node run`, waiting for "node ready" in its log.
    fn start(&mut self) {
        let log = std::fs::File::create(&self.log).unwrap();
        let mut child = Command::new(bin("trm-node"))
            .args(["run", "--dir"])
            .arg(&self.dir)
            .env("RUST_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn trm-node run");
        let deadline = Instant::now() + COMMAND_LIMIT;
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains("node ready") {
                break;
            }
            if let Some(s) = child.try_wait().unwrap() {
                panic!("trm-node {} exited with {s} at start: {text}", self.country);
            }
            assert!(
                Instant::now() < deadline,
                "trm-node {} not ready: {text}",
                self.country
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        self.child = Some(child);
    }

    /// SIGTERM, and the exit status once it has stopped.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let kill = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
        wait_or_kill(&mut child, COMMAND_LIMIT).expect("trm-node did not stop on SIGTERM")
    }

    fn admin(&self, args: &[&str]) -> Output {
        admin(Some(&self.cred), args)
    }

    /// Issues a credential with `role` into the temporary root; returns its path.
    fn officer(&self, name: &str, role: &str) -> PathBuf {
        let out =
            self.dir
                .with_file_name(format!("{}-{}.cred", self.country, name.replace(' ', "-")));
        self.admin(&[
            "officer",
            "add",
            name,
            "--role",
            role,
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        out
    }

    fn outbox_total(&self) -> u64 {
        self.admin(&["--json", "status"]).json()["outbox_total"]
            .as_u64()
            .expect("outbox_total")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// trm-node init / run / check-config
// ---------------------------------------------------------------------------------------------

#[test]
fn init_creates_private_keys_a_verifying_card_and_an_operator_credential() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::init(tmp.path(), "AL");
    for f in [
        "keys/signing.key",
        "keys/tls.key",
        "keys/store.key",
        "operator.cred",
    ] {
        assert_eq!(mode(&node.dir.join(f)), 0o600, "{f}");
    }
    let card = trm_proto::card::verify_card(&std::fs::read(node.card()).unwrap())
        .expect("the card verifies");
    assert_eq!(card.country(), "AL");
    assert_eq!(card.card.name, "AL synthetic test unit");
    let cfg = trm_node::base::config::NodeConfig::load(&node.dir).expect("node.toml is valid");
    assert_eq!(cfg.country, "AL");
    let out = trm_node(&["check-config", "--dir", s(&node.dir)]);
    assert!(out.ok().contains("configuration is valid"));
}

#[test]
fn init_refuses_an_existing_node_folder_and_leaves_it_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::init(tmp.path(), "AL");
    let before = snapshot(&node.dir);
    let out = trm_node(&[
        "init",
        "--dir",
        s(&node.dir),
        "--country",
        "AL",
        "--name",
        "Second synthetic unit",
        "--listen",
        &free_addr().to_string(),
    ]);
    assert_refused(&out, 64, 1, &["already exists", s(&node.dir)]);
    assert_eq!(
        snapshot(&node.dir),
        before,
        "the existing node is unchanged"
    );
}

#[test]
fn init_with_a_bad_country_code_exits_64_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for cc in ["xx", "ITA", "I1", ""] {
        let dir = tmp.path().join("node");
        let out = trm_node(&[
            "init",
            "--dir",
            s(&dir),
            "--country",
            cc,
            "--name",
            "Synthetic unit",
            "--listen",
            &free_addr().to_string(),
        ]);
        assert_refused(&out, 64, 1, &["--country", "two upper-case letters"]);
        assert!(
            names_in(tmp.path()).is_empty(),
            "nothing created for {cc:?}"
        );
    }
}

#[test]
fn a_folder_that_is_not_a_node_is_refused_with_64() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for cmd in ["run", "check-config"] {
        for dir in [&empty, &tmp.path().join("missing")] {
            let out = trm_node(&[cmd, "--dir", s(dir)]);
            assert_refused(&out, 64, 1, &["is not a node folder", s(dir)]);
        }
    }
    assert!(names_in(&empty).is_empty(), "run created nothing");
    assert_eq!(names_in(tmp.path()), ["empty"]);
}

#[test]
fn run_refuses_a_readable_key_or_a_bad_node_toml_with_64() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let node = Node::init(tmp.path(), "IT");
    let key = node.dir.join("keys/signing.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = trm_node(&["run", "--dir", s(&node.dir)]);
    assert_refused(&out, 64, 1, &["signing.key", "0600"]);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let toml = node.dir.join("node.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("max_frame_bytes = 1048576"), "{text}");
    std::fs::write(
        &toml,
        text.replace("max_frame_bytes = 1048576", "max_frame_bytes = 12"),
    )
    .unwrap();
    for cmd in ["run", "check-config"] {
        let out = trm_node(&[cmd, "--dir", s(&node.dir)]);
        assert_refused(&out, 64, 1, &["limits.max_frame_bytes"]);
    }
}

#[test]
fn usage_errors_are_one_line_with_64() {
    let out = trm_node(&["run"]);
    assert_refused(&out, 64, 1, &["--dir"]);
    let out = trm_node(&[
        "init",
        "--dir",
        "/nonexistent/x",
        "--country",
        "IT",
        "--name",
        "x",
        "--listen",
        "not-an-address",
    ]);
    assert_refused(&out, 64, 1, &["--listen", "not-an-address"]);
    let out = admin(None, &["status", "--bogus"]);
    assert_refused(&out, 64, 1, &["--bogus"]);
    let out = admin(None, &["case", "create"]);
    assert_refused(&out, 64, 1, &["--file"]);
}

#[test]
fn run_serves_status_and_stops_on_sigterm_keeping_the_outbox() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    let al = Node::init(tmp.path(), "AL"); // never started: the peer is down
    it.start();

    // --cred and TRM_CRED both work; the human status is a table with a header row.
    let human = it.admin(&["status"]);
    assert!(human.ok().contains("node IT (IT synthetic test unit)"));
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("PEER") && l.contains("STATE") && l.contains("OUTBOX")),
        "header row: {}",
        human.stdout
    );
    let mut c = Command::new(bin("trm-admin"));
    c.env("TRM_CRED", &it.cred).args(["--json", "status"]);
    assert_eq!(run(c).json()["country"], "IT");

    it.admin(&["peer", "add", s(&al.card())]).ok();
    let officer = it.officer("Officer Example", "officer");
    let case = write(
        tmp.path(),
        "case.json",
        &trm_tests::small_case("IT-CLI-0001"),
    );
    admin(Some(&officer), &["case", "create", "--file", s(&case)]).ok();
    let sent = admin(
        Some(&officer),
        &["referral", "send", "IT-CLI-0001", "--to", "AL"],
    );
    assert!(sent.ok().contains("is in the outbox"));
    assert_eq!(it.outbox_total(), 1);

    // An unknown peer: one line naming it, nothing enqueued.
    let out = admin(
        Some(&officer),
        &["referral", "send", "IT-CLI-0001", "--to", "ZZ"],
    );
    assert_refused(&out, 1, 1, &["ZZ"]);
    assert_eq!(it.outbox_total(), 1);

    let status = it.terminate();
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    let log = std::fs::read_to_string(&it.log).unwrap();
    assert!(!log.contains("panicked"), "{log}");

    it.start();
    assert_eq!(it.outbox_total(), 1, "the outbox survived the restart");
    let st = it.admin(&["--json", "status"]).json();
    let al_state = st["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["country"] == "AL")
        .expect("AL in status")
        .clone();
    assert_eq!(al_state["outbox"], 1);
    assert_eq!(it.terminate().code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

#[test]
fn peer_add_list_remove_and_a_corrupted_card_pins_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut al = Node::init(tmp.path(), "AL");
    let it = Node::init(tmp.path(), "IT");
    al.start();
    let card_bytes = std::fs::read(it.card()).unwrap();
    let card = trm_proto::card::verify_card(&card_bytes).unwrap();

    // One flipped byte anywhere that matters: refused locally, naming the file.
    for at in [card_bytes.len() / 2, card_bytes.len() - 3, 3] {
        let mut bad = card_bytes.clone();
        bad[at] ^= 0x41;
        let path = write(tmp.path(), "bad-card.trm", "");
        std::fs::write(&path, &bad).unwrap();
        let out = al.admin(&["peer", "add", s(&path)]);
        assert_refused(&out, 64, 1, &["bad-card.trm", "identity card refused"]);
        let peers = al.admin(&["--json", "peer", "list"]).json();
        assert_eq!(peers["peers"], serde_json::json!([]), "nothing pinned");
    }
    let out = al.admin(&["peer", "add", s(&tmp.path().join("missing.trm"))]);
    assert_refused(&out, 64, 1, &["missing.trm"]);

    let added = al.admin(&["peer", "add", s(&it.card())]);
    let text = added.ok();
    for want in [
        "IT",
        "IT synthetic test unit",
        &card.signing_fingerprint(),
        &card.tls_fingerprint(),
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    let list = al.admin(&["peer", "list"]);
    assert!(list.ok().starts_with("COUNTRY"), "{}", list.stdout);
    assert!(list.stdout.contains("IT synthetic test unit"));
    let json = al.admin(&["--json", "peer", "list"]).json();
    assert_eq!(json["peers"][0]["country"], "IT");

    assert!(al
        .admin(&["peer", "remove", "IT"])
        .ok()
        .contains("removed peer IT"));
    let out = al.admin(&["peer", "remove", "IT"]);
    assert_refused(&out, 1, 1, &["unknown peer IT"]);
    let json = al.admin(&["--json", "peer", "list"]).json();
    assert_eq!(json["peers"], serde_json::json!([]));
}

// ---------------------------------------------------------------------------------------------
// Case files
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_case_files_name_the_file_the_field_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    it.start();
    let officer = it.officer("Officer Example", "officer");
    let create = |file: &Path| admin(Some(&officer), &["case", "create", "--file", s(file)]);
    let good: Value = serde_json::from_str(&trm_tests::small_case("IT-CLI-0002")).unwrap();
    let variant = |name: &str, f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        write(tmp.path(), name, &serde_json::to_string_pretty(&v).unwrap())
    };

    let missing = tmp.path().join("missing.json");
    assert_refused(&create(&missing), 64, 1, &["missing.json"]);

    let syntax = write(
        tmp.path(),
        "syntax.json",
        "{\n  \"reference\": {\n    \"case_ref\": }\n",
    );
    assert_refused(
        &create(&syntax),
        64,
        1,
        &["syntax.json", "not JSON", "line 3 column"],
    );

    let wrong_type = variant("wrong-type.json", &|v| {
        v["exploitation"]["forms"] = "labour".into()
    });
    assert_refused(
        &create(&wrong_type),
        64,
        1,
        &["wrong-type.json: exploitation.forms: expected a list"],
    );

    let unknown = variant("unknown-field.json", &|v| {
        v["reference"]["favourite_colour"] = "blue".into()
    });
    assert_refused(
        &create(&unknown),
        64,
        1,
        &["unknown-field.json: reference.favourite_colour: unknown field"],
    );

    let bad_date = variant("bad-date.json", &|v| {
        v["reference"]["date"] = "2026-02-30".into()
    });
    assert_refused(
        &create(&bad_date),
        64,
        1,
        &["bad-date.json: reference.date: expected a date"],
    );

    // Several problems: one line each, every line naming the file, no value echoed.
    let all = variant("three-errors.json", &|v| {
        v["exploitation"]["forms"] = "labour".into();
        v["reference"]["favourite_colour"] = "blue".into();
        v["reference"]["date"] = "2026-02-30".into();
    });
    let out = create(&all);
    assert_refused(
        &out,
        64,
        3,
        &[
            "exploitation.forms",
            "reference.favourite_colour",
            "reference.date",
        ],
    );
    assert!(out
        .stderr
        .lines()
        .all(|l| l.starts_with("trm-admin: ") && l.contains("three-errors.json: ")));
    for value in ["blue", "2026-02-30"] {
        assert!(!out.stderr.contains(value), "value {value} echoed");
    }

    let cases = admin(Some(&officer), &["--json", "case", "list"]).json();
    assert_eq!(cases["cases"], serde_json::json!([]), "no case recorded");
    assert_eq!(it.outbox_total(), 0);
}

// ---------------------------------------------------------------------------------------------
// Credentials and roles
// ---------------------------------------------------------------------------------------------

#[test]
fn a_wrong_role_is_refused_with_77_naming_the_role_needed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    it.start();
    let auditor = it.officer("Auditor Example", "auditor");
    assert_eq!(mode(&auditor), 0o600, "issued credential is private");
    let officer = it.officer("Officer Example", "officer");

    // officer add refuses to overwrite, and refuses an unknown role before asking the node.
    let before = std::fs::read(&auditor).unwrap();
    let out = it.admin(&[
        "officer",
        "add",
        "Another Example",
        "--role",
        "officer",
        "--out",
        s(&auditor),
    ]);
    assert_refused(&out, 64, 1, &["already exists", "Auditor-Example.cred"]);
    assert_eq!(std::fs::read(&auditor).unwrap(), before);
    let king = tmp.path().join("king.cred");
    let out = it.admin(&[
        "officer",
        "add",
        "King",
        "--role",
        "king",
        "--out",
        s(&king),
    ]);
    assert_refused(&out, 64, 1, &["unknown role", "king"]);
    assert!(!king.exists());
    let officers = it.admin(&["--json", "officer", "list"]).json();
    assert_eq!(officers["officers"].as_array().unwrap().len(), 3);

    let case = write(
        tmp.path(),
        "case.json",
        &trm_tests::small_case("IT-CLI-0003"),
    );
    let out = admin(Some(&auditor), &["case", "create", "--file", s(&case)]);
    assert_refused(&out, 77, 1, &["case create", "needs role officer"]);
    let out = admin(Some(&officer), &["peer", "add", s(&it.card())]);
    assert_refused(&out, 77, 1, &["peer add", "needs role operator"]);

    let cases = admin(Some(&officer), &["--json", "case", "list"]).json();
    assert_eq!(cases["cases"], serde_json::json!([]));
}

#[test]
fn an_unreachable_node_exits_69() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    it.start();
    assert_eq!(it.terminate().code(), Some(0));
    let out = it.admin(&["status"]);
    assert_refused(&out, 69, 1, &["cannot reach the node"]);
}

#[test]
fn a_missing_or_readable_credential_is_refused_with_64() {
    let tmp = tempfile::tempdir().unwrap();
    let it = Node::init(tmp.path(), "IT"); // not running: nothing reaches it anyway
    let out = admin(None, &["status"]);
    assert_refused(&out, 64, 1, &["--cred FILE", "TRM_CRED"]);

    let missing = tmp.path().join("missing.cred");
    assert_refused(
        &admin(Some(&missing), &["status"]),
        64,
        1,
        &["missing.cred"],
    );

    let open = tmp.path().join("open.cred");
    std::fs::copy(&it.cred, &open).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_refused(
        &admin(Some(&open), &["status"]),
        64,
        1,
        &["open.cred", "0600"],
    );

    let garbage = tmp.path().join("garbage.cred");
    write(tmp.path(), "garbage.cred", "this is not\na credential\n");
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_refused(
        &admin(Some(&garbage), &["status"]),
        64,
        1,
        &["garbage.cred", "not a credential file"],
    );
}

// ---------------------------------------------------------------------------------------------
// Output for scripts and people
// ---------------------------------------------------------------------------------------------

#[test]
fn every_listing_and_show_command_prints_json_and_tables_have_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    let mut al = Node::init(tmp.path(), "AL");
    it.start();
    al.start();
    it.admin(&["peer", "add", s(&al.card())]).ok();
    al.admin(&["peer", "add", s(&it.card())]).ok();
    let it_officer = it.officer("Officer Example", "officer");
    let al_officer = al.officer("Officer Example", "officer");
    let case = write(
        tmp.path(),
        "case.json",
        &trm_tests::small_case("IT-CLI-0004"),
    );
    admin(Some(&it_officer), &["case", "create", "--file", s(&case)]).ok();
    let sent = admin(
        Some(&it_officer),
        &["--json", "referral", "send", "IT-CLI-0004", "--to", "AL"],
    )
    .json();
    let id = sent["message"].as_str().expect("message id").to_string();

    // Wait for the delivery (bounded), through the CLI.
    let deadline = Instant::now() + COMMAND_LIMIT;
    let inbox = loop {
        let v = admin(Some(&al_officer), &["--json", "inbox"]).json();
        if v["messages"].as_array().is_some_and(|m| !m.is_empty()) {
            break v;
        }
        assert!(Instant::now() < deadline, "referral not delivered");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(inbox["messages"][0]["id"], id.as_str());
    assert_eq!(inbox["messages"][0]["from"], "IT");

    let json = |cred: &Path, args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        admin(Some(cred), &all).json()
    };
    assert_eq!(json(&it.cred, &["status"])["country"], "IT");
    assert_eq!(
        json(&it.cred, &["peer", "list"])["peers"][0]["country"],
        "AL"
    );
    assert_eq!(
        json(&it_officer, &["case", "list"])["cases"][0]["id"],
        "IT-CLI-0004"
    );
    assert_eq!(
        json(&it_officer, &["case", "show", "IT-CLI-0004"])["id"],
        "IT-CLI-0004"
    );
    let shown = json(&al_officer, &["message", "show", &id]);
    assert_eq!(shown["direction"], "received");
    assert!(shown["verification"].is_object());
    let sent_view = json(&it_officer, &["message", "show", &id]);
    assert_eq!(sent_view["direction"], "sent");
    assert!(sent_view["delivery"]["state"].is_string());
    assert_eq!(
        json(&it.cred, &["officer", "list"])["officers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Human output: tables with a header row.
    let inbox = admin(Some(&al_officer), &["inbox"]);
    let first = inbox.ok().lines().next().unwrap_or_default();
    assert!(
        first.starts_with("MESSAGE") && first.contains("FROM") && first.contains("CASE"),
        "{}",
        inbox.stdout
    );
    assert!(inbox.stdout.contains(&id));
    let status = al.admin(&["status"]);
    assert!(status
        .ok()
        .lines()
        .any(|l| l.starts_with("PEER") && l.contains("LAST CONTACT")));
    assert!(status.stdout.lines().any(|l| l.starts_with("IT ")));
    let cases = admin(Some(&it_officer), &["case", "list"]);
    assert!(cases.ok().starts_with("CASE"), "{}", cases.stdout);
    let officers = it.admin(&["officer", "list"]);
    assert!(officers.ok().starts_with("NAME"), "{}", officers.stdout);

    // A bad message id and an unknown case: one line, non-zero.
    let out = admin(Some(&al_officer), &["message", "show", "nothex"]);
    assert_refused(&out, 1, 1, &["32 hex digits"]);
    let out = admin(Some(&it_officer), &["case", "show", "IT-NO-SUCH"]);
    assert_refused(&out, 1, 1, &["no case IT-NO-SUCH"]);

    assert_eq!(it.terminate().code(), Some(0));
    assert_eq!(al.terminate().code(), Some(0));
}
