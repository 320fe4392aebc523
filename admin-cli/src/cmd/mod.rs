//! The commands that talk to a node, grouped by area. Each one checks what it can locally,
//! makes one typed call ([`ask`]) and shows the answer ([`show`]): as the node's JSON document
//! with `--json`, else through its renderer in [`crate::render`].

pub(crate) mod audit;
pub(crate) mod cases;
pub(crate) mod directory;
pub(crate) mod messages;
pub(crate) mod officers;
pub(crate) mod peers;
pub(crate) mod policy;
pub(crate) mod referrals;

use serde::Serialize;
use trm_admin_api::answers::{to_json_pretty, AdminCall};
use trm_admin_api::client::{AdminClient, ClientError};
use trm_admin_api::credential::Credential;

use crate::failure::Failure;

/// One invocation: the officer's credential and the output wanted.
pub(crate) struct Session {
    pub(crate) cred: Credential,
    pub(crate) json: bool,
}

/// What a refusal by the node (for a reason other than the caller's role) means here.
#[derive(Clone, Copy)]
pub(crate) enum Refused<'a> {
    /// The node refused the call: exit 1.
    Call,
    /// A refused identity card is bad input: exit 64.
    Input,
    /// A refused case file is bad input (64), one line per field error naming the file.
    CaseFile(&'a str),
    /// `case update`: a refused case file (the node's "case refused: ...") as [`Refused::CaseFile`];
    /// any other refusal (no such case, nothing changed) as [`Refused::Call`].
    CaseUpdate(&'a str),
}

impl Refused<'_> {
    pub(crate) fn failure(self, e: ClientError) -> Failure {
        match (self, e) {
            (
                Refused::Input,
                ClientError::Refused {
                    message,
                    required_role: None,
                },
            ) => Failure::usage(message),
            (
                Refused::CaseFile(file),
                ClientError::Refused {
                    message,
                    required_role: None,
                },
            ) => Failure::case_refused(file, &message),
            (
                Refused::CaseUpdate(file),
                ClientError::Refused {
                    message,
                    required_role: None,
                },
            ) if message.starts_with("case refused: ") => Failure::case_refused(file, &message),
            (_, other) => other.into(),
        }
    }
}

/// Makes one call; returns its typed answer and its binary data (an audit bundle).
pub(crate) async fn ask<C: AdminCall>(
    s: &Session,
    request: C,
    refused: Refused<'_>,
) -> Result<(C::Answer, Vec<u8>), Failure> {
    let client = AdminClient::connect(&s.cred).await?;
    let result = client.call_raw(request.into_call()).await;
    client.close().await;
    let (text, data) = result.map_err(|e| refused.failure(e))?;
    let answer = serde_json::from_str(&text)
        .map_err(|e| Failure::from(ClientError::BadAnswer(e.to_string())))?;
    Ok((answer, data))
}

/// Prints `answer`: its JSON document with `--json`, else `human(answer)`.
pub(crate) fn show<T: Serialize>(s: &Session, answer: &T, human: impl FnOnce(&T) -> String) {
    if s.json {
        println!("{}", to_json_pretty(answer));
    } else {
        print!("{}", human(answer));
    }
}

/// Makes one call the node may refuse (exit 1) and shows its answer.
pub(crate) async fn call<C: AdminCall>(
    s: &Session,
    request: C,
    human: impl FnOnce(&C::Answer) -> String,
) -> Result<(), Failure> {
    let (answer, _) = ask(s, request, Refused::Call).await?;
    show(s, &answer, human);
    Ok(())
}
