//! Owns the dispatcher's side of per-tool authorization: the rules (`[auth] rules`, applied by
//! [`crate::auth`]) asked with the principal a request carries before a tool is called, a
//! resource read or a prompt got (a refusal is JSON-RPC error -32003 naming it and the scopes
//! missing), and the lists filtered to what the principal may use. A request without a principal
//! (TCP, stdio, HTTP without `[auth]`) is not asked about. Also the rules' reload as the shell and
//! SIGHUP ask it ([`reload_rules`]): what a principal may see changed, so the sessions are told.

use super::Dispatcher;
use crate::auth::reload::{ReloadError, Reloaded};
use crate::auth::{Auth, Kind, Principal, rules::Refused};
use crate::common::ListKind;
use crate::protocol::jsonrpc::{FORBIDDEN, RpcError};
use std::sync::Arc;

impl Dispatcher {
    /// Whether the request's principal may use the `kind` named `name`.
    pub(super) fn authorize(&self, kind: Kind, name: &str) -> Result<(), RpcError> {
        let Some((auth, principal)) = self.rules_in_force() else {
            return Ok(());
        };
        auth.authorize(&principal, kind, name)
            .map_err(|refused| forbidden(kind, name, &principal, &refused))
    }

    /// The rules and the principal a list is filtered for; `None`: list everything.
    pub(super) fn rules_in_force(&self) -> Option<(Arc<Auth>, Arc<Principal>)> {
        let principal = self.principal.as_ref()?;
        let auth = crate::auth::current()?;
        (auth.enabled() && !auth.rules().allow_all()).then(|| (auth, Arc::clone(principal)))
    }
}

/// The rules read again from the running node's config file ([`crate::auth::reload`]); when they
/// changed, every initialized session gets `notifications/{tools,resources,prompts}/list_changed`
/// (what its principal may see may have changed). `erlmcp remote auth reload` and SIGHUP.
pub fn reload_rules(config: &crate::config::Config) -> Result<Reloaded, ReloadError> {
    let done = crate::auth::reload::reload_running(config)?;
    if done.changed {
        for kind in [ListKind::Tools, ListKind::Resources, ListKind::Prompts] {
            crate::session::broadcast::broadcast_list_changed(kind);
        }
    }
    Ok(done)
}

/// -32003: which tool (resource, prompt), and the scopes a rule for it needs that the token lacks.
fn forbidden(kind: Kind, name: &str, principal: &Principal, refused: &Refused) -> RpcError {
    let what = kind.as_str();
    let message = if refused.missing_scopes.is_empty() {
        format!(
            "{what} `{name}` is not allowed for `{}` (auth.rules)",
            principal.subject
        )
    } else {
        format!(
            "{what} `{name}` is not allowed: the token lacks scope {}",
            refused.missing_scopes.join(" ")
        )
    };
    let mut error = RpcError::new(FORBIDDEN, message);
    error.data = Some(serde_json::json!({
        what: name,
        "missingScopes": refused.missing_scopes,
    }));
    error
}
