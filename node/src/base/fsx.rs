//! Durable file writes for keys, cards and checkpoints: the shared implementation in
//! `trm_admin_api::fsx` (temporary file, sync, rename, sync the folder; private files 0600),
//! with each step recorded by [`durability`] so that the node's tests can check the order.

use std::path::Path;

use crate::base::durability::{self, Step};
use trm_admin_api::fsx as shared;
pub use trm_admin_api::fsx::{read_private, FileError};

fn record(path: &Path, step: shared::Step) {
    durability::record(
        path,
        match step {
            shared::Step::WriteTemp => Step::WriteTemp,
            shared::Step::SyncFile => Step::SyncFile,
            shared::Step::Rename => Step::Rename,
            shared::Step::SyncDir => Step::SyncDir,
        },
    );
}

/// Writes a private file, mode 0600, durably.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    shared::write_file_observed(path, bytes, 0o600, record)
}

/// Writes a public file, mode 0644, durably.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    shared::write_file_observed(path, bytes, 0o644, record)
}

/// Renames `from` to `to` and syncs `to`'s folder before returning.
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), FileError> {
    shared::rename_durably_observed(from, to, record)
}

/// Syncs a folder's entries to disk.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    shared::fsync_dir_observed(dir, record)
}
