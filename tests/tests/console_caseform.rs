//! The officer console's case form (issue 13), through a real node and console over HTTP:
//!
//! - `GET /cases/new` lists every field of this node's template (`case template --json`'s
//!   `fields`) with a bound label, one fieldset per section; a switched-off field is absent, a
//!   national extension present; the child section's details are hidden by CSS until "minor";
//! - POSTs without the CSRF token are refused (403) and nothing is recorded;
//! - a child case filled through the form is created (303 to its page, which shows it);
//! - a hand-made POST with a bad date and a choice out of list comes back 422 with each error
//!   right after its field and the other values kept; no case value is ever in a Location;
//! - the edit form is filled with the current version and saves a new one (`case update`);
//! - an information request received by Albania is answered from its message page (preview,
//!   then send with the asked-for fields); Italy's message shows it answered.

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::admin_ok as admin;
use trm_tests::console::{csrf_of, get, post, sign_in, Console, Reply};
use trm_tests::{wait_until, TestNode};

/// `application/x-www-form-urlencoded` of `pairs`.
fn encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A synthetic child case as the officer fills it in the form.
fn child_form(case_ref: &str) -> Vec<(&str, &str)> {
    vec![
        ("reference.case_ref", case_ref),
        ("reference.receiving_country", "AL"),
        ("reference.date", "2026-03-02"),
        ("reference.urgency", "urgent"),
        ("identity.family_name", "Testova"),
        ("identity.given_names", "Example-Person"),
        ("identity.nationalities", "AL"),
        ("child.minor", "yes"),
        ("child.unaccompanied", "yes"),
        ("child.guardian_appointed", "yes"),
        ("child.best_interests_status", "in_progress"),
        ("child.consent_for_child_by", "guardian"),
        ("exploitation.forms", "forced_begging"),
        ("exploitation.forms", "other"),
        ("consent.child.status", "given"),
        ("consent.child.by", "guardian"),
        ("ext.it.permit_office", "Synthetic Questura Office"),
        ("health.medical_needs", ""),
    ]
}

fn with_csrf<'a>(mut pairs: Vec<(&'a str, &'a str)>, csrf: &'a str) -> String {
    pairs.push(("csrf", csrf));
    encode(&pairs)
}

/// No Location header carries anything but a path of identifiers.
fn no_value_in_location(r: &Reply) {
    if let Some(l) = r.header("location") {
        for v in ["Testova", "Example", "Questura", "2026-", "guardian"] {
            assert!(!l.contains(v), "a case value in a Location: {l}");
        }
    }
}

/// The input with id `id` is followed by its error paragraph before any other field.
fn error_after(body: &str, id: &str) {
    let input = body
        .find(&format!("id=\"f-{id}\""))
        .unwrap_or_else(|| panic!("no input {id}: {body}"));
    let err = body
        .find(&format!("<p class=\"field-error\" id=\"err-{id}\">"))
        .unwrap_or_else(|| panic!("no error for {id}: {body}"));
    assert!(err > input, "{id}: the error comes after its input");
    assert!(
        !body[input + 5..err].contains("id=\"f-"),
        "{id}: the error is right after its own input"
    );
    assert!(
        body.contains(&format!("aria-describedby=\"err-{id}\"")),
        "{id}: the input names its error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_form_follows_the_template_creates_refuses_and_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    it.configure(|c| {
        c.template.disabled.push("health.disability".into());
        c.template
            .extensions
            .push(trm_node::base::config::ExtensionConfig {
                path: "ext.it.permit_office".into(),
                kind: "text".into(),
                category: "assistance".into(),
                help: "Office handling the special protection permit".into(),
            });
    });
    it.start().await;
    let olivia = tmp.path().join("olivia.cred");
    trm_tests::bins::enrol(
        &it.dir.join(OPERATOR_CRED),
        "Olivia Example",
        "officer",
        &olivia,
    )
    .await;

    let c = Console::start(&olivia, &[]).await;
    let cookie = sign_in(&c).await;
    let page = get(&c.addr, "/cases/new", Some(&cookie)).await;
    assert_eq!(page.status, 200, "{page:?}");
    let b = &page.body;
    // Every field of this node's template, with a bound label (or a labelled group).
    let tpl: Value =
        serde_json::from_str(&admin(&olivia, &["--json", "case", "template"]).await).unwrap();
    let fields = tpl["fields"].as_array().expect("the template's fields");
    assert!(fields.len() > 50, "{tpl}");
    for f in fields {
        let path = f["path"].as_str().unwrap();
        if path == "reference.minor" {
            // Derived by the node when it seals a referral: no input for it.
            assert!(!b.contains("name=\"reference.minor\""), "{b}");
            continue;
        }
        let id = format!("f-{}", path.replace('.', "-"));
        assert!(
            b.contains(&format!("id=\"{id}\"")),
            "{path} has its input: {b}"
        );
        let kind = f["kind"]["type"].as_str().unwrap();
        if !matches!(kind, "multi_choice" | "consent" | "records") {
            assert!(
                b.contains(&format!("<label for=\"{id}\">")),
                "{path} has its label"
            );
            assert!(
                b.contains(&format!("name=\"{path}\"")),
                "{path} is named by its path"
            );
        }
    }
    assert!(!b.contains("health.disability"), "switched off: absent");
    assert!(!fields.iter().any(|f| f["path"] == "health.disability"));
    assert!(
        b.contains("name=\"ext.it.permit_office\""),
        "the national extension"
    );
    assert!(
        b.contains("Office handling the special protection permit"),
        "its help"
    );
    assert!(b.contains("<fieldset id=\"section-child\">"), "{b}");
    assert!(b.contains("<fieldset id=\"section-ext\">"), "{b}");
    assert!(
        b.contains("<button type=\"submit\">Save the case</button>"),
        "{b}"
    );
    assert!(b.contains("maxlength=\"500\""), "text inputs are bounded");
    assert!(b.contains("type=\"date\""), "date pickers");
    assert!(!b.contains("tabindex"), "no tabindex: the natural order");
    assert!(!b.contains("<script"), "no script");
    let css = get(&c.addr, "/style.css", Some(&cookie)).await;
    assert!(css
        .body
        .contains("form:has([name=\"child.minor\"] option[value=yes]:checked)"));
    assert!(css.body.contains(":focus-visible"), "a visible focus");

    // CSRF: refused, nothing recorded.
    let csrf = csrf_of(&page);
    let r = post(&c, &cookie, "/cases/new", &encode(&child_form("IT-CF-0"))).await;
    assert_eq!(r.status, 403, "{r:?}");
    let wrong = "0".repeat(64);
    let r = post(
        &c,
        &cookie,
        "/cases/new",
        &with_csrf(child_form("IT-CF-0"), &wrong),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(!admin(&olivia, &["case", "list"]).await.contains("IT-CF-0"));

    // A child case through the form.
    let r = post(
        &c,
        &cookie,
        "/cases/new",
        &with_csrf(child_form("IT-CF-1"), &csrf),
    )
    .await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/cases/IT-CF-1"));
    no_value_in_location(&r);
    let shown = get(&c.addr, "/cases/IT-CF-1", Some(&cookie)).await;
    assert_eq!(shown.status, 200, "{shown:?}");
    for v in [
        "Testova",
        "forced begging",
        "Synthetic Questura Office",
        "in progress",
    ] {
        assert!(shown.body.contains(v), "{v}: {}", shown.body);
    }
    assert!(
        shown.body.contains("href=\"/cases/IT-CF-1/edit\""),
        "the edit link"
    );
    let doc: Value =
        serde_json::from_str(&admin(&olivia, &["--json", "case", "show", "IT-CF-1"]).await)
            .unwrap();
    assert_eq!(doc["case"]["child"]["minor"], Value::Bool(true));
    assert_eq!(
        doc["case"]["exploitation"]["forms"],
        serde_json::json!(["forced_begging", "other"])
    );
    assert_eq!(doc["case"]["consent"]["child"]["status"], "given");
    assert!(doc["case"]["health"].is_null(), "empty inputs are left out");

    // A hand-made POST: a bad date and a choice out of the list.
    let mut bad = child_form("IT-CF-2");
    bad[2] = ("reference.date", "2026-02-30");
    bad[3] = ("reference.urgency", "whenever");
    let r = post(&c, &cookie, "/cases/new", &with_csrf(bad, &csrf)).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.header("location").is_none());
    error_after(&r.body, "reference-date");
    error_after(&r.body, "reference-urgency");
    assert!(
        r.body.contains("The node refused the case"),
        "the whole refusal on top"
    );
    assert!(
        r.body.contains("value=\"Testova\""),
        "the other values kept"
    );
    assert!(
        r.body.contains("value=\"IT-CF-2\""),
        "the other values kept"
    );
    assert!(!admin(&olivia, &["case", "list"]).await.contains("IT-CF-2"));

    // Edit: the form holds the current version; saving makes a new one.
    let edit = get(&c.addr, "/cases/IT-CF-1/edit", Some(&cookie)).await;
    assert_eq!(edit.status, 200, "{edit:?}");
    assert!(edit.body.contains("value=\"Testova\""), "{}", edit.body);
    assert!(
        edit.body
            .contains("<option value=\"in_progress\" selected>"),
        "{}",
        edit.body
    );
    let mut changed = child_form("IT-CF-1");
    changed[10] = ("child.best_interests_status", "done");
    let r = post(&c, &cookie, "/cases/IT-CF-1/edit", &encode(&changed)).await;
    assert_eq!(r.status, 403, "edit: no CSRF");
    let r = post(
        &c,
        &cookie,
        "/cases/IT-CF-1/edit",
        &with_csrf(changed, &csrf),
    )
    .await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/cases/IT-CF-1"));
    let doc: Value =
        serde_json::from_str(&admin(&olivia, &["--json", "case", "show", "IT-CF-1"]).await)
            .unwrap();
    assert_eq!(doc["case"]["child"]["best_interests_status"], "done");
    assert_eq!(doc["version"]["cause"], "case update", "{doc}");
    assert_eq!(
        doc["version"]["changed"],
        serde_json::json!(["child.best_interests_status"])
    );
    // A refused edit: the same form with its error, nothing changed.
    let mut bad = child_form("IT-CF-1");
    bad[2] = ("reference.date", "2026-13-01");
    let r = post(&c, &cookie, "/cases/IT-CF-1/edit", &with_csrf(bad, &csrf)).await;
    assert_eq!(r.status, 422, "{r:?}");
    error_after(&r.body, "reference-date");
    drop(c);
    it.finish().await;
}

/// Italy asks Albania for fields; Albania's officer answers from the request's message page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_information_request_is_answered_from_its_message_page() {
    let p = trm_tests::officer_pair().await;
    let (olivia, otto) = (&p.olivia, &p.otto);
    let file = p.tmp.path().join("IT-CF-9.json");
    std::fs::write(&file, trm_tests::adult_case("IT-CF-9", None)).unwrap();
    admin(
        olivia,
        &["case", "create", "--file", &file.display().to_string()],
    )
    .await;
    let sent: Value = serde_json::from_str(
        &admin(
            olivia,
            &["--json", "referral", "send", "IT-CF-9", "--to", "AL"],
        )
        .await,
    )
    .unwrap();
    let referral = sent["message"].as_str().unwrap().to_string();
    assert!(
        wait_until(20, || p.it.delivered(&referral)).await,
        "referral delivered"
    );
    admin(
        otto,
        &[
            "referral",
            "accept",
            &referral,
            "--institution",
            "Synthetic Shelter Unit",
        ],
    )
    .await;
    let ask = [
        "--json",
        "info",
        "request",
        "IT-CF-9",
        "--to",
        "AL",
        "--fields",
        "assistance.services",
        "--categories",
        "return",
        "--purpose",
        "Synthetic purpose",
    ];
    let v: Value = serde_json::from_str(&admin(olivia, &ask).await).unwrap();
    let req = v["message"].as_str().unwrap().to_string();
    assert!(
        wait_until(20, || p.it.delivered(&req)).await,
        "request delivered"
    );

    let c = Console::start(otto, &[]).await;
    let cookie = sign_in(&c).await;
    let path = format!("/messages/{req}");
    let page = get(&c.addr, &path, Some(&cookie)).await;
    assert_eq!(page.status, 200, "{page:?}");
    let b = &page.body;
    assert!(b.contains("Answer this information request"), "{b}");
    assert!(
        b.contains(&format!("action=\"/messages/{req}/reply\"")),
        "{b}"
    );
    assert!(
        b.contains("name=\"assistance.services\""),
        "a field asked for: {b}"
    );
    assert!(
        b.contains("name=\"return.wish\""),
        "a field of a category asked for: {b}"
    );
    assert!(
        !b.contains("name=\"identity.family_name\""),
        "nothing else: {b}"
    );
    let csrf = csrf_of(&page);
    let reply = |action: &'static str| {
        vec![
            ("phase", "first_assistance"),
            ("status", "Synthetic status"),
            ("date", "2026-03-10"),
            ("return.wish", "undecided"),
            ("action", action),
        ]
    };
    let reply_path = format!("{path}/reply");
    let r = post(&c, &cookie, &reply_path, &encode(&reply("send"))).await;
    assert_eq!(r.status, 403, "no CSRF: {r:?}");
    let r = post(
        &c,
        &cookie,
        &reply_path,
        &with_csrf(reply("preview"), &csrf),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("nothing sent"), "{}", r.body);
    assert!(
        r.body.contains("<option value=\"undecided\" selected>"),
        "kept: {}",
        r.body
    );
    let r = post(&c, &cookie, &reply_path, &with_csrf(reply("send"), &csrf)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("Answer sent"), "{}", r.body);
    let after = get(&c.addr, &path, Some(&cookie)).await;
    assert!(
        !after.body.contains("Answer this information request"),
        "answered: {}",
        after.body
    );

    let answered = || async {
        let v: Value =
            serde_json::from_str(&admin(olivia, &["--json", "message", "show", &req]).await)
                .unwrap();
        v["answered_by"].as_array().is_some_and(|a| !a.is_empty())
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut ok = false;
    while !ok && tokio::time::Instant::now() < deadline {
        ok = answered().await;
        if !ok {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert!(ok, "Italy's request shows answered");
    let v: Value =
        serde_json::from_str(&admin(olivia, &["--json", "message", "show", &req]).await).unwrap();
    let fid = v["answered_by"][0].as_str().unwrap().to_string();
    let answer: Value =
        serde_json::from_str(&admin(olivia, &["--json", "message", "show", &fid]).await).unwrap();
    assert_eq!(answer["in_reply_to"], req.as_str(), "{answer}");
    assert_eq!(
        answer["fields"]["return"]["wish"], "undecided",
        "the field filled in the form: {answer}"
    );
    drop(c);
    p.it.finish().await;
    p.al.finish().await;
}
