//! Transport attacks and observations for tests/tests/trust_net.rs (issue 10, items 8, 10, 18):
//! how a handshake ended (a TLS-level refusal by the server, an application close, or open),
//! clients that try to resume TLS sessions, raw QUIC Initials that never complete, a raw
//! peer server, and peer cards with chosen addresses and validity.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore};
use rustls::pki_types::{CertificateDer, ServerName};
use trm_proto::pb;
use trm_proto::signing;

use crate::raw::TlsId;

/// How long a refused client may wait for the server's TLS-level close.
pub const REFUSAL_WITHIN: Duration = Duration::from_millis(2000);

/// How a handshake attempt ended, from the client's side.
#[derive(Debug)]
pub enum Handshake {
    /// The server closed the connection with a TLS alert (a QUIC CRYPTO_ERROR, 0x100 + alert),
    /// `after` the attempt began.
    TlsRefused { alert: u8, after: Duration },
    /// The server completed the handshake, then closed the connection at the application
    /// level (code, reason).
    AppClosed { code: u64, reason: String },
    /// The connection is open and was not closed within the wait.
    Open(quinn::Connection),
    /// Anything else: a local error, a timeout, a transport error that is not TLS.
    Other(String),
}

impl Handshake {
    /// True for a TLS-level refusal by the server within [`REFUSAL_WITHIN`].
    pub fn is_tls_refusal(&self) -> bool {
        matches!(self, Self::TlsRefused { after, .. } if *after <= REFUSAL_WITHIN)
    }
}

fn classify(e: &quinn::ConnectionError, started: Instant) -> Handshake {
    match e {
        quinn::ConnectionError::ConnectionClosed(c) => {
            let code = u64::from(c.error_code);
            if (0x100..0x200).contains(&code) {
                Handshake::TlsRefused {
                    alert: (code - 0x100) as u8,
                    after: started.elapsed(),
                }
            } else {
                Handshake::Other(format!("transport close: {c}"))
            }
        }
        quinn::ConnectionError::ApplicationClosed(a) => Handshake::AppClosed {
            code: a.error_code.into_inner(),
            reason: String::from_utf8_lossy(&a.reason).into_owned(),
        },
        other => Handshake::Other(other.to_string()),
    }
}

/// A client endpoint on `bind` (an IP on loopback; port chosen by the OS).
pub fn client_endpoint(bind: IpAddr) -> quinn::Endpoint {
    let sock = std::net::UdpSocket::bind(SocketAddr::new(bind, 0)).expect("bind loopback");
    trm_node::net::transport::endpoint(sock, None).expect("endpoint")
}

/// Dials `addr` with `cfg` from `ep` and waits up to [`REFUSAL_WITHIN`] for the server to
/// refuse. A TLS 1.3 client finishes its side of the handshake before the server has checked
/// its certificate, so a refusal usually arrives just after `connecting` resolves.
pub async fn try_handshake(
    ep: &quinn::Endpoint,
    cfg: quinn::ClientConfig,
    addr: SocketAddr,
) -> Handshake {
    let started = Instant::now();
    let connecting = match ep.connect_with(cfg, addr, trm_node::net::tls::SERVER_NAME) {
        Ok(c) => c,
        Err(e) => return Handshake::Other(e.to_string()),
    };
    let conn = match tokio::time::timeout(REFUSAL_WITHIN, connecting).await {
        Err(_) => return Handshake::Other("handshake timed out".into()),
        Ok(Err(e)) => return classify(&e, started),
        Ok(Ok(c)) => c,
    };
    let left = REFUSAL_WITHIN.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, conn.closed()).await {
        Ok(e) => classify(&e, started),
        Err(_) => Handshake::Open(conn),
    }
}

/// The client configuration a peer uses: `id`'s certificate, `server_cert` pinned.
pub fn peer_client(id: &TlsId, server_cert: &[u8]) -> quinn::ClientConfig {
    trm_node::net::tls::client_config(
        id.cert.clone(),
        id.key(),
        signing::sha256(server_cert),
        trm_proto::ALPN_PEER,
        limits(),
    )
    .expect("client config")
}

/// A client configuration without any client certificate.
pub fn certificateless_client(server_cert: &[u8]) -> quinn::ClientConfig {
    let provider = trm_node::net::tls::provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(trm_node::net::tls::PinnedServerVerifier::new(
            signing::sha256(server_cert),
            provider,
        )))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![trm_proto::ALPN_PEER.to_vec()];
    quic_client(cfg)
}

fn limits() -> trm_node::net::tls::QuicLimits {
    trm_node::net::tls::QuicLimits {
        max_streams: 64,
        window: 2 << 20,
        idle_timeout: Duration::from_secs(10),
    }
}

fn quic_client(cfg: rustls::ClientConfig) -> quinn::ClientConfig {
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(cfg).expect("QUIC client");
    quinn::ClientConfig::new(Arc::new(qc))
}

/// A TLS session store that counts the TLS 1.3 tickets the server issued and hands them back
/// for resumption, as any ordinary client would.
#[derive(Debug)]
pub struct TicketCounter {
    inner: ClientSessionMemoryCache,
    tickets: AtomicUsize,
}

impl TicketCounter {
    /// Tickets received so far.
    pub fn tickets(&self) -> usize {
        self.tickets.load(Ordering::SeqCst)
    }
}

impl ClientSessionStore for TicketCounter {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(server_name, group)
    }
    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(server_name)
    }
    fn set_tls12_session(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(server_name, value)
    }
    fn tls12_session(
        &self,
        server_name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(server_name)
    }
    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name)
    }
    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(server_name, value)
    }
    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(server_name)
    }
}

/// A peer client (`id`, `server_cert` pinned) that keeps and offers TLS sessions for
/// resumption, with the counter of tickets it got.
pub fn resuming_client(
    id: &TlsId,
    server_cert: &[u8],
) -> (quinn::ClientConfig, Arc<TicketCounter>) {
    let provider = trm_node::net::tls::provider();
    let store = Arc::new(TicketCounter {
        inner: ClientSessionMemoryCache::new(32),
        tickets: AtomicUsize::new(0),
    });
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(trm_node::net::tls::PinnedServerVerifier::new(
            signing::sha256(server_cert),
            provider,
        )))
        .with_client_auth_cert(vec![id.cert.clone()], id.key())
        .unwrap();
    cfg.alpn_protocols = vec![trm_proto::ALPN_PEER.to_vec()];
    cfg.resumption = rustls::client::Resumption::store(store.clone());
    (quic_client(cfg), store)
}

/// `n` QUIC Initial datagrams for `target`, each opening a different connection (fresh
/// connection IDs), exactly as a quinn client sends its first flight (a TLS ClientHello for
/// ALPN `trm/1`). Sent raw, their handshakes never complete.
pub fn initials(target: SocketAddr, n: usize) -> Vec<Vec<u8>> {
    let id = TlsId::new("trm-node-XX");
    let cfg = peer_client(&id, b"no server");
    let mut ep = quinn_proto::Endpoint::new(
        Arc::new(quinn::EndpointConfig::default()),
        None,
        false,
        None,
    );
    let now = Instant::now();
    let mut out = Vec::with_capacity(n);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let (_, mut conn) = ep
            .connect(now, cfg.clone(), target, trm_node::net::tls::SERVER_NAME)
            .expect("connect");
        let mut buf = Vec::new();
        let t = conn.poll_transmit(now, 1, &mut buf).expect("an Initial");
        buf.truncate(t.size);
        out.push(buf);
        conns.push(conn);
    }
    out
}

/// Sends `initials` to `target` from a socket on `from`, `per_tick` every 50 ms, cycling,
/// until `stop`; counts what was sent. Nothing that comes back is ever answered.
pub async fn flood_initials(
    target: SocketAddr,
    from: IpAddr,
    initials: Vec<Vec<u8>>,
    per_tick: usize,
    sent: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .expect("bind attacker");
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..per_tick {
            let _ = sock.send_to(&initials[i % initials.len()], target).await;
            i += 1;
            sent.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A peer made up by the test with one signing key, its card listing `addresses`.
pub struct MadeUpPeer {
    pub country: String,
    pub card: Vec<u8>,
    pub tls: TlsId,
    pub key: SigningKey,
}

impl MadeUpPeer {
    /// Its TLS identity (a copy).
    pub fn id(&self) -> TlsId {
        TlsId {
            cert: self.tls.cert.clone(),
            key_pem: self.tls.key_pem.clone(),
        }
    }
}

/// A card for `country` valid over `[from, until]`, at `addresses`, with a fresh TLS identity
/// and one fresh signing key valid over the same interval.
pub fn made_up_peer(country: &str, addresses: &[SocketAddr], from: i64, until: i64) -> MadeUpPeer {
    made_up_peer_with(
        country,
        addresses,
        from,
        until,
        TlsId::new(&format!("trm-node-{country}")),
    )
}

/// [`made_up_peer`] with a given TLS identity.
pub fn made_up_peer_with(
    country: &str,
    addresses: &[SocketAddr],
    from: i64,
    until: i64,
    tls: TlsId,
) -> MadeUpPeer {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let card = pb::Card {
        version: 1,
        country: country.into(),
        name: format!("{country} made-up unit"),
        addresses: addresses.iter().map(|a| a.to_string()).collect(),
        tls_cert_der: tls.cert.to_vec(),
        signing_key: key.verifying_key().to_bytes().to_vec(),
        acceptance: trm_proto::template::ALL_CATEGORIES
            .iter()
            .map(|c| *c as i32)
            .collect(),
        valid_from_ms: from,
        valid_until_ms: until,
        key_history: vec![pb::KeyRecord {
            public_key: key.verifying_key().to_bytes().to_vec(),
            valid_from_ms: from,
            valid_until_ms: 0,
            endorsement: vec![],
            endorser: vec![],
        }],
        issued_ms: from,
    };
    MadeUpPeer {
        country: country.into(),
        card: trm_proto::card::sign_card(&card, &key),
        tls,
        key,
    }
}

/// A raw peer server presenting `id` and accepting clients pinned in `client_certs`; it
/// counts completed handshakes and streams, and resets every stream without answering.
pub struct RawServer {
    pub addr: SocketAddr,
    pub handshakes: Arc<AtomicUsize>,
    pub streams: Arc<AtomicUsize>,
    endpoint: quinn::Endpoint,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    pub fn start(id: &TlsId, client_certs: &[CertificateDer<'static>]) -> Self {
        let pins = trm_node::net::tls::Pins::new();
        for c in client_certs {
            pins.insert(
                c,
                trm_node::net::tls::Pin {
                    who: "client".into(),
                    not_before_ms: i64::MIN,
                    not_after_ms: i64::MAX,
                },
            );
        }
        let cfg = trm_node::net::tls::server_config(
            id.cert.clone(),
            id.key(),
            pins,
            trm_proto::ALPN_PEER,
            limits(),
        )
        .expect("server config");
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = sock.local_addr().unwrap();
        let endpoint = trm_node::net::transport::endpoint(sock, Some(cfg)).expect("endpoint");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        let task = {
            let (ep, h, s) = (endpoint.clone(), handshakes.clone(), streams.clone());
            tokio::spawn(async move {
                while let Some(incoming) = ep.accept().await {
                    let (h, s) = (h.clone(), s.clone());
                    tokio::spawn(async move {
                        let Ok(conn) = incoming.await else { return };
                        h.fetch_add(1, Ordering::SeqCst);
                        while let Ok((mut send, _recv)) = conn.accept_bi().await {
                            s.fetch_add(1, Ordering::SeqCst);
                            let _ = send.reset(1u32.into());
                        }
                    });
                }
            })
        };
        Self {
            addr,
            handshakes,
            streams,
            endpoint,
            task,
        }
    }

    pub fn stop(self) {
        self.endpoint.close(0u32.into(), b"done");
        self.task.abort();
    }
}

/// The lines of `log` that contain every one of `needles`.
pub fn log_lines(log: &str, needles: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// A referral from a made-up peer to `to`, framed, signed with its key.
pub fn referral_frame(from: &MadeUpPeer, to: &str) -> Vec<u8> {
    let (body, disclosures) =
        crate::raw::referral(&from.country, to, trm_node::base::time::now_ms());
    crate::raw::frame(crate::raw::envelope(&from.key, &body), disclosures)
}
