//! The officer console, second slice (issue 13): the referral page of a case recorded here.
//!
//! - an officer previews a child case's referral to AL in the page (the child section withheld,
//!   with its rule) and sees no approve form; POSTs without the CSRF token to send or approve
//!   are refused (403) and nothing leaves;
//! - a supervisor approves the child category from its own console (four eyes shown in the
//!   approvals list) and the officer's preview changes (more fields released);
//! - the officer sends from the page and Albania receives the referral;
//! - the follow-up form (shown once the referral exists): without CSRF refused; Preview shows
//!   what would be released and sends nothing; Send reaches Albania;
//! - the case list's filters (state, partner, overdue, minor) select the right cases;
//! - the case page shows the access log to the supervisor, not to the officer; a received
//!   referral's accept/decline forms are gone once it is answered;
//! - information request, closure, reopen and consent forms: refused without CSRF; an
//!   information request and a closure go out; the reopen form appears once closed; a consent
//!   withdrawal without its confirmation box is refused.

use std::path::Path;

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::admin_ok as admin;
use trm_tests::console::{csrf_of, get, post, sign_in, Console};
use trm_tests::date_in_days;

/// A synthetic child case (guardian consented) from the adult example.
fn child_case(dir: &Path, case_ref: &str) -> String {
    let mut v: Value = serde_json::from_str(&trm_tests::adult_case(case_ref, None)).unwrap();
    v["reference"]["response_due"] = Value::String(date_in_days(5));
    trm_tests::make_child(&mut v);
    trm_tests::write_case(dir, case_ref, &v)
}

/// "N of M fields released" in a preview page.
fn released(body: &str) -> usize {
    let at = body.find(" fields released").expect("a preview line");
    let (head, _) = body[..at].rsplit_once(" of ").expect("N of M");
    let n = head.rsplit(' ').next().unwrap_or_default();
    n.parse()
        .unwrap_or_else(|_| panic!("a count before ' of ': {n}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_previews_a_supervisor_approves_and_the_officer_sends_from_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let cred = |n: &str| root.join(format!("{n}.cred"));
    let (olivia, sue, otto) = (cred("olivia"), cred("sue"), cred("otto"));
    for (name, role, file, node) in [
        ("Olivia Example", "officer", &olivia, &it),
        ("Sue Example", "supervisor", &sue, &it),
        ("Otto Example", "officer", &otto, &al),
    ] {
        trm_tests::bins::enrol(&node.dir.join(OPERATOR_CRED), name, role, file).await;
    }
    let file = child_case(root, "IT-F-1");
    admin(&olivia, &["case", "create", "--file", &file]).await;
    let adult = root.join("IT-F-2.json");
    std::fs::write(&adult, trm_tests::adult_case("IT-F-2", None)).unwrap();
    let adult = adult.display().to_string();
    admin(&olivia, &["case", "create", "--file", &adult]).await;

    let oc = Console::start(&olivia, &[]).await;
    let ocookie = sign_in(&oc).await;
    // The case page leads to the referral page with only a country code in the URL.
    let case = get(&oc.addr, "/cases/IT-F-1", Some(&ocookie)).await;
    assert_eq!(case.status, 200, "{case:?}");
    assert!(
        case.body.contains("action=\"/cases/IT-F-1/referral\""),
        "{}",
        case.body
    );
    let pick = get(&oc.addr, "/cases/IT-F-1/referral?to=al", Some(&ocookie)).await;
    assert_eq!(
        pick.header("location"),
        Some("/cases/IT-F-1/referral/AL"),
        "{pick:?}"
    );
    let page_path = "/cases/IT-F-1/referral/AL";
    let before = get(&oc.addr, page_path, Some(&ocookie)).await;
    assert_eq!(before.status, 200, "{before:?}");
    assert!(
        before.body.contains("referral of case IT-F-1 to AL"),
        "{}",
        before.body
    );
    assert!(
        before.body.contains("child.unaccompanied"),
        "{}",
        before.body
    );
    assert!(before.body.contains("withheld"), "{}", before.body);
    assert!(
        !before.body.contains("Approve categories"),
        "an officer gets no approve form"
    );
    let released_before = released(&before.body);

    // Without the session's CSRF token nothing is sent or approved.
    let wrong = "0".repeat(64);
    for (path, form) in [
        (format!("{page_path}/send"), String::new()),
        (format!("{page_path}/send"), format!("csrf={wrong}")),
        (format!("{page_path}/approve"), "category=child".to_string()),
        (
            format!("{page_path}/approve"),
            format!("category=child&csrf={wrong}"),
        ),
    ] {
        let r = post(&oc, &ocookie, &path, &form).await;
        assert_eq!(r.status, 403, "{path} {form}: {r:?}");
    }
    let show: Value =
        serde_json::from_str(&admin(&olivia, &["--json", "case", "show", "IT-F-1"]).await).unwrap();
    assert!(
        show["referrals"].as_array().is_none_or(|r| r.is_empty()),
        "{show}"
    );

    // The officer's own approve POST (with the token) is refused by the node, on one line.
    let csrf = csrf_of(&before);
    let r = post(
        &oc,
        &ocookie,
        &format!("{page_path}/approve"),
        &format!("category=child&csrf={csrf}"),
    )
    .await;
    assert_eq!(
        r.status, 403,
        "the node refuses an officer's approval: {r:?}"
    );
    assert!(r.body.contains("class=\"error\""), "{}", r.body);

    // The supervisor approves the child category from her own console.
    let sc = Console::start(&sue, &[]).await;
    let scookie = sign_in(&sc).await;
    let spage = get(&sc.addr, page_path, Some(&scookie)).await;
    assert!(spage.body.contains("Approve categories"), "{}", spage.body);
    assert!(spage.body.contains("value=\"child\""), "{}", spage.body);
    let form = format!("category=child&csrf={}", csrf_of(&spage));
    let r = post(&sc, &scookie, &format!("{page_path}/approve"), &form).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("Sue Example"), "{}", r.body);

    // The access log on the case page: the supervisor sees it, the officer does not.
    let scase = get(&sc.addr, "/cases/IT-F-1", Some(&scookie)).await;
    assert!(scase.body.contains("Access log"), "{}", scase.body);
    assert!(scase.body.contains("referral approve"), "{}", scase.body);
    let ocase = get(&oc.addr, "/cases/IT-F-1", Some(&ocookie)).await;
    assert_eq!(ocase.status, 200, "{ocase:?}");
    assert!(!ocase.body.contains("Access log"), "{}", ocase.body);

    // The officer's preview changes; the approvals list shows who approved.
    let after = get(&oc.addr, page_path, Some(&ocookie)).await;
    assert!(released(&after.body) > released_before, "{}", after.body);
    assert!(
        after.body.contains("Sue Example"),
        "four eyes shown: {}",
        after.body
    );

    // The officer sends from the page; Albania receives it.
    let r = post(
        &oc,
        &ocookie,
        &format!("{page_path}/send"),
        &format!("csrf={}", csrf_of(&after)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("is in the outbox"), "{}", r.body);
    let mut received = false;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !received && tokio::time::Instant::now() < deadline {
        let inbox = admin(&otto, &["--json", "inbox"]).await;
        received = inbox.contains("IT-F-1");
        if !received {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    assert!(received, "Albania received the referral");
    follow_up(&oc, &ocookie, &otto, page_path).await;
    thread_forms(&oc, &ocookie, page_path).await;
    filters(&oc, &ocookie).await;
    drop(oc);
    drop(sc);
    it.finish().await;
    al.finish().await;
}

/// The follow-up form on the referral page: refused without CSRF, previewed (nothing sent),
/// then sent; Albania receives it.
async fn follow_up(c: &Console, cookie: &str, otto: &Path, page_path: &str) {
    let page = get(&c.addr, page_path, Some(cookie)).await;
    assert!(
        !page.body.contains("Send the follow-up"),
        "no follow-up form before the acceptance: {}",
        page.body
    );
    let inbox: Value = serde_json::from_str(&admin(otto, &["--json", "inbox"]).await).unwrap();
    let id = inbox["messages"][0]["id"]
        .as_str()
        .expect("the referral")
        .to_string();
    let ac = Console::start(otto, &[]).await;
    let acookie = sign_in(&ac).await;
    let msg = format!("/messages/{id}");
    let open = get(&ac.addr, &msg, Some(&acookie)).await;
    assert!(open.body.contains("Accept the referral"), "{}", open.body);
    let accept = [
        "referral",
        "accept",
        &id,
        "--institution",
        "Synthetic Shelter Unit",
    ];
    admin(otto, &accept).await;
    let answered = get(&ac.addr, &msg, Some(&acookie)).await;
    assert_eq!(answered.status, 200, "{answered:?}");
    assert!(
        !answered.body.contains("Accept the referral") && !answered.body.contains("Decline the"),
        "no accept/decline on an answered referral: {}",
        answered.body
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let page = get(&c.addr, page_path, Some(cookie)).await;
        if page.body.contains("Send the follow-up") {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the form never appeared: {}",
            page.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        page.body.contains("value=\"first_assistance\""),
        "{}",
        page.body
    );
    let path = format!("{page_path}/followup");
    let form = "phase=first_assistance&status=in+shelter&date=2026-03-01";
    let r = post(c, cookie, &path, &format!("{form}&action=send")).await;
    assert_eq!(r.status, 403, "no CSRF: {r:?}");
    let csrf = csrf_of(&page);
    let r = post(
        c,
        cookie,
        &path,
        &format!("{form}&action=preview&csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("(nothing sent)"), "{}", r.body);
    let count = || async {
        let inbox = admin(otto, &["--json", "inbox"]).await;
        inbox.matches("\"follow_up\"").count()
    };
    assert_eq!(count().await, 0, "a preview sends nothing");
    let r = post(c, cookie, &path, &format!("{form}&action=send&csrf={csrf}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("Follow-up sent"), "{}", r.body);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while count().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Albania never received the follow-up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `/cases?…`: IT-F-1 (a child, referred to AL, closed) and IT-F-2 (an adult, not referred).
async fn filters(c: &Console, cookie: &str) {
    let (child, adult) = ("href=\"/cases/IT-F-1\"", "href=\"/cases/IT-F-2\"");
    for (query, want_child, want_adult) in [
        ("", true, true),
        ("?minor=yes", true, false),
        ("?state=closed", true, false),
        ("?state=accepted", false, false),
        ("?partner=AL", true, false),
        ("?partner=FR", false, false),
        ("?overdue=yes", false, false),
        ("?state=declined&partner=AL", false, false),
    ] {
        let r = get(&c.addr, &format!("/cases{query}"), Some(cookie)).await;
        assert_eq!(r.status, 200, "{query}: {r:?}");
        assert_eq!(r.body.contains(child), want_child, "{query}: {}", r.body);
        assert_eq!(r.body.contains(adult), want_adult, "{query}: {}", r.body);
    }
}

/// The thread forms on an accepted referral, and the case's consent form.
async fn thread_forms(c: &Console, cookie: &str, page_path: &str) {
    let page = get(&c.addr, page_path, Some(cookie)).await;
    assert!(
        page.body.contains("Close the case with AL"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("legend>Reopen"), "{}", page.body);
    let csrf = csrf_of(&page);
    let posts = [
        ("inforequest", "purpose=assessment&categories=assistance"),
        ("close", "outcome=transferred&date=2026-03-02"),
    ];
    for (what, form) in posts {
        let path = format!("{page_path}/{what}");
        assert_eq!(
            post(c, cookie, &path, form).await.status,
            403,
            "{what}: no CSRF"
        );
    }
    let consent = "category=assistance&change=withdraw";
    let r = post(c, cookie, "/cases/IT-F-1/consent", consent).await;
    assert_eq!(r.status, 403, "consent: no CSRF");
    let r = post(
        c,
        cookie,
        "/cases/IT-F-1/consent",
        &format!("{consent}&csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, 400, "a withdrawal needs its confirmation: {r:?}");
    assert!(r.body.contains("confirmation"), "{}", r.body);
    for (what, form) in posts {
        let path = format!("{page_path}/{what}");
        let r = post(c, cookie, &path, &format!("{form}&csrf={csrf}")).await;
        assert_eq!(r.status, 200, "{what}: {r:?}");
        assert!(r.body.contains("is in the outbox"), "{what}: {}", r.body);
    }
    let closed = get(&c.addr, page_path, Some(cookie)).await;
    assert!(closed.body.contains("legend>Reopen"), "{}", closed.body);
    assert!(
        !closed.body.contains("Close the case with AL"),
        "{}",
        closed.body
    );
    let r = post(c, cookie, &format!("{page_path}/reopen"), "reason=x").await;
    assert_eq!(r.status, 403, "reopen: no CSRF");
}
