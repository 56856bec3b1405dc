//! `tdb`: the platform's command line for demos, tests and benchmarks.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use tdb_domain::generator::{GeneratorConfig, generate};
use tdb_domain::questionnaire::builtin;

#[derive(Parser)]
#[command(name = "tdb", about = "TDB-ESMS platform tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[cfg(feature = "lake")]
#[derive(Subcommand)]
enum LakeCommand {
    /// Runs SQL with DataFusion over every campaign's current snapshot in the S3 lake: a
    /// view per table (`indicators`, `benchmarks`, `positions`, `questionnaires_generic`,
    /// `questionnaires_sad`, each with a `campaign` column, and `<table>_<year>`).
    Sql {
        query: String,
        #[arg(long, env = "LAKE_BUCKET")]
        bucket: String,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Generates a synthetic campaign: a referential and one questionnaire per respondent.
    Generate {
        /// Number of establishments (FINESS géographique).
        #[arg(long, default_value_t = 30_000)]
        establishments: usize,
        #[arg(long, default_value_t = 2025)]
        seed: u64,
        /// Campaign year whose shipped definition is answered.
        #[arg(long, default_value_t = 2025)]
        campaign: u16,
        /// Share of questionnaires left incomplete (0-1).
        #[arg(long, default_value_t = 0.15)]
        incomplete: f64,
        /// Share of questionnaires with broken coherence rules (0-1).
        #[arg(long, default_value_t = 0.10)]
        incoherent: f64,
        /// Output folder: referential.json and questionnaires.jsonl are written there.
        #[arg(long)]
        out: PathBuf,
    },
    /// Creates the template's tables, bucket and SES identity on the configured AWS endpoint
    /// (the local stack), and prints the functions' environment as `export` lines.
    Provision {
        #[arg(long, default_value = "tdb-local")]
        stack_name: String,
        #[arg(long, default_value = "tdb-esms@campagne.test")]
        sender: String,
    },
    /// Prints a new RSA signing key for access tokens (PKCS#8 PEM). Keep it as a secret:
    /// in AWS, in the Secrets Manager secret the template's JwtSigningKeySecret names.
    Keygen,
    /// Prints the public keys (JWKS) of signing keys made by `tdb keygen`: the template's
    /// `JwtPublicKeys`. Give the old key and the new one during a rotation (docs/deploy.md).
    Jwks {
        /// The keys' PKCS#8 PEM files.
        #[arg(required = true)]
        keys: Vec<PathBuf>,
    },
    /// Creates a national, regional (ARS) or departmental (CD) administrator account and
    /// e-mails its activation link. Reads the accounts function's environment
    /// (ACCOUNTS_TABLE, LAKE_BUCKET, SENDER_EMAIL, JWT_SIGNING_KEY_SECRET, JWT_ISSUER, JWT_AUDIENCE,
    /// PUBLIC_URL).
    Admin {
        #[arg(long)]
        email: String,
        #[arg(long)]
        last_name: String,
        #[arg(long)]
        first_name: String,
        /// `national`, `region:<code>` (region:84) or `departement:<code>` (departement:69).
        #[arg(long)]
        role: String,
    },
    /// Makes a demo of a generated campaign (for a local stack only): its structures in the
    /// accounts table; last year's campaign (2024) closed, with its outliers' reference and
    /// restitutions' snapshot; this year's (2025) questionnaires in every state; and one demo
    /// login per role (national, ARS, CD, OG's APE, ESMS' APE, Gestionnaire, Lecteur) on the
    /// region with most structures, all with the password printed. Built with
    /// `--features lake`. Running it again creates only what is missing.
    #[cfg(feature = "lake")]
    Demo {
        /// Folder written by `tdb generate`.
        #[arg(long)]
        from: PathBuf,
        #[arg(long, env = "CAMPAIGN_TABLE")]
        campaign_table: String,
        #[arg(long, env = "ACCOUNTS_TABLE")]
        accounts_table: String,
        #[arg(long, env = "LAKE_BUCKET")]
        bucket: String,
    },
    /// Opens a campaign, as `POST /questionnaires/{campaign}/opening` does: a "not started"
    /// questionnaire for every respondent of the referential that has none. Running it
    /// again creates only what is missing. For a national administrator with AWS access;
    /// it has no request time limit.
    Open {
        #[arg(long)]
        campaign: u16,
        #[arg(long, env = "CAMPAIGN_TABLE")]
        table: String,
        #[arg(long, env = "ACCOUNTS_TABLE")]
        accounts_table: String,
    },
    /// Runs a day's reminders as the daily schedule does, for a chosen day (replaying a
    /// window on the local stack): each e-mail goes once, whatever runs before or at the same
    /// time. Reads CAMPAIGN_TABLE, ACCOUNTS_TABLE, SENDER_EMAIL and PUBLIC_URL.
    Remind {
        #[arg(long)]
        campaign: u16,
        /// The day, `YYYY-MM-DD`; today in Paris if absent.
        #[arg(long)]
        date: Option<String>,
        /// Lists the e-mails that would go out, and sends nothing.
        #[arg(long)]
        dry_run: bool,
        /// E-mails a second; the SES account's quota if absent.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Recomputes a campaign's progress counters from its questionnaires and writes them
    /// (for a stack whose questionnaires predate the counters). Run it when nothing writes:
    /// before the opening's saves, or after closure.
    Recount {
        #[arg(long)]
        campaign: u16,
        #[arg(long, env = "CAMPAIGN_TABLE")]
        table: String,
    },
    /// Computes the peer statistics of a campaign's answers (median and spread by category
    /// and item) and stores them in the lake, where the next campaign's checks read them to
    /// flag outliers (docs/outliers.md).
    Peers {
        #[arg(long)]
        campaign: u16,
        #[arg(long, env = "CAMPAIGN_TABLE")]
        table: String,
        #[arg(long, env = "LAKE_BUCKET")]
        bucket: String,
    },
    /// Queries the lake (docs/lake.md); built with `--features lake` only.
    #[cfg(feature = "lake")]
    Lake {
        #[command(subcommand)]
        action: LakeCommand,
    },
    /// Loads generated questionnaires (from `tdb generate`) into the campaign table.
    Load {
        /// Folder written by `tdb generate`.
        #[arg(long)]
        from: PathBuf,
        #[arg(long, env = "CAMPAIGN_TABLE")]
        table: String,
        #[arg(long, default_value_t = 2025)]
        campaign: u16,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Provision { stack_name, sender } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(provision(stack_name, sender))?;
        }
        Command::Keygen => print!("{}", accounts::generate_signing_key()),
        Command::Jwks { keys } => {
            let pems = keys
                .iter()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            println!("{}", accounts::public_key_set(&pems)?);
        }
        Command::Admin {
            email,
            last_name,
            first_name,
            role,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(admin(email, last_name, first_name, role))?;
        }
        #[cfg(feature = "lake")]
        Command::Demo {
            from,
            campaign_table,
            accounts_table,
            bucket,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(demo(from, (campaign_table, accounts_table), bucket))?;
        }
        Command::Open {
            campaign,
            table,
            accounts_table,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(open(campaign, table, accounts_table))?;
        }
        Command::Remind {
            campaign,
            date,
            dry_run,
            rate,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(remind(campaign, date, dry_run, rate))?;
        }
        #[cfg(feature = "lake")]
        Command::Lake {
            action: LakeCommand::Sql { query, bucket },
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(lake_sql(&bucket, &query))?;
        }
        Command::Recount { campaign, table } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(recount(campaign, table))?;
        }
        Command::Peers {
            campaign,
            table,
            bucket,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(peers(campaign, table, bucket))?;
        }
        Command::Load {
            from,
            table,
            campaign,
        } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(load(from, table, campaign))?;
        }
        Command::Generate {
            establishments,
            seed,
            campaign,
            incomplete,
            incoherent,
            out,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&incomplete)
                    && (0.0..=1.0).contains(&incoherent)
                    && incomplete + incoherent <= 1.0,
                "--incomplete and --incoherent are shares between 0 and 1 whose sum is at most 1"
            );
            let definition = builtin::load(campaign)
                .with_context(|| format!("no definition shipped for campaign {campaign}"))??;
            let config = GeneratorConfig {
                establishments,
                seed,
                incomplete_share: incomplete,
                incoherent_share: incoherent,
            };
            let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} questionnaires ({elapsed})",
            )?);
            bar.set_message("generating");
            let started = std::time::Instant::now();
            let generated = generate(&definition, &config, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish();
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let referential = std::fs::File::create(out.join("referential.json"))?;
            serde_json::to_writer(std::io::BufWriter::new(referential), &generated.referential)?;
            let mut lines =
                std::io::BufWriter::new(std::fs::File::create(out.join("questionnaires.jsonl"))?);
            for q in &generated.questionnaires {
                let line = serde_json::json!({ "finess": q.respondent.finess, "respondent": q.respondent.kind, "quality": q.quality, "answers": definition.for_kind(q.respondent.kind).answers_to_json(&q.answers) });
                serde_json::to_writer(&mut lines, &line)?;
                lines.write_all(b"\n")?;
            }
            lines.flush()?;
            println!(
                "{} questionnaires for {} establishments written to {} in {:.2?}",
                generated.questionnaires.len(),
                establishments,
                out.display(),
                started.elapsed()
            );
        }
    }
    Ok(())
}

async fn provision(stack_name: String, sender: String) -> Result<()> {
    let config = tdb_aws::load_config().await;
    let provisioned = tdb_aws::provision::provision_stack(&config, &stack_name, &sender)
        .await
        .context("provisioning the template's resources")?;
    for (key, value) in &provisioned.environment {
        println!("export {key}={value}");
    }
    Ok(())
}

async fn open(campaign: u16, table: String, accounts_table: String) -> Result<()> {
    anyhow::ensure!(
        builtin::YEARS.contains(&campaign),
        "no questionnaire shipped for campaign {campaign}"
    );
    let year = tdb_domain::CampaignYear::new(campaign)?;
    let config = tdb_aws::load_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let questionnaires = tdb_aws::dynamo::CampaignTable::new(client.clone(), table);
    let accounts = tdb_aws::accounts::AccountsTable::new(client, accounts_table);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let started = std::time::Instant::now();
    let summary = collect::open_campaign(&questionnaires, &accounts, year, now, "tdb-open")
        .await?
        .context("another opening of this campaign is running; try again when it is done")?;
    println!(
        "campaign {campaign} opened in {:.1} s: {} questionnaires created, {} already open",
        started.elapsed().as_secs_f64(),
        summary.created,
        summary.already_open
    );
    Ok(())
}

async fn remind(
    campaign: u16,
    date: Option<String>,
    dry_run: bool,
    rate: Option<f64>,
) -> Result<()> {
    let var = |name: &str| {
        std::env::var(name)
            .with_context(|| format!("{name} is not set: source the functions' environment"))
    };
    let aws = tdb_aws::load_config().await;
    let rate = rate.map_or(remind::SendRate::Quota, remind::SendRate::Fixed);
    let reminders = remind::Config::reminders(
        &aws,
        (&var("CAMPAIGN_TABLE")?, &var("ACCOUNTS_TABLE")?),
        tdb_aws::ses::SesMailer::new(aws_sdk_ses::Client::new(&aws), var("SENDER_EMAIL")?)
            .reporting_to(std::env::var("SES_CONFIGURATION_SET").ok()),
        &var("PUBLIC_URL")?,
        rate,
    )?;
    let day = match date {
        Some(date) => tdb_domain::campaign::iso_date::parse(&date)
            .with_context(|| format!("--date {date}: not YYYY-MM-DD"))?,
        None => reminders.today(),
    };
    let summary = reminders
        .run(tdb_domain::CampaignYear::new(campaign)?, day, dry_run)
        .await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

#[cfg(feature = "lake")]
async fn lake_sql(bucket: &str, query: &str) -> Result<()> {
    anyhow::ensure!(
        !bucket.is_empty(),
        "--bucket or LAKE_BUCKET: the lake's bucket"
    );
    let lake = restitute::Lake::from_env(bucket)?;
    let context = lake.session()?;
    lake.attach(&context).await?;
    let batches = context.sql(query).await?.collect().await?;
    println!(
        "{}",
        restitute::datafusion::arrow::util::pretty::pretty_format_batches(&batches)?
    );
    Ok(())
}

async fn recount(campaign: u16, table: String) -> Result<()> {
    use tdb_domain::ports::QuestionnaireStore;
    let year = tdb_domain::CampaignYear::new(campaign)?;
    let config = tdb_aws::load_config().await;
    let store = tdb_aws::dynamo::CampaignTable::new(aws_sdk_dynamodb::Client::new(&config), table);
    let (mut all, mut page) = (Vec::new(), None);
    loop {
        let batch = store.scan(year, page).await?;
        all.extend(batch.items);
        match batch.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let counts = tdb_domain::progress::recount(&all);
    store.replace_progress(year, &counts).await?;
    let mut total = tdb_domain::progress::Counts::default();
    counts.values().for_each(|c| total.add(*c));
    println!(
        "campaign {campaign}: {} questionnaires recounted into {} counters ({} validated)",
        all.len(),
        counts.len(),
        total.all_validated()
    );
    Ok(())
}

async fn peers(campaign: u16, table: String, bucket: String) -> Result<()> {
    use tdb_domain::ports::{Lake, QuestionnaireStore};
    let definitions = builtin::load(campaign)
        .with_context(|| format!("no definition shipped for campaign {campaign}"))??;
    let year = tdb_domain::CampaignYear::new(campaign)?;
    let config = tdb_aws::load_config().await;
    let store = tdb_aws::dynamo::CampaignTable::new(aws_sdk_dynamodb::Client::new(&config), table);
    let started = std::time::Instant::now();
    let mut collector = tdb_domain::outliers::PeerCollector::default();
    let (mut page, mut read) = (None, 0usize);
    loop {
        let batch = store.scan(year, page).await?;
        for q in &batch.items {
            let kind = q.respondent.kind;
            collector.add(definitions.for_kind(kind), kind, &q.answers);
        }
        read += batch.items.len();
        match batch.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    let reference = collector.finish(campaign);
    let items: usize = reference.items.values().map(|m| m.len()).sum();
    let lake = tdb_aws::s3::S3Lake::new(&config, bucket);
    lake.put(
        &validate::peers_key(campaign),
        serde_json::to_vec(&reference)?,
    )
    .await?;
    println!(
        "peer statistics of campaign {campaign}: {read} questionnaires, {items} (category, item) pairs, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn load(from: PathBuf, table: String, campaign: u16) -> Result<()> {
    use std::io::BufRead;
    use tdb_domain::ports::{QuestionnaireStore, StoredQuestionnaire};
    use tdb_domain::{CampaignYear, RespondentKind};
    let definition = builtin::load(campaign)
        .with_context(|| format!("no definition shipped for campaign {campaign}"))??;
    let year = CampaignYear::new(campaign)?;
    let referential: tdb_domain::Referential = serde_json::from_reader(std::io::BufReader::new(
        std::fs::File::open(from.join("referential.json")).context("referential.json")?,
    ))?;
    let config = tdb_aws::load_config().await;
    let store = tdb_aws::dynamo::CampaignTable::new(aws_sdk_dynamodb::Client::new(&config), table);
    let file =
        std::fs::File::open(from.join("questionnaires.jsonl")).context("questionnaires.jsonl")?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()?;
    let bar = ProgressBar::new(lines.len() as u64).with_style(ProgressStyle::with_template(
        "loading [{bar:40}] {pos}/{len} questionnaires ({elapsed})",
    )?);
    let started = std::time::Instant::now();
    for chunk in lines.chunks(500) {
        let mut batch = Vec::with_capacity(chunk.len());
        for line in chunk {
            let row: serde_json::Value = serde_json::from_str(line)?;
            let finess: tdb_domain::Finess = serde_json::from_value(row["finess"].clone())?;
            let kind: RespondentKind = serde_json::from_value(row["respondent"].clone())?;
            let answers = row["answers"].as_object().cloned().unwrap_or_default();
            let og = match kind {
                RespondentKind::Og => None,
                RespondentKind::Esms(_) => referential.og_of(&finess).map(|o| o.finess),
            };
            let updated_at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            let q = StoredQuestionnaire::loaded(
                definition.for_kind(kind),
                year,
                tdb_domain::Respondent { finess, kind },
                og,
                answers,
                updated_at,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            batch.push(q);
        }
        store.create(&batch).await?;
        bar.inc(batch.len() as u64);
    }
    bar.finish();
    println!(
        "{} questionnaires loaded in {:.2?}",
        lines.len(),
        started.elapsed()
    );
    Ok(())
}

fn parse_role(role: &str) -> Result<tdb_domain::rights::Role> {
    use tdb_domain::rights::Role;
    use tdb_domain::{Departement, Region};
    match role.split_once(':') {
        None if role == "national" => Ok(Role::NationalAdmin),
        Some(("region", code)) => Ok(Role::RegionalAdmin {
            region: code
                .parse()
                .ok()
                .and_then(Region::from_code)
                .with_context(|| format!("unknown region code `{code}`"))?,
        }),
        Some(("departement", code)) => Ok(Role::DepartementalAdmin {
            departement: Departement::from_code(code)
                .with_context(|| format!("unknown département code `{code}`"))?,
        }),
        _ => anyhow::bail!("--role: expected national, region:<code> or departement:<code>"),
    }
}

async fn admin(email: String, last_name: String, first_name: String, role: String) -> Result<()> {
    let role = parse_role(&role)?;
    // The accounts function's own configuration, signing key read from Secrets Manager.
    let config = tdb_aws::load_config().await;
    let app = accounts::Config::from_env()?.app(&config).await?;
    let email = tdb_domain::email::EmailAddress::parse(&email).context("--email")?;
    let person = tdb_domain::accounts::Person {
        last_name,
        first_name,
        phone: None,
    };
    let id = app
        .add_administrator(&email, person, role)
        .await
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    println!("administrator account {id} ready (a new account gets its activation link by e-mail)");
    Ok(())
}

/// The password of every demo account (local stacks only).
#[cfg(feature = "lake")]
const DEMO_PASSWORD: &str = "une visite du tableau de bord";

/// Unix seconds at midday (UTC) of a day.
#[cfg(feature = "lake")]
fn midday(year: i32, month: u8, day: u8) -> Result<i64> {
    let month = time::Month::try_from(month)?;
    Ok(time::Date::from_calendar_date(year, month, day)?
        .with_hms(12, 0, 0)?
        .assume_utc()
        .unix_timestamp())
}

#[cfg(feature = "lake")]
async fn demo(from: PathBuf, tables: (String, String), bucket: String) -> Result<()> {
    use std::collections::HashMap;
    use tdb_domain::accounts::{Account, AccountId, Person, StructureRecord};
    use tdb_domain::demo::{Stage, Steps, take_to};
    use tdb_domain::email::EmailAddress;
    use tdb_domain::generator::{GeneratorConfig, answer};
    use tdb_domain::ports::{AccountStore, QuestionnaireStore, StoredQuestionnaire};
    use tdb_domain::rights::{Profile, Role};
    use tdb_domain::{CampaignYear, Finess, RespondentKind};

    let (campaign_table, accounts_table) = tables;
    let definitions = builtin::load(2025).context("the 2025 definition")??;
    let (this_year, last_year) = (CampaignYear::new(2025)?, CampaignYear::new(2024)?);
    let referential: tdb_domain::Referential = serde_json::from_reader(std::io::BufReader::new(
        std::fs::File::open(from.join("referential.json")).context("referential.json")?,
    ))?;
    let config = tdb_aws::load_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let store = tdb_aws::accounts::AccountsTable::new(client.clone(), accounts_table);
    let campaign = tdb_aws::dynamo::CampaignTable::new(client, campaign_table);

    // The structures, as the referential's import writes them.
    let structures = StructureRecord::from_referential(&referential);
    let finess: Vec<Finess> = structures.iter().map(|s| s.finess).collect();
    let existing: std::collections::HashSet<Finess> = store
        .structures(&finess)
        .await?
        .into_iter()
        .map(|s| s.finess)
        .collect();
    let new: Vec<StructureRecord> = structures
        .iter()
        .filter(|s| !existing.contains(&s.finess))
        .cloned()
        .collect();
    store.create_structures(&new).await?;
    println!(
        "{} structures in the accounts table ({} new)",
        structures.len(),
        new.len()
    );

    // This year's answers (`tdb generate`), and last year's: the same structures answering
    // the same questionnaire (no 2024 definition is shipped: 2025's stands for it), complete.
    let lines = std::fs::read_to_string(from.join("questionnaires.jsonl"))
        .context("questionnaires.jsonl")?;
    let mut answered = Vec::new();
    for line in lines.lines() {
        let row: serde_json::Value = serde_json::from_str(line)?;
        let finess: Finess = serde_json::from_value(row["finess"].clone())?;
        let kind: RespondentKind = serde_json::from_value(row["respondent"].clone())?;
        let answers = row["answers"].as_object().cloned().unwrap_or_default();
        answered.push((tdb_domain::Respondent { finess, kind }, answers));
    }
    let last = answer(
        &definitions,
        &referential,
        &GeneratorConfig {
            seed: 2024,
            incomplete_share: 0.0,
            incoherent_share: 0.0,
            ..GeneratorConfig::default()
        },
    );
    let previous: HashMap<Finess, _> = last
        .iter()
        .map(|q| (q.respondent.finess, &q.answers))
        .collect();
    let og_of = |respondent: &tdb_domain::Respondent| match respondent.kind {
        RespondentKind::Og => None,
        RespondentKind::Esms(_) => referential.og_of(&respondent.finess).map(|o| o.finess),
    };

    // The demo ESMS: one whose questionnaire, on the generic platform, can be validated as
    // generated (so that the README's tour goes through), managed by an OG of at least two
    // ESMS; preferably in the region with most respondents, and a nursing home (the
    // category most structures are). Its region is the demo region.
    let mut by_region: HashMap<tdb_domain::Region, usize> = HashMap::new();
    for (respondent, _) in &answered {
        if let Some(region) = respondent.finess.departement().region() {
            *by_region.entry(region).or_default() += 1;
        }
    }
    let largest = by_region
        .iter()
        .max_by_key(|(region, n)| (**n, std::cmp::Reverse(region.code())))
        .map(|(region, _)| *region);
    let validable = |respondent: &tdb_domain::Respondent,
                     answers: &serde_json::Map<String, serde_json::Value>| {
        let definition = definitions.for_kind(respondent.kind);
        let parsed = definition.carry_over(respondent.kind, answers);
        let evaluation = definition.evaluate(
            respondent.kind,
            &parsed,
            previous.get(&respondent.finess).copied(),
        );
        evaluation.violations.is_empty()
            && definition.parts_for(respondent.kind).all(|part| {
                tdb_domain::workflow::obstacles(
                    definition,
                    &evaluation,
                    &Default::default(),
                    &part.id,
                )
                .is_empty()
            })
    };
    let (og, esms) = referential
        .ogs()
        .flat_map(|og| {
            let esms: Vec<_> = referential
                .establishments_of(&og.finess)
                .filter(|e| e.gets_questionnaire())
                .collect();
            let managed = esms.len();
            esms.into_iter()
                .filter(move |_| managed >= 2)
                .map(move |e| (og, e))
        })
        .filter(|(_, e)| {
            RespondentKind::Esms(e.category).platform() == tdb_domain::campaign::Platform::Generic
                && answered
                    .iter()
                    .any(|(r, answers)| r.finess == e.finess && validable(r, answers))
        })
        .min_by_key(|(_, e)| {
            (
                e.region() != largest,
                e.category != tdb_domain::Category::Ehpad,
            )
        })
        .context("no OG's ESMS to validate in the generated campaign: generate more")?;
    let region = esms.region().context("the demo ESMS' region")?;

    // One demo login per role, on the demo OG, ESMS and territory.
    let departement = esms.departement();
    let accounts = [
        ("national", Role::NationalAdmin),
        ("ars", Role::RegionalAdmin { region }),
        ("cd", Role::DepartementalAdmin { departement }),
        (
            "ape-og",
            Role::Ape {
                structure: og.finess,
            },
        ),
        (
            "ape-esms",
            Role::Ape {
                structure: esms.finess,
            },
        ),
        (
            "gestionnaire",
            Role::Member {
                structure: esms.finess,
                profile: Profile::Gestionnaire,
            },
        ),
        (
            "lecteur",
            Role::Member {
                structure: esms.finess,
                profile: Profile::Lecteur,
            },
        ),
    ];
    let mut ids = HashMap::new();
    let mut logins = Vec::new();
    for (who, role) in accounts {
        let email = EmailAddress::parse(&format!("{who}@demo.tdb-esms.test"))?;
        let id = match store.account_by_email(&email).await? {
            Some(account) => account.account.id,
            None => {
                let account = Account {
                    password_hash: Some(accounts::secrets::hash_password(DEMO_PASSWORD)),
                    ..Account::new(
                        AccountId::from_random(accounts::secrets::random_bytes()),
                        email.clone(),
                        Person {
                            last_name: "Démo".into(),
                            first_name: who.into(),
                            phone: None,
                        },
                        0,
                    )
                };
                store.create_account(&account, &role).await?;
                account.id
            }
        };
        ids.insert(who, id.to_string());
        let on = match role {
            Role::NationalAdmin => "national administrator".to_string(),
            Role::RegionalAdmin { region } => {
                format!("ARS of region {} ({})", region.code(), region.name())
            }
            Role::DepartementalAdmin { departement } => {
                format!("CD of département {}", departement.insee_code())
            }
            Role::Ape { structure } | Role::Member { structure, .. } => {
                let kind = match referential.establishment(&structure) {
                    Some(e) => e.category.key().to_string(),
                    None => "OG".into(),
                };
                format!("{who} of {structure} ({kind})")
            }
        };
        logins.push(format!("  {:<40} {on}", email.as_str()));
    }

    // Last year's campaign, closed: every questionnaire validated in June and checked in
    // July, the closure recorded, the outliers' reference and the restitutions' snapshot.
    let steps = Steps {
        structure: "demo-structure".into(),
        territory: ids["ars"].clone(),
        validated_at: midday(2024, 6, 20)?,
        reviewed_at: midday(2024, 7, 10)?,
    };
    let mut closed = Vec::with_capacity(last.len());
    let mut collector = tdb_domain::outliers::PeerCollector::default();
    for q in &last {
        let definition = definitions.for_kind(q.respondent.kind);
        let answers = definition.answers_to_json(&q.answers);
        collector.add(definition, q.respondent.kind, &answers);
        let mut stored = StoredQuestionnaire::loaded(
            definition,
            last_year,
            q.respondent,
            og_of(&q.respondent),
            answers,
            steps.validated_at,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        take_to(&mut stored, definition, None, Stage::Checked, &steps);
        closed.push(stored);
    }
    campaign.create(&closed).await?;
    let closed_at = midday(2024, 9, 1)?;
    for platform in tdb_domain::campaign::Platform::ALL {
        let mut counts = tdb_domain::progress::Counts::default();
        for (key, c) in tdb_domain::progress::recount(&closed) {
            if key.kind.platform() == platform {
                counts.add(c);
            }
        }
        let closure = tdb_domain::workflow::Closure {
            by: ids["national"].clone(),
            at: closed_at,
            counts,
        };
        campaign.close(last_year, platform, &closure).await?;
    }
    let reference = collector.finish(last_year.value());
    let lake = restitute::Lake::from_env(&bucket)?;
    lake.put(
        &validate::peers_key(last_year.value()),
        serde_json::to_vec(&reference)?,
    )
    .await?;
    let snapshot = restitute::snapshot::take(
        &campaign,
        &store,
        &definitions,
        &lake,
        last_year,
        restitute::SnapshotKind::Final,
        closed_at,
    )
    .await?;
    println!(
        "campaign 2024: {} questionnaires, closed, snapshot {} in the lake",
        closed.len(),
        snapshot.manifest.snapshot
    );

    // This year's, in every state: validations in June, the ARS's reopenings and checks in
    // July. The demo OG and ESMS are in progress, for the tour.
    let steps = Steps {
        structure: "demo-structure".into(),
        territory: ids["ars"].clone(),
        validated_at: midday(2025, 6, 20)?,
        reviewed_at: midday(2025, 7, 8)?,
    };
    let mut current = Vec::with_capacity(answered.len());
    let mut reached: HashMap<Stage, usize> = HashMap::new();
    for (n, (respondent, answers)) in answered.into_iter().enumerate() {
        let definition = definitions.for_kind(respondent.kind);
        let mut stored = StoredQuestionnaire::loaded(
            definition,
            this_year,
            respondent,
            og_of(&respondent),
            answers,
            midday(2025, 6, 2)?,
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        let aimed = match Stage::aimed_at(n) {
            _ if [og.finess, esms.finess].contains(&respondent.finess) => Stage::InProgress,
            // The SAD platform collects until 31 July: no reopening or check before.
            Stage::Reopened | Stage::Checked
                if respondent.kind.platform() == tdb_domain::campaign::Platform::Sad =>
            {
                Stage::Validated
            }
            aimed => aimed,
        };
        let last = previous.get(&respondent.finess).copied();
        let stage = take_to(&mut stored, definition, last, aimed, &steps);
        stored.outliers = reference.outliers(respondent.kind, &stored.answers).len() as u32;
        if respondent.finess.departement().region() == Some(region) {
            *reached.entry(stage).or_default() += 1;
        }
        current.push(stored);
    }
    campaign.create(&current).await?;
    let count = |stage| reached.get(&stage).copied().unwrap_or(0);
    println!(
        "campaign 2025: {} questionnaires; in region {} ({}): {} not started, {} in progress, {} validated, {} reopened, {} checked",
        current.len(),
        region.code(),
        region.name(),
        count(Stage::NotStarted),
        count(Stage::InProgress),
        count(Stage::Validated),
        count(Stage::Reopened),
        count(Stage::Checked),
    );

    println!("\nDemo logins (password for all: \"{DEMO_PASSWORD}\"):");
    for line in logins {
        println!("{line}");
    }
    Ok(())
}
