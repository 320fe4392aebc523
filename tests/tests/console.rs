//! The officer console, first slice (issue 13): `trm-admin console` as a process with an
//! officer's credential of a real node pair (IT refers to AL), talked to over plain HTTP.
//!
//! - the first stdout line is the link with a one-time token; the token becomes an HttpOnly,
//!   SameSite=Strict cookie through a redirect to `/`; a reused token is refused;
//! - a `Host` other than the bound address is refused; no session → 401; the security
//!   headers are on every response, refusals included;
//! - home is the work queue: the emergency child referral first, with its flags; inbox,
//!   message (verification badge), cases and case pages render;
//! - accepting a referral is a POST that needs the session's CSRF token; with it the
//!   acceptance reaches Italy;
//! - the session locks when idle (a new link is printed); a non-loopback `--listen` is
//!   refused (64); the console exits when its stdin closes, and on SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::{admin_ok as admin, run};
use trm_tests::console::{get, send, Console, Reply, Req};
use trm_tests::{date_in_days, TestNode};

/// A synthetic case from the adult example; if `child`, an emergency child case whose
/// guardian consented.
fn case_file(dir: &Path, case_ref: &str, child: bool) -> String {
    let mut v: Value = serde_json::from_str(&trm_tests::adult_case(case_ref, None)).unwrap();
    v["reference"]["response_due"] = Value::String(date_in_days(5));
    v["reference"]["urgency"] = Value::String(if child { "emergency" } else { "routine" }.into());
    if child {
        trm_tests::make_child(&mut v);
    }
    trm_tests::write_case(dir, case_ref, &v)
}

struct Setup {
    it: TestNode,
    al: TestNode,
    olivia: PathBuf,
    otto: PathBuf,
    /// Referral ids: the routine adult case (sent first), the emergency child case.
    adult: String,
    child: String,
}

/// IT (Olivia, officer; Sue, supervisor) refers a routine adult case, then an emergency child
/// case (child category approved) to AL (Otto, officer); both delivered.
async fn setup(root: &Path) -> Setup {
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
    let mut ids = Vec::new();
    for (case, child) in [("IT-W-1", false), ("IT-W-2", true)] {
        admin(
            &olivia,
            &["case", "create", "--file", &case_file(root, case, child)],
        )
        .await;
        if child {
            let approve = [
                "referral",
                "approve",
                case,
                "--to",
                "AL",
                "--categories",
                "child",
            ];
            admin(&sue, &approve).await;
        }
        let sent = admin(&olivia, &["--json", "referral", "send", case, "--to", "AL"]).await;
        let v: Value = serde_json::from_str(&sent).unwrap();
        let id = v["message"].as_str().unwrap().to_string();
        assert!(
            trm_tests::wait_until(20, || it.delivered(&id)).await,
            "delivered"
        );
        ids.push(id);
    }
    let child = ids.pop().unwrap();
    let adult = ids.pop().unwrap();
    Setup {
        it,
        al,
        olivia,
        otto,
        adult,
        child,
    }
}

/// The security headers every response carries.
fn assert_secure(r: &Reply, what: &str) {
    let want = [
        ("content-security-policy", "default-src 'self'"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ];
    for (name, value) in want {
        let got = r
            .header(name)
            .unwrap_or_else(|| panic!("{what}: no {name}: {r:?}"));
        assert!(got.contains(value), "{what}: {name}: {got}");
    }
    let csp = r.header("content-security-policy").unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

/// Spends the console's token: the session cookie (`name=value`).
async fn sign_in(c: &Console, link: &str) -> String {
    let r = get(&c.addr, &c.path_of(link), None).await;
    assert_secure(&r, "token exchange");
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/"), "the token leaves the URL");
    let cookie = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_serves_the_officer_over_loopback_with_its_security_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let s = setup(tmp.path()).await;
    let mut c = Console::start(&s.otto, &[]).await;
    let token = c
        .link
        .split("?token=")
        .nth(1)
        .expect("a token in the link")
        .to_string();
    assert!(c.link.starts_with("http://127.0.0.1:"), "{}", c.link);
    assert_eq!(token.len(), 64, "32 bytes in hex");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    let r = get(&c.addr, "/", None).await;
    assert_secure(&r, "no session");
    assert_eq!(r.status, 401, "no session: {r:?}");
    let link = c.link.clone();
    let cookie = sign_in(&c, &link).await;
    let r = get(&c.addr, &c.path_of(&link), None).await;
    assert_secure(&r, "reused token");
    assert_eq!(r.status, 401, "a reused token is refused: {r:?}");
    let r = get(&c.addr, "/", Some("trm_console=0000")).await;
    assert_eq!(r.status, 401, "a made-up cookie: {r:?}");

    let port = c.addr.rsplit(':').next().unwrap().to_string();
    for host in [
        format!("evil.example:{port}"),
        "localhost".into(),
        "127.0.0.1".into(),
    ] {
        let req = Req {
            method: "GET",
            path: "/",
            host: &host,
            cookie: Some(&cookie),
            form: None,
        };
        let r = send(&c.addr, &req).await;
        assert_secure(&r, "wrong host");
        assert!(r.status == 421 || r.status == 400, "Host {host}: {r:?}");
    }

    pages(&c, &cookie, &s).await;
    accept_with_csrf(&c, &cookie, &s).await;

    c.close_stdin();
    assert_eq!(
        c.exited(10).await,
        Some(0),
        "the console stops when its stdin closes"
    );
    s.it.finish().await;
    s.al.finish().await;
}

/// Home (the queue, emergency child first with its flags), inbox, message, cases, case.
async fn pages(c: &Console, cookie: &str, s: &Setup) {
    let home = get(&c.addr, "/", Some(cookie)).await;
    assert_secure(&home, "home");
    assert_eq!(home.status, 200, "{home:?}");
    let b = &home.body;
    let (child_at, adult_at) = (b.find(&s.child), b.find(&s.adult));
    assert!(child_at.is_some() && adult_at.is_some(), "{b}");
    assert!(
        child_at < adult_at,
        "the emergency child referral first: {b}"
    );
    let first = &b[child_at.unwrap()..adult_at.unwrap()];
    for flag in ["flag-emergency", "flag-child"] {
        assert!(
            first.contains(flag),
            "{flag} on the child referral: {first}"
        );
    }
    assert!(b.contains("answer referral"), "{b}");

    let inbox = get(&c.addr, "/inbox", Some(cookie)).await;
    assert_secure(&inbox, "inbox");
    assert!(
        inbox.status == 200 && inbox.body.contains(&s.child),
        "{inbox:?}"
    );

    let msg = get(&c.addr, &format!("/messages/{}", s.child), Some(cookie)).await;
    assert_secure(&msg, "message");
    assert_eq!(msg.status, 200, "{msg:?}");
    for want in [
        "verified",
        "signature: valid",
        "urgency",
        "emergency",
        "Accept the referral",
    ] {
        assert!(msg.body.contains(want), "{want:?} not in {}", msg.body);
    }
    assert!(!msg.body.contains("<script"), "no script");

    let cases = get(&c.addr, "/cases", Some(cookie)).await;
    assert!(
        cases.status == 200 && cases.body.contains("IT-W-2"),
        "{cases:?}"
    );
    let case = get(&c.addr, "/cases/IT-W-2", Some(cookie)).await;
    assert_secure(&case, "case");
    assert_eq!(case.status, 200, "{case:?}");
    assert!(
        case.body.contains("Timeline") && case.body.contains(&s.child),
        "{}",
        case.body
    );

    let css = get(&c.addr, "/style.css", Some(cookie)).await;
    assert_secure(&css, "style");
    assert!(css
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/css"));
    let missing = get(&c.addr, "/nowhere", Some(cookie)).await;
    assert_secure(&missing, "not found");
    assert_eq!(missing.status, 404);
    let refused = get(&c.addr, "/messages/00", Some(cookie)).await;
    assert_secure(&refused, "node error");
    assert!(
        refused.body.contains("class=\"error\""),
        "the node's error in the page: {refused:?}"
    );
}

/// The received referral's state at Albania (Otto's `case show`).
async fn state_at_albania(otto: &Path) -> String {
    let show = admin(otto, &["--json", "case", "show", "IT-W-2"]).await;
    let v: Value = serde_json::from_str(&show).unwrap();
    v["thread"]["state"].as_str().unwrap_or("").to_string()
}

/// The referral's state at Italy (Olivia's `case show`).
async fn state_at_italy(olivia: &Path) -> String {
    let v: Value =
        serde_json::from_str(&admin(olivia, &["--json", "case", "show", "IT-W-2"]).await).unwrap();
    v["referrals"][0]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// POST without or with a wrong CSRF token is refused (nothing sent); with the page's token
/// the acceptance goes out and Italy receives it.
async fn accept_with_csrf(c: &Console, cookie: &str, s: &Setup) {
    let page = get(&c.addr, &format!("/messages/{}", s.child), Some(cookie)).await;
    let marker = "name=\"csrf\" value=\"";
    let at = page.body.find(marker).expect("a CSRF field") + marker.len();
    let csrf = &page.body[at..at + 64];
    let path = format!("/messages/{}/answer", s.child);
    let form = "decision=accept&institution=Synthetic+Shelter+Unit&focal_point=desk";
    let wrong = "0".repeat(64);
    for body in [
        form.to_string(),
        format!("{form}&csrf={wrong}"),
        format!("{form}&csrf="),
    ] {
        let req = Req {
            method: "POST",
            path: &path,
            host: &c.addr,
            cookie: Some(cookie),
            form: Some(&body),
        };
        let r = send(&c.addr, &req).await;
        assert_secure(&r, "refused POST");
        assert_eq!(r.status, 403, "{body}: {r:?}");
    }
    let body = format!("{form}&csrf={csrf}");
    let req = Req {
        method: "POST",
        path: &path,
        host: &c.addr,
        cookie: None,
        form: Some(&body),
    };
    assert_eq!(send(&c.addr, &req).await.status, 401, "no session, no POST");
    let before = state_at_albania(&s.otto).await;
    assert!(
        !before.is_empty() && before != "accepted",
        "nothing was answered: {before}"
    );
    let req = Req {
        cookie: Some(cookie),
        ..req
    };
    let r = send(&c.addr, &req).await;
    assert_secure(&r, "accepted");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("Answer sent"), "{}", r.body);
    assert_eq!(state_at_albania(&s.otto).await, "accepted");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while state_at_italy(&s.olivia).await != "accepted" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Italy never received the acceptance"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An idle session locks (401) and the console prints a new one-time link, which works;
/// SIGTERM stops the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_locks_and_a_new_link_is_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let (it, al) = trm_tests::open_pair(tmp.path()).await;
    let olivia = tmp.path().join("olivia.cred");
    let op = it.dir.join(OPERATOR_CRED);
    trm_tests::bins::enrol(&op, "Olivia Example", "officer", &olivia).await;
    let mut c = Console::start(&olivia, &[("TRM_CONSOLE_IDLE_SECS", "1")]).await;
    let link = c.link.clone();
    let cookie = sign_in(&c, &link).await;
    assert_eq!(get(&c.addr, "/", Some(&cookie)).await.status, 200);
    // Time itself is what this test is about: idle past the limit.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = get(&c.addr, "/", Some(&cookie)).await;
    assert_secure(&r, "locked");
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("locked"), "{}", r.body);
    assert_eq!(
        get(&c.addr, "/", Some(&cookie)).await.status,
        401,
        "still locked"
    );
    let again = c.next_line(10).await.expect("a new link after the lock");
    assert!(again.contains("?token=") && again != link, "{again}");
    let fresh = sign_in(&c, &again).await;
    assert_eq!(get(&c.addr, "/", Some(&fresh)).await.status, 200);
    c.terminate();
    assert_eq!(c.exited(10).await, Some(0), "SIGTERM stops the console");
    drop(c);
    it.finish().await;
    al.finish().await;
}

/// `--listen` on anything but loopback is refused with exit 64, before the credential is read.
#[test]
fn a_non_loopback_listen_address_is_refused() {
    for listen in [
        "0.0.0.0:0",
        "192.0.2.10:8080",
        "[::]:0",
        "localhost:8080",
        "nonsense",
    ] {
        let r = run(
            "trm-admin",
            &["--cred", "/nonexistent.cred", "console", "--listen", listen],
        );
        assert_eq!(r.code, Some(64), "{listen}: {r:?}");
        assert!(
            r.stderr.lines().count() == 1 && r.stderr.contains("--listen"),
            "{r:?}"
        );
    }
}
