//! Celery's signature: a call written as JSON, to be made later. Signatures travel inside a
//! message's embed (the `callbacks`, `errbacks`, `chain` and `chord` that continue a workflow)
//! and as arguments of Celery's built-in tasks (`celery.map`, `celery.starmap`,
//! `celery.chunks`).
//!
//! ```text
//! {"task": "tasks.add", "args": [4], "kwargs": {}, "options": {"task_id": "…"},
//!  "subtask_type": null, "immutable": false}
//! ```
//!
//! A plain signature (`subtask_type` null) is one task call. A composite names its kind in
//! `subtask_type` and holds its parts in `kwargs`: `chain` and `group` as `{"tasks": [...]}`,
//! `chord` as `{"header": [...], "body": {...}, "kwargs": {}}`. `options` holds any of
//! `apply_async`'s options; taskq reads the ones it acts on ([`option`](Signature::option)) and
//! keeps the rest as written.

use serde::{Deserialize, Serialize};

use super::{RawJson, RawObject};

/// Names of the signature options taskq reads (Celery's `apply_async` keywords).
pub mod option {
    /// The id the call is sent under (known in advance for chain steps and chord bodies).
    pub const TASK_ID: &str = "task_id";
    /// The group (or chord) the call belongs to.
    pub const GROUP_ID: &str = "group_id";
    /// Its position in the group.
    pub const GROUP_INDEX: &str = "group_index";
    /// Signatures to call with the result on success.
    pub const LINK: &str = "link";
    /// Signatures to call on failure.
    pub const LINK_ERROR: &str = "link_error";
    /// The callback of the chord the call is a part of.
    pub const CHORD: &str = "chord";
    /// The rest of a chain, last step first (set by a producer on a chain's first step).
    pub const CHAIN: &str = "chain";
    /// The queue to send to.
    pub const QUEUE: &str = "queue";
    /// The message priority.
    pub const PRIORITY: &str = "priority";
    /// Seconds from now before the call may start.
    pub const COUNTDOWN: &str = "countdown";
    /// Not before this time (ISO 8601).
    pub const ETA: &str = "eta";
    /// Seconds from now, or an ISO 8601 time, after which the call is discarded.
    pub const EXPIRES: &str = "expires";
    /// Hard time limit in seconds.
    pub const TIME_LIMIT: &str = "time_limit";
    /// Soft time limit in seconds.
    pub const SOFT_TIME_LIMIT: &str = "soft_time_limit";
    /// Store no result.
    pub const IGNORE_RESULT: &str = "ignore_result";
    /// The id of the task that sends it.
    pub const PARENT_ID: &str = "parent_id";
    /// The id of the workflow's first task.
    pub const ROOT_ID: &str = "root_id";
}

/// What a signature stands for, from its `subtask_type` (and, for the built-ins Celery writes
/// with no `subtask_type`, its task name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureKind {
    /// One task call (this includes `celery.map`, `celery.starmap` and `celery.chunks`,
    /// which are calls of Celery's built-in tasks).
    Task,
    /// `chain(...)`: `kwargs.tasks` run one after the other, each result passed on.
    Chain,
    /// `group(...)`: `kwargs.tasks` run in parallel.
    Group,
    /// `chord(header, body)`: the header group, then the body with the list of its results.
    Chord,
    /// A `subtask_type` taskq does not know (a user-registered signature class).
    Unknown,
}

/// One signature, as Celery writes it: arguments and options kept as the exact JSON text
/// (numbers exact, keys in order), written back in Celery's key order.
///
/// ```
/// use taskq::protocol::{RawJson, Signature, SignatureKind};
///
/// let text = r#"{"task": "tasks.add", "args": [4], "kwargs": {}, "options": {"task_id": "t-2"}, "subtask_type": null, "immutable": false}"#;
/// let sig: Signature = serde_json::from_str(text)?;
/// assert_eq!((sig.task.as_str(), sig.kind()), ("tasks.add", SignatureKind::Task));
/// assert_eq!(sig.task_id().as_deref(), Some("t-2"));
/// // The previous step's result goes first, as in Celery.
/// assert_eq!(sig.call_args(Some(RawJson::from(3))), vec![RawJson::from(3), RawJson::from(4)]);
/// assert_eq!(taskq::protocol::pyjson::to_string(&sig)?, text);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Signature {
    /// The task name (`celery.chain`, `celery.group`, `celery.chord` for composites).
    pub task: String,
    /// Positional arguments, each as the exact text written.
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<RawJson>,
    /// Keyword arguments, in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub kwargs: RawObject,
    /// `apply_async` options, in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: RawObject,
    /// The composite kind (`chain`, `group`, `chord`), or `None` for a task call.
    #[serde(default)]
    pub subtask_type: Option<String>,
    /// Whether the call ignores the result it is given (Celery's `.si()`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub immutable: bool,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `subtask_type` of a chain, and so on, as Celery registers the classes.
const CHAIN: &str = "chain";
const GROUP: &str = "group";
const CHORD: &str = "chord";

impl Signature {
    /// A call of `task` with no arguments or options.
    ///
    /// ```
    /// let sig = taskq::protocol::Signature::new("tasks.add");
    /// assert!(sig.args.is_empty() && !sig.immutable);
    /// ```
    pub fn new(task: impl Into<String>) -> Self {
        Self {
            task: task.into(),
            args: Vec::new(),
            kwargs: RawObject::new(),
            options: RawObject::new(),
            subtask_type: None,
            immutable: false,
        }
    }

    /// A composite of `kind` (`Chain`, `Group` or `Chord`) with these `kwargs`, named as
    /// Celery names it.
    pub(crate) fn composite(kind: SignatureKind, kwargs: RawObject) -> Self {
        let name = match kind {
            SignatureKind::Chain => CHAIN,
            SignatureKind::Group => GROUP,
            _ => CHORD,
        };
        let mut sig = Self::new(format!("celery.{name}"));
        sig.kwargs = kwargs;
        sig.subtask_type = Some(name.to_owned());
        sig
    }

    /// What the signature stands for.
    ///
    /// ```
    /// let sig: taskq::protocol::Signature = serde_json::from_str(
    ///     r#"{"task": "celery.group", "args": [], "kwargs": {"tasks": []}, "options": {}, "subtask_type": "group", "immutable": false}"#,
    /// )?;
    /// assert_eq!(sig.kind(), taskq::protocol::SignatureKind::Group);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn kind(&self) -> SignatureKind {
        match self.subtask_type.as_deref() {
            None => SignatureKind::Task,
            Some(CHAIN) => SignatureKind::Chain,
            Some(GROUP) => SignatureKind::Group,
            Some(CHORD) => SignatureKind::Chord,
            Some(_) => SignatureKind::Unknown,
        }
    }

    /// The arguments of the call made with `result` (the previous step's): `result` first,
    /// then the signature's own, unless the signature is immutable.
    pub fn call_args(&self, result: Option<RawJson>) -> Vec<RawJson> {
        match result {
            Some(result) if !self.immutable => {
                let mut args = Vec::with_capacity(self.args.len() + 1);
                args.push(result);
                args.extend(self.args.iter().cloned());
                args
            }
            _ => self.args.clone(),
        }
    }

    /// The option `name` as a string, when it is one.
    pub fn option_str(&self, name: &str) -> Option<String> {
        self.options.get(name)?.parse::<Option<String>>().ok()?
    }

    /// The id the call is to be sent under, when the producer fixed it.
    pub fn task_id(&self) -> Option<String> {
        self.option_str(option::TASK_ID)
    }

    /// Sets an option to `value`.
    pub fn set_option(&mut self, name: &str, value: impl Into<RawJson>) {
        self.options.insert(name, value.into());
    }

    /// The signatures of a list-valued option (`link`, `link_error`): Celery writes one
    /// signature or a list of them.
    ///
    /// # Errors
    ///
    /// The reason, when the option is not a signature or a list of signatures.
    pub fn option_signatures(&self, name: &str) -> Result<Vec<Signature>, String> {
        match self.options.get(name) {
            None => Ok(Vec::new()),
            Some(raw) => signatures(raw).map_err(|e| format!("option `{name}`: {e}")),
        }
    }

    /// The signature of option `name` (a chord's body in `chord`), if set.
    ///
    /// # Errors
    ///
    /// The reason, when it is neither null nor a signature.
    pub fn option_signature(&self, name: &str) -> Result<Option<Signature>, String> {
        match self.options.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse::<Option<Signature>>()
                .map_err(|e| format!("option `{name}` is not a signature: {e}")),
        }
    }

    /// The member signatures of a chain or group (`kwargs.tasks`), or a chord's header
    /// (`kwargs.header`).
    ///
    /// # Errors
    ///
    /// The reason, when the field is missing or not a list of signatures.
    pub fn members(&self) -> Result<Vec<Signature>, String> {
        let field = if self.kind() == SignatureKind::Chord {
            "header"
        } else {
            "tasks"
        };
        let raw = self
            .kwargs
            .get(field)
            .ok_or_else(|| format!("{} signature has no `{field}`", self.task))?;
        let members = signatures(raw).map_err(|e| format!("{} `{field}`: {e}", self.task))?;
        // Celery writes a chord's header as one group signature when it was built from a
        // group (a chain's `group | task`): its members are the header.
        match members.as_slice() {
            [group]
                if field == "header"
                    && raw.to_items().is_none()
                    && group.kind() == SignatureKind::Group =>
            {
                group.members()
            }
            _ => Ok(members),
        }
    }

    /// The id of a chord's header when Celery wrote the header as one group signature (it
    /// then names the chord's group).
    pub(crate) fn chord_header_group_id(&self) -> Option<String> {
        let header = self.kwargs.get("header")?;
        if header.to_items().is_some() {
            return None;
        }
        header.parse::<Signature>().ok()?.task_id()
    }

    /// A chord's body (`kwargs.body`).
    ///
    /// # Errors
    ///
    /// The reason, when it is missing or not a signature.
    pub fn chord_body(&self) -> Result<Signature, String> {
        let raw = self
            .kwargs
            .get("body")
            .ok_or_else(|| format!("{} signature has no `body`", self.task))?;
        raw.parse()
            .map_err(|e| format!("{} `body` is not a signature: {e}", self.task))
    }

    /// The signature as one JSON value.
    pub fn to_raw(&self) -> RawJson {
        RawJson::from_serialize(self).expect("a signature serializes")
    }
}

/// One signature or a list of them, as Celery writes `link`, `callbacks` and so on.
pub(crate) fn signatures(raw: &RawJson) -> Result<Vec<Signature>, String> {
    if raw.is_null() {
        return Ok(Vec::new());
    }
    if let Some(items) = raw.to_items() {
        return items
            .iter()
            .map(|item| {
                item.parse::<Signature>()
                    .map_err(|e| format!("not a signature: {e}: {}", item.compact()))
            })
            .collect();
    }
    raw.parse::<Signature>()
        .map(|sig| vec![sig])
        .map_err(|e| format!("not a signature or a list of them: {e}"))
}

/// Protocol 2's embed (the body's third item): what continues a workflow after the task.
/// Empty for a plain call, which Celery writes as four `null`s.
///
/// ```
/// use taskq::protocol::{Signature, Workflow};
///
/// let mut workflow = Workflow::default();
/// workflow.callbacks.push(Signature::new("tasks.notify"));
/// assert!(!workflow.is_empty());
/// assert!(Workflow::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Workflow {
    /// Called with the result on success (`link=`).
    pub callbacks: Vec<Signature>,
    /// Called with the task id on failure (`link_error=`).
    pub errbacks: Vec<Signature>,
    /// The rest of the chain, last step first: the next step is the last element.
    pub chain: Vec<Signature>,
    /// The body of the chord this task is a part of.
    pub chord: Option<Signature>,
}

impl Workflow {
    /// Whether nothing follows the task.
    pub fn is_empty(&self) -> bool {
        self.callbacks.is_empty()
            && self.errbacks.is_empty()
            && self.chain.is_empty()
            && self.chord.is_none()
    }

    /// Why taskq cannot continue this workflow, when a continuation is of a kind it does not
    /// run (a signature class a Python application registered).
    pub(crate) fn unsupported(&self) -> Option<String> {
        let unknown = self
            .callbacks
            .iter()
            .chain(&self.errbacks)
            .chain(&self.chain)
            .chain(&self.chord)
            .find(|sig| sig.kind() == SignatureKind::Unknown)?;
        Some(format!(
            "the workflow continues with a `{}` signature ({}), a kind taskq workers do not \
             run; refused rather than run without it (it stays in the dead-letter list)",
            unknown.subtask_type.as_deref().unwrap_or_default(),
            unknown.task
        ))
    }

    /// Reads the embed's fields (raw text of each, `None` when absent).
    pub(crate) fn read(
        callbacks: Option<&RawJson>,
        errbacks: Option<&RawJson>,
        chain: Option<&RawJson>,
        chord: Option<&RawJson>,
    ) -> Result<Self, String> {
        use super::names::embed;
        let list = |name: &str, raw: Option<&RawJson>| match raw {
            None => Ok(Vec::new()),
            Some(raw) => signatures(raw).map_err(|e| format!("embed `{name}`: {e}")),
        };
        let chord = match chord {
            None => None,
            Some(raw) => raw
                .parse::<Option<Signature>>()
                .map_err(|e| format!("embed `{}` is not a signature: {e}", embed::CHORD))?,
        };
        Ok(Self {
            callbacks: list(embed::CALLBACKS, callbacks)?,
            errbacks: list(embed::ERRBACKS, errbacks)?,
            chain: list(embed::CHAIN, chain)?,
            chord,
        })
    }
}

/// The embed as written: an empty list as `null`, as Celery writes a plain call's.
#[derive(Serialize)]
pub(crate) struct EmbedOut<'a> {
    callbacks: Option<&'a [Signature]>,
    errbacks: Option<&'a [Signature]>,
    chain: Option<&'a [Signature]>,
    chord: Option<&'a Signature>,
}

impl<'a> From<&'a Workflow> for EmbedOut<'a> {
    fn from(w: &'a Workflow) -> Self {
        let some = |list: &'a [Signature]| (!list.is_empty()).then_some(list);
        Self {
            callbacks: some(&w.callbacks),
            errbacks: some(&w.errbacks),
            chain: some(&w.chain),
            chord: w.chord.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pyjson;

    /// Captured from Celery 5.7: `chord([add.s(1,1), ...], tsum.s())`'s body in a header task.
    const CHORD_BODY: &str = r#"{"task": "tasks.tsum", "args": [], "kwargs": {}, "options": {"task_id": "c690b2a9-b6bd-40ab-a120-5c4b6215da67", "reply_to": "53e8ebb3", "group_id": "e28c046e-e07d-42f4-b067-fef5ab0e5d3c"}, "subtask_type": null, "immutable": false}"#;

    #[test]
    fn a_signature_reads_and_writes_back_as_celery_wrote_it() {
        let sig: Signature = serde_json::from_str(CHORD_BODY).unwrap();
        assert_eq!(
            sig.option_str(option::GROUP_ID).as_deref(),
            Some("e28c046e-e07d-42f4-b067-fef5ab0e5d3c")
        );
        assert_eq!(pyjson::to_string(&sig).unwrap(), CHORD_BODY);
    }

    #[test]
    fn an_immutable_signature_ignores_the_result_it_is_given() {
        let mut sig = Signature::new("tasks.add");
        sig.args = vec![RawJson::from(1)];
        sig.immutable = true;
        assert_eq!(
            sig.call_args(Some(RawJson::from(9))),
            vec![RawJson::from(1)]
        );
    }

    #[test]
    fn link_options_may_be_one_signature_or_a_list() {
        let one = format!(r#"{{"task": "a", "options": {{"link": {CHORD_BODY}}}}}"#);
        let many =
            format!(r#"{{"task": "a", "options": {{"link": [{CHORD_BODY}, {CHORD_BODY}]}}}}"#);
        let one: Signature = serde_json::from_str(&one).unwrap();
        let many: Signature = serde_json::from_str(&many).unwrap();
        assert_eq!(one.option_signatures(option::LINK).unwrap().len(), 1);
        assert_eq!(many.option_signatures(option::LINK).unwrap().len(), 2);
        let bad: Signature =
            serde_json::from_str(r#"{"task": "a", "options": {"link": 5}}"#).unwrap();
        assert!(bad.option_signatures(option::LINK).is_err());
    }

    #[test]
    fn composites_name_their_kind_and_members() {
        let chain = format!(
            r#"{{"task": "celery.chain", "args": [], "kwargs": {{"tasks": [{CHORD_BODY}]}}, "options": {{}}, "subtask_type": "chain", "immutable": false}}"#
        );
        let chain: Signature = serde_json::from_str(&chain).unwrap();
        assert_eq!(chain.kind(), SignatureKind::Chain);
        assert_eq!(chain.members().unwrap()[0].task, "tasks.tsum");
        let chord = Signature::composite(SignatureKind::Chord, RawObject::new());
        assert_eq!(chord.task, "celery.chord");
        assert!(chord.members().is_err() && chord.chord_body().is_err());
    }

    #[test]
    fn an_empty_workflow_is_written_as_four_nulls() {
        let text = pyjson::to_string(&EmbedOut::from(&Workflow::default())).unwrap();
        assert_eq!(
            text,
            r#"{"callbacks": null, "errbacks": null, "chain": null, "chord": null}"#
        );
    }
}
