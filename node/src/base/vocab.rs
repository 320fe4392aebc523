//! The node's shared vocabulary: who calls (roles), how a call fails, how the receive path
//! refuses, where a referral's thread stands. Audit entry kinds are `trm_proto::audit::AuditKind`
//! (shared with the offline verifier); metric names are in `base::metrics`.
//! Every subsystem may use it; it imports nothing from the node.

use trm_proto::pb::RejectReason;

/// An officer's role (defined with the admin API, which the CLI shares).
pub use trm_admin_api::Role;

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

/// Which side of a referral a thread is on this node. Stored as [`ThreadRole::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThreadRole {
    /// This node referred the case.
    Sent,
    /// This node received the referral.
    Received,
}

impl ThreadRole {
    /// The role as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            ThreadRole::Sent => "sent",
            ThreadRole::Received => "received",
        }
    }

    /// The other side's role.
    pub fn other(self) -> ThreadRole {
        match self {
            ThreadRole::Sent => ThreadRole::Received,
            ThreadRole::Received => ThreadRole::Sent,
        }
    }

    /// The role stored as `s`.
    pub fn parse(s: &str) -> Option<ThreadRole> {
        [ThreadRole::Sent, ThreadRole::Received]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Where a thread's referral stands (see `referral::lifecycle`; stored in `store::ThreadRecord`). Stored as
/// [`ThreadState::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThreadState {
    /// Referred, not yet answered.
    Pending,
    /// Accepted by the receiving country.
    Accepted,
    /// Declined by the receiving country.
    Declined,
    /// Closed by either country.
    Closed,
}

impl ThreadState {
    /// Every state.
    pub const ALL: [ThreadState; 4] = [
        ThreadState::Pending,
        ThreadState::Accepted,
        ThreadState::Declined,
        ThreadState::Closed,
    ];

    /// The state as stored and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            ThreadState::Pending => "pending",
            ThreadState::Accepted => "accepted",
            ThreadState::Declined => "declined",
            ThreadState::Closed => "closed",
        }
    }

    /// The state stored as `s`.
    pub fn parse(s: &str) -> Option<ThreadState> {
        ThreadState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Open: a referral that may still be answered, followed up or closed.
    pub fn is_open(self) -> bool {
        matches!(self, ThreadState::Pending | ThreadState::Accepted)
    }
}

impl std::fmt::Display for ThreadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
