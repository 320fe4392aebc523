//! Reliability under faults: processes killed at random moments, a network partition followed
//! by a degraded network, and corrupted store files.
//!
//! CI runs short versions; `TRM_LONG_TESTS=1` runs the long ones of docs/SECURITY.md
//! (10,000 referrals with 20 + 20 kills, a 30 s partition, 50 corruptions).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use rand::seq::SliceRandom;
use rand::Rng;
use trm_node::store::SentState;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::pb;
use trm_proto::signing::{self, Tag};
use trm_tests::proc::NodeProc;
use trm_tests::proxy::{Mode, Proxy};
use trm_tests::*;

/// Records `count` synthetic cases and refers each to `to` through the admin API (one open
/// referral per case); returns the ids the node acknowledged (each acknowledgement means
/// "durably in the outbox").
async fn send_referrals(
    client: &trm_node::admin::client::AdminClient,
    to: &str,
    count: usize,
) -> Vec<String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let batch = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prefix = format!("IT-REL-{}-{batch}", std::process::id());
    send_referrals_on(client, &prefix, count, to).await
}

async fn officer_client(
    node: &mut NodeProc,
    cred: &trm_node::identity::Credential,
) -> trm_node::admin::client::AdminClient {
    let _ = node;
    trm_node::admin::client::AdminClient::connect(cred)
        .await
        .expect("officer connects")
}

async fn wait_outbox_empty(node: &mut NodeProc, secs: u64) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if let Ok(s) = node.call(Call::Status(api::Status {})).await {
            if s["outbox_total"] == 0 {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Checks, on the stopped stores, that the receiver stored exactly the set the sender sent,
/// each once, and that every stored receipt is the receiver's signature over a stored
/// message. Returns the number of messages.
fn check_exactly_once(sender: &NodeProc, receiver: &NodeProc, acknowledged: &[String]) -> usize {
    let s = sender.open_store().expect("open sender store");
    let r = receiver.open_store().expect("open receiver store");
    let rkey = receiver.keys().unwrap().signing.verifying_key();
    let sent = s.sent_all().unwrap();
    let sent_ids: BTreeSet<String> = sent.iter().map(|m| hex::encode(&m.id)).collect();
    for id in acknowledged {
        assert!(sent_ids.contains(id), "acknowledged message {id} was lost");
    }
    let inbox = r.inbox().unwrap();
    let received: BTreeMap<String, &trm_node::store::ReceivedRecord> =
        inbox.iter().map(|m| (hex::encode(&m.id), m)).collect();
    assert_eq!(
        inbox.len(),
        received.len(),
        "a message is in the inbox twice"
    );
    assert_eq!(r.received_count(), received.len());
    let mut stored_once = BTreeMap::<Vec<u8>, usize>::new();
    for e in r.audit_entries(0).unwrap() {
        if e.kind == "received" {
            *stored_once.entry(e.message_id).or_default() += 1;
        }
    }
    assert!(
        stored_once.values().all(|n| *n == 1),
        "a message was stored twice"
    );
    let received_ids: BTreeSet<String> = received.keys().cloned().collect();
    assert_eq!(
        sent_ids, received_ids,
        "the receiver's stored set equals the sender's sent set"
    );
    for m in &sent {
        let id = hex::encode(&m.id);
        assert_eq!(
            SentState::from_u32(m.state),
            SentState::Delivered,
            "{id} has a receipt"
        );
        let answer = pb::Signed::decode(m.answer.as_slice()).unwrap();
        signing::verify(&rkey, Tag::Receipt, &answer.body, &answer.signature)
            .expect("receipt signed by the receiver");
        let receipt = pb::Receipt::decode(answer.body.as_slice()).unwrap();
        let stored = received[&id];
        let env = pb::Envelope::decode(stored.envelope.as_slice()).unwrap();
        assert_eq!(receipt.message_id, m.id);
        assert_eq!(
            receipt.envelope_hash,
            signing::envelope_hash(&env.body, &env.signature).to_vec(),
            "the receipt names the stored envelope"
        );
        let sent_env = pb::Envelope::decode(m.envelope.as_slice()).unwrap();
        assert_eq!(sent_env, env, "stored byte for byte as sent");
    }
    sent.len()
}

async fn process_pair(root: &Path) -> (NodeProc, NodeProc, trm_node::identity::Credential) {
    let mut it = NodeProc::init(root, "IT", &bins::bin("trm-node")).unwrap();
    let mut al = NodeProc::init(root, "AL", &bins::bin("trm-node")).unwrap();
    it.set_in_table("delivery", "backoff_initial_ms", "20")
        .unwrap();
    it.set_in_table("delivery", "backoff_max_ms", "300")
        .unwrap();
    it.start().await.unwrap();
    al.start().await.unwrap();
    it.pin_card(al.card()).await.unwrap();
    al.pin_card(it.card()).await.unwrap();
    let officer = it.officer("Officer Example", "officer").await.unwrap();
    let c = officer_client(&mut it, &officer).await;
    c.call(Call::CaseCreate(api::CaseCreate {
        json: case_json("IT-BENCH-0001", "AL"),
    }))
    .await
    .unwrap();
    c.close().await;
    (it, al, officer)
}

/// Sends SIGSTOP or SIGCONT to a node process this test started.
fn signal(node: &NodeProc, sig: &str) {
    let pid = node.pid().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// Messages in the sender's outbox: from its store if it is stopped, else from its status.
async fn outbox_of(node: &mut NodeProc, stopped: bool) -> u64 {
    if stopped {
        let store = node.open_store().expect("open the killed sender's store");
        return store
            .outbox_depths()
            .unwrap()
            .values()
            .map(|(n, _)| *n)
            .sum();
    }
    let s = node
        .call(Call::Status(api::Status {}))
        .await
        .expect("sender status");
    s["outbox_total"].as_u64().expect("outbox_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_kills_of_sender_and_receiver_lose_and_duplicate_nothing() {
    let (n, kills) = if long() { (10_000, 20) } else { (300, 3) };
    let tmp = tempfile::tempdir().unwrap();
    let (mut it, mut al, officer) = process_pair(tmp.path()).await;
    // Kill moments: 2k points in the stream of referrals, each followed by a random pause so
    // that the kill lands somewhere in the delivery of what is in flight.
    let mut rng = seeded_rng("crash test");
    let mut plan: Vec<(usize, bool)> = Vec::with_capacity(2 * kills);
    for i in 0..2 * kills {
        plan.push((rng.gen_range(1..n), i % 2 == 0));
    }
    plan.sort_by_key(|p| p.0);
    let mut acknowledged = Vec::with_capacity(n);
    let mut done = 0;
    for (at, receiver) in plan.iter().copied().chain([(n, false)]) {
        if at > done {
            let c = officer_client(&mut it, &officer).await;
            acknowledged.extend(send_referrals(&c, "AL", at - done).await);
            c.close().await;
            done = at;
        }
        if at == n {
            break;
        }
        // Each kill lands with messages in flight: the receiver is frozen (SIGSTOP) while a
        // few more referrals are sent, so they are on the wire or in its queue, unanswered,
        // when the kill comes; the sender's outbox is asserted non-empty at the kill (read
        // from the killed sender's store, or from the sender's status once the receiver is
        // dead, when it cannot shrink). On loopback the outbox otherwise drains within a
        // millisecond and a kill would prove nothing.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..40))).await;
        signal(&al, "STOP");
        let c = officer_client(&mut it, &officer).await;
        acknowledged.extend(send_referrals(&c, "AL", rng.gen_range(1..=5)).await);
        c.close().await;
        let in_flight = if receiver {
            al.kill();
            let n = outbox_of(&mut it, false).await;
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..200))).await;
            al.start().await.expect("receiver restarts after SIGKILL");
            n
        } else {
            it.kill();
            signal(&al, "CONT");
            let n = outbox_of(&mut it, true).await;
            it.start().await.expect("sender restarts after SIGKILL");
            n
        };
        let who = if receiver { "receiver" } else { "sender" };
        eprintln!("kill of the {who} after {done} referrals: {in_flight} in the outbox");
        assert!(
            in_flight > 0,
            "the kill of the {who} found nothing in flight"
        );
    }
    assert!(acknowledged.len() >= n);
    assert!(
        wait_outbox_empty(&mut it, if long() { 900 } else { 180 }).await,
        "everything delivered after the kills: {}",
        it.log_tail()
    );
    it.terminate();
    al.terminate();
    assert_eq!(
        check_exactly_once(&it, &al, &acknowledged),
        acknowledged.len()
    );
}

async fn peer_state(node: &TestNode, cred: &trm_node::identity::Credential) -> String {
    let s = node
        .call_as(cred, Call::Status(api::Status {}))
        .await
        .unwrap();
    s["peers"][0]["state"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_then_degraded_network_delivers_everything_exactly_once() {
    let (drop_secs, chaos_secs, batch) = if long() { (30, 30, 200) } else { (3, 3, 20) };
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    let proxy = Proxy::start(al.peer_addr, seeded_rng("partition test")).await;
    // Albania's card announces the proxy: Italy reaches Albania only through it.
    al.edit_config(|t| {
        t.replace(
            "public_addresses = []",
            &format!("public_addresses = [\"{}\"]", proxy.addr),
        )
    });
    it.edit_config(|t| {
        t.replace("backoff_max_ms = 30000", "backoff_max_ms = 500")
            .replace("unreachable_after_secs = 60", "unreachable_after_secs = 1")
    });
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    let card = trm_proto::card::verify_card(&al.card()).unwrap();
    assert_eq!(card.card.addresses, vec![proxy.addr.to_string()]);
    let officer = it.officer("Officer Example", "officer").await;
    it.call_as(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: case_json("IT-BENCH-0001", "AL"),
        }),
    )
    .await
    .unwrap();
    let client = trm_node::admin::client::AdminClient::connect(&officer)
        .await
        .unwrap();
    let mut ids = send_referrals(&client, "AL", 5).await;
    let delivered = |it: &TestNode, ids: &[String]| {
        ids.iter().all(|id| {
            it.ctx()
                .store
                .sent(&hex::decode(id).unwrap())
                .unwrap()
                .is_some_and(|s| SentState::from_u32(s.state) == SentState::Delivered)
        })
    };
    assert!(wait_until(30, || delivered(&it, &ids)).await);
    assert_eq!(peer_state(&it, &officer).await, "reachable");

    // Partition: everything dropped.
    proxy.set(Mode::Drop);
    ids.extend(send_referrals(&client, "AL", batch).await);
    let mut seen_down = false;
    let until = tokio::time::Instant::now() + Duration::from_secs(drop_secs);
    while tokio::time::Instant::now() < until {
        let state = peer_state(&it, &officer).await;
        assert_ne!(state, "revoked");
        seen_down |= state == "unreachable";
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !seen_down {
        // Connect attempts time out after 5 s: give the short version the time to see one.
        assert!(
            wait_until(20, || it.ctx().peers.health("AL").failing_since_ms != 0).await,
            "status shows delivery failing during the partition"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !seen_down && tokio::time::Instant::now() < deadline {
            seen_down = peer_state(&it, &officer).await == "unreachable";
            if !seen_down {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(seen_down, "status showed the peer unreachable");
    assert_eq!(al.ctx().store.received_count(), 5, "nothing crossed");

    // A degraded network: delayed, reordered, duplicated and some lost datagrams.
    let before_chaos = (proxy.forwarded(), al.ctx().store.received_count());
    proxy.set(Mode::Chaos {
        loss: 0.05,
        dup: 0.2,
        max_delay_ms: 40,
    });
    ids.extend(send_referrals(&client, "AL", batch).await);
    tokio::time::sleep(Duration::from_secs(chaos_secs)).await;
    // Traffic crossed the degraded network in both directions and messages were stored
    // through it (the chaos phase is extended, bounded, until one is, on a slow machine).
    assert!(
        wait_until(30, || al.ctx().store.received_count() > before_chaos.1).await,
        "no message crossed the degraded network"
    );
    let during = proxy.forwarded();
    proxy.set(Mode::Pass);
    let ((to_al, to_it), received) = (during, al.ctx().store.received_count());
    eprintln!(
        "chaos phase: {} datagrams to AL, {} back, {} messages stored",
        to_al - before_chaos.0 .0,
        to_it - before_chaos.0 .1,
        received - before_chaos.1
    );
    assert!(
        to_al > before_chaos.0 .0 && to_it > before_chaos.0 .1,
        "no datagram crossed the proxy during the chaos phase"
    );
    ids.extend(send_referrals(&client, "AL", 5).await);
    assert!(
        wait_until(120, || delivered(&it, &ids)).await,
        "everything delivered once the network healed"
    );
    assert_eq!(peer_state(&it, &officer).await, "reachable");
    client.close().await;
    let received: BTreeSet<String> = al
        .ctx()
        .store
        .inbox()
        .unwrap()
        .iter()
        .map(|r| hex::encode(&r.id))
        .collect();
    let sent: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(received, sent, "exactly the sent set arrived");
    assert_eq!(al.ctx().store.received_count(), ids.len(), "each once");
    let mut once = BTreeMap::<Vec<u8>, usize>::new();
    for e in al.ctx().store.audit_entries(0).unwrap() {
        if e.kind == "received" {
            *once.entry(e.message_id).or_default() += 1;
        }
    }
    assert!(once.values().all(|n| *n == 1), "no message stored twice");
    it.stop().await;
    al.stop().await;
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false) {
            out.push(p);
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// What a store holds: every received message (id, sender, kind, case reference) and every
/// audit entry, as bytes.
type History = (Vec<(String, String, String, String)>, Vec<Vec<u8>>);

fn history(store: &trm_node::store::Store) -> History {
    let mut inbox: Vec<_> = store
        .inbox()
        .unwrap()
        .iter()
        .map(|r| {
            (
                hex::encode(&r.id),
                r.peer.clone(),
                r.kind.clone(),
                r.case_ref.clone(),
            )
        })
        .collect();
    inbox.sort();
    let audit = store.audit_leaves(0).unwrap();
    (inbox, audit)
}

/// What the running node serves: its inbox through `inbox` and its whole audit log through a
/// full `audit export` (by a fresh auditor). An error is the node refusing to serve.
async fn served_history(node: &mut NodeProc) -> anyhow::Result<History> {
    let officer = node.officer("Officer Corruption", "officer").await?;
    let c = trm_node::admin::client::AdminClient::connect(&officer).await?;
    let list = c.call(Call::Inbox(api::Inbox {})).await;
    c.close().await;
    let list = list?;
    let mut inbox: Vec<_> = list["messages"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("inbox without messages: {list}"))?
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("from"), s("kind"), s("case_ref"))
        })
        .collect();
    inbox.sort();
    let auditor = node.officer("Auditor Corruption", "auditor").await?;
    let c = trm_node::admin::client::AdminClient::connect(&auditor).await?;
    let exported = c
        .call_with_data(Call::AuditExport(api::AuditExport::default()))
        .await;
    c.close().await;
    let (_, bundle) = exported?;
    let bundle = trm_proto::auditpb::AuditBundle::decode(bundle.as_slice())?;
    let audit = bundle.entries.into_iter().map(|e| e.entry).collect();
    Ok((inbox, audit))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_store_is_refused_or_detected_never_served_short_or_altered() {
    setup();
    let rounds = if long() { 50 } else { 10 };
    let tmp = tempfile::tempdir().unwrap();
    let it = NodeProc::init(tmp.path(), "IT", &bins::bin("trm-node")).unwrap();
    let al = NodeProc::init(tmp.path(), "AL", &bins::bin("trm-node")).unwrap();
    trm_bench::workload::prefill_received(&al.dir, "IT", &it.keys().unwrap(), 200, 50, |_| {})
        .unwrap();
    let reference = history(&al.open_store().unwrap());
    assert_eq!(reference.0.len(), 200);
    let pristine = tmp.path().join("pristine-store");
    copy_dir(&al.store_dir(), &pristine);
    let mut rng = seeded_rng("corruption test");
    let (mut refused, mut detected, mut intact) = (0, 0, 0);
    for round in 0..rounds {
        copy_dir(&pristine, &al.store_dir());
        let files = files_under(&al.store_dir());
        let file = files.choose(&mut rng).unwrap().clone();
        let mut bytes = std::fs::read(&file).unwrap();
        let what = if rng.gen_bool(0.5) {
            let at = rng.gen_range(0..bytes.len());
            bytes[at] ^= rng.gen_range(1..=255u8);
            format!("flipped byte {at} of {}", file.display())
        } else {
            let len = rng.gen_range(0..bytes.len());
            bytes.truncate(len);
            format!("truncated {} to {len} bytes", file.display())
        };
        std::fs::write(&file, &bytes).unwrap();
        eprintln!("round {round}: {what}");
        // The node process: it refuses to start with a message naming the store, or starts.
        let mut node = NodeProc::init_existing(&al.dir, "AL", &bins::bin("trm-node"));
        node.spawn().unwrap();
        let limit = trm_node::node::store_open_limit(&node.store_dir());
        if let Err(e) = node.wait_ready(limit + Duration::from_secs(30)).await {
            assert!(
                !node.is_running(),
                "round {round}: {what}: neither ready nor refused: {e}"
            );
            let log = std::fs::read_to_string(node.dir.join("node.log")).unwrap();
            let last = log.lines().last().unwrap_or("");
            assert!(
                last.contains("trm-node: store") && last.contains("corrupt")
                    || last.contains("trm-node: store I/O failure"),
                "round {round}: {what}: unclear refusal: {last}"
            );
            assert!(
                !log.contains("panicked"),
                "round {round}: {what}: panicked: {log}"
            );
            std::fs::remove_file(node.dir.join("node.log")).unwrap();
            refused += 1;
            continue;
        }
        // It started: the running node serves its whole history exactly as stored (the audit
        // log may only have grown by entries of this run), or refuses to serve it.
        let served = served_history(&mut node).await;
        node.terminate();
        match served {
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("corrupt") || e.contains("store"),
                    "round {round}: {what}: the node failed without naming its store: {e}"
                );
                eprintln!("round {round}: detected while serving: {e}");
                detected += 1;
            }
            Ok((inbox, audit)) => {
                assert_eq!(
                    inbox.len(),
                    reference.0.len(),
                    "round {round}: {what}: a shorter inbox was served"
                );
                assert!(
                    inbox == reference.0,
                    "round {round}: {what}: an altered inbox was served"
                );
                assert!(
                    audit.len() >= reference.1.len(),
                    "round {round}: {what}: a shorter audit log was served"
                );
                assert!(
                    audit[..reference.1.len()] == reference.1[..],
                    "round {round}: {what}: an altered audit log was served"
                );
                intact += 1;
            }
        }
    }
    eprintln!(
        "corruption: {refused} refused at start, {detected} refused while serving, {intact} \
         served intact"
    );
    // Rounds must hit live data: a run where every corruption landed where nothing reads it
    // shows nothing.
    assert!(
        refused + detected > 0,
        "no round hit live data ({intact} of {rounds} served intact)"
    );
}
