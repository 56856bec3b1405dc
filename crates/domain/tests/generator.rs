//! The synthetic campaign generator against the 2025 definition.

use std::collections::HashMap;
use tdb_domain::Departement;
use tdb_domain::category::{Category, RespondentKind};
use tdb_domain::generator::{GeneratorConfig, Quality, generate, generate_referential};
use tdb_domain::questionnaire::builtin;

#[test]
fn the_same_seed_gives_the_same_campaign_and_another_seed_another() {
    let d = builtin::load(2025).unwrap().unwrap();
    let config = GeneratorConfig {
        establishments: 300,
        seed: 7,
        ..Default::default()
    };
    let a = generate(&d, &config, |_, _| {});
    let b = generate(&d, &config, |_, _| {});
    assert_eq!(a.questionnaires.len(), b.questionnaires.len());
    for (x, y) in a.questionnaires.iter().zip(&b.questionnaires) {
        assert_eq!(x.respondent, y.respondent);
        assert_eq!(x.answers, y.answers);
    }
    let c = generate(&d, &GeneratorConfig { seed: 8, ..config }, |_, _| {});
    assert_ne!(
        a.questionnaires[0].respondent,
        c.questionnaires[0].respondent
    );
}

#[test]
fn the_referential_is_realistic() {
    let r = generate_referential(&GeneratorConfig {
        establishments: 5000,
        seed: 1,
        ..Default::default()
    });
    assert_eq!(r.establishments().count(), 5000);
    let regions: std::collections::HashSet<_> =
        r.establishments().filter_map(|e| e.region()).collect();
    assert_eq!(regions.len(), 18);
    let deps: std::collections::HashSet<_> = r.establishments().map(|e| e.departement()).collect();
    assert!(deps.len() > 95, "{} départements", deps.len());
    assert!(
        deps.contains(&Departement::from_code("2A").unwrap())
            || deps.contains(&Departement::from_code("2B").unwrap())
    );
    let single = r.legal_entities().filter(|e| !e.is_og()).count();
    assert!(
        single > 100,
        "single-establishment entities that are not OG"
    );
    let sizes: Vec<usize> = r
        .ogs()
        .map(|og| r.establishments_of(&og.finess).count())
        .collect();
    assert!(sizes.iter().all(|&n| n <= 40));
    assert!(sizes.iter().any(|&n| n >= 15), "some large OG");
    assert!(r.establishments().any(|e| e.is_secondary()));
    let mut mix: HashMap<Category, usize> = HashMap::new();
    for e in r.establishments() {
        *mix.entry(e.category).or_default() += 1;
    }
    assert!(
        mix[&Category::Ehpad] > 1300 && mix[&Category::Ehpad] < 2100,
        "EHPAD about a third: {}",
        mix[&Category::Ehpad]
    );
    assert!(mix.len() >= 19);
}

#[test]
fn complete_questionnaires_are_coherent_and_damaged_ones_are_not() {
    let d = builtin::load(2025).unwrap().unwrap();
    let campaign = generate(
        &d,
        &GeneratorConfig {
            // Enough for the rarest categories (a few IES in a thousand) to be drawn complete.
            establishments: 6000,
            seed: 42,
            incomplete_share: 0.2,
            incoherent_share: 0.2,
        },
        |_, _| {},
    );
    let mut seen = HashMap::new();
    let mut complete_kinds = std::collections::HashSet::new();
    for q in &campaign.questionnaires {
        let definition = d.for_kind(q.respondent.kind);
        let eval = definition.evaluate(q.respondent.kind, &q.answers, None);
        *seen.entry(q.quality).or_insert(0) += 1;
        match q.quality {
            Quality::Complete => {
                complete_kinds.insert(q.respondent.kind);
                assert!(
                    eval.violations.is_empty(),
                    "{:?}: {:?}",
                    q.respondent.kind,
                    eval.violations
                );
                assert_eq!(eval.fill.overall.ratio(), 1.0, "{:?}", q.respondent.kind);
                assert!(eval.can_validate());
                if let RespondentKind::Esms(_) = q.respondent.kind {
                    assert!(eval.indicators.iter().any(|i| matches!(
                        i.value,
                        tdb_domain::questionnaire::IndicatorValue::Value(_)
                    )));
                }
            }
            Quality::Incomplete => assert!(eval.fill.overall.ratio() < 1.0),
            Quality::Incoherent => assert!(
                eval.blocking_violations().next().is_some(),
                "{:?}",
                q.respondent.kind
            ),
        }
    }
    assert!(
        seen.len() == 3 && seen.values().all(|&n| n > 50),
        "{seen:?}"
    );
    // Every category, on either platform, and the OG: a complete questionnaire validates.
    for category in Category::ALL {
        assert!(
            complete_kinds.contains(&RespondentKind::Esms(category)),
            "no complete {category:?} generated"
        );
    }
    assert!(complete_kinds.contains(&RespondentKind::Og));
}

#[test]
fn home_services_answer_the_sad_questionnaire_in_its_two_parts() {
    let d = builtin::load(2025).unwrap().unwrap();
    let campaign = generate(
        &d,
        &GeneratorConfig {
            establishments: 3000,
            seed: 3,
            incomplete_share: 0.0,
            incoherent_share: 0.0,
        },
        |_, _| {},
    );
    let mut parts_seen = HashMap::new();
    for q in &campaign.questionnaires {
        let RespondentKind::Esms(category @ (Category::Saa | Category::Spasad)) = q.respondent.kind
        else {
            continue;
        };
        let sad = d.for_kind(q.respondent.kind);
        assert_eq!(sad.platform(), tdb_domain::campaign::Platform::Sad);
        let eval = sad.evaluate(q.respondent.kind, &q.answers, None);
        assert!(eval.can_validate(), "{category:?}: {:?}", eval.violations);
        let parts: Vec<&str> = eval.fill.parts.iter().map(|p| p.part).collect();
        parts_seen.insert(category, parts);
    }
    assert_eq!(
        parts_seen[&Category::Saa],
        ["aide"],
        "an SAA has no care part"
    );
    assert_eq!(parts_seen[&Category::Spasad], ["soins", "aide"]);
}
