//! The node's shared vocabulary: who calls (roles), how a call fails, how the receive path
//! refuses. Every subsystem may use it; it imports nothing from the node.

use trm_proto::pb::RejectReason;

/// An officer's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Runs the node: peers, officers, directory.
    Operator,
    /// Liaison officer: cases, referrals, follow-ups.
    Officer,
    /// Approves the release of sensitive categories (four eyes).
    Supervisor,
    /// Exports and verifies the audit log; sees no personal data.
    Auditor,
}

impl Role {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Officer => "officer",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "operator" => Role::Operator,
            "officer" => Role::Officer,
            "supervisor" => Role::Supervisor,
            "auditor" => Role::Auditor,
            _ => return None,
        })
    }
}

/// The caller of an admin call.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Officer name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// A refused or failed call.
#[derive(Debug)]
pub struct CallError {
    /// One line, never a case field value.
    pub message: String,
    /// Set when the caller's role may not make this call.
    pub required_role: Option<String>,
}

impl CallError {
    /// A failed call.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            required_role: None,
        }
    }
}

impl<E: std::fmt::Display> From<E> for CallError {
    fn from(e: E) -> Self {
        CallError::msg(e.to_string())
    }
}

/// What the receive path refuses, with the reason code, a detail and the offending fields.
#[derive(Debug)]
pub struct Refusal {
    /// Reason code.
    pub reason: RejectReason,
    /// One line; never a field value.
    pub detail: String,
    /// Field paths concerned.
    pub fields: Vec<String>,
}

impl Refusal {
    /// A refusal without fields.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            fields: vec![],
        }
    }
}
