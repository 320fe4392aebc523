//! The admin API: QUIC with ALPN `trm-admin/1` on its own listener. Every officer presents a
//! client certificate the node registered with one role; the node checks the role on every
//! call and writes every call, allowed or refused, to the audit log with the officer's name.
//!
//! This module owns authentication, role checks and auditing; the calls themselves live in
//! [`crate::admin::calls`].

pub mod calls;
pub mod current;
pub mod flows;
pub mod queue;
pub mod records;
pub mod showing;
pub mod stats;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

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
        Call::CaseUpdate(_) => ("case update", &[Officer]),
        Call::CaseReopen(_) => ("case reopen", &[Officer]),
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
        Call::AuditExport(_) | Call::AuditExportStream(_) => ("audit export", &[Auditor]),
        Call::Backup(_) => ("backup", &[Operator]),
        Call::PolicyShow(_) => ("policy show", &[Operator, Officer, Supervisor, Auditor]),
        Call::PolicyReload(_) => ("policy reload", &[Operator]),
        Call::Queue(_) => ("queue", &[Operator, Officer, Supervisor]),
        Call::ReferralApprovals(_) => ("referral approvals", READ_CASES),
        Call::FollowUpPreview(_) => ("followup preview", READ_CASES),
        Call::CaseAccessLog(_) => ("case access-log", &[Supervisor, Auditor]),
        Call::CaseExport(_) => ("case export", &[Supervisor, Auditor]),
        Call::Stats(_) => ("stats", &[Supervisor, Auditor]),
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
            let (resp, stream) = match transport::read_message::<AdminRequest>(
                &mut recv,
                cap,
                Duration::from_secs(30),
            )
            .await
            {
                Ok(req) => dispatch_streamed(&ctx, &caller, req).await,
                Err(e) => (
                    AdminResponse {
                        ok: false,
                        error: format!("bad request: {e}"),
                        ..Default::default()
                    },
                    None,
                ),
            };
            match stream {
                None => {
                    let _ = transport::write_message(&mut send, &resp).await;
                }
                Some(bundle) => stream::send_bundle(&ctx, &mut send, &resp, bundle).await,
            }
        });
    }
}

/// What a call returns beside its JSON answer.
pub enum Data {
    /// Nothing.
    None,
    /// Bytes carried in the answer (`AdminResponse.data`).
    Bytes(Vec<u8>),
    /// An audit bundle streamed after the answer (`AuditExportStream`).
    Stream(crate::audit::export::Bundle),
}

/// Checks the caller's role, runs the call, audits it, and builds the answer.
pub async fn dispatch(ctx: &Arc<Ctx>, caller: &Caller, req: AdminRequest) -> AdminResponse {
    dispatch_streamed(ctx, caller, req).await.0
}

/// [`dispatch`], with the bundle to stream after the answer, if the call streams one.
pub async fn dispatch_streamed(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    req: AdminRequest,
) -> (AdminResponse, Option<crate::audit::export::Bundle>) {
    let Some(call) = req.call else {
        let resp = AdminResponse {
            ok: false,
            error: "empty request".into(),
            ..Default::default()
        };
        return (resp, None);
    };
    let (resp, data) = answer(ctx, caller, call).await;
    match data {
        Data::Stream(bundle) => (resp, Some(bundle)),
        Data::Bytes(data) => (AdminResponse { data, ..resp }, None),
        Data::None => (resp, None),
    }
}

/// The answer to one call, audited.
async fn answer(ctx: &Arc<Ctx>, caller: &Caller, call: Call) -> (AdminResponse, Data) {
    let refuse = |error: String| {
        let resp = AdminResponse {
            ok: false,
            error,
            ..Default::default()
        };
        (resp, Data::None)
    };
    let (name, roles) = call_rules(&call);
    let target = crate::admin::records::case_target(ctx, &call)
        .unwrap_or_else(|| crate::admin::calls::target(&call));
    // Fail closed: while the audit log cannot be written only `status` answers (unlogged, it
    // changes nothing), so that it can say why.
    if let Some(why) = ctx.store.write_failure() {
        if matches!(call, Call::Status(_)) {
            if let Ok(v) = crate::admin::calls::run(ctx, caller, call).await {
                let resp = AdminResponse {
                    ok: true,
                    json: v.to_string(),
                    ..Default::default()
                };
                return (resp, Data::None);
            }
        }
        return refuse(format!(
            "the audit log cannot be written ({why}); the node refuses calls until it is restarted"
        ));
    }
    let result = run_if_allowed(ctx, caller, call, name, roles).await;
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
        return refuse(
            "the audit log cannot be written; the node refuses calls until it can".into(),
        );
    }
    match result {
        Ok((v, data)) => {
            let resp = AdminResponse {
                ok: true,
                json: v.to_string(),
                ..Default::default()
            };
            (resp, data)
        }
        Err(e) => {
            let resp = AdminResponse {
                ok: false,
                error: e.message,
                required_role: e.required_role.unwrap_or_default(),
                json: String::new(),
                data: Vec::new(),
            };
            (resp, Data::None)
        }
    }
}

/// Runs `call` if the caller's role is one of `roles`: its JSON answer and binary data (the
/// bundle of an audit export, in the answer or streamed after it), or why not.
async fn run_if_allowed(
    ctx: &Arc<Ctx>,
    caller: &Caller,
    call: Call,
    name: &str,
    roles: &[Role],
) -> Result<(serde_json::Value, Data), CallError> {
    if !roles.contains(&caller.role) {
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        return Err(CallError {
            message: format!(
                "`{name}` needs role {} (you are {})",
                names.join(" or "),
                caller.role.name()
            ),
            required_role: Some(names.join(",")),
        });
    }
    match call {
        Call::AuditExport(r) => {
            let (v, bytes) = crate::audit::export(ctx, caller, r.from_ms, r.to_ms).await?;
            Ok((v, Data::Bytes(bytes)))
        }
        Call::AuditExportStream(r) => {
            let (v, bundle) =
                crate::audit::export::prepare(ctx, caller, r.from_ms, r.to_ms).await?;
            Ok((v, Data::Stream(bundle)))
        }
        call => Ok((
            crate::admin::calls::run(ctx, caller, call).await?,
            Data::None,
        )),
    }
}

/// Client side of the admin API (in trm-admin-api, which `trm-admin` uses without the node).
pub use trm_admin_api::client;
