//! Test support: real nodes on loopback, in temporary folders, with ports chosen by the OS.
//!
//! The harness of every suite (see tests/README.md): in-process nodes ([`TestNode`]), node
//! processes ([`proc`]), the built binaries ([`bins`]), shared waits and seeds.
#![allow(missing_docs, unreachable_pub)] // test support crate

pub mod answers;
pub mod auditx;
pub mod bins;
pub mod browser;
pub mod console;
pub mod current;
pub mod net;
pub mod pins;
pub mod proc;
pub mod proxy;
pub mod raw;
pub mod recv;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use serde_json::Value;
use trm_node::admin::client::{AdminClient, ClientError};
use trm_node::identity::{self, Credential, NodeKeys};
use trm_node::{NodeHandle, StartOptions};
use trm_proto::admin as api;
use trm_proto::admin::admin_request::Call;
use trm_proto::pb;

/// Installs the crypto provider once per test process.
pub fn setup() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = std::panic::catch_unwind(|| {});
}

/// A node under test, run in this process.
///
/// Its two UDP sockets are bound once, on ports chosen by the OS, and kept for the node's
/// whole life: each start hands the node clones of them. A restart therefore never has to
/// rebind a port that another test may have taken meanwhile.
pub struct TestNode {
    pub country: String,
    pub dir: PathBuf,
    pub peer_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub operator: Credential,
    pub handle: Option<NodeHandle>,
    peer_socket: UdpSocket,
    admin_socket: UdpSocket,
}

/// Reads and drops every datagram waiting on `s`.
fn drain(s: &UdpSocket) {
    s.set_nonblocking(true).expect("non-blocking socket");
    let mut buf = vec![0u8; 65_536];
    while s.recv_from(&mut buf).is_ok() {}
}

fn free_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind loopback")
}

/// Whether the long versions of the fault and flood tests run (`TRM_LONG_TESTS=1`).
pub fn long() -> bool {
    std::env::var("TRM_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// The random generator of a test: seeded from `TRM_TEST_SEED` if set, else from a fresh
/// seed; the seed is printed either way so that a failing run can be replayed.
pub fn seeded_rng(test: &str) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let seed = std::env::var("TRM_TEST_SEED")
        .ok()
        .map(|s| s.trim().parse::<u64>().expect("TRM_TEST_SEED is a u64"))
        .unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (replay with TRM_TEST_SEED={seed})");
    rand::rngs::StdRng::seed_from_u64(seed)
}

impl TestNode {
    /// Initialises a node folder under `root` (not started).
    pub fn init(root: &Path, country: &str) -> Self {
        setup();
        let dir = root.join(country);
        let (peer_socket, admin_socket) = (free_socket(), free_socket());
        let (peer_addr, admin_addr) = (
            peer_socket.local_addr().unwrap(),
            admin_socket.local_addr().unwrap(),
        );
        identity::init(
            &dir,
            country,
            &format!("{country} test unit"),
            peer_addr,
            admin_addr,
            None,
        )
        .expect("init");
        let operator = Credential::load(&dir.join(identity::OPERATOR_CRED)).expect("cred");
        Self {
            country: country.into(),
            dir,
            peer_addr,
            admin_addr,
            operator,
            handle: None,
            peer_socket,
            admin_socket,
        }
    }

    /// Start options that hand the node clones of this node's kept sockets.
    ///
    /// Datagrams that reached the sockets while the node was stopped are discarded first: a
    /// stopped node is down, as if its port were closed, and does not answer them later.
    pub fn start_options(&self) -> StartOptions {
        for s in [&self.peer_socket, &self.admin_socket] {
            drain(s);
        }
        StartOptions {
            peer_socket: Some(self.peer_socket.try_clone().expect("clone peer socket")),
            admin_socket: Some(self.admin_socket.try_clone().expect("clone admin socket")),
            clock: None,
        }
    }

    /// Edits node.toml before start.
    pub fn edit_config(&self, f: impl FnOnce(&str) -> String) {
        let path = self.dir.join("node.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, f(&text)).unwrap();
    }

    /// Changes node.toml through the typed configuration before start.
    pub fn configure(&self, f: impl FnOnce(&mut trm_node::base::config::NodeConfig)) {
        let mut cfg = trm_node::base::config::NodeConfig::load(&self.dir).unwrap();
        f(&mut cfg);
        std::fs::write(self.dir.join("node.toml"), cfg.to_toml()).unwrap();
    }

    /// One admin call as `cred`; panics with the node's message on failure.
    pub async fn ok(&self, cred: &Credential, call: Call) -> Value {
        match self.call_as(cred, call).await {
            Ok(v) => v,
            Err(e) => panic!("{} call failed: {e}", self.country),
        }
    }

    /// Starts the node on its kept sockets.
    pub async fn start(&mut self) {
        let h = self.try_start().await.expect("start node");
        self.handle = Some(h);
    }

    /// Starts the node on its kept sockets, returning the start error instead of panicking. The
    /// store this node's previous run released may stay locked a moment (sled's background
    /// threads hold its file lock briefly after the last handle is gone, as the store's own
    /// tests note): `Locked` is retried for up to 10 s, any other error returned at once.
    pub async fn try_start(&self) -> Result<NodeHandle, trm_node::node::StartError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match trm_node::start(&self.dir, self.start_options()).await {
                Err(trm_node::node::StartError::Store(trm_node::store::StoreError::Locked(_)))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    /// Stops the node cleanly.
    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            let state = std::sync::Arc::downgrade(&h.ctx);
            h.shutdown().await;
            // The stopped node's last tasks may hold its state, and so its endpoint reading the
            // kept sockets, a moment longer: wait (bounded) until it is gone, so that a restart
            // never shares the sockets with it.
            wait_until(10, || state.strong_count() == 0).await;
        }
    }

    /// Stops the node and drops it.
    pub async fn finish(mut self) {
        self.stop().await;
    }

    /// True once the sent message `id_hex` has a stored receipt.
    pub fn delivered(&self, id_hex: &str) -> bool {
        let id = hex::decode(id_hex).expect("hex id");
        self.ctx().store.sent(&id).expect("store").is_some_and(|s| {
            trm_node::store::SentState::from_u32(s.state) == trm_node::store::SentState::Delivered
        })
    }

    /// The card file bytes.
    pub fn card(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("card.trm")).unwrap()
    }

    /// The node's keys, read from its folder.
    pub fn keys(&self) -> NodeKeys {
        let cfg = trm_node::base::config::NodeConfig::load(&self.dir).unwrap();
        NodeKeys::load(&self.dir, &cfg).unwrap()
    }

    /// One admin call as `cred`.
    pub async fn call_as(&self, cred: &Credential, call: Call) -> Result<Value, ClientError> {
        let c = AdminClient::connect(cred).await?;
        let r = c.call(call).await;
        c.close().await;
        r
    }

    /// One admin call as the operator; panics on failure.
    pub async fn op(&self, call: Call) -> Value {
        self.call_as(&self.operator, call)
            .await
            .expect("operator call")
    }

    /// Issues a credential with `role`.
    pub async fn officer(&self, name: &str, role: &str) -> Credential {
        let cert = identity::self_signed(name, role).unwrap();
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
            country: v["country"].as_str().unwrap().into(),
            node: v["node"].as_str().unwrap().parse().unwrap(),
            node_cert_sha256: v["node_cert_sha256"].as_str().unwrap().into(),
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        }
    }

    /// Pins `other`'s card here.
    pub async fn pin(&self, other: &TestNode) {
        self.op(Call::PeerAdd(api::PeerAdd {
            card: other.card(),
            ..Default::default()
        }))
        .await;
    }

    pub fn ctx(&self) -> &trm_node::node::Ctx {
        &self.handle.as_ref().expect("running").ctx
    }
}

/// Pins every node to every other.
pub async fn pin_all(nodes: &[&TestNode]) {
    for a in nodes {
        for b in nodes {
            if a.country != b.country {
                a.pin(b).await;
            }
        }
    }
}

/// Waits until `f` is true, up to `secs` seconds.
pub async fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    f()
}

/// The calendar date (`YYYY-MM-DD`, UTC) `days` from today on the node's clock: a due date
/// that stays in the future (or the past) whichever day the tests run.
pub fn date_in_days(days: i64) -> String {
    let ms = trm_node::base::time::now_ms() + days * 86_400_000;
    trm_proto::date::format_ms(ms)[..10].to_string()
}

/// Waits until the node's clock (the system clock) is past `until_ms`.
pub async fn wait_past(until_ms: i64) {
    while trm_node::base::time::now_ms() <= until_ms {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The example case file text.
pub fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(path).expect("example file")
}

/// Makes the case document `v` an unaccompanied child's (synthetic), with the guardian's
/// written consent to share the child section.
pub fn make_child(v: &mut Value) {
    v["child"] = serde_json::json!({
        "minor": true,
        "unaccompanied": true,
        "guardian_appointed": true,
        "best_interests_status": "in_progress",
        "consent_for_child_by": "guardian",
    });
    v["consent"]["child"] = serde_json::json!({
        "status": "given", "date": "2026-02-25", "form": "written", "by": "guardian"
    });
}

/// Writes the case document `v` to `dir/<case_ref>.json`; returns the path as text.
pub fn write_case(dir: &Path, case_ref: &str, v: &Value) -> String {
    let file = dir.join(format!("{case_ref}.json"));
    std::fs::write(&file, v.to_string()).expect("case file");
    file.display().to_string()
}

/// A minimal synthetic case with `case_ref`.
pub fn small_case(case_ref: &str) -> String {
    serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "urgency": "routine"
        },
        "exploitation": { "forms": ["labour"], "victim_status": "presumed" }
    })
    .to_string()
}

/// The example adult case with a different case reference (and optionally a different
/// family name).
pub fn adult_case(case_ref: &str, family_name: Option<&str>) -> String {
    let mut v: Value = serde_json::from_str(&example("adult-labour.json")).unwrap();
    v["reference"]["case_ref"] = Value::String(case_ref.into());
    if let Some(n) = family_name {
        v["identity"]["family_name"] = Value::String(n.into());
    }
    v.to_string()
}

/// A synthetic, obviously fictional case whose non-identifying fields (all released under the
/// default outgoing profile) hold about 1 KiB of values.
pub fn case_json(case_ref: &str, to: &str) -> String {
    let filler = |what: &str| {
        let mut s = format!("Synthetic benchmark text about {what}. ");
        while s.len() < 300 {
            s.push_str("Fictional details for load testing only. ");
        }
        s.trim_end().to_string()
    };
    serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Benchmark Unit",
            "receiving_country": to,
            "date": "2026-11-01",
            "urgency": "routine",
            "reason": filler("the reason for referral"),
        },
        "exploitation": {
            "forms": ["labour"],
            "victim_status": "presumed",
            "recruitment_method": filler("recruitment"),
            "route": filler("the route"),
        }
    })
    .to_string()
}

/// Every category name.
pub fn all_categories() -> Vec<String> {
    trm_proto::template::ALL_CATEGORIES
        .iter()
        .map(|c| trm_proto::template::category_name(*c).to_string())
        .collect()
}

/// Searches every file under `dir` for `needle`; returns the files that contain it.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

/// A raw peer connection to `to` presenting `cert`/`key`, pinned to `to`'s certificate.
pub async fn raw_conn_with(
    to: &TestNode,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<quinn::Connection, String> {
    let fp = trm_proto::signing::sha256(&to.keys().tls_cert);
    let cfg = trm_node::net::tls::client_config(
        cert,
        key,
        fp,
        trm_proto::ALPN_PEER,
        trm_node::net::tls::QuicLimits {
            max_streams: 8,
            window: 2 << 20,
            idle_timeout: Duration::from_secs(5),
        },
    )
    .map_err(|e| e.to_string())?;
    let sock = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let ep = trm_node::net::transport::endpoint(sock, None).map_err(|e| e.to_string())?;
    ep.connect_with(cfg, to.peer_addr, trm_node::net::tls::SERVER_NAME)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())
}

/// A raw peer connection from `from` (its real certificate) to `to`.
pub async fn raw_peer(from: &TestNode, to: &TestNode) -> quinn::Connection {
    let k = from.keys();
    raw_conn_with(to, k.tls_cert.clone(), k.tls_key.clone_key())
        .await
        .expect("raw peer connection")
}

/// An envelope from `from` to `to`, signed with `from`'s key, with a fresh id.
pub fn signed_envelope(
    from: &TestNode,
    to: &str,
    case_ref: &str,
    payload: pb::body::Payload,
    in_reply_to: Vec<u8>,
) -> pb::Envelope {
    let body = pb::Body {
        version: 1,
        message_id: rand::random::<[u8; 16]>().to_vec(),
        sender: from.country.clone(),
        recipient: to.into(),
        created_ms: trm_node::base::time::now_ms(),
        in_reply_to,
        case_ref: case_ref.into(),
        payload: Some(payload),
    };
    sign_body(&from.keys(), &body)
}

/// Signs `body` as an envelope with `keys`.
pub fn sign_body(keys: &NodeKeys, body: &pb::Body) -> pb::Envelope {
    let b = body.encode_to_vec();
    pb::Envelope {
        signature: trm_proto::signing::sign(&keys.signing, trm_proto::signing::Tag::Envelope, &b)
            .to_vec(),
        signer: keys.public_key().to_vec(),
        body: b,
    }
}

/// Sends one transmission on `conn` and reads the answer.
pub async fn transmit(conn: &quinn::Connection, t: pb::Transmission) -> pb::PeerResponse {
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(t)),
    };
    trm_node::net::transport::request(conn, &req, 1 << 20, Duration::from_secs(5))
        .await
        .expect("peer answer")
}

/// The rejection in `resp` (panics on a receipt).
pub fn rejection_of(resp: &pb::PeerResponse) -> pb::Rejection {
    match &resp.kind {
        Some(pb::peer_response::Kind::Rejection(s)) => {
            pb::Rejection::decode(s.body.as_slice()).expect("rejection body")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Two started nodes, pinned to each other, in a fresh temporary folder.
pub async fn started_pair(a: &str, b: &str) -> (tempfile::TempDir, TestNode, TestNode) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (x, y) = start_pair_in(tmp.path(), a, b, |_| {}).await;
    (tmp, x, y)
}

/// Two nodes in `root`, each changed by `configure` before it starts, started and pinned to
/// each other.
pub async fn start_pair_in(
    root: &Path,
    a: &str,
    b: &str,
    configure: impl Fn(&TestNode),
) -> (TestNode, TestNode) {
    let mut x = TestNode::init(root, a);
    let mut y = TestNode::init(root, b);
    configure(&x);
    configure(&y);
    x.start().await;
    y.start().await;
    pin_all(&[&x, &y]).await;
    (x, y)
}

/// Records [`small_case`] `case_ref` as `officer` and refers it to `to`; returns the message
/// id (hex) once it is durably in the outbox.
pub async fn create_and_send(
    node: &TestNode,
    officer: &Credential,
    case_ref: &str,
    to: &str,
) -> String {
    node.ok(
        officer,
        Call::CaseCreate(api::CaseCreate {
            json: small_case(case_ref),
        }),
    )
    .await;
    let v = node
        .ok(
            officer,
            Call::ReferralSend(api::ReferralSend {
                case_id: case_ref.into(),
                to: to.into(),
            }),
        )
        .await;
    v["message"].as_str().expect("message id").to_string()
}

/// Records and sends `n` referrals to `to` on one open admin connection (cases
/// `{prefix}-000000`, … with the benchmark's synthetic case); their message ids.
pub async fn send_referrals_on(
    client: &trm_node::admin::client::AdminClient,
    prefix: &str,
    n: usize,
    to: &str,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        // One case per referral: the lifecycle allows one open referral per case.
        let case_ref = format!("{prefix}-{i:06}");
        client
            .call(Call::CaseCreate(api::CaseCreate {
                json: case_json(&case_ref, to),
            }))
            .await
            .expect("case create");
        let v = client
            .call(Call::ReferralSend(api::ReferralSend {
                case_id: case_ref,
                to: to.into(),
            }))
            .await
            .expect("referral send");
        ids.push(v["message"].as_str().expect("message id").to_string());
    }
    ids
}

/// [`open_pair`] in a fresh temporary folder, with an officer on each side registered through
/// `trm-admin officer add` (Olivia in Italy, Otto in Albania): what the officer suites drive
/// the real binary with.
pub struct OfficerPair {
    /// The folder of both nodes and the credential files.
    pub tmp: tempfile::TempDir,
    /// Italy.
    pub it: TestNode,
    /// Albania.
    pub al: TestNode,
    /// Italy's officer's credential file.
    pub olivia: PathBuf,
    /// Albania's officer's credential file.
    pub otto: PathBuf,
}

/// See [`OfficerPair`].
pub async fn officer_pair() -> OfficerPair {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (it, al) = open_pair(tmp.path()).await;
    let olivia = tmp.path().join("olivia.cred");
    let otto = tmp.path().join("otto.cred");
    for (name, file, node) in [
        ("Olivia Example", &olivia, &it),
        ("Otto Example", &otto, &al),
    ] {
        let op = node.dir.join(trm_node::identity::OPERATOR_CRED);
        bins::enrol(&op, name, "officer", file).await;
    }
    OfficerPair {
        tmp,
        it,
        al,
        olivia,
        otto,
    }
}

/// Italy and Albania started and pinned to each other in `root`, Italy sending every category
/// to Albania (the officer suites, which show what arrives).
pub async fn open_pair(root: &Path) -> (TestNode, TestNode) {
    let mut it = TestNode::init(root, "IT");
    let mut al = TestNode::init(root, "AL");
    it.configure(|c| {
        c.outgoing.insert("AL".into(), all_categories());
    });
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    (it, al)
}
