//! W3C trace context across the queue (the `opentelemetry` feature): a producer writes its
//! current OpenTelemetry context in the message's `traceparent` and `tracestate` headers, as
//! Python's opentelemetry-instrumentation-celery does, and a worker makes that context the
//! parent of the run's `task` span, so one trace runs from the caller through the queue into
//! the task, whichever side is Python.
//!
//! The W3C format is fixed by the header names, so the propagator is the W3C one itself
//! rather than the application's global one (which, in Rust, does nothing until set).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::protocol::names::header;

/// A message's `traceparent` and its `tracestate`, if any.
pub(crate) type TraceHeaders = (String, Option<String>);

/// The two headers, as the propagator reads and writes them.
#[derive(Default)]
struct Carrier {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        match key {
            header::TRACEPARENT => self.traceparent = Some(value),
            // Python writes no `tracestate` for an empty state; nor does taskq.
            header::TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            header::TRACEPARENT => self.traceparent.as_deref(),
            header::TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![header::TRACEPARENT, header::TRACESTATE]
    }
}

/// The trace context of the code sending a message: its current `tracing` span's, when an
/// OpenTelemetry layer tracks that span, else OpenTelemetry's own current context (an
/// application using its API directly); `None` outside any trace.
pub(crate) fn current() -> Option<TraceHeaders> {
    let mut cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        cx = Context::current();
    }
    let mut carrier = Carrier::default();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier
        .traceparent
        .map(|parent| (parent, carrier.tracestate))
}

/// Makes the context a message carries the parent of `span`, the run's span, before it is
/// first entered. A header that does not parse is ignored: the run is traced on its own, as
/// Python's worker does.
pub(crate) fn set_parent(span: &tracing::Span, (traceparent, tracestate): &TraceHeaders) {
    let carrier = Carrier {
        traceparent: Some(traceparent.clone()),
        tracestate: tracestate.clone(),
    };
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer sees the span (none installed, or the span
        // filtered out): then there is no exported span to give a parent.
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_go_through_the_w3c_propagator_both_ways() {
        let sent = (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            Some("congo=t61rcWkgMzE".to_owned()),
        );
        let carrier = Carrier {
            traceparent: Some(sent.0.clone()),
            tracestate: sent.1.clone(),
        };
        let cx = TraceContextPropagator::new().extract(&carrier);
        assert!(cx.span().span_context().is_remote());
        let mut written = Carrier::default();
        TraceContextPropagator::new().inject_context(&cx, &mut written);
        assert_eq!(
            (written.traceparent, written.tracestate),
            (Some(sent.0), sent.1)
        );
    }

    #[test]
    fn outside_a_trace_nothing_is_written() {
        assert_eq!(current(), None);
    }
}
