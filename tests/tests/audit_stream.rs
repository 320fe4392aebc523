//! Audit at the scale of years (issue 14, target 5): the export streams to the auditor's file
//! with no overall cap, a cut export leaves nothing, and `audit verify` reads the file
//! streaming, on a pool of threads, naming the same first failure as the check in memory.
//! Real node on loopback, real `trm-admin`. The debug builds' knobs `TRM_DEBUG_ANSWER_CAP`
//! (client), `TRM_DEBUG_EXPORT_CHUNK` and `TRM_DEBUG_EXPORT_CUT` (node) make a log of a few
//! thousand entries show what a log of millions would; they are set in one test only, and the
//! tests of this file run one at a time ([`SERIAL`]).

use std::path::Path;

use trm_node::admin::client::{AdminClient, ClientError};
use trm_node::store::{AuditEntry, Op};
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::audit::{verify_bundle, Coverage, Location};
use trm_tests::auditx::open_bundle;
use trm_tests::*;

/// Held by each test for its whole run: the debug knobs are process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Appends `n` admin entries to the node's log (as `n` admin calls would).
async fn grow_log(node: &TestNode, n: usize) {
    let ops = (0..n)
        .map(|i| {
            Op::Audit(AuditEntry {
                time_ms: node.ctx().clock.now_ms(),
                kind: "admin".into(),
                officer: "Officer Example".into(),
                role: "officer".into(),
                call: "status".into(),
                target: format!("synthetic call {i}"),
                result: "ok".into(),
                ..Default::default()
            })
        })
        .collect();
    node.ctx().store.commit(ops).await.expect("commit");
}

/// A started IT node with `entries` more log entries, and an auditor's credential file.
async fn node_with_log(root: &Path, entries: usize) -> (TestNode, std::path::PathBuf) {
    let mut node = TestNode::init(root, "IT");
    node.start().await;
    grow_log(&node, entries).await;
    let auditor = node.officer("Auditor Example", "auditor").await;
    let cred = root.join("auditor.toml");
    auditor.save(&cred).expect("save credential");
    (node, cred)
}

/// Files in `dir` whose name starts with `.` (an export's temporary file).
fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_over_the_answer_cap_streams_to_the_file_and_a_cut_one_leaves_nothing() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let (node, cred) = node_with_log(tmp.path(), 3000).await;
    // Stand-ins for the 64 MiB answer cap and the 512 KiB chunk: the bundle is ~1 MiB.
    std::env::set_var("TRM_DEBUG_ANSWER_CAP", (64 << 10).to_string());
    std::env::set_var("TRM_DEBUG_EXPORT_CHUNK", (16 << 10).to_string());

    // 1. Today's cap: the one-frame export of this log does not fit the client's frame.
    let auditor = trm_node::identity::Credential::load(&cred).unwrap();
    let c = AdminClient::connect(&auditor).await.expect("connect");
    let legacy = c
        .call_with_data(Call::AuditExport(api::AuditExport::default()))
        .await;
    c.close().await;
    match legacy {
        Err(ClientError::BadAnswer(why)) => assert!(why.contains("exceeds"), "{why}"),
        other => panic!("a one-frame export over the cap must fail, got {other:?}"),
    }

    // 2. Streamed: the same log, bigger than the cap, arrives whole and verifies.
    let out = tmp.path().join("it.bundle");
    let file = out.display().to_string();
    let ran = bins::admin_as(&cred, &["audit", "export", "--out", &file]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.len() > 64 << 10, "bundle of {} bytes", bytes.len());
    assert!(hidden_files(tmp.path()).is_empty(), "temporary file left");
    let sum = verify_bundle(&bytes).expect("the streamed bundle verifies in memory");
    assert_eq!(sum.coverage, Coverage::Complete);
    assert!(sum.entries > 3000);
    let verified = bins::admin_as(&cred, &["audit", "verify", &file]).await;
    assert_eq!(verified.code, Some(0), "{}", verified.stderr);
    assert!(verified.stdout.contains("complete"), "{}", verified.stdout);

    // 3. A cut export (the node stops after 3 chunks): no file, no temporary file, one line.
    std::env::set_var("TRM_DEBUG_EXPORT_CUT", "3");
    let cut = tmp.path().join("cut.bundle");
    let ran = bins::admin_as(
        &cred,
        &["audit", "export", "--out", &cut.display().to_string()],
    )
    .await;
    std::env::remove_var("TRM_DEBUG_EXPORT_CUT");
    assert_ne!(ran.code, Some(0), "a cut export must fail");
    assert_eq!(ran.stderr.trim().lines().count(), 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("cut"), "{}", ran.stderr);
    assert!(!cut.exists(), "a cut export left its file");
    assert!(hidden_files(tmp.path()).is_empty(), "temporary file left");
    std::env::remove_var("TRM_DEBUG_ANSWER_CAP");
    std::env::remove_var("TRM_DEBUG_EXPORT_CHUNK");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_verify_names_the_same_first_failure_as_the_check_in_memory() {
    let _serial = SERIAL.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    // More entries than several batches of the verifier's pool (256 each).
    let (node, cred) = node_with_log(tmp.path(), 1500).await;
    let out = tmp.path().join("it.bundle");
    let file = out.display().to_string();
    bins::admin_ok(&cred, &["audit", "export", "--out", &file]).await;
    let good = std::fs::read(&out).unwrap();
    let (_, entries) = open_bundle(&good);
    let ok = bins::admin_as(&cred, &["audit", "verify", &file, "--json"]).await;
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let doc: serde_json::Value = serde_json::from_str(&ok.stdout).unwrap();
    let sum = verify_bundle(&good).unwrap();
    assert_eq!(doc["entries"], sum.entries, "{}", ok.stdout);
    assert_eq!(doc["signatures"], sum.signatures, "{}", ok.stdout);

    // Two entries altered, in different batches: the first in bundle order is named, by both.
    let mut bad = good.clone();
    for index in [1100usize, 700] {
        let target = format!("synthetic call {}", index - entries[0].index as usize);
        let at = bad
            .windows(target.len())
            .position(|w| w == target.as_bytes())
            .unwrap_or_else(|| panic!("{target} not in the bundle"));
        bad[at] ^= 0x01;
    }
    let in_memory = verify_bundle(&bad).unwrap_err();
    let Location::Entry(named) = in_memory.location else {
        panic!("{in_memory}")
    };
    let tampered = tmp.path().join("tampered.bundle");
    std::fs::write(&tampered, &bad).unwrap();
    let ran = bins::admin_as(&cred, &["audit", "verify", &tampered.display().to_string()]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let line = ran.stderr.trim();
    assert!(
        line.contains(&format!("FAILED at entry {named}: ")),
        "{line}"
    );
    assert!(line.ends_with(&in_memory.what), "{line} / {in_memory}");

    // A bundle cut short, or with a byte appended, fails on the bundle as a whole.
    for broken in [&good[..good.len() - 7], &[&good[..], &[0x08]].concat()[..]] {
        std::fs::write(&tampered, broken).unwrap();
        let ran =
            bins::admin_as(&cred, &["audit", "verify", &tampered.display().to_string()]).await;
        assert_eq!(ran.code, Some(1), "{}", ran.stderr);
        assert!(ran.stderr.contains("FAILED at bundle"), "{}", ran.stderr);
        assert!(verify_bundle(broken).is_err());
    }
    drop(node);
}
