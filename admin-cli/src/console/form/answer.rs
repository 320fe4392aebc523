//! Answering a received information request from its message page: a follow-up (phase,
//! status, date, as on the referral page) with inputs for the fields asked for (the named
//! fields and every field of the named categories, generated like the case form and
//! prefilled from the case as this node holds it). Preview is `followup preview`; Send is
//! `followup send` with `in_reply_to` = the request's message id.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde_json::Value;
use trm_admin_api::answers::{self as a, TemplateField};
use trm_proto::admin as api;

use super::{
    build_doc, errors_of, sections, template_fields, values_from_doc, values_of, Errors, Values,
};
use crate::console::guard::Csrf;
use crate::console::i18n::{t, Lang};
use crate::console::pages::{ask, failed, layout, refusal, seg, App};
use crate::console::referral::{done, preview_body};
use crate::render;

/// A received information request not answered yet: its asked-for fields and categories.
fn open_request(v: &a::MessageView) -> Option<(&[String], &[String])> {
    let unanswered = v.answered_by.as_ref().is_none_or(|b| b.is_empty());
    if v.kind != "information_request" || v.direction != "received" || !unanswered {
        return None;
    }
    match &v.payload {
        Some(a::PayloadView::InformationRequest {
            fields, categories, ..
        }) => Some((fields, categories)),
        _ => None,
    }
}

/// The template fields asked for: named, or in a named category.
fn asked(all: Vec<TemplateField>, fields: &[String], categories: &[String]) -> Vec<TemplateField> {
    all.into_iter()
        .filter(|f| {
            let cat = serde_json::to_value(f.category).ok();
            let cat = cat.as_ref().and_then(Value::as_str).unwrap_or_default();
            fields.contains(&f.path) || categories.iter().any(|c| c == cat)
        })
        .collect()
}

/// What the answer form shows and keeps.
#[derive(Default)]
struct Head {
    phase: String,
    status: String,
    date: String,
}

fn answer_form(
    lang: Lang,
    id: &str,
    csrf: &Csrf,
    head: &Head,
    fields: &[TemplateField],
    values: &Values,
    errors: &Errors,
) -> Markup {
    let phases: Vec<&str> = trm_proto::phases::PHASES.split(", ").collect();
    html! {
        h2 { (t(lang, "Answer this information request")) }
        @if let Some(w) = &errors.whole { p.error role="alert" { (w) } }
        form method="post" action=(format!("/messages/{}/reply", seg(id))) {
            input type="hidden" name="csrf" value=(csrf.0);
            fieldset {
                legend { (t(lang, "Follow-up")) }
                label for="a-phase" { (t(lang, "Phase")) }
                select id="a-phase" name="phase" {
                    @for p in &phases { option value=(p) selected[*p == head.phase] { (p) } }
                }
                label for="a-status" { (t(lang, "Status (no personal data)")) }
                input type="text" id="a-status" name="status" value=(head.status) required;
                label for="a-date" { (t(lang, "Date")) }
                input type="date" id="a-date" name="date" value=(head.date);
            }
            @if fields.is_empty() { p { (t(lang, "None of the fields asked for is in this node's template.")) } }
            (sections(lang, fields, values, errors))
            button type="submit" name="action" value="preview" { (t(lang, "Preview")) }
            " "
            button type="submit" name="action" value="send" { (t(lang, "Send the answer")) }
        }
    }
}

/// The answer form for the message page, when `v` is a received information request not
/// answered yet (nothing otherwise).
pub(crate) async fn form_for(lang: Lang, app: &App, v: &a::MessageView, csrf: &Csrf) -> Markup {
    let Some((fields, categories)) = open_request(v) else {
        return html! {};
    };
    let all = match template_fields(app).await {
        Ok(f) => f,
        Err(f) => return html! { p.error { (f.line) } },
    };
    let asked = asked(all, fields, categories);
    // Prefilled from the case as this node holds it, if it does.
    let case = ask(
        &app.session,
        api::CaseShow {
            id: v.case_ref.clone(),
        },
    )
    .await
    .map(|c| c.case)
    .unwrap_or(Value::Null);
    let values = values_from_doc(&asked, &case);
    answer_form(
        lang,
        &v.id,
        csrf,
        &Head::default(),
        &asked,
        &values,
        &Errors::default(),
    )
}

/// The reply form's head and field values, from the POST body.
fn read_reply(pairs: Vec<(String, String)>) -> (String, Head, Values) {
    let one = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, x)| x.clone())
            .unwrap_or_default()
    };
    let (action, head) = (
        one("action"),
        Head {
            phase: one("phase"),
            status: one("status"),
            date: one("date"),
        },
    );
    let rest = pairs
        .into_iter()
        .filter(|(n, _)| !matches!(n.as_str(), "phase" | "status" | "date"))
        .collect();
    (action, head, values_of(rest))
}

/// The follow-up answering request `v` with the form's head and fields.
fn reply_request(v: &a::MessageView, head: &Head, doc: &Value) -> api::FollowUpSend {
    api::FollowUpSend {
        case_id: v.case_ref.clone(),
        to: v.peer.clone(),
        phase: head.phase.clone(),
        status: head.status.clone(),
        date: head.date.clone(),
        fields_json: if doc.as_object().is_some_and(|m| m.is_empty()) {
            String::new()
        } else {
            doc.to_string()
        },
        in_reply_to: v.id.clone(),
    }
}

/// `POST /messages/ID/reply`: `followup preview` or `followup send` answering the request.
pub(crate) async fn reply(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let title = t(lang, "Answer this information request");
    let v = match ask(&app.session, api::MessageShow { id: id.clone() }).await {
        Ok(v) => v,
        Err(f) => return failed(lang, title, f),
    };
    let Some((fields, categories)) = open_request(&v) else {
        let text = t(
            lang,
            "This message is not an information request waiting for an answer.",
        );
        return refusal(lang, StatusCode::CONFLICT, text);
    };
    let asked = match template_fields(&app).await {
        Ok(all) => asked(all, fields, categories),
        Err(f) => return failed(lang, title, f),
    };
    let (action, head, values) = read_reply(pairs);
    let request = reply_request(&v, &head, &build_doc(&asked, &values, Value::Null));
    let again = |errors: &Errors| answer_form(lang, &id, &csrf, &head, &asked, &values, errors);
    let result = match action.as_str() {
        "preview" => {
            let preview = api::FollowUpPreview {
                request: Some(request),
            };
            match ask(&app.session, preview).await {
                Ok(p) => {
                    let shown = preview_body(lang, &p, render::follow_up_preview(&p));
                    let body = html! { (shown) (again(&Errors::default())) };
                    return layout(lang, title, body).into_response();
                }
                Err(f) => f,
            }
        }
        "send" => match ask(&app.session, request).await {
            Ok(s) => {
                let back = format!("/messages/{}", seg(&id));
                let text = render::follow_up_sent(&s);
                return done(lang, t(lang, "Answer sent"), &text, &back);
            }
            Err(f) => f,
        },
        _ => {
            let text = t(lang, "The form's action is neither preview nor send.");
            return refusal(lang, StatusCode::BAD_REQUEST, text);
        }
    };
    let errors = errors_of(&asked, &result.line);
    (result.status, layout(lang, title, again(&errors))).into_response()
}
