//! Store operations: schema versions and migration, the lock, consistent snapshots.

use super::*;

fn received(peer: &str, id: u8, at: i64) -> ReceivedRecord {
    ReceivedRecord {
        id: vec![id; 16],
        peer: peer.into(),
        kind: "referral".into(),
        received_ms: at,
        case_ref: format!("TEST-{id}"),
        ..Default::default()
    }
}

fn audit(n: u64) -> AuditEntry {
    AuditEntry {
        time_ms: n as i64,
        kind: "admin".into(),
        call: "status".into(),
        ..Default::default()
    }
}

#[test]
fn a_new_store_gets_the_current_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&tmp.path().join("s")).unwrap();
    assert_eq!(s.migrated_from(), None);
    assert_eq!(
        s.meta("schema").unwrap(),
        Some(SCHEMA_VERSION.to_be_bytes().to_vec())
    );
}

#[test]
fn a_newer_store_is_refused_and_left_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    let s = Store::open(&path).unwrap();
    s.commit_blocking(vec![Op::PutMeta(
        "schema".into(),
        (SCHEMA_VERSION + 1).to_be_bytes().to_vec(),
    )])
    .unwrap();
    drop(s);
    match Store::open(&path) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer store was opened"),
    }
    // Still refused the second time: nothing was rewritten.
    assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
}

/// Writes a schema-0 store: no `schema` key, no inbox tree.
fn write_v0(path: &Path, rows: &[ReceivedRecord]) {
    let db = sled::open(path).unwrap();
    let received_tree = db.open_tree("received").unwrap();
    for r in rows {
        received_tree
            .insert(received_key(&r.peer, &r.id), r.encode_to_vec())
            .unwrap();
    }
    db.open_tree("audit")
        .unwrap()
        .insert(0u64.to_be_bytes(), audit(0).encode_to_vec())
        .unwrap();
    db.flush().unwrap();
}

#[test]
fn a_schema_0_store_is_migrated_to_the_current_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    // Arrival order differs from key order: AL/2 came first.
    write_v0(
        &path,
        &[
            received("AL", 1, 3_000),
            received("AL", 2, 1_000),
            received("FR", 3, 2_000),
        ],
    );
    let s = Store::open(&path).unwrap();
    assert_eq!(s.migrated_from(), Some(0));
    assert_eq!(
        s.meta("schema").unwrap(),
        Some(SCHEMA_VERSION.to_be_bytes().to_vec())
    );
    let order: Vec<u8> = s.inbox().unwrap().iter().map(|r| r.id[0]).collect();
    assert_eq!(order, vec![2, 3, 1]);
    // New messages go after the migrated ones.
    s.commit_blocking(vec![Op::Receive(received("AL", 4, 500))])
        .unwrap();
    let order: Vec<u8> = s.inbox().unwrap().iter().map(|r| r.id[0]).collect();
    assert_eq!(order, vec![2, 3, 1, 4]);
    drop(s);
    let again = Store::open(&path).unwrap();
    assert_eq!(again.migrated_from(), None, "migration runs once");
    assert_eq!(again.inbox().unwrap().len(), 4);
}

#[test]
fn a_second_open_is_refused_as_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    let s = Store::open(&path).unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::Locked(_))));
    assert!(matches!(
        Store::ensure_unlocked(&path),
        Err(StoreError::Locked(_))
    ));
    drop(s);
    Store::ensure_unlocked(&path).unwrap();
    Store::ensure_unlocked(&tmp.path().join("missing")).unwrap();
}

fn snapshot_vec(s: &Store) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    s.snapshot(|t, k, v| {
        out.push((t.to_string(), k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn snapshot_and_import_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&tmp.path().join("a")).unwrap();
    s.commit_blocking(vec![
        Op::Receive(received("AL", 1, 10)),
        Op::Audit(audit(1)),
        Op::Audit(audit(2)),
        Op::Enqueue(SentRecord {
            id: vec![9; 16],
            peer: "AL".into(),
            kind: "referral".into(),
            created_ms: 5,
            ..Default::default()
        }),
    ])
    .unwrap();
    let snap = snapshot_vec(&s);
    let b = tmp.path().join("b");
    let n = Store::import(&b, snap.clone().into_iter().map(Ok)).unwrap();
    assert_eq!(n as usize, snap.len());
    let copy = Store::open(&b).unwrap();
    assert_eq!(copy.audit_len(), 2);
    assert_eq!(copy.inbox().unwrap().len(), 1);
    assert_eq!(copy.outbox_depths().unwrap()["AL"].0, 1);
    assert_eq!(snapshot_vec(&copy), snap);
    // Import never writes over an existing store.
    assert!(Store::import(&b, std::iter::empty()).is_err());
}

#[test]
fn snapshot_is_consistent_while_jobs_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&tmp.path().join("a")).unwrap();
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..200u64 {
                // Each job writes one case and one audit entry, atomically.
                s.commit_blocking(vec![
                    Op::PutCase(CaseRecord {
                        id: format!("TEST-{i:04}"),
                        ..Default::default()
                    }),
                    Op::Audit(audit(i)),
                ])
                .unwrap();
            }
        })
    };
    let mut seen = 0;
    while !writer.is_finished() || seen == 0 {
        let snap = snapshot_vec(&s);
        let cases = snap.iter().filter(|r| r.0 == "cases").count();
        let entries = snap.iter().filter(|r| r.0 == "audit").count();
        assert_eq!(cases, entries, "a snapshot saw half a job");
        seen += 1;
    }
    writer.join().unwrap();
}

#[test]
fn a_case_version_made_from_a_stale_read_is_refused_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&tmp.path().join("s")).unwrap();
    let v1 = CaseRecord {
        id: "TEST-0001".into(),
        ..Default::default()
    };
    s.commit_blocking(vec![Op::PutCase(v1.clone())]).unwrap();
    let version = |by: &str| CaseRecord {
        current: Some(CaseVersion {
            number: 2,
            by: by.into(),
            ..Default::default()
        }),
        ..v1.clone()
    };
    // Two versions prepared from the same read: the first commits, the second is skipped
    // whole (its audit entry included), so no version is lost silently.
    let job = |by: &str| {
        vec![
            Op::ExpectCase {
                id: "TEST-0001".into(),
                expected: Some(v1.clone()),
            },
            Op::Audit(audit(1)),
            Op::PutCase(version(by)),
        ]
    };
    let first = s.commit_blocking(job("first")).unwrap();
    assert!(!first.contains(&Outcome::Conflict));
    let audit_len = s.audit_len();
    let second = s.commit_blocking(job("second")).unwrap();
    assert_eq!(second[0], Outcome::Conflict);
    assert_eq!(s.case("TEST-0001").unwrap(), Some(version("first")));
    assert_eq!(s.audit_len(), audit_len);
}

/// Writes a schema-1 store: `received` (sender ‖ id → record) and `inbox` (sequence →
/// `received` key), as the code before schema 2 wrote them.
fn write_v1(path: &Path, rows: &[ReceivedRecord]) {
    let db = sled::open(path).unwrap();
    let (received_tree, inbox) = (
        db.open_tree("received").unwrap(),
        db.open_tree("inbox").unwrap(),
    );
    for (i, r) in rows.iter().enumerate() {
        let key = received_key(&r.peer, &r.id);
        received_tree.insert(&key, r.encode_to_vec()).unwrap();
        inbox.insert((i as u64).to_be_bytes(), key).unwrap();
    }
    db.open_tree("meta")
        .unwrap()
        .insert("schema", &1u32.to_be_bytes())
        .unwrap();
    db.flush().unwrap();
}

#[test]
fn a_schema_1_store_is_migrated_to_arrival_keys_and_an_interrupted_copy_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    let mut rows = vec![received("FR", 3, 9_000), received("AL", 1, 1_000)];
    rows[0].receipt = b"receipt of FR/3".to_vec();
    write_v1(&path, &rows);
    {
        // A copy interrupted before `schema` = 2: a stray record in the new trees.
        let db = sled::open(&path).unwrap();
        db.open_tree(ARRIVALS)
            .unwrap()
            .insert(7u64.to_be_bytes(), &b"partial"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.migrated_from(), Some(1));
    let order: Vec<u8> = s.inbox().unwrap().iter().map(|r| r.id[0]).collect();
    assert_eq!(order, vec![3, 1], "inbox order kept, the stray record gone");
    assert_eq!(s.received("FR", &[3; 16]).unwrap(), Some(rows[0].clone()));
    assert_eq!(s.received_count(), 2);
    // A duplicate of a migrated message gets its stored receipt back and stores nothing.
    let out = s
        .commit_blocking(vec![Op::Receive(received("FR", 3, 10_000))])
        .unwrap();
    assert_eq!(out, vec![Outcome::Duplicate(b"receipt of FR/3".to_vec())]);
    s.commit_blocking(vec![Op::Receive(received("AL", 4, 500))])
        .unwrap();
    let names: Vec<Vec<u8>> = s.inner.db.tree_names().iter().map(|n| n.to_vec()).collect();
    assert!(!names.contains(&b"inbox".to_vec()) && !names.contains(&b"received".to_vec()));
    s.close_clean().unwrap();
    drop(s);
    let again = Store::open(&path).unwrap();
    assert_eq!(again.migrated_from(), None, "migration runs once");
    assert!(matches!(again.opened(), OpenCheck::Fast { .. }));
    let order: Vec<u8> = again.inbox().unwrap().iter().map(|r| r.id[0]).collect();
    assert_eq!(order, vec![3, 1, 4]);
    again.full_check(&AtomicBool::new(false)).unwrap();
}

#[test]
fn a_received_envelope_is_stored_once_and_read_back_as_received() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::open(&tmp.path().join("s")).unwrap();
    let env = trm_proto::pb::Envelope {
        body: vec![1; 2000],
        signature: vec![2; 64],
        signer: vec![3; 32],
    };
    let mut r = received("IT", 5, 1);
    r.envelope = env.encode_to_vec();
    let entry = AuditEntry {
        kind: "received".into(),
        peer: "IT".into(),
        message_id: r.id.clone(),
        signed_body: env.body.clone(),
        signature: env.signature.clone(),
        signer: env.signer.clone(),
        ..Default::default()
    };
    s.commit_blocking(vec![
        Op::Audit(audit(0)),
        Op::Receive(r.clone()),
        Op::Audit(entry),
    ])
    .unwrap();
    let raw = s.inner.t.arrivals.get(0u64.to_be_bytes()).unwrap().unwrap();
    assert!(
        raw.len() < 500,
        "envelope left out: {} bytes stored",
        raw.len()
    );
    assert_eq!(s.received("IT", &r.id).unwrap(), Some(r.clone()));
    assert_eq!(s.inbox().unwrap(), vec![r.clone()]);
    // Erasure rewrites the record: still stored once, still read back whole.
    let mut erased = r.clone();
    erased.erased.push(Erased {
        category: 1,
        at_ms: 2,
        reason: "consent_withdrawn".into(),
    });
    s.commit_blocking(vec![Op::PutReceived(erased.clone())])
        .unwrap();
    let raw = s.inner.t.arrivals.get(0u64.to_be_bytes()).unwrap().unwrap();
    assert!(raw.len() < 500);
    assert_eq!(s.received_for_case("IT", "TEST-5").unwrap(), vec![erased]);
    assert_eq!(s.received_count(), 1);
}

/// A handle of this process that was just dropped can hold sled's own lock for a moment while
/// sled's threads finish: with the store's lock free, open waits for it instead of failing.
#[test]
fn open_waits_for_sled_to_let_go_of_a_handle_just_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s");
    drop(Store::open(&path).unwrap());
    let lingering = sled::Config::new().path(&path).open().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(lingering);
    });
    let s = Store::open(&path).expect("opened once sled let go");
    release.join().unwrap();
    assert_eq!(s.migrated_from(), None);
}
