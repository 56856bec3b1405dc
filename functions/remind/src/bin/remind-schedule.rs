//! The scheduled remind Lambda: EventBridge Scheduler invokes it every morning; it runs
//! the day's reminders of every campaign the platform ships (a campaign outside its
//! collection and fiabilisation has none).

use lambda_http::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tdb_api::init_lambda_logs();
    let config = remind::Config::from_env()?;
    let aws = tdb_aws::load_config().await;
    let reminders = &config.app(&aws, remind::SendRate::Quota)?.reminders;
    lambda_http::lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async move {
        let today = reminders.today();
        for &year in tdb_domain::questionnaire::builtin::YEARS {
            let year = tdb_domain::CampaignYear::new(year)?;
            // A storage failure fails the invocation: the scheduler retries it, and the
            // send log keeps what went out from going again.
            reminders.run(year, today, false).await?;
        }
        Ok::<(), Error>(())
    }))
    .await
}
