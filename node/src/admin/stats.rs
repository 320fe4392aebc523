//! `trm-admin stats` (issue 12, item 22): counts of cases and referrals by category for a
//! national rapporteur, with small cells suppressed, and never a case value beyond the
//! categories counted.
//!
//! Counting and suppression are pure ([`suppress`], [`age_band`], [`median_days`],
//! [`case_facts`]); [`stats`] gathers what the store holds. Rules (docs/CLI.md `stats`):
//! - a count from 1 to 4 is shown as `<5` (primary suppression); a total under 5 likewise;
//! - in a table whose rows add up to its total (every table but the forms of exploitation,
//!   where a case counts once per form) a single suppressed row could be recovered by
//!   subtracting the others from the total, so the smallest other non-zero row is suppressed
//!   too (secondary suppression);
//! - zero is shown (it discloses nothing about a person);
//! - a median needs at least 5 accepted referrals, else `<5`.

use std::collections::BTreeMap;

use serde_json::Value;
use trm_admin_api::answers::{self as a, Cell};

use crate::admin::CallError;
use crate::state::ctx::Ctx;
use crate::store::{ReceivedRecord, SentRecord, ThreadRecord, ThreadRole};

/// Counts from 1 to `THRESHOLD - 1` are suppressed.
pub const THRESHOLD: u64 = 5;

/// One count as published.
fn cell(n: u64) -> Cell {
    if n > 0 && n < THRESHOLD {
        Cell::suppressed()
    } else {
        Cell::Count(n)
    }
}

/// The published cells of one table and its total. `additive`: the rows add up to the total,
/// so one suppressed row among shown ones would be recoverable by subtraction.
pub fn suppress(counts: &[u64], total: u64, additive: bool) -> (Vec<Cell>, Cell) {
    let mut cells: Vec<Cell> = counts.iter().map(|&n| cell(n)).collect();
    let total_cell = cell(total);
    let hidden = cells
        .iter()
        .filter(|c| matches!(c, Cell::Suppressed(_)))
        .count();
    if additive && hidden == 1 && matches!(total_cell, Cell::Count(_)) {
        let smallest = counts
            .iter()
            .enumerate()
            .filter(|(i, &n)| n > 0 && matches!(cells[*i], Cell::Count(_)))
            .min_by_key(|(_, &n)| n)
            .map(|(i, _)| i);
        if let Some(i) = smallest {
            cells[i] = Cell::suppressed();
        }
    }
    (cells, total_cell)
}

/// The median of durations in ms, in days with one decimal; `<5` under the threshold, `-`
/// when there is none.
pub fn median_days(durations: &[i64]) -> String {
    if durations.is_empty() {
        return "-".into();
    }
    if (durations.len() as u64) < THRESHOLD {
        return "<5".into();
    }
    let mut d = durations.to_vec();
    d.sort_unstable();
    let n = d.len();
    let ms = if n % 2 == 1 {
        d[n / 2] as f64
    } else {
        (d[n / 2 - 1] as f64 + d[n / 2] as f64) / 2.0
    };
    format!("{:.1}", ms / 86_400_000.0)
}

/// Age bands, in order.
pub const AGE_BANDS: [&str; 7] = ["0-11", "12-17", "18-24", "25-34", "35-49", "50+", "unknown"];

/// The age band at the referral's date, from the date of birth (`YYYY-MM-DD`) or else the
/// estimated year of birth; `unknown` without either or without the referral's date.
pub fn age_band(
    dob: Option<&str>,
    birth_year: Option<i64>,
    reference: Option<&str>,
) -> &'static str {
    let ymd = |s: &str| -> Option<(i64, i64, i64)> {
        let mut p = s.splitn(3, '-').map(|x| x.parse::<i64>().ok());
        Some((p.next()??, p.next()??, p.next()??))
    };
    let Some((ry, rm, rd)) = reference.and_then(ymd) else {
        return "unknown";
    };
    let age = match (dob.and_then(ymd), birth_year) {
        (Some((y, m, d)), _) => ry - y - i64::from((rm, rd) < (m, d)),
        (None, Some(y)) => ry - y,
        (None, None) => return "unknown",
    };
    match age {
        a if a < 0 => "unknown",
        0..=11 => AGE_BANDS[0],
        12..=17 => AGE_BANDS[1],
        18..=24 => AGE_BANDS[2],
        25..=34 => AGE_BANDS[3],
        35..=49 => AGE_BANDS[4],
        _ => AGE_BANDS[5],
    }
}

/// What one case counts as: only the categories of the tables.
#[derive(Debug, PartialEq, Eq)]
pub struct CaseFacts {
    /// Forms of exploitation (`exploitation.forms`); empty: not recorded.
    pub forms: Vec<String>,
    /// `identity.sex`, or `not recorded`.
    pub sex: String,
    /// One of [`AGE_BANDS`].
    pub age_band: &'static str,
    /// `yes`, `no` or `not recorded` (`child.minor`).
    pub minor: &'static str,
}

/// Forms of exploitation and sexes as the template lists them; anything else counts as
/// `other` (a value outside the list is never shown).
const FORMS: [&str; 8] = [
    "sexual",
    "labour",
    "forced_begging",
    "forced_criminal_activity",
    "domestic_servitude",
    "forced_marriage",
    "organ_removal",
    "other",
];
const SEXES: [&str; 4] = ["female", "male", "other", "unknown"];
const NOT_RECORDED: &str = "not recorded";

/// The facts of a case from its values (`path → value`).
pub fn case_facts(values: &BTreeMap<String, Value>) -> CaseFacts {
    let text = |p: &str| values.get(p).and_then(Value::as_str);
    let known = |list: &[&str], v: &str| {
        if list.contains(&v) {
            v.to_string()
        } else {
            "other".to_string()
        }
    };
    let mut forms: Vec<String> = values
        .get("exploitation.forms")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|f| known(&FORMS, f))
                .collect()
        })
        .unwrap_or_default();
    forms.sort();
    forms.dedup();
    CaseFacts {
        forms,
        sex: text("identity.sex").map_or(NOT_RECORDED.into(), |s| known(&SEXES, s)),
        age_band: age_band(
            text("identity.date_of_birth"),
            values
                .get("identity.estimated_birth_year")
                .and_then(Value::as_i64),
            text("reference.date"),
        ),
        minor: match values.get("child.minor").and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "no",
            None => NOT_RECORDED,
        },
    }
}

/// What one referral counts as.
#[derive(Debug)]
pub struct ReferralFacts {
    /// `AL (sent)`, `AL (received)`.
    pub partner: String,
    /// Latest phase reported, or `none reported`.
    pub phase: String,
    /// pending, accepted, declined, or `closed: OUTCOME`.
    pub outcome: String,
    /// sent or received, and ms from referral to acceptance if accepted.
    pub accepted_after: Option<(&'static str, i64)>,
}

/// A table from labelled counts (rows in the order given).
fn table(
    by: &str,
    unit: &str,
    multiple: bool,
    rows: Vec<(String, u64)>,
    total: u64,
) -> a::StatTable {
    let counts: Vec<u64> = rows.iter().map(|r| r.1).collect();
    let (cells, total) = suppress(&counts, total, !multiple);
    a::StatTable {
        by: by.into(),
        multiple,
        rows: rows
            .into_iter()
            .zip(cells)
            .map(|((label, _), count)| a::StatRow { count, label })
            .collect(),
        total,
        unit: unit.into(),
    }
}

/// Counts of `labels` over `items` in the order of `order`, then any other label sorted.
fn tally<'a>(order: &[&str], items: impl Iterator<Item = &'a str>) -> Vec<(String, u64)> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for i in items {
        *counts.entry(i.to_string()).or_default() += 1;
    }
    let mut rows: Vec<(String, u64)> = order
        .iter()
        .map(|l| (l.to_string(), counts.remove(*l).unwrap_or(0)))
        .collect();
    rows.extend(counts);
    rows
}

/// The tables of cases: forms of exploitation, sex, age band, minor.
fn case_tables(cases: &[CaseFacts]) -> Vec<a::StatTable> {
    let n = cases.len() as u64;
    let mut form_order: Vec<&str> = FORMS.to_vec();
    form_order.push(NOT_RECORDED);
    let forms = cases.iter().flat_map(|c| {
        if c.forms.is_empty() {
            vec![NOT_RECORDED]
        } else {
            c.forms.iter().map(String::as_str).collect()
        }
    });
    let mut sexes = SEXES.to_vec();
    sexes.push(NOT_RECORDED);
    let sex = tally(&sexes, cases.iter().map(|c| c.sex.as_str()));
    let age = tally(&AGE_BANDS, cases.iter().map(|c| c.age_band));
    let minor = tally(&["yes", "no", NOT_RECORDED], cases.iter().map(|c| c.minor));
    vec![
        table(
            "exploitation_form",
            "cases",
            true,
            tally(&form_order, forms),
            n,
        ),
        table("sex", "cases", false, sex, n),
        table("age_band", "cases", false, age, n),
        table("minor", "cases", false, minor, n),
    ]
}

/// The tables of referrals: partner, phase reached, outcome.
fn referral_tables(referrals: &[ReferralFacts]) -> Vec<a::StatTable> {
    let r = referrals.len() as u64;
    let phases = [
        "identification",
        "first_assistance",
        "long_term_assistance",
        "return",
        "proceedings",
        "none reported",
    ];
    let partner = tally(&[], referrals.iter().map(|x| x.partner.as_str()));
    let phase = tally(&phases, referrals.iter().map(|x| x.phase.as_str()));
    let outcomes = ["pending", "accepted", "declined"];
    let outcome = tally(&outcomes, referrals.iter().map(|x| x.outcome.as_str()));
    vec![
        table("partner", "referrals", false, partner, r),
        table("phase_reached", "referrals", false, phase, r),
        table("outcome", "referrals", false, outcome, r),
    ]
}

/// Builds the answer from the facts.
pub fn build(from: &str, to: &str, cases: &[CaseFacts], referrals: &[ReferralFacts]) -> a::Stats {
    let mut tables = case_tables(cases);
    tables.extend(referral_tables(referrals));
    let mut median = BTreeMap::new();
    for way in ["sent", "received"] {
        let d: Vec<i64> = referrals
            .iter()
            .filter_map(|x| {
                x.accepted_after
                    .filter(|(w, _)| *w == way)
                    .map(|(_, ms)| ms)
            })
            .collect();
        median.insert(way.to_string(), median_days(&d));
    }
    a::Stats {
        from: from.into(),
        median_days_to_acceptance: median,
        tables,
        threshold: THRESHOLD,
        to: to.into(),
    }
}

/// The phase as stored in a thread (`lifecycle::phase_name`), as officers type it.
fn phase_label(stored: &str) -> String {
    use trm_proto::pb::Phase;
    let typed = [
        (Phase::Identification, "identification"),
        (Phase::FirstAssistance, "first_assistance"),
        (Phase::LongTermAssistance, "long_term_assistance"),
        (Phase::ReturnAndInclusion, "return"),
        (Phase::ProceedingsPhase, "proceedings"),
    ];
    typed
        .iter()
        .find(|(p, _)| crate::referral::lifecycle::phase_name(*p as i32) == stored)
        .map_or("none reported", |(_, name)| name)
        .to_string()
}

/// Values by path.
fn as_map(fields: Vec<trm_proto::pb::FieldDisclosure>) -> BTreeMap<String, Value> {
    fields
        .into_iter()
        .map(|d| {
            (
                d.path,
                serde_json::from_slice(&d.value).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// When a thread's referral was sent or arrived, and when it was accepted (the acceptance
/// received for a referral sent, made for one received).
fn referral_times(
    t: &ThreadRecord,
    sent: &[SentRecord],
    inbox: &[ReceivedRecord],
) -> (Option<i64>, Option<i64>) {
    if t.role() == Some(ThreadRole::Sent) {
        let start = sent
            .iter()
            .find(|s| s.id == t.referral_id)
            .map(|s| s.created_ms);
        let accepted = inbox
            .iter()
            .find(|r| r.kind == "acceptance" && r.peer == t.peer && r.case_ref == t.case_ref)
            .map(|r| r.received_ms);
        (start, accepted)
    } else {
        let start = inbox
            .iter()
            .find(|r| r.id == t.referral_id)
            .map(|r| r.received_ms);
        let about = |s: &SentRecord| {
            s.case_id == t.case_ref
                || crate::admin::calls::referral_case_ref(&s.envelope).as_deref()
                    == Some(t.case_ref.as_str())
        };
        let accepted = sent
            .iter()
            .find(|s| s.kind == "acceptance" && s.peer == t.peer && about(s))
            .map(|s| s.created_ms);
        (start, accepted)
    }
}

/// `stats FROM TO`: gathers the facts of every case and referral in range and counts them.
pub async fn stats(ctx: &Ctx, from: &str, to: &str) -> Result<a::Stats, CallError> {
    let bound = |s: &str, name: &str, end: bool| -> Result<Option<i64>, CallError> {
        if s.is_empty() {
            return Ok(None);
        }
        let ms = trm_proto::date::parse_date_ms(s).ok_or_else(|| {
            CallError::msg(format!("--{name} {s:?} is not a date: use YYYY-MM-DD"))
        })?;
        Ok(Some(if end { ms + 86_400_000 - 1 } else { ms }))
    };
    let (lo, hi) = (bound(from, "from", false)?, bound(to, "to", true)?);
    let within = |ms: i64| lo.is_none_or(|l| ms >= l) && hi.is_none_or(|h| ms <= h);
    let mut cases = Vec::new();
    for c in ctx.store.cases()? {
        if within(c.created_ms) {
            let (_, fields) = crate::admin::calls::load_case(ctx, &c.id).await?;
            cases.push(case_facts(&as_map(fields)));
        }
    }
    let (inbox, sent) = (ctx.store.inbox()?, ctx.store.sent_all()?);
    let mut referrals = Vec::new();
    for t in ctx.store.threads()? {
        let (start, accepted) = referral_times(&t, &sent, &inbox);
        let Some(start) = start.filter(|&ms| within(ms)) else {
            continue;
        };
        let way = if t.role() == Some(ThreadRole::Sent) {
            "sent"
        } else {
            let fields = crate::admin::calls::received_fields(ctx, &t.peer, &t.case_ref).await?;
            cases.push(case_facts(&as_map(fields)));
            "received"
        };
        let outcome = match t.state.as_str() {
            "closed" => format!("closed: {}", t.note),
            other => other.to_string(),
        };
        referrals.push(ReferralFacts {
            partner: format!("{} ({way})", t.peer),
            phase: phase_label(&t.phase),
            outcome,
            accepted_after: accepted.filter(|&a| a >= start).map(|a| (way, a - start)),
        });
    }
    Ok(build(from, to, &cases, &referrals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Cell {
        Cell::suppressed()
    }
    fn c(n: u64) -> Cell {
        Cell::Count(n)
    }

    #[test]
    fn small_cells_are_suppressed_and_not_recoverable_from_the_total() {
        type Row = (&'static [u64], u64, bool, Vec<Cell>, Cell);
        let cases: Vec<Row> = vec![
            // Nothing small: all shown.
            (&[5, 7, 0], 12, true, vec![c(5), c(7), c(0)], c(12)),
            // One small cell: the smallest other non-zero one goes too.
            (&[3, 6, 9], 18, true, vec![s(), s(), c(9)], c(18)),
            // Two small cells: already not recoverable from the total.
            (&[3, 4, 9], 16, true, vec![s(), s(), c(9)], c(16)),
            // Zero stays zero and is never the second cell.
            (&[0, 2, 10], 12, true, vec![c(0), s(), s()], c(12)),
            // A small total is suppressed; then nothing can be subtracted.
            (&[3, 0], 3, true, vec![s(), c(0)], s()),
            // Rows that do not add up (a case in several rows): primary only.
            (&[3, 6, 9], 15, false, vec![s(), c(6), c(9)], c(15)),
            // Empty table.
            (&[0, 0], 0, true, vec![c(0), c(0)], c(0)),
            // Exactly the threshold is shown.
            (&[5], 5, true, vec![c(5)], c(5)),
        ];
        for (counts, total, additive, want, want_total) in cases {
            let (got, got_total) = suppress(counts, total, additive);
            assert_eq!(got, want, "{counts:?} total {total}");
            assert_eq!(got_total, want_total, "{counts:?} total {total}");
        }
    }

    #[test]
    fn the_median_needs_five_acceptances() {
        let day = 86_400_000;
        let cases: Vec<(Vec<i64>, &str)> = vec![
            (vec![], "-"),
            (vec![day; 4], "<5"),
            (vec![day, 2 * day, 3 * day, 4 * day, 10 * day], "3.0"),
            (
                vec![day, 2 * day, 3 * day, 4 * day, 5 * day, 6 * day],
                "3.5",
            ),
            (vec![day / 2; 5], "0.5"),
        ];
        for (d, want) in cases {
            assert_eq!(median_days(&d), want, "{d:?}");
        }
    }

    #[test]
    fn the_age_band_is_the_age_at_the_referral_date() {
        let cases = [
            (Some("2010-06-01"), None, Some("2026-05-31"), "12-17"),
            (Some("2008-06-01"), None, Some("2026-05-31"), "12-17"),
            (Some("2008-06-01"), None, Some("2026-06-01"), "18-24"),
            (None, Some(1990), Some("2026-01-01"), "35-49"),
            (None, Some(1960), Some("2026-01-01"), "50+"),
            (Some("2020-01-01"), None, Some("2026-01-01"), "0-11"),
            (None, None, Some("2026-01-01"), "unknown"),
            (Some("2000-01-01"), None, None, "unknown"),
            (Some("2030-01-01"), None, Some("2026-01-01"), "unknown"),
        ];
        for (dob, year, reference, want) in cases {
            assert_eq!(
                age_band(dob, year, reference),
                want,
                "{dob:?} {year:?} {reference:?}"
            );
        }
    }

    #[test]
    fn a_case_counts_only_by_its_categories() {
        let v = |pairs: &[(&str, Value)]| -> BTreeMap<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        let full = v(&[
            (
                "exploitation.forms",
                serde_json::json!(["labour", "sexual", "labour", "made-up"]),
            ),
            ("identity.sex", serde_json::json!("female")),
            ("identity.date_of_birth", serde_json::json!("2010-01-01")),
            ("reference.date", serde_json::json!("2026-11-01")),
            ("child.minor", serde_json::json!(true)),
            ("identity.family_name", serde_json::json!("Synthetic")),
        ]);
        assert_eq!(
            case_facts(&full),
            CaseFacts {
                forms: vec!["labour".into(), "other".into(), "sexual".into()],
                sex: "female".into(),
                age_band: "12-17",
                minor: "yes",
            }
        );
        let bare = v(&[("identity.sex", serde_json::json!("<script>"))]);
        assert_eq!(
            case_facts(&bare),
            CaseFacts {
                forms: vec![],
                sex: "other".into(),
                age_band: "unknown",
                minor: "not recorded",
            }
        );
    }
}
