//! A fake receiving node for the sender-side tests (issue 10, items 4 and 6): a QUIC server on
//! loopback with a made-up identity card, pinned by the node under test, that answers each
//! transmission and consistency request as a test script says (valid, invalid, malformed or
//! not at all). And the `trm-admin` binary for the bad-input tests.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use prost::Message;
use trm_node::net::tls::{Pin, Pins, QuicLimits};
use trm_proto::pb::{self, peer_request, peer_response};
use trm_proto::signing::{self, Tag};

use crate::raw::{fake_peer, TlsId};

/// What the node under test asked.
#[derive(Clone, Debug)]
pub enum Ask {
    /// A transmission: its body, envelope hash and how many times this message id was sent
    /// (1 for the first).
    Message {
        body: Box<pb::Body>,
        hash: [u8; 32],
        attempt: u32,
    },
    /// A consistency request.
    Consistency(pb::ConsistencyRequest),
}

/// What the fake receiver answers.
pub enum Reply {
    /// A well-formed answer frame.
    Answer(pb::PeerResponse),
    /// These bytes as the frame's content (e.g. not a `PeerResponse`).
    RawFrame(Vec<u8>),
    /// No answer: the stream is finished without a frame.
    Nothing,
}

type Script = dyn Fn(&FakeIdentity, &Ask) -> Reply + Send + Sync;

/// The made-up peer's identity: country, signing key, card.
pub struct FakeIdentity {
    pub country: String,
    /// The country of the node under test (the sender of every message).
    pub sender: String,
    pub key: SigningKey,
    pub card: Vec<u8>,
}

impl FakeIdentity {
    fn signed(&self, tag: Tag, body: Vec<u8>) -> pb::Signed {
        pb::Signed {
            signature: signing::sign(&self.key, tag, &body).to_vec(),
            signer: self.key.verifying_key().to_bytes().to_vec(),
            body,
        }
    }

    /// A signed checkpoint of this peer's (made-up) log.
    pub fn checkpoint(&self, size: u64, time_ms: i64) -> pb::Signed {
        let body = pb::Checkpoint {
            country: self.country.clone(),
            tree_size: size,
            root_hash: signing::sha256(&size.to_be_bytes()).to_vec(),
            time_ms,
            ..Default::default()
        }
        .encode_to_vec();
        self.signed(Tag::Checkpoint, body)
    }

    /// A receipt for the message, signed by this peer, received at `received_ms`.
    pub fn receipt(
        &self,
        body: &pb::Body,
        hash: &[u8; 32],
        received_ms: i64,
        checkpoint: Option<pb::Signed>,
    ) -> Reply {
        let r = pb::Receipt {
            message_id: body.message_id.clone(),
            envelope_hash: hash.to_vec(),
            receiver: self.country.clone(),
            sender: self.sender.clone(),
            received_ms,
            outcome: 1,
            checkpoint,
        };
        Reply::Answer(pb::PeerResponse {
            kind: Some(peer_response::Kind::Receipt(
                self.signed(Tag::Receipt, r.encode_to_vec()),
            )),
        })
    }

    /// A signed rejection with these fields.
    pub fn rejection(&self, r: pb::Rejection) -> Reply {
        Reply::Answer(pb::PeerResponse {
            kind: Some(peer_response::Kind::Rejection(
                self.signed(Tag::Rejection, r.encode_to_vec()),
            )),
        })
    }

    /// A rejection of `body` (id and hash filled in), signed by this peer.
    pub fn rejection_of(
        &self,
        body: &pb::Body,
        hash: &[u8; 32],
        reason: pb::RejectReason,
    ) -> pb::Rejection {
        pb::Rejection {
            message_id: body.message_id.clone(),
            envelope_hash: hash.to_vec(),
            rejecter: self.country.clone(),
            sender: self.sender.clone(),
            rejected_ms: trm_node::base::time::now_ms(),
            reason: reason as i32,
            detail: "synthetic".into(),
            fields: vec![],
        }
    }
}

/// A fake receiving node, serving until dropped.
pub struct FakeReceiver {
    pub id: Arc<FakeIdentity>,
    pub addr: SocketAddr,
    /// Every question asked, in order.
    pub asked: Arc<Mutex<Vec<Ask>>>,
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeReceiver {
    fn drop(&mut self) {
        self.endpoint.close(0u32.into(), b"done");
        self.task.abort();
    }
}

impl FakeReceiver {
    /// Starts a fake `country` node whose one signing key is valid from `key_from_ms` on,
    /// accepting connections only from the TLS certificate `sender_cert` of `sender`.
    pub fn start(
        country: &str,
        key_from_ms: i64,
        sender: &str,
        sender_cert: &[u8],
        script: impl Fn(&FakeIdentity, &Ask) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let now = trm_node::base::time::now_ms();
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        let addr = socket.local_addr().unwrap();
        let fake = fake_peer(
            country,
            key_from_ms,
            now + 30 * 86_400_000,
            &[(key_from_ms, 0)],
        );
        // The same card, announcing this server's address.
        let signed = pb::Signed::decode(fake.card.as_slice()).unwrap();
        let mut card = pb::Card::decode(signed.body.as_slice()).unwrap();
        card.addresses = vec![addr.to_string()];
        let key = fake.keys.last().unwrap().clone();
        let card = trm_proto::card::sign_card(&card, &key);
        let id = Arc::new(FakeIdentity {
            country: country.into(),
            sender: sender.into(),
            key,
            card,
        });
        let pins = Pins::new();
        pins.insert(
            sender_cert,
            Pin {
                who: sender.into(),
                not_before_ms: 0,
                not_after_ms: i64::MAX,
            },
        );
        let tls: TlsId = fake.tls;
        let cfg = trm_node::net::tls::server_config(
            tls.cert.clone(),
            tls.key(),
            pins,
            trm_proto::ALPN_PEER,
            QuicLimits {
                max_streams: 256,
                window: 2 << 20,
                idle_timeout: Duration::from_secs(10),
            },
        )
        .unwrap();
        let endpoint = trm_node::net::transport::endpoint(socket, Some(cfg)).unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let task = tokio::spawn(serve(endpoint.clone(), id.clone(), script, asked.clone()));
        Self {
            id,
            addr,
            asked,
            endpoint,
            task,
        }
    }

    /// How many times a message with this case reference was received.
    pub fn attempts(&self, case_ref: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|a| matches!(a, Ask::Message { body, .. } if body.case_ref == case_ref))
            .count()
    }

    /// How many consistency requests were received.
    pub fn consistency_requests(&self) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|a| matches!(a, Ask::Consistency(_)))
            .count()
    }
}

async fn serve(
    endpoint: quinn::Endpoint,
    id: Arc<FakeIdentity>,
    script: Arc<Script>,
    asked: Arc<Mutex<Vec<Ask>>>,
) {
    let counts: Arc<Mutex<HashMap<Vec<u8>, u32>>> = Arc::default();
    while let Some(incoming) = endpoint.accept().await {
        let (id, script, asked, counts) =
            (id.clone(), script.clone(), asked.clone(), counts.clone());
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let (id, script, asked, counts) =
                    (id.clone(), script.clone(), asked.clone(), counts.clone());
                tokio::spawn(async move {
                    let Ok(bytes) = trm_node::net::transport::read_frame(
                        &mut recv,
                        4 << 20,
                        Duration::from_secs(10),
                    )
                    .await
                    else {
                        return;
                    };
                    let Ok(req) = pb::PeerRequest::decode(bytes.as_slice()) else {
                        return;
                    };
                    let ask = match req.kind {
                        Some(peer_request::Kind::Transmission(t)) => {
                            let Some(env) = t.envelope else { return };
                            let Ok(body) = pb::Body::decode(env.body.as_slice()) else {
                                return;
                            };
                            let hash = signing::envelope_hash(&env.body, &env.signature);
                            let attempt = {
                                let mut c = counts.lock().unwrap();
                                let n = c.entry(body.message_id.clone()).or_default();
                                *n += 1;
                                *n
                            };
                            Ask::Message {
                                body: Box::new(body),
                                hash,
                                attempt,
                            }
                        }
                        Some(peer_request::Kind::Consistency(c)) => Ask::Consistency(c),
                        None => return,
                    };
                    let reply = script(&id, &ask);
                    asked.lock().unwrap().push(ask);
                    match reply {
                        Reply::Answer(r) => {
                            let _ = trm_node::net::transport::write_message(&mut send, &r).await;
                        }
                        Reply::RawFrame(b) => {
                            let mut f = (b.len() as u32).to_be_bytes().to_vec();
                            f.extend_from_slice(&b);
                            let _ = send.write_all(&f).await;
                            let _ = send.finish();
                        }
                        Reply::Nothing => {
                            let _ = send.finish();
                        }
                    }
                    // Let the answer leave before the stream is dropped.
                    let _ = send.stopped().await;
                });
            }
        });
    }
}

/// Runs `trm-admin` with `args` (bounded in time); returns exit code, stdout and stderr.
pub fn admin(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let r = crate::bins::run("trm-admin", args);
    (r.code.unwrap_or(-1), r.stdout, r.stderr)
}
