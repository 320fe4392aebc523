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
    // Case form (form.rs)
    ("A list of records: recorded with the command line (trm-admin case update --file); this form keeps them as they are.", "Një listë regjistrimesh: regjistrohet nga rreshti i komandave (trm-admin case update --file); ky formular e ruan siç është."),
    ("Answer sent", "Përgjigjja u dërgua"),
    ("Answer this information request", "Përgjigjuni kësaj kërkese për informacion"),
    ("Date", "Data"),
    ("Edit the case", "Ndryshoni dosjen"),
    ("Follow-up", "Vijimi"),
    ("New case", "Dosje e re"),
    ("None of the fields asked for is in this node's template.", "Asnjë nga fushat e kërkuara nuk është në shabllonin e kësaj nyjeje."),
    ("Only a case recorded here can be edited.", "Mund të ndryshohet vetëm një dosje e regjistruar këtu."),
    ("Phase", "Faza"),
    ("Preview", "Parapamje"),
    ("Save the case", "Ruani dosjen"),
    ("Send the answer", "Dërgoni përgjigjen"),
    ("Status (no personal data)", "Gjendja (asnjë e dhënë personale)"),
    ("The form's action is neither preview nor send.", "Veprimi i formularit nuk është as parapamje as dërgim."),
    ("The node refused the case:", "Nyja e refuzoi dosjen:"),
    ("This message is not an information request waiting for an answer.", "Ky mesazh nuk është një kërkesë për informacion që pret përgjigje."),
    ("no", "jo"),
    ("not set", "e pacaktuar"),
    ("yes", "po"),
];

pub(super) const LABELS: &[(&str, &str)] = &[];
