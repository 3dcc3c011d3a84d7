//! Owns the application tree: which supervisor starts what, from the configuration, and the
//! tree's orderly start and stop.
//!
//! ```text
//! erlmcp_sup                    one_for_one
//! ├── erlmcp_core_sup           one_for_one   (registry, sessions, plugins: later issues)
//! ├── erlmcp_transport_sup      one_for_one   (stdio, tcp, http: later issues)
//! └── erlmcp_observability_sup  one_for_one   (metrics, alerts, admin: later issues)
//! ```
//!
//! Every supervisor is registered in ractor's registry under its name, so only one application
//! tree can run per process.

use crate::config::Config;
use erlmcp_supervisors::{
    ChildSpec, SupervisorError, SupervisorRef, SupervisorSnapshot, SupervisorSpec,
};
use ractor::concurrency::JoinHandle;
use std::time::Duration;

/// The root supervisor's registered name.
pub const ROOT_SUP: &str = "erlmcp_sup";
/// The core supervisor (registry, sessions, plugins).
pub const CORE_SUP: &str = "erlmcp_core_sup";
/// The transport supervisor (listeners and their connections).
pub const TRANSPORT_SUP: &str = "erlmcp_transport_sup";
/// The observability supervisor (metrics, alerts, admin channel).
pub const OBSERVABILITY_SUP: &str = "erlmcp_observability_sup";

/// Why the application could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The tree failed to start; the message names the child at fault at every level.
    #[error("the supervision tree failed to start: {0}")]
    Start(#[source] SupervisorError),
    /// The tree did not stop within the shutdown timeout.
    #[error("the supervision tree did not stop within {0:?}")]
    StopTimeout(Duration),
}

/// The specification of the whole tree for `config`.
pub fn tree_spec(config: &Config) -> SupervisorSpec {
    let intensity = (
        config.supervision.max_restarts,
        Duration::from_millis(config.supervision.period),
    );
    let sup = |name: &str| {
        SupervisorSpec::one_for_one()
            .named(name)
            .intensity(intensity.0, intensity.1)
    };
    sup(ROOT_SUP)
        .child(ChildSpec::supervisor(CORE_SUP, sup(CORE_SUP)))
        .child(ChildSpec::supervisor(TRANSPORT_SUP, sup(TRANSPORT_SUP)))
        .child(ChildSpec::supervisor(
            OBSERVABILITY_SUP,
            sup(OBSERVABILITY_SUP),
        ))
}

/// A running application tree.
#[derive(Debug)]
pub struct Application {
    root: SupervisorRef,
    exited: JoinHandle<()>,
    shutdown_timeout: Duration,
}

impl Application {
    /// Starts the tree described by `config`.
    pub async fn start(config: &Config) -> Result<Self, AppError> {
        let (root, exited) = SupervisorRef::start(tree_spec(config))
            .await
            .map_err(AppError::Start)?;
        Ok(Self {
            root,
            exited,
            shutdown_timeout: config.shutdown_timeout(),
        })
    }

    /// The root supervisor.
    pub fn root(&self) -> &SupervisorRef {
        &self.root
    }

    /// A snapshot of the whole tree.
    pub async fn snapshot(&self) -> Result<SupervisorSnapshot, SupervisorError> {
        self.root.snapshot().await
    }

    /// Resolves when the root supervisor has stopped by itself (its restart intensity was
    /// exceeded: the failure escalated to the top).
    pub async fn exited(&mut self) {
        let _ = (&mut self.exited).await;
    }

    /// Stops the tree gracefully: every supervisor stops its children in reverse start order.
    pub async fn stop(self) -> Result<(), AppError> {
        let timeout = self.shutdown_timeout;
        match self.root.stop(Some(timeout)).await {
            Ok(()) => Ok(()),
            // Already stopped by itself: nothing left to stop.
            Err(_) if self.exited.is_finished() => Ok(()),
            Err(_) => Err(AppError::StopTimeout(timeout)),
        }
    }
}
