//! The admin calls. Each takes the caller and a typed request and returns a JSON document
//! (what `trm-admin --json` prints). Role checks and auditing happen in [`crate::admin`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use prost::Message;
use serde_json::Value;
use trm_admin_api::answers as a;
use trm_proto::admin::admin_request::Call;
use trm_proto::card::VerifiedCard;
use trm_proto::pb::{self, body::Payload, Category};
use trm_proto::signing::{self, Tag};
use trm_proto::{commit, template};

use crate::admin::{current, CallError, Caller, Role};
use crate::base::metrics::Counter;
use crate::base::time::format_ms;
use crate::net::tls::Pin;
use crate::referral::messages::{self, Outgoing};
use crate::state::ctx::Ctx;
use crate::state::peers::{Agreement, Peer};
use crate::store::{
    CaseRecord, Op, ReceivedRecord, SentRecord, SentState, ThreadRecord, ThreadRole,
};

/// What an admin call that names no case is about, for the audit log (ids and countries,
/// never values); calls that name a case: [`crate::admin::records::case_target`].
pub fn target(call: &Call) -> String {
    match call {
        Call::PeerAdd(r) => {
            trm_proto::audit::peer_add_target(&card_country(&r.card), &r.card, false)
        }
        Call::PeerReplace(r) => {
            trm_proto::audit::peer_add_target(&card_country(&r.card), &r.card, true)
        }
        Call::OfficerRevoke(r) => r.name.clone(),
        Call::PeerRemove(r) => r.country.clone(),
        Call::PeerRevoke(r) => r.country.clone(),
        Call::PeerTrust(r) => r.country.clone(),
        Call::OfficerAdd(r) => format!("{} ({})", r.name, r.role),
        Call::CaseShow(r) => r.id.clone(),
        Call::CaseTimeline(r) => r.id.clone(),
        Call::CaseUpdate(r) => r.id.clone(),
        Call::CaseReopen(r) => format!("{} -> {}", r.case_id, r.to),
        Call::ReferralSend(r) => format!("{} -> {}", r.case_id, r.to),
        Call::ReferralPreview(r) => format!("{} -> {}", r.case_id, r.to),
        Call::MessageShow(r) => r.id.clone(),
        Call::PolicyShow(r) => r.to.clone(),
        Call::FollowUpPreview(r) => r
            .request
            .as_ref()
            .map(|f| format!("{} -> {}", f.case_id, f.to))
            .unwrap_or_default(),
        Call::Backup(r) if r.include_keys => "with private keys".into(),
        Call::Stats(r) => format!("from {} to {}", or_open(&r.from), or_open(&r.to)),
        _ => String::new(),
    }
}

/// A date bound as logged: `open` when empty.
fn or_open(d: &str) -> &str {
    if d.is_empty() {
        "open"
    } else {
        d
    }
}

fn card_country(raw: &[u8]) -> String {
    trm_proto::card::verify_card(raw)
        .map(|c| c.country().to_string())
        .unwrap_or_default()
}

/// A typed answer as the JSON document sent (`trm_admin_api::answers`).
fn doc<T: serde::Serialize>(answer: T) -> Result<Value, CallError> {
    Ok(serde_json::to_value(answer)?)
}

/// Runs one call; each handler returns its call's answer type.
pub async fn run(ctx: &Arc<Ctx>, caller: &Caller, call: Call) -> Result<Value, CallError> {
    use crate::admin::flows;
    match call {
        Call::Status(_) => doc(status(ctx)?),
        Call::PeerAdd(r) => {
            doc(peer_add(ctx, &r.card, (&r.agreement, &r.legal_basis), false).await?)
        }
        Call::PeerReplace(r) => {
            doc(peer_add(ctx, &r.card, (&r.agreement, &r.legal_basis), true).await?)
        }
        Call::PeerList(_) => doc(a::PeerList {
            peers: peer_list(ctx),
        }),
        Call::PeerRemove(r) => doc(peer_remove(ctx, &r.country).await?),
        Call::PeerRevoke(r) => doc(crate::federation::trust::revoke(ctx, &r.country).await?),
        Call::PeerTrust(r) => doc(crate::federation::trust::trust(ctx, &r.country).await?),
        Call::OfficerAdd(r) => doc(officer_add(ctx, &r.name, &r.role, &r.cert_der).await?),
        Call::OfficerList(_) => doc(officer_list(ctx)?),
        Call::OfficerRevoke(r) => doc(officer_revoke(ctx, caller, &r.name).await?),
        Call::CaseCreate(r) => doc(case_create(ctx, caller, &r.json).await?),
        Call::CaseList(_) => doc(case_list(ctx)?),
        Call::CaseShow(r) => doc(case_show(ctx, &r.id).await?),
        Call::CaseTemplate(_) => doc(case_template(ctx)),
        Call::ReferralPreview(r) => {
            let ((_, fields), decisions) =
                preview(ctx, &r.case_id, &r.to, None, &caller.name).await?;
            doc(a::Preview {
                warnings: send_warnings(ctx, &fields, &decisions),
                case: r.case_id,
                to: r.to,
                fields: decisions.iter().map(decision).collect(),
            })
        }
        Call::ReferralSend(r) => doc(referral_send(ctx, caller, &r.case_id, &r.to).await?),
        Call::ReferralApprove(r) => {
            doc(flows::approve(ctx, caller, &r.referral, &r.categories).await?)
        }
        Call::ReferralDisclose(r) => {
            doc(flows::disclose(ctx, caller, &r.referral, &r.fields, &r.categories).await?)
        }
        Call::ReferralAnswer(r) => doc(flows::answer(ctx, caller, r).await?),
        Call::FollowUpSend(r) => doc(flows::follow_up(ctx, caller, r).await?),
        Call::InfoRequest(r) => doc(flows::info_request(ctx, caller, r).await?),
        Call::CaseClose(r) => doc(flows::close(ctx, caller, r).await?),
        Call::CaseUpdate(r) => doc(current::update(ctx, caller, &r.id, &r.json).await?),
        Call::CaseReopen(r) => doc(current::reopen(ctx, caller, r).await?),
        Call::CaseTimeline(r) => doc(flows::timeline(ctx, &r.id).await?),
        Call::CaseConsent(r) => doc(flows::consent(ctx, caller, r).await?),
        Call::DirectoryList(r) => doc(crate::federation::directory::list(
            ctx,
            (!r.country.is_empty()).then_some(r.country.as_str()),
        )),
        Call::DirectoryEdit(r) => doc(flows::directory_edit(ctx, &r.json).await?),
        Call::DirectoryPublish(_) => doc(flows::directory_publish(ctx, caller).await?),
        Call::Inbox(_) => doc(inbox(ctx).await?),
        Call::MessageShow(r) => doc(message_show(ctx, &r.id).await?),
        Call::Backup(r) => doc(crate::ops::backup::online(ctx, r.include_keys).await?),
        Call::PolicyShow(r) => doc(crate::ops::policy::show(
            ctx,
            (!r.to.is_empty()).then_some(r.to.as_str()),
        )),
        Call::PolicyReload(_) => doc(crate::ops::policy::reload(ctx)?),
        Call::Queue(_) => doc(crate::admin::queue::queue(ctx, caller).await?),
        Call::ReferralApprovals(_) => doc(crate::admin::queue::approvals(ctx).await?),
        Call::FollowUpPreview(r) => {
            let r = r.request.unwrap_or_default();
            doc(flows::follow_up_preview(ctx, caller, r).await?)
        }
        Call::CaseAccessLog(r) => doc(crate::admin::records::access_log(ctx, &r.id)?),
        Call::CaseExport(r) => doc(crate::admin::records::export(ctx, caller, &r.id).await?),
        Call::Stats(r) => doc(crate::admin::stats::stats(ctx, &r.from, &r.to).await?),
        other => Err(CallError::msg(format!(
            "`{}` is not available on this node version",
            crate::admin::call_rules(&other).0
        ))),
    }
}

/// A field's release decision as the answer carries it.
pub fn decision(d: &crate::referral::policy::FieldDecision) -> a::FieldDecision {
    a::FieldDecision {
        category: d.category.to_string(),
        path: d.path.clone(),
        released: d.released,
        withheld_by: d
            .withheld_by
            .iter()
            .map(|w| {
                serde_json::to_value(w)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect(),
    }
}

fn status(ctx: &Ctx) -> Result<a::Status, CallError> {
    let depths = ctx.store.outbox_depths()?;
    let peers: Vec<a::PeerStatus> = ctx
        .peers
        .all()
        .into_iter()
        .map(|p| {
            let cc = p.card.country().to_string();
            let h = ctx.peers.health(&cc);
            let (depth, oldest) = depths.get(&cc).copied().unwrap_or((0, 0));
            let (held, audit_log) = crate::federation::trust::peer_json(ctx, &cc);
            a::PeerStatus {
                state: peer_state(ctx, held, p.revoked, &h).to_string(),
                country: cc,
                name: p.card.card.name.clone(),
                last_contact: format_ms(h.last_contact_ms),
                last_contact_ms: h.last_contact_ms,
                failing_since: format_ms(h.failing_since_ms),
                last_error: h.last_error.clone(),
                attempts: u64::from(h.attempts),
                outbox: depth,
                oldest_pending: format_ms(if depth > 0 { oldest } else { 0 }),
                audit_log,
            }
        })
        .collect();
    let overdue = ctx.store.threads()?;
    Ok(a::Status {
        country: ctx.cfg.country.clone(),
        name: ctx.cfg.name.clone(),
        peer_listen: ctx.peer_addr.to_string(),
        admin_listen: ctx.admin_addr.to_string(),
        signing_key: signing::fingerprint(&ctx.keys.public_key()),
        tls_certificate: signing::fingerprint(&ctx.keys.tls_cert),
        peers,
        overdue: overdue
            .iter()
            .filter(|t| is_overdue(ctx, t))
            .map(|t| thread_json(ctx, t))
            .collect(),
        outbox_total: depths.values().map(|d| d.0).sum::<u64>(),
        received_total: ctx.store.received_count() as u64,
        audit_entries: ctx.store.audit_len(),
        last_restore: crate::ops::backup::last_restore(&ctx.store).map(|r| a::LastRestore {
            taken_ms: r.taken_ms,
            taken: r.taken,
            restored_ms: r.restored_ms,
            backup_sha256: r.backup_sha256,
        }),
        audit: crate::audit::status_json(ctx),
        peer_log_inconsistent: ctx.metrics.total(Counter::PeerLogInconsistent),
    })
}

/// A peer's state in `status`: held or paused (witnessing), revoked, or its reachability.
pub fn peer_state(
    ctx: &Ctx,
    held: Option<&'static str>,
    revoked: bool,
    h: &crate::state::peers::Health,
) -> &'static str {
    let down_after = ctx.cfg.delivery.unreachable_after_secs as i64 * 1000;
    if let Some(held) = held {
        held
    } else if revoked {
        "revoked"
    } else if h.failing_since_ms != 0 {
        if ctx.clock.now_ms() - h.failing_since_ms >= down_after || h.last_contact_ms == 0 {
            "unreachable"
        } else {
            "retrying"
        }
    } else if h.last_contact_ms != 0 {
        "reachable"
    } else {
        "no contact yet"
    }
}

fn card_json(card: &VerifiedCard, revoked: bool, agreed: &Agreement) -> a::PeerCard {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    a::PeerCard {
        agreement: some(&agreed.reference),
        legal_basis: some(&agreed.legal_basis),
        country: card.country().to_string(),
        name: card.card.name.clone(),
        addresses: card.card.addresses.clone(),
        signing_key: card.signing_fingerprint(),
        tls_certificate: card.tls_fingerprint(),
        acceptance: card
            .acceptance()
            .iter()
            .map(|c| template::category_name(*c).to_string())
            .collect(),
        valid_until: format_ms(card.card.valid_until_ms),
        revoked,
        warning: None,
        state: None,
    }
}

/// The agreement given with `peer add`, checked: each text 1-200 printable characters, and a
/// legal basis only with its agreement.
fn given_agreement(reference: &str, legal_basis: &str) -> Result<Agreement, CallError> {
    for (what, text) in [("--agreement", reference), ("--legal-basis", legal_basis)] {
        if !text.is_empty() {
            trm_proto::agreement::check(what, text).map_err(CallError::msg)?;
        }
    }
    if reference.is_empty() && !legal_basis.is_empty() {
        return Err(CallError::msg(
            "--legal-basis needs --agreement (the agreement it is the legal basis of)",
        ));
    }
    Ok(Agreement {
        reference: reference.to_string(),
        legal_basis: legal_basis.to_string(),
    })
}

/// A card `peer add` may pin: verified, not this node's own, unexpired, sharing no key or
/// certificate with another country.
fn pinnable_card(ctx: &Ctx, raw: &[u8], now: i64) -> Result<VerifiedCard, CallError> {
    let card = trm_proto::card::verify_card(raw)
        .map_err(|e| CallError::msg(format!("identity card refused: {e}")))?;
    let cc = card.country().to_string();
    if cc == ctx.country() {
        return Err(CallError::msg("that is this node's own card"));
    }
    if card.card.valid_until_ms <= now {
        return Err(CallError::msg(format!(
            "identity card refused: it expired at {}",
            format_ms(card.card.valid_until_ms)
        )));
    }
    if let Some(why) = ctx
        .peers
        .conflict(&card, &ctx.keys.tls_cert, &ctx.keys.history)
    {
        return Err(CallError::msg(format!(
            "identity card of {cc} refused: {why}"
        )));
    }
    Ok(card)
}

/// Records another agreement for a peer already pinned with the same card.
async fn update_agreement(ctx: &Ctx, old: &Peer, agreement: &Agreement) -> Result<(), CallError> {
    let cc = old.card.country().to_string();
    let mut rec = ctx
        .store
        .peer(&cc)?
        .unwrap_or_else(|| crate::state::peers::record(&old.card, ctx.clock.now_ms()));
    rec.agreement = agreement.reference.clone();
    rec.legal_basis = agreement.legal_basis.clone();
    ctx.store.commit(vec![Op::PutPeer(cc.clone(), rec)]).await?;
    tracing::info!(peer = %cc, "agreement recorded for the peer");
    ctx.peers
        .put_agreed(old.card.clone(), old.revoked, agreement.clone());
    Ok(())
}

/// `peer add [--replace] [--agreement A [--legal-basis B]]`: pins a verified, unexpired card
/// whose certificate and keys are no other country's. A country already pinned with another
/// card, or revoked, is re-pinned only with `replace` (the operator's explicit re-approval; it
/// also lifts a revocation). The agreement given is recorded with the peer (re-adding the same
/// card with another agreement updates it); without one, the recorded agreement stays.
async fn peer_add(
    ctx: &Ctx,
    raw: &[u8],
    given: (&str, &str),
    replace: bool,
) -> Result<a::PeerCard, CallError> {
    let given = given_agreement(given.0, given.1)?;
    let now = ctx.clock.now_ms();
    let card = pinnable_card(ctx, raw, now)?;
    let cc = card.country().to_string();
    let old = ctx.peers.get(&cc);
    let agreement = match &old {
        Some(p) if given.is_none() => p.agreement.clone(),
        _ => given,
    };
    if let Some(old) = &old {
        if old.card.raw == card.raw && !old.revoked {
            if agreement != old.agreement {
                update_agreement(ctx, old, &agreement).await?;
            }
            return Ok(card_json(&card, false, &agreement));
        }
        if !replace {
            let why = if old.revoked {
                "is revoked"
            } else {
                "is already pinned with another card"
            };
            return Err(CallError::msg(format!(
                "{cc} {why} (pinned: signing key {}, TLS certificate {}; new: signing key {}, TLS certificate {}); to re-pin it, run peer add --replace",
                old.card.signing_fingerprint(),
                old.card.tls_fingerprint(),
                card.signing_fingerprint(),
                card.tls_fingerprint()
            )));
        }
    }
    let mut rec = crate::state::peers::record(&card, now);
    rec.agreement = agreement.reference.clone();
    rec.legal_basis = agreement.legal_basis.clone();
    let mut ops = vec![
        Op::PutPeer(cc.clone(), rec),
        crate::federation::trust::archive_card(&card),
    ];
    // A replaced card is a new identity: what was witnessed of the old one's log is no
    // baseline for the new one (the operator's explicit act, audited with the card's hash).
    let replaced = replace && old.is_some_and(|old| old.card.raw != card.raw);
    if replaced {
        ops.push(crate::federation::trust::forget_op(&cc));
    }
    ctx.store.commit(ops).await?;
    if replaced {
        ctx.trust.forget(&cc);
    }
    let mut out = card_json(&card, false, &agreement);
    if card.card.valid_from_ms > now {
        out.warning = Some(format!(
            "the card is not valid before {}: connections with {cc} are refused until then",
            format_ms(card.card.valid_from_ms)
        ));
        tracing::warn!(peer = %cc, "pinned a card that is not valid yet");
    }
    tracing::info!(peer = %cc, replace, "peer pinned");
    ctx.peers.put_agreed(card, false, agreement);
    Ok(out)
}

fn peer_list(ctx: &Ctx) -> Vec<a::PeerCard> {
    ctx.peers
        .all()
        .iter()
        .map(|p| {
            let cc = p.card.country();
            let (held, _) = crate::federation::trust::peer_json(ctx, cc);
            let state = peer_state(ctx, held, p.revoked, &ctx.peers.health(cc));
            a::PeerCard {
                state: Some(state.to_string()),
                ..card_json(&p.card, p.revoked, &p.agreement)
            }
        })
        .collect()
}

async fn peer_remove(ctx: &Ctx, cc: &str) -> Result<a::PeerRemoved, CallError> {
    if ctx.peers.get(cc).is_none() {
        return Err(CallError::msg(format!("unknown peer {cc}")));
    }
    ctx.store
        .commit(vec![Op::RemovePeer(cc.to_string())])
        .await?;
    ctx.peers.remove(cc);
    Ok(a::PeerRemoved {
        removed: cc.to_string(),
    })
}

async fn officer_add(
    ctx: &Ctx,
    name: &str,
    role: &str,
    cert_der: &[u8],
) -> Result<a::OfficerAdded, CallError> {
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
        revoked_ms: 0,
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
    Ok(a::OfficerAdded {
        name: name.to_string(),
        role: role.name().to_string(),
        certificate: signing::fingerprint(cert_der),
        country: ctx.cfg.country.clone(),
        node: ctx.admin_addr.to_string(),
        node_cert_sha256: hex::encode(signing::sha256(&ctx.keys.tls_cert)),
    })
}

fn officer_list(ctx: &Ctx) -> Result<a::OfficerList, CallError> {
    let officers = ctx
        .store
        .officers()?
        .into_iter()
        .map(|(fp, o)| a::OfficerEntry {
            certificate: signing::fingerprint(&o.cert_der),
            added: format_ms(o.added_ms),
            id: hex::encode(&fp[..8]),
            revoked: (o.revoked_ms != 0).then(|| format_ms(o.revoked_ms)),
            name: o.name,
            role: o.role,
        })
        .collect();
    Ok(a::OfficerList { officers })
}

/// `officer revoke NAME`: marks every active credential of `name` revoked (kept for the
/// audit), unpins them so new handshakes fail, and wakes live admin sessions, which close
/// when their credential is revoked. The last active operator cannot be revoked.
async fn officer_revoke(
    ctx: &Ctx,
    caller: &Caller,
    name: &str,
) -> Result<a::OfficerRevoked, CallError> {
    let officers = ctx.store.officers()?;
    let now = ctx.clock.now_ms();
    let mut ops = Vec::new();
    for (fp, o) in &officers {
        if o.name == name && o.revoked_ms == 0 {
            let mut rec = o.clone();
            rec.revoked_ms = now;
            ops.push(Op::PutOfficer(*fp, rec));
        }
    }
    if ops.is_empty() {
        return Err(CallError::msg(format!("no active officer named {name:?}")));
    }
    let operators_left = officers
        .iter()
        .filter(|(_, o)| o.revoked_ms == 0 && o.role == Role::Operator.name() && o.name != name)
        .count();
    if operators_left == 0 {
        return Err(CallError::msg(format!(
            "{name:?} holds the last active operator credential; add another operator first"
        )));
    }
    let n = ops.len();
    ctx.store.commit(ops).await?;
    ctx.officer_pins.remove_who(name);
    ctx.trust.notify();
    tracing::warn!(officer = %name, by = %caller.name, credentials = n, "officer revoked: sessions closed, calls refused");
    Ok(a::OfficerRevoked {
        revoked: name.to_string(),
        credentials: n as u64,
        at: format_ms(now),
    })
}

/// A validated case's fields as (unsalted) disclosures, in template order: what the node stores
/// and a referral commits to (salts are drawn when it is committed).
pub fn case_disclosures(case: &template::Case) -> Vec<pb::FieldDisclosure> {
    case.committed_fields()
        .into_iter()
        .map(|(path, value)| pb::FieldDisclosure {
            path,
            salt: vec![],
            value,
        })
        .collect()
}

/// A case recorded here carries this country's reference (`IT-…` on the Italian node).
pub fn own_case_ref(country: &str, case_ref: &str) -> Result<(), CallError> {
    if template::case_ref_of(case_ref, country) {
        return Ok(());
    }
    Err(CallError::msg(format!(
        "case refused: reference.case_ref: must start with this node's country code, {country}- (e.g. {country}-2026-0001), so that two countries' references never collide"
    )))
}

/// `case template`: the commented JSON and the fields as data, for forms.
fn case_template(ctx: &Ctx) -> a::CaseTemplate {
    a::CaseTemplate {
        fields: ctx
            .template
            .fields()
            .map(|f| a::TemplateField::of(&f))
            .collect(),
        template: ctx.template.template_json(),
    }
}

async fn case_create(ctx: &Ctx, caller: &Caller, text: &str) -> Result<a::CaseCreated, CallError> {
    let case = ctx
        .template
        .parse_case(text)
        .map_err(|e| CallError::msg(format!("case refused: {e}")))?;
    let id = case
        .case_ref()
        .ok_or_else(|| CallError::msg("case refused: reference.case_ref is required"))?
        .to_string();
    own_case_ref(ctx.country(), &id)?;
    if ctx.store.case(&id)?.is_some() {
        return Err(CallError::msg(format!(
            "a case with reference {id} already exists"
        )));
    }
    let fields = case_disclosures(&case);
    let n = fields.len();
    let mut ops = Vec::new();
    let mut ku = ctx.vault.begin().await;
    let sealed = crate::store::casedata::seal(
        &ctx.vault,
        &mut ku,
        &crate::store::casedata::case_scope(&id),
        &crate::store::casedata::case_record(&id),
        &fields,
        |p| ctx.template.category_of(p),
        &mut ops,
    )?;
    ops.push(Op::PutCase(CaseRecord {
        id: id.clone(),
        case_ref: id.clone(),
        created_ms: ctx.clock.now_ms(),
        created_by: caller.name.clone(),
        sealed,
        erased: vec![],
        history: vec![],
        current: None,
    }));
    ctx.store.commit(ops).await?;
    drop(ku);
    Ok(a::CaseCreated {
        id,
        fields: n as u64,
    })
}

/// A thread as JSON, with its overdue flag.
pub fn thread_json(ctx: &Ctx, t: &ThreadRecord) -> a::Thread {
    a::Thread {
        peer: t.peer.clone(),
        case_ref: t.case_ref.clone(),
        role: t.role.clone(),
        state: t.state.clone(),
        referral: hex::encode(&t.referral_id),
        phase: t.phase.clone(),
        response_due: format_ms(t.response_due_ms),
        overdue: is_overdue(ctx, t),
        responsible_institution: t.responsible_institution.clone(),
        focal_point: t.focal_point.clone(),
        note: t.note.clone(),
        updated: format_ms(t.updated_ms),
    }
}

/// Names of the erased categories.
fn erased_names(erased: &[crate::store::Erased]) -> Vec<String> {
    erased
        .iter()
        .filter_map(|e| Category::try_from(e.category).ok())
        .map(|c| template::category_name(c).to_string())
        .collect()
}

/// A referral not accepted or declined by its response-due time ([`ThreadRecord::is_overdue`]).
pub fn is_overdue(ctx: &Ctx, t: &ThreadRecord) -> bool {
    t.is_overdue(ctx.clock.now_ms())
}

fn case_list(ctx: &Ctx) -> Result<a::CaseList, CallError> {
    let threads = ctx.store.threads()?;
    let cases: Vec<a::CaseEntry> = ctx
        .store
        .cases()?
        .into_iter()
        .map(|c| {
            let referrals: Vec<a::Thread> = threads
                .iter()
                .filter(|t| t.role() == Some(ThreadRole::Sent) && t.case_ref == c.case_ref)
                .map(|t| thread_json(ctx, t))
                .collect();
            a::CaseEntry {
                overdue: threads
                    .iter()
                    .any(|t| t.role == "sent" && t.case_ref == c.case_ref && is_overdue(ctx, t)),
                erased: erased_names(&c.erased),
                created: format_ms(c.created_ms),
                id: c.id,
                created_by: c.created_by,
                referrals,
            }
        })
        .collect();
    let received: Vec<a::Thread> = threads
        .iter()
        .filter(|t| t.role() == Some(ThreadRole::Received))
        .map(|t| thread_json(ctx, t))
        .collect();
    Ok(a::CaseList { cases, received })
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

/// Field disclosures as a case document.
pub fn disclosures_document(fields: &[pb::FieldDisclosure]) -> Value {
    fields_document(fields.iter().map(|d| {
        (
            d.path.clone(),
            serde_json::from_slice(&d.value).unwrap_or(Value::Null),
        )
    }))
}

/// A local case and its (unsealed) field values.
pub async fn load_case(
    ctx: &Ctx,
    id: &str,
) -> Result<(CaseRecord, Vec<pb::FieldDisclosure>), CallError> {
    let c = ctx
        .store
        .case(id)?
        .ok_or_else(|| CallError::msg(format!("no case {id}")))?;
    let fields = crate::store::casedata::open(
        &ctx.vault,
        &crate::store::casedata::case_scope(id),
        &crate::store::casedata::case_record(id),
        &c.sealed,
    )
    .await?;
    Ok((c, fields))
}

/// The values received from `peer` about `case_ref` that verify against signed digests of
/// that case's current referral (the referral itself, later `Disclosure`s of it) or of a
/// follow-up received after it (later messages win). A value that matches no signed digest
/// (e.g. attached to a message kind that carries none) is never shown.
pub async fn received_fields(
    ctx: &Ctx,
    peer: &str,
    case_ref: &str,
) -> Result<Vec<pb::FieldDisclosure>, CallError> {
    let scope = crate::store::casedata::received_scope(peer, case_ref);
    let Some(thread) = ctx.store.thread(peer, case_ref)? else {
        return Ok(vec![]);
    };
    let records = ctx.store.received_for_case(peer, case_ref)?;
    let referral = records
        .iter()
        .find(|r| r.id == thread.referral_id)
        .and_then(|r| referral_digests(&r.envelope));
    let mut by_path: BTreeMap<String, pb::FieldDisclosure> = BTreeMap::new();
    let mut after_referral = false;
    for r in records {
        let Some(body) = pb::Envelope::decode(r.envelope.as_slice())
            .ok()
            .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        else {
            continue;
        };
        if body.case_ref != case_ref {
            continue;
        }
        let digests: &[Vec<u8>] = match &body.payload {
            Some(Payload::Referral(x)) if r.id == thread.referral_id => {
                after_referral = true;
                &x.digests
            }
            Some(Payload::Disclosure(d)) if d.referral_id == thread.referral_id => {
                match &referral {
                    Some(d) => d,
                    None => continue,
                }
            }
            Some(Payload::FollowUp(f)) if after_referral => &f.digests,
            _ => continue,
        };
        let record = crate::store::casedata::received_record(peer, &r.id);
        for d in crate::store::casedata::open(&ctx.vault, &scope, &record, &r.disclosures).await? {
            if commit::verify_disclosures(digests, std::slice::from_ref(&d)).is_ok() {
                by_path.insert(d.path.clone(), d);
            }
        }
    }
    Ok(by_path.into_values().collect())
}

/// The consent records of a received case as this node now holds them: what `peer` disclosed,
/// with `withdrawn` (the date of the request) set on `consent.<cat>` for every category of an
/// `ErasureRequest` of `peer` with reason `consent_withdrawn` (a record that was not disclosed
/// reads `{status: given, withdrawn}`: only given consent can be withdrawn). The marked value no
/// longer matches its signed digest: it is this node's note on the partner's record.
pub async fn received_with_withdrawals(
    ctx: &Ctx,
    peer: &str,
    case_ref: &str,
) -> Result<Vec<pb::FieldDisclosure>, CallError> {
    let mut fields = received_fields(ctx, peer, case_ref).await?;
    for r in ctx.store.received_for_case(peer, case_ref)? {
        let Some(body) = pb::Envelope::decode(r.envelope.as_slice())
            .ok()
            .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        else {
            continue;
        };
        let Some(Payload::ErasureRequest(req)) = &body.payload else {
            continue;
        };
        if req.reason != "consent_withdrawn" || body.case_ref != case_ref {
            continue;
        }
        let date = format_ms(body.created_ms)
            .get(..10)
            .unwrap_or_default()
            .to_string();
        for cat in req
            .categories
            .iter()
            .filter_map(|c| Category::try_from(*c).ok())
        {
            mark_withdrawn(&mut fields, cat, &date);
        }
    }
    Ok(fields)
}

fn mark_withdrawn(fields: &mut Vec<pb::FieldDisclosure>, cat: Category, date: &str) {
    let path = format!("consent.{}", template::category_name(cat));
    let mut record = fields
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| serde_json::from_slice::<Value>(&f.value).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| serde_json::json!({ "status": "given" }));
    record["withdrawn"] = Value::String(date.to_string());
    fields.retain(|f| f.path != path);
    fields.push(pb::FieldDisclosure {
        path,
        salt: vec![],
        value: template::canonical_json(&record),
    });
}

pub async fn case_show(ctx: &Ctx, id: &str) -> Result<a::CaseShow, CallError> {
    if ctx.store.case(id)?.is_some() {
        let (c, fields) = load_case(ctx, id).await?;
        let referrals = ctx
            .store
            .threads()?
            .iter()
            .filter(|t| t.role() == Some(ThreadRole::Sent) && t.case_ref == c.case_ref)
            .map(|t| thread_json(ctx, t))
            .collect();
        let version = c.current_version();
        return Ok(a::CaseShow {
            version: Some(current::version_json(&version)),
            versions: Some(version.number as u64),
            reported: current::last_reported(&c),
            created: Some(format_ms(c.created_ms)),
            erased: Some(erased_names(&c.erased)),
            id: c.id,
            created_by: Some(c.created_by),
            origin: "recorded here".into(),
            case: disclosures_document(&fields),
            referrals,
            thread: None,
            basis_of_transfer: None,
        });
    }
    for t in ctx.store.threads()? {
        if t.role() == Some(ThreadRole::Received) && t.case_ref == id {
            let fields = received_with_withdrawals(ctx, &t.peer, id).await?;
            return Ok(a::CaseShow {
                basis_of_transfer: Some(basis_of_transfer(ctx, &t)?),
                id: id.to_string(),
                origin: format!("received from {}", t.peer),
                thread: Some(thread_json(ctx, &t)),
                case: disclosures_document(&fields),
                ..Default::default()
            });
        }
    }
    Err(CallError::msg(format!("no case {id}")))
}

/// The basis of a received case's transfer, as its sender signed it in the referral
/// (informational: shown, never used for a decision).
fn basis_of_transfer(ctx: &Ctx, t: &ThreadRecord) -> Result<String, CallError> {
    let referral = ctx
        .store
        .received(&t.peer, &t.referral_id)?
        .and_then(|r| pb::Envelope::decode(r.envelope.as_slice()).ok())
        .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        .and_then(|b| match b.payload {
            Some(Payload::Referral(r)) => Some(r),
            _ => None,
        });
    Ok(referral
        .and_then(|r| trm_proto::agreement::basis(&r.agreement, &r.legal_basis))
        .unwrap_or_else(|| "not stated by the sender".into()))
}

/// Categories approved for one referral of (case, peer) (`referral` `None`: the next one) by
/// supervisors who are neither `officer` (the caller who sends or releases) nor the case's
/// creator: four eyes.
pub fn approved_for(
    ctx: &Ctx,
    case_id: &str,
    peer: &str,
    referral: Option<&[u8]>,
    officer: &str,
) -> Result<BTreeSet<Category>, CallError> {
    let creator = ctx
        .store
        .case(case_id)?
        .map(|c| c.created_by)
        .unwrap_or_default();
    let approval = ctx.store.approval_of(case_id, peer, referral)?;
    Ok(crate::referral::policy::approved_categories(
        approval.as_ref(),
        officer,
        &creator,
    ))
}

/// The decisions for every field of a local case sent to `to` by `officer`, in the referral
/// `referral` (`None`: the next one; its approvals apply).
pub async fn preview(
    ctx: &Ctx,
    case_id: &str,
    to: &str,
    referral: Option<&[u8]>,
    officer: &str,
) -> Result<
    (
        (CaseRecord, Vec<pb::FieldDisclosure>),
        Vec<crate::referral::policy::FieldDecision>,
    ),
    CallError,
> {
    let (case, fields) = load_case(ctx, case_id).await?;
    let fields = crate::referral::policy::with_header(fields);
    let peer = ctx
        .peers
        .get(to)
        .ok_or_else(|| CallError::msg(format!("unknown peer {to}: add its identity card first")))?;
    let approved = approved_for(ctx, case_id, to, referral, officer)?;
    let decisions = crate::referral::policy::decide(
        &ctx.template,
        &fields,
        &fields,
        &peer.card.acceptance(),
        &ctx.outgoing_for(to),
        &approved,
    );
    Ok(((case, fields), decisions))
}

fn field_str(fields: &[pb::FieldDisclosure], path: &str) -> Option<String> {
    fields
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| serde_json::from_slice::<Value>(&f.value).ok())
        .and_then(|v| v.as_str().map(str::to_string))
}

/// What the officer is told before a referral of `fields` leaves under `decisions`: a child
/// case whose child section is withheld, a response due date already past.
fn send_warnings(
    ctx: &Ctx,
    fields: &[pb::FieldDisclosure],
    decisions: &[crate::referral::policy::FieldDecision],
) -> Vec<a::Warning> {
    let mut out = Vec::new();
    if crate::referral::policy::child_section_withheld(fields, decisions) {
        out.push(a::Warning {
            code: "child_section_withheld".into(),
            text: "child case: the child section (child.*) is withheld; the partner is told only \
                   that the person is a minor (reference.minor) and the urgency"
                .into(),
        });
    }
    let today = format_ms(ctx.clock.now_ms())[..10].to_string();
    if field_str(fields, "reference.response_due").is_some_and(|d| d < today) {
        out.push(a::Warning {
            code: "response_due_past".into(),
            text: "the response due date (reference.response_due) is already past: the referral \
                   is overdue as soon as it arrives"
                .into(),
        });
    }
    out
}

async fn referral_send(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    case_id: &str,
    to: &str,
) -> Result<a::ReferralSent, CallError> {
    if let Some(case) = ctx.store.case(case_id)? {
        current::check_not_open(ctx, &case.case_ref, to)?;
    }
    let ((case, fields), decisions) = preview(ctx, case_id, to, None, &caller.name).await?;
    let (c, released) = crate::referral::policy::commit_and_release(&fields, &decisions)
        .map_err(|e| CallError::msg(format!("cannot commit the case: {e}")))?;
    let extensions: Vec<pb::ExtensionField> = ctx
        .template
        .extensions()
        .iter()
        .filter(|e| fields.iter().any(|f| f.path == e.path()))
        .map(|e| e.to_pb())
        .collect();
    let urgency = match field_str(&fields, "reference.urgency").as_deref() {
        Some("urgent") => pb::Urgency::Urgent,
        Some("emergency") => pb::Urgency::Emergency,
        _ => pb::Urgency::Routine,
    };
    let response_due_ms = field_str(&fields, "reference.response_due")
        .and_then(|d| crate::base::time::parse_date_ms(&d))
        .unwrap_or(0);
    let agreed = ctx.peers.get(to).map(|p| p.agreement).unwrap_or_default();
    let payload = Payload::Referral(pb::Referral {
        template_version: template::TEMPLATE_VERSION.to_string(),
        digests: c.digests.iter().map(|d| d.to_vec()).collect(),
        extensions,
        urgency: urgency as i32,
        response_due_ms,
        phase: pb::Phase::Identification as i32,
        agreement: agreed.reference.clone(),
        legal_basis: agreed.legal_basis.clone(),
    });
    let n_released = released.len();
    // The approvals given for the next referral belong to this one from now on.
    let bind = Op::BindApproval {
        case_id: case.id.clone(),
        peer: to.to_string(),
        referral_id: vec![],
    };
    let id = messages::enqueue_with(
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
        vec![bind],
    )
    .await?;
    let mut warnings = send_warnings(ctx, &fields, &decisions);
    warnings.extend(agreement_warning(to, &agreed));
    Ok(a::ReferralSent {
        warnings,
        message: hex::encode(&id),
        to: to.to_string(),
        case: case.id,
        released: n_released as u64,
        withheld: (decisions.len() - n_released) as u64,
        state: "pending".into(),
    })
}

/// The warning `referral send` gives when no agreement is recorded for the partner (sending
/// stays allowed: deployments pinned before agreements were recorded keep working).
fn agreement_warning(to: &str, agreed: &Agreement) -> Option<a::Warning> {
    agreed.reference.is_empty().then(|| a::Warning {
        code: "no_agreement".into(),
        text: format!(
            "no agreement is recorded for {to}: the referral names no basis of transfer; record it with: trm-admin peer add CARD --agreement REFERENCE [--legal-basis TEXT]"
        ),
    })
}

/// Urgency and minority of a case as this node holds them: its own record for a case it
/// referred, else the values the sender disclosed. `None`: not disclosed (never guessed).
pub async fn case_flags(
    ctx: &Ctx,
    peer: &str,
    case_ref: &str,
) -> Result<(Option<String>, Option<bool>), CallError> {
    let Some(thread) = ctx.store.thread(peer, case_ref)? else {
        return Ok((None, None));
    };
    let fields =
        if thread.role() == Some(ThreadRole::Sent) && ctx.store.case(&thread.case_id)?.is_some() {
            load_case(ctx, &thread.case_id).await?.1
        } else {
            received_fields(ctx, peer, case_ref).await?
        };
    let value = |path: &str| {
        fields
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| serde_json::from_slice::<Value>(&f.value).ok())
    };
    let urgency = value("reference.urgency").and_then(|v| v.as_str().map(str::to_string));
    // The child section when disclosed, else the referral's header (reference.minor).
    let minor = value("child.minor")
        .or_else(|| value(template::REFERENCE_MINOR))
        .and_then(|v| v.as_bool());
    Ok((urgency, minor))
}

/// Inbox order: emergency, then child cases, then urgent, then the rest (unknown counts as
/// neither).
fn inbox_rank(e: &a::InboxEntry) -> u8 {
    match (e.urgency.as_deref(), e.minor) {
        (Some("emergency"), _) => 0,
        (_, Some(true)) => 1,
        (Some("urgent"), _) => 2,
        _ => 3,
    }
}

async fn inbox(ctx: &Ctx) -> Result<a::Inbox, CallError> {
    let mut flags: BTreeMap<(String, String), (Option<String>, Option<bool>)> = BTreeMap::new();
    let mut messages = Vec::new();
    // A partner's new directory is shown by `directory list`, not in the officers' inbox.
    let inbox = ctx.store.inbox()?.into_iter();
    for r in inbox.filter(|r| r.kind != "directory_update") {
        let key = (r.peer.clone(), r.case_ref.clone());
        if !flags.contains_key(&key) {
            let found = case_flags(ctx, &r.peer, &r.case_ref).await?;
            flags.insert(key.clone(), found);
        }
        let (urgency, minor) = flags.get(&key).cloned().unwrap_or_default();
        let categories = crate::store::casedata::categories(&r.disclosures)
            .into_iter()
            .map(|c| template::category_name(c).to_string())
            .collect();
        messages.push(a::InboxEntry {
            id: hex::encode(&r.id),
            from: r.peer,
            kind: r.kind,
            case_ref: r.case_ref,
            received: format_ms(r.received_ms),
            categories,
            urgency,
            minor,
        });
    }
    // Stable: arrival order within each rank.
    messages.sort_by_key(inbox_rank);
    Ok(a::Inbox { messages })
}

/// Re-verifies a stored envelope and its disclosures: signature by the named key, valid for
/// the sender at the message's time, and every disclosure against the signed digests (of the
/// message itself, or of the referral for a later Disclosure).
pub fn verify_stored(
    key_lookup: impl Fn(&[u8], i64) -> Option<ed25519_dalek::VerifyingKey>,
    env: &pb::Envelope,
    disclosures: &[pb::FieldDisclosure],
    referral_digests: Option<&[Vec<u8>]>,
) -> (Option<pb::Body>, a::Verification) {
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
        _ => referral_digests.unwrap_or(&[]),
    };
    let disc = if disclosures.is_empty() {
        "none".to_string()
    } else {
        match commit::verify_disclosures(digests, disclosures) {
            Ok(()) => format!("all {} match signed digests", disclosures.len()),
            Err(e) => format!("INVALID: {e}"),
        }
    };
    (
        body,
        a::Verification {
            signature: sig,
            disclosures: disc,
            envelope_hash: hex::encode(signing::envelope_hash(&env.body, &env.signature)),
        },
    )
}

/// The case reference in a stored envelope.
pub fn referral_case_ref(envelope: &[u8]) -> Option<String> {
    let env = pb::Envelope::decode(envelope).ok()?;
    Some(pb::Body::decode(env.body.as_slice()).ok()?.case_ref)
}

/// The digests signed in a stored referral envelope.
pub fn referral_digests(envelope: &[u8]) -> Option<Vec<Vec<u8>>> {
    let env = pb::Envelope::decode(envelope).ok()?;
    match pb::Body::decode(env.body.as_slice()).ok()?.payload {
        Some(Payload::Referral(r)) => Some(r.digests),
        _ => None,
    }
}

/// A stored sent message, opened and re-verified.
pub async fn sent_view(ctx: &Ctx, s: &SentRecord) -> Result<a::MessageView, CallError> {
    sent_view_with(ctx, s, false).await
}

/// [`sent_view`], with the receipt's details (receiver, outcome, key) when `detailed`.
async fn sent_view_with(
    ctx: &Ctx,
    s: &SentRecord,
    detailed: bool,
) -> Result<a::MessageView, CallError> {
    let env = pb::Envelope::decode(s.envelope.as_slice())?;
    let disclosures = crate::store::casedata::open_sent(
        &ctx.vault,
        s,
        crate::store::casedata::SentPart::Released,
    )
    .await?;
    let own = ctx.keys.history.clone();
    let body0 = pb::Body::decode(env.body.as_slice()).unwrap_or_default();
    let ref_digests = match &body0.payload {
        Some(Payload::Disclosure(d)) => ctx
            .store
            .sent(&d.referral_id)?
            .and_then(|r| referral_digests(&r.envelope)),
        _ => None,
    };
    let (body, verification) = verify_stored(
        |k, t| trm_proto::card::key_valid_at(&own, k, t),
        &env,
        &disclosures,
        ref_digests.as_deref(),
    );
    // Nothing is stored until the peer answers: an empty answer is no answer.
    let answer = pb::Signed::decode(s.answer.as_slice())
        .ok()
        .filter(|_| !s.answer.is_empty());
    let answer = answer.map(|a| describe_answer(ctx, &s.peer, &a, detailed));
    Ok(message_json(
        "sent",
        &s.peer,
        body,
        &disclosures,
        verification,
        a::Delivery::Sent {
            state: SentState::from_u32(s.state).name().to_string(),
            answered: format_ms(s.answered_ms),
            answer,
            pending: None,
        },
        &s.erased,
    ))
}

/// A stored received message, opened and re-verified.
pub async fn received_view(ctx: &Ctx, r: &ReceivedRecord) -> Result<a::MessageView, CallError> {
    let env = pb::Envelope::decode(r.envelope.as_slice())?;
    let scope = crate::store::casedata::received_scope(&r.peer, &r.case_ref);
    let record = crate::store::casedata::received_record(&r.peer, &r.id);
    let disclosures =
        crate::store::casedata::open(&ctx.vault, &scope, &record, &r.disclosures).await?;
    let peer = ctx.peers.get(&r.peer);
    let body0 = pb::Body::decode(env.body.as_slice()).unwrap_or_default();
    let ref_digests = match &body0.payload {
        Some(Payload::Disclosure(d)) => ctx
            .store
            .received(&r.peer, &d.referral_id)?
            .and_then(|x| referral_digests(&x.envelope)),
        _ => None,
    };
    let (body, verification) = verify_stored(
        |k, time| peer.as_ref().and_then(|p| p.card.key_valid_at(k, time)),
        &env,
        &disclosures,
        ref_digests.as_deref(),
    );
    let mut v = message_json(
        "received",
        &r.peer,
        body,
        &disclosures,
        verification,
        a::Delivery::Received {
            state: "stored".into(),
            received: format_ms(r.received_ms),
        },
        &r.erased,
    );
    // Extension fields this node does not know are shown with the category the sender declared.
    let declared = ctx
        .store
        .thread(&r.peer, &r.case_ref)?
        .map(|t| t.extensions)
        .unwrap_or_default();
    v.extensions = Some(
        declared
            .iter()
            .filter(|e| disclosures.iter().any(|d| d.path == e.path))
            .map(|e| a::Extension {
                path: e.path.clone(),
                category: Category::try_from(e.category)
                    .map(template::category_name)
                    .unwrap_or("unknown")
                    .to_string(),
                help: e.help.clone(),
                known_here: ctx.template.field(&e.path).is_some(),
            })
            .collect(),
    );
    Ok(v)
}

pub async fn message_show(ctx: &Ctx, id_hex: &str) -> Result<a::MessageView, CallError> {
    let id = hex::decode(id_hex)
        .ok()
        .filter(|v| v.len() == 16)
        .ok_or_else(|| CallError::msg("message id must be 32 hex digits"))?;
    let (mut view, envelope) = if let Some(s) = ctx.store.sent(&id)? {
        let mut v = sent_view_with(ctx, &s, true).await?;
        if let a::Delivery::Sent { pending, .. } = &mut v.delivery {
            *pending = crate::admin::showing::pending(ctx, &s)?;
        }
        (v, s.envelope)
    } else {
        let r = ctx
            .store
            .inbox()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| CallError::msg(format!("no message {id_hex}")))?;
        (received_view(ctx, &r).await?, r.envelope)
    };
    let body = pb::Envelope::decode(envelope.as_slice())
        .ok()
        .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        .unwrap_or_default();
    view.payload = Some(crate::admin::showing::payload_view(&body));
    if view.kind == "information_request" {
        view.answered_by = Some(crate::admin::queue::answers_to(ctx, &id)?);
    }
    Ok(view)
}

/// The peer's signed answer, checked; the receipt's receiver, outcome and key only when
/// `detailed` (`message show`).
fn describe_answer(ctx: &Ctx, peer: &str, a: &pb::Signed, detailed: bool) -> a::SignedAnswer {
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
            let shown = |s: String| if detailed { s } else { String::new() };
            return a::SignedAnswer::Receipt {
                received: format_ms(r.received_ms),
                signature: if valid { "valid" } else { "INVALID" }.into(),
                receiver: shown(r.receiver.clone()),
                outcome: shown(
                    pb::ReceiptOutcome::try_from(r.outcome)
                        .map(|o| o.as_str_name().to_ascii_lowercase())
                        .unwrap_or_default(),
                ),
                signer_key: shown(
                    key_ok
                        .map(|k| signing::fingerprint(k.as_bytes()))
                        .unwrap_or_default(),
                ),
            };
        }
    }
    if let Ok(r) = pb::Rejection::decode(a.body.as_slice()) {
        let valid = key_at(r.rejected_ms)
            .is_some_and(|k| signing::verify(&k, Tag::Rejection, &a.body, &a.signature).is_ok());
        return a::SignedAnswer::Rejection {
            reason: pb::RejectReason::try_from(r.reason)
                .map(|x| x.as_str_name())
                .unwrap_or("?")
                .to_string(),
            detail: r.detail,
            fields: r.fields,
            signature: if valid { "valid" } else { "INVALID" }.into(),
        };
    }
    a::SignedAnswer::Unreadable
}

/// A message as JSON: header, verification, delivery, payload summary, fields.
pub fn message_json(
    direction: &str,
    peer: &str,
    body: Option<pb::Body>,
    disclosures: &[pb::FieldDisclosure],
    verification: a::Verification,
    delivery: a::Delivery,
    erased: &[crate::store::Erased],
) -> a::MessageView {
    let b = body.unwrap_or_default();
    a::MessageView {
        id: hex::encode(&b.message_id),
        direction: direction.to_string(),
        peer: peer.to_string(),
        kind: messages::kind_name(&b).to_string(),
        summary: crate::admin::flows::summary(&b),
        created: format_ms(b.created_ms),
        created_ms: b.created_ms,
        in_reply_to: hex::encode(&b.in_reply_to),
        sender: b.sender,
        recipient: b.recipient,
        case_ref: b.case_ref,
        verification,
        delivery,
        fields: disclosures_document(disclosures),
        erased: erased_names(erased),
        extensions: None,
        payload: None,
        answered_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_puts_emergency_then_children_then_urgent_first_keeping_arrival_order() {
        let entry = |id: &str, urgency: Option<&str>, minor: Option<bool>| a::InboxEntry {
            id: id.into(),
            urgency: urgency.map(str::to_string),
            minor,
            ..Default::default()
        };
        let mut v = [
            entry("unknown", None, None),
            entry("urgent", Some("urgent"), Some(false)),
            entry("routine-child", Some("routine"), Some(true)),
            entry("routine", Some("routine"), None),
            entry("emergency", Some("emergency"), Some(false)),
            entry("unknown-child", None, Some(true)),
        ];
        v.sort_by_key(inbox_rank);
        let ids: Vec<&str> = v.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "emergency",
                "routine-child",
                "unknown-child",
                "urgent",
                "unknown",
                "routine"
            ]
        );
    }
}
