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
    // Case form (form.rs)
    ("A list of records: recorded with the command line (trm-admin case update --file); this form keeps them as they are.", "Un elenco di record: si registra dalla riga di comando (trm-admin case update --file); questo modulo lo conserva così com'è."),
    ("Answer sent", "Risposta inviata"),
    ("Answer this information request", "Rispondere a questa richiesta di informazioni"),
    ("Date", "Data"),
    ("Edit the case", "Modificare il fascicolo"),
    ("Follow-up", "Seguito"),
    ("New case", "Nuovo fascicolo"),
    ("None of the fields asked for is in this node's template.", "Nessuno dei campi richiesti è nel modello di questo nodo."),
    ("Only a case recorded here can be edited.", "Si può modificare solo un fascicolo registrato qui."),
    ("Phase", "Fase"),
    ("Preview", "Anteprima"),
    ("Save the case", "Salvare il fascicolo"),
    ("Send the answer", "Inviare la risposta"),
    ("Status (no personal data)", "Stato (nessun dato personale)"),
    ("The form's action is neither preview nor send.", "L'azione del modulo non è né anteprima né invio."),
    ("The node refused the case:", "Il nodo ha rifiutato il fascicolo:"),
    ("This message is not an information request waiting for an answer.", "Questo messaggio non è una richiesta di informazioni in attesa di risposta."),
    ("no", "no"),
    ("not set", "non indicato"),
    ("yes", "sì"),
];

pub(super) const LABELS: &[(&str, &str)] = &[];
