//! Minimal disclosure: which fields may leave for a given peer, and what an incoming message
//! may carry.
//!
//! Released = the outgoing profile for the peer (this country's law) ∩ the peer's published
//! acceptance profile (its law) ∩ the person's recorded consent (personal categories) ∩ a
//! supervisor's approval (personal categories). Every withheld field says which rules withheld
//! it. The receiver re-checks its own acceptance profile and every disclosure's digest.

use std::collections::BTreeSet;

use serde::Serialize;
use trm_proto::pb::{self, Category, RejectReason};
use trm_proto::template::{self, Template};

use crate::base::vocab::Refusal;
use crate::state::ctx::Ctx;

/// Why a field is withheld.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Withheld {
    /// This country's outgoing profile for the peer does not include the category.
    OutgoingProfile,
    /// The peer's acceptance profile does not include the category.
    AcceptanceProfile,
    /// The person has not given consent for the category.
    Consent,
    /// No supervisor has approved the category for this referral.
    Approval,
}

/// The decision for one field.
#[derive(Clone, Debug, Serialize)]
pub struct FieldDecision {
    /// Field path.
    pub path: String,
    /// Category name.
    pub category: &'static str,
    /// Released to the peer.
    pub released: bool,
    /// Rules that withheld it (empty when released).
    pub withheld_by: Vec<Withheld>,
}

/// Consent status recorded in the case's fields for `cat`: given and not withdrawn.
pub fn consent_given(fields: &[pb::FieldDisclosure], cat: Category) -> bool {
    let path = format!("consent.{}", template::category_name(cat));
    fields
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| serde_json::from_slice::<serde_json::Value>(&f.value).ok())
        .map(|v| {
            v.get("status").and_then(|s| s.as_str()) == Some("given")
                && v.get("withdrawn").is_none_or(|w| w.is_null())
        })
        .unwrap_or(false)
}

/// Decides every field of a case for `peer`. `fields` are the values to decide on;
/// `consent_from` holds the case's consent records.
pub fn decide(
    ctx: &Ctx,
    template: &Template,
    fields: &[pb::FieldDisclosure],
    consent_from: &[pb::FieldDisclosure],
    peer_acceptance: &[Category],
    peer: &str,
    approved: &BTreeSet<Category>,
) -> Vec<FieldDecision> {
    let outgoing = ctx.cfg.outgoing_for(peer);
    fields
        .iter()
        .map(|f| {
            let cat = template.category_of(&f.path).unwrap_or(Category::Identity);
            let mut why = Vec::new();
            if !outgoing.contains(&cat) {
                why.push(Withheld::OutgoingProfile);
            }
            if !peer_acceptance.contains(&cat) {
                why.push(Withheld::AcceptanceProfile);
            }
            if template::is_personal(cat) {
                if !consent_given(consent_from, cat) {
                    why.push(Withheld::Consent);
                }
                if !approved.contains(&cat) {
                    why.push(Withheld::Approval);
                }
            }
            FieldDecision {
                path: f.path.clone(),
                category: template::category_name(cat),
                released: why.is_empty(),
                withheld_by: why,
            }
        })
        .collect()
}

/// The template a receiver uses for a message: its own, plus the sender's declared
/// extensions (so unknown extension fields keep their declared category).
pub fn receiving_template(ctx: &Ctx, exts: &[pb::ExtensionField]) -> Result<Template, Refusal> {
    ctx.template
        .for_received(exts)
        .map_err(|e| Refusal::new(RejectReason::Malformed, format!("declared extensions: {e}")))
}

/// Checks disclosures against signed digests, the acceptance profile and the field kinds.
pub fn check_disclosures(
    ctx: &Ctx,
    template: &Template,
    digests: &[Vec<u8>],
    disclosures: &[pb::FieldDisclosure],
) -> Result<(), Refusal> {
    trm_proto::commit::verify_disclosures(digests, disclosures).map_err(|e| Refusal {
        reason: RejectReason::BadDisclosure,
        detail: e.to_string(),
        fields: vec![],
    })?;
    let acceptance = ctx.cfg.acceptance_categories();
    let mut beyond = Vec::new();
    for d in disclosures {
        let Some(cat) = template.category_of(&d.path) else {
            return Err(Refusal {
                reason: RejectReason::BadDisclosure,
                detail: format!("unknown field {}", d.path),
                fields: vec![d.path.clone()],
            });
        };
        if !acceptance.contains(&cat) {
            beyond.push(d.path.clone());
        }
    }
    if !beyond.is_empty() {
        return Err(Refusal {
            reason: RejectReason::CategoryNotAccepted,
            detail: format!(
                "{} field(s) of categories this node may not receive",
                beyond.len()
            ),
            fields: beyond,
        });
    }
    for d in disclosures {
        template
            .parse_field_value(&d.path, &d.value)
            .map_err(|e| Refusal {
                reason: RejectReason::BadDisclosure,
                detail: format!("{}: {}", d.path, e.reason),
                fields: vec![d.path.clone()],
            })?;
    }
    Ok(())
}

/// Commits every field with fresh salts and picks the disclosures `decisions` release.
pub fn commit_and_release(
    fields: &[pb::FieldDisclosure],
    decisions: &[FieldDecision],
) -> Result<(trm_proto::commit::Commitment, Vec<pb::FieldDisclosure>), trm_proto::commit::CommitError>
{
    let pairs: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|f| (f.path.clone(), f.value.clone()))
        .collect();
    let c = trm_proto::commit::commit(&pairs, &mut rand::rngs::OsRng)?;
    let released: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d.released)
        .map(|d| d.path.as_str())
        .collect();
    let out = c
        .disclosures
        .iter()
        .filter(|d| released.contains(d.path.as_str()))
        .cloned()
        .collect();
    Ok((c, out))
}
