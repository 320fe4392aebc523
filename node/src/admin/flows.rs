//! Admin calls that move a referral along after it was sent: supervisor approval, later
//! release of fields, acceptance and decline, follow-ups, information requests, closure,
//! consent changes and erasure, the case timeline, and the contact directory.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{json, Value};
use trm_admin_api::answers as a;
use trm_proto::admin as api;
use trm_proto::pb::{self, body::Payload, Category};
use trm_proto::template;

use crate::admin::calls::{self, load_case};
use crate::base::time::format_ms;
use crate::base::vocab::ThreadState;
use crate::base::vocab::{CallError, Caller};
use crate::referral::messages::{self, Outgoing};
use crate::state::ctx::Ctx;
use crate::store::{Op, SentRecord, ThreadRecord, ThreadRole};

fn parse_categories(names: &[String]) -> Result<Vec<Category>, CallError> {
    let mut out = Vec::new();
    for n in names
        .iter()
        .flat_map(|n| n.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let c = template::parse_category(n)
            .ok_or_else(|| CallError::msg(format!("unknown category {n:?}")))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

fn check_date(field: &str, d: &str) -> Result<(), CallError> {
    if d.is_empty() || crate::base::time::parse_date_ms(d).is_some() {
        Ok(())
    } else {
        Err(CallError::msg(format!(
            "{field}: expected a date YYYY-MM-DD"
        )))
    }
}

/// Resolves a referral named as `CASE/CC` (a local case and a peer) or by the id of the sent
/// referral message.
fn resolve_sent(ctx: &Ctx, referral: &str) -> Result<(String, String), CallError> {
    if let Some((case, cc)) = referral.split_once('/') {
        if ctx.store.case(case)?.is_none() {
            return Err(CallError::msg(format!("no case {case}")));
        }
        return Ok((case.to_string(), cc.to_string()));
    }
    let id = hex::decode(referral)
        .ok()
        .filter(|v| v.len() == 16)
        .ok_or_else(|| CallError::msg("name the referral as CASE_ID/CC or by its message id"))?;
    let s = ctx
        .store
        .sent(&id)?
        .filter(|s| s.kind == "referral")
        .ok_or_else(|| CallError::msg(format!("no referral {referral} sent from this node")))?;
    Ok((s.case_id, s.peer))
}

/// The open thread with `peer` about `case_ref`.
fn thread(ctx: &Ctx, peer: &str, case_ref: &str) -> Result<ThreadRecord, CallError> {
    ctx.store
        .thread(peer, case_ref)?
        .ok_or_else(|| CallError::msg(format!("no referral of case {case_ref} with {peer}")))
}

/// Resolves a received referral named as `CASE_REF/CC` or by its message id.
fn resolve_received(ctx: &Ctx, referral: &str) -> Result<ThreadRecord, CallError> {
    if let Some((case_ref, cc)) = referral.split_once('/') {
        return thread(ctx, cc, case_ref);
    }
    let id = hex::decode(referral)
        .ok()
        .filter(|v| v.len() == 16)
        .ok_or_else(|| CallError::msg(
            "name the referral by its message id, or by its case reference and the country that referred it (--from CC)",
        ))?;
    ctx.store
        .threads()?
        .into_iter()
        .find(|t| t.role() == Some(ThreadRole::Received) && t.referral_id == id)
        .ok_or_else(|| CallError::msg(format!("no referral {referral} received by this node")))
}

/// The referral an approval is for: a sent referral named by its message id, or `CASE/CC`:
/// the open (pending or accepted) referral of the case to CC, else the next one (empty id).
fn approval_target(ctx: &Ctx, referral: &str) -> Result<(String, String, Vec<u8>), CallError> {
    let (case_id, peer) = resolve_sent(ctx, referral)?;
    if !referral.contains('/') {
        let id = hex::decode(referral).unwrap_or_default();
        return Ok((case_id, peer, id));
    }
    let case_ref = ctx.store.case(&case_id)?.unwrap_or_default().case_ref;
    let open = ctx
        .store
        .thread(&peer, &case_ref)?
        .filter(|t| t.role() == Some(ThreadRole::Sent))
        .filter(|t| {
            matches!(
                t.state(),
                Some(ThreadState::Pending | ThreadState::Accepted)
            )
        });
    Ok((
        case_id,
        peer,
        open.map(|t| t.referral_id).unwrap_or_default(),
    ))
}

/// `referral approve`: a supervisor approves sensitive categories for one referral. Grants
/// accumulate (another supervisor's approval adds to the first); approving a category the
/// outgoing profile blocks for the peer warns, naming the profile's node.toml line.
pub async fn approve(
    ctx: &Ctx,
    caller: &Caller,
    referral: &str,
    categories: &[String],
) -> Result<a::Approved, CallError> {
    let (case_id, peer, referral_id) = approval_target(ctx, referral)?;
    let cats = parse_categories(categories)?;
    if cats.is_empty() {
        return Err(CallError::msg(
            "name at least one category (--categories identity,health)",
        ));
    }
    if let Some(c) = cats.iter().find(|c| !template::is_personal(**c)) {
        return Err(CallError::msg(format!(
            "{} is not a sensitive category; only identity, family, health and child need approval",
            template::category_name(*c)
        )));
    }
    let bound = (!referral_id.is_empty()).then_some(referral_id.as_slice());
    let mut rec = ctx
        .store
        .approval_of(&case_id, &peer, bound)?
        .unwrap_or_default();
    rec.referral_id.clone_from(&referral_id);
    let now = ctx.clock.now_ms();
    for c in &cats {
        rec.grant(*c as i32, &caller.name, now);
    }
    let outgoing = ctx.outgoing_for(&peer);
    let warnings = cats
        .iter()
        .filter(|c| !outgoing.contains(c))
        .map(|c| {
            format!(
                "{}: the outgoing profile for {peer} (node.toml `{}`) does not release it; the approval has no effect while it does not",
                template::category_name(*c),
                ctx.outgoing_profile().key_for(&peer)
            )
        })
        .collect();
    ctx.store
        .commit(vec![Op::PutApproval(
            case_id.clone(),
            peer.clone(),
            rec.clone(),
        )])
        .await?;
    let waiting = crate::admin::queue::waiting_categories(ctx, &case_id, &peer, bound).await?;
    let view = crate::admin::queue::approval_view(&case_id, &peer, &rec);
    let mut approved: Vec<String> = view.granted.iter().map(|g| g.category.clone()).collect();
    approved.dedup();
    approved.sort();
    approved.dedup();
    Ok(a::Approved {
        case: case_id,
        to: peer,
        referral: view.referral,
        approved,
        granted: view.granted,
        supervisor: caller.name.clone(),
        waiting,
        warnings,
    })
}

fn latest_referral(ctx: &Ctx, case_id: &str, peer: &str) -> Result<SentRecord, CallError> {
    ctx.store
        .sent_all()?
        .into_iter()
        .filter(|s| s.case_id == case_id && s.peer == peer && s.kind == "referral")
        .max_by_key(|s| s.created_ms)
        .ok_or_else(|| CallError::msg(format!("case {case_id} was not referred to {peer}")))
}

/// A follow-up's updated template fields (a partial case as JSON; none when empty).
fn follow_up_fields(ctx: &Ctx, json: &str) -> Result<Vec<pb::FieldDisclosure>, CallError> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Value =
        serde_json::from_str(json).map_err(|e| CallError::msg(format!("fields: not JSON: {e}")))?;
    let mut pairs = Vec::new();
    flatten(&doc, "", &mut pairs);
    let case = template::Case::from_fields(&ctx.template, pairs)
        .map_err(|e| CallError::msg(format!("fields refused: {e}")))?;
    Ok(calls::case_disclosures(&case))
}

/// Paths already released to `peer` about `case_id`: by the referral `referral_id` and by
/// every disclosure after it.
async fn released_paths(
    ctx: &Ctx,
    case_id: &str,
    peer: &str,
    referral_id: &[u8],
) -> Result<BTreeSet<String>, CallError> {
    use crate::store::casedata::{open_sent, SentPart};
    let mut already = BTreeSet::new();
    for s in ctx.store.sent_all()? {
        if s.case_id == case_id && s.peer == peer && (s.id == referral_id || s.kind == "disclosure")
        {
            for d in open_sent(&ctx.vault, &s, SentPart::Released).await? {
                already.insert(d.path);
            }
        }
    }
    Ok(already)
}

/// `referral disclose`: releases more fields of a sent referral, verifiable against its
/// original digests, if the rules now allow them.
pub async fn disclose(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    referral: &str,
    fields: &[String],
    categories: &[String],
) -> Result<a::Disclosed, CallError> {
    let (case_id, peer) = resolve_sent(ctx, referral)?;
    let sent = latest_referral(ctx, &case_id, &peer)?;
    use crate::store::casedata::{open_sent, SentPart};
    let committed = open_sent(&ctx.vault, &sent, SentPart::Committed).await?;
    let already = released_paths(ctx, &case_id, &peer, &sent.id).await?;
    let cats = parse_categories(categories)?;
    let wanted = named_fields(&ctx.template, &committed, fields, &cats);
    if wanted.is_empty() {
        return Err(CallError::msg(
            "none of the named fields is in the referral",
        ));
    }
    // Four eyes against the caller who releases now (and the case's creator), not the
    // original sender.
    let (_, decisions) = calls::preview(ctx, &case_id, &peer, Some(&sent.id), &caller.name).await?;
    let allowed: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d.released)
        .map(|d| d.path.as_str())
        .collect();
    let mut release = Vec::new();
    let mut refused = Vec::new();
    for d in wanted {
        if already.contains(&d.path) {
            continue;
        }
        if allowed.contains(d.path.as_str()) {
            release.push(d.clone());
        } else {
            refused.push(d.path.clone());
        }
    }
    if release.is_empty() {
        return Err(CallError::msg(format!(
            "nothing to release: {} field(s) still withheld (see `referral preview {case_id} --to {peer}`)",
            refused.len()
        )));
    }
    let n = release.len();
    let case = ctx.store.case(&case_id)?.unwrap_or_default();
    let id = messages::enqueue(
        ctx,
        Outgoing {
            to: peer.clone(),
            case_id: case_id.clone(),
            case_ref: case.case_ref,
            in_reply_to: sent.id.clone(),
            payload: Payload::Disclosure(pb::Disclosure {
                referral_id: sent.id.clone(),
            }),
            released: release,
            committed: vec![],
            officer: caller.name.clone(),
        },
    )
    .await?;
    Ok(a::Disclosed {
        message: hex::encode(id),
        to: peer.to_string(),
        case: case_id.to_string(),
        released: n as u64,
        still_withheld: refused,
    })
}

/// The committed fields an officer named, by path (`fields`, comma-separated allowed) or by
/// category.
fn named_fields<'a>(
    template: &trm_proto::template::Template,
    committed: &'a [pb::FieldDisclosure],
    fields: &[String],
    cats: &[Category],
) -> Vec<&'a pb::FieldDisclosure> {
    committed
        .iter()
        .filter(|d| {
            fields
                .iter()
                .flat_map(|f| f.split(','))
                .any(|f| f.trim() == d.path)
                || template
                    .category_of(&d.path)
                    .is_some_and(|c| cats.contains(&c))
        })
        .collect()
}

/// `referral accept|decline`.
pub async fn answer(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    r: api::ReferralAnswer,
) -> Result<a::Enqueued, CallError> {
    // Declining an information request (named by its message id).
    if let Some(req) = hex::decode(&r.referral)
        .ok()
        .and_then(|id| ctx.store.inbox().ok()?.into_iter().find(|m| m.id == id))
        .filter(|m| m.kind == "information_request")
    {
        if !r.decline {
            return Err(CallError::msg(
                "answer an information request with `followup send --in-reply-to`, or decline it",
            ));
        }
        if r.reason.trim().is_empty() {
            return Err(CallError::msg("a decline needs a reason (--reason)"));
        }
        let payload = Payload::Decline(pb::Decline { reason: r.reason });
        return send_plain(ctx, caller, &req.peer, "", &req.case_ref, req.id, payload).await;
    }
    let t = resolve_received(ctx, &r.referral)?;
    let payload = if r.decline {
        if r.reason.trim().is_empty() {
            return Err(CallError::msg("a decline needs a reason (--reason)"));
        }
        Payload::Decline(pb::Decline { reason: r.reason })
    } else {
        if r.responsible_institution.trim().is_empty() {
            return Err(CallError::msg(
                "an acceptance names the responsible institution (--institution)",
            ));
        }
        Payload::Acceptance(pb::Acceptance {
            responsible_institution: r.responsible_institution,
            focal_point: r.focal_point,
        })
    };
    send_plain(
        ctx,
        caller,
        &t.peer,
        "",
        &t.case_ref,
        t.referral_id.clone(),
        payload,
    )
    .await
}

async fn send_plain(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    to: &str,
    case_id: &str,
    case_ref: &str,
    in_reply_to: Vec<u8>,
    payload: Payload,
) -> Result<a::Enqueued, CallError> {
    let kind = messages::kind_name(&pb::Body {
        payload: Some(payload.clone()),
        ..Default::default()
    });
    let id = messages::enqueue(
        ctx,
        Outgoing {
            to: to.to_string(),
            case_id: case_id.to_string(),
            case_ref: case_ref.to_string(),
            in_reply_to,
            payload,
            released: vec![],
            committed: vec![],
            officer: caller.name.clone(),
        },
    )
    .await?;
    Ok(a::Enqueued {
        message: hex::encode(id),
        to: to.to_string(),
        case: case_ref.to_string(),
        kind: kind.to_string(),
        state: "pending".into(),
    })
}

/// The case id for local-case scoped data, and the consent records that govern release.
async fn consent_source(
    ctx: &Ctx,
    peer: &str,
    case_ref: &str,
) -> Result<(String, Vec<pb::FieldDisclosure>), CallError> {
    if ctx.store.case(case_ref)?.is_some() {
        let (c, fields) = load_case(ctx, case_ref).await?;
        return Ok((c.id, fields));
    }
    Ok((
        String::new(),
        calls::received_with_withdrawals(ctx, peer, case_ref).await?,
    ))
}

/// What a follow-up to `r.to` would carry: its thread, the local case id ("" for a case
/// received), the fields and every field's decision, under the same rules as a referral.
async fn follow_up_decisions(
    ctx: &Ctx,
    caller: &Caller,
    r: &api::FollowUpSend,
) -> Result<FollowUpPlan, CallError> {
    crate::referral::lifecycle::parse_phase(&r.phase).ok_or_else(|| {
        CallError::msg("phase must be identification, first_assistance, long_term_assistance, return or proceedings")
    })?;
    check_date("date", &r.date)?;
    let t = thread(ctx, &r.to, &r.case_id)?;
    let (case_id, consent) = consent_source(ctx, &r.to, &t.case_ref).await?;
    let fields = follow_up_fields(ctx, &r.fields_json)?;
    let peer = ctx
        .peers
        .get(&r.to)
        .ok_or_else(|| CallError::msg(format!("unknown peer {}", r.to)))?;
    let approved = if case_id.is_empty() {
        BTreeSet::new()
    } else {
        calls::approved_for(ctx, &case_id, &r.to, Some(&t.referral_id), &caller.name)?
    };
    let decisions = crate::referral::policy::decide(
        &ctx.template,
        &fields,
        &consent,
        &peer.card.acceptance(),
        &ctx.outgoing_for(&r.to),
        &approved,
    );
    Ok(FollowUpPlan {
        thread: t,
        case_id,
        fields,
        decisions,
    })
}

/// What [`follow_up_decisions`] found.
struct FollowUpPlan {
    thread: ThreadRecord,
    case_id: String,
    fields: Vec<pb::FieldDisclosure>,
    decisions: Vec<crate::referral::policy::FieldDecision>,
}

/// `followup preview`: what `followup send` with the same options would release, and every
/// withheld field with its rules. Sends nothing.
pub async fn follow_up_preview(
    ctx: &Ctx,
    caller: &Caller,
    r: api::FollowUpSend,
) -> Result<a::Preview, CallError> {
    let plan = follow_up_decisions(ctx, caller, &r).await?;
    Ok(a::Preview {
        case: plan.thread.case_ref,
        to: r.to,
        fields: plan.decisions.iter().map(calls::decision).collect(),
        warnings: Vec::new(),
    })
}

/// The id of the information request a follow-up answers: one received from `peer` about
/// `case_ref` (empty: none).
fn reply_target(ctx: &Ctx, r: &api::FollowUpSend, case_ref: &str) -> Result<Vec<u8>, CallError> {
    if r.in_reply_to.is_empty() {
        return Ok(vec![]);
    }
    let id = hex::decode(&r.in_reply_to)
        .ok()
        .filter(|v| v.len() == 16)
        .ok_or_else(|| CallError::msg("--in-reply-to must be a message id (32 hex digits)"))?;
    ctx.store
        .received(&r.to, &id)?
        .filter(|m| m.kind == "information_request" && m.case_ref == case_ref)
        .ok_or_else(|| {
            CallError::msg(format!(
                "--in-reply-to: no information request {} from {} about {case_ref}",
                r.in_reply_to, r.to
            ))
        })?;
    Ok(id)
}

/// `followup send`: progress in one TRM phase, with updated template fields released under
/// the same rules as a referral; `in_reply_to` names the information request it answers.
pub async fn follow_up(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    r: api::FollowUpSend,
) -> Result<a::FollowUpSent, CallError> {
    let plan = follow_up_decisions(ctx, caller, &r).await?;
    let phase = crate::referral::lifecycle::parse_phase(&r.phase).unwrap_or_default();
    let (t, fields, decisions) = (plan.thread, plan.fields, plan.decisions);
    let in_reply_to = reply_target(ctx, &r, &t.case_ref)?;
    let (c, released) = crate::referral::policy::commit_and_release(&fields, &decisions)
        .map_err(|e| CallError::msg(format!("cannot commit the fields: {e}")))?;
    let n = released.len();
    let id = messages::enqueue(
        ctx,
        Outgoing {
            to: r.to.clone(),
            case_id: plan.case_id.clone(),
            case_ref: t.case_ref.clone(),
            in_reply_to,
            payload: Payload::FollowUp(pb::FollowUp {
                phase: phase as i32,
                status: r.status.clone(),
                date: r.date,
                digests: c.digest_bytes(),
                extensions: ctx
                    .template
                    .extensions()
                    .iter()
                    .filter(|e| fields.iter().any(|f| f.path == e.path()))
                    .map(|e| e.to_pb())
                    .collect(),
            }),
            released,
            committed: c.disclosures,
            officer: caller.name.clone(),
        },
    )
    .await?;
    let own = crate::admin::current::OwnFollowUp {
        message: &id,
        phase: &r.phase,
        status: &r.status,
        fields: &fields,
    };
    crate::admin::current::record_own_follow_up(ctx, caller, &plan.case_id, own).await?;
    Ok(a::FollowUpSent {
        message: hex::encode(id),
        to: r.to,
        case: t.case_ref,
        kind: "follow_up".into(),
        released: n as u64,
        withheld: (decisions.len() - n) as u64,
        withheld_fields: decisions
            .iter()
            .filter(|d| !d.released)
            .map(calls::decision)
            .collect(),
    })
}

fn flatten(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m)
            if prefix.matches('.').count() < 1
                || prefix.starts_with("ext") && prefix.matches('.').count() < 2 =>
        {
            for (k, x) in m {
                if k.starts_with("//") {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(x, &p, out);
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// `info request`: asks the other country for fields or categories, with a purpose.
pub async fn info_request(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    r: api::InfoRequest,
) -> Result<a::Enqueued, CallError> {
    if r.purpose.trim().is_empty() {
        return Err(CallError::msg(
            "an information request states its purpose (--purpose)",
        ));
    }
    let cats = parse_categories(&r.categories)?;
    for f in &r.fields {
        if ctx.template.field(f).is_none() {
            return Err(CallError::msg(format!("unknown field {f}")));
        }
    }
    let t = thread(ctx, &r.to, &r.case_id)?;
    let payload = Payload::InformationRequest(pb::InformationRequest {
        fields: r.fields,
        categories: cats.into_iter().map(|c| c as i32).collect(),
        purpose: r.purpose,
    });
    let case_id = if ctx.store.case(&t.case_ref)?.is_some() {
        t.case_ref.clone()
    } else {
        String::new()
    };
    send_plain(ctx, caller, &r.to, &case_id, &t.case_ref, vec![], payload).await
}

/// `case close`.
pub async fn close(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    r: api::CaseClose,
) -> Result<a::Enqueued, CallError> {
    let outcome = crate::referral::lifecycle::parse_outcome(&r.outcome).ok_or_else(|| {
        CallError::msg("outcome must be returned_reintegrating, staying_in_destination, transferred, contact_lost or other")
    })?;
    check_date("date", &r.date)?;
    let t = thread(ctx, &r.to, &r.case_id)?;
    let case_id = if ctx.store.case(&t.case_ref)?.is_some() {
        t.case_ref.clone()
    } else {
        String::new()
    };
    let payload = Payload::Closure(pb::Closure {
        outcome: outcome as i32,
        date: r.date,
    });
    send_plain(ctx, caller, &r.to, &case_id, &t.case_ref, vec![], payload).await
}

/// A one-line summary of a message's payload: never a case field value.
pub fn summary(b: &pb::Body) -> String {
    let cats = |v: &[i32]| {
        v.iter()
            .filter_map(|c| Category::try_from(*c).ok())
            .map(template::category_name)
            .collect::<Vec<_>>()
            .join(",")
    };
    match &b.payload {
        Some(Payload::Referral(r)) => format!(
            "referral, urgency {}, {}",
            pb::Urgency::try_from(r.urgency)
                .map(|u| u.as_str_name().to_ascii_lowercase())
                .unwrap_or_default(),
            if r.response_due_ms == 0 {
                "no response date".to_string()
            } else {
                format!("response due {}", format_ms(r.response_due_ms))
            }
        ),
        Some(Payload::Acceptance(a)) if a.focal_point.is_empty() => {
            format!("accepted by {}", a.responsible_institution)
        }
        Some(Payload::Acceptance(a)) => format!(
            "accepted by {} (focal point: {})",
            a.responsible_institution, a.focal_point
        ),
        Some(Payload::Decline(d)) => format!("declined: {}", d.reason),
        Some(Payload::FollowUp(f)) => {
            let dated = if f.date.is_empty() {
                "undated".to_string()
            } else {
                f.date.clone()
            };
            let status = if f.status.is_empty() {
                "no status text"
            } else {
                &f.status
            };
            format!(
                "{}: {status} ({dated})",
                crate::referral::lifecycle::phase_name(f.phase),
            )
        }
        Some(Payload::InformationRequest(i)) => format!(
            "asks for {} {} — purpose: {}",
            i.fields.join(","),
            cats(&i.categories),
            i.purpose
        ),
        Some(Payload::Disclosure(_)) => "later release of fields of the referral".into(),
        Some(Payload::ErasureRequest(e)) => {
            format!("asks to erase {} ({})", cats(&e.categories), e.reason)
        }
        Some(Payload::ErasureConfirmation(e)) => {
            format!("confirms erasure of {}", cats(&e.categories))
        }
        Some(Payload::Closure(c)) => format!(
            "closed: {}{}",
            pb::ClosureOutcome::try_from(c.outcome)
                .map(|o| o.as_str_name().to_ascii_lowercase())
                .unwrap_or_default(),
            if c.date.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.date)
            }
        ),
        Some(Payload::DirectoryUpdate(_)) => "directory update".into(),
        Some(Payload::KeyAnnouncement(_)) => "key announcement".into(),
        None => String::new(),
    }
}

/// `case timeline`: the whole exchange about a case in both directions, in order.
pub async fn timeline(ctx: &Ctx, id: &str) -> Result<a::Timeline, CallError> {
    let mut items: Vec<a::MessageView> = Vec::new();
    for s in ctx.store.sent_all()? {
        let env_case = calls::referral_case_ref(&s.envelope);
        if s.case_id == id || env_case.as_deref() == Some(id) {
            items.push(calls::sent_view(ctx, &s).await?);
        }
    }
    for r in ctx.store.inbox()? {
        if r.case_ref == id {
            items.push(calls::received_view(ctx, &r).await?);
        }
    }
    if items.is_empty() && ctx.store.case(id)?.is_none() {
        return Err(CallError::msg(format!("no case {id}")));
    }
    items.sort_by_key(|v| v.created_ms);
    crate::admin::queue::mark_answers(&mut items);
    let threads: Vec<a::Thread> = ctx
        .store
        .threads()?
        .iter()
        .filter(|t| t.case_ref == id)
        .map(|t| calls::thread_json(ctx, t))
        .collect();
    let records: Vec<ThreadRecord> = ctx
        .store
        .threads()?
        .into_iter()
        .filter(|t| t.case_ref == id)
        .collect();
    let versions = ctx
        .store
        .case(id)?
        .map(|c| crate::admin::current::later_versions(&c))
        .unwrap_or_default();
    Ok(a::Timeline {
        case: id.to_string(),
        threads,
        messages: items,
        reopened: crate::admin::current::reopenings(&records),
        versions,
    })
}

/// `case consent`: records consent given or withdrawn; a withdrawal erases the category here
/// and asks every country that received it to erase it too.
pub async fn consent(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    r: api::CaseConsent,
) -> Result<a::Consent, CallError> {
    let (cat, give) = consent_change(&r)?;
    let (case, mut fields) = load_case(ctx, &r.case_id).await?;
    let child = template::is_child(|p| {
        fields
            .iter()
            .find(|f| f.path == p)
            .and_then(|f| serde_json::from_slice(&f.value).ok())
    });
    let by = consent_by(&r.by, child)?;
    if !matches!(r.form.as_str(), "" | "written" | "oral") {
        return Err(CallError::msg("--form must be written or oral"));
    }
    let today = format_ms(ctx.clock.now_ms())[..10].to_string();
    let path = format!("consent.{}", template::category_name(cat));
    let record = ConsentChange {
        give,
        today: &today,
        by,
        form: &r.form,
    };
    let value = consent_value(&fields, &path, &record);
    ctx.template
        .parse_field_value(&path, &value)
        .map_err(|e| CallError::msg(format!("{path}: {}", e.reason)))?;
    let old = fields.clone();
    fields.retain(|f| f.path != path);
    fields.push(pb::FieldDisclosure {
        path: path.clone(),
        salt: vec![],
        value,
    });
    crate::admin::current::consent_version(ctx, caller, &case, (&old, &fields), &path).await?;
    let warnings = consent_warnings(child, by);
    if give {
        return Ok(a::Consent {
            case: case.id,
            consent: template::category_name(cat).into(),
            status: "given".into(),
            by: Some(by.into()),
            warnings,
            ..Default::default()
        });
    }
    let informed =
        crate::referral::erasure::erase_case(ctx, &case.id, &[cat as i32], "consent_withdrawn")
            .await?;
    let requests = crate::referral::erasure::request_erasure(
        ctx,
        &case.case_ref,
        &case.id,
        &[cat as i32],
        "consent_withdrawn",
        informed,
        &caller.name,
    )
    .await;
    Ok(a::Consent {
        case: case.id,
        consent: template::category_name(cat).into(),
        status: "withdrawn".into(),
        by: Some(by.into()),
        erased: Some(template::category_name(cat).into()),
        erasure_requests: Some(requests),
        warnings,
        recorded_by: Some(caller.name.clone()),
    })
}

/// The category of a `case consent` call and whether consent is given (else withdrawn, which
/// must be confirmed).
fn consent_change(r: &api::CaseConsent) -> Result<(Category, bool), CallError> {
    let (name, give) = match (r.withdraw.is_empty(), r.give.is_empty()) {
        (false, true) => (&r.withdraw, false),
        (true, false) => (&r.give, true),
        _ => {
            return Err(CallError::msg(
                "use exactly one of --withdraw CATEGORY or --give CATEGORY",
            ))
        }
    };
    let cat = template::parse_category(name)
        .ok_or_else(|| CallError::msg(format!("unknown category {name:?}")))?;
    if !give && !r.confirmed {
        return Err(CallError::msg(
            "withdrawing consent erases the category at once, here and at every partner: confirm it (--yes)",
        ));
    }
    Ok((cat, give))
}

/// Who gave or withdrew consent (`--by`): as given, else the guardian on a child case and
/// the person otherwise.
fn consent_by(by: &str, child: bool) -> Result<&'static str, CallError> {
    match by {
        "" if child => Ok("guardian"),
        "" | "person" => Ok("person"),
        "guardian" => Ok("guardian"),
        _ => Err(CallError::msg("--by must be person or guardian")),
    }
}

/// `--by person` on a child case is recorded as said (a child old enough may consent under
/// national law), with a warning that the guardian's consent is the rule.
fn consent_warnings(child: bool, by: &str) -> Vec<a::Warning> {
    if child && by == "person" {
        vec![a::Warning {
            code: "child_consent_by_person".into(),
            text: "child case: recorded as given by the child (--by person); the guardian's \
                   consent is the rule unless national law lets the child decide"
                .into(),
        }]
    } else {
        Vec::new()
    }
}

/// A consent change to record: given (replacing the record) or withdrawn.
struct ConsentChange<'a> {
    give: bool,
    today: &'a str,
    /// `person` or `guardian`: who gave it, or who withdrew it.
    by: &'a str,
    /// `written`, `oral` or empty (not recorded).
    form: &'a str,
}

/// The consent record at `path` after consent is given (replacing it: status, date, by, form)
/// or withdrawn (dated, with who withdrew it, keeping what was given), as canonical bytes.
fn consent_value(fields: &[pb::FieldDisclosure], path: &str, c: &ConsentChange) -> Vec<u8> {
    let mut record = fields
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| serde_json::from_slice::<Value>(&f.value).ok())
        .unwrap_or_else(|| json!({}));
    if c.give {
        record = json!({ "status": "given", "date": c.today, "by": c.by });
        if !c.form.is_empty() {
            record["form"] = json!(c.form);
        }
    } else {
        record["withdrawn"] = json!(c.today);
        record["withdrawn_by"] = json!(c.by);
        if record.get("status").is_none() {
            record["status"] = json!("given");
        }
    }
    template::canonical_json(&record)
}

/// `directory edit`: replaces this node's own contact entries (not yet published).
pub async fn directory_edit(ctx: &Ctx, text: &str) -> Result<a::DirectoryEdited, CallError> {
    let contacts = crate::federation::directory::parse_edit(text).map_err(CallError::msg)?;
    let old = crate::federation::directory::own(ctx);
    let d = pb::Directory {
        country: ctx.country().to_string(),
        version: old.map_or(0, |o| o.version),
        published_ms: 0,
        contacts,
    };
    let n = d.contacts.len();
    ctx.store
        .commit(vec![Op::PutMeta(
            crate::federation::directory::OWN_KEY.into(),
            prost::Message::encode_to_vec(&d),
        )])
        .await?;
    Ok(a::DirectoryEdited {
        entries: n as u64,
        published: false,
    })
}

/// `directory publish`: signs a new version and sends it to every peer.
pub async fn directory_publish(
    ctx: &Arc<Ctx>,
    caller: &Caller,
) -> Result<a::DirectoryPublished, CallError> {
    let mut d = crate::federation::directory::own(ctx)
        .ok_or_else(|| CallError::msg("edit the directory first (`directory edit --file`)"))?;
    d.version += 1;
    d.published_ms = ctx.clock.now_ms();
    let signed = crate::federation::directory::sign_own(ctx, &d);
    ctx.store
        .commit(vec![Op::PutMeta(
            crate::federation::directory::OWN_KEY.into(),
            prost::Message::encode_to_vec(&d),
        )])
        .await?;
    let mut sent = Vec::new();
    for p in ctx.peers.all().into_iter().filter(|p| !p.revoked) {
        let cc = p.card.country().to_string();
        let id = messages::enqueue(
            ctx,
            Outgoing {
                to: cc.clone(),
                case_id: String::new(),
                case_ref: String::new(),
                in_reply_to: vec![],
                payload: Payload::DirectoryUpdate(pb::DirectoryUpdate {
                    directory: Some(signed.clone()),
                }),
                released: vec![],
                committed: vec![],
                officer: caller.name.clone(),
            },
        )
        .await?;
        sent.push(a::SentTo {
            to: cc,
            message: hex::encode(id),
        });
    }
    Ok(a::DirectoryPublished {
        version: d.version,
        sent,
    })
}
