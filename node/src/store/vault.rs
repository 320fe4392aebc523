//! Encryption at rest and crypto-shredding of case values.
//!
//! Every case field value and every disclosure salt is stored sealed (XChaCha20-Poly1305)
//! under a data key for one *scope* (a local case, or a case received from one peer) and one
//! data category. Data keys are stored wrapped under the node's master key (`keys/store.key`),
//! which is held apart from the store. Erasing a category of a scope deletes its data key and
//! then **rotates the master key**: every remaining data key is re-wrapped under a fresh master
//! key and the old one is destroyed. Copies of the erased data key left in sled's old segments
//! (or in backups taken before) are wrapped under a master key that no longer exists, so the
//! erased values cannot be recovered from the node's files.
//!
//! Data keys being created are pinned in memory until the job that stores them has committed,
//! so two concurrent jobs for the same scope and category always use the same key; rotation
//! takes a write lock that waits for those jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};
use zeroize::Zeroizing;

use crate::store::{Op, SealedGroup, Store, StoreError};

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A wrapped key or sealed value does not decrypt: wrong master key or corruption.
    #[error("sealed data does not decrypt ({0}); the store key does not match the store")]
    Decrypt(String),
    /// The master key file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// file
        path: PathBuf,
        /// cause
        source: std::io::Error,
    },
}

type Key = Zeroizing<[u8; 32]>;

struct Cached {
    dek: Key,
    pending: usize,
}

/// The node's key vault.
pub struct Vault {
    store: Store,
    key_path: PathBuf,
    master: Arc<RwLock<Key>>,
    cache: Mutex<HashMap<(String, i32), Cached>>,
}

/// Keys a job is using; hold it until the job's commit returned.
pub struct KeyUse<'a> {
    vault: &'a Vault,
    used: Vec<(String, i32)>,
    _rotation: OwnedRwLockReadGuard<Key>,
}

impl Drop for KeyUse<'_> {
    fn drop(&mut self) {
        let mut cache = self.vault.cache.lock().unwrap_or_else(|p| p.into_inner());
        for k in self.used.drain(..) {
            if let Some(c) = cache.get_mut(&k) {
                c.pending = c.pending.saturating_sub(1);
                if c.pending == 0 {
                    cache.remove(&k);
                }
            }
        }
    }
}

fn aad(scope: &str, category: i32) -> Vec<u8> {
    let mut a = scope.as_bytes().to_vec();
    a.push(0);
    a.extend_from_slice(&category.to_be_bytes());
    a
}

/// Associated data of a sealed group (version 1): its scope, category and record, so a group
/// opens only in the record it was sealed for.
fn group_aad(scope: &str, category: i32, record: &[u8], version: u32) -> Vec<u8> {
    let mut a = aad(scope, category);
    if version >= 1 {
        a.push(1);
        a.extend_from_slice(record);
    }
    a
}

fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    (nonce.to_vec(), ct)
}

fn open_with(key: &[u8; 32], aad: &[u8], nonce: &[u8], ct: &[u8]) -> Result<Vec<u8>, VaultError> {
    if nonce.len() != 24 {
        return Err(VaultError::Decrypt("bad nonce".into()));
    }
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| VaultError::Decrypt("authentication failed".into()))
}

fn wrap(master: &[u8; 32], scope: &str, category: i32, dek: &[u8; 32]) -> Vec<u8> {
    let (nonce, ct) = seal_with(master, &aad(scope, category), dek);
    [nonce, ct].concat()
}

fn unwrap_key(
    master: &[u8; 32],
    scope: &str,
    category: i32,
    wrapped: &[u8],
) -> Result<Key, VaultError> {
    if wrapped.len() < 24 {
        return Err(VaultError::Decrypt("wrapped key too short".into()));
    }
    let pt = open_with(
        master,
        &aad(scope, category),
        &wrapped[..24],
        &wrapped[24..],
    )?;
    let arr: [u8; 32] = pt
        .as_slice()
        .try_into()
        .map_err(|_| VaultError::Decrypt("wrapped key has a wrong length".into()))?;
    Ok(Zeroizing::new(arr))
}

impl Vault {
    /// Opens the vault with the master key file at `key_path`, finishing an interrupted
    /// rotation if one is found.
    pub fn open(store: Store, key_path: &Path, master: [u8; 32]) -> Result<Self, VaultError> {
        let mut master = Zeroizing::new(master);
        let fp = trm_proto::signing::sha256(master.as_slice()).to_vec();
        match store.meta("master_key_sha256")? {
            None => {
                store.commit_blocking(vec![Op::PutMeta("master_key_sha256".into(), fp)])?;
            }
            Some(stored) if stored == fp => {}
            Some(stored) => {
                // A rotation may have committed without its final rename.
                let next = next_path(key_path);
                let candidate = std::fs::read(&next)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                match candidate {
                    Some(k) if trm_proto::signing::sha256(&k).to_vec() == stored => {
                        crate::base::fsx::rename_durably(&next, key_path).map_err(|e| {
                            VaultError::Io {
                                path: key_path.to_path_buf(),
                                source: std::io::Error::other(e.to_string()),
                            }
                        })?;
                        *master = k;
                    }
                    _ => {
                        return Err(VaultError::Decrypt(format!(
                            "{} is not the key this store was sealed with",
                            key_path.display()
                        )))
                    }
                }
            }
        }
        let _ = std::fs::remove_file(next_path(key_path));
        Ok(Self {
            store,
            key_path: key_path.to_path_buf(),
            master: Arc::new(RwLock::new(master)),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a job that will seal data; hold the returned value until its commit returned.
    pub async fn begin(&self) -> KeyUse<'_> {
        KeyUse {
            vault: self,
            used: Vec::new(),
            _rotation: self.master.clone().read_owned().await,
        }
    }

    /// Like [`Vault::begin`] for tools that run without a runtime (no rotation can be in
    /// progress then); `None` while a rotation holds the master key.
    pub fn try_begin(&self) -> Option<KeyUse<'_>> {
        Some(KeyUse {
            vault: self,
            used: Vec::new(),
            _rotation: self.master.clone().try_read_owned().ok()?,
        })
    }

    fn dek(
        &self,
        ku: &mut KeyUse<'_>,
        scope: &str,
        category: i32,
        ops: &mut Vec<Op>,
    ) -> Result<Key, VaultError> {
        let master: &[u8; 32] = &ku._rotation;
        let k = (scope.to_string(), category);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get_mut(&k) {
            c.pending += 1;
            ku.used.push(k);
            return Ok(c.dek.clone());
        }
        let dek = match self.store.dek(scope, category)? {
            Some(w) => unwrap_key(master, scope, category, &w)?,
            None => {
                let mut d = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(d.as_mut_slice());
                ops.push(Op::PutDek(
                    scope.to_string(),
                    category,
                    wrap(master, scope, category, &d),
                ));
                d
            }
        };
        cache.insert(
            k.clone(),
            Cached {
                dek: dek.clone(),
                pending: 1,
            },
        );
        ku.used.push(k);
        Ok(dek)
    }

    /// Seals `plaintext` for `scope` and `category`, to be stored in `record` (bound in the
    /// associated data), adding any new key to `ops`.
    pub fn seal(
        &self,
        ku: &mut KeyUse<'_>,
        scope: &str,
        record: &[u8],
        category: i32,
        plaintext: &[u8],
        ops: &mut Vec<Op>,
    ) -> Result<SealedGroup, VaultError> {
        let dek = self.dek(ku, scope, category, ops)?;
        let (nonce, ciphertext) =
            seal_with(&dek, &group_aad(scope, category, record, 1), plaintext);
        Ok(SealedGroup {
            category,
            nonce,
            ciphertext,
            aad_version: 1,
        })
    }

    /// Opens a sealed group stored in `record`; `Ok(None)` if its key was erased.
    pub async fn open_group(
        &self,
        scope: &str,
        record: &[u8],
        g: &SealedGroup,
    ) -> Result<Option<Vec<u8>>, VaultError> {
        let master = self.master.read().await;
        let k = (scope.to_string(), g.category);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&k)
            .map(|c| c.dek.clone());
        let dek = match cached {
            Some(d) => d,
            None => match self.store.dek(scope, g.category)? {
                Some(w) => unwrap_key(&master, scope, g.category, &w)?,
                None => return Ok(None),
            },
        };
        if g.aad_version > 1 {
            return Err(VaultError::Decrypt("unknown sealed group version".into()));
        }
        let aad = group_aad(scope, g.category, record, g.aad_version);
        open_with(&dek, &aad, &g.nonce, &g.ciphertext).map(Some)
    }

    /// Whether `wrapped` (a stored data key of `scope` and `category`) opens under the current
    /// master key. Tests use it to show that an erased key's old copies are dead.
    pub async fn unwraps(&self, scope: &str, category: i32, wrapped: &[u8]) -> bool {
        let master = self.master.read().await;
        unwrap_key(&master, scope, category, wrapped).is_ok()
    }

    /// Destroys the keys of `categories` in `scopes` and rotates the master key, together with
    /// `extra` writes (e.g. the records' sealed groups removed). Durable when it returns.
    ///
    /// Order (a power cut between any two steps leaves a store that opens): the new key is
    /// written to `store.next` (temp file, sync, rename, sync the folder); only then is the
    /// store committed with the new key's hash; then `store.next` is renamed over `store.key`
    /// and the folder synced. [`Vault::open`] finishes a rotation cut after the commit.
    pub async fn erase(
        &self,
        scopes: &[String],
        categories: &[i32],
        mut extra: Vec<Op>,
    ) -> Result<(), VaultError> {
        let mut master = self.master.write().await;
        let mut new = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(new.as_mut_slice());
        let mut ops = Vec::new();
        for (s, c, wrapped) in self.store.all_deks()? {
            if scopes.contains(&s) && categories.contains(&c) {
                ops.push(Op::DeleteDek(s, c));
                continue;
            }
            let dek = unwrap_key(&master, &s, c, &wrapped)?;
            ops.push(Op::PutDek(s.clone(), c, wrap(&new, &s, c, &dek)));
        }
        ops.append(&mut extra);
        ops.push(Op::PutMeta(
            "master_key_sha256".into(),
            trm_proto::signing::sha256(new.as_slice()).to_vec(),
        ));
        let next = next_path(&self.key_path);
        crate::base::fsx::write_private(&next, new.as_slice()).map_err(|e| VaultError::Io {
            path: next.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        self.store.commit(ops).await?;
        // The store now names the new key: keep it in memory whatever the rename does.
        *master = new;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(s, c), _| !(scopes.contains(s) && categories.contains(c)));
        crate::base::fsx::rename_durably(&next, &self.key_path).map_err(|e| VaultError::Io {
            path: self.key_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(())
    }
}

fn next_path(key_path: &Path) -> PathBuf {
    key_path.with_extension("next")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::durability::{self, Step};

    /// Position of the first recorded `step` on `path` at or after `from`.
    fn find(log: &[(PathBuf, Step)], from: usize, path: &Path, step: Step) -> Option<usize> {
        log.iter()
            .enumerate()
            .skip(from)
            .find(|(_, (p, s))| p == path && *s == step)
            .map(|(i, _)| i)
    }

    /// A power cut must never leave a store naming a key that is not durably on disk: the
    /// new key's file and its folder entry are synced before the store commits the new key's
    /// hash, and the final rename is synced before `erase` returns. Checks the order of the
    /// durable steps as recorded (no power cut is simulated: see docs/SECURITY.md).
    #[tokio::test]
    async fn erase_syncs_the_new_key_and_its_folder_before_committing_the_new_key_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let keys = root.join("keys");
        let key_path = keys.join("store.key");
        crate::base::fsx::write_private(&key_path, &[7u8; 32]).unwrap();
        let store = Store::open(&root.join("store")).unwrap();
        let vault = Vault::open(store, &key_path, [7u8; 32]).unwrap();
        let mut ku = vault.begin().await;
        let mut ops = Vec::new();
        vault
            .seal(
                &mut ku,
                "case/IT-TEST-1",
                b"record-1",
                1,
                b"synthetic",
                &mut ops,
            )
            .unwrap();
        drop(ku);
        vault.store.commit(ops).await.unwrap();
        let start = durability::under(&root).len();

        vault
            .erase(&["case/IT-TEST-1".to_string()], &[1], Vec::new())
            .await
            .unwrap();

        let log = durability::under(&root);
        let next = key_path.with_extension("next");
        let at = |from, path: &Path, step| {
            find(&log, from, path, step).unwrap_or_else(|| {
                panic!(
                    "no {step:?} of {} after step {from}: {log:?}",
                    path.display()
                )
            })
        };
        let synced = at(start, &next, Step::Rename);
        let dir_synced = at(synced, &keys, Step::SyncDir);
        let committed = at(dir_synced, &root.join("store"), Step::Commit);
        assert!(
            find(&log, start, &root.join("store"), Step::Commit) == Some(committed),
            "the store committed before the new key's folder was synced: {log:?}"
        );
        let renamed = at(committed, &key_path, Step::Rename);
        at(renamed, &keys, Step::SyncDir);
        assert_eq!(std::fs::read(&key_path).unwrap().len(), 32);
        assert!(!next.exists());
    }

    /// Every atomic file write: temp file, sync it, rename, sync the folder, in that order.
    #[test]
    fn a_file_is_synced_renamed_and_its_folder_synced_in_that_order() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let path = root.join("keys").join("signing.key");
        crate::base::fsx::write_private(&path, b"synthetic key bytes").unwrap();
        let steps: Vec<Step> = durability::under(&root)
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            steps,
            vec![Step::WriteTemp, Step::SyncFile, Step::Rename, Step::SyncDir]
        );
        let log = durability::under(&root);
        assert_eq!(log[2].0, path);
        assert_eq!(log[3].0, root.join("keys"));
    }
}
