//! Issue 12 item 18, as an officer meets it: a referral named without its partner, or a phase,
//! outcome or date the node would refuse, is a usage error (exit 64) on one line that says what
//! to type, before anything is sent. The node is not running: none of these reach it.

use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::run;
use trm_tests::TestNode;

/// Runs `trm-admin --cred <operator> ARGS` against an initialised, stopped node; expects exit
/// 64 and one line on stderr containing every one of `says`.
fn refused(cred: &std::path::Path, args: &[&str], says: &[&str]) {
    let mut all = vec!["--cred", cred.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let ran = run("trm-admin", &all);
    assert_eq!(ran.code, Some(64), "{args:?}: {}", ran.stderr);
    let line = ran.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "{args:?}: one line, got {line:?}");
    for s in says {
        assert!(line.contains(s), "{args:?}: {line:?} does not say {s:?}");
    }
    assert!(!line.contains("CASE_REF/CC"), "{line}");
}

#[test]
fn officers_are_told_what_to_type_before_anything_is_sent() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let it = TestNode::init(tmp.path(), "IT");
    let cred = it.dir.join(OPERATOR_CRED);
    refused(
        &cred,
        &["referral", "accept", "IT-2026-0001", "--institution", "X"],
        &["add --from CC", "IT-2026-0001"],
    );
    refused(
        &cred,
        &[
            "referral",
            "decline",
            "IT-2026-0001",
            "--reason",
            "capacity",
        ],
        &["add --from CC"],
    );
    refused(
        &cred,
        &[
            "followup",
            "send",
            "IT-2026-0001",
            "--to",
            "AL",
            "--phase",
            "recovery",
            "--status",
            "ok",
        ],
        &[
            "--phase \"recovery\" is not a phase",
            "first_assistance",
            "proceedings",
        ],
    );
    refused(
        &cred,
        &[
            "followup",
            "send",
            "IT-2026-0001",
            "--to",
            "AL",
            "--phase",
            "return",
            "--status",
            "ok",
            "--date",
            "2026-02-30",
        ],
        &["--date \"2026-02-30\" is not a date", "YYYY-MM-DD"],
    );
    refused(
        &cred,
        &[
            "case",
            "close",
            "IT-2026-0001",
            "--to",
            "AL",
            "--outcome",
            "finished",
        ],
        &["--outcome \"finished\" is not an outcome", "contact_lost"],
    );
    refused(
        &cred,
        &[
            "case",
            "close",
            "IT-2026-0001",
            "--to",
            "AL",
            "--outcome",
            "other",
            "--date",
            "26-11-2026",
        ],
        &["is not a date"],
    );
}

/// Issue 12 item 10: a case reference starts with the node's country code; another country's
/// (or none) is refused with one line, exit 64, and nothing is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_reference_of_another_country_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (it, _al) = trm_tests::open_pair(tmp.path()).await;
    let officer = tmp.path().join("olivia.cred");
    let op = it.dir.join(OPERATOR_CRED);
    trm_tests::bins::enrol(&op, "Olivia Example", "officer", &officer).await;
    for case_ref in ["GR-2026-0007", "ITALY-2026-1", "2026-IT-0001"] {
        let file = tmp.path().join(format!("{case_ref}.json"));
        std::fs::write(&file, trm_tests::small_case(case_ref)).unwrap();
        let path = file.display().to_string();
        let ran = trm_tests::bins::admin_as(&officer, &["case", "create", "--file", &path]).await;
        assert_eq!(ran.code, Some(64), "{case_ref}: {}", ran.stderr);
        let line = ran.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(
            line.contains("must start with this node's country code, IT-"),
            "{line}"
        );
    }
    let listed = trm_tests::bins::admin_ok(&officer, &["--json", "case", "list"]).await;
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        v["cases"].as_array().map(Vec::len),
        Some(0),
        "nothing recorded: {v}"
    );
    let file = tmp.path().join("ok.json");
    std::fs::write(&file, trm_tests::small_case("IT-2026-0007")).unwrap();
    let path = file.display().to_string();
    trm_tests::bins::admin_ok(&officer, &["case", "create", "--file", &path]).await;
}
