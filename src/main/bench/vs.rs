//! Owns `erlmcp bench vs`: one profile of `bench run` against a peer server (the baseline:
//! rmcp's `benches/rmcp_echo.rs`, the raw line echo of `erlmcp bench echo-server`, another build
//! of erlmcp) and against a node of this binary, with the same load (connections, pipeline,
//! payload, tool and its arguments), in rounds that alternate which side goes first (`--repeat K`:
//! K rounds, the peer first in odd ones; each side's figures are its medians over its rounds),
//! optionally with the servers and the load generator on separate CPUs (`--pin`). Before measuring, one
//! `tools/call` of the same tool with the same arguments goes to each side and their answers
//! are compared: a peer that answers otherwise does other work, and is refused unless
//! `--any-answer` says it is a floor. Writes each side's results.json and report.html (in
//! `OUT/<peer name>/` and `OUT/erlmcp/`), then `OUT/vs.json` and `OUT/vs.html`: every figure
//! both have, with erlmcp's over the peer's.

use super::http::{http_post, open_session, read_http_answer};
use super::node::ChildNode;
use super::report::{self, escape};
use super::results::Results;
use super::run::{Profile, RunArgs, Served};
use super::{TCP_INITIALIZE, answer_id, is_notification, request_line};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// How long a side gets to answer the probe call.
const PROBE_WAIT: Duration = Duration::from_secs(10);

/// `erlmcp bench vs`'s arguments: the peer, and the run both sides get.
#[derive(Debug, clap::Args)]
pub(crate) struct VsArgs {
    /// The peer server's program (e.g. the rmcp_echo bench binary that `cargo bench --bench
    /// rmcp_echo --no-run` prints, or another build's `erlmcp`).
    #[arg(long, value_name = "PROGRAM")]
    peer: PathBuf,
    /// The peer's arguments, split at spaces; `{addr}` becomes the loopback address it is to
    /// listen on (e.g. `"bench echo-server --addr {addr}"`, `"start --http {addr}"`).
    #[arg(
        long,
        value_name = "ARGS",
        default_value = "--addr {addr}",
        allow_hyphen_values = true
    )]
    peer_args: String,
    /// The peer's name in the reports, and its results' folder under --out.
    #[arg(long, default_value = "peer")]
    peer_name: String,
    /// Measure even when the peer answers the probe call otherwise than erlmcp (a floor that
    /// does less work, such as the raw line echo, which sends each request back).
    #[arg(long)]
    any_answer: bool,
    /// Both servers on the first half of this process's CPUs, the load generator on the other
    /// half (2 cores: the servers on one, the load on the other), as the shell scripts do with
    /// `taskset`.
    #[arg(long)]
    pin: bool,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs `bench vs`: 0 when both sides were measured and the comparison written, 1 when one
/// failed or the answers differ (without `--any-answer`), 2 on bad usage.
pub(crate) fn run(args: VsArgs) -> ExitCode {
    if let Err(why) = check(&args) {
        eprintln!("erlmcp bench vs: {why}");
        return ExitCode::from(2);
    }
    match both_sides(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("erlmcp bench vs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(args: &VsArgs) -> Result<(), String> {
    super::run::check(&args.run)?;
    if matches!(
        args.run.profile,
        Profile::Core | Profile::Stdio | Profile::Chaos | Profile::Forward
    ) || super::run::clustered(&args.run)
    {
        return Err(format!(
            "the {} profile takes no server to load (or starts a cluster): bench vs needs tcp, \
             http, ws, sustained, stress, integration or scale on one node",
            args.run.profile.name()
        ));
    }
    if args.run.target.is_some() {
        return Err("bench vs starts both servers itself: it takes no --target".into());
    }
    let name = &args.peer_name;
    if name.is_empty()
        || name == "erlmcp"
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("--peer-name must be letters, digits, - or _, and not `erlmcp`".into());
    }
    Ok(())
}

/// The peer's arguments: `template` split at spaces, `{addr}` replaced by `addr`.
fn peer_args(template: &str, addr: SocketAddr) -> Vec<String> {
    template
        .split_whitespace()
        .map(|arg| arg.replace("{addr}", &addr.to_string()))
        .collect()
}

/// A loopback address free a moment ago, for the peer to listen on.
fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn both_sides(args: &VsArgs) -> std::io::Result<ExitCode> {
    let out = &args.run.out;
    std::fs::create_dir_all(out)?;
    let addr = free_loopback_addr()?;
    let argv = peer_args(&args.peer_args, addr);
    // The servers inherit the CPUs of the thread that starts them; the load's threads, started
    // later, those of this thread then.
    let pinned = if args.pin {
        let (servers, load) = super::pin::halves()?;
        super::pin::this_thread(&servers)?;
        Some((servers, load))
    } else {
        None
    };
    let peer = ChildNode::start_peer(
        &args.peer,
        &argv,
        addr,
        &out.join("peer-home"),
        &out.join(format!("{}.log", args.peer_name)),
    )?;
    let node = ChildNode::start(super::run::listen_for(&args.run), &out.join("node-home"))?;
    let peer_answer = probe(&args.run, peer.addr)?;
    let node_answer = probe(&args.run, node.addr)?;
    let same = match (&peer_answer, &node_answer) {
        (Some(p), Some(n)) => Some(work(p) == work(n)),
        _ => None,
    };
    match same {
        Some(true) => println!(
            "the same answer from both sides: {}",
            work_text(&node_answer)
        ),
        Some(false) => {
            println!(
                "the answers differ: {} {}, erlmcp {}",
                args.peer_name,
                work_text(&peer_answer),
                work_text(&node_answer)
            );
            if !args.any_answer {
                eprintln!(
                    "erlmcp bench vs: the peer does other work than erlmcp (its answer differs); \
                     --any-answer measures it anyway, as a floor"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        None => println!(
            "answers not compared: the {} profile has no probe call",
            args.run.profile.name()
        ),
    }
    if let Some((servers, load)) = &pinned {
        super::pin::this_thread(load)?;
        println!(
            "pinned: both servers on CPUs {}, the load on CPUs {}",
            super::pin::list(servers),
            super::pin::list(load)
        );
    }
    // The two sides: its name, its folder, what it serves, its rounds' results.
    let sides = [
        (
            args.peer_name.as_str(),
            out.join(&args.peer_name),
            &peer,
            "peer",
        ),
        ("erlmcp", out.join("erlmcp"), &node, "child"),
    ];
    let mut one_round = args.run.clone();
    one_round.repeat = 1;
    let (mut rounds, mut order) = ([Vec::new(), Vec::new()], Vec::new());
    for round in 0..args.run.repeat.max(1) {
        // The peer first in odd rounds, erlmcp first in even ones.
        let first = round % 2;
        for side in [first, 1 - first] {
            let (name, dir, server, kind) = &sides[side];
            let served = Served {
                addr: server.addr,
                pid: server.pid(),
                kind,
            };
            let dir = dir.join(format!("round-{}", round + 1));
            rounds[side].push(super::run::measure_on(&one_round, &dir, Some(served))?);
            order.push((*name).to_owned());
        }
    }
    let [peer_rounds, node_rounds] = rounds;
    let [(_, peer_dir, ..), (_, node_dir, ..)] = sides;
    drop(peer);
    drop(node);
    let peer_results = Results::merged(peer_rounds).map_err(std::io::Error::other)?;
    let node_results = Results::merged(node_rounds).map_err(std::io::Error::other)?;
    for (results, dir) in [(&peer_results, &peer_dir), (&node_results, &node_dir)] {
        results.write(dir).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.html"), report::run_report(results))?;
        super::run::print_summary(results, dir);
    }
    let rows = ratios(&node_results, &peer_results);
    print_rows(&args.peer_name, &rows);
    let vs = json!({
        "profile": args.run.profile.name(),
        "peer": {"name": args.peer_name, "program": args.peer, "args": argv},
        "answers": {"peer": peer_answer, "erlmcp": node_answer, "same": same},
        "order": order,
        "pinned": pinned.as_ref().map(|(servers, load)| json!({
            "servers": super::pin::list(servers), "load": super::pin::list(load),
        })),
        "figures": rows.iter().map(|r| (r.name.clone(), json!({
            "peer": r.peer, "erlmcp": r.erlmcp, "ratio": r.ratio,
        }))).collect::<serde_json::Map<_, _>>(),
    });
    let text = serde_json::to_string_pretty(&vs).map_err(std::io::Error::other)?;
    std::fs::write(out.join("vs.json"), text)?;
    std::fs::write(
        out.join("vs.html"),
        vs_report(&args.peer_name, &node_results, &peer_results, &rows, same),
    )?;
    println!(
        "wrote {} and {}",
        out.join("vs.json").display(),
        out.join("vs.html").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// One figure both sides have.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    peer: f64,
    erlmcp: f64,
    /// erlmcp's / the peer's; `None` when the peer's is 0.
    ratio: Option<f64>,
}

/// Every figure both runs have, erlmcp's over the peer's.
fn ratios(erlmcp: &Results, peer: &Results) -> Vec<Row> {
    erlmcp
        .figures
        .iter()
        .filter_map(|(name, &ours)| {
            let &theirs = peer.figures.get(name)?;
            Some(Row {
                name: name.clone(),
                peer: theirs,
                erlmcp: ours,
                ratio: (theirs != 0.0).then(|| ours / theirs),
            })
        })
        .collect()
}

fn print_rows(peer_name: &str, rows: &[Row]) {
    println!(
        "{:<36} {:>14} {:>14} {:>12}",
        "figure", peer_name, "erlmcp", "erlmcp/peer"
    );
    for row in rows {
        let ratio = row
            .ratio
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
        println!(
            "{:<36} {:>14.1} {:>14.1} {:>12}",
            row.name, row.peer, row.erlmcp, ratio
        );
    }
}

/// The vs report: the answers' verdict, the table of ratios, both runs on the same charts.
fn vs_report(
    peer_name: &str,
    erlmcp: &Results,
    peer: &Results,
    rows: &[Row],
    same: Option<bool>,
) -> String {
    let name = escape(peer_name);
    let mut body = format!(
        "<p>profile <b>{}</b>; commit <code>{}</code>; erlmcp against <b>{name}</b> in {} \
         rounds, {name} first in odd ones</p>\n",
        escape(&erlmcp.profile),
        escape(&erlmcp.commit),
        erlmcp.repeats.len(),
    );
    body += match same {
        Some(true) => "<p id=\"answers\">the same answer to the same call from both sides</p>\n",
        Some(false) => {
            "<p id=\"answers\" class=\"bad\">the answers differ: the peer does other work \
             (measured with --any-answer)</p>\n"
        }
        None => "<p id=\"answers\">answers not compared for this profile</p>\n",
    };
    let _ = writeln!(
        body,
        "<table id=\"ratios\"><tr><th>figure</th><th>{name}</th><th>erlmcp</th>\
         <th>erlmcp / {name}</th></tr>"
    );
    for row in rows {
        let ratio = row
            .ratio
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{ratio}</td></tr>",
            escape(&row.name),
            row.peer,
            row.erlmcp
        );
    }
    body += "</table>\n";
    body += &report::run_charts(&[("erlmcp", erlmcp), (peer_name, peer)]);
    report::page("erlmcp bench vs", &body)
}

/// What an answer says of the work done: a result's content and whether it is an error (absent
/// is false); anything else (an error, the request sent back) as it came.
fn work(answer: &Value) -> Value {
    match answer.get("result") {
        Some(result) => json!({
            "content": result.get("content"),
            "isError": result.get("isError").and_then(Value::as_bool).unwrap_or(false),
        }),
        None => answer.clone(),
    }
}

fn work_text(answer: &Option<Value>) -> String {
    answer
        .as_ref()
        .map_or_else(|| "-".to_owned(), |a| work(a).to_string())
}

/// One `tools/call` of the run's tool with its arguments, after `initialize`, on a connection
/// of the profile's transport; its answer. `None` for a profile without a probe (ws, scale over
/// WebSocket or HTTP).
fn probe(args: &RunArgs, addr: SocketAddr) -> std::io::Result<Option<Value>> {
    let http = match args.profile {
        Profile::Http => true,
        Profile::Tcp | Profile::Sustained | Profile::Stress | Profile::Integration => false,
        Profile::Scale if args.transport == super::ScaleTransport::Tcp => false,
        _ => return Ok(None),
    };
    let call = request_line(1, args.tool, &"x".repeat(args.payload));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(async {
        let asked = async {
            if http {
                http_call(addr, call.trim_end()).await
            } else {
                line_call(addr, &call).await
            }
        };
        tokio::time::timeout(PROBE_WAIT, asked)
            .await
            .map_err(|_| std::io::Error::other(format!("{addr} did not answer the probe call")))?
    })?;
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("{addr}: the probe's answer is not JSON: {e}")))
}

/// The call on a line stream: the answer line whose id is 1.
async fn line_call(addr: SocketAddr, call: &str) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    write.write_all(TCP_INITIALIZE.as_bytes()).await?;
    write.write_all(call.as_bytes()).await?;
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other(format!(
                "{addr} closed the connection before answering the probe call"
            )));
        }
        if !is_notification(&line) && answer_id(&line) == Some(1) {
            return Ok(line.trim_end().to_owned());
        }
    }
}

/// The call over Streamable HTTP, as the generator's session mode makes it: `initialize`, the
/// session id it gives (if any) on `notifications/initialized` and the call; the answer's JSON
/// (the last `data:` of an SSE body).
async fn http_call(addr: SocketAddr, call: &str) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    let host = addr.to_string();
    let session = open_session(&mut reader, &mut write, &host, &mut line).await?;
    write
        .write_all(http_post(&host, session.as_deref(), call).as_bytes())
        .await?;
    let (_, body) = read_http_answer(&mut reader, &mut line).await?;
    let data = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|d| !d.is_empty());
    Ok(data.unwrap_or(body.trim()).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_gets_its_address_where_the_template_says() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 4000));
        assert_eq!(
            peer_args("start --http {addr} --log-level error", addr),
            ["start", "--http", "127.0.0.1:4000", "--log-level", "error"]
        );
        assert_eq!(
            peer_args("--addr {addr}", addr),
            ["--addr", "127.0.0.1:4000"]
        );
    }

    #[test]
    fn answers_are_the_same_work_when_content_and_error_flag_agree() {
        let erlmcp: Value = serde_json::from_str(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"xx"}]}}"#,
        )
        .unwrap();
        let rmcp: Value = serde_json::from_str(
            r#"{"id":1,"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"xx"}],"isError":false}}"#,
        )
        .unwrap();
        assert_eq!(work(&erlmcp), work(&rmcp));
        // The raw line echo sends the request back: not the same work.
        let echoed: Value =
            serde_json::from_str(request_line(1, super::super::BenchTool::Echo, "xx").trim_end())
                .unwrap();
        assert_ne!(work(&erlmcp), work(&echoed));
        let failed: Value = serde_json::from_str(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"xx"}],"isError":true}}"#,
        )
        .unwrap();
        assert_ne!(work(&erlmcp), work(&failed));
    }
}
