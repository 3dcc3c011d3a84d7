//! Owns the chaos profile's plugin fault, `plugin=PATH`: a failing version of a handler plugin
//! loaded into the node under load through its admin channel (`plugins load PATH`). A version
//! the host refuses (its init or self-test fails or panics, a wrong ABI) must leave the plugins
//! as they were; one that loads and then fails (its tools panic or answer garbage) must answer
//! each of its tools over MCP without dropping the connection, and is then undone (`plugins
//! rollback NAME` to the version before it, `plugins unload NAME` when there was none). The
//! fault is over ("component back") once the node lists the plugins it listed before.

use super::{Injected, give_up, struck};
use crate::bench::{TCP_INITIALIZE, read_answer};
use erlmcp::remote::AdminClient;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};

/// How long one of the plugin's tools gets to answer.
const CALL_WAIT: Duration = Duration::from_secs(10);

/// The plugins the node lists (`plugins`), as its reply's data.
async fn listed(client: &mut AdminClient) -> Result<Value, String> {
    match client.call("plugins").await {
        Ok(reply) if reply.ok => Ok(reply.data),
        Ok(reply) => Err(reply.text),
        Err(e) => Err(e.to_string()),
    }
}

/// Loads the plugin at `path` into the node and undoes it (see the module doc); over when the
/// node lists its plugins as before (until the `next` fault at most).
pub(super) async fn fail(
    client: &mut AdminClient,
    addr: SocketAddr,
    path: &str,
    next: Option<Instant>,
) -> Injected {
    let at = Instant::now();
    let before = match listed(client).await {
        Ok(before) => before,
        Err(e) => return struck(at, None, Some(e)),
    };
    let loaded = match client.call(&format!("plugins load {path}")).await {
        Ok(reply) if reply.ok => Some(reply.data),
        // Refused: the failure is the load's own; nothing to undo.
        Ok(_) => None,
        Err(e) => return struck(at, None, Some(e.to_string())),
    };
    if let Some(loaded) = loaded {
        let name = loaded["name"].as_str().unwrap_or_default().to_owned();
        for tool in loaded["tools"].as_array().into_iter().flatten() {
            let tool = tool.as_str().unwrap_or_default();
            if let Err(e) = call_tool(addr, tool).await {
                return struck(at, None, Some(format!("calling {tool} of {name}: {e}")));
            }
        }
        let had_one_before = loaded["history"]
            .as_array()
            .is_some_and(|history| !history.is_empty());
        let undo = if had_one_before {
            format!("plugins rollback {name}")
        } else {
            format!("plugins unload {name}")
        };
        match client.call(&undo).await {
            Ok(reply) if reply.ok => {}
            Ok(reply) => return struck(at, None, Some(format!("{undo}: {}", reply.text))),
            Err(e) => return struck(at, None, Some(format!("{undo}: {e}"))),
        }
    }
    let mut back_after = None;
    while Instant::now() < give_up(at, next) {
        if listed(client).await.is_ok_and(|now| now == before) {
            back_after = Some(at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    struck(at, back_after, None)
}

/// Calls `tool` (no arguments) on a new MCP connection to `addr`: its answer, whatever it says,
/// or why none came (the connection dropped, no answer within [`CALL_WAIT`]).
async fn call_tool(addr: SocketAddr, tool: &str) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    write.write_all(TCP_INITIALIZE.as_bytes()).await?;
    read_answer(&mut lines, &mut line).await?;
    let call = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": {}},
    });
    write.write_all(format!("{call}\n").as_bytes()).await?;
    tokio::time::timeout(CALL_WAIT, read_answer(&mut lines, &mut line))
        .await
        .map_err(|_| std::io::Error::other("no answer"))??;
    Ok(line)
}
