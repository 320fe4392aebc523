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

use super::fields::field_text;
use super::guard::Csrf;
use super::i18n::{label, t, value, word, Lang, LANG_COOKIE};
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
                    title { (title) " – " (t(lang, "TRM console")) }
                    link rel="stylesheet" href="/style.css";
                }
                body {
                    nav {
                        a href="/" { (t(lang, "Work queue")) }
                        a href="/inbox" { (t(lang, "Inbox")) }
                        a href="/cases" { (t(lang, "Cases")) }
                        a href="/stats" { (t(lang, "Statistics")) }
                        a href="/directory" { (t(lang, "Directory")) }
                        a href="/audit" { (t(lang, "Audit")) }
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
    refusal(lang, StatusCode::NOT_FOUND, t(lang, "No such page."))
}

/// Home: the work queue for the credential's role.
/// The node refuses `queue` to one role only, the auditor's: their home is the audit page.
pub(crate) async fn home(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
) -> Response {
    match ask(&app.session, api::Queue {}).await {
        Ok(q) => {
            let title = format!("{} ({})", t(lang, "Work queue"), word(lang, &q.role));
            layout(lang, &title, queue_body(lang, &q)).into_response()
        }
        Err(f) if f.status == StatusCode::FORBIDDEN => {
            super::audit::page(lang, Extension(csrf)).await
        }
        Err(f) => failed(lang, t(lang, "Work queue"), f),
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

/// A queue flag in words: the urgency as a value of `reference.urgency`, `child`, `OVERDUE`.
fn flag_text(lang: Lang, i: &a::QueueItem, f: &str) -> String {
    if i.urgency.as_deref() == Some(f) {
        value(lang, trm_proto::template::REFERENCE_URGENCY, f)
    } else {
        word(lang, f)
    }
}

/// What a queue item is about: in English the node's sentence; in another language the case
/// and the partner under translated labels (the node's sentence follows, as written).
fn item_text(lang: Lang, i: &a::QueueItem) -> String {
    if lang == Lang::En || (i.case_ref.is_empty() && i.peer.is_empty()) {
        return i.what.clone();
    }
    let mut parts = Vec::new();
    if !i.case_ref.is_empty() {
        parts.push(format!("{} {}", t(lang, "case"), i.case_ref));
    }
    if !i.peer.is_empty() {
        parts.push(format!("{} {}", t(lang, "partner"), i.peer));
    }
    parts.join(" · ")
}

fn queue_body(lang: Lang, q: &a::Queue) -> Markup {
    html! {
        @if let Some(b) = &q.last_backup {
            p { (t(lang, "Last backup:")) " " (b.taken) " (" (t(lang, "age in days:")) " " (b.age_days) ")" }
        }
        @if q.items.is_empty() { p { (t(lang, "Nothing to do.")) } }
        ol.queue {
            @for i in &q.items {
                li {
                    strong { "[" (word(lang, &render::queue_kind(i.kind).replace(' ', "_"))) "] " }
                    @match queue_link(i) {
                        Some(href) => a href=(href) { (item_text(lang, i)) },
                        None => span { (item_text(lang, i)) },
                    }
                    " "
                    @for f in render::queue_flags(i) { span class=(format!("flag flag-{f}")) { (flag_text(lang, i, &f)) } }
                    @if i.due != "-" { " " (t(lang, "due")) " " (i.due) }
                    br;
                    @if lang != Lang::En {
                        small { (t(lang, "as the node describes it (in English):")) " " (i.what) }
                        br;
                    }
                    small { (t(lang, "command line:")) " " code { (i.command) } }
                }
            }
        }
    }
}

/// The inbox: received messages, emergency and child cases first.
pub(crate) async fn inbox(lang: Lang, State(app): State<App>) -> Response {
    let v = match ask(&app.session, api::Inbox {}).await {
        Ok(v) => v,
        Err(f) => return failed(lang, t(lang, "Inbox"), f),
    };
    let urgency = |u: &str| value(lang, trm_proto::template::REFERENCE_URGENCY, u);
    let body = html! {
        @if v.messages.is_empty() { p { (t(lang, "No messages received.")) } }
        table {
            tr {
                th { (t(lang, "message")) } th { (t(lang, "from")) } th { (t(lang, "kind")) } th { (t(lang, "case")) }
                th { (t(lang, "urgency")) } th { (t(lang, "child")) } th { (t(lang, "received")) } th { (t(lang, "categories")) }
            }
            @for m in &v.messages {
                tr {
                    td { a href=(format!("/messages/{}", seg(&m.id))) { (m.id) } }
                    td { (m.from) } td { (word(lang, &m.kind)) }
                    td { a href=(format!("/cases/{}", seg(&m.case_ref))) { (m.case_ref) } }
                    td { (m.urgency.as_deref().map_or_else(|| word(lang, "unknown"), urgency)) }
                    td { (word(lang, match m.minor { Some(true) => "yes", Some(false) => "no", None => "unknown" })) }
                    td { (m.received) } td { (categories(lang, &m.categories)) }
                }
            }
        }
    };
    layout(lang, t(lang, "Inbox"), body).into_response()
}

/// Data categories in words (a category is named like its template section).
pub(super) fn categories(lang: Lang, list: &[String]) -> String {
    list.iter()
        .map(|c| label(lang, c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The verification badge: signature valid and every disclosure matching its signed digest.
/// The node's own words for a check that failed are shown as written.
fn badge(lang: Lang, v: &a::Verification) -> Markup {
    let ok = v.signature == "valid" && !v.disclosures.starts_with("INVALID");
    let disclosures = match v.disclosures.as_str() {
        "none" => word(lang, "none"),
        d if d.starts_with("all ") && d.ends_with(" match signed digests") => {
            t(lang, "every disclosure matches its signed digest").to_string()
        }
        d => d.to_string(),
    };
    html! {
        p {
            @if ok { span.badge.ok { (t(lang, "verified")) } } @else { span.badge.bad { (t(lang, "NOT VERIFIED")) } }
            " " (t(lang, "signature:")) " " (word(lang, &v.signature)) "; " (t(lang, "disclosures:")) " " (disclosures)
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
                                @match field_text(lang, path, doc).as_ref().unwrap_or(text) {
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
        Err(f) => return failed(lang, t(lang, "Message"), f),
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
    let way = if v.direction == "sent" {
        t(lang, "to")
    } else {
        t(lang, "from")
    };
    let title = format!("{} {way} {}", word(lang, &v.kind), v.peer);
    let body = html! {
        (badge(lang, &v.verification))
        table {
            tr { th { (t(lang, "message")) } td { (v.id) } }
            tr { th { (t(lang, "case")) } td { a href=(format!("/cases/{}", seg(&v.case_ref))) { (v.case_ref) } } }
            tr { th { (t(lang, "sender → recipient")) } td { (v.sender) " → " (v.recipient) } }
            tr { th { (t(lang, "created")) } td { (v.created) } }
            @if !v.in_reply_to.is_empty() { tr { th { (t(lang, "in reply to")) } td { (v.in_reply_to) } } }
            @for (name, text) in v.payload.as_ref().map(render::payload_lines).unwrap_or_default() {
                tr { th { (word(lang, name)) } td { (payload_value(lang, name, text)) } }
            }
            tr { th { (t(lang, "envelope hash")) } td { (v.verification.envelope_hash) } }
        }
        h2 { (t(lang, "Delivery")) }
        p { (t(lang, "State:")) " " (word(lang, v.delivery.state())) }
        p { small { (t(lang, "As the command line shows it (in English):")) } }
        pre { (render::delivery_lines(&v)) }
        h2 { (t(lang, "Fields")) }
        @if v.fields.as_object().is_some_and(|m| m.is_empty()) { p { (t(lang, "None carried by this message.")) } }
        (sections(lang, &v.fields))
        @if answerable { (answer_forms(lang, &v.id, &csrf)) }
        (reply)
    };
    layout(lang, &title, body).into_response()
}

/// A payload line's value: the urgency, the phase and the outcome as words; the rest (dates,
/// institutions, reasons, composed sentences) as written.
fn payload_value(lang: Lang, name: &str, text: String) -> String {
    match name {
        "urgency" => value(lang, trm_proto::template::REFERENCE_URGENCY, &text),
        "phase" => word(lang, &text),
        "basis of transfer" if text == "not stated by the sender" => word(lang, &text),
        "outcome" => word(lang, &text.replace(' ', "_")),
        _ => text,
    }
}

/// Accept or decline a received referral (POST with the session's CSRF token).
fn answer_forms(lang: Lang, id: &str, csrf: &Csrf) -> Markup {
    let action = format!("/messages/{}/answer", seg(id));
    html! {
        h2 { (t(lang, "Answer this referral")) }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf.0);
            input type="hidden" name="decision" value="accept";
            fieldset {
                legend { (t(lang, "Accept")) }
                label { (t(lang, "Responsible institution")) " " input type="text" name="institution" required; }
                label { (t(lang, "Focal point (a role or functional mailbox)")) " " input type="text" name="focal_point"; }
                button type="submit" { (t(lang, "Accept the referral")) }
            }
        }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf.0);
            input type="hidden" name="decision" value="decline";
            fieldset {
                legend { (t(lang, "Decline")) }
                label { (t(lang, "Reason (no personal data)")) " " input type="text" name="reason" required; }
                button type="submit" { (t(lang, "Decline the referral")) }
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
fn answer_request(
    lang: Lang,
    id: String,
    f: AnswerForm,
) -> Result<api::ReferralAnswer, &'static str> {
    let decline = match f.decision.as_str() {
        "accept" if f.institution.trim().is_empty() => {
            return Err(t(lang, "Accepting needs the responsible institution."))
        }
        "decline" if f.reason.trim().is_empty() => {
            return Err(t(lang, "Declining needs a reason."))
        }
        "accept" => false,
        "decline" => true,
        _ => {
            return Err(t(
                lang,
                "The form's decision is neither accept nor decline.",
            ))
        }
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
    let request = match answer_request(lang, id, f) {
        Ok(r) => r,
        Err(text) => return refusal(lang, StatusCode::BAD_REQUEST, text),
    };
    match ask(&app.session, request).await {
        Ok(e) => {
            let body = html! {
                p { small { (t(lang, "As the command line shows it (in English):")) } }
                pre { (render::enqueued(&e)) }
                p { a href=(back) { (t(lang, "Back to the referral")) } }
            };
            layout(lang, t(lang, "Answer sent"), body).into_response()
        }
        Err(f) => failed(lang, t(lang, "Answer not sent"), f),
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

fn filter_form(lang: Lang, f: &Filter) -> Markup {
    html! {
        form method="get" action="/cases" {
            fieldset {
                legend { (t(lang, "Filter")) }
                label { (t(lang, "State")) " " select name="state" {
                    option value="" { (t(lang, "any")) }
                    @for s in super::i18n::vocab::THREAD_STATES {
                        option value=(s) selected[f.state == s] { (word(lang, s)) }
                    }
                } }
                label { (t(lang, "Partner (country code)")) " " input type="text" name="partner" value=(f.partner) size="2" maxlength="2" pattern="[A-Za-z]{2}"; }
                label { input type="checkbox" name="overdue" value="yes" checked[f.overdue == "yes"]; " " (t(lang, "overdue only")) }
                label { input type="checkbox" name="minor" value="yes" checked[f.minor == "yes"]; " " (t(lang, "minors only")) }
                button type="submit" { (t(lang, "Filter")) }
            }
        }
    }
}

/// The cases recorded here and the cases received, filtered.
pub(crate) async fn cases(lang: Lang, State(app): State<App>, Query(f): Query<Filter>) -> Response {
    let v = match ask(&app.session, api::CaseList {}).await {
        Ok(v) => v,
        Err(f) => return failed(lang, t(lang, "Cases"), f),
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
        (filter_form(lang, &f))
        table {
            tr { th { (t(lang, "case")) } th { (t(lang, "origin")) } th { (t(lang, "recorded")) } th { (t(lang, "by")) } th { (t(lang, "referrals")) } }
            @for c in &here {
                tr {
                    td { a href=(format!("/cases/{}", seg(&c.id))) { (c.id) } }
                    td { (word(lang, "recorded here")) } td { (c.created) } td { (c.created_by) }
                    td { (c.referrals.iter().map(|r| thread_state(lang, r)).collect::<Vec<_>>().join(" ")) }
                }
            }
            @for r in &received {
                tr {
                    td { a href=(format!("/cases/{}", seg(&r.case_ref))) { (r.case_ref) } }
                    td { (t(lang, "received from")) " " (r.peer) } td { "-" } td { "-" } td { (thread_state(lang, r)) }
                }
            }
        }
        @if here.is_empty() && received.is_empty() { p { (t(lang, "No cases.")) } }
    };
    layout(lang, t(lang, "Cases"), body).into_response()
}

/// A referral's state as `CC: state`, `(overdue)` after it when past its response date (the
/// command line's `CC:state(overdue)` in words).
pub(super) fn thread_state(lang: Lang, r: &a::Thread) -> String {
    let overdue = if r.overdue {
        format!(" ({})", t(lang, "overdue"))
    } else {
        String::new()
    };
    format!("{}: {}{overdue}", r.peer, word(lang, &r.state))
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
        Err(f) => return failed(lang, t(lang, "Case"), f),
    };
    let timeline = ask(&app.session, api::CaseTimeline { id: id.clone() }).await;
    let log = access_log(&app.session, id).await;
    let body = html! {
        table { @for (k, x) in header_rows(lang, &v) { tr { th { (k) } td { (x) } } } }
        (sections(lang, &v.case))
        @if v.origin == "recorded here" {
            p { a href=(format!("/cases/{}/edit", seg(&v.id))) { (t(lang, "Edit the case")) } }
            (referrals_here(lang, &v))
            (super::thread::consent_form(lang, &v.id, &csrf))
        }
        h2 { (t(lang, "Timeline")) }
        @match &timeline {
            Ok(tl) => (timeline_table(lang, tl)),
            Err(f) => p.error { (f.line) },
        }
        @if let Some(log) = &log {
            h2 { (t(lang, "Access log")) }
            @match log {
                Ok(l) => (access_table(lang, l)),
                Err(f) => p.error { (f.line) },
            }
        }
    };
    layout(lang, &format!("{} {}", t(lang, "Case"), v.id), body).into_response()
}

/// The case page's header: the command line's rows (`render::case_header_rows`) with their
/// names in words; the origin, urgency, phases and states in words, other values as written.
fn header_rows(lang: Lang, v: &a::CaseShow) -> Vec<(String, String)> {
    let threads = match &v.thread {
        Some(th) => vec![th.clone()],
        None => v.referrals.clone(),
    };
    render::case_header_rows(v)
        .into_iter()
        .map(|(k, x)| {
            let x = match k {
                "origin" if v.origin == "recorded here" => format!(
                    "{}, {} {} {}",
                    word(lang, "recorded here"),
                    v.created.as_deref().unwrap_or("-"),
                    t(lang, "by"),
                    v.created_by.as_deref().unwrap_or("-")
                ),
                "origin" => x.replacen("received from", t(lang, "received from"), 1),
                "urgency" if x.starts_with("not ") => word(lang, &x),
                "urgency" => value(lang, trm_proto::template::REFERENCE_URGENCY, &x),
                "phase" if !threads.is_empty() => threads
                    .iter()
                    .map(|th| format!("{}: {}", th.peer, word(lang, &th.phase)))
                    .collect::<Vec<_>>()
                    .join("; "),
                "state" if !threads.is_empty() => threads
                    .iter()
                    .map(|th| thread_state(lang, th))
                    .collect::<Vec<_>>()
                    .join(" "),
                "response due" | "state" => word(lang, &x),
                "erased" => categories(lang, v.erased.as_deref().unwrap_or_default()),
                _ => x,
            };
            (word(lang, k), x)
        })
        .collect()
}

fn timeline_table(lang: Lang, tl: &a::Timeline) -> Markup {
    html! {
        table {
            tr {
                th { (t(lang, "time")) } th { (t(lang, "message")) } th { (t(lang, "way")) } th { (t(lang, "kind")) }
                th { (t(lang, "summary")) } th { (t(lang, "signature")) } th { (t(lang, "delivery")) }
            }
            @for m in &tl.messages {
                tr {
                    td { (m.created) }
                    td { a href=(format!("/messages/{}", seg(&m.id))) { (m.id) } }
                    td { (if m.direction == "sent" { "→ " } else { "← " }) (m.peer) }
                    td { (word(lang, &m.kind)) } td { (m.summary) } td { (word(lang, &m.verification.signature)) }
                    td { (word(lang, m.delivery.state())) }
                }
            }
        }
    }
}

/// A case recorded here: its referral state per partner, each linking to its referral page,
/// and a form to open the referral page for another partner (only a country code in the URL).
fn referrals_here(lang: Lang, v: &a::CaseShow) -> Markup {
    let action = format!("/cases/{}/referral", seg(&v.id));
    html! {
        h2 { (t(lang, "Referrals")) }
        @if v.referrals.is_empty() { p { (t(lang, "Not referred yet.")) } }
        table {
            @if !v.referrals.is_empty() {
                tr {
                    th { (t(lang, "partner")) } th { (t(lang, "state")) } th { (t(lang, "phase")) }
                    th { (t(lang, "response due")) } th { (t(lang, "institution")) }
                }
            }
            @for r in &v.referrals {
                tr {
                    td { a href=(format!("{action}/{}", seg(&r.peer))) { (r.peer) } }
                    td { (thread_state(lang, r)) } td { (word(lang, &r.phase)) } td { (r.response_due) }
                    td { (r.responsible_institution) }
                }
            }
        }
        form method="get" action=(action) {
            label { (t(lang, "Preview a referral to (country code)")) " " input type="text" name="to" size="2" maxlength="2" required; }
            button type="submit" { (t(lang, "Preview")) }
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

fn access_table(lang: Lang, l: &a::AccessLog) -> Markup {
    html! {
        table {
            tr {
                th { (t(lang, "time")) } th { (t(lang, "officer")) } th { (t(lang, "role")) }
                th { (t(lang, "call")) } th { (t(lang, "target")) } th { (t(lang, "result")) }
            }
            @for e in &l.entries {
                tr {
                    td { (e.time) } td { (e.officer) } td { (word(lang, &e.role)) }
                    td { (e.call) } td { (e.target) } td { (e.result) }
                }
            }
        }
    }
}
