//! Structures of the referential: legal entities (FINESS juridique) and establishments
//! (FINESS géographique), and the rules that decide who answers a questionnaire.

use crate::category::{Category, RespondentKind};
use crate::finess::Finess;
use crate::geo::{Departement, Region};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Installed beds and places at 31/12, by mode of support.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub permanent: u32,
    pub temporary: u32,
    pub day_care: u32,
}

impl Capacity {
    pub fn total(&self) -> u32 {
        self.permanent + self.temporary + self.day_care
    }
}

/// A legal entity (entité juridique), identified by its FINESS juridique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalEntity {
    pub finess: Finess,
    pub name: String,
    /// Every FINESS géographique it manages, whatever the activity (sanitaire, médico-social,
    /// social), in scope of the dashboard or not: the OG rule counts them all.
    pub managed_finess_count: u32,
}

impl LegalEntity {
    /// In the dashboard a legal entity is an OG only if it manages at least two FINESS
    /// (seed 000: a CCAS with one EHPAD is not an OG, a hospital with two EHPAD is).
    pub fn is_og(&self) -> bool {
        self.managed_finess_count >= 2
    }
}

/// An establishment or service (one site, FINESS géographique) in the dashboard's scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Establishment {
    pub finess: Finess,
    pub name: String,
    pub category: Category,
    pub legal_entity: Finess,
    /// Set on a secondary establishment: the principal its data are merged into.
    pub principal: Option<Finess>,
    pub capacity: Capacity,
}

impl Establishment {
    pub fn departement(&self) -> Departement {
        self.finess.departement()
    }

    pub fn region(&self) -> Option<Region> {
        self.departement().region()
    }

    pub fn is_secondary(&self) -> bool {
        self.principal.is_some()
    }

    /// Only principal establishments answer; a secondary's data go into its principal's.
    pub fn gets_questionnaire(&self) -> bool {
        !self.is_secondary()
    }
}

/// Why a set of structures is not a consistent referential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferentialError {
    #[error("establishment {0} appears twice")]
    DuplicateEstablishment(Finess),
    #[error(
        "establishment {establishment} refers to legal entity {legal_entity}, which is not in the referential"
    )]
    UnknownLegalEntity {
        establishment: Finess,
        legal_entity: Finess,
    },
    #[error(
        "secondary establishment {secondary} refers to principal {principal}, which is not in the referential"
    )]
    UnknownPrincipal {
        secondary: Finess,
        principal: Finess,
    },
    #[error("secondary establishment {secondary} refers to {principal}, which is itself secondary")]
    PrincipalIsSecondary {
        secondary: Finess,
        principal: Finess,
    },
    #[error(
        "legal entity {legal_entity} manages {counted} establishments of the referential but declares only {declared} FINESS"
    )]
    ManagedCountTooLow {
        legal_entity: Finess,
        counted: u32,
        declared: u32,
    },
}

/// The structures of a campaign: legal entities and the establishments they manage.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Referential {
    entities: BTreeMap<Finess, LegalEntity>,
    establishments: BTreeMap<Finess, Establishment>,
}

/// Something that answers a questionnaire in a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Respondent {
    pub finess: Finess,
    pub kind: RespondentKind,
}

impl Referential {
    /// Checks the links between structures and builds the referential.
    pub fn new(
        entities: impl IntoIterator<Item = LegalEntity>,
        establishments: impl IntoIterator<Item = Establishment>,
    ) -> Result<Referential, ReferentialError> {
        let entities: BTreeMap<_, _> = entities.into_iter().map(|e| (e.finess, e)).collect();
        let mut by_finess = BTreeMap::new();
        let mut counted: BTreeMap<Finess, u32> = BTreeMap::new();
        for e in establishments {
            if !entities.contains_key(&e.legal_entity) {
                return Err(ReferentialError::UnknownLegalEntity {
                    establishment: e.finess,
                    legal_entity: e.legal_entity,
                });
            }
            *counted.entry(e.legal_entity).or_default() += 1;
            if let Some(previous) = by_finess.insert(e.finess, e) {
                return Err(ReferentialError::DuplicateEstablishment(previous.finess));
            }
        }
        for e in by_finess.values() {
            if let Some(principal) = e.principal {
                match by_finess.get(&principal) {
                    None => {
                        return Err(ReferentialError::UnknownPrincipal {
                            secondary: e.finess,
                            principal,
                        });
                    }
                    Some(p) if p.is_secondary() => {
                        return Err(ReferentialError::PrincipalIsSecondary {
                            secondary: e.finess,
                            principal,
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        for (ej, &n) in &counted {
            let declared = entities[ej].managed_finess_count;
            if declared < n {
                return Err(ReferentialError::ManagedCountTooLow {
                    legal_entity: *ej,
                    counted: n,
                    declared,
                });
            }
        }
        Ok(Referential {
            entities,
            establishments: by_finess,
        })
    }

    pub fn legal_entity(&self, finess: &Finess) -> Option<&LegalEntity> {
        self.entities.get(finess)
    }

    pub fn establishment(&self, finess: &Finess) -> Option<&Establishment> {
        self.establishments.get(finess)
    }

    pub fn legal_entities(&self) -> impl Iterator<Item = &LegalEntity> {
        self.entities.values()
    }

    pub fn establishments(&self) -> impl Iterator<Item = &Establishment> {
        self.establishments.values()
    }

    /// The legal entities that count as OG in the dashboard.
    pub fn ogs(&self) -> impl Iterator<Item = &LegalEntity> {
        self.entities.values().filter(|e| e.is_og())
    }

    /// The OG managing an establishment, if its legal entity is an OG.
    pub fn og_of(&self, establishment: &Finess) -> Option<&LegalEntity> {
        let e = self.establishments.get(establishment)?;
        self.entities.get(&e.legal_entity).filter(|le| le.is_og())
    }

    /// The establishments in scope managed by a legal entity.
    pub fn establishments_of<'a>(
        &'a self,
        legal_entity: &'a Finess,
    ) -> impl Iterator<Item = &'a Establishment> + 'a {
        self.establishments
            .values()
            .filter(move |e| &e.legal_entity == legal_entity)
    }

    /// The secondary establishments merged into a principal.
    pub fn secondaries_of<'a>(
        &'a self,
        principal: &'a Finess,
    ) -> impl Iterator<Item = &'a Establishment> + 'a {
        self.establishments
            .values()
            .filter(move |e| e.principal.as_ref() == Some(principal))
    }

    /// Everyone who answers a questionnaire: every principal establishment, and every OG.
    pub fn respondents(&self) -> impl Iterator<Item = Respondent> + '_ {
        let esms = self
            .establishments
            .values()
            .filter(|e| e.gets_questionnaire())
            .map(|e| Respondent {
                finess: e.finess,
                kind: RespondentKind::Esms(e.category),
            });
        let ogs = self.ogs().map(|o| Respondent {
            finess: o.finess,
            kind: RespondentKind::Og,
        });
        esms.chain(ogs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(first_eight: &str) -> Finess {
        Finess::with_key(first_eight).unwrap()
    }

    fn entity(n: &str, count: u32) -> LegalEntity {
        LegalEntity {
            finess: f(n),
            name: format!("EJ {n}"),
            managed_finess_count: count,
        }
    }

    fn esms(n: &str, ej: &str, principal: Option<&str>) -> Establishment {
        Establishment {
            finess: f(n),
            name: format!("ET {n}"),
            category: Category::Ehpad,
            legal_entity: f(ej),
            principal: principal.map(f),
            capacity: Capacity {
                permanent: 80,
                temporary: 2,
                day_care: 6,
            },
        }
    }

    #[test]
    fn a_ccas_managing_one_ehpad_is_not_an_og_but_a_hospital_managing_two_is() {
        let referential = Referential::new(
            [entity("69000001", 1), entity("69000002", 3)],
            [
                esms("69100001", "69000001", None),
                esms("69100002", "69000002", None),
                esms("69100003", "69000002", None),
            ],
        )
        .unwrap();
        assert!(referential.og_of(&f("69100001")).is_none());
        assert_eq!(
            referential.og_of(&f("69100002")).unwrap().finess,
            f("69000002")
        );
        assert_eq!(referential.ogs().count(), 1);
    }

    #[test]
    fn finess_outside_the_dashboard_still_count_for_the_og_rule() {
        // One EHPAD in scope plus a hospital site not in the referential: declared count 2.
        let referential = Referential::new(
            [entity("69000002", 2)],
            [esms("69100002", "69000002", None)],
        )
        .unwrap();
        assert!(referential.og_of(&f("69100002")).is_some());
    }

    #[test]
    fn secondaries_get_no_questionnaire_and_are_merged_into_their_principal() {
        let referential = Referential::new(
            [entity("69000001", 2)],
            [
                esms("69100001", "69000001", None),
                esms("69100002", "69000001", Some("69100001")),
            ],
        )
        .unwrap();
        let respondents: Vec<_> = referential.respondents().collect();
        assert_eq!(respondents.len(), 2, "one principal and the OG");
        assert!(respondents.iter().all(|r| r.finess != f("69100002")));
        assert_eq!(referential.secondaries_of(&f("69100001")).count(), 1);
    }

    #[test]
    fn inconsistent_links_are_rejected() {
        let unknown_ej = Referential::new(
            [entity("69000001", 2)],
            [esms("69100001", "69000009", None)],
        );
        assert!(matches!(
            unknown_ej,
            Err(ReferentialError::UnknownLegalEntity { .. })
        ));
        let unknown_principal = Referential::new(
            [entity("69000001", 2)],
            [esms("69100001", "69000001", Some("69100009"))],
        );
        assert!(matches!(
            unknown_principal,
            Err(ReferentialError::UnknownPrincipal { .. })
        ));
        let chained = Referential::new(
            [entity("69000001", 3)],
            [
                esms("69100001", "69000001", None),
                esms("69100002", "69000001", Some("69100001")),
                esms("69100003", "69000001", Some("69100002")),
            ],
        );
        assert!(matches!(
            chained,
            Err(ReferentialError::PrincipalIsSecondary { .. })
        ));
        let undercounted = Referential::new(
            [entity("69000001", 1)],
            [
                esms("69100001", "69000001", None),
                esms("69100002", "69000001", None),
            ],
        );
        assert!(matches!(
            undercounted,
            Err(ReferentialError::ManagedCountTooLow {
                counted: 2,
                declared: 1,
                ..
            })
        ));
    }
}
