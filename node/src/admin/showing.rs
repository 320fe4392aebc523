//! What `message show` adds to a message's view: its payload in words and, while it waits in
//! the outbox, what the node knows of its delivery (the peer's health and the outbox).

use trm_admin_api::answers as a;
use trm_proto::pb::{self, body::Payload, Category};
use trm_proto::{signing, template};

use crate::admin::CallError;
use crate::base::time::format_ms;
use crate::state::ctx::Ctx;
use crate::store::{SentRecord, SentState};

fn categories(v: &[i32]) -> Vec<String> {
    v.iter()
        .filter_map(|c| Category::try_from(*c).ok())
        .map(|c| template::category_name(c).to_string())
        .collect()
}

/// A received agreement text as shown, `None` if the sender recorded none.
fn shown(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| trm_proto::agreement::shown(text))
}

fn lower(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Every payload kind as its own typed view.
pub fn payload_view(b: &pb::Body) -> a::PayloadView {
    use crate::referral::lifecycle::phase_name;
    match &b.payload {
        Some(Payload::Referral(r)) => a::PayloadView::Referral {
            agreement: shown(&r.agreement),
            legal_basis: shown(&r.legal_basis),
            phase: phase_name(r.phase).to_string(),
            response_due: format_ms(r.response_due_ms),
            urgency: pb::Urgency::try_from(r.urgency)
                .map(|u| lower(u.as_str_name()))
                .unwrap_or_default(),
        },
        Some(Payload::Acceptance(x)) => a::PayloadView::Acceptance {
            focal_point: x.focal_point.clone(),
            responsible_institution: x.responsible_institution.clone(),
        },
        Some(Payload::Decline(d)) => a::PayloadView::Decline {
            reason: d.reason.clone(),
        },
        Some(Payload::FollowUp(f)) => a::PayloadView::FollowUp {
            date: f.date.clone(),
            phase: phase_name(f.phase).to_string(),
            status: f.status.clone(),
        },
        Some(Payload::InformationRequest(i)) => a::PayloadView::InformationRequest {
            categories: categories(&i.categories),
            fields: i.fields.clone(),
            purpose: i.purpose.clone(),
        },
        Some(Payload::Disclosure(d)) => a::PayloadView::Disclosure {
            referral: hex::encode(&d.referral_id),
        },
        Some(other) => record_view(other),
        None => a::PayloadView::Unknown,
    }
}

/// The payloads about records rather than the case's progress.
fn record_view(p: &Payload) -> a::PayloadView {
    match p {
        Payload::ErasureRequest(e) => a::PayloadView::ErasureRequest {
            categories: categories(&e.categories),
            reason: e.reason.clone(),
            referral: hex::encode(&e.referral_id),
        },
        Payload::ErasureConfirmation(e) => a::PayloadView::ErasureConfirmation {
            categories: categories(&e.categories),
            erased: format_ms(e.erased_ms),
            request: hex::encode(&e.request_id),
        },
        Payload::Closure(c) => a::PayloadView::Closure {
            date: c.date.clone(),
            outcome: pb::ClosureOutcome::try_from(c.outcome)
                .map(|o| lower(o.as_str_name()))
                .unwrap_or_default(),
        },
        Payload::DirectoryUpdate(d) => {
            let dir = d
                .directory
                .as_ref()
                .and_then(|s| <pb::Directory as prost::Message>::decode(s.body.as_slice()).ok())
                .unwrap_or_default();
            a::PayloadView::DirectoryUpdate {
                contacts: dir.contacts.len() as u64,
                version: dir.version,
            }
        }
        Payload::KeyAnnouncement(k) => a::PayloadView::KeyAnnouncement {
            key: k
                .key
                .as_ref()
                .map(|k| signing::fingerprint(&k.public_key))
                .unwrap_or_default(),
        },
        _ => a::PayloadView::Unknown,
    }
}

/// What the node knows of a pending message's delivery; `None` once it is answered.
pub fn pending(ctx: &Ctx, s: &SentRecord) -> Result<Option<Box<a::PendingDelivery>>, CallError> {
    if SentState::from_u32(s.state) != SentState::Pending {
        return Ok(None);
    }
    let h = ctx.peers.health(&s.peer);
    let queue = ctx
        .store
        .outbox_for(&s.peer, usize::MAX, &Default::default())?;
    let ahead = queue.iter().take_while(|r| r.id != s.id).count() as u64;
    let (held, _) = crate::federation::trust::peer_json(ctx, &s.peer);
    let peer_state = match ctx.peers.get(&s.peer) {
        Some(p) => crate::admin::calls::peer_state(ctx, held, p.revoked, &h),
        None => "not pinned",
    };
    Ok(Some(Box::new(a::PendingDelivery {
        ahead,
        attempts: u64::from(h.attempts),
        failing_since: format_ms(h.failing_since_ms),
        last_contact: format_ms(h.last_contact_ms),
        last_error: h.last_error.clone(),
        next_attempt: next_attempt(ctx, peer_state, h.failing_since_ms != 0, ahead),
        peer_state: peer_state.to_string(),
    })))
}

/// When the delivery worker tries again, as far as the node can say.
fn next_attempt(ctx: &Ctx, peer_state: &str, failing: bool, ahead: u64) -> String {
    let d = &ctx.cfg.delivery;
    match peer_state {
        "revoked" => "none while the peer is revoked (re-pin it with peer add --replace)".into(),
        "not pinned" => "none until the peer's identity card is added (peer add)".into(),
        s if s.starts_with("held") || s.starts_with("paused") => {
            format!("none while the peer is {s}")
        }
        _ if failing => format!(
            "automatic: retried with a backoff from {} ms up to {} s until the peer answers",
            d.backoff_initial_ms,
            d.backoff_max_ms / 1000
        ),
        _ if ahead > 0 => format!("after the {ahead} messages ahead of it"),
        _ => "now: it is next in the outbox".into(),
    }
}
