//! French: page strings (English → French) and template labels (section or field path →
//! French). One entry per line, sorted by area; see `super` for how they are used.

pub(super) const PAGES: &[(&str, &str)] = &[
    // Navigation
    ("Work queue", "File de travail"),
    ("Inbox", "Boîte de réception"),
    ("Cases", "Dossiers"),
    // Pages
    ("Refused", "Refusé"),
    ("No such language.", "Aucune langue de ce nom."),
    (
        "Other fields (national extensions)",
        "Autres champs (extensions nationales)",
    ),
];

pub(super) const LABELS: &[(&str, &str)] = &[];
