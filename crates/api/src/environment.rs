//! What every function reads at cold start, written once: its environment variables (all
//! the missing ones reported together) and the campaigns the platform ships.

use std::collections::BTreeMap;
use tdb_domain::campaign::CampaignYear;
use tdb_domain::questionnaire::{CampaignDefinitions, builtin};

/// Why a function that checks tokens and reads questionnaires cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing configuration: {}", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("the token keys")]
    Keys(#[from] crate::TokenError),
    #[error("a shipped questionnaire definition does not load: {0}")]
    Definition(String),
}

/// A function's environment variables, read through `lookup` (the process environment,
/// or the local gateway's table).
pub struct Environment<F> {
    lookup: F,
    missing: Vec<&'static str>,
}

impl<F: Fn(&str) -> Option<String>> Environment<F> {
    pub fn new(lookup: F) -> Environment<F> {
        Environment {
            lookup,
            missing: Vec::new(),
        }
    }

    /// The variable's value; a missing one is remembered and reads as empty.
    pub fn var(&mut self, name: &'static str) -> String {
        (self.lookup)(name).unwrap_or_else(|| {
            self.missing.push(name);
            String::new()
        })
    }

    /// A variable that may be absent.
    pub fn optional(&mut self, name: &'static str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// The names of the missing variables, if any.
    pub fn finish(self) -> Result<(), Vec<&'static str>> {
        if self.missing.is_empty() {
            Ok(())
        } else {
            Err(self.missing)
        }
    }
}

/// Every campaign shipped with the platform, by year, or the first that does not load.
pub fn shipped_campaigns() -> Result<BTreeMap<CampaignYear, CampaignDefinitions>, String> {
    let mut campaigns = BTreeMap::new();
    for &year in builtin::YEARS {
        let definitions = builtin::load(year)
            .ok_or_else(|| format!("campaign {year} is listed but not shipped"))?
            .map_err(|e| e.to_string())?;
        let year = CampaignYear::new(year).map_err(|e| e.to_string())?;
        campaigns.insert(year, definitions);
    }
    Ok(campaigns)
}
