//! Nodes as separate processes: the `trm-node` binary (found by [`crate::bins`]) run on a
//! folder made by the library's `init`, on loopback ports below the ephemeral range (see
//! [`free_addr`]), driven through the admin API. Shared by the benchmarks (`trm-bench`) and
//! the reliability, security and network tests.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use trm_node::admin::client::AdminClient;
use trm_node::identity::{self, Credential, NodeKeys};
use trm_proto::admin as api;
use trm_proto::admin::admin_request::Call;

/// A free loopback UDP port for a node process to bind later (its port is written in its
/// node.toml, so the harness cannot hand it a bound socket as it does to in-process nodes).
///
/// Ports come from the 12,000 just below Linux's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, usually 32768-60999), so that the OS never hands
/// them to the clients' own sockets (bound to port 0) between this choice and the node's
/// start or restart; each is checked free when chosen and never handed out twice by this
/// process.
pub fn free_addr() -> SocketAddr {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768)
        .clamp(13_024, 32_768);
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(ephemeral_low - 12_000..ephemeral_low);
        if given.contains(&port) {
            continue;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if UdpSocket::bind(addr).is_ok() {
            given.push(port);
            return addr;
        }
    }
    panic!("no free loopback UDP port below the ephemeral range");
}

/// One node folder and, while it runs, its `trm-node run` process.
pub struct NodeProc {
    /// Country code.
    pub country: String,
    /// Node folder.
    pub dir: PathBuf,
    /// Peer listener.
    pub peer_addr: SocketAddr,
    /// Admin listener.
    pub admin_addr: SocketAddr,
    /// The operator credential made by `init`.
    pub operator: Credential,
    /// `RUST_LOG` for the process (default `warn`: per-message info lines cost throughput).
    pub log_filter: String,
    bin: PathBuf,
    child: Option<Child>,
    spawned_at: Option<Instant>,
    admin: Option<AdminClient>,
}

impl NodeProc {
    /// Makes a node folder `root/<country>` with the library's `init` (not started).
    pub fn init(root: &Path, country: &str, bin: &Path) -> Result<Self> {
        crate::setup();
        let dir = root.join(country);
        let (peer_addr, admin_addr) = (free_addr(), free_addr());
        identity::init(
            &dir,
            country,
            &format!("{country} synthetic unit"),
            peer_addr,
            admin_addr,
            None,
        )
        .with_context(|| format!("init {country}"))?;
        let operator = Credential::load(&dir.join(identity::OPERATOR_CRED))?;
        Ok(Self {
            country: country.into(),
            dir,
            peer_addr,
            admin_addr,
            operator,
            log_filter: "warn".into(),
            bin: bin.to_path_buf(),
            child: None,
            spawned_at: None,
            admin: None,
        })
    }

    /// A handle on an existing node folder `dir` (made by [`NodeProc::init`]).
    pub fn init_existing(dir: &Path, country: &str, bin: &Path) -> Self {
        crate::setup();
        let cfg = trm_node::base::config::NodeConfig::load(dir).ok();
        let operator = Credential::load(&dir.join(identity::OPERATOR_CRED)).ok();
        let fallback = free_addr();
        Self {
            country: country.into(),
            dir: dir.to_path_buf(),
            peer_addr: cfg.as_ref().map_or(fallback, |c| c.listen),
            admin_addr: cfg.as_ref().map_or(fallback, |c| c.admin_listen),
            operator: operator.unwrap_or_else(|| Credential {
                name: String::new(),
                role: String::new(),
                country: country.into(),
                node: fallback,
                node_cert_sha256: String::new(),
                cert_pem: String::new(),
                key_pem: String::new(),
            }),
            log_filter: "warn".into(),
            bin: bin.to_path_buf(),
            child: None,
            spawned_at: None,
            admin: None,
        }
    }

    /// Rewrites node.toml through `f`.
    pub fn edit_config(&self, f: impl FnOnce(&str) -> String) -> Result<()> {
        let path = self.dir.join("node.toml");
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(&path, f(&text))?;
        Ok(())
    }

    /// Appends TOML text to node.toml (for keys of tables not written by `init`, put whole
    /// tables; for existing tables use [`NodeProc::set_in_table`]).
    pub fn set_in_table(&self, table: &str, key: &str, value: &str) -> Result<()> {
        self.edit_config(|t| {
            let header = format!("[{table}]\n");
            let line = format!("{key} = {value}\n");
            let mut out = String::new();
            let mut in_table = false;
            let mut done = false;
            for l in t.lines() {
                let trimmed = l.trim();
                if trimmed.starts_with('[') {
                    if in_table && !done {
                        out.push_str(&line);
                        done = true;
                    }
                    in_table = trimmed == header.trim();
                }
                if in_table && trimmed.split('=').next().map(str::trim) == Some(key) {
                    out.push_str(&line);
                    done = true;
                    continue;
                }
                out.push_str(l);
                out.push('\n');
            }
            if in_table && !done {
                out.push_str(&line);
                done = true;
            }
            if !done {
                out.push('\n');
                out.push_str(&header);
                out.push_str(&line);
            }
            out
        })
    }

    /// Starts `trm-node run` (does not wait for it to be ready).
    pub fn spawn(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("{} is already running", self.country);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))?;
        let child = Command::new(&self.bin)
            .arg("run")
            .arg("--dir")
            .arg(&self.dir)
            .env("RUST_LOG", &self.log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.spawned_at = Some(Instant::now());
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the admin listener completes a mutually authenticated handshake (the peer
    /// listener is bound in the same step); returns the time since [`NodeProc::spawn`].
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration> {
        let started = self.spawned_at.unwrap_or_else(Instant::now);
        let deadline = started + timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    self.child = None;
                    bail!(
                        "{} exited with {status} before it was ready: {}",
                        self.country,
                        self.log_tail()
                    );
                }
            }
            // A handshake to a port nobody has bound yet only ends by its timeout: wait for
            // the bind first, so that "ready" is timed to a few ms, not in 250 ms steps.
            if !udp_bound(self.admin_addr) {
                if Instant::now() > deadline {
                    bail!(
                        "{} did not bind {} within {timeout:?}",
                        self.country,
                        self.admin_addr
                    );
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            let attempt = tokio::time::timeout(
                Duration::from_millis(250),
                AdminClient::connect(&self.operator),
            )
            .await;
            if let Ok(Ok(c)) = attempt {
                let ready = started.elapsed();
                self.admin = Some(c);
                return Ok(ready);
            }
            if Instant::now() > deadline {
                bail!("{} not ready within {timeout:?}", self.country);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Spawns and waits until ready.
    pub async fn start(&mut self) -> Result<Duration> {
        self.spawn()?;
        self.wait_ready(Duration::from_secs(60)).await
    }

    /// The node's Prometheus metrics, as its `/metrics` endpoint answers them (the address
    /// is the one the node wrote in `run/metrics.addr`).
    pub fn metrics(&self) -> Result<String> {
        let addr: SocketAddr = std::fs::read_to_string(self.dir.join("run/metrics.addr"))
            .context("run/metrics.addr")?
            .trim()
            .parse()
            .context("metrics address")?;
        let (code, body) = trm_node::ops::prometheus::scrape(addr, Duration::from_secs(5))?;
        anyhow::ensure!(code == 200, "metrics answered {code}: {body}");
        Ok(body)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        self.admin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (clean shutdown, the store is flushed), then reap; SIGKILL after 10 s.
    pub fn terminate(&mut self) {
        self.admin = None;
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory of the process (VmRSS), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid()?)
    }

    /// One admin call as the operator, on a kept connection (reconnects once if it broke).
    pub async fn call(&mut self, call: Call) -> Result<Value> {
        for _ in 0..2 {
            if self.admin.is_none() {
                let c = tokio::time::timeout(
                    Duration::from_secs(5),
                    AdminClient::connect(&self.operator),
                )
                .await
                .map_err(|_| anyhow!("{}: admin connect timed out", self.country))??;
                self.admin = Some(c);
            }
            let Some(c) = self.admin.as_ref() else {
                continue;
            };
            match tokio::time::timeout(Duration::from_secs(30), c.call(call.clone())).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(trm_node::admin::client::ClientError::Refused { message, .. })) => {
                    bail!("{}: {message}", self.country)
                }
                _ => self.admin = None,
            }
        }
        bail!("{}: admin call failed", self.country)
    }

    /// Issues an officer credential with `role` through the admin API.
    pub async fn officer(&mut self, name: &str, role: &str) -> Result<Credential> {
        let cert = identity::self_signed(name, role)?;
        let v = self
            .call(Call::OfficerAdd(api::OfficerAdd {
                name: name.into(),
                role: role.into(),
                cert_der: cert.cert_der,
            }))
            .await?;
        Ok(Credential {
            name: name.into(),
            role: role.into(),
            country: self.country.clone(),
            node: self.admin_addr,
            node_cert_sha256: v["node_cert_sha256"]
                .as_str()
                .ok_or_else(|| anyhow!("no node_cert_sha256"))?
                .into(),
            cert_pem: cert.cert_pem,
            key_pem: cert.key_pem,
        })
    }

    /// Pins `card` (another node's identity card) here.
    pub async fn pin_card(&mut self, card: Vec<u8>) -> Result<()> {
        self.call(Call::PeerAdd(api::PeerAdd {
            card,
            ..Default::default()
        }))
        .await?;
        Ok(())
    }

    /// The node's identity card file.
    pub fn card(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("card.trm")).unwrap_or_default()
    }

    /// The node's keys, read from its folder.
    pub fn keys(&self) -> Result<NodeKeys> {
        let cfg = trm_node::base::config::NodeConfig::load(&self.dir)?;
        Ok(NodeKeys::load(&self.dir, &cfg)?)
    }

    /// The store folder.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// Opens the node's store with the library (the process must be stopped).
    pub fn open_store(&self) -> Result<trm_node::store::Store> {
        Ok(trm_node::store::Store::open(&self.store_dir())?)
    }

    /// The last lines of the node's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// VmRSS of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Pins every node to every other through the admin API.
pub async fn pin_all(nodes: &mut [NodeProc]) -> Result<()> {
    let cards: Vec<(String, Vec<u8>)> = nodes
        .iter()
        .map(|n| (n.country.clone(), n.card()))
        .collect();
    for n in nodes.iter_mut() {
        for (cc, card) in &cards {
            if *cc != n.country {
                n.pin_card(card.clone()).await?;
            }
        }
    }
    Ok(())
}

/// The peak resident memory (VmRSS, KiB) of a process, sampled every 50 ms until
/// [`RssPeak::stop`].
pub struct RssPeak {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssPeak {
    /// Starts sampling `pid`; the peak starts at `floor`.
    pub fn start(pid: u32, floor: u64) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let peak = Arc::new(AtomicU64::new(floor));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(k) = rss_kib(pid) {
                        peak.fetch_max(k, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Self { peak, stop, task }
    }

    /// Stops sampling; the peak seen, in KiB.
    pub async fn stop(self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("RSS sampler");
        self.peak.load(Ordering::Relaxed)
    }
}

/// IT and AL as processes in `root`, for the flood tests: AL stops a stalled stream after
/// `stream_timeout_secs`, IT retries deliveries within 500 ms; both started and pinned to
/// each other. The floods of these tests come from the legitimate peer's own address
/// (127.0.0.1), where AL's penalty for failed authentication would hold the legitimate peer
/// too (docs/SECURITY.md, issue 14 caveats): it is off here; flood_penalty.rs tests it.
pub async fn flood_pair(root: &Path, stream_timeout_secs: u64) -> Result<(NodeProc, NodeProc)> {
    let bin = crate::bins::bin("trm-node");
    let mut it = NodeProc::init(root, "IT", &bin)?;
    let mut al = NodeProc::init(root, "AL", &bin)?;
    al.set_in_table("limits", "failed_handshakes_per_address", "0")?;
    al.set_in_table(
        "limits",
        "stream_timeout_secs",
        &stream_timeout_secs.to_string(),
    )?;
    it.set_in_table("delivery", "backoff_max_ms", "500")?;
    it.start().await?;
    al.start().await?;
    it.pin_card(al.card()).await?;
    al.pin_card(it.card()).await?;
    Ok((it, al))
}

/// Whether some socket is bound to `addr`'s UDP port, from `/proc/net/udp` (or `udp6`); true
/// when those cannot be read, so that a caller then simply tries to connect.
fn udp_bound(addr: SocketAddr) -> bool {
    let table = if addr.is_ipv4() {
        "/proc/net/udp"
    } else {
        "/proc/net/udp6"
    };
    match std::fs::read_to_string(table) {
        Ok(text) => udp_table_has_port(&text, addr.port()),
        Err(_) => true,
    }
}

/// Whether a `/proc/net/udp` table lists a socket whose local port is `port`.
fn udp_table_has_port(text: &str, port: u16) -> bool {
    text.lines().skip(1).any(|line| {
        line.split_whitespace()
            .nth(1)
            .and_then(|local| local.rsplit_once(':'))
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            == Some(port)
    })
}

/// The value of one series (`name{labels}` exactly as exposed) in a metrics answer; 0 when the
/// series is not there (a counter that never moved).
pub fn metric_value(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(0.0) as u64
}

#[cfg(test)]
mod udp_table_tests {
    use super::udp_table_has_port;

    #[test]
    fn a_bound_port_is_found_by_its_hex_local_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue\n\
            \x20 12: 0100007F:1F90 00000000:0000 07 00000000:00000000\n";
        assert!(udp_table_has_port(table, 8080));
        assert!(!udp_table_has_port(table, 8081));
        assert!(!udp_table_has_port("  sl  local_address\n", 8080));
    }
}
