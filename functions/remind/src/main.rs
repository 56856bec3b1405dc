//! The remind Lambda behind the API: configuration and AWS clients built once per cold
//! start, then the function's router answers every request.

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tdb_api::init_lambda_logs();
    let config = remind::Config::from_env()?;
    let aws = tdb_aws::load_config().await;
    lambda_http::run(config.router(&aws, remind::SendRate::Quota)?).await
}
