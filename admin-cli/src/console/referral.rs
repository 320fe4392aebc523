//! The referral page of a case recorded here, for one partner: the preview (released and
//! withheld fields, the rule for each withheld field, the warnings), the send form, and for
//! supervisors the approve form and the approvals given (who approved what: four eyes). Every
//! form is a POST carrying the session's CSRF token (checked by the guard); the node's refusal
//! is one line in the page. The wording is the command line's ([`crate::render`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use trm_admin_api::answers as a;
use trm_proto::admin as api;

use super::guard::Csrf;
use super::i18n::{label, t, word, Lang};
use super::pages::{ask, categories, failed, layout, refusal, seg, App};
use crate::cmd::referrals::name_referral;
use crate::render;

/// A partner's country code: two ASCII capital letters (the only thing besides the case id
/// in a referral page's URL).
pub(super) fn country(cc: &str) -> Option<String> {
    let cc = cc.trim().to_ascii_uppercase();
    (cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase())).then_some(cc)
}

/// `?to=CC` from the case page's "open the referral" form.
#[derive(Deserialize)]
pub(crate) struct To {
    #[serde(default)]
    to: String,
}

/// `GET /cases/ID/referral?to=CC`: to the referral page (a GET form cannot build a path).
pub(crate) async fn pick(lang: Lang, Path(id): Path<String>, Query(q): Query<To>) -> Response {
    match country(&q.to) {
        Some(cc) => Redirect::to(&page_path(&id, &cc)).into_response(),
        None => refusal(
            lang,
            StatusCode::BAD_REQUEST,
            t(
                lang,
                "The partner is not a country code (two letters, e.g. AL).",
            ),
        ),
    }
}

fn page_path(id: &str, cc: &str) -> String {
    format!("/cases/{}/referral/{}", seg(id), seg(cc))
}

/// `GET /cases/ID/referral/CC`.
pub(crate) async fn page(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Path((id, to)): Path<(String, String)>,
) -> Response {
    let Some(to) = country(&to) else {
        return refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such partner."));
    };
    let request = api::ReferralPreview {
        case_id: id.clone(),
        to: to.clone(),
    };
    let preview = match ask(&app.session, request).await {
        Ok(v) => v,
        Err(f) => return failed(lang, t(lang, "Referral"), f),
    };
    // The role decides whether the approve form applies; the node decides again on POST.
    let supervisor = ask(&app.session, api::Queue {})
        .await
        .is_ok_and(|q| q.role == "supervisor");
    let approvals = ask(&app.session, api::ReferralApprovals {}).await;
    // A follow-up applies only to an accepted referral (the node's rule; the form is hidden
    // otherwise).
    let state = ask(&app.session, api::CaseShow { id: id.clone() })
        .await
        .ok()
        .and_then(|c| c.referrals.into_iter().find(|t| t.peer == to))
        .map(|t| t.state)
        .unwrap_or_default();
    let accepted = state == "accepted";
    let body = html! {
        p { a href=(format!("/cases/{}", seg(&id))) { (t(lang, "Back to the case")) } }
        h2 { (t(lang, "Preview")) }
        (preview_body(lang, &preview, render::preview(&preview)))
        (send_form(lang, &id, &to, &csrf))
        h2 { (t(lang, "Approvals (four eyes)")) }
        @match &approvals {
            Ok(v) => (approvals_table(lang, v, &preview)),
            Err(f) => p.error { (f.line) },
        }
        @if supervisor { (approve_form(lang, &id, &to, &preview, &csrf)) }
        @if accepted { (follow_up_form(lang, &id, &to, &csrf, &FollowUpForm::default())) }
        (super::thread::forms(lang, &id, &to, &state, &csrf))
    };
    let title = format!("{} {id} → {to}", t(lang, "Referral of case"));
    layout(lang, &title, body).into_response()
}

/// The preview: the command line's text (labelled as such), then one row per field with its
/// label, category and decision in words, the rules that withheld it as the command line
/// names them.
pub(super) fn preview_body(lang: Lang, v: &a::Preview, text: String) -> Markup {
    html! {
        p { small { (t(lang, "As the command line shows it (in English):")) } }
        pre.preview { (text) }
        table {
            tr { th { (t(lang, "field")) } th { (t(lang, "category")) } th { (t(lang, "decision")) } th { (t(lang, "withheld by")) } }
            @for f in &v.fields {
                tr {
                    td { (label(lang, &f.path)) br; code { (f.path) } } td { (label(lang, &f.category)) }
                    td { (if f.released { t(lang, "released") } else { t(lang, "withheld") }) }
                    td { (f.withheld_by.join(", ")) }
                }
            }
        }
    }
}

fn send_form(lang: Lang, id: &str, to: &str, csrf: &Csrf) -> Markup {
    html! {
        form method="post" action=(format!("{}/send", page_path(id, to))) {
            input type="hidden" name="csrf" value=(csrf.0);
            button type="submit" { (t(lang, "Send the referral to")) " " (to) }
        }
    }
}

/// The grants for this case and partner, and what still waits for approval.
fn approvals_table(lang: Lang, v: &a::Approvals, p: &a::Preview) -> Markup {
    let mine = |case: &str, to: &str| case == p.case && to == p.to;
    html! {
        table {
            tr { th { (t(lang, "referral")) } th { (t(lang, "category")) } th { (t(lang, "approved by")) } th { (t(lang, "at")) } }
            @for g in v.approvals.iter().filter(|g| mine(&g.case, &g.to)) {
                @for x in &g.granted {
                    tr {
                        td { (if g.referral.is_empty() { t(lang, "next referral") } else { g.referral.as_str() }) }
                        td { (label(lang, &x.category)) } td { (x.supervisor) } td { (x.at) }
                    }
                }
            }
        }
        @for w in v.waiting.iter().filter(|w| mine(&w.case, &w.to)) {
            p { (t(lang, "Waiting for approval:")) " " (categories(lang, &w.categories)) }
        }
    }
}

/// Supervisors: approve categories (checkboxes: every category the preview withholds).
fn approve_form(lang: Lang, id: &str, to: &str, p: &a::Preview, csrf: &Csrf) -> Markup {
    let mut cats: Vec<&str> = p
        .fields
        .iter()
        .filter(|f| !f.released)
        .map(|f| f.category.as_str())
        .collect();
    cats.sort_unstable();
    cats.dedup();
    html! {
        form method="post" action=(format!("{}/approve", page_path(id, to))) {
            input type="hidden" name="csrf" value=(csrf.0);
            fieldset {
                legend { (t(lang, "Approve categories (supervisor)")) }
                @if cats.is_empty() { p { (t(lang, "Nothing is withheld.")) } }
                @for c in &cats {
                    label { input type="checkbox" name="category" value=(c); " " (label(lang, c)) }
                }
                button type="submit" { (t(lang, "Approve")) }
            }
        }
    }
}

/// `POST /cases/ID/referral/CC/send`.
pub(crate) async fn send(
    lang: Lang,
    State(app): State<App>,
    Path((id, to)): Path<(String, String)>,
) -> Response {
    let Some(to) = country(&to) else {
        return refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such partner."));
    };
    let back = page_path(&id, &to);
    match ask(&app.session, api::ReferralSend { case_id: id, to }).await {
        Ok(v) => done(lang, t(lang, "Referral sent"), &render::sent(&v), &back),
        Err(f) => failed(lang, t(lang, "Referral not sent"), f),
    }
}

/// `POST /cases/ID/referral/CC/approve` with `category=` once per checked box.
pub(crate) async fn approve(
    lang: Lang,
    State(app): State<App>,
    Path((id, to)): Path<(String, String)>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let Some(to) = country(&to) else {
        return refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such partner."));
    };
    let categories: Vec<String> = fields
        .into_iter()
        .filter(|(k, _)| k == "category")
        .map(|(_, v)| v)
        .collect();
    if categories.is_empty() {
        return refusal(
            lang,
            StatusCode::BAD_REQUEST,
            t(lang, "Approving needs at least one category."),
        );
    }
    let back = page_path(&id, &to);
    let request = api::ReferralApprove {
        referral: name_referral(id, Some(to)),
        categories,
    };
    match ask(&app.session, request).await {
        Ok(v) => done(lang, t(lang, "Approved"), &render::approved(&v), &back),
        Err(f) => failed(lang, t(lang, "Not approved"), f),
    }
}

/// A form's result: the command line's text (labelled as such) and the way back.
pub(super) fn done(lang: Lang, title: &str, text: &str, back: &str) -> Response {
    let body = html! {
        p { small { (t(lang, "As the command line shows it (in English):")) } }
        pre { (text) }
        p { a href=(back) { (t(lang, "Back")) } }
    };
    layout(lang, title, body).into_response()
}

/// The follow-up form: phase, status, date; `action` is `preview` or `send`.
#[derive(Default, Deserialize)]
pub(crate) struct FollowUpForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    date: String,
}

/// Follow-up on the referral: Preview shows what would be released, Send sends it.
fn follow_up_form(lang: Lang, id: &str, to: &str, csrf: &Csrf, f: &FollowUpForm) -> Markup {
    let phases: Vec<&str> = trm_proto::phases::PHASES.split(", ").collect();
    html! {
        form method="post" action=(format!("{}/followup", page_path(id, to))) {
            input type="hidden" name="csrf" value=(csrf.0);
            fieldset {
                legend { (t(lang, "Follow-up")) }
                label { (t(lang, "Phase")) " " select name="phase" {
                    @for p in &phases { option value=(p) selected[*p == f.phase] { (word(lang, p)) } }
                } }
                label { (t(lang, "Status (no personal data)")) " " input type="text" name="status" value=(f.status) required; }
                label { (t(lang, "Date")) " " input type="date" name="date" value=(f.date); }
                button type="submit" name="action" value="preview" { (t(lang, "Preview")) }
                " "
                button type="submit" name="action" value="send" { (t(lang, "Send the follow-up")) }
            }
        }
    }
}

/// `POST /cases/ID/referral/CC/followup`: `followup preview` or `followup send`.
pub(crate) async fn follow_up(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Path((id, to)): Path<(String, String)>,
    Form(f): Form<FollowUpForm>,
) -> Response {
    let Some(to) = country(&to) else {
        return refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such partner."));
    };
    if trm_proto::phases::parse_phase(&f.phase).is_none() {
        let text = t(lang, "The phase is not one of the TRM phases.");
        return refusal(lang, StatusCode::BAD_REQUEST, text);
    }
    if f.status.trim().is_empty() {
        let text = t(lang, "A follow-up needs its status.");
        return refusal(lang, StatusCode::BAD_REQUEST, text);
    }
    let back = page_path(&id, &to);
    let request = api::FollowUpSend {
        case_id: id.clone(),
        to: to.clone(),
        phase: f.phase.clone(),
        status: f.status.clone(),
        date: f.date.clone(),
        fields_json: String::new(),
        in_reply_to: String::new(),
    };
    match f.action.as_str() {
        "preview" => {
            let preview = api::FollowUpPreview {
                request: Some(request),
            };
            match ask(&app.session, preview).await {
                Ok(v) => {
                    let body = html! {
                        (preview_body(lang, &v, render::follow_up_preview(&v)))
                        (follow_up_form(lang, &id, &to, &csrf, &f))
                        p { a href=(back) { (t(lang, "Back")) } }
                    };
                    layout(lang, t(lang, "Follow-up preview"), body).into_response()
                }
                Err(e) => failed(lang, t(lang, "Follow-up preview"), e),
            }
        }
        "send" => match ask(&app.session, request).await {
            Ok(v) => {
                let text = render::follow_up_sent(&v);
                done(lang, t(lang, "Follow-up sent"), &text, &back)
            }
            Err(e) => failed(lang, t(lang, "Follow-up not sent"), e),
        },
        _ => refusal(
            lang,
            StatusCode::BAD_REQUEST,
            t(lang, "The form's action is neither preview nor send."),
        ),
    }
}
