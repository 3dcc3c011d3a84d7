//! Owns the stdio transport: one connection over the process's stdin and stdout, as the worker
//! `erlmcp_stdio` (temporary: when the client closes stdin, it stops and is not restarted, and the
//! node shuts down). stdout carries MCP messages only; logs go to stderr.

use crate::transport::TransportContext;
use crate::transport::connection::{Connection, ConnectionArgs};
use erlmcp_supervisors::{ChildSpec, Restart};
use std::sync::Arc;
use tokio::sync::Notify;

use crate::tree_names::STDIO;

/// The child spec of the stdio connection; `closed` is notified when the client closes stdin.
pub(crate) fn stdio_child(ctx: TransportContext, closed: Arc<Notify>) -> ChildSpec {
    ChildSpec::named_actor(STDIO, STDIO, move || {
        let mut args = ConnectionArgs::new(
            Box::new(tokio::io::stdin()),
            Box::new(tokio::io::stdout()),
            ctx.clone(),
            "stdio".to_owned(),
            None,
        );
        args.closed = Some(Arc::clone(&closed));
        (Connection, args)
    })
    .restart(Restart::Temporary)
}
