//! TLS for both listeners: TLS 1.3 only, ring as the one explicit crypto provider, and
//! certificate pinning instead of a CA.
//!
//! A connection is accepted only if the other side's end-entity certificate hashes (SHA-256
//! of its DER) to an entry of a [`Pins`] set that is valid now; the handshake signature is
//! checked with the provider's algorithms as usual. After the handshake, [`peer_fingerprint`]
//! maps the connection to the pinned identity. Nothing here skips a check.
//!
//! No TLS session is ever resumed: a resumed session would carry the first handshake's client
//! certificate without calling the verifier again, so a certificate unpinned in between would
//! still get in. Servers keep no session cache and send no tickets; clients never try. QUIC
//! datagrams are off (nothing reads them).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use trm_admin_api::tls::{client_config_with, transport, verify_signature13, Side};
// The client half (the admin client's and the dialer's) lives in trm-admin-api, which the
// command line uses without the node.
pub use trm_admin_api::tls::{
    client_config, provider, PinnedServerVerifier, QuicLimits, TlsError, SERVER_NAME,
};

use crate::base::time::now_ms;

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

impl Pin {
    /// True if `now_ms` is inside the pin's validity.
    pub fn valid_at(&self, now_ms: i64) -> bool {
        now_ms >= self.not_before_ms && now_ms <= self.not_after_ms
    }
}

/// A set of pinned certificate hashes, shared by verifiers and changed at run time.
#[derive(Debug)]
pub struct Pins {
    map: RwLock<HashMap<[u8; 32], Pin>>,
    /// Bumped on every change, so that live connections re-check their pin at once.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Pins {
    fn default() -> Self {
        Self {
            map: RwLock::default(),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
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
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Removes every pin of `who`.
    pub fn remove_who(&self, who: &str) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| p.who != who);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Replaces every pin of `who` with `pin` (none: removes them) in one step, so that a
    /// connection re-checking its peer never sees the moment between removal and insertion
    /// (a rotation re-pins the same certificate: its live connections must stay up).
    pub fn replace_who(&self, who: &str, pin: Option<(&[u8], Pin)>) {
        {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, p| p.who != who);
            if let Some((cert_der, pin)) = pin {
                map.insert(trm_proto::signing::sha256(cert_der), pin);
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes whenever a pin is added or removed: holders of live connections re-check.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The identity pinned for this certificate, if it is valid now.
    pub fn lookup(&self, cert_der: &[u8]) -> Option<Pin> {
        let fp = trm_proto::signing::sha256(cert_der);
        let now = now_ms();
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fp)
            .filter(|p| p.valid_at(now))
            .cloned()
    }
}

/// The error a verifier gives for a certificate that is not pinned (or not valid now). It
/// carries only the certificate's SHA-256, so that the listener can log who knocked
/// ([`refused_fingerprint`]); the client learns nothing it did not already know.
struct NotPinned([u8; 32]);

// rustls formats `CertificateError::Other` with `Debug`: both forms carry the fingerprint.
impl std::fmt::Debug for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "certificate {NOT_PINNED_MARK}{} is not pinned",
            hex::encode(self.0)
        )
    }
}

impl std::error::Error for NotPinned {}

const NOT_PINNED_MARK: &str = "sha256:";

fn not_pinned(cert_der: &[u8]) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        NotPinned(trm_proto::signing::sha256(cert_der)),
    ))))
}

/// Why a peer handshake failed, as far as the listener can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// The client presented a certificate that is not pinned (or whose pin is not valid now).
    NotPinned([u8; 32]),
    /// The client presented no certificate.
    NoCertificate,
    /// Anything else (wrong ALPN, protocol error, the client went away, timed out).
    Other,
}

impl HandshakeRefusal {
    /// Classifies a failed server-side handshake.
    pub fn of(e: &quinn::ConnectionError) -> Self {
        match e {
            quinn::ConnectionError::TransportError(t) => Self::from_reason(&t.reason),
            _ => Self::Other,
        }
    }

    /// Classifies the reason text of the listener's own TLS error.
    pub fn from_reason(reason: &str) -> Self {
        if let Some(i) = reason.find(NOT_PINNED_MARK) {
            let hex_fp = reason[i + NOT_PINNED_MARK.len()..].get(..64).unwrap_or("");
            let mut fp = [0u8; 32];
            if hex::decode_to_slice(hex_fp, &mut fp).is_ok() {
                return Self::NotPinned(fp);
            }
        }
        if reason.contains(&rustls::Error::NoCertificatesPresented.to_string()) {
            return Self::NoCertificate;
        }
        Self::Other
    }

    /// Metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotPinned(_) => "not_pinned",
            Self::NoCertificate => "no_certificate",
            Self::Other => "other",
        }
    }
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
            None => Err(not_pinned(end_entity)),
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

/// A QUIC server config: TLS 1.3, `alpn`, client certificate required and pinned, 0-RTT off,
/// no session resumption (no session cache, no tickets), no keep-alive, no datagrams.
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
    // Every handshake is a full one, so the verifier sees every client certificate.
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(cfg)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(quic));
    sc.transport_config(Arc::new(transport(limits, Side::Server)?));
    Ok(sc)
}

/// A QUIC client config for dialing a peer: accepts only the server certificate pinned by
/// `pin_cert_der`, and only within `pin`'s validity (the peer's card).
pub fn peer_client_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pin_cert_der: &[u8],
    pin: &Pin,
    limits: QuicLimits,
) -> Result<quinn::ClientConfig, TlsError> {
    let verifier = PinnedServerVerifier::within(
        trm_proto::signing::sha256(pin_cert_der),
        pin.not_before_ms,
        pin.not_after_ms,
        provider(),
    );
    client_config_with(cert, key, verifier, trm_proto::ALPN_PEER, limits)
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

/// True if the server on the other side of an outgoing `conn` still presents the certificate
/// `pin_cert_der` and `pin` is valid now: a cached connection is used only while this holds.
pub fn server_still_pinned(conn: &quinn::Connection, pin_cert_der: &[u8], pin: &Pin) -> bool {
    pin.valid_at(now_ms())
        && peer_cert(conn).is_some_and(|c| {
            trm_proto::signing::sha256(&c) == trm_proto::signing::sha256(pin_cert_der)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_certificate_is_recognised_from_the_close_reason() {
        let expected = trm_proto::signing::sha256(&[1, 2, 3]);
        let reason = not_pinned(&[1, 2, 3]).to_string();
        assert_eq!(
            HandshakeRefusal::from_reason(&reason),
            HandshakeRefusal::NotPinned(expected)
        );
        let none = rustls::Error::NoCertificatesPresented.to_string();
        assert_eq!(
            HandshakeRefusal::from_reason(&none),
            HandshakeRefusal::NoCertificate
        );
        assert_eq!(
            HandshakeRefusal::from_reason("sha256:12 is not pinned"),
            HandshakeRefusal::Other
        );
        assert_eq!(
            HandshakeRefusal::of(&quinn::ConnectionError::TimedOut),
            HandshakeRefusal::Other
        );
    }

    /// A re-pin (a rotation keeps the certificate) is one change: whoever the change wakes
    /// finds the certificate pinned. Two changes (removal, then insertion) let a live
    /// connection woken by the first close itself, the receipt it was about to send lost.
    #[test]
    fn a_re_pin_is_one_change_and_never_leaves_the_certificate_unpinned() {
        let pins = Pins::default();
        let cert = [7u8; 40];
        let pin = |until| Pin {
            who: "AL".into(),
            not_before_ms: 0,
            not_after_ms: until,
        };
        pins.insert(&cert, pin(i64::MAX - 1));
        let mut watch = pins.watch();
        watch.mark_unchanged();
        let before = *watch.borrow();
        pins.replace_who("AL", Some((&cert, pin(i64::MAX))));
        assert_eq!(
            *watch.borrow_and_update(),
            before.wrapping_add(1),
            "one change"
        );
        assert_eq!(pins.lookup(&cert).map(|p| p.not_after_ms), Some(i64::MAX));
        pins.replace_who("AL", None);
        assert!(pins.lookup(&cert).is_none(), "removed");
    }
}
