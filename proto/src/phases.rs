//! The names people type for a TRM phase and a closure outcome (`trm-admin followup send
//! --phase`, `case close --outcome`), shared by the node and the command line so that both
//! accept exactly the same words.

use crate::pb;

/// The phases as typed, in TRM order.
pub const PHASES: &str =
    "identification, first_assistance, long_term_assistance, return, proceedings";
/// The closure outcomes as typed.
pub const OUTCOMES: &str =
    "returned_reintegrating, staying_in_destination, transferred, contact_lost, other";

/// Parses a phase as officers type it.
pub fn parse_phase(s: &str) -> Option<pb::Phase> {
    Some(match s {
        "identification" => pb::Phase::Identification,
        "first_assistance" | "first-assistance" => pb::Phase::FirstAssistance,
        "long_term_assistance" | "long-term-assistance" => pb::Phase::LongTermAssistance,
        "return" | "return_and_inclusion" => pb::Phase::ReturnAndInclusion,
        "proceedings" => pb::Phase::ProceedingsPhase,
        _ => return None,
    })
}

/// Parses a closure outcome.
pub fn parse_outcome(s: &str) -> Option<pb::ClosureOutcome> {
    Some(match s {
        "returned_reintegrating" => pb::ClosureOutcome::ReturnedReintegrating,
        "staying_in_destination" => pb::ClosureOutcome::StayingInDestination,
        "transferred" => pb::ClosureOutcome::Transferred,
        "contact_lost" => pb::ClosureOutcome::ContactLost,
        "other" => pb::ClosureOutcome::Other,
        _ => return None,
    })
}
