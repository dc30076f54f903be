//! A web dashboard for the fleet (feature `dashboard`): the workers, the queues and their
//! depth over time, recent and failed tasks with their arguments, result and traceback, tasks
//! held until their ETA, and dead letters with their reason; and what an operator does about
//! them: retry a failed task, requeue a dead letter, revoke a task, purge, pause or resume a
//! queue. The page
//! updates itself every two seconds.
//!
//! It sees Python Celery workers sharing the Redis as it sees taskq's: workers through remote
//! control and their heartbeats, tasks through Celery events, which it switches on in every
//! worker now and then, as Flower does (see
//! [`DashboardBuilder::enable_events`]). It remembers the last [`MAX_TASKS`] tasks it saw.
//!
//! Nest it in an application, behind the application's own authentication:
//!
//! ```no_run
//! # async fn demo(client: taskq::Client) -> std::io::Result<()> {
//! let dashboard = taskq::dashboard::Dashboard::start(client);
//! let app = axum::Router::new().nest("/taskq", dashboard.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! or serve it alone, as `taskq dashboard` does, with [`Dashboard::serve`]: open on a loopback
//! address, and only behind a token or a password anywhere else, since it can act.
//!
//! Every action is a `POST` with the header `x-taskq-action: 1`, which a page of another site
//! cannot send without the browser asking this server first (and it never agrees): a form
//! elsewhere cannot purge a queue through a logged-in browser.

mod api;
mod auth;
mod fleet;
mod monitor;
mod page;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use auth::Access;
pub use fleet::MAX_TASKS;

use crate::{Client, Error, Result};

/// How a [`Dashboard`] watches the fleet, before it starts.
///
/// ```no_run
/// # async fn demo(client: taskq::Client) {
/// let dashboard = taskq::dashboard::Dashboard::builder(client).enable_events(false).start();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct DashboardBuilder {
    client: Client,
    enable_events: bool,
}

impl DashboardBuilder {
    /// Whether the dashboard switches task events on in every worker every few seconds (the
    /// `enable_events` remote-control command), as Flower does by default; on unless turned
    /// off. Off, it shows tasks only from workers started with `-E`.
    pub fn enable_events(mut self, on: bool) -> Self {
        self.enable_events = on;
        self
    }

    /// Starts watching the fleet on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(self) -> Dashboard {
        let seen = Arc::new(monitor::Seen::default());
        let monitor =
            monitor::Monitor::start(self.client.clone(), seen.clone(), self.enable_events);
        Dashboard {
            client: self.client,
            seen,
            monitor,
        }
    }
}

/// The dashboard: a background watch of the fleet and the [`router`](Self::router) that
/// shows it. Dropping it (or [`shutdown`](Self::shutdown)) stops the watch.
#[derive(Debug)]
pub struct Dashboard {
    client: Client,
    seen: Arc<monitor::Seen>,
    monitor: monitor::Monitor,
}

impl Dashboard {
    /// A dashboard over `client`'s broker and result store, to configure before it starts.
    pub fn builder(client: Client) -> DashboardBuilder {
        DashboardBuilder {
            client,
            enable_events: true,
        }
    }

    /// A dashboard with the defaults, started on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(client: Client) -> Self {
        Self::builder(client).start()
    }

    /// The page and its API, to serve or to nest under a path of an application. It has no
    /// authentication of its own: put the application's in front, or use
    /// [`serve`](Self::serve).
    pub fn router(&self) -> axum::Router {
        api::router(self.client.clone(), self.seen.clone())
    }

    /// Serves the dashboard on `addr` until `stop` completes, then stops the watch.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when `addr` is not a loopback address and `access` is
    /// [`Access::Open`] (anyone who reaches it could purge queues), or when `addr` cannot be
    /// listened on.
    pub async fn serve(
        self,
        addr: SocketAddr,
        access: Access,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        if matches!(access, Access::Open) && !addr.ip().is_loopback() {
            return Err(Error::Config(format!(
                "the dashboard on {addr} would let anyone who reaches it act on the queues: \
                 give it a token or a password, or listen on a loopback address"
            )));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("cannot serve the dashboard on {addr}: {e}")))?;
        let app = access.guard(self.router());
        tracing::info!("dashboard on http://{addr}/");
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
        self.shutdown().await;
        served.map_err(|e| Error::Config(format!("the dashboard on {addr} stopped: {e}")))
    }

    /// Stops watching the fleet.
    pub async fn shutdown(self) {
        self.monitor.shutdown().await;
    }
}
