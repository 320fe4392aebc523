//! Audit at the scale of years (issue 14, target 5): a bundle of N entries verified offline by
//! `trm-admin audit verify` (streaming, a pool of threads, `verify_strict`), against the
//! baselines of the same run: the whole-bundle check in memory on one thread (the path before
//! streaming) and the raw Ed25519 `verify_strict` rate; and the streamed export of a node
//! process holding N entries, through `trm-admin audit export`.
//!
//! The synthetic log is what a sending node writes per referral: `sent` (the envelope, one
//! signature), `receipt_received` (the receipt and the peer's checkpoint in it: two) and one
//! `admin` entry; then the export record, under one checkpoint.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ed25519_dalek::{Signer, SigningKey};
use prost::Message;
use trm_proto::auditpb::{AuditBundle, AuditEntry, ExportedEntry};
use trm_proto::merkle::{self, MerkleLog};
use trm_proto::pb;
use trm_proto::signing::{self, Tag};

/// Everything measured by the audit run.
#[derive(Clone, Debug, Default)]
pub struct AuditFigures {
    /// Entries in the verified bundle.
    pub entries: u64,
    /// Signatures in it.
    pub signatures: u64,
    /// Bundle size, bytes.
    pub bundle_bytes: u64,
    /// `trm-admin audit verify`, wall time.
    pub verify: Duration,
    /// Its peak resident memory (VmHWM, polled), KiB.
    pub verify_peak_kib: u64,
    /// The whole-bundle check in memory on one thread (the path before streaming).
    pub baseline: Duration,
    /// Raw `verify_strict` per second, one thread.
    pub ed25519_verify: f64,
    /// Threads the verifier used.
    pub threads: usize,
    /// Interleaved runs of the verifier and the baselines (medians reported).
    pub runs: usize,
    /// Entries exported by the node.
    pub exported: u64,
    /// Exported bundle size, bytes.
    pub export_bytes: u64,
    /// `trm-admin audit export`, wall time.
    pub export: Duration,
}

struct Party {
    key: SigningKey,
    card: Vec<u8>,
}

fn party(country: &str, seed: u8) -> Party {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let pk = key.verifying_key().to_bytes().to_vec();
    let c = pb::Card {
        version: 1,
        country: country.into(),
        name: format!("{country} bench unit"),
        addresses: vec!["127.0.0.1:1".into()],
        tls_cert_der: vec![1],
        signing_key: pk.clone(),
        acceptance: vec![1],
        valid_from_ms: 0,
        valid_until_ms: 1 << 50,
        key_history: vec![pb::KeyRecord {
            public_key: pk,
            valid_from_ms: 0,
            ..Default::default()
        }],
        issued_ms: 0,
    };
    Party {
        card: trm_proto::card::sign_card(&c, &key),
        key,
    }
}

fn signed(key: &SigningKey, tag: Tag, body: Vec<u8>) -> pb::Signed {
    pb::Signed {
        signature: signing::sign(key, tag, &body).to_vec(),
        signer: key.verifying_key().to_bytes().to_vec(),
        body,
    }
}

/// The three entries of referral `i` (from index `index`).
fn referral_entries(it: &Party, al_cp: &pb::Signed, i: u64, index: u64) -> [AuditEntry; 3] {
    let id = i.to_be_bytes().repeat(2);
    let body = pb::Body {
        version: 1,
        message_id: id.clone(),
        sender: "IT".into(),
        recipient: "AL".into(),
        created_ms: 1000 + i as i64,
        case_ref: format!("IT-BENCH-{i:07}"),
        payload: Some(pb::body::Payload::Referral(pb::Referral {
            digests: vec![vec![7; 32]; 24],
            ..Default::default()
        })),
        ..Default::default()
    }
    .encode_to_vec();
    let env = signed(&it.key, Tag::Envelope, body);
    let hash = signing::envelope_hash(&env.body, &env.signature).to_vec();
    let receipt = pb::Receipt {
        message_id: id.clone(),
        envelope_hash: hash.clone(),
        receiver: "AL".into(),
        sender: "IT".into(),
        received_ms: 1001 + i as i64,
        outcome: 1,
        checkpoint: Some(al_cp.clone()),
    };
    let r = signed(
        &SigningKey::from_bytes(&[2; 32]),
        Tag::Receipt,
        receipt.encode_to_vec(),
    );
    let base = |index: u64, kind: &str| AuditEntry {
        index,
        time_ms: 1000 + i as i64,
        kind: kind.into(),
        peer: "AL".into(),
        message_id: id.clone(),
        envelope_hash: hash.clone(),
        ..Default::default()
    };
    [
        AuditEntry {
            signature: env.signature,
            signed_body: env.body,
            signer: env.signer,
            call: "referral".into(),
            ..base(index, "sent")
        },
        AuditEntry {
            signature: r.signature,
            signed_body: r.body,
            signer: r.signer,
            ..base(index + 1, "receipt_received")
        },
        AuditEntry {
            index: index + 2,
            time_ms: 1002 + i as i64,
            kind: "admin".into(),
            officer: "Officer Example".into(),
            role: "officer".into(),
            call: "referral send".into(),
            target: format!("IT-BENCH-{i:07} -> AL"),
            result: "ok".into(),
            ..Default::default()
        },
    ]
}

/// Writes the leaves of a log of about `n` entries to `leaves` (length-prefixed); returns the
/// Merkle log of them and the signatures they carry.
fn write_leaves(it: &Party, n: u64, leaves: &Path) -> Result<(MerkleLog, u64)> {
    let al = SigningKey::from_bytes(&[2; 32]);
    let al_cp = signed(
        &al,
        Tag::Checkpoint,
        pb::Checkpoint {
            country: "AL".into(),
            tree_size: 3,
            root_hash: vec![9; 32],
            time_ms: 1000,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let mut out = BufWriter::new(std::fs::File::create(leaves)?);
    let (mut log, mut sigs) = (MerkleLog::new(), 0u64);
    let mut push = |e: &AuditEntry, log: &mut MerkleLog| -> Result<()> {
        let bytes = e.encode_to_vec();
        log.push(merkle::leaf_hash(&bytes));
        out.write_all(&(bytes.len() as u32).to_be_bytes())?;
        Ok(out.write_all(&bytes)?)
    };
    for i in 0..n.saturating_sub(1) / 3 {
        for e in referral_entries(it, &al_cp, i, log.size()) {
            sigs += if e.kind == "sent" {
                1
            } else if e.kind == "admin" {
                0
            } else {
                2
            };
            push(&e, &mut log)?;
        }
    }
    let export = AuditEntry {
        index: log.size(),
        time_ms: 1 << 40,
        kind: "export".into(),
        officer: "Auditor Example".into(),
        role: "auditor".into(),
        call: "audit export".into(),
        ..Default::default()
    };
    push(&export, &mut log)?;
    out.flush()?;
    Ok((log, sigs))
}

/// Builds a complete, valid bundle of about `n` entries at `path`, streaming (bounded memory
/// besides the Merkle tree); returns its entries and signatures.
pub fn build_bundle(n: u64, path: &Path) -> Result<(u64, u64)> {
    let it = party("IT", 1);
    let al = party("AL", 2);
    let leaves = path.with_extension("leaves");
    let (log, sigs) = write_leaves(&it, n, &leaves)?;
    let size = log.size();
    let cp = pb::Checkpoint {
        country: "IT".into(),
        tree_size: size,
        root_hash: log.root_at(size)?.to_vec(),
        time_ms: 1 << 41,
        sequence: 1,
        previous: Vec::new(),
    };
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let head = AuditBundle {
        version: 1,
        country: "IT".into(),
        card: it.card.clone(),
        peer_cards: vec![al.card],
        ..Default::default()
    };
    out.write_all(&head.encode_to_vec())?;
    let mut r = BufReader::new(std::fs::File::open(&leaves)?);
    for index in 0..size {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let mut entry = vec![0u8; u32::from_be_bytes(len) as usize];
        r.read_exact(&mut entry)?;
        let e = ExportedEntry {
            entry,
            inclusion: log
                .inclusion_proof(index, size)?
                .into_iter()
                .map(|h| h.to_vec())
                .collect(),
        };
        let one = AuditBundle {
            entries: vec![e],
            ..Default::default()
        };
        out.write_all(&one.encode_to_vec())?;
    }
    let tail = AuditBundle {
        checkpoints: vec![signed(&it.key, Tag::Checkpoint, cp.encode_to_vec()).encode_to_vec()],
        ..Default::default()
    };
    out.write_all(&tail.encode_to_vec())?;
    out.flush()?;
    std::fs::remove_file(&leaves)?;
    Ok((size, sigs + 3))
}

/// Runs `trm-admin ARGS` to completion: wall time and peak resident memory (KiB, polled).
pub fn timed_admin(args: &[&str]) -> Result<(Duration, u64)> {
    let bin = trm_tests::bins::bin("trm-admin");
    let start = Instant::now();
    let mut child = std::process::Command::new(&bin)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let done = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if let Ok(text) = std::fs::read_to_string(&status) {
            let hwm = text.lines().find(|l| l.starts_with("VmHWM:"));
            let kib = hwm.and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
            peak = peak.max(kib.unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    if !done.success() {
        let mut err = String::new();
        child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        bail!("trm-admin {args:?}: {}", err.trim());
    }
    Ok((wall, peak))
}

/// Raw `verify_strict` of a 1 KiB body, one thread: per second.
pub fn ed25519_verify_rate(n: usize) -> f64 {
    let key = SigningKey::from_bytes(&[3; 32]);
    let body = vec![5u8; 1024];
    let sig = key.sign(&body);
    let vk = key.verifying_key();
    let start = Instant::now();
    for _ in 0..n {
        let _ = vk.verify_strict(&body, &sig);
    }
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

/// Offline verification of a bundle of about `n` entries in `dir`: the streaming verifier
/// against the whole-bundle check and the raw Ed25519 rate, `runs` times interleaved
/// (medians; the peak memory is the largest seen).
pub fn verification(n: u64, dir: &Path, runs: usize) -> Result<AuditFigures> {
    let path = dir.join("bench.bundle");
    let (entries, signatures) = build_bundle(n, &path)?;
    let file = path.display().to_string();
    let (mut verify, mut baseline, mut raw, mut peak) = (vec![], vec![], vec![], 0);
    for _ in 0..runs.max(1) {
        let (wall, kib) = timed_admin(&["audit", "verify", &file])?;
        verify.push(wall.as_secs_f64());
        peak = peak.max(kib);
        let bytes = std::fs::read(&path)?;
        let start = Instant::now();
        let sum = trm_proto::audit::verify_bundle(&bytes).map_err(|f| anyhow::anyhow!("{f}"))?;
        baseline.push(start.elapsed().as_secs_f64());
        if sum.entries != entries {
            bail!("the bundle holds {} entries, not {entries}", sum.entries);
        }
        raw.push(ed25519_verify_rate(20_000));
    }
    let median = |v: &[f64]| Duration::from_secs_f64(crate::scenario::median(v));
    Ok(AuditFigures {
        entries,
        signatures,
        bundle_bytes: std::fs::metadata(&path)?.len(),
        verify: median(&verify),
        verify_peak_kib: peak,
        baseline: median(&baseline),
        ed25519_verify: crate::scenario::median(&raw),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        runs: runs.max(1),
        ..Default::default()
    })
}

/// The streamed export of a node process whose log holds `n` admin entries.
pub async fn export(bin: &Path, n: u64, dir: &Path) -> Result<(u64, u64, Duration)> {
    let mut node = trm_tests::proc::NodeProc::init(dir, "IT", bin)?;
    let store = node.open_store()?;
    let mut left = n;
    while left > 0 {
        let batch = left.min(10_000);
        let ops = (0..batch)
            .map(|i| trm_node::store::Op::Audit(filler(i)))
            .collect();
        store.commit_blocking(ops)?;
        left -= batch;
    }
    drop(store);
    node.start().await?;
    let auditor = node.officer("Auditor Example", "auditor").await?;
    let cred: PathBuf = dir.join("auditor.toml");
    auditor.save(&cred)?;
    let out = dir.join("export.bundle");
    let args = [
        "--cred".to_string(),
        cred.display().to_string(),
        "audit".into(),
        "export".into(),
        "--out".into(),
        out.display().to_string(),
    ];
    let (wall, _) = tokio::task::spawn_blocking(move || {
        timed_admin(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await??;
    node.terminate();
    let bytes = std::fs::metadata(&out)?.len();
    Ok((verified_entries(&out)?, bytes, wall))
}

/// An admin entry of the size a real one has.
fn filler(i: u64) -> AuditEntry {
    AuditEntry {
        time_ms: 1000 + i as i64,
        kind: "admin".into(),
        officer: "Officer Example".into(),
        role: "officer".into(),
        call: "case show".into(),
        target: format!("IT-BENCH-{i:07}"),
        result: "ok".into(),
        ..Default::default()
    }
}

/// Entries of a bundle, as `audit verify --json` counts them.
fn verified_entries(path: &Path) -> Result<u64> {
    let out = std::process::Command::new(trm_tests::bins::bin("trm-admin"))
        .args(["audit", "verify", "--json"])
        .arg(path)
        .output()?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
    doc["entries"].as_u64().context("no entry count")
}
