//! What a handler gets with each request ([`RequestContext`]): logging, progress, and requests
//! to the client (sampling, elicitation, roots, ping) with their errors
//! ([`ClientRequestError`]); for a stateless (2026-07-28) request, its envelope and input rounds
//! ([`StatelessRequest`], [`InputRounds`]) stand in for the session.

use super::SessionShared;
use crate::locks::lock;
use crate::outbound::Outbound;
use crate::protocol::jsonrpc::{self, RequestId, RpcError};
use crate::protocol::messages::{ClientCapabilities, LogLevel};
use crate::protocol::modern::Envelope;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Why a request to the client failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientRequestError {
    /// The client did not declare the capability this request needs.
    #[error("the client does not support {0} (it did not declare the `{0}` capability)")]
    NotSupported(&'static str),
    /// No answer in time; a `notifications/cancelled` was sent.
    #[error("the client did not answer {method} within {timeout:?}")]
    Timeout {
        /// The method.
        method: String,
        /// The limit.
        timeout: Duration,
    },
    /// The client answered with an error.
    #[error("the client refused {method}: {error}")]
    Refused {
        /// The method.
        method: String,
        /// Its error.
        error: RpcError,
    },
    /// The connection closed first.
    #[error("the client disconnected")]
    Disconnected,
    /// A stateless (2026-07-28) request cannot send the client requests of its own; its input
    /// requests travel in an `input_required` result instead, and the client retries.
    #[error("{0} cannot be asked of the client in revision 2026-07-28 (no back channel)")]
    NoBackChannel(&'static str),
    /// The client's answer is needed first: the request ends with `resultType: input_required`
    /// and is run again when the client retries with the answer.
    #[error("waiting for the client's answer to {0} (input_required)")]
    InputRequired(String),
}

/// The input requests of one stateless request (2026-07-28 multi-round-trip requests): each
/// request to the client gets a key by call order; an answer the client sent with its retry is
/// used, a missing one is recorded and ends the request with `input_required`.
#[derive(Debug, Default)]
pub struct InputRounds {
    next: AtomicU64,
    requested: Mutex<Vec<(String, Value)>>,
}

impl InputRounds {
    /// The input requests recorded in this round, in call order.
    pub(crate) fn requested(&self) -> Vec<(String, Value)> {
        lock(&self.requested).clone()
    }
}

/// A `notifications/progress` frame, written directly (a handler reporting progress sends one
/// per step; the generic encoder spent more on its serializer than on the bytes). The same bytes
/// as `jsonrpc::encode_notification` with the params in this order (unit-tested).
fn encode_progress(
    token: &RawValue,
    progress: f64,
    total: Option<f64>,
    message: Option<&str>,
) -> Vec<u8> {
    const HEAD: &[u8] =
        br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"#;
    let mut frame = Vec::with_capacity(HEAD.len() + token.get().len() + 64);
    frame.extend_from_slice(HEAD);
    frame.extend_from_slice(token.get().as_bytes());
    frame.extend_from_slice(br#","progress":"#);
    write_number(&mut frame, progress);
    if let Some(total) = total {
        frame.extend_from_slice(br#","total":"#);
        write_number(&mut frame, total);
    }
    if let Some(message) = message {
        frame.extend_from_slice(br#","message":"#);
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut frame, message);
    }
    frame.extend_from_slice(b"}}");
    frame
}

/// A progress number as serde_json writes it. Whole numbers (what most handlers count in) are
/// written as an integer and `.0`, the same text, without the general float formatter (~190
/// instructions a number); the rest, `-0.0` and numbers from 1e15 on (written in exponent form)
/// included, go through serde_json.
fn write_number(frame: &mut Vec<u8>, value: f64) {
    const WHOLE_BELOW: f64 = 1e15;
    if value.fract() == 0.0
        && value.abs() < WHOLE_BELOW
        && !(value == 0.0 && value.is_sign_negative())
    {
        // Exact: a whole number below 1e15 fits an i64 with room to spare.
        frame.extend_from_slice(itoa::Buffer::new().format(value as i64).as_bytes());
        frame.extend_from_slice(b".0");
    } else {
        // Writing to a Vec cannot fail; a number that is not finite is written as `null`.
        let _ = serde_json::to_writer(frame, &value);
    }
}

/// What a stateless request carries instead of a session: its envelope and its input rounds.
#[derive(Debug)]
pub struct StatelessRequest {
    /// The envelope of the request.
    pub envelope: Envelope,
    /// Its input requests.
    pub(crate) rounds: InputRounds,
    /// What the handler kept in the previous round, from the verified `requestState`.
    pub(crate) state_received: Option<Value>,
    /// What the handler keeps for the next round (sealed into `requestState`).
    pub(crate) state_kept: Mutex<Option<Value>>,
    /// A capability the handler needed and the client did not declare: the request ends with
    /// -32021 naming it (the revision's MissingRequiredClientCapabilityError).
    pub(crate) missing_capability: Mutex<Option<&'static str>>,
}

/// A stateless request's state, shared by its contexts (one allocation per request).
pub type Stateless = Arc<StatelessRequest>;

/// What a handler gets with each request: the session to log to, report progress on, and ask the
/// client things.
#[derive(Debug, Clone)]
pub struct RequestContext {
    session: Arc<SessionShared>,
    progress_token: Option<Box<RawValue>>,
    /// Where this request's messages go: the connection, or the request's own HTTP stream.
    sink: Outbound,
    /// Set for a 2026-07-28 request: capabilities, log level and input come from it.
    stateless: Option<Stateless>,
    /// Who the request comes from, when its transport asked (HTTP with `[auth]`).
    principal: Option<Arc<crate::auth::Principal>>,
}

impl RequestContext {
    /// A context for a request in `session`, with its progress token if it had one; its
    /// notifications and requests to the client go to `sink`.
    pub(crate) fn new(
        session: Arc<SessionShared>,
        progress_token: Option<Box<RawValue>>,
        sink: Outbound,
    ) -> Self {
        Self {
            session,
            progress_token,
            sink,
            stateless: None,
            principal: None,
        }
    }

    /// The same context for a request from `principal`.
    pub(crate) fn with_principal(mut self, principal: Option<Arc<crate::auth::Principal>>) -> Self {
        self.principal = principal;
        self
    }

    /// Who the request comes from: its access token's subject, scopes and client, when the
    /// transport asked for one (HTTP with `[auth]` or `http.bearer_token`); `None` otherwise.
    pub fn principal(&self) -> Option<&Arc<crate::auth::Principal>> {
        self.principal.as_ref()
    }

    /// The same context for a stateless (2026-07-28) request.
    pub(crate) fn with_stateless(mut self, stateless: Option<Stateless>) -> Self {
        self.stateless = stateless;
        self
    }

    /// Ends this request's HTTP response stream early; the client reconnects with
    /// `Last-Event-ID` and receives the rest (including the answer). No effect on other transports.
    pub fn close_stream(&self) {
        if self.sink.is_resumable_stream() {
            self.sink.close();
        }
    }

    /// The session.
    pub fn session(&self) -> &Arc<SessionShared> {
        &self.session
    }

    /// Sends `notifications/message` if `level` is at or above the session's level.
    pub fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        let least = match &self.stateless {
            // Logging is opt-in per request at 2026-07-28.
            Some(s) => match s.envelope.log_level {
                Some(least) => least,
                None => return,
            },
            None => self.session.log_level(),
        };
        if level < least {
            return;
        }
        #[derive(Serialize)]
        struct Params<'a> {
            level: LogLevel,
            #[serde(skip_serializing_if = "Option::is_none")]
            logger: Option<&'a str>,
            data: Value,
        }
        self.sink.send(jsonrpc::encode_notification(
            "notifications/message",
            &Params {
                level,
                logger,
                data,
            },
        ));
    }

    /// Whether the request carried a progress token.
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Sends `notifications/progress` (only when the request carried `_meta.progressToken`).
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let Some(token) = &self.progress_token else {
            return;
        };
        self.sink
            .send(encode_progress(token, progress, total, message));
    }

    /// `sampling/createMessage` (needs the client's `sampling` capability).
    pub async fn create_message(&self, params: Value) -> Result<Value, ClientRequestError> {
        self.require(|c| c.sampling.is_some(), "sampling")?;
        self.request_client("sampling/createMessage", params).await
    }

    /// `elicitation/create` (needs the client's `elicitation` capability).
    pub async fn elicit(&self, params: Value) -> Result<Value, ClientRequestError> {
        self.require(|c| c.elicitation.is_some(), "elicitation")?;
        self.request_client("elicitation/create", params).await
    }

    /// `roots/list` (needs the client's `roots` capability).
    pub async fn list_roots(&self) -> Result<Value, ClientRequestError> {
        self.require(|c| c.roots.is_some(), "roots")?;
        self.request_client("roots/list", serde_json::json!({}))
            .await
    }

    /// Asks the client `method` under a key the handler names (`elicitation/create`,
    /// `sampling/createMessage` and `roots/list` need the client's capability for it). In a
    /// stateless request the key names its entry in `inputRequests` and the answer in the retry's
    /// `inputResponses` (or in the node's `requestState`, for an earlier round's answer): ask
    /// everything a round needs before giving up on the first missing answer, so that the client
    /// gets all of it in one `input_required` result. In a session the request is sent at once.
    pub async fn ask(
        &self,
        key: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientRequestError> {
        match method {
            "sampling/createMessage" => self.require(|c| c.sampling.is_some(), "sampling")?,
            "elicitation/create" => self.require(|c| c.elicitation.is_some(), "elicitation")?,
            "roots/list" => self.require(|c| c.roots.is_some(), "roots")?,
            _ => {}
        }
        match &self.stateless {
            Some(stateless) => Self::input_keyed(stateless, key.to_owned(), method, params),
            None => self.request_client(method, params).await,
        }
    }

    /// Whether the client declared `capability` (`sampling`, `elicitation` or `roots`), in this
    /// request's envelope or at the session's `initialize`.
    pub fn client_declares(&self, capability: &str) -> bool {
        let has = |c: &ClientCapabilities| match capability {
            "sampling" => c.sampling.is_some(),
            "elicitation" => c.elicitation.is_some(),
            "roots" => c.roots.is_some(),
            _ => false,
        };
        self.require(has, "").is_ok()
    }

    /// What this handler kept in the previous round of a stateless request
    /// ([`RequestContext::set_request_state`]), the node having checked its integrity; `None` in
    /// the first round and in a session.
    pub fn request_state(&self) -> Option<&Value> {
        self.stateless.as_ref()?.state_received.as_ref()
    }

    /// Keeps `state` for the next round of a stateless request: sealed by the node into the
    /// `requestState` of the `input_required` result, given back by
    /// [`RequestContext::request_state`] when the client retries. Ignored in a session.
    pub fn set_request_state(&self, state: Value) {
        if let Some(stateless) = &self.stateless {
            *lock(&stateless.state_kept) = Some(state);
        }
    }

    /// `ping` to the client.
    pub async fn ping_client(&self) -> Result<(), ClientRequestError> {
        if self.stateless.is_some() {
            return Err(ClientRequestError::NoBackChannel("ping"));
        }
        self.request_client("ping", serde_json::json!({}))
            .await
            .map(drop)
    }

    fn require(
        &self,
        has: impl Fn(&ClientCapabilities) -> bool,
        capability: &'static str,
    ) -> Result<(), ClientRequestError> {
        let declared = match &self.stateless {
            Some(s) => has(&s.envelope.capabilities),
            None => self
                .session
                .negotiated()
                .is_some_and(|n| has(&n.capabilities)),
        };
        if declared {
            return Ok(());
        }
        if let Some(stateless) = &self.stateless
            && !capability.is_empty()
        {
            lock(&stateless.missing_capability).get_or_insert(capability);
        }
        Err(ClientRequestError::NotSupported(capability))
    }

    /// A stateless request's request to the client: the answer from the client's retry, or
    /// recorded as an input request.
    fn input(
        stateless: &Stateless,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientRequestError> {
        let n = stateless.rounds.next.fetch_add(1, Ordering::Relaxed);
        Self::input_keyed(stateless, format!("input-{n}"), method, params)
    }

    /// A stateless request's request to the client under `key`: the answer the client sent
    /// (or the node carried in `requestState`), or recorded as an input request.
    fn input_keyed(
        stateless: &Stateless,
        key: String,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientRequestError> {
        // An answer is a result object: anything else is asked again.
        if let Some(answer) = stateless.envelope.input_responses.get(&key)
            && answer.is_object()
        {
            return Ok(answer.clone());
        }
        lock(&stateless.rounds.requested).push((
            key.clone(),
            serde_json::json!({ "method": method, "params": params }),
        ));
        Err(ClientRequestError::InputRequired(key))
    }

    /// Sends a request to the client and waits (at most the configured timeout) for its answer.
    pub async fn request_client(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Value, ClientRequestError> {
        if let Some(stateless) = &self.stateless {
            return Self::input(stateless, method, params);
        }
        let shared = &self.session;
        let n = shared.next_request.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("erlmcp-{n}"));
        let (tx, rx) = oneshot::channel();
        lock(&shared.pending).insert(id.clone(), tx);
        if !self
            .sink
            .send(jsonrpc::encode_request(&id, method, &params))
        {
            lock(&shared.pending).remove(&id);
            return Err(ClientRequestError::Disconnected);
        }
        match tokio::time::timeout(shared.client_request_timeout, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(ClientRequestError::Refused {
                method: method.to_owned(),
                error,
            }),
            Ok(Err(_)) => Err(ClientRequestError::Disconnected),
            Err(_) => {
                lock(&shared.pending).remove(&id);
                self.sink.send(jsonrpc::encode_notification(
                    "notifications/cancelled",
                    &serde_json::json!({"requestId": id, "reason": "timed out"}),
                ));
                Err(ClientRequestError::Timeout {
                    method: method.to_owned(),
                    timeout: shared.client_request_timeout,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_frames_are_what_the_generic_encoder_writes() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Params<'a> {
            progress_token: &'a RawValue,
            progress: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            total: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
        }
        for value in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            42.0,
            0.5,
            -2.25,
            1e14,
            999_999_999_999_999.0,
            1e15,
            -1e15,
            1e16,
            1e21,
            1e-7,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let mut written = Vec::new();
            write_number(&mut written, value);
            assert_eq!(written, serde_json::to_vec(&value).unwrap(), "{value:e}");
        }
        let tokens = [r#""abc""#, "7", r#""q\"uote""#];
        let cases: [(f64, Option<f64>, Option<&str>); 5] = [
            (1.0, Some(1.0), None),
            (0.5, None, Some("half \"way\"\n")),
            (f64::NAN, Some(f64::INFINITY), Some("")),
            (3.0e20, Some(-0.0), Some("é ✓")),
            (42.0, None, None),
        ];
        for token in tokens {
            let token = RawValue::from_string(token.to_owned()).unwrap();
            for (progress, total, message) in cases {
                let expected = jsonrpc::encode_notification(
                    "notifications/progress",
                    &Params {
                        progress_token: &token,
                        progress,
                        total,
                        message,
                    },
                );
                let written = encode_progress(&token, progress, total, message);
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
    }
}
