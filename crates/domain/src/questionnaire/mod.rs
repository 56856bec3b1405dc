//! The questionnaire as data: its definition (sections, items, rules, indicators), answers,
//! and their evaluation (fill rate, coherence, indicators).

use crate::campaign::Platform;
use crate::category::RespondentKind;

pub mod answer;
pub mod definition;
pub mod evaluate;
mod expr;

pub use answer::{AnswerError, AnswerProblem, AnswerSet, Fixed, Slot, Value};
pub use definition::{
    ChoiceDef, Definition, DefinitionError, DefinitionProblem, Indicator, ItemDef, ItemType,
    Missing, Part, Rule, Section, Severity, Unit,
};
pub use evaluate::{
    Evaluation, FillRate, FillReport, IndicatorResult, IndicatorValue, NotComputable, PartFill,
    Violation,
};
pub use expr::ExprError;

/// The questionnaires of one campaign, one per platform.
#[derive(Debug, Clone)]
pub struct CampaignDefinitions {
    generic: Definition,
    sad: Definition,
}

impl CampaignDefinitions {
    /// Pairs the two platforms' definitions; they must be of the same campaign year.
    pub fn new(
        generic: Definition,
        sad: Definition,
    ) -> Result<CampaignDefinitions, DefinitionError> {
        let mut problems = Vec::new();
        if generic.platform() != Platform::Generic || sad.platform() != Platform::Sad {
            problems.push(DefinitionProblem::Campaign(
                "one generic and one SAD definition are expected".into(),
            ));
        }
        if generic.campaign().year != sad.campaign().year {
            problems.push(DefinitionProblem::Campaign(
                "the two platforms' definitions are of different campaigns".into(),
            ));
        }
        if problems.is_empty() {
            Ok(CampaignDefinitions { generic, sad })
        } else {
            Err(DefinitionError(problems))
        }
    }

    pub fn platform(&self, platform: Platform) -> &Definition {
        match platform {
            Platform::Generic => &self.generic,
            Platform::Sad => &self.sad,
        }
    }

    /// The questionnaire a respondent answers.
    pub fn for_kind(&self, kind: RespondentKind) -> &Definition {
        self.platform(kind.platform())
    }
}

/// The definition files shipped with the platform, one per campaign and platform.
pub mod builtin {
    use super::{CampaignDefinitions, Definition, DefinitionError};
    use crate::campaign::Platform;

    /// The campaign years shipped with the platform.
    pub const YEARS: &[u16] = &[2025];

    /// The 2025 campaign (data of 2024), generic platform.
    pub const GENERIC_2025: &str = include_str!("../../definitions/2025-generique.toml");
    /// The 2025 campaign, home-services (SAD) platform.
    pub const SAD_2025: &str = include_str!("../../definitions/2025-sad.toml");

    /// The definition text of a campaign year and platform shipped with the platform.
    pub fn text(year: u16, platform: Platform) -> Option<&'static str> {
        match (year, platform) {
            (2025, Platform::Generic) => Some(GENERIC_2025),
            (2025, Platform::Sad) => Some(SAD_2025),
            _ => None,
        }
    }

    /// Loads both platforms' definitions shipped for a campaign year.
    pub fn load(year: u16) -> Option<Result<CampaignDefinitions, DefinitionError>> {
        let generic = Definition::from_toml(text(year, Platform::Generic)?);
        let sad = Definition::from_toml(text(year, Platform::Sad)?);
        Some(match (generic, sad) {
            (Ok(g), Ok(s)) => CampaignDefinitions::new(g, s),
            (Err(mut a), Err(b)) => {
                a.0.extend(b.0);
                Err(a)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        })
    }
}
