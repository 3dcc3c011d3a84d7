//! Owns the chaos profile's load: open-loop `tools/call` over TCP as `bench tcp --rate` sends it,
//! or over Streamable HTTP sessions ([`Wire`]), except that a connection the node drops (its
//! actor killed, its supervisor or the whole transport restarted, the node killed) is opened
//! again, and that every [`WRITE_EVERY`]th request is a `kv_put` of the demo toolset whose
//! acknowledgement goes into a [`Ledger`]. Over TCP the reopened connection initializes a new
//! session; over HTTP connection i opens its session on node i mod N (round robin, as a load
//! balancer spreads them), and a dropped connection is opened again to the first node that
//! accepts it, from its own on, **with the same `Mcp-Session-Id`** (the cluster takes the
//! session over from its replica when its node is gone); only a 404 (the session is unknown
//! there) makes it initialize a new one (`sessions_reinitialized`). The requests in flight
//! when a connection drops (or gets an HTTP error) are failed (each once); those due while it
//! is down are sent when it is back, timed from when they were due, so the outage shows in the
//! latency. [`read_back`] asks the nodes for every acknowledged write: one no node holds with
//! its value is a lost write.

use crate::bench::http::{http_post, open_made_session, read_http_answer};
use crate::bench::recorder::{Progress, Shared};
use crate::bench::ws::{Source, next_text, open_ws_session};
use crate::bench::{
    BatchWriter, DRAIN, InFlight, LoadPlan, LoadRun, Local, Schedule, TCP_INITIALIZE, answer_id,
    connect, is_notification, read_answer, request_line, run_over, settle,
};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long the read-back waits for each answer.
const READ_BACK_WAIT: Duration = Duration::from_secs(10);

/// One request in this many is a write (`kv_put`); the others call the plan's tool.
pub(crate) const WRITE_EVERY: u64 = 4;

/// How long a connection waits between attempts to open again.
const REOPEN_PAUSE: Duration = Duration::from_millis(10);

/// Keys read back per batch (one write of them all, then their answers).
const READ_BATCH: usize = 256;

/// What the chaos load speaks, to which nodes.
#[derive(Clone, Debug)]
pub(crate) enum Wire {
    /// Newline-delimited JSON-RPC over TCP, to one node; each session subscribing to a
    /// resource after its `initialize` when `subscribe` is set (a session holding a
    /// subscription keeps its actor awake, for the `sessions` fault to find and kill).
    Tcp { addr: SocketAddr, subscribe: bool },
    /// Streamable HTTP sessions (JSON answers), spread over these nodes.
    Http(Arc<[SocketAddr]>),
    /// WebSocket sessions (`/ws`) on one node, subscribing as over TCP when `subscribe` is
    /// set; a reopened socket is a new session.
    Ws { addr: SocketAddr, subscribe: bool },
}

impl Wire {
    /// The nodes the load's connections go to (one over TCP).
    pub(crate) fn nodes(&self) -> &[SocketAddr] {
        match self {
            Self::Tcp { addr, .. } | Self::Ws { addr, .. } => std::slice::from_ref(addr),
            Self::Http(nodes) => nodes,
        }
    }
}

/// The writes the node acknowledged, and the connections opened again.
pub(crate) struct Ledger {
    /// Made part of every key, so that one repeat's writes never answer for another's.
    tag: String,
    /// The repeat writing now (part of every key too).
    repeat: AtomicU64,
    acked: Mutex<Vec<(String, String)>>,
    reopened: AtomicU64,
    reinitialized: AtomicU64,
}

impl Ledger {
    /// An empty ledger with a fresh tag.
    pub(crate) fn new() -> std::io::Result<Self> {
        let tag =
            erlmcp::common::random_hex(4).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self {
            tag,
            repeat: AtomicU64::new(0),
            acked: Mutex::new(Vec::new()),
            reopened: AtomicU64::new(0),
            reinitialized: AtomicU64::new(0),
        })
    }

    /// Starts a repeat: its writes and connections counted from nothing, under keys of its own.
    pub(crate) fn begin(&self) {
        self.repeat.fetch_add(1, Ordering::Relaxed);
        self.acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.reopened.store(0, Ordering::Relaxed);
        self.reinitialized.store(0, Ordering::Relaxed);
    }

    /// Every write acknowledged so far (key, value).
    pub(crate) fn acknowledged(&self) -> Vec<(String, String)> {
        self.acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Connections opened again after the node dropped them.
    pub(crate) fn reopened(&self) -> u64 {
        self.reopened.load(Ordering::Relaxed)
    }

    /// HTTP sessions initialized again because a node answered 404 for them (lost, not taken
    /// over).
    pub(crate) fn reinitialized(&self) -> u64 {
        self.reinitialized.load(Ordering::Relaxed)
    }

    fn key(&self, connection: usize, id: u64) -> String {
        let repeat = self.repeat.load(Ordering::Relaxed);
        format!("chaos-{}-{repeat}-{connection}-{id}", self.tag)
    }
}

/// Whether request `id` (request k has id k + 1) is a write.
fn is_write(id: u64) -> bool {
    id % WRITE_EVERY == 0
}

/// The value written by request `id`.
fn value_of(id: u64) -> String {
    format!("v{id}")
}

/// Runs the load over `wire` (a connection per `plan.connections`, opened again when dropped).
pub(crate) fn run_load(
    plan: LoadPlan,
    progress: Arc<Progress>,
    ledger: &Arc<Ledger>,
    wire: &Wire,
) -> std::io::Result<LoadRun> {
    let open = |_: &LoadPlan, index: usize| -> Local<Opened> {
        let (ledger, wire) = (Arc::clone(ledger), wire.clone());
        Box::pin(async move {
            let nodes = wire.nodes();
            let node = index % nodes.len();
            let stream = connect(nodes[node], index).await?;
            stream.set_nodelay(true)?;
            Ok(Opened {
                stream,
                node,
                ledger,
                wire,
            })
        })
    };
    run_over(plan, progress, &open, |opened, plan, index, recorder| {
        Box::pin(drive(opened, plan, index, recorder))
    })
}

/// A connection's first life: its stream to node `node` of the wire.
struct Opened {
    stream: TcpStream,
    node: usize,
    ledger: Arc<Ledger>,
    wire: Wire,
}

/// How one connection's life ended.
enum Ended {
    /// The schedule is done and every request answered (or counted unanswered).
    Done,
    /// The node closed it, or reading or writing failed.
    Dropped,
}

/// Drives connection `index` over its whole schedule, opening it again each time it drops.
async fn drive(
    opened: Opened,
    plan: LoadPlan,
    index: usize,
    recorder: Shared,
) -> std::io::Result<()> {
    let Opened {
        stream,
        node,
        ledger,
        wire,
    } = opened;
    let stop_at = recorder.borrow().stop_at;
    let schedule = Schedule::of(&plan, index, stop_at);
    let next = Cell::new(0u64);
    let node = Cell::new(node);
    let session = RefCell::new(None);
    let mut stream = Some(stream);
    loop {
        let open = match stream.take() {
            Some(open) => open,
            None => match reopen(wire.nodes(), &node, index, stop_at).await {
                Some(open) => open,
                None => {
                    // Never back before the end: what was still due is unanswered.
                    let mut left = 0;
                    while schedule.due(next.get() + left) < stop_at {
                        left += 1;
                    }
                    recorder.borrow_mut().unanswered(left);
                    return Ok(());
                }
            },
        };
        let connection = Connection {
            plan: &plan,
            index,
            schedule,
            next: &next,
            ledger: &ledger,
            recorder: &recorder,
            http: matches!(wire, Wire::Http(_)).then_some(Http {
                host: wire.nodes()[node.get()].to_string(),
                session: &session,
            }),
            subscribe: matches!(
                wire,
                Wire::Tcp {
                    subscribe: true,
                    ..
                } | Wire::Ws {
                    subscribe: true,
                    ..
                }
            ),
            ws: match wire {
                Wire::Ws { addr, .. } => Some(addr),
                _ => None,
            },
        };
        match connection.run(open).await {
            Ended::Done => return Ok(()),
            Ended::Dropped => {
                ledger.reopened.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(REOPEN_PAUSE).await;
            }
        }
    }
}

/// Opens connection `index` again, tried until `until`: to the node it was on, or else the
/// first of the nodes after it that accepts it (`node` is set to the one it reached).
async fn reopen(
    nodes: &[SocketAddr],
    node: &Cell<usize>,
    index: usize,
    until: Instant,
) -> Option<TcpStream> {
    loop {
        for step in 0..nodes.len() {
            let at = (node.get() + step) % nodes.len();
            if let Ok(stream) = connect(nodes[at], index).await {
                let _ = stream.set_nodelay(true);
                node.set(at);
                return Some(stream);
            }
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(REOPEN_PAUSE).await;
    }
}

/// The HTTP side of a connection's life: the node's host, and the session kept across lives.
struct Http<'a> {
    host: String,
    session: &'a RefCell<Option<String>>,
}

/// One life of a connection: its session initialized, then the schedule from `next` on.
struct Connection<'a> {
    plan: &'a LoadPlan,
    index: usize,
    schedule: Schedule,
    /// The next request of the schedule (kept across the connection's lives).
    next: &'a Cell<u64>,
    ledger: &'a Ledger,
    recorder: &'a Shared,
    /// Over HTTP: the host and the session.
    http: Option<Http<'a>>,
    /// Whether the session subscribes to [`SUBSCRIBE`]'s resource (TCP, WebSocket).
    subscribe: bool,
    /// Over WebSocket: the node's address.
    ws: Option<SocketAddr>,
}

/// Where a life's answers come from: lines or HTTP answers off the stream, or WebSocket
/// messages.
enum Answers {
    Stream(BufReader<tokio::net::tcp::OwnedReadHalf>),
    Ws(Source),
}

impl Connection<'_> {
    async fn run(&self, stream: TcpStream) -> Ended {
        if let Some(addr) = self.ws {
            let Ok((mut sink, mut source)) = open_ws_session(stream, addr).await else {
                return Ended::Dropped;
            };
            if self.subscribe {
                let mut subscribed = sink.send_batch(SUBSCRIBE).await.is_ok();
                while subscribed {
                    match next_text(&mut source).await {
                        Ok(answer) if answer_id(&answer) == Some(0) => {
                            subscribed = !answer.contains("\"error\"");
                            break;
                        }
                        Ok(_) => {}
                        Err(_) => subscribed = false,
                    }
                }
                if !subscribed {
                    return Ended::Dropped;
                }
            }
            return self.live(sink, Answers::Ws(source)).await;
        }
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::with_capacity(64 * 1024, read);
        let mut line = String::new();
        if !self
            .begin(&mut lines, &mut write, &mut line)
            .await
            .unwrap_or(false)
        {
            return Ended::Dropped;
        }
        self.live(write, Answers::Stream(lines)).await
    }

    /// The life of a connection whose session is open: the schedule written on `write`, the
    /// answers read from `answers`.
    async fn live(&self, mut write: impl BatchWriter, mut answers: Answers) -> Ended {
        let (mut line, mut scratch) = (String::new(), String::new());
        let flight = InFlight::default();
        let writer = async {
            let written = self.write_on_schedule(&mut write, &flight).await;
            flight.writer_done.set(true);
            flight.sent.notify_one();
            match written {
                // The reader says when the connection is done.
                Ok(()) => std::future::pending().await,
                Err(e) => Err(e),
            }
        };
        let stop_at = self.schedule.stop_at;
        let reader = async {
            while flight.wait_for_one().await {
                let read = tokio::time::timeout_at(
                    (stop_at + DRAIN).into(),
                    self.read_one(&mut answers, &mut line, &mut scratch),
                );
                let Ok(read) = read.await else {
                    let left = flight.outstanding.borrow().len() as u64;
                    self.recorder.borrow_mut().unanswered(left);
                    return Ok(());
                };
                read?;
                if self.http.is_some() {
                    self.in_order(&flight, &mut line);
                }
                self.acknowledge(&flight, &line);
                settle(
                    &mut flight.outstanding.borrow_mut(),
                    &line,
                    Instant::now(),
                    self.recorder,
                );
            }
            Ok::<_, std::io::Error>(())
        };
        let outcome = tokio::select! {
            written = writer => written,
            read = reader => read,
        };
        if outcome.is_ok() {
            return Ended::Done;
        }
        // Dropped: what was in flight failed, once each.
        let now = Instant::now();
        let lost: Vec<_> = flight.outstanding.borrow_mut().drain(..).collect();
        for (_, due) in lost {
            self.recorder.borrow_mut().answered(false, due, now);
        }
        Ended::Dropped
    }

    /// Starts a life: over TCP, a new session (`initialize`); over HTTP, a new session unless
    /// the connection has one. Whether it may go on.
    async fn begin(
        &self,
        lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
        write: &mut tokio::net::tcp::OwnedWriteHalf,
        line: &mut String,
    ) -> std::io::Result<bool> {
        let Some(http) = &self.http else {
            write.write_all(TCP_INITIALIZE.as_bytes()).await?;
            read_answer(lines, line).await?;
            if line.contains("\"error\"") {
                return Ok(false);
            }
            if self.subscribe {
                write.write_all(SUBSCRIBE.as_bytes()).await?;
                read_answer(lines, line).await?;
                while is_notification(line) {
                    read_answer(lines, line).await?;
                }
                return Ok(!line.contains("\"error\""));
            }
            return Ok(true);
        };
        if http.session.borrow().is_none() {
            let session = open_made_session(lines, write, &http.host, line).await?;
            *http.session.borrow_mut() = Some(session);
        }
        Ok(true)
    }

    /// Reads one answer into `line`: a line over TCP, a body over HTTP (an HTTP error status
    /// is an error; a 404 forgets the session, which the next life initializes again).
    async fn read_one(
        &self,
        answers: &mut Answers,
        line: &mut String,
        scratch: &mut String,
    ) -> std::io::Result<()> {
        let lines = match answers {
            Answers::Ws(source) => {
                *line = next_text(source).await?;
                return Ok(());
            }
            Answers::Stream(lines) => lines,
        };
        let Some(http) = &self.http else {
            return read_answer(lines, line).await;
        };
        match read_http_answer(lines, scratch).await {
            Ok((_, body)) => {
                *line = body;
                Ok(())
            }
            Err(e) => {
                if e.to_string().contains(" 404 ") && http.session.borrow_mut().take().is_some() {
                    self.ledger.reinitialized.fetch_add(1, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    /// Writes every request due from `next` on until the schedule's end.
    async fn write_on_schedule(
        &self,
        write: &mut impl BatchWriter,
        flight: &InFlight,
    ) -> std::io::Result<()> {
        let text = "x".repeat(self.plan.payload);
        let schedule = self.schedule;
        let mut batch = String::new();
        loop {
            let now = Instant::now();
            batch.clear();
            let mut first_due = None;
            while schedule.due(self.next.get()) <= now
                && schedule.due(self.next.get()) < schedule.stop_at
            {
                let k = self.next.get();
                let due = schedule.due(k);
                first_due.get_or_insert(due);
                let id = k + 1;
                let request = if is_write(id) {
                    put_line(id, &self.ledger.key(self.index, id))
                } else {
                    request_line(id, self.plan.tool, &text)
                };
                match &self.http {
                    None => batch.push_str(&request),
                    Some(http) => {
                        let session = http.session.borrow();
                        batch.push_str(&http_post(
                            &http.host,
                            session.as_deref(),
                            request.trim_end(),
                        ));
                    }
                }
                flight.outstanding.borrow_mut().push_back((id, due));
                self.next.set(k + 1);
            }
            if let Some(due) = first_due {
                self.recorder.borrow_mut().lagged(due, now);
                let deadline = (schedule.stop_at + DRAIN).into();
                let sent = tokio::time::timeout_at(deadline, write.send_batch(&batch));
                flight.sent.notify_one();
                match sent.await {
                    Ok(sent) => sent?,
                    Err(_) => return Ok(()),
                }
            }
            let next = schedule.due(self.next.get());
            if next >= schedule.stop_at {
                return Ok(());
            }
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// HTTP answers come in order, one per request: an answer that is not the oldest request's
    /// (no id: an empty body, an error with `"id":null`) fails that request, once, and is
    /// emptied (nothing more to settle). The first such answer is shown on stderr.
    fn in_order(&self, flight: &InFlight, answer: &mut String) {
        let front = flight.outstanding.borrow().front().copied();
        let Some((id, due)) = front.filter(|(id, _)| answer_id(answer) != Some(*id)) else {
            return;
        };
        static SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SHOWN.swap(true, Ordering::Relaxed) {
            let shown: String = answer.chars().take(200).collect();
            eprintln!("erlmcp bench run: request {id} was answered with `{shown}`");
        }
        flight.outstanding.borrow_mut().pop_front();
        self.recorder
            .borrow_mut()
            .answered(false, due, Instant::now());
        answer.clear();
    }

    /// Records the write `answer` acknowledges, if it is the answer to an outstanding write.
    fn acknowledge(&self, flight: &InFlight, answer: &str) {
        let Some(id) = answer_id(answer).filter(|id| is_write(*id)) else {
            return;
        };
        let outstanding = flight
            .outstanding
            .borrow()
            .iter()
            .any(|(sent, _)| *sent == id);
        if outstanding && answer.contains(STORED) && !answer.contains("\"isError\":true") {
            self.ledger
                .acked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((self.ledger.key(self.index, id), value_of(id)));
        }
    }
}

/// A `resources/subscribe` of a demo resource (id 0, after `initialize`'s answer), as a line.
const SUBSCRIBE: &str = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"resources/subscribe\",\"params\":{\"uri\":\"test://static-text\"}}\n";

/// What `kv_put` answers once the value is stored.
const STORED: &str = "\"text\":\"stored\"";

/// A `kv_put` of request `id`'s value under `key`, as a line.
fn put_line(id: u64, key: &str) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"kv_put\",\"arguments\":{{\"key\":\"{key}\",\"value\":\"{}\"}}}}}}\n",
        value_of(id)
    )
}

/// Reads every one of `writes` back from the nodes of `wire` (`kv_get` over one new
/// connection to each, over HTTP in a session of its own there): how many no node holds with
/// the value written. The demo table is each node's own store (not replicated): a write is
/// found on the node that stored it — after a node kill, the restarted node, from its log.
pub(crate) async fn read_back(wire: &Wire, writes: &[(String, String)]) -> std::io::Result<u64> {
    let mut found = vec![false; writes.len()];
    for &node in wire.nodes() {
        let values = match wire {
            Wire::Tcp { .. } => read_values(node, None, writes).await?,
            // The HTTP listener that serves `/ws` serves `/mcp` too.
            Wire::Http(_) | Wire::Ws { .. } => {
                read_values(node, Some(node.to_string()), writes).await?
            }
        };
        for ((found, (_, written)), read) in found.iter_mut().zip(writes).zip(values) {
            *found |= read.as_deref() == Some(written.as_str());
        }
    }
    Ok(found.iter().filter(|found| !**found).count() as u64)
}

/// The value node `addr` answers `kv_get` for each of `writes` (`None`: none, or an error),
/// over TCP lines, or over an HTTP session when `host` is given.
async fn read_values(
    addr: SocketAddr,
    host: Option<String>,
    writes: &[(String, String)],
) -> std::io::Result<Vec<Option<String>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let (mut line, mut scratch) = (String::new(), String::new());
    let session = match &host {
        None => {
            write.write_all(TCP_INITIALIZE.as_bytes()).await?;
            read_answer(&mut lines, &mut line).await?;
            None
        }
        Some(host) => Some(open_made_session(&mut lines, &mut write, host, &mut line).await?),
    };
    let mut all = Vec::with_capacity(writes.len());
    let mut id = 0u64;
    for batch in writes.chunks(READ_BATCH) {
        let first = id + 1;
        let mut requests = String::new();
        for (key, _) in batch {
            id += 1;
            let get = format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"kv_get\",\"arguments\":{{\"key\":\"{key}\"}}}}}}"
            );
            match &host {
                None => {
                    requests.push_str(&get);
                    requests.push('\n');
                }
                Some(host) => requests.push_str(&http_post(host, session.as_deref(), &get)),
            }
        }
        write.write_all(requests.as_bytes()).await?;
        let mut values: Vec<Option<String>> = vec![None; batch.len()];
        let mut answered = 0;
        while answered < batch.len() {
            let read = async {
                match &host {
                    None => read_answer(&mut lines, &mut line).await,
                    Some(_) => {
                        line = read_http_answer(&mut lines, &mut scratch).await?.1;
                        Ok(())
                    }
                }
            };
            tokio::time::timeout(READ_BACK_WAIT, read)
                .await
                .map_err(|_| {
                    std::io::Error::other(format!(
                        "the node did not answer a kv_get within {READ_BACK_WAIT:?}"
                    ))
                })??;
            let Some(slot) = answer_id(&line)
                .and_then(|got| got.checked_sub(first))
                .and_then(|at| values.get_mut(at as usize))
            else {
                continue;
            };
            *slot = read_value(&line);
            answered += 1;
        }
        all.extend(values);
    }
    Ok(all)
}

/// The text a successful `kv_get` answered.
fn read_value(answer: &str) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_str(answer).ok()?;
    let result = answer.get("result")?;
    if result["isError"] == true {
        return None;
    }
    result["content"][0]["text"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_acknowledged_by_its_stored_answer_and_read_back_by_its_text() {
        assert!(is_write(WRITE_EVERY) && !is_write(1));
        let put: serde_json::Value = serde_json::from_str(put_line(8, "k").trim_end()).unwrap();
        assert_eq!(put["params"]["arguments"]["value"], "v8");
        assert_eq!(
            read_value(
                r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"v8"}]}}"#
            ),
            Some("v8".to_owned())
        );
        assert_eq!(
            read_value(
                r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"no value"}],"isError":true}}"#
            ),
            None
        );
        assert!(
            r#"{"jsonrpc":"2.0","id":4,"result":{"content":[{"type":"text","text":"stored"}]}}"#
                .contains(STORED)
        );
    }
}
