//! What a data-protection officer needs, through the real binaries (issue 12, items 19 and
//! 20): `case access-log` (every admin call that named a case, from the audit log, which still
//! verifies offline) and `case export` (everything the node holds on a case, as JSON and a
//! printable HTML page with every value escaped; files 0600, never overwritten; audited).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::{admin_as, admin_ok as admin};
use trm_tests::{wait_until, TestNode};

/// A synthetic value with markup: it must reach the page escaped, and never the audit log.
const MARKUP: &str = "<script>alert('synthetic')</script> Synthetic reason & more";

fn case_file(dir: &Path, case_ref: &str, reason: &str) -> String {
    let v = serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "reason": reason,
        },
        "exploitation": { "forms": ["labour"], "victim_status": "presumed" },
    });
    let file = dir.join(format!("{case_ref}.json"));
    std::fs::write(&file, v.to_string()).expect("case file");
    file.display().to_string()
}

struct People {
    /// Officer, Italy.
    olivia: PathBuf,
    /// Supervisor, Italy.
    sam: PathBuf,
    /// Auditor (the data-protection officer), Italy.
    dora: PathBuf,
    /// Officer, Albania.
    otto: PathBuf,
    /// Auditor, Albania.
    alba: PathBuf,
}

async fn people(root: &Path, it: &TestNode, al: &TestNode) -> People {
    let cred = |name: &str| root.join(format!("{name}.cred"));
    let p = People {
        olivia: cred("olivia"),
        sam: cred("sam"),
        dora: cred("dora"),
        otto: cred("otto"),
        alba: cred("alba"),
    };
    let (it_op, al_op) = (it.dir.join(OPERATOR_CRED), al.dir.join(OPERATOR_CRED));
    for (name, role, file, op) in [
        ("Olivia Example", "officer", &p.olivia, &it_op),
        ("Sam Example", "supervisor", &p.sam, &it_op),
        ("Dora Example", "auditor", &p.dora, &it_op),
        ("Otto Example", "officer", &p.otto, &al_op),
        ("Alba Example", "auditor", &p.alba, &al_op),
    ] {
        let out = file.display().to_string();
        admin(op, &["officer", "add", name, "--role", role, "--out", &out]).await;
    }
    p
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpo_sees_who_touched_a_case_and_exports_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let p = people(root, &it, &al).await;

    // Olivia records two cases, shows one and refers it; Sam previews it; Albania accepts.
    admin(
        &p.olivia,
        &[
            "case",
            "create",
            "--file",
            &case_file(root, "IT-DPO-1", MARKUP),
        ],
    )
    .await;
    let other = case_file(root, "IT-DPO-10", "Synthetic other case.");
    admin(&p.olivia, &["case", "create", "--file", &other]).await;
    admin(&p.olivia, &["case", "show", "IT-DPO-1"]).await;
    admin(&p.olivia, &["case", "show", "IT-DPO-10"]).await;
    admin(&p.sam, &["referral", "preview", "IT-DPO-1", "--to", "AL"]).await;
    let sent = admin(
        &p.olivia,
        &["--json", "referral", "send", "IT-DPO-1", "--to", "AL"],
    )
    .await;
    let id = json(&sent)["message"]
        .as_str()
        .expect("message id")
        .to_string();
    assert!(wait_until(20, || it.delivered(&id)).await, "delivered");
    admin(&p.olivia, &["message", "show", &id]).await;
    let accept = [
        "referral",
        "accept",
        &id,
        "--institution",
        "Synthetic Unit",
        "--focal-point",
        "desk",
    ];
    admin(&p.otto, &accept).await;
    let accepted = || trm_tests::recv::state(&it, "AL", "IT-DPO-1") == "accepted";
    assert!(wait_until(20, accepted).await, "acceptance arrived");

    access_log_names_every_call(&p, &id).await;
    export_writes_both_files(root, &p).await;
    received_side(root, &p).await;
    audit_log_still_verifies(root, &p).await;
    it.finish().await;
    al.finish().await;
}

/// Italy's access log of IT-DPO-1: every call that named it (also by message id), with who,
/// role and result; not the other case whose reference it prefixes; officers are refused.
async fn access_log_names_every_call(p: &People, id: &str) {
    let refused = admin_as(&p.olivia, &["case", "access-log", "IT-DPO-1"]).await;
    assert_eq!(
        refused.code,
        Some(77),
        "officers may not: {}",
        refused.stderr
    );

    let text = admin(&p.dora, &["case", "access-log", "IT-DPO-1"]).await;
    eprintln!("{text}");
    for needle in [
        "Olivia Example",
        "Sam Example",
        "referral preview",
        "message show",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let log = json(&admin(&p.sam, &["--json", "case", "access-log", "IT-DPO-1"]).await);
    let entries = log["entries"].as_array().expect("entries");
    let calls: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["officer"].as_str().unwrap(),
                e["call"].as_str().unwrap(),
                e["result"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("Olivia Example", "case create", "ok"),
        ("Olivia Example", "case show", "ok"),
        ("Sam Example", "referral preview", "ok"),
        ("Olivia Example", "referral send", "ok"),
        ("Olivia Example", "message show", "ok"),
        ("Olivia Example", "case access-log", "refused: role"),
        ("Dora Example", "case access-log", "ok"),
    ] {
        assert!(calls.contains(&want), "{want:?} in {calls:?}");
    }
    let show = entries
        .iter()
        .find(|e| e["call"] == "message show")
        .unwrap();
    assert_eq!(show["target"], format!("IT-DPO-1 message {id}"));
    assert_eq!(show["role"], "officer");
    for e in entries {
        let target = e["target"].as_str().unwrap();
        assert!(
            target == "IT-DPO-1" || target.starts_with("IT-DPO-1 "),
            "only this case: {target}"
        );
    }
    assert_eq!(
        calls.iter().filter(|c| c.1 == "case show").count(),
        1,
        "IT-DPO-10's show is not IT-DPO-1's: {calls:?}"
    );
    assert!(
        !log.to_string().contains("Synthetic reason"),
        "no value: {log}"
    );

    let unknown = admin_as(&p.dora, &["case", "access-log", "IT-NOPE-1"]).await;
    assert_eq!(unknown.code, Some(1), "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no case IT-NOPE-1"),
        "{}",
        unknown.stderr
    );
}

/// `case export`: JSON with the values and every message verified, a printable page with the
/// markup escaped, both 0600; never overwrites; officers are refused; the export is audited.
async fn export_writes_both_files(root: &Path, p: &People) {
    let out = root.join("sar-IT-DPO-1.json");
    let page = root.join("sar-IT-DPO-1.html");
    let outs = out.display().to_string();
    let refused = admin_as(&p.olivia, &["case", "export", "IT-DPO-1", "--out", &outs]).await;
    assert_eq!(refused.code, Some(77), "{}", refused.stderr);
    assert!(
        !out.exists() && !page.exists(),
        "nothing written when refused"
    );

    let said = admin(&p.sam, &["case", "export", "IT-DPO-1", "--out", &outs]).await;
    assert!(said.contains("sar-IT-DPO-1.html"), "{said}");
    for f in [&out, &page] {
        let mode = std::fs::metadata(f).expect("written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    let doc = json(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(doc["case"]["case"]["reference"]["reason"], MARKUP);
    assert_eq!(doc["exported_by"], "Sam Example");
    assert_eq!(doc["country"], "IT");
    let messages = doc["timeline"]["messages"].as_array().expect("messages");
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"referral") && kinds.contains(&"acceptance"),
        "{kinds:?}"
    );
    for m in messages {
        assert_eq!(m["verification"]["signature"], "valid", "{m}");
        assert!(m.get("payload").is_some(), "payload in words: {m}");
    }

    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script>"), "escaped: {html}");
    assert!(
        html.contains(
            "&lt;script&gt;alert(&#39;synthetic&#39;)&lt;/script&gt; Synthetic reason &amp; more"
        ),
        "{html}"
    );
    assert!(
        html.contains("Synthetic Unit"),
        "the acceptance's institution"
    );

    let before = std::fs::read(&out).unwrap();
    let again = admin_as(&p.sam, &["case", "export", "IT-DPO-1", "--out", &outs]).await;
    assert_eq!(again.code, Some(64), "{}", again.stderr);
    assert!(
        again.stderr.contains("refusing to overwrite"),
        "{}",
        again.stderr
    );
    assert_eq!(std::fs::read(&out).unwrap(), before, "unchanged");
    let html_out = root.join("x.html").display().to_string();
    let bad = admin_as(&p.dora, &["case", "export", "IT-DPO-1", "--out", &html_out]).await;
    assert_eq!(bad.code, Some(64), "{}", bad.stderr);

    // The auditor may export too; both exports are in the case's access log.
    let dora_out = root.join("dora.json").display().to_string();
    admin(&p.dora, &["case", "export", "IT-DPO-1", "--out", &dora_out]).await;
    let log = json(&admin(&p.dora, &["--json", "case", "access-log", "IT-DPO-1"]).await);
    let exports: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["call"] == "case export" && e["result"] == "ok")
        .collect();
    assert_eq!(exports.len(), 2, "{log}");
}

/// Albania: the acceptance it sent was named by message id and is logged under the case;
/// its export holds the values it received, verified against the sender's signature.
async fn received_side(root: &Path, p: &People) {
    let log = json(&admin(&p.alba, &["--json", "case", "access-log", "IT-DPO-1"]).await);
    let answer = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["call"] == "referral answer")
        .unwrap_or_else(|| panic!("the acceptance is logged under the case: {log}"))
        .clone();
    assert_eq!(answer["target"], "IT-DPO-1 -> IT");
    assert_eq!(answer["officer"], "Otto Example");

    let out = root.join("al-export.json");
    admin(
        &p.alba,
        &[
            "case",
            "export",
            "IT-DPO-1",
            "--out",
            &out.display().to_string(),
        ],
    )
    .await;
    let doc = json(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(doc["case"]["origin"], "received from IT");
    assert_eq!(doc["case"]["case"]["reference"]["reason"], MARKUP);
    let referral = doc["timeline"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "referral" && m["direction"] == "received")
        .expect("the referral received")
        .clone();
    assert_eq!(referral["verification"]["signature"], "valid");
}

/// The audit log with the case-naming targets still verifies offline.
async fn audit_log_still_verifies(root: &Path, p: &People) {
    let bundle = root.join("it-audit.bundle").display().to_string();
    admin(&p.dora, &["audit", "export", "--out", &bundle]).await;
    let verified = admin_as(&p.dora, &["audit", "verify", &bundle]).await;
    assert_eq!(
        verified.code,
        Some(0),
        "{}{}",
        verified.stdout,
        verified.stderr
    );
    let raw = std::fs::read(&bundle).unwrap();
    assert!(
        !raw.windows(17).any(|w| w == b"Synthetic reason "),
        "no case value in the audit log"
    );
}

/// A case file with the given forms of exploitation.
fn forms_case(dir: &Path, case_ref: &str, forms: &[&str]) -> String {
    let v = serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "reason": "Synthetic statistics reason.",
        },
        "exploitation": { "forms": forms, "victim_status": "presumed" },
    });
    let file = dir.join(format!("{case_ref}.json"));
    std::fs::write(&file, v.to_string()).expect("case file");
    file.display().to_string()
}

/// `stats` (item 22): six labour cases, two of them also sexual exploitation, five referred to
/// and accepted by Albania: labour (6) and the partner row (5) are shown, sexual (2) is `<5`;
/// the median is shown; no case value; a range with nothing in it counts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapporteur_gets_counts_with_small_cells_suppressed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let p = people(root, &it, &al).await;
    for i in 1..=6 {
        let case_ref = format!("IT-STAT-{i}");
        let forms: &[&str] = if i <= 2 {
            &["labour", "sexual"]
        } else {
            &["labour"]
        };
        let file = forms_case(root, &case_ref, forms);
        admin(&p.olivia, &["case", "create", "--file", &file]).await;
        if i == 6 {
            break;
        }
        let sent = admin(
            &p.olivia,
            &["--json", "referral", "send", &case_ref, "--to", "AL"],
        )
        .await;
        let id = json(&sent)["message"].as_str().expect("id").to_string();
        assert!(wait_until(20, || it.delivered(&id)).await, "delivered");
        let accept = [
            "referral",
            "accept",
            &id,
            "--institution",
            "Synthetic Unit",
            "--focal-point",
            "desk",
        ];
        admin(&p.otto, &accept).await;
    }
    let all_accepted = || {
        (1..=5).all(|i| trm_tests::recv::state(&it, "AL", &format!("IT-STAT-{i}")) == "accepted")
    };
    assert!(wait_until(30, all_accepted).await, "acceptances arrived");

    let refused = admin_as(&p.olivia, &["stats"]).await;
    assert_eq!(refused.code, Some(77), "{}", refused.stderr);
    let bad = admin_as(&p.dora, &["stats", "--to", "yesterday"]).await;
    assert_eq!(bad.code, Some(64), "{}", bad.stderr);
    assert!(bad.stderr.contains("--to"), "{}", bad.stderr);

    let doc = json(&admin(&p.dora, &["--json", "stats"]).await);
    let table = |by: &str| {
        doc["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["by"] == by)
            .unwrap_or_else(|| panic!("table {by}: {doc}"))
            .clone()
    };
    let row = |t: &Value, label: &str| {
        t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["label"] == label)
            .unwrap_or_else(|| panic!("row {label}: {t}"))["count"]
            .clone()
    };
    let forms = table("exploitation_form");
    assert_eq!(row(&forms, "labour"), 6, "{forms}");
    assert_eq!(row(&forms, "sexual"), "<5", "{forms}");
    assert_eq!(row(&forms, "organ_removal"), 0, "{forms}");
    assert_eq!(forms["total"], 6);
    let partner = table("partner");
    assert_eq!(row(&partner, "AL (sent)"), 5, "{partner}");
    let outcome = table("outcome");
    assert_eq!(row(&outcome, "accepted"), 5, "{outcome}");
    let median = doc["median_days_to_acceptance"]["sent"].as_str().unwrap();
    assert!(
        median.parse::<f64>().is_ok(),
        "a number with 5 acceptances: {doc}"
    );
    assert!(
        !doc.to_string().contains("Synthetic statistics"),
        "no case value"
    );

    let text = admin(&p.sam, &["stats"]).await;
    eprintln!("{text}");
    assert!(line_with(&text, "sexual").contains("<5"), "{text}");
    let csv = admin(&p.sam, &["stats", "--csv"]).await;
    assert!(
        csv.lines().any(|l| l == "exploitation_form,sexual,<5"),
        "{csv}"
    );
    assert!(
        csv.lines().any(|l| l == "exploitation_form,labour,6"),
        "{csv}"
    );

    let later = json(&admin(&p.dora, &["--json", "stats", "--from", "2999-01-01"]).await);
    let forms = later["tables"][0].clone();
    assert_eq!(forms["total"], 0, "{later}");
    it.finish().await;
    al.finish().await;
}

/// The first line of `text` that holds `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}
