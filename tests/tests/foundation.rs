//! Foundation: two countries exchange a signed referral over mutually authenticated QUIC,
//! durably. Real nodes on loopback, ports chosen by the OS.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use trm_node::store::SentState;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb::{self, peer_response, RejectReason};
use trm_proto::signing::{self, Tag};
use trm_tests::*;

fn sent_state(node: &TestNode, id_hex: &str) -> SentState {
    let id = hex::decode(id_hex).unwrap();
    SentState::from_u32(node.ctx().store.sent(&id).unwrap().unwrap().state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_referral_is_stored_and_receipted() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let officer = it.officer("Officer Example", "officer").await;
    let id = create_and_send(&it, &officer, "IT-TEST-0001", "AL").await;
    assert!(
        wait_until(10, || sent_state(&it, &id) == SentState::Delivered).await,
        "delivered"
    );
    assert_eq!(al.ctx().store.received_count(), 1);

    // The receipt is signed by Albania and names the message and its envelope hash.
    let rec = it
        .ctx()
        .store
        .sent(&hex::decode(&id).unwrap())
        .unwrap()
        .unwrap();
    let receipt = pb::Signed::decode(rec.answer.as_slice()).unwrap();
    let al_key = al.keys().signing.verifying_key();
    signing::verify(&al_key, Tag::Receipt, &receipt.body, &receipt.signature)
        .expect("receipt signature");
    let r = pb::Receipt::decode(receipt.body.as_slice()).unwrap();
    let env = pb::Envelope::decode(rec.envelope.as_slice()).unwrap();
    assert_eq!(r.message_id, hex::decode(&id).unwrap());
    assert_eq!(
        r.envelope_hash,
        signing::envelope_hash(&env.body, &env.signature).to_vec()
    );

    // Albania's officer sees it, verified.
    let al_officer = al.officer("Officer Example AL", "officer").await;
    let shown = al
        .call_as(
            &al_officer,
            Call::MessageShow(api::MessageShow { id: id.clone() }),
        )
        .await
        .unwrap();
    assert_eq!(shown["verification"]["signature"], "valid");
    assert_eq!(shown["kind"], "referral");
    assert_eq!(shown["fields"]["reference"]["case_ref"], "IT-TEST-0001");
    let status = it
        .call_as(&officer, Call::Status(api::Status {}))
        .await
        .unwrap();
    assert_eq!(status["peers"][0]["state"], "reachable");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_when_sent_is_delivered_exactly_once_when_it_starts() {
    let (_tmp, it, mut al) = started_pair("IT", "AL").await;
    al.stop().await;
    let officer = it.officer("Officer Example", "officer").await;
    let id = create_and_send(&it, &officer, "IT-TEST-0002", "AL").await;
    // Status shows the peer failing while it is down.
    assert!(wait_until(10, || it.ctx().peers.health("AL").failing_since_ms != 0).await);
    let status = it
        .call_as(&officer, Call::Status(api::Status {}))
        .await
        .unwrap();
    assert_ne!(status["peers"][0]["state"], "reachable");
    assert_eq!(status["peers"][0]["outbox"], 1);
    al.start().await;
    assert!(wait_until(30, || sent_state(&it, &id) == SentState::Delivered).await);
    assert_eq!(al.ctx().store.received_count(), 1);
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_restarted_with_full_outbox_delivers_each_exactly_once() {
    let (_tmp, mut it, mut al) = started_pair("IT", "AL").await;
    al.stop().await;
    let officer = it.officer("Officer Example", "officer").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create_and_send(&it, &officer, &format!("IT-TEST-10{i}"), "AL").await);
    }
    it.stop().await;
    al.start().await;
    it.start().await;
    assert!(
        wait_until(30, || ids
            .iter()
            .all(|id| sent_state(&it, id) == SentState::Delivered))
        .await
    );
    assert_eq!(al.ctx().store.received_count(), 5);
    assert!(it.ctx().store.outbox_depths().unwrap().is_empty());
    it.finish().await;
    al.finish().await;
}

async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<pb::PeerResponse, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(bytes).await.map_err(|e| e.to_string())?;
    let _ = send.finish();
    let frame = trm_node::net::transport::read_frame(&mut recv, 1 << 20, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    pb::PeerResponse::decode(frame.as_slice()).map_err(|e| e.to_string())
}

fn referral_body(from: &str, to: &str, id: [u8; 16]) -> pb::Body {
    pb::Body {
        version: 1,
        message_id: id.to_vec(),
        sender: from.into(),
        recipient: to.into(),
        created_ms: trm_node::base::time::now_ms(),
        in_reply_to: vec![],
        case_ref: "IT-RAW-0001".into(),
        payload: Some(pb::body::Payload::Referral(pb::Referral {
            template_version: "trm-template/1".into(),
            digests: vec![],
            ..Default::default()
        })),
    }
}

fn frame(t: pb::Transmission) -> Vec<u8> {
    trm_proto::frame::encode(&pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(t)),
    })
}

fn rejection(resp: &pb::PeerResponse, from: &TestNode) -> pb::Rejection {
    match &resp.kind {
        Some(peer_response::Kind::Rejection(s)) => {
            signing::verify(
                &from.keys().signing.verifying_key(),
                Tag::Rejection,
                &s.body,
                &s.signature,
            )
            .expect("rejection is signed by the receiver");
            pb::Rejection::decode(s.body.as_slice()).unwrap()
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpinned_and_certificateless_clients_are_refused() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    // A certificate of no pinned peer.
    let stranger = trm_node::identity::self_signed("stranger", "node").unwrap();
    let cert = rustls::pki_types::CertificateDer::from(stranger.cert_der.clone());
    let key = {
        use rustls::pki_types::pem::PemObject;
        rustls::pki_types::PrivateKeyDer::from_pem_slice(stranger.key_pem.as_bytes()).unwrap()
    };
    let r = match raw_conn_with(&al, cert, key).await {
        Err(e) => Err(e),
        Ok(c) => exchange(&c, &frame(pb::Transmission::default()))
            .await
            .map(|_| ()),
    };
    assert!(r.is_err(), "unpinned client must be refused");

    // No client certificate at all.
    let fp = signing::sha256(&al.keys().tls_cert);
    let provider = trm_node::net::tls::provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(trm_node::net::tls::PinnedServerVerifier::new(
            fp, provider,
        )))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![trm_proto::ALPN_PEER.to_vec()];
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(cfg).unwrap();
    let ep =
        trm_node::net::transport::endpoint(std::net::UdpSocket::bind("127.0.0.1:0").unwrap(), None)
            .unwrap();
    let r = match ep
        .connect_with(quinn::ClientConfig::new(Arc::new(qc)), al.peer_addr, "x")
        .unwrap()
        .await
    {
        Err(e) => Err(e.to_string()),
        Ok(c) => exchange(&c, &frame(pb::Transmission::default()))
            .await
            .map(|_| ()),
    };
    assert!(r.is_err(), "client without certificate must be refused");
    assert_eq!(al.ctx().store.received_count(), 0);
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_sender_tampered_signature_and_oversized_frames_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    let mut fr = TestNode::init(tmp.path(), "FR");
    it.start().await;
    al.start().await;
    fr.start().await;
    pin_all(&[&it, &al, &fr]).await;
    let itk = it.keys();
    let conn = raw_conn_with(&al, itk.tls_cert.clone(), itk.tls_key.clone_key())
        .await
        .unwrap();
    let before = trm_tests::recv::StoreView::of(&al);

    // Italy's connection claiming France as the sender, signed with France's real key.
    let frk = fr.keys();
    let t = pb::Transmission {
        envelope: Some(sign_body(&frk, &referral_body("FR", "AL", [1; 16]))),
        disclosures: vec![],
    };
    let r = rejection(&exchange(&conn, &frame(t)).await.unwrap(), &al);
    assert_eq!(r.reason, RejectReason::SenderMismatch as i32);

    // Recipient is not this node.
    let t = pb::Transmission {
        envelope: Some(sign_body(&itk, &referral_body("IT", "FR", [2; 16]))),
        disclosures: vec![],
    };
    let r = rejection(&exchange(&conn, &frame(t)).await.unwrap(), &al);
    assert_eq!(r.reason, RejectReason::WrongRecipient as i32);

    // A tampered signature.
    let mut env = sign_body(&itk, &referral_body("IT", "AL", [3; 16]));
    env.signature[10] ^= 0x40;
    let r = rejection(
        &exchange(
            &conn,
            &frame(pb::Transmission {
                envelope: Some(env),
                disclosures: vec![],
            }),
        )
        .await
        .unwrap(),
        &al,
    );
    assert_eq!(r.reason, RejectReason::BadSignature as i32);

    // A huge length prefix: refused without reading (or allocating) it.
    let r = rejection(
        &exchange(&conn, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3])
            .await
            .unwrap(),
        &al,
    );
    assert_eq!(r.reason, RejectReason::TooLarge as i32);
    // An oversized frame actually sent.
    let mut big = (2u32 << 20).to_be_bytes().to_vec();
    big.extend(std::iter::repeat_n(0u8, 64 << 10));
    let r = rejection(&exchange(&conn, &big).await.unwrap(), &al);
    assert_eq!(r.reason, RejectReason::TooLarge as i32);

    assert_eq!(al.ctx().store.received_count(), 0, "nothing stored");
    before.assert_only_rejections_logged(&al, 5);
    for n in [it, al, fr] {
        n.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_message_id_twice_is_stored_once_with_the_same_receipt() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let itk = it.keys();
    let conn = raw_conn_with(&al, itk.tls_cert.clone(), itk.tls_key.clone_key())
        .await
        .unwrap();
    let c = trm_proto::commit::commit(
        &[(
            "reference.case_ref".to_string(),
            b"\"IT-RAW-0001\"".to_vec(),
        )],
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let mut body = referral_body("IT", "AL", [9; 16]);
    if let Some(pb::body::Payload::Referral(r)) = &mut body.payload {
        r.digests = c.digest_bytes();
    }
    let t = pb::Transmission {
        envelope: Some(sign_body(&itk, &body)),
        disclosures: c.disclosures.clone(),
    };
    let first = exchange(&conn, &frame(t.clone())).await.unwrap();
    let second = exchange(&conn, &frame(t)).await.unwrap();
    assert!(
        matches!(first.kind, Some(peer_response::Kind::Receipt(_))),
        "{first:?}"
    );
    assert_eq!(first, second, "the same receipt, byte for byte");
    assert_eq!(al.ctx().store.received_count(), 1);
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_without_the_right_role_is_refused() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let auditor = it.officer("Auditor Example", "auditor").await;
    let err = it
        .call_as(
            &auditor,
            Call::CaseCreate(api::CaseCreate {
                json: small_case("IT-TEST-0003"),
            }),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("needs role officer"), "{msg}");
    let officer = it.officer("Officer Example", "officer").await;
    let err = it
        .call_as(
            &officer,
            Call::PeerRemove(api::PeerRemove {
                country: "AL".into(),
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs role operator"), "{err}");
    assert!(it.ctx().peers.get("AL").is_some(), "nothing changed");
    it.finish().await;
    al.finish().await;
}
