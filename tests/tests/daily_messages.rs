//! Every message readable (issue 12, items 1 and 2): `trm-admin message show` as an officer
//! reads it, through the real `trm-admin` binary against two nodes (IT and AL) on loopback.
//!
//! - a message waiting for a peer that is down shows its pending delivery in words (no
//!   rejection, nothing INVALID), and once delivered the receipt: who received it, when, and
//!   the key its signature was checked against;
//! - every payload kind prints what it says: an acceptance's institution and focal point, a
//!   follow-up's phase, status and date, an information request's question and purpose, a
//!   decline's reason, an erasure request and its confirmation, a closure's outcome.

use std::path::Path;

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::wait_until;

use trm_tests::bins::admin_ok as ok;

/// Runs `--json args`, which must succeed; returns the document.
async fn json(cred: &Path, args: &[&str]) -> Value {
    let all = [&["--json"][..], args].concat();
    serde_json::from_str(&ok(cred, &all).await).expect("a JSON document")
}

/// `message show ID` for people: printed, and never a case value's forgery look-alikes.
async fn show(cred: &Path, id: &str) -> String {
    let out = ok(cred, &["message", "show", id]).await;
    for bad in ["REJECT_UNSPECIFIED", "INVALID", "fields: {}"] {
        assert!(!out.contains(bad), "{bad:?} in message show:\n{out}");
    }
    out
}

fn assert_has(out: &str, needles: &[&str]) {
    for n in needles {
        assert!(out.contains(n), "{n:?} not in:\n{out}");
    }
}

/// Records the synthetic adult case `case_ref` at IT and refers it to AL; returns the
/// referral's message id.
async fn refer(p: &trm_tests::OfficerPair, case_ref: &str) -> String {
    let file = p.tmp.path().join(format!("{case_ref}.json"));
    std::fs::write(&file, trm_tests::adult_case(case_ref, None)).unwrap();
    let path = file.display().to_string();
    ok(&p.olivia, &["case", "create", "--file", &path]).await;
    let sent = json(&p.olivia, &["referral", "send", case_ref, "--to", "AL"]).await;
    sent["message"].as_str().expect("message id").to_string()
}

/// The id of the first message of `kind` in the inbox of `cred`'s node.
async fn inbox_id(cred: &Path, kind: &str) -> Option<String> {
    let inbox = json(cred, &["inbox"]).await;
    inbox["messages"]
        .as_array()?
        .iter()
        .find(|m| m["kind"] == kind)
        .and_then(|m| m["id"].as_str())
        .map(str::to_string)
}

/// Waits (bounded) until `kind` arrived at `cred`'s node; returns its id.
async fn arrived(cred: &Path, kind: &str) -> String {
    for _ in 0..100 {
        if let Some(id) = inbox_id(cred, kind).await {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("no {kind} arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_message_reads_as_pending_and_a_delivered_one_names_its_receipt() {
    let mut p = trm_tests::officer_pair().await;
    p.al.stop().await;
    let id = refer(&p, "IT-DAILY-1").await;
    let failed = || p.it.ctx().peers.health("AL").attempts > 0;
    assert!(wait_until(30, failed).await, "a delivery attempt failed");

    let out = show(&p.olivia, &id).await;
    assert_has(
        &out,
        &[
            "delivery:     pending: not delivered yet",
            "waiting for:  AL (",
            "attempts",
            "last error:",
            "messages ahead of it: 0",
            "next attempt: automatic: retried with a backoff",
            "urgency:",
            "response due:",
        ],
    );
    assert!(!out.contains("rejection"), "{out}");
    let doc = json(&p.olivia, &["message", "show", &id]).await;
    assert_eq!(doc["delivery"]["state"], "pending");
    assert!(doc["delivery"]["answer"].is_null(), "{doc}");
    assert!(doc["delivery"]["pending"]["attempts"].as_u64() > Some(0));
    assert_eq!(doc["payload"]["kind"], "referral");

    p.al.start().await;
    assert!(wait_until(60, || p.it.delivered(&id)).await, "delivered");
    let out = show(&p.olivia, &id).await;
    let peers = json(&p.it.dir.join(OPERATOR_CRED), &["peer", "list"]).await;
    let al_key = peers["peers"][0]["signing_key"].as_str().expect("AL key");
    assert_has(
        &out,
        &[
            "delivery:     delivered (answered ",
            "receipt:      AL received it at ",
            "(stored)",
            &format!("signature valid, checked against AL's pinned key {al_key}"),
        ],
    );
    assert!(!out.contains("waiting for"), "{out}");
    let doc = json(&p.olivia, &["message", "show", &id]).await;
    let receipt = &doc["delivery"]["answer"];
    assert_eq!(receipt["kind"], "receipt");
    assert_eq!(receipt["receiver"], "AL");
    assert_eq!(receipt["signer_key"], al_key);
    assert!(doc["delivery"].get("pending").is_none(), "{doc}");
    p.it.finish().await;
    p.al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_payload_kind_is_shown_in_words() {
    let p = trm_tests::officer_pair().await;
    let referral = refer(&p, "IT-DAILY-2").await;
    assert!(wait_until(30, || p.it.delivered(&referral)).await);

    // Acceptance, shown where it arrives (IT).
    let accept = [
        "referral",
        "accept",
        &referral,
        "--institution",
        "Synthetic Shelter",
        "--focal-point",
        "duty desk",
    ];
    json(&p.otto, &accept).await;
    let id = arrived(&p.olivia, "acceptance").await;
    let out = show(&p.olivia, &id).await;
    assert_has(
        &out,
        &[
            "received acceptance AL -> IT",
            "accepted by:  Synthetic Shelter",
            "focal point:  duty desk",
            &format!("in reply to:  {referral}"),
            "fields:       none carried by this message",
        ],
    );

    // A status-only follow-up, shown at AL.
    let follow = [
        &["followup", "send", "IT-DAILY-2", "--to", "AL"][..],
        &[
            "--phase",
            "first_assistance",
            "--status",
            "shelter place found",
        ],
        &["--date", "2026-03-20"],
    ]
    .concat();
    json(&p.olivia, &follow).await;
    let id = arrived(&p.otto, "follow_up").await;
    let out = show(&p.otto, &id).await;
    assert_has(
        &out,
        &[
            "phase:        first assistance and protection",
            "status:       shelter place found",
            "date:         2026-03-20",
        ],
    );

    // An information request (AL) and its decline (IT).
    let info = [
        &["info", "request", "IT-DAILY-2", "--to", "AL"][..],
        &["--fields", "identity.sex", "--purpose", "synthetic purpose"],
    ]
    .concat();
    json(&p.olivia, &info).await;
    let request = arrived(&p.otto, "information_request").await;
    let out = show(&p.otto, &request).await;
    assert_has(
        &out,
        &[
            "asks for:     identity.sex",
            "purpose:      synthetic purpose",
        ],
    );
    let decline = ["referral", "decline", &request, "--reason", "not held here"];
    json(&p.otto, &decline).await;
    let id = arrived(&p.olivia, "decline").await;
    let out = show(&p.olivia, &id).await;
    assert_has(&out, &["declined:     not held here"]);

    // Consent withdrawn: an erasure request (AL) and its confirmation (IT).
    let withdraw = [
        "case",
        "consent",
        "IT-DAILY-2",
        "--withdraw",
        "exploitation",
        "--yes",
    ];
    json(&p.olivia, &withdraw).await;
    let id = arrived(&p.otto, "erasure_request").await;
    let out = show(&p.otto, &id).await;
    assert_has(
        &out,
        &[
            "erase:        exploitation",
            "reason:       consent_withdrawn",
        ],
    );
    let id = arrived(&p.olivia, "erasure_confirmation").await;
    let out = show(&p.olivia, &id).await;
    assert_has(&out, &["erased:       exploitation", "at:           20"]);

    // Closure, shown at AL.
    let close = [
        &["case", "close", "IT-DAILY-2", "--to", "AL"][..],
        &["--outcome", "contact_lost", "--date", "2026-04-01"],
    ]
    .concat();
    json(&p.olivia, &close).await;
    let id = arrived(&p.otto, "closure").await;
    let out = show(&p.otto, &id).await;
    assert_has(
        &out,
        &["outcome:      contact lost", "closed on:    2026-04-01"],
    );
    let doc = json(&p.otto, &["message", "show", &id]).await;
    assert_eq!(doc["payload"]["kind"], "closure");
    assert_eq!(doc["payload"]["outcome"], "contact_lost");
    p.it.finish().await;
    p.al.finish().await;
}
