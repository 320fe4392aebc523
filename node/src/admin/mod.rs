//! The admin API: QUIC with ALPN `trm-admin/1` on its own listener. Every officer presents a
//! client certificate the node registered with one role; the node checks the role on every
//! call and writes every call, allowed or refused, to the audit log with the officer's name.
//!
//! This module owns authentication, role checks and auditing; the calls themselves live in
//! [`crate::admin::calls`].

pub mod calls;
pub mod flows;

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use trm_proto::admin::{admin_request::Call, AdminRequest, AdminResponse};

pub use crate::base::vocab::{CallError, Caller, Role};
use crate::net::transport;
use crate::state::ctx::Ctx;
use crate::store::{AuditEntry, Op};
use trm_proto::audit::AuditKind;

/// The name of a call and the roles that may make it.
pub fn call_rules(call: &Call) -> (&'static str, &'static [Role]) {
    use Role::*;
    const READ_CASES: &[Role] = &[Officer, Supervisor];
    match call {
        Call::Status(_) => ("status", &[Operator, Officer, Supervisor, Auditor]),
        Call::PeerAdd(_) => ("peer add", &[Operator]),
        Call::PeerReplace(_) => ("peer add --replace", &[Operator]),
        Call::PeerList(_) => ("peer list", &[Operator, Officer, Supervisor, Auditor]),
        Call::PeerRemove(_) => ("peer remove", &[Operator]),
        Call::PeerRevoke(_) => ("peer revoke", &[Operator]),
        Call::PeerTrust(_) => ("peer trust", &[Operator]),
        Call::OfficerAdd(_) => ("officer add", &[Operator]),
        Call::OfficerList(_) => ("officer list", &[Operator, Auditor]),
        Call::OfficerRevoke(_) => ("officer revoke", &[Operator]),
        Call::CaseCreate(_) => ("case create", &[Officer]),
        Call::CaseList(_) => ("case list", READ_CASES),
        Call::CaseShow(_) => ("case show", READ_CASES),
        Call::CaseTemplate(_) => ("case template", &[Operator, Officer, Supervisor]),
        Call::CaseTimeline(_) => ("case timeline", READ_CASES),
        Call::CaseConsent(_) => ("case consent", &[Officer]),
        Call::CaseClose(_) => ("case close", &[Officer]),
        Call::ReferralSend(_) => ("referral send", &[Officer]),
        Call::ReferralPreview(_) => ("referral preview", READ_CASES),
        Call::ReferralApprove(_) => ("referral approve", &[Supervisor]),
        Call::ReferralDisclose(_) => ("referral disclose", &[Officer]),
        Call::ReferralAnswer(_) => ("referral answer", &[Officer]),
        Call::FollowUpSend(_) => ("followup send", &[Officer]),
        Call::InfoRequest(_) => ("info request", &[Officer]),
        Call::Inbox(_) => ("inbox", READ_CASES),
        Call::MessageShow(_) => ("message show", READ_CASES),
        Call::DirectoryList(_) => ("directory list", &[Operator, Officer, Supervisor, Auditor]),
        Call::DirectoryEdit(_) => ("directory edit", &[Operator]),
        Call::DirectoryPublish(_) => ("directory publish", &[Operator]),
        Call::AuditExport(_) => ("audit export", &[Auditor]),
        Call::Backup(_) => ("backup", &[Operator]),
    }
}

/// Serves admin connections until shutdown.
pub async fn serve(ctx: Arc<Ctx>, endpoint: quinn::Endpoint) {
    let mut shutdown = ctx.shutdown.clone();
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.changed() => break,
        };
        let ctx = ctx.clone();
        conns.spawn(async move {
            if let Ok(conn) = incoming.await {
                connection(ctx, conn).await;
            }
        });
        while conns.try_join_next().is_some() {}
    }
    endpoint.close(0u32.into(), b"shutdown");
    conns.abort_all();
}

async fn connection(ctx: Arc<Ctx>, conn: quinn::Connection) {
    let Some(cert) = crate::net::tls::peer_cert(&conn) else {
        return;
    };
    let fp = trm_proto::signing::sha256(&cert);
    let active = |ctx: &Ctx| {
        ctx.store
            .officer(&fp)
            .ok()
            .flatten()
            .filter(|o| o.revoked_ms == 0)
    };
    let caller = match active(&ctx) {
        Some(o) => match Role::parse(&o.role) {
            Some(role) => Caller { name: o.name, role },
            None => return,
        },
        None => {
            conn.close(1u32.into(), b"unknown officer");
            return;
        }
    };
    let mut shutdown = ctx.shutdown.clone();
    // Wakes on revocations: a revoked officer's live session closes at once.
    let mut changed = ctx.trust.watch();
    loop {
        let (mut send, mut recv) = tokio::select! {
            s = conn.accept_bi() => match s { Ok(s) => s, Err(_) => break },
            _ = shutdown.changed() => break,
            _ = changed.changed() => {
                if active(&ctx).is_none() {
                    conn.close(4u32.into(), b"officer revoked");
                    break;
                }
                continue;
            }
        };
        if active(&ctx).is_none() {
            conn.close(4u32.into(), b"officer revoked");
            break;
        }
        let ctx = ctx.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            let cap = 16 << 20;
            let resp = match transport::read_message::<AdminRequest>(
                &mut recv,
                cap,
                Duration::from_secs(30),
            )
            .await
            {
                Ok(req) => dispatch(&ctx, &caller, req).await,
                Err(e) => AdminResponse {
                    ok: false,
                    error: format!("bad request: {e}"),
                    ..Default::default()
                },
            };
            let _ = transport::write_message(&mut send, &resp).await;
        });
    }
}

/// Checks the caller's role, runs the call, audits it, and builds the answer.
pub async fn dispatch(ctx: &Arc<Ctx>, caller: &Caller, req: AdminRequest) -> AdminResponse {
    let Some(call) = req.call else {
        return AdminResponse {
            ok: false,
            error: "empty request".into(),
            ..Default::default()
        };
    };
    let (name, roles) = call_rules(&call);
    let target = crate::admin::calls::target(&call);
    // Fail closed: while the audit log cannot be written only `status` answers (unlogged, it
    // changes nothing), so that it can say why.
    if let Some(why) = ctx.store.write_failure() {
        if matches!(call, Call::Status(_)) {
            if let Ok(v) = crate::admin::calls::run(ctx, caller, call).await {
                return AdminResponse {
                    ok: true,
                    json: v.to_string(),
                    ..Default::default()
                };
            }
        }
        return AdminResponse {
            ok: false,
            error: format!("the audit log cannot be written ({why}); the node refuses calls until it is restarted"),
            ..Default::default()
        };
    }
    let mut data = Vec::new();
    let result = if roles.contains(&caller.role) {
        match call {
            Call::AuditExport(r) => crate::audit::export(ctx, caller, r.from_ms, r.to_ms)
                .await
                .map(|(v, bundle)| {
                    data = bundle;
                    v
                }),
            call => crate::admin::calls::run(ctx, caller, call).await,
        }
    } else {
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        Err(CallError {
            message: format!(
                "`{name}` needs role {} (you are {})",
                names.join(" or "),
                caller.role.name()
            ),
            required_role: Some(names.join(",")),
        })
    };
    let outcome = match &result {
        Ok(_) => "ok".to_string(),
        Err(e) if e.required_role.is_some() => "refused: role".to_string(),
        Err(_) => "failed".to_string(),
    };
    let entry = AuditEntry {
        time_ms: ctx.clock.now_ms(),
        kind: AuditKind::Admin.into(),
        officer: caller.name.clone(),
        role: caller.role.name().into(),
        call: name.into(),
        target,
        result: outcome,
        ..Default::default()
    };
    if let Err(e) = ctx.store.commit(vec![Op::Audit(entry)]).await {
        tracing::error!(error = %e, "cannot audit an admin call; refusing it");
        return AdminResponse {
            ok: false,
            error: "the audit log cannot be written; the node refuses calls until it can".into(),
            ..Default::default()
        };
    }
    match result {
        Ok(v) => AdminResponse {
            ok: true,
            json: v.to_string(),
            data,
            ..Default::default()
        },
        Err(e) => AdminResponse {
            ok: false,
            error: e.message,
            required_role: e.required_role.unwrap_or_default(),
            json: String::new(),
            data: Vec::new(),
        },
    }
}

/// Client side of the admin API, used by `trm-admin` and the tests.
pub mod client {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use crate::identity::Credential;

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

    impl AdminClient {
        /// Connects with `cred`.
        pub async fn connect(cred: &Credential) -> Result<Self, ClientError> {
            let cert = CertificateDer::from_pem_slice(cred.cert_pem.as_bytes())
                .map_err(|e| ClientError::Credential(format!("certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(cred.key_pem.as_bytes())
                .map_err(|e| ClientError::Credential(format!("key: {e}")))?;
            let fp: [u8; 32] = hex::decode(&cred.node_cert_sha256)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| {
                    ClientError::Credential("node_cert_sha256 is not 64 hex digits".into())
                })?;
            let cfg = crate::net::tls::client_config(
                cert,
                key,
                fp,
                trm_proto::ALPN_ADMIN,
                crate::net::tls::QuicLimits {
                    max_streams: 4,
                    window: 16 << 20,
                    idle_timeout: Duration::from_secs(30),
                },
            )
            .map_err(|e| ClientError::Credential(e.to_string()))?;
            let unreachable = |reason: String| ClientError::Unreachable {
                addr: cred.node,
                reason,
            };
            let bind: std::net::SocketAddr = if cred.node.is_ipv6() {
                "[::]:0".parse().map_err(|_| unreachable("bind".into()))?
            } else {
                "0.0.0.0:0"
                    .parse()
                    .map_err(|_| unreachable("bind".into()))?
            };
            let socket = std::net::UdpSocket::bind(bind).map_err(|e| unreachable(e.to_string()))?;
            let endpoint = crate::net::transport::endpoint(socket, None)
                .map_err(|e| unreachable(e.to_string()))?;
            let connecting = endpoint
                .connect_with(cfg, cred.node, crate::net::tls::SERVER_NAME)
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

        /// Makes one call and returns its JSON result and its binary result (the audit
        /// bundle of `AuditExport`; empty for other calls).
        pub async fn call_with_data(
            &self,
            call: Call,
        ) -> Result<(serde_json::Value, Vec<u8>), ClientError> {
            let req = AdminRequest { call: Some(call) };
            let resp: AdminResponse =
                transport::request(&self.conn, &req, 64 << 20, Duration::from_secs(120))
                    .await
                    .map_err(|e| match e {
                        transport::RequestError::Connection(
                            quinn::ConnectionError::ApplicationClosed(c),
                        ) => ClientError::Refused {
                            message: format!(
                                "the node closed the connection: {}",
                                String::from_utf8_lossy(&c.reason)
                            ),
                            required_role: None,
                        },
                        transport::RequestError::Connection(
                            quinn::ConnectionError::ConnectionClosed(c),
                        ) => ClientError::Refused {
                            message: format!("the node refused this credential ({})", c.error_code),
                            required_role: None,
                        },
                        other => ClientError::BadAnswer(other.to_string()),
                    })?;
            if !resp.ok {
                return Err(ClientError::Refused {
                    message: resp.error,
                    required_role: (!resp.required_role.is_empty()).then_some(resp.required_role),
                });
            }
            let v = serde_json::from_str(&resp.json)
                .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
            Ok((v, resp.data))
        }

        /// Closes the connection politely.
        pub async fn close(self) {
            self.conn.close(0u32.into(), b"bye");
            tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle())
                .await
                .ok();
        }
    }

    /// Encodes a request, for tests that speak the protocol by hand.
    pub fn encode(call: Call) -> Vec<u8> {
        AdminRequest { call: Some(call) }.encode_to_vec()
    }
}
