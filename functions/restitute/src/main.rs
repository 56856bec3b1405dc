//! The restitute Lambda behind the API (docs/lake.md).

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tdb_api::init_lambda_logs();
    let config = restitute::Config::from_env()?;
    let aws = tdb_aws::load_config().await;
    lambda_http::run(config.router(&aws)?).await
}
