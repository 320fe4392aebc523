//! A case that stays current (issue 12, items 7 to 9): `case update` keeps every version of a
//! local case, the follow-ups this node sends update its own record, a referral is not sent
//! twice to a partner that has it open, and `case reopen` opens this node's side of a closed
//! referral again.

use trm_admin_api::answers as a;
use trm_proto::pb::{self, Category};
use trm_proto::template;

use crate::admin::calls::load_case;
use crate::base::time::format_ms;
use crate::base::vocab::{CallError, Caller};
use crate::state::ctx::Ctx;
use crate::store::casedata;
use crate::store::{AuditEntry, CaseRecord, CaseVersion, Op, ThreadRecord, ThreadState};
use trm_proto::audit::AuditKind;

/// The audit entry of a new case version: its number and how many paths changed, never a
/// path's value.
fn version_audit(caller: &Caller, id: &str, v: &CaseVersion) -> AuditEntry {
    AuditEntry {
        time_ms: v.at_ms,
        kind: AuditKind::Admin.into(),
        officer: caller.name.clone(),
        role: caller.role.name().into(),
        call: "case version".into(),
        target: id.to_string(),
        result: format!(
            "version {}: {} field(s) changed ({})",
            v.number,
            v.changed.len(),
            v.cause
        ),
        ..Default::default()
    }
}

/// The category erased from `case` that `path` belongs to, if any.
fn erased_category<'a>(
    ctx: &Ctx,
    case: &'a CaseRecord,
    path: &str,
) -> Option<&'a crate::store::Erased> {
    let cat = ctx.template.category_of(path)?;
    case.erased.iter().find(|e| e.category == cat as i32)
}

/// Refuses values of a category erased from the case (consent withdrawn): they come back only
/// through a new consent, never through an update.
fn check_not_erased(
    ctx: &Ctx,
    case: &CaseRecord,
    fields: &[pb::FieldDisclosure],
) -> Result<(), CallError> {
    for f in fields {
        if let Some(e) = erased_category(ctx, case, &f.path) {
            let name = Category::try_from(e.category)
                .map(template::category_name)
                .unwrap_or("unknown");
            return Err(CallError::msg(format!(
                "case refused: {}: category {name} was erased from this case ({}); record its consent again first",
                f.path, e.reason
            )));
        }
    }
    Ok(())
}

/// `case update`: the case file validated exactly as `case create`, stored as the case's
/// next version (the current values kept as an earlier version), in one transaction with its
/// audit entry.
pub async fn update(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    text: &str,
) -> Result<a::CaseUpdated, CallError> {
    let case = ctx
        .template
        .parse_case(text)
        .map_err(|e| CallError::msg(format!("case refused: {e}")))?;
    let case_ref = case
        .case_ref()
        .ok_or_else(|| CallError::msg("case refused: reference.case_ref is required"))?;
    if case_ref != id {
        return Err(CallError::msg(format!(
            "case refused: reference.case_ref: {case_ref} is not case {id} (a case's reference never changes)"
        )));
    }
    let (record, old) = load_case(ctx, id).await?;
    let new = crate::admin::calls::case_disclosures(&case);
    check_not_erased(ctx, &record, &new)?;
    let changed = casedata::changed_paths(&old, &new);
    if changed.is_empty() {
        return Err(CallError::msg(format!(
            "nothing to update: the file holds case {id}'s current values"
        )));
    }
    let next = CaseVersion {
        at_ms: ctx.clock.now_ms(),
        by: caller.name.clone(),
        cause: "case update".into(),
        changed,
        ..Default::default()
    };
    let saved = save_version(ctx, caller, &record, (&old, &new), next).await?;
    Ok(a::CaseUpdated {
        id: id.to_string(),
        version: saved.number as u64,
        changed: saved.changed,
    })
}

/// Seals and commits `next` as the case's new version with its audit entry; returns it.
async fn save_version(
    ctx: &Ctx,
    caller: &Caller,
    record: &CaseRecord,
    values: (&[pb::FieldDisclosure], &[pb::FieldDisclosure]),
    next: CaseVersion,
) -> Result<CaseVersion, CallError> {
    let mut ops = Vec::new();
    let mut ku = ctx.vault.begin().await;
    let c = casedata::next_version(
        &ctx.vault,
        &mut ku,
        record,
        values,
        next,
        |p| ctx.template.category_of(p),
        &mut ops,
    )?;
    let v = c.current_version();
    ops.push(Op::ExpectCase {
        id: c.id.clone(),
        expected: Some(record.clone()),
    });
    ops.push(Op::Audit(version_audit(caller, &c.id, &v)));
    ops.push(Op::PutCase(c));
    let outcomes = ctx.store.commit(ops).await?;
    drop(ku);
    if outcomes.contains(&crate::store::Outcome::Conflict) {
        return Err(CallError::msg(
            "the case changed while this version was prepared; nothing was saved, try again",
        ));
    }
    Ok(v)
}

/// A consent given or withdrawn (`path`, a `consent.*` record): the case's next version.
pub async fn consent_version(
    ctx: &Ctx,
    caller: &Caller,
    record: &CaseRecord,
    values: (&[pb::FieldDisclosure], &[pb::FieldDisclosure]),
    path: &str,
) -> Result<(), CallError> {
    let next = CaseVersion {
        at_ms: ctx.clock.now_ms(),
        by: caller.name.clone(),
        cause: "case consent".into(),
        changed: vec![path.to_string()],
        ..Default::default()
    };
    save_version(ctx, caller, record, values, next).await?;
    Ok(())
}

/// What a follow-up sent about a local case changes in this node's own record.
pub struct OwnFollowUp<'a> {
    /// The follow-up's message id.
    pub message: &'a [u8],
    /// Its TRM phase, as sent.
    pub phase: &'a str,
    /// Its status text.
    pub status: &'a str,
    /// Its template fields (all of them, released or withheld: they are this node's values).
    pub fields: &'a [pb::FieldDisclosure],
}

/// A follow-up this node sent about its own case (`case_id`; "" for a case it received): the
/// case's next version, "by follow-up <id>", with the fields it carried, its phase and its
/// status. The follow-up is already enqueued: a failure says so.
pub async fn record_own_follow_up(
    ctx: &Ctx,
    caller: &Caller,
    case_id: &str,
    f: OwnFollowUp<'_>,
) -> Result<(), CallError> {
    if case_id.is_empty() {
        return Ok(());
    }
    let message = hex::encode(f.message);
    new_follow_up_version(ctx, caller, case_id, f)
        .await
        .map_err(|e| {
            CallError::msg(format!(
                "follow-up {message} sent, but this node's own record was not updated: {}",
                e.message
            ))
        })
}

async fn new_follow_up_version(
    ctx: &Ctx,
    caller: &Caller,
    case_id: &str,
    f: OwnFollowUp<'_>,
) -> Result<(), CallError> {
    let (record, old) = load_case(ctx, case_id).await?;
    let mut new = old.clone();
    // Values of an erased category stay erased.
    for d in f
        .fields
        .iter()
        .filter(|d| erased_category(ctx, &record, &d.path).is_none())
    {
        new.retain(|x| x.path != d.path);
        new.push(d.clone());
    }
    let next = CaseVersion {
        at_ms: ctx.clock.now_ms(),
        by: caller.name.clone(),
        cause: format!("follow-up {}", hex::encode(f.message)),
        changed: casedata::changed_paths(&old, &new),
        phase: f.phase.to_string(),
        status: f.status.to_string(),
        ..Default::default()
    };
    save_version(ctx, caller, &record, (&old, &new), next).await?;
    Ok(())
}

/// A case version as the admin API shows it.
pub fn version_json(v: &CaseVersion) -> a::CaseVersion {
    a::CaseVersion {
        version: v.number as u64,
        at: format_ms(v.at_ms),
        at_ms: v.at_ms,
        by: v.by.clone(),
        cause: v.cause.clone(),
        changed: v.changed.clone(),
        phase: v.phase.clone(),
        status: v.status.clone(),
    }
}

/// The latest version made by a follow-up this node sent (its phase and status).
pub fn last_reported(c: &CaseRecord) -> Option<a::CaseVersion> {
    c.current
        .iter()
        .chain(c.history.iter().rev())
        .find(|v| !v.phase.is_empty())
        .map(version_json)
}

/// Every version of a local case after the first, oldest first.
pub fn later_versions(c: &CaseRecord) -> Vec<a::CaseVersion> {
    c.history
        .iter()
        .chain(c.current.iter())
        .filter(|v| v.number > 1)
        .map(version_json)
        .collect()
}

/// The reopenings recorded in `threads`, oldest first.
pub fn reopenings(threads: &[ThreadRecord]) -> Vec<a::Reopening> {
    let mut out: Vec<a::Reopening> = threads
        .iter()
        .flat_map(|t| {
            t.reopened.iter().map(|r| a::Reopening {
                at: format_ms(r.at_ms),
                at_ms: r.at_ms,
                by: r.by.clone(),
                peer: t.peer.clone(),
                reason: r.reason.clone(),
                side: r.side.clone(),
            })
        })
        .collect();
    out.sort_by_key(|r| r.at_ms);
    out
}

/// `referral send` to a country that already has this case open (pending or accepted) is
/// refused: the partner has the case, later values go as follow-ups.
pub fn check_not_open(ctx: &Ctx, case_ref: &str, to: &str) -> Result<(), CallError> {
    let Some(t) = ctx.store.thread(to, case_ref)? else {
        return Ok(());
    };
    if t.state().is_some_and(ThreadState::is_open) {
        return Err(CallError::msg(format!(
            "{to} already has case {case_ref} open ({}): send what changed with `followup send {case_ref} --to {to}`, or close the referral first (`case close {case_ref} --to {to}`)",
            t.state
        )));
    }
    Ok(())
}

/// `case reopen`: this node's side of a closed referral opens again (locally; the partner
/// learns it from this side's next follow-up).
pub async fn reopen(
    ctx: &Ctx,
    caller: &Caller,
    r: trm_proto::admin::CaseReopen,
) -> Result<a::CaseReopened, CallError> {
    if r.reason.trim().is_empty() {
        return Err(CallError::msg("a reopening states its reason (--reason)"));
    }
    let t = ctx.store.thread(&r.to, &r.case_id)?.ok_or_else(|| {
        CallError::msg(format!("no referral of case {} with {}", r.case_id, r.to))
    })?;
    let next = crate::referral::lifecycle::reopen(&t, &caller.name, &r.reason, ctx.clock.now_ms())
        .map_err(|e| CallError::msg(e.detail))?;
    let state = next.state.clone();
    let outcomes = ctx
        .store
        .commit(vec![
            Op::ExpectThread {
                peer: r.to.clone(),
                case_ref: r.case_id.clone(),
                expected: Some(t),
            },
            Op::PutThread(next),
        ])
        .await?;
    if outcomes.contains(&crate::store::Outcome::Conflict) {
        return Err(CallError::msg(
            "the referral changed while it was reopened; try again",
        ));
    }
    Ok(a::CaseReopened {
        case: r.case_id,
        to: r.to,
        state,
    })
}
