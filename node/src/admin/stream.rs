//! The streamed audit export on the admin connection (docs/PROTOCOL.md §10.1): the answer
//! frame, then the bundle in `AuditChunk` frames of at most [`CHUNK`] bytes of data, the last
//! one carrying the bundle's length and SHA-256. Memory: one chunk and one piece of the
//! bundle ([`crate::audit::export::LEAVES_PER_READ`] entries) at a time, whatever the log's
//! size. A failure after the answer resets the stream: the client keeps nothing.

use sha2::{Digest, Sha256};
use trm_proto::admin::{AdminResponse, AuditChunk};

use crate::audit::export::Bundle;
use crate::state::ctx::Ctx;

/// Bytes of bundle data per chunk frame.
pub const CHUNK: usize = 512 << 10;

/// Test hooks of debug builds only: `TRM_DEBUG_EXPORT_CHUNK` (bytes per chunk) and
/// `TRM_DEBUG_EXPORT_CUT` (reset the stream after that many chunks, as a cut connection).
fn debug_knob(name: &str) -> Option<usize> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var(name).ok()?.parse().ok().filter(|&n| n > 0)
}

/// Sends `resp` and then, if it is a success, the bundle; resets the stream on any failure.
pub async fn send_bundle(
    ctx: &Ctx,
    send: &mut quinn::SendStream,
    resp: &AdminResponse,
    mut bundle: Bundle,
) {
    let chunk = debug_knob("TRM_DEBUG_EXPORT_CHUNK")
        .unwrap_or(CHUNK)
        .min(CHUNK);
    let cut = debug_knob("TRM_DEBUG_EXPORT_CUT");
    if send
        .write_all(&trm_proto::frame::encode(resp))
        .await
        .is_err()
        || !resp.ok
    {
        let _ = send.finish();
        return;
    }
    let (mut hash, mut total, mut sent) = (Sha256::new(), 0u64, 0usize);
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let piece = match bundle.next_piece(&ctx.store) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e.message, "audit export stopped");
                let _ = send.reset(1u32.into());
                return;
            }
        };
        let end = piece.is_none();
        pending.extend_from_slice(&piece.unwrap_or_default());
        while pending.len() >= chunk || (end && !pending.is_empty()) {
            let data: Vec<u8> = pending.drain(..pending.len().min(chunk)).collect();
            hash.update(&data);
            total += data.len() as u64;
            if cut.is_some_and(|n| sent >= n) || !write_chunk(send, data, None).await {
                let _ = send.reset(2u32.into());
                return;
            }
            sent += 1;
        }
        if end {
            break;
        }
    }
    let digest = hash.finalize().to_vec();
    if write_chunk(send, Vec::new(), Some((total, digest))).await {
        let _ = send.finish();
    }
}

/// Writes one chunk frame (the last one with the total and hash); false if the stream failed.
async fn write_chunk(
    send: &mut quinn::SendStream,
    data: Vec<u8>,
    end: Option<(u64, Vec<u8>)>,
) -> bool {
    let (total, sha256) = end.clone().unwrap_or_default();
    let frame = trm_proto::frame::encode(&AuditChunk {
        data,
        last: end.is_some(),
        total,
        sha256,
    });
    send.write_all(&frame).await.is_ok()
}
