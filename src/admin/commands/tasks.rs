//! Owns the shell's `tasks` command: every task the node keeps (the tasks extension), oldest
//! first: its id, owner, tool, status, age, time left before its TTL, and whether its actor runs.

use super::{Answer, to_json};
use serde_json::json;
use std::fmt::Write as _;

pub(super) fn tasks(args: &[&str]) -> Result<Answer, String> {
    if !args.is_empty() {
        return Err("usage: tasks".to_owned());
    }
    let Some(tasks) = crate::tasks::current() else {
        return Ok(Answer::new(
            "no tasks: the tree is not running".to_owned(),
            json!(null),
        ));
    };
    let all = tasks.summaries();
    let mut text = format!(
        "{:<32} {:<24} {:<20} {:<14} {:>7} {:>9} {:>5}\n",
        "TASK", "OWNER", "TOOL", "STATUS", "AGE_S", "EXPIRES_S", "ACTOR"
    );
    for t in &all {
        let _ = writeln!(
            text,
            "{:<32} {:<24} {:<20} {:<14} {:>7} {:>9} {:>5}",
            t.id,
            t.owner,
            t.tool,
            t.status,
            t.age_seconds,
            t.expires_in_seconds,
            if t.actor { "yes" } else { "no" }
        );
    }
    let _ = write!(
        text,
        "{} task(s); at most {} kept",
        all.len(),
        tasks.settings.max_tasks
    );
    Ok(Answer::new(
        text,
        json!({ "tasks": to_json(&all), "max_tasks": tasks.settings.max_tasks }),
    ))
}
