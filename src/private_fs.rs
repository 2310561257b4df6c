//! The files the service writes hold password hashes, tickets, mail and secrets, so what it
//! creates is for its owner only (the storage toolkit's helpers); an existing data folder that
//! others can get into is reported, not changed.

use std::path::Path;

pub use storage_kit::private_fs::{create_dir_all, create_file, open_to_others};

/// Says once, at start, that an existing data folder is open to others. It is not changed: it
/// may be shared on purpose (`/tmp/ticketing` on Vercel is).
pub fn warn_if_open_to_others(dir: &Path) {
    if let Some(mode) = open_to_others(dir) {
        tracing::warn!(
            path = %dir.display(),
            mode = %format!("{mode:o}"),
            "DATA_DIR can be read by other users of this machine, and it holds the database \
             (password hashes, tickets), mail and secrets; consider `chmod 700 {}`",
            dir.display()
        );
    }
}
