//! `tdb-gateway`: serves every function's router on one local address, under the template's
//! HTTP API routes, over the local AWS stack (see `scripts/run-local.sh`).

use anyhow::Context;
use clap::Parser;
use std::collections::BTreeMap;
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
    let provisioned = tdb_aws::provision::provision_stack(&aws, &args.stack_name, &args.sender)
        .await
        .context("creating the stack's resources on the local AWS stack: is it started?")?;
    let signing_key = std::fs::read_to_string(&args.signing_key)
        .with_context(|| format!("reading {}", args.signing_key.display()))?;
    // As deployed, the function reads its key from Secrets Manager (LocalStack's here).
    let secret = format!("{}-jwt-signing-key", args.stack_name);
    tdb_aws::secrets::put_secret_string(
        &aws_sdk_secretsmanager::Client::new(&aws),
        &secret,
        &signing_key,
    )
    .await
    .context("storing the signing key in the local stack's Secrets Manager")?;
    // Locally the gateway is the API's public address: the tokens' issuer (so discovery
    // works as deployed) and the address e-mailed links point at.
    // The public keys the other functions verify tokens with, as the template's
    // `JwtPublicKeys` gives them in a deployment.
    let public_keys = accounts::TokenSigner::from_pem(&signing_key, &base, "tdb-esms")
        .context("the signing key")?
        .jwks_json();
    let local: BTreeMap<&str, String> = [
        ("JWT_SIGNING_KEY_SECRET", secret),
        ("JWT_ISSUER", base.clone()),
        ("JWT_AUDIENCE", "tdb-esms".to_string()),
        ("JWT_PUBLIC_KEYS", public_keys),
        ("PUBLIC_URL", base.clone()),
    ]
    .into();
    let lookup = |name: &str| {
        local
            .get(name)
            .cloned()
            .or_else(|| provisioned.environment.get(name).cloned())
    };
    let _relays = tdb_gateway::events::spawn_event_relays(&aws, &provisioned.event_queues, lookup)
        .map_err(|e| anyhow::anyhow!(e))
        .context("the event relays")?;
    let mut functions = BTreeMap::new();
    functions.insert(
        "accounts".to_string(),
        accounts::Config::from_lookup(lookup)?.router(&aws).await?,
    );
    functions.insert(
        "collect".to_string(),
        collect::Config::from_lookup(lookup)?.router(&aws)?,
    );
    functions.insert(
        "validate".to_string(),
        validate::Config::from_lookup(lookup)?.router(&aws)?,
    );
    // LocalStack's SES quota is one message a second: locally the rate is fixed.
    functions.insert(
        "remind".to_string(),
        remind::Config::from_lookup(lookup)?.router(&aws, remind::SendRate::Fixed(50.0))?,
    );
    functions.insert(
        "restitute".to_string(),
        restitute::Config::from_lookup(lookup)?
            .router(&aws)
            .map_err(|e| anyhow::anyhow!(e))?,
    );
    let (router, missing) =
        tdb_gateway::gateway(tdb_aws::provision::TEMPLATE, &functions, &args.web_origins)?;
    for route in missing {
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
    tracing::info!("serving on {base}");
    axum::serve(listener, router)
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
