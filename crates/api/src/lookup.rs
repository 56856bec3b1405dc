//! What the functions that read questionnaires look up first, written once: the campaign
//! of a path's year, and the structure of a path's FINESS (trusted for a minute by a warm
//! instance: a structure's category, OG and principal change once a year).

use crate::{ApiError, TtlCache};
use std::collections::BTreeMap;
use std::time::Duration;
use tdb_domain::Finess;
use tdb_domain::accounts::StructureRecord;
use tdb_domain::campaign::CampaignYear;
use tdb_domain::ports::{AccountStore, QuestionnaireStore, StoredQuestionnaire};
use tdb_domain::questionnaire::{AnswerSet, CampaignDefinitions, Definition};

/// The campaigns a function serves, by year.
pub struct Campaigns(BTreeMap<CampaignYear, CampaignDefinitions>);

impl Campaigns {
    pub fn new(by_year: BTreeMap<CampaignYear, CampaignDefinitions>) -> Campaigns {
        Campaigns(by_year)
    }

    /// The campaign of a path's year: 400 `campaign` if it is not a year, 404 if the
    /// platform does not ship it.
    pub fn year(&self, year: u16) -> Result<(CampaignYear, &CampaignDefinitions), ApiError> {
        let year = CampaignYear::new(year)
            .map_err(|_| ApiError::invalid("campaign", "not a campaign year"))?;
        let definitions = self
            .0
            .get(&year)
            .ok_or_else(|| ApiError::not_found("campaign"))?;
        Ok((year, definitions))
    }
}

/// How long a warm instance trusts a structure it read.
pub const STRUCTURE_TTL: Duration = Duration::from_secs(60);

/// Structures read in the last minute.
pub struct Structures(TtlCache<Finess, StructureRecord>);

impl Default for Structures {
    fn default() -> Self {
        Structures(TtlCache::new(STRUCTURE_TTL, 50_000))
    }
}

impl Structures {
    /// A structure, from the cache or the store; 404 `structure` if unknown.
    pub async fn get(
        &self,
        store: &impl AccountStore,
        finess: Finess,
    ) -> Result<StructureRecord, ApiError> {
        if let Some(structure) = self.0.get(&finess) {
            return Ok(structure);
        }
        let structure = store
            .structures(&[finess])
            .await
            .map_err(ApiError::from_store)?
            .pop()
            .ok_or_else(|| ApiError::not_found("structure"))?;
        self.0.insert(finess, structure.clone());
        Ok(structure)
    }

    /// The structure a path's FINESS names, if it has a questionnaire: 400 `finess` if it
    /// is not one, 404 `secondary_structure` naming the principal for a secondary.
    pub async fn respondent(
        &self,
        store: &impl AccountStore,
        finess: &str,
    ) -> Result<StructureRecord, ApiError> {
        let finess =
            Finess::parse(finess).map_err(|e| ApiError::invalid("finess", e.to_string()))?;
        let structure = self.get(store, finess).await?;
        if let Some(principal) = structure.principal {
            return Err(ApiError::new(
                404,
                "secondary_structure",
                format!(
                    "{finess} is a secondary FINESS: its data are in the questionnaire of its principal {principal}"
                ),
            ));
        }
        Ok(structure)
    }
}

/// A questionnaire the campaign's opening has not created.
pub fn not_opened() -> ApiError {
    ApiError::new(
        404,
        "not_opened",
        "the campaign has not been opened for this structure",
    )
}

/// A structure's questionnaire and, read through this campaign's items, its answers of the
/// previous campaign (the year-on-year rules and the values shown beside them), in one
/// request; 404 `not_opened` if the campaign has not created it.
pub async fn with_previous(
    store: &impl QuestionnaireStore,
    year: CampaignYear,
    definition: &Definition,
    structure: &StructureRecord,
) -> Result<(StoredQuestionnaire, Option<AnswerSet>), ApiError> {
    let both = store
        .get_with_previous(year, structure.finess)
        .await
        .map_err(ApiError::from_store)?;
    let stored = both.current.ok_or_else(not_opened)?;
    let previous = both
        .previous
        .map(|q| definition.carry_over(structure.kind, &q.answers));
    Ok((stored, previous))
}
