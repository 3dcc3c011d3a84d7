//! Owns a TCP proxy on loopback that a test controls: it relays every connection to its target
//! until [`Proxy::cut`] (every relayed connection shut down, new ones refused: its listener
//! closed) or [`Proxy::stall`] (connections kept open, accepted too, but no byte relayed: a link
//! that drops packets), then again after [`Proxy::heal`] (the same port bound again, the bytes
//! held relayed). How the cluster tests
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
    /// Both ends of every connection relayed since the last cut (clones, to shut them down).
    relayed: Mutex<Vec<TcpStream>>,
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
        for stream in self.shared.relayed.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Stalls the link: connections stay open and new ones are accepted, but no byte goes
    /// through (each is held until the heal); only a timeout can tell.
    pub(crate) fn stall(&self) {
        self.shared.stalled.store(true, Ordering::SeqCst);
    }

    /// Heals the link: the port is bound again (within a second) and connections relayed, the
    /// bytes held during a stall first.
    pub(crate) fn heal(&self) {
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
        {
            let mut relayed = self.relayed.lock().unwrap();
            if !self.open.load(Ordering::SeqCst) {
                return;
            }
            for stream in [&client, &upstream] {
                if let Ok(clone) = stream.try_clone() {
                    relayed.push(clone);
                }
            }
        }
        for (from, to) in [(&client, &upstream), (&upstream, &client)] {
            let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                continue;
            };
            let shared = Arc::clone(self);
            std::thread::spawn(move || {
                shared.copy(&mut from, &mut to);
                // A close is held too while stalled: the far end must not learn of it.
                shared.hold_while_stalled();
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            });
        }
    }

    /// Copies `from` to `to` until either ends, holding what was read while stalled.
    fn copy(&self, from: &mut TcpStream, to: &mut TcpStream) {
        use std::io::{Read, Write};
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
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
