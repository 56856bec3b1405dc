//! The Lambda SES's feedback topic invokes: each bounce or complaint SES publishes marks
//! the accounts of its addresses, which reminders then skip (docs/reminders.md).

use lambda_http::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tdb_api::init_lambda_logs();
    let table = std::env::var("ACCOUNTS_TABLE").map_err(|_| "ACCOUNTS_TABLE is not set")?;
    let aws = tdb_aws::load_config().await;
    let accounts =
        &tdb_aws::accounts::AccountsTable::new(aws_sdk_dynamodb::Client::new(&aws), table);
    lambda_http::lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        // An SNS event: each record's message is one SES notification. A storage failure
        // fails the invocation, which Lambda retries; recording twice is harmless.
        for message in remind::feedback::sns_messages(&event.payload) {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            remind::feedback::receive(accounts, message, now).await?;
        }
        Ok::<(), Error>(())
    }))
    .await
}
