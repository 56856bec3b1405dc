//! The questionnaire engine against the shipped 2025 definition and small hand-made ones.

use serde_json::json;
use tdb_domain::campaign::Platform;
use tdb_domain::category::{Category, RespondentKind};
use tdb_domain::questionnaire::{
    AnswerProblem, Definition, DefinitionProblem, IndicatorValue, NotComputable, Severity, builtin,
};

fn d2025() -> Definition {
    builtin::load(2025)
        .expect("shipped")
        .expect("the 2025 definitions load")
        .platform(Platform::Generic)
        .clone()
}

const EHPAD: RespondentKind = RespondentKind::Esms(Category::Ehpad);

#[test]
fn the_2025_definition_loads_with_its_campaign_items_rules_and_indicators() {
    let d = d2025();
    assert_eq!(d.campaign().year.value(), 2025);
    assert_eq!(d.campaign().year.data_year(), 2024);
    assert_eq!(d.platform(), Platform::Generic);
    assert_eq!(d.parts().len(), 1);
    assert_eq!(d.parts()[0].fill_threshold, 0.90);
    assert!(d.items().len() >= 200, "{} items", d.items().len());
    assert!(d.rules().len() >= 25, "{} rules", d.rules().len());
    assert!(
        d.indicators().len() >= 15,
        "{} indicators",
        d.indicators().len()
    );
    assert!(d.items().iter().any(|i| i.financial));
    assert!(d.items().iter().all(|i| !i.label.is_empty()));
}

#[test]
fn applicability_follows_the_category() {
    let d = d2025();
    let asks = |c: Category, id: &str| d.items_for(RespondentKind::Esms(c)).any(|i| i.id == id);
    assert!(
        asks(Category::Ehpad, "gmp_valide")
            && asks(Category::Ehpad, "gir_1")
            && asks(Category::Ehpad, "etp_med_coordonnateur")
    );
    assert!(
        asks(Category::Ssiad, "gir_1")
            && !asks(Category::Ssiad, "gmp_valide")
            && !asks(Category::Ssiad, "cap_auth_temp")
    );
    for c in [
        Category::Ime,
        Category::Itep,
        Category::Sessad,
        Category::Camsp,
        Category::Cmpp,
    ] {
        assert!(
            asks(c, "age_6_10") && asks(c, "def_autisme_p") && asks(c, "etp_education_nationale"),
            "{c}"
        );
        assert!(!asks(c, "gir_1") && !asks(c, "age_85_95"), "{c}");
    }
    for c in [Category::Esat, Category::Mas, Category::Eam, Category::Eanm] {
        assert!(
            asks(c, "age_40_44")
                && asks(c, "def_psychisme_p")
                && !asks(c, "etp_education_nationale")
                && !asks(c, "age_6_10"),
            "{c}"
        );
    }
    assert!(asks(Category::Camsp, "seances_financees") && !asks(Category::Camsp, "cap_auth_perm"));
    assert!(asks(Category::Mas, "cap_auth_temp") && !asks(Category::Esat, "cap_auth_temp"));
    assert!(
        asks(Category::Ime, "convention_education_nationale")
            && !asks(Category::Mas, "convention_education_nationale")
    );
    assert!(
        d.items_for(RespondentKind::Og)
            .all(|i| i.id.starts_with("og_"))
    );
    assert!(d.items_for(EHPAD).all(|i| !i.id.starts_with("og_")));
}

#[test]
fn tarification_options_decide_some_items() {
    let d = d2025();
    let item = d.item_index("depenses_materiel_medical").unwrap();
    let mut answers = d.empty_answers();
    assert!(
        d.is_applicable(item, EHPAD, &answers),
        "asked until the option is known"
    );
    d.set_answer(
        &mut answers,
        EHPAD,
        "option_tarifaire",
        &json!("partiel_sans_pui"),
    )
    .unwrap();
    assert!(!d.is_applicable(item, EHPAD, &answers));
    d.set_answer(
        &mut answers,
        EHPAD,
        "option_tarifaire",
        &json!("global_pui"),
    )
    .unwrap();
    assert!(d.is_applicable(item, EHPAD, &answers));
}

#[test]
fn answers_are_checked_against_their_item_and_every_problem_is_reported() {
    let d = d2025();
    let body = json!({
        "nope": 1,
        "cap_auth_perm": "eighty",
        "jours_ouverture": 400,
        "etp_direction": 12.345,
        "statut_juridique": "martian",
        "date_ouverture": "31/12/2020",
        "gmp_valide": 700.5,
        "og_nombre_esms": 3,
        "reseau_sante_type": "x".repeat(201),
    });
    let errors = d
        .parse_answers(EHPAD, body.as_object().unwrap())
        .unwrap_err();
    let problem = |item: &str| {
        errors
            .iter()
            .find(|e| e.item == item)
            .map(|e| e.reason.clone())
    };
    assert_eq!(problem("nope"), Some(AnswerProblem::UnknownItem));
    assert!(matches!(
        problem("cap_auth_perm"),
        Some(AnswerProblem::WrongType { .. })
    ));
    assert!(
        matches!(problem("jours_ouverture"), Some(AnswerProblem::AboveMaximum { max, .. }) if max == 366.0)
    );
    assert_eq!(
        problem("etp_direction"),
        Some(AnswerProblem::TooManyDecimals { max: 2 })
    );
    assert!(matches!(
        problem("statut_juridique"),
        Some(AnswerProblem::UnknownChoice { .. })
    ));
    assert!(matches!(
        problem("date_ouverture"),
        Some(AnswerProblem::WrongType { .. })
    ));
    assert!(matches!(
        problem("og_nombre_esms"),
        Some(AnswerProblem::NotApplicableToRespondent { .. })
    ));
    assert_eq!(
        problem("reseau_sante_type"),
        Some(AnswerProblem::TooLong { max: 200 })
    );
    assert_eq!(problem("gmp_valide"), None);
    assert_eq!(errors.len(), 8);
    assert!(
        errors[0].to_string().contains(&errors[0].item),
        "the message names the item"
    );
}

#[test]
fn not_applicable_and_unknown_are_distinct_from_missing_and_round_trip() {
    let d = d2025();
    let body = json!({ "cap_auth_perm": 80, "cap_auth_temp": { "status": "not_applicable" }, "cap_auth_aj": { "status": "unknown" }, "sources_financement": ["etat", "usagers"], "etp_direction": 41.5, "date_ouverture": "1998-03-01", "cpom_en_cours": false });
    let answers = d.parse_answers(EHPAD, body.as_object().unwrap()).unwrap();
    assert_eq!(answers.given(), 7);
    assert_eq!(serde_json::Value::Object(d.answers_to_json(&answers)), body);
    let bad = json!({ "cap_auth_perm": { "status": "maybe" } });
    assert!(matches!(
        d.parse_answers(EHPAD, bad.as_object().unwrap())
            .unwrap_err()[0]
            .reason,
        AnswerProblem::UnknownStatus { .. }
    ));
}

const SMALL: &str = r#"
[campaign]
year = 2025
platform = "generic"
questionnaire_version = "test"
[campaign.calendar]
collection_opens = "2025-05-05"
collection_deadline = "2025-06-30"
fiabilisation_ends = "2025-08-31"
restitutions_open = "2025-10-01"

[[parts]]
id = "p"
label = "Part"
fill_threshold = 0.90
deadline = "2025-06-30"

[[sections]]
id = "s1"
label = "Section 1"
applies = ["TOUT_ESMS"]
items = [
  { id = "a", label = "A", type = "integer" },
  { id = "b", label = "B", type = "integer" },
  { id = "c", label = "C", type = "integer", required = true },
  { id = "d1", label = "Début", type = "date" },
  { id = "d2", label = "Fin", type = "date" },
  { id = "flag", label = "Flag", type = "yes_no" },
  { id = "kind", label = "Kind", type = "choice", choices = [["x", "X"], ["y", "Y"]] },
]
[[sections]]
id = "s2"
label = "Section 2"
applies = ["EHPAD"]
financial = true
items = [
  { id = "money", label = "Money", type = "money" },
  { id = "pct1", label = "P1", type = "percentage" },
  { id = "pct2", label = "P2", type = "percentage" },
]

[[rules]]
id = "a_le_b"
check = "a <= b"
severity = "blocking"
message = "a <= b"

[[rules]]
id = "pct_100"
check = "abs(pct1 + pct2 - 100) <= 0.5"
when = "pct1 + pct2 > 0"
missing = "zero"
severity = "warning"
message = "100 %"

[[rules]]
id = "dates"
when = "flag"
check = "present(d1) and d1 < d2 and d2 <= year_end"
missing = "violation"
severity = "blocking"
message = "dates"

[[rules]]
id = "kind_x_needs_c"
when = "kind == 'x'"
check = "c > 0"
severity = "warning"
message = "x needs c"

[[indicators]]
id = "ratio"
source = "test"
label = "a / b"
numerator = "a"
denominator = "b"
unit = "ratio"

[[indicators]]
id = "nested"
source = "test"
label = "money / (a - b)"
numerator = "money"
denominator = "a / (b - c)"
unit = "euros"
"#;

fn small() -> Definition {
    Definition::from_toml(SMALL).unwrap()
}

fn answers(
    d: &Definition,
    kind: RespondentKind,
    body: serde_json::Value,
) -> tdb_domain::questionnaire::AnswerSet {
    d.parse_answers(kind, body.as_object().unwrap()).unwrap()
}

#[test]
fn fill_rate_counts_answered_applicable_items_per_section_and_overall() {
    let d = small();
    let a = answers(
        &d,
        EHPAD,
        json!({ "a": 1, "b": { "status": "not_applicable" }, "c": { "status": "unknown" }, "money": 12.5 }),
    );
    let fill = d.fill_rate(EHPAD, &a);
    assert_eq!(
        (fill.overall.answered, fill.overall.applicable),
        (3, 10),
        "unknown is not an answer, not applicable is"
    );
    assert_eq!(
        fill.sections[0],
        (
            "s1",
            tdb_domain::questionnaire::FillRate {
                answered: 2,
                applicable: 7
            }
        )
    );
    assert_eq!(fill.sections[1].1.answered, 1);
    let ssiad = RespondentKind::Esms(Category::Ssiad);
    let fill = d.fill_rate(ssiad, &answers(&d, ssiad, json!({ "a": 1 })));
    assert_eq!(
        fill.overall.applicable, 7,
        "section 2 applies to EHPAD only"
    );
    assert_eq!(fill.sections.len(), 1);
    assert_eq!(
        d.fill_rate(RespondentKind::Og, &d.empty_answers())
            .overall
            .ratio(),
        1.0,
        "nothing asked is complete"
    );
}

#[test]
fn rules_report_violations_with_their_items_and_respect_missing_strategies() {
    let d = small();
    let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, json!({ "a": 5, "b": 3 })), None);
    assert_eq!(eval.violations.len(), 1);
    assert_eq!(eval.violations[0].rule, "a_le_b");
    assert_eq!(eval.violations[0].items, ["a", "b"]);
    assert_eq!(eval.violations[0].severity, Severity::Blocking);

    let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, json!({ "a": 5 })), None);
    assert!(eval.violations.is_empty(), "skip waits for b");

    let pct = |p1: f64| {
        d.evaluate(EHPAD, &answers(&d, EHPAD, json!({ "pct1": p1 })), None)
            .violations
            .iter()
            .any(|v| v.rule == "pct_100")
    };
    assert!(pct(60.0), "pct2 missing reads as 0");
    assert!(!pct(99.5), "within the 0.5 tolerance");
    assert!(!pct(100.0));

    let dates = |body| {
        d.evaluate(EHPAD, &answers(&d, EHPAD, body), None)
            .violations
            .into_iter()
            .find(|v| v.rule == "dates")
    };
    assert!(
        dates(json!({ "flag": false })).is_none(),
        "when false: not evaluated"
    );
    assert!(dates(json!({ "flag": true, "d1": "2020-01-01", "d2": "2021-01-01" })).is_none());
    assert!(
        dates(json!({ "flag": true, "d1": "2021-01-01", "d2": "2020-01-01" })).is_some(),
        "out of order"
    );
    assert!(
        dates(json!({ "flag": true, "d1": "2020-01-01", "d2": "2025-06-02" })).is_some(),
        "in the future"
    );
    let missing =
        dates(json!({ "flag": true, "d1": "2020-01-01" })).expect("missing d2 is a violation");
    assert!(missing.missing_input);

    let choice = |body| {
        d.evaluate(EHPAD, &answers(&d, EHPAD, body), None)
            .violations
            .iter()
            .any(|v| v.rule == "kind_x_needs_c")
    };
    assert!(choice(json!({ "kind": "x", "c": 0 })));
    assert!(!choice(json!({ "kind": "y", "c": 0 })));
    assert!(!choice(json!({ "kind": "x", "c": 2 })));
}

#[test]
fn indicators_are_not_computable_rather_than_nan() {
    let d = small();
    let value = |body| {
        let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, body), None);
        (
            eval.indicators[0].value.clone(),
            eval.indicators[1].value.clone(),
        )
    };
    assert_eq!(
        value(json!({ "a": 3, "b": 4 })).0,
        IndicatorValue::Value(0.75)
    );
    assert_eq!(
        value(json!({ "a": 3, "b": 0 })).0,
        IndicatorValue::NotComputable(NotComputable::ZeroDenominator)
    );
    assert_eq!(
        value(json!({ "a": 3 })).0,
        IndicatorValue::NotComputable(NotComputable::MissingInputs { items: vec!["b"] })
    );
    assert_eq!(
        value(json!({ "money": 10, "a": 4, "b": 3, "c": 1 })).1,
        IndicatorValue::Value(5.0)
    );
    assert_eq!(
        value(json!({ "money": 10, "a": 4, "b": 3, "c": 3 })).1,
        IndicatorValue::NotComputable(NotComputable::ZeroDenominator),
        "inner division by zero"
    );
}

#[test]
fn validation_needs_the_threshold_the_required_items_and_no_blocking_violation() {
    let d = small();
    let full = json!({ "a": 1, "b": 2, "c": 3, "d1": "2020-01-01", "d2": "2021-01-01", "flag": true, "kind": "y", "money": 1, "pct1": 50, "pct2": 50 });
    assert!(
        d.evaluate(EHPAD, &answers(&d, EHPAD, full.clone()), None)
            .can_validate()
    );
    let mut no_c = full.clone();
    no_c.as_object_mut().unwrap().remove("c");
    let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, no_c), None);
    assert_eq!(eval.missing_required, ["c"]);
    assert!(!eval.can_validate());
    let mut blocking = full.clone();
    blocking["a"] = json!(9);
    assert!(
        !d.evaluate(EHPAD, &answers(&d, EHPAD, blocking), None)
            .can_validate()
    );
    let mut warning_only = full;
    warning_only["pct2"] = json!(10);
    assert!(
        d.evaluate(EHPAD, &answers(&d, EHPAD, warning_only), None)
            .can_validate(),
        "a warning does not block"
    );
}

#[test]
fn definition_errors_are_all_reported_with_a_clear_message() {
    let broken = SMALL
        .replace(r#"{ id = "b", label = "B", type = "integer" },"#, r#"{ id = "a", label = "B", type = "integer" }, { id = "z", label = "Z", type = "integer", applies = ["NOWHERE"] }, { id = "t", label = "T", type = "integer", tarification = ["x"] },"#)
        .replace(r#"check = "a <= b""#, r#"check = "a <= ghost""#)
        .replace(r#"numerator = "a""#, r#"numerator = "kind + 1""#)
        .replace(r#"check = "c > 0""#, r#"check = "c > 0"
applies = ["OG"]"#);
    let err = Definition::from_toml(&broken).unwrap_err();
    let problems = &err.0;
    assert!(
        problems.contains(&DefinitionProblem::Duplicate {
            kind: "item",
            id: "a".into()
        }),
        "{err}"
    );
    assert!(
        problems.iter().any(
            |p| matches!(p, DefinitionProblem::UnknownApplicability { key, .. } if key == "NOWHERE")
        ),
        "{err}"
    );
    assert!(problems.iter().any(|p| matches!(p, DefinitionProblem::TarificationOutsideCategories { item } if item == "t")), "{err}");
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, DefinitionProblem::Expression { id, .. } if id == "a_le_b")),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, DefinitionProblem::Expression { id, .. } if id == "ratio")),
        "{err}"
    );
    assert!(problems.iter().any(|p| matches!(p, DefinitionProblem::ApplicabilityBeyondItems { id, .. } if id == "kind_x_needs_c")), "{err}");
    let text = err.to_string();
    assert!(text.contains("unknown item `ghost`"), "{text}");
    assert!(text.contains("defined twice"), "{text}");

    let syntax = Definition::from_toml("[campaign]\nyear = 'x'").unwrap_err();
    assert!(matches!(syntax.0[0], DefinitionProblem::Syntax(_)));
    let unknown_field = SMALL.replace(r#"type = "money""#, r#"type = "money", colour = "red""#);
    assert!(
        Definition::from_toml(&unknown_field).is_err(),
        "typos in field names are load errors"
    );
}
