//! Case values at rest: grouping fields by data category, sealing each group with the vault,
//! and opening them again. Nothing outside this module and the vault sees a sealed group's
//! plaintext layout.

use prost::Message;
use trm_proto::pb::{self, Category};

use crate::store::{FieldList, Op, SealedGroup};
use crate::vault::{KeyUse, Vault, VaultError};

/// The vault scope of a case recorded on this node.
pub fn case_scope(case_id: &str) -> String {
    format!("case/{case_id}")
}

/// The vault scope of a case as received from `peer`.
pub fn received_scope(peer: &str, case_ref: &str) -> String {
    format!("rx/{peer}/{case_ref}")
}

/// Seals `fields` grouped by the category `category_of` gives each path (unknown paths are
/// treated as identity: personal, the strictest).
pub fn seal(
    vault: &Vault,
    ku: &mut KeyUse<'_>,
    scope: &str,
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
            vault.seal(ku, scope, cat, &plain, ops)
        })
        .collect()
}

/// Opens every group whose key still exists; erased groups are skipped.
pub async fn open(
    vault: &Vault,
    scope: &str,
    groups: &[SealedGroup],
) -> Result<Vec<pb::FieldDisclosure>, VaultError> {
    let mut out = Vec::new();
    for g in groups {
        if let Some(plain) = vault.open_group(scope, g).await? {
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
