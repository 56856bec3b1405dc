//! How the evaluation of a questionnaire is shown, the same in every function that shows
//! it (collect after a save, validate in its checks).

use serde::Serialize;
use tdb_domain::questionnaire::{FillReport, Severity, Violation};

/// A part's fill rate against its threshold.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartView {
    pub part: String,
    pub answered: u32,
    pub applicable: u32,
    pub threshold: f64,
    /// ISO date.
    pub deadline: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FillView {
    pub rate: f64,
    pub answered: u32,
    pub applicable: u32,
    pub parts: Vec<PartView>,
    /// `[section id, answered, applicable]`.
    pub sections: Vec<(String, u32, u32)>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ViolationView {
    pub rule: String,
    /// `blocking` or `warning`.
    pub severity: &'static str,
    pub message: String,
    pub items: Vec<String>,
}

pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Blocking => "blocking",
        Severity::Warning => "warning",
    }
}

pub fn fill_view(fill: &FillReport) -> FillView {
    FillView {
        rate: fill.overall.ratio(),
        answered: fill.overall.answered,
        applicable: fill.overall.applicable,
        parts: fill
            .parts
            .iter()
            .map(|p| PartView {
                part: p.part.to_string(),
                answered: p.rate.answered,
                applicable: p.rate.applicable,
                threshold: p.threshold,
                deadline: p.deadline.to_string(),
            })
            .collect(),
        sections: fill
            .sections
            .iter()
            .map(|(id, r)| (id.to_string(), r.answered, r.applicable))
            .collect(),
    }
}

pub fn violations_view(violations: &[Violation]) -> Vec<ViolationView> {
    violations
        .iter()
        .map(|v| ViolationView {
            rule: v.rule.to_string(),
            severity: severity(v.severity),
            message: v.message.to_string(),
            items: v.items.to_vec(),
        })
        .collect()
}
