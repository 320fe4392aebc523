//! What a data-protection officer asks of a case (issue 12, items 19 and 20): who read or
//! changed it (`case access-log`, from the audit log) and everything this node holds on it
//! (`case export`, for a subject access request or a court).
//!
//! Every admin call that names one case is logged with an audit `target` that starts with
//! the case id (docs/PROTOCOL.md §9.1): `CASE`, `CASE -> CC` (a call about the case with a
//! partner) or `CASE message ID` (`message show`). [`case_target`] builds it; the access log
//! finds a case's entries by that prefix ([`names_case`]). Never a field value: only the case
//! id, a country code and a message id.

use std::sync::Arc;

use trm_admin_api::answers as a;
use trm_proto::admin::admin_request::Call;

use crate::admin::{CallError, Caller};
use crate::base::time::format_ms;
use crate::state::ctx::Ctx;
use crate::store::ThreadRole;
use trm_proto::audit::AuditKind;

/// The audit target of a call that names one case, or `None` for any other call (its
/// target is [`crate::admin::calls::target`]). Resolves a referral or message named by its
/// id to its case; an id this node does not hold stays as typed.
pub fn case_target(ctx: &Ctx, call: &Call) -> Option<String> {
    let with = |case: &str, cc: &str| format!("{case} -> {cc}");
    Some(match call {
        Call::CaseShow(r) => r.id.clone(),
        Call::CaseTimeline(r) => r.id.clone(),
        Call::CaseAccessLog(r) => r.id.clone(),
        Call::CaseExport(r) => r.id.clone(),
        Call::CaseConsent(r) => r.case_id.clone(),
        Call::CaseUpdate(r) => r.id.clone(),
        Call::CaseReopen(r) => with(&r.case_id, &r.to),
        Call::CaseCreate(r) => ctx
            .template
            .parse_case(&r.json)
            .ok()
            .and_then(|c| c.case_ref().map(str::to_string))
            .unwrap_or_default(),
        Call::ReferralSend(r) => with(&r.case_id, &r.to),
        Call::ReferralPreview(r) => with(&r.case_id, &r.to),
        Call::FollowUpSend(r) => with(&r.case_id, &r.to),
        Call::InfoRequest(r) => with(&r.case_id, &r.to),
        Call::CaseClose(r) => with(&r.case_id, &r.to),
        Call::FollowUpPreview(r) => match &r.request {
            Some(f) => with(&f.case_id, &f.to),
            None => return None,
        },
        Call::ReferralApprove(r) => referral_target(ctx, &r.referral, ThreadRole::Sent),
        Call::ReferralDisclose(r) => referral_target(ctx, &r.referral, ThreadRole::Sent),
        Call::ReferralAnswer(r) => referral_target(ctx, &r.referral, ThreadRole::Received),
        Call::MessageShow(r) => match message_case(ctx, &r.id) {
            Some(case) => format!("{case} message {}", r.id),
            None => r.id.clone(),
        },
        _ => return None,
    })
}

/// `CASE/CC` or a referral's message id, as `CASE -> CC`; as typed if unknown here.
fn referral_target(ctx: &Ctx, referral: &str, role: ThreadRole) -> String {
    if let Some((case, cc)) = referral.split_once('/') {
        return format!("{case} -> {cc}");
    }
    let Some(id) = hex::decode(referral).ok().filter(|v| v.len() == 16) else {
        return referral.to_string();
    };
    let threads = ctx.store.threads().unwrap_or_default();
    threads
        .iter()
        .find(|t| t.role() == Some(role) && t.referral_id == id)
        .map(|t| format!("{} -> {}", t.case_ref, t.peer))
        .unwrap_or_else(|| referral.to_string())
}

/// The case a message (by its hex id) is about, if this node holds the message.
fn message_case(ctx: &Ctx, id_hex: &str) -> Option<String> {
    let id = hex::decode(id_hex).ok().filter(|v| v.len() == 16)?;
    if let Some(s) = ctx.store.sent(&id).ok().flatten() {
        if !s.case_id.is_empty() {
            return Some(s.case_id);
        }
        return crate::admin::calls::referral_case_ref(&s.envelope);
    }
    let inbox = ctx.store.inbox().ok()?;
    inbox.into_iter().find(|r| r.id == id).map(|r| r.case_ref)
}

/// Whether an audit `target` names `case`: the whole target, or its first word.
pub fn names_case(target: &str, case: &str) -> bool {
    !case.is_empty()
        && target
            .strip_prefix(case)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// `case access-log`: every admin call whose audit target names `id`, oldest first.
pub fn access_log(ctx: &Ctx, id: &str) -> Result<a::AccessLog, CallError> {
    if id.is_empty() {
        return Err(CallError::msg("name the case: case access-log CASE"));
    }
    let admin = AuditKind::Admin.to_string();
    let entries: Vec<a::AccessEntry> = ctx
        .store
        .audit_entries(0)?
        .into_iter()
        .filter(|e| e.kind == admin && names_case(&e.target, id))
        .map(|e| a::AccessEntry {
            call: e.call,
            index: e.index,
            officer: e.officer,
            result: e.result,
            role: e.role,
            target: e.target,
            time: format_ms(e.time_ms),
            time_ms: e.time_ms,
        })
        .collect();
    if entries.is_empty() && !holds_case(ctx, id)? {
        return Err(CallError::msg(format!("no case {id}")));
    }
    Ok(a::AccessLog {
        case: id.to_string(),
        entries,
    })
}

/// Whether this node recorded or received the case.
fn holds_case(ctx: &Ctx, id: &str) -> Result<bool, CallError> {
    Ok(ctx.store.case(id)?.is_some() || ctx.store.threads()?.iter().any(|t| t.case_ref == id))
}

/// `case export`: the case as `case show` shows it, and every message about it as `message
/// show` shows it (payload in words, verification, delivery), oldest first.
pub async fn export(ctx: &Arc<Ctx>, caller: &Caller, id: &str) -> Result<a::CaseExport, CallError> {
    let case = crate::admin::calls::case_show(ctx, id).await?;
    let mut timeline = crate::admin::flows::timeline(ctx, id).await?;
    let mut messages = Vec::with_capacity(timeline.messages.len());
    for m in &timeline.messages {
        messages.push(crate::admin::calls::message_show(ctx, &m.id).await?);
    }
    timeline.messages = messages;
    Ok(a::CaseExport {
        case,
        country: ctx.country().to_string(),
        exported: format_ms(ctx.clock.now_ms()),
        exported_by: caller.name.clone(),
        timeline,
    })
}

#[cfg(test)]
mod tests {
    use super::names_case;

    #[test]
    fn a_target_names_a_case_by_its_first_word() {
        let cases = [
            ("IT-2026-0001", "IT-2026-0001", true),
            ("IT-2026-0001 -> AL", "IT-2026-0001", true),
            ("IT-2026-0001 message 00ff", "IT-2026-0001", true),
            ("IT-2026-00012", "IT-2026-0001", false),
            ("IT-2026-00012 -> AL", "IT-2026-0001", false),
            ("XIT-2026-0001", "IT-2026-0001", false),
            ("", "IT-2026-0001", false),
            ("AL", "", false),
            ("", "", false),
        ];
        for (target, case, want) in cases {
            assert_eq!(names_case(target, case), want, "{target:?} / {case:?}");
        }
    }
}
