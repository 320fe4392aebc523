//! The console's languages (issue 13, "Languages"), over plain HTTP with a real node pair (IT
//! refers an adult case to AL) and each officer's console:
//!
//! - `/language/fr` sets only the cookie `trm_lang=fr` (no session cookie) and redirects to
//!   the work queue; an unknown code is 404 and sets nothing;
//! - in French the home page, the case page (template labels and allowed values in French,
//!   free text as written) and the message page are French (`html lang="fr"`, navigation,
//!   headings); the same spot check in Italian (the receiving officer) and Albanian;
//! - the language cookie grants nothing without the session cookie (still 401, the refusal
//!   itself in the chosen language).

use std::path::Path;

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::admin_ok as admin;
use trm_tests::console::{get, sign_in, Console, Reply};
use trm_tests::date_in_days;

/// The `Set-Cookie` headers of a reply.
fn set_cookies(r: &Reply) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `page` contains every one of `want` (`what` names the page in the failure).
fn has_all(page: &Reply, what: &str, want: &[&str]) {
    assert_eq!(page.status, 200, "{what}: {page:?}");
    for w in want {
        assert!(page.body.contains(w), "{what}: {w:?} not in {}", page.body);
    }
}

/// The IT officer's adult case, urgent, sent to AL; the referral's message id once delivered.
async fn refer(root: &Path, it: &trm_tests::TestNode, olivia: &Path) -> String {
    let mut v: Value = serde_json::from_str(&trm_tests::adult_case("IT-L-1", None)).unwrap();
    v["reference"]["response_due"] = Value::String(date_in_days(5));
    let file = trm_tests::write_case(root, "IT-L-1", &v);
    admin(olivia, &["case", "create", "--file", &file]).await;
    let sent = admin(
        olivia,
        &["--json", "referral", "send", "IT-L-1", "--to", "AL"],
    )
    .await;
    let v: Value = serde_json::from_str(&sent).unwrap();
    let id = v["message"].as_str().unwrap().to_string();
    assert!(
        trm_tests::wait_until(20, || it.delivered(&id)).await,
        "delivered"
    );
    id
}

/// Picks `code` on console `c` with the session cookie: a redirect to `/` that sets only
/// `trm_lang=CODE`; the cookies to send from then on.
async fn pick(c: &Console, session: &str, code: &str) -> String {
    let r = get(&c.addr, &format!("/language/{code}"), Some(session)).await;
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/"), "{r:?}");
    let set = set_cookies(&r);
    assert_eq!(set.len(), 1, "only the language cookie: {set:?}");
    let cookie = set[0].split(';').next().unwrap();
    assert_eq!(cookie, format!("trm_lang={code}"), "{set:?}");
    assert!(!set[0].contains("trm_console"), "{set:?}");
    format!("{session}; {cookie}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_speaks_french_italian_and_albanian() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let (olivia, otto) = (root.join("olivia.cred"), root.join("otto.cred"));
    trm_tests::bins::enrol(
        &it.dir.join(OPERATOR_CRED),
        "Olivia Example",
        "officer",
        &olivia,
    )
    .await;
    trm_tests::bins::enrol(
        &al.dir.join(OPERATOR_CRED),
        "Otto Example",
        "officer",
        &otto,
    )
    .await;
    let id = refer(root, &it, &olivia).await;

    let c = Console::start(&olivia, &[]).await;
    // The language cookie alone is no session: 401, the refusal in the chosen language.
    for path in ["/", "/language/fr", "/cases/IT-L-1"] {
        let r = get(&c.addr, path, Some("trm_lang=fr")).await;
        assert_eq!(r.status, 401, "{path}: {r:?}");
        assert!(set_cookies(&r).is_empty(), "{path}: {r:?}");
        assert!(r.body.contains("Aucune session"), "{path}: {}", r.body);
    }
    let session = sign_in(&c).await;
    let fr = pick(&c, &session, "fr").await;

    let home = get(&c.addr, "/", Some(&fr)).await;
    has_all(
        &home,
        "home fr",
        &[
            "<html lang=\"fr\">",
            "File de travail (agent de liaison)",
            "Boîte de réception",
            ">Dossiers<",
        ],
    );
    let case = get(&c.addr, "/cases/IT-L-1", Some(&fr)).await;
    has_all(
        &case,
        "case fr",
        &[
            "<html lang=\"fr\">",
            "Dossier IT-L-1",
            "Chronologie",
            "Orientations",
            "Identité",
            "Nom de famille",
            "Exploitation par le travail",
            // Allowed values in French, free text and codes as written.
            "<td>féminin</td>",
            "<td>déposée</td>",
            "Type : passeport",
            "<td>urgente</td>",
            "<td>Testova</td>",
            "Adult presumed victim of labour exploitation in agriculture",
            "AL: en attente",
        ],
    );
    assert!(!case.body.contains("<td>female</td>"), "{}", case.body);
    let msg = get(&c.addr, &format!("/messages/{id}"), Some(&fr)).await;
    has_all(
        &msg,
        "message fr",
        &[
            "<html lang=\"fr\">",
            "orientation à AL",
            "vérifié",
            "Remise",
            "Champs",
        ],
    );

    // An unknown code: 404, nothing set, the page still in French.
    let r = get(&c.addr, "/language/xx", Some(&fr)).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(set_cookies(&r).is_empty(), "{r:?}");
    assert!(r.body.contains("Aucune langue de ce nom."), "{}", r.body);

    // Albanian on the same console.
    let sq = pick(&c, &session, "sq").await;
    let home = get(&c.addr, "/", Some(&sq)).await;
    has_all(
        &home,
        "home sq",
        &["<html lang=\"sq\">", "Radha e punës", "Kutia hyrëse"],
    );
    let case = get(&c.addr, "/cases/IT-L-1", Some(&sq)).await;
    has_all(
        &case,
        "case sq",
        &[
            "Rasti IT-L-1",
            "Kronologjia",
            "Mbiemri",
            "<td>femër</td>",
            "<td>Testova</td>",
        ],
    );
    let msg = get(&c.addr, &format!("/messages/{id}"), Some(&sq)).await;
    has_all(
        &msg,
        "message sq",
        &["<html lang=\"sq\">", "Dorëzimi", "Fushat"],
    );

    // Italian for the receiving officer: the queue, the received referral and its forms.
    let c2 = Console::start(&otto, &[]).await;
    let session2 = sign_in(&c2).await;
    let itc = pick(&c2, &session2, "it").await;
    let home = get(&c2.addr, "/", Some(&itc)).await;
    has_all(
        &home,
        "home it",
        &[
            "<html lang=\"it\">",
            "Coda di lavoro",
            "rispondere a un invio",
            "urgente",
        ],
    );
    let msg = get(&c2.addr, &format!("/messages/{id}"), Some(&itc)).await;
    has_all(
        &msg,
        "message it",
        &[
            "invio da IT",
            "verificato",
            "Consegna",
            "Rispondere a questo invio",
            "Accettare l'invio",
            "Istituzione responsabile",
        ],
    );
    let case = get(&c2.addr, "/cases/IT-L-1", Some(&itc)).await;
    has_all(
        &case,
        "case it",
        &["Caso IT-L-1", "Cronologia", "Riferimento"],
    );
    // English stays the default without the cookie.
    let home = get(&c2.addr, "/", Some(&session2)).await;
    has_all(
        &home,
        "home en",
        &["<html lang=\"en\">", "Work queue (officer)"],
    );

    it.finish().await;
    al.finish().await;
}
