//! Owns the test probe: a worker actor that logs its starts and stops, and can be told to exit,
//! crash, panic or stop slowly — so each supervision rule can be observed from outside.
#![allow(dead_code, unreachable_pub)]

use erlmcp_supervisors::{ChildSpec, SupervisorRef};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared event log: "start:a", "stop:a".
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    /// Only the events with this prefix ("stop:"), in order.
    pub fn with_prefix(&self, prefix: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.starts_with(prefix))
            .collect()
    }
}

pub struct Probe;

#[derive(Clone)]
pub struct ProbeArgs {
    pub name: String,
    pub log: Log,
    pub stop_delay: Duration,
    /// Makes every start fail while set.
    pub fail_start: Arc<AtomicBool>,
    /// Counts how many post_stops run at the same time (and the most ever seen).
    pub stopping_now: Arc<AtomicUsize>,
    pub stopping_max: Arc<AtomicUsize>,
}

impl ProbeArgs {
    pub fn new(name: &str, log: &Log) -> Self {
        Self {
            name: name.to_owned(),
            log: log.clone(),
            stop_delay: Duration::ZERO,
            fail_start: Arc::new(AtomicBool::new(false)),
            stopping_now: Arc::new(AtomicUsize::new(0)),
            stopping_max: Arc::new(AtomicUsize::new(0)),
        }
    }
    pub fn stop_delay(mut self, delay: Duration) -> Self {
        self.stop_delay = delay;
        self
    }
}

pub enum ProbeMsg {
    Ping(RpcReplyPort<String>),
    /// Return an error from the handler (ractor: ActorFailed).
    Fail,
    /// Panic in the handler.
    Panic,
    /// Stop with this reason (None = normal).
    Exit(Option<String>),
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for ProbeMsg {}

impl Actor for Probe {
    type Msg = ProbeMsg;
    type State = ProbeArgs;
    type Arguments = ProbeArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ProbeMsg>,
        args: ProbeArgs,
    ) -> Result<ProbeArgs, ActorProcessingErr> {
        args.log.push(format!("start_attempt:{}", args.name));
        if args.fail_start.load(Ordering::SeqCst) {
            return Err(format!("{} refuses to start", args.name).into());
        }
        args.log.push(format!("start:{}", args.name));
        Ok(args)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ProbeMsg>,
        state: &mut ProbeArgs,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.stopping_now.fetch_add(1, Ordering::SeqCst) + 1;
        state.stopping_max.fetch_max(now, Ordering::SeqCst);
        if !state.stop_delay.is_zero() {
            tokio::time::sleep(state.stop_delay).await;
        }
        state.stopping_now.fetch_sub(1, Ordering::SeqCst);
        state.log.push(format!("stop:{}", state.name));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ProbeMsg>,
        message: ProbeMsg,
        state: &mut ProbeArgs,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ProbeMsg::Ping(reply) => {
                let _ = reply.send(state.name.clone());
            }
            ProbeMsg::Fail => return Err(format!("{} failed on request", state.name).into()),
            ProbeMsg::Panic => panic!("{} panicked on request", state.name),
            ProbeMsg::Exit(reason) => myself.stop(reason),
        }
        Ok(())
    }
}

/// A permanent worker spec for a probe.
pub fn probe(id: &str, log: &Log) -> ChildSpec {
    probe_with(ProbeArgs::new(id, log))
}

pub fn probe_with(args: ProbeArgs) -> ChildSpec {
    ChildSpec::actor(args.name.clone(), move || (Probe, args.clone()))
}

/// A unique registry name for this test run.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}_{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// The running actor of child `id`.
pub async fn child(sup: &SupervisorRef, id: &str) -> Option<ActorRef<ProbeMsg>> {
    sup.which_children()
        .await
        .ok()?
        .into_iter()
        .find(|c| c.id == id)?
        .actor
        .map(Into::into)
}

/// Polls `check` until it holds, failing the test after 5 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Sends `msg` to child `id` and waits until a *new* actor runs under that id.
pub async fn make_exit_and_wait_replacement(sup: &SupervisorRef, id: &str, msg: ProbeMsg) {
    let old = child(sup, id).await.expect("child running").get_id();
    send_to(sup, id, msg).await;
    eventually(&format!("{id} replaced"), || async {
        child(sup, id).await.is_some_and(|c| c.get_id() != old)
    })
    .await;
}

pub async fn send_to(sup: &SupervisorRef, id: &str, msg: ProbeMsg) {
    child(sup, id)
        .await
        .expect("child running")
        .cast(msg)
        .expect("cast");
}
