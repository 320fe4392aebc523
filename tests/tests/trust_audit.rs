//! What an auditor can rely on (issue 10, items 11 to 13): a bundle cannot hide entries or
//! checkpoints, a node does not run silently on a store rolled back behind its last signed
//! checkpoint, another node's bundle catches a log cut back, and VERIFIED is tied to the keys
//! the auditor expects. Real nodes on loopback; node processes for the start refusal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use trm_node::identity::Credential;
use trm_node::store::SentState;
use trm_proto::audit::{verify_bundle, Location};
use trm_proto::auditpb::AuditBundle;
use trm_proto::pb;
use trm_tests::auditx::*;
use trm_tests::*;

/// Sends a small referral and waits until it is delivered (its receipt stored).
async fn exchange(node: &TestNode, officer: &Credential, case_ref: &str, to: &str) {
    let id = hex::decode(create_and_send(node, officer, case_ref, to).await).unwrap();
    let done = || {
        node.ctx()
            .store
            .sent(&id)
            .unwrap()
            .is_some_and(|s| SentState::from_u32(s.state) == SentState::Delivered)
    };
    assert!(wait_until(20, done).await, "{case_ref} not delivered");
}

// ------------------------------------------------------------------------------------------
// Item 11: hiding entries or checkpoints
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_or_checkpoints_hidden_from_a_full_export_fail_verification() {
    let (_tmp, it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    for n in 0..3 {
        exchange(&it, &o_it, &format!("IT-TEST-110{n}"), "AL").await;
    }
    let auditor = it.officer("Auditor Example", "auditor").await;
    let bytes = export(&it, &auditor).await;
    verify_bundle(&bytes).expect("the untouched bundle verifies");
    let (b, entries) = open_bundle(&bytes);
    let n = entries.len();
    assert!(n >= 12, "only {n} entries");
    assert!(
        b.checkpoints.len() >= 3,
        "{} checkpoints",
        b.checkpoints.len()
    );

    let without = |drop: &dyn Fn(usize) -> bool| {
        let mut c = b.clone();
        c.entries = b
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !drop(*i))
            .map(|(_, e)| e.clone())
            .collect();
        c.encode_to_vec()
    };
    // One entry in the middle: the others' inclusion proofs still verify.
    let f = verify_bundle(&without(&|i| i == n / 2))
        .expect_err("a bundle with a middle entry removed verifies");
    assert_eq!(f.location, Location::Entry(n as u64 / 2 + 1), "{f}");
    assert!(f.what.contains("missing"), "{f}");
    // The last entry, the last seven, every entry.
    for (what, from) in [
        ("the last entry", n - 1),
        ("the last seven", n - 7),
        ("every entry", 0),
    ] {
        let f = verify_bundle(&without(&|i| i >= from))
            .expect_err(&format!("a bundle without {what} verifies"));
        assert_eq!(f.location, Location::Bundle, "{what}: {f}");
    }

    // The log cut back to the last checkpoint before this export, every proof recomputed.
    let export_at = entries
        .iter()
        .rposition(|e| e.kind == "export")
        .expect("an export record") as u64;
    let before: Vec<usize> = (0..b.checkpoints.len())
        .filter(|&i| checkpoint(&b.checkpoints[i]).tree_size <= export_at)
        .collect();
    assert!(!before.is_empty());
    let cut = reprove(&bytes, &before, |_| true);
    let f = verify_bundle(&cut).expect_err("a log cut back to an earlier checkpoint verifies");
    assert_eq!(f.location, Location::Bundle, "{f}");
    assert!(f.what.contains("export record"), "{f}");

    // A middle checkpoint removed, its consistency proof recomputed.
    let m = b.checkpoints.len() / 2;
    let keep: Vec<usize> = (0..b.checkpoints.len()).filter(|&i| i != m).collect();
    let f = verify_bundle(&reprove(&bytes, &keep, |_| true))
        .expect_err("a bundle with a middle checkpoint removed verifies");
    assert!(
        matches!(f.location, Location::Checkpoint { position, .. } if position == m),
        "{f}"
    );
    // Sanity: the rebuild itself is faithful (all checkpoints kept: it verifies).
    let all: Vec<usize> = (0..b.checkpoints.len()).collect();
    verify_bundle(&reprove(&bytes, &all, |_| true)).expect("a faithful rebuild verifies");
    it.finish().await;
    al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_export_says_which_indices_it_holds_and_still_refuses_gaps() {
    use trm_proto::audit::{verify_bundle_with, Coverage, Options};
    let (_tmp, it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    exchange(&it, &o_it, "IT-TEST-1110", "AL").await;
    // Every entry so far is strictly before `from`, every later one strictly after `to`.
    wait_past(trm_node::base::time::now_ms()).await;
    let from = trm_node::base::time::now_ms();
    for n in 1..4 {
        exchange(&it, &o_it, &format!("IT-TEST-111{n}"), "AL").await;
    }
    let to = trm_node::base::time::now_ms();
    wait_past(to).await;
    exchange(&it, &o_it, "IT-TEST-1119", "AL").await;
    let auditor = it.officer("Auditor Example", "auditor").await;
    let part = export_range(&it, &auditor, from, to).await;

    // Not a full export: refused unless the auditor says a partial one is expected.
    let f = verify_bundle(&part).expect_err("a partial bundle passes as complete");
    assert!(f.what.contains("not a complete bundle"), "{f}");
    let partial = Options {
        allow_partial: true,
        ..Default::default()
    };
    let s = verify_bundle_with(&part, &partial).expect("the partial bundle verifies");
    let (first, last) = (s.first_index.unwrap(), s.last_index.unwrap());
    assert!(first > 0 && last + 1 < s.tree_size, "{s:?}");
    assert_eq!(
        s.coverage,
        Coverage::Partial {
            first,
            last,
            of: s.tree_size
        }
    );
    assert_eq!(
        s.coverage.to_string(),
        format!("partial: indices {first}..={last} of {}", s.tree_size)
    );
    assert_eq!(s.entries, last - first + 1);

    // A gap inside a partial bundle fails all the same.
    let mut b = AuditBundle::decode(part.as_slice()).unwrap();
    b.entries.remove(b.entries.len() / 2);
    let f = verify_bundle_with(&b.encode_to_vec(), &partial).expect_err("a gap verifies");
    assert!(f.what.contains("missing"), "{f}");

    // A full export says "complete".
    let full = verify_bundle(&export(&it, &auditor).await).expect("full export verifies");
    assert_eq!(full.coverage, Coverage::Complete);
    assert!(full.exported_ms.is_some());
    it.finish().await;
    al.finish().await;
}

// ------------------------------------------------------------------------------------------
// Item 12: rolling a node back
// ------------------------------------------------------------------------------------------

/// Runs the node binary with `args`; returns (exit code, last line on stderr). A `run` that
/// does not exit within the limit is killed and reported as still running (`None`).
fn node_cmd(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(trm_tests::bins::bin("trm-node"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trm-node");
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let last = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    (code, last.to_string())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_copied_back_from_an_older_copy_is_refused_at_start_unless_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    fast(&it);
    it.start().await;
    it.officer("Officer Example 1", "officer").await;
    it.stop().await;
    let store = it.dir.join("store");
    let tripwire = it.dir.join("keys").join("last-checkpoint.pb");
    assert!(tripwire.is_file(), "no tripwire beside the keys");
    // An older copy, and a proper backup taken at the same point.
    let old = tmp.path().join("old-store");
    copy_dir(&store, &old);
    let backup = tmp.path().join("it.backup");
    let (code, line) = node_cmd(
        &["backup", "--dir", s(&it.dir), "--out", s(&backup)],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "backup: {line}");
    let old_len = trm_node::store::Store::open(&old).unwrap().audit_len();

    // The node goes on and signs more of its log.
    it.start().await;
    for n in 2..5 {
        it.officer(&format!("Officer Example {n}"), "officer").await;
    }
    it.stop().await;

    // A missing tripwire is refused once the store has had one.
    let kept = tmp.path().join("tripwire-copy");
    std::fs::copy(&tripwire, &kept).unwrap();
    std::fs::remove_file(&tripwire).unwrap();
    let e = try_start(&it)
        .await
        .err()
        .expect("a store whose tripwire was removed starts");
    assert!(e.to_string().contains("missing"), "{e}");
    std::fs::copy(&kept, &tripwire).unwrap();

    // The older store copied back: refused in-process, naming the store and the tripwire ...
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&old, &store);
    let e = try_start(&it)
        .await
        .err()
        .expect("a store copied back from an older copy starts");
    let msg = e.to_string();
    assert!(
        msg.contains("rolled back") && msg.contains(s(&store)) && msg.contains(s(&tripwire)),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    // ... and by the node process: one line, exit 1, store unchanged.
    let (code, line) = node_cmd(&["run", "--dir", s(&it.dir)], Duration::from_secs(60));
    assert_eq!(
        code,
        Some(1),
        "the node process ran on a rolled-back store: {line}"
    );
    assert!(
        line.starts_with("trm-node: store at") && line.contains("rolled back"),
        "{line}"
    );
    // The offline check says the same before anyone starts it.
    let (code, line) = node_cmd(&["check", "--dir", s(&it.dir)], Duration::from_secs(60));
    assert_eq!(code, Some(1), "check passed a rolled-back store: {line}");
    assert!(line.contains("rolled back"), "{line}");
    assert_eq!(
        trm_node::store::Store::open(&store).unwrap().audit_len(),
        old_len
    );

    // Through `trm-node restore` the same older state starts, and says so in its log.
    let (code, line) = node_cmd(
        &["restore", "--from", s(&backup), "--dir", s(&it.dir)],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "restore: {line}");
    it.start().await;
    let entries = it.ctx().store.audit_entries(0).unwrap();
    assert!(
        entries.iter().any(|e| e.kind == "restore"),
        "no restore entry"
    );
    it.stop().await;
    // The tripwire now follows the restored store: it starts again.
    it.start().await;
    it.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_back_to_an_earlier_export_is_caught_by_a_witness_bundle() {
    use trm_proto::audit::{verify_bundle_with, Options};
    let (_tmp, it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    let a_al = al.officer("Auditor Example", "auditor").await;
    let a_it = it.officer("Auditor Example", "auditor").await;
    exchange(&it, &o_it, "IT-TEST-1200", "AL").await;
    let first = export(&al, &a_al).await;
    let first_sum = verify_bundle(&first).expect("first export verifies");
    // Italy receives receipts carrying Albania's later checkpoints.
    for n in 1..4 {
        exchange(&it, &o_it, &format!("IT-TEST-120{n}"), "AL").await;
    }
    let second = export(&al, &a_al).await;
    let second_sum = verify_bundle(&second).expect("second export verifies");
    let witness = export(&it, &a_it).await;
    assert!(
        largest_seen(&witness, "AL") > first_sum.tree_size,
        "Italy saw no checkpoint of Albania beyond the first export"
    );

    // Albania's second export cut back to the first one's last checkpoint, proofs recomputed:
    // on its own it verifies (nothing in it is wrong), but it shows the earlier export time.
    let (b, _) = open_bundle(&second);
    let k = b
        .checkpoints
        .iter()
        .position(|c| checkpoint(c).tree_size == first_sum.tree_size)
        .expect("the first export's checkpoint");
    let cut = reprove(&second, &(0..=k).collect::<Vec<_>>(), |_| true);
    let alone = verify_bundle(&cut).expect("alone, the cut-back bundle verifies");
    assert_eq!(alone.exported_ms, first_sum.exported_ms);
    assert!(alone.exported_ms < second_sum.exported_ms);

    // Italy's bundle holds Albania's checkpoints from the receipts: they show the cut.
    let opts = Options {
        witnesses: vec![witness],
        ..Default::default()
    };
    let f = verify_bundle_with(&cut, &opts).expect_err("the witness does not catch the cut");
    assert!(
        matches!(f.location, Location::Witness { bundle: 0, .. }),
        "{f}"
    );
    assert!(f.what.contains("cut back"), "{f}");
    // The genuine export agrees with every checkpoint Italy saw.
    let s = verify_bundle_with(&second, &opts).expect("the genuine export agrees");
    assert_eq!(s.witnessed.len(), 1);
    assert_eq!(s.witnessed[0].by, "IT");
    assert!(s.witnessed[0].checkpoints >= 3, "{:?}", s.witnessed);
    assert!(s.witnessed[0].largest > first_sum.tree_size);
    it.finish().await;
    al.finish().await;
}

// ------------------------------------------------------------------------------------------
// Item 13: VERIFIED for a bundle made with fresh keys
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_made_with_fresh_keys_fails_against_the_expected_key() {
    use trm_proto::audit::{verify_bundle_with, Options};
    use trm_proto::signing::fingerprint;
    let (_tmp, it, al) = fast_pair().await;
    let o_it = it.officer("Officer Example IT", "officer").await;
    exchange(&it, &o_it, "IT-TEST-1300", "AL").await;
    let auditor = it.officer("Auditor Example", "auditor").await;
    let real = export(&it, &auditor).await;
    let it_key = fingerprint(&it.keys().public_key());
    let al_key = fingerprint(&al.keys().public_key());
    let expect = |keys: Vec<String>| Options {
        expect_keys: keys,
        ..Default::default()
    };

    // The real bundle names the keys and passes with the node's fingerprint, in any spelling.
    let s = verify_bundle_with(&real, &expect(vec![it_key.clone()])).expect("real bundle");
    assert_eq!(s.key_fingerprints, vec![it_key.clone()]);
    assert_eq!(s.peer_keys["AL"], vec![al_key.clone()]);
    let bare = it_key.replace(':', "").to_uppercase();
    verify_bundle_with(&real, &expect(vec![bare])).expect("fingerprint without colons");

    // A whole other "IT" node with fresh keys and a log of its own: its bundle verifies on
    // its own, but not as Italy's.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut fake = TestNode::init(tmp2.path(), "IT");
    fake.start().await;
    let fake_auditor = fake.officer("Auditor Example", "auditor").await;
    let forged = export(&fake, &fake_auditor).await;
    verify_bundle(&forged).expect("a fabricated bundle verifies on its own");
    let f = verify_bundle_with(&forged, &expect(vec![it_key.clone()]))
        .expect_err("a bundle made with fresh keys passes as Italy's");
    assert_eq!(f.location, Location::Card, "{f}");
    assert!(f.what.contains(&it_key), "{f}");
    // One expected key missing among several fails too.
    let f = verify_bundle_with(&real, &expect(vec![it_key.clone(), al_key.clone()]))
        .expect_err("the peer's key passes as the node's");
    assert_eq!(f.location, Location::Card, "{f}");
    fake.stop().await;

    // A card for Albania with an unrelated key history, slipped in beside the real one.
    let fake_al = TestNode::init(tmp2.path(), "AL");
    let mut b = AuditBundle::decode(real.as_slice()).unwrap();
    b.peer_cards.push(fake_al.card());
    let f = verify_bundle(&b.encode_to_vec()).expect_err("a foreign peer card verifies");
    assert!(matches!(f.location, Location::PeerCard(_)), "{f}");
    assert!(
        f.what.contains("unrelated key histories for AL") && f.what.contains("no operator's"),
        "{f}"
    );
    it.finish().await;
    al.finish().await;
}

/// The largest tree size of `of`'s checkpoints that `bundle`'s receipts carry.
fn largest_seen(bundle: &[u8], of: &str) -> u64 {
    let (_, entries) = open_bundle(bundle);
    entries
        .iter()
        .filter(|e| e.kind == "receipt_received" && e.peer == of)
        .filter_map(|e| {
            pb::Receipt::decode(e.signed_body.as_slice())
                .ok()?
                .checkpoint
        })
        .map(|c| checkpoint(&c.encode_to_vec()).tree_size)
        .max()
        .unwrap_or(0)
}
