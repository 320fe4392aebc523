//! Helpers of the "case that stays current" suite (`tests/tests/daily_current.rs`, issue 12
//! items 7 to 9): an officer on each side and synthetic case files.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;

use crate::bins::admin_ok;
use crate::TestNode;

/// Italy's officer and Albania's officer, each with a credential file.
pub struct Desk {
    /// Italy's officer.
    pub olivia: PathBuf,
    /// Albania's officer.
    pub otto: PathBuf,
}

/// An officer in Italy and one in Albania, through `officer add`.
pub async fn desk(root: &Path, it: &TestNode, al: &TestNode) -> Desk {
    let d = Desk {
        olivia: root.join("olivia.cred"),
        otto: root.join("otto.cred"),
    };
    for (name, file, node) in [
        ("Olivia Example", &d.olivia, it),
        ("Otto Example", &d.otto, al),
    ] {
        let op = node.dir.join(OPERATOR_CRED);
        let out = file.display().to_string();
        admin_ok(
            &op,
            &["officer", "add", name, "--role", "officer", "--out", &out],
        )
        .await;
    }
    d
}

/// A synthetic adult labour case with `reason` as its referral reason.
pub fn case_doc(case_ref: &str, reason: &str) -> Value {
    serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "reason": reason,
            "urgency": "routine",
        },
        "exploitation": { "forms": ["labour"], "victim_status": "presumed" },
    })
}

/// Writes `doc` to `root/name` and returns the path as a string.
pub fn write(root: &Path, name: &str, doc: &Value) -> String {
    let file = root.join(name);
    std::fs::write(&file, doc.to_string()).expect("write file");
    file.display().to_string()
}

/// `--json` output parsed.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
