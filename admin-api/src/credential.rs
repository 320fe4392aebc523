//! An officer's credential file, the self-signed certificates officers hold, and the files
//! `trm-admin` writes.
//!
//! The credential file is TOML (seven string keys, the PEM texts as multi-line strings). It is
//! read and written here by [`toml_lite`] so that the command line needs no TOML parser: the
//! format is the flat subset the node has always written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a credential or another file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The file exists; it is never overwritten.
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
    /// The file is not a credential.
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
}

/// Validity of a fresh officer certificate (about two years).
const CERT_VALIDITY_MS: u64 = 2 * 365 * 24 * 3600 * 1000;

/// An officer's credential file for `trm-admin`: who they are, which node, and the key.
#[derive(Clone)]
pub struct Credential {
    /// Officer name.
    pub name: String,
    /// operator, officer, supervisor or auditor.
    pub role: String,
    /// Country of the node.
    pub country: String,
    /// Admin address of the node.
    pub node: SocketAddr,
    /// Pinned SHA-256 (hex) of the node's TLS certificate.
    pub node_cert_sha256: String,
    /// The officer's client certificate, PEM.
    pub cert_pem: String,
    /// The officer's private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// Never prints the private key.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("country", &self.country)
            .field("node", &self.node)
            .field("node_cert_sha256", &self.node_cert_sha256)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The private key is wiped from memory when the credential is dropped.
impl Drop for Credential {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key_pem);
    }
}

/// The keys of a credential file, in the order they are written.
const KEYS: [&str; 7] = [
    "name",
    "role",
    "country",
    "node",
    "node_cert_sha256",
    "cert_pem",
    "key_pem",
];

impl Credential {
    /// Reads a credential file (mode 0600 enforced).
    pub fn load(path: &Path) -> Result<Self, CredentialError> {
        let mut bytes = read_private(path)?;
        let parsed = match std::str::from_utf8(&bytes) {
            Ok(text) => Self::parse(text),
            Err(_) => Err("not UTF-8".to_string()),
        };
        // The file's text holds the private key too.
        zeroize::Zeroize::zeroize(&mut bytes);
        parsed.map_err(|reason| CredentialError::Malformed {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parses a credential file's text; the error names the problem, never a value.
    fn parse(text: &str) -> Result<Self, String> {
        let bad = |e: String| format!("not a credential file: {e}");
        let mut map = toml_lite::parse(text).map_err(bad)?;
        if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(format!("unknown field `{k}`")));
        }
        let mut take = |k: &str| {
            map.remove(k)
                .ok_or_else(|| bad(format!("missing field `{k}`")))
        };
        let (name, role, country) = (take("name")?, take("role")?, take("country")?);
        let node = take("node")?
            .parse()
            .map_err(|_| bad("node: invalid socket address syntax".into()))?;
        Ok(Self {
            name,
            role,
            country,
            node,
            node_cert_sha256: take("node_cert_sha256")?,
            cert_pem: take("cert_pem")?,
            key_pem: take("key_pem")?,
        })
    }

    /// The file's text.
    fn to_text(&self) -> String {
        let node = self.node.to_string();
        let values = [
            &self.name,
            &self.role,
            &self.country,
            &node,
            &self.node_cert_sha256,
            &self.cert_pem,
            &self.key_pem,
        ];
        let mut out = String::new();
        for (k, v) in KEYS.iter().zip(values) {
            toml_lite::push_entry(&mut out, k, v);
        }
        out
    }

    /// Writes the credential file with mode 0600, refusing to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), CredentialError> {
        if path.exists() {
            return Err(CredentialError::Exists(path.to_path_buf()));
        }
        let mut text = self.to_text();
        let written = write_private(path, text.as_bytes());
        zeroize::Zeroize::zeroize(&mut text);
        Ok(written?)
    }
}

/// A self-signed certificate and its key.
pub struct SelfSigned {
    /// Certificate DER.
    pub cert_der: Vec<u8>,
    /// Certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 private key PEM.
    pub key_pem: String,
}

/// Makes a self-signed ECDSA P-256 certificate for `common_name`.
pub fn self_signed(common_name: &str, unit: &str) -> Result<SelfSigned, rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![dns_safe(common_name)])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, unit);
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_millis(CERT_VALIDITY_MS)).into();
    let cert = params.self_signed(&key)?;
    Ok(SelfSigned {
        cert_der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn dns_safe(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(60);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "trm".into()
    } else {
        format!("{out}.trm.invalid")
    }
}

pub use crate::fsx::{read_private, write_private, write_public};

impl From<crate::fsx::FileError> for CredentialError {
    fn from(e: crate::fsx::FileError) -> Self {
        match e {
            crate::fsx::FileError::Io { path, source } => CredentialError::Io { path, source },
            crate::fsx::FileError::Permissions(path) => CredentialError::Permissions(path),
        }
    }
}

/// The flat subset of TOML a credential file uses: `key = string` lines (basic, literal and
/// multi-line strings), comments and blank lines. No tables, arrays or other values.
pub mod toml_lite {
    use std::collections::BTreeMap;

    /// Appends `key = value`: a basic string, or a multi-line one when `value` has a newline
    /// (as `toml::to_string_pretty` writes them).
    pub fn push_entry(out: &mut String, key: &str, value: &str) {
        out.push_str(key);
        out.push_str(" = ");
        if value.contains('\n') {
            out.push_str("\"\"\"\n");
            for c in value.chars() {
                match c {
                    '\n' => out.push('\n'),
                    c => escape(out, c),
                }
            }
            out.push_str("\"\"\"\n");
        } else {
            out.push('"');
            for c in value.chars() {
                escape(out, c);
            }
            out.push_str("\"\n");
        }
    }

    fn escape(out: &mut String, c: char) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }

    /// Parses `text` into its keys and string values; the error names the line.
    pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            text,
            i: 0,
            line: 1,
        };
        let mut out = BTreeMap::new();
        loop {
            p.skip_blank();
            if p.i >= p.s.len() {
                return Ok(out);
            }
            let key = p.key()?;
            p.spaces();
            if !p.eat("=") {
                return Err(p.err("expected `=` after a key"));
            }
            p.spaces();
            let value = p.value()?;
            p.spaces();
            if p.peek() == Some(b'#') {
                p.skip_comment();
            }
            if p.i < p.s.len() && !p.eat("\n") && !p.eat("\r\n") {
                return Err(p.err("expected a new line after a value"));
            }
            if out.insert(key.clone(), value).is_some() {
                return Err(format!("duplicate key `{key}`"));
            }
            p.line += 1;
        }
    }

    struct Parser<'a> {
        s: &'a [u8],
        text: &'a str,
        i: usize,
        line: usize,
    }

    impl Parser<'_> {
        fn err(&self, what: &str) -> String {
            format!("line {}: {what}", self.line)
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, lit: &str) -> bool {
            if self.s[self.i..].starts_with(lit.as_bytes()) {
                self.i += lit.len();
                true
            } else {
                false
            }
        }

        fn spaces(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t')) {
                self.i += 1;
            }
        }

        fn skip_comment(&mut self) {
            while !matches!(self.peek(), None | Some(b'\n')) {
                self.i += 1;
            }
        }

        fn skip_blank(&mut self) {
            loop {
                self.spaces();
                match self.peek() {
                    Some(b'#') => self.skip_comment(),
                    _ if self.eat("\n") || self.eat("\r\n") => self.line += 1,
                    _ => return,
                }
            }
        }

        fn key(&mut self) -> Result<String, String> {
            if self.peek() == Some(b'"') {
                self.i += 1;
                return self.basic(false);
            }
            let start = self.i;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            {
                self.i += 1;
            }
            if start == self.i {
                return Err(self.err("expected a key"));
            }
            Ok(self.text[start..self.i].to_string())
        }

        fn value(&mut self) -> Result<String, String> {
            if self.eat("\"\"\"") {
                self.newline_after_opening();
                self.basic(true)
            } else if self.eat("'''") {
                self.newline_after_opening();
                self.literal("'''")
            } else if self.eat("\"") {
                self.basic(false)
            } else if self.eat("'") {
                self.literal("'")
            } else {
                Err(self.err("expected a string value"))
            }
        }

        fn newline_after_opening(&mut self) {
            if self.eat("\n") || self.eat("\r\n") {
                self.line += 1;
            }
        }

        fn literal(&mut self, close: &str) -> Result<String, String> {
            let start = self.i;
            while !self.s[self.i..].starts_with(close.as_bytes()) {
                match self.peek() {
                    None => return Err(self.err("unterminated string")),
                    Some(b'\n') if close.len() == 1 => return Err(self.err("unterminated string")),
                    Some(b'\n') => self.line += 1,
                    _ => {}
                }
                self.i += 1;
            }
            let v = self.text[start..self.i].to_string();
            self.i += close.len();
            Ok(v)
        }

        fn basic(&mut self, multi: bool) -> Result<String, String> {
            let close = if multi { "\"\"\"" } else { "\"" };
            let mut out = String::new();
            loop {
                if self.s[self.i..].starts_with(close.as_bytes()) {
                    self.i += close.len();
                    return Ok(out);
                }
                let Some(c) = self.text[self.i..].chars().next() else {
                    return Err(self.err("unterminated string"));
                };
                self.i += c.len_utf8();
                match c {
                    '\n' if !multi => return Err(self.err("unterminated string")),
                    '\n' => {
                        self.line += 1;
                        out.push('\n');
                    }
                    '\\' => self.escape(&mut out, multi)?,
                    c => out.push(c),
                }
            }
        }

        fn escape(&mut self, out: &mut String, multi: bool) -> Result<(), String> {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match c {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'n' => out.push('\n'),
                b't' => out.push('\t'),
                b'r' => out.push('\r'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'u' | b'U' => {
                    let n = if c == b'u' { 4 } else { 8 };
                    let hex = self.text.get(self.i..self.i + n).unwrap_or("");
                    let ch = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| self.err("bad unicode escape"))?;
                    self.i += n;
                    out.push(ch);
                }
                b' ' | b'\t' | b'\r' | b'\n' if multi => {
                    // A line-ending backslash: the line break and the blanks after it go.
                    self.i -= 1;
                    while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                        if self.peek() == Some(b'\n') {
                            self.line += 1;
                        }
                        self.i += 1;
                    }
                }
                _ => return Err(self.err("unknown escape")),
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A credential as `toml::to_string_pretty` wrote it before this module existed.
    const WRITTEN_BY_TOML: &str = "name = \"operator\"\nrole = \"operator\"\ncountry = \"IT\"\nnode = \"127.0.0.1:4434\"\nnode_cert_sha256 = \"7e52\"\ncert_pem = \"\"\"\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\"\"\"\nkey_pem = \"\"\"\n-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n\"\"\"\n";

    #[test]
    fn reads_and_writes_the_files_toml_wrote() {
        let c = Credential::parse(WRITTEN_BY_TOML).expect("parses");
        assert_eq!(c.name, "operator");
        assert_eq!(c.node, "127.0.0.1:4434".parse().unwrap());
        assert!(c.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(c.to_text(), WRITTEN_BY_TOML, "byte for byte");
    }

    #[test]
    fn odd_values_round_trip() {
        let mut c = Credential::parse(WRITTEN_BY_TOML).unwrap();
        c.name = "O'Brien \"Ex\" \\ \u{1}".into();
        assert_eq!(Credential::parse(&c.to_text()).unwrap().name, c.name);
    }

    #[test]
    fn other_toml_strings_and_comments_are_read() {
        let text = "# a comment\n\nname = 'lit' # trailing\nrole = \"a\\u00e9\"\ncountry = '''\nIT'''\nnode = \"[::1]:1\"\nnode_cert_sha256 = \"\"\"ab\\\n   cd\"\"\"\ncert_pem = \"c\"\nkey_pem = \"k\"\n";
        let c = Credential::parse(text).expect("parses");
        assert_eq!(
            (c.name.as_str(), c.role.as_str(), c.country.as_str()),
            ("lit", "aé", "IT")
        );
        assert_eq!(c.node_cert_sha256, "abcd");
    }

    #[test]
    fn refusals_name_the_problem() {
        for (text, want) in [
            ("this is not\na credential\n", "not a credential file"),
            ("name = \"a\"\n", "missing field `role`"),
            ("name = 1\n", "expected a string value"),
            ("name = \"a\"\nname = \"b\"\n", "duplicate key `name`"),
            ("colour = \"red\"\n", "unknown field `colour`"),
            ("name = \"open\n", "unterminated string"),
        ] {
            let e = Credential::parse(text).expect_err(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
