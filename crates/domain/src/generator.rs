//! Synthetic campaign generator: a realistic referential (18 regions, 101 départements, OG
//! managing 2 to 40 ESMS, single-establishment entities, principal/secondary pairs, the real
//! category mix) and answers consistent with the definition and its rules, with a chosen
//! share of incomplete and incoherent questionnaires. Deterministic from its seed.
//!
//! Item ids of the 2025 definition are used to make answers coherent; items the generator
//! does not know (a later campaign's new questions) still get a valid value of their type.

use crate::campaign::CampaignYear;
use crate::category::{Category, RespondentKind};
use crate::finess::Finess;
use crate::geo::Departement;
use crate::questionnaire::{
    AnswerSet, CampaignDefinitions, Definition, Fixed, ItemType, Slot, Value,
};
use crate::structure::{Capacity, Establishment, LegalEntity, Referential, Respondent};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use time::{Date, Duration};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Number of establishments (FINESS géographique) in scope.
    pub establishments: usize,
    pub seed: u64,
    /// Share of questionnaires left partly unanswered.
    pub incomplete_share: f64,
    /// Share of questionnaires with at least one broken coherence rule.
    pub incoherent_share: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            establishments: 1000,
            seed: 2025,
            incomplete_share: 0.15,
            incoherent_share: 0.10,
        }
    }
}

/// How a generated questionnaire was made, so tests and demos know what to expect of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Complete,
    Incomplete,
    Incoherent,
}

#[derive(Debug, Clone)]
pub struct GeneratedQuestionnaire {
    pub respondent: Respondent,
    pub quality: Quality,
    pub answers: AnswerSet,
}

#[derive(Debug, Clone)]
pub struct GeneratedCampaign {
    pub referential: Referential,
    pub questionnaires: Vec<GeneratedQuestionnaire>,
}

impl GeneratedCampaign {
    /// The questionnaires as stored in campaign `year` (each answered part in progress,
    /// what is stored beside the answers evaluated), each with the status `status` gives
    /// the n-th: for the tests and benchmarks that load a generated campaign.
    pub fn stored(
        &self,
        definitions: &CampaignDefinitions,
        year: CampaignYear,
        status: impl Fn(usize) -> Option<crate::campaign::QuestionnaireStatus>,
    ) -> Vec<crate::ports::StoredQuestionnaire> {
        self.questionnaires
            .iter()
            .enumerate()
            .map(|(n, q)| {
                let definition = definitions.for_kind(q.respondent.kind);
                let og = match q.respondent.kind {
                    RespondentKind::Og => None,
                    RespondentKind::Esms(_) => self
                        .referential
                        .og_of(&q.respondent.finess)
                        .map(|o| o.finess),
                };
                let mut stored = crate::ports::StoredQuestionnaire::loaded(
                    definition,
                    year,
                    q.respondent,
                    og,
                    definition.answers_to_json(&q.answers),
                    0,
                )
                .expect("generated answers are valid");
                if let Some(status) = status(n) {
                    stored.status = status;
                }
                stored
            })
            .collect()
    }
}

/// Rough shares of the ~22,000 ESMS in scope, by category (per ten thousand).
const CATEGORY_MIX: [(Category, u32); 21] = [
    (Category::Ehpad, 3400),
    (Category::Ssiad, 950),
    (Category::Spasad, 100),
    (Category::Saa, 450),
    (Category::Ime, 550),
    (Category::Itep, 200),
    (Category::Eeap, 90),
    (Category::Iem, 60),
    (Category::InstitutDeficientsAuditifs, 30),
    (Category::InstitutDeficientsVisuels, 20),
    (Category::Ies, 10),
    (Category::Sessad, 800),
    (Category::Camsp, 150),
    (Category::Cmpp, 150),
    (Category::Esat, 700),
    (Category::Crp, 40),
    (Category::Mas, 300),
    (Category::Eam, 400),
    (Category::Eanm, 900),
    (Category::Savs, 500),
    (Category::Samsah, 170),
];

/// Generates the referential only.
pub fn generate_referential(config: &GeneratorConfig) -> Referential {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    build_referential(config, &mut rng)
}

/// Generates a referential and one questionnaire per respondent (principal ESMS and OG).
/// `progress` is called with the number of questionnaires done so far.
pub fn generate(
    definitions: &CampaignDefinitions,
    config: &GeneratorConfig,
    mut progress: impl FnMut(usize, usize),
) -> GeneratedCampaign {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let referential = build_referential(config, &mut rng);
    let questionnaires = answer_with(definitions, &referential, config, &mut rng, &mut progress);
    GeneratedCampaign {
        referential,
        questionnaires,
    }
}

/// One questionnaire per respondent of `referential`, drawn from `config.seed` with
/// `config`'s shares (its `establishments` is not read): the same structures answering
/// another campaign, such as last year's.
pub fn answer(
    definitions: &CampaignDefinitions,
    referential: &Referential,
    config: &GeneratorConfig,
) -> Vec<GeneratedQuestionnaire> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    answer_with(definitions, referential, config, &mut rng, &mut |_, _| {})
}

fn answer_with(
    definitions: &CampaignDefinitions,
    referential: &Referential,
    config: &GeneratorConfig,
    rng: &mut ChaCha8Rng,
    progress: &mut impl FnMut(usize, usize),
) -> Vec<GeneratedQuestionnaire> {
    let respondents: Vec<Respondent> = referential.respondents().collect();
    let total = respondents.len();
    let mut managed_by: HashMap<Finess, usize> = HashMap::new();
    for e in referential.establishments() {
        *managed_by.entry(e.legal_entity).or_default() += 1;
    }
    let mut questionnaires = Vec::with_capacity(total);
    for (n, respondent) in respondents.into_iter().enumerate() {
        let capacity = referential
            .establishment(&respondent.finess)
            .map(|e| e.capacity)
            .unwrap_or_default();
        let managed = managed_by.get(&respondent.finess).copied().unwrap_or(0);
        let draw: f64 = rng.random();
        let quality = if draw < config.incomplete_share {
            Quality::Incomplete
        } else if draw < config.incomplete_share + config.incoherent_share {
            // The OG questionnaire has no coherence rule to break: it is left incomplete instead.
            if respondent.kind == RespondentKind::Og {
                Quality::Incomplete
            } else {
                Quality::Incoherent
            }
        } else {
            Quality::Complete
        };
        let answers = answers_for(
            definitions.for_kind(respondent.kind),
            respondent.kind,
            capacity,
            managed,
            quality,
            rng,
        );
        questionnaires.push(GeneratedQuestionnaire {
            respondent,
            quality,
            answers,
        });
        if n % 1000 == 999 || n + 1 == total {
            progress(n + 1, total);
        }
    }
    questionnaires
}

/// Hands out unique FINESS numbers per département.
struct FinessPool {
    next: HashMap<Departement, u32>,
}

impl FinessPool {
    fn take(&mut self, dep: Departement, legal: bool) -> Finess {
        let n = self.next.entry(dep).or_insert(0);
        *n += 1;
        let prefix = dep.info().finess_prefix;
        // Legal entities and sites draw from separate ranges so they never collide.
        let body = if prefix.len() == 2 {
            format!("{prefix}{}{:05}", if legal { 0 } else { 1 }, *n)
        } else {
            format!("{prefix}{}{:03}", if legal { 0 } else { 1 }, *n)
        };
        Finess::with_key(&body).expect("generated FINESS bodies are well formed")
    }
}

fn pick_category(rng: &mut ChaCha8Rng) -> Category {
    let total: u32 = CATEGORY_MIX.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (c, w) in CATEGORY_MIX {
        if x < w {
            return c;
        }
        x -= w;
    }
    Category::Ehpad
}

fn capacity_for(category: Category, rng: &mut ChaCha8Rng) -> Capacity {
    let (lo, hi) = match category {
        Category::Ehpad => (30, 130),
        Category::Ssiad | Category::Spasad => (15, 90),
        Category::Saa => (20, 150),
        Category::Esat => (30, 120),
        Category::Mas | Category::Eam | Category::Eanm => (15, 70),
        Category::Camsp | Category::Cmpp => (0, 0),
        _ => (10, 80),
    };
    let permanent = if hi == 0 {
        0
    } else {
        rng.random_range(lo..=hi)
    };
    let residential = category.is_residential();
    Capacity {
        permanent,
        temporary: if residential && rng.random_bool(0.5) {
            rng.random_range(1..=6)
        } else {
            0
        },
        day_care: if residential && rng.random_bool(0.3) {
            rng.random_range(2..=12)
        } else {
            0
        },
    }
}

fn build_referential(config: &GeneratorConfig, rng: &mut ChaCha8Rng) -> Referential {
    let departements: Vec<Departement> = Departement::in_regions().collect();
    let mut pool = FinessPool {
        next: HashMap::new(),
    };
    let mut entities = Vec::new();
    let mut establishments: Vec<Establishment> = Vec::new();
    let mut made = 0;
    while made < config.establishments {
        let home = *departements.choose(rng).expect("départements");
        // About a third of entities manage one site; OG size is skewed towards small groups.
        let size = if rng.random_bool(0.35) {
            1
        } else {
            let r: f64 = rng.random();
            (2.0 + 38.0 * r.powi(4)).round() as usize
        }
        .min(config.establishments - made)
        .max(1);
        let ej = pool.take(home, true);
        // Some single-site entities also run a hospital site outside the dashboard: an OG all the same.
        let outside_scope = if size == 1 && rng.random_bool(0.1) {
            1
        } else {
            0
        };
        entities.push(LegalEntity {
            finess: ej,
            name: format!("Gestionnaire {ej}"),
            managed_finess_count: (size + outside_scope) as u32,
        });
        let first = establishments.len();
        for _ in 0..size {
            let dep = if rng.random_bool(0.7) {
                home
            } else {
                let region = home.region();
                let same_region: Vec<_> = departements
                    .iter()
                    .filter(|d| d.region() == region)
                    .collect();
                **same_region.choose(rng).expect("the home région")
            };
            let category = pick_category(rng);
            let finess = pool.take(dep, false);
            let principal = if establishments.len() > first && rng.random_bool(0.05) {
                let candidates: Vec<_> = establishments[first..]
                    .iter()
                    .filter(|e| e.principal.is_none())
                    .map(|e| e.finess)
                    .collect();
                candidates.choose(rng).copied()
            } else {
                None
            };
            establishments.push(Establishment {
                finess,
                name: format!("{} {}", category.key(), finess),
                category,
                legal_entity: ej,
                principal,
                capacity: capacity_for(category, rng),
            });
        }
        made += size;
    }
    Referential::new(entities, establishments).expect("the generator builds consistent links")
}

/// Writes answers, ignoring items the definition does not have or that do not apply.
struct Filler<'a> {
    definition: &'a Definition,
    bit: u32,
    answers: AnswerSet,
}

impl Filler<'_> {
    /// The item's index if it is asked of this respondent (computed items never are).
    fn index(&self, id: &str) -> Option<usize> {
        let i = self.definition.item_index(id)?;
        let item = &self.definition.items()[i];
        (item.mask & self.bit != 0 && !item.computed).then_some(i)
    }

    fn set(&mut self, id: &str, value: Value) {
        if let Some(i) = self.index(id) {
            self.answers.set_slot(i, Slot::Value(value));
        }
    }

    fn put(&mut self, id: &str, slot: Slot) {
        if let Some(i) = self.index(id) {
            self.answers.set_slot(i, slot);
        }
    }

    fn int(&mut self, id: &str, v: i64) {
        self.set(id, Value::Integer(v));
    }

    /// A decimal item given in hundredths (FTE, percentages, euros with cents).
    fn hundredths(&mut self, id: &str, v: i64) {
        self.set(
            id,
            Value::Fixed(Fixed {
                mantissa: v,
                scale: 2,
            }),
        );
    }

    fn euros(&mut self, id: &str, euros: i64) {
        self.hundredths(id, euros * 100);
    }

    fn date(&mut self, id: &str, d: Date) {
        self.set(id, Value::Date(d));
    }

    fn flag(&mut self, id: &str, b: bool) {
        self.set(id, Value::Bool(b));
    }

    fn choice(&mut self, id: &str, code: &str) {
        if let Some(i) = self.index(id)
            && let Some(c) = self.definition.items()[i]
                .choices
                .iter()
                .position(|c| c.code == code)
        {
            self.answers
                .set_slot(i, Slot::Value(Value::Choice(c as u16)));
        }
    }

    fn number(&self, id: &str) -> Option<f64> {
        match self.answers.slot(self.index(id)?) {
            Slot::Value(v) => v.as_number(),
            _ => None,
        }
    }
}

/// The SAD platform's items (aid, and care for a SPASAD), coherent with its rules.
fn home_services(f: &mut Filler, capacity: Capacity, rng: &mut ChaCha8Rng) {
    if f.index("personnes_aidees_31_12").is_none() {
        return;
    }
    let aided = rng.random_range(40..400);
    f.int("personnes_aidees_31_12", aided);
    f.int(
        "personnes_aidees_annee",
        aided * rng.random_range(110..160) / 100,
    );
    let gir = split(aided * rng.random_range(70..100) / 100, 3, rng);
    for (id, n) in [
        "personnes_gir_1_2",
        "personnes_gir_3_4",
        "personnes_gir_5_6",
    ]
    .iter()
    .zip(gir)
    {
        f.int(id, n);
    }
    f.int("personnes_handicap", aided * rng.random_range(5..20) / 100);
    let hours = aided * rng.random_range(80..200);
    for (id, n) in [
        "heures_apa",
        "heures_pch",
        "heures_aide_sociale",
        "heures_caisses_retraite",
        "heures_autres",
    ]
    .iter()
    .zip(split(hours, 5, rng))
    {
        f.int(id, n);
    }
    let fte = hours * 100 / 1400;
    f.hundredths("etp_intervenants_aide", fte);
    f.hundredths("etp_encadrement_aide", fte / 12);
    f.hundredths("etp_administratif_aide", fte / 15);
    let staff_fte = fte + fte / 12 + fte / 15;
    // Permanent staff of the service, from its own FTE (the generic FTE grid is not asked).
    let headcount = staff_fte * 12 / 1000 + 1;
    let (hires, departures) = (
        headcount * rng.random_range(5..30) / 100,
        headcount * rng.random_range(5..30) / 100,
    );
    f.int("effectif_debut", headcount);
    f.int("recrutements", hires);
    f.int("departs", departures);
    f.int("effectif_fin", headcount + hires - departures);
    f.int(
        "absence_total_aide",
        (staff_fte as f64 / 100.0 * 365.0 * rng.random_range(0.05..0.15)) as i64,
    );
    let charges = hours * rng.random_range(24..32);
    f.euros("charges_aide", charges);
    f.euros(
        "charges_personnel_aide",
        charges * rng.random_range(75..88) / 100,
    );
    f.euros("produits_aide", charges * rng.random_range(95..104) / 100);
    // Care (SPASAD): places from the referential's capacity.
    let places = (capacity.permanent as i64).max(10);
    f.int("places_soins_installees", places);
    f.int("places_soins_autorisees", places + rng.random_range(0..=3));
    let days = (places as f64 * 365.0 * rng.random_range(0.85..0.99)) as i64;
    f.int("journees_soins_realisees", days);
    f.int(
        "journees_soins_financees",
        (days as f64 / rng.random_range(0.9..1.02)) as i64,
    );
    f.int(
        "personnes_soins_31_12",
        places * rng.random_range(90..=110) / 100,
    );
    let exits = places * rng.random_range(20..60) / 100;
    f.int("entrees_soins", exits + rng.random_range(0..=3));
    f.int("sorties_soins", exits);
    let care_fte = places * 100 * rng.random_range(30..45) / 100;
    for (id, n) in [
        "etp_infirmier_coordinateur",
        "etp_infirmier_soins",
        "etp_aide_soignant_soins",
        "etp_autres_soins",
    ]
    .iter()
    .zip(split(care_fte, 4, rng))
    {
        f.hundredths(id, n);
    }
    let care = places * rng.random_range(11_000..14_000);
    f.euros("dotation_soins", care);
    f.euros("charges_soins", care * rng.random_range(95..103) / 100);
    f.euros(
        "charges_personnel_soins",
        care * rng.random_range(70..85) / 100,
    );
}

/// Splits `total` into `parts` non-negative integers that add up exactly.
fn split(total: i64, parts: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let weights: Vec<f64> = (0..parts).map(|_| rng.random_range(0.2..1.0)).collect();
    let sum: f64 = weights.iter().sum();
    let mut out: Vec<i64> = weights
        .iter()
        .map(|w| (total as f64 * w / sum).floor() as i64)
        .collect();
    let given: i64 = out.iter().sum();
    if let Some(last) = out.last_mut() {
        *last += total - given;
    }
    out
}

fn any_date(rng: &mut ChaCha8Rng, from_year: i32, to: Date) -> Date {
    let from = Date::from_calendar_date(from_year, time::Month::January, 1).expect("valid");
    let span = (to - from).whole_days().max(1);
    from + Duration::days(rng.random_range(0..span))
}

fn answers_for(
    definition: &Definition,
    kind: RespondentKind,
    capacity: Capacity,
    managed: usize,
    quality: Quality,
    rng: &mut ChaCha8Rng,
) -> AnswerSet {
    let year_end = CampaignYear::data_year_end(definition.campaign().year);
    let mut f = Filler {
        definition,
        bit: kind.bit(),
        answers: definition.empty_answers(),
    };

    // 1. Every applicable item gets a valid value of its type.
    for (i, item) in definition.items().iter().enumerate() {
        if item.mask & f.bit == 0 || item.computed {
            continue;
        }
        let lo = item.min.unwrap_or(0.0).max(0.0);
        let hi = item.max.unwrap_or(lo + 50.0).min(lo + 50.0);
        let value = match &item.kind {
            ItemType::Integer => Value::Integer(rng.random_range(lo as i64..=hi as i64)),
            ItemType::Decimal { .. } | ItemType::Money { .. } | ItemType::Percentage { .. } => {
                Value::Fixed(Fixed {
                    mantissa: rng.random_range((lo * 100.0) as i64..=(hi * 100.0) as i64),
                    scale: 2,
                })
            }
            ItemType::Date => Value::Date(any_date(rng, 2005, year_end)),
            ItemType::YesNo => Value::Bool(rng.random_bool(0.6)),
            ItemType::Choice => Value::Choice(rng.random_range(0..item.choices.len()) as u16),
            ItemType::MultipleChoice => {
                Value::Choices(rng.random_range(1..(1u64 << item.choices.len().min(16))))
            }
            ItemType::Text { .. } => Value::Text("Réponse libre".to_string()),
        };
        f.answers.set_slot(i, Slot::Value(value));
    }

    // 2. The facts the rules relate are made consistent with each other.
    let residential = matches!(kind, RespondentKind::Esms(c) if c.is_residential());
    let sessions = matches!(kind, RespondentKind::Esms(Category::Camsp | Category::Cmpp));
    let days: i64 = if residential {
        365
    } else {
        rng.random_range(220..=260)
    };
    f.int("jours_ouverture", days);
    // Temporary stays and day care often open fewer days than the beds.
    f.int(
        "jours_ouverture_temp",
        if capacity.temporary > 0 { days } else { 0 },
    );
    f.int(
        "jours_ouverture_aj",
        if capacity.day_care > 0 {
            rng.random_range(200..=260)
        } else {
            0
        },
    );
    let perm = capacity.permanent as i64;
    f.int("cap_inst_perm", perm);
    f.int("cap_auth_perm", perm + rng.random_range(0..=2));
    f.int("cap_inst_temp", capacity.temporary as i64);
    f.int("cap_auth_temp", capacity.temporary as i64);
    f.int("cap_inst_aj", capacity.day_care as i64);
    f.int(
        "cap_auth_aj",
        capacity.day_care as i64 + rng.random_range(0..=1),
    );
    f.int(
        "places_habilitees_ash",
        perm * rng.random_range(0..=100) / 100,
    );
    let occupancy = rng.random_range(0.86..0.99);
    let absences_72h = (perm * days) as f64 * rng.random_range(0.0..0.02);
    let perm_days = ((perm * days) as f64 * occupancy - absences_72h).max(0.0) as i64;
    f.int("journees_perm", perm_days);
    f.int("journees_absence_72h", absences_72h as i64);
    let temp_days = (capacity.temporary as f64 * days as f64 * rng.random_range(0.6..0.95)) as i64;
    let aj_days = (capacity.day_care as f64 * 250.0 * rng.random_range(0.5..0.9)) as i64;
    f.int("journees_temp", temp_days);
    f.int("journees_aj", aj_days);
    f.int(
        "journees_financees",
        ((perm_days + temp_days + aj_days) as f64 / rng.random_range(0.9..1.02)).max(1.0) as i64,
    );
    f.int(
        "entrees_temp",
        capacity.temporary as i64 * rng.random_range(4..12),
    );
    f.int(
        "personnes_temp",
        capacity.temporary as i64 * rng.random_range(3..10),
    );
    f.int(
        "personnes_aj",
        capacity.day_care as i64 * rng.random_range(2..4),
    );
    f.int(
        "journees_hospitalisation",
        (perm_days as f64 * rng.random_range(0.0..0.03)) as i64,
    );
    let seances = rng.random_range(2000..8000);
    f.int("seances_financees", seances);
    f.int(
        "seances_realisees",
        seances * rng.random_range(80..100) / 100,
    );
    let programmes = rng.random_range(1000..6000);
    f.int("actes_programmes", programmes);
    f.int(
        "actes_non_realises",
        programmes * rng.random_range(0..15) / 100,
    );

    let people = if sessions {
        rng.random_range(80..400)
    } else {
        (perm + capacity.temporary as i64).max(1) * rng.random_range(90..=100) / 100
            + if residential { 0 } else { perm / 10 }
    }
    .max(1);
    f.int("personnes_31_12", people);
    let age_ids: Vec<&str> = definition
        .items()
        .iter()
        .filter(|i| i.id.starts_with("age_") && i.mask & f.bit != 0)
        .map(|i| i.id.as_str())
        .collect();
    for (id, n) in age_ids.iter().zip(split(people, age_ids.len(), rng)) {
        f.int(id, n);
    }
    for (k, n) in split(people, 6, rng).into_iter().enumerate() {
        f.int(&format!("gir_{}", k + 1), n);
    }
    let principal_ids: Vec<&str> = definition
        .items()
        .iter()
        .filter(|i| i.id.starts_with("def_") && i.id.ends_with("_p") && i.mask & f.bit != 0)
        .map(|i| i.id.as_str())
        .collect();
    for (id, n) in principal_ids
        .iter()
        .zip(split(people, principal_ids.len().max(1), rng))
    {
        f.int(id, n);
    }
    f.hundredths("gmp_valide", rng.random_range(60_000..82_000));
    f.hundredths("gmp_connu", rng.random_range(60_000..85_000));
    f.hundredths("pmp_valide", rng.random_range(15_000..26_000));
    f.hundredths("pmp_connu", rng.random_range(15_000..28_000));

    let exits = (people as f64 * rng.random_range(0.1..0.4)) as i64;
    f.int("entrees", exits + rng.random_range(0..=3));
    f.int("sorties_definitives", exits);
    f.int("duree_sejour_sortis", exits * rng.random_range(200..1500));
    let absent = people * rng.random_range(10..60) / 100;
    f.int("personnes_absentes", absent);
    f.int("journees_absence", absent * rng.random_range(2..20));
    for (ids, parts) in [
        (
            &[
                "provenance_domicile",
                "provenance_sante",
                "provenance_medico_social",
                "provenance_inconnue",
            ][..],
            4,
        ),
        (
            &[
                "sortie_deces",
                "sortie_hospitalisation",
                "sortie_domicile",
                "sortie_reorientation",
                "sortie_inconnue",
            ][..],
            5,
        ),
    ] {
        for (id, v) in ids.iter().zip(split(10_000, parts, rng)) {
            f.hundredths(id, v);
        }
    }

    // FTE in hundredths: functions, their "dont" lines, the total.
    let scale = (perm.max(10) + people / 2) as f64 / 100.0;
    let mut fte = |lo: f64, hi: f64| (rng.random_range(lo..hi) * scale * 100.0) as i64;
    let functions = [
        ("etp_direction", fte(2.0, 5.0)),
        ("etp_administration", fte(3.0, 8.0)),
        ("etp_services_generaux", fte(3.0, 10.0)),
        ("etp_restauration", fte(2.0, 8.0)),
        ("etp_socio_educatif", fte(5.0, 40.0)),
        ("etp_paramedical", fte(10.0, 45.0)),
        ("etp_psychologue", fte(0.5, 3.0)),
        ("etp_ash", fte(5.0, 20.0)),
        ("etp_medical", fte(0.5, 3.0)),
        ("etp_education_nationale", fte(0.0, 5.0)),
        ("etp_autres_fonctions", fte(0.0, 4.0)),
    ];
    let mut total = 0;
    for (id, v) in functions {
        if f.index(id).is_some() {
            f.hundredths(id, v);
            total += v;
        }
    }
    let dont = |f: &mut Filler, rng: &mut ChaCha8Rng, function: i64, ids: &[&str]| {
        let used = function * rng.random_range(70..100) / 100;
        for (id, v) in ids.iter().zip(split(used, ids.len(), rng)) {
            f.hundredths(id, v);
        }
    };
    dont(
        &mut f,
        rng,
        functions[0].1,
        &["etp_direction_medical", "etp_direction_autre"],
    );
    dont(
        &mut f,
        rng,
        functions[4].1,
        &[
            "etp_se_aes",
            "etp_se_animateur",
            "etp_se_moniteur_educateur",
            "etp_se_educateur_specialise",
            "etp_se_assistant_social",
            "etp_se_autre",
        ],
    );
    dont(
        &mut f,
        rng,
        functions[5].1,
        &[
            "etp_pm_infirmier",
            "etp_pm_aes",
            "etp_pm_aide_soignant",
            "etp_pm_kinesitherapeute",
            "etp_pm_psychomotricien",
            "etp_pm_ergotherapeute",
            "etp_pm_orthophoniste",
            "etp_pm_autre",
        ],
    );
    if f.index("etp_med_coordonnateur").is_some() {
        dont(
            &mut f,
            rng,
            functions[8].1,
            &["etp_med_coordonnateur", "etp_med_autre"],
        );
    } else {
        f.hundredths(
            "etp_med_autre",
            functions[8].1 * rng.random_range(50..100) / 100,
        );
    }
    f.hundredths("etp_management", total * rng.random_range(5..12) / 100);
    let vacant = total * rng.random_range(0..6) / 100;
    f.hundredths("etp_budgetes", total + vacant);
    f.hundredths("etp_vacants", vacant);
    f.hundredths("etp_vacants_soins", vacant / 3);
    f.hundredths("etp_vacants_socio_educatif", vacant / 3);
    f.hundredths("etp_budgetes_soins", functions[5].1 + vacant / 3);
    f.hundredths("etp_budgetes_socio_educatif", functions[4].1 + vacant / 3);
    let headcount = total * 12 / 1000 + 1;
    let (hires, departures) = (
        headcount * rng.random_range(5..30) / 100,
        headcount * rng.random_range(5..30) / 100,
    );
    f.int("effectif_debut", headcount);
    f.int("recrutements", hires);
    f.int("departs", departures);
    f.int("effectif_fin", headcount + hires - departures);
    let pyramid = [
        "effectif_age_moins_20",
        "effectif_age_20_29",
        "effectif_age_30_39",
        "effectif_age_40_49",
        "effectif_age_50_54",
        "effectif_age_55_59",
        "effectif_age_60_64",
        "effectif_age_65_plus",
    ];
    for (id, n) in pyramid
        .iter()
        .zip(split(headcount * 11 / 10, pyramid.len(), rng))
    {
        f.int(id, n);
    }
    let absence_days = (total as f64 / 100.0 * 365.0 * rng.random_range(0.04..0.14)) as i64;
    let motives = [
        "absence_maladie_ordinaire",
        "absence_maladie_moyenne",
        "absence_maladie_longue",
        "absence_maternite",
        "absence_at_mp",
        "absence_conges_speciaux",
    ];
    for (id, v) in motives.iter().zip(split(absence_days, motives.len(), rng)) {
        f.int(id, v);
    }

    // Finance, in euros.
    let budget = (perm.max(10) + people) * rng.random_range(25_000..60_000);
    f.euros("produits_classe_7", budget);
    let cessions = budget * rng.random_range(0..3) / 100;
    let reprises = budget * rng.random_range(0..3) / 100;
    let rabais = budget * rng.random_range(0..2) / 100;
    f.euros("produits_775_777_7781", cessions);
    f.euros("produits_78", reprises);
    f.euros("rabais_709_713", rabais);
    f.euros(
        "caf",
        (budget - cessions - reprises - rabais) * rng.random_range(3..9) / 100,
    );
    let staff = budget * rng.random_range(55..75) / 100;
    f.euros("charges_personnel", staff);
    f.euros("depenses_groupe_2", staff);
    f.euros("depenses_groupe_1", budget * rng.random_range(8..15) / 100);
    f.euros("depenses_groupe_3", budget * rng.random_range(8..15) / 100);
    for id in [
        "compte_6111",
        "compte_6112",
        "compte_621_soins",
        "compte_6223",
        "compte_6226",
    ] {
        f.euros(id, budget * rng.random_range(0..3) / 100);
    }
    for (amort, gross) in [
        ("amortissements_constructions", "valeur_brute_constructions"),
        ("amortissements_equipements", "valeur_brute_equipements"),
    ] {
        let value = budget * rng.random_range(50..200) / 100;
        f.euros(gross, value);
        f.euros(amort, value * rng.random_range(10..90) / 100);
    }
    let permanent_capital = budget * rng.random_range(80..200) / 100;
    f.euros("capitaux_permanents", permanent_capital);
    f.euros(
        "actif_immobilise",
        permanent_capital * rng.random_range(60..98) / 100,
    );
    f.euros(
        "charges_courantes",
        budget * rng.random_range(90..100) / 100,
    );
    f.euros(
        "dettes_financieres",
        permanent_capital * rng.random_range(10..60) / 100,
    );
    f.euros("recettes_prevues", budget);
    f.euros(
        "recettes_realisees",
        budget * rng.random_range(95..105) / 100,
    );
    f.euros("depenses_prevues", budget);
    f.euros(
        "depenses_realisees",
        budget * rng.random_range(95..105) / 100,
    );
    let care = budget * rng.random_range(25..40) / 100;
    f.euros("dotation_soins", care);
    f.euros(
        "dotation_soins_utilisee",
        care * rng.random_range(90..105) / 100,
    );
    f.euros(
        "si_budget_exploitation",
        budget * rng.random_range(1..3) / 100,
    );

    // Dates in order, none after the end of the data year.
    let opened = any_date(rng, 1975, year_end - Duration::days(30));
    f.date(
        "date_autorisation",
        opened - Duration::days(rng.random_range(30..700)),
    );
    f.date("date_ouverture", opened);
    let cpom = rng.random_bool(0.6);
    f.flag("cpom_en_cours", cpom);
    let cpom_start = any_date(rng, 2018, year_end);
    f.date("cpom_date_debut", cpom_start);
    f.date("cpom_date_fin", cpom_start + Duration::days(5 * 365));
    if !cpom {
        for id in ["cpom_date_debut", "cpom_date_fin", "cpom_signataires"] {
            f.put(id, Slot::NotApplicable);
        }
    }
    let rooms = perm + capacity.temporary as i64;
    let single = rooms * rng.random_range(70..=100) / 100;
    let double = (rooms - single) / 2;
    f.int("chambres_individuelles", single);
    f.int("chambres_doubles", double);
    f.int("chambres_plus_deux", 0);
    f.int("chambres_sanitaires_privatifs", single + double);
    f.int(
        "dossiers_administratifs_informatises",
        people * rng.random_range(0..=100) / 100,
    );
    f.int(
        "projets_personnalises_informatises",
        people * rng.random_range(0..=100) / 100,
    );
    let option = [
        "global_pui",
        "global_sans_pui",
        "partiel_pui",
        "partiel_sans_pui",
    ]
    .choose(rng)
    .copied()
    .unwrap_or("partiel_sans_pui");
    f.choice("option_tarifaire", option);
    if option.starts_with("partiel") {
        f.put("depenses_materiel_medical", Slot::Missing);
    }
    f.int("og_nombre_esms", managed as i64);
    home_services(&mut f, capacity, rng);

    // 3. Damage what the requested quality asks for.
    match quality {
        Quality::Complete => {}
        Quality::Incomplete => {
            let share = rng.random_range(0.15..0.6);
            let asked: Vec<usize> = (0..definition.items().len())
                .filter(|&i| {
                    let item = &definition.items()[i];
                    item.mask & f.bit != 0 && !item.computed
                })
                .collect();
            // At least one item goes missing, even in a short questionnaire.
            let surely_gone = asked.choose(rng).copied();
            for &i in &asked {
                if surely_gone == Some(i) || rng.random_bool(share) {
                    f.answers.set_slot(i, Slot::Missing);
                }
            }
        }
        Quality::Incoherent => {
            // Break a blocking rule that applies to every respondent of the platform, so
            // each incoherent questionnaire really is.
            let hundredths = |v: Option<f64>| v.map_or(0, |v| (v * 100.0).round() as i64);
            if f.index("charges_aide").is_some() {
                let charges = hundredths(f.number("charges_aide"));
                f.hundredths("charges_personnel_aide", charges + 100_000);
            } else if rng.random_bool(0.5) {
                let direction = hundredths(f.number("etp_direction"));
                f.hundredths("etp_direction_medical", direction + 100);
            } else {
                let budgeted = hundredths(f.number("etp_budgetes"));
                f.hundredths("etp_vacants", budgeted + 100);
            }
        }
    }
    f.answers
}
