//! The case form (issue 13): new and edit, generated from this node's template (`case
//! template`'s `fields`: core fields minus the switched-off ones, then the national
//! extensions), one fieldset per section. Saving builds the case document from the form and
//! calls `case create` or `case update`; a refusal shows the same form again with what the
//! officer entered (from the POST body, never a URL) and the node's per-field errors next to
//! their fields. See docs/CONSOLE.md "The case form".

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde_json::{Map, Value};
use trm_admin_api::answers::{FieldKind, TemplateField};
use trm_proto::admin as api;
use trm_proto::template::{MAX_LONG_TEXT_CHARS, MAX_TEXT_CHARS};

use super::guard::Csrf;
use super::i18n::{label, t, value, Lang};
use super::pages::{ask, failed, layout, refusal, seg, App, Failed};

pub(crate) mod answer;

/// The form's additions to the style sheet: the child section's details appear when
/// `child.minor` is "yes" (CSS `:has()`, no script; shown anyway when they hold a value or an
/// error), errors next to their fields, a visible keyboard focus.
pub(crate) const STYLE: &str = "#section-child .child-rest{display:none}\
form:has([name=\"child.minor\"] option[value=yes]:checked) #section-child .child-rest,\
#section-child .child-rest.open{display:block}\
.field-error{color:#b00;margin:.1em 0 .6em}.help{color:#555;font-size:.9em;margin:0 0 .2em}\
:focus-visible{outline:3px solid #05f;outline-offset:2px}\
textarea{width:40em;height:4em}";

/// The values of a form by input name (several for a multi-choice).
pub(crate) type Values = HashMap<String, Vec<String>>;

/// Per-field errors by input name or field path; the rest (no field in the form) at the top.
#[derive(Default)]
pub(crate) struct Errors {
    pub(crate) by_field: HashMap<String, Vec<String>>,
    pub(crate) whole: Option<String>,
}

/// `f-` + the name with dots as `-` (the input's id).
pub(crate) fn field_id(name: &str) -> String {
    format!("f-{}", name.replace('.', "-"))
}

fn err_id(name: &str) -> String {
    format!("err-{}", name.replace('.', "-"))
}

/// The template's fields an officer fills in, in template order: all but `reference.minor`,
/// which the node derives from `child.minor` and the date of birth when it seals a referral
/// (the form keeps a stored value as it is, like anything else it does not show).
pub(crate) async fn template_fields(app: &App) -> Result<Vec<TemplateField>, Failed> {
    ask(&app.session, api::CaseTemplate {}).await.map(|t| {
        t.fields
            .into_iter()
            .filter(|f| f.path != trm_proto::template::REFERENCE_MINOR)
            .collect()
    })
}

/// The POST body as values by name (empty values dropped; the CSRF token and the buttons
/// are not values).
pub(crate) fn values_of(pairs: Vec<(String, String)>) -> Values {
    let mut v = Values::new();
    for (k, x) in pairs {
        if x.trim().is_empty() || matches!(k.as_str(), "csrf" | "action") {
            continue;
        }
        v.entry(k).or_default().push(x);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// From a case document to form values, and back
// ---------------------------------------------------------------------------------------------

/// Where a field lives in a case document: `["identity", "sex"]`, `["ext", "it", "x"]`.
fn doc_path(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

fn get_in<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    doc_path(path)
        .into_iter()
        .try_fold(doc, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

fn set_in(doc: &mut Value, path: &str, value: Option<Value>) {
    let keys = doc_path(path);
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut at = doc;
    for k in parents {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = at
            .as_object_mut()
            .map(|m| m.entry(k.to_string()).or_insert(Value::Object(Map::new())))
            .expect("an object");
    }
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    if let Some(m) = at.as_object_mut() {
        match value {
            Some(v) => {
                m.insert(last.to_string(), v);
            }
            None => {
                m.remove(*last);
            }
        }
    }
}

/// A scalar value as the form shows it.
fn shown(kind: &FieldKind, v: &Value) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        other => other.to_string(),
    };
    match (kind, v) {
        (FieldKind::MultiChoice { .. }, Value::Array(a)) => a.iter().map(text).collect(),
        (FieldKind::TextList, Value::Array(a)) => {
            vec![a.iter().map(text).collect::<Vec<_>>().join("\n")]
        }
        (FieldKind::CountryList, Value::Array(a)) => {
            vec![a.iter().map(text).collect::<Vec<_>>().join(", ")]
        }
        _ => vec![text(v)],
    }
}

/// A case document's values for the form's inputs.
pub(crate) fn values_from_doc(fields: &[TemplateField], doc: &Value) -> Values {
    let mut out = Values::new();
    for f in fields {
        let Some(v) = get_in(doc, &f.path) else {
            continue;
        };
        match &f.kind {
            FieldKind::Records { .. } => {}
            FieldKind::Consent { fields: subs } => {
                for s in subs {
                    if let Some(x) = v.get(&s.name).filter(|x| !x.is_null()) {
                        out.insert(format!("{}.{}", f.path, s.name), shown(&s.kind, x));
                    }
                }
            }
            k => {
                out.insert(f.path.clone(), shown(k, v));
            }
        }
    }
    out
}

/// One input's value(s) as the kind's JSON value; a value the kind cannot read is passed on
/// as text so that the node refuses it with its own error.
fn typed(kind: &FieldKind, raw: &[String]) -> Option<Value> {
    let first = raw.first()?;
    let v = match kind {
        FieldKind::Bool => match first.as_str() {
            "yes" => Value::Bool(true),
            "no" => Value::Bool(false),
            other => Value::String(other.into()),
        },
        FieldKind::Integer | FieldKind::Year => first
            .trim()
            .parse::<i64>()
            .map_or_else(|_| Value::String(first.clone()), Value::from),
        FieldKind::MultiChoice { .. } => raw.iter().map(|s| Value::String(s.clone())).collect(),
        FieldKind::TextList => list(first, '\n')?,
        FieldKind::CountryList => list(first, ',')?,
        FieldKind::LongText => Value::String(first.replace("\r\n", "\n")),
        _ => Value::String(first.clone()),
    };
    Some(v)
}

/// A list typed in one input, one entry per line or comma separated (blank entries dropped).
fn list(text: &str, sep: char) -> Option<Value> {
    let items: Vec<Value> = text
        .split(sep)
        .map(|s| s.trim_end_matches('\r').trim())
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.into()))
        .collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

/// A field's value from the form: `None` when left empty.
fn field_value(f: &TemplateField, values: &Values) -> Option<Value> {
    match &f.kind {
        FieldKind::Consent { fields: subs } => {
            let m: Map<String, Value> = subs
                .iter()
                .filter_map(|s| {
                    let raw = values.get(&format!("{}.{}", f.path, s.name))?;
                    typed(&s.kind, raw).map(|v| (s.name.clone(), v))
                })
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        k => values.get(&f.path).and_then(|raw| typed(k, raw)),
    }
}

/// The case document: `base` (the current version when editing, else empty) with every
/// field of the form set from `values` or removed when left empty. Records (not in the form)
/// and anything else in `base` stay as they are.
pub(crate) fn build_doc(fields: &[TemplateField], values: &Values, base: Value) -> Value {
    let mut doc = if base.is_object() {
        base
    } else {
        Value::Object(Map::new())
    };
    for f in fields {
        if matches!(f.kind, FieldKind::Records { .. }) {
            continue;
        }
        set_in(&mut doc, &f.path, field_value(f, values));
    }
    // Sections (and extension namespaces) left empty are left out.
    if let Some(m) = doc.as_object_mut() {
        if let Some(Value::Object(ext)) = m.get_mut("ext") {
            ext.retain(|_, v| v.as_object().is_none_or(|o| !o.is_empty()));
        }
        m.retain(|_, v| v.as_object().is_none_or(|o| !o.is_empty()));
    }
    doc
}

// ---------------------------------------------------------------------------------------------
// The node's refusal, field by field
// ---------------------------------------------------------------------------------------------

/// The node's refusal split onto the form: `path: reason` lines go to the longest input name
/// or field path that is a prefix of their path (`exploitation.forms[2]` →
/// `exploitation.forms`); the whole refusal at the top.
pub(crate) fn errors_of(fields: &[TemplateField], refusal: &str) -> Errors {
    let mut names: Vec<String> = fields.iter().map(|f| f.path.clone()).collect();
    for f in fields {
        if let FieldKind::Consent { fields: subs } = &f.kind {
            names.extend(subs.iter().map(|s| format!("{}.{}", f.path, s.name)));
        }
    }
    let body = refusal.strip_prefix("case refused: ").unwrap_or(refusal);
    let mut e = Errors {
        whole: Some(refusal.to_string()),
        ..Errors::default()
    };
    for line in error_lines_of(body) {
        let Some((path, reason)) = line.split_once(": ") else {
            continue;
        };
        let path = path.split('[').next().unwrap_or(path);
        if let Some(name) = anchor(&names, path) {
            e.by_field.entry(name).or_default().push(reason.to_string());
        }
    }
    e
}

/// The node's `path: reason` errors: one per line, or joined with `; ` on one line (a reason
/// may itself hold `; `: a piece not starting with `path: ` belongs to the one before).
fn error_lines_of(body: &str) -> Vec<String> {
    let starts_error = |p: &str| {
        p.split_once(": ").is_some_and(|(path, _)| {
            !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]()\"-".contains(c))
        })
    };
    let mut out: Vec<String> = Vec::new();
    for piece in body.lines().flat_map(|l| l.split("; ")) {
        match out.last_mut() {
            Some(last) if !starts_error(piece) => {
                last.push_str("; ");
                last.push_str(piece);
            }
            _ => out.push(piece.to_string()),
        }
    }
    out
}

/// The longest of `names` equal to `path` or to one of its dotted prefixes.
fn anchor(names: &[String], path: &str) -> Option<String> {
    let mut p = path;
    loop {
        if names.iter().any(|n| n == p) {
            return Some(p.to_string());
        }
        p = p.rsplit_once('.')?.0;
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// What one input needs.
struct Input<'a> {
    name: &'a str,
    kind: &'a FieldKind,
    values: &'a [String],
    errors: Option<&'a Vec<String>>,
}

fn described(i: &Input) -> Option<String> {
    i.errors.map(|_| err_id(i.name))
}

fn error_lines(name: &str, errors: Option<&Vec<String>>) -> Markup {
    html! {
        @if let Some(list) = errors {
            p.field-error id=(err_id(name)) { (list.join("; ")) }
        }
    }
}

/// The input for a scalar kind (a multi-choice is a group: [`checkboxes`]).
fn input(lang: Lang, i: &Input) -> Markup {
    let id = field_id(i.name);
    let v = i.values.first().map(String::as_str).unwrap_or("");
    let desc = described(i);
    html! {
        @match i.kind {
            FieldKind::LongText | FieldKind::TextList => {
                textarea id=(id) name=(i.name) maxlength=(MAX_LONG_TEXT_CHARS) aria-describedby=[desc] { (v) }
            }
            FieldKind::Date => input type="date" id=(id) name=(i.name) value=(v) aria-describedby=[desc];
            FieldKind::Integer | FieldKind::Year => input type="number" id=(id) name=(i.name) value=(v) aria-describedby=[desc];
            FieldKind::Bool => select id=(id) name=(i.name) aria-describedby=[desc] {
                option value="" selected[v.is_empty()] { (t(lang, "not set")) }
                option value="yes" selected[v == "yes"] { (t(lang, "yes")) }
                option value="no" selected[v == "no"] { (t(lang, "no")) }
            },
            FieldKind::Choice { values } => select id=(id) name=(i.name) aria-describedby=[desc] {
                option value="" selected[v.is_empty()] { "—" }
                @for x in values { option value=(x) selected[v == x] { (value(lang, i.name, x)) } }
                // A value outside the list (a refused one) stays visible and selected.
                @if !v.is_empty() && !values.iter().any(|x| x == v) { option value=(v) selected { (v) } }
            },
            FieldKind::CountryCode => input type="text" id=(id) name=(i.name) value=(v) size="2" maxlength="2" aria-describedby=[desc];
            _ => input type="text" id=(id) name=(i.name) value=(v) maxlength=(MAX_TEXT_CHARS) aria-describedby=[desc];
        }
    }
}

/// A multi-choice: one checkbox per allowed value, in a group labelled by the field.
fn checkboxes(lang: Lang, legend: &str, help: &str, i: &Input, values: &[String]) -> Markup {
    html! {
        fieldset.group id=(field_id(i.name)) aria-describedby=[described(i)] {
            legend { (legend) }
            p.help { (help) }
            @for x in values {
                @let id = format!("{}--{}", field_id(i.name), x);
                label for=(id) {
                    input type="checkbox" id=(id) name=(i.name) value=(x) checked[i.values.iter().any(|v| v == x)];
                    " " (value(lang, i.name, x))
                }
            }
        }
        (error_lines(i.name, i.errors))
    }
}

/// One field of the template: its label, help, input(s) and errors.
fn field(lang: Lang, f: &TemplateField, values: &Values, errors: &Errors) -> Markup {
    let none = Vec::new();
    let me = Input {
        name: &f.path,
        kind: &f.kind,
        values: values.get(&f.path).unwrap_or(&none),
        errors: errors.by_field.get(&f.path),
    };
    match &f.kind {
        FieldKind::MultiChoice { values: allowed } => {
            checkboxes(lang, &label(lang, &f.path), &f.help, &me, allowed)
        }
        FieldKind::Consent { fields: subs } => html! {
            fieldset.group id=(field_id(&f.path)) aria-describedby=[described(&me)] {
                legend { (label(lang, &f.path)) }
                p.help { (f.help) }
                @for s in subs {
                    @let name = format!("{}.{}", f.path, s.name);
                    @let sub = Input { name: &name, kind: &s.kind, values: values.get(&name).unwrap_or(&none), errors: errors.by_field.get(&name) };
                    label for=(field_id(&name)) { (label(lang, &name)) }
                    (input(lang, &sub))
                    (error_lines(&name, sub.errors))
                }
            }
            (error_lines(&f.path, me.errors))
        },
        FieldKind::Records { .. } => html! {
            div.records id=(field_id(&f.path)) aria-describedby=[described(&me)] {
                strong { (label(lang, &f.path)) }
                p.help { (f.help) }
                p { (t(lang, "A list of records: recorded with the command line (trm-admin case update --file); this form keeps them as they are.")) }
            }
            (error_lines(&f.path, me.errors))
        },
        _ => html! {
            label for=(field_id(&f.path)) { (label(lang, &f.path)) }
            p.help { (f.help) }
            (input(lang, &me))
            (error_lines(&f.path, me.errors))
        },
    }
}

/// The fields grouped by section, in template order.
fn by_section(fields: &[TemplateField]) -> Vec<(&str, Vec<&TemplateField>)> {
    let mut out: Vec<(&str, Vec<&TemplateField>)> = Vec::new();
    for f in fields {
        match out.last_mut() {
            Some((s, list)) if *s == f.section => list.push(f),
            _ => out.push((&f.section, vec![f])),
        }
    }
    out
}

/// The section's legend: its label, or the national extensions' heading.
fn section_label(lang: Lang, section: &str) -> String {
    if section == trm_proto::template::EXT_SECTION {
        t(lang, "Other fields (national extensions)").to_string()
    } else {
        label(lang, section)
    }
}

/// One fieldset per section; in the child section every field but `child.minor` is in a part
/// shown only when "minor" is yes (or when it holds a value or an error).
pub(crate) fn sections(
    lang: Lang,
    fields: &[TemplateField],
    values: &Values,
    errors: &Errors,
) -> Markup {
    html! {
        @for (section, list) in by_section(fields) {
            fieldset id=(format!("section-{section}")) {
                legend { (section_label(lang, section)) }
                @if section == "child" {
                    @for f in list.iter().filter(|f| f.path == "child.minor") { (field(lang, f, values, errors)) }
                    @let rest: Vec<_> = list.iter().filter(|f| f.path != "child.minor").collect();
                    @let open = rest.iter().any(|f| values.keys().chain(errors.by_field.keys()).any(|k| k.starts_with(&f.path)));
                    div class=(if open { "child-rest open" } else { "child-rest" }) {
                        @for f in rest { (field(lang, f, values, errors)) }
                    }
                } @else {
                    @for f in list { (field(lang, f, values, errors)) }
                }
            }
        }
    }
}

/// The whole case form.
fn case_form(
    lang: Lang,
    action: &str,
    csrf: &Csrf,
    fields: &[TemplateField],
    values: &Values,
    errors: &Errors,
) -> Markup {
    html! {
        @if let Some(w) = &errors.whole {
            div.error role="alert" {
                p { (t(lang, "The node refused the case:")) }
                pre { (w) }
            }
        }
        form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf.0);
            (sections(lang, fields, values, errors))
            button type="submit" { (t(lang, "Save the case")) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------

/// `GET /cases/new`: the empty form.
pub(crate) async fn new_page(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
) -> Response {
    let title = t(lang, "New case");
    match template_fields(&app).await {
        Ok(fields) => {
            let body = case_form(
                lang,
                "/cases/new",
                &csrf,
                &fields,
                &Values::new(),
                &Errors::default(),
            );
            layout(lang, title, body).into_response()
        }
        Err(f) => failed(lang, title, f),
    }
}

/// The form again after a refusal: the officer's values kept, the errors by their fields.
fn refused_page(
    lang: Lang,
    title: &str,
    action: &str,
    csrf: &Csrf,
    fields: &[TemplateField],
    values: &Values,
    f: Failed,
) -> Response {
    let errors = errors_of(fields, &f.line);
    let body = case_form(lang, action, csrf, fields, values, &errors);
    (f.status, layout(lang, title, body)).into_response()
}

fn see_case(id: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, format!("/cases/{}", seg(id)))],
    )
        .into_response()
}

/// `POST /cases/new`: `case create` with the document built from the form; 303 to the case.
pub(crate) async fn new_post(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let title = t(lang, "New case");
    let fields = match template_fields(&app).await {
        Ok(f) => f,
        Err(f) => return failed(lang, title, f),
    };
    let values = values_of(pairs);
    let doc = build_doc(&fields, &values, Value::Null);
    let request = api::CaseCreate {
        json: doc.to_string(),
    };
    match ask(&app.session, request).await {
        Ok(c) => see_case(&c.id),
        Err(f) => refused_page(lang, title, "/cases/new", &csrf, &fields, &values, f),
    }
}

/// The current version of a case recorded here, or the page saying why not.
async fn own_case(lang: Lang, app: &App, id: &str) -> Result<Value, Response> {
    let title = t(lang, "Edit the case");
    match ask(&app.session, api::CaseShow { id: id.to_string() }).await {
        Ok(v) if v.origin == "recorded here" => Ok(v.case),
        Ok(_) => Err(refusal(
            lang,
            StatusCode::CONFLICT,
            t(lang, "Only a case recorded here can be edited."),
        )),
        Err(f) => Err(failed(lang, title, f)),
    }
}

/// `GET /cases/ID/edit`: the form filled with the current version.
pub(crate) async fn edit_page(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
) -> Response {
    let title = t(lang, "Edit the case");
    let doc = match own_case(lang, &app, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match template_fields(&app).await {
        Ok(fields) => {
            let values = values_from_doc(&fields, &doc);
            let action = format!("/cases/{}/edit", seg(&id));
            let body = case_form(lang, &action, &csrf, &fields, &values, &Errors::default());
            layout(lang, &format!("{title} {id}"), body).into_response()
        }
        Err(f) => failed(lang, title, f),
    }
}

/// `POST /cases/ID/edit`: `case update` with the current version changed by the form (what
/// the form does not show, records included, stays as it is); 303 to the case.
pub(crate) async fn edit_post(
    lang: Lang,
    State(app): State<App>,
    Extension(csrf): Extension<Csrf>,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let title = t(lang, "Edit the case");
    let current = match own_case(lang, &app, &id).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let fields = match template_fields(&app).await {
        Ok(f) => f,
        Err(f) => return failed(lang, title, f),
    };
    let values = values_of(pairs);
    let doc = build_doc(&fields, &values, current);
    let request = api::CaseUpdate {
        id: id.clone(),
        json: doc.to_string(),
    };
    match ask(&app.session, request).await {
        Ok(u) => see_case(&u.id),
        Err(f) => {
            let action = format!("/cases/{}/edit", seg(&id));
            refused_page(lang, title, &action, &csrf, &fields, &values, f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, kind: FieldKind) -> TemplateField {
        TemplateField {
            category: trm_admin_api::answers::FieldCategory::Reference,
            extension: path.starts_with("ext."),
            help: String::new(),
            kind,
            path: path.into(),
            personal: false,
            section: path.split('.').next().unwrap().into(),
        }
    }

    fn fields() -> Vec<TemplateField> {
        let consent = FieldKind::of(&trm_proto::template::Kind::Consent);
        vec![
            f("reference.case_ref", FieldKind::Text),
            f("child.minor", FieldKind::Bool),
            f("identity.estimated_birth_year", FieldKind::Year),
            f("identity.nationalities", FieldKind::CountryList),
            f("identity.aliases", FieldKind::TextList),
            f(
                "exploitation.forms",
                FieldKind::MultiChoice {
                    values: vec!["labour".into(), "other".into()],
                },
            ),
            f("health.medical_needs", FieldKind::LongText),
            f("consent.child", consent),
            f("ext.it.permit", FieldKind::Text),
        ]
    }

    #[test]
    fn the_form_becomes_a_case_document_of_the_right_kinds() {
        let pairs = [
            ("csrf", "x"),
            ("reference.case_ref", "IT-1"),
            ("child.minor", "yes"),
            ("identity.estimated_birth_year", "2010"),
            ("identity.nationalities", "AL, XK,"),
            ("identity.aliases", "A\r\n\r\nB"),
            ("exploitation.forms", "labour"),
            ("exploitation.forms", "other"),
            ("health.medical_needs", "a\r\nb"),
            ("consent.child.status", "given"),
            ("consent.child.date", ""),
            ("ext.it.permit", "P-1"),
        ];
        let values = values_of(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        );
        let doc = build_doc(&fields(), &values, Value::Null);
        let want = serde_json::json!({
            "reference": {"case_ref": "IT-1"},
            "child": {"minor": true},
            "identity": {"estimated_birth_year": 2010, "nationalities": ["AL", "XK"], "aliases": ["A", "B"]},
            "exploitation": {"forms": ["labour", "other"]},
            "health": {"medical_needs": "a\nb"},
            "consent": {"child": {"status": "given"}},
            "ext": {"it": {"permit": "P-1"}},
        });
        assert_eq!(doc, want);
        // And back: the document fills the same form.
        let again = values_from_doc(&fields(), &doc);
        assert_eq!(again["child.minor"], ["yes"]);
        assert_eq!(again["identity.nationalities"], ["AL, XK"]);
        assert_eq!(again["consent.child.status"], ["given"]);
        assert_eq!(again["exploitation.forms"], ["labour", "other"]);
    }

    #[test]
    fn an_edit_keeps_what_the_form_does_not_show_and_drops_what_was_emptied() {
        let base = serde_json::json!({
            "reference": {"case_ref": "IT-1"},
            "identity": {"identity_documents": [{"type": "passport"}], "aliases": ["A"]},
        });
        let values = values_of(vec![("reference.case_ref".into(), "IT-1".into())]);
        let doc = build_doc(&fields(), &values, base);
        assert_eq!(
            doc,
            serde_json::json!({"reference": {"case_ref": "IT-1"}, "identity": {"identity_documents": [{"type": "passport"}]}})
        );
    }

    #[test]
    fn refusals_go_to_their_fields() {
        let text = "case refused: identity.estimated_birth_year: expected a year; \
                    exploitation.forms[1]: expected one of: labour, other\n\
                    consent.child.status: required; see the form\nreference.minor: derived\n(document): bad";
        let e = errors_of(&fields(), text);
        assert_eq!(
            e.by_field["identity.estimated_birth_year"],
            ["expected a year"]
        );
        assert_eq!(
            e.by_field["exploitation.forms"],
            ["expected one of: labour, other"]
        );
        assert_eq!(
            e.by_field["consent.child.status"],
            ["required; see the form"]
        );
        assert_eq!(e.by_field.len(), 3, "the others stay at the top");
        assert_eq!(e.whole.as_deref(), Some(text));
    }
}
