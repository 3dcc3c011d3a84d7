//! The session actor ([`Session`]) under `erlmcp_session_sup`: its mailbox ([`SessionMsg`]),
//! what only it holds ([`SessionState`]: resource subscriptions and `subscriptions/listen`
//! streams), its handlers, and its child template. It leaves the hibernating table when it
//! starts and joins it when it hibernates (see the parent module's doc).

use super::{HIBERNATING, SessionInfo, SessionShared};
use crate::common::ListKind;
use crate::locks::lock;
use crate::protocol::jsonrpc::{self, RpcError};
use crate::protocol::messages::ListenFilter;
use crate::protocol::modern::SUBSCRIPTION_ID_KEY;
use crate::tree_names::SESSIONS_GROUP;
use erlmcp_supervisors::{ChildTemplate, Restart, Shutdown};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The session actor.
pub(crate) struct Session;

/// Arguments of a session actor: the session (new, or waking from hibernation).
#[derive(Clone, Debug)]
pub struct SessionArgs {
    /// The session's state that outlives its actor.
    pub shared: Arc<SessionShared>,
}

/// A session's mailbox.
#[derive(Debug)]
pub enum SessionMsg {
    /// `resources/subscribe`.
    Subscribe(String, RpcReplyPort<()>),
    /// `resources/unsubscribe`.
    Unsubscribe(String, RpcReplyPort<()>),
    /// A registry list changed (from the registry, through the process group).
    ListChanged(ListKind),
    /// A resource changed.
    ResourceUpdated(String),
    /// Describe the session.
    Describe(RpcReplyPort<SessionInfo>),
    /// `subscriptions/listen` (2026-07-28): deliver what `filter` asks for, stamped with the
    /// listen request's id (raw JSON), until the session ends.
    Listen(String, ListenFilter, RpcReplyPort<()>),
    /// Hibernate if the actor holds nothing for the session (no subscriptions, no listens):
    /// answers `true` and stops once what is queued before this is handled; `false` (and goes
    /// on) otherwise.
    Hibernate(RpcReplyPort<bool>),
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for SessionMsg {}

/// Describes the session whose actor is `cell` (a child of `erlmcp_session_sup`).
pub async fn describe(cell: ractor::ActorCell) -> Result<SessionInfo, RpcError> {
    let actor: ActorRef<SessionMsg> = cell.into();
    match actor
        .call(SessionMsg::Describe, Some(Duration::from_secs(2)))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(info)) => Ok(info),
        _ => Err(RpcError::internal("the session did not answer")),
    }
}

/// The session's state.
pub(crate) struct SessionState {
    shared: Arc<SessionShared>,
    subscriptions: HashSet<String>,
    /// Open `subscriptions/listen` requests: their raw ids and filters.
    listens: Vec<(Box<RawValue>, ListenFilter)>,
    life: ActorLife,
}

/// Ends the session when its actor goes, unless it goes because the session hibernates. A drop
/// guard in the actor's state, because a killed or panicking actor runs no `post_stop`.
struct ActorLife {
    shared: Arc<SessionShared>,
    /// The actor stops because the session hibernates, not because it ends.
    hibernating: bool,
}

impl Drop for ActorLife {
    fn drop(&mut self) {
        let shared = &self.shared;
        if self.hibernating {
            tracing::debug!(session = %shared.id, "session hibernating");
        } else if !shared.ended.swap(true, Ordering::AcqRel) {
            // Not ended by its connection: the actor failed, or the node is shutting down. The
            // session ends; closing its queue tells its connection.
            shared.abort_all();
            shared.outbound.close();
            tracing::warn!(session = %shared.id, "session actor stopped; the session ends");
        } else {
            tracing::debug!(session = %shared.id, "session stopped");
        }
    }
}

/// A notification on a listen stream, stamped with the listen request's id.
fn listen_notification(method: &str, id: &RawValue, uri: Option<&str>) -> Vec<u8> {
    let mut params = serde_json::json!({ "_meta": { (SUBSCRIPTION_ID_KEY): id } });
    if let Some(uri) = uri {
        params["uri"] = uri.into();
    }
    jsonrpc::encode_notification(method, &params)
}

impl Actor for Session {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let shared = args.shared;
        {
            let mut hibernating = lock(&HIBERNATING);
            hibernating.remove(shared.id.as_ref());
            ractor::pg::join(SESSIONS_GROUP.to_owned(), vec![myself.get_cell()]);
        }
        tracing::debug!(session = %shared.id, "session started");
        Ok(SessionState {
            life: ActorLife {
                shared: Arc::clone(&shared),
                hibernating: false,
            },
            shared,
            subscriptions: HashSet::new(),
            listens: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        message: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let shared = &state.shared;
        match message {
            SessionMsg::Subscribe(uri, reply) => {
                state.subscriptions.insert(uri);
                let _ = reply.send(());
            }
            SessionMsg::Unsubscribe(uri, reply) => {
                state.subscriptions.remove(&uri);
                let _ = reply.send(());
            }
            SessionMsg::ListChanged(kind) => {
                shared.notify_list_changed(kind);
                for (id, filter) in &state.listens {
                    let wanted = match kind {
                        ListKind::Tools => filter.tools_list_changed,
                        ListKind::Resources => filter.resources_list_changed,
                        ListKind::Prompts => filter.prompts_list_changed,
                    };
                    if wanted == Some(true) {
                        shared.send(listen_notification(kind.notification(), id, None));
                    }
                }
            }
            SessionMsg::ResourceUpdated(uri) => {
                if state.subscriptions.contains(&uri) {
                    shared.send(jsonrpc::encode_notification(
                        "notifications/resources/updated",
                        &serde_json::json!({ "uri": uri }),
                    ));
                }
                for (id, filter) in &state.listens {
                    if filter
                        .resource_subscriptions
                        .as_ref()
                        .is_some_and(|uris| uris.contains(&uri))
                    {
                        shared.send(listen_notification(
                            "notifications/resources/updated",
                            id,
                            Some(&uri),
                        ));
                    }
                }
            }
            SessionMsg::Listen(id, filter, reply) => {
                if let Ok(id) = RawValue::from_string(id) {
                    state.listens.push((id, filter));
                }
                let _ = reply.send(());
            }
            SessionMsg::Describe(reply) => {
                let mut subscriptions: Vec<String> = state.subscriptions.iter().cloned().collect();
                subscriptions.sort();
                let _ = reply.send(shared.info(subscriptions, state.listens.len(), false));
            }
            SessionMsg::Hibernate(reply) => {
                let idle = state.subscriptions.is_empty() && state.listens.is_empty();
                if idle {
                    {
                        let mut hibernating = lock(&HIBERNATING);
                        ractor::pg::leave(SESSIONS_GROUP.to_owned(), vec![myself.get_cell()]);
                        hibernating.insert(shared.id.to_string(), Arc::downgrade(shared));
                    }
                    state.life.hibernating = true;
                    // What broadcasts queued before the table took the session is handled first.
                    if myself.drain().is_err() {
                        myself.stop(None);
                    }
                }
                let _ = reply.send(idle);
            }
        }
        Ok(())
    }
}

/// The child template of `erlmcp_session_sup`: temporary sessions, killed after 1 s on shutdown.
pub fn session_template() -> ChildTemplate<SessionArgs> {
    ChildTemplate::actor("session", |args: SessionArgs| (Session, args))
        .restart(Restart::Temporary)
        .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
}
