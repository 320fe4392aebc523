//! `audit verify` on a bundle file of any size: read twice, streaming, never whole.
//!
//! Pass 1 reads the file's top-level fields (docs/PROTOCOL.md §10): it checks that they are
//! in canonical order and encoding, that every `ExportedEntry` is canonical, and keeps the
//! head (cards, checkpoints, proofs). Pass 2 reads the entries again, in batches, and checks
//! them on a pool of `available_parallelism` threads (`verify_strict` one signature at a
//! time, never batch verification); the results are taken in bundle order, so the first
//! failure named is the one the whole-bundle check names. Memory: the head, at most
//! [`IN_FLIGHT`] batches of [`BATCH`] entries, and 32 bytes per entry with `--witness`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use trm_proto::audit::{
    decode_exported, AuditFailure, BundleHead, Checker, EntryCheck, Keep, Location, Options,
    Summary, Verifier,
};
use trm_proto::auditpb::Proof;

use crate::failure::Failure;

/// A batch of raw entries for the pool: its number, the position of its first entry, the
/// entries.
type Batch = (usize, usize, Vec<Vec<u8>>);

/// One entry checked by the pool, or why it no longer decodes.
type Checked = Result<EntryCheck, String>;

/// Entries per batch handed to a checking thread.
const BATCH: usize = 256;
/// Batches read ahead of the one being taken in order, per checking thread.
const IN_FLIGHT: usize = 4;
/// The largest single field of a bundle (a card, a checkpoint, an entry): what a whole
/// bundle could be before streaming.
const MAX_FIELD: u64 = 64 << 20;

/// Why reading the file stopped: the file itself, or the bundle's check 1.
enum Stop {
    Io(std::io::Error),
    Bundle(String),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Io(e)
    }
}

/// Top-level fields of a bundle file, in order.
struct Fields<R> {
    r: R,
    last: u32,
}

/// One top-level field: its number and, for a length-delimited one, its length (the bytes
/// follow); for `version` (field 1), its value.
struct Field {
    number: u32,
    value: u64,
}

fn not_canonical() -> Stop {
    Stop::Bundle("audit bundle is not in canonical encoding (altered)".into())
}

impl<R: Read> Fields<R> {
    fn new(r: R) -> Self {
        Fields { r, last: 0 }
    }

    /// A minimal varint; `None` at the end of the file before its first byte.
    fn varint(&mut self, at_start: bool) -> Result<Option<u64>, Stop> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let mut b = [0u8; 1];
            if self.r.read(&mut b)? == 0 {
                if i == 0 && at_start {
                    return Ok(None);
                }
                return Err(Stop::Bundle(
                    "audit bundle does not decode (truncated)".into(),
                ));
            }
            v |= u64::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                if i > 0 && b[0] == 0 {
                    return Err(not_canonical());
                }
                return Ok(Some(v));
            }
        }
        Err(Stop::Bundle("audit bundle does not decode (varint)".into()))
    }

    /// The next field's key and value or length, checked for canonical order.
    fn next(&mut self) -> Result<Option<Field>, Stop> {
        let Some(key) = self.varint(true)? else {
            return Ok(None);
        };
        let (number, wire) = ((key >> 3) as u32, key & 7);
        let singular = matches!(number, 1..=3);
        let in_order = number > self.last || (number == self.last && !singular);
        if !(1..=7).contains(&number) || (wire == 0) != (number == 1) || wire > 2 || !in_order {
            return Err(not_canonical());
        }
        self.last = number;
        let value = self.varint(false)?.unwrap_or(0);
        if number == 1 && value > u64::from(u32::MAX) {
            return Err(not_canonical());
        }
        if number != 1 && value > MAX_FIELD {
            return Err(Stop::Bundle(format!(
                "audit bundle does not decode (a field of {value} bytes)"
            )));
        }
        if singular && value == 0 {
            return Err(not_canonical());
        }
        Ok(Some(Field { number, value }))
    }

    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, Stop> {
        let mut buf = vec![0u8; len as usize];
        self.r.read_exact(&mut buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                Stop::Bundle("audit bundle does not decode (truncated)".into())
            }
            _ => Stop::Io(e),
        })?;
        Ok(buf)
    }
}

/// Pass 1: the head, with every top-level field and every entry checked for check 1.
fn read_head(file: &mut File) -> Result<BundleHead, Stop> {
    let mut f = Fields::new(BufReader::with_capacity(1 << 20, &mut *file));
    let mut head = BundleHead::default();
    while let Some(field) = f.next()? {
        if field.number == 1 {
            head.version = field.value as u32;
            continue;
        }
        let bytes = f.bytes(field.value)?;
        match field.number {
            2 => {
                head.country = String::from_utf8(bytes).map_err(|_| {
                    Stop::Bundle("audit bundle does not decode (country is not UTF-8)".into())
                })?
            }
            3 => head.card = bytes,
            4 => head.peer_cards.push(bytes),
            5 => {
                decode_exported(&bytes).map_err(Stop::Bundle)?;
            }
            6 => head.checkpoints.push(bytes),
            _ => {
                let proof: Proof =
                    trm_proto::audit::decode_exact(&bytes, "audit bundle").map_err(Stop::Bundle)?;
                head.consistency.push(proof);
            }
        }
    }
    Ok(head)
}

/// Verifies the bundle file at `path` (see the module documentation). `Err(Ok(f))` is a
/// failed check; `Err(Err(failure))` a file that cannot be read.
pub(crate) fn verify_file(
    path: &Path,
    opts: &Options,
) -> Result<Summary, Result<AuditFailure, Failure>> {
    let io = |e: std::io::Error| -> Result<AuditFailure, Failure> {
        Err(Failure::usage(format!("{}: {e}", path.display())))
    };
    let stop = |s: Stop| match s {
        Stop::Io(e) => io(e),
        Stop::Bundle(what) => Ok(AuditFailure {
            location: Location::Bundle,
            what,
        }),
    };
    let mut file = File::open(path).map_err(io)?;
    let head = read_head(&mut file).map_err(stop)?;
    let mut v = Verifier::begin(&head, opts.allow_partial, Keep::for_options(opts)).map_err(Ok)?;
    drop(head);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    check_entries(&mut v, BufReader::with_capacity(1 << 20, file)).map_err(|e| match e {
        Ok(f) => Ok(f),
        Err(s) => stop(s),
    })?;
    v.finish_with(opts).map_err(Ok)
}

/// Threads that check entries: one per core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pass 2: every entry, checked by the pool and taken in order.
fn check_entries<R: Read>(v: &mut Verifier, r: R) -> Result<(), Result<AuditFailure, Stop>> {
    let n = threads();
    let checker = v.checker();
    let (work_tx, work_rx) = mpsc::sync_channel::<Batch>(n * IN_FLIGHT);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<Checked>)>();
    std::thread::scope(|scope| {
        for _ in 0..n {
            let (rx, tx, checker) = (work_rx.clone(), done_tx.clone(), checker.clone());
            scope.spawn(move || check_batches(&checker, &rx, &tx));
        }
        drop(done_tx);
        let result = feed(v, r, n, work_tx, &done_rx);
        drop(checker);
        result
    })
}

/// A checking thread: batches until the work channel closes.
fn check_batches(
    checker: &Checker,
    rx: &Mutex<mpsc::Receiver<Batch>>,
    tx: &mpsc::Sender<(usize, Vec<Checked>)>,
) {
    loop {
        let next = rx.lock().map(|rx| rx.recv());
        let Ok(Ok((batch, first, raws))) = next else {
            return;
        };
        let checks = (first..)
            .zip(&raws)
            .map(|(position, raw)| {
                decode_exported(raw).map(|exported| checker.check(position, &exported))
            })
            .collect();
        if tx.send((batch, checks)).is_err() {
            return;
        }
    }
}

/// Reads the entries into batches for the pool and takes the results in order.
fn feed<R: Read>(
    v: &mut Verifier,
    r: R,
    threads: usize,
    work: mpsc::SyncSender<Batch>,
    done: &mpsc::Receiver<(usize, Vec<Checked>)>,
) -> Result<(), Result<AuditFailure, Stop>> {
    let mut f = Fields::new(r);
    let mut order = InOrder::default();
    let (mut sent, mut position, mut batch) = (0usize, 0usize, Vec::with_capacity(BATCH));
    loop {
        let field = f.next().map_err(Err)?;
        let Some(field) = field else { break };
        if field.number == 1 {
            continue;
        }
        let bytes = f.bytes(field.value).map_err(Err)?;
        if field.number != 5 {
            continue;
        }
        batch.push(bytes);
        if batch.len() == BATCH {
            while sent - order.next >= threads * IN_FLIGHT {
                order.take_one(v, done)?;
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            let first = position;
            position += full.len();
            work.send((sent, first, full)).map_err(|_| Ok(stopped()))?;
            sent += 1;
        }
    }
    if !batch.is_empty() {
        work.send((sent, position, batch))
            .map_err(|_| Ok(stopped()))?;
        sent += 1;
    }
    drop(work);
    while order.next < sent {
        order.take_one(v, done)?;
    }
    Ok(())
}

fn stopped() -> AuditFailure {
    AuditFailure {
        location: Location::Bundle,
        what: "a checking thread stopped".into(),
    }
}

/// Results of the pool, taken in batch order.
#[derive(Default)]
struct InOrder {
    next: usize,
    waiting: BTreeMap<usize, Vec<Checked>>,
}

impl InOrder {
    /// Waits for the next batch in order and accepts its entries.
    fn take_one(
        &mut self,
        v: &mut Verifier,
        done: &mpsc::Receiver<(usize, Vec<Checked>)>,
    ) -> Result<(), Result<AuditFailure, Stop>> {
        while !self.waiting.contains_key(&self.next) {
            let (batch, checks) = done.recv().map_err(|_| Ok(stopped()))?;
            self.waiting.insert(batch, checks);
        }
        for check in self.waiting.remove(&self.next).unwrap_or_default() {
            // Pass 1 decoded every entry: one that no longer decodes was changed since.
            let check = check.map_err(|what| {
                Ok(AuditFailure {
                    location: Location::Bundle,
                    what: format!("the file changed while it was verified ({what})"),
                })
            })?;
            v.accept(check).map_err(Ok)?;
        }
        self.next += 1;
        Ok(())
    }
}
