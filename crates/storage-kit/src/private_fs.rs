//! Files and folders for the owner only, whatever the umask: folders 0700, files 0600. What the
//! stores keep (database files, attachments, mail) is private data. A folder that already exists
//! is left as it is: it may be shared on purpose.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents, each readable by the owner only.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn owner_only() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates (or truncates) `path` for writing; a new file is readable by the owner only.
pub fn create_file(path: &Path) -> io::Result<File> {
    owner_only()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Creates `path` empty, readable by the owner only, unless it exists. SQLite gives the files
/// it makes beside a database (`-wal`, `-shm`) the database file's permissions, so creating
/// that file first is what keeps all three private.
pub fn ensure_file(path: &Path) -> io::Result<()> {
    match owner_only().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether people other than the owner can list or enter `dir`; `None` when it does not exist
/// (or the platform has no such permissions).
pub fn open_to_others(dir: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_is_created_is_for_the_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir_all(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        let file = dir.join("f");
        create_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        let db = dir.join("db");
        ensure_file(&db).unwrap();
        ensure_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(open_to_others(&dir), None);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(open_to_others(&dir), Some(0o755));
        assert_eq!(open_to_others(&tmp.path().join("missing")), None);
    }
}
