//! `policy show | reload`: the outgoing law profile.

use trm_admin_api::answers as a;
use trm_proto::admin as api;

use super::{call, Session};
use crate::failure::Failure;
use crate::render::table;

pub(crate) async fn show(s: &Session, to: Option<String>) -> Result<(), Failure> {
    let to = match to {
        Some(cc) if !is_country(&cc) => {
            return Err(Failure::usage(format!(
                "--to {cc}: not a country code (two capital letters, e.g. AL)"
            )))
        }
        other => other.unwrap_or_default(),
    };
    call(s, api::PolicyShow { to }, render_show).await
}

pub(crate) async fn reload(s: &Session) -> Result<(), Failure> {
    call(s, api::PolicyReload {}, render_reload).await
}

fn is_country(cc: &str) -> bool {
    cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())
}

fn list(xs: &[String]) -> String {
    if xs.is_empty() {
        "(none)".into()
    } else {
        xs.join(", ")
    }
}

/// `policy show`: one row per partner, then what this node accepts.
fn render_show(v: &a::PolicyShow) -> String {
    let rows: Vec<Vec<String>> = v
        .partners
        .iter()
        .map(|p| {
            vec![
                p.country.clone(),
                list(&p.outgoing),
                p.profile_key.clone(),
                p.acceptance.as_deref().map_or("(not pinned)".into(), list),
                list(&p.may_send),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "partner",
            "law lets us send",
            "node.toml key",
            "partner accepts",
            "may send",
        ],
        &rows,
    );
    out.push_str(&format!(
        "default_outgoing (partners without their own entry): {}\n{} accepts: {}\n",
        list(&v.default_outgoing),
        v.country,
        list(&v.acceptance)
    ));
    out.push_str("Consent, supervisor approval and the four-eyes rule still decide per case.\n");
    out
}

/// `policy reload`: what changed, and what needs a restart.
fn render_reload(v: &a::PolicyReloaded) -> String {
    let mut out = String::new();
    if v.changed.is_empty() {
        out.push_str("outgoing profile unchanged\n");
    }
    for c in &v.changed {
        let after = if c.present {
            list(&c.after)
        } else {
            "(entry removed)".into()
        };
        out.push_str(&format!(
            "{}: {} -> {}\n",
            c.key,
            if c.before.is_empty() {
                "(none)".into()
            } else {
                c.before.join(", ")
            },
            after
        ));
    }
    if !v.restart_needed.is_empty() {
        out.push_str(&format!(
            "not applied until the node restarts: {}\n",
            v.restart_needed.join(", ")
        ));
    }
    out
}
