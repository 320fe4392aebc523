//! `audit export` (auditor, through the node), `audit verify` and `audit extract` (offline).

use std::path::{Path, PathBuf};

use trm_proto::admin as api;

use std::io::Write;

use trm_admin_api::answers::AuditExported;
use trm_admin_api::client::AdminClient;

use super::{show, Refused, Session};
use crate::failure::Failure;
use crate::files::{parse_time, read_file, FileKind};
use crate::render;

/// Writes the node's bundle of its audit log (all of it, or `--from`/`--to`) to `out`, as it
/// arrives (streamed, no size cap): into a temporary file beside `out`, synced and moved to
/// `out` only once the node's end of stream (length and SHA-256) checks. A cut export leaves
/// no `out` and no temporary file.
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
    let tmp = Partial::create(out)?;
    let mut file = std::io::BufWriter::with_capacity(1 << 20, &tmp.file);
    let answer = stream(s, from, to, |data| {
        file.write_all(data)
            .map_err(|e| format!("{}: {e}", tmp.path.display()))
    })
    .await?;
    file.flush()
        .map_err(|e| Failure::new(1, format!("{}: {e}", tmp.path.display())))?;
    drop(file);
    tmp.keep_as(out)?;
    let file = out.display().to_string();
    show(s, &answer, |a| render::exported(&file, a));
    Ok(())
}

/// The node's bundle (all of it, or `from`/`to`) and its answer, in memory: the console's
/// audit page, which hands the bytes to the browser as a download.
pub(crate) async fn fetch(
    s: &Session,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(AuditExported, Vec<u8>), Failure> {
    let mut data = Vec::new();
    let answer = stream(s, from, to, |chunk| {
        data.extend_from_slice(chunk);
        Ok(())
    })
    .await?;
    Ok((answer, data))
}

/// Asks the node for its bundle (all of it, or `from`/`to`) and hands every chunk to `sink`
/// as it arrives (streamed, no size cap; the client checks the node's end of stream: length
/// and SHA-256); the node's answer.
async fn stream(
    s: &Session,
    from: Option<&str>,
    to: Option<&str>,
    sink: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<AuditExported, Failure> {
    let from_ms = from.map(|s| parse_time(s, false)).transpose()?;
    let to_ms = to.map(|s| parse_time(s, true)).transpose()?;
    let request = api::AuditExportStream {
        from_ms: from_ms.unwrap_or(0),
        to_ms: to_ms.unwrap_or(0),
    };
    let client = AdminClient::connect(&s.cred).await?;
    let result = client.export_stream(request, sink).await;
    client.close().await;
    let (text, total) = result.map_err(|e| Refused::Call.failure(e))?;
    if total == 0 {
        return Err(Failure::new(1, "the node sent no bundle"));
    }
    serde_json::from_str(&text)
        .map_err(|e| Failure::from(trm_admin_api::client::ClientError::BadAnswer(e.to_string())))
}

/// The offline verifier of `audit verify` on a bundle's bytes in memory (the console's audit
/// page: an uploaded file); `audit verify` itself streams the file ([`crate::bundle`]).
pub(crate) fn check(
    bytes: &[u8],
    opts: &trm_proto::audit::Options,
) -> Result<trm_proto::audit::Summary, trm_proto::audit::AuditFailure> {
    trm_proto::audit::verify_bundle_with(bytes, opts)
}

/// The temporary file an export is written to, beside its target; removed unless kept.
struct Partial {
    path: PathBuf,
    file: std::fs::File,
    kept: bool,
}

impl Partial {
    fn create(out: &Path) -> Result<Partial, Failure> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = out.file_name().unwrap_or_default().to_string_lossy();
        let path = out.with_file_name(format!(".{name}.part{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| Failure::new(1, format!("{}: {e}", path.display())))?;
        Ok(Partial {
            path,
            file,
            kept: false,
        })
    }

    /// Syncs the file and gives it its name, without replacing a file made meanwhile.
    fn keep_as(mut self, out: &Path) -> Result<(), Failure> {
        let io = |p: &Path, e: std::io::Error| Failure::new(1, format!("{}: {e}", p.display()));
        self.file.sync_all().map_err(|e| io(&self.path, e))?;
        std::fs::hard_link(&self.path, out).map_err(|e| io(out, e))?;
        std::fs::remove_file(&self.path).map_err(|e| io(&self.path, e))?;
        self.kept = true;
        let dir = out.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, e))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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
    let opts = trm_proto::audit::Options {
        allow_partial: partial,
        expect_keys: expect_key.to_vec(),
        witnesses: witness
            .iter()
            .map(|w| read_file(w, FileKind::Bundle))
            .collect::<Result<_, _>>()?,
    };
    match crate::bundle::verify_file(file, &opts) {
        Ok(s) => {
            print!("{}", render::audit_summary(&s, json));
            Ok(())
        }
        Err(Err(unreadable)) => Err(unreadable),
        Err(Ok(f)) => {
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
