//! The contact directory: each node publishes a signed list of its TRM focal points; peers
//! keep the latest valid version of each country's list.

use prost::Message;
use serde_json::Value;
use trm_proto::pb::{self, RejectReason};
use trm_proto::signing::{self, Tag};

use crate::base::vocab::Refusal;
use crate::state::ctx::Ctx;

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
    let pinned = ctx.peers.get(peer);
    let keys = pinned.as_ref().map(|p| p.card.card.key_history.as_slice());
    let kept = stored_peer(ctx, peer).map(|d| d.version);
    check_signed_update(peer, keys, ctx.clock.now_ms(), u, kept).map(|_| ())
}

/// The rules of [`check_update`] on narrow inputs: `keys` is the key history of `peer`'s
/// pinned card (`None`: not pinned), `now_ms` this node's clock, `kept` the version of the
/// peer's directory this node keeps. Returns the directory the update carries.
pub fn check_signed_update(
    peer: &str,
    keys: Option<&[pb::KeyRecord]>,
    now_ms: i64,
    u: &pb::DirectoryUpdate,
    kept: Option<u64>,
) -> Result<pb::Directory, Refusal> {
    let signed = u.directory.as_ref().ok_or_else(|| {
        Refusal::new(
            RejectReason::Malformed,
            "directory update without directory",
        )
    })?;
    let d = verify_signed(peer, keys, now_ms, signed)?;
    if let Some(old) = kept {
        if d.version <= old {
            return Err(Refusal::new(
                RejectReason::OutOfOrder,
                format!("directory version {} is not newer than {old}", d.version),
            ));
        }
    }
    Ok(d)
}

/// Verifies a signed directory of `peer` (tag `trm/1 directory`): signed by a key of `keys`
/// (the peer's pinned key history; `None`: not pinned) valid at `now_ms`, and about `peer`.
pub fn verify_signed(
    peer: &str,
    keys: Option<&[pb::KeyRecord]>,
    now_ms: i64,
    signed: &pb::Signed,
) -> Result<pb::Directory, Refusal> {
    let history = keys.ok_or_else(|| Refusal::new(RejectReason::Revoked, "peer is not pinned"))?;
    let key = trm_proto::card::key_valid_at(history, &signed.signer, now_ms).ok_or_else(|| {
        Refusal::new(
            RejectReason::KeyNotValid,
            "directory signed by a key that is not the peer's",
        )
    })?;
    signing::verify(&key, Tag::Directory, &signed.body, &signed.signature).map_err(|_| {
        Refusal::new(
            RejectReason::BadSignature,
            "directory signature does not verify",
        )
    })?;
    let d = pb::Directory::decode(signed.body.as_slice())
        .map_err(|_| Refusal::new(RejectReason::Malformed, "directory does not decode"))?;
    if d.country != peer {
        return Err(Refusal::new(
            RejectReason::SenderMismatch,
            "directory of another country",
        ));
    }
    Ok(d)
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
pub fn parse_edit(text: &str) -> Result<Vec<pb::Contact>, String> {
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
            // Not confirmed is not "confirmed today": the entry shows as never confirmed.
            None => 0,
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
    dirs.retain(|(cc, _, _)| country.is_none_or(|c| c == cc));
    let versions = dirs
        .iter()
        .map(|(cc, d, own)| trm_admin_api::answers::DirectoryVersion {
            country: cc.clone(),
            own: *own,
            version: d.version,
            published: if d.published_ms == 0 {
                String::new()
            } else {
                crate::base::time::format_ms(d.published_ms)
            },
            entries: d.contacts.len() as u64,
        })
        .collect();
    let entries = dirs
        .into_iter()
        .flat_map(|(cc, d, own)| {
            d.contacts
                .into_iter()
                .map(move |c| trm_admin_api::answers::DirectoryEntry {
                    country: cc.clone(),
                    own,
                    version: d.version,
                    last_confirmed: if c.last_confirmed_ms == 0 {
                        String::new()
                    } else {
                        crate::base::time::format_ms(c.last_confirmed_ms)
                    },
                    stale: c.last_confirmed_ms == 0 || now - c.last_confirmed_ms > stale_ms,
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
        versions,
        stale_after_days: u64::from(ctx.cfg.directory_stale_days),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    /// This node's clock in every row (a fixed instant, not today).
    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// France's keys: current, previous (still in its overlap), retired, announced for later.
    fn current() -> SigningKey {
        key(1)
    }
    fn previous() -> SigningKey {
        key(2)
    }
    fn retired() -> SigningKey {
        key(3)
    }
    fn later() -> SigningKey {
        key(4)
    }
    fn stranger() -> SigningKey {
        key(9)
    }

    fn record(k: &SigningKey, from: i64, until: i64) -> pb::KeyRecord {
        pb::KeyRecord {
            public_key: k.verifying_key().to_bytes().to_vec(),
            valid_from_ms: from,
            valid_until_ms: until,
            ..Default::default()
        }
    }

    /// The key history of France's pinned card.
    fn history() -> Vec<pb::KeyRecord> {
        vec![
            record(&retired(), NOW - 30 * DAY, NOW - 10 * DAY),
            record(&previous(), NOW - 10 * DAY, NOW + DAY),
            record(&current(), NOW - DAY, 0),
            record(&later(), NOW + DAY, 0),
        ]
    }

    fn directory(country: &str, version: u64) -> Vec<u8> {
        pb::Directory {
            country: country.to_string(),
            version,
            published_ms: NOW - DAY,
            contacts: vec![pb::Contact {
                institution: "Synthetic NRU".into(),
                role: "national_referral_unit".into(),
                last_confirmed_ms: NOW - DAY,
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    /// `body` signed by `by` with `tag`, naming `signer` as its key.
    fn signed_as(by: &SigningKey, signer: &SigningKey, tag: Tag, body: Vec<u8>) -> pb::Signed {
        pb::Signed {
            signature: signing::sign(by, tag, &body).to_vec(),
            signer: signer.verifying_key().to_bytes().to_vec(),
            body,
        }
    }

    fn update(s: pb::Signed) -> pb::DirectoryUpdate {
        pb::DirectoryUpdate { directory: Some(s) }
    }

    fn by(k: &SigningKey, body: Vec<u8>) -> pb::DirectoryUpdate {
        update(signed_as(k, k, Tag::Directory, body))
    }

    /// A case, the pinned key history, the update, the version kept, and the directory version
    /// accepted or the refusal.
    type UpdateRow<'a> = (
        &'static str,
        Option<&'a [pb::KeyRecord]>,
        pb::DirectoryUpdate,
        Option<u64>,
        Result<u64, (RejectReason, &'static str)>,
    );

    #[test]
    fn directory_updates() {
        let h = history();
        let pinned = Some(h.as_slice());
        let mut altered = signed_as(&current(), &current(), Tag::Directory, directory("FR", 5));
        altered.body = directory("FR", 6);
        let rows: Vec<UpdateRow> = vec![
            (
                "the peer's first directory",
                pinned,
                by(&current(), directory("FR", 1)),
                None,
                Ok(1),
            ),
            (
                "newer than the one kept",
                pinned,
                by(&current(), directory("FR", 4)),
                Some(3),
                Ok(4),
            ),
            (
                "signed by the previous key within its overlap",
                pinned,
                by(&previous(), directory("FR", 4)),
                Some(3),
                Ok(4),
            ),
            (
                "the same version again",
                pinned,
                by(&current(), directory("FR", 3)),
                Some(3),
                Err((
                    RejectReason::OutOfOrder,
                    "directory version 3 is not newer than 3",
                )),
            ),
            (
                "an older version",
                pinned,
                by(&current(), directory("FR", 2)),
                Some(3),
                Err((
                    RejectReason::OutOfOrder,
                    "directory version 2 is not newer than 3",
                )),
            ),
            (
                "an update without a directory",
                pinned,
                pb::DirectoryUpdate { directory: None },
                None,
                Err((
                    RejectReason::Malformed,
                    "directory update without directory",
                )),
            ),
            (
                "from a peer that is not pinned",
                None,
                by(&current(), directory("FR", 1)),
                None,
                Err((RejectReason::Revoked, "peer is not pinned")),
            ),
            (
                "signed by a stranger naming its own key",
                pinned,
                by(&stranger(), directory("FR", 1)),
                None,
                Err((
                    RejectReason::KeyNotValid,
                    "directory signed by a key that is not the peer's",
                )),
            ),
            (
                "signed by a retired key",
                pinned,
                by(&retired(), directory("FR", 4)),
                Some(3),
                Err((
                    RejectReason::KeyNotValid,
                    "directory signed by a key that is not the peer's",
                )),
            ),
            (
                "signed by a key announced for later",
                pinned,
                by(&later(), directory("FR", 4)),
                Some(3),
                Err((
                    RejectReason::KeyNotValid,
                    "directory signed by a key that is not the peer's",
                )),
            ),
            (
                "a stranger's signature naming the peer's key",
                pinned,
                update(signed_as(
                    &stranger(),
                    &current(),
                    Tag::Directory,
                    directory("FR", 1),
                )),
                None,
                Err((
                    RejectReason::BadSignature,
                    "directory signature does not verify",
                )),
            ),
            (
                "signed with another domain tag",
                pinned,
                update(signed_as(
                    &current(),
                    &current(),
                    Tag::Envelope,
                    directory("FR", 1),
                )),
                None,
                Err((
                    RejectReason::BadSignature,
                    "directory signature does not verify",
                )),
            ),
            (
                "body changed after signing (an old version is not reported as old)",
                pinned,
                update(altered),
                Some(9),
                Err((
                    RejectReason::BadSignature,
                    "directory signature does not verify",
                )),
            ),
            (
                "signed bytes that are not a directory",
                pinned,
                by(&current(), vec![0xff; 4]),
                None,
                Err((RejectReason::Malformed, "directory does not decode")),
            ),
            (
                "the directory of another country",
                pinned,
                by(&current(), directory("IT", 1)),
                None,
                Err((RejectReason::SenderMismatch, "directory of another country")),
            ),
        ];
        for (case, keys, u, kept, want) in rows {
            let got = check_signed_update("FR", keys, NOW, &u, kept)
                .map(|d| d.version)
                .map_err(|r| (r.reason, r.detail));
            assert_eq!(got, want.map_err(|(r, d)| (r, d.to_string())), "{case}");
        }
    }

    /// A case, the edited text, and the contacts (institution, last confirmed) or the error.
    type EditRow = (
        &'static str,
        String,
        Result<Vec<(&'static str, i64)>, String>,
    );

    #[test]
    fn directory_edits() {
        let march = crate::base::time::parse_date_ms("2026-03-01").expect("date");
        let roles = ROLES.join(", ");
        let contact = |institution: &str, role: &str| {
            format!(r#"{{"institution": "{institution}", "role": "{role}"}}"#)
        };
        let nru = contact("Synthetic NRU", "national_referral_unit");
        let rows: Vec<EditRow> = vec![
            ("no contacts", r#"{"contacts": []}"#.into(), Ok(vec![])),
            (
                "one contact without a confirmation date: never confirmed",
                format!(r#"{{"contacts": [{nru}]}}"#),
                Ok(vec![("Synthetic NRU", 0)]),
            ),
            (
                "a contact confirmed on a given day",
                r#"{"contacts": [{"institution": "Police", "role": "police", "last_confirmed": "2026-03-01"}]}"#.into(),
                Ok(vec![("Police", march)]),
            ),
            (
                "not JSON",
                "contacts:".into(),
                Err("not JSON: expected value at line 1 column 1".into()),
            ),
            (
                "no contacts list",
                r#"{"entries": []}"#.into(),
                Err("expected an object with a \"contacts\" list".into()),
            ),
            (
                "contacts not a list",
                r#"{"contacts": {}}"#.into(),
                Err("expected an object with a \"contacts\" list".into()),
            ),
            (
                "an unknown role, named by its index",
                format!(r#"{{"contacts": [{nru}, {}]}}"#, contact("Synthetic", "army")),
                Err(format!("contacts[1].role: must be one of {roles}")),
            ),
            (
                "no role",
                r#"{"contacts": [{"institution": "Synthetic NRU"}]}"#.into(),
                Err(format!("contacts[0].role: must be one of {roles}")),
            ),
            (
                "no institution",
                format!(r#"{{"contacts": [{}]}}"#, contact("", "ngo")),
                Err("contacts[0].institution: required".into()),
            ),
            (
                "a date in another format",
                r#"{"contacts": [{"institution": "Police", "role": "police", "last_confirmed": "01/03/2026"}]}"#.into(),
                Err("contacts[0].last_confirmed: expected a date YYYY-MM-DD".into()),
            ),
        ];
        for (case, text, want) in rows {
            let got = parse_edit(&text).map(|cs| {
                cs.iter()
                    .map(|c| (c.institution.clone(), c.last_confirmed_ms))
                    .collect::<Vec<_>>()
            });
            let want = want.map(|cs| {
                cs.into_iter()
                    .map(|(i, t)| (i.to_string(), t))
                    .collect::<Vec<_>>()
            });
            assert_eq!(got, want, "{case}");
        }
    }
}
