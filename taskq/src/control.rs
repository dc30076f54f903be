//! Remote control from the calling side: what Celery's `app.control` and `celery inspect` /
//! `celery control` do, against taskq and Python Celery workers alike.
//!
//! A command is broadcast on the `celery.pidbox` fanout exchange as
//! `{"method", "arguments", "destination", "pattern", "matcher", "ticket", "reply_to"}`.
//! Before sending, the caller binds a fresh reply queue `<oid>.reply.celery.pidbox`
//! ([`crate::keys::pidbox_reply_queue`]) to the direct exchange `reply.celery.pidbox` with
//! routing key `<oid>`; every worker the command is for answers `{<node name>: <reply>}` there,
//! with the command's `ticket` as a header. The caller collects replies until its timeout
//! passes or it has `limit` of them, then removes the reply queue and its binding. The
//! answering side is the worker's `control` module.
//!
//! ```
//! # #[tokio::main] async fn main() -> taskq::Result<()> {
//! use std::time::Duration;
//! use taskq::control::ControlOptions;
//!
//! let mut config = taskq::Config::default();
//! config.broker_url = "memory://control-module-doc".into();
//! let client = taskq::Client::from_config(config)?;
//! // No worker runs here: nobody answers within the timeout.
//! let replies = client.control().ping(&ControlOptions::new().timeout(Duration::from_millis(50))).await?;
//! assert!(replies.is_empty());
//! # Ok(()) }
//! ```

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::keys::pidbox_reply_queue;
use crate::protocol::kombu::encode_message;
use crate::protocol::{raw_object, KombuMessage, RawJson, RawObject};
use crate::{Client, Result};

/// Celery's mailbox exchange (fanout): where commands go.
///
/// ```
/// assert_eq!(taskq::control::CONTROL_EXCHANGE, "celery.pidbox");
/// ```
pub const CONTROL_EXCHANGE: &str = crate::revoke::CONTROL_EXCHANGE;

/// Celery's reply exchange (direct): where answers come back, routed by the caller's `oid`.
///
/// ```
/// assert_eq!(taskq::control::REPLY_EXCHANGE, "reply.celery.pidbox");
/// ```
pub const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// How long a command waits for replies unless told otherwise (Celery's default, 1 s).
///
/// ```
/// assert_eq!(taskq::control::DEFAULT_TIMEOUT.as_secs(), 1);
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The `inspect` methods Celery's `celery inspect` offers that taskq workers answer.
///
/// ```
/// assert!(taskq::control::INSPECT_METHODS.contains(&"active_queues"));
/// ```
pub const INSPECT_METHODS: [&str; 9] = [
    "ping",
    "active",
    "registered",
    "stats",
    "reserved",
    "scheduled",
    "revoked",
    "active_queues",
    "conf",
];

/// Where a command goes and how long to wait for its replies.
///
/// ```
/// use std::time::Duration;
/// use taskq::control::ControlOptions;
///
/// let options = ControlOptions::new()
///     .destination(["celery@web-1"])
///     .timeout(Duration::from_secs(2))
///     .limit(1);
/// assert_eq!(options.get_timeout(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct ControlOptions {
    destination: Option<Vec<String>>,
    timeout: Duration,
    limit: Option<usize>,
}

impl Default for ControlOptions {
    fn default() -> Self {
        Self {
            destination: None,
            timeout: DEFAULT_TIMEOUT,
            limit: None,
        }
    }
}

impl ControlOptions {
    /// Every node, waiting [`DEFAULT_TIMEOUT`] for replies, without a limit.
    ///
    /// ```
    /// let options = taskq::control::ControlOptions::new();
    /// assert_eq!(options.get_timeout(), taskq::control::DEFAULT_TIMEOUT);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these nodes (names such as `celery@host`) act and answer; an empty list is every
    /// node.
    ///
    /// ```
    /// let options = taskq::control::ControlOptions::new().destination(["taskq@a", "celery@b"]);
    /// # let _ = options;
    /// ```
    pub fn destination<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        self.destination = (!nodes.is_empty()).then_some(nodes);
        self
    }

    /// How long to wait for replies.
    ///
    /// ```
    /// let options = taskq::control::ControlOptions::new().timeout(std::time::Duration::from_millis(300));
    /// assert_eq!(options.get_timeout().as_millis(), 300);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Stop waiting once this many replies came (e.g. the number of nodes in `destination`).
    ///
    /// ```
    /// let options = taskq::control::ControlOptions::new().limit(3);
    /// # let _ = options;
    /// ```
    pub fn limit(mut self, replies: usize) -> Self {
        self.limit = Some(replies);
        self
    }

    /// The timeout set.
    ///
    /// ```
    /// assert_eq!(taskq::control::ControlOptions::new().get_timeout().as_secs(), 1);
    /// ```
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }
}

/// One node's answer to a command.
///
/// ```
/// let reply = taskq::control::NodeReply { node: "taskq@h".into(), reply: serde_json::json!({"ok": "pong"}) };
/// assert_eq!(reply.reply["ok"], "pong");
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeReply {
    /// The node name, e.g. `celery@web-1`.
    pub node: String,
    /// What it answered: `{"ok": …}`, `{"error": …}`, a list, or an object.
    pub reply: Value,
}

/// Remote control through a [`Client`]'s broker, from [`Client::control`].
///
/// ```no_run
/// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
/// use taskq::control::ControlOptions;
///
/// for reply in client.control().inspect("active", &ControlOptions::new()).await? {
///     println!("{}: {}", reply.node, reply.reply);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Control {
    client: Client,
}

impl Control {
    /// Remote control through `client`'s broker.
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Broadcasts command `method` with `arguments` (a JSON object; `null` is `{}`) and
    /// collects the replies, in the order they came, as Celery's `app.control.broadcast(...,
    /// reply=True)` does. A node answers once; replies to other commands are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) when the broker cannot be reached.
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// use taskq::control::ControlOptions;
    ///
    /// let replies = client
    ///     .control()
    ///     .broadcast("clock", serde_json::json!({}), &ControlOptions::new())
    ///     .await?;
    /// # let _ = replies; Ok(()) }
    /// ```
    pub async fn broadcast(
        &self,
        method: &str,
        arguments: Value,
        options: &ControlOptions,
    ) -> Result<Vec<NodeReply>> {
        self.broadcast_raw(method, object_or_empty(arguments), options)
            .await
    }

    /// [`broadcast`](Self::broadcast) with the arguments as written, in their order.
    async fn broadcast_raw(
        &self,
        method: &str,
        arguments: RawJson,
        options: &ControlOptions,
    ) -> Result<Vec<NodeReply>> {
        let broker = self.client.broker();
        let oid = uuid::Uuid::new_v4().to_string();
        let ticket = uuid::Uuid::new_v4().to_string();
        let queue = pidbox_reply_queue(&oid);
        broker.bind(REPLY_EXCHANGE, &oid, &queue).await?;
        let collected = self
            .send_and_collect(method, arguments, options, &oid, &ticket, &queue)
            .await;
        // The reply queue is this call's alone: remove it whatever happened.
        let unbound = broker.unbind(REPLY_EXCHANGE, &oid, &queue).await;
        let purged = broker.purge(std::slice::from_ref(&queue)).await;
        let replies = collected?;
        unbound?;
        purged?;
        Ok(replies)
    }

    /// Broadcasts command `method` without asking for replies (Celery's `reply=False`).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) when the broker cannot be reached.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://cast-doc".into();
    /// let client = taskq::Client::from_config(config)?;
    /// client.control().cast("enable_events", serde_json::json!({}), None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn cast(
        &self,
        method: &str,
        arguments: Value,
        destination: Option<&[String]>,
    ) -> Result<()> {
        let options = ControlOptions::new().destination(destination.unwrap_or_default().to_vec());
        self.cast_raw(method, object_or_empty(arguments), &options)
            .await
    }

    /// [`cast`](Self::cast) with the arguments as written, in their order.
    async fn cast_raw(
        &self,
        method: &str,
        arguments: RawJson,
        options: &ControlOptions,
    ) -> Result<()> {
        let envelope = self.command(method, arguments, options, None).await?;
        self.client
            .broker()
            .broadcast(CONTROL_EXCHANGE, "", &envelope)
            .await
    }

    /// `ping`: which nodes are up. A healthy node answers `{"ok": "pong"}`.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// let up = client.control().ping(&taskq::control::ControlOptions::new()).await?;
    /// println!("{} nodes online", up.len());
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self, options: &ControlOptions) -> Result<Vec<NodeReply>> {
        self.broadcast("ping", Value::Object(Map::new()), options)
            .await
    }

    /// An inspect command (see [`INSPECT_METHODS`]: `active`, `registered`, `stats`,
    /// `reserved`, `scheduled`, `revoked`, `active_queues`, `conf`, `ping`), sent with the
    /// arguments `celery inspect` sends for it.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// let registered = client.control().inspect("registered", &taskq::control::ControlOptions::new()).await?;
    /// # let _ = registered; Ok(()) }
    /// ```
    pub async fn inspect(&self, method: &str, options: &ControlOptions) -> Result<Vec<NodeReply>> {
        self.broadcast(method, inspect_arguments(method), options)
            .await
    }

    /// Revokes `ids` (and with `terminate`, stops their runs): records them in the broker's
    /// revoked set first, as [`Client::revoke`] does, so the revoke holds for workers not
    /// listening now, then broadcasts Celery's `revoke` command and collects the replies.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// let ids = vec!["9b1c7a0e-0000-4000-8000-000000000001".to_owned()];
    /// client.control().revoke(&ids, true, &taskq::control::ControlOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke(
        &self,
        ids: &[String],
        terminate: bool,
        options: &ControlOptions,
    ) -> Result<Vec<NodeReply>> {
        self.client.broker().record_revokes(ids).await?;
        self.broadcast_raw("revoke", revoke_arguments(ids, terminate), options)
            .await
    }

    /// Records `ids` as revoked in the broker, then broadcasts Celery's `revoke` without
    /// waiting for replies, as `app.control.revoke` does: what [`Client::revoke`] and
    /// [`Client::terminate`] send.
    pub(crate) async fn cast_revoke(&self, ids: &[String], terminate: bool) -> Result<()> {
        self.client.broker().record_revokes(ids).await?;
        self.cast_raw(
            "revoke",
            revoke_arguments(ids, terminate),
            &ControlOptions::new(),
        )
        .await
    }

    /// `enable_events`: nodes start sending task events (`celery control enable_events`).
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// client.control().enable_events(&taskq::control::ControlOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enable_events(&self, options: &ControlOptions) -> Result<Vec<NodeReply>> {
        self.broadcast("enable_events", Value::Object(Map::new()), options)
            .await
    }

    /// `disable_events`: nodes stop sending task events.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// client.control().disable_events(&taskq::control::ControlOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn disable_events(&self, options: &ControlOptions) -> Result<Vec<NodeReply>> {
        self.broadcast("disable_events", Value::Object(Map::new()), options)
            .await
    }

    /// Sets the fleet-wide rate limit of task `task` (Celery's `app.control.rate_limit`):
    /// `rate` in Celery's syntax (`"10/s"`, `"100/m"`, `"2/h"`), `"0"` to lift it. Every taskq
    /// worker applies it to the turns taken from then on (see [`crate::rate_limit`]); Python
    /// workers set their own per-worker limit. Returns the replies.
    ///
    /// # Errors
    ///
    /// [`Error::Config`](crate::Error::Config) for a rate not in Celery's syntax (nothing is
    /// sent), else as [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// let replies = client
    ///     .control()
    ///     .rate_limit("tasks.send_push_notification", "50/s", &taskq::control::ControlOptions::new())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn rate_limit(
        &self,
        task: &str,
        rate: &str,
        options: &ControlOptions,
    ) -> Result<Vec<NodeReply>> {
        crate::rate_limit::RateLimit::parse(rate)
            .map_err(|e| crate::Error::Config(e.to_string()))?;
        let arguments = serde_json::json!({"task_name": task, "rate_limit": rate});
        self.broadcast("rate_limit", arguments, options).await
    }

    /// Pauses `queue` for every taskq worker: recorded in the broker's paused set (so workers
    /// started later skip it too), then broadcast as `pause_queue`, which running taskq
    /// workers follow before their next fetch (within a second). Messages sent to it stay
    /// queued until [`resume_queue`](Self::resume_queue). Python Celery workers know no such
    /// thing and go on consuming it. Returns the taskq workers' replies.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// use taskq::control::ControlOptions;
    ///
    /// client.control().pause_queue("reports", &ControlOptions::new()).await?;
    /// // ... a migration, a downstream outage ...
    /// client.control().resume_queue("reports", &ControlOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause_queue(
        &self,
        queue: &str,
        options: &ControlOptions,
    ) -> Result<Vec<NodeReply>> {
        self.client.broker().pause_queue(queue).await?;
        self.broadcast("pause_queue", serde_json::json!({"queue": queue}), options)
            .await
    }

    /// Resumes a queue paused with [`pause_queue`](Self::pause_queue): removed from the
    /// broker's paused set, then broadcast as `resume_queue`. Returns the taskq workers'
    /// replies.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// client.control().resume_queue("reports", &taskq::control::ControlOptions::new()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn resume_queue(
        &self,
        queue: &str,
        options: &ControlOptions,
    ) -> Result<Vec<NodeReply>> {
        self.client.broker().resume_queue(queue).await?;
        self.broadcast("resume_queue", serde_json::json!({"queue": queue}), options)
            .await
    }

    /// The queues paused now, by name.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) when the broker cannot be reached.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://paused-doc".into();
    /// let client = taskq::Client::from_config(config)?;
    /// let options = taskq::control::ControlOptions::new().timeout(std::time::Duration::ZERO);
    /// client.control().pause_queue("reports", &options).await?;
    /// assert_eq!(client.control().paused_queues().await?, ["reports"]);
    /// # Ok(()) }
    /// ```
    pub async fn paused_queues(&self) -> Result<Vec<String>> {
        self.client.broker().paused_queues().await
    }

    /// Sends the command, then reads replies until the timeout or the limit.
    async fn send_and_collect(
        &self,
        method: &str,
        arguments: RawJson,
        options: &ControlOptions,
        oid: &str,
        ticket: &str,
        queue: &str,
    ) -> Result<Vec<NodeReply>> {
        let broker = self.client.broker();
        let envelope = self
            .command(method, arguments, options, Some((oid, ticket)))
            .await?;
        let deadline = tokio::time::Instant::now() + options.timeout;
        broker.broadcast(CONTROL_EXCHANGE, "", &envelope).await?;
        let mut replies: Vec<NodeReply> = Vec::new();
        while options.limit.is_none_or(|limit| replies.len() < limit) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(raw) = broker.pop(queue, left).await? else {
                break;
            };
            for reply in read_reply(&raw, ticket) {
                if !replies.iter().any(|r| r.node == reply.node) {
                    replies.push(reply);
                }
            }
        }
        Ok(replies)
    }

    /// The command's envelope, as kombu's `Mailbox._broadcast` writes it: headers `clock`
    /// and `expires` (the broker's clock now plus the timeout), delivery mode 2.
    async fn command(
        &self,
        method: &str,
        arguments: RawJson,
        options: &ControlOptions,
        reply: Option<(&str, &str)>,
    ) -> Result<String> {
        let mut body = raw_object! {
            "method" => method,
            "arguments" => arguments,
            "destination" => options.destination,
            "pattern" => (),
            "matcher" => (),
        };
        // `0` (never) for a command that asks no reply, as `app.control.revoke` sends it.
        let mut expires = RawJson::from(0);
        if let Some((oid, ticket)) = reply {
            body.set("ticket", ticket);
            body.set(
                "reply_to",
                &raw_object! {"exchange" => REPLY_EXCHANGE, "routing_key" => oid},
            );
            let now = self.client.clock().now(&**self.client.broker()).await?;
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
            expires = RawJson::from((now + options.timeout).as_secs_f64());
        }
        let headers = raw_object! {"clock" => 0, "expires" => expires};
        Ok(encode_message(
            CONTROL_EXCHANGE,
            "",
            &body.to_raw(),
            &headers,
            2,
        ))
    }
}

/// The replies in one reply envelope carrying `ticket`: `{node: reply, …}`. Anything else
/// (another command's reply, an undecodable message) gives none.
fn read_reply(raw: &str, ticket: &str) -> Vec<NodeReply> {
    let Ok(message) = KombuMessage::decode(raw) else {
        return Vec::new();
    };
    if message.headers.get("ticket").and_then(Value::as_str) != Some(ticket) {
        return Vec::new();
    }
    match message.body {
        Value::Object(nodes) => nodes
            .into_iter()
            .map(|(node, reply)| NodeReply { node, reply })
            .collect(),
        _ => Vec::new(),
    }
}

/// Command arguments given as a `Value`: `null` is `{}`.
fn object_or_empty(arguments: Value) -> RawJson {
    match arguments {
        Value::Null => RawObject::new().to_raw(),
        other => RawJson::from(other),
    }
}

/// The arguments of Celery's `revoke` command for `ids`, in Celery's order: `task_id` (one id,
/// or a list), `terminate`, `signal`.
fn revoke_arguments(ids: &[String], terminate: bool) -> RawJson {
    let task_id = match ids {
        [one] => RawJson::from(one.as_str()),
        many => RawJson::from_serialize(many).expect("ids serialize"),
    };
    raw_object! {"task_id" => task_id, "terminate" => terminate, "signal" => "SIGTERM"}.to_raw()
}

/// The arguments `celery inspect <method>` sends (Celery 5's `celery/app/control.py`).
fn inspect_arguments(method: &str) -> Value {
    let mut arguments = Map::new();
    match method {
        "active" => {
            arguments.insert("safe".into(), Value::Null);
        }
        "registered" => {
            arguments.insert("taskinfoitems".into(), Value::Array(Vec::new()));
        }
        "conf" => {
            arguments.insert("with_defaults".into(), false.into());
        }
        _ => {}
    }
    Value::Object(arguments)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replies_are_read_by_ticket() {
        let body = RawJson::from(&json!({"taskq@h": {"ok": "pong"}}));
        let headers = raw_object! {"ticket" => "t-1", "clock" => 3};
        let raw = encode_message(REPLY_EXCHANGE, "oid", &body, &headers, 1);
        assert_eq!(
            read_reply(&raw, "t-1"),
            [NodeReply {
                node: "taskq@h".into(),
                reply: json!({"ok": "pong"})
            }]
        );
        assert!(
            read_reply(&raw, "t-2").is_empty(),
            "another command's reply"
        );
        assert!(read_reply("not json", "t-1").is_empty());
    }

    #[tokio::test]
    async fn the_revoke_cast_is_celerys_revoke() {
        let mut config = crate::Config::default();
        config.broker_url = "memory://control-revoke-test".into();
        config.result_backend = config.broker_url.clone();
        let control = Control::new(Client::from_config(config).unwrap());
        let cast = |ids: &[&str], terminate: bool| {
            let ids: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
            let arguments = revoke_arguments(&ids, terminate);
            let control = control.clone();
            async move {
                let raw = control
                    .command("revoke", arguments, &ControlOptions::new(), None)
                    .await
                    .unwrap();
                KombuMessage::decode(&raw).unwrap()
            }
        };
        let one = cast(&["id-1"], false).await;
        assert_eq!(
            one.body,
            json!({"method": "revoke",
                   "arguments": {"task_id": "id-1", "terminate": false, "signal": "SIGTERM"},
                   "destination": null, "pattern": null, "matcher": null})
        );
        assert_eq!(
            revoke_arguments(&["id-1".to_owned()], false).as_str(),
            r#"{"task_id": "id-1", "terminate": false, "signal": "SIGTERM"}"#
        );
        assert_eq!(
            (
                one.exchange.as_str(),
                one.routing_key.as_str(),
                one.delivery_mode
            ),
            ("celery.pidbox", "", 2)
        );
        assert_eq!(
            (one.headers["clock"].clone(), one.headers["expires"].clone()),
            (json!(0), json!(0))
        );
        let many = cast(&["a", "b"], true).await;
        assert_eq!(many.body["arguments"]["task_id"], json!(["a", "b"]));
        assert_eq!(many.body["arguments"]["terminate"], true);
    }

    #[test]
    fn inspect_sends_celerys_arguments() {
        assert_eq!(inspect_arguments("active"), json!({"safe": null}));
        assert_eq!(
            inspect_arguments("registered"),
            json!({"taskinfoitems": []})
        );
        assert_eq!(inspect_arguments("conf"), json!({"with_defaults": false}));
        assert_eq!(inspect_arguments("stats"), json!({}));
    }
}
