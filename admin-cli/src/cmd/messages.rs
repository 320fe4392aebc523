//! `inbox`, `queue` and `message show`.

use trm_proto::admin as api;

use super::{call, Session};
use crate::failure::Failure;
use crate::render;

pub(crate) async fn inbox(s: &Session) -> Result<(), Failure> {
    call(s, api::Inbox {}, render::inbox).await
}

pub(crate) async fn show(s: &Session, id: String) -> Result<(), Failure> {
    call(s, api::MessageShow { id }, render::message).await
}

pub(crate) async fn queue(s: &Session) -> Result<(), Failure> {
    call(s, api::Queue {}, render::queue).await
}
