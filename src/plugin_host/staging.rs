//! Owns the plugin staging directory: the private place where each loaded version's copy lives.
//!
//! - Private: a directory owned by the node's user, mode 0700, not a symbolic link — checked when
//!   the host starts (a directory that fails refuses the start, naming it and why: nothing is
//!   chmod-ed or taken over) and again before each copy. Created 0700 when absent.
//! - Emptied when the host starts, removed when the node stops ([`Staging::remove`], called by
//!   `Application::stop`, which SIGTERM and SIGINT reach; and when the host is dropped).
//! - Each copy is a new file (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600) written through its
//!   descriptor, which the loader keeps and `dlopen`s through (see [`super::loader`]).

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why the staging directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagingError {
    /// It is not private to the node.
    #[error(
        "plugin staging directory {path} refused: {reason} (it must be the node's user's, mode 0700, not a symbolic link: fix or remove it, or point plugins.staging elsewhere)"
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// It could not be created, read or emptied.
    #[error("plugin staging directory {path}: {error}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why (in the message, not a source: it would be said twice).
        error: std::io::Error,
    },
}

/// A staged copy: open (read and write) and at its path in the staging directory.
#[derive(Debug)]
pub(crate) struct StagedFile {
    /// The copy's descriptor, through which it was written.
    pub(crate) file: File,
    /// Where it is.
    pub(crate) path: PathBuf,
}

/// The staging directory of a plugin host.
#[derive(Debug)]
pub(crate) struct Staging {
    dir: PathBuf,
    node_uid: u32,
    /// The directory checked at start (device, inode): the one every copy must go to.
    id: (u64, u64),
    removed: AtomicBool,
}

static STAGED: AtomicU64 = AtomicU64::new(0);

impl Staging {
    /// Makes `dir` ready: created 0700 if absent (its missing parents too), else checked; then
    /// emptied.
    pub(crate) fn prepare(dir: PathBuf, node_uid: u32) -> Result<Self, StagingError> {
        let io = |error| StagingError::Io {
            path: dir.clone(),
            error,
        };
        match std::fs::symlink_metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io)?;
                // The umask can only take bits away; a strict one would leave it unusable.
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(io)?;
            }
            Err(e) => return Err(io(e)),
            Ok(_) => {}
        }
        let meta = std::fs::symlink_metadata(&dir).map_err(io)?;
        if let Err(reason) = private(&meta, node_uid) {
            return Err(StagingError::NotPrivate { path: dir, reason });
        }
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            // Neither follows a link: `remove_dir_all` removes a link, not what it points to.
            let removed = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            removed.map_err(io)?;
        }
        Ok(Self {
            id: (meta.dev(), meta.ino()),
            dir,
            node_uid,
            removed: AtomicBool::new(false),
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Copies `source` (read from where it is now) to a new file here, mode 0600.
    pub(crate) fn stage(&self, source: &mut File, stem: &str) -> std::io::Result<StagedFile> {
        // The directory is the one checked at start, still private.
        let meta = std::fs::symlink_metadata(&self.dir)?;
        if (meta.dev(), meta.ino()) != self.id {
            return Err(std::io::Error::other(
                "the staging directory was replaced since the node started",
            ));
        }
        private(&meta, self.node_uid).map_err(std::io::Error::other)?;
        let n = STAGED.fetch_add(1, Ordering::Relaxed);
        let path = self
            .dir
            .join(format!("{stem}-{}-{n}.so", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        let written = (|| {
            // The umask can only take bits away from 0600; set it whatever the umask was.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            std::io::copy(source, &mut file)?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(StagedFile { file, path })
    }

    /// Removes the directory and what is in it (once; later calls do nothing).
    pub(crate) fn remove(&self) {
        if self.removed.swap(true, Ordering::Relaxed) {
            return;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {
                tracing::debug!(dir = %self.dir.display(), "plugin staging directory removed")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the plugin staging directory")
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether a directory's `lstat` shows it private to `node_uid`.
fn private(meta: &std::fs::Metadata, node_uid: u32) -> Result<(), String> {
    if meta.file_type().is_symlink() {
        return Err("it is a symbolic link".to_owned());
    }
    if !meta.is_dir() {
        return Err("it is not a directory".to_owned());
    }
    if meta.uid() != node_uid {
        return Err(format!(
            "it is owned by uid {}, not the node's user (uid {node_uid})",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!("its mode is {mode:04o}, not 0700"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_made_private_and_copies_are_0600() {
        let uid = crate::plugin_host::trust::effective_uid();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("staging");
        let staging = Staging::prepare(dir.clone(), uid).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&dir), 0o700);
        let source_path = root.path().join("p.so");
        std::fs::write(&source_path, b"library bytes").unwrap();
        std::fs::set_permissions(&source_path, std::fs::Permissions::from_mode(0o777)).unwrap();
        let staged = staging
            .stage(&mut File::open(&source_path).unwrap(), "p")
            .unwrap();
        assert_eq!(mode(&staged.path), 0o600);
        assert_eq!(std::fs::read(&staged.path).unwrap(), b"library bytes");
        drop(staging);
        assert!(!dir.exists(), "removed when dropped");
    }

    #[test]
    fn a_hostile_directory_is_refused_and_left_alone() {
        let uid = crate::plugin_host::trust::effective_uid();
        let root = tempfile::tempdir().unwrap();
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::write(open.join("keep"), b"").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Staging::prepare(open.clone(), uid).unwrap_err().to_string();
        assert!(
            err.contains("mode is 0777") && err.contains("open"),
            "{err}"
        );
        assert!(open.join("keep").exists(), "not emptied");
        let link = root.path().join("link");
        let private = root.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&private, &link).unwrap();
        let err = Staging::prepare(link, uid).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        // Not the node's user (the test's user is neither 4242 nor, for this check, root).
        let err = Staging::prepare(private.clone(), uid.wrapping_add(4242))
            .unwrap_err()
            .to_string();
        assert!(err.contains("owned by uid"), "{err}");
        assert!(Staging::prepare(private, uid).is_ok());
    }

    #[test]
    fn a_staging_directory_swapped_after_start_takes_no_copy() {
        let uid = crate::plugin_host::trust::effective_uid();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("staging");
        let staging = Staging::prepare(dir.clone(), uid).unwrap();
        std::fs::rename(&dir, root.path().join("moved")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let source = root.path().join("p.so");
        std::fs::write(&source, b"x").unwrap();
        let err = staging
            .stage(&mut File::open(&source).unwrap(), "p")
            .unwrap_err();
        assert!(err.to_string().contains("replaced"), "{err}");
    }
}
