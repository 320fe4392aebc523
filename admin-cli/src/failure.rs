//! A user-facing failure: one line (a refused case file: one line per field error) and an
//! exit code.

use trm_admin_api::client::ClientError;

/// A user-facing failure: one line (a refused case file: one line per field error) and an
/// exit code.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) lines: Vec<String>,
}

/// `text` on one line: its non-empty lines joined with "; ".
pub(crate) fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join("; ")
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl AsRef<str>) -> Self {
        Self {
            code,
            lines: vec![one_line(message.as_ref())],
        }
    }

    pub(crate) fn usage(message: impl AsRef<str>) -> Self {
        Self::new(64, message)
    }

    /// The node refused a case file: every field error on its own line, each naming the file.
    pub(crate) fn case_refused(file: &str, message: &str) -> Self {
        let errors = message.strip_prefix("case refused: ").unwrap_or(message);
        Self {
            code: 64,
            lines: errors
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| format!("{file}: {l}"))
                .collect(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::Credential(_) => 64,
            ClientError::Unreachable { .. } => 69,
            ClientError::Refused {
                required_role: Some(_),
                ..
            } => 77,
            _ => 1,
        };
        Failure::new(code, e.to_string())
    }
}
