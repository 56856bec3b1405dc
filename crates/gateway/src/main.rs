//! `tdb-gateway`: serves every function's router on one local address, under the template's
//! HTTP API routes, over the local AWS stack (see `scripts/run-local.sh`).

use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "tdb-gateway",
    about = "Every TDB-ESMS function on one local address"
)]
struct Args {
    #[arg(long, env = "GATEWAY_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// The stack whose resources the functions use; created if missing (`tdb provision`).
    #[arg(long, default_value = "tdb-local")]
    stack_name: String,
    #[arg(long, default_value = "tdb-esms@campagne.test")]
    sender: String,
    /// The accounts function's signing key (PKCS#8 PEM file, `tdb keygen`); the gateway
    /// stores it in the local stack's Secrets Manager, where the function reads it.
    #[arg(long)]
    signing_key: PathBuf,
    /// Browser origins allowed by CORS (the template's `WebOrigins`), comma-separated.
    #[arg(
        long,
        env = "WEB_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:8080"
    )]
    web_origins: Vec<String>,
    /// The day the campaign functions (collect, validate, remind) believe it is, such as
    /// `2025-06-02`: the shipped 2025 campaign's calendar is over, and a demo walks it. The
    /// clock starts at midday (UTC) of that day and runs from there; `PUT
    /// /_local/campaign-date` moves it. Today when absent.
    #[arg(long, value_parser = parse_date)]
    campaign_date: Option<time::Date>,
}

fn parse_date(text: &str) -> Result<time::Date, String> {
    time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| format!("{text:?} is not a date like 2025-06-02"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,aws_config=warn,aws_smithy_runtime=warn".into()),
        )
        .with_target(false)
        .compact()
        .init();
    let args = Args::parse();
    let base = format!("http://{}", args.addr);
    let aws = tdb_aws::load_config().await;
    let signing_key = std::fs::read_to_string(&args.signing_key)
        .with_context(|| format!("reading {}", args.signing_key.display()))?;
    let clock = tdb_gateway::local::CampaignClock::starting(args.campaign_date);
    let local = tdb_gateway::local::start(
        &aws,
        tdb_gateway::local::Options {
            stack_name: &args.stack_name,
            sender: &args.sender,
            signing_key: &signing_key,
            base: &base,
            web_origins: &args.web_origins,
            campaign_clock: clock.clock(),
        },
    )
    .await?;
    for route in &local.missing {
        tracing::warn!(
            "{} {} ({}): function not built yet, answers 404",
            route.method.as_ref().map_or("ANY", |m| m.as_str()),
            route.path,
            route.function
        );
    }
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    if let Some(date) = args.campaign_date {
        tracing::info!("the campaign functions start on {date}, midday UTC");
    }
    tracing::info!("serving on {base}");
    axum::serve(listener, local.router.merge(clock.router()))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
}
