//! The TRM referral template: the fields a national referral unit (NRU) may record about a
//! case and send to another country, their kinds and data categories, and the rules a case
//! document must follow.
//!
//! The template follows the follow-up of the Transnational Referral Mechanism (TRM) of
//! South-Eastern Europe: reference data, identity, family, child protection, exploitation
//! (including labour exploitation), health, assistance, risk, return, proceedings and consent
//! per data category. Every field has a path `section.field`, a [`Kind`], exactly one
//! [`Category`] and a one-line help text; the static table is [`core_fields`]. A country adds
//! national fields (`ext.<namespace>.<name>`, see [`Extension`]) and switches off core fields
//! its law forbids it to record; a [`Template`] is that configuration.
//!
//! A case is written as JSON (see docs/TEMPLATE.md): an object of sections, `null` meaning
//! "not recorded", keys beginning with `//` being comments. [`Template::parse_case`] checks
//! everything and collects every error; an error names the field path and the reason, never
//! the value. A parsed [`Case`] maps paths to validated values, and each value's canonical
//! bytes ([`canonical_json`]) are what the referral commits to and discloses.
//!
//! Nothing here does I/O: callers pass JSON text or values.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::pb::{self, Category};

/// Version of the template, carried in `Referral.template_version`.
pub const TEMPLATE_VERSION: &str = "trm-template/1";

/// Largest case document or disclosed value accepted, in bytes.
pub const MAX_CASE_BYTES: usize = 1 << 20;
/// Longest `text` value, in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Longest `long_text` value, in characters.
pub const MAX_LONG_TEXT_CHARS: usize = 10_000;
/// Longest canonical value of one field, in bytes (the protocol's limit for a disclosed value).
pub const MAX_VALUE_BYTES: usize = 65_536;
/// Most entries in a list or records field.
pub const MAX_LIST_ITEMS: usize = 100;
/// Most national extension fields in one configuration.
pub const MAX_EXTENSIONS: usize = 200;

/// The key under which national extensions are written in a case document.
pub const EXT_SECTION: &str = "ext";

/// The sections of the core template, in template order.
pub const SECTIONS: [&str; 12] = [
    "reference",
    "identity",
    "family",
    "child",
    "exploitation",
    "labour",
    "health",
    "assistance",
    "risk",
    "return",
    "proceedings",
    "consent",
];

/// Every data category, non-identifying ones first (protobuf order).
pub const ALL_CATEGORIES: [Category; 10] = [
    Category::Reference,
    Category::Exploitation,
    Category::Assistance,
    Category::Risk,
    Category::Return,
    Category::Proceedings,
    Category::Identity,
    Category::Family,
    Category::Health,
    Category::Child,
];

/// Lower-case name of a category (`"identity"`); `"unspecified"` for the protobuf default.
pub fn category_name(c: Category) -> &'static str {
    match c {
        Category::Unspecified => "unspecified",
        Category::Reference => "reference",
        Category::Exploitation => "exploitation",
        Category::Assistance => "assistance",
        Category::Risk => "risk",
        Category::Return => "return",
        Category::Proceedings => "proceedings",
        Category::Identity => "identity",
        Category::Family => "family",
        Category::Health => "health",
        Category::Child => "child",
    }
}

/// The category with this lower-case name (exactly as [`category_name`] writes it).
pub fn parse_category(s: &str) -> Option<Category> {
    ALL_CATEGORIES.into_iter().find(|c| category_name(*c) == s)
}

/// Whether data of this category identifies a person (identity, family, health, child).
///
/// `Unspecified` counts as personal: what cannot be classified is protected.
pub fn is_personal(c: Category) -> bool {
    !matches!(
        c,
        Category::Reference
            | Category::Exploitation
            | Category::Assistance
            | Category::Risk
            | Category::Return
            | Category::Proceedings
    )
}

// ---------------------------------------------------------------------------------------------
// Kinds
// ---------------------------------------------------------------------------------------------

/// What a field's value looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// One line of text: a non-empty JSON string without control characters or surrounding
    /// whitespace, at most [`MAX_TEXT_CHARS`] characters.
    Text,
    /// Free text: like `Text` but may contain newlines and tabs, at most
    /// [`MAX_LONG_TEXT_CHARS`] characters.
    LongText,
    /// A real calendar date `YYYY-MM-DD`, years 1900 to 2199.
    Date,
    /// `true` or `false`.
    Bool,
    /// A JSON integer (64-bit signed).
    Integer,
    /// A year: a JSON integer from [`MIN_YEAR`] to [`MAX_YEAR`], the years of [`Kind::Date`].
    Year,
    /// One of the listed lower-case values.
    Enum(&'static [&'static str]),
    /// A non-empty list of distinct listed values.
    EnumList(&'static [&'static str]),
    /// A non-empty list of distinct `Text` values.
    TextList,
    /// Two upper-case ASCII letters (ISO 3166-1 alpha-2; user-assigned codes such as `XK`
    /// are accepted, only the form is checked).
    CountryCode,
    /// A non-empty list of distinct country codes.
    CountryList,
    /// A non-empty list of record objects with these named fields; every field of a record
    /// is optional but a record must hold at least one.
    Records(&'static [(&'static str, Kind)]),
    /// A consent record, an object with the fields of [`CONSENT_FIELDS`]; only `status` is
    /// required.
    Consent,
}

/// Values of a consent record's `status`.
pub const CONSENT_STATUS: &[&str] = &["given", "refused", "not_asked"];

/// The fields of a consent record ([`Kind::Consent`]); `status` is required.
pub const CONSENT_FIELDS: &[(&str, Kind)] = &[
    ("status", Kind::Enum(CONSENT_STATUS)),
    ("date", Kind::Date),
    ("form", Kind::Enum(&["written", "oral"])),
    ("by", Kind::Enum(&["person", "guardian"])),
    ("withdrawn", Kind::Date),
    ("withdrawn_by", Kind::Enum(&["person", "guardian"])),
];

impl Kind {
    /// Short name of the kind, as in the docs, the CLI and `ExtensionField.kind`
    /// (`"text"`, `"long_text"`, `"date"`, `"bool"`, `"integer"`, `"enum"`, `"enum_list"`,
    /// `"text_list"`, `"country_code"`, `"country_list"`, `"records"`, `"consent"`).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::LongText => "long_text",
            Kind::Date => "date",
            Kind::Bool => "bool",
            Kind::Integer => "integer",
            Kind::Year => "year",
            Kind::Enum(_) => "enum",
            Kind::EnumList(_) => "enum_list",
            Kind::TextList => "text_list",
            Kind::CountryCode => "country_code",
            Kind::CountryList => "country_list",
            Kind::Records(_) => "records",
            Kind::Consent => "consent",
        }
    }

    /// The allowed values of an enum or enum list; empty for other kinds.
    pub fn allowed_values(&self) -> &'static [&'static str] {
        match self {
            Kind::Enum(v) | Kind::EnumList(v) => v,
            _ => &[],
        }
    }

    /// The named fields of a records or consent value; empty for other kinds.
    pub fn record_fields(&self) -> &'static [(&'static str, Kind)] {
        match self {
            Kind::Records(cols) => cols,
            Kind::Consent => CONSENT_FIELDS,
            _ => &[],
        }
    }

    /// A complete description for docs and template comments, e.g.
    /// `enum(routine, urgent, emergency)` or `records(type: enum(...), number: text)`.
    pub fn describe(&self) -> String {
        match self {
            Kind::Enum(v) | Kind::EnumList(v) => format!("{}({})", self.name(), v.join(", ")),
            Kind::Records(cols) => format!("{}({})", self.name(), describe_fields(cols)),
            Kind::Consent => format!(
                "{}({}; status required)",
                self.name(),
                describe_fields(CONSENT_FIELDS)
            ),
            _ => self.name().to_owned(),
        }
    }
}

fn describe_fields(cols: &[(&str, Kind)]) -> String {
    cols.iter()
        .map(|(n, k)| format!("{n}: {}", k.describe()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// The core table
// ---------------------------------------------------------------------------------------------

/// A core template field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// `section.field`, e.g. `identity.family_name`.
    pub path: &'static str,
    /// What the value looks like.
    pub kind: Kind,
    /// The data category the field belongs to.
    pub category: Category,
    /// One-line help text.
    pub help: &'static str,
}

impl FieldDef {
    /// The section part of the path.
    pub fn section(&self) -> &'static str {
        self.path.split_once('.').map_or(self.path, |(s, _)| s)
    }

    /// The field part of the path.
    pub fn name(&self) -> &'static str {
        self.path.split_once('.').map_or(self.path, |(_, n)| n)
    }
}

const URGENCY: &[&str] = &["routine", "urgent", "emergency"];
const SEX: &[&str] = &["female", "male", "other", "unknown"];
const DOCUMENT_TYPES: &[&str] = &[
    "passport",
    "identity_card",
    "residence_permit",
    "travel_document",
    "birth_certificate",
    "other",
];
const IDENTITY_DOCUMENT: &[(&str, Kind)] = &[
    ("type", Kind::Enum(DOCUMENT_TYPES)),
    ("number", Kind::Text),
    ("issuing_country", Kind::CountryCode),
    ("valid_until", Kind::Date),
];
const WHEREABOUTS: &[&str] = &["shelter", "private_address", "other"];
const FAMILY_MEMBER: &[(&str, Kind)] = &[
    ("relationship", Kind::Text),
    ("country", Kind::CountryCode),
    ("contact_wanted", Kind::Bool),
];
const AGE_ASSESSMENT: &[&str] = &["not_needed", "pending", "done"];
const BEST_INTERESTS: &[&str] = &["not_started", "in_progress", "done"];
const CONSENT_FOR_CHILD: &[&str] = &["guardian", "parent", "court", "other"];
const FORMS: &[&str] = &[
    "sexual",
    "labour",
    "forced_begging",
    "forced_criminal_activity",
    "domestic_servitude",
    "forced_marriage",
    "organ_removal",
    "other",
];
const VICTIM_STATUS: &[&str] = &["presumed", "identified", "formally_recognised"];
const WAGE_CLAIM: &[&str] = &["none", "planned", "filed", "awarded", "paid", "rejected"];
const SERVICES: &[&str] = &[
    "accommodation",
    "medical",
    "psychological",
    "legal",
    "interpretation",
    "financial",
];
const RISK_LEVEL: &[&str] = &["low", "medium", "high"];
const RETURN_WISH: &[&str] = &["return", "stay", "undecided"];
const ROLE: &[&str] = &["injured_party", "witness", "both", "none"];

macro_rules! field {
    ($path:literal, $kind:expr, $cat:ident, $help:literal) => {
        FieldDef {
            path: $path,
            kind: $kind,
            category: Category::$cat,
            help: $help,
        }
    };
}

#[rustfmt::skip]
static CORE: &[FieldDef] = &[
    // reference
    field!("reference.case_ref", Kind::Text, Reference, "Pseudonymous case reference: 6 to 40 characters A-Z, 0-9 and '-', never derived from the person's name"),
    field!("reference.sending_institution", Kind::Text, Reference, "Institution sending the referral (national referral unit or mandated body)"),
    field!("reference.receiving_country", Kind::CountryCode, Reference, "Country the referral is sent to (ISO 3166-1 alpha-2)"),
    field!("reference.date", Kind::Date, Reference, "Date of the referral"),
    field!("reference.reason", Kind::LongText, Reference, "Why the person is referred and what is asked of the receiving country"),
    field!("reference.urgency", Kind::Enum(URGENCY), Reference, "How quickly the receiving country is asked to act"),
    field!("reference.response_due", Kind::Date, Reference, "Date by which an answer is requested"),
    field!("reference.minor", Kind::Bool, Reference, "The person is a child: filled in by the node from child.minor and identity.date_of_birth when a referral is sealed, and sent to every partner whatever the profiles"),
    // identity
    field!("identity.family_name", Kind::Text, Identity, "Family name(s) as known"),
    field!("identity.given_names", Kind::Text, Identity, "Given name(s) as known"),
    field!("identity.aliases", Kind::TextList, Identity, "Other names the person uses or is known by"),
    field!("identity.sex", Kind::Enum(SEX), Identity, "Sex as recorded"),
    field!("identity.date_of_birth", Kind::Date, Identity, "Date of birth, if known"),
    field!("identity.estimated_birth_year", Kind::Year, Identity, "Estimated year of birth when the date of birth is unknown"),
    field!("identity.place_of_birth", Kind::Text, Identity, "Place and country of birth"),
    field!("identity.nationalities", Kind::CountryList, Identity, "Nationalities (ISO 3166-1 alpha-2 codes)"),
    field!("identity.identity_documents", Kind::Records(IDENTITY_DOCUMENT), Identity, "Identity and travel documents held or known"),
    field!("identity.languages", Kind::TextList, Identity, "Languages the person speaks, preferred first (ISO 639-1 codes recommended)"),
    // family
    field!("family.whereabouts_type", Kind::Enum(WHEREABOUTS), Family, "Kind of place where the person stays now (never the address itself)"),
    field!("family.family_members", Kind::Records(FAMILY_MEMBER), Family, "Family members relevant to the case and whether the person wants contact"),
    field!("family.family_tracing_requested", Kind::Bool, Family, "Family tracing has been requested"),
    field!("family.family_tracing_outcome", Kind::LongText, Family, "Outcome of family tracing so far"),
    // child
    field!("child.minor", Kind::Bool, Child, "The person is a child (under 18), or is presumed to be one while the age is uncertain"),
    field!("child.unaccompanied", Kind::Bool, Child, "The child is unaccompanied or separated from parents and legal caregivers"),
    field!("child.age_assessment_status", Kind::Enum(AGE_ASSESSMENT), Child, "Status of an age assessment"),
    field!("child.age_assessment_method", Kind::Text, Child, "Method used for the age assessment"),
    field!("child.age_assessment_result", Kind::Text, Child, "Result of the age assessment (age or age range)"),
    field!("child.guardian_appointed", Kind::Bool, Child, "A guardian or legal representative has been appointed"),
    field!("child.guardian_institution", Kind::Text, Child, "Institution or service of the guardian"),
    field!("child.guardian_contact", Kind::Text, Child, "Functional contact of the guardian service (never a private address)"),
    field!("child.best_interests_status", Kind::Enum(BEST_INTERESTS), Child, "Status of the best interests assessment or determination"),
    field!("child.best_interests_outcome", Kind::LongText, Child, "Outcome of the best interests determination"),
    field!("child.consent_for_child_by", Kind::Enum(CONSENT_FOR_CHILD), Child, "Who consents on the child's behalf"),
    // exploitation
    field!("exploitation.forms", Kind::EnumList(FORMS), Exploitation, "Forms of exploitation"),
    field!("exploitation.period_from", Kind::Date, Exploitation, "Start of the exploitation (first known date)"),
    field!("exploitation.period_to", Kind::Date, Exploitation, "End of the exploitation (last known date)"),
    field!("exploitation.countries", Kind::CountryList, Exploitation, "Countries where the exploitation took place"),
    field!("exploitation.recruitment_method", Kind::LongText, Exploitation, "How the person was recruited"),
    field!("exploitation.route", Kind::LongText, Exploitation, "Route and transit countries"),
    field!("exploitation.date_identified", Kind::Date, Exploitation, "Date the person was identified as a presumed or formal victim"),
    field!("exploitation.identifying_authority", Kind::Text, Exploitation, "Authority or organisation that identified the person"),
    field!("exploitation.victim_status", Kind::Enum(VICTIM_STATUS), Exploitation, "Status of victim identification"),
    // labour (EXPLOITATION category)
    field!("labour.sector", Kind::Text, Exploitation, "Economic sector of the labour exploitation (e.g. agriculture, construction)"),
    field!("labour.employer_type", Kind::Text, Exploitation, "Kind of employer or intermediary (e.g. farm, subcontractor, agency)"),
    field!("labour.workplace_country", Kind::CountryCode, Exploitation, "Country of the workplace"),
    field!("labour.labour_inspection_involved", Kind::Bool, Exploitation, "The labour inspectorate is or was involved"),
    field!("labour.wage_claim", Kind::Enum(WAGE_CLAIM), Exploitation, "Status of a claim for unpaid wages (details in proceedings.compensation_claim)"),
    field!("labour.other_workers_affected", Kind::Bool, Exploitation, "Other workers are believed to be affected"),
    // health
    field!("health.medical_needs", Kind::LongText, Health, "Medical needs relevant to assistance, transfer or return"),
    field!("health.psychological_needs", Kind::LongText, Health, "Psychological needs and support"),
    field!("health.disability", Kind::Text, Health, "Disability relevant to assistance"),
    field!("health.pregnancy", Kind::Bool, Health, "The person is pregnant"),
    field!("health.treatment_continuity_needed", Kind::Bool, Health, "Ongoing treatment must continue after transfer or return"),
    // assistance
    field!("assistance.reflection_period_from", Kind::Date, Assistance, "Start of the recovery and reflection period"),
    field!("assistance.reflection_period_to", Kind::Date, Assistance, "End of the recovery and reflection period"),
    field!("assistance.residence_permit_status", Kind::Text, Assistance, "Residence permit applied for or granted, and its type"),
    field!("assistance.services", Kind::EnumList(SERVICES), Assistance, "Services provided or needed"),
    field!("assistance.assisting_organisation", Kind::Text, Assistance, "Organisation providing assistance"),
    // risk
    field!("risk.date_assessed", Kind::Date, Risk, "Date of the risk assessment"),
    field!("risk.assessed_jointly", Kind::Bool, Risk, "The risk was assessed jointly with the other country"),
    field!("risk.level", Kind::Enum(RISK_LEVEL), Risk, "Overall risk level"),
    field!("risk.risks_to_person", Kind::LongText, Risk, "Risks to the person (re-trafficking, retaliation, stigma)"),
    field!("risk.risks_to_family", Kind::LongText, Risk, "Risks to family members"),
    field!("risk.security_measures", Kind::LongText, Risk, "Security measures taken or needed"),
    // return
    field!("return.wish", Kind::Enum(RETURN_WISH), Return, "The person's wish about returning"),
    field!("return.informed_consent_to_return", Kind::Bool, Return, "The person gave informed consent to return"),
    field!("return.planned_date", Kind::Date, Return, "Planned date of return"),
    field!("return.travel_document_status", Kind::Text, Return, "Status of the travel documents for the return"),
    field!("return.escort_needed", Kind::Bool, Return, "An escort is needed during travel"),
    field!("return.reception_arrangements", Kind::LongText, Return, "Reception arrangements on arrival"),
    field!("return.reintegration_plan", Kind::LongText, Return, "Reintegration plan in the country of return"),
    // proceedings
    field!("proceedings.criminal_status", Kind::Text, Proceedings, "Stage of criminal proceedings (e.g. investigation, trial, judgment)"),
    field!("proceedings.role", Kind::Enum(ROLE), Proceedings, "The person's role in the proceedings"),
    field!("proceedings.next_hearing", Kind::Date, Proceedings, "Date of the next hearing"),
    field!("proceedings.compensation_claim", Kind::LongText, Proceedings, "Compensation claims (criminal, civil, wages) and their status"),
    field!("proceedings.legal_representation", Kind::Text, Proceedings, "Legal representation (organisation or role)"),
    // consent (REFERENCE category), one per data category
    field!("consent.reference", Kind::Consent, Reference, "Consent to process and share reference data"),
    field!("consent.exploitation", Kind::Consent, Reference, "Consent to process and share exploitation and labour data"),
    field!("consent.assistance", Kind::Consent, Reference, "Consent to process and share assistance data"),
    field!("consent.risk", Kind::Consent, Reference, "Consent to process and share risk data"),
    field!("consent.return", Kind::Consent, Reference, "Consent to process and share return data"),
    field!("consent.proceedings", Kind::Consent, Reference, "Consent to process and share proceedings data"),
    field!("consent.identity", Kind::Consent, Reference, "Consent to process and share identity data"),
    field!("consent.family", Kind::Consent, Reference, "Consent to process and share family data"),
    field!("consent.health", Kind::Consent, Reference, "Consent to process and share health data"),
    field!("consent.child", Kind::Consent, Reference, "Consent to process and share child protection data"),
];

/// The core template fields, in template order.
pub fn core_fields() -> &'static [FieldDef] {
    CORE
}

/// The core field with this path.
pub fn core_field(path: &str) -> Option<&'static FieldDef> {
    CORE.iter().find(|d| d.path == path)
}

fn core_index(path: &str) -> Option<usize> {
    CORE.iter().position(|d| d.path == path)
}

/// Core fields no country can switch off: the referral's header ([`HEADER_FIELDS`]), the
/// child-case fields, and every consent record.
fn is_mandatory(path: &str) -> bool {
    HEADER_FIELDS.contains(&path) || CHILD_REQUIRED.contains(&path) || path.starts_with("consent.")
}

const CASE_REF: &str = "reference.case_ref";
/// `reference.minor`: derived by the sending node from the child section ([`Case::is_child_case`]).
pub const REFERENCE_MINOR: &str = "reference.minor";
/// `reference.urgency`.
pub const REFERENCE_URGENCY: &str = "reference.urgency";

/// The referral's non-personal header: released to every partner whatever the outgoing
/// profile, the partner's acceptance profile, consent or approval say, and accepted by every
/// receiver. The case reference already travels in clear in every message; that the person is
/// a child and how urgent the case is must reach even a partner that receives no personal data.
pub const HEADER_FIELDS: [&str; 3] = [CASE_REF, REFERENCE_URGENCY, REFERENCE_MINOR];

/// Whether `path` is one of [`HEADER_FIELDS`].
pub fn is_header_field(path: &str) -> bool {
    HEADER_FIELDS.contains(&path)
}
const CHILD_MINOR: &str = "child.minor";
const ESTIMATED_BIRTH_YEAR: &str = "identity.estimated_birth_year";
const CHILD_REQUIRED: [&str; 5] = [
    CHILD_MINOR,
    "child.unaccompanied",
    "child.guardian_appointed",
    "child.best_interests_status",
    "child.consent_for_child_by",
];

// ---------------------------------------------------------------------------------------------
// National extensions
// ---------------------------------------------------------------------------------------------

/// Kinds a national extension field may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtKind {
    /// [`Kind::Text`].
    Text,
    /// [`Kind::LongText`].
    LongText,
    /// [`Kind::Date`].
    Date,
    /// [`Kind::Bool`].
    Bool,
    /// [`Kind::Integer`].
    Integer,
    /// [`Kind::TextList`].
    TextList,
}

impl ExtKind {
    /// Every extension kind.
    pub const ALL: [ExtKind; 6] = [
        ExtKind::Text,
        ExtKind::LongText,
        ExtKind::Date,
        ExtKind::Bool,
        ExtKind::Integer,
        ExtKind::TextList,
    ];

    /// The kind this is.
    pub fn kind(self) -> Kind {
        match self {
            ExtKind::Text => Kind::Text,
            ExtKind::LongText => Kind::LongText,
            ExtKind::Date => Kind::Date,
            ExtKind::Bool => Kind::Bool,
            ExtKind::Integer => Kind::Integer,
            ExtKind::TextList => Kind::TextList,
        }
    }

    /// Name, as in config files and `ExtensionField.kind` (same as [`Kind::name`]).
    pub fn name(self) -> &'static str {
        self.kind().name()
    }

    /// The extension kind with this name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A national extension field: `ext.<namespace>.<name>`, with a kind, a category and help.
///
/// Namespace (1 to 16 characters) and name (1 to 48) are lower-case ASCII letters, digits and
/// `_`, starting with a letter; help is one line of 1 to 300 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    path: String,
    kind: ExtKind,
    category: Category,
    help: String,
}

/// The plain form of an extension in a node's configuration file (kind and category by
/// name). Turned into an [`Extension`] by [`Extension::from_spec`] or [`Template::from_config`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionSpec {
    /// `ext.<namespace>.<name>`.
    pub path: String,
    /// An [`ExtKind`] name: `text`, `long_text`, `date`, `bool`, `integer`, `text_list`.
    pub kind: String,
    /// A category name as [`category_name`] writes it.
    pub category: String,
    /// One-line help text.
    pub help: String,
}

fn valid_ident(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// Whether `path` has the form of an extension path `ext.<namespace>.<name>`.
pub fn is_extension_path(path: &str) -> bool {
    let mut parts = path.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(EXT_SECTION), Some(ns), Some(name), None) => {
            valid_ident(ns, 16) && valid_ident(name, 48)
        }
        _ => false,
    }
}

/// A path made safe to show in an error message: clipped and escaped when it is not a
/// plain path.
fn shown(path: &str) -> String {
    let plain = path.len() <= 100
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-[]".contains(&b));
    if plain {
        path.to_owned()
    } else {
        let clipped: String = path.chars().take(60).collect();
        let more = if clipped.len() < path.len() {
            "…"
        } else {
            ""
        };
        format!("{clipped:?}{more}")
    }
}

impl Extension {
    /// A checked extension field.
    pub fn new(
        path: impl Into<String>,
        kind: ExtKind,
        category: Category,
        help: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        let path = path.into();
        let help = help.into();
        if !is_extension_path(&path) {
            return Err(TemplateError::ExtensionPath(shown(&path)));
        }
        if category == Category::Unspecified {
            return Err(TemplateError::ExtensionCategory(path));
        }
        let help_ok = !help.trim().is_empty()
            && help.chars().count() <= 300
            && !help.chars().any(char::is_control);
        if !help_ok {
            return Err(TemplateError::ExtensionHelp(path));
        }
        Ok(Extension {
            path,
            kind,
            category,
            help,
        })
    }

    /// From the plain configuration form.
    pub fn from_spec(spec: &ExtensionSpec) -> Result<Self, TemplateError> {
        if !is_extension_path(&spec.path) {
            return Err(TemplateError::ExtensionPath(shown(&spec.path)));
        }
        let kind = ExtKind::parse(&spec.kind)
            .ok_or_else(|| TemplateError::ExtensionKind(spec.path.clone(), shown(&spec.kind)))?;
        let category = parse_category(&spec.category)
            .ok_or_else(|| TemplateError::ExtensionCategory(spec.path.clone()))?;
        Self::new(spec.path.clone(), kind, category, spec.help.clone())
    }

    /// The plain configuration form.
    pub fn to_spec(&self) -> ExtensionSpec {
        ExtensionSpec {
            path: self.path.clone(),
            kind: self.kind.name().to_owned(),
            category: category_name(self.category).to_owned(),
            help: self.help.clone(),
        }
    }

    /// As declared in a referral or follow-up (`kind` is the kind name).
    pub fn to_pb(&self) -> pb::ExtensionField {
        pb::ExtensionField {
            path: self.path.clone(),
            kind: self.kind.name().to_owned(),
            category: self.category as i32,
            help: self.help.clone(),
        }
    }

    /// From a declaration received in a referral or follow-up, checked like [`Extension::new`].
    pub fn from_pb(f: &pb::ExtensionField) -> Result<Self, TemplateError> {
        if !is_extension_path(&f.path) {
            return Err(TemplateError::ExtensionPath(shown(&f.path)));
        }
        let kind = ExtKind::parse(&f.kind)
            .ok_or_else(|| TemplateError::ExtensionKind(f.path.clone(), shown(&f.kind)))?;
        let category = Category::try_from(f.category)
            .map_err(|_| TemplateError::ExtensionCategory(f.path.clone()))?;
        Self::new(f.path.clone(), kind, category, f.help.clone())
    }

    /// `ext.<namespace>.<name>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The namespace part of the path.
    pub fn namespace(&self) -> &str {
        self.path.split('.').nth(1).unwrap_or_default()
    }

    /// The name part of the path.
    pub fn name(&self) -> &str {
        self.path.split('.').nth(2).unwrap_or_default()
    }

    /// The field's kind.
    pub fn kind(&self) -> ExtKind {
        self.kind
    }

    /// The field's data category.
    pub fn category(&self) -> Category {
        self.category
    }

    /// The help text.
    pub fn help(&self) -> &str {
        &self.help
    }
}

/// Why a template configuration or an extension declaration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The path is not `ext.<namespace>.<name>` in lower case.
    #[error("extension path {0} is not of the form ext.<namespace>.<name> (lower-case letters, digits and _, starting with a letter; namespace at most 16, name at most 48 characters)")]
    ExtensionPath(String),
    /// Unknown extension kind.
    #[error("extension {0}: unknown kind {1} (expected text, long_text, date, bool, integer or text_list)")]
    ExtensionKind(String, String),
    /// Missing or unknown category.
    #[error("extension {0}: category must be one of reference, exploitation, assistance, risk, return, proceedings, identity, family, health, child")]
    ExtensionCategory(String),
    /// Empty, multi-line or too long help text.
    #[error("extension {0}: help must be one line of 1 to 300 characters")]
    ExtensionHelp(String),
    /// The same extension path is declared twice.
    #[error("extension {0} is declared twice")]
    DuplicateExtension(String),
    /// More than [`MAX_EXTENSIONS`] extensions.
    #[error("too many extension fields: {0} (at most 200)")]
    TooManyExtensions(usize),
    /// A switched-off path is not a core field or section.
    #[error("cannot switch off {0}: not a core field or section")]
    UnknownDisabled(String),
    /// A core field that cannot be switched off.
    #[error("cannot switch off {0}: the case reference, the child-case fields and the consent records are always part of the template")]
    Mandatory(String),
}

// ---------------------------------------------------------------------------------------------
// Template configuration
// ---------------------------------------------------------------------------------------------

/// A node's template configuration, as written in its config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// National extension fields, in the order they appear in the template.
    #[serde(default)]
    pub extensions: Vec<ExtensionSpec>,
    /// Core fields (`section.field`) or whole sections (`section`) this country does not
    /// record.
    #[serde(default)]
    pub disabled: Vec<String>,
}

/// The template as configured for one country: core fields minus the switched-off ones, plus
/// national extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    extensions: Vec<Extension>,
    disabled: BTreeSet<String>,
}

/// What the template says about one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldInfo<'a> {
    /// `section.field` or `ext.<namespace>.<name>`.
    pub path: &'a str,
    /// What the value looks like.
    pub kind: Kind,
    /// Data category.
    pub category: Category,
    /// One-line help.
    pub help: &'a str,
    /// A national extension field (not in [`core_fields`]).
    pub extension: bool,
    /// False when this country has switched the core field off.
    pub enabled: bool,
}

impl FieldInfo<'_> {
    /// `<kind> · <category> · <help>`, the comment written next to the field by
    /// [`Template::template_json`].
    pub fn comment(&self) -> String {
        format!(
            "{} · {} · {}",
            self.kind.describe(),
            category_name(self.category),
            self.help
        )
    }
}

/// A received disclosed value, checked against the field's kind.
#[derive(Clone, PartialEq, Eq)]
pub struct Disclosed {
    /// The value (canonical: its [`canonical_json`] bytes are the bytes received).
    pub value: Value,
    /// The field's category; `None` for an extension nobody declared.
    pub category: Option<Category>,
    /// An `ext.` path not declared in the template: the value was accepted as any JSON and
    /// could not be checked. Treat its category as personal.
    pub unknown_extension: bool,
}

impl fmt::Debug for Disclosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Disclosed")
            .field("value", &"<redacted>")
            .field("category", &self.category)
            .field("unknown_extension", &self.unknown_extension)
            .finish()
    }
}

impl Template {
    /// The core template: no extensions, nothing switched off.
    pub fn core() -> Self {
        Self::default()
    }

    /// A configured template. `disabled_core_paths` names core fields (`health.disability`)
    /// or whole sections (`health`). Refused: an unknown path, a field that cannot be switched
    /// off (case reference, child-case fields, consent records), an invalid, duplicated or
    /// excess extension.
    pub fn new<I, S>(
        extensions: Vec<Extension>,
        disabled_core_paths: I,
    ) -> Result<Self, TemplateError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if extensions.len() > MAX_EXTENSIONS {
            return Err(TemplateError::TooManyExtensions(extensions.len()));
        }
        let mut seen = BTreeSet::new();
        for e in &extensions {
            if !seen.insert(e.path.as_str()) {
                return Err(TemplateError::DuplicateExtension(e.path.clone()));
            }
        }
        let mut disabled = BTreeSet::new();
        for p in disabled_core_paths {
            let p = p.as_ref();
            let matching: Vec<&FieldDef> = if p.contains('.') {
                core_field(p).into_iter().collect()
            } else {
                CORE.iter().filter(|d| d.section() == p).collect()
            };
            if matching.is_empty() {
                return Err(TemplateError::UnknownDisabled(shown(p)));
            }
            for d in matching {
                if is_mandatory(d.path) {
                    return Err(TemplateError::Mandatory(d.path.to_owned()));
                }
                disabled.insert(d.path.to_owned());
            }
        }
        Ok(Template {
            extensions,
            disabled,
        })
    }

    /// From a node's configuration.
    pub fn from_config(cfg: &TemplateConfig) -> Result<Self, TemplateError> {
        let ext = cfg
            .extensions
            .iter()
            .map(Extension::from_spec)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(ext, &cfg.disabled)
    }

    /// The configuration this template was made from (sections expanded to their fields).
    pub fn to_config(&self) -> TemplateConfig {
        TemplateConfig {
            extensions: self.extensions.iter().map(Extension::to_spec).collect(),
            disabled: self.disabled.iter().cloned().collect(),
        }
    }

    /// The template to check values received from another country: this country's switched-off
    /// fields, and the extensions the sender declared (instead of this country's own).
    pub fn for_received(&self, declared: &[pb::ExtensionField]) -> Result<Self, TemplateError> {
        let ext = declared
            .iter()
            .map(Extension::from_pb)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(ext, &self.disabled)
    }

    /// The national extension fields, in template order.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// The extension declarations to put in a referral or follow-up.
    pub fn extensions_pb(&self) -> Vec<pb::ExtensionField> {
        self.extensions.iter().map(Extension::to_pb).collect()
    }

    /// The extension with this path.
    pub fn extension(&self, path: &str) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.path == path)
    }

    /// The switched-off core fields, sorted.
    pub fn disabled(&self) -> impl Iterator<Item = &str> + '_ {
        self.disabled.iter().map(String::as_str)
    }

    /// Whether this core field is switched off.
    pub fn is_disabled(&self, path: &str) -> bool {
        self.disabled.contains(path)
    }

    /// What the template says about a field, core (even if switched off: see
    /// [`FieldInfo::enabled`]) or declared extension.
    pub fn field(&self, path: &str) -> Option<FieldInfo<'_>> {
        if let Some(d) = core_field(path) {
            return Some(FieldInfo {
                path: d.path,
                kind: d.kind,
                category: d.category,
                help: d.help,
                extension: false,
                enabled: !self.disabled.contains(path),
            });
        }
        self.extension(path).map(|e| FieldInfo {
            path: &e.path,
            kind: e.kind.kind(),
            category: e.category,
            help: &e.help,
            extension: true,
            enabled: true,
        })
    }

    /// The category of a core or declared extension field.
    pub fn category_of(&self, path: &str) -> Option<Category> {
        self.field(path).map(|f| f.category)
    }

    /// The enabled fields in template order: core fields, then extensions.
    pub fn fields(&self) -> impl Iterator<Item = FieldInfo<'_>> + '_ {
        CORE.iter()
            .filter_map(|d| self.field(d.path))
            .filter(|f| f.enabled)
            .chain(self.extensions.iter().filter_map(|e| self.field(&e.path)))
    }

    /// Parse and check a case document (JSON text). Every error is collected.
    pub fn parse_case(&self, json_text: &str) -> Result<Case, CaseErrors> {
        if json_text.len() > MAX_CASE_BYTES {
            return Err(CaseErrors(vec![FieldError::new(
                "",
                format!("document larger than {MAX_CASE_BYTES} bytes"),
            )]));
        }
        let doc = parse_strict(json_text).map_err(|r| CaseErrors(vec![FieldError::new("", r)]))?;
        self.parse_case_value(&doc)
    }

    /// Check a case document already parsed as a JSON value (duplicate keys cannot be
    /// detected here; [`Template::parse_case`] refuses them).
    pub fn parse_case_value(&self, doc: &Value) -> Result<Case, CaseErrors> {
        let mut errs = Vec::new();
        let fields = self.read_document(doc, &mut errs);
        check_rules(&fields, &mut errs, true);
        if errs.is_empty() {
            Ok(Case { fields })
        } else {
            Err(CaseErrors(errs))
        }
    }

    fn read_document(&self, doc: &Value, errs: &mut Vec<FieldError>) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let Some(top) = doc.as_object() else {
            errs.push(FieldError::new(
                "",
                "expected a JSON object whose keys are sections",
            ));
            return out;
        };
        for section in SECTIONS {
            let Some(obj) = section_object(top, section, section, errs) else {
                continue;
            };
            for d in CORE.iter().filter(|d| d.section() == section) {
                match obj.get(d.name()) {
                    None | Some(Value::Null) => {}
                    Some(_) if self.disabled.contains(d.path) => errs.push(FieldError::new(
                        d.path,
                        "field is switched off in this country: leave it out",
                    )),
                    Some(v) => {
                        if let Some(v) = check_value(d.kind, v, d.path, errs) {
                            out.insert(d.path.to_owned(), v);
                        }
                    }
                }
            }
            for key in obj.keys().filter(|k| !is_comment(k)) {
                if core_field(&format!("{section}.{key}")).is_none() {
                    errs.push(FieldError::new(child_path(section, key), "unknown field"));
                }
            }
        }
        if let Some(ext) = section_object(top, EXT_SECTION, EXT_SECTION, errs) {
            for ns in ext.keys().filter(|k| !is_comment(k)) {
                let ns_path = child_path(EXT_SECTION, ns);
                if !self.extensions.iter().any(|e| e.namespace() == ns) {
                    errs.push(FieldError::new(
                        ns_path,
                        "unknown extension namespace (not declared in this country's template)",
                    ));
                    continue;
                }
                let Some(fields) = section_object(ext, ns, &ns_path, errs) else {
                    continue;
                };
                for (name, v) in fields.iter().filter(|(k, _)| !is_comment(k)) {
                    let path = child_path(&ns_path, name);
                    match self.extension(&path) {
                        None => errs.push(FieldError::new(path, "unknown field")),
                        Some(_) if v.is_null() => {}
                        Some(e) => {
                            if let Some(v) = check_value(e.kind.kind(), v, &path, errs) {
                                out.insert(path, v);
                            }
                        }
                    }
                }
            }
        }
        for key in top.keys().filter(|k| !is_comment(k)) {
            if key != EXT_SECTION && !SECTIONS.contains(&key.as_str()) {
                errs.push(FieldError::new(
                    shown_key(key),
                    format!(
                        "unknown section (sections are {}, ext)",
                        SECTIONS.join(", ")
                    ),
                ));
            }
        }
        out
    }

    /// Check one received disclosed value (`FieldDisclosure.value`) against its field.
    ///
    /// The bytes must be the value's canonical JSON ([`canonical_json`]). A core field this
    /// country switched off is refused. An `ext.` path the template does not declare is
    /// accepted with any JSON value; use [`Template::parse_disclosed`] to learn that.
    pub fn parse_field_value(&self, path: &str, value_bytes: &[u8]) -> Result<Value, FieldError> {
        self.parse_disclosed(path, value_bytes).map(|d| d.value)
    }

    /// Like [`Template::parse_field_value`], also telling the category and whether the field
    /// is an undeclared extension.
    pub fn parse_disclosed(&self, path: &str, value_bytes: &[u8]) -> Result<Disclosed, FieldError> {
        let fail = |reason: &str| FieldError::new(shown(path), reason);
        if value_bytes.len() > MAX_VALUE_BYTES {
            return Err(fail("value longer than 65536 bytes"));
        }
        let text = std::str::from_utf8(value_bytes).map_err(|_| fail("value is not UTF-8 text"))?;
        let v = parse_strict(text)
            .map_err(|r| FieldError::new(shown(path), format!("value is not valid JSON: {r}")))?;
        let mut errs = Vec::new();
        let (value, category, unknown_extension) = match self.check_field(path, &v, &mut errs) {
            Checked::Known(value, category) => (value, Some(category), false),
            Checked::UnknownExtension => (v, None, true),
            Checked::Refused => {
                return Err(errs.into_iter().next().unwrap_or_else(|| fail("refused")))
            }
        };
        if path == CASE_REF {
            let mut one = BTreeMap::new();
            one.insert(CASE_REF.to_owned(), value.clone());
            check_case_ref(&one, &mut errs);
            if let Some(e) = errs.into_iter().next() {
                return Err(e);
            }
        }
        if canonical_json(&value) != value_bytes {
            return Err(fail(
                "value is not in canonical form (compact JSON, object keys sorted)",
            ));
        }
        Ok(Disclosed {
            value,
            category,
            unknown_extension,
        })
    }

    /// Check one value for one path (null is refused: it is "not recorded").
    fn check_field(&self, path: &str, v: &Value, errs: &mut Vec<FieldError>) -> Checked {
        if v.is_null() {
            errs.push(FieldError::new(
                shown(path),
                "null is not a recorded value: leave the field out",
            ));
            return Checked::Refused;
        }
        let (kind, category) = if let Some(d) = core_field(path) {
            if self.disabled.contains(path) {
                errs.push(FieldError::new(
                    path,
                    "field is switched off in this country",
                ));
                return Checked::Refused;
            }
            (d.kind, d.category)
        } else if let Some(e) = self.extension(path) {
            (e.kind.kind(), e.category)
        } else if is_extension_path(path) {
            return Checked::UnknownExtension;
        } else {
            errs.push(FieldError::new(shown(path), "unknown field"));
            return Checked::Refused;
        };
        match check_value(kind, v, path, errs) {
            Some(v) => Checked::Known(v, category),
            None => Checked::Refused,
        }
    }

    /// An empty case document for this configuration, as pretty JSON: every enabled field
    /// `null`, preceded by a comment key `"// <field>": "<kind> · <category> · <help>"`.
    /// Switched-off fields are left out. Parsing it back yields only the error that
    /// `reference.case_ref` is required.
    pub fn template_json(&self) -> String {
        let q = |s: &str| Value::String(s.to_owned()).to_string();
        let block = |indent: &str, fields: &[FieldInfo<'_>], name_of: &dyn Fn(&str) -> String| {
            fields
                .iter()
                .map(|f| {
                    let name = name_of(f.path);
                    format!(
                        "{indent}{}: {},\n{indent}{}: null",
                        q(&format!("// {name}")),
                        q(&f.comment()),
                        q(&name)
                    )
                })
                .collect::<Vec<_>>()
                .join(",\n")
        };
        let last = |p: &str| p.rsplit('.').next().unwrap_or(p).to_owned();
        let mut entries = vec![format!(
            "  {}: {}",
            q("// template"),
            q(&format!(
                "{TEMPLATE_VERSION} · fill in what is known, leave null what is not recorded; \
                 keys starting with // are comments"
            ))
        )];
        for section in SECTIONS {
            let fields: Vec<FieldInfo<'_>> = self
                .fields()
                .filter(|f| !f.extension && f.path.split('.').next() == Some(section))
                .collect();
            if !fields.is_empty() {
                entries.push(format!(
                    "  {}: {{\n{}\n  }}",
                    q(section),
                    block("    ", &fields, &last)
                ));
            }
        }
        let mut namespaces: Vec<&str> = Vec::new();
        for e in &self.extensions {
            if !namespaces.contains(&e.namespace()) {
                namespaces.push(e.namespace());
            }
        }
        if !namespaces.is_empty() {
            let groups: Vec<String> = namespaces
                .iter()
                .map(|ns| {
                    let fields: Vec<FieldInfo<'_>> = self
                        .fields()
                        .filter(|f| f.extension && f.path.split('.').nth(1) == Some(ns))
                        .collect();
                    format!(
                        "    {}: {{\n{}\n    }}",
                        q(ns),
                        block("      ", &fields, &last)
                    )
                })
                .collect();
            entries.push(format!(
                "  {}: {{\n{}\n  }}",
                q(EXT_SECTION),
                groups.join(",\n")
            ));
        }
        format!("{{\n{}\n}}\n", entries.join(",\n"))
    }
}

enum Checked {
    Known(Value, Category),
    UnknownExtension,
    Refused,
}

fn is_comment(key: &str) -> bool {
    key.starts_with("//")
}

/// A key made safe for a path: plain keys as they are, others quoted, escaped and clipped.
fn shown_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        key.to_owned()
    } else {
        let clipped: String = key.chars().take(32).collect();
        let more = if clipped.len() < key.len() { "…" } else { "" };
        format!("[{clipped:?}{more}]")
    }
}

fn child_path(parent: &str, key: &str) -> String {
    let k = shown_key(key);
    if k.starts_with('[') {
        format!("{parent}{k}")
    } else {
        format!("{parent}.{k}")
    }
}

/// The object under `key`, or None when absent or null (an error when not an object).
fn section_object<'a>(
    parent: &'a Map<String, Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match parent.get(key)? {
        Value::Null => None,
        Value::Object(m) => Some(m),
        _ => {
            errs.push(FieldError::new(
                path,
                "expected an object of fields (or null)",
            ));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value checks
// ---------------------------------------------------------------------------------------------

const DATE_REASON: &str = "expected a date YYYY-MM-DD (a real calendar date, years 1900 to 2199)";
const YEAR_REASON: &str = "expected a year: an integer from 1900 to 2199";
/// The first year of a [`Kind::Date`] or [`Kind::Year`].
pub const MIN_YEAR: i64 = 1900;
/// The last year of a [`Kind::Date`] or [`Kind::Year`].
pub const MAX_YEAR: i64 = 2199;
const COUNTRY_REASON: &str = "expected a country code: two upper-case letters (ISO 3166-1 alpha-2)";

/// `(year, month, day)` of a real calendar date `YYYY-MM-DD`, years 1900 to 2199.
fn parse_date(s: &str) -> Option<(u32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |part: &[u8]| -> Option<u32> {
        part.iter().try_fold(0u32, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let (y, m, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(MIN_YEAR..=MAX_YEAR).contains(&i64::from(y)) || !(1..=12).contains(&m) {
        return None;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (1..=days).contains(&d).then_some((y, m, d))
}

fn is_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn text_problem(s: &str, long: bool) -> Option<String> {
    let max = if long {
        MAX_LONG_TEXT_CHARS
    } else {
        MAX_TEXT_CHARS
    };
    if s.is_empty() {
        Some("empty text: use null when nothing is recorded".into())
    } else if s.trim() != s {
        Some("text must not start or end with whitespace".into())
    } else if !long && s.chars().any(char::is_control) {
        Some(
            "text must be one line without control characters \
             (use a long_text field for several lines)"
                .into(),
        )
    } else if long && s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        Some("text must not contain control characters other than newline and tab".into())
    } else if s.chars().count() > max {
        Some(format!("text longer than {max} characters"))
    } else {
        None
    }
}

/// [`check_kind`] for a whole field value, which must also fit in [`MAX_VALUE_BYTES`] once
/// canonical.
fn check_value(kind: Kind, v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<Value> {
    let v = check_kind(kind, v, path, errs)?;
    if canonical_json(&v).len() > MAX_VALUE_BYTES {
        return push(
            errs,
            path,
            "value longer than 65536 bytes in canonical JSON",
        );
    }
    Some(v)
}

fn push(errs: &mut Vec<FieldError>, path: &str, reason: impl Into<String>) -> Option<Value> {
    errs.push(FieldError::new(path, reason));
    None
}

/// Check a non-null value against a kind. Returns the normalized value (comment keys and
/// null record fields removed), or None after pushing at least one error.
fn check_kind(kind: Kind, v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<Value> {
    match kind {
        Kind::Text | Kind::LongText => match v.as_str() {
            None => push(errs, path, "expected text (a JSON string)"),
            Some(s) => match text_problem(s, kind == Kind::LongText) {
                Some(r) => push(errs, path, r),
                None => Some(v.clone()),
            },
        },
        Kind::Date => match v.as_str().and_then(parse_date) {
            Some(_) => Some(v.clone()),
            None => push(errs, path, DATE_REASON),
        },
        Kind::Bool => match v {
            Value::Bool(_) => Some(v.clone()),
            _ => push(errs, path, "expected true or false"),
        },
        Kind::Integer => match v.as_i64() {
            Some(_) => Some(v.clone()),
            None => push(errs, path, "expected an integer"),
        },
        Kind::Year => match v.as_i64() {
            Some(y) if (MIN_YEAR..=MAX_YEAR).contains(&y) => Some(v.clone()),
            _ => push(errs, path, YEAR_REASON),
        },
        Kind::Enum(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => Some(v.clone()),
            _ => push(
                errs,
                path,
                format!("expected one of: {}", allowed.join(", ")),
            ),
        },
        Kind::CountryCode => match v.as_str() {
            Some(s) if is_country(s) => Some(v.clone()),
            _ => push(errs, path, COUNTRY_REASON),
        },
        Kind::EnumList(allowed) => check_list(Kind::Enum(allowed), v, path, errs),
        Kind::TextList => check_list(Kind::Text, v, path, errs),
        Kind::CountryList => check_list(Kind::CountryCode, v, path, errs),
        Kind::Records(cols) => {
            let Value::Array(items) = v else {
                return push(errs, path, "expected a list (JSON array) of record objects");
            };
            if items.is_empty() {
                return push(errs, path, "empty list: use null when nothing is recorded");
            }
            if items.len() > MAX_LIST_ITEMS {
                return push(errs, path, format!("more than {MAX_LIST_ITEMS} entries"));
            }
            let before = errs.len();
            let out: Vec<Value> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    check_record(cols, &[], item, &format!("{path}[{i}]"), errs)
                })
                .collect();
            (errs.len() == before).then_some(Value::Array(out))
        }
        Kind::Consent => {
            let before = errs.len();
            let rec = check_record(CONSENT_FIELDS, &["status"], v, path, errs)?;
            if let (Some(d), Some(w)) = (rec.get("date"), rec.get("withdrawn")) {
                if w.as_str() < d.as_str() {
                    push(
                        errs,
                        &format!("{path}.withdrawn"),
                        "must not be before the consent date",
                    );
                }
            }
            (errs.len() == before).then_some(rec)
        }
    }
}

fn check_list(item: Kind, v: &Value, path: &str, errs: &mut Vec<FieldError>) -> Option<Value> {
    let Value::Array(items) = v else {
        let what = match item {
            Kind::Enum(a) => format!("values, each one of: {}", a.join(", ")),
            Kind::CountryCode => "country codes (two upper-case letters)".to_owned(),
            _ => "texts".to_owned(),
        };
        return push(
            errs,
            path,
            format!("expected a list (JSON array) of {what}"),
        );
    };
    if items.is_empty() {
        return push(errs, path, "empty list: use null when nothing is recorded");
    }
    if items.len() > MAX_LIST_ITEMS {
        return push(errs, path, format!("more than {MAX_LIST_ITEMS} entries"));
    }
    let before = errs.len();
    for (i, x) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if x.is_null() {
            push(errs, &p, "null in a list: leave the entry out");
        } else if check_kind(item, x, &p, errs).is_some() && items[..i].contains(x) {
            push(errs, &p, "duplicate entry");
        }
    }
    (errs.len() == before).then(|| v.clone())
}

fn check_record(
    cols: &[(&str, Kind)],
    required: &[&str],
    v: &Value,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Value> {
    let names = || cols.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let Value::Object(obj) = v else {
        return push(
            errs,
            path,
            format!("expected an object with fields {}", names()),
        );
    };
    let before = errs.len();
    let mut out = Map::new();
    for (k, x) in obj.iter().filter(|(k, _)| !is_comment(k)) {
        let p = child_path(path, k);
        match cols.iter().find(|(n, _)| n == k) {
            None => {
                push(errs, &p, format!("unknown field (fields are {})", names()));
            }
            Some(_) if x.is_null() => {}
            Some((_, kind)) => {
                if let Some(x) = check_kind(*kind, x, &p, errs) {
                    out.insert(k.clone(), x);
                }
            }
        }
    }
    for r in required {
        if obj.get(*r).is_none_or(Value::is_null) {
            push(errs, &format!("{path}.{r}"), "required");
        }
    }
    if errs.len() == before && out.is_empty() {
        push(
            errs,
            path,
            "empty record: give at least one field or leave the entry out",
        );
    }
    (errs.len() == before).then_some(Value::Object(out))
}

// ---------------------------------------------------------------------------------------------
// Case rules
// ---------------------------------------------------------------------------------------------

/// Cross-field rules. `complete` adds the requirements of a whole case document (case
/// reference present, child-case fields present); without it only contradictions are checked
/// (for received or partial cases).
fn check_rules(f: &BTreeMap<String, Value>, errs: &mut Vec<FieldError>, complete: bool) {
    let has_error = |errs: &[FieldError], p: &str| errs.iter().any(|e| e.path == p);
    if f.contains_key(CASE_REF) {
        check_case_ref(f, errs);
    } else if complete && !has_error(errs, CASE_REF) {
        errs.push(FieldError::new(
            CASE_REF,
            "required: a pseudonymous case reference (6 to 40 characters A-Z, 0-9 and '-')",
        ));
    }

    let date = |p: &str| f.get(p).and_then(Value::as_str).and_then(parse_date);
    let dob_child = match (date("identity.date_of_birth"), date("reference.date")) {
        (Some(dob), Some(at)) => {
            if dob > at {
                errs.push(FieldError::new(
                    "identity.date_of_birth",
                    "must not be after reference.date",
                ));
            }
            at < (dob.0 + 18, dob.1, dob.2)
        }
        _ => false,
    };
    // An estimated birth year after the referral's year is no plausible estimate.
    if let (Some(year), Some(at)) = (
        f.get(ESTIMATED_BIRTH_YEAR).and_then(Value::as_i64),
        date("reference.date"),
    ) {
        if year > i64::from(at.0) {
            errs.push(FieldError::new(
                ESTIMATED_BIRTH_YEAR,
                "must not be after the year of reference.date",
            ));
        }
    }
    let minor = f.get(CHILD_MINOR).and_then(Value::as_bool);
    if dob_child && minor == Some(false) {
        errs.push(FieldError::new(
            CHILD_MINOR,
            "must be true: identity.date_of_birth is less than 18 years before reference.date",
        ));
    }
    check_reference_minor(f, errs, complete, dob_child || minor == Some(true));
    if complete && (dob_child || minor == Some(true)) {
        for p in CHILD_REQUIRED {
            if !f.contains_key(p) && !has_error(errs, p) {
                let why = if p == CHILD_MINOR {
                    "required in a child case (identity.date_of_birth is less than 18 years \
                     before reference.date): must be true"
                } else {
                    "required in a child case"
                };
                errs.push(FieldError::new(p, why));
            }
        }
    }

    for (from, to) in [
        ("exploitation.period_from", "exploitation.period_to"),
        (
            "assistance.reflection_period_from",
            "assistance.reflection_period_to",
        ),
    ] {
        if let (Some(a), Some(b)) = (date(from), date(to)) {
            if b < a {
                errs.push(FieldError::new(to, format!("must not be before {from}")));
            }
        }
    }
}

/// `reference.minor`, when given, must say what the child section says (`child`: a child case
/// by [`Case::is_child_case`]'s rule). A whole case is checked always; a partial or received one
/// only where the child section or the date of birth is there to contradict it.
fn check_reference_minor(
    f: &BTreeMap<String, Value>,
    errs: &mut Vec<FieldError>,
    complete: bool,
    child: bool,
) {
    let Some(given) = f.get(REFERENCE_MINOR).and_then(Value::as_bool) else {
        return;
    };
    let known = complete || child || f.contains_key(CHILD_MINOR);
    if known && given != child {
        errs.push(FieldError::new(
            REFERENCE_MINOR,
            format!(
                "must be {child}: it is derived from child.minor and identity.date_of_birth \
                 (leave it out, the node fills it in)"
            ),
        ));
    }
}

/// The template's child-case rule over a case's values (`get` gives a field's value): `child.minor`
/// is true, or `identity.date_of_birth` is less than 18 years before `reference.date`. What
/// the sending node puts in `reference.minor`.
pub fn is_child(get: impl Fn(&str) -> Option<Value>) -> bool {
    let date = |p: &str| get(p).as_ref().and_then(Value::as_str).and_then(parse_date);
    get(CHILD_MINOR).and_then(|v| v.as_bool()) == Some(true)
        || matches!(
            (date("identity.date_of_birth"), date("reference.date")),
            (Some(dob), Some(at)) if at < (dob.0 + 18, dob.1, dob.2)
        )
}

/// Whether `case_ref` is a reference of `country`'s: the country code, `-`, then at least one
/// more character (`IT-2026-0001` is Italy's). Each country numbers its own cases, so two
/// countries' references never collide.
pub fn case_ref_of(case_ref: &str, country: &str) -> bool {
    case_ref
        .strip_prefix(country)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| !rest.is_empty())
}

fn check_case_ref(f: &BTreeMap<String, Value>, errs: &mut Vec<FieldError>) {
    let Some(r) = f.get(CASE_REF).and_then(Value::as_str) else {
        return;
    };
    let form_ok = (6..=40).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if !form_ok {
        errs.push(FieldError::new(
            CASE_REF,
            "expected 6 to 40 characters A-Z, 0-9 and '-'",
        ));
        return;
    }
    let mut names: Vec<&str> = ["identity.family_name", "identity.given_names"]
        .iter()
        .filter_map(|p| f.get(*p).and_then(Value::as_str))
        .collect();
    if let Some(Value::Array(aliases)) = f.get("identity.aliases") {
        names.extend(aliases.iter().filter_map(Value::as_str));
    }
    let joined = r.replace('-', "");
    let leaks = names
        .iter()
        .flat_map(|n| name_tokens(n))
        .any(|t| r.contains(&t) || joined.contains(&t));
    if leaks {
        errs.push(FieldError::new(
            CASE_REF,
            "must not contain the person's name or an alias: a case reference is pseudonymous",
        ));
    }
}

/// The upper-case ASCII spellings (at least 2 characters) of the parts of a name, with
/// Latin diacritics folded and Cyrillic and Greek transliterated, in two common variants.
fn name_tokens(name: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for alt in [false, true] {
        let mut tok = String::new();
        let mut foldable = true;
        let mut flush = |tok: &mut String, foldable: &mut bool| {
            if *foldable && tok.len() >= 2 {
                out.insert(std::mem::take(tok));
            }
            tok.clear();
            *foldable = true;
        };
        let mut prev = ' ';
        for c in name.chars().flat_map(char::to_lowercase) {
            if ('\u{300}'..='\u{36f}').contains(&c) {
                continue; // combining accents (decomposed input)
            }
            let after_omicron = matches!(prev, 'ο' | 'ό');
            prev = c;
            if c.is_ascii_alphanumeric() {
                tok.push(c.to_ascii_uppercase());
            } else if after_omicron && matches!(c, 'υ' | 'ύ') {
                tok.push('U'); // Greek "ου" is written "ou"
            } else if let Some((a, b)) = transliterate(c) {
                tok.push_str(if alt { b } else { a });
            } else if c.is_alphanumeric() {
                foldable = false;
            } else {
                flush(&mut tok, &mut foldable);
            }
        }
        flush(&mut tok, &mut foldable);
    }
    out
}

/// Upper-case ASCII for a lower-case letter: (common folding, alternative spelling).
fn transliterate(c: char) -> Option<(&'static str, &'static str)> {
    transliterate_latin(c)
        .or_else(|| transliterate_cyrillic(c))
        .or_else(|| transliterate_greek(c))
}

/// [`transliterate`] for Latin letters with diacritics.
fn transliterate_latin(c: char) -> Option<(&'static str, &'static str)> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'å' | 'ā' | 'ă' | 'ą' => ("A", "A"),
        'ä' => ("A", "AE"),
        'æ' => ("AE", "AE"),
        'ç' | 'ć' | 'ĉ' | 'ċ' => ("C", "C"),
        'č' => ("C", "CH"),
        'ď' | 'ð' => ("D", "D"),
        'đ' => ("D", "DJ"),
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => ("E", "E"),
        'ğ' | 'ģ' => ("G", "G"),
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => ("I", "I"),
        'ķ' => ("K", "K"),
        'ł' | 'ľ' | 'ĺ' | 'ļ' => ("L", "L"),
        'ñ' | 'ń' | 'ň' | 'ņ' => ("N", "N"),
        'ò' | 'ó' | 'ô' | 'õ' | 'ō' | 'ő' => ("O", "O"),
        'ö' | 'ø' => ("O", "OE"),
        'œ' => ("OE", "OE"),
        'ř' | 'ŕ' => ("R", "R"),
        'ś' | 'ş' | 'ș' => ("S", "S"),
        'š' => ("S", "SH"),
        'ß' => ("SS", "SS"),
        'ť' | 'ţ' | 'ț' => ("T", "T"),
        'ù' | 'ú' | 'û' | 'ū' | 'ů' | 'ű' | 'ų' => ("U", "U"),
        'ü' => ("U", "UE"),
        'ý' | 'ÿ' => ("Y", "Y"),
        'ź' | 'ż' => ("Z", "Z"),
        'ž' => ("Z", "ZH"),
        'þ' => ("TH", "TH"),
        _ => return None,
    })
}

/// [`transliterate`] for Cyrillic: Serbian/Macedonian Latin folded, then English-style.
fn transliterate_cyrillic(c: char) -> Option<(&'static str, &'static str)> {
    Some(match c {
        'а' => ("A", "A"),
        'б' => ("B", "B"),
        'в' => ("V", "V"),
        'г' | 'ґ' => ("G", "G"),
        'д' => ("D", "D"),
        'ђ' => ("DJ", "D"),
        'ѓ' => ("GJ", "G"),
        'е' | 'ё' | 'э' | 'є' => ("E", "E"),
        'ж' => ("Z", "ZH"),
        'з' => ("Z", "Z"),
        'ѕ' => ("DZ", "DZ"),
        'и' | 'і' => ("I", "I"),
        'ї' => ("I", "YI"),
        'й' | 'ј' => ("J", "Y"),
        'к' => ("K", "K"),
        'л' => ("L", "L"),
        'љ' => ("LJ", "LY"),
        'м' => ("M", "M"),
        'н' => ("N", "N"),
        'њ' => ("NJ", "NY"),
        'о' => ("O", "O"),
        'п' => ("P", "P"),
        'р' => ("R", "R"),
        'с' => ("S", "S"),
        'т' => ("T", "T"),
        'ћ' => ("C", "CH"),
        'ќ' => ("KJ", "K"),
        'у' => ("U", "U"),
        'ф' => ("F", "F"),
        'х' => ("H", "KH"),
        'ц' => ("C", "TS"),
        'ч' => ("C", "CH"),
        'џ' => ("DZ", "DZH"),
        'ш' => ("S", "SH"),
        'щ' => ("SHT", "SHCH"),
        'ъ' => ("A", ""),
        'ь' => ("", ""),
        'ы' => ("Y", "Y"),
        'ю' => ("JU", "YU"),
        'я' => ("JA", "YA"),
        _ => return None,
    })
}

/// [`transliterate`] for Greek.
fn transliterate_greek(c: char) -> Option<(&'static str, &'static str)> {
    Some(match c {
        'α' | 'ά' => ("A", "A"),
        'β' => ("V", "B"),
        'γ' => ("G", "G"),
        'δ' => ("D", "DH"),
        'ε' | 'έ' => ("E", "E"),
        'ζ' => ("Z", "Z"),
        'η' | 'ή' => ("I", "I"),
        'θ' => ("TH", "TH"),
        'ι' | 'ί' | 'ϊ' | 'ΐ' => ("I", "I"),
        'κ' => ("K", "K"),
        'λ' => ("L", "L"),
        'μ' => ("M", "M"),
        'ν' => ("N", "N"),
        'ξ' => ("X", "KS"),
        'ο' | 'ό' => ("O", "O"),
        'π' => ("P", "P"),
        'ρ' => ("R", "R"),
        'σ' | 'ς' => ("S", "S"),
        'τ' => ("T", "T"),
        'υ' | 'ύ' | 'ϋ' | 'ΰ' => ("Y", "I"),
        'φ' => ("F", "PH"),
        'χ' => ("CH", "H"),
        'ψ' => ("PS", "PS"),
        'ω' | 'ώ' => ("O", "O"),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// One refused field: its path and why. Never contains the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `identity.identity_documents[1].valid_until`; empty for an error
    /// about the whole document (JSON syntax, not an object).
    pub path: String,
    /// Why, e.g. `expected a date YYYY-MM-DD (...)`.
    pub reason: String,
}

impl FieldError {
    /// A field error.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(document): {}", self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for FieldError {}

/// Every error found in a case document, in template order of the fields (rules last).
/// Displays as one line per error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseErrors(pub Vec<FieldError>);

impl CaseErrors {
    /// The errors.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Whether some error is about this path.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

impl fmt::Display for CaseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CaseErrors {}

// ---------------------------------------------------------------------------------------------
// Strict JSON parsing (duplicate keys refused)
// ---------------------------------------------------------------------------------------------

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_none<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StrictValue, D::Error> {
        StrictValue::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(StrictValue(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(de::Error::custom("duplicate object key"));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(k, v);
        }
        Ok(StrictValue(Value::Object(out)))
    }
}

/// Parse JSON text, refusing duplicate object keys. The error names line and column and
/// never quotes the input.
fn parse_strict(text: &str) -> Result<Value, String> {
    serde_json::from_str::<StrictValue>(text)
        .map(|v| v.0)
        .map_err(|e| {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let what = full.strip_suffix(&suffix).unwrap_or(&full);
            format!(
                "invalid JSON at line {} column {}: {what}",
                e.line(),
                e.column()
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Case
// ---------------------------------------------------------------------------------------------

/// The canonical bytes of a value: compact JSON (`serde_json::to_vec`) with object keys sorted
/// by their UTF-8 bytes. These are the bytes committed in a referral and disclosed.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value always serializes")
}

/// A consent record's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConsentStatus {
    /// Consent given.
    Given,
    /// Consent refused.
    Refused,
    /// Not asked (yet).
    NotAsked,
}

impl ConsentStatus {
    /// As written in a case: `given`, `refused`, `not_asked`.
    pub fn name(self) -> &'static str {
        match self {
            ConsentStatus::Given => "given",
            ConsentStatus::Refused => "refused",
            ConsentStatus::NotAsked => "not_asked",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Given, Self::Refused, Self::NotAsked]
            .into_iter()
            .find(|c| c.name() == s)
    }
}

/// A checked case: field path → validated value, only recorded fields.
///
/// `Debug` shows the paths only, never values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Case {
    fields: BTreeMap<String, Value>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn order_key(path: &str) -> (usize, &str) {
    (core_index(path).unwrap_or(CORE.len()), path)
}

impl Case {
    /// A case from `(path, value)` pairs, e.g. received disclosures. Each value is checked like
    /// [`Template::parse_field_value`] checks it (null pairs are skipped, undeclared `ext.`
    /// paths take any value), and contradictions between fields are refused; but the fields a
    /// whole case document needs (case reference, child-case fields) are not required.
    pub fn from_fields<I>(template: &Template, fields: I) -> Result<Case, CaseErrors>
    where
        I: IntoIterator<Item = (String, Value)>,
    {
        let mut errs = Vec::new();
        let mut out = BTreeMap::new();
        for (path, v) in fields {
            if v.is_null() {
                continue;
            }
            if out.contains_key(&path) {
                errs.push(FieldError::new(shown(&path), "field given twice"));
                continue;
            }
            match template.check_field(&path, &v, &mut errs) {
                Checked::Known(v, _) => {
                    out.insert(path, v);
                }
                Checked::UnknownExtension => {
                    out.insert(path, v);
                }
                Checked::Refused => {}
            }
        }
        check_rules(&out, &mut errs, false);
        if errs.is_empty() {
            Ok(Case { fields: out })
        } else {
            Err(CaseErrors(errs))
        }
    }

    /// The value of a recorded field.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.fields.get(path)
    }

    /// Whether the field is recorded.
    pub fn contains(&self, path: &str) -> bool {
        self.fields.contains_key(path)
    }

    /// Number of recorded fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Recorded fields in template order: core fields, then extensions by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        let mut v: Vec<(&str, &Value)> = self.fields.iter().map(|(p, v)| (p.as_str(), v)).collect();
        v.sort_by(|a, b| order_key(a.0).cmp(&order_key(b.0)));
        v.into_iter()
    }

    /// The fields as a map, sorted by path.
    pub fn into_fields(self) -> BTreeMap<String, Value> {
        self.fields
    }

    /// `reference.case_ref`.
    pub fn case_ref(&self) -> Option<&str> {
        self.get(CASE_REF).and_then(Value::as_str)
    }

    /// The canonical bytes ([`canonical_json`]) of a recorded field.
    pub fn canonical_value(&self, path: &str) -> Option<Vec<u8>> {
        self.get(path).map(canonical_json)
    }

    /// Every recorded field with its canonical bytes, in template order: what a referral
    /// commits to.
    pub fn committed_fields(&self) -> Vec<(String, Vec<u8>)> {
        self.iter()
            .map(|(p, v)| (p.to_owned(), canonical_json(v)))
            .collect()
    }

    /// The case as a nested document (`{"identity": {"family_name": ...}, "ext": {...}}`),
    /// which [`Template::parse_case_value`] reads back.
    pub fn to_json_document(&self) -> Value {
        let mut doc = Map::new();
        for (path, v) in &self.fields {
            let parts: Vec<&str> = path.split('.').collect();
            let mut obj = &mut doc;
            for part in &parts[..parts.len() - 1] {
                let slot = obj
                    .entry((*part).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let Value::Object(next) = slot else {
                    unreachable!("just made an object")
                };
                obj = next;
            }
            obj.insert(parts[parts.len() - 1].to_owned(), v.clone());
        }
        Value::Object(doc)
    }

    /// The consent status recorded for a category.
    pub fn consent(&self, c: Category) -> Option<ConsentStatus> {
        self.get(&format!("consent.{}", category_name(c)))
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            .and_then(ConsentStatus::parse)
    }

    /// Whether consent for a category is given and not withdrawn.
    pub fn consent_given(&self, c: Category) -> bool {
        self.consent(c) == Some(ConsentStatus::Given)
            && self
                .get(&format!("consent.{}", category_name(c)))
                .and_then(|r| r.get("withdrawn"))
                .is_none()
    }

    /// A child case: `child.minor` is true, or the date of birth is less than 18 years before
    /// the referral date.
    pub fn is_child_case(&self) -> bool {
        is_child(|p| self.get(p).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const ADULT: &str = include_str!("../../examples/adult-labour.json");
    const CHILD: &str = include_str!("../../examples/child-unaccompanied.json");
    const DOCS: &str = include_str!("../../docs/TEMPLATE.md");

    fn core() -> Template {
        Template::core()
    }

    /// A minimal valid adult case document.
    fn minimal() -> Value {
        json!({ "reference": { "case_ref": "IT-2026-0099", "date": "2026-03-01" } })
    }

    fn set(doc: &mut Value, path: &str, v: Value) {
        let (s, f) = path.split_once('.').unwrap();
        let sec = doc
            .as_object_mut()
            .unwrap()
            .entry(s.to_owned())
            .or_insert_with(|| json!({}));
        sec.as_object_mut().unwrap().insert(f.to_owned(), v);
    }

    fn errors(t: &Template, doc: &Value) -> CaseErrors {
        t.parse_case(&doc.to_string()).expect_err("must be refused")
    }

    fn only_error(t: &Template, doc: &Value) -> FieldError {
        let e = errors(t, doc);
        assert_eq!(e.0.len(), 1, "{e}");
        e.0.into_iter().next().unwrap()
    }

    fn ext_template() -> Template {
        Template::new(
            vec![
                Extension::new(
                    "ext.it.permit_number",
                    ExtKind::Text,
                    Category::Identity,
                    "Number of the special protection permit",
                )
                .unwrap(),
                Extension::new(
                    "ext.it.hotline_call",
                    ExtKind::Date,
                    Category::Reference,
                    "Date of the first call to the national hotline",
                )
                .unwrap(),
                Extension::new(
                    "ext.it.social_workers",
                    ExtKind::TextList,
                    Category::Assistance,
                    "Social worker roles involved",
                )
                .unwrap(),
            ],
            ["health.disability"],
        )
        .unwrap()
    }

    // ---- table ------------------------------------------------------------------------------

    #[test]
    fn table_is_well_formed() {
        let mut seen = BTreeSet::new();
        let mut last_section = 0;
        for d in core_fields() {
            assert!(seen.insert(d.path), "duplicate {}", d.path);
            let idx = SECTIONS
                .iter()
                .position(|s| *s == d.section())
                .expect(d.path);
            assert!(idx >= last_section, "{} out of section order", d.path);
            last_section = idx;
            assert!(valid_ident(d.name(), 48), "{}", d.path);
            assert!(!d.help.is_empty() && !d.help.contains('|') && !d.help.contains('\n'));
            assert_ne!(d.category, Category::Unspecified);
            let expected = match d.section() {
                "labour" => Category::Exploitation,
                "consent" => Category::Reference,
                s => parse_category(s).unwrap(),
            };
            assert_eq!(d.category, expected, "{}", d.path);
        }
        for s in SECTIONS {
            assert!(core_fields().iter().any(|d| d.section() == s), "{s}");
        }
        for c in ALL_CATEGORIES {
            let p = format!("consent.{}", category_name(c));
            assert_eq!(core_field(&p).map(|d| d.kind), Some(Kind::Consent), "{p}");
        }
        assert_eq!(
            core_fields()
                .iter()
                .filter(|d| d.kind == Kind::Consent)
                .count(),
            10
        );
        for p in CHILD_REQUIRED {
            assert!(core_field(p).is_some());
        }
    }

    #[test]
    fn categories() {
        for c in ALL_CATEGORIES {
            assert_eq!(parse_category(category_name(c)), Some(c));
        }
        assert_eq!(parse_category("unspecified"), None);
        assert_eq!(parse_category("IDENTITY"), None);
        let personal: Vec<&str> = ALL_CATEGORIES
            .into_iter()
            .filter(|c| is_personal(*c))
            .map(category_name)
            .collect();
        assert_eq!(personal, ["identity", "family", "health", "child"]);
        assert!(is_personal(Category::Unspecified));
    }

    #[test]
    fn kind_names() {
        assert_eq!(
            Kind::Enum(URGENCY).describe(),
            "enum(routine, urgent, emergency)"
        );
        assert_eq!(
            Kind::Records(FAMILY_MEMBER).describe(),
            "records(relationship: text, country: country_code, contact_wanted: bool)"
        );
        for k in ExtKind::ALL {
            assert_eq!(ExtKind::parse(k.name()), Some(k));
        }
        assert_eq!(ExtKind::parse("records"), None);
    }

    // ---- examples ---------------------------------------------------------------------------

    #[test]
    fn adult_example_parses() {
        let case = core().parse_case(ADULT).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(case.case_ref(), Some("IT-2026-0001"));
        assert_eq!(case.get("reference.receiving_country"), Some(&json!("AL")));
        assert_eq!(case.get("labour.wage_claim"), Some(&json!("filed")));
        assert!(!case.contains("identity.estimated_birth_year")); // null: not recorded
        assert!(!case.is_child_case());
        assert!(case.consent_given(Category::Identity));
        assert!(case.consent_given(Category::Health));
        assert_eq!(case.consent(Category::Family), Some(ConsentStatus::Refused));
        assert_eq!(case.consent(Category::Child), Some(ConsentStatus::NotAsked));
        // comment keys inside records are dropped
        assert_eq!(
            case.get("identity.identity_documents").unwrap()[1],
            json!({"type": "identity_card", "number": "EXAMPLE-111111", "issuing_country": "AL"})
        );
        for s in SECTIONS {
            assert!(
                case.iter().any(|(p, _)| p.starts_with(&format!("{s}."))),
                "{s} empty"
            );
        }
    }

    #[test]
    fn child_example_parses() {
        let case = core().parse_case(CHILD).unwrap_or_else(|e| panic!("{e}"));
        assert!(case.is_child_case());
        assert_eq!(case.get("child.unaccompanied"), Some(&json!(true)));
        assert_eq!(
            case.get("child.consent_for_child_by"),
            Some(&json!("guardian"))
        );
    }

    // ---- refusals ---------------------------------------------------------------------------

    #[test]
    fn wrong_type_is_refused() {
        let mut doc = minimal();
        set(&mut doc, "health.pregnancy", json!("yes"));
        let e = only_error(&core(), &doc);
        assert_eq!(e.path, "health.pregnancy");
        assert_eq!(e.reason, "expected true or false");
        let mut doc = minimal();
        set(&mut doc, "identity.estimated_birth_year", json!(1990.5));
        assert_eq!(only_error(&core(), &doc).reason, YEAR_REASON);
        for year in [
            json!(-5),
            json!(99_999_999_999i64),
            json!(1899),
            json!(2200),
        ] {
            let mut doc = minimal();
            set(&mut doc, "identity.estimated_birth_year", year);
            let e = only_error(&core(), &doc);
            assert_eq!(
                (e.path.as_str(), e.reason.as_str()),
                ("identity.estimated_birth_year", YEAR_REASON)
            );
        }
        let mut doc = minimal();
        set(&mut doc, "identity.family_name", json!(["Testova"]));
        assert_eq!(only_error(&core(), &doc).path, "identity.family_name");
    }

    #[test]
    fn unknown_field_and_section_are_refused() {
        let mut doc = minimal();
        set(&mut doc, "identity.favourite_colour", json!("green"));
        let e = only_error(&core(), &doc);
        assert_eq!(
            (e.path.as_str(), e.reason.as_str()),
            ("identity.favourite_colour", "unknown field")
        );

        let mut doc = minimal();
        doc["hobbies"] = json!({"x": 1});
        let e = only_error(&core(), &doc);
        assert_eq!(e.path, "hobbies");
        assert!(e.reason.starts_with("unknown section"), "{}", e.reason);

        let mut doc = minimal();
        doc["labour"] = json!("agriculture");
        assert_eq!(only_error(&core(), &doc).path, "labour");

        let mut doc = minimal();
        doc["ext"] = json!({"it": {"permit_number": "X1"}});
        let e = only_error(&core(), &doc);
        assert_eq!(e.path, "ext.it");

        let mut doc = minimal();
        doc["identity"] = json!({"family name": "Testova"});
        assert_eq!(only_error(&core(), &doc).path, "identity[\"family name\"]");
    }

    #[test]
    fn dates_must_be_real() {
        for bad in [
            "2026-02-30",
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-01-01",
            "2026-04-31",
            "1899-12-31",
            "2026/01/01",
            "２０２６-01-01",
        ] {
            let mut doc = minimal();
            set(&mut doc, "reference.date", json!(bad));
            let e = only_error(&core(), &doc);
            assert_eq!(e.path, "reference.date", "{bad}");
            assert_eq!(e.reason, DATE_REASON);
        }
        for good in [
            "2024-02-29",
            "2000-02-29",
            "2026-12-31",
            "1900-01-01",
            "2199-12-31",
        ] {
            assert!(parse_date(good).is_some(), "{good}");
        }
        assert_eq!(parse_date("2100-02-29"), None);
    }

    #[test]
    fn enum_and_country_values() {
        let mut doc = minimal();
        set(&mut doc, "reference.urgency", json!("asap"));
        let e = only_error(&core(), &doc);
        assert_eq!(e.path, "reference.urgency");
        assert_eq!(e.reason, "expected one of: routine, urgent, emergency");

        let mut doc = minimal();
        set(
            &mut doc,
            "exploitation.forms",
            json!(["labour", "begging", "labour"]),
        );
        let e = errors(&core(), &doc);
        assert_eq!(e.0.len(), 2, "{e}");
        assert_eq!(e.0[0].path, "exploitation.forms[1]");
        assert_eq!(e.0[1].path, "exploitation.forms[2]");
        assert_eq!(e.0[1].reason, "duplicate entry");

        for bad in [json!("al"), json!("ALB"), json!(8)] {
            let mut doc = minimal();
            set(&mut doc, "reference.receiving_country", bad);
            assert_eq!(only_error(&core(), &doc).reason, COUNTRY_REASON);
        }
        let mut doc = minimal();
        set(&mut doc, "identity.nationalities", json!(["AL", "xk"]));
        assert_eq!(only_error(&core(), &doc).path, "identity.nationalities[1]");
        let mut doc = minimal();
        set(&mut doc, "identity.nationalities", json!([]));
        assert_eq!(only_error(&core(), &doc).path, "identity.nationalities");
    }

    #[test]
    fn field_values_fit_the_protocol_limit() {
        // 100 records of 500 two-byte characters: valid per kind, too long on the wire
        let long = "é".repeat(MAX_TEXT_CHARS - 3);
        let rows: Vec<Value> = (0..MAX_LIST_ITEMS)
            .map(|i| json!({"type": "other", "number": format!("{i:03}{long}")}))
            .collect();
        let mut doc = minimal();
        set(&mut doc, "identity.identity_documents", Value::Array(rows));
        let e = only_error(&core(), &doc);
        assert_eq!(e.path, "identity.identity_documents");
        assert!(e.reason.contains("65536"), "{e}");
        let big = format!("\"{}\"", "x".repeat(MAX_VALUE_BYTES));
        assert!(core()
            .parse_field_value("reference.reason", big.as_bytes())
            .is_err());
    }

    #[test]
    fn text_rules() {
        for (bad, frag) in [
            (json!(""), "empty"),
            (json!(" Testova"), "whitespace"),
            (json!("Test\nova"), "one line"),
            (json!("x".repeat(MAX_TEXT_CHARS + 1)), "longer"),
        ] {
            let mut doc = minimal();
            set(&mut doc, "identity.family_name", bad);
            let e = only_error(&core(), &doc);
            assert!(e.reason.contains(frag), "{e}");
        }
        let mut doc = minimal();
        set(&mut doc, "reference.reason", json!("Line one.\nLine two."));
        core().parse_case(&doc.to_string()).unwrap();
    }

    #[test]
    fn records_and_consent_errors_have_precise_paths() {
        let mut doc = minimal();
        set(
            &mut doc,
            "identity.identity_documents",
            json!([
                {"type": "passport", "number": "TEST-1"},
                {"type": "passport", "valid_until": "2026-02-30"},
                {"kind": "passport"},
                {"// only": "a comment"},
                "passport"
            ]),
        );
        set(
            &mut doc,
            "consent.identity",
            json!({"date": "2026-01-01", "form": "email"}),
        );
        set(
            &mut doc,
            "consent.health",
            json!({"status": "given", "date": "2026-02-01", "withdrawn": "2026-01-01"}),
        );
        let e = errors(&core(), &doc);
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "identity.identity_documents[1].valid_until",
                "identity.identity_documents[2].kind",
                "identity.identity_documents[3]",
                "identity.identity_documents[4]",
                "consent.identity.form",
                "consent.identity.status",
                "consent.health.withdrawn",
            ],
            "{e}"
        );
        assert_eq!(e.0[5].reason, "required");
    }

    #[test]
    fn switched_off_field_is_refused() {
        let t = Template::new(vec![], ["health.disability", "labour"]).unwrap();
        assert!(t.is_disabled("labour.sector"));
        assert!(!t.field("health.disability").unwrap().enabled);
        assert!(t.fields().all(|f| f.path != "health.disability"));
        let mut doc = minimal();
        set(&mut doc, "health.disability", json!("Uses a wheelchair"));
        set(&mut doc, "labour.sector", json!("agriculture"));
        set(&mut doc, "labour.wage_claim", Value::Null); // null for a switched-off field is fine
        let e = errors(&t, &doc);
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["labour.sector", "health.disability"]);
        assert!(e.0[1].reason.contains("switched off"));
        assert!(core().parse_case(&doc.to_string()).is_ok());
        // received values too
        let err = t
            .parse_field_value("health.disability", br#""Uses a wheelchair""#)
            .unwrap_err();
        assert!(err.reason.contains("switched off"));
        assert!(!t.template_json().contains("\"disability\""));
    }

    #[test]
    fn template_config_is_checked() {
        assert_eq!(
            Template::new(vec![], ["health.shoe_size"]),
            Err(TemplateError::UnknownDisabled("health.shoe_size".into()))
        );
        assert_eq!(
            Template::new(vec![], ["reference.case_ref"]),
            Err(TemplateError::Mandatory("reference.case_ref".into()))
        );
        assert!(matches!(
            Template::new(vec![], ["child"]),
            Err(TemplateError::Mandatory(_))
        ));
        assert!(matches!(
            Template::new(vec![], ["consent.health"]),
            Err(TemplateError::Mandatory(_))
        ));
        let e = Extension::new("ext.it.x", ExtKind::Bool, Category::Risk, "Flag").unwrap();
        assert!(matches!(
            Template::new(vec![e.clone(), e], [""; 0]),
            Err(TemplateError::DuplicateExtension(_))
        ));
        for bad in [
            "ext.IT.x",
            "ext.it",
            "ext.it.x.y",
            "it.x",
            "ext.it.9x",
            "ext..x",
            "ext.it.x-y",
            "identity.family_name",
        ] {
            assert!(
                matches!(
                    Extension::new(bad, ExtKind::Text, Category::Risk, "Help"),
                    Err(TemplateError::ExtensionPath(_))
                ),
                "{bad}"
            );
        }
        assert!(Extension::new("ext.it.x", ExtKind::Text, Category::Unspecified, "Help").is_err());
        assert!(Extension::new("ext.it.x", ExtKind::Text, Category::Risk, "").is_err());
        assert!(Extension::new("ext.it.x", ExtKind::Text, Category::Risk, "two\nlines").is_err());

        let cfg: TemplateConfig = serde_json::from_value(json!({
            "extensions": [{"path": "ext.al.municipality_code", "kind": "text", "category": "identity", "help": "Municipality of residence code"}],
            "disabled": ["health"]
        }))
        .unwrap();
        let t = Template::from_config(&cfg).unwrap();
        assert_eq!(
            t.category_of("ext.al.municipality_code"),
            Some(Category::Identity)
        );
        assert!(t.is_disabled("health.pregnancy"));
        assert_eq!(Template::from_config(&t.to_config()).unwrap(), t);
        let bad: TemplateConfig = serde_json::from_value(json!({
            "extensions": [{"path": "ext.al.x", "kind": "colour", "category": "identity", "help": "H"}]
        }))
        .unwrap();
        assert!(matches!(
            Template::from_config(&bad),
            Err(TemplateError::ExtensionKind(..))
        ));
    }

    #[test]
    fn reference_minor_must_agree_with_the_child_section() {
        // An adult case that says it is a child's.
        let mut doc = minimal();
        set(&mut doc, "reference.minor", json!(true));
        let e = only_error(&core(), &doc);
        assert_eq!(e.path, REFERENCE_MINOR);
        assert!(e.reason.starts_with("must be false"), "{}", e.reason);
        // Agreeing with the derivation is fine.
        let mut doc = minimal();
        set(&mut doc, "reference.minor", json!(false));
        assert!(core().parse_case(&doc.to_string()).is_ok());
        // A received partial case: nothing to contradict it when child.* was withheld.
        let received = Case::from_fields(&core(), [(REFERENCE_MINOR.to_owned(), json!(true))]);
        assert!(received.is_ok());
        let contradicted = Case::from_fields(
            &core(),
            [
                (REFERENCE_MINOR.to_owned(), json!(true)),
                (CHILD_MINOR.to_owned(), json!(false)),
            ],
        );
        assert_eq!(contradicted.unwrap_err().0[0].path, REFERENCE_MINOR);
        // The header cannot be switched off.
        for path in HEADER_FIELDS {
            assert_eq!(
                Template::new(vec![], [path]),
                Err(TemplateError::Mandatory(path.into()))
            );
        }
    }

    #[test]
    fn child_case_requires_child_fields() {
        let mut doc = minimal();
        set(&mut doc, "identity.date_of_birth", json!("2010-04-09"));
        let e = errors(&core(), &doc);
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, CHILD_REQUIRED, "{e}");

        // minor: true alone is also a child case
        let mut doc = minimal();
        set(&mut doc, "child.minor", json!(true));
        set(&mut doc, "child.unaccompanied", json!(false));
        let e = errors(&core(), &doc);
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, &CHILD_REQUIRED[2..], "{e}");

        // the date of birth contradicts minor: false
        let mut doc = minimal();
        set(&mut doc, "identity.date_of_birth", json!("2008-03-02"));
        for (p, v) in [
            ("child.minor", json!(false)),
            ("child.unaccompanied", json!(true)),
            ("child.guardian_appointed", json!(true)),
            ("child.best_interests_status", json!("done")),
            ("child.consent_for_child_by", json!("court")),
        ] {
            set(&mut doc, p, v);
        }
        let e = only_error(&core(), &doc);
        assert_eq!(e.path, "child.minor");
        // 18th birthday on 2026-03-02: no longer a child; the day before still one
        set(&mut doc, "identity.date_of_birth", json!("2008-03-01"));
        core().parse_case(&doc.to_string()).unwrap();
        set(&mut doc, "identity.date_of_birth", json!("2008-03-03"));
        assert_eq!(only_error(&core(), &doc).path, "child.minor");
    }

    #[test]
    fn period_order() {
        let mut doc = minimal();
        set(&mut doc, "exploitation.period_from", json!("2025-05-01"));
        set(&mut doc, "exploitation.period_to", json!("2025-04-30"));
        set(
            &mut doc,
            "assistance.reflection_period_from",
            json!("2026-01-02"),
        );
        set(
            &mut doc,
            "assistance.reflection_period_to",
            json!("2026-01-01"),
        );
        let e = errors(&core(), &doc);
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["exploitation.period_to", "assistance.reflection_period_to"]
        );
        set(&mut doc, "exploitation.period_to", json!("2025-05-01"));
        set(
            &mut doc,
            "assistance.reflection_period_to",
            json!("2026-01-02"),
        );
        core().parse_case(&doc.to_string()).unwrap();
    }

    #[test]
    fn case_ref_rules() {
        let mut doc = json!({"reference": {"date": "2026-03-01"}});
        assert_eq!(only_error(&core(), &doc).path, CASE_REF);
        for bad in ["it-2026-1", "IT 2026 1", "IT-1", &"A".repeat(41)] {
            set(&mut doc, CASE_REF, json!(bad));
            assert!(
                only_error(&core(), &doc)
                    .reason
                    .starts_with("expected 6 to 40"),
                "{bad}"
            );
        }
        set(&mut doc, "identity.family_name", json!("Testović"));
        set(&mut doc, "identity.given_names", json!("Ana Example"));
        set(&mut doc, "identity.aliases", json!(["Sample"]));
        for bad in [
            "IT-TESTOVIC-1",
            "IT-2026-EXAMPLE",
            "IT-EXA-MPLE-1",
            "SAMPLE-2026",
        ] {
            set(&mut doc, CASE_REF, json!(bad));
            assert!(
                only_error(&core(), &doc).reason.contains("pseudonymous"),
                "{bad}"
            );
        }
        set(&mut doc, "identity.family_name", json!("Тестовић"));
        set(&mut doc, CASE_REF, json!("RS-TESTOVIC-1"));
        assert!(only_error(&core(), &doc).reason.contains("pseudonymous"));
        set(&mut doc, CASE_REF, json!("RS-2026-0001"));
        core().parse_case(&doc.to_string()).unwrap();
        assert!(name_tokens("Đorđević").contains("DJORDJEVIC"));
        assert!(name_tokens("Müller").contains("MUELLER"));
        assert!(name_tokens("Παπαδοπούλου").contains("PAPADOPOULOU"));
        assert!(name_tokens("Te\u{301}stova").contains("TESTOVA"));
    }

    #[test]
    fn all_errors_are_collected_in_template_order() {
        let doc = json!({
            "zzz": 1,
            "proceedings": {"role": "judge"},
            "identity": {"sex": "f", "date_of_birth": "2026-02-30", "unknown": 1},
            "reference": {"urgency": "asap"},
            "ext": {"xx": {}}
        });
        let e = errors(&core(), &doc);
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "reference.urgency",
                "identity.sex",
                "identity.date_of_birth",
                "identity.unknown",
                "proceedings.role",
                "ext.xx",
                "zzz",
                "reference.case_ref",
            ]
        );
        let text = e.to_string();
        assert_eq!(text.lines().count(), 8);
        assert!(
            text.starts_with("reference.urgency: expected one of: routine, urgent, emergency\n")
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = core()
            .parse_case("{\n  \"reference\": {\n    \"case_ref\": \"IT-2026-0001\",\n  }\n}")
            .unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].path, "");
        assert!(
            e.0[0].reason.starts_with("invalid JSON at line 4 column 3"),
            "{}",
            e.0[0]
        );
        assert!(e.to_string().starts_with("(document): invalid JSON"));
        let e = core()
            .parse_case(r#"{"reference": {"case_ref": "A", "case_ref": "B"}}"#)
            .unwrap_err();
        assert!(e.0[0].reason.contains("duplicate object key"), "{e}");
        assert!(core().parse_case("[1, 2]").unwrap_err().0[0]
            .reason
            .contains("object"));
        assert!(core().parse_case("").is_err());
    }

    #[test]
    fn errors_never_contain_values() {
        const CANARY: &str = "Zqxcanary";
        let c = |s: &str| json!(format!("{CANARY}{s}"));
        let doc = json!({
            "reference": {"case_ref": format!("IT-{}-1", CANARY.to_uppercase()), "date": c(""), "urgency": c(""), "receiving_country": c(""), "reason": c("\u{7}")},
            "identity": {
                "family_name": CANARY, "given_names": format!(" {CANARY}"), "sex": c(""), "estimated_birth_year": c(""),
                "nationalities": [c("")], "aliases": [c(""), c("")], "languages": c(""),
                "identity_documents": [{"type": c(""), "valid_until": c(""), "number": {"x": c("")}}, c("")]
            },
            "family": {"family_members": c(""), "family_tracing_requested": c("")},
            "child": {"minor": c("")},
            "exploitation": {"forms": [c("")], "period_from": c("")},
            "health": {"medical_needs": c(&"x".repeat(MAX_LONG_TEXT_CHARS))},
            "consent": {"identity": {"status": c(""), "by": c("")}, "health": c("")},
            "unknown_section": c(""),
        });
        let e = errors(&core(), &doc);
        assert!(e.0.len() > 15, "{e}");
        let text = format!("{e}\n{e:?}").to_lowercase();
        assert!(!text.contains(&CANARY.to_lowercase()), "{text}");

        // case_ref containing the name
        let mut doc = minimal();
        set(&mut doc, "identity.family_name", json!(CANARY));
        set(
            &mut doc,
            CASE_REF,
            json!(format!("IT-{}", CANARY.to_uppercase())),
        );
        let text = errors(&core(), &doc).to_string().to_lowercase();
        assert!(!text.contains(&CANARY.to_lowercase()), "{text}");

        // syntax errors
        for bad in [
            format!("{{\"reference\": {{\"case_ref\": \"{CANARY}\" \"x\"}}}}"),
            format!("{{\"reference\": {CANARY}}}"),
            format!("{{\"a\": \"{CANARY}\u{1}\"}}"),
            format!("{{\"a\": \"{CANARY}\\q\"}}"),
            format!("{{\"a\": \"{CANARY}\", \"a\": \"{CANARY}\"}}"),
        ] {
            let text = core().parse_case(&bad).unwrap_err().to_string();
            assert!(!text.contains(CANARY), "{text}");
        }
        // received values
        let t = ext_template();
        for (p, v) in [
            ("identity.date_of_birth", format!("\"{CANARY}\"")),
            ("identity.sex", format!("\"{CANARY}\"")),
            ("ext.it.hotline_call", format!("\"{CANARY}\"")),
            ("identity.family_name", format!("\"{CANARY}\"  ")),
            ("identity.family_name", format!("\"{CANARY}")),
            (
                "reference.case_ref",
                format!("\"{}\"", CANARY.to_lowercase()),
            ),
        ] {
            let e = t.parse_field_value(p, v.as_bytes()).unwrap_err();
            assert!(
                !e.to_string().contains(CANARY) && !e.to_string().contains(&CANARY.to_lowercase()),
                "{e}"
            );
        }
    }

    // ---- canonical values -------------------------------------------------------------------

    #[test]
    fn canonical_values_are_stable_and_round_trip() {
        let a = core()
            .parse_case(r#"{"reference": {"case_ref": "IT-2026-0001"}, "consent": {"identity": {"status": "given", "by": "person", "date": "2026-01-02"}}}"#)
            .unwrap();
        let b = core()
            .parse_case(r#"{"consent": {"identity": {"date": "2026-01-02", "// c": 1, "by": "person", "form": null, "status": "given"}}, "reference": {"case_ref": "IT-2026-0001"}}"#)
            .unwrap();
        assert_eq!(a, b);
        let bytes = a.canonical_value("consent.identity").unwrap();
        assert_eq!(
            bytes,
            br#"{"by":"person","date":"2026-01-02","status":"given"}"#
        );
        assert_eq!(b.canonical_value("consent.identity").unwrap(), bytes);
        assert_eq!(
            a.canonical_value("reference.case_ref").unwrap(),
            br#""IT-2026-0001""#
        );
        assert_eq!(a.canonical_value("identity.family_name"), None);

        let t = core();
        let case = t.parse_case(ADULT).unwrap();
        let committed = case.committed_fields();
        assert_eq!(committed.len(), case.len());
        let order: Vec<usize> = committed
            .iter()
            .map(|(p, _)| core_index(p).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "template order");
        for (path, bytes) in &committed {
            let v = t
                .parse_field_value(path, bytes)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(Some(&v), case.get(path));
        }
        let again = Case::from_fields(
            &t,
            committed
                .iter()
                .map(|(p, b)| (p.clone(), serde_json::from_slice(b).unwrap())),
        )
        .unwrap();
        assert_eq!(again, case);
        let doc = case.to_json_document();
        assert_eq!(t.parse_case_value(&doc).unwrap(), case);
        assert_eq!(
            t.parse_case(&serde_json::to_string_pretty(&doc).unwrap())
                .unwrap(),
            case
        );
    }

    #[test]
    fn received_values_must_be_canonical_and_valid() {
        let t = core();
        assert!(t
            .parse_field_value("consent.identity", br#"{"status":"given","by":"person"}"#)
            .unwrap_err()
            .reason
            .contains("canonical"));
        assert!(t
            .parse_field_value("identity.sex", br#" "female""#)
            .is_err());
        assert_eq!(
            t.parse_field_value("identity.sex", br#""female""#).unwrap(),
            json!("female")
        );
        assert_eq!(
            t.parse_field_value("identity.sex", b"null")
                .unwrap_err()
                .path,
            "identity.sex"
        );
        assert_eq!(
            t.parse_field_value("identity.shoe", b"1")
                .unwrap_err()
                .reason,
            "unknown field"
        );
        let e = t
            .parse_field_value(
                "identity.identity_documents",
                br#"[{"type":"passport"},{"valid_until":"2026-02-30"}]"#,
            )
            .unwrap_err();
        assert_eq!(e.path, "identity.identity_documents[1].valid_until");
        assert!(t
            .parse_field_value("reference.case_ref", br#""it-1""#)
            .is_err());
        assert!(t
            .parse_field_value("identity.family_name", &[0xff, 0xfe])
            .is_err());
    }

    // ---- template JSON ----------------------------------------------------------------------

    #[test]
    fn template_json_round_trips() {
        for t in [
            core(),
            ext_template(),
            Template::new(vec![], ["health", "labour.sector"]).unwrap(),
        ] {
            let text = t.template_json();
            let e = t.parse_case(&text).unwrap_err();
            assert_eq!(
                e.0,
                [FieldError::new(CASE_REF, e.0[0].reason.clone())],
                "{e}"
            );
            let doc: Value = serde_json::from_str(&text).unwrap();
            for f in t.fields() {
                let parts: Vec<&str> = f.path.split('.').collect();
                let (parent, name) = parts.split_at(parts.len() - 1);
                let mut obj = &doc;
                for p in parent {
                    obj = &obj[*p];
                }
                assert_eq!(obj[name[0]], Value::Null, "{}", f.path);
                assert_eq!(
                    obj[format!("// {}", name[0])],
                    json!(f.comment()),
                    "{}",
                    f.path
                );
            }
            let n_fields = text
                .lines()
                .filter(|l| l.trim_end().ends_with(": null,") || l.trim_end().ends_with(": null"))
                .count();
            assert_eq!(n_fields, t.fields().count());
            for d in t.disabled() {
                assert!(
                    !text.contains(&format!("\"// {}\"", d.rsplit('.').next().unwrap())),
                    "{d}"
                );
            }
            // filled in, it parses
            let filled = text.replacen("\"case_ref\": null", "\"case_ref\": \"XX-2026-0001\"", 1);
            assert!(t.parse_case(&filled).unwrap().len() == 1);
        }
        let text = ext_template().template_json();
        let pos = |s: &str| text.find(s).unwrap();
        assert!(pos("\"// case_ref\"") < pos("\"case_ref\": null"));
        assert!(pos("\"case_ref\": null") < pos("\"// sending_institution\""));
        assert!(
            pos("\"reference\"") < pos("\"identity\"")
                && pos("\"proceedings\"") < pos("\"consent\"")
                && pos("\"consent\"") < pos("\"ext\"")
        );
        assert!(text.contains(
            "\"// permit_number\": \"text · identity · Number of the special protection permit\""
        ));
    }

    // ---- extensions -------------------------------------------------------------------------

    #[test]
    fn extension_fields_parse_and_carry_their_category() {
        let t = ext_template();
        let mut doc = minimal();
        doc["ext"] = json!({"it": {"permit_number": "TEST-PERMIT-1", "hotline_call": "2026-01-15", "social_workers": null, "// x": 0}});
        let case = t.parse_case(&doc.to_string()).unwrap();
        assert_eq!(
            case.get("ext.it.permit_number"),
            Some(&json!("TEST-PERMIT-1"))
        );
        assert_eq!(
            t.category_of("ext.it.permit_number"),
            Some(Category::Identity)
        );
        assert_eq!(
            t.category_of("ext.it.hotline_call"),
            Some(Category::Reference)
        );
        let f = t.field("ext.it.social_workers").unwrap();
        assert!(f.extension && f.enabled && f.kind == Kind::TextList);
        assert_eq!(
            case.committed_fields().last().unwrap().0,
            "ext.it.permit_number"
        );
        assert_eq!(
            case.to_json_document()["ext"]["it"]["hotline_call"],
            json!("2026-01-15")
        );

        doc["ext"]["it"]["hotline_call"] = json!("2026-02-30");
        doc["ext"]["it"]["fax"] = json!("1");
        let e = errors(&t, &doc);
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["ext.it.fax", "ext.it.hotline_call"]);

        // declarations travel in pb and come back identical
        let pbs = t.extensions_pb();
        assert_eq!(pbs[0].kind, "text");
        assert_eq!(pbs[0].category, Category::Identity as i32);
        for (e, p) in t.extensions().iter().zip(&pbs) {
            assert_eq!(&Extension::from_pb(p).unwrap(), e);
        }
        let mut bad = pbs[0].clone();
        bad.kind = "records".into();
        assert!(Extension::from_pb(&bad).is_err());
        bad = pbs[0].clone();
        bad.category = 99;
        assert!(Extension::from_pb(&bad).is_err());

        // a receiver checks the sender's declared extensions; undeclared ones are accepted as-is
        let receiver = Template::new(vec![], ["identity.aliases"]).unwrap();
        let r = receiver.for_received(&pbs).unwrap();
        assert!(r.is_disabled("identity.aliases"));
        let d = r
            .parse_disclosed("ext.it.permit_number", br#""TEST-PERMIT-1""#)
            .unwrap();
        assert_eq!(
            (d.category, d.unknown_extension),
            (Some(Category::Identity), false)
        );
        assert!(r
            .parse_disclosed("ext.it.hotline_call", br#""2026-02-30""#)
            .is_err());
        let d = receiver
            .parse_disclosed("ext.it.permit_number", br#"{"any":[1,2]}"#)
            .unwrap();
        assert_eq!((d.category, d.unknown_extension), (None, true));
        assert!(!format!("{d:?}").contains("any"));
        assert!(receiver.parse_disclosed("ext.IT.x", b"1").is_err());
    }

    #[test]
    fn from_fields_checks_values_but_not_completeness() {
        let t = core();
        let c = Case::from_fields(
            &t,
            [
                ("identity.sex".to_owned(), json!("male")),
                ("identity.family_name".to_owned(), Value::Null),
            ],
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c.case_ref(), None);
        let e = Case::from_fields(
            &t,
            [
                ("identity.sex".to_owned(), json!("m")),
                ("x.y".to_owned(), json!(1)),
                ("identity.sex".to_owned(), json!("male")),
            ],
        )
        .unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["identity.sex", "x.y"]);
        let e = Case::from_fields(
            &t,
            [
                ("exploitation.period_from".to_owned(), json!("2026-01-02")),
                ("exploitation.period_to".to_owned(), json!("2026-01-01")),
            ],
        )
        .unwrap_err();
        assert_eq!(e.0[0].path, "exploitation.period_to");
        assert!(!format!("{c:?}").contains("male"));
    }

    // ---- docs -------------------------------------------------------------------------------

    fn field_table() -> String {
        let mut s = String::from("| path | kind | category | help |\n|---|---|---|---|\n");
        for d in core_fields() {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                d.path,
                d.kind.describe(),
                category_name(d.category),
                d.help
            ));
        }
        s
    }

    #[test]
    fn docs_field_table_is_in_sync() {
        let begin = "<!-- fields:begin -->\n";
        let end = "<!-- fields:end -->";
        let start = DOCS
            .find(begin)
            .expect("docs/TEMPLATE.md lacks <!-- fields:begin -->")
            + begin.len();
        let stop = DOCS[start..]
            .find(end)
            .expect("docs/TEMPLATE.md lacks <!-- fields:end -->")
            + start;
        assert!(
            DOCS[start..stop] == field_table(),
            "docs/TEMPLATE.md field table is out of sync with core_fields(); regenerate with\n\
             cargo test -p trm-proto print_field_table -- --ignored --nocapture"
        );
        assert!(DOCS.contains(TEMPLATE_VERSION));
    }

    #[test]
    #[ignore = "prints the field table for docs/TEMPLATE.md"]
    fn print_field_table() {
        print!("{}", field_table());
    }

    // ---- properties -------------------------------------------------------------------------

    fn arb_json() -> impl Strategy<Value = Value> {
        let keys = prop_oneof![
            Just("reference".to_owned()),
            Just("identity".to_owned()),
            Just("child".to_owned()),
            Just("consent".to_owned()),
            Just("ext".to_owned()),
            Just("it".to_owned()),
            Just("case_ref".to_owned()),
            Just("date_of_birth".to_owned()),
            Just("identity_documents".to_owned()),
            Just("status".to_owned()),
            Just("minor".to_owned()),
            Just("// c".to_owned()),
            "[a-z_]{1,12}",
            ".{0,8}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}".prop_map(Value::from),
            "[A-Z0-9-]{0,12}".prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((keys.clone(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn arb_case_doc() -> impl Strategy<Value = Value> {
        let fields =
            prop::collection::vec((prop::sample::select(core_fields()), arb_json()), 0..12);
        fields.prop_map(|fs| {
            let mut doc = json!({});
            for (d, v) in fs {
                set(&mut doc, d.path, v);
            }
            doc
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            let t = ext_template();
            let _ = t.parse_case(&v.to_string());
            let _ = t.parse_case_value(&v);
            let _ = t.parse_field_value("identity.identity_documents", &canonical_json(&v));
            let _ = t.parse_field_value("consent.child", &canonical_json(&v));
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,200}", b in prop::collection::vec(any::<u8>(), 0..64)) {
            let t = core();
            let _ = t.parse_case(&s);
            let _ = t.parse_field_value("reference.date", &b);
            let _ = t.parse_field_value(&s, s.as_bytes());
        }

        #[test]
        fn case_shaped_documents_never_panic_and_round_trip(doc in arb_case_doc()) {
            let t = core();
            match t.parse_case(&doc.to_string()) {
                Ok(case) => {
                    let back = t.parse_case_value(&case.to_json_document()).unwrap();
                    prop_assert_eq!(back, case.clone());
                    for (p, b) in case.committed_fields() {
                        let v = t.parse_field_value(&p, &b).unwrap();
                        prop_assert_eq!(Some(&v), case.get(&p));
                    }
                }
                Err(e) => {
                    prop_assert!(!e.0.is_empty());
                    for err in &e.0 {
                        prop_assert!(!err.reason.is_empty());
                    }
                }
            }
        }
    }

    #[test]
    fn a_case_reference_belongs_to_the_country_it_starts_with() {
        for (case_ref, country, want) in [
            ("IT-2026-0001", "IT", true),
            ("IT-X", "IT", true),
            ("IT-", "IT", false),
            ("IT2026-0001", "IT", false),
            ("GR-2026-0007", "IT", false),
            ("ITA-2026-0001", "IT", false),
            ("AL-2026-0001", "AL", true),
            ("", "IT", false),
        ] {
            assert_eq!(
                case_ref_of(case_ref, country),
                want,
                "{case_ref} of {country}"
            );
        }
    }
}
