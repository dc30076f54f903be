//! Workflows built from Rust with their types known: [`Sig`] (a call whose result type is
//! known), [`Partial`] (a call still waiting for its first argument, the previous step's
//! result), and the [`chain`], [`group`] and [`chord`] built from them. Each is Celery's
//! signature underneath ([`Sig::signature`]), so a workflow built here runs on Python
//! workers as well as on taskq's.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;

use super::group_result::GroupResult;
use super::{apply, Origin, Sent};
use crate::protocol::{signature_option as option, RawJson, RawObject, Signature, SignatureKind};
use crate::{AsyncResult, Client, Error, Result};

/// A call of a task whose result is a `T`, to be sent later or as part of a workflow:
/// Celery's signature with its type. Made by a task's `.s(...)` or `.si(...)`.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.add")]
/// async fn add(x: i64, y: i64) -> i64 { x + y }
///
/// # let mut config = taskq::Config::default();
/// # config.broker_url = "memory://sig-doc".into();
/// # config.result_backend = "memory://sig-doc".into();
/// # let client = taskq::Client::from_config(config)?;
/// let sig = add.s(2, 3).queue("math").countdown(std::time::Duration::from_secs(5));
/// assert_eq!(sig.signature().task, "tasks.add");
/// let sent = sig.apply_async(&client).await?; // an AsyncResult<i64>
/// # let _ = sent; Ok(()) }
/// ```
#[must_use = "a signature does nothing until it is sent"]
pub struct Sig<T> {
    signature: Signature,
    /// Why the signature cannot be sent (an argument that did not serialize), reported when
    /// it is.
    invalid: Option<String>,
    _out: PhantomData<fn() -> T>,
}

/// A call of a task that still lacks its first argument: the previous step of a chain (or
/// the list of a chord's results) fills it in, as Celery prepends it. `In` is that
/// argument's type, `Out` the task's result. Made by a task's `.partial(...)`, which takes
/// every argument but the first.
///
/// ```
/// #[taskq::task(name = "tasks.add")]
/// async fn add(x: i64, y: i64) -> i64 { x + y }
///
/// let plus_four: taskq::canvas::Partial<i64, i64> = add.partial(4);
/// assert_eq!(plus_four.signature().args.len(), 1);
/// ```
#[must_use = "a signature does nothing until it is sent"]
pub struct Partial<In, Out> {
    signature: Signature,
    invalid: Option<String>,
    _types: PhantomData<fn(In) -> Out>,
}

impl<T> Clone for Sig<T> {
    fn clone(&self) -> Self {
        Self::with(self.signature.clone(), self.invalid.clone())
    }
}

impl<In, Out> Clone for Partial<In, Out> {
    fn clone(&self) -> Self {
        Self {
            signature: self.signature.clone(),
            invalid: self.invalid.clone(),
            _types: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Sig<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sig").field(&self.signature).finish()
    }
}

impl<In, Out> std::fmt::Debug for Partial<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Partial").field(&self.signature).finish()
    }
}

impl<T> std::fmt::Debug for Chain<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Chain").field(&self.steps).finish()
    }
}

impl<T> std::fmt::Debug for Group<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Group").field(&self.members).finish()
    }
}

impl<Out> std::fmt::Debug for Chord<Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Chord").field(&self.signature).finish()
    }
}

/// Sets Celery's `apply_async` options on a signature: the same ones as [`crate::Options`].
macro_rules! option_methods {
    () => {
        /// Sends the call to `queue`.
        pub fn queue(mut self, queue: impl Into<String>) -> Self {
            self.signature.set_option(option::QUEUE, queue.into());
            self
        }

        /// The message priority, 0 (first) to 9 (last) on Redis.
        pub fn priority(mut self, priority: u8) -> Self {
            self.signature.set_option(option::PRIORITY, priority);
            self
        }

        /// Not before `delay` after it is sent.
        pub fn countdown(mut self, delay: Duration) -> Self {
            self.signature
                .set_option(option::COUNTDOWN, delay.as_secs_f64());
            self
        }

        /// Discarded (stored as REVOKED) if not started within `after` of being sent.
        pub fn expires(mut self, after: Duration) -> Self {
            self.signature
                .set_option(option::EXPIRES, after.as_secs_f64());
            self
        }

        /// Sends the call under this id (its result is stored under it).
        pub fn task_id(mut self, id: impl Into<String>) -> Self {
            self.signature.set_option(option::TASK_ID, id.into());
            self
        }

        /// Calls `callback` with this call's result once it succeeds (Celery's `link`).
        pub fn link<Next>(mut self, callback: Partial<<Self as Output>::Output, Next>) -> Self {
            self.invalid = self.invalid.or(callback.invalid);
            append(&mut self.signature, option::LINK, callback.signature);
            self
        }

        /// Calls `errback` with the failed call's task id if it fails (Celery's `link_error`,
        /// the form a Python worker runs as well).
        pub fn link_error<Next>(mut self, errback: Partial<String, Next>) -> Self {
            self.invalid = self.invalid.or(errback.invalid);
            append(&mut self.signature, option::LINK_ERROR, errback.signature);
            self
        }

        /// Celery's signature underneath.
        pub fn signature(&self) -> &Signature {
            &self.signature
        }

        /// Celery's signature underneath, for a workflow built by hand.
        pub fn into_signature(self) -> Signature {
            self.signature
        }
    };
}

/// What a signature's call returns, for the type of its callbacks.
pub trait Output {
    /// The result type.
    type Output;
}

impl<T> Output for Sig<T> {
    type Output = T;
}

impl<In, Out> Output for Partial<In, Out> {
    type Output = Out;
}

impl<T> Sig<T> {
    fn with(signature: Signature, invalid: Option<String>) -> Self {
        Self {
            signature,
            invalid,
            _out: PhantomData,
        }
    }

    /// A call of task `name` with `args`, its result read as a `T`: for a task defined
    /// elsewhere (in Python, say), known only by name.
    ///
    /// ```
    /// let sig: taskq::canvas::Sig<u64> = taskq::canvas::Sig::by_name("proj.tasks.count", (3,));
    /// assert_eq!(sig.signature().task, "proj.tasks.count");
    /// ```
    pub fn by_name(name: &str, args: impl Serialize) -> Self {
        let mut signature = Signature::new(name);
        let invalid = set_args(&mut signature, args);
        Self::with(signature, invalid)
    }

    /// A typed view of a signature written elsewhere (e.g. read from JSON); the caller vouches
    /// for `T`.
    pub fn from_signature(signature: Signature) -> Self {
        Self::with(signature, None)
    }

    option_methods!();

    /// Sends the call (or the workflow it heads) through `client`.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for an argument that did not serialize, and the errors of
    /// [`Client::apply`].
    pub async fn apply_async(self, client: &Client) -> Result<AsyncResult<T>> {
        let sent = send(client, self.signature, self.invalid).await?;
        Ok(client.result(sent.id()))
    }

    /// Sends the call through the current client ([`Client::current`]).
    ///
    /// # Errors
    ///
    /// As [`apply_async`](Self::apply_async), and [`Error::Config`] without a client.
    pub async fn delay(self) -> Result<AsyncResult<T>> {
        self.apply_async(&Client::current()?).await
    }
}

impl<In, Out> Partial<In, Out> {
    /// A call of task `name` with `rest` after its first argument, which the previous step
    /// gives: for a task known only by name.
    ///
    /// ```
    /// let log = taskq::canvas::Partial::<String, ()>::by_name("proj.tasks.log_failure", ("billing",));
    /// assert_eq!(log.signature().args.len(), 1);
    /// ```
    pub fn by_name(name: &str, rest: impl Serialize) -> Self {
        let mut signature = Signature::new(name);
        let invalid = set_args(&mut signature, rest);
        Self {
            signature,
            invalid,
            _types: PhantomData,
        }
    }

    option_methods!();
}

/// One step of a chain (or a chord's body) after a step whose result is an `In`: a
/// [`Partial`] taking the `In` first, or a complete [`Sig`], which ignores it (Celery's
/// immutable `.si()`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot follow a step whose result is a `{In}`",
    label = "its first argument is not a `{In}`",
    note = "a chain step gets the previous step's result as its first argument; a complete call (`.s(...)` or `.si(...)` with every argument) ignores it"
)]
pub trait Step<In> {
    /// What the step returns.
    type Out;

    /// The step as a signature: a complete call is made immutable, so that it keeps its own
    /// arguments.
    fn into_step(self) -> (Signature, Option<String>);
}

impl<In, Out> Step<In> for Partial<In, Out> {
    type Out = Out;

    fn into_step(self) -> (Signature, Option<String>) {
        (self.signature, self.invalid)
    }
}

impl<In, T> Step<In> for Sig<T> {
    type Out = T;

    fn into_step(mut self) -> (Signature, Option<String>) {
        self.signature.immutable = true;
        (self.signature, self.invalid)
    }
}

/// Steps run one after the other, each given the previous one's result; its result is the
/// last step's, a `T`. Made by [`chain`] and [`Chain::then`].
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.add")]
/// async fn add(x: i64, y: i64) -> i64 { x + y }
///
/// #[taskq::task(name = "tasks.describe")]
/// async fn describe(n: i64) -> String { format!("got {n}") }
///
/// # let mut config = taskq::Config::default();
/// # config.broker_url = "memory://chain-doc".into();
/// # config.result_backend = "memory://chain-doc".into();
/// # let client = taskq::Client::from_config(config)?;
/// // add(2, 2) → add(4, 4) → describe(8); `.then(add.partial("x"))` would not compile.
/// let steps = taskq::canvas::chain(add.s(2, 2)).then(add.partial(4)).then(describe.partial());
/// let last: taskq::AsyncResult<String> = steps.apply_async(&client).await?;
/// # let _ = last; Ok(()) }
/// ```
#[must_use = "a chain does nothing until it is sent"]
pub struct Chain<T> {
    steps: Vec<Signature>,
    invalid: Option<String>,
    _out: PhantomData<fn() -> T>,
}

/// A chain starting with `first`.
pub fn chain<T>(first: Sig<T>) -> Chain<T> {
    Chain {
        steps: vec![first.signature],
        invalid: first.invalid,
        _out: PhantomData,
    }
}

impl<T> Chain<T> {
    /// The chain with `step` after its last step, given that step's result.
    pub fn then<S: Step<T>>(self, step: S) -> Chain<S::Out> {
        let (signature, invalid) = step.into_step();
        let mut steps = self.steps;
        steps.push(signature);
        Chain {
            steps,
            invalid: self.invalid.or(invalid),
            _out: PhantomData,
        }
    }

    /// Celery's `chain` signature.
    pub fn into_signature(self) -> Signature {
        let mut kwargs = RawObject::new();
        kwargs.insert("tasks", to_raw(&self.steps));
        Signature::composite(SignatureKind::Chain, kwargs)
    }

    /// Sends the first step, the others to follow; returns the last step's result.
    ///
    /// # Errors
    ///
    /// As [`Sig::apply_async`].
    pub async fn apply_async(self, client: &Client) -> Result<AsyncResult<T>> {
        let invalid = self.invalid.clone();
        let sent = send(client, self.into_signature(), invalid).await?;
        Ok(client.result(sent.id()))
    }

    /// Sends it through the current client ([`Client::current`]).
    ///
    /// # Errors
    ///
    /// As [`Sig::delay`].
    pub async fn delay(self) -> Result<AsyncResult<T>> {
        self.apply_async(&Client::current()?).await
    }
}

/// Calls run in parallel, each result a `T`; their results come back together, in order.
/// Made by [`group`].
#[must_use = "a group does nothing until it is sent"]
pub struct Group<T> {
    members: Vec<Signature>,
    invalid: Option<String>,
    _out: PhantomData<fn() -> T>,
}

/// A group of `members`.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.add")]
/// async fn add(x: i64, y: i64) -> i64 { x + y }
///
/// # let mut config = taskq::Config::default();
/// # config.broker_url = "memory://group-doc".into();
/// # config.result_backend = "memory://group-doc".into();
/// # let client = taskq::Client::from_config(config)?;
/// let sums = taskq::canvas::group((0..10).map(|i| add.s(i, i)));
/// let results = sums.apply_async(&client).await?; // a GroupResult<i64> of 10
/// assert_eq!(results.len(), 10);
/// # Ok(()) }
/// ```
pub fn group<T>(members: impl IntoIterator<Item = Sig<T>>) -> Group<T> {
    let mut invalid = None;
    let members = members
        .into_iter()
        .map(|sig| {
            invalid = invalid.take().or(sig.invalid);
            sig.signature
        })
        .collect();
    Group {
        members,
        invalid,
        _out: PhantomData,
    }
}

impl<T> Group<T> {
    /// Celery's `group` signature.
    pub fn into_signature(self) -> Signature {
        let mut kwargs = RawObject::new();
        kwargs.insert("tasks", to_raw(&self.members));
        Signature::composite(SignatureKind::Group, kwargs)
    }

    /// Sends every member.
    ///
    /// # Errors
    ///
    /// As [`Sig::apply_async`].
    pub async fn apply_async(self, client: &Client) -> Result<GroupResult<T>> {
        let invalid = self.invalid.clone();
        let sent = send(client, self.into_signature(), invalid).await?;
        let Sent::Group { id, members } = sent else {
            return Err(Error::Malformed {
                what: "group",
                reason: "a group was sent as one task".into(),
            });
        };
        let ids = members.iter().map(|m| m.id().to_owned()).collect();
        Ok(GroupResult::new(client.clone(), id, ids))
    }

    /// Sends it through the current client ([`Client::current`]).
    ///
    /// # Errors
    ///
    /// As [`Sig::delay`].
    pub async fn delay(self) -> Result<GroupResult<T>> {
        self.apply_async(&Client::current()?).await
    }
}

/// A group, then `body` given the list of the group's results, in order: Celery's chord. Its
/// result is the body's, an `Out`. Made by [`chord`].
#[must_use = "a chord does nothing until it is sent"]
pub struct Chord<Out> {
    signature: Signature,
    invalid: Option<String>,
    _out: PhantomData<fn() -> Out>,
}

/// A chord of `header` and `body`: the body runs once, after the last header call, with
/// their results as its first argument.
///
/// ```
/// # #[tokio::main] async fn main() -> taskq::Result<()> {
/// #[taskq::task(name = "tasks.send_push")]
/// async fn send_push(token: String) -> bool { !token.is_empty() }
///
/// #[taskq::task(name = "tasks.count_sent")]
/// async fn count_sent(sent: Vec<bool>) -> usize { sent.iter().filter(|s| **s).count() }
///
/// # let mut config = taskq::Config::default();
/// # config.broker_url = "memory://chord-doc".into();
/// # config.result_backend = "memory://chord-doc".into();
/// # let client = taskq::Client::from_config(config)?;
/// let tokens = ["a", "b", "c"].map(String::from);
/// let header = taskq::canvas::group(tokens.into_iter().map(|t| send_push.s(t)));
/// let summary = taskq::canvas::chord(header, count_sent.partial());
/// let count: taskq::AsyncResult<usize> = summary.apply_async(&client).await?;
/// # let _ = count; Ok(()) }
/// ```
pub fn chord<T, B: Step<Vec<T>>>(header: Group<T>, body: B) -> Chord<B::Out> {
    let (body, body_invalid) = body.into_step();
    let invalid = header.invalid.clone().or(body_invalid);
    let mut kwargs = RawObject::new();
    kwargs.insert("kwargs", RawObject::new().to_raw());
    kwargs.insert("header", to_raw(&header.members));
    kwargs.insert("body", body.to_raw());
    Chord {
        signature: Signature::composite(SignatureKind::Chord, kwargs),
        invalid,
        _out: PhantomData,
    }
}

impl<Out> Chord<Out> {
    /// Celery's `chord` signature.
    pub fn into_signature(self) -> Signature {
        self.signature
    }

    /// Stores the chord's size and sends the header; returns the body's result.
    ///
    /// # Errors
    ///
    /// As [`Sig::apply_async`].
    pub async fn apply_async(self, client: &Client) -> Result<AsyncResult<Out>> {
        let sent = send(client, self.signature, self.invalid).await?;
        Ok(client.result(sent.id()))
    }

    /// Sends it through the current client ([`Client::current`]).
    ///
    /// # Errors
    ///
    /// As [`Sig::delay`].
    pub async fn delay(self) -> Result<AsyncResult<Out>> {
        self.apply_async(&Client::current()?).await
    }
}

async fn send(client: &Client, signature: Signature, invalid: Option<String>) -> Result<Sent> {
    if let Some(reason) = invalid {
        return Err(Error::Malformed {
            what: "signature",
            reason,
        });
    }
    apply(client, signature, None, &Origin::default()).await
}

/// Adds `sig` to the list option `name`.
fn append(signature: &mut Signature, name: &str, sig: Signature) {
    let mut list = signature.option_signatures(name).unwrap_or_default();
    list.push(sig);
    signature.set_option(name, to_raw(&list));
}

/// Sets the arguments from a tuple (or a single value); the reason when they do not
/// serialize.
fn set_args(signature: &mut Signature, args: impl Serialize) -> Option<String> {
    match crate::client::positional(args) {
        Ok(args) => {
            signature.args = args;
            None
        }
        Err(e) => Some(format!("arguments of {}: {e}", signature.task)),
    }
}

fn to_raw(signatures: &[Signature]) -> RawJson {
    RawJson::from_serialize(signatures).expect("signatures serialize")
}

/// Not public API: the signature of task `T` with `args` (all of them, or all but the
/// first for a partial), with the task's declared options.
pub(crate) fn of_task<T: crate::Task>(
    args: impl Serialize,
    immutable: bool,
) -> (Signature, Option<String>) {
    let mut signature = Signature::new(T::NAME);
    let invalid = set_args(&mut signature, args);
    signature.immutable = immutable;
    let declared = T::OPTIONS;
    if let Some(queue) = declared.queue {
        signature.set_option(option::QUEUE, queue);
    }
    if let Some(limit) = declared.time_limit_secs {
        signature.set_option(option::TIME_LIMIT, limit);
    }
    if let Some(limit) = declared.soft_time_limit_secs {
        signature.set_option(option::SOFT_TIME_LIMIT, limit);
    }
    if declared.ignore_result {
        signature.set_option(option::IGNORE_RESULT, true);
    }
    (signature, invalid)
}

impl<T> Sig<T> {
    pub(crate) fn of_task<K: crate::Task<Output = T>>(args: K::Args, immutable: bool) -> Self {
        let (signature, invalid) = of_task::<K>(args, immutable);
        Self::with(signature, invalid)
    }
}

impl<In, Out> Partial<In, Out> {
    pub(crate) fn of_task<K: crate::Task<Output = Out>>(rest: impl Serialize) -> Self {
        let (signature, invalid) = of_task::<K>(rest, false);
        Self {
            signature,
            invalid,
            _types: PhantomData,
        }
    }
}
