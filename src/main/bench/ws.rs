//! Owns the WebSocket side of the load generator: `tools/call echo` as text messages on `/ws`
//! sessions (one per connection, initialized first), closed loop (`pipeline` outstanding) or
//! open loop (the parent's schedule and in-flight table; answers matched by id).

use super::{
    BatchWriter, DRAIN, INITIALIZE, INITIALIZED, InFlight, LoadPlan, LoadRun, Progress, Schedule,
    Shared, answer_id, request_line, run_with, settle,
};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;
pub(super) type Source = SplitStream<WebSocketStream<TcpStream>>;

/// The socket's sending half, sending each line of a batch as one text message.
pub(super) struct LineMessages(Sink);

impl BatchWriter for LineMessages {
    async fn send_batch(&mut self, batch: &str) -> std::io::Result<()> {
        for line in batch.lines() {
            self.0
                .feed(Message::Text(line.to_owned().into()))
                .await
                .map_err(std::io::Error::other)?;
        }
        self.0.flush().await.map_err(std::io::Error::other)
    }
}

/// The next text message; end of stream is an error (the server closed the session).
pub(super) async fn next_text(source: &mut Source) -> std::io::Result<String> {
    loop {
        match source.next().await {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Close(_))) | None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the session",
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(std::io::Error::other(e)),
        }
    }
}

/// Opens a WebSocket session on `stream` to the node at `addr` (`/ws`): the upgrade,
/// `initialize` and its answer, `notifications/initialized`; the socket's two halves.
pub(super) async fn open_ws_session(
    stream: TcpStream,
    addr: std::net::SocketAddr,
) -> std::io::Result<(LineMessages, Source)> {
    let url = format!("ws://{addr}/ws");
    let (socket, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .map_err(std::io::Error::other)?;
    let (sink, mut source) = socket.split();
    let mut sink = LineMessages(sink);
    sink.send_batch(INITIALIZE).await?;
    while answer_id(&next_text(&mut source).await?) != Some(0) {}
    sink.send_batch(INITIALIZED).await?;
    Ok((sink, source))
}

async fn drive_ws(
    stream: TcpStream,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> std::io::Result<()> {
    let stop_at = recorder.borrow().stop_at;
    let (mut sink, mut source) = open_ws_session(stream, plan.addr).await?;
    let text = "x".repeat(plan.payload);
    if plan.rate.is_some() {
        let flight = InFlight::default();
        let schedule = Schedule::of(&plan, index, stop_at);
        let writer = flight.write_on_schedule(&mut sink, schedule, &recorder, |k, batch| {
            batch.push_str(&request_line(k + 1, plan.tool, &text))
        });
        let reader = async {
            while flight.wait_for_one().await {
                let read =
                    tokio::time::timeout_at((stop_at + DRAIN).into(), next_text(&mut source));
                let Ok(read) = read.await else {
                    let left = flight.outstanding.borrow().len() as u64;
                    recorder.borrow_mut().unanswered(left);
                    return Ok(());
                };
                let message = read?;
                let done = Instant::now();
                settle(
                    &mut flight.outstanding.borrow_mut(),
                    &message,
                    done,
                    &recorder,
                );
            }
            Ok::<_, std::io::Error>(())
        };
        let (written, read) = tokio::join!(writer, reader);
        return written.and(read);
    }
    let mut outstanding: VecDeque<(u64, Instant)> = VecDeque::with_capacity(plan.pipeline);
    let mut next_id = 1u64;
    let mut batch = String::new();
    loop {
        let now = Instant::now();
        if now < stop_at {
            batch.clear();
            while outstanding.len() < plan.pipeline {
                batch.push_str(&request_line(next_id, plan.tool, &text));
                outstanding.push_back((next_id, now));
                next_id += 1;
            }
            if !batch.is_empty() {
                sink.send_batch(&batch).await?;
            }
        } else if outstanding.is_empty() {
            break;
        }
        let read = tokio::time::timeout_at((stop_at + DRAIN).into(), next_text(&mut source));
        let Ok(read) = read.await else {
            // A server that stopped answering: what it owes is unanswered.
            recorder.borrow_mut().unanswered(outstanding.len() as u64);
            return Ok(());
        };
        let message = read?;
        settle(&mut outstanding, &message, Instant::now(), &recorder);
    }
    Ok(())
}

/// Like [`super::run_load`], over WebSocket sessions on `/ws`.
pub(crate) fn run_ws_load(plan: LoadPlan, progress: Arc<Progress>) -> std::io::Result<LoadRun> {
    run_with(plan, progress, |stream, plan, index, recorder| {
        Box::pin(drive_ws(stream, plan, index, recorder))
    })
}
