//! The agreement behind each partnership (issue 12 item 21), through the real binaries:
//! `peer add --agreement --legal-basis` records it with the pinned peer (re-adding the same
//! card updates it), `peer list` shows it, every referral carries it signed, and the receiver
//! names it in `message show` and `case show`; a referral to a partner without one warns;
//! bad text is refused with one line, the store unchanged.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_proto::admin as api;
use trm_proto::admin::admin_request::Call;
use trm_tests::bins::{admin_as, admin_ok as admin};
use trm_tests::{wait_until, TestNode};

const MOU: &str = "MoU IT-AL 2026/03";
const BASIS: &str = "Reg. (EU) 2016/679 art. 46(2)(a)";

fn case_file(dir: &Path, case_ref: &str) -> String {
    let v = serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "reason": "Synthetic referral for the agreement test.",
            "urgency": "routine",
        },
        "exploitation": { "forms": ["labour"], "victim_status": "presumed" },
    });
    let file = dir.join(format!("{case_ref}.json"));
    std::fs::write(&file, v.to_string()).expect("case file");
    file.display().to_string()
}

/// Records `case_ref` in Italy and refers it to Albania; returns the answer document once
/// the referral is delivered.
async fn refer(root: &Path, it: &TestNode, olivia: &Path, case_ref: &str) -> Value {
    let file = case_file(root, case_ref);
    admin(olivia, &["case", "create", "--file", &file]).await;
    let out = admin(
        olivia,
        &["--json", "referral", "send", case_ref, "--to", "AL"],
    )
    .await;
    let v: Value = serde_json::from_str(&out).expect("JSON answer");
    let id = v["message"].as_str().expect("message id").to_string();
    assert!(wait_until(20, || it.delivered(&id)).await, "delivered");
    v
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

async fn officer(node: &TestNode, root: &Path, name: &str, file: &str) -> PathBuf {
    let cred = root.join(file);
    let op = node.dir.join(OPERATOR_CRED);
    let out = cred.display().to_string();
    admin(
        &op,
        &["officer", "add", name, "--role", "officer", "--out", &out],
    )
    .await;
    cred
}

/// The peer list as JSON, by country.
async fn peer_json(op: &Path, cc: &str) -> Value {
    let out = admin(op, &["--json", "peer", "list"]).await;
    let v: Value = serde_json::from_str(&out).expect("JSON");
    v["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .find(|p| p["country"] == cc)
        .cloned()
        .unwrap_or_else(|| panic!("{cc} not in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agreement_travels_with_every_referral() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (mut it, al) = trm_tests::open_pair(root).await;
    let it_op = it.dir.join(OPERATOR_CRED);
    let olivia = officer(&it, root, "Olivia Example", "olivia.cred").await;
    let otto = officer(&al, root, "Otto Example", "otto.cred").await;
    let al_card = root.join("al-card.trm");
    std::fs::write(&al_card, al.card()).expect("card file");
    let al_card = al_card.display().to_string();

    // Albania pinned without an agreement (as before this item): sending works, and warns.
    assert!(peer_json(&it_op, "AL").await.get("agreement").is_none());
    let list = admin(&it_op, &["peer", "list"]).await;
    assert!(line_with(&list, "AL").contains("none recorded"), "{list}");
    let sent = refer(root, &it, &olivia, "IT-AGREE-1").await;
    let warnings = sent["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{sent}");
    assert_eq!(warnings[0]["code"], "no_agreement", "{sent}");
    let w = warnings[0]["text"].as_str().unwrap();
    assert!(w.contains("no agreement is recorded for AL"), "{w}");
    assert!(w.contains("peer add CARD --agreement"), "{w}");
    let file = case_file(root, "IT-AGREE-0");
    admin(&olivia, &["case", "create", "--file", &file]).await;
    let human = admin(&olivia, &["referral", "send", "IT-AGREE-0", "--to", "AL"]).await;
    assert!(
        line_with(&human, "warning:").contains("no agreement is recorded for AL"),
        "{human}"
    );
    let shown = admin(&otto, &["case", "show", "IT-AGREE-1"]).await;
    assert!(
        line_with(&shown, "basis of transfer:").contains("not stated by the sender"),
        "{shown}"
    );

    // Italy records the agreement by re-adding the SAME card: it is updated, not ignored.
    let added = admin(
        &it_op,
        &[
            "--json",
            "peer",
            "add",
            &al_card,
            "--agreement",
            MOU,
            "--legal-basis",
            BASIS,
        ],
    )
    .await;
    let added: Value = serde_json::from_str(&added).expect("JSON");
    assert_eq!(added["agreement"], MOU, "{added}");
    let p = peer_json(&it_op, "AL").await;
    assert_eq!(
        (p["agreement"].as_str(), p["legal_basis"].as_str()),
        (Some(MOU), Some(BASIS))
    );
    let list = admin(&it_op, &["peer", "list"]).await;
    assert!(line_with(&list, "AL").contains(MOU), "{list}");
    assert!(
        list.lines()
            .next()
            .unwrap()
            .to_lowercase()
            .contains("agreement"),
        "{list}"
    );

    // It survives a restart (kept in the store), and a re-add without --agreement keeps it.
    it.stop().await;
    it.start().await;
    admin(&it_op, &["peer", "add", &al_card]).await;
    let p = peer_json(&it_op, "AL").await;
    assert_eq!(
        (p["agreement"].as_str(), p["legal_basis"].as_str()),
        (Some(MOU), Some(BASIS))
    );

    // A referral now carries it, signed, and warns of nothing; Albania sees the basis.
    let sent = refer(root, &it, &olivia, "IT-AGREE-2").await;
    assert!(
        sent.get("warnings").is_none(),
        "no warning once agreed: {sent}"
    );
    let id = sent["message"].as_str().unwrap();
    let body = al_referral_body(&al, id);
    assert_eq!(
        (body.agreement.as_str(), body.legal_basis.as_str()),
        (MOU, BASIS)
    );
    assert!(wait_until(20, || al_has(&al, id)).await, "received");
    let msg = admin(&otto, &["message", "show", id]).await;
    let line = line_with(&msg, "basis of transfer:");
    assert!(line.contains(MOU) && line.contains(BASIS), "{msg}");
    let msg = admin(&otto, &["--json", "message", "show", id]).await;
    let v: Value = serde_json::from_str(&msg).expect("JSON");
    assert!(msg.contains(MOU) && msg.contains(BASIS), "{v}");
    let shown = admin(&otto, &["case", "show", "IT-AGREE-2"]).await;
    let line = line_with(&shown, "basis of transfer:");
    assert_eq!(
        line,
        format!("basis of transfer: {MOU} (legal basis: {BASIS})")
    );
    let shown = admin(&otto, &["--json", "case", "show", "IT-AGREE-2"]).await;
    let v: Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(
        v["basis_of_transfer"],
        format!("{MOU} (legal basis: {BASIS})")
    );
}

/// The received referral's signed body, from Albania's store.
fn al_referral_body(al: &TestNode, id_hex: &str) -> trm_proto::pb::Referral {
    use prost::Message;
    let id = hex::decode(id_hex).unwrap();
    let rec = al
        .ctx()
        .store
        .received("IT", &id)
        .expect("store")
        .expect("received");
    let env = trm_proto::pb::Envelope::decode(rec.envelope.as_slice()).unwrap();
    let body = trm_proto::pb::Body::decode(env.body.as_slice()).unwrap();
    match body.payload {
        Some(trm_proto::pb::body::Payload::Referral(r)) => r,
        other => panic!("not a referral: {other:?}"),
    }
}

fn al_has(al: &TestNode, id_hex: &str) -> bool {
    let id = hex::decode(id_hex).unwrap();
    al.ctx().store.received("IT", &id).ok().flatten().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_agreement_text_is_refused_with_one_line() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let it_op = it.dir.join(OPERATOR_CRED);
    let al_card = root.join("al-card.trm");
    std::fs::write(&al_card, al.card()).expect("card file");
    let al_card = al_card.display().to_string();
    admin(&it_op, &["peer", "add", &al_card, "--agreement", MOU]).await;
    let before = it.ctx().store.peer("AL").unwrap().unwrap();
    let long = "M".repeat(201);
    let bad: [(&[&str], &str); 5] = [
        (
            &["--agreement", "MoU\nIT-AL"],
            "--agreement contains a control character",
        ),
        (
            &["--agreement", "MoU \u{1b}[2J"],
            "--agreement contains a control character",
        ),
        (
            &["--agreement", &long],
            "--agreement is 201 characters long",
        ),
        (&["--agreement", " "], "--agreement is empty"),
        (
            &["--agreement", MOU, "--legal-basis", "a\tb"],
            "--legal-basis contains a control",
        ),
    ];
    for (args, said) in bad {
        let ran = admin_as(&it_op, &[&["peer", "add", &al_card][..], args].concat()).await;
        assert_eq!(ran.code, Some(64), "{args:?}: {}", ran.stderr);
        assert_eq!(ran.stderr.trim().lines().count(), 1, "{}", ran.stderr);
        assert!(ran.stderr.contains(said), "{args:?}: {}", ran.stderr);
    }
    // --legal-basis alone is a usage error.
    let ran = admin_as(&it_op, &["peer", "add", &al_card, "--legal-basis", BASIS]).await;
    assert_eq!(ran.code, Some(64), "{}", ran.stderr);
    assert_eq!(ran.stderr.trim().lines().count(), 1, "{}", ran.stderr);
    // The node checks too (a caller other than trm-admin): refused, one line.
    for (agreement, legal_basis) in [(long.as_str(), ""), ("", BASIS), (MOU, "x\u{7}")] {
        let call = Call::PeerAdd(api::PeerAdd {
            card: al.card(),
            agreement: agreement.into(),
            legal_basis: legal_basis.into(),
        });
        let err = it
            .call_as(&it.operator, call)
            .await
            .expect_err("refused")
            .to_string();
        assert!(!err.contains('\n') && err.contains("--"), "{err}");
    }
    assert_eq!(it.ctx().store.peer("AL").unwrap().unwrap(), before);
    let p = peer_json(&it_op, "AL").await;
    assert_eq!(p["agreement"], MOU);
    assert!(p.get("legal_basis").is_none(), "{p}");

    // A revoked and re-pinned partner is the same partnership: the agreement stays; a new
    // one given with --replace replaces it.
    admin(&it_op, &["peer", "revoke", "AL"]).await;
    assert_eq!(peer_json(&it_op, "AL").await["agreement"], MOU);
    admin(&it_op, &["peer", "add", "--replace", &al_card]).await;
    assert_eq!(peer_json(&it_op, "AL").await["agreement"], MOU);
    let next = "MoU IT-AL 2027/01";
    let out = admin(
        &it_op,
        &["peer", "add", "--replace", &al_card, "--agreement", next],
    )
    .await;
    assert!(line_with(&out, "agreement:").contains(next), "{out}");
    assert_eq!(peer_json(&it_op, "AL").await["agreement"], next);
}
