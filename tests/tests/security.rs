//! The security suite: who may connect, what binds an envelope to its sender, replays, and
//! resource exhaustion. Complements foundation.rs (which covers one unpinned client, one
//! client without certificate, a forged sender, a wrong recipient, a tampered signature and
//! oversized frames). CI runs short versions; `TRM_LONG_TESTS=1` runs the long ones.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use trm_node::store::SentState;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb::{self, RejectReason};
use trm_tests::net;
use trm_tests::proc::{self, NodeProc};
use trm_tests::raw::{self, TlsId};
use trm_tests::*;

const DAY: i64 = 86_400_000;

/// One attempt to deliver a properly signed referral over a connection made with `id`.
/// Returns how the handshake ended and, if the connection stayed open, the answer.
async fn attempt(
    al: &TestNode,
    id: &TlsId,
    signer: &ed25519_dalek::SigningKey,
    from: &str,
) -> (net::Handshake, Option<Result<pb::PeerResponse, String>>) {
    let ep = net::client_endpoint(std::net::Ipv4Addr::LOCALHOST.into());
    let h = net::try_handshake(&ep, net::peer_client(id, &al.keys().tls_cert), al.peer_addr).await;
    let answer = match &h {
        net::Handshake::Open(conn) => {
            let (body, disclosures) = raw::referral(from, "AL", trm_node::base::time::now_ms());
            let r =
                raw::exchange(conn, &raw::frame(raw::envelope(signer, &body), disclosures)).await;
            conn.close(0u32.into(), b"");
            Some(r)
        }
        _ => None,
    };
    ep.close(0u32.into(), b"");
    (h, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_of_no_valid_peer_are_refused_before_any_application_data() {
    let n = if long() { 100 } else { 10 };
    // Every attempt must reach the pin check: the penalty for failed authentication (which
    // would refuse this address at Incoming after a few, see flood_penalty.rs) is off here.
    let tmp = tempfile::tempdir().expect("temp dir");
    let (it, al) = start_pair_in(tmp.path(), "IT", "AL", |n| {
        n.configure(|c| c.limits.failed_handshakes_per_address = 0)
    })
    .await;
    let now = trm_node::base::time::now_ms();
    // An expired card: pinned while valid (an expired card is refused by `peer add`), then
    // its validity passes.
    let expires = now + 2_000;
    let expired = raw::fake_peer("FR", now - 10 * DAY, expires, &[(now - 10 * DAY, 0)]);
    al.op(Call::PeerAdd(api::PeerAdd {
        card: expired.card.clone(),
        ..Default::default()
    }))
    .await;
    // A peer that was pinned and then removed.
    let removed = raw::fake_peer("DE", now - DAY, now + DAY, &[(now - DAY, 0)]);
    al.op(Call::PeerAdd(api::PeerAdd {
        card: removed.card.clone(),
        ..Default::default()
    }))
    .await;
    al.op(Call::PeerRemove(api::PeerRemove {
        country: "DE".into(),
    }))
    .await;
    // A peer pinned and then revoked by the operator.
    let revoked = raw::fake_peer("PL", now - DAY, now + DAY, &[(now - DAY, 0)]);
    al.op(Call::PeerAdd(api::PeerAdd {
        card: revoked.card.clone(),
        ..Default::default()
    }))
    .await;
    al.op(Call::PeerRevoke(api::PeerRevoke {
        country: "PL".into(),
    }))
    .await;
    wait_past(expires).await;
    let audit_before = al.ctx().store.audit_len();
    let it_keys = it.keys();
    // The same name and country as Italy's certificate, another key.
    let impostor = TlsId::new("trm-node-IT");
    let stranger = TlsId::new("trm-node-XX");
    let expired_id = TlsId {
        cert: expired.tls.cert.clone(),
        key_pem: expired.tls.key_pem.clone(),
    };
    let removed_id = TlsId {
        cert: removed.tls.cert.clone(),
        key_pem: removed.tls.key_pem.clone(),
    };
    let revoked_id = TlsId {
        cert: revoked.tls.cert.clone(),
        key_pem: revoked.tls.key_pem.clone(),
    };
    let cases: [(&str, &TlsId, &ed25519_dalek::SigningKey, &str); 5] = [
        (
            "self-signed certificate of no peer",
            &stranger,
            &it_keys.signing,
            "IT",
        ),
        (
            "Italy's name with another key",
            &impostor,
            &it_keys.signing,
            "IT",
        ),
        ("expired pinned card", &expired_id, &expired.keys[0], "FR"),
        ("removed peer", &removed_id, &removed.keys[0], "DE"),
        ("revoked peer", &revoked_id, &revoked.keys[0], "PL"),
    ];
    // Each is refused by the TLS handshake itself (a TLS alert from the server within about
    // a second), not by a timeout or any later error.
    for (what, id, signer, from) in cases {
        for i in 0..n {
            let (h, answer) = attempt(&al, id, signer, from).await;
            assert!(
                h.is_tls_refusal(),
                "{what}, attempt {i}: not refused by TLS: {h:?}, answer {answer:?}"
            );
        }
    }
    // No client certificate at all.
    let ep = net::client_endpoint(std::net::Ipv4Addr::LOCALHOST.into());
    for i in 0..n {
        let h = net::try_handshake(
            &ep,
            net::certificateless_client(&al.keys().tls_cert),
            al.peer_addr,
        )
        .await;
        assert!(
            h.is_tls_refusal(),
            "no certificate, attempt {i}: not refused by TLS: {h:?}"
        );
    }
    ep.close(0u32.into(), b"");
    assert_eq!(al.ctx().store.received_count(), 0, "nothing stored");
    assert_eq!(
        al.ctx().store.audit_len(),
        audit_before,
        "the audit log grew by nothing: no application data was processed"
    );
    // Positive control, the very same client setup: Italy itself still gets in.
    let (h, ok) = attempt(
        &al,
        &TlsId {
            cert: it_keys.tls_cert.clone(),
            key_pem: std::fs::read_to_string(it.dir.join("keys/tls.key")).unwrap(),
        },
        &it_keys.signing,
        "IT",
    )
    .await;
    assert!(matches!(h, net::Handshake::Open(_)), "{h:?}");
    let ok = ok.expect("an answer").expect("an answer");
    assert!(raw::is_receipt(&ok), "{ok:?}");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelopes_not_bound_to_a_valid_sender_key_are_rejected_and_not_stored() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let now = trm_node::base::time::now_ms();
    // France rotated its key yesterday: k0 was valid until then, k1 since.
    let fr = raw::fake_peer(
        "FR",
        now - 10 * DAY,
        now + 10 * DAY,
        &[(now - 10 * DAY, now - DAY), (now - DAY, 0)],
    );
    al.op(Call::PeerAdd(api::PeerAdd {
        card: fr.card.clone(),
        ..Default::default()
    }))
    .await;
    let al_key = al.keys().signing.verifying_key();
    let conn = raw::connect(al.peer_addr, &al.keys().tls_cert, &fr.tls)
        .await
        .unwrap();
    let before = trm_tests::recv::StoreView::of(&al);
    let send = |env: pb::Envelope, d: Vec<pb::FieldDisclosure>| {
        let conn = conn.clone();
        async move { raw::exchange(&conn, &raw::frame(env, d)).await.unwrap() }
    };
    let (k0, k1) = (&fr.keys[0], &fr.keys[1]);
    let stranger = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);

    // Signed by a key that is not France's, naming itself as signer.
    let (b, d) = raw::referral("FR", "AL", now);
    let r = send(raw::envelope(&stranger, &b), d).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::KeyNotValid as i32);
    // Signed by a stranger's key, naming France's key as signer.
    let (b, d) = raw::referral("FR", "AL", now);
    let r = send(
        raw::envelope_with(&stranger, &k1.verifying_key().to_bytes(), &b),
        d,
    )
    .await;
    assert_eq!(
        raw::rejected(&r, &al_key),
        RejectReason::BadSignature as i32
    );
    // A small-order public key as signer with the signature (R = identity, S = 0) that
    // verifies for any message under lax verification.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let mut weak_sig = vec![0u8; 64];
    weak_sig[0] = 1;
    let (b, d) = raw::referral("FR", "AL", now);
    let env = pb::Envelope {
        body: b.encode_to_vec(),
        signature: weak_sig.clone(),
        signer: weak.to_vec(),
    };
    let r = send(env, d).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::KeyNotValid as i32);
    // The small-order key above never reaches the signature check (it is in no history). A
    // signature with a small-order R by France's current key does: lax verification accepts
    // it, `verify_strict` refuses it.
    let (b, d) = raw::referral("FR", "AL", now);
    let body = b.encode_to_vec();
    let sig =
        trm_tests::pins::small_order_r_signature(k1, trm_proto::signing::Tag::Envelope, &body);
    let env = pb::Envelope {
        body,
        signature: sig.to_vec(),
        signer: k1.verifying_key().to_bytes().to_vec(),
    };
    let r = send(env, d).await;
    assert_eq!(
        raw::rejected(&r, &al_key),
        RejectReason::BadSignature as i32
    );
    // The retired key used after its validity ended.
    let (b, d) = raw::referral("FR", "AL", now);
    let r = send(raw::envelope(k0, &b), d).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::KeyNotValid as i32);
    // The current key used for a time before its validity began.
    let (b, d) = raw::referral("FR", "AL", now - 2 * DAY);
    let r = send(raw::envelope(k1, &b), d).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::KeyNotValid as i32);
    // Envelope sender is another pinned peer (Italy) than the TLS peer (France).
    let (b, d) = raw::referral("IT", "AL", now);
    let r = send(raw::envelope(&it.keys().signing, &b), d).await;
    assert_eq!(
        raw::rejected(&r, &al_key),
        RejectReason::SenderMismatch as i32
    );
    assert_eq!(al.ctx().store.received_count(), 0, "nothing stored");
    // Nothing else changed either: no thread, key, directory or peer; only the 7 rejections
    // were logged.
    before.assert_only_rejections_logged(&al, 7);

    // A card whose signing key is of small order is refused outright.
    let weak_card = pb::Signed {
        body: pb::Card {
            version: 1,
            country: "ES".into(),
            name: "ES made-up unit".into(),
            addresses: vec![],
            tls_cert_der: vec![1],
            signing_key: weak.to_vec(),
            acceptance: vec![],
            valid_from_ms: now - DAY,
            valid_until_ms: now + DAY,
            key_history: vec![pb::KeyRecord {
                public_key: weak.to_vec(),
                valid_from_ms: now - DAY,
                ..Default::default()
            }],
            issued_ms: now,
        }
        .encode_to_vec(),
        signature: weak_sig,
        signer: weak.to_vec(),
    }
    .encode_to_vec();
    let err = al
        .call_as(
            &al.operator,
            Call::PeerAdd(api::PeerAdd {
                card: weak_card,
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("weak"), "{err}");

    // The retired key for a message claiming to be made while it was valid: refused, since
    // the key ended (a day ago) before the message arrived (issue 10 item 3).
    let (b, d) = raw::referral("FR", "AL", now - 2 * DAY);
    let r = send(raw::envelope(k0, &b), d).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::KeyNotValid as i32);
    // Control: the current key now is accepted.
    let (b, d) = raw::referral("FR", "AL", now);
    assert!(raw::is_receipt(&send(raw::envelope(k1, &b), d).await));
    assert_eq!(al.ctx().store.received_count(), 1);
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_envelopes_are_stored_once_on_any_connection_and_after_restart() {
    let n = if long() { 1000 } else { 100 };
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    let mut fr = TestNode::init(tmp.path(), "FR");
    it.start().await;
    al.start().await;
    fr.start().await;
    pin_all(&[&it, &al, &fr]).await;
    let itk = it.keys();
    let it_id = TlsId {
        cert: itk.tls_cert.clone(),
        key_pem: std::fs::read_to_string(it.dir.join("keys/tls.key")).unwrap(),
    };
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let (b, d) = raw::referral("IT", "AL", trm_node::base::time::now_ms());
            raw::frame(raw::envelope(&itk.signing, &b), d)
        })
        .collect();
    let conn = raw::connect(al.peer_addr, &al.keys().tls_cert, &it_id)
        .await
        .unwrap();
    let mut first = Vec::with_capacity(n);
    for f in &frames {
        let r = raw::exchange(&conn, f).await.unwrap();
        assert!(raw::is_receipt(&r), "{r:?}");
        first.push(r);
    }
    // Replay on the same connection.
    for (f, r0) in frames.iter().zip(&first) {
        assert_eq!(&raw::exchange(&conn, f).await.unwrap(), r0, "same receipt");
    }
    // On a new connection.
    let conn2 = raw::connect(al.peer_addr, &al.keys().tls_cert, &it_id)
        .await
        .unwrap();
    for (f, r0) in frames.iter().zip(&first) {
        assert_eq!(&raw::exchange(&conn2, f).await.unwrap(), r0, "same receipt");
    }
    // After a restart.
    al.stop().await;
    al.start().await;
    let conn3 = raw::connect(al.peer_addr, &al.keys().tls_cert, &it_id)
        .await
        .unwrap();
    for (f, r0) in frames.iter().zip(&first) {
        assert_eq!(&raw::exchange(&conn3, f).await.unwrap(), r0, "same receipt");
    }
    assert_eq!(al.ctx().store.received_count(), n, "0 stored twice");
    // Replayed to another node, the envelopes name their real recipient and are refused.
    let conn_fr = raw::connect(fr.peer_addr, &fr.keys().tls_cert, &it_id)
        .await
        .unwrap();
    let fr_key = fr.keys().signing.verifying_key();
    for f in frames.iter().take(10) {
        let r = raw::exchange(&conn_fr, f).await.unwrap();
        assert_eq!(
            raw::rejected(&r, &fr_key),
            RejectReason::WrongRecipient as i32
        );
    }
    assert_eq!(fr.ctx().store.received_count(), 0);
    // Another envelope under a stored id: the same body signed again (only `created_ms`
    // differs, as when a sender re-signs a queued message) gets the first receipt, naming the
    // first envelope; any other body is refused. Neither is stored.
    let original = pb::PeerRequest::decode(&frames[0][4..]).unwrap();
    let first_hash = match &original.kind {
        Some(pb::peer_request::Kind::Transmission(t)) => {
            let env = t.envelope.as_ref().unwrap();
            trm_proto::signing::envelope_hash(&env.body, &env.signature)
        }
        _ => unreachable!("a transmission"),
    };
    let variant = |change: &dyn Fn(&mut pb::Body)| {
        let mut req = original.clone();
        if let Some(pb::peer_request::Kind::Transmission(t)) = &mut req.kind {
            let env = t.envelope.as_mut().unwrap();
            let mut body = pb::Body::decode(env.body.as_slice()).unwrap();
            change(&mut body);
            *env = raw::envelope(&itk.signing, &body);
        }
        trm_proto::frame::encode(&req)
    };
    let r = raw::exchange(&conn3, &variant(&|b| b.created_ms += 1))
        .await
        .unwrap();
    match r.kind {
        Some(pb::peer_response::Kind::Receipt(signed)) => {
            let receipt = pb::Receipt::decode(signed.body.as_slice()).unwrap();
            assert_eq!(
                receipt.envelope_hash,
                first_hash.to_vec(),
                "the first receipt"
            );
        }
        other => panic!("a re-signed copy gets the first receipt, got {other:?}"),
    }
    let r = raw::exchange(&conn3, &variant(&|b| b.in_reply_to = vec![9; 16]))
        .await
        .unwrap();
    assert_eq!(
        raw::rejected(&r, &al.keys().signing.verifying_key()),
        RejectReason::Malformed as i32
    );
    assert_eq!(al.ctx().store.received_count(), n);
    for node in [it, al, fr] {
        node.finish().await;
    }
}

async fn delivered_count(
    node: &mut NodeProc,
    ids: &[String],
    officer: &trm_node::identity::Credential,
) -> usize {
    let c = trm_node::admin::client::AdminClient::connect(officer)
        .await
        .unwrap();
    let mut n = 0;
    for id in ids {
        let v = c
            .call(Call::MessageShow(api::MessageShow { id: id.clone() }))
            .await
            .unwrap();
        if v["delivery"]["state"] == "delivered" {
            n += 1;
        }
    }
    c.close().await;
    let _ = node;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_and_stalled_streams_leave_a_legitimate_peer_delivering_in_bounded_memory() {
    let (handshakes, streams, referrals): (usize, usize, usize) = if long() {
        (10_000, 20_000, 1_000)
    } else {
        (200, 500, 40)
    };
    let tmp = tempfile::tempdir().unwrap();
    let (mut it, mut al) = proc::flood_pair(tmp.path(), 2).await.unwrap();
    let now = trm_node::base::time::now_ms();
    let fr = raw::fake_peer("FR", now - DAY, now + DAY, &[(now - DAY, 0)]);
    al.pin_card(fr.card.clone()).await.unwrap();
    let officer = it.officer("Officer Example", "officer").await.unwrap();
    let c = trm_node::admin::client::AdminClient::connect(&officer)
        .await
        .unwrap();
    c.call(Call::CaseCreate(api::CaseCreate {
        json: case_json("IT-BENCH-0001", "AL"),
    }))
    .await
    .unwrap();
    let al_cert = al.keys().unwrap().tls_cert.to_vec();
    let al_addr = al.peer_addr;
    let pid = al.pid().unwrap();
    let sampler = proc::RssPeak::start(pid, 0);

    // A stalled stream: a byte every 250 ms from a pinned peer. It must be stopped by the
    // receiver (STOP_SENDING) between the stream timeout and twice that, the connection
    // staying up.
    let stream_timeout = Duration::from_secs(2);
    let slow = {
        let (cert, id) = (
            al_cert.clone(),
            TlsId {
                cert: fr.tls.cert.clone(),
                key_pem: fr.tls.key_pem.clone(),
            },
        );
        tokio::spawn(async move {
            let conn = raw::connect(al_addr, &cert, &id).await.unwrap();
            let (mut send, _recv) = conn.open_bi().await.unwrap();
            let started = std::time::Instant::now();
            send.write_all(&[0, 0, 4]).await.unwrap();
            while started.elapsed() < Duration::from_secs(30) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Err(e) = send.write_all(&[0]).await {
                    let lost = conn.close_reason();
                    return Some((started.elapsed(), e, lost));
                }
            }
            None
        })
    };
    // Unauthenticated handshakes, 32 at a time.
    let flood_hs = {
        let cert = al_cert.clone();
        tokio::spawn(async move {
            let stranger = Arc::new(TlsId::new("trm-node-XX"));
            let mut refused = 0;
            for chunk in 0..handshakes.div_ceil(32) {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..32.min(handshakes - chunk * 32) {
                    let (cert, id) = (cert.clone(), stranger.clone());
                    set.spawn(async move {
                        match raw::connect(al_addr, &cert, &id).await {
                            Err(_) => true,
                            Ok(c) => {
                                let r = raw::exchange(&c, &[0, 0, 0, 1, 0]).await;
                                r.is_err()
                            }
                        }
                    });
                }
                while let Some(r) = set.join_next().await {
                    refused += usize::from(r.unwrap());
                }
            }
            refused
        })
    };
    // A flood of streams carrying junk from a pinned peer.
    let flood_streams = {
        let (cert, id) = (
            al_cert.clone(),
            TlsId {
                cert: fr.tls.cert.clone(),
                key_pem: fr.tls.key_pem.clone(),
            },
        );
        tokio::spawn(async move {
            // Its one connection may meet the handshake flood above, from the same loopback
            // address: it tries again, as a peer does.
            let conn = raw::connect_retrying(al_addr, &cert, &id, Duration::from_secs(20))
                .await
                .unwrap();
            let mut set = tokio::task::JoinSet::new();
            let mut answered = 0;
            for i in 0..streams {
                let conn = conn.clone();
                set.spawn(async move {
                    raw::exchange(&conn, &[0, 0, 0, 3, 0xff, 0xff, i as u8])
                        .await
                        .is_ok()
                });
                if set.len() >= 128 {
                    answered += usize::from(set.join_next().await.unwrap().unwrap());
                }
            }
            while let Some(r) = set.join_next().await {
                answered += usize::from(r.unwrap());
            }
            answered
        })
    };
    // Meanwhile the legitimate peer sends referrals.
    let ids = send_referrals_on(&c, "IT-SEC", referrals, "AL").await;
    let refused = flood_hs.await.unwrap();
    assert_eq!(
        refused, handshakes,
        "every unauthenticated handshake refused"
    );
    let answered = flood_streams.await.unwrap();
    assert!(answered > 0, "junk streams are answered with rejections");
    let (closed_after, how, lost) = slow
        .await
        .unwrap()
        .expect("the stalled stream was stopped by the receiver");
    assert!(
        matches!(how, quinn::WriteError::Stopped(_)),
        "stopped by a stream stop, not {how:?}"
    );
    assert!(lost.is_none(), "the connection was lost: {lost:?}");
    assert!(
        closed_after >= stream_timeout && closed_after <= 2 * stream_timeout,
        "stopped after {closed_after:?}, not between the {stream_timeout:?} stream timeout and twice that"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while delivered_count(&mut it, &ids, &officer).await < ids.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the legitimate peer kept delivering"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let peak_mib = sampler.stop().await / 1024;
    eprintln!(
        "exhaustion: {handshakes} handshakes refused, {answered} junk streams answered, \
         stalled stream stopped after {closed_after:?}, peak VmRSS {peak_mib} MiB"
    );
    assert!(peak_mib < 256, "memory bounded: {peak_mib} MiB");
    assert!(al.is_running(), "the node survived");
    c.close().await;
    it.terminate();
    al.terminate();
    let received: BTreeSet<Vec<u8>> = al
        .open_store()
        .unwrap()
        .inbox()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        received.len(),
        ids.len(),
        "exactly the legitimate referrals stored"
    );
    let sent = it.open_store().unwrap().sent_all().unwrap();
    assert!(sent
        .iter()
        .all(|s| SentState::from_u32(s.state) == SentState::Delivered));
}
