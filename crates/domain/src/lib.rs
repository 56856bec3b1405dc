//! The pure domain core of the TDB-ESMS platform: FINESS numbers, structures, campaigns,
//! the questionnaire as data (items, answers, fill rate, coherence rules, indicators), rights,
//! and a synthetic campaign generator.
//!
//! Nothing here knows AWS, Lambda or DataFusion: the functions call it, the adapters store
//! what it produces.

pub mod accounts;
pub mod campaign;
pub mod category;
pub mod demo;
pub mod email;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod finess;
pub mod generator;
pub mod geo;
pub mod outliers;
pub mod ports;
pub mod progress;
pub mod questionnaire;
pub mod reminders;
pub mod restitution;
pub mod rights;
pub mod structure;
pub mod workflow;

pub use campaign::{Activity, Calendar, Campaign, CampaignYear, Phase, QuestionnaireStatus};
pub use category::{Category, RespondentKind};
pub use finess::{Finess, FinessError};
pub use geo::{Departement, Region};
pub use structure::{
    Capacity, Establishment, LegalEntity, Referential, ReferentialError, Respondent,
};
