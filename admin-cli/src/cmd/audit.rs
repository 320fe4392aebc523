//! `audit export` (auditor, through the node), `audit verify` and `audit extract` (offline).

use std::path::{Path, PathBuf};

use trm_proto::admin as api;

use super::{ask, show, Refused, Session};
use crate::failure::Failure;
use crate::files::{parse_time, read_file, FileKind};
use crate::render;

/// Writes the node's bundle of its audit log (all of it, or `--from`/`--to`) to `out`.
pub(crate) async fn export(
    s: &Session,
    out: &Path,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(), Failure> {
    if out.exists() {
        return Err(Failure::usage(format!(
            "{} already exists; refusing to overwrite",
            out.display()
        )));
    }
    let (answer, data) = fetch(s, from, to).await?;
    trm_admin_api::credential::write_public(out, &data)
        .map_err(|e| Failure::new(1, e.to_string()))?;
    let file = out.display().to_string();
    show(s, &answer, |a| render::exported(&file, a));
    Ok(())
}

/// The node's bundle (all of it, or `from`/`to`) and its answer, in memory: `audit export`
/// and the console's audit page.
pub(crate) async fn fetch(
    s: &Session,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(trm_admin_api::answers::AuditExported, Vec<u8>), Failure> {
    let from_ms = from.map(|s| parse_time(s, false)).transpose()?;
    let to_ms = to.map(|s| parse_time(s, true)).transpose()?;
    let request = api::AuditExport {
        from_ms: from_ms.unwrap_or(0),
        to_ms: to_ms.unwrap_or(0),
    };
    let (answer, data) = ask(s, request, Refused::Call).await?;
    if data.is_empty() {
        return Err(Failure::new(1, "the node sent no bundle"));
    }
    Ok((answer, data))
}

/// The offline verifier of `audit verify` (and of the console's audit page) on a bundle's
/// bytes.
pub(crate) fn check(
    bytes: &[u8],
    opts: &trm_proto::audit::Options,
) -> Result<trm_proto::audit::Summary, trm_proto::audit::AuditFailure> {
    trm_proto::audit::verify_bundle_with(bytes, opts)
}

/// `audit verify`: offline, no credential.
pub(crate) fn verify_bundle(
    file: &Path,
    partial: bool,
    expect_key: &[String],
    witness: &[PathBuf],
    json: bool,
) -> Result<(), Failure> {
    for k in expect_key {
        trm_proto::audit::parse_fingerprint(k)
            .map_err(|e| Failure::usage(format!("--expect-key: {e}")))?;
    }
    let bytes = read_file(file, FileKind::Bundle)?;
    let opts = trm_proto::audit::Options {
        allow_partial: partial,
        expect_keys: expect_key.to_vec(),
        witnesses: witness
            .iter()
            .map(|w| read_file(w, FileKind::Bundle))
            .collect::<Result<_, _>>()?,
    };
    match check(&bytes, &opts) {
        Ok(s) => {
            print!("{}", render::audit_summary(&s, json));
            Ok(())
        }
        Err(f) => {
            let of = match f.location {
                trm_proto::audit::Location::Witness { bundle, .. } => witness
                    .get(bundle)
                    .map(|w| format!(" ({})", w.display()))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Err(Failure::new(
                1,
                format!("{}: verification FAILED at {f}{of}", file.display()),
            ))
        }
    }
}

/// `audit extract`: one entry's signed body, signature and signer as raw files.
pub(crate) fn extract_entry(file: &Path, index: u64, dir: &Path) -> Result<(), Failure> {
    use prost::Message;
    let bytes = read_file(file, FileKind::Bundle)?;
    let bundle = trm_proto::auditpb::AuditBundle::decode(bytes.as_slice())
        .map_err(|e| Failure::usage(format!("{}: not an audit bundle ({e})", file.display())))?;
    let entry = bundle
        .entries
        .iter()
        .filter_map(|e| trm_proto::auditpb::AuditEntry::decode(e.entry.as_slice()).ok())
        .find(|e| e.index == index)
        .ok_or_else(|| Failure::usage(format!("the bundle has no entry {index}")))?;
    use trm_proto::audit::AuditKind as K;
    let tag = match K::parse(&entry.kind) {
        Some(K::Sent | K::Received) => "trm/1 envelope",
        Some(K::ReceiptSent | K::ReceiptReceived) => "trm/1 receipt",
        Some(K::RejectionSent | K::RejectionReceived) => "trm/1 rejection",
        Some(K::Key) => "trm/1 key",
        Some(K::Witness) => "trm/1 checkpoint",
        Some(K::PeerHeld | K::Export | K::Admin | K::Erasure | K::Restore) | None => {
            return Err(Failure::usage(format!(
                "entry {index} ({}) carries no signature",
                entry.kind
            )))
        }
    };
    let io = |e: std::io::Error| Failure::new(1, format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    for (name, data) in [
        ("body.bin", &entry.signed_body),
        ("sig.bin", &entry.signature),
        ("pub.raw", &entry.signer),
    ] {
        std::fs::write(dir.join(name), data).map_err(io)?;
    }
    println!(
        "entry {index} ({} {} {}): wrote body.bin, sig.bin, pub.raw to {}\nsigned bytes = \"{tag}\" 0x00 || body.bin; see docs/PROTOCOL.md section 8",
        entry.kind,
        entry.peer,
        entry.call,
        dir.display()
    );
    Ok(())
}
