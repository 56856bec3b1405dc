//! Campaigns: year N collects the data of year N-1, through dated phases that decide what
//! may be done when, and a questionnaire status workflow.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::Date;

/// A campaign year (the year the data are collected, not the year they describe).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct CampaignYear(u16);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("campaign year {0} is outside 2016..=2100 (the dashboard started with the 2016 campaign)")]
pub struct CampaignYearError(u16);

impl CampaignYear {
    pub fn new(year: u16) -> Result<CampaignYear, CampaignYearError> {
        if (2016..=2100).contains(&year) {
            Ok(CampaignYear(year))
        } else {
            Err(CampaignYearError(year))
        }
    }

    pub fn value(self) -> u16 {
        self.0
    }

    /// The year the data describe (N-1).
    pub fn data_year(self) -> u16 {
        self.0 - 1
    }

    /// 31 December of the data year: "au 31.12" in the questionnaire.
    pub fn data_year_end(self) -> Date {
        Date::from_calendar_date(self.data_year() as i32, time::Month::December, 31)
            .expect("valid date")
    }
}

impl TryFrom<u16> for CampaignYear {
    type Error = CampaignYearError;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        CampaignYear::new(value)
    }
}

impl From<CampaignYear> for u16 {
    fn from(value: CampaignYear) -> Self {
        value.0
    }
}

impl fmt::Display for CampaignYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The dated milestones of a campaign. Each date is the first day of what it names, except
/// `collection_deadline` and `fiabilisation_ends`, which are the last day of their phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    #[serde(with = "iso_date")]
    pub collection_opens: Date,
    #[serde(with = "iso_date")]
    pub collection_deadline: Date,
    #[serde(with = "iso_date")]
    pub fiabilisation_ends: Date,
    #[serde(with = "iso_date")]
    pub restitutions_open: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "calendar dates must be in order: collection opens ≤ collection deadline ≤ fiabilisation ends < restitutions open"
)]
pub struct CalendarError;

impl Calendar {
    pub fn new(
        collection_opens: Date,
        collection_deadline: Date,
        fiabilisation_ends: Date,
        restitutions_open: Date,
    ) -> Result<Calendar, CalendarError> {
        let c = Calendar {
            collection_opens,
            collection_deadline,
            fiabilisation_ends,
            restitutions_open,
        };
        c.check().map(|_| c)
    }

    pub(crate) fn check(&self) -> Result<(), CalendarError> {
        let ordered = self.collection_opens <= self.collection_deadline
            && self.collection_deadline <= self.fiabilisation_ends
            && self.fiabilisation_ends < self.restitutions_open;
        if ordered { Ok(()) } else { Err(CalendarError) }
    }

    /// The phase of the campaign on a given day.
    pub fn phase_on(&self, day: Date) -> Phase {
        if day < self.collection_opens {
            Phase::Preparation
        } else if day <= self.collection_deadline {
            Phase::Collection
        } else if day <= self.fiabilisation_ends {
            Phase::Fiabilisation
        } else if day < self.restitutions_open {
            Phase::Closed
        } else {
            Phase::Restitution
        }
    }
}

/// A phase of the campaign (domain §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Selection, registration of structures and APE, training: accounts only.
    Preparation,
    /// Structures enter their data.
    Collection,
    /// Structures correct and validate; ARS/CD check and may reopen.
    Fiabilisation,
    /// The campaign is closed: values are frozen, restitutions are being prepared.
    Closed,
    /// Restitutions are open.
    Restitution,
}

/// Something a phase allows or forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    ManageAccounts,
    EnterData,
    Validate,
    Reopen,
    Remind,
    ViewRestitutions,
}

impl Phase {
    /// Whether the phase allows an activity. Consulting one's data is always allowed.
    pub fn allows(self, activity: Activity) -> bool {
        use Activity::*;
        match activity {
            ManageAccounts => true,
            EnterData | Validate | Remind => {
                matches!(self, Phase::Collection | Phase::Fiabilisation)
            }
            Reopen => self == Phase::Fiabilisation,
            ViewRestitutions => self == Phase::Restitution,
        }
    }
}

/// The collection platform a questionnaire belongs to. Since 2025 the home services (SAA,
/// SPASAD) answer on their own SAD platform; every other respondent on the generic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Generic,
    Sad,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::Generic, Platform::Sad];

    pub fn key(self) -> &'static str {
        match self {
            Platform::Generic => "generic",
            Platform::Sad => "sad",
        }
    }
}

/// The settings of one campaign on one platform. Fill thresholds and deadlines belong to
/// the parts of its questionnaire (see `Definition::parts`); the calendar's collection
/// deadline is the last of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub year: CampaignYear,
    pub platform: Platform,
    /// The questionnaire version answered in this campaign.
    pub questionnaire_version: String,
    pub calendar: Calendar,
}

impl Campaign {
    pub fn phase_on(&self, day: Date) -> Phase {
        self.calendar.phase_on(day)
    }
}

/// The calendar day in Paris at a Unix time: deadlines are French days. Central European
/// Time, with summer time from the last Sunday of March to the last Sunday of October at
/// 01:00 UTC (the EU rule).
pub fn paris_day(unix_seconds: i64) -> Date {
    let utc = time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let last_sunday = |month: time::Month| {
        let last = Date::from_calendar_date(utc.year(), month, 31)
            .expect("March and October have 31 days");
        let back = last.weekday().number_days_from_sunday() as i64;
        (last - time::Duration::days(back))
            .with_hms(1, 0, 0)
            .expect("a valid time")
            .assume_utc()
    };
    let summer = utc >= last_sunday(time::Month::March) && utc < last_sunday(time::Month::October);
    let offset = if summer { 2 } else { 1 };
    (utc + time::Duration::hours(offset)).date()
}

/// Where a questionnaire stands ("Etat d'avancement" / "Niveau de validation" in exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionnaireStatus {
    NotStarted,
    InProgress,
    Validated,
    /// Reopened by the ARS or the CD during fiabilisation, to be validated again.
    Reopened,
    /// Validated, and marked as checked by the ARS or the CD.
    Checked,
    /// The campaign of its platform is closed: nothing changes any more.
    Closed,
}

impl QuestionnaireStatus {
    /// The status's name as stored, sorted and indexed.
    pub fn key(self) -> &'static str {
        match self {
            QuestionnaireStatus::NotStarted => "not_started",
            QuestionnaireStatus::InProgress => "in_progress",
            QuestionnaireStatus::Validated => "validated",
            QuestionnaireStatus::Reopened => "reopened",
            QuestionnaireStatus::Checked => "checked",
            QuestionnaireStatus::Closed => "closed",
        }
    }

    /// The status as French exports and pages name it.
    pub fn label(self) -> &'static str {
        match self {
            QuestionnaireStatus::NotStarted => "Non commencé",
            QuestionnaireStatus::InProgress => "En cours de saisie",
            QuestionnaireStatus::Validated => "Validé par la structure",
            QuestionnaireStatus::Reopened => "Réouvert pour correction",
            QuestionnaireStatus::Checked => "Contrôlé",
            QuestionnaireStatus::Closed => "Clôturé",
        }
    }

    /// The status of a stored key.
    pub fn from_key(key: &str) -> Option<QuestionnaireStatus> {
        serde_json::from_value(serde_json::Value::String(key.to_string())).ok()
    }
}

/// `YYYY-MM-DD` dates for serde, as definition files and JSON bodies write them.
pub mod iso_date {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::Date;
    use time::macros::format_description;

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    pub fn parse(s: &str) -> Result<Date, time::error::Parse> {
        Date::parse(s, FORMAT)
    }

    pub fn format(d: Date) -> String {
        d.format(FORMAT).expect("a date formats")
    }

    pub fn serialize<S: Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("date `{s}` is not YYYY-MM-DD: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_are_french_days() {
        use time::macros::{date, datetime};
        let at = |t: time::OffsetDateTime| paris_day(t.unix_timestamp());
        // Summer time: 22:30 UTC on 30 June is already 1 July in Paris.
        assert_eq!(at(datetime!(2025-06-30 22:30 UTC)), date!(2025 - 07 - 01));
        assert_eq!(at(datetime!(2025-06-30 21:30 UTC)), date!(2025 - 06 - 30));
        // Winter time: one hour ahead.
        assert_eq!(at(datetime!(2025-01-15 23:30 UTC)), date!(2025 - 01 - 16));
        assert_eq!(at(datetime!(2025-01-15 22:30 UTC)), date!(2025 - 01 - 15));
        // The changes: last Sunday of March (30 March 2025) and of October (26 October).
        assert_eq!(at(datetime!(2025-03-30 00:59 UTC)), date!(2025 - 03 - 30));
        assert_eq!(at(datetime!(2025-10-25 22:30 UTC)), date!(2025 - 10 - 26));
        assert_eq!(at(datetime!(2025-10-26 22:30 UTC)), date!(2025 - 10 - 26));
    }

    use super::*;
    use time::macros::date;

    fn calendar_2025() -> Calendar {
        Calendar::new(
            date!(2025 - 05 - 05),
            date!(2025 - 06 - 30),
            date!(2025 - 08 - 31),
            date!(2025 - 10 - 01),
        )
        .unwrap()
    }

    #[test]
    fn campaign_2025_collects_2024_data() {
        let y = CampaignYear::new(2025).unwrap();
        assert_eq!(y.data_year(), 2024);
        assert_eq!(y.data_year_end(), date!(2024 - 12 - 31));
        assert!(CampaignYear::new(2015).is_err());
    }

    #[test]
    fn phases_follow_the_calendar_dates_inclusively() {
        let c = calendar_2025();
        assert_eq!(c.phase_on(date!(2025 - 05 - 04)), Phase::Preparation);
        assert_eq!(c.phase_on(date!(2025 - 05 - 05)), Phase::Collection);
        assert_eq!(c.phase_on(date!(2025 - 06 - 30)), Phase::Collection);
        assert_eq!(c.phase_on(date!(2025 - 07 - 01)), Phase::Fiabilisation);
        assert_eq!(c.phase_on(date!(2025 - 09 - 01)), Phase::Closed);
        assert_eq!(c.phase_on(date!(2025 - 10 - 01)), Phase::Restitution);
    }

    #[test]
    fn a_calendar_out_of_order_is_refused() {
        assert!(
            Calendar::new(
                date!(2025 - 07 - 01),
                date!(2025 - 06 - 30),
                date!(2025 - 08 - 31),
                date!(2025 - 10 - 01)
            )
            .is_err()
        );
    }

    #[test]
    fn each_phase_allows_only_its_activities() {
        use Activity::*;
        let table = [
            (
                Phase::Preparation,
                [true, false, false, false, false, false],
            ),
            (Phase::Collection, [true, true, true, false, true, false]),
            (Phase::Fiabilisation, [true, true, true, true, true, false]),
            (Phase::Closed, [true, false, false, false, false, false]),
            (Phase::Restitution, [true, false, false, false, false, true]),
        ];
        for (phase, expected) in table {
            for (activity, allowed) in [
                ManageAccounts,
                EnterData,
                Validate,
                Reopen,
                Remind,
                ViewRestitutions,
            ]
            .into_iter()
            .zip(expected)
            {
                assert_eq!(phase.allows(activity), allowed, "{phase:?} {activity:?}");
            }
        }
    }
}
