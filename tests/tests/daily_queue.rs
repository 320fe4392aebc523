//! The officer's work queue and the approvals through the real `trm-admin` binary (issue 12,
//! items 11, 12, 14, 15 and the `referral approve` part of 24): `queue` per role, approvals
//! that accumulate, belong to one referral and warn about the outgoing profile, `referral
//! approvals`, `followup preview`, withheld fields named at `followup send`, and an
//! information request answered on both sides.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::{admin_as, admin_ok as admin};
use trm_tests::{date_in_days, pin_all, wait_until, TestNode};

/// A synthetic case file from the adult example: `case_ref`, urgency, response date in
/// `due_days`, and (if `minor`) a child consented by the guardian.
fn case_file(dir: &Path, case_ref: &str, urgency: &str, due_days: i64, minor: bool) -> String {
    let mut v: Value = serde_json::from_str(&trm_tests::adult_case(case_ref, None)).unwrap();
    v["reference"]["urgency"] = Value::String(urgency.into());
    v["reference"]["response_due"] = Value::String(date_in_days(due_days));
    if minor {
        trm_tests::make_child(&mut v);
    }
    trm_tests::write_case(dir, case_ref, &v)
}

struct People {
    olivia: PathBuf,
    sam: PathBuf,
    sue: PathBuf,
    otto: PathBuf,
    it_op: PathBuf,
    it_auditor: PathBuf,
}

async fn people(root: &Path, it: &TestNode, al: &TestNode) -> People {
    let cred = |name: &str| root.join(format!("{name}.cred"));
    let p = People {
        olivia: cred("olivia"),
        sam: cred("sam"),
        sue: cred("sue"),
        otto: cred("otto"),
        it_op: it.dir.join(OPERATOR_CRED),
        it_auditor: cred("ada"),
    };
    let al_op = al.dir.join(OPERATOR_CRED);
    for (name, role, file, op) in [
        ("Olivia Example", "officer", &p.olivia, &p.it_op),
        ("Sam Example", "supervisor", &p.sam, &p.it_op),
        ("Sue Example", "supervisor", &p.sue, &p.it_op),
        ("Ada Example", "auditor", &p.it_auditor, &p.it_op),
        ("Otto Example", "officer", &p.otto, &al_op),
    ] {
        let out = file.display().to_string();
        admin(op, &["officer", "add", name, "--role", role, "--out", &out]).await;
    }
    p
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Italy sends every category but health to Albania (so approving health warns); Albania
/// expects a follow-up at once after accepting (`followup_due_days = 0`).
async fn pair(root: &Path) -> (TestNode, TestNode) {
    let mut it = TestNode::init(root, "IT");
    let mut al = TestNode::init(root, "AL");
    it.configure(|c| {
        let mut cats = trm_tests::all_categories();
        cats.retain(|c| c != "health");
        c.outgoing.insert("AL".into(), cats);
    });
    al.configure(|c| c.followup_due_days = 0);
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    (it, al)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_approvals_and_answers_through_the_binaries() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al) = pair(tmp.path()).await;
    let p = people(tmp.path(), &it, &al).await;
    let child = case_file(tmp.path(), "IT-Q-1", "emergency", 3, true);
    let late = case_file(tmp.path(), "IT-Q-2", "routine", -1, false);
    admin(&p.olivia, &["case", "create", "--file", &late]).await;
    admin(&p.olivia, &["case", "create", "--file", &child]).await;

    approvals_accumulate_and_warn(&p).await;
    let ids = send_both(&it, &p).await;
    approval_belongs_to_one_referral(&p, &ids[0]).await;
    officer_queues(&it, &al, &p, &ids).await;
    information_request_answered(&it, &al, &p).await;
    operator_queue(&it, &p).await;
    it.finish().await;
    al.finish().await;
}

/// Supervisors see what waits; two supervisors' approvals add up; health warns.
async fn approvals_accumulate_and_warn(p: &People) {
    let q = admin(&p.sam, &["queue"]).await;
    eprintln!("{q}");
    assert!(q.contains("[approval]") && q.contains("IT-Q-1"), "{q}");
    assert!(
        q.contains("trm-admin referral approve IT-Q-1 --to AL --categories"),
        "{q}"
    );
    // The emergency child case comes first.
    assert!(q.find("IT-Q-1") < q.find("IT-Q-2"), "{q}");
    let v = json(&admin(&p.sam, &["--json", "queue"]).await);
    assert_eq!(v["role"], "supervisor");
    assert_eq!(v["items"][0]["kind"], "approval");
    assert_eq!(v["items"][0]["urgency"], "emergency");
    assert_eq!(v["items"][0]["minor"], true);

    let approve = [
        "referral",
        "approve",
        "IT-Q-1",
        "--to",
        "AL",
        "--categories",
    ];
    let out = admin(&p.sam, &[&approve[..], &["identity"]].concat()).await;
    eprintln!("{out}");
    assert!(
        out.contains("Sam Example approved identity for the next referral of case IT-Q-1 to AL"),
        "{out}"
    );
    assert!(out.contains("still waiting for approval: child"), "{out}");
    let out = admin(&p.sue, &[&approve[..], &["child"]].concat()).await;
    eprintln!("{out}");
    assert!(
        out.contains("identity (Sam Example), child (Sue Example)"),
        "the second approval adds to the first: {out}"
    );
    assert!(out.contains("nothing else waits for approval"), "{out}");
    let v = json(&admin(&p.sue, &["--json", "referral", "approvals"]).await);
    assert!(v["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["case"] != "IT-Q-1"));
    // Health is not in the outgoing profile for Albania: the approval warns, naming the line.
    let out = admin(&p.sam, &[&approve[..], &["health"]].concat()).await;
    assert!(
        out.contains("warning: health: the outgoing profile for AL (node.toml `outgoing.AL`)"),
        "{out}"
    );
    let v = json(&admin(&p.sam, &[&["--json"][..], &approve, &["health"]].concat()).await);
    assert!(
        v["warnings"][0].as_str().unwrap().contains("outgoing.AL"),
        "{v}"
    );
    let granted: Vec<(String, String)> = v["granted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["category"].as_str().unwrap().into(),
                g["supervisor"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        granted,
        [
            ("identity".to_string(), "Sam Example".to_string()),
            ("child".into(), "Sue Example".into()),
            ("health".into(), "Sam Example".into()),
        ],
        "one grant per category and supervisor, kept once"
    );
}

/// Sends the child case and the late routine case to Albania; their referral ids.
async fn send_both(it: &TestNode, p: &People) -> Vec<String> {
    let mut ids = Vec::new();
    for case in ["IT-Q-1", "IT-Q-2"] {
        let v = json(
            &admin(
                &p.olivia,
                &["--json", "referral", "send", case, "--to", "AL"],
            )
            .await,
        );
        let id = v["message"].as_str().unwrap().to_string();
        assert!(wait_until(20, || it.delivered(&id)).await, "delivered");
        ids.push(id);
    }
    ids
}

/// The approvals went with the referral just sent: `referral approvals` names it, and the
/// next referral of the same case would need fresh approval.
async fn approval_belongs_to_one_referral(p: &People, referral: &str) {
    let v = json(&admin(&p.olivia, &["--json", "referral", "approvals"]).await);
    let ap = v["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["case"] == "IT-Q-1")
        .expect("the approvals of IT-Q-1")
        .clone();
    assert_eq!(ap["referral"], referral, "{v}");
    assert_eq!(ap["granted"].as_array().unwrap().len(), 3, "{v}");
    let text = admin(&p.olivia, &["referral", "approvals"]).await;
    eprintln!("{text}");
    assert!(
        text.contains(referral) && text.contains("Sue Example"),
        "{text}"
    );
    let preview = json(
        &admin(
            &p.olivia,
            &["--json", "referral", "preview", "IT-Q-1", "--to", "AL"],
        )
        .await,
    );
    let family_name = preview["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "identity.family_name")
        .unwrap()
        .clone();
    assert_eq!(
        family_name["withheld_by"],
        serde_json::json!(["approval"]),
        "a later referral needs fresh approval: {family_name}"
    );
}

/// Albania's officer: referrals to answer (emergency child first, the late one overdue);
/// Italy's: its unanswered referral past due; after the acceptance, a follow-up due.
async fn officer_queues(it: &TestNode, al: &TestNode, p: &People, ids: &[String]) {
    let q = admin(&p.otto, &["queue"]).await;
    eprintln!("{q}");
    assert!(q.starts_with("queue of an officer"), "{q}");
    assert!(
        q.contains(&format!("trm-admin referral accept {}", ids[0])),
        "{q}"
    );
    let v = json(&admin(&p.otto, &["--json", "queue"]).await);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["kind"], "answer_referral", "{v}");
    assert_eq!(
        items[0]["id"],
        ids[0].as_str(),
        "emergency child first: {v}"
    );
    assert_eq!(items[0]["minor"], true);
    assert_eq!(items[0]["urgency"], "emergency");
    assert_eq!(items[0]["overdue"], false);
    let late = items
        .iter()
        .find(|i| i["id"] == ids[1].as_str())
        .expect("IT-Q-2");
    assert_eq!(late["kind"], "answer_referral");
    assert_eq!(late["overdue"], true, "unanswered past its date: {late}");

    let v = json(&admin(&p.olivia, &["--json", "queue"]).await);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["kind"], "response_overdue");
    assert_eq!(items[0]["id"], ids[1].as_str());
    assert_eq!(items[0]["peer"], "AL");

    let accept = [
        "referral",
        "accept",
        &ids[0],
        "--institution",
        "Synthetic Unit",
    ];
    admin(&p.otto, &accept).await;
    let accepted = || trm_tests::recv::state(it, "AL", "IT-Q-1") == "accepted";
    assert!(wait_until(20, accepted).await, "acceptance arrived");
    let v = json(&admin(&p.otto, &["--json", "queue"]).await);
    let due = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["case_ref"] == "IT-Q-1")
        .expect("IT-Q-1 still in the queue")
        .clone();
    assert_eq!(due["kind"], "follow_up_due", "followup_due_days = 0: {v}");
    assert!(due["command"]
        .as_str()
        .unwrap()
        .starts_with("trm-admin followup send IT-Q-1 --to IT"));
    // Italy's node keeps the default (30 days): nothing due yet.
    let v = json(&admin(&p.olivia, &["--json", "queue"]).await);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "follow_up_due"),
        "{v}"
    );
    let _ = al;
    // Auditors have no queue.
    let ran = admin_as(&p.it_auditor, &["queue"]).await;
    assert_eq!(ran.code, Some(77), "{}", ran.stderr);
}

/// Italy asks; Albania sees it in its queue, previews and answers with `--in-reply-to`
/// (withheld fields named); both sides show it answered.
async fn information_request_answered(it: &TestNode, al: &TestNode, p: &People) {
    let ask = [
        "--json",
        "info",
        "request",
        "IT-Q-1",
        "--to",
        "AL",
        "--fields",
        "assistance.services",
        "--purpose",
        "Synthetic purpose",
    ];
    let v = json(&admin(&p.olivia, &ask).await);
    let req = v["message"].as_str().unwrap().to_string();
    assert!(
        wait_until(20, || it.delivered(&req)).await,
        "request delivered"
    );
    let q = admin(&p.otto, &["queue"]).await;
    eprintln!("{q}");
    assert!(q.contains("[answer information request]"), "{q}");
    assert!(q.contains(&format!("--in-reply-to {req}")), "{q}");
    let shown = admin(&p.otto, &["message", "show", &req]).await;
    assert!(shown.contains("answered:     not yet"), "{shown}");

    let fields = Path::new(&al.dir).join("followup-fields.json");
    std::fs::write(&fields, r#"{"identity": {"family_name": "Synthetic"}}"#).unwrap();
    let f = fields.display().to_string();
    let opts = [
        "IT-Q-1",
        "--to",
        "IT",
        "--phase",
        "first_assistance",
        "--status",
        "Synthetic status",
        "--fields-file",
        &f,
    ];
    let preview = admin(&p.otto, &[&["followup", "preview"][..], &opts].concat()).await;
    eprintln!("{preview}");
    assert!(
        preview.contains("0 of 1 fields released (nothing sent)"),
        "{preview}"
    );
    let row = preview
        .lines()
        .find(|l| l.starts_with("identity.family_name"))
        .unwrap_or_else(|| panic!("{preview}"));
    assert!(
        row.contains("withheld") && row.contains("outgoing profile"),
        "{preview}"
    );

    let bogus = "00112233445566778899aabbccddeeff";
    let ran = admin_as(
        &p.otto,
        &[&["followup", "send"][..], &opts, &["--in-reply-to", bogus]].concat(),
    )
    .await;
    assert_ne!(ran.code, Some(0));
    assert!(
        ran.stderr.contains("no information request"),
        "{}",
        ran.stderr
    );

    let reply = ["--in-reply-to", req.as_str()];
    let sent = admin(
        &p.otto,
        &[&["followup", "send"][..], &opts, &reply].concat(),
    )
    .await;
    eprintln!("{sent}");
    assert!(sent.contains("withheld:"), "{sent}");
    assert!(
        sent.lines()
            .any(|l| l.starts_with("identity.family_name") && l.contains("outgoing profile")),
        "the withheld field is named with its rule: {sent}"
    );
    let fid = sent
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(fid.len(), 32, "{sent}");

    let q = admin(&p.otto, &["queue"]).await;
    assert!(!q.contains(&req), "answered requests leave the queue: {q}");
    let shown = admin(&p.otto, &["message", "show", &req]).await;
    assert!(
        shown.contains(&format!("answered:     yes, by {fid}")),
        "{shown}"
    );

    let al_fid = fid.clone();
    assert!(
        wait_until(20, || al_delivered(al, &al_fid)).await,
        "reply delivered"
    );
    let shown = admin(&p.olivia, &["message", "show", &req]).await;
    assert!(
        shown.contains(&format!("answered:     yes, by {fid}")),
        "{shown}"
    );
    let v = json(&admin(&p.olivia, &["--json", "message", "show", &req]).await);
    assert_eq!(v["answered_by"], serde_json::json!([fid]));
    let timeline = admin(&p.olivia, &["case", "timeline", "IT-Q-1"]).await;
    eprintln!("{timeline}");
    assert!(
        timeline.contains(&req),
        "message ids in the timeline: {timeline}"
    );
    assert!(
        timeline.contains(&format!("[answered by {fid}]")),
        "{timeline}"
    );
}

fn al_delivered(al: &TestNode, id: &str) -> bool {
    al.delivered(id)
}

/// The operator's queue: no backup, then one through the running node.
async fn operator_queue(it: &TestNode, p: &People) {
    let q = admin(&p.it_op, &["queue"]).await;
    eprintln!("{q}");
    assert!(q.contains("last backup: none taken by this node"), "{q}");
    assert!(q.contains("[backup] no backup taken by this node"), "{q}");
    let out = it.dir.parent().unwrap().join("it.trmbak");
    let args = vec![
        "backup".to_string(),
        "--dir".into(),
        it.dir.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    let ran = tokio::task::spawn_blocking(move || trm_tests::bins::run("trm-node", &args))
        .await
        .unwrap();
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let q = admin(&p.it_op, &["queue"]).await;
    assert!(q.contains("days ago)") && !q.contains("[backup]"), "{q}");
    let v = json(&admin(&p.it_op, &["--json", "queue"]).await);
    assert_eq!(v["last_backup"]["age_days"], 0, "{v}");
}

/// The operator's queue names a partner that stopped answering (issue 12 item 11, operators):
/// Albania is down while Italy has a referral for it; after `unreachable_after_secs` Italy's
/// operator sees it, with the command to look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_queue_names_an_unreachable_partner() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (it, mut al) = trm_tests::start_pair_in(tmp.path(), "IT", "AL", |n| {
        n.configure(|c| c.delivery.unreachable_after_secs = 1)
    })
    .await;
    let op = it.dir.join(OPERATOR_CRED);
    let before = json(&admin(&op, &["--json", "queue"]).await);
    assert!(
        !before["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"] == "peer_down"),
        "no partner is down yet: {before}"
    );
    al.stop().await;
    let officer = it.officer("Officer Example", "officer").await;
    trm_tests::create_and_send(&it, &officer, "IT-DOWN-0001", "AL").await;
    let cred = op.display().to_string();
    let mut seen = Value::Null;
    let down = wait_until(60, || {
        let out = trm_tests::bins::run("trm-admin", &["--cred", &cred, "--json", "queue"]);
        seen = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        seen["items"].as_array().is_some_and(|xs| {
            xs.iter()
                .any(|i| i["kind"] == "peer_down" && i["peer"] == "AL")
        })
    })
    .await;
    assert!(down, "AL never shown down: {seen}");
    let text = admin(&op, &["queue"]).await;
    assert!(text.contains("AL"), "{text}");
    it.finish().await;
}
