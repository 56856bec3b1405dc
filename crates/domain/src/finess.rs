//! FINESS numbers: the 9-character identifiers of legal entities (FINESS juridique) and sites
//! (FINESS géographique).
//!
//! No official text states the key, but every real number checked is a Luhn (mod 10) key over
//! the 9 characters, with Corsica's `A` read as `1` and `B` as `2` (so `2A` counts as `21`).

use crate::geo::Departement;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A valid FINESS number. Once parsed, its shape, département and key are known good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Finess([u8; 9]);

/// Why a string is not a FINESS number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinessError {
    #[error("a FINESS number has 9 characters, this one has {0}")]
    Length(usize),
    #[error("character {position} (`{found}`) is not allowed: expected {expected}")]
    Character {
        position: usize,
        found: char,
        expected: &'static str,
    },
    #[error("`{0}` is not a département or overseas prefix known to FINESS")]
    Departement(String),
    #[error("wrong key: the last digit should be {expected} for this number")]
    Key { expected: u8 },
}

impl Finess {
    /// Parses a FINESS number; spaces (as in the display form `NN NNN NNN N`) are ignored.
    pub fn parse(input: &str) -> Result<Finess, FinessError> {
        let mut chars = [0u8; 9];
        let mut len = 0;
        for c in input.chars().filter(|c| !c.is_whitespace()) {
            if len < 9 {
                if !c.is_ascii() {
                    return Err(FinessError::Character {
                        position: len + 1,
                        found: c,
                        expected: "a digit",
                    });
                }
                chars[len] = c.to_ascii_uppercase() as u8;
            }
            len += 1;
        }
        if len != 9 {
            return Err(FinessError::Length(len));
        }
        for (i, &c) in chars.iter().enumerate() {
            let ok = c.is_ascii_digit() || (i == 1 && (c == b'A' || c == b'B') && chars[0] == b'2');
            if !ok {
                let expected = if i == 1 {
                    "a digit, or A/B after 2 (Corsica)"
                } else {
                    "a digit"
                };
                return Err(FinessError::Character {
                    position: i + 1,
                    found: c as char,
                    expected,
                });
            }
        }
        let text = std::str::from_utf8(&chars).expect("ASCII checked above");
        if Departement::from_finess_digits(text).is_none() {
            let shown = if text.starts_with("97") || text.starts_with("98") {
                &text[..4]
            } else {
                &text[..2]
            };
            return Err(FinessError::Departement(shown.to_string()));
        }
        let expected = Self::key_for(&chars[..8]);
        if chars[8] - b'0' != expected {
            return Err(FinessError::Key { expected });
        }
        Ok(Finess(chars))
    }

    /// The Luhn key that completes the first 8 characters (Corsica's A/B read as 1/2).
    pub fn key_for(first_eight: &[u8]) -> u8 {
        let mut sum = 0u32;
        // The key will sit at the rightmost position, so the last of these eight is doubled.
        for (i, &c) in first_eight.iter().rev().enumerate() {
            let digit = match c {
                b'A' => 1,
                b'B' => 2,
                d => (d - b'0') as u32,
            };
            sum += if i % 2 == 0 {
                let d = digit * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                digit
            };
        }
        ((10 - sum % 10) % 10) as u8
    }

    /// Builds a valid number from its first 8 characters by appending the key.
    pub fn with_key(first_eight: &str) -> Result<Finess, FinessError> {
        let bytes = first_eight.as_bytes();
        if bytes.len() != 8 {
            return Err(FinessError::Length(bytes.len() + 1));
        }
        let key = Self::key_for(
            &bytes
                .iter()
                .map(|b| b.to_ascii_uppercase())
                .collect::<Vec<_>>(),
        );
        Finess::parse(&format!("{first_eight}{key}"))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("FINESS numbers are ASCII")
    }

    /// The display form `NN NNN NNN N`.
    pub fn display(&self) -> String {
        let s = self.as_str();
        format!("{} {} {} {}", &s[..2], &s[2..5], &s[5..8], &s[8..])
    }

    /// The département (or overseas collectivity) the number belongs to.
    pub fn departement(&self) -> Departement {
        Departement::from_finess_digits(self.as_str()).expect("checked when parsed")
    }
}

impl fmt::Display for Finess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Finess {
    type Err = FinessError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Finess::parse(s)
    }
}

impl Serialize for Finess {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Finess {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Finess::parse(&s).map_err(|e| serde::de::Error::custom(format!("FINESS `{s}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_real_metropolitan_number_is_accepted() {
        // AP-HP's FINESS juridique.
        let f = Finess::parse("750712184").unwrap();
        assert_eq!(f.display(), "75 071 218 4");
        assert_eq!(f.departement().name(), "Paris");
    }

    #[test]
    fn the_display_form_with_spaces_is_accepted() {
        assert_eq!(Finess::parse("75 071 218 4").unwrap().as_str(), "750712184");
    }

    #[test]
    fn corsican_numbers_read_a_as_1_and_b_as_2_for_the_key() {
        let south = Finess::with_key("2A000001").unwrap();
        let as_digits = Finess::key_for(b"21000001");
        assert_eq!(south.as_str().as_bytes()[8] - b'0', as_digits);
        assert_eq!(south.departement().insee_code(), "2A");
        let north = Finess::with_key("2b000001").unwrap();
        assert_eq!(north.departement().insee_code(), "2B");
        assert_eq!(
            north.as_str(),
            &format!("2B000001{}", Finess::key_for(b"22000001"))
        );
    }

    #[test]
    fn overseas_prefixes_map_to_their_finess_departement_codes() {
        let cases = [
            ("9701", "9A", "971"),
            ("9702", "9B", "972"),
            ("9703", "9C", "973"),
            ("9704", "9D", "974"),
            ("9805", "9F", "976"),
            ("9806", "9G", "986"),
        ];
        for (prefix, finess_code, insee) in cases {
            let f = Finess::with_key(&format!("{prefix}0012")).unwrap();
            assert_eq!(f.departement().finess_code(), finess_code, "{prefix}");
            assert_eq!(f.departement().insee_code(), insee, "{prefix}");
        }
    }

    #[test]
    fn errors_say_why_the_number_is_invalid() {
        assert_eq!(Finess::parse("75071218"), Err(FinessError::Length(8)));
        assert_eq!(Finess::parse("7507121845"), Err(FinessError::Length(10)));
        assert!(matches!(
            Finess::parse("75071x184"),
            Err(FinessError::Character {
                position: 6,
                found: 'X',
                ..
            })
        ));
        assert!(matches!(
            Finess::parse("3A0712184"),
            Err(FinessError::Character { position: 2, .. })
        ));
        assert_eq!(
            Finess::parse("750712185"),
            Err(FinessError::Key { expected: 4 })
        );
        assert_eq!(
            Finess::parse("200000000"),
            Err(FinessError::Departement("20".into()))
        );
        assert_eq!(
            Finess::parse("970900000"),
            Err(FinessError::Departement("9709".into()))
        );
        let message = Finess::parse("750712185").unwrap_err().to_string();
        assert!(message.contains("key"), "{message}");
    }

    proptest! {
        #[test]
        fn every_number_built_with_its_key_parses_and_round_trips(dep in 1u32..96, rest in 0u32..1_000_000) {
            prop_assume!(dep != 20);
            let f = Finess::with_key(&format!("{dep:02}{rest:06}")).unwrap();
            prop_assert_eq!(Finess::parse(&f.display()).unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            prop_assert_eq!(serde_json::from_str::<Finess>(&json).unwrap(), f);
        }

        #[test]
        fn changing_one_digit_breaks_the_key(dep in 1u32..96, rest in 0u32..1_000_000, pos in 2usize..9, delta in 1u8..10) {
            prop_assume!(dep != 20);
            let f = Finess::with_key(&format!("{dep:02}{rest:06}")).unwrap();
            let mut bytes = f.as_str().as_bytes().to_vec();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            let is_key_error = matches!(Finess::parse(&changed), Err(FinessError::Key { .. }));
            prop_assert!(is_key_error);
        }
    }
}
