//! The console's languages: English, French, Italian and Albanian. A page string is written
//! in English in the code, through [`t`], and that English text is its key in each other
//! language's catalogue (`i18n/fr.rs`, `i18n/it.rs`, `i18n/sq.rs`); template labels (sections
//! and field paths) through [`label`]. Free text (what officers wrote, node refusals) is shown
//! as written. The officer picks the language on any page (`/language/CODE`, a cookie); the
//! tests below fail when a page string or a template label lacks a translation.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::FromRequestParts;
use axum::http::header::COOKIE;
use axum::http::request::Parts;
use axum::http::HeaderMap;

mod fr;
mod it;
mod sq;

/// The cookie holding the officer's language (a code, never anything else).
pub(crate) const LANG_COOKIE: &str = "trm_lang";

/// A language the console ships complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Lang {
    #[default]
    En,
    Fr,
    It,
    Sq,
}

/// One catalogue: page strings (English → this language) and template labels (section or
/// field path → this language).
struct Catalogue {
    pages: &'static [(&'static str, &'static str)],
    labels: &'static [(&'static str, &'static str)],
}

impl Lang {
    pub(crate) const ALL: [Lang; 4] = [Lang::En, Lang::Fr, Lang::It, Lang::Sq];

    /// The ISO 639-1 code (`en`, `fr`, `it`, `sq`): the `lang` attribute and the cookie value.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::It => "it",
            Lang::Sq => "sq",
        }
    }

    /// The language's own name, for the picker.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Fr => "Français",
            Lang::It => "Italiano",
            Lang::Sq => "Shqip",
        }
    }

    pub(crate) fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language chosen in the request's cookie; English when none (or an unknown one).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Lang {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == LANG_COOKIE)
            .and_then(|(_, v)| Lang::parse(v))
            .unwrap_or_default()
    }

    fn catalogue(self) -> Option<Catalogue> {
        match self {
            Lang::En => None,
            Lang::Fr => Some(Catalogue {
                pages: fr::PAGES,
                labels: fr::LABELS,
            }),
            Lang::It => Some(Catalogue {
                pages: it::PAGES,
                labels: it::LABELS,
            }),
            Lang::Sq => Some(Catalogue {
                pages: sq::PAGES,
                labels: sq::LABELS,
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::from_headers(&parts.headers))
    }
}

/// The catalogues as maps, built once: (language, key) → text; pages and labels apart.
type Maps = HashMap<
    Lang,
    (
        HashMap<&'static str, &'static str>,
        HashMap<&'static str, &'static str>,
    ),
>;

fn maps() -> &'static Maps {
    static MAPS: OnceLock<Maps> = OnceLock::new();
    MAPS.get_or_init(|| {
        Lang::ALL
            .into_iter()
            .filter_map(|l| l.catalogue().map(|c| (l, c)))
            .map(|(l, c)| {
                let pages = c.pages.iter().copied().collect();
                let labels = c.labels.iter().copied().collect();
                (l, (pages, labels))
            })
            .collect()
    })
}

/// A page string in `lang`. English is the key; a string missing from a catalogue is shown in
/// English (and `every_page_string_is_translated` fails).
pub(crate) fn t(lang: Lang, en: &'static str) -> &'static str {
    lookup(lang, en).unwrap_or(en)
}

fn lookup(lang: Lang, en: &str) -> Option<&'static str> {
    maps().get(&lang).and_then(|(p, _)| p.get(en).copied())
}

/// A template label: a section (`victim`) or a field path (`victim.birth_date`) in `lang`;
/// English (or a national extension, which has no catalogue entry) from its name.
pub(crate) fn label(lang: Lang, path: &str) -> String {
    let labels = maps().get(&lang).map(|(_, l)| l);
    [Some(path.to_string()), shared_consent_key(path)]
        .into_iter()
        .flatten()
        .find_map(|k| labels.and_then(|l| l.get(k.as_str()).copied()))
        .map(str::to_string)
        .unwrap_or_else(|| english_label(path))
}

/// Every consent record shares its columns: `consent.child.status` is keyed
/// `consent.*.status`.
fn shared_consent_key(path: &str) -> Option<String> {
    match path.split('.').collect::<Vec<_>>()[..] {
        ["consent", _, column] => Some(format!("consent.*.{column}")),
        _ => None,
    }
}

/// A word of a closed vocabulary (a thread state, a message kind, a phase, a flag…) as the
/// node or the command line writes it, in `lang`; keyed in the page catalogue by the word
/// itself (`information_request`); English, or a word no list names, with `_` as spaces.
pub(crate) fn word(lang: Lang, w: &str) -> String {
    lookup(lang, w)
        .map(str::to_string)
        .unwrap_or_else(|| w.replace('_', " "))
}

/// The label key of a column of a record field: `identity.identity_documents.type`; the
/// columns of every consent record share `consent.*.status` (same words for each category).
pub(crate) fn column_key(path: &str, consent: bool, col: &str) -> String {
    if consent {
        format!("consent.*.{col}")
    } else {
        format!("{path}.{col}")
    }
}

/// An allowed value of a choice or multi-choice field (or record column) as shown, keyed
/// `PATH=VALUE` in the label catalogue (`reference.urgency=emergency`,
/// `consent.*.status=given`); English from the value (`_` as spaces).
pub(crate) fn value(lang: Lang, path: &str, v: &str) -> String {
    let shared = shared_consent_key(path).map(|k| format!("{k}={v}"));
    let labels = maps().get(&lang).map(|(_, l)| l);
    [Some(format!("{path}={v}")), shared]
        .into_iter()
        .flatten()
        .find_map(|k| labels.and_then(|l| l.get(k.as_str()).copied()))
        .map(str::to_string)
        .unwrap_or_else(|| v.replace('_', " "))
}

/// The closed vocabularies the console shows as words (each a key of the page catalogues;
/// `every_vocabulary_word_is_translated` iterates them, with the phases and outcomes of
/// `trm_proto::phases`, the queue kinds and the labels of `render::payload_lines` and
/// `render::case_header_rows`). Only the thread states are used outside the test (the cases
/// filter).
pub(crate) mod vocab {
    /// Thread states (the node's `ThreadState::as_str`).
    pub(crate) const THREAD_STATES: [&str; 4] = ["pending", "accepted", "declined", "closed"];
    /// Delivery states (sent: the store's `SentState::name`; received: `stored`).
    #[cfg(test)]
    pub(crate) const DELIVERY_STATES: [&str; 4] = ["pending", "delivered", "rejected", "stored"];
    /// Payload kinds (`trm_proto::audit::payload_kind`).
    #[cfg(test)]
    pub(crate) const MESSAGE_KINDS: [&str; 12] = [
        "referral",
        "acceptance",
        "decline",
        "follow_up",
        "information_request",
        "disclosure",
        "erasure_request",
        "erasure_confirmation",
        "directory_update",
        "closure",
        "key_announcement",
        "empty",
    ];
    /// Phases as a thread names them (the node's `lifecycle::phase_name`).
    #[cfg(test)]
    pub(crate) const PHASE_NAMES: [&str; 6] = [
        "identification",
        "first assistance and protection",
        "long-term assistance and social inclusion",
        "return and social inclusion",
        "criminal and civil proceedings",
        "unspecified",
    ];
    /// Queue flags besides the urgency (`render::queue_flags`).
    #[cfg(test)]
    pub(crate) const FLAGS: [&str; 2] = ["child", "OVERDUE"];
    /// Answers to a yes/no question, and directions, signatures, receipts, roles.
    #[cfg(test)]
    pub(crate) const WORDS: [&str; 18] = [
        "yes",
        "no",
        "unknown",
        "sent",
        "received",
        "valid",
        "INVALID",
        "none",
        "duplicate",
        "operator",
        "officer",
        "supervisor",
        "auditor",
        "recorded here",
        "not disclosed",
        "not recorded",
        "not referred",
        "not stated by the sender",
    ];
}

/// `victim.birth_date` → `Birth date`.
fn english_label(path: &str) -> String {
    let name = path.rsplit('.').next().unwrap_or(path).replace('_', " ");
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `t(lang, "…")` literal in the console's sources: the page strings.
    fn page_strings() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
        let mut out = Vec::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("console sources") {
                let p = e.expect("entry").path();
                // The catalogues and this file are not pages.
                let catalogue = p.file_stem().is_some_and(|s| s == "i18n");
                if p.is_dir() && !catalogue {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") && !catalogue {
                    literals(&std::fs::read_to_string(&p).expect("source"), &mut out);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The string literal after each `t(IDENT, ` in `src`.
    fn literals(src: &str, out: &mut Vec<String>) {
        let mut rest = src;
        while let Some(i) = rest.find("t(") {
            let before = rest[..i].chars().last();
            rest = &rest[i + 2..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let Some((arg, after)) = rest.split_once(',') else {
                break;
            };
            if !arg.trim().chars().all(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let after = after.trim_start();
            let Some(body) = after.strip_prefix('"') else {
                continue;
            };
            let mut text = String::new();
            let mut chars = body.chars();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => text.push('\n'),
                        Some(x) => text.push(x),
                        None => break,
                    },
                    c => text.push(c),
                }
            }
            out.push(text);
        }
    }

    #[test]
    fn the_scanner_finds_page_strings() {
        let mut out = Vec::new();
        literals(
            r#"x(t(lang, "Inbox")) at(lang, "no") t( l,  "Say \"hi\"") t(lang, format!("x"))"#,
            &mut out,
        );
        assert_eq!(out, ["Inbox", "Say \"hi\""]);
    }

    #[test]
    fn every_page_string_is_translated() {
        let strings = page_strings();
        assert!(strings.len() > 3, "the scanner found {strings:?}");
        let mut missing = Vec::new();
        for lang in [Lang::Fr, Lang::It, Lang::Sq] {
            for s in &strings {
                if lookup(lang, s).is_none() {
                    missing.push(format!("{}: {s:?}", lang.code()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "untranslated page strings:\n{}",
            missing.join("\n")
        );
    }

    /// Every language but English (the key), each with a catalogue to check.
    fn shipped() -> impl Iterator<Item = Lang> {
        Lang::ALL.into_iter().filter(|l| *l != Lang::En)
    }

    /// Every label key of the core template: sections, field paths, record columns.
    fn template_label_keys() -> Vec<String> {
        use trm_proto::template::{core_fields, Kind, SECTIONS};
        let mut keys: Vec<String> = SECTIONS.iter().map(|s| s.to_string()).collect();
        for f in core_fields() {
            keys.push(f.path.to_string());
            let consent = f.kind == Kind::Consent;
            for (col, _) in f.kind.record_fields() {
                keys.push(column_key(f.path, consent, col));
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every allowed value of a choice field or record column, keyed `PATH=VALUE`.
    fn template_value_keys() -> Vec<String> {
        use trm_proto::template::{core_fields, Kind};
        let mut keys = Vec::new();
        for f in core_fields() {
            for v in f.kind.allowed_values() {
                keys.push(format!("{}={v}", f.path));
            }
            let consent = f.kind == Kind::Consent;
            for (col, kind) in f.kind.record_fields() {
                for v in kind.allowed_values() {
                    keys.push(format!("{}={v}", column_key(f.path, consent, col)));
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// The keys missing from each shipped language's label catalogue.
    fn missing_labels(keys: &[String]) -> Vec<String> {
        let mut missing = Vec::new();
        for lang in shipped() {
            let labels = &maps()[&lang].1;
            for k in keys {
                if !labels.contains_key(k.as_str()) {
                    missing.push(format!("{}: {k}", lang.code()));
                }
            }
        }
        missing
    }

    #[test]
    fn every_template_label_is_translated() {
        let keys = template_label_keys();
        assert!(keys.len() > 90, "{keys:?}");
        let missing = missing_labels(&keys);
        assert!(
            missing.is_empty(),
            "untranslated template labels:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn every_allowed_value_is_translated() {
        let keys = template_value_keys();
        assert!(keys.iter().any(|k| k == "reference.urgency=emergency"));
        let missing = missing_labels(&keys);
        assert!(
            missing.is_empty(),
            "untranslated allowed values:\n{}",
            missing.join("\n")
        );
    }

    /// Every queue kind (the match fails to compile when a kind is added).
    fn queue_kinds() -> Vec<String> {
        use trm_admin_api::answers::QueueKind as K;
        let all = [
            K::AnswerReferral,
            K::ResponseOverdue,
            K::AnswerInformationRequest,
            K::FollowUpDue,
            K::Approval,
            K::PeerDown,
            K::CardExpiring,
            K::Backup,
        ];
        for k in all {
            match k {
                K::AnswerReferral
                | K::ResponseOverdue
                | K::AnswerInformationRequest
                | K::FollowUpDue
                | K::Approval
                | K::PeerDown
                | K::CardExpiring
                | K::Backup => {}
            }
        }
        all.iter()
            .map(|k| {
                serde_json::to_value(k)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// The labels `render` gives a message's payload and a case's header (each variant).
    fn render_labels() -> Vec<String> {
        use trm_admin_api::answers as a;
        let s = String::new;
        let payloads = [
            a::PayloadView::Referral {
                agreement: None,
                legal_basis: None,
                phase: s(),
                response_due: s(),
                urgency: s(),
            },
            a::PayloadView::Acceptance {
                focal_point: s(),
                responsible_institution: s(),
            },
            a::PayloadView::Decline { reason: s() },
            a::PayloadView::FollowUp {
                date: s(),
                phase: s(),
                status: s(),
            },
            a::PayloadView::InformationRequest {
                categories: vec![],
                fields: vec![],
                purpose: s(),
            },
            a::PayloadView::Disclosure { referral: s() },
            a::PayloadView::ErasureRequest {
                categories: vec![],
                reason: s(),
                referral: s(),
            },
            a::PayloadView::ErasureConfirmation {
                categories: vec![],
                erased: s(),
                request: s(),
            },
            a::PayloadView::Closure {
                date: s(),
                outcome: s(),
            },
            a::PayloadView::DirectoryUpdate {
                contacts: 0,
                version: 0,
            },
            a::PayloadView::KeyAnnouncement { key: s() },
            a::PayloadView::Unknown,
        ];
        let mut out: Vec<String> = payloads
            .iter()
            .flat_map(crate::render::payload_lines)
            .map(|(l, _)| l.to_string())
            .collect();
        let case = a::CaseShow {
            version: Some(Default::default()),
            versions: Some(1),
            reported: Some(Default::default()),
            erased: Some(vec!["health".into()]),
            ..Default::default()
        };
        out.extend(
            crate::render::case_header_rows(&case)
                .into_iter()
                .map(|(k, _)| k.to_string()),
        );
        out
    }

    #[test]
    fn every_vocabulary_word_is_translated() {
        let mut words: Vec<String> = vocab::THREAD_STATES
            .iter()
            .chain(&vocab::DELIVERY_STATES)
            .chain(&vocab::MESSAGE_KINDS)
            .chain(&vocab::PHASE_NAMES)
            .chain(&vocab::FLAGS)
            .chain(&vocab::WORDS)
            .map(|w| w.to_string())
            .collect();
        words.extend(trm_proto::phases::PHASES.split(", ").map(String::from));
        words.extend(trm_proto::phases::OUTCOMES.split(", ").map(String::from));
        words.extend(queue_kinds());
        words.extend(render_labels());
        words.sort();
        words.dedup();
        let mut missing = Vec::new();
        for lang in shipped() {
            for w in &words {
                if lookup(lang, w).is_none() {
                    missing.push(format!("{}: {w:?}", lang.code()));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "untranslated vocabulary:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn words_and_values_fall_back_to_english_as_written() {
        assert_eq!(word(Lang::En, "information_request"), "information request");
        assert_eq!(
            value(Lang::En, "reference.urgency", "emergency"),
            "emergency"
        );
        assert_eq!(
            word(Lang::Fr, "not a word of any list"),
            "not a word of any list"
        );
        assert_ne!(word(Lang::Fr, "pending"), "pending");
        assert_ne!(
            value(Lang::It, "reference.urgency", "emergency"),
            "emergency"
        );
    }

    #[test]
    fn a_consent_record_value_is_translated_by_its_column() {
        assert_eq!(
            value(Lang::En, "consent.child.status", "not_asked"),
            "not asked"
        );
        assert_ne!(
            value(Lang::Fr, "consent.child.status", "given"),
            "given",
            "the French for a consent status"
        );
    }

    #[test]
    fn no_string_is_translated_twice() {
        for lang in [Lang::Fr, Lang::It, Lang::Sq] {
            let c = lang.catalogue().expect("a catalogue");
            for (what, entries, map) in [
                ("page string", c.pages, &maps()[&lang].0),
                ("label", c.labels, &maps()[&lang].1),
            ] {
                assert_eq!(
                    entries.len(),
                    map.len(),
                    "{}: a {what} appears twice in the catalogue",
                    lang.code()
                );
            }
        }
    }

    #[test]
    fn the_language_comes_from_its_cookie_only() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::from_headers(&h), Lang::En);
        h.insert(COOKIE, "trm_console=ab; trm_lang=sq".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::Sq);
        h.insert(COOKIE, "trm_lang=xx".parse().unwrap());
        assert_eq!(Lang::from_headers(&h), Lang::En);
    }
}
