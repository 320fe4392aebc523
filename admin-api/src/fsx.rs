//! Durable file writes, shared by the node and `trm-admin`: a power cut leaves either the old
//! file or the new one (temporary file, sync it, rename over the target, sync the folder);
//! private files are mode 0600 from creation and refused when others can read them.
//!
//! The node watches each step (its unit tests check the order, e.g. that a folder is synced
//! before anything depending on the rename is committed) through the `_observed` forms.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// file
        path: PathBuf,
        /// cause
        source: std::io::Error,
    },
    /// A private key file is readable by others.
    #[error("{0}: private key file must be mode 0600 (run `chmod 600` on it)")]
    Permissions(PathBuf),
}

/// A step of a durable write, as an observer sees it.
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
}

/// Told of every step of a durable write, in order.
pub type Observer = fn(&Path, Step);

fn unobserved(_: &Path, _: Step) {}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a private file, mode 0600, durably.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_file_observed(path, bytes, 0o600, unobserved)
}

/// Writes a public file, mode 0644, durably.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_file_observed(path, bytes, 0o644, unobserved)
}

/// Writes `bytes` to `path` with `mode` so that a power cut leaves either the old file or the
/// new one, and the new one once this returns: temporary file, sync it, rename over `path`,
/// sync the folder (a rename lives in the folder: until the folder is synced, a power cut may
/// undo it). `observe` is told of each step.
pub fn write_file_observed(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    observe: Observer,
) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let parent = parent_of(path);
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    observe(&tmp, Step::WriteTemp);
    f.sync_all().map_err(io_err(&tmp))?;
    observe(&tmp, Step::SyncFile);
    drop(f);
    rename_durably_observed(&tmp, path, observe)
}

/// Renames `from` to `to` and syncs `to`'s folder before returning, so that what is committed
/// afterwards never depends on a rename a power cut could undo.
pub fn rename_durably_observed(from: &Path, to: &Path, observe: Observer) -> Result<(), FileError> {
    std::fs::rename(from, to).map_err(io_err(to))?;
    observe(to, Step::Rename);
    let parent = parent_of(to);
    fsync_dir_observed(parent, observe).map_err(io_err(parent))
}

/// Syncs a folder's entries (renames, new and removed files in it) to disk.
pub fn fsync_dir_observed(dir: &Path, observe: Observer) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    observe(dir, Step::SyncDir);
    Ok(())
}

/// Reads a private file, refusing one that group or others can read.
pub fn read_private(path: &Path) -> Result<Vec<u8>, FileError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(FileError::Permissions(path.to_path_buf()));
    }
    std::fs::read(path).map_err(io_err(path))
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
