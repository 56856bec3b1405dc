//! The reminder policy (domain §3, docs/reminders.md): which reminders a day calls for, as
//! data of each platform's definition (`[reminders]`), and who they concern. Sending them,
//! once, is the remind function's.

use crate::campaign::{Phase, QuestionnaireStatus};
use crate::questionnaire::Definition;
use serde::{Deserialize, Serialize};
use time::{Date, Weekday};

/// When structures, OG and territories are reminded, per campaign and platform.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderPolicy {
    /// A reminder the day collection opens.
    #[serde(default = "yes")]
    pub at_opening: bool,
    /// Days before each part's deadline (the SAD aid part has its own).
    #[serde(default = "default_before")]
    pub before_deadline: Vec<u16>,
    /// After a part's deadline, every so many days while it is not validated, until
    /// fiabilisation ends; 0 for never.
    #[serde(default = "default_every")]
    pub after_deadline_every: u16,
    /// The weekday the ARS and CD get their territory's digest, during collection and
    /// fiabilisation.
    #[serde(default = "default_digest_day")]
    pub territory_digest: String,
}

fn yes() -> bool {
    true
}

fn default_before() -> Vec<u16> {
    vec![15, 7, 2]
}

fn default_every() -> u16 {
    7
}

fn default_digest_day() -> String {
    "monday".into()
}

impl Default for ReminderPolicy {
    fn default() -> Self {
        ReminderPolicy {
            at_opening: true,
            before_deadline: default_before(),
            after_deadline_every: default_every(),
            territory_digest: default_digest_day(),
        }
    }
}

/// Why a policy is refused when a definition loads.
pub fn check(policy: &ReminderPolicy) -> Result<(), String> {
    weekday(&policy.territory_digest)
        .map(|_| ())
        .ok_or_else(|| {
            format!(
                "territory_digest `{}` is not a weekday in English",
                policy.territory_digest
            )
        })?;
    if policy.before_deadline.iter().any(|d| *d == 0 || *d > 120) {
        return Err("before_deadline days are between 1 and 120".into());
    }
    Ok(())
}

fn weekday(name: &str) -> Option<Weekday> {
    Some(match name.to_ascii_lowercase().as_str() {
        "monday" => Weekday::Monday,
        "tuesday" => Weekday::Tuesday,
        "wednesday" => Weekday::Wednesday,
        "thursday" => Weekday::Thursday,
        "friday" => Weekday::Friday,
        "saturday" => Weekday::Saturday,
        "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

/// A reminder a day calls for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "occasion", rename_all = "snake_case")]
pub enum Occasion {
    /// Collection opens: every structure is told, whatever its status.
    Opening,
    /// `days` before `part`'s deadline: the structures that have not validated the part.
    BeforeDeadline { part: String, days: u16 },
    /// After `part`'s deadline, while it is not validated.
    AfterDeadline { part: String },
    /// The ARS's and CD's weekly digest of their territory.
    TerritoryDigest,
    /// Asked now by an OG, an ARS or a CD: at most one a day per structure.
    OnDemand,
}

impl Occasion {
    /// The occasion's name in the send log: with the day, what makes a reminder unique.
    pub fn key(&self) -> String {
        match self {
            Occasion::Opening => "opening".into(),
            Occasion::BeforeDeadline { part, days } => format!("before-{days}d-{part}"),
            Occasion::AfterDeadline { part } => format!("after-{part}"),
            Occasion::TerritoryDigest => "territory-digest".into(),
            Occasion::OnDemand => "on-demand".into(),
        }
    }

    /// The part it is about, if one.
    pub fn part(&self) -> Option<&str> {
        match self {
            Occasion::BeforeDeadline { part, .. } | Occasion::AfterDeadline { part } => Some(part),
            _ => None,
        }
    }

    /// Whether a structure whose part (or, with no part, whole questionnaire) is in
    /// `status` gets this reminder: once validated, reminders stop.
    pub fn concerns(&self, status: QuestionnaireStatus) -> bool {
        match self {
            Occasion::Opening => status != QuestionnaireStatus::Closed,
            Occasion::BeforeDeadline { .. }
            | Occasion::AfterDeadline { .. }
            | Occasion::OnDemand => matches!(
                status,
                QuestionnaireStatus::NotStarted
                    | QuestionnaireStatus::InProgress
                    | QuestionnaireStatus::Reopened
            ),
            Occasion::TerritoryDigest => false,
        }
    }
}

/// The reminders `day` calls for on a platform (in Paris days).
pub fn occasions(definition: &Definition, policy: &ReminderPolicy, day: Date) -> Vec<Occasion> {
    let calendar = &definition.campaign().calendar;
    let phase = calendar.phase_on(day);
    if !matches!(phase, Phase::Collection | Phase::Fiabilisation) {
        return vec![];
    }
    let mut due = Vec::new();
    if policy.at_opening && day == calendar.collection_opens {
        due.push(Occasion::Opening);
    }
    for part in definition.parts() {
        let days_left = (part.deadline - day).whole_days();
        if days_left > 0
            && policy
                .before_deadline
                .iter()
                .any(|d| i64::from(*d) == days_left)
        {
            due.push(Occasion::BeforeDeadline {
                part: part.id.clone(),
                days: days_left as u16,
            });
        }
        let days_after = -days_left;
        let every = i64::from(policy.after_deadline_every);
        if every > 0 && days_after > 0 && days_after % every == 0 {
            due.push(Occasion::AfterDeadline {
                part: part.id.clone(),
            });
        }
    }
    if weekday(&policy.territory_digest) == Some(day.weekday()) {
        due.push(Occasion::TerritoryDigest);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::Platform;
    use time::macros::date;

    fn definition(platform: Platform) -> Definition {
        crate::questionnaire::builtin::load(2025)
            .unwrap()
            .unwrap()
            .platform(platform)
            .clone()
    }

    /// The keys due each day of a window, with the day.
    fn walk(platform: Platform, from: Date, to: Date) -> Vec<(Date, String)> {
        let definition = definition(platform);
        let policy = ReminderPolicy::default();
        let mut day = from;
        let mut due = Vec::new();
        while day <= to {
            for o in occasions(&definition, &policy, day) {
                if o != Occasion::TerritoryDigest {
                    due.push((day, o.key()));
                }
            }
            day = day.next_day().unwrap();
        }
        due
    }

    #[test]
    fn the_generic_window_reminds_at_opening_before_the_deadline_then_weekly() {
        let due = walk(
            Platform::Generic,
            date!(2025 - 05 - 01),
            date!(2025 - 09 - 30),
        );
        let days: Vec<_> = due.iter().map(|(d, k)| format!("{d} {k}")).collect();
        assert_eq!(
            &days[..4],
            [
                "2025-05-05 opening",
                "2025-06-15 before-15d-generique",
                "2025-06-23 before-7d-generique",
                "2025-06-28 before-2d-generique",
            ]
        );
        // Weekly after the 30 June deadline until fiabilisation ends on 31 August.
        let after: Vec<_> = due
            .iter()
            .filter(|(_, k)| k == "after-generique")
            .map(|(d, _)| d.to_string())
            .collect();
        assert_eq!(after.first().map(String::as_str), Some("2025-07-07"));
        assert_eq!(after.last().map(String::as_str), Some("2025-08-25"));
        assert_eq!(after.len(), 8);
        assert!(
            due.iter().all(|(d, _)| *d <= date!(2025 - 08 - 31)),
            "nothing after fiabilisation"
        );
    }

    #[test]
    fn the_sad_aid_part_follows_its_own_deadline() {
        let due = walk(Platform::Sad, date!(2025 - 05 - 01), date!(2025 - 08 - 31));
        let keys: Vec<String> = due.iter().map(|(d, k)| format!("{d} {k}")).collect();
        assert!(
            keys.contains(&"2025-06-15 before-15d-soins".to_string()),
            "{keys:?}"
        );
        assert!(
            keys.contains(&"2025-07-16 before-15d-aide".to_string()),
            "{keys:?}"
        );
        assert!(keys.contains(&"2025-07-07 after-soins".to_string()));
        assert!(!keys.iter().any(|k| k.starts_with("2025-07-07 after-aide")));
        assert!(keys.contains(&"2025-08-07 after-aide".to_string()));
    }

    #[test]
    fn validated_structures_are_not_chased_and_territories_get_a_weekly_digest() {
        let before = Occasion::BeforeDeadline {
            part: "generique".into(),
            days: 7,
        };
        assert!(before.concerns(QuestionnaireStatus::InProgress));
        assert!(before.concerns(QuestionnaireStatus::Reopened));
        assert!(!before.concerns(QuestionnaireStatus::Validated));
        assert!(!before.concerns(QuestionnaireStatus::Checked));
        let definition = definition(Platform::Generic);
        let mondays = (0..7)
            .filter_map(|n| date!(2025 - 05 - 12).checked_add(time::Duration::days(n)))
            .filter(|d| {
                occasions(&definition, &ReminderPolicy::default(), *d)
                    .contains(&Occasion::TerritoryDigest)
            })
            .count();
        assert_eq!(mondays, 1);
        assert!(
            check(&ReminderPolicy {
                territory_digest: "lundi".into(),
                ..Default::default()
            })
            .is_err()
        );
    }
}
