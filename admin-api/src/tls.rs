//! The client half of the node's TLS: TLS 1.3 only, ring as the one explicit provider, and
//! the server's certificate pinned by its SHA-256 instead of a CA. The node builds its own
//! dialing configs and its transport limits from here too; the server side (pinned client
//! certificates) stays in the node.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

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

/// The server name used when dialing; pinning makes the name irrelevant to security.
pub const SERVER_NAME: &str = "trm.invalid";

/// The one crypto provider of the process: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Checks a TLS 1.3 handshake signature with `provider`'s algorithms.
pub fn verify_signature13(
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

/// Client side: accepts exactly one pinned server certificate, within its validity.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    expected: [u8; 32],
    valid: (i64, i64),
    provider: Arc<CryptoProvider>,
}

impl PinnedServerVerifier {
    /// Accepts only the certificate whose SHA-256 is `expected`, at any time (the admin
    /// client: an officer's credential names the node's certificate, with no validity).
    pub fn new(expected: [u8; 32], provider: Arc<CryptoProvider>) -> Self {
        Self {
            expected,
            valid: (i64::MIN, i64::MAX),
            provider,
        }
    }

    /// Accepts only the certificate whose SHA-256 is `expected`, and only while now is within
    /// `[not_before_ms, not_after_ms]` (a peer card's validity).
    pub fn within(
        expected: [u8; 32],
        not_before_ms: i64,
        not_after_ms: i64,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            expected,
            valid: (not_before_ms, not_after_ms),
            provider,
        }
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
        let now = now_ms();
        if trm_proto::signing::sha256(end_entity) != self.expected {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        } else if now < self.valid.0 {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet,
            ))
        } else if now > self.valid.1 {
            Err(rustls::Error::InvalidCertificate(CertificateError::Expired))
        } else {
            Ok(ServerCertVerified::assertion())
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

/// Which side a transport configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The listener.
    Server,
    /// The dialer.
    Client,
}

/// The QUIC transport configuration for `limits` on `side`.
pub fn transport(limits: QuicLimits, side: Side) -> Result<quinn::TransportConfig, TlsError> {
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
    // Only the client keeps a connection alive: a server that pinged would hold every idle
    // connection (and its slot) forever on behalf of a peer that went quiet.
    t.keep_alive_interval(match side {
        Side::Client => Some(limits.idle_timeout / 3),
        Side::Server => None,
    });
    // No QUIC datagrams: nothing reads them, so none are accepted or buffered.
    t.datagram_receive_buffer_size(None);
    t.datagram_send_buffer_size(0);
    Ok(t)
}

/// A QUIC client config that presents `cert` and accepts only the server certificate whose
/// SHA-256 is `server_fp`, at any time (the admin client). TLS 1.3, `alpn`, 0-RTT off, no
/// resumption, no datagrams.
pub fn client_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    server_fp: [u8; 32],
    alpn: &[u8],
    limits: QuicLimits,
) -> Result<quinn::ClientConfig, TlsError> {
    let verifier = PinnedServerVerifier::new(server_fp, provider());
    client_config_with(cert, key, verifier, alpn, limits)
}

/// A QUIC client config presenting `cert` and trusting what `verifier` accepts.
pub fn client_config_with(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    verifier: PinnedServerVerifier,
    alpn: &[u8],
    limits: QuicLimits,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = verifier.provider.clone();
    let verifier = Arc::new(verifier);
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], key)?;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg.enable_early_data = false;
    cfg.resumption = rustls::client::Resumption::disabled();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(cfg)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut cc = quinn::ClientConfig::new(Arc::new(quic));
    cc.transport_config(Arc::new(transport(limits, Side::Client)?));
    Ok(cc)
}
