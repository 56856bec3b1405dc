//! The remind function (domain §3, docs/reminders.md): each day of a campaign's
//! collection and fiabilisation, the reminders its platforms' policies call for, to the
//! APE and Gestionnaires of the structures they concern, each sent once.
//!
//! A run lists the questionnaires by département (the by-territory index: status and each
//! part's status, never the answers), decides who is concerned, and for each recipient
//! claims the send in the send log, sends it through SES at the quota's rate, and records
//! how it went. A failed send is claimed again by the next run; a sent one, or one that
//! may have left (a run stopped between SES and the log), never.

mod config;
pub mod feedback;
mod http;
pub mod mail;

use futures_util::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use tdb_api::{ApiError, Caller, Campaigns, Structures, TokenVerifier};
use tdb_domain::accounts::{Account, AccountId, StructureRecord};
use tdb_domain::campaign::CampaignYear;
use tdb_domain::ports::{
    AccountStore, Claim, Email, MailError, Mailer, ProgressEntry, QuestionnaireStore, SendKey,
    SendLog, SendOutcome, StoreError,
};
use tdb_domain::progress::Counts;
use tdb_domain::questionnaire::CampaignDefinitions;
use tdb_domain::reminders::{Occasion, occasions};
use tdb_domain::rights::{Action, Profile, Role, Target, Territory};
use tdb_domain::{Departement, Finess};
use time::Date;

pub use config::{Config, ConfigError};
pub use http::{OPENAPI_PATH, router};
pub use tdb_api::{Clock, system_clock};

/// How fast e-mails may go out.
#[derive(Debug, Clone, Copy)]
pub enum SendRate {
    /// The SES account's quota (`GetSendQuota`), read at the start of each run.
    Quota,
    /// A fixed rate, per second (tests, and the local stack whose quota is 1 a second).
    Fixed(f64),
}

/// The reminders engine: the schedule, `tdb remind` and the API run it.
pub struct Reminders<Q, S, M> {
    questionnaires: Q,
    accounts: S,
    mailer: M,
    campaigns: Campaigns,
    structures: Structures,
    clock: Clock,
    rate: SendRate,
    /// The web application's address: links point at `<public_url>/questionnaires/...`.
    public_url: String,
    /// When the next e-mail may leave: sends start at the rate's interval, the time SES
    /// takes to answer included (a run's and the on-demand requests' of this instance).
    next_send: std::sync::Mutex<tokio::time::Instant>,
}

/// The engine behind the API, which checks tokens.
pub struct App<Q, S, M> {
    pub reminders: Reminders<Q, S, M>,
    verifier: TokenVerifier,
}

impl<Q, S, M> tdb_api::HasVerifier for App<Q, S, M> {
    fn token_verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

impl<Q: QuestionnaireStore + SendLog, S: AccountStore, M: Mailer> App<Q, S, M> {
    pub fn new(reminders: Reminders<Q, S, M>, verifier: TokenVerifier) -> App<Q, S, M> {
        App {
            reminders,
            verifier,
        }
    }

    /// Reminds chosen structures now (an OG its ESMS, an ARS or a CD its territory's): at
    /// most one on-demand reminder per structure and day.
    pub(crate) async fn remind_now(
        &self,
        caller: &Caller,
        year: u16,
        request: OnDemandRequest,
    ) -> Result<OnDemandSummary, ApiError> {
        // Each structure is answered within the request: a few dozen at a time.
        const MAX: usize = 50;
        if request.finess.len() > MAX {
            return Err(ApiError::invalid(
                "finess",
                format!("at most {MAX} structures"),
            ));
        }
        let r = &self.reminders;
        let caller = caller.clone().current(&r.accounts).await?;
        let (year, definitions) = r.campaigns.year(year)?;
        let day = r.today();
        let interval = r.interval().await;
        let mut lines = Vec::new();
        for finess in request.finess {
            let line = |outcome, emails, last_sent_at| OnDemandLine {
                finess: finess.clone(),
                outcome,
                emails,
                last_sent_at,
            };
            let Ok(structure) = r.structures.respondent(&r.accounts, &finess).await else {
                lines.push(line("unknown", 0, None));
                continue;
            };
            if caller
                .authorize(Action::Remind, &Target::Structure(structure.target()))
                .is_err()
            {
                lines.push(line("forbidden", 0, None));
                continue;
            }
            let definition = definitions.for_kind(structure.kind);
            if !definition
                .campaign()
                .phase_on(day)
                .allows(tdb_domain::campaign::Activity::Remind)
            {
                lines.push(line("outside_collection", 0, None));
                continue;
            }
            let Some(stored) = r
                .questionnaires
                .get(year, structure.finess)
                .await
                .map_err(ApiError::from_store)?
            else {
                lines.push(line("unknown", 0, None));
                continue;
            };
            let entry = ProgressEntry::of(&stored);
            if !Occasion::OnDemand.concerns(entry.status) {
                lines.push(line("validated", 0, None));
                continue;
            }
            let earlier = r
                .questionnaires
                .sends(year, &structure.finess.to_string())
                .await
                .map_err(ApiError::from_store)?
                .into_iter()
                .filter(|s| {
                    s.key.day == day
                        && s.key.occasion == Occasion::OnDemand.key()
                        && matches!(s.outcome, SendOutcome::Sent { .. })
                })
                .map(|s| s.at)
                .max();
            if earlier.is_some() {
                lines.push(line("already_reminded_today", 0, earlier));
                continue;
            }
            let mut summary = RunSummary::default();
            r.remind(
                year,
                day,
                definition,
                &entry,
                &[&Occasion::OnDemand],
                false,
                interval,
                &mut summary,
            )
            .await
            .map_err(ApiError::from_store)?;
            lines.push(if !summary.unreachable.is_empty() {
                line("unreachable", 0, None)
            } else if summary.sent == 0 && summary.failed == 0 {
                // Another request sent them at the same moment.
                line("already_reminded_today", 0, None)
            } else {
                line("sent", summary.sent, None)
            });
        }
        tracing::info!(structures = lines.len(), by = %caller.account, "reminders on demand");
        Ok(OnDemandSummary { structures: lines })
    }

    /// The structures of a territory nobody can be reminded at (its ARS, its CD, or the
    /// national administrator).
    pub(crate) async fn unreachable_in(
        &self,
        caller: &Caller,
        scope: &tdb_api::Scope,
    ) -> Result<Vec<UnreachableStructure>, ApiError> {
        let r = &self.reminders;
        let caller = caller.clone().current(&r.accounts).await?;
        caller.authorize(Action::FollowProgress, &scope.target)?;
        Ok(r.unreachable_by_departement(&scope.departements)
            .await
            .map_err(ApiError::from_store)?
            .into_values()
            .flatten()
            .collect())
    }

    /// A run asked through the API (national administrator), for today.
    pub(crate) async fn run_requested(
        &self,
        caller: &Caller,
        year: u16,
        dry_run: bool,
    ) -> Result<RunSummary, ApiError> {
        let r = &self.reminders;
        let caller = caller.clone().current(&r.accounts).await?;
        caller.authorize(Action::Remind, &Target::National)?;
        let (year, _) = r.campaigns.year(year)?;
        // Within the API's 30 seconds: what is left goes with the next scheduled run.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        r.run_until(year, r.today(), dry_run, Some(deadline))
            .await
            .map_err(ApiError::from_store)
    }
}

/// One unit of a run's sending: a structure's reminders, or an OG's digest (by index).
#[derive(Clone, Copy)]
enum Task {
    Structure(usize),
    OgDigest(usize),
}

/// What a run did (or, dry, would do).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RunSummary {
    /// ISO date of the day the run reminded for.
    pub day: String,
    /// The occasions of the day, by platform (`generic`, `sad`).
    #[schema(value_type = Object)]
    pub occasions: BTreeMap<String, Vec<String>>,
    /// Structures concerned by at least one occasion.
    pub structures: usize,
    /// E-mails this run sent.
    pub sent: usize,
    /// E-mails that had gone out already (an earlier or overlapping run).
    pub already_sent: usize,
    /// E-mails another run is sending, or that may have left when a run stopped: never
    /// repeated.
    pub in_flight: usize,
    /// E-mails SES refused or that failed: the next run tries them again.
    pub failed: usize,
    /// Structures concerned that have nobody to write to (no active APE or Gestionnaire).
    pub unreachable: Vec<String>,
    /// Structures and OG digests left when the run's time ran out: the next run of the day
    /// sends them.
    pub remaining: usize,
    /// Dry run: the e-mails that would go out, with recipients and subjects (the first
    /// 1,000; `planned_total` counts them all).
    pub planned: Vec<PlannedEmail>,
    pub planned_total: usize,
}

impl RunSummary {
    /// Adds the counts of a part of the run (a structure's reminders, an OG's digest).
    fn absorb(&mut self, part: RunSummary) {
        self.sent += part.sent;
        self.already_sent += part.already_sent;
        self.in_flight += part.in_flight;
        self.failed += part.failed;
        self.remaining += part.remaining;
        self.unreachable.extend(part.unreachable);
        self.planned_total += part.planned_total;
        let room = PLANNED_LISTED.saturating_sub(self.planned.len());
        self.planned.extend(part.planned.into_iter().take(room));
    }
}

/// How many of a dry run's e-mails its summary lists.
const PLANNED_LISTED: usize = 1000;

/// How many structures a run reminds at once: enough that sends of about 200 ms each
/// (a claim, SES, a record) keep up with the rate, at most 16.
fn workers(interval: Duration) -> usize {
    let per_second = 1.0 / interval.as_secs_f64().max(1e-6);
    ((per_second / 5.0).ceil() as usize).clamp(1, 16)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlannedEmail {
    pub finess: String,
    pub occasion: String,
    pub to: String,
    pub subject: String,
}

/// `POST /reminders/{campaign}`: remind these structures now.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnDemandRequest {
    /// FINESS of the structures (at most 50).
    pub finess: Vec<String>,
}

/// What happened to one structure of an on-demand reminder.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnDemandLine {
    pub finess: String,
    /// `sent`, `already_reminded_today` (see `last_sent_at`), `validated` (nothing to
    /// chase), `unreachable` (nobody to write to), `forbidden` (outside the caller's OG or
    /// territory), `unknown` (not a FINESS with a questionnaire), `outside_collection`
    /// (its platform's collection and fiabilisation are not on).
    pub outcome: &'static str,
    /// E-mails sent now.
    pub emails: usize,
    /// Unix seconds of today's earlier on-demand reminder.
    pub last_sent_at: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnDemandSummary {
    pub structures: Vec<OnDemandLine>,
}

/// A structure nobody can be reminded at, as its ARS and CD see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnreachableStructure {
    pub finess: String,
    pub name: String,
    pub departement: String,
    /// `no_ape`: no APE, and no Gestionnaire to write to; `no_active_account`: none of its
    /// APE and Gestionnaires activated an account; `addresses_rejected`: none takes mail,
    /// and SES reported the address of at least one of them (a bounce or a complaint).
    pub reason: &'static str,
    /// Unix seconds of the latest bounce or complaint (`addresses_rejected`).
    pub since: Option<i64>,
}

impl UnreachableStructure {
    /// The line of a territory's digest.
    fn french(&self) -> String {
        let why = match self.reason {
            "no_ape" => "aucun APE enregistré",
            "addresses_rejected" => "adresses électroniques en erreur",
            _ => "aucun compte activé",
        };
        format!("{} (FINESS {}) : {why}", self.name, self.finess)
    }
}

/// What a day calls for.
#[derive(Debug, Default)]
pub struct Decision {
    /// The occasions of the day, by platform.
    pub occasions: BTreeMap<String, Vec<String>>,
    /// Each concerned structure's listing line, with its occasions.
    pub structures: Vec<(ProgressEntry, Vec<Occasion>)>,
    /// Each OG's late ESMS (for its digest).
    pub late_by_og: BTreeMap<Finess, Vec<ProgressEntry>>,
    /// The ARS's and CD's weekly digests are due.
    pub territory_digest: bool,
}

/// Whose members get an e-mail, and how the send log names it.
struct Recipients {
    /// Who receives it: a structure's (or OG's) APE and Gestionnaires, or a territory's
    /// administrators.
    who: Who,
    /// The send log's subject: the structure's FINESS, `og-<FINESS>` for an OG's digest,
    /// `region-<code>` or `dep-<code>` for a territory's.
    subject: String,
    occasion: String,
}

#[derive(Clone, Copy)]
enum Who {
    Members(Finess),
    Administrators(Territory),
}

/// `dd/mm/yyyy`, as French readers write a date.
fn french(day: Date) -> String {
    format!(
        "{:02}/{:02}/{}",
        day.day(),
        u8::from(day.month()),
        day.year()
    )
}

impl<Q: QuestionnaireStore + SendLog, S: AccountStore, M: Mailer> Reminders<Q, S, M> {
    pub fn new(
        questionnaires: Q,
        accounts: S,
        mailer: M,
        campaigns: BTreeMap<CampaignYear, CampaignDefinitions>,
        clock: Clock,
        rate: SendRate,
        public_url: impl Into<String>,
    ) -> Reminders<Q, S, M> {
        Reminders {
            questionnaires,
            accounts,
            mailer,
            campaigns: Campaigns::new(campaigns),
            structures: Structures::default(),
            clock,
            rate,
            public_url: public_url.into(),
            next_send: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// The structures of `departement` nobody can be reminded at: none of their APE and
    /// Gestionnaires has an active account whose address takes mail. Reads the département's
    /// structures, their APE's accounts, and the members of those whose APE cannot be written
    /// to (or who have none).
    pub async fn unreachable(
        &self,
        departement: Departement,
    ) -> Result<Vec<UnreachableStructure>, StoreError> {
        // A secondary establishment's data go into its principal's questionnaire.
        let structures: Vec<StructureRecord> = self
            .accounts
            .structures_of_departement(departement)
            .await?
            .into_iter()
            .filter(|s| s.principal.is_none())
            .collect();
        let apes: Vec<AccountId> = structures.iter().filter_map(|s| s.ape.clone()).collect();
        let reached: std::collections::BTreeSet<AccountId> = self
            .accounts
            .accounts(&apes)
            .await?
            .into_iter()
            .filter(Account::receives_reminders)
            .map(|a| a.id)
            .collect();
        let mut unreachable = Vec::new();
        for structure in structures {
            if structure
                .ape
                .as_ref()
                .is_some_and(|ape| reached.contains(ape))
            {
                continue;
            }
            // Without a reachable APE: perhaps a Gestionnaire.
            let recipients = self.recipients(Who::Members(structure.finess)).await?;
            if recipients.iter().any(Account::receives_reminders) {
                continue;
            }
            let since = recipients
                .iter()
                .filter_map(|a| a.undeliverable.map(|u| u.at))
                .max();
            let reason = match (since, &structure.ape) {
                (Some(_), _) => "addresses_rejected",
                (None, None) => "no_ape",
                (None, Some(_)) => "no_active_account",
            };
            unreachable.push(UnreachableStructure {
                finess: structure.finess.display().to_string(),
                name: structure.name,
                departement: departement.to_string(),
                reason,
                since,
            });
        }
        Ok(unreachable)
    }

    /// [`Self::unreachable`] of several départements, eight at a time.
    pub async fn unreachable_by_departement(
        &self,
        departements: &[Departement],
    ) -> Result<BTreeMap<Departement, Vec<UnreachableStructure>>, StoreError> {
        futures_util::stream::iter(departements.iter().copied())
            .map(|d| async move { Ok((d, self.unreachable(d).await?)) })
            .buffer_unordered(8)
            .collect::<Vec<Result<_, StoreError>>>()
            .await
            .into_iter()
            .collect()
    }

    /// Today, in Paris.
    pub fn today(&self) -> Date {
        tdb_domain::campaign::paris_day((self.clock)())
    }

    /// What `day` calls for in campaign `year`: the occasions of each platform, each
    /// concerned structure with its occasions, and each OG's late ESMS. Reads the listing
    /// index only.
    pub async fn decide(&self, year: CampaignYear, day: Date) -> Result<Decision, StoreError> {
        let mut decision = Decision::default();
        let Ok((_, definitions)) = self.campaigns.year(year.value()) else {
            return Ok(decision);
        };
        let mut due = Vec::new();
        for platform in tdb_domain::campaign::Platform::ALL {
            let definition = definitions.platform(platform);
            let mut today: Vec<Occasion> = occasions(definition, definition.reminders(), day);
            // The territories' digest covers every platform: decided once below.
            if today.contains(&Occasion::TerritoryDigest) {
                decision.territory_digest = true;
                today.retain(|o| *o != Occasion::TerritoryDigest);
            }
            if !today.is_empty() {
                decision.occasions.insert(
                    platform.key().to_string(),
                    today.iter().map(Occasion::key).collect(),
                );
                due.push((platform, today));
            }
        }
        if decision.territory_digest {
            decision
                .occasions
                .entry("territories".into())
                .or_default()
                .push(Occasion::TerritoryDigest.key());
        }
        if due.is_empty() {
            return Ok(decision);
        }
        for departement in Departement::all() {
            let mut page = None;
            loop {
                let listed = self
                    .questionnaires
                    .list_by_departement(year, departement, None, page, 200)
                    .await?;
                for entry in listed.items {
                    let Some((_, today)) = due.iter().find(|(p, _)| *p == entry.kind.platform())
                    else {
                        continue;
                    };
                    let definition = definitions.for_kind(entry.kind);
                    let concerning: Vec<Occasion> = today
                        .iter()
                        .filter(|o| concerns(definition, &entry, o))
                        .cloned()
                        .collect();
                    if concerning.is_empty() {
                        continue;
                    }
                    if let Some(og) = entry.og
                        && concerning.iter().any(|o| *o != Occasion::Opening)
                    {
                        decision
                            .late_by_og
                            .entry(og)
                            .or_default()
                            .push(entry.clone());
                    }
                    decision.structures.push((entry, concerning));
                }
                match listed.next {
                    Some(next) => page = Some(next),
                    None => break,
                }
            }
        }
        Ok(decision)
    }

    /// The reminders of `day` for campaign `year`: sends what is due and was not sent.
    pub async fn run(
        &self,
        year: CampaignYear,
        day: Date,
        dry_run: bool,
    ) -> Result<RunSummary, StoreError> {
        self.run_until(year, day, dry_run, None).await
    }

    /// The same, stopping to claim new sends once `deadline` has passed (a Lambda's time
    /// runs out): `remaining` says how many structures were left, which the next run of the
    /// day sends, exactly once, since the log holds what went out.
    pub async fn run_until(
        &self,
        year: CampaignYear,
        day: Date,
        dry_run: bool,
        deadline: Option<std::time::Instant>,
    ) -> Result<RunSummary, StoreError> {
        let decision = self.decide(year, day).await?;
        let mut summary = RunSummary {
            day: day.to_string(),
            occasions: decision.occasions,
            structures: decision.structures.len(),
            ..Default::default()
        };
        let Ok((_, definitions)) = self.campaigns.year(year.value()) else {
            return Ok(summary);
        };
        if decision.structures.is_empty() && !decision.territory_digest {
            return Ok(summary);
        }
        let interval = self.interval().await;
        let workers = workers(interval);
        let out_of_time = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
        // Several structures at once, so that SES's answer time does not hold the run
        // below the rate; the pace itself is kept by `next_send`. Every started send is
        // awaited, even after a storage failure: a send dropped between its claim and
        // its record would be left claimed, and never repeated.
        let concerned = &decision.structures;
        let late_by_og: Vec<(Finess, Vec<ProgressEntry>)> =
            decision.late_by_og.into_iter().collect();
        let late_by_og = &late_by_og;
        // Each structure's reminders, then each OG's digest of its late ESMS, in one stream.
        // By index: a closure taking a reference trips the compiler's proof that the
        // handler's future is `Send`.
        let tasks = (0..concerned.len())
            .map(Task::Structure)
            .chain((0..late_by_og.len()).map(Task::OgDigest));
        let parts: Vec<Result<RunSummary, StoreError>> = futures_util::stream::iter(tasks)
            .map(|task| async move {
                let mut part = RunSummary::default();
                if out_of_time() {
                    part.remaining = 1;
                    return Ok(part);
                }
                match task {
                    Task::Structure(n) => {
                        let (entry, concerning) = &concerned[n];
                        let concerning: Vec<&Occasion> = concerning.iter().collect();
                        self.remind(
                            year,
                            day,
                            definitions.for_kind(entry.kind),
                            entry,
                            &concerning,
                            dry_run,
                            interval,
                            &mut part,
                        )
                        .await?
                    }
                    Task::OgDigest(n) => {
                        let (og, late) = &late_by_og[n];
                        self.og_digest(
                            year,
                            day,
                            definitions,
                            *og,
                            late,
                            dry_run,
                            interval,
                            &mut part,
                        )
                        .await?
                    }
                }
                Ok(part)
            })
            .buffer_unordered(workers)
            .collect()
            .await;
        let mut failure = None;
        for part in parts {
            match part {
                Ok(part) => summary.absorb(part),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if failure.is_none()
            && decision.territory_digest
            && let Err(e) = self
                .territory_digests(year, day, dry_run, interval, &out_of_time, &mut summary)
                .await
        {
            failure = Some(e);
        }
        summary.unreachable.sort();
        summary
            .planned
            .sort_by(|a, b| (&a.finess, &a.occasion, &a.to).cmp(&(&b.finess, &b.occasion, &b.to)));
        if let Some(e) = failure {
            tracing::error!(day = %day, error = %e, sent = summary.sent, failed = summary.failed,
                in_flight = summary.in_flight, "reminders run stopped by a storage failure");
            return Err(e);
        }
        tracing::info!(day = %day, structures = summary.structures, sent = summary.sent,
            already_sent = summary.already_sent, in_flight = summary.in_flight,
            failed = summary.failed, unreachable = summary.unreachable.len(), dry_run, "reminders");
        Ok(summary)
    }

    /// Each region's and département's weekly digest to its administrators: the
    /// progress counters by category (and by département for a region), and the
    /// structures without an APE, whom nobody can be reminded at.
    async fn territory_digests(
        &self,
        year: CampaignYear,
        day: Date,
        dry_run: bool,
        interval: Duration,
        out_of_time: &(dyn Fn() -> bool + Sync),
        summary: &mut RunSummary,
    ) -> Result<(), StoreError> {
        let counters = self.questionnaires.progress(year).await?;
        let mut territories: BTreeMap<Territory, Vec<(tdb_domain::progress::ProgressKey, Counts)>> =
            BTreeMap::new();
        for (key, counts) in counters {
            territories
                .entry(Territory::Departement(key.departement))
                .or_default()
                .push((key, counts));
            if let Some(region) = key.departement.region() {
                territories
                    .entry(Territory::Region(region))
                    .or_default()
                    .push((key, counts));
            }
        }
        // A département's unreachable structures go into its CD's digest and its region's.
        let with_counts: Vec<Departement> = territories
            .keys()
            .filter_map(|t| match t {
                Territory::Departement(d) => Some(*d),
                Territory::Region(_) => None,
            })
            .collect();
        let by_departement = self.unreachable_by_departement(&with_counts).await?;
        for (territory, counts) in territories {
            // Claims are made only with time left: a run stopped between a claim and its
            // record would leave the digest unsent for good.
            if out_of_time() {
                summary.remaining += 1;
                continue;
            }
            let departements: Vec<Departement> = match territory {
                Territory::Region(r) => Departement::all()
                    .filter(|d| d.region() == Some(r))
                    .collect(),
                Territory::Departement(d) => vec![d],
            };
            let mut unreachable = Vec::new();
            for d in departements {
                if let Some(listed) = by_departement.get(&d) {
                    unreachable.extend(listed.iter().map(UnreachableStructure::french));
                }
            }
            let digest = mail::TerritoryDigest::of(territory, year.value(), &counts, &unreachable);
            let render = |account: &Account| {
                mail::territory_digest(&account.email, &account.person, &digest)
            };
            let (subject, name) = match territory {
                Territory::Region(r) => (format!("region-{}", r.code()), r.code().to_string()),
                Territory::Departement(d) => (format!("dep-{d}"), d.to_string()),
            };
            let to = Recipients {
                who: Who::Administrators(territory),
                subject,
                occasion: Occasion::TerritoryDigest.key(),
            };
            // A territory without an administrator account has nobody to tell.
            if !self
                .send_to_members(year, day, &to, &render, dry_run, interval, summary)
                .await?
            {
                tracing::debug!(
                    territory = name,
                    "no administrator for the territory digest"
                );
            }
        }
        Ok(())
    }

    /// Sends at the rate's pace, trying a refused message twice more after a growing pause
    /// (SES throttles in bursts; a bad address is refused three times).
    async fn send_with_retries(
        &self,
        email: &Email,
        interval: Duration,
    ) -> Result<String, MailError> {
        let mut attempt = 0;
        loop {
            let slot = {
                let mut next = self.next_send.lock().unwrap_or_else(|e| e.into_inner());
                let slot = (*next).max(tokio::time::Instant::now());
                *next = slot + interval;
                slot
            };
            tokio::time::sleep_until(slot).await;
            match self.mailer.send(email).await {
                Err(MailError::Rejected(_)) if attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// The pause between two sends.
    async fn interval(&self) -> Duration {
        let per_second = match self.rate {
            SendRate::Fixed(rate) => rate,
            SendRate::Quota => match self.mailer.max_send_rate().await {
                Ok(rate) => rate,
                Err(e) => {
                    tracing::error!(error = %e, "send quota unavailable: one e-mail a second");
                    1.0
                }
            },
        };
        Duration::from_secs_f64(1.0 / per_second.max(0.1))
    }

    /// One structure's reminders of the day, to each of its APE and Gestionnaires.
    #[allow(clippy::too_many_arguments)]
    async fn remind(
        &self,
        year: CampaignYear,
        day: Date,
        definition: &tdb_domain::questionnaire::Definition,
        entry: &ProgressEntry,
        concerning: &[&Occasion],
        dry_run: bool,
        interval: Duration,
        summary: &mut RunSummary,
    ) -> Result<(), StoreError> {
        let Some(structure) = self.accounts.structures(&[entry.finess]).await?.pop() else {
            // A questionnaire whose structure left the referential: nobody to write to.
            summary.unreachable.push(entry.finess.to_string());
            return Ok(());
        };
        let several_parts = definition.parts_for(entry.kind).count() > 1;
        for occasion in concerning {
            let part = occasion
                .part()
                .and_then(|id| definition.parts().iter().find(|p| p.id == id));
            let deadline = part.map_or_else(|| open_deadline(definition, entry), |p| p.deadline);
            let reminder = mail::StructureReminder {
                structure: &structure,
                occasion,
                campaign: year.value(),
                part_label: part.filter(|_| several_parts).map(|p| p.label.as_str()),
                deadline: french(deadline),
                days_left: (deadline - day).whole_days(),
                fill_rate: entry.fill_rate,
                link: format!(
                    "{}/questionnaires/{year}/{}",
                    self.public_url.trim_end_matches('/'),
                    entry.finess
                ),
            };
            let render =
                |account: &Account| mail::structure(&account.email, &account.person, &reminder);
            let to = Recipients {
                who: Who::Members(entry.finess),
                subject: entry.finess.to_string(),
                occasion: occasion.key(),
            };
            if !self
                .send_to_members(year, day, &to, &render, dry_run, interval, summary)
                .await?
            {
                // Nobody to write to: said once per structure and day.
                summary.unreachable.push(entry.finess.to_string());
                return Ok(());
            }
        }
        Ok(())
    }

    /// One e-mail to each of an OG's APE and Gestionnaires listing its late ESMS.
    #[allow(clippy::too_many_arguments)]
    async fn og_digest(
        &self,
        year: CampaignYear,
        day: Date,
        definitions: &CampaignDefinitions,
        og: Finess,
        late: &[ProgressEntry],
        dry_run: bool,
        interval: Duration,
        summary: &mut RunSummary,
    ) -> Result<(), StoreError> {
        let mut finess: Vec<Finess> = late.iter().map(|e| e.finess).collect();
        finess.push(og);
        let records: BTreeMap<Finess, StructureRecord> = self
            .accounts
            .structures(&finess)
            .await?
            .into_iter()
            .map(|s| (s.finess, s))
            .collect();
        let Some(og_record) = records.get(&og) else {
            summary.unreachable.push(og.to_string());
            return Ok(());
        };
        let list: Vec<mail::LateStructure> = late
            .iter()
            .map(|e| mail::LateStructure {
                name: records
                    .get(&e.finess)
                    .map_or_else(|| e.finess.to_string(), |s| s.name.clone()),
                finess: e.finess.display().to_string(),
                fill: (e.fill_rate * 100.0).round() as i64,
                blocking: e.blocking,
                deadline: french(open_deadline(definitions.for_kind(e.kind), e)),
            })
            .collect();
        let link = format!(
            "{}/suivi/{year}/og/{og}",
            self.public_url.trim_end_matches('/')
        );
        let render = |account: &Account| {
            mail::og_digest(
                &account.email,
                &account.person,
                og_record,
                year.value(),
                &list,
                &link,
            )
        };
        let to = Recipients {
            who: Who::Members(og),
            subject: format!("og-{og}"),
            occasion: "og-digest".into(),
        };
        if !self
            .send_to_members(year, day, &to, &render, dry_run, interval, summary)
            .await?
        {
            summary.unreachable.push(og.to_string());
        }
        Ok(())
    }

    /// Whom reminders of `who` are for, each once, whether or not they can receive them
    /// now: a structure's APE and Gestionnaires, or a territory's administrators.
    async fn recipients(&self, who: Who) -> Result<Vec<Account>, StoreError> {
        let holders = match who {
            Who::Members(structure) => self.accounts.members(structure).await?,
            Who::Administrators(territory) => self.accounts.administrators(territory).await?,
        };
        let mut recipients: Vec<Account> = holders
            .into_iter()
            .filter(|(_, role)| {
                matches!(
                    role,
                    Role::Ape { .. }
                        | Role::Member {
                            profile: Profile::Gestionnaire,
                            ..
                        }
                        | Role::RegionalAdmin { .. }
                        | Role::DepartementalAdmin { .. }
                )
            })
            .map(|(account, _)| account)
            .collect();
        // An account holding two roles on the structure gets one e-mail.
        recipients.sort_by(|a, b| a.id.cmp(&b.id));
        recipients.dedup_by(|a, b| a.id == b.id);
        Ok(recipients)
    }

    /// Sends `render`'s e-mail once to each active recipient (a structure's APE and
    /// Gestionnaires, or a territory's administrators), claiming each in the send log
    /// first; `false` if there is nobody to write to.
    #[allow(clippy::too_many_arguments)]
    async fn send_to_members(
        &self,
        year: CampaignYear,
        day: Date,
        to: &Recipients,
        render: &(dyn Fn(&Account) -> Result<Email, minijinja::Error> + Sync),
        dry_run: bool,
        interval: Duration,
        summary: &mut RunSummary,
    ) -> Result<bool, StoreError> {
        let recipients: Vec<Account> = self
            .recipients(to.who)
            .await?
            .into_iter()
            .filter(Account::receives_reminders)
            .collect();
        if recipients.is_empty() {
            return Ok(false);
        }
        for account in &recipients {
            let email = match render(account) {
                Ok(email) => email,
                // A template that does not render is a bug: counted, logged, the run goes on.
                Err(e) => {
                    summary.failed += 1;
                    tracing::error!(error = %e, subject = %to.subject, "a reminder did not render");
                    continue;
                }
            };
            if dry_run {
                summary.planned_total += 1;
                if summary.planned.len() >= PLANNED_LISTED {
                    continue;
                }
                summary.planned.push(PlannedEmail {
                    finess: to.subject.clone(),
                    occasion: to.occasion.clone(),
                    to: account.email.as_str().to_string(),
                    subject: email.subject,
                });
                continue;
            }
            let key = SendKey {
                campaign: year,
                subject: to.subject.clone(),
                day,
                occasion: to.occasion.clone(),
                recipient: account.id.to_string(),
            };
            match self.questionnaires.claim(&key, (self.clock)()).await? {
                Claim::Sent => {
                    summary.already_sent += 1;
                    continue;
                }
                Claim::Sending => {
                    summary.in_flight += 1;
                    continue;
                }
                Claim::Claimed => {}
            }
            let outcome = self.send_with_retries(&email, interval).await;
            let outcome = match outcome {
                Ok(message_id) => {
                    summary.sent += 1;
                    SendOutcome::Sent { message_id }
                }
                // Certainly not sent: the next run claims it again.
                Err(MailError::Rejected(reason)) => {
                    summary.failed += 1;
                    tracing::warn!(subject = %to.subject, "reminder refused: {reason}");
                    SendOutcome::Failed { reason }
                }
                // Perhaps sent: left claimed, never sent again.
                Err(e @ MailError::Backend(_)) => {
                    summary.in_flight += 1;
                    tracing::error!(error = %e, subject = %to.subject, "reminder perhaps sent: left as sending");
                    continue;
                }
            };
            // The e-mail's fate is known; a log that cannot record it leaves it claimed,
            // which never repeats it: the run goes on.
            if let Err(e) = self
                .questionnaires
                .settle(&key, &outcome, (self.clock)())
                .await
            {
                tracing::error!(error = %e, subject = %to.subject, "send not recorded: left as sending");
            }
        }
        Ok(true)
    }
}

/// The deadline a late structure is chased for: that of its first part asked of it and not
/// validated (the SAD aid part's is later), else the collection's.
fn open_deadline(
    definition: &tdb_domain::questionnaire::Definition,
    entry: &ProgressEntry,
) -> Date {
    definition
        .parts_for(entry.kind)
        .find(|p| Occasion::OnDemand.concerns(entry.part(&p.id)))
        .map_or(definition.campaign().calendar.collection_deadline, |p| {
            p.deadline
        })
}

/// Whether an occasion concerns a listed questionnaire: its part is asked of it and not
/// validated (or, at opening, it is not closed).
fn concerns(
    definition: &tdb_domain::questionnaire::Definition,
    entry: &ProgressEntry,
    occasion: &Occasion,
) -> bool {
    match occasion.part() {
        Some(part) => {
            definition.parts_for(entry.kind).any(|p| p.id == part)
                && occasion.concerns(entry.part(part))
        }
        None => occasion.concerns(entry.status),
    }
}
