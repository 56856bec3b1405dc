//! `tdb`: the platform's command line for demos, tests and benchmarks.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use tdb_domain::generator::{GeneratorConfig, generate};
use tdb_domain::questionnaire::builtin;

#[derive(Parser)]
#[command(name = "tdb", about = "TDB-ESMS platform tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generates a synthetic campaign: a referential and one questionnaire per respondent.
    Generate {
        /// Number of establishments (FINESS géographique).
        #[arg(long, default_value_t = 30_000)]
        establishments: usize,
        #[arg(long, default_value_t = 2025)]
        seed: u64,
        /// Campaign year whose shipped definition is answered.
        #[arg(long, default_value_t = 2025)]
        campaign: u16,
        /// Share of questionnaires left incomplete (0-1).
        #[arg(long, default_value_t = 0.15)]
        incomplete: f64,
        /// Share of questionnaires with broken coherence rules (0-1).
        #[arg(long, default_value_t = 0.10)]
        incoherent: f64,
        /// Output folder: referential.json and questionnaires.jsonl are written there.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Generate {
            establishments,
            seed,
            campaign,
            incomplete,
            incoherent,
            out,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&incomplete)
                    && (0.0..=1.0).contains(&incoherent)
                    && incomplete + incoherent <= 1.0,
                "--incomplete and --incoherent are shares between 0 and 1 whose sum is at most 1"
            );
            let definition = builtin::load(campaign)
                .with_context(|| format!("no definition shipped for campaign {campaign}"))??;
            let config = GeneratorConfig {
                establishments,
                seed,
                incomplete_share: incomplete,
                incoherent_share: incoherent,
            };
            let bar = ProgressBar::new(0).with_style(ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} questionnaires ({elapsed})",
            )?);
            bar.set_message("generating");
            let started = std::time::Instant::now();
            let generated = generate(&definition, &config, |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish();
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let referential = std::fs::File::create(out.join("referential.json"))?;
            serde_json::to_writer(std::io::BufWriter::new(referential), &generated.referential)?;
            let mut lines =
                std::io::BufWriter::new(std::fs::File::create(out.join("questionnaires.jsonl"))?);
            for q in &generated.questionnaires {
                let line = serde_json::json!({ "finess": q.respondent.finess, "respondent": q.respondent.kind, "quality": q.quality, "answers": definition.answers_to_json(&q.answers) });
                serde_json::to_writer(&mut lines, &line)?;
                lines.write_all(b"\n")?;
            }
            lines.flush()?;
            println!(
                "{} questionnaires for {} establishments written to {} in {:.2?}",
                generated.questionnaires.len(),
                establishments,
                out.display(),
                started.elapsed()
            );
        }
    }
    Ok(())
}
