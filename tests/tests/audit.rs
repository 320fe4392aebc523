//! Audit and non-repudiation: the Merkle log, checkpoints witnessed by peers, export and
//! offline verification, key rotation, revocation, and failing closed. Real nodes on loopback.

use std::path::Path;
use std::time::Duration;

use prost::Message;
use rand::Rng;
use trm_node::admin::client::AdminClient;
use trm_node::identity::Credential;
use trm_node::store::SentState;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::audit::{verify_bundle, Location, Summary};
use trm_proto::auditpb::{AuditBundle, AuditEntry};
use trm_proto::pb::{self, peer_response, RejectReason};
use trm_proto::signing::{self, Tag};
use trm_tests::auditx::{copy_dir, fast_pair};
use trm_tests::*;

async fn send(node: &TestNode, officer: &Credential, case_ref: &str, to: &str) -> Vec<u8> {
    hex::decode(create_and_send(node, officer, case_ref, to).await).unwrap()
}

fn state(node: &TestNode, id: &[u8]) -> SentState {
    SentState::from_u32(node.ctx().store.sent(id).unwrap().unwrap().state)
}

async fn delivered(node: &TestNode, id: &[u8]) {
    assert!(
        wait_until(15, || state(node, id) == SentState::Delivered).await,
        "message {} from {} not delivered",
        hex::encode(id),
        node.country
    );
}

/// Exports the node's audit bundle as `auditor`.
async fn export(node: &TestNode, auditor: &Credential) -> Vec<u8> {
    assert_eq!(auditor.country, node.country);
    let c = AdminClient::connect(auditor).await.expect("connect");
    let (_, data) = c
        .call_with_data(Call::AuditExport(api::AuditExport::default()))
        .await
        .expect("audit export");
    c.close().await;
    data
}

fn seen_size(node: &TestNode, peer: &str) -> u64 {
    node.ctx()
        .trust
        .record(peer)
        .and_then(|r| pb::Signed::decode(r.seen.as_slice()).ok())
        .and_then(|s| pb::Checkpoint::decode(s.body.as_slice()).ok())
        .map_or(0, |c| c.tree_size)
}

fn messages(s: &Summary, peer: &str, dir: &str) -> u64 {
    s.messages
        .iter()
        .filter(|((p, d, _), _)| p == peer && d == dir)
        .map(|(_, n)| *n)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_after_a_full_exchange_verifies_on_both_sides() {
    let (_tmp, it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    let o_al = al.officer("Officer Example AL", "officer").await;
    for (n, case) in ["IT-TEST-0101", "IT-TEST-0102"].iter().enumerate() {
        let id = send(&it, &o_it, case, "AL").await;
        delivered(&it, &id).await;
        assert!(n == 0 || seen_size(&it, "AL") > 0);
    }
    let id = send(&al, &o_al, "AL-TEST-0103", "IT").await;
    delivered(&al, &id).await;
    // Each witnessed the other's log, consistently.
    assert!(wait_until(10, || seen_size(&it, "AL") > 0 && seen_size(&al, "IT") > 0).await);
    assert!(!it.ctx().trust.is_held("AL") && !al.ctx().trust.is_held("IT"));

    for (node, peer, sent, received) in [(&it, "AL", 2, 1), (&al, "IT", 1, 2)] {
        let auditor = node.officer("Auditor Example", "auditor").await;
        let bundle = export(node, &auditor).await;
        let s = verify_bundle(&bundle)
            .unwrap_or_else(|f| panic!("{}'s bundle fails: {f}", node.country));
        assert_eq!(s.country, node.country);
        assert_eq!(messages(&s, peer, "sent"), sent, "{}", node.country);
        assert_eq!(messages(&s, peer, "received"), received, "{}", node.country);
        assert_eq!(s.kinds.get("receipt_received").copied(), Some(sent));
        assert_eq!(s.kinds.get("receipt_sent").copied(), Some(received));
        assert!(s.kinds.get("admin").copied().unwrap_or(0) >= 3);
        // A full export: every entry of the log up to the fresh checkpoint.
        assert_eq!(s.entries, s.tree_size);
        assert_eq!(s.first_index, Some(0));
        assert!(s.checkpoints >= 2);
        assert_eq!(s.peers, vec![peer.to_string()]);
        // An officer may not export.
        let officer = if node.country == "IT" { &o_it } else { &o_al };
        let refused = node
            .call_as(officer, Call::AuditExport(api::AuditExport::default()))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("auditor"), "{refused}");
    }
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_entries_signatures_checkpoints_or_key_histories_is_named() {
    let (_tmp, it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    let id = send(&it, &o_it, "IT-TEST-0201", "AL").await;
    delivered(&it, &id).await;
    let auditor = it.officer("Auditor Example", "auditor").await;
    let bytes = export(&it, &auditor).await;
    verify_bundle(&bytes).expect("untouched bundle verifies");

    // A large sample of single changed bytes anywhere: every one fails.
    let mut rng = seeded_rng("byte flips");
    for _ in 0..300 {
        let i = rng.gen_range(0..bytes.len());
        let mut bad = bytes.clone();
        bad[i] ^= 1 << rng.gen_range(0..8);
        assert!(
            verify_bundle(&bad).is_err(),
            "changed byte {i} still verifies"
        );
    }

    let bundle = AuditBundle::decode(bytes.as_slice()).unwrap();
    let entries: Vec<AuditEntry> = bundle
        .entries
        .iter()
        .map(|e| AuditEntry::decode(e.entry.as_slice()).unwrap())
        .collect();
    let position = |kind: &str| entries.iter().position(|e| e.kind == kind).unwrap();
    let check = |f: &dyn Fn(&mut AuditBundle)| {
        let mut b = bundle.clone();
        f(&mut b);
        verify_bundle(&b.encode_to_vec()).expect_err("tampered bundle verifies")
    };
    let in_entry = |pos: usize, f: &dyn Fn(&mut AuditEntry)| {
        check(&|b: &mut AuditBundle| {
            let mut e = entries[pos].clone();
            f(&mut e);
            b.entries[pos].entry = e.encode_to_vec();
        })
    };

    // An entry: an admin action attributed to someone else.
    let admin = position("admin");
    let f = in_entry(admin, &|e| e.officer = "Someone Else".into());
    assert_eq!(f.location, Location::Entry(entries[admin].index), "{f}");
    // A signature: the receipt's.
    let receipt = position("receipt_received");
    let f = in_entry(receipt, &|e| e.signature[10] ^= 4);
    assert_eq!(f.location, Location::Entry(entries[receipt].index), "{f}");
    // The signed envelope body of a sent message.
    let sent = position("sent");
    let f = in_entry(sent, &|e| {
        let n = e.signed_body.len();
        e.signed_body[n - 1] ^= 1
    });
    assert_eq!(f.location, Location::Entry(entries[sent].index), "{f}");
    // An inclusion proof.
    let f = check(&|b| b.entries[sent].inclusion[0][0] ^= 1);
    assert_eq!(f.location, Location::Entry(entries[sent].index), "{f}");
    // A checkpoint's signature.
    let f = check(&|b| {
        let mut s = pb::Signed::decode(b.checkpoints[0].as_slice()).unwrap();
        s.signature[0] ^= 1;
        b.checkpoints[0] = s.encode_to_vec();
    });
    assert!(
        matches!(f.location, Location::Checkpoint { position: 0, .. }),
        "{f}"
    );
    assert!(f.what.contains("signature"), "{f}");
    // A checkpoint dropped: the checkpoint chain shows the gap (sequence numbers).
    let f = check(&|b| {
        b.checkpoints.remove(1);
    });
    assert!(
        matches!(f.location, Location::Checkpoint { position: 1, .. }),
        "{f}"
    );
    // The node's key history: its first key made valid earlier than it was.
    let f = check(&|b| {
        let mut s = pb::Signed::decode(b.card.as_slice()).unwrap();
        let mut c = pb::Card::decode(s.body.as_slice()).unwrap();
        c.key_history[0].valid_from_ms -= 86_400_000;
        s.body = c.encode_to_vec();
        b.card = s.encode_to_vec();
    });
    assert_eq!(f.location, Location::Card, "{f}");
    // A peer's key history swapped for another key.
    let f = check(&|b| {
        let mut s = pb::Signed::decode(b.peer_cards[0].as_slice()).unwrap();
        let mut c = pb::Card::decode(s.body.as_slice()).unwrap();
        c.key_history[0].public_key = it.keys().public_key().to_vec();
        s.body = c.encode_to_vec();
        b.peer_cards[0] = s.encode_to_vec();
    });
    assert_eq!(f.location, Location::PeerCard(0), "{f}");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_restored_from_an_older_copy_is_caught_and_held_until_trusted() {
    let (tmp, it, mut al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    let id = send(&it, &o_it, "IT-TEST-0301", "AL").await;
    delivered(&it, &id).await;

    // Back up Albania's store while it is stopped.
    al.stop().await;
    let store = al.dir.join("store");
    let backup = tmp.path().join("al-store-backup");
    copy_dir(&store, &backup);
    // The whole folder is rolled back, rollback tripwire included (a store copied back alone
    // is refused at start: tests/tests/trust_audit.rs); only the witnesses can tell.
    let tripwire = al.dir.join("keys").join("last-checkpoint.pb");
    let tripwire_backup = tmp.path().join("al-tripwire-backup");
    std::fs::copy(&tripwire, &tripwire_backup).unwrap();
    let backed_up = trm_node::store::Store::open(&backup).unwrap().audit_len();
    al.start().await;

    // More exchanges: Italy sees Albania's log grow past the backup.
    for n in 0..5 {
        let id = send(&it, &o_it, &format!("IT-TEST-031{n}"), "AL").await;
        delivered(&it, &id).await;
        if seen_size(&it, "AL") > backed_up {
            break;
        }
    }
    assert!(seen_size(&it, "AL") > backed_up, "witness did not advance");
    assert!(!it.ctx().trust.is_held("AL"));

    // Albania is restored from the older copy and restarted.
    al.stop().await;
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&backup, &store);
    std::fs::copy(&tripwire_backup, &tripwire).unwrap();
    al.start().await;

    // At the next exchange Italy catches it.
    let id = send(&it, &o_it, "IT-TEST-0320", "AL").await;
    delivered(&it, &id).await;
    assert!(
        wait_until(10, || it.ctx().trust.is_held("AL")).await,
        "rollback not detected"
    );
    let status = it.op(Call::Status(api::Status {})).await;
    let peer = &status["peers"][0];
    assert!(
        peer["state"].as_str().unwrap().starts_with("held"),
        "{status}"
    );
    assert!(
        peer["audit_log"]["reason"]
            .as_str()
            .unwrap()
            .contains("rolled back"),
        "{status}"
    );
    assert!(status["peer_log_inconsistent"].as_u64().unwrap() >= 1);

    // Albania's messages are held: answered with UNAVAILABLE, nothing stored.
    let o_al = al.officer("Officer Example AL", "officer").await;
    let before = it.ctx().store.received_count();
    let held_msg = send(&al, &o_al, "AL-TEST-0330", "IT").await;
    assert!(
        wait_until(10, || al
            .ctx()
            .peers
            .health("IT")
            .last_error
            .contains("held"))
        .await,
        "{:?}",
        al.ctx().peers.health("IT")
    );
    assert_eq!(it.ctx().store.received_count(), before);
    assert_eq!(state(&al, &held_msg), SentState::Pending);
    // Delivery to Albania is paused.
    let paused = send(&it, &o_it, "IT-TEST-0340", "AL").await;
    assert_eq!(state(&it, &paused), SentState::Pending);

    // Italy's own log keeps the offending checkpoint as evidence and still verifies.
    let auditor = it.officer("Auditor Example", "auditor").await;
    let s = verify_bundle(&export(&it, &auditor).await).expect("verifies");
    assert_eq!(s.kinds.get("witness").copied(), Some(1));

    // The operator re-accepts Albania: both directions resume.
    it.op(Call::PeerTrust(api::PeerTrust {
        country: "AL".into(),
    }))
    .await;
    assert!(!it.ctx().trust.is_held("AL"));
    delivered(&it, &paused).await;
    delivered(&al, &held_msg).await;
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_mid_conversation_keeps_every_message_verifiable() {
    let (_tmp, mut it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    let o_al = al.officer("Officer Example AL", "officer").await;
    let before_it = send(&it, &o_it, "IT-TEST-0401", "AL").await;
    delivered(&it, &before_it).await;
    let before_al = send(&al, &o_al, "AL-TEST-0402", "IT").await;
    delivered(&al, &before_al).await;
    let old_key = it.keys().public_key();

    it.stop().await;
    let report = trm_node::federation::rotation::rotate(&it.dir, 7, trm_node::base::time::now_ms())
        .expect("rotate");
    assert_eq!(report.announced_to, vec!["AL".to_string()]);
    assert_ne!(it.keys().public_key(), old_key);
    it.start().await;

    // Albania pins the new card announced under the old key.
    assert!(
        wait_until(15, || al.ctx().peers.get("IT").is_some_and(|p| p
            .card
            .card
            .key_history
            .len()
            == 2))
        .await,
        "announcement not accepted"
    );
    let after_it = send(&it, &o_it, "IT-TEST-0403", "AL").await;
    delivered(&it, &after_it).await;
    let after_al = send(&al, &o_al, "AL-TEST-0404", "IT").await;
    delivered(&al, &after_al).await;

    // Old and new signatures verify, on both sides and in both exports.
    let new_key = it.keys().public_key();
    let signer_of = |id: &[u8]| {
        let rec = it.ctx().store.sent(id).unwrap().unwrap();
        pb::Envelope::decode(rec.envelope.as_slice())
            .unwrap()
            .signer
    };
    assert_eq!(signer_of(&before_it), old_key.to_vec());
    assert_eq!(signer_of(&after_it), new_key.to_vec());
    let o_al2 = al.officer("Officer Example AL 2", "officer").await;
    for id in [&before_it, &after_it] {
        let shown = al
            .call_as(
                &o_al2,
                Call::MessageShow(api::MessageShow {
                    id: hex::encode(id),
                }),
            )
            .await
            .unwrap();
        assert_eq!(shown["verification"]["signature"], "valid", "{shown}");
    }
    for node in [&it, &al] {
        let auditor = node.officer("Auditor Example", "auditor").await;
        let s = verify_bundle(&export(node, &auditor).await)
            .unwrap_or_else(|f| panic!("{}: {f}", node.country));
        let peer = if node.country == "IT" { "AL" } else { "IT" };
        assert!(messages(&s, peer, "sent") >= 2 && messages(&s, peer, "received") >= 2);
        if node.country == "IT" {
            assert_eq!(s.kinds.get("key").copied(), Some(1));
            assert_eq!(s.keys, 2);
        }
    }

    // The announcement again (as after a lost receipt): the first receipt, nothing changes.
    let announcement = it
        .ctx()
        .store
        .sent_all()
        .unwrap()
        .into_iter()
        .find(|r| r.kind == "key_announcement")
        .expect("announcement in the sent log");
    assert_eq!(
        SentState::from_u32(announcement.state),
        SentState::Delivered
    );
    let conn = raw_conn(&it.keys(), &al).await.expect("connect");
    let again = request(
        &conn,
        &pb::PeerRequest {
            kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
                envelope: Some(pb::Envelope::decode(announcement.envelope.as_slice()).unwrap()),
                disclosures: vec![],
            })),
        },
    )
    .await
    .unwrap();
    match again.kind {
        Some(peer_response::Kind::Receipt(r)) => {
            assert_eq!(
                r.encode_to_vec(),
                announcement.answer,
                "not the first receipt"
            )
        }
        other => panic!("retried announcement refused: {other:?}"),
    }

    // A new key not endorsed by the current one is refused.
    let rogue = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let keys = it.keys();
    let mut record = pb::KeyRecord {
        public_key: rogue.verifying_key().to_bytes().to_vec(),
        valid_from_ms: trm_node::base::time::now_ms(),
        endorser: keys.public_key().to_vec(),
        ..Default::default()
    };
    record.endorsement = signing::sign(
        &rogue,
        Tag::Key,
        &trm_proto::card::key_endorsement_bytes(&record),
    )
    .to_vec();
    let mut history = keys.history.clone();
    history.push(record.clone());
    let rogue_card = trm_proto::card::sign_card(
        &pb::Card {
            signing_key: record.public_key.clone(),
            key_history: history,
            ..pb::Card::decode(
                pb::Signed::decode(it.card().as_slice())
                    .unwrap()
                    .body
                    .as_slice(),
            )
            .unwrap()
        },
        &rogue,
    );
    let body = pb::Body {
        version: 1,
        message_id: vec![9; 16],
        sender: "IT".into(),
        recipient: "AL".into(),
        created_ms: trm_node::base::time::now_ms(),
        payload: Some(pb::body::Payload::KeyAnnouncement(pb::KeyAnnouncement {
            key: Some(record),
            card: rogue_card,
        })),
        ..Default::default()
    };
    let resp = raw_send(&keys, &al, &body).await;
    match resp.kind {
        Some(peer_response::Kind::Rejection(s)) => {
            let r = pb::Rejection::decode(s.body.as_slice()).unwrap();
            assert_eq!(r.reason, RejectReason::KeyNotValid as i32, "{r:?}");
        }
        other => panic!("rogue key accepted: {other:?}"),
    }
    assert_eq!(
        al.ctx().peers.get("IT").unwrap().card.card.signing_key,
        new_key.to_vec()
    );
    it.finish().await;
    al.finish().await;
}

/// A raw connection to `to` with `keys`' TLS identity.
async fn raw_conn(
    keys: &trm_node::identity::NodeKeys,
    to: &TestNode,
) -> Result<quinn::Connection, String> {
    let fp = signing::sha256(&to.keys().tls_cert);
    let cfg = trm_node::net::tls::client_config(
        keys.tls_cert.clone(),
        keys.tls_key.clone_key(),
        fp,
        trm_proto::ALPN_PEER,
        trm_node::net::tls::QuicLimits {
            max_streams: 8,
            window: 2 << 20,
            idle_timeout: Duration::from_secs(10),
        },
    )
    .map_err(|e| e.to_string())?;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ep = trm_node::net::transport::endpoint(sock, None).unwrap();
    ep.connect_with(cfg, to.peer_addr, trm_node::net::tls::SERVER_NAME)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())
}

async fn request(
    conn: &quinn::Connection,
    req: &pb::PeerRequest,
) -> Result<pb::PeerResponse, String> {
    trm_node::net::transport::request(conn, req, 1 << 20, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())
}

/// Sends `body`, signed with `keys`, to `to` over a raw connection.
async fn raw_send(
    keys: &trm_node::identity::NodeKeys,
    to: &TestNode,
    body: &pb::Body,
) -> pb::PeerResponse {
    let b = body.encode_to_vec();
    let env = pb::Envelope {
        signature: signing::sign(&keys.signing, Tag::Envelope, &b).to_vec(),
        signer: keys.public_key().to_vec(),
        body: b,
    };
    let conn = raw_conn(keys, to).await.expect("connect");
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
            envelope: Some(env),
            disclosures: vec![],
        })),
    };
    request(&conn, &req).await.expect("answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_peer_is_cut_off_and_its_older_messages_still_verify() {
    let (_tmp, it, al) = fast_pair().await;
    let o_al = al.officer("Officer Example AL", "officer").await;
    let early = send(&al, &o_al, "AL-TEST-0501", "IT").await;
    delivered(&al, &early).await;

    // An open connection from Albania, answering requests.
    let al_keys = al.keys();
    let conn = raw_conn(&al_keys, &it).await.expect("connect while pinned");
    let probe = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Consistency(
            pb::ConsistencyRequest {
                first: 0,
                second: 1,
            },
        )),
    };
    request(&conn, &probe).await.expect("served while pinned");

    it.op(Call::PeerRevoke(api::PeerRevoke {
        country: "AL".into(),
    }))
    .await;
    // The open connection is closed within seconds...
    assert!(
        wait_until(5, || conn.close_reason().is_some()).await,
        "connection still open"
    );
    // ... new handshakes are refused ...
    let again = match raw_conn(&al_keys, &it).await {
        Err(e) => Err(e),
        Ok(c) => request(&c, &probe).await.map(|_| ()),
    };
    assert!(again.is_err(), "a revoked peer got a connection");
    // ... and its later messages are not taken.
    let before = it.ctx().store.received_count();
    let later = send(&al, &o_al, "AL-TEST-0502", "IT").await;
    assert!(wait_until(10, || al.ctx().peers.health("IT").attempts >= 2).await);
    assert_eq!(state(&al, &later), SentState::Pending);
    assert_eq!(it.ctx().store.received_count(), before);
    // Italy sends nothing to it either.
    let o_it = it.officer("Officer Example IT", "officer").await;
    it.call_as(
        &o_it,
        Call::CaseCreate(api::CaseCreate {
            json: small_case("IT-TEST-0503"),
        }),
    )
    .await
    .unwrap();
    let refused = it
        .call_as(
            &o_it,
            Call::ReferralSend(api::ReferralSend {
                case_id: "IT-TEST-0503".into(),
                to: "AL".into(),
            }),
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("revoked"), "{refused}");
    let status = it.op(Call::Status(api::Status {})).await;
    assert_eq!(status["peers"][0]["state"], "revoked", "{status}");

    // Its earlier message still verifies in Italy's audit bundle.
    let auditor = it.officer("Auditor Example", "auditor").await;
    let s = verify_bundle(&export(&it, &auditor).await).expect("verifies");
    assert_eq!(messages(&s, "AL", "received"), 1);
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_an_exported_envelope_signature_as_the_protocol_doc_says() {
    let has_openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    // The cross-check is part of the suite: a machine without OpenSSL fails it rather than
    // passing it unchecked (.ci/run installs the Debian package when it is missing).
    assert!(
        has_openssl,
        "openssl is not on PATH: install it (Debian: apt-get install openssl) to run the \
         OpenSSL cross-check of docs/PROTOCOL.md §8"
    );
    let (tmp, it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    let id = send(&it, &o_it, "IT-TEST-0601", "AL").await;
    delivered(&it, &id).await;
    let auditor = it.officer("Auditor Example", "auditor").await;
    let bundle = AuditBundle::decode(export(&it, &auditor).await.as_slice()).unwrap();
    let sent = bundle
        .entries
        .iter()
        .map(|e| AuditEntry::decode(e.entry.as_slice()).unwrap())
        .find(|e| e.kind == "sent")
        .expect("a sent entry");
    let dir = tmp.path().join("openssl");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("body.bin"), &sent.signed_body).unwrap();
    std::fs::write(dir.join("sig.bin"), &sent.signature).unwrap();
    std::fs::write(dir.join("pub.raw"), &sent.signer).unwrap();

    // docs/PROTOCOL.md §8, verbatim.
    let steps = r"
printf 'trm/1 envelope\000' > msg.bin && cat body.bin >> msg.bin
printf '\060\052\060\005\006\003\053\145\160\003\041\000' | cat - pub.raw > pub.der
openssl pkey -pubin -inform DER -in pub.der -out pub.pem
openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in msg.bin -sigfile sig.bin
";
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md"))
            .unwrap();
    for line in steps.trim().lines() {
        assert!(
            doc.contains(line),
            "docs/PROTOCOL.md lacks the step {line:?}"
        );
    }
    // Step 4 (the strict rules OpenSSL does not apply), taken from the document as written:
    // the `weak='…'` line and the two after it.
    let lines: Vec<&str> = doc.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("weak='"))
        .expect("docs/PROTOCOL.md §8 has step 4");
    let strict = lines[at..at + 3].join("\n");
    assert!(strict.contains("strict: ok"), "{strict}");
    let script = format!("set -e\n{steps}\n{strict}\n");
    let run = |d: &Path| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(d)
            .output()
            .unwrap()
    };
    let out = run(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Signature Verified Successfully"), "{text}");
    assert!(text.contains("strict: ok"), "{text}");

    // One changed byte of the body and OpenSSL refuses it too.
    let mut body = sent.signed_body.clone();
    body[3] ^= 1;
    std::fs::write(dir.join("body.bin"), &body).unwrap();
    assert!(!run(&dir).status.success());

    // A "signature" under a small-order key (the identity point, R = identity, S = 0):
    // OpenSSL alone accepts it for any body; step 4 refuses it, as verify_strict does.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut weak_sig = identity.to_vec();
    weak_sig.extend_from_slice(&[0u8; 32]);
    std::fs::write(dir.join("body.bin"), &body).unwrap();
    std::fs::write(dir.join("sig.bin"), &weak_sig).unwrap();
    std::fs::write(dir.join("pub.raw"), identity).unwrap();
    let out = run(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("Signature Verified Successfully"),
        "OpenSSL alone accepts the weak-key signature: {text}"
    );
    assert!(text.contains("weak key or R: refused"), "{text}");
    assert!(!out.status.success(), "{text}");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_log_cannot_be_written_the_node_stops_processing_and_says_why() {
    let (_tmp, it, mut al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    let o_al = al.officer("Officer Example AL", "officer").await;
    al.stop().await;
    let pending = send(&it, &o_it, "IT-TEST-0701", "AL").await;

    it.ctx().store.inject_write_failure();
    // The next write fails (here: the audit entry of this call) and the failure sticks.
    let first = it.call_as(&o_it, Call::CaseList(api::CaseList {})).await;
    assert!(
        first.is_err(),
        "a call was answered without its audit entry"
    );
    let status = it.op(Call::Status(api::Status {})).await;
    assert_eq!(status["audit"]["writable"], false, "{status}");
    assert!(
        status["audit"]["processing"]
            .as_str()
            .unwrap()
            .starts_with("stopped"),
        "{status}"
    );
    assert!(status["audit"]["write_failure"]
        .as_str()
        .unwrap()
        .contains("injected"));
    let refused = it
        .call_as(&o_it, Call::CaseList(api::CaseList {}))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("audit log cannot be written"),
        "{refused}"
    );

    // Albania comes back: Italy neither accepts its message nor sends its own.
    al.start().await;
    let to_it = send(&al, &o_al, "AL-TEST-0702", "IT").await;
    assert!(
        wait_until(10, || al
            .ctx()
            .peers
            .health("IT")
            .last_error
            .contains("audit log cannot be written"))
        .await,
        "{:?}",
        al.ctx().peers.health("IT")
    );
    assert_eq!(state(&al, &to_it), SentState::Pending);
    assert_eq!(it.ctx().store.received_count(), 0);
    assert_eq!(state(&it, &pending), SentState::Pending);
    assert_eq!(al.ctx().store.received_count(), 0);
    let status = it.op(Call::Status(api::Status {})).await;
    assert_eq!(status["peers"][0]["state"], "paused", "{status}");
    it.finish().await;
    al.finish().await;
}
