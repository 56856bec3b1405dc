//! Outliers for a generated campaign of 30,000 establishments: the peer statistics (median
//! and spread by category and item, from every questionnaire's numeric answers) and then
//! every questionnaire's outliers against them.
//!
//! The reference measured in the same run is one pass reading every numeric answer of the
//! same questionnaires (summing them), so the ratio says how much the statistics and the
//! flagging add to touching the data once, whatever the machine's load.
//!
//! `cargo bench -p tdb-domain --bench outliers`; under `cargo test` it runs on 2,000.

use std::hint::black_box;
use std::time::Instant;
use tdb_domain::generator::{GeneratorConfig, generate};
use tdb_domain::outliers::PeerCollector;
use tdb_domain::questionnaire::builtin;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let establishments = if full { 30_000 } else { 2_000 };
    let definitions = builtin::load(2025).expect("shipped").expect("loads");
    let campaign = generate(
        &definitions,
        &GeneratorConfig {
            establishments,
            seed: 2025,
            ..Default::default()
        },
        |_, _| {},
    );
    // As stored: the answers' JSON form.
    let stored: Vec<_> = campaign
        .questionnaires
        .iter()
        .map(|q| {
            let definition = definitions.for_kind(q.respondent.kind);
            (q.respondent.kind, definition.answers_to_json(&q.answers))
        })
        .collect();
    let values: usize = stored.iter().map(|(_, a)| a.len()).sum();

    let mut reference = Vec::new();
    let mut ours = Vec::new();
    let mut flagged = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let mut sum = 0.0;
        for (kind, answers) in &stored {
            let definition = definitions.for_kind(*kind);
            for (id, value) in answers {
                if definition.item(id).is_some_and(|i| i.kind.is_numeric()) {
                    sum += value.as_f64().unwrap_or(0.0);
                }
            }
        }
        black_box(sum);
        reference.push(started.elapsed());

        let started = Instant::now();
        let mut collector = PeerCollector::default();
        for (kind, answers) in &stored {
            collector.add(definitions.for_kind(*kind), *kind, answers);
        }
        let peers = collector.finish(2025);
        flagged = stored
            .iter()
            .map(|(kind, answers)| peers.outliers(*kind, answers).len())
            .sum::<usize>();
        ours.push(started.elapsed());
    }
    reference.sort();
    ours.sort();
    let (ours, reference) = (ours[2], reference[2]);
    println!(
        "outliers of {} questionnaires ({values} answers): {:.0} ms (median of 5); \
         reference, one pass reading every numeric answer: {:.0} ms; ratio {:.1}; {flagged} values flagged",
        stored.len(),
        ours.as_secs_f64() * 1e3,
        reference.as_secs_f64() * 1e3,
        ours.as_secs_f64() / reference.as_secs_f64()
    );
}
