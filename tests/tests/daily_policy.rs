//! The outgoing law profile seen by officers and changed without a restart (issue 12, item
//! 13), through the real `trm-node` and `trm-admin` binaries: `policy show [--to CC]`,
//! `policy reload` (operator) and SIGHUP.

use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::{admin_as, admin_ok, bin};
use trm_tests::proc::{pin_all, NodeProc};
use trm_tests::{adult_case, wait_until};

/// The rules that withhold `path` in `referral preview --json` (empty: released).
fn withheld_by(preview: &str, path: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(preview).expect("preview JSON");
    let field = v["fields"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["path"] == path))
        .unwrap_or_else(|| panic!("{path} not in the preview"));
    field["withheld_by"]
        .as_array()
        .map(|xs| {
            xs.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `policy show --to AL --json`'s entry for Albania.
async fn albania(cred: &Path) -> Value {
    let out = admin_ok(cred, &["--json", "policy", "show", "--to", "AL"]).await;
    let v: Value = serde_json::from_str(&out).expect("policy JSON");
    v["partners"][0].clone()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|xs| {
            xs.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn officer(op: &Path, root: &Path, name: &str, role: &str) -> PathBuf {
    let file = root.join(format!("{role}.cred"));
    trm_tests::bins::enrol(op, name, role, &file).await;
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_is_shown_and_reloaded_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let node_bin = bin("trm-node");
    let mut nodes = [
        NodeProc::init(root.path(), "IT", &node_bin).unwrap(),
        NodeProc::init(root.path(), "AL", &node_bin).unwrap(),
    ];
    for n in nodes.iter_mut() {
        n.start().await.unwrap();
    }
    pin_all(&mut nodes).await.unwrap();
    let it = &nodes[0];
    let op = it.dir.join(OPERATOR_CRED);
    let olivia = officer(&op, root.path(), "Olivia Example", "officer").await;
    let case = root.path().join("case.json");
    std::fs::write(&case, adult_case("IT-2026-0077", None)).unwrap();
    admin_ok(
        &olivia,
        &["case", "create", "--file", &case.display().to_string()],
    )
    .await;
    let preview = || {
        admin_ok(
            &olivia,
            &[
                "--json",
                "referral",
                "preview",
                "IT-2026-0077",
                "--to",
                "AL",
            ],
        )
    };

    // The default profile: no personal category, and the table says which key decides it.
    let shown = admin_ok(&olivia, &["policy", "show"]).await;
    assert!(shown.contains("default_outgoing"), "{shown}");
    let al = albania(&olivia).await;
    assert_eq!(al["profile_key"], "default_outgoing");
    assert!(
        !names(&al["outgoing"]).contains(&"health".to_string()),
        "{al}"
    );
    assert_eq!(
        names(&al["acceptance"]).len(),
        10,
        "Albania accepts every category: {al}"
    );
    assert!(
        withheld_by(&preview().await, "health.medical_needs").contains(&"outgoing_profile".into())
    );

    // node.toml gains an entry for Albania: nothing changes until a reload.
    it.set_in_table(
        "outgoing",
        "AL",
        r#"["reference", "exploitation", "health"]"#,
    )
    .unwrap();
    assert_eq!(albania(&olivia).await["profile_key"], "default_outgoing");
    let refused = admin_as(&olivia, &["policy", "reload"]).await;
    assert_ne!(
        refused.code,
        Some(0),
        "an officer may not reload the profile"
    );
    assert!(refused.stderr.contains("operator"), "{}", refused.stderr);
    let reloaded = admin_ok(&op, &["policy", "reload"]).await;
    assert!(
        reloaded.contains("outgoing.AL: (none) -> reference, exploitation, health"),
        "{reloaded}"
    );
    let al = albania(&olivia).await;
    assert_eq!(al["profile_key"], "outgoing.AL");
    assert_eq!(
        names(&al["may_send"]),
        ["reference", "exploitation", "health"]
    );
    let why = withheld_by(&preview().await, "health.medical_needs");
    assert!(
        !why.contains(&"outgoing_profile".into()),
        "still blocked: {why:?}"
    );

    // A node.toml that does not validate changes nothing, and says so in one line.
    it.set_in_table("outgoing", "AL", r#"["reference", "labour"]"#)
        .unwrap();
    let bad = admin_as(&op, &["policy", "reload"]).await;
    assert_eq!(bad.code, Some(1), "{}", bad.stderr);
    assert_eq!(bad.stderr.trim().lines().count(), 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("labour") && bad.stderr.contains("unchanged"),
        "{}",
        bad.stderr
    );
    assert_eq!(albania(&olivia).await["profile_key"], "outgoing.AL");

    // Another setting is reported as needing a restart and not applied.
    it.set_in_table("outgoing", "AL", r#"["reference"]"#)
        .unwrap();
    it.edit_config(|t| {
        let line = t.lines().find(|l| l.starts_with("directory_stale_days"));
        t.replace(
            line.expect("init writes directory_stale_days"),
            "directory_stale_days = 90",
        )
    })
    .unwrap();
    let partial = admin_ok(&op, &["policy", "reload"]).await;
    assert!(
        partial.contains("outgoing.AL: reference, exploitation, health -> reference"),
        "{partial}"
    );
    assert!(
        partial.contains("not applied until the node restarts: directory_stale_days"),
        "{partial}"
    );

    // SIGHUP does what `policy reload` does.
    it.set_in_table("outgoing", "AL", r#"["reference", "risk"]"#)
        .unwrap();
    let pid = it.pid().expect("IT runs");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut seen = Vec::new();
    let applied = wait_until(20, || {
        let out = trm_tests::bins::run(
            "trm-admin",
            &[
                "--cred",
                &olivia.display().to_string(),
                "--json",
                "policy",
                "show",
                "--to",
                "AL",
            ],
        );
        seen = serde_json::from_str::<Value>(&out.stdout)
            .map(|v| names(&v["partners"][0]["outgoing"]))
            .unwrap_or_default();
        seen == ["reference", "risk"]
    })
    .await;
    assert!(applied, "SIGHUP did not reload the profile: {seen:?}");
    assert!(nodes[0].is_running(), "SIGHUP must not stop the node");
}
