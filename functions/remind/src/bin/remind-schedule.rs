//! The scheduled remind Lambda: EventBridge Scheduler invokes it every hour of the working
//! day; each run sends what the day calls for and has not gone out (a campaign outside its
//! collection and fiabilisation has nothing), stopping before Lambda's time runs out.

use lambda_http::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tdb_api::init_lambda_logs();
    let config = remind::Config::from_env()?;
    let aws = tdb_aws::load_config().await;
    let reminders = &config.app(&aws, remind::SendRate::Quota)?.reminders;
    lambda_http::lambda_runtime::run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move {
            // Stop claiming new sends two minutes before Lambda's limit: the next hourly
            // run of the day goes on from there.
            let budget = std::time::Duration::from_millis(
                event.context.deadline.saturating_sub(now_millis()),
            )
            .saturating_sub(std::time::Duration::from_secs(120));
            let deadline = std::time::Instant::now() + budget;
            let today = reminders.today();
            let mut failed = None;
            for &year in tdb_domain::questionnaire::builtin::YEARS {
                let year = tdb_domain::CampaignYear::new(year)?;
                // One campaign's storage failure does not keep the others from their run;
                // the invocation fails after, and the next hourly run sends what is left.
                if let Err(e) = reminders
                    .run_until(year, today, false, Some(deadline))
                    .await
                {
                    tracing::error!(error = %e, campaign = %year, "reminders run failed");
                    failed = Some(e);
                }
            }
            match failed {
                Some(e) => Err(Error::from(e.to_string())),
                None => Ok(()),
            }
        },
    ))
    .await
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
