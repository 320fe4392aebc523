//! `node.toml`: the node's configuration, parsed with serde and validated once at start.
//!
//! Paths are relative to the node folder. Every field has a documented default so that a
//! minimal file (country, name, addresses) is a complete configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use trm_proto::pb::Category;
use trm_proto::template;

/// File name of the configuration inside the node folder.
pub const CONFIG_FILE: &str = "node.toml";

/// Why a configuration was refused. Each variant names the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The folder has no `node.toml`.
    #[error("{0} is not a node folder (no node.toml); create one with `trm-node init`")]
    NotANode(PathBuf),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// file
        path: PathBuf,
        /// cause
        source: std::io::Error,
    },
    /// TOML syntax or type error; the message names the key.
    #[error("{path}: {message}")]
    Parse {
        /// file
        path: PathBuf,
        /// toml's message, one line
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("node.toml: `{key}`: {reason}")]
    Invalid {
        /// dotted key
        key: String,
        /// what is wrong
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The longest retention a category may be given, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// Refuses `value` of `key` outside `range`, naming both.
fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!(
                "{value} is out of range: must be {} ..= {}",
                range.start(),
                range.end()
            ),
        ))
    }
}

/// The whole `node.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// ISO 3166-1 alpha-2 code of this node's country, e.g. "IT". Required (no default).
    pub country: String,
    /// Human name of the node, e.g. "Italy national referral unit". Required (no default).
    pub name: String,
    /// UDP address of the peer listener (QUIC, ALPN `trm/1`). Required (`trm-node init`
    /// writes it from `--listen`). Env `TRM_LISTEN` overrides.
    pub listen: SocketAddr,
    /// Addresses (`host:port`, as IP socket addresses) announced in the identity card, for a
    /// node behind NAT or on several interfaces. Default: empty, meaning `listen`.
    #[serde(default)]
    pub public_addresses: Vec<String>,
    /// UDP address of the admin listener (QUIC, ALPN `trm-admin/1`). Required; `trm-node
    /// init` writes 127.0.0.1:4434 unless `--admin-listen`. Keep it on loopback.
    /// Env `TRM_ADMIN_LISTEN` overrides.
    pub admin_listen: SocketAddr,
    /// Files of the node, relative to the node folder.
    #[serde(default)]
    pub paths: Paths,
    /// Peer protocol limits.
    #[serde(default)]
    pub limits: Limits,
    /// Delivery worker settings.
    #[serde(default)]
    pub delivery: Delivery,
    /// Categories this node may receive, published in its identity card.
    /// Default: every category. A country that may hold no personal data lists only
    /// reference, exploitation, assistance, risk, return, proceedings.
    #[serde(default = "all_categories")]
    pub acceptance: Vec<String>,
    /// Outgoing profile per peer country: the categories this country's law lets it send there.
    /// A peer without an entry gets `default_outgoing`. Default: no entries.
    #[serde(default)]
    pub outgoing: BTreeMap<String, Vec<String>>,
    /// Outgoing profile for peers without an entry in `outgoing`. Default: the non-identifying
    /// categories only (fail closed: personal data needs an explicit entry).
    #[serde(default = "non_identifying_categories")]
    pub default_outgoing: Vec<String>,
    /// The referral template as adapted by this country's law. Default: the core template
    /// unchanged (nothing disabled, no extensions).
    #[serde(default)]
    pub template: TemplateConfig,
    /// Retention of case values per category, in days (0 or absent = keep; at most 36500).
    /// Default: no entries (keep everything).
    #[serde(default)]
    pub retention_days: BTreeMap<String, u32>,
    /// Days after which a directory entry not re-confirmed is shown as stale (default 180;
    /// 1 ..= 3650).
    #[serde(default = "default_stale_days")]
    pub directory_stale_days: u32,
    /// `trm-admin queue`: an accepted referral is due a follow-up from this node when it sent
    /// none for this many days since the acceptance or its last follow-up (default 30;
    /// 0 ..= 3650, 0 = due at once).
    #[serde(default = "default_followup_due_days")]
    pub followup_due_days: u32,
    /// Audit log checkpoints.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// Files of the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    /// Ed25519 signing key (32 raw bytes, mode 0600). Default `keys/signing.key`.
    pub signing_key: PathBuf,
    /// TLS private key, PKCS#8 PEM, mode 0600. Default `keys/tls.key`.
    pub tls_key: PathBuf,
    /// TLS certificate, PEM. Default `tls.crt`.
    pub tls_cert: PathBuf,
    /// This node's identity card, as given to partners. Default `card.trm`.
    pub card: PathBuf,
    /// The sled store folder. Default `store`.
    pub store: PathBuf,
    /// Key that seals per-case keys at rest (32 raw bytes, 0600). Default `keys/store.key`.
    pub store_key: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            signing_key: "keys/signing.key".into(),
            tls_key: "keys/tls.key".into(),
            tls_cert: "tls.crt".into(),
            card: "card.trm".into(),
            store: "store".into(),
            store_key: "keys/store.key".into(),
        }
    }
}

/// What a peer can make the node hold.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest frame accepted, in bytes (default 1 MiB; 1 KiB ..= 64 MiB).
    pub max_frame_bytes: usize,
    /// Concurrent bidirectional streams per connection (default 64; 1 ..= 1024).
    pub max_concurrent_streams: u32,
    /// Established peer connections served at once (default 256, 1 ..= 65536). Handshakes
    /// in progress are counted apart (`max_handshakes`).
    pub max_connections: usize,
    /// Idle timeout of a connection, in seconds (default 30; 1 ..= 3600).
    pub idle_timeout_secs: u64,
    /// Time allowed to receive one frame, in seconds (default 10; 1 ..= 600); a stalled
    /// stream is reset.
    pub stream_timeout_secs: u64,
    /// Time allowed for a QUIC/TLS handshake, in seconds (default 5, 1 ..= 60).
    pub handshake_timeout_secs: u64,
    /// Handshakes in progress at once (default 64, 1 ..= 4096).
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one validated source IP address (default 8,
    /// 1 ..= `max_handshakes`).
    pub max_handshakes_per_address: usize,
    /// Once this many handshakes from unvalidated addresses are in progress, a new one must
    /// first prove its address with a QUIC Retry (default 8, 0 ..= `max_handshakes`; 0 =
    /// always).
    pub retry_above_handshakes: usize,
    /// Established connections at once from one peer (default 8, 1 ..= 256).
    pub max_connections_per_peer: usize,
    /// Failed peer handshakes (client certificate not pinned or absent, or another failure of
    /// a handshake from an address QUIC validated) after which a source IP address is refused
    /// at once, before any cryptography, for a penalty (default 8, 0 ..= 1000; 0 = never).
    /// A handshake that authenticates a pinned peer clears the address's record.
    pub failed_handshakes_per_address: u32,
    /// The first penalty, in seconds (default 1, 1 ..= 3600); each further offence of the
    /// address (a failure after a penalty ended) doubles it.
    pub failed_handshake_backoff_secs: u64,
    /// The longest penalty, in seconds (default 60, `failed_handshake_backoff_secs` ..=
    /// 86400); an address quiet for this long after its last penalty is forgiven.
    pub failed_handshake_backoff_max_secs: u64,
    /// Clock difference tolerated with a peer, in seconds (default 300, at most 3600): a
    /// message created later than now + this is refused, and so is one signed by a key whose
    /// validity ended before now − this.
    pub max_clock_skew_secs: u64,
}

impl Limits {
    /// [`Self::max_clock_skew_secs`] in milliseconds.
    pub fn max_clock_skew_ms(&self) -> i64 {
        i64::try_from(self.max_clock_skew_secs.min(3600) * 1000).unwrap_or(300_000)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: trm_proto::frame::DEFAULT_MAX_FRAME,
            max_concurrent_streams: 64,
            max_connections: 256,
            idle_timeout_secs: 30,
            stream_timeout_secs: 10,
            max_clock_skew_secs: 300,
            handshake_timeout_secs: 5,
            max_handshakes: 64,
            max_handshakes_per_address: 8,
            retry_above_handshakes: 8,
            max_connections_per_peer: 8,
            failed_handshakes_per_address: 8,
            failed_handshake_backoff_secs: 1,
            failed_handshake_backoff_max_secs: 60,
        }
    }
}

/// Delivery worker settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// First retry delay in milliseconds (default 200; 1 ..= 60000).
    pub backoff_initial_ms: u64,
    /// Longest retry delay in milliseconds (default 30000; `backoff_initial_ms` ..= 3600000).
    pub backoff_max_ms: u64,
    /// Messages in flight per peer (default 64; 1 ..= 1024).
    pub max_in_flight: usize,
    /// A peer unreachable for longer than this many seconds is reported as down (default 60;
    /// 1 ..= 604800).
    pub unreachable_after_secs: u64,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            max_in_flight: 64,
            unreachable_after_secs: 60,
        }
    }
}

/// The template as adapted by national law.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateConfig {
    /// Core fields this country's law forbids it to record, e.g. `["identity.aliases"]`.
    /// Default: none.
    pub disabled: Vec<String>,
    /// National extension fields. Default: none.
    pub extensions: Vec<ExtensionConfig>,
}

/// One national extension field.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionConfig {
    /// `ext.<namespace>.<name>`. Required in an extension.
    pub path: String,
    /// text, long_text, date, bool, integer or text_list. Required in an extension.
    pub kind: String,
    /// The data category it belongs to. Required in an extension.
    pub category: String,
    /// Help text shown in the case template (default empty).
    #[serde(default)]
    pub help: String,
}

/// Audit log checkpoints.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Sign a checkpoint at least every this many entries (default 64; 1 ..= 1000000).
    pub checkpoint_every_entries: u64,
    /// ... or every this many seconds when entries were added (default 10; 1 ..= 86400).
    pub checkpoint_every_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every_entries: 64,
            checkpoint_every_secs: 10,
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// "human" or "json" (default human). Env `TRM_LOG_FORMAT` and `--log-format` override.
    pub format: String,
    /// tracing filter (default "info"). Env `RUST_LOG` overrides.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "human".into(),
            filter: "info".into(),
        }
    }
}

/// Prometheus text endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve metrics (default true). `false` is the off switch.
    pub enabled: bool,
    /// TCP address of the plain-HTTP endpoint `GET /metrics` (default 127.0.0.1:0 = loopback,
    /// a port chosen by the OS, written to `run/metrics.addr`). Give a fixed port for
    /// Prometheus, e.g. 127.0.0.1:9464. It has no authentication: keep it on loopback or a
    /// monitoring network.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

fn all_categories() -> Vec<String> {
    template::ALL_CATEGORIES
        .iter()
        .map(|c| template::category_name(*c).to_string())
        .collect()
}

fn non_identifying_categories() -> Vec<String> {
    template::ALL_CATEGORIES
        .iter()
        .filter(|c| !template::is_personal(**c))
        .map(|c| template::category_name(*c).to_string())
        .collect()
}

fn default_stale_days() -> u32 {
    180
}

fn default_followup_due_days() -> u32 {
    30
}

/// The dotted key whose value (or name) is at byte `offset` of a TOML text, found from the
/// line's `key =` (or the nearest one above it, inside a multi-line value) and the last
/// `[table]` header before it. Good enough to name the key in an error; `None` if unsure.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let mut lines: Vec<&str> = text[..line_end].lines().collect();
    if text[line_start..line_end].trim().is_empty() {
        return None;
    }
    let mut key = None;
    let mut table = String::new();
    while let Some(l) = lines.pop() {
        let t = l.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').trim_end_matches(']').trim();
            if key.is_none() {
                return Some(name.to_string());
            }
            table = name.to_string();
            break;
        }
        if key.is_none() && !t.starts_with('#') {
            if let Some((k, _)) = t.split_once('=') {
                key = Some(k.trim().trim_matches('"').to_string());
            }
        }
    }
    let key = key?;
    Some(if table.is_empty() {
        key
    } else {
        format!("{table}.{key}")
    })
}

/// The outgoing law profile (`outgoing` and `default_outgoing` in `node.toml`): the data
/// categories this country's law lets it send to each partner. The one part of the
/// configuration a running node can take again without a restart (`trm-admin policy reload`,
/// SIGHUP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutgoingProfile {
    /// `outgoing.<CC>`: category names per partner country.
    pub per_peer: BTreeMap<String, Vec<String>>,
    /// `default_outgoing`: category names for partners without an entry.
    pub default: Vec<String>,
}

impl OutgoingProfile {
    /// The categories `peer` may be sent (validated at load: names are known).
    pub fn for_peer(&self, peer: &str) -> Vec<Category> {
        parse_categories("outgoing", self.names_for(peer)).unwrap_or_default()
    }

    /// The category names listed for `peer`, as written in `node.toml`.
    pub fn names_for(&self, peer: &str) -> &[String] {
        self.per_peer.get(peer).unwrap_or(&self.default)
    }

    /// The `node.toml` key that decides `peer`'s profile: `outgoing.<CC>` or `default_outgoing`.
    pub fn key_for(&self, peer: &str) -> String {
        if self.per_peer.contains_key(peer) {
            format!("outgoing.{peer}")
        } else {
            "default_outgoing".to_owned()
        }
    }
}

/// Parses a list of category names, naming `key` on error.
pub fn parse_categories(key: &str, names: &[String]) -> Result<Vec<Category>, ConfigError> {
    let mut out = Vec::new();
    for n in names {
        let c = template::parse_category(n).ok_or_else(|| {
            invalid(
                key,
                format!(
                    "unknown category {n:?} (known: {})",
                    all_categories().join(", ")
                ),
            )
        })?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

impl NodeConfig {
    /// A new configuration with defaults.
    pub fn new(country: &str, name: &str, listen: SocketAddr, admin_listen: SocketAddr) -> Self {
        Self {
            country: country.to_string(),
            name: name.to_string(),
            listen,
            public_addresses: Vec::new(),
            admin_listen,
            paths: Paths::default(),
            limits: Limits::default(),
            delivery: Delivery::default(),
            acceptance: all_categories(),
            outgoing: BTreeMap::new(),
            default_outgoing: non_identifying_categories(),
            template: TemplateConfig::default(),
            retention_days: BTreeMap::new(),
            directory_stale_days: default_stale_days(),
            followup_due_days: default_followup_due_days(),
            audit: AuditConfig::default(),
            log: LogConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }

    /// Reads and validates `DIR/node.toml`, then applies environment overrides.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        if !path.is_file() {
            return Err(ConfigError::NotANode(dir.to_path_buf()));
        }
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let mut cfg = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.clone(),
                message,
            },
            other => other,
        })?;
        cfg.apply_env()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text (no validation).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let msg = e.message().replace('\n', " ");
            let message = match e.span() {
                Some(s) => {
                    let start = s.start.min(text.len());
                    let line = text[..start].matches('\n').count() + 1;
                    match key_at(text, start) {
                        Some(key) => format!("`{key}`: {msg} (line {line})"),
                        None => format!("{msg} (line {line})"),
                    }
                }
                None => msg,
            };
            ConfigError::Parse {
                path: CONFIG_FILE.into(),
                message,
            }
        })
    }

    /// Applies `TRM_LISTEN`, `TRM_ADMIN_LISTEN` and `TRM_LOG_FORMAT`.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        self.apply_overrides(|name| std::env::var(name).ok())
    }

    /// Applies the overrides `var` gives for `TRM_LISTEN`, `TRM_ADMIN_LISTEN` and
    /// `TRM_LOG_FORMAT` (the environment, in [`Self::apply_env`]).
    pub fn apply_overrides(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(v) = var("TRM_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|_| invalid("TRM_LISTEN", "not a socket address"))?;
        }
        if let Some(v) = var("TRM_ADMIN_LISTEN") {
            self.admin_listen = v
                .parse()
                .map_err(|_| invalid("TRM_ADMIN_LISTEN", "not a socket address"))?;
        }
        if let Some(v) = var("TRM_LOG_FORMAT") {
            self.log.format = v;
        }
        Ok(())
    }

    /// Checks every value once; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_identity()?;
        self.check_categories()?;
        self.check_limits()?;
        self.check_delivery_and_logs()?;
        self.template()?;
        Ok(())
    }

    /// The node's country, name, public addresses and file paths.
    fn check_identity(&self) -> Result<(), ConfigError> {
        if !trm_proto::card::valid_country(&self.country) {
            return Err(invalid(
                "country",
                "must be two upper-case letters, e.g. IT",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        for (i, a) in self.public_addresses.iter().enumerate() {
            if a.parse::<SocketAddr>().is_err() {
                return Err(invalid(
                    format!("public_addresses[{i}]"),
                    "must be an IP socket address such as 203.0.113.10:4433",
                ));
            }
        }
        let p = &self.paths;
        for (key, path) in [
            ("paths.signing_key", &p.signing_key),
            ("paths.tls_key", &p.tls_key),
            ("paths.tls_cert", &p.tls_cert),
            ("paths.card", &p.card),
            ("paths.store", &p.store),
            ("paths.store_key", &p.store_key),
        ] {
            let plain = !path.as_os_str().is_empty()
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain {
                return Err(invalid(
                    key,
                    "must be a relative path inside the node folder (no `..`, not absolute)",
                ));
            }
        }
        Ok(())
    }

    /// The category lists: acceptance, outgoing profiles, retention.
    fn check_categories(&self) -> Result<(), ConfigError> {
        parse_categories("acceptance", &self.acceptance)?;
        parse_categories("default_outgoing", &self.default_outgoing)?;
        for (cc, cats) in &self.outgoing {
            if !trm_proto::card::valid_country(cc) {
                return Err(invalid(format!("outgoing.{cc}"), "not a country code"));
            }
            parse_categories(&format!("outgoing.{cc}"), cats)?;
        }
        for (cat, days) in &self.retention_days {
            parse_categories(&format!("retention_days.{cat}"), std::slice::from_ref(cat))?;
            in_range(
                &format!("retention_days.{cat}"),
                *days,
                0..=MAX_RETENTION_DAYS,
            )?;
        }
        Ok(())
    }

    /// The transport and admission limits.
    fn check_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        in_range("limits.max_frame_bytes", l.max_frame_bytes, 1024..=64 << 20)?;
        in_range(
            "limits.max_concurrent_streams",
            l.max_concurrent_streams,
            1..=1024,
        )?;
        in_range("limits.max_connections", l.max_connections, 1..=65_536)?;
        in_range("limits.idle_timeout_secs", l.idle_timeout_secs, 1..=3600)?;
        in_range("limits.stream_timeout_secs", l.stream_timeout_secs, 1..=600)?;
        in_range(
            "limits.max_clock_skew_secs",
            l.max_clock_skew_secs,
            1..=3600,
        )?;
        in_range(
            "limits.handshake_timeout_secs",
            l.handshake_timeout_secs,
            1..=60,
        )?;
        in_range("limits.max_handshakes", l.max_handshakes, 1..=4096)?;
        in_range(
            "limits.max_handshakes_per_address",
            l.max_handshakes_per_address,
            1..=l.max_handshakes,
        )?;
        in_range(
            "limits.retry_above_handshakes",
            l.retry_above_handshakes,
            0..=l.max_handshakes,
        )?;
        in_range(
            "limits.max_connections_per_peer",
            l.max_connections_per_peer,
            1..=256,
        )?;
        in_range(
            "limits.failed_handshakes_per_address",
            l.failed_handshakes_per_address,
            0..=1000,
        )?;
        in_range(
            "limits.failed_handshake_backoff_secs",
            l.failed_handshake_backoff_secs,
            1..=3600,
        )?;
        in_range(
            "limits.failed_handshake_backoff_max_secs",
            l.failed_handshake_backoff_max_secs,
            l.failed_handshake_backoff_secs..=86_400,
        )?;
        Ok(())
    }

    /// Delivery, audit checkpoints, directory staleness and logging.
    fn check_delivery_and_logs(&self) -> Result<(), ConfigError> {
        let d = &self.delivery;
        in_range(
            "delivery.backoff_initial_ms",
            d.backoff_initial_ms,
            1..=60_000,
        )?;
        in_range(
            "delivery.backoff_max_ms",
            d.backoff_max_ms,
            d.backoff_initial_ms..=3_600_000,
        )?;
        in_range("delivery.max_in_flight", d.max_in_flight, 1..=1024)?;
        in_range(
            "delivery.unreachable_after_secs",
            d.unreachable_after_secs,
            1..=7 * 86_400,
        )?;
        in_range(
            "audit.checkpoint_every_entries",
            self.audit.checkpoint_every_entries,
            1..=1_000_000,
        )?;
        in_range(
            "audit.checkpoint_every_secs",
            self.audit.checkpoint_every_secs,
            1..=86_400,
        )?;
        in_range("directory_stale_days", self.directory_stale_days, 1..=3650)?;
        in_range("followup_due_days", self.followup_due_days, 0..=3650)?;
        if !matches!(self.log.format.as_str(), "human" | "json") {
            return Err(invalid("log.format", "must be \"human\" or \"json\""));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(invalid("log.filter", format!("not a tracing filter: {e}")));
        }
        Ok(())
    }

    /// The adapted template.
    pub fn template(&self) -> Result<template::Template, ConfigError> {
        let mut exts = Vec::new();
        for (i, e) in self.template.extensions.iter().enumerate() {
            let key = format!("template.extensions[{i}]");
            let cat = parse_categories(
                &format!("{key}.category"),
                std::slice::from_ref(&e.category),
            )?;
            let kind = template::ExtKind::parse(&e.kind).ok_or_else(|| {
                invalid(
                    format!("{key}.kind"),
                    "must be text, long_text, date, bool, integer or text_list",
                )
            })?;
            let ext = template::Extension::new(e.path.clone(), kind, cat[0], e.help.clone())
                .map_err(|err| invalid(key.clone(), err.to_string()))?;
            exts.push(ext);
        }
        template::Template::new(exts, self.template.disabled.iter().cloned())
            .map_err(|e| invalid("template", e.to_string()))
    }

    /// Categories this node accepts.
    pub fn acceptance_categories(&self) -> Vec<Category> {
        parse_categories("acceptance", &self.acceptance).unwrap_or_default()
    }

    /// Outgoing profile for `peer`.
    pub fn outgoing_for(&self, peer: &str) -> Vec<Category> {
        self.outgoing_profile().for_peer(peer)
    }

    /// The outgoing law profile: what this country may send to each partner.
    pub fn outgoing_profile(&self) -> OutgoingProfile {
        OutgoingProfile {
            per_peer: self.outgoing.clone(),
            default: self.default_outgoing.clone(),
        }
    }

    /// The top-level `node.toml` keys whose values differ between `self` and `other`.
    pub fn changed_keys(&self, other: &NodeConfig) -> Vec<String> {
        let table = |c: &NodeConfig| match toml::Value::try_from(c) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::value::Table::new(),
        };
        let (a, b) = (table(self), table(other));
        let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        keys.retain(|k| a.get(k) != b.get(k));
        keys
    }

    /// Serializes to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Addresses announced in the card.
    pub fn announced_addresses(&self) -> Vec<String> {
        if self.public_addresses.is_empty() {
            vec![self.listen.to_string()]
        } else {
            self.public_addresses.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> String {
        NodeConfig::new(
            "IT",
            "Test unit",
            "127.0.0.1:4433".parse().unwrap(),
            "127.0.0.1:4434".parse().unwrap(),
        )
        .to_toml()
    }

    fn parse_error(text: &str) -> String {
        match NodeConfig::parse(text).and_then(|c| c.validate()) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("accepted: {text}"),
        }
    }

    #[test]
    fn type_errors_name_the_key() {
        let t = base().replace("max_frame_bytes = 1048576", "max_frame_bytes = \"big\"");
        assert!(
            parse_error(&t).contains("`limits.max_frame_bytes`"),
            "{}",
            parse_error(&t)
        );
        let t = base().replace("listen = \"127.0.0.1:4433\"", "listen = 5");
        assert!(parse_error(&t).contains("`listen`"), "{}", parse_error(&t));
        let t = base().replace("[log]\n", "[log]\nverbose = true\n");
        assert!(
            parse_error(&t).contains("`log.verbose`"),
            "{}",
            parse_error(&t)
        );
        let t = base().replace("\"child\",\n]", "\"child\",\n    7,\n]");
        assert!(
            parse_error(&t).contains("`acceptance`"),
            "{}",
            parse_error(&t)
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (from, to, key) in [
            (
                "public_addresses = []",
                "public_addresses = [\"nowhere\"]",
                "public_addresses[0]",
            ),
            (
                "store = \"store\"",
                "store = \"../elsewhere\"",
                "paths.store",
            ),
            (
                "store_key = \"keys/store.key\"",
                "store_key = \"/etc/k\"",
                "paths.store_key",
            ),
            (
                "unreachable_after_secs = 60",
                "unreachable_after_secs = 0",
                "delivery.unreachable_after_secs",
            ),
            ("filter = \"info\"", "filter = \"info,[[[\"", "log.filter"),
            (
                "max_connections = 256",
                "max_connections = 1000000000000",
                "limits.max_connections",
            ),
            (
                "handshake_timeout_secs = 5",
                "handshake_timeout_secs = 0",
                "limits.handshake_timeout_secs",
            ),
            (
                "max_handshakes = 64",
                "max_handshakes = 1000000000000",
                "limits.max_handshakes",
            ),
            (
                "max_handshakes_per_address = 8",
                "max_handshakes_per_address = 65",
                "limits.max_handshakes_per_address",
            ),
            (
                "retry_above_handshakes = 8",
                "retry_above_handshakes = 65",
                "limits.retry_above_handshakes",
            ),
            (
                "max_connections_per_peer = 8",
                "max_connections_per_peer = 0",
                "limits.max_connections_per_peer",
            ),
        ] {
            let t = base().replace(from, to);
            assert_ne!(t, base(), "{from}");
            let e = parse_error(&t);
            assert!(e.contains(&format!("`{key}`")), "{e}");
        }
    }
}

/// Every validation rule of this file as a table: a `node.toml` snippet and the exact one-line
/// answer of parsing and validating it.
#[cfg(test)]
mod table {
    use super::*;

    /// The required top-level keys, each written unless the snippet sets it before its first
    /// table or says `# without KEY`.
    const REQUIRED: [(&str, &str); 4] = [
        ("country", "country = \"IT\""),
        ("name", "name = \"Test unit\""),
        ("listen", "listen = \"127.0.0.1:4433\""),
        ("admin_listen", "admin_listen = \"127.0.0.1:4434\""),
    ];

    /// A `node.toml`: a comment, the required keys the snippet leaves out, then the snippet.
    fn node_toml(snippet: &str) -> String {
        let top: Vec<&str> = snippet
            .lines()
            .take_while(|l| !l.trim_start().starts_with('['))
            .collect();
        let sets = |key: &str| {
            top.iter().any(|l| {
                l.split_once('=').map(|(k, _)| k.trim()) == Some(key)
                    || l.trim() == format!("# without {key}")
            })
        };
        let mut text = String::from("# node.toml of a test node\n");
        for (key, line) in REQUIRED {
            if !sets(key) {
                text.push_str(line);
                text.push('\n');
            }
        }
        text.push_str(snippet);
        text.push('\n');
        text
    }

    /// Parses and validates, as `NodeConfig::load` does after reading the file.
    fn check(snippet: &str) -> Result<(), String> {
        NodeConfig::parse(&node_toml(snippet))
            .and_then(|c| c.validate())
            .map_err(|e| e.to_string())
    }

    fn run(rows: &[(&str, &str, Result<(), &str>)]) {
        let mut failed = Vec::new();
        for (case, snippet, want) in rows {
            let got = check(snippet);
            if let Err(e) = &got {
                assert!(!e.contains('\n'), "{case}: error is not one line: {e}");
            }
            if got != want.map_err(str::to_string) {
                failed.push(format!("{case}\n   want {want:?}\n   got  {got:?}"));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    const OUT_OF_RANGE: &str = "is out of range: must be";

    #[test]
    fn required_keys_and_top_level_values() {
        run(&[
            ("the minimal file is a whole configuration", "", Ok(())),
            (
                "country missing",
                "# without country",
                Err("node.toml: missing field `country` (line 1)"),
            ),
            (
                "listen missing",
                "# without listen",
                Err("node.toml: missing field `listen` (line 1)"),
            ),
            (
                "country in lower case",
                "country = \"it\"",
                Err("node.toml: `country`: must be two upper-case letters, e.g. IT"),
            ),
            (
                "country of three letters",
                "country = \"ITA\"",
                Err("node.toml: `country`: must be two upper-case letters, e.g. IT"),
            ),
            (
                "name blank",
                "name = \"  \"",
                Err("node.toml: `name`: must not be empty"),
            ),
            (
                "listen not an address",
                "listen = \"localhost\"",
                Err("node.toml: `listen`: invalid socket address syntax (line 5)"),
            ),
            (
                "listen of the wrong type",
                "listen = 5",
                Err("node.toml: `listen`: invalid type: integer `5`, expected socket address (line 5)"),
            ),
            (
                "unknown top-level key",
                "colour = \"blue\"",
                Err("node.toml: `colour`: unknown field `colour`, expected one of `country`, `name`, `listen`, `public_addresses`, `admin_listen`, `paths`, `limits`, `delivery`, `acceptance`, `outgoing`, `default_outgoing`, `template`, `retention_days`, `directory_stale_days`, `followup_due_days`, `audit`, `log`, `metrics` (line 6)"),
            ),
            (
                "public addresses as IP socket addresses",
                "public_addresses = [\"203.0.113.10:4433\", \"[2001:db8::1]:4433\"]",
                Ok(()),
            ),
            (
                "a public address that is a host name",
                "public_addresses = [\"203.0.113.10:4433\", \"node.example:4433\"]",
                Err("node.toml: `public_addresses[1]`: must be an IP socket address such as 203.0.113.10:4433"),
            ),
            (
                "directory_stale_days at its bounds",
                "directory_stale_days = 3650",
                Ok(()),
            ),
            (
                "directory_stale_days zero",
                "directory_stale_days = 0",
                Err("node.toml: `directory_stale_days`: 0 is out of range: must be 1 ..= 3650"),
            ),
            (
                "directory_stale_days above ten years",
                "directory_stale_days = 3651",
                Err("node.toml: `directory_stale_days`: 3651 is out of range: must be 1 ..= 3650"),
            ),
        ]);
    }

    #[test]
    fn paths_stay_inside_the_node_folder() {
        run(&[
            (
                "paths.signing_key: a plain relative path",
                "[paths]\nsigning_key = \"secrets/signing.key\"",
                Ok(()),
            ),
            (
                "paths.signing_key: absolute",
                "[paths]\nsigning_key = \"/etc/trm/signing.key\"",
                Err("node.toml: `paths.signing_key`: must be a relative path inside the node folder (no `..`, not absolute)"),
            ),
            (
                "paths.tls_key: through the parent folder",
                "[paths]\ntls_key = \"../tls.key\"",
                Err("node.toml: `paths.tls_key`: must be a relative path inside the node folder (no `..`, not absolute)"),
            ),
            (
                "paths.tls_key: out through the parent folder from inside",
                "[paths]\ntls_key = \"keys/../../tls.key\"",
                Err("node.toml: `paths.tls_key`: must be a relative path inside the node folder (no `..`, not absolute)"),
            ),
            (
                "paths.tls_cert: empty",
                "[paths]\ntls_cert = \"\"",
                Err("node.toml: `paths.tls_cert`: must be a relative path inside the node folder (no `..`, not absolute)"),
            ),
            (
                "paths.card: through the current folder",
                "[paths]\ncard = \"./card.trm\"",
                Err("node.toml: `paths.card`: must be a relative path inside the node folder (no `..`, not absolute)"),
            ),
            (
                "paths.store: a store beside the node folder",
                "[paths]\nstore = \"../elsewhere\"",
                Err("node.toml: `paths.store`: must be a relative path inside the node folder (no `..`, not absolute)"),
            ),
            (
                "paths.store_key: a store key elsewhere",
                "[paths]\nstore_key = \"/etc/k\"",
                Err("node.toml: `paths.store_key`: must be a relative path inside the node folder (no `..`, not absolute)"),
            ),
        ]);
    }

    #[test]
    fn categories_profiles_and_retention() {
        let known = "(known: reference, exploitation, assistance, risk, return, proceedings, identity, family, health, child)";
        let unknown = |key: &str, name: &str| {
            format!("node.toml: `{key}`: unknown category \"{name}\" {known}")
        };
        let (a, b, c, d, e) = (
            unknown("acceptance", "personal"),
            unknown("default_outgoing", "Identity"),
            unknown("outgoing.FR", "labour"),
            unknown("retention_days.passport", "passport"),
            unknown("template.extensions[0].category", "secret"),
        );
        run(&[
            (
                "France: an acceptance profile with no personal category",
                "acceptance = [\"reference\", \"exploitation\", \"assistance\", \"risk\", \"return\", \"proceedings\"]",
                Ok(()),
            ),
            ("an empty acceptance profile", "acceptance = []", Ok(())),
            (
                "a category named twice",
                "acceptance = [\"risk\", \"risk\"]",
                Ok(()),
            ),
            (
                "acceptance: unknown category",
                "acceptance = [\"reference\", \"personal\"]",
                Err(&a),
            ),
            (
                "acceptance: not a list of names",
                "acceptance = [\"reference\", 7]",
                Err("node.toml: `acceptance`: invalid type: integer `7`, expected a string (line 6)"),
            ),
            (
                "default_outgoing: names are lower case",
                "default_outgoing = [\"Identity\"]",
                Err(&b),
            ),
            (
                "outgoing profile for one peer",
                "[outgoing]\nAL = [\"reference\", \"identity\", \"health\"]",
                Ok(()),
            ),
            (
                "outgoing: not a country code",
                "[outgoing]\nfr = [\"reference\"]",
                Err("node.toml: `outgoing.fr`: not a country code"),
            ),
            (
                "outgoing: unknown category",
                "[outgoing]\nFR = [\"reference\", \"labour\"]",
                Err(&c),
            ),
            (
                "retention: zero (keep) and the longest",
                "[retention_days]\nhealth = 0\nidentity = 36500",
                Ok(()),
            ),
            (
                "retention: unknown category",
                "[retention_days]\npassport = 30",
                Err(&d),
            ),
            (
                "retention: over a hundred years",
                "[retention_days]\nhealth = 36501",
                Err("node.toml: `retention_days.health`: 36501 is out of range: must be 0 ..= 36500"),
            ),
            (
                "retention: negative",
                "[retention_days]\nhealth = -1",
                Err("node.toml: `retention_days.health`: invalid value: integer `-1`, expected u32 (line 7)"),
            ),
            (
                "template extension: unknown category",
                "[[template.extensions]]\npath = \"ext.it.permit\"\nkind = \"text\"\ncategory = \"secret\"\nhelp = \"Permit number\"",
                Err(&e),
            ),
        ]);
    }

    #[test]
    fn template_adaptations() {
        let ext = |path: &str, kind: &str, help: &str| {
            format!("[[template.extensions]]\npath = \"{path}\"\nkind = \"{kind}\"\ncategory = \"assistance\"\nhelp = \"{help}\"\n")
        };
        let good = ext("ext.it.permit", "text", "Permit number");
        let twice = format!("{good}{good}");
        let bad_path = ext("ext.IT.permit", "text", "Permit number");
        let bad_kind = ext("ext.it.permit", "number", "Permit number");
        let no_help = ext("ext.it.permit", "text", "");
        run(&[
            ("one national extension", &good, Ok(())),
            (
                "switching off a core field and a section",
                "[template]\ndisabled = [\"identity.aliases\", \"health\"]",
                Ok(()),
            ),
            (
                "switching off an unknown field",
                "[template]\ndisabled = [\"identity.shoe_size\"]",
                Err("node.toml: `template`: cannot switch off identity.shoe_size: not a core field or section"),
            ),
            (
                "switching off the consent records",
                "[template]\ndisabled = [\"consent.health\"]",
                Err("node.toml: `template`: cannot switch off consent.health: the case reference, the child-case fields and the consent records are always part of the template"),
            ),
            (
                "an extension declared twice",
                &twice,
                Err("node.toml: `template`: extension ext.it.permit is declared twice"),
            ),
            (
                "an extension path in upper case",
                &bad_path,
                Err("node.toml: `template.extensions[0]`: extension path ext.IT.permit is not of the form ext.<namespace>.<name> (lower-case letters, digits and _, starting with a letter; namespace at most 16, name at most 48 characters)"),
            ),
            (
                "an extension of an unknown kind",
                &bad_kind,
                Err("node.toml: `template.extensions[0].kind`: must be text, long_text, date, bool, integer or text_list"),
            ),
            (
                "an extension without help text",
                &no_help,
                Err("node.toml: `template.extensions[0]`: extension ext.it.permit: help must be one line of 1 to 300 characters"),
            ),
            (
                "an extension without a category",
                "[[template.extensions]]\npath = \"ext.it.permit\"\nkind = \"text\"",
                Err("node.toml: `template.extensions`: missing field `category` (line 6)"),
            ),
        ]);
    }

    /// Every bounded number: `(table, key, lowest, highest, other values it needs to reach
    /// both ends)`.
    const RANGES: [(&str, &str, u64, u64, &str); 21] = [
        ("limits", "max_frame_bytes", 1024, 64 << 20, ""),
        ("limits", "max_concurrent_streams", 1, 1024, ""),
        ("limits", "max_connections", 1, 65_536, ""),
        ("limits", "idle_timeout_secs", 1, 3600, ""),
        ("limits", "stream_timeout_secs", 1, 600, ""),
        ("limits", "max_clock_skew_secs", 1, 3600, ""),
        ("limits", "handshake_timeout_secs", 1, 60, ""),
        (
            "limits",
            "max_handshakes",
            1,
            4096,
            "max_handshakes_per_address = 1\nretry_above_handshakes = 0\n",
        ),
        ("limits", "max_handshakes_per_address", 1, 64, ""),
        ("limits", "retry_above_handshakes", 0, 64, ""),
        ("limits", "max_connections_per_peer", 1, 256, ""),
        ("limits", "failed_handshakes_per_address", 0, 1000, ""),
        (
            "limits",
            "failed_handshake_backoff_secs",
            1,
            3600,
            "failed_handshake_backoff_max_secs = 86400\n",
        ),
        ("limits", "failed_handshake_backoff_max_secs", 1, 86_400, ""),
        (
            "delivery",
            "backoff_initial_ms",
            1,
            60_000,
            "backoff_max_ms = 3600000\n",
        ),
        ("delivery", "backoff_max_ms", 200, 3_600_000, ""),
        ("delivery", "max_in_flight", 1, 1024, ""),
        ("delivery", "unreachable_after_secs", 1, 604_800, ""),
        ("audit", "checkpoint_every_entries", 1, 1_000_000, ""),
        ("audit", "checkpoint_every_secs", 1, 86_400, ""),
        ("", "directory_stale_days", 1, 3650, ""),
    ];

    #[test]
    fn every_bounded_number_at_and_beyond_its_bounds() {
        for (table, key, lo, hi, with) in RANGES {
            let (header, dotted) = if table.is_empty() {
                (String::new(), key.to_string())
            } else {
                (format!("[{table}]\n"), format!("{table}.{key}"))
            };
            let snippet = |v: u64| format!("{header}{with}{key} = {v}");
            for v in [lo, hi] {
                assert_eq!(check(&snippet(v)), Ok(()), "{dotted} = {v} is in range");
            }
            let mut beyond = vec![hi + 1];
            if lo > 0 {
                beyond.push(lo - 1);
            }
            for v in beyond {
                assert_eq!(
                    check(&snippet(v)),
                    Err(format!(
                        "node.toml: `{dotted}`: {v} {OUT_OF_RANGE} {lo} ..= {hi}"
                    )),
                    "{dotted} = {v}"
                );
            }
        }
    }

    #[test]
    fn bounds_that_follow_other_values() {
        run(&[
            (
                "per-address handshakes may not exceed all handshakes",
                "[limits]\nmax_handshakes = 16\nmax_handshakes_per_address = 17",
                Err("node.toml: `limits.max_handshakes_per_address`: 17 is out of range: must be 1 ..= 16"),
            ),
            (
                "fewer handshakes than the per-address default",
                "[limits]\nmax_handshakes = 4",
                Err("node.toml: `limits.max_handshakes_per_address`: 8 is out of range: must be 1 ..= 4"),
            ),
            (
                "retry threshold above all handshakes",
                "[limits]\nmax_handshakes = 16\nretry_above_handshakes = 17",
                Err("node.toml: `limits.retry_above_handshakes`: 17 is out of range: must be 0 ..= 16"),
            ),
            (
                "retry always",
                "[limits]\nretry_above_handshakes = 0",
                Ok(()),
            ),
            (
                "longest backoff shorter than the first",
                "[delivery]\nbackoff_initial_ms = 5000\nbackoff_max_ms = 4999",
                Err("node.toml: `delivery.backoff_max_ms`: 4999 is out of range: must be 5000 ..= 3600000"),
            ),
            (
                "a constant backoff",
                "[delivery]\nbackoff_initial_ms = 5000\nbackoff_max_ms = 5000",
                Ok(()),
            ),
            (
                "a number of the wrong type",
                "[limits]\nmax_frame_bytes = \"big\"",
                Err("node.toml: `limits.max_frame_bytes`: invalid type: string \"big\", expected usize (line 7)"),
            ),
            (
                "an unknown key in a table",
                "[delivery]\nretries = 3",
                Err("node.toml: `delivery.retries`: unknown field `retries`, expected one of `backoff_initial_ms`, `backoff_max_ms`, `max_in_flight`, `unreachable_after_secs` (line 7)"),
            ),
        ]);
    }

    #[test]
    fn logging_and_metrics() {
        run(&[
            (
                "json logs",
                "[log]\nformat = \"json\"\nfilter = \"trm_node=debug,info\"",
                Ok(()),
            ),
            (
                "an unknown log format",
                "[log]\nformat = \"xml\"",
                Err("node.toml: `log.format`: must be \"human\" or \"json\""),
            ),
            (
                "log format names are lower case",
                "[log]\nformat = \"JSON\"",
                Err("node.toml: `log.format`: must be \"human\" or \"json\""),
            ),
            (
                "a filter that is not a tracing filter",
                "[log]\nfilter = \"info,[[[\"",
                Err("node.toml: `log.filter`: not a tracing filter: invalid filter directive"),
            ),
            (
                "metrics off, on a fixed port",
                "[metrics]\nenabled = false\nlisten = \"127.0.0.1:9464\"",
                Ok(()),
            ),
            (
                "metrics address not an address",
                "[metrics]\nlisten = \"9464\"",
                Err("node.toml: `metrics.listen`: invalid socket address syntax (line 7)"),
            ),
        ]);
    }

    /// A case, the environment variables set, and the answer.
    type EnvRow = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Result<(), &'static str>,
    );

    #[test]
    fn environment_overrides() {
        let rows: [EnvRow; 6] = [
            ("no overrides", &[], Ok(())),
            (
                "listen and admin listen moved",
                &[
                    ("TRM_LISTEN", "0.0.0.0:5433"),
                    ("TRM_ADMIN_LISTEN", "127.0.0.1:5434"),
                ],
                Ok(()),
            ),
            (
                "TRM_LISTEN not an address",
                &[("TRM_LISTEN", "somewhere")],
                Err("node.toml: `TRM_LISTEN`: not a socket address"),
            ),
            (
                "TRM_ADMIN_LISTEN without a port",
                &[("TRM_ADMIN_LISTEN", "127.0.0.1")],
                Err("node.toml: `TRM_ADMIN_LISTEN`: not a socket address"),
            ),
            ("TRM_LOG_FORMAT json", &[("TRM_LOG_FORMAT", "json")], Ok(())),
            (
                "TRM_LOG_FORMAT is validated like the file",
                &[("TRM_LOG_FORMAT", "xml")],
                Err("node.toml: `log.format`: must be \"human\" or \"json\""),
            ),
        ];
        for (case, vars, want) in rows {
            let mut cfg = NodeConfig::parse(&node_toml("")).expect("minimal file");
            let got = cfg
                .apply_overrides(|name| {
                    vars.iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.to_string())
                })
                .and_then(|()| cfg.validate())
                .map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{case}");
            if want.is_ok() {
                for (k, v) in vars {
                    let now = match *k {
                        "TRM_LISTEN" => cfg.listen.to_string(),
                        "TRM_ADMIN_LISTEN" => cfg.admin_listen.to_string(),
                        _ => cfg.log.format.clone(),
                    };
                    assert_eq!(now, *v, "{case}: {k} applied");
                }
            }
        }
    }
}
