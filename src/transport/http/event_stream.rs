//! Owns the SSE event streams of Streamable HTTP sessions: each stream's events with their ids
//! (`<stream>-<seq>`), a bounded replay buffer for `Last-Event-ID` resumption, the cut a handler
//! makes when it ends its response early, and the bytes of each event as it is written.

use crate::locks::lock;
use crate::outbound::OutboundReceiver;
use axum::body::Bytes;
use futures::StreamExt as _;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A stream of SSE events with a bounded replay buffer; responses attach to it and read.
pub(super) struct EventStream {
    id: u64,
    state: Mutex<StreamState>,
    changed: Notify,
}

struct StreamState {
    /// (seq, JSON) — seq starts at 1; 0 is the priming event. Each frame as it came (every read
    /// writes the event around it anew, so a shared `Bytes` would only add an allocation).
    events: VecDeque<(u64, Vec<u8>)>,
    next_seq: u64,
    /// No more events will come.
    done: bool,
    /// Bumped when a handler ends the current response early.
    generation: u64,
    cut_at: u64,
}

impl EventStream {
    pub(super) fn new(id: u64) -> Arc<Self> {
        Arc::new(Self {
            id,
            state: Mutex::new(StreamState {
                events: VecDeque::new(),
                next_seq: 1,
                done: false,
                generation: 0,
                cut_at: 0,
            }),
            changed: Notify::new(),
        })
    }

    /// A stream restored after a restart: its events are gone, its numbering goes on after
    /// `last_seq` (so no id the client saw is used again).
    pub(super) fn resumed(id: u64, last_seq: u64) -> Arc<Self> {
        let stream = Self::new(id);
        lock(&stream.state).next_seq = last_seq.saturating_add(1);
        stream
    }

    /// Moves the numbering past `seq` (a restored stream, asked to resume after an event the
    /// store had not yet recorded: the ids after a kill -9 are not known).
    pub(super) fn skip_past(&self, seq: u64) {
        let mut state = lock(&self.state);
        if state.next_seq <= seq {
            state.next_seq = seq.saturating_add(1);
        }
    }

    pub(super) fn push(&self, frame: Vec<u8>, keep: usize) {
        let mut state = lock(&self.state);
        if frame.is_empty() {
            state.generation += 1;
            state.cut_at = state.next_seq;
        } else {
            let seq = state.next_seq;
            state.next_seq += 1;
            // The frame itself, not a copy: frames are JSON, so UTF-8; one that is not (from a
            // misbehaving plugin) is repaired, as an event stream is text.
            let data = match String::from_utf8(frame) {
                Ok(text) => text.into_bytes(),
                Err(e) => String::from_utf8_lossy(e.as_bytes())
                    .into_owned()
                    .into_bytes(),
            };
            state.events.push_back((seq, data));
            while state.events.len() > keep {
                state.events.pop_front();
            }
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Whether no more events will come.
    pub(super) fn is_done(&self) -> bool {
        lock(&self.state).done
    }

    /// The seq of the newest event (0 before any).
    pub(super) fn last_seq(&self) -> u64 {
        lock(&self.state).next_seq - 1
    }

    pub(super) fn finish(&self) {
        lock(&self.state).done = true;
        self.changed.notify_waiters();
    }

    /// Feeds the stream from a queue until every sender is gone.
    pub(super) fn feed(self: &Arc<Self>, mut queue: OutboundReceiver, keep: usize) {
        let stream = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(frame) = queue.rx.recv().await {
                let len = frame.len();
                stream.push(frame, keep);
                queue.level().written(1, len);
            }
            stream.finish();
        });
    }

    /// SSE events from after `after` (a seq), ending at the stream's end or — for a response
    /// attached at `cut_generation` — when a handler ends it early. With `prime`, a priming event
    /// (id `<stream>-0`, `retry`, empty data) comes first.
    pub(super) fn events(
        self: Arc<Self>,
        after: u64,
        prime: Option<Duration>,
        cut_generation: Option<u64>,
    ) -> impl futures::Stream<Item = Bytes> + Send + 'static {
        enum Next {
            Event(Bytes, u64),
            End,
            Wait,
        }
        let primed = prime.map(|retry| {
            let mut event = Vec::new();
            write_priming_event(&mut event, self.id, retry);
            Bytes::from(event)
        });
        let follow = futures::stream::unfold((self, after), move |(stream, cursor)| async move {
            loop {
                let notified = stream.changed.notified();
                let next = {
                    let state = lock(&stream.state);
                    let cut = cut_generation.is_some_and(|g| g != state.generation);
                    match state.events.iter().find(|(seq, _)| *seq > cursor) {
                        Some((seq, _)) if cut && *seq >= state.cut_at => Next::End,
                        Some((seq, data)) => {
                            let size = message_event_len(stream.id, *seq, data.len());
                            let mut event = Vec::with_capacity(size);
                            write_message_event(&mut event, stream.id, *seq, data);
                            Next::Event(Bytes::from(event), *seq)
                        }
                        None if state.done || cut => Next::End,
                        None => Next::Wait,
                    }
                };
                match next {
                    Next::Wait => notified.await,
                    Next::End => return None,
                    Next::Event(event, seq) => {
                        drop(notified);
                        return Some((event, (stream, seq)));
                    }
                }
            }
        });
        futures::stream::iter(primed).chain(follow)
    }

    /// A finished stream's whole response, the bytes `events(0, Some(retry), Some(0))` would
    /// yield, to send at once with a length instead of chunk by chunk; `None` while unfinished.
    pub(super) fn finished_body(&self, retry: Duration) -> Option<Vec<u8>> {
        let state = lock(&self.state);
        if !state.done {
            return None;
        }
        let cut = state.generation != 0;
        let sent = state
            .events
            .iter()
            .take_while(|(seq, _)| !cut || *seq < state.cut_at);
        // The exact size: the body is written without growing.
        let size = priming_event_len(self.id, retry)
            + sent
                .clone()
                .map(|(seq, data)| message_event_len(self.id, *seq, data.len()))
                .sum::<usize>();
        let mut body = Vec::with_capacity(size);
        write_priming_event(&mut body, self.id, retry);
        for (seq, data) in sent {
            write_message_event(&mut body, self.id, *seq, data);
        }
        Some(body)
    }
}

/// The priming event of a stream's response: id `<stream>-0`, the `retry`, empty data.
fn write_priming_event(out: &mut Vec<u8>, stream: u64, retry: Duration) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(number.format(stream).as_bytes());
    out.extend_from_slice(b"-0\nretry: ");
    out.extend_from_slice(number.format(retry.as_millis()).as_bytes());
    out.extend_from_slice(b"\ndata: \n\n");
}

/// The length of [`write_priming_event`]'s output.
fn priming_event_len(stream: u64, retry: Duration) -> usize {
    let mut number = itoa::Buffer::new();
    let digits = number.format(stream).len() + number.format(retry.as_millis()).len();
    "id: ".len() + "-0\nretry: ".len() + "\ndata: \n\n".len() + digits
}

/// The length of [`write_message_event`]'s output.
fn message_event_len(stream: u64, seq: u64, data: usize) -> usize {
    let mut number = itoa::Buffer::new();
    let digits = number.format(stream).len() + number.format(seq).len();
    "id: -".len() + "\nevent: message\ndata: ".len() + "\n\n".len() + digits + data
}

/// One JSON-RPC message as an SSE event, its id `<stream>-<seq>`.
fn write_message_event(out: &mut Vec<u8>, stream: u64, seq: u64, data: &[u8]) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(number.format(stream).as_bytes());
    out.push(b'-');
    out.extend_from_slice(number.format(seq).as_bytes());
    out.extend_from_slice(b"\nevent: message\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lengths_are_what_is_written() {
        for (stream, seq, data) in [(0, 1, &b""[..]), (7, 12, b"{}"), (123_456, 99_999, b"x")] {
            let mut out = Vec::new();
            write_message_event(&mut out, stream, seq, data);
            assert_eq!(message_event_len(stream, seq, data.len()), out.len());
            for retry in [Duration::ZERO, Duration::from_millis(1500)] {
                let mut out = Vec::new();
                write_priming_event(&mut out, stream, retry);
                assert_eq!(priming_event_len(stream, retry), out.len());
            }
        }
    }

    /// What `events(0, Some(retry), Some(0))` yields, collected.
    async fn streamed(stream: &Arc<EventStream>, retry: Duration) -> Vec<u8> {
        let events: Vec<Bytes> = Arc::clone(stream)
            .events(0, Some(retry), Some(0))
            .collect()
            .await;
        events.concat()
    }

    #[tokio::test]
    async fn a_finished_stream_sent_whole_is_the_same_bytes_as_streamed() {
        let retry = Duration::from_millis(1500);
        let plain = EventStream::new(7);
        plain.push(
            br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#.to_vec(),
            8,
        );
        plain.push(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_vec(), 8);
        assert!(plain.finished_body(retry).is_none(), "not finished yet");
        plain.finish();
        let whole = plain.finished_body(retry).unwrap();
        assert_eq!(whole, streamed(&plain, retry).await);
        assert!(whole.starts_with(
            b"id: 7-0\nretry: 1500\ndata: \n\nid: 7-1\nevent: message\ndata: {\"jsonrpc\""
        ));
        assert!(whole.ends_with(
            b"id: 7-2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
        ));

        // A frame that is not UTF-8 goes out repaired: an event stream is text.
        let broken = EventStream::new(9);
        broken.push(b"{\"a\":\"\xff\"}".to_vec(), 8);
        broken.finish();
        let whole = broken.finished_body(retry).unwrap();
        assert!(std::str::from_utf8(&whole).is_ok_and(|text| text.contains("\u{fffd}")));

        // A handler ended the response early: what came after the cut is for the resumed GET.
        let cut = EventStream::new(8);
        cut.push(br#"{"a":1}"#.to_vec(), 8);
        cut.push(Vec::new(), 8);
        cut.push(br#"{"b":2}"#.to_vec(), 8);
        cut.finish();
        let whole = cut.finished_body(retry).unwrap();
        assert_eq!(whole, streamed(&cut, retry).await);
        assert!(!String::from_utf8_lossy(&whole).contains("\"b\""));
    }
}
