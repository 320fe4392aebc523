//! The console's pages: server-rendered HTML (maud escapes every value), no script. Each page
//! is one or two admin calls with the officer's credential; a refusal or failure of the node
//! is shown in the page on one line. The wording is shared with the command line
//! ([`crate::render`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Form};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use trm_admin_api::answers::{self as a, AdminCall};
use trm_proto::admin as api;

use super::guard::Csrf;
use super::i18n::{label, t, Lang, LANG_COOKIE};
use crate::cmd::{self, Refused, Session};
use crate::render::{self, FieldText};

/// What every page needs: the officer's credential.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) session: Arc<Session>,
}

/// The style sheet, embedded in the binary.
const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#222}\
nav{background:#234;padding:.6em 1em}nav a{color:#fff;margin-right:1.5em;text-decoration:none}\
main{padding:1em 2em;max-width:70em}\
table{border-collapse:collapse;margin:.5em 0 1em;width:100%}\
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}\
th{background:#eee;font-weight:normal}td{white-space:pre-wrap;word-break:break-word}\
.flag{display:inline-block;border-radius:.3em;padding:0 .4em;margin-right:.3em;background:#ddd}\
.flag-emergency,.flag-OVERDUE{background:#b00;color:#fff}.flag-child{background:#c60;color:#fff}\
.badge{display:inline-block;padding:.2em .6em;border-radius:.3em;font-weight:bold}\
.ok{background:#2a6;color:#fff}.bad{background:#b00;color:#fff}\
.error{border-left:.3em solid #b00;padding:.3em .6em;background:#fee}\
.queue li{margin-bottom:.8em}code{background:#f4f4f4}\
fieldset{margin:1em 0}label{display:block;margin:.4em 0}input[type=text]{width:30em}\
.langs{float:right}.langs a,.langs strong{color:#fff;margin-left:1em;margin-right:0}";

/// A page with the navigation and the language picker, as HTML.
pub(super) fn layout(lang: Lang, title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang=(lang.code()) {
                head {
                    meta charset="utf-8";
                    title { (title) " – TRM console" }
                    link rel="stylesheet" href="/style.css";
                }
                body {
                    nav {
                        a href="/" { (t(lang, "Work queue")) }
                        a href="/inbox" { (t(lang, "Inbox")) }
                        a href="/cases" { (t(lang, "Cases")) }
                        a href="/cases/new" { (t(lang, "New case")) }
                        span.langs {
                            @for l in Lang::ALL {
                                @if l == lang { strong { (l.name()) } } @else {
                                    a href=(format!("/language/{}", l.code())) hreflang=(l.code()) lang=(l.code()) { (l.name()) }
                                }
                            }
                        }
                    }
                    main { h1 { (title) } (body) }
                }
            }
        }
        .into_string(),
    )
}

/// A refusal page (no session, wrong host, CSRF, unknown page) with its status.
pub(crate) fn refusal(lang: Lang, status: StatusCode, text: &str) -> Response {
    let page = layout(lang, t(lang, "Refused"), html! { p.error { (text) } });
    (status, page).into_response()
}

/// `GET /language/CODE`: the officer's language, kept in a cookie (only a language code);
/// back to the work queue. An unknown code: 404, nothing set.
pub(crate) async fn language(lang: Lang, Path(code): Path<String>) -> Response {
    match Lang::parse(&code) {
        Some(l) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_string()),
                (
                    header::SET_COOKIE,
                    format!("{LANG_COOKIE}={}; SameSite=Strict; Path=/", l.code()),
                ),
            ],
        )
            .into_response(),
        None => refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such language.")),
    }
}

/// A failed admin call: one line in the page; the status says who refused.
pub(super) struct Failed {
    pub(super) status: StatusCode,
    pub(super) line: String,
}

pub(super) fn failed(lang: Lang, title: &str, f: Failed) -> Response {
    let page = layout(lang, title, html! { p.error { (f.line) } });
    (f.status, page).into_response()
}

/// One admin call with the officer's credential.
pub(super) async fn ask<C: AdminCall>(s: &Session, request: C) -> Result<C::Answer, Failed> {
    match cmd::ask(s, request, Refused::Call).await {
        Ok((answer, _)) => Ok(answer),
        Err(f) => Err(Failed {
            status: match f.code {
                77 => StatusCode::FORBIDDEN,
                69 => StatusCode::BAD_GATEWAY,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            },
            line: f.lines.join("; "),
        }),
    }
}

/// An identifier as one path segment (percent-encoded but for letters, digits, `-_.`).
pub(super) fn seg(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) async fn style() -> Response {
    let css = [STYLE, super::form::STYLE].concat();
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

pub(crate) async fn not_found(lang: Lang) -> Response {
    refusal(lang, StatusCode::NOT_FOUND, "No such page.")
}

/// Home: the work queue for the credential's role.
pub(crate) async fn home(lang: Lang, State(app): State<App>) -> Response {
    match ask(&app.session, api::Queue {}).await {
        Ok(q) => layout(lang, &format!("Work queue ({})", q.role), queue_body(&q)).into_response(),
        Err(f) => failed(lang, "Work queue", f),
    }
}

/// Where a queue item is acted on in the console.
fn queue_link(i: &a::QueueItem) -> Option<String> {
    use a::QueueKind as K;
    match i.kind {
        K::AnswerReferral | K::AnswerInformationRequest if !i.id.is_empty() => {
            Some(format!("/messages/{}", seg(&i.id)))
        }
        _ if !i.case_ref.is_empty() => Some(format!("/cases/{}", seg(&i.case_ref))),
        _ => None,
    }
}

fn queue_body(q: &a::Queue) -> Markup {
    html! {
        @if let Some(b) = &q.last_backup {
            p { "Last backup: " (b.taken) " (" (b.age_days) " days ago)" }
        }
        @if q.items.is_empty() { p { "Nothing to do." } }
        ol.queue {
            @for i in &q.items {
                li {
                    strong { "[" (render::queue_kind(i.kind)) "] " }
                    @match queue_link(i) {
                        Some(href) => a href=(href) { (i.what) },
                        None => span { (i.what) },
                    }
                    " "
                    @for f in render::queue_flags(i) { span class=(format!("flag flag-{f}")) { (f) } }
                    @if i.due != "-" { " due " (i.due) }
                    br;
                    small { "command line: " code { (i.command) } }
                }
            }
        }
    }
}

/// The inbox: received messages, emergency and child cases first.
pub(crate) async fn inbox(lang: Lang, State(app): State<App>) -> Response {
    let v = match ask(&app.session, api::Inbox {}).await {
        Ok(v) => v,
        Err(f) => return failed(lang, "Inbox", f),
    };
    let body = html! {
        @if v.messages.is_empty() { p { "No messages received." } }
        table {
            tr { th { "message" } th { "from" } th { "kind" } th { "case" } th { "urgency" } th { "child" } th { "received" } th { "categories" } }
            @for m in &v.messages {
                tr {
                    td { a href=(format!("/messages/{}", seg(&m.id))) { (m.id) } }
                    td { (m.from) } td { (m.kind) }
                    td { a href=(format!("/cases/{}", seg(&m.case_ref))) { (m.case_ref) } }
                    td { (m.urgency.as_deref().unwrap_or("unknown")) }
                    td { (match m.minor { Some(true) => "yes", Some(false) => "no", None => "unknown" }) }
                    td { (m.received) } td { (m.categories.join(", ")) }
                }
            }
        }
    };
    layout(lang, "Inbox", body).into_response()
}

/// The verification badge: signature valid and every disclosure matching its signed digest.
fn badge(v: &a::Verification) -> Markup {
    let ok = v.signature == "valid" && !v.disclosures.starts_with("INVALID");
    html! {
        p {
            @if ok { span.badge.ok { "verified" } } @else { span.badge.bad { "NOT VERIFIED" } }
            " signature: " (v.signature) "; disclosures: " (v.disclosures)
        }
    }
}

/// Fields in template order under their section labels, each section collapsible.
fn sections(lang: Lang, doc: &serde_json::Value) -> Markup {
    html! {
        @for (section, rows) in render::case_sections_keyed(doc) {
            details open {
                summary { strong { (section.map_or_else(|| t(lang, "Other fields (national extensions)").to_string(), |s| label(lang, s))) } }
                table {
                    @for (path, text) in &rows {
                        tr {
                            th { (label(lang, path)) }
                            td {
                                @match text {
                                    FieldText::One(x) => (x),
                                    FieldText::Records(items) => ul { @for r in items { li { (r) } } },
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A message: what it says in words, its verification and delivery; on a received referral,
/// the acceptance and decline forms.
pub(crate) async fn message(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
) -> Response {
    let v = match ask(&app.session, api::MessageShow { id }).await {
        Ok(v) => v,
        Err(f) => return failed(lang, "Message", f),
    };
    // Accept and decline apply to a received referral still pending (read from its thread).
    let answerable = v.kind == "referral"
        && v.direction == "received"
        && ask(
            &app.session,
            api::CaseShow {
                id: v.case_ref.clone(),
            },
        )
        .await
        .is_ok_and(|c| c.thread.is_some_and(|t| t.state == "pending"));
    let reply = super::form::answer::form_for(lang, &app, &v, &csrf).await;
    let way = if v.direction == "sent" { "to" } else { "from" };
    let title = format!("{} {} {} {}", v.direction, v.kind, way, v.peer);
    let body = html! {
        (badge(&v.verification))
        table {
            tr { th { "message" } td { (v.id) } }
            tr { th { "case" } td { a href=(format!("/cases/{}", seg(&v.case_ref))) { (v.case_ref) } } }
            tr { th { "sender → recipient" } td { (v.sender) " → " (v.recipient) } }
            tr { th { "created" } td { (v.created) } }
            @if !v.in_reply_to.is_empty() { tr { th { "in reply to" } td { (v.in_reply_to) } } }
            @for (label, value) in v.payload.as_ref().map(render::payload_lines).unwrap_or_default() {
                tr { th { (label) } td { (value) } }
            }
            tr { th { "envelope hash" } td { (v.verification.envelope_hash) } }
        }
        h2 { "Delivery" }
        pre { (render::delivery_lines(&v)) }
        h2 { "Fields" }
        @if v.fields.as_object().is_some_and(|m| m.is_empty()) { p { "None carried by this message." } }
        (sections(lang, &v.fields))
        @if answerable { (answer_forms(&v.id, &csrf)) }
        (reply)
    };
    layout(lang, &title, body).into_response()
}

/// Accept or decline a received referral (POST with the session's CSRF token).
fn answer_forms(id: &str, csrf: &Csrf) -> Markup {
    let action = format!("/messages/{}/answer", seg(id));
    html! {
        h2 { "Answer this referral" }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf.0);
            input type="hidden" name="decision" value="accept";
            fieldset {
                legend { "Accept" }
                label { "Responsible institution " input type="text" name="institution" required; }
                label { "Focal point (a role or functional mailbox) " input type="text" name="focal_point"; }
                button type="submit" { "Accept the referral" }
            }
        }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf.0);
            input type="hidden" name="decision" value="decline";
            fieldset {
                legend { "Decline" }
                label { "Reason (no personal data) " input type="text" name="reason" required; }
                button type="submit" { "Decline the referral" }
            }
        }
    }
}

/// The acceptance or decline form.
#[derive(Deserialize)]
pub(crate) struct AnswerForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    institution: String,
    #[serde(default)]
    focal_point: String,
    #[serde(default)]
    reason: String,
}

/// The request an answer form makes, or what is wrong with the form.
fn answer_request(id: String, f: AnswerForm) -> Result<api::ReferralAnswer, &'static str> {
    let decline = match f.decision.as_str() {
        "accept" if f.institution.trim().is_empty() => {
            return Err("Accepting needs the responsible institution.")
        }
        "decline" if f.reason.trim().is_empty() => return Err("Declining needs a reason."),
        "accept" => false,
        "decline" => true,
        _ => return Err("The form's decision is neither accept nor decline."),
    };
    Ok(api::ReferralAnswer {
        referral: id,
        decline,
        responsible_institution: f.institution,
        focal_point: f.focal_point,
        reason: f.reason,
    })
}

/// `POST /messages/ID/answer` (the guard has checked its CSRF token already).
pub(crate) async fn answer(
    lang: Lang,
    State(app): State<App>,
    Path(id): Path<String>,
    Form(f): Form<AnswerForm>,
) -> Response {
    let back = format!("/messages/{}", seg(&id));
    let request = match answer_request(id, f) {
        Ok(r) => r,
        Err(text) => return refusal(lang, StatusCode::BAD_REQUEST, text),
    };
    match ask(&app.session, request).await {
        Ok(e) => {
            let body = html! { p { (render::enqueued(&e)) } p { a href=(back) { "Back to the referral" } } };
            layout(lang, "Answer sent", body).into_response()
        }
        Err(f) => failed(lang, "Answer not sent", f),
    }
}

/// The case list's filters (query parameters: only these keywords and a country code, never
/// a case value).
#[derive(Default, Deserialize)]
pub(crate) struct Filter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    partner: String,
    #[serde(default)]
    overdue: String,
    #[serde(default)]
    minor: String,
}

impl Filter {
    /// Whether a referral thread passes the state, partner and overdue filters.
    fn thread(&self, t: &a::Thread) -> bool {
        (self.state.is_empty() || t.state == self.state)
            && (self.partner.is_empty() || t.peer.eq_ignore_ascii_case(&self.partner))
            && (self.overdue != "yes" || t.overdue)
    }

    fn any(&self) -> bool {
        !(self.state.is_empty() && self.partner.is_empty() && self.overdue.is_empty())
    }
}

/// Whether a case document is a minor's (`reference.minor` or `child.minor`).
fn is_minor(doc: &serde_json::Value) -> bool {
    doc["reference"]["minor"] == serde_json::Value::Bool(true)
        || doc["child"]["minor"] == serde_json::Value::Bool(true)
}

/// The ids (recorded here) and references (received) of the minors' cases: one `case show`
/// per case, asked only when the minor filter is on.
async fn minors(s: &Session, v: &a::CaseList) -> Vec<String> {
    let mut out = Vec::new();
    let ids = v
        .cases
        .iter()
        .map(|c| &c.id)
        .chain(v.received.iter().map(|t| &t.case_ref));
    for id in ids {
        if let Ok(c) = ask(s, api::CaseShow { id: id.clone() }).await {
            if is_minor(&c.case) {
                out.push(id.clone());
            }
        }
    }
    out
}

fn filter_form(f: &Filter) -> Markup {
    html! {
        form method="get" action="/cases" {
            fieldset {
                legend { "Filter" }
                label { "State " input type="text" name="state" value=(f.state) size="12"; }
                label { "Partner (country code) " input type="text" name="partner" value=(f.partner) size="2" maxlength="2" pattern="[A-Za-z]{2}"; }
                label { input type="checkbox" name="overdue" value="yes" checked[f.overdue == "yes"]; " overdue only" }
                label { input type="checkbox" name="minor" value="yes" checked[f.minor == "yes"]; " minors only" }
                button type="submit" { "Filter" }
            }
        }
    }
}

/// The cases recorded here and the cases received, filtered.
pub(crate) async fn cases(lang: Lang, State(app): State<App>, Query(f): Query<Filter>) -> Response {
    let v = match ask(&app.session, api::CaseList {}).await {
        Ok(v) => v,
        Err(f) => return failed(lang, "Cases", f),
    };
    let minors = if f.minor == "yes" {
        Some(minors(&app.session, &v).await)
    } else {
        None
    };
    let minor_ok = |id: &str| minors.as_ref().is_none_or(|m| m.iter().any(|x| x == id));
    let here: Vec<&a::CaseEntry> = v
        .cases
        .iter()
        .filter(|c| !f.any() || c.referrals.iter().any(|t| f.thread(t)))
        .filter(|c| minor_ok(&c.id))
        .collect();
    let received: Vec<&a::Thread> = v
        .received
        .iter()
        .filter(|t| f.thread(t) && minor_ok(&t.case_ref))
        .collect();
    let body = html! {
        (filter_form(&f))
        table {
            tr { th { "case" } th { "origin" } th { "recorded" } th { "by" } th { "referrals" } }
            @for c in &here {
                tr {
                    td { a href=(format!("/cases/{}", seg(&c.id))) { (c.id) } }
                    td { "recorded here" } td { (c.created) } td { (c.created_by) }
                    td { (c.referrals.iter().map(render::referral_state).collect::<Vec<_>>().join(" ")) }
                }
            }
            @for t in &received {
                tr {
                    td { a href=(format!("/cases/{}", seg(&t.case_ref))) { (t.case_ref) } }
                    td { "received from " (t.peer) } td { "-" } td { "-" } td { (render::referral_state(t)) }
                }
            }
        }
        @if here.is_empty() && received.is_empty() { p { "No cases." } }
    };
    layout(lang, "Cases", body).into_response()
}

/// One case: its header, its fields in template order, its timeline.
pub(crate) async fn case(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
) -> Response {
    let v = match ask(&app.session, api::CaseShow { id: id.clone() }).await {
        Ok(v) => v,
        Err(f) => return failed(lang, "Case", f),
    };
    let timeline = ask(&app.session, api::CaseTimeline { id: id.clone() }).await;
    let log = access_log(&app.session, id).await;
    let body = html! {
        table { @for (k, x) in render::case_header_rows(&v) { tr { th { (k) } td { (x) } } } }
        (sections(lang, &v.case))
        @if v.origin == "recorded here" {
            p { a href=(format!("/cases/{}/edit", seg(&v.id))) { (t(lang, "Edit the case")) } }
            (referrals_here(&v))
            (super::thread::consent_form(&v.id, &csrf))
        }
        h2 { "Timeline" }
        @match &timeline {
            Ok(t) => (timeline_table(t)),
            Err(f) => p.error { (f.line) },
        }
        @if let Some(log) = &log {
            h2 { "Access log" }
            @match log {
                Ok(l) => (access_table(l)),
                Err(f) => p.error { (f.line) },
            }
        }
    };
    layout(lang, &format!("Case {}", v.id), body).into_response()
}

fn timeline_table(t: &a::Timeline) -> Markup {
    html! {
        table {
            tr { th { "time" } th { "message" } th { "way" } th { "kind" } th { "summary" } th { "signature" } th { "delivery" } }
            @for m in &t.messages {
                tr {
                    td { (m.created) }
                    td { a href=(format!("/messages/{}", seg(&m.id))) { (m.id) } }
                    td { (if m.direction == "sent" { "→ " } else { "← " }) (m.peer) }
                    td { (m.kind) } td { (m.summary) } td { (m.verification.signature) }
                    td { (m.delivery.state()) }
                }
            }
        }
    }
}

/// A case recorded here: its referral state per partner, each linking to its referral page,
/// and a form to open the referral page for another partner (only a country code in the URL).
fn referrals_here(v: &a::CaseShow) -> Markup {
    let action = format!("/cases/{}/referral", seg(&v.id));
    html! {
        h2 { "Referrals" }
        @if v.referrals.is_empty() { p { "Not referred yet." } }
        table {
            @if !v.referrals.is_empty() {
                tr { th { "partner" } th { "state" } th { "phase" } th { "response due" } th { "institution" } }
            }
            @for t in &v.referrals {
                tr {
                    td { a href=(format!("{action}/{}", seg(&t.peer))) { (t.peer) } }
                    td { (render::referral_state(t)) } td { (t.phase) } td { (t.response_due) }
                    td { (t.responsible_institution) }
                }
            }
        }
        form method="get" action=(action) {
            label { "Preview a referral to (country code) " input type="text" name="to" size="2" maxlength="2" required; }
            button type="submit" { "Preview" }
        }
    }
}

/// The case's access log, for supervisors and auditors only (role from `queue`); others see
/// nothing there, and the console does not ask the node a call it would refuse.
async fn access_log(s: &Session, id: String) -> Option<Result<a::AccessLog, Failed>> {
    let role = ask(s, api::Queue {}).await.ok()?.role;
    if role != "supervisor" && role != "auditor" {
        return None;
    }
    Some(ask(s, api::CaseAccessLog { id }).await)
}

fn access_table(l: &a::AccessLog) -> Markup {
    html! {
        table {
            tr { th { "time" } th { "officer" } th { "role" } th { "call" } th { "target" } th { "result" } }
            @for e in &l.entries {
                tr {
                    td { (e.time) } td { (e.officer) } td { (e.role) }
                    td { (e.call) } td { (e.target) } td { (e.result) }
                }
            }
        }
    }
}
