//! `/stats`: the `stats` figures (supervisors and auditors; the node decides) as bar charts
//! drawn here as inline SVG (no script), each with the same numbers as a table for screen
//! readers. A suppressed cell is shown exactly as the node reports it (`<5`), never computed
//! back; its bar is not drawn. The period is two dates in the query, as `--from`/`--to`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use trm_admin_api::answers::{self as a, Cell};
use trm_proto::admin as api;

use super::i18n::{t, Lang};
use super::pages::{ask, failed, layout, refusal, App};

/// The period (query parameters: two dates, never a case value).
#[derive(Default, Deserialize)]
pub(crate) struct Period {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// Geometry of a chart: label column, bar area, row height (pixels).
const LABEL_W: u64 = 200;
const BAR_W: u64 = 360;
const ROW_H: u64 = 26;

/// `GET /stats?from=YYYY-MM-DD&to=YYYY-MM-DD`: both optional; a bad date: 400, nothing asked.
pub(crate) async fn page(lang: Lang, State(app): State<App>, Query(p): Query<Period>) -> Response {
    let title = t(lang, "Statistics");
    for d in [&p.from, &p.to] {
        if !d.is_empty() && trm_proto::date::parse_date_ms(d).is_none() {
            let text = t(lang, "A date of the period is not a date: use YYYY-MM-DD.");
            return refusal(lang, StatusCode::BAD_REQUEST, text);
        }
    }
    let request = api::Stats {
        from: p.from.clone(),
        to: p.to.clone(),
    };
    let v = match ask(&app.session, request).await {
        Ok(v) => v,
        Err(f) => return failed(lang, title, f),
    };
    let body = html! {
        (period_form(lang, &p))
        p {
            (t(lang, "Period")) ": "
            (if v.from.is_empty() { t(lang, "the start") } else { v.from.as_str() })
            " – "
            (if v.to.is_empty() { t(lang, "today") } else { v.to.as_str() })
        }
        p {
            (t(lang, "Counts from 1 to this number are suppressed by the node, and one more where a hidden count could be found by subtraction; they are shown as the node reports them:"))
            " " (v.threshold.saturating_sub(1))
        }
        @for table in &v.tables { (stat_table(lang, table)) }
        h2 { (t(lang, "Median days to acceptance")) }
        table {
            tr { th { (t(lang, "Direction")) } th { (t(lang, "Days")) } }
            @for (way, days) in &v.median_days_to_acceptance {
                tr { td { (direction(lang, way)) } td { (days) } }
            }
        }
    };
    layout(lang, title, body).into_response()
}

fn period_form(lang: Lang, p: &Period) -> Markup {
    html! {
        form method="get" action="/stats" {
            fieldset {
                legend { (t(lang, "Period")) }
                label { (t(lang, "First day counted")) " " input type="date" name="from" value=(p.from); }
                label { (t(lang, "Last day counted")) " " input type="date" name="to" value=(p.to); }
                button type="submit" { (t(lang, "Show")) }
            }
        }
    }
}

/// What a table counts by, in words.
fn by_name(lang: Lang, by: &str) -> String {
    match by {
        "exploitation_form" => t(lang, "Form of exploitation"),
        "sex" => t(lang, "Sex"),
        "age_band" => t(lang, "Age band"),
        "minor" => t(lang, "Minor"),
        "partner" => t(lang, "Partner"),
        "phase_reached" => t(lang, "Phase reached"),
        "outcome" => t(lang, "Outcome"),
        other => return other.replace('_', " "),
    }
    .to_string()
}

fn unit_name(lang: Lang, unit: &str) -> String {
    match unit {
        "cases" => t(lang, "cases"),
        "referrals" => t(lang, "referrals"),
        other => other,
    }
    .to_string()
}

fn direction(lang: Lang, way: &str) -> String {
    match way {
        "sent" => t(lang, "referrals sent"),
        "received" => t(lang, "referrals received"),
        other => other,
    }
    .to_string()
}

/// One table: its chart, then its numbers.
fn stat_table(lang: Lang, table: &a::StatTable) -> Markup {
    let title = format!(
        "{} ({})",
        by_name(lang, &table.by),
        unit_name(lang, &table.unit)
    );
    html! {
        section.stat {
            h2 { (title) }
            @if table.multiple { p { (t(lang, "A case may count in several rows.")) } }
            (chart(&title, &table.rows))
            table {
                tr { th { (by_name(lang, &table.by)) } th { (unit_name(lang, &table.unit)) } }
                @for r in &table.rows { tr { td { (r.label) } td { (shown(lang, &r.count)) } } }
                tr { th { (t(lang, "Total")) } th { (shown(lang, &table.total)) } }
            }
        }
    }
}

/// A cell for the table: the count, or the node's text and the word "suppressed".
fn shown(lang: Lang, c: &Cell) -> String {
    match c {
        Cell::Count(n) => n.to_string(),
        Cell::Suppressed(s) => format!("{s} ({})", t(lang, "suppressed")),
    }
}

/// The width of a bar for `count` when the largest shown count is `max`; a count above 0 gets
/// a visible bar; a suppressed cell none.
fn bar_width(count: &Cell, max: u64) -> u64 {
    match count {
        Cell::Count(0) | Cell::Suppressed(_) => 0,
        Cell::Count(n) => (n * BAR_W / max.max(1)).max(2),
    }
}

/// The rows as a horizontal bar chart: label, bar, the number as the node reports it.
fn chart(title: &str, rows: &[a::StatRow]) -> Markup {
    let max = rows
        .iter()
        .filter_map(|r| match r.count {
            Cell::Count(n) => Some(n),
            Cell::Suppressed(_) => None,
        })
        .max()
        .unwrap_or(0);
    let width = LABEL_W + BAR_W + 60;
    let height = ROW_H * rows.len() as u64 + 4;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height=(height)
            viewBox=(format!("0 0 {width} {height}")) font-family="sans-serif" font-size="13" {
            title { (title) }
            @for (i, r) in rows.iter().enumerate() {
                @let y = ROW_H * i as u64 + 2;
                @let w = bar_width(&r.count, max);
                g.bar {
                    title { (r.label) ": " (r.count) }
                    text x=(LABEL_W - 8) y=(y + 17) text-anchor="end" { (r.label) }
                    rect x=(LABEL_W) y=(y + 3) width=(w) height=(ROW_H - 8) fill="#2a6f97" {}
                    text x=(LABEL_W + w + 6) y=(y + 17) fill=(if matches!(r.count, Cell::Suppressed(_)) { "#777" } else { "#222" }) { (r.count) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_shown_count_and_suppressed_cells_get_none() {
        let cases = [
            (Cell::Count(10), 10, BAR_W),
            (Cell::Count(5), 10, BAR_W / 2),
            (Cell::Count(0), 10, 0),
            (Cell::Count(1), 1000, 2),
            (Cell::suppressed(), 10, 0),
        ];
        for (c, max, want) in cases {
            assert_eq!(bar_width(&c, max), want, "{c:?} of {max}");
        }
    }
}
