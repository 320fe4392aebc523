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
use super::i18n::{t, word, Lang};
use super::pages::{ask, failed, refusal, seg, App};
use super::referral::{country, done};
use crate::render;

fn action(id: &str, to: &str, what: &str) -> String {
    format!("/cases/{}/referral/{}/{what}", seg(id), seg(to))
}

/// The forms that apply to the thread in `state`: an accepted referral can be closed or asked
/// for information; a closed one can be reopened.
pub(super) fn forms(lang: Lang, id: &str, to: &str, state: &str, csrf: &Csrf) -> Markup {
    let outcomes: Vec<&str> = trm_proto::phases::OUTCOMES.split(", ").collect();
    html! {
        @if state == "accepted" {
            form method="post" action=(action(id, to, "inforequest")) {
                input type="hidden" name="csrf" value=(csrf.0);
                fieldset {
                    legend { (t(lang, "Information request")) }
                    label { (t(lang, "Purpose (no personal data)")) " " input type="text" name="purpose" required; }
                    label { (t(lang, "Categories (comma separated)")) " " input type="text" name="categories"; }
                    label { (t(lang, "Fields (comma separated paths)")) " " input type="text" name="fields"; }
                    button type="submit" { (t(lang, "Send the information request")) }
                }
            }
            form method="post" action=(action(id, to, "close")) {
                input type="hidden" name="csrf" value=(csrf.0);
                fieldset {
                    legend { (t(lang, "Closure")) }
                    label { (t(lang, "Outcome")) " " select name="outcome" { @for o in &outcomes { option value=(o) { (word(lang, o)) } } } }
                    label { (t(lang, "Date")) " " input type="date" name="date"; }
                    button type="submit" { (t(lang, "Close the case with")) " " (to) }
                }
            }
        }
        @if state == "closed" {
            form method="post" action=(action(id, to, "reopen")) {
                input type="hidden" name="csrf" value=(csrf.0);
                fieldset {
                    legend { (t(lang, "Reopen")) }
                    label { (t(lang, "Reason (no personal data)")) " " input type="text" name="reason" required; }
                    button type="submit" { (t(lang, "Reopen")) }
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
        return refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such partner."));
    };
    let back = format!("/cases/{}/referral/{}", seg(&id), seg(&to));
    let s = &app.session;
    match what.as_str() {
        "inforequest" if f.purpose.trim().is_empty() => refusal(
            lang,
            StatusCode::BAD_REQUEST,
            t(lang, "An information request needs its purpose."),
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
                Ok(v) => {
                    let title = t(lang, "Information request sent");
                    done(lang, title, &render::enqueued(&v), &back)
                }
                Err(e) => failed(lang, t(lang, "Information request not sent"), e),
            }
        }
        "close" if trm_proto::phases::parse_outcome(&f.outcome).is_none() => refusal(
            lang,
            StatusCode::BAD_REQUEST,
            t(lang, "The outcome is not one of the closure outcomes."),
        ),
        "close" => {
            let r = api::CaseClose {
                case_id: id,
                to,
                outcome: f.outcome,
                date: f.date,
            };
            match ask(s, r).await {
                Ok(v) => done(lang, t(lang, "Closure sent"), &render::enqueued(&v), &back),
                Err(e) => failed(lang, t(lang, "Not closed"), e),
            }
        }
        "reopen" if f.reason.trim().is_empty() => refusal(
            lang,
            StatusCode::BAD_REQUEST,
            t(lang, "Reopening needs a reason."),
        ),
        "reopen" => {
            let r = api::CaseReopen {
                case_id: id,
                to,
                reason: f.reason,
            };
            match ask(s, r).await {
                Ok(v) => done(lang, t(lang, "Reopened"), &render::reopened(&v), &back),
                Err(e) => failed(lang, t(lang, "Not reopened"), e),
            }
        }
        _ => refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such form.")),
    }
}

/// The consent form on a case recorded here: give or withdraw one category's consent; a
/// withdrawal needs the confirmation box (the CLI's `--yes`).
pub(super) fn consent_form(lang: Lang, id: &str, csrf: &Csrf) -> Markup {
    html! {
        form method="post" action=(format!("/cases/{}/consent", seg(id))) {
            input type="hidden" name="csrf" value=(csrf.0);
            fieldset {
                legend { (t(lang, "Consent")) }
                label { (t(lang, "Category")) " " input type="text" name="category" required; }
                label { input type="radio" name="change" value="give" checked; " " (t(lang, "given")) }
                label { input type="radio" name="change" value="withdraw"; " " (t(lang, "withdrawn (erases that category's fields at once)")) }
                label { input type="checkbox" name="confirm" value="yes"; " " (t(lang, "I confirm the withdrawal")) }
                button type="submit" { (t(lang, "Record")) }
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
        let text = t(lang, "Consent needs its category.");
        return refusal(lang, StatusCode::BAD_REQUEST, text);
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
                t(
                    lang,
                    "Withdrawing consent erases at once: tick the confirmation box.",
                ),
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
                t(lang, "Neither given nor withdrawn."),
            )
        }
    }
    match ask(&app.session, r).await {
        Ok(v) => done(
            lang,
            t(lang, "Consent recorded"),
            &render::consent(&v),
            &back,
        ),
        Err(e) => failed(lang, t(lang, "Consent not recorded"), e),
    }
}
