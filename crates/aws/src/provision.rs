//! Creates the stateful resources of `infra/template.yaml` (DynamoDB tables, S3 buckets, SES
//! identities and configuration sets, SNS topics) from the template's own definitions, so that local runs and tests use exactly
//! what is deployed. The functions' environment variables are read from the template's
//! `Globals` too.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use serde_yaml::Value;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the template is not valid YAML")]
    Yaml(#[from] serde_yaml::Error),
    #[error("template resource {resource}: {problem}")]
    Template { resource: String, problem: String },
    #[error("creating {resource} failed")]
    Aws {
        resource: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Values for the template's pseudo parameters and parameters.
#[derive(Debug, Clone)]
pub struct StackContext {
    pub stack_name: String,
    pub account_id: String,
    pub region: String,
    pub parameters: BTreeMap<String, String>,
}

/// What provisioning created: physical names by logical id, and the functions' environment.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    pub names: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
    /// For each function that S3 or SNS invokes (an `S3` or `SNS` event in the template),
    /// the SQS queue where the local stack delivers those notifications instead (an SNS
    /// message's body as is): the local gateway reads it and calls the function (LocalStack
    /// runs no Lambda here).
    pub event_queues: BTreeMap<String, String>,
}

/// An `S3` event of a function in the template.
#[derive(Debug, Clone)]
struct S3Trigger {
    function: String,
    bucket: String,
    events: Vec<String>,
    prefix: Option<String>,
}

/// The stateful resources of a template, resolved for one stack.
#[derive(Debug, Clone)]
pub struct Resources {
    tables: Vec<(String, Value)>,
    buckets: Vec<(String, Value)>,
    identities: Vec<(String, Value)>,
    topics: Vec<(String, Value)>,
    configuration_sets: Vec<(String, Value)>,
    event_destinations: Vec<(String, Value)>,
    environment: Vec<(String, Value)>,
    s3_triggers: Vec<S3Trigger>,
    /// Functions an SNS topic invokes, with the topic's logical id.
    sns_triggers: Vec<(String, String)>,
    context: StackContext,
}

fn template_error(resource: &str, problem: impl Into<String>) -> ProvisionError {
    ProvisionError::Template {
        resource: resource.to_string(),
        problem: problem.into(),
    }
}

fn aws_error<E: std::error::Error + Send + Sync + 'static>(
    resource: &str,
) -> impl FnOnce(E) -> ProvisionError + '_ {
    move |e| ProvisionError::Aws {
        resource: resource.to_string(),
        source: Box::new(e),
    }
}

/// The logical id a `!Ref` names.
fn reference(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::Tagged(t)) if t.tag == "!Ref" => t.value.as_str().map(str::to_string),
        _ => None,
    }
}

/// The topics (each a `!Ref`) whose `SNS` events invoke a function.
fn sns_triggers(function: &str, props: &Value) -> Result<Vec<(String, String)>, ProvisionError> {
    let Some(events) = props.get("Events").and_then(Value::as_mapping) else {
        return Ok(vec![]);
    };
    events
        .values()
        .filter(|e| e.get("Type").and_then(Value::as_str) == Some("SNS"))
        .map(|e| {
            reference(e.get("Properties").and_then(|p| p.get("Topic")))
                .map(|topic| (function.to_string(), topic))
                .ok_or_else(|| template_error(function, "an SNS event's Topic must be a !Ref"))
        })
        .collect()
}

/// The `S3` events of a function: bucket (a `!Ref`), event names and key prefix.
fn s3_triggers(function: &str, props: &Value) -> Result<Vec<S3Trigger>, ProvisionError> {
    let Some(events) = props.get("Events").and_then(Value::as_mapping) else {
        return Ok(vec![]);
    };
    let mut triggers = Vec::new();
    for event in events.values() {
        if event.get("Type").and_then(Value::as_str) != Some("S3") {
            continue;
        }
        let p = event.get("Properties").cloned().unwrap_or(Value::Null);
        let bucket = reference(p.get("Bucket"))
            .ok_or_else(|| template_error(function, "an S3 event's Bucket must be a !Ref"))?;
        let events = match p.get("Events") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Sequence(many)) => many
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => return Err(template_error(function, "an S3 event needs Events")),
        };
        let prefix = p
            .get("Filter")
            .and_then(|f| f.get("S3Key"))
            .and_then(|k| k.get("Rules"))
            .and_then(Value::as_sequence)
            .and_then(|rules| {
                rules
                    .iter()
                    .find(|r| r.get("Name").and_then(Value::as_str) == Some("prefix"))
            })
            .and_then(|r| r.get("Value"))
            .and_then(Value::as_str)
            .map(str::to_string);
        triggers.push(S3Trigger {
            function: function.to_string(),
            bucket,
            events,
            prefix,
        });
    }
    Ok(triggers)
}

impl Resources {
    pub fn from_template(text: &str, context: StackContext) -> Result<Resources, ProvisionError> {
        let template: Value = serde_yaml::from_str(text)?;
        let mut r = Resources {
            tables: vec![],
            buckets: vec![],
            identities: vec![],
            topics: vec![],
            configuration_sets: vec![],
            event_destinations: vec![],
            environment: vec![],
            s3_triggers: vec![],
            sns_triggers: vec![],
            context,
        };
        let resources = template
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| template_error("Resources", "missing"))?;
        for (id, resource) in resources {
            let id = id.as_str().unwrap_or_default().to_string();
            let props = resource.get("Properties").cloned().unwrap_or(Value::Null);
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::DynamoDB::Table") => r.tables.push((id, props)),
                Some("AWS::S3::Bucket") => r.buckets.push((id, props)),
                Some("AWS::SES::EmailIdentity") => r.identities.push((id, props)),
                Some("AWS::SES::ConfigurationSet") => r.configuration_sets.push((id, props)),
                Some("AWS::SES::ConfigurationSetEventDestination") => {
                    r.event_destinations.push((id, props))
                }
                Some("AWS::SNS::Topic") => r.topics.push((id, props)),
                Some("AWS::Serverless::Function") => {
                    r.s3_triggers.extend(s3_triggers(&id, &props)?);
                    r.sns_triggers.extend(sns_triggers(&id, &props)?);
                }
                _ => {}
            }
        }
        if let Some(vars) = template
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(Value::as_mapping)
        {
            r.environment = vars
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), v.clone()))
                .collect();
        }
        Ok(r)
    }

    /// Resolves a scalar written with `!Sub` or `!Ref` (to a parameter or pseudo parameter).
    fn resolve(
        &self,
        resource: &str,
        value: &Value,
        names: &BTreeMap<String, String>,
    ) -> Result<String, ProvisionError> {
        let c = &self.context;
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Tagged(tagged) => {
                let inner = tagged.value.as_str().ok_or_else(|| {
                    template_error(resource, "only scalar !Sub and !Ref are supported here")
                })?;
                if tagged.tag == "!Sub" {
                    Ok(inner
                        .replace("${AWS::StackName}", &c.stack_name)
                        .replace("${AWS::AccountId}", &c.account_id)
                        .replace("${AWS::Region}", &c.region))
                } else if tagged.tag == "!Ref" {
                    names
                        .get(inner)
                        .or_else(|| c.parameters.get(inner))
                        .cloned()
                        .ok_or_else(|| {
                            template_error(resource, format!("no value for !Ref {inner}"))
                        })
                } else {
                    Err(template_error(
                        resource,
                        format!("unsupported tag {}", tagged.tag),
                    ))
                }
            }
            _ => Err(template_error(resource, "expected a scalar")),
        }
    }

    fn names(&self) -> Result<BTreeMap<String, String>, ProvisionError> {
        let mut names = BTreeMap::new();
        for (id, props) in &self.tables {
            names.insert(
                id.clone(),
                self.resolve(
                    id,
                    props
                        .get("TableName")
                        .ok_or_else(|| template_error(id, "TableName is required"))?,
                    &BTreeMap::new(),
                )?,
            );
        }
        for (id, props) in &self.buckets {
            names.insert(
                id.clone(),
                self.resolve(
                    id,
                    props
                        .get("BucketName")
                        .ok_or_else(|| template_error(id, "BucketName is required"))?,
                    &BTreeMap::new(),
                )?,
            );
        }
        for (id, props) in &self.configuration_sets {
            names.insert(
                id.clone(),
                self.resolve(
                    id,
                    props
                        .get("Name")
                        .ok_or_else(|| template_error(id, "Name is required"))?,
                    &BTreeMap::new(),
                )?,
            );
        }
        // A topic's `!Ref` is its ARN.
        for (id, props) in &self.topics {
            let name = self.resolve(
                id,
                props
                    .get("TopicName")
                    .ok_or_else(|| template_error(id, "TopicName is required"))?,
                &BTreeMap::new(),
            )?;
            let c = &self.context;
            names.insert(
                id.clone(),
                format!("arn:aws:sns:{}:{}:{name}", c.region, c.account_id),
            );
        }
        for (id, props) in &self.identities {
            names.insert(
                id.clone(),
                self.resolve(
                    id,
                    props
                        .get("EmailIdentity")
                        .ok_or_else(|| template_error(id, "EmailIdentity is required"))?,
                    &BTreeMap::new(),
                )?,
            );
        }
        Ok(names)
    }

    /// Creates every table, bucket and identity that does not exist yet.
    pub async fn provision(
        &self,
        config: &aws_config::SdkConfig,
    ) -> Result<Provisioned, ProvisionError> {
        let mut names = self.names()?;
        let dynamo = aws_sdk_dynamodb::Client::new(config);
        for (id, props) in &self.tables {
            self.create_table(&dynamo, id, &names[id], props).await?;
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(config)
                .force_path_style(true)
                .build(),
        );
        for (id, props) in &self.buckets {
            let name = &names[id];
            if s3.head_bucket().bucket(name).send().await.is_err() {
                let mut create = s3.create_bucket().bucket(name);
                if self.context.region != "us-east-1" {
                    create = create.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(self.context.region.as_str().into())
                            .build(),
                    );
                }
                create.send().await.map_err(aws_error(id))?;
            }
            if props
                .get("VersioningConfiguration")
                .and_then(|v| v.get("Status"))
                .and_then(Value::as_str)
                == Some("Enabled")
            {
                let versioning = aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build();
                s3.put_bucket_versioning()
                    .bucket(name)
                    .versioning_configuration(versioning)
                    .send()
                    .await
                    .map_err(aws_error(id))?;
            }
        }
        let mut event_queues = self.relay_s3_events(config, &s3, &names).await?;
        let sns = aws_sdk_sns::Client::new(config);
        for (id, _) in &self.topics {
            let name = names[id].rsplit(':').next().unwrap_or_default();
            let created = sns
                .create_topic()
                .name(name)
                .send()
                .await
                .map_err(aws_error(id))?;
            // The stack's own ARN for it, rather than the one guessed from the template.
            if let Some(arn) = created.topic_arn() {
                names.insert(id.clone(), arn.to_string());
            }
        }
        event_queues.extend(self.relay_sns_events(config, &sns, &names).await?);
        let ses = aws_sdk_ses::Client::new(config);
        for (id, _) in &self.identities {
            ses.verify_email_identity()
                .email_address(&names[id])
                .send()
                .await
                .map_err(aws_error(id))?;
        }
        for (id, _) in &self.configuration_sets {
            let set = aws_sdk_ses::types::ConfigurationSet::builder()
                .name(&names[id])
                .build()
                .map_err(aws_error(id))?;
            let created = ses
                .create_configuration_set()
                .configuration_set(set)
                .send()
                .await;
            if let Err(e) = created
                && !e
                    .as_service_error()
                    .is_some_and(|e| e.is_configuration_set_already_exists_exception())
            {
                return Err(aws_error(id)(e));
            }
        }
        for (id, props) in &self.event_destinations {
            self.create_event_destination(&ses, id, props, &names)
                .await?;
        }
        let mut environment = BTreeMap::new();
        for (key, value) in &self.environment {
            if let Ok(v) = self.resolve(key, value, &names) {
                environment.insert(key.clone(), v);
            }
        }
        Ok(Provisioned {
            names,
            environment,
            event_queues,
        })
    }

    /// Sends each bucket's notifications for a function to an SQS queue of its own, since
    /// the local stack cannot invoke our functions: the gateway reads the queue instead.
    async fn relay_s3_events(
        &self,
        config: &aws_config::SdkConfig,
        s3: &aws_sdk_s3::Client,
        names: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ProvisionError> {
        use aws_sdk_s3::types::{
            FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter,
            QueueConfiguration, S3KeyFilter,
        };
        let sqs = aws_sdk_sqs::Client::new(config);
        let mut queues = BTreeMap::new();
        let mut by_bucket: BTreeMap<String, Vec<QueueConfiguration>> = BTreeMap::new();
        for trigger in &self.s3_triggers {
            let id = &trigger.function;
            let bucket = names
                .get(&trigger.bucket)
                .ok_or_else(|| template_error(id, format!("no bucket {}", trigger.bucket)))?;
            let (url, arn) = self.function_queue(&sqs, id).await?;
            let mut configuration = QueueConfiguration::builder()
                .queue_arn(arn)
                .set_events(Some(
                    trigger.events.iter().map(|e| e.as_str().into()).collect(),
                ));
            if let Some(prefix) = &trigger.prefix {
                configuration = configuration.filter(
                    NotificationConfigurationFilter::builder()
                        .key(
                            S3KeyFilter::builder()
                                .filter_rules(
                                    FilterRule::builder()
                                        .name(FilterRuleName::Prefix)
                                        .value(prefix)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                );
            }
            by_bucket
                .entry(bucket.clone())
                .or_default()
                .push(configuration.build().map_err(aws_error(id))?);
            queues.insert(id.clone(), url);
        }
        for (bucket, configurations) in by_bucket {
            s3.put_bucket_notification_configuration()
                .bucket(&bucket)
                .notification_configuration(
                    NotificationConfiguration::builder()
                        .set_queue_configurations(Some(configurations))
                        .build(),
                )
                .send()
                .await
                .map_err(aws_error(&bucket))?;
        }
        Ok(queues)
    }

    /// Subscribes an SQS queue of its own to each topic invoking a function, with raw
    /// delivery: a message's body is what SNS hands a Lambda as `Sns.Message`.
    async fn relay_sns_events(
        &self,
        config: &aws_config::SdkConfig,
        sns: &aws_sdk_sns::Client,
        names: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ProvisionError> {
        let sqs = aws_sdk_sqs::Client::new(config);
        let mut queues = BTreeMap::new();
        for (function, topic) in &self.sns_triggers {
            let topic_arn = names
                .get(topic)
                .ok_or_else(|| template_error(function, format!("no topic {topic}")))?;
            let (url, arn) = self.function_queue(&sqs, function).await?;
            sns.subscribe()
                .topic_arn(topic_arn)
                .protocol("sqs")
                .endpoint(arn)
                .attributes("RawMessageDelivery", "true")
                .send()
                .await
                .map_err(aws_error(function))?;
            queues.insert(function.clone(), url);
        }
        Ok(queues)
    }

    /// The queue standing in for a function's asynchronous invocations: its URL and ARN.
    async fn function_queue(
        &self,
        sqs: &aws_sdk_sqs::Client,
        function: &str,
    ) -> Result<(String, String), ProvisionError> {
        let queue = sqs
            .create_queue()
            .queue_name(format!("{}-{function}", self.context.stack_name))
            .send()
            .await
            .map_err(aws_error(function))?;
        let url = queue.queue_url().unwrap_or_default().to_string();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(aws_error(function))?
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| template_error(function, "the queue has no ARN"))?;
        Ok((url, arn))
    }

    /// A configuration set's event destination publishing to an SNS topic.
    async fn create_event_destination(
        &self,
        ses: &aws_sdk_ses::Client,
        id: &str,
        props: &Value,
        names: &BTreeMap<String, String>,
    ) -> Result<(), ProvisionError> {
        use aws_sdk_ses::types::{EventDestination, EventType, SnsDestination};
        let set = self.resolve(
            id,
            props
                .get("ConfigurationSetName")
                .ok_or_else(|| template_error(id, "ConfigurationSetName is required"))?,
            names,
        )?;
        let destination = props
            .get("EventDestination")
            .ok_or_else(|| template_error(id, "EventDestination is required"))?;
        let topic = destination
            .get("SnsDestination")
            .and_then(|d| d.get("TopicARN"))
            .ok_or_else(|| template_error(id, "only SNS destinations are supported here"))?;
        let topic = self.resolve(id, topic, names)?;
        let types: Vec<EventType> = destination
            .get("MatchingEventTypes")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(EventType::from)
            .collect();
        let built = EventDestination::builder()
            .name(
                destination
                    .get("Name")
                    .and_then(Value::as_str)
                    .unwrap_or(id),
            )
            .enabled(true)
            .set_matching_event_types(Some(types))
            .sns_destination(
                SnsDestination::builder()
                    .topic_arn(topic)
                    .build()
                    .map_err(aws_error(id))?,
            )
            .build()
            .map_err(aws_error(id))?;
        let created = ses
            .create_configuration_set_event_destination()
            .configuration_set_name(set)
            .event_destination(built)
            .send()
            .await;
        match created {
            Err(e)
                if !e
                    .as_service_error()
                    .is_some_and(|e| e.is_event_destination_already_exists_exception()) =>
            {
                Err(aws_error(id)(e))
            }
            _ => Ok(()),
        }
    }

    async fn create_table(
        &self,
        client: &aws_sdk_dynamodb::Client,
        id: &str,
        name: &str,
        props: &Value,
    ) -> Result<(), ProvisionError> {
        if client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let list = |key: &str| {
            props
                .get(key)
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default()
        };
        let text = |v: &Value, key: &str| {
            v.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| template_error(id, format!("{key} is required")))
        };
        let key_schema = |v: &Value| -> Result<Vec<KeySchemaElement>, ProvisionError> {
            v.as_sequence()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(text(k, "AttributeName")?)
                        .key_type(KeyType::from(text(k, "KeyType")?.as_str()))
                        .build()
                        .map_err(aws_error(id))
                })
                .collect()
        };
        let mut create = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest);
        for a in list("AttributeDefinitions") {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(text(&a, "AttributeName")?)
                    .attribute_type(ScalarAttributeType::from(
                        text(&a, "AttributeType")?.as_str(),
                    ))
                    .build()
                    .map_err(aws_error(id))?,
            );
        }
        create = create.set_key_schema(Some(key_schema(
            props.get("KeySchema").unwrap_or(&Value::Null),
        )?));
        for g in list("GlobalSecondaryIndexes") {
            let projection = g.get("Projection").cloned().unwrap_or(Value::Null);
            let non_key: Vec<String> = projection
                .get("NonKeyAttributes")
                .and_then(Value::as_sequence)
                .map(|s| {
                    s.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let projection = Projection::builder()
                .projection_type(ProjectionType::from(
                    projection
                        .get("ProjectionType")
                        .and_then(Value::as_str)
                        .unwrap_or("ALL"),
                ))
                .set_non_key_attributes((!non_key.is_empty()).then_some(non_key))
                .build();
            create = create.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(text(&g, "IndexName")?)
                    .set_key_schema(Some(key_schema(
                        g.get("KeySchema").unwrap_or(&Value::Null),
                    )?))
                    .projection(projection)
                    .build()
                    .map_err(aws_error(id))?,
            );
        }
        create.send().await.map_err(aws_error(id))?;
        Ok(())
    }
}

/// The template shipped in the repository.
pub const TEMPLATE: &str = include_str!("../../../infra/template.yaml");

/// Creates the template's resources under `stack_name` in the account the environment points
/// at (the local stack: its account id is always `000000000000`), with the sender address
/// the SES identity needs. `tdb provision` and the integration tests use it.
pub async fn provision_stack(
    config: &aws_config::SdkConfig,
    stack_name: &str,
    sender: &str,
) -> Result<Provisioned, ProvisionError> {
    let context = StackContext {
        stack_name: stack_name.to_string(),
        account_id: "000000000000".into(),
        region: config
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "eu-west-3".into()),
        parameters: [("SenderEmail".to_string(), sender.to_string())].into(),
    };
    Resources::from_template(TEMPLATE, context)?
        .provision(config)
        .await
}
