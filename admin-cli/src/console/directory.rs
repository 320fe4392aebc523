//! `/directory`: the focal points of every country from `directory list` (every role may ask),
//! each country's directory version and whether it was signed and published, and each entry
//! flagged as the command line flags it: `UNCONFIRMED` (never confirmed) or `STALE` (not
//! confirmed within the node's `stale_after_days`).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use trm_admin_api::answers as a;
use trm_proto::admin as api;

use super::i18n::{t, Lang};
use super::pages::{ask, failed, layout, refusal, App};

/// The filter: one country code, or none.
#[derive(Default, Deserialize)]
pub(crate) struct Country {
    #[serde(default)]
    country: String,
}

/// An entry's flag, the command line's word: never confirmed, or not confirmed recently.
pub(crate) fn flag(e: &a::DirectoryEntry) -> Option<&'static str> {
    if e.last_confirmed.is_empty() {
        Some("UNCONFIRMED")
    } else if e.stale {
        Some("STALE")
    } else {
        None
    }
}

/// `GET /directory?country=CC`.
pub(crate) async fn page(lang: Lang, State(app): State<App>, Query(c): Query<Country>) -> Response {
    let title = t(lang, "Directory");
    let code = c.country.trim().to_ascii_uppercase();
    if !(code.is_empty() || code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())) {
        let text = t(lang, "A country is a two-letter code.");
        return refusal(lang, StatusCode::BAD_REQUEST, text);
    }
    let v = match ask(
        &app.session,
        api::DirectoryList {
            country: code.clone(),
        },
    )
    .await
    {
        Ok(v) => v,
        Err(f) => return failed(lang, title, f),
    };
    let body = html! {
        form method="get" action="/directory" {
            label { (t(lang, "Only this country (code)")) " " input type="text" name="country" value=(code) size="2" maxlength="2" pattern="[A-Za-z]{2}"; }
            button type="submit" { (t(lang, "Filter")) }
        }
        (versions(lang, &v))
        p { (t(lang, "An entry not confirmed within this many days is marked STALE:")) " " (v.stale_after_days) }
        (entries(lang, &v))
    };
    layout(lang, title, body).into_response()
}

/// Each country's directory as held here: version, signed and published when.
fn versions(lang: Lang, v: &a::DirectoryList) -> Markup {
    html! {
        h2 { (t(lang, "Directories held")) }
        table {
            tr { th { (t(lang, "Country")) } th { (t(lang, "Version")) } th { (t(lang, "Published (signed by the country)")) } th { (t(lang, "Entries")) } }
            @for d in &v.versions {
                tr {
                    td { (d.country) @if d.own { " (" (t(lang, "this node")) ")" } }
                    td { (d.version) }
                    td { @if d.published.is_empty() { (t(lang, "never published")) } @else { (d.published) } }
                    td { (d.entries) }
                }
            }
        }
    }
}

fn entries(lang: Lang, v: &a::DirectoryList) -> Markup {
    html! {
        h2 { (t(lang, "Focal points")) }
        @if v.entries.is_empty() { p { (t(lang, "No entries.")) } }
        table {
            tr {
                th { (t(lang, "Country")) } th { (t(lang, "Role or functional mailbox")) }
                th { (t(lang, "Institution")) } th { (t(lang, "Channels")) } th { (t(lang, "Languages")) }
                th { (t(lang, "Hours")) } th { (t(lang, "Confirmed")) } th { (t(lang, "Version")) } th { (t(lang, "Flag")) }
            }
            @for e in &v.entries {
                tr {
                    td { (e.country) } td { (e.role) }
                    td { (format!("{} {}", e.institution, e.unit).trim()) }
                    td { (e.channels.join(" ")) } td { (e.languages.join(" ")) } td { (e.hours) }
                    td { @if e.last_confirmed.is_empty() { (t(lang, "never")) } @else { (e.last_confirmed) } }
                    td { (e.version) }
                    td { @if let Some(f) = flag(e) { span class=(format!("flag flag-{f}")) { (f) } } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_flagged_as_the_command_line_flags_them() {
        let entry = |confirmed: &str, stale: bool| a::DirectoryEntry {
            last_confirmed: confirmed.into(),
            stale,
            ..Default::default()
        };
        let cases = [
            (entry("", true), Some("UNCONFIRMED")),
            (entry("", false), Some("UNCONFIRMED")),
            (entry("2026-01-01", true), Some("STALE")),
            (entry("2026-01-01", false), None),
        ];
        for (e, want) in cases {
            assert_eq!(flag(&e), want, "{e:?}");
        }
    }
}
