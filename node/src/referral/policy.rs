//! Minimal disclosure: which fields may leave for a given peer, and what an incoming message
//! may carry.
//!
//! Released = the outgoing profile for the peer (this country's law) ∩ the peer's published
//! acceptance profile (its law) ∩ the person's recorded consent (personal categories) ∩ a
//! supervisor's approval (personal categories). Every withheld field says which rules withheld
//! it. The receiver re-checks its own acceptance profile and every disclosure's digest.
//!
//! Everything here is pure: the caller looks up the profiles, the case's consent records and
//! the approval, and passes them in; nothing reads the store, the clock or the configuration.

use std::collections::BTreeSet;

use serde::Serialize;
use trm_proto::pb::{self, Category, RejectReason};
use trm_proto::template::{self, Template};

use crate::base::vocab::Refusal;
use crate::store::ApprovalRecord;

/// Why a field is withheld.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Withheld {
    /// This country's outgoing profile for the peer does not include the category.
    OutgoingProfile,
    /// The peer's acceptance profile does not include the category.
    AcceptanceProfile,
    /// The person has not given consent for the category.
    Consent,
    /// No supervisor has approved the category for this referral.
    Approval,
}

/// The decision for one field.
#[derive(Clone, Debug, Serialize)]
pub struct FieldDecision {
    /// Field path.
    pub path: String,
    /// Category name.
    pub category: &'static str,
    /// Released to the peer.
    pub released: bool,
    /// Rules that withheld it (empty when released).
    pub withheld_by: Vec<Withheld>,
}

/// Consent status recorded in the case's fields for `cat`: given and not withdrawn.
pub fn consent_given(fields: &[pb::FieldDisclosure], cat: Category) -> bool {
    let path = format!("consent.{}", template::category_name(cat));
    fields
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| serde_json::from_slice::<serde_json::Value>(&f.value).ok())
        .map(|v| {
            v.get("status").and_then(|s| s.as_str()) == Some("given")
                && v.get("withdrawn").is_none_or(|w| w.is_null())
        })
        .unwrap_or(false)
}

/// The categories supervisors' approvals release for a referral sent by `sender`: four eyes.
/// Grants accumulate; a grant by the sender or the case's `creator` does not count (nobody
/// approves their own case). Unknown category numbers are ignored.
pub fn approved_categories(
    approval: Option<&ApprovalRecord>,
    sender: &str,
    creator: &str,
) -> BTreeSet<Category> {
    approval
        .map(|a| {
            a.all_grants()
                .iter()
                .filter(|g| g.supervisor != sender && g.supervisor != creator)
                .filter_map(|g| Category::try_from(g.category).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Decides every field of a case for one peer. `fields` are the values to decide on;
/// `consent_from` holds the case's consent records; `peer_acceptance` is the peer's published
/// acceptance profile, `outgoing` this country's outgoing profile for the peer, `approved`
/// what [`approved_categories`] gives. A field of an unknown path counts as identity (fail
/// closed).
pub fn decide(
    template: &Template,
    fields: &[pb::FieldDisclosure],
    consent_from: &[pb::FieldDisclosure],
    peer_acceptance: &[Category],
    outgoing: &[Category],
    approved: &BTreeSet<Category>,
) -> Vec<FieldDecision> {
    fields
        .iter()
        .map(|f| {
            let cat = template.category_of(&f.path).unwrap_or(Category::Identity);
            let mut why = Vec::new();
            if template::is_header_field(&f.path) {
                // The header travels to every partner (template::HEADER_FIELDS).
            } else if !outgoing.contains(&cat) {
                why.push(Withheld::OutgoingProfile);
            }
            if !peer_acceptance.contains(&cat) && !template::is_header_field(&f.path) {
                why.push(Withheld::AcceptanceProfile);
            }
            if template::is_personal(cat) {
                if !consent_given(consent_from, cat) {
                    why.push(Withheld::Consent);
                }
                if !approved.contains(&cat) {
                    why.push(Withheld::Approval);
                }
            }
            FieldDecision {
                path: f.path.clone(),
                category: template::category_name(cat),
                released: why.is_empty(),
                withheld_by: why,
            }
        })
        .collect()
}

/// The case's values as they are sealed into a referral: `reference.minor` set to what the
/// template's child-case rule derives from them ([`template::is_child`]), replacing any
/// recorded value (the case's validation already refused one that contradicts it).
pub fn with_header(mut fields: Vec<pb::FieldDisclosure>) -> Vec<pb::FieldDisclosure> {
    let value = |path: &str| {
        fields
            .iter()
            .find(|f| f.path == path)
            .and_then(|f| serde_json::from_slice::<serde_json::Value>(&f.value).ok())
    };
    let minor = template::is_child(value);
    fields.retain(|f| f.path != template::REFERENCE_MINOR);
    fields.push(pb::FieldDisclosure {
        path: template::REFERENCE_MINOR.to_string(),
        salt: vec![],
        value: template::canonical_json(&serde_json::Value::Bool(minor)),
    });
    fields
}

/// Whether a child case's child section stays behind: the case is a child case (by
/// `reference.minor` in `fields`, see [`with_header`]) and some `child.*` field is withheld.
pub fn child_section_withheld(fields: &[pb::FieldDisclosure], decisions: &[FieldDecision]) -> bool {
    let child = fields
        .iter()
        .any(|f| f.path == template::REFERENCE_MINOR && f.value == b"true");
    child
        && decisions
            .iter()
            .any(|d| d.path.starts_with("child.") && !d.released)
}

/// The template a receiver uses for a message: its own, plus the sender's declared
/// extensions (so unknown extension fields keep their declared category).
pub fn receiving_template(
    own: &Template,
    exts: &[pb::ExtensionField],
) -> Result<Template, Refusal> {
    own.for_received(exts)
        .map_err(|e| Refusal::new(RejectReason::Malformed, format!("declared extensions: {e}")))
}

/// Checks disclosures against signed digests, this node's `acceptance` profile and the field
/// kinds of `template` (from [`receiving_template`]).
pub fn check_disclosures(
    acceptance: &[Category],
    template: &Template,
    digests: &[Vec<u8>],
    disclosures: &[pb::FieldDisclosure],
) -> Result<(), Refusal> {
    trm_proto::commit::verify_disclosures(digests, disclosures).map_err(|e| Refusal {
        reason: RejectReason::BadDisclosure,
        detail: e.to_string(),
        fields: vec![],
    })?;
    let mut beyond = Vec::new();
    for d in disclosures {
        let Some(cat) = template.category_of(&d.path) else {
            return Err(Refusal {
                reason: RejectReason::BadDisclosure,
                detail: format!("unknown field {}", d.path),
                fields: vec![d.path.clone()],
            });
        };
        if !acceptance.contains(&cat) && !template::is_header_field(&d.path) {
            beyond.push(d.path.clone());
        }
    }
    if !beyond.is_empty() {
        return Err(Refusal {
            reason: RejectReason::CategoryNotAccepted,
            detail: format!(
                "{} field(s) of categories this node may not receive",
                beyond.len()
            ),
            fields: beyond,
        });
    }
    for d in disclosures {
        template
            .parse_field_value(&d.path, &d.value)
            .map_err(|e| Refusal {
                reason: RejectReason::BadDisclosure,
                detail: format!("{}: {}", d.path, e.reason),
                fields: vec![d.path.clone()],
            })?;
    }
    Ok(())
}

/// Commits every field with fresh salts and picks the disclosures `decisions` release.
pub fn commit_and_release(
    fields: &[pb::FieldDisclosure],
    decisions: &[FieldDecision],
) -> Result<(trm_proto::commit::Commitment, Vec<pb::FieldDisclosure>), trm_proto::commit::CommitError>
{
    let pairs: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|f| (f.path.clone(), f.value.clone()))
        .collect();
    let c = trm_proto::commit::commit(&pairs, &mut rand::rngs::OsRng)?;
    let released: BTreeSet<&str> = decisions
        .iter()
        .filter(|d| d.released)
        .map(|d| d.path.as_str())
        .collect();
    let out = c
        .disclosures
        .iter()
        .filter(|d| released.contains(d.path.as_str()))
        .cloned()
        .collect();
    Ok((c, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trm_proto::pb::Category::{
        Assistance, Child, Exploitation, Family, Health, Identity, Proceedings, Reference, Return,
        Risk,
    };
    use Withheld::{
        AcceptanceProfile as Acc, Approval as Appr, Consent as Cons, OutgoingProfile as Out,
    };

    const ALL: &[Category] = &template::ALL_CATEGORIES;
    /// What France publishes: no personal category at all.
    const FRANCE: &[Category] = &[
        Reference,
        Exploitation,
        Assistance,
        Risk,
        Return,
        Proceedings,
    ];
    /// This country's default outgoing profile: the non-identifying categories.
    const DEFAULT_OUT: &[Category] = FRANCE;
    const GIVEN: &str = r#"{"status":"given","form":"written"}"#;

    fn field(path: &str, json: &str) -> pb::FieldDisclosure {
        pb::FieldDisclosure {
            path: path.to_string(),
            salt: vec![],
            value: json.as_bytes().to_vec(),
        }
    }

    /// One field decided for one peer.
    struct Row {
        case: &'static str,
        path: &'static str,
        outgoing: &'static [Category],
        acceptance: &'static [Category],
        /// The case's consent records: `(consent path, JSON value)`.
        consent: &'static [(&'static str, &'static str)],
        approved: &'static [Category],
        want: &'static [Withheld],
    }

    const ROWS: &[Row] = &[
        // Non-identifying categories need neither consent nor approval.
        Row {
            case: "non-identifying field, every profile allows it",
            path: "risk.level",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[],
            approved: &[],
            want: &[],
        },
        Row {
            case: "non-identifying field with consent refused for it",
            path: "exploitation.forms",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.exploitation", r#"{"status":"refused"}"#)],
            approved: &[],
            want: &[],
        },
        // The France rule: a peer that accepts no personal data gets none, whatever else allows it.
        Row {
            case: "France rule: identity with consent and approval",
            path: "identity.family_name",
            outgoing: ALL,
            acceptance: FRANCE,
            consent: &[("consent.identity", GIVEN)],
            approved: &[Identity],
            want: &[Acc],
        },
        Row {
            case: "France rule: health with consent and approval",
            path: "health.medical_needs",
            outgoing: ALL,
            acceptance: FRANCE,
            consent: &[("consent.health", GIVEN)],
            approved: &[Health],
            want: &[Acc],
        },
        Row {
            case: "France rule: child field with consent and approval",
            path: "child.minor",
            outgoing: ALL,
            acceptance: FRANCE,
            consent: &[("consent.child", GIVEN)],
            approved: &[Child],
            want: &[Acc],
        },
        Row {
            case: "France rule: family without consent or approval",
            path: "family.family_members",
            outgoing: ALL,
            acceptance: FRANCE,
            consent: &[],
            approved: &[],
            want: &[Acc, Cons, Appr],
        },
        Row {
            case: "France rule: the non-identifying part still goes",
            path: "proceedings.role",
            outgoing: ALL,
            acceptance: FRANCE,
            consent: &[],
            approved: &[],
            want: &[],
        },
        // Consent: given and not withdrawn, for the field's own category.
        Row {
            case: "consent given, approved: personal field released",
            path: "identity.family_name",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.identity", GIVEN)],
            approved: &[Identity],
            want: &[],
        },
        Row {
            case: "consent absent",
            path: "identity.family_name",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[],
            approved: &[Identity],
            want: &[Cons],
        },
        Row {
            case: "consent withdrawn",
            path: "identity.family_name",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[(
                "consent.identity",
                r#"{"status":"given","withdrawn":"2026-01-02"}"#,
            )],
            approved: &[Identity],
            want: &[Cons],
        },
        Row {
            case: "consent with an empty (null) withdrawal is still given",
            path: "identity.family_name",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.identity", r#"{"status":"given","withdrawn":null}"#)],
            approved: &[Identity],
            want: &[],
        },
        Row {
            case: "consent refused",
            path: "health.medical_needs",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.health", r#"{"status":"refused"}"#)],
            approved: &[Health],
            want: &[Cons],
        },
        Row {
            case: "consent not asked",
            path: "health.medical_needs",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.health", r#"{"status":"not_asked"}"#)],
            approved: &[Health],
            want: &[Cons],
        },
        Row {
            case: "consent given for another category only",
            path: "health.medical_needs",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.identity", GIVEN)],
            approved: &[Health],
            want: &[Cons],
        },
        Row {
            case: "consent record that is not JSON",
            path: "family.family_members",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.family", "given")],
            approved: &[Family],
            want: &[Cons],
        },
        // Four eyes: personal categories need a supervisor's approval for this peer.
        Row {
            case: "four eyes: consent but no approval",
            path: "child.minor",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.child", GIVEN)],
            approved: &[],
            want: &[Appr],
        },
        Row {
            case: "four eyes: approval of another category",
            path: "child.minor",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[("consent.child", GIVEN)],
            approved: &[Identity, Health],
            want: &[Appr],
        },
        // The outgoing profile: this country's law for the peer.
        Row {
            case: "outgoing profile: the default sends no identity",
            path: "identity.family_name",
            outgoing: DEFAULT_OUT,
            acceptance: ALL,
            consent: &[("consent.identity", GIVEN)],
            approved: &[Identity],
            want: &[Out],
        },
        Row {
            case: "outgoing profile removes a non-identifying category",
            path: "proceedings.role",
            outgoing: &[Reference, Exploitation, Assistance, Risk, Return],
            acceptance: ALL,
            consent: &[],
            approved: &[],
            want: &[Out],
        },
        Row {
            case: "outgoing profile and the peer's profile both remove it",
            path: "return.wish",
            outgoing: &[Reference],
            acceptance: &[Reference],
            consent: &[],
            approved: &[],
            want: &[Out, Acc],
        },
        Row {
            case: "every rule at once, in order",
            path: "health.medical_needs",
            outgoing: DEFAULT_OUT,
            acceptance: FRANCE,
            consent: &[],
            approved: &[],
            want: &[Out, Acc, Cons, Appr],
        },
        // The header (case reference, urgency, minor) goes to every partner.
        Row {
            case: "header: the minor flag to a peer that accepts nothing",
            path: "reference.minor",
            outgoing: &[],
            acceptance: &[],
            consent: &[],
            approved: &[],
            want: &[],
        },
        Row {
            case: "header: urgency whatever the outgoing profile",
            path: "reference.urgency",
            outgoing: &[Exploitation],
            acceptance: FRANCE,
            consent: &[],
            approved: &[],
            want: &[],
        },
        Row {
            case: "not header: the reason follows the profiles",
            path: "reference.reason",
            outgoing: &[Exploitation],
            acceptance: &[Exploitation],
            consent: &[],
            approved: &[],
            want: &[Out, Acc],
        },
        // A path the template does not know is decided as identity: fail closed.
        Row {
            case: "unknown path counts as identity",
            path: "ext.zz.note",
            outgoing: ALL,
            acceptance: ALL,
            consent: &[],
            approved: &[],
            want: &[Cons, Appr],
        },
        Row {
            case: "unknown path under the default outgoing profile",
            path: "ext.zz.note",
            outgoing: DEFAULT_OUT,
            acceptance: ALL,
            consent: &[("consent.identity", GIVEN)],
            approved: &[Identity],
            want: &[Out],
        },
    ];

    #[test]
    fn release_decisions() {
        let t = Template::default();
        let mut failed = Vec::new();
        for r in ROWS {
            let consent: Vec<_> = r.consent.iter().map(|(p, v)| field(p, v)).collect();
            let approved: BTreeSet<Category> = r.approved.iter().copied().collect();
            let fields = [field(r.path, "\"synthetic\"")];
            let d = decide(&t, &fields, &consent, r.acceptance, r.outgoing, &approved);
            assert_eq!(d.len(), 1, "{}", r.case);
            let want_cat = template::category_name(t.category_of(r.path).unwrap_or(Identity));
            if d[0].withheld_by != r.want
                || d[0].released != r.want.is_empty()
                || d[0].path != r.path
                || d[0].category != want_cat
            {
                failed.push(format!("{}: want {:?}, got {:?}", r.case, r.want, d[0]));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn the_header_says_whether_the_person_is_a_child() {
        type HeaderRow = (
            &'static str,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let rows: [HeaderRow; 5] = [
            ("adult", &[("reference.date", "\"2026-03-01\"")], "false"),
            ("child.minor true", &[("child.minor", "true")], "true"),
            (
                "date of birth under 18",
                &[
                    ("reference.date", "\"2026-03-01\""),
                    ("identity.date_of_birth", "\"2010-05-01\""),
                ],
                "true",
            ),
            (
                "a recorded value is replaced by the derived one",
                &[("reference.minor", "true"), ("child.minor", "false")],
                "false",
            ),
            ("nothing known", &[], "false"),
        ];
        for (case, given, want) in rows {
            let fields = given.iter().map(|(p, v)| field(p, v)).collect();
            let out = with_header(fields);
            let minor: Vec<&[u8]> = out
                .iter()
                .filter(|f| f.path == "reference.minor")
                .map(|f| f.value.as_slice())
                .collect();
            assert_eq!(minor, [want.as_bytes()], "{case}");
        }
    }

    #[test]
    fn an_extension_is_decided_by_its_declared_category() {
        let ext = template::Extension::new(
            "ext.it.permit_number",
            template::ExtKind::Text,
            Assistance,
            "Residence permit number",
        )
        .expect("extension");
        let t = Template::new(vec![ext], Vec::<String>::new()).expect("template");
        let d = decide(
            &t,
            &[field("ext.it.permit_number", "\"P-0001\"")],
            &[],
            FRANCE,
            DEFAULT_OUT,
            &BTreeSet::new(),
        );
        assert_eq!(d[0].category, "assistance");
        assert!(d[0].released, "{:?}", d[0]);
    }

    #[test]
    fn one_decision_per_field_in_order_for_france() {
        let fields = [
            field("reference.case_ref", "\"IT-2026-0001\""),
            field("identity.family_name", "\"Synthetic\""),
            field("exploitation.forms", "[\"labour\"]"),
            field("health.medical_needs", "\"synthetic\""),
            field("consent.identity", GIVEN),
            field("consent.health", GIVEN),
        ];
        let d = decide(
            &Template::default(),
            &fields,
            &fields,
            FRANCE,
            ALL,
            &[Identity, Health].into_iter().collect(),
        );
        let released: Vec<(&str, bool)> = d.iter().map(|d| (d.path.as_str(), d.released)).collect();
        assert_eq!(
            released,
            [
                ("reference.case_ref", true),
                ("identity.family_name", false),
                ("exploitation.forms", true),
                ("health.medical_needs", false),
                ("consent.identity", true),
                ("consent.health", true),
            ]
        );
    }

    fn approval(supervisor: &str, categories: &[i32]) -> ApprovalRecord {
        ApprovalRecord {
            categories: categories.to_vec(),
            supervisor: supervisor.to_string(),
            at_ms: 1,
            ..Default::default()
        }
    }

    /// Grants by several supervisors: (supervisor, category).
    fn grants(list: &[(&str, Category)]) -> ApprovalRecord {
        let mut rec = ApprovalRecord::default();
        for (who, c) in list {
            rec.grant(*c as i32, who, 2);
        }
        rec
    }

    /// A case, the approval kept, the sender, the case's creator, and what it approves.
    type ApprovalRow = (
        &'static str,
        Option<ApprovalRecord>,
        &'static str,
        &'static str,
        &'static [Category],
    );

    #[test]
    fn four_eyes() {
        let both = [Identity as i32, Health as i32];
        let rows: [ApprovalRow; 10] = [
            (
                "two supervisors' grants accumulate",
                Some(grants(&[("sam", Identity), ("sue", Health)])),
                "olga",
                "olga",
                &[Identity, Health],
            ),
            (
                "the creator's grant is ignored, a colleague's kept",
                Some(grants(&[("oscar", Health), ("sam", Identity)])),
                "olga",
                "oscar",
                &[Identity],
            ),
            (
                "a grant after a record written before issue 12 adds to it",
                Some({
                    let mut r = approval("sam", &[Identity as i32]);
                    r.grant(Child as i32, "sue", 3);
                    r
                }),
                "olga",
                "olga",
                &[Identity, Child],
            ),
            ("no approval", None, "olga", "olga", &[]),
            (
                "another supervisor approved",
                Some(approval("sam", &both)),
                "olga",
                "olga",
                &[Identity, Health],
            ),
            (
                "the sender approved their own referral",
                Some(approval("olga", &both)),
                "olga",
                "oscar",
                &[],
            ),
            (
                "the case's creator approved it for another sender",
                Some(approval("oscar", &both)),
                "olga",
                "oscar",
                &[],
            ),
            (
                "a supervisor who neither created nor sends",
                Some(approval("sam", &[Child as i32])),
                "olga",
                "oscar",
                &[Child],
            ),
            (
                "unknown category numbers are ignored",
                Some(approval("sam", &[Family as i32, 999])),
                "olga",
                "olga",
                &[Family],
            ),
            (
                "an empty approval approves nothing",
                Some(approval("sam", &[])),
                "olga",
                "olga",
                &[],
            ),
        ];
        for (case, a, sender, creator, want) in rows {
            let got = approved_categories(a.as_ref(), sender, creator);
            let want: BTreeSet<Category> = want.iter().copied().collect();
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_self_approval_releases_nothing_personal() {
        let fields = [
            field("identity.family_name", "\"Synthetic\""),
            field("consent.identity", GIVEN),
        ];
        let approved =
            approved_categories(Some(&approval("olga", &[Identity as i32])), "olga", "oscar");
        let d = decide(&Template::default(), &fields, &fields, ALL, ALL, &approved);
        assert_eq!(d[0].withheld_by, [Appr]);
    }

    #[test]
    fn only_released_fields_leave_and_they_verify() {
        let fields = [
            field("reference.case_ref", "\"IT-2026-0001\""),
            field("identity.family_name", "\"Synthetic\""),
            field("risk.level", "\"high\""),
        ];
        let d = decide(
            &Template::default(),
            &fields,
            &[],
            FRANCE,
            ALL,
            &BTreeSet::new(),
        );
        let (c, out) = commit_and_release(&fields, &d).expect("commit");
        let paths: Vec<&str> = out.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["reference.case_ref", "risk.level"]);
        assert_eq!(
            c.disclosures.len(),
            fields.len(),
            "every field is committed"
        );
        let digests: Vec<Vec<u8>> = c.digests.iter().map(|d| d.to_vec()).collect();
        trm_proto::commit::verify_disclosures(&digests, &out).expect("released fields verify");
    }

    /// A committed case and the digests a referral would carry.
    fn committed(fields: &[(&str, &str)]) -> (Vec<Vec<u8>>, Vec<pb::FieldDisclosure>) {
        let pairs: Vec<(String, Vec<u8>)> = fields
            .iter()
            .map(|(p, v)| (p.to_string(), v.as_bytes().to_vec()))
            .collect();
        let c = trm_proto::commit::commit(&pairs, &mut rand::rngs::OsRng).expect("commit");
        (
            c.digests.iter().map(|d| d.to_vec()).collect(),
            c.disclosures,
        )
    }

    fn ext_decl(path: &str, category: Category) -> pb::ExtensionField {
        pb::ExtensionField {
            path: path.to_string(),
            kind: "text".to_string(),
            category: category as i32,
            help: "Synthetic extension".to_string(),
        }
    }

    /// A case, this node's acceptance profile, the extensions the sender declared, the
    /// disclosures, and Ok or the refusal (reason, start of the detail, fields named).
    type ReceiptRow = (
        &'static str,
        &'static [Category],
        Vec<pb::ExtensionField>,
        Vec<pb::FieldDisclosure>,
        Result<(), (RejectReason, &'static str, &'static [&'static str])>,
    );

    #[test]
    fn checks_on_receipt() {
        let (digests, all) = committed(&[
            ("reference.case_ref", "\"IT-2026-0001\""),
            ("identity.family_name", "\"Synthetic\""),
            ("health.medical_needs", "\"synthetic\""),
            ("risk.level", "\"high\""),
            ("child.minor", "\"yes\""),
            ("ext.zz.note", "\"synthetic\""),
            ("reference.minor", "true"),
            ("reference.urgency", "\"emergency\""),
        ]);
        let pick = |paths: &[&str]| -> Vec<pb::FieldDisclosure> {
            all.iter()
                .filter(|d| paths.contains(&d.path.as_str()))
                .cloned()
                .collect()
        };
        let mut forged = pick(&["risk.level"]);
        forged[0].value = b"\"low\"".to_vec();
        let beyond = "1 field(s) of categories this node may not receive";
        let rows: Vec<ReceiptRow> = vec![
            (
                "within the acceptance profile",
                ALL,
                vec![],
                pick(&["reference.case_ref", "identity.family_name", "risk.level"]),
                Ok(()),
            ),
            (
                "France rule: the non-identifying part is accepted",
                FRANCE,
                vec![],
                pick(&["reference.case_ref", "risk.level"]),
                Ok(()),
            ),
            (
                "France rule: an identity field is refused and named",
                FRANCE,
                vec![],
                pick(&["reference.case_ref", "identity.family_name"]),
                Err((
                    RejectReason::CategoryNotAccepted,
                    beyond,
                    &["identity.family_name"],
                )),
            ),
            (
                "France rule: every personal field is named",
                FRANCE,
                vec![],
                pick(&["identity.family_name", "risk.level", "health.medical_needs"]),
                Err((
                    RejectReason::CategoryNotAccepted,
                    "2 field(s) of categories this node may not receive",
                    &["identity.family_name", "health.medical_needs"],
                )),
            ),
            (
                "the header is accepted whatever the acceptance profile",
                &[Exploitation],
                vec![],
                pick(&["reference.case_ref", "reference.minor", "reference.urgency"]),
                Ok(()),
            ),
            (
                "a value that does not match its signed digest",
                ALL,
                vec![],
                forged,
                Err((RejectReason::BadDisclosure, "", &[])),
            ),
            (
                "a field of no known path",
                ALL,
                vec![],
                pick(&["ext.zz.note"]),
                Err((
                    RejectReason::BadDisclosure,
                    "unknown field ext.zz.note",
                    &["ext.zz.note"],
                )),
            ),
            (
                "a declared extension keeps its category",
                FRANCE,
                vec![ext_decl("ext.zz.note", Assistance)],
                pick(&["ext.zz.note"]),
                Ok(()),
            ),
            (
                "France rule: a declared personal extension is refused",
                FRANCE,
                vec![ext_decl("ext.zz.note", Health)],
                pick(&["ext.zz.note"]),
                Err((RejectReason::CategoryNotAccepted, beyond, &["ext.zz.note"])),
            ),
            (
                "a value of the wrong kind",
                ALL,
                vec![],
                pick(&["child.minor"]),
                Err((
                    RejectReason::BadDisclosure,
                    "child.minor: ",
                    &["child.minor"],
                )),
            ),
            (
                "beyond the profile is refused before the kinds are checked",
                FRANCE,
                vec![],
                pick(&["child.minor"]),
                Err((RejectReason::CategoryNotAccepted, beyond, &["child.minor"])),
            ),
        ];
        for (case, acceptance, exts, disclosures, want) in rows {
            let template = receiving_template(&Template::default(), &exts).expect(case);
            let got = check_disclosures(acceptance, &template, &digests, &disclosures);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(r), Err((reason, detail, fields))) => {
                    assert_eq!(r.reason, reason, "{case}: {}", r.detail);
                    assert!(r.detail.starts_with(detail), "{case}: {}", r.detail);
                    assert!(!r.detail.contains('\n'), "{case}: {}", r.detail);
                    assert_eq!(r.fields, fields, "{case}");
                }
                (got, want) => panic!("{case}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn declared_extensions_that_are_not_valid_are_malformed() {
        for (case, decl) in [
            (
                "not an extension path",
                ext_decl("identity.nickname", Assistance),
            ),
            (
                "no category",
                ext_decl("ext.zz.note", Category::Unspecified),
            ),
        ] {
            let r = receiving_template(&Template::default(), &[decl])
                .err()
                .unwrap_or_else(|| panic!("{case}: accepted"));
            assert_eq!(r.reason, RejectReason::Malformed, "{case}");
            assert!(
                r.detail.starts_with("declared extensions: "),
                "{case}: {}",
                r.detail
            );
        }
    }
}
