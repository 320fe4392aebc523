//! An officer's daily view through the real `trm-admin` binary (issue 12, items 3 to 5):
//! `case list` on both sides, `case show` in template order with its header first, and an
//! inbox with urgency and child flags, emergency and child cases first.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::{date_in_days, wait_until, TestNode};

use trm_tests::bins::admin_ok as admin;

/// A synthetic case file: `case_ref`, optional urgency, an optional child section.
fn case_file(dir: &Path, case_ref: &str, urgency: Option<&str>, minor: bool) -> String {
    let mut v = serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "reason": "Synthetic referral for the daily-work test.",
        },
        "exploitation": { "forms": ["labour"], "victim_status": "presumed" },
    });
    if let Some(u) = urgency {
        v["reference"]["urgency"] = Value::String(u.into());
        v["reference"]["response_due"] = Value::String(date_in_days(3));
    }
    if minor {
        trm_tests::make_child(&mut v);
        v["consent"]["reference"] = v["consent"]["child"].clone();
    }
    trm_tests::write_case(dir, case_ref, &v)
}

/// The first line of `text` that holds `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

struct Officers {
    olivia: PathBuf,
    sam: PathBuf,
    otto: PathBuf,
}

/// An officer and a supervisor in Italy, an officer in Albania, through `officer add`.
async fn officers(root: &Path, it: &TestNode, al: &TestNode) -> Officers {
    let cred = |name: &str| root.join(format!("{name}.cred"));
    let o = Officers {
        olivia: cred("olivia"),
        sam: cred("sam"),
        otto: cred("otto"),
    };
    let (it_op, al_op) = (it.dir.join(OPERATOR_CRED), al.dir.join(OPERATOR_CRED));
    for (name, role, file, op) in [
        ("Olivia Example", "officer", &o.olivia, &it_op),
        ("Sam Example", "supervisor", &o.sam, &it_op),
        ("Otto Example", "officer", &o.otto, &al_op),
    ] {
        let out = file.display().to_string();
        admin(op, &["officer", "add", name, "--role", role, "--out", &out]).await;
    }
    o
}

/// Records and refers three cases to Albania, oldest first: a routine adult case, one with
/// no urgency recorded, and an emergency child case (child section approved and consented).
async fn refer_three(root: &Path, it: &TestNode, o: &Officers) -> Vec<String> {
    let cases = [
        ("IT-DAILY-1", Some("routine"), false),
        ("IT-DAILY-2", None, false),
        ("IT-DAILY-3", Some("emergency"), true),
    ];
    let mut ids = Vec::new();
    for (case_ref, urgency, minor) in cases {
        let file = case_file(root, case_ref, urgency, minor);
        admin(&o.olivia, &["case", "create", "--file", &file]).await;
        if minor {
            let approve = ["referral", "approve", case_ref, "--to", "AL"];
            admin(&o.sam, &[&approve[..], &["--categories", "child"]].concat()).await;
        }
        let out = admin(
            &o.olivia,
            &["--json", "referral", "send", case_ref, "--to", "AL"],
        )
        .await;
        let v: Value = serde_json::from_str(&out).expect("JSON answer");
        let id = v["message"].as_str().expect("message id").to_string();
        assert!(wait_until(20, || it.delivered(&id)).await, "delivered");
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_works_from_list_show_and_inbox() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (it, al) = trm_tests::open_pair(tmp.path()).await;
    let o = officers(tmp.path(), &it, &al).await;
    let ids = refer_three(tmp.path(), &it, &o).await;

    inbox_is_ordered_and_flagged(&o.otto).await;

    // Albania accepts the child case; both sides list it with its state.
    let accept = [
        "referral",
        "accept",
        &ids[2],
        "--institution",
        "Synthetic Child Protection Unit",
        "--focal-point",
        "duty desk",
    ];
    admin(&o.otto, &accept).await;
    let accepted = || trm_tests::recv::state(&it, "AL", "IT-DAILY-3") == "accepted";
    assert!(wait_until(20, accepted).await, "acceptance arrived");

    lists_show_both_sides(&o).await;
    show_has_header_then_template_order(&o).await;
    it.finish().await;
    al.finish().await;
}

/// Albania's inbox: the emergency child case first with both flags; unknown said as such.
async fn inbox_is_ordered_and_flagged(otto: &Path) {
    let text = admin(otto, &["inbox"]).await;
    eprintln!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("URGENCY") && lines[0].contains("CHILD"),
        "{text}"
    );
    assert!(
        lines[1].contains("IT-DAILY-3"),
        "emergency child first:\n{text}"
    );
    let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let first = words(lines[1]);
    assert!(first.contains(&"emergency".to_string()), "{text}");
    assert!(first.contains(&"yes".to_string()), "{text}");
    let routine = words(line_with(&text, "IT-DAILY-1"));
    assert!(routine.contains(&"routine".to_string()), "{text}");
    // The child section is not disclosed, but the header (reference.minor, item 6) says no.
    assert!(routine.contains(&"no".to_string()), "{text}");
    let bare = words(line_with(&text, "IT-DAILY-2"));
    assert_eq!(
        bare.iter().filter(|w| *w == "unknown").count(),
        1,
        "no urgency recorded: {text}"
    );
    // Arrival order within a rank: case 1 before case 2.
    assert!(text.find("IT-DAILY-1") < text.find("IT-DAILY-2"), "{text}");

    let json: Value = serde_json::from_str(&admin(otto, &["--json", "inbox"]).await).unwrap();
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["case_ref"], "IT-DAILY-3");
    assert_eq!(messages[0]["urgency"], "emergency");
    assert_eq!(messages[0]["minor"], true);
    let of = |case: &str| {
        messages
            .iter()
            .find(|m| m["case_ref"] == case)
            .expect("entry")
            .clone()
    };
    assert_eq!(of("IT-DAILY-1")["urgency"], "routine");
    assert_eq!(of("IT-DAILY-1")["minor"], false);
    assert_eq!(of("IT-DAILY-2")["minor"], false);
    let entry = of("IT-DAILY-2");
    assert!(
        entry.get("urgency").is_some_and(Value::is_null),
        "no urgency recorded: null (unknown): {entry}"
    );
}

/// `case list`: Italy lists its cases with `AL:state`; Albania lists what it received.
async fn lists_show_both_sides(o: &Officers) {
    let it = admin(&o.olivia, &["case", "list"]).await;
    eprintln!("{it}");
    let header = it.lines().next().unwrap_or_default();
    assert!(
        header.contains("ORIGIN") && !header.contains("FIELDS"),
        "{it}"
    );
    assert!(line_with(&it, "IT-DAILY-3").contains("AL:accepted"), "{it}");
    let pending = line_with(&it, "IT-DAILY-1");
    assert!(pending.contains("AL:pending"), "{it}");
    assert!(pending.contains("recorded here"), "{it}");
    assert!(pending.contains("Olivia Example"), "{it}");

    let al = admin(&o.otto, &["case", "list"]).await;
    eprintln!("{al}");
    let received = line_with(&al, "IT-DAILY-3");
    assert!(received.contains("received from IT"), "{al}");
    assert!(received.contains("IT:accepted"), "{al}");
    assert!(line_with(&al, "IT-DAILY-1").contains("IT:pending"), "{al}");
}

/// `case show`: the header (case, origin, urgency, due, phase, state) first, then the
/// sections in template order with their labels; `--json` keeps the document's shape.
async fn show_has_header_then_template_order(o: &Officers) {
    let text = admin(&o.olivia, &["case", "show", "IT-DAILY-3"]).await;
    eprintln!("{text}");
    let keys: Vec<&str> = text
        .lines()
        .take(6)
        .map(|l| l.split("  ").next().unwrap_or_default().trim())
        .collect();
    assert_eq!(
        keys,
        [
            "case",
            "origin",
            "urgency",
            "response due",
            "phase",
            "state"
        ],
        "{text}"
    );
    assert!(
        line_with(&text, "origin").contains("recorded here"),
        "{text}"
    );
    assert!(
        line_with(&text, "origin").contains("Olivia Example"),
        "{text}"
    );
    assert!(line_with(&text, "urgency").ends_with("emergency"), "{text}");
    assert!(line_with(&text, "state").contains("AL:accepted"), "{text}");
    assert!(line_with(&text, "phase").contains("AL: "), "{text}");
    let at = |heading: &str| {
        text.find(&format!("\n{heading}\n"))
            .unwrap_or_else(|| panic!("no section {heading}:\n{text}"))
    };
    assert!(at("Reference") < at("Child"), "{text}");
    assert!(at("Child") < at("Exploitation"), "{text}");
    assert!(at("Exploitation") < at("Consent"), "{text}");
    let reason = text.find("  Reason ").expect("labelled reason");
    let urgency = text.find("  Urgency ").expect("labelled urgency");
    assert!(
        at("Reference") < reason && reason < urgency && urgency < at("Child"),
        "{text}"
    );
    assert!(line_with(&text, "  Minor ").ends_with("yes"), "{text}");
    assert!(
        line_with(&text, "  Case ref ").ends_with("IT-DAILY-3"),
        "{text}"
    );
    assert!(!text.contains('{'), "no JSON in the human view:\n{text}");

    let al = admin(&o.otto, &["case", "show", "IT-DAILY-3"]).await;
    eprintln!("{al}");
    assert!(
        line_with(&al, "origin").contains("received from IT"),
        "{al}"
    );
    assert!(line_with(&al, "state").contains("IT:accepted"), "{al}");
    let undisclosed = admin(&o.otto, &["case", "show", "IT-DAILY-2"]).await;
    assert!(
        line_with(&undisclosed, "urgency").ends_with("not disclosed"),
        "{undisclosed}"
    );

    let json: Value =
        serde_json::from_str(&admin(&o.otto, &["--json", "case", "show", "IT-DAILY-3"]).await)
            .unwrap();
    assert_eq!(json["case"]["child"]["minor"], true);
    assert_eq!(json["thread"]["state"], "accepted");
    assert_eq!(json["origin"], "received from IT");
}
