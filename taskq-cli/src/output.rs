//! Printing: for people by default, one JSON document with `--json`; and the shared flags
//! and printing of remote-control commands (`inspect`, `control`, `status`).

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Map, Value};
use taskq::control::{ControlOptions, NodeReply};

/// How the command prints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether the output is JSON.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints `value` as one line of JSON.
    pub(crate) fn print_json(&self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        println!("{}", serde_json::to_string(value)?);
        Ok(())
    }
}

/// What `celery inspect/control` print when nobody answered.
pub(crate) const NO_REPLIES: &str = "No nodes replied within time constraint";

/// The flags of a remote-control command: which nodes, how long to wait.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ControlFlags {
    /// Only these nodes (e.g. celery@host); repeat or separate by commas.
    #[arg(
        short = 'd',
        long = "destination",
        value_name = "NODE",
        value_delimiter = ','
    )]
    pub(crate) destination: Vec<String>,

    /// Seconds to wait for replies.
    #[arg(short = 't', long, value_name = "SECS", default_value_t = 1.0)]
    pub(crate) timeout: f64,
}

impl ControlFlags {
    /// The options of the command: destination, timeout, and a reply limit of one per named
    /// node (no need to wait once all have answered).
    pub(crate) fn options(&self) -> anyhow::Result<ControlOptions> {
        let timeout = Duration::try_from_secs_f64(self.timeout).map_err(|_| {
            anyhow::anyhow!(
                "--timeout must be a number of seconds, not {}",
                self.timeout
            )
        })?;
        let mut options = ControlOptions::new()
            .timeout(timeout)
            .destination(self.destination.clone());
        if !self.destination.is_empty() {
            options = options.limit(self.destination.len());
        }
        Ok(options)
    }
}

/// Replies as one JSON object `{node: reply}`, Celery's `flatten_reply`.
pub(crate) fn replies_object(replies: &[NodeReply]) -> Value {
    let nodes: Map<String, Value> = replies
        .iter()
        .map(|r| (r.node.clone(), r.reply.clone()))
        .collect();
    Value::Object(nodes)
}

/// Prints replies as `celery inspect` does, or as `{node: reply}` JSON; with no reply, says
/// so on stderr and fails.
pub(crate) fn print_replies(out: &Output, replies: &[NodeReply]) -> anyhow::Result<ExitCode> {
    if replies.is_empty() {
        eprintln!("Error: {NO_REPLIES}");
        return Ok(ExitCode::FAILURE);
    }
    if out.json() {
        out.print_json(&replies_object(replies))?;
    } else {
        for reply in replies {
            print!("{}", human_reply(reply));
        }
        println!();
        println!("{}", nodes_online(replies.len()));
    }
    Ok(ExitCode::SUCCESS)
}

/// `N node(s) online.`
pub(crate) fn nodes_online(n: usize) -> String {
    format!("{n} {} online.", if n == 1 { "node" } else { "nodes" })
}

/// One node's reply as `celery inspect` prints it: `ok`/`error` objects as `OK`/`ERROR`
/// and their value, lists item by item (`- empty -`), anything else as indented JSON.
pub(crate) fn human_reply(reply: &NodeReply) -> String {
    let mut text = String::new();
    match &reply.reply {
        Value::Object(o) if o.len() == 1 && (o.contains_key("ok") || o.contains_key("error")) => {
            let (word, value) = match o.get("ok") {
                Some(v) => ("OK", v),
                None => ("ERROR", &o["error"]),
            };
            text.push_str(&format!("->  {}: {word}\n", reply.node));
            text.push_str(&format!("        {}\n", plain(value)));
        }
        Value::Array(items) => {
            text.push_str(&format!("->  {}: OK\n", reply.node));
            if items.is_empty() {
                text.push_str("    - empty -\n");
            }
            for item in items {
                text.push_str(&format!("    * {}\n", plain(item)));
            }
        }
        other => {
            text.push_str(&format!("->  {}: OK\n", reply.node));
            let pretty = serde_json::to_string_pretty(other).unwrap_or_default();
            for line in pretty.lines() {
                text.push_str(&format!("    {line}\n"));
            }
        }
    }
    text
}

/// A value as text: strings without quotes, anything else as compact JSON.
pub(crate) fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reply(value: Value) -> NodeReply {
        NodeReply {
            node: "taskq@h".into(),
            reply: value,
        }
    }

    #[test]
    fn replies_print_as_celery_inspect_prints_them() {
        assert_eq!(
            human_reply(&reply(json!({"ok": "pong"}))),
            "->  taskq@h: OK\n        pong\n"
        );
        assert_eq!(
            human_reply(&reply(json!({"error": "No such command: x"}))),
            "->  taskq@h: ERROR\n        No such command: x\n"
        );
        assert_eq!(
            human_reply(&reply(json!([]))),
            "->  taskq@h: OK\n    - empty -\n"
        );
        assert_eq!(
            human_reply(&reply(json!(["a", "b"]))),
            "->  taskq@h: OK\n    * a\n    * b\n"
        );
        assert!(human_reply(&reply(json!({"total": {}, "pid": 1}))).contains("    \"pid\": 1"));
        assert_eq!(nodes_online(1), "1 node online.");
        assert_eq!(nodes_online(2), "2 nodes online.");
    }
}
