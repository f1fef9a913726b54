//! The PostgreSQL store of rollouts that `cairn serve` replicas share: each
//! rollout's inputs, its journal (one row per record, the exact line bytes of
//! the file journal) and the lease that says which replica drives it.
//!
//! # Tables ([`PgStore::migrate`])
//!
//! - `cairn_rollouts (id, tenant, plan, change, created_at, finished)`: what
//!   a replica needs to take a rollout over (the plan's text, the change's
//!   bytes), and whether it is finished.
//! - `cairn_journal (rollout, seq, line)`, primary key `(rollout, seq)`:
//!   record `seq` of the rollout's journal, `line` holding the record's line
//!   (`\n` included) exactly as [`journal::next_line`] made it, so the CRC and
//!   the hash chain are those of the file format (`cairn-journal/1`), and the
//!   rows of a rollout concatenated in `seq` order are a journal file that
//!   `cairn journal verify` accepts. Rows are checked with
//!   [`journal::check_record_line`], the file journal's own checks.
//! - `cairn_leases (rollout, owner, expires_at)`: at most one lease per
//!   rollout. Every time is the database's `now()`, never a replica's clock.
//!
//! # Writing
//!
//! A [`PgJournal`] appends record `N` with one `INSERT ... SELECT ... WHERE
//! EXISTS` that holds only while its owner holds an unexpired lease (the lease
//! row is read `FOR SHARE`, so a takeover and an append are ordered): a
//! replica that lost its lease writes nothing ([`PgError::LeaseLost`]). Two
//! writers of record `N` (same owner, two handles) cannot fork the chain:
//! the primary key lets one in and the other gets [`PgError::Conflict`]. After
//! any failed append the handle refuses further appends
//! ([`PgError::Unusable`]), as the file journal does: the record may or may
//! not be in the table (an error after the commit), so the handle's idea of
//! the last record cannot be trusted; reopen it.
//!
//! A row is written whole or not at all, so there are no torn tails and no
//! repair: anything that does not check is broken and refused, named as
//! `cairn journal verify` names it ("record N: reason").
//!
//! As with the file, the checksum and the chain catch damage and a single
//! edited row, not a rewrite of every row after it: they are not signatures.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::escape::single_line;
use crate::rollout::journal::{
    self, Broken, BrokenReason, CREATED_KIND, LineError, Record, Verification,
};

/// The key of the advisory lock [`PgStore::migrate`] holds while it creates
/// the tables ("cairn" and 1), so that replicas starting together do not
/// race on `CREATE TABLE IF NOT EXISTS` (which is not safe concurrently).
const MIGRATE_LOCK: i64 = 0x6361_6972_6e00_0001;

/// The tables, created if missing; run under [`MIGRATE_LOCK`].
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cairn_rollouts (
    id text PRIMARY KEY,
    tenant text NOT NULL,
    plan text NOT NULL,
    change bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS cairn_journal (
    rollout text NOT NULL REFERENCES cairn_rollouts(id),
    seq bigint NOT NULL,
    line bytea NOT NULL,
    PRIMARY KEY (rollout, seq)
);
CREATE TABLE IF NOT EXISTS cairn_leases (
    rollout text PRIMARY KEY REFERENCES cairn_rollouts(id),
    owner text NOT NULL,
    expires_at timestamptz NOT NULL
);
-- A rollout paused for approval is parked: no replica claims it until an
-- approval (or an abort) unparks it.
ALTER TABLE cairn_rollouts ADD COLUMN IF NOT EXISTS parked boolean NOT NULL DEFAULT false;
";

/// The shortest lease: 1 ms.
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(1);
/// The longest lease: one day (a lease is renewed, not held for ever).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Errors of the PostgreSQL store. Database errors keep their cause (with
/// its SQLSTATE); what they mean for a rollout is a variant of its own.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] tokio_postgres::Error),
    #[error("PostgreSQL: cannot {action}")]
    Db {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("rollout \"{}\" already exists", single_line(id))]
    AlreadyExists { id: String },
    #[error("no rollout \"{}\" is registered", single_line(id))]
    UnknownRollout { id: String },
    #[error("rollout \"{}\" already has a journal", single_line(rollout))]
    JournalExists { rollout: String },
    #[error(
        "rollout \"{}\" has no journal (it was never created, or the rollout is unknown)",
        single_line(rollout)
    )]
    NoJournal { rollout: String },
    #[error(
        "the lease of rollout \"{}\" is not held by \"{}\" (it expired or another replica \
         took it over): nothing was written",
        single_line(rollout),
        single_line(owner)
    )]
    LeaseLost { rollout: String, owner: String },
    #[error(
        "record {seq} of rollout \"{}\" was appended by another writer first: nothing was \
         written; reopen the journal",
        single_line(rollout)
    )]
    Conflict { rollout: String, seq: u64 },
    #[error(
        "journal of rollout \"{}\": an earlier append failed; reopen the journal before appending",
        single_line(rollout)
    )]
    Unusable { rollout: String },
    #[error(
        "journal of rollout \"{}\" is broken at {}; it is refused",
        single_line(rollout),
        broken_at(broken)
    )]
    Broken { rollout: String, broken: Broken },
    #[error(
        "journal of rollout \"{}\": cannot make record {seq}",
        single_line(rollout)
    )]
    Record {
        rollout: String,
        seq: u64,
        #[source]
        source: LineError,
    },
    #[error("a lease time-to-live of {ttl:?} is out of range (1 ms to 24 h)")]
    Ttl { ttl: Duration },
}

/// "record N: reason", as `cairn journal verify` names a broken record (the
/// record's seq when its line could be read, else its position).
pub fn broken_at(broken: &Broken) -> String {
    format!(
        "record {}: {}",
        broken.seq.unwrap_or(broken.line),
        broken.reason
    )
}

/// A [`tokio_postgres::Error`] while doing `action`.
fn db(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    move |source| PgError::Db { action, source }
}

fn sql_state(err: &tokio_postgres::Error) -> Option<&SqlState> {
    err.code()
}

/// A lease's time-to-live in whole milliseconds, within
/// [`MIN_LEASE_TTL`]..=[`MAX_LEASE_TTL`].
fn ttl_millis(ttl: Duration) -> Result<i64, PgError> {
    if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&ttl) {
        return Err(PgError::Ttl { ttl });
    }
    i64::try_from(ttl.as_millis()).map_err(|_| PgError::Ttl { ttl })
}

/// A seq as the `bigint` it is stored as.
fn seq_column(rollout: &str, seq: u64) -> Result<i64, PgError> {
    i64::try_from(seq).map_err(|_| PgError::Conflict {
        rollout: rollout.to_owned(),
        seq,
    })
}

/// The inputs of a registered rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRow {
    pub id: String,
    pub tenant: String,
    /// The plan file's text.
    pub plan: String,
    /// The change's bytes.
    pub change: Vec<u8>,
    pub finished: bool,
}

/// One line of [`PgStore::list_rollouts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSummary {
    pub id: String,
    pub tenant: String,
    pub plan: String,
    pub finished: bool,
}

/// A connection to the store, cheap to clone (the clones share it; queries
/// from several tasks are pipelined on it).
#[derive(Clone)]
pub struct PgStore {
    client: Arc<Client>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("closed", &self.client.is_closed())
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`, or the key=value
    /// form), without TLS, and spawns the connection's task on the current
    /// tokio runtime (so this must run inside one). When the connection
    /// ends, every later query fails with [`PgError::Db`].
    pub async fn connect(url: &str) -> Result<PgStore, PgError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(PgError::Connect)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(error = %err, "the PostgreSQL connection ended with an error");
            }
        });
        Ok(PgStore {
            client: Arc::new(client),
        })
    }

    /// Whether the connection is gone (the server then reports not ready).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Creates the tables if they are missing. Safe when several replicas
    /// run it at once: one transaction (a single simple query, so no other
    /// query of this connection can come in between) that first takes a
    /// transaction-scoped advisory lock.
    pub async fn migrate(&self) -> Result<(), PgError> {
        let script = format!("SELECT pg_advisory_xact_lock({MIGRATE_LOCK});{SCHEMA}");
        self.client
            .batch_execute(&script)
            .await
            .map_err(db("create the tables"))
    }

    /// Registers rollout `id` with its inputs; an existing id is refused
    /// ([`PgError::AlreadyExists`]) and left as it was.
    pub async fn register_rollout(
        &self,
        id: &str,
        tenant: &str,
        plan: &str,
        change: &[u8],
    ) -> Result<(), PgError> {
        let inserted = self
            .client
            .execute(
                "INSERT INTO cairn_rollouts (id, tenant, plan, change) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &tenant, &plan, &change],
            )
            .await
            .map_err(db("register a rollout"))?;
        if inserted == 0 {
            return Err(PgError::AlreadyExists { id: id.to_owned() });
        }
        Ok(())
    }

    /// The inputs of rollout `id`, if it is registered.
    pub async fn rollout_inputs(&self, id: &str) -> Result<Option<RolloutRow>, PgError> {
        let row = self
            .client
            .query_opt(
                "SELECT id, tenant, plan, change, finished FROM cairn_rollouts WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(db("read a rollout"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(RolloutRow {
            id: row.try_get(0).map_err(db("read a rollout's columns"))?,
            tenant: row.try_get(1).map_err(db("read a rollout's columns"))?,
            plan: row.try_get(2).map_err(db("read a rollout's columns"))?,
            change: row.try_get(3).map_err(db("read a rollout's columns"))?,
            finished: row.try_get(4).map_err(db("read a rollout's columns"))?,
        }))
    }

    /// The registered rollouts (of `tenant`, or all), oldest first.
    pub async fn list_rollouts(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<RolloutSummary>, PgError> {
        let rows = self
            .client
            .query(
                "SELECT id, tenant, plan, finished FROM cairn_rollouts \
                 WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id",
                &[&tenant],
            )
            .await
            .map_err(db("list rollouts"))?;
        rows.iter()
            .map(|row| {
                Ok(RolloutSummary {
                    id: row.try_get(0).map_err(db("read a rollout's columns"))?,
                    tenant: row.try_get(1).map_err(db("read a rollout's columns"))?,
                    plan: row.try_get(2).map_err(db("read a rollout's columns"))?,
                    finished: row.try_get(3).map_err(db("read a rollout's columns"))?,
                })
            })
            .collect()
    }

    /// Marks rollout `id` finished: it is no longer [`claimable`](Self::claimable).
    pub async fn mark_finished(&self, id: &str) -> Result<(), PgError> {
        let updated = self
            .client
            .execute(
                "UPDATE cairn_rollouts SET finished = true WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(db("mark a rollout finished"))?;
        if updated == 0 {
            return Err(PgError::UnknownRollout { id: id.to_owned() });
        }
        Ok(())
    }

    /// Parks rollout `id` (paused for people: no replica claims it) or
    /// unparks it (an approval or an abort drives it on).
    pub async fn set_parked(&self, id: &str, parked: bool) -> Result<(), PgError> {
        self.client
            .execute(
                "UPDATE cairn_rollouts SET parked = $2 WHERE id = $1",
                &[&id, &parked],
            )
            .await
            .map_err(db("park a rollout"))?;
        Ok(())
    }

    /// Takes the lease of `rollout` for `owner` until the database's
    /// `now() + ttl`: when there is none, when it expired, or when `owner`
    /// holds it already (then it is extended). `false` when another owner
    /// holds it unexpired. One statement, so two replicas cannot both win.
    pub async fn try_acquire(
        &self,
        rollout: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, PgError> {
        let ttl = ttl_millis(ttl)?;
        let taken = self
            .client
            .query_opt(
                "INSERT INTO cairn_leases (rollout, owner, expires_at) \
                 VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (rollout) DO UPDATE \
                 SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at \
                 WHERE cairn_leases.expires_at <= now() OR cairn_leases.owner = $2 \
                 RETURNING owner",
                &[&rollout, &owner, &ttl],
            )
            .await
            .map_err(|err| match sql_state(&err) {
                Some(&SqlState::FOREIGN_KEY_VIOLATION) => PgError::UnknownRollout {
                    id: rollout.to_owned(),
                },
                _ => db("take a lease")(err),
            })?;
        Ok(taken.is_some())
    }

    /// Extends `owner`'s unexpired lease of `rollout` to `now() + ttl`;
    /// `false` when `owner` does not hold it (it expired, or was taken over):
    /// the lease is lost and the rollout must not be driven on.
    pub async fn renew(&self, rollout: &str, owner: &str, ttl: Duration) -> Result<bool, PgError> {
        let ttl = ttl_millis(ttl)?;
        let renewed = self
            .client
            .execute(
                "UPDATE cairn_leases SET expires_at = now() + $3::bigint * interval '1 millisecond' \
                 WHERE rollout = $1 AND owner = $2 AND expires_at > now()",
                &[&rollout, &owner, &ttl],
            )
            .await
            .map_err(db("renew a lease"))?;
        Ok(renewed == 1)
    }

    /// Gives up `owner`'s lease of `rollout` (nothing when `owner` does not
    /// hold it).
    pub async fn release(&self, rollout: &str, owner: &str) -> Result<(), PgError> {
        self.client
            .execute(
                "DELETE FROM cairn_leases WHERE rollout = $1 AND owner = $2",
                &[&rollout, &owner],
            )
            .await
            .map_err(db("release a lease"))?;
        Ok(())
    }

    /// Up to `limit` unfinished rollouts that no one holds an unexpired lease
    /// of, oldest first: the ones a replica may take over.
    pub async fn claimable(&self, limit: u32) -> Result<Vec<String>, PgError> {
        let rows = self
            .client
            .query(
                "SELECT r.id FROM cairn_rollouts r \
                 LEFT JOIN cairn_leases l ON l.rollout = r.id \
                 WHERE NOT r.finished AND NOT r.parked \
                 AND (l.rollout IS NULL OR l.expires_at <= now()) \
                 ORDER BY r.created_at, r.id LIMIT $1",
                &[&i64::from(limit)],
            )
            .await
            .map_err(db("list claimable rollouts"))?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(db("read a rollout id")))
            .collect()
    }

    /// Every row of `rollout`'s journal, in seq order.
    async fn rows(&self, rollout: &str) -> Result<Vec<(i64, Vec<u8>)>, PgError> {
        let rows = self
            .client
            .query(
                "SELECT seq, line FROM cairn_journal WHERE rollout = $1 ORDER BY seq",
                &[&rollout],
            )
            .await
            .map_err(db("read a journal"))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0).map_err(db("read a journal row"))?,
                    row.try_get(1).map_err(db("read a journal row"))?,
                ))
            })
            .collect()
    }

    /// Inserts `line` as record `seq` of `rollout` if `owner` holds an
    /// unexpired lease of it.
    async fn insert_line(
        &self,
        rollout: &str,
        owner: &str,
        seq: u64,
        line: &[u8],
    ) -> Result<(), PgError> {
        let seq_value = seq_column(rollout, seq)?;
        let inserted = self
            .client
            .execute(
                "INSERT INTO cairn_journal (rollout, seq, line) \
                 SELECT $1, $2, $3 WHERE EXISTS ( \
                     SELECT 1 FROM cairn_leases \
                     WHERE rollout = $1 AND owner = $4 AND expires_at > now() \
                     FOR SHARE)",
                &[&rollout, &seq_value, &line, &owner],
            )
            .await
            .map_err(|err| match sql_state(&err) {
                Some(&SqlState::UNIQUE_VIOLATION) if seq == 1 => PgError::JournalExists {
                    rollout: rollout.to_owned(),
                },
                Some(&SqlState::UNIQUE_VIOLATION) => PgError::Conflict {
                    rollout: rollout.to_owned(),
                    seq,
                },
                _ => db("append a record")(err),
            })?;
        if inserted == 0 {
            return Err(PgError::LeaseLost {
                rollout: rollout.to_owned(),
                owner: owner.to_owned(),
            });
        }
        Ok(())
    }
}

/// What checking a journal's rows found.
#[derive(Debug)]
struct Checked {
    /// The good records, from record 1.
    records: Vec<Record>,
    /// SHA-256 of the last good record's line (zeros when there is none).
    last_hash: [u8; 32],
    /// The first broken record; nothing after it is checked.
    broken: Option<Broken>,
}

/// Checks the rows of `rollout`'s journal (`seq` column and line, in seq
/// order) with the file journal's checks, up to the first broken one; a
/// row's `seq` column must be its record's seq too.
fn check_rows<'a>(rollout: &str, rows: impl IntoIterator<Item = (i64, &'a [u8])>) -> Checked {
    let mut checked = Checked {
        records: Vec::new(),
        last_hash: [0; 32],
        broken: None,
    };
    for (expected, (column, line)) in (1u64..).zip(rows) {
        let record = match journal::check_record_line(line, expected, &checked.last_hash, rollout) {
            Ok(record) => record,
            Err(broken) => {
                checked.broken = Some(broken);
                break;
            }
        };
        if u64::try_from(column).ok() != Some(expected) {
            checked.broken = Some(Broken {
                line: expected,
                seq: Some(expected),
                reason: BrokenReason::Field(format!(
                    "seq: the row's seq column holds {column}, its record is {expected}"
                )),
            });
            break;
        }
        checked.last_hash = journal::line_hash(line);
        checked.records.push(record);
    }
    checked
}

/// The journal of one rollout in the store, for its lease holder: appends go
/// through only while `owner` holds the rollout's lease.
#[derive(Debug)]
pub struct PgJournal {
    store: PgStore,
    rollout: String,
    owner: String,
    last_seq: u64,
    /// SHA-256 of the last record's line.
    last_hash: [u8; 32],
    /// Set while an append is under way; left set when it fails.
    unusable: bool,
}

impl PgJournal {
    /// Creates the journal of registered `rollout` with its
    /// `journal-created` record (what [`journal::Journal::create`] writes
    /// first), as `owner`, who must hold its lease
    /// ([`PgError::LeaseLost`] otherwise). A journal that exists is refused
    /// ([`PgError::JournalExists`]).
    pub async fn create(store: &PgStore, rollout: &str, owner: &str) -> Result<PgJournal, PgError> {
        let mut journal = PgJournal {
            store: store.clone(),
            rollout: rollout.to_owned(),
            owner: owner.to_owned(),
            last_seq: 0,
            last_hash: [0; 32],
            unusable: false,
        };
        journal
            .append(CREATED_KIND, None, journal::created_body())
            .await?;
        Ok(journal)
    }

    /// Opens the journal of `rollout` for `owner`: reads every record and
    /// checks it (sequence, chain, checksum, JSON, rollout). A broken journal
    /// is refused ([`PgError::Broken`], naming the record); one without rows,
    /// too ([`PgError::NoJournal`]). Opening needs no lease; appending does.
    pub async fn open(
        store: &PgStore,
        rollout: &str,
        owner: &str,
    ) -> Result<(PgJournal, Vec<Record>), PgError> {
        let (records, last_hash) = read_checked(store, rollout).await?;
        let journal = PgJournal {
            store: store.clone(),
            rollout: rollout.to_owned(),
            owner: owner.to_owned(),
            last_seq: records.len() as u64,
            last_hash,
            unusable: false,
        };
        Ok((journal, records))
    }

    /// Appends the next record, if `owner` still holds an unexpired lease of
    /// the rollout ([`PgError::LeaseLost`] otherwise, and nothing is
    /// written); returns it once it is committed. Another writer's record
    /// at the same seq is a [`PgError::Conflict`]. After any failure to
    /// write, the handle refuses further appends (reopen it).
    pub async fn append(
        &mut self,
        kind: &str,
        key: Option<&str>,
        body: serde_json::Value,
    ) -> Result<Record, PgError> {
        if self.unusable {
            return Err(PgError::Unusable {
                rollout: self.rollout.clone(),
            });
        }
        let (record, line) = journal::next_line(
            &self.rollout,
            self.last_seq,
            &self.last_hash,
            kind,
            key,
            body,
        )
        .map_err(|source| PgError::Record {
            rollout: self.rollout.clone(),
            seq: self.last_seq + 1,
            source,
        })?;
        // Left set if the insert fails or this future is dropped mid-way.
        self.unusable = true;
        self.store
            .insert_line(&self.rollout, &self.owner, record.seq, &line)
            .await?;
        self.unusable = false;
        self.last_seq = record.seq;
        self.last_hash = journal::line_hash(&line);
        Ok(record)
    }

    pub fn rollout(&self) -> &str {
        &self.rollout
    }

    /// The lease holder this handle appends as.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The seq of the last record.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn store(&self) -> &PgStore {
        &self.store
    }
}

/// Every record of `rollout`'s journal, checked, without a lease (status
/// views). A broken journal is refused ([`PgError::Broken`]), one without
/// rows too ([`PgError::NoJournal`]).
pub async fn records(store: &PgStore, rollout: &str) -> Result<Vec<Record>, PgError> {
    read_checked(store, rollout)
        .await
        .map(|(records, _)| records)
}

/// Checks the journal of `rollout` as [`journal::verify`] checks a file:
/// errors only when it cannot be read; what is wrong with it is in the
/// [`Verification`] (no rows: [`BrokenReason::Empty`]; never a torn tail).
pub async fn verify(store: &PgStore, rollout: &str) -> Result<Verification, PgError> {
    let rows = store.rows(rollout).await?;
    Ok(verification(rollout, &rows))
}

fn verification(rollout: &str, rows: &[(i64, Vec<u8>)]) -> Verification {
    let checked = check_rows(rollout, rows.iter().map(|(seq, line)| (*seq, &line[..])));
    let good = checked.records.len() as u64;
    let broken = match checked.broken {
        None if rows.is_empty() => Some(Broken {
            line: 1,
            seq: None,
            reason: BrokenReason::Empty,
        }),
        broken => broken,
    };
    Verification {
        records: good,
        rollout: (good > 0).then(|| rollout.to_owned()),
        torn_tail: None,
        broken,
    }
}

async fn read_checked(store: &PgStore, rollout: &str) -> Result<(Vec<Record>, [u8; 32]), PgError> {
    let rows = store.rows(rollout).await?;
    if rows.is_empty() {
        return Err(PgError::NoJournal {
            rollout: rollout.to_owned(),
        });
    }
    let checked = check_rows(rollout, rows.iter().map(|(seq, line)| (*seq, &line[..])));
    if let Some(broken) = checked.broken {
        return Err(PgError::Broken {
            rollout: rollout.to_owned(),
            broken,
        });
    }
    Ok((checked.records, checked.last_hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROLLOUT: &str = "r-1";

    /// The rows of a journal of `n` records as `PgJournal` would write them.
    fn rows_of(n: u64) -> Vec<(i64, Vec<u8>)> {
        let mut rows = Vec::new();
        let mut hash = [0u8; 32];
        for seq in 1..=n {
            let (kind, body) = if seq == 1 {
                (CREATED_KIND, journal::created_body())
            } else {
                ("step", json!({ "i": seq }))
            };
            let (record, line) =
                journal::next_line(ROLLOUT, seq - 1, &hash, kind, Some("k"), body).expect("line");
            assert_eq!(record.seq, seq);
            hash = journal::line_hash(&line);
            rows.push((seq as i64, line));
        }
        rows
    }

    fn check(rows: &[(i64, Vec<u8>)]) -> Checked {
        check_rows(ROLLOUT, rows.iter().map(|(s, l)| (*s, &l[..])))
    }

    #[test]
    fn good_rows_check_and_the_last_hash_continues_the_chain() {
        let rows = rows_of(4);
        let checked = check(&rows);
        assert!(checked.broken.is_none(), "{:?}", checked.broken);
        assert_eq!(checked.records.len(), 4);
        assert_eq!(checked.records[0].kind, CREATED_KIND);
        assert_eq!(checked.last_hash, journal::line_hash(&rows[3].1));
        let verification = verification(ROLLOUT, &rows);
        assert!(verification.is_intact());
        assert_eq!(
            (verification.records, verification.rollout.as_deref()),
            (4, Some(ROLLOUT))
        );
    }

    #[test]
    fn the_rows_concatenated_are_a_journal_file_that_verifies() {
        let rows = rows_of(5);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("j.jsonl");
        let bytes: Vec<u8> = rows.iter().flat_map(|(_, l)| l.clone()).collect();
        std::fs::write(&path, bytes).expect("write");
        let verification = journal::verify(&path).expect("verify");
        assert!(
            verification.is_intact() && verification.torn_tail.is_none(),
            "{verification:?}"
        );
        assert_eq!(verification.records, 5);
    }

    #[test]
    fn an_altered_row_is_named_with_the_file_journals_reason() {
        let mut rows = rows_of(4);
        let at = rows[2].1.len() - 25;
        rows[2].1[at] ^= 1;
        let broken = check(&rows).broken.expect("broken");
        assert_eq!((broken.line, &broken.reason), (3, &BrokenReason::Checksum));
        assert!(
            broken_at(&broken).starts_with("record 3: checksum"),
            "{}",
            broken_at(&broken)
        );
        assert_eq!(check(&rows).records.len(), 2);
    }

    #[test]
    fn a_missing_row_or_a_renumbered_seq_column_is_named() {
        let mut rows = rows_of(4);
        rows.remove(1);
        let broken = check(&rows).broken.expect("broken");
        assert_eq!(
            broken.reason,
            BrokenReason::Sequence {
                expected: 2,
                found: 3
            }
        );
        assert!(broken_at(&broken).starts_with("record 3: out of sequence"));

        let mut rows = rows_of(4);
        rows[3].0 = 7;
        let broken = check(&rows).broken.expect("broken");
        assert_eq!(broken.line, 4);
        assert!(
            matches!(&broken.reason, BrokenReason::Field(what) if what.contains("holds 7")),
            "{broken:?}"
        );
    }

    #[test]
    fn a_row_without_its_newline_or_with_two_lines_is_damaged() {
        let mut rows = rows_of(3);
        rows[1].1.pop();
        assert_eq!(
            check(&rows).broken.map(|b| (b.line, b.reason)),
            Some((2, BrokenReason::Checksum))
        );
        let mut rows = rows_of(3);
        let second = rows[1].1.clone();
        rows[0].1.extend_from_slice(&second);
        assert_eq!(
            check(&rows).broken.map(|b| (b.line, b.reason)),
            Some((1, BrokenReason::Checksum))
        );
    }

    #[test]
    fn a_row_of_another_rollout_is_named() {
        let rows = rows_of(2);
        let checked = check_rows("other", rows.iter().map(|(s, l)| (*s, &l[..])));
        assert_eq!(
            checked.broken.map(|b| b.reason),
            Some(BrokenReason::Rollout {
                expected: "other".to_owned(),
                found: ROLLOUT.to_owned()
            })
        );
    }

    #[test]
    fn no_rows_verify_as_empty() {
        let verification = verification(ROLLOUT, &[]);
        assert_eq!(verification.records, 0);
        assert_eq!(verification.rollout, None);
        assert_eq!(
            verification.broken.map(|b| b.reason),
            Some(BrokenReason::Empty)
        );
    }

    #[test]
    fn a_lease_ttl_is_whole_milliseconds_within_bounds() {
        assert_eq!(ttl_millis(Duration::from_secs(30)).expect("ttl"), 30_000);
        assert_eq!(ttl_millis(MIN_LEASE_TTL).expect("ttl"), 1);
        assert_eq!(ttl_millis(MAX_LEASE_TTL).expect("ttl"), 86_400_000);
        assert_eq!(ttl_millis(Duration::from_micros(1500)).expect("ttl"), 1);
        assert!(matches!(
            ttl_millis(Duration::ZERO),
            Err(PgError::Ttl { .. })
        ));
        assert!(matches!(
            ttl_millis(Duration::from_micros(999)),
            Err(PgError::Ttl { .. })
        ));
        assert!(matches!(
            ttl_millis(MAX_LEASE_TTL + Duration::from_millis(1)),
            Err(PgError::Ttl { .. })
        ));
    }

    #[test]
    fn errors_name_the_rollout_escaped_and_keep_their_cause() {
        let err = PgError::Broken {
            rollout: "r\n2".to_owned(),
            broken: Broken {
                line: 3,
                seq: Some(3),
                reason: BrokenReason::Chain,
            },
        };
        let text = err.to_string();
        assert!(text.contains("\"r\\n2\""), "{text}");
        assert!(
            text.contains("broken at record 3: hash chain broken"),
            "{text}"
        );
        let err = PgError::Record {
            rollout: ROLLOUT.to_owned(),
            seq: 9,
            source: LineError::TooLarge {
                size: 20,
                limit: 10,
            },
        };
        let cause = std::error::Error::source(&err).expect("a cause");
        assert!(cause.to_string().contains("20 bytes"), "{cause}");
    }
}
