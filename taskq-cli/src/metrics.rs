//! `taskq metrics`: the fleet's queue depths for Prometheus (messages per queue and state,
//! paused queues), read from Redis at each scrape. Each worker serves its own metrics
//! (`--metrics-addr`); run this once per fleet.

use std::net::SocketAddr;
use std::process::ExitCode;

use taskq::metrics::FleetMetrics;
use taskq::Client;

/// `taskq metrics` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Serve them on this address (`GET /metrics`) until Ctrl-C or SIGTERM, e.g.
    /// 127.0.0.1:9809; without it, print them once.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

pub(crate) async fn run(client: &Client, args: Args) -> anyhow::Result<ExitCode> {
    let fleet = FleetMetrics::new(client.clone());
    match args.listen {
        None => print!("{}", fleet.render().await?),
        Some(addr) => {
            eprintln!("serving the fleet's queue metrics on http://{addr}/metrics");
            fleet.serve(addr, taskq::worker::shutdown_signal()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
