//! Answers: typed values checked against their item, and the explicit "not applicable" and
//! "unknown" states, which are not the same as a missing answer.

use super::definition::{Definition, ItemDef, ItemType};
use crate::campaign::iso_date;
use crate::category::RespondentKind;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::fmt;
use time::Date;

/// An exact decimal: `mantissa / 10^scale`. Money and FTE are never binary floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub mantissa: i64,
    pub scale: u8,
}

impl Fixed {
    /// Parses a decimal number written in base 10 with at most `scale` decimals.
    pub fn parse(text: &str, scale: u8) -> Option<Fixed> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let frac = frac.trim_end_matches('0');
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > scale as usize
        {
            return None;
        }
        let mut mantissa: i64 = whole.parse().ok()?;
        for _ in 0..scale {
            mantissa = mantissa.checked_mul(10)?;
        }
        let frac_value: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        mantissa =
            mantissa.checked_add(frac_value * 10i64.pow((scale as usize - frac.len()) as u32))?;
        Some(Fixed {
            mantissa: if negative { -mantissa } else { mantissa },
            scale,
        })
    }

    pub fn to_f64(self) -> f64 {
        self.mantissa as f64 / 10f64.powi(self.scale as i32)
    }
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mantissa);
        }
        let p = 10i64.pow(self.scale as u32);
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let abs = self.mantissa.unsigned_abs();
        let text = format!(
            "{sign}{}.{:0width$}",
            abs / p as u64,
            abs % p as u64,
            width = self.scale as usize
        );
        f.write_str(text.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// A value given to an item.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    /// Decimal, money (2 decimals, euros) and percentage (2 decimals, 0-100) items.
    Fixed(Fixed),
    Date(Date),
    Bool(bool),
    /// Index of the chosen code in the item's choices.
    Choice(u16),
    /// Bit set of chosen codes (at most 64 choices).
    Choices(u64),
    Text(String),
}

impl Value {
    /// The numeric reading of a value, for rules and indicators.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Fixed(f) => Some(f.to_f64()),
            Value::Date(d) => Some(d.to_julian_day() as f64),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Choice(_) | Value::Choices(_) | Value::Text(_) => None,
        }
    }
}

/// The state of one item in a questionnaire.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Slot {
    #[default]
    Missing,
    /// The structure declares the item does not apply to it.
    NotApplicable,
    /// The structure declares it does not know the value.
    Unknown,
    Value(Value),
}

/// The answers of one questionnaire, one slot per item of the definition, in its order.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSet {
    slots: Vec<Slot>,
}

impl AnswerSet {
    pub(crate) fn empty(len: usize) -> AnswerSet {
        AnswerSet {
            slots: vec![Slot::Missing; len],
        }
    }

    /// The slot of an item; an answer set made for another definition reads as missing
    /// beyond its own length rather than panicking.
    pub(crate) fn slot(&self, item: usize) -> &Slot {
        self.slots.get(item).unwrap_or(&Slot::Missing)
    }

    /// How many items the answer set was made for (its definition's item count).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn set_slot(&mut self, item: usize, slot: Slot) {
        self.slots[item] = slot;
    }

    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Number of items that are not missing.
    pub fn given(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !matches!(s, Slot::Missing))
            .count()
    }
}

/// Why an answer is refused, always naming the item.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{item}: {reason}")]
pub struct AnswerError {
    pub item: String,
    pub reason: AnswerProblem,
}

#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AnswerProblem {
    #[error("no such item in this questionnaire")]
    UnknownItem,
    #[error("computed from other items, not entered")]
    Computed,
    #[error("this item does not apply to {respondent}")]
    NotApplicableToRespondent { respondent: String },
    #[error("expected {expected}")]
    WrongType { expected: &'static str },
    #[error("{value} is below the minimum {min}")]
    BelowMinimum { value: f64, min: f64 },
    #[error("{value} is above the maximum {max}")]
    AboveMaximum { value: f64, max: f64 },
    #[error("at most {max} decimals")]
    TooManyDecimals { max: u8 },
    #[error("`{code}` is not one of the choices")]
    UnknownChoice { code: String },
    #[error("text longer than {max} characters")]
    TooLong { max: u32 },
    #[error("unknown status `{status}`: use not_applicable or unknown")]
    UnknownStatus { status: String },
}

impl Definition {
    /// An empty questionnaire for this definition.
    pub fn empty_answers(&self) -> AnswerSet {
        AnswerSet::empty(self.items().len())
    }

    /// Parses a JSON object `{item id: answer}` for a respondent, checking every answer.
    /// Every problem is reported, not only the first. `null` clears an answer.
    pub fn parse_answers(
        &self,
        respondent: RespondentKind,
        json: &Map<String, Json>,
    ) -> Result<AnswerSet, Vec<AnswerError>> {
        let mut answers = self.empty_answers();
        let errors: Vec<AnswerError> = json
            .iter()
            .filter_map(|(id, value)| self.set_answer(&mut answers, respondent, id, value).err())
            .collect();
        if errors.is_empty() {
            Ok(answers)
        } else {
            Err(errors)
        }
    }

    /// Checks one answer against its item and stores it.
    pub fn set_answer(
        &self,
        answers: &mut AnswerSet,
        respondent: RespondentKind,
        id: &str,
        json: &Json,
    ) -> Result<(), AnswerError> {
        let error = |reason| AnswerError {
            item: id.to_string(),
            reason,
        };
        let index = self
            .item_index(id)
            .ok_or_else(|| error(AnswerProblem::UnknownItem))?;
        let def = &self.items()[index];
        if def.computed {
            return Err(error(AnswerProblem::Computed));
        }
        if def.mask & respondent.bit() == 0 {
            let respondent = match respondent {
                RespondentKind::Esms(c) => c.key().to_string(),
                RespondentKind::Og => "OG".to_string(),
            };
            return Err(error(AnswerProblem::NotApplicableToRespondent {
                respondent,
            }));
        }
        let slot = parse_slot(def, json).map_err(error)?;
        answers.set_slot(index, slot);
        Ok(())
    }

    /// Last campaign's answers (their stored JSON) read through this campaign's items, for
    /// the year-on-year rules: an item keeps its id only while its question does not change
    /// (a question that changes meaning gets a new id), so last year's value of an id is
    /// this year's; an item gone or a value no longer valid is left out rather than refused.
    pub fn carry_over(&self, respondent: RespondentKind, json: &Map<String, Json>) -> AnswerSet {
        let mut answers = self.empty_answers();
        for (id, value) in json {
            let _ = self.set_answer(&mut answers, respondent, id, value);
        }
        answers
    }

    /// The answers as the JSON object `parse_answers` reads.
    pub fn answers_to_json(&self, answers: &AnswerSet) -> Map<String, Json> {
        let mut map = Map::new();
        for (def, slot) in self.items().iter().zip(answers.slots()) {
            let json = match slot {
                Slot::Missing => continue,
                Slot::NotApplicable => serde_json::json!({ "status": "not_applicable" }),
                Slot::Unknown => serde_json::json!({ "status": "unknown" }),
                Slot::Value(v) => value_to_json(def, v),
            };
            map.insert(def.id.clone(), json);
        }
        map
    }
}

fn value_to_json(def: &ItemDef, value: &Value) -> Json {
    match value {
        Value::Integer(i) => Json::from(*i),
        Value::Fixed(f) => serde_json::from_str(&f.to_string()).unwrap_or(Json::Null),
        Value::Date(d) => Json::from(iso_date::format(*d)),
        Value::Bool(b) => Json::from(*b),
        Value::Choice(c) => Json::from(def.choices[*c as usize].code.clone()),
        Value::Choices(set) => Json::from(
            def.choices
                .iter()
                .enumerate()
                .filter(|(i, _)| set & (1u64 << i) != 0)
                .map(|(_, c)| c.code.clone())
                .collect::<Vec<_>>(),
        ),
        Value::Text(t) => Json::from(t.clone()),
    }
}

fn parse_slot(def: &ItemDef, json: &Json) -> Result<Slot, AnswerProblem> {
    if json.is_null() {
        return Ok(Slot::Missing);
    }
    if let Some(obj) = json.as_object() {
        return match obj.get("status").and_then(Json::as_str) {
            Some("not_applicable") => Ok(Slot::NotApplicable),
            Some("unknown") => Ok(Slot::Unknown),
            other => Err(AnswerProblem::UnknownStatus {
                status: other.unwrap_or("").to_string(),
            }),
        };
    }
    let wrong = || AnswerProblem::WrongType {
        expected: def.kind.expected(),
    };
    let value = match &def.kind {
        ItemType::Integer => Value::Integer(json.as_i64().ok_or_else(wrong)?),
        ItemType::Decimal { decimals }
        | ItemType::Money { decimals }
        | ItemType::Percentage { decimals } => {
            let number = json.as_number().ok_or_else(wrong)?;
            Value::Fixed(
                Fixed::parse(&number.to_string(), *decimals)
                    .ok_or(AnswerProblem::TooManyDecimals { max: *decimals })?,
            )
        }
        ItemType::Date => Value::Date(
            json.as_str()
                .and_then(|s| iso_date::parse(s).ok())
                .ok_or_else(wrong)?,
        ),
        ItemType::YesNo => Value::Bool(json.as_bool().ok_or_else(wrong)?),
        ItemType::Choice => {
            let code = json.as_str().ok_or_else(wrong)?;
            Value::Choice(choice_of(def, code)?)
        }
        ItemType::MultipleChoice => {
            let codes = json.as_array().ok_or_else(wrong)?;
            let mut set = 0u64;
            for code in codes {
                set |= 1u64 << choice_of(def, code.as_str().ok_or_else(wrong)?)?;
            }
            Value::Choices(set)
        }
        ItemType::Text { max_length } => {
            let text = json.as_str().ok_or_else(wrong)?;
            if text.chars().count() > *max_length as usize {
                return Err(AnswerProblem::TooLong { max: *max_length });
            }
            Value::Text(text.to_string())
        }
    };
    if let Some(n) = value
        .as_number()
        .filter(|_| !matches!(value, Value::Date(_) | Value::Bool(_)))
    {
        if let Some(min) = def.min.filter(|min| n < *min) {
            return Err(AnswerProblem::BelowMinimum { value: n, min });
        }
        if let Some(max) = def.max.filter(|max| n > *max) {
            return Err(AnswerProblem::AboveMaximum { value: n, max });
        }
    }
    Ok(Slot::Value(value))
}

fn choice_of(def: &ItemDef, code: &str) -> Result<u16, AnswerProblem> {
    def.choices
        .iter()
        .position(|c| c.code == code)
        .map(|i| i as u16)
        .ok_or_else(|| AnswerProblem::UnknownChoice {
            code: code.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_decimals_parse_exactly_and_refuse_extra_digits() {
        assert_eq!(
            Fixed::parse("12.5", 2),
            Some(Fixed {
                mantissa: 1250,
                scale: 2
            })
        );
        assert_eq!(
            Fixed::parse("-0.07", 2),
            Some(Fixed {
                mantissa: -7,
                scale: 2
            })
        );
        assert_eq!(
            Fixed::parse("3", 2),
            Some(Fixed {
                mantissa: 300,
                scale: 2
            })
        );
        assert_eq!(
            Fixed::parse("1.250", 2),
            Some(Fixed {
                mantissa: 125,
                scale: 2
            }),
            "trailing zeros are not decimals"
        );
        assert_eq!(Fixed::parse("1.234", 2), None);
        assert_eq!(Fixed::parse("1e3", 2), None);
        assert_eq!(
            Fixed {
                mantissa: 123450,
                scale: 2
            }
            .to_string(),
            "1234.5"
        );
        assert_eq!(
            Fixed {
                mantissa: -5,
                scale: 2
            }
            .to_string(),
            "-0.05"
        );
    }
}
