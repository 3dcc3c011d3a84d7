//! Owns the classification of why a child exited, in OTP's terms.
//!
//! ractor reports an exit as `ActorTerminated(reason: Option<String>)` or `ActorFailed(error)`.
//! OTP decides restarts on the exit reason: `normal` and `shutdown` (or `{shutdown, Term}`) are
//! normal exits, everything else is abnormal. The mapping, stated once:
//!
//! | ractor event                                   | [`ExitReason`]            | abnormal |
//! |------------------------------------------------|---------------------------|----------|
//! | `ActorTerminated(None)` / `Some("normal")`     | `Normal`                  | no       |
//! | `ActorTerminated(Some("shutdown"))`            | `Shutdown(None)`          | no       |
//! | `ActorTerminated(Some("shutdown: why"))`       | `Shutdown(Some("why"))`   | no       |
//! | `ActorTerminated(Some("Drained"))` (ractor drain)| `Normal`                | no       |
//! | `ActorTerminated(Some("killed"))` (ractor kill)| `Killed`                  | yes      |
//! | `ActorTerminated(Some(other))`                 | `Error(other)`            | yes      |
//! | `ActorFailed(err)` (panic or handler error)    | `Error(err)`              | yes      |

use ractor::SupervisionEvent;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The stop reason a supervisor gives the children it shuts down, and its own exit reason when it
/// gives up (restart intensity reached, or auto-shutdown).
pub const SHUTDOWN: &str = "shutdown";

/// The stop reason ractor gives an actor stopped by `drain` (after handling what was queued).
const DRAINED: &str = "Drained";

/// Why a child exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// Stopped with no reason or with `normal`.
    Normal,
    /// Stopped with `shutdown` or `shutdown: detail` (how supervisors stop their children).
    Shutdown(Option<String>),
    /// Killed (ractor's `kill`, or a brutal-kill shutdown).
    Killed,
    /// Panicked, returned an error from a handler, or stopped with any other reason.
    Error(String),
}

impl ExitReason {
    /// Classifies a ractor stop reason string.
    pub fn from_stop_reason(reason: Option<&str>) -> Self {
        match reason {
            // ractor's `drain`: the actor handled its queue and stopped, as asked.
            None | Some("normal") | Some(DRAINED) => Self::Normal,
            Some(SHUTDOWN) => Self::Shutdown(None),
            Some("killed") => Self::Killed,
            Some(other) => match other.strip_prefix("shutdown:") {
                Some(detail) => Self::Shutdown(Some(detail.trim().to_owned())),
                None => Self::Error(other.to_owned()),
            },
        }
    }

    /// Classifies a supervision event; `None` for events that are not exits.
    pub fn from_event(event: &SupervisionEvent) -> Option<Self> {
        match event {
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                Some(Self::from_stop_reason(reason.as_deref()))
            }
            SupervisionEvent::ActorFailed(_, err) => Some(Self::Error(err.to_string())),
            _ => None,
        }
    }

    /// `true` for exits that a `transient` child is restarted after.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Self::Killed | Self::Error(_))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Shutdown(None) => f.write_str(SHUTDOWN),
            Self::Shutdown(Some(detail)) => write!(f, "shutdown: {detail}"),
            Self::Killed => f.write_str("killed"),
            Self::Error(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_and_shutdown_are_normal_exits_everything_else_is_abnormal() {
        assert_eq!(ExitReason::from_stop_reason(None), ExitReason::Normal);
        assert_eq!(
            ExitReason::from_stop_reason(Some("normal")),
            ExitReason::Normal
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("shutdown")),
            ExitReason::Shutdown(None)
        );
        assert_eq!(
            ExitReason::from_stop_reason(Some("shutdown: config reload")),
            ExitReason::Shutdown(Some("config reload".into()))
        );
        assert!(!ExitReason::from_stop_reason(Some("shutdown")).is_abnormal());
        assert!(ExitReason::from_stop_reason(Some("killed")).is_abnormal());
        assert!(ExitReason::from_stop_reason(Some("boom")).is_abnormal());
    }
}
