//! Deciding a day's reminders for a generated campaign of `establishments` against the
//! local stack (DynamoDB Local), against the raw paged listing the decision reads (the
//! same queries, nothing decided), and what sending them would take at a given rate.
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
    });
}
