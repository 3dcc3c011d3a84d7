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
//! ```no_run
//! use erlmcp_supervisors::{ChildSpec, SupervisorRef, SupervisorSpec};
//! # async fn demo() -> Result<(), erlmcp_supervisors::SupervisorError> {
//! let spec = SupervisorSpec::one_for_one()
//!     .named("my_sup")
//!     .child(ChildSpec::supervisor("inner_sup", SupervisorSpec::rest_for_one()));
//! let (sup, _handle) = SupervisorRef::start(spec).await?;
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
