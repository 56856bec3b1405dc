//! Deciding a day's reminders for a generated campaign of `establishments` against the
//! local stack (DynamoDB Local), against the raw paged listing the decision reads (the
//! same queries, nothing decided), and what sending them would take at a given rate.
//! Then sending, measured: a smaller campaign whose every structure has an active APE,
//! reminded through LocalStack's SES, unpaced against as many raw `SendEmail` calls, and
//! paced at a chosen rate against that rate.
//!
//! `cargo bench -p remind --bench decide` (30,000 establishments; the local stack must be
//! started). Under `cargo test` it runs small, to prove it still works.

use std::time::Instant;
use tdb_aws::accounts::AccountsTable;
use tdb_aws::dynamo::CampaignTable;
use tdb_domain::Departement;
use tdb_domain::accounts::StructureRecord;
use tdb_domain::campaign::CampaignYear;
use tdb_domain::generator::{GeneratorConfig, generate_referential};
use tdb_domain::ports::{AccountStore, QuestionnaireStore};
use time::macros::date;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let establishments = if full { 30_000 } else { 500 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        tdb_testkit::local_endpoint();
        let config = tdb_aws::load_config().await;
        let stack = tdb_testkit::unique_name("rbench");
        let provisioned =
            tdb_aws::provision::provision_stack(&config, &stack, "bench@tdb-esms.test")
                .await
                .expect("the local stack answers: is it started?");
        let dynamo = aws_sdk_dynamodb::Client::new(&config);
        let campaign =
            CampaignTable::new(dynamo.clone(), &provisioned.environment["CAMPAIGN_TABLE"]);
        let accounts = AccountsTable::new(dynamo, &provisioned.environment["ACCOUNTS_TABLE"]);
        let referential = generate_referential(&GeneratorConfig {
            establishments,
            seed: 2025,
            ..Default::default()
        });
        accounts
            .create_structures(&StructureRecord::from_referential(&referential))
            .await
            .unwrap();
        let year = CampaignYear::new(2025).unwrap();
        let opened = collect::open_campaign(&campaign, &accounts, year, 0, "bench")
            .await
            .unwrap()
            .unwrap();
        let reminders = remind::Reminders::new(
            campaign.clone(),
            accounts,
            tdb_domain::fakes::MemoryMailer::default(),
            tdb_api::shipped_campaigns().unwrap(),
            tdb_api::system_clock(),
            remind::SendRate::Fixed(1000.0),
            "https://tdb.example",
        );
        // 15 June 2025: fifteen days before the generic deadline, every structure concerned.
        let day = date!(2025 - 06 - 15);
        let mut ours = Vec::new();
        let mut reference = Vec::new();
        let mut decided = None;
        for _ in 0..3 {
            let t = Instant::now();
            decided = Some(reminders.decide(year, day).await.unwrap());
            ours.push(t.elapsed());
            let t = Instant::now();
            for d in Departement::all() {
                let mut page = None;
                loop {
                    let p = campaign
                        .list_by_departement(year, d, None, page, 200)
                        .await
                        .unwrap();
                    match p.next {
                        Some(next) => page = Some(next),
                        None => break,
                    }
                }
            }
            reference.push(t.elapsed());
        }
        ours.sort();
        reference.sort();
        let decision = decided.unwrap();
        let (ours, reference) = (ours[1], reference[1]);
        println!(
            "deciding 15 June 2025's reminders for {} questionnaires: {:.2} s (median of 3, target under 5 s); \
             the same listing raw: {:.2} s (ratio {:.2}); {} structures concerned, {} OG digests",
            opened.created,
            ours.as_secs_f64(),
            reference.as_secs_f64(),
            ours.as_secs_f64() / reference.as_secs_f64(),
            decision.structures.len(),
            decision.late_by_og.len()
        );
        // About two recipients a structure (an APE and a Gestionnaire).
        let emails = 2 * (decision.structures.len() + decision.late_by_og.len());
        for rate in [14.0, 50.0, 200.0] {
            let minutes = emails as f64 / rate / 60.0;
            println!(
                "  sending about {emails} e-mails at {rate} a second: {minutes:.0} min{}",
                if minutes > 14.0 {
                    " (more than one 15-minute invocation)"
                } else {
                    ""
                }
            );
        }
        sending(&config).await;
    });
}

/// A run's sending, measured on `STRUCTURES` structures with one active APE each.
async fn sending(config: &aws_config::SdkConfig) {
    use tdb_domain::accounts::{Account, AccountId, Person};
    use tdb_domain::rights::Role;
    const STRUCTURES: usize = 300;
    let stack = tdb_testkit::unique_name("rsend");
    let sender = "bench@tdb-esms.test";
    let provisioned = tdb_aws::provision::provision_stack(config, &stack, sender)
        .await
        .unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let campaign = CampaignTable::new(dynamo.clone(), &provisioned.environment["CAMPAIGN_TABLE"]);
    let accounts = AccountsTable::new(dynamo, &provisioned.environment["ACCOUNTS_TABLE"]);
    let referential = generate_referential(&GeneratorConfig {
        establishments: STRUCTURES,
        seed: 7,
        ..Default::default()
    });
    let records = StructureRecord::from_referential(&referential);
    accounts.create_structures(&records).await.unwrap();
    for (n, record) in records.iter().enumerate() {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
        let mut account = Account::new(
            AccountId::from_random(id),
            tdb_domain::email::EmailAddress::parse(&format!("ape{n}.{stack}@exemple.fr")).unwrap(),
            Person {
                last_name: "Banc".into(),
                first_name: "Essai".into(),
                phone: None,
            },
            0,
        );
        account.password_hash = Some("hash".into());
        accounts
            .create_account(
                &account,
                &Role::Ape {
                    structure: record.finess,
                },
            )
            .await
            .unwrap();
    }
    let year = CampaignYear::new(2025).unwrap();
    collect::open_campaign(&campaign, &accounts, year, 0, "bench")
        .await
        .unwrap()
        .unwrap();
    let ses = || {
        tdb_aws::ses::SesMailer::new(aws_sdk_ses::Client::new(config), sender).reporting_to(Some(
            provisioned.environment["SES_CONFIGURATION_SET"].clone(),
        ))
    };
    let reminders = |rate: f64| {
        remind::Reminders::new(
            campaign.clone(),
            accounts.clone(),
            ses(),
            tdb_api::shipped_campaigns().unwrap(),
            tdb_api::system_clock(),
            remind::SendRate::Fixed(rate),
            "https://tdb.example",
        )
    };
    // Two days that remind every structure: unpaced, then at 20 a second.
    let t = Instant::now();
    let unpaced = reminders(100_000.0)
        .run(year, date!(2025 - 06 - 15), false)
        .await
        .unwrap();
    let ours = t.elapsed().as_secs_f64();
    // The reference: as many raw SendEmail calls, one after the other.
    let raw = ses();
    let email = tdb_domain::ports::Email {
        to: tdb_domain::email::EmailAddress::parse("raw@exemple.fr").unwrap(),
        subject: "Relance".into(),
        text: "Texte".into(),
        html: Some("<p>Texte</p>".into()),
    };
    let t = Instant::now();
    for _ in 0..unpaced.sent {
        tdb_domain::ports::Mailer::send(&raw, &email).await.unwrap();
    }
    let reference = t.elapsed().as_secs_f64();
    println!(
        "sending a run's {} e-mails through LocalStack's SES, unpaced: {:.0} e-mails/s (claim, render, send, settle) \
         against {:.0} raw SendEmail/s (ratio {:.2})",
        unpaced.sent,
        unpaced.sent as f64 / ours,
        unpaced.sent as f64 / reference,
        reference / ours
    );
    let rate = 20.0;
    let t = Instant::now();
    let paced = reminders(rate)
        .run(year, date!(2025 - 06 - 23), false)
        .await
        .unwrap();
    let achieved = paced.sent as f64 / t.elapsed().as_secs_f64();
    println!(
        "  paced at {rate} a second: {} e-mails at {achieved:.1} a second (ratio to the rate {:.2})",
        paced.sent,
        achieved / rate
    );
}
