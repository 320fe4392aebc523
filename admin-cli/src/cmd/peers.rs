//! `status` and `peer add | list | remove | revoke | trust`.

use std::path::Path;

use trm_proto::admin as api;

use super::{ask, call, show, Refused, Session};
use crate::failure::Failure;
use crate::files::{read_file, FileKind};
use crate::render;

pub(crate) async fn status(s: &Session) -> Result<(), Failure> {
    call(s, api::Status {}, render::status).await
}

/// The agreement given with `peer add` (`None`: not given).
pub(crate) struct Agreed {
    pub(crate) reference: Option<String>,
    pub(crate) legal_basis: Option<String>,
}

/// Checks the agreement and the card here (naming the file, pinning nothing) before the node
/// checks them too.
pub(crate) async fn add(
    s: &Session,
    card: &Path,
    replace: bool,
    agreed: Agreed,
) -> Result<(), Failure> {
    for (what, text) in [
        ("--agreement", &agreed.reference),
        ("--legal-basis", &agreed.legal_basis),
    ] {
        if let Some(text) = text {
            trm_proto::agreement::check(what, text).map_err(Failure::usage)?;
        }
    }
    let bytes = read_file(card, FileKind::Card)?;
    if let Err(e) = trm_proto::card::verify_card(&bytes) {
        return Err(Failure::usage(format!(
            "{}: identity card refused: {e}",
            card.display()
        )));
    }
    let agreement = agreed.reference.unwrap_or_default();
    let legal_basis = agreed.legal_basis.unwrap_or_default();
    let (answer, _) = if replace {
        let call = api::PeerReplace {
            card: bytes,
            agreement,
            legal_basis,
        };
        ask(s, call, Refused::Input).await?
    } else {
        let call = api::PeerAdd {
            card: bytes,
            agreement,
            legal_basis,
        };
        ask(s, call, Refused::Input).await?
    };
    show(s, &answer, render::peer);
    Ok(())
}

pub(crate) async fn list(s: &Session) -> Result<(), Failure> {
    call(s, api::PeerList {}, render::peers).await
}

pub(crate) async fn remove(s: &Session, country: String) -> Result<(), Failure> {
    call(s, api::PeerRemove { country }, render::removed).await
}

pub(crate) async fn revoke(s: &Session, country: String) -> Result<(), Failure> {
    call(s, api::PeerRevoke { country }, render::peer_revoked).await
}

pub(crate) async fn trust(s: &Session, country: String) -> Result<(), Failure> {
    call(s, api::PeerTrust { country }, render::peer_trusted).await
}
