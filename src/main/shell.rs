//! Owns the operator side of `erlmcp remote` and `erlmcp plugin`: resolving which node and
//! which cookie, the interactive shell (history, completion, Ctrl-C ends a stream rather than the
//! shell), `--eval` for scripts, and how replies are printed (text, or `--json`).

use crate::{COOKIE_FLAG_WARNING, NodeArgs, PluginAction, PluginArgs, RemoteArgs, load_config};
use erlmcp::admin::commands::{COMMANDS, LOCAL_ONLY};
use erlmcp::admin::cookie;
use erlmcp::remote::{AdminClient, RemoteError, RemoteTls, Target};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Usage, connection and authentication problems.
const EXIT_UNREACHABLE: u8 = 2;

/// The node asked for, and the configuration's own node (through which a member on another host
/// is reached when the name has no socket here).
fn target(args: &NodeArgs) -> Result<(Target, String), String> {
    let config = load_config(args.config.as_deref()).map_err(|e| e.to_string())?;
    // --cookie, else --cookie-file, else ERLMCP_COOKIE, else the configuration's cookie file.
    let cookie = if let Some(cookie) = &args.cookie {
        eprintln!("erlmcp: warning: {COOKIE_FLAG_WARNING}");
        cookie.clone()
    } else if let Some(file) = &args.cookie_file {
        cookie::read(file).map_err(|e| format!("no cookie: {e}"))?
    } else if let Some(cookie) = &config.cookie {
        cookie.clone()
    } else {
        cookie::read(&config.cookie_file()).map_err(|e| {
            format!("no cookie: {e} (start a node first, or pass --cookie-file / ERLMCP_COOKIE)")
        })?
    };
    let node = args.node.clone().unwrap_or(config.node_name.clone());
    let tls = args.tls_ca.as_ref().map(|ca| RemoteTls {
        ca: ca.clone(),
        name: args.tls_name.clone().unwrap_or_else(|| {
            node.parse::<std::net::SocketAddr>()
                .map_or_else(|_| node.clone(), |addr| addr.ip().to_string())
        }),
        client: args.tls_cert.clone().zip(args.tls_key.clone()),
    });
    Ok((
        Target {
            node,
            socket_dir: config.admin_socket_dir(),
            cookie,
            tls,
        },
        config.node_name.clone(),
    ))
}

/// How command lines reach the node asked for.
#[derive(Clone)]
enum Route {
    /// Its own admin channel.
    Direct,
    /// Through the local node's admin channel, to a member of its cluster by name (`on NODE …`,
    /// `top --node NODE`): a node on another host, found by the cluster rather than by a socket.
    Through(String),
}

impl Route {
    /// The line to send for `line`, or why it cannot go this way.
    fn line(&self, line: &str) -> Result<String, String> {
        let Route::Through(node) = self else {
            return Ok(line.to_owned());
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["top", rest @ ..] if rest.iter().all(|w| !w.starts_with("--")) => {
                Ok(format!("top {} --node {node}", rest.join(" ")))
            }
            [first, ..] if LOCAL_ONLY.contains(first) => Err(format!(
                "`{first}` is not run through another member (node `{node}` is reached through the cluster): ask the local node itself, or connect to {node}'s admin channel"
            )),
            _ => Ok(format!("on {node} {line}")),
        }
    }
}

/// Connects to `target`; when it names a node with no socket here, to the local node instead,
/// if `target.node` is a member of its cluster.
async fn connect(target: &Target, local: &str) -> Result<(AdminClient, Route), String> {
    let direct = match AdminClient::connect(target).await {
        Ok(client) => return Ok((client, Route::Direct)),
        Err(e) => e,
    };
    let by_name = target.node.parse::<std::net::SocketAddr>().is_err();
    if !by_name || target.node == local || !matches!(direct, RemoteError::Connect { .. }) {
        return Err(direct.to_string());
    }
    let through = Target {
        node: local.to_owned(),
        ..target.clone()
    };
    let Ok(mut client) = AdminClient::connect(&through).await else {
        return Err(direct.to_string());
    };
    let members = client.call("nodes").await.map_err(|e| e.to_string())?;
    let is_member = members.data["members"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["name"] == target.node.as_str()));
    if !is_member {
        return Err(format!(
            "{direct}; nor is it a member of local node `{}`'s cluster",
            client.node
        ));
    }
    eprintln!(
        "erlmcp: node `{}` has no socket here: reaching it through the cluster of local node `{}`",
        target.node, client.node
    );
    Ok((client, Route::Through(target.node.clone())))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))
}

fn unreachable(message: &str) -> ExitCode {
    eprintln!("erlmcp: {message}");
    ExitCode::from(EXIT_UNREACHABLE)
}

/// `erlmcp remote`.
pub(crate) fn run(args: RemoteArgs) -> ExitCode {
    let (target, local) = match target(&args.node) {
        Ok(found) => found,
        Err(e) => return unreachable(&e),
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(e) => return unreachable(&e),
    };
    runtime.block_on(async move {
        let (mut client, route) = match connect(&target, &local).await {
            Ok(connected) => connected,
            Err(e) => return unreachable(&e),
        };
        match args.eval {
            Some(command) => match route.line(&command) {
                Ok(line) => match execute(&mut client, &line, args.json).await {
                    Ok(true) => ExitCode::SUCCESS,
                    Ok(false) => ExitCode::FAILURE,
                    Err(e) => unreachable(&e),
                },
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            },
            None => interactive(client, &target, &local, route, args.json).await,
        }
    })
}

/// `erlmcp plugin …`: one admin command.
pub(crate) fn plugin(args: PluginArgs) -> ExitCode {
    let command = match &args.action {
        PluginAction::Load {
            path,
            canary,
            cluster,
        } => {
            // The node resolves the path: make it absolute here, where the user typed it.
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            if path
                .to_str()
                .is_none_or(|p| p.contains(char::is_whitespace))
            {
                return unreachable(
                    "plugin paths with spaces or non-UTF-8 characters are not supported",
                );
            }
            match (canary, cluster) {
                (Some(permille), _) => {
                    format!("plugins load {} --canary {permille}", path.display())
                }
                (None, true) => format!("plugins load {} --cluster", path.display()),
                (None, false) => format!("plugins load {}", path.display()),
            }
        }
        PluginAction::Rollback { name } => format!("plugins rollback {name}"),
        PluginAction::Promote { name } => format!("plugins promote {name}"),
        PluginAction::Unload { name } => format!("plugins unload {name}"),
        PluginAction::List { all: false } => "plugins list".to_owned(),
        PluginAction::List { all: true } => "plugins list --all".to_owned(),
    };
    run(RemoteArgs {
        node: args.node,
        eval: Some(command),
        json: args.json,
    })
}

/// Runs one command, printing its replies; `Ok(ok)` once it ends, `Err` if the link broke.
async fn execute(client: &mut AdminClient, command: &str, json: bool) -> Result<bool, String> {
    let id = client.start(command).await.map_err(|e| e.to_string())?;
    let live_top =
        command.trim_start().starts_with("top") && std::io::stdout().is_terminal() && !json;
    let mut cancelled = false;
    let mut ok = true;
    loop {
        let reply = tokio::select! {
            reply = client.next_reply() => reply.map_err(|e| e.to_string())?,
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                client.cancel(id).await.map_err(|e| e.to_string())?;
                continue;
            }
        };
        if reply.id != id && reply.id != 0 {
            continue;
        }
        ok &= reply.ok;
        let last = !reply.more;
        if json {
            // Structured data only: the human form (`text`: tables, rendered trees) is what
            // the shell prints without `--json`; a failure's message is in `data.error`.
            if !(last && reply.text.is_empty() && reply.data.is_null()) {
                let line = serde_json::json!({
                    "id": reply.id, "ok": reply.ok, "data": reply.data, "more": reply.more,
                });
                println!("{line}");
            }
        } else if !reply.text.is_empty() {
            if live_top {
                print!("\x1b[2J\x1b[H");
            }
            if reply.ok {
                println!("{}", reply.text.trim_end());
            } else {
                eprintln!("error: {}", reply.text.trim_end());
            }
        }
        let _ = std::io::stdout().flush();
        if last {
            return Ok(ok);
        }
    }
}

/// Completes the first word of a line with the command names.
struct Completion;

impl rustyline::completion::Completer for Completion {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let typed = &line[..pos];
        let start = typed.rfind(' ').map_or(0, |i| i + 1);
        let words: Vec<String> = COMMANDS
            .iter()
            .filter_map(|(usage, _)| {
                let usage_words: Vec<&str> = usage.split_whitespace().collect();
                let typed_words: Vec<&str> = typed.split_whitespace().collect();
                let index = if typed.ends_with(' ') {
                    typed_words.len()
                } else {
                    typed_words.len().saturating_sub(1)
                };
                let prefix_matches = typed_words
                    .iter()
                    .take(index)
                    .zip(&usage_words)
                    .all(|(a, b)| a == b);
                let candidate = usage_words.get(index)?;
                (prefix_matches
                    && candidate
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-')
                    && candidate.starts_with(&typed[start..]))
                .then(|| (*candidate).to_owned())
            })
            .collect();
        let mut words = words;
        words.sort();
        words.dedup();
        Ok((start, words))
    }
}

impl rustyline::hint::Hinter for Completion {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for Completion {}
impl rustyline::validate::Validator for Completion {}
impl rustyline::Helper for Completion {}

async fn interactive(
    mut client: AdminClient,
    target: &Target,
    local: &str,
    route: Route,
    json: bool,
) -> ExitCode {
    let mut editor = match LineEditor::new() {
        Ok(editor) => editor,
        Err(e) => return unreachable(&format!("cannot start the line editor: {e}")),
    };
    editor.set_helper(Some(Completion));
    let history = erlmcp::config::home_dir().map(|h| h.join(".erlmcp").join("history"));
    if let Some(path) = &history {
        load_history(&mut editor, path);
    }
    let shown = match &route {
        Route::Direct => client.node.clone(),
        Route::Through(node) => node.clone(),
    };
    println!(
        "erlmcp remote shell on node `{shown}` — `help` lists commands, Ctrl-C ends a live view, Ctrl-D leaves"
    );
    let prompt = format!("({shown})> ");
    loop {
        match editor.readline(&prompt) {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                if matches!(line, "quit" | "exit") {
                    break;
                }
                let line = match route.line(line) {
                    Ok(line) => line,
                    Err(e) => {
                        eprintln!("error: {e}");
                        continue;
                    }
                };
                if let Err(e) = execute(&mut client, &line, json).await {
                    // The node closes a connection left idle past its idle_timeout: connect
                    // again (the command is not sent twice: it may have run).
                    eprintln!("erlmcp: {e}");
                    match connect(target, local).await {
                        Ok((again, _)) => {
                            client = again;
                            eprintln!(
                                "erlmcp: reconnected to node `{}`; run the command again if it did not run",
                                client.node
                            );
                        }
                        Err(e) => {
                            eprintln!("erlmcp: {e}");
                            return ExitCode::from(EXIT_UNREACHABLE);
                        }
                    }
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break,
        }
    }
    if let Some(path) = &history {
        save_history(&editor, path);
    }
    ExitCode::SUCCESS
}

type LineEditor = rustyline::Editor<Completion, rustyline::history::DefaultHistory>;

/// Lines of history kept in the file.
const HISTORY_KEPT: usize = 1000;

/// Adds the lines of the history file, if any. (rustyline is built without its file history,
/// whose `load_history` / `save_history` panic as unimplemented: the file is kept here.)
fn load_history(editor: &mut LineEditor, path: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let _ = editor.add_history_entry(line);
    }
}

/// Writes the last [`HISTORY_KEPT`] lines of history, private to the user.
fn save_history(editor: &LineEditor, path: &std::path::Path) {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let entries: Vec<&String> = editor.history().into_iter().collect();
    let kept = &entries[entries.len().saturating_sub(HISTORY_KEPT)..];
    let mut text = String::new();
    for line in kept {
        text.push_str(line);
        text.push('\n');
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(text.as_bytes());
    }
}
