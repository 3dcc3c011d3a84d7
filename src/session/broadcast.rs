//! The registry's broadcasts to the sessions: a list changed (to every initialized session), a
//! resource changed (to the sessions subscribed to it). Running sessions hear through their
//! actors' mailboxes (the process group `erlmcp_sessions`), hibernating ones at once; both under
//! the hibernating table's lock (see the parent module's doc), so no notification is lost or sent
//! twice while a session hibernates or wakes.

use super::{HIBERNATING, SessionMsg};
use crate::common::ListKind;
use crate::locks::lock;
use crate::tree_names::SESSIONS_GROUP;
use std::sync::Weak;

/// Tells every initialized session that a registry list changed: running actors through their
/// mailboxes (they also serve their listen streams), hibernating sessions at once (they hold no
/// listens).
pub(crate) fn broadcast_list_changed(kind: ListKind) {
    let table = lock(&HIBERNATING);
    send_to_running(|| SessionMsg::ListChanged(kind));
    for shared in table.values().filter_map(Weak::upgrade) {
        shared.notify_list_changed(kind);
    }
}

/// Tells the sessions subscribed to `uri` that it changed (only running ones can be: a session
/// with subscriptions does not hibernate).
pub(crate) fn broadcast_resource_updated(uri: &str) {
    let _table = lock(&HIBERNATING);
    send_to_running(|| SessionMsg::ResourceUpdated(uri.to_owned()));
}

/// Sends a message built by `make` to every running session actor; called holding the
/// hibernating table's lock (see the module doc).
fn send_to_running(make: impl Fn() -> SessionMsg) {
    for member in ractor::pg::get_members(&SESSIONS_GROUP.to_owned()) {
        let _ = member.send_message(make());
    }
}
