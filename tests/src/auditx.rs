//! Helpers for the auditor's-guarantees suite (tests/tests/trust_audit.rs): exports, bundles
//! rebuilt as a dishonest exporter without the node's key would rebuild them, and starting a
//! node that may refuse.

use std::path::Path;

use prost::Message;
use trm_node::admin::client::AdminClient;
use trm_node::identity::Credential;
use trm_node::node::StartError;
use trm_node::NodeHandle;
use trm_proto::admin::{self as api, admin_request::Call};
use trm_proto::auditpb::{AuditBundle, AuditEntry, ExportedEntry, Proof};
use trm_proto::merkle::{self, MerkleLog};
use trm_proto::pb;

use crate::TestNode;

/// Checkpoints after every entry and short retry delays, so tests need no long waits.
pub fn fast(node: &TestNode) {
    node.edit_config(|t| {
        t.replace(
            "checkpoint_every_entries = 64",
            "checkpoint_every_entries = 1",
        )
        .replace("backoff_max_ms = 30000", "backoff_max_ms = 500")
    });
}

/// IT and AL with [`fast`] settings, started and pinned to each other, in a fresh folder.
pub async fn fast_pair() -> (tempfile::TempDir, TestNode, TestNode) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (it, al) = crate::start_pair_in(tmp.path(), "IT", "AL", fast).await;
    (tmp, it, al)
}

/// Exports the node's audit bundle as `auditor`, over `[from_ms, to_ms]` (0 = open).
pub async fn export_range(
    node: &TestNode,
    auditor: &Credential,
    from_ms: i64,
    to_ms: i64,
) -> Vec<u8> {
    let c = AdminClient::connect(auditor).await.expect("connect");
    let (_, data) = c
        .call_with_data(Call::AuditExport(api::AuditExport { from_ms, to_ms }))
        .await
        .expect("audit export");
    c.close().await;
    assert!(!data.is_empty(), "{}: empty bundle", node.country);
    data
}

/// A full export.
pub async fn export(node: &TestNode, auditor: &Credential) -> Vec<u8> {
    export_range(node, auditor, 0, 0).await
}

/// The decoded bundle and its decoded entries.
pub fn open_bundle(bytes: &[u8]) -> (AuditBundle, Vec<AuditEntry>) {
    let b = AuditBundle::decode(bytes).expect("bundle decodes");
    let entries = b
        .entries
        .iter()
        .map(|e| AuditEntry::decode(e.entry.as_slice()).expect("entry decodes"))
        .collect();
    (b, entries)
}

/// The decoded checkpoint of a bundle's `Signed` checkpoint bytes.
pub fn checkpoint(raw: &[u8]) -> pb::Checkpoint {
    let s = pb::Signed::decode(raw).expect("signed checkpoint");
    pb::Checkpoint::decode(s.body.as_slice()).expect("checkpoint")
}

/// Rebuilds `full` (a complete bundle) as someone without the node's key can: keeping only
/// the checkpoints at `keep_checkpoints` (positions) and, below the last of them, the entries
/// whose index `keep_entry` accepts; every inclusion and consistency proof recomputed from
/// the leaves, so that only what is signed can give it away.
pub fn reprove(
    full: &[u8],
    keep_checkpoints: &[usize],
    keep_entry: impl Fn(u64) -> bool,
) -> Vec<u8> {
    let (b, entries) = open_bundle(full);
    assert_eq!(
        entries.first().map(|e| e.index),
        Some(0),
        "not a full bundle"
    );
    let mut log = MerkleLog::new();
    for e in &b.entries {
        log.push(merkle::leaf_hash(&e.entry));
    }
    let checkpoints: Vec<Vec<u8>> = keep_checkpoints
        .iter()
        .map(|&i| b.checkpoints[i].clone())
        .collect();
    let sizes: Vec<u64> = checkpoints
        .iter()
        .map(|c| checkpoint(c).tree_size)
        .collect();
    let last = *sizes.last().expect("a checkpoint");
    let hashes = |h: Vec<merkle::Hash>| h.into_iter().map(|x| x.to_vec()).collect::<Vec<_>>();
    let consistency = sizes
        .windows(2)
        .map(|p| Proof {
            hashes: hashes(log.consistency_proof(p[0], p[1]).expect("consistency")),
        })
        .collect();
    let kept = b
        .entries
        .iter()
        .zip(&entries)
        .filter(|(_, e)| e.index < last && keep_entry(e.index))
        .map(|(x, e)| ExportedEntry {
            entry: x.entry.clone(),
            inclusion: hashes(log.inclusion_proof(e.index, last).expect("inclusion")),
        })
        .collect();
    AuditBundle {
        entries: kept,
        checkpoints,
        consistency,
        ..b
    }
    .encode_to_vec()
}

/// Starts `node` on its kept sockets, returning the start error instead of panicking.
pub async fn try_start(node: &TestNode) -> Result<NodeHandle, StartError> {
    node.try_start().await
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
