//! The rollout journal: an append-only, hash-chained, checksummed JSON Lines
//! file, fsynced per record. A rollout's state is never stored anywhere
//! else: it is rebuilt by replaying its journal.
//!
//! # Format (`cairn-journal/1`)
//!
//! One record per line, UTF-8, every line ending with `\n`. A record line is
//! one compact JSON object with its fields in this order:
//!
//! ```text
//! {"seq":N,"prev":"<64 hex>","at":"<RFC 3339 UTC, ms>","rollout":"<id>","kind":"<kind>","key":"<key>","body":{...},"crc":"<8 hex>"}
//! ```
//!
//! - `seq` is 1 for the first record and grows by exactly 1; record `N` is
//!   line `N` of the file.
//! - `prev` is the lowercase hex SHA-256 of the previous record's line (its
//!   bytes without the `\n`); 64 zeros for record 1. This is the hash chain:
//!   removing, inserting, reordering or altering a record breaks the `prev`
//!   of the record after it.
//! - `at` is when the record was written (`2026-12-01T10:59:24.123Z`).
//! - `rollout` is the same in every record of a file (the first record's).
//! - `kind` names the step; `key` is the step's idempotency key, omitted
//!   when there is none; `body` is a JSON value (an object by convention).
//! - `crc` is the CRC-32 (IEEE, as `crc32fast` computes it; 8 lowercase hex
//!   digits) of the line without its `crc` field: the writer serializes the
//!   record without `crc` to a string `S` (which ends with `}`) and writes
//!   `S` minus its `}`, then `,"crc":"XXXXXXXX"}` and `\n`. A reader checks
//!   that the line (without `\n`) ends with `,"crc":"` + 8 lowercase hex +
//!   `"}` and recomputes the CRC over the line minus those last 18 bytes,
//!   plus `}`. Every check works on the raw bytes of the file, never on a
//!   re-serialization, so the key order of `body` and the escapes in strings
//!   are whatever was written.
//! - Record 1 has kind `journal-created` and body
//!   `{"format":"cairn-journal/1"}`; [`Journal::create`] writes it.
//!   A repaired torn tail is recorded by a record of kind `journal-repaired`
//!   (see below). Both are the journal's own kinds: a replay skips them.
//!
//! The checksum guards a record against damage; the chain guards the order
//! and the completeness of the records. Neither is a signature: someone who
//! can write the file can rewrite it whole, chain and checksums included.
//! What they catch is a partial write, a disk error, and a hand edit of one
//! record that does not rewrite every record after it.
//!
//! # Writing
//!
//! [`Journal::append`] writes a record with one `write(2)` of the whole line,
//! `\n` included, to a file opened with `O_APPEND`, then `fdatasync`s, and
//! only then returns: a record that `append` returned is on disk, and a step
//! acted on after its record was appended can never be missing from the
//! journal. A short write is an error (never a second write that could
//! interleave), and after any failed append the [`Journal`] refuses further
//! appends ([`JournalError::Unusable`]): reopening it verifies the file and
//! repairs a torn tail. A record whose write or sync failed may still be in
//! the file; it was never acknowledged, so its step was never acted on.
//!
//! [`Journal::create`] never leaves a file at the journal's path without its
//! first record: it writes and fsyncs `journal-created` in a temporary file
//! `.NAME.creating-PID-NANOS` beside it (`O_EXCL`, mode 0600), hard-links it
//! to the path (which fails if the path exists: two creators cannot both
//! win), removes the temporary name and fsyncs the directory. A crash in
//! between leaves at most a stray temporary file, never a half-made journal;
//! such a file is safe to delete. The directory must exist (the caller
//! creates it) and support hard links (every Linux disk file system does).
//!
//! An open [`Journal`] holds an exclusive `flock` on the file, so a second
//! `cairn rollout` on the same rollout is refused ([`JournalError::Locked`])
//! while one runs; the lock goes with the process, so a killed cairn
//! leaves no stale lock.
//!
//! # Reading, torn tails and tampering
//!
//! A crash can cut only the record being written, which is the last line.
//! So a last line that has no `\n`, or is not a whole checksummed record
//! (bad or missing checksum, not JSON), is a **torn tail**: [`read`] and [`verify`]
//! report it and carry on without it, and [`Journal::open`] replaces it
//! with a `journal-repaired` record with body
//! `{"line": L, "dropped-bytes": K, "dropped-sha256": "<hex>"}` naming the
//! line and the bytes it dropped, so a repair is never silent. The record is
//! written over the torn bytes with one `pwrite` (when they are longer than
//! the record, they are first cut to its length, which leaves a shorter torn
//! tail), and the file is fsynced: whenever a crash interrupts the repair,
//! the file still ends with a torn tail, never with the tail gone and no
//! record of it, and the next `open` repairs and records what is left.
//!
//! Anything else is **broken**: a bad record before the last line, or a last
//! line whose checksum holds (so it was written whole) but which is out of
//! sequence, off the chain, of another rollout or missing a field — a torn
//! write cannot produce a valid checksum, so those are edits. [`read`] and
//! [`Journal::open`] refuse a broken journal ([`JournalError::Broken`], which
//! names the first broken record); [`verify`] reports it.
//!
//! A file that holds no complete record (an empty file, or a torn first line)
//! is not a journal ([`JournalError::NotAJournal`] from [`read`] and
//! [`Journal::open`]; [`BrokenReason::Empty`] from [`verify`]): `create`
//! never leaves one, so it came from elsewhere, and it records nothing that
//! was acted on.
//!
//! Files are read whole, within [`MAX_JOURNAL_BYTES`] (1 GiB: about 1.5
//! million records of 700 bytes); a record may be at most
//! [`MAX_RECORD_BYTES`].

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::escape::single_line;

/// The largest journal file read: 1 GiB.
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;
/// The largest record line `append` writes: 16 MiB.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// The kind of record 1, written by [`Journal::create`].
pub const CREATED_KIND: &str = "journal-created";
/// The kind of the record [`Journal::open`] appends after repairing a torn tail.
pub const REPAIRED_KIND: &str = "journal-repaired";
/// The format named in record 1's body.
pub const FORMAT: &str = "cairn-journal/1";
/// `prev` of record 1.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `,"crc":"` + 8 hex + `"}`: the bytes a line ends with after `S` minus `}`.
const CRC_TAIL: usize = 18;
const CRC_PREFIX: &[u8] = b",\"crc\":\"";

/// One record of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Hex SHA-256 of the previous record's line ([`GENESIS_PREV`] for record 1).
    pub prev: String,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub rollout: String,
    pub kind: String,
    /// The step's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub body: serde_json::Value,
}

/// A record line as parsed for checking: every field required (`key` may
/// be absent), no other field; the body is a `Value` or, to verify only,
/// skipped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<B> {
    seq: u64,
    prev: String,
    at: String,
    rollout: String,
    kind: String,
    #[serde(default)]
    key: Option<String>,
    body: B,
    #[allow(dead_code)] // Checked on the raw bytes; here only to be required.
    crc: IgnoredAny,
}

/// The last line of a journal that a crash cut short, and what reading (or
/// repairing) it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Its line number (the number of complete records plus one).
    pub line: u64,
    /// Bytes from the end of the last good record to the end of the file.
    pub dropped_bytes: u64,
    /// Hex SHA-256 of those bytes.
    pub dropped_sha256: String,
}

/// The first record of a journal that is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// Its line number; record `N` belongs on line `N`.
    pub line: u64,
    /// The `seq` the line holds, when its checksum holds and its JSON could
    /// be read (otherwise none of its bytes can be trusted).
    pub seq: Option<u64>,
    pub reason: BrokenReason,
}

/// Why a record is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokenReason {
    /// The checksum holds but the line is not JSON.
    NotJson(String),
    /// The `crc` field is missing, malformed or does not match the line.
    Checksum,
    /// `prev` is not the SHA-256 of the record before.
    Chain,
    /// `seq` is not the one after the record before.
    Sequence { expected: u64, found: u64 },
    /// The record belongs to another rollout than record 1.
    Rollout { expected: String, found: String },
    /// A field is missing, of the wrong type, unknown or malformed.
    Field(String),
    /// The file holds no complete record.
    Empty,
}

impl fmt::Display for BrokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokenReason::NotJson(err) => {
                write!(f, "not a JSON record ({})", single_line(err))
            }
            BrokenReason::Checksum => f.write_str(
                "checksum missing or wrong: the record was altered or damaged after it was written",
            ),
            BrokenReason::Chain => f.write_str(
                "hash chain broken: `prev` is not the SHA-256 of the record before \
                 (a record before it was removed, inserted, reordered or altered)",
            ),
            BrokenReason::Sequence { expected, found } => write!(
                f,
                "out of sequence: holds seq {found}, expected {expected} \
                 (a record was removed, duplicated or reordered)"
            ),
            BrokenReason::Rollout { expected, found } => write!(
                f,
                "belongs to rollout \"{}\", but the journal is rollout \"{}\"",
                single_line(found),
                single_line(expected)
            ),
            BrokenReason::Field(what) => write!(f, "bad field: {}", single_line(what)),
            BrokenReason::Empty => f.write_str(
                "holds no complete record (a journal starts with its journal-created record)",
            ),
        }
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.seq.unwrap_or(self.line);
        write!(f, "record {record} (line {}): {}", self.line, self.reason)
    }
}

/// Errors of the journal. Content problems of a journal being read are
/// [`JournalError::Broken`] or [`JournalError::NotAJournal`]; [`verify`]
/// reports them instead.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("I/O error on journal {}", shown(path))]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal {} already exists", shown(path))]
    AlreadyExists { path: PathBuf },
    #[error(
        "journal {} is in use: another cairn process holds its lock (a rollout is running)",
        shown(path)
    )]
    Locked { path: PathBuf },
    #[error(
        "journal {} is broken at {broken}; it is refused, not repaired",
        shown(path)
    )]
    Broken { path: PathBuf, broken: Broken },
    #[error("{} is not a rollout journal: {reason}", shown(path))]
    NotAJournal { path: PathBuf, reason: String },
    #[error(
        "journal {} is too large: {}; a journal may be at most {limit} bytes",
        shown(path),
        size.map_or_else(|| "more than that".to_owned(), |s| format!("{s} bytes"))
    )]
    TooLarge {
        path: PathBuf,
        size: Option<u64>,
        limit: u64,
    },
    #[error(
        "journal {}: a record of {size} bytes is larger than the {limit}-byte limit",
        shown(path)
    )]
    RecordTooLarge {
        path: PathBuf,
        size: usize,
        limit: usize,
    },
    #[error(
        "journal {}: short write: {written} of {expected} bytes of record {seq} written \
         (disk full?); the journal must be reopened, which repairs the torn record",
        shown(path)
    )]
    ShortWrite {
        path: PathBuf,
        seq: u64,
        written: usize,
        expected: usize,
    },
    #[error(
        "journal {}: an earlier append failed; reopen the journal (which verifies and \
         repairs it) before appending",
        shown(path)
    )]
    Unusable { path: PathBuf },
}

fn shown(path: &Path) -> String {
    single_line(&path.display().to_string()).into_owned()
}

/// An I/O error of `path` while doing `action` ("open", "write a record",
/// …): an error of the same kind that says `cannot ACTION`, whose source is
/// the original error (so an error chain reads: I/O error on journal PATH;
/// cannot write a record; No space left on device).
fn io_error<'p>(
    path: &'p Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> JournalError + 'p {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source: io::Error::new(source.kind(), Doing { action, source }),
    }
}

/// What was being done when an I/O error happened.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action}")]
struct Doing {
    action: &'static str,
    #[source]
    source: io::Error,
}

/// An open journal: exclusively locked, appendable.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    rollout: String,
    last_seq: u64,
    /// SHA-256 of the last record's line.
    last_hash: [u8; 32],
    /// The file's length: the end of the last record.
    len: u64,
    /// Set while an append is under way; left set when it fails.
    unusable: bool,
}

/// A journal opened for appending, with every record it held.
#[derive(Debug)]
pub struct Opened {
    pub journal: Journal,
    /// Every record, the `journal-repaired` one included when there was a
    /// repair.
    pub records: Vec<Record>,
    /// The torn tail that was dropped and recorded, if any.
    pub repaired: Option<TornTail>,
}

/// A journal read without its lock.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadJournal {
    pub records: Vec<Record>,
    /// A torn last line, left in place (a writer may be appending it right
    /// now, or a crash cut it; `open` repairs it).
    pub torn_tail: Option<TornTail>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// Records checked good, from the start of the file.
    pub records: u64,
    /// The rollout id of record 1, when record 1 is good.
    pub rollout: Option<String>,
    /// A torn last line (only when nothing before it is broken).
    pub torn_tail: Option<TornTail>,
    /// The first broken record; nothing after it is checked.
    pub broken: Option<Broken>,
}

impl Verification {
    /// No broken record (a torn tail is no damage: `open` repairs it).
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

impl Journal {
    /// Creates the journal of `rollout` at `path`, which must not exist, with
    /// its `journal-created` record, locked; the file and its directory are
    /// fsynced before this returns. The directory must exist.
    pub fn create(path: &Path, rollout: &str) -> Result<Journal, JournalError> {
        if path.symlink_metadata().is_ok() {
            return Err(JournalError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let name = path.file_name().ok_or_else(|| JournalError::Io {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
        })?;
        let dir = parent_dir(path);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let temp = dir.join(format!(
            ".{}.creating-{}-{nanos}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_error(path, "create it"))?;
        let made = (|| {
            lock(&file, path)?;
            let mut journal = Journal {
                file,
                path: path.to_owned(),
                rollout: rollout.to_owned(),
                last_seq: 0,
                last_hash: [0; 32],
                len: 0,
                unusable: false,
            };
            journal.append(CREATED_KIND, None, created_body())?;
            match std::fs::hard_link(&temp, path) {
                Ok(()) => Ok(journal),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    Err(JournalError::AlreadyExists {
                        path: path.to_owned(),
                    })
                }
                Err(err) => Err(io_error(path, "link into place")(err)),
            }
        })();
        // The temporary name goes either way; a failure to remove it leaves
        // a second name of the same file, harmless (see the module docs).
        let _ = std::fs::remove_file(&temp);
        let journal = made?;
        sync_dir(&dir).map_err(io_error(path, "sync its directory"))?;
        Ok(journal)
    }

    /// Opens the journal at `path` for appending: locks it, reads and checks
    /// every record, and repairs a torn tail (truncates it, then appends a
    /// `journal-repaired` record). A broken journal is refused.
    pub fn open(path: &Path) -> Result<Opened, JournalError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            // Opening a FIFO must not block; a regular file ignores it.
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io_error(path, "open"))?;
        check_regular(&file, path)?;
        lock(&file, path)?;
        let bytes = read_all(&file, path)?;
        let mut records = Vec::new();
        let scan = scan::<serde_json::Value>(&bytes, |line| records.push(line.into_record()));
        if let Some(broken) = scan.broken {
            return Err(JournalError::Broken {
                path: path.to_owned(),
                broken,
            });
        }
        let Some(rollout) = scan.rollout else {
            return Err(not_a_journal(path, scan.torn.as_ref()));
        };
        let mut journal = Journal {
            file,
            path: path.to_owned(),
            rollout,
            last_seq: scan.records,
            last_hash: scan.last_hash,
            len: scan.good_len as u64,
            unusable: false,
        };
        if let Some(torn) = &scan.torn {
            records.push(journal.repair(torn)?);
        }
        Ok(Opened {
            journal,
            records,
            repaired: scan.torn,
        })
    }

    /// Appends a record: one `write(2)` of the whole line, then
    /// `fdatasync`; returns the record only once it is on disk. After a
    /// failure the journal refuses further appends (reopen it).
    pub fn append(
        &mut self,
        kind: &str,
        key: Option<&str>,
        body: serde_json::Value,
    ) -> Result<Record, JournalError> {
        let (record, line) = self.next(kind, key, body)?;
        self.unusable = true;
        let written = loop {
            match (&self.file).write(&line) {
                Ok(n) => break n,
                // Nothing was written; the same single write again.
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(io_error(&self.path, "write a record")(err)),
            }
        };
        self.check_written(&record, written, line.len())?;
        self.file
            .sync_data()
            .map_err(io_error(&self.path, "sync"))?;
        Ok(self.commit(record, &line))
    }

    /// Replaces the torn tail that starts at `self.len` with a
    /// `journal-repaired` record, so that no state of the file, whenever a
    /// crash interrupts this, has the tail gone without the record:
    ///
    /// 1. a tail longer than the record's line is first cut to the line's
    ///    length and fsynced (still a torn tail: a prefix of a torn line);
    /// 2. the line is written over the tail with one `pwrite` (it covers
    ///    the tail exactly, or extends the file), and fsynced.
    ///
    /// Cut short at any point, the file ends with a torn tail still (or
    /// again), which the next `open` repairs and records.
    fn repair(&mut self, torn: &TornTail) -> Result<Record, JournalError> {
        let (record, line) = self.next(
            REPAIRED_KIND,
            None,
            serde_json::json!({
                "line": torn.line,
                "dropped-bytes": torn.dropped_bytes,
                "dropped-sha256": torn.dropped_sha256,
            }),
        )?;
        self.unusable = true;
        let path = &self.path;
        if torn.dropped_bytes > line.len() as u64 {
            self.file
                .set_len(self.len + line.len() as u64)
                .map_err(io_error(path, "cut the torn tail"))?;
            self.file
                .sync_all()
                .map_err(io_error(path, "sync the cut tail"))?;
        }
        // `pwrite` on a file opened `O_APPEND` appends (Linux): clear the
        // flag for this one write.
        let fd = self.file.as_raw_fd();
        // SAFETY: fcntl on a file descriptor this `File` owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_APPEND) } < 0 {
            return Err(io_error(path, "clear O_APPEND")(io::Error::last_os_error()));
        }
        let written = loop {
            match self.file.write_at(&line, self.len) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(io_error(path, "write the repair record")(err)),
            }
        };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(io_error(path, "restore O_APPEND")(
                io::Error::last_os_error(),
            ));
        }
        self.check_written(&record, written, line.len())?;
        // The size may have changed: `fsync`, not `fdatasync`.
        self.file
            .sync_all()
            .map_err(io_error(path, "sync the repair"))?;
        Ok(self.commit(record, &line))
    }

    /// The next record and its line, checked against the size limits.
    fn next(
        &self,
        kind: &str,
        key: Option<&str>,
        body: serde_json::Value,
    ) -> Result<(Record, Vec<u8>), JournalError> {
        if self.unusable {
            return Err(JournalError::Unusable {
                path: self.path.clone(),
            });
        }
        let (record, line) = next_line(
            &self.rollout,
            self.last_seq,
            &self.last_hash,
            kind,
            key,
            body,
        )
        .map_err(|err| match err {
            LineError::Json(err) => JournalError::Io {
                path: self.path.clone(),
                source: io::Error::other(err),
            },
            LineError::TooLarge { size, limit } => JournalError::RecordTooLarge {
                path: self.path.clone(),
                size,
                limit,
            },
        })?;
        if self.len + line.len() as u64 > MAX_JOURNAL_BYTES {
            return Err(JournalError::TooLarge {
                path: self.path.clone(),
                size: Some(self.len + line.len() as u64),
                limit: MAX_JOURNAL_BYTES,
            });
        }
        Ok((record, line))
    }

    fn check_written(
        &self,
        record: &Record,
        written: usize,
        expected: usize,
    ) -> Result<(), JournalError> {
        if written == expected {
            return Ok(());
        }
        Err(JournalError::ShortWrite {
            path: self.path.clone(),
            seq: record.seq,
            written,
            expected,
        })
    }

    /// `record`, written as `line` and synced, becomes the last one.
    fn commit(&mut self, record: Record, line: &[u8]) -> Record {
        self.unusable = false;
        self.last_seq = record.seq;
        self.last_hash = line_hash(line);
        self.len += line.len() as u64;
        record
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rollout(&self) -> &str {
        &self.rollout
    }

    /// The seq of the last record (0 only while `create` writes record 1).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

/// Reads the journal at `path` without locking it (for `status` while a
/// rollout runs): every good record, and a torn last line reported, not
/// repaired. A broken journal is refused.
pub fn read(path: &Path) -> Result<ReadJournal, JournalError> {
    let bytes = read_path(path)?;
    let mut records = Vec::new();
    let scan = scan::<serde_json::Value>(&bytes, |line| records.push(line.into_record()));
    if let Some(broken) = scan.broken {
        return Err(JournalError::Broken {
            path: path.to_owned(),
            broken,
        });
    }
    if scan.rollout.is_none() {
        return Err(not_a_journal(path, scan.torn.as_ref()));
    }
    Ok(ReadJournal {
        records,
        torn_tail: scan.torn,
    })
}

/// Checks the journal at `path` (no lock, nothing changed): the checksums,
/// the chain, the sequence and the rollout id of every record. Errors only
/// when the file cannot be read; what is wrong with its content is in the
/// [`Verification`].
pub fn verify(path: &Path) -> Result<Verification, JournalError> {
    let bytes = read_path(path)?;
    let scan = scan::<IgnoredAny>(&bytes, |_| {});
    let broken = match scan.broken {
        None if scan.records == 0 => Some(Broken {
            line: 1,
            seq: None,
            reason: BrokenReason::Empty,
        }),
        broken => broken,
    };
    Ok(Verification {
        records: scan.records,
        rollout: scan.rollout,
        torn_tail: scan.torn,
        broken,
    })
}

/// The longest body summary [`render`] shows, in characters.
const SUMMARY_CHARS: usize = 160;

/// Records for people (`cairn journal show`): one line each,
/// `#seq  at  kind  key  body`, the body as compact JSON cut at
/// 160 characters; every string from the file is escaped to one line.
pub fn render(records: &[Record]) -> String {
    let mut out = String::new();
    for record in records {
        let body = record.body.to_string();
        let summary = match body.char_indices().nth(SUMMARY_CHARS) {
            Some((cut, _)) => format!("{}…", &body[..cut]),
            None => body,
        };
        let key = record.key.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "#{:<5} {}  {:<22} {}  {}\n",
            record.seq,
            single_line(&record.at),
            single_line(&record.kind),
            single_line(key),
            single_line(&summary),
        ));
    }
    out
}

/// Why [`next_line`] could not make a record's line.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("cannot serialize the record")]
    Json(#[source] serde_json::Error),
    #[error("a record of {size} bytes is larger than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
}

/// The record that follows record `last_seq` (whose line hashes to
/// `last_hash`; 0 and zeros before record 1) in `rollout`'s journal, and its
/// line, `\n` included, exactly as [`Journal::append`] writes it: stamped
/// now, sealed with its CRC, within [`MAX_RECORD_BYTES`]. For stores other
/// than a file (the PostgreSQL store keeps these exact bytes).
pub fn next_line(
    rollout: &str,
    last_seq: u64,
    last_hash: &[u8; 32],
    kind: &str,
    key: Option<&str>,
    body: serde_json::Value,
) -> Result<(Record, Vec<u8>), LineError> {
    let record = Record {
        seq: last_seq + 1,
        prev: hex::encode(last_hash),
        at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        rollout: rollout.to_owned(),
        kind: kind.to_owned(),
        key: key.map(str::to_owned),
        body,
    };
    let line = seal(&record).map_err(LineError::Json)?;
    if line.len() > MAX_RECORD_BYTES {
        return Err(LineError::TooLarge {
            size: line.len(),
            limit: MAX_RECORD_BYTES,
        });
    }
    Ok((record, line))
}

/// The body of record 1 (kind [`CREATED_KIND`]), as [`Journal::create`]
/// writes it.
pub fn created_body() -> serde_json::Value {
    serde_json::json!({ "format": FORMAT })
}

/// The hash the next record's `prev` names: the SHA-256 of `line` without
/// its trailing `\n` (if any).
pub fn line_hash(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line.strip_suffix(b"\n").unwrap_or(line)).into()
}

/// Checks one stored record line, `\n` included (as [`next_line`] made
/// it), as record `expected` of `rollout`'s journal, after a record whose
/// line hashes to `prev_hash` (zeros for record 1): the same checks as
/// [`verify`] makes on a file's lines (checksum, JSON and fields, sequence,
/// chain, rollout, record 1's kind). A line that does not end with its one
/// `\n` is damaged: [`BrokenReason::Checksum`] (the checksum does not cover
/// the `\n`; in a file such a line could not be whole). The [`Broken`] names
/// `expected` as its line.
pub fn check_record_line(
    line: &[u8],
    expected: u64,
    prev_hash: &[u8; 32],
    rollout: &str,
) -> Result<Record, Broken> {
    match line.strip_suffix(b"\n") {
        Some(content) if !content.contains(&b'\n') => {
            check_line::<serde_json::Value>(content, expected, prev_hash, Some(rollout))
                .map(Line::into_record)
        }
        _ => Err(Broken {
            line: expected,
            seq: None,
            reason: BrokenReason::Checksum,
        }),
    }
}

/// The line of `record` (with its `crc` and `\n`).
fn seal(record: &Record) -> serde_json::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(record)?;
    // `S` ends with `}`: the CRC covers `S`, then `}` gives way to the crc.
    let crc = crc32fast::hash(&line);
    line.pop();
    line.extend_from_slice(format!(",\"crc\":\"{crc:08x}\"}}\n").as_bytes());
    Ok(line)
}

impl Line<serde_json::Value> {
    fn into_record(self) -> Record {
        Record {
            seq: self.seq,
            prev: self.prev,
            at: self.at,
            rollout: self.rollout,
            kind: self.kind,
            key: self.key,
            body: self.body,
        }
    }
}

/// What a pass over a journal's bytes found.
struct Scan {
    /// Good records from the start.
    records: u64,
    /// The byte offset just past the last good record's `\n`.
    good_len: usize,
    /// SHA-256 of the last good record's line (zeros when there is none).
    last_hash: [u8; 32],
    /// Record 1's rollout id.
    rollout: Option<String>,
    torn: Option<TornTail>,
    broken: Option<Broken>,
}

/// Checks `bytes` line by line, handing every good record to `keep`, up to
/// the first torn or broken line.
fn scan<B: DeserializeOwned>(bytes: &[u8], mut keep: impl FnMut(Line<B>)) -> Scan {
    let mut scan = Scan {
        records: 0,
        good_len: 0,
        last_hash: [0; 32],
        rollout: None,
        torn: None,
        broken: None,
    };
    let mut pos = 0;
    while pos < bytes.len() {
        let line_no = scan.records + 1;
        let rest = &bytes[pos..];
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], true),
            None => (rest, false),
        };
        let next = pos + line.len() + usize::from(complete);
        let is_last = next == bytes.len();
        let torn = || TornTail {
            line: line_no,
            dropped_bytes: rest.len() as u64,
            dropped_sha256: hex::encode(Sha256::digest(rest)),
        };
        match check_line::<B>(line, line_no, &scan.last_hash, scan.rollout.as_deref()) {
            // A record is written with its `\n` in one write: without it,
            // the write was cut (its step was never acted on).
            Ok(_) if !complete => {
                scan.torn = Some(torn());
                break;
            }
            Ok(record) => {
                if scan.rollout.is_none() {
                    scan.rollout = Some(record.rollout.clone());
                }
                scan.last_hash = Sha256::digest(line).into();
                scan.records = line_no;
                scan.good_len = next;
                keep(record);
                pos = next;
            }
            Err(broken) if is_last && broken.could_be_torn() => {
                scan.torn = Some(torn());
                break;
            }
            Err(broken) => {
                scan.broken = Some(broken);
                break;
            }
        }
    }
    scan
}

impl Broken {
    /// Whether a cut write could explain it: only a line that is not a
    /// whole, checksummed record. A line whose checksum holds was written
    /// whole.
    fn could_be_torn(&self) -> bool {
        matches!(
            self.reason,
            BrokenReason::Checksum | BrokenReason::NotJson(_)
        )
    }
}

/// Checks one line (without `\n`) as record `expected`.
fn check_line<B: DeserializeOwned>(
    line: &[u8],
    expected: u64,
    prev_hash: &[u8; 32],
    rollout: Option<&str>,
) -> Result<Line<B>, Broken> {
    let broken = |seq, reason| Broken {
        line: expected,
        seq,
        reason,
    };
    if !checksum_holds(line) {
        return Err(broken(None, BrokenReason::Checksum));
    }
    let record: Line<B> = serde_json::from_slice(line).map_err(|err| {
        let reason = match err.classify() {
            serde_json::error::Category::Data => BrokenReason::Field(err.to_string()),
            _ => BrokenReason::NotJson(err.to_string()),
        };
        broken(None, reason)
    })?;
    let seq = Some(record.seq);
    if record.seq != expected {
        return Err(broken(
            seq,
            BrokenReason::Sequence {
                expected,
                found: record.seq,
            },
        ));
    }
    let mut prev = [0u8; 32];
    if hex::decode_to_slice(&record.prev, &mut prev).is_err()
        || record.prev.bytes().any(|b| b.is_ascii_uppercase())
        || &prev != prev_hash
    {
        return Err(broken(seq, BrokenReason::Chain));
    }
    if let Some(rollout) = rollout
        && record.rollout != rollout
    {
        return Err(broken(
            seq,
            BrokenReason::Rollout {
                expected: rollout.to_owned(),
                found: record.rollout,
            },
        ));
    }
    if let Err(err) = humantime::parse_rfc3339(&record.at) {
        return Err(broken(seq, BrokenReason::Field(format!("at: {err}"))));
    }
    if expected == 1 && record.kind != CREATED_KIND {
        return Err(broken(
            seq,
            BrokenReason::Field(format!("kind: record 1 must be {CREATED_KIND}")),
        ));
    }
    Ok(record)
}

/// Whether `line` ends with a well-formed `,"crc":"XXXXXXXX"}` that matches
/// the rest of it.
fn checksum_holds(line: &[u8]) -> bool {
    let Some(head_len) = line.len().checked_sub(CRC_TAIL) else {
        return false;
    };
    let (head, tail) = line.split_at(head_len);
    let Some(hex_digits) = tail
        .strip_prefix(CRC_PREFIX)
        .and_then(|rest| rest.strip_suffix(b"\"}"))
    else {
        return false;
    };
    if !hex_digits
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return false;
    }
    let mut stored = [0u8; 4];
    if hex::decode_to_slice(hex_digits, &mut stored).is_err() {
        return false;
    }
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(b"}");
    hasher.finalize() == u32::from_be_bytes(stored)
}

fn not_a_journal(path: &Path, torn: Option<&TornTail>) -> JournalError {
    let reason = match torn {
        None => "the file is empty; a journal starts with its journal-created record".to_owned(),
        Some(torn) => format!(
            "it holds no complete record, only {} bytes of a cut or foreign first line",
            torn.dropped_bytes
        ),
    };
    JournalError::NotAJournal {
        path: path.to_owned(),
        reason,
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    // SAFETY: flock on a file descriptor this `File` owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Err(JournalError::Locked {
            path: path.to_owned(),
        })
    } else {
        Err(io_error(path, "lock")(err))
    }
}

fn check_regular(file: &File, path: &Path) -> Result<(), JournalError> {
    let meta = file.metadata().map_err(io_error(path, "inspect"))?;
    if meta.is_file() {
        return Ok(());
    }
    Err(JournalError::NotAJournal {
        path: path.to_owned(),
        reason: format!(
            "it is {}, not a regular file",
            crate::runtime::input::kind_of(&meta.file_type())
        ),
    })
}

fn read_path(path: &Path) -> Result<Vec<u8>, JournalError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io_error(path, "open"))?;
    check_regular(&file, path)?;
    read_all(&file, path)
}

/// The whole file from its start, within [`MAX_JOURNAL_BYTES`].
fn read_all(file: &File, path: &Path) -> Result<Vec<u8>, JournalError> {
    let size = file.metadata().map_err(io_error(path, "inspect"))?.len();
    let too_large = |size| JournalError::TooLarge {
        path: path.to_owned(),
        size,
        limit: MAX_JOURNAL_BYTES,
    };
    if size > MAX_JOURNAL_BYTES {
        return Err(too_large(Some(size)));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow while it is read (a writer appending): one byte
    // past the limit tells.
    file.take(MAX_JOURNAL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error(path, "read"))?;
    if bytes.len() as u64 > MAX_JOURNAL_BYTES {
        return Err(too_large(None));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use serde_json::json;

    use super::*;

    const ROLLOUT: &str = "r-2026-12-01-a";

    /// A journal of `n` records (record 1 is `journal-created`), each after
    /// the first with a key and a body of a few fields.
    fn journal_of(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rollout.jsonl");
        let mut journal = Journal::create(&path, ROLLOUT).expect("create");
        for i in 2..=n {
            journal
                .append(
                    "hook-ended",
                    Some(&format!("key-{i}")),
                    json!({ "checkpoint": "canary", "i": i, "ok": true }),
                )
                .expect("append");
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(path).expect("read");
        assert_eq!(bytes.last(), Some(&b'\n'), "a journal ends with a newline");
        bytes[..bytes.len() - 1]
            .split(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[Vec<u8>]) {
        let mut bytes = lines.join(&b'\n');
        bytes.push(b'\n');
        std::fs::write(path, bytes).expect("write");
    }

    /// `line` with its crc recomputed: an edit by someone who knows the format.
    fn reseal(line: &[u8]) -> Vec<u8> {
        let head = &line[..line.len() - CRC_TAIL];
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(head);
        hasher.update(b"}");
        let mut out = head.to_vec();
        out.extend_from_slice(format!(",\"crc\":\"{:08x}\"}}", hasher.finalize()).as_bytes());
        out
    }

    /// The offset of the first byte of the value of `field` in `line`
    /// (after the opening quote of a string).
    fn value_at(line: &[u8], field: &str) -> usize {
        let needle = format!("\"{field}\":");
        let text = std::str::from_utf8(line).expect("utf-8");
        let at = text.find(&needle).expect("field present") + needle.len();
        if line[at] == b'"' { at + 1 } else { at }
    }

    /// The byte at `at` replaced by another of the same class (digit, hex
    /// letter, letter), so the line stays JSON.
    fn flip(line: &mut [u8], at: usize) {
        line[at] = match line[at] {
            b'0'..=b'8' => line[at] + 1,
            b'9' => b'0',
            b'a'..=b'e' => line[at] + 1,
            b'f' => b'a',
            b'g'..=b'y' | b'A'..=b'Y' => line[at] + 1,
            b'z' => b'a',
            other => panic!("no flip for byte {other:?}"),
        };
    }

    fn broken(path: &Path) -> Broken {
        let verification = verify(path).expect("verify reads");
        assert!(verification.torn_tail.is_none(), "{verification:?}");
        verification.broken.expect("verify names a broken record")
    }

    #[test]
    fn records_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("j.jsonl");
        let mut journal = Journal::create(&path, ROLLOUT).expect("create");
        let mut written = vec![];
        for (kind, key, body) in [
            (
                "rollout-started",
                None,
                json!({ "plan": "sha256:ab", "n": [1, 2.5, null] }),
            ),
            (
                "hook-started",
                Some("canary/promote/1"),
                json!({ "cmd": "echo \"hi\"\n\u{1b}[2J" }),
            ),
            (
                "approved",
                Some("ключ ✓"),
                json!({ "by": "ana", "comment": "ok\u{2028}go" }),
            ),
            ("completed", None, json!({})),
        ] {
            written.push(journal.append(kind, key, body).expect("append"));
        }
        assert_eq!(journal.last_seq(), 5);
        assert_eq!(journal.rollout(), ROLLOUT);
        assert_eq!(journal.path(), path);
        drop(journal);

        let read = read(&path).expect("read");
        assert_eq!(read.torn_tail, None);
        assert_eq!(read.records.len(), 5);
        assert_eq!(read.records[0].kind, CREATED_KIND);
        assert_eq!(read.records[0].body, json!({ "format": FORMAT }));
        assert_eq!(read.records[1..], written[..]);

        let opened = Journal::open(&path).expect("open");
        assert_eq!(opened.records, read.records);
        assert_eq!(opened.repaired, None);
        assert_eq!(opened.journal.last_seq(), 5);

        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "a journal is the user's alone");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, ["j.jsonl"], "create leaves no temporary file");
    }

    #[test]
    fn every_line_is_chained_to_the_one_before_and_checksummed() {
        let (_dir, path) = journal_of(4);
        let lines = lines(&path);
        let mut prev = GENESIS_PREV.to_owned();
        for (i, line) in lines.iter().enumerate() {
            let record: Record = serde_json::from_slice(line).expect("json");
            assert_eq!(record.seq, i as u64 + 1);
            assert_eq!(record.prev, prev, "line {}", i + 1);
            assert!(humantime::parse_rfc3339(&record.at).is_ok());
            assert!(
                record.at.ends_with('Z') && record.at.len() == 24,
                "{}",
                record.at
            );
            // The crc is the last field, over the line without it.
            let text = std::str::from_utf8(line).expect("utf-8");
            let (head, crc) = text.rsplit_once(",\"crc\":\"").expect("crc last");
            let crc = crc.strip_suffix("\"}").expect("crc closes the line");
            assert_eq!(
                crc,
                format!("{:08x}", crc32fast::hash(format!("{head}}}").as_bytes()))
            );
            // Compact: re-serialising the parsed record gives `S` again.
            assert_eq!(
                serde_json::to_string(&record).expect("json"),
                format!("{head}}}")
            );
            prev = hex::encode(Sha256::digest(line));
        }
        // `key` is absent when there is none, not null.
        assert!(!String::from_utf8_lossy(&lines[0]).contains("\"key\""));
        assert!(String::from_utf8_lossy(&lines[1]).contains("\"key\":\"key-2\""));
        let verification = verify(&path).expect("verify");
        assert!(verification.is_intact());
        assert_eq!(verification.records, 4);
        assert_eq!(verification.rollout.as_deref(), Some(ROLLOUT));
    }

    #[test]
    fn an_append_is_visible_to_a_fresh_read_before_the_journal_is_closed() {
        let (_dir, path) = journal_of(2);
        let mut opened = Journal::open(&path).expect("open");
        let record = opened
            .journal
            .append("paused", Some("k"), json!({ "why": "inconclusive" }))
            .expect("append");
        let read = read(&path).expect("read while locked");
        assert_eq!(read.records.last(), Some(&record));
        assert_eq!(record.seq, 3);
    }

    #[test]
    fn a_second_open_while_one_is_held_is_refused_as_locked() {
        let (_dir, path) = journal_of(2);
        let held = Journal::open(&path).expect("first open");
        match Journal::open(&path) {
            Err(JournalError::Locked { path: p }) => assert_eq!(p, path),
            other => panic!("expected Locked, got {other:?}"),
        }
        // Reading needs no lock.
        assert_eq!(read(&path).expect("read").records.len(), 2);
        drop(held);
        Journal::open(&path).expect("open after the holder is gone");
    }

    #[test]
    fn create_refuses_an_existing_path_and_holds_the_lock() {
        let (_dir, path) = journal_of(1);
        assert!(matches!(
            Journal::create(&path, "other"),
            Err(JournalError::AlreadyExists { .. })
        ));
        let dir = tempfile::tempdir().expect("temp dir");
        let fresh = dir.path().join("new.jsonl");
        let created = Journal::create(&fresh, ROLLOUT).expect("create");
        assert!(matches!(
            Journal::open(&fresh),
            Err(JournalError::Locked { .. })
        ));
        drop(created);
        assert_eq!(Journal::open(&fresh).expect("open").records.len(), 1);
    }

    #[test]
    fn reopening_continues_the_sequence_and_the_chain() {
        let (_dir, path) = journal_of(3);
        let mut opened = Journal::open(&path).expect("open");
        opened
            .journal
            .append("resumed", None, json!({}))
            .expect("append");
        drop(opened);
        let mut opened = Journal::open(&path).expect("open again");
        opened
            .journal
            .append("resumed", None, json!({}))
            .expect("append");
        drop(opened);
        let verification = verify(&path).expect("verify");
        assert!(verification.is_intact(), "{verification:?}");
        assert_eq!(verification.records, 5);
    }

    /// One byte of each field of record 3 of 5 edited in place: the
    /// checksum names record 3. The same edit by someone who recomputes the
    /// checksum: the chain, the sequence or the rollout check names the
    /// record where it first shows (record 4, whose `prev` covers record 3,
    /// when record 3 is consistent in itself).
    #[test]
    fn an_edited_byte_in_any_field_is_named_by_verify() {
        struct Case {
            field: &'static str,
            // Bytes into the value to edit (0: its first byte).
            offset: usize,
            resealed: Option<(u64, BrokenReason)>,
        }
        let cases = [
            Case {
                field: "seq",
                offset: 0,
                resealed: Some((
                    3,
                    BrokenReason::Sequence {
                        expected: 3,
                        found: 4,
                    },
                )),
            },
            Case {
                field: "prev",
                offset: 10,
                resealed: Some((3, BrokenReason::Chain)),
            },
            // The milliseconds' last digit: still a valid time.
            Case {
                field: "at",
                offset: 22,
                resealed: Some((4, BrokenReason::Chain)),
            },
            Case {
                field: "rollout",
                offset: 0,
                resealed: Some((
                    3,
                    BrokenReason::Rollout {
                        expected: ROLLOUT.to_owned(),
                        found: ROLLOUT.replacen('r', "s", 1),
                    },
                )),
            },
            Case {
                field: "kind",
                offset: 0,
                resealed: Some((4, BrokenReason::Chain)),
            },
            Case {
                field: "key",
                offset: 0,
                resealed: Some((4, BrokenReason::Chain)),
            },
            Case {
                field: "checkpoint",
                offset: 0,
                resealed: Some((4, BrokenReason::Chain)),
            },
            Case {
                field: "crc",
                offset: 3,
                resealed: None,
            },
        ];
        for case in cases {
            let (_dir, path) = journal_of(5);
            let original = lines(&path);
            let mut edited = original.clone();
            let at = value_at(&edited[2], case.field) + case.offset;
            flip(&mut edited[2], at);
            write_lines(&path, &edited);
            let found = broken(&path);
            assert_eq!(
                (found.line, found.seq, &found.reason),
                (3, None, &BrokenReason::Checksum),
                "{}: {found}",
                case.field
            );
            assert!(
                found.to_string().starts_with("record 3 (line 3): checksum"),
                "{found}"
            );
            assert!(matches!(
                read(&path),
                Err(JournalError::Broken { broken, .. }) if broken == found
            ));
            assert!(matches!(
                Journal::open(&path),
                Err(JournalError::Broken { broken, .. }) if broken == found
            ));
            assert_eq!(
                lines(&path),
                edited,
                "{}: a broken journal is left alone",
                case.field
            );

            if let Some((line, reason)) = case.resealed {
                edited[2] = reseal(&edited[2]);
                write_lines(&path, &edited);
                let found = broken(&path);
                assert_eq!(
                    (found.line, &found.reason),
                    (line, &reason),
                    "{} resealed: {found}",
                    case.field
                );
                assert!(
                    found.seq.is_some(),
                    "{} resealed: the seq is readable",
                    case.field
                );
            }
        }
    }

    #[test]
    fn a_missing_swapped_or_duplicated_line_is_named() {
        let (_dir, path) = journal_of(5);
        let original = lines(&path);

        let mut deleted = original.clone();
        deleted.remove(2);
        write_lines(&path, &deleted);
        let found = broken(&path);
        assert_eq!(found.line, 3);
        assert_eq!(
            found.reason,
            BrokenReason::Sequence {
                expected: 3,
                found: 4
            }
        );

        let mut swapped = original.clone();
        swapped.swap(2, 3);
        write_lines(&path, &swapped);
        let found = broken(&path);
        assert_eq!(found.line, 3);
        assert_eq!(
            found.reason,
            BrokenReason::Sequence {
                expected: 3,
                found: 4
            }
        );

        let mut duplicated = original.clone();
        duplicated.insert(3, original[2].clone());
        write_lines(&path, &duplicated);
        let found = broken(&path);
        assert_eq!(found.line, 4);
        assert_eq!(
            found.reason,
            BrokenReason::Sequence {
                expected: 4,
                found: 3
            }
        );

        // The last record duplicated: whole (its checksum holds), so an
        // edit, not a torn write.
        let mut last_twice = original.clone();
        last_twice.push(original[4].clone());
        write_lines(&path, &last_twice);
        let found = broken(&path);
        assert_eq!(found.line, 6);
        assert_eq!(
            found.reason,
            BrokenReason::Sequence {
                expected: 6,
                found: 5
            }
        );

        // Record 1 removed: record 2 is not where record 1 belongs.
        write_lines(&path, &original[1..]);
        assert_eq!(
            broken(&path).reason,
            BrokenReason::Sequence {
                expected: 1,
                found: 2
            }
        );
    }

    #[test]
    fn a_record_of_another_rollout_is_named() {
        let (_dir, path) = journal_of(3);
        let (_other_dir, other) = journal_of(3);
        let mut mixed = lines(&path);
        mixed[2] = lines(&other)[2].clone();
        // Same seq, other rollout id... and another chain: the chain fails
        // first unless the rollout ids differ only.
        write_lines(&path, &mixed);
        assert_eq!(broken(&path).line, 3);

        let dir = tempfile::tempdir().expect("temp dir");
        let foreign = dir.path().join("x.jsonl");
        let mut journal = Journal::create(&foreign, ROLLOUT).expect("create");
        journal.rollout = "intruder".to_owned();
        journal
            .append("rollout-started", None, json!({}))
            .expect("append");
        let found = broken(&foreign);
        assert_eq!(found.line, 2);
        assert_eq!(
            found.reason,
            BrokenReason::Rollout {
                expected: ROLLOUT.to_owned(),
                found: "intruder".to_owned()
            }
        );
    }

    /// The last line cut at every byte (as a crash during its write would):
    /// `read` and `verify` report the torn tail and every record before it;
    /// `open` truncates it, records the repair, and the journal verifies
    /// with nothing before the torn record lost.
    #[test]
    fn a_torn_last_line_is_reported_then_repaired_at_every_cut_point() {
        let (dir, path) = journal_of(5);
        let bytes = std::fs::read(&path).expect("read");
        let original = lines(&path);
        let good_len = bytes.len() - original[4].len() - 1;
        let good: Vec<Record> = read(&path).expect("read").records[..4].to_vec();
        // Every cut from one byte of the last line to all of it without its
        // newline.
        for cut in good_len + 1..bytes.len() {
            let torn = &bytes[good_len..cut];
            std::fs::write(&path, &bytes[..cut]).expect("write");
            let expected = TornTail {
                line: 5,
                dropped_bytes: torn.len() as u64,
                dropped_sha256: hex::encode(Sha256::digest(torn)),
            };

            let verification = verify(&path).expect("verify");
            assert_eq!(verification.broken, None, "cut {cut}");
            assert_eq!(verification.records, 4, "cut {cut}");
            assert_eq!(
                verification.torn_tail.as_ref(),
                Some(&expected),
                "cut {cut}"
            );
            let read_back = read(&path).expect("read tolerates a torn tail");
            assert_eq!(read_back.records, good, "cut {cut}");
            assert_eq!(read_back.torn_tail.as_ref(), Some(&expected));
            assert_eq!(
                std::fs::read(&path).expect("read"),
                &bytes[..cut],
                "read changes nothing"
            );

            let opened = Journal::open(&path).expect("open repairs");
            assert_eq!(opened.repaired.as_ref(), Some(&expected), "cut {cut}");
            assert_eq!(opened.records[..4], good[..], "cut {cut}");
            let repair = &opened.records[4];
            assert_eq!((repair.seq, repair.kind.as_str()), (5, REPAIRED_KIND));
            assert_eq!(
                repair.body,
                json!({
                    "line": 5,
                    "dropped-bytes": expected.dropped_bytes,
                    "dropped-sha256": expected.dropped_sha256,
                })
            );
            drop(opened);
            let verification = verify(&path).expect("verify");
            assert!(
                verification.is_intact() && verification.torn_tail.is_none(),
                "cut {cut}"
            );
            assert_eq!(verification.records, 5);
            assert_eq!(
                std::fs::read(&path).expect("read")[..good_len],
                bytes[..good_len],
                "nothing before the torn record changed"
            );
        }
        drop(dir);
    }

    /// A torn tail longer than the repair record (a big record cut late):
    /// it is cut to the record's length, then overwritten; nothing of it is
    /// left.
    #[test]
    fn a_torn_tail_longer_than_the_repair_record_is_replaced_whole() {
        let (_dir, path) = journal_of(3);
        let mut journal = Journal::open(&path).expect("open").journal;
        journal
            .append(
                "verdict",
                Some("big"),
                json!({ "findings": "f".repeat(3000) }),
            )
            .expect("append");
        drop(journal);
        let bytes = std::fs::read(&path).expect("read");
        let good_len = bytes.len() - lines(&path)[3].len() - 1;
        for cut in [good_len + 400, good_len + 1500, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).expect("write");
            let opened = Journal::open(&path).expect("open repairs");
            assert_eq!(
                opened.repaired.map(|t| t.dropped_bytes),
                Some((cut - good_len) as u64)
            );
            drop(opened.journal);
            let after = lines(&path);
            assert_eq!(after.len(), 4, "cut {cut}");
            let repair: Record = serde_json::from_slice(&after[3]).expect("json");
            assert_eq!(repair.kind, REPAIRED_KIND);
            let verification = verify(&path).expect("verify");
            assert!(
                verification.is_intact() && verification.torn_tail.is_none(),
                "cut {cut}"
            );
            assert_eq!(
                std::fs::read(&path).expect("read")[..good_len],
                bytes[..good_len]
            );
        }
    }

    #[test]
    fn a_damaged_last_line_with_its_newline_is_a_torn_tail() {
        let (_dir, path) = journal_of(3);
        let mut damaged = lines(&path);
        // Zeros where the end of the last record should be (a lost page).
        let len = damaged[2].len();
        damaged[2][len - 30..].fill(0);
        write_lines(&path, &damaged);
        let verification = verify(&path).expect("verify");
        assert_eq!(verification.broken, None);
        assert_eq!(
            verification.torn_tail.map(|t| (t.line, t.dropped_bytes)),
            Some((3, len as u64 + 1))
        );
        let opened = Journal::open(&path).expect("open");
        assert_eq!(opened.records.len(), 3);
        assert_eq!(opened.records[2].kind, REPAIRED_KIND);
    }

    #[test]
    fn a_whole_last_record_off_the_chain_is_refused_not_repaired() {
        let (_dir, path) = journal_of(3);
        let mut edited = lines(&path);
        let at = value_at(&edited[2], "prev");
        flip(&mut edited[2], at);
        edited[2] = reseal(&edited[2]);
        write_lines(&path, &edited);
        assert_eq!(broken(&path).reason, BrokenReason::Chain);
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::Broken { .. })
        ));
        assert_eq!(lines(&path), edited);
    }

    #[test]
    fn a_file_with_no_complete_record_is_not_a_journal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("empty.jsonl");
        std::fs::write(&path, b"").expect("write");
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::NotAJournal { .. })
        ));
        assert!(matches!(read(&path), Err(JournalError::NotAJournal { .. })));
        let verification = verify(&path).expect("verify");
        assert_eq!(verification.records, 0);
        assert_eq!(
            verification.broken.map(|b| b.reason),
            Some(BrokenReason::Empty)
        );

        std::fs::write(&path, b"{\"seq\":1,\"prev\"").expect("write");
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::NotAJournal { .. })
        ));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            b"{\"seq\":1,\"prev\"",
            "nothing is truncated when nothing would be left"
        );

        std::fs::write(&path, b"hello\nworld\n").expect("write");
        assert_eq!(broken(&path).reason, BrokenReason::Checksum);

        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            Journal::open(&fifo),
            Err(JournalError::NotAJournal { .. })
        ));
        assert!(matches!(
            verify(&fifo),
            Err(JournalError::NotAJournal { .. })
        ));
    }

    #[test]
    fn an_oversized_record_is_refused_and_the_journal_stays_usable() {
        let (_dir, path) = journal_of(2);
        let mut opened = Journal::open(&path).expect("open");
        let big = "x".repeat(MAX_RECORD_BYTES);
        assert!(matches!(
            opened.journal.append("big", None, json!({ "x": big })),
            Err(JournalError::RecordTooLarge { .. })
        ));
        opened
            .journal
            .append("small", None, json!({}))
            .expect("append after a refusal");
        assert!(verify(&path).expect("verify").is_intact());
    }

    #[test]
    fn an_io_error_says_what_failed_and_keeps_its_cause() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.jsonl");
        let err = Journal::open(&missing).expect_err("no such file");
        assert!(
            err.to_string().starts_with("I/O error on journal "),
            "{err}"
        );
        let JournalError::Io { source, .. } = &err else {
            panic!("expected Io, got {err:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::NotFound);
        let cause = std::error::Error::source(&err).expect("a cause");
        assert_eq!(cause.to_string(), "cannot open");
        let os = cause.source().expect("the OS error");
        assert!(os.to_string().contains("No such file"), "{os}");
        assert!(matches!(
            Journal::create(&dir.path().join("no-dir").join("j.jsonl"), ROLLOUT),
            Err(JournalError::Io { .. })
        ));
    }

    #[test]
    fn render_shows_one_escaped_line_per_record() {
        let (_dir, path) = journal_of(1);
        let mut opened = Journal::open(&path).expect("open");
        opened
            .journal
            .append(
                "hook\u{1b}[2J",
                Some("k\ney"),
                json!({ "m": "a\u{202e}b", "long": "y".repeat(400) }),
            )
            .expect("append");
        drop(opened);
        let records = read(&path).expect("read").records;
        let text = render(&records);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("#1 "));
        assert!(text.contains("journal-created"));
        let second = text.lines().nth(1).expect("line 2");
        assert!(second.starts_with("#2 "));
        assert!(second.contains("hook\\u{1b}[2J"), "{second}");
        assert!(second.contains("k\\ney"), "{second}");
        assert!(
            !second.chars().any(|c| c == '\u{1b}' || c == '\u{202e}'),
            "{second}"
        );
        assert!(second.ends_with('…'), "a long body is cut: {second}");
    }
}
