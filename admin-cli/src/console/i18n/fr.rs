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
    // Case form (form.rs)
    ("A list of records: recorded with the command line (trm-admin case update --file); this form keeps them as they are.", "Une liste d'enregistrements : saisie en ligne de commande (trm-admin case update --file) ; ce formulaire la conserve telle quelle."),
    ("Answer sent", "Réponse envoyée"),
    ("Answer this information request", "Répondre à cette demande d'informations"),
    ("Date", "Date"),
    ("Edit the case", "Modifier le dossier"),
    ("Follow-up", "Suivi"),
    ("New case", "Nouveau dossier"),
    ("None of the fields asked for is in this node's template.", "Aucun des champs demandés ne figure dans le modèle de ce nœud."),
    ("Only a case recorded here can be edited.", "Seul un dossier enregistré ici peut être modifié."),
    ("Phase", "Phase"),
    ("Preview", "Aperçu"),
    ("Save the case", "Enregistrer le dossier"),
    ("Send the answer", "Envoyer la réponse"),
    ("Status (no personal data)", "État (aucune donnée personnelle)"),
    ("The form's action is neither preview nor send.", "L'action du formulaire n'est ni aperçu ni envoi."),
    ("The node refused the case:", "Le nœud a refusé le dossier :"),
    ("This message is not an information request waiting for an answer.", "Ce message n'est pas une demande d'informations en attente de réponse."),
    ("no", "non"),
    ("not set", "non renseigné"),
    ("yes", "oui"),
];

pub(super) const LABELS: &[(&str, &str)] = &[];
