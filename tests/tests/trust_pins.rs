//! Issue 10 items 2, 3 and 16: only the pinned partner speaks for its country (pins cannot be
//! hijacked through `peer add` or a key rotation), a retired or stolen key cannot sign today,
//! and officers are registered from their own key pair, revocable, and checked by four eyes
//! against whoever acts.

use std::time::Duration;

use prost::Message;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb::{self, RejectReason};
use trm_proto::signing::Tag;
use trm_tests::pins::{self, CardSpec, KeySpec};
use trm_tests::raw::{self, TlsId};
use trm_tests::*;

const DAY: i64 = 86_400_000;

fn now() -> i64 {
    trm_node::base::time::now_ms()
}

fn new_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

/// `peer add` of `card` as the operator; the node's one-line refusal on failure.
async fn peer_add(
    node: &TestNode,
    card: &[u8],
    replace: bool,
) -> Result<serde_json::Value, String> {
    let card = card.to_vec();
    let call = if replace {
        Call::PeerReplace(api::PeerReplace {
            card,
            ..Default::default()
        })
    } else {
        Call::PeerAdd(api::PeerAdd {
            card,
            ..Default::default()
        })
    };
    node.call_as(&node.operator, call)
        .await
        .map_err(|e| e.to_string())
}

fn fingerprint_of_key(k: &ed25519_dalek::SigningKey) -> String {
    trm_proto::signing::fingerprint(&k.verifying_key().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_or_key_pinned_for_one_country_is_refused_for_any_other() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let t = now();
    let it_cert = it.keys().tls_cert.to_vec();
    // A made-up France carrying Italy's (public) TLS certificate.
    let k = new_key();
    let thief = pins::card(&CardSpec {
        country: "FR",
        tls_cert_der: &it_cert,
        from: t - DAY,
        until: t + DAY,
        keys: vec![KeySpec {
            key: &k,
            from: t - DAY,
            until: 0,
        }],
    });
    let err = peer_add(&al, &thief, false).await.unwrap_err();
    assert!(err.contains("pinned for IT"), "{err}");
    let err = peer_add(&al, &thief, true).await.unwrap_err();
    assert!(
        err.contains("pinned for IT"),
        "--replace does not allow it either: {err}"
    );
    assert_eq!(pins::pinned_for(&al, &it_cert).as_deref(), Some("IT"));
    assert!(pins::pinned_card(&al, "FR").is_none());

    // A real France, then a Germany reusing France's signing key with its own certificate.
    let fr_tls = TlsId::new("trm-node-FR");
    let fk = new_key();
    let fr = pins::card(&CardSpec {
        country: "FR",
        tls_cert_der: &fr_tls.cert,
        from: t - DAY,
        until: t + DAY,
        keys: vec![KeySpec {
            key: &fk,
            from: t - DAY,
            until: 0,
        }],
    });
    peer_add(&al, &fr, false).await.expect("France pinned");
    let de_tls = TlsId::new("trm-node-DE");
    let de = pins::card(&CardSpec {
        country: "DE",
        tls_cert_der: &de_tls.cert,
        from: t - DAY,
        until: t + DAY,
        keys: vec![KeySpec {
            key: &fk,
            from: t - DAY,
            until: 0,
        }],
    });
    let err = peer_add(&al, &de, false).await.unwrap_err();
    assert!(err.contains("signing keys is pinned for FR"), "{err}");
    // This node's own certificate for another country.
    let own = pins::card(&CardSpec {
        country: "DE",
        tls_cert_der: &al.keys().tls_cert,
        from: t - DAY,
        until: t + DAY,
        keys: vec![KeySpec {
            key: &new_key(),
            from: t - DAY,
            until: 0,
        }],
    });
    let err = peer_add(&al, &own, false).await.unwrap_err();
    assert!(err.contains("this node's own"), "{err}");
    assert!(pins::pinned_card(&al, "DE").is_none());
    // Italy still gets through.
    let o = it.officer("Officer Example", "officer").await;
    let id = create_and_send(&it, &o, "IT-PIN-0001", "AL").await;
    assert!(wait_until(20, || it.delivered(&id)).await, "Italy delivers");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_card_for_a_pinned_or_revoked_country_needs_replace_and_expired_cards_are_refused()
{
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let t = now();
    let (tls1, tls2) = (TlsId::new("trm-node-FR"), TlsId::new("trm-node-FR"));
    let (k1, k2) = (new_key(), new_key());
    let card_of = |tls: &TlsId, k: &ed25519_dalek::SigningKey| {
        pins::card(&CardSpec {
            country: "FR",
            tls_cert_der: &tls.cert,
            from: t - DAY,
            until: t + 10 * DAY,
            keys: vec![KeySpec {
                key: k,
                from: t - DAY,
                until: 0,
            }],
        })
    };
    let (card1, card2) = (card_of(&tls1, &k1), card_of(&tls2, &k2));
    peer_add(&al, &card1, false).await.expect("first card");
    // The same card again changes nothing and succeeds.
    peer_add(&al, &card1, false).await.expect("same card again");

    let err = peer_add(&al, &card2, false).await.unwrap_err();
    for fp in [fingerprint_of_key(&k1), fingerprint_of_key(&k2)] {
        assert!(err.contains(&fp), "names both signing keys: {err}");
    }
    for cert in [&tls1.cert, &tls2.cert] {
        assert!(
            err.contains(&trm_proto::signing::fingerprint(cert)),
            "{err}"
        );
    }
    assert!(err.contains("--replace"), "{err}");
    assert_eq!(
        pins::pinned_card(&al, "FR"),
        Some(card1.clone()),
        "pin unchanged"
    );
    assert_eq!(pins::pinned_for(&al, &tls1.cert).as_deref(), Some("FR"));
    assert!(pins::pinned_for(&al, &tls2.cert).is_none());

    peer_add(&al, &card2, true)
        .await
        .expect("--replace re-pins");
    assert_eq!(pins::pinned_card(&al, "FR"), Some(card2.clone()));
    assert!(pins::pinned_for(&al, &tls1.cert).is_none());

    // Re-adding a revoked peer's card does not silently un-revoke it.
    al.op(Call::PeerRevoke(api::PeerRevoke {
        country: "FR".into(),
    }))
    .await;
    let err = peer_add(&al, &card2, false).await.unwrap_err();
    assert!(
        err.contains("revoked") && err.contains("--replace"),
        "{err}"
    );
    assert!(al.ctx().peers.get("FR").unwrap().revoked, "still revoked");
    assert!(al.ctx().store.peer("FR").unwrap().unwrap().revoked);
    assert!(pins::pinned_for(&al, &tls2.cert).is_none());
    peer_add(&al, &card2, true)
        .await
        .expect("--replace lifts it");
    assert!(!al.ctx().peers.get("FR").unwrap().revoked);

    // An expired card is refused; a card not valid yet is pinned with a warning.
    let k = new_key();
    let gr = TlsId::new("trm-node-GR");
    let expired = pins::card(&CardSpec {
        country: "GR",
        tls_cert_der: &gr.cert,
        from: t - 10 * DAY,
        until: t - DAY,
        keys: vec![KeySpec {
            key: &k,
            from: t - 10 * DAY,
            until: 0,
        }],
    });
    let err = peer_add(&al, &expired, true).await.unwrap_err();
    assert!(err.contains("expired"), "{err}");
    assert!(pins::pinned_card(&al, "GR").is_none());
    let pt = TlsId::new("trm-node-PT");
    let later = pins::card(&CardSpec {
        country: "PT",
        tls_cert_der: &pt.cert,
        from: t + DAY,
        until: t + 10 * DAY,
        keys: vec![KeySpec {
            key: &k,
            from: t + DAY,
            until: 0,
        }],
    });
    let v = peer_add(&al, &later, false)
        .await
        .expect("pinned with a warning");
    assert!(
        v["warning"]
            .as_str()
            .is_some_and(|w| w.contains("not valid before")),
        "{v}"
    );
    // Every refusal left the audit trail of the call.
    let admin_calls = al.ctx().store.audit_len();
    assert!(admin_calls > 0);
    it.finish().await;
    al.finish().await;
}

/// France pinned on `al` with key `k0` (valid from yesterday) and certificate `tls`.
struct France {
    tls: TlsId,
    k0: ed25519_dalek::SigningKey,
    from: i64,
    until: i64,
    card: Vec<u8>,
}

fn france(t: i64) -> France {
    let tls = TlsId::new("trm-node-FR");
    let k0 = new_key();
    let (from, until) = (t - DAY, t + 10 * DAY);
    let card = pins::card(&CardSpec {
        country: "FR",
        tls_cert_der: &tls.cert,
        from,
        until,
        keys: vec![KeySpec {
            key: &k0,
            from,
            until: 0,
        }],
    });
    France {
        tls,
        k0,
        from,
        until,
        card,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_keeps_the_certificate_and_validity_and_takes_no_other_countrys_identity() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let t = now();
    let fr = france(t);
    peer_add(&al, &fr.card, false).await.expect("France pinned");
    let al_key = al.keys().signing.verifying_key();
    let conn = raw::connect(al.peer_addr, &al.keys().tls_cert, &fr.tls)
        .await
        .expect("France connects");
    let it_keys = it.keys();
    let it_cert = it_keys.tls_cert.to_vec();
    let k1 = new_key();
    // A successor: `cert`, validity `until`, new key `new` valid from `new_from`, the old key
    // closed at `closed`.
    let successor =
        |cert: &[u8], until: i64, new: &ed25519_dalek::SigningKey, new_from: i64, closed: i64| {
            pins::card(&CardSpec {
                country: "FR",
                tls_cert_der: cert,
                from: fr.from,
                until,
                keys: vec![
                    KeySpec {
                        key: &fr.k0,
                        from: fr.from,
                        until: closed,
                    },
                    KeySpec {
                        key: new,
                        from: new_from,
                        until: 0,
                    },
                ],
            })
        };
    let announce = |next: Vec<u8>| {
        let conn = conn.clone();
        let env = pins::announcement(&fr.k0, "FR", "AL", &next, t);
        async move {
            raw::exchange(&conn, &raw::frame(env, vec![]))
                .await
                .unwrap()
        }
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Italy's TLS certificate",
            successor(&it_cert, fr.until, &k1, t, t + 7 * DAY),
        ),
        (
            "Italy's signing key",
            successor(&fr.tls.cert, fr.until, &it_keys.signing, t, t + 7 * DAY),
        ),
        (
            "a longer validity",
            successor(&fr.tls.cert, fr.until + 365 * DAY, &k1, t, t + 7 * DAY),
        ),
        (
            "a new key valid before its announcement",
            successor(&fr.tls.cert, fr.until, &k1, t - 3_600_000, t + 7 * DAY),
        ),
        (
            "an overlap of 31 days",
            successor(&fr.tls.cert, fr.until, &k1, t, t + 31 * DAY),
        ),
        (
            "the old key left open",
            successor(&fr.tls.cert, fr.until, &k1, t, 0),
        ),
    ];
    for (what, next) in cases {
        let r = announce(next).await;
        assert_eq!(
            raw::rejected(&r, &al_key),
            RejectReason::KeyNotValid as i32,
            "{what}"
        );
        assert_eq!(
            pins::pinned_card(&al, "FR"),
            Some(fr.card.clone()),
            "{what}: pin unchanged"
        );
        assert_eq!(
            pins::pinned_for(&al, &it_cert).as_deref(),
            Some("IT"),
            "{what}"
        );
        assert_eq!(
            pins::pinned_for(&al, &fr.tls.cert).as_deref(),
            Some("FR"),
            "{what}"
        );
    }
    // Italy is still Italy.
    let o = it.officer("Officer Example", "officer").await;
    let id = create_and_send(&it, &o, "IT-PIN-0002", "AL").await;
    assert!(wait_until(20, || it.delivered(&id)).await, "Italy delivers");

    // Control: a proper successor is accepted and pinned.
    let good = successor(&fr.tls.cert, fr.until, &k1, t, t + 7 * DAY);
    assert!(raw::is_receipt(&announce(good.clone()).await));
    assert_eq!(pins::pinned_card(&al, "FR"), Some(good));
    conn.close(0u32.into(), b"");
    it.finish().await;
    al.finish().await;
}

#[test]
fn a_rotation_refuses_an_overlap_beyond_thirty_days() {
    let tmp = tempfile::tempdir().unwrap();
    let it = TestNode::init(tmp.path(), "IT");
    let before = it.keys().public_key();
    let err = trm_node::federation::rotation::rotate(&it.dir, 31, now()).unwrap_err();
    assert!(err.to_string().contains("at most 30 days"), "{err}");
    assert_eq!(it.keys().public_key(), before, "nothing rotated");
    trm_node::federation::rotation::rotate(&it.dir, 30, now()).expect("30 days is allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_cannot_sign_today_and_the_future_is_bounded() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let t = now();
    let fr_tls = TlsId::new("trm-node-FR");
    let (k0, k1) = (new_key(), new_key());
    // k0 was retired an hour ago; k1 is current.
    let card = pins::card(&CardSpec {
        country: "FR",
        tls_cert_der: &fr_tls.cert,
        from: t - 10 * DAY,
        until: t + 10 * DAY,
        keys: vec![
            KeySpec {
                key: &k0,
                from: t - 10 * DAY,
                until: t - 3_600_000,
            },
            KeySpec {
                key: &k1,
                from: t - 3_600_000,
                until: 0,
            },
        ],
    });
    peer_add(&al, &card, false).await.expect("France pinned");
    let al_key = al.keys().signing.verifying_key();
    let conn = raw::connect(al.peer_addr, &al.keys().tls_cert, &fr_tls)
        .await
        .unwrap();
    let send = |key: &ed25519_dalek::SigningKey, created: i64| {
        let (b, d) = raw::referral("FR", "AL", created);
        let env = raw::envelope(key, &b);
        let conn = conn.clone();
        async move { raw::exchange(&conn, &raw::frame(env, d)).await.unwrap() }
    };
    let before = al.ctx().store.received_count();
    // The retired key, backdated into its old validity.
    let r = send(&k0, t - 2 * 3_600_000).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::KeyNotValid as i32);
    // A message from tomorrow, and one beyond the default skew of 5 minutes.
    let r = send(&k1, t + DAY).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::Malformed as i32);
    let r = send(&k1, now() + 6 * 60_000).await;
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::Malformed as i32);
    assert_eq!(al.ctx().store.received_count(), before, "nothing stored");
    // Controls: the current key now, and a minute ahead (within the skew).
    assert!(raw::is_receipt(&send(&k1, now()).await));
    assert!(raw::is_receipt(&send(&k1, now() + 60_000).await));
    assert_eq!(al.ctx().store.received_count(), before + 2);
    conn.close(0u32.into(), b"");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_retired_within_the_skew_still_verifies_and_the_skew_is_configurable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut al = TestNode::init(tmp.path(), "AL");
    al.configure(|c| c.limits.max_clock_skew_secs = 10);
    al.start().await;
    let t = now();
    let fr_tls = TlsId::new("trm-node-FR");
    let (k0, k1) = (new_key(), new_key());
    // k0 ended 2 s ago (within the 10 s skew); k1 since.
    let card = pins::card(&CardSpec {
        country: "FR",
        tls_cert_der: &fr_tls.cert,
        from: t - DAY,
        until: t + DAY,
        keys: vec![
            KeySpec {
                key: &k0,
                from: t - DAY,
                until: t - 2_000,
            },
            KeySpec {
                key: &k1,
                from: t - 2_000,
                until: 0,
            },
        ],
    });
    peer_add(&al, &card, false).await.expect("France pinned");
    let al_key = al.keys().signing.verifying_key();
    let conn = raw::connect(al.peer_addr, &al.keys().tls_cert, &fr_tls)
        .await
        .unwrap();
    let (b, d) = raw::referral("FR", "AL", t - 5_000);
    let r = raw::exchange(&conn, &raw::frame(raw::envelope(&k0, &b), d))
        .await
        .unwrap();
    assert!(
        raw::is_receipt(&r),
        "signed in time, arrived within the skew: {r:?}"
    );
    // 30 s ahead is beyond this node's 10 s.
    let (b, d) = raw::referral("FR", "AL", now() + 30_000);
    let r = raw::exchange(&conn, &raw::frame(raw::envelope(&k1, &b), d))
        .await
        .unwrap();
    assert_eq!(raw::rejected(&r, &al_key), RejectReason::Malformed as i32);
    conn.close(0u32.into(), b"");
    al.finish().await;
    // The skew is bounded.
    let tmp2 = tempfile::tempdir().unwrap();
    let bad = TestNode::init(tmp2.path(), "AL");
    let mut cfg = trm_node::base::config::NodeConfig::load(&bad.dir).unwrap();
    cfg.limits.max_clock_skew_secs = 86_400;
    let err = cfg.validate().unwrap_err();
    assert!(
        err.to_string().contains("limits.max_clock_skew_secs"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_only_lax_verification_accepts_reaches_the_strict_check() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let t = now();
    let fr = france(t);
    peer_add(&al, &fr.card, false).await.expect("France pinned");
    let al_key = al.keys().signing.verifying_key();
    let conn = raw::connect(al.peer_addr, &al.keys().tls_cert, &fr.tls)
        .await
        .unwrap();
    let (b, d) = raw::referral("FR", "AL", t);
    let body = b.encode_to_vec();
    let sig = pins::small_order_r_signature(&fr.k0, Tag::Envelope, &body);
    // Lax verification accepts it: the key is in the history and valid, so only the strict
    // rule (no small-order R) refuses it.
    ed25519_dalek::Verifier::verify(
        &fr.k0.verifying_key(),
        &trm_proto::signing::signing_bytes(Tag::Envelope, &body),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .expect("lax verification accepts the small-order-R signature");
    let env = pb::Envelope {
        body,
        signature: sig.to_vec(),
        signer: fr.k0.verifying_key().to_bytes().to_vec(),
    };
    let r = raw::exchange(&conn, &raw::frame(env, d)).await.unwrap();
    assert_eq!(
        raw::rejected(&r, &al_key),
        RejectReason::BadSignature as i32
    );
    assert_eq!(al.ctx().store.received_count(), 0);
    conn.close(0u32.into(), b"");
    it.finish().await;
    al.finish().await;
}

/// A referral queued at Italy for Albania while Albania was down, then Italy's key rotated
/// (node stopped) with an overlap of `overlap` ms. Both nodes are left stopped (Italy) and
/// running (Albania).
struct QueuedAcrossRotation {
    tmp: tempfile::TempDir,
    it: TestNode,
    al: TestNode,
    id_hex: String,
    id: Vec<u8>,
    old_key: [u8; 32],
    /// The queued message as stored after the rotation (still signed by the old key).
    queued: trm_node::store::SentRecord,
    /// The key announcement the rotation queued.
    announcement: pb::Envelope,
    rotated_at: i64,
}

async fn queued_across_rotation(case_ref: &str, overlap: i64) -> QueuedAcrossRotation {
    let (tmp, mut it, mut al) = started_pair("IT", "AL").await;
    let o = it.officer("Officer Example", "officer").await;
    al.stop().await;
    let id_hex = create_and_send(&it, &o, case_ref, "AL").await;
    let id = hex::decode(&id_hex).unwrap();
    let old_key = it.keys().public_key();
    it.stop().await;
    al.start().await;
    let rotated_at = now();
    trm_node::federation::rotation::rotate_with_overlap_ms(&it.dir, overlap, rotated_at)
        .expect("rotate");
    let store = trm_node::store::Store::open(&it.dir.join("store")).expect("store");
    let ann = store
        .sent_all()
        .unwrap()
        .into_iter()
        .find(|r| r.kind == "key_announcement")
        .expect("announcement queued");
    let queued = store.sent(&id).unwrap().unwrap();
    drop(store);
    QueuedAcrossRotation {
        tmp,
        it,
        al,
        id_hex,
        id,
        old_key,
        queued,
        announcement: pb::Envelope::decode(ann.envelope.as_slice()).unwrap(),
        rotated_at,
    }
}

/// Hands `envelopes` from Italy to Albania over a raw connection, as delivery would, each
/// answered with a receipt (which reaches the test, not Italy).
async fn hand_over(it: &TestNode, al: &TestNode, envelopes: Vec<pb::Envelope>) {
    let conn = raw_peer(it, al).await;
    for env in envelopes {
        let r = transmit(
            &conn,
            pb::Transmission {
                envelope: Some(env),
                disclosures: vec![],
            },
        )
        .await;
        assert!(raw::is_receipt(&r), "stored by Albania: {r:?}");
    }
    conn.close(0u32.into(), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_whose_key_retired_is_re_signed_by_the_current_key() {
    // Rotate with an overlap of a few seconds; hand the announcement to Albania while the old
    // key is valid (as a delivery would), then let the overlap pass before Italy runs again.
    let overlap = 8_000;
    let QueuedAcrossRotation {
        tmp: _tmp,
        mut it,
        al,
        id_hex,
        id,
        old_key,
        queued,
        announcement,
        rotated_at,
    } = queued_across_rotation("IT-PIN-0003", overlap).await;
    assert_eq!(
        pb::Envelope::decode(queued.envelope.as_slice())
            .unwrap()
            .signer,
        old_key.to_vec(),
        "queued under the old key"
    );
    hand_over(&it, &al, vec![announcement]).await;
    let until = rotated_at + overlap;
    wait_past(until).await;

    it.start().await;
    assert!(wait_until(30, || it.delivered(&id_hex)).await, "delivered");
    let new_key = it.keys().public_key();
    assert_ne!(new_key, old_key);
    let sent = it.ctx().store.sent(&id).unwrap().unwrap();
    let env = pb::Envelope::decode(sent.envelope.as_slice()).unwrap();
    assert_eq!(env.signer, new_key.to_vec(), "re-signed by the current key");
    let body = pb::Body::decode(env.body.as_slice()).unwrap();
    assert_eq!(body.message_id, id, "same message");
    assert!(body.created_ms > until);
    let got = al
        .ctx()
        .store
        .received("IT", &id)
        .unwrap()
        .expect("stored at AL");
    let got_env = pb::Envelope::decode(got.envelope.as_slice()).unwrap();
    assert_eq!(got_env, env, "Albania stored the re-signed envelope");
    // Both audit logs still verify, re-signing included.
    for node in [&it, &al] {
        let auditor = node.officer("Auditor Example", "auditor").await;
        let c = trm_node::admin::client::AdminClient::connect(&auditor)
            .await
            .unwrap();
        let (_, bundle) = c
            .call_with_data(Call::AuditExport(api::AuditExport {
                from_ms: 0,
                to_ms: 0,
            }))
            .await
            .unwrap();
        c.close().await;
        trm_proto::audit::verify_bundle(&bundle)
            .unwrap_or_else(|f| panic!("{} export: {f}", node.country));
    }
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_officer_is_cut_off_at_once_and_refused_afterwards() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let o = it.officer("Officer Leaving", "officer").await;
    let other = it.officer("Officer Staying", "officer").await;
    let session = trm_node::admin::client::AdminClient::connect(&o)
        .await
        .unwrap();
    session
        .call(Call::Status(api::Status {}))
        .await
        .expect("works before");
    // Only an operator may revoke.
    let err = it
        .call_as(
            &other,
            Call::OfficerRevoke(api::OfficerRevoke {
                name: "Officer Leaving".into(),
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs role operator"), "{err}");
    let v = it
        .op(Call::OfficerRevoke(api::OfficerRevoke {
            name: "Officer Leaving".into(),
        }))
        .await;
    assert_eq!(v["credentials"], 1, "{v}");
    // The live session is closed, new connections and calls are refused.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        session.call(Call::Status(api::Status {})),
    )
    .await
    .expect("answered or closed in time");
    assert!(r.is_err(), "live session cut off: {r:?}");
    session.close().await;
    assert!(it.call_as(&o, Call::Status(api::Status {})).await.is_err());
    it.ok(&other, Call::Status(api::Status {})).await;
    // Listed as revoked; the call is in the audit log.
    let list = it.op(Call::OfficerList(api::OfficerList {})).await;
    let entry = list["officers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "Officer Leaving")
        .unwrap()
        .clone();
    assert!(entry["revoked"].is_string(), "{entry}");
    let audited = it
        .ctx()
        .store
        .audit_entries(0)
        .unwrap()
        .into_iter()
        .any(|e| {
            e.kind == "admin"
                && e.call == "officer revoke"
                && e.target == "Officer Leaving"
                && e.result == "ok"
        });
    assert!(audited, "revocation audited");
    // A second revocation, an unknown name and the last operator are refused.
    for name in ["Officer Leaving", "Nobody", "operator"] {
        assert!(
            it.call_as(
                &it.operator,
                Call::OfficerRevoke(api::OfficerRevoke { name: name.into() })
            )
            .await
            .is_err(),
            "{name}"
        );
    }
    it.ok(&it.operator, Call::Status(api::Status {})).await;
    it.finish().await;
    al.finish().await;
}

#[test]
fn a_credential_never_prints_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let it = TestNode::init(tmp.path(), "IT");
    let shown = format!("{:?}", it.operator);
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let body: String = it.operator.key_pem.lines().nth(1).unwrap().into();
    assert!(!shown.contains(&body), "{shown}");
    assert!(shown.contains("redacted"));
}

fn released(preview: &serde_json::Value, path: &str) -> bool {
    preview["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} in the preview"))["released"]
        == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_are_checked_against_the_caller_and_the_case_creator() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    it.configure(|c| {
        c.outgoing.insert("AL".into(), all_categories());
    });
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    let creator = it.officer("Officer Creator", "officer").await;
    let creator_sup = it.officer("Officer Creator", "supervisor").await;
    let colleague = it.officer("Officer Colleague", "officer").await;
    let approver = it.officer("Supervisor Approver", "supervisor").await;
    let approver_off = it.officer("Supervisor Approver", "officer").await;
    let approve = |who: &trm_node::identity::Credential, case: &str| {
        let c = Call::ReferralApprove(api::ReferralApprove {
            referral: format!("{case}/AL"),
            categories: vec!["identity".into()],
        });
        let who = who.clone();
        let it = &it;
        async move { it.ok(&who, c).await }
    };
    let preview = |who: &trm_node::identity::Credential, case: &str| {
        let c = Call::ReferralPreview(api::ReferralPreview {
            case_id: case.into(),
            to: "AL".into(),
        });
        let who = who.clone();
        let it = &it;
        async move { it.ok(&who, c).await }
    };

    // 1. The creator's own approval does not count when a colleague sends.
    it.ok(
        &creator,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-EYES-0001", None),
        }),
    )
    .await;
    approve(&creator_sup, "IT-EYES-0001").await;
    let p = preview(&colleague, "IT-EYES-0001").await;
    assert!(
        !released(&p, "identity.family_name"),
        "an approval by the case's creator does not count"
    );
    // Control: another supervisor's approval counts.
    approve(&approver, "IT-EYES-0001").await;
    let p = preview(&colleague, "IT-EYES-0001").await;
    assert!(released(&p, "identity.family_name"));

    // 2. `referral disclose` is checked against the caller, not the original sender.
    it.ok(
        &creator,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-EYES-0002", None),
        }),
    )
    .await;
    let v = it
        .ok(
            &creator,
            Call::ReferralSend(api::ReferralSend {
                case_id: "IT-EYES-0002".into(),
                to: "AL".into(),
            }),
        )
        .await;
    let sent_id = v["message"].as_str().unwrap().to_string();
    assert!(wait_until(20, || it.delivered(&sent_id)).await);
    approve(&approver, "IT-EYES-0002").await;
    let disclose = |who: &trm_node::identity::Credential| {
        let c = Call::ReferralDisclose(api::ReferralDisclose {
            referral: "IT-EYES-0002/AL".into(),
            fields: vec![],
            categories: vec!["identity".into()],
        });
        let who = who.clone();
        let it = &it;
        async move { it.call_as(&who, c).await }
    };
    // The approver, as an officer, may not release what they approved themselves.
    let err = disclose(&approver_off).await.unwrap_err();
    assert!(err.to_string().contains("nothing to release"), "{err}");
    // Control: a colleague may.
    let v = disclose(&colleague).await.expect("released by a colleague");
    assert!(v["released"].as_u64().unwrap() > 0, "{v}");
    it.finish().await;
    al.finish().await;
}

/// Runs `trm-admin` off the runtime's worker threads.
async fn cli(args: Vec<String>) -> pins::Ran {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        pins::trm_admin(&a)
    })
    .await
    .unwrap()
}

fn strs(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_officer_makes_the_key_the_operator_registers_the_certificate_and_refusals_exit_64() {
    use std::os::unix::fs::PermissionsExt;
    // Build the binaries before any node runs.
    tokio::task::spawn_blocking(trm_tests::bins::bin_dir)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    it.start().await;
    let op = it.dir.join(trm_node::identity::OPERATOR_CRED);
    let op = op.to_str().unwrap().to_string();
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let node_cert = trm_proto::signing::fingerprint(&it.keys().tls_cert);

    // The officer, on their own machine.
    let r = cli(strs(&[
        "officer",
        "keygen",
        "Officer Own-Key",
        "--role",
        "officer",
        "--node",
        &it.admin_addr.to_string(),
        "--node-cert",
        &node_cert,
        "--out",
        &p("own.cred"),
    ]))
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let cred_mode = std::fs::metadata(p("own.cred"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(cred_mode & 0o777, 0o600);
    let crt = std::fs::read_to_string(p("own.crt")).unwrap();
    assert!(crt.contains("BEGIN CERTIFICATE") && !crt.contains("PRIVATE KEY"));
    // Not registered yet: refused.
    let r = cli(strs(&["--cred", &p("own.cred"), "status"])).await;
    assert_ne!(r.code, Some(0), "{r:?}");
    // The operator registers the certificate only.
    let r = cli(strs(&[
        "--cred",
        &op,
        "officer",
        "add",
        "Officer Own-Key",
        "--role",
        "officer",
        "--cert",
        &p("own.crt"),
    ]))
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = cli(strs(&["--cred", &p("own.cred"), "--json", "case", "list"])).await;
    assert_eq!(r.code, Some(0), "the officer's own credential works: {r:?}");

    // peer add of another card for a pinned country: exit 64, one line, both fingerprints.
    let t = now();
    let (tls1, tls2) = (TlsId::new("trm-node-FR"), TlsId::new("trm-node-FR"));
    let (k1, k2) = (new_key(), new_key());
    for (file, tls, k) in [("fr1.trm", &tls1, &k1), ("fr2.trm", &tls2, &k2)] {
        let card = pins::card(&CardSpec {
            country: "FR",
            tls_cert_der: &tls.cert,
            from: t - DAY,
            until: t + DAY,
            keys: vec![KeySpec {
                key: k,
                from: t - DAY,
                until: 0,
            }],
        });
        std::fs::write(p(file), card).unwrap();
    }
    let r = cli(strs(&["--cred", &op, "peer", "add", &p("fr1.trm")])).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = cli(strs(&["--cred", &op, "peer", "add", &p("fr2.trm")])).await;
    assert_eq!(r.code, Some(64), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    for fp in [fingerprint_of_key(&k1), fingerprint_of_key(&k2)] {
        assert!(r.stderr.contains(&fp), "{r:?}");
    }
    let r = cli(strs(&[
        "--cred",
        &op,
        "peer",
        "add",
        "--replace",
        &p("fr2.trm"),
    ]))
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        pins::pinned_card(&it, "FR"),
        Some(std::fs::read(p("fr2.trm")).unwrap())
    );

    // The operator revokes the officer: the credential stops working.
    let r = cli(strs(&[
        "--cred",
        &op,
        "officer",
        "revoke",
        "Officer Own-Key",
    ]))
    .await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = cli(strs(&["--cred", &p("own.cred"), "status"])).await;
    assert_ne!(r.code, Some(0), "{r:?}");
    it.finish().await;
}

/// A made-up France card with a fresh certificate and key (a new identity each call).
fn france_identity(t: i64) -> Vec<u8> {
    let tls = TlsId::new("trm-node-FR");
    let k = new_key();
    pins::card(&CardSpec {
        country: "FR",
        tls_cert_der: &tls.cert,
        from: t - DAY,
        until: t + DAY,
        keys: vec![KeySpec {
            key: &k,
            from: t - DAY,
            until: 0,
        }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_card_verifies_in_an_audit_only_through_the_operators_logged_act() {
    let (_tmp, it, _al) = started_pair("IT", "AL").await;
    let t = now();
    let first = france_identity(t);
    let second = france_identity(t);
    peer_add(&it, &first, false).await.unwrap();
    peer_add(&it, &second, true).await.unwrap();
    let auditor = it.officer("Auditor Example", "auditor").await;
    let bundle = trm_tests::auditx::export(&it, &auditor).await;

    // Both identities are in the bundle, each pinned by a logged operator act: verified, and
    // the replacement is said.
    let sum = trm_proto::audit::verify_bundle(&bundle).expect("the honest bundle verifies");
    assert_eq!(sum.replaced_cards, 1, "one replacement of France");

    // A third France slipped into the bundle's cards by a dishonest exporter (no operator
    // ever pinned it): refused, naming the card.
    let mut forged = trm_proto::auditpb::AuditBundle::decode(bundle.as_slice()).unwrap();
    forged.peer_cards.push(france_identity(t));
    let err = trm_proto::audit::verify_bundle(&forged.encode_to_vec()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("peer card") && msg.contains("no operator's `peer add`"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_signed_message_the_peer_already_stored_is_delivered_by_its_first_receipt() {
    let overlap = 8_000;
    let QueuedAcrossRotation {
        tmp: _tmp,
        mut it,
        al,
        id_hex,
        id,
        queued,
        announcement,
        rotated_at,
        ..
    } = queued_across_rotation("IT-PIN-0004", overlap).await;
    let first = pb::Envelope::decode(queued.envelope.as_slice()).unwrap();
    let first_hash = trm_proto::signing::envelope_hash(&first.body, &first.signature);
    // Albania stores the first signing (under the old key, still valid) and its receipt is
    // lost: it reaches this test, not Italy. Then the announcement, as delivery would.
    hand_over(&it, &al, vec![first.clone(), announcement]).await;
    wait_past(rotated_at + overlap).await;

    // Italy re-signs the queued message and sends it again: Albania answers with the first
    // receipt (nothing stored twice) and Italy takes it as delivered, not rejected.
    it.start().await;
    assert!(
        wait_until(30, || it.delivered(&id_hex)).await,
        "delivered by the first receipt, not rejected as a reused id"
    );
    let sent = it.ctx().store.sent(&id).unwrap().unwrap();
    assert_eq!(sent.earlier_envelope_hashes, vec![first_hash.to_vec()]);
    let receipt = pb::Receipt::decode(
        pb::Signed::decode(sent.answer.as_slice())
            .unwrap()
            .body
            .as_slice(),
    )
    .unwrap();
    assert_eq!(
        receipt.envelope_hash,
        first_hash.to_vec(),
        "names the first signing"
    );
    let got = al.ctx().store.received("IT", &id).unwrap().expect("stored");
    assert_eq!(
        pb::Envelope::decode(got.envelope.as_slice()).unwrap(),
        first,
        "Albania keeps the first signing, stored once"
    );
    assert_eq!(
        al.ctx().store.received_count(),
        2,
        "the message and the announcement"
    );
    // Both audit logs still verify.
    for node in [&it, &al] {
        let auditor = node.officer("Auditor Example", "auditor").await;
        let bundle = trm_tests::auditx::export(node, &auditor).await;
        trm_proto::audit::verify_bundle(&bundle)
            .unwrap_or_else(|f| panic!("{} export: {f}", node.country));
    }
    it.finish().await;
    al.finish().await;
}
