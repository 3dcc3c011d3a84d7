//! Owns reloading the per-tool rules while the node runs: the config file the node started with
//! (`--config`) read again — the embedded default under it and the `ERLMCP_*` variables over it,
//! as at start — checked whole as at start, and its `[[auth.rules]]` and `auth.default` put in
//! force at once ([`super::Auth::replace_rules`]). Asked by `erlmcp remote auth reload` and by
//! SIGHUP, through `crate::dispatch::reload_rules` (which then tells the sessions their lists
//! changed). Any other `[auth]` key that changed is reported, not applied: it takes a restart.

use super::Auth;
use super::rules::Rules;
use crate::config::{AuthConfig, Config, ConfigError, RuleDefault};
use serde::Serialize;
use std::path::Path;

/// Why the rules were not reloaded (the rules in force stay as they were).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The node was started without `--config`: there is no file to read again.
    #[error("the node was started without --config: there is no file to read the rules from again")]
    NoFile,
    /// `[auth]` is off in the running node: turning it on takes a restart.
    #[error("auth is off in this node ([auth] enabled = false): turning it on takes a restart")]
    Off,
    /// The file does not read, or its configuration is refused as it would be at start.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// What a reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    /// Rules now in force.
    pub rules: usize,
    /// `auth.default` now in force.
    pub default: RuleDefault,
    /// Whether they differ from the rules there were.
    pub changed: bool,
    /// Whether other `[auth]` keys in the file differ from those the node runs with (not
    /// applied: they take a restart).
    pub restart_needed: bool,
}

/// Reads `path` again as the node's configuration and puts its rules in force in `auth`;
/// `running` is the `[auth]` the node started with (to tell whether other keys changed).
pub fn reload(auth: &Auth, running: &AuthConfig, path: &Path) -> Result<Reloaded, ReloadError> {
    if !auth.enabled() {
        return Err(ReloadError::Off);
    }
    let mut config = Config::from_file(path)?;
    config.apply_env(|var| std::env::var(var).ok())?;
    config.validate()?;
    let new = config.auth;
    let without_rules = |c: &AuthConfig| AuthConfig {
        rules: Vec::new(),
        default: RuleDefault::Allow,
        ..c.clone()
    };
    let restart_needed = without_rules(&new) != without_rules(running);
    let before = auth.rules();
    let (old_rules, old_default) = before.configured();
    let changed = old_rules != new.rules.as_slice() || old_default != new.default;
    let reloaded = Reloaded {
        rules: new.rules.len(),
        default: new.default,
        changed,
        restart_needed,
    };
    auth.replace_rules(Rules::new(new.rules, new.default));
    tracing::info!(
        file = %path.display(),
        rules = reloaded.rules,
        default = ?reloaded.default,
        changed,
        "auth rules reloaded"
    );
    if restart_needed {
        tracing::warn!(
            file = %path.display(),
            "auth reload: [auth] keys other than rules and default changed; they take a restart"
        );
    }
    Ok(reloaded)
}

/// [`reload`] for the running node: its authentication, and the `[auth]` and file it started
/// with.
pub fn reload_running(config: &Config) -> Result<Reloaded, ReloadError> {
    let auth = super::current().ok_or(ReloadError::Off)?;
    let path = config.source.as_deref().ok_or(ReloadError::NoFile)?;
    reload(&auth, &config.auth, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Kind, Principal};

    fn write(path: &Path, rules: &str) {
        let text = format!(
            "[auth]\nenabled = true\nresource = \"http://127.0.0.1:1/mcp\"\n\
             api_keys = [{{ key = \"kkkkkkkkkkkkkkkkkkkk\", subject = \"ops\", scopes = [\"mcp\"] }}]\n{rules}"
        );
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_reload_puts_the_files_rules_in_force_and_a_bad_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("erlmcp.toml");
        write(
            &path,
            "[[auth.rules]]\nscopes = [\"admin\"]\ntools = [\"sleep\"]\n",
        );
        let config = Config::from_file(&path).unwrap();
        let auth = Auth::from_config_without_fetch(&config.auth).unwrap();
        let ops = Principal::for_test("ops", None, &["mcp"]);
        assert!(auth.authorize(&ops, Kind::Tool, "sleep").is_err());

        // The rule gone from the file: after the reload, sleep is allowed.
        write(&path, "");
        let done = reload(&auth, &config.auth, &path).unwrap();
        assert!(done.changed && !done.restart_needed, "{done:?}");
        assert_eq!(done.rules, 0);
        assert!(auth.authorize(&ops, Kind::Tool, "sleep").is_ok());

        // Deny by default now, and another key changed (reported, not applied).
        write(&path, "default = \"deny\"\nrequired_scopes = [\"mcp\"]\n");
        let done = reload(&auth, &config.auth, &path).unwrap();
        assert!(done.changed && done.restart_needed, "{done:?}");
        assert!(auth.authorize(&ops, Kind::Tool, "echo").is_err());

        // A file that does not load: an error, the rules in force untouched.
        std::fs::write(&path, "[auth\nbroken").unwrap();
        assert!(matches!(
            reload(&auth, &config.auth, &path),
            Err(ReloadError::Config(_))
        ));
        assert!(auth.authorize(&ops, Kind::Tool, "echo").is_err());
        // A rule the configuration refuses at start is refused here too.
        write(&path, "[[auth.rules]]\ntools = [\"x\"]\nbogus = 1\n");
        assert!(reload(&auth, &config.auth, &path).is_err());
        assert!(auth.authorize(&ops, Kind::Tool, "echo").is_err());
    }
}
