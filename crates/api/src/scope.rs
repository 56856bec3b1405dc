//! The territory a request is about, from its query parameters.

use crate::ApiError;
use tdb_domain::rights::Target;
use tdb_domain::{Departement, Region};

/// The territory a request is about (a region, a département, or the country), the
/// rights target it is, and its départements.
pub struct Scope {
    pub name: String,
    pub target: Target,
    pub departements: Vec<Departement>,
    pub national: bool,
}

impl Scope {
    /// From a request's `region` and `departement` parameters: one of them, or neither for
    /// the country.
    pub fn of(region: Option<u8>, departement: Option<&str>) -> Result<Scope, ApiError> {
        match (region, departement) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "departement",
                "ask for a region or a département, not both",
            )),
            (Some(code), None) => {
                let region = Region::from_code(code)
                    .ok_or_else(|| ApiError::invalid("region", "not a region code"))?;
                Ok(Scope {
                    name: format!("region:{code}"),
                    target: Target::Region { region },
                    departements: Departement::all()
                        .filter(|d| d.region() == Some(region))
                        .collect(),
                    national: false,
                })
            }
            (None, Some(code)) => {
                let departement = Departement::from_code(code)
                    .ok_or_else(|| ApiError::invalid("departement", "not a département code"))?;
                Ok(Scope {
                    name: format!("departement:{}", departement.insee_code()),
                    target: Target::Departement { departement },
                    departements: vec![departement],
                    national: false,
                })
            }
            (None, None) => Ok(Scope {
                name: "national".into(),
                target: Target::National,
                departements: Departement::all().collect(),
                national: true,
            }),
        }
    }
}
