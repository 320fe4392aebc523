//! Italian: page strings (English → Italian) and template labels (section or field path →
//! Italian). One entry per line, sorted by area; see `super` for how they are used.

pub(super) const PAGES: &[(&str, &str)] = &[
    // Navigation
    ("Work queue", "Coda di lavoro"),
    ("Inbox", "Posta in arrivo"),
    ("Cases", "Casi"),
    // Pages
    ("Refused", "Rifiutato"),
    ("No such language.", "Nessuna lingua con questo nome."),
    (
        "Other fields (national extensions)",
        "Altri campi (estensioni nazionali)",
    ),
];

pub(super) const LABELS: &[(&str, &str)] = &[];
