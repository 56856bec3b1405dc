//! Progress (docs/validate.md): an OG's own questionnaire and its ESMS'; a territory's
//! expected / started / validated / validated-on-time counts and mean fill rate, by
//! category and département (by region for the country), read from the progress counters
//! every write keeps; and the territory's structures one by one, from the by-territory
//! index. JSON pages, or CSV for French spreadsheets (`;`, decimal comma, UTF-8 with BOM).

use crate::App;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tdb_api::csv::{csv, decimal};
use tdb_api::{ApiError, Caller};
use tdb_domain::campaign::QuestionnaireStatus;
use tdb_domain::ports::{
    AccountStore, Lake, Mailer, Page, ProgressEntry, QuestionnaireStore, StoredQuestionnaire,
};
use tdb_domain::progress::{Counts, ProgressKey, Summary};
use tdb_domain::rights::{Action, Target};
use tdb_domain::{Finess, RespondentKind};

/// Lines of a JSON page of structures.
pub const PAGE: u32 = 100;

/// One structure in a progress listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StructureLine {
    #[schema(value_type = String)]
    pub finess: Finess,
    /// `OG` or the category (`EHPAD`...).
    pub category: &'static str,
    #[schema(value_type = String)]
    pub status: QuestionnaireStatus,
    pub fill_rate: f64,
    /// Blocking rules failing.
    pub blocking: u32,
    /// Failing warnings the structure acknowledged with a comment.
    pub acknowledged: u32,
    /// Values far from the peers, flagged at the last validation step.
    pub outliers: u32,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

impl StructureLine {
    fn of(e: &ProgressEntry) -> StructureLine {
        StructureLine {
            finess: e.finess,
            category: e.kind.key(),
            status: e.status,
            fill_rate: e.fill_rate,
            blocking: e.blocking,
            acknowledged: e.acknowledged,
            outliers: e.outliers,
            updated_at: e.updated_at,
        }
    }
}

/// An OG's progress: its own questionnaire and those of its ESMS (a page of them).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OgProgress {
    pub og: Option<StructureLine>,
    pub structures: Vec<StructureLine>,
    pub next: Option<String>,
}

/// Counts of one group of questionnaires, with the rates DHIS2 calls reporting rates.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProgressRow {
    /// The category (`EHPAD`), département (`69`) or region (`84`) of the row, or `total`.
    pub group: String,
    pub expected: i64,
    pub started: i64,
    pub validated: i64,
    pub validated_on_time: i64,
    pub started_rate: f64,
    pub validated_rate: f64,
    pub on_time_rate: f64,
    pub mean_fill_rate: f64,
}

impl ProgressRow {
    fn of(group: String, c: &Counts) -> ProgressRow {
        ProgressRow {
            group,
            expected: c.expected,
            started: c.started(),
            validated: c.all_validated(),
            validated_on_time: c.on_time,
            started_rate: c.share(c.started()),
            validated_rate: c.share(c.all_validated()),
            on_time_rate: c.share(c.on_time),
            mean_fill_rate: c.mean_fill_rate(),
        }
    }
}

/// A territory's summary.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TerritoryProgress {
    /// `national`, `region:84` or `departement:69`.
    pub territory: String,
    pub total: ProgressRow,
    pub by_category: Vec<ProgressRow>,
    /// For a region or a département.
    pub by_departement: Vec<ProgressRow>,
    /// For the country.
    pub by_region: Vec<ProgressRow>,
}

/// Which territory a progress request is about.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TerritoryQuery {
    /// A region's code (`84`); with neither, the country.
    pub region: Option<u8>,
    /// A département's code (`69`, `2A`).
    pub departement: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// Listing only: one status (`validated`...).
    pub status: Option<String>,
    /// Listing only: `true` keeps the questionnaires to review (acknowledged warnings or
    /// outliers).
    pub review: Option<bool>,
    /// Listing only: the `next` of the previous page (JSON).
    pub page: Option<String>,
}

fn status_of(s: &str) -> Result<QuestionnaireStatus, ApiError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        ApiError::invalid(
            "status",
            "not_started, in_progress, validated, reopened or checked",
        )
    })
}

/// Whether a listing line belongs on the ARS's review list.
fn to_review(e: &ProgressEntry) -> bool {
    e.acknowledged > 0 || e.outliers > 0
}

impl<Q: QuestionnaireStore, S: AccountStore, M: Mailer, L: Lake> App<Q, S, M, L> {
    /// An OG's own questionnaire and a page of its ESMS'.
    pub(crate) async fn og_progress(
        &self,
        caller: &Caller,
        year: u16,
        og: &str,
        page: Option<String>,
    ) -> Result<OgProgress, ApiError> {
        let (year, _) = self.campaigns.year(year)?;
        let og = Finess::parse(og).map_err(|e| ApiError::invalid("og", e.to_string()))?;
        let structure = self.recent.get(&self.accounts, og).await?;
        if structure.kind != RespondentKind::Og {
            return Err(ApiError::invalid("og", "not an OG's FINESS"));
        }
        caller.authorize(
            Action::FollowProgress,
            &Target::Structure(structure.target()),
        )?;
        let first_page = page.is_none();
        let listed = self
            .questionnaires
            .list_by_og(year, og, page, PAGE)
            .await
            .map_err(ApiError::from_store)?;
        // The OG's own people see all its ESMS; an ARS or a CD those of its territory.
        let member = caller
            .roles
            .iter()
            .any(|r| tdb_domain::accounts::role_structure(r) == Some(og));
        let visible = |e: &ProgressEntry| {
            member
                || caller
                    .authorize(
                        Action::FollowProgress,
                        &Target::Departement {
                            departement: e.finess.departement(),
                        },
                    )
                    .is_ok()
        };
        let own = if first_page {
            self.questionnaires
                .get(year, og)
                .await
                .map_err(ApiError::from_store)?
                .map(|q: StoredQuestionnaire| StructureLine::of(&ProgressEntry::of(&q)))
        } else {
            None
        };
        Ok(OgProgress {
            og: own,
            structures: listed
                .items
                .iter()
                .filter(|e| visible(e))
                .map(StructureLine::of)
                .collect(),
            next: listed.next,
        })
    }

    /// A territory's summary from the progress counters.
    pub(crate) async fn territory_progress(
        &self,
        caller: &Caller,
        year: u16,
        query: &TerritoryQuery,
    ) -> Result<TerritoryProgress, ApiError> {
        let (year, _) = self.campaigns.year(year)?;
        let territory = tdb_api::Scope::of(query.region, query.departement.as_deref())?;
        caller.authorize(Action::FollowProgress, &territory.target)?;
        let counters = self
            .questionnaires
            .progress(year)
            .await
            .map_err(ApiError::from_store)?;
        let inside: Vec<(ProgressKey, Counts)> = counters
            .into_iter()
            .filter(|(key, _)| territory.departements.contains(&key.departement))
            .collect();
        let summary = Summary::of(&inside);
        let rows = |m: &BTreeMap<&'static str, Counts>| -> Vec<ProgressRow> {
            m.iter()
                .map(|(group, c)| ProgressRow::of(group.to_string(), c))
                .collect()
        };
        Ok(TerritoryProgress {
            territory: territory.name,
            total: ProgressRow::of("total".into(), &summary.total),
            by_category: rows(&summary.by_kind),
            by_departement: if territory.national {
                vec![]
            } else {
                rows(&summary.by_departement)
            },
            by_region: if territory.national {
                summary
                    .by_region
                    .iter()
                    .map(|(code, c)| ProgressRow::of(format!("{code:02}"), c))
                    .collect()
            } else {
                vec![]
            },
        })
    }

    /// A page of a territory's structures (`all` reads every page: the CSV download).
    pub(crate) async fn territory_structures(
        &self,
        caller: &Caller,
        year: u16,
        query: &TerritoryQuery,
        all: bool,
    ) -> Result<Page<StructureLine>, ApiError> {
        let (year, _) = self.campaigns.year(year)?;
        let territory = tdb_api::Scope::of(query.region, query.departement.as_deref())?;
        caller.authorize(Action::FollowProgress, &territory.target)?;
        let status = query.status.as_deref().map(status_of).transpose()?;
        let review = query.review.unwrap_or(false);
        // The page token: the index of the département, then that département's token.
        let (mut index, mut inner) = match query.page.as_deref() {
            None => (0, None),
            Some(token) => {
                let (i, rest) = token
                    .split_once('|')
                    .ok_or_else(|| ApiError::invalid("page", "invalid page token"))?;
                let i: usize = i
                    .parse()
                    .ok()
                    .filter(|i| *i < territory.departements.len())
                    .ok_or_else(|| ApiError::invalid("page", "invalid page token"))?;
                (i, (!rest.is_empty()).then(|| rest.to_string()))
            }
        };
        let mut lines = Vec::new();
        while index < territory.departements.len() {
            let page = self
                .questionnaires
                .list_by_departement(
                    year,
                    territory.departements[index],
                    status,
                    inner.take(),
                    PAGE,
                )
                .await
                .map_err(ApiError::from_store)?;
            lines.extend(
                page.items
                    .iter()
                    .filter(|e| !review || to_review(e))
                    .map(StructureLine::of),
            );
            match page.next {
                Some(next) => inner = Some(next),
                None => index += 1,
            }
            if !all && (lines.len() >= PAGE as usize || inner.is_some()) {
                break;
            }
        }
        let next = (!all && index < territory.departements.len())
            .then(|| format!("{index}|{}", inner.unwrap_or_default()));
        Ok(Page { items: lines, next })
    }
}

pub(crate) fn lines_csv(lines: &[StructureLine]) -> String {
    csv(
        &[
            "finess",
            "categorie",
            "etat",
            "taux_remplissage",
            "controles_bloquants",
            "alertes_commentees",
            "valeurs_atypiques",
            "derniere_modification",
        ],
        lines.iter().map(|l| {
            vec![
                l.finess.to_string(),
                l.category.to_string(),
                l.status.key().to_string(),
                decimal(l.fill_rate),
                l.blocking.to_string(),
                l.acknowledged.to_string(),
                l.outliers.to_string(),
                time::OffsetDateTime::from_unix_timestamp(l.updated_at)
                    .map(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    })
                    .unwrap_or_default(),
            ]
        }),
    )
}

pub(crate) fn summary_csv(summary: &TerritoryProgress) -> String {
    let mut rows = Vec::new();
    let mut push = |dimension: &str, r: &ProgressRow| {
        rows.push(vec![
            dimension.to_string(),
            r.group.clone(),
            r.expected.to_string(),
            r.started.to_string(),
            r.validated.to_string(),
            r.validated_on_time.to_string(),
            decimal(r.started_rate),
            decimal(r.validated_rate),
            decimal(r.on_time_rate),
            decimal(r.mean_fill_rate),
        ])
    };
    push("total", &summary.total);
    for r in &summary.by_category {
        push("categorie", r);
    }
    for r in &summary.by_departement {
        push("departement", r);
    }
    for r in &summary.by_region {
        push("region", r);
    }
    csv(
        &[
            "dimension",
            "groupe",
            "attendus",
            "commences",
            "valides",
            "valides_dans_les_delais",
            "taux_commences",
            "taux_valides",
            "taux_dans_les_delais",
            "taux_remplissage_moyen",
        ],
        rows,
    )
}
