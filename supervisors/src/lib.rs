//! # erlmcp-supervisors — Erlang/OTP supervision on ractor
//!
//! ractor gives actors, links and supervision *events*; it has no supervisor. This crate is one,
//! keeping OTP's `supervisor` rules exactly (they are listed in [`supervisor`] and in
//! `docs/supervision.md`, each next to the test that pins it). It knows nothing about MCP.
//!
//! ## A guided tour
//! - [`ChildSpec`]: how to start, restart ([`Restart`]) and stop ([`Shutdown`]) one child.
//! - [`SupervisorSpec`]: strategy ([`Strategy`]), restart intensity, [`AutoShutdown`], children.
//! - [`SupervisorRef`]: start a supervisor, then `start_child`, `terminate_child`,
//!   `restart_child`, `delete_child`, `which_children`, `count_children`, `snapshot`, `stop`.
//! - [`DynamicSupervisor`] + [`ChildTemplate`]: OTP's `simple_one_for_one`.
//! - [`SupervisorSnapshot`]: the serialisable tree (strategy, children, states, restart counts,
//!   last exit reasons).
//! - [`ExitReason`]: how ractor's exit events map to OTP's normal/abnormal exits.
//!
//! ## Strategies: which children restart when one must
//! A supervisor restarts a child when the child's restart type (below) says its exit calls for it.
//! Its strategy decides which *other* children go with it:
//!
//! | strategy | what a restart does | built with |
//! |---|---|---|
//! | `one_for_one` | only the child that exited is started again | [`SupervisorSpec::one_for_one`] |
//! | `one_for_all` | every other running child is stopped (reverse start order), then all are started again in list order | [`SupervisorSpec::one_for_all`] |
//! | `rest_for_one` | the children started after the one that exited are stopped (reverse order), then it and they are started again in order | [`SupervisorSpec::rest_for_one`] |
//! | `simple_one_for_one` | one [`ChildTemplate`]; children are added at run time with arguments ([`DynamicSupervisor::start_child`]) and each is restarted alone, with the same arguments | [`SupervisorSpec::simple_one_for_one`] |
//!
//! ## Restart types: whether an exit calls for a restart
//! | restart type | after a normal exit (`normal`, `shutdown`) | after any other exit (error, panic, kill) |
//! |---|---|---|
//! | [`Restart::Permanent`] (the default) | restarted | restarted |
//! | [`Restart::Transient`] | not restarted; the spec stays | restarted |
//! | [`Restart::Temporary`] | not restarted; removed from the child list | not restarted; removed from the child list |
//!
//! A temporary child stopped by a sibling's `one_for_all` / `rest_for_one` restart is removed too,
//! not restarted.
//!
//! ## Intensity and period: when a supervisor gives up
//! [`SupervisorSpec::intensity`]`(max_restarts, period)` (OTP's default: 1 restart in 5 s). One
//! restart more than `max_restarts` within `period` makes the supervisor give up: it stops its
//! remaining children in reverse start order and exits with reason `shutdown`. Its own
//! supervisor then treats that exit like any other child's (a permanent supervisor child is
//! restarted with a fresh subtree), so a fault escalates one level at a time until a level's
//! restart cures it, or the root stops. Restarts older than `period` leave the window. A
//! restart whose start fails is retried, and every retry counts toward the intensity.
//!
//! Significant children ([`ChildSpec::significant`]) with [`AutoShutdown`] stop the supervisor
//! when they exit and are not restarted (`any_significant`: the first one; `all_significant`:
//! the last one). Each rule is pinned by a named test, listed in `docs/supervision.md`.
//!
//! ## A small tree
//! A `one_for_one` root holding a permanent worker actor and a dynamic supervisor of
//! transient workers; the worker is killed and comes back as a new actor:
//! ```
//! use erlmcp_supervisors::{
//!     ChildSpec, ChildTemplate, DynamicSupervisor, Restart, SupervisorRef, SupervisorSpec,
//! };
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//! use std::time::Duration;
//!
//! /// A worker that holds a name and answers nothing.
//! struct Worker;
//!
//! impl Actor for Worker {
//!     type Msg = ();
//!     type State = String;
//!     type Arguments = String;
//!
//!     async fn pre_start(
//!         &self,
//!         _myself: ActorRef<()>,
//!         name: String,
//!     ) -> Result<String, ActorProcessingErr> {
//!         Ok(name)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jobs = SupervisorSpec::simple_one_for_one(
//!     ChildTemplate::actor("job", |name: String| (Worker, name)).restart(Restart::Transient),
//! )
//! .max_children(100);
//! let root = SupervisorSpec::one_for_one()
//!     .intensity(3, Duration::from_secs(5)) // a 4th restart within 5 s: give up
//!     .child(ChildSpec::actor("clock", || (Worker, "clock".to_owned())))
//!     .child(ChildSpec::supervisor("jobs", jobs));
//! let (sup, _handle) = SupervisorRef::start(root).await?;
//!
//! // Add a child to the dynamic supervisor, with its arguments.
//! let children = sup.which_children().await?;
//! let jobs_cell = children[1].actor.clone().expect("jobs runs");
//! let jobs = DynamicSupervisor::<String>::from_ref(SupervisorRef::from_cell(jobs_cell).unwrap());
//! jobs.start_child("nightly".to_owned()).await?;
//! assert_eq!(jobs.supervisor().count_children().await?.active, 1);
//!
//! // Kill the permanent worker: one_for_one starts it again, alone.
//! let clock = children[0].actor.clone().expect("clock runs");
//! clock.kill();
//! let mut restarted = None;
//! for _ in 0..500 {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     let now = sup.which_children().await?;
//!     if now[0].actor.as_ref().is_some_and(|a| a.get_id() != clock.get_id()) {
//!         restarted = Some(now);
//!         break;
//!     }
//! }
//! let restarted = restarted.expect("the clock is back within 5 s");
//! assert_eq!(restarted.len(), 2);
//! assert_eq!(sup.snapshot().await?.restarts_total, 1);
//! println!("{}", sup.snapshot().await?.render());
//! sup.stop(None).await?;
//! # Ok(()) }
//! ```

pub mod child_spec;
pub mod dynamic;
pub mod error;
pub mod exit_reason;
pub mod intensity;
mod shutdown;
pub mod snapshot;
pub mod supervisor;
pub mod supervisor_spec;

pub use child_spec::{
    ChildKind, ChildSpec, Restart, Shutdown, StartContext, StartError, StartFuture, StartOutcome,
};
pub use dynamic::DynamicSupervisor;
pub use error::SupervisorError;
pub use exit_reason::ExitReason;
pub use intensity::{Intensity, RestartWindow};
pub use snapshot::{ChildSnapshot, ChildState, SupervisorSnapshot};
pub use supervisor::{ChildCounts, ChildInfo, ChildRef, Supervisor, SupervisorMsg, SupervisorRef};
pub use supervisor_spec::{AutoShutdown, ChildTemplate, Strategy, SupervisorSpec};
