//! Fill rate + every rule + every indicator, for one full EHPAD questionnaire and for a
//! generated campaign of 30,000 establishments. Target: under 50 µs per questionnaire.
//!
//! The reference measured in the same run is the cost of merely cloning each answer set
//! (one allocation and copy per questionnaire), so the ratio says how much the evaluation
//! adds to touching the data once, whatever the machine's load.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use tdb_domain::category::{Category, RespondentKind};
use tdb_domain::generator::{GeneratorConfig, generate};
use tdb_domain::questionnaire::builtin;

fn bench(c: &mut Criterion) {
    let definitions = builtin::load(2025).expect("shipped").expect("loads");
    let started = Instant::now();
    let campaign = generate(
        &definitions,
        &GeneratorConfig {
            establishments: 30_000,
            seed: 2025,
            ..Default::default()
        },
        |_, _| {},
    );
    println!(
        "generated {} questionnaires for 30,000 establishments in {:.2?}",
        campaign.questionnaires.len(),
        started.elapsed()
    );

    let ehpad = campaign
        .questionnaires
        .iter()
        .find(|q| {
            q.respondent.kind == RespondentKind::Esms(Category::Ehpad)
                && q.quality == tdb_domain::generator::Quality::Complete
        })
        .expect("a complete EHPAD");
    let generic = definitions.for_kind(ehpad.respondent.kind);
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_full_ehpad", |b| {
        b.iter(|| {
            black_box(generic.evaluate(ehpad.respondent.kind, black_box(&ehpad.answers), None))
        })
    });
    group.bench_function("reference_clone_one_ehpad", |b| {
        b.iter(|| black_box(black_box(&ehpad.answers).clone()))
    });

    let n = campaign.questionnaires.len() as u64;
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    group.bench_with_input(BenchmarkId::new("campaign", n), &campaign, |b, campaign| {
        b.iter(|| {
            let mut blocking = 0usize;
            for q in &campaign.questionnaires {
                let eval = definitions.for_kind(q.respondent.kind).evaluate(
                    q.respondent.kind,
                    &q.answers,
                    None,
                );
                blocking += eval.blocking_violations().count();
            }
            black_box(blocking)
        })
    });
    group.bench_with_input(
        BenchmarkId::new("reference_clone_campaign", n),
        &campaign,
        |b, campaign| {
            b.iter(|| {
                for q in &campaign.questionnaires {
                    black_box(q.answers.clone());
                }
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
