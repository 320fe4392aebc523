//! Seed inputs for the targets whose inputs are hard to find by mutation alone: one valid
//! message of every payload kind against the fixed threads of [`crate::receive`], and one
//! admin request of every call.

use prost::Message;
use trm_proto::admin::{self as api, admin_request::Call, AdminRequest};
use trm_proto::frame;
use trm_proto::pb::{self, body::Payload};

use crate::receive::{self, referral_id, NORMALISE, RESIGN};

fn transmission(flags: u8, body: pb::Body, disclosures: Vec<pb::FieldDisclosure>) -> Vec<u8> {
    let t = pb::Transmission {
        envelope: Some(pb::Envelope {
            body: body.encode_to_vec(),
            signature: vec![0; 64],
            signer: vec![0; 32],
        }),
        disclosures,
    };
    let mut v = vec![flags];
    v.extend(t.encode_to_vec());
    v
}

/// Seeds of `receive_check`: (name, bytes).
pub fn receive_check() -> Vec<(String, Vec<u8>)> {
    let c = receive::commitment();
    let digests = c.digest_bytes();
    let some: Vec<pb::FieldDisclosure> = c
        .disclosures
        .iter()
        .filter(|d| d.path.starts_with("reference.") || d.path.starts_with("exploitation."))
        .cloned()
        .collect();
    let all = c.disclosures.clone();
    let b = |case: &str, n: u8, p: Payload| receive::body(case, vec![0x40 + n; 16], 0, p);
    let reply = |case: &str, n: u8, to: u8, p: Payload| {
        let mut x = b(case, n, p);
        x.in_reply_to = referral_id(to);
        x
    };
    let ext = pb::ExtensionField {
        path: "ext.it.permit_number".into(),
        kind: "text".into(),
        category: pb::Category::Identity as i32,
        help: "residence permit".into(),
    };
    let cases: Vec<(&str, pb::Body, Vec<pb::FieldDisclosure>)> = vec![
        (
            "referral_new",
            b(
                "IT-FUZZ-0100",
                1,
                Payload::Referral(pb::Referral {
                    template_version: trm_proto::template::TEMPLATE_VERSION.into(),
                    digests: digests.clone(),
                    extensions: vec![ext.clone()],
                    phase: pb::Phase::Identification as i32,
                    ..Default::default()
                }),
            ),
            some.clone(),
        ),
        (
            "referral_open",
            b(
                "IT-FUZZ-0001",
                2,
                Payload::Referral(pb::Referral {
                    template_version: trm_proto::template::TEMPLATE_VERSION.into(),
                    digests: digests.clone(),
                    ..Default::default()
                }),
            ),
            vec![],
        ),
        (
            "disclosure",
            b(
                "IT-FUZZ-0001",
                3,
                Payload::Disclosure(pb::Disclosure {
                    referral_id: referral_id(1),
                }),
            ),
            all,
        ),
        (
            "acceptance",
            reply(
                "AL-FUZZ-0003",
                4,
                3,
                Payload::Acceptance(pb::Acceptance {
                    responsible_institution: "Synthetic Shelter".into(),
                    focal_point: "duty officer".into(),
                }),
            ),
            vec![],
        ),
        (
            "decline",
            reply(
                "AL-FUZZ-0003",
                5,
                3,
                Payload::Decline(pb::Decline {
                    reason: "no capacity".into(),
                }),
            ),
            vec![],
        ),
        (
            "follow_up",
            b(
                "IT-FUZZ-0002",
                6,
                Payload::FollowUp(pb::FollowUp {
                    phase: pb::Phase::FirstAssistance as i32,
                    status: "in shelter".into(),
                    date: "2026-11-02".into(),
                    digests: digests.clone(),
                    extensions: vec![ext],
                }),
            ),
            some,
        ),
        (
            "information_request",
            b(
                "AL-FUZZ-0004",
                7,
                Payload::InformationRequest(pb::InformationRequest {
                    fields: vec!["identity.family_name".into()],
                    categories: vec![pb::Category::Identity as i32],
                    purpose: "identification".into(),
                }),
            ),
            vec![],
        ),
        (
            "closure",
            b(
                "IT-FUZZ-0002",
                8,
                Payload::Closure(pb::Closure {
                    outcome: pb::ClosureOutcome::Transferred as i32,
                    date: "2026-11-03".into(),
                }),
            ),
            vec![],
        ),
        (
            "erasure_request",
            b(
                "AL-FUZZ-0004",
                9,
                Payload::ErasureRequest(pb::ErasureRequest {
                    referral_id: referral_id(4),
                    categories: vec![pb::Category::Identity as i32],
                    reason: "consent_withdrawn".into(),
                }),
            ),
            vec![],
        ),
        (
            "erasure_confirmation",
            b(
                "IT-FUZZ-0002",
                10,
                Payload::ErasureConfirmation(pb::ErasureConfirmation {
                    request_id: vec![9; 16],
                    categories: vec![pb::Category::Identity as i32],
                    erased_ms: 1,
                }),
            ),
            vec![],
        ),
        (
            "directory_update",
            b(
                "",
                11,
                Payload::DirectoryUpdate(pb::DirectoryUpdate {
                    directory: Some(pb::Signed {
                        body: pb::Directory {
                            country: "IT".into(),
                            version: 2,
                            published_ms: 1,
                            contacts: vec![pb::Contact {
                                institution: "Synthetic Unit".into(),
                                role: "national_referral_unit".into(),
                                channels: vec!["mailto:nru@example.org".into()],
                                ..Default::default()
                            }],
                        }
                        .encode_to_vec(),
                        signature: vec![0; 64],
                        signer: vec![0; 32],
                    }),
                }),
            ),
            vec![],
        ),
        (
            "key_announcement",
            b(
                "",
                12,
                Payload::KeyAnnouncement(pb::KeyAnnouncement {
                    key: Some(pb::KeyRecord::default()),
                    card: vec![0x0a, 0x00],
                }),
            ),
            vec![],
        ),
    ];
    let mut out = Vec::new();
    for (name, body, ds) in cases {
        out.push((
            format!("{name}"),
            transmission(RESIGN | NORMALISE, body.clone(), ds.clone()),
        ));
        out.push((format!("{name}_raw"), transmission(0, body, ds)));
    }
    out
}

/// Seeds of `admin_request`: every call, framed as the admin listener reads it.
pub fn admin_request() -> Vec<(String, Vec<u8>)> {
    let calls = vec![
        Call::Status(api::Status {}),
        Call::PeerAdd(api::PeerAdd {
            card: vec![1, 2, 3],
        }),
        Call::PeerList(api::PeerList {}),
        Call::PeerRemove(api::PeerRemove {
            country: "IT".into(),
        }),
        Call::PeerRevoke(api::PeerRevoke {
            country: "IT".into(),
        }),
        Call::PeerTrust(api::PeerTrust {
            country: "IT".into(),
        }),
        Call::OfficerAdd(api::OfficerAdd {
            name: "Officer Example".into(),
            role: "supervisor".into(),
            cert_der: vec![0x30, 0x82],
        }),
        Call::OfficerList(api::OfficerList {}),
        Call::CaseCreate(api::CaseCreate {
            json: receive::case_json(),
        }),
        Call::CaseList(api::CaseList {}),
        Call::CaseShow(api::CaseShow { id: "c-1".into() }),
        Call::CaseTemplate(api::CaseTemplate {}),
        Call::CaseTimeline(api::CaseTimeline { id: "c-1".into() }),
        Call::CaseConsent(api::CaseConsent {
            case_id: "c-1".into(),
            give: "identity".into(),
            by: "person".into(),
            ..Default::default()
        }),
        Call::CaseClose(api::CaseClose {
            case_id: "c-1".into(),
            to: "IT".into(),
            outcome: "transferred".into(),
            date: "2026-11-03".into(),
        }),
        Call::ReferralSend(api::ReferralSend {
            case_id: "c-1".into(),
            to: "IT".into(),
        }),
        Call::ReferralPreview(api::ReferralPreview {
            case_id: "c-1".into(),
            to: "IT".into(),
        }),
        Call::ReferralApprove(api::ReferralApprove {
            referral: "00".into(),
            categories: vec!["identity".into()],
        }),
        Call::ReferralDisclose(api::ReferralDisclose {
            referral: "00".into(),
            fields: vec!["identity.family_name".into()],
            categories: vec!["identity".into()],
        }),
        Call::ReferralAnswer(api::ReferralAnswer {
            referral: "00".into(),
            decline: true,
            reason: "no capacity".into(),
            ..Default::default()
        }),
        Call::FollowUpSend(api::FollowUpSend {
            case_id: "c-1".into(),
            to: "IT".into(),
            phase: "identification".into(),
            status: "ok".into(),
            date: "2026-11-02".into(),
            fields_json: "{}".into(),
            in_reply_to: String::new(),
        }),
        Call::InfoRequest(api::InfoRequest {
            case_id: "c-1".into(),
            to: "IT".into(),
            fields: vec!["identity.family_name".into()],
            categories: vec![],
            purpose: "identification".into(),
        }),
        Call::Inbox(api::Inbox {}),
        Call::MessageShow(api::MessageShow { id: "00".into() }),
        Call::DirectoryList(api::DirectoryList {
            country: "IT".into(),
        }),
        Call::DirectoryEdit(api::DirectoryEdit { json: "{}".into() }),
        Call::DirectoryPublish(api::DirectoryPublish {}),
        Call::AuditExport(api::AuditExport {
            from_ms: 1,
            to_ms: 2,
        }),
        Call::Backup(api::Backup { include_keys: true }),
    ];
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let name = trm_node::admin::call_rules(&c).0.replace(' ', "_");
            let req = AdminRequest { call: Some(c) };
            (format!("{i:02}_{name}"), frame::encode(&req))
        })
        .collect()
}

/// Seeds of the five older targets: a real card, a signed referral envelope, the same in a
/// framed `PeerRequest`, a referral with its disclosures, and the example cases.
pub fn older_targets() -> Vec<(&'static str, String, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().join("IT");
    let addr: std::net::SocketAddr = "127.0.0.1:4433".parse().unwrap();
    trm_node::identity::init(&d, "IT", "IT fuzz unit", addr, addr, None).expect("init");
    let card = std::fs::read(d.join("card.trm")).expect("card");
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let env = receive::referral_envelope(&key, 1_800_000_000_000);
    let c = receive::commitment();
    let t = pb::Transmission {
        envelope: Some(env.clone()),
        disclosures: c.disclosures.clone(),
    };
    let req = pb::PeerRequest {
        kind: Some(pb::peer_request::Kind::Transmission(t.clone())),
    };
    let referral = pb::Referral {
        digests: c.digest_bytes(),
        ..Default::default()
    }
    .encode_to_vec();
    // disclosure_verify: the split position (u16, little-endian), the Referral, the Transmission.
    let mut dv = (referral.len() as u16).to_le_bytes().to_vec();
    dv.extend(&referral);
    dv.extend(t.encode_to_vec());
    vec![
        ("card_parse", "seed_card".into(), card),
        (
            "envelope_verify",
            "seed_referral".into(),
            env.encode_to_vec(),
        ),
        (
            "frame_decode",
            "seed_transmission".into(),
            frame::encode(&req),
        ),
        ("disclosure_verify", "seed_referral".into(), dv),
        (
            "case_json",
            "seed_adult".into(),
            include_bytes!("../../examples/adult-labour.json").to_vec(),
        ),
        (
            "case_json",
            "seed_child".into(),
            include_bytes!("../../examples/child-unaccompanied.json").to_vec(),
        ),
        (
            "case_json",
            "seed_case".into(),
            receive::case_json().into_bytes(),
        ),
    ]
}
