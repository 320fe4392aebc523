//! Albanian: page strings (English → Albanian) and template labels (section or field path →
//! Albanian). One entry per line, sorted by area; see `super` for how they are used.

pub(super) const PAGES: &[(&str, &str)] = &[
    // Navigation
    ("Work queue", "Radha e punës"),
    ("Inbox", "Kutia hyrëse"),
    ("Cases", "Rastet"),
    // Pages
    ("Refused", "Refuzuar"),
    ("No such language.", "Nuk ka gjuhë me këtë emër."),
    (
        "Other fields (national extensions)",
        "Fusha të tjera (shtesa kombëtare)",
    ),
];

pub(super) const LABELS: &[(&str, &str)] = &[];
