//! `directory list | edit | publish`.

use std::path::Path;

use trm_proto::admin as api;

use super::{call, Session};
use crate::failure::Failure;
use crate::files::{read_file, FileKind};
use crate::render;

pub(crate) async fn list(s: &Session, country: Option<String>) -> Result<(), Failure> {
    let country = country.unwrap_or_default();
    call(s, api::DirectoryList { country }, render::directory).await
}

pub(crate) async fn edit(s: &Session, file: &Path) -> Result<(), Failure> {
    let json = String::from_utf8(read_file(file, FileKind::Directory)?)
        .map_err(|_| Failure::usage(format!("{}: not UTF-8 text", file.display())))?;
    call(s, api::DirectoryEdit { json }, render::directory_edited).await
}

pub(crate) async fn publish(s: &Session) -> Result<(), Failure> {
    call(s, api::DirectoryPublish {}, render::directory_published).await
}
