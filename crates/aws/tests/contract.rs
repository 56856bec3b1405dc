//! Contract tests: the same assertions against the in-memory fakes and the real adapters on
//! the local stack (DynamoDB Local, LocalStack). The local resources are created from
//! `infra/template.yaml` with a stack name unique to each test.
//!
//! A stopped stack makes these tests fail, never skip: run them through `scripts/test.sh`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use tdb_aws::dynamo::CampaignTable;
use tdb_aws::provision::{Provisioned, Resources, StackContext, TEMPLATE};
use tdb_aws::s3::S3Lake;
use tdb_aws::ses::SesMailer;
use tdb_domain::campaign::{CampaignYear, QuestionnaireStatus};
use tdb_domain::ports::memory::{
    MemoryAuditLog, MemoryLake, MemoryMailer, MemoryQuestionnaireStore, MemorySendLog,
};
use tdb_domain::ports::*;
use tdb_domain::{Category, Departement, Finess, Respondent, RespondentKind};
use time::macros::date;

const SENDER: &str = "tdb-esms@campagne.test";

struct Stack {
    config: aws_config::SdkConfig,
    provisioned: Provisioned,
}

/// Provisions a fresh copy of the template's resources on the local stack.
async fn local_stack() -> Stack {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.contains("127.0.0.1") || endpoint.contains("localhost"),
        "AWS_ENDPOINT_URL must point at the local stack (got `{endpoint}`): run the tests with scripts/test.sh, which starts it"
    );
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    let stack_name = format!("t{nanos}-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
    let context = StackContext {
        stack_name,
        account_id: "000000000000".into(),
        region: "eu-west-3".into(),
        parameters: BTreeMap::from([("SenderEmail".to_string(), SENDER.to_string())]),
    };
    let config = tdb_aws::load_config().await;
    let provisioned = Resources::from_template(TEMPLATE, context)
        .unwrap()
        .provision(&config)
        .await
        .expect("the local stack answers: is it started?");
    Stack {
        config,
        provisioned,
    }
}

impl Stack {
    fn campaign_table(&self) -> CampaignTable {
        CampaignTable::new(
            aws_sdk_dynamodb::Client::new(&self.config),
            &self.provisioned.environment["CAMPAIGN_TABLE"],
        )
    }
}

fn year() -> CampaignYear {
    CampaignYear::new(2025).unwrap()
}

fn finess(n: u32) -> Finess {
    Finess::with_key(&format!("69{n:06}")).unwrap()
}

fn questionnaire(
    n: u32,
    og: Option<Finess>,
    dep: &str,
    status: QuestionnaireStatus,
) -> StoredQuestionnaire {
    StoredQuestionnaire {
        campaign: year(),
        respondent: Respondent {
            finess: finess(n),
            kind: RespondentKind::Esms(Category::Ehpad),
        },
        departement: Departement::from_code(dep).unwrap(),
        og,
        status,
        answers: serde_json::json!({ "cap_auth_perm": n, "etp_total": 12.5 })
            .as_object()
            .unwrap()
            .clone(),
        fill_rate: 0.5,
        version: 1,
        updated_at: 1_750_000_000,
    }
}

async fn questionnaire_store_contract(store: impl QuestionnaireStore) {
    let mut q = questionnaire(1, None, "69", QuestionnaireStatus::InProgress);
    assert_eq!(store.get(year(), q.respondent.finess).await.unwrap(), None);
    store.put(&q).await.unwrap();
    assert_eq!(
        store.get(year(), q.respondent.finess).await.unwrap(),
        Some(q.clone())
    );
    assert!(
        matches!(
            store.put(&q).await,
            Err(StoreError::Conflict { expected: 0 })
        ),
        "creating twice conflicts"
    );

    q.version = 2;
    q.status = QuestionnaireStatus::Validated;
    store.put(&q).await.unwrap();
    let stale = StoredQuestionnaire {
        fill_rate: 0.1,
        ..q.clone()
    };
    assert!(
        matches!(
            store.put(&stale).await,
            Err(StoreError::Conflict { expected: 1 })
        ),
        "a stale writer loses"
    );
    assert_eq!(
        store
            .get(year(), q.respondent.finess)
            .await
            .unwrap()
            .unwrap()
            .fill_rate,
        0.5,
        "nothing saved is lost"
    );

    // 60 questionnaires: three BatchWriteItem calls of at most 25.
    let og = finess(900_000);
    let many: Vec<_> = (100..160)
        .map(|n| {
            questionnaire(
                n,
                (n % 2 == 0).then_some(og),
                if n % 3 == 0 { "38" } else { "69" },
                if n % 4 == 0 {
                    QuestionnaireStatus::Validated
                } else {
                    QuestionnaireStatus::InProgress
                },
            )
        })
        .collect();
    store.put_many(&many).await.unwrap();

    let mut by_og = Vec::new();
    let mut page = None;
    loop {
        let p = store.list_by_og(year(), og, page, 7).await.unwrap();
        assert!(p.items.len() <= 7);
        by_og.extend(p.items);
        page = p.next;
        if page.is_none() {
            break;
        }
    }
    by_og.sort();
    let expected: Vec<_> = many
        .iter()
        .filter(|q| q.og == Some(og))
        .map(|q| q.respondent.finess)
        .collect();
    assert_eq!(by_og, expected);

    let isere = Departement::from_code("38").unwrap();
    let validated = store
        .list_by_departement(
            year(),
            isere,
            Some(QuestionnaireStatus::Validated),
            None,
            100,
        )
        .await
        .unwrap();
    let expected: Vec<_> = many
        .iter()
        .filter(|q| q.departement == isere && q.status == QuestionnaireStatus::Validated)
        .map(|q| q.respondent.finess)
        .collect();
    assert_eq!(
        validated.items.iter().map(|e| e.finess).collect::<Vec<_>>(),
        expected
    );
    assert!(
        validated
            .items
            .iter()
            .all(|e| e.status == QuestionnaireStatus::Validated && e.fill_rate == 0.5)
    );
    let all = store
        .list_by_departement(year(), isere, None, None, 100)
        .await
        .unwrap();
    assert_eq!(
        all.items.len(),
        many.iter().filter(|q| q.departement == isere).count()
    );
    assert!(matches!(
        store
            .list_by_og(year(), og, Some("not a token".into()), 5)
            .await,
        Err(StoreError::BadPageToken)
    ));
}

async fn audit_log_contract(log: impl AuditLog) {
    let f = finess(1);
    for (at, action) in [(3, "validate"), (1, "save"), (2, "save")] {
        log.append(
            year(),
            f,
            &AuditEntry {
                at,
                actor: "account-42".into(),
                action: action.into(),
                detail: serde_json::json!({ "items": 3 }),
            },
        )
        .await
        .unwrap();
    }
    let entries = log.list(year(), f).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.at).collect::<Vec<_>>(),
        [1, 2, 3],
        "oldest first"
    );
    assert_eq!(entries[2].action, "validate");
    assert!(log.list(year(), finess(2)).await.unwrap().is_empty());
}

async fn send_log_contract(log: impl SendLog) {
    let f = finess(1);
    let day = date!(2025 - 06 - 16);
    assert!(log.record(year(), f, "relance_j15", day).await.unwrap());
    assert!(
        !log.record(year(), f, "relance_j15", day).await.unwrap(),
        "not twice the same day"
    );
    assert!(
        log.record(year(), f, "relance_j15", date!(2025 - 06 - 23))
            .await
            .unwrap()
    );
    assert!(log.record(year(), f, "relance_og", day).await.unwrap());
    let sent = log.sent(year(), f).await.unwrap();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0], (day, "relance_j15".to_string()));
}

async fn lake_contract(lake: impl Lake) {
    lake.put("campaign=2025/answers/part-0.parquet", b"PAR1 one".to_vec())
        .await
        .unwrap();
    lake.put("campaign=2025/answers/part-1.parquet", b"PAR1 two".to_vec())
        .await
        .unwrap();
    lake.put("campaign=2024/answers/part-0.parquet", b"PAR1 old".to_vec())
        .await
        .unwrap();
    assert_eq!(
        lake.get("campaign=2025/answers/part-1.parquet")
            .await
            .unwrap()
            .unwrap(),
        b"PAR1 two"
    );
    assert_eq!(lake.get("campaign=2025/missing").await.unwrap(), None);
    assert_eq!(
        lake.list("campaign=2025/").await.unwrap(),
        [
            "campaign=2025/answers/part-0.parquet",
            "campaign=2025/answers/part-1.parquet"
        ]
    );
}

fn reminder(to: &str) -> Email {
    Email {
        to: EmailAddress::parse(to).unwrap(),
        subject: "Tableau de bord : campagne 2025".into(),
        text: "Il reste 15 jours pour saisir et valider vos données.".into(),
    }
}

#[tokio::test]
async fn questionnaire_store_fake_honours_the_contract() {
    questionnaire_store_contract(MemoryQuestionnaireStore::default()).await;
}

#[tokio::test]
async fn questionnaire_store_on_dynamodb_honours_the_contract() {
    questionnaire_store_contract(local_stack().await.campaign_table()).await;
}

#[tokio::test]
async fn audit_log_fake_honours_the_contract() {
    audit_log_contract(MemoryAuditLog::default()).await;
}

#[tokio::test]
async fn audit_log_on_dynamodb_honours_the_contract() {
    audit_log_contract(local_stack().await.campaign_table()).await;
}

#[tokio::test]
async fn send_log_fake_honours_the_contract() {
    send_log_contract(MemorySendLog::default()).await;
}

#[tokio::test]
async fn send_log_on_dynamodb_honours_the_contract() {
    send_log_contract(local_stack().await.campaign_table()).await;
}

#[tokio::test]
async fn lake_fake_honours_the_contract() {
    lake_contract(MemoryLake::default()).await;
}

#[tokio::test]
async fn lake_on_s3_honours_the_contract() {
    let stack = local_stack().await;
    lake_contract(S3Lake::new(
        &stack.config,
        &stack.provisioned.environment["LAKE_BUCKET"],
    ))
    .await;
}

#[tokio::test]
async fn fake_mailer_keeps_what_it_sends() {
    let mailer = MemoryMailer::default();
    mailer
        .send(&reminder("direction@ehpad-exemple.fr"))
        .await
        .unwrap();
    assert_eq!(
        mailer.outbox.lock().unwrap()[0].to.as_str(),
        "direction@ehpad-exemple.fr"
    );
}

#[tokio::test]
async fn ses_mailer_sends_a_message_that_localstack_received() {
    let stack = local_stack().await;
    let mailer = SesMailer::new(aws_sdk_ses::Client::new(&stack.config), SENDER);
    let unique = format!(
        "ape-{}@ehpad-exemple.fr",
        stack.provisioned.names["CampaignTable"].replace('-', "")
    );
    let id = mailer.send(&reminder(&unique)).await.unwrap();
    assert!(!id.is_empty());
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let sent: serde_json::Value = reqwest::get(format!("{endpoint}/_aws/ses"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"]["ToAddresses"][0] == unique.as_str())
        .expect("the message reached LocalStack");
    assert_eq!(message["Source"], SENDER);
    assert_eq!(message["Subject"], "Tableau de bord : campagne 2025");
    assert!(
        message["Body"]["text_part"]
            .as_str()
            .unwrap()
            .contains("15 jours")
    );
}

#[tokio::test]
async fn provisioning_twice_is_harmless_and_reads_the_environment_from_the_template() {
    let stack = local_stack().await;
    let env = &stack.provisioned.environment;
    assert!(env["CAMPAIGN_TABLE"].ends_with("-campaign"));
    assert!(env["ACCOUNTS_TABLE"].ends_with("-accounts"));
    assert!(env["LAKE_BUCKET"].contains("-lake-"));
    assert_eq!(env["SENDER_EMAIL"], SENDER);
    let again = Resources::from_template(
        TEMPLATE,
        StackContext {
            stack_name: env["CAMPAIGN_TABLE"]
                .trim_end_matches("-campaign")
                .to_string(),
            account_id: "000000000000".into(),
            region: "eu-west-3".into(),
            parameters: BTreeMap::from([("SenderEmail".to_string(), SENDER.to_string())]),
        },
    )
    .unwrap()
    .provision(&stack.config)
    .await
    .unwrap();
    assert_eq!(again.environment, stack.provisioned.environment);
    let table = aws_sdk_dynamodb::Client::new(&stack.config)
        .describe_table()
        .table_name(&env["CAMPAIGN_TABLE"])
        .send()
        .await
        .unwrap();
    let indexes: Vec<_> = table
        .table()
        .unwrap()
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name())
        .collect();
    assert_eq!(indexes.len(), 2, "{indexes:?}");
}
