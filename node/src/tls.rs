//! TLS for both listeners: TLS 1.3 only, ring as the one explicit crypto provider, and
//! certificate pinning instead of a CA.
//!
//! A connection is accepted only if the other side's end-entity certificate hashes (SHA-256
//! of its DER) to an entry of a [`Pins`] set that is valid now; the handshake signature is
//! checked with the provider's algorithms as usual. After the handshake, [`peer_fingerprint`]
//! maps the connection to the pinned identity. Nothing here skips a check.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::time::now_ms;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the configuration.
    #[error("QUIC TLS configuration: {0}")]
    Quic(String),
}

/// Who a pinned certificate belongs to, and until when it is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// Country code (peers) or officer name (admin).
    pub who: String,
    /// Not valid before (Unix ms).
    pub not_before_ms: i64,
    /// Not valid after (Unix ms).
    pub not_after_ms: i64,
}

/// A set of pinned certificate hashes, shared by verifiers and changed at run time.
#[derive(Debug, Default)]
pub struct Pins {
    map: RwLock<HashMap<[u8; 32], Pin>>,
}

impl Pins {
    /// An empty set.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Pins `cert_der` for `pin.who`.
    pub fn insert(&self, cert_der: &[u8], pin: Pin) {
        let fp = trm_proto::signing::sha256(cert_der);
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fp, pin);
    }

    /// Removes every pin of `who`.
    pub fn remove_who(&self, who: &str) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| p.who != who);
    }

    /// The identity pinned for this certificate, if it is valid now.
    pub fn lookup(&self, cert_der: &[u8]) -> Option<Pin> {
        let fp = trm_proto::signing::sha256(cert_der);
        let now = now_ms();
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fp)
            .filter(|p| now >= p.not_before_ms && now <= p.not_after_ms)
            .cloned()
    }
}

/// The one crypto provider of the process: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn verify_signature13(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

/// Server side: requires a client certificate and accepts only pinned ones.
#[derive(Debug)]
pub struct PinnedClientVerifier {
    pins: Arc<Pins>,
    provider: Arc<CryptoProvider>,
}

impl PinnedClientVerifier {
    /// A verifier over `pins`.
    pub fn new(pins: Arc<Pins>, provider: Arc<CryptoProvider>) -> Self {
        Self { pins, provider }
    }
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.pins.lookup(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client side: accepts exactly one pinned server certificate.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    expected: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedServerVerifier {
    /// Accepts only the certificate whose SHA-256 is `expected`.
    pub fn new(expected: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
        Self { expected, provider }
    }
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if trm_proto::signing::sha256(end_entity) == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Transport limits applied to every connection.
#[derive(Clone, Copy, Debug)]
pub struct QuicLimits {
    /// Concurrent bidirectional streams the other side may open.
    pub max_streams: u32,
    /// Per-stream and per-connection receive window, bytes.
    pub window: u32,
    /// Idle timeout.
    pub idle_timeout: std::time::Duration,
}

fn transport(limits: QuicLimits) -> Result<quinn::TransportConfig, TlsError> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(0u32.into());
    t.max_concurrent_bidi_streams(limits.max_streams.into());
    t.stream_receive_window(limits.window.into());
    t.receive_window((limits.window.saturating_mul(4)).into());
    t.send_window(u64::from(limits.window) * 4);
    t.max_idle_timeout(Some(
        limits
            .idle_timeout
            .try_into()
            .map_err(|_| TlsError::Quic("idle timeout out of range".into()))?,
    ));
    t.keep_alive_interval(Some(limits.idle_timeout / 3));
    Ok(t)
}

/// A QUIC server config: TLS 1.3, `alpn`, client certificate required and pinned, 0-RTT off.
pub fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pins: Arc<Pins>,
    alpn: &[u8],
    limits: QuicLimits,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedClientVerifier::new(pins, provider.clone()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert], key)?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(cfg)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(quic));
    sc.transport_config(Arc::new(transport(limits)?));
    Ok(sc)
}

/// A QUIC client config that presents `cert` and accepts only the server certificate whose
/// SHA-256 is `server_fp`. TLS 1.3, `alpn`, 0-RTT off.
pub fn client_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    server_fp: [u8; 32],
    alpn: &[u8],
    limits: QuicLimits,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServerVerifier::new(server_fp, provider.clone()));
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], key)?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg.enable_early_data = false;
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(cfg)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cc = quinn::ClientConfig::new(Arc::new(quic));
    cc.transport_config(Arc::new(transport(limits)?));
    Ok(cc)
}

/// SHA-256 of the other side's end-entity certificate, after the handshake.
pub fn peer_cert(conn: &quinn::Connection) -> Option<CertificateDer<'static>> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().cloned()
}

/// The pinned identity of the other side of `conn`, re-checked against `pins` now.
pub fn peer_fingerprint(conn: &quinn::Connection, pins: &Pins) -> Option<Pin> {
    peer_cert(conn).and_then(|c| pins.lookup(&c))
}

/// The server name used when dialing; pinning makes the name irrelevant to security.
pub const SERVER_NAME: &str = "trm.invalid";
