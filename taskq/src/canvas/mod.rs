//! Workflows in Celery's canvas format: chains, groups, chords and callbacks, built from
//! [`Signature`]s and sent as the same messages Celery sends, so a workflow runs on Python
//! workers, on taskq workers, or on both.
//!
//! A worker continues what the messages carry (the next step of a chain, a callback, a
//! chord's body); a producer starts a workflow from typed signatures (a task's `.s(...)`,
//! `.si(...)` and `.partial(...)`, then [`chain`], [`group`], [`chord`]) or from Celery's
//! signature JSON with [`Client::apply`].
//!
//! | Celery | taskq |
//! |---|---|
//! | `add.s(2, 2)` | `add.s(2, 2)`: a [`Sig<i64>`](Sig) |
//! | `add.si(2, 2)` | `add.si(2, 2)` (a complete `Sig` used as a later step is immutable anyway) |
//! | `add.s(4)` as a later step | `add.partial(4)`: a [`Partial<i64, i64>`](Partial), its first argument from the step before |
//! | `chain(a, b, c)` / `a \| b \| c` | `chain(a).then(b).then(c)`: a step whose input type is not the previous output does not compile |
//! | `group(...)` | [`group`]`(iter)`, sent as a [`GroupResult<T>`](GroupResult) |
//! | `chord(header, body)` | [`chord`]`(group, body)`: the body's first argument is a `Vec<T>` |
//! | `link=`, `link_error=` | [`Sig::link`], [`Sig::link_error`] (the errback gets the failed task's id) |

mod apply;
mod group_result;
mod typed;

pub(crate) use apply::{apply, Origin};
pub use group_result::GroupResult;
pub use typed::{chain, chord, group, Chain, Chord, Group, Output, Partial, Sig, Step};

use crate::protocol::{RawJson, RawObject, Signature, SignatureKind};
use crate::{Client, Result};

/// What sending a signature started: one task (a chain's last step, a chord's body), or a
/// group of them. Its [`as_tuple`](Sent::as_tuple) is Celery's result tuple, what a task's
/// `children` and a saved group hold.
///
/// ```
/// use taskq::canvas::Sent;
///
/// let group = Sent::Group { id: "g".into(), members: vec![Sent::Task("a".into())] };
/// assert_eq!(group.id(), "g");
/// assert_eq!(group.as_tuple().as_str(), r#"[["g", null], [[["a", null], null]]]"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// One task, by id.
    Task(String),
    /// A group: its id, and what each member started.
    Group {
        /// The group id.
        id: String,
        /// Each member's.
        members: Vec<Sent>,
    },
}

impl Sent {
    /// The id of the task, or of the group.
    pub fn id(&self) -> &str {
        match self {
            Self::Task(id) | Self::Group { id, .. } => id,
        }
    }

    /// Celery's result tuple: `[[id, null], null]` for a task, `[[id, null], [members…]]` for
    /// a group.
    pub fn as_tuple(&self) -> RawJson {
        let tuple = match self {
            Self::Task(id) => serde_json::json!([[id, null], null]),
            Self::Group { id, members } => {
                let members: Vec<serde_json::Value> = members
                    .iter()
                    .map(|m| m.as_tuple().to_value().unwrap_or_default())
                    .collect();
                serde_json::json!([[id, null], members])
            }
        };
        let text = crate::protocol::pyjson::to_string(&tuple).expect("a tuple of ids serializes");
        RawJson::from_text(&text).expect("pyjson writes JSON")
    }
}

/// `chord(header, body)` as Celery writes it, from a group signature and the body.
pub(crate) fn chord_of(header: Signature, body: Signature) -> Result<Signature> {
    let mut kwargs = RawObject::new();
    kwargs.insert("kwargs", RawObject::new().to_raw());
    kwargs.insert(
        "header",
        RawJson::from_serialize(&header.members().map_err(malformed)?)?,
    );
    kwargs.insert("body", body.to_raw());
    let mut chord = Signature::composite(SignatureKind::Chord, kwargs);
    chord.options = header.options;
    // A group's `task_id` is its group id; a chord's `task_id` is its body's.
    if let Some(group_id) = chord
        .options
        .remove(crate::protocol::signature_option::TASK_ID)
    {
        chord
            .options
            .insert(crate::protocol::signature_option::GROUP_ID, group_id);
    }
    Ok(chord)
}

fn malformed(reason: String) -> crate::Error {
    crate::Error::Malformed {
        what: "signature",
        reason,
    }
}

impl Client {
    /// Sends a workflow given as a [`Signature`] (a task call, a chain, a group or a chord,
    /// as Celery writes them), publishing the messages Celery would: the first step of a
    /// chain, every member of a group, every part of a chord's header (after storing the
    /// chord's size). Returns what it started: a chain's last step, a chord's body, a group.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`](crate::Error::Malformed) for a signature taskq cannot send (no
    /// steps, an option of the wrong type), [`Error::Redis`](crate::Error::Redis) when the
    /// broker or the result store cannot be reached.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> taskq::Result<()> {
    /// use taskq::protocol::Signature;
    ///
    /// let mut config = taskq::Config::default();
    /// config.broker_url = "memory://apply-doc".into();
    /// config.result_backend = "memory://apply-doc".into();
    /// let client = taskq::Client::from_config(config)?;
    /// let chain: Signature = serde_json::from_str(
    ///     r#"{"task": "celery.chain", "kwargs": {"tasks": [{"task": "tasks.add", "args": [1, 2]}, {"task": "tasks.add", "args": [3]}]}, "subtask_type": "chain"}"#,
    /// )?;
    /// let sent = client.apply(chain).await?;
    /// let last = client.result::<i64>(sent.id()); // the chain's result: its last step's
    /// # let _ = last; Ok(()) }
    /// ```
    pub async fn apply(&self, signature: Signature) -> Result<Sent> {
        apply(self, signature, None, &Origin::default()).await
    }
}
