//! The peer's answer to a sent message, stored beside its record (schema 3).
//!
//! A sent record is about 5 KiB (the envelope, the released and committed values sealed per
//! category); its answer is three fields. Before schema 3 the answer was written into the
//! record, which meant decoding the whole record, re-encoding it and rewriting it into a tree
//! keyed by random message ids, where sled copies the leaf it lands in: the largest copy on
//! the sender's path (issue 14). Now the answer is its own small record in `answers` (message
//! id → [`SentAnswer`]) and the sent record is not rewritten; [`merge`] puts the two back
//! together for every reader. A record answered before schema 3 still holds its answer
//! inline, and is read as it is.

use prost::Message;

use super::{SentRecord, SentState};

/// A peer's answer to a sent message, as stored in `answers`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SentAnswer {
    /// `SentState` as a number (delivered or rejected).
    #[prost(uint32, tag = "1")]
    pub state: u32,
    /// Encoded `Signed` receipt or rejection.
    #[prost(bytes = "vec", tag = "2")]
    pub answer: Vec<u8>,
    /// When answered.
    #[prost(int64, tag = "3")]
    pub answered_ms: i64,
}

/// The fields of a stored [`SentRecord`] that taking it out of the outbox needs, decoded
/// without the rest (the envelope and sealed values are skipped, not copied). The tags are
/// `SentRecord`'s.
#[derive(Clone, PartialEq, Message)]
pub(super) struct SentHead {
    /// Recipient country.
    #[prost(string, tag = "2")]
    pub peer: String,
    /// `SentState` as a number (an answer stored inline before schema 3).
    #[prost(uint32, tag = "6")]
    pub state: u32,
    /// Outbox sequence number.
    #[prost(uint64, tag = "10")]
    pub outbox_seq: u64,
}

impl SentHead {
    /// The record's key in `outbox`: recipient ‖ sequence (u64 big-endian).
    pub(super) fn outbox_key(&self) -> Vec<u8> {
        let mut key = self.peer.as_bytes().to_vec();
        key.extend_from_slice(&self.outbox_seq.to_be_bytes());
        key
    }

    /// Still waiting for its answer (none stored inline either).
    pub(super) fn pending(&self) -> bool {
        self.state == SentState::Pending as u32
    }
}

/// The record as every reader sees it: with its answer, if one is stored beside it.
pub(super) fn merge(mut rec: SentRecord, answer: Option<SentAnswer>) -> SentRecord {
    if let Some(a) = answer {
        rec.state = a.state;
        rec.answer = a.answer;
        rec.answered_ms = a.answered_ms;
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_decodes_from_a_whole_record_and_merge_puts_the_answer_in() {
        let rec = SentRecord {
            id: vec![7; 16],
            peer: "AL".into(),
            envelope: vec![1; 4096],
            state: SentState::Pending as u32,
            outbox_seq: 42,
            ..Default::default()
        };
        let head = SentHead::decode(rec.encode_to_vec().as_slice()).unwrap();
        assert_eq!(head.peer, "AL");
        assert!(head.pending());
        assert_eq!(
            head.outbox_key(),
            [b"AL".as_slice(), &42u64.to_be_bytes()].concat()
        );
        let answered = merge(
            rec.clone(),
            Some(SentAnswer {
                state: SentState::Delivered as u32,
                answer: vec![9; 80],
                answered_ms: 5,
            }),
        );
        assert_eq!(answered.state, SentState::Delivered as u32);
        assert_eq!((answered.answer.len(), answered.answered_ms), (80, 5));
        assert_eq!(answered.envelope, rec.envelope);
        assert_eq!(merge(rec.clone(), None), rec);
    }
}
