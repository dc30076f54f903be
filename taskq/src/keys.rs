//! Every Redis key and channel name taskq reads or writes, built here and nowhere else.
//!
//! Names follow kombu's Redis transport and Celery's Redis result backend, so Python and Rust
//! peers sharing one Redis see the same data:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<queue>`, `<queue>\x06\x163`, `…6`, `…9` | list | messages per priority bucket (kombu's `priority_steps`, `[0, 3, 6, 9]` unless configured) |
//! | `unacked` | hash | delivery tag → `[envelope, exchange, routing_key]` |
//! | `unacked_index` | zset | delivery tag → fetch time |
//! | `_kombu.binding.<queue>` | set | the queue's binding (declared on publish) |
//! | `taskq.leases` | zset | delivery tag → last renewal, for messages taskq workers hold |
//! | `taskq.eta` | zset | delivery tag → due time of a parked ETA message |
//! | `taskq.eta.messages` | hash | delivery tag → `[list key, envelope]` |
//! | `taskq.dead_letter` | list | messages that cannot run, with the reason |
//! | `taskq.beat.slots` | hash | periodic entry → the last slot fired (ms since the epoch) |
//! | `taskq.beat.leader` | string | the token of the scheduler holding the lead, with a lease |
//! | `taskq.paused_queues` | set | queues taskq workers do not fetch from until resumed (see [`BrokerKeys::paused_queues`]) |
//! | `taskq.revoked` | zset | revoked task id → revoke time (server clock), at most 50,000 ids of the last 3 h (see [`crate::revoke`]) |
//! | `celery-task-meta-<id>` | string + channel | the result record, also published |
//! | `celery-taskset-meta-<gid>` | string | a saved group result (`GroupResult.save()`) |
//! | `celery-taskset-meta-<gid>.j`, `.t`, `.s`, `.d`, `.c` | zset, string, string, set, string | a chord's count (see [`ChordKeys`]) |
//! | `<oid>.reply.celery.pidbox` | list | remote-control replies to one caller (see [`pidbox_reply_queue`]) |
//! | `_kombu.binding.<exchange>` | set | `routing_key\x06\x16pattern\x06\x16queue` of a direct exchange (e.g. `reply.celery.pidbox`) |
//! | `/<db>.<exchange>[/<routing_key>]` | Pub/Sub channel | fanout exchanges: `celery.pidbox` (remote control), `celeryev` (events) |
//!
//! On a Redis Cluster (`redis+cluster://`, see `broker::cluster`), each broker key above is kept
//! once per shard, behind the shard's hash tag after the prefix (`{taskq.1.2}celery`,
//! `{taskq.1.2}unacked`; see [`BrokerKeys::in_shard`]), plus `{taskq}.shards`, the shard count
//! the cluster was first used with. A group's keys take the group id as their
//! tag (`celery-taskset-meta-{<gid>}.j`; see [`ResultKeys::for_cluster`]). Python Celery does not
//! read this layout.

/// kombu's default `priority_steps`: the priority buckets, each a list of its own.
///
/// ```
/// assert_eq!(taskq::keys::DEFAULT_PRIORITY_STEPS, [0, 3, 6, 9]);
/// ```
pub const DEFAULT_PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// kombu's default separator between a queue name and its priority bucket.
///
/// ```
/// assert_eq!(taskq::keys::DEFAULT_PRIORITY_SEP, "\x06\x16");
/// ```
pub const DEFAULT_PRIORITY_SEP: &str = "\x06\x16";

/// Key names on the broker side.
///
/// ```
/// use taskq::keys::BrokerKeys;
///
/// let keys = BrokerKeys::default();
/// assert_eq!(keys.queue_list("celery", 0), "celery");
/// assert_eq!(keys.queue_list("celery", 3), "celery\x06\x163");
/// assert_eq!(keys.unacked(), "unacked");
/// ```
#[derive(Debug, Clone)]
pub struct BrokerKeys {
    prefix: String,
    sep: String,
    /// Ascending, starting at 0.
    steps: Vec<u8>,
}

impl Default for BrokerKeys {
    fn default() -> Self {
        Self::new("", DEFAULT_PRIORITY_SEP)
    }
}

impl BrokerKeys {
    /// Keys with kombu's `global_keyprefix` (prepended verbatim) and priority separator.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::new("app1:", taskq::keys::DEFAULT_PRIORITY_SEP);
    /// assert_eq!(keys.unacked(), "app1:unacked");
    /// ```
    pub fn new(prefix: &str, sep: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            sep: sep.to_owned(),
            steps: DEFAULT_PRIORITY_STEPS.to_vec(),
        }
    }

    /// The same keys with kombu's `priority_steps` transport option: each step is a bucket
    /// with a list of its own, and a priority goes to the largest step not above it. Every
    /// producer and worker on a queue must use the same steps, or messages wait in lists
    /// nobody reads. Steps are sorted, and 0 is added if missing (kombu's lookup needs it).
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default().with_priority_steps(&[0, 5, 7]);
    /// assert_eq!(keys.priority_bucket(6), 5);
    /// assert_eq!(keys.queue_list("celery", keys.priority_bucket(7)), "celery\x06\x167");
    /// assert_eq!(keys.fetch_order(&["celery".into()]).len(), 3);
    /// ```
    pub fn with_priority_steps(mut self, steps: &[u8]) -> Self {
        let mut steps = steps.to_vec();
        steps.push(0);
        steps.sort_unstable();
        steps.dedup();
        self.steps = steps;
        self
    }

    /// The keys of one shard of a Redis Cluster broker: every key gets the hash tag `{tag}`
    /// after the prefix, so all of a shard's keys (its queue lists, `unacked`, leases, ETA
    /// schedule, dead letters) share one hash slot and each script runs on one node. This is
    /// taskq's own layout: kombu has no cluster transport, and Python Celery cannot read it.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::new("app1:", taskq::keys::DEFAULT_PRIORITY_SEP)
    ///     .in_shard("taskq.1.0");
    /// assert_eq!(keys.queue_list("celery", 0), "app1:{taskq.1.0}celery");
    /// assert_eq!(keys.unacked(), "app1:{taskq.1.0}unacked");
    /// assert_eq!(keys.queue_of_list("app1:{taskq.1.0}celery\x06\x163"), Some("celery"));
    /// ```
    pub fn in_shard(mut self, tag: &str) -> Self {
        self.prefix = format!("{}{{{tag}}}", self.prefix);
        self
    }

    /// Where a Redis Cluster broker records how many shards its queues are split into (the
    /// first process to use the cluster writes it; the others check theirs against it). Its
    /// hash tag is its own, the same whatever the count: the keys (not in a shard) of the
    /// broker asking.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::new("app1:", taskq::keys::DEFAULT_PRIORITY_SEP);
    /// assert_eq!(keys.cluster_shards(), "app1:{taskq}.shards");
    /// ```
    pub fn cluster_shards(&self) -> String {
        format!("{}{{taskq}}.shards", self.prefix)
    }

    /// The priority steps, ascending from 0.
    pub fn priority_steps(&self) -> &[u8] {
        &self.steps
    }

    /// The steps as the recovery script takes them (`ARGV`): `"0,3,6,9"`.
    pub(crate) fn priority_steps_arg(&self) -> String {
        let steps: Vec<String> = self.steps.iter().map(u8::to_string).collect();
        steps.join(",")
    }

    /// The bucket of a priority as kombu picks it: priorities are clamped to 0–9, then the
    /// largest step not above the priority (`steps[bisect(steps, n) - 1]`).
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// let buckets: Vec<u8> = (0..=9).map(|p| keys.priority_bucket(p)).collect();
    /// assert_eq!(buckets, [0, 0, 0, 3, 3, 3, 6, 6, 6, 9]);
    /// ```
    pub fn priority_bucket(&self, priority: u8) -> u8 {
        let priority = priority.min(9);
        self.steps
            .iter()
            .copied()
            .filter(|step| *step <= priority)
            .max()
            .unwrap_or(0)
    }

    /// The `global_keyprefix` prepended to every key.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The separator between a queue name and its priority bucket.
    pub fn priority_sep(&self) -> &str {
        &self.sep
    }

    /// The list holding `queue`'s messages of priority bucket `bucket` (a priority step).
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.queue_list("reports", 6), "reports\x06\x166");
    /// ```
    pub fn queue_list(&self, queue: &str, bucket: u8) -> String {
        if bucket == 0 {
            format!("{}{queue}", self.prefix)
        } else {
            format!("{}{queue}{}{bucket}", self.prefix, self.sep)
        }
    }

    /// The lists to pop from, in kombu's order: every queue's bucket 0, then the next step's
    /// (3 by default), … so priority 0 is served first. Each list is paired with its queue
    /// name.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// let order = keys.fetch_order(&["a".into(), "b".into()]);
    /// assert_eq!(order[..3], [("a".into(), "a".into()), ("b".into(), "b".into()), ("a\x06\x163".into(), "a".into())]);
    /// assert_eq!(order.len(), 8);
    /// ```
    pub fn fetch_order(&self, queues: &[String]) -> Vec<(String, String)> {
        self.steps
            .iter()
            .flat_map(|bucket| {
                queues
                    .iter()
                    .map(move |q| (self.queue_list(q, *bucket), q.clone()))
            })
            .collect()
    }

    /// kombu's hash of unacknowledged messages.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.unacked(), "unacked");
    /// ```
    pub fn unacked(&self) -> String {
        format!("{}unacked", self.prefix)
    }

    /// kombu's index of unacknowledged messages by fetch time.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.unacked_index(), "unacked_index");
    /// ```
    pub fn unacked_index(&self) -> String {
        format!("{}unacked_index", self.prefix)
    }

    /// kombu's binding set of a queue on the default exchange.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.binding("celery"), "_kombu.binding.celery");
    /// ```
    pub fn binding(&self, queue: &str) -> String {
        format!("{}_kombu.binding.{queue}", self.prefix)
    }

    /// The member of [`binding`](Self::binding) for a queue on the default exchange.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.binding_member("celery"), "celery\x06\x16\x06\x16celery");
    /// ```
    pub fn binding_member(&self, queue: &str) -> String {
        self.exchange_binding_member(queue, queue)
    }

    /// kombu's binding table of a (direct) exchange, e.g. `reply.celery.pidbox`: a set of
    /// `routing_key\x06\x16pattern\x06\x16queue` members.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::new("p:", taskq::keys::DEFAULT_PRIORITY_SEP);
    /// assert_eq!(keys.exchange_binding("reply.celery.pidbox"), "p:_kombu.binding.reply.celery.pidbox");
    /// ```
    pub fn exchange_binding(&self, exchange: &str) -> String {
        format!("{}_kombu.binding.{exchange}", self.prefix)
    }

    /// The member of [`exchange_binding`](Self::exchange_binding) that routes `routing_key`
    /// to `queue` (kombu leaves the pattern empty on direct exchanges).
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.exchange_binding_member("oid", "oid.reply.celery.pidbox"),
    ///            "oid\x06\x16\x06\x16oid.reply.celery.pidbox");
    /// ```
    pub fn exchange_binding_member(&self, routing_key: &str, queue: &str) -> String {
        format!("{routing_key}{sep}{sep}{queue}", sep = self.sep)
    }

    /// Splits a member of [`exchange_binding`](Self::exchange_binding) into
    /// `(routing_key, pattern, queue)`; `None` when it does not have three parts.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.split_binding_member("oid\x06\x16\x06\x16oid.reply.celery.pidbox"),
    ///            Some(("oid", "", "oid.reply.celery.pidbox")));
    /// ```
    pub fn split_binding_member<'a>(&self, member: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
        let mut parts = member.splitn(3, self.sep.as_str());
        Some((parts.next()?, parts.next()?, parts.next()?))
    }

    /// kombu's Pub/Sub channel of a fanout exchange in database `db`:
    /// `/<db>.<exchange>` when the routing key is empty, else `/<db>.<exchange>/<routing_key>`.
    /// Channels are not per database in Redis, hence the db number in the name.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.fanout_channel(0, "celery.pidbox", ""), "/0.celery.pidbox");
    /// assert_eq!(keys.fanout_channel(2, "celeryev", "task.multi"), "/2.celeryev/task.multi");
    /// ```
    pub fn fanout_channel(&self, db: i64, exchange: &str, routing_key: &str) -> String {
        if routing_key.is_empty() {
            format!("{}/{db}.{exchange}", self.prefix)
        } else {
            format!("{}/{db}.{exchange}/{routing_key}", self.prefix)
        }
    }

    /// The patterns that receive everything published on a fanout exchange: the channel
    /// without routing key and every channel with one.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.fanout_patterns(0, "celeryev"), ["/0.celeryev", "/0.celeryev/*"]);
    /// ```
    pub fn fanout_patterns(&self, db: i64, exchange: &str) -> [String; 2] {
        let channel = self.fanout_channel(db, exchange, "");
        let with_key = format!("{channel}/*");
        [channel, with_key]
    }

    /// The queue whose list `list` is (one of [`queue_list`](Self::queue_list)'s names), or
    /// `None` when `list` does not carry this prefix.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::new("p:", taskq::keys::DEFAULT_PRIORITY_SEP);
    /// assert_eq!(keys.queue_of_list("p:celery\x06\x163"), Some("celery"));
    /// assert_eq!(keys.queue_of_list("p:reports"), Some("reports"));
    /// assert_eq!(keys.queue_of_list("other"), None);
    /// ```
    pub fn queue_of_list<'a>(&self, list: &'a str) -> Option<&'a str> {
        let list = list.strip_prefix(self.prefix.as_str())?;
        match list.rsplit_once(self.sep.as_str()) {
            Some((queue, bucket)) if bucket.parse::<u8>().is_ok() => Some(queue),
            _ => Some(list),
        }
    }

    /// The `SCAN` pattern matching every kombu binding set ([`binding`](Self::binding) and
    /// [`exchange_binding`](Self::exchange_binding)); the part after it in a key is the
    /// exchange.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.binding_scan_pattern(), "_kombu.binding.*");
    /// assert_eq!(keys.exchange_of_binding("_kombu.binding.celery"), Some("celery"));
    /// ```
    pub fn binding_scan_pattern(&self) -> String {
        format!("{}_kombu.binding.*", self.prefix)
    }

    /// The exchange whose binding set `key` is; `None` for any other key.
    pub fn exchange_of_binding<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.prefix.as_str())?
            .strip_prefix("_kombu.binding.")
    }

    /// Due times of parked ETA messages.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.eta_schedule(), "taskq.eta");
    /// ```
    pub fn eta_schedule(&self) -> String {
        format!("{}taskq.eta", self.prefix)
    }

    /// Parked ETA messages and the list each returns to.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.eta_messages(), "taskq.eta.messages");
    /// ```
    pub fn eta_messages(&self) -> String {
        format!("{}taskq.eta.messages", self.prefix)
    }

    /// Leases of the messages taskq workers hold: delivery tag → when the lease was last
    /// renewed. Messages in `unacked` without one are held by Python workers.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.leases(), "taskq.leases");
    /// ```
    pub fn leases(&self) -> String {
        format!("{}taskq.leases", self.prefix)
    }

    /// Delivery tags of held messages whose task has started (a recovery of one of these
    /// counts as a crash of the task).
    pub fn started(&self) -> String {
        format!("{}taskq.started", self.prefix)
    }

    /// The periodic scheduler's record: entry name → the last slot it fired (milliseconds
    /// since the epoch), written in the same step as the message it sent.
    ///
    /// ```
    /// assert_eq!(taskq::keys::BrokerKeys::default().beat_slots(), "taskq.beat.slots");
    /// ```
    pub fn beat_slots(&self) -> String {
        format!("{}taskq.beat.slots", self.prefix)
    }

    /// The periodic scheduler's leadership lease: the token of the scheduler that fires.
    ///
    /// ```
    /// assert_eq!(taskq::keys::BrokerKeys::default().beat_leader(), "taskq.beat.leader");
    /// ```
    pub fn beat_leader(&self) -> String {
        format!("{}taskq.beat.leader", self.prefix)
    }

    /// A rate-limited task's turn schedule: when its next turn is free, in microseconds of
    /// Redis's clock (see [`crate::rate_limit`]).
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.rate_turns("tasks.add"), "taskq.rate.tasks.add");
    /// ```
    pub fn rate_turns(&self, task: &str) -> String {
        format!("{}taskq.rate.{task}", self.prefix)
    }

    /// A unique call's lock: the id of the call queued or running under `key` (see
    /// [`Options::unique_for`](crate::Options::unique_for)).
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.unique_lock("tasks.add:5f2c"), "taskq.unique.tasks.add:5f2c");
    /// ```
    pub fn unique_lock(&self, key: &str) -> String {
        format!("{}taskq.unique.{key}", self.prefix)
    }

    /// Messages that cannot be run, with the reason.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.dead_letter(), "taskq.dead_letter");
    /// ```
    pub fn dead_letter(&self) -> String {
        format!("{}taskq.dead_letter", self.prefix)
    }

    /// Revoked task ids, scored by when they were revoked on the server's clock: what every
    /// worker honours, kept in Redis so that a revoke holds with no worker up (see
    /// [`crate::revoke`]). Trimmed to the revokes of the last 3 hours, at most 50,000, on
    /// every write.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.revoked(), "taskq.revoked");
    /// ```
    pub fn revoked(&self) -> String {
        format!("{}taskq.revoked", self.prefix)
    }

    /// Queues paused fleet-wide: taskq workers read the set when they start and follow the
    /// `pause_queue` / `resume_queue` broadcasts; they fetch nothing from a paused queue, whose
    /// messages stay queued. Celery has no such thing: Python workers go on consuming.
    ///
    /// ```
    /// let keys = taskq::keys::BrokerKeys::default();
    /// assert_eq!(keys.paused_queues(), "taskq.paused_queues");
    /// ```
    pub fn paused_queues(&self) -> String {
        format!("{}taskq.paused_queues", self.prefix)
    }
}

/// The queue a remote-control caller reads its replies from (kombu's
/// `<oid>.reply.celery.pidbox`), bound to the direct exchange `reply.celery.pidbox` with
/// routing key `oid`; its list is [`BrokerKeys::queue_list`]`(queue, 0)`.
///
/// ```
/// assert_eq!(taskq::keys::pidbox_reply_queue("c0f92bbf"), "c0f92bbf.reply.celery.pidbox");
/// ```
pub fn pidbox_reply_queue(oid: &str) -> String {
    format!("{oid}.reply.celery.pidbox")
}

/// Key names on the result side.
///
/// ```
/// let keys = taskq::keys::ResultKeys::default();
/// assert_eq!(keys.task_meta("abc"), "celery-task-meta-abc");
/// assert_eq!(taskq::keys::ResultKeys::new("rpfx").task_meta("abc"), "rpfx_celery-task-meta-abc");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ResultKeys {
    prefix: String,
    /// Group ids in braces, so a chord's keys share a Redis Cluster hash slot.
    tag_groups: bool,
}

impl ResultKeys {
    /// Keys with the result backend's `global_keyprefix`: as in Celery, `_` is appended unless
    /// the prefix already ends in one of `:_-.`.
    pub fn new(prefix: &str) -> Self {
        let prefix = match prefix.chars().last() {
            None => String::new(),
            Some(':' | '_' | '-' | '.') => prefix.to_owned(),
            Some(_) => format!("{prefix}_"),
        };
        Self {
            prefix,
            tag_groups: false,
        }
    }

    /// The same keys for a Redis Cluster: the group id becomes the hash tag of a group's and
    /// its chord's keys (`celery-taskset-meta-{<gid>}.j`), so that the scripts counting a
    /// chord touch one hash slot. Task records keep Celery's names.
    ///
    /// ```
    /// let keys = taskq::keys::ResultKeys::default().for_cluster();
    /// assert_eq!(keys.task_meta("t1"), "celery-task-meta-t1");
    /// assert_eq!(keys.chord("g1").results, "celery-taskset-meta-{g1}.j");
    /// assert_eq!(keys.chord("g1").group, "celery-taskset-meta-{g1}");
    /// ```
    pub fn for_cluster(mut self) -> Self {
        self.tag_groups = true;
        self
    }

    /// The key (and Pub/Sub channel) of a task's result record.
    pub fn task_meta(&self, task_id: &str) -> String {
        format!("{}celery-task-meta-{task_id}", self.prefix)
    }

    /// The key of a saved group result (`GroupResult.save()`), also the stem of its chord's
    /// keys.
    ///
    /// ```
    /// assert_eq!(taskq::keys::ResultKeys::default().group_meta("g1"), "celery-taskset-meta-g1");
    /// ```
    pub fn group_meta(&self, group_id: &str) -> String {
        if self.tag_groups {
            format!("{}celery-taskset-meta-{{{group_id}}}", self.prefix)
        } else {
            format!("{}celery-taskset-meta-{group_id}", self.prefix)
        }
    }

    /// The keys Celery's Redis backend counts a chord's header with.
    ///
    /// ```
    /// let chord = taskq::keys::ResultKeys::default().chord("g1");
    /// assert_eq!(chord.results, "celery-taskset-meta-g1.j");
    /// assert_eq!(chord.claim, "celery-taskset-meta-g1.c");
    /// ```
    pub fn chord(&self, group_id: &str) -> ChordKeys {
        let stem = self.group_meta(group_id);
        let key = |suffix: &str| format!("{stem}.{suffix}");
        ChordKeys {
            results: key("j"),
            extra_size: key("t"),
            size: key("s"),
            counted: key("d"),
            claim: key("c"),
            group: stem,
        }
    }
}

/// The keys of one chord in the result store, as Celery's Redis backend names them (5.7
/// added `counted` and `claim`; 5.3–5.6 workers use the first three and ignore the others).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChordKeys {
    /// `.j`: zset of finished header parts, `[1, id, state, result]` scored by group index.
    pub results: String,
    /// `.t`: parts added to the chord after it was sent (`add_to_chord`), counted on top.
    pub extra_size: String,
    /// `.s`: the header's size, set by the producer before its last part is sent.
    pub size: String,
    /// `.d`: set of `<id>:<group_index>` already counted, so a redelivered part counts once.
    pub counted: String,
    /// `.c`: the claim of the worker sending the body, then `done`.
    pub claim: String,
    /// The saved group result of a header that holds groups itself.
    pub group: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_apply_like_kombu_and_celery() {
        let b = BrokerKeys::new("bpfx:", DEFAULT_PRIORITY_SEP);
        assert_eq!(b.queue_list("celery", 9), "bpfx:celery\x06\x169");
        assert_eq!(b.unacked_index(), "bpfx:unacked_index");
        assert_eq!(b.binding("celery"), "bpfx:_kombu.binding.celery");
        assert_eq!(b.binding_member("celery"), "celery\x06\x16\x06\x16celery");
        assert_eq!(ResultKeys::new("r:").task_meta("x"), "r:celery-task-meta-x");
        // kombu prefixes Pub/Sub channels too ([verified] bpfx:/2.celeryev/worker.heartbeat).
        assert_eq!(
            b.fanout_channel(2, "celeryev", "worker.heartbeat"),
            "bpfx:/2.celeryev/worker.heartbeat"
        );
        assert_eq!(b.exchange_binding("x"), "bpfx:_kombu.binding.x");
        assert_eq!(b.revoked(), "bpfx:taskq.revoked");
    }

    #[test]
    fn custom_priority_steps_name_the_lists_kombu_writes() {
        let buckets = |keys: &BrokerKeys| {
            (0..=12)
                .map(|p| keys.priority_bucket(p))
                .collect::<Vec<_>>()
        };
        let default = BrokerKeys::default();
        assert_eq!(buckets(&default), [0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9, 9]);
        // kombu with priority_steps=[0, 5, 7]: 1 → `celery`, 5 → `celery\x06\x165`, 7 and
        // above → `celery\x06\x167`.
        let custom = BrokerKeys::default().with_priority_steps(&[7, 5, 0]);
        assert_eq!(buckets(&custom), [0, 0, 0, 0, 0, 5, 5, 7, 7, 7, 7, 7, 7]);
        let lists: Vec<String> = custom
            .fetch_order(&["celery".into()])
            .into_iter()
            .map(|(list, _)| list)
            .collect();
        assert_eq!(lists, ["celery", "celery\x06\x165", "celery\x06\x167"]);
        assert_eq!(custom.priority_steps_arg(), "0,5,7");
        // Without 0, kombu's lookup would wrap around; taskq adds it.
        assert_eq!(
            BrokerKeys::default()
                .with_priority_steps(&[4])
                .priority_steps(),
            [0, 4]
        );
    }
}
