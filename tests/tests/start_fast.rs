//! Start to accepting without reading the history (issue 14, target 2): after a clean
//! shutdown the node checks only the store's head and the entries after the last checkpoint,
//! and the full check runs in the background; after a crash it checks everything as before.
//! Every guarantee stays: an entry altered while the node is stopped stops the node, a store
//! copied back is refused by the rollback tripwire. Real `trm-node` processes throughout.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use trm_proto::admin as api;
use trm_proto::admin::admin_request::Call;
use trm_tests::bins;
use trm_tests::proc::NodeProc;

const FAST: &str = "store opened on the fast path";
const FULL: &str = "store opened on the full path";
const CONSISTENT: &str = "background store check: the whole store is consistent";

/// A node process (info log) that ran, wrote a few audit entries and signed its last
/// checkpoint, and was stopped cleanly (SIGTERM).
async fn node_with_history(root: &Path) -> NodeProc {
    let mut it = NodeProc::init(root, "IT", &bins::bin("trm-node")).unwrap();
    it.log_filter = "info".into();
    it.start().await.unwrap();
    for n in 1..4 {
        it.officer(&format!("Officer Example {n}"), "officer")
            .await
            .unwrap();
    }
    it.terminate();
    it
}

fn log(node: &NodeProc) -> String {
    std::fs::read_to_string(node.dir.join("node.log")).unwrap_or_default()
}

/// The log written since `from` bytes.
fn log_since(node: &NodeProc, from: usize) -> String {
    log(node).get(from..).unwrap_or_default().to_string()
}

async fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// Waits (bounded) until the node process has exited by itself, then reaps it.
async fn wait_exit(node: &mut NodeProc) -> bool {
    let exited = wait_for(60, || !node.is_running()).await;
    node.kill();
    exited
}

/// `trm-node <args>`: exit code and everything it printed.
fn node_cmd(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bins::bin("trm-node"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run trm-node");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn dir(node: &NodeProc) -> &str {
    node.dir.to_str().unwrap()
}

fn audit_entries(status: &serde_json::Value) -> u64 {
    status["audit_entries"].as_u64().unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_takes_the_fast_path_and_a_killed_one_the_full_path() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = node_with_history(tmp.path()).await;
    assert!(log(&it).contains(FULL), "first start: {}", log(&it));

    // The offline check still reads everything, and says the next start will be fast.
    let (code, out) = node_cmd(&["check", "--dir", dir(&it)]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("clean-shutdown record matches"), "{out}");
    assert!(out.contains("full check ok"), "{out}");

    // A clean restart: the fast path, then the full check in the background.
    let mark = log(&it).len();
    it.start().await.unwrap();
    assert!(
        log_since(&it, mark).contains(FAST),
        "{}",
        log_since(&it, mark)
    );
    assert!(
        wait_for(60, || log_since(&it, mark).contains(CONSISTENT)).await,
        "no background check: {}",
        log_since(&it, mark)
    );
    it.officer("Officer Example 4", "officer").await.unwrap();
    let before = audit_entries(&it.call(Call::Status(api::Status {})).await.unwrap());

    // SIGKILL: no clean-shutdown record, so the next start checks the whole store, and the
    // node runs on it with nothing lost.
    it.kill();
    let mark = log(&it).len();
    it.start().await.unwrap();
    let since = log_since(&it, mark);
    assert!(
        since.contains(FULL) && since.contains("NoRecord"),
        "{since}"
    );
    assert!(!since.contains(CONSISTENT), "{since}");
    let after = audit_entries(&it.call(Call::Status(api::Status {})).await.unwrap());
    assert!(
        after >= before,
        "{after} audit entries after the crash, {before} before"
    );
    it.officer("Officer Example 5", "officer").await.unwrap();
    it.terminate();
    let (code, out) = node_cmd(&["check", "--dir", dir(&it)]);
    assert_eq!(code, Some(0), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_entry_altered_while_stopped_stops_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = node_with_history(tmp.path()).await;
    {
        // Someone edits entry 1 (covered by the last checkpoint) in the stopped node's store
        // and leaves the clean-shutdown record (opening the store through the library takes
        // it, so it is put back).
        let store = it.open_store().unwrap();
        let mut entry = store.audit_entries(1).unwrap().remove(0);
        entry.officer = "Someone Else".into();
        store
            .overwrite_audit_entry(1, &entry.encode_to_vec())
            .unwrap();
        store.close_clean().unwrap();
    }
    let mark = log(&it).len();
    it.spawn().unwrap();
    assert!(
        wait_exit(&mut it).await,
        "the node runs on an altered log: {}",
        log_since(&it, mark)
    );
    let since = log_since(&it, mark);
    assert!(since.contains(FAST), "{since}");
    let last = since.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("trm-node: background store check failed") && last.contains("altered"),
        "{last}"
    );
    assert!(
        !since.contains("Someone Else"),
        "an entry's value was logged: {since}"
    );

    // Without a clean-shutdown record, the next start checks everything and refuses it, as
    // does the offline check.
    let mark = log(&it).len();
    it.spawn().unwrap();
    assert!(wait_exit(&mut it).await, "started on an altered log");
    let since = log_since(&it, mark);
    assert!(
        since.contains("altered") && !since.contains(FAST),
        "{since}"
    );
    let (code, out) = node_cmd(&["check", "--dir", dir(&it)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("altered"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_copied_back_is_refused_by_the_tripwire_even_on_the_fast_path() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = node_with_history(tmp.path()).await;
    let store = it.store_dir();
    let old = tmp.path().join("old-store");
    copy_dir(&store, &old);
    it.start().await.unwrap();
    it.officer("Officer Example 9", "officer").await.unwrap();
    it.terminate();

    // The older copy carries its own clean-shutdown record and is consistent in itself: it
    // opens on the fast path, and the tripwire refuses it.
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&old, &store);
    let mark = log(&it).len();
    it.spawn().unwrap();
    assert!(
        wait_exit(&mut it).await,
        "the node runs on a rolled-back store"
    );
    let since = log_since(&it, mark);
    assert!(since.contains(FAST), "{since}");
    let last = since.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("trm-node: store at") && last.contains("rolled back"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_benchmark_times_the_three_starts_and_reports_them() {
    let st = trm_bench::start::start_times(&bins::bin("trm-node"), 300)
        .await
        .unwrap();
    assert_eq!(st.messages, 300);
    for d in [st.empty, st.full, st.fast] {
        assert!(d > Duration::ZERO);
    }
    let mut text = String::new();
    trm_bench::start::render(&mut text, &st);
    for row in ["empty store, clean restart", "(full check)", "(fast path"] {
        assert!(text.contains(row), "{row} in {text}");
    }
}
