//! The validate Lambda: configuration and AWS clients built once per cold start, then the
//! function's router answers every request.

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let config = validate::Config::from_env()?;
    let aws = tdb_aws::load_config().await;
    lambda_http::run(config.router(&aws)?).await
}
