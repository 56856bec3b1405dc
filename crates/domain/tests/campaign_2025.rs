//! The 2025 campaign as the arrêtés define it: the generic and SAD platforms, the 2025
//! generic content, rules that do not block a legitimate questionnaire, the indicators
//! (checked against hand arithmetic) and the year-on-year comparison.

#![recursion_limit = "256"]

use serde_json::{Value as Json, json};
use tdb_domain::campaign::Platform;
use tdb_domain::category::{Category, RespondentKind};
use tdb_domain::questionnaire::{
    AnswerProblem, AnswerSet, CampaignDefinitions, Definition, DefinitionProblem, Evaluation,
    IndicatorValue, NotComputable, Severity, builtin,
};
use time::macros::date;

const EHPAD: RespondentKind = RespondentKind::Esms(Category::Ehpad);
const SAA: RespondentKind = RespondentKind::Esms(Category::Saa);
const SPASAD: RespondentKind = RespondentKind::Esms(Category::Spasad);

fn campaign() -> CampaignDefinitions {
    builtin::load(2025).expect("shipped").expect("both load")
}

fn generic() -> Definition {
    campaign().platform(Platform::Generic).clone()
}

fn answers(d: &Definition, kind: RespondentKind, body: Json) -> AnswerSet {
    d.parse_answers(kind, body.as_object().expect("an object"))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn value(eval: &Evaluation, indicator: &str) -> Option<f64> {
    let found = eval
        .indicators
        .iter()
        .find(|i| i.indicator == indicator)
        .unwrap_or_else(|| panic!("no indicator {indicator}"));
    match found.value {
        IndicatorValue::Value(v) => Some(v),
        IndicatorValue::NotComputable(_) => None,
    }
}

fn violated(eval: &Evaluation, rule: &str) -> Option<Severity> {
    eval.violations
        .iter()
        .find(|v| v.rule == rule)
        .map(|v| v.severity)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

// ------------------------------------------------------------------- platforms

#[test]
fn home_services_answer_on_the_sad_platform_and_the_others_on_the_generic_one() {
    let c = campaign();
    for kind in [SAA, SPASAD] {
        assert_eq!(c.for_kind(kind).platform(), Platform::Sad, "{kind:?}");
    }
    for category in Category::ALL
        .into_iter()
        .filter(|c| !matches!(c, Category::Saa | Category::Spasad))
    {
        let kind = RespondentKind::Esms(category);
        assert_eq!(c.for_kind(kind).platform(), Platform::Generic, "{kind:?}");
    }
    assert_eq!(
        c.for_kind(RespondentKind::Esms(Category::Ssiad)).platform(),
        Platform::Generic,
        "SSIAD stays on the generic platform"
    );
    assert_eq!(c.for_kind(RespondentKind::Og).platform(), Platform::Generic);
}

#[test]
fn thresholds_and_deadlines_belong_to_each_platforms_parts() {
    let c = campaign();
    let parts = |p: Platform| {
        c.platform(p)
            .parts()
            .iter()
            .map(|part| (part.id.clone(), part.fill_threshold, part.deadline))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        parts(Platform::Generic),
        [("generique".to_string(), 0.90, date!(2025 - 06 - 30))]
    );
    assert_eq!(
        parts(Platform::Sad),
        [
            ("soins".to_string(), 0.90, date!(2025 - 06 - 30)),
            ("aide".to_string(), 0.60, date!(2025 - 07 - 31)),
        ]
    );
    assert_eq!(
        c.platform(Platform::Sad)
            .campaign()
            .calendar
            .collection_deadline,
        date!(2025 - 07 - 31)
    );
    assert_eq!(
        c.platform(Platform::Generic)
            .campaign()
            .calendar
            .collection_deadline,
        date!(2025 - 06 - 30)
    );
}

/// The SAD questionnaire's aid items for a respondent, all answered.
fn full_aid() -> Json {
    json!({
        "statut_juridique": "prive_non_lucratif", "date_ouverture": "2001-02-01",
        "habilitation_aide_sociale": true, "cpom_en_cours": false, "communes_couvertes": 12,
        "intervention_7j7": true,
        "heures_apa": 20000, "heures_pch": 3000, "heures_aide_sociale": 1000,
        "heures_caisses_retraite": 500, "heures_autres": 1500,
        "personnes_aidees_31_12": 150, "personnes_aidees_annee": 210,
        "personnes_gir_1_2": 30, "personnes_gir_3_4": 60, "personnes_gir_5_6": 40,
        "personnes_handicap": 15,
        "etp_intervenants_aide": 18.5, "etp_encadrement_aide": 2, "etp_administratif_aide": 1.5,
        "effectif_debut": 25, "effectif_fin": 26, "recrutements": 5, "departs": 4,
        "absence_total_aide": 700,
        "produits_aide": 700000, "charges_aide": 690000, "charges_personnel_aide": 560000
    })
}

#[test]
fn an_aid_service_validates_at_60_percent_of_its_aid_part() {
    let sad = campaign().platform(Platform::Sad).clone();
    let mut body = full_aid();
    // Leave out 10 of the 28 aid items: 18/28 = 64 % answered.
    for id in [
        "communes_couvertes",
        "intervention_7j7",
        "personnes_handicap",
        "personnes_gir_1_2",
        "personnes_gir_3_4",
        "personnes_gir_5_6",
        "etp_administratif_aide",
        "absence_total_aide",
        "habilitation_aide_sociale",
        "heures_autres",
    ] {
        body.as_object_mut().unwrap().remove(id);
    }
    let eval = sad.evaluate(SAA, &answers(&sad, SAA, body), None);
    assert_eq!(eval.fill.parts.len(), 1, "an SAA has no care part");
    assert_eq!(eval.fill.parts[0].part, "aide");
    assert!(close(eval.fill.parts[0].rate.ratio(), 18.0 / 28.0));
    assert!(eval.can_validate(), "{:?}", eval.violations);
    assert!(!eval.fill.parts[0].is_late(date!(2025 - 08 - 01)));
    // Two more gone: 16/28 = 57 %, below the aid part's 60 %, and late after 31 July.
    let mut less = full_aid();
    for id in [
        "communes_couvertes",
        "intervention_7j7",
        "personnes_handicap",
        "personnes_gir_1_2",
        "personnes_gir_3_4",
        "personnes_gir_5_6",
        "etp_administratif_aide",
        "absence_total_aide",
        "habilitation_aide_sociale",
        "heures_autres",
        "heures_pch",
        "cpom_en_cours",
    ] {
        less.as_object_mut().unwrap().remove(id);
    }
    let eval = sad.evaluate(SAA, &answers(&sad, SAA, less), None);
    assert!(close(eval.fill.parts[0].rate.ratio(), 16.0 / 28.0));
    assert!(!eval.can_validate());
    assert_eq!(eval.part_satisfied("aide"), Some(false));
    assert!(!eval.fill.parts[0].is_late(date!(2025 - 07 - 31)));
    assert!(eval.fill.parts[0].is_late(date!(2025 - 08 - 01)));
}

#[test]
fn a_generic_definition_does_not_take_home_services_answers() {
    let d = generic();
    let err = d
        .parse_answers(
            SPASAD,
            json!({ "statut_juridique": "public" }).as_object().unwrap(),
        )
        .unwrap_err();
    assert!(matches!(
        err[0].reason,
        AnswerProblem::NotApplicableToRespondent { .. }
    ));
    assert_eq!(d.items_for(SAA).count(), 0);
}

#[test]
fn sad_indicators_by_hand() {
    let sad = campaign().platform(Platform::Sad).clone();
    let mut body = full_aid();
    body["places_soins_autorisees"] = json!(40);
    body["journees_soins_realisees"] = json!(13500);
    let eval = sad.evaluate(SPASAD, &answers(&sad, SPASAD, body), None);
    let hours = 20000.0 + 3000.0 + 1000.0 + 500.0 + 1500.0;
    for (indicator, want) in [
        ("heures_par_personne_aidee", hours / 210.0),
        ("cout_horaire_aide", 690000.0 / hours),
        ("part_personnes_gir_1_2", 30.0 / 150.0),
        (
            "taux_absenteisme_aide",
            700.0 / ((18.5 + 2.0 + 1.5) * 365.0),
        ),
        ("taux_rotation_personnels", (5.0 + 4.0) / 2.0 / 25.0),
        // 2024 had 366 days: a care service full every day is at 100 %, not 100.3 %.
        ("taux_occupation_soins", 13500.0 / (40.0 * 366.0)),
    ] {
        let got = value(&eval, indicator).unwrap_or_else(|| panic!("{indicator}"));
        assert!(close(got, want), "{indicator}: {got} ≠ {want}");
    }
}

#[test]
fn a_spasad_needs_90_percent_of_its_care_part_as_well() {
    let sad = campaign().platform(Platform::Sad).clone();
    let mut body = full_aid();
    let care = json!({
        "places_soins_autorisees": 40, "places_soins_installees": 40,
        "journees_soins_financees": 14000, "journees_soins_realisees": 13500,
        "personnes_soins_31_12": 41, "entrees_soins": 15, "sorties_soins": 14,
        "etp_infirmier_coordinateur": 1, "etp_infirmier_soins": 3, "etp_aide_soignant_soins": 10,
        "etp_autres_soins": 0.5,
        "dotation_soins": 480000, "charges_soins": 470000, "charges_personnel_soins": 380000
    });
    for (k, v) in care.as_object().unwrap() {
        body.as_object_mut().unwrap().insert(k.clone(), v.clone());
    }
    let full = sad.evaluate(SPASAD, &answers(&sad, SPASAD, body.clone()), None);
    assert!(full.can_validate(), "{:?}", full.violations);
    // Two of the 14 care items missing: 86 % < 90 %, whatever the aid part says.
    for id in ["entrees_soins", "sorties_soins"] {
        body.as_object_mut().unwrap().remove(id);
    }
    let eval = sad.evaluate(SPASAD, &answers(&sad, SPASAD, body), None);
    let care = eval.fill.parts.iter().find(|p| p.part == "soins").unwrap();
    assert!(close(care.rate.ratio(), 12.0 / 14.0));
    assert!(!care.is_satisfied() && !eval.can_validate());
    assert!(
        eval.fill
            .parts
            .iter()
            .find(|p| p.part == "aide")
            .unwrap()
            .is_satisfied()
    );
}

// ------------------------------------------------------------------- the 2025 content

#[test]
fn the_generic_questionnaire_has_the_2025_items() {
    let d = generic();
    let asks = |kind: RespondentKind, id: &str| d.items_for(kind).any(|i| i.id == id);
    let ime = RespondentKind::Esms(Category::Ime);
    let mas = RespondentKind::Esms(Category::Mas);
    let camsp = RespondentKind::Esms(Category::Camsp);
    let cmpp = RespondentKind::Esms(Category::Cmpp);
    let ssiad = RespondentKind::Esms(Category::Ssiad);
    // Evaluation (2022).
    for id in [
        "evaluation_rapport_date",
        "autoevaluation",
        "amelioration_continue",
    ] {
        assert!(asks(EHPAD, id) && asks(ime, id), "{id}");
    }
    for gone in [
        "evaluation_interne_date",
        "evaluation_externe_date",
        "convention_tripartite",
        "convention_tripartite_signature",
        "si_identifiant_unique",
        "etp_reels_annee",
    ] {
        assert!(d.item(gone).is_none(), "{gone} is gone");
    }
    // Contractualisation (2025).
    assert!(asks(EHPAD, "modalite_tarification") && !asks(ime, "modalite_tarification"));
    let specific = d.item("autorisations_specifiques").unwrap();
    assert!(
        specific
            .choices
            .iter()
            .any(|c| c.label == "Centre de ressources territorial")
    );
    // Identification (2025).
    for id in [
        "discipline",
        "mode_fonctionnement",
        "clientele",
        "plateforme_repit",
    ] {
        assert!(asks(EHPAD, id) && asks(ime, id), "{id}");
    }
    assert!(asks(ime, "dispositif_enfants") && !asks(mas, "dispositif_enfants"));
    assert!(asks(mas, "dispositif_adultes") && !asks(ime, "dispositif_adultes"));
    // Buildings: the main building.
    for id in [
        "batiment_type_erp",
        "chambres_doubles",
        "chambres_sanitaires_privatifs",
        "chauffage_rafraichissement",
        "amiante_diagnostic",
    ] {
        assert!(d.item(id).is_some(), "{id}");
    }
    // Information systems (2022).
    for id in [
        "si_teleconsultation",
        "si_teleexpertise",
        "si_ins",
        "si_ror",
        "si_e_parcours",
        "si_viatrajectoire",
    ] {
        assert!(asks(ssiad, id), "{id}");
    }
    // Staff (2022).
    assert!(asks(EHPAD, "infirmier_nuit") && asks(EHPAD, "med_coordonnateur_present"));
    // CAMSP and CMPP are financed in sessions, not days.
    for kind in [camsp, cmpp] {
        assert!(!asks(kind, "journees_financees") && asks(kind, "seances_financees"));
    }
    assert!(asks(ime, "journees_financees") && asks(ssiad, "journees_financees"));
}

// ------------------------------------------------------------------- rules

#[test]
fn totals_are_computed_from_their_lines_and_cannot_be_entered() {
    let d = generic();
    for total in [
        "etp_total",
        "absence_total",
        "effectif_age_total",
        "chambres_total",
    ] {
        assert!(d.item(total).unwrap().computed, "{total}");
        let err = d
            .parse_answers(EHPAD, json!({ total: 12 }).as_object().unwrap())
            .unwrap_err();
        assert_eq!(err[0].reason, AnswerProblem::Computed);
    }
    let a = answers(
        &d,
        EHPAD,
        json!({ "absence_maladie_ordinaire": 120, "absence_maladie_moyenne": 40,
                "absence_maladie_longue": 200, "absence_maternite": 90, "absence_at_mp": 15,
                "absence_conges_speciaux": 5 }),
    );
    let index = d.item_index("absence_total").unwrap();
    assert_eq!(d.computed_value(index, EHPAD, &a), Some(470.0));
    // The fill rate never counts what nobody enters.
    let entered = d.items_for(EHPAD).filter(|i| !i.computed).count();
    assert!(entered < d.items_for(EHPAD).count());
    assert_eq!(
        d.fill_rate(EHPAD, &d.empty_answers()).overall.applicable as usize,
        entered
    );
}

#[test]
fn a_line_answered_not_applicable_counts_zero_in_its_total_and_keeps_the_indicators() {
    let d = generic();
    let mut body = hand_computed_ehpad();
    // Catering is outsourced: no catering staff.
    body["etp_restauration"] = json!({ "status": "not_applicable" });
    body["etp_management"] = json!(6.6);
    let a = answers(&d, EHPAD, body);
    let total = d.item_index("etp_total").unwrap();
    assert_eq!(d.computed_value(total, EHPAD, &a), Some(66.0));
    let eval = d.evaluate(EHPAD, &a, None);
    assert!(close(value(&eval, "taux_management").unwrap(), 0.1));
    // A computed item has no value for a respondent it does not apply to.
    let ssiad = RespondentKind::Esms(Category::Ssiad);
    let rooms = d.item_index("chambres_total").unwrap();
    assert_eq!(d.computed_value(rooms, ssiad, &d.empty_answers()), None);
}

#[test]
fn the_days_of_a_mode_with_capacity_are_expected_not_assumed_zero() {
    let d = generic();
    let mut body = hand_computed_ehpad();
    body.as_object_mut().unwrap().remove("journees_temp");
    let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, body), None);
    let activity = eval
        .indicators
        .iter()
        .find(|i| i.indicator == "taux_realisation_activite")
        .unwrap();
    assert_eq!(
        activity.value,
        IndicatorValue::NotComputable(NotComputable::MissingInputs {
            items: vec!["journees_temp"]
        })
    );
}

#[test]
fn the_age_pyramid_is_headcounts_with_no_percentage_to_total() {
    let d = generic();
    assert!(
        d.rules().iter().all(|r| r.id != "pyramide_ages_100") && d.item("pyramide_30_39").is_none()
    );
    let pyramid = d.item("effectif_age_30_39").unwrap();
    assert_eq!(pyramid.kind, tdb_domain::questionnaire::ItemType::Integer);
}

#[test]
fn one_mistake_gives_one_message() {
    let d = generic();
    for duplicate in [
        "etp_infirmier_dans_paramedical",
        "etp_aide_soignant_dans_paramedical",
        "etp_educateur_dans_socio_educatif",
        "etp_total_somme_fonctions",
        "absenteisme_motifs_total",
    ] {
        assert!(d.rules().iter().all(|r| r.id != duplicate), "{duplicate}");
    }
    // Nurses above the paramedical function: exactly one violation.
    let eval = d.evaluate(
        EHPAD,
        &answers(
            &d,
            EHPAD,
            json!({ "etp_paramedical": 10, "etp_pm_infirmier": 12 }),
        ),
        None,
    );
    let about_nurses: Vec<_> = eval
        .violations
        .iter()
        .filter(|v| v.items.iter().any(|i| i == "etp_pm_infirmier"))
        .map(|v| v.rule)
        .collect();
    assert_eq!(about_nurses, ["etp_paramedical_dont"]);
}

#[test]
fn plausibility_checks_that_fire_on_normal_structures_are_warnings_or_gone() {
    let d = generic();
    for gone in ["caf_equilibre_financier", "autorisation_avant_ouverture"] {
        assert!(d.rules().iter().all(|r| r.id != gone), "{gone}");
    }
    // Part-time staff on long leave: more days of absence than FTE × 365.
    let eval = d.evaluate(
        EHPAD,
        &answers(
            &d,
            EHPAD,
            json!({ "etp_direction": 1, "etp_administration": 0, "etp_services_generaux": 0,
                    "etp_restauration": 0, "etp_socio_educatif": 0, "etp_paramedical": 0,
                    "etp_psychologue": 0, "etp_ash": 0, "etp_medical": 0,
                    "etp_autres_fonctions": 0,
                    "absence_maladie_ordinaire": 0, "absence_maladie_moyenne": 0,
                    "absence_maladie_longue": 400, "absence_maternite": 0, "absence_at_mp": 0,
                    "absence_conges_speciaux": 0 }),
        ),
        None,
    );
    assert_eq!(
        violated(&eval, "absenteisme_plausible"),
        Some(Severity::Warning)
    );
    assert!(eval.blocking_violations().next().is_none());
}

#[test]
fn dates_are_compared_with_the_end_of_the_data_year() {
    let d = generic();
    let check = |opened: &str| {
        let eval = d.evaluate(
            EHPAD,
            &answers(&d, EHPAD, json!({ "date_ouverture": opened })),
            None,
        );
        violated(&eval, "ouverture_pas_dans_le_futur")
    };
    // Opened in March 2025: after the year the 2025 campaign describes (2024).
    assert_eq!(check("2025-03-01"), Some(Severity::Blocking));
    assert_eq!(check("2024-12-31"), None);
}

#[test]
fn services_for_the_elderly_are_not_expected_to_count_people_under_60() {
    let d = generic();
    let people = |body: Json| {
        let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, body), None);
        (
            violated(&eval, "ages_total_personnes_pa"),
            violated(&eval, "ages_total_personnes"),
        )
    };
    // 80 people, two of them under 60 by derogation: the 60+ bands total 78.
    assert_eq!(
        people(
            json!({ "personnes_31_12": 80, "age_60_74": 10, "age_75_84": 30,
                       "age_85_95": 35, "age_96_plus": 3 })
        ),
        (None, None)
    );
    assert_eq!(
        people(
            json!({ "personnes_31_12": 80, "age_60_74": 10, "age_75_84": 30,
                       "age_85_95": 40, "age_96_plus": 3 })
        ),
        (Some(Severity::Warning), None)
    );
    // An IME keeping a young adult of 23: the children's bands total less, no warning.
    let ime = RespondentKind::Esms(Category::Ime);
    let eval = d.evaluate(
        ime,
        &answers(
            &d,
            ime,
            json!({ "personnes_31_12": 60, "age_6_10": 20, "age_11_15": 30, "age_16_17": 9 }),
        ),
        None,
    );
    assert_eq!(violated(&eval, "ages_total_personnes"), None);
}

#[test]
fn staff_movements_and_people_against_capacity_are_warnings() {
    let d = generic();
    let eval = d.evaluate(
        EHPAD,
        &answers(
            &d,
            EHPAD,
            json!({ "effectif_debut": 50, "recrutements": 8, "departs": 6, "effectif_fin": 55,
                    "cap_inst_perm": 80, "personnes_31_12": 130 }),
        ),
        None,
    );
    assert_eq!(
        violated(&eval, "effectifs_mouvements"),
        Some(Severity::Warning)
    );
    assert_eq!(
        violated(&eval, "personnes_capacite_plausible"),
        Some(Severity::Warning)
    );
    let fine = d.evaluate(
        EHPAD,
        &answers(
            &d,
            EHPAD,
            json!({ "effectif_debut": 50, "recrutements": 8, "departs": 6, "effectif_fin": 52,
                    "cap_inst_perm": 80, "personnes_31_12": 79 }),
        ),
        None,
    );
    assert_eq!(violated(&fine, "effectifs_mouvements"), None);
    assert_eq!(violated(&fine, "personnes_capacite_plausible"), None);
}

// ------------------------------------------------------------------- indicators

/// An EHPAD of 80 permanent beds open 365 days, 4 temporary beds open 300 days and 10 day-care
/// places open 250 days.
fn hand_computed_ehpad() -> Json {
    json!({
        "cap_auth_perm": 80, "cap_inst_perm": 80,
        "cap_auth_temp": 4, "cap_inst_temp": 4,
        "cap_auth_aj": 10, "cap_inst_aj": 10,
        "jours_ouverture": 365, "jours_ouverture_temp": 300, "jours_ouverture_aj": 250,
        "journees_financees": 30000,
        "journees_perm": 27740, "journees_absence_72h": 300,
        "journees_temp": 1020, "journees_aj": 1900,
        "journees_hospitalisation": 420,
        "personnes_31_12": 79, "entrees": 20, "sorties_definitives": 18,
        "duree_sejour_sortis": 16200,
        "entrees_temp": 30, "personnes_temp": 25, "entrees_aj": 45, "personnes_aj": 32,
        "personnes_absentes": 40, "journees_absence": 360,
        "etp_direction": 3, "etp_administration": 4, "etp_services_generaux": 5,
        "etp_restauration": 4, "etp_socio_educatif": 6, "etp_paramedical": 30,
        "etp_psychologue": 1, "etp_ash": 15, "etp_medical": 1.5, "etp_autres_fonctions": 0.5,
        "absence_maladie_ordinaire": 700, "absence_maladie_moyenne": 300,
        "absence_maladie_longue": 500, "absence_maternite": 200, "absence_at_mp": 150,
        "absence_conges_speciaux": 40,
        "effectif_debut": 80, "recrutements": 14, "departs": 10, "effectif_fin": 84,
        "etp_budgetes": 72, "etp_vacants": 2,
        "etp_budgetes_soins": 32, "etp_vacants_soins": 1.6,
        "etp_budgetes_socio_educatif": 6.5, "etp_vacants_socio_educatif": 0.4
    })
}

#[test]
fn a_hand_computed_ehpad_with_temporary_stays_and_day_care_open_fewer_days() {
    let d = generic();
    let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, hand_computed_ehpad()), None);
    let fte = 3.0 + 4.0 + 5.0 + 4.0 + 6.0 + 30.0 + 1.0 + 15.0 + 1.5 + 0.5; // 70
    let expected = [
        // Activity: every mode's days over the days financed.
        (
            "taux_realisation_activite",
            (27740.0 + 1020.0 + 1900.0) / 30000.0,
        ),
        // Occupancy: each mode over its own capacity × its own opening days.
        (
            "taux_occupation_permanent",
            (27740.0 + 300.0) / (80.0 * 365.0),
        ),
        ("taux_occupation_temporaire", 1020.0 / (4.0 * 300.0)),
        ("taux_occupation_accueil_jour", 1900.0 / (10.0 * 250.0)),
        ("taux_hospitalisation_complete", 420.0 / 27740.0),
        ("file_active", 79.0 + 18.0),
        ("duree_moyenne_sejour", 16200.0 / 18.0),
        ("journees_absence_moyennes", 360.0 / 40.0),
        // Admissions per installed place, different people per installed place.
        ("taux_admission_permanent", 20.0 / 80.0),
        ("taux_rotation_permanent", (79.0 + 18.0) / 80.0),
        ("taux_admission_temporaire", 30.0 / 4.0),
        ("taux_rotation_temporaire", 25.0 / 4.0),
        ("taux_admission_accueil_jour", 45.0 / 10.0),
        ("taux_rotation_accueil_jour", 32.0 / 10.0),
        // Staff: one FTE basis, the total real FTE at 31/12 (70).
        ("taux_absenteisme", 1890.0 / (fte * 365.0)),
        ("taux_absenteisme_maladie_ordinaire", 700.0 / (fte * 365.0)),
        ("taux_absenteisme_maladie_moyenne", 300.0 / (fte * 365.0)),
        ("taux_absenteisme_maladie_longue", 500.0 / (fte * 365.0)),
        ("taux_absenteisme_maternite", 200.0 / (fte * 365.0)),
        ("taux_absenteisme_at_mp", 150.0 / (fte * 365.0)),
        ("taux_absenteisme_conges_speciaux", 40.0 / (fte * 365.0)),
        ("taux_rotation_personnels", (14.0 + 10.0) / 2.0 / 80.0),
        ("taux_etp_vacants", 2.0 / 72.0),
        ("taux_etp_vacants_soins", 1.6 / 32.0),
        ("taux_etp_vacants_socio_educatif", 0.4 / 6.5),
        ("repartition_etp_paramedical", 30.0 / fte),
    ];
    for (indicator, want) in expected {
        let got = value(&eval, indicator).unwrap_or_else(|| panic!("{indicator} not computed"));
        assert!(close(got, want), "{indicator}: {got} ≠ {want}");
    }
    assert!(
        d.indicators()
            .iter()
            .find(|i| i.id == "taux_rotation_personnels")
            .unwrap()
            .label
            .contains("permanents")
    );
}

#[test]
fn a_mode_of_care_not_offered_counts_zero_days_instead_of_blocking_the_indicators() {
    let d = generic();
    let mut body = hand_computed_ehpad();
    for id in [
        "cap_auth_temp",
        "cap_inst_temp",
        "cap_auth_aj",
        "cap_inst_aj",
        "jours_ouverture_temp",
        "jours_ouverture_aj",
        "journees_temp",
        "journees_aj",
        "entrees_temp",
        "entrees_aj",
        "personnes_temp",
        "personnes_aj",
    ] {
        body.as_object_mut().unwrap().remove(id);
    }
    body["journees_temp"] = json!({ "status": "not_applicable" });
    let eval = d.evaluate(EHPAD, &answers(&d, EHPAD, body), None);
    assert!(close(
        value(&eval, "taux_realisation_activite").unwrap(),
        27740.0 / 30000.0
    ));
    assert!(close(
        value(&eval, "taux_occupation_permanent").unwrap(),
        28040.0 / 29200.0
    ));
    // The occupancy of a mode without capacity has no value, and says why.
    let temp = eval
        .indicators
        .iter()
        .find(|i| i.indicator == "taux_occupation_temporaire")
        .unwrap();
    // Named: what is blank, not the days answered "not applicable".
    let IndicatorValue::NotComputable(NotComputable::MissingInputs { items }) = &temp.value else {
        panic!("{:?}", temp.value);
    };
    let mut items = items.clone();
    items.sort_unstable();
    assert_eq!(items, ["cap_auth_temp", "jours_ouverture_temp"]);
}

#[test]
fn every_indicator_says_where_its_formula_comes_from() {
    let c = campaign();
    for platform in Platform::ALL {
        for indicator in c.platform(platform).indicators() {
            assert!(
                indicator.source.len() > 10,
                "{}: source `{}`",
                indicator.id,
                indicator.source
            );
        }
    }
    let without = tdb_domain::questionnaire::builtin::GENERIC_2025.replacen(
        "source = \"domain.md §9 (ATIH): people at 31/12 plus definitive exits\"",
        "source = \"\"",
        1,
    );
    let problems = Definition::from_toml(&without).unwrap_err().0;
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, DefinitionProblem::Item { item, .. } if item == "file_active")),
        "{problems:?}"
    );
}

// ------------------------------------------------------------------- year on year

#[test]
fn a_large_change_versus_last_year_is_a_warning_only_with_last_years_answers() {
    let d = generic();
    let now = answers(
        &d,
        EHPAD,
        json!({ "cap_auth_perm": 80, "personnes_31_12": 78 }),
    );
    // Last year's answers, as stored then: an item since removed is left out, not refused.
    let last = d.carry_over(
        EHPAD,
        json!({ "cap_auth_perm": 50, "personnes_31_12": 70, "evaluation_interne_date": "2019-01-01" })
            .as_object()
            .unwrap(),
    );
    let eval = d.evaluate(EHPAD, &now, Some(&last));
    assert_eq!(
        violated(&eval, "evolution_cap_auth_perm"),
        Some(Severity::Warning)
    );
    assert_eq!(violated(&eval, "evolution_personnes_31_12"), None, "+11 %");
    // A value missing this year or last year: nothing to compare.
    let blank_now = answers(&d, EHPAD, json!({ "personnes_31_12": 78 }));
    let blank_last = d.carry_over(EHPAD, json!({ "personnes_31_12": 70 }).as_object().unwrap());
    for (now, last) in [(&blank_now, &last), (&now, &blank_last)] {
        let eval = d.evaluate(EHPAD, now, Some(last));
        assert_eq!(violated(&eval, "evolution_cap_auth_perm"), None);
    }
    // A computed total is compared too: its formula on last year's answers.
    let staff = |fte: f64| {
        json!({ "etp_direction": fte, "etp_administration": 0, "etp_services_generaux": 0,
                "etp_restauration": 0, "etp_socio_educatif": 0, "etp_paramedical": 0,
                "etp_psychologue": 0, "etp_ash": 0, "etp_medical": 0, "etp_autres_fonctions": 0 })
    };
    let eval = d.evaluate(
        EHPAD,
        &answers(&d, EHPAD, staff(20.0)),
        Some(&d.carry_over(EHPAD, staff(10.0).as_object().unwrap())),
    );
    assert_eq!(
        violated(&eval, "evolution_etp_total"),
        Some(Severity::Warning)
    );
    // Answers made for another definition are not read as last year's.
    let sad = campaign().platform(Platform::Sad).clone();
    let foreign = sad.carry_over(
        SAA,
        json!({ "personnes_aidees_31_12": 3 }).as_object().unwrap(),
    );
    let eval = d.evaluate(EHPAD, &now, Some(&foreign));
    assert!(
        eval.violations
            .iter()
            .all(|v| !v.rule.starts_with("evolution_"))
    );
    let without = d.evaluate(EHPAD, &now, None);
    assert!(
        without
            .violations
            .iter()
            .all(|v| !v.rule.starts_with("evolution_"))
    );
}

// ------------------------------------------------------------------- the file format

fn minimal(parts: &str, items: &str) -> String {
    format!(
        r#"
[campaign]
year = 2025
platform = "generic"
questionnaire_version = "t"
[campaign.calendar]
collection_opens = "2025-05-05"
collection_deadline = "2025-06-30"
fiabilisation_ends = "2025-08-31"
restitutions_open = "2025-10-01"
{parts}
[[sections]]
id = "s"
label = "S"
applies = ["TOUT_ESMS", "-CAMSP"]
items = [{items}]
"#
    )
}

const ONE_PART: &str = r#"
[[parts]]
id = "p"
label = "P"
fill_threshold = 0.9
deadline = "2025-06-30"
"#;

#[test]
fn the_file_format_checks_parts_formulas_and_exclusions() {
    let ok = Definition::from_toml(&minimal(
        ONE_PART,
        r#"{ id = "a", label = "A", type = "integer" }, { id = "t", label = "T", type = "integer", formula = "a * 2" }"#,
    ))
    .unwrap();
    assert!(
        ok.items_for(RespondentKind::Esms(Category::Ime))
            .any(|i| i.id == "a")
    );
    assert!(
        !ok.items_for(RespondentKind::Esms(Category::Camsp))
            .any(|i| i.id == "a"),
        "-CAMSP leaves it out"
    );
    let later = Definition::from_toml(&minimal(
        ONE_PART,
        r#"{ id = "t", label = "T", type = "integer", formula = "u + 1" }, { id = "u", label = "U", type = "integer", formula = "2" }"#,
    ))
    .unwrap_err();
    assert!(later.to_string().contains("before its formula"), "{later}");
    let present_total = Definition::from_toml(&minimal(
        ONE_PART,
        r#"{ id = "a", label = "A", type = "integer" }, { id = "t", label = "T", type = "integer", formula = "a * 2" }"#,
    ).replace(
        "\n[[sections]]",
        "\n[[rules]]\nid = \"r\"\ncheck = \"present(t)\"\nseverity = \"warning\"\nmessage = \"m\"\n[[sections]]",
    ))
    .unwrap_err();
    assert!(
        present_total.to_string().contains("present()"),
        "{present_total}"
    );
    let late_part = Definition::from_toml(&minimal(
        &ONE_PART.replace("2025-06-30", "2025-07-31"),
        r#"{ id = "a", label = "A", type = "integer" }"#,
    ))
    .unwrap_err();
    assert!(late_part.to_string().contains("deadline"), "{late_part}");
    let no_part = Definition::from_toml(&format!(
        "parts = []\n{}",
        minimal("", r#"{ id = "a", label = "A", type = "integer" }"#)
    ))
    .unwrap_err();
    assert!(
        no_part.to_string().contains("at least one part"),
        "{no_part}"
    );
}
