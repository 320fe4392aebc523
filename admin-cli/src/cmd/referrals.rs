//! `referral preview | send | approve | approvals | disclose | accept | decline`,
//! `followup send | preview` and
//! `info request`.

use std::path::PathBuf;

use trm_proto::admin as api;

use super::{call, Session};
use crate::failure::Failure;
use crate::files::FileKind;
use crate::render;

/// A referral named by its message id, or by case id (or reference) and country.
pub(crate) fn name_referral(referral: String, peer: Option<String>) -> String {
    match peer {
        Some(cc) => format!("{referral}/{cc}"),
        None => referral,
    }
}

pub(crate) async fn preview(s: &Session, case_id: String, to: String) -> Result<(), Failure> {
    call(s, api::ReferralPreview { case_id, to }, render::preview).await
}

pub(crate) async fn send(s: &Session, case_id: String, to: String) -> Result<(), Failure> {
    call(s, api::ReferralSend { case_id, to }, render::sent).await
}

pub(crate) async fn approve(s: &Session, request: api::ReferralApprove) -> Result<(), Failure> {
    call(s, request, render::approved).await
}

/// `referral approvals`.
pub(crate) async fn approvals(s: &Session) -> Result<(), Failure> {
    call(s, api::ReferralApprovals {}, render::approvals).await
}

pub(crate) async fn disclose(s: &Session, request: api::ReferralDisclose) -> Result<(), Failure> {
    call(s, request, render::disclosed).await
}

/// `referral accept` and `referral decline`.
pub(crate) async fn answer(s: &Session, request: api::ReferralAnswer) -> Result<(), Failure> {
    call(s, request, render::enqueued).await
}

/// `followup send`; `fields_file` holds updated template fields (a partial case).
pub(crate) async fn follow_up(
    s: &Session,
    mut request: api::FollowUpSend,
    fields_file: Option<PathBuf>,
) -> Result<(), Failure> {
    if let Some(f) = fields_file {
        request.fields_json = super::cases::json_file(&f, FileKind::Fields)?;
    }
    call(s, request, render::follow_up_sent).await
}

/// `followup preview`: the same request as `followup send`, sent nowhere.
pub(crate) async fn follow_up_preview(
    s: &Session,
    mut request: api::FollowUpSend,
    fields_file: Option<PathBuf>,
) -> Result<(), Failure> {
    if let Some(f) = fields_file {
        request.fields_json = super::cases::json_file(&f, FileKind::Fields)?;
    }
    let preview = api::FollowUpPreview {
        request: Some(request),
    };
    call(s, preview, render::follow_up_preview).await
}

pub(crate) async fn info_request(s: &Session, request: api::InfoRequest) -> Result<(), Failure> {
    call(s, request, render::enqueued).await
}
