//! A case that stays current, through the real `trm-admin` binary (issue 12, items 7 to 9):
//! `case update` keeps every version and the timeline names changed paths, never values; the
//! follow-ups Italy sends update its own record; a second referral to a partner that has the
//! case open is refused; closure is per side and `case reopen` opens this side again.

use serde_json::Value;
use trm_tests::bins::{admin_as, admin_ok as admin};
use trm_tests::current::{case_doc, desk, json, write};
use trm_tests::{wait_until, TestNode};

/// Audit entries of `node` as text (officer, call, target, result), to search.
fn audit_text(node: &TestNode) -> Vec<String> {
    node.ctx()
        .store
        .audit_entries(0)
        .expect("audit entries")
        .iter()
        .map(|e| format!("{} | {} | {} | {}", e.officer, e.call, e.target, e.result))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_update_keeps_every_version_and_names_paths_never_values() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let d = desk(root, &it, &al).await;
    let first = write(
        root,
        "v1.json",
        &case_doc("IT-CUR-0001", "Synthetic reason one."),
    );
    admin(&d.olivia, &["case", "create", "--file", &first]).await;

    let mut doc = case_doc("IT-CUR-0001", "SYNTHETIC-REASON-TWO");
    doc["exploitation"]["victim_status"] = "identified".into();
    let second = write(root, "v2.json", &doc);
    let out = admin(
        &d.olivia,
        &["case", "update", "IT-CUR-0001", "--file", &second],
    )
    .await;
    assert!(out.contains("version 2"), "{out}");
    assert!(out.contains("reference.reason"), "{out}");
    assert!(!out.contains("SYNTHETIC-REASON-TWO"), "{out}");

    // `case show`: the current values, the current version and how many there are.
    let shown = admin(&d.olivia, &["case", "show", "IT-CUR-0001"]).await;
    let version = shown
        .lines()
        .find(|l| l.starts_with("version"))
        .unwrap_or("");
    assert!(
        version.contains("2 of 2") && version.contains("Olivia Example"),
        "{shown}"
    );
    assert!(shown.contains("SYNTHETIC-REASON-TWO"), "{shown}");
    let v = json(&admin(&d.olivia, &["--json", "case", "show", "IT-CUR-0001"]).await);
    assert_eq!(v["versions"], 2);
    assert_eq!(v["version"]["cause"], "case update");
    assert_eq!(v["case"]["exploitation"]["victim_status"], "identified");

    // The timeline lists the update with who, when and the paths, never a value.
    let tl = admin(&d.olivia, &["case", "timeline", "IT-CUR-0001"]).await;
    eprintln!("{tl}");
    let line = tl
        .lines()
        .find(|l| l.contains("version 2"))
        .expect("version line");
    assert!(
        line.contains("Olivia Example") && line.contains("case update"),
        "{tl}"
    );
    assert!(
        line.contains("exploitation.victim_status") && line.contains("reference.reason"),
        "{tl}"
    );
    assert!(
        !tl.contains("SYNTHETIC-REASON-TWO") && !tl.contains("reason one"),
        "{tl}"
    );
    assert!(!tl.contains("identified"), "{tl}");
    let tj = json(&admin(&d.olivia, &["--json", "case", "timeline", "IT-CUR-0001"]).await);
    let changed: Vec<&str> = tj["versions"][0]["changed"]
        .as_array()
        .expect("changed paths")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(changed, ["exploitation.victim_status", "reference.reason"]);
    assert!(!tj.to_string().contains("SYNTHETIC-REASON-TWO"));

    // The store keeps version 1 with its values (sealed), and the audit log has the version
    // without any value.
    let rec = it.ctx().store.case("IT-CUR-0001").unwrap().expect("case");
    assert_eq!(rec.history.len(), 1);
    assert_eq!(rec.history[0].number, 1);
    assert!(
        !rec.history[0].sealed.is_empty(),
        "version 1 keeps its values"
    );
    let audit = audit_text(&it);
    assert!(audit
        .iter()
        .any(|e| e.contains("case version") && e.contains("version 2")));
    assert!(audit.iter().all(|e| !e.contains("SYNTHETIC-REASON-TWO")));
    let hits = trm_tests::files_containing(&it.dir, b"SYNTHETIC-REASON-TWO");
    assert!(hits.is_empty(), "values are sealed at rest: {hits:?}");

    bad_updates_change_nothing(root, &it, &d.olivia).await;
    it.finish().await;
    al.finish().await;
}

/// Bad case files are refused like `case create` refuses them (exit 64, one line per field
/// naming the file), and the store is unchanged.
async fn bad_updates_change_nothing(
    root: &std::path::Path,
    it: &TestNode,
    olivia: &std::path::Path,
) {
    let before = it.ctx().store.case("IT-CUR-0001").unwrap();
    let mut bad = case_doc("IT-CUR-0001", "SYNTHETIC-REASON-THREE");
    bad["reference"]["urgency"] = "whenever".into();
    let file = write(root, "bad.json", &bad);
    let ran = admin_as(olivia, &["case", "update", "IT-CUR-0001", "--file", &file]).await;
    assert_eq!(ran.code, Some(64), "{}", ran.stderr);
    assert!(ran.stderr.contains("reference.urgency"), "{}", ran.stderr);
    assert!(ran.stderr.contains("bad.json"), "{}", ran.stderr);
    let created = admin_as(olivia, &["case", "create", "--file", &file]).await;
    assert_eq!(created.code, Some(64), "create refuses it the same way");

    let other = write(root, "other.json", &case_doc("IT-CUR-0099", "Synthetic."));
    let ran = admin_as(olivia, &["case", "update", "IT-CUR-0001", "--file", &other]).await;
    assert_eq!(ran.code, Some(64), "{}", ran.stderr);
    assert!(ran.stderr.contains("never changes"), "{}", ran.stderr);

    std::fs::write(root.join("broken.json"), "{ not json").unwrap();
    let broken = root.join("broken.json").display().to_string();
    let ran = admin_as(
        olivia,
        &["case", "update", "IT-CUR-0001", "--file", &broken],
    )
    .await;
    assert_eq!(ran.code, Some(64), "{}", ran.stderr);

    let same = write(root, "same.json", &{
        let mut d = case_doc("IT-CUR-0001", "SYNTHETIC-REASON-TWO");
        d["exploitation"]["victim_status"] = "identified".into();
        d
    });
    let ran = admin_as(olivia, &["case", "update", "IT-CUR-0001", "--file", &same]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("nothing to update"), "{}", ran.stderr);

    let missing = admin_as(olivia, &["case", "update", "IT-CUR-0404", "--file", &other]).await;
    assert_ne!(missing.code, Some(0));
    assert_eq!(it.ctx().store.case("IT-CUR-0001").unwrap(), before);
    assert!(it.ctx().store.case("IT-CUR-0099").unwrap().is_none());
}

/// Every message this node sent is delivered.
fn delivered_all(node: &TestNode) -> bool {
    node.ctx()
        .store
        .sent_all()
        .unwrap()
        .iter()
        .all(|s| s.state == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_update_the_own_record_and_closure_is_per_side() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let d = desk(root, &it, &al).await;
    let case = "IT-CUR-0002";
    let file = write(root, "case.json", &case_doc(case, "Synthetic reason."));
    admin(&d.olivia, &["case", "create", "--file", &file]).await;
    let sent = json(
        &admin(
            &d.olivia,
            &["--json", "referral", "send", case, "--to", "AL"],
        )
        .await,
    );
    let referral = sent["message"].as_str().expect("id").to_string();
    assert!(
        wait_until(20, || it.delivered(&referral)).await,
        "delivered"
    );

    // Item 8: while the referral is pending (and once accepted) a second one is refused.
    duplicate_send_is_refused(&it, &d.olivia, case).await;
    let accept = [
        "referral",
        "accept",
        &referral,
        "--institution",
        "Synthetic Unit",
    ];
    admin(&d.otto, &accept).await;
    let state = |n: &TestNode, peer: &str| trm_tests::recv::state(n, peer, case);
    assert!(wait_until(20, || state(&it, "AL") == "accepted").await);
    duplicate_send_is_refused(&it, &d.olivia, case).await;

    // Item 7: Italy's follow-up (phase, status, a field) updates Italy's own record.
    let fields = write(
        root,
        "fields.json",
        &serde_json::json!({"exploitation": {"victim_status": "formally_recognised"}}),
    );
    let follow = [
        "followup",
        "send",
        case,
        "--to",
        "AL",
        "--phase",
        "first_assistance",
        "--status",
        "Shelter place found",
        "--fields-file",
        &fields,
    ];
    admin(&d.olivia, &follow).await;
    let v = json(&admin(&d.olivia, &["--json", "case", "show", case]).await);
    assert_eq!(v["versions"], 2, "{v}");
    assert_eq!(
        v["case"]["exploitation"]["victim_status"],
        "formally_recognised"
    );
    assert!(v["version"]["cause"]
        .as_str()
        .unwrap()
        .starts_with("follow-up "));
    assert_eq!(v["reported"]["phase"], "first_assistance");
    assert_eq!(v["reported"]["status"], "Shelter place found");
    let shown = admin(&d.olivia, &["case", "show", case]).await;
    let reported = shown
        .lines()
        .find(|l| l.starts_with("reported"))
        .unwrap_or("");
    assert!(
        reported.contains("first_assistance: Shelter place found"),
        "{shown}"
    );
    assert!(wait_until(20, || delivered_all(&it)).await);

    closure_is_per_side(&it, &al, &d, case).await;
    it.finish().await;
    al.finish().await;
}

/// `referral send` to a partner that has the case open: one line saying what to do, exit 1,
/// nothing sent.
async fn duplicate_send_is_refused(it: &TestNode, olivia: &std::path::Path, case: &str) {
    let before = it.ctx().store.sent_all().unwrap().len();
    let ran = admin_as(olivia, &["referral", "send", case, "--to", "AL"]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let err = ran.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already has case"), "{err}");
    assert!(
        err.contains("followup send") && err.contains("case close"),
        "{err}"
    );
    assert_eq!(it.ctx().store.sent_all().unwrap().len(), before);
}

/// Italy closes; Albania still reports on the later phases and Italy shows it; Italy's side
/// sends nothing until `case reopen`, whose next follow-up reopens Italy's side in Albania.
async fn closure_is_per_side(
    it: &TestNode,
    al: &TestNode,
    d: &trm_tests::current::Desk,
    case: &str,
) {
    let state = |n: &TestNode, peer: &str| trm_tests::recv::state(n, peer, case);
    let close = [
        "case",
        "close",
        case,
        "--to",
        "AL",
        "--outcome",
        "transferred",
    ];
    admin(&d.olivia, &close).await;
    assert!(wait_until(20, || state(al, "IT") == "closed").await);

    let later = [
        "--json",
        "followup",
        "send",
        case,
        "--to",
        "IT",
        "--phase",
        "long_term_assistance",
        "--status",
        "Reintegration progressing",
    ];
    let sent = json(&admin(&d.otto, &later).await);
    let id = sent["message"].as_str().unwrap().to_string();
    assert!(
        wait_until(20, || al.delivered(&id)).await,
        "Italy accepted it"
    );
    let tl = admin(&d.olivia, &["case", "timeline", case]).await;
    assert!(tl.contains("Reintegration progressing"), "{tl}");
    let early = [
        "followup",
        "send",
        case,
        "--to",
        "IT",
        "--phase",
        "first_assistance",
        "--status",
        "x",
    ];
    let ran = admin_as(&d.otto, &early).await;
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("long-term assistance"),
        "{}",
        ran.stderr
    );

    // Italy's closed side sends nothing until it reopens.
    let mine = [
        "followup",
        "send",
        case,
        "--to",
        "AL",
        "--phase",
        "first_assistance",
        "--status",
        "Back in touch",
    ];
    let ran = admin_as(&d.olivia, &mine).await;
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("case reopen"), "{}", ran.stderr);
    let no_reason = admin_as(
        &d.olivia,
        &["case", "reopen", case, "--to", "AL", "--reason", " "],
    )
    .await;
    assert_eq!(no_reason.code, Some(1), "{}", no_reason.stderr);
    let reopen = [
        "case",
        "reopen",
        case,
        "--to",
        "AL",
        "--reason",
        "New information arrived",
    ];
    let out = admin(&d.olivia, &reopen).await;
    assert!(out.contains("accepted"), "{out}");
    assert_eq!(state(it, "AL"), "accepted");
    let again = admin_as(&d.olivia, &reopen).await;
    assert_eq!(again.code, Some(1), "only a closed side reopens");
    let tl = admin(&d.olivia, &["case", "timeline", case]).await;
    assert!(
        tl.contains("reopened sent's side with AL") && tl.contains("New information arrived"),
        "{tl}"
    );
    assert!(audit_text(it)
        .iter()
        .any(|e| e.contains("case reopen") && e.contains("ok")));

    // Its next follow-up tells Albania, which reopens Italy's side too.
    admin(&d.olivia, &mine).await;
    assert!(
        wait_until(20, || state(al, "IT") == "accepted").await,
        "reopened in Albania"
    );
    let tl = admin(&d.otto, &["case", "timeline", case]).await;
    assert!(tl.contains("reopened sent's side with IT"), "{tl}");
}
