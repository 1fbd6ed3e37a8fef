//! The commit journal: one file beside sled's, `<store>/journal`, that makes a commit durable
//! with one `pwrite` and one `fdatasync`, so that sled itself is flushed only now and then.
//!
//! Why: sled's flush is a `pwrite`, a `sync_file_range` handed to its I/O threads, and then our
//! `fdatasync`: two device round trips, ~0.21 ms here, more than SQLite's whole durable append.
//! A write into a file whose blocks already exist, followed by `fdatasync`, is one round trip
//! (~0.12 ms measured here): `fdatasync` has no size or block map to write. So the file is
//! zero-filled ahead of its records ([`GROW_BYTES`] at a time, up to [`JOURNAL_MAX_BYTES`]) and
//! reused: when it is full, the storage flushes sled, after which every record is redundant, and
//! starts a new *generation* ([`Journal::reset`]).
//!
//! Layout (little-endian; frozen, version 1; `tests/fixtures/store/journal_header.v1.bin` and
//! `journal_record.v1.bin`):
//! - bytes 0..16 of the file: `CLJ1`, the generation (u64), a CRC-32 of those 12 bytes; records
//!   start at [`HEADER_BYTES`].
//! - a record: `CLJR`, its generation (u64), its payload's length (u32), a CRC-32 of the
//!   generation, the length and the payload; then the payload: the commit's sled writes in
//!   order, as a count (u32) and, for each, key length (u16), key, value length (u32), value.
//!
//! A scan ([`Journal::open`]) takes the records of the header's generation from the start and
//! stops at the first that is torn, damaged or of another generation: a reset leaves older
//! records behind, and a crash may leave the last write half done. A whole record of the
//! generation further on means the stop was damage to acknowledged records, or a power loss
//! that kept a later page of the last group commit (`damaged_record_at`: the storage keeps
//! such a journal aside). The storage starts a new generation at every open, so stale records
//! of the old one never come back after a new record; generations are random, so bytes an
//! event's payload put in a record cannot pass for one of the next generation's. What the
//! records mean (which continue sled's head) is the storage's business, not this file's.
//!
//! A new journal file is made under a temporary name and renamed into place once its header is
//! synced, so a crash never leaves a journal without a header. Files moved aside (damaged, or
//! holding records that could not be applied) get names no other file has: they are evidence.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::log::storage::StorageError;

/// The journal's file name inside the store directory.
pub const JOURNAL_FILE: &str = "journal";
const FILE_MAGIC: [u8; 4] = *b"CLJ1";
const RECORD_MAGIC: [u8; 4] = *b"CLJR";
/// Records start here: the header has a block of its own, so that writing a record never
/// rewrites the block the header is in.
pub const HEADER_BYTES: u64 = 4096;
const RECORD_HEADER_BYTES: u64 = 4 + 8 + 4 + 4;
/// The file grows by this much at a time, zero-filled, so that a record is written over blocks
/// that already exist.
pub const GROW_BYTES: u64 = 1 << 20;
/// When the records would pass this, the storage flushes sled and starts a new generation
/// (the default; [`crate::log::OpenOptions::journal_max_bytes`]).
pub const JOURNAL_MAX_BYTES: u64 = 32 << 20;
/// The smallest journal an open accepts: room for the header and a few small records.
pub const JOURNAL_MIN_BYTES: u64 = HEADER_BYTES + 16 * 1024;
/// A journal file larger than this is not read (no bound this build sets comes near it): it
/// is moved aside as damaged.
pub const JOURNAL_READ_MAX_BYTES: u64 = 1 << 30;
/// The most entries one record's payload may claim (a commit writes a few keys per segment).
const ENTRIES_PER_RECORD_MAX: usize = 1 << 16;

/// Whether a file name is one [`Journal::open`] or [`Journal::set_aside`] gives a journal it
/// moves aside.
pub fn is_set_aside_name(file_name: &str) -> bool {
    file_name
        .strip_prefix(JOURNAL_FILE)
        .is_some_and(|rest| rest.starts_with(".damaged-") || rest.starts_with(".unapplied-"))
}

/// One sled write of a commit: key and value.
pub type JournalEntry = (Vec<u8>, Vec<u8>);

/// The journal file, open for appending records.
pub struct Journal {
    path: PathBuf,
    file: File,
    generation: u64,
    /// Where the next record goes.
    write_offset: u64,
    /// The file's length: every byte below it has been written (zeros or records).
    prepared_bytes: u64,
    /// The records never pass this.
    max_bytes: u64,
    /// The end of what an append that did not finish may have written past `write_offset`
    /// (`write_offset` when none did): bytes no sync was ever confirmed for.
    unsynced_until: u64,
    /// Set when a reset's header write or sync failed: the header on disk may be either.
    header_unsynced: bool,
}

/// What [`Journal::append`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written and synced.
    Written,
    /// Nothing written: the records do not fit. Flush sled, then [`Journal::reset`].
    Full,
}

/// The journal as found at open.
pub struct OpenedJournal {
    pub journal: Journal,
    /// The payloads of the current generation's records, in the order written.
    pub payloads: Vec<Vec<u8>>,
    /// Set when the file's header was damaged: where the damaged file was moved (kept).
    pub damaged_moved_to: Option<PathBuf>,
    /// Set when the scan stopped at a record that is damaged while a valid record of the same
    /// generation lies further on: damage to records that were acknowledged, or a power loss
    /// that kept a later page of the last group commit and not an earlier one. The offset
    /// where the scan stopped.
    pub damaged_record_at: Option<u64>,
}

impl Journal {
    /// Opens the journal of the store in `dir`, creating it when absent, and reads its records.
    /// A file whose header is damaged is moved aside (kept, never deleted) and a new one made.
    /// `max_bytes` bounds the records (at least [`JOURNAL_MIN_BYTES`]); a file written with a
    /// larger bound is read whole all the same.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<OpenedJournal, StorageError> {
        let max_bytes = max_bytes.clamp(JOURNAL_MIN_BYTES, JOURNAL_READ_MAX_BYTES);
        let path = dir.join(JOURNAL_FILE);
        if !path.exists() {
            return Ok(OpenedJournal {
                journal: Self::create(&path, new_generation(&path, 0)?, max_bytes)?,
                payloads: Vec::new(),
                damaged_moved_to: None,
                damaged_record_at: None,
            });
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, "open", e))?;
        let file_bytes = file
            .metadata()
            .map_err(|e| io_error(&path, "stat", e))?
            .len();
        // Read whole, whatever bound it was written with (none is over the read bound).
        let bytes = if file_bytes <= JOURNAL_READ_MAX_BYTES {
            let mut bytes = vec![0u8; file_bytes as usize];
            file.read_exact_at(&mut bytes, 0)
                .map_err(|e| io_error(&path, "read", e))?;
            bytes
        } else {
            Vec::new()
        };
        let Some(generation) = parse_header(&bytes) else {
            drop(file);
            let moved_to = move_aside(&path, "damaged")?;
            return Ok(OpenedJournal {
                journal: Self::create(&path, new_generation(&path, 0)?, max_bytes)?,
                payloads: Vec::new(),
                damaged_moved_to: Some(moved_to),
                damaged_record_at: None,
            });
        };
        let (payloads, end) = scan_records(&bytes, generation);
        let damaged_record_at = valid_record_after(&bytes, generation, end).map(|_| end);
        Ok(OpenedJournal {
            journal: Self {
                path,
                file,
                generation,
                write_offset: end,
                prepared_bytes: file_bytes,
                max_bytes,
                unsynced_until: end,
                header_unsynced: false,
            },
            payloads,
            damaged_moved_to: None,
            damaged_record_at,
        })
    }

    /// Makes a journal at `path` (none may be there): under a temporary name first, renamed
    /// into place once its header is synced.
    fn create(path: &Path, generation: u64, max_bytes: u64) -> Result<Self, StorageError> {
        let temporary = path.with_file_name(format!("{JOURNAL_FILE}.new"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(|e| io_error(&temporary, "create", e))?;
        let mut journal = Self {
            path: path.to_path_buf(),
            file,
            generation,
            write_offset: HEADER_BYTES,
            prepared_bytes: 0,
            max_bytes,
            unsynced_until: HEADER_BYTES,
            header_unsynced: false,
        };
        journal.prepare_up_to(HEADER_BYTES)?;
        journal.write_header()?;
        std::fs::rename(&temporary, path).map_err(|e| io_error(path, "name", e))?;
        sync_directory_of(path)?;
        Ok(journal)
    }

    /// The file's path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether records were appended since the last reset (or found at open).
    pub fn holds_records(&self) -> bool {
        self.write_offset > HEADER_BYTES
    }

    /// The bytes the file takes.
    pub fn bytes_on_disk(&self) -> u64 {
        self.prepared_bytes
    }

    /// Appends one record per payload and syncs them, or reports [`Appended::Full`] having
    /// written nothing.
    pub fn append(&mut self, payloads: &[Vec<u8>]) -> Result<Appended, StorageError> {
        let total: u64 = payloads
            .iter()
            .map(|p| RECORD_HEADER_BYTES + p.len() as u64)
            .sum();
        let end = self.write_offset + total;
        if end > self.max_bytes || payloads.iter().any(|p| p.len() > u32::MAX as usize) {
            return Ok(Appended::Full);
        }
        let mut buffer = Vec::with_capacity(total as usize);
        for payload in payloads {
            encode_record(&mut buffer, self.generation, payload);
        }
        assert_eq!(
            buffer.len() as u64,
            total,
            "a record's size is its header and payload"
        );
        if end > self.prepared_bytes {
            self.prepare_up_to((end.div_ceil(GROW_BYTES) * GROW_BYTES).min(self.max_bytes))?;
        }
        self.unsynced_until = self.unsynced_until.max(end);
        self.file
            .write_all_at(&buffer, self.write_offset)
            .map_err(|e| io_error(&self.path, "write", e))?;
        self.file
            .sync_data()
            .map_err(|e| io_error(&self.path, "fdatasync", e))?;
        self.write_offset = end;
        self.unsynced_until = end;
        Ok(Appended::Written)
    }

    /// After a failed append or reset: zeroes whatever a failed append may have written past
    /// the last synced record, and writes a header a failed reset may have left half done, then
    /// syncs. Afterwards no record the storage was refused can ever be read back.
    pub fn discard_unsynced(&mut self) -> Result<(), StorageError> {
        if self.header_unsynced {
            // The reset came after sled held every record durably: none of them is needed.
            self.write_header()?;
            self.header_unsynced = false;
            self.write_offset = HEADER_BYTES;
            self.unsynced_until = HEADER_BYTES;
            return Ok(());
        }
        if self.unsynced_until <= self.write_offset {
            return Ok(());
        }
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = self.write_offset;
        while at < self.unsynced_until {
            let n = (self.unsynced_until - at).min(ZEROS.len() as u64);
            self.file
                .write_all_at(&ZEROS[..n as usize], at)
                .map_err(|e| io_error(&self.path, "zero a refused record of", e))?;
            at += n;
        }
        self.file
            .sync_data()
            .map_err(|e| io_error(&self.path, "fdatasync", e))?;
        self.unsynced_until = self.write_offset;
        Ok(())
    }

    /// The bound on the records (as opened).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Starts a new generation: every record so far stops counting. Only after sled holds all
    /// of them durably.
    pub fn reset(&mut self) -> Result<(), StorageError> {
        self.generation = new_generation(&self.path, self.generation)?;
        self.header_unsynced = true;
        self.write_header()?;
        self.header_unsynced = false;
        self.write_offset = HEADER_BYTES;
        self.unsynced_until = HEADER_BYTES;
        Ok(())
    }

    /// Moves the file aside (kept, never deleted) and starts a new one of the next generation:
    /// for records the storage could not apply.
    pub fn set_aside(&mut self) -> Result<PathBuf, StorageError> {
        let moved_to = move_aside(&self.path, "unapplied")?;
        let next = new_generation(&self.path, self.generation)?;
        *self = Self::create(&self.path, next, self.max_bytes)?;
        Ok(moved_to)
    }

    /// The generation records are written with now.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn write_header(&mut self) -> Result<(), StorageError> {
        self.file
            .write_all_at(&encode_file_header(self.generation), 0)
            .map_err(|e| io_error(&self.path, "write the header of", e))?;
        self.file
            .sync_data()
            .map_err(|e| io_error(&self.path, "fdatasync", e))
    }

    /// Zero-fills the file up to `len` (real zeros, not a hole: see the module overview).
    fn prepare_up_to(&mut self, len: u64) -> Result<(), StorageError> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        while self.prepared_bytes < len {
            let n = (len - self.prepared_bytes).min(ZEROS.len() as u64);
            self.file
                .write_all_at(&ZEROS[..n as usize], self.prepared_bytes)
                .map_err(|e| io_error(&self.path, "extend", e))?;
            self.prepared_bytes += n;
        }
        Ok(())
    }
}

/// A generation for a new journal or a reset: random, so that no record an event's payload
/// could carry (payload bytes are stored in the records as they are) can pass for one of the
/// next generation's. Never 0, never u64::MAX, never `previous`.
fn new_generation(path: &Path, previous: u64) -> Result<u64, StorageError> {
    // Bounded: a draw fails the test with probability about 3 in 2^64.
    for _ in 0..16 {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| {
            io_error(
                path,
                "start a generation of",
                format!("no random numbers: {e}"),
            )
        })?;
        let generation = u64::from_le_bytes(bytes);
        if generation != 0 && generation != u64::MAX && generation != previous {
            return Ok(generation);
        }
    }
    Err(io_error(
        path,
        "start a generation of",
        "no usable random number",
    ))
}

/// What a journal file holds, read without changing it: for a person looking at a journal an
/// open set aside (`carelog journal-events`).
pub struct JournalContents {
    pub generation: u64,
    /// False when the file's header was damaged and the generation was taken from its first
    /// record.
    pub header_whole: bool,
    /// The whole records read, each with its commit's positions and events, in file order.
    pub commits: Vec<JournalCommit>,
    /// Byte offsets where a record was damaged (or did not decode) and the reading went on at
    /// the next whole record of the generation.
    pub damaged_at: Vec<u64>,
}

/// One record of a journal, read as a commit.
pub struct JournalCommit {
    pub first_position: u64,
    pub last_position: u64,
    pub events: Vec<crate::codec::StoredEventV1>,
}

/// Reads every whole record of the journal file at `path` (of its header's generation, or of
/// its first record's when the header is damaged), going past damaged ones, and decodes the
/// events of their commits.
pub fn read_contents(path: &Path) -> Result<JournalContents, StorageError> {
    let not_a_journal = |detail: String| StorageError::NotAJournal {
        path: path.to_path_buf(),
        detail,
    };
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| io_error(path, "read", e))?
        .len();
    if file_bytes > JOURNAL_READ_MAX_BYTES {
        return Err(not_a_journal(format!(
            "{file_bytes} bytes, more than any commit journal holds"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| io_error(path, "read", e))?;
    let (generation, header_whole) = match parse_header(&bytes) {
        Some(generation) => (generation, true),
        None => {
            let first = HEADER_BYTES as usize;
            let generation = bytes
                .get(first + 4..first + 12)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .filter(|g| read_record(&bytes, first, *g).is_some())
                .ok_or_else(|| {
                    not_a_journal("neither a whole header nor a whole first record".into())
                })?;
            (generation, false)
        }
    };
    let mut contents = JournalContents {
        generation,
        header_whole,
        commits: Vec::new(),
        damaged_at: Vec::new(),
    };
    let mut offset = HEADER_BYTES as usize;
    // Each turn moves past at least one byte: bounded by the file's size.
    while offset < bytes.len() {
        let commit = read_record(&bytes, offset, generation)
            .and_then(|(payload, next)| Some((commit_of(payload)?, next)));
        match commit {
            Some((commit, next)) => {
                contents.commits.push(commit);
                offset = next;
            }
            None => match valid_record_after(&bytes, generation, offset as u64 + 1) {
                Some(at) => {
                    contents.damaged_at.push(offset as u64);
                    offset = at as usize;
                }
                None => break,
            },
        }
    }
    Ok(contents)
}

/// A record's payload read as a commit: its segments' events (None when it is not one).
fn commit_of(payload: &[u8]) -> Option<JournalCommit> {
    let mut events = Vec::new();
    for (key, value) in decode_payload(payload)? {
        if super::keys::segment_position(&key).is_some() {
            let segment: crate::codec::SegmentV1 = crate::codec::decode("segment", &value).ok()?;
            events.extend(segment.events);
        }
    }
    Some(JournalCommit {
        first_position: events.first()?.position,
        last_position: events.last()?.position,
        events,
    })
}

/// Moves the journal at `path` to `journal.<why>-<unix nanos>[-<n>]`, a name no file has, and
/// syncs the directory.
fn move_aside(path: &Path, why: &str) -> Result<PathBuf, StorageError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let base = format!("{JOURNAL_FILE}.{why}-{nanos}");
    let mut moved_to = path.with_file_name(&base);
    let mut n = 0u32;
    while moved_to.exists() {
        n = n
            .checked_add(1)
            .ok_or_else(|| io_error(path, "name the moved", "no free name"))?;
        moved_to = path.with_file_name(format!("{base}-{n}"));
    }
    std::fs::rename(path, &moved_to).map_err(|e| io_error(path, "move aside", e))?;
    sync_directory_of(path)?;
    Ok(moved_to)
}

fn sync_directory_of(path: &Path) -> Result<(), StorageError> {
    match path.parent() {
        Some(dir) => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(path, "sync the directory of", e)),
        None => Ok(()),
    }
}

/// A commit's writes as a record payload.
pub fn encode_payload(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let len = 4 + entries
        .iter()
        .map(|(k, v)| 2 + k.len() + 4 + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (key, value) in entries {
        assert!(key.len() <= usize::from(u16::MAX), "a sled key is short");
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// The writes of a record payload, or None when it is not one (a record whose CRC matched but
/// whose payload does not parse was never written by this code).
pub fn decode_payload(bytes: &[u8]) -> Option<Vec<JournalEntry>> {
    let mut rest = bytes;
    let count = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?) as usize;
    if count > ENTRIES_PER_RECORD_MAX {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = u16::from_le_bytes(take(&mut rest, 2)?.try_into().ok()?) as usize;
        let key = take(&mut rest, key_len)?.to_vec();
        let value_len = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?) as usize;
        let value = take(&mut rest, value_len)?.to_vec();
        entries.push((key, value));
    }
    rest.is_empty().then_some(entries)
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

/// Appends one record to `out`.
pub fn encode_record(out: &mut Vec<u8>, generation: u64, payload: &[u8]) {
    let len = payload.len() as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&generation.to_le_bytes());
    crc.update(&len.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&generation.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// The file header naming `generation`.
pub fn encode_file_header(generation: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(16);
    header.extend_from_slice(&FILE_MAGIC);
    header.extend_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// The generation a file header names, if the header is whole.
pub fn parse_header(bytes: &[u8]) -> Option<u64> {
    let header = bytes.get(..16)?;
    let crc = u32::from_le_bytes(header[12..16].try_into().ok()?);
    if header[..4] != FILE_MAGIC || crc32fast::hash(&header[..12]) != crc {
        return None;
    }
    let generation = u64::from_le_bytes(header[4..12].try_into().ok()?);
    // 0 is never written, and u64::MAX could not be followed by a reset.
    (generation > 0 && generation < u64::MAX).then_some(generation)
}

/// The offset of a whole record of `generation` at or after `from` (at any byte offset: a
/// damaged record's length cannot be trusted to find the next), if there is one.
fn valid_record_after(bytes: &[u8], generation: u64, from: u64) -> Option<u64> {
    let from = usize::try_from(from).ok()?;
    let tail = bytes.get(from..)?;
    tail.windows(RECORD_MAGIC.len())
        .enumerate()
        .filter(|(_, w)| *w == RECORD_MAGIC)
        .map(|(i, _)| from + i)
        .find(|&at| read_record(bytes, at, generation).is_some())
        .map(|at| at as u64)
}

/// The payloads of the records of `generation` from the first on, and the offset after the
/// last of them.
pub fn scan_records(bytes: &[u8], generation: u64) -> (Vec<Vec<u8>>, u64) {
    let mut payloads = Vec::new();
    let mut offset = HEADER_BYTES as usize;
    while let Some((payload, next)) = read_record(bytes, offset, generation) {
        payloads.push(payload.to_vec());
        offset = next;
    }
    (payloads, offset as u64)
}

/// The record of `generation` at `offset`, if one is whole there (magic, generation, length
/// within the bytes, CRC), and the offset after it.
fn read_record(bytes: &[u8], offset: usize, generation: u64) -> Option<(&[u8], usize)> {
    let header = bytes.get(offset..offset.checked_add(RECORD_HEADER_BYTES as usize)?)?;
    if header[0..4] != RECORD_MAGIC {
        return None;
    }
    // The cheap tests first: a scan for the next whole record tries every `CLJR` it meets.
    let record_generation = u64::from_le_bytes(header[4..12].try_into().ok()?);
    if record_generation != generation {
        return None;
    }
    let len = u32::from_le_bytes(header[12..16].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[16..20].try_into().ok()?);
    let start = offset + RECORD_HEADER_BYTES as usize;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    let mut check = crc32fast::Hasher::new();
    check.update(&header[4..12]);
    check.update(&header[12..16]);
    check.update(payload);
    (check.finalize() == crc).then_some((payload, start + len))
}

fn io_error(path: &Path, doing: &str, e: impl std::fmt::Display + 'static) -> StorageError {
    let detail = format!("{doing} the commit journal: {e}");
    match (&e as &dyn std::any::Any).downcast_ref::<std::io::Error>() {
        Some(io) => crate::log::storage::io_failure(path, detail, io),
        None => StorageError::Io {
            path: path.to_path_buf(),
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: u8) -> Vec<u8> {
        encode_payload(&[(b"X1".as_slice(), vec![n; 10].as_slice()), (b"M", &[n])])
    }

    #[test]
    fn records_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        assert!(!j.holds_records());
        assert_eq!(
            j.append(&[payload(1), payload(2)]).unwrap(),
            Appended::Written
        );
        assert_eq!(j.append(&[payload(3)]).unwrap(), Appended::Written);
        assert!(j.holds_records());
        drop(j);
        let opened = Journal::open(dir.path(), JOURNAL_MAX_BYTES).unwrap();
        assert_eq!(opened.payloads, vec![payload(1), payload(2), payload(3)]);
        let entries = decode_payload(&opened.payloads[2]).unwrap();
        assert_eq!(entries[1], (b"M".to_vec(), vec![3]));
        // New records go after the found ones.
        let mut j = opened.journal;
        j.append(&[payload(4)]).unwrap();
        drop(j);
        assert_eq!(
            Journal::open(dir.path(), JOURNAL_MAX_BYTES)
                .unwrap()
                .payloads
                .len(),
            4
        );
    }

    #[test]
    fn a_reset_drops_older_records_even_where_they_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        j.append(&[payload(1), payload(2), payload(3)]).unwrap();
        j.reset().unwrap();
        assert!(!j.holds_records());
        drop(j);
        assert!(
            Journal::open(dir.path(), JOURNAL_MAX_BYTES)
                .unwrap()
                .payloads
                .is_empty()
        );
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        // One new record over the first old one; the old second and third stay in the file.
        j.append(&[payload(9)]).unwrap();
        drop(j);
        assert_eq!(
            Journal::open(dir.path(), JOURNAL_MAX_BYTES)
                .unwrap()
                .payloads,
            vec![payload(9)]
        );
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        j.append(&[payload(1), payload(2), payload(3)]).unwrap();
        drop(j);
        let path = dir.path().join(JOURNAL_FILE);
        let bytes = std::fs::read(&path).unwrap();
        let generation = parse_header(&bytes).unwrap();
        let record = RECORD_HEADER_BYTES as usize + payload(1).len();
        let second = HEADER_BYTES as usize + record;
        // Any flipped byte of the second record (header or payload) ends the scan before it.
        for at in second..second + record {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let (payloads, end) = scan_records(&damaged, generation);
            assert_eq!(payloads, vec![payload(1)], "byte {at}");
            assert_eq!(end, second as u64);
        }
        // A record cut short (a crash in its write: the rest is still zeros).
        let mut torn = bytes.clone();
        torn[second + record - 3..second + record].fill(0);
        assert_eq!(scan_records(&torn, generation).0, vec![payload(1)]);
    }

    #[test]
    fn a_damaged_header_is_moved_aside_and_a_new_journal_started() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        j.append(&[payload(1)]).unwrap();
        drop(j);
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let opened = Journal::open(dir.path(), JOURNAL_MAX_BYTES).unwrap();
        assert!(opened.payloads.is_empty());
        let moved = opened.damaged_moved_to.clone().unwrap();
        assert_eq!(std::fs::read(&moved).unwrap(), bytes);
        assert!(is_set_aside_name(
            moved.file_name().unwrap().to_str().unwrap()
        ));
        // A second damaged journal does not take the first one's place.
        drop(opened);
        std::fs::write(&path, &bytes).unwrap();
        let second = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .damaged_moved_to
            .unwrap();
        assert_ne!(second, moved);
        assert_eq!(std::fs::read(&moved).unwrap(), bytes);
        assert_eq!(std::fs::read(&second).unwrap(), bytes);
    }

    #[test]
    fn it_grows_in_steps_and_reports_full_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        let path = dir.path().join(JOURNAL_FILE);
        let file_len = || std::fs::metadata(&path).unwrap().len();
        assert_eq!(j.bytes_on_disk(), HEADER_BYTES);
        assert_eq!(file_len(), HEADER_BYTES);
        j.append(&[payload(1)]).unwrap();
        assert_eq!(j.bytes_on_disk(), GROW_BYTES);
        assert_eq!(
            file_len(),
            GROW_BYTES,
            "zero-filled ahead, not a hole to fill later"
        );
        let big = vec![7u8; (JOURNAL_MAX_BYTES / 2) as usize];
        assert_eq!(
            j.append(std::slice::from_ref(&big)).unwrap(),
            Appended::Written
        );
        assert_eq!(
            j.append(std::slice::from_ref(&big)).unwrap(),
            Appended::Full
        );
        assert!(j.bytes_on_disk() <= JOURNAL_MAX_BYTES);
        assert_eq!(file_len(), j.bytes_on_disk());
        drop(j);
        let opened = Journal::open(dir.path(), JOURNAL_MAX_BYTES).unwrap();
        assert_eq!(opened.payloads.len(), 2, "the full append wrote nothing");
        let mut j = opened.journal;
        j.reset().unwrap();
        assert_eq!(j.append(&[big]).unwrap(), Appended::Written);
    }

    #[test]
    fn a_payload_that_does_not_parse_is_refused() {
        let good = payload(1);
        assert!(decode_payload(&good).is_some());
        assert!(decode_payload(&good[..good.len() - 1]).is_none());
        let mut long = good.clone();
        long.push(0);
        assert!(decode_payload(&long).is_none());
        assert!(decode_payload(&u32::MAX.to_le_bytes()).is_none());
    }
}

#[cfg(test)]
mod refused_record_tests {
    use super::*;

    #[test]
    fn a_record_whose_sync_was_never_confirmed_is_zeroed_and_never_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        let kept = vec![1u8; 100];
        j.append(std::slice::from_ref(&kept)).unwrap();
        // What an append whose fdatasync failed leaves: a whole record past `write_offset`.
        let mut record = Vec::new();
        encode_record(&mut record, j.generation(), &[2u8; 100]);
        j.file.write_all_at(&record, j.write_offset).unwrap();
        j.unsynced_until = j.write_offset + record.len() as u64;
        j.discard_unsynced().unwrap();
        drop(j);
        let opened = Journal::open(dir.path(), JOURNAL_MAX_BYTES).unwrap();
        assert_eq!(
            opened.payloads,
            vec![kept.clone()],
            "the refused record is gone"
        );
        // The next record goes where the refused one was, and both survive a reopen.
        let mut j = opened.journal;
        j.append(&[vec![3u8; 10]]).unwrap();
        drop(j);
        assert_eq!(
            Journal::open(dir.path(), JOURNAL_MAX_BYTES)
                .unwrap()
                .payloads,
            vec![kept, vec![3u8; 10]]
        );
    }

    #[test]
    fn a_reset_whose_header_write_failed_is_redone() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), JOURNAL_MAX_BYTES)
            .unwrap()
            .journal;
        j.append(&[vec![1u8; 100]]).unwrap();
        // A reset that changed the generation but never wrote its header.
        j.generation = new_generation(&j.path, j.generation).unwrap();
        j.header_unsynced = true;
        j.discard_unsynced().unwrap();
        assert!(!j.holds_records());
        j.append(&[vec![4u8; 10]]).unwrap();
        drop(j);
        assert_eq!(
            Journal::open(dir.path(), JOURNAL_MAX_BYTES)
                .unwrap()
                .payloads,
            vec![vec![4u8; 10]]
        );
    }
}

#[cfg(test)]
mod small_journal_tests {
    use super::*;

    #[test]
    fn a_small_bound_is_kept_and_the_file_never_passes_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 0).unwrap().journal;
        assert_eq!(j.max_bytes, JOURNAL_MIN_BYTES, "raised to the least");
        let record = vec![1u8; 1000];
        let mut written = 0;
        while j.append(std::slice::from_ref(&record)).unwrap() == Appended::Written {
            written += 1;
            assert!(written < 100, "a full journal says so");
        }
        assert!(written >= 10);
        assert!(j.bytes_on_disk() <= JOURNAL_MIN_BYTES);
        let generation = j.generation();
        j.reset().unwrap();
        assert_ne!(j.generation(), generation);
        assert_eq!(j.append(&[record]).unwrap(), Appended::Written);
    }
}

#[cfg(test)]
mod damage_tests {
    use super::*;

    fn three_records(dir: &Path) -> (Vec<u8>, [usize; 3]) {
        let mut j = Journal::open(dir, JOURNAL_MAX_BYTES).unwrap().journal;
        let payload = vec![5u8; 100];
        for _ in 0..3 {
            j.append(std::slice::from_ref(&payload)).unwrap();
        }
        drop(j);
        let record = RECORD_HEADER_BYTES as usize + 100;
        let first = HEADER_BYTES as usize;
        (
            std::fs::read(dir.join(JOURNAL_FILE)).unwrap(),
            [first, first + record, first + 2 * record],
        )
    }

    #[test]
    fn damage_with_valid_records_after_it_is_told_from_a_torn_last_write() {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, starts) = three_records(dir.path());
        let path = dir.path().join(JOURNAL_FILE);
        // The middle record damaged: the third is valid, so this is damage.
        let mut damaged = bytes.clone();
        damaged[starts[1] + 30] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let opened = Journal::open(dir.path(), JOURNAL_MAX_BYTES).unwrap();
        assert_eq!(opened.payloads.len(), 1);
        assert_eq!(opened.damaged_record_at, Some(starts[1] as u64));
        drop(opened);
        // The last record torn: nothing valid after it.
        let mut torn = bytes.clone();
        torn[starts[2] + 30] ^= 1;
        std::fs::write(&path, &torn).unwrap();
        let opened = Journal::open(dir.path(), JOURNAL_MAX_BYTES).unwrap();
        assert_eq!(opened.payloads.len(), 2);
        assert_eq!(opened.damaged_record_at, None);
    }

    #[test]
    fn a_journal_written_with_a_larger_bound_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let big = JOURNAL_MAX_BYTES * 2;
        let mut j = Journal::open(dir.path(), big).unwrap().journal;
        let payload = vec![7u8; 1 << 20];
        let mut written = 0;
        while written < 40 {
            assert_eq!(
                j.append(std::slice::from_ref(&payload)).unwrap(),
                Appended::Written
            );
            written += 1;
        }
        drop(j);
        let opened = Journal::open(dir.path(), JOURNAL_MIN_BYTES).unwrap();
        assert_eq!(opened.payloads.len(), 40, "past the default bound too");
    }
}
