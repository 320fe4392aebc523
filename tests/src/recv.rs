//! Helpers for the receive-path integrity tests (`tests/tests/trust_recv.rs`).

use std::time::Duration;

use prost::Message;
use trm_node::store::ThreadRecord;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb;

use crate::*;

/// Everything a message can change on a receiving node, taken at one moment.
#[derive(Debug, PartialEq)]
pub struct StoreView {
    pub received: Vec<(String, Vec<u8>)>,
    pub threads: Vec<ThreadRecord>,
    pub deks: Vec<(String, i32)>,
    pub directory: Vec<(String, Vec<u8>)>,
    pub peers: Vec<(String, Vec<u8>)>,
    pub audit_len: u64,
}

impl StoreView {
    pub fn of(node: &TestNode) -> Self {
        let s = &node.ctx().store;
        let mut threads = s.threads().unwrap();
        threads.sort_by(|a, b| (&a.peer, &a.case_ref).cmp(&(&b.peer, &b.case_ref)));
        Self {
            received: s
                .inbox()
                .unwrap()
                .into_iter()
                .map(|r| (r.peer, r.id))
                .collect(),
            threads,
            deks: s
                .all_deks()
                .unwrap()
                .into_iter()
                .map(|(sc, c, _)| (sc, c))
                .collect(),
            directory: s.meta_prefix("directory/").unwrap(),
            peers: s
                .peers()
                .unwrap()
                .into_iter()
                .map(|(cc, p)| (cc, p.card))
                .collect(),
            audit_len: s.audit_len(),
        }
    }

    /// Asserts that nothing but `rejection_sent` audit entries (at most `rejections`) was
    /// added since `self` was taken: no message, thread, key, directory or peer change.
    pub fn assert_only_rejections_logged(&self, node: &TestNode, rejections: u64) {
        let now = Self::of(node);
        assert_eq!(now.received, self.received, "received messages changed");
        assert_eq!(now.threads, self.threads, "threads changed");
        assert_eq!(now.deks, self.deks, "sealed data keys changed");
        assert_eq!(now.directory, self.directory, "directory changed");
        assert_eq!(now.peers, self.peers, "pinned peers changed");
        let added = node.ctx().store.audit_entries(self.audit_len).unwrap();
        assert!(
            added.len() as u64 <= rejections,
            "{} audit entries added, at most {rejections} rejections expected",
            added.len()
        );
        for e in &added {
            assert_eq!(e.kind, "rejection_sent", "unexpected audit entry {e:?}");
        }
    }
}

/// The reason of the rejection answering `t` on `conn`.
pub async fn refused(conn: &quinn::Connection, t: pb::Transmission) -> pb::Rejection {
    rejection_of(&transmit(conn, t).await)
}

/// A transmission of `env` with `disclosures`.
pub fn tx(env: pb::Envelope, disclosures: Vec<pb::FieldDisclosure>) -> pb::Transmission {
    pb::Transmission {
        envelope: Some(env),
        disclosures,
    }
}

/// Sends a call that enqueues a message and waits until it is delivered; returns its id.
pub async fn delivered_call(
    node: &TestNode,
    cred: &trm_node::identity::Credential,
    call: Call,
) -> String {
    let v = node.ok(cred, call).await;
    let id = v["message"].as_str().expect("message id").to_string();
    assert!(
        wait_until(20, || node.delivered(&id)).await,
        "delivered: {v}"
    );
    id
}

/// `from` refers a fresh [`small_case`] to `to` and waits until it is delivered; returns the
/// referral id (hex).
pub async fn referred(
    from: &TestNode,
    cred: &trm_node::identity::Credential,
    case_ref: &str,
    to: &TestNode,
) -> String {
    let id = create_and_send(from, cred, case_ref, &to.country).await;
    assert!(
        wait_until(20, || from.delivered(&id)).await,
        "referral delivered"
    );
    id
}

/// `node` accepts the referral `referral` (hex id) and waits for delivery.
pub async fn accept(node: &TestNode, cred: &trm_node::identity::Credential, referral: &str) {
    delivered_call(
        node,
        cred,
        Call::ReferralAnswer(api::ReferralAnswer {
            referral: referral.into(),
            decline: false,
            responsible_institution: "Synthetic Unit".into(),
            focal_point: "duty officer".into(),
            reason: String::new(),
        }),
    )
    .await;
}

/// The state of `node`'s thread with `peer` about `case_ref` ("" if none).
pub fn state(node: &TestNode, peer: &str, case_ref: &str) -> String {
    node.ctx()
        .store
        .thread(peer, case_ref)
        .unwrap()
        .map(|t| t.state)
        .unwrap_or_default()
}

/// Sends `req` on a fresh stream of `conn` and reads the answer.
pub async fn request(conn: &quinn::Connection, req: &pb::PeerRequest) -> pb::PeerResponse {
    trm_node::net::transport::request(conn, req, 4 << 20, Duration::from_secs(20))
        .await
        .expect("peer answer")
}

/// The encoded signed answer in `resp`.
pub fn answer_bytes(resp: &pb::PeerResponse) -> Vec<u8> {
    match &resp.kind {
        Some(pb::peer_response::Kind::Receipt(s)) | Some(pb::peer_response::Kind::Rejection(s)) => {
            s.encode_to_vec()
        }
        other => panic!("no signed answer: {other:?}"),
    }
}

/// True if `resp` is a receipt.
pub fn is_receipt(resp: &pb::PeerResponse) -> bool {
    matches!(resp.kind, Some(pb::peer_response::Kind::Receipt(_)))
}

/// Sends `reqs` (request i on `conns[i % len]`) so that they complete at the same moment:
/// every frame but its last byte is written first, then every last byte. Returns the
/// answers in the order of `reqs`.
pub async fn at_once(
    conns: &[quinn::Connection],
    reqs: &[pb::PeerRequest],
) -> Vec<pb::PeerResponse> {
    let mut streams = Vec::new();
    for (i, req) in reqs.iter().enumerate() {
        let (mut send, recv) = conns[i % conns.len()].open_bi().await.expect("stream");
        let frame = trm_proto::frame::encode(req);
        send.write_all(&frame[..frame.len() - 1])
            .await
            .expect("write");
        streams.push((send, recv, frame[frame.len() - 1]));
    }
    // Let every handler reach its read of the last byte.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut recvs = Vec::new();
    for (mut send, recv, last) in streams {
        send.write_all(&[last]).await.expect("write");
        send.finish().expect("finish");
        recvs.push((send, recv));
    }
    let mut set = tokio::task::JoinSet::new();
    for (i, (send, mut recv)) in recvs.into_iter().enumerate() {
        set.spawn(async move {
            let _keep = send;
            let r: pb::PeerResponse =
                trm_node::net::transport::read_message(&mut recv, 4 << 20, Duration::from_secs(20))
                    .await
                    .expect("answer");
            (i, r)
        });
    }
    let mut out: Vec<Option<pb::PeerResponse>> = vec![None; reqs.len()];
    while let Some(r) = set.join_next().await {
        let (i, r) = r.expect("task");
        out[i] = Some(r);
    }
    out.into_iter().map(|r| r.expect("answer")).collect()
}
