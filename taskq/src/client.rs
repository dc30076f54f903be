//! The [`Client`]: a broker and a result store, and the way tasks are sent.

use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::backend::ResultBackend;
use crate::broker::{Broker, Outgoing};
use crate::clock::ServerClock;
use crate::keys::BrokerKeys;
use crate::options::Options;
use crate::protocol::{NewMessage, RawJson, RawObject};
use crate::result::AsyncResult;
use crate::task::Task;
use crate::{Config, Error, Result};

tokio::task_local! {
    static SCOPED: Client;
}

/// A connection to a broker and a result store: what `.delay()` sends through and what
/// [`AsyncResult`] reads from.
///
/// `.delay()` and `.apply_async()` use the client of the current [scope](Client::scope), else
/// the global one ([`set_global`](Client::set_global), or built from the environment on first
/// use).
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// use taskq::{Client, Config, Options};
///
/// #[taskq::task(name = "tasks.client_doc_add")]
/// async fn add(x: i64, y: i64) -> i64 { x + y }
///
/// let mut config = Config::default();
/// config.broker_url = "memory://client-doc".into();
/// config.result_backend = "memory://client-doc".into();
/// let client = Client::from_config(config)?;
///
/// let sent = client.send(&add, (2, 3), Options::new()).await?;
/// assert_eq!(sent.state().await?, taskq::TaskState::Pending); // no worker is running
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    broker: Arc<dyn Broker>,
    backend: Arc<dyn ResultBackend>,
    config: Config,
    clock: ServerClock,
}

impl Client {
    /// A client configured from the environment and `.env` (see [`Config::from_env`]).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad setting or unsupported URL scheme.
    ///
    /// ```no_run
    /// // TASKQ_BROKER_URL=redis://127.0.0.1:6379/0 in the environment or .env
    /// let client = taskq::Client::from_env()?;
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_config(Config::from_env()?)
    }

    /// A client for `config`'s broker and result store. Connections open on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unsupported URL scheme, [`Error::Redis`] for a bad Redis URL.
    ///
    /// ```
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://".into();
    /// let client = taskq::Client::from_config(config)?;
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn from_config(config: Config) -> Result<Self> {
        let keys = BrokerKeys::default().with_priority_steps(&config.priority_steps);
        let broker = crate::broker::open_with_keys(&config.broker_url, keys)?;
        let backend = crate::backend::open(&config.result_backend, config.result_expires)?;
        Ok(Self::with_parts(broker, backend, config))
    }

    /// A client from explicit parts.
    ///
    /// ```
    /// use taskq::{backend::memory::MemoryBackend, broker::memory::MemoryBroker, Client, Config};
    ///
    /// let client = Client::with_parts(MemoryBroker::named("parts"), MemoryBackend::named("parts"), Config::default());
    /// assert_eq!(client.broker().describe(), "memory://parts");
    /// ```
    pub fn with_parts(
        broker: Arc<dyn Broker>,
        backend: Arc<dyn ResultBackend>,
        config: Config,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                broker,
                backend,
                config,
                clock: ServerClock::default(),
            }),
        }
    }

    /// The client `.delay()` uses here: the scoped one, else the global one.
    ///
    /// # Errors
    ///
    /// When no global client is set and the environment's configuration is invalid.
    ///
    /// ```no_run
    /// let client = taskq::Client::current()?;
    /// println!("sending through {}", client.broker().describe());
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn current() -> Result<Self> {
        if let Ok(client) = SCOPED.try_with(Client::clone) {
            return Ok(client);
        }
        if let Some(client) = global().read().expect("global client lock").clone() {
            return Ok(client);
        }
        let mut slot = global().write().expect("global client lock");
        if slot.is_none() {
            *slot = Some(Self::from_env()?);
        }
        Ok(slot.clone().expect("just set"))
    }

    /// Makes this the process-wide default client.
    ///
    /// ```
    /// taskq::Client::from_config(taskq::Config::default()).unwrap().set_global();
    /// ```
    pub fn set_global(&self) {
        *global().write().expect("global client lock") = Some(self.clone());
    }

    /// Runs `fut` with this client as the default for `.delay()` and `AsyncResult::from_id`,
    /// whatever the global one is. Workers run each task in their client's scope.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// #[taskq::task(name = "tasks.scope_doc")]
    /// async fn ping() {}
    ///
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://scope-doc".into();
    /// config.result_backend = "memory://scope-doc".into();
    /// let client = taskq::Client::from_config(config)?;
    /// let sent = client.scope(async { ping.delay().await }).await?;
    /// assert_eq!(client.broker().describe(), "memory://scope-doc");
    /// # let _ = sent; Ok(()) }
    /// ```
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        SCOPED.scope(self.clone(), fut).await
    }

    /// Sends a call of `task`; returns at once with a handle to its result.
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if an argument does not serialize, [`Error::Redis`] if the
    /// broker cannot be reached.
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// #[taskq::task(name = "tasks.add")]
    /// async fn add(x: i64, y: i64) -> i64 { x + y }
    ///
    /// let sum = client.send(&add, (2, 3), taskq::Options::new().queue("math")).await?;
    /// assert_eq!(sum.get(std::time::Duration::from_secs(10)).await?, 5);
    /// # Ok(()) }
    /// ```
    pub async fn send<T: Task>(
        &self,
        _task: &T,
        args: T::Args,
        options: Options,
    ) -> Result<AsyncResult<T::Output>> {
        let options = with_task_defaults(options, &T::OPTIONS);
        let sent = self
            .send_by_name_raw(T::NAME, positional(args)?, RawObject::new(), options)
            .await?;
        Ok(sent.typed())
    }

    /// Sends a call of the task registered as `name` anywhere (in Rust or Python), with
    /// positional and keyword arguments as `serde_json` values.
    ///
    /// The values are written as their `Value`s hold them: an integer beyond 64 bits (a
    /// Python big integer) is exact only when the application enables serde_json's
    /// `arbitrary_precision` (without it a `Value` holds it as an `f64`), and keyword
    /// arguments go in the map's order (sorted, unless the application enables
    /// `preserve_order`). [`send_by_name_raw`](Self::send_by_name_raw) takes the arguments as
    /// JSON text instead, exact and in order without either feature.
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// use serde_json::json;
    ///
    /// let result = client
    ///     .send_by_name("proj.tasks.add", vec![json!(2)], json!({"y": 3}).as_object().unwrap().clone(), taskq::Options::new())
    ///     .await?;
    /// let sum: i64 = result.typed::<i64>().get(std::time::Duration::from_secs(10)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_by_name(
        &self,
        name: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        options: Options,
    ) -> Result<AsyncResult<Value>> {
        let args = args.iter().map(RawJson::from).collect();
        self.send_by_name_raw(name, args, kwargs.into(), options)
            .await
    }

    /// Sends a call of the task registered as `name`, like
    /// [`send_by_name`](Self::send_by_name), with each argument given as JSON text
    /// ([`RawJson`]) and the keyword arguments in the order of `kwargs`: what is written is
    /// exactly that text, whatever its numbers, with no serde_json feature needed.
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// use taskq::protocol::{RawJson, RawObject};
    ///
    /// let mut kwargs = RawObject::new();
    /// kwargs.insert("y", RawJson::from_text("100000000000000000000000000000")?);
    /// kwargs.insert("x", RawJson::from(2));
    /// let result = client
    ///     .send_by_name_raw("proj.tasks.add", Vec::new(), kwargs, taskq::Options::new())
    ///     .await?;
    /// let sum: u128 = result.typed::<u128>().get(std::time::Duration::from_secs(10)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`send`](Self::send).
    pub async fn send_by_name_raw(
        &self,
        name: &str,
        args: Vec<RawJson>,
        kwargs: RawObject,
        options: Options,
    ) -> Result<AsyncResult<Value>> {
        let now = self.now_for(&options).await?;
        let call = self.encode_call(name, args, kwargs, &options, now)?;
        if let Some(unique) = &call.unique {
            let broker = &self.inner.broker;
            let held = broker
                .publish_unique(&unique.key, &call.id, unique.lock, &call.outgoing)
                .await?;
            if let Some(holder) = held {
                tracing::debug!(task = name, key = %unique.key, %holder, "unique call already queued or running: nothing sent");
                return Ok(AsyncResult::deduplicated_into(
                    holder,
                    self.clone(),
                    call.ignore_result,
                ));
            }
        } else {
            self.inner
                .broker
                .publish(std::slice::from_ref(&call.outgoing))
                .await?;
        }
        tracing::debug!(task = name, id = %call.id, queue = %call.outgoing.queue, "task sent");
        Ok(AsyncResult::new(call.id, self.clone(), call.ignore_result))
    }

    /// Sends many calls of `task` at once: every message is encoded first, then all are
    /// published in one pipelined broker call (one round trip on Redis), which is how a
    /// producer enqueues thousands of tasks per second more than one `.delay()` at a time.
    /// `options` apply to every call; each call gets its own task id. The handles come back
    /// in the order of `calls`.
    ///
    /// The whole batch is held in memory and sent as one pipeline, so send a very large
    /// number of calls in chunks (a few thousand each). The pipeline is not a transaction: if
    /// the connection fails part-way, some calls may have been queued and others not.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `options` name a task id (one id cannot serve many calls),
    /// [`Error::Serialize`] if an argument does not serialize (then nothing is sent),
    /// [`Error::Redis`] if the broker cannot be reached.
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// #[taskq::task(name = "tasks.resize")]
    /// async fn resize(image_id: u64, width: u32) -> String { format!("{image_id}@{width}") }
    ///
    /// let calls = (1..=1000).map(|image_id| (image_id, 320));
    /// let sent = client.send_many(&resize, calls, taskq::Options::new().queue("images")).await?;
    /// assert_eq!(sent.len(), 1000);
    /// let first = sent[0].get(std::time::Duration::from_secs(10)).await?;
    /// # let _ = first; Ok(()) }
    /// ```
    pub async fn send_many<T: Task>(
        &self,
        _task: &T,
        calls: impl IntoIterator<Item = T::Args>,
        options: Options,
    ) -> Result<Vec<AsyncResult<T::Output>>> {
        if options.task_id.is_some() {
            return Err(Error::Config(
                "send_many gives each call its own id: Options::task_id is for one call".into(),
            ));
        }
        let options = with_task_defaults(options, &T::OPTIONS);
        if options.unique_for.is_some() || options.unique_key.is_some() {
            return Err(Error::Config(format!(
                "send_many cannot send unique calls (task {}): send them one by one with send",
                T::NAME
            )));
        }
        let now = self.now_for(&options).await?;
        let encoded = calls
            .into_iter()
            .map(|args| {
                self.encode_call(T::NAME, positional(args)?, RawObject::new(), &options, now)
            })
            .collect::<Result<Vec<_>>>()?;
        if encoded.is_empty() {
            return Ok(Vec::new());
        }
        // The messages move to the broker, not copied: they are most of a batch's bytes.
        let (handles, outgoing): (Vec<_>, Vec<Outgoing>) = encoded
            .into_iter()
            .map(|c| ((c.id, c.ignore_result), c.outgoing))
            .unzip();
        self.inner.broker.publish(&outgoing).await?;
        tracing::debug!(task = T::NAME, count = handles.len(), "tasks sent");
        Ok(handles
            .into_iter()
            .map(|(id, ignore_result)| AsyncResult::new(id, self.clone(), ignore_result))
            .collect())
    }

    /// The broker's clock as this process knows it.
    pub(crate) fn clock(&self) -> &ServerClock {
        &self.inner.clock
    }

    /// The time relative options count from: the broker's clock when `options` hold a
    /// countdown or a relative expiry (a producer's wrong clock must not move them), else
    /// this machine's, which costs nothing.
    async fn now_for(&self, options: &Options) -> Result<SystemTime> {
        if options.is_relative() {
            self.inner.clock.now(&*self.inner.broker).await
        } else {
            Ok(SystemTime::now())
        }
    }

    /// Builds the message of one call, with a fresh id unless `options` name one. A message
    /// over [`Config::max_message_size`] is [`Error::MessageTooLarge`].
    pub(crate) fn encode_call(
        &self,
        name: &str,
        args: Vec<RawJson>,
        kwargs: RawObject,
        options: &Options,
        now: SystemTime,
    ) -> Result<EncodedCall> {
        let id = options
            .task_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let unique = UniqueCall::of(name, &args, &kwargs, options)?;
        let queue = queue_name(options, &self.inner.config);
        let ignore_result = options.ignore_result.unwrap_or(false);
        let mut message = NewMessage::new(name, &id);
        message.args = args;
        message.kwargs = kwargs;
        message.eta = options.resolved_eta(now);
        message.expires = options.resolved_expires(now);
        message.time_limit = (options.time_limit_secs, options.soft_time_limit_secs);
        message.priority = options.priority.unwrap_or(0);
        message.ignore_result = ignore_result;
        let placement = options.placement.clone();
        message.group = placement.group;
        message.group_index = placement.group_index;
        message.parent_id = placement.parent_id;
        message.root_id = placement.root_id;
        message.workflow = placement.workflow;
        message.unique = unique.as_ref().map(|u| u.key.clone());
        #[cfg(feature = "opentelemetry")]
        {
            message.trace_context = crate::otel::current();
        }
        let envelope = message.encode(&queue)?;
        let limit = self.inner.config.max_message_size;
        if envelope.len() > limit {
            return Err(Error::MessageTooLarge {
                task: name.to_owned(),
                size: envelope.len(),
                limit,
            });
        }
        Ok(EncodedCall {
            outgoing: Outgoing {
                queue,
                priority: message.priority,
                envelope,
            },
            id,
            ignore_result,
            unique,
        })
    }

    /// A handle to the result of task `id`, typed as `T`.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default()).unwrap();
    /// let result = client.result::<u64>("d3c0c7a8-0000-4000-8000-000000000000");
    /// assert_eq!(result.id(), "d3c0c7a8-0000-4000-8000-000000000000");
    /// ```
    pub fn result<T>(&self, id: impl Into<String>) -> AsyncResult<T> {
        AsyncResult::new(id.into(), self.clone(), false)
    }

    /// Revokes task `task_id`, like Celery's `app.control.revoke(task_id)`: no worker starts
    /// it from now on. The id is recorded in the broker first, so the revoke holds even when
    /// no worker is up or all are restarting (for 3 hours, like Celery's revokes; see
    /// [`crate::revoke`]), then Celery's `revoke` command is broadcast, so that running
    /// workers, taskq or Python, act at once. A run already going is left to finish; see
    /// [`terminate`](Self::terminate).
    ///
    /// A revoked task is discarded when a worker takes it (at once, or when its countdown is
    /// due) and stored as REVOKED.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the broker cannot be reached: then the revoke may not hold.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// #[taskq::task(name = "tasks.send_newsletter")]
    /// async fn send_newsletter(issue: u32) {}
    ///
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://revoke-doc".into();
    /// config.result_backend = "memory://revoke-doc".into();
    /// let client = taskq::Client::from_config(config)?;
    /// let sent = client
    ///     .send(&send_newsletter, (42,), taskq::Options::new().countdown(std::time::Duration::from_secs(3600)))
    ///     .await?;
    /// client.revoke(sent.id()).await?; // changed our minds: it will not go out
    /// # Ok(()) }
    /// ```
    pub async fn revoke(&self, task_id: &str) -> Result<()> {
        self.send_revoke(&[task_id.to_owned()], false).await
    }

    /// Revokes task `task_id` and stops it where it is running, like Celery's
    /// `app.control.revoke(task_id, terminate=True)`: a taskq worker cancels the run and
    /// stores REVOKED "terminated" (a Python worker signals the process with SIGTERM).
    ///
    /// # Errors
    ///
    /// As for [`revoke`](Self::revoke).
    ///
    /// ```no_run
    /// # async fn demo(client: taskq::Client) -> taskq::Result<()> {
    /// client.terminate("9b1c7a0e-0000-4000-8000-000000000001").await?;
    /// # Ok(()) }
    /// ```
    pub async fn terminate(&self, task_id: &str) -> Result<()> {
        self.send_revoke(&[task_id.to_owned()], true).await
    }

    /// Records `ids` as revoked in the broker, then broadcasts Celery's `revoke` command.
    async fn send_revoke(&self, ids: &[String], terminate: bool) -> Result<()> {
        self.control().cast_revoke(ids, terminate).await?;
        tracing::info!(?ids, terminate, "tasks revoked");
        Ok(())
    }

    /// Remote control of the workers on this client's broker, taskq and Python Celery alike
    /// (Celery's `app.control`): ping, inspect, revoke, events on and off.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// use std::time::Duration;
    /// use taskq::control::ControlOptions;
    ///
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://control-doc".into();
    /// let client = taskq::Client::from_config(config)?;
    /// let options = ControlOptions::new().timeout(Duration::from_millis(50));
    /// let active = client.control().inspect("active", &options).await?;
    /// assert!(active.is_empty()); // no worker here
    /// # Ok(()) }
    /// ```
    pub fn control(&self) -> crate::control::Control {
        crate::control::Control::new(self.clone())
    }

    /// The broker.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// assert_eq!(client.broker().describe(), "redis://127.0.0.1:6379/0");
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.inner.broker
    }

    /// The result store.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// println!("results in {}", client.backend().describe());
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn backend(&self) -> &Arc<dyn ResultBackend> {
        &self.inner.backend
    }

    /// The configuration this client was built from.
    ///
    /// ```
    /// let client = taskq::Client::from_config(taskq::Config::default())?;
    /// assert_eq!(client.config().default_queue, "celery");
    /// # Ok::<(), taskq::Error>(())
    /// ```
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
}

/// One call, encoded and ready to publish.
pub(crate) struct EncodedCall {
    pub(crate) outgoing: Outgoing,
    id: String,
    ignore_result: bool,
    unique: Option<UniqueCall>,
}

/// A unique call's key and how long it holds it at most.
struct UniqueCall {
    key: String,
    lock: Duration,
}

impl UniqueCall {
    /// The unique call `options` ask for, if any: their key, or by default the task name and
    /// a digest of the arguments' JSON text.
    fn of(
        name: &str,
        args: &[RawJson],
        kwargs: &RawObject,
        options: &Options,
    ) -> Result<Option<Self>> {
        let Some(lock) = options.unique_for else {
            return match options.unique_key {
                Some(_) => Err(Error::Config(format!(
                    "a unique_key needs unique_for (task {name}): how long the call stays unique"
                ))),
                None => Ok(None),
            };
        };
        let key = match &options.unique_key {
            Some(key) => key.clone(),
            None => {
                let mut digest = sha1_smol::Sha1::new();
                for arg in args {
                    digest.update(arg.as_str().as_bytes());
                    digest.update(b"\x1f"); // keeps ["ab"] and ["a", "b"] apart
                }
                digest.update(b"\x1e");
                digest.update(kwargs.to_raw().as_str().as_bytes());
                format!("{name}:{}", digest.digest())
            }
        };
        Ok(Some(Self { key, lock }))
    }
}

/// A task's argument tuple as Celery's positional `args` list, each argument serialized
/// straight to text (a `u128` stays exact).
pub(crate) fn positional(args: impl serde::Serialize) -> Result<Vec<RawJson>> {
    let tuple = RawJson::from_serialize(&args)?;
    Ok(match tuple.to_items() {
        Some(items) => items,
        None if tuple.is_null() => Vec::new(),
        None => vec![tuple],
    })
}

fn global() -> &'static RwLock<Option<Client>> {
    static GLOBAL: OnceLock<RwLock<Option<Client>>> = OnceLock::new();
    GLOBAL.get_or_init(|| RwLock::new(None))
}

fn queue_name(options: &Options, config: &Config) -> String {
    options
        .queue
        .clone()
        .unwrap_or_else(|| config.default_queue.clone())
}

fn with_task_defaults(mut options: Options, defaults: &crate::TaskOptions) -> Options {
    if options.queue.is_none() {
        options.queue = defaults.queue.map(str::to_owned);
    }
    if options.time_limit_secs.is_none() {
        options.time_limit_secs = defaults.time_limit_secs;
    }
    if options.soft_time_limit_secs.is_none() {
        options.soft_time_limit_secs = defaults.soft_time_limit_secs;
    }
    if options.ignore_result.is_none() && defaults.ignore_result {
        options.ignore_result = Some(true);
    }
    if options.unique_for.is_none() {
        options.unique_for = defaults.unique_for_secs.map(Duration::from_secs_f64);
    }
    options
}
