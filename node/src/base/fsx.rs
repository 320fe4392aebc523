//! Durable file writes for keys, cards and checkpoints: a power cut leaves either the old file
//! or the new one, private files are mode 0600 and refused when others can read them.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::base::durability::{self, Step};

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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a private file, mode 0600, atomically (temp file + rename), flushed to disk.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_file(path, bytes, 0o600)
}

/// Writes a public file, mode 0644, atomically.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_file(path, bytes, 0o644)
}

/// Writes `bytes` to `path` so that a power cut leaves either the old file or the new one,
/// and the new one once this returns: temp file, sync it, rename over `path`, sync the folder
/// (a rename lives in the folder: until the folder is synced, a power cut may undo it).
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    durability::record(&tmp, Step::WriteTemp);
    f.sync_all().map_err(io_err(&tmp))?;
    durability::record(&tmp, Step::SyncFile);
    drop(f);
    rename_durably(&tmp, path)
}

/// Renames `from` to `to` and syncs `to`'s folder before returning, so that what is committed
/// afterwards never depends on a rename a power cut could undo.
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), FileError> {
    std::fs::rename(from, to).map_err(io_err(to))?;
    durability::record(to, Step::Rename);
    let parent = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fsync_dir(parent).map_err(io_err(parent))
}

/// Syncs a folder's entries (renames, new and removed files in it) to disk.
pub fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    durability::record(dir, Step::SyncDir);
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
