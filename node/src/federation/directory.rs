//! The contact directory: each node publishes a signed list of its TRM focal points; peers
//! keep the latest valid version of each country's list.

use prost::Message;
use serde_json::Value;
use trm_proto::pb::{self, RejectReason};
use trm_proto::signing::{self, Tag};

use crate::exchange::receive::Refusal;
use crate::node::Ctx;

/// Store key of this node's own (unsigned) directory.
pub const OWN_KEY: &str = "directory/own";

/// Store key of a peer's latest signed directory.
pub fn peer_key(cc: &str) -> String {
    format!("directory/peer/{cc}")
}

/// Roles a focal point may have.
pub const ROLES: &[&str] = &[
    "national_referral_unit",
    "police",
    "prosecutor",
    "social_services",
    "child_protection",
    "labour_inspectorate",
    "ngo",
    "other",
];

/// Checks an incoming DirectoryUpdate: signed by the peer, about the peer, newer than the one kept.
pub fn check_update(ctx: &Ctx, peer: &str, u: &pb::DirectoryUpdate) -> Result<(), Refusal> {
    let signed = u.directory.as_ref().ok_or_else(|| {
        Refusal::new(
            RejectReason::Malformed,
            "directory update without directory",
        )
    })?;
    let d = crate::referral::lifecycle::verify_directory(ctx, peer, signed)?;
    if let Some(old) = stored_peer(ctx, peer) {
        if d.version <= old.version {
            return Err(Refusal::new(
                RejectReason::OutOfOrder,
                format!(
                    "directory version {} is not newer than {}",
                    d.version, old.version
                ),
            ));
        }
    }
    Ok(())
}

fn stored_peer(ctx: &Ctx, peer: &str) -> Option<pb::Directory> {
    let bytes = ctx.store.meta(&peer_key(peer)).ok().flatten()?;
    let signed = pb::Signed::decode(bytes.as_slice()).ok()?;
    pb::Directory::decode(signed.body.as_slice()).ok()
}

/// This node's own directory (not yet signed), if edited.
pub fn own(ctx: &Ctx) -> Option<pb::Directory> {
    let bytes = ctx.store.meta(OWN_KEY).ok().flatten()?;
    pb::Directory::decode(bytes.as_slice()).ok()
}

/// Parses an edited directory (JSON: `{"contacts": [{institution, unit, role, channels,
/// languages, hours, last_confirmed}]}`), naming the offending entry on error.
pub fn parse_edit(text: &str, now_ms: i64) -> Result<Vec<pb::Contact>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let list = v
        .get("contacts")
        .and_then(Value::as_array)
        .ok_or("expected an object with a \"contacts\" list")?;
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let list = |k: &str| -> Vec<String> {
            c.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let role = s("role");
        if !ROLES.contains(&role.as_str()) {
            return Err(format!(
                "contacts[{i}].role: must be one of {}",
                ROLES.join(", ")
            ));
        }
        if s("institution").is_empty() {
            return Err(format!("contacts[{i}].institution: required"));
        }
        let confirmed = match c.get("last_confirmed").and_then(Value::as_str) {
            Some(d) => crate::base::time::parse_date_ms(d).ok_or_else(|| {
                format!("contacts[{i}].last_confirmed: expected a date YYYY-MM-DD")
            })?,
            None => now_ms,
        };
        out.push(pb::Contact {
            institution: s("institution"),
            unit: s("unit"),
            role,
            channels: list("channels"),
            languages: list("languages"),
            hours: s("hours"),
            last_confirmed_ms: confirmed,
        });
    }
    Ok(out)
}

/// Signs this node's directory with a new version.
pub fn sign_own(ctx: &Ctx, d: &pb::Directory) -> pb::Signed {
    let body = d.encode_to_vec();
    pb::Signed {
        signature: signing::sign(&ctx.keys.signing, Tag::Directory, &body).to_vec(),
        signer: ctx.keys.public_key().to_vec(),
        body,
    }
}

/// Every country's entries as JSON, with stale marking.
pub fn list(ctx: &Ctx, country: Option<&str>) -> trm_admin_api::answers::DirectoryList {
    let now = ctx.clock.now_ms();
    let stale_ms = ctx.cfg.directory_stale_days as i64 * 86_400_000;
    let mut dirs: Vec<(String, pb::Directory, bool)> = Vec::new();
    if let Some(d) = own(ctx) {
        dirs.push((ctx.country().to_string(), d, true));
    }
    for p in ctx.peers.all() {
        if let Some(d) = stored_peer(ctx, p.card.country()) {
            dirs.push((p.card.country().to_string(), d, false));
        }
    }
    let entries = dirs
        .into_iter()
        .filter(|(cc, _, _)| country.is_none_or(|c| c == cc))
        .flat_map(|(cc, d, own)| {
            d.contacts
                .into_iter()
                .map(move |c| trm_admin_api::answers::DirectoryEntry {
                    country: cc.clone(),
                    own,
                    version: d.version,
                    last_confirmed: crate::base::time::format_ms(c.last_confirmed_ms),
                    stale: now - c.last_confirmed_ms > stale_ms,
                    institution: c.institution,
                    unit: c.unit,
                    role: c.role,
                    channels: c.channels,
                    languages: c.languages,
                    hours: c.hours,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    trm_admin_api::answers::DirectoryList {
        entries,
        stale_after_days: u64::from(ctx.cfg.directory_stale_days),
    }
}
