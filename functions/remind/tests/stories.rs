//! The remind stories on the local stack: DynamoDB Local for the tables and the send log,
//! LocalStack's SES for the e-mails, read back from `/_aws/ses`. Each test provisions its
//! own copy of the template's resources and its own addresses.

use remind::{Reminders, SendRate};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use tdb_api::TokenVerifier;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_aws::ses::SesMailer;
use tdb_domain::accounts::{Account, AccountId, Person, StructureRecord};
use tdb_domain::campaign::{CampaignYear, QuestionnaireStatus};
use tdb_domain::email::EmailAddress;
use tdb_domain::ports::{
    AccountStore, AuditEntry, AuditedWrite, Email, MailError, Mailer, QuestionnaireStore,
};
use tdb_domain::rights::{Profile, Role};
use tdb_domain::workflow::Transition;
use tdb_domain::{Category, Finess, RespondentKind};
use time::Date;
use time::macros::date;

const SENDER: &str = "tdb-esms@campagne.test";

fn year() -> CampaignYear {
    CampaignYear::new(2025).unwrap()
}

fn f(first_eight: &str) -> Finess {
    Finess::with_key(first_eight).unwrap()
}

/// Three EHPAD: A late all along, B validated on 20 June, C with nobody to write to.
fn a() -> Finess {
    f("69002001")
}
fn b() -> Finess {
    f("69002002")
}
fn c() -> Finess {
    f("38002003")
}
/// The OG managing A and B.
fn og() -> Finess {
    f("69002100")
}
/// Outside the ARS's region (Île-de-France).
fn d() -> Finess {
    f("75002004")
}

const ISSUER: &str = "https://api.tdb-esms.test";

fn signer() -> &'static accounts::TokenSigner {
    static SIGNER: std::sync::OnceLock<accounts::TokenSigner> = std::sync::OnceLock::new();
    SIGNER.get_or_init(|| {
        accounts::TokenSigner::from_pem(&accounts::generate_signing_key(), ISSUER, "tdb-esms")
            .unwrap()
    })
}

/// A mailer that fails every send while `failing` is set (SES throttling, an outage).
struct Flaky {
    ses: SesMailer,
    failing: Arc<AtomicUsize>,
}

impl Mailer for Flaky {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        // Fails the sends after the first `failing` - 1 ones (0: never), counted atomically
        // since a run sends several at once.
        let budget = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                (b > 1).then(|| b - 1)
            });
        if budget == Err(1) {
            return Err(MailError::Rejected(
                "Throttling: maximum sending rate exceeded".into(),
            ));
        }
        self.ses.send(email).await
    }

    async fn max_send_rate(&self) -> Result<f64, MailError> {
        self.ses.max_send_rate().await
    }
}

struct World {
    app: Arc<Reminders<CampaignTable, AccountsTable, Flaky>>,
    /// The API over the same tables and SES.
    router: axum::Router,
    campaign: CampaignTable,
    failing: Arc<AtomicUsize>,
    now: Arc<AtomicI64>,
    tag: String,
    accounts: AccountsTable,
    aws: aws_config::SdkConfig,
    provisioned: tdb_aws::provision::Provisioned,
}

impl World {
    fn email(&self, who: &str) -> String {
        format!("{who}.{}@exemple.fr", self.tag)
    }

    /// The subjects sent to `who`, oldest first.
    async fn inbox(&self, who: &str) -> Vec<String> {
        tdb_testkit::messages_to(&self.email(who))
            .await
            .iter()
            .map(|m| m["Subject"].as_str().unwrap().to_string())
            .collect()
    }

    async fn run(&self, day: Date) -> remind::RunSummary {
        let midday = day.midnight().assume_utc().unix_timestamp() + 12 * 3600;
        self.now.store(midday, Ordering::SeqCst);
        self.app.run(year(), day, false).await.unwrap()
    }
}

async fn world() -> World {
    tdb_testkit::local_endpoint();
    let tag = tdb_testkit::unique_name("r");
    let config = tdb_aws::load_config().await;
    let provisioned = tdb_aws::provision::provision_stack(&config, &tag, SENDER)
        .await
        .expect("the local stack answers: is it started?");
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let campaign = CampaignTable::new(dynamo.clone(), &provisioned.environment["CAMPAIGN_TABLE"]);
    let accounts = AccountsTable::new(dynamo, &provisioned.environment["ACCOUNTS_TABLE"]);
    // Sent through the template's configuration set, whose bounces and complaints come back.
    let ses = || {
        SesMailer::new(aws_sdk_ses::Client::new(&config), SENDER).reporting_to(Some(
            provisioned.environment["SES_CONFIGURATION_SET"].clone(),
        ))
    };
    let structure = |finess: Finess, name: &str, managed: bool| StructureRecord {
        finess,
        kind: RespondentKind::Esms(Category::Ehpad),
        name: name.into(),
        legal_entity: if managed { og() } else { finess },
        og: managed.then(og),
        principal: None,
        ape: None,
    };
    accounts
        .create_structures(&[
            StructureRecord {
                finess: og(),
                kind: RespondentKind::Og,
                name: "Association Les Amis".into(),
                legal_entity: og(),
                og: None,
                principal: None,
                ape: None,
            },
            structure(a(), "EHPAD Les Tilleuls", true),
            structure(b(), "EHPAD Le Verger", true),
            structure(c(), "EHPAD Sans Contact", false),
            structure(d(), "EHPAD Parisien", false),
        ])
        .await
        .unwrap();
    let email = |who: &str| format!("{who}.{tag}@exemple.fr");
    for (n, (who, role, active)) in [
        (
            "gest-a",
            Role::Member {
                structure: a(),
                profile: Profile::Gestionnaire,
            },
            true,
        ),
        ("ape-a", Role::Ape { structure: a() }, true),
        (
            "lect-a",
            Role::Member {
                structure: a(),
                profile: Profile::Lecteur,
            },
            true,
        ),
        (
            "gest-b",
            Role::Member {
                structure: b(),
                profile: Profile::Gestionnaire,
            },
            true,
        ),
        // C's only Gestionnaire never activated the account: nobody to write to.
        (
            "gest-c",
            Role::Member {
                structure: c(),
                profile: Profile::Gestionnaire,
            },
            false,
        ),
        (
            "gest-d",
            Role::Member {
                structure: d(),
                profile: Profile::Gestionnaire,
            },
            true,
        ),
        (
            "ars",
            Role::RegionalAdmin {
                region: tdb_domain::Region::from_code(84).unwrap(),
            },
            true,
        ),
        (
            "gest-og",
            Role::Member {
                structure: og(),
                profile: Profile::Gestionnaire,
            },
            true,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut account = Account::new(
            AccountId::from_random([n as u8 + 1; 16]),
            EmailAddress::parse(&email(who)).unwrap(),
            Person {
                last_name: "Martin".into(),
                first_name: who.into(),
                phone: None,
            },
            0,
        );
        if active {
            account.password_hash = Some("a chosen password's hash".into());
        }
        accounts.create_account(&account, &role).await.unwrap();
    }
    collect::open_campaign(&campaign, &accounts, year(), 0, "test")
        .await
        .unwrap()
        .unwrap();
    let now = Arc::new(AtomicI64::new(0));
    let clock = {
        let now = now.clone();
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let failing = Arc::new(AtomicUsize::new(0));
    let api = Reminders::new(
        campaign.clone(),
        accounts.clone(),
        ses(),
        tdb_api::shipped_campaigns().unwrap(),
        clock.clone(),
        SendRate::Fixed(1000.0),
        "https://tdb.example",
    );
    let verifier = TokenVerifier::from_jwks(&signer().jwks_json(), ISSUER, "tdb-esms").unwrap();
    let router = remind::router(remind::App::new(api, verifier));
    let app = Reminders::new(
        campaign.clone(),
        accounts.clone(),
        Flaky {
            ses: ses(),
            failing: failing.clone(),
        },
        tdb_api::shipped_campaigns().unwrap(),
        clock,
        SendRate::Fixed(1000.0),
        "https://tdb.example",
    );
    World {
        app: Arc::new(app),
        router,
        campaign,
        failing,
        now,
        tag,
        accounts,
        aws: config,
        provisioned,
    }
}

/// Validates B's questionnaire as the validate function records it.
async fn validate_b(w: &World) {
    let before = w.campaign.get(year(), b()).await.unwrap().unwrap();
    let mut after = before.clone();
    for t in [Transition::Save, Transition::Validate] {
        after.workflow.apply("generique", t).unwrap();
    }
    after.status = QuestionnaireStatus::Validated;
    after.version += 1;
    let entry = AuditEntry {
        at: 0,
        actor: "test".into(),
        action: "validate".into(),
        detail: serde_json::json!({}),
    };
    w.campaign
        .put_audited(AuditedWrite {
            before: &before,
            after: &after,
            entry: &entry,
            held: None,
        })
        .await
        .unwrap();
}

fn days(from: Date, to: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(from), |d| d.next_day()).take_while(move |d| *d <= to)
}

#[tokio::test]
async fn a_window_walked_day_by_day_reminds_exactly_the_late_and_stops_at_validation() {
    let w = world().await;
    let mut unreachable = BTreeMap::new();
    for day in days(date!(2025 - 05 - 01), date!(2025 - 09 - 15)) {
        if day == date!(2025 - 06 - 20) {
            validate_b(&w).await;
        }
        let summary = w.run(day).await;
        assert_eq!(summary.failed, 0);
        for finess in summary.unreachable {
            *unreachable.entry(finess).or_insert(0) += 1;
        }
    }
    let opening = "Tableau de bord de la performance ESMS : la campagne 2025 est ouverte";
    let before = |days: u16, name: &str| {
        format!("Tableau de bord de la performance ESMS : plus que {days} jours pour {name}")
    };
    let after = |name: &str| {
        format!("Tableau de bord de la performance ESMS : données de {name} à valider")
    };
    let mut expected_a = vec![
        opening.to_string(),
        before(15, "EHPAD Les Tilleuls"),
        before(7, "EHPAD Les Tilleuls"),
        before(2, "EHPAD Les Tilleuls"),
    ];
    // Weekly after the 30 June deadline until the end of fiabilisation (31 August).
    expected_a.extend(std::iter::repeat_n(after("EHPAD Les Tilleuls"), 8));
    assert_eq!(w.inbox("gest-a").await, expected_a);
    assert_eq!(w.inbox("ape-a").await, expected_a, "the APE too");
    assert!(
        w.inbox("lect-a").await.is_empty(),
        "a Lecteur is not chased"
    );
    // B validated on 20 June: reminded at opening and 15 days before, never after.
    assert_eq!(
        w.inbox("gest-b").await,
        [opening.to_string(), before(15, "EHPAD Le Verger")]
    );
    // The OG: one digest per chasing day listing its late ESMS (both, then A alone once
    // B validated), besides the reminders of its own questionnaire.
    let digests: Vec<String> = w
        .inbox("gest-og")
        .await
        .into_iter()
        .filter(|s| s.contains("à relancer"))
        .collect();
    let digest = |n: &str| {
        format!("Tableau de bord de la performance ESMS : {n} de Association Les Amis à relancer")
    };
    let mut expected = vec![digest("2 établissements")];
    expected.extend(std::iter::repeat_n(digest("1 établissement"), 10));
    assert_eq!(digests, expected);
    let message = tdb_testkit::messages_to(&w.email("gest-og"))
        .await
        .into_iter()
        .find(|m| m["Subject"].as_str().unwrap().contains("2 établissements"))
        .unwrap();
    let text = message["Body"]["text_part"].as_str().unwrap();
    assert!(
        text.contains("EHPAD Les Tilleuls") && text.contains("EHPAD Le Verger"),
        "{text}"
    );
    assert!(text.contains("rempli à 0 %"), "{text}");
    // The ARS gets its region's digest every Monday of collection and fiabilisation.
    let weekly = w.inbox("ars").await;
    assert_eq!(weekly.len(), 17, "{weekly:?}");
    assert!(
        weekly
            .iter()
            .all(|s| s.contains("avancement de la campagne 2025"))
    );
    let digest = tdb_testkit::messages_to(&w.email("ars"))
        .await
        .pop()
        .unwrap();
    let text = digest["Body"]["text_part"].as_str().unwrap();
    assert!(
        text.contains("Par catégorie") && text.contains("EHPAD"),
        "{text}"
    );
    assert!(
        text.contains("EHPAD Sans Contact"),
        "a structure without an APE: {text}"
    );
    assert!(
        !text.contains("EHPAD Parisien"),
        "outside the region: {text}"
    );
    // C has nobody to write to, every reminder day.
    assert_eq!(unreachable.get(&c().to_string()), Some(&12));
    // The e-mail says what to do, where.
    let message = tdb_testkit::messages_to(&w.email("gest-a"))
        .await
        .pop()
        .unwrap();
    let text = message["Body"]["text_part"].as_str().unwrap();
    assert!(text.contains("Bonjour gest-a Martin"), "{text}");
    assert!(text.contains("date limite du 30/06/2025"), "{text}");
    assert!(
        text.contains(&format!("https://tdb.example/questionnaires/2025/{}", a())),
        "{text}"
    );
    // The HTML part escapes every value (minijinja writes `/` as `&#x2f;` too).
    let html = message["Body"]["html_part"].as_str().unwrap();
    assert!(
        html.contains("<a href=\"https:&#x2f;&#x2f;tdb.example&#x2f;questionnaires"),
        "{html}"
    );
}

#[tokio::test]
async fn a_run_that_fails_halfway_is_finished_by_the_next_without_a_duplicate() {
    let w = world().await;
    let day = date!(2025 - 05 - 05);
    // The third send and those after fail (two go out).
    w.failing.store(3, Ordering::SeqCst);
    let first = w.run(day).await;
    // 5 May 2025 is also a Monday: the ARS's digest goes with the reminders.
    assert_eq!((first.sent, first.failed), (2, 4), "{first:?}");
    w.failing.store(0, Ordering::SeqCst);
    let second = w.run(day).await;
    assert_eq!(
        (second.sent, second.already_sent, second.failed),
        (4, 2, 0),
        "{second:?}"
    );
    let third = w.run(day).await;
    assert_eq!((third.sent, third.already_sent), (0, 6));
    for who in ["gest-a", "ape-a", "gest-b", "gest-d", "gest-og"] {
        assert_eq!(w.inbox(who).await.len(), 1, "{who}: once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runs_at_once_send_each_email_once() {
    let w = world().await;
    let day = date!(2025 - 06 - 15);
    let (one, two) = futures_util::join!(w.run(day), w.run(day));
    // A, B, D and the OG's own questionnaire, and the OG's digest.
    assert_eq!(one.sent + two.sent, 6, "{one:?} {two:?}");
    assert_eq!(one.sent + one.already_sent + one.in_flight, 6);
    assert_eq!(
        w.inbox("gest-og").await.len(),
        2,
        "its own reminder and its digest"
    );
    for who in ["gest-a", "ape-a", "gest-b", "gest-d"] {
        assert_eq!(w.inbox(who).await.len(), 1, "{who}: once");
    }
    // A dry run lists what a run would send, and sends nothing.
    let dry = w
        .app
        .run(year(), date!(2025 - 06 - 23), true)
        .await
        .unwrap();
    let mut to: Vec<_> = dry.planned.iter().map(|p| p.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            w.email("ape-a"),
            w.email("ars"),
            w.email("gest-a"),
            w.email("gest-b"),
            w.email("gest-d"),
            w.email("gest-og"),
            w.email("gest-og")
        ]
    );
    assert!(
        dry.planned
            .iter()
            .all(|p| p.subject.contains("plus que 7 jours")
                || p.occasion == "og-digest"
                || p.occasion == "territory-digest")
    );
    assert_eq!(
        w.inbox("gest-a").await.len(),
        1,
        "nothing sent by a dry run"
    );

    // A run out of time claims nothing more; the next run of the day sends the rest, once.
    let day = date!(2025 - 06 - 28);
    let stopped = w
        .app
        .run_until(year(), day, false, Some(std::time::Instant::now()))
        .await
        .unwrap();
    assert_eq!((stopped.sent, stopped.remaining), (0, 6), "{stopped:?}");
    let rest = w.run(day).await;
    assert_eq!((rest.sent, rest.remaining), (6, 0), "{rest:?}");
    assert_eq!(w.inbox("gest-a").await.len(), 2);
}

impl World {
    /// A token for the `n`th account `world` made (from 1).
    fn token(&self, n: u8, role: Role) -> String {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        signer().sign(&AccountId::from_random([n; 16]), vec![role], None, wall)
    }

    async fn get(&self, token: &str, uri: &str) -> (u16, serde_json::Value) {
        use tower::ServiceExt;
        let response = self
            .router
            .clone()
            .oneshot(
                axum::http::Request::get(uri)
                    .header("authorization", format!("Bearer {token}"))
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// Publishes what SES would on the feedback topic of the template.
    async fn ses_reports(&self, event: serde_json::Value) {
        aws_sdk_sns::Client::new(&self.aws)
            .publish()
            .topic_arn(&self.provisioned.names["MailFeedbackTopic"])
            .message(event.to_string())
            .send()
            .await
            .unwrap();
    }

    /// Waits until `who`'s account is marked undeliverable (the relay is asynchronous).
    async fn marked(&self, who: &str) -> Option<tdb_domain::accounts::Undeliverable> {
        let address = EmailAddress::parse(&self.email(who)).unwrap();
        for _ in 0..100 {
            let account = self.accounts.account_by_email(&address).await.unwrap();
            if let Some(marked) = account.unwrap().account.undeliverable {
                return Some(marked);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        None
    }

    /// Asks reminders now for `finess` and a malformed FINESS.
    async fn remind_now(&self, token: &str, finess: &[Finess]) -> (u16, serde_json::Value) {
        use tower::ServiceExt;
        let list: Vec<String> = finess
            .iter()
            .map(|f| f.to_string())
            .chain(["123".to_string()])
            .collect();
        let body = serde_json::json!({ "finess": list });
        let response = self
            .router
            .clone()
            .oneshot(
                axum::http::Request::post("/reminders/2025")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

#[tokio::test]
async fn an_ars_reminds_its_territory_now_once_a_day() {
    let w = world().await;
    let region = tdb_domain::Region::from_code(84).unwrap();
    let ars = w.token(7, Role::RegionalAdmin { region });
    w.now.store(
        date!(2025 - 06 - 10)
            .midnight()
            .assume_utc()
            .unix_timestamp()
            + 36_000,
        Ordering::SeqCst,
    );
    let (status, answer) = w.remind_now(&ars, &[a(), b(), c(), d()]).await;
    assert_eq!(status, 200, "{answer}");
    let outcome = |n: usize| {
        answer["structures"][n]["outcome"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (0..5).map(outcome).collect::<Vec<_>>(),
        ["sent", "sent", "unreachable", "forbidden", "unknown"]
    );
    assert_eq!(answer["structures"][0]["emails"], 2);
    assert_eq!(
        w.inbox("gest-a").await,
        ["Tableau de bord de la performance ESMS : plus que 20 jours pour EHPAD Les Tilleuls"]
    );
    assert!(
        w.inbox("gest-d").await.is_empty(),
        "outside the ARS's region"
    );

    // Again the same day: nothing sent, and when the first went out.
    let (_, again) = w.remind_now(&ars, &[a()]).await;
    assert_eq!(again["structures"][0]["outcome"], "already_reminded_today");
    assert!(again["structures"][0]["last_sent_at"].as_i64().is_some());
    assert_eq!(w.inbox("gest-a").await.len(), 1);

    // A validated structure is not chased; a Gestionnaire cannot chase others.
    validate_b(&w).await;
    w.now.fetch_add(86_400, Ordering::SeqCst);
    let (_, next_day) = w.remind_now(&ars, &[b()]).await;
    assert_eq!(next_day["structures"][0]["outcome"], "validated");
    let gestionnaire = w.token(
        4,
        Role::Member {
            structure: b(),
            profile: Profile::Gestionnaire,
        },
    );
    let (_, refused) = w.remind_now(&gestionnaire, &[a()]).await;
    assert_eq!(refused["structures"][0]["outcome"], "forbidden");
}

/// SES's event for a message to `to` (its event publishing format).
fn ses_event(kind: &str, to: &str) -> serde_json::Value {
    let mail = serde_json::json!({"messageId": "0100-test", "source": SENDER, "destination": [to]});
    match kind {
        "Complaint" => serde_json::json!({
            "eventType": "Complaint", "mail": mail,
            "complaint": {"complainedRecipients": [{"emailAddress": to}], "complaintFeedbackType": "abuse"},
        }),
        bounce_type => serde_json::json!({
            "eventType": "Bounce", "mail": mail,
            "bounce": {"bounceType": bounce_type, "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": to, "status": "5.1.1"}]},
        }),
    }
}

#[tokio::test]
async fn a_bounce_marks_the_address_and_the_ars_sees_the_structure_it_leaves_unreachable() {
    let w = world().await;
    // What the gateway does locally for the Lambda the topic invokes.
    let relay = {
        let accounts = w.accounts.clone();
        tokio::spawn(tdb_aws::relay::relay(
            aws_sdk_sqs::Client::new(&w.aws),
            w.provisioned.event_queues["RemindFeedbackFunction"].clone(),
            move |message| {
                let accounts = accounts.clone();
                async move {
                    remind::feedback::receive(&accounts, &message, 1_750_000_000)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            },
        ))
    };
    let opening = w.run(date!(2025 - 05 - 05)).await;
    assert!(opening.sent > 0);
    assert_eq!(w.inbox("gest-a").await.len(), 1);

    // A's Gestionnaire's address bounces for good; its APE's mailbox is only full.
    w.ses_reports(ses_event("Permanent", &w.email("gest-a")))
        .await;
    w.ses_reports(ses_event("Transient", &w.email("ape-a")))
        .await;
    let marked = w
        .marked("gest-a")
        .await
        .expect("the bounce marks the address");
    assert_eq!(
        marked.reason,
        tdb_domain::accounts::UndeliverableReason::Bounce
    );
    // A permanent bounce of the Lecteur's address, sent after the transient one: once it
    // is recorded, the transient one has been read too (one queue, one reader).
    w.ses_reports(ses_event("Permanent", &w.email("lect-a")))
        .await;
    assert!(w.marked("lect-a").await.is_some());
    let ape = EmailAddress::parse(&w.email("ape-a")).unwrap();
    let ape = w.accounts.account_by_email(&ape).await.unwrap().unwrap();
    assert_eq!(
        ape.account.undeliverable, None,
        "a transient bounce marks nothing"
    );
    let ars = w.token(
        7,
        Role::RegionalAdmin {
            region: tdb_domain::Region::from_code(84).unwrap(),
        },
    );
    let listed = |answer: &serde_json::Value| -> Vec<(String, String)> {
        answer["structures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["finess"].as_str().unwrap().to_string(),
                    s["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (status, answer) = w.get(&ars, "/reminders/unreachable?region=84").await;
    assert_eq!(status, 200, "{answer}");
    // A's APE still takes mail: A is reachable. C has nobody.
    assert_eq!(
        listed(&answer),
        [(c().display().to_string(), "no_ape".to_string())]
    );

    // Then its APE complains: nobody at A takes reminders any more.
    w.ses_reports(ses_event("Complaint", &w.email("ape-a")))
        .await;
    assert_eq!(
        w.marked("ape-a").await.map(|m| m.reason),
        Some(tdb_domain::accounts::UndeliverableReason::Complaint)
    );
    let (_, answer) = w.get(&ars, "/reminders/unreachable?region=84").await;
    assert_eq!(
        listed(&answer),
        [
            (c().display().to_string(), "no_ape".to_string()),
            (a().display().to_string(), "addresses_rejected".to_string()),
        ]
    );
    assert_eq!(answer["structures"][1]["name"], "EHPAD Les Tilleuls");
    assert!(answer["structures"][1]["since"].as_i64().is_some());
    // Only its territory's administrators see it.
    let (status, _) = w.get(&ars, "/reminders/unreachable?region=11").await;
    assert_eq!(status, 403);
    let gestionnaire = w.token(
        1,
        Role::Member {
            structure: a(),
            profile: Profile::Gestionnaire,
        },
    );
    let (status, _) = w
        .get(&gestionnaire, "/reminders/unreachable?departement=69")
        .await;
    assert_eq!(status, 403);
    let (status, answer) = w.get(&ars, "/reminders/unreachable?region=xx").await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("region"))
    );

    // The next reminders skip both addresses, and say A is unreachable.
    let chase = w.run(date!(2025 - 06 - 15)).await;
    assert!(chase.unreachable.contains(&a().to_string()), "{chase:?}");
    assert_eq!(w.inbox("gest-a").await.len(), 1);
    assert_eq!(w.inbox("ape-a").await.len(), 1);
    assert_eq!(w.inbox("gest-b").await.len(), 2, "B is chased as before");
    // The ARS's Monday digest names it.
    w.run(date!(2025 - 06 - 16)).await;
    let digest = tdb_testkit::messages_to(&w.email("ars"))
        .await
        .pop()
        .unwrap();
    let text = digest["Body"]["text_part"].as_str().unwrap();
    assert!(
        text.contains("EHPAD Les Tilleuls") && text.contains("adresses électroniques en erreur"),
        "{text}"
    );
    relay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bounce_delivered_many_times_at_once_marks_once_and_loses_no_login() {
    let w = world().await;
    let address = EmailAddress::parse(&w.email("gest-b")).unwrap();
    let message = ses_event("Permanent", address.as_str()).to_string();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (accounts, message) = (w.accounts.clone(), message.clone());
        tasks.push(tokio::spawn(async move {
            remind::feedback::receive(&accounts, &message, 1_750_000_000)
                .await
                .unwrap()
        }));
    }
    // Meanwhile failed logins count on the same account (as the accounts function saves
    // them: conditional on the version, read again on a conflict).
    let logins = {
        let accounts = w.accounts.clone();
        let address = address.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                loop {
                    let account = accounts
                        .account_by_email(&address)
                        .await
                        .unwrap()
                        .unwrap()
                        .account;
                    let next = Account {
                        failed_logins: account.failed_logins + 1,
                        version: account.version + 1,
                        ..account
                    };
                    match accounts.save_account(&next).await {
                        Ok(()) => break,
                        Err(tdb_domain::ports::StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        })
    };
    let mut marked = 0;
    let mut already = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        marked += outcome.marked;
        already += outcome.already;
    }
    logins.await.unwrap();
    assert_eq!((marked, already), (1, 7));
    let account = w
        .accounts
        .account_by_email(&address)
        .await
        .unwrap()
        .unwrap()
        .account;
    assert!(account.undeliverable.is_some());
    assert_eq!(account.failed_logins, 5, "no login count lost");
}
