//! Continuing a workflow once a task has finished, as a Celery worker does: the next step of
//! its chain and its callbacks on success, its errbacks on failure, and its part of a chord
//! either way, with the chord's body sent by whichever worker finishes the last part.
//!
//! The completer runs this in two steps around storing the task's own result, in Celery's
//! order: [`FollowUp::send_next`] before (so the record lists what was sent as its
//! `children`), [`FollowUp::after_stored`] after (a chord part is counted only once its own
//! result is readable). The message is acknowledged only after both, so a worker that dies
//! part-way leaves the message to be run again: a chord counts each part once
//! (`ResultBackend::chord_part_return`), and a chain step or callback sent twice runs under
//! the same id.

use crate::backend::{ChordPart, ChordResult, ChordVote};
use crate::canvas::{apply, Origin};
use crate::failure::TaskFailure;
use crate::protocol::{
    py_repr, RawJson, RawObject, Signature, SignatureKind, TaskMessage, Workflow,
};
use crate::state::{ResultMeta, TaskState};
use crate::{Client, Error, Result};

/// How a task ended, as its continuations see it.
#[derive(Debug, Clone)]
pub(super) enum Ended {
    Succeeded(RawJson),
    Failed(TaskFailure),
}

impl Ended {
    fn failure(&self) -> Option<&TaskFailure> {
        match self {
            Self::Failed(failure) => Some(failure),
            Self::Succeeded(_) => None,
        }
    }
}

/// What follows a finished task in its workflow.
#[derive(Debug)]
pub(super) struct FollowUp {
    task_id: String,
    origin: Origin,
    group: Option<String>,
    group_index: Option<u32>,
    workflow: Workflow,
    ended: Ended,
}

impl FollowUp {
    /// The follow-up of `message` after it ended so; `None` when nothing follows it.
    pub(super) fn after(message: &TaskMessage, ended: Ended) -> Option<Box<Self>> {
        if message.workflow.is_empty() {
            return None;
        }
        Some(Box::new(Self {
            task_id: message.id.clone(),
            origin: Origin {
                parent_id: Some(message.id.clone()),
                root_id: Some(
                    message
                        .root_id
                        .clone()
                        .unwrap_or_else(|| message.id.clone()),
                ),
            },
            group: message.group.clone(),
            group_index: message.group_index,
            workflow: message.workflow.clone(),
            ended,
        }))
    }

    /// The task's id.
    pub(super) fn task_id(&self) -> &str {
        &self.task_id
    }

    /// On success, sends the chain's next step and the callbacks, each given the result;
    /// returns their result tuples, for the task's `children`. Nothing on failure.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] when a continuation cannot be sent as written (the caller fails
    /// the task and dead-letters the message); any other error is worth retrying.
    pub(super) async fn send_next(&self, client: &Client) -> Result<Vec<RawJson>> {
        let Ended::Succeeded(result) = &self.ended else {
            return Ok(Vec::new());
        };
        let mut children = Vec::new();
        if let Some(next) = self.next_chain_step()? {
            let sent = apply(client, next, Some(result.clone()), &self.origin).await?;
            children.push(sent.as_tuple());
        }
        if let Some(callbacks) = as_one(self.workflow.callbacks.clone()) {
            let sent = apply(client, callbacks, Some(result.clone()), &self.origin).await?;
            children.push(sent.as_tuple());
        }
        Ok(children)
    }

    /// The chain's next step (its last element) carrying the rest of the chain.
    fn next_chain_step(&self) -> Result<Option<Signature>> {
        let mut rest = self.workflow.chain.clone();
        let Some(mut next) = rest.pop() else {
            return Ok(None);
        };
        if !rest.is_empty() {
            next.set_option(
                crate::protocol::signature_option::CHAIN,
                RawJson::from_serialize(&rest)?,
            );
        }
        Ok(Some(next))
    }

    /// Once the task's own result is stored: counts its chord part (sending or failing the
    /// body if it was the last), and on failure fails the rest of its chain and sends its
    /// errbacks.
    ///
    /// # Errors
    ///
    /// As [`send_next`](Self::send_next).
    pub(super) async fn after_stored(&self, client: &Client) -> Result<()> {
        if let Some(body) = &self.workflow.chord {
            self.count_chord_part(client, body).await?;
        }
        // A revoked task (or an expired one) only counts toward its chord, as in Celery.
        if let Some(failure) = self.ended.failure().filter(|f| !f.is_revoked()) {
            self.fail_rest_of_chain(client, failure).await?;
            send_errbacks(client, &self.workflow.errbacks, &self.task_id, &self.origin).await?;
        }
        Ok(())
    }

    async fn count_chord_part(&self, client: &Client, body: &Signature) -> Result<()> {
        let Some(group_id) = self.group.clone().or_else(|| body.option_str("group_id")) else {
            return Err(malformed(
                "a chord part without a group id: its chord cannot be counted".into(),
            ));
        };
        let (state, result) = match &self.ended {
            Ended::Succeeded(value) => (TaskState::Success, value.clone()),
            Ended::Failed(f) if f.is_revoked() => (TaskState::Revoked, f.to_exception_json()),
            Ended::Failed(f) => (TaskState::Failure, f.to_exception_json()),
        };
        let part = ChordPart::new(&group_id, &self.task_id, self.group_index, state, result);
        match client.backend().chord_part_return(&part).await? {
            ChordVote::Complete { claim } => {
                let chord = Chord {
                    group_id: &group_id,
                    body,
                    origin: &self.origin,
                };
                chord.finish(client).await?;
                client.backend().finish_chord(&group_id, &claim).await
            }
            ChordVote::Finished => {
                tracing::info!(%group_id, id = %self.task_id, "chord already finished: this part came again late, ignored");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Stores the task's failure for every later step of its chain that has an id, as Celery
    /// does, so that whoever waits on the chain's result learns of it.
    async fn fail_rest_of_chain(&self, client: &Client, failure: &TaskFailure) -> Result<()> {
        let records: Vec<ResultMeta> = self
            .workflow
            .chain
            .iter()
            .filter_map(Signature::task_id)
            .map(|id| ResultMeta::failure(&id, failure).with_parent(Some(self.task_id.clone())))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        client.backend().store(&records).await
    }
}

/// A chord whose header has finished, and the worker that finished it.
struct Chord<'a> {
    group_id: &'a str,
    body: &'a Signature,
    origin: &'a Origin,
}

impl Chord<'_> {
    /// Sends the body with the header's results in order, or, when a part failed, stores the
    /// body's failure (`ChordError`) and sends the body's errbacks.
    async fn finish(&self, client: &Client) -> Result<()> {
        let results = client.backend().chord_results(self.group_id).await?;
        if let Some(failed) = results.iter().find(|r| r.state.is_exception()) {
            return self.fail(client, failed).await;
        }
        let values: Vec<RawJson> = results.into_iter().map(|r| r.result).collect();
        let mut body = self.body.clone();
        body.options
            .remove(crate::protocol::signature_option::CHORD);
        apply(
            client,
            body,
            Some(RawJson::from_serialize(&values)?),
            self.origin,
        )
        .await?;
        Ok(())
    }

    async fn fail(&self, client: &Client, failed: &ChordResult) -> Result<()> {
        let cause = TaskFailure::from_exception_json(&failed.result, None);
        let error = TaskFailure::new(
            "ChordError",
            "celery.exceptions",
            format!(
                "Dependency {} raised {}",
                failed.task_id,
                exception_repr(&cause)
            ),
        );
        tracing::error!(group_id = %self.group_id, "chord failed: {error}");
        let Some(body_id) = self.body.task_id() else {
            return Ok(());
        };
        let record = ResultMeta::failure(&body_id, &error)
            .with_group(Some(self.group_id.to_owned()))
            .with_parent(self.origin.parent_id.clone());
        client.backend().store(&[record]).await?;
        let errbacks = self
            .body
            .option_signatures(crate::protocol::signature_option::LINK_ERROR)
            .map_err(malformed)?;
        send_errbacks(client, &errbacks, &body_id, self.origin).await
    }
}

/// Sends errbacks as Celery sends the ones it cannot call in-process: one group, each given
/// the failed task's id.
async fn send_errbacks(
    client: &Client,
    errbacks: &[Signature],
    failed_id: &str,
    origin: &Origin,
) -> Result<()> {
    if errbacks.is_empty() {
        return Ok(());
    }
    let group = group_of(errbacks.to_vec());
    apply(client, group, Some(RawJson::from(failed_id)), origin).await?;
    Ok(())
}

/// One signature as is; several as one group, as Celery sends more than one callback.
fn as_one(mut sigs: Vec<Signature>) -> Option<Signature> {
    match sigs.len() {
        0 => None,
        1 => sigs.pop(),
        _ => Some(group_of(sigs)),
    }
}

fn group_of(members: Vec<Signature>) -> Signature {
    let mut kwargs = RawObject::new();
    kwargs.insert(
        "tasks",
        RawJson::from_serialize(&members).expect("signatures serialize"),
    );
    Signature::composite(SignatureKind::Group, kwargs)
}

/// Python's `repr()` of an exception: `ValueError('bad thing', 42)`.
fn exception_repr(failure: &TaskFailure) -> String {
    let args = failure
        .exc_message()
        .to_items()
        .map(|items| items.iter().map(py_repr).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| py_repr(failure.exc_message()));
    format!("{}({args})", failure.exc_type())
}

fn malformed(reason: String) -> Error {
    Error::Malformed {
        what: "workflow",
        reason,
    }
}
