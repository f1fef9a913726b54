//! The rollout journal under SIGKILL: a child process appends records and
//! says which ones `append` acknowledged; killed at seeded random moments
//! (while it starts, opens and repairs the journal, or appends), the journal
//! still opens, needs at most a torn tail repaired, verifies, and holds
//! every acknowledged record exactly once.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_host::rollout::journal::{self, Journal, REPAIRED_KIND};
use serde_json::json;

/// Names the journal the child appends to; unset, the child test is a no-op.
const CHILD_JOURNAL: &str = "CAIRN_JOURNAL_CRASH_CHILD";
/// The round the child runs in, written into its keys.
const CHILD_ROUND: &str = "CAIRN_JOURNAL_CRASH_ROUND";
/// The child's name in this test binary.
const CHILD_TEST: &str = "journal::crash_child_appends_until_killed";
/// The kind of the child's records.
const STEP: &str = "step";

/// Not a test on its own: the child process of
/// `a_kill_at_any_moment_loses_no_acknowledged_record`, which runs this
/// test binary again with `CAIRN_JOURNAL_CRASH_CHILD` set. It opens the
/// journal (repairing a torn tail), prints `ready`, then appends records of
/// about 500 bytes keyed `ROUND/I` and prints `ack SEQ ROUND/I` after each
/// `append` returns, until it is killed (or after 5 000 records).
#[test]
fn crash_child_appends_until_killed() {
    let Some(path) = std::env::var_os(CHILD_JOURNAL) else {
        return;
    };
    let round = std::env::var(CHILD_ROUND).expect("round");
    let mut out = std::io::stdout().lock();
    let mut opened = Journal::open(Path::new(&path)).expect("child: open the journal");
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .expect("stdout");
    let pad = "x".repeat(400);
    for i in 0..5_000u64 {
        let key = format!("{round}/{i}");
        let record = opened
            .journal
            .append(
                STEP,
                Some(&key),
                json!({ "round": round, "i": i, "checkpoint": "canary", "pad": pad }),
            )
            .expect("child: append");
        writeln!(out, "ack {} {key}", record.seq)
            .and_then(|()| out.flush())
            .expect("stdout");
    }
}

/// SIGKILL at seeded random moments while a child opens the journal and
/// appends to it: after each kill, `Journal::open` succeeds, repairs at most
/// a torn tail (and records it), the journal verifies, and every record the
/// child saw acknowledged is there, at its seq, exactly once; the records of
/// a round are its steps 0, 1, 2, … without a gap. Quick mode in CI (20
/// rounds); CAIRN_KILL_ROUNDS=200 for the full loop, CAIRN_KILL_SEED to
/// replay one.
#[test]
fn a_kill_at_any_moment_loses_no_acknowledged_record() {
    let rounds: u64 = std::env::var("CAIRN_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CAIRN_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!(
        "journal kill test: seed {seed} (CAIRN_KILL_SEED={seed} reproduces), {rounds} rounds"
    );
    let mut state = seed;
    let mut next = || {
        // SplitMix64.
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("crash.jsonl");
    drop(Journal::create(&path, "crash-test").expect("create"));
    // This test binary, through /proc so that a rebuild replacing the file
    // (a shared target directory) does not pull it away mid-test.
    let exe = Path::new("/proc/self/exe");
    // Every acknowledged record: seq → key.
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let (mut repairs, mut appended, mut during_start, mut tears) = (0, 0, 0, 0);

    for round in 0..rounds {
        // One round in three starts from a torn tail, as a power loss
        // during a write leaves: the end of the last record again, cut
        // short. The child repairs it first, or is killed while it does.
        let repairs_before = count_repairs(&path);
        let torn = next() % 3 == 0;
        if torn {
            let bytes = std::fs::read(&path).expect("read the journal");
            let last = bytes[..bytes.len() - 1]
                .rsplit(|&b| b == b'\n')
                .next()
                .expect("a last line");
            let cut = 1 + next() as usize % last.len();
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open to tear");
            file.write_all(&last[..cut]).expect("tear");
            tears += 1;
        }
        // One round in four kills from the spawn (often while the child
        // starts, opens or repairs); the rest once it appends.
        let from_spawn = next() % 4 == 0;
        let delay = Duration::from_micros(next() % if from_spawn { 80_000 } else { 40_000 });
        let context = format!(
            "seed {seed}, round {round}, kill {delay:?} after {}{}",
            if from_spawn { "spawn" } else { "ready" },
            if torn { ", from a torn tail" } else { "" }
        );
        let stderr_path = dir.path().join("child-stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(exe)
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_JOURNAL, &path)
            .env(CHILD_ROUND, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start the child");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        if !from_spawn {
            // Wait for the child's `ready` (the harness prints a line and
            // a half before it): a blocking read, no timing involved.
            loop {
                let mut line = String::new();
                let n = stdout.read_line(&mut line).expect("read the child");
                seen.push_str(&line);
                if n == 0 || line.ends_with("ready\n") {
                    break;
                }
            }
            assert!(
                seen.ends_with("ready\n"),
                "{context}: the child ended before it was ready:\n{seen}\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("wait for the child");
        stdout.read_to_string(&mut seen).expect("read the child");
        assert!(
            status.code().is_none(),
            "{context}: the child exited by itself ({status}) instead of being killed:\n{seen}\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        if !seen.contains("ready\n") {
            during_start += 1;
        }
        // Complete `ack` lines only: a kill can cut the last one.
        for line in seen.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let Some(ack) = line.trim_end().strip_prefix("ack ") else {
                continue;
            };
            let (seq, key) = ack.split_once(' ').expect("ack SEQ KEY");
            let seq: u64 = seq.parse().expect("seq");
            let before = acked.insert(seq, key.to_owned());
            assert!(before.is_none(), "{context}: seq {seq} acknowledged twice");
            appended += 1;
        }

        let opened = Journal::open(&path)
            .unwrap_or_else(|err| panic!("{context}: open after the kill: {err}"));
        if let Some(torn) = &opened.repaired {
            repairs += 1;
            let last = opened.records.last().expect("the repair record");
            assert_eq!(last.kind, REPAIRED_KIND, "{context}");
            assert_eq!(torn.line, last.seq, "{context}: the repair names its line");
        }
        let verification = journal::verify(&path).expect("verify");
        assert!(
            verification.is_intact() && verification.torn_tail.is_none(),
            "{context}: the journal does not verify after open: {verification:?}"
        );
        let records = &opened.records;
        assert_eq!(verification.records, records.len() as u64, "{context}");
        let repairs_now = records.iter().filter(|r| r.kind == REPAIRED_KIND).count();
        if torn {
            assert!(
                repairs_now > repairs_before,
                "{context}: the torn tail was dropped without a journal-repaired record"
            );
        }
        for (seq, key) in &acked {
            let record = records
                .get(*seq as usize - 1)
                .unwrap_or_else(|| panic!("{context}: acknowledged record {seq} ({key}) is lost"));
            assert_eq!(
                (record.kind.as_str(), record.key.as_deref()),
                (STEP, Some(key.as_str())),
                "{context}: record {seq} is not the acknowledged one"
            );
        }
        // No step twice, and each round's steps are 0, 1, 2, … in order.
        let mut keys = HashSet::new();
        let mut next_i: BTreeMap<u64, u64> = BTreeMap::new();
        for record in records.iter().filter(|r| r.kind == STEP) {
            let key = record.key.clone().expect("a step has a key");
            assert!(
                keys.insert(key.clone()),
                "{context}: step {key} recorded twice"
            );
            let (r, i) = key.split_once('/').expect("ROUND/I");
            let (r, i): (u64, u64) = (r.parse().expect("round"), i.parse().expect("i"));
            let expected = next_i.entry(r).or_insert(0);
            assert_eq!(
                i, *expected,
                "{context}: round {r} has a gap before step {i}"
            );
            *expected += 1;
        }
        drop(opened);
    }
    eprintln!(
        "journal kill test: {rounds} rounds, {appended} acknowledged appends, \
         {during_start} kills before the child was ready, {tears} rounds from a torn tail, \
         {repairs} torn tails repaired after a kill, {} repair records in all",
        count_repairs(&path)
    );
}

/// The `journal-repaired` records of the journal at `path` (a torn tail
/// after them is no record).
fn count_repairs(path: &Path) -> usize {
    journal::read(path)
        .expect("read the journal")
        .records
        .iter()
        .filter(|r| r.kind == REPAIRED_KIND)
        .count()
}
