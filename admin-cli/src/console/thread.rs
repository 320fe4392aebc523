//! The forms on one referral thread of a case recorded here (closure, reopen, information
//! request) and the consent form of a case. Each is a POST carrying the session's CSRF token
//! (checked by the guard); the node's refusal is one line in the page; the result is the
//! command line's wording ([`crate::render`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use trm_proto::admin as api;

use super::guard::Csrf;
use super::i18n::Lang;
use super::pages::{ask, failed, refusal, seg, App};
use super::referral::{country, done};
use crate::render;

fn action(id: &str, to: &str, what: &str) -> String {
    format!("/cases/{}/referral/{}/{what}", seg(id), seg(to))
}

/// The forms that apply to the thread in `state`: an accepted referral can be closed or asked
/// for information; a closed one can be reopened.
pub(super) fn forms(id: &str, to: &str, state: &str, csrf: &Csrf) -> Markup {
    let outcomes: Vec<&str> = trm_proto::phases::OUTCOMES.split(", ").collect();
    html! {
        @if state == "accepted" {
            form method="post" action=(action(id, to, "inforequest")) {
                input type="hidden" name="csrf" value=(csrf.0);
                fieldset {
                    legend { "Information request" }
                    label { "Purpose (no personal data) " input type="text" name="purpose" required; }
                    label { "Categories (comma separated) " input type="text" name="categories"; }
                    label { "Fields (comma separated paths) " input type="text" name="fields"; }
                    button type="submit" { "Send the information request" }
                }
            }
            form method="post" action=(action(id, to, "close")) {
                input type="hidden" name="csrf" value=(csrf.0);
                fieldset {
                    legend { "Closure" }
                    label { "Outcome " select name="outcome" { @for o in &outcomes { option value=(o) { (o) } } } }
                    label { "Date " input type="date" name="date"; }
                    button type="submit" { "Close the case with " (to) }
                }
            }
        }
        @if state == "closed" {
            form method="post" action=(action(id, to, "reopen")) {
                input type="hidden" name="csrf" value=(csrf.0);
                fieldset {
                    legend { "Reopen" }
                    label { "Reason (no personal data) " input type="text" name="reason" required; }
                    button type="submit" { "Reopen" }
                }
            }
        }
    }
}

/// Every thread form's fields (each form uses some).
#[derive(Default, Deserialize)]
pub(crate) struct ThreadForm {
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    categories: String,
    #[serde(default)]
    fields: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    reason: String,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

/// `POST /cases/ID/referral/CC/{inforequest|close|reopen}`.
pub(crate) async fn post(
    lang: Lang,
    State(app): State<App>,
    Path((id, to, what)): Path<(String, String, String)>,
    Form(f): Form<ThreadForm>,
) -> Response {
    let Some(to) = country(&to) else {
        return refusal(lang, StatusCode::NOT_FOUND, "No such partner.");
    };
    let back = format!("/cases/{}/referral/{}", seg(&id), seg(&to));
    let s = &app.session;
    match what.as_str() {
        "inforequest" if f.purpose.trim().is_empty() => refusal(
            lang,
            StatusCode::BAD_REQUEST,
            "An information request needs its purpose.",
        ),
        "inforequest" => {
            let (fields, categories) = (list(&f.fields), list(&f.categories));
            let purpose = f.purpose;
            let r = api::InfoRequest {
                case_id: id,
                to,
                fields,
                categories,
                purpose,
            };
            match ask(s, r).await {
                Ok(v) => done(
                    lang,
                    "Information request sent",
                    &render::enqueued(&v),
                    &back,
                ),
                Err(e) => failed(lang, "Information request not sent", e),
            }
        }
        "close" if trm_proto::phases::parse_outcome(&f.outcome).is_none() => refusal(
            lang,
            StatusCode::BAD_REQUEST,
            "The outcome is not one of the closure outcomes.",
        ),
        "close" => {
            let r = api::CaseClose {
                case_id: id,
                to,
                outcome: f.outcome,
                date: f.date,
            };
            match ask(s, r).await {
                Ok(v) => done(lang, "Closure sent", &render::enqueued(&v), &back),
                Err(e) => failed(lang, "Not closed", e),
            }
        }
        "reopen" if f.reason.trim().is_empty() => {
            refusal(lang, StatusCode::BAD_REQUEST, "Reopening needs a reason.")
        }
        "reopen" => {
            let r = api::CaseReopen {
                case_id: id,
                to,
                reason: f.reason,
            };
            match ask(s, r).await {
                Ok(v) => done(lang, "Reopened", &render::reopened(&v), &back),
                Err(e) => failed(lang, "Not reopened", e),
            }
        }
        _ => refusal(lang, StatusCode::NOT_FOUND, "No such form."),
    }
}

/// The consent form on a case recorded here: give or withdraw one category's consent; a
/// withdrawal needs the confirmation box (the CLI's `--yes`).
pub(super) fn consent_form(id: &str, csrf: &Csrf) -> Markup {
    html! {
        form method="post" action=(format!("/cases/{}/consent", seg(id))) {
            input type="hidden" name="csrf" value=(csrf.0);
            fieldset {
                legend { "Consent" }
                label { "Category " input type="text" name="category" required; }
                label { input type="radio" name="change" value="give" checked; " given" }
                label { input type="radio" name="change" value="withdraw"; " withdrawn (erases that category's fields at once)" }
                label { input type="checkbox" name="confirm" value="yes"; " I confirm the withdrawal" }
                button type="submit" { "Record" }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ConsentForm {
    #[serde(default)]
    category: String,
    #[serde(default)]
    change: String,
    #[serde(default)]
    confirm: String,
}

/// `POST /cases/ID/consent`.
pub(crate) async fn consent(
    lang: Lang,
    State(app): State<App>,
    Path(id): Path<String>,
    Form(f): Form<ConsentForm>,
) -> Response {
    let back = format!("/cases/{}", seg(&id));
    let category = f.category.trim().to_string();
    if category.is_empty() {
        return refusal(lang, StatusCode::BAD_REQUEST, "Consent needs its category.");
    }
    let mut r = api::CaseConsent {
        case_id: id,
        ..Default::default()
    };
    match f.change.as_str() {
        "give" => r.give = category,
        "withdraw" if f.confirm != "yes" => {
            return refusal(
                lang,
                StatusCode::BAD_REQUEST,
                "Withdrawing consent erases at once: tick the confirmation box.",
            )
        }
        "withdraw" => {
            r.withdraw = category;
            r.confirmed = true;
        }
        _ => {
            return refusal(
                lang,
                StatusCode::BAD_REQUEST,
                "Neither given nor withdrawn.",
            )
        }
    }
    match ask(&app.session, r).await {
        Ok(v) => done(lang, "Consent recorded", &render::consent(&v), &back),
        Err(e) => failed(lang, "Consent not recorded", e),
    }
}
