//! In-process cost of one `tools/call echo`: decode → dispatch → encode, through erlmcp's real
//! dispatcher and session (no socket), beside the baseline of a hand-written typed parse of the
//! same request and encode of its answer — the least any JSON-RPC server must do — and beside the
//! same dispatch with the admission point off (`queue.enabled = false`), which shows what
//! admitting each request costs.
//!
//! Run: `cargo bench --bench dispatch`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use erlmcp::admission::{Admission, AdmissionSettings};
use erlmcp::dispatch::{Dispatcher, ServerContext};
use erlmcp::outbound::Outbound;
use erlmcp::protocol::messages::Implementation;
use erlmcp::registry::{RegistryHandle, RegistrySnapshot};
use erlmcp::session::{SESSION_SUP, SessionSettings, session_template, start_session};
use erlmcp_supervisors::DynamicSupervisor;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const REQUEST: &[u8] = br#"{"jsonrpc":"2.0","id":12345,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello, erlmcp benchmark payload"}}}"#;

fn erlmcp_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        DynamicSupervisor::start(session_template(), |s| s.named(SESSION_SUP))
            .await
            .expect("session supervisor");
    });
    let (dispatcher, mut queue) = rt.block_on(dispatcher_with(true));
    let (unadmitted, mut unadmitted_queue) = rt.block_on(dispatcher_with(false));
    let mut group = c.benchmark_group("tools_call_echo_in_process");
    group.throughput(Throughput::Elements(1));
    for (name, dispatcher, queue) in [
        ("erlmcp_decode_dispatch_encode", &dispatcher, &mut queue),
        (
            "erlmcp_decode_dispatch_encode_admission_off",
            &unadmitted,
            &mut unadmitted_queue,
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                dispatcher
                    .handle_frame(black_box(REQUEST))
                    .now_or_never()
                    .expect("echo completes without waiting");
                let answer = queue.rx.try_recv().expect("one answer");
                queue.level().written(1, answer.len());
                black_box(answer);
            })
        });
    }
    group.bench_function("baseline_typed_parse_and_encode", |b| {
        b.iter(|| black_box(baseline(black_box(REQUEST))))
    });
    group.finish();
}

/// A dispatcher for one initialized session, its admission point on or off, and its queue.
async fn dispatcher_with(admission: bool) -> (Dispatcher, erlmcp::outbound::OutboundReceiver) {
    {
        let (snapshot, _) = RegistrySnapshot::default()
            .apply(erlmcp::demo::demo_changes())
            .unwrap();
        let server = Arc::new(ServerContext {
            metrics: Arc::default(),
            registry: RegistryHandle::new(snapshot),
            page_size: 100,
            server_info: Implementation {
                name: "bench".into(),
                version: "0".into(),
            },
            instructions: None,
            max_batch_size: 100,
            max_message_size: 16 * 1024 * 1024,
            admission: Arc::new(Admission::new(&AdmissionSettings {
                enabled: admission,
                ..AdmissionSettings::default()
            })),
        });
        let (outbound, queue) = Outbound::channel();
        let session = start_session(
            outbound,
            SessionSettings::keeping_actors(Duration::from_secs(5)),
        )
        .await
        .unwrap();
        let dispatcher = Dispatcher::new(server, session, erlmcp::metrics::Transport::Tcp);
        dispatcher
            .handle_frame(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{}}}"#)
            .await;
        let mut queue = queue;
        let _ = queue.rx.try_recv();
        (dispatcher, queue)
    }
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow)]
    params: Params<'a>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow)]
    arguments: Args<'a>,
}

#[derive(Deserialize)]
struct Args<'a> {
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct Response<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: ToolResult<'a>,
}

#[derive(Serialize)]
struct ToolResult<'a> {
    content: [Text<'a>; 1],
}

#[derive(Serialize)]
struct Text<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

fn baseline(bytes: &[u8]) -> Vec<u8> {
    let request: Request<'_> = serde_json::from_slice(bytes).unwrap();
    assert_eq!(
        (request.method, request.params.name),
        ("tools/call", "echo")
    );
    serde_json::to_vec(&Response {
        jsonrpc: "2.0",
        id: request.id,
        result: ToolResult {
            content: [Text {
                kind: "text",
                text: &request.params.arguments.text,
            }],
        },
    })
    .unwrap()
}

criterion_group!(benches, erlmcp_dispatch);
criterion_main!(benches);
