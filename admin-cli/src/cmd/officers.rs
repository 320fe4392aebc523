//! `officer keygen | add | revoke | list`.

use std::path::Path;

use trm_admin_api::answers::OfficerAdded;
use trm_admin_api::credential::Credential;
use trm_admin_api::Role;
use trm_proto::admin as api;

use super::{ask, call, show, Refused, Session};
use crate::failure::Failure;
use crate::files::read_cert;
use crate::render;

fn check_role(role: &str) -> Result<(), Failure> {
    match Role::parse(role) {
        Some(_) => Ok(()),
        None => Err(Failure::usage(format!(
            "unknown role {role:?}: use operator, officer, supervisor or auditor"
        ))),
    }
}

/// Operator: registers the certificate an officer made with `officer keygen`.
pub(crate) async fn add_cert(
    s: &Session,
    name: String,
    role: String,
    cert: &Path,
) -> Result<(), Failure> {
    check_role(&role)?;
    let cert_der = read_cert(cert)?;
    call(
        s,
        api::OfficerAdd {
            name,
            role,
            cert_der,
        },
        render::officer,
    )
    .await
}

/// LOCAL TESTING ONLY: makes the officer's key pair here and writes their credential.
pub(crate) async fn add_out(
    s: &Session,
    name: String,
    role: String,
    out: &Path,
) -> Result<(), Failure> {
    check_role(&role)?;
    if out.exists() {
        return Err(Failure::usage(format!(
            "{} already exists; refusing to overwrite a credential",
            out.display()
        )));
    }
    let made = trm_admin_api::credential::self_signed(&name, &role)
        .map_err(|e| Failure::usage(format!("certificate generation failed: {e}")))?;
    let request = api::OfficerAdd {
        name: name.clone(),
        role: role.clone(),
        cert_der: made.cert_der.clone(),
    };
    let (answer, _) = ask(s, request, Refused::Call).await?;
    write_issued(&answer, name, role, made, out)?;
    show(s, &answer, render::officer);
    Ok(())
}

/// Writes the credential `officer add --out` issued, with the node's answer.
fn write_issued(
    answer: &OfficerAdded,
    name: String,
    role: String,
    made: trm_admin_api::credential::SelfSigned,
    out: &Path,
) -> Result<(), Failure> {
    let c = Credential {
        name,
        role,
        country: answer.country.clone(),
        node: answer
            .node
            .parse()
            .map_err(|_| Failure::new(1, "node returned a bad address"))?,
        node_cert_sha256: answer.node_cert_sha256.clone(),
        cert_pem: made.cert_pem.clone(),
        key_pem: made.key_pem.clone(),
    };
    c.save(out).map_err(|e| Failure::new(1, e.to_string()))?;
    eprintln!("trm-admin: warning: --out made the officer's private key on this machine: for local testing only (real officers use `officer keygen`, the operator `officer add --cert`)");
    Ok(())
}

pub(crate) async fn revoke(s: &Session, name: String) -> Result<(), Failure> {
    call(s, api::OfficerRevoke { name }, render::officer_revoked).await
}

pub(crate) async fn list(s: &Session) -> Result<(), Failure> {
    call(s, api::OfficerList {}, render::officers).await
}

/// `officer keygen`: the officer's key pair, made on their own machine. Writes the
/// credential (mode 0600) and the certificate for the operator; contacts no node.
pub(crate) fn keygen(
    name: &str,
    role: &str,
    node: std::net::SocketAddr,
    node_cert: &str,
    out: &Path,
) -> Result<(), Failure> {
    if trm_admin_api::Role::parse(role).is_none() {
        return Err(Failure::usage(format!(
            "unknown role {role:?}: use operator, officer, supervisor or auditor"
        )));
    }
    if name.trim().is_empty() || name.len() > 64 {
        return Err(Failure::usage("officer name must be 1 to 64 characters"));
    }
    let fp: String = node_cert
        .chars()
        .filter(|c| !matches!(c, ' ' | ':'))
        .collect::<String>()
        .to_ascii_lowercase();
    if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Failure::usage(
            "--node-cert must be the 64 hex digits of the node's TLS certificate SHA-256",
        ));
    }
    let cert_path = out.with_extension("crt");
    for p in [out, cert_path.as_path()] {
        if p.exists() {
            return Err(Failure::usage(format!(
                "{} already exists; refusing to overwrite",
                p.display()
            )));
        }
    }
    let made = trm_admin_api::credential::self_signed(name, role)
        .map_err(|e| Failure::new(1, e.to_string()))?;
    let cred = Credential {
        name: name.to_string(),
        role: role.to_string(),
        country: String::new(),
        node,
        node_cert_sha256: fp,
        cert_pem: made.cert_pem.clone(),
        key_pem: made.key_pem.clone(),
    };
    cred.save(out).map_err(|e| Failure::new(1, e.to_string()))?;
    trm_admin_api::credential::write_public(&cert_path, made.cert_pem.as_bytes())
        .map_err(|e| Failure::new(1, e.to_string()))?;
    println!(
        "wrote {} (private, mode 0600: keep it on this machine)
wrote {} (certificate {}): give it to your operator, who runs
  trm-admin officer add {name:?} --role {role} --cert {}",
        out.display(),
        cert_path.display(),
        trm_proto::signing::fingerprint(&made.cert_der),
        cert_path.display()
    );
    Ok(())
}
