//! Test support: real nodes on loopback, in temporary folders, with ports chosen by the OS.
#![allow(missing_docs, unreachable_pub)] // test support crate

pub mod proxy;
pub mod raw;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use trm_node::admin::client::{AdminClient, ClientError};
use trm_node::identity::{self, Credential, NodeKeys};
use trm_node::{NodeHandle, StartOptions};
use trm_proto::admin as api;
use trm_proto::admin::admin_request::Call;

/// Installs the crypto provider once per test process.
pub fn setup() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = std::panic::catch_unwind(|| {});
}

/// A node under test.
pub struct TestNode {
    pub country: String,
    pub dir: PathBuf,
    pub peer_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub operator: Credential,
    pub handle: Option<NodeHandle>,
}

fn free_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind loopback")
}

impl TestNode {
    /// Initialises a node folder under `root` (not started).
    pub fn init(root: &Path, country: &str) -> Self {
        setup();
        let dir = root.join(country);
        let (p, a) = (free_socket(), free_socket());
        let (peer_addr, admin_addr) = (p.local_addr().unwrap(), a.local_addr().unwrap());
        drop((p, a));
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
        }
    }

    /// Edits node.toml before start.
    pub fn edit_config(&self, f: impl FnOnce(&str) -> String) {
        let path = self.dir.join("node.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, f(&text)).unwrap();
    }

    /// Starts the node on its addresses.
    pub async fn start(&mut self) {
        let mut last = None;
        for _ in 0..50 {
            let (p, a) = (
                UdpSocket::bind(self.peer_addr),
                UdpSocket::bind(self.admin_addr),
            );
            match (p, a) {
                (Ok(p), Ok(a)) => {
                    let h = trm_node::start(
                        &self.dir,
                        StartOptions {
                            peer_socket: Some(p),
                            admin_socket: Some(a),
                            clock: None,
                        },
                    )
                    .await
                    .expect("start node");
                    self.handle = Some(h);
                    return;
                }
                (p, a) => last = Some(format!("{:?} {:?}", p.err(), a.err())),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot rebind {}: {last:?}", self.country);
    }

    /// Stops the node cleanly.
    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    /// Stops the node cleanly, consuming it.
    pub async fn stop_owned(mut self) {
        self.stop().await;
    }

    /// The card file bytes.
    pub fn card(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("card.trm")).unwrap()
    }

    /// The node's keys, read from its folder.
    pub fn keys(&self) -> NodeKeys {
        let cfg = trm_node::config::NodeConfig::load(&self.dir).unwrap();
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
        self.op(Call::PeerAdd(api::PeerAdd { card: other.card() }))
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

/// The example case file text.
pub fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(path).expect("example file")
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
