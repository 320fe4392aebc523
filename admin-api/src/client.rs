//! Client side of the admin API, used by `trm-admin`, the node's own `backup` command and the
//! tests.

use std::time::Duration;

use prost::Message;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use trm_proto::admin::{admin_request::Call, AdminRequest, AdminResponse};

use crate::credential::Credential;
use crate::quic;
use crate::tls;

/// Why a call failed on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The credential file is unusable.
    #[error("credential: {0}")]
    Credential(String),
    /// The node could not be reached.
    #[error("cannot reach the node at {addr}: {reason}")]
    Unreachable {
        /// address
        addr: std::net::SocketAddr,
        /// cause
        reason: String,
    },
    /// The node refused or failed the call.
    #[error("{message}")]
    Refused {
        /// node's message
        message: String,
        /// required role, if that was the reason
        required_role: Option<String>,
    },
    /// The answer was not understood.
    #[error("bad answer from the node: {0}")]
    BadAnswer(String),
}

/// A connection to one node's admin API.
pub struct AdminClient {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

/// The client's TLS configuration for `cred`.
fn client_config(cred: &Credential) -> Result<quinn::ClientConfig, ClientError> {
    let cert = CertificateDer::from_pem_slice(cred.cert_pem.as_bytes())
        .map_err(|e| ClientError::Credential(format!("certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(cred.key_pem.as_bytes())
        .map_err(|e| ClientError::Credential(format!("key: {e}")))?;
    let fp: [u8; 32] = hex::decode(&cred.node_cert_sha256)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| ClientError::Credential("node_cert_sha256 is not 64 hex digits".into()))?;
    tls::client_config(
        cert,
        key,
        fp,
        trm_proto::ALPN_ADMIN,
        tls::QuicLimits {
            max_streams: 4,
            window: 16 << 20,
            idle_timeout: Duration::from_secs(30),
        },
    )
    .map_err(|e| ClientError::Credential(e.to_string()))
}

impl AdminClient {
    /// Connects with `cred`.
    pub async fn connect(cred: &Credential) -> Result<Self, ClientError> {
        let cfg = client_config(cred)?;
        let unreachable = |reason: String| ClientError::Unreachable {
            addr: cred.node,
            reason,
        };
        let bind: std::net::SocketAddr = if cred.node.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let socket = std::net::UdpSocket::bind(bind).map_err(|e| unreachable(e.to_string()))?;
        let endpoint = quic::endpoint(socket, None).map_err(|e| unreachable(e.to_string()))?;
        let connecting = endpoint
            .connect_with(cfg, cred.node, tls::SERVER_NAME)
            .map_err(|e| unreachable(e.to_string()))?;
        let conn = tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .map_err(|_| unreachable("no answer within 5 s (is the node running?)".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { endpoint, conn })
    }

    /// Makes one call and returns its JSON result.
    pub async fn call(&self, call: Call) -> Result<serde_json::Value, ClientError> {
        Ok(self.call_with_data(call).await?.0)
    }

    /// Makes one typed call: its answer as the call's type.
    pub async fn ask<C: crate::answers::AdminCall>(
        &self,
        request: C,
    ) -> Result<C::Answer, ClientError> {
        let (text, _) = self.call_raw(request.into_call()).await?;
        serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// Makes one call and returns its JSON result and its binary result (the audit
    /// bundle of `AuditExport`; empty for other calls).
    pub async fn call_with_data(
        &self,
        call: Call,
    ) -> Result<(serde_json::Value, Vec<u8>), ClientError> {
        let (text, data) = self.call_raw(call).await?;
        let v = serde_json::from_str(&text).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok((v, data))
    }

    /// Makes one call and returns the answer's JSON text as the node sent it, and its
    /// binary result.
    pub async fn call_raw(&self, call: Call) -> Result<(String, Vec<u8>), ClientError> {
        let req = AdminRequest { call: Some(call) };
        let resp: AdminResponse =
            quic::request(&self.conn, &req, answer_cap(), Duration::from_secs(120))
                .await
                .map_err(refused)?;
        if !resp.ok {
            return Err(ClientError::Refused {
                message: resp.error,
                required_role: (!resp.required_role.is_empty()).then_some(resp.required_role),
            });
        }
        Ok((resp.json, resp.data))
    }

    /// `AuditExportStream`: the answer's JSON text, with the bundle handed to `sink` as it
    /// arrives, in chunks of at most 512 KiB; the end is checked (every chunk, the total
    /// length and the SHA-256 the node sent last) before this returns Ok. Any other end
    /// (a cut connection, a reset stream, a wrong hash) is an error: what `sink` got is then
    /// to be thrown away. No overall size cap.
    pub async fn export_stream(
        &self,
        request: trm_proto::admin::AuditExportStream,
        mut sink: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(String, u64), ClientError> {
        use sha2::{Digest, Sha256};
        let req = AdminRequest {
            call: Some(Call::AuditExportStream(request)),
        };
        let timeout = Duration::from_secs(120);
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| refused(e.into()))?;
        let cut = |e: quic::FrameIoError| ClientError::BadAnswer(format!("export cut: {e}"));
        quic::write_message(&mut send, &req).await.map_err(cut)?;
        let resp: AdminResponse = quic::read_message(&mut recv, answer_cap(), timeout)
            .await
            .map_err(|e| match e {
                quic::FrameIoError::Read(quinn::ReadExactError::ReadError(
                    quinn::ReadError::Reset(_),
                )) => cut(e),
                e => refused(e.into()),
            })?;
        if !resp.ok {
            return Err(ClientError::Refused {
                message: resp.error,
                required_role: (!resp.required_role.is_empty()).then_some(resp.required_role),
            });
        }
        let (mut hash, mut total) = (Sha256::new(), 0u64);
        loop {
            let chunk: trm_proto::admin::AuditChunk =
                quic::read_message(&mut recv, CHUNK_FRAME_CAP, timeout)
                    .await
                    .map_err(cut)?;
            if chunk.last {
                if chunk.total != total || chunk.sha256 != hash.finalize().as_slice() {
                    return Err(ClientError::BadAnswer(format!(
                        "export cut: {total} bytes received, the node sent {} (or another SHA-256)",
                        chunk.total
                    )));
                }
                return Ok((resp.json, total));
            }
            hash.update(&chunk.data);
            total += chunk.data.len() as u64;
            sink(&chunk.data).map_err(ClientError::BadAnswer)?;
        }
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        self.conn.close(0u32.into(), b"bye");
        tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle())
            .await
            .ok();
    }
}

/// Cap on one answer frame: 64 MiB (what a one-frame `AuditExport` can carry). Debug builds
/// read `TRM_DEBUG_ANSWER_CAP` (bytes), so that tests can show the cap with a small log.
fn answer_cap() -> usize {
    let debug = cfg!(debug_assertions)
        .then(|| std::env::var("TRM_DEBUG_ANSWER_CAP").ok()?.parse().ok())
        .flatten();
    debug.unwrap_or(64 << 20)
}

/// Cap on one `AuditChunk` frame: 512 KiB of data and its few bytes of framing.
const CHUNK_FRAME_CAP: usize = (512 << 10) + 1024;

/// A failed exchange: a connection the node closed is a refusal, naming why.
fn refused(e: quic::RequestError) -> ClientError {
    match e {
        quic::RequestError::Connection(quinn::ConnectionError::ApplicationClosed(c)) => {
            ClientError::Refused {
                message: format!(
                    "the node closed the connection: {}",
                    String::from_utf8_lossy(&c.reason)
                ),
                required_role: None,
            }
        }
        quic::RequestError::Connection(quinn::ConnectionError::ConnectionClosed(c)) => {
            ClientError::Refused {
                message: format!("the node refused this credential ({})", c.error_code),
                required_role: None,
            }
        }
        other => ClientError::BadAnswer(other.to_string()),
    }
}

/// Encodes a request, for tests that speak the protocol by hand.
pub fn encode(call: Call) -> Vec<u8> {
    AdminRequest { call: Some(call) }.encode_to_vec()
}
