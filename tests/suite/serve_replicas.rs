//! Three `cairn serve` replicas over one real PostgreSQL, killed at seeded
//! random moments while they drive rollouts: every rollout finishes on a
//! surviving replica, no hook whose end was recorded runs again, every hook
//! ran at most once per recorded start, and every journal's chain
//! verifies. `CAIRN_REPLICA_KILL_SEED` repeats a run; `CAIRN_REPLICA_ROUNDS`
//! sets how many rollouts (default 20).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::serve::{Served, bundle_of_dir, repo};
use crate::util::copy_rollout_example;

const TOKEN: &str = "replica-test-token";

/// A tiny seeded generator (SplitMix64): the kill schedule is a function of
/// the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn write_setup(dir: &Path) {
    // A longer canary window: more of each rollout to be killed in.
    copy_rollout_example(&dir.join("rollout"), |plan| {
        plan.replace("observe-ms = 300", "observe-ms = 1500")
    });
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[server]\nstate-dir = \"state\"\nlease-ms = 1000\n\n\
             [[tenant]]\nname = \"ops\"\nplans = {{ rollout = \"rollout/plan.toml\" }}\n\
             [[tenant.token]]\nidentity = \"ci\"\nsha256 = \"{hash}\"\n"
        ),
    )
    .unwrap();
}

fn spawn_replica(dir: &Path, url: &str) -> Served {
    Served::spawn(
        tempfile::tempdir().expect("temp dir"),
        &dir.join("serve.toml"),
        &[("CAIRN_POSTGRES_URL", url.to_owned())],
    )
}

#[test]
fn replicas_killed_at_random_take_each_others_rollouts_over_without_repeating_a_hook() {
    let rounds: u64 = std::env::var("CAIRN_REPLICA_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("CAIRN_REPLICA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    let _watchdog = cairn_tests::Watchdog::start(
        Duration::from_secs(120 + 30 * rounds),
        "the multi-replica kill test",
    );
    let context = format!("(seed {seed}; repeat with CAIRN_REPLICA_KILL_SEED={seed})");
    eprintln!("replica kill test: {rounds} rounds {context}");
    let postgres = cairn_tests::postgres::Postgres::start().expect("PostgreSQL starts");
    let url = postgres.url();
    let dir = tempfile::tempdir().expect("temp dir");
    write_setup(dir.path());
    let change = bundle_of_dir(&repo().join("examples/changes/canary-healthy"));
    let mut replicas: Vec<Served> = (0..3).map(|_| spawn_replica(dir.path(), &url)).collect();
    let mut rng = Rng(seed);
    let mut kills = 0;

    for round in 0..rounds {
        let id = format!("r{round}");
        let entry = rng.below(3) as usize;
        let started = replicas[entry].request(
            "POST",
            &format!("/v1/rollouts?plan=rollout&id={id}"),
            Some(TOKEN),
            Some(&change),
        );
        assert_eq!(
            started.status,
            202,
            "round {round} {context}: {}",
            String::from_utf8_lossy(&started.body)
        );
        // Kill the replica that took it (mostly) or another, at a random
        // moment of its first two seconds (it takes about three), and start
        // a fresh one.
        std::thread::sleep(Duration::from_millis(rng.below(2000)));
        let victim = if rng.below(3) < 2 {
            entry
        } else {
            rng.below(3) as usize
        };
        let _ = replicas[victim].child.kill();
        let _ = replicas[victim].child.wait();
        kills += 1;
        replicas[victim] = spawn_replica(dir.path(), &url);

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let asked = (round as usize + 1) % 3;
            let status =
                replicas[asked].request("GET", &format!("/v1/rollouts/{id}"), Some(TOKEN), None);
            let phase = if status.status == 200 {
                status.json()["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            } else {
                String::new()
            };
            if phase == "completed" {
                break;
            }
            assert!(
                !matches!(
                    phase.as_str(),
                    "rolled-back" | "rollback-unverified" | "frozen" | "paused"
                ),
                "round {round} {context}: rollout {id} ended {phase}"
            );
            assert!(
                Instant::now() < deadline,
                "round {round} {context}: rollout {id} not completed within 60 s (phase {phase:?}); logs:\n{}",
                replicas
                    .iter()
                    .map(Served::logs)
                    .collect::<Vec<_>>()
                    .join("\n---\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Every journal verifies, and the hooks ran as recorded.
    let runs = std::fs::read_to_string(dir.path().join("rollout/platform/state/hook-runs.log"))
        .unwrap_or_default();
    let mut runs_by_key: BTreeMap<String, usize> = BTreeMap::new();
    for line in runs.lines() {
        let key = line.split(' ').next().unwrap_or_default().to_owned();
        *runs_by_key.entry(key).or_default() += 1;
    }
    let mut takeovers = 0;
    for round in 0..rounds {
        let id = format!("r{round}");
        let journal = replicas[0].request(
            "GET",
            &format!("/v1/rollouts/{id}/journal"),
            Some(TOKEN),
            None,
        );
        assert_eq!(journal.status, 200);
        let journal = journal.json();
        assert_eq!(journal["intact"], true, "{id} {context}: {journal:#}");
        let records = journal["records"].as_array().unwrap();
        takeovers += records.iter().filter(|r| r["kind"] == "resumed").count();
        let mut started: BTreeMap<String, usize> = BTreeMap::new();
        let mut finished: BTreeMap<String, usize> = BTreeMap::new();
        for record in records {
            let key = record["key"].as_str().unwrap_or_default().to_owned();
            match record["kind"].as_str() {
                Some("hook-started") => {
                    assert!(
                        !finished.contains_key(&key),
                        "{id} {context}: hook {key} started again after it finished"
                    );
                    *started.entry(key).or_default() += 1;
                }
                Some("hook-finished") => *finished.entry(key).or_default() += 1,
                _ => {}
            }
        }
        assert!(!started.is_empty(), "{id}: hooks ran");
        for (key, starts) in &started {
            assert_eq!(
                finished.get(key),
                Some(&1),
                "{id} {context}: {key} finished once"
            );
            let ran = runs_by_key.get(key).copied().unwrap_or(0);
            assert!(
                ran <= *starts,
                "{id} {context}: {key} ran {ran} times for {starts} recorded starts"
            );
        }
    }
    eprintln!("replica kill test: {rounds} rollouts, {kills} kills, {takeovers} resumes {context}");
    assert!(takeovers > 0, "some rollout was taken over {context}");

    // The database goes away: the replicas say they are not ready.
    drop(postgres);
    replicas[0].wait_for(
        "/readyz to report the lost store",
        Duration::from_secs(30),
        |s| {
            let ready = s.request("GET", "/readyz", None, None);
            ready.status == 503 && ready.json()["store-error"].is_string()
        },
    );
    let health = replicas[0].request("GET", "/healthz", None, None);
    assert_eq!(
        health.status, 503,
        "liveness fails: the replica must be restarted"
    );
    assert_eq!(health.json()["status"], "store-lost");
}
