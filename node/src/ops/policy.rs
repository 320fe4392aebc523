//! The outgoing law profile at run time: shown to every role, and taken again from
//! `node.toml` without a restart (`trm-admin policy reload`, or SIGHUP to `trm-node run`).
//!
//! Only `outgoing` and `default_outgoing` are reloaded: they decide what later sends may
//! carry and nothing else holds on to them. Every other setting is named in the answer as
//! needing a restart and left as it is. A `node.toml` that does not validate changes nothing.

use trm_admin_api::answers as a;
use trm_proto::template::category_name;

use crate::base::config::{NodeConfig, OutgoingProfile};
use crate::state::ctx::Ctx;
use crate::store::{AuditEntry, Op};
use trm_proto::audit::AuditKind;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// node.toml is unreadable or invalid.
    #[error("{0}; the profile in force is unchanged")]
    Config(#[from] crate::base::config::ConfigError),
}

/// `policy show [--to CC]`.
pub fn show(ctx: &Ctx, to: Option<&str>) -> a::PolicyShow {
    let profile = ctx.outgoing_profile();
    let mut countries: Vec<String> = ctx
        .peers
        .all()
        .into_iter()
        .map(|p| p.card.country().to_owned())
        .collect();
    countries.extend(profile.per_peer.keys().cloned());
    countries.sort();
    countries.dedup();
    if let Some(cc) = to {
        countries = vec![cc.to_owned()];
    }
    let partners = countries
        .into_iter()
        .map(|cc| {
            let acceptance = ctx.peers.get(&cc).map(|p| names(&p.card.acceptance()));
            partner(&profile, &cc, acceptance)
        })
        .collect();
    a::PolicyShow {
        country: ctx.country().to_owned(),
        acceptance: names(&ctx.cfg.acceptance_categories()),
        default_outgoing: profile.default.clone(),
        partners,
    }
}

/// One partner's profile beside its published acceptance (`None`: not pinned).
fn partner(
    profile: &OutgoingProfile,
    cc: &str,
    acceptance: Option<Vec<String>>,
) -> a::PartnerPolicy {
    let outgoing = names(&profile.for_peer(cc));
    let may_send = match &acceptance {
        Some(acc) => outgoing
            .iter()
            .filter(|c| acc.contains(c))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    a::PartnerPolicy {
        country: cc.to_owned(),
        profile_key: profile.key_for(cc),
        outgoing,
        acceptance,
        may_send,
    }
}

fn names(cats: &[trm_proto::pb::Category]) -> Vec<String> {
    cats.iter().map(|c| category_name(*c).to_owned()).collect()
}

/// Re-reads `node.toml` and puts its outgoing profile in force; `who` is written to the audit
/// log when the reload came from a signal (an admin call is audited by its dispatcher).
pub fn reload(ctx: &Ctx) -> Result<a::PolicyReloaded, ReloadError> {
    let fresh = NodeConfig::load(&ctx.dir)?;
    let before = ctx.outgoing_profile();
    let after = fresh.outgoing_profile();
    let changed = changes(&before, &after);
    let restart_needed = ctx
        .cfg
        .changed_keys(&fresh)
        .into_iter()
        .filter(|k| k != "outgoing" && k != "default_outgoing")
        .collect();
    ctx.set_outgoing_profile(after);
    Ok(a::PolicyReloaded {
        changed,
        restart_needed,
    })
}

/// The profile entries that differ between `before` and `after`, by `node.toml` key.
pub fn changes(before: &OutgoingProfile, after: &OutgoingProfile) -> Vec<a::ProfileChange> {
    let mut out = Vec::new();
    if before.default != after.default {
        out.push(a::ProfileChange {
            key: "default_outgoing".into(),
            before: before.default.clone(),
            after: after.default.clone(),
            present: true,
        });
    }
    let mut keys: Vec<&String> = before
        .per_peer
        .keys()
        .chain(after.per_peer.keys())
        .collect();
    keys.sort();
    keys.dedup();
    for cc in keys {
        let (b, n) = (before.per_peer.get(cc), after.per_peer.get(cc));
        if b != n {
            out.push(a::ProfileChange {
                key: format!("outgoing.{cc}"),
                before: b.cloned().unwrap_or_default(),
                after: n.cloned().unwrap_or_default(),
                present: n.is_some(),
            });
        }
    }
    out
}

/// A reload asked for by SIGHUP: applied like `policy reload` and written to the audit log as
/// an admin call by `signal SIGHUP`. The node logs keys and counts, never a case value.
pub async fn reload_on_signal(ctx: &Ctx) {
    let (result, target) = match reload(ctx) {
        Ok(r) => {
            let keys: Vec<&str> = r.changed.iter().map(|c| c.key.as_str()).collect();
            tracing::info!(
                changed = %keys.join(","),
                restart_needed = %r.restart_needed.join(","),
                "outgoing profile reloaded"
            );
            ("ok", keys.join(","))
        }
        Err(e) => {
            tracing::warn!(error = %e, "outgoing profile not reloaded");
            ("failed", String::new())
        }
    };
    let entry = AuditEntry {
        time_ms: ctx.clock.now_ms(),
        kind: AuditKind::Admin.into(),
        officer: "signal SIGHUP".into(),
        role: "operator".into(),
        call: "policy reload".into(),
        target,
        result: result.into(),
        ..Default::default()
    };
    if let Err(e) = ctx.store.commit(vec![Op::Audit(entry)]).await {
        tracing::error!(error = %e, "cannot audit a reload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn profile(default: &[&str], per_peer: &[(&str, &[&str])]) -> OutgoingProfile {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        OutgoingProfile {
            per_peer: per_peer
                .iter()
                .map(|(cc, xs)| (cc.to_string(), v(xs)))
                .collect::<BTreeMap<_, _>>(),
            default: v(default),
        }
    }

    #[test]
    fn changes_name_each_key_that_differs() {
        let base = profile(&["reference"], &[("AL", &["reference", "health"])]);
        // (after, expected keys and presence)
        let rows: Vec<(OutgoingProfile, Vec<(&str, bool)>)> = vec![
            (base.clone(), vec![]),
            (
                profile(&["reference", "risk"], &[("AL", &["reference", "health"])]),
                vec![("default_outgoing", true)],
            ),
            (
                profile(&["reference"], &[("AL", &["reference"])]),
                vec![("outgoing.AL", true)],
            ),
            (profile(&["reference"], &[]), vec![("outgoing.AL", false)]),
            (
                profile(
                    &["reference"],
                    &[("AL", &["reference", "health"]), ("FR", &["reference"])],
                ),
                vec![("outgoing.FR", true)],
            ),
            (
                profile(&[], &[("FR", &[])]),
                vec![
                    ("default_outgoing", true),
                    ("outgoing.AL", false),
                    ("outgoing.FR", true),
                ],
            ),
        ];
        for (after, want) in rows {
            let got: Vec<(String, bool)> = changes(&base, &after)
                .into_iter()
                .map(|c| (c.key, c.present))
                .collect();
            let want: Vec<(String, bool)> =
                want.into_iter().map(|(k, p)| (k.to_string(), p)).collect();
            assert_eq!(got, want, "after {after:?}");
        }
    }

    #[test]
    fn a_partner_may_be_sent_what_both_sides_allow() {
        let p = profile(&["reference"], &[("AL", &["reference", "health", "risk"])]);
        let acc = |xs: &[&str]| Some(xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // (partner, its published acceptance, the deciding key, what may be sent)
        type Row<'a> = (&'a str, Option<Vec<String>>, &'a str, Vec<&'a str>);
        let rows: Vec<Row> = vec![
            (
                "AL",
                acc(&["reference", "risk"]),
                "outgoing.AL",
                vec!["reference", "risk"],
            ),
            ("AL", acc(&[]), "outgoing.AL", vec![]),
            ("AL", None, "outgoing.AL", vec![]),
            (
                "FR",
                acc(&["reference", "health"]),
                "default_outgoing",
                vec!["reference"],
            ),
        ];
        for (cc, acceptance, key, may) in rows {
            let got = partner(&p, cc, acceptance);
            assert_eq!(got.profile_key, key);
            assert_eq!(got.may_send, may, "{cc}");
        }
    }
}
