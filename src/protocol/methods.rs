//! Owns the names of the MCP methods a client sends a server: the requests ([`ClientMethod`])
//! and the notifications ([`ClientNotification`]) the dispatcher acts on, each read from its
//! name once so that routing is an exhaustive match over a type, not a chain of string
//! comparisons (as the official Rust SDK, rmcp, routes its `ClientRequest`). A name this server
//! does not know is kept as it came (`Unknown`): a request of that name gets -32601.

/// A client-to-server request, by its method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientMethod<'a> {
    /// `initialize`: the handshake of a session.
    Initialize,
    /// `ping`.
    Ping,
    /// `server/discover` (2026-07-28): what the server offers, with no handshake.
    ServerDiscover,
    /// `tools/call`.
    ToolsCall,
    /// `tools/list`.
    ToolsList,
    /// `resources/list`.
    ResourcesList,
    /// `resources/templates/list`.
    ResourcesTemplatesList,
    /// `resources/read`.
    ResourcesRead,
    /// `resources/subscribe`.
    ResourcesSubscribe,
    /// `resources/unsubscribe`.
    ResourcesUnsubscribe,
    /// `prompts/list`.
    PromptsList,
    /// `prompts/get`.
    PromptsGet,
    /// `completion/complete`.
    CompletionComplete,
    /// `logging/setLevel`.
    LoggingSetLevel,
    /// `subscriptions/listen` (2026-07-28): a long-lived stream of change notifications.
    SubscriptionsListen,
    /// `tasks/get` (tasks extension): a task's status, its result or error once it ended.
    TasksGet,
    /// `tasks/update` (tasks extension): answers to a task's input requests.
    TasksUpdate,
    /// `tasks/cancel` (tasks extension).
    TasksCancel,
    /// Any other name: not served (-32601).
    Unknown(&'a str),
}

impl<'a> ClientMethod<'a> {
    /// Every known method (all but `Unknown`), for tests and tables.
    #[cfg(test)]
    pub(crate) const KNOWN: [ClientMethod<'static>; 18] = [
        ClientMethod::Initialize,
        ClientMethod::Ping,
        ClientMethod::ServerDiscover,
        ClientMethod::ToolsCall,
        ClientMethod::ToolsList,
        ClientMethod::ResourcesList,
        ClientMethod::ResourcesTemplatesList,
        ClientMethod::ResourcesRead,
        ClientMethod::ResourcesSubscribe,
        ClientMethod::ResourcesUnsubscribe,
        ClientMethod::PromptsList,
        ClientMethod::PromptsGet,
        ClientMethod::CompletionComplete,
        ClientMethod::LoggingSetLevel,
        ClientMethod::SubscriptionsListen,
        ClientMethod::TasksGet,
        ClientMethod::TasksUpdate,
        ClientMethod::TasksCancel,
    ];

    /// The method named `name` (`Unknown` when this server serves no such method).
    pub(crate) fn parse(name: &'a str) -> Self {
        match name {
            "initialize" => Self::Initialize,
            "ping" => Self::Ping,
            "server/discover" => Self::ServerDiscover,
            "tools/call" => Self::ToolsCall,
            "tools/list" => Self::ToolsList,
            "resources/list" => Self::ResourcesList,
            "resources/templates/list" => Self::ResourcesTemplatesList,
            "resources/read" => Self::ResourcesRead,
            "resources/subscribe" => Self::ResourcesSubscribe,
            "resources/unsubscribe" => Self::ResourcesUnsubscribe,
            "prompts/list" => Self::PromptsList,
            "prompts/get" => Self::PromptsGet,
            "completion/complete" => Self::CompletionComplete,
            "logging/setLevel" => Self::LoggingSetLevel,
            "subscriptions/listen" => Self::SubscriptionsListen,
            "tasks/get" => Self::TasksGet,
            "tasks/update" => Self::TasksUpdate,
            "tasks/cancel" => Self::TasksCancel,
            other => Self::Unknown(other),
        }
    }

    /// The method's name on the wire (an unknown one as it came).
    pub(crate) fn as_str(self) -> &'a str {
        match self {
            Self::Initialize => "initialize",
            Self::Ping => "ping",
            Self::ServerDiscover => "server/discover",
            Self::ToolsCall => "tools/call",
            Self::ToolsList => "tools/list",
            Self::ResourcesList => "resources/list",
            Self::ResourcesTemplatesList => "resources/templates/list",
            Self::ResourcesRead => "resources/read",
            Self::ResourcesSubscribe => "resources/subscribe",
            Self::ResourcesUnsubscribe => "resources/unsubscribe",
            Self::PromptsList => "prompts/list",
            Self::PromptsGet => "prompts/get",
            Self::CompletionComplete => "completion/complete",
            Self::LoggingSetLevel => "logging/setLevel",
            Self::SubscriptionsListen => "subscriptions/listen",
            Self::TasksGet => "tasks/get",
            Self::TasksUpdate => "tasks/update",
            Self::TasksCancel => "tasks/cancel",
            Self::Unknown(name) => name,
        }
    }

    /// Whether a session answers this method before `initialize` (the rest get -32600 then).
    pub(crate) fn before_initialize(self) -> bool {
        match self {
            Self::Initialize | Self::Ping | Self::ServerDiscover => true,
            Self::ToolsCall
            | Self::ToolsList
            | Self::ResourcesList
            | Self::ResourcesTemplatesList
            | Self::ResourcesRead
            | Self::ResourcesSubscribe
            | Self::ResourcesUnsubscribe
            | Self::PromptsList
            | Self::PromptsGet
            | Self::CompletionComplete
            | Self::LoggingSetLevel
            | Self::SubscriptionsListen
            | Self::TasksGet
            | Self::TasksUpdate
            | Self::TasksCancel
            | Self::Unknown(_) => false,
        }
    }
}

/// A client-to-server notification, by its method name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientNotification<'a> {
    /// `notifications/initialized`: the handshake is over.
    Initialized,
    /// `notifications/cancelled`: a request in flight is no longer wanted.
    Cancelled,
    /// `notifications/progress`: progress of a request this server sent the client.
    Progress,
    /// `notifications/roots/list_changed`.
    RootsListChanged,
    /// Any other name: logged and otherwise ignored.
    Unknown(&'a str),
}

impl<'a> ClientNotification<'a> {
    /// Every known notification (all but `Unknown`), for tests.
    #[cfg(test)]
    pub(crate) const KNOWN: [ClientNotification<'static>; 4] = [
        ClientNotification::Initialized,
        ClientNotification::Cancelled,
        ClientNotification::Progress,
        ClientNotification::RootsListChanged,
    ];

    /// The notification named `name`.
    pub(crate) fn parse(name: &'a str) -> Self {
        match name {
            "notifications/initialized" => Self::Initialized,
            "notifications/cancelled" => Self::Cancelled,
            "notifications/progress" => Self::Progress,
            "notifications/roots/list_changed" => Self::RootsListChanged,
            other => Self::Unknown(other),
        }
    }

    /// The notification's name on the wire (an unknown one as it came).
    pub(crate) fn as_str(self) -> &'a str {
        match self {
            Self::Initialized => "notifications/initialized",
            Self::Cancelled => "notifications/cancelled",
            Self::Progress => "notifications/progress",
            Self::RootsListChanged => "notifications/roots/list_changed",
            Self::Unknown(name) => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each known method's place in [`ClientMethod::KNOWN`]: a variant added to the enum does
    /// not compile here until it is given one (and so is listed, and tested).
    fn place(method: ClientMethod<'_>) -> Option<usize> {
        use ClientMethod as M;
        Some(match method {
            M::Initialize => 0,
            M::Ping => 1,
            M::ServerDiscover => 2,
            M::ToolsCall => 3,
            M::ToolsList => 4,
            M::ResourcesList => 5,
            M::ResourcesTemplatesList => 6,
            M::ResourcesRead => 7,
            M::ResourcesSubscribe => 8,
            M::ResourcesUnsubscribe => 9,
            M::PromptsList => 10,
            M::PromptsGet => 11,
            M::CompletionComplete => 12,
            M::LoggingSetLevel => 13,
            M::SubscriptionsListen => 14,
            M::TasksGet => 15,
            M::TasksUpdate => 16,
            M::TasksCancel => 17,
            M::Unknown(_) => return None,
        })
    }

    #[test]
    fn every_method_name_parses_back_to_its_method() {
        for (at, method) in ClientMethod::KNOWN.into_iter().enumerate() {
            assert_eq!(place(method), Some(at), "{method:?} listed out of place");
            assert_eq!(ClientMethod::parse(method.as_str()), method);
            assert!(!matches!(method, ClientMethod::Unknown(_)));
        }
        let names: std::collections::HashSet<&str> =
            ClientMethod::KNOWN.iter().map(|m| m.as_str()).collect();
        assert_eq!(names.len(), ClientMethod::KNOWN.len(), "a name used twice");
        for name in ["tools/cal", "Tools/call", "", "notifications/initialized"] {
            assert_eq!(ClientMethod::parse(name), ClientMethod::Unknown(name));
            assert_eq!(ClientMethod::parse(name).as_str(), name);
        }
    }

    #[test]
    fn every_notification_name_parses_back_to_its_notification() {
        for notification in ClientNotification::KNOWN {
            assert_eq!(
                ClientNotification::parse(notification.as_str()),
                notification
            );
        }
        for name in ["notifications/message", "initialize", ""] {
            assert_eq!(
                ClientNotification::parse(name),
                ClientNotification::Unknown(name)
            );
        }
    }

    #[test]
    fn only_the_handshake_and_discovery_come_before_initialize() {
        let before: Vec<&str> = ClientMethod::KNOWN
            .iter()
            .filter(|m| m.before_initialize())
            .map(|m| m.as_str())
            .collect();
        assert_eq!(before, ["initialize", "ping", "server/discover"]);
        assert!(!ClientMethod::Unknown("x").before_initialize());
    }
}
