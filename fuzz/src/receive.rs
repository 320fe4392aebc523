//! The receive path's checks against a fixed node state.
//!
//! `AL` is a real node (`trm_node::start` on loopback, in a temporary folder) with one pinned
//! peer `IT` (a second node folder that is never started) and a few referral threads between
//! them. [`check`] runs, on one decoded `Transmission`, what `node/src/receive.rs` runs before
//! anything is stored: envelope decoding, then the node's own `receive::check` (header,
//! freshness, key history, `verify_strict`, key announcements, and `lifecycle::check_incoming`:
//! thread transition, template of declared extensions, disclosure verification against the
//! signed digests, acceptance profile, field values, directory updates) on the node's real
//! store. Sealing, the commit and the receipt are not run (they write).

use std::sync::{Arc, OnceLock};

use ed25519_dalek::SigningKey;
use prost::Message;
use rand::SeedableRng;
use trm_node::admin::{Caller, Role};
use trm_node::identity::{self, NodeKeys};
use trm_node::referral::lifecycle::Checked;
use trm_node::node::Ctx;
use trm_node::base::vocab::Refusal;
use trm_node::store::{Op, ReceivedRecord, ThreadRecord};
use trm_proto::admin::{admin_request::Call, AdminRequest, PeerAdd};
use trm_proto::commit;
use trm_proto::pb::{self, body::Payload, RejectReason};
use trm_proto::signing::{self, Tag};
use trm_proto::template::{self, Template};

/// This node.
pub const HERE: &str = "AL";
/// The pinned peer whose messages are checked.
pub const PEER: &str = "IT";

/// A fixed thread between `AL` and `IT`: case reference, role on `AL`, state, referral id.
pub const THREADS: &[(&str, &str, &str, u8)] = &[
    ("IT-FUZZ-0001", "received", "pending", 1),
    ("IT-FUZZ-0002", "received", "accepted", 2),
    ("AL-FUZZ-0003", "sent", "pending", 3),
    ("AL-FUZZ-0004", "sent", "accepted", 4),
    ("IT-FUZZ-0005", "received", "closed", 5),
];

/// First byte of an input: bit 0 re-signs the (possibly normalised) body with the pinned
/// peer's current key, bit 1 normalises the header (version, sender, recipient, a 16-byte
/// message id, a creation time inside the key's validity) so that the fuzzer spends its time
/// on the payload rules instead of forging signatures.
pub const RESIGN: u8 = 1;
/// See [`RESIGN`].
pub const NORMALISE: u8 = 2;

/// The message id of the referral of fixed thread `n`.
pub fn referral_id(n: u8) -> Vec<u8> {
    vec![n; 16]
}

/// The synthetic case whose commitment the referral of `IT-FUZZ-0001` carries.
pub fn case_json() -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("../../examples/adult-labour.json")).expect("example");
    v["reference"]["case_ref"] = "IT-FUZZ-0001".into();
    v["reference"]["receiving_country"] = HERE.into();
    v.to_string()
}

/// The commitment of [`case_json`], with salts from a fixed seed so that seeds written by one
/// process verify in another.
pub fn commitment() -> commit::Commitment {
    let case = Template::core().parse_case(&case_json()).expect("case");
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    commit::commit(&case.committed_fields(), &mut rng).expect("commit")
}

/// The fixed state, built once per process.
pub struct Fixed {
    /// The running node's state.
    pub ctx: Arc<Ctx>,
    /// The peer's current signing key.
    pub peer_key: SigningKey,
    /// A creation time inside the peer key's validity.
    pub created_ms: i64,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

/// The fixed state (built on first use).
pub fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(build)
}

fn build() -> Fixed {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sock = || std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    let init = |cc: &str, p: &std::net::UdpSocket, a: &std::net::UdpSocket, acc| {
        let d = dir.path().join(cc);
        identity::init(
            &d,
            cc,
            &format!("{cc} fuzz unit"),
            p.local_addr().unwrap(),
            a.local_addr().unwrap(),
            acc,
        )
        .expect("init");
        d
    };
    // AL accepts every category but the last one, so that both answers are reachable.
    let acceptance: Vec<String> = template::ALL_CATEGORIES[..template::ALL_CATEGORIES.len() - 1]
        .iter()
        .map(|c| template::category_name(*c).to_string())
        .collect();
    let (p, a) = (sock(), sock());
    let here = init(HERE, &p, &a, Some(acceptance));
    let (ip, ia) = (sock(), sock());
    let peer = init(PEER, &ip, &ia, None);
    drop((ip, ia));
    let peer_cfg = trm_node::base::config::NodeConfig::load(&peer).expect("peer config");
    let peer_keys = NodeKeys::load(&peer, &peer_cfg).expect("peer keys");
    let card = std::fs::read(peer.join("card.trm")).expect("peer card");

    let ctx = rt.block_on(async {
        let h = trm_node::start(
            &here,
            trm_node::StartOptions {
                peer_socket: Some(p),
                admin_socket: Some(a),
                clock: None,
            },
        )
        .await
        .expect("start node");
        let ctx = h.ctx.clone();
        // The node runs for the life of the process.
        std::mem::forget(h);
        let operator = Caller {
            name: "fuzz operator".into(),
            role: Role::Operator,
        };
        let r = trm_node::admin::dispatch(
            &ctx,
            &operator,
            AdminRequest {
                call: Some(Call::PeerAdd(PeerAdd { card })),
            },
        )
        .await;
        assert!(r.ok, "pin the peer: {}", r.error);
        let created_ms = ctx.clock.now_ms();
        let referral = referral_envelope(&peer_keys.signing, created_ms);
        let mut ops = Vec::new();
        for &(case_ref, role, state, n) in THREADS {
            ops.push(Op::PutThread(ThreadRecord {
                peer: PEER.into(),
                case_ref: case_ref.into(),
                role: role.into(),
                referral_id: referral_id(n),
                state: state.into(),
                updated_ms: created_ms,
                phase: "identification".into(),
                ..Default::default()
            }));
        }
        ops.push(Op::Receive(ReceivedRecord {
            id: referral_id(1),
            peer: PEER.into(),
            kind: "referral".into(),
            envelope: referral.encode_to_vec(),
            received_ms: created_ms,
            case_ref: "IT-FUZZ-0001".into(),
            ..Default::default()
        }));
        ctx.store.commit(ops).await.expect("fixed threads");
        ctx
    });
    let created_ms = ctx.clock.now_ms() + 1;
    Fixed {
        ctx,
        peer_key: peer_keys.signing.clone(),
        created_ms,
        _rt: rt,
        _dir: dir,
    }
}

/// The body of a message from `IT` to `AL` about `case_ref`.
pub fn body(case_ref: &str, id: Vec<u8>, created_ms: i64, payload: Payload) -> pb::Body {
    pb::Body {
        version: trm_proto::PROTOCOL_VERSION,
        message_id: id,
        sender: PEER.into(),
        recipient: HERE.into(),
        created_ms,
        case_ref: case_ref.into(),
        payload: Some(payload),
        ..Default::default()
    }
}

/// The referral of `IT-FUZZ-0001` (the digests of [`commitment`]), signed by `key`.
pub fn referral_envelope(key: &SigningKey, created_ms: i64) -> pb::Envelope {
    let b = body(
        "IT-FUZZ-0001",
        referral_id(1),
        created_ms,
        Payload::Referral(pb::Referral {
            template_version: template::TEMPLATE_VERSION.into(),
            digests: commitment().digest_bytes(),
            ..Default::default()
        }),
    );
    sign(key, b.encode_to_vec())
}

/// An envelope of `body` signed by `key`.
pub fn sign(key: &SigningKey, body: Vec<u8>) -> pb::Envelope {
    pb::Envelope {
        signature: signing::sign(key, Tag::Envelope, &body).to_vec(),
        signer: key.verifying_key().to_bytes().to_vec(),
        body,
    }
}

/// Applies the first byte's flags ([`RESIGN`], [`NORMALISE`]) to a decoded transmission.
pub fn prepare(f: &Fixed, flags: u8, t: &mut pb::Transmission) {
    let Some(env) = t.envelope.as_mut() else {
        return;
    };
    if flags & NORMALISE != 0 {
        if let Ok(mut b) = pb::Body::decode(env.body.as_slice()) {
            b.version = trm_proto::PROTOCOL_VERSION;
            b.sender = PEER.into();
            b.recipient = HERE.into();
            b.message_id.resize(16, 0);
            b.created_ms = f.created_ms;
            env.body = b.encode_to_vec();
        }
    }
    if flags & RESIGN != 0 {
        *env = sign(&f.peer_key, std::mem::take(&mut env.body));
    }
}

fn refuse(reason: RejectReason, detail: &str) -> Refusal {
    Refusal::new(reason, detail)
}

/// The receive path's checks, in the node's order, up to (not including) the store write.
pub fn check(f: &Fixed, t: &pb::Transmission) -> Result<Checked, Refusal> {
    let ctx = &*f.ctx;
    let peer = PEER;
    let env = t
        .envelope
        .as_ref()
        .ok_or_else(|| refuse(RejectReason::Malformed, "no envelope"))?;
    let _hash = signing::envelope_hash(&env.body, &env.signature);
    let body = pb::Body::decode(env.body.as_slice())
        .map_err(|_| refuse(RejectReason::Malformed, "body does not decode"))?;
    // The duplicate lookup (read only).
    let _ = ctx.store.received(peer, &body.message_id);
    // The node's own checks (`receive::check`: header, freshness, key, signature, key
    // announcements, payload rules), exactly as the receive path runs them.
    let checked = trm_node::exchange::receive::check(ctx, peer, env, &body, t)?;
    // What sealing asks of the template for every stored value.
    for d in &t.disclosures {
        let _ = checked.template.category_of(&d.path);
    }
    Ok(checked)
}

/// The signed digests an accepted message's disclosures must verify against, if any.
pub fn signed_digests(f: &Fixed, body: &pb::Body) -> Option<Vec<Vec<u8>>> {
    match body.payload.as_ref()? {
        Payload::Referral(r) => Some(r.digests.clone()),
        Payload::FollowUp(u) => Some(u.digests.clone()),
        Payload::Disclosure(d) => {
            let rec = f.ctx.store.received(PEER, &d.referral_id).ok()??;
            let env = pb::Envelope::decode(rec.envelope.as_slice()).ok()?;
            match pb::Body::decode(env.body.as_slice()).ok()?.payload? {
                Payload::Referral(r) => Some(r.digests),
                _ => None,
            }
        }
        _ => None,
    }
}
