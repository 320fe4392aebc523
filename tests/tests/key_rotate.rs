//! `trm-node key rotate` through the real binary (moved from node/tests so that it finds the
//! binary the one way, `trm_tests::bins`, and its node keeps its sockets across restarts).

use std::process::Command;

use trm_tests::TestNode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotate_makes_an_endorsed_key_and_refuses_while_the_node_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut node = TestNode::init(tmp.path(), "IT");
    let dir = node.dir.clone();
    let bin = tokio::task::spawn_blocking(|| trm_tests::bins::bin("trm-node"))
        .await
        .unwrap();
    let cfg = trm_node::base::config::NodeConfig::load(&dir).unwrap();
    let old = trm_node::identity::NodeKeys::load(&dir, &cfg).unwrap();
    let rotate = || {
        let (dir, bin) = (dir.clone(), bin.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(bin)
                    .args(["key", "rotate", "--dir"])
                    .arg(&dir)
                    .args(["--overlap-days", "3"])
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };

    // While the node runs, its store is locked: refused, nothing changed.
    node.start().await;
    let o = rotate().await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is the node running"), "{err}");
    node.stop().await;
    let same = trm_node::identity::NodeKeys::load(&dir, &cfg).unwrap();
    assert_eq!(same.public_key(), old.public_key());

    let o = rotate().await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("rotated"));
    let new = trm_node::identity::NodeKeys::load(&dir, &cfg).expect("new keys load");
    assert_ne!(new.public_key(), old.public_key());
    assert_eq!(new.history.len(), 2);
    let closed = new.history[0].valid_until_ms - new.history[1].valid_from_ms;
    assert_eq!(closed, 3 * 86_400_000);
    trm_proto::card::verify_key_history(&new.history).expect("endorsed");
    // The card on disk is signed by the new key and carries both.
    let card =
        trm_proto::card::verify_card(&std::fs::read(dir.join("card.trm")).unwrap()).expect("card");
    assert_eq!(card.card.signing_key, new.public_key().to_vec());
    // The rotation is in the audit log, and the node starts with the new key.
    node.start().await;
    let entries = node.ctx().store.audit_entries(0).unwrap();
    assert!(entries.iter().any(|e| e.kind == "key"));
    node.finish().await;
}
