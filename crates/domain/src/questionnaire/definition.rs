//! The questionnaire definition of one campaign: sections, items, coherence rules and
//! indicators, read from a versioned TOML file and checked when loaded.
//!
//! The file is data: a new campaign ships a new file, and no code changes. Loading reports
//! every problem of the file at once (duplicate ids, unknown items in expressions, impossible
//! applicability...), so an author fixes them in one pass.

use super::expr::{Compiled, Compiler, ExprError, Formula, Node};
use crate::campaign::{Calendar, Campaign, CampaignYear, Platform};
use crate::category::{RespondentKind, applicability_mask};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The type of an item, which decides what an answer may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemType {
    Integer,
    Decimal {
        decimals: u8,
    },
    /// Euros, with cents at most.
    Money {
        decimals: u8,
    },
    /// Entered as a percentage (0-100), with two decimals at most.
    Percentage {
        decimals: u8,
    },
    Date,
    YesNo,
    Choice,
    MultipleChoice,
    Text {
        max_length: u32,
    },
}

impl ItemType {
    pub fn name(&self) -> &'static str {
        match self {
            ItemType::Integer => "an integer",
            ItemType::Decimal { .. } => "a decimal",
            ItemType::Money { .. } => "an amount",
            ItemType::Percentage { .. } => "a percentage",
            ItemType::Date => "a date",
            ItemType::YesNo => "a yes/no",
            ItemType::Choice => "a single choice",
            ItemType::MultipleChoice => "a multiple choice",
            ItemType::Text { .. } => "a text",
        }
    }

    /// What a valid JSON answer looks like, for error messages.
    pub fn expected(&self) -> &'static str {
        match self {
            ItemType::Integer => "a whole number",
            ItemType::Decimal { .. } | ItemType::Percentage { .. } => "a number",
            ItemType::Money { .. } => "an amount in euros (a number)",
            ItemType::Date => "a date YYYY-MM-DD",
            ItemType::YesNo => "true or false",
            ItemType::Choice => "one choice code (a string)",
            ItemType::MultipleChoice => "a list of choice codes",
            ItemType::Text { .. } => "a text",
        }
    }

    /// Whether expressions may read the item as a number.
    pub fn is_numeric(&self) -> bool {
        !matches!(
            self,
            ItemType::Choice | ItemType::MultipleChoice | ItemType::Text { .. }
        )
    }
}

/// One possible answer of a choice item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceDef {
    pub code: String,
    pub label: String,
}

/// One question of the questionnaire.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemDef {
    /// Stable identifier, kept from one campaign to the next when the question is the same.
    pub id: String,
    pub label: String,
    pub help: Option<String>,
    pub kind: ItemType,
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub choices: Vec<ChoiceDef>,
    /// Applicability bit set over respondent kinds (see `category::applicability_mask`).
    pub mask: u32,
    /// Tarification options (bit set over the choices of the tarification item) the item is
    /// restricted to; 0 when it applies whatever the option.
    pub tarification: u64,
    /// Pre-filled from the financial statements (ERRD/CA); the structure may correct it.
    pub financial: bool,
    /// An OG may enter it for the ESMS it manages (HR/FTE, information systems, finance).
    pub subsidiarity: bool,
    pub required: bool,
    /// Computed from other items by its formula, never entered: a total cannot disagree
    /// with its lines.
    pub computed: bool,
    pub section: u16,
}

/// A group of items shown together.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: String,
    pub label: String,
    pub items: std::ops::Range<usize>,
    /// Index of the part of the questionnaire the section belongs to.
    pub part: usize,
}

/// A part of a questionnaire with its own fill threshold and deadline: the generic
/// platform has one; the SAD platform has care (90 %, 30 June) and aid (60 %, 31 July).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub id: String,
    pub label: String,
    /// The fill rate of the part needed to validate, as a fraction.
    pub fill_threshold: f64,
    /// The last day to enter the part's data.
    #[serde(with = "crate::campaign::iso_date")]
    pub deadline: time::Date,
}

/// What a rule does with an input that has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// The rule is not evaluated until every input is answered.
    #[default]
    Skip,
    /// Missing numbers read as 0 (lines of a breakdown left empty).
    Zero,
    /// A missing input is itself a violation.
    Violation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Prevents validation.
    Blocking,
    /// Must be acknowledged or commented, does not prevent validation.
    Warning,
}

/// A coherence rule: when `when` holds, `check` must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub severity: Severity,
    pub message: String,
    pub missing: Missing,
    pub mask: u32,
    /// The items the rule reads, shown to the user next to a violation.
    pub items: Vec<String>,
    pub(crate) when: Option<Node>,
    pub(crate) check: Node,
}

/// The unit of an indicator's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A fraction (0.93 for 93 %), as ministry extracts store rates.
    Ratio,
    Days,
    Hours,
    People,
    Euros,
    Score,
}

/// An indicator: numerator / denominator (or the numerator alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    pub id: String,
    pub label: String,
    /// Where the formula comes from (a public text, ATIH's guide), or that it is our
    /// assumption.
    pub source: String,
    pub unit: Unit,
    pub missing: Missing,
    pub mask: u32,
    pub items: Vec<String>,
    pub(crate) numerator: Node,
    pub(crate) denominator: Option<Node>,
    pub(crate) item_indices: Vec<u16>,
}

/// Which item holds the tarification option, and for which categories.
#[derive(Debug, Clone, PartialEq)]
pub struct Tarification {
    pub item: usize,
    pub mask: u32,
}

/// A loaded, checked questionnaire definition.
#[derive(Debug, Clone)]
pub struct Definition {
    campaign: Campaign,
    parts: Vec<Part>,
    sections: Vec<Section>,
    items: Vec<ItemDef>,
    index: HashMap<String, u16>,
    tarification: Option<Tarification>,
    rules: Vec<Rule>,
    indicators: Vec<Indicator>,
    /// The formula of each computed item, by item index.
    formulas: Vec<Option<Formula>>,
    reminders: crate::reminders::ReminderPolicy,
}

/// One problem of a definition file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefinitionProblem {
    #[error("not a valid definition file: {0}")]
    Syntax(String),
    #[error("{kind} `{id}` is defined twice")]
    Duplicate { kind: &'static str, id: String },
    #[error("item `{item}`: unknown type `{kind}`")]
    UnknownType { item: String, kind: String },
    #[error("{what} `{id}`: `{key}` is not a category, group or OG")]
    UnknownApplicability {
        what: &'static str,
        id: String,
        key: String,
    },
    #[error("{what} `{id}` applies to no respondent")]
    ImpossibleApplicability { what: &'static str, id: String },
    #[error("{what} `{id}` applies to {key}, where none of its items applies")]
    ApplicabilityBeyondItems {
        what: &'static str,
        id: String,
        key: String,
    },
    #[error(
        "item `{item}` is restricted by tarification option but applies to categories without one"
    )]
    TarificationOutsideCategories { item: String },
    #[error("item `{item}`: `{code}` is not a tarification option")]
    UnknownTarificationOption { item: String, code: String },
    #[error("item `{item}`: {problem}")]
    Item { item: String, problem: String },
    #[error("{what} `{id}`, {field}: {source}")]
    Expression {
        what: &'static str,
        id: String,
        field: &'static str,
        source: ExprError,
    },
    #[error("campaign: {0}")]
    Campaign(String),
}

/// Every problem found in a definition file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct DefinitionError(pub Vec<DefinitionProblem>);

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the questionnaire definition has {} problem(s):",
            self.0.len()
        )?;
        for p in &self.0 {
            writeln!(f, "- {p}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    campaign: RawCampaign,
    #[serde(default)]
    reminders: crate::reminders::ReminderPolicy,
    parts: Vec<RawPart>,
    tarification: Option<RawTarification>,
    sections: Vec<RawSection>,
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    year_on_year: Vec<RawYearOnYear>,
    #[serde(default)]
    indicators: Vec<RawIndicator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCampaign {
    year: u16,
    platform: Platform,
    questionnaire_version: String,
    calendar: Calendar,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    id: String,
    label: String,
    fill_threshold: f64,
    #[serde(with = "crate::campaign::iso_date")]
    deadline: time::Date,
}

/// Items compared with the previous campaign's value: each gets a warning rule
/// `evolution_<item>` when it moved by more than `tolerance` (a fraction) of last year's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYearOnYear {
    items: Vec<String>,
    tolerance: f64,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarification {
    item: String,
    applies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    id: String,
    label: String,
    /// The part's id; the first part when absent.
    part: Option<String>,
    applies: Option<Vec<String>>,
    #[serde(default)]
    financial: bool,
    #[serde(default)]
    subsidiarity: bool,
    items: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: String,
    label: String,
    help: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    unit: Option<String>,
    decimals: Option<u8>,
    min: Option<f64>,
    max: Option<f64>,
    max_length: Option<u32>,
    #[serde(default)]
    choices: Vec<(String, String)>,
    applies: Option<Vec<String>>,
    tarification: Option<Vec<String>>,
    financial: Option<bool>,
    subsidiarity: Option<bool>,
    #[serde(default)]
    required: bool,
    /// Makes the item computed: never entered, always this expression's value.
    formula: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    when: Option<String>,
    check: String,
    #[serde(default)]
    missing: Missing,
    severity: Severity,
    message: String,
    applies: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndicator {
    id: String,
    label: String,
    source: String,
    numerator: String,
    denominator: Option<String>,
    unit: Unit,
    #[serde(default)]
    missing: Missing,
    applies: Option<Vec<String>>,
}

/// The applicability bit set of a list of keys: categories, groups and OG, and `-KEY` to
/// leave one out (`["TOUT_ESMS", "-CAMSP"]`).
fn mask_of(
    keys: &[String],
    what: &'static str,
    id: &str,
    problems: &mut Vec<DefinitionProblem>,
) -> u32 {
    let (mut include, mut exclude) = (0, 0);
    for key in keys {
        let (target, name) = match key.strip_prefix('-') {
            Some(name) => (&mut exclude, name),
            None => (&mut include, key.as_str()),
        };
        match applicability_mask(name) {
            Some(m) => *target |= m,
            None => problems.push(DefinitionProblem::UnknownApplicability {
                what,
                id: id.to_string(),
                key: key.clone(),
            }),
        }
    }
    include & !exclude
}

/// The respondents of a platform, as an applicability bit set.
fn platform_mask(platform: Platform) -> u32 {
    let esms = crate::category::Category::ALL
        .iter()
        .map(|c| RespondentKind::Esms(*c))
        .chain([RespondentKind::Og]);
    esms.filter(|k| k.platform() == platform)
        .fold(0, |mask, k| mask | k.bit())
}

fn first_key_of(mask: u32) -> String {
    crate::category::Category::ALL
        .iter()
        .find(|c| c.bit() & mask != 0)
        .map_or("OG".to_string(), |c| c.key().to_string())
}

impl Definition {
    /// Reads and checks a definition file's text.
    pub fn from_toml(text: &str) -> Result<Definition, DefinitionError> {
        let raw: RawDefinition = toml::from_str(text)
            .map_err(|e| DefinitionError(vec![DefinitionProblem::Syntax(e.to_string())]))?;
        let mut problems = Vec::new();

        let campaign = match CampaignYear::new(raw.campaign.year) {
            Err(e) => {
                problems.push(DefinitionProblem::Campaign(e.to_string()));
                None
            }
            Ok(year) => Some(Campaign {
                year,
                platform: raw.campaign.platform,
                questionnaire_version: raw.campaign.questionnaire_version,
                calendar: raw.campaign.calendar,
            }),
        };
        let calendar = raw.campaign.calendar;
        // A definition's items, rules and indicators apply only to its platform's
        // respondents, whatever their applicability keys say (`TOUT_ESMS` on the generic
        // platform leaves the home services out).
        let allowed = platform_mask(raw.campaign.platform);
        if let Err(e) = calendar.check() {
            problems.push(DefinitionProblem::Campaign(e.to_string()));
        }
        if raw.parts.is_empty() {
            problems.push(DefinitionProblem::Campaign(
                "a questionnaire has at least one part".into(),
            ));
        }
        let mut parts: Vec<Part> = Vec::new();
        for part in raw.parts {
            if parts.iter().any(|p| p.id == part.id) {
                problems.push(DefinitionProblem::Duplicate {
                    kind: "part",
                    id: part.id.clone(),
                });
            }
            if !(0.0..=1.0).contains(&part.fill_threshold) {
                problems.push(DefinitionProblem::Campaign(format!(
                    "part `{}`: fill_threshold is a fraction between 0 and 1",
                    part.id
                )));
            }
            if part.deadline < calendar.collection_opens
                || part.deadline > calendar.collection_deadline
            {
                problems.push(DefinitionProblem::Campaign(format!(
                    "part `{}`: its deadline is outside the collection (opening to collection_deadline)",
                    part.id
                )));
            }
            parts.push(Part {
                id: part.id,
                label: part.label,
                fill_threshold: part.fill_threshold,
                deadline: part.deadline,
            });
        }
        if !parts.is_empty()
            && parts
                .iter()
                .all(|p| p.deadline < calendar.collection_deadline)
        {
            problems.push(DefinitionProblem::Campaign(
                "the calendar's collection_deadline is the last part's deadline".into(),
            ));
        }

        let mut sections = Vec::new();
        let mut items: Vec<ItemDef> = Vec::new();
        let mut index = HashMap::new();
        let mut section_ids = HashSet::new();
        let mut raw_tarifications = Vec::new();
        let mut raw_formulas = Vec::new();
        for (s, raw_section) in raw.sections.into_iter().enumerate() {
            let part = match &raw_section.part {
                None => 0,
                Some(id) => parts.iter().position(|p| &p.id == id).unwrap_or_else(|| {
                    problems.push(DefinitionProblem::Campaign(format!(
                        "section `{}`: no part `{id}`",
                        raw_section.id
                    )));
                    0
                }),
            };
            if !section_ids.insert(raw_section.id.clone()) {
                problems.push(DefinitionProblem::Duplicate {
                    kind: "section",
                    id: raw_section.id.clone(),
                });
            }
            let start = items.len();
            for raw_item in raw_section.items {
                let id = raw_item.id.clone();
                if index.insert(id.clone(), items.len() as u16).is_some() {
                    problems.push(DefinitionProblem::Duplicate {
                        kind: "item",
                        id: id.clone(),
                    });
                }
                let applies = raw_item.applies.as_ref().or(raw_section.applies.as_ref());
                let mask =
                    applies.map_or(0, |keys| mask_of(keys, "item", &id, &mut problems)) & allowed;
                if mask == 0 {
                    problems.push(DefinitionProblem::ImpossibleApplicability {
                        what: "item",
                        id: id.clone(),
                    });
                }
                let item_problem = |problem: &str| DefinitionProblem::Item {
                    item: id.clone(),
                    problem: problem.to_string(),
                };
                let kind = match raw_item.kind.as_str() {
                    "integer" => ItemType::Integer,
                    "decimal" => ItemType::Decimal {
                        decimals: raw_item.decimals.unwrap_or(2),
                    },
                    "money" => ItemType::Money {
                        decimals: raw_item.decimals.unwrap_or(2),
                    },
                    "percentage" => ItemType::Percentage {
                        decimals: raw_item.decimals.unwrap_or(2),
                    },
                    "date" => ItemType::Date,
                    "yes_no" => ItemType::YesNo,
                    "choice" => ItemType::Choice,
                    "multiple_choice" => ItemType::MultipleChoice,
                    "text" => ItemType::Text {
                        max_length: raw_item.max_length.unwrap_or(2000),
                    },
                    other => {
                        problems.push(DefinitionProblem::UnknownType {
                            item: id.clone(),
                            kind: other.to_string(),
                        });
                        ItemType::Text { max_length: 0 }
                    }
                };
                let is_choice = matches!(kind, ItemType::Choice | ItemType::MultipleChoice);
                if is_choice && raw_item.choices.is_empty() {
                    problems.push(item_problem("a choice item needs choices"));
                }
                if !is_choice && !raw_item.choices.is_empty() {
                    problems.push(item_problem("only choice items have choices"));
                }
                if raw_item.choices.len() > 64 {
                    problems.push(item_problem("at most 64 choices"));
                }
                let mut codes = HashSet::new();
                if let Some((code, _)) = raw_item
                    .choices
                    .iter()
                    .find(|(code, _)| !codes.insert(code))
                {
                    problems.push(item_problem(&format!("choice `{code}` appears twice")));
                }
                let (min, max) = match kind {
                    ItemType::Percentage { .. } => {
                        (raw_item.min.or(Some(0.0)), raw_item.max.or(Some(100.0)))
                    }
                    ItemType::Integer | ItemType::Decimal { .. } => {
                        (raw_item.min.or(Some(0.0)), raw_item.max)
                    }
                    _ => (raw_item.min, raw_item.max),
                };
                if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    problems.push(item_problem("min is above max"));
                }
                if raw_item.max_length.is_some() && !matches!(kind, ItemType::Text { .. }) {
                    problems.push(item_problem("max_length is for text items"));
                }
                let computed = raw_item.formula.is_some();
                if computed && !kind.is_numeric() {
                    problems.push(item_problem("a computed item is a number"));
                }
                if computed && raw_item.required {
                    problems.push(item_problem(
                        "a computed item is never entered: not required",
                    ));
                }
                raw_tarifications.push(raw_item.tarification);
                raw_formulas.push(raw_item.formula);
                items.push(ItemDef {
                    id,
                    label: raw_item.label,
                    help: raw_item.help,
                    kind,
                    unit: raw_item.unit,
                    min,
                    max,
                    choices: raw_item
                        .choices
                        .into_iter()
                        .map(|(code, label)| ChoiceDef { code, label })
                        .collect(),
                    mask,
                    tarification: 0,
                    financial: raw_item.financial.unwrap_or(raw_section.financial),
                    subsidiarity: raw_item.subsidiarity.unwrap_or(raw_section.subsidiarity),
                    required: raw_item.required,
                    computed,
                    section: s as u16,
                });
            }
            sections.push(Section {
                id: raw_section.id,
                label: raw_section.label,
                items: start..items.len(),
                part,
            });
        }

        let tarification = raw.tarification.and_then(|t| {
            let mask = mask_of(&t.applies, "tarification", &t.item, &mut problems) & allowed;
            match index.get(&t.item) {
                Some(&i) if items[i as usize].kind == ItemType::Choice => Some(Tarification {
                    item: i as usize,
                    mask,
                }),
                _ => {
                    problems.push(DefinitionProblem::Item {
                        item: t.item,
                        problem: "the tarification item must be a choice item".into(),
                    });
                    None
                }
            }
        });
        for (i, codes) in raw_tarifications.into_iter().enumerate() {
            let Some(codes) = codes else { continue };
            let item = &items[i];
            let Some(t) = &tarification else {
                problems.push(DefinitionProblem::TarificationOutsideCategories {
                    item: item.id.clone(),
                });
                continue;
            };
            if item.mask & !t.mask != 0 {
                problems.push(DefinitionProblem::TarificationOutsideCategories {
                    item: item.id.clone(),
                });
            }
            let options = &items[t.item].choices;
            let mut set = 0u64;
            for code in codes {
                match options.iter().position(|c| c.code == code) {
                    Some(p) => set |= 1 << p,
                    None => problems.push(DefinitionProblem::UnknownTarificationOption {
                        item: item.id.clone(),
                        code,
                    }),
                }
            }
            items[i].tarification = set;
        }

        // Formulas in file order: one may read a computed item defined before it.
        let mut formulas: Vec<Option<Formula>> = Vec::with_capacity(items.len());
        for (i, formula) in raw_formulas.into_iter().enumerate() {
            let compiled = formula.and_then(|src| {
                let compiler = Compiler {
                    items: &items,
                    index: &index,
                    formulas: &formulas,
                };
                match compiler.compile(&src) {
                    Ok(c) => Some(Formula {
                        node: c.node,
                        inputs: c.inputs,
                    }),
                    Err(source) => {
                        problems.push(DefinitionProblem::Expression {
                            what: "item",
                            id: items[i].id.clone(),
                            field: "formula",
                            source,
                        });
                        None
                    }
                }
            });
            formulas.push(compiled);
        }

        let compiler = Compiler {
            items: &items,
            index: &index,
            formulas: &formulas,
        };
        let compile =
            |what: &'static str,
             id: &str,
             field: &'static str,
             src: &str,
             problems: &mut Vec<DefinitionProblem>| match compiler.compile(src) {
                Ok(compiled) => Some(compiled),
                Err(source) => {
                    problems.push(DefinitionProblem::Expression {
                        what,
                        id: id.to_string(),
                        field,
                        source,
                    });
                    None
                }
            };

        let mut raw_rules = raw.rules;
        for block in raw.year_on_year {
            if block.tolerance.is_nan() || block.tolerance <= 0.0 {
                problems.push(DefinitionProblem::Campaign(
                    "year_on_year: tolerance is a positive fraction".into(),
                ));
            }
            for item in block.items {
                raw_rules.push(RawRule {
                    id: format!("evolution_{item}"),
                    when: Some(format!("prev({item}) > 0")),
                    check: format!(
                        "abs({item} - prev({item})) <= {} * prev({item})",
                        block.tolerance
                    ),
                    missing: Missing::Skip,
                    severity: Severity::Warning,
                    message: block.message.clone(),
                    applies: None,
                });
            }
        }
        let mut rules = Vec::new();
        let mut rule_ids = HashSet::new();
        for raw_rule in raw_rules {
            if !rule_ids.insert(raw_rule.id.clone()) {
                problems.push(DefinitionProblem::Duplicate {
                    kind: "rule",
                    id: raw_rule.id.clone(),
                });
            }
            let when = raw_rule
                .when
                .as_deref()
                .map(|w| compile("rule", &raw_rule.id, "when", w, &mut problems));
            let check = compile(
                "rule",
                &raw_rule.id,
                "check",
                &raw_rule.check,
                &mut problems,
            );
            let (Some(check), Some(when)) = (check, when.unwrap_or(Some(always()))) else {
                continue;
            };
            let mut refs = check.referenced;
            refs.extend(when.referenced.iter().copied());
            refs.sort_unstable();
            refs.dedup();
            let check = check.node;
            let mask = applicability(
                allowed,
                "rule",
                &raw_rule.id,
                raw_rule.applies.as_deref(),
                &refs,
                &items,
                &mut problems,
            );
            let when = raw_rule.when.is_some().then_some(when.node);
            rules.push(Rule {
                items: refs.iter().map(|&i| items[i as usize].id.clone()).collect(),
                id: raw_rule.id,
                severity: raw_rule.severity,
                message: raw_rule.message,
                missing: raw_rule.missing,
                mask,
                when,
                check,
            });
        }

        let mut indicators = Vec::new();
        let mut indicator_ids = HashSet::new();
        for raw_ind in raw.indicators {
            if !indicator_ids.insert(raw_ind.id.clone()) {
                problems.push(DefinitionProblem::Duplicate {
                    kind: "indicator",
                    id: raw_ind.id.clone(),
                });
            }
            let numerator = compile(
                "indicator",
                &raw_ind.id,
                "numerator",
                &raw_ind.numerator,
                &mut problems,
            );
            let denominator = raw_ind
                .denominator
                .as_deref()
                .map(|d| compile("indicator", &raw_ind.id, "denominator", d, &mut problems));
            let (Some(numerator), Some(denominator)) =
                (numerator, denominator.unwrap_or(Some(always())))
            else {
                continue;
            };
            let mut refs = numerator.referenced;
            refs.extend(denominator.referenced.iter().copied());
            refs.sort_unstable();
            refs.dedup();
            let mut inputs = numerator.inputs;
            inputs.extend(denominator.inputs.iter().copied());
            inputs.sort_unstable();
            inputs.dedup();
            let mask = applicability(
                allowed,
                "indicator",
                &raw_ind.id,
                raw_ind.applies.as_deref(),
                &refs,
                &items,
                &mut problems,
            );
            if raw_ind.source.trim().is_empty() {
                problems.push(DefinitionProblem::Item {
                    item: raw_ind.id.clone(),
                    problem: "an indicator says where its formula comes from (`source`)".into(),
                });
            }
            indicators.push(Indicator {
                items: refs.iter().map(|&i| items[i as usize].id.clone()).collect(),
                item_indices: inputs,
                id: raw_ind.id,
                label: raw_ind.label,
                source: raw_ind.source,
                unit: raw_ind.unit,
                missing: raw_ind.missing,
                mask,
                numerator: numerator.node,
                denominator: raw_ind.denominator.is_some().then_some(denominator.node),
            });
        }

        if let Err(problem) = crate::reminders::check(&raw.reminders) {
            problems.push(DefinitionProblem::Campaign(format!("reminders: {problem}")));
        }
        match campaign {
            Some(campaign) if problems.is_empty() => Ok(Definition {
                campaign,
                parts,
                sections,
                items,
                index,
                tarification,
                rules,
                indicators,
                formulas,
                reminders: raw.reminders,
            }),
            _ => Err(DefinitionError(problems)),
        }
    }

    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    /// When this platform's structures, OG and territories are reminded.
    pub fn reminders(&self) -> &crate::reminders::ReminderPolicy {
        &self.reminders
    }

    pub fn platform(&self) -> Platform {
        self.campaign.platform
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    pub(crate) fn formula(&self, item: usize) -> Option<&Formula> {
        self.formulas.get(item).and_then(Option::as_ref)
    }

    /// The parts asked of a respondent: those with an item it enters (an SAA has no care
    /// part on the SAD platform).
    pub fn parts_for(&self, kind: RespondentKind) -> impl Iterator<Item = &Part> {
        self.parts
            .iter()
            .enumerate()
            .filter_map(move |(index, part)| {
                self.items
                    .iter()
                    .any(|item| {
                        !item.computed
                            && item.mask & kind.bit() != 0
                            && self.sections[item.section as usize].part == index
                    })
                    .then_some(part)
            })
    }

    /// The part an item belongs to (through its section).
    pub fn part_of(&self, item: &ItemDef) -> &Part {
        &self.parts[self.sections[item.section as usize].part]
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    pub fn items(&self) -> &[ItemDef] {
        &self.items
    }

    pub fn item(&self, id: &str) -> Option<&ItemDef> {
        self.item_index(id).map(|i| &self.items[i])
    }

    pub fn item_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).map(|&i| i as usize)
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn indicators(&self) -> &[Indicator] {
        &self.indicators
    }

    pub fn tarification(&self) -> Option<&Tarification> {
        self.tarification.as_ref()
    }

    /// The items a respondent of this kind is asked (before any tarification option).
    pub fn items_for(&self, kind: RespondentKind) -> impl Iterator<Item = &ItemDef> {
        let bit = kind.bit();
        self.items.iter().filter(move |i| i.mask & bit != 0)
    }
}

/// The expression that always holds (a rule without `when`, an indicator without
/// denominator).
fn always() -> Compiled {
    Compiled {
        node: Node::Num(1.0),
        referenced: vec![],
        inputs: vec![],
    }
}

/// A rule's or indicator's applicability: the explicit list, or where all its items apply.
fn applicability(
    allowed: u32,
    what: &'static str,
    id: &str,
    explicit: Option<&[String]>,
    refs: &[u16],
    items: &[ItemDef],
    problems: &mut Vec<DefinitionProblem>,
) -> u32 {
    let all = refs
        .iter()
        .fold(u32::MAX, |m, &i| m & items[i as usize].mask);
    let any = refs.iter().fold(0, |m, &i| m | items[i as usize].mask);
    let mask = match explicit {
        Some(keys) => {
            let mask = mask_of(keys, what, id, problems) & allowed;
            if mask & !any != 0 {
                problems.push(DefinitionProblem::ApplicabilityBeyondItems {
                    what,
                    id: id.to_string(),
                    key: first_key_of(mask & !any),
                });
            }
            mask
        }
        None if refs.is_empty() => 0,
        None => all,
    };
    if mask == 0 {
        problems.push(DefinitionProblem::ImpossibleApplicability {
            what,
            id: id.to_string(),
        });
    }
    mask
}
