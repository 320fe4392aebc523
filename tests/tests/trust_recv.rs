//! Issue 10, "what a partner can put in": the receive path stores only what a partner signed,
//! in order, once, with bounded header values, and erasure leaves nothing behind.

use prost::Message;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb::{self, body::Payload, RejectReason};
use trm_tests::recv::*;
use trm_tests::*;

const CANARY: &str = "Zyxcanaryova";

fn disclosure(path: &str, value: &str) -> pb::FieldDisclosure {
    pb::FieldDisclosure {
        path: path.into(),
        salt: vec![7; 16],
        value: serde_json::to_vec(&serde_json::Value::String(value.into())).unwrap(),
    }
}

async fn case_text(node: &TestNode, id: &str) -> String {
    let off = node.officer("Officer Viewer", "officer").await;
    node.ok(&off, Call::CaseShow(api::CaseShow { id: id.into() }))
        .await
        .to_string()
}

/// Item 1: values attached to a message that signs no digests are refused, non-case payloads
/// carry no case reference, and a case view shows only values that verify against signed
/// digests of that case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_values_cannot_enter_a_case() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let off = it.officer("Officer IT", "officer").await;
    referred(&it, &off, "IT-RECV-0001", &al).await;
    let conn = raw_peer(&it, &al).await;
    let before = StoreView::of(&al);
    let announce = |case_ref: &str| {
        signed_envelope(
            &it,
            "AL",
            case_ref,
            Payload::KeyAnnouncement(pb::KeyAnnouncement {
                key: None,
                card: it.card(),
            }),
            vec![],
        )
    };
    // A key announcement (the pinned card again) with a value for the case attached.
    let r = refused(
        &conn,
        tx(
            announce("IT-RECV-0001"),
            vec![disclosure("identity.family_name", CANARY)],
        ),
    )
    .await;
    assert_eq!(r.reason, RejectReason::Malformed as i32, "{r:?}");
    // The same without a case reference: still refused for the value.
    let r = refused(
        &conn,
        tx(
            announce(""),
            vec![disclosure("identity.family_name", CANARY)],
        ),
    )
    .await;
    assert_eq!(r.reason, RejectReason::Malformed as i32, "{r:?}");
    // A key announcement naming a case, without values: a non-case payload with a case_ref.
    let r = refused(&conn, tx(announce("IT-RECV-0001"), vec![])).await;
    assert_eq!(r.reason, RejectReason::Malformed as i32, "{r:?}");
    before.assert_only_rejections_logged(&al, 3);
    assert!(!case_text(&al, "IT-RECV-0001").await.contains(CANARY));

    // Defence in depth: a stored record whose values match no signed digest (as an older
    // node could have stored) is not shown in the case.
    let env = announce("IT-RECV-0001");
    let ctx = al.ctx();
    let mut ops = Vec::new();
    let mut ku = ctx.vault.begin().await;
    let scope = trm_node::store::casedata::received_scope("IT", "IT-RECV-0001");
    let body = pb::Body::decode(env.body.as_slice()).unwrap();
    let sealed = trm_node::store::casedata::seal(
        &ctx.vault,
        &mut ku,
        &scope,
        &trm_node::store::casedata::received_record("IT", &body.message_id),
        &[disclosure("identity.family_name", CANARY)],
        |p| ctx.template.category_of(p),
        &mut ops,
    )
    .unwrap();
    ops.push(trm_node::store::Op::Receive(
        trm_node::store::ReceivedRecord {
            id: body.message_id.clone(),
            peer: "IT".into(),
            kind: "key_announcement".into(),
            envelope: env.encode_to_vec(),
            disclosures: sealed,
            receipt: vec![],
            received_ms: 1,
            case_ref: "IT-RECV-0001".into(),
            erased: vec![],
        },
    ));
    ctx.store.commit(ops).await.unwrap();
    drop(ku);
    let shown = case_text(&al, "IT-RECV-0001").await;
    assert!(shown.contains("IT-RECV-0001"), "{shown}");
    assert!(
        !shown.contains(CANARY),
        "an unsigned value is shown: {shown}"
    );
    it.finish().await;
    al.finish().await;
}

/// Item 9: the case reference is bounded and well-formed and equals the disclosed one; an
/// information request names known fields; a follow-up date is a real date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_header_values_are_refused() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let it_off = it.officer("Officer IT", "officer").await;
    let al_off = al.officer("Officer AL", "officer").await;
    let referral_id = referred(&it, &it_off, "IT-RECV-0009", &al).await;
    accept(&al, &al_off, &referral_id).await;
    assert!(wait_until(20, || state(&it, "AL", "IT-RECV-0009") == "accepted").await);
    let conn = raw_peer(&it, &al).await;
    let before = StoreView::of(&al);
    let referral = |digests: Vec<Vec<u8>>| {
        Payload::Referral(pb::Referral {
            template_version: "trm-template/1".into(),
            digests,
            ..Default::default()
        })
    };
    let big = "A".repeat(900 << 10);
    for bad in [
        big.as_str(),
        "it-lower-1",
        "SHORT",
        "IT/../../X1",
        "IT-RECV-00\u{e9}",
    ] {
        let env = signed_envelope(&it, "AL", bad, referral_payload(), vec![]);
        let r = refused(&conn, tx(env, vec![])).await;
        assert_eq!(
            r.reason,
            RejectReason::Malformed as i32,
            "case_ref {:.20}",
            bad
        );
    }
    // A disclosed case reference that is not the envelope's.
    let fields = vec![(
        "reference.case_ref".to_string(),
        b"\"IT-OTHER-0001\"".to_vec(),
    )];
    let c = trm_proto::commit::commit(&fields, &mut rand::rngs::OsRng).unwrap();
    let env = signed_envelope(
        &it,
        "AL",
        "IT-RECV-0099",
        referral(c.digest_bytes()),
        vec![],
    );
    let r = refused(&conn, tx(env, c.disclosures.clone())).await;
    assert_eq!(r.reason, RejectReason::Malformed as i32, "{r:?}");
    // An information request naming a field that does not exist.
    let env = signed_envelope(
        &it,
        "AL",
        "IT-RECV-0009",
        Payload::InformationRequest(pb::InformationRequest {
            fields: vec!["identity.no_such_field".into()],
            categories: vec![],
            purpose: "test".into(),
        }),
        vec![],
    );
    let r = refused(&conn, tx(env, vec![])).await;
    assert_eq!(r.reason, RejectReason::Malformed as i32, "{r:?}");
    // Follow-ups with dates that are not real dates.
    for date in ["2026-02-30", "+026-01-01", "2026-1-01", "yesterday"] {
        let env = signed_envelope(
            &it,
            "AL",
            "IT-RECV-0009",
            Payload::FollowUp(pb::FollowUp {
                phase: pb::Phase::Identification as i32,
                status: "x".into(),
                date: date.into(),
                ..Default::default()
            }),
            vec![],
        );
        let r = refused(&conn, tx(env, vec![])).await;
        assert_eq!(r.reason, RejectReason::Malformed as i32, "date {date}");
    }
    before.assert_only_rejections_logged(&al, 11);
    // Control: a good follow-up with a real date is stored.
    let env = signed_envelope(
        &it,
        "AL",
        "IT-RECV-0009",
        Payload::FollowUp(pb::FollowUp {
            phase: pb::Phase::Identification as i32,
            status: "x".into(),
            date: "2024-02-29".into(),
            ..Default::default()
        }),
        vec![],
    );
    assert!(is_receipt(&transmit(&conn, tx(env, vec![])).await));
    it.finish().await;
    al.finish().await;
}

fn referral_payload() -> Payload {
    let fields = vec![("reference.urgency".to_string(), b"\"routine\"".to_vec())];
    let c = trm_proto::commit::commit(&fields, &mut rand::rngs::OsRng).unwrap();
    Payload::Referral(pb::Referral {
        template_version: "trm-template/1".into(),
        digests: c.digest_bytes(),
        ..Default::default()
    })
}

fn audit_kinds_for(node: &TestNode, id: &[u8], kind: &str) -> usize {
    node.ctx()
        .store
        .audit_entries(0)
        .unwrap()
        .iter()
        .filter(|e| e.kind == kind && e.message_id == id)
        .count()
}

/// Item 7: the same frame on 8 streams over 2 connections at once is stored once, logged
/// once, answered with identical receipts, and leaves the thread as the first copy made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_frame_on_eight_streams_is_stored_and_logged_once() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let conns = [raw_peer(&it, &al).await, raw_peer(&it, &al).await];
    for round in 0..3 {
        let case_ref = format!("IT-DUP-000{round}");
        let env = signed_envelope(&it, "AL", &case_ref, referral_payload(), vec![]);
        let id = pb::Body::decode(env.body.as_slice()).unwrap().message_id;
        let req = pb::PeerRequest {
            kind: Some(pb::peer_request::Kind::Transmission(tx(env, vec![]))),
        };
        let received_before = al.ctx().store.received_count();
        let mut answers = Vec::new();
        for r in at_once(&conns, &vec![req.clone(); 8]).await {
            assert!(is_receipt(&r), "every copy gets a receipt: {r:?}");
            answers.push(answer_bytes(&r));
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "identical receipts"
        );
        assert_eq!(al.ctx().store.received_count(), received_before + 1);
        assert_eq!(
            audit_kinds_for(&al, &id, "received"),
            1,
            "one `received` entry"
        );
        assert_eq!(
            audit_kinds_for(&al, &id, "receipt_sent"),
            1,
            "one receipt logged"
        );
        let t = al.ctx().store.thread("IT", &case_ref).unwrap().unwrap();
        assert_eq!(t.referral_id, id);
        assert_eq!(t.state, "pending");
        // Sent again later: the same receipt, the thread unchanged.
        let r = request(&conns[0], &req).await;
        assert_eq!(answer_bytes(&r), answers[0]);
        assert_eq!(al.ctx().store.thread("IT", &case_ref).unwrap().unwrap(), t);
    }
    it.finish().await;
    al.finish().await;
}

/// Item 7: an acceptance racing a decline of the same referral: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acceptance_racing_a_decline_exactly_one_wins() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let off = it.officer("Officer IT", "officer").await;
    let conns = [raw_peer(&al, &it).await, raw_peer(&al, &it).await];
    for round in 0..4 {
        let case_ref = format!("IT-RACE-000{round}");
        let referral = hex::decode(referred(&it, &off, &case_ref, &al).await).unwrap();
        let accept = signed_envelope(
            &al,
            "IT",
            &case_ref,
            Payload::Acceptance(pb::Acceptance {
                responsible_institution: "Synthetic Unit".into(),
                focal_point: "duty".into(),
            }),
            referral.clone(),
        );
        let decline = signed_envelope(
            &al,
            "IT",
            &case_ref,
            Payload::Decline(pb::Decline {
                reason: "no capacity".into(),
            }),
            referral.clone(),
        );
        let wrap = |env| pb::PeerRequest {
            kind: Some(pb::peer_request::Kind::Transmission(tx(env, vec![]))),
        };
        let answers = at_once(&conns, &[wrap(accept), wrap(decline)]).await;
        let (a, d) = (answers[0].clone(), answers[1].clone());
        let wins = [is_receipt(&a), is_receipt(&d)];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "round {round}: exactly one wins: {a:?} {d:?}"
        );
        let loser = if wins[0] { &d } else { &a };
        assert_eq!(rejection_of(loser).reason, RejectReason::OutOfOrder as i32);
        let expected = if wins[0] { "accepted" } else { "declined" };
        assert_eq!(state(&it, "AL", &case_ref), expected);
    }
    it.finish().await;
    al.finish().await;
}

/// Item 7: nothing a peer sends can grow the permanent log without bound: logged fields are
/// bounded, consistency requests for absurd sizes are not logged, logged rejections and
/// erasure work are rate-limited per peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_bloat_the_log_or_the_vault() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let off = it.officer("Officer IT", "officer").await;
    referred(&it, &off, "IT-BLOAT-0001", &al).await;
    let conn = raw_peer(&it, &al).await;

    // A 900 KiB message id (under the frame cap) and a flood of long field paths.
    let start = al.ctx().store.audit_len();
    let mut body = pb::Body {
        version: 1,
        message_id: vec![0x41; 900 << 10],
        sender: "IT".into(),
        recipient: "AL".into(),
        created_ms: trm_node::base::time::now_ms(),
        in_reply_to: vec![],
        case_ref: "IT-BLOAT-0002".into(),
        payload: Some(referral_payload()),
    };
    let r = refused(&conn, tx(sign_body(&it.keys(), &body), vec![])).await;
    assert_eq!(r.reason, RejectReason::Malformed as i32);
    body.message_id = rand::random::<[u8; 16]>().to_vec();
    let long: Vec<pb::FieldDisclosure> = (0..2000)
        .map(|i| disclosure(&format!("x{i}.{}", "p".repeat(300)), "v"))
        .collect();
    let r = refused(&conn, tx(sign_body(&it.keys(), &body), long)).await;
    assert_ne!(r.reason, RejectReason::RejectUnspecified as i32);
    let added = al.ctx().store.audit_leaves(start).unwrap();
    assert_eq!(added.len(), 2, "both rejections logged");
    for leaf in &added {
        assert!(
            leaf.len() < 4096,
            "a logged rejection of {} bytes",
            leaf.len()
        );
    }

    // Consistency requests for absurd sizes: refused, not logged.
    let start = al.ctx().store.audit_len();
    for (first, second) in [(0u64, u64::MAX), (u64::MAX - 1, u64::MAX), (5, 1 << 60)] {
        let req = pb::PeerRequest {
            kind: Some(pb::peer_request::Kind::Consistency(
                pb::ConsistencyRequest { first, second },
            )),
        };
        let resp = request(&conn, &req).await;
        assert!(matches!(
            resp.kind,
            Some(pb::peer_response::Kind::Rejection(_))
        ));
    }
    assert_eq!(al.ctx().store.audit_len(), start, "absurd requests logged");

    // A flood of malformed requests: only a bounded number of rejections is logged.
    let start = al.ctx().store.audit_len();
    let flood = 2 * trm_node::exchange::receive::LOGGED_REJECTIONS_BURST as usize;
    for _ in 0..flood {
        let r = request(&conn, &pb::PeerRequest { kind: None }).await;
        assert!(matches!(
            r.kind,
            Some(pb::peer_response::Kind::Rejection(_))
        ));
    }
    let logged = al.ctx().store.audit_len() - start;
    assert!(
        logged <= trm_node::exchange::receive::LOGGED_REJECTIONS_BURST as u64 + 10,
        "{logged} of {flood} rejections logged"
    );

    // Erasure requests: a burst is carried out, then the peer is asked to wait.
    let n = trm_node::exchange::receive::ERASURES_BURST as usize + 3;
    let mut busy = 0;
    for _ in 0..n {
        let env = signed_envelope(
            &it,
            "AL",
            "IT-BLOAT-0001",
            Payload::ErasureRequest(pb::ErasureRequest {
                referral_id: vec![],
                categories: vec![pb::Category::Exploitation as i32],
                reason: "consent_withdrawn".into(),
            }),
            vec![],
        );
        let r = transmit(&conn, tx(env, vec![])).await;
        if !is_receipt(&r) {
            assert_eq!(rejection_of(&r).reason, RejectReason::Unavailable as i32);
            busy += 1;
        }
    }
    assert!(busy >= 3, "{busy} of {n} erasure requests deferred");
    it.finish().await;
    al.finish().await;
}

/// Item 5: acceptances and follow-ups queued while the peer is down all arrive, in order,
/// case by case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queued_while_the_peer_is_down_arrive_in_order() {
    let (_tmp, mut it, al) = started_pair("IT", "AL").await;
    let it_off = it.officer("Officer IT", "officer").await;
    let al_off = al.officer("Officer AL", "officer").await;
    let cases = ["IT-ORDER-0001", "IT-ORDER-0002", "IT-ORDER-0003"];
    let mut referrals = Vec::new();
    for c in cases {
        referrals.push(referred(&it, &it_off, c, &al).await);
    }
    it.stop().await;
    let phases = [
        "identification",
        "first_assistance",
        "long_term_assistance",
        "return",
        "proceedings",
    ];
    let mut ids: Vec<Vec<String>> = vec![Vec::new(); cases.len()];
    for (k, c) in cases.iter().enumerate() {
        let v = al
            .ok(
                &al_off,
                Call::ReferralAnswer(api::ReferralAnswer {
                    referral: referrals[k].clone(),
                    decline: false,
                    responsible_institution: "Synthetic Unit".into(),
                    focal_point: "duty officer".into(),
                    reason: String::new(),
                }),
            )
            .await;
        ids[k].push(v["message"].as_str().unwrap().to_string());
        let _ = c;
    }
    for (i, phase) in phases.iter().enumerate() {
        for (k, c) in cases.iter().enumerate() {
            let v = al
                .ok(
                    &al_off,
                    Call::FollowUpSend(api::FollowUpSend {
                        case_id: c.to_string(),
                        to: "IT".into(),
                        phase: phase.to_string(),
                        status: format!("step {i}"),
                        date: "2026-11-20".into(),
                        fields_json: String::new(),
                        in_reply_to: String::new(),
                    }),
                )
                .await;
            ids[k].push(v["message"].as_str().unwrap().to_string());
        }
    }
    it.start().await;
    let all: Vec<String> = ids.iter().flatten().cloned().collect();
    assert!(
        wait_until(90, || all.iter().all(|id| {
            al.ctx()
                .store
                .sent(&hex::decode(id).unwrap())
                .unwrap()
                .is_some_and(|s| s.state != trm_node::store::SentState::Pending as u32)
        }))
        .await,
        "all answered"
    );
    for id in &all {
        assert!(al.delivered(id), "{id} delivered, not rejected");
    }
    for (k, c) in cases.iter().enumerate() {
        let arrived: Vec<String> = it
            .ctx()
            .store
            .received_for_case("AL", c)
            .unwrap()
            .into_iter()
            .map(|r| hex::encode(r.id))
            .collect();
        assert_eq!(arrived, ids[k], "{c}: arrival order is the sending order");
        let t = it.ctx().store.thread("AL", c).unwrap().unwrap();
        assert_eq!(t.state, "accepted");
        assert_eq!(t.phase, "criminal and civil proceedings");
    }
    it.finish().await;
    al.finish().await;
}

/// Item 5: an erasure request interrupted before it was carried out, or after it was carried
/// out and before it was confirmed, is resumed at the next start and confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_erasure_is_resumed_at_start_and_confirmed() {
    let (_tmp, it, mut al) = started_pair("IT", "AL").await;
    let off = it.officer("Officer IT", "officer").await;
    for step in [1u8, 2] {
        let case_ref = format!("IT-ERASE-000{step}");
        referred(&it, &off, &case_ref, &al).await;
        let scope = trm_node::store::casedata::received_scope("IT", &case_ref);
        let cat = pb::Category::Exploitation as i32;
        assert!(al.ctx().store.dek(&scope, cat).unwrap().is_some());
        al.ctx()
            .recv
            .erasure_stop_at
            .store(step, std::sync::atomic::Ordering::SeqCst);
        let conn = raw_peer(&it, &al).await;
        let env = signed_envelope(
            &it,
            "AL",
            &case_ref,
            Payload::ErasureRequest(pb::ErasureRequest {
                referral_id: vec![],
                categories: vec![cat],
                reason: "consent_withdrawn".into(),
            }),
            vec![],
        );
        let request_id = pb::Body::decode(env.body.as_slice()).unwrap().message_id;
        assert!(is_receipt(&transmit(&conn, tx(env, vec![])).await));
        conn.close(0u32.into(), b"done");
        let pending = |al: &TestNode| {
            al.ctx()
                .store
                .meta_prefix(trm_node::referral::lifecycle::PENDING_ERASURE_PREFIX)
                .unwrap()
                .len()
        };
        let confirmations = |al: &TestNode| {
            al.ctx()
                .store
                .sent_all()
                .unwrap()
                .into_iter()
                .filter(|s| {
                    s.kind == "erasure_confirmation"
                        && pb::Envelope::decode(s.envelope.as_slice())
                            .ok()
                            .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
                            .is_some_and(|b| b.in_reply_to == request_id)
                })
                .count()
        };
        // Give the interrupted task time to (not) finish, then "crash".
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(pending(&al), 1, "step {step}: the request is durable");
        assert_eq!(confirmations(&al), 0, "step {step}: not confirmed yet");
        assert_eq!(
            al.ctx().store.dek(&scope, cat).unwrap().is_none(),
            step == 2,
            "step {step}: erased only past step 1"
        );
        al.stop().await;
        al.start().await;
        assert!(
            wait_until(30, || pending(&al) == 0 && confirmations(&al) == 1).await,
            "step {step}: resumed and confirmed"
        );
        assert!(al.ctx().store.dek(&scope, cat).unwrap().is_none());
        assert!(
            wait_until(30, || it
                .ctx()
                .store
                .received_for_case("AL", &case_ref)
                .unwrap()
                .iter()
                .any(|r| r.kind == "erasure_confirmation"))
            .await,
            "step {step}: the confirmation reached the requester"
        );
    }
    it.finish().await;
    al.finish().await;
}

async fn follow_up_with(
    node: &TestNode,
    cred: &trm_node::identity::Credential,
    case_ref: &str,
    to: &str,
    fields: serde_json::Value,
) -> String {
    delivered_call(
        node,
        cred,
        Call::FollowUpSend(api::FollowUpSend {
            case_id: case_ref.into(),
            to: to.into(),
            phase: "return".into(),
            status: "planning".into(),
            date: "2026-11-20".into(),
            fields_json: fields.to_string(),
            in_reply_to: String::new(),
        }),
    )
    .await
}

/// Item 15: what this node sends about a received case is sealed in that thread's own scope
/// and erased with it; a sealed group opens only in the record it was sealed for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_sent_on_a_received_case_are_erased_with_it_and_groups_do_not_move() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let it_off = it.officer("Officer IT", "officer").await;
    let al_off = al.officer("Officer AL", "officer").await;
    let case_ref = "IT-SCOPE-0001";
    let referral = referred(&it, &it_off, case_ref, &al).await;
    accept(&al, &al_off, &referral).await;
    let first = follow_up_with(
        &al,
        &al_off,
        case_ref,
        "IT",
        serde_json::json!({ "return": { "wish": "return", "escort_needed": true } }),
    )
    .await;
    let second = follow_up_with(
        &al,
        &al_off,
        case_ref,
        "IT",
        serde_json::json!({ "return": { "wish": "stay", "escort_needed": false } }),
    )
    .await;
    let cat = pb::Category::Return as i32;
    let scope = trm_node::store::casedata::thread_scope("IT", case_ref);
    let deks = al.ctx().store.all_deks().unwrap();
    assert!(
        deks.iter().any(|(s, c, _)| *s == scope && *c == cat),
        "sealed in the thread's scope: {:?}",
        deks.iter().map(|d| (&d.0, d.1)).collect::<Vec<_>>()
    );
    assert!(
        !deks.iter().any(|(s, _, _)| s == "case/"),
        "nothing in a shared scope"
    );

    // A sealed group moved to another record of the same scope and category does not open.
    let received = it.ctx().store.received_for_case("AL", case_ref).unwrap();
    let find = |hex_id: &str| {
        received
            .iter()
            .find(|r| hex::encode(&r.id) == hex_id)
            .cloned()
            .unwrap()
    };
    let (mut a, b) = (find(&first), find(&second));
    a.disclosures = b.disclosures.clone();
    it.ctx()
        .store
        .commit(vec![trm_node::store::Op::PutReceived(a)])
        .await
        .unwrap();
    let shown = it
        .call_as(
            &it_off,
            Call::MessageShow(api::MessageShow { id: first.clone() }),
        )
        .await;
    match shown {
        Err(_) => {}
        Ok(v) => panic!("a moved group opened in another record: {v}"),
    }

    // Erasure of the received case also erases what was sent about it, and leaves no way
    // back: the old master key is in no file, the old wrapped data key no longer opens.
    let old_master = std::fs::read(al.dir.join("keys/store.key")).unwrap();
    let old_wrapped = al.ctx().store.dek(&scope, cat).unwrap().unwrap();
    assert!(al.ctx().vault.unwraps(&scope, cat, &old_wrapped).await);
    let conn = raw_peer(&it, &al).await;
    let env = signed_envelope(
        &it,
        "AL",
        case_ref,
        Payload::ErasureRequest(pb::ErasureRequest {
            referral_id: hex::decode(&referral).unwrap(),
            categories: vec![cat],
            reason: "consent_withdrawn".into(),
        }),
        vec![],
    );
    assert!(is_receipt(&transmit(&conn, tx(env, vec![])).await));
    let carried_out = || {
        al.ctx().store.dek(&scope, cat).unwrap().is_none()
            && al
                .ctx()
                .store
                .meta_prefix(trm_node::referral::lifecycle::PENDING_ERASURE_PREFIX)
                .unwrap()
                .is_empty()
    };
    assert!(
        wait_until(20, carried_out).await,
        "the thread's key of the category is destroyed"
    );
    al.ctx().store.flush().unwrap();
    assert_eq!(
        files_containing(&al.dir, &old_master),
        Vec::<std::path::PathBuf>::new(),
        "the old master key is gone"
    );
    assert!(
        !al.ctx().vault.unwraps(&scope, cat, &old_wrapped).await,
        "the erased key's old wrapped copy no longer opens"
    );
    for id in [&first, &second] {
        let s = al
            .ctx()
            .store
            .sent(&hex::decode(id).unwrap())
            .unwrap()
            .unwrap();
        assert!(
            !s.released
                .iter()
                .chain(&s.committed)
                .any(|g| g.category == cat),
            "sealed values removed from the sent record"
        );
        assert!(s.erased.iter().any(|e| e.category == cat));
    }
    it.finish().await;
    al.finish().await;
}
