//! The officer console in a real browser (issue 13, "Tests in a real browser"): Debian's
//! Chromium, headless, through chromedriver (tests/src/browser.rs), against real nodes and real
//! `trm-admin console` processes. Fails (never skips) without `chromium` and `chromedriver`.
//!
//! - the scenario: Italy's officer records the child case in the case form (one field error
//!   shown next to its field and fixed in the page), previews the referral to Albania
//!   (released and withheld rows), a supervisor approves the child category in her own
//!   browser, the officer sends; Albania's officer sees it first in the work queue (emergency,
//!   child), opens it, sees the badge "verified", accepts; Italy's case page shows the
//!   acceptance in its timeline (and reads in French); the officer refers the case to France
//!   too, and France's console shows it flagged as a minor with no personal field; a
//!   supervisor's statistics and directory, an auditor's audit page;
//! - keyboard only: the case form from "New case" to "Save the case", and from the work queue
//!   to the acceptance, with Tab and Enter (and typing), the focus reaching every control of
//!   each form in order.
//!
//! Every page visited is saved as a PNG (target/console-screens/; docs/console/ with
//! `TRM_SCREENSHOTS_RECORD=1`).

use std::path::{Path, PathBuf};

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::admin_ok as admin;
use trm_tests::browser::{Browser, Driver, ENTER, TAB};
use trm_tests::console::Console;
use trm_tests::{date_in_days, pin_all, TestNode};

/// What France accepts: no personal category at all.
const NON_PERSONAL: [&str; 6] = [
    "reference",
    "exploitation",
    "assistance",
    "risk",
    "return",
    "proceedings",
];

/// Personal values of the example child case: none may reach France's page.
const PERSONAL: [&str; 6] = [
    "Example-Child",
    "Testa",
    "2010-04-09",
    "Sampleville",
    "guardianship-desk@example.org",
    "Example Guardianship Service",
];

/// The case of the scenario.
const CASE: &str = "IT-B-1";

/// The nodes and the people of the scenario.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    nodes: Vec<TestNode>,
    olivia: PathBuf,
    sue: PathBuf,
    otto: PathBuf,
    felix: PathBuf,
    ada: PathBuf,
}

/// Italy (Olivia, officer; Sue, supervisor), Albania (Otto) and France (Felix, accepting no
/// personal category), started and pinned to each other; Italy sends every category to
/// Albania and its default profile (no personal category) to France.
async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let mut it = TestNode::init(&root, "IT");
    let mut al = TestNode::init(&root, "AL");
    let mut fr = TestNode::init(&root, "FR");
    it.configure(|c| {
        c.outgoing.insert("AL".into(), trm_tests::all_categories());
    });
    fr.configure(|c| c.acceptance = NON_PERSONAL.iter().map(|s| s.to_string()).collect());
    for n in [&mut it, &mut al, &mut fr] {
        n.start().await;
    }
    pin_all(&[&it, &al, &fr]).await;
    let cred = |n: &str| root.join(format!("{n}.cred"));
    let (olivia, sue, otto, felix) = (cred("olivia"), cred("sue"), cred("otto"), cred("felix"));
    let ada = cred("ada");
    for (name, role, file, node) in [
        ("Olivia Example", "officer", &olivia, &it),
        ("Sue Example", "supervisor", &sue, &it),
        ("Otto Example", "officer", &otto, &al),
        ("Felix Example", "officer", &felix, &fr),
        ("Ada Example", "auditor", &ada, &it),
    ] {
        trm_tests::bins::enrol(&node.dir.join(OPERATOR_CRED), name, role, file).await;
    }
    World {
        _tmp: tmp,
        root,
        nodes: vec![it, al, fr],
        olivia,
        sue,
        otto,
        felix,
        ada,
    }
}

impl World {
    async fn finish(self) {
        for n in self.nodes {
            n.finish().await;
        }
    }
}

/// The Italian officer's emergency child case (the synthetic example, due in three days) as
/// a case document.
fn italian_child_case() -> Value {
    let mut v: Value = serde_json::from_str(&trm_tests::example("child-unaccompanied.json"))
        .expect("the example case");
    v["reference"]["case_ref"] = Value::String(CASE.into());
    v["reference"]["response_due"] = Value::String(date_in_days(3));
    v
}

/// The same case recorded with the command line (the keyboard test's referral).
async fn italian_case(root: &Path, cred: &Path) -> String {
    let file = trm_tests::write_case(root, CASE, &italian_child_case());
    admin(cred, &["case", "create", "--file", &file]).await;
    CASE.to_string()
}

/// Every scalar leaf of a case document with its path, in document order (comments, nulls
/// and lists of records left out: the form leaves records to the command line).
fn leaves(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter().filter(|(k, _)| !k.starts_with("//")) {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, x, out);
            }
        }
        Value::Null => {}
        Value::Array(items) if items.iter().any(Value::is_object) => {}
        x => out.push((prefix.to_string(), x.clone())),
    }
}

/// A value as a person enters it in the form: yes/no for a boolean; a list one entry per line
/// in a text area, comma separated in a line.
fn typed(v: &Value, sep: &str) -> String {
    match v {
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(sep),
        x => x.to_string(),
    }
}

/// Enters `v` into the form's control `name` as a person would: types into a text field or a
/// text area, picks a list's option, ticks each box of a multi-choice, types a date's digits
/// (month, day, year: the browser's en-US date field). False when the form has no such field.
async fn enter(b: &Browser<'_>, name: &str, v: &Value) -> bool {
    let kind = b.control_kind(name).await;
    let css = format!("[name=\"{name}\"]");
    match kind.as_str() {
        "" => return false,
        "select|select-one" => {
            let option = format!("{css} option[value=\"{}\"]", typed(v, ""));
            b.click(&b.find(&option).await).await;
        }
        "input|checkbox" => {
            for x in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                b.click(&b.find(&format!("{css}[value=\"{x}\"]")).await)
                    .await;
            }
        }
        "input|date" => {
            let iso = typed(v, "");
            let e = b.find(&css).await;
            let digits = format!("{}{}{}", &iso[5..7], &iso[8..10], &iso[..4]);
            b.type_into(&e, &digits).await;
            assert_eq!(b.value_of(&e).await, iso, "{name}: the date typed");
        }
        "textarea|textarea" => b.type_into(&b.find(&css).await, &typed(v, "\n")).await,
        _ => b.type_into(&b.find(&css).await, &typed(v, ", ")).await,
    }
    true
}

/// The Italian officer records the child case in the console's case form: "New case", every
/// field of the synthetic example entered as a person would, and the case reference typed in
/// lower case first: the node's error shows next to that field, every other value stays, she
/// fixes it in the page and saves.
async fn italian_case_in_the_form(b: &Browser<'_>) -> String {
    b.follow(&b.link("New case").await).await;
    assert_eq!(b.text("h1").await, "New case");
    let mut fields = Vec::new();
    leaves("", &italian_child_case(), &mut fields);
    // "Minor" first: the child section's other fields show once it is "yes".
    fields.sort_by_key(|(name, _)| name != "child.minor");
    let mut entered = 0;
    for (name, v) in &fields {
        let v = match name.as_str() {
            "reference.case_ref" => Value::String(CASE.to_lowercase()),
            _ => v.clone(),
        };
        entered += usize::from(enter(b, name, &v).await);
    }
    assert!(
        entered > 50,
        "only {entered} of {} fields in the form",
        fields.len()
    );
    b.screenshot("it-case-form").await;
    b.follow(&b.find("main form button[type=submit]").await)
        .await;

    let error = b.text("#err-reference-case_ref").await;
    assert!(
        error.contains("A-Z"),
        "the error next to the field: {error}"
    );
    let family = b.find("[name=\"identity.family_name\"]").await;
    assert_eq!(
        b.value_of(&family).await,
        "Example-Child",
        "values are kept"
    );
    let minor = b.find("[name=\"child.guardian_contact\"]").await;
    assert_eq!(b.value_of(&minor).await, "guardianship-desk@example.org");
    b.screenshot_at("it-case-form-error", "#f-reference-case_ref")
        .await;

    let case_ref = b.find("#f-reference-case_ref").await;
    b.clear(&case_ref).await;
    b.type_into(&case_ref, CASE).await;
    b.follow(&b.find("main form button[type=submit]").await)
        .await;
    assert_eq!(
        b.text("h1").await,
        format!("Case {CASE}"),
        "{}",
        b.page().await
    );
    CASE.to_string()
}

/// A routine adult case referred to Albania first (so that the child case has to come first in
/// Albania's queue by its flags, not by its order).
async fn earlier_adult_referral(root: &Path, cred: &Path) {
    let mut v: Value = serde_json::from_str(&trm_tests::adult_case("IT-B-0", None)).unwrap();
    v["reference"]["response_due"] = Value::String(date_in_days(10));
    let file = trm_tests::write_case(root, "IT-B-0", &v);
    admin(cred, &["case", "create", "--file", &file]).await;
    admin(cred, &["referral", "send", "IT-B-0", "--to", "AL"]).await;
}

/// Opens the console's printed link in `b`: the token is spent and the work queue shows.
async fn sign_in(b: &Browser<'_>, c: &Console) {
    b.goto(&c.link).await;
    let title = b.text("h1").await;
    assert!(title.starts_with("Work queue"), "{title}");
    assert!(
        !b.url().await.contains("token"),
        "the token left the address bar"
    );
}

/// Follows the navigation link "Cases", then the link `case` on the case list.
async fn open_case(b: &Browser<'_>, case: &str) {
    open_case_as(b, case, "Cases", "Case").await;
}

/// [`open_case`] in another language: its words for "Cases" (the link) and "Case" (the title).
async fn open_case_as(b: &Browser<'_>, case: &str, cases: &str, title: &str) {
    b.follow(&b.link(cases).await).await;
    b.follow(&b.link(case).await).await;
    assert_eq!(b.text("h1").await, format!("{title} {case}"));
}

/// On a case page: types `cc` into "preview a referral to" and submits; the referral page.
async fn preview_referral(b: &Browser<'_>, cc: &str) {
    let to = b.find("form[action$='/referral'] input[name=to]").await;
    b.type_into(&to, cc).await;
    b.follow(&b.find("form[action$='/referral'] button").await)
        .await;
    assert_eq!(
        b.text("h1").await,
        format!("Referral of case {CASE} → {cc}")
    );
}

/// The decisions column of the preview table: `(field, decision)` per row.
async fn preview_rows(b: &Browser<'_>) -> Vec<(String, String)> {
    // Each row: the field's label over its path (`code`), the category, the decision.
    let table = "main > table:first-of-type tr";
    let paths = b.texts(&format!("{table} td:first-child code")).await;
    let decisions = b.texts(&format!("{table} td:nth-child(3)")).await;
    assert_eq!(paths.len(), decisions.len(), "{}", b.page().await);
    paths.into_iter().zip(decisions).collect()
}

/// The decision on `field` in preview `rows`.
fn decision(rows: &[(String, String)], field: &str) -> String {
    rows.iter()
        .find(|(f, _)| f == field)
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("no row for {field}: {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_referral_goes_from_italy_to_albania_and_france_in_the_browser() {
    let driver = Driver::start().await;
    let w = world().await;
    earlier_adult_referral(&w.root, &w.olivia).await;
    let oc = Console::start(&w.olivia, &[]).await;
    let olivia = driver.browser("Olivia").await;
    sign_in(&olivia, &oc).await;
    olivia.screenshot("it-work-queue").await;
    let case = italian_case_in_the_form(&olivia).await;
    italy_previews(&olivia, &case).await;
    supervisor_approves(&driver, &w.sue, &case).await;
    italy_sends(&olivia).await;
    albania_accepts(&driver, &w.otto).await;
    italy_sees_the_acceptance(&olivia, &case).await;
    italy_refers_to_france(&olivia).await;
    drop(olivia);
    drop(oc);
    france_sees_a_minor_and_nothing_personal(&driver, &w.felix).await;
    supervisor_reads_statistics_and_directory(&driver, &w.sue).await;
    auditor_opens_the_audit_page(&driver, &w.ada).await;
    w.finish().await;
    drop(driver);
}

/// Italy: the officer finds the case in the list and previews the referral to Albania: the
/// child section is withheld until a supervisor approves it.
async fn italy_previews(olivia: &Browser<'_>, case: &str) {
    olivia.follow(&olivia.link("Cases").await).await;
    olivia.screenshot("it-cases").await;
    olivia.follow(&olivia.link(case).await).await;
    assert_eq!(olivia.text("h1").await, format!("Case {case}"));
    olivia.screenshot("it-case").await;
    preview_referral(olivia, "AL").await;
    let rows = preview_rows(olivia).await;
    assert_eq!(decision(&rows, "reference.urgency"), "released");
    assert_eq!(
        decision(&rows, "child.unaccompanied"),
        "withheld",
        "the child section waits for a supervisor"
    );
    olivia.screenshot("it-referral-preview").await;
}

/// A supervisor approves in her own console and browser every withheld category (the
/// identity, family, health and child sections, for the family assessment).
async fn supervisor_approves(driver: &Driver, cred: &Path, case: &str) {
    let sc = Console::start(cred, &[]).await;
    let sue = driver.browser("Sue").await;
    sign_in(&sue, &sc).await;
    open_case(&sue, case).await;
    preview_referral(&sue, "AL").await;
    let boxes = sue.all("input[name=category]").await;
    assert!(boxes.len() >= 4, "{}", sue.page().await);
    for b in &boxes {
        sue.click(b).await;
    }
    sue.screenshot_at("it-supervisor-approves", "form[action$='/approve']")
        .await;
    sue.follow(&sue.find("form[action$='/approve'] button").await)
        .await;
    assert_eq!(sue.text("h1").await, "Approved");
    assert!(sue.text("main").await.contains("Sue Example"));
}

/// The officer's page shows the approval (four eyes) and the new preview; she sends.
async fn italy_sends(olivia: &Browser<'_>) {
    olivia.reload().await;
    let approvals = olivia.text("main > table:nth-of-type(2)").await;
    assert!(approvals.contains("Sue Example"), "{approvals}");
    let rows = preview_rows(olivia).await;
    assert_eq!(decision(&rows, "child.unaccompanied"), "released");
    assert_eq!(decision(&rows, "identity.family_name"), "released");
    olivia
        .screenshot_at("it-referral-approved", "form[action$='/send']")
        .await;
    olivia
        .follow(&olivia.find("form[action$='/send'] button").await)
        .await;
    assert_eq!(olivia.text("h1").await, "Referral sent");
    assert!(olivia.text("main").await.contains("is in the outbox"));
    olivia.screenshot("it-referral-sent").await;
}

/// Albania: the child referral first in the work queue (emergency, child) ahead of the
/// earlier routine one; its message page verified; accepted with an institution.
async fn albania_accepts(driver: &Driver, cred: &Path) {
    let ac = Console::start(cred, &[]).await;
    let otto = driver.browser("Otto").await;
    sign_in(&otto, &ac).await;
    otto.wait_text("ol.queue", CASE, 30, true).await;
    let items = otto.texts("ol.queue > li").await;
    assert!(items.len() >= 2, "{items:?}");
    assert!(
        items[0].contains(CASE),
        "the child referral first: {items:?}"
    );
    assert!(
        items[0].contains("emergency") && items[0].contains("child"),
        "{items:?}"
    );
    assert!(items[1].contains("IT-B-0"), "{items:?}");
    otto.screenshot("al-work-queue").await;
    otto.follow(&otto.find("ol.queue > li:first-child a").await)
        .await;
    assert_eq!(otto.text(".badge").await, "verified");
    assert_eq!(otto.text("h1").await, "referral from IT");
    otto.screenshot("al-message").await;
    let institution = otto.find("input[name=institution]").await;
    otto.type_into(&institution, "Synthetic Child Protection Unit")
        .await;
    let focal = otto.find("input[name=focal_point]").await;
    otto.type_into(&focal, "child-desk").await;
    otto.screenshot_at("al-accept", "form[action$='/answer']")
        .await;
    let accept = "form input[value=accept] ~ fieldset button";
    otto.follow(&otto.find(accept).await).await;
    assert_eq!(otto.text("h1").await, "Answer sent");
    assert!(otto.text("main").await.contains("is in the outbox"));
    otto.screenshot("al-answer-sent").await;
}

/// Italy: the case page shows Albania's acceptance in the timeline.
async fn italy_sees_the_acceptance(olivia: &Browser<'_>, case: &str) {
    open_case(olivia, case).await;
    let timeline = olivia
        .wait_text("main > table:last-of-type", "acceptance", 30, true)
        .await;
    let row = timeline
        .lines()
        .find(|l| l.contains("acceptance"))
        .unwrap_or_default();
    assert!(row.contains("← AL"), "{timeline}");
    let referrals = olivia.text("main > table:nth-of-type(2)").await;
    assert!(referrals.contains("accepted"), "{referrals}");
    olivia
        .screenshot_at("it-case-accepted", "main > h2:last-of-type")
        .await;
    // The referral page to Albania, accepted: the follow-up and the thread's forms.
    olivia.follow(&olivia.link("AL").await).await;
    olivia
        .screenshot_at("it-follow-up", "form[action$='/followup']")
        .await;
    olivia.follow(&olivia.link("Inbox").await).await;
    olivia.screenshot("it-inbox").await;
    // The same case in French: labels and chosen values translated, free text as written.
    olivia.follow(&olivia.link("Français").await).await;
    open_case_as(olivia, case, "Dossiers", "Dossier").await;
    let page = olivia.text("main").await;
    assert!(page.contains("Nom de famille"), "{page}");
    assert!(page.contains("Example-Child"), "{page}");
    olivia.screenshot("it-case-fr").await;
    olivia.follow(&olivia.link("English").await).await;
    open_case(olivia, case).await;
}

/// The statistics and the directory, in a supervisor's console.
async fn supervisor_reads_statistics_and_directory(driver: &Driver, cred: &Path) {
    let sc = Console::start(cred, &[]).await;
    let sue = driver.browser("Sue").await;
    sign_in(&sue, &sc).await;
    sue.follow(&sue.link("Statistics").await).await;
    assert!(
        !sue.all("main svg").await.is_empty(),
        "{}",
        sue.page().await
    );
    sue.screenshot("it-stats").await;
    sue.follow(&sue.link("Directory").await).await;
    sue.screenshot("it-directory").await;
}

/// An auditor's console opens on the audit page: export and offline verification.
async fn auditor_opens_the_audit_page(driver: &Driver, cred: &Path) {
    let ac = Console::start(cred, &[]).await;
    let ada = driver.browser("Ada").await;
    ada.goto(&ac.link).await;
    assert_eq!(ada.text("h1").await, "Audit");
    ada.screenshot("it-audit").await;
}

/// The officer refers the case to France too: its profile withholds every personal section
/// (the child section included) and releases `reference.minor`.
async fn italy_refers_to_france(olivia: &Browser<'_>) {
    preview_referral(olivia, "FR").await;
    let rows = preview_rows(olivia).await;
    assert_eq!(decision(&rows, "identity.family_name"), "withheld");
    assert_eq!(decision(&rows, "child.minor"), "withheld");
    assert_eq!(decision(&rows, "reference.minor"), "released");
    olivia.screenshot("it-referral-preview-fr").await;
    olivia
        .follow(&olivia.find("form[action$='/send'] button").await)
        .await;
    assert_eq!(olivia.text("h1").await, "Referral sent");
}

/// France: the inbox flags the referral as a child's; its message page is verified, says
/// "Minor yes" and shows no personal section or value.
async fn france_sees_a_minor_and_nothing_personal(driver: &Driver, cred: &Path) {
    let fc = Console::start(cred, &[]).await;
    let felix = driver.browser("Felix").await;
    sign_in(&felix, &fc).await;
    felix.follow(&felix.link("Inbox").await).await;
    let table = felix.wait_text("main table", CASE, 30, true).await;
    let row = table
        .lines()
        .find(|l| l.contains(CASE))
        .expect("the referral's row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // message, from, kind, case, urgency, child, …
    assert_eq!(cells.get(4..6), Some(&["emergency", "yes"][..]), "{row}");
    felix.screenshot("fr-inbox").await;
    let id = felix
        .find("main table tr:nth-child(2) td:first-child a")
        .await;
    felix.follow(&id).await;
    assert_eq!(felix.text(".badge").await, "verified");
    let page = felix.text("main").await;
    assert!(
        page.lines().any(|l| l == "Minor yes"),
        "flagged as a minor: {page}"
    );
    for value in PERSONAL {
        assert!(!page.contains(value), "{value} reached France: {page}");
    }
    let sections = felix.texts("details summary").await;
    assert!(sections.iter().any(|s| s == "Reference"), "{sections:?}");
    for personal in ["Identity", "Family", "Health", "Child"] {
        assert!(
            !sections.iter().any(|s| s == personal),
            "{personal}: {sections:?}"
        );
    }
    felix
        .screenshot_at("fr-message", "main > h2:nth-of-type(2)")
        .await;
}

/// The controls a person can reach in the page's main form, in document order: shown (a
/// hidden part of the form is skipped by Tab too), not hidden inputs; described as
/// [`Browser::focused`] does.
async fn reachable_controls(b: &Browser<'_>) -> Vec<String> {
    let first = "main form:not([method=get]) [name]:not([type=hidden])";
    let all = b.form_controls(first).await;
    let js = format!(
        "const f = document.querySelector({}).form; \
         return Array.from(f.elements).filter(e => e.type !== 'hidden' && e.tagName !== 'FIELDSET') \
         .map(e => e.offsetParent !== null);",
        Value::String(first.into())
    );
    let shown = b.script(&js).await;
    let shown: Vec<bool> = shown
        .as_array()
        .map(|a| a.iter().map(|x| x.as_bool() == Some(true)).collect())
        .unwrap_or_default();
    assert_eq!(all.len(), shown.len());
    all.into_iter()
        .zip(shown)
        .filter_map(|(c, s)| s.then_some(c))
        .collect()
}

/// Keyboard only, the case form: from the work queue Tab reaches "New case", Enter opens
/// the form; Tab then goes through every shown control of the form in document order (the
/// child section stays out of the way until "minor" is yes); the officer types the case
/// reference and picks the urgency by typing its first letter on the way, and Enter on the
/// button "Save the case" records the case.
async fn the_case_form_by_keyboard(driver: &Driver, cred: &Path) {
    let oc = Console::start(cred, &[]).await;
    let olivia = driver.browser("Olivia").await;
    sign_in(&olivia, &oc).await;
    olivia.tab_to("a||New case", 30).await;
    olivia.keys_to_page(ENTER).await;
    assert_eq!(olivia.text("h1").await, "New case");
    let controls = reachable_controls(&olivia).await;
    assert!(controls.len() > 40, "{controls:?}");
    assert_eq!(
        controls.last().map(String::as_str),
        Some("button||Save the case")
    );
    olivia.tab_to(&controls[0], 40).await;
    // A date field takes several Tab stops (day, month, year, its calendar button): the
    // order is compared control by control.
    let mut order = vec![olivia.focused().await];
    let mut presses = 0;
    loop {
        match order.last().map(String::as_str) {
            Some("input|reference.case_ref|") => olivia.keys("IT-K-0001").await,
            Some("select|reference.urgency|") => olivia.keys("u").await,
            Some("button||Save the case") => break,
            _ => {}
        }
        olivia.keys(TAB).await;
        presses += 1;
        let now = olivia.focused().await;
        if order.last() != Some(&now) {
            order.push(now);
        }
        assert!(
            presses <= 5 * controls.len(),
            "Tab left the form: {order:?}"
        );
    }
    let mut distinct = controls.clone();
    distinct.dedup();
    assert_eq!(order, distinct, "Tab goes through the case form in order");
    olivia.screenshot("it-case-form-keyboard").await;
    olivia.keys_to_page(ENTER).await;
    assert_eq!(olivia.text("h1").await, "Case IT-K-0001");
    let shown = admin(cred, &["--json", "case", "show", "IT-K-0001"]).await;
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["case"]["reference"]["urgency"], "urgent", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forms_work_with_the_keyboard_alone() {
    let driver = Driver::start().await;
    let w = world().await;
    the_case_form_by_keyboard(&driver, &w.olivia).await;
    let case = italian_case(&w.root, &w.olivia).await;
    admin(
        &w.sue,
        &[
            "referral",
            "approve",
            &case,
            "--to",
            "AL",
            "--categories",
            "child",
        ],
    )
    .await;
    admin(&w.olivia, &["referral", "send", &case, "--to", "AL"]).await;
    let ac = Console::start(&w.otto, &[]).await;
    let otto = driver.browser("Otto").await;
    sign_in(&otto, &ac).await;
    otto.wait_text("ol.queue", CASE, 30, true).await;

    // From the top of the work queue to the referral's link, and into it, by keyboard.
    let link = format!("a||{}", otto.text("ol.queue > li:first-child a").await);
    otto.tab_to(&link, 20).await;
    otto.keys_to_page(ENTER).await;
    otto.wait_text("h1", "referral from IT", 10, false).await;

    // Every control of the acceptance form, in order, each reached by Tab.
    let controls = otto.form_controls("input[name=institution]").await;
    assert_eq!(
        controls,
        [
            "input|institution|",
            "input|focal_point|",
            "button||Accept the referral"
        ],
        "the acceptance form's controls"
    );
    otto.tab_to(&controls[0], 60).await;
    otto.keys("Synthetic Child Protection Unit").await;
    let mut order = vec![controls[0].clone()];
    otto.keys(TAB).await;
    order.push(otto.focused().await);
    otto.keys("child-desk").await;
    otto.keys(TAB).await;
    order.push(otto.focused().await);
    assert_eq!(order, controls, "Tab goes through the form in order");
    otto.screenshot("al-accept-keyboard").await;
    otto.keys_to_page(ENTER).await;
    let done = otto.wait_text("main", "is in the outbox", 10, false).await;
    assert_eq!(otto.text("h1").await, "Answer sent", "{done}");
    let shown = admin(&w.otto, &["--json", "case", "show", &case]).await;
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["thread"]["state"], "accepted", "{v}");
    assert_eq!(
        v["thread"]["responsible_institution"], "Synthetic Child Protection Unit",
        "{v}"
    );
    drop(otto);
    drop(ac);
    w.finish().await;
    drop(driver);
}
