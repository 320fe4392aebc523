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
