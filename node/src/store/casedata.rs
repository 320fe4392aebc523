//! Case values at rest: grouping fields by data category, sealing each group with the vault,
//! and opening them again. Nothing outside this module and the vault sees a sealed group's
//! plaintext layout.

use prost::Message;
use trm_proto::pb::{self, Category};

use crate::store::vault::{KeyUse, Vault, VaultError};
use crate::store::{FieldList, Op, SealedGroup};

/// The vault scope of a case recorded on this node.
pub fn case_scope(case_id: &str) -> String {
    format!("case/{case_id}")
}

/// The vault scope of a case as received from `peer`.
pub fn received_scope(peer: &str, case_ref: &str) -> String {
    format!("rx/{peer}/{case_ref}")
}

/// The vault scope of what this node sends `peer` about a case it did not record itself (a
/// follow-up on a received case): one per thread, erased with the thread's received values.
pub fn thread_scope(peer: &str, case_ref: &str) -> String {
    format!("tx/{peer}/{case_ref}")
}

/// The vault scope of a message sent to `peer`: its local case's, or its thread's.
pub fn sent_scope(case_id: &str, peer: &str, case_ref: &str) -> String {
    if case_id.is_empty() && !case_ref.is_empty() {
        thread_scope(peer, case_ref)
    } else {
        case_scope(case_id)
    }
}

/// The record label bound into a local case's sealed groups.
pub fn case_record(id: &str) -> Vec<u8> {
    [b"case\0".as_slice(), id.as_bytes()].concat()
}

/// Which sealed list of a sent message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SentPart {
    /// The disclosures released with it.
    Released,
    /// Every committed field.
    Committed,
}

/// The record label bound into a sent message's sealed groups.
pub fn sent_record(id: &[u8], part: SentPart) -> Vec<u8> {
    let part: &[u8] = match part {
        SentPart::Released => b"\0released",
        SentPart::Committed => b"\0committed",
    };
    [b"sent\0".as_slice(), id, part].concat()
}

/// The record label bound into a received message's sealed groups.
pub fn received_record(peer: &str, id: &[u8]) -> Vec<u8> {
    [b"received\0".as_slice(), peer.as_bytes(), b"\0", id].concat()
}

/// The case reference in a stored envelope ("" if none).
pub fn envelope_case_ref(envelope: &[u8]) -> String {
    pb::Envelope::decode(envelope)
        .ok()
        .and_then(|e| pb::Body::decode(e.body.as_slice()).ok())
        .map(|b| b.case_ref)
        .unwrap_or_default()
}

/// Opens one sealed list of a sent message. Groups sealed before per-thread scopes (version
/// 0) of messages about no local case were sealed under the shared `case/` scope.
pub async fn open_sent(
    vault: &Vault,
    rec: &crate::store::SentRecord,
    part: SentPart,
) -> Result<Vec<pb::FieldDisclosure>, VaultError> {
    let groups = match part {
        SentPart::Released => &rec.released,
        SentPart::Committed => &rec.committed,
    };
    let scope = sent_scope(&rec.case_id, &rec.peer, &envelope_case_ref(&rec.envelope));
    let legacy = case_scope(&rec.case_id);
    let record = sent_record(&rec.id, part);
    let mut out = Vec::new();
    for g in groups {
        let s = if g.aad_version == 0 { &legacy } else { &scope };
        out.extend(open(vault, s, &record, std::slice::from_ref(g)).await?);
    }
    Ok(out)
}

/// Seals `fields` grouped by the category `category_of` gives each path (unknown paths are
/// treated as identity: personal, the strictest).
pub fn seal(
    vault: &Vault,
    ku: &mut KeyUse<'_>,
    scope: &str,
    record: &[u8],
    fields: &[pb::FieldDisclosure],
    category_of: impl Fn(&str) -> Option<Category>,
    ops: &mut Vec<Op>,
) -> Result<Vec<SealedGroup>, VaultError> {
    let mut groups: std::collections::BTreeMap<i32, Vec<pb::FieldDisclosure>> = Default::default();
    for f in fields {
        let cat = category_of(&f.path).unwrap_or(Category::Identity) as i32;
        groups.entry(cat).or_default().push(f.clone());
    }
    groups
        .into_iter()
        .map(|(cat, fields)| {
            let plain = zeroize::Zeroizing::new(FieldList { fields }.encode_to_vec());
            vault.seal(ku, scope, record, cat, &plain, ops)
        })
        .collect()
}

/// Opens every group whose key still exists; erased groups are skipped.
pub async fn open(
    vault: &Vault,
    scope: &str,
    record: &[u8],
    groups: &[SealedGroup],
) -> Result<Vec<pb::FieldDisclosure>, VaultError> {
    let mut out = Vec::new();
    for g in groups {
        if let Some(plain) = vault.open_group(scope, record, g).await? {
            let list = FieldList::decode(plain.as_slice())
                .map_err(|e| VaultError::Decrypt(format!("sealed group does not decode: {e}")))?;
            out.extend(list.fields);
        }
    }
    Ok(out)
}

/// The category numbers present in `groups`.
pub fn categories(groups: &[SealedGroup]) -> Vec<Category> {
    groups
        .iter()
        .filter_map(|g| Category::try_from(g.category).ok())
        .collect()
}

/// The record label bound into the sealed values of earlier version `number` of a local case.
pub fn version_record(id: &str, number: u32) -> Vec<u8> {
    [case_record(id), format!("\0v{number}").into_bytes()].concat()
}

/// The field paths whose value differs between `old` and `new` (added, changed or removed),
/// sorted.
pub fn changed_paths(old: &[pb::FieldDisclosure], new: &[pb::FieldDisclosure]) -> Vec<String> {
    let map = |f: &[pb::FieldDisclosure]| -> std::collections::BTreeMap<String, Vec<u8>> {
        f.iter()
            .map(|d| (d.path.clone(), d.value.clone()))
            .collect()
    };
    let (a, b) = (map(old), map(new));
    let mut paths: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|p| a.get(*p) != b.get(*p))
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// A case's next version: the current values (`old`) sealed into its history under their
/// version's label, `new` sealed as the current values, `next` (who, when, why, what changed)
/// as the current version. The vault writes go to `ops`; the caller commits them with
/// `Op::PutCase` of the result and its audit entry in one job.
pub fn next_version(
    vault: &Vault,
    ku: &mut KeyUse<'_>,
    case: &crate::store::CaseRecord,
    (old, new): (&[pb::FieldDisclosure], &[pb::FieldDisclosure]),
    mut next: crate::store::CaseVersion,
    category_of: impl Fn(&str) -> Option<Category>,
    ops: &mut Vec<Op>,
) -> Result<crate::store::CaseRecord, VaultError> {
    let scope = case_scope(&case.id);
    let mut prev = case.current_version();
    prev.sealed = seal(
        vault,
        ku,
        &scope,
        &version_record(&case.id, prev.number),
        old,
        &category_of,
        ops,
    )?;
    next.number = prev.number + 1;
    next.sealed.clear();
    let mut c = case.clone();
    c.sealed = seal(
        vault,
        ku,
        &scope,
        &case_record(&case.id),
        new,
        &category_of,
        ops,
    )?;
    c.history.push(prev);
    c.current = Some(next);
    Ok(c)
}
