//! Owns the node cookie and the challenge–response that proves a peer knows it, as Erlang's
//! distribution does: the cookie never crosses the wire; the node sends a random challenge and
//! the peer answers HMAC-SHA256(cookie, challenge), compared in constant time.
//!
//! The cookie comes from `--cookie` / `ERLMCP_COOKIE` when given, else from a file (default
//! `~/.erlmcp/cookie`) created on first use with a random value, mode 0600 in a 0700 directory.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// Why the cookie could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// Reading or creating the file failed.
    #[error("cookie file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is readable by others.
    #[error("cookie file {path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The file is empty.
    #[error("cookie file {0} is empty")]
    Empty(PathBuf),
    /// No randomness for a new cookie or a challenge.
    #[error("no randomness: {0}")]
    Random(String),
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, CookieError> {
    crate::common::random_hex(n).map_err(|e| CookieError::Random(e.to_string()))
}

/// The cookie in `file`, which must exist, be private to its owner and not be empty.
pub fn read(file: &Path) -> Result<String, CookieError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| CookieError::Io {
        path: file.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(file).map_err(io)?;
    let mode = std::fs::metadata(file).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CookieError::Exposed {
            path: file.to_owned(),
            mode,
        });
    }
    let cookie = text.trim().to_owned();
    if cookie.is_empty() {
        return Err(CookieError::Empty(file.to_owned()));
    }
    Ok(cookie)
}

/// The cookie: `given` when set, else the file's content (created when missing).
pub fn load_or_create(given: Option<&str>, file: &Path) -> Result<String, CookieError> {
    if let Some(cookie) = given.filter(|c| !c.is_empty()) {
        return Ok(cookie.to_owned());
    }
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let io = |source| CookieError::Io {
        path: file.to_owned(),
        source,
    };
    match read(file) {
        Ok(cookie) => Ok(cookie),
        Err(CookieError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = file.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io)?;
            }
            // Written whole to a file of this process's own, then linked into place: a link
            // fails when the name exists, so two nodes starting at once in one home never see
            // a half-written cookie, and the one that loses the race reads the winner's.
            let cookie = random_hex(32)?;
            let aside =
                file.with_extension(format!("new-{}-{}", std::process::id(), random_hex(4)?));
            let written = (|| {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&aside)?;
                std::io::Write::write_all(&mut f, format!("{cookie}\n").as_bytes())?;
                f.sync_all()?;
                std::fs::hard_link(&aside, file)
            })();
            let _ = std::fs::remove_file(&aside);
            match written {
                Ok(()) => {
                    tracing::info!(file = %file.display(), "created a new node cookie");
                    Ok(cookie)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(file),
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(e),
    }
}

fn mac(cookie: &str, challenge: &str) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(cookie.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(challenge.as_bytes());
    mac
}

/// The answer to `challenge` for a peer that knows `cookie` (hex).
pub fn answer(cookie: &str, challenge: &str) -> String {
    mac(cookie, challenge)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `response` (hex) answers `challenge` for `cookie`; constant-time in the response.
pub fn verify(cookie: &str, challenge: &str, response: &str) -> bool {
    let Some(bytes) = decode_hex(response) else {
        return false;
    };
    mac(cookie, challenge).verify_slice(&bytes).is_ok()
}

/// The bytes of `text` read as hex (two digits a byte, either case; nothing else: `from_str_radix`
/// alone also took a sign, so `+f` read as `0f` — found by the `admin_before_auth` fuzz target).
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn nodes_creating_the_cookie_at_once_all_get_the_one_written() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("erlmcp").join("cookie");
            let barrier = std::sync::Barrier::new(8);
            let cookies: Vec<String> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            load_or_create(None, &file).expect("every racer gets a cookie")
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert!(cookies.iter().all(|c| c == &cookies[0]), "{cookies:?}");
            assert_eq!(read(&file).unwrap(), cookies[0]);
            let left: Vec<_> = std::fs::read_dir(file.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                left,
                vec![std::ffi::OsString::from("cookie")],
                "no file left aside"
            );
        }
    }

    #[test]
    fn hex_is_read_only_as_digits() {
        assert_eq!(decode_hex("0aFF"), Some(vec![0x0a, 0xff]));
        for odd in ["+f", "0c+F", "-1", " f", "0x", "g0", "é0"] {
            assert_eq!(decode_hex(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn the_right_answer_verifies_and_a_wrong_cookie_or_challenge_does_not() {
        let good = answer("secret", "c1");
        assert!(verify("secret", "c1", &good));
        assert!(!verify("other", "c1", &good));
        assert!(!verify("secret", "c2", &good));
        assert!(!verify("secret", "c1", "zz"));
        assert!(!verify("secret", "c1", ""));
    }

    #[test]
    fn a_missing_cookie_file_is_created_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub").join("cookie");
        let first = load_or_create(None, &file).unwrap();
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(None, &file).unwrap(), first);
        assert_eq!(load_or_create(Some("given"), &file).unwrap(), "given");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(None, &file),
            Err(CookieError::Exposed { .. })
        ));
    }
}
