//! Owns the metrics collector `erlmcp_metrics` (a worker under `erlmcp_observability_sup`): every
//! `metrics_interval` it samples request rates and latency percentiles, sessions, connections by
//! transport, restarts per supervisor, resident memory and CPU into a bounded history
//! (`admin.retention` samples), evaluates the alert thresholds with hysteresis, and publishes
//! each sample to live viewers (`remote top`, the dashboard).
//!
//! Its state lives in a [`MetricsHub`] that outlives the actor: a restart of the collector loses
//! no history and no alert state.

use crate::admission::Admission;
use crate::config::AlertsConfig;
use crate::locks::lock;
use crate::metrics::{Latency, METHODS, Metrics};
use erlmcp_supervisors::{SupervisorRef, SupervisorSnapshot};
use hdrhistogram::Histogram;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// One method in one sample.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MethodSample {
    /// The method.
    pub(crate) method: &'static str,
    /// Requests since start.
    pub(crate) requests: u64,
    /// Errors since start.
    pub(crate) errors: u64,
    /// Requests per second over the last interval.
    pub(crate) rate: f64,
    /// Latency over the last interval.
    pub(crate) interval: Latency,
    /// Latency since start.
    pub(crate) total: Latency,
}

/// One supervisor's restarts.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SupervisorRestarts {
    /// Its name.
    pub(crate) supervisor: String,
    /// Restarts since it started.
    pub(crate) restarts: u64,
}

/// Everything sampled at one tick.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Wall-clock time, ms since the Unix epoch.
    pub(crate) at_ms: u64,
    /// Seconds since the node started.
    pub(crate) uptime_s: f64,
    /// Requests per second, all methods.
    pub(crate) requests_per_sec: f64,
    /// Errors per second, all methods.
    pub(crate) errors_per_sec: f64,
    /// Share of the interval's requests that were errors, percent.
    pub(crate) error_rate_percent: f64,
    /// Latency over the interval, all methods merged.
    pub(crate) latency: Latency,
    /// Methods that have seen requests.
    pub(crate) methods: Vec<MethodSample>,
    /// Sessions alive, hibernating ones included.
    pub(crate) sessions: usize,
    /// Of those, sessions hibernating (no actor until they hold something).
    pub(crate) sessions_hibernating: usize,
    /// Connections open, by transport.
    pub(crate) connections: Vec<(&'static str, i64)>,
    /// Connections refused since start (over `max_connections`).
    pub(crate) refused: u64,
    /// Bytes received and sent since start.
    pub(crate) bytes_in: u64,
    /// Bytes sent since start.
    pub(crate) bytes_out: u64,
    /// Resident memory, bytes.
    pub(crate) rss_bytes: u64,
    /// CPU over the interval, percent of one core.
    pub(crate) cpu_percent: f64,
    /// CPU since start, seconds.
    pub(crate) cpu_seconds: f64,
    /// Restarts by supervisor.
    pub(crate) restarts: Vec<SupervisorRestarts>,
    /// Alerts firing now.
    pub(crate) alerts: Vec<String>,
    /// The admission point: requests in progress now.
    pub(crate) queue_in_progress: usize,
    /// The admission point's capacity.
    pub(crate) queue_capacity: usize,
    /// Requests shed per second over the interval.
    pub(crate) shed_per_sec: f64,
    /// Requests shed since start.
    pub(crate) shed_total: u64,
    /// How long requests have been shed in every sample, seconds (0 when the last sample shed
    /// none).
    pub(crate) shedding_for_s: f64,
    /// Whether the memory guard sheds now.
    pub(crate) memory_over: bool,
    /// Whether the last change to the TLS files failed to load (the old certificate serves).
    pub(crate) tls_reload_failed: bool,
}

/// An alert's change of state.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    /// `cpu`, `memory`, `p99_latency` or `error_rate`.
    pub(crate) alert: &'static str,
    /// `firing` or `cleared`.
    pub(crate) state: &'static str,
    /// The value that changed it.
    pub(crate) value: f64,
    /// The threshold.
    pub(crate) threshold: f64,
    /// When, ms since the Unix epoch.
    pub(crate) at_ms: u64,
    /// The node.
    pub(crate) node: String,
}

struct AlertRule {
    name: &'static str,
    threshold: f64,
    value: fn(&Sample) -> f64,
    firing: bool,
}

/// The collector's state, shared with its readers.
pub struct MetricsHub {
    /// What the request path records into.
    pub(crate) metrics: Arc<Metrics>,
    node: String,
    started: Instant,
    retention: usize,
    history: Mutex<VecDeque<Arc<Sample>>>,
    totals: Mutex<Vec<Histogram<u64>>>,
    previous: Mutex<Option<(Instant, u64, u64, f64)>>,
    rules: Mutex<Vec<AlertRule>>,
    clear_ratio: f64,
    webhook: Option<String>,
    recent_alerts: Mutex<VecDeque<AlertEvent>>,
    live: broadcast::Sender<Arc<Sample>>,
    stats: Arc<crate::metrics::ConnectionStats>,
    /// The admission point whose queue and shedding are sampled.
    pub admission: Arc<Admission>,
}

impl std::fmt::Debug for MetricsHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHub")
            .field("node", &self.node)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:`…), in bytes (0 where unavailable).
pub(crate) fn status_bytes(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resident memory of this process.
pub(crate) fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// CPU time of this process in seconds, from `/proc/self/stat` (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) — utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn walk_restarts(snapshot: &SupervisorSnapshot, out: &mut Vec<SupervisorRestarts>) {
    out.push(SupervisorRestarts {
        supervisor: snapshot.name.clone(),
        restarts: snapshot.restarts_total,
    });
    for child in &snapshot.children {
        if let Some(sup) = &child.supervisor {
            walk_restarts(sup, out);
        }
    }
}

impl MetricsHub {
    /// A hub for `node`, keeping `retention` samples, alerting on `alerts`.
    pub fn new(
        node: &str,
        metrics: Arc<Metrics>,
        retention: usize,
        alerts: &AlertsConfig,
        stats: Arc<crate::metrics::ConnectionStats>,
        admission: Arc<Admission>,
    ) -> Arc<Self> {
        let mut rules = Vec::new();
        let mut rule = |name, threshold: u64, value: fn(&Sample) -> f64| {
            if threshold > 0 {
                rules.push(AlertRule {
                    name,
                    threshold: threshold as f64,
                    value,
                    firing: false,
                });
            }
        };
        rule("cpu", alerts.cpu_percent, |s| s.cpu_percent);
        rule("memory", alerts.memory_mb, |s| {
            s.rss_bytes as f64 / 1_048_576.0
        });
        rule("p99_latency", alerts.p99_ms, |s| {
            s.latency.p99 as f64 / 1000.0
        });
        rule("error_rate", alerts.error_rate_percent, |s| {
            s.error_rate_percent
        });
        rule("shedding", alerts.shedding_seconds, |s| s.shedding_for_s);
        if admission.memory().enabled() {
            rule("memory_limit", 1, |s| f64::from(u8::from(s.memory_over)));
        }
        // Fires only on a node serving TLS whose files changed into ones that do not load.
        rule("tls_reload", 1, |s| {
            f64::from(u8::from(s.tls_reload_failed))
        });
        Arc::new(Self {
            metrics,
            node: node.to_owned(),
            started: Instant::now(),
            retention,
            history: Mutex::new(VecDeque::new()),
            totals: Mutex::new(
                METHODS
                    .iter()
                    .map(|_| crate::metrics::histogram())
                    .collect(),
            ),
            previous: Mutex::new(None),
            rules: Mutex::new(rules),
            clear_ratio: alerts.clear_percent as f64 / 100.0,
            webhook: (!alerts.webhook.is_empty()).then(|| alerts.webhook.clone()),
            recent_alerts: Mutex::new(VecDeque::new()),
            live: broadcast::channel(16).0,
            stats,
            admission,
        })
    }

    /// The newest sample, if one was taken.
    pub fn latest(&self) -> Option<Arc<Sample>> {
        lock(&self.history).back().cloned()
    }

    /// The last `n` samples, oldest first.
    pub fn history(&self, n: usize) -> Vec<Arc<Sample>> {
        let history = lock(&self.history);
        history
            .iter()
            .skip(history.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Every sample from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Sample>> {
        self.live.subscribe()
    }

    /// Alert changes, oldest first (the last 100).
    pub fn recent_alerts(&self) -> Vec<AlertEvent> {
        lock(&self.recent_alerts).iter().cloned().collect()
    }

    /// Latency since start, per method.
    pub fn totals(&self) -> Vec<(&'static str, Latency, f64)> {
        let totals = lock(&self.totals);
        METHODS
            .iter()
            .zip(totals.iter())
            .map(|(m, h)| {
                let sum_us: f64 = h
                    .iter_recorded()
                    .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
                    .sum();
                (*m, Latency::of(h), sum_us / 1_000_000.0 + 0.0)
            })
            .collect()
    }

    /// Takes one sample: rates over the time since the previous one.
    pub async fn sample(&self) -> Arc<Sample> {
        let windows = self.metrics.drain_windows();
        let counts = self.metrics.counts();
        let mut merged = crate::metrics::histogram();
        let mut methods = Vec::new();
        let now = Instant::now();
        let cpu = cpu_seconds();
        let requests: u64 = counts.iter().map(|c| c.1).sum();
        let errors: u64 = counts.iter().map(|c| c.2).sum();
        let (elapsed, prev_requests, prev_errors, prev_cpu) = {
            let mut previous = lock(&self.previous);
            let prev = previous.replace((now, requests, errors, cpu));
            match prev {
                Some((at, r, e, c)) => (now.duration_since(at).as_secs_f64().max(1e-6), r, e, c),
                None => (
                    now.duration_since(self.started).as_secs_f64().max(1e-6),
                    0,
                    0,
                    0.0,
                ),
            }
        };
        {
            let mut totals = lock(&self.totals);
            for (i, window) in windows.iter().enumerate() {
                let _ = merged.add(window);
                let _ = totals[i].add(window);
                let (method, count, errs) = counts[i];
                if count > 0 {
                    methods.push(MethodSample {
                        method,
                        requests: count,
                        errors: errs,
                        rate: window.len() as f64 / elapsed,
                        interval: Latency::of(window),
                        total: Latency::of(&totals[i]),
                    });
                }
            }
        }
        let interval_requests = requests.saturating_sub(prev_requests);
        let interval_errors = errors.saturating_sub(prev_errors);
        let sessions_hibernating = crate::session::hibernating_count();
        let sessions = sessions_hibernating
            + match SupervisorRef::whereis(crate::session::SESSION_SUP) {
                Some(sup) => sup.count_children().await.map_or(0, |c| c.active),
                None => 0,
            };
        let mut restarts = Vec::new();
        if let Some(root) = SupervisorRef::whereis(crate::tree_names::ROOT_SUP)
            && let Ok(snapshot) = root.snapshot().await
        {
            walk_restarts(&snapshot, &mut restarts);
        }
        let mut sample = Sample {
            at_ms: now_ms(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            requests_per_sec: interval_requests as f64 / elapsed,
            errors_per_sec: interval_errors as f64 / elapsed,
            error_rate_percent: if interval_requests == 0 {
                0.0
            } else {
                interval_errors as f64 * 100.0 / interval_requests as f64
            },
            latency: Latency::of(&merged),
            methods,
            sessions,
            sessions_hibernating,
            connections: self
                .metrics
                .connections()
                .into_iter()
                .map(|(t, n)| (t.as_str(), n))
                .collect(),
            refused: self
                .stats
                .refused
                .load(std::sync::atomic::Ordering::Relaxed),
            bytes_in: self
                .metrics
                .bytes_in
                .load(std::sync::atomic::Ordering::Relaxed),
            bytes_out: self
                .metrics
                .bytes_out
                .load(std::sync::atomic::Ordering::Relaxed),
            rss_bytes: rss_bytes(),
            cpu_percent: ((cpu - prev_cpu) / elapsed * 100.0).max(0.0),
            cpu_seconds: cpu,
            restarts,
            alerts: Vec::new(),
            queue_in_progress: self.admission.in_progress(),
            queue_capacity: self.admission.capacity(),
            shed_per_sec: 0.0,
            shed_total: 0,
            shedding_for_s: 0.0,
            memory_over: self.admission.memory().over(),
            tls_reload_failed: self
                .metrics
                .tls_reload_failed
                .load(std::sync::atomic::Ordering::Relaxed),
        };
        // Shedding since the previous sample, and for how long it has gone on in every sample:
        // both read off the previous sample (the history's newest), no state of their own.
        let (shed_before, streak_before) = self
            .latest()
            .map_or((0, 0.0), |p| (p.shed_total, p.shedding_for_s));
        sample.shed_total = self.admission.shed_total();
        sample.shed_per_sec = sample.shed_total.saturating_sub(shed_before) as f64 / elapsed;
        if sample.shed_total > shed_before {
            sample.shedding_for_s = streak_before + elapsed;
        }
        sample.alerts = self.evaluate(&sample);
        let sample = Arc::new(sample);
        {
            let mut history = lock(&self.history);
            history.push_back(Arc::clone(&sample));
            while history.len() > self.retention {
                history.pop_front();
            }
        }
        let _ = self.live.send(Arc::clone(&sample));
        sample
    }

    /// Applies the thresholds with hysteresis; returns the alerts firing after this sample.
    fn evaluate(&self, sample: &Sample) -> Vec<String> {
        let mut changes = Vec::new();
        let mut firing = Vec::new();
        for rule in lock(&self.rules).iter_mut() {
            let value = (rule.value)(sample);
            let changed = if rule.firing {
                value < rule.threshold * self.clear_ratio
            } else {
                value >= rule.threshold
            };
            if changed {
                rule.firing = !rule.firing;
                changes.push(AlertEvent {
                    alert: rule.name,
                    state: if rule.firing { "firing" } else { "cleared" },
                    value,
                    threshold: rule.threshold,
                    at_ms: sample.at_ms,
                    node: self.node.clone(),
                });
            }
            if rule.firing {
                firing.push(rule.name.to_owned());
            }
        }
        for event in changes {
            if event.state == "firing" {
                tracing::warn!(
                    alert = event.alert,
                    value = event.value,
                    threshold = event.threshold,
                    "alert firing"
                );
            } else {
                tracing::info!(
                    alert = event.alert,
                    value = event.value,
                    threshold = event.threshold,
                    "alert cleared"
                );
            }
            if let Some(url) = &self.webhook {
                let url = url.clone();
                let body = serde_json::to_string(&event).unwrap_or_default();
                tokio::spawn(async move {
                    if let Err(e) = post_webhook(&url, &body).await {
                        tracing::warn!(url = %url, error = %e, "alert webhook failed");
                    }
                });
            }
            let mut recent = lock(&self.recent_alerts);
            recent.push_back(event);
            while recent.len() > 100 {
                recent.pop_front();
            }
        }
        firing
    }
}

/// POSTs `body` as JSON to an `http://host:port/path` URL; an error unless the answer is 2xx.
async fn post_webhook(url: &str, body: &str) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| std::io::Error::other("only http:// webhooks are supported"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(host))
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??;
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .map_err(|_| std::io::Error::other("no answer in 5 s"))??;
    if head.get(9) == Some(&b'2') {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "answered {}",
            String::from_utf8_lossy(&head).trim()
        )))
    }
}

/// The collector actor.
pub(crate) struct Collector;

/// What drives the collector.
#[derive(Debug)]
pub(crate) enum CollectorMsg {
    /// Take a sample.
    Tick,
}

// A local message only: erlmcp runs ractor with the `cluster` feature (for ractor_cluster),
// which leaves `Message` to be implemented per type.
impl ractor::Message for CollectorMsg {}

impl Actor for Collector {
    type Msg = CollectorMsg;
    type State = (Arc<MetricsHub>, tokio::task::JoinHandle<()>);
    type Arguments = (Arc<MetricsHub>, Duration);

    async fn pre_start(
        &self,
        myself: ActorRef<CollectorMsg>,
        (hub, interval): (Arc<MetricsHub>, Duration),
    ) -> Result<Self::State, ActorProcessingErr> {
        let ticker = crate::ticker::every(myself, interval, || CollectorMsg::Tick);
        Ok((hub, ticker))
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CollectorMsg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.1.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<CollectorMsg>,
        CollectorMsg::Tick: CollectorMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.0.sample().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(alerts: AlertsConfig) -> Arc<MetricsHub> {
        MetricsHub::new(
            "t",
            Arc::default(),
            3,
            &alerts,
            Arc::default(),
            Arc::default(),
        )
    }

    fn alerts(error_rate_percent: u64) -> AlertsConfig {
        AlertsConfig {
            cpu_percent: 0,
            memory_mb: 0,
            p99_ms: 0,
            error_rate_percent,
            clear_percent: 50,
            webhook: String::new(),
            shedding_seconds: 0,
        }
    }

    #[tokio::test]
    async fn shedding_in_every_sample_adds_up_and_fires_its_alert_until_a_sample_sheds_none() {
        let admission = Arc::new(Admission::new(&crate::admission::AdmissionSettings {
            capacity: 1,
            ..Default::default()
        }));
        let mut rules = alerts(0);
        rules.shedding_seconds = 1;
        let hub = MetricsHub::new(
            "t",
            Arc::default(),
            3,
            &rules,
            Arc::default(),
            Arc::clone(&admission),
        );
        let _held = admission
            .try_enter("tools/call", crate::metrics::Transport::Tcp)
            .unwrap();
        let mut streak = 0.0;
        for _ in 0..2 {
            let _ = admission.try_enter("tools/call", crate::metrics::Transport::Tcp);
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            let sample = hub.sample().await;
            assert!(sample.shed_per_sec > 0.0, "{}", sample.shed_per_sec);
            assert!(sample.shedding_for_s > streak, "{}", sample.shedding_for_s);
            streak = sample.shedding_for_s;
        }
        assert!(streak >= 1.0, "{streak}");
        assert_eq!(hub.latest().unwrap().alerts, vec!["shedding"]);
        let calm = hub.sample().await;
        assert_eq!((calm.shed_total, calm.shedding_for_s), (2, 0.0));
        assert!(calm.alerts.is_empty(), "{:?}", calm.alerts);
    }

    #[tokio::test]
    async fn samples_count_rates_and_the_history_is_bounded() {
        let hub = hub(alerts(0));
        for _ in 0..4 {
            hub.metrics
                .record("tools/call", Duration::from_micros(50), false, 10);
        }
        let first = hub.sample().await;
        assert!(first.requests_per_sec > 0.0);
        assert_eq!(first.methods[0].method, "tools/call");
        assert_eq!(first.methods[0].interval.count, 4);
        for _ in 0..4 {
            hub.sample().await;
        }
        assert_eq!(hub.history(10).len(), 3, "retention is 3");
        assert_eq!(hub.latest().unwrap().methods[0].interval.count, 0);
        assert_eq!(hub.totals()[4].1.count, 4, "totals keep every request");
    }

    #[tokio::test]
    async fn a_webhook_gets_the_alert_as_json_and_a_refusing_one_is_an_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut bodies = Vec::new();
            for status in ["200 OK", "500 Internal Server Error"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap();
                bodies.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
            bodies
        });
        let url = format!("http://{addr}/hooks/erlmcp");
        post_webhook(&url, r#"{"alert":"cpu"}"#).await.unwrap();
        assert!(post_webhook(&url, "{}").await.is_err());
        let bodies = server.await.unwrap();
        assert!(
            bodies[0].starts_with("POST /hooks/erlmcp HTTP/1.1"),
            "{}",
            bodies[0]
        );
        assert!(bodies[0].ends_with(r#"{"alert":"cpu"}"#), "{}", bodies[0]);
    }

    #[tokio::test]
    async fn an_alert_fires_at_its_threshold_and_clears_only_below_the_hysteresis_line() {
        let hub = hub(alerts(40));
        let run = |ok: u64, bad: u64| {
            for _ in 0..ok {
                hub.metrics
                    .record("ping", Duration::from_micros(1), false, 1);
            }
            for _ in 0..bad {
                hub.metrics
                    .record("ping", Duration::from_micros(1), true, 1);
            }
        };
        run(5, 5); // 50%: fires
        assert_eq!(hub.sample().await.alerts, vec!["error_rate"]);
        run(7, 3); // 30%: under 40 but above 20 (50% of it): still firing
        assert_eq!(hub.sample().await.alerts, vec!["error_rate"]);
        run(9, 1); // 10%: clears
        assert!(hub.sample().await.alerts.is_empty());
        let events: Vec<&str> = hub.recent_alerts().iter().map(|e| e.state).collect();
        assert_eq!(events, vec!["firing", "cleared"]);
    }
}
