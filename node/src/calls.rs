//! The admin calls. Each takes the caller and a typed request and returns a JSON document
//! (what `trm-admin --json` prints). Role checks and auditing happen in [`crate::admin`].

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;
use serde_json::{json, Value};
use trm_proto::admin::admin_request::Call;
use trm_proto::pb::{self, body::Payload, Category};
use trm_proto::signing::{self, Tag};
use trm_proto::{commit, template};

use crate::admin::{CallError, Caller, Role};
use crate::messages::{self, Outgoing};
use crate::node::Ctx;
use crate::store::{CaseRecord, FieldValue, Op, SentState};
use crate::time::format_ms;
use crate::tls::Pin;

/// What an admin call is about, for the audit log (ids and countries, never values).
pub fn target(call: &Call) -> String {
    match call {
        Call::PeerRemove(r) => r.country.clone(),
        Call::PeerRevoke(r) => r.country.clone(),
        Call::PeerTrust(r) => r.country.clone(),
        Call::OfficerAdd(r) => format!("{} ({})", r.name, r.role),
        Call::CaseShow(r) => r.id.clone(),
        Call::CaseTimeline(r) => r.id.clone(),
        Call::ReferralSend(r) => format!("{} -> {}", r.case_id, r.to),
        Call::ReferralPreview(r) => format!("{} -> {}", r.case_id, r.to),
        Call::MessageShow(r) => r.id.clone(),
        _ => String::new(),
    }
}

/// Runs one call.
pub async fn run(ctx: &Arc<Ctx>, caller: &Caller, call: Call) -> Result<Value, CallError> {
    match call {
        Call::Status(_) => status(ctx),
        Call::PeerAdd(r) => peer_add(ctx, &r.card).await,
        Call::PeerList(_) => Ok(json!({ "peers": peer_list(ctx) })),
        Call::PeerRemove(r) => peer_remove(ctx, &r.country).await,
        Call::PeerRevoke(r) => crate::trust::revoke(ctx, &r.country).await,
        Call::PeerTrust(r) => crate::trust::trust(ctx, &r.country).await,
        Call::OfficerAdd(r) => officer_add(ctx, &r.name, &r.role, &r.cert_der).await,
        Call::OfficerList(_) => officer_list(ctx),
        Call::CaseCreate(r) => case_create(ctx, caller, &r.json).await,
        Call::CaseList(_) => case_list(ctx),
        Call::CaseShow(r) => case_show(ctx, &r.id),
        Call::CaseTemplate(_) => Ok(json!({ "template": ctx.template.template_json() })),
        Call::ReferralPreview(r) => {
            let (_, decisions) = preview(ctx, &r.case_id, &r.to)?;
            Ok(json!({ "case": r.case_id, "to": r.to, "fields": decisions }))
        }
        Call::ReferralSend(r) => referral_send(ctx, caller, &r.case_id, &r.to).await,
        Call::Inbox(_) => inbox(ctx),
        Call::MessageShow(r) => message_show(ctx, &r.id),
        other => Err(CallError::msg(format!(
            "`{}` is not available on this node version",
            crate::admin::call_rules(&other).0
        ))),
    }
}

fn status(ctx: &Ctx) -> Result<Value, CallError> {
    let depths = ctx.store.outbox_depths()?;
    let now = ctx.clock.now_ms();
    let down_after = ctx.cfg.delivery.unreachable_after_secs as i64 * 1000;
    let peers: Vec<Value> = ctx
        .peers
        .all()
        .into_iter()
        .map(|p| {
            let cc = p.card.country().to_string();
            let h = ctx.peers.health(&cc);
            let (depth, oldest) = depths.get(&cc).copied().unwrap_or((0, 0));
            let (held, audit_log) = crate::trust::peer_json(ctx, &cc);
            let state = if let Some(held) = held {
                held
            } else if p.revoked {
                "revoked"
            } else if h.failing_since_ms != 0 {
                if now - h.failing_since_ms >= down_after || h.last_contact_ms == 0 {
                    "unreachable"
                } else {
                    "retrying"
                }
            } else if h.last_contact_ms != 0 {
                "reachable"
            } else {
                "no contact yet"
            };
            json!({
                "country": cc,
                "name": p.card.card.name,
                "state": state,
                "last_contact": format_ms(h.last_contact_ms),
                "last_contact_ms": h.last_contact_ms,
                "failing_since": format_ms(h.failing_since_ms),
                "last_error": h.last_error,
                "attempts": h.attempts,
                "outbox": depth,
                "oldest_pending": format_ms(if depth > 0 { oldest } else { 0 }),
                "audit_log": audit_log,
            })
        })
        .collect();
    Ok(json!({
        "country": ctx.cfg.country,
        "name": ctx.cfg.name,
        "peer_listen": ctx.peer_addr.to_string(),
        "admin_listen": ctx.admin_addr.to_string(),
        "signing_key": signing::fingerprint(&ctx.keys.public_key()),
        "tls_certificate": signing::fingerprint(&ctx.keys.tls_cert),
        "peers": peers,
        "outbox_total": depths.values().map(|d| d.0).sum::<u64>(),
        "received_total": ctx.store.received_count(),
        "audit_entries": ctx.store.audit_len(),
        "audit": crate::audit::status_json(ctx),
        "peer_log_inconsistent": ctx.metrics.total("peer_log_inconsistent"),
    }))
}

fn card_json(card: &trm_proto::card::VerifiedCard, revoked: bool) -> Value {
    json!({
        "country": card.country(),
        "name": card.card.name,
        "addresses": card.card.addresses,
        "signing_key": card.signing_fingerprint(),
        "tls_certificate": card.tls_fingerprint(),
        "acceptance": card.acceptance().iter().map(|c| template::category_name(*c)).collect::<Vec<_>>(),
        "valid_until": format_ms(card.card.valid_until_ms),
        "revoked": revoked,
    })
}

async fn peer_add(ctx: &Ctx, raw: &[u8]) -> Result<Value, CallError> {
    let card = trm_proto::card::verify_card(raw)
        .map_err(|e| CallError::msg(format!("identity card refused: {e}")))?;
    if card.country() == ctx.country() {
        return Err(CallError::msg("that is this node's own card"));
    }
    let rec = crate::peers::record(&card, ctx.clock.now_ms());
    ctx.store
        .commit(vec![
            Op::PutPeer(card.country().to_string(), rec),
            crate::trust::archive_card(&card),
        ])
        .await?;
    let out = card_json(&card, false);
    tracing::info!(peer = %card.country(), "peer pinned");
    ctx.peers.put(card, false);
    Ok(out)
}

fn peer_list(ctx: &Ctx) -> Vec<Value> {
    ctx.peers
        .all()
        .iter()
        .map(|p| card_json(&p.card, p.revoked))
        .collect()
}

async fn peer_remove(ctx: &Ctx, cc: &str) -> Result<Value, CallError> {
    if ctx.peers.get(cc).is_none() {
        return Err(CallError::msg(format!("unknown peer {cc}")));
    }
    ctx.store
        .commit(vec![Op::RemovePeer(cc.to_string())])
        .await?;
    ctx.peers.remove(cc);
    Ok(json!({ "removed": cc }))
}

async fn officer_add(
    ctx: &Ctx,
    name: &str,
    role: &str,
    cert_der: &[u8],
) -> Result<Value, CallError> {
    let role = Role::parse(role).ok_or_else(|| {
        CallError::msg(format!(
            "unknown role {role:?}: use operator, officer, supervisor or auditor"
        ))
    })?;
    if name.trim().is_empty() || name.len() > 64 {
        return Err(CallError::msg("officer name must be 1 to 64 characters"));
    }
    if rustls_pki_types::CertificateDer::from(cert_der).is_empty() {
        return Err(CallError::msg("no certificate"));
    }
    let fp = signing::sha256(cert_der);
    if ctx.store.officer(&fp)?.is_some() {
        return Err(CallError::msg("this certificate is already registered"));
    }
    let rec = crate::store::OfficerRecord {
        name: name.to_string(),
        role: role.name().to_string(),
        cert_der: cert_der.to_vec(),
        added_ms: ctx.clock.now_ms(),
    };
    ctx.store.commit(vec![Op::PutOfficer(fp, rec)]).await?;
    ctx.officer_pins.insert(
        cert_der,
        Pin {
            who: name.to_string(),
            not_before_ms: i64::MIN,
            not_after_ms: i64::MAX,
        },
    );
    Ok(json!({
        "name": name,
        "role": role.name(),
        "country": ctx.cfg.country,
        "node": ctx.admin_addr.to_string(),
        "node_cert_sha256": hex::encode(signing::sha256(&ctx.keys.tls_cert)),
    }))
}

fn officer_list(ctx: &Ctx) -> Result<Value, CallError> {
    let list: Vec<Value> = ctx
        .store
        .officers()?
        .into_iter()
        .map(|(fp, o)| {
            json!({ "name": o.name, "role": o.role, "certificate": signing::fingerprint(&o.cert_der),
                    "added": format_ms(o.added_ms), "id": hex::encode(&fp[..8]) })
        })
        .collect();
    Ok(json!({ "officers": list }))
}

async fn case_create(ctx: &Ctx, caller: &Caller, text: &str) -> Result<Value, CallError> {
    let case = ctx
        .template
        .parse_case(text)
        .map_err(|e| CallError::msg(format!("case refused: {e}")))?;
    let id = case
        .case_ref()
        .ok_or_else(|| CallError::msg("case refused: reference.case_ref is required"))?
        .to_string();
    if ctx.store.case(&id)?.is_some() {
        return Err(CallError::msg(format!(
            "a case with reference {id} already exists"
        )));
    }
    let fields: Vec<FieldValue> = case
        .committed_fields()
        .into_iter()
        .map(|(path, value)| FieldValue { path, value })
        .collect();
    let n = fields.len();
    let rec = CaseRecord {
        id: id.clone(),
        case_ref: id.clone(),
        created_ms: ctx.clock.now_ms(),
        created_by: caller.name.clone(),
        fields,
        origin_peer: String::new(),
    };
    ctx.store.commit(vec![Op::PutCase(rec)]).await?;
    Ok(json!({ "id": id, "fields": n }))
}

fn case_list(ctx: &Ctx) -> Result<Value, CallError> {
    let sent = ctx.store.sent_all()?;
    let cases: Vec<Value> = ctx
        .store
        .cases()?
        .into_iter()
        .map(|c| {
            let referrals: Vec<Value> = sent
                .iter()
                .filter(|s| s.case_id == c.id && s.kind == "referral")
                .map(|s| json!({ "to": s.peer, "state": SentState::from_u32(s.state).name() }))
                .collect();
            json!({ "id": c.id, "created": format_ms(c.created_ms), "created_by": c.created_by,
                    "fields": c.fields.len(), "referrals": referrals })
        })
        .collect();
    Ok(json!({ "cases": cases }))
}

/// Nests `path → value` pairs back into the case document shape.
pub fn fields_document(fields: impl IntoIterator<Item = (String, Value)>) -> Value {
    fn insert(map: &mut serde_json::Map<String, Value>, parts: &[&str], value: Value) {
        match parts {
            [] => {}
            [last] => {
                map.insert(last.to_string(), value);
            }
            [first, rest @ ..] => {
                let entry = map
                    .entry(first.to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(m) = entry {
                    insert(m, rest, value);
                }
            }
        }
    }
    let mut doc = serde_json::Map::new();
    for (path, value) in fields {
        let parts: Vec<&str> = path.split('.').collect();
        insert(&mut doc, &parts, value);
    }
    Value::Object(doc)
}

fn case_show(ctx: &Ctx, id: &str) -> Result<Value, CallError> {
    let c = ctx
        .store
        .case(id)?
        .ok_or_else(|| CallError::msg(format!("no case {id}")))?;
    let doc = fields_document(c.fields.iter().map(|f| {
        (
            f.path.clone(),
            serde_json::from_slice(&f.value).unwrap_or(Value::Null),
        )
    }));
    Ok(
        json!({ "id": c.id, "created": format_ms(c.created_ms), "created_by": c.created_by, "case": doc }),
    )
}

fn preview(
    ctx: &Ctx,
    case_id: &str,
    to: &str,
) -> Result<(CaseRecord, Vec<crate::policy::FieldDecision>), CallError> {
    let case = ctx
        .store
        .case(case_id)?
        .ok_or_else(|| CallError::msg(format!("no case {case_id}")))?;
    let peer = ctx
        .peers
        .get(to)
        .ok_or_else(|| CallError::msg(format!("unknown peer {to}: add its identity card first")))?;
    let approved: BTreeSet<Category> = BTreeSet::new();
    let decisions = crate::policy::decide(
        ctx,
        &ctx.template,
        &case,
        &peer.card.acceptance(),
        to,
        &approved,
    );
    Ok((case, decisions))
}

fn field_str(case: &CaseRecord, path: &str) -> Option<String> {
    case.fields
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| serde_json::from_slice::<Value>(&f.value).ok())
        .and_then(|v| v.as_str().map(str::to_string))
}

async fn referral_send(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    case_id: &str,
    to: &str,
) -> Result<Value, CallError> {
    let (case, decisions) = preview(ctx, case_id, to)?;
    let fields: Vec<(String, Vec<u8>)> = case
        .fields
        .iter()
        .map(|f| (f.path.clone(), f.value.clone()))
        .collect();
    let c = commit::commit(&fields, &mut rand::rngs::OsRng)
        .map_err(|e| CallError::msg(format!("cannot commit the case: {e}")))?;
    let released_paths: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d.released)
        .map(|d| d.path.as_str())
        .collect();
    let released: Vec<pb::FieldDisclosure> = c
        .disclosures
        .iter()
        .filter(|d| released_paths.contains(d.path.as_str()))
        .cloned()
        .collect();
    let extensions: Vec<pb::ExtensionField> = ctx
        .template
        .extensions()
        .iter()
        .filter(|e| case.fields.iter().any(|f| f.path == e.path()))
        .map(|e| e.to_pb())
        .collect();
    let urgency = match field_str(&case, "reference.urgency").as_deref() {
        Some("urgent") => pb::Urgency::Urgent,
        Some("emergency") => pb::Urgency::Emergency,
        _ => pb::Urgency::Routine,
    };
    let response_due_ms = field_str(&case, "reference.response_due")
        .and_then(|d| crate::time::parse_date_ms(&d))
        .unwrap_or(0);
    let payload = Payload::Referral(pb::Referral {
        template_version: template::TEMPLATE_VERSION.to_string(),
        digests: c.digests.iter().map(|d| d.to_vec()).collect(),
        extensions,
        urgency: urgency as i32,
        response_due_ms,
        phase: pb::Phase::Identification as i32,
    });
    let n_released = released.len();
    let id = messages::enqueue(
        ctx,
        Outgoing {
            to: to.to_string(),
            case_id: case.id.clone(),
            case_ref: case.case_ref.clone(),
            in_reply_to: vec![],
            payload,
            released,
            committed: c.disclosures,
            officer: caller.name.clone(),
        },
    )
    .await?;
    Ok(json!({
        "message": hex::encode(&id),
        "to": to,
        "case": case.id,
        "released": n_released,
        "withheld": decisions.len() - n_released,
        "state": "pending",
    }))
}

fn inbox(ctx: &Ctx) -> Result<Value, CallError> {
    let list: Vec<Value> = ctx
        .store
        .inbox()?
        .into_iter()
        .map(|r| {
            let fields = pb::Transmission::decode(r.transmission.as_slice())
                .map(|t| t.disclosures.len())
                .unwrap_or(0);
            json!({ "id": hex::encode(&r.id), "from": r.peer, "kind": r.kind, "case_ref": r.case_ref,
                    "received": format_ms(r.received_ms), "fields": fields })
        })
        .collect();
    Ok(json!({ "messages": list }))
}

/// Re-verifies a stored transmission: signature by the named key, valid for the sender at
/// the message's time, and every disclosure against the signed digests.
fn verify_stored(
    key_lookup: impl Fn(&[u8], i64) -> Option<ed25519_dalek::VerifyingKey>,
    t: &pb::Transmission,
) -> (Option<pb::Body>, Value) {
    let Some(env) = &t.envelope else {
        return (None, json!({ "signature": "missing envelope" }));
    };
    let body = pb::Body::decode(env.body.as_slice()).ok();
    let sig = match &body {
        None => "body does not decode".to_string(),
        Some(b) => match key_lookup(&env.signer, b.created_ms) {
            None => "signing key not valid for the sender".into(),
            Some(k) => match signing::verify(&k, Tag::Envelope, &env.body, &env.signature) {
                Ok(()) => "valid".into(),
                Err(e) => format!("INVALID: {e}"),
            },
        },
    };
    let digests: &[Vec<u8>] = match body.as_ref().and_then(|b| b.payload.as_ref()) {
        Some(Payload::Referral(r)) => &r.digests,
        Some(Payload::FollowUp(f)) => &f.digests,
        _ => &[],
    };
    let disc = if t.disclosures.is_empty() {
        "none".to_string()
    } else {
        match commit::verify_disclosures(digests, &t.disclosures) {
            Ok(()) => format!("all {} match signed digests", t.disclosures.len()),
            Err(e) => format!("INVALID: {e}"),
        }
    };
    (
        body,
        json!({ "signature": sig, "disclosures": disc,
                "envelope_hash": hex::encode(signing::envelope_hash(&env.body, &env.signature)) }),
    )
}

fn message_show(ctx: &Ctx, id_hex: &str) -> Result<Value, CallError> {
    let id = hex::decode(id_hex)
        .ok()
        .filter(|v| v.len() == 16)
        .ok_or_else(|| CallError::msg("message id must be 32 hex digits"))?;
    if let Some(s) = ctx.store.sent(&id)? {
        let t = pb::Transmission::decode(s.transmission.as_slice())?;
        let own = ctx.keys.history.clone();
        let (body, verification) =
            verify_stored(|k, t| trm_proto::card::key_valid_at(&own, k, t), &t);
        let answer = pb::Signed::decode(s.answer.as_slice()).ok();
        let answer_json = answer
            .map(|a| describe_answer(ctx, &s.peer, &a))
            .unwrap_or(Value::Null);
        return Ok(message_json(
            "sent",
            &s.peer,
            body,
            &t,
            verification,
            json!({
                "state": SentState::from_u32(s.state).name(),
                "answered": format_ms(s.answered_ms),
                "answer": answer_json,
            }),
        ));
    }
    for r in ctx.store.inbox()? {
        if r.id == id {
            let t = pb::Transmission::decode(r.transmission.as_slice())?;
            let peer = ctx.peers.get(&r.peer);
            let (body, verification) = verify_stored(
                |k, time| peer.as_ref().and_then(|p| p.card.key_valid_at(k, time)),
                &t,
            );
            return Ok(message_json(
                "received",
                &r.peer,
                body,
                &t,
                verification,
                json!({
                    "state": "stored",
                    "received": format_ms(r.received_ms),
                }),
            ));
        }
    }
    Err(CallError::msg(format!("no message {id_hex}")))
}

fn describe_answer(ctx: &Ctx, peer: &str, a: &pb::Signed) -> Value {
    // The key must have been valid when the answer was signed (not now: keys rotate).
    let key_at = |time_ms: i64| {
        ctx.peers.get(peer).and_then(|p| {
            trm_proto::card::key_valid_at(&p.card.card.key_history, &a.signer, time_ms)
        })
    };
    if let Ok(r) = pb::Receipt::decode(a.body.as_slice()) {
        let key_ok = key_at(r.received_ms);
        if r.receiver == peer {
            let valid = key_ok
                .is_some_and(|k| signing::verify(&k, Tag::Receipt, &a.body, &a.signature).is_ok());
            return json!({ "kind": "receipt", "received": format_ms(r.received_ms),
                           "signature": if valid { "valid" } else { "INVALID" } });
        }
    }
    if let Ok(r) = pb::Rejection::decode(a.body.as_slice()) {
        let valid = key_at(r.rejected_ms)
            .is_some_and(|k| signing::verify(&k, Tag::Rejection, &a.body, &a.signature).is_ok());
        return json!({ "kind": "rejection",
            "reason": pb::RejectReason::try_from(r.reason).map(|x| x.as_str_name()).unwrap_or("?"),
            "detail": r.detail, "fields": r.fields,
            "signature": if valid { "valid" } else { "INVALID" } });
    }
    json!({ "kind": "unreadable" })
}

fn message_json(
    direction: &str,
    peer: &str,
    body: Option<pb::Body>,
    t: &pb::Transmission,
    verification: Value,
    delivery: Value,
) -> Value {
    let fields = fields_document(t.disclosures.iter().map(|d| {
        (
            d.path.clone(),
            serde_json::from_slice(&d.value).unwrap_or(Value::Null),
        )
    }));
    let b = body.unwrap_or_default();
    json!({
        "id": hex::encode(&b.message_id),
        "direction": direction,
        "peer": peer,
        "kind": messages::kind_name(&b),
        "sender": b.sender,
        "recipient": b.recipient,
        "created": format_ms(b.created_ms),
        "case_ref": b.case_ref,
        "in_reply_to": hex::encode(&b.in_reply_to),
        "verification": verification,
        "delivery": delivery,
        "fields": fields,
    })
}
