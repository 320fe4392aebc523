//! Speaking the peer protocol by hand: raw QUIC connections with any certificate, crafted
//! identity cards (expired, rotated keys), hand-signed envelopes. For the security tests.

use std::net::SocketAddr;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use trm_proto::pb::{self, peer_response};
use trm_proto::signing::{self, Tag};

/// A TLS identity: certificate and key.
pub struct TlsId {
    pub cert: CertificateDer<'static>,
    pub key_pem: String,
}

impl TlsId {
    /// A fresh self-signed certificate with this common name.
    pub fn new(common_name: &str) -> Self {
        let s = trm_node::identity::self_signed(common_name, "node").unwrap();
        Self {
            cert: CertificateDer::from(s.cert_der),
            key_pem: s.key_pem,
        }
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}

/// A peer made up by the test: its card, TLS identity and signing keys.
pub struct FakePeer {
    pub country: String,
    pub card: Vec<u8>,
    pub tls: TlsId,
    /// Every signing key, oldest first; the last one signed the card.
    pub keys: Vec<SigningKey>,
}

/// Makes a peer card for `country` valid over `[from, until]`, with one signing key per
/// `(valid_from, valid_until)` of `history`, each endorsed by the one before.
pub fn fake_peer(country: &str, from: i64, until: i64, history: &[(i64, i64)]) -> FakePeer {
    let mut rng = rand::rngs::OsRng;
    let keys: Vec<SigningKey> = history
        .iter()
        .map(|_| SigningKey::generate(&mut rng))
        .collect();
    let mut records: Vec<pb::KeyRecord> = Vec::new();
    for (i, (k, (vf, vu))) in keys.iter().zip(history).enumerate() {
        let mut r = pb::KeyRecord {
            public_key: k.verifying_key().to_bytes().to_vec(),
            valid_from_ms: *vf,
            valid_until_ms: *vu,
            endorsement: vec![],
            endorser: vec![],
        };
        if i > 0 {
            let prev = &keys[i - 1];
            r.endorser = prev.verifying_key().to_bytes().to_vec();
            r.endorsement =
                signing::sign(prev, Tag::Key, &trm_proto::card::key_endorsement_bytes(&r)).to_vec();
        }
        records.push(r);
    }
    let tls = TlsId::new(&format!("trm-node-{country}"));
    let current = keys.last().unwrap();
    let card = pb::Card {
        version: 1,
        country: country.into(),
        name: format!("{country} made-up unit"),
        addresses: vec!["127.0.0.1:9".into()],
        tls_cert_der: tls.cert.to_vec(),
        signing_key: current.verifying_key().to_bytes().to_vec(),
        acceptance: trm_proto::template::ALL_CATEGORIES
            .iter()
            .map(|c| *c as i32)
            .collect(),
        valid_from_ms: from,
        valid_until_ms: until,
        key_history: records,
        issued_ms: from,
    };
    FakePeer {
        country: country.into(),
        card: trm_proto::card::sign_card(&card, current),
        tls,
        keys,
    }
}

/// [`connect`] as a pinned peer does it while a listener sheds load: a refused handshake (a
/// handshake flood from the same loopback address filling the per-address places) is tried
/// again every 100 ms, for at most `within`.
pub async fn connect_retrying(
    addr: SocketAddr,
    server_cert: &[u8],
    id: &TlsId,
    within: std::time::Duration,
) -> Result<quinn::Connection, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match connect(addr, server_cert, id).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// A raw client connection to `addr`, presenting `id`, accepting only `server_cert`.
pub async fn connect(
    addr: SocketAddr,
    server_cert: &[u8],
    id: &TlsId,
) -> Result<quinn::Connection, String> {
    let cfg = trm_node::net::tls::client_config(
        id.cert.clone(),
        id.key(),
        signing::sha256(server_cert),
        trm_proto::ALPN_PEER,
        trm_node::net::tls::QuicLimits {
            max_streams: 64,
            window: 2 << 20,
            idle_timeout: Duration::from_secs(10),
        },
    )
    .unwrap();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let ep = trm_node::net::transport::endpoint(sock, None).unwrap();
    let connecting = ep
        .connect_with(cfg, addr, trm_node::net::tls::SERVER_NAME)
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// Sends one frame's bytes on a new stream and reads the answer.
pub async fn exchange(conn: &quinn::Connection, bytes: &[u8]) -> Result<pb::PeerResponse, String> {
    let fut = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(bytes).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        let frame =
            trm_node::net::transport::read_frame(&mut recv, 1 << 20, Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?;
        pb::PeerResponse::decode(frame.as_slice()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .map_err(|_| "no answer".to_string())?
}

/// Signs `body` into an envelope with `key`, naming `signer` as the key.
pub fn envelope_with(key: &SigningKey, signer: &[u8], body: &pb::Body) -> pb::Envelope {
    let b = body.encode_to_vec();
    pb::Envelope {
        signature: signing::sign(key, Tag::Envelope, &b).to_vec(),
        signer: signer.to_vec(),
        body: b,
    }
}

/// Signs `body` into an envelope with `key` (the honest signer).
pub fn envelope(key: &SigningKey, body: &pb::Body) -> pb::Envelope {
    envelope_with(key, &key.verifying_key().to_bytes(), body)
}

/// A valid referral body with a fresh id and one committed, released field; returns the
/// body and the disclosures to send beside it.
pub fn referral(from: &str, to: &str, created_ms: i64) -> (pb::Body, Vec<pb::FieldDisclosure>) {
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    // Each referral is its own case: the lifecycle allows one open referral per case.
    let case_ref = format!("{from}-RAW-{}", hex::encode_upper(&id[..6]));
    let c = trm_proto::commit::commit(
        &[(
            "reference.case_ref".to_string(),
            format!("\"{case_ref}\"").into_bytes(),
        )],
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    let body = pb::Body {
        version: 1,
        message_id: id.to_vec(),
        sender: from.into(),
        recipient: to.into(),
        created_ms,
        in_reply_to: vec![],
        case_ref,
        payload: Some(pb::body::Payload::Referral(pb::Referral {
            template_version: trm_proto::template::TEMPLATE_VERSION.into(),
            digests: c.digest_bytes(),
            ..Default::default()
        })),
    };
    (body, c.disclosures)
}

/// The frame of a transmission request.
pub fn frame(envelope: pb::Envelope, disclosures: Vec<pb::FieldDisclosure>) -> Vec<u8> {
    trm_proto::frame::encode(&pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(pb::Transmission {
            envelope: Some(envelope),
            disclosures,
        })),
    })
}

/// The reason code of a rejection, checking that it is signed by `rejecter`; panics on a
/// receipt.
pub fn rejected(resp: &pb::PeerResponse, rejecter: &ed25519_dalek::VerifyingKey) -> i32 {
    match &resp.kind {
        Some(peer_response::Kind::Rejection(s)) => {
            signing::verify(rejecter, Tag::Rejection, &s.body, &s.signature)
                .expect("rejection signed by the receiver");
            pb::Rejection::decode(s.body.as_slice()).unwrap().reason
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// True if the answer is a receipt.
pub fn is_receipt(resp: &pb::PeerResponse) -> bool {
    matches!(resp.kind, Some(peer_response::Kind::Receipt(_)))
}
