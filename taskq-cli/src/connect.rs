//! Opening the client: the broker from `-b`, else the environment and `.env` as
//! [`taskq::Config::from_env`] reads them; then a ping, so that an unreachable broker is one
//! clear error naming its (masked) address.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use taskq::{Client, Config};

/// How long the first contact with the broker may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// A client on `broker` (else the configured broker) and `result_backend` (else the
/// configured one; with `-b` and no backend configured, the broker given), once the broker
/// answers.
pub(crate) async fn client(
    broker: Option<&str>,
    result_backend: Option<&str>,
) -> anyhow::Result<Client> {
    let mut config = Config::from_env().context("reading the configuration")?;
    if let Some(url) = broker {
        config.broker_url = url.to_owned();
        config.broker_url_is_explicit = true;
        let backend_configured = ["TASKQ_RESULT_BACKEND", "CELERY_RESULT_BACKEND"]
            .iter()
            .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
        if !backend_configured {
            config.result_backend = url.to_owned();
        }
    }
    if let Some(url) = result_backend {
        config.result_backend = url.to_owned();
    }
    let masked = taskq::config::mask_url(&config.broker_url);
    let client =
        Client::from_config(config).with_context(|| format!("cannot use the broker {masked}"))?;
    match tokio::time::timeout(REACH_TIMEOUT, client.broker().ping()).await {
        Ok(Ok(())) => Ok(client),
        Ok(Err(e)) => Err(anyhow!("cannot reach the broker at {masked}: {e}")),
        Err(_) => Err(anyhow!(
            "cannot reach the broker at {masked}: no answer within {}s",
            REACH_TIMEOUT.as_secs()
        )),
    }
}
