//! Owns the trust rules for the plugin files and directories a node may load from: who may have
//! put a file there, and whether anyone else could have swapped it.
//!
//! The rules (every refusal names the path at fault and why):
//! - Every directory passed through is owned by root or the node's user and is not writable by
//!   its group or others — except a sticky directory (`/tmp`), where others may create entries
//!   but cannot rename or remove ours. The directory holding the plugin file gets no such
//!   exception, nor does a directory given as `plugins.dir`.
//! - Every symbolic link followed is owned by root or the node's user, and its target is resolved
//!   under the same rules (at most [`MAX_SYMLINKS`] links): a link is as good as the directories
//!   and file it leads to, never better.
//! - The plugin file is a regular file owned by root or the node's user, not writable by its
//!   group or others.
//!
//! The walk is done by hand, component by component (`lstat`, never `stat`), so each link and
//! each directory on the way is judged, not only the end. The file is then opened (`O_NOFOLLOW`)
//! and judged again through its descriptor, which must be the very file the walk judged (same
//! device and inode): what the loader copies is what was checked.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The node's effective user id: the owner the trust rules and the staging directory expect.
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The most symbolic links followed while resolving one path (Linux's own limit).
pub(crate) const MAX_SYMLINKS: usize = 40;

/// Why a file or directory is not trusted: [`judge`]'s verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Untrusted {
    /// Owned by someone other than root or the node's user.
    #[error("owned by uid {uid}, neither root nor the node's user (uid {node_uid})")]
    Owner {
        /// Its owner.
        uid: u32,
        /// The node's effective uid.
        node_uid: u32,
    },
    /// Writable by its group or by others.
    #[error("writable by its group or others (mode {mode:04o})")]
    Writable {
        /// Its permission bits.
        mode: u32,
    },
}

/// The rule for one file or directory with owner `uid` and `mode`, for a node running as
/// `node_uid`: owned by root or `node_uid`, and not writable by group or others — unless
/// `sticky_ok` and the sticky bit is set (a directory such as `/tmp`, passed through on the way).
pub(crate) fn judge(uid: u32, mode: u32, node_uid: u32, sticky_ok: bool) -> Result<(), Untrusted> {
    if uid != 0 && uid != node_uid {
        return Err(Untrusted::Owner { uid, node_uid });
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !(sticky_ok && sticky) {
        return Err(Untrusted::Writable {
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Why a plugin path was refused or could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrustError {
    /// A component of the path broke a rule.
    #[error("{path}{what}: {reason}")]
    Refused {
        /// The offending file, directory or link.
        path: PathBuf,
        /// What it is to the walk (" (a directory on the way)", " (the plugin file)"…).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The path could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl TrustError {
    fn refused(path: &Path, what: &'static str, reason: impl ToString) -> Self {
        Self::Refused {
            path: path.to_owned(),
            what,
            reason: reason.to_string(),
        }
    }
}

/// A plugin file that passed the rules, open for reading.
#[derive(Debug)]
pub(crate) struct TrustedFile {
    /// The file, opened through the path the walk resolved and checked again through the
    /// descriptor.
    pub(crate) file: File,
    /// Its path with every link resolved (shown by `Debug`, checked by the tests).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only `Debug` and the tests read it")
    )]
    pub(crate) resolved: PathBuf,
}

/// What the walk must end on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    File,
    Dir,
}

/// The end of a walk: its resolved path and what `lstat` said of it.
struct Walked {
    path: PathBuf,
    meta: Metadata,
}

fn lstat(path: &Path) -> Result<Metadata, TrustError> {
    std::fs::symlink_metadata(path).map_err(|source| TrustError::Io {
        path: path.to_owned(),
        source,
    })
}

fn judged(
    path: &Path,
    meta: &Metadata,
    node_uid: u32,
    sticky_ok: bool,
    what: &'static str,
) -> Result<(), TrustError> {
    judge(meta.uid(), meta.mode(), node_uid, sticky_ok)
        .map_err(|reason| TrustError::refused(path, what, reason))
}

/// Resolves `path` component by component, judging every directory and link on the way and the
/// end (see the module's rules).
fn walk(path: &Path, node_uid: u32, want: Want) -> Result<Walked, TrustError> {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|source| TrustError::Io {
                path: path.to_owned(),
                source,
            })?
            .join(path)
    };
    // The components still to resolve, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, &absolute);
    let root = PathBuf::from("/");
    judged(
        &root,
        &lstat(&root)?,
        node_uid,
        true,
        " (a directory on the way)",
    )?;
    let mut at = root;
    let mut links = 0;
    while let Some(name) = pending.pop() {
        match name.as_bytes() {
            b"/" => at = PathBuf::from("/"),
            b"." => {}
            // `at` is a directory already judged, and so are its ancestors.
            b".." => {
                at.pop();
            }
            _ => {
                let next = at.join(&name);
                let meta = lstat(&next)?;
                let last = pending.is_empty();
                let kind = meta.file_type();
                if kind.is_symlink() {
                    // A link's own mode means nothing (always 0777); who made it does.
                    judge(meta.uid(), 0, node_uid, false).map_err(|reason| {
                        TrustError::refused(&next, " (a symbolic link)", reason)
                    })?;
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(TrustError::refused(
                            path,
                            " (the path)",
                            format!("more than {MAX_SYMLINKS} symbolic links"),
                        ));
                    }
                    let target = std::fs::read_link(&next).map_err(|source| TrustError::Io {
                        path: next.clone(),
                        source,
                    })?;
                    push_components(&mut pending, &target);
                } else if kind.is_dir() {
                    if last && want == Want::Dir {
                        judged(&next, &meta, node_uid, false, " (the plugin directory)")?;
                        return Ok(Walked { path: next, meta });
                    }
                    judged(&next, &meta, node_uid, true, " (a directory on the way)")?;
                    at = next;
                } else if last && want == Want::File && kind.is_file() {
                    judged(&next, &meta, node_uid, false, " (the plugin file)")?;
                    // Whoever may write the directory holding it may replace it.
                    judged(
                        &at,
                        &lstat(&at)?,
                        node_uid,
                        false,
                        " (the directory holding the plugin file)",
                    )?;
                    return Ok(Walked { path: next, meta });
                } else {
                    return Err(TrustError::refused(
                        &next,
                        "",
                        format!("is a {}, not {}", kind_name(&meta), want_name(want, last)),
                    ));
                }
            }
        }
    }
    Err(TrustError::refused(
        path,
        "",
        format!("names no {}", want_name(want, true)),
    ))
}

/// Pushes `path`'s components onto `pending` so that its first is popped next; an absolute path
/// starts with `/` (back to the root).
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .map(|c| match c {
            Component::RootDir | Component::Prefix(_) => OsString::from("/"),
            Component::CurDir => OsString::from("."),
            Component::ParentDir => OsString::from(".."),
            Component::Normal(name) => name.to_owned(),
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

fn kind_name(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "directory"
    } else if kind.is_file() {
        "regular file"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

fn want_name(want: Want, last: bool) -> &'static str {
    match (want, last) {
        (Want::File, true) => "a regular file",
        _ => "a directory",
    }
}

/// Checks a plugin directory (`plugins.dir`): it and every directory and link leading to it
/// pass the rules. Returns its resolved path.
pub(crate) fn check_dir(dir: &Path, node_uid: u32) -> Result<PathBuf, TrustError> {
    walk(dir, node_uid, Want::Dir).map(|walked| walked.path)
}

/// Opens the plugin file `path` if it passes the rules: resolved and judged component by
/// component, opened without following a link, and judged again through the descriptor, which
/// must be the file the walk judged.
pub(crate) fn open_trusted(path: &Path, node_uid: u32) -> Result<TrustedFile, TrustError> {
    let walked = walk(path, node_uid, Want::File)?;
    let io = |source| TrustError::Io {
        path: walked.path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Non-blocking: a FIFO swapped in by the file's (trusted) owner cannot hang the open;
        // it is refused below.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&walked.path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || (meta.dev(), meta.ino()) != (walked.meta.dev(), walked.meta.ino()) {
        return Err(TrustError::refused(
            &walked.path,
            " (the plugin file)",
            "was replaced while it was checked",
        ));
    }
    judged(&walked.path, &meta, node_uid, false, " (the plugin file)")?;
    Ok(TrustedFile {
        file,
        resolved: walked.path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const NODE: u32 = 1000;

    #[test]
    fn ownership_trusts_root_and_the_node_user_only() {
        assert_eq!(judge(0, 0o100644, NODE, false), Ok(()));
        assert_eq!(judge(NODE, 0o100755, NODE, false), Ok(()));
        assert_eq!(
            judge(1001, 0o100644, NODE, false),
            Err(Untrusted::Owner {
                uid: 1001,
                node_uid: NODE
            })
        );
        // A node running as root trusts root only.
        assert!(judge(1001, 0o100644, 0, false).is_err());
        assert_eq!(judge(0, 0o100644, 0, false), Ok(()));
        // Another user's sticky directory is still another user's.
        assert!(judge(1001, 0o41777, NODE, true).is_err());
    }

    #[test]
    fn group_or_other_write_is_refused_unless_a_sticky_directory_on_the_way() {
        for mode in [0o100664, 0o100646, 0o100666, 0o40775, 0o40777] {
            assert_eq!(
                judge(NODE, mode, NODE, false),
                Err(Untrusted::Writable {
                    mode: mode & 0o7777
                }),
                "{mode:o}"
            );
        }
        assert_eq!(judge(0, 0o41777, NODE, true), Ok(()), "/tmp on the way");
        assert!(judge(0, 0o41777, NODE, false).is_err(), "/tmp holding it");
        assert!(judge(0, 0o40777, NODE, true).is_err(), "not sticky");
        assert_eq!(judge(NODE, 0o40755, NODE, false), Ok(()));
        assert_eq!(judge(NODE, 0o100444, NODE, false), Ok(()));
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn the_walk_judges_links_their_targets_and_the_directory_holding_the_file() {
        let uid = effective_uid();
        let root = tempfile::tempdir().unwrap();
        let good = root.path().join("good");
        std::fs::create_dir(&good).unwrap();
        chmod(&good, 0o755);
        std::fs::write(good.join("p.so"), b"x").unwrap();
        chmod(&good.join("p.so"), 0o644);
        let opened = open_trusted(&good.join("p.so"), uid).unwrap();
        assert_eq!(opened.resolved, good.join("p.so"));

        // Through a link in a trusted directory, to a trusted file: fine.
        std::os::unix::fs::symlink(good.join("p.so"), good.join("link.so")).unwrap();
        assert_eq!(
            open_trusted(&good.join("link.so"), uid).unwrap().resolved,
            good.join("p.so")
        );
        // A relative link with `..`.
        std::os::unix::fs::symlink("../good/./p.so", good.join("rel.so")).unwrap();
        assert!(open_trusted(&good.join("rel.so"), uid).is_ok());

        // A link to a file in a world-writable directory: refused, naming that directory.
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::write(open.join("evil.so"), b"x").unwrap();
        chmod(&open, 0o777);
        std::os::unix::fs::symlink(open.join("evil.so"), good.join("evil.so")).unwrap();
        let err = open_trusted(&good.join("evil.so"), uid)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{} (a directory", open.display())) && err.contains("0777"),
            "{err}"
        );
        // Sticky, it may be passed through, but not hold the plugin file.
        chmod(&open, 0o1777);
        let err = open_trusted(&good.join("evil.so"), uid)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{} (the directory holding", open.display())),
            "{err}"
        );

        // A group-writable file.
        chmod(&good.join("p.so"), 0o664);
        let err = open_trusted(&good.join("p.so"), uid)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(" (the plugin file)") && err.contains("0664"),
            "{err}"
        );
        assert!(
            open_trusted(&good.join("link.so"), uid).is_err(),
            "and through its link"
        );
        chmod(&good.join("p.so"), 0o644);

        // A plugin directory writable by others, and one on the way to the file.
        chmod(&good, 0o777);
        assert!(check_dir(&good, uid).is_err());
        assert!(open_trusted(&good.join("p.so"), uid).is_err());
        chmod(&good, 0o755);
        assert_eq!(check_dir(&good, uid).unwrap(), good);

        // Not a regular file; a loop of links.
        assert!(open_trusted(&good, uid).is_err());
        std::os::unix::fs::symlink(good.join("b.so"), good.join("a.so")).unwrap();
        std::os::unix::fs::symlink(good.join("a.so"), good.join("b.so")).unwrap();
        let err = open_trusted(&good.join("a.so"), uid)
            .unwrap_err()
            .to_string();
        assert!(err.contains("symbolic links"), "{err}");
        assert!(matches!(
            open_trusted(&good.join("absent.so"), uid),
            Err(TrustError::Io { .. })
        ));
    }
}
