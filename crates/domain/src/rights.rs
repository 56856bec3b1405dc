//! Who may do what on which target: the one decision every function calls (domain §6).
//!
//! A person has one account and may hold several roles (a profile on several structures);
//! a request is made under one role, chosen by the user. Whether the campaign's phase allows
//! the action is a separate question (`campaign::Phase::allows`).

use crate::finess::Finess;
use crate::geo::{Departement, Region};
use serde::{Deserialize, Serialize};

/// The profile of a user on a structure, given by its APE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Enters and validates data.
    Gestionnaire,
    /// Consults only.
    Lecteur,
}

/// A role an account holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    NationalAdmin,
    /// ARS administrator.
    RegionalAdmin {
        region: Region,
    },
    /// Departmental council (CD) administrator.
    DepartementalAdmin {
        departement: Departement,
    },
    /// Administrateur principal d'établissement of a structure (ESMS or OG): the rights of a
    /// Gestionnaire, plus the administration of the structure's users.
    Ape {
        structure: Finess,
    },
    /// A user with a profile on a structure.
    Member {
        structure: Finess,
        profile: Profile,
    },
}

/// Whether a structure is an establishment or a managing organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructureKind {
    Esms,
    Og,
}

/// What the rights decision needs to know of a structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StructureTarget {
    pub finess: Finess,
    pub kind: StructureKind,
    pub departement: Departement,
    /// For an ESMS, its managing organisation when the legal entity counts as an OG.
    pub managing_og: Option<Finess>,
}

/// What an action is done on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "target", rename_all = "snake_case")]
pub enum Target {
    /// A structure: its questionnaire, its accounts, its restitutions.
    Structure(StructureTarget),
    /// Aggregated views and exports of a region.
    Region { region: Region },
    /// Aggregated views and exports of a département.
    Departement { departement: Departement },
    /// The whole campaign: referential imports, closure.
    National,
}

/// A territory with its own administrators: a region (ARS) or a département (CD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Territory {
    Region(Region),
    Departement(Departement),
}

impl Territory {
    /// The administrator role of this territory.
    pub fn role(self) -> Role {
        match self {
            Territory::Region(region) => Role::RegionalAdmin { region },
            Territory::Departement(departement) => Role::DepartementalAdmin { departement },
        }
    }

    /// The territory a role administers, if it is an ARS or CD role.
    pub fn of(role: &Role) -> Option<Territory> {
        match role {
            Role::RegionalAdmin { region } => Some(Territory::Region(*region)),
            Role::DepartementalAdmin { departement } => Some(Territory::Departement(*departement)),
            _ => None,
        }
    }
}

/// Which part of a questionnaire an entry or validation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataScope {
    /// Only items an OG may enter for its ESMS by subsidiarity (HR/FTE, IS, finance).
    Subsidiarity,
    /// Any item.
    All,
}

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", content = "scope", rename_all = "snake_case")]
pub enum Action {
    Consult,
    EnterData(DataScope),
    Validate(DataScope),
    /// See entry and validation progress.
    FollowProgress,
    /// Send reminders to late structures.
    Remind,
    /// Reopen a validated questionnaire (fiabilisation).
    Reopen,
    /// Mark a validated questionnaire as checked (fiabilisation).
    Check,
    ViewRestitutions,
    Export,
    /// Create, modify, delete the Gestionnaire/Lecteur accounts of a structure.
    ManageUsers,
    /// Create, modify, delete the APE account of a structure.
    ManageApe,
    ImportReferential,
    CloseCampaign,
}

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Denied {
    #[error("the target is outside the caller's territory")]
    OutsideTerritory,
    #[error("the target is not the caller's structure nor an ESMS its OG manages")]
    OutsideStructure,
    #[error("the caller's role does not allow this action")]
    ActionNotAllowed,
}

/// How the role's structure relates to a target structure.
enum Relation {
    Own,
    ManagedByOurOg,
}

/// Decides whether `role` may do `action` on `target`.
pub fn authorize(role: &Role, action: Action, target: &Target) -> Result<(), Denied> {
    use Action::*;
    let allow = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Denied::ActionNotAllowed)
        }
    };
    match role {
        Role::NationalAdmin => allow(!matches!(action, EnterData(_) | Validate(_) | ManageUsers)),
        Role::RegionalAdmin { region } => {
            let inside = match target {
                Target::Structure(s) => s.departement.region() == Some(*region),
                Target::Region { region: r } => r == region,
                Target::Departement { departement } => departement.region() == Some(*region),
                Target::National => false,
            };
            territorial(action, target, inside)
        }
        Role::DepartementalAdmin { departement } => {
            let inside = match target {
                Target::Structure(s) => s.departement == *departement,
                Target::Departement { departement: d } => d == departement,
                Target::Region { .. } | Target::National => false,
            };
            territorial(action, target, inside)
        }
        Role::Ape { structure } => {
            // An APE has the rights of a Gestionnaire, plus the administration of accounts:
            // its own structure's users, and the APE of the ESMS its OG manages.
            let relation = relation(structure, target)?;
            let administers = match relation {
                Relation::Own => action == ManageUsers,
                Relation::ManagedByOurOg => action == ManageApe,
            };
            allow(administers || member_allows(Profile::Gestionnaire, relation, action))
        }
        Role::Member { structure, profile } => {
            let relation = relation(structure, target)?;
            allow(member_allows(*profile, relation, action))
        }
    }
}

/// What a user with a profile may do on their own structure or on an ESMS their OG manages.
fn member_allows(profile: Profile, relation: Relation, action: Action) -> bool {
    use Action::*;
    match (profile, relation) {
        (Profile::Gestionnaire, Relation::Own) => matches!(
            action,
            Consult | EnterData(_) | Validate(_) | FollowProgress | ViewRestitutions | Export
        ),
        (Profile::Gestionnaire, Relation::ManagedByOurOg) => matches!(
            action,
            Consult
                | EnterData(DataScope::Subsidiarity)
                | Validate(DataScope::Subsidiarity)
                | FollowProgress
                | Remind
                | ViewRestitutions
                | Export
        ),
        (Profile::Lecteur, _) => matches!(action, Consult | FollowProgress | ViewRestitutions),
    }
}

/// ARS and CD administrators steer their territory: they consult, follow, remind, reopen,
/// export and administer APE accounts; they never enter or validate a structure's data.
fn territorial(action: Action, target: &Target, inside: bool) -> Result<(), Denied> {
    use Action::*;
    if !inside {
        return Err(Denied::OutsideTerritory);
    }
    let on_structure = matches!(target, Target::Structure(_));
    let ok = match action {
        Consult | Reopen | Check | ManageApe => on_structure,
        FollowProgress | Remind | ViewRestitutions | Export => true,
        EnterData(_) | Validate(_) | ManageUsers | ImportReferential | CloseCampaign => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Denied::ActionNotAllowed)
    }
}

fn relation(structure: &Finess, target: &Target) -> Result<Relation, Denied> {
    match target {
        Target::Structure(t) if t.finess == *structure => Ok(Relation::Own),
        Target::Structure(t)
            if t.kind == StructureKind::Esms && t.managing_og == Some(*structure) =>
        {
            Ok(Relation::ManagedByOurOg)
        }
        _ => Err(Denied::OutsideStructure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn f(first_eight: &str) -> Finess {
        Finess::with_key(first_eight).unwrap()
    }

    // One OG in the Rhône (69) managing ESMS A; ESMS B in the Rhône belongs to another
    // legal entity; ESMS C is in Paris (another region).
    fn og() -> Finess {
        f("69000001")
    }
    fn esms(n: &str, dep: &str, og: Option<Finess>) -> Target {
        Target::Structure(StructureTarget {
            finess: f(n),
            kind: StructureKind::Esms,
            departement: Departement::from_code(dep).unwrap(),
            managing_og: og,
        })
    }
    fn esms_a() -> Target {
        esms("69100001", "69", Some(og()))
    }
    fn esms_b() -> Target {
        esms("69100002", "69", None)
    }
    fn esms_c() -> Target {
        esms("75100003", "75", None)
    }
    fn og_target() -> Target {
        Target::Structure(StructureTarget {
            finess: og(),
            kind: StructureKind::Og,
            departement: Departement::from_code("69").unwrap(),
            managing_og: None,
        })
    }
    fn ara() -> Region {
        Region::from_code(84).unwrap()
    }

    const ACTIONS: [Action; 15] = [
        Consult,
        EnterData(DataScope::All),
        EnterData(DataScope::Subsidiarity),
        Validate(DataScope::All),
        Validate(DataScope::Subsidiarity),
        FollowProgress,
        Remind,
        Reopen,
        Check,
        ViewRestitutions,
        Export,
        ManageUsers,
        ManageApe,
        ImportReferential,
        CloseCampaign,
    ];

    /// Checks a row of the rights table: `expected` has one letter per action of `ACTIONS`,
    /// `y` allowed, `.` denied.
    fn row(role: Role, target: Target, expected: &str) {
        assert_eq!(expected.len(), ACTIONS.len());
        for (action, e) in ACTIONS.iter().zip(expected.chars()) {
            let got = authorize(&role, *action, &target).is_ok();
            assert_eq!(
                got,
                e == 'y',
                "{role:?} {action:?} on {target:?}: expected {}",
                if e == 'y' { "allowed" } else { "denied" }
            );
        }
    }

    // Columns of the expected rows: Consult, EnterData(All), EnterData(Subsidiarity),
    // Validate(All), Validate(Subsidiarity), FollowProgress, Remind, Reopen, Check, ViewRestitutions,
    // Export, ManageUsers, ManageApe, ImportReferential, CloseCampaign.
    #[test]
    fn esms_gestionnaire_consults_enters_and_validates_its_own_data_only() {
        let role = Role::Member {
            structure: f("69100001"),
            profile: Profile::Gestionnaire,
        };
        row(role, esms_a(), "yyyyyy...yy....");
        row(role, esms_b(), "...............");
        row(role, og_target(), "...............");
    }

    #[test]
    fn esms_lecteur_only_consults_its_own_data() {
        let role = Role::Member {
            structure: f("69100001"),
            profile: Profile::Lecteur,
        };
        row(role, esms_a(), "y....y...y.....");
        row(role, esms_b(), "...............");
    }

    #[test]
    fn og_gestionnaire_enters_and_validates_only_subsidiary_data_of_its_esms() {
        let role = Role::Member {
            structure: og(),
            profile: Profile::Gestionnaire,
        };
        row(role, og_target(), "yyyyyy...yy....");
        row(role, esms_a(), "y.y.yyy..yy....");
        row(role, esms_b(), "...............");
        row(role, esms_c(), "...............");
    }

    #[test]
    fn og_lecteur_consults_the_og_and_its_esms_but_changes_nothing() {
        let role = Role::Member {
            structure: og(),
            profile: Profile::Lecteur,
        };
        row(role, og_target(), "y....y...y.....");
        row(role, esms_a(), "y....y...y.....");
        row(role, esms_b(), "...............");
    }

    #[test]
    fn esms_ape_has_gestionnaire_rights_and_manages_its_users() {
        let role = Role::Ape {
            structure: f("69100002"),
        };
        row(role, esms_b(), "yyyyyy...yyy...");
        row(role, esms_a(), "...............");
    }

    #[test]
    fn og_ape_administers_the_ape_of_the_esms_it_manages() {
        let role = Role::Ape { structure: og() };
        row(role, og_target(), "yyyyyy...yyy...");
        row(role, esms_a(), "y.y.yyy..yy.y..");
        row(role, esms_b(), "...............");
    }

    #[test]
    fn ars_administrator_steers_its_region_only() {
        let role = Role::RegionalAdmin { region: ara() };
        row(role, esms_a(), "y....yyyyyy.y..");
        row(role, esms_b(), "y....yyyyyy.y..");
        row(role, esms_c(), "...............");
        row(role, Target::Region { region: ara() }, ".....yy..yy....");
        row(
            role,
            Target::Departement {
                departement: Departement::from_code("38").unwrap(),
            },
            ".....yy..yy....",
        );
        row(
            role,
            Target::Region {
                region: Region::from_code(11).unwrap(),
            },
            "...............",
        );
        row(role, Target::National, "...............");
    }

    #[test]
    fn departmental_administrator_steers_its_departement_only() {
        let role = Role::DepartementalAdmin {
            departement: Departement::from_code("69").unwrap(),
        };
        row(role, esms_a(), "y....yyyyyy.y..");
        row(role, esms("38100004", "38", None), "...............");
        row(
            role,
            Target::Departement {
                departement: Departement::from_code("69").unwrap(),
            },
            ".....yy..yy....",
        );
        row(role, Target::Region { region: ara() }, "...............");
    }

    #[test]
    fn national_administrator_runs_the_campaign_but_never_fills_a_questionnaire() {
        let role = Role::NationalAdmin;
        row(role, esms_a(), "y....yyyyyy.yyy");
        row(role, Target::National, "y....yyyyyy.yyy");
    }

    #[test]
    fn refusals_say_why() {
        let ars = Role::RegionalAdmin { region: ara() };
        assert_eq!(
            authorize(&ars, Consult, &esms_c()),
            Err(Denied::OutsideTerritory)
        );
        assert_eq!(
            authorize(&ars, EnterData(DataScope::All), &esms_a()),
            Err(Denied::ActionNotAllowed)
        );
        let ape = Role::Ape { structure: og() };
        assert_eq!(
            authorize(&ape, ManageApe, &esms_b()),
            Err(Denied::OutsideStructure)
        );
    }
}
