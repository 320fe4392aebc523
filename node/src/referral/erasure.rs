//! Erasure: consent withdrawal and retention expiry delete values and salts (by destroying
//! their keys, see [`crate::store::vault`]) while the signed envelopes and digests stay verifiable.
//! Countries that received erased categories are asked to erase them too.

use std::collections::BTreeMap;
use std::sync::Arc;

use trm_proto::pb::{self, body::Payload, Category};
use trm_proto::template;

use crate::state::ctx::Ctx;
use crate::store::casedata;
use crate::store::vault::VaultError;
use crate::store::{Erased, Op, SentState};
use trm_proto::audit::AuditKind;

fn erased(cats: &[i32], now: i64, reason: &str) -> Vec<Erased> {
    cats.iter()
        .map(|c| Erased {
            category: *c,
            at_ms: now,
            reason: reason.to_string(),
        })
        .collect()
}

/// The messages this node sent `peer` about `case_ref` without a local case (follow-ups
/// and answers on a received case): they belong to the thread's scope.
pub fn thread_sent(
    ctx: &Ctx,
    peer: &str,
    case_ref: &str,
) -> Result<Vec<crate::store::SentRecord>, crate::store::StoreError> {
    Ok(ctx
        .store
        .sent_all()?
        .into_iter()
        .filter(|s| {
            s.case_id.is_empty()
                && s.peer == peer
                && casedata::envelope_case_ref(&s.envelope) == case_ref
        })
        .collect())
}

/// Erases `cats` of the thread with `peer` about `case_ref` that this node did not record
/// itself: what was received, and what this node sent about it (the thread's scope).
pub async fn erase_received(
    ctx: &Ctx,
    peer: &str,
    case_ref: &str,
    cats: &[i32],
    reason: &str,
) -> Result<(), VaultError> {
    let now = ctx.clock.now_ms();
    let mut ops = Vec::new();
    for mut r in ctx.store.received_for_case(peer, case_ref)? {
        let before = r.disclosures.len();
        r.disclosures.retain(|g| !cats.contains(&g.category));
        if r.disclosures.len() != before {
            r.erased.extend(erased(cats, now, reason));
            ops.push(Op::PutReceived(r));
        }
    }
    for mut s in thread_sent(ctx, peer, case_ref)? {
        let before = s.released.len() + s.committed.len();
        s.released.retain(|g| !cats.contains(&g.category));
        s.committed.retain(|g| !cats.contains(&g.category));
        if s.released.len() + s.committed.len() != before {
            s.erased.extend(erased(cats, now, reason));
            ops.push(Op::PutSent(s));
        }
    }
    ops.push(audit(ctx, peer, case_ref, cats, reason));
    let scopes = [
        casedata::received_scope(peer, case_ref),
        casedata::thread_scope(peer, case_ref),
    ];
    ctx.vault.erase(&scopes, cats, ops).await?;
    tracing::info!(peer = %peer, categories = cats.len(), reason, "received values erased");
    Ok(())
}

fn audit(ctx: &Ctx, peer: &str, target: &str, cats: &[i32], reason: &str) -> Op {
    Op::Audit(crate::store::AuditEntry {
        time_ms: ctx.clock.now_ms(),
        kind: AuditKind::Erasure.into(),
        peer: peer.into(),
        call: reason.into(),
        target: target.into(),
        result: cats
            .iter()
            .filter_map(|c| Category::try_from(*c).ok())
            .map(template::category_name)
            .collect::<Vec<_>>()
            .join(","),
        ..Default::default()
    })
}

/// Erases `cats` of a local case and of every message sent about it; returns the peers that
/// had received values of those categories, with the id of their referral.
pub async fn erase_case(
    ctx: &Ctx,
    case_id: &str,
    cats: &[i32],
    reason: &str,
) -> Result<BTreeMap<String, Vec<u8>>, VaultError> {
    let now = ctx.clock.now_ms();
    let mut ops = Vec::new();
    let mut informed = BTreeMap::new();
    if let Some(mut c) = ctx.store.case(case_id)? {
        c.sealed.retain(|g| !cats.contains(&g.category));
        for v in &mut c.history {
            v.sealed.retain(|g| !cats.contains(&g.category));
        }
        c.erased.extend(erased(cats, now, reason));
        ops.push(Op::PutCase(c));
    }
    for mut s in ctx.store.sent_all()? {
        if s.case_id != case_id {
            continue;
        }
        let released = s.released.iter().any(|g| cats.contains(&g.category));
        if released && SentState::from_u32(s.state) != SentState::Rejected {
            let referral = if s.kind == "referral" {
                s.id.clone()
            } else {
                vec![]
            };
            let e = informed.entry(s.peer.clone()).or_insert_with(Vec::new);
            if e.is_empty() {
                *e = referral;
            }
        }
        let before = s.released.len() + s.committed.len();
        s.released.retain(|g| !cats.contains(&g.category));
        s.committed.retain(|g| !cats.contains(&g.category));
        if s.released.len() + s.committed.len() != before {
            s.erased.extend(erased(cats, now, reason));
            ops.push(Op::PutSent(s));
        }
    }
    ops.push(audit(ctx, "", case_id, cats, reason));
    ctx.vault
        .erase(&[casedata::case_scope(case_id)], cats, ops)
        .await?;
    tracing::info!(categories = cats.len(), reason, "case values erased");
    Ok(informed)
}

/// Asks every peer in `informed` to erase `cats` of the case.
pub async fn request_erasure(
    ctx: &Arc<Ctx>,
    case_ref: &str,
    case_id: &str,
    cats: &[i32],
    reason: &str,
    informed: BTreeMap<String, Vec<u8>>,
    officer: &str,
) -> Vec<String> {
    let mut sent = Vec::new();
    for (peer, referral_id) in informed {
        let out = crate::referral::messages::Outgoing {
            to: peer.clone(),
            case_id: case_id.to_string(),
            case_ref: case_ref.to_string(),
            in_reply_to: vec![],
            payload: Payload::ErasureRequest(pb::ErasureRequest {
                referral_id,
                categories: cats.to_vec(),
                reason: reason.to_string(),
            }),
            released: vec![],
            committed: vec![],
            officer: officer.to_string(),
        };
        match crate::referral::messages::enqueue(ctx, out).await {
            Ok(id) => sent.push(format!("{peer}:{}", hex::encode(id))),
            Err(e) => tracing::error!(peer = %peer, error = %e, "cannot request erasure"),
        }
    }
    sent
}

/// Erases every category whose retention period (config `retention_days`) has passed, in
/// local cases and in what was received. Returns how many (scope, category) pairs it erased.
pub async fn apply_retention(ctx: &Arc<Ctx>) -> Result<usize, VaultError> {
    let now = ctx.clock.now_ms();
    let limits: Vec<(i32, i64)> = ctx
        .cfg
        .retention_days
        .iter()
        .filter(|(_, d)| **d > 0)
        .filter_map(|(name, d)| {
            Some((
                template::parse_category(name)? as i32,
                *d as i64 * 86_400_000,
            ))
        })
        .collect();
    if limits.is_empty() {
        return Ok(0);
    }
    let mut n = 0;
    for case in ctx.store.cases()? {
        let expired: Vec<i32> = limits
            .iter()
            .filter(|(c, ms)| {
                now - case.created_ms >= *ms && case.sealed.iter().any(|g| g.category == *c)
            })
            .map(|(c, _)| *c)
            .collect();
        if expired.is_empty() {
            continue;
        }
        n += expired.len();
        let informed = erase_case(ctx, &case.id, &expired, "retention_expired").await?;
        request_erasure(
            ctx,
            &case.case_ref,
            &case.id,
            &expired,
            "retention_expired",
            informed,
            "node",
        )
        .await;
    }
    // Threads of cases not recorded here: what was received and what was sent about them.
    let mut threads = std::collections::BTreeSet::new();
    for r in ctx.store.inbox()? {
        threads.insert((r.peer.clone(), r.case_ref.clone()));
    }
    for s in ctx.store.sent_all()? {
        let case_ref = casedata::envelope_case_ref(&s.envelope);
        if s.case_id.is_empty() && !case_ref.is_empty() {
            threads.insert((s.peer.clone(), case_ref));
        }
    }
    for (peer, case_ref) in threads {
        let records = ctx.store.received_for_case(&peer, &case_ref)?;
        let sent = thread_sent(ctx, &peer, &case_ref)?;
        let expired: Vec<i32> = limits
            .iter()
            .filter(|(c, ms)| {
                records.iter().any(|x| {
                    now - x.received_ms >= *ms && x.disclosures.iter().any(|g| g.category == *c)
                }) || sent.iter().any(|x| {
                    now - x.created_ms >= *ms
                        && x.released
                            .iter()
                            .chain(&x.committed)
                            .any(|g| g.category == *c)
                })
            })
            .map(|(c, _)| *c)
            .collect();
        if !expired.is_empty() {
            n += expired.len();
            erase_received(ctx, &peer, &case_ref, &expired, "retention_expired").await?;
        }
    }
    Ok(n)
}

/// Runs [`apply_retention`] every minute until shutdown.
pub async fn retention_task(ctx: Arc<Ctx>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = apply_retention(&ctx).await {
            tracing::error!(error = %e, "retention run failed");
        }
    }
}
