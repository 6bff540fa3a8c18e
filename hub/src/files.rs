//! The hub's files on disk are the operator's alone: the data directory holds transcripts, phone
//! numbers and email addresses. New directories are made `0700` and new files `0600`; an
//! existing one that other local users can read is reported at start (and left as it is: the
//! operator may have reasons).

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Mode of the directories the hub makes.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files the hub makes.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) `0700`; warns if it exists and others can read it.
///
/// # Errors
/// When it cannot be created.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        warn_if_open(dir);
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Creates `path` empty and `0600` unless it exists; warns if it exists and others can read it.
///
/// # Errors
/// When it cannot be created.
pub fn private_file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            warn_if_open(path);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to a new file `path`, `0600`.
///
/// # Errors
/// When it cannot be written.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.write_all(bytes)
}

/// Logs a warning when group or others may read `path`.
fn warn_if_open(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            "{} is readable by other local users (mode {:o}); it holds the hub's data: chmod {} it",
            path.display(),
            meta.permissions().mode() & 0o777,
            if meta.is_dir() { "700" } else { "600" },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_the_hub_creates_only_its_user_can_read() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data/nested");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("hub.db");
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        let cache = dir.join("cache.bin");
        write_private(&cache, b"x").unwrap();
        assert_eq!(mode(&cache), 0o600);
        // An existing file is left as the operator made it.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o644);
    }
}
