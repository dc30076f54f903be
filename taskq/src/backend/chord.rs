//! What the result store keeps for groups and chords, in the layout of Celery's Redis backend:
//! a saved group (`GroupResult.save()`), and a chord's count of finished header parts, which
//! decides which worker sends the body.

use std::time::Duration;

use crate::protocol::{pyjson, RawJson};
use crate::state::TaskState;

/// How long a worker's claim on sending a chord's body holds: long enough to read the
/// results and publish, short enough that a worker that died holding it does not block the
/// rerun of its part (recovered after the visibility timeout) from claiming again.
pub(crate) const CLAIM_HOLDS: Duration = Duration::from_secs(30);

/// How long a finished chord remembers it is finished, so a late duplicate part is ignored
/// (Celery 5.7 keeps `done` for 300 s).
pub(crate) const DONE_KEPT: Duration = Duration::from_secs(300);

/// One finished header part of a chord, as its worker counts it.
///
/// ```
/// use taskq::backend::ChordPart;
/// use taskq::protocol::RawJson;
///
/// let part = ChordPart::new("g1", "t1", Some(0), taskq::TaskState::Success, RawJson::from(2));
/// assert_eq!(part.member(), r#"[1, "t1", "SUCCESS", 2]"#);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChordPart {
    /// The chord's group id.
    pub group_id: String,
    /// The part's task id.
    pub task_id: String,
    /// Its place in the header (the order of the results the body gets).
    pub group_index: Option<u32>,
    /// How it ended (SUCCESS, FAILURE or REVOKED).
    pub state: TaskState,
    /// Its result, or its exception object.
    pub result: RawJson,
}

impl ChordPart {
    /// A finished part.
    pub fn new(
        group_id: impl Into<String>,
        task_id: impl Into<String>,
        group_index: Option<u32>,
        state: TaskState,
        result: RawJson,
    ) -> Self {
        Self {
            group_id: group_id.into(),
            task_id: task_id.into(),
            group_index,
            state,
            result,
        }
    }

    /// The entry in the chord's results, as Celery writes it: `[1, id, state, result]`.
    pub fn member(&self) -> String {
        pyjson::to_string(&(1, &self.task_id, self.state.as_str(), &self.result))
            .expect("a chord member serializes")
    }

    /// Its score among the results: the group index, `+inf` without one.
    pub(crate) fn score(&self) -> String {
        self.group_index
            .map_or_else(|| "+inf".to_owned(), |i| i.to_string())
    }

    /// What identifies the part when it is counted again (a redelivered message).
    pub(crate) fn counted_as(&self) -> String {
        let index = self
            .group_index
            .map_or_else(|| "None".to_owned(), |i| i.to_string());
        format!("{}:{index}", self.task_id)
    }
}

/// What counting a part decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChordVote {
    /// Other parts have not finished yet (or another worker claimed the body).
    Pending,
    /// Every part has finished and this caller claimed the body: it sends it, then calls
    /// [`ResultBackend::finish_chord`](super::ResultBackend::finish_chord) with the claim.
    Complete {
        /// The claim token.
        claim: String,
    },
    /// The chord had finished already: a late duplicate of a part.
    Finished,
}

/// One entry of a chord's results, read back.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChordResult {
    /// The part's task id.
    pub task_id: String,
    /// How it ended.
    pub state: TaskState,
    /// Its result, or its exception object.
    pub result: RawJson,
}

impl ChordResult {
    /// Reads a `[1, id, state, result]` entry.
    pub(crate) fn parse(member: &str) -> crate::Result<Self> {
        let (_, task_id, state, result): (RawJson, String, String, RawJson) =
            RawJson::from_text(member)?.parse()?;
        Ok(Self {
            task_id,
            state: TaskState::from(state.as_str()),
            result,
        })
    }
}

/// A new claim token.
pub(crate) fn claim_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_written_and_read_back_as_celery_writes_it() {
        let exc = RawJson::from_text(
            r#"{"exc_type": "ValueError", "exc_message": ["bad thing", 42], "exc_module": "builtins"}"#,
        )
        .unwrap();
        let part = ChordPart::new("g", "8dbf14e4", None, TaskState::Failure, exc.clone());
        let member = part.member();
        assert_eq!(
            member,
            r#"[1, "8dbf14e4", "FAILURE", {"exc_type": "ValueError", "exc_message": ["bad thing", 42], "exc_module": "builtins"}]"#
        );
        assert_eq!(
            (part.score(), part.counted_as()),
            ("+inf".into(), "8dbf14e4:None".into())
        );
        let read = ChordResult::parse(&member).unwrap();
        assert_eq!((read.state, read.result), (TaskState::Failure, exc));
    }
}
