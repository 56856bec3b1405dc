//! Secrets Manager: where the accounts function's signing key lives. It is read once at cold
//! start, so it never sits in the function's configuration (a Lambda environment variable is
//! readable by anyone with read-only access to the function).

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::SdkError;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret `{0}` not found")]
    NotFound(String),
    #[error("secret `{0}` has no string value")]
    NotAString(String),
    #[error("reading secret `{name}` failed")]
    Backend {
        name: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The string value of a secret.
pub async fn secret_string(client: &Client, name: &str) -> Result<String, SecretError> {
    match client.get_secret_value().secret_id(name).send().await {
        Ok(out) => out
            .secret_string()
            .map(str::to_string)
            .ok_or_else(|| SecretError::NotAString(name.to_string())),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => {
            Err(SecretError::NotFound(name.to_string()))
        }
        Err(e) => Err(SecretError::Backend {
            name: name.to_string(),
            source: Box::new(e),
        }),
    }
}

/// Creates the secret, or gives it a new value (local stacks and deployment scripts).
pub async fn put_secret_string(
    client: &Client,
    name: &str,
    value: &str,
) -> Result<(), SecretError> {
    let backend = |e: Box<dyn std::error::Error + Send + Sync>| SecretError::Backend {
        name: name.to_string(),
        source: e,
    };
    match client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e)) if e.err().is_resource_exists_exception() => client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(Box::new(e))),
        Err(e) => Err(backend(Box::new(e))),
    }
}
