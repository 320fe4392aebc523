//! Backup and restore of a node folder.
//!
//! A backup is one file: the line `TRM-NODE-BACKUP`, one line of JSON (the [`Header`]: format,
//! store schema version, country, time, SHA-256 and length of the content), then the content:
//!
//! ```text
//! content = *( file / record ) end
//! file    = 'F' u16be path_len path u32be mode u64be len bytes   ; a file of the node folder
//! record  = 'R' u16be tree_len tree u32be key_len key u32be value_len value   ; a store record
//! end     = 'E'
//! ```
//!
//! The store part is a consistent snapshot ([`Store::snapshot`]): it is taken under the
//! store's write lock, so a running node's backup sees every committed job whole or not at
//! all. The files are the non-store files that matter: `node.toml`, the identity card, the TLS
//! certificate and the key history. **Private keys are left out** unless asked for
//! (`--include-keys`): a backup is copied to places (backup servers, tapes) that more people
//! can read than the node's `keys/` folder, and a copy of the signing key lets anyone sign as
//! this country towards every partner. Keep the keys in a separate, offline key backup.
//!
//! Restore checks the content hash before touching anything, refuses a newer schema, refuses
//! while the node runs (the store is locked), keeps the replaced store beside the new one,
//! and leaves a marker that the next start turns into an audit entry ("restored from backup
//! taken at T") and that `status` and the metrics show. The hash detects damage, not
//! tampering: protect backup files like the node folder itself.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::base::config::{ConfigError, NodeConfig, CONFIG_FILE};
use crate::base::time::format_ms;
use crate::identity::{self, IdentityError, NodeKeys};
use crate::state::ctx::Ctx;
use crate::store::{AuditEntry, Op, Store, StoreError, SCHEMA_VERSION};
use trm_proto::audit::AuditKind;

/// First line of a backup file.
pub const MAGIC: &str = "TRM-NODE-BACKUP";
/// Version of the backup file format this build writes and reads.
pub const FORMAT: u32 = 1;
/// Folder (inside the node folder) where a running node writes online backups.
pub const BACKUP_DIR: &str = "backups";
pub use crate::audit::RESTORE_PENDING;
/// Store metadata key: when this node last wrote a backup (Unix ms, 8 bytes big-endian;
/// `trm-admin queue` shows its age to operators).
pub const LAST_BACKUP: &str = "last_backup";

/// Store metadata key: the last restore (JSON [`RestoreInfo`]).
pub const LAST_RESTORE: &str = "last_restore";

const MAX_HEADER: u64 = 64 << 10;
const MAX_FILE: u64 = 64 << 20;
const MAX_KEY: u32 = 1 << 20;
const MAX_VALUE: u32 = 256 << 20;

/// The JSON line after the magic line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Backup file format ([`FORMAT`]).
    pub format: u32,
    /// Store schema version of the snapshot.
    pub schema: u32,
    /// Country of the node.
    pub country: String,
    /// Name of the node.
    pub node_name: String,
    /// When the snapshot was taken (Unix ms).
    pub taken_ms: i64,
    /// The same, RFC 3339.
    pub taken: String,
    /// Version of the trm-node that wrote it.
    pub trm_node_version: String,
    /// Taken from a running node (through the admin API) rather than a stopped one.
    pub online: bool,
    /// Whether private key files are included.
    pub includes_private_keys: bool,
    /// Files included, relative to the node folder.
    pub files: Vec<String>,
    /// Number of store records.
    pub records: u64,
    /// Length of the content in bytes.
    pub content_bytes: u64,
    /// SHA-256 of the content, hex.
    pub content_sha256: String,
}

/// What a restore leaves for the next start and for `status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RestoreInfo {
    /// When the backup was taken (Unix ms).
    pub taken_ms: i64,
    /// RFC 3339 of the same.
    pub taken: String,
    /// When it was restored (Unix ms).
    pub restored_ms: i64,
    /// SHA-256 of the backup's content.
    pub backup_sha256: String,
}

/// Why a backup or restore failed. Messages are one line and name the file or the problem.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// file
        path: PathBuf,
        /// cause
        source: std::io::Error,
    },
    /// Not a backup file.
    #[error("{0} is not a trm-node backup file")]
    NotABackup(PathBuf),
    /// The backup is damaged (hash, length or structure).
    #[error("{path} is damaged: {detail}; nothing was restored")]
    Damaged {
        /// file
        path: PathBuf,
        /// what was found
        detail: String,
    },
    /// Written by a newer trm-node.
    #[error("backup format {0} is newer than this trm-node supports ({FORMAT}); upgrade trm-node")]
    Format(u32),
    /// The snapshot's store schema is newer than this build.
    #[error("backup holds store schema {found}, newer than this trm-node supports ({supported}); upgrade trm-node first")]
    TooNew {
        /// found
        found: u32,
        /// supported
        supported: u32,
    },
    /// Refusing to overwrite.
    #[error("{0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    /// The target is neither a node folder nor empty.
    #[error("{0} is not a node folder and not empty; restore into a node folder or a new one")]
    NotEmpty(PathBuf),
    /// The backup belongs to another country.
    #[error("the backup is of node {backup}, this folder is node {node}; refusing")]
    Country {
        /// backup's country
        backup: String,
        /// folder's country
        node: String,
    },
    /// Store failure (including [`StoreError::Locked`] while the node runs).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Keys or files of the node.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file of the node folder that goes into a backup.
struct NodeFile {
    rel: PathBuf,
    secret: bool,
}

/// The files of the node folder a backup carries: public ones always, secret ones (private
/// keys, the operator credential written by `init`) only with `include_keys`.
fn node_files(dir: &Path, cfg: &NodeConfig, include_keys: bool) -> Vec<NodeFile> {
    let p = &cfg.paths;
    let mut out: Vec<NodeFile> = [
        PathBuf::from(CONFIG_FILE),
        p.card.clone(),
        p.tls_cert.clone(),
        PathBuf::from(identity::HISTORY_FILE),
    ]
    .into_iter()
    .filter(|rel| dir.join(rel).is_file())
    .map(|rel| NodeFile { rel, secret: false })
    .collect();
    if include_keys {
        let mut secret = vec![
            p.signing_key.clone(),
            p.tls_key.clone(),
            p.store_key.clone(),
            PathBuf::from(identity::OPERATOR_CRED),
        ];
        // Any other file under keys/ (e.g. retired keys after a rotation).
        if let Ok(rd) = std::fs::read_dir(dir.join("keys")) {
            let mut extra: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| Path::new("keys").join(e.file_name()))
                .collect();
            extra.sort();
            secret.extend(extra);
        }
        for rel in secret {
            let known = out.iter().any(|f| f.rel == rel);
            if !known && dir.join(&rel).is_file() {
                out.push(NodeFile { rel, secret: true });
            }
        }
    }
    out
}

/// Writes content records and hashes them on the way.
struct ContentWriter<W: Write> {
    w: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> ContentWriter<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.hash.update(b);
        self.bytes += b.len() as u64;
        self.w.write_all(b)
    }

    fn file(&mut self, rel: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        let len = u16::try_from(rel.len()).map_err(std::io::Error::other)?;
        self.put(b"F")?;
        self.put(&len.to_be_bytes())?;
        self.put(rel.as_bytes())?;
        self.put(&mode.to_be_bytes())?;
        self.put(&(data.len() as u64).to_be_bytes())?;
        self.put(data)
    }

    fn record(&mut self, tree: &str, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        let t = u16::try_from(tree.len()).map_err(std::io::Error::other)?;
        let k = u32::try_from(key.len()).map_err(std::io::Error::other)?;
        let v = u32::try_from(value.len()).map_err(std::io::Error::other)?;
        self.put(b"R")?;
        self.put(&t.to_be_bytes())?;
        self.put(tree.as_bytes())?;
        self.put(&k.to_be_bytes())?;
        self.put(key)?;
        self.put(&v.to_be_bytes())?;
        self.put(value)
    }
}

/// One item of a backup's content.
#[derive(Debug, PartialEq)]
pub enum Item {
    /// A file of the node folder.
    File {
        /// path relative to the node folder
        path: String,
        /// Unix permission bits
        mode: u32,
        /// contents
        data: Vec<u8>,
    },
    /// A store record.
    Record {
        /// tree name
        tree: String,
        /// key
        key: Vec<u8>,
        /// value
        value: Vec<u8>,
    },
}

/// Reads the items of a backup's content (after [`read_header`]).
pub struct ContentReader<R: Read> {
    r: R,
    path: PathBuf,
    done: bool,
}

impl<R: Read> ContentReader<R> {
    fn damaged(&self, detail: impl Into<String>) -> BackupError {
        BackupError::Damaged {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn exact(&mut self, n: u64, max: u64, what: &str) -> Result<Vec<u8>, BackupError> {
        if n > max {
            return Err(self.damaged(format!("{what} of {n} bytes is over the limit")));
        }
        let mut buf = Vec::new();
        (&mut self.r)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(io_err(&self.path))?;
        if buf.len() as u64 != n {
            return Err(self.damaged("content ends early"));
        }
        Ok(buf)
    }

    fn int<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        let v = self.exact(N as u64, N as u64, "number")?;
        v.try_into().map_err(|_| self.damaged("content ends early"))
    }

    fn text(&mut self, n: u64, what: &str) -> Result<String, BackupError> {
        let b = self.exact(n, u16::MAX as u64, what)?;
        String::from_utf8(b).map_err(|_| self.damaged(format!("{what} is not UTF-8")))
    }

    /// The next item, or `None` after the end marker.
    pub fn next_item(&mut self) -> Result<Option<Item>, BackupError> {
        if self.done {
            return Ok(None);
        }
        let [tag] = self.int::<1>()?;
        match tag {
            b'E' => {
                self.done = true;
                Ok(None)
            }
            b'F' => {
                let n = u16::from_be_bytes(self.int()?) as u64;
                let path = self.text(n, "file name")?;
                let mode = u32::from_be_bytes(self.int()?);
                let len = u64::from_be_bytes(self.int()?);
                let data = self.exact(len, MAX_FILE, "file")?;
                Ok(Some(Item::File { path, mode, data }))
            }
            b'R' => {
                let n = u16::from_be_bytes(self.int()?) as u64;
                let tree = self.text(n, "tree name")?;
                let k = u32::from_be_bytes(self.int()?);
                let key = self.exact(k as u64, MAX_KEY as u64, "key")?;
                let v = u32::from_be_bytes(self.int()?);
                let value = self.exact(v as u64, MAX_VALUE as u64, "value")?;
                Ok(Some(Item::Record { tree, key, value }))
            }
            other => Err(self.damaged(format!("unknown item tag {other:#04x}"))),
        }
    }
}

fn read_line_capped(r: &mut impl BufRead, cap: u64, path: &Path) -> Result<String, BackupError> {
    let mut line = Vec::new();
    r.take(cap)
        .read_until(b'\n', &mut line)
        .map_err(io_err(path))?;
    if line.pop() != Some(b'\n') {
        return Err(BackupError::NotABackup(path.to_path_buf()));
    }
    String::from_utf8(line).map_err(|_| BackupError::NotABackup(path.to_path_buf()))
}

/// Reads and checks the magic line and the header.
pub fn read_header(r: &mut impl BufRead, path: &Path) -> Result<Header, BackupError> {
    if read_line_capped(r, MAGIC.len() as u64 + 1, path)? != MAGIC {
        return Err(BackupError::NotABackup(path.to_path_buf()));
    }
    let line = read_line_capped(r, MAX_HEADER, path)?;
    let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| BackupError::Damaged {
        path: path.to_path_buf(),
        detail: format!("header is not JSON ({e})"),
    })?;
    // The format number is checked before the fields, so a newer format is named as such.
    let format = v.get("format").and_then(|f| f.as_u64()).unwrap_or(0) as u32;
    if format > FORMAT {
        return Err(BackupError::Format(format));
    }
    let h: Header = serde_json::from_value(v).map_err(|e| BackupError::Damaged {
        path: path.to_path_buf(),
        detail: format!("header: {e}"),
    })?;
    if h.format != FORMAT {
        return Err(BackupError::Format(h.format));
    }
    Ok(h)
}

fn open_backup(path: &Path) -> Result<(Header, BufReader<std::fs::File>), BackupError> {
    let f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut r = BufReader::new(f);
    let h = read_header(&mut r, path)?;
    Ok((h, r))
}

/// Checks a backup file: header, content length and SHA-256, and that every item reads.
pub fn verify(path: &Path) -> Result<Header, BackupError> {
    let (h, r) = open_backup(path)?;
    struct Hashing<R> {
        r: R,
        hash: Sha256,
        n: u64,
    }
    impl<R: Read> Read for Hashing<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.r.read(buf)?;
            self.hash.update(&buf[..n]);
            self.n += n as u64;
            Ok(n)
        }
    }
    let mut c = ContentReader {
        r: Hashing {
            r,
            hash: Sha256::new(),
            n: 0,
        },
        path: path.to_path_buf(),
        done: false,
    };
    let mut records = 0u64;
    while let Some(item) = c.next_item()? {
        if matches!(item, Item::Record { .. }) {
            records += 1;
        }
    }
    let mut rest = [0u8; 1];
    let trailing = c.r.read(&mut rest).map_err(io_err(path))?;
    let damaged = |detail: String| BackupError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    if trailing != 0 {
        return Err(damaged("data after the end marker".into()));
    }
    if c.r.n != h.content_bytes {
        return Err(damaged(format!(
            "content is {} bytes, the header says {}",
            c.r.n, h.content_bytes
        )));
    }
    let sha = hex::encode(c.r.hash.finalize());
    if sha != h.content_sha256 {
        return Err(damaged(
            "content SHA-256 does not match the header".to_string(),
        ));
    }
    if records != h.records {
        return Err(damaged(format!(
            "{records} store records, the header says {}",
            h.records
        )));
    }
    Ok(h)
}

/// Reads every item of a backup after verifying it (for tools and tests that rewrite one;
/// holds the whole content in memory).
pub fn read_items(path: &Path) -> Result<(Header, Vec<Item>), BackupError> {
    let header = verify(path)?;
    let (_, r) = open_backup(path)?;
    let mut c = ContentReader {
        r,
        path: path.to_path_buf(),
        done: false,
    };
    let mut items = Vec::new();
    while let Some(i) = c.next_item()? {
        items.push(i);
    }
    Ok((header, items))
}

/// Writes a backup made of `items` to `out` (which must not exist), mode 0600; the
/// header's length, hash, record count and file list are computed here.
pub fn write_items(out: &Path, mut header: Header, items: &[Item]) -> Result<Header, BackupError> {
    let mut w = ContentWriter {
        w: Vec::new(),
        hash: Sha256::new(),
        bytes: 0,
    };
    let oio = || io_err(out);
    header.files.clear();
    header.records = 0;
    for i in items {
        match i {
            Item::File { path, mode, data } => {
                w.file(path, *mode, data).map_err(oio())?;
                header.files.push(path.clone());
            }
            Item::Record { tree, key, value } => {
                w.record(tree, key, value).map_err(oio())?;
                header.records += 1;
            }
        }
    }
    w.put(b"E").map_err(oio())?;
    header.content_bytes = w.bytes;
    header.content_sha256 = hex::encode(w.hash.finalize());
    let json = serde_json::to_string(&header).map_err(|e| BackupError::Io {
        path: out.to_path_buf(),
        source: e.into(),
    })?;
    let mut f = create_private(out)?;
    f.write_all(format!("{MAGIC}\n{json}\n").as_bytes())
        .and_then(|_| f.write_all(&w.w))
        .and_then(|_| f.sync_all())
        .map_err(oio())?;
    Ok(header)
}

/// Creates `path` with mode 0600, failing if it exists.
fn create_private(path: &Path) -> Result<std::fs::File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                BackupError::Exists(path.to_path_buf())
            } else {
                BackupError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })
}

fn tmp_beside(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

/// Why `trm-node backup` could not take a backup.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// The output file exists.
    #[error("{0} already exists; refusing to overwrite it")]
    OutExists(PathBuf),
    /// Writing or checking the backup failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The node runs and no operator credential could be loaded.
    #[error("the node is running; a backup needs an operator credential: {0}")]
    Credential(String),
    /// The node runs and refused or failed the `Backup` call.
    #[error("backup through the admin API failed: {0}")]
    Online(String),
    /// The node wrote the backup but it could not be moved to the output file.
    #[error("{source} (the backup is still at {})", kept.display())]
    Move {
        /// cause
        source: BackupError,
        /// where the node wrote it
        kept: PathBuf,
    },
}

impl TakeError {
    /// The exit code of `trm-node backup` for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            TakeError::OutExists(_) | TakeError::Credential(_) => 64,
            TakeError::Backup(e) => e.exit_code(),
            TakeError::Online(_) | TakeError::Move { .. } => 1,
        }
    }
}

impl BackupError {
    /// The exit code of `trm-node backup` and `restore` for this failure: 64 the operator's
    /// input, 65 a file that is not a usable backup, 75 the node is running, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Config(_)
            | BackupError::Exists(_)
            | BackupError::NotEmpty(_)
            | BackupError::Country { .. } => 64,
            BackupError::NotABackup(_)
            | BackupError::Damaged { .. }
            | BackupError::Format(_)
            | BackupError::TooNew { .. } => 65,
            BackupError::Store(StoreError::Locked(_)) => 75,
            _ => 1,
        }
    }
}

/// `trm-node backup`: straight from the store while the node is stopped; while it runs (the
/// store is locked), through its admin API with an operator credential (`cred`, default
/// `DIR/operator.cred`): the node writes the file into its `backups/` folder, which is then
/// moved to `out` and verified. Blocks; runs its own small runtime for the admin call.
pub fn take(
    dir: &Path,
    out: &Path,
    include_keys: bool,
    cred: Option<&Path>,
) -> Result<Header, TakeError> {
    if out.exists() {
        return Err(TakeError::OutExists(out.to_path_buf()));
    }
    match offline(dir, out, include_keys) {
        Err(BackupError::Store(StoreError::Locked(_))) => {}
        done => return Ok(done?),
    }
    let cred_path = cred.map_or_else(|| dir.join(identity::OPERATOR_CRED), Path::to_path_buf);
    let cred =
        identity::Credential::load(&cred_path).map_err(|e| TakeError::Credential(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TakeError::Online(e.to_string()))?;
    let taken = rt
        .block_on(async {
            let client = trm_admin_api::client::AdminClient::connect(&cred).await?;
            let r = client.ask(trm_proto::admin::Backup { include_keys }).await;
            client.close().await;
            r
        })
        .map_err(|e| TakeError::Online(e.to_string()))?;
    let written = dir.join(&taken.file);
    move_no_clobber(&written, out).map_err(|source| TakeError::Move {
        source,
        kept: written,
    })?;
    Ok(verify(out)?)
}

/// Moves `from` to `to` without ever overwriting `to` (hard link, then unlink; a copy when
/// they are on different file systems). The result has mode 0600.
pub fn move_no_clobber(from: &Path, to: &Path) -> Result<(), BackupError> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackupError::Exists(to.to_path_buf()))
        }
        Err(_) => {
            let mut src = std::fs::File::open(from).map_err(io_err(from))?;
            let mut dst = create_private(to)?;
            let copied = std::io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all());
            if let Err(e) = copied {
                let _ = std::fs::remove_file(to);
                return Err(BackupError::Io {
                    path: to.to_path_buf(),
                    source: e,
                });
            }
        }
    }
    std::fs::remove_file(from).map_err(io_err(from))?;
    sync_parent(to);
    Ok(())
}

fn sync_parent(path: &Path) {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
}

/// Writes a backup of the node in `dir` to `out` (which must not exist), mode 0600.
///
/// The store snapshot is consistent even while the node runs (see [`Store::snapshot`]).
pub fn write_backup(
    dir: &Path,
    cfg: &NodeConfig,
    store: &Store,
    out: &Path,
    include_keys: bool,
    online: bool,
    now_ms: i64,
) -> Result<Header, BackupError> {
    if out.exists() {
        return Err(BackupError::Exists(out.to_path_buf()));
    }
    let content_path = tmp_beside(out, "content");
    let _ = std::fs::remove_file(&content_path);
    let result = write_backup_inner(
        dir,
        cfg,
        store,
        out,
        &content_path,
        include_keys,
        online,
        now_ms,
    );
    let _ = std::fs::remove_file(&content_path);
    result
}

#[allow(clippy::too_many_arguments)] // private helper of write_backup, called once
fn write_backup_inner(
    dir: &Path,
    cfg: &NodeConfig,
    store: &Store,
    out: &Path,
    content_path: &Path,
    include_keys: bool,
    online: bool,
    now_ms: i64,
) -> Result<Header, BackupError> {
    let written = write_content(dir, cfg, store, content_path, include_keys)?;
    let header = Header {
        format: FORMAT,
        schema: store
            .meta("schema")?
            .and_then(|v| v.try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(SCHEMA_VERSION),
        country: cfg.country.clone(),
        node_name: cfg.name.clone(),
        taken_ms: now_ms,
        taken: format_ms(now_ms),
        trm_node_version: env!("CARGO_PKG_VERSION").to_string(),
        online,
        includes_private_keys: include_keys,
        files: written.files,
        records: written.records,
        content_bytes: written.bytes,
        content_sha256: written.sha256,
    };
    let final_tmp = tmp_beside(out, "tmp");
    let _ = std::fs::remove_file(&final_tmp);
    if let Err(e) = write_header_and_content(&final_tmp, &header, content_path) {
        let _ = std::fs::remove_file(&final_tmp);
        return Err(e);
    }
    move_no_clobber(&final_tmp, out).inspect_err(|_| {
        let _ = std::fs::remove_file(&final_tmp);
    })?;
    Ok(header)
}

/// What [`write_content`] wrote, for the header.
struct WrittenContent {
    files: Vec<String>,
    records: u64,
    bytes: u64,
    sha256: String,
}

/// Writes the content of a backup (the node's files, then the store's records) to
/// `content_path`, flushed to disk.
fn write_content(
    dir: &Path,
    cfg: &NodeConfig,
    store: &Store,
    content_path: &Path,
    include_keys: bool,
) -> Result<WrittenContent, BackupError> {
    let mut w = ContentWriter {
        w: BufWriter::new(create_private(content_path)?),
        hash: Sha256::new(),
        bytes: 0,
    };
    let wio = io_err(content_path);
    let mut names = Vec::new();
    for f in node_files(dir, cfg, include_keys) {
        use std::os::unix::fs::PermissionsExt;
        let full = dir.join(&f.rel);
        let data = if f.secret {
            identity::read_private(&full)?
        } else {
            std::fs::read(&full).map_err(io_err(&full))?
        };
        let mode = std::fs::metadata(&full)
            .map_err(io_err(&full))?
            .permissions()
            .mode()
            & 0o777;
        let rel = f.rel.to_string_lossy().into_owned();
        w.file(&rel, mode, &data).map_err(io_err(content_path))?;
        names.push(rel);
    }
    let records = store.snapshot(|tree, k, v| w.record(tree, k, v))?;
    w.put(b"E").map_err(io_err(content_path))?;
    let ContentWriter { w, hash, bytes } = w;
    let file = w.into_inner().map_err(|e| BackupError::Io {
        path: content_path.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(wio)?;
    drop(file);
    Ok(WrittenContent {
        files: names,
        records,
        bytes,
        sha256: hex::encode(hash.finalize()),
    })
}

/// Writes the backup file `final_tmp`: the magic line, the header, then the content copied
/// from `content_path`, flushed to disk.
fn write_header_and_content(
    final_tmp: &Path,
    header: &Header,
    content_path: &Path,
) -> Result<(), BackupError> {
    let mut f = BufWriter::new(create_private(final_tmp)?);
    let fio = || io_err(final_tmp);
    let json = serde_json::to_string(header).map_err(|e| BackupError::Io {
        path: final_tmp.to_path_buf(),
        source: e.into(),
    })?;
    writeln!(f, "{MAGIC}\n{json}").map_err(fio())?;
    let mut content = std::fs::File::open(content_path).map_err(io_err(content_path))?;
    std::io::copy(&mut content, &mut f).map_err(fio())?;
    let f = f.into_inner().map_err(|e| BackupError::Io {
        path: final_tmp.to_path_buf(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(fio())?;
    Ok(())
}

/// `trm-node backup` on a stopped node: opens the store itself (which fails with
/// [`StoreError::Locked`] if the node runs; then use the admin call, see [`online`]).
pub fn offline(dir: &Path, out: &Path, include_keys: bool) -> Result<Header, BackupError> {
    let cfg = NodeConfig::load(dir)?;
    // A folder whose keys do not load is not a node to back up.
    NodeKeys::load(dir, &cfg)?;
    let store = Store::open(&dir.join(&cfg.paths.store))?;
    write_backup(
        dir,
        &cfg,
        &store,
        out,
        include_keys,
        false,
        crate::base::time::now_ms(),
    )
}

/// The admin call `Backup`: the running node writes a backup into `DIR/backups/` and
/// answers with its file name (relative to the node folder), size and hash. The file never
/// travels over the admin connection: `trm-node backup`, running beside the node, moves it.
pub async fn online(
    ctx: &Arc<Ctx>,
    include_keys: bool,
) -> Result<trm_admin_api::answers::BackupTaken, BackupError> {
    use rand::RngCore;
    let now = ctx.clock.now_ms();
    let mut tag = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut tag);
    let stamp: String = format_ms(now)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let rel = Path::new(BACKUP_DIR).join(format!(
        "{}-{stamp}-{}.trmbak",
        ctx.cfg.country,
        hex::encode(tag)
    ));
    let folder = ctx.dir.join(BACKUP_DIR);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&folder)
            .map_err(io_err(&folder))?;
    }
    let out = ctx.dir.join(&rel);
    let c = ctx.clone();
    let target = out.clone();
    let header = tokio::task::spawn_blocking(move || {
        write_backup(&c.dir, &c.cfg, &c.store, &target, include_keys, true, now)
    })
    .await
    .map_err(|e| BackupError::Io {
        path: out.clone(),
        source: std::io::Error::other(e.to_string()),
    })??;
    let at = Op::PutMeta(LAST_BACKUP.into(), now.to_be_bytes().to_vec());
    if let Err(e) = ctx.store.commit(vec![at]).await {
        tracing::warn!(error = %e, "backup written, but its time could not be recorded");
    }
    tracing::info!(
        file = %rel.display(),
        records = header.records,
        bytes = header.content_bytes,
        "backup written"
    );
    Ok(trm_admin_api::answers::BackupTaken {
        file: rel.to_string_lossy().into_owned(),
        taken: header.taken,
        records: header.records,
        content_bytes: header.content_bytes,
        content_sha256: header.content_sha256,
        includes_private_keys: header.includes_private_keys,
    })
}

/// What `restore` did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The backup's header.
    pub header: Header,
    /// Where the store was restored.
    pub store: PathBuf,
    /// Where the store it replaced was moved, if there was one.
    pub replaced: Option<PathBuf>,
    /// Files written from the backup.
    pub files_written: Vec<String>,
    /// Files of the backup not written because the folder has its own (kept as they are).
    pub files_kept: Vec<String>,
    /// Private key files the node needs that are missing from the folder.
    pub missing_keys: Vec<String>,
}

/// A relative path without `..`, for files taken from a backup.
fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = PathBuf::from(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then_some(path)
}

/// `trm-node restore`: restores a backup into a stopped node's folder (or a new folder).
///
/// In an existing node folder only the store is replaced: the folder's own configuration,
/// card and keys are kept (they may be newer than the backup, e.g. after a key rotation),
/// and only files missing from it are written. Into a new or empty folder every file of the
/// backup is written. The replaced store is kept beside the new one (`store.replaced-<ms>`).
pub fn restore(from: &Path, dir: &Path, now_ms: i64) -> Result<RestoreReport, BackupError> {
    let header = verify(from)?;
    if header.schema > SCHEMA_VERSION {
        return Err(BackupError::TooNew {
            found: header.schema,
            supported: SCHEMA_VERSION,
        });
    }
    let existing = dir.join(CONFIG_FILE).is_file();
    let (_, reader) = open_backup(from)?;
    let mut content = ContentReader {
        r: reader,
        path: from.to_path_buf(),
        done: false,
    };
    let (files, first_record) = read_files(&mut content, from)?;
    let cfg = if existing {
        existing_config(dir, &header)?
    } else {
        new_config(dir, &files, from)?
    };
    let store_path = dir.join(&cfg.paths.store);
    Store::ensure_unlocked(&store_path)?;

    make_private_dir(dir)?;

    // The store: import beside, then swap.
    let staging = store_path.with_file_name(format!(
        ".{}.restoring-{}",
        file_name_or_store(&store_path),
        std::process::id()
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    let info = RestoreInfo {
        taken_ms: header.taken_ms,
        taken: header.taken.clone(),
        restored_ms: now_ms,
        backup_sha256: header.content_sha256.clone(),
    };
    let marker = serde_json::to_vec(&info).unwrap_or_default();
    import_records(&mut content, first_record, from, &staging, marker)?;
    let replaced = if store_path.exists() {
        let aside = store_path.with_file_name(format!(
            "{}.replaced-{now_ms}",
            file_name_or_store(&store_path)
        ));
        std::fs::rename(&store_path, &aside).map_err(io_err(&store_path))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staging, &store_path).map_err(io_err(&store_path))?;
    sync_parent(&store_path);

    // Then the files the folder does not have (all of them in a new folder).
    let (files_written, files_kept) = write_missing_files(dir, &files)?;

    let p = &cfg.paths;
    let missing_keys = [&p.signing_key, &p.tls_key, &p.store_key]
        .into_iter()
        .filter(|k| !dir.join(k).is_file())
        .map(|k| k.to_string_lossy().into_owned())
        .collect();
    Ok(RestoreReport {
        header,
        store: store_path,
        replaced,
        files_written,
        files_kept,
        missing_keys,
    })
}

/// A file taken from a backup: its relative path, mode and content.
type BackupFile = (PathBuf, u32, Vec<u8>);

/// The files of a backup's content, which come first, and the first store record after them.
fn read_files<R: Read>(
    content: &mut ContentReader<R>,
    from: &Path,
) -> Result<(Vec<BackupFile>, Option<Item>), BackupError> {
    let mut files = Vec::new();
    while let Some(item) = content.next_item()? {
        match item {
            Item::File { path, mode, data } => {
                let rel = safe_relative(&path).ok_or_else(|| BackupError::Damaged {
                    path: from.to_path_buf(),
                    detail: format!("file name {path:?} is not a plain relative path"),
                })?;
                files.push((rel, mode, data));
            }
            record @ Item::Record { .. } => return Ok((files, Some(record))),
        }
    }
    Ok((files, None))
}

/// The configuration of the existing node in `dir`, which must be of the backup's country.
fn existing_config(dir: &Path, header: &Header) -> Result<NodeConfig, BackupError> {
    let cfg = NodeConfig::load(dir)?;
    if cfg.country != header.country {
        return Err(BackupError::Country {
            backup: header.country.clone(),
            node: cfg.country,
        });
    }
    Ok(cfg)
}

/// The configuration in the backup `from`, restored into `dir`, which must be new or empty.
fn new_config(dir: &Path, files: &[BackupFile], from: &Path) -> Result<NodeConfig, BackupError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .next()
            .is_some()
    {
        return Err(BackupError::NotEmpty(dir.to_path_buf()));
    }
    let text = files
        .iter()
        .find(|(rel, _, _)| rel == Path::new(CONFIG_FILE))
        .map(|(_, _, d)| String::from_utf8_lossy(d).into_owned())
        .ok_or_else(|| BackupError::Damaged {
            path: from.to_path_buf(),
            detail: "no node.toml in the backup".into(),
        })?;
    let cfg = NodeConfig::parse(&text)?;
    cfg.validate()?;
    Ok(cfg)
}

/// The file name of the store folder, for the names of folders beside it.
fn file_name_or_store(store_path: &Path) -> String {
    store_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into())
}

/// Imports the store records of the backup (`first`, then the rest of `content`) into a new
/// store at `staging`, with the restore marker `marker` last; removes `staging` on failure.
fn import_records<R: Read>(
    content: &mut ContentReader<R>,
    first: Option<Item>,
    from: &Path,
    staging: &Path,
    marker: Vec<u8>,
) -> Result<(), BackupError> {
    let mut failure: Option<BackupError> = None;
    let mut pending = first;
    let records = std::iter::from_fn(|| {
        if failure.is_some() {
            return None;
        }
        let item = match pending.take() {
            Some(i) => Some(i),
            None => match content.next_item() {
                Ok(i) => i,
                Err(e) => {
                    failure = Some(e);
                    return Some(Err(StoreError::Io("backup content unreadable".into())));
                }
            },
        };
        match item {
            Some(Item::Record { tree, key, value }) => Some(Ok((tree, key, value))),
            Some(Item::File { path, .. }) => {
                failure = Some(BackupError::Damaged {
                    path: from.to_path_buf(),
                    detail: format!("file {path:?} after the store records"),
                });
                Some(Err(StoreError::Io("backup content out of order".into())))
            }
            None => None,
        }
    })
    .chain(std::iter::once(Ok((
        "meta".to_string(),
        RESTORE_PENDING.as_bytes().to_vec(),
        marker,
    ))));
    let imported = Store::import(staging, records);
    if let Err(e) = imported {
        let _ = std::fs::remove_dir_all(staging);
        return Err(failure.take().unwrap_or(BackupError::Store(e)));
    }
    Ok(())
}

/// Writes the backup's files that `dir` does not have; returns the names written and the
/// names kept as they are.
fn write_missing_files(
    dir: &Path,
    files: &[BackupFile],
) -> Result<(Vec<String>, Vec<String>), BackupError> {
    let mut files_written = Vec::new();
    let mut files_kept = Vec::new();
    for (rel, mode, data) in files {
        let target = dir.join(rel);
        let name = rel.to_string_lossy().into_owned();
        if target.exists() {
            files_kept.push(name);
            continue;
        }
        if let Some(parent) = target.parent() {
            make_private_dir(parent)?;
        }
        if mode & 0o077 == 0 {
            identity::write_private(&target, data)?;
        } else {
            identity::write_public(&target, data)?;
        }
        files_written.push(name);
    }
    Ok((files_written, files_kept))
}

fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))
}

/// At start: turns a pending restore marker into an audit entry and `last_restore`, so a
/// restore is visible in the audit log, in `status` and in the metrics.
pub async fn record_restore(store: &Store, now_ms: i64) -> Result<(), StoreError> {
    let Some(v) = store.meta(RESTORE_PENDING)?.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let info: RestoreInfo = serde_json::from_slice(&v).unwrap_or_default();
    let result = format!(
        "restored from backup taken at {} (content sha256 {})",
        info.taken, info.backup_sha256
    );
    let entry = AuditEntry {
        time_ms: now_ms,
        kind: AuditKind::Restore.into(),
        call: "restore".into(),
        target: format!("backup taken at {}", info.taken),
        result: result.clone(),
        ..Default::default()
    };
    store
        .commit(vec![
            Op::Audit(entry),
            Op::PutMeta(RESTORE_PENDING.into(), Vec::new()),
            Op::PutMeta(LAST_RESTORE.into(), v),
        ])
        .await?;
    tracing::warn!(
        taken = %info.taken,
        "store {result}; anything recorded after that time is not in this store"
    );
    Ok(())
}

/// A restore not yet recorded (the node has not started since), if any.
pub fn pending_restore(store: &Store) -> Option<RestoreInfo> {
    store
        .meta(RESTORE_PENDING)
        .ok()
        .flatten()
        .filter(|v| !v.is_empty())
        .and_then(|v| serde_json::from_slice(&v).ok())
}

/// The last restore, if any.
pub fn last_restore(store: &Store) -> Option<RestoreInfo> {
    store
        .meta(LAST_RESTORE)
        .ok()
        .flatten()
        .and_then(|v| serde_json::from_slice(&v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(items: &[Item]) -> Vec<u8> {
        let mut w = ContentWriter {
            w: Vec::new(),
            hash: Sha256::new(),
            bytes: 0,
        };
        for i in items {
            match i {
                Item::File { path, mode, data } => w.file(path, *mode, data).unwrap(),
                Item::Record { tree, key, value } => w.record(tree, key, value).unwrap(),
            }
        }
        w.put(b"E").unwrap();
        w.w
    }

    #[test]
    fn content_round_trips() {
        let items = vec![
            Item::File {
                path: "node.toml".into(),
                mode: 0o644,
                data: b"country = \"IT\"".to_vec(),
            },
            Item::Record {
                tree: "audit".into(),
                key: vec![0; 8],
                value: vec![1, 2, 3],
            },
        ];
        let bytes = content(&items);
        let mut r = ContentReader {
            r: bytes.as_slice(),
            path: "x".into(),
            done: false,
        };
        let mut back = Vec::new();
        while let Some(i) = r.next_item().unwrap() {
            back.push(i);
        }
        assert_eq!(back, items);
    }

    #[test]
    fn truncated_content_is_damaged_not_a_panic() {
        let bytes = content(&[Item::Record {
            tree: "audit".into(),
            key: vec![0; 8],
            value: vec![9; 100],
        }]);
        for cut in 0..bytes.len() {
            let mut r = ContentReader {
                r: &bytes[..cut],
                path: "x".into(),
                done: false,
            };
            let mut res = Ok(None);
            for _ in 0..3 {
                res = r.next_item();
                if !matches!(res, Ok(Some(_))) {
                    break;
                }
            }
            assert!(
                matches!(res, Err(BackupError::Damaged { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn only_plain_relative_paths_are_restored() {
        assert!(safe_relative("keys/history.pb").is_some());
        assert!(safe_relative("../etc/passwd").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert!(safe_relative("keys/../../x").is_none());
        assert!(safe_relative("").is_none());
    }

    #[test]
    fn a_newer_format_is_named() {
        let text = format!("{MAGIC}\n{{\"format\": 99}}\n");
        let err = read_header(&mut text.as_bytes(), Path::new("b")).unwrap_err();
        assert!(matches!(err, BackupError::Format(99)), "{err}");
        let err = read_header(&mut &b"hello\n"[..], Path::new("b")).unwrap_err();
        assert!(matches!(err, BackupError::NotABackup(_)));
    }
}
