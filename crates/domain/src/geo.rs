//! Regions and départements of France, as the campaign uses them.
//!
//! FINESS numbers carry their own code for overseas territories (`9A`..`9J`), which differs
//! from the INSEE code (`971`..`988`); both are kept so that imports from either side match.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the 18 French regions (INSEE region code), each steered by one ARS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Region(u8);

/// The static description of a region.
#[derive(Debug)]
pub struct RegionInfo {
    pub code: u8,
    pub name: &'static str,
}

const REGIONS: [RegionInfo; 18] = [
    RegionInfo {
        code: 1,
        name: "Guadeloupe",
    },
    RegionInfo {
        code: 2,
        name: "Martinique",
    },
    RegionInfo {
        code: 3,
        name: "Guyane",
    },
    RegionInfo {
        code: 4,
        name: "La Réunion",
    },
    RegionInfo {
        code: 6,
        name: "Mayotte",
    },
    RegionInfo {
        code: 11,
        name: "Île-de-France",
    },
    RegionInfo {
        code: 24,
        name: "Centre-Val de Loire",
    },
    RegionInfo {
        code: 27,
        name: "Bourgogne-Franche-Comté",
    },
    RegionInfo {
        code: 28,
        name: "Normandie",
    },
    RegionInfo {
        code: 32,
        name: "Hauts-de-France",
    },
    RegionInfo {
        code: 44,
        name: "Grand Est",
    },
    RegionInfo {
        code: 52,
        name: "Pays de la Loire",
    },
    RegionInfo {
        code: 53,
        name: "Bretagne",
    },
    RegionInfo {
        code: 75,
        name: "Nouvelle-Aquitaine",
    },
    RegionInfo {
        code: 76,
        name: "Occitanie",
    },
    RegionInfo {
        code: 84,
        name: "Auvergne-Rhône-Alpes",
    },
    RegionInfo {
        code: 93,
        name: "Provence-Alpes-Côte d'Azur",
    },
    RegionInfo {
        code: 94,
        name: "Corse",
    },
];

impl Region {
    /// All 18 regions.
    pub fn all() -> impl Iterator<Item = Region> {
        REGIONS.iter().map(|r| Region(r.code))
    }

    /// The region with this INSEE code, if it is one of the 18.
    pub fn from_code(code: u8) -> Option<Region> {
        REGIONS
            .iter()
            .any(|r| r.code == code)
            .then_some(Region(code))
    }

    pub fn code(self) -> u8 {
        self.0
    }

    pub fn name(self) -> &'static str {
        REGIONS
            .iter()
            .find(|r| r.code == self.0)
            .map_or("?", |r| r.name)
    }

    /// The départements of this region.
    pub fn departements(self) -> impl Iterator<Item = Departement> {
        Departement::all().filter(move |d| d.region() == Some(self))
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// The static description of a département (or overseas collectivity).
#[derive(Debug)]
pub struct DepartementInfo {
    /// INSEE code: `01`..`95`, `2A`, `2B`, `971`..`976`, `975`, `986`..`988`.
    pub insee: &'static str,
    /// The two characters FINESS uses: the same as INSEE in metropolitan France, `9A`..`9J` overseas.
    pub finess: &'static str,
    /// The first characters of a FINESS number located there (2, or 4 overseas).
    pub finess_prefix: &'static str,
    pub name: &'static str,
    /// INSEE region code; `None` for the overseas collectivities outside the 18 regions.
    pub region: Option<u8>,
}

macro_rules! metro {
    ($code:literal, $name:literal, $region:literal) => {
        DepartementInfo {
            insee: $code,
            finess: $code,
            finess_prefix: $code,
            name: $name,
            region: Some($region),
        }
    };
}

const DEPARTEMENTS: [DepartementInfo; 105] = [
    metro!("01", "Ain", 84),
    metro!("02", "Aisne", 32),
    metro!("03", "Allier", 84),
    metro!("04", "Alpes-de-Haute-Provence", 93),
    metro!("05", "Hautes-Alpes", 93),
    metro!("06", "Alpes-Maritimes", 93),
    metro!("07", "Ardèche", 84),
    metro!("08", "Ardennes", 44),
    metro!("09", "Ariège", 76),
    metro!("10", "Aube", 44),
    metro!("11", "Aude", 76),
    metro!("12", "Aveyron", 76),
    metro!("13", "Bouches-du-Rhône", 93),
    metro!("14", "Calvados", 28),
    metro!("15", "Cantal", 84),
    metro!("16", "Charente", 75),
    metro!("17", "Charente-Maritime", 75),
    metro!("18", "Cher", 24),
    metro!("19", "Corrèze", 75),
    metro!("21", "Côte-d'Or", 27),
    metro!("22", "Côtes-d'Armor", 53),
    metro!("23", "Creuse", 75),
    metro!("24", "Dordogne", 75),
    metro!("25", "Doubs", 27),
    metro!("26", "Drôme", 84),
    metro!("27", "Eure", 28),
    metro!("28", "Eure-et-Loir", 24),
    metro!("29", "Finistère", 53),
    metro!("2A", "Corse-du-Sud", 94),
    metro!("2B", "Haute-Corse", 94),
    metro!("30", "Gard", 76),
    metro!("31", "Haute-Garonne", 76),
    metro!("32", "Gers", 76),
    metro!("33", "Gironde", 75),
    metro!("34", "Hérault", 76),
    metro!("35", "Ille-et-Vilaine", 53),
    metro!("36", "Indre", 24),
    metro!("37", "Indre-et-Loire", 24),
    metro!("38", "Isère", 84),
    metro!("39", "Jura", 27),
    metro!("40", "Landes", 75),
    metro!("41", "Loir-et-Cher", 24),
    metro!("42", "Loire", 84),
    metro!("43", "Haute-Loire", 84),
    metro!("44", "Loire-Atlantique", 52),
    metro!("45", "Loiret", 24),
    metro!("46", "Lot", 76),
    metro!("47", "Lot-et-Garonne", 75),
    metro!("48", "Lozère", 76),
    metro!("49", "Maine-et-Loire", 52),
    metro!("50", "Manche", 28),
    metro!("51", "Marne", 44),
    metro!("52", "Haute-Marne", 44),
    metro!("53", "Mayenne", 52),
    metro!("54", "Meurthe-et-Moselle", 44),
    metro!("55", "Meuse", 44),
    metro!("56", "Morbihan", 53),
    metro!("57", "Moselle", 44),
    metro!("58", "Nièvre", 27),
    metro!("59", "Nord", 32),
    metro!("60", "Oise", 32),
    metro!("61", "Orne", 28),
    metro!("62", "Pas-de-Calais", 32),
    metro!("63", "Puy-de-Dôme", 84),
    metro!("64", "Pyrénées-Atlantiques", 75),
    metro!("65", "Hautes-Pyrénées", 76),
    metro!("66", "Pyrénées-Orientales", 76),
    metro!("67", "Bas-Rhin", 44),
    metro!("68", "Haut-Rhin", 44),
    metro!("69", "Rhône", 84),
    metro!("70", "Haute-Saône", 27),
    metro!("71", "Saône-et-Loire", 27),
    metro!("72", "Sarthe", 52),
    metro!("73", "Savoie", 84),
    metro!("74", "Haute-Savoie", 84),
    metro!("75", "Paris", 11),
    metro!("76", "Seine-Maritime", 28),
    metro!("77", "Seine-et-Marne", 11),
    metro!("78", "Yvelines", 11),
    metro!("79", "Deux-Sèvres", 75),
    metro!("80", "Somme", 32),
    metro!("81", "Tarn", 76),
    metro!("82", "Tarn-et-Garonne", 76),
    metro!("83", "Var", 93),
    metro!("84", "Vaucluse", 93),
    metro!("85", "Vendée", 52),
    metro!("86", "Vienne", 75),
    metro!("87", "Haute-Vienne", 75),
    metro!("88", "Vosges", 44),
    metro!("89", "Yonne", 27),
    metro!("90", "Territoire de Belfort", 27),
    metro!("91", "Essonne", 11),
    metro!("92", "Hauts-de-Seine", 11),
    metro!("93", "Seine-Saint-Denis", 11),
    metro!("94", "Val-de-Marne", 11),
    metro!("95", "Val-d'Oise", 11),
    DepartementInfo {
        insee: "971",
        finess: "9A",
        finess_prefix: "9701",
        name: "Guadeloupe",
        region: Some(1),
    },
    DepartementInfo {
        insee: "972",
        finess: "9B",
        finess_prefix: "9702",
        name: "Martinique",
        region: Some(2),
    },
    DepartementInfo {
        insee: "973",
        finess: "9C",
        finess_prefix: "9703",
        name: "Guyane",
        region: Some(3),
    },
    DepartementInfo {
        insee: "974",
        finess: "9D",
        finess_prefix: "9704",
        name: "La Réunion",
        region: Some(4),
    },
    DepartementInfo {
        insee: "975",
        finess: "9E",
        finess_prefix: "9705",
        name: "Saint-Pierre-et-Miquelon",
        region: None,
    },
    DepartementInfo {
        insee: "976",
        finess: "9F",
        finess_prefix: "9805",
        name: "Mayotte",
        region: Some(6),
    },
    DepartementInfo {
        insee: "986",
        finess: "9G",
        finess_prefix: "9806",
        name: "Wallis-et-Futuna",
        region: None,
    },
    DepartementInfo {
        insee: "987",
        finess: "9H",
        finess_prefix: "9807",
        name: "Polynésie française",
        region: None,
    },
    DepartementInfo {
        insee: "988",
        finess: "9J",
        finess_prefix: "9808",
        name: "Nouvelle-Calédonie",
        region: None,
    },
];

/// A département (or overseas collectivity) known to FINESS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Departement(u8);

impl Departement {
    /// Every département and collectivity FINESS knows (101 départements + 4 collectivities).
    pub fn all() -> impl Iterator<Item = Departement> {
        (0..DEPARTEMENTS.len() as u8).map(Departement)
    }

    /// The 101 départements, i.e. those that belong to one of the 18 regions.
    pub fn in_regions() -> impl Iterator<Item = Departement> {
        Self::all().filter(|d| d.region().is_some())
    }

    /// Looks a département up by its INSEE code (`01`, `2A`, `971`) or FINESS code (`9A`).
    pub fn from_code(code: &str) -> Option<Departement> {
        let code = code.trim();
        DEPARTEMENTS
            .iter()
            .position(|d| d.insee.eq_ignore_ascii_case(code) || d.finess.eq_ignore_ascii_case(code))
            .map(|i| Departement(i as u8))
    }

    /// The département whose FINESS prefix starts `number` (already checked for shape).
    pub(crate) fn from_finess_digits(number: &str) -> Option<Departement> {
        let prefix_len = if number.starts_with("97") || number.starts_with("98") {
            4
        } else {
            2
        };
        let prefix = number.get(..prefix_len)?;
        DEPARTEMENTS
            .iter()
            .position(|d| d.finess_prefix == prefix)
            .map(|i| Departement(i as u8))
    }

    pub fn info(self) -> &'static DepartementInfo {
        &DEPARTEMENTS[self.0 as usize]
    }

    pub fn insee_code(self) -> &'static str {
        self.info().insee
    }

    pub fn finess_code(self) -> &'static str {
        self.info().finess
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn region(self) -> Option<Region> {
        self.info().region.map(Region)
    }
}

impl fmt::Display for Departement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.insee_code())
    }
}

impl Serialize for Departement {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.insee_code())
    }
}

impl<'de> Deserialize<'de> for Departement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Departement::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown département code `{code}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_101_departements_in_18_regions() {
        assert_eq!(Departement::in_regions().count(), 101);
        assert_eq!(Region::all().count(), 18);
        for region in Region::all() {
            assert!(
                region.departements().count() >= 1,
                "{} has no département",
                region.name()
            );
        }
    }

    #[test]
    fn departements_are_found_by_insee_and_finess_codes() {
        assert_eq!(Departement::from_code("971"), Departement::from_code("9A"));
        assert_eq!(Departement::from_code("2a").unwrap().name(), "Corse-du-Sud");
        assert_eq!(
            Departement::from_code("69")
                .unwrap()
                .region()
                .unwrap()
                .name(),
            "Auvergne-Rhône-Alpes"
        );
        assert!(Departement::from_code("20").is_none());
        assert!(Departement::from_code("96").is_none());
    }
}
