//! Operations, end to end through the binaries: the example configuration, `check-config`
//! and environment overrides, JSON logs without case values, the metrics endpoint, the
//! offline check, schema refusal and migration, backup and restore. Real `trm-node`
//! processes on loopback, ports from the OS.
//!
//! The binaries are built and found by `trm_tests::bins` (never a stale one).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::Value;
use trm_node::admin::client::AdminClient;
use trm_node::base::config::NodeConfig;
use trm_node::identity::{self, Credential};
use trm_node::ops::backup::{self, Item};
use trm_node::store::{Op, SentState, Store, SCHEMA_VERSION};
use trm_proto::admin::{self as api, admin_request::Call};

use trm_tests::bins::bin;
use trm_tests::date_in_days;

fn trm_node(args: &[&str]) -> Output {
    Command::new(bin("trm-node"))
        .args(args)
        .env_remove("TRM_LISTEN")
        .env_remove("TRM_ADMIN_LISTEN")
        .env_remove("TRM_LOG_FORMAT")
        .env_remove("TRM_CRED")
        .output()
        .expect("run trm-node")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failed command: its exit code and its one line of error.
fn failure(o: &Output) -> (i32, String) {
    assert!(
        !o.status.success(),
        "expected a failure, got: {}",
        stdout(o)
    );
    let err = stderr(o);
    assert_eq!(
        err.trim().lines().count(),
        1,
        "the error must be one line: {err:?}"
    );
    (o.status.code().unwrap_or(-1), err.trim().to_string())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A node run by the `trm-node` binary.
struct Node {
    cc: String,
    dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    runs: u32,
    admin_override: Option<SocketAddr>,
}

impl Node {
    /// `trm-node init`, with short retry delays for tests.
    fn init(root: &Path, cc: &str) -> Self {
        let dir = root.join(cc);
        let out = trm_node(&[
            "init",
            "--dir",
            s(&dir),
            "--country",
            cc,
            "--name",
            &format!("{cc} ops test unit"),
            "--listen",
            &trm_tests::proc::free_addr().to_string(),
            "--admin-listen",
            &trm_tests::proc::free_addr().to_string(),
        ]);
        assert!(out.status.success(), "init {cc}: {}", stderr(&out));
        let n = Self {
            cc: cc.into(),
            dir,
            child: None,
            log: root.join(format!("{cc}.log")),
            runs: 0,
            admin_override: None,
        };
        n.edit_config(|t| t.replace("backoff_max_ms = 30000", "backoff_max_ms = 500"));
        n
    }

    fn edit_config(&self, f: impl FnOnce(&str) -> String) {
        let path = self.dir.join("node.toml");
        let text = std::fs::read_to_string(&path).expect("node.toml");
        std::fs::write(&path, f(&text)).expect("write node.toml");
    }

    /// `trm-node run` with extra arguments and environment; waits until it answers.
    async fn start(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let addr_file = self.dir.join("run/metrics.addr");
        let _ = std::fs::remove_file(&addr_file);
        self.runs += 1;
        self.log = self
            .dir
            .with_file_name(format!("{}-run{}.log", self.cc, self.runs));
        let log = std::fs::File::create(&self.log).expect("log file");
        let mut cmd = Command::new(bin("trm-node"));
        cmd.args(["run", "--dir", s(&self.dir)])
            .args(args)
            .env_remove("TRM_LISTEN")
            .env_remove("TRM_ADMIN_LISTEN")
            .env_remove("TRM_LOG_FORMAT")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.admin_override = env
            .iter()
            .find(|(k, _)| *k == "TRM_ADMIN_LISTEN")
            .map(|(_, v)| v.parse().expect("admin address"));
        self.child = Some(cmd.spawn().expect("spawn trm-node run"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited with {st} at start: {}", self.cc, self.log_text());
            }
            if addr_file.is_file()
                && call_as(&self.cred(), Call::Status(api::Status {}))
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start: {}",
                self.cc,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match c.try_wait() {
                Ok(Some(st)) => {
                    assert!(st.success(), "{} exited with {st}", self.cc);
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(25))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("{} did not stop on SIGTERM", self.cc);
                }
            }
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn cred(&self) -> Credential {
        let mut c = Credential::load(&self.dir.join(identity::OPERATOR_CRED)).expect("cred");
        if let Some(a) = self.admin_override {
            c.node = a;
        }
        c
    }

    async fn op(&self, call: Call) -> Value {
        call_as(&self.cred(), call).await.expect("operator call")
    }

    async fn officer(&self, name: &str) -> Credential {
        self.member(name, "officer").await
    }

    /// A credential with `role`.
    async fn member(&self, name: &str, role: &str) -> Credential {
        let cert = identity::self_signed(name, role).expect("cert");
        let v = self
            .op(Call::OfficerAdd(api::OfficerAdd {
                name: name.into(),
                role: role.into(),
                cert_der: cert.cert_der,
            }))
            .await;
        Credential {
            name: name.into(),
            role: role.into(),
            country: self.cc.clone(),
            node: v["node"].as_str().expect("node").parse().expect("addr"),
            node_cert_sha256: v["node_cert_sha256"].as_str().expect("fp").into(),
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }
    }

    async fn pin(&self, other: &Node) {
        let card = std::fs::read(other.dir.join("card.trm")).expect("card");
        self.op(Call::PeerAdd(api::PeerAdd {
            card,
            ..Default::default()
        }))
        .await;
    }

    fn metrics_addr(&self) -> String {
        std::fs::read_to_string(self.dir.join("run/metrics.addr"))
            .expect("run/metrics.addr")
            .trim()
            .to_string()
    }

    fn scrape(&self) -> String {
        let (code, body) = http_get(&self.metrics_addr(), "/metrics");
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Opens the stopped node's store.
    fn store(&self) -> Store {
        let cfg = NodeConfig::load(&self.dir).expect("config");
        Store::open(&self.dir.join(&cfg.paths.store)).expect("store")
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

async fn call_as(cred: &Credential, call: Call) -> Result<Value, String> {
    let c = AdminClient::connect(cred)
        .await
        .map_err(|e| e.to_string())?;
    let r = c.call(call).await.map_err(|e| e.to_string());
    c.close().await;
    r
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP answer");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, body.to_string())
}

/// The value of one series, e.g. `trm_outbox_depth{peer="AL"}`.
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// A synthetic case with distinctive, obviously fictional values.
fn case_json(case_ref: &str, due: &str) -> String {
    serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Shelter Qwertz-4471",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "reason": "Zebra-Ocelot synthetic reason 5512",
            "urgency": "routine",
            "response_due": due
        },
        "exploitation": { "forms": ["labour"], "victim_status": "presumed" }
    })
    .to_string()
}

async fn send_referral(node: &Node, officer: &Credential, case_ref: &str, due: &str) -> String {
    call_as(
        officer,
        Call::CaseCreate(api::CaseCreate {
            json: case_json(case_ref, due),
        }),
    )
    .await
    .expect("case create");
    let v = call_as(
        officer,
        Call::ReferralSend(api::ReferralSend {
            case_id: case_ref.into(),
            to: "AL".into(),
        }),
    )
    .await
    .expect("referral send");
    let _ = node;
    v["message"].as_str().expect("message id").to_string()
}

async fn outbox_total(node: &Node) -> u64 {
    node.op(Call::Status(api::Status {})).await["outbox_total"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

async fn wait_outbox_empty(node: &Node) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox_total(node).await != 0 {
        assert!(
            Instant::now() < deadline,
            "{}'s outbox did not drain",
            node.cc
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- configuration ----------------------------------------------------------------------

/// Every dotted key of a TOML document (tables themselves included).
fn keys(v: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(key.clone());
            keys(v, &key, out);
        }
    }
}

#[test]
fn example_config_lists_every_option_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/node.example.toml");
    let text = std::fs::read_to_string(&path).expect("deploy/node.example.toml");
    let example = NodeConfig::parse(&text).expect("example parses");
    example.validate().expect("example validates");

    let defaults = NodeConfig::new(
        "IT",
        "x",
        "127.0.0.1:4433".parse().unwrap(),
        "127.0.0.1:4434".parse().unwrap(),
    );
    let mut want = BTreeSet::new();
    keys(
        &toml::Value::try_from(&defaults).expect("serialize"),
        "",
        &mut want,
    );
    let mut have = BTreeSet::new();
    keys(&toml::from_str(&text).expect("toml"), "", &mut have);
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "deploy/node.example.toml lacks {missing:?}"
    );

    // Every option shows its default (the required ones aside).
    let mut example_defaults = example.clone();
    example_defaults.listen = defaults.listen;
    example_defaults.name = defaults.name.clone();
    assert_eq!(
        toml::Value::try_from(&example_defaults).unwrap(),
        toml::Value::try_from(&defaults).unwrap(),
        "the example must show the defaults"
    );
    // Every option has a comment: each key line follows a comment line.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let is_key = !t.starts_with('#') && !t.starts_with('[') && t.contains(" = ");
        if is_key && !l.starts_with(' ') {
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                "option without a comment above it: {l}"
            );
        }
    }
}

#[test]
fn check_config_names_the_offending_key() {
    let tmp = tempfile::tempdir().unwrap();
    let n = Node::init(tmp.path(), "IT");
    let dir = s(&n.dir).to_string();
    let ok = trm_node(&["check-config", "--dir", &dir]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    let original = std::fs::read_to_string(n.dir.join("node.toml")).unwrap();
    for (from, to, key) in [
        (
            "max_frame_bytes = 1048576",
            "max_frame_bytes = 12",
            "limits.max_frame_bytes",
        ),
        (
            "max_in_flight = 64",
            "max_in_flight = \"many\"",
            "delivery.max_in_flight",
        ),
        ("format = \"human\"", "format = \"xml\"", "log.format"),
        ("[metrics]\n", "[metrics]\nport = 9464\n", "metrics.port"),
    ] {
        n.edit_config(|t| t.replace(from, to));
        let (code, err) = failure(&trm_node(&["check-config", "--dir", &dir]));
        assert_eq!(code, 64, "{err}");
        assert!(err.contains(&format!("`{key}`")), "{err}");
        std::fs::write(n.dir.join("node.toml"), &original).unwrap();
    }

    // An environment override is validated too, and named.
    let out = Command::new(bin("trm-node"))
        .args(["check-config", "--dir", &dir])
        .env("TRM_LISTEN", "not-an-address")
        .output()
        .unwrap();
    let (code, err) = failure(&out);
    assert_eq!(code, 64);
    assert!(err.contains("TRM_LISTEN"), "{err}");
    // A bad --log-format is usage.
    let (code, _) = failure(&trm_node(&["--log-format", "xml", "run", "--dir", &dir]));
    assert_eq!(code, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_overrides_the_admin_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let mut n = Node::init(tmp.path(), "IT");
    let moved = trm_tests::proc::free_addr().to_string();
    n.start(&[], &[("TRM_ADMIN_LISTEN", &moved)]).await;
    let st = n.op(Call::Status(api::Status {})).await;
    assert_eq!(st["admin_listen"], moved.as_str());
    // The address in node.toml is not served.
    let mut old = n.cred();
    old.node = Credential::load(&n.dir.join(identity::OPERATOR_CRED))
        .unwrap()
        .node;
    assert!(call_as(&old, Call::Status(api::Status {})).await.is_err());
    n.stop();
}

// ----- logs and metrics -------------------------------------------------------------------

const CASE_VALUES: [&str; 3] = [
    "Synthetic Shelter Qwertz-4471",
    "Zebra-Ocelot synthetic reason 5512",
    "IT-OPS-LOGS-0001",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_no_case_values() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    let mut al = Node::init(tmp.path(), "AL");
    // Italy's law lets it send every category to Albania, so that personal data travels.
    it.edit_config(|t| {
        let mut v: toml::Value = toml::from_str(t).expect("node.toml");
        let all = trm_tests::all_categories()
            .into_iter()
            .map(toml::Value::String)
            .collect();
        v["outgoing"]
            .as_table_mut()
            .expect("[outgoing]")
            .insert("AL".into(), toml::Value::Array(all));
        toml::to_string(&v).unwrap()
    });
    // One by flag, one by environment; debug level to log as much as possible.
    it.start(&["--log-format", "json"], &[("RUST_LOG", "debug")])
        .await;
    al.start(&[], &[("TRM_LOG_FORMAT", "json"), ("RUST_LOG", "debug")])
        .await;
    it.pin(&al).await;
    al.pin(&it).await;
    let officer = it.officer("Officer Example-Logs").await;
    let id = send_referral(&it, &officer, CASE_VALUES[2], &date_in_days(365)).await;
    // A case with a canary identity, its identity released by a supervisor and sent.
    let canary = format!("Canarylogova{}", rand::random::<u32>());
    call_as(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: trm_tests::adult_case("IT-OPS-LOGS-0002", Some(&canary)),
        }),
    )
    .await
    .expect("case create");
    let supervisor = it.member("Supervisor Example-Logs", "supervisor").await;
    call_as(
        &supervisor,
        Call::ReferralApprove(api::ReferralApprove {
            referral: "IT-OPS-LOGS-0002/AL".into(),
            categories: vec!["identity".into()],
        }),
    )
    .await
    .expect("approve identity");
    call_as(
        &officer,
        Call::ReferralSend(api::ReferralSend {
            case_id: "IT-OPS-LOGS-0002".into(),
            to: "AL".into(),
        }),
    )
    .await
    .expect("referral send");
    wait_outbox_empty(&it).await;

    // The values did travel: Albania's officer sees them.
    let al_officer = al.officer("Officer Example-AL").await;
    let shown = call_as(&al_officer, Call::MessageShow(api::MessageShow { id }))
        .await
        .unwrap();
    assert_eq!(
        shown["fields"]["reference"]["sending_institution"],
        CASE_VALUES[0]
    );
    let case = call_as(
        &al_officer,
        Call::CaseShow(api::CaseShow {
            id: "IT-OPS-LOGS-0002".into(),
        }),
    )
    .await
    .unwrap();
    assert_eq!(
        case["case"]["identity"]["family_name"],
        canary.as_str(),
        "the canary identity was received"
    );
    it.stop();
    al.stop();

    for node in [&it, &al] {
        let log = node.log_text();
        let mut events = 0;
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{} log line is not JSON ({e}): {line}", node.cc));
            assert!(v.is_object() && v.get("level").is_some(), "{line}");
            events += 1;
        }
        assert!(
            log.contains("node ready"),
            "{} logged no start: {log}",
            node.cc
        );
        assert!(events > 5, "{} logged only {events} events", node.cc);
        for value in CASE_VALUES.iter().copied().chain([canary.as_str()]) {
            assert!(
                !log.contains(value),
                "{}'s log contains the case value {value:?}",
                node.cc
            );
        }
    }
    // The receive path logs inside the peer connection's span, which names the sender.
    let stored: Value = al
        .log_text()
        .lines()
        .find(|l| l.contains("stored and receipted"))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("a receive event");
    assert_eq!(stored["span"]["name"], "peer", "{stored}");
    assert_eq!(stored["span"]["peer"], "IT", "{stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_a_referral() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    let mut al = Node::init(tmp.path(), "AL");
    it.start(&[], &[]).await;

    // Only GET /metrics is served.
    assert_eq!(http_get(&it.metrics_addr(), "/").0, 404);
    assert_eq!(http_get(&it.metrics_addr(), "/metrics/x").0, 404);
    // A request head over the cap is refused, not buffered.
    let mut big = TcpStream::connect(it.metrics_addr()).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).ok();
    big.write_all(&[b'a'; 12 << 10]).unwrap();
    let mut answer = String::new();
    big.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let before = it.scrape();
    assert_eq!(metric(&before, "trm_up"), Some(1.0));
    let audit_before = metric(&before, "trm_audit_entries").unwrap();
    assert!(metric(&before, "trm_store_size_bytes").unwrap() > 0.0);
    assert_eq!(
        metric(&before, "trm_delivery_latency_seconds_count"),
        Some(0.0)
    );

    // Albania is pinned but down: the referral (due in the past) waits in the outbox.
    it.pin(&al).await;
    let officer = it.officer("Officer Example-Metrics").await;
    send_referral(&it, &officer, "IT-OPS-METRICS-01", "2020-01-15").await;
    let m = it.scrape();
    assert_eq!(
        metric(&m, r#"trm_messages_sent_total{peer="AL",kind="referral"}"#),
        Some(1.0)
    );
    assert_eq!(metric(&m, r#"trm_outbox_depth{peer="AL"}"#), Some(1.0));
    assert!(metric(&m, "trm_audit_entries").unwrap() > audit_before);
    assert!(
        eventually(10, || metric(&it.scrape(), r#"trm_peer_up{peer="AL"}"#)
            == Some(0.0))
        .await,
        "peer down not shown"
    );
    assert!(metric(&it.scrape(), r#"trm_peer_failing_seconds{peer="AL"}"#).unwrap() >= 0.0);

    // Albania comes up: delivered, outbox empty, peer up, a latency observed.
    al.start(&[], &[]).await;
    al.pin(&it).await;
    assert!(
        eventually(20, || metric(
            &it.scrape(),
            r#"trm_messages_delivered_total{peer="AL",kind="referral"}"#
        ) == Some(1.0))
        .await,
        "delivery not counted: {}",
        it.scrape()
    );
    let m = it.scrape();
    assert_eq!(metric(&m, r#"trm_outbox_depth{peer="AL"}"#), Some(0.0));
    assert_eq!(
        metric(&m, r#"trm_outbox_oldest_age_seconds{peer="AL"}"#),
        Some(0.0)
    );
    assert_eq!(metric(&m, r#"trm_peer_up{peer="AL"}"#), Some(1.0));
    assert_eq!(metric(&m, "trm_delivery_latency_seconds_count"), Some(1.0));
    assert_eq!(
        metric(&m, r#"trm_delivery_latency_seconds_bucket{le="+Inf"}"#),
        Some(1.0)
    );
    // Overdue: not answered by Albania (sent side) nor by Albania's officers (received side).
    assert_eq!(
        metric(&m, r#"trm_referrals_overdue{direction="sent",peer="AL"}"#),
        Some(1.0)
    );
    let a = al.scrape();
    assert_eq!(
        metric(
            &a,
            r#"trm_messages_received_total{peer="IT",kind="referral"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &a,
            r#"trm_referrals_overdue{direction="received",peer="IT"}"#
        ),
        Some(1.0)
    );
    for body in [&m, &a] {
        for value in CASE_VALUES.iter().take(2) {
            assert!(!body.contains(value), "metrics hold a case value");
        }
        assert!(!body.contains("IT-OPS-METRICS-01"));
    }

    // The live probe sees the node; the offline check refuses while it runs.
    let dir = s(&it.dir).to_string();
    let probe = trm_node(&["health", "--dir", &dir]);
    assert!(probe.status.success(), "{}", stderr(&probe));
    it.stop();
    al.stop();
    assert!(!it.dir.join("run/metrics.addr").exists());
    let (code, _) = failure(&trm_node(&["health", "--dir", &dir]));
    assert_eq!(code, 1);
}

// ----- health, schema ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_check_names_problems_and_refuses_while_running() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut n = Node::init(tmp.path(), "IT");
    let other = Node::init(tmp.path(), "AL");
    let dir = s(&n.dir).to_string();
    let ok = trm_node(&["check", "--dir", &dir]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("healthy"));

    // A private key readable by others.
    let key = n.dir.join("keys/signing.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = failure(&trm_node(&["check", "--dir", &dir]));
    assert_eq!(code, 1);
    assert!(err.contains("signing.key") && err.contains("0600"), "{err}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A card that is not this node's.
    let card = n.dir.join("card.trm");
    let own = std::fs::read(&card).unwrap();
    std::fs::copy(other.dir.join("card.trm"), &card).unwrap();
    let (_, err) = failure(&trm_node(&["check", "--dir", &dir]));
    assert!(err.contains("card.trm"), "{err}");
    std::fs::write(&card, &own).unwrap();

    // While the node runs: refused, clearly, with its own exit code.
    n.start(&[], &[]).await;
    let (code, err) = failure(&trm_node(&["check", "--dir", &dir]));
    assert_eq!(code, 75);
    assert!(err.contains("running"), "{err}");
    n.stop();
    assert!(trm_node(&["check", "--dir", &dir]).status.success());

    // A malformed schema version in the store: corrupt, named.
    let store = n.store();
    store
        .commit_blocking(vec![Op::PutMeta("schema".into(), vec![1, 2])])
        .unwrap();
    drop(store);
    let (code, err) = failure(&trm_node(&["check", "--dir", &dir]));
    assert_eq!(code, 1);
    assert!(err.contains("corrupted") && err.contains("schema"), "{err}");
}

#[test]
fn a_newer_store_is_refused_by_check_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let n = Node::init(tmp.path(), "IT");
    let store = n.store();
    store
        .commit_blocking(vec![Op::PutMeta(
            "schema".into(),
            (SCHEMA_VERSION + 1).to_be_bytes().to_vec(),
        )])
        .unwrap();
    drop(store);
    let dir = s(&n.dir).to_string();
    let (code, err) = failure(&trm_node(&["check", "--dir", &dir]));
    assert_eq!(code, 1);
    assert!(err.contains("newer than this trm-node supports"), "{err}");

    let mut child = Command::new(bin("trm-node"))
        .args(["run", "--dir", &dir])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("run did not refuse a newer store");
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("newer than this trm-node supports"), "{err}");
    // Nothing was rewritten: still refused.
    assert!(!trm_node(&["check", "--dir", &dir]).status.success());
}

/// Rewrites a backup into the schema-0 layout: no `schema` key, no inbox order, received
/// messages whole in `received` under sender ‖ id.
fn to_schema_0(from: &Path, to: &Path) {
    let (mut header, items) = backup::read_items(from).unwrap();
    let audit: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = items
        .iter()
        .filter_map(|i| match i {
            Item::Record { tree, key, value } if tree == "audit" => {
                Some((key.clone(), value.clone()))
            }
            _ => None,
        })
        .collect();
    let kept: Vec<Item> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Record { tree, value, .. } if tree == "arrivals" => {
                let r = trm_node::store::stored_received_record(&value, |n| {
                    audit.get(n.to_be_bytes().as_slice()).cloned()
                })
                .unwrap();
                let mut key = r.peer.as_bytes().to_vec();
                key.extend_from_slice(&r.id);
                Some(Item::Record {
                    tree: "received".into(),
                    key,
                    value: r.encode_to_vec(),
                })
            }
            Item::Record { tree, key, .. }
                if tree == "received_ids" || (tree == "meta" && key.as_slice() == b"schema") =>
            {
                None
            }
            other => Some(other),
        })
        .collect();
    header.schema = 0;
    backup::write_items(to, header, &kept).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_0_store_is_migrated_by_check_and_by_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    let mut al = Node::init(tmp.path(), "AL");
    it.start(&[], &[]).await;
    al.start(&[], &[]).await;
    it.pin(&al).await;
    al.pin(&it).await;
    let officer = it.officer("Officer Example-Schema").await;
    let id = send_referral(&it, &officer, "IT-OPS-SCHEMA-01", &date_in_days(365)).await;
    wait_outbox_empty(&it).await;
    it.stop();
    al.stop();

    // Albania's store, as a development build before the schema key would have left it.
    let b = tmp.path().join("al.trmbak");
    let v0 = tmp.path().join("al-v0.trmbak");
    let dir = s(&al.dir).to_string();
    assert!(trm_node(&["backup", "--dir", &dir, "--out", s(&b)])
        .status
        .success());
    to_schema_0(&b, &v0);

    // `check` migrates it and says so.
    let r = trm_node(&["restore", "--from", s(&v0), "--dir", &dir]);
    assert!(r.status.success(), "{}", stderr(&r));
    let c = trm_node(&["check", "--dir", &dir]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(
        stdout(&c).contains(&format!("migrated from schema 0 to {SCHEMA_VERSION}")),
        "{}",
        stdout(&c)
    );

    // `run` migrates it too, and the inbox is back in order.
    let r = trm_node(&["restore", "--from", s(&v0), "--dir", &dir]);
    assert!(r.status.success(), "{}", stderr(&r));
    al.start(&[], &[]).await;
    let al_officer = al.officer("Officer Example-AL").await;
    let inbox = call_as(&al_officer, Call::Inbox(api::Inbox {}))
        .await
        .unwrap();
    assert_eq!(inbox["messages"][0]["id"], id.as_str());
    assert!(al.log_text().contains("store schema migrated"));
    al.stop();
    let again = trm_node(&["check", "--dir", &dir]);
    assert!(!stdout(&again).contains("migrated"), "migrates once");
}

// ----- backup and restore -----------------------------------------------------------------

#[test]
fn restore_refuses_damaged_newer_and_foreign_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let it = Node::init(tmp.path(), "IT");
    let al = Node::init(tmp.path(), "AL");
    let dir = s(&it.dir).to_string();
    let b = tmp.path().join("it.trmbak");
    let out = trm_node(&["backup", "--dir", &dir, "--out", s(&b)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("private keys not included"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&b).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwrites.
    let (code, _) = failure(&trm_node(&["backup", "--dir", &dir, "--out", s(&b)]));
    assert_eq!(code, 64);

    // One flipped byte: damaged, nothing restored.
    let mut bytes = std::fs::read(&b).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x40;
    let bad = tmp.path().join("bad.trmbak");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, err) = failure(&trm_node(&["restore", "--from", s(&bad), "--dir", &dir]));
    assert_eq!(code, 65);
    assert!(err.contains("damaged"), "{err}");
    assert!(!std::fs::read_dir(&it.dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("replaced")));

    // A newer schema.
    let (mut header, items) = backup::read_items(&b).unwrap();
    header.schema = SCHEMA_VERSION + 1;
    let newer = tmp.path().join("newer.trmbak");
    backup::write_items(&newer, header, &items).unwrap();
    let (code, err) = failure(&trm_node(&["restore", "--from", s(&newer), "--dir", &dir]));
    assert_eq!(code, 65);
    assert!(err.contains("newer"), "{err}");

    // Another country's folder.
    let (code, err) = failure(&trm_node(&[
        "restore",
        "--from",
        s(&b),
        "--dir",
        s(&al.dir),
    ]));
    assert_eq!(code, 64);
    assert!(err.contains("IT") && err.contains("AL"), "{err}");

    // Into a new folder: files and store, but no private keys unless asked for.
    let fresh = tmp.path().join("IT-new");
    let r = trm_node(&["restore", "--from", s(&b), "--dir", s(&fresh)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stdout(&r).contains("MISSING private keys"));
    assert!(fresh.join("node.toml").is_file() && !fresh.join("keys/signing.key").exists());
    let with_keys = tmp.path().join("it-keys.trmbak");
    let out = trm_node(&[
        "backup",
        "--dir",
        &dir,
        "--out",
        s(&with_keys),
        "--include-keys",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh2 = tmp.path().join("IT-new2");
    assert!(
        trm_node(&["restore", "--from", s(&with_keys), "--dir", s(&fresh2)])
            .status
            .success()
    );
    let c = trm_node(&["check", "--dir", s(&fresh2)]);
    assert!(c.status.success(), "{}", stderr(&c));
}

/// The sender is restored from a backup taken while a referral was still in its outbox.
/// That referral is sent again and Albania answers with its first receipt (stored once);
/// the referral sent after the backup is gone from Italy (the loss window) but not silently:
/// the restore is in Italy's audit log and status, and Albania still holds the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restoring_the_sender_resends_its_outbox_and_loses_nothing_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = Node::init(tmp.path(), "IT");
    let mut al = Node::init(tmp.path(), "AL");
    it.start(&[], &[]).await;
    al.start(&[], &[]).await;
    it.pin(&al).await;
    al.pin(&it).await;
    let officer = it.officer("Officer Example-Backup").await;
    al.stop();

    // R1 waits in Italy's outbox while Albania is down; the backup is taken online.
    let r1 = send_referral(&it, &officer, "IT-OPS-BACKUP-01", &date_in_days(365)).await;
    let b = tmp.path().join("it.trmbak");
    let dir = s(&it.dir).to_string();
    let out = trm_node(&["backup", "--dir", &dir, "--out", s(&b)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let header = backup::verify(&b).unwrap();
    assert!(header.online);
    assert!(std::fs::read_dir(it.dir.join("backups"))
        .unwrap()
        .next()
        .is_none());

    // Albania comes back: R1 delivered. Then R2 is sent and delivered.
    al.start(&[], &[]).await;
    wait_outbox_empty(&it).await;
    let r2 = send_referral(&it, &officer, "IT-OPS-BACKUP-02", &date_in_days(365)).await;
    wait_outbox_empty(&it).await;

    // Restore refuses while Italy runs.
    let (code, err) = failure(&trm_node(&["restore", "--from", s(&b), "--dir", &dir]));
    assert_eq!(code, 75);
    assert!(err.contains("running"), "{err}");
    it.stop();
    let r = trm_node(&["restore", "--from", s(&b), "--dir", &dir]);
    assert!(r.status.success(), "{}", stderr(&r));

    // Italy starts from the backup: R1 is pending again and goes out again.
    it.start(&[], &[]).await;
    let st = it.op(Call::Status(api::Status {})).await;
    assert_eq!(st["last_restore"]["taken"], header.taken.as_str());
    wait_outbox_empty(&it).await;
    let a = al.scrape();
    assert_eq!(
        metric(
            &a,
            r#"trm_messages_duplicate_total{peer="IT",kind="referral"}"#
        ),
        Some(1.0),
        "R1 was answered as a duplicate"
    );
    let m = it.scrape();
    assert_eq!(
        metric(&m, "trm_last_restore_timestamp_seconds").map(|v| v > 0.0),
        Some(true)
    );
    it.stop();
    al.stop();

    let (it_store, al_store) = (it.store(), al.store());
    let id1 = hex::decode(&r1).unwrap();
    let id2 = hex::decode(&r2).unwrap();
    // Albania stored each message once.
    assert_eq!(al_store.received_count(), 2);
    let ids: BTreeSet<Vec<u8>> = al_store
        .inbox()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, BTreeSet::from([id1.clone(), id2.clone()]));
    // Italy holds R1 as delivered, with Albania's first receipt byte for byte.
    let sent1 = it_store.sent(&id1).unwrap().expect("R1 kept");
    assert_eq!(SentState::from_u32(sent1.state), SentState::Delivered);
    assert_eq!(
        sent1.answer,
        al_store.received("IT", &id1).unwrap().unwrap().receipt
    );
    // R2 and its case are gone from Italy (the loss window) ...
    assert!(it_store.sent(&id2).unwrap().is_none());
    assert!(it_store.case("IT-OPS-BACKUP-02").unwrap().is_none());
    // ... visibly: the restore is in Italy's audit log.
    let entries = it_store.audit_entries(0).unwrap();
    let restore = entries
        .iter()
        .find(|e| e.kind == "restore")
        .expect("restore audit entry");
    assert!(
        restore
            .result
            .contains(&format!("restored from backup taken at {}", header.taken)),
        "{}",
        restore.result
    );
    // The replaced store is kept beside the restored one.
    assert!(std::fs::read_dir(&it.dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("store.replaced-")));
}
