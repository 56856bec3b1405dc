//! ESMS categories in the campaign's scope, from their FINESS category codes (domain §4).
//!
//! A structure whose category is not listed here (an autonomous day-care centre, a hospital)
//! gets no questionnaire. The managing organisation (OG) is not a FINESS category but answers
//! a questionnaire of its own, so applicability masks reserve one bit for it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A category of ESMS that fills the dashboard questionnaire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Ehpad,
    Ssiad,
    Spasad,
    Saa,
    Ime,
    Itep,
    Eeap,
    Iem,
    InstitutDeficientsAuditifs,
    InstitutDeficientsVisuels,
    Ies,
    Sessad,
    Camsp,
    Cmpp,
    Esat,
    Crp,
    Mas,
    Eam,
    Eanm,
    Savs,
    Samsah,
}

/// Who answers a questionnaire: an ESMS of some category, or a managing organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RespondentKind {
    Esms(Category),
    Og,
}

/// Broad group of the people a category supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Public {
    Elderly,
    DisabledChildren,
    DisabledAdults,
}

struct CategoryInfo {
    category: Category,
    key: &'static str,
    label: &'static str,
    /// The current FINESS code first, then historical codes that map to the same category.
    finess_codes: &'static [u16],
    public: Public,
    /// Whether the category has beds or places (permanent, temporary, day care) rather than a caseload.
    residential: bool,
}

const CATEGORIES: [CategoryInfo; 21] = {
    use Category::*;
    use Public::*;
    [
        CategoryInfo {
            category: Ehpad,
            key: "EHPAD",
            label: "Établissement d'hébergement pour personnes âgées dépendantes",
            finess_codes: &[500],
            public: Elderly,
            residential: true,
        },
        CategoryInfo {
            category: Ssiad,
            key: "SSIAD",
            label: "Service de soins infirmiers à domicile",
            finess_codes: &[354],
            public: Elderly,
            residential: false,
        },
        CategoryInfo {
            category: Spasad,
            key: "SPASAD",
            label: "Service polyvalent d'aide et de soins à domicile",
            finess_codes: &[209],
            public: Elderly,
            residential: false,
        },
        CategoryInfo {
            category: Saa,
            key: "SAA",
            label: "Service d'aide et d'accompagnement à domicile",
            finess_codes: &[460],
            public: Elderly,
            residential: false,
        },
        CategoryInfo {
            category: Ime,
            key: "IME",
            label: "Institut médico-éducatif",
            finess_codes: &[183],
            public: DisabledChildren,
            residential: true,
        },
        CategoryInfo {
            category: Itep,
            key: "ITEP",
            label: "Institut thérapeutique, éducatif et pédagogique",
            finess_codes: &[186],
            public: DisabledChildren,
            residential: true,
        },
        CategoryInfo {
            category: Eeap,
            key: "EEAP",
            label: "Établissement pour enfants ou adolescents polyhandicapés",
            finess_codes: &[188],
            public: DisabledChildren,
            residential: true,
        },
        CategoryInfo {
            category: Iem,
            key: "IEM",
            label: "Institut d'éducation motrice",
            finess_codes: &[192],
            public: DisabledChildren,
            residential: true,
        },
        CategoryInfo {
            category: InstitutDeficientsAuditifs,
            key: "IDA",
            label: "Institut pour déficients auditifs",
            finess_codes: &[195],
            public: DisabledChildren,
            residential: true,
        },
        CategoryInfo {
            category: InstitutDeficientsVisuels,
            key: "IDV",
            label: "Institut pour déficients visuels",
            finess_codes: &[194],
            public: DisabledChildren,
            residential: true,
        },
        CategoryInfo {
            category: Ies,
            key: "IES",
            label: "Institut d'éducation sensorielle pour enfants sourds-aveugles",
            finess_codes: &[196],
            public: DisabledChildren,
            residential: true,
        },
        CategoryInfo {
            category: Sessad,
            key: "SESSAD",
            label: "Service d'éducation spéciale et de soins à domicile",
            finess_codes: &[182],
            public: DisabledChildren,
            residential: false,
        },
        CategoryInfo {
            category: Camsp,
            key: "CAMSP",
            label: "Centre d'action médico-sociale précoce",
            finess_codes: &[190],
            public: DisabledChildren,
            residential: false,
        },
        CategoryInfo {
            category: Cmpp,
            key: "CMPP",
            label: "Centre médico-psycho-pédagogique",
            finess_codes: &[189],
            public: DisabledChildren,
            residential: false,
        },
        CategoryInfo {
            category: Esat,
            key: "ESAT",
            label: "Établissement et service d'accompagnement par le travail",
            finess_codes: &[246],
            public: DisabledAdults,
            residential: false,
        },
        CategoryInfo {
            category: Crp,
            key: "CRP",
            label: "Centre de rééducation professionnelle",
            finess_codes: &[249],
            public: DisabledAdults,
            residential: true,
        },
        CategoryInfo {
            category: Mas,
            key: "MAS",
            label: "Maison d'accueil spécialisée",
            finess_codes: &[255],
            public: DisabledAdults,
            residential: true,
        },
        CategoryInfo {
            category: Eam,
            key: "EAM",
            label: "Établissement d'accueil médicalisé (ex-FAM)",
            finess_codes: &[448, 437],
            public: DisabledAdults,
            residential: true,
        },
        CategoryInfo {
            category: Eanm,
            key: "EANM",
            label: "Établissement d'accueil non médicalisé (foyers de vie, d'hébergement)",
            finess_codes: &[449, 382, 252, 253],
            public: DisabledAdults,
            residential: true,
        },
        CategoryInfo {
            category: Savs,
            key: "SAVS",
            label: "Service d'accompagnement à la vie sociale",
            finess_codes: &[446],
            public: DisabledAdults,
            residential: false,
        },
        CategoryInfo {
            category: Samsah,
            key: "SAMSAH",
            label: "Service d'accompagnement médico-social pour adultes handicapés",
            finess_codes: &[445],
            public: DisabledAdults,
            residential: false,
        },
    ]
};

/// The bit of the OG pseudo-category in an applicability mask.
pub const OG_BIT: u32 = 1 << 21;

impl Category {
    pub const ALL: [Category; 21] = {
        let mut all = [Category::Ehpad; 21];
        let mut i = 0;
        while i < 21 {
            all[i] = CATEGORIES[i].category;
            i += 1;
        }
        all
    };

    fn info(self) -> &'static CategoryInfo {
        &CATEGORIES[self as usize]
    }

    /// The category of a FINESS category code (`categetab`), or `None` when out of scope.
    pub fn from_finess_code(code: u16) -> Option<Category> {
        CATEGORIES
            .iter()
            .find(|c| c.finess_codes.contains(&code))
            .map(|c| c.category)
    }

    /// Looks a category up by its short key (`EHPAD`, `SESSAD`...), as definition files write it.
    pub fn from_key(key: &str) -> Option<Category> {
        CATEGORIES
            .iter()
            .find(|c| c.key.eq_ignore_ascii_case(key))
            .map(|c| c.category)
    }

    pub fn key(self) -> &'static str {
        self.info().key
    }

    pub fn label(self) -> &'static str {
        self.info().label
    }

    /// The current FINESS category code.
    pub fn finess_code(self) -> u16 {
        self.info().finess_codes[0]
    }

    pub fn public(self) -> Public {
        self.info().public
    }

    pub fn is_residential(self) -> bool {
        self.info().residential
    }

    /// The bit of this category in an applicability mask.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// Since 2025 home-help services (SAD) answer on their own platform; the others share the
    /// "generic" questionnaire.
    pub fn uses_sad_platform(self) -> bool {
        matches!(self, Category::Saa | Category::Spasad)
    }
}

impl RespondentKind {
    /// `OG`, or the category's key (`EHPAD`...): how listings and counters name it.
    pub fn key(self) -> &'static str {
        match self {
            RespondentKind::Esms(c) => c.key(),
            RespondentKind::Og => "OG",
        }
    }

    pub fn from_key(key: &str) -> Option<RespondentKind> {
        if key == "OG" {
            Some(RespondentKind::Og)
        } else {
            Category::from_key(key).map(RespondentKind::Esms)
        }
    }

    pub fn bit(self) -> u32 {
        match self {
            RespondentKind::Esms(c) => c.bit(),
            RespondentKind::Og => OG_BIT,
        }
    }

    /// The platform whose questionnaire this respondent answers: SAA and SPASAD on the SAD
    /// platform, every other ESMS (SSIAD included) and the OG on the generic one.
    pub fn platform(self) -> crate::campaign::Platform {
        match self {
            RespondentKind::Esms(c) if c.uses_sad_platform() => crate::campaign::Platform::Sad,
            _ => crate::campaign::Platform::Generic,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// Resolves a key of an applicability list: a category key, `OG`, or a group
/// (`TOUT_ESMS`, `PA`, `PH`, `PH_ENFANTS`, `PH_ADULTES`, `HEBERGEMENT`, `SERVICES`).
pub fn applicability_mask(key: &str) -> Option<u32> {
    let of = |pred: &dyn Fn(Category) -> bool| {
        Category::ALL
            .iter()
            .filter(|c| pred(**c))
            .fold(0, |m, c| m | c.bit())
    };
    let mask = match key.to_ascii_uppercase().as_str() {
        "OG" => OG_BIT,
        "TOUT_ESMS" => of(&|_| true),
        "PA" => of(&|c| c.public() == Public::Elderly),
        "PH" => of(&|c| c.public() != Public::Elderly),
        "PH_ENFANTS" => of(&|c| c.public() == Public::DisabledChildren),
        "PH_ADULTES" => of(&|c| c.public() == Public::DisabledAdults),
        "HEBERGEMENT" => of(&|c| c.is_residential()),
        "SERVICES" => of(&|c| !c.is_residential()),
        other => Category::from_key(other)?.bit(),
    };
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finess_category_codes_map_to_categories_including_historical_ones() {
        assert_eq!(Category::from_finess_code(500), Some(Category::Ehpad));
        assert_eq!(Category::from_finess_code(437), Some(Category::Eam));
        assert_eq!(Category::from_finess_code(382), Some(Category::Eanm));
        assert_eq!(Category::from_finess_code(252), Some(Category::Eanm));
        assert_eq!(Category::Eanm.finess_code(), 449);
    }

    #[test]
    fn categories_outside_the_scope_get_no_questionnaire() {
        // 207: autonomous day-care centre for elderly people; 101: hospital centre.
        assert_eq!(Category::from_finess_code(207), None);
        assert_eq!(Category::from_finess_code(101), None);
    }

    #[test]
    fn every_category_has_a_distinct_bit_below_the_og_bit() {
        let all = Category::ALL.iter().fold(0u32, |m, c| {
            assert_eq!(m & c.bit(), 0);
            m | c.bit()
        });
        assert_eq!(all & OG_BIT, 0);
        assert_eq!(applicability_mask("tout_esms"), Some(all));
        assert_eq!(
            applicability_mask("PA").unwrap() | applicability_mask("PH").unwrap(),
            all
        );
        assert_eq!(applicability_mask("NOPE"), None);
    }
}
