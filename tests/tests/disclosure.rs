//! Minimal disclosure: each country sends only what its law, the receiver's law, the person's
//! consent and a supervisor allow, verifiably; erasure; encryption at rest.

use prost::Message;
use serde_json::Value;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb::{self, RejectReason};
use trm_proto::signing::{self, Tag};
use trm_tests::*;

const NON_PERSONAL: [&str; 6] = [
    "reference",
    "exploitation",
    "assistance",
    "risk",
    "return",
    "proceedings",
];

/// IT (all categories allowed to AL and FR by its law), AL (accepts all), FR (no personal data).
async fn federation(tmp: &std::path::Path) -> (TestNode, TestNode, TestNode) {
    let mut it = TestNode::init(tmp, "IT");
    let mut al = TestNode::init(tmp, "AL");
    let mut fr = TestNode::init(tmp, "FR");
    it.configure(|c| {
        c.outgoing.insert("AL".into(), all_categories());
        c.outgoing.insert("FR".into(), all_categories());
    });
    fr.configure(|c| c.acceptance = NON_PERSONAL.iter().map(|s| s.to_string()).collect());
    it.start().await;
    al.start().await;
    fr.start().await;
    pin_all(&[&it, &al, &fr]).await;
    (it, al, fr)
}

async fn send(
    node: &TestNode,
    cred: &trm_node::identity::Credential,
    case: &str,
    to: &str,
) -> String {
    let v = node
        .ok(
            cred,
            Call::ReferralSend(api::ReferralSend {
                case_id: case.into(),
                to: to.into(),
            }),
        )
        .await;
    let id = v["message"].as_str().unwrap().to_string();
    assert!(
        wait_until(15, || node.delivered(&id)).await,
        "referral to {to} delivered"
    );
    id
}

fn sections(v: &Value) -> Vec<String> {
    v["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_france_rule_and_consent_and_approval() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al, fr) = federation(tmp.path()).await;
    let officer = it.officer("Officer Example", "officer").await;
    let supervisor = it.officer("Supervisor Example", "supervisor").await;
    it.ok(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-DISC-0001", None),
        }),
    )
    .await;

    // Without approval nothing personal leaves, even to a country that accepts it.
    let p = it
        .ok(
            &officer,
            Call::ReferralPreview(api::ReferralPreview {
                case_id: "IT-DISC-0001".into(),
                to: "AL".into(),
            }),
        )
        .await;
    let fam = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "identity.family_name")
        .unwrap();
    assert_eq!(fam["released"], false);
    assert_eq!(fam["withheld_by"], serde_json::json!(["approval"]));

    // A supervisor approves identity and health for Albania (and for France).
    for to in ["AL", "FR"] {
        it.ok(
            &supervisor,
            Call::ReferralApprove(api::ReferralApprove {
                referral: format!("IT-DISC-0001/{to}"),
                categories: vec!["identity".into(), "health".into(), "family".into()],
            }),
        )
        .await;
    }
    // Preview is exactly what is sent: family stays withheld (consent refused).
    let p = it
        .ok(
            &officer,
            Call::ReferralPreview(api::ReferralPreview {
                case_id: "IT-DISC-0001".into(),
                to: "AL".into(),
            }),
        )
        .await;
    let released: Vec<String> = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["released"] == true)
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    let fam = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "family.whereabouts_type")
        .unwrap();
    assert_eq!(fam["withheld_by"], serde_json::json!(["consent"]));

    let to_al = send(&it, &officer, "IT-DISC-0001", "AL").await;
    let to_fr = send(&it, &officer, "IT-DISC-0001", "FR").await;

    let al_officer = al.officer("Officer AL", "officer").await;
    let got = al
        .ok(
            &al_officer,
            Call::MessageShow(api::MessageShow { id: to_al }),
        )
        .await;
    assert_eq!(got["verification"]["signature"], "valid");
    assert!(got["verification"]["disclosures"]
        .as_str()
        .unwrap()
        .starts_with("all "));
    let secs = sections(&got);
    assert!(
        secs.contains(&"identity".to_string()) && secs.contains(&"health".to_string()),
        "{secs:?}"
    );
    assert!(
        !secs.contains(&"family".to_string()),
        "family consent was refused"
    );
    let mut got_paths = Vec::new();
    for (sec, m) in got["fields"].as_object().unwrap() {
        for k in m.as_object().unwrap().keys() {
            got_paths.push(format!("{sec}.{k}"));
        }
    }
    got_paths.sort();
    let mut want = released.clone();
    want.sort();
    assert_eq!(
        got_paths, want,
        "Albania received exactly what the preview released"
    );

    // France's law: no identity, family, health or child field, whatever Italy allows.
    let fr_officer = fr.officer("Officer FR", "officer").await;
    let got = fr
        .ok(
            &fr_officer,
            Call::MessageShow(api::MessageShow { id: to_fr }),
        )
        .await;
    assert_eq!(got["verification"]["signature"], "valid");
    let secs = sections(&got);
    for personal in ["identity", "family", "health", "child"] {
        assert!(
            !secs.contains(&personal.to_string()),
            "France got {personal}"
        );
    }
    for ok in [
        "exploitation",
        "assistance",
        "risk",
        "return",
        "proceedings",
    ] {
        assert!(secs.contains(&ok.to_string()), "France can read {ok}");
    }
    for n in [it, al, fr] {
        n.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_an_officer_cannot_approve_their_own_referral() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al, fr) = federation(tmp.path()).await;
    let officer = it.officer("Same Person", "officer").await;
    let supervisor = it.officer("Same Person", "supervisor").await;
    it.ok(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-DISC-0002", None),
        }),
    )
    .await;
    let err = it
        .call_as(
            &officer,
            Call::ReferralApprove(api::ReferralApprove {
                referral: "IT-DISC-0002/AL".into(),
                categories: vec!["identity".into()],
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs role supervisor"), "{err}");
    it.ok(
        &supervisor,
        Call::ReferralApprove(api::ReferralApprove {
            referral: "IT-DISC-0002/AL".into(),
            categories: vec!["identity".into()],
        }),
    )
    .await;
    let p = it
        .ok(
            &officer,
            Call::ReferralPreview(api::ReferralPreview {
                case_id: "IT-DISC-0002".into(),
                to: "AL".into(),
            }),
        )
        .await;
    let fam = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "identity.family_name")
        .unwrap();
    assert_eq!(
        fam["released"], false,
        "an approval by the sending officer's own name does not count"
    );
    for n in [it, al, fr] {
        n.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_disclosing_beyond_the_acceptance_profile_or_forging_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al, fr) = federation(tmp.path()).await;
    let conn = raw_peer(&it, &fr).await;
    let (fr_before, al_before) = (
        trm_tests::recv::StoreView::of(&fr),
        trm_tests::recv::StoreView::of(&al),
    );
    let fields = vec![
        (
            "reference.case_ref".to_string(),
            b"\"IT-EVIL-0001\"".to_vec(),
        ),
        ("identity.family_name".to_string(), b"\"Testova\"".to_vec()),
    ];
    let c = trm_proto::commit::commit(&fields, &mut rand::rngs::OsRng).unwrap();
    let referral = |digests: Vec<Vec<u8>>| {
        pb::body::Payload::Referral(pb::Referral {
            template_version: "trm-template/1".into(),
            digests,
            ..Default::default()
        })
    };
    // Beyond France's acceptance profile: refused, the field named, nothing stored.
    let env = signed_envelope(
        &it,
        "FR",
        "IT-EVIL-0001",
        referral(c.digest_bytes()),
        vec![],
    );
    let r = rejection_of(
        &transmit(
            &conn,
            pb::Transmission {
                envelope: Some(env),
                disclosures: c.disclosures.clone(),
            },
        )
        .await,
    );
    assert_eq!(r.reason, RejectReason::CategoryNotAccepted as i32);
    assert_eq!(r.fields, vec!["identity.family_name".to_string()]);
    assert!(
        !r.detail.contains("Testova"),
        "a rejection never carries a value"
    );
    assert_eq!(fr.ctx().store.received_count(), 0);

    // A forged disclosure (value changed after signing): refused.
    let mut forged = c.disclosures.clone();
    forged.retain(|d| d.path == "reference.case_ref");
    forged[0].value = b"\"IT-EVIL-0002\"".to_vec();
    let env = signed_envelope(
        &it,
        "AL",
        "IT-EVIL-0001",
        referral(c.digest_bytes()),
        vec![],
    );
    let conn_al = raw_peer(&it, &al).await;
    let r = rejection_of(
        &transmit(
            &conn_al,
            pb::Transmission {
                envelope: Some(env),
                disclosures: forged,
            },
        )
        .await,
    );
    assert_eq!(r.reason, RejectReason::BadDisclosure as i32);
    assert_eq!(al.ctx().store.received_count(), 0);
    fr_before.assert_only_rejections_logged(&fr, 1);
    al_before.assert_only_rejections_logged(&al, 1);
    for n in [it, al, fr] {
        n.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_disclosure_verifies_against_the_original_signature() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al, fr) = federation(tmp.path()).await;
    let officer = it.officer("Officer Example", "officer").await;
    let supervisor = it.officer("Supervisor Example", "supervisor").await;
    it.ok(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-DISC-0003", None),
        }),
    )
    .await;
    let referral = send(&it, &officer, "IT-DISC-0003", "AL").await;
    let al_officer = al.officer("Officer AL", "officer").await;
    let shown = al
        .ok(
            &al_officer,
            Call::CaseShow(api::CaseShow {
                id: "IT-DISC-0003".into(),
            }),
        )
        .await;
    assert!(shown["case"].get("identity").is_none());

    // Nothing more can be released before approval.
    let err = it
        .call_as(
            &officer,
            Call::ReferralDisclose(api::ReferralDisclose {
                referral: referral.clone(),
                fields: vec![],
                categories: vec!["identity".into()],
            }),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("still withheld"), "{err}");

    it.ok(
        &supervisor,
        Call::ReferralApprove(api::ReferralApprove {
            referral: referral.clone(),
            categories: vec!["identity".into()],
        }),
    )
    .await;
    let v = it
        .ok(
            &officer,
            Call::ReferralDisclose(api::ReferralDisclose {
                referral: referral.clone(),
                fields: vec![],
                categories: vec!["identity".into()],
            }),
        )
        .await;
    let disclosure = v["message"].as_str().unwrap().to_string();
    assert!(wait_until(15, || it.delivered(&disclosure)).await);
    let got = al
        .ok(
            &al_officer,
            Call::MessageShow(api::MessageShow { id: disclosure }),
        )
        .await;
    assert_eq!(got["kind"], "disclosure");
    assert_eq!(got["verification"]["signature"], "valid");
    assert!(
        got["verification"]["disclosures"]
            .as_str()
            .unwrap()
            .starts_with("all "),
        "{got}"
    );
    let shown = al
        .ok(
            &al_officer,
            Call::CaseShow(api::CaseShow {
                id: "IT-DISC-0003".into(),
            }),
        )
        .await;
    assert_eq!(shown["case"]["identity"]["family_name"], "Testova");

    // The released fields match digests signed in the original referral, checked here too.
    let rec = al
        .ctx()
        .store
        .received("IT", &hex::decode(&referral).unwrap())
        .unwrap()
        .unwrap();
    let env = pb::Envelope::decode(rec.envelope.as_slice()).unwrap();
    signing::verify(
        &it.keys().signing.verifying_key(),
        Tag::Envelope,
        &env.body,
        &env.signature,
    )
    .unwrap();
    for n in [it, al, fr] {
        n.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_round_trip_leaves_no_canary_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut it, mut al, mut fr) = federation(tmp.path()).await;
    let canary = format!("Canarytestova{}", rand::random::<u32>());
    let officer = it.officer("Officer Example", "officer").await;
    let supervisor = it.officer("Supervisor Example", "supervisor").await;
    it.ok(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-DISC-0004", Some(&canary)),
        }),
    )
    .await;
    it.ok(
        &supervisor,
        Call::ReferralApprove(api::ReferralApprove {
            referral: "IT-DISC-0004/AL".into(),
            categories: vec!["identity".into()],
        }),
    )
    .await;
    let referral = send(&it, &officer, "IT-DISC-0004", "AL").await;
    let al_officer = al.officer("Officer AL", "officer").await;
    let shown = al
        .ok(
            &al_officer,
            Call::CaseShow(api::CaseShow {
                id: "IT-DISC-0004".into(),
            }),
        )
        .await;
    assert_eq!(shown["case"]["identity"]["family_name"], canary.as_str());

    // Never in clear in either store, even before erasure.
    it.ctx().store.flush().unwrap();
    al.ctx().store.flush().unwrap();
    assert_eq!(
        files_containing(tmp.path(), canary.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );

    // Consent withdrawn: erased here, erasure requested from Albania, confirmed back.
    let v = it
        .ok(
            &officer,
            Call::CaseConsent(api::CaseConsent {
                case_id: "IT-DISC-0004".into(),
                withdraw: "identity".into(),
                confirmed: true,
                ..Default::default()
            }),
        )
        .await;
    assert_eq!(v["erasure_requests"].as_array().unwrap().len(), 1);
    let confirmed = || {
        it.ctx()
            .store
            .inbox()
            .unwrap()
            .iter()
            .any(|m| m.kind == "erasure_confirmation" && m.peer == "AL")
    };
    assert!(
        wait_until(20, confirmed).await,
        "Albania confirmed the erasure"
    );
    let tl = it
        .ok(
            &officer,
            Call::CaseTimeline(api::CaseTimeline {
                id: "IT-DISC-0004".into(),
            }),
        )
        .await;
    let kinds: Vec<&str> = tl["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"erasure_request") && kinds.contains(&"erasure_confirmation"),
        "{kinds:?}"
    );

    // Values gone on both sides; signatures and the remaining digests still verify.
    let shown = al
        .ok(
            &al_officer,
            Call::CaseShow(api::CaseShow {
                id: "IT-DISC-0004".into(),
            }),
        )
        .await;
    assert!(shown["case"].get("identity").is_none(), "{shown}");
    let got = al
        .ok(
            &al_officer,
            Call::MessageShow(api::MessageShow {
                id: referral.clone(),
            }),
        )
        .await;
    assert_eq!(got["verification"]["signature"], "valid");
    assert!(got["verification"]["disclosures"]
        .as_str()
        .unwrap()
        .starts_with("all "));
    let mine = it
        .ok(
            &officer,
            Call::CaseShow(api::CaseShow {
                id: "IT-DISC-0004".into(),
            }),
        )
        .await;
    assert!(mine["case"].get("identity").is_none());
    assert_eq!(mine["case"]["consent"]["identity"]["status"], "given");
    assert!(mine["case"]["consent"]["identity"]["withdrawn"].is_string());

    it.stop().await;
    al.stop().await;
    fr.stop().await;
    assert_eq!(
        files_containing(tmp.path(), canary.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expiry_erases_with_a_controllable_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    it.configure(|c| {
        c.retention_days.insert("health".into(), 30);
    });
    it.start().await;
    let officer = it.officer("Officer Example", "officer").await;
    it.ok(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: adult_case("IT-DISC-0005", None),
        }),
    )
    .await;
    let ctx = it.handle.as_ref().unwrap().ctx.clone();
    assert_eq!(
        trm_node::referral::erasure::apply_retention(&ctx)
            .await
            .unwrap(),
        0,
        "nothing expired yet"
    );
    let shown = it
        .ok(
            &officer,
            Call::CaseShow(api::CaseShow {
                id: "IT-DISC-0005".into(),
            }),
        )
        .await;
    assert!(shown["case"].get("health").is_some());
    ctx.clock.advance(31 * 86_400_000);
    assert_eq!(
        trm_node::referral::erasure::apply_retention(&ctx)
            .await
            .unwrap(),
        1
    );
    let shown = it
        .ok(
            &officer,
            Call::CaseShow(api::CaseShow {
                id: "IT-DISC-0005".into(),
            }),
        )
        .await;
    assert!(
        shown["case"].get("health").is_none(),
        "health erased after 30 days"
    );
    assert!(
        shown["case"].get("identity").is_some(),
        "other categories kept"
    );
    assert_eq!(shown["erased"], serde_json::json!(["health"]));
    it.finish().await;
}
