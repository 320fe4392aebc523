//! Issue 10, items 4, 6 and 17: what a partner's answers can do to this node's audit log and
//! to witnessing, and bad input at the edges (files given to `trm-admin`, case values,
//! `node.toml` limits). A fake receiving node (tests/src/answers.rs) pinned by a real
//! in-process node answers as each test says.

use std::time::Duration;

use prost::Message;
use serde_json::Value;
use trm_node::identity::Credential;
use trm_node::store::{Op, SentState};
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::audit::verify_bundle;
use trm_proto::pb::{self, peer_response, RejectReason};
use trm_tests::answers::{admin, Ask, FakeIdentity, FakeReceiver, Reply};
use trm_tests::*;

const HOUR_MS: i64 = 3_600_000;

/// Italy, started, with short retry delays, pinning the fake Albania `fake` answering with
/// `script`.
async fn italy_and_fake(
    tmp: &std::path::Path,
    script: impl Fn(&FakeIdentity, &Ask) -> Reply + Send + Sync + 'static,
) -> (TestNode, FakeReceiver) {
    let mut it = TestNode::init(tmp, "IT");
    it.configure(|c| {
        c.delivery.backoff_initial_ms = 20;
        c.delivery.backoff_max_ms = 200;
    });
    it.start().await;
    let now = trm_node::base::time::now_ms();
    let fake = FakeReceiver::start("AL", now - HOUR_MS, "IT", &it.keys().tls_cert, script);
    it.op(Call::PeerAdd(api::PeerAdd {
        card: fake.id.card.clone(),
        ..Default::default()
    }))
    .await;
    (it, fake)
}

fn state(node: &TestNode, id: &str) -> SentState {
    let id = hex::decode(id).unwrap();
    SentState::from_u32(node.ctx().store.sent(&id).unwrap().unwrap().state)
}

/// A full export of `node`'s audit log, verified offline; returns the summary.
async fn export_and_verify(node: &TestNode) -> trm_proto::audit::Summary {
    let auditor = node.officer("Auditor Example", "auditor").await;
    let c = trm_node::admin::client::AdminClient::connect(&auditor)
        .await
        .expect("connect");
    let (_, bundle) = c
        .call_with_data(Call::AuditExport(api::AuditExport::default()))
        .await
        .expect("audit export");
    c.close().await;
    match verify_bundle(&bundle) {
        Ok(s) => s,
        Err(f) => panic!("a full export of {} does not verify: {f}", node.country),
    }
}

async fn peer_status(node: &TestNode) -> Value {
    let status = node.op(Call::Status(api::Status {})).await;
    status["peers"][0].clone()
}

async fn trust(node: &TestNode, cc: &str) {
    node.op(Call::PeerTrust(api::PeerTrust { country: cc.into() }))
        .await;
}

/// A checkpoint body in non-canonical encoding (an unknown field appended), validly signed.
fn non_canonical_checkpoint(id: &FakeIdentity, size: u64) -> pb::Signed {
    let mut body = pb::Checkpoint {
        country: id.country.clone(),
        tree_size: size,
        root_hash: vec![7; 32],
        time_ms: trm_node::base::time::now_ms(),
        ..Default::default()
    }
    .encode_to_vec();
    body.extend_from_slice(&[0x7a, 0x00]); // field 15, empty bytes: ignored by decoders
    pb::Signed {
        signature: trm_proto::signing::sign(&id.key, trm_proto::signing::Tag::Checkpoint, &body)
            .to_vec(),
        signer: id.key.verifying_key().to_bytes().to_vec(),
        body,
    }
}

/// Item 4: every answer the offline verifier would refuse is retried (or holds the peer) and
/// never logged; the full export verifies; valid answers afterwards are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_audit_verifier_would_refuse_are_never_logged() {
    let tmp = tempfile::tempdir().unwrap();
    // The first two answers to each message are bad, the later ones valid (ANS-BADCP and
    // ANS-NONCANON: the first one only, since it holds the peer).
    let (it, fake) = italy_and_fake(tmp.path(), |id, ask| {
        let Ask::Message {
            body,
            hash,
            attempt,
        } = ask
        else {
            return Reply::Nothing;
        };
        let now = trm_node::base::time::now_ms();
        let bad = *attempt <= 2;
        match body.case_ref.as_str() {
            "IT-ANS-EMPTYID-1" if bad => {
                let mut r = id.rejection_of(body, hash, RejectReason::Malformed);
                r.message_id.clear();
                id.rejection(r)
            }
            "IT-ANS-NOHASH-1" if bad => {
                let mut r = id.rejection_of(body, hash, RejectReason::Malformed);
                r.envelope_hash.clear();
                id.rejection(r)
            }
            // Signed by the current key, but at a time before that key was valid.
            "IT-ANS-LATEKEY-1" if bad => id.receipt(body, hash, now - 2 * HOUR_MS, None),
            "IT-ANS-BADCP-1" if *attempt == 1 => {
                let mut cp = id.checkpoint(5, now);
                cp.signature[0] ^= 1;
                id.receipt(body, hash, now, Some(cp))
            }
            "IT-ANS-NONCANON-1" if *attempt == 1 => {
                id.receipt(body, hash, now, Some(non_canonical_checkpoint(id, 6)))
            }
            _ => id.receipt(body, hash, now, None),
        }
    })
    .await;
    let officer = it.officer("Officer Example IT", "officer").await;

    let mut ids = Vec::new();
    for case in ["IT-ANS-EMPTYID-1", "IT-ANS-NOHASH-1", "IT-ANS-LATEKEY-1"] {
        ids.push((case, create_and_send(&it, &officer, case, "AL").await));
    }
    let settled = wait_until(30, || {
        ids.iter()
            .all(|(_, id)| state(&it, id) != SentState::Pending)
    })
    .await;
    // Whatever happened, nothing logged may break the auditor's verification.
    export_and_verify(&it).await;
    assert!(
        settled,
        "messages not settled: {:?}",
        fake.asked.lock().unwrap().len()
    );
    for (case, id) in &ids {
        assert_eq!(
            state(&it, id),
            SentState::Delivered,
            "{case}: a bad answer was taken as final"
        );
        assert!(
            fake.attempts(case) >= 3,
            "{case}: delivered after {} attempts: a bad answer was accepted",
            fake.attempts(case)
        );
    }

    // A receipt carrying an invalid checkpoint, then one carrying a non-canonical one: each
    // holds the peer (status says so), the message stays queued, and `peer trust` releases it.
    for case in ["IT-ANS-BADCP-1", "IT-ANS-NONCANON-1"] {
        let id = create_and_send(&it, &officer, case, "AL").await;
        assert!(
            wait_until(20, || it.ctx().trust.is_held("AL")).await,
            "{case}: the peer is not held"
        );
        let peer = peer_status(&it).await;
        assert!(
            peer["state"].as_str().unwrap().starts_with("held"),
            "{case}: {peer}"
        );
        assert_eq!(state(&it, &id), SentState::Pending, "{case}");
        export_and_verify(&it).await;
        trust(&it, "AL").await;
        assert!(
            wait_until(20, || state(&it, &id) == SentState::Delivered).await,
            "{case}: not delivered after `peer trust`"
        );
        assert!(!it.ctx().trust.is_held("AL"), "{case}");
    }

    let s = export_and_verify(&it).await;
    assert_eq!(s.kinds.get("receipt_received").copied(), Some(5), "{s:?}");
    assert_eq!(s.kinds.get("rejection_received"), None, "{s:?}");
    assert_eq!(s.kinds.get("peer_held").copied(), Some(2), "{s:?}");
    it.finish().await;
}

/// How the fake answers a consistency request in [`bad_consistency_answers_hold_the_peer`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum ProofAnswer {
    NotAPeerResponse,
    Empty,
    UnsignedRejection,
    Receipt,
    /// No answer at all (a transport failure): holds nothing.
    Nothing,
}

/// Item 6: a malformed or unsigned answer to a consistency request holds the peer (visible
/// in status, released by `peer trust`); only a transport failure holds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_consistency_answers_hold_the_peer() {
    use ProofAnswer as P;
    let variants = [
        P::NotAPeerResponse,
        P::Empty,
        P::UnsignedRejection,
        P::Receipt,
        P::Nothing,
    ];
    let tmp = tempfile::tempdir().unwrap();
    // Message "IT-WITNESS-n" gets a receipt with a checkpoint of size 10 + n; a consistency request
    // for size 10 + n is answered as variant n - 1 says.
    let (it, fake) = italy_and_fake(tmp.path(), move |id, ask| {
        let now = trm_node::base::time::now_ms();
        match ask {
            Ask::Message { body, hash, .. } => {
                let n: u64 = body
                    .case_ref
                    .trim_start_matches("IT-WITNESS-")
                    .parse()
                    .unwrap();
                id.receipt(body, hash, now, Some(id.checkpoint(10 + n, now)))
            }
            Ask::Consistency(c) => match variants[(c.second - 11) as usize] {
                P::NotAPeerResponse => Reply::RawFrame(vec![0xff; 7]),
                P::Empty => Reply::Answer(pb::PeerResponse { kind: None }),
                P::UnsignedRejection => {
                    let r = pb::Rejection {
                        rejecter: id.country.clone(),
                        sender: id.sender.clone(),
                        reason: RejectReason::Malformed as i32,
                        ..Default::default()
                    };
                    Reply::Answer(pb::PeerResponse {
                        kind: Some(peer_response::Kind::Rejection(pb::Signed {
                            body: r.encode_to_vec(),
                            signature: vec![0; 64],
                            signer: id.key.verifying_key().to_bytes().to_vec(),
                        })),
                    })
                }
                P::Receipt => Reply::Answer(pb::PeerResponse {
                    kind: Some(peer_response::Kind::Receipt(id.checkpoint(1, now))),
                }),
                P::Nothing => Reply::Nothing,
            },
        }
    })
    .await;
    let officer = it.officer("Officer Example IT", "officer").await;
    // The baseline: size 10.
    let id = create_and_send(&it, &officer, "IT-WITNESS-0", "AL").await;
    assert!(wait_until(20, || state(&it, &id) == SentState::Delivered).await);
    assert!(!it.ctx().trust.is_held("AL"));

    for (i, v) in variants.iter().enumerate() {
        let asked = fake.consistency_requests();
        let id = create_and_send(&it, &officer, &format!("IT-WITNESS-{}", i + 1), "AL").await;
        // The receipt is logged after witnessing its checkpoint.
        assert!(
            wait_until(20, || state(&it, &id) == SentState::Delivered).await,
            "{v:?}: not delivered"
        );
        assert_eq!(
            fake.consistency_requests(),
            asked + 1,
            "{v:?}: no proof asked"
        );
        if *v == P::Nothing {
            assert!(
                !it.ctx().trust.is_held("AL"),
                "a transport failure held the peer"
            );
            continue;
        }
        assert!(it.ctx().trust.is_held("AL"), "{v:?}: the peer is not held");
        let peer = peer_status(&it).await;
        assert!(
            peer["state"].as_str().unwrap().starts_with("held"),
            "{v:?}: {peer}"
        );
        trust(&it, "AL").await;
        assert!(!it.ctx().trust.is_held("AL"));
    }
    let s = export_and_verify(&it).await;
    assert_eq!(s.kinds.get("witness").copied(), Some(4), "{s:?}");
    it.finish().await;
}

/// Item 6: a stored baseline that no longer verifies is not silently replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_baseline_that_no_longer_verifies_holds_the_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut it, _fake) = italy_and_fake(tmp.path(), |id, ask| match ask {
        Ask::Message { body, hash, .. } => {
            let now = trm_node::base::time::now_ms();
            let n: u64 = body
                .case_ref
                .trim_start_matches("IT-BASE-")
                .parse()
                .unwrap();
            id.receipt(body, hash, now, Some(id.checkpoint(10 + n, now)))
        }
        Ask::Consistency(_) => Reply::Nothing,
    })
    .await;
    let officer = it.officer("Officer Example IT", "officer").await;
    let id = create_and_send(&it, &officer, "IT-BASE-0", "AL").await;
    assert!(wait_until(20, || state(&it, &id) == SentState::Delivered).await);
    let mut rec = it.ctx().trust.record("AL").expect("a baseline");
    assert!(!rec.seen.is_empty());

    // The stored baseline stops verifying (its signature altered), seen at the next start.
    let mut seen = pb::Signed::decode(rec.seen.as_slice()).unwrap();
    seen.signature[5] ^= 1;
    rec.seen = seen.encode_to_vec();
    it.ctx()
        .store
        .commit(vec![Op::PutMeta("witness/AL".into(), rec.encode_to_vec())])
        .await
        .unwrap();
    it.stop().await;
    // Tasks of the stopped node may hold its store for a moment: wait (bounded) for the lock.
    let store = it.dir.join("store");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while trm_node::store::Store::open(&store).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the stopped node's store stays locked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    it.start().await;

    let id = create_and_send(&it, &officer, "IT-BASE-1", "AL").await;
    assert!(wait_until(20, || state(&it, &id) == SentState::Delivered).await);
    assert!(
        it.ctx().trust.is_held("AL"),
        "a baseline that no longer verifies was silently replaced"
    );
    let peer = peer_status(&it).await;
    assert!(
        peer["audit_log"]["reason"]
            .as_str()
            .unwrap()
            .contains("no longer verifies"),
        "{peer}"
    );
    export_and_verify(&it).await;
    it.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Item 17: bad input
// ---------------------------------------------------------------------------------------------

/// A sparse file of `len` bytes (no disk space used).
fn sparse(path: &std::path::Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// Files over their limit are refused before being read: exit 64, one line naming the file
/// and the limit, quickly; an audit bundle has no limit (it is streamed) and a junk one fails on
/// its first bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_files_are_refused_before_reading_naming_the_limit() {
    // Build the binaries first, so that the time bound below measures only the refusal.
    trm_tests::bins::bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    // A credential is needed before the case file is read; the node need not run.
    let it = TestNode::init(tmp.path(), "IT");
    let cred = it.dir.join(trm_node::identity::OPERATOR_CRED);
    let case = tmp.path().join("case.json");
    let card = tmp.path().join("card.trm");
    let bundle = tmp.path().join("bundle.bin");
    let fields = tmp.path().join("fields.json");
    sparse(&case, 200 << 20);
    sparse(&card, 1 << 20);
    sparse(&bundle, 100 << 20);
    sparse(&fields, 2 << 20);
    let c = cred.as_os_str();
    let runs: Vec<(Vec<&std::ffi::OsStr>, &std::path::Path, &str)> = vec![
        (
            vec![
                "--cred".as_ref(),
                c,
                "case".as_ref(),
                "create".as_ref(),
                "--file".as_ref(),
                case.as_os_str(),
            ],
            &case,
            "1 MiB",
        ),
        (
            vec![
                "--cred".as_ref(),
                c,
                "peer".as_ref(),
                "add".as_ref(),
                card.as_os_str(),
            ],
            &card,
            "64 KiB",
        ),
        (
            vec![
                "--cred".as_ref(),
                c,
                "followup".as_ref(),
                "send".as_ref(),
                "IT-CASE-1".as_ref(),
                "--to".as_ref(),
                "AL".as_ref(),
                "--phase".as_ref(),
                "first_assistance".as_ref(),
                "--status".as_ref(),
                "ongoing".as_ref(),
                "--fields-file".as_ref(),
                fields.as_os_str(),
            ],
            &fields,
            "1 MiB",
        ),
    ];
    for (args, file, limit) in runs {
        let started = std::time::Instant::now();
        let (code, _out, err) = admin(&args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains(&file.display().to_string())
                && err.contains("over the limit of")
                && err.contains(limit),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "{args:?}");
    }
    // `audit verify` streams its file and has no size limit (issue 14): a 100 MiB bundle of
    // zeros is refused on its first bytes, one line naming the file, without reading the rest.
    let started = std::time::Instant::now();
    let args: Vec<&std::ffi::OsStr> = vec!["audit".as_ref(), "verify".as_ref(), bundle.as_os_str()];
    let (code, _out, err) = admin(&args);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&bundle.display().to_string()) && err.contains("verification FAILED"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20), "{err}");
}

async fn create(node: &TestNode, cred: &Credential, year: Value) -> Result<Value, String> {
    let mut v: Value = serde_json::from_str(&small_case("IT-YEAR-0001")).unwrap();
    v["identity"] = serde_json::json!({ "estimated_birth_year": year });
    node.call_as(
        cred,
        Call::CaseCreate(api::CaseCreate {
            json: v.to_string(),
        }),
    )
    .await
    .map_err(|e| e.to_string())
}

/// An estimated birth year outside 1900..=2199, or after the referral's year, is refused
/// naming the field; a plausible one is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implausible_estimated_birth_year_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    it.start().await;
    let officer = it.officer("Officer Example IT", "officer").await;
    for bad in [
        serde_json::json!(-5),
        serde_json::json!(99_999_999_999i64),
        serde_json::json!(1899),
        serde_json::json!(2030), // after reference.date (2026-11-01)
    ] {
        let e = create(&it, &officer, bad.clone())
            .await
            .expect_err(&format!("birth year {bad} accepted"));
        assert!(e.contains("identity.estimated_birth_year"), "{bad}: {e}");
    }
    create(&it, &officer, serde_json::json!(1990))
        .await
        .expect("a plausible year");
    it.finish().await;
}

/// Every numeric limit of node.toml is bounded: an absurd value refuses start with an error
/// naming the key and the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_limits_in_node_toml_refuse_start_naming_key_and_range() {
    let tmp = tempfile::tempdir().unwrap();
    let node = TestNode::init(tmp.path(), "IT");
    let good = std::fs::read_to_string(node.dir.join("node.toml")).unwrap();
    for (key, set) in [
        ("limits.max_connections", "max_connections = 1000000000000"),
        (
            "delivery.backoff_max_ms",
            "backoff_max_ms = 1000000000000000000",
        ),
        (
            "delivery.backoff_initial_ms",
            "backoff_initial_ms = 100000000",
        ),
        (
            "delivery.unreachable_after_secs",
            "unreachable_after_secs = 100000000000",
        ),
        (
            "audit.checkpoint_every_entries",
            "checkpoint_every_entries = 1000000000000",
        ),
        (
            "audit.checkpoint_every_secs",
            "checkpoint_every_secs = 100000000000",
        ),
        ("directory_stale_days", "directory_stale_days = 4000000000"),
    ] {
        let name = set.split(" = ").next().unwrap();
        let text: String = good
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{name} =")) {
                    set.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(text, good, "{key} not in node.toml");
        std::fs::write(node.dir.join("node.toml"), &text).unwrap();
        let e = match trm_node::start(&node.dir, node.start_options()).await {
            Ok(h) => {
                h.shutdown().await;
                panic!("{set}: the node started")
            }
            Err(e) => e.to_string(),
        };
        assert!(e.contains(&format!("`{key}`")), "{set}: {e}");
        assert!(e.contains("..="), "{set}: no range named: {e}");
    }
    std::fs::write(node.dir.join("node.toml"), &good).unwrap();
}

/// Item 6: a peer that answers every consistency request with a signed UNAVAILABLE cannot
/// escape witnessing forever: after `MAX_BUSY_ANSWERS` in a row it is held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_always_busy_when_asked_for_a_proof_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, fake) = italy_and_fake(tmp.path(), |id, ask| {
        let now = trm_node::base::time::now_ms();
        match ask {
            Ask::Message { body, hash, .. } => {
                let n: u64 = body
                    .case_ref
                    .trim_start_matches("IT-BUSY-")
                    .parse()
                    .unwrap();
                id.receipt(body, hash, now, Some(id.checkpoint(10 + n, now)))
            }
            Ask::Consistency(_) => id.rejection(pb::Rejection {
                rejecter: id.country.clone(),
                sender: id.sender.clone(),
                rejected_ms: now,
                reason: RejectReason::Unavailable as i32,
                detail: "busy".into(),
                ..Default::default()
            }),
        }
    })
    .await;
    let officer = it.officer("Officer Example IT", "officer").await;
    let max = trm_node::federation::trust::MAX_BUSY_ANSWERS as u64;
    for n in 0..=max {
        let id = create_and_send(&it, &officer, &format!("IT-BUSY-{n:02}"), "AL").await;
        assert!(
            wait_until(20, || state(&it, &id) == SentState::Delivered).await,
            "IT-BUSY-{n}: not delivered"
        );
        // n = 0 sets the baseline; each later receipt asks for a proof and gets UNAVAILABLE.
        assert_eq!(fake.consistency_requests() as u64, n);
        if n < max {
            assert!(
                !it.ctx().trust.is_held("AL"),
                "held after only {n} busy answers"
            );
        }
    }
    assert!(
        it.ctx().trust.is_held("AL"),
        "still not held after {max} busy answers in a row"
    );
    let peer = peer_status(&it).await;
    assert!(
        peer["state"].as_str().unwrap().starts_with("held"),
        "{peer}"
    );
    it.finish().await;
}
