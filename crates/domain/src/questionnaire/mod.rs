//! The questionnaire as data: its definition (sections, items, rules, indicators), answers,
//! and their evaluation (fill rate, coherence, indicators).

pub mod answer;
pub mod definition;
pub mod evaluate;
mod expr;

pub use answer::{AnswerError, AnswerProblem, AnswerSet, Fixed, Slot, Value};
pub use definition::{
    ChoiceDef, Definition, DefinitionError, DefinitionProblem, Indicator, ItemDef, ItemType,
    Missing, Rule, Section, Severity, Unit,
};
pub use evaluate::{
    Evaluation, FillRate, FillReport, IndicatorResult, IndicatorValue, NotComputable, Violation,
};
pub use expr::ExprError;

/// The definition files shipped with the platform, one per campaign.
pub mod builtin {
    use super::{Definition, DefinitionError};

    /// The 2025 campaign (data of 2024).
    pub const DEFINITION_2025: &str = include_str!("../../definitions/2025.toml");

    /// The definition of a campaign year shipped with the platform.
    pub fn text(year: u16) -> Option<&'static str> {
        match year {
            2025 => Some(DEFINITION_2025),
            _ => None,
        }
    }

    /// Loads the definition shipped for a campaign year.
    pub fn load(year: u16) -> Option<Result<Definition, DefinitionError>> {
        text(year).map(Definition::from_toml)
    }
}
