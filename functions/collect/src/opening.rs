//! Opening a campaign (domain §7): a "not started" questionnaire for every respondent of
//! the referential (each principal ESMS on its platform, each OG) that has none yet.
//!
//! One opening runs at a time (a lock in the accounts table). It lists the respondents by
//! département, reads which already have a questionnaire (consistent batch reads of keys
//! only), and creates the missing ones in transactions of 25 that also count them in the
//! progress counters; each creation is conditioned on the questionnaire being absent, so
//! nothing saved is ever overwritten.

use serde::Serialize;
use serde_json::Map;
use std::collections::BTreeMap;
use tdb_domain::campaign::{CampaignYear, QuestionnaireStatus};
use tdb_domain::ports::{AccountStore, QuestionnaireStore, StoreError, StoredQuestionnaire};
use tdb_domain::{Departement, Finess, Respondent};

/// How long an opening may hold its lock: far more than 30,000 structures take; an opening
/// whose process died frees the campaign after it.
pub const OPENING_LEASE: i64 = 15 * 60;

/// What opening a campaign did.
#[derive(Debug, Default, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OpeningSummary {
    pub created: usize,
    pub already_open: usize,
}

/// Opens campaign `year` for every respondent of the referential. `None` when another
/// opening of the same campaign is running. Running it again creates only what is missing.
pub async fn open_campaign<Q: QuestionnaireStore, S: AccountStore>(
    questionnaires: &Q,
    structures: &S,
    year: CampaignYear,
    now: i64,
    owner: &str,
) -> Result<Option<OpeningSummary>, StoreError> {
    let lock = format!("opening-{year}");
    if !structures
        .lock(&lock, owner, now, now + OPENING_LEASE)
        .await?
    {
        return Ok(None);
    }
    let outcome = create_missing(questionnaires, structures, year, now).await;
    // Given back even after a failure: a retry need not wait for the lease.
    let unlocked = structures.unlock(&lock, owner).await;
    let summary = outcome?;
    unlocked?;
    Ok(Some(summary))
}

async fn create_missing<Q: QuestionnaireStore, S: AccountStore>(
    questionnaires: &Q,
    structures: &S,
    year: CampaignYear,
    now: i64,
) -> Result<OpeningSummary, StoreError> {
    use futures_util::StreamExt;
    // A few départements at a time: they share no questionnaire and no counter.
    let outcomes: Vec<Result<OpeningSummary, StoreError>> =
        futures_util::stream::iter(Departement::all())
            .map(|departement| open_departement(questionnaires, structures, year, now, departement))
            .buffer_unordered(4)
            .collect()
            .await;
    let mut summary = OpeningSummary::default();
    for outcome in outcomes {
        let done = outcome?;
        summary.created += done.created;
        summary.already_open += done.already_open;
    }
    Ok(summary)
}

async fn open_departement<Q: QuestionnaireStore, S: AccountStore>(
    questionnaires: &Q,
    structures: &S,
    year: CampaignYear,
    now: i64,
    departement: Departement,
) -> Result<OpeningSummary, StoreError> {
    let respondents: Vec<_> = structures
        .structures_of_departement(departement)
        .await?
        .into_iter()
        .filter(|s| s.principal.is_none())
        .collect();
    let finess: Vec<Finess> = respondents.iter().map(|s| s.finess).collect();
    let opened = questionnaires.opened(year, &finess).await?;
    let missing: Vec<StoredQuestionnaire> = respondents
        .into_iter()
        .filter(|s| !opened.contains(&s.finess))
        .map(|s| StoredQuestionnaire {
            campaign: year,
            respondent: Respondent {
                finess: s.finess,
                kind: s.kind,
            },
            departement: s.departement(),
            og: s.og,
            status: QuestionnaireStatus::NotStarted,
            answers: Map::new(),
            items: BTreeMap::new(),
            prefilled: Map::new(),
            fill_rate: 0.0,
            blocking: 0,
            acknowledged: 0,
            outliers: 0,
            workflow: Default::default(),
            version: 1,
            updated_at: now,
        })
        .collect();
    let created = questionnaires.create(&missing).await?;
    Ok(OpeningSummary {
        created,
        already_open: opened.len() + missing.len() - created,
    })
}
