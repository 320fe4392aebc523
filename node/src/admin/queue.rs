//! `queue` (what needs doing, per role of the caller) and `referral approvals` (what waits
//! for a supervisor, who approved what). The selection and order rules are pure functions
//! over narrow arguments, tested below; the calls gather the rows from the store.

use std::collections::BTreeSet;

use prost::Message;
use trm_admin_api::answers::{self as a, QueueKind};
use trm_proto::pb::{self, Category};
use trm_proto::template;

use crate::admin::calls;
use crate::base::time::format_ms;
use crate::base::vocab::{CallError, Caller, Role, ThreadState};
use crate::referral::policy::{FieldDecision, Withheld};
use crate::state::ctx::Ctx;
use crate::store::{ApprovalRecord, ReceivedRecord, SentRecord, ThreadRecord, ThreadRole};

const DAY_MS: i64 = 86_400_000;
/// Partner cards expiring within this many days are in the operators' queue.
pub const CARD_WARNING_DAYS: i64 = 30;
/// A backup older than this many days (or none) is in the operators' queue.
pub const BACKUP_WARNING_DAYS: i64 = 7;
/// Store metadata key: when this node last wrote a backup (Unix ms, 8 bytes big-endian).
pub use crate::ops::backup::LAST_BACKUP;

/// Queue order: emergency, then child cases, then urgent, then the rest (as the inbox);
/// within each, the earliest due first (no due date last), then by kind.
pub fn rank(
    urgency: Option<&str>,
    minor: Option<bool>,
    due_ms: i64,
    kind: QueueKind,
) -> (u8, i64, QueueKind) {
    let flag = match (urgency, minor) {
        (Some("emergency"), _) => 0,
        (_, Some(true)) => 1,
        (Some("urgent"), _) => 2,
        _ => 3,
    };
    (flag, if due_ms > 0 { due_ms } else { i64::MAX }, kind)
}

/// When an accepted referral is due a follow-up from this node: `days` after the later of
/// its acceptance and this node's last follow-up on it. `None`: not accepted.
pub fn follow_up_due_ms(
    state: Option<ThreadState>,
    accepted_ms: i64,
    last_follow_up_ms: i64,
    days: u32,
) -> Option<i64> {
    (state == Some(ThreadState::Accepted))
        .then(|| accepted_ms.max(last_follow_up_ms) + i64::from(days) * DAY_MS)
}

/// A card that expires within [`CARD_WARNING_DAYS`] of `now_ms` (or has expired).
pub fn card_expiring(valid_until_ms: i64, now_ms: i64) -> bool {
    valid_until_ms > 0 && valid_until_ms <= now_ms + CARD_WARNING_DAYS * DAY_MS
}

/// A peer state (as `status` shows it) that needs an operator: unreachable, held or paused.
/// Revoked is the operator's own decision; retrying and no contact yet are not yet a fault.
pub fn peer_needs_operator(state: &str) -> bool {
    state == "unreachable" || state == "paused" || state.starts_with("held")
}

/// The categories withheld only for want of a supervisor's approval (every other rule would
/// release them), in template order.
pub fn waiting_for_approval(decisions: &[FieldDecision]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for d in decisions {
        if d.withheld_by == [Withheld::Approval] && !out.contains(&d.category) {
            out.push(d.category);
        }
    }
    out
}

/// The body of a stored envelope (not verified: for ids, kinds and times only).
fn body_of(envelope: &[u8]) -> pb::Body {
    pb::Envelope::decode(envelope)
        .ok()
        .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        .unwrap_or_default()
}

/// Ids of the messages this node answered (the `in_reply_to` of every message it sent).
pub fn answered_ids(ctx: &Ctx) -> Result<BTreeSet<Vec<u8>>, CallError> {
    Ok(ctx
        .store
        .sent_all()?
        .iter()
        .map(|s| body_of(&s.envelope).in_reply_to)
        .filter(|id| !id.is_empty())
        .collect())
}

/// Ids of the messages the partners answered (the `in_reply_to` of every message received).
pub fn replied_ids(ctx: &Ctx) -> Result<BTreeSet<Vec<u8>>, CallError> {
    Ok(ctx
        .store
        .inbox()?
        .iter()
        .map(|r| body_of(&r.envelope).in_reply_to)
        .filter(|id| !id.is_empty())
        .collect())
}

/// The ids (hex) of the messages, sent or received, that answer the message `id`.
pub fn answers_to(ctx: &Ctx, id: &[u8]) -> Result<Vec<String>, CallError> {
    let sent = ctx.store.sent_all()?.into_iter().map(|s| s.envelope);
    let received = ctx.store.inbox()?.into_iter().map(|r| r.envelope);
    Ok(sent
        .chain(received)
        .map(|e| body_of(&e))
        .filter(|b| b.in_reply_to == id)
        .map(|b| hex::encode(b.message_id))
        .collect())
}

/// Sets `answered_by` on the information requests among `views` (a case's timeline: its
/// answers are among the same views).
pub fn mark_answers(views: &mut [a::MessageView]) {
    let replies: Vec<(String, String)> = views
        .iter()
        .filter(|v| !v.in_reply_to.is_empty())
        .map(|v| (v.in_reply_to.clone(), v.id.clone()))
        .collect();
    for v in views.iter_mut().filter(|v| v.kind == "information_request") {
        let by = replies.iter().filter(|(to, _)| *to == v.id);
        v.answered_by = Some(by.map(|(_, id)| id.clone()).collect());
    }
}

/// One row of the queue before it is ordered.
struct Row {
    item: a::QueueItem,
    due_ms: i64,
}

impl Row {
    fn new(kind: QueueKind, t: (&str, &str, &[u8]), due_ms: i64, now_ms: i64) -> Row {
        let (case_ref, peer, id) = t;
        Row {
            item: a::QueueItem {
                kind,
                case_ref: case_ref.to_string(),
                peer: peer.to_string(),
                id: hex::encode(id),
                due: format_ms(due_ms),
                overdue: due_ms > 0 && now_ms > due_ms,
                ..Default::default()
            },
            due_ms,
        }
    }

    fn key(&self) -> (u8, i64, QueueKind) {
        rank(
            self.item.urgency.as_deref(),
            self.item.minor,
            self.due_ms,
            self.item.kind,
        )
    }
}

/// `queue` for the caller's role. Auditors have no queue (refused by the role rule).
pub async fn queue(ctx: &Ctx, caller: &Caller) -> Result<a::Queue, CallError> {
    let now = ctx.clock.now_ms();
    let mut last_backup = None;
    let mut rows = match caller.role {
        Role::Officer => officer_rows(ctx, now).await?,
        Role::Supervisor => supervisor_rows(ctx, now).await?,
        Role::Operator => {
            let (rows, last) = operator_rows(ctx, now)?;
            last_backup = Some(last);
            rows
        }
        Role::Auditor => Vec::new(),
    };
    rows.sort_by_key(Row::key);
    Ok(a::Queue {
        role: caller.role.name().to_string(),
        items: rows.into_iter().map(|r| r.item).collect(),
        last_backup: last_backup.flatten(),
    })
}

/// The time of the first message of `kind` about (peer, case_ref) among `messages`.
fn first_of(messages: &[(i64, String, pb::Body)], kind: &str, peer: &str, case_ref: &str) -> i64 {
    messages
        .iter()
        .filter(|(_, p, b)| p == peer && b.case_ref == case_ref)
        .filter(|(_, _, b)| crate::referral::messages::kind_name(b) == kind)
        .map(|(t, _, _)| *t)
        .min()
        .unwrap_or(0)
}

/// The officer's row for one thread, if it needs doing.
fn thread_row(
    ctx: &Ctx,
    t: &ThreadRecord,
    sent: &[(i64, String, pb::Body)],
    received: &[(i64, String, pb::Body)],
    now: i64,
) -> Option<Row> {
    let key = (
        t.case_ref.as_str(),
        t.peer.as_str(),
        t.referral_id.as_slice(),
    );
    let id = hex::encode(&t.referral_id);
    let (peer, case_ref) = (&t.peer, &t.case_ref);
    let mut row = match (t.role(), t.state()) {
        (Some(ThreadRole::Received), Some(ThreadState::Pending)) => {
            let mut r = Row::new(QueueKind::AnswerReferral, key, t.response_due_ms, now);
            r.item.what = format!("referral of {case_ref} from {peer} to accept or decline");
            r.item.command = format!("trm-admin referral accept {id} --institution INSTITUTION | trm-admin referral decline {id} --reason REASON");
            r
        }
        (Some(ThreadRole::Sent), _) if t.is_overdue(now) => {
            let mut r = Row::new(QueueKind::ResponseOverdue, key, t.response_due_ms, now);
            r.item.what =
                format!("{peer} has not answered the referral of {case_ref} by its response date");
            r.item.command = format!("trm-admin directory list --country {peer}");
            r
        }
        (role, state @ Some(ThreadState::Accepted)) => {
            let (ours, theirs) = if role == Some(ThreadRole::Received) {
                (sent, received)
            } else {
                (received, sent)
            };
            let accepted = first_of(ours, "acceptance", peer, case_ref).max(first_of(
                theirs,
                "acceptance",
                peer,
                case_ref,
            ));
            let last = sent
                .iter()
                .filter(|(_, p, b)| p == peer && &b.case_ref == case_ref)
                .filter(|(_, _, b)| crate::referral::messages::kind_name(b) == "follow_up")
                .map(|(t, _, _)| *t)
                .max()
                .unwrap_or(0);
            let since = if accepted > 0 { accepted } else { t.updated_ms };
            let due = follow_up_due_ms(state, since, last, ctx.cfg.followup_due_days)?;
            if due > now {
                return None;
            }
            let mut r = Row::new(QueueKind::FollowUpDue, key, due, now);
            r.item.what = format!("no follow-up to {peer} on {case_ref} for {} days or more (node.toml followup_due_days)", ctx.cfg.followup_due_days);
            r.item.command = format!(
                "trm-admin followup send {case_ref} --to {peer} --phase PHASE --status STATUS"
            );
            r
        }
        _ => return None,
    };
    row.item.overdue = row.item.overdue || t.is_overdue(now);
    Some(row)
}

/// Sent or received messages as (time, peer, body).
fn bodies_sent(list: Vec<SentRecord>) -> Vec<(i64, String, pb::Body)> {
    list.into_iter()
        .map(|s| (s.created_ms, s.peer, body_of(&s.envelope)))
        .collect()
}

fn bodies_received(list: &[ReceivedRecord]) -> Vec<(i64, String, pb::Body)> {
    list.iter()
        .map(|r| (r.received_ms, r.peer.clone(), body_of(&r.envelope)))
        .collect()
}

/// Officers: referrals to answer, responses overdue, information requests to answer,
/// follow-ups due.
async fn officer_rows(ctx: &Ctx, now: i64) -> Result<Vec<Row>, CallError> {
    let inbox = ctx.store.inbox()?;
    let sent = bodies_sent(ctx.store.sent_all()?);
    let received = bodies_received(&inbox);
    let answered = answered_ids(ctx)?;
    let mut rows = Vec::new();
    for t in ctx.store.threads()? {
        rows.extend(thread_row(ctx, &t, &sent, &received, now));
    }
    for r in inbox.iter().filter(|r| r.kind == "information_request") {
        if answered.contains(&r.id) {
            continue;
        }
        let b = body_of(&r.envelope);
        let key = (r.case_ref.as_str(), r.peer.as_str(), r.id.as_slice());
        let mut row = Row::new(QueueKind::AnswerInformationRequest, key, 0, now);
        let (case_ref, peer, id) = (&r.case_ref, &r.peer, hex::encode(&r.id));
        row.item.what = format!(
            "information request from {peer} on {case_ref}: {}",
            crate::admin::flows::summary(&b)
        );
        row.item.command = format!("trm-admin followup send {case_ref} --to {peer} --phase PHASE --status STATUS --in-reply-to {id} | trm-admin referral decline {id} --reason REASON");
        rows.push(row);
    }
    for row in &mut rows {
        let (u, m) = calls::case_flags(ctx, &row.item.peer, &row.item.case_ref).await?;
        row.item.urgency = u;
        row.item.minor = m;
    }
    Ok(rows)
}

/// A referral approvals are for: the peer and the sent referral's id (`None`: the next one).
type Target = (String, Option<Vec<u8>>);

/// Referrals of local cases that approvals could change: each open (pending or accepted)
/// referral, and the next referral to the case's receiving country while it has none.
fn approval_targets(
    ctx: &Ctx,
    case_ref: &str,
    receiving: Option<String>,
) -> Result<Vec<Target>, CallError> {
    let threads: Vec<ThreadRecord> = ctx
        .store
        .threads()?
        .into_iter()
        .filter(|t| t.case_ref == case_ref && t.role() == Some(ThreadRole::Sent))
        .collect();
    let mut out: Vec<Target> = threads
        .iter()
        .filter(|t| {
            matches!(
                t.state(),
                Some(ThreadState::Pending | ThreadState::Accepted)
            )
        })
        .map(|t| (t.peer.clone(), Some(t.referral_id.clone())))
        .collect();
    if let Some(cc) = receiving {
        if ctx.peers.get(&cc).is_some() && !threads.iter().any(|t| t.peer == cc) {
            out.push((cc, None));
        }
    }
    Ok(out)
}

/// Categories of one referral of (case, peer) withheld only for want of approval (as for a
/// sender who is not the case's creator).
pub async fn waiting_categories(
    ctx: &Ctx,
    case_id: &str,
    peer: &str,
    referral: Option<&[u8]>,
) -> Result<Vec<String>, CallError> {
    let (_, decisions) = calls::preview(ctx, case_id, peer, referral, "").await?;
    Ok(waiting_for_approval(&decisions)
        .into_iter()
        .map(str::to_string)
        .collect())
}

/// Every referral whose sensitive categories wait for a supervisor's approval.
pub async fn waiting_list(ctx: &Ctx) -> Result<Vec<a::ApprovalWait>, CallError> {
    let mut out = Vec::new();
    for case in ctx.store.cases()? {
        let (_, fields) = calls::load_case(ctx, &case.id).await?;
        let receiving = fields
            .iter()
            .find(|f| f.path == "reference.receiving_country")
            .and_then(|f| serde_json::from_slice::<String>(&f.value).ok());
        for (peer, referral) in approval_targets(ctx, &case.case_ref, receiving)? {
            let categories = waiting_categories(ctx, &case.id, &peer, referral.as_deref()).await?;
            if !categories.is_empty() {
                out.push(a::ApprovalWait {
                    case: case.id.clone(),
                    to: peer,
                    referral: referral.map(hex::encode).unwrap_or_default(),
                    categories,
                });
            }
        }
    }
    Ok(out)
}

/// Supervisors: referrals waiting for approval.
async fn supervisor_rows(ctx: &Ctx, now: i64) -> Result<Vec<Row>, CallError> {
    let mut rows = Vec::new();
    for w in waiting_list(ctx).await? {
        let id = hex::decode(&w.referral).unwrap_or_default();
        let case_ref = ctx.store.case(&w.case)?.unwrap_or_default().case_ref;
        let mut row = Row::new(QueueKind::Approval, (&case_ref, &w.to, &id), 0, now);
        let which = if w.referral.is_empty() {
            "the next referral".to_string()
        } else {
            format!("referral {}", w.referral)
        };
        let cats = w.categories.join(",");
        row.item.what = format!(
            "{cats} of case {} to {} ({which}) wait for approval",
            w.case, w.to
        );
        row.item.command = format!(
            "trm-admin referral preview {} --to {} ; trm-admin referral approve {} --to {} --categories {cats}",
            w.case, w.to, w.case, w.to
        );
        let (_, fields) = calls::load_case(ctx, &w.case).await?;
        let value = |path: &str| {
            fields
                .iter()
                .find(|f| f.path == path)
                .and_then(|f| serde_json::from_slice::<serde_json::Value>(&f.value).ok())
        };
        row.item.urgency = value("reference.urgency").and_then(|v| v.as_str().map(str::to_string));
        row.item.minor = value("child.minor").and_then(|v| v.as_bool());
        rows.push(row);
    }
    Ok(rows)
}

/// Operators: peers needing attention, cards expiring, the last backup.
fn operator_rows(ctx: &Ctx, now: i64) -> Result<(Vec<Row>, Option<a::LastBackup>), CallError> {
    let mut rows = Vec::new();
    for p in ctx.peers.all() {
        let cc = p.card.country().to_string();
        let (held, _) = crate::federation::trust::peer_json(ctx, &cc);
        let state = calls::peer_state(ctx, held, p.revoked, &ctx.peers.health(&cc));
        if !p.revoked && peer_needs_operator(state) {
            let mut row = Row::new(QueueKind::PeerDown, ("", &cc, &[]), 0, now);
            row.item.what = format!("peer {cc} is {state}");
            row.item.command = if state.starts_with("held") {
                format!("trm-admin status ; trm-admin peer trust {cc}")
            } else {
                "trm-admin status".to_string()
            };
            rows.push(row);
        }
        let until = p.card.card.valid_until_ms;
        if !p.revoked && card_expiring(until, now) {
            let mut row = Row::new(QueueKind::CardExpiring, ("", &cc, &[]), until, now);
            row.item.what = format!("the identity card of {cc} expires {}", format_ms(until));
            row.item.command = "trm-admin peer add NEW_CARD --replace".to_string();
            rows.push(row);
        }
    }
    let taken = ctx
        .store
        .meta(LAST_BACKUP)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(i64::from_be_bytes);
    let last = taken.map(|t| a::LastBackup {
        taken: format_ms(t),
        age_days: ((now - t).max(0) / DAY_MS) as u64,
    });
    let due = taken.map_or(0, |t| t + BACKUP_WARNING_DAYS * DAY_MS);
    if taken.is_none() || now > due {
        let mut row = Row::new(QueueKind::Backup, ("", "", &[]), due, now);
        row.item.what = match &last {
            Some(l) => format!("the last backup is {} days old", l.age_days),
            None => "no backup taken by this node".to_string(),
        };
        row.item.command = "trm-node backup --dir NODE_DIR --out FILE".to_string();
        rows.push(row);
    }
    Ok((rows, last))
}

/// One approval record as the answers show it.
pub fn approval_view(case_id: &str, peer: &str, rec: &ApprovalRecord) -> a::ApprovalView {
    a::ApprovalView {
        case: case_id.to_string(),
        to: peer.to_string(),
        referral: hex::encode(&rec.referral_id),
        granted: rec
            .all_grants()
            .iter()
            .map(|g| a::Grant {
                category: Category::try_from(g.category)
                    .map(template::category_name)
                    .unwrap_or("unknown")
                    .to_string(),
                supervisor: g.supervisor.clone(),
                at: format_ms(g.at_ms),
            })
            .collect(),
    }
}

/// `referral approvals`.
pub async fn approvals(ctx: &Ctx) -> Result<a::Approvals, CallError> {
    Ok(a::Approvals {
        waiting: waiting_list(ctx).await?,
        approvals: ctx
            .store
            .approvals()?
            .iter()
            .map(|(case, peer, rec)| approval_view(case, peer, rec))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emergency_then_children_then_urgent_then_by_due_date() {
        use QueueKind::*;
        let rows = [
            (
                "routine, due later",
                Some("routine"),
                Some(false),
                20,
                AnswerReferral,
            ),
            (
                "routine, no due date",
                Some("routine"),
                None,
                0,
                AnswerReferral,
            ),
            ("routine, due first", Some("routine"), None, 10, FollowUpDue),
            ("urgent", Some("urgent"), None, 30, ResponseOverdue),
            ("child", None, Some(true), 40, AnswerInformationRequest),
            (
                "emergency",
                Some("emergency"),
                Some(false),
                50,
                AnswerReferral,
            ),
            ("unknown", None, None, 5, AnswerReferral),
        ];
        let mut v = rows.to_vec();
        v.sort_by_key(|(_, u, m, due, kind)| rank(*u, *m, *due, *kind));
        let names: Vec<&str> = v.iter().map(|r| r.0).collect();
        assert_eq!(
            names,
            [
                "emergency",
                "child",
                "urgent",
                "unknown",
                "routine, due first",
                "routine, due later",
                "routine, no due date"
            ]
        );
    }

    #[test]
    fn follow_up_due_after_the_later_of_acceptance_and_last_follow_up() {
        let accepted = Some(ThreadState::Accepted);
        type Row = (
            &'static str,
            Option<ThreadState>,
            i64,
            i64,
            u32,
            Option<i64>,
        );
        let rows: [Row; 5] = [
            (
                "accepted, none sent",
                accepted,
                100,
                0,
                1,
                Some(100 + DAY_MS),
            ),
            (
                "a later follow-up restarts",
                accepted,
                100,
                500,
                2,
                Some(500 + 2 * DAY_MS),
            ),
            ("zero days: due at once", accepted, 100, 0, 0, Some(100)),
            (
                "pending: not due",
                Some(ThreadState::Pending),
                100,
                0,
                1,
                None,
            ),
            (
                "closed: not due",
                Some(ThreadState::Closed),
                100,
                0,
                1,
                None,
            ),
        ];
        for (case, state, accepted_ms, last, days, want) in rows {
            assert_eq!(
                follow_up_due_ms(state, accepted_ms, last, days),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn cards_within_thirty_days_and_peers_needing_an_operator() {
        let now = 1_000 * DAY_MS;
        for (case, until, want) in [
            ("expires in 29 days", now + 29 * DAY_MS, true),
            ("expires in 30 days", now + 30 * DAY_MS, true),
            ("expires in 31 days", now + 31 * DAY_MS, false),
            ("expired", now - DAY_MS, true),
            ("no end", 0, false),
        ] {
            assert_eq!(card_expiring(until, now), want, "{case}");
        }
        for (state, want) in [
            ("unreachable", true),
            ("held: audit log inconsistent", true),
            ("paused", true),
            ("revoked", false),
            ("retrying", false),
            ("reachable", false),
            ("no contact yet", false),
        ] {
            assert_eq!(peer_needs_operator(state), want, "{state}");
        }
    }

    #[test]
    fn only_categories_withheld_for_approval_alone_wait() {
        let d = |path: &str, category: &'static str, by: &[Withheld]| FieldDecision {
            path: path.into(),
            category,
            released: by.is_empty(),
            withheld_by: by.to_vec(),
        };
        let decisions = [
            d("identity.family_name", "identity", &[Withheld::Approval]),
            d("identity.given_names", "identity", &[Withheld::Approval]),
            d(
                "health.needs",
                "health",
                &[Withheld::Consent, Withheld::Approval],
            ),
            d("child.minor", "child", &[Withheld::Approval]),
            d("family.x", "family", &[Withheld::OutgoingProfile]),
            d("reference.case_ref", "reference", &[]),
        ];
        assert_eq!(waiting_for_approval(&decisions), ["identity", "child"]);
    }
}
