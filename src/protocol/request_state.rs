//! Owns `requestState` of revision 2026-07-28 multi-round requests (SEP-2322): what the node
//! puts in it between rounds, and its integrity.
//!
//! The client must echo the state unchanged and may not read it; the node cannot trust it
//! either, so every state is sealed: `<payload>.<tag>`, both base64url, the tag an
//! HMAC-SHA256 under a node secret over the payload *and* the request it was issued for (its
//! method, its tool or prompt name or resource URI, and its arguments in canonical JSON). A
//! state that was changed, that another request was issued, that another node (or this node
//! before a restart) sealed, or that is older than [`LIFETIME`] is refused with -32602.
//!
//! The payload carries the answers the client gave in earlier rounds (so a handler run again in
//! round three still finds round one's answer, though the client only sends round two's) and
//! whatever the handler chose to keep (`RequestContext::set_request_state`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// How long a sealed state is accepted after it was issued.
pub(crate) const LIFETIME: Duration = Duration::from_secs(3600);

/// What a state carries from one round to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CarriedState {
    /// The answers the client gave in earlier rounds, by input key.
    #[serde(default, rename = "a")]
    pub(crate) answers: HashMap<String, Value>,
    /// What the handler kept for its next round.
    #[serde(default, rename = "s", skip_serializing_if = "Option::is_none")]
    pub(crate) handler: Option<Value>,
    /// When the state stops being accepted, in seconds since the Unix epoch.
    #[serde(default, rename = "e")]
    pub(crate) expires: u64,
}

/// The request a state is bound to: its method, its tool or prompt name (or resource URI), and
/// its arguments (raw as sent; made canonical only when a state is sealed or opened).
#[derive(Debug, Default, Clone)]
pub(crate) struct Subject {
    /// The method.
    pub(crate) method: String,
    /// `name` (`tools/call`, `prompts/get`) or `uri` (`resources/read`).
    pub(crate) name: Option<String>,
    /// `arguments`, raw.
    pub(crate) arguments: Option<Box<RawValue>>,
}

impl Subject {
    /// The bytes the tag covers besides the payload: method, name and canonical arguments,
    /// each ended by a NUL (none of them holds one unescaped).
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(self.method.as_bytes());
        out.push(0);
        out.extend_from_slice(self.name.as_deref().unwrap_or_default().as_bytes());
        out.push(0);
        // serde_json's maps keep their keys sorted: a re-encoded value is canonical, whatever
        // order (and spacing) the client wrote the arguments in.
        let arguments = self
            .arguments
            .as_deref()
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
            .unwrap_or(Value::Null);
        let _ = serde_json::to_writer(&mut out, &arguments);
        out.push(0);
        out
    }
}

/// Why a `requestState` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StateRefused {
    /// Not `<payload>.<tag>` in base64url, or a payload that is not a state.
    #[error("it is not a state this server issued")]
    Malformed,
    /// The tag does not match: changed, issued for another request, or by another node.
    #[error("its integrity check failed (changed, issued for another request, or by another node)")]
    Forged,
    /// Issued longer ago than the state's lifetime.
    #[error("it has expired")]
    Expired,
}

/// The node's secret: 256 random bits drawn once per process.
fn node_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        if let Err(error) = getrandom::fill(&mut key) {
            // Not expected on any supported system; the key then comes from the clock and the
            // process id, and says so.
            tracing::warn!(%error, "no system randomness for the requestState key");
            let seed = format!("{:?}{}", SystemTime::now(), std::process::id());
            let digest = <Sha256 as sha2::Digest>::digest(seed.as_bytes());
            key.copy_from_slice(&digest);
        }
        key
    })
}

fn mac_of(payload: &[u8], subject: &Subject) -> HmacSha256 {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(node_key())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(&subject.bytes());
    mac.update(payload);
    mac
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seals `state` for `subject`, valid for [`LIFETIME`] from now.
pub(crate) fn seal(mut state: CarriedState, subject: &Subject) -> String {
    state.expires = now_secs() + LIFETIME.as_secs();
    let payload = serde_json::to_vec(&state).unwrap_or_default();
    let tag = mac_of(&payload, subject).finalize().into_bytes();
    let mut out = URL_SAFE_NO_PAD.encode(&payload);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut out);
    out
}

/// Opens a state the client echoed for `subject`: its contents, or why it is refused.
pub(crate) fn open(token: &str, subject: &Subject) -> Result<CarriedState, StateRefused> {
    let (payload, tag) = token.split_once('.').ok_or(StateRefused::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| StateRefused::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| StateRefused::Malformed)?;
    // Compared in constant time.
    mac_of(&payload, subject)
        .verify_slice(&tag)
        .map_err(|_| StateRefused::Forged)?;
    let state: CarriedState =
        serde_json::from_slice(&payload).map_err(|_| StateRefused::Malformed)?;
    if state.expires < now_secs() {
        return Err(StateRefused::Expired);
    }
    Ok(state)
}

/// The core bench's pair: a round's state sealed and opened again (HMAC-SHA256 over the state
/// and its request) beside the same state encoded and decoded with no integrity at all, what a
/// server that trusted its clients would do.
pub(crate) fn bench_pairs() -> Vec<crate::core_bench::pair::Pair> {
    use std::hint::black_box;
    use std::sync::Arc;
    let state = CarriedState {
        answers: HashMap::from([(
            "user_name".to_owned(),
            serde_json::json!({"action": "accept", "content": {"name": "Alice"}}),
        )]),
        handler: Some(serde_json::json!({"round": 2})),
        expires: 0,
    };
    let subject = Arc::new(Subject {
        method: "tools/call".into(),
        name: Some("test_input_required_result_multi_round".into()),
        arguments: RawValue::from_string(r#"{"a":1}"#.into()).ok(),
    });
    let plain = state.clone();
    vec![crate::core_bench::pair::Pair {
        name: "request_state_seal_open",
        ours: (
            "request_state::seal + open (HMAC-SHA256, bound to the request)",
            Arc::new(move || {
                let token = seal(black_box(state.clone()), &subject);
                black_box(open(black_box(&token), &subject).is_ok());
            }),
        ),
        baseline: (
            "serde_json to_vec + from_slice of the same state, unprotected",
            Arc::new(move || {
                let bytes = serde_json::to_vec(black_box(&plain)).unwrap_or_default();
                black_box(serde_json::from_slice::<CarriedState>(black_box(&bytes)).is_ok());
            }),
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(arguments: &str) -> Subject {
        Subject {
            method: "tools/call".into(),
            name: Some("t".into()),
            arguments: Some(RawValue::from_string(arguments.into()).unwrap()),
        }
    }

    #[test]
    fn a_sealed_state_opens_for_its_request_only_and_not_once_changed() {
        let state = CarriedState {
            answers: HashMap::from([("k".to_owned(), serde_json::json!({"action": "accept"}))]),
            handler: Some(serde_json::json!({"round": 2})),
            expires: 0,
        };
        let token = seal(state.clone(), &subject(r#"{"a":1,"b":[2]}"#));
        let opened = open(&token, &subject(r#"{ "b": [2], "a": 1 }"#)).unwrap();
        assert_eq!(
            opened.answers, state.answers,
            "key order and spacing do not matter"
        );
        assert_eq!(opened.handler, state.handler);
        assert_eq!(
            open(&token, &subject(r#"{"a":2,"b":[2]}"#)),
            Err(StateRefused::Forged),
            "other arguments"
        );
        let other_tool = Subject {
            name: Some("u".into()),
            ..subject(r#"{"a":1,"b":[2]}"#)
        };
        assert_eq!(open(&token, &other_tool), Err(StateRefused::Forged));
        let original = subject(r#"{"a":1,"b":[2]}"#);
        // What the suite sends: a longer tag (refused as forged, or as not base64url).
        assert!(matches!(
            open(&format!("{token}-TAMPERED"), &original),
            Err(StateRefused::Forged | StateRefused::Malformed)
        ));
        let (payload, tag) = token.split_once('.').unwrap();
        let mut changed = URL_SAFE_NO_PAD.decode(payload).unwrap();
        changed[3] ^= 1;
        let changed = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(changed));
        assert_eq!(open(&changed, &original), Err(StateRefused::Forged));
        assert_eq!(open("nonsense", &original), Err(StateRefused::Malformed));
    }

    #[test]
    fn an_expired_state_is_refused() {
        let subject = subject("{}");
        let payload = serde_json::to_vec(&CarriedState {
            expires: now_secs() - 1,
            ..CarriedState::default()
        })
        .unwrap();
        let tag = mac_of(&payload, &subject).finalize().into_bytes();
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        );
        assert_eq!(open(&token, &subject), Err(StateRefused::Expired));
    }
}
