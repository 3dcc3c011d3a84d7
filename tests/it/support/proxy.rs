//! Owns a TCP proxy on loopback that a test controls: it relays every connection to its target
//! until [`Proxy::cut`] (every relayed connection shut down, new ones refused: its listener
//! closed) or [`Proxy::stall`] (connections kept open, accepted too, but no byte relayed: a link
//! that drops packets) or [`Proxy::cut_from`] (only the connections whose client's first bytes
//! hold a given name: a cluster node's first frame), then again after
//! [`Proxy::heal`] (the same port bound again, the bytes held relayed, nobody refused). How the cluster tests
//! put a network partition between nodes: each node advertises its proxy (`cluster.advertise`),
//! so every connection between them passes through one. Blocking threads, no runtime: the
//! accepting thread stops when the proxy drops; the relaying threads end with their sockets.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A proxy from `127.0.0.1:port` to a target.
pub(crate) struct Proxy {
    pub(crate) port: u16,
    shared: Arc<Shared>,
    accepting: Option<JoinHandle<()>>,
}

struct Shared {
    port: u16,
    target: SocketAddr,
    /// Relaying (not cut).
    open: AtomicBool,
    /// Holding every byte (stalled).
    stalled: AtomicBool,
    /// The proxy dropped: the accepting thread ends.
    stopped: AtomicBool,
    /// The listener while open.
    listener: Mutex<Option<TcpListener>>,
    /// Every connection relayed since the last cut.
    relayed: Mutex<Vec<Relayed>>,
    /// Connections whose client sends any of these in its first frame are cut.
    blocked: Mutex<Vec<Vec<u8>>>,
}

/// The client bytes of a connection looked at for [`Proxy::cut_from`] at most: those of its
/// first frame only (ractor_cluster's: a u64 big-endian length, then the payload) — a cluster
/// node's first frame is its name (later frames name other nodes too: the peers it knows, their
/// process groups).
const HEAD: usize = 1024;

/// How many bytes of a client's first frame `head` should hold: its length prefix, then the
/// whole frame (at most [`HEAD`]).
fn first_frame_len(head: &[u8]) -> usize {
    match head
        .get(..8)
        .and_then(|prefix| <[u8; 8]>::try_from(prefix).ok())
    {
        Some(prefix) => usize::try_from(u64::from_be_bytes(prefix))
            .unwrap_or(HEAD)
            .saturating_add(8)
            .min(HEAD),
        None => 8,
    }
}

/// A connection relayed: both ends (clones, to shut them down) and its client's first bytes.
struct Relayed {
    ends: Vec<TcpStream>,
    head: Arc<Mutex<Vec<u8>>>,
}

impl Relayed {
    fn shut_down(&self) {
        for end in &self.ends {
            let _ = end.shutdown(Shutdown::Both);
        }
    }
}

/// Whether `head` holds any of `blocked`.
fn names_any(head: &[u8], blocked: &[Vec<u8>]) -> bool {
    blocked
        .iter()
        .any(|needle| head.windows(needle.len()).any(|w| w == needle.as_slice()))
}

impl Proxy {
    /// A proxy on a free loopback port relaying to `target`, open.
    pub(crate) fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            port,
            target,
            open: AtomicBool::new(true),
            stalled: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            listener: Mutex::new(Some(listener)),
            relayed: Mutex::new(Vec::new()),
            blocked: Mutex::new(Vec::new()),
        });
        let accepting = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || shared.accept_loop())
        };
        Proxy {
            port,
            shared,
            accepting: Some(accepting),
        }
    }

    /// Where clients reach the proxy.
    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cuts the link: closes the listener (a connect is refused) and shuts every relayed
    /// connection down (both ends see it closed).
    pub(crate) fn cut(&self) {
        self.shared.open.store(false, Ordering::SeqCst);
        drop(self.shared.listener.lock().unwrap().take());
        for relayed in self.shared.relayed.lock().unwrap().drain(..) {
            relayed.shut_down();
        }
    }

    /// Cuts the connections whose client's first bytes hold `name` (a cluster node's first frame
    /// is its name), those open and those to come; the others go on.
    pub(crate) fn cut_from(&self, name: &str) {
        let needle = name.as_bytes().to_vec();
        let mut relayed = self.shared.relayed.lock().unwrap();
        relayed.retain(|r| {
            let named = names_any(&r.head.lock().unwrap(), std::slice::from_ref(&needle));
            if named {
                r.shut_down();
            }
            !named
        });
        self.shared.blocked.lock().unwrap().push(needle);
    }

    /// Stalls the link: connections stay open and new ones are accepted, but no byte goes
    /// through (each is held until the heal); only a timeout can tell.
    pub(crate) fn stall(&self) {
        self.shared.stalled.store(true, Ordering::SeqCst);
    }

    /// Heals the link: the port is bound again (within a second) and connections relayed, the
    /// bytes held during a stall first.
    pub(crate) fn heal(&self) {
        self.shared.blocked.lock().unwrap().clear();
        self.shared.stalled.store(false, Ordering::SeqCst);
        self.shared.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

impl Shared {
    fn accept_loop(self: &Arc<Self>) {
        while !self.stopped.load(Ordering::SeqCst) {
            if !self.open.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let accepted = {
                let mut listener = self.listener.lock().unwrap();
                if listener.is_none() {
                    // Healed: the same port again (std sets SO_REUSEADDR).
                    if let Ok(bound) = TcpListener::bind(("127.0.0.1", self.port)) {
                        bound.set_nonblocking(true).unwrap();
                        *listener = Some(bound);
                    }
                }
                match listener.as_ref().map(TcpListener::accept) {
                    Some(Ok((client, _))) => Some(client),
                    Some(Err(e)) if e.kind() != ErrorKind::WouldBlock => None,
                    _ => None,
                }
            };
            match accepted {
                Some(client) => self.relay(client),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Connects to the target and copies both ways, each way on its own thread; either way
    /// ending shuts both sockets down.
    fn relay(self: &Arc<Self>, client: TcpStream) {
        let _ = client.set_nonblocking(false);
        let Ok(upstream) = TcpStream::connect_timeout(&self.target, Duration::from_secs(2)) else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let head = Arc::new(Mutex::new(Vec::new()));
        {
            let mut relayed = self.relayed.lock().unwrap();
            if !self.open.load(Ordering::SeqCst) {
                return;
            }
            relayed.push(Relayed {
                ends: [&client, &upstream]
                    .into_iter()
                    .filter_map(|s| s.try_clone().ok())
                    .collect(),
                head: Arc::clone(&head),
            });
        }
        for (from, to, head) in [(&client, &upstream, Some(head)), (&upstream, &client, None)] {
            let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let shared = Arc::clone(self);
            std::thread::spawn(move || {
                shared.copy(&mut from, &mut to, head.as_deref());
                // A close is held too while stalled: the far end must not learn of it.
                shared.hold_while_stalled();
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            });
        }
    }

    /// Copies `from` to `to` until either ends, holding what was read while stalled; from a
    /// client (`head`), its first frame is kept, and the copy ends when it names a blocked
    /// client.
    fn copy(&self, from: &mut TcpStream, to: &mut TcpStream, head: Option<&Mutex<Vec<u8>>>) {
        use std::io::{Read, Write};
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if let Some(head) = head {
                let mut head = head.lock().unwrap();
                let mut at = 0;
                while at < n && head.len() < first_frame_len(&head) {
                    let take = (first_frame_len(&head) - head.len()).min(n - at);
                    head.extend_from_slice(&buf[at..at + take]);
                    at += take;
                }
                if names_any(&head, &self.blocked.lock().unwrap()) {
                    return;
                }
            }
            if !self.hold_while_stalled() {
                return;
            }
            if to.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    }

    /// Waits while the link is stalled; `false` when the proxy dropped meanwhile.
    fn hold_while_stalled(&self) -> bool {
        while self.stalled.load(Ordering::SeqCst) {
            if self.stopped.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}
