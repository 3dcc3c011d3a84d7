//! Owns the actor of each loaded plugin: `erlmcp_plugin:<name>`, a child of the dynamic
//! supervisor `erlmcp_plugin_sup` (under `erlmcp_core_sup`). Every change to a plugin — a new
//! version swapped in, a canary started or promoted, a rollback — runs as a job in its actor's
//! mailbox, one at a time, so two operators loading the same plugin cannot interleave their
//! registry batches and swaps. Loading the library (dlopen, init, self-test) happens before, on a
//! blocking thread, and does not hold the mailbox.
//!
//! The plugin's versions live in the host's slot, not in the actor: a killed owner is restarted
//! by its supervisor under the same name and the plugin serves on throughout (calls never pass
//! through the actor). A job queued in the killed actor's mailbox is lost; its caller gets an
//! error saying so.

use erlmcp_supervisors::{
    ChildTemplate, DynamicSupervisor, Restart, Shutdown, StartContext, StartOutcome, SupervisorRef,
};
use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::time::Duration;

use crate::tree_names::PLUGIN_SUP;

/// The registered name of `plugin`'s owner.
pub(crate) fn owner_name(plugin: &str) -> String {
    format!("erlmcp_plugin:{plugin}")
}

/// A change to run in the owner's turn.
pub(crate) type Job = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// An owner's mailbox.
pub(crate) enum OwnerMsg {
    /// Run this change, alone.
    Run(Job),
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for OwnerMsg {}

impl std::fmt::Debug for OwnerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerMsg::Run")
    }
}

/// The owner actor.
pub(crate) struct PluginOwner;

impl Actor for PluginOwner {
    type Msg = OwnerMsg;
    type State = String;
    type Arguments = String;

    async fn pre_start(
        &self,
        _myself: ActorRef<OwnerMsg>,
        plugin: String,
    ) -> Result<String, ActorProcessingErr> {
        tracing::debug!(plugin = %plugin, "plugin owner started");
        Ok(plugin)
    }

    async fn handle(
        &self,
        _myself: ActorRef<OwnerMsg>,
        OwnerMsg::Run(job): OwnerMsg,
        _plugin: &mut String,
    ) -> Result<(), ActorProcessingErr> {
        job().await;
        Ok(())
    }
}

/// The template of `erlmcp_plugin_sup`: one permanent, named owner per plugin.
pub(crate) fn owner_template() -> ChildTemplate<String> {
    ChildTemplate::new("plugin", |ctx: StartContext, plugin: String| async move {
        let (actor, _) = PluginOwner::spawn_linked(
            Some(owner_name(&plugin)),
            PluginOwner,
            plugin,
            ctx.supervisor,
        )
        .await?;
        Ok(StartOutcome::Started(actor.get_cell()))
    })
    .restart(Restart::Permanent)
    .shutdown(Shutdown::Timeout(Duration::from_secs(5)))
}

/// The owner of `plugin`, started under `erlmcp_plugin_sup` if it has none; `None` when no
/// application tree runs (an embedding without the tree: changes then run directly).
pub(crate) async fn owner_of(plugin: &str) -> Option<ActorRef<OwnerMsg>> {
    let name = owner_name(plugin);
    if let Some(cell) = ractor::registry::where_is(name.clone()) {
        return Some(cell.into());
    }
    let sup = SupervisorRef::whereis(PLUGIN_SUP)?;
    let started = DynamicSupervisor::<String>::from_ref(sup)
        .start_child(plugin.to_owned())
        .await;
    if let Err(e) = &started {
        // Another caller may have started it meanwhile: then its name is taken, and found.
        tracing::debug!(plugin, error = %e, "plugin owner start raced or failed");
    }
    ractor::registry::where_is(name).map(Into::into)
}
