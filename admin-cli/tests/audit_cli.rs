//! The audit commands through the real `trm-admin` binary: export with an auditor credential,
//! verify offline without any credential, a changed byte refused with a non-zero exit naming
//! where, extract for OpenSSL, and peer revoke.

use std::path::Path;
use std::process::{Command, Output};

use trm_proto::admin::{self as api, admin_request::Call};
use trm_tests::*;

fn trm_admin(args: &[&str], cwd: &Path) -> Output {
    Command::new(trm_tests::bins::bin("trm-admin"))
        .args(args)
        .env_remove("TRM_CRED")
        .current_dir(cwd)
        .output()
        .expect("run trm-admin")
}

/// Runs `trm-admin` off the runtime's worker threads (the nodes answer on them).
async fn run(args: Vec<String>, cwd: std::path::PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        trm_admin(&a, &cwd)
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_verify_extract_and_revoke_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    let officer = it.officer("Officer Example", "officer").await;
    it.call_as(
        &officer,
        Call::CaseCreate(api::CaseCreate {
            json: small_case("IT-TEST-0901"),
        }),
    )
    .await
    .unwrap();
    it.call_as(
        &officer,
        Call::ReferralSend(api::ReferralSend {
            case_id: "IT-TEST-0901".into(),
            to: "AL".into(),
        }),
    )
    .await
    .unwrap();
    assert!(wait_until(10, || al.ctx().store.received_count() == 1).await);

    let dir = tmp.path().to_path_buf();
    let op = it.dir.join("operator.cred").display().to_string();
    let o = run(
        args(&[
            "--cred",
            &op,
            "officer",
            "add",
            "Auditor Example",
            "--role",
            "auditor",
            "--out",
            "auditor.cred",
        ]),
        dir.clone(),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));

    let o = run(
        args(&[
            "--cred",
            "auditor.cred",
            "audit",
            "export",
            "--out",
            "bundle.trm",
            "--from",
            "2020-01-01",
        ]),
        dir.clone(),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("wrote bundle.trm"), "{}", text(&o));

    // Offline: no credential, no node needed.
    let o = run(args(&["audit", "verify", "bundle.trm"]), dir.clone()).await;
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("VERIFIED"), "{out}");
    assert!(out.contains("referral"), "{out}");

    // One changed byte: exit 1, naming where it failed.
    let mut bytes = std::fs::read(dir.join("bundle.trm")).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x10;
    std::fs::write(dir.join("bad.trm"), &bytes).unwrap();
    let o = run(args(&["audit", "verify", "bad.trm"]), dir.clone()).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("verification FAILED at"), "{}", text(&o));

    // Extract the sent envelope's signed bytes for another tool.
    let o = run(
        args(&["--json", "audit", "verify", "bundle.trm"]),
        dir.clone(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json summary");
    assert_eq!(v["verified"], true);
    let bundle = std::fs::read(dir.join("bundle.trm")).unwrap();
    let index = {
        use prost::Message;
        trm_proto::auditpb::AuditBundle::decode(bundle.as_slice())
            .unwrap()
            .entries
            .iter()
            .map(|e| trm_proto::auditpb::AuditEntry::decode(e.entry.as_slice()).unwrap())
            .find(|e| e.kind == "sent")
            .unwrap()
            .index
    };
    let o = run(
        args(&[
            "audit",
            "extract",
            "bundle.trm",
            "--entry",
            &index.to_string(),
            "--dir",
            "sig",
        ]),
        dir.clone(),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(dir.join("sig/sig.bin")).unwrap().len(), 64);
    assert_eq!(std::fs::read(dir.join("sig/pub.raw")).unwrap().len(), 32);

    // Revocation through the binary.
    let o = run(args(&["--cred", &op, "peer", "revoke", "AL"]), dir.clone()).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = run(args(&["--cred", &op, "status"]), dir.clone()).await;
    assert!(text(&o).contains("revoked"), "{}", text(&o));
    it.stop().await;
    al.stop().await;
}
