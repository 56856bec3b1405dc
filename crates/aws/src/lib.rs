//! AWS adapters of the domain's ports: DynamoDB (questionnaires, audit trail, send log),
//! S3 (the lake) and SES v1 (e-mail; LocalStack's community edition emulates only v1).
//!
//! Clients are configured from the standard AWS environment (`AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_DYNAMODB`, credentials, region): the same code talks to AWS and to the
//! local stack, with no branch for "local".

pub mod accounts;
pub mod dynamo;
pub mod item;
pub mod provision;
pub mod relay;
pub mod s3;
pub mod secrets;
pub mod ses;

use tdb_domain::ports::StoreError;

/// Loads the AWS configuration once per process; every client shares it.
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

pub(crate) fn backend<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Backend(Box::new(e))
}
