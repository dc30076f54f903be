//! `taskq dashboard`: the web dashboard (`taskq::dashboard`) served on its own: workers,
//! queues, recent and failed tasks, scheduled tasks and dead letters, with the actions an
//! operator needs. On a loopback address by default; anywhere else only behind a token or a
//! password, since it can purge queues and revoke tasks.

use std::net::SocketAddr;
use std::process::ExitCode;

use taskq::dashboard::{Access, Dashboard};
use taskq::Client;

/// `taskq dashboard` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The address to serve on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5555")]
    listen: SocketAddr,

    /// Require this token: `Authorization: Bearer <token>`, or open the page once with
    /// `?token=<token>` (the browser then keeps it in a cookie).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TASKQ_DASHBOARD_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// Require HTTP basic authentication with this user name and password.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "TASKQ_DASHBOARD_AUTH",
        hide_env_values = true,
        conflicts_with = "token"
    )]
    basic_auth: Option<String>,

    /// Do not switch task events on in the workers (then only workers started with -E show
    /// their tasks).
    #[arg(long)]
    no_enable_events: bool,
}

pub(crate) async fn run(client: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let access = match (args.token, args.basic_auth) {
        (Some(token), _) if token.is_empty() => anyhow::bail!("--token must not be empty"),
        (Some(token), _) => Access::Token(token),
        (None, Some(pair)) => Access::parse_basic(&pair)?,
        (None, None) => Access::Open,
    };
    // What it does (each action, a Redis it cannot read) goes to stderr; RUST_LOG filters.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let dashboard = Dashboard::builder(client.clone())
        .enable_events(!args.no_enable_events)
        .start();
    eprintln!(
        "taskq dashboard on http://{}/ (Ctrl-C to stop)",
        args.listen
    );
    dashboard
        .serve(args.listen, access, taskq::worker::shutdown_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}
