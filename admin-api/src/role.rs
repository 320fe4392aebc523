//! The four roles an officer's credential is registered with.

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
