//! Applying a signature: turning it into the task messages Celery would publish for it, the
//! one place both a producer (a workflow built in Rust) and a worker (the next step of a
//! chain, a callback, a chord's body) send signatures through.
//!
//! | signature | messages |
//! |---|---|
//! | a task | one, its `link`/`link_error`/`chain`/`chord` options in the embed |
//! | `chain(a, b, c)` | `a`, with `[c, b]` as its embed's chain (each step's id fixed first) |
//! | `group(a, b)` | `a` and `b`, each with the group id and its index |
//! | `chord([a, b], c)` | the chord size in the result store, then `a` and `b` with `c` as their embed's chord |

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use super::Sent;
use crate::options::Placement;
use crate::protocol::{parse_time, signature_option as option, RawJson, Signature, SignatureKind};
use crate::{Client, Error, Options, Result};

/// The task that applies a signature, if a task does: its id becomes the messages'
/// `parent_id`, and its root their `root_id`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub(crate) parent_id: Option<String>,
    pub(crate) root_id: Option<String>,
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Result<Sent>> + Send + 'a>>;

/// Sends `sig`, given `result` (the previous step's, prepended to the arguments of a mutable
/// signature; a group's and a chord header's members each get it).
pub(crate) fn apply<'a>(
    client: &'a Client,
    sig: Signature,
    result: Option<RawJson>,
    origin: &'a Origin,
) -> Boxed<'a> {
    Box::pin(async move {
        match sig.kind() {
            SignatureKind::Task => send_task(client, sig, result, origin).await,
            SignatureKind::Chain => apply_chain(client, sig, result, origin).await,
            SignatureKind::Group => apply_group(client, sig, result, origin).await,
            SignatureKind::Chord => apply_chord(client, sig, result, origin).await,
            _ => Err(malformed(format!(
                "`{}` signatures ({}) are not a kind taskq can send",
                sig.subtask_type.unwrap_or_default(),
                sig.task
            ))),
        }
    })
}

fn malformed(reason: String) -> Error {
    Error::Malformed {
        what: "signature",
        reason,
    }
}

/// Sends one task call.
async fn send_task(
    client: &Client,
    sig: Signature,
    result: Option<RawJson>,
    origin: &Origin,
) -> Result<Sent> {
    let args = sig.call_args(result);
    let options = call_options(&sig, origin)?;
    let kwargs = sig.kwargs;
    let sent = client
        .send_by_name_raw(&sig.task, args, kwargs, options)
        .await?;
    Ok(Sent::Task(sent.id().to_owned()))
}

impl Client {
    /// The message of a task call's signature, ready to publish (a periodic entry's send).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for a composite signature or a bad option, and the encoding errors
    /// of a send.
    pub(crate) fn encode_signature(&self, sig: Signature) -> Result<crate::broker::Outgoing> {
        if sig.kind() != SignatureKind::Task {
            return Err(malformed(format!(
                "{} is a workflow: a periodic entry sends one task call",
                sig.task
            )));
        }
        let options = call_options(&sig, &Origin::default())?;
        let args = sig.call_args(None);
        let call = self.encode_call(&sig.task, args, sig.kwargs, &options, SystemTime::now())?;
        Ok(call.outgoing)
    }
}

/// The `Options` of a task call from the signature's `apply_async` options.
fn call_options(sig: &Signature, origin: &Origin) -> Result<Options> {
    let bad = |name: &str, e: String| malformed(format!("option `{name}` of {}: {e}", sig.task));
    let get = |name: &str| sig.options.get(name).filter(|v| !v.is_null());
    let number = |name: &str| -> Result<Option<f64>> {
        get(name)
            .map(|v| v.parse::<f64>().map_err(|e| bad(name, e.to_string())))
            .transpose()
    };
    let mut options = Options::new();
    options.task_id = sig.task_id();
    options.queue = sig.option_str(option::QUEUE);
    options.priority = number(option::PRIORITY)?.map(|p| p.clamp(0.0, 255.0) as u8);
    options.countdown = number(option::COUNTDOWN)?.map(|s| Duration::from_secs_f64(s.max(0.0)));
    options.eta = sig
        .option_str(option::ETA)
        .map(|text| {
            parse_time(&text)
                .map(SystemTime::from)
                .ok_or_else(|| bad(option::ETA, text))
        })
        .transpose()?;
    if let Some(expires) = get(option::EXPIRES) {
        options = match expires.parse::<f64>() {
            Ok(secs) => options.expires(Duration::from_secs_f64(secs.max(0.0))),
            Err(_) => {
                let text = expires.parse::<String>().unwrap_or_default();
                let at = parse_time(&text).ok_or_else(|| bad(option::EXPIRES, text))?;
                options.expires_at(at.into())
            }
        };
    }
    options.time_limit_secs = number(option::TIME_LIMIT)?;
    options.soft_time_limit_secs = number(option::SOFT_TIME_LIMIT)?;
    options.ignore_result = get(option::IGNORE_RESULT).and_then(|v| v.parse::<bool>().ok());
    options.placement = placement(sig, origin)?;
    Ok(options)
}

/// Where the call sits: its group, its parent and root, and the continuations its options
/// carry into the embed.
fn placement(sig: &Signature, origin: &Origin) -> Result<Placement> {
    let workflow = crate::protocol::Workflow {
        callbacks: sig.option_signatures(option::LINK).map_err(malformed)?,
        errbacks: sig
            .option_signatures(option::LINK_ERROR)
            .map_err(malformed)?,
        chain: sig.option_signatures(option::CHAIN).map_err(malformed)?,
        chord: sig.option_signature(option::CHORD).map_err(malformed)?,
    };
    Ok(Placement {
        group: sig.option_str(option::GROUP_ID),
        group_index: sig
            .options
            .get(option::GROUP_INDEX)
            .and_then(|v| v.parse::<u32>().ok()),
        parent_id: origin
            .parent_id
            .clone()
            .or_else(|| sig.option_str(option::PARENT_ID)),
        root_id: origin
            .root_id
            .clone()
            .or_else(|| sig.option_str(option::ROOT_ID)),
        workflow,
    })
}

/// A chain: its steps flattened (a chain in a chain is one chain) and each group followed
/// by a step made a chord (as Celery upgrades `group | task`), each step's id fixed, then
/// the first sent with the rest (last first) as its embed's chain. The chain's own `link`s
/// go on its last step, and so does what followed the chain where it was itself a step.
async fn apply_chain(
    client: &Client,
    sig: Signature,
    result: Option<RawJson>,
    origin: &Origin,
) -> Result<Sent> {
    let mut steps = chain_steps(&sig)?;
    let Some(last) = steps.last_mut() else {
        return Err(malformed("a chain with no steps".into()));
    };
    for name in [
        option::LINK,
        option::LINK_ERROR,
        option::CHAIN,
        option::CHORD,
    ] {
        if let Some(value) = sig.options.get(name) {
            last.set_option(name, value.clone());
        }
    }
    for name in [option::GROUP_ID, option::GROUP_INDEX] {
        if let Some(value) = sig.options.get(name) {
            last.set_option(name, value.clone());
        }
    }
    let last_id = freeze(last);
    for step in &mut steps {
        freeze(step);
    }
    let mut rest = steps.split_off(1);
    let mut first = steps.pop().expect("a chain has a first step");
    if !rest.is_empty() {
        rest.extend(
            first
                .option_signatures(option::CHAIN)
                .map_err(malformed)?
                .into_iter()
                .rev(),
        );
        rest.reverse();
        first.set_option(option::CHAIN, RawJson::from_serialize(&rest)?);
    }
    apply(client, first, result, origin).await?;
    Ok(Sent::Task(last_id))
}

/// The steps of a chain, nested chains flattened and `group, step` made `chord(group, step)`.
fn chain_steps(sig: &Signature) -> Result<Vec<Signature>> {
    let mut flat = Vec::new();
    for step in sig.members().map_err(malformed)? {
        if step.kind() == SignatureKind::Chain && step.options.is_empty() {
            flat.extend(chain_steps(&step)?);
        } else {
            flat.push(step);
        }
    }
    let mut steps: Vec<Signature> = Vec::with_capacity(flat.len());
    for step in flat {
        match steps.last() {
            Some(prev) if prev.kind() == SignatureKind::Group => {
                let header = steps.pop().expect("just seen");
                steps.push(super::chord_of(header, step)?);
            }
            _ => steps.push(step),
        }
    }
    Ok(steps)
}

/// Fixes the id a step will be sent under (for a chord, its body's), returning it.
fn freeze(step: &mut Signature) -> String {
    if let Some(id) = step.task_id() {
        return id;
    }
    let id = uuid::Uuid::new_v4().to_string();
    step.set_option(option::TASK_ID, id.as_str());
    id
}

/// A group: every member sent with the group's id and its index.
async fn apply_group(
    client: &Client,
    sig: Signature,
    result: Option<RawJson>,
    origin: &Origin,
) -> Result<Sent> {
    let group_id = sig
        .task_id()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let members = sig.members().map_err(malformed)?;
    let mut sent = Vec::with_capacity(members.len());
    for (index, mut member) in members.into_iter().enumerate() {
        member.set_option(option::GROUP_ID, group_id.as_str());
        member.set_option(option::GROUP_INDEX, index as u64);
        inherit(&mut member, &sig);
        sent.push(apply(client, member, result.clone(), origin).await?);
    }
    Ok(Sent::Group {
        id: group_id,
        members: sent,
    })
}

/// Gives a member the composite's own routing options where it has none of its own.
fn inherit(member: &mut Signature, composite: &Signature) {
    for name in [option::QUEUE, option::PRIORITY] {
        if let (Some(value), false) = (
            composite.options.get(name),
            member.options.contains_key(name),
        ) {
            member.set_option(name, value.clone());
        }
    }
}

/// A chord: the header's size stored first, then each header part sent with the body in its
/// embed; the body goes out when the last part finishes. An empty header sends the body at
/// once with an empty list, as Celery does.
async fn apply_chord(
    client: &Client,
    sig: Signature,
    result: Option<RawJson>,
    origin: &Origin,
) -> Result<Sent> {
    let header = sig.members().map_err(malformed)?;
    if let Some(nested) = header
        .iter()
        .find(|part| matches!(part.kind(), SignatureKind::Group | SignatureKind::Chord))
    {
        return Err(malformed(format!(
            "a {} inside a chord's header ({}) is not supported: list its members in the header",
            nested.task, sig.task
        )));
    }
    let mut body = sig.chord_body().map_err(malformed)?;
    for (name, value) in sig.options.iter() {
        if name != option::TASK_ID && name != option::GROUP_ID && name != option::GROUP_INDEX {
            body.set_option(name, value.clone());
        }
    }
    // The body keeps an id it was given (a chain's step is frozen before it is sent); one
    // sent alone takes the chord's.
    if let (None, Some(id)) = (body.task_id(), sig.task_id()) {
        body.set_option(option::TASK_ID, id);
    }
    let body_id = freeze(&mut body);
    if header.is_empty() {
        apply(
            client,
            body,
            Some(RawJson::from_serialize(&[(); 0])?),
            origin,
        )
        .await?;
        return Ok(Sent::Task(body_id));
    }
    let group_id = sig
        .chord_header_group_id()
        .or_else(|| sig.option_str(option::GROUP_ID))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    body.set_option(option::GROUP_ID, group_id.as_str());
    client
        .backend()
        .set_chord_size(&group_id, header.len())
        .await?;
    let body = body.to_raw();
    for (index, mut part) in header.into_iter().enumerate() {
        part.set_option(option::GROUP_ID, group_id.as_str());
        part.set_option(option::GROUP_INDEX, index as u64);
        part.set_option(option::CHORD, body.clone());
        inherit(&mut part, &sig);
        apply(client, part, result.clone(), origin).await?;
    }
    Ok(Sent::Task(body_id))
}
