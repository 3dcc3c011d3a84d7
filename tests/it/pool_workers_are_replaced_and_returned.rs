//! An embedding program's own pool (`[pools.db]`, a factory registered in code, started with
//! `Application::start_with_pools`) used by a tool under load from several clients: workers that
//! die (found dead by the health check, or reported broken by their borrower) are replaced by the
//! pool's owner and counted, and no call is ever lent a dead one; a borrower cancelled by its
//! client gives its worker back; a checkout past its timeout is `PoolError::Timeout`; the pool
//! is found by name and sits under `erlmcp_pool_sup` in the tree.
//!
//! One test function: the application tree registers global names, so one tree per process.

use crate::support::{node, tree};

use erlmcp::app::Application;
use erlmcp::config::PoolConfig;
use erlmcp::pool::named::PoolSet;
use erlmcp::pool::{Pool, PoolError, WorkerError, WorkerFactory};
use erlmcp::protocol::messages::{CallToolResult, Tool};
use erlmcp::registry::{Arguments, Change, ToolEntry, ToolError};
use erlmcp::session::RequestContext;
use node::connect_initialized as connect;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A database client stand-in: dead once its flag is down.
struct Conn {
    id: usize,
    alive: AtomicBool,
}

#[derive(Clone, Default)]
struct Conns {
    made: Arc<AtomicUsize>,
}

impl WorkerFactory for Conns {
    type Worker = Conn;
    async fn create(&self) -> Result<Conn, WorkerError> {
        Ok(Conn {
            id: self.made.fetch_add(1, Ordering::SeqCst),
            alive: AtomicBool::new(true),
        })
    }
    fn is_healthy(&self, conn: &mut Conn) -> bool {
        conn.alive.load(Ordering::SeqCst)
    }
}

/// Calls that found a dead worker (must stay 0).
static DEAD_LENT: AtomicUsize = AtomicUsize::new(0);

/// `query`: borrows a connection for 5 ms; `{"die": true}` kills it as it is given back (found
/// by the next checkout's check), `{"broken": true}` reports it broken.
fn query(db: Pool<Conn>) -> ToolEntry {
    ToolEntry::new(
        Tool::new(
            "query",
            "Uses a pooled connection",
            json!({"type": "object"}),
        ),
        move |_ctx: RequestContext, args: Arguments| {
            let db = db.clone();
            async move {
                let args = args.parse::<Value>()?;
                let conn = db
                    .checkout()
                    .await
                    .map_err(|e| ToolError::new(e.to_string()))?;
                if !conn.alive.load(Ordering::SeqCst) {
                    DEAD_LENT.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                let id = conn.id;
                if args["die"] == true {
                    conn.alive.store(false, Ordering::SeqCst);
                } else if args["broken"] == true {
                    conn.mark_broken();
                }
                Ok(CallToolResult::text(id.to_string()))
            }
        },
    )
}

/// `hold`: borrows a connection until cancelled.
fn hold(db: Pool<Conn>) -> ToolEntry {
    ToolEntry::new(
        Tool::new(
            "hold",
            "Holds a pooled connection",
            json!({"type": "object"}),
        ),
        move |_ctx: RequestContext, _args: Arguments| {
            let db = db.clone();
            async move {
                let _conn = db
                    .checkout()
                    .await
                    .map_err(|e| ToolError::new(e.to_string()))?;
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(CallToolResult::text("held"))
            }
        },
    )
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn crashed_workers_are_replaced_mid_load_and_cancelled_borrowers_give_theirs_back() {
    tree::run(|home| async move {
        let mut config = home.tcp_config();
        config.demo = false;
        config.admin.enabled = false;
        config.supervision.max_restarts = 100;
        config.pools.insert(
            "db".to_owned(),
            PoolConfig {
                size: Some(3),
                checkout_timeout: 2_000,
                ..PoolConfig::default()
            },
        );
        let factory = Conns::default();
        let mut pools = PoolSet::new();
        let db = pools.add(&config, "db", factory.clone()).unwrap();
        let changes = vec![
            Change::Tool(query(db.clone())),
            Change::Tool(hold(db.clone())),
        ];
        let app = Application::start_with_pools(&config, changes, pools)
            .await
            .unwrap();
        assert_eq!(db.stats().idle, 3, "warmed at start");
        assert_eq!(factory.made.load(Ordering::SeqCst), 3);

        // The pool runs under erlmcp_pool_sup, found by name with its worker type.
        let tree = serde_json::to_string(&app.snapshot().await.unwrap()).unwrap();
        for name in [
            "erlmcp_pool_sup",
            "erlmcp_pool:db",
            "erlmcp_pool_owner:db",
            "erlmcp_pool:erlmcp_tool_pool",
        ] {
            assert!(tree.contains(name), "{name} not in the tree: {tree}");
        }
        assert!(app.pool::<Conn>("db").is_ok());
        assert!(matches!(
            app.pool::<u8>("db"),
            Err(PoolError::WrongType { .. })
        ));

        // Load: four clients, 40 calls each; every 8th call kills its worker, every 10th reports it
        // broken.
        let addr = app.tcp_addr().unwrap();
        let kills = tokio::task::spawn_blocking(move || {
            let threads: Vec<_> = (0..4)
                .map(|c| {
                    std::thread::spawn(move || {
                        let mut client = connect(addr);
                        let mut kills = 0;
                        for n in 0..40 {
                            let seq = c * 40 + n;
                            let (die, broken) = (seq % 8 == 0, seq % 10 == 5);
                            kills += usize::from(die || broken);
                            let answer = client.call(
                                n as i64 + 1,
                                "tools/call",
                                json!({"name": "query", "arguments": {"die": die, "broken": broken}}),
                            );
                            assert_ne!(answer["result"]["isError"], true, "{answer}");
                        }
                        kills
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum::<usize>()
        })
        .await
        .unwrap();
        assert!(kills >= 30, "{kills}");
        assert_eq!(
            DEAD_LENT.load(Ordering::SeqCst),
            0,
            "a dead worker was lent"
        );
        // A killed worker is found at its next checkout; the last few may still sit idle, dead.
        // Borrow every worker once: each found dead is replaced.
        {
            let all: Vec<_> = futures::future::join_all((0..3).map(|_| db.checkout()))
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                all.iter()
                    .all(|c: &erlmcp::pool::PoolGuard<'_, Conn>| c.alive.load(Ordering::SeqCst))
            );
        }
        wait_until("replacements", || db.stats().workers == 3).await;
        let stats = db.stats();
        assert_eq!(stats.worker_restarts as usize, kills, "{stats:?}");
        assert_eq!(factory.made.load(Ordering::SeqCst), 3 + kills);
        assert_eq!(stats.checkouts, 160 + 3);

        // A borrower cancelled by its client gives its worker back.
        let mut client = tokio::task::spawn_blocking(move || connect(addr))
            .await
            .unwrap();
        let mut client = tokio::task::spawn_blocking(move || {
            client.request(
                json!(7),
                "tools/call",
                json!({"name": "hold", "arguments": {}}),
            );
            client
        })
        .await
        .unwrap();
        wait_until("the hold to borrow", || db.stats().busy == 1).await;
        client = tokio::task::spawn_blocking(move || {
            client.notify("notifications/cancelled", json!({"requestId": 7}));
            client
        })
        .await
        .unwrap();
        wait_until("the cancelled borrower's worker back", || {
            let s = db.stats();
            s.busy == 0 && s.idle == 3
        })
        .await;
        drop(client);

        // Every worker lent: the next checkout times out with the typed error.
        let held: Vec<_> = futures::future::join_all((0..3).map(|_| db.checkout())).await;
        let err = db
            .checkout_within(Duration::from_millis(50))
            .await
            .unwrap_err();
        match &err {
            PoolError::Timeout { pool, waited } => {
                assert_eq!(pool, "db");
                assert!(*waited >= Duration::from_millis(50));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        drop(held);
        app.stop().await.unwrap();
        assert!(matches!(db.checkout().await, Err(PoolError::Closed { .. })));
    });
}
