//! Periodic tasks (Celery's beat), with no duplicates however many schedulers run.
//!
//! Entries are declared next to their task with [`periodic!`](crate::periodic) (or added to a
//! worker with [`WorkerBuilder::periodic`](crate::WorkerBuilder::periodic)), and a worker
//! started with `-B` / [`WorkerBuilder::beat`](crate::WorkerBuilder::beat) runs the scheduler.
//! Any number of workers may run it:
//!
//! * one leads, holding a lease in Redis (`taskq.beat.leader`, renewed twice a second, lapsing
//!   after [`LEASE`]); the others wait and take over when it lapses, e.g. after the leader was
//!   killed;
//! * each slot is sent by one Lua script that also records it (`taskq.beat.slots`), and refuses
//!   a slot already recorded: two schedulers that both think they lead still send it once;
//! * a new leader first sends the slots missed since the last one recorded, so a handover
//!   skips none.
//!
//! **Catch-up.** Slots missed while no scheduler ran are each sent if they are at most
//! [`CATCH_UP`] old; of older missed slots only the latest is sent, once (what Celery's beat
//! does for any downtime). An entry never sent before starts with its next slot.
//!
//! Scheduled sends are ordinary task messages, so a taskq scheduler drives Python tasks by
//! name as well.

mod schedule;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use schedule::{Crontab, Schedule};

use crate::protocol::Signature;
use crate::Client;

/// How long the lead lasts without renewal: how soon another scheduler takes over from one
/// that died.
pub const LEASE: Duration = Duration::from_secs(3);

/// How often a scheduler renews its lead (or tries to take it) and looks for due slots, at
/// most.
const TICK: Duration = Duration::from_millis(250);

/// Missed slots at most this old are each sent; of older ones only the latest.
pub const CATCH_UP: Duration = Duration::from_secs(300);

/// The most slots one entry sends in one tick, so a short period cannot flood a queue.
const MAX_SLOTS_PER_TICK: usize = 1000;

/// A periodic entry declared with [`periodic!`](crate::periodic), collected at link time.
#[derive(Debug, Clone, Copy)]
pub struct Periodic {
    /// The entry's name, unique in the fleet (its record in Redis).
    pub name: &'static str,
    /// Its schedule, as [`Schedule`] parses it; read when a scheduler starts, so it may come
    /// from the environment.
    pub schedule: fn() -> String,
    /// The call to send for a slot, given the slot's time.
    pub call: fn(DateTime<Utc>) -> Signature,
}

inventory::collect!(Periodic);

/// Declares a periodic entry next to its task: a name, a schedule (`"every 30s"`, a crontab
/// such as `"*/5 * * * *"`, or `"TZ=Europe/Paris 0 9 * * mon-fri"`; any expression giving
/// one, read when a scheduler starts) and the call to send, given the slot's time.
///
/// ```
/// #[taskq::task(name = "tasks.cleanup")]
/// async fn cleanup() {}
///
/// taskq::periodic!("cleanup-every-hour", "0 * * * *", |_slot| cleanup.s());
/// ```
#[macro_export]
macro_rules! periodic {
    ($name:expr, $schedule:expr, $call:expr $(,)?) => {
        $crate::__private::inventory::submit! {
            $crate::beat::Periodic {
                name: $name,
                schedule: || ::std::string::ToString::to_string(&$schedule),
                call: |slot| $crate::beat::IntoSignature::into_signature(($call)(slot)),
            }
        }
    };
}

/// What a periodic entry's call may be: a typed signature, or Celery's.
pub trait IntoSignature {
    /// The signature.
    fn into_signature(self) -> Signature;
}

impl IntoSignature for Signature {
    fn into_signature(self) -> Signature {
        self
    }
}

impl<T> IntoSignature for crate::canvas::Sig<T> {
    fn into_signature(self) -> Signature {
        crate::canvas::Sig::into_signature(self)
    }
}

/// One entry as the scheduler runs it.
#[derive(Clone)]
pub struct Entry {
    name: String,
    schedule: Schedule,
    call: Arc<dyn Fn(DateTime<Utc>) -> Signature + Send + Sync>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .finish()
    }
}

impl Entry {
    /// An entry sending `call(slot)` on each slot of `schedule`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use taskq::beat::{Entry, Schedule};
    ///
    /// #[taskq::task(name = "tasks.tick")]
    /// async fn tick(slot: String) {}
    ///
    /// let entry = Entry::new("tick", Schedule::every(Duration::from_secs(1)), |slot| tick.s(slot.to_rfc3339()));
    /// assert_eq!(entry.name(), "tick");
    /// ```
    pub fn new<S: IntoSignature>(
        name: impl Into<String>,
        schedule: Schedule,
        call: impl Fn(DateTime<Utc>) -> S + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            schedule,
            call: Arc::new(move |slot| call(slot).into_signature()),
        }
    }

    /// The entry's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    fn declared(periodic: &Periodic) -> crate::Result<Self> {
        let schedule: Schedule = (periodic.schedule)().parse()?;
        let call = periodic.call;
        Ok(Self::new(periodic.name, schedule, call))
    }
}

/// The entries declared with [`periodic!`](crate::periodic) in this binary.
///
/// # Errors
///
/// [`Error::Config`](crate::Error::Config) for a schedule that does not parse, or two entries
/// with one name.
pub fn declared() -> crate::Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    for periodic in inventory::iter::<Periodic> {
        if entries.iter().any(|e| e.name == periodic.name) {
            return Err(crate::Error::Config(format!(
                "two periodic entries are named {:?}",
                periodic.name
            )));
        }
        entries.push(Entry::declared(periodic)?);
    }
    Ok(entries)
}

/// A running scheduler: started with [`Beat::start`], stopped with [`Beat::shutdown`].
#[derive(Debug)]
pub struct Beat {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Beat {
    /// Starts scheduling `entries` through `client`'s broker.
    pub fn start(client: Client, entries: Vec<Entry>) -> Self {
        let stop = CancellationToken::new();
        let scheduler = Scheduler {
            client,
            entries,
            token: uuid::Uuid::new_v4().simple().to_string(),
            leading: false,
        };
        let task = tokio::spawn(scheduler.run(stop.clone()));
        Self { stop, task }
    }

    /// Stops scheduling and gives up the lead, so another scheduler takes over at once.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

struct Scheduler {
    client: Client,
    entries: Vec<Entry>,
    token: String,
    leading: bool,
}

impl Scheduler {
    async fn run(mut self, stop: CancellationToken) {
        let names: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} ({})", e.name, e.schedule))
            .collect();
        tracing::info!(entries = ?names, "beat: scheduler started");
        loop {
            let wait = match self.tick().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "beat: cannot reach the broker; retrying");
                    TICK
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if self.leading {
            let _ = self.client.broker().resign(&self.token).await;
            tracing::info!("beat: stopped; the lead is given up");
        }
    }

    /// Renews (or tries to take) the lead; while leading, sends every due slot. Returns how
    /// long to wait before the next tick.
    async fn tick(&mut self) -> crate::Result<Duration> {
        let leading = self.client.broker().lead(&self.token, LEASE).await?;
        if leading != self.leading {
            if leading {
                tracing::info!("beat: this scheduler leads; sending due slots");
            } else {
                tracing::warn!("beat: the lead went to another scheduler");
            }
            self.leading = leading;
        }
        if !leading {
            return Ok(TICK);
        }
        let now: DateTime<Utc> = self
            .client
            .clock()
            .now(&**self.client.broker())
            .await?
            .into();
        let mut next = now + TICK;
        for entry in &self.entries {
            if let Some(due) = self.send_due(entry, now).await? {
                next = next.min(due);
            }
        }
        Ok((next - now).to_std().unwrap_or(Duration::ZERO).min(TICK))
    }

    /// Sends `entry`'s due slots; returns its next slot.
    async fn send_due(
        &self,
        entry: &Entry,
        now: DateTime<Utc>,
    ) -> crate::Result<Option<DateTime<Utc>>> {
        let broker = self.client.broker();
        let last = broker
            .last_fired(&entry.name)
            .await?
            .and_then(DateTime::from_timestamp_millis);
        for slot in due_slots(&entry.schedule, last, now) {
            let message = self.client.encode_signature((entry.call)(slot))?;
            if broker
                .fire_scheduled(&entry.name, slot.timestamp_millis(), &message)
                .await?
            {
                tracing::info!(entry = %entry.name, %slot, queue = %message.queue, "beat: sent");
            }
        }
        if last.is_none() {
            // Never sent: record where it starts, so that a leader taking over counts from
            // here and sends the slots in between.
            if let Some(start) = entry.schedule.slot_at_or_before(now) {
                broker
                    .start_schedule(&entry.name, start.timestamp_millis())
                    .await?;
            }
        }
        Ok(entry.schedule.slot_after(now))
    }
}

/// The slots of `schedule` to send at `now`, oldest first, after the last one sent (see the
/// module's catch-up policy). An entry never sent sends nothing now: it starts at its next slot.
fn due_slots(
    schedule: &Schedule,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    let Some(last) = last else {
        return Vec::new();
    };
    let window_start = now - chrono::Duration::from_std(CATCH_UP).unwrap_or_default();
    let mut cursor = last;
    // Slots missed before the window: only the latest counts, and only if the window has none.
    let mut older = None;
    if last < window_start {
        older = schedule
            .slot_at_or_before(window_start)
            .filter(|slot| *slot > last && *slot <= now);
        cursor = window_start;
    }
    let mut slots = Vec::new();
    while let Some(slot) = schedule.slot_after(cursor) {
        if slot > now || slots.len() >= MAX_SLOTS_PER_TICK {
            break;
        }
        slots.push(slot);
        cursor = slot;
    }
    if slots.is_empty() {
        slots.extend(older);
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn every_missed_slot_within_the_catch_up_window_is_due_once() {
        let every = Schedule::every(Duration::from_secs(1));
        let due = due_slots(
            &every,
            Some(at("2026-12-04T10:00:00Z")),
            at("2026-12-04T10:00:03.5Z"),
        );
        assert_eq!(
            due,
            [
                at("2026-12-04T10:00:01Z"),
                at("2026-12-04T10:00:02Z"),
                at("2026-12-04T10:00:03Z")
            ]
        );
        assert!(due_slots(
            &every,
            Some(at("2026-12-04T10:00:03Z")),
            at("2026-12-04T10:00:03.5Z")
        )
        .is_empty());
    }

    #[test]
    fn after_a_long_downtime_the_latest_missed_slot_is_due_once() {
        let hourly: Schedule = "0 * * * *".parse().unwrap();
        let due = due_slots(
            &hourly,
            Some(at("2026-12-01T00:00:00Z")),
            at("2026-12-04T10:30:00Z"),
        );
        assert_eq!(due, [at("2026-12-04T10:00:00Z")]);
    }

    #[test]
    fn a_new_entry_waits_for_its_next_slot() {
        let every = Schedule::every(Duration::from_secs(1));
        assert!(due_slots(&every, None, at("2026-12-04T10:00:03.5Z")).is_empty());
    }
}
