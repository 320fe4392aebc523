//! The agreement behind a partnership (`peer add --agreement "MoU IT-AL 2026/03"
//! [--legal-basis "…"]`): its reference and legal basis, recorded with the pinned peer and
//! carried in every referral sent to it (`Referral.agreement`, `Referral.legal_basis`). The
//! one bound the CLI, the node and the receiver's display share.

/// Most characters of an agreement reference or legal basis.
pub const MAX_CHARS: usize = 200;

/// Why `text` is not a valid agreement reference or legal basis (`what` names the option in
/// the one-line error): 1 to [`MAX_CHARS`] characters, no control characters, not only spaces.
pub fn check(what: &str, text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if text.trim().is_empty() {
        Err(format!(
            "{what} is empty: give 1 to {MAX_CHARS} printable characters"
        ))
    } else if n > MAX_CHARS {
        Err(format!(
            "{what} is {n} characters long: at most {MAX_CHARS} printable characters"
        ))
    } else if text.chars().any(char::is_control) {
        Err(format!(
            "{what} contains a control character (a line break, tab or escape): give one line of printable characters"
        ))
    } else {
        Ok(())
    }
}

/// A received agreement text as it may be shown: control characters replaced by U+FFFD and
/// cut at [`MAX_CHARS`] characters (a receiver shows what the sender signed, never refuses
/// a message for it: the field is informational).
pub fn shown(text: &str) -> String {
    text.chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// The basis of a transfer in words, from a referral's two fields; `None` if the sender
/// recorded no agreement.
pub fn basis(agreement: &str, legal_basis: &str) -> Option<String> {
    match (agreement.is_empty(), legal_basis.is_empty()) {
        (true, true) => None,
        (false, true) => Some(shown(agreement)),
        (true, false) => Some(format!("legal basis {}", shown(legal_basis))),
        (false, false) => Some(format!(
            "{} (legal basis: {})",
            shown(agreement),
            shown(legal_basis)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let long = "x".repeat(MAX_CHARS + 1);
        let table: &[(&str, bool)] = &[
            ("MoU IT-AL 2026/03", true),
            (
                "Accordo bilaterale, art. 5 — Reg. (UE) 2016/679 art. 46",
                true,
            ),
            (&long[1..], true),
            (&long, false),
            ("", false),
            ("   ", false),
            ("MoU\nIT-AL", false),
            ("MoU\tIT", false),
            ("MoU \u{1b}[31m", false),
        ];
        for (text, ok) in table {
            assert_eq!(check("--agreement", text).is_ok(), *ok, "{text:?}");
        }
        assert!(check("--agreement", &long)
            .unwrap_err()
            .starts_with("--agreement is 201"));
    }

    #[test]
    fn shown_and_basis() {
        assert_eq!(shown("a\nb"), "a\u{FFFD}b");
        assert_eq!(shown(&"y".repeat(300)).len(), MAX_CHARS);
        assert_eq!(basis("", ""), None);
        assert_eq!(basis("MoU 1", "").as_deref(), Some("MoU 1"));
        assert_eq!(
            basis("MoU 1", "art. 46").as_deref(),
            Some("MoU 1 (legal basis: art. 46)")
        );
    }
}
