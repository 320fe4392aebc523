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
    maps()
        .get(&lang)
        .and_then(|(_, l)| l.get(path).copied())
        .map(str::to_string)
        .unwrap_or_else(|| english_label(path))
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
