//! The case lifecycle across two nodes, the response deadlines, national extensions and the
//! contact directory.

use std::time::Duration;

use prost::Message;
use serde_json::json;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb::{self, peer_response, RejectReason};
use trm_proto::signing::{self, Tag};
use trm_tests::*;

async fn sent_ok(node: &TestNode, cred: &trm_node::identity::Credential, call: Call) -> String {
    let v = node.ok(cred, call).await;
    let id = v["message"].as_str().unwrap().to_string();
    assert!(
        wait_until(15, || node.delivered(&id)).await,
        "delivered: {v}"
    );
    id
}

fn thread_state(node: &TestNode, peer: &str, case_ref: &str) -> String {
    node.ctx()
        .store
        .thread(peer, case_ref)
        .unwrap()
        .map(|t| t.state)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_case_across_two_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al) = start_pair_in(tmp.path(), "IT", "AL", |_| {}).await;
    let it_off = it.officer("Officer IT", "officer").await;
    let al_off = al.officer("Officer AL", "officer").await;
    it.ok(
        &it_off,
        Call::CaseCreate(api::CaseCreate {
            json: small_case("IT-LIFE-0001"),
        }),
    )
    .await;
    let referral = sent_ok(
        &it,
        &it_off,
        Call::ReferralSend(api::ReferralSend {
            case_id: "IT-LIFE-0001".into(),
            to: "AL".into(),
        }),
    )
    .await;
    assert_eq!(thread_state(&al, "IT", "IT-LIFE-0001"), "pending");

    // A follow-up before acceptance is refused on the sending side too.
    let err = al
        .call_as(
            &al_off,
            Call::FollowUpSend(api::FollowUpSend {
                case_id: "IT-LIFE-0001".into(),
                to: "IT".into(),
                phase: "identification".into(),
                status: "started".into(),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("accepted"), "{err}");

    sent_ok(
        &al,
        &al_off,
        Call::ReferralAnswer(api::ReferralAnswer {
            referral: referral.clone(),
            decline: false,
            responsible_institution: "Synthetic Referral Unit AL".into(),
            focal_point: "duty officer".into(),
            reason: String::new(),
        }),
    )
    .await;
    assert!(wait_until(10, || thread_state(&it, "AL", "IT-LIFE-0001") == "accepted").await);

    // Follow-ups in every phase, from the origin country, one with updated fields.
    for (i, phase) in [
        "identification",
        "first_assistance",
        "long_term_assistance",
        "return",
        "proceedings",
    ]
    .iter()
    .enumerate()
    {
        let fields = if *phase == "return" {
            json!({ "return": { "wish": "return", "escort_needed": true } }).to_string()
        } else {
            String::new()
        };
        sent_ok(
            &al,
            &al_off,
            Call::FollowUpSend(api::FollowUpSend {
                case_id: "IT-LIFE-0001".into(),
                to: "IT".into(),
                phase: phase.to_string(),
                status: format!("step {i}"),
                date: "2026-11-20".into(),
                fields_json: fields,
                in_reply_to: String::new(),
            }),
        )
        .await;
    }
    // An information request from the destination, answered by a follow-up.
    let req = sent_ok(
        &it,
        &it_off,
        Call::InfoRequest(api::InfoRequest {
            case_id: "IT-LIFE-0001".into(),
            to: "AL".into(),
            fields: vec!["return.reception_arrangements".into()],
            categories: vec![],
            purpose: "plan the reception".into(),
        }),
    )
    .await;
    sent_ok(&al, &al_off, Call::FollowUpSend(api::FollowUpSend {
        case_id: "IT-LIFE-0001".into(), to: "IT".into(), phase: "return".into(), status: "reception planned".into(),
        date: "2026-11-21".into(),
        fields_json: json!({ "return": { "reception_arrangements": "Met by the synthetic reception service" } }).to_string(),
        in_reply_to: req,
    }))
    .await;
    // A second request, declined by the origin country.
    let req2 = sent_ok(
        &it,
        &it_off,
        Call::InfoRequest(api::InfoRequest {
            case_id: "IT-LIFE-0001".into(),
            to: "AL".into(),
            fields: vec![],
            categories: vec!["health".into()],
            purpose: "continuity of treatment".into(),
        }),
    )
    .await;
    assert!(
        wait_until(10, || al
            .ctx()
            .store
            .inbox()
            .unwrap()
            .iter()
            .any(|m| hex::encode(&m.id) == req2))
        .await
    );
    sent_ok(
        &al,
        &al_off,
        Call::ReferralAnswer(api::ReferralAnswer {
            referral: req2,
            decline: true,
            reason: "no legal basis to share health data (synthetic)".into(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(
        thread_state(&it, "AL", "IT-LIFE-0001"),
        "accepted",
        "declining a request leaves the referral open"
    );
    sent_ok(
        &it,
        &it_off,
        Call::CaseClose(api::CaseClose {
            case_id: "IT-LIFE-0001".into(),
            to: "AL".into(),
            outcome: "returned_reintegrating".into(),
            date: "2026-11-27".into(),
        }),
    )
    .await;
    assert!(wait_until(10, || thread_state(&al, "IT", "IT-LIFE-0001") == "closed").await);
    assert_eq!(thread_state(&it, "AL", "IT-LIFE-0001"), "closed");

    // Both timelines show the whole exchange, in order, verified and delivered.
    for (node, cred) in [(&it, &it_off), (&al, &al_off)] {
        let tl = node
            .ok(
                cred,
                Call::CaseTimeline(api::CaseTimeline {
                    id: "IT-LIFE-0001".into(),
                }),
            )
            .await;
        let msgs = tl["messages"].as_array().unwrap();
        let kinds: Vec<&str> = msgs.iter().map(|m| m["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec![
                "referral",
                "acceptance",
                "follow_up",
                "follow_up",
                "follow_up",
                "follow_up",
                "follow_up",
                "information_request",
                "follow_up",
                "information_request",
                "decline",
                "closure"
            ],
            "{}",
            node.country
        );
        assert!(msgs
            .iter()
            .all(|m| m["verification"]["signature"] == "valid"));
        let times: Vec<i64> = msgs
            .iter()
            .map(|m| m["created_ms"].as_i64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
    let tl = it
        .ok(
            &it_off,
            Call::CaseTimeline(api::CaseTimeline {
                id: "IT-LIFE-0001".into(),
            }),
        )
        .await;
    let answer = tl["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .nth(3)
        .unwrap()
        .clone();
    assert_eq!(
        answer["fields"]["return"]["reception_arrangements"],
        "Met by the synthetic reception service"
    );

    // After Italy's closure Albania may only report on the later phases (issue 12: closure
    // is per side; tests/tests/daily_current.rs has the rest).
    let err = al
        .call_as(
            &al_off,
            Call::FollowUpSend(api::FollowUpSend {
                case_id: "IT-LIFE-0001".into(),
                to: "IT".into(),
                phase: "first_assistance".into(),
                status: "late".into(),
                ..Default::default()
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_referral_shows_on_both_sides_and_a_decline_ends_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al) = start_pair_in(tmp.path(), "IT", "AL", |_| {}).await;
    let it_off = it.officer("Officer IT", "officer").await;
    let al_off = al.officer("Officer AL", "officer").await;
    // The example's response date is 2026-03-16.
    it.ok(
        &it_off,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-LIFE-0002", None),
        }),
    )
    .await;
    let referral = sent_ok(
        &it,
        &it_off,
        Call::ReferralSend(api::ReferralSend {
            case_id: "IT-LIFE-0002".into(),
            to: "AL".into(),
        }),
    )
    .await;
    // Move both clocks past the due date (they may already be past it).
    let due = trm_node::base::time::parse_date_ms("2026-03-16").unwrap();
    for n in [&it, &al] {
        let now = n.ctx().clock.now_ms();
        if now <= due {
            n.ctx().clock.advance(due - now + 86_400_000);
        }
    }
    for (node, cred) in [(&it, &it_off), (&al, &al_off)] {
        let st = node.ok(cred, Call::Status(api::Status {})).await;
        let overdue = st["overdue"].as_array().unwrap();
        assert_eq!(overdue.len(), 1, "{}: {st}", node.country);
        assert_eq!(overdue[0]["case_ref"], "IT-LIFE-0002");
        let cases = node.ok(cred, Call::CaseList(api::CaseList {})).await;
        let text = cases.to_string();
        assert!(
            text.contains("\"overdue\":true"),
            "{}: {text}",
            node.country
        );
    }
    sent_ok(
        &al,
        &al_off,
        Call::ReferralAnswer(api::ReferralAnswer {
            referral,
            decline: true,
            reason: "no competence for this case (synthetic)".into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(wait_until(10, || thread_state(&it, "AL", "IT-LIFE-0002") == "declined").await);
    let st = it.ok(&it_off, Call::Status(api::Status {})).await;
    assert_eq!(st["overdue"].as_array().unwrap().len(), 0);
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_case_requires_the_child_section() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al) = start_pair_in(tmp.path(), "IT", "AL", |_| {}).await;
    let off = it.officer("Officer IT", "officer").await;
    let mut child: serde_json::Value =
        serde_json::from_str(&example("child-unaccompanied.json")).unwrap();
    it.ok(
        &off,
        Call::CaseCreate(api::CaseCreate {
            json: child.to_string(),
        }),
    )
    .await;
    child["reference"]["case_ref"] = json!("IT-LIFE-0003");
    child.as_object_mut().unwrap().remove("child");
    let err = it
        .call_as(
            &off,
            Call::CaseCreate(api::CaseCreate {
                json: child.to_string(),
            }),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("child.unaccompanied") && msg.contains("child.guardian_appointed"),
        "{msg}"
    );
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extension_fields_reach_a_node_that_does_not_know_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    it.configure(|c| {
        c.template
            .extensions
            .push(trm_node::base::config::ExtensionConfig {
                path: "ext.it.permit_office".into(),
                kind: "text".into(),
                category: "assistance".into(),
                help: "Office handling the special protection permit".into(),
            });
    });
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    let off = it.officer("Officer IT", "officer").await;
    let mut case: serde_json::Value = serde_json::from_str(&small_case("IT-LIFE-0004")).unwrap();
    case["ext"] = json!({ "it": { "permit_office": "Synthetic Questura Office" } });
    it.ok(
        &off,
        Call::CaseCreate(api::CaseCreate {
            json: case.to_string(),
        }),
    )
    .await;
    let id = sent_ok(
        &it,
        &off,
        Call::ReferralSend(api::ReferralSend {
            case_id: "IT-LIFE-0004".into(),
            to: "AL".into(),
        }),
    )
    .await;
    let al_off = al.officer("Officer AL", "officer").await;
    let got = al
        .ok(&al_off, Call::MessageShow(api::MessageShow { id }))
        .await;
    assert_eq!(
        got["fields"]["ext"]["it"]["permit_office"],
        "Synthetic Questura Office"
    );
    assert_eq!(got["verification"]["signature"], "valid");
    let t = al
        .ctx()
        .store
        .thread("IT", "IT-LIFE-0004")
        .unwrap()
        .unwrap();
    assert_eq!(t.extensions.len(), 1);
    assert_eq!(
        t.extensions[0].category,
        pb::Category::Assistance as i32,
        "declared category kept"
    );
    it.finish().await;
    al.finish().await;
}

fn envelope(from: &TestNode, to: &str, case_ref: &str, payload: pb::body::Payload) -> pb::Envelope {
    signed_envelope(from, to, case_ref, payload, vec![])
}

async fn reject_reason(conn: &quinn::Connection, env: pb::Envelope) -> i32 {
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
            envelope: Some(env),
            disclosures: vec![],
        })),
    };
    let resp: pb::PeerResponse =
        trm_node::net::transport::request(conn, &req, 1 << 20, Duration::from_secs(5))
            .await
            .unwrap();
    match resp.kind {
        Some(peer_response::Kind::Rejection(s)) => {
            pb::Rejection::decode(s.body.as_slice()).unwrap().reason
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_order_messages_are_rejected_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al) = start_pair_in(tmp.path(), "IT", "AL", |_| {}).await;
    let conn = raw_peer(&it, &al).await;
    let before = al.ctx().store.received_count();
    let follow_up = pb::body::Payload::FollowUp(pb::FollowUp {
        phase: pb::Phase::Identification as i32,
        ..Default::default()
    });
    assert_eq!(
        reject_reason(
            &conn,
            envelope(&it, "AL", "IT-NONE-0001", follow_up.clone())
        )
        .await,
        RejectReason::UnknownCase as i32
    );
    let accept = pb::body::Payload::Acceptance(pb::Acceptance::default());
    assert_eq!(
        reject_reason(&conn, envelope(&it, "AL", "IT-NONE-0001", accept)).await,
        RejectReason::UnknownCase as i32
    );
    // Open a referral, then a follow-up before acceptance.
    let referral = pb::body::Payload::Referral(pb::Referral {
        template_version: "trm-template/1".into(),
        ..Default::default()
    });
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
            envelope: Some(envelope(&it, "AL", "IT-RAW-0009", referral)),
            disclosures: vec![],
        })),
    };
    let r: pb::PeerResponse =
        trm_node::net::transport::request(&conn, &req, 1 << 20, Duration::from_secs(5))
            .await
            .unwrap();
    assert!(matches!(r.kind, Some(peer_response::Kind::Receipt(_))));
    let after_referral = al.ctx().store.received_count();
    let view = trm_tests::recv::StoreView::of(&al);
    assert_eq!(
        reject_reason(&conn, envelope(&it, "AL", "IT-RAW-0009", follow_up)).await,
        RejectReason::OutOfOrder as i32
    );
    // The referring side cannot accept its own referral.
    let accept = pb::body::Payload::Acceptance(pb::Acceptance {
        responsible_institution: "x".into(),
        ..Default::default()
    });
    assert_eq!(
        reject_reason(&conn, envelope(&it, "AL", "IT-RAW-0009", accept)).await,
        RejectReason::OutOfOrder as i32
    );
    // A closure without an outcome.
    let closure = pb::body::Payload::Closure(pb::Closure::default());
    assert_eq!(
        reject_reason(&conn, envelope(&it, "AL", "IT-RAW-0009", closure)).await,
        RejectReason::Malformed as i32
    );
    // A message without payload.
    let keys = it.keys();
    let body = pb::Body {
        version: 1,
        message_id: vec![7; 16],
        sender: "IT".into(),
        recipient: "AL".into(),
        created_ms: trm_node::base::time::now_ms(),
        case_ref: "IT-RAW-0009".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let env = pb::Envelope {
        signature: signing::sign(&keys.signing, Tag::Envelope, &body).to_vec(),
        signer: keys.public_key().to_vec(),
        body,
    };
    assert_eq!(
        reject_reason(&conn, env).await,
        RejectReason::Malformed as i32
    );
    assert_eq!(al.ctx().store.received_count(), after_referral);
    assert_eq!(after_referral, before + 1);
    // Nothing else changed either (threads, keys, directory, peers); the 4 rejections logged.
    view.assert_only_rejections_logged(&al, 4);
    assert_eq!(
        thread_state(&al, "IT", "IT-RAW-0009"),
        "pending",
        "thread unchanged"
    );
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_change_reaches_every_peer_and_a_tampered_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    let mut fr = TestNode::init(tmp.path(), "FR");
    it.start().await;
    al.start().await;
    fr.start().await;
    pin_all(&[&it, &al, &fr]).await;
    let edit = json!({ "contacts": [
        { "institution": "Synthetic NRU Italy", "unit": "TRM desk", "role": "national_referral_unit",
          "channels": ["mailto:trm-desk@example.invalid"], "languages": ["it", "en"], "hours": "Mon-Fri 9-17",
          "last_confirmed": date_in_days(-1) },
        { "institution": "Synthetic Labour Inspectorate", "role": "labour_inspectorate", "last_confirmed": "2020-01-01" }
    ]});
    it.op(Call::DirectoryEdit(api::DirectoryEdit {
        json: edit.to_string(),
    }))
    .await;
    let v = it
        .op(Call::DirectoryPublish(api::DirectoryPublish {}))
        .await;
    assert_eq!(v["sent"].as_array().unwrap().len(), 2);
    for peer in [&al, &fr] {
        let got = wait_until(15, || {
            peer.ctx()
                .store
                .meta("directory/peer/IT")
                .unwrap()
                .is_some()
        })
        .await;
        assert!(got, "{} got the directory", peer.country);
        let list = peer
            .op(Call::DirectoryList(api::DirectoryList {
                country: "IT".into(),
            }))
            .await;
        let entries = list["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["stale"], false);
        assert_eq!(entries[1]["stale"], true, "not confirmed for years");
    }
    // A directory signed by another key, under Italy's name: refused.
    let conn = raw_peer(&it, &al).await;
    let view = trm_tests::recv::StoreView::of(&al);
    let d = pb::Directory {
        country: "IT".into(),
        version: 99,
        published_ms: 1,
        contacts: vec![],
    };
    let body = d.encode_to_vec();
    let other = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let signed = pb::Signed {
        signature: signing::sign(&other, Tag::Directory, &body).to_vec(),
        signer: it.keys().public_key().to_vec(),
        body,
    };
    let update = pb::body::Payload::DirectoryUpdate(pb::DirectoryUpdate {
        directory: Some(signed),
    });
    assert_eq!(
        reject_reason(&conn, envelope(&it, "AL", "", update)).await,
        RejectReason::BadSignature as i32
    );
    // Nothing stored: the directory, threads and keys are as before; one rejection logged.
    view.assert_only_rejections_logged(&al, 1);
    let list = al
        .op(Call::DirectoryList(api::DirectoryList {
            country: "IT".into(),
        }))
        .await;
    assert_eq!(
        list["entries"][0]["version"], 1,
        "the valid version is kept"
    );
    for n in [it, al, fr] {
        n.finish().await;
    }
}

/// Issue 12 item 16 on the receiving side: a follow-up dated beyond the receiver's clock plus
/// one day of skew is MALFORMED and not stored; one dated today is received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_dated_in_the_future_is_refused_on_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al) = start_pair_in(tmp.path(), "IT", "AL", |_| {}).await;
    let (o_it, o_al) = (
        it.officer("Officer IT", "officer").await,
        al.officer("Officer AL", "officer").await,
    );
    let referral = trm_tests::recv::referred(&it, &o_it, "IT-DATE-0001", &al).await;
    trm_tests::recv::accept(&al, &o_al, &referral).await;
    let conn = raw_peer(&al, &it).await;
    let dated = |date: String| {
        pb::body::Payload::FollowUp(pb::FollowUp {
            phase: pb::Phase::FirstAssistance as i32,
            status: "synthetic status".into(),
            date,
            ..Default::default()
        })
    };
    let before = it.ctx().store.received_count();
    for days in [2, 30] {
        let env = envelope(&al, "IT", "IT-DATE-0001", dated(date_in_days(days)));
        assert_eq!(
            reject_reason(&conn, env).await,
            RejectReason::Malformed as i32,
            "{days} days ahead"
        );
    }
    assert_eq!(it.ctx().store.received_count(), before, "nothing stored");
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
            envelope: Some(envelope(&al, "IT", "IT-DATE-0001", dated(date_in_days(0)))),
            disclosures: vec![],
        })),
    };
    let r: pb::PeerResponse =
        trm_node::net::transport::request(&conn, &req, 1 << 20, Duration::from_secs(5))
            .await
            .unwrap();
    assert!(
        matches!(r.kind, Some(peer_response::Kind::Receipt(_))),
        "{r:?}"
    );
    it.finish().await;
    al.finish().await;
}
