//! Section 7: the rollout journal. Appends with an fsync per record against
//! a bare loop of same-size `write` + `fdatasync` appends to a plain file in
//! the same directory (the limit of this disk), `journal::verify` of 100 000
//! records, and `Journal::open` (lock, read, check every record, parse the
//! bodies) of 10 000, and a resume's own work on 10 000 records of a real
//! rollout: `Journal::open` then `RolloutState::replay` (the fold every
//! `cairn rollout resume` does before its next step).
//!
//! The large journals are written here by the format the journal's module
//! docs give (`serde_json` of a `Record`, the CRC-32 spliced in, the
//! SHA-256 chain) without an fsync per line, which would take minutes;
//! `verify` accepting every record of them checks the format as documented.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, ensure};
use cairn_host::Outcome as Verdict;
use cairn_host::rollout::journal::{self, CREATED_KIND, FORMAT, GENESIS_PREV, Journal, Record};
use cairn_host::rollout::state::{Event, HookEnd, HookKind, HookStart, RolloutState, Started};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::report::{Section, Target, ratio, show};
use crate::sections::{Bench, Mode, Outcome};
use crate::stats::{Budget, Samples, collect, time_interleaved};

const ROLLOUT: &str = "bench-rollout";
const VERIFY_RECORDS: u64 = 100_000;
const OPEN_RECORDS: u64 = 10_000;

/// A body of about 500 bytes, as a validator verdict record holds: names,
/// digests, a finding, timings.
fn body(i: u64) -> Value {
    json!({
        "checkpoint": "canary-5",
        "plugin": "destructive-change",
        "digest": format!("sha256:{}", hex::encode(Sha256::digest(i.to_le_bytes()))),
        "verdict": "fail",
        "findings": [{
            "rule": "destructive/removed-item",
            "path": "workflows/invoice-sync.json",
            "pointer": format!("/steps/{}", i % 17),
            "message": "id \"load\" is removed from /steps",
            "hint": "removing a live definition is irreversible; deprecate it first",
        }],
        "limits": { "deadline-ms": 2000, "memory-mib": 64, "fuel": null },
        "elapsed-us": 400 + i % 1000,
        "memory-peak-bytes": 1_048_576 + i,
    })
}

/// Section 7.
pub fn section(bench: &Bench) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let where_ = file_system_of(dir.path());

    // Appends: the journal vs the bare loop, in turn.
    let journal_path = dir.path().join("appends.jsonl");
    let mut journal = Journal::create(&journal_path, ROLLOUT)?;
    let before = std::fs::metadata(&journal_path)?.len();
    journal.append("verdict", Some("canary-5/destructive-change/1"), body(1))?;
    let line_len = std::fs::metadata(&journal_path)?.len() - before;
    let bare_path = dir.path().join("bare.log");
    let mut bare = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&bare_path)?;
    let mut line = vec![b'x'; line_len as usize];
    if let Some(last) = line.last_mut() {
        *last = b'\n';
    }
    let mut i = 1;
    let budget = pick(
        bench.mode,
        Budget::new(Duration::from_secs(6), 300, 20_000),
        Budget::new(Duration::ZERO, 20, 20),
    );
    let mut append = || {
        i += 1;
        journal.append(
            "verdict",
            Some(&format!("canary-5/destructive-change/{i}")),
            body(i),
        )?;
        anyhow::Ok(())
    };
    let mut bare_append = || {
        let written = bare.write(&line)?;
        ensure!(written == line.len(), "short write");
        bare.sync_data()?;
        anyhow::Ok(())
    };
    let operations: &mut [&mut dyn FnMut() -> anyhow::Result<()>] =
        &mut [&mut append, &mut bare_append];
    let samples = time_interleaved(budget, operations)?;
    let (journal_samples, bare_samples) = (&samples[0], &samples[1]);
    drop(journal);
    let appended = journal::verify(&journal_path)?;
    ensure!(
        // Record 1, the first append, the warm-up and the samples.
        appended.is_intact() && appended.records >= journal_samples.len() as u64 + 2,
        "the appended journal does not verify: {appended:?}"
    );

    // verify of 100 000 records; open of 10 000.
    let (verify_records, open_records) = match bench.mode {
        Mode::Full => (VERIFY_RECORDS, OPEN_RECORDS),
        Mode::Quick => (VERIFY_RECORDS / 10, OPEN_RECORDS / 10),
    };
    let big = dir.path().join("verify.jsonl");
    let big_bytes = write_journal(&big, verify_records)?;
    let checks = pick(
        bench.mode,
        Budget::new(Duration::from_secs(8), 5, 30),
        Budget::new(Duration::ZERO, 2, 2),
    );
    let verify_samples = collect(checks, || {
        let start = Instant::now();
        let verification = journal::verify(&big)?;
        let elapsed = start.elapsed();
        ensure!(
            verification.is_intact() && verification.records == verify_records,
            "verify: {verification:?}"
        );
        Ok(elapsed)
    })?;
    let medium = dir.path().join("open.jsonl");
    let medium_bytes = write_journal(&medium, open_records)?;
    let opens = pick(
        bench.mode,
        Budget::new(Duration::from_secs(5), 20, 200),
        Budget::new(Duration::ZERO, 3, 3),
    );
    let open_samples = collect(opens, || {
        let start = Instant::now();
        let opened = Journal::open(&medium)?;
        let elapsed = start.elapsed();
        ensure!(
            opened.records.len() as u64 == open_records && opened.repaired.is_none(),
            "open: {} records",
            opened.records.len()
        );
        Ok(elapsed)
    })?;
    // Resume: open + fold a journal of real rollout events.
    let rollout_journal = dir.path().join("resume.jsonl");
    let rollout_bytes = write_rollout_journal(&rollout_journal, open_records)?;
    let resume_samples = collect(opens, || {
        let start = Instant::now();
        let opened = Journal::open(&rollout_journal)?;
        let state = RolloutState::replay(ROLLOUT, &opened.records)
            .map_err(|message| anyhow::anyhow!("replay: {message}"))?;
        let elapsed = start.elapsed();
        ensure!(
            state.records == open_records && state.started.is_some(),
            "resume: {} records folded",
            state.records
        );
        Ok(elapsed)
    })?;
    let read_samples = collect(opens, || {
        let start = Instant::now();
        let read = journal::read(&medium)?;
        let elapsed = start.elapsed();
        ensure!(read.records.len() as u64 == open_records, "read");
        Ok(elapsed)
    })?;

    let per_second = |s: &Samples| 1.0 / s.median().as_secs_f64().max(f64::MIN_POSITIVE);
    let mut section = Section::new(
        "7. Rollout journal: fsynced appends, verify, open",
        &format!(
            "Appends: `Journal::append` (a record of {line_len} bytes: a verdict with one \
             finding, ~500 bytes of body; serialised, checksummed, chained, one `write(2)`, \
             `fdatasync`) against a bare loop that writes a line of the same size to a plain \
             file opened `O_APPEND` and `fdatasync`s it, in turn (one of each, {n} of each), \
             in {where_}. `verify`: `journal::verify` of a {verify_records}-record journal \
             ({big_mib}). `open`: `Journal::open` of a {open_records}-record journal \
             ({medium_mib}): take the lock, read, check every record, parse every body into \
             JSON values; `read` does the same without the lock; `resume`: `Journal::open` \
             of a {open_records}-record journal of real rollout events ({rollout_mib}: \
             checkpoints started, hooks started and finished, observations, judged \
             checkpoints with their report) and `RolloutState::replay`, the fold a \
             `cairn rollout resume` does before its next step. Medians; appends/s is 1 / \
             the median.",
            rollout_mib = crate::report::mib(rollout_bytes),
            n = journal_samples.len(),
            big_mib = crate::report::mib(big_bytes),
            medium_mib = crate::report::mib(medium_bytes),
        ),
        &[
            "operation",
            "median",
            "p99",
            "per second",
            "vs bare loop",
            "samples",
        ],
    );
    section.row(vec![
        "**journal append** (write + fdatasync)".into(),
        show(journal_samples.median()),
        show(journal_samples.p99()),
        format!("{:.0}", per_second(journal_samples)),
        ratio(journal_samples.median(), bare_samples.median()),
        journal_samples.len().to_string(),
    ]);
    section.row(vec![
        "bare loop: same-size write + fdatasync".into(),
        show(bare_samples.median()),
        show(bare_samples.p99()),
        format!("{:.0}", per_second(bare_samples)),
        "1.00×".into(),
        bare_samples.len().to_string(),
    ]);
    section.row(vec![
        format!("verify, {verify_records} records"),
        show(verify_samples.median()),
        show(verify_samples.max()),
        format!(
            "{:.0} records",
            verify_records as f64 * per_second(&verify_samples)
        ),
        "—".into(),
        verify_samples.len().to_string(),
    ]);
    section.row(vec![
        format!("open (lock, read, check, parse), {open_records} records"),
        show(open_samples.median()),
        show(open_samples.p99()),
        format!(
            "{:.0} records",
            open_records as f64 * per_second(&open_samples)
        ),
        "—".into(),
        open_samples.len().to_string(),
    ]);
    section.row(vec![
        format!("**resume** (open + replay into the rollout's state), {open_records} records"),
        show(resume_samples.median()),
        show(resume_samples.p99()),
        format!(
            "{:.0} records",
            open_records as f64 * per_second(&resume_samples)
        ),
        "—".into(),
        resume_samples.len().to_string(),
    ]);
    section.row(vec![
        format!("read (no lock), {open_records} records"),
        show(read_samples.median()),
        show(read_samples.p99()),
        format!(
            "{:.0} records",
            open_records as f64 * per_second(&read_samples)
        ),
        "—".into(),
        read_samples.len().to_string(),
    ]);
    section.notes = format!(
        "The journal's append costs {} the median of the bare loop's ({} per record, {} at \
         p99): the fsync is the limit; the record's own work (JSON, CRC-32, SHA-256) is the \
         difference. (For verify, the p99 column shows the slowest run.)",
        ratio(journal_samples.median(), bare_samples.median()),
        signed(journal_samples.median(), bare_samples.median()),
        signed(journal_samples.p99(), bare_samples.p99()),
    );
    let targets = vec![
        Target {
            goal: format!("journal verify of {verify_records} records ≤ 1 s (median)"),
            measured: show(verify_samples.median()),
            met: verify_samples.median() <= Duration::from_secs(1),
        },
        Target {
            goal: format!(
                "rollout resume (open + replay) of {open_records} records ≤ 100 ms (median)"
            ),
            measured: show(resume_samples.median()),
            met: resume_samples.median() <= Duration::from_millis(100),
        },
    ];
    Ok((section, targets))
}

/// `a - b` with its sign: `+12.0 µs`, `-3.00 µs`.
fn signed(a: Duration, b: Duration) -> String {
    if a >= b {
        format!("+{}", show(a - b))
    } else {
        format!("-{}", show(b - a))
    }
}

fn pick(mode: Mode, full: Budget, quick: Budget) -> Budget {
    match mode {
        Mode::Full => full,
        Mode::Quick => quick,
    }
}

/// Writes a valid journal of `records` records (record 1 `journal-created`)
/// without fsyncing each; returns its size.
fn write_journal(path: &Path, records: u64) -> anyhow::Result<u64> {
    write_records(path, records, |seq| {
        (
            "verdict".to_owned(),
            Some(format!("canary-5/destructive-change/{seq}")),
            body(seq),
        )
    })
}

/// Steps of one checkpoint, as a rollout records them.
const STEPS_PER_CHECKPOINT: u64 = 7;

/// Writes a valid journal of `records` records of one rollout: started,
/// then checkpoint after checkpoint (started, promote hook started and
/// finished, observation started and done, judged with a report, passed).
fn write_rollout_journal(path: &Path, records: u64) -> anyhow::Result<u64> {
    let checkpoints = records.div_ceil(STEPS_PER_CHECKPOINT);
    let name = |i: u64| format!("checkpoint-{i}");
    let started = Event::RolloutStarted(Started {
        plan: "/srv/plans/orders.toml".to_owned(),
        plan_sha256: hex::encode(Sha256::digest(b"plan")),
        change: "/srv/changes/CHG-1042".to_owned(),
        change_sha256: hex::encode(Sha256::digest(b"change")),
        checkpoints: (0..checkpoints).map(name).collect(),
        plugins: Default::default(),
        change_id: "CHG-1042".to_owned(),
    });
    write_records(path, records, |seq| {
        if seq == 2 {
            let (kind, body) = started.to_record_parts();
            return (kind, None, body);
        }
        let step = seq - 3;
        let checkpoint = name(step / STEPS_PER_CHECKPOINT);
        let key = format!("{ROLLOUT}/{checkpoint}/promote");
        let (event, key) = match step % STEPS_PER_CHECKPOINT {
            0 => (Event::CheckpointStarted { checkpoint }, None),
            1 => (
                Event::HookStarted(HookStart {
                    checkpoint,
                    hook: HookKind::Promote,
                    run: 1,
                }),
                Some(key),
            ),
            2 => (
                Event::HookFinished(HookEnd {
                    checkpoint,
                    hook: HookKind::Promote,
                    ok: true,
                    outcome: json!({"ok": true, "attempts": [{"attempt": 1, "result": {"kind": "succeeded", "detail": "exit 0"}, "duration-ms": 12.5, "output-tail": "weight set to 5\n"}]}),
                }),
                Some(key),
            ),
            3 => (
                Event::ObserveStarted {
                    checkpoint,
                    window_ms: 300_000,
                },
                None,
            ),
            4 => (
                Event::Observed {
                    checkpoint,
                    metrics: [("error-rate", 0.002), ("latency-p99-ms", 310.0)]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                },
                None,
            ),
            5 => (
                Event::CheckpointJudged {
                    checkpoint,
                    outcome: Verdict::Pass,
                    report: body(seq),
                },
                None,
            ),
            _ => (
                Event::CheckpointPassed {
                    checkpoint,
                    outcome: Verdict::Pass,
                },
                None,
            ),
        };
        let (kind, body) = event.to_record_parts();
        (kind, key, body)
    })
}

/// Writes `records` records, record 1 `journal-created` and the rest from
/// `record(seq)`, chained and checksummed as the journal writes them.
fn write_records(
    path: &Path,
    records: u64,
    record: impl Fn(u64) -> (String, Option<String>, Value),
) -> anyhow::Result<u64> {
    let mut out = Vec::with_capacity(records as usize * 700);
    let mut prev = GENESIS_PREV.to_owned();
    for seq in 1..=records {
        let (kind, key, body) = if seq == 1 {
            (CREATED_KIND.to_owned(), None, json!({ "format": FORMAT }))
        } else {
            record(seq)
        };
        let record = Record {
            seq,
            prev,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            rollout: ROLLOUT.to_owned(),
            kind,
            key,
            body,
        };
        let mut line = serde_json::to_vec(&record)?;
        let crc = crc32fast::hash(&line);
        line.pop();
        line.extend_from_slice(format!(",\"crc\":\"{crc:08x}\"}}").as_bytes());
        prev = hex::encode(Sha256::digest(&line));
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    let mut file = File::create(path)?;
    file.write_all(&out)?;
    file.sync_all()?;
    Ok(out.len() as u64)
}

/// "a temporary directory on ext4 (/dev/vda, mounted on /)": the file
/// system holding `dir`.
fn file_system_of(dir: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(point).then(|| {
                (
                    point.len(),
                    format!("a temporary directory on {kind} ({device}, mounted on {point})"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "a temporary directory".to_owned(), |(_, text)| text)
}
