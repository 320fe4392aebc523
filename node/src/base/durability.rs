//! The order of durable steps, recorded in the node's unit tests so that a test can check
//! that a folder is synced after a rename and before anything that depends on it is
//! committed. Does nothing in a release build.
//!
//! At the bottom of the node's modules: it imports nothing from the crate, so the files
//! (`identity`), the store and the vault can all record their steps.

use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

#[cfg(test)]
static LOG: std::sync::Mutex<Vec<(PathBuf, Step)>> = std::sync::Mutex::new(Vec::new());

/// Records `step` on `path`.
#[cfg(test)]
pub fn record(path: &Path, step: Step) {
    LOG.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((path.to_path_buf(), step));
}

/// Records nothing (not a test build).
#[cfg(not(test))]
#[inline(always)]
pub fn record(_path: &Path, _step: Step) {}

/// The steps recorded so far on paths under `root`, in order.
#[cfg(test)]
pub fn under(root: &Path) -> Vec<(PathBuf, Step)> {
    LOG.lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(p, _)| p.starts_with(root))
        .cloned()
        .collect()
}

/// A step of a durable write, as this module records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A temporary file was written (path: the temporary file).
    WriteTemp,
    /// A file was synced (path: the file).
    SyncFile,
    /// A file was renamed into place (path: the new name).
    Rename,
    /// A folder was synced (path: the folder).
    SyncDir,
    /// The store committed a transaction (path: the store).
    Commit,
}
