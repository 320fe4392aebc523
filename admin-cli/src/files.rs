//! Reading the files `trm-admin` is given: each kind with its size limit (docs/CLI.md).

use std::path::Path;

use trm_admin_api::credential::Credential;

use crate::failure::Failure;

/// The kinds of file `trm-admin` reads, each with the most it reads of it (docs/CLI.md).
#[derive(Clone, Copy, Debug)]
pub(crate) enum FileKind {
    /// A JSON case file: the node refuses more than [`trm_proto::template::MAX_CASE_BYTES`].
    Case,
    /// A follow-up's JSON fields file: a partial case, same limit.
    Fields,
    /// A directory JSON file.
    Directory,
    /// A partner's identity card.
    Card,
    /// An audit bundle: at most what an export can carry over the admin API.
    Bundle,
    /// A credential file.
    Credential,
    /// An officer's certificate file (PEM or DER).
    Certificate,
}

impl FileKind {
    pub(crate) fn limit(self) -> u64 {
        match self {
            FileKind::Case | FileKind::Fields => trm_proto::template::MAX_CASE_BYTES as u64,
            FileKind::Directory => 1 << 20,
            FileKind::Card | FileKind::Credential | FileKind::Certificate => 64 << 10,
            FileKind::Bundle => 64 << 20,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            FileKind::Case => "a case file",
            FileKind::Fields => "a fields file",
            FileKind::Directory => "a directory file",
            FileKind::Card => "an identity card",
            FileKind::Bundle => "an audit bundle",
            FileKind::Credential => "a credential file",
            FileKind::Certificate => "an officer certificate",
        }
    }

    /// The one-line refusal of a file of `size` bytes (or more) at `path`.
    pub(crate) fn too_large(self, path: &Path, size: u64) -> Failure {
        Failure::usage(format!(
            "{}: {} is over the limit of {} for {}",
            path.display(),
            human_bytes(size),
            human_bytes(self.limit()),
            self.name()
        ))
    }
}

/// `n` bytes for a message: exact below 1 KiB, else in KiB or MiB.
pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
    .replace(".0 ", " ")
}

/// Reads a whole file of `kind`, refusing (exit 64, naming the limit) one over its limit
/// before reading it, and never reading more than the limit (a file that grows, a device).
pub(crate) fn read_file(path: &Path, kind: FileKind) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let io = |e: std::io::Error| Failure::usage(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let limit = kind.limit();
    if size > limit {
        return Err(kind.too_large(path, size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(kind.too_large(path, bytes.len() as u64));
    }
    Ok(bytes)
}

pub(crate) fn load_cred(path: Option<&Path>) -> Result<Credential, Failure> {
    let path =
        path.ok_or_else(|| Failure::usage("no credential: pass --cred FILE or set TRM_CRED"))?;
    if let Ok(m) = std::fs::metadata(path) {
        if m.len() > FileKind::Credential.limit() {
            return Err(FileKind::Credential.too_large(path, m.len()));
        }
    }
    Credential::load(path).map_err(|e| Failure::usage(e.to_string()))
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ` or Unix milliseconds; a bare date is the
/// start of the day, or its last millisecond when `end_of_day`.
pub(crate) fn parse_time(s: &str, end_of_day: bool) -> Result<i64, Failure> {
    let bad = || {
        Failure::usage(format!(
            "{s:?} is not a time: use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix milliseconds"
        ))
    };
    trm_proto::date::parse_instant_ms(s, end_of_day).ok_or_else(bad)
}

/// Reads a certificate file: PEM, or raw DER.
pub(crate) fn read_cert(path: &Path) -> Result<Vec<u8>, Failure> {
    use rustls::pki_types::pem::PemObject;
    let bytes = read_file(path, FileKind::Certificate)?;
    let der = match rustls::pki_types::CertificateDer::from_pem_slice(&bytes) {
        Ok(c) => c.to_vec(),
        Err(_) if bytes.first() == Some(&0x30) => bytes,
        Err(e) => {
            return Err(Failure::usage(format!(
                "{}: not a certificate ({e})",
                path.display()
            )))
        }
    };
    Ok(der)
}

/// Writes a new private file (mode 0600 from creation), refusing one that exists, and syncs
/// it: a case export holds case values.
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Failure::usage(format!(
            "{} already exists; refusing to overwrite",
            path.display()
        )),
        _ => Failure::new(1, format!("{}: {e}", path.display())),
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}
