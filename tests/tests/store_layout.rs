//! The store's layout of received messages (issue 14, targets 3 and 7): keyed by arrival
//! with a small dedupe index, the envelope and receipt stored once (in the audit log), a
//! duplicate answered with the stored receipt, and a store of the old layout (schema 1)
//! migrated by `trm-node` itself with every message, its order and its bytes kept.

use std::collections::BTreeSet;

use prost::Message;
use trm_node::store::{ReceivedRecord, Store};
use trm_proto::pb;
use trm_tests::bins;
use trm_tests::proc::NodeProc;
use trm_tests::recv::{answer_bytes, is_receipt, request, tx};
use trm_tests::*;

/// Every (tree, key, value) of a store, as `Store::snapshot` reads them.
fn records(s: &Store) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    s.snapshot(|t, k, v| {
        out.push((t.to_string(), k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

fn tree_names(recs: &[(String, Vec<u8>, Vec<u8>)]) -> BTreeSet<String> {
    recs.iter().map(|(t, _, _)| t.clone()).collect()
}

fn referral_payload() -> pb::body::Payload {
    let fields = vec![("reference.urgency".to_string(), b"\"routine\"".to_vec())];
    let c = trm_proto::commit::commit(&fields, &mut rand::rngs::OsRng).unwrap();
    pb::body::Payload::Referral(pb::Referral {
        template_version: "trm-template/1".into(),
        digests: c.digest_bytes(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_message_is_stored_once_by_arrival_and_a_duplicate_gets_the_stored_receipt() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let conn = raw_peer(&it, &al).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let env = signed_envelope(
            &it,
            "AL",
            &format!("IT-LAYOUT-{n}"),
            referral_payload(),
            vec![],
        );
        let id = pb::Body::decode(env.body.as_slice()).unwrap().message_id;
        let req = pb::PeerRequest {
            kind: Some(pb::peer_request::Kind::Transmission(tx(
                env.clone(),
                vec![],
            ))),
        };
        let first = request(&conn, &req).await;
        assert!(is_receipt(&first), "{first:?}");
        // The same message again: the receipt stored with it, byte for byte, nothing stored.
        let again = request(&conn, &req).await;
        assert_eq!(answer_bytes(&again), answer_bytes(&first));
        let store = &al.ctx().store;
        let rec = store.received("IT", &id).unwrap().expect("stored");
        assert_eq!(
            rec.envelope,
            env.encode_to_vec(),
            "the envelope as received"
        );
        assert_eq!(rec.receipt, answer_bytes(&first), "the receipt as sent");
        ids.push((id, env.encode_to_vec().len()));
    }
    let store = &al.ctx().store;
    assert_eq!(store.received_count(), 3);
    let order: Vec<Vec<u8>> = store.inbox().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(
        order,
        ids.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()
    );
    // Layout: arrival keys 0, 1, 2, each record without a second copy of its envelope, a
    // dedupe index of sender ‖ id → arrival, and no inbox tree.
    let recs = records(store);
    let names = tree_names(&recs);
    assert!(
        names.contains("arrivals") && names.contains("received_ids"),
        "{names:?}"
    );
    assert!(
        !names.contains("inbox") && !names.contains("received"),
        "{names:?}"
    );
    let arrivals: Vec<_> = recs.iter().filter(|(t, _, _)| t == "arrivals").collect();
    for (n, ((_, k, v), (_, env_len))) in arrivals.iter().zip(&ids).enumerate() {
        assert_eq!(k.as_slice(), (n as u64).to_be_bytes());
        assert!(v.len() < *env_len, "record {n}: {} bytes stored", v.len());
    }
    let index: Vec<_> = recs
        .iter()
        .filter(|(t, _, _)| t == "received_ids")
        .collect();
    assert_eq!(index.len(), 3);
    assert!(index.iter().all(|(_, k, v)| k.len() == 18 && v.len() == 8));
    it.finish().await;
    al.finish().await;
}

/// Rewrites the stopped node's store in the layout of schema 1 (`received`: sender ‖ id →
/// the whole record, `inbox`: sequence → that key), as the code before issue 14 wrote it.
fn rewrite_as_schema_1(node: &NodeProc) -> Vec<ReceivedRecord> {
    let store = node.open_store().unwrap();
    let inbox = store.inbox().unwrap();
    let mut recs: Vec<_> = records(&store)
        .into_iter()
        .filter(|(t, _, _)| t != "arrivals" && t != "received_ids")
        .map(|(t, k, v)| match (t.as_str(), k.as_slice()) {
            ("meta", b"schema") => (t, k, 1u32.to_be_bytes().to_vec()),
            _ => (t, k, v),
        })
        .collect();
    for (seq, r) in inbox.iter().enumerate() {
        let mut key = r.peer.as_bytes().to_vec();
        key.extend_from_slice(&r.id);
        recs.push(("received".into(), key.clone(), r.encode_to_vec()));
        recs.push(("inbox".into(), (seq as u64).to_be_bytes().to_vec(), key));
    }
    drop(store);
    std::fs::remove_dir_all(node.store_dir()).unwrap();
    Store::import(&node.store_dir(), recs.into_iter().map(Ok)).unwrap();
    inbox
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trm_node_migrates_a_store_of_the_old_layout_and_keeps_every_message() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = bins::bin("trm-node");
    let it = NodeProc::init(tmp.path(), "IT", &bin).unwrap();
    let mut al = NodeProc::init(tmp.path(), "AL", &bin).unwrap();
    al.log_filter = "info".into();
    trm_bench::workload::prefill_received(&al.dir, "IT", &it.keys().unwrap(), 5, 2, |_| {})
        .unwrap();
    let before = rewrite_as_schema_1(&al);
    assert_eq!(before.len(), 5);

    al.start().await.unwrap();
    al.terminate();
    let log = std::fs::read_to_string(al.dir.join("node.log")).unwrap();
    assert!(log.contains("store schema migrated"), "{log}");
    let out = std::process::Command::new(&bin)
        .args(["check", "--dir", al.dir.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("full check ok"), "{text}");

    let store = al.open_store().unwrap();
    assert_eq!(
        store.inbox().unwrap(),
        before,
        "every message, in order, byte for byte"
    );
    for r in &before {
        assert_eq!(store.received(&r.peer, &r.id).unwrap().as_ref(), Some(r));
    }
    assert_eq!(store.received_count(), 5);
    let names = tree_names(&records(&store));
    assert!(
        !names.contains("inbox") && !names.contains("received"),
        "{names:?}"
    );
    assert_eq!(
        store.meta("schema").unwrap(),
        Some(trm_node::store::SCHEMA_VERSION.to_be_bytes().to_vec())
    );
}
