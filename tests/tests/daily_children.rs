//! Children are never hidden, consent and its withdrawal, case references and dates (issue 12,
//! items 6, 10, 16 and 17), through the real `trm-node` and `trm-admin` binaries.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::{admin_as, admin_ok as admin};
use trm_tests::{date_in_days, pin_all, wait_until, TestNode};

/// What France publishes: no personal category at all.
const NON_PERSONAL: [&str; 6] = [
    "reference",
    "exploitation",
    "assistance",
    "risk",
    "return",
    "proceedings",
];

/// Runs `--json args`, which must succeed; returns the document.
async fn json(cred: &Path, args: &[&str]) -> Value {
    let all = [&["--json"][..], args].concat();
    serde_json::from_str(&admin(cred, &all).await).expect("a JSON document")
}

/// An emergency child case (no consent recorded) as a file in `dir`.
fn child_case(dir: &Path, case_ref: &str, due: &str) -> String {
    let v = serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "date": "2026-11-01",
            "reason": "Synthetic child referral.",
            "urgency": "emergency",
            "response_due": due,
        },
        "child": {
            "minor": true,
            "unaccompanied": true,
            "guardian_appointed": true,
            "best_interests_status": "in_progress",
            "consent_for_child_by": "guardian",
        },
        "exploitation": { "forms": ["forced_begging"], "victim_status": "presumed" },
    });
    let file = dir.join(format!("{case_ref}.json"));
    std::fs::write(&file, v.to_string()).expect("case file");
    file.display().to_string()
}

/// An officer of `node` named `name`: its credential file.
async fn officer(root: &Path, node: &TestNode, name: &str, role: &str) -> PathBuf {
    let file = root.join(format!("{}.cred", name.replace(' ', "_")));
    let out = file.display().to_string();
    let op = node.dir.join(OPERATOR_CRED);
    admin(
        &op,
        &["officer", "add", name, "--role", role, "--out", &out],
    )
    .await;
    file
}

/// Italy with its default outgoing profile and France, which accepts no personal data,
/// started and pinned to each other.
async fn italy_france(root: &Path) -> (TestNode, TestNode) {
    let mut it = TestNode::init(root, "IT");
    let mut fr = TestNode::init(root, "FR");
    fr.configure(|c| c.acceptance = NON_PERSONAL.iter().map(|s| s.to_string()).collect());
    it.start().await;
    fr.start().await;
    pin_all(&[&it, &fr]).await;
    (it, fr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn france_is_told_the_person_is_a_child_and_the_sender_is_warned() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (it, fr) = italy_france(tmp.path()).await;
    let olivia = officer(tmp.path(), &it, "Olivia Example", "officer").await;
    let felix = officer(tmp.path(), &fr, "Felix Example", "officer").await;
    let file = child_case(tmp.path(), "IT-CHILD-1", &date_in_days(3));
    admin(&olivia, &["case", "create", "--file", &file]).await;
    let give = ["case", "consent", "IT-CHILD-1", "--give", "exploitation"];
    admin(&olivia, &[&give[..], &["--form", "written"]].concat()).await;

    // Preview and send both say that the child section stays behind.
    let preview = json(
        &olivia,
        &["referral", "preview", "IT-CHILD-1", "--to", "FR"],
    )
    .await;
    assert_eq!(preview["warnings"][0]["code"], "child_section_withheld");
    let minor = preview["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["path"] == "reference.minor")
        .expect("reference.minor decided")
        .clone();
    assert_eq!(minor["released"], true, "{minor}");
    let text = admin(&olivia, &["referral", "send", "IT-CHILD-1", "--to", "FR"]).await;
    assert!(
        text.contains("warning: child case: the child section (child.*) is withheld"),
        "{text}"
    );
    let id = text
        .split_whitespace()
        .nth(1)
        .expect("message id")
        .to_string();
    assert!(wait_until(30, || it.delivered(&id)).await, "delivered");

    // France: no child.* field, but the header says it is a child, and the urgency.
    let inbox = json(&felix, &["inbox"]).await;
    let entry = &inbox["messages"][0];
    assert_eq!(entry["case_ref"], "IT-CHILD-1");
    assert_eq!(entry["minor"], true, "{entry}");
    assert_eq!(entry["urgency"], "emergency", "{entry}");
    let cats = entry["categories"].as_array().expect("categories");
    assert!(!cats.iter().any(|c| c == "child"), "{entry}");
    let line = admin(&felix, &["inbox"]).await;
    let row = line
        .lines()
        .find(|l| l.contains("IT-CHILD-1"))
        .expect("inbox row");
    assert!(row.contains("emergency") && row.contains("yes"), "{line}");
    let shown = admin(&felix, &["message", "show", &id]).await;
    assert!(
        shown.contains("minor:        yes: the person is a child"),
        "{shown}"
    );
    assert!(shown.contains("urgency:      emergency"), "{shown}");
    assert!(!shown.contains("\"child\""), "{shown}");

    dates_in_the_future_are_refused(&olivia).await;
    withdrawal_is_confirmed_recorded_and_reaches_france(&olivia, &felix).await;
    let file = child_case(tmp.path(), "IT-CHILD-3", &date_in_days(-2));
    admin(&olivia, &["case", "create", "--file", &file]).await;
    let sent = json(&olivia, &["referral", "send", "IT-CHILD-3", "--to", "FR"]).await;
    let codes: Vec<&Value> = sent["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| &w["code"])
        .collect();
    assert_eq!(
        codes,
        [
            "child_section_withheld",
            "response_due_past",
            "no_agreement"
        ],
        "{sent}"
    );
    it.finish().await;
    fr.finish().await;
}

/// Item 16: a follow-up or closure dated after the node's today is refused, nothing sent.
async fn dates_in_the_future_are_refused(olivia: &Path) {
    let tomorrow = date_in_days(1);
    let followup = [
        &["followup", "send", "IT-CHILD-1", "--to", "FR"][..],
        &[
            "--phase",
            "first_assistance",
            "--status",
            "placed",
            "--date",
            &tomorrow,
        ],
    ]
    .concat();
    let close = [
        &["case", "close", "IT-CHILD-1", "--to", "FR"][..],
        &["--outcome", "other", "--date", &tomorrow],
    ]
    .concat();
    for args in [followup, close] {
        let ran = admin_as(olivia, &args).await;
        assert_ne!(ran.code, Some(0), "{args:?}: {ran:?}");
        assert!(ran.stderr.contains("is in the future"), "{ran:?}");
        assert_eq!(ran.stderr.trim().lines().count(), 1, "{ran:?}");
    }
    let today = date_in_days(0);
    let close = [
        &["case", "close", "IT-CHILD-1", "--to", "FR"][..],
        &["--outcome", "other", "--date", &today],
    ]
    .concat();
    admin(olivia, &close).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_minor_that_contradicts_the_child_section_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut it = TestNode::init(tmp.path(), "IT");
    it.start().await;
    let olivia = officer(tmp.path(), &it, "Olivia Example", "officer").await;
    let file = tmp.path().join("adult.json");
    let doc = serde_json::json!({
        "reference": { "case_ref": "IT-ADULT-1", "date": "2026-11-01", "minor": true },
    });
    std::fs::write(&file, doc.to_string()).unwrap();
    let ran = admin_as(
        &olivia,
        &["case", "create", "--file", &file.display().to_string()],
    )
    .await;
    assert_eq!(ran.code, Some(64), "{ran:?}");
    assert!(
        ran.stderr.contains("reference.minor: must be false"),
        "{ran:?}"
    );
    it.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_on_a_child_case_is_the_guardians_with_its_form() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut it = TestNode::init(tmp.path(), "IT");
    it.start().await;
    let olivia = officer(tmp.path(), &it, "Olivia Example", "officer").await;
    let file = child_case(tmp.path(), "IT-CHILD-2", &date_in_days(3));
    admin(&olivia, &["case", "create", "--file", &file]).await;

    let given = ["case", "consent", "IT-CHILD-2", "--give", "child"];
    let text = admin(&olivia, &[&given[..], &["--form", "oral"]].concat()).await;
    assert!(text.contains("given (by the guardian)"), "{text}");
    let by_person = [&given[..], &["--by", "person", "--form", "written"]].concat();
    let v = json(&olivia, &[&by_person[..]].concat()).await;
    assert_eq!(v["by"], "person");
    assert_eq!(v["warnings"][0]["code"], "child_consent_by_person", "{v}");
    let v = json(
        &olivia,
        &["case", "consent", "IT-CHILD-2", "--give", "health"],
    )
    .await;
    assert_eq!(v["by"], "guardian");
    let case = json(&olivia, &["case", "show", "IT-CHILD-2"]).await;
    let consent = &case["case"]["consent"];
    assert_eq!(consent["child"]["by"], "person");
    assert_eq!(consent["child"]["form"], "written");
    assert_eq!(consent["health"]["by"], "guardian");
    assert!(consent["health"].get("form").is_none(), "{consent}");

    let bad = admin_as(&olivia, &[&given[..], &["--form", "email"]].concat()).await;
    assert_eq!(bad.code, Some(64), "{bad:?}");
    it.finish().await;
}

/// Item 17: a withdrawal is confirmed (`--yes`; refused without a terminal), records on whose
/// request and which officer, and France's copy of the consent record says withdrawn.
async fn withdrawal_is_confirmed_recorded_and_reaches_france(olivia: &Path, felix: &Path) {
    let withdraw = [
        "case",
        "consent",
        "IT-CHILD-1",
        "--withdraw",
        "exploitation",
    ];
    let ran = admin_as(olivia, &withdraw).await;
    assert_eq!(ran.code, Some(64), "{ran:?}");
    assert!(ran.stderr.contains("add --yes"), "{ran:?}");
    let case = json(olivia, &["case", "show", "IT-CHILD-1"]).await;
    let record = &case["case"]["consent"]["exploitation"];
    assert!(record.get("withdrawn").is_none(), "unchanged: {record}");
    assert_eq!(record["by"], "guardian", "{record}");
    assert_eq!(record["form"], "written", "{record}");

    let yes = [&withdraw[..], &["--by", "person", "--yes"]].concat();
    let v = json(olivia, &yes).await;
    assert_eq!(v["status"], "withdrawn");
    assert_eq!(v["by"], "person");
    assert_eq!(v["recorded_by"], "Olivia Example");
    assert_eq!(
        v["erasure_requests"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    let case = json(olivia, &["case", "show", "IT-CHILD-1"]).await;
    let record = &case["case"]["consent"]["exploitation"];
    assert_eq!(record["withdrawn"], date_in_days(0), "{record}");
    assert_eq!(record["withdrawn_by"], "person", "{record}");

    let mut seen = Value::Null;
    for _ in 0..150 {
        let fr = json(felix, &["case", "show", "IT-CHILD-1"]).await;
        seen = fr["case"]["consent"]["exploitation"].clone();
        if seen.get("withdrawn").is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(seen["withdrawn"], date_in_days(0), "France's copy: {seen}");
    assert_eq!(seen["status"], "given", "{seen}");
}
