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

/// Checks the card here (naming the file, pinning nothing) before the node checks it too.
pub(crate) async fn add(s: &Session, card: &Path, replace: bool) -> Result<(), Failure> {
    let bytes = read_file(card, FileKind::Card)?;
    if let Err(e) = trm_proto::card::verify_card(&bytes) {
        return Err(Failure::usage(format!(
            "{}: identity card refused: {e}",
            card.display()
        )));
    }
    let (answer, _) = if replace {
        ask(s, api::PeerReplace { card: bytes }, Refused::Input).await?
    } else {
        ask(s, api::PeerAdd { card: bytes }, Refused::Input).await?
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
