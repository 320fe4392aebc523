//! The node's identity: signing key, TLS key and certificate, identity card, officer
//! credentials, and `trm-node init`.
//!
//! Private key files are created with mode 0600 from the start (never chmod-ed afterwards),
//! and `init` builds the whole folder beside the target and renames it into place, so a
//! failed init leaves nothing half-written.

use crate::base::fsx::{self, FileError};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use prost::Message;
use rand::rngs::OsRng;
use rand::RngCore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use trm_proto::{card, pb, signing};

use crate::base::config::{NodeConfig, CONFIG_FILE};
use crate::base::time::now_ms;

/// File name of the key history inside `keys/`.
pub const HISTORY_FILE: &str = "keys/history.pb";
/// File name of the first operator credential written by `init`.
pub const OPERATOR_CRED: &str = "operator.cred";
/// Validity of a fresh identity card and TLS certificate (about two years).
const CARD_VALIDITY_MS: i64 = 2 * 365 * 24 * 3600 * 1000;

/// Why the identity could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// `init` found an existing node or a non-empty folder.
    #[error("{0} already exists and is not empty; refusing to overwrite a node")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// file
        path: PathBuf,
        /// cause
        source: std::io::Error,
    },
    /// A key or certificate file is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// file
        path: PathBuf,
        /// what is wrong
        reason: String,
    },
    /// A private key file is readable by others.
    #[error("{0}: private key file must be mode 0600 (run `chmod 600` on it)")]
    Permissions(PathBuf),
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] crate::base::config::ConfigError),
    /// The operator credential could not be written.
    #[error(transparent)]
    Credential(#[from] trm_admin_api::credential::CredentialError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<FileError> for IdentityError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io { path, source } => IdentityError::Io { path, source },
            FileError::Permissions(path) => IdentityError::Permissions(path),
        }
    }
}

/// [`fsx::write_private`], as an identity error.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    Ok(fsx::write_private(path, bytes)?)
}

/// [`fsx::write_public`], as an identity error.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    Ok(fsx::write_public(path, bytes)?)
}

/// [`fsx::rename_durably`], as an identity error.
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), IdentityError> {
    Ok(fsx::rename_durably(from, to)?)
}

/// [`fsx::read_private`], as an identity error.
pub fn read_private(path: &Path) -> Result<Vec<u8>, IdentityError> {
    Ok(fsx::read_private(path)?)
}

pub use crate::base::fsx::fsync_dir;

/// The node's secrets and public identity, loaded from its folder.
pub struct NodeKeys {
    /// Current Ed25519 signing key.
    pub signing: SigningKey,
    /// Every signing key this node has used, oldest first, current last.
    pub history: Vec<pb::KeyRecord>,
    /// TLS certificate (DER), pinned by peers and officers.
    pub tls_cert: CertificateDer<'static>,
    /// TLS private key.
    pub tls_key: PrivateKeyDer<'static>,
    /// Key that seals per-case keys at rest.
    pub store_key: [u8; 32],
}

/// The store key is wiped from memory on drop (the signing key wipes itself).
impl Drop for NodeKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.store_key);
    }
}

impl NodeKeys {
    /// Signs `body` as an envelope with the current key.
    pub fn seal(&self, body: &pb::Body) -> pb::Envelope {
        let body = body.encode_to_vec();
        let signature = signing::sign(&self.signing, signing::Tag::Envelope, &body).to_vec();
        pb::Envelope {
            body,
            signature,
            signer: self.public_key().to_vec(),
        }
    }

    /// Loads the keys named in `cfg` from `dir`.
    pub fn load(dir: &Path, cfg: &NodeConfig) -> Result<Self, IdentityError> {
        let p = &cfg.paths;
        let sk_path = dir.join(&p.signing_key);
        let sk: [u8; 32] =
            read_private(&sk_path)?
                .try_into()
                .map_err(|_| IdentityError::Malformed {
                    path: sk_path.clone(),
                    reason: "signing key must be 32 bytes".into(),
                })?;
        let store_path = dir.join(&p.store_key);
        let store_key: [u8; 32] =
            read_private(&store_path)?
                .try_into()
                .map_err(|_| IdentityError::Malformed {
                    path: store_path.clone(),
                    reason: "store key must be 32 bytes".into(),
                })?;
        let key_path = dir.join(&p.tls_key);
        let key_pem = read_private(&key_path)?;
        let tls_key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| IdentityError::Malformed {
                path: key_path.clone(),
                reason: format!("not a PEM private key: {e}"),
            })?;
        let cert_path = dir.join(&p.tls_cert);
        let cert_pem = std::fs::read(&cert_path).map_err(io_err(&cert_path))?;
        let tls_cert =
            CertificateDer::from_pem_slice(&cert_pem).map_err(|e| IdentityError::Malformed {
                path: cert_path.clone(),
                reason: format!("not a PEM certificate: {e}"),
            })?;
        let hist_path = dir.join(HISTORY_FILE);
        let hist_bytes = std::fs::read(&hist_path).map_err(io_err(&hist_path))?;
        let history = pb::Card::decode(hist_bytes.as_slice())
            .map_err(|e| IdentityError::Malformed {
                path: hist_path.clone(),
                reason: e.to_string(),
            })?
            .key_history;
        let signing = SigningKey::from_bytes(&sk);
        if history.last().map(|k| k.public_key.as_slice())
            != Some(signing.verifying_key().as_bytes().as_slice())
        {
            return Err(IdentityError::Malformed {
                path: hist_path,
                reason: "key history does not end with the current signing key".into(),
            });
        }
        Ok(Self {
            signing,
            history,
            tls_cert,
            tls_key,
            store_key,
        })
    }

    /// The current signing public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Builds and signs this node's identity card, valid from now for about two years.
    pub fn card(&self, cfg: &NodeConfig) -> Vec<u8> {
        let now = now_ms();
        self.card_valid(cfg, now - 60_000, now + CARD_VALIDITY_MS)
    }

    /// Builds and signs this node's identity card keeping the validity of the card already in
    /// `dir` when it is this node's (same country and TLS certificate) and not expired: peers
    /// refuse a rotation successor that extends the card they pinned, so neither a restart
    /// nor a rotation moves it. A new validity comes only with a card the operators re-pin.
    pub fn card_in(&self, dir: &Path, cfg: &NodeConfig) -> Vec<u8> {
        let now = now_ms();
        let existing = std::fs::read(dir.join(&cfg.paths.card))
            .ok()
            .and_then(|raw| card::verify_card(&raw).ok())
            .filter(|c| {
                c.country() == cfg.country
                    && c.card.tls_cert_der == self.tls_cert.as_ref()
                    && c.card.valid_until_ms > now
            });
        match existing {
            Some(c) => self.card_valid(cfg, c.card.valid_from_ms, c.card.valid_until_ms),
            None => self.card(cfg),
        }
    }

    fn card_valid(&self, cfg: &NodeConfig, valid_from_ms: i64, valid_until_ms: i64) -> Vec<u8> {
        let now = now_ms();
        let c = pb::Card {
            version: 1,
            country: cfg.country.clone(),
            name: cfg.name.clone(),
            addresses: cfg.announced_addresses(),
            tls_cert_der: self.tls_cert.to_vec(),
            signing_key: self.public_key().to_vec(),
            acceptance: cfg
                .acceptance_categories()
                .into_iter()
                .map(|c| c as i32)
                .collect(),
            valid_from_ms,
            valid_until_ms,
            key_history: self.history.clone(),
            issued_ms: now,
        };
        card::sign_card(&c, &self.signing)
    }
}

/// Saves the key history (as a `Card` holding only `key_history`).
pub fn write_history(dir: &Path, history: &[pb::KeyRecord]) -> Result<(), IdentityError> {
    let holder = pb::Card {
        key_history: history.to_vec(),
        ..Default::default()
    };
    write_public(&dir.join(HISTORY_FILE), &holder.encode_to_vec())
}

// The officer's credential file and certificates are the admin client's (trm-admin-api).
pub use trm_admin_api::credential::{self_signed, Credential, SelfSigned};

/// What `init` created, for the operator.
#[derive(Debug)]
pub struct InitReport {
    /// Node folder.
    pub dir: PathBuf,
    /// Identity card file.
    pub card: PathBuf,
    /// First operator credential.
    pub operator_credential: PathBuf,
    /// Signing key fingerprint.
    pub signing_fingerprint: String,
    /// TLS certificate fingerprint.
    pub tls_fingerprint: String,
}

/// `trm-node init`: creates a complete node folder at `dir`, or nothing at all.
pub fn init(
    dir: &Path,
    country: &str,
    name: &str,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    acceptance: Option<Vec<String>>,
) -> Result<InitReport, IdentityError> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .next()
            .is_none();
        if !empty || dir.join(CONFIG_FILE).exists() {
            return Err(IdentityError::Exists(dir.to_path_buf()));
        }
    }
    let mut cfg = NodeConfig::new(country, name, listen, admin_listen);
    if let Some(acc) = acceptance {
        cfg.acceptance = acc;
    }
    cfg.validate()?;

    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let staging = parent.join(format!(
        ".{}.init-{}",
        dir.file_name().and_then(|s| s.to_str()).unwrap_or("node"),
        std::process::id()
    ));
    let result = build_node_folder(&staging, &cfg);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(io_err(dir))?;
    }
    rename_durably(&staging, dir).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&staging);
    })?;
    let keys = NodeKeys::load(dir, &cfg)?;
    Ok(InitReport {
        dir: dir.to_path_buf(),
        card: dir.join(&cfg.paths.card),
        operator_credential: dir.join(OPERATOR_CRED),
        signing_fingerprint: signing::fingerprint(&keys.public_key()),
        tls_fingerprint: signing::fingerprint(&keys.tls_cert),
    })
}

fn build_node_folder(dir: &Path, cfg: &NodeConfig) -> Result<(), IdentityError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("keys"))
        .map_err(io_err(dir))?;
    let p = &cfg.paths;

    let mut sk = [0u8; 32];
    OsRng.fill_bytes(&mut sk);
    let signing = SigningKey::from_bytes(&sk);
    write_private(&dir.join(&p.signing_key), &sk)?;
    let mut store_key = [0u8; 32];
    OsRng.fill_bytes(&mut store_key);
    write_private(&dir.join(&p.store_key), &store_key)?;
    zeroize::Zeroize::zeroize(&mut sk);
    zeroize::Zeroize::zeroize(&mut store_key);

    let now = now_ms();
    write_history(
        dir,
        &[pb::KeyRecord {
            public_key: signing.verifying_key().to_bytes().to_vec(),
            valid_from_ms: now - 60_000,
            valid_until_ms: 0,
            endorsement: vec![],
            endorser: vec![],
        }],
    )?;

    let tls = self_signed(&format!("trm-node-{}", cfg.country), "node")?;
    write_private(&dir.join(&p.tls_key), tls.key_pem.as_bytes())?;
    write_public(&dir.join(&p.tls_cert), tls.cert_pem.as_bytes())?;
    write_public(&dir.join(CONFIG_FILE), cfg.to_toml().as_bytes())?;

    let keys = NodeKeys::load(dir, cfg)?;
    write_public(&dir.join(&p.card), &keys.card(cfg))?;

    let op = self_signed("operator", "operator")?;
    let cred = Credential {
        name: "operator".into(),
        role: "operator".into(),
        country: cfg.country.clone(),
        node: cfg.admin_listen,
        node_cert_sha256: hex::encode(signing::sha256(&keys.tls_cert)),
        cert_pem: op.cert_pem,
        key_pem: op.key_pem,
    };
    cred.save(&dir.join(OPERATOR_CRED))?;
    // The store is created with the operator registered, so the credential works at once.
    let store =
        crate::store::Store::open(&dir.join(&p.store)).map_err(|e| IdentityError::Malformed {
            path: dir.join(&p.store),
            reason: e.to_string(),
        })?;
    store
        .register_officer_blocking(&op.cert_der, "operator", crate::base::vocab::Role::Operator)
        .map_err(|e| IdentityError::Malformed {
            path: dir.join(&p.store),
            reason: e.to_string(),
        })?;
    Ok(())
}
