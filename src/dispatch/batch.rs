//! Owns JSON-RPC batches (2025-03-26 only): their cap (`max_batch_size`), the bound on their
//! answer (`max_message_size`), and answering their messages one after another into one array.
//! Over either limit the client gets one -32600 error (id null) instead of the answers; the
//! refusals are logged at most once a second.

use super::{Dispatcher, Reply};
use crate::log_limit::LogLimiter;
use crate::protocol::jsonrpc::{self, RpcError};

/// Batches refused, logged at most once a second.
static BATCH_REFUSALS: LogLimiter = LogLimiter::per_second();

impl Dispatcher {
    pub(super) async fn handle_batch(&self, frame: &[u8]) {
        if jsonrpc::nested_deeper_than(frame, jsonrpc::MAX_DEPTH) {
            return self.send(jsonrpc::encode_error(None, &jsonrpc::too_deep()));
        }
        let text = match jsonrpc::utf8(frame) {
            Ok(text) => text,
            Err(error) => return self.send(jsonrpc::encode_error(None, &error)),
        };
        let max_items = self.server.max_batch_size;
        // At most `max_items` are kept; the rest are only counted.
        let batch = match jsonrpc::parse_batch(text, max_items) {
            Ok(batch) => batch,
            Err(e) => return self.send(jsonrpc::encode_error(None, &jsonrpc::parse_error(&e))),
        };
        match self.shared.revision() {
            Some(r) if r.accepts_batches() => {}
            Some(r) => {
                return self.send(jsonrpc::encode_error(
                    None,
                    &RpcError::invalid_request(format!(
                        "JSON-RPC batches are not supported in protocol revision {r} (only in 2025-03-26)"
                    )),
                ));
            }
            None => {
                return self.send(jsonrpc::encode_error(
                    None,
                    &RpcError::invalid_request(
                        "a batch cannot come before initialize (and initialize cannot be batched)",
                    ),
                ));
            }
        }
        if batch.total == 0 {
            return self.send(jsonrpc::encode_error(
                None,
                &RpcError::invalid_request("an empty batch is not a valid request"),
            ));
        }
        if batch.total > max_items {
            return self.refuse_batch(format!(
                "batch of {} messages exceeds max_batch_size ({max_items}); none of them was run: send smaller batches",
                batch.total
            ));
        }
        // The answer is built as the requests are answered, and given up as soon as it would
        // pass max_message_size: a batch of cheap requests with large answers cannot make the
        // node hold more than that.
        let limit = self.server.max_message_size;
        let mut out = Vec::new();
        for (done, item) in batch.items.iter().enumerate() {
            let answer = match self.reply_to(item.get().as_bytes(), false).await {
                Reply::Now(bytes) | Reply::Shed(bytes, _) => bytes,
                Reply::Later(fut) => fut.await,
                Reply::None => continue,
            };
            // The answer, its separator and the closing bracket.
            if out.len() + answer.len() + 2 > limit {
                drop(out);
                return self.refuse_batch(format!(
                    "the answer to this batch would exceed max_message_size ({limit} bytes): its first {} messages were run, the other {} were not: send smaller batches",
                    done + 1,
                    batch.total - done - 1
                ));
            }
            out.push(if out.is_empty() { b'[' } else { b',' });
            out.extend_from_slice(&answer);
        }
        if out.is_empty() {
            return;
        }
        out.push(b']');
        self.send(out);
    }

    /// Answers a batch with one -32600 error (id null), logged at a bounded rate.
    fn refuse_batch(&self, why: String) {
        if let Some(held) = BATCH_REFUSALS.allow() {
            tracing::warn!(session = %self.shared.id, reason = %why, refused_since_last_line = held, "batch refused");
        }
        self.send(jsonrpc::encode_error(None, &RpcError::invalid_request(why)));
    }
}
