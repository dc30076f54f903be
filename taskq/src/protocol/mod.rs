//! The wire protocol, and nothing else: Celery's task messages (protocol 2, and protocol 1
//! bodies) inside kombu's Redis envelope, kombu's other messages, the result record, and the
//! Python dialects of JSON, time and `repr` they are written in. Pure functions on text and
//! values, no I/O: brokers, backends and the worker go through this module for every rule of
//! the format.
//!
//! ```text
//! list "celery" ──LPUSH──► {"body": base64(JSON [args, kwargs, embed]),
//!                           "content-encoding": "utf-8", "content-type": "application/json",
//!                           "headers": {"lang", "task", "id", "eta", "expires", ...},
//!                           "properties": {"correlation_id", "delivery_info", "delivery_tag", ...}}
//! ```
//!
//! | Module | Rule |
//! |---|---|
//! | [`names`] | every envelope field and header name, spelled once |
//! | [`NewMessage`] (`encode.rs`) | the envelope a Python producer writes, byte for byte |
//! | [`TaskMessage`] (`decode.rs`) | reading any task message: a fast typed path, a general one |
//! | [`DecodeError`] (`error.rs`) | why a message cannot run, and what its caller is told |
//! | `edit.rs` | changes to a stored envelope: a header, a retry, a recovery, a copy's tag |
//! | [`KombuMessage`] (`kombu.rs`) | remote-control commands, replies and events (one, or a batch, per message) |
//! | [`ResultMeta`] (`result_meta.rs`) | the record under `celery-task-meta-<id>` |
//! | [`Signature`], [`Workflow`] (`signature.rs`) | Celery's signatures, and the embed that continues a workflow |
//! | [`pyjson`], `time.rs`, `repr.rs` | Python's `json.dumps`, `isoformat` and `repr` |
//! | [`RawJson`], [`RawObject`] (`json.rs`) | JSON kept as written: exact numbers, keys in order |
//!
//! The broker's Lua scripts (`scripts.rs`) read and edit envelopes inside Redis, where this
//! module cannot run; each of them names the function here whose rule it mirrors, and the
//! memory broker calls that function, so both brokers apply one rule.

mod compression;
mod decode;
pub(crate) mod edit;
mod encode;
mod error;
mod json;
pub(crate) mod kombu;
pub mod names;
pub mod pyjson;
mod repr;
mod result_meta;
mod signature;
mod time;

pub use decode::TaskMessage;
pub use encode::NewMessage;
pub use error::{DecodeError, DecodeErrorKind};
pub use json::{RawJson, RawObject};
pub use kombu::KombuMessage;
pub use names::CONTENT_TYPE_JSON;
pub use result_meta::{ExtendedFields, ResultMeta};
pub use signature::{option as signature_option, Signature, SignatureKind, Workflow};

pub(crate) use json::{raw_object, without_position, Tree};
pub(crate) use repr::{args_repr, kwargs_repr, py_repr, str_repr};
pub(crate) use time::{format_datetime, format_time, parse_time};
