//! Owns one client session: the negotiated revision, the client's capabilities, the log level,
//! resource subscriptions, the requests in flight (for cancellation) and the requests this server
//! sent the client and still waits on.
//!
//! A session's actor is a `Session` under the dynamic supervisor `erlmcp_session_sup`
//! (temporary children: a session is bound to its connection and is never restarted). The actor
//! keeps what only it changes — resource subscriptions, `subscriptions/listen` streams — and
//! takes the registry's broadcasts; request paths read the rest through [`SessionShared`] without
//! a mailbox hop (the negotiated state is set once, the log level is an atomic, and the two tables
//! touched on every request — requests in flight and server→client requests pending — are short
//! mutex-guarded maps, because routing each request through the mailbox twice would cost more
//! than it protects; see `docs/architecture.md`). A session whose actor fails ends, and closes
//! its connection; no other session is affected.
//!
//! Sessions hibernate, as OTP processes do (`hibernate_after`, and a `gen_server` whose `init`
//! answers `hibernate`): the mailboxes and task of an idle ractor actor were half of what an idle
//! connection cost, so a session runs without an actor until it holds something, and its actor
//! stops once it has held nothing and been asked nothing for `hibernate_after`. Meanwhile the
//! session lives in its [`SessionShared`], listed in a table that broadcasts and `remote sessions`
//! read. Its connection holds it as a [`SessionHandle`], whose one lock over the actor orders
//! waking (starting an actor to ask it something), asking and hibernating. One lock
//! (`HIBERNATING`) orders hibernating, waking and broadcasting, so no change notification is
//! lost or sent twice across either step. With `hibernate_after = 0` every session has its actor
//! from its first message to its last.
//!
//! Its parts: `shared` (the read view), `context` (what a handler gets with each request),
//! `actor` (the session actor), `hibernation` (the handle that starts and stops the actor,
//! and the hibernating table), `broadcast` (the registry's broadcasts) and `journal` (the hook a
//! transport that keeps its sessions in the state store attaches).

pub use crate::tree_names::SESSION_SUP;
use serde::Serialize;

mod actor;
pub(crate) mod broadcast;
mod context;
mod hibernation;
pub(crate) mod journal;
mod shared;

pub use actor::{SessionArgs, SessionMsg, describe, session_template};
pub use context::{ClientRequestError, InputRounds, RequestContext, Stateless, StatelessRequest};
pub use hibernation::{
    SessionHandle, SessionSettings, hibernating_count, hibernating_sessions, start_session,
};
pub use shared::{Negotiated, SessionShared};

/// Sessions whose actor is stopped while they are idle, by id: shared by the actor (which
/// hibernates), the handle (which wakes it) and the broadcasts. Its lock orders hibernating,
/// waking and broadcasting (see `hibernation`'s module doc).
static HIBERNATING: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<SessionShared>>>,
> = std::sync::LazyLock::new(|| std::sync::Mutex::new(std::collections::HashMap::new()));

/// What `sessions` in the remote shell shows.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// Session id.
    pub(crate) id: String,
    /// Negotiated revision.
    pub revision: Option<String>,
    /// Client name.
    pub(crate) client: Option<String>,
    /// Whether the client sent `notifications/initialized`.
    pub(crate) initialized: bool,
    /// Subscribed URIs.
    pub(crate) subscriptions: Vec<String>,
    /// Requests in flight.
    pub(crate) in_flight: usize,
    /// Requests handled since the session started.
    pub requests: u64,
    /// Open `subscriptions/listen` streams.
    pub(crate) listens: usize,
    /// Whether the session is hibernating (no actor until it holds something).
    pub hibernating: bool,
}
