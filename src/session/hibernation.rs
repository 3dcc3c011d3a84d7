//! Hibernation: a session as its connection holds it ([`SessionHandle`]), which starts the
//! session's actor when it first needs one and stops it once it has held nothing and been asked
//! nothing for `hibernate_after`; the table of hibernating sessions (`HIBERNATING`), whose lock
//! orders hibernating, waking and broadcasting; and opening a session ([`start_session`]).

use super::actor::{SessionArgs, SessionMsg};
use super::{HIBERNATING, Negotiated, SessionInfo, SessionShared};
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::RpcError;
use crate::protocol::messages::{ListenFilter, LogLevel};
use crate::tree_names::SESSION_SUP;
use ractor::{ActorRef, RpcReplyPort};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How sessions run: what every transport passes when it opens one.
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long server→client requests wait.
    pub(crate) client_request_timeout: Duration,
    /// How long a session's actor may sit holding nothing before the session hibernates; `None`:
    /// sessions start with an actor and keep it.
    pub(crate) hibernate_after: Option<Duration>,
}

impl SessionSettings {
    /// Sessions that keep their actor from their first message to their last (no hibernation).
    pub fn keeping_actors(client_request_timeout: Duration) -> Self {
        Self {
            client_request_timeout,
            hibernate_after: None,
        }
    }
}

/// A session as its connection holds it: its shared state, and its actor while the session
/// needs one. Clones share the session; when the last one goes, the session ends with it (its
/// actor stopped, or its entry taken off the hibernating table).
#[derive(Debug, Clone)]
pub struct SessionHandle {
    presence: Arc<Presence>,
}

/// The one owner of a session's actor (see the module doc).
#[derive(Debug)]
struct Presence {
    shared: Arc<SessionShared>,
    /// `None`: the actor stays for the session's life.
    hibernate_after: Option<Duration>,
    /// The actor while the session is awake; `None` while it hibernates (then it is listed in
    /// [`HIBERNATING`]). Locked across every exchange with the actor, so hibernating, waking
    /// and asking never cross.
    actor: tokio::sync::Mutex<Option<ActorRef<SessionMsg>>>,
    /// When the actor was last asked something.
    last_asked: Mutex<std::time::Instant>,
    /// A hibernation check is scheduled.
    check_scheduled: AtomicBool,
}

impl SessionHandle {
    /// The part request paths read.
    pub(crate) fn shared(&self) -> &Arc<SessionShared> {
        &self.presence.shared
    }

    /// Asks the session's actor, starting one first if the session hibernates.
    async fn ask<T: Send + 'static>(
        &self,
        msg: impl FnOnce(RpcReplyPort<T>) -> SessionMsg,
    ) -> Result<T, RpcError> {
        let presence = &self.presence;
        let mut actor = presence.actor.lock().await;
        if presence.shared.has_ended() {
            return Err(RpcError::internal("the session has ended"));
        }
        let running = match actor.as_ref() {
            Some(running) => running.clone(),
            None => {
                let woken = start_actor(Arc::clone(&presence.shared)).await?;
                *actor = Some(woken.clone());
                woken
            }
        };
        *lock(&presence.last_asked) = std::time::Instant::now();
        let answer = running
            .call(msg, Some(Duration::from_secs(10)))
            .await
            .ok()
            .and_then(|r| match r {
                ractor::rpc::CallResult::Success(v) => Some(v),
                _ => None,
            })
            .ok_or_else(|| RpcError::internal("the session is not running"));
        drop(actor);
        Presence::schedule_hibernation(&self.presence);
        answer
    }

    /// Records the outcome of `initialize` (refused if the session is already initialized).
    pub(crate) fn initialize(&self, negotiated: Negotiated) -> Result<(), RpcError> {
        let shared = self.shared();
        let (revision, client) = (
            negotiated.revision,
            negotiated.client_info.as_ref().map(|c| c.name.clone()),
        );
        shared
            .negotiated
            .set(negotiated)
            .map_err(|_| RpcError::invalid_request("the session is already initialized"))?;
        tracing::info!(
            session = %shared.id,
            %revision,
            client = client.as_deref().unwrap_or(""),
            "session initialized"
        );
        Ok(())
    }

    /// Restores what a kept session had settled, without logging it again (a restart restores
    /// every kept session at once): its negotiation, whether it was initialized, its log level.
    pub(crate) fn restore(&self, negotiated: Negotiated, initialized: bool, level: LogLevel) {
        let shared = self.shared();
        let _ = shared.negotiated.set(negotiated);
        shared
            .initialized_notified
            .store(initialized, Ordering::Relaxed);
        shared.log_level.store(level.as_u8(), Ordering::Relaxed);
    }

    /// `notifications/initialized` arrived.
    pub(crate) fn initialized(&self) {
        self.shared()
            .initialized_notified
            .store(true, Ordering::Relaxed);
    }

    /// Sets the log level.
    pub(crate) fn set_level(&self, level: LogLevel) {
        self.shared()
            .log_level
            .store(level.as_u8(), Ordering::Relaxed);
        if let Some(journal) = self.shared().journal() {
            journal.level_set(level);
        }
    }

    /// Subscribes to a resource.
    pub(crate) async fn subscribe(&self, uri: String) -> Result<(), RpcError> {
        let journal = self.shared().journal().cloned();
        let kept = journal.as_ref().map(|_| uri.clone());
        self.ask(|r| SessionMsg::Subscribe(uri, r)).await?;
        if let (Some(journal), Some(uri)) = (journal, kept) {
            journal.subscription(&uri, true);
        }
        Ok(())
    }

    /// Unsubscribes from a resource.
    pub(crate) async fn unsubscribe(&self, uri: String) -> Result<(), RpcError> {
        let journal = self.shared().journal().cloned();
        let kept = journal.as_ref().map(|_| uri.clone());
        self.ask(|r| SessionMsg::Unsubscribe(uri, r)).await?;
        if let (Some(journal), Some(uri)) = (journal, kept) {
            journal.subscription(&uri, false);
        }
        Ok(())
    }

    /// Opens a listen stream on this session (`id` is the listen request's raw JSON id).
    pub(crate) async fn listen(&self, id: String, filter: ListenFilter) -> Result<(), RpcError> {
        self.ask(|r| SessionMsg::Listen(id, filter, r)).await
    }

    /// Ends the session (its connection is closing): stops its actor, aborts what is in flight,
    /// and refuses what is asked afterwards.
    pub async fn end(&self) {
        let mut actor = self.presence.actor.lock().await;
        self.shared().ended.store(true, Ordering::Release);
        if let Some(running) = actor.take() {
            let _ = running
                .stop_and_wait(None, Some(Duration::from_secs(2)))
                .await;
        }
        self.presence.release();
    }
}

impl Presence {
    /// What an ended session leaves once its actor is stopped: its table entry (if it was
    /// hibernating) and its requests in flight.
    fn release(&self) {
        lock(&HIBERNATING).remove(self.shared.id.as_ref());
        self.shared.abort_all();
    }

    /// Looks at hibernating once the actor has been asked nothing for `hibernate_after` (one
    /// check at a time; a session that declines is looked at again after its next question).
    fn schedule_hibernation(this: &Arc<Self>) {
        let Some(after) = this.hibernate_after else {
            return;
        };
        if this.check_scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let presence = Arc::downgrade(this);
        tokio::spawn(async move {
            let mut wait = after;
            loop {
                tokio::time::sleep(wait).await;
                let Some(presence) = presence.upgrade() else {
                    return;
                };
                let mut actor = presence.actor.lock().await;
                let quiet_for = lock(&presence.last_asked).elapsed();
                if actor.is_some() && quiet_for < after {
                    wait = after - quiet_for;
                    continue;
                }
                presence.check_scheduled.store(false, Ordering::Release);
                if let Some(running) = actor.as_ref()
                    && let Ok(ractor::rpc::CallResult::Success(true)) = running
                        .call(SessionMsg::Hibernate, Some(Duration::from_secs(10)))
                        .await
                {
                    *actor = None;
                }
                return;
            }
        });
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        // The last handle is gone (without `end` if a task held it last).
        self.shared.ended.store(true, Ordering::Release);
        if let Some(running) = self.actor.get_mut().take() {
            running.stop(None);
        }
        self.release();
    }
}

/// How many sessions hibernate.
pub fn hibernating_count() -> usize {
    lock(&HIBERNATING)
        .values()
        .filter(|shared| shared.strong_count() > 0)
        .count()
}

/// The hibernating sessions, described.
pub fn hibernating_sessions() -> Vec<SessionInfo> {
    let sessions: Vec<Arc<SessionShared>> = lock(&HIBERNATING)
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    sessions
        .iter()
        .map(|shared| shared.info(Vec::new(), 0, true))
        .collect()
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Opens a session for a connection whose queue is `outbound`. With hibernation on it starts
/// hibernating, as a `gen_server` whose `init` answers `hibernate`: it gets an actor under
/// `erlmcp_session_sup` when it first needs one (see the module doc). Otherwise its actor starts
/// now and stays for the session's life.
pub async fn start_session(
    outbound: Outbound,
    settings: SessionSettings,
) -> Result<SessionHandle, RpcError> {
    let id = format!("s{}", NEXT_SESSION.fetch_add(1, Ordering::Relaxed));
    let shared = SessionShared::new(id, outbound, settings.client_request_timeout);
    let actor = if settings.hibernate_after.is_some() {
        lock(&HIBERNATING).insert(shared.id.to_string(), Arc::downgrade(&shared));
        None
    } else {
        Some(start_actor(Arc::clone(&shared)).await?)
    };
    Ok(SessionHandle {
        presence: Arc::new(Presence {
            shared,
            hibernate_after: settings.hibernate_after,
            actor: tokio::sync::Mutex::new(actor),
            last_asked: Mutex::new(std::time::Instant::now()),
            check_scheduled: AtomicBool::new(false),
        }),
    })
}

/// Starts the actor of `shared` under `erlmcp_session_sup`.
async fn start_actor(shared: Arc<SessionShared>) -> Result<ActorRef<SessionMsg>, RpcError> {
    let sup = erlmcp_supervisors::SupervisorRef::whereis(SESSION_SUP)
        .ok_or_else(|| RpcError::internal("erlmcp_session_sup is not running"))?;
    let sessions = erlmcp_supervisors::DynamicSupervisor::<SessionArgs>::from_ref(sup);
    // The supervisor answers once the actor's `pre_start` has run.
    let started = sessions
        .start_child(SessionArgs { shared })
        .await
        .map_err(|e| RpcError::internal(format!("cannot start a session: {e}")))?;
    started
        .map(ActorRef::from)
        .ok_or_else(|| RpcError::internal("the session supervisor ignored the session"))
}
