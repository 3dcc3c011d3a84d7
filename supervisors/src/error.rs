//! Owns the supervision crate's error type: every way a supervisor call or start can fail.
//!
//! Reasons are kept as rendered strings (the whole `source()` chain joined with `: `) so that
//! errors are `Clone`, cross actor boundaries, and still say *why* in one line.

use std::error::Error as StdError;

/// What went wrong in a supervisor operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    /// A child's start function failed (or panicked) while the supervisor was starting or adding
    /// it. When this happens during the supervisor's own start, the children already started have
    /// been stopped in reverse order before the error is returned.
    #[error("failed to start child `{id}`: {reason}")]
    FailedToStartChild {
        /// The child spec's id.
        id: String,
        /// The start function's error chain.
        reason: String,
    },
    /// The supervisor spec or a child spec breaks a rule (duplicate id, significant permanent child…).
    #[error("invalid supervisor spec: {0}")]
    InvalidSpec(String),
    /// `start_child` with an id that is already in the child list.
    #[error("child `{0}` is already present")]
    AlreadyPresent(String),
    /// `restart_child` / `delete_child` on a child that is running.
    #[error("child `{0}` is running")]
    Running(String),
    /// No child with that id (or actor) in the child list.
    #[error("no child `{0}`")]
    NotFound(String),
    /// A dynamic supervisor already has `max_children` children.
    #[error("the supervisor already has its max_children ({0}) children")]
    MaxChildren(usize),
    /// The operation does not exist for this supervisor's strategy (e.g. `start_child(spec)` on
    /// a `simple_one_for_one` supervisor, or `start_child(args)` on a static one).
    #[error("not supported by a {strategy} supervisor: {operation}")]
    WrongStrategy {
        /// The supervisor's strategy.
        strategy: &'static str,
        /// The refused operation.
        operation: &'static str,
    },
    /// Dynamic child arguments of another type than the template takes.
    #[error("dynamic child arguments have the wrong type (the template takes {expected})")]
    WrongArgumentType {
        /// The argument type the template was declared with.
        expected: &'static str,
    },
    /// The supervisor did not answer: it has stopped, or the reply channel broke.
    #[error("supervisor unreachable: {0}")]
    Unreachable(String),
    /// ractor refused to spawn the supervisor actor itself (e.g. its name is taken).
    #[error("could not spawn the supervisor: {0}")]
    Spawn(String),
}

/// Renders an error and its whole `source()` chain as `outer: inner: innermost`.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}

/// The message of a caught panic (`panic!` with a string or a formatted message).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".to_owned())
}
